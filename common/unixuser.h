/*
 * NAME
 *	unixuser - Unix users as the mail system sees them
 * SYNOPSIS
 *	#include "unixuser.h"
 *
 *	void unixuser_login(uid_t uid, char *out, size_t outlen);
 *	int unixuser_sender(const struct cfg *cfg, const char *login,
 *			const char *want, char *out, size_t outlen);
 *	int unixuser_mailbox_owner(const struct cfg *cfg, const char *mailbox,
 *			uid_t *uid, gid_t *gid);
 *	int unixuser_origin_uid(const char *origin, uid_t *uid);
 * DESCRIPTION
 *	A message submitted on this machine (an outbox/ file of spoolgate-fs,
 *	a drop of spoolgate-sendmail) comes from a Unix user, and a local
 *	mailbox belongs to one.  These are the rules both daemons and the
 *	sendmail command share.
 *
 *	unixuser_login() writes the login name of uid into out ("uid<N>" when
 *	the password database has no entry for it; always NUL-terminated).
 *
 *	unixuser_sender() writes into out the envelope sender a user may use:
 *	want (NULL: none asked for; "" the null sender) when login is one of
 *	[sendmail] trusted_users, else the user's own address,
 *	login@cfg_sender_domain() ([sendmail] sender_domain, else [spool]
 *	hostname).  It returns 0, or -EPERM when want was asked for and is not
 *	the user's own address (addr_same_mailbox(): the domain in any case)
 *	and the user is not trusted (out then holds the user's own address),
 *	-ENAMETOOLONG.  The errno stands for 553 5.7.1 "Sender address
 *	rejected: not owned by user" in the one table (errmap.h).
 *
 *	unixuser_mailbox_owner() is the Unix user a local mailbox belongs to:
 *	the login [fs] mailbox_owners maps it to, else the user whose login is
 *	the mailbox's name (cfg_mailbox_owner()).  0 with *uid and *gid (the
 *	user's primary group) set, or -ENOENT when no such user exists (the
 *	caller decides: spoolgate-fs gives such a mailbox to root).
 *
 *	unixuser_origin_uid() reads the submitter's uid from an envelope's
 *	origin ("fs outbox/<name> uid=<uid> user=<login>", "sendmail
 *	uid=<uid> user=<login>", envelope.h): the value of the last " uid="
 *	word, so that a file name holding " uid=0" cannot claim another
 *	user's uid (the real one always comes after the name).  0, or
 *	-ENOENT for an origin without one (a message received by SMTP).
 * THREADS
 *	Thread-safe (getpwuid_r, getpwnam_r).
 */
#ifndef SPOOLGATE_UNIXUSER_H
#define SPOOLGATE_UNIXUSER_H

#include <stddef.h>
#include <sys/types.h>

#include "cfg.h"

#define UNIXUSER_LOGIN_MAX	64	/* a login name (or "uid<N>") and its NUL */

void unixuser_login(uid_t uid, char *out, size_t outlen);
int unixuser_sender(const struct cfg *cfg, const char *login, const char *want, char *out, size_t outlen);
int unixuser_mailbox_owner(const struct cfg *cfg, const char *mailbox, uid_t *uid, gid_t *gid);
int unixuser_origin_uid(const char *origin, uid_t *uid);

#endif
