/*
 * NAME
 *	test_log - unit tests of log_quote()
 * SYNOPSIS
 *	test_log
 * DESCRIPTION
 *	log_quote() over a table of values: plain values stay bare; spaces,
 *	'=', quotes and backslashes are quoted; ASCII controls and DEL, C1
 *	controls (a lone 0x9b, and U+009B as \xc2\x9b), bidi controls and
 *	line separators, broken, overlong and surrogate UTF-8 all become
 *	\xNN; well-formed UTF-8 text stays readable.  Whatever the input, the
 *	result holds no byte below 0x20, no DEL and no C1 control, and a cut
 *	never splits an escape or a UTF-8 character.
 */
#include <check.h>
#include <string.h>

#include "log.h"
#include "testutil.h"

static const struct {
	const char     *in;
	const char     *want;
} quote_cases[] = {
	{ "plain", "plain" },
	{ "", "\"\"" },
	{ "two words", "\"two words\"" },
	{ "a=b", "\"a=b\"" },
	{ "say \"hi\"", "\"say \\\"hi\\\"\"" },
	{ "back\\slash", "\"back\\\\slash\"" },
	{ "tab\there", "\"tab\\x09here\"" },
	{ "line\nbreak", "\"line\\x0abreak\"" },
	{ "cr\rhere", "\"cr\\x0dhere\"" },
	{ "esc\x1b[31m", "\"esc\\x1b[31m\"" },
	{ "del\x7f", "\"del\\x7f\"" },
	{ "csi\x9b" "31m", "\"csi\\x9b31m\"" },			/* a lone C1 byte (outbox file names) */
	{ "u009b\xc2\x9b" "31m", "\"u009b\\xc2\\x9b31m\"" },	/* C1 as UTF-8 */
	{ "u0085\xc2\x85", "\"u0085\\xc2\\x85\"" },		/* NEL */
	{ "r\xc3\xa9sum\xc3\xa9.eml", "\"r\xc3\xa9sum\xc3\xa9.eml\"" },	/* UTF-8 text stays */
	{ "\xc2\xa0nbsp", "\"\xc2\xa0nbsp\"" },			/* U+00A0: first after C1, stays */
	{ "\xe2\x82\xac" "5", "\"\xe2\x82\xac" "5\"" },		/* euro sign */
	{ "\xf0\x9f\x93\xa7", "\"\xf0\x9f\x93\xa7\"" },		/* 4 bytes */
	{ "rlo\xe2\x80\xaegpj.exe", "\"rlo\\xe2\\x80\\xaegpj.exe\"" },	/* U+202E bidi override */
	{ "ls\xe2\x80\xa8x", "\"ls\\xe2\\x80\\xa8x\"" },		/* U+2028 line separator */
	{ "cut\xc3", "\"cut\\xc3\"" },				/* sequence cut by the end */
	{ "bad\xc3(", "\"bad\\xc3(\"" },				/* no continuation byte */
	{ "overlong\xc0\xaf", "\"overlong\\xc0\\xaf\"" },
	{ "overlong3\xe0\x80\xaf", "\"overlong3\\xe0\\x80\\xaf\"" },
	{ "surrogate\xed\xa0\x80", "\"surrogate\\xed\\xa0\\x80\"" },
	{ "big\xf4\x90\x80\x80", "\"big\\xf4\\x90\\x80\\x80\"" },	/* over U+10FFFF */
	{ "lone\x80", "\"lone\\x80\"" },
	{ "\xff\xfe", "\"\\xff\\xfe\"" },
};
#define N_QUOTE_CASES	(sizeof(quote_cases) / sizeof(quote_cases[0]))

START_TEST(test_quote)
{
	char buf[256];

	ck_assert_str_eq(log_quote(buf, sizeof(buf), quote_cases[_i].in), quote_cases[_i].want);
}
END_TEST

/* No byte a terminal acts on survives, for every single byte and every pair. */
START_TEST(test_quote_never_passes_controls)
{
	char in[4], buf[64];
	unsigned a, b;
	size_t i;

	for (a = 1; a < 256; a++) {
		for (b = 0; b < 256; b++) {
			in[0] = (char)a;
			in[1] = (char)b;
			in[2] = '\0';
			log_quote(buf, sizeof(buf), in);
			for (i = 0; buf[i] != '\0'; i++) {
				unsigned char c = (unsigned char)buf[i];

				ck_assert_msg(c >= 0x20 && c != 0x7f, "%02x %02x: control %02x in %s", a, b, c, buf);
				/* a C1 control as UTF-8 (c2 80..9f) never survives */
				ck_assert_msg(!(c == 0xc2 && (unsigned char)buf[i + 1] >= 0x80 &&
				    (unsigned char)buf[i + 1] <= 0x9f), "%02x %02x: C1 in %s", a, b, buf);
				/* a raw byte >= 0x80 only as part of valid UTF-8: never a lone 0x80..0xbf lead */
				ck_assert_msg(!(c >= 0x80 && c <= 0xbf && (i == 0 || (unsigned char)buf[i - 1] < 0x80)),
				    "%02x %02x: stray byte %02x in %s", a, b, c, buf);
			}
		}
	}
}
END_TEST

/* A cut value ends in "..." and never splits an escape or a character. */
START_TEST(test_quote_cut)
{
	char buf[12];

	ck_assert_str_eq(log_quote(buf, sizeof(buf), "\x9b\x9b\x9b\x9b"), "\"\\x9b...\"");
	ck_assert_str_eq(log_quote(buf, sizeof(buf), "ab\xe2\x82\xac\xe2\x82\xac"), "\"ab\xe2\x82\xac...\"");
	ck_assert_str_eq(log_quote(buf, sizeof(buf), "abcdefghijklmnop"), "abcdefgh...");
}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("quote");

	tcase_add_loop_test(tc, test_quote, 0, N_QUOTE_CASES);
	tcase_add_test(tc, test_quote_never_passes_controls);
	tcase_add_test(tc, test_quote_cut);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(log_suite());
}
