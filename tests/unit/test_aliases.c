/*
 * NAME
 *	test_aliases - unit tests of the aliases(5) table
 * SYNOPSIS
 *	test_aliases
 * DESCRIPTION
 *	Debian's default /etc/aliases (Postfix's two lines, and the longer
 *	traditional one) loads unchanged and expands; lists, continuation
 *	lines (with comments between them), quoted names and local parts,
 *	:include: files (nested, bounded, owner and mode checked), \name,
 *	an alias that lists itself, loops, the depth and recipient bounds,
 *	addresses in a local domain expanded again, |command and /file
 *	refused with their file:line while the other targets stay; every
 *	refusal of a bad line names FILE:LINE; a source reloads a changed
 *	file, keeps the old table when the new one is broken, and reloads
 *	on the request file.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aliases.h"
#include "testutil.h"

#define PATH_LEN	1024

static char dir[256];

static void
setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "aliases");
}

static void
teardown(void)
{
	testutil_rmtree(dir);
}

static const char *
write_file(const char *name, const char *text, mode_t mode)
{
	static char path[PATH_LEN];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

static struct aliases_opts opts;

static struct aliases *
load_ok(const char *text)
{
	struct aliases *a = NULL;
	char err[1024];
	const char *path = write_file("aliases", text, 0644);
	int r;

	opts.daemon_uid = geteuid();
	r = aliases_load(path, &opts, &a, err, sizeof(err));
	ck_assert_msg(r == 0, "load failed: %d %s", r, err);
	return a;
}

static int
load_err(const char *text, char *err, size_t errlen)
{
	struct aliases *a = NULL;
	const char *path = write_file("aliases", text, 0644);
	int r;

	opts.daemon_uid = geteuid();
	r = aliases_load(path, &opts, &a, err, errlen);
	ck_assert_ptr_null(a);
	return r;
}

static bool
is_local(const char *domain, void *arg)
{
	(void)arg;
	return strcasecmp(domain, "localhost") == 0 || strcasecmp(domain, "gw.example") == 0;
}

static struct aliases_ctx ctx = { is_local, NULL, 100 };

/* The results as "m:name" / "a:addr" joined by spaces, in order. */
static int
expand(const struct aliases *a, const char *key, char *out, size_t outlen, struct alias_expansion *keep)
{
	struct alias_expansion x;
	size_t i, len = 0;
	int r = aliases_expand(a, key, &ctx, &x);

	out[0] = '\0';
	if (r != 1)
		return r;
	for (i = 0; i < x.nrcpt && len + 1 < outlen; i++) {
		int n = snprintf(out + len, outlen - len, "%s%s:%s", i ? " " : "",
		    x.rcpt[i].dest == ALIAS_MAILBOX ? "m" : "a", x.rcpt[i].value);

		len = n < 0 || (size_t)n >= outlen - len ? outlen - 1 : len + (size_t)n;	/* cut at outlen */
	}
	if (keep != NULL)
		*keep = x;
	else
		alias_expansion_free(&x);
	return r;
}

#define EXPECT(a, key, want) do {						\
	char got_[2048];							\
	ck_assert_int_eq(expand((a), (key), got_, sizeof(got_), NULL), 1);	\
	ck_assert_str_eq(got_, (want));						\
} while (0)

/* Debian 12's /etc/aliases as Postfix installs it, and the traditional longer one. */
static const char debian_postfix[] = "# See man 5 aliases for format\npostmaster:    root\n";
static const char debian_traditional[] =
    "# /etc/aliases\n"
    "mailer-daemon: postmaster\n"
    "postmaster: root\n"
    "nobody: root\n"
    "hostmaster: root\n"
    "usenet: root\n"
    "news: root\n"
    "webmaster: root\n"
    "www: root\n"
    "ftp: root\n"
    "abuse: root\n"
    "noc: root\n"
    "security: root\n"
    "root: ops@example.org\n";

START_TEST(test_debian_default)
{
	struct aliases *a = load_ok(debian_postfix);

	ck_assert_uint_eq(aliases_count(a), 1);
	EXPECT(a, "postmaster", "m:root");
	ck_assert_int_eq(aliases_expand(a, "root", &ctx, &(struct alias_expansion){ 0 }), 0);
	aliases_release(a);

	a = load_ok(debian_traditional);
	ck_assert_uint_eq(aliases_count(a), 13);
	EXPECT(a, "mailer-daemon", "a:ops@example.org");
	EXPECT(a, "www", "a:ops@example.org");
	aliases_release(a);
}
END_TEST

