/*
 * NAME
 *	mboxlock - a mailbox that a script has locked: 450 4.2.0
 * SYNOPSIS
 *	#include "mboxlock.h"
 *
 *	int mboxlock_shared(const struct spool *spool, const char *mailbox, int *fd);
 *	int mboxlock_open(const struct spool *spool, const char *mailbox, int *fd);
 *	void mboxlock_release(int fd);
int mboxlock_open(const struct spool *spool, const char *mailbox, int *fd);
 * DESCRIPTION
 *	A script that reorganises a mailbox (moves, renames, expires its
 *	messages) takes an exclusive flock(2) on mail/<mailbox>/.lock in the
 *	spool directory, e.g.
 *
 *	    flock /var/spool/spoolgate/mail/bob/.lock -c reorganise
 *
 *	Deliveries take the same lock shared: mboxlock_shared() opens the
 *	lock file (O_RDONLY | O_NOFOLLOW | O_NONBLOCK, a regular file only)
 *	and tries flock(LOCK_SH | LOCK_NB).  While the script holds its lock
 *	the answer is -EAGAIN, which the errno table makes 450 4.2.0
 *	"Mailbox busy, try again later" (RFC 5321 4.2.2: mailbox unavailable,
 *	try later); the client retries and the message arrives once the lock
 *	is released.  Deliveries do not exclude each other.  A mailbox
 *	without a lock file is never locked (*fd = -1, 0 returned).
 *
 *	smtpd probes at RCPT and takes the lock at the end of the data, holding
 *	it until the message is published in mail/<mailbox>/new, so that a
 *	script that has its lock sees no message appear.
 *
 *	mboxlock_open() opens the lock file, creating it (MBOXLOCK_MODE, owned
 *	by the mailbox directory's owner and group) when the mailbox has none yet, for a holder of its own: spoolgate-fs,
 *	which forwards a flock(2) on inbox/<mailbox>/.lock to it, so that
 *	"flock /mnt/mail/inbox/bob/.lock -c reorganise" takes the same lock.
 * ERRORS
 *	mboxlock_shared(): 0 (locked shared, or no lock file), -EAGAIN (held
 *	exclusively), -EINVAL (a lock file that is no regular file, or a bad
 *	mailbox name), other -errno of open(2) / flock(2).  mboxlock_open():
 *	0, -EINVAL as above, -ENOENT (no such mailbox directory), -errno.
 * OWNERSHIP
 *	*fd belongs to the caller, who releases it with mboxlock_release()
 *	(which takes -1).
 * THREADS
 *	Thread-safe.
 */
#ifndef SPOOLGATE_MBOXLOCK_H
#define SPOOLGATE_MBOXLOCK_H

#include "spool.h"

#define MBOXLOCK_NAME	".lock"
#define MBOXLOCK_MODE	0640	/* a lock file made by mboxlock_open() */

int mboxlock_shared(const struct spool *spool, const char *mailbox, int *fd);
void mboxlock_release(int fd);
int mboxlock_open(const struct spool *spool, const char *mailbox, int *fd);

#endif
