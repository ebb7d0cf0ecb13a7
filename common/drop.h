/*
 * NAME
 *	drop - messages left by spoolgate-sendmail for the gateway to queue
 * SYNOPSIS
 *	#include "drop.h"
 *
 *	int drop_record_format(const struct drop_record *d, char **out, size_t *outlen);
 *	int drop_record_parse(const char *buf, size_t len, struct drop_record *d);
 *	void drop_record_free(struct drop_record *d);
 *	void drop_policy(const struct drop_record *d, const struct cfg *cfg,
 *			const char *own, struct outbox_policy *pol);
 *	int drop_create(int dirfd, char name[DROP_NAME_MAX], char tmp[DROP_NAME_MAX]);
 *	int drop_commit(int dirfd, int fd, const char *tmp, const char *name);
 * DESCRIPTION
 *	The spool belongs to the gateway's user and no one else may write it.
 *	spoolgate-sendmail runs as whoever calls it, set-group-id to [sendmail]
 *	group, which may write one directory only: <spool>/drop/, mode 1730
 *	(the gateway's user: rwx; the group: wx, so a writer can create a file
 *	there but neither list the directory nor read another's file; the
 *	sticky bit keeps writers from renaming or removing each other's).  This
 *	is Postfix's maildrop and postdrop.  A drop is one file:
 *
 *	    spoolgate-drop: 1
 *	    uid: 1000
 *	    sender: <alice@gw.example>
 *	    extract: no
 *	    full-name: Alice Example
 *	    rcpt: bob@example.org
 *	    rcpt: root
 *	    <empty line>
 *	    <the message, LF line endings>
 *
 *	uid is what the writer says it is; sender the envelope sender it
 *	chose (unixuser_sender(), unixuser.h: a trusted user's own choice, else
 *	login@sender_domain), "<>" the null one; extract whether To:, Cc: and
 *	Bcc: name recipients too (-t); full-name (optional) the -F name for a
 *	From: the message lacks; each rcpt a recipient given outside the
 *	message, as given ("root" is qualified later).  Nothing in a drop is
 *	trusted: the gateway (smtpd/pickup.c) takes the uid from the file's
 *	owner and refuses a drop that claims another, decides the sender
 *	again, and checks the message with outbox_submit() as if it had never
 *	been checked.
 *
 *	drop_record_parse() reads the record at the start of buf strictly (a
 *	writer may be hostile): the keys above in that order, rcpt at most
 *	DROP_MAX_RCPT times, values of printable characters (UTF-8 allowed in
 *	full-name only), the whole record within DROP_RECORD_MAX octets.  It
 *	sets d->msg_start to the offset of the message.  -EBADMSG with
 *	nothing allocated otherwise.  drop_record_format() writes what parses
 *	back equal; -EINVAL for a value that would not.
 *
 *	drop_policy() fills pol (outbox.h) for d: its sender, rcpt and
 *	extract, qualify_domain = cfg_sender_domain(), and a From: of own
 *	(the user's address) with the full name for a message without one.
 *	pol points into d, which must outlive it.
 *
 *	drop_create() creates ".<name>" in dirfd (O_CREAT|O_EXCL|O_NOFOLLOW,
 *	mode 0604: the gateway reads it as "other"; the drop group, by which
 *	every writer gets in, may not) and returns its descriptor, or -errno.
 *	Names are "<sec>.<usec>.<pid>.<random>".  drop_commit() makes it
 *	durable and visible: fdatasync, rename to name, then spool_fs_sync()
 *	on the file's descriptor (syncfs(2) of its filesystem, and an fsync
 *	that flushes what syncfs wrote last), because a writer may not open
 *	drop/ to fsync it (it has no read permission there).  Files whose name starts with '.'
 *	are the gateway's to ignore (and to remove after DROP_STALE_SECONDS).
 * ERRORS
 *	0 or -errno; -EBADMSG for a record that does not parse.
 * THREADS
 *	Pure functions, and system calls on the caller's descriptors.
 */
#ifndef SPOOLGATE_DROP_H
#define SPOOLGATE_DROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cfg.h"
#include "outbox.h"

#define DROP_DIR		"drop"
#define DROP_RECORD_MAX		(256u << 10)	/* octets before the message */
#define DROP_MAX_RCPT		1000		/* recipients given outside the message */
#define DROP_VALUE_MAX		512		/* one value */
#define DROP_NAME_MAX		96
#define DROP_FILE_MODE		0604
#define DROP_DIR_MODE		01730
#define DROP_STALE_SECONDS	(24 * 3600)	/* a ".name" of a writer that died */

struct drop_record {
	unsigned long	uid;		/* as the writer says */
	char	       *sender;		/* "" for <> */
	bool		extract;	/* -t */
	char	       *full_name;	/* -F, or NULL */
	char	      **rcpt;
	size_t		nrcpt;
	off_t		msg_start;	/* set by drop_record_parse() */
};

int drop_record_format(const struct drop_record *d, char **out, size_t *outlen);
int drop_record_parse(const char *buf, size_t len, struct drop_record *d);
void drop_record_free(struct drop_record *d);
void drop_policy(const struct drop_record *d, const struct cfg *cfg, const char *own,
		struct outbox_policy *pol);
int drop_create(int dirfd, char name[DROP_NAME_MAX], char tmp[DROP_NAME_MAX]);
int drop_commit(int dirfd, int fd, const char *tmp, const char *name);

#endif
