/*
 * NAME
 *	test_errmap - unit tests of the errno <-> SMTP reply table
 * SYNOPSIS
 *	test_errmap
 * DESCRIPTION
 *	Checks the invariants that keep the one table honest: row i has id
 *	i; no errno is claimed by two ERRMAP_FROM_ERRNO rows; no (code, esc)
 *	pair has two ERRMAP_PRIMARY rows; every reply code of
 *	shared/reply-codes.md has a row (the list is hard-coded here and, when
 *	the page is found, also read from its table); every errno the spool
 *	can return maps to the reply the page asks for; errno -> reply -> errno
 *	round-trips for the primary rows; the fallbacks of
 *	errmap_errno_from_reply(); texts are one clean line; the enhanced
 *	status class agrees with the basic code.
 * ENVIRONMENT
 *	SPOOLGATE_SRC	source root; $SPOOLGATE_SRC/../shared/reply-codes.md
 *			is read when present (else /work/shared/reply-codes.md).
 */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmap.h"
#include "testutil.h"

/* The codes of shared/reply-codes.md, hard-coded so the test runs anywhere. */
static const int required_codes[] = {
	211, 214, 220, 221, 250, 251, 252, 253, 354, 355, 421, 432, 450, 451, 452, 453, 454,
	458, 459, 500, 501, 502, 503, 504, 521, 530, 534, 538, 550, 551, 552, 553, 554,
};
#define N_REQUIRED	(sizeof(required_codes) / sizeof(required_codes[0]))

/* What the spool (and the rest of common/) returns, and the reply it must become. */
static const struct errno_case {
	const char     *name;
	int		err;
	int		code;
	const char     *esc;		/* NULL: any */
} errno_cases[] = {
	{ "ENOSPC", ENOSPC, 452, "4.3.1" },
	{ "EDQUOT", EDQUOT, 552, "5.2.2" },
	{ "EFBIG", EFBIG, 552, "5.3.4" },
	{ "EIO", EIO, 451, "4.3.0" },
	{ "EINVAL", EINVAL, 553, "5.1.3" },
	{ "ENAMETOOLONG", ENAMETOOLONG, 553, "5.1.3" },
	{ "EILSEQ", EILSEQ, 553, "5.1.3" },
	{ "ENOENT", ENOENT, 550, "5.1.1" },
	{ "EACCES", EACCES, 550, "5.7.1" },
	{ "EPERM", EPERM, 553, "5.7.1" },
	{ "EAGAIN", EAGAIN, 450, NULL },
	{ "EBUSY", EBUSY, 450, NULL },
	{ "ENOMEM", ENOMEM, 452, NULL },
	{ "EMFILE", EMFILE, 451, NULL },
	{ "ENFILE", ENFILE, 451, NULL },
	{ "EROFS", EROFS, 451, NULL },
	{ "ELOOP", ELOOP, 554, "5.4.6" },
	{ "EBADMSG", EBADMSG, 554, NULL },
	{ "EDESTADDRREQ", EDESTADDRREQ, 554, NULL },
	{ "ENODATA", ENODATA, 554, "5.6.0" },	/* an empty outbox file */
	{ "E2BIG", E2BIG, 452, "4.5.3" },
	{ "EMSGSIZE", EMSGSIZE, 552, "5.3.4" },
	{ "ETIMEDOUT", ETIMEDOUT, 451, NULL },
	{ "ECONNREFUSED", ECONNREFUSED, 451, NULL },
};
#define N_ERRNO_CASES	(sizeof(errno_cases) / sizeof(errno_cases[0]))

