/*
 * NAME
 *	test_relay_smtp - unit tests of the relay's SMTP client pieces
 * SYNOPSIS
 *	test_relay_smtp
 * DESCRIPTION
 *	Drives smtpd/relay_smtp.c with what a server might send and what a
 *	spool might hold: the reply parser (multi-line, malformed, overlong,
 *	too many lines, codes, enhanced codes, sanitising, the bound on the
 *	text), the "too many recipients" reply, the EHLO capability parser,
 *	the DATA encoder (a table of edge cases, and a randomized test that
 *	any chunking and any output buffer size give the output of an
 *	independent reference model), the command formatters, local replies
 *	from the errmap table, the backoff, the outcome decision and
 *	relay_settle() with expiry.
 * ENVIRONMENT
 *	RELAY_TEST_SEED	seed of the randomized test (default: fixed).
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/envelope.h"
#include "common/errmap.h"
#include "common/queue.h"
#include "smtpd/relay_smtp.h"
#include "testutil.h"

/*
 * Reply parser.
 */

/* Feeds lines until one completes the reply; returns the last result. */
static int
feed(struct relay_reply *r, bool ehlo, const char *const *lines, size_t n)
{
	int rc = 0;
	size_t i;

	relay_reply_begin(r, ehlo);
	for (i = 0; i < n; i++) {
		rc = relay_reply_line(r, lines[i], strlen(lines[i]));
		if (rc != 0)
			break;
	}
	return rc;
}

START_TEST(reply_single_line)
{
	struct relay_reply r;

	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, "250 2.0.0 Ok: queued as 4F2", 27), 1);
	ck_assert_int_eq(r.code, 250);
	ck_assert_str_eq(r.esc, "2.0.0");
	ck_assert_str_eq(r.text, "250 2.0.0 Ok: queued as 4F2");
	ck_assert_uint_eq(r.nlines, 1);
	ck_assert(r.done);
	/* A complete reply takes no more lines. */
	ck_assert_int_eq(relay_reply_line(&r, "250 again", 9), -EPROTO);
}
END_TEST

START_TEST(reply_bare_code)
{
	struct relay_reply r;

	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, "354", 3), 1);
	ck_assert_int_eq(r.code, 354);
	ck_assert_str_eq(r.text, "354");
	ck_assert_str_eq(r.esc, "");
}
END_TEST

START_TEST(reply_multi_line)
{
	static const char *const lines[] = { "550-5.1.1 first part", "550-", "550 5.1.1 last part" };
	struct relay_reply r;

	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, lines[0], strlen(lines[0])), 0);
	ck_assert(!r.done);
	ck_assert_int_eq(relay_reply_line(&r, lines[1], strlen(lines[1])), 0);
	ck_assert_int_eq(relay_reply_line(&r, lines[2], strlen(lines[2])), 1);
	ck_assert_int_eq(r.code, 550);
	ck_assert_str_eq(r.esc, "5.1.1");
	/* The repeated enhanced code is not repeated in the text. */
	ck_assert_str_eq(r.text, "550 5.1.1 first part last part");
	ck_assert_uint_eq(r.nlines, 3);
}
END_TEST

START_TEST(reply_enhanced_codes)
{
	static const struct {
		const char *line, *esc;
	} cases[] = {
		{ "250 2.1.5 Ok", "2.1.5" },
		{ "452 4.5.3 Too many", "4.5.3" },
		{ "550 5.7.1", "5.7.1" },
		{ "554 5.123.456 x", "5.123.456" },
		{ "550 4.1.1 class differs from the code", "" },
		{ "550 5.1234.1 subject too long", "" },
		{ "550 5.1. x", "" },
		{ "550 5.1.1x", "" },
		{ "250 Ok", "" },
		{ "220 mx.example.org ESMTP", "" },
	};
	struct relay_reply r;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		relay_reply_begin(&r, false);
		ck_assert_int_eq(relay_reply_line(&r, cases[i].line, strlen(cases[i].line)), 1);
		ck_assert_msg(strcmp(r.esc, cases[i].esc) == 0, "'%s': esc '%s', want '%s'", cases[i].line,
		    r.esc, cases[i].esc);
	}
}
END_TEST

START_TEST(reply_malformed)
{
	static const char *const bad[] = {
		"", "2", "25", "25x", "abc", "2500 x", "250x", "250\tx", " 250 x", "250_x",
		"150 x", "650 x", "099 x", "260 x", "2a0 x", "25a x",
	};
	struct relay_reply r;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		relay_reply_begin(&r, false);
		ck_assert_msg(relay_reply_line(&r, bad[i], strlen(bad[i])) == -EPROTO, "'%s' accepted", bad[i]);
	}
	/* Every line of one reply carries the same code. */
	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, "250-a", 5), 0);
	ck_assert_int_eq(relay_reply_line(&r, "251 b", 5), -EPROTO);
	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, "250-a", 5), 0);
	ck_assert_int_eq(relay_reply_line(&r, "250x", 4), -EPROTO);
	/* A NUL inside the line is data, not an end: it is sanitised. */
	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, "250 a\0b", 7), 1);
	ck_assert_str_eq(r.text, "250 a?b");
}
END_TEST

