/*
 * NAME
 *	test_envelope - unit tests of the envelope record format
 * SYNOPSIS
 *	test_envelope
 * DESCRIPTION
 *	envelope_format() followed by envelope_parse() gives back every field
 *	(recipient states and replies included), for full records, minimal
 *	ones and addresses RFC 5321 allows (quoted local parts).  The strict
 *	parser rejects a table of damaged records (unknown key, missing
 *	id/from/rcpt, bad numbers, control characters, a record cut in the
 *	middle of a line, NUL bytes, more recipients than the bound); each
 *	damaged record is made from a good
 *	one that is checked to parse first, so a rejection means the damage
 *	was seen.  envelope_add_rcpt() deduplicates; envelope_read_at() reads
 *	a real file in a temporary directory.
 *
 *	A record of a refused outbox submission ("rejected: <code> <esc>
 *	<ERRNO> <text>", possibly without any recipient and with from <>)
 *	round-trips; envelope_set_rejected() refuses parts of the wrong form;
 *	a table of damaged "rejected:" lines is refused by the parser, and a
 *	record without recipients parses only when it is rejected.
 *
 *	"rcpt-at:" (host and time of a recipient's reply) and "dsn:" /
 *	"dsn-delayed:" (the notice made about the message) round-trip; a
 *	table of damaged ones (rcpt-at not right after its rcpt, twice, a
 *	host with a space, dsn twice or of another form) is refused; the
 *	setters refuse what would break the line format.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"
#include "testutil.h"

static char tmpbase[64];

static void
base_setup(void)
{
	testutil_mkdtemp(tmpbase, sizeof(tmpbase), "envelope");
}

static void
base_teardown(void)
{
	testutil_rmtree(tmpbase);
}

static int
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
assert_env_equal(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	ck_assert_str_eq(a->id, b->id);
	ck_assert_int_eq(a->created, b->created);
	ck_assert_msg(streq_null(a->origin, b->origin), "origin '%s' != '%s'", a->origin, b->origin);
	ck_assert_msg(streq_null(a->from, b->from), "from '%s' != '%s'", a->from, b->from);
	ck_assert_int_eq(a->data_offset, b->data_offset);
	ck_assert_uint_eq(a->nrcpt, b->nrcpt);
	for (i = 0; i < a->nrcpt; i++) {
		ck_assert_msg(strcmp(a->rcpt[i].addr, b->rcpt[i].addr) == 0, "rcpt %zu '%s' != '%s'",
		    i, a->rcpt[i].addr, b->rcpt[i].addr);
		ck_assert_int_eq(a->rcpt[i].state, b->rcpt[i].state);
		ck_assert_msg(streq_null(a->rcpt[i].reply, b->rcpt[i].reply), "rcpt %zu reply '%s' != '%s'",
		    i, a->rcpt[i].reply, b->rcpt[i].reply);
		ck_assert_msg(streq_null(a->rcpt[i].host, b->rcpt[i].host), "rcpt %zu host '%s' != '%s'",
		    i, a->rcpt[i].host, b->rcpt[i].host);
		ck_assert_int_eq(a->rcpt[i].at, b->rcpt[i].at);
		ck_assert_uint_eq(a->rcpt[i].notify, b->rcpt[i].notify);
		ck_assert_msg(streq_null(a->rcpt[i].orcpt, b->rcpt[i].orcpt), "rcpt %zu orcpt '%s' != '%s'",
		    i, a->rcpt[i].orcpt, b->rcpt[i].orcpt);
		ck_assert_msg(streq_null(a->rcpt[i].success, b->rcpt[i].success), "rcpt %zu success '%s' != '%s'",
		    i, a->rcpt[i].success, b->rcpt[i].success);
	}
	ck_assert_int_eq(a->dsn_ret, b->dsn_ret);
	ck_assert_msg(streq_null(a->dsn_envid, b->dsn_envid), "dsn_envid '%s' != '%s'", a->dsn_envid, b->dsn_envid);
	ck_assert_msg(streq_null(a->dsn, b->dsn), "dsn '%s' != '%s'", a->dsn, b->dsn);
	ck_assert_msg(streq_null(a->dsn_delayed, b->dsn_delayed), "dsn-delayed '%s' != '%s'",
	    a->dsn_delayed, b->dsn_delayed);
	ck_assert_uint_eq(a->attempts, b->attempts);
	ck_assert_int_eq(a->next_attempt, b->next_attempt);
	ck_assert_uint_eq(a->nattempt, b->nattempt);
	for (i = 0; i < a->nattempt; i++)
		ck_assert_str_eq(a->attempt[i], b->attempt[i]);
	ck_assert_msg(streq_null(a->last_host, b->last_host), "last_host '%s' != '%s'", a->last_host, b->last_host);
	ck_assert_msg(streq_null(a->last_reply, b->last_reply), "last_reply '%s' != '%s'",
	    a->last_reply, b->last_reply);
	ck_assert_msg(streq_null(a->rejected, b->rejected), "rejected '%s' != '%s'",
	    a->rejected, b->rejected);
}

/* Format, parse, compare; and the second format is byte-identical. */
static void
assert_round_trip(const struct envelope *env)
{
	struct envelope back;
	char *text, *again;
	size_t len, len2;
	int r;

	ck_assert_int_eq(envelope_format(env, &text, &len), 0);
	ck_assert_uint_eq(len, strlen(text));
	r = envelope_parse(text, len, &back);
	ck_assert_msg(r == 0, "record does not parse back (%s):\n%s", strerror(-r), text);
	assert_env_equal(env, &back);
	ck_assert_int_eq(envelope_format(&back, &again, &len2), 0);
	ck_assert_uint_eq(len, len2);
	ck_assert_mem_eq(text, again, len);
	free(text);
	free(again);
	envelope_free(&back);
}

static void
make_full(struct envelope *env)
{
	ck_assert_int_eq(envelope_init(env, "1764442059.M123456P4242Q7", "alice@example.org",
	    "smtp 127.0.0.1"), 0);
	env->created = 1764442059;
	env->data_offset = 31;
	ck_assert_int_eq(envelope_add_rcpt(env, "bob@example.net"), 0);
	ck_assert_int_eq(envelope_add_rcpt(env, "carol@example.net"), 0);
	ck_assert_int_eq(envelope_add_rcpt(env, "dave@example.net"), 0);
	ck_assert_int_eq(envelope_add_rcpt(env, "erin@example.net"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 1, RCPT_SENT, "250 2.0.0 Ok: queued as 4F2"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 2, RCPT_FAILED,
	    "550 5.1.1 <dave@example.net>: no such user"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 3, RCPT_PENDING, "451 4.3.0 try again: later"), 0);
	ck_assert_int_eq(envelope_set_rcpt_at(env, 2, "mx1.example.net", 1764442100), 0);
	ck_assert_int_eq(envelope_set_rcpt_at(env, 3, "[2001:db8::1]:25", 1764442101), 0);
	ck_assert_int_eq(envelope_set_dsn(env, true, "1764442160.M1P4242Q9"), 0);
	env->attempts = 2;
	env->next_attempt = 1764442159;
	ck_assert_int_eq(envelope_set_last(env, "127.0.0.1:2525", "451 4.3.0 Local error in processing"), 0);
	ck_assert_int_eq(envelope_set_last_tls(env, "TLSv1.3", "TLS_AES_256_GCM_SHA384", true, "mx.test"), 0);
	ck_assert_int_eq(envelope_set_last_auth(env, "SCRAM-SHA-256", "me@example.net"), 0);
	ck_assert_int_eq(envelope_set_auth(env, "PLAIN", "alice@example.org", "<>"), 0);
	ck_assert_int_eq(envelope_set_auth(env, "PLAIN", "alice", "a b"), -EINVAL);	/* kept as it was */
	ck_assert_int_eq(envelope_set_auth(env, "plain", "alice", NULL), -EINVAL);
}

START_TEST(test_round_trip_full)
{
	struct envelope env;

	make_full(&env);
	ck_assert_uint_eq(envelope_count(&env, RCPT_PENDING), 2);
	ck_assert_uint_eq(envelope_count(&env, RCPT_SENT), 1);
	ck_assert_uint_eq(envelope_count(&env, RCPT_FAILED), 1);
	assert_round_trip(&env);
	envelope_free(&env);
	ck_assert_uint_eq(env.nrcpt, 0);
	ck_assert_ptr_null(env.from);
}
END_TEST

START_TEST(test_round_trip_minimal)
{
	struct envelope env;

	/* null reverse-path, no origin, no last host/reply, zeros */
	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q0", "", NULL), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "bob@localhost"), 0);
	assert_round_trip(&env);
	envelope_free(&env);
}
END_TEST