/* errmap_errno_from_reply(): exact esc first, then the basic code, then the class. */
static const struct back_case {
	int		code;
	const char     *esc;
	int		want;
} back_cases[] = {
	{ 552, "5.2.2", EDQUOT },	/* exact esc preferred over the first 552 row */
	{ 552, "5.3.4", EFBIG },
	{ 552, NULL, EFBIG },
	{ 552, "", EFBIG },
	{ 552, "5.9.9", EFBIG },	/* unknown esc: primary row of the code */
	{ 550, "5.7.1", EACCES },
	{ 550, "5.1.1", ENOENT },
	{ 550, NULL, ENOENT },
	{ 553, "5.1.3", EINVAL },
	{ 452, "4.3.1", ENOSPC },
	{ 452, "4.5.3", E2BIG },
	{ 451, "4.3.0", EIO },
	{ 451, "4.4.1", ECONNREFUSED },
	{ 450, "4.2.0", EAGAIN },
	{ 554, "5.6.0", EBADMSG },	/* not ENODATA: that row is not primary */
	{ 554, "5.4.6", ELOOP },
	{ 499, NULL, EAGAIN },		/* unknown 4xx */
	{ 432, "4.7.12", EAGAIN },	/* known 4xx without an errno */
	{ 453, "4.7.0", EAGAIN },
	{ 470, "4.9.9", EAGAIN },
	{ 599, NULL, EIO },		/* unknown 5xx */
	{ 500, "5.5.1", EIO },		/* known 5xx without an errno */
	{ 538, "5.7.11", EIO },
	{ 250, "2.0.0", 0 },		/* not a failure */
	{ 354, NULL, 0 },
	{ 0, NULL, 0 },
	{ 999, NULL, 0 },
};
#define N_BACK_CASES	(sizeof(back_cases) / sizeof(back_cases[0]))

static int
row_has_code(int code)
{
	size_t i;

	for (i = 0; i < errmap_count(); i++)
		if (errmap_at(i)->code == code)
			return 1;
	return 0;
}

/* "d.ddd.ddd" as RFC 3463 spells it (class 2, 4 or 5). */
static int
esc_well_formed(const char *esc)
{
	const char *p = esc;
	int part, digits;

	if (!(p[0] == '2' || p[0] == '4' || p[0] == '5') || p[1] != '.')
		return 0;
	p += 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; isdigit((unsigned char)*p); p++)
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
		if (part == 0 && *p++ != '.')
			return 0;
	}
	return *p == '\0';
}

START_TEST(test_row_i_has_id_i)
{
	size_t i;

	ck_assert_uint_eq(errmap_count(), REPLY__COUNT);
	for (i = 0; i < errmap_count(); i++) {
		const struct errmap_reply *r = errmap_at(i);

		ck_assert_ptr_nonnull(r);
		ck_assert_msg((size_t)r->id == i, "row %zu has id %d", i, (int)r->id);
		ck_assert_ptr_eq(errmap_get((enum reply_id)i), r);
	}
	ck_assert_ptr_null(errmap_at(errmap_count()));
	/* An id out of range still gives an answer, the local error. */
	ck_assert_int_eq(errmap_get(REPLY__COUNT)->code, 451);
	ck_assert_int_eq(errmap_get((enum reply_id)-1)->code, 451);
}
END_TEST

START_TEST(test_no_errno_claimed_twice)
{
	size_t i, j;

	for (i = 0; i < errmap_count(); i++) {
		const struct errmap_reply *a = errmap_at(i);

		if (!(a->flags & ERRMAP_FROM_ERRNO))
			continue;
		ck_assert_msg(a->err > 0, "row %zu is ERRMAP_FROM_ERRNO without an errno", i);
		for (j = i + 1; j < errmap_count(); j++) {
			const struct errmap_reply *b = errmap_at(j);

			ck_assert_msg(!((b->flags & ERRMAP_FROM_ERRNO) && b->err == a->err),
			    "errno %d (%s) claimed by rows %zu and %zu", a->err, strerror(a->err), i, j);
		}
	}
}
END_TEST

START_TEST(test_no_pair_with_two_primaries)
{
	size_t i, j;

	for (i = 0; i < errmap_count(); i++) {
		const struct errmap_reply *a = errmap_at(i);

		if (!(a->flags & ERRMAP_PRIMARY))
			continue;
		for (j = i + 1; j < errmap_count(); j++) {
			const struct errmap_reply *b = errmap_at(j);

			ck_assert_msg(!((b->flags & ERRMAP_PRIMARY) && b->code == a->code &&
			    strcmp(b->esc, a->esc) == 0),
			    "(%d, \"%s\") has two primary rows: %zu and %zu", a->code, a->esc, i, j);
		}
	}
}
END_TEST

/* Each errno that any row names must be answerable by errmap_from_errno(). */
START_TEST(test_every_named_errno_has_a_from_errno_row)
{
	size_t i;

	for (i = 0; i < errmap_count(); i++) {
		const struct errmap_reply *r = errmap_at(i);
		const struct errmap_reply *back;

		if (r->err == 0)
			continue;
		back = errmap_from_errno(r->err);
		ck_assert_msg((back->flags & ERRMAP_FROM_ERRNO) && back->err == r->err,
		    "row %zu names errno %d (%s) but no ERRMAP_FROM_ERRNO row answers it",
		    i, r->err, strerror(r->err));
	}
}
END_TEST

