/*
 * NAME
 *	test_drop - unit tests of sendmail drops (common/drop.c) and the
 *	submission policy of outbox.c
 * SYNOPSIS
 *	test_drop
 * DESCRIPTION
 *	A drop record round-trips (format, parse, equal, msg_start right
 *	after the empty line); a table of damaged records, each made from
 *	the good one, is refused (unknown key, keys out of order or twice, no
 *	magic, a uid that is no number or too big, a sender without angle
 *	brackets or with a source route, a control character, no empty line,
 *	more than DROP_MAX_RCPT recipients).
 *
 *	unixuser_sender(): a trusted user's own choice (the null sender too), an
 *	untrusted user's own address and -EPERM for anything else.
 *
 *	outbox_check_headers() under a policy: recipients given outside the
 *	message come first and are qualified ("root" is root@<domain>);
 *	without -t, To: and Cc: name nobody and Bcc: is dropped all the same;
 *	the policy's sender wins over From:; a message without From: is
 *	accepted when the policy adds one; a first line that is no header
 *	makes a headerless message; none of that is allowed for outbox/'s
 *	policy.  A writer with own_sender may name only that address (the
 *	domain in any case) in From: and Sender:, else -EPERM.
 *
 *	drop_create() and drop_commit() in a temporary directory: ".<name>"
 *	with mode 0604 whatever the umask, then "<name>" after the commit.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "drop.h"
#include "outbox.h"
#include "unixuser.h"
#include "testutil.h"

static const char good[] =
    "spoolgate-drop: 1\n"
    "uid: 1000\n"
    "sender: <alice@gw.example>\n"
    "extract: no\n"
    "full-name: Alice \xc3\x89xample\n"
    "rcpt: bob@example.org\n"
    "rcpt: root\n"
    "\n"
    "Subject: hi\n\nbody\n";

START_TEST(test_round_trip)
{
	struct drop_record d, again;
	char *text;
	size_t len;

	ck_assert_int_eq(drop_record_parse(good, sizeof(good) - 1, &d), 0);
	ck_assert_uint_eq(d.uid, 1000);
	ck_assert_str_eq(d.sender, "alice@gw.example");
	ck_assert(!d.extract);
	ck_assert_str_eq(d.full_name, "Alice \xc3\x89xample");
	ck_assert_uint_eq(d.nrcpt, 2);
	ck_assert_str_eq(d.rcpt[1], "root");
	ck_assert_str_eq(good + d.msg_start, "Subject: hi\n\nbody\n");
	ck_assert_int_eq(drop_record_format(&d, &text, &len), 0);
	ck_assert_uint_eq(len, (size_t)d.msg_start);
	ck_assert(memcmp(text, good, len) == 0);
	ck_assert_int_eq(drop_record_parse(text, len, &again), 0);
	ck_assert_uint_eq(again.nrcpt, 2);
	free(text);
	drop_record_free(&again);
	drop_record_free(&d);
}
END_TEST

/* Each damage: replace the first `from` of the good record by `to`. */
static const struct { const char *from, *to; } damages[] = {
	{ "uid: 1000\n", "uid: 1000\nshell: /bin/sh\n" },		/* unknown key */
	{ "uid: 1000\nsender: <alice@gw.example>\n", "sender: <alice@gw.example>\nuid: 1000\n" },
	{ "extract: no\n", "extract: no\nextract: no\n" },		/* twice */
	{ "spoolgate-drop: 1\n", "" },					/* no magic */
	{ "spoolgate-drop: 1\n", "spoolgate-drop: 2\n" },
	{ "uid: 1000\n", "uid: -1\n" },
	{ "uid: 1000\n", "uid: 99999999999\n" },
	{ "uid: 1000\n", "uid: 10x\n" },
	{ "<alice@gw.example>", "alice@gw.example" },
	{ "<alice@gw.example>", "<@relay:alice@gw.example>" },	/* not canonical */
	{ "extract: no\n", "extract: maybe\n" },
	{ "full-name: Alice", "full-name: Al\rice" },
	{ "rcpt: root\n", "rcpt: ro\x01ot\n" },
	{ "rcpt: root\n", "rcpt: r\xc3\xa9ot\n" },			/* 8-bit only in full-name */
	{ "rcpt: root\n\n", "rcpt: root\n" },				/* no empty line */
	{ "extract: no\n", "" },					/* required */
	{ "rcpt: root\n", "rcpt: \n" },
	{ "rcpt: root\n", "rcpt: root\nextract: yes\n" },		/* a key again, later */
	{ "extract: no\nfull-name: Alice \xc3\x89xample\nrcpt: bob@example.org\nrcpt: root\n", "" },	/* ends early */
};
#define N_DAMAGES (sizeof(damages) / sizeof(damages[0]))