START_TEST(test_round_trip_large_numbers)
{
	struct envelope env;

	ck_assert_int_eq(envelope_init(&env, "9223372036.M999999P4194304Q4294967295", "a@b", "fs outbox/x y.eml"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "c@d"), 0);
	env.created = 9223372036854775807LL;
	env.next_attempt = 4102444800LL;
	env.data_offset = 1LL << 40;
	env.attempts = 4294967295u;
	assert_round_trip(&env);
	envelope_free(&env);
}
END_TEST

/* A refused outbox file: no recipient, no sender known. */
START_TEST(test_round_trip_rejected)
{
	struct envelope env, back;
	char *text;
	size_t len;

	ck_assert_int_eq(envelope_init(&env, "1764442060.M5P4243Q1", "", "fs outbox/r.eml uid=1000"), 0);
	env.created = 1764442060;
	ck_assert_int_eq(envelope_set_rejected(&env, 554, "5.5.1", "EDESTADDRREQ",
	    "rejected at submission: no recipient: no address in To:, Cc: or Bcc:"), 0);
	ck_assert_str_eq(env.rejected, "554 5.5.1 EDESTADDRREQ rejected at submission: no recipient: "
	    "no address in To:, Cc: or Bcc:");
	assert_round_trip(&env);
	ck_assert_int_eq(envelope_format(&env, &text, &len), 0);
	ck_assert_ptr_nonnull(strstr(text, "\nrejected: 554 5.5.1 EDESTADDRREQ rejected at submission: "));
	ck_assert_int_eq(envelope_parse(text, len, &back), 0);
	ck_assert_uint_eq(back.nrcpt, 0);
	ck_assert_str_eq(back.from, "");
	envelope_free(&back);
	free(text);
	/* with recipients too, and copied */
	ck_assert_int_eq(envelope_add_rcpt(&env, "bob@example.net"), 0);
	assert_round_trip(&env);
	ck_assert_int_eq(envelope_copy(&back, &env), 0);
	ck_assert_str_eq(back.rejected, env.rejected);
	envelope_free(&back);
	envelope_free(&env);
}
END_TEST

/* envelope_set_rejected() takes only parts of the documented form. */
static const struct bad_rejected_part {
	int		code;
	const char     *esc, *errname, *why;
} bad_rejected_parts[] = {
	{ 250, "2.0.0", "EOK", "fine" },		/* not a refusal */
	{ 354, "3.0.0", "EX", "x" },
	{ 5541, "5.5.1", "EX", "x" },
	{ 554, "4.5.1", "EX", "x" },		/* classes disagree */
	{ 554, "", "EX", "x" },
	{ 554, "5.5", "EX", "x" },
	{ 554, "5.5.1.1", "EX", "x" },
	{ 554, "5.5555.1", "EX", "x" },
	{ 554, "5.5.1", "edest", "x" },		/* not an errno name */
	{ 554, "5.5.1", "E", "x" },
	{ 554, "5.5.1", "E-X", "x" },
	{ 554, "5.5.1", "EX", "" },		/* no text */
	{ 554, "5.5.1", "EX", " leading space" },
	{ 554, "5.5.1", "EX", "two\nlines" },
	{ 554, "5.5.1", "EX", "a tab\there" },
};
#define N_BAD_REJECTED_PARTS	(sizeof(bad_rejected_parts) / sizeof(bad_rejected_parts[0]))

START_TEST(test_set_rejected_checks)
{
	const struct bad_rejected_part *c = &bad_rejected_parts[_i];
	struct envelope env;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "", "fs outbox/x"), 0);
	ck_assert_msg(envelope_set_rejected(&env, c->code, c->esc, c->errname, c->why) == -EINVAL,
	    "case %d: %d %s %s '%s' accepted", _i, c->code, c->esc, c->errname, c->why);
	ck_assert_ptr_null(env.rejected);
	envelope_free(&env);
}
END_TEST

/* addr_parse_path() accepts these; the record must carry them. */
static const char *const odd_addrs[] = {
	"\"john doe\"@example.org",
	"\"a\\\"b\"@example.org",
	"a@[127.0.0.1]",
	"a@[IPv6:::1]",
	"x!#$%&'*+-/=?^_`{|}~@example.org",
	"\"a>b\"@example.org",
	"\"a<b\"@example.org",
	"\"a> b\"@example.org",
};
#define N_ODD_ADDRS	(sizeof(odd_addrs) / sizeof(odd_addrs[0]))

/* As the recipient (with a reply after it, as in a finished record). */
START_TEST(test_round_trip_odd_rcpt)
{
	struct envelope env;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "plain@example.org", "smtp ::1"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, odd_addrs[_i]), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "plain@example.org"), 0);
	ck_assert_int_eq(envelope_set_rcpt(&env, 0, RCPT_FAILED, "550 5.1.1 <x>: no"), 0);
	assert_round_trip(&env);
	envelope_free(&env);
}
END_TEST

/* As the sender. */
START_TEST(test_round_trip_odd_from)
{
	struct envelope env;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", odd_addrs[_i], "smtp ::1"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "plain@example.org"), 0);
	assert_round_trip(&env);
	envelope_free(&env);
}
END_TEST

/* Replies as the relay may record them: empty (stored as no reply), spaces, brackets, colons. */
static const char *const odd_replies[] = {
	"",
	" ",
	"550",
	"  550 leading spaces",
	"550 trailing space ",
	"550 5.1.1 <a@b> <c@d> >> <<",
	"451 4.4.1 \"quoted\" text: with: colons",
};
#define N_ODD_REPLIES	(sizeof(odd_replies) / sizeof(odd_replies[0]))

START_TEST(test_round_trip_odd_replies)
{
	struct envelope env;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "a@b", "smtp 127.0.0.1"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "c@d"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "e@f"), 0);
	ck_assert_int_eq(envelope_set_rcpt(&env, 0, RCPT_FAILED, odd_replies[_i]), 0);
	ck_assert_int_eq(envelope_set_last(&env, odd_replies[_i], odd_replies[_i]), 0);
	if (odd_replies[_i][0] == '\0')	/* an empty reply is no reply */
		ck_assert_ptr_null(env.rcpt[0].reply);
	assert_round_trip(&env);
	envelope_free(&env);
}
END_TEST

START_TEST(test_format_rejects_line_breaks)
{
	struct envelope env;
	char *text = NULL;
	size_t len;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "a@b", "smtp\n127.0.0.1"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "c@d"), 0);
	ck_assert_int_eq(envelope_format(&env, &text, &len), -EINVAL);
	envelope_free(&env);

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "a@b", "smtp"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "c@d"), 0);
	ck_assert_int_eq(envelope_set_rcpt(&env, 0, RCPT_FAILED, "550 no\r\nrcpt: pending <evil@x>"), 0);
	ck_assert_int_eq(envelope_format(&env, &text, &len), -EINVAL);
	envelope_free(&env);
}
END_TEST

/* A good record; each bad case below edits one thing in it. */
static const char good_record[] =
	"spoolgate-envelope: 1\n"
	"id: 1764442059.M123456P4242Q7\n"
	"created: 1764442059\n"
	"origin: smtp 127.0.0.1\n"
	"from: <alice@example.org>\n"
	"data-offset: 31\n"
	"auth: SCRAM-SHA-256 user=alice@example.org mail-auth=alice@example.org\n"
	"body: binarymime\n"
	"smtputf8: yes\n"
	"rcpt: pending <bob@example.net>\n"
	"rcpt: sent <carol@example.net> 250 2.0.0 Ok: queued as 4F2\n"
	"attempts: 2\n"
	"next-attempt: 1764442159\n"
	"conversion: 7bit for 127.0.0.1:2525 (line-over-998), attempt 2\n"
	"last-host: 127.0.0.1:2525\n"
	"last-reply: 451 4.3.0 Local error in processing\n"
	"last-tls: TLSv1.3 TLS_AES_256_GCM_SHA384 verified=yes peer=mx.test\n"
	"last-auth: SCRAM-SHA-256 user=me@example.net\n"
	"attempt: 1764442100 host=mx:example.net tls=no cipher=- verified=no "
	"reply=451 4.4.3 MX lookup: SERVFAIL\n"
	"attempt: 1764442159 host=mx.test[192.0.2.1]:25 tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 verified=yes "
	"reply=451 4.3.0 Local error in processing\n";