START_TEST(test_required_code_present)
{
	int code = required_codes[_i];

	ck_assert_msg(row_has_code(code), "reply code %d of shared/reply-codes.md has no row", code);
}
END_TEST

#define CAND_LEN	4096

/* Finds shared/reply-codes.md next to the source tree; NULL when absent. */
static FILE *
open_reply_codes(char used[CAND_LEN])
{
	const char *src = getenv("SPOOLGATE_SRC");
	FILE *fp;
	int i;

	for (i = 0; i < 3; i++) {
		if (i == 0 && (src == NULL || *src == '\0'))
			continue;
		if (i == 0)
			snprintf(used, CAND_LEN, "%.3000s/../shared/reply-codes.md", src);
		else if (i == 1)
			snprintf(used, CAND_LEN, "/work/shared/reply-codes.md");
		else	/* the source tree beside this file: <root>/tests/unit/ -> <root>/../shared */
			snprintf(used, CAND_LEN, "%.*s../../../shared/reply-codes.md",
			    (int)(strrchr(__FILE__, '/') ? strrchr(__FILE__, '/') - __FILE__ + 1 : 0), __FILE__);
		if ((fp = fopen(used, "r")) != NULL)
			return fp;
	}
	return NULL;
}

START_TEST(test_reply_codes_page)
{
	char line[4096], used[CAND_LEN];
	int codes = 0, code;
	FILE *fp;

	if ((fp = open_reply_codes(used)) == NULL) {
		fprintf(stderr, "test_errmap: shared/reply-codes.md not found, page check skipped\n");
		return;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		/* Table rows look like "| 211 | text | RFC | when |". */
		if (line[0] != '|' || line[1] != ' ' || !isdigit((unsigned char)line[2]) ||
		    !isdigit((unsigned char)line[3]) || !isdigit((unsigned char)line[4]) || line[5] != ' ')
			continue;
		code = atoi(line + 2);
		ck_assert_msg(row_has_code(code), "%s: reply code %d has no row in errmap", used, code);
		codes++;
	}
	fclose(fp);
	ck_assert_msg(codes >= (int)N_REQUIRED, "%s: found only %d codes in its table (format changed?)",
	    used, codes);
}
END_TEST

START_TEST(test_errno_maps_to_its_reply)
{
	const struct errno_case *c = &errno_cases[_i];
	const struct errmap_reply *r = errmap_from_errno(c->err);

	ck_assert_msg(r->code == c->code, "%s -> %d %s, want %d", c->name, r->code, r->esc, c->code);
	if (c->esc != NULL)
		ck_assert_msg(strcmp(r->esc, c->esc) == 0, "%s -> %d %s, want %d %s", c->name, r->code,
		    r->esc, c->code, c->esc);
	ck_assert_msg(r->err == c->err && (r->flags & ERRMAP_FROM_ERRNO),
	    "%s has no row of its own (fell back to %d %s)", c->name, r->code, r->esc);
	/* The negative spelling that common/ functions return works too. */
	ck_assert_ptr_eq(errmap_from_errno(-c->err), r);
}
END_TEST

START_TEST(test_unknown_errno_is_local_error)
{
	static const int unknown[] = { EXDEV, ENOTDIR, EISDIR, ESPIPE, ECHILD, 0, 100000 };
	size_t i;

	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		const struct errmap_reply *r = errmap_from_errno(unknown[i]);

		ck_assert_msg(r->code == 451 && strcmp(r->esc, "4.3.0") == 0,
		    "errno %d -> %d %s, want 451 4.3.0", unknown[i], r->code, r->esc);
	}
}
END_TEST

START_TEST(test_primary_round_trip)
{
	size_t i, checked = 0;

	for (i = 0; i < errmap_count(); i++) {
		const struct errmap_reply *r = errmap_at(i);
		int back;

		if (!(r->flags & ERRMAP_PRIMARY) || r->err == 0)
			continue;
		back = errmap_errno_from_reply(r->code, r->esc);
		ck_assert_msg(back == r->err, "row %zu (%d %s): reply -> errno %d, want %d (%s)",
		    i, r->code, r->esc, back, r->err, strerror(r->err));
		if (r->flags & ERRMAP_FROM_ERRNO) {
			ck_assert_ptr_eq(errmap_from_errno(r->err), r);
			ck_assert_int_eq(errmap_errno_from_reply(errmap_from_errno(r->err)->code,
			    errmap_from_errno(r->err)->esc), r->err);
		}
		checked++;
	}
	ck_assert_uint_gt(checked, 10);
}
END_TEST