START_TEST(test_lists_continuation_quotes)
{
	struct aliases *a = load_ok(
	    "staff: alice, Bob,\n"
	    "   carol@example.net,\n"
	    "# a comment between continuation lines\n"
	    "\n"
	    "\t\"dave smith\"@example.net ,, \n"
	    "\"John Doe\": john\r\n"
	    "Quoted: \"eve\"\n");
	char key[ALIASES_NAME_MAX + 1];

	EXPECT(a, "staff", "m:alice m:bob a:carol@example.net a:\"dave smith\"@example.net");
	EXPECT(a, "john doe", "m:john");
	EXPECT(a, "quoted", "m:eve");
	ck_assert_int_eq(aliases_key("\"John Doe\"@localhost", key, sizeof(key)), 0);
	ck_assert_str_eq(key, "john doe");
	ck_assert_int_eq(aliases_key("Staff@localhost", key, sizeof(key)), 0);
	ck_assert_str_eq(key, "staff");
	ck_assert_int_eq(aliases_key("Postmaster", key, sizeof(key)), 0);
	ck_assert_str_eq(key, "postmaster");
	aliases_release(a);
}
END_TEST

START_TEST(test_self_backslash_loops)
{
	struct aliases *a = load_ok(
	    "alice: alice, alice@remote.example\n"
	    "root: \\root, ops@example.org\n"
	    "a: b\n"
	    "b: a, b-list@example.net\n"
	    "postmaster: root\n"
	    "admin: postmaster@localhost, admin@elsewhere.example\n");

	EXPECT(a, "alice", "m:alice a:alice@remote.example");
	EXPECT(a, "root", "m:root a:ops@example.org");
	EXPECT(a, "a", "m:a a:b-list@example.net");
	EXPECT(a, "admin", "m:root a:ops@example.org a:admin@elsewhere.example");
	aliases_release(a);
}
END_TEST

START_TEST(test_bounds)
{
	char text[8192], got[64];
	size_t len = 0;
	int i;
	struct aliases *a;

	for (i = 0; i < 20; i++)	/* n0 -> n1 -> ... -> n19: deeper than ALIASES_MAX_DEPTH */
		len += (size_t)snprintf(text + len, sizeof(text) - len, "n%d: n%d\n", i, i + 1);
	len += (size_t)snprintf(text + len, sizeof(text) - len, "big: ");
	for (i = 0; i < 150; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%su%d", i ? ", " : "", i);
	snprintf(text + len, sizeof(text) - len, "\n");
	a = load_ok(text);
	ck_assert_int_eq(expand(a, "n0", got, sizeof(got), NULL), -ELOOP);
	ck_assert_int_eq(expand(a, "n10", got, sizeof(got), NULL), 1);	/* 10 deep: fine */
	ck_assert_int_eq(expand(a, "big", got, sizeof(got), NULL), -E2BIG);	/* 150 > max_rcpt 100 */
	ctx.max_rcpt = 150;
	ck_assert_int_eq(expand(a, "big", got, sizeof(got), NULL), 1);
	ctx.max_rcpt = 100;
	aliases_release(a);
}
END_TEST

START_TEST(test_commands_and_files_refused)
{
	struct aliases *a = load_ok(
	    "# refused targets\n"
	    "logs: \"|/usr/bin/logger -t mail\", /var/log/mail.copy,\n"
	    "   bob, |/bin/sh\n");
	struct alias_expansion x;
	char got[256], line[512];

	ck_assert_int_eq(expand(a, "logs", got, sizeof(got), &x), 1);
	ck_assert_str_eq(got, "m:bob");
	ck_assert_uint_eq(x.nrefused, 3);
	ck_assert_msg(strstr(x.refused[0], "/aliases:2: |/usr/bin/logger -t mail: command") != NULL, "%s",
	    x.refused[0]);
	ck_assert_msg(strstr(x.refused[1], "/aliases:2: /var/log/mail.copy: file") != NULL, "%s", x.refused[1]);
	ck_assert_msg(strstr(x.refused[2], "/aliases:2: |/bin/sh") != NULL, "%s", x.refused[2]);
	ck_assert_int_eq(aliases_refused_at(a, 0, line, sizeof(line)), 1);
	ck_assert_msg(strstr(line, "/aliases:2: alias logs: |/usr/bin/logger") != NULL, "%s", line);
	ck_assert_int_eq(aliases_refused_at(a, 3, line, sizeof(line)), 0);
	alias_expansion_free(&x);
	aliases_release(a);
}
END_TEST

START_TEST(test_include)
{
	char text[2048], err[1024], path[PATH_LEN];
	struct aliases *a;
	int r;

	write_file("inner", "# inner\ncarol@example.net\n", 0644);
	snprintf(text, sizeof(text), "# people\nalice, bob\n  dave\n:include:%s/inner\n", dir);
	write_file("list", text, 0640);
	snprintf(text, sizeof(text), "staff: :include:%s/list, eve\nother: root\n", dir);
	a = load_ok(text);
	EXPECT(a, "staff", "m:alice m:bob m:dave a:carol@example.net m:eve");
	aliases_release(a);

	/* a bad line in the include names the include's file:line, under the entry's */
	write_file("list", "alice\nnot@@valid\n", 0644);
	ck_assert_int_eq(load_err(text, err, sizeof(err)), -EINVAL);
	snprintf(path, sizeof(path), "/aliases:1: :include: %s/list:2: target not@@valid", dir);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);

	/* others may write it: refused */
	write_file("list", "alice\n", 0646);
	r = load_err(text, err, sizeof(err));
	ck_assert_int_eq(r, -EPERM);
	ck_assert_msg(strstr(err, "writable by others") != NULL && strstr(err, "/aliases:1:") != NULL, "%s", err);

	/* a symbolic link is not followed */
	write_file("list", "alice\n", 0644);
	snprintf(path, sizeof(path), "%s/link", dir);
	snprintf(text, sizeof(text), "%s/list", dir);
	ck_assert_int_eq(symlink(text, path), 0);
	snprintf(text, sizeof(text), "x: :include:%s\n", path);
	ck_assert_int_eq(load_err(text, err, sizeof(err)), -ELOOP);

	/* relative path; an include that includes itself ends at the depth bound */
	ck_assert_int_eq(load_err("x: :include:list\n", err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "must be absolute") != NULL, "%s", err);
	snprintf(text, sizeof(text), ":include:%s/self\n", dir);
	write_file("self", text, 0644);
	snprintf(text, sizeof(text), "x: :include:%s/self\n", dir);
	ck_assert_int_eq(load_err(text, err, sizeof(err)), -ELOOP);
	ck_assert_msg(strstr(err, "nested deeper") != NULL, "%s", err);
}
END_TEST

