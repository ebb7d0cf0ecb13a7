/*
 * NAME
 *	recover - spoolgate-smtpd's start-up recovery, alone, on a spool
 * SYNOPSIS
 *	recover SPOOL HOSTNAME
 * DESCRIPTION
 *	Opens the spool SPOOL as the daemons do, with HOSTNAME as its
 *	[spool] hostname (whose claims and temporaries recovery knows as its
 *	own), and runs spool_recover() on it: what a boot after a power cut
 *	gives the spool before anything reads it.  test_powercut.py runs it
 *	on each power-cut state, then checks the spool.  Recovery's log
 *	lines (recovery-record-dropped, ...) go to standard error; the
 *	counts to standard output as one line of key=value.
 * EXIT STATUS
 *	0, or 1 when the spool does not open or recovery fails.
 * SECURITY
 *	A test tool, never installed.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "spool.h"

int
main(int argc, char **argv)
{
	struct spool_recovery rec;
	struct spool *spool;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: recover SPOOL HOSTNAME\n");
		return 1;
	}
	log_init("recover", LOG_LVL_INFO);
	if ((r = spool_open(argv[1], &spool)) < 0) {
		fprintf(stderr, "recover: %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	spool_set_hostname(spool, argv[2]);
	if ((r = spool_recover(spool, &rec)) < 0) {
		fprintf(stderr, "recover: %s: recovery: %s\n", argv[1], strerror(-r));
		spool_close(spool);
		return 1;
	}
	printf("temporaries_removed=%u claims_returned=%u records_dropped=%u records_superseded=%u "
	    "orphans_removed=%u queued=%u\n", rec.temporaries_removed, rec.claims_returned,
	    rec.records_dropped, rec.records_superseded, rec.orphans_removed, rec.queued);
	spool_close(spool);
	return 0;
}