START_TEST(reply_line_bound)
{
	static char line[RELAY_LINE_MAX + 8];
	struct relay_reply r;
	size_t max = RELAY_LINE_MAX - 2;	/* the line ending counts */

	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, line, max), 1);
	ck_assert_uint_lt(r.textlen, RELAY_REPLY_TEXT_MAX);
	ck_assert_uint_eq(strlen(r.text), r.textlen);
	ck_assert(r.cut);
	ck_assert_str_eq(r.text + r.textlen - 3, "...");
	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, line, max + 1), -E2BIG);
}
END_TEST

START_TEST(reply_lines_bound)
{
	struct relay_reply r;
	unsigned i;

	relay_reply_begin(&r, false);
	for (i = 0; i < RELAY_REPLY_LINES_MAX - 1; i++)
		ck_assert_int_eq(relay_reply_line(&r, "250-x", 5), 0);
	ck_assert_int_eq(relay_reply_line(&r, "250 last", 8), 1);
	ck_assert_uint_eq(r.nlines, RELAY_REPLY_LINES_MAX);

	relay_reply_begin(&r, false);
	for (i = 0; i < RELAY_REPLY_LINES_MAX; i++)
		ck_assert_int_eq(relay_reply_line(&r, "250-x", 5), 0);
	ck_assert_int_eq(relay_reply_line(&r, "250 one too many", 16), -E2BIG);
}
END_TEST

START_TEST(reply_sanitised)
{
	struct relay_reply r;
	size_t i;

	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, "550 bad\x01\x7f\x80\xff\r end", 16), 1);
	ck_assert_str_eq(r.text, "550 bad????? end");
	for (i = 0; i < r.textlen; i++)
		ck_assert(r.text[i] >= 0x20 && r.text[i] < 0x7f);
	/* The text bound holds across many lines too. */
	relay_reply_begin(&r, false);
	for (i = 0; i < 50; i++)
		ck_assert_int_eq(relay_reply_line(&r, "451-0123456789012345678901234567890123456789", 44), 0);
	ck_assert_int_eq(relay_reply_line(&r, "451 end", 7), 1);
	ck_assert_uint_eq(r.textlen, RELAY_REPLY_TEXT_MAX - 1);
	ck_assert_str_eq(r.text + r.textlen - 3, "...");
}
END_TEST

START_TEST(reply_rcpt_overflow)
{
	static const struct {
		const char *line;
		bool overflow;
	} cases[] = {
		{ "452 4.5.3 Too many recipients", true },
		{ "452 Too many recipients", true },
		{ "452 4.3.1 Insufficient system storage", false },
		{ "451 4.5.3 odd", false },
		{ "552 5.5.3 Too many recipients", false },
		{ "250 2.1.5 Ok", false },
	};
	struct relay_reply r;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		relay_reply_begin(&r, false);
		ck_assert_int_eq(relay_reply_line(&r, cases[i].line, strlen(cases[i].line)), 1);
		ck_assert_msg(relay_reply_is_rcpt_overflow(&r) == cases[i].overflow, "'%s'", cases[i].line);
	}
}
END_TEST

START_TEST(reply_classes)
{
	ck_assert_int_eq(relay_reply_class(220), 2);
	ck_assert_int_eq(relay_reply_class(354), 3);
	ck_assert_int_eq(relay_reply_class(421), 4);
	ck_assert_int_eq(relay_reply_class(599), 5);
	ck_assert_int_eq(relay_reply_class(199), 0);
	ck_assert_int_eq(relay_reply_class(600), 0);
	ck_assert_int_eq(relay_reply_class(0), 0);
}
END_TEST

/*
 * EHLO capabilities.
 */

START_TEST(caps_full)
{
	static const char *const lines[] = {
		"250-mx.example.org greets you", "250-PIPELINING", "250-SIZE 10485760",
		"250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-smtputf8", "250-CHUNKING", "250-BINARYMIME",
		"250 STARTTLS",
	};
	struct relay_reply r;

	ck_assert_int_eq(feed(&r, true, lines, 9), 1);
	ck_assert(r.caps.smtputf8 && r.caps.chunking && r.caps.binarymime);
	ck_assert(r.caps.pipelining);
	ck_assert(r.caps.size);
	ck_assert(r.caps.eightbitmime);
	ck_assert(r.caps.starttls);
	ck_assert(!r.caps.auth);
	ck_assert(!r.caps.dsn);
	ck_assert_uint_eq(r.caps.size_max, 10485760ULL);
}
END_TEST

/* RFC 3461: DSN in EHLO, and the parameters passed on only to such a server. */
START_TEST(dsn_params_passed_on)
{
	static const char *const with[] = { "250-host", "250-DSN", "250 dsnx" };
	struct relay_reply r;
	struct envelope env;
	char params[RELAY_DSN_PARAMS_MAX], buf[RELAY_LINE_MAX];

	ck_assert_int_eq(feed(&r, true, with, 3), 1);
	ck_assert(r.caps.dsn);
	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "a@b.example", NULL), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "bob@localhost"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "carol@localhost"), 0);
	relay_dsn_mail_params(params, sizeof(params), &r.caps, &env);
	ck_assert_str_eq(params, "");				/* nothing given, nothing sent */
	relay_dsn_rcpt_params(params, sizeof(params), &r.caps, &env.rcpt[1]);
	ck_assert_str_eq(params, "");
	ck_assert_int_eq(envelope_set_dsn_request(&env, DSN_RET_HDRS, "QQ+2B1"), 0);
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 0, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, "rfc822;bob+2B1@x"), 0);
	relay_dsn_mail_params(params, sizeof(params), &r.caps, &env);
	ck_assert_int_gt(relay_cmd_mail(buf, sizeof(buf), env.from, &r.caps, 10, false, false, params), 0);
	ck_assert_str_eq(buf, "MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ+2B1\r\n");
	relay_dsn_rcpt_params(params, sizeof(params), &r.caps, &env.rcpt[0]);
	ck_assert_int_gt(relay_cmd_rcpt(buf, sizeof(buf), env.rcpt[0].addr, false, params), 0);
	ck_assert_str_eq(buf, "RCPT TO:<bob@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2B1@x\r\n");
	r.caps.dsn = false;					/* a server without DSN gets none */
	relay_dsn_mail_params(params, sizeof(params), &r.caps, &env);
	ck_assert_str_eq(params, "");
	relay_dsn_rcpt_params(params, sizeof(params), &r.caps, &env.rcpt[0]);
	ck_assert_str_eq(params, "");
	envelope_free(&env);
}
END_TEST