static const struct bad_case {
	const char     *what;
	const char     *find;		/* replaced in good_record; NULL: append */
	const char     *with;
} bad_cases[] = {
	{ "unknown key", NULL, "colour: blue\n" },
	{ "unknown key with number", NULL, "priority: 1\n" },
	{ "missing magic", "spoolgate-envelope: 1\n", "" },
	{ "wrong version", "spoolgate-envelope: 1\n", "spoolgate-envelope: 2\n" },
	{ "missing id", "id: 1764442059.M123456P4242Q7\n", "" },
	{ "empty id", "id: 1764442059.M123456P4242Q7\n", "id: \n" },
	{ "id with slash", "id: 1764442059.M123456P4242Q7\n", "id: ../../etc/passwd\n" },
	{ "id too long", "id: 1764442059.M123456P4242Q7\n",
	    "id: 0123456789012345678901234567890123456789012345678901234567890123456789\n" },
	{ "missing from", "from: <alice@example.org>\n", "" },
	{ "from without brackets", "from: <alice@example.org>\n", "from: alice@example.org\n" },
	{ "from with trailing text", "from: <alice@example.org>\n", "from: <alice@example.org> x\n" },
	{ "missing rcpt", "rcpt: pending <bob@example.net>\nrcpt: sent <carol@example.net> 250 2.0.0 Ok: queued as 4F2\n", "" },
	{ "rcpt without brackets", "rcpt: pending <bob@example.net>\n", "rcpt: pending bob@example.net\n" },
	{ "rcpt unknown state", "rcpt: pending <bob@example.net>\n", "rcpt: maybe <bob@example.net>\n" },
	{ "rcpt empty address", "rcpt: pending <bob@example.net>\n", "rcpt: pending <>\n" },
	{ "rcpt without state", "rcpt: pending <bob@example.net>\n", "rcpt: <bob@example.net>\n" },
	{ "rcpt reply glued", "rcpt: pending <bob@example.net>\n", "rcpt: pending <bob@example.net>250 ok\n" },
	{ "bad number", "created: 1764442059\n", "created: 1764442059x\n" },
	{ "empty number", "created: 1764442059\n", "created: \n" },
	{ "negative number", "data-offset: 31\n", "data-offset: -31\n" },
	{ "data: not inline", "data-offset: 31\n", "data-offset: 31\ndata: there\n" },
	{ "data: inline without its empty line", "data-offset: 31\n", "data-offset: 31\ndata: inline\n" },
	{ "data: inline twice", "data-offset: 31\n", "data-offset: 31\ndata: inline\ndata: inline\n" },
	{ "an empty line in a plain record", "data-offset: 31\n", "data-offset: 31\n\n" },
	{ "number with space", "attempts: 2\n", "attempts:  2\n" },
	{ "number overflow", "created: 1764442059\n", "created: 99999999999999999999999\n" },
	{ "attempts over unsigned", "attempts: 2\n", "attempts: 4294967296\n" },
	{ "hex number", "next-attempt: 1764442159\n", "next-attempt: 0x10\n" },
	{ "line without colon", "attempts: 2\n", "attempts 2\n" },
	{ "line without space after colon", "attempts: 2\n", "attempts:2\n" },
	{ "blank line", "attempts: 2\n", "attempts: 2\n\n" },
	{ "control char in origin", "origin: smtp 127.0.0.1\n", "origin: smtp\x01 127.0.0.1\n" },
	{ "control char in conversion", "conversion: 7bit", "conversion: 7\x1b[2Jbit" },
	{ "tab in reply", "last-reply: 451 4.3.0 Local error in processing\n", "last-reply: 451\t4.3.0\n" },
	{ "CR before LF", "last-host: 127.0.0.1:2525\n", "last-host: 127.0.0.1:2525\r\n" },
	{ "DEL in from", "from: <alice@example.org>\n", "from: <ali\x7f" "ce@example.org>\n" },
	{ "ESC in key", "attempts: 2\n", "att\x1b" "empts: 2\n" },
	{ "cut in the middle of a line", "last-auth: SCRAM-SHA-256 user=me@example.net\n", "last-auth: SCRAM-SHA" },
	{ "no final LF", "last-auth: SCRAM-SHA-256 user=me@example.net\n", "last-auth: SCRAM-SHA-256 user=me@example.net" },
	{ "last-tls without peer", "verified=yes peer=mx.test\n", "verified=yes\n" },
	{ "last-tls verified maybe", "verified=yes", "verified=maybe" },
	{ "last-tls empty peer", "peer=mx.test\n", "peer=\n" },
	{ "last-tls extra word", "peer=mx.test\n", "peer=mx.test extra\n" },
	{ "last-tls double blank", "TLSv1.3 TLS_AES", "TLSv1.3  TLS_AES" },
	{ "last-tls twice", "last-auth:", "last-tls: TLSv1.2 X verified=no peer=a\nlast-auth:" },
	{ "last-auth without user=", "user=me@example.net", "me@example.net" },
	{ "last-auth lower-case mechanism", "SCRAM-SHA-256 user", "scram user" },
	{ "last-auth with a password", "user=me@example.net\n", "user=me@example.net password=x\n" },
	{ "last-auth empty user", "user=me@example.net\n", "user=\n" },
	{ "auth twice", "auth: SCRAM", "auth: PLAIN user=x\nauth: SCRAM" },
	{ "auth without user=", "SCRAM-SHA-256 user=alice", "SCRAM-SHA-256 alice" },
	{ "auth with a fourth word", "mail-auth=alice@example.org\n", "mail-auth=alice@example.org x\n" },
	{ "auth with another third word", "mail-auth=alice@example.org\n", "password=alice@example.org\n" },
	{ "auth empty mail-auth", "mail-auth=alice@example.org\n", "mail-auth=\n" },
	{ "body other than binarymime", "body: binarymime\n", "body: 8bitmime\n" },
	{ "body twice", "body: binarymime\n", "body: binarymime\nbody: binarymime\n" },
	{ "smtputf8 no", "smtputf8: yes\n", "smtputf8: no\n" },
	{ "smtputf8 twice", "smtputf8: yes\n", "smtputf8: yes\nsmtputf8: yes\n" },
	{ "attempt without reply=", "verified=yes reply=", "verified=yes " },
	{ "attempt time not a number", "attempt: 1764442100", "attempt: 17644421x0" },
	{ "attempt without host=", "host=mx.test[", "mx.test[" },
	{ "attempt empty host", "host=mx:example.net", "host=" },
	{ "attempt verified maybe", "verified=yes reply", "verified=maybe reply" },
	{ "attempt no TLS but a cipher", "tls=no cipher=-", "tls=no cipher=AES" },
	{ "attempt no TLS but verified", "cipher=- verified=no", "cipher=- verified=yes" },
	{ "attempt double blank", "host=mx.test[192.0.2.1]:25 tls", "host=mx.test[192.0.2.1]:25  tls" },
	{ "attempt control char in reply", "Local error in", "Local\x01error in" },
	{ "attempt words swapped", "tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384",
	    "cipher=TLS_AES_256_GCM_SHA384 tls=TLSv1.3" },
	{ "eleven attempts", NULL,
	    "attempt: 1 host=a tls=no cipher=- verified=no reply=\nattempt: 2 host=a tls=no cipher=- verified=no reply=\n"
	    "attempt: 3 host=a tls=no cipher=- verified=no reply=\nattempt: 4 host=a tls=no cipher=- verified=no reply=\n"
	    "attempt: 5 host=a tls=no cipher=- verified=no reply=\nattempt: 6 host=a tls=no cipher=- verified=no reply=\n"
	    "attempt: 7 host=a tls=no cipher=- verified=no reply=\nattempt: 8 host=a tls=no cipher=- verified=no reply=\n"
	    "attempt: 9 host=a tls=no cipher=- verified=no reply=\n" },
};
#define N_BAD_CASES	(sizeof(bad_cases) / sizeof(bad_cases[0]))

/* A failed record with the lines of delivery status notifications. */
static const char good_dsn_record[] =
	"spoolgate-envelope: 1\n"
	"id: 1764442059.M123456P4242Q7\n"
	"created: 1764442059\n"
	"from: <alice@localhost>\n"
	"data-offset: 31\n"
	"rcpt: failed <bob@example.net> 550 5.1.1 no such user\n"
	"rcpt-at: 1764442100 mx1.example.net:25\n"
	"rcpt: sent <carol@example.net> 250 2.0.0 Ok\n"
	"dsn: 1764442101.M5P4242Q8\n"
	"dsn-delayed: none cap\n"
	"attempts: 2\n"
	"next-attempt: 0\n";

