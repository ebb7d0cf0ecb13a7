/*
 * NAME
 *	test_addr - unit tests of RFC 5321 path parsing and mailbox names
 * SYNOPSIS
 *	test_addr
 * DESCRIPTION
 *	Table-driven: each row of path_cases is one input to
 *	addr_parse_path() with its flags, the result it must give, the
 *	address it must produce and where the rest pointer must point (the
 *	ESMTP parameters).  Then addr_mailbox_name() (lower-casing, the
 *	characters a directory name may hold, dots, length), addr_split()
 *	and addr_domain_valid().
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "testutil.h"

#define NUL_ALLOWED	ADDR_ALLOW_NULL
#define PM		ADDR_ALLOW_POSTMASTER
#define UNBR		ADDR_ALLOW_UNBRACKETED
#define UTF8		ADDR_ALLOW_UTF8

#define L63	"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"
#define L64	L63 "d"
#define L65	L64 "e"
#define DOM255	L63 "." L63 "." L63 "." L63		/* 4 * 63 + 3 = 255 */
#define DOM256	DOM255 "x"

static const struct path_case {
	const char     *in;
	unsigned	flags;
	int		want;		/* 0 or -errno */
	const char     *out;		/* on success */
	const char     *rest;		/* on success: what *rest points at */
} path_cases[] = {
	/* plain paths */
	{ "<a@b.c>", 0, 0, "a@b.c", "" },
	{ "<bob@example.org> SIZE=100 BODY=8BITMIME", 0, 0, "bob@example.org", " SIZE=100 BODY=8BITMIME" },
	{ "<First.Last+tag@sub-domain.example.org>", 0, 0, "First.Last+tag@sub-domain.example.org", "" },
	{ "<A!#$%&'*+-/=?^_`{|}~z@b.c>", 0, 0, "A!#$%&'*+-/=?^_`{|}~z@b.c", "" },
	{ "<a@b>", 0, 0, "a@b", "" },
	{ "<x@123.example>", 0, 0, "x@123.example", "" },
	/* the null path */
	{ "<>", NUL_ALLOWED, 0, "", "" },
	{ "<> SIZE=10", NUL_ALLOWED, 0, "", " SIZE=10" },
	{ "<>", 0, -EINVAL, NULL, NULL },
	{ "<>", PM | UNBR, -EINVAL, NULL, NULL },
	/* Postmaster without a domain (RFC 5321 4.1.1.3) */
	{ "<Postmaster>", PM, 0, "Postmaster", "" },
	{ "<postmaster> X=1", PM, 0, "postmaster", " X=1" },
	{ "<POSTMASTER>", PM, 0, "POSTMASTER", "" },
	{ "<Postmaster>", 0, -EINVAL, NULL, NULL },
	{ "<postmasters>", PM, -EINVAL, NULL, NULL },
	{ "<postmaster@example.org>", 0, 0, "postmaster@example.org", "" },
	/* source routes are parsed and dropped */
	{ "<@x.y,@z:a@b.c>", 0, 0, "a@b.c", "" },
	{ "<@x.y:a@b.c> SIZE=1", 0, 0, "a@b.c", " SIZE=1" },
	{ "<@x.y,z:a@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<@x.y,@:a@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<@:a@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<@x.y a@b.c>", 0, -EINVAL, NULL, NULL },
	/* quoted local parts are kept quoted */
	{ "<\"john doe\"@b.c>", 0, 0, "\"john doe\"@b.c", "" },
	{ "<\"a\\\"b\"@b.c>", 0, 0, "\"a\\\"b\"@b.c", "" },
	{ "<\"a@b\"@c.d>", 0, 0, "\"a@b\"@c.d", "" },
	{ "<\"\"@b.c>", 0, 0, "\"\"@b.c", "" },
	{ "<\"unterminated@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<\"a\tb\"@b.c>", 0, -EINVAL, NULL, NULL },
	/* address literals */
	{ "<a@[127.0.0.1]>", 0, 0, "a@[127.0.0.1]", "" },
	{ "<a@[IPv6:::1]>", 0, 0, "a@[IPv6:::1]", "" },
	{ "<a@[IPv6:2001:db8::25]> X=y", 0, 0, "a@[IPv6:2001:db8::25]", " X=y" },
	{ "<a@[ipv6:::1]>", 0, 0, "a@[ipv6:::1]", "" },
	{ "<a@[300.0.0.1]>", 0, -EINVAL, NULL, NULL },
	{ "<a@[127.0.0.1>", 0, -EINVAL, NULL, NULL },
	{ "<a@[]>", 0, -EINVAL, NULL, NULL },
	{ "<a@[IPv6:zz::1]>", 0, -EINVAL, NULL, NULL },
	{ "<a@[IPv6:127.0.0.1]>", 0, -EINVAL, NULL, NULL },
	{ "<a@[::1]>", 0, -EINVAL, NULL, NULL },
	{ "<a@[127.0.0.1]x>", 0, -EINVAL, NULL, NULL },
	/* without brackets */
	{ "a@b.c", 0, -EINVAL, NULL, NULL },
	{ "a@b.c", UNBR, 0, "a@b.c", "" },
	{ "a@b.c SIZE=5", UNBR, 0, "a@b.c", " SIZE=5" },
	{ "a@b.c>", UNBR, -EINVAL, NULL, NULL },
	{ "<a@b.c>", UNBR, 0, "a@b.c", "" },
	/* broken brackets, spaces */
	{ "<a@b.c", 0, -EINVAL, NULL, NULL },
	{ "a@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<<a@b.c>>", 0, -EINVAL, NULL, NULL },
	{ "< a@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<a@b.c >", 0, -EINVAL, NULL, NULL },
	{ "<a @b.c>", 0, -EINVAL, NULL, NULL },
	{ "<a@ b.c>", 0, -EINVAL, NULL, NULL },
	{ " <a@b.c>", 0, -EINVAL, NULL, NULL },
	{ "", 0, -EINVAL, NULL, NULL },
	{ "<", 0, -EINVAL, NULL, NULL },
	/* missing or empty parts */
	{ "<a@>", 0, -EINVAL, NULL, NULL },
	{ "<@b>", 0, -EINVAL, NULL, NULL },
	{ "<a>", 0, -EINVAL, NULL, NULL },
	{ "<@>", 0, -EINVAL, NULL, NULL },
	{ "<a@@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<a@b@c.d>", 0, -EINVAL, NULL, NULL },
	/* dots */
	{ "<a..b@c>", 0, -EINVAL, NULL, NULL },
	{ "<.a@c>", 0, -EINVAL, NULL, NULL },
	{ "<a.@c>", 0, -EINVAL, NULL, NULL },
	{ "<a@b..c>", 0, -EINVAL, NULL, NULL },
	{ "<a@.b.c>", 0, -EINVAL, NULL, NULL },
	{ "<a@b.c.>", 0, -EINVAL, NULL, NULL },
	/* hyphens and other bytes in domains */
	{ "<a@-b.c>", 0, -EINVAL, NULL, NULL },
	{ "<a@b-.c>", 0, -EINVAL, NULL, NULL },
	{ "<a@b_c.d>", 0, -EINVAL, NULL, NULL },
	{ "<a@b-c.d>", 0, 0, "a@b-c.d", "" },
	/* control characters */
	{ "<a\x01@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<a\x7f@b.c>", 0, -EINVAL, NULL, NULL },
	{ "<a@b.c\r\n>", 0, -EINVAL, NULL, NULL },
	/* lengths: label 63 ok, 64 not; local part 64 ok, 65 too long; domain 255 ok, 256 too long */
	{ "<a@" L63 ".org>", 0, 0, "a@" L63 ".org", "" },
	{ "<a@" L64 ".org>", 0, -EINVAL, NULL, NULL },
	{ "<" L64 "@b.c>", 0, 0, L64 "@b.c", "" },
	{ "<" L65 "@b.c>", 0, -ENAMETOOLONG, NULL, NULL },
	{ "<\"" L63 "\"@b.c>", 0, -ENAMETOOLONG, NULL, NULL },
	{ "<a@" DOM255 ">", 0, 0, "a@" DOM255, "" },
	{ "<a@" L63 "." L63 "." L63 "." L63 "." L63 ">", 0, -ENAMETOOLONG, NULL, NULL },
	/* 8-bit bytes: only with ADDR_ALLOW_UTF8 (SMTPUTF8), and only well-formed UTF-8 */
	{ "<j\xc3\xb6rg@b.c>", 0, -EILSEQ, NULL, NULL },
	{ "<j\xc3\xb6rg@b.c>", UTF8, 0, "j\xc3\xb6rg@b.c", "" },
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", UTF8, 0,
	  "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", "" },
	{ "<\"j\xc3\xb6 rg\"@b.c>", UTF8, 0, "\"j\xc3\xb6 rg\"@b.c", "" },
	{ "<a@b\xc3\xa4.c>", UTF8, 0, "a@b\xc3\xa4.c", "" },
	{ "<\xf0\x9f\x93\xa7@b.c>", UTF8, 0, "\xf0\x9f\x93\xa7@b.c", "" },	/* U+1F4E7, 4 octets */
	{ "<j\xc3rg@b.c>", UTF8, -EINVAL, NULL, NULL },		/* cut sequence */
	{ "<j\xc0\xafrg@b.c>", UTF8, -EINVAL, NULL, NULL },		/* overlong '/' */
	{ "<j\xed\xa0\x80@b.c>", UTF8, -EINVAL, NULL, NULL },		/* surrogate */
	{ "<j\xf4\x90\x80\x80@b.c>", UTF8, -EINVAL, NULL, NULL },	/* over U+10FFFF */
	{ "<j\xc2\x85@b.c>", UTF8, -EINVAL, NULL, NULL },		/* C1 control NEL */
	{ "<\xff@b.c>", UTF8, -EINVAL, NULL, NULL },
	{ "<a@b\xc3\xa4.c>", 0, -EILSEQ, NULL, NULL },
	{ "<\"\xff\"@b.c>", 0, -EILSEQ, NULL, NULL },
	{ "<j\xc3\xb6rg@b.c>", UNBR | NUL_ALLOWED | PM, -EILSEQ, NULL, NULL },
	/* trailing garbage inside the brackets; after them it is the caller's rest */
	{ "<a@b.c x>", 0, -EINVAL, NULL, NULL },
	{ "<a@b.c!>", 0, -EINVAL, NULL, NULL },
	{ "<a@b.c>x", 0, 0, "a@b.c", "x" },
	{ "<a@b.c>>", 0, 0, "a@b.c", ">" },
};
#define N_PATH_CASES	(sizeof(path_cases) / sizeof(path_cases[0]))