START_TEST(caps_auth)
{
	static const char *const both[] = { "250-host", "250-AUTH PLAIN LOGIN SCRAM-SHA-256",
	    "250 AUTH=PLAIN LOGIN" };
	static const char *const bare[] = { "250-host", "250 auth" };
	static const char *const lookalike[] = { "250-host", "250-AUTHX PLAIN", "250 STARTTLSX" };
	struct relay_reply r;

	ck_assert_int_eq(feed(&r, true, both, 3), 1);
	ck_assert(r.caps.auth);
	ck_assert_str_eq(r.caps.auth_mechs, "PLAIN LOGIN SCRAM-SHA-256 PLAIN LOGIN");
	ck_assert(!r.caps.starttls);
	ck_assert_int_eq(feed(&r, true, bare, 2), 1);
	ck_assert(r.caps.auth);
	ck_assert_str_eq(r.caps.auth_mechs, "");
	ck_assert_int_eq(feed(&r, true, lookalike, 3), 1);
	ck_assert(!r.caps.auth && !r.caps.starttls);
	{
		/* A mechanism list longer than the field is cut, never overflows. */
		char longline[RELAY_LINE_MAX - 2];
		const char *lines[2] = { "250-host", longline };

		memset(longline, 'A', sizeof(longline) - 1);
		memcpy(longline, "250 AUTH ", 9);
		longline[sizeof(longline) - 1] = '\0';
		ck_assert_int_eq(feed(&r, true, lines, 2), 1);
		ck_assert_uint_eq(strlen(r.caps.auth_mechs), RELAY_AUTH_MECHS_MAX - 2);
	}
}
END_TEST

START_TEST(caps_variants)
{
	static const char *const lower[] = { "250-host", "250-pipelining", "250 size" };
	static const char *const none[] = { "250-host", "250-PIPELININGX", "250-XSIZE 5", "250 8BITMIMEX" };
	static const char *const greet[] = { "250 PIPELINING" };
	static const char *const badsize[] = { "250-host", "250 SIZE 12abc" };
	static const char *const huge[] = { "250-host", "250 SIZE 999999999999999999999999" };
	static const char *const zero[] = { "250-host", "250 SIZE 0" };
	struct relay_reply r;

	ck_assert_int_eq(feed(&r, true, lower, 3), 1);
	ck_assert(r.caps.pipelining && r.caps.size && !r.caps.eightbitmime);
	ck_assert_uint_eq(r.caps.size_max, 0);

	ck_assert_int_eq(feed(&r, true, none, 4), 1);
	ck_assert(!r.caps.pipelining && !r.caps.size && !r.caps.eightbitmime);

	/* The first line is the server's name, not a keyword. */
	ck_assert_int_eq(feed(&r, true, greet, 1), 1);
	ck_assert(!r.caps.pipelining);

	ck_assert_int_eq(feed(&r, true, badsize, 2), 1);
	ck_assert(r.caps.size);
	ck_assert_uint_eq(r.caps.size_max, 0);
	ck_assert_int_eq(feed(&r, true, huge, 2), 1);
	ck_assert(r.caps.size);
	ck_assert_uint_eq(r.caps.size_max, 0);
	ck_assert_int_eq(feed(&r, true, zero, 2), 1);
	ck_assert_uint_eq(r.caps.size_max, 0);

	/* Not an EHLO reply: nothing is read as a capability. */
	{
		static const char *const full[] = { "250-host", "250 PIPELINING" };

		ck_assert_int_eq(feed(&r, false, full, 2), 1);
		ck_assert(!r.caps.pipelining);
	}
}
END_TEST

/*
 * The DATA encoder.
 */

static size_t
encode_all(const char *in, size_t inlen, char *out, size_t outsize)
{
	struct relay_dot st;
	size_t consumed, n;

	relay_dot_init(&st);
	n = relay_dot_encode(&st, in, inlen, &consumed, out, outsize);
	ck_assert_uint_eq(consumed, inlen);
	n += relay_dot_finish(&st, out + n, outsize - n);
	return n;
}

