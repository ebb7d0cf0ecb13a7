/*
 * NAME
 *	test_unixuser - unit tests of common/unixuser.c
 * SYNOPSIS
 *	test_unixuser
 * DESCRIPTION
 *	unixuser_origin_uid() over a table of envelope origins: the uid of
 *	an outbox/ submission and of a sendmail drop, with and without the
 *	login after it; a file name that holds " uid=0" does not win over
 *	the real uid written after it; an origin without one (SMTP), a uid
 *	that is no number, has junk after it or does not fit are -ENOENT.
 *
 *	unixuser_login() of root and of a uid without an entry ("uid<N>");
 *	unixuser_mailbox_owner() of root's mailbox, of a mapping
 *	([fs] mailbox_owners) to root, and of a name no user has (-ENOENT).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "unixuser.h"
#include "testutil.h"

static const struct {
	const char     *origin;
	int		want;
	unsigned long	uid;
} origins[] = {
	{ "fs outbox/report.eml uid=1000", 0, 1000 },
	{ "fs outbox/report.eml uid=1000 user=alice", 0, 1000 },
	{ "sendmail uid=0 user=root", 0, 0 },
	{ "sendmail drop/1.2.3.4 uid=4242", 0, 4242 },
	{ "fs outbox/x uid=0 uid=1001 user=bob", 0, 1001 },	/* a name "x uid=0" forges nothing */
	{ "fs outbox/x uid=0 user=y uid=1002 user=bob", 0, 1002 },
	{ "smtp 127.0.0.1", -ENOENT, 0 },
	{ "fs outbox/x uid=", -ENOENT, 0 },
	{ "fs outbox/x uid=12a", -ENOENT, 0 },
	{ "fs outbox/x uid=-1", -ENOENT, 0 },
	{ "fs outbox/x uid=99999999999999999999", -ENOENT, 0 },
	{ "fs outbox/xuid=5", -ENOENT, 0 },
	{ "", -ENOENT, 0 },
};

START_TEST(test_origin_uid)
{
	uid_t uid = 77;
	int r = unixuser_origin_uid(origins[_i].origin, &uid);

	ck_assert_msg(r == origins[_i].want, "'%s': %d, want %d", origins[_i].origin, r, origins[_i].want);
	if (r == 0)
		ck_assert_uint_eq(uid, origins[_i].uid);
}
END_TEST

START_TEST(test_login)
{
	char out[UNIXUSER_LOGIN_MAX];

	unixuser_login(0, out, sizeof(out));
	ck_assert_str_eq(out, "root");
	unixuser_login(3999999999u, out, sizeof(out));
	ck_assert_str_eq(out, "uid3999999999");
}
END_TEST

START_TEST(test_mailbox_owner)
{
	struct cfg cfg;
	uid_t uid = 77;
	gid_t gid = 77;

	cfg_defaults(&cfg);
	ck_assert_int_eq(unixuser_mailbox_owner(&cfg, "root", &uid, &gid), 0);
	ck_assert_uint_eq(uid, 0);
	ck_assert_int_eq(unixuser_mailbox_owner(&cfg, "no-such-user-sg", &uid, &gid), -ENOENT);
	cfg.mailbox_owners[0] = strdup("no-such-user-sg:root");
	cfg.n_mailbox_owners = 1;
	uid = 77;
	ck_assert_int_eq(unixuser_mailbox_owner(&cfg, "no-such-user-sg", &uid, &gid), 0);
	ck_assert_uint_eq(uid, 0);
	cfg_free(&cfg);
}
END_TEST

static Suite *
unixuser_suite(void)
{
	Suite *s = suite_create("unixuser");
	TCase *tc = tcase_create("origin");

	tcase_add_loop_test(tc, test_origin_uid, 0, (int)(sizeof(origins) / sizeof(origins[0])));
	suite_add_tcase(s, tc);
	tc = tcase_create("users");
	tcase_add_test(tc, test_login);
	tcase_add_test(tc, test_mailbox_owner);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(unixuser_suite());
}
