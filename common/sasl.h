/*
 * NAME
 *	sasl - SMTP AUTH through GNU SASL: client, server, credentials file
 * SYNOPSIS
 *	#include "sasl.h"
 *
 *	int sasl_ctx_new(struct sasl_ctx **out);
 *	void sasl_ctx_free(struct sasl_ctx *ctx);
 *	const char *sasl_status_name(enum sasl_status status);
 *
 *	int sasl_client_choose(const char *offered, bool tls, bool allow_plaintext,
 *	    const char **mech);
 *	int sasl_client_start(struct sasl_ctx *ctx, const char *mech,
 *	    const char *user, const char *password,
 *	    struct sasl_client **out, char **initial);
 *	enum sasl_status sasl_client_step(struct sasl_client *client,
 *	    const char *challenge, char **response);
 *	bool sasl_client_finished(const struct sasl_client *client);
 *	const char *sasl_client_error(const struct sasl_client *client);
 *	void sasl_client_free(struct sasl_client *client);
 *
 *	bool sasl_server_supports(const char *mech);
 *	const char *sasl_mech_at(size_t i, bool *sends_password, int *strength);
 *	const char *sasl_mech_lookup(const char *mech, bool *sends_password,
 *	    int *strength);
 *	bool sasl_mech_opt_in(const char *mech);
 *	enum sasl_status sasl_server_start(struct sasl_ctx *ctx, const char *mech,
 *	    const struct sasl_server_ops *ops, void *arg,
 *	    struct sasl_server **out);
 *	enum sasl_status sasl_server_step(struct sasl_server *server,
 *	    const char *response, char **challenge);
 *	const char *sasl_server_identity(const struct sasl_server *server);
 *	const char *sasl_server_error(const struct sasl_server *server);
 *	void sasl_server_free(struct sasl_server *server);
 *
 *	int sasl_scram_secrets_make(const char *password, unsigned iterations,
 *	    const char *salt, struct sasl_scram_secrets *out);
 *
 *	int sasl_creds_load(const char *path, struct sasl_creds **out,
 *	    char *err, size_t errlen);
 *	const struct sasl_cred *sasl_creds_find(const struct sasl_creds *creds,
 *	    const char *route);
 *	size_t sasl_creds_count(const struct sasl_creds *creds);
 *	void sasl_creds_free(struct sasl_creds *creds);
 * DESCRIPTION
 *	SMTP AUTH (RFC 4954) with the mechanisms SCRAM-SHA-256 (RFC 7677),
 *	PLAIN (RFC 4616) and LOGIN, for the relay (client) and the SMTP
 *	server, and CRAM-MD5 (RFC 2195) for the server only (fetchmail's
 *	ODMR mode knows no other).  GNU SASL does all base64, hashing and mechanism work
 *	(gsasl_step64); this module chooses, sequences and classifies.  All
 *	challenges and responses in and out are base64 text without CRLF,
 *	as they travel after "334 " and on the client's lines.
 *
 *	sasl_ctx_new() initialises GNU SASL once; clients and servers are
 *	made from a context.
 *
 *	Outcomes (enum sasl_status) and the SMTP replies they stand for:
 *	    SASL_OK             235 2.7.0  authenticated (client: exchange done)
 *	    SASL_CONTINUE       334        send the challenge/response, read more
 *	    SASL_BAD_CREDENTIALS 535 5.7.8 wrong user or password; for a
 *	                                   client, also a server whose SCRAM
 *	                                   signature does not verify
 *	    SASL_MALFORMED      501 5.5.2  not base64, or a message the
 *	                                   mechanism cannot parse
 *	    SASL_CANCELLED      501 5.0.0  the client sent "*"
 *	    SASL_UNKNOWN_MECH   504 5.5.4  a mechanism this module does not do
 *	    SASL_TRANSITION     432 4.7.12 SCRAM asked for a user that has no
 *	                                   SCRAM key yet
 *	    SASL_TEMPFAIL       454 4.7.0  the credentials could not be read,
 *	                                   out of memory
 *	sasl_status_name() prints them ("bad-credentials", ...) for logs.
 *
 * CLIENT
 *	sasl_client_choose() picks from offered, the mechanism list of the
 *	server's EHLO AUTH keyword (names separated by blanks, any case):
 *	SCRAM-SHA-256 if offered, else PLAIN, else LOGIN.  PLAIN and LOGIN
 *	send the password itself, so they are chosen without TLS only when
 *	allow_plaintext is true.  It returns 0 with *mech set (a static
 *	string), -ENOENT when none of the three is offered, -EPERM when only
 *	PLAIN or LOGIN is offered and tls and allow_plaintext are false.
 *
 *	sasl_client_start() begins an exchange for user and password (copied
 *	into GNU SASL's session).  *initial receives the
 *	initial response to send on the AUTH line (malloc'd; "" must be sent
 *	as "="), or NULL for LOGIN, which has none.  It returns 0, -ENOTSUP
 *	for a mechanism other than the three, -EINVAL for an empty user or a
 *	password GNU SASL refuses, -ENOMEM.  sasl_client_step() takes the
 *	base64 text of a 334 challenge and writes the response to send into
 *	*response (malloc'd, possibly ""); it returns SASL_CONTINUE or
 *	SASL_OK (send *response too: SCRAM's last 334 carries the server's
 *	signature and wants an empty line), or a failure with *response NULL.
 *	sasl_client_finished() tells whether the mechanism has finished: a
 *	235 before that (a SCRAM server that never proved itself) should not
 *	be trusted.
 *
 * SERVER
 *	sasl_server_supports() tells whether mech (any case) is one of the
 *	four.  sasl_server_start() begins an exchange and returns
 *	SASL_CONTINUE with *out set, SASL_UNKNOWN_MECH, or SASL_TEMPFAIL.
 *	sasl_server_step() takes a client response (the AUTH line's initial
 *	response, "" when there was none or it was "=", then each line the
 *	client sends) and returns SASL_CONTINUE with *challenge set (send
 *	"334 " and it), SASL_OK with sasl_server_identity() set, or a
 *	failure; after a failure or SASL_OK the exchange is over and further
 *	steps return the same status.  LOGIN takes the user as an initial
 *	response too ("AUTH LOGIN <base64 user>", which some clients send).
 *
 *	sasl_mech_at() walks the four mechanisms, strongest first (NULL
 *	past the last), and sasl_mech_lookup() finds one by name (any case;
 *	NULL when unknown); both return the canonical name and tell whether
 *	the mechanism sends the password itself (PLAIN, LOGIN: not without
 *	TLS) and its strength for a listener's minimum: CRAM-MD5 0 (the
 *	weakest: any minimum refuses it), LOGIN and PLAIN 1, SCRAM-SHA-256 2.
 *	sasl_mech_opt_in() tells whether a mechanism needs the server to keep
 *	a password-equivalent secret (CRAM-MD5): a server offers it only
 *	where the operator chose to (auth_cram_md5), never by default.  The
 *	client never chooses or starts CRAM-MD5 (-ENOTSUP, -ENOENT).
 *
 *	The caller supplies the credentials through struct sasl_server_ops:
 *	    check_password(arg, user, password)   PLAIN and LOGIN: 0 when the
 *	        password is right, -EACCES when it is wrong or there is no
 *	        such user, any other -errno when the check could not be made
 *	        (SASL_TEMPFAIL);
 *	    scram_secrets(arg, user, out)   SCRAM-SHA-256: fill *out with the
 *	        user's stored secrets and return 0; -ENOENT for no such user
 *	        (the exchange then runs to its end with made-up secrets and
 *	        fails as a wrong password does, so the first round does not
 *	        tell a client which users exist: a made-up salt stays the same
 *	        for one name within a context); -ENOKEY for a user without a
 *	        SCRAM key (SASL_TRANSITION); any other -errno: SASL_TEMPFAIL.
 *	    cram_secret(arg, user, out, outlen)   CRAM-MD5: copy the user's
 *	        stored secret (a password equivalent, NUL-terminated, less
 *	        than SASL_CRAM_SECRET_MAX bytes) into out and return 0;
 *	        -ENOENT for no such user or a user without one (the exchange
 *	        fails as a wrong secret does: SASL_BAD_CREDENTIALS); any other
 *	        -errno: SASL_TEMPFAIL.  GNU SASL computes and compares the
 *	        HMAC-MD5; the copy is wiped once handed over.
 *	Any may be NULL: the mechanism then fails with SASL_TEMPFAIL.
 *	A client that asks to act as another identity (an authorization
 *	identity different from the user) fails with SASL_BAD_CREDENTIALS.
 *
 *	sasl_scram_secrets_make() derives the SCRAM-SHA-256 secrets of a
 *	password (SASLprep'd, as GNU SASL's client does) with salt (base64),
 *	or, when salt is NULL, a fresh random 18-byte one; the result is what
 *	`gsasl --mkpasswd --mechanism SCRAM-SHA-256` prints for the same
 *	salt.  Returns 0, -EINVAL (empty or refused password, no iterations,
 *	a salt that is not base64), -ENOMEM.
 *
 *	sasl_client_error() and sasl_server_error() return a one-line
 *	explanation of the last failure ("" when none), for logs; they never
 *	contain a password or a challenge.
 *
 * CREDENTIALS FILE
 *	The relay's credentials, one route per line:
 *
 *	    # next hop              user:password
 *	    [smtp.example.net]:587  me@example.net:s3cret pass phrase
 *	    *                       backup:other
 *
 *	A line holds a route (a non-blank token of up to 255 printable
 *	characters, matched case-insensitively against what the caller asks
 *	for: the relay's route or next-hop name), blanks, then user:password:
 *	the user runs to the first ':' (not empty, printable, no blank) and
 *	the password is everything after it to the end of the line, blanks
 *	included (not empty; no control character).  Blank lines and lines
 *	whose first non-blank character is '#' are ignored.  A line over 1023
 *	bytes, a NUL, a missing ':', a control character, a duplicate route,
 *	more than 10000 entries are errors "path:line: what" (-EINVAL) and the
 *	whole file is refused; so is a file over 1 MiB (-EFBIG).  The file
 *	must be a regular file that neither group nor others may read
 *	(tls_private_file_open()), else -EPERM naming it and its mode.
 *
 *	sasl_creds_load() returns 0 with a new set, or -errno with err set;
 *	to reload, load again and swap the pointers only on success.
 *	sasl_creds_find() returns the entry of route (exactly, any case) or
 *	NULL; callers wanting a default look up "*" themselves.
 * OWNERSHIP
 *	Every struct is the caller's, freed by its _free() (NULL allowed);
 *	free clients and servers before their context.  Strings written
 *	through char ** are malloc'd and the caller's to free().  The identity
 *	and error strings belong to their object.  sasl_creds_free() wipes the
 *	passwords before freeing them.
 * THREADS
 *	A sasl_ctx is read-only after sasl_ctx_new(); clients and servers
 *	made from it may run in different threads, each used by one thread
 *	at a time.  A sasl_creds is read-only after loading.
 */
