/*
 * NAME
 *	test_dsn - unit tests of delivery status notifications (dsn.h)
 * SYNOPSIS
 *	test_dsn
 * DESCRIPTION
 *	dsn_build() output is parsed back with GMime: the top-level header
 *	(From: MAILER-DAEMON@host, To: the sender, Subject, Date, Message-ID,
 *	Auto-Submitted: auto-replied, multipart/report with
 *	report-type=delivery-status), the three parts in order and their
 *	types, the per-message fields (Reporting-MTA, Arrival-Date) and each
 *	recipient's fields (Final-Recipient, Action, Status, Remote-MTA,
 *	Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until), the words of
 *	the first part, and the attached header section (and only it).
 *	Hostile values (a reply with CR LF and a "." line, 8-bit bytes, a 5000
 *	octet reply, odd recipient addresses, a header section without end)
 *	never change the structure: still three parts, one block per
 *	recipient, every line 7-bit and within 998 octets; a bare CR or a NUL
 *	in the original's headers is quoted-printable, not sent as it is.
 *	dsn_status_code() and the per-sender limiter (cap, sliding hour,
 *	case, other senders, eviction) are checked with a fake clock.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "dsn.h"
#include "testutil.h"

#define CREATED		1764442059LL
#define NOW		1764445659LL

static const char original[] =
	"Return-Path: <alice@localhost>\n"
	"Received: from x by y; Wed, 02 Dec 2026 06:00:00 +0000\n"
	"From: Alice <alice@localhost>\n"
	"To: bob@example.net\n"
	"Subject: the nightly report\n"
	"\n"
	"SECRET BODY LINE\n";
#define ORIGINAL_OFFSET	31	/* skips Return-Path */

static int
original_fd(const char *text, size_t len)
{
	FILE *fp = tmpfile();
	int fd;

	ck_assert_ptr_nonnull(fp);
	fd = dup(fileno(fp));
	fclose(fp);
	ck_assert_int_eq((ssize_t)len, write(fd, text, len));
	return fd;
}

static void
make_env(struct envelope *env)
{
	ck_assert_int_eq(envelope_init(env, "1764442059.M1P2Q3", "alice@localhost", "smtp 127.0.0.1"), 0);
	env->created = CREATED;
	env->data_offset = ORIGINAL_OFFSET;
	ck_assert_int_eq(envelope_add_rcpt(env, "bob@example.net"), 0);
	ck_assert_int_eq(envelope_add_rcpt(env, "carol@example.net"), 0);
	ck_assert_int_eq(envelope_add_rcpt(env, "dave@example.net"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 0, RCPT_FAILED, "550 5.1.1 <bob@example.net>: no such user"), 0);
	ck_assert_int_eq(envelope_set_rcpt_at(env, 0, "mx1.example.net[192.0.2.1]:25", CREATED + 60), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 1, RCPT_SENT, "250 2.0.0 Ok"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 2, RCPT_PENDING, "451 4.3.0 try later"), 0);
	ck_assert_int_eq(envelope_set_rcpt_at(env, 2, "[2001:db8::1]:2525", CREATED + 61), 0);
}

/* The built notice, parsed back. */
struct parsed {
	char	       *raw;
	size_t		len;
	GMimeMessage   *msg;
	GMimeMultipart *report;
	char	       *status;		/* the delivery-status part, unfolded */
	char	       *human;
	char	       *headers;
};

static char *
part_text(GMimeObject *obj)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *bytes;
	char *out;

	if (GMIME_IS_PART(obj)) {
		GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));

		ck_assert_ptr_nonnull(w);
		ck_assert_int_ge(g_mime_data_wrapper_write_to_stream(w, mem), 0);
	} else {
		/* a parser that reads message/delivery-status as a message: its bytes */
		ck_assert_int_ge(g_mime_object_write_to_stream(obj, NULL, mem), 0);
	}
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	out = strndup((const char *)bytes->data, bytes->len);
	g_object_unref(mem);
	return out;
}

