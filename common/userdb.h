/*
 * NAME
 *	userdb - the SMTP server's users: SCRAM keys, crypt(3) hashes, senders
 * SYNOPSIS
 *	#include "userdb.h"
 *
 *	int userdb_new(struct userdb **out);
 *	int userdb_load(const char *path, struct userdb **out,
 *	    char *err, size_t errlen);
 *	void userdb_free(struct userdb *db);
 *	size_t userdb_count(const struct userdb *db);
 *	const struct userdb_user *userdb_at(const struct userdb *db, size_t i);
 *	const struct userdb_user *userdb_find(const struct userdb *db,
 *	    const char *name);
 *
 *	int userdb_scram(const struct userdb *db, const struct userdb *derived,
 *	    const char *name, struct sasl_scram_secrets *out);
 *	int userdb_cram(const struct userdb *db, const char *name, char *out,
 *	    size_t outlen);
 *	int userdb_check_password(const struct userdb_user *user,
 *	    const char *password);
 *	bool userdb_may_send_as(const struct userdb_user *user, const char *addr);
 *
 *	int userdb_crypt_make(const char *password, char *out, size_t outlen);
 *	int userdb_set(struct userdb *db, const char *name,
 *	    const struct sasl_scram_secrets *scram, const char *crypt);
 *	int userdb_set_cram(struct userdb *db, const char *name,
 *	    const char *secret);
 *	int userdb_set_cram(struct userdb *db, const char *name, const char *secret);
int userdb_set_senders(struct userdb *db, const char *name,
 *	    const char *list, char *err, size_t errlen);
 *	int userdb_del(struct userdb *db, const char *name);
 *	int userdb_format(const struct userdb *db, char **out, size_t *len);
 *	int userdb_file_prepare(int dirfd, const char *tmpname, const char *buf,
 *	    size_t len, const struct stat *owner);
 *	int userdb_write(const char *path, const struct userdb *db,
 *	    char *err, size_t errlen);
 * DESCRIPTION
 *	The credentials of the people who may AUTH to the SMTP server
 *	(RFC 4954), one user per line; plaintext passwords are never stored:
 *
 *	    # name    secrets and senders, as key=value words
 *	    alice@example.org scram=4096:c2FsdA==:<stored key>:<server key> from=alice@example.org,@example.net
 *	    bob       crypt=$y$j9T$...$...
 *
 *	A line is a user name (1 to 255 printable ASCII characters, no
 *	blank, not starting with '#'), then blank-separated words, each at
 *	most once:
 *	    scram=ITERATIONS:SALT:STOREDKEY:SERVERKEY
 *	        the SCRAM-SHA-256 salted key (RFC 5802, RFC 7677): iterations
 *	        4096..1000000, the salt and both keys in base64 (each key 32
 *	        bytes), as `gsasl --mkpasswd --mechanism SCRAM-SHA-256` prints
 *	        them;
 *	    crypt=HASH
 *	        a crypt(3) hash from libxcrypt ("$y$..." yescrypt by default;
 *	        any "$id$" hash crypt(3) knows), at most 255 characters of
 *	        [./0-9A-Za-z$];
 *	    from=ADDR[,ADDR...]
 *	        the envelope senders the user may use where the listener
 *	        restricts senders (restrict_sender): a whole address, or
 *	        "@domain" for any address of that domain; at most 32;
 *	    cram-md5=SECRET
 *	        opt-in, for CRAM-MD5 (RFC 2195) only: the secret itself in
 *	        base64 (1 to 255 bytes, no control character).  It is a
 *	        PASSWORD EQUIVALENT: whoever reads the file can log in as the
 *	        user with CRAM-MD5.  Written only by spoolgate-passwd
 *	        --cram-md5, for a client that knows no other mechanism
 *	        (fetchmail's ODMR mode).
 *	At least one of scram and crypt is required (cram-md5 alone is not a
 *	user: PLAIN and LOGIN check crypt or scram, never the CRAM secret).  Blank lines and lines
 *	whose first non-blank character is '#' are ignored.  A line over 4095
 *	bytes, a NUL or control character, an unknown or repeated key, a bad
 *	value, a user named twice, more than 100000 users are errors
 *	"path:line: what" (-EINVAL), and the whole file is refused; so is a
 *	file over 16 MiB (-EFBIG).  The file must be a regular file that
 *	neither group nor others may read (tls_private_file_open(): -EPERM).
 *
 *	userdb_new() makes an empty set; userdb_load() reads a file.  To
 *	reload, load again and swap the pointers only on success.
 *	userdb_find() finds a user by exact name (case-sensitive, as local
 *	parts are); userdb_count() and userdb_at() walk the set in name order.
 *
 *	userdb_scram() gives the SCRAM secrets of name for sasl.h's
 *	scram_secrets callback: the user's own scram= when set; else those of
 *	derived (a second set: see TRANSITION) when derived has name with the
 *	very crypt= hash the user has now; else -ENOKEY (the user needs a
 *	password transition: 432 4.7.12).  -ENOENT when db has no such user.
 *
 *	userdb_cram() copies the CRAM-MD5 secret of name into out (0), or
 *	returns -ENOENT when there is no such user or it has none,
 *	-ENAMETOOLONG when out is too small.
 *
 *	userdb_check_password() checks a password (PLAIN, LOGIN): against
 *	the crypt hash when the user has one (crypt_rn()), else by deriving
 *	the SCRAM keys with the stored salt and iterations; the comparison
 *	takes the same time wherever the strings differ; a user that does not
 *	exist (NULL) costs a yescrypt check too, so that timing does not tell
 *	which names exist.  0 when it matches,
 *	-EACCES when not, -ENOMEM, -EINVAL for a hash crypt(3) cannot use.
 *
 *	userdb_may_send_as() tells whether addr (an envelope sender without
 *	brackets) is one of the user's from= entries (domains compared
 *	case-insensitively, local parts exactly); a user without from= may
 *	send only as its own name.  The null sender is always allowed
 *	(bounces carry it).
 *
 *	For spoolgate-passwd and the daemon's transition store:
 *	userdb_crypt_make() hashes a password with a fresh yescrypt salt
 *	(crypt_gensalt_rn("$y$"), crypt_rn()) into out (at least
 *	USERDB_CRYPT_MAX).  userdb_set() adds name or replaces its secrets
 *	(NULL scram or crypt: none of that kind; at least one is required),
 *	keeping its senders and dropping its CRAM-MD5 secret (a new password
 *	must not leave the old one valid); userdb_set_cram() sets name's
 *	CRAM-MD5 secret (NULL removes it; -ENOENT without the user, -EINVAL
 *	for a secret the file could not hold); userdb_set_senders() replaces them with a comma
 *	list (checked as in the file; "" removes them); userdb_del() removes
 *	a user (-ENOENT when there is none).  userdb_format() writes the set
 *	in the file format (malloc'd, the caller's to free).
 *
 *	userdb_file_prepare() writes buf into dirfd/tmpname (a stale one is
 *	replaced) with mode 0600, gives it owner's uid and gid when owner is
 *	not NULL, and fsyncs it.  userdb_write() is the whole atomic rewrite
 *	of path: a temporary beside it, prepared so, with the owner of the
 *	file it replaces, renamed over it, then the directory fsync'd.
 * TRANSITION
 *	A user who has only a crypt hash cannot use SCRAM: the server needs
 *	the salted key, which only the password gives.  After that user's
 *	PLAIN or LOGIN succeeded, the daemon derives the SCRAM keys from the
 *	password it just checked and keeps them in a second set of its own
 *	(<spool>/auth/scram-derived, same format, each entry with the crypt
 *	hash it was derived from).  A new password (spoolgate-passwd add)
 *	changes the hash, so the derived key of the old one is ignored.
 * ERRORS
 *	0 or -errno; loading writes a message naming the file (and line)
 *	into err.  -ENOMEM when out of memory.
 * OWNERSHIP
 *	A struct userdb is the caller's (userdb_free(), NULL allowed); users
 *	and their strings belong to it and live until it is freed or changed.
 *	userdb_free() wipes the secrets.
 * THREADS
 *	A set is read-only after loading and may then be read from any
 *	thread; userdb_set(), userdb_del() need the only reference.
 *	userdb_check_password() is thread-safe (crypt_rn() with its own
 *	buffer); it costs what the hash costs (yescrypt: tens of ms).
 */
