/*
 * NAME
 *	testutil - what every Check unit test of spoolgate needs
 * SYNOPSIS
 *	#include "testutil.h"
 *
 *	int testutil_run(Suite *suite);
 *	void testutil_mkdtemp(char *out, size_t len, const char *tag);
 *	void testutil_rmtree(const char *path);
 * DESCRIPTION
 *	testutil_run() runs a suite and returns the exit status for main():
 *	EXIT_SUCCESS when no test failed.
 *
 *	testutil_mkdtemp() makes /tmp/sg-<tag>-XXXXXX and writes its path into
 *	out; it exits the process when it cannot (no test could run).
 *
 *	testutil_rmtree() removes a tree, without crossing into file systems
 *	mounted below it.
 */
#ifndef SPOOLGATE_TESTUTIL_H
#define SPOOLGATE_TESTUTIL_H

#include <check.h>
#include <stddef.h>

int testutil_run(Suite *suite);
void testutil_mkdtemp(char *out, size_t len, const char *tag);
void testutil_rmtree(const char *path);

#endif