/* Folded fields become one line each (RFC 5322 2.2.3). */
static char *
unfold(const char *s)
{
	char *out = strdup(s), *w = out;

	for (; *s; s++) {
		if (s[0] == '\n' && (s[1] == ' ' || s[1] == '\t'))
			continue;
		*w++ = *s;
	}
	*w = '\0';
	return out;
}

static void
build_and_parse(const struct dsn_request *req, struct parsed *p)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeObject *body;
	GMimeContentType *ct;
	char *text;

	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(dsn_build(req, &p->raw, &p->len), 0);
	ck_assert_uint_eq(p->len, strlen(p->raw));
	stream = g_mime_stream_mem_new_with_buffer(p->raw, p->len);
	parser = g_mime_parser_new_with_stream(stream);
	p->msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	ck_assert_ptr_nonnull(p->msg);
	body = g_mime_message_get_mime_part(p->msg);
	ck_assert(GMIME_IS_MULTIPART(body));
	ct = g_mime_object_get_content_type(body);
	ck_assert(g_mime_content_type_is_type(ct, "multipart", "report"));
	ck_assert_str_eq(g_mime_content_type_get_parameter(ct, "report-type"), "delivery-status");
	p->report = GMIME_MULTIPART(body);
	ck_assert_int_ge(g_mime_multipart_get_count(p->report), 2);
	ck_assert(g_mime_content_type_is_type(g_mime_object_get_content_type(
	    g_mime_multipart_get_part(p->report, 0)), "text", "plain"));
	ck_assert(g_mime_content_type_is_type(g_mime_object_get_content_type(
	    g_mime_multipart_get_part(p->report, 1)), "message", "delivery-status"));
	p->human = part_text(g_mime_multipart_get_part(p->report, 0));
	text = part_text(g_mime_multipart_get_part(p->report, 1));
	p->status = unfold(text);
	free(text);
	if (g_mime_multipart_get_count(p->report) > 2) {
		GMimeContentType *ct = g_mime_object_get_content_type(g_mime_multipart_get_part(p->report, 2));

		ck_assert_int_eq(g_mime_multipart_get_count(p->report), 3);
		/* RET=FULL: the whole message */
		if (!g_mime_content_type_is_type(ct, "message", "rfc822")) {
			ck_assert(g_mime_content_type_is_type(ct, "text", "rfc822-headers"));
			p->headers = part_text(g_mime_multipart_get_part(p->report, 2));
		}
	}
}

static void
parsed_free(struct parsed *p)
{
	free(p->raw);
	free(p->status);
	free(p->human);
	free(p->headers);
	g_object_unref(p->msg);
}

/* The value of name in block n (0: per-message) of the status part, or NULL. */
static char *
field(const struct parsed *p, unsigned block, const char *name)
{
	const char *s = p->status, *end;
	size_t nlen = strlen(name);
	unsigned b = 0;

	while (*s != '\0') {
		end = strchr(s, '\n');
		if (end == NULL)
			end = s + strlen(s);
		if (end == s)
			b++;
		else if (b == block && (size_t)(end - s) > nlen + 1 && strncasecmp(s, name, nlen) == 0 &&
		    s[nlen] == ':' && s[nlen + 1] == ' ')
			return strndup(s + nlen + 2, (size_t)(end - s) - nlen - 2);
		s = *end ? end + 1 : end;
	}
	return NULL;
}

static unsigned
count_blocks(const struct parsed *p)
{
	const char *s;
	unsigned n = 1;

	for (s = p->status; *s; s++)
		if (s[0] == '\n' && s[1] == '\n')
			n++;
	return n;
}

static void
assert_field(const struct parsed *p, unsigned block, const char *name, const char *want)
{
	char *got = field(p, block, name);

	if (want == NULL) {
		ck_assert_msg(got == NULL, "block %u: %s should be absent, is '%s'", block, name, got);
		return;
	}
	ck_assert_msg(got != NULL, "block %u: no %s in:\n%s", block, name, p->status);
	ck_assert_msg(strcmp(got, want) == 0, "block %u: %s is '%s', want '%s'", block, name, got, want);
	free(got);
}

