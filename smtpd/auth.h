/*
 * NAME
 *	auth - the SMTP server's side of AUTH: users, derived SCRAM keys, GNU SASL
 * SYNOPSIS
 *	#include "auth.h"
 *
 *	int auth_new(const struct cfg *cfg, struct spool *spool,
 *	    struct commitq *cq, bool needed, struct auth **out);
 *	void auth_reload(struct auth *a);
 *	void auth_free(struct auth *a);
 *
 *	enum sasl_status auth_start(struct auth *a, const char *mech,
 *	    struct auth_exchange **out);
 *	enum sasl_status auth_step(struct auth_exchange *x, const char *response,
 *	    char **challenge);
 *	const char *auth_identity(const struct auth_exchange *x);
 *	const char *auth_error(const struct auth_exchange *x);
 *	void auth_finish(struct auth_exchange *x);
 *
 *	bool auth_may_send_as(const struct auth *a, const char *user,
 *	    const char *addr);
 *	unsigned auth_client_failed(struct auth *a, const char *client);
 *	void auth_client_succeeded(struct auth *a, const char *client);
 * DESCRIPTION
 *	auth_new() reads [smtpd] auth_users (userdb.h) and the SCRAM keys
 *	this daemon derived at password transitions, and makes the GNU SASL
 *	context (sasl.h).  It runs after root was dropped, so the users file
 *	is read at start as at every SIGHUP: by the [spool] user.  When needed
 *	(a listener offers AUTH) and auth_users is not set, it fails (-EINVAL,
 *	logged).  A users file that cannot be loaded does not stop the daemon:
 *	it is logged (event=auth-users, error) and every AUTH then ends in
 *	454 4.7.0 until a SIGHUP loads it.  auth_reload() (SIGHUP) loads the
 *	file again and swaps it in only when it loaded; else the users loaded
 *	before stay (event=auth-users, action="keeping the users loaded
 *	before").
 *
 *	auth_start() begins one exchange (sasl_server_start() with this
 *	module's credential callbacks) and auth_step() takes each response,
 *	as sasl_server_step().  The callbacks look the user up in the set
 *	loaded now: PLAIN and LOGIN check the password (userdb_check_password()),
 *	SCRAM-SHA-256 gets the user's keys (userdb_scram(): its own, else
 *	those derived from its current crypt hash; none: 432 4.7.12).
 *
 *	Password transition: when PLAIN or LOGIN succeeds for a user who has
 *	no SCRAM key, the key is derived (sasl_scram_secrets_make(), a fresh
 *	salt, 4096 iterations) from the password just checked, and
 *	auth_finish() of the successful exchange keeps it: at once in memory
 *	(the next SCRAM of that user succeeds), and durably in
 *	<spool>/auth/scram-derived (userdb.h's format, each entry with the
 *	crypt hash it was derived from), written as a commitq job (a
 *	temporary, fsync, rename, fsync of auth/), never on the event loop.
 *	At most one write is in flight; changes made meanwhile are written
 *	by the next.  The password itself is never kept.
 *
 *	auth_may_send_as() applies restrict_sender: userdb_may_send_as() of
 *	user as it is in the set loaded now (false when it is gone).
 *
 *	auth_client_failed() counts a failed AUTH (535) of a client address
 *	and returns how many it has made, across its sessions: a client that
 *	reconnects does not start again at the shortest delay.  A count is
 *	forgotten 15 minutes after the client's last failure, or when it
 *	succeeds (auth_client_succeeded()).  AUTH_CLIENTS addresses are kept;
 *	a new one takes the place of the one that failed longest ago.
 * DIAGNOSTICS
 *	event=auth-users (loaded, failed), auth-transition (derived, stored,
 *	store-failed).  No line holds a password, a challenge or a key.
 * OWNERSHIP
 *	struct auth is the caller's (auth_free(), after commitq_free(): a
 *	write in flight refers to it).  An exchange is the caller's until
 *	auth_finish(), which frees it and wipes what it held.
 * THREADS
 *	Event loop thread only; the write's prepare and publish run on the
 *	committer, on a copy of the text.
 */
#ifndef SPOOLGATE_AUTH_H
#define SPOOLGATE_AUTH_H

#include <stdbool.h>

#include "../common/cfg.h"
#include "../common/sasl.h"
#include "../common/spool.h"
#include "commitq.h"

struct auth;
struct auth_exchange;

int auth_new(const struct cfg *cfg, struct spool *spool, struct commitq *cq, bool needed,
    struct auth **out);
void auth_reload(struct auth *a);
void auth_free(struct auth *a);

enum sasl_status auth_start(struct auth *a, const char *mech, struct auth_exchange **out);
enum sasl_status auth_step(struct auth_exchange *x, const char *response, char **challenge);
const char *auth_identity(const struct auth_exchange *x);
const char *auth_error(const struct auth_exchange *x);
void auth_finish(struct auth_exchange *x);

bool auth_may_send_as(const struct auth *a, const char *user, const char *addr);
unsigned auth_client_failed(struct auth *a, const char *client);
void auth_client_succeeded(struct auth *a, const char *client);

#endif