START_TEST(dot_table)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", ".\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ "a\n", "a\r\n.\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ "a\nb", "a\r\nb\r\n.\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ ".\n", "..\r\n.\r\n" },
		{ "\n.\n", "\r\n..\r\n.\r\n" },
		{ "\r\n.\r\n", "\r\n..\r\n.\r\n" },
		{ "\r.\r", "\r\n..\r\n.\r\n" },
		{ "..x\n", "...x\r\n.\r\n" },
		{ "a.b\n.c", "a.b\r\n..c\r\n.\r\n" },
		{ "a\rb", "a\r\nb\r\n.\r\n" },
		{ "a\r", "a\r\n.\r\n" },
		{ "\r", "\r\n.\r\n" },
		{ "\n", "\r\n.\r\n" },
		{ "\r\r\n", "\r\n\r\n.\r\n" },
		{ "\n\r", "\r\n\r\n.\r\n" },
		{ "x\n\n", "x\r\n\r\n.\r\n" },
		{ "a\n.\nMAIL FROM:<x@y>\r\n", "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n" },
		{ " .x\n", " .x\r\n.\r\n" },
	};
	char out[256];
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = encode_all(cases[i].in, strlen(cases[i].in), out, sizeof(out));
		out[n] = '\0';
		ck_assert_msg(strcmp(out, cases[i].out) == 0, "case %zu: got '%s'", i, out);
	}
}
END_TEST

START_TEST(dot_binary_and_8bit)
{
	static const char in[] = "\x00\xff.\n\x80\n";
	static const char want[] = "\x00\xff.\r\n\x80\r\n.\r\n";
	char out[64];
	size_t n = encode_all(in, sizeof(in) - 1, out, sizeof(out));

	ck_assert_uint_eq(n, sizeof(want) - 1);
	ck_assert(memcmp(out, want, n) == 0);
}
END_TEST

START_TEST(dot_finish_needs_room)
{
	struct relay_dot st;
	char out[RELAY_DOT_FINISH_MAX];
	size_t consumed;

	relay_dot_init(&st);
	ck_assert_uint_eq(relay_dot_encode(&st, "abc", 3, &consumed, out, sizeof(out)), 3);
	ck_assert_uint_eq(relay_dot_finish(&st, out, RELAY_DOT_FINISH_MAX - 1), 0);
	ck_assert_uint_eq(relay_dot_finish(&st, out, sizeof(out)), 5);
	ck_assert(memcmp(out, "\r\n.\r\n", 5) == 0);
}
END_TEST

START_TEST(dot_partial_output)
{
	/* A full output stops the encoder cleanly; it resumes where it stopped. */
	struct relay_dot st;
	char out[4];
	size_t consumed, n;

	relay_dot_init(&st);
	n = relay_dot_encode(&st, "\r.", 2, &consumed, out, 1);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(consumed, 1);		/* the CR waits in the state */
	n = relay_dot_encode(&st, ".", 1, &consumed, out, 3);
	ck_assert_uint_eq(n, 0);		/* "\r\n.." needs 4 */
	ck_assert_uint_eq(consumed, 0);
	n = relay_dot_encode(&st, ".", 1, &consumed, out, 4);
	ck_assert_uint_eq(consumed, 1);
	ck_assert_uint_eq(n, 4);
	ck_assert(memcmp(out, "\r\n..", 4) == 0);
}
END_TEST

/* An independent model: normalise line endings, split, stuff, join. */
static size_t
dot_reference(const char *in, size_t inlen, char *out)
{
	size_t i = 0, n = 0;
	bool bol = true;

	while (i < inlen) {
		char c = in[i];

		if (c == '\r' || c == '\n') {
			i += (c == '\r' && i + 1 < inlen && in[i + 1] == '\n') ? 2 : 1;
			out[n++] = '\r';
			out[n++] = '\n';
			bol = true;
			continue;
		}
		if (bol && c == '.')
			out[n++] = '.';
		out[n++] = c;
		bol = false;
		i++;
	}
	if (!bol) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	memcpy(out + n, ".\r\n", 3);
	return n + 3;
}

START_TEST(dot_random_chunking)
{
	static const char alphabet[] = { 'a', '.', '\r', '\n', 'b', '.', '\r', '\n', ' ', '\0' };
	enum { MAXLEN = 300, ROUNDS = 3000 };
	static char in[MAXLEN], want[2 * MAXLEN + 8], got[2 * MAXLEN + 8];
	const char *env = getenv("RELAY_TEST_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : 20261129u;
	int round;

	srand(seed);
	for (round = 0; round < ROUNDS; round++) {
		size_t len = (size_t)rand() % MAXLEN, i, pos = 0, n = 0, wantlen;
		struct relay_dot st;

		for (i = 0; i < len; i++)
			in[i] = alphabet[(size_t)rand() % sizeof(alphabet)];
		wantlen = dot_reference(in, len, want);
		relay_dot_init(&st);
		while (pos < len) {
			size_t chunk = 1 + (size_t)rand() % 17, consumed, outsize;

			if (chunk > len - pos)
				chunk = len - pos;
			/* Output room from 4 (one octet's worst case) upwards. */
			outsize = 4 + (size_t)rand() % 12;
			if (outsize > sizeof(got) - n)
				outsize = sizeof(got) - n;
			n += relay_dot_encode(&st, in + pos, chunk, &consumed, got + n, outsize);
			ck_assert_msg(consumed > 0, "seed %u round %d: no progress", seed, round);
			pos += consumed;
		}
		n += relay_dot_finish(&st, got + n, sizeof(got) - n);
		ck_assert_msg(n == wantlen && memcmp(got, want, n) == 0,
		    "seed %u round %d: chunked output differs from the model", seed, round);
		/* Whatever the input, the wire holds CR only before LF, and LF only after CR. */
		for (i = 0; i < n; i++) {
			if (got[i] == '\r')
				ck_assert(i + 1 < n && got[i + 1] == '\n');
			if (got[i] == '\n')
				ck_assert(i > 0 && got[i - 1] == '\r');
		}
	}
}
END_TEST

START_TEST(dot_worst_case_bound)
{
	/* Out of RELAY_DOT_ENCODE_MAX(n) octets the whole input always fits. */
	static const char *const inputs[] = { "\r.\r.\r.\r.", ".\n.\n.\n", "\r\r\r\r", "\n\n\n" };
	char out[64];
	size_t i;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct relay_dot st;
		size_t consumed, len = strlen(inputs[i]);

		relay_dot_init(&st);
		st.cr = true;	/* the worst start: a CR left from the previous chunk */
		relay_dot_encode(&st, inputs[i], len, &consumed, out, RELAY_DOT_ENCODE_MAX(len));
		ck_assert_uint_eq(consumed, len);
	}
}
END_TEST