static void
assert_date_field(const struct parsed *p, unsigned block, const char *name, long long want)
{
	char *got = field(p, block, name);
	GDateTime *dt;

	ck_assert_msg(got != NULL, "block %u: no %s", block, name);
	dt = g_mime_utils_header_decode_date(got);
	ck_assert_msg(dt != NULL, "%s '%s' is no RFC 5322 date", name, got);
	ck_assert_int_eq(g_date_time_to_unix(dt), want);
	g_date_time_unref(dt);
	free(got);
}

/* Every line 7-bit and within RFC 5322's 998 octets. */
static void
assert_wire_safe(const char *raw)
{
	size_t col = 0;
	const char *s;

	for (s = raw; *s; s++) {
		ck_assert_msg((unsigned char)*s < 0x80, "8-bit octet at %zu", (size_t)(s - raw));
		ck_assert_msg(*s != '\r', "CR at %zu", (size_t)(s - raw));
		col = *s == '\n' ? 0 : col + 1;
		ck_assert_msg(col <= 998, "a line over 998 octets");
	}
}

START_TEST(test_failed_notice_fields)
{
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1764445659.M9P9Q9", .now = NOW };
	struct parsed p;
	InternetAddressList *list;
	char *s;
	int fd;

	make_env(&env);
	fd = original_fd(original, strlen(original));
	req.env = &env;
	req.datafd = fd;
	req.data_offset = ORIGINAL_OFFSET;
	build_and_parse(&req, &p);
	assert_wire_safe(p.raw);

	list = g_mime_message_get_from(p.msg);
	ck_assert_int_eq(internet_address_list_length(list), 1);
	ck_assert_str_eq(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(
	    internet_address_list_get_address(list, 0))), "MAILER-DAEMON@gw.example");
	list = g_mime_message_get_to(p.msg);
	ck_assert_int_eq(internet_address_list_length(list), 1);
	ck_assert_str_eq(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(
	    internet_address_list_get_address(list, 0))), "alice@localhost");
	ck_assert_str_eq(g_mime_message_get_subject(p.msg), "Undelivered Mail Returned to Sender");
	ck_assert_str_eq(g_mime_message_get_message_id(p.msg), "1764445659.M9P9Q9@gw.example");
	ck_assert_int_eq(g_date_time_to_unix(g_mime_message_get_date(p.msg)), NOW);
	ck_assert_str_eq(g_mime_object_get_header(GMIME_OBJECT(p.msg), "Auto-Submitted"), "auto-replied");
	ck_assert_str_eq(g_mime_object_get_header(GMIME_OBJECT(p.msg), "MIME-Version"), "1.0");

	/* per-message, then one block: only the failed recipient */
	ck_assert_uint_eq(count_blocks(&p), 2);
	assert_field(&p, 0, "Reporting-MTA", "dns; gw.example");
	assert_date_field(&p, 0, "Arrival-Date", CREATED);
	assert_field(&p, 1, "Final-Recipient", "rfc822; bob@example.net");
	assert_field(&p, 1, "Action", "failed");
	assert_field(&p, 1, "Status", "5.1.1");
	assert_field(&p, 1, "Remote-MTA", "dns; mx1.example.net");
	assert_field(&p, 1, "Diagnostic-Code", "smtp; 550 5.1.1 <bob@example.net>: no such user");
	assert_date_field(&p, 1, "Last-Attempt-Date", CREATED + 60);
	assert_field(&p, 1, "Will-Retry-Until", NULL);

	/* the words: who, which host, what it said; not the others */
	ck_assert_ptr_nonnull(strstr(p.human, "could not be delivered"));
	ck_assert_ptr_nonnull(strstr(p.human, "<bob@example.net>: the host mx1.example.net[192.0.2.1]:25 said"));
	ck_assert_ptr_nonnull(strstr(p.human, "550 5.1.1 <bob@example.net>: no such user"));
	ck_assert_ptr_null(strstr(p.human, "carol@"));
	ck_assert_ptr_null(strstr(p.human, "dave@"));

	/* the headers, from data-offset on, and not the body */
	ck_assert_ptr_nonnull(p.headers);
	ck_assert_ptr_nonnull(strstr(p.headers, "Subject: the nightly report\n"));
	ck_assert_ptr_null(strstr(p.headers, "Return-Path"));
	ck_assert_ptr_null(strstr(p.raw, "SECRET BODY"));
	ck_assert_msg(strncmp(p.headers, "Received: from x", 16) == 0, "headers start: %.40s", p.headers);
	s = strstr(p.headers, "Subject: the nightly report\n");
	ck_assert_str_eq(s, "Subject: the nightly report\n");	/* ends with the last header */
	parsed_free(&p);
	close(fd);
	envelope_free(&env);
}
END_TEST