/* Every errno -> reply -> errno lands on a reply with the same code and esc. */
START_TEST(test_from_errno_rows_are_stable)
{
	size_t i;

	for (i = 0; i < errmap_count(); i++) {
		const struct errmap_reply *r = errmap_at(i), *again;
		int back;

		if (!(r->flags & ERRMAP_FROM_ERRNO))
			continue;
		back = errmap_errno_from_reply(r->code, r->esc);
		again = errmap_from_errno(back);
		ck_assert_msg(again->code / 100 == r->code / 100,
		    "row %zu (%d %s, errno %d) -> errno %d -> %d %s changes the class",
		    i, r->code, r->esc, r->err, back, again->code, again->esc);
	}
}
END_TEST

START_TEST(test_errno_from_reply_fallbacks)
{
	const struct back_case *c = &back_cases[_i];
	int got = errmap_errno_from_reply(c->code, c->esc);

	ck_assert_msg(got == c->want, "errmap_errno_from_reply(%d, %s) = %d (%s), want %d (%s)",
	    c->code, c->esc ? c->esc : "NULL", got, strerror(got), c->want, strerror(c->want));
}
END_TEST

/* errmap_errno_from_reply_text(): a reply as an envelope record keeps it. */
static const struct text_case {
	const char     *reply;
	int		want;
} text_cases[] = {
	{ "550 5.1.1 <bob@example.net>: no such user", ENOENT },
	{ "550 5.7.1 relaying denied", EACCES },
	{ "552 5.2.2 mailbox full", EDQUOT },
	{ "552 5.3.4", EFBIG },				/* the code and nothing after */
	{ "550 no enhanced code here", ENOENT },	/* the primary row of 550 */
	{ "550 4.1.1 wrong class", ENOENT },		/* an esc of another class is text */
	{ "550 5.1.1.1 too many parts", ENOENT },
	{ "550 5.1111.1 too long", ENOENT },
	{ "554 5.6.0 not a message", EBADMSG },
	{ "599 5.9.9 unknown", EIO },
	{ "451 4.4.1 no answer", ECONNREFUSED },
	{ "550", ENOENT },
	{ "550-5.1.1 first line of several", ENOENT },
	{ "", 0 },
	{ "55", 0 },
	{ "abc 5.1.1", 0 },
	{ "5500 5.1.1", 0 },
	{ NULL, 0 },
};
#define N_TEXT_CASES	(sizeof(text_cases) / sizeof(text_cases[0]))

START_TEST(test_errno_from_reply_text)
{
	const struct text_case *c = &text_cases[_i];
	int got = errmap_errno_from_reply_text(c->reply);

	ck_assert_msg(got == c->want, "errmap_errno_from_reply_text(\"%s\") = %d (%s), want %d (%s)",
	    c->reply ? c->reply : "NULL", got, strerror(got), c->want, strerror(c->want));
}
END_TEST