START_TEST(test_damaged)
{
	char buf[2048];
	const char *at = strstr(good, damages[_i].from);
	struct drop_record d;
	size_t head;

	ck_assert_ptr_nonnull(at);
	head = (size_t)(at - good);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)head, good, damages[_i].to, at + strlen(damages[_i].from));
	ck_assert_msg(drop_record_parse(buf, strlen(buf), &d) == -EBADMSG, "damage %d accepted:\n%s", _i, buf);
	/* The undamaged record parses: the refusal was the damage's. */
	ck_assert_int_eq(drop_record_parse(good, sizeof(good) - 1, &d), 0);
	drop_record_free(&d);
}
END_TEST

START_TEST(test_too_many_rcpts)
{
	size_t cap = (DROP_MAX_RCPT + 2) * 16 + 200, len, i;
	char *buf = malloc(cap);
	struct drop_record d;

	len = (size_t)sprintf(buf, "spoolgate-drop: 1\nuid: 1\nsender: <a@b.c>\nextract: no\n");
	for (i = 0; i <= DROP_MAX_RCPT; i++)
		len += (size_t)sprintf(buf + len, "rcpt: r%zu@x\n", i);
	len += (size_t)sprintf(buf + len, "\n");
	ck_assert_int_eq(drop_record_parse(buf, len, &d), -EBADMSG);
	free(buf);
}
END_TEST