START_TEST(test_delayed_notice_fields)
{
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1764445659.M9P9Q8", .now = NOW,
	    .delayed = true, .expires = CREATED + 432000, .datafd = -1 };
	struct parsed p;

	make_env(&env);
	req.env = &env;
	build_and_parse(&req, &p);
	assert_wire_safe(p.raw);
	ck_assert_str_eq(g_mime_message_get_subject(p.msg), "Delayed Mail (still being retried)");
	ck_assert_int_eq(g_mime_multipart_get_count(p.report), 2);	/* datafd -1: no headers part */
	ck_assert_uint_eq(count_blocks(&p), 2);
	assert_field(&p, 1, "Final-Recipient", "rfc822; dave@example.net");
	assert_field(&p, 1, "Action", "delayed");
	assert_field(&p, 1, "Status", "4.3.0");
	assert_field(&p, 1, "Remote-MTA", "dns; 2001:db8::1");
	assert_field(&p, 1, "Diagnostic-Code", "smtp; 451 4.3.0 try later");
	assert_date_field(&p, 1, "Last-Attempt-Date", CREATED + 61);
	assert_date_field(&p, 1, "Will-Retry-Until", CREATED + 432000);
	ck_assert_ptr_nonnull(strstr(p.human, "not been delivered yet"));
	ck_assert_ptr_nonnull(strstr(p.human, "warning only"));
	parsed_free(&p);
	envelope_free(&env);
}
END_TEST

START_TEST(test_nothing_to_report)
{
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1.M1P1Q1", .now = NOW, .datafd = -1 };
	char *out = NULL;
	size_t len;

	make_env(&env);
	ck_assert_int_eq(envelope_set_rcpt(&env, 0, RCPT_SENT, "250 ok"), 0);
	req.env = &env;
	ck_assert_int_eq(dsn_build(&req, &out, &len), -EINVAL);	/* nobody failed */
	req.hostname = NULL;
	req.delayed = true;
	ck_assert_int_eq(dsn_build(&req, &out, &len), -EINVAL);
	ck_assert_ptr_null(out);
	envelope_free(&env);
}
END_TEST