static const struct bad_case bad_dsn_cases[] = {
	{ "rcpt-at before any rcpt", "rcpt: failed", "rcpt-at: 1 h\nrcpt: failed" },
	{ "rcpt-at twice", "rcpt-at: 1764442100 mx1.example.net:25\n",
	    "rcpt-at: 1764442100 mx1.example.net:25\nrcpt-at: 1764442100 mx1.example.net:25\n" },
	{ "rcpt-at not right after its rcpt", "dsn: 1764442101.M5P4242Q8\n",
	    "dsn: 1764442101.M5P4242Q8\nrcpt-at: 5 mx\n" },
	{ "rcpt-at without host", "1764442100 mx1.example.net:25", "1764442100" },
	{ "rcpt-at empty host", "1764442100 mx1.example.net:25", "1764442100 " },
	{ "rcpt-at host with space", "mx1.example.net:25", "mx1 example.net:25" },
	{ "rcpt-at bad time", "1764442100 mx1", "17644x2100 mx1" },
	{ "rcpt-at negative time", "1764442100 mx1", "-1 mx1" },
	{ "rcpt-at host too long", "mx1.example.net:25",
	    "mx111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
	    "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
	    "11111111111111111111111111111111111111111111111111111111111111111111111" },
	{ "dsn twice", NULL, "dsn: 1.M1P1Q1\n" },
	{ "dsn id not starting with a digit", "1764442101.M5P4242Q8", "M5P4242Q8" },
	{ "dsn-delayed twice", NULL, "dsn-delayed: none cap\n" },
	{ "dsn empty", "dsn: 1764442101.M5P4242Q8\n", "dsn: \n" },
	{ "dsn with slash", "1764442101.M5P4242Q8", "../x" },
	{ "dsn with space", "1764442101.M5P4242Q8", "1764442101 M5P4242Q8" },
	{ "dsn none without why", "none cap", "none " },
	{ "dsn none with capitals", "none cap", "none Cap" },
	{ "dsn none with two words", "none cap", "none cap x" },
	{ "dsn id too long", "1764442101.M5P4242Q8",
	    "0123456789012345678901234567890123456789012345678901234567890123456789" },
};
#define N_BAD_DSN_CASES	(sizeof(bad_dsn_cases) / sizeof(bad_dsn_cases[0]))

/* RFC 3461 parameters in a record (envelope.h). */
static const char good_dsn_param_record[] =
	"spoolgate-envelope: 1\n"
	"id: 1764442059.M123456P4242Q7\n"
	"created: 1764442059\n"
	"from: <alice@localhost>\n"
	"data-offset: 31\n"
	"dsn-ret: HDRS\n"
	"dsn-envid: QQ+2B314159\n"
	"rcpt: failed <bob@example.net> 550 5.1.1 no such user\n"
	"rcpt-dsn: notify=SUCCESS,FAILURE orcpt=rfc822;bob+2Bx@example.net\n"
	"rcpt-at: 1764442100 mx1.example.net:25\n"
	"rcpt: pending <carol@example.net>\n"
	"rcpt-dsn: notify=NEVER\n"
	"rcpt: pending <dave@example.net>\n"
	"rcpt: sent <erin@localhost> 250 2.0.0 stored in mailbox erin\n"
	"rcpt-dsn: notify=SUCCESS\n"
	"rcpt-success: delivered due\n"
	"rcpt: sent <fred@example.net> 250 ok\n"
	"rcpt-dsn: notify=SUCCESS\n"
	"rcpt-at: 1764442100 mx1.example.net:25\n"
	"rcpt-success: relayed none passed-on\n"
	"attempts: 2\n"
	"next-attempt: 0\n";

static const struct bad_case bad_dsn_param_cases[] = {
	{ "rcpt-dsn after rcpt-at", "rcpt-dsn: notify=SUCCESS,FAILURE orcpt=rfc822;bob+2Bx@example.net\n"
	    "rcpt-at: 1764442100 mx1.example.net:25\n", "rcpt-at: 1764442100 mx1.example.net:25\n"
	    "rcpt-dsn: notify=SUCCESS\n" },
	{ "rcpt-dsn before any rcpt", "dsn-envid: QQ+2B314159\n", "dsn-envid: QQ+2B314159\nrcpt-dsn: notify=NEVER\n" },
	{ "rcpt-dsn twice", "rcpt-dsn: notify=NEVER\n", "rcpt-dsn: notify=NEVER\nrcpt-dsn: notify=NEVER\n" },
	{ "rcpt-dsn empty", "rcpt-dsn: notify=NEVER\n", "rcpt-dsn: \n" },
	{ "rcpt-dsn unknown word", "notify=NEVER", "notify=NEVER ret=FULL" },
	{ "rcpt-dsn notify twice", "notify=NEVER", "notify=NEVER notify=NEVER" },
	{ "rcpt-dsn NEVER with another", "notify=NEVER", "notify=NEVER,DELAY" },
	{ "rcpt-dsn bad notify", "notify=NEVER", "notify=ALWAYS" },
	{ "rcpt-dsn lower-case notify", "notify=NEVER", "notify=never" },
	{ "rcpt-dsn orcpt without type", "orcpt=rfc822;bob", "orcpt=bob" },
	{ "rcpt-dsn orcpt bad xtext", "bob+2Bx", "bob+2bx" },
	{ "rcpt-success twice", "rcpt-success: delivered due\n",
	    "rcpt-success: delivered due\nrcpt-success: delivered due\n" },
	{ "rcpt-success unknown action", "delivered due", "expanded due" },
	{ "rcpt-success without value", "delivered due", "delivered" },
	{ "rcpt-success bad value", "delivered due", "delivered later" },
	{ "rcpt-success none with capitals", "relayed none passed-on", "relayed none Passed" },
	{ "rcpt-success before rcpt-at", "rcpt-at: 1764442100 mx1.example.net:25\nrcpt-success: relayed none passed-on\n",
	    "rcpt-success: relayed none passed-on\nrcpt-at: 1764442100 mx1.example.net:25\n" },
	{ "dsn-ret twice", "dsn-ret: HDRS\n", "dsn-ret: HDRS\ndsn-ret: FULL\n" },
	{ "dsn-ret bad", "dsn-ret: HDRS", "dsn-ret: SOME" },
	{ "dsn-ret lower case", "dsn-ret: HDRS", "dsn-ret: hdrs" },
	{ "dsn-envid twice", "dsn-envid: QQ+2B314159\n", "dsn-envid: QQ+2B314159\ndsn-envid: x\n" },
	{ "dsn-envid with a space", "QQ+2B314159", "QQ 314159" },
	{ "dsn-envid decoded control", "QQ+2B314159", "QQ+0A" },
};
#define N_BAD_DSN_PARAM_CASES	(sizeof(bad_dsn_param_cases) / sizeof(bad_dsn_param_cases[0]))


/* A good record of a refused submission; each case below damages it. */
static const char good_rejected[] =
	"spoolgate-envelope: 1\n"
	"id: 1764442060.M5P4243Q1\n"
	"created: 1764442060\n"
	"origin: fs outbox/r.eml uid=1000\n"
	"from: <>\n"
	"data-offset: 0\n"
	"rejected: 554 5.5.1 EDESTADDRREQ rejected at submission: no recipient\n"
	"attempts: 0\n"
	"next-attempt: 0\n";

static const struct bad_case bad_rejected_cases[] = {
	{ "no rejected line and no rcpt", "rejected: 554 5.5.1 EDESTADDRREQ rejected at submission: no recipient\n", "" },
	{ "two rejected lines", NULL, "rejected: 554 5.6.0 EBADMSG again\n" },
	{ "empty value", "554 5.5.1 EDESTADDRREQ rejected at submission: no recipient", "" },
	{ "2xx code", "554 5.5.1", "250 2.5.1" },
	{ "two-digit code", "554 5.5.1", "54 5.5.1" },
	{ "code and esc disagree", "554 5.5.1", "554 4.5.1" },
	{ "esc missing", "554 5.5.1 ", "554 " },
	{ "esc with letters", "5.5.1", "5.x.1" },
	{ "esc too long a part", "5.5.1", "5.5.1234" },
	{ "lower-case errno", "EDESTADDRREQ", "edestaddrreq" },
	{ "errno without E", "EDESTADDRREQ", "DESTADDRREQ" },
	{ "errno with a dash", "EDESTADDRREQ", "EDEST-ADDRREQ" },
	{ "no text", "EDESTADDRREQ rejected at submission: no recipient", "EDESTADDRREQ" },
	{ "empty text", "EDESTADDRREQ rejected at submission: no recipient", "EDESTADDRREQ " },
	{ "two spaces", "554 5.5.1", "554  5.5.1" },
	{ "control char in text", "no recipient", "no\x01recipient" },
};
#define N_BAD_REJECTED_CASES	(sizeof(bad_rejected_cases) / sizeof(bad_rejected_cases[0]))