/*
 * Commands.
 */

START_TEST(cmd_mail)
{
	struct relay_caps none = { 0 }, all = { .pipelining = true, .size = true, .eightbitmime = true };
	char buf[128];

	ck_assert_int_eq(relay_cmd_mail(buf, sizeof(buf), "a@b.example", &none, 99, false, false, NULL), 25);
	ck_assert_str_eq(buf, "MAIL FROM:<a@b.example>\r\n");
	/* BODY=8BITMIME only for 8-bit content, and only to a server that offers it (RFC 6152) */
	ck_assert_int_gt(relay_cmd_mail(buf, sizeof(buf), "a@b.example", &all, 1234, false, false, NULL), 0);
	ck_assert_str_eq(buf, "MAIL FROM:<a@b.example> SIZE=1234\r\n");
	ck_assert_int_gt(relay_cmd_mail(buf, sizeof(buf), "a@b.example", &all, 1234, true, false, NULL), 0);
	ck_assert_str_eq(buf, "MAIL FROM:<a@b.example> SIZE=1234 BODY=8BITMIME\r\n");
	ck_assert_int_gt(relay_cmd_mail(buf, sizeof(buf), "a@b.example", &none, 1234, true, false, NULL), 0);
	ck_assert_str_eq(buf, "MAIL FROM:<a@b.example>\r\n");
	ck_assert_int_gt(relay_cmd_mail(buf, sizeof(buf), "", &none, 0, false, false, NULL), 0);
	ck_assert_str_eq(buf, "MAIL FROM:<>\r\n");
	ck_assert_int_gt(relay_cmd_mail(buf, sizeof(buf), "\"j doe\"@x.example", &none, 0, false, false, NULL), 0);
	ck_assert_str_eq(buf, "MAIL FROM:<\"j doe\"@x.example>\r\n");
	ck_assert_int_eq(relay_cmd_mail(buf, sizeof(buf), "a@b\r\nRCPT TO:<x@y>", &none, 0, false, false, NULL), -EINVAL);
	ck_assert_int_eq(relay_cmd_mail(buf, sizeof(buf), "a\x7f@b", &none, 0, false, false, NULL), -EINVAL);
	ck_assert_int_eq(relay_cmd_mail(buf, sizeof(buf), "\xc3\xa9@b", &none, 0, false, false, NULL), -EILSEQ);
	/* SMTPUTF8 (RFC 6531): only for an SMTPUTF8 message to a server that offers it */
	{
		struct relay_caps utf8 = { .smtputf8 = true };

		ck_assert_int_eq(relay_cmd_mail(buf, sizeof(buf), "\xc3\xa9@b", &none, 0, false, true, NULL), -EILSEQ);
		ck_assert_int_eq(relay_cmd_mail(buf, sizeof(buf), "\xc3\xa9@b", &utf8, 0, false, false, NULL), -EILSEQ);
		ck_assert_int_gt(relay_cmd_mail(buf, sizeof(buf), "\xc3\xa9@b", &utf8, 0, false, true, NULL), 0);
		ck_assert_str_eq(buf, "MAIL FROM:<\xc3\xa9@b> SMTPUTF8\r\n");
		ck_assert_int_gt(relay_cmd_mail(buf, sizeof(buf), "a@b", &utf8, 0, false, true, NULL), 0);
		ck_assert_str_eq(buf, "MAIL FROM:<a@b> SMTPUTF8\r\n");
		ck_assert_int_eq(relay_cmd_mail(buf, sizeof(buf), "\xc2\x85@b", &utf8, 0, false, true, NULL), -EINVAL);
	}
	ck_assert_int_eq(relay_cmd_mail(buf, 20, "a@b.example", &none, 0, false, false, NULL), -ENAMETOOLONG);
	/* Exactly fits: 25 octets and the NUL. */
	ck_assert_int_eq(relay_cmd_mail(buf, 26, "a@b.example", &none, 0, false, false, NULL), 25);
	ck_assert_int_eq(relay_cmd_mail(buf, 25, "a@b.example", &none, 0, false, false, NULL), -ENAMETOOLONG);
}
END_TEST

