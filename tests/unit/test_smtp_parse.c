/*
 * NAME
 *	test_smtp_parse - unit tests of common/smtp_parse.c
 * DESCRIPTION
 *	Table-driven: each table row is one line a client could send (good,
 *	bad, overlong, with NUL or 8-bit bytes, without brackets, "<>", with
 *	ESMTP parameters) and the result the parser must give, reply code
 *	included, so that a change of the errno table shows up here.  The DATA
 *	machine is checked on the smuggling cases of the issue, on dot
 *	unstuffing and line endings, and on every way of cutting its input
 *	and output into pieces.  The Return-Path filter is checked on a table
 *	(any case, obsolete space before the colon, folded lines, body lines
 *	kept, a name past the hold kept) cut at every pair of places, and
 *	byte by byte through 4000 header and body lines.
 */

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errmap.h"
#include "../../common/smtp_parse.h"
#include "testutil.h"

#define LINE(s)	s, sizeof(s) - 1	/* literal with its length: NULs allowed */

/* ---- command lines ---- */

static const struct {
	const char     *line;
	size_t		len;
	int		rc;
	const char     *verb;
	const char     *arg;
} command_cases[] = {
	{ LINE("EHLO client.example"), 0, "EHLO", "client.example" },
	{ LINE("ehlo client.example"), 0, "EHLO", "client.example" },
	{ LINE("MAIL FROM:<a@b.example> SIZE=10"), 0, "MAIL", "FROM:<a@b.example> SIZE=10" },
	{ LINE("DATA"), 0, "DATA", "" },
	{ LINE("QUIT   "), 0, "QUIT", "" },
	{ LINE("NOOP \t hello \t"), 0, "NOOP", "hello" },
	{ LINE("  RSET"), 0, "RSET", "" },
	{ LINE("VeRy"), 0, "VERY", "" },
	{ LINE("ABCDEFGHIJKLMNO"), 0, "ABCDEFGHIJKLMNO", "" },		/* 15 letters: longest verb */
	{ LINE("ABCDEFGHIJKLMNOP"), -EINVAL, "", "" },			/* 16: too long */
	{ LINE(""), -EINVAL, "", "" },
	{ LINE("   "), -EINVAL, "", "" },
	{ LINE("MAIL:FROM:<a@b>"), -EINVAL, "", "" },
	{ LINE("HE1O x"), -EINVAL, "", "" },
	{ LINE("\xc3\x89HLO x"), -EINVAL, "", "" },			/* 8-bit verb */
	{ LINE("MA\0IL FROM:<a@b>"), -EILSEQ, "", "" },		/* NUL in the verb */
	{ LINE("MAIL FROM:<a@b>\0RCPT"), -EILSEQ, "", "" },		/* NUL in the argument */
	{ LINE("MAIL FROM:<a@b>\rRCPT TO:<c@d>"), -EILSEQ, "", "" },	/* bare CR */
	{ LINE("HELO h\xc3\xa9llo"), 0, "HELO", "h\xc3\xa9llo" },	/* 8-bit argument: judged later */
};

START_TEST(test_command)
{
	char buf[256];
	struct smtp_cmdline cl;
	int rc;

	memcpy(buf, command_cases[_i].line, command_cases[_i].len);
	rc = smtp_parse_command(buf, command_cases[_i].len, &cl);
	ck_assert_msg(rc == command_cases[_i].rc, "row %d: rc %d, want %d", _i, rc, command_cases[_i].rc);
	if (rc == 0) {
		ck_assert_str_eq(cl.verb, command_cases[_i].verb);
		ck_assert_str_eq(cl.arg, command_cases[_i].arg);
	}
}
END_TEST

START_TEST(test_command_overlong)
{
	size_t len = 100000;
	char *buf = malloc(len + 1);
	struct smtp_cmdline cl;

	ck_assert_ptr_nonnull(buf);
	memset(buf, 'A', len);
	ck_assert_int_eq(smtp_parse_command(buf, len, &cl), -EINVAL);
	memcpy(buf, "NOOP ", 5);		/* a long argument is the caller's limit */
	ck_assert_int_eq(smtp_parse_command(buf, len, &cl), 0);
	ck_assert_str_eq(cl.verb, "NOOP");
	ck_assert_uint_eq(strlen(cl.arg), len - 5);
	free(buf);
}
END_TEST

/* ---- HELO ---- */

static const struct {
	const char     *arg;
	int		rc;
} helo_cases[] = {
	{ "client.example", 0 },
	{ "[127.0.0.1]", 0 },
	{ "[IPv6:::1]", 0 },
	{ "localhost", 0 },
	{ "", -EINVAL },
	{ "two words", -EINVAL },
	{ "tab\there", -EINVAL },
	{ "h\xc3\xa9llo", -EINVAL },
	{ "ctl\x01", -EINVAL },
	{ "x(by", -EINVAL },		/* would open a comment in Received: */
	{ "<a>", -EINVAL },
	{ ";", -EINVAL },
	{ "a_b.example", -EINVAL },
	{ "[1.2.3.4]", 0 },
	{ "[1.2.3.4", -EINVAL },
};

START_TEST(test_helo)
{
	char out[SMTP_HELO_MAX];
	int rc = smtp_parse_helo(helo_cases[_i].arg, out, sizeof(out));

	ck_assert_msg(rc == helo_cases[_i].rc, "row %d (%s): rc %d", _i, helo_cases[_i].arg, rc);
	if (rc == 0)
		ck_assert_str_eq(out, helo_cases[_i].arg);
}
END_TEST