static char *
edit_good(const char *good, const struct bad_case *c)
{
	const char *at;
	char *out;
	size_t pre;

	if (c->find == NULL) {
		ck_assert_int_ge(asprintf(&out, "%s%s", good, c->with), 0);
		return out;
	}
	at = strstr(good, c->find);
	ck_assert_msg(at != NULL, "test table: '%s' not in the good record", c->find);
	pre = (size_t)(at - good);
	ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)pre, good, c->with, at + strlen(c->find)), 0);
	return out;
}

static char *
edit_record(const struct bad_case *c)
{
	return edit_good(good_record, c);
}

START_TEST(test_good_record_parses)
{
	struct envelope env;

	ck_assert_int_eq(envelope_parse(good_record, strlen(good_record), &env), 0);
	ck_assert_str_eq(env.id, "1764442059.M123456P4242Q7");
	ck_assert_int_eq(env.created, 1764442059);
	ck_assert_str_eq(env.origin, "smtp 127.0.0.1");
	ck_assert_str_eq(env.from, "alice@example.org");
	ck_assert_int_eq(env.data_offset, 31);
	ck_assert_uint_eq(env.nrcpt, 2);
	ck_assert_str_eq(env.rcpt[0].addr, "bob@example.net");
	ck_assert_int_eq(env.rcpt[0].state, RCPT_PENDING);
	ck_assert_ptr_null(env.rcpt[0].reply);
	ck_assert_str_eq(env.rcpt[1].addr, "carol@example.net");
	ck_assert_int_eq(env.rcpt[1].state, RCPT_SENT);
	ck_assert_str_eq(env.rcpt[1].reply, "250 2.0.0 Ok: queued as 4F2");
	ck_assert_uint_eq(env.attempts, 2);
	ck_assert_int_eq(env.next_attempt, 1764442159);
	ck_assert_str_eq(env.last_host, "127.0.0.1:2525");
	ck_assert_str_eq(env.last_reply, "451 4.3.0 Local error in processing");
	ck_assert_str_eq(env.conversion, "7bit for 127.0.0.1:2525 (line-over-998), attempt 2");
	ck_assert_str_eq(env.last_tls, "TLSv1.3 TLS_AES_256_GCM_SHA384 verified=yes peer=mx.test");
	ck_assert_str_eq(env.last_auth, "SCRAM-SHA-256 user=me@example.net");
	ck_assert_str_eq(env.auth, "SCRAM-SHA-256 user=alice@example.org mail-auth=alice@example.org");
	ck_assert(env.binarymime && env.smtputf8);
	envelope_free(&env);
}
END_TEST

/* The attempt history: appended in order, the oldest dropped past ENVELOPE_ATTEMPTS_MAX, strict parts. */
START_TEST(test_attempt_history)
{
	struct envelope env, back, copy;
	char *text;
	size_t len, i;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "a@example.org", "test"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "b@example.net"), 0);
	ck_assert_int_eq(envelope_add_attempt(&env, 100, "mx.test[192.0.2.1]:25", "TLSv1.3", "TLS_AES_128_GCM_SHA256",
	    true, "250 2.0.0 Ok"), 0);
	ck_assert_str_eq(env.attempt[0],
	    "100 host=mx.test[192.0.2.1]:25 tls=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256 verified=yes reply=250 2.0.0 Ok");
	ck_assert_int_eq(envelope_add_attempt(&env, 101, "192.0.2.2:25", NULL, "ignored", true, NULL), 0);
	ck_assert_str_eq(env.attempt[1], "101 host=192.0.2.2:25 tls=no cipher=- verified=no reply=");
	/* Refused: a blank in the host, a line break in the reply, no host, a negative time. */
	ck_assert_int_eq(envelope_add_attempt(&env, 1, "a b", NULL, NULL, false, "x"), -EINVAL);
	ck_assert_int_eq(envelope_add_attempt(&env, 1, "a", NULL, NULL, false, "x\nlast-host: y"), -EINVAL);
	ck_assert_int_eq(envelope_add_attempt(&env, 1, NULL, NULL, NULL, false, "x"), -EINVAL);
	ck_assert_int_eq(envelope_add_attempt(&env, -1, "a", NULL, NULL, false, "x"), -EINVAL);
	ck_assert_uint_eq(env.nattempt, 2);
	for (i = 0; i < 2 * ENVELOPE_ATTEMPTS_MAX; i++)
		ck_assert_int_eq(envelope_add_attempt(&env, 200 + (long long)i, "h", NULL, NULL, false, "451 4.4.1 x"), 0);
	ck_assert_uint_eq(env.nattempt, ENVELOPE_ATTEMPTS_MAX);
	ck_assert_ptr_nonnull(strstr(env.attempt[0], "210 host=h "));	/* the newest ten */
	ck_assert_ptr_nonnull(strstr(env.attempt[ENVELOPE_ATTEMPTS_MAX - 1], "219 host=h "));
	ck_assert_int_eq(envelope_format(&env, &text, &len), 0);
	ck_assert_int_eq(envelope_parse(text, len, &back), 0);
	ck_assert_uint_eq(back.nattempt, ENVELOPE_ATTEMPTS_MAX);
	for (i = 0; i < ENVELOPE_ATTEMPTS_MAX; i++)
		ck_assert_str_eq(back.attempt[i], env.attempt[i]);
	ck_assert_int_eq(envelope_copy(&copy, &env), 0);
	ck_assert_uint_eq(copy.nattempt, ENVELOPE_ATTEMPTS_MAX);
	ck_assert_str_eq(copy.attempt[3], env.attempt[3]);
	envelope_free(&copy);
	envelope_free(&back);
	free(text);
	envelope_free(&env);
}
END_TEST

START_TEST(test_set_last_tls_and_auth)
{
	struct envelope env, copy;
	char *text;
	size_t len;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "a@example.org", "test"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "b@example.net"), 0);
	ck_assert_int_eq(envelope_set_last_tls(&env, "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", false,
	    "127.0.0.1"), 0);
	ck_assert_str_eq(env.last_tls, "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 verified=no peer=127.0.0.1");
	ck_assert_int_eq(envelope_set_last_auth(&env, "PLAIN", "me@example.net"), 0);
	/* Parts that would make a record that does not parse are refused, the old value stays. */
	ck_assert_int_eq(envelope_set_last_tls(&env, "TLSv1.3", "X", true, "a b"), -EINVAL);
	ck_assert_int_eq(envelope_set_last_tls(&env, "", "X", true, "a"), -EINVAL);
	ck_assert_int_eq(envelope_set_last_auth(&env, "PLAIN", "me\nlast-host: x"), -EINVAL);
	ck_assert_int_eq(envelope_set_last_auth(&env, "plain", "me"), -EINVAL);
	ck_assert_str_eq(env.last_auth, "PLAIN user=me@example.net");
	ck_assert_int_eq(envelope_format(&env, &text, &len), 0);
	ck_assert_ptr_nonnull(strstr(text, "\nlast-tls: TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 verified=no peer=127.0.0.1\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nlast-auth: PLAIN user=me@example.net\n"));
	ck_assert_int_eq(envelope_copy(&copy, &env), 0);
	ck_assert_str_eq(copy.last_tls, env.last_tls);
	ck_assert_str_eq(copy.last_auth, env.last_auth);
	envelope_free(&copy);
	free(text);
	/* A later attempt in plaintext and without AUTH drops both lines. */
	ck_assert_int_eq(envelope_set_last_tls(&env, NULL, NULL, false, NULL), 0);
	ck_assert_int_eq(envelope_set_last_auth(&env, NULL, NULL), 0);
	ck_assert_int_eq(envelope_format(&env, &text, &len), 0);
	ck_assert_ptr_null(strstr(text, "last-tls"));
	ck_assert_ptr_null(strstr(text, "last-auth"));
	free(text);
	envelope_free(&env);
}
END_TEST

START_TEST(test_good_dsn_record_parses)
{
	struct envelope env;

	ck_assert_int_eq(envelope_parse(good_dsn_record, strlen(good_dsn_record), &env), 0);
	ck_assert_uint_eq(env.nrcpt, 2);
	ck_assert_str_eq(env.rcpt[0].host, "mx1.example.net:25");
	ck_assert_int_eq(env.rcpt[0].at, 1764442100);
	ck_assert_ptr_null(env.rcpt[1].host);
	ck_assert_int_eq(env.rcpt[1].at, 0);
	ck_assert_str_eq(env.dsn, "1764442101.M5P4242Q8");
	ck_assert_str_eq(env.dsn_delayed, "none cap");
	assert_round_trip(&env);
	envelope_free(&env);
}
END_TEST