/* RFC 3461: NOTIFY chooses who is in a notice; ENVID and ORCPT are named, decoded. */
START_TEST(test_notify_envid_orcpt)
{
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1764445659.M9P9Q7", .now = NOW, .datafd = -1 };
	struct parsed p;
	char *out = NULL;
	size_t len;

	make_env(&env);
	req.env = &env;
	ck_assert_int_eq(envelope_add_rcpt(&env, "erin@example.net"), 0);
	ck_assert_int_eq(envelope_set_rcpt(&env, 3, RCPT_FAILED, "550 5.1.1 no erin"), 0);
	ck_assert_int_eq(envelope_set_dsn_request(&env, DSN_RET_HDRS, "QQ+2B314159"), 0);
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 0, DSN_NOTIFY_FAILURE, "rfc822;bob+2Bold@localhost"), 0);
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 3, DSN_NOTIFY_NEVER, NULL), 0);
	ck_assert_uint_eq(dsn_recipients_wanting(&env, false), 1);
	build_and_parse(&req, &p);
	ck_assert_uint_eq(count_blocks(&p), 2);		/* erin asked for NEVER */
	assert_field(&p, 0, "Original-Envelope-Id", "QQ+314159");
	assert_field(&p, 1, "Original-Recipient", "rfc822;bob+old@localhost");
	assert_field(&p, 1, "Final-Recipient", "rfc822; bob@example.net");
	ck_assert_ptr_null(strstr(p.raw, "erin@"));
	parsed_free(&p);
	/* nobody wants a failure notice: none is built; delays are still reported to dave */
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 0, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY, NULL), 0);
	ck_assert_uint_eq(dsn_recipients_wanting(&env, false), 0);
	ck_assert_int_eq(dsn_build(&req, &out, &len), -EINVAL);
	ck_assert_uint_eq(dsn_recipients_wanting(&env, true), 1);
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 2, DSN_NOTIFY_FAILURE, NULL), 0);
	ck_assert_uint_eq(dsn_recipients_wanting(&env, true), 0);
	envelope_free(&env);
}
END_TEST

/* Values no well-behaved peer sends, set on the struct directly. */
static const char *const hostile_replies[] = {
	"550 5.1.1 no\r\n.\r\nMAIL FROM:<x@evil>\r\n",
	"550 5.7.1 caf\xc3\xa9 \xff\xfe refused\n--boundary\nContent-Type: text/html",
	"550 5.1.1",
	"5",
	"",
};
#define N_HOSTILE (sizeof(hostile_replies) / sizeof(hostile_replies[0]) + 1)

static const char *const odd_addrs[] = {
	"\"odd <local> part\"@example.net",
	"x\r\nBcc: victim@example.org",
	"caf\xc3\xa9@example.net",
	"a;b,c@example.net",
};
#define N_ODD (sizeof(odd_addrs) / sizeof(odd_addrs[0]))

