/*
 * NAME
 *	access - who may see and use what under a mount shared by Unix users
 * SYNOPSIS
 *	#include "access.h"
 *
 *	bool access_sees_all(const struct access_caller *c);
 *	void access_mailbox_owner(const struct cfg *cfg, const char *mailbox,
 *			uid_t *uid, gid_t *gid);
 *	int access_mailbox(const struct cfg *cfg, const struct access_caller *c,
 *			const char *mailbox);
 *	void access_mailbox_attr(const struct cfg *cfg, const char *mailbox,
 *			struct stat *st);
 *	int access_record_submitter(int recfd, uid_t *uid);
 *	int access_record(const struct access_caller *c, int recfd);
 *	void access_record_attr(int recfd, struct stat *st);
 *	int access_outfile(const struct access_caller *c, uid_t owner);
 * DESCRIPTION
 *	With [fs] allow_other every local user may use the mount, and the
 *	mount follows Unix users (spoolfs.c applies these rules only then;
 *	without allow_other only the user who mounted it gets in):
 *
 *	  - inbox/<mailbox>/ belongs to the user [fs] mailbox_owners maps it
 *	    to, else to the user of the mailbox's name, else (no such user:
 *	    "alerts", "postmaster") to root: access_mailbox_owner().  Only that
 *	    user and root may look it up, list it and read and remove its
 *	    messages; anyone else gets -EACCES (access_mailbox()), also for a
 *	    mailbox that does not exist, so that a guessed name tells nothing,
 *	    and listings of inbox/ show a user only its own mailboxes.
 *	    access_mailbox_attr() gives the attributes that say so, of the
 *	    mailbox or one of its messages: owner and group the owner's, mode
 *	    0700 (a message 0400).
 *	  - queue/, sent/, failed/ show a user only what it submitted: the
 *	    uid in the record's origin (unixuser_origin_uid()) is the
 *	    caller's; anything else, a message received by SMTP among them,
 *	    is root's alone.  access_record() is 0 or -ENOENT (the record is
 *	    not there for that user); access_record_submitter() reads the
 *	    uid (-ENOENT: none, -EIO: unreadable); access_record_attr() makes
 *	    the file the submitter's (root's without one), mode 0400.
 *	  - an outbox/ file (a draft, or a name that lingers after its
 *	    submission) is open to its writer and root only: access_outfile()
 *	    is 0 or -EACCES; it is created 0600, owned by its writer, and
 *	    outbox/ is 1777, as /tmp: anyone may create a file there, only its
 *	    owner may remove or rename it.  Names in outbox/ are one namespace
 *	    for all users (a name taken by another user's file is EEXIST).
 *	  - root (uid 0) sees and may use everything: access_sees_all().
 *
 *	Why the daemon checks every request itself: all users share the
 *	kernel's caches of names and attributes, so a name one user looked
 *	up may be used by another without a LOOKUP reaching the daemon.  The
 *	mount keeps default_permissions, and the attributes above make the
 *	kernel refuse the same things (a mailbox of mode 0700 owned by bob
 *	cannot be listed or entered by alice), and spoolfs.c checks the
 *	caller (fuse_req_ctx) again at LOOKUP, OPENDIR, OPEN, UNLINK, RENAME
 *	and SETATTR, and filters each listing for its caller at OPENDIR.
 *	Names that are filtered per user (mailboxes, records) are given to
 *	the kernel with an entry timeout of 0, so that every path walk asks
 *	the daemon again: a name cached for one user never answers a stat of
 *	another's.
 * THREADS
 *	Thread-safe (getpwnam_r, reads of the caller's descriptors).
 */
#ifndef SPOOLGATE_FS_ACCESS_H
#define SPOOLGATE_FS_ACCESS_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cfg.h"

/* Who asks: the uid and gid of the process behind a request (fuse_req_ctx). */
struct access_caller {
	uid_t		uid;
	gid_t		gid;
};

bool access_sees_all(const struct access_caller *c);
void access_mailbox_owner(const struct cfg *cfg, const char *mailbox, uid_t *uid, gid_t *gid);
int access_mailbox(const struct cfg *cfg, const struct access_caller *c, const char *mailbox);
void access_mailbox_attr(const struct cfg *cfg, const char *mailbox, struct stat *st);
int access_record_submitter(int recfd, uid_t *uid);
int access_record(const struct access_caller *c, int recfd);
void access_record_attr(int recfd, struct stat *st);
int access_outfile(const struct access_caller *c, uid_t owner);

#endif
