/*
 * NAME
 *	slow_sync - an LD_PRELOAD shim that makes fdatasync(2) and syncfs(2) slow
 * SYNOPSIS
 *	LD_PRELOAD=libslow_sync.so SPOOLGATE_SLOW_FDATASYNC_MS=3000 spoolgate-smtpd ...
 *	LD_PRELOAD=libslow_sync.so SPOOLGATE_SLOW_FDATASYNC_MS=1500 \
 *	    SPOOLGATE_SLOW_FSYNC_MS=1500 spoolgate-fs ...
 * DESCRIPTION
 *	For tests only (tests/integration/test_responsive.py, test_fs.py):
 *	every fdatasync() sleeps SPOOLGATE_SLOW_FDATASYNC_MS milliseconds
 *	before it does its work, as on a disk whose flushes are slow, and so
 *	does every syncfs() (the committer's one sync for a batch of relay
 *	records, which stands for their fdatasyncs).  The
 *	tests show that other sessions and requests are served meanwhile
 *	and that the commits waiting meanwhile share one batch.  fsync(2)
 *	(the spool's directory syncs) sleeps SPOOLGATE_SLOW_FSYNC_MS when
 *	that is set, and is left alone otherwise, so that smtpd's start-up
 *	recovery is not slowed.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd);
int fsync(int fd);
int syncfs(int fd);

/* Sleeps the milliseconds the variable name holds, if it is set. */
static void
slow_down(const char *name)
{
	const char *ms = getenv(name);

	if (ms != NULL) {
		long v = strtol(ms, NULL, 10);
		struct timespec ts = { v / 1000, (v % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) != 0)
			;
	}
}

/* Defines fn(int fd): sleeps the milliseconds the variable env holds (if set), then does the real fn. */
#define SLOW_SYNC_CALL(fn, env)						\
int									\
fn(int fd)								\
{									\
	static int (*real)(int);					\
									\
	if (real == NULL)						\
		real = (int (*)(int))dlsym(RTLD_NEXT, #fn);		\
	slow_down(env);							\
	return real(fd);						\
}

SLOW_SYNC_CALL(fdatasync, "SPOOLGATE_SLOW_FDATASYNC_MS")
SLOW_SYNC_CALL(fsync, "SPOOLGATE_SLOW_FSYNC_MS")
SLOW_SYNC_CALL(syncfs, "SPOOLGATE_SLOW_FDATASYNC_MS")
