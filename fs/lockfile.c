/*
 * NAME
 *	lockfile - flock(2) through the mount: inbox/<mailbox>/.lock
 * DESCRIPTION
 *	See lockfile.h.  The wait of a blocking lock is a loop of
 *	non-blocking tries on the request's own worker, so that an
 *	interrupted caller is seen (fuse_req_interrupted()) and the descriptor
 *	never sits in a flock(2) that nothing can end.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "lockfile.h"

static atomic_uint lockfile_nwaiting;	/* blocking requests being tried again */

/* 0, or the errno of one flock(2) try that is not "held by another". */
static int
lockfile_try(int fd, int op)
{
	return flock(fd, op) == 0 ? 0 : errno;
}

static void
lockfile_pause(void)
{
	struct timespec ts = { 0, LOCKFILE_POLL_MS * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A blocking op: tried until it is had, fails otherwise, or the caller gives up. */
static int
lockfile_wait(fuse_req_t req, int fd, int op)
{
	int err;

	if (atomic_fetch_add(&lockfile_nwaiting, 1) >= LOCKFILE_WAITERS) {
		atomic_fetch_sub(&lockfile_nwaiting, 1);
		return ENOLCK;
	}
	while ((err = lockfile_try(fd, op | LOCK_NB)) == EWOULDBLOCK) {
		if (fuse_req_interrupted(req)) {
			err = EINTR;
			break;
		}
		lockfile_pause();
	}
	atomic_fetch_sub(&lockfile_nwaiting, 1);
	return err;
}

void
lockfile_flock(fuse_req_t req, int fd, int op)
{
	if (fd < 0)
		return (void) fuse_reply_err(req, ENOLCK);
	if ((op & LOCK_NB) || (op & (LOCK_SH | LOCK_EX)) == 0)
		return (void) fuse_reply_err(req, lockfile_try(fd, op));
	fuse_reply_err(req, lockfile_wait(req, fd, op));
}