#ifndef SPOOLGATE_SASL_H
#define SPOOLGATE_SASL_H

#include <stdbool.h>
#include <stddef.h>

enum sasl_status {
	SASL_OK,
	SASL_CONTINUE,
	SASL_BAD_CREDENTIALS,
	SASL_MALFORMED,
	SASL_CANCELLED,
	SASL_UNKNOWN_MECH,
	SASL_TRANSITION,
	SASL_TEMPFAIL,
};

struct sasl_ctx;
struct sasl_client;
struct sasl_server;

int sasl_ctx_new(struct sasl_ctx **out);
void sasl_ctx_free(struct sasl_ctx *ctx);
const char *sasl_status_name(enum sasl_status status);

int sasl_client_choose(const char *offered, bool tls, bool allow_plaintext, const char **mech);
int sasl_client_start(struct sasl_ctx *ctx, const char *mech, const char *user,
    const char *password, struct sasl_client **out, char **initial);
enum sasl_status sasl_client_step(struct sasl_client *client, const char *challenge,
    char **response);
bool sasl_client_finished(const struct sasl_client *client);
const char *sasl_client_error(const struct sasl_client *client);
void sasl_client_free(struct sasl_client *client);

/* SCRAM-SHA-256 secrets as stored for one user. */
#define SASL_SCRAM_SALT_MAX	64	/* base64 salt, NUL included */
#define SASL_SCRAM_KEY_MAX	48	/* 32 bytes in base64 (44), NUL included */
struct sasl_scram_secrets {
	unsigned	iterations;			/* 4096 or more */
	char		salt[SASL_SCRAM_SALT_MAX];	/* base64 */
	char		stored_key[SASL_SCRAM_KEY_MAX];	/* base64 */
	char		server_key[SASL_SCRAM_KEY_MAX];	/* base64 */
};