/* BODY=BINARYMIME after the others; the header of a stored BINARYMIME message goes with CRLF, the body as it is. */
START_TEST(cmd_add_param_and_bdat_encode)
{
	char buf[48], out[64];
	unsigned long long left = 7;
	int n;

	n = snprintf(buf, sizeof(buf), "MAIL FROM:<a@b> SIZE=9\r\n");
	ck_assert_int_eq(relay_cmd_add_param(buf, sizeof(buf), (size_t)n, "BODY=BINARYMIME"), n + 16);
	ck_assert_str_eq(buf, "MAIL FROM:<a@b> SIZE=9 BODY=BINARYMIME\r\n");
	ck_assert_int_eq(relay_cmd_add_param(buf, sizeof(buf), strlen(buf), "BODY=BINARYMIME"), -ENAMETOOLONG);
	ck_assert_int_eq(relay_cmd_add_param(buf, sizeof(buf), 3, "X"), -EINVAL);
	/* "A: b\n\n" is the header (7 octets with the empty line); the body keeps its bare LF and CR. */
	n = (int)relay_bdat_encode(&left, "A: b\n\nx\ny\r", 10, out);
	ck_assert_int_eq(n, 12);
	ck_assert(memcmp(out, "A: b\r\n\r\nx\ny\r", 12) == 0);
	ck_assert(left == 0);
	left = 3;		/* split in the middle of the header: the count carries over */
	n = (int)relay_bdat_encode(&left, "a\nb", 3, out);
	n += (int)relay_bdat_encode(&left, "\n\nz", 3, out + n);
	ck_assert_int_eq(n, 7);
	ck_assert(memcmp(out, "a\r\nb\n\nz", 7) == 0);
}
END_TEST

START_TEST(cmd_rcpt_hello)
{
	char buf[64];

	ck_assert_int_gt(relay_cmd_rcpt(buf, sizeof(buf), "bob@localhost", false, NULL), 0);
	ck_assert_str_eq(buf, "RCPT TO:<bob@localhost>\r\n");
	ck_assert_int_eq(relay_cmd_rcpt(buf, sizeof(buf), "", false, NULL), -EINVAL);
	ck_assert_int_eq(relay_cmd_rcpt(buf, sizeof(buf), "b\n@x", false, NULL), -EINVAL);
	ck_assert_int_eq(relay_cmd_rcpt(buf, 10, "bob@localhost", false, NULL), -ENAMETOOLONG);
	ck_assert_int_eq(relay_cmd_rcpt(buf, sizeof(buf), "b\xc3\xb6" "b@x", false, NULL), -EILSEQ);
	ck_assert_int_gt(relay_cmd_rcpt(buf, sizeof(buf), "b\xc3\xb6" "b@x", true, NULL), 0);
	ck_assert_str_eq(buf, "RCPT TO:<b\xc3\xb6" "b@x>\r\n");
	ck_assert_int_gt(relay_cmd_hello(buf, sizeof(buf), "EHLO", "gw.example.org"), 0);
	ck_assert_str_eq(buf, "EHLO gw.example.org\r\n");
	ck_assert_int_eq(relay_cmd_hello(buf, sizeof(buf), "HELO", "two words"), -EINVAL);
	ck_assert_int_eq(relay_cmd_hello(buf, sizeof(buf), "HELO", ""), -EINVAL);
}
END_TEST

START_TEST(local_replies)
{
	char buf[RELAY_REPLY_TEXT_MAX], small[16];
	struct relay_reply r;
	int n;

	n = relay_local_reply(buf, sizeof(buf), errmap_from_errno(ECONNREFUSED), "127.0.0.1:2600");
	ck_assert_int_eq(n, (int)strlen(buf));
	ck_assert_msg(strncmp(buf, "451 4.4.1 ", 10) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "(127.0.0.1:2600)"));
	relay_local_reply(buf, sizeof(buf), errmap_from_errno(ETIMEDOUT), NULL);
	ck_assert_msg(strncmp(buf, "451 4.4.2 ", 10) == 0, "%s", buf);
	relay_local_reply(buf, sizeof(buf), errmap_from_errno(ECONNRESET), "x");
	ck_assert_msg(buf[0] == '4' && strstr(buf, " 4.4.2 ") != NULL, "%s", buf);
	/* A local reply reads back as a well-formed reply of the same code. */
	relay_reply_begin(&r, false);
	ck_assert_int_eq(relay_reply_line(&r, buf, strlen(buf)), 1);
	ck_assert_int_eq(r.code, errmap_from_errno(ECONNRESET)->code);
	ck_assert_str_eq(r.esc, "4.4.2");
	/* Control characters in a detail do not reach a record. */
	relay_local_reply(buf, sizeof(buf), errmap_get(REPLY_LOCAL_ERROR), "a\r\nb");
	ck_assert_ptr_null(strchr(buf, '\r'));
	ck_assert_ptr_null(strchr(buf, '\n'));
	/* Cut, never overrun. */
	n = relay_local_reply(small, sizeof(small), errmap_from_errno(ECONNREFUSED), "detail");
	ck_assert_int_eq(n, (int)strlen(small));
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

/*
 * Policy.
 */

START_TEST(backoff)
{
	ck_assert_uint_eq(relay_backoff(0, 60, 3600), 60);
	ck_assert_uint_eq(relay_backoff(1, 60, 3600), 60);
	ck_assert_uint_eq(relay_backoff(2, 60, 3600), 120);
	ck_assert_uint_eq(relay_backoff(3, 60, 3600), 240);
	ck_assert_uint_eq(relay_backoff(6, 60, 3600), 1920);
	ck_assert_uint_eq(relay_backoff(7, 60, 3600), 3600);
	ck_assert_uint_eq(relay_backoff(UINT_MAX, 60, 3600), 3600);
	ck_assert_uint_eq(relay_backoff(5, 1, 1), 1);
	ck_assert_uint_eq(relay_backoff(5, 0, 10), 10);		/* 0 is taken as 1 */
	ck_assert_uint_eq(relay_backoff(1, 0, 10), 1);
	ck_assert_uint_eq(relay_backoff(3, 100, 10), 100);	/* max below min: min */
	ck_assert_uint_eq(relay_backoff(40, UINT_MAX / 2 + 1, UINT_MAX), UINT_MAX);
}
END_TEST