START_TEST(test_texts_are_one_clean_line)
{
	size_t i;
	const char *p;

	for (i = 0; i < errmap_count(); i++) {
		const struct errmap_reply *r = errmap_at(i);

		ck_assert_ptr_nonnull(r->text);
		ck_assert_ptr_nonnull(r->esc);
		ck_assert_msg(r->text[0] != '\0', "row %zu has an empty text", i);
		for (p = r->text; *p; p++)
			ck_assert_msg((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f,
			    "row %zu: text has byte 0x%02x", i, (unsigned char)*p);
		/* 512 octets per reply line (RFC 5321 4.5.3.1.5), room for "554 5.5.5 ". */
		ck_assert_msg(strlen(r->text) < 400, "row %zu: text too long", i);
	}
}
END_TEST

START_TEST(test_enhanced_class_matches_code)
{
	size_t i;

	for (i = 0; i < errmap_count(); i++) {
		const struct errmap_reply *r = errmap_at(i);

		ck_assert_msg(r->code >= 200 && r->code <= 559, "row %zu: code %d", i, r->code);
		if (r->esc[0] == '\0')
			continue;
		ck_assert_msg(esc_well_formed(r->esc), "row %zu: enhanced code '%s' malformed", i, r->esc);
		ck_assert_msg(r->esc[0] - '0' == r->code / 100,
		    "row %zu: %d with enhanced code %s of another class", i, r->code, r->esc);
	}
}
END_TEST

/* The check itself must reject what it should. */
START_TEST(test_esc_checker)
{
	ck_assert(esc_well_formed("5.1.1"));
	ck_assert(esc_well_formed("4.7.12"));
	ck_assert(esc_well_formed("2.0.0"));
	ck_assert(!esc_well_formed("3.0.0"));
	ck_assert(!esc_well_formed("5.1"));
	ck_assert(!esc_well_formed("5.1.1.1"));
	ck_assert(!esc_well_formed("5..1"));
	ck_assert(!esc_well_formed("5.1.1234"));
	ck_assert(!esc_well_formed("5.1.x"));
}
END_TEST

/* Rows the session and the relay name by id: the code and enhanced code each must carry. */
static const struct {
	enum reply_id	id;
	int		code;
	const char     *esc;
} named_rows[] = {
	{ REPLY_BAD_SENDER_SYNTAX, 553, "5.1.7" },	/* X.1.7: the sender's address (RFC 3463) */
	{ REPLY_SENDER_TOO_LONG, 553, "5.1.7" },
	{ REPLY_NON_ASCII_SENDER, 553, "5.6.7" },	/* RFC 6531 */
	{ REPLY_NON_ASCII_RCPT, 553, "5.6.7" },
	{ REPLY_NULL_RCPT, 501, "5.1.3" },
	{ REPLY_TOO_MANY_FROM_CLIENT, 421, "4.7.0" },
	{ REPLY_OUT_OF_DESCRIPTORS, 421, "4.3.2" },
	{ REPLY_COMMAND_DEADLINE, 421, "4.4.2" },
	{ REPLY_SESSION_DEADLINE, 421, "4.4.2" },
	{ REPLY_DELIVERY_EXPIRED, 554, "5.4.7" },	/* X.4.7: delivery time expired */
	{ REPLY_LOCAL_ERROR, 451, "4.3.0" },
	/* routing (common/route.c) */
	{ REPLY_DNS_TEMPFAIL, 451, "4.4.3" },	/* X.4.3: directory server failure */
	{ REPLY_DNS_NXDOMAIN, 550, "5.1.2" },	/* X.1.2: bad destination system address */
	{ REPLY_NO_MAIL_HOST, 550, "5.4.4" },	/* X.4.4: unable to route */
	{ REPLY_NULL_MX, 556, "5.1.10" },	/* RFC 7505 */
	{ REPLY_MAIL_LOOP, 554, "5.4.6" },	/* an MX list that loops back here */
};
#define N_NAMED_ROWS	(sizeof(named_rows) / sizeof(named_rows[0]))

START_TEST(test_named_row)
{
	const struct errmap_reply *r = errmap_get(named_rows[_i].id);

	ck_assert_msg(r->code == named_rows[_i].code && strcmp(r->esc, named_rows[_i].esc) == 0,
	    "row %d is %d %s, want %d %s", (int)named_rows[_i].id, r->code, r->esc, named_rows[_i].code,
	    named_rows[_i].esc);
}
END_TEST

static Suite *
errmap_suite(void)
{
	Suite *s = suite_create("errmap");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_row_i_has_id_i);
	tcase_add_test(tc, test_no_errno_claimed_twice);
	tcase_add_test(tc, test_no_pair_with_two_primaries);
	tcase_add_test(tc, test_every_named_errno_has_a_from_errno_row);
	tcase_add_loop_test(tc, test_required_code_present, 0, N_REQUIRED);
	tcase_add_test(tc, test_reply_codes_page);
	tcase_add_loop_test(tc, test_errno_maps_to_its_reply, 0, N_ERRNO_CASES);
	tcase_add_test(tc, test_unknown_errno_is_local_error);
	tcase_add_test(tc, test_primary_round_trip);
	tcase_add_test(tc, test_from_errno_rows_are_stable);
	tcase_add_loop_test(tc, test_errno_from_reply_fallbacks, 0, N_BACK_CASES);
	tcase_add_loop_test(tc, test_errno_from_reply_text, 0, N_TEXT_CASES);
	tcase_add_test(tc, test_texts_are_one_clean_line);
	tcase_add_test(tc, test_enhanced_class_matches_code);
	tcase_add_test(tc, test_esc_checker);
	tcase_add_loop_test(tc, test_named_row, 0, N_NAMED_ROWS);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(errmap_suite());
}