START_TEST(test_parse_path)
{
	const struct path_case *c = &path_cases[_i];
	char out[ADDR_MAX];
	const char *rest = NULL;
	int r;

	memset(out, 'X', sizeof(out));
	r = addr_parse_path(c->in, out, sizeof(out), &rest, c->flags);
	ck_assert_msg(r == c->want, "addr_parse_path(\"%s\", flags %#x) = %d (%s), want %d (%s)",
	    c->in, c->flags, r, strerror(-r), c->want, strerror(-c->want));
	if (c->want != 0)
		return;
	ck_assert_msg(strcmp(out, c->out) == 0, "\"%s\" -> \"%s\", want \"%s\"", c->in, out, c->out);
	ck_assert_ptr_nonnull(rest);
	ck_assert_msg(rest >= c->in && rest <= c->in + strlen(c->in), "rest outside the input");
	ck_assert_msg(strcmp(rest, c->rest) == 0, "\"%s\": rest \"%s\", want \"%s\"", c->in, rest, c->rest);
	/* rest may be NULL */
	ck_assert_int_eq(addr_parse_path(c->in, out, sizeof(out), NULL, c->flags), 0);
}
END_TEST

START_TEST(test_parse_path_outlen)
{
	char out[16];

	/* "a@b.c" needs 6 bytes with its NUL */
	ck_assert_int_eq(addr_parse_path("<a@b.c>", out, 6, NULL, 0), 0);
	ck_assert_str_eq(out, "a@b.c");
	ck_assert_int_eq(addr_parse_path("<a@b.c>", out, 5, NULL, 0), -ENAMETOOLONG);
	ck_assert_int_eq(addr_parse_path("<>", out, 1, NULL, ADDR_ALLOW_NULL), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(addr_parse_path("<>", out, 0, NULL, ADDR_ALLOW_NULL), -ENAMETOOLONG);
	ck_assert_int_eq(addr_parse_path("<Postmaster>", out, 11, NULL, ADDR_ALLOW_POSTMASTER), 0);
	ck_assert_str_eq(out, "Postmaster");
	ck_assert_int_eq(addr_parse_path("<Postmaster>", out, 10, NULL, ADDR_ALLOW_POSTMASTER), -ENAMETOOLONG);
}
END_TEST

/* A path of ADDR_MAX bytes never overflows the output. */
START_TEST(test_parse_path_long_input)
{
	char in[4096], out[ADDR_MAX];

	memset(in, 'a', sizeof(in));
	in[0] = '<';
	in[2000] = '@';
	strcpy(in + 4000, ".org>");
	ck_assert_int_eq(addr_parse_path(in, out, sizeof(out), NULL, 0), -EINVAL);	/* labels > 63 */
	memset(in, 'a', sizeof(in));
	in[0] = '<';
	in[1000] = '@';
	in[1001] = 'b';
	in[1002] = '>';
	in[1003] = '\0';
	ck_assert_int_eq(addr_parse_path(in, out, sizeof(out), NULL, 0), -ENAMETOOLONG);
}
END_TEST

static const struct mailbox_case {
	const char     *in;
	int		want;
	const char     *out;
} mailbox_cases[] = {
	{ "bob@example.org", 0, "bob" },
	{ "Bob@Example.ORG", 0, "bob" },
	{ "BOB", 0, "bob" },
	{ "First.Last+Tag@x", 0, "first.last+tag" },
	{ "a_b-c9@x", 0, "a_b-c9" },
	{ "postmaster@x.org", 0, "postmaster" },
	{ "Postmaster", 0, "postmaster" },
	{ "b.o.b@x", 0, "b.o.b" },
	{ L64 "@x", 0, L64 },
	{ L65 "@x", -ENAMETOOLONG, NULL },
	{ "", -EINVAL, NULL },
	{ "@x", -EINVAL, NULL },
	{ ".bob@x", -EINVAL, NULL },
	{ ".", -EINVAL, NULL },
	{ "..", -EINVAL, NULL },
	{ "bo..b@x", -EINVAL, NULL },
	{ "bob..@x", -EINVAL, NULL },
	{ "bo/b@x", -EINVAL, NULL },
	{ "../etc@x", -EINVAL, NULL },
	{ "bo b@x", -EINVAL, NULL },
	{ "\"bob\"@x", -EINVAL, NULL },
	{ "b%c@x", -EINVAL, NULL },
	{ "b*c@x", -EINVAL, NULL },
	{ "a@b@c", -EINVAL, NULL },	/* local part "a@b" */
	{ "bob\n@x", -EINVAL, NULL },
};
#define N_MAILBOX_CASES	(sizeof(mailbox_cases) / sizeof(mailbox_cases[0]))

START_TEST(test_mailbox_name)
{
	const struct mailbox_case *c = &mailbox_cases[_i];
	char out[ADDR_MAILBOX_MAX + 1];
	int r = addr_mailbox_name(c->in, out, sizeof(out));

	ck_assert_msg(r == c->want, "addr_mailbox_name(\"%s\") = %d (%s), want %d", c->in, r,
	    strerror(-r), c->want);
	if (r == 0)
		ck_assert_msg(strcmp(out, c->out) == 0, "\"%s\" -> \"%s\", want \"%s\"", c->in, out, c->out);
}
END_TEST

START_TEST(test_mailbox_name_8bit_and_outlen)
{
	char out[ADDR_MAILBOX_MAX + 1];
	int r;

	/* SMTPUTF8: well-formed UTF-8 is kept as sent (no case folding of it), the ASCII lower-cased. */
	ck_assert_int_eq(addr_mailbox_name("J\xc3\x96rg@x", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "j\xc3\x96rg");
	ck_assert_int_eq(addr_mailbox_name("j\xc3rg@x", out, sizeof(out)), -EILSEQ);
	ck_assert_int_eq(addr_mailbox_name("j\xc2\x85@x", out, sizeof(out)), -EILSEQ);
	ck_assert_int_eq(addr_mailbox_name("ab\xc3@x", out, sizeof(out)), -EILSEQ);	/* cut by the '@' */
	r = addr_mailbox_name("\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6"
	    "\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6"
	    "\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6"
	    "\xc3\xb6\xc3\xb6\xc3\xb6@x", out, sizeof(out));		/* 33 characters, 66 octets */
	ck_assert_int_eq(r, -ENAMETOOLONG);
	ck_assert_int_eq(addr_mailbox_name("bob@x", out, 4), 0);
	ck_assert_str_eq(out, "bob");
	ck_assert_int_eq(addr_mailbox_name("bob@x", out, 3), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_split)
{
	ck_assert_int_eq(addr_split("a@b"), 1);
	ck_assert_int_eq(addr_split("bob@example.org"), 3);
	ck_assert_int_eq(addr_split("\"a@b\"@c"), 5);	/* the last '@' */
	ck_assert_int_eq(addr_split("@b"), -EINVAL);
	ck_assert_int_eq(addr_split("a@"), -EINVAL);
	ck_assert_int_eq(addr_split("ab"), -EINVAL);
	ck_assert_int_eq(addr_split(""), -EINVAL);
}
END_TEST

static const struct domain_case {
	const char     *in;
	int		want;
} domain_cases[] = {
	{ "example.org", 0 },
	{ "localhost", 0 },
	{ "EXAMPLE.org", 0 },
	{ "a-b.c-d.e", 0 },
	{ "123.example", 0 },
	{ "[127.0.0.1]", 0 },
	{ "[IPv6:::1]", 0 },
	{ "[IPv6:2001:db8::1]", 0 },
	{ L63 ".org", 0 },
	{ DOM255, 0 },
	{ DOM256, -EINVAL },	/* its last label is 64 */
	{ L63 "." L63 "." L63 "." L63 ".a", -ENAMETOOLONG },
	{ L64 ".org", -EINVAL },
	{ "", -EINVAL },
	{ ".", -EINVAL },
	{ "a..b", -EINVAL },
	{ ".a.b", -EINVAL },
	{ "a.b.", -EINVAL },
	{ "-a.b", -EINVAL },
	{ "a-.b", -EINVAL },
	{ "a_b.c", -EINVAL },
	{ "ex ample.org", -EINVAL },
	{ "example.org ", -EINVAL },
	{ "exa\xc3\xa4mple.org", -EINVAL },
	{ "[127.0.0.1]x", -EINVAL },
	{ "[127.0.0.1", -EINVAL },
	{ "[1.2.3]", -EINVAL },
	{ "[IPv6:1.2.3.4]", -EINVAL },
	{ "[]", -EINVAL },
	{ "a/b", -EINVAL },
};
#define N_DOMAIN_CASES	(sizeof(domain_cases) / sizeof(domain_cases[0]))

START_TEST(test_domain_valid)
{
	const struct domain_case *c = &domain_cases[_i];
	int r = addr_domain_valid(c->in);

	ck_assert_msg(r == c->want, "addr_domain_valid(\"%s\") = %d, want %d", c->in, r, c->want);
}
END_TEST

/* HELO/EHLO names (RFC 5321 4.1.1.1): domain or address literal only. */
static const struct domain_case helo_cases[] = {
	{ "client.example", 0 },
	{ "localhost", 0 },
	{ "mx-1.example.org", 0 },
	{ "[192.0.2.1]", 0 },
	{ "[IPv6:2001:db8::1]", 0 },
	{ "[IPv6:::1]", 0 },
	{ "x(by", -EINVAL },		/* an unbalanced comment in Received: */
	{ "x(by)", -EINVAL },
	{ "<a>", -EINVAL },
	{ ";", -EINVAL },
	{ "a;b", -EINVAL },
	{ "host_name", -EINVAL },
	{ "host.", -EINVAL },
	{ "", -EINVAL },
	{ "[192.0.2.1", -EINVAL },
	{ "[192.0.2.256]", -EINVAL },
	{ "[IPv6:zz::1]", -EINVAL },
	{ "[example.org]", -EINVAL },
	{ "a b", -EINVAL },
	{ "caf\xc3\xa9.example", -EINVAL },
	{ DOM255, 0 },
	{ L63 "." L63 "." L63 "." L63 ".a", -ENAMETOOLONG },
};
#define N_HELO_CASES	(sizeof(helo_cases) / sizeof(helo_cases[0]))

START_TEST(test_helo_valid)
{
	const struct domain_case *c = &helo_cases[_i];
	int r = addr_helo_valid(c->in);

	ck_assert_msg(r == c->want, "addr_helo_valid(\"%s\") = %d, want %d", c->in, r, c->want);
}
END_TEST

static const struct same_case {
	const char     *a, *b;
	bool		same;
} same_cases[] = {
	{ "a@b.c", "a@b.c", true },
	{ "a@b.c", "a@B.C", true },		/* domains ignore case */
	{ "a@b.c", "A@b.c", false },		/* local parts do not */
	{ "a@b.c", "A@B.C", false },
	{ "Bob@x.org", "bob@x.org", false },
	{ "a@b.c", "a@b.cd", false },
	{ "a@b.c", "ab@.c", false },
	{ "a@b@c.d", "a@b@C.D", true },		/* the last '@' splits */
	{ "a@b@c.d", "a@B@c.d", false },
	{ "\"A b\"@x.y", "\"A b\"@X.Y", true },
	{ "Postmaster", "Postmaster", true },	/* no domain: exact */
	{ "Postmaster", "postmaster", false },
	{ "", "", true },
};
#define N_SAME_CASES	(sizeof(same_cases) / sizeof(same_cases[0]))

START_TEST(test_same_mailbox)
{
	const struct same_case *c = &same_cases[_i];

	ck_assert_msg(addr_same_mailbox(c->a, c->b) == c->same, "'%s' vs '%s': want %s",
	    c->a, c->b, c->same ? "same" : "different");
	ck_assert_msg(addr_same_mailbox(c->b, c->a) == c->same, "'%s' vs '%s' (swapped)", c->b, c->a);
}
END_TEST

static Suite *
addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc;

	tc = tcase_create("parse_path");
	tcase_add_loop_test(tc, test_parse_path, 0, N_PATH_CASES);
	tcase_add_test(tc, test_parse_path_outlen);
	tcase_add_test(tc, test_parse_path_long_input);
	suite_add_tcase(s, tc);

	tc = tcase_create("mailbox_name");
	tcase_add_loop_test(tc, test_mailbox_name, 0, N_MAILBOX_CASES);
	tcase_add_test(tc, test_mailbox_name_8bit_and_outlen);
	tcase_add_test(tc, test_split);
	suite_add_tcase(s, tc);

	tc = tcase_create("same_mailbox");
	tcase_add_loop_test(tc, test_same_mailbox, 0, N_SAME_CASES);
	suite_add_tcase(s, tc);

	tc = tcase_create("domain");
	tcase_add_loop_test(tc, test_domain_valid, 0, N_DOMAIN_CASES);
	tcase_add_loop_test(tc, test_helo_valid, 0, N_HELO_CASES);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(addr_suite());
}