static void
make_env(struct envelope *env, const enum rcpt_state *states, size_t n, long long created)
{
	char addr[64];
	size_t i;

	ck_assert_int_eq(envelope_init(env, "1764442059.M1P2Q3", "alice@example.org", "smtp 127.0.0.1"), 0);
	env->created = created;
	for (i = 0; i < n; i++) {
		snprintf(addr, sizeof(addr), "r%zu@example.net", i);
		ck_assert_int_eq(envelope_add_rcpt(env, addr), 0);
		if (states[i] != RCPT_PENDING)
			ck_assert_int_eq(envelope_set_rcpt(env, i, states[i], states[i] == RCPT_SENT ?
			    "250 2.0.0 Ok" : "550 5.1.1 no such user"), 0);
	}
}

START_TEST(outcome_decision)
{
	static const struct {
		enum rcpt_state st[3];
		size_t n;
		enum queue_outcome want;
	} cases[] = {
		{ { RCPT_SENT }, 1, QUEUE_SENT },
		{ { RCPT_SENT, RCPT_SENT, RCPT_SENT }, 3, QUEUE_SENT },
		{ { RCPT_FAILED }, 1, QUEUE_FAILED },
		{ { RCPT_SENT, RCPT_FAILED }, 2, QUEUE_FAILED },
		{ { RCPT_PENDING }, 1, QUEUE_DEFERRED },
		{ { RCPT_SENT, RCPT_PENDING }, 2, QUEUE_DEFERRED },
		{ { RCPT_FAILED, RCPT_PENDING, RCPT_SENT }, 3, QUEUE_DEFERRED },
	};
	struct envelope env;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_env(&env, cases[i].st, cases[i].n, 1000);
		ck_assert_msg(relay_outcome(&env) == cases[i].want, "case %zu", i);
		envelope_free(&env);
	}
}
END_TEST

START_TEST(settle_defer_then_backoff)
{
	static const enum rcpt_state st[] = { RCPT_PENDING, RCPT_SENT };
	struct relay_policy p = { .retry_min = 60, .retry_max = 3600, .max_queue_lifetime = 432000 };
	struct relay_verdict v;
	struct envelope env;

	make_env(&env, st, 2, 1000000);
	ck_assert_int_eq(relay_settle(&env, 1000010, &p, &v), 0);
	ck_assert_int_eq(v.outcome, QUEUE_DEFERRED);
	ck_assert(!v.expired);
	ck_assert_uint_eq(env.attempts, 1);
	ck_assert_uint_eq(v.delay, 60);
	ck_assert_int_eq(env.next_attempt, 1000070);
	ck_assert_int_eq(relay_settle(&env, 1000070, &p, &v), 0);
	ck_assert_uint_eq(env.attempts, 2);
	ck_assert_uint_eq(v.delay, 120);
	ck_assert_int_eq(env.next_attempt, 1000190);
	/* The recipient already sent stays sent. */
	ck_assert_int_eq(env.rcpt[1].state, RCPT_SENT);
	envelope_free(&env);

	/* The backoff never reaches past the lifetime (created + 100). */
	p.max_queue_lifetime = 100;
	make_env(&env, st, 2, 1000000);
	ck_assert_int_eq(relay_settle(&env, 1000010, &p, &v), 0);
	ck_assert_int_eq(env.next_attempt, 1000070);
	ck_assert_int_eq(relay_settle(&env, 1000070, &p, &v), 0);
	ck_assert_int_eq(v.outcome, QUEUE_DEFERRED);
	ck_assert_uint_eq(v.delay, 30);
	ck_assert_int_eq(env.next_attempt, 1000100);
	ck_assert_int_eq(relay_settle(&env, 1000100, &p, &v), 0);
	ck_assert(v.expired);
	envelope_free(&env);
}
END_TEST

START_TEST(settle_sent_and_failed)
{
	static const enum rcpt_state sent[] = { RCPT_SENT };
	static const enum rcpt_state mixed[] = { RCPT_SENT, RCPT_FAILED };
	struct relay_policy p = { .retry_min = 60, .retry_max = 3600, .max_queue_lifetime = 100 };
	struct relay_verdict v;
	struct envelope env;

	make_env(&env, sent, 1, 1000);
	env.next_attempt = 5000;
	ck_assert_int_eq(relay_settle(&env, 999999, &p, &v), 0);
	ck_assert_int_eq(v.outcome, QUEUE_SENT);
	ck_assert(!v.expired);		/* nothing pending: nothing expires */
	ck_assert_int_eq(env.next_attempt, 0);
	envelope_free(&env);

	make_env(&env, mixed, 2, 1000);
	ck_assert_int_eq(relay_settle(&env, 1001, &p, &v), 0);
	ck_assert_int_eq(v.outcome, QUEUE_FAILED);
	envelope_free(&env);
}
END_TEST