/* Each bad table and the FILE:LINE: start and words of its refusal. */
static const struct {
	const char     *text;
	unsigned	line;
	const char     *what;
} bad[] = {
	{ "# x\nroot ops@example.org\n", 2, "no ':'" },
	{ "  root: ops@example.org\n", 1, "continuation line without an entry" },
	{ "\"root: ops\n", 1, "no closing quote" },
	{ "a: b\nroot:\n", 2, "has no target" },
	{ "root: ,  ,\n", 1, "has no target" },
	{ "root: a\n# c\nroot: b\n", 3, "already defined at line 1" },
	{ "root: ops@\n", 1, "not a mail address" },
	{ "root: a b\n", 1, "not a local name" },
	{ "ro ot: a\n", 1, "blank or a quote" },
	{ "root: \\\n", 1, "not a local name" },
	{ "a: b\nroot: x\x01y\n", 2, "octet 0x01" },
	{ "a: b\nroot: caf\xc3\xa9\n", 2, "octet 0xc3" },
	{ "x: \"a\"b\n", 1, "text after the quoted string" },
	{ "x: \"unclosed\n", 1, "no closing quote" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: b\n", 1, "no alias name" },
};

START_TEST(test_bad_lines)
{
	char err[1024], want[64];
	int r = load_err(bad[_i].text, err, sizeof(err));

	ck_assert_int_lt(r, 0);
	snprintf(want, sizeof(want), "/aliases:%u: ", bad[_i].line);
	ck_assert_msg(strstr(err, want) != NULL && strstr(err, bad[_i].what) != NULL,
	    "case %d: '%s' lacks '%s' and '%s'", _i, err, want, bad[_i].what);
}
END_TEST

START_TEST(test_long_line_nul_size_owner)
{
	char *text = malloc(ALIASES_LINE_MAX + 64), err[1024];
	const char *path;
	struct aliases *a;
	int fd;

	memset(text, 'a', ALIASES_LINE_MAX + 10);
	memcpy(text, "x: ", 3);
	strcpy(text + ALIASES_LINE_MAX + 10, "\n");
	ck_assert_int_eq(load_err(text, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "/aliases:1: line longer than") != NULL, "%s", err);
	free(text);

	path = write_file("aliases", "a: b\n", 0644);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_APPEND), 0);
	ck_assert_int_eq(write(fd, "c: d\0e\n", 7), 7);
	close(fd);
	ck_assert_int_eq(aliases_load(path, &opts, &a, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "/aliases:2: a NUL octet") != NULL, "%s", err);

	path = write_file("aliases", "a: b\n", 0666);
	ck_assert_int_eq(aliases_load(path, &opts, &a, err, sizeof(err)), -EPERM);
	ck_assert_msg(strstr(err, "writable by others") != NULL, "%s", err);
	if (geteuid() == 0) {	/* a file of another user: refused */
		path = write_file("aliases", "a: b\n", 0644);
		ck_assert_int_eq(chown(path, 4242, 0), 0);
		ck_assert_int_eq(aliases_load(path, &opts, &a, err, sizeof(err)), -EPERM);
		ck_assert_msg(strstr(err, "owned by uid 4242") != NULL, "%s", err);
	}
	{
		char missing[PATH_LEN];

		snprintf(missing, sizeof(missing), "%s/missing", dir);
		ck_assert_int_eq(aliases_load(missing, &opts, &a, err, sizeof(err)), -ENOENT);
		ck_assert_msg(strstr(err, "/missing: cannot open") != NULL, "%s", err);
	}
}
END_TEST