START_TEST(test_helo_overlong)
{
	char arg[SMTP_HELO_MAX + 1], out[SMTP_HELO_MAX];

	size_t i;

	/* Labels "aaa...a." of 50 octets: a valid domain name at every length. */
	for (i = 0; i < sizeof(arg) - 1; i++)
		arg[i] = (i % 50 == 49) ? '.' : 'a';
	arg[sizeof(arg) - 1] = '\0';
	ck_assert_int_eq(smtp_parse_helo(arg, out, sizeof(out)), -ENAMETOOLONG);
	arg[SMTP_HELO_MAX - 1] = '\0';		/* the longest that fits */
	ck_assert_int_eq(smtp_parse_helo(arg, out, sizeof(out)), 0);
}
END_TEST

/* ---- MAIL ---- */

#define BAD_MAIL(arg, code, esc)	{ arg, code, esc, NULL, 0, 0, SMTP_BODY_UNSPECIFIED }

static const struct {
	const char     *arg;
	int		code;		/* reply code; 0 = accepted */
	const char     *esc;
	const char     *from;
	int		has_size;
	uint64_t	size;
	enum smtp_body	body;
} mail_cases[] = {
	{ "FROM:<alice@example.org>", 0, NULL, "alice@example.org", 0, 0, SMTP_BODY_UNSPECIFIED },
	{ "from:<alice@example.org>", 0, NULL, "alice@example.org", 0, 0, SMTP_BODY_UNSPECIFIED },
	{ "FROM: <alice@example.org>", 0, NULL, "alice@example.org", 0, 0, SMTP_BODY_UNSPECIFIED },
	{ "FROM:<>", 0, NULL, "", 0, 0, SMTP_BODY_UNSPECIFIED },
	{ "FROM:<> SIZE=0", 0, NULL, "", 1, 0, SMTP_BODY_UNSPECIFIED },
	{ "FROM:<a@b.example> SIZE=4096", 0, NULL, "a@b.example", 1, 4096, SMTP_BODY_UNSPECIFIED },
	{ "FROM:<a@b.example> size=12 body=8bitmime", 0, NULL, "a@b.example", 1, 12, SMTP_BODY_8BITMIME },
	{ "FROM:<a@b.example> BODY=7BIT", 0, NULL, "a@b.example", 0, 0, SMTP_BODY_7BIT },
	{ "FROM:<a@b.example>  BODY=8BITMIME   SIZE=1", 0, NULL, "a@b.example", 1, 1, SMTP_BODY_8BITMIME },
	{ "FROM:<a@b.example> SIZE=99999999999999999999999", 0, NULL, "a@b.example", 1, UINT64_MAX,
	  SMTP_BODY_UNSPECIFIED },
	{ "FROM:<@relay.example:a@b.example>", 0, NULL, "a@b.example", 0, 0, SMTP_BODY_UNSPECIFIED },
	{ "FROM:<\"john doe\"@b.example>", 0, NULL, "\"john doe\"@b.example", 0, 0, SMTP_BODY_UNSPECIFIED },
	{ "FROM:<a@[127.0.0.1]>", 0, NULL, "a@[127.0.0.1]", 0, 0, SMTP_BODY_UNSPECIFIED },
	{ "FROM:<a@b.example> RET=HDRS ENVID=QQ+2B1", 0, NULL, "a@b.example", 0, 0, SMTP_BODY_UNSPECIFIED },
	{ "FROM:<> ret=full", 0, NULL, "", 0, 0, SMTP_BODY_UNSPECIFIED },
	/* refused */
	BAD_MAIL("FROM:alice@example.org", 553, "5.1.7"),		/* missing brackets */
	BAD_MAIL("FROM:<alice@example.org", 553, "5.1.7"),
	BAD_MAIL("FROM:alice@example.org>", 553, "5.1.7"),
	BAD_MAIL("FROM:<alice>", 553, "5.1.7"),			/* no domain */
	BAD_MAIL("FROM:<a@b.example>junk", 553, "5.1.7"),
	BAD_MAIL("FROM:<Postmaster>", 553, "5.1.7"),			/* only for RCPT */
	BAD_MAIL("FROM:", 553, "5.1.7"),
	BAD_MAIL("<alice@example.org>", 501, "5.5.4"),		/* no FROM: */
	BAD_MAIL("TO:<alice@example.org>", 501, "5.5.4"),
	BAD_MAIL("FROM:<al\xc3\xaf" "ce@example.org>", 553, "5.6.7"),	/* 8-bit: no SMTPUTF8 (RFC 6531) */
	BAD_MAIL("FROM:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@b.example>", 553, "5.1.7"),
	BAD_MAIL("FROM:<> FOO=1", 555, "5.5.4"),			/* unknown parameter */
	BAD_MAIL("FROM:<> AUTH", 501, "5.5.4"),			/* AUTH= needs a value */
	BAD_MAIL("FROM:<> AUTH=a+2", 501, "5.5.4"),			/* cut xtext */
	BAD_MAIL("FROM:<> AUTH=a+zz", 501, "5.5.4"),			/* xtext hex is upper case */
	BAD_MAIL("FROM:<> AUTH=a+20b", 501, "5.5.4"),			/* a blank, decoded */
	BAD_MAIL("FROM:<> AUTH=<> AUTH=<>", 501, "5.5.4"),		/* duplicate */
	BAD_MAIL("FROM:<> RET=ALL", 501, "5.5.4"),			/* DSN: FULL or HDRS */
	BAD_MAIL("FROM:<> RET", 501, "5.5.4"),
	BAD_MAIL("FROM:<> RET=FULL RET=HDRS", 501, "5.5.4"),		/* duplicate */
	BAD_MAIL("FROM:<> ENVID", 501, "5.5.4"),
	BAD_MAIL("FROM:<> ENVID=a+2", 501, "5.5.4"),			/* cut xtext */
	BAD_MAIL("FROM:<> ENVID=a+0Ab", 501, "5.5.4"),		/* a control character, decoded */
	BAD_MAIL("FROM:<> ENVID=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	    501, "5.5.4"),						/* 101 characters */
	BAD_MAIL("FROM:<> SIZE", 501, "5.5.4"),
	BAD_MAIL("FROM:<> SIZE=", 501, "5.5.4"),
	BAD_MAIL("FROM:<> SIZE=12k", 501, "5.5.4"),
	BAD_MAIL("FROM:<> SIZE=-1", 501, "5.5.4"),
	BAD_MAIL("FROM:<> SIZE=1 SIZE=2", 501, "5.5.4"),		/* duplicate */
	{ "FROM:<> BODY=BINARYMIME", 0, NULL, "", 0, 0, SMTP_BODY_BINARYMIME },	/* RFC 3030 */
	{ "FROM:<j\xc3\xb6rg@b.example> SMTPUTF8", 0, NULL, "j\xc3\xb6rg@b.example", 0, 0,
	  SMTP_BODY_UNSPECIFIED },							/* RFC 6531 */
	{ "FROM:<a@b.example> smtputf8 BODY=8BITMIME", 0, NULL, "a@b.example", 0, 0, SMTP_BODY_8BITMIME },
	BAD_MAIL("FROM:<j\xc3rg@b.example> SMTPUTF8", 553, "5.1.7"),	/* malformed UTF-8 */
	BAD_MAIL("FROM:<a@b.example> SMTPUTF8=yes", 501, "5.5.4"),
	BAD_MAIL("FROM:<a@b.example> SMTPUTF8 SMTPUTF8", 501, "5.5.4"),
	BAD_MAIL("FROM:<> BODY=BINARY", 501, "5.5.4"),
	BAD_MAIL("FROM:<> BODY", 501, "5.5.4"),
	BAD_MAIL("FROM:<> =1", 501, "5.5.4"),			/* no keyword */
	BAD_MAIL("FROM:<> -X=1", 501, "5.5.4"),
	BAD_MAIL("FROM:<> SIZE=1=2", 501, "5.5.4"),
	BAD_MAIL("FROM:<> SIZE=\xc3\xa9", 501, "5.5.4"),		/* 8-bit value */
	BAD_MAIL("FROM:<> SIZE=1\x01", 501, "5.5.4"),			/* control byte */
	BAD_MAIL("FROM:<> AVERYLONGKEYWORDTHATNOBODYEVERUSESATALL=1", 501, "5.5.4"),
};

START_TEST(test_mail)
{
	struct smtp_mail m;
	struct smtp_perror why;
	int rc = smtp_parse_mail(mail_cases[_i].arg, &m, &why);

	if (mail_cases[_i].code == 0) {
		ck_assert_msg(rc == 0, "row %d (%s): refused %d", _i, mail_cases[_i].arg, rc);
		ck_assert_str_eq(m.from, mail_cases[_i].from);
		ck_assert_int_eq(m.has_size, mail_cases[_i].has_size);
		ck_assert(m.size == mail_cases[_i].size);
		ck_assert_int_eq(m.body, mail_cases[_i].body);
	} else {
		const struct errmap_reply *r = errmap_get(why.reply);

		ck_assert_msg(rc < 0, "row %d (%s): accepted", _i, mail_cases[_i].arg);
		ck_assert_msg(r->code == mail_cases[_i].code && strcmp(r->esc, mail_cases[_i].esc) == 0,
		    "row %d (%s): %d %s, want %d %s", _i, mail_cases[_i].arg, r->code, r->esc,
		    mail_cases[_i].code, mail_cases[_i].esc);
	}
}
END_TEST

/* RFC 4954 section 5: AUTH=<> or an xtext mailbox, decoded. */
START_TEST(test_mail_auth_param)
{
	static const struct { const char *arg, *auth; } cases[] = {
		{ "FROM:<> AUTH=<>", "<>" },
		{ "FROM:<a@b.example> AUTH=a@b.example", "a@b.example" },
		{ "FROM:<a@b.example> auth=a+2Bx@b.example SIZE=1", "a+x@b.example" },
		{ "FROM:<a@b.example>", "" },
	};
	struct smtp_mail m;
	struct smtp_perror why;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(smtp_parse_mail(cases[i].arg, &m, &why) == 0, "%s refused", cases[i].arg);
		ck_assert_int_eq(m.has_auth, cases[i].auth[0] != '\0');
		if (m.has_auth)
			ck_assert_str_eq(m.auth, cases[i].auth);
	}
}
END_TEST