START_TEST(settle_expiry)
{
	static const enum rcpt_state st[] = { RCPT_PENDING, RCPT_SENT, RCPT_PENDING };
	struct relay_policy p = { .retry_min = 60, .retry_max = 3600, .max_queue_lifetime = 1000 };
	struct relay_verdict v;
	struct envelope env;

	/* One second before the lifetime runs out: not yet, and the next attempt is no later than it. */
	make_env(&env, st, 3, 5000);
	ck_assert_int_eq(relay_settle(&env, 5999, &p, &v), 0);
	ck_assert_int_eq(v.outcome, QUEUE_DEFERRED);
	ck_assert(!v.expired);
	ck_assert_uint_eq(v.delay, 1);
	ck_assert_int_eq(env.next_attempt, 6000);
	envelope_free(&env);

	/* When it runs out: the pending recipients fail with 554 5.4.7 and their last reply. */
	make_env(&env, st, 3, 5000);
	env.attempts = 2;
	ck_assert_int_eq(envelope_set_rcpt(&env, 0, RCPT_PENDING, "451 4.3.0 try later"), 0);
	ck_assert_int_eq(envelope_set_last(&env, "127.0.0.1:2600", "421 4.4.2 Connection lost"), 0);
	ck_assert_int_eq(relay_settle(&env, 6000, &p, &v), 0);
	ck_assert_int_eq(v.outcome, QUEUE_FAILED);
	ck_assert(v.expired);
	ck_assert_uint_eq(env.attempts, 3);
	ck_assert_int_eq(env.rcpt[0].state, RCPT_FAILED);
	ck_assert_str_eq(env.rcpt[0].reply,
	    "554 5.4.7 Delivery time expired (after 1000 s and 3 attempts; last reply: 451 4.3.0 try later)");
	ck_assert_int_eq(env.rcpt[1].state, RCPT_SENT);
	ck_assert_int_eq(env.rcpt[2].state, RCPT_FAILED);
	ck_assert_str_eq(env.rcpt[2].reply,
	    "554 5.4.7 Delivery time expired (after 1000 s and 3 attempts; last reply: 421 4.4.2 Connection lost)");
	envelope_free(&env);

	/* relay_expire(): the same without an attempt; nothing to do before the time. */
	make_env(&env, st, 3, 5000);
	env.attempts = 2;
	ck_assert(!relay_expired(&env, 5999, &p));
	ck_assert(relay_expired(&env, 6000, &p));
	ck_assert_int_eq(relay_expire(&env, 6500, &p, &v), 0);
	ck_assert(v.expired);
	ck_assert_int_eq(v.outcome, QUEUE_FAILED);
	ck_assert_uint_eq(env.attempts, 2);
	ck_assert_str_eq(env.rcpt[0].reply, "554 5.4.7 Delivery time expired (after 1500 s and 2 attempts; last reply: none)");
	envelope_free(&env);

	/* A creation time in the future (clock step) or absurd in the past cannot overflow. */
	make_env(&env, st, 3, 9000000000LL);
	ck_assert_int_eq(relay_settle(&env, 6001, &p, &v), 0);
	ck_assert(!v.expired);
	envelope_free(&env);
	make_env(&env, st, 3, LLONG_MIN);
	ck_assert_int_eq(relay_settle(&env, 6001, &p, &v), 0);
	ck_assert(v.expired);
	envelope_free(&env);
}
END_TEST

static Suite *
relay_smtp_suite(void)
{
	Suite *s = suite_create("relay_smtp");
	TCase *tc;

	tc = tcase_create("reply");
	tcase_add_test(tc, reply_single_line);
	tcase_add_test(tc, caps_auth);
	tcase_add_test(tc, reply_bare_code);
	tcase_add_test(tc, reply_multi_line);
	tcase_add_test(tc, reply_enhanced_codes);
	tcase_add_test(tc, reply_malformed);
	tcase_add_test(tc, reply_line_bound);
	tcase_add_test(tc, reply_lines_bound);
	tcase_add_test(tc, reply_sanitised);
	tcase_add_test(tc, reply_classes);
	tcase_add_test(tc, reply_rcpt_overflow);
	suite_add_tcase(s, tc);

	tc = tcase_create("caps");
	tcase_add_test(tc, caps_full);
	tcase_add_test(tc, caps_variants);
	suite_add_tcase(s, tc);

	tc = tcase_create("dot");
	tcase_add_test(tc, dot_table);
	tcase_add_test(tc, dot_binary_and_8bit);
	tcase_add_test(tc, dot_finish_needs_room);
	tcase_add_test(tc, dot_partial_output);
	tcase_add_test(tc, dot_random_chunking);
	tcase_add_test(tc, dot_worst_case_bound);
	suite_add_tcase(s, tc);

	tc = tcase_create("commands");
	tcase_add_test(tc, cmd_mail);
	tcase_add_test(tc, cmd_rcpt_hello);
	tcase_add_test(tc, dsn_params_passed_on);
	tcase_add_test(tc, cmd_add_param_and_bdat_encode);
	tcase_add_test(tc, local_replies);
	suite_add_tcase(s, tc);

	tc = tcase_create("policy");
	tcase_add_test(tc, backoff);
	tcase_add_test(tc, outcome_decision);
	tcase_add_test(tc, settle_defer_then_backoff);
	tcase_add_test(tc, settle_sent_and_failed);
	tcase_add_test(tc, settle_expiry);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(relay_smtp_suite());
}
