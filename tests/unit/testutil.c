/*
 * NAME
 *	testutil - what every Check unit test of spoolgate needs
 * DESCRIPTION
 *	See testutil.h.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

int
testutil_run(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

void
testutil_mkdtemp(char *out, size_t len, const char *tag)
{
	snprintf(out, len, "/tmp/sg-%s-XXXXXX", tag);
	if (mkdtemp(out) == NULL) {
		perror("mkdtemp");
		exit(EXIT_FAILURE);
	}
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void
testutil_rmtree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