#define SASL_CRAM_SECRET_MAX	256	/* bytes, NUL included */

struct sasl_server_ops {
	int (*check_password)(void *arg, const char *user, const char *password);
	int (*scram_secrets)(void *arg, const char *user, struct sasl_scram_secrets *out);
	int (*cram_secret)(void *arg, const char *user, char *out, size_t outlen);
};

bool sasl_server_supports(const char *mech);
const char *sasl_mech_at(size_t i, bool *sends_password, int *strength);
const char *sasl_mech_lookup(const char *mech, bool *sends_password, int *strength);
bool sasl_mech_opt_in(const char *mech);
enum sasl_status sasl_server_start(struct sasl_ctx *ctx, const char *mech,
    const struct sasl_server_ops *ops, void *arg, struct sasl_server **out);
enum sasl_status sasl_server_step(struct sasl_server *server, const char *response,
    char **challenge);
const char *sasl_server_identity(const struct sasl_server *server);
const char *sasl_server_error(const struct sasl_server *server);
void sasl_server_free(struct sasl_server *server);

int sasl_scram_secrets_make(const char *password, unsigned iterations, const char *salt,
    struct sasl_scram_secrets *out);

struct sasl_cred {
	char	       *route;
	char	       *user;
	char	       *password;
	unsigned	line;		/* where it was read */
};
struct sasl_creds;

int sasl_creds_load(const char *path, struct sasl_creds **out, char *err, size_t errlen);
const struct sasl_cred *sasl_creds_find(const struct sasl_creds *creds, const char *route);
size_t sasl_creds_count(const struct sasl_creds *creds);
void sasl_creds_free(struct sasl_creds *creds);

#endif