START_TEST(test_hostile_values_keep_structure)
{
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1.M1P1Q1", .now = NOW };
	struct parsed p;
	char *longreply, *got, headers[300];
	size_t i;
	int fd;

	longreply = malloc(5001);
	memset(longreply, 'x', 5000);
	for (i = 7; i < 5000; i += 9)
		longreply[i] = ' ';
	memcpy(longreply, "550 5.0", 7);
	longreply[5000] = '\0';

	ck_assert_int_eq(envelope_init(&env, "1.M1P1Q2", "x\r\nSubject: forged", "smtp 127.0.0.1"), 0);
	env.created = CREATED;
	for (i = 0; i < N_ODD; i++) {
		ck_assert_int_eq(envelope_add_rcpt(&env, odd_addrs[i]), 0);
		/* replaced under the parser's nose: the struct is what dsn_build sees */
		free(env.rcpt[i].reply);
		env.rcpt[i].reply = strdup(_i < (int)N_HOSTILE - 1 ? hostile_replies[_i] : longreply);
		env.rcpt[i].state = RCPT_FAILED;
		env.rcpt[i].host = strdup("mx\r\n.evil:25");
		env.rcpt[i].at = CREATED + 1;
	}
	/* a header section that never ends, 8-bit and all */
	memset(headers, 'h', sizeof(headers));
	memcpy(headers, "X-A: \xff\n", 7);
	fd = original_fd(headers, sizeof(headers));
	req.env = &env;
	req.datafd = fd;
	build_and_parse(&req, &p);
	assert_wire_safe(p.raw);
	ck_assert_int_eq(g_mime_multipart_get_count(p.report), 3);
	ck_assert_uint_eq(count_blocks(&p), 1 + N_ODD);
	ck_assert_int_eq(internet_address_list_length(g_mime_message_get_to(p.msg)), 1);
	ck_assert_ptr_null(g_mime_object_get_header(GMIME_OBJECT(p.msg), "Bcc"));
	ck_assert_str_eq(g_mime_message_get_subject(p.msg), "Undelivered Mail Returned to Sender");
	for (i = 0; i < N_ODD; i++) {
		assert_field(&p, 1 + (unsigned)i, "Action", "failed");
		assert_field(&p, 1 + (unsigned)i, "Remote-MTA", "dns; mx??.evil");
		got = field(&p, 1 + (unsigned)i, "Status");
		ck_assert_ptr_nonnull(got);
		ck_assert_msg(got[0] == '5' && got[1] == '.', "Status '%s'", got);
		free(got);
		got = field(&p, 1 + (unsigned)i, "Final-Recipient");
		ck_assert_ptr_nonnull(got);
		ck_assert_msg(strncmp(got, "rfc822; ", 8) == 0, "Final-Recipient '%s'", got);
		free(got);
		got = field(&p, 1 + (unsigned)i, "Diagnostic-Code");
		if (_i < (int)N_HOSTILE - 1 && hostile_replies[_i][0] == '\0') {
			ck_assert_ptr_null(got);	/* no reply: no diagnostic */
		} else {
			ck_assert_ptr_nonnull(got);
			ck_assert_uint_le(strlen(got), DSN_TEXT_MAX + 16);
			free(got);
		}
	}
	ck_assert_ptr_nonnull(strstr(p.headers, "X-A: "));
	ck_assert_uint_le(strlen(p.headers), sizeof(headers));
	parsed_free(&p);
	close(fd);
	free(longreply);
	envelope_free(&env);
}
END_TEST

/* A bare CR in the original's headers, and nothing 8-bit: GMime alone would call it 7bit. */
/* Remote-MTA from each form of rcpt-at host. */
START_TEST(test_remote_mta_forms)
{
	static const struct { const char *host; const char *want; } cases[] = {
		{ "mx1.example.net[192.0.2.1]:25", "dns; mx1.example.net" },
		{ "mx1.example.net[2001:db8::1]:25", "dns; mx1.example.net" },
		{ "[2001:db8::1]:2525", "dns; 2001:db8::1" },
		{ "127.0.0.1:2525", "dns; 127.0.0.1" },
		{ "relay.example:587", "dns; relay.example" },
		{ "mx:example.org", NULL },	/* a destination whose DNS lookup failed */
		{ "(none)", NULL },
		{ ":25", NULL },
	};
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1.M1P1Q1", .now = NOW, .datafd = -1 };
	struct parsed p;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_env(&env);
		ck_assert_int_eq(envelope_set_rcpt_at(&env, 0, cases[i].host, CREATED + 60), 0);
		req.env = &env;
		build_and_parse(&req, &p);
		assert_field(&p, 1, "Remote-MTA", cases[i].want);
		ck_assert_msg(strstr(p.human, cases[i].host) != NULL, "the words name %s", cases[i].host);
		parsed_free(&p);
		envelope_free(&env);
	}
}
END_TEST

START_TEST(test_bare_cr_in_headers)
{
	static const char orig[] = "Subject: a\rMAIL FROM:<x>\nX-N: b\n\nbody\n";
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1.M1P1Q1", .now = NOW };
	struct parsed p;
	int fd;

	make_env(&env);
	fd = original_fd(orig, sizeof(orig) - 1);
	req.env = &env;
	req.datafd = fd;
	req.data_offset = 0;
	build_and_parse(&req, &p);
	assert_wire_safe(p.raw);
	ck_assert_msg(strstr(p.raw, "Content-Type: text/rfc822-headers\nContent-Transfer-Encoding: quoted-printable") ||
	    strstr(p.raw, "Content-Type: text/rfc822-headers\nContent-Transfer-Encoding: base64"), "%s", p.raw);
	ck_assert_str_eq(p.headers, "Subject: a\rMAIL FROM:<x>\nX-N: b\n");
	parsed_free(&p);
	close(fd);
	envelope_free(&env);
}
END_TEST

