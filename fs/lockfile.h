/*
 * NAME
 *	lockfile - flock(2) through the mount: inbox/<mailbox>/.lock
 * SYNOPSIS
 *	#define FUSE_USE_VERSION 35
 *	#include <fuse_lowlevel.h>
 *	#include "lockfile.h"
 *
 *	void lockfile_flock(fuse_req_t req, int fd, int op);
 * DESCRIPTION
 *	A script reorganising a mailbox locks it through the mount as it
 *	would on the spool (mboxlock.h):
 *
 *	    flock /mnt/mail/inbox/bob/.lock -c reorganise
 *
 *	spoolfs.c opens inbox/<mailbox>/.lock as the spool's
 *	mail/<mailbox>/.lock (mboxlock_open(), created when missing), one
 *	descriptor of the daemon per open file, closed at release: closing
 *	it drops the lock, as closing the last descriptor of a file does.
 *	The daemon asks the kernel for FUSE_CAP_FLOCK_LOCKS, so the kernel
 *	sends every flock(2) on the mount as a request, and
 *	lockfile_flock() applies op (LOCK_SH, LOCK_EX, LOCK_UN, LOCK_NB) to
 *	that descriptor with flock(2): smtpd's shared probe sees the lock
 *	(450 4.2.0) and two holders through the mount exclude each other.
 *
 *	A non-blocking op (LOCK_NB) or LOCK_UN is answered at once
 *	(EWOULDBLOCK when held).  A blocking one must not hold a worker of
 *	the session loop for as long as another holder likes: it is tried
 *	again every LOCKFILE_POLL_MS on its own worker, at most
 *	LOCKFILE_WAITERS of them at a time (one more gets ENOLCK, "no locks
 *	available"), and ends with EINTR when the caller is interrupted
 *	(Ctrl-C: the kernel interrupts the request).
 *
 *	Files other than .lock with a descriptor of their own (messages,
 *	records) are locked on that descriptor the same way; outbox/ files
 *	and .next have none and answer ENOLCK.
 * THREADS
 *	Any worker; it uses only fd, which stays open until the kernel's
 *	release, which cannot come while a flock(2) on the file is running.
 */
#ifndef SPOOLGATE_LOCKFILE_H
#define SPOOLGATE_LOCKFILE_H

#define LOCKFILE_POLL_MS	20
#define LOCKFILE_WAITERS	4

void lockfile_flock(fuse_req_t req, int fd, int op);

#endif