START_TEST(test_mail_overlong_path)
{
	char arg[2048];
	struct smtp_mail m;
	struct smtp_perror why;
	const struct errmap_reply *r;
	size_t i, n = 0;

	n += (size_t)snprintf(arg + n, sizeof(arg) - n, "FROM:<a@");
	for (i = 0; i < 20; i++)
		n += (size_t)snprintf(arg + n, sizeof(arg) - n, "abcdefghijklmnopqrstu.");
	snprintf(arg + n, sizeof(arg) - n, "example>");
	ck_assert_int_lt(smtp_parse_mail(arg, &m, &why), 0);
	r = errmap_get(why.reply);
	ck_assert_int_eq(r->code, 553);
}
END_TEST

/* ---- RCPT ---- */

#define BAD_RCPT(arg, code, esc)	{ arg, code, esc, NULL }

static const struct {
	const char     *arg;
	int		code;
	const char     *esc;
	const char     *to;
} rcpt_cases[] = {
	{ "TO:<bob@localhost>", 0, NULL, "bob@localhost" },
	{ "to:<bob@localhost>", 0, NULL, "bob@localhost" },
	{ "TO: <bob@localhost>", 0, NULL, "bob@localhost" },
	{ "TO:<Postmaster>", 0, NULL, "Postmaster" },
	{ "TO:<postmaster>", 0, NULL, "postmaster" },
	{ "TO:<postmaster@localhost>", 0, NULL, "postmaster@localhost" },
	{ "TO:<@a.example,@b.example:bob@c.example>", 0, NULL, "bob@c.example" },
	{ "TO:<bob@[IPv6:::1]>", 0, NULL, "bob@[IPv6:::1]" },
	{ "TO:<bob@localhost> NOTIFY=NEVER", 0, NULL, "bob@localhost" },
	{ "TO:<bob@localhost> notify=success,failure,delay ORCPT=rfc822;bob+2Bx@localhost", 0, NULL, "bob@localhost" },
	BAD_RCPT("TO:<>", 501, "5.1.3"),				/* null path is for MAIL */
	BAD_RCPT("TO:<> NOTIFY=NEVER", 501, "5.1.3"),
	BAD_RCPT("TO:bob@localhost", 553, "5.1.3"),			/* missing brackets */
	BAD_RCPT("TO:<bob@localhost", 553, "5.1.3"),
	BAD_RCPT("TO:<bob>", 553, "5.1.3"),
	BAD_RCPT("TO:<bob@@localhost>", 553, "5.1.3"),
	BAD_RCPT("TO:<bob@-bad.example>", 553, "5.1.3"),
	BAD_RCPT("TO:<bob@localhost>x", 553, "5.1.3"),
	BAD_RCPT("TO:<b\xc3\xb6" "b@localhost>", 553, "5.6.7"),	/* no SMTPUTF8 (RFC 6531) */
	BAD_RCPT("TO:<bob@localhost> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),	/* NEVER stands alone */
	BAD_RCPT("TO:<bob@localhost> NOTIFY=SUCCESS,SUCCESS", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> NOTIFY=SOMETIMES", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> NOTIFY=", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> NOTIFY=SUCCESS,", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> NOTIFY=NEVER NOTIFY=NEVER", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> ORCPT=bob@localhost", 501, "5.5.4"),	/* no addr-type */
	BAD_RCPT("TO:<bob@localhost> ORCPT=;bob@localhost", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> ORCPT=rfc822;", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> ORCPT=rfc 822;b", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> ORCPT=rfc822;b+ZZ", 501, "5.5.4"),
	BAD_RCPT("TO:<bob@localhost> FOO=1", 555, "5.5.4"),		/* unknown */
	BAD_RCPT("TO:<bob@localhost> =x", 501, "5.5.4"),
	BAD_RCPT("<bob@localhost>", 501, "5.5.4"),
	BAD_RCPT("FROM:<bob@localhost>", 501, "5.5.4"),
	BAD_RCPT("TO:", 553, "5.1.3"),
};

/* With SMTPUTF8 on the MAIL of the transaction (RFC 6531 3.3). */
START_TEST(test_rcpt_utf8)
{
	struct smtp_rcpt out;
	struct smtp_perror why;

	ck_assert_int_eq(smtp_parse_rcpt_utf8("TO:<b\xc3\xb6" "b@localhost>", &out, &why, true), 0);
	ck_assert_str_eq(out.to, "b\xc3\xb6" "b@localhost");
	ck_assert_int_eq(smtp_parse_rcpt_utf8("TO:<b@\xc3\xa9x.example>", &out, &why, true), 0);
	ck_assert_int_lt(smtp_parse_rcpt_utf8("TO:<b\xc3@localhost>", &out, &why, true), 0);
	ck_assert_int_eq(errmap_get(why.reply)->code, 553);
	ck_assert_str_eq(errmap_get(why.reply)->esc, "5.1.3");
	ck_assert_int_lt(smtp_parse_rcpt_utf8("TO:<b\xc3\xb6" "b@localhost>", &out, &why, false), 0);
	ck_assert_str_eq(errmap_get(why.reply)->esc, "5.6.7");
	ck_assert(smtp_is_ascii("abc") && !smtp_is_ascii("a\xc3\xb6"));
}
END_TEST

/* ---- BDAT ---- */

static const struct {
	const char     *arg;
	int		rc;
	uint64_t	size;
	bool		last;
} bdat_cases[] = {
	{ "0", 0, 0, false },
	{ "0 LAST", 0, 0, true },
	{ "86 last", 0, 86, true },
	{ "1000000  LaSt", 0, 1000000, true },
	{ "18446744073709551615", 0, UINT64_MAX, false },
	{ "18446744073709551616", -ERANGE, 0, false },
	{ "", -EINVAL, 0, false },
	{ "LAST", -EINVAL, 0, false },
	{ "-1", -EINVAL, 0, false },
	{ "+1", -EINVAL, 0, false },
	{ "1x", -EINVAL, 0, false },
	{ "1 LASTX", -EINVAL, 0, false },
	{ "1 LAST LAST", -EINVAL, 0, false },
	{ "1 FIRST", -EINVAL, 0, false },
	{ "0x10", -EINVAL, 0, false },
};

START_TEST(test_bdat)
{
	uint64_t size;
	bool last;
	int rc = smtp_parse_bdat(bdat_cases[_i].arg, &size, &last);

	ck_assert_msg(rc == bdat_cases[_i].rc, "row %d (%s): %d", _i, bdat_cases[_i].arg, rc);
	if (rc == 0) {
		ck_assert(size == bdat_cases[_i].size);
		ck_assert_int_eq(last, bdat_cases[_i].last);
	}
}
END_TEST

/* Every split of a message into chunks stores the same bytes: CRLF -> LF, bare CR and LF kept. */
START_TEST(test_chunk_decode_any_split)
{
	static const char msg[] = "a\r\nb\rc\nd\r\r\n.\r\n\r";
	static const char want[] = "a\nb\rc\nd\r\n.\n\r";
	size_t len = sizeof(msg) - 1;

	for (size_t cut1 = 0; cut1 <= len; cut1++)
		for (size_t cut2 = cut1; cut2 <= len; cut2++) {
			struct smtp_chunk c = { false };
			char out[64];
			size_t n = 0;

			n += smtp_chunk_decode(&c, msg, cut1, out + n);
			n += smtp_chunk_decode(&c, msg + cut1, cut2 - cut1, out + n);
			n += smtp_chunk_decode(&c, msg + cut2, len - cut2, out + n);
			n += smtp_chunk_finish(&c, out + n);
			ck_assert_msg(n == sizeof(want) - 1 && memcmp(out, want, n) == 0, "split %zu/%zu", cut1, cut2);
		}
}
END_TEST

START_TEST(test_rcpt)
{
	struct smtp_rcpt rc_out;
	struct smtp_perror why;
	int rc = smtp_parse_rcpt(rcpt_cases[_i].arg, &rc_out, &why);

	if (rcpt_cases[_i].code == 0) {
		ck_assert_msg(rc == 0, "row %d (%s): refused %d", _i, rcpt_cases[_i].arg, rc);
		ck_assert_str_eq(rc_out.to, rcpt_cases[_i].to);
	} else {
		const struct errmap_reply *r = errmap_get(why.reply);

		ck_assert_msg(rc < 0, "row %d (%s): accepted", _i, rcpt_cases[_i].arg);
		ck_assert_msg(r->code == rcpt_cases[_i].code && strcmp(r->esc, rcpt_cases[_i].esc) == 0,
		    "row %d (%s): %d %s, want %d %s", _i, rcpt_cases[_i].arg, r->code, r->esc,
		    rcpt_cases[_i].code, rcpt_cases[_i].esc);
	}
}
END_TEST

/* RFC 3461: what MAIL and RCPT keep of the DSN parameters. */
START_TEST(test_dsn_params_kept)
{
	struct smtp_mail m;
	struct smtp_rcpt r;
	struct smtp_perror why;
	char text[DSN_NOTIFY_TEXT_MAX];

	ck_assert_int_eq(smtp_parse_mail("FROM:<a@b.example> RET=HDRS ENVID=QQ+2B1", &m, &why), 0);
	ck_assert_int_eq(m.ret, DSN_RET_HDRS);
	ck_assert_str_eq(m.envid, "QQ+2B1");		/* as sent: passed on as xtext */
	ck_assert_int_eq(smtp_parse_mail("FROM:<a@b.example>", &m, &why), 0);
	ck_assert_int_eq(m.ret, DSN_RET_UNSPECIFIED);
	ck_assert_str_eq(m.envid, "");
	ck_assert_int_eq(smtp_parse_rcpt("TO:<bob@localhost> NOTIFY=delay,Success ORCPT=rfc822;b+2Bx@y", &r, &why), 0);
	ck_assert_uint_eq(r.notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY);
	ck_assert_str_eq(r.orcpt, "rfc822;b+2Bx@y");
	dsn_notify_format(r.notify, text, sizeof(text));
	ck_assert_str_eq(text, "SUCCESS,DELAY");
	ck_assert_int_eq(smtp_parse_rcpt("TO:<bob@localhost>", &r, &why), 0);
	ck_assert_uint_eq(r.notify, 0);
	ck_assert(dsn_notify_wants(0, DSN_NOTIFY_FAILURE) && dsn_notify_wants(0, DSN_NOTIFY_DELAY));
	ck_assert(!dsn_notify_wants(0, DSN_NOTIFY_SUCCESS));
	ck_assert(!dsn_notify_wants(DSN_NOTIFY_NEVER, DSN_NOTIFY_FAILURE));
	ck_assert(dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_NOTIFY_SUCCESS));
	ck_assert(!dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_NOTIFY_FAILURE));
}
END_TEST

/* ---- xtext ---- */

static const struct {
	const char     *in;
	ssize_t		rc;
	const char     *out;
} xtext_cases[] = {
	{ "abc", 3, "abc" },
	{ "", 0, "" },
	{ "a+2Bb", 3, "a+b" },
	{ "+3D", 1, "=" },
	{ "+2b", -EINVAL, NULL },		/* RFC 3461: upper-case hex */
	{ "+2", -EINVAL, NULL },
	{ "+", -EINVAL, NULL },
	{ "a=b", -EINVAL, NULL },
	{ "a b", -EINVAL, NULL },
	{ "\xc3\xa9", -EINVAL, NULL },
};

START_TEST(test_xtext)
{
	char out[64];
	ssize_t rc = smtp_xtext_decode(xtext_cases[_i].in, strlen(xtext_cases[_i].in), out, sizeof(out));

	ck_assert_msg(rc == xtext_cases[_i].rc, "row %d: rc %zd", _i, rc);
	if (rc >= 0)
		ck_assert_str_eq(out, xtext_cases[_i].out);
}
END_TEST

START_TEST(test_xtext_small_buffer)
{
	char out[3];

	ck_assert_int_eq(smtp_xtext_decode("abc", 3, out, sizeof(out)), -ENAMETOOLONG);
	ck_assert_int_eq(smtp_xtext_decode("ab", 2, out, sizeof(out)), 2);
}
END_TEST

/* ---- DATA ---- */

static const struct {
	const char     *in;
	size_t		inlen;
	const char     *out;		/* what is stored */
	size_t		outlen;
	int		end;		/* terminator found */
	const char     *rest;		/* input left after it */
} data_cases[] = {
	/* Smuggling: a bare LF or bare CR never ends the data. */
	{ LINE("a\n.\nMAIL FROM:<x@y>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\nsmuggled\r\n.\r\n"),
	  LINE("a\n.\nMAIL FROM:<x@y>\nRCPT TO:<bob@localhost>\nDATA\nsmuggled\n"), 1, "" },
	{ LINE("a\r.\rMAIL FROM:<x@y>\r\n.\r\n"), LINE("a\r.\rMAIL FROM:<x@y>\n"), 1, "" },
	{ LINE("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"), LINE("a\n.\nMAIL FROM:<x@y>\n"), 1, "" },
	{ LINE("a\r\n.\nb\r\n.\r\n"), LINE("a\n.\nb\n"), 1, "" },
	{ LINE("a\r\n.\rb\r\n.\r\n"), LINE("a\n\rb\n"), 1, "" },	/* ".\r" + more: stuffed, bare CR kept */
	{ LINE("a\r\n.\r\r\n.\r\n"), LINE("a\n\r\n"), 1, "" },
	/* The DATA line's CRLF is the first CRLF. */
	{ LINE(".\r\n"), LINE(""), 1, "" },
	{ LINE(".\r\nQUIT\r\n"), LINE(""), 1, "QUIT\r\n" },
	{ LINE("hello\r\n.\r\nMAIL FROM:<a@b>\r\n"), LINE("hello\n"), 1, "MAIL FROM:<a@b>\r\n" },
	/* Dot-unstuffing. */
	{ LINE("..line\r\n.\r\n"), LINE(".line\n"), 1, "" },
	{ LINE("a\r\n..\r\n...\r\n.x\r\n.\r\n"), LINE("a\n.\n..\nx\n"), 1, "" },
	{ LINE("a\n..b\r\n.\r\n"), LINE("a\n..b\n"), 1, "" },		/* after a bare LF: as sent */
	/* Line endings. */
	{ LINE("a\r\nb\nc\rd\r\n.\r\n"), LINE("a\nb\nc\rd\n"), 1, "" },
	{ LINE("\r\r\n.\r\n"), LINE("\r\n"), 1, "" },
	{ LINE("a\r\r\r\n.\r\n"), LINE("a\r\r\n"), 1, "" },
	{ LINE("\r\n\r\n.\r\n"), LINE("\n\n"), 1, "" },
	/* Binary and NUL bytes are content. */
	{ LINE("8bit \xc3\xa9\xff\0x\r\n.\r\n"), LINE("8bit \xc3\xa9\xff\0x\n"), 1, "" },
	/* Not finished yet: held-back bytes stay held back. */
	{ LINE("abc"), LINE("abc"), 0, "" },
	{ LINE("abc\r"), LINE("abc"), 0, "" },
	{ LINE("abc\r\n"), LINE("abc\n"), 0, "" },
	{ LINE("abc\r\n."), LINE("abc\n"), 0, "" },
	{ LINE("abc\r\n.\r"), LINE("abc\n"), 0, "" },
	{ LINE("abc\n.\r\n"), LINE("abc\n.\n"), 0, "" },
	{ LINE(""), LINE(""), 0, "" },
};

/* Runs the machine over in, cut into pieces of inchunk bytes, output of outcap. */
static int
decode_all(const char *in, size_t inlen, size_t inchunk, size_t outcap, char *store, size_t *storelen,
		size_t *rest)
{
	struct smtp_data d;
	char out[64];
	size_t pos = 0, stored = 0;
	int rc = SMTP_DATA_MORE;

	ck_assert(outcap <= sizeof(out));
	smtp_data_init(&d);
	while (pos < inlen && rc == SMTP_DATA_MORE) {
		size_t n = inlen - pos < inchunk ? inlen - pos : inchunk, off = 0;

		while (off < n && rc == SMTP_DATA_MORE) {
			size_t used, olen;

			rc = smtp_data_decode(&d, in + pos + off, n - off, &used, out, outcap, &olen);
			ck_assert(olen <= outcap);
			ck_assert(used > 0 || olen > 0 || rc == SMTP_DATA_END);
			memcpy(store + stored, out, olen);
			stored += olen;
			off += used;
		}
		pos += off;
	}
	*storelen = stored;
	*rest = inlen - pos;
	return rc;
}

START_TEST(test_data)
{
	char store[256];
	size_t storelen, rest, chunk, cap;
	const char *want = data_cases[_i].out;
	size_t wantlen = data_cases[_i].outlen;
	int rc;

	/* Every chunking of the input and every output size give the same result. */
	for (chunk = 1; chunk <= data_cases[_i].inlen + 1; chunk++) {
		for (cap = 2; cap <= 64; cap = cap < 8 ? cap + 1 : cap * 2) {
			rc = decode_all(data_cases[_i].in, data_cases[_i].inlen, chunk, cap, store, &storelen, &rest);
			ck_assert_msg(rc == data_cases[_i].end, "row %d chunk %zu cap %zu: end %d", _i, chunk, cap, rc);
			ck_assert_msg(storelen == wantlen && memcmp(store, want, wantlen) == 0,
			    "row %d chunk %zu cap %zu: stored '%.*s'", _i, chunk, cap, (int)storelen, store);
			ck_assert_msg(rest == strlen(data_cases[_i].rest), "row %d chunk %zu: rest %zu", _i, chunk, rest);
		}
	}
}
END_TEST

/* A long line is streamed, never needs to fit anywhere. */
START_TEST(test_data_long_line)
{
	size_t len = 300000, i, stored = 0, off = 0, used, olen;
	char *in = malloc(len + 5), out[4096];
	struct smtp_data d;
	int rc = SMTP_DATA_MORE;

	ck_assert_ptr_nonnull(in);
	for (i = 0; i < len; i++)
		in[i] = (char)('a' + i % 26);
	memcpy(in + len, "\r\n.\r\n", 5);
	smtp_data_init(&d);
	while (rc == SMTP_DATA_MORE) {
		rc = smtp_data_decode(&d, in + off, len + 5 - off, &used, out, sizeof(out), &olen);
		for (i = 0; i < olen; i++, stored++)
			ck_assert(stored == len ? out[i] == '\n' : out[i] == in[stored]);
		off += used;
	}
	ck_assert_uint_eq(off, len + 5);
	ck_assert_uint_eq(stored, len + 1);
	free(in);
}
END_TEST

/* ---- Received: headers ---- */

static const struct {
	const char     *msg;
	unsigned	received;
} hdr_cases[] = {
	{ "Received: a\nReceived: b\nSubject: x\n\nReceived: body\n", 2 },
	{ "received: a\nRECEIVED: b\nReceived:c\n", 3 },
	{ "Subject: x\nReceived: a\n\tfolded\nReceived: b\n\n", 2 },
	{ "X-Received: a\nReceivedX: b\n Received: c\nReceived : d\n\n", 0 },
	{ "\nReceived: a\n", 0 },					/* no header at all */
	{ "Subject: x\n\nReceived: a\nReceived: b\n", 0 },
	{ "Received", 0 },
	{ "Received:", 1 },
	{ "Receiv", 0 },
	{ "", 0 },
};

START_TEST(test_hdrscan)
{
	const char *msg = hdr_cases[_i].msg;
	size_t len = strlen(msg), cut;

	/* Cut anywhere into two feeds: the same count. */
	for (cut = 0; cut <= len; cut++) {
		struct smtp_hdrscan h;

		smtp_hdrscan_init(&h);
		smtp_hdrscan_feed(&h, msg, cut);
		smtp_hdrscan_feed(&h, msg + cut, len - cut);
		ck_assert_msg(h.received == hdr_cases[_i].received, "row %d cut %zu: %u", _i, cut, h.received);
	}
}
END_TEST

START_TEST(test_hdrscan_many)
{
	struct smtp_hdrscan h;
	unsigned i;

	smtp_hdrscan_init(&h);
	for (i = 0; i < 1000; i++)
		smtp_hdrscan_feed(&h, "Received: from x by y\n", 22);
	smtp_hdrscan_feed(&h, "\nReceived: body\n", 16);
	ck_assert_uint_eq(h.received, 1000);
	ck_assert(h.done);
}
END_TEST

/* ---- Return-Path: headers dropped ---- */

static const struct {
	const char     *msg, *want;
} rp_cases[] = {
	{ "Return-Path: <x@y>\nSubject: s\n\nbody\n", "Subject: s\n\nbody\n" },
	{ "Subject: s\nreturn-path: <x@y>\nRETURN-PATH:<z@y>\nTo: t\n\nb\n", "Subject: s\nTo: t\n\nb\n" },
	{ "Return-Path:\n <x@y>\n\t(folded)\nTo: t\n\n", "To: t\n\n" },
	{ "Return-Path \t: <obs@y>\nTo: t\n\n", "To: t\n\n" },
	{ "Return-Path: <a@y>\nReturn-Path: <b@y>\n folded\n\n", "\n" },
	{ "To: t\n\nReturn-Path: <in the body>\n", "To: t\n\nReturn-Path: <in the body>\n" },
	{ "\nReturn-Path: <x@y>\n", "\nReturn-Path: <x@y>\n" },	/* no header section */
	{ "X-Return-Path: a\nReturn-PathX: b\nReturn-Path\nReturn-Pat: c\n Return-Path: d\n\n",
	  "X-Return-Path: a\nReturn-PathX: b\nReturn-Path\nReturn-Pat: c\n Return-Path: d\n\n" },
	{ "Return-Path                                     : long\n\n",	/* past the hold: kept */
	  "Return-Path                                     : long\n\n" },
	{ "To: t\n folded Return-Path: x\nReturn-Path: <x@y>\r\n\n", "To: t\n folded Return-Path: x\n\n" },
	{ "Return-Pa", "Return-Pa" },				/* held, given back by finish */
	{ "Return-Path: <x@y>", "" },
	{ "", "" },
};

/* Runs msg through a filter in pieces cut at cut1 and cut2; returns the output. */
static size_t
hdrfilter_run(const char *msg, size_t len, size_t cut1, size_t cut2, char *out)
{
	struct smtp_hdrfilter f;
	size_t o;

	smtp_hdrfilter_init(&f);
	o = smtp_hdrfilter_feed(&f, msg, cut1, out);
	o += smtp_hdrfilter_feed(&f, msg + cut1, cut2 - cut1, out + o);
	o += smtp_hdrfilter_feed(&f, msg + cut2, len - cut2, out + o);
	o += smtp_hdrfilter_finish(&f, out + o);
	return o;
}

START_TEST(test_hdrfilter)
{
	const char *msg = rp_cases[_i].msg, *want = rp_cases[_i].want;
	size_t len = strlen(msg), c1, c2, o;
	char out[256];

	ck_assert_uint_lt(len + 3 * SMTP_HDRFILTER_HOLD, sizeof(out));
	for (c1 = 0; c1 <= len; c1++)
		for (c2 = c1; c2 <= len; c2++) {
			o = hdrfilter_run(msg, len, c1, c2, out);
			ck_assert_msg(o == strlen(want) && memcmp(out, want, o) == 0,
			    "row %d cuts %zu,%zu: '%.*s', want '%s'", _i, c1, c2, (int)o, out, want);
		}
}
END_TEST

/* Byte by byte through a long header and body: bounded state, same output. */
START_TEST(test_hdrfilter_long)
{
	static char msg[200000], want[200000], out[200000 + SMTP_HDRFILTER_HOLD];
	struct smtp_hdrfilter f;
	size_t len = 0, wlen = 0, o = 0, i;

	for (i = 0; i < 2000; i++) {
		if (i % 2) {
			len += (size_t)sprintf(msg + len, "Return-Path: <%zu@y>\n\tmore\n", i);
			continue;
		}
		len += (size_t)sprintf(msg + len, "X-H: %zu\n", i);
		wlen += (size_t)sprintf(want + wlen, "X-H: %zu\n", i);
	}
	for (i = 0; i < 2000; i++) {
		len += (size_t)sprintf(msg + len, "%sReturn-Path: <body%zu>\n", i ? "" : "\n", i);
		wlen += (size_t)sprintf(want + wlen, "%sReturn-Path: <body%zu>\n", i ? "" : "\n", i);
	}
	smtp_hdrfilter_init(&f);
	for (i = 0; i < len; i++)
		o += smtp_hdrfilter_feed(&f, msg + i, 1, out + o);
	o += smtp_hdrfilter_finish(&f, out + o);
	ck_assert_uint_eq(o, wlen);
	ck_assert_mem_eq(out, want, o);
}
END_TEST

#define N(a)	((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
smtp_parse_suite(void)
{
	Suite *s = suite_create("smtp_parse");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_command, 0, N(command_cases));
	tcase_add_test(tc, test_command_overlong);
	tcase_add_loop_test(tc, test_helo, 0, N(helo_cases));
	tcase_add_test(tc, test_helo_overlong);
	tcase_add_loop_test(tc, test_mail, 0, N(mail_cases));
	tcase_add_test(tc, test_mail_overlong_path);
	tcase_add_test(tc, test_mail_auth_param);
	tcase_add_loop_test(tc, test_rcpt, 0, N(rcpt_cases));
	tcase_add_test(tc, test_dsn_params_kept);
	tcase_add_test(tc, test_rcpt_utf8);
	tcase_add_loop_test(tc, test_bdat, 0, N(bdat_cases));
	tcase_add_test(tc, test_chunk_decode_any_split);
	tcase_add_loop_test(tc, test_xtext, 0, N(xtext_cases));
	tcase_add_test(tc, test_xtext_small_buffer);
	tcase_add_loop_test(tc, test_data, 0, N(data_cases));
	tcase_add_test(tc, test_data_long_line);
	tcase_add_loop_test(tc, test_hdrscan, 0, N(hdr_cases));
	tcase_add_test(tc, test_hdrscan_many);
	tcase_add_loop_test(tc, test_hdrfilter, 0, N(rp_cases));
	tcase_add_test(tc, test_hdrfilter_long);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(smtp_parse_suite());
}