/* RET=FULL (RFC 3461 4.3): the whole original when small and 7-bit, else its headers and why. */
static const struct {
	const char     *orig;
	size_t		full_max;
	bool		whole;
	const char     *sentence;
} ret_full_cases[] = {
	{ "Subject: s\n\nSECRET BODY LINE\n", 1024, true, "Your message is attached." },
	{ "Subject: s\n\nSECRET BODY LINE\n", 10, false, "larger than the 10 octets" },
	{ "Subject: s\n\nSECRET BODY LINE \xc3\xa9\n", 1024, false, "not 7-bit text" },
	{ "Subject: s\r\n\r\nSECRET BODY LINE\r\n", 1024, false, "not 7-bit text" },
};
#define N_RET_FULL	(sizeof(ret_full_cases) / sizeof(ret_full_cases[0]))

START_TEST(test_ret_full)
{
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1.M1P1Q1", .now = NOW,
	    .full_max = ret_full_cases[_i].full_max };
	struct parsed p;
	int fd;

	make_env(&env);
	env.dsn_ret = DSN_RET_FULL;
	fd = original_fd(ret_full_cases[_i].orig, strlen(ret_full_cases[_i].orig));
	req.env = &env;
	req.datafd = fd;
	req.data_offset = 0;
	build_and_parse(&req, &p);
	assert_wire_safe(p.raw);
	ck_assert_int_eq(g_mime_multipart_get_count(p.report), 3);
	if (ret_full_cases[_i].whole) {
		ck_assert_ptr_nonnull(strstr(p.raw, "Content-Type: message/rfc822"));
		ck_assert_ptr_nonnull(strstr(p.raw, "\nSECRET BODY LINE\n"));
	} else {
		ck_assert_ptr_nonnull(strstr(p.raw, "Content-Type: text/rfc822-headers"));
		ck_assert_ptr_null(strstr(p.raw, "SECRET BODY"));
	}
	ck_assert_msg(strstr(p.human, ret_full_cases[_i].sentence) != NULL, "%s", p.human);
	parsed_free(&p);
	close(fd);
	envelope_free(&env);
}
END_TEST

/* NOTIFY=SUCCESS: the recipients whose rcpt-success says due, each with its Action. */
START_TEST(test_success_notice)
{
	struct envelope env;
	struct dsn_request req = { .hostname = "gw.example", .id = "1.M1P1Q1", .now = NOW, .datafd = -1,
	    .success = true };
	struct parsed p;

	make_env(&env);
	req.env = &env;
	ck_assert_uint_eq(dsn_recipients_succeeded(&env), 0);
	ck_assert_int_eq(dsn_build(&req, &p.raw, &p.len), -EINVAL);
	ck_assert_int_eq(envelope_set_rcpt_dsn(&env, 1, DSN_NOTIFY_SUCCESS, NULL), 0);
	ck_assert_int_eq(envelope_set_rcpt_success(&env, 1, "relayed due"), 0);
	ck_assert_uint_eq(dsn_recipients_succeeded(&env), 1);
	build_and_parse(&req, &p);
	assert_wire_safe(p.raw);
	ck_assert_str_eq(g_mime_message_get_subject(p.msg), "Successful Mail Delivery Report");
	ck_assert_uint_eq(count_blocks(&p), 2);
	assert_field(&p, 1, "Final-Recipient", "rfc822; carol@example.net");
	assert_field(&p, 1, "Action", "relayed");
	assert_field(&p, 1, "Status", "2.0.0");
	ck_assert_ptr_nonnull(strstr(p.human, "successfully delivered"));
	parsed_free(&p);
	/* once made, it is no longer due */
	ck_assert_int_eq(envelope_set_rcpt_success(&env, 1, "relayed 1.M1P1Q1"), 0);
	ck_assert_uint_eq(dsn_recipients_succeeded(&env), 0);
	envelope_free(&env);
}
END_TEST