#ifndef SPOOLGATE_USERDB_H
#define SPOOLGATE_USERDB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "sasl.h"

#define USERDB_NAME_MAX		255
#define USERDB_CRYPT_MAX	256	/* NUL included */
#define USERDB_SENDERS_MAX	32
#define USERDB_CRAM_MAX		SASL_CRAM_SECRET_MAX	/* NUL included */
#define USERDB_SCRAM_ITER_MIN	4096
#define USERDB_SCRAM_ITER_MAX	1000000
#define USERDB_SCRAM_ITER_DEFAULT 4096

struct userdb_user {
	char	       *name;
	bool		has_scram;
	struct sasl_scram_secrets scram;
	char	       *crypt;		/* NULL when none */
	char	       *cram;		/* CRAM-MD5 secret (password equivalent), NULL when none */
	char	       *senders[USERDB_SENDERS_MAX];
	size_t		nsenders;
	unsigned	line;		/* where it was read, 0 when set */
};

struct userdb;

int userdb_new(struct userdb **out);
int userdb_load(const char *path, struct userdb **out, char *err, size_t errlen);
void userdb_free(struct userdb *db);
size_t userdb_count(const struct userdb *db);
const struct userdb_user *userdb_at(const struct userdb *db, size_t i);
const struct userdb_user *userdb_find(const struct userdb *db, const char *name);

int userdb_scram(const struct userdb *db, const struct userdb *derived, const char *name,
    struct sasl_scram_secrets *out);
int userdb_cram(const struct userdb *db, const char *name, char *out, size_t outlen);
int userdb_check_password(const struct userdb_user *user, const char *password);
bool userdb_may_send_as(const struct userdb_user *user, const char *addr);

int userdb_crypt_make(const char *password, char *out, size_t outlen);
int userdb_set(struct userdb *db, const char *name, const struct sasl_scram_secrets *scram,
    const char *crypt);
int userdb_set_cram(struct userdb *db, const char *name, const char *secret);
int userdb_set_senders(struct userdb *db, const char *name, const char *list, char *err, size_t errlen);
int userdb_del(struct userdb *db, const char *name);
int userdb_format(const struct userdb *db, char **out, size_t *len);
int userdb_file_prepare(int dirfd, const char *tmpname, const char *buf, size_t len,
    const struct stat *owner);
int userdb_write(const char *path, const struct userdb *db, char *err, size_t errlen);

#endif