START_TEST(test_sender_policy)
{
	struct cfg cfg;
	char out[256];

	cfg_defaults(&cfg);
	free(cfg.sender_domain);
	cfg.sender_domain = strdup("gw.example");
	ck_assert_int_eq(unixuser_sender(&cfg, "root", "boss@example.org", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "boss@example.org");
	ck_assert_int_eq(unixuser_sender(&cfg, "root", "", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(unixuser_sender(&cfg, "root", NULL, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "root@gw.example");
	ck_assert_int_eq(unixuser_sender(&cfg, "bob", "boss@example.org", out, sizeof(out)), -EPERM);
	ck_assert_str_eq(out, "bob@gw.example");
	ck_assert_int_eq(unixuser_sender(&cfg, "bob", "bob@gw.example", out, sizeof(out)), 0);
	ck_assert_int_eq(unixuser_sender(&cfg, "bob", "", out, sizeof(out)), -EPERM);
	cfg_free(&cfg);
}
END_TEST

static const char *const two[] = { "root", "Ann@Example.ORG" };

START_TEST(test_policy_headers)
{
	static const char msg[] = "From: x@y.example\nTo: to@example.org\nBcc: hidden@example.org\n\nbody\n";
	struct outbox_policy pol = { .sender = "bob@gw.example", .rcpt = two, .nrcpt = 2,
		.qualify_domain = "gw.example", .from_addr = "bob@gw.example", .headerless_ok = true };
	struct outbox_headers h;
	char why[256];

	ck_assert_int_eq(outbox_check_headers(msg, sizeof(msg) - 1, &pol, &h, why, sizeof(why)), 0);
	ck_assert_uint_eq(h.nrcpt, 2);				/* To: names nobody without -t */
	ck_assert_str_eq(h.rcpt[0], "root@gw.example");
	ck_assert_str_eq(h.from, "bob@gw.example");		/* the policy's, not From:'s */
	ck_assert_uint_eq(h.ndrop, 1);				/* Bcc: goes all the same */
	ck_assert(h.has_from && !h.headerless);
	outbox_headers_free(&h);

	pol.rcpt_from_headers = true;				/* -t */
	ck_assert_int_eq(outbox_check_headers(msg, sizeof(msg) - 1, &pol, &h, why, sizeof(why)), 0);
	ck_assert_uint_eq(h.nrcpt, 4);
	ck_assert_str_eq(h.rcpt[3], "hidden@example.org");
	outbox_headers_free(&h);

	ck_assert_int_eq(outbox_check_headers("disk full\n", 10, &pol, &h, why, sizeof(why)), 0);
	ck_assert(h.headerless && !h.has_from);
	ck_assert_int_eq(h.body_start, 0);
	outbox_headers_free(&h);
	ck_assert_int_eq(outbox_check_headers("", 0, &pol, &h, why, sizeof(why)), 0);
	outbox_headers_free(&h);

	/* outbox/: no From:, no header, no recipient outside the message. */
	ck_assert_int_eq(outbox_check_headers("disk full\n", 10, NULL, &h, why, sizeof(why)), -EBADMSG);
	ck_assert_int_eq(outbox_check_headers("To: root\n\nx\n", 12, NULL, &h, why, sizeof(why)), -EINVAL);

	pol.rcpt_from_headers = false;
	pol.nrcpt = 0;
	ck_assert_int_eq(outbox_check_headers(msg, sizeof(msg) - 1, &pol, &h, why, sizeof(why)), -EDESTADDRREQ);
	ck_assert_msg(strstr(why, "-t") != NULL, "%s", why);
}
END_TEST

/* An untrusted outbox/ writer: its own address only, in From: or Sender:. */
START_TEST(test_policy_own_sender)
{
	static const struct {
		const char *msg;
		int want;
	} cases[] = {
		{ "From: Ann <ann@gw.example>\nTo: b@example.org\n\nx\n", 0 },
		{ "From: ann@GW.EXAMPLE\nTo: b@example.org\n\nx\n", 0 },		/* the domain in any case */
		{ "From: boss@example.org\nTo: b@example.org\n\nx\n", -EPERM },
		{ "From: Ann@gw.example\nTo: b@example.org\n\nx\n", -EPERM },		/* a local part is exact */
		{ "From: ann@gw.example\nSender: boss@example.org\nTo: b@example.org\n\nx\n", -EPERM },
		{ "From: boss@example.org\nSender: ann@gw.example\nTo: b@example.org\n\nx\n", 0 },
		{ "To: b@example.org\n\nx\n", -EBADMSG },				/* no From: at all */
	};
	struct outbox_policy pol = { .rcpt_from_headers = true, .own_sender = "ann@gw.example", .writer = "ann" };
	struct outbox_headers h;
	char why[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = outbox_check_headers(cases[i].msg, strlen(cases[i].msg), &pol, &h, why, sizeof(why));

		ck_assert_msg(r == cases[i].want, "case %zu: %d, want %d (%s)", i, r, cases[i].want, why);
		if (r == 0)
			outbox_headers_free(&h);
		if (r == -EPERM)
			ck_assert_msg(strstr(why, "is not ann's to use") != NULL, "%s", why);
	}
	pol.own_sender = NULL;	/* trusted */
	ck_assert_int_eq(outbox_check_headers(cases[2].msg, strlen(cases[2].msg), &pol, &h, why, sizeof(why)), 0);
	ck_assert_str_eq(h.from, "boss@example.org");
	outbox_headers_free(&h);
}
END_TEST

static char tmpdir[64];

static void
dir_setup(void)
{
	testutil_mkdtemp(tmpdir, sizeof(tmpdir), "drop");
}

static void
dir_teardown(void)
{
	testutil_rmtree(tmpdir);
}

START_TEST(test_create_commit)
{
	char name[DROP_NAME_MAX], tmp[DROP_NAME_MAX];
	struct stat st;
	int dirfd = open(tmpdir, O_PATH | O_DIRECTORY), fd;
	mode_t old = umask(077);

	fd = drop_create(dirfd, name, tmp);
	umask(old);
	ck_assert_int_ge(fd, 0);
	ck_assert(tmp[0] == '.' && strcmp(tmp + 1, name) == 0);
	ck_assert_int_eq(fstatat(dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_uint_eq(st.st_mode & 07777, DROP_FILE_MODE);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	ck_assert_int_eq(drop_commit(dirfd, fd, tmp, name), 0);
	ck_assert_int_eq(fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_int_eq(fstatat(dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW), -1);
	/* O_EXCL: the same name twice is refused. */
	ck_assert_int_eq(symlinkat("/etc/passwd", dirfd, ".taken"), 0);
	ck_assert_int_eq(openat(dirfd, ".taken", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0604), -1);
	close(fd);
	close(dirfd);
}
END_TEST

static Suite *
drop_suite(void)
{
	Suite *s = suite_create("drop");
	TCase *tc = tcase_create("record");

	tcase_add_test(tc, test_round_trip);
	tcase_add_loop_test(tc, test_damaged, 0, N_DAMAGES);
	tcase_add_test(tc, test_too_many_rcpts);
	suite_add_tcase(s, tc);
	tc = tcase_create("policy");
	tcase_add_test(tc, test_sender_policy);
	tcase_add_test(tc, test_policy_headers);
	tcase_add_test(tc, test_policy_own_sender);
	suite_add_tcase(s, tc);
	tc = tcase_create("files");
	tcase_add_unchecked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, test_create_commit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(drop_suite());
}