START_TEST(test_status_code)
{
	static const struct { const char *reply; bool delayed; const char *want; } cases[] = {
		{ "550 5.1.1 no such user", false, "5.1.1" },
		{ "552 5.2.2", false, "5.2.2" },
		{ "554 5.4.7 Delivery time expired", false, "5.4.7" },
		{ "556 5.1.10 null MX", false, "5.1.10" },
		{ "550 4.1.1 class disagrees", false, "5.0.0" },
		{ "550 5.1.1234 part too long", false, "5.0.0" },
		{ "550 5.1 short", false, "5.0.0" },
		{ "550 no code", false, "5.0.0" },
		{ "451 4.4.1 no answer", true, "4.4.1" },
		{ "451 4.4.1 no answer", false, "4.4.1" },
		{ "550 5.1.1 refused", true, "4.0.0" },
		{ "garbage", false, "5.0.0" },
		{ NULL, false, "5.0.0" },
		{ NULL, true, "4.0.0" },
	};
	char out[16];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(dsn_status_code(cases[i].reply, cases[i].delayed, out, sizeof(out)), 0);
		ck_assert_msg(strcmp(out, cases[i].want) == 0, "'%s': %s, want %s", cases[i].reply, out,
		    cases[i].want);
	}
	ck_assert_int_eq(dsn_status_code("550 5.1.10 x", false, out, 4), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_limiter)
{
	static struct dsn_limiter lim;
	long long t = 1000000;
	unsigned i, n = 0;

	dsn_limiter_init(&lim, 10);
	for (i = 0; i < 50; i++)
		n += dsn_limiter_allow(&lim, "alice@localhost", t + i);
	ck_assert_uint_eq(n, 10);
	ck_assert(!dsn_limiter_allow(&lim, "ALICE@LOCALHOST", t + 100));	/* same sender */
	ck_assert(dsn_limiter_allow(&lim, "bob@localhost", t + 100));		/* another one */
	ck_assert(!dsn_limiter_allow(&lim, "alice@localhost", t + 3599));
	ck_assert(dsn_limiter_allow(&lim, "alice@localhost", t + 3600));	/* the first left the hour */
	ck_assert(!dsn_limiter_allow(&lim, "alice@localhost", t + 3600));
	/* 300 other senders evict the oldest; memory stays bounded */
	for (i = 0; i < 300; i++) {
		char s[32];

		snprintf(s, sizeof(s), "s%u@x", i);
		ck_assert(dsn_limiter_allow(&lim, s, t + 4000));
	}
	dsn_limiter_init(&lim, 1000);
	ck_assert_uint_eq(lim.per_hour, DSN_LIMITER_MAX_PER_HOUR);
	dsn_limiter_init(&lim, 0);
	ck_assert_uint_eq(lim.per_hour, 1);
}
END_TEST

static Suite *
dsn_suite(void)
{
	Suite *s = suite_create("dsn");
	TCase *tc = tcase_create("dsn");

	tcase_add_test(tc, test_failed_notice_fields);
	tcase_add_test(tc, test_delayed_notice_fields);
	tcase_add_test(tc, test_nothing_to_report);
	tcase_add_test(tc, test_notify_envid_orcpt);
	tcase_add_loop_test(tc, test_hostile_values_keep_structure, 0, N_HOSTILE);
	tcase_add_test(tc, test_remote_mta_forms);
	tcase_add_test(tc, test_bare_cr_in_headers);
	tcase_add_loop_test(tc, test_ret_full, 0, N_RET_FULL);
	tcase_add_test(tc, test_success_notice);
	tcase_add_test(tc, test_status_code);
	tcase_add_test(tc, test_limiter);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	g_mime_init();
	return testutil_run(dsn_suite());
}