/* good edited as c says must be refused as corrupt. */
static void
assert_edit_refused(const char *good, const struct bad_case *c)
{
	struct envelope env;
	char *text = edit_good(good, c);
	int r;

	r = envelope_parse(text, strlen(text), &env);
	ck_assert_msg(r == -EBADMSG, "%s: envelope_parse = %d, want -EBADMSG; record:\n%s", c->what, r, text);
	free(text);
}

START_TEST(test_bad_dsn_record)
{
	assert_edit_refused(good_dsn_record, &bad_dsn_cases[_i]);
}
END_TEST

START_TEST(test_good_dsn_param_record_parses)
{
	struct envelope env, copy;

	ck_assert_int_eq(envelope_parse(good_dsn_param_record, strlen(good_dsn_param_record), &env), 0);
	ck_assert_int_eq(env.dsn_ret, DSN_RET_HDRS);
	ck_assert_str_eq(env.dsn_envid, "QQ+2B314159");
	ck_assert_uint_eq(env.rcpt[0].notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	ck_assert_str_eq(env.rcpt[0].orcpt, "rfc822;bob+2Bx@example.net");
	ck_assert_str_eq(env.rcpt[0].host, "mx1.example.net:25");
	ck_assert_uint_eq(env.rcpt[1].notify, DSN_NOTIFY_NEVER);
	ck_assert_ptr_null(env.rcpt[1].orcpt);
	ck_assert_uint_eq(env.rcpt[2].notify, 0);
	ck_assert_ptr_null(env.rcpt[2].success);
	ck_assert_str_eq(env.rcpt[3].success, "delivered due");
	ck_assert_str_eq(env.rcpt[4].success, "relayed none passed-on");
	assert_round_trip(&env);
	ck_assert_int_eq(envelope_copy(&copy, &env), 0);
	assert_env_equal(&env, &copy);
	/* setters refuse what would not parse back, and keep the old value */
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 2, DSN_NOTIFY_NEVER | DSN_NOTIFY_DELAY, NULL), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 2, 0x40, NULL), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 2, 0, "bob"), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 9, DSN_NOTIFY_DELAY, NULL), -EINVAL);
	ck_assert_int_eq(envelope_set_dsn_request(&env, DSN_RET_FULL, "a b"), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_success(&env, 3, "delivered soon"), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_success(&env, 9, "delivered due"), -EINVAL);
	ck_assert_str_eq(env.rcpt[3].success, "delivered due");
	ck_assert_int_eq(envelope_set_rcpt_success(&env, 3, "delivered 1764442101.M5P4242Q8"), 0);
	assert_round_trip(&env);
	ck_assert_str_eq(env.dsn_envid, "QQ+2B314159");
	ck_assert_uint_eq(env.rcpt[2].notify, 0);
	envelope_free(&copy);
	envelope_free(&env);
}
END_TEST

START_TEST(test_bad_dsn_param_record)
{
	assert_edit_refused(good_dsn_param_record, &bad_dsn_param_cases[_i]);
}
END_TEST

START_TEST(test_set_dsn_and_at_check)
{
	struct envelope env;

	make_full(&env);
	ck_assert_int_eq(envelope_set_dsn(&env, false, "none null-sender"), 0);
	ck_assert_int_eq(envelope_set_dsn(&env, false, "none"), -EINVAL);
	ck_assert_int_eq(envelope_set_dsn(&env, false, "a/b"), -EINVAL);
	ck_assert_int_eq(envelope_set_dsn(&env, false, "a\nrcpt: x"), -EINVAL);
	ck_assert_str_eq(env.dsn, "none null-sender");
	ck_assert_int_eq(envelope_set_rcpt_at(&env, 0, "a b", 1), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_at(&env, 0, "a\r\n", 1), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_at(&env, 0, "", 1), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_at(&env, 0, "h", -1), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_at(&env, 99, "h", 1), -EINVAL);
	ck_assert_ptr_null(env.rcpt[0].host);
	assert_round_trip(&env);
	envelope_free(&env);
}
END_TEST

START_TEST(test_bad_record)
{
	const struct bad_case *c = &bad_cases[_i];
	struct envelope env;
	char *text = edit_record(c);
	int r;

	r = envelope_parse(text, strlen(text), &env);
	ck_assert_msg(r == -EBADMSG, "%s: envelope_parse = %d (%s), want -EBADMSG; record:\n%s",
	    c->what, r, strerror(-r), text);
	/* A failed parse leaves nothing to free. */
	ck_assert_uint_eq(env.nrcpt, 0);
	ck_assert_ptr_null(env.from);
	ck_assert_ptr_null(env.rcpt);
	free(text);
}
END_TEST

START_TEST(test_good_rejected_parses)
{
	struct envelope env;

	ck_assert_int_eq(envelope_parse(good_rejected, strlen(good_rejected), &env), 0);
	ck_assert_uint_eq(env.nrcpt, 0);
	ck_assert_str_eq(env.from, "");
	ck_assert_str_eq(env.rejected, "554 5.5.1 EDESTADDRREQ rejected at submission: no recipient");
	envelope_free(&env);
}
END_TEST

START_TEST(test_bad_rejected)
{
	const struct bad_case *c = &bad_rejected_cases[_i];
	struct envelope env;
	char *text = edit_good(good_rejected, c);
	int r;

	r = envelope_parse(text, strlen(text), &env);
	ck_assert_msg(r == -EBADMSG, "%s: envelope_parse = %d (%s), want -EBADMSG; record:\n%s",
	    c->what, r, strerror(-r), text);
	ck_assert_ptr_null(env.rejected);
	free(text);
}
END_TEST

START_TEST(test_bad_record_nul)
{
	char buf[sizeof(good_record)];
	struct envelope env;
	size_t len = strlen(good_record);

	memcpy(buf, good_record, len);
	buf[40] = '\0';
	ck_assert_int_eq(envelope_parse(buf, len, &env), -EBADMSG);
	/* NUL as the very last byte, after a complete record */
	memcpy(buf, good_record, len);
	buf[len] = '\0';
	ck_assert_int_eq(envelope_parse(buf, len + 1, &env), -EBADMSG);
}
END_TEST

START_TEST(test_bad_record_sizes)
{
	struct envelope env;
	char *big;
	size_t len = ENVELOPE_MAX_SIZE + 1;

	ck_assert_int_eq(envelope_parse("", 0, &env), -EBADMSG);
	/* len bounds the parse: a good record with its last LF outside len is cut */
	ck_assert_int_eq(envelope_parse(good_record, strlen(good_record) - 1, &env), -EBADMSG);
	ck_assert_ptr_nonnull(big = malloc(len));
	memset(big, 'a', len);
	ck_assert_int_eq(envelope_parse(big, len, &env), -EBADMSG);
	free(big);
}
END_TEST

/* More rcpt lines than ENVELOPE_MAX_RCPT: corrupt, like any other broken record. */
START_TEST(test_bad_record_too_many_rcpts)
{
	struct envelope env;
	char *buf;
	size_t len = 0, i, cap = 64 + (size_t)(ENVELOPE_MAX_RCPT + 1) * 32;
	int r;

	ck_assert_ptr_nonnull(buf = malloc(cap));
	len += (size_t)sprintf(buf + len, "spoolgate-envelope: 1\nid: 1.M1P1Q1\nfrom: <a@b>\n");
	for (i = 0; i <= ENVELOPE_MAX_RCPT; i++)
		len += (size_t)sprintf(buf + len, "rcpt: pending <r%zu@x>\n", i);
	r = envelope_parse(buf, len, &env);
	ck_assert_msg(r == -EBADMSG, "%u recipients: envelope_parse = %d (%s), want -EBADMSG",
	    ENVELOPE_MAX_RCPT + 1, r, strerror(-r));
	free(buf);
}
END_TEST

START_TEST(test_add_rcpt_dedupes)
{
	struct envelope env;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "a@b", NULL), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "bob@x"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "carol@x"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "bob@x"), 0);
	ck_assert_int_eq(envelope_set_rcpt(&env, 1, RCPT_SENT, "250 ok"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "carol@x"), 0);
	ck_assert_uint_eq(env.nrcpt, 2);
	ck_assert_str_eq(env.rcpt[0].addr, "bob@x");
	ck_assert_str_eq(env.rcpt[1].addr, "carol@x");
	/* adding a duplicate does not reset its state */
	ck_assert_int_eq(env.rcpt[1].state, RCPT_SENT);
	ck_assert_int_eq(envelope_set_rcpt(&env, 2, RCPT_SENT, NULL), -EINVAL);
	envelope_free(&env);
}
END_TEST