START_TEST(test_source_reload)
{
	char err[1024], stamp[PATH_LEN], got[PATH_LEN];
	struct aliases_source *src;
	struct aliases *a;
	const char *path = write_file("aliases", "root: one@example.org\n", 0644);
	char keep[PATH_LEN];

	snprintf(keep, sizeof(keep), "%s", path);
	snprintf(stamp, sizeof(stamp), "%s/newaliases", dir);
	opts.daemon_uid = geteuid();
	opts.stamp = stamp;
	ck_assert_ptr_nonnull(src = aliases_source_new(keep, &opts, err, sizeof(err)));
	opts.stamp = NULL;
	a = aliases_source_get(src);
	EXPECT(a, "root", "a:one@example.org");
	aliases_release(a);

	/* changed: reloaded (within a second) */
	sleep(1);
	write_file("aliases", "root: two@example.org\nextra: x\n", 0644);
	sleep(1);
	a = aliases_source_get(src);
	EXPECT(a, "root", "a:two@example.org");
	aliases_release(a);

	/* broken: the old table stays */
	write_file("aliases", "root two@example.org\n", 0644);
	sleep(1);
	a = aliases_source_get(src);
	ck_assert_uint_eq(aliases_count(a), 2);
	EXPECT(a, "root", "a:two@example.org");

	/* fixed: loaded; the table held before stays usable until released */
	write_file("aliases", "root: three@example.org\n", 0644);
	sleep(1);
	{
		struct aliases *b = aliases_source_get(src);

		EXPECT(b, "root", "a:three@example.org");
		aliases_release(b);
	}
	EXPECT(a, "root", "a:two@example.org");
	aliases_release(a);

	/*
	 * The request file: an edit adds an include that does not load, so
	 * the reload fails and the include is watched by nobody; fixing the
	 * include alone changes nothing, spoolgate-newaliases's request does.
	 */
	snprintf(got, sizeof(got), "root: :include:%s/inc\n", dir);
	write_file("inc", "bad@@line\n", 0644);
	write_file("aliases", got, 0644);
	sleep(1);
	a = aliases_source_get(src);
	EXPECT(a, "root", "a:three@example.org");
	aliases_release(a);
	write_file("inc", "four@example.org\n", 0644);
	sleep(1);
	a = aliases_source_get(src);
	EXPECT(a, "root", "a:three@example.org");
	aliases_release(a);
	write_file("newaliases", "1\n", 0644);
	sleep(1);
	a = aliases_source_get(src);
	EXPECT(a, "root", "a:four@example.org");
	aliases_release(a);
	aliases_source_free(src);
}
END_TEST

static Suite *
aliases_suite(void)
{
	Suite *s = suite_create("aliases");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_debian_default);
	tcase_add_test(tc, test_lists_continuation_quotes);
	tcase_add_test(tc, test_self_backslash_loops);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_commands_and_files_refused);
	tcase_add_test(tc, test_include);
	tcase_add_loop_test(tc, test_bad_lines, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_long_line_nul_size_owner);
	tcase_add_test(tc, test_source_reload);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(aliases_suite());
}
