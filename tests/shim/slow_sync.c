/*
 * NAME
 *	slow_sync - an LD_PRELOAD shim that makes fdatasync(2) slow
 * SYNOPSIS
 *	LD_PRELOAD=libslow_sync.so SPOOLGATE_SLOW_FDATASYNC_MS=3000 spoolgate-smtpd ...
 * DESCRIPTION
 *	For tests only (tests/integration/test_responsive.py): every
 *	fdatasync() sleeps SPOOLGATE_SLOW_FDATASYNC_MS milliseconds before it
 *	does its work, as on a disk whose flushes are slow.  The test shows
 *	that other sessions are served meanwhile (the event loop never
 *	syncs) and that the commits waiting meanwhile share one batch.
 *	fsync(2) is left alone, so start-up recovery is not slowed.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd);

int
fdatasync(int fd)
{
	static int (*real_fdatasync)(int);
	const char *ms = getenv("SPOOLGATE_SLOW_FDATASYNC_MS");

	if (real_fdatasync == NULL)
		real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (ms != NULL) {
		long v = strtol(ms, NULL, 10);
		struct timespec ts = { v / 1000, (v % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) != 0)
			;
	}
	return real_fdatasync(fd);
}