START_TEST(test_add_rcpt_bound)
{
	struct envelope env;
	char addr[32];
	size_t i;

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q1", "a@b", NULL), 0);
	for (i = 0; i < ENVELOPE_MAX_RCPT; i++) {
		snprintf(addr, sizeof(addr), "r%zu@x", i);
		ck_assert_int_eq(envelope_add_rcpt(&env, addr), 0);
	}
	ck_assert_int_eq(envelope_add_rcpt(&env, "one-too-many@x"), -E2BIG);
	ck_assert_int_eq(envelope_add_rcpt(&env, "r0@x"), 0);	/* a duplicate is no new recipient */
	ck_assert_uint_eq(env.nrcpt, ENVELOPE_MAX_RCPT);
	envelope_free(&env);
}
END_TEST

START_TEST(test_init_and_copy)
{
	struct envelope a, b;
	char longid[ENVELOPE_ID_MAX + 1];

	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	ck_assert_int_eq(envelope_init(&a, longid, "a@b", NULL), -EINVAL);
	longid[ENVELOPE_ID_MAX - 1] = '\0';
	ck_assert_int_eq(envelope_init(&a, longid, "a@b", NULL), 0);
	envelope_free(&a);

	make_full(&a);
	ck_assert_int_eq(envelope_copy(&b, &a), 0);
	assert_env_equal(&a, &b);
	envelope_free(&a);
	/* the copy owns its strings */
	ck_assert_str_eq(b.rcpt[2].reply, "550 5.1.1 <dave@example.net>: no such user");
	envelope_free(&b);
	ck_assert_str_eq(rcpt_state_name(RCPT_PENDING), "pending");
	ck_assert_str_eq(rcpt_state_name(RCPT_SENT), "sent");
	ck_assert_str_eq(rcpt_state_name(RCPT_FAILED), "failed");
}
END_TEST

static int
write_file_at(int dirfd, const char *name, const char *buf, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/*
 * fstat() as envelope_read_at() sees it (fstat64 with 64-bit offsets): this
 * definition in the test program takes the place of libc's, so a test can
 * make it fail.  A failing call leaves a struct that looks like a small
 * regular file, as an uninitialised one might.
 */
static int fstat_fails_with;

int
fstat64(int fd, struct stat64 *st)
{
	static int (*real)(int, struct stat64 *);

	if (fstat_fails_with != 0) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0600;
		st->st_size = 10;
		errno = fstat_fails_with;
		return -1;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "fstat64");
	return real(fd, st);
}

START_TEST(test_read_at)
{
	char dir[sizeof(tmpbase) + 16], *text;
	struct envelope env, back;
	size_t len;
	int dfd;

	snprintf(dir, sizeof(dir), "%s/read_at", tmpbase);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_ge(dfd = open(dir, O_RDONLY | O_DIRECTORY), 0);
	make_full(&env);
	ck_assert_int_eq(envelope_format(&env, &text, &len), 0);
	ck_assert_int_eq(write_file_at(dfd, "rec", text, len), 0);
	ck_assert_int_eq(envelope_read_at(dfd, "rec", &back), 0);
	assert_env_equal(&env, &back);
	envelope_free(&back);

	/* cut file: the last line has no LF */
	ck_assert_int_eq(write_file_at(dfd, "cut", text, len - 5), 0);
	ck_assert_int_eq(envelope_read_at(dfd, "cut", &back), -EBADMSG);
	/* empty file */
	ck_assert_int_eq(write_file_at(dfd, "empty", "", 0), 0);
	ck_assert_int_eq(envelope_read_at(dfd, "empty", &back), -EBADMSG);
	/* missing, a symlink (never followed), a directory */
	ck_assert_int_eq(envelope_read_at(dfd, "missing", &back), -ENOENT);
	ck_assert_int_eq(symlinkat("rec", dfd, "link"), 0);
	ck_assert_int_eq(envelope_read_at(dfd, "link", &back), -ELOOP);
	ck_assert_int_eq(mkdirat(dfd, "adir", 0700), 0);
	ck_assert_int_lt(envelope_read_at(dfd, "adir", &back), 0);
	/* fstat fails: its error, not a judgement of a struct it did not fill */
	fstat_fails_with = EIO;
	ck_assert_int_eq(envelope_read_at(dfd, "rec", &back), -EIO);
	fstat_fails_with = 0;
	ck_assert_int_eq(envelope_read_at(dfd, "rec", &back), 0);
	envelope_free(&back);

	free(text);
	envelope_free(&env);
	close(dfd);
}
END_TEST

/* An inline record: its text, an empty line, then the data (here a Return-Path line and body). */
static char *
inline_file(const struct envelope *env, const char *data, size_t dlen, size_t *outlen)
{
	char *text, *out;
	size_t len;

	ck_assert_int_eq(envelope_format(env, &text, &len), 0);
	ck_assert_ptr_nonnull(out = malloc(len + 1 + dlen));
	memcpy(out, text, len);
	out[len] = '\n';
	memcpy(out + len + 1, data, dlen);
	*outlen = len + 1 + dlen;
	free(text);
	return out;
}

/*
 * "data: inline": the record, an empty line, the message.  In the file
 * data-offset counts from the empty line's end; parsed, from the file's
 * start.  The flag and the empty line go together; what follows the
 * empty line (any bytes, any size) is not the record's.
 */
START_TEST(test_inline_record)
{
	static const char data[] = "Return-Path: <a@b>\nSubject: s\n\nbody\n";
	char dir[sizeof(tmpbase) + 16], *file, *text, *big;
	const size_t big_len = ENVELOPE_MAX_SIZE + 4096;
	struct envelope env, back;
	size_t len, tlen;
	int dfd;

	make_full(&env);
	env.data_offset = 19;		/* the Return-Path line */
	env.inline_data = true;
	file = inline_file(&env, data, sizeof(data) - 1, &len);
	ck_assert_ptr_nonnull(strstr(file, "\ndata-offset: 19\ndata: inline\n"));
	ck_assert_int_eq(envelope_parse(file, len, &back), 0);
	ck_assert(back.inline_data);
	ck_assert_int_eq(back.data_offset, (long long)(len - (sizeof(data) - 1) + 19));
	ck_assert_int_eq(back.text_len, (long long)(len - (sizeof(data) - 1) - 1));
	ck_assert_uint_eq(len - (size_t)back.data_offset, strlen("Subject: s\n\nbody\n"));
	ck_assert_mem_eq(file + back.data_offset, "Subject: s\n\nbody\n", len - (size_t)back.data_offset);
	envelope_free(&back);
	/* the text alone, or a plain record with an empty line: refused */
	ck_assert_int_eq(envelope_format(&env, &text, &tlen), 0);
	ck_assert_int_eq(envelope_parse(text, tlen, &back), -EBADMSG);
	free(text);
	env.inline_data = false;
	free(file);
	file = inline_file(&env, data, sizeof(data) - 1, &len);
	ck_assert_int_eq(envelope_parse(file, len, &back), -EBADMSG);
	free(file);
	/* plain records read as before, their text_len their size */
	ck_assert_int_eq(envelope_format(&env, &text, &tlen), 0);
	ck_assert_int_eq(envelope_parse(text, tlen, &back), 0);
	ck_assert(!back.inline_data);
	ck_assert_int_eq(back.text_len, (long long)tlen);
	ck_assert_int_eq(back.data_offset, 19);
	envelope_free(&back);
	free(text);

	/* from a file: a message larger than any record, with NULs and empty lines, read only to the record's end */
	snprintf(dir, sizeof(dir), "%s/inline", tmpbase);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_ge(dfd = open(dir, O_RDONLY | O_DIRECTORY), 0);
	ck_assert_ptr_nonnull(big = calloc(1, big_len));
	memcpy(big, data, sizeof(data) - 1);
	env.inline_data = true;
	file = inline_file(&env, big, big_len, &len);
	ck_assert_int_eq(write_file_at(dfd, "inline", file, len), 0);
	ck_assert_int_eq(envelope_read_at(dfd, "inline", &back), 0);
	ck_assert(back.inline_data);
	ck_assert_int_eq(back.data_offset, (long long)(len - big_len + 19));
	envelope_free(&back);
	/* a flag whose empty line never comes within a record's size */
	ck_assert_int_eq(envelope_format(&env, &text, &tlen), 0);
	ck_assert_int_eq(write_file_at(dfd, "noblank", text, tlen), 0);
	ck_assert_int_eq(envelope_read_at(dfd, "noblank", &back), -EBADMSG);
	free(text);
	free(file);
	free(big);
	envelope_free(&env);
	close(dfd);
}
END_TEST

/* A sealed inline record as spoolgate-fs writes it: envelope_seal_inline(), then the data. */
static char *
sealed_file(const struct envelope *env, const char *data, size_t dlen, size_t *outlen)
{
	char *text, *out;
	size_t len;

	ck_assert_int_eq(envelope_format(env, &text, &len), 0);
	ck_assert_int_eq(envelope_seal_inline(&text, &len, data, dlen), 0);
	ck_assert_ptr_nonnull(out = malloc(len + dlen));
	memcpy(out, text, len);
	memcpy(out + len, data, dlen);
	free(text);
	*outlen = len + dlen;
	return out;
}

/* Writes buf as dirfd/name, parses it and checks its seal against id: the check's result. */
static int
check_sealed(int dirfd, const char *name, const char *buf, size_t len, const char *id)
{
	struct envelope env;
	int fd, r;

	ck_assert_int_eq(write_file_at(dirfd, name, buf, len), 0);
	ck_assert_int_ge(fd = openat(dirfd, name, O_RDONLY), 0);
	if ((r = envelope_read_fd(fd, &env)) == 0) {
		r = envelope_check_inline(fd, &env, id);
		envelope_free(&env);
	}
	close(fd);
	return r;
}

/*
 * The seal of an inline record: its last line, the CRC-32 of the rest of
 * the file.  What a power cut can leave under the name (a byte of the
 * text or of the message changed, the file cut short or grown with
 * zeros, another record's whole file) does not pass
 * envelope_check_inline(); the record as written does, and so does an
 * inline record written before seals existed.  The line is refused
 * anywhere but last in an inline record.
 */
START_TEST(test_inline_seal)
{
	static const char data[] = "Return-Path: <a@b>\nSubject: s\n\nbody\n";
	const char *id = "1764442059.M123456P4242Q7";
	char dir[sizeof(tmpbase) + 16], *file, *bad, *text;
	struct envelope env, back;
	size_t len, tlen, at;
	int dfd;

	snprintf(dir, sizeof(dir), "%s/seal", tmpbase);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_ge(dfd = open(dir, O_RDONLY | O_DIRECTORY), 0);
	make_full(&env);
	env.data_offset = 19;
	env.inline_data = true;
	file = sealed_file(&env, data, sizeof(data) - 1, &len);
	ck_assert_int_eq(envelope_parse(file, len, &back), 0);
	ck_assert(back.inline_sealed);
	ck_assert_ptr_nonnull(strstr(file, "\ninline-crc32: "));
	ck_assert_int_eq(back.seal_at, (long long)(strstr(file, "\ninline-crc32: ") - file + 1));
	ck_assert_mem_eq(file + back.text_len, "\nReturn-Path: ", 14);
	ck_assert_mem_eq(file + back.data_offset, "Subject: s\n", 11);
	envelope_free(&back);
	ck_assert_int_eq(check_sealed(dfd, "whole", file, len, id), 0);
	/* under another name: an older record's file where this id's should be */
	ck_assert_int_eq(check_sealed(dfd, "other", file, len, "1764442059.M123456P4242Q8"), -EBADMSG);
	/* a byte of the message, a byte of the text (a recipient), the seal itself */
	ck_assert_ptr_nonnull(bad = malloc(len + 4096));
	memcpy(bad, file, len);
	bad[len - 2] ^= 0x20;
	ck_assert_int_eq(check_sealed(dfd, "body", bad, len, id), -EBADMSG);
	memcpy(bad, file, len);
	at = (size_t)(strstr(bad, "<bob@") - bad) + 1;
	bad[at] = 'r';
	ck_assert_int_eq(check_sealed(dfd, "rcpt", bad, len, id), -EBADMSG);
	memcpy(bad, file, len);
	at = (size_t)(strstr(bad, "\ninline-crc32: ") - bad) + 15;
	bad[at] = bad[at] == '0' ? '1' : '0';
	ck_assert_int_eq(check_sealed(dfd, "seal", bad, len, id), -EBADMSG);
	/* cut short by a byte, or grown by a block of zeros (a size that reached the disk, its data not) */
	ck_assert_int_eq(check_sealed(dfd, "short", file, len - 1, id), -EBADMSG);
	memcpy(bad, file, len);
	memset(bad + len, 0, 4096);
	ck_assert_int_eq(check_sealed(dfd, "zeros", bad, len + 4096, id), -EBADMSG);
	/* a message of zeros where the data should be (blocks allocated, never written) */
	memcpy(bad, file, len);
	memset(bad + back.text_len + 1, 0, len - (size_t)back.text_len - 1);
	ck_assert_int_eq(check_sealed(dfd, "hole", bad, len, id), -EBADMSG);
	free(bad);
	/* an inline record without a seal (written before seals, its content synced first) still reads */
	{
		size_t ulen;
		char *unsealed = inline_file(&env, data, sizeof(data) - 1, &ulen);

		ck_assert_int_eq(check_sealed(dfd, "unsealed", unsealed, ulen, id), 0);
		free(unsealed);
	}
	/* the line anywhere but last, twice, in a plain record, of the wrong form: not a record */
	ck_assert_int_eq(envelope_format(&env, &text, &tlen), 0);
	{
		static const char *const wrong[] = {
			"inline-crc32: 0011aabb\nattempts: 9\n\nx",
			"inline-crc32: 0011aabb\ninline-crc32: 0011aabb\n\nx",
			"inline-crc32: 0011AABB\n\nx",
			"inline-crc32: 11aabb\n\nx",
			"inline-crc32: 0011aabbcc\n\nx",
		};
		char buf[8192];
		size_t i;

		for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
			snprintf(buf, sizeof(buf), "%.*s%s", (int)tlen, text, wrong[i]);
			ck_assert_msg(envelope_parse(buf, strlen(buf), &back) == -EBADMSG, "%s", wrong[i]);
		}
		env.inline_data = false;
		free(text);
		ck_assert_int_eq(envelope_format(&env, &text, &tlen), 0);
		snprintf(buf, sizeof(buf), "%.*sinline-crc32: 0011aabb\n", (int)tlen, text);
		ck_assert_int_eq(envelope_parse(buf, strlen(buf), &back), -EBADMSG);
	}
	free(text);
	free(file);
	envelope_free(&env);
	close(dfd);
}
END_TEST

static Suite *
envelope_suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc;

	tc = tcase_create("round_trip");
	tcase_add_test(tc, test_round_trip_full);
	tcase_add_test(tc, test_round_trip_minimal);
	tcase_add_test(tc, test_round_trip_large_numbers);
	tcase_add_loop_test(tc, test_round_trip_odd_rcpt, 0, N_ODD_ADDRS);
	tcase_add_loop_test(tc, test_round_trip_odd_from, 0, N_ODD_ADDRS);
	tcase_add_loop_test(tc, test_round_trip_odd_replies, 0, N_ODD_REPLIES);
	tcase_add_test(tc, test_format_rejects_line_breaks);
	tcase_add_test(tc, test_round_trip_rejected);
	tcase_add_loop_test(tc, test_set_rejected_checks, 0, N_BAD_REJECTED_PARTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("strict_parse");
	tcase_add_test(tc, test_good_record_parses);
	tcase_add_test(tc, test_set_last_tls_and_auth);
	tcase_add_test(tc, test_attempt_history);
	tcase_add_loop_test(tc, test_bad_record, 0, N_BAD_CASES);
	tcase_add_test(tc, test_good_rejected_parses);
	tcase_add_loop_test(tc, test_bad_rejected, 0, N_BAD_REJECTED_CASES);
	tcase_add_test(tc, test_good_dsn_record_parses);
	tcase_add_loop_test(tc, test_bad_dsn_record, 0, N_BAD_DSN_CASES);
	tcase_add_test(tc, test_good_dsn_param_record_parses);
	tcase_add_loop_test(tc, test_bad_dsn_param_record, 0, N_BAD_DSN_PARAM_CASES);
	tcase_add_test(tc, test_set_dsn_and_at_check);
	tcase_add_test(tc, test_bad_record_nul);
	tcase_add_test(tc, test_bad_record_sizes);
	tcase_add_test(tc, test_bad_record_too_many_rcpts);
	suite_add_tcase(s, tc);

	tc = tcase_create("objects");
	tcase_add_test(tc, test_add_rcpt_dedupes);
	tcase_add_test(tc, test_add_rcpt_bound);
	tcase_add_test(tc, test_init_and_copy);
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_test(tc, test_read_at);
	tcase_add_test(tc, test_inline_record);
	tcase_add_test(tc, test_inline_seal);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(envelope_suite());
}
