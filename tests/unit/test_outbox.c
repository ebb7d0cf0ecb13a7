/*
 * NAME
 *	test_outbox - unit tests of "sendmail -t" submission from a file
 * SYNOPSIS
 *	test_outbox
 * DESCRIPTION
 *	outbox_parse_headers() on a table of messages: To/Cc/Bcc with
 *	display names, groups, comments, folded lines, CRLF and LF,
 *	duplicates, Sender over From; for each, the message minus the Bcc
 *	ranges must equal the expected text byte for byte (no Bcc field left,
 *	everything else untouched).  Then the errors: no recipient
 *	(-EDESTADDRREQ), malformed addresses (-EINVAL), no From, a first line
 *	that is no header, NUL bytes (-EBADMSG).
 *
 *	outbox_submit() on a real spool under /tmp and a real file: the
 *	record in queue/<id> lists the recipients, data/<id> starts with
 *	Received: (uid, file name), Date: and Message-ID: and has no Bcc: and
 *	no Return-Path: (folded or not; the body keeps its lines); a file
 *	with its own Date: and Message-ID: gets no second one; a hostile file
 *	name (parentheses, CR LF, C1, non-UTF-8, 255 octets) stays one
 *	quoted, folded token that cannot end the comment or the header;
 *	outbox_quote_name() and outbox_format_date() (in several zones) on
 *	tables;
 *	over the size limit (-EFBIG), without recipients or with a bad
 *	address nothing is queued and tmp/ is left empty; a header section
 *	over OUTBOX_MAX_HEADER is -EFBIG wherever the bound cuts it.
 *
 *	outbox_reject() keeps a refused file in failed/: failed/<id> holds the
 *	first keep bytes, its record parses, names no recipient, says
 *	"rejected at submission" with the reply and errno name of the error,
 *	and nothing goes to queue/ (the relay never sees it) nor stays in
 *	tmp/; control characters in the reason do not break the record.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "outbox.h"
#include "spool.h"
#include "testutil.h"

#define PATH_LEN	1024
#define MAX_RCPT	8

static char tmpbase[PATH_LEN];

static void
base_setup(void)
{
	testutil_mkdtemp(tmpbase, sizeof(tmpbase), "outbox");
}

static void
base_teardown(void)
{
	testutil_rmtree(tmpbase);
}

static const struct hdr_case {
	const char     *what;
	const char     *msg;
	int		want;
	const char     *from;
	const char     *rcpt[MAX_RCPT];	/* in order, NULL-terminated */
	const char     *stripped;	/* msg without Bcc; NULL: msg itself */
} hdr_cases[] = {
	{ "simple",
	  "From: Alice <alice@example.org>\nTo: Bob <bob@example.net>\nSubject: hi\n\nbody\n",
	  0, "alice@example.org", { "bob@example.net" }, NULL },
	{ "display names, Cc and Bcc",
	  "From: alice@example.org\nTo: \"Bob B.\" <bob@example.net>, carol@example.net\n"
	  "Cc: Dave <dave@example.net>\nBcc: Eve <eve@example.net>\nSubject: s\n\nbody\n",
	  0, "alice@example.org", { "bob@example.net", "carol@example.net", "dave@example.net", "eve@example.net" },
	  "From: alice@example.org\nTo: \"Bob B.\" <bob@example.net>, carol@example.net\n"
	  "Cc: Dave <dave@example.net>\nSubject: s\n\nbody\n" },
	{ "group",
	  "From: a@x.org\nTo: friends: bob@x.org, Carol <carol@x.org>;\n\nb\n",
	  0, "a@x.org", { "bob@x.org", "carol@x.org" }, NULL },
	{ "undisclosed-recipients and Bcc",
	  "From: a@x.org\nTo: undisclosed-recipients:;\nBcc: bob@x.org\n\nb\n",
	  0, "a@x.org", { "bob@x.org" }, "From: a@x.org\nTo: undisclosed-recipients:;\n\nb\n" },
	{ "comments",
	  "From: a@x.org (Alice)\nTo: bob@x.org (Bob Smith), (team) carol@x.org\n\nb\n",
	  0, "a@x.org", { "bob@x.org", "carol@x.org" }, NULL },
	{ "folded lines",
	  "From: a@x.org\nTo: bob@x.org,\n carol@x.org,\n\tdave@x.org\nSubject: folded\n  subject\n\nbody\n",
	  0, "a@x.org", { "bob@x.org", "carol@x.org", "dave@x.org" }, NULL },
	{ "folded From",
	  "From:\n Alice\n <a@x.org>\nTo: bob@x.org\n\n",
	  0, "a@x.org", { "bob@x.org" }, NULL },
	{ "CRLF with folded Bcc",
	  "From: a@x.org\r\nTo: bob@x.org,\r\n carol@x.org\r\nBcc: eve@x.org,\r\n\tfrank@x.org\r\nSubject: s\r\n\r\nbody\r\n",
	  0, "a@x.org", { "bob@x.org", "carol@x.org", "eve@x.org", "frank@x.org" },
	  "From: a@x.org\r\nTo: bob@x.org,\r\n carol@x.org\r\nSubject: s\r\n\r\nbody\r\n" },
	{ "duplicates removed, BOB is not bob",
	  "From: a@x.org\nTo: bob@x.org, bob@x.org\nCc: Bob <BOB@x.org>\nBcc: bob@x.org\n\nb\n",
	  0, "a@x.org", { "bob@x.org", "BOB@x.org" }, "From: a@x.org\nTo: bob@x.org, bob@x.org\nCc: Bob <BOB@x.org>\n\nb\n" },
	{ "local parts keep their case, domains do not (addr_same_mailbox)",
	  "From: a@x.org\nTo: a@b.c, A@B.C\nCc: a@B.C, A@b.c\n\nb\n",
	  0, "a@x.org", { "a@b.c", "A@B.C" }, NULL },
	{ "Sender overrides From",
	  "From: boss@x.org\nSender: secretary@x.org\nTo: bob@x.org\n\nb\n",
	  0, "secretary@x.org", { "bob@x.org" }, NULL },
	{ "Sender before From",
	  "Sender: secretary@x.org\nFrom: boss@x.org\nTo: bob@x.org\n\nb\n",
	  0, "secretary@x.org", { "bob@x.org" }, NULL },
	{ "empty Sender leaves From",
	  "From: boss@x.org\nSender:\nTo: bob@x.org\n\nb\n",
	  0, "boss@x.org", { "bob@x.org" }, NULL },
	{ "first mailbox of From",
	  "From: a@x.org, b@x.org\nTo: c@x.org\n\nb\n",
	  0, "a@x.org", { "c@x.org" }, NULL },
	{ "field names in any case",
	  "FROM: a@x.org\nto: bob@x.org\nCC: carol@x.org\nbcc: dave@x.org\n\nb\n",
	  0, "a@x.org", { "bob@x.org", "carol@x.org", "dave@x.org" }, "FROM: a@x.org\nto: bob@x.org\nCC: carol@x.org\n\nb\n" },
	{ "empty To",
	  "From: a@x.org\nTo:\nCc: bob@x.org\n\nb\n",
	  0, "a@x.org", { "bob@x.org" }, NULL },
	{ "two To fields",
	  "From: a@x.org\nTo: bob@x.org\nTo: carol@x.org\n\nb\n",
	  0, "a@x.org", { "bob@x.org", "carol@x.org" }, NULL },
	{ "two Bcc fields, one folded, Bcc: in the body stays",
	  "From: a@x.org\nBcc: b1@x.org\nTo: bob@x.org\nBcc: b2@x.org,\n b3@x.org\nSubject: s\n\nBcc: not a header\n",
	  0, "a@x.org", { "b1@x.org", "bob@x.org", "b2@x.org", "b3@x.org" },
	  "From: a@x.org\nTo: bob@x.org\nSubject: s\n\nBcc: not a header\n" },
	{ "Bcc as the first field",
	  "Bcc: hidden@x.org\nFrom: a@x.org\nTo: bob@x.org\n\nb\n",
	  0, "a@x.org", { "hidden@x.org", "bob@x.org" }, "From: a@x.org\nTo: bob@x.org\n\nb\n" },
	{ "empty Bcc",
	  "From: a@x.org\nTo: bob@x.org\nBcc:\n\nbody\n",
	  0, "a@x.org", { "bob@x.org" }, "From: a@x.org\nTo: bob@x.org\n\nbody\n" },
	{ "Bcc as the last field, no body",
	  "From: a@x.org\nTo: bob@x.org\nBcc: c@x.org\n",
	  0, "a@x.org", { "bob@x.org", "c@x.org" }, "From: a@x.org\nTo: bob@x.org\n" },
	{ "header only",
	  "From: a@x.org\nTo: bob@x.org\n",
	  0, "a@x.org", { "bob@x.org" }, NULL },
	{ "quoted display name with comma",
	  "From: a@x.org\nTo: \"Smith, Bob\" <bob@x.org>\n\nb\n",
	  0, "a@x.org", { "bob@x.org" }, NULL },
	{ "encoded display name",
	  "From: a@x.org\nTo: =?UTF-8?Q?J=C3=B6rg?= <joerg@x.org>\n\nb\n",
	  0, "a@x.org", { "joerg@x.org" }, NULL },
	{ "Resent-To, X- fields and look-alikes are no recipients",
	  "From: a@x.org\nResent-To: evil1@x.org\nX-To: evil2@x.org\nTox: evil3@x.org\nTo: bob@x.org\n\nb\n",
	  0, "a@x.org", { "bob@x.org" }, NULL },
	{ "address literal",
	  "From: a@x.org\nTo: bob@[127.0.0.1]\n\nb\n",
	  0, "a@x.org", { "bob@[127.0.0.1]" }, NULL },
	/* errors */
	{ "no recipient",
	  "From: a@x.org\nSubject: s\n\nb\n", -EDESTADDRREQ, NULL, { NULL }, NULL },
	{ "only an empty group",
	  "From: a@x.org\nTo: undisclosed-recipients:;\n\nb\n", -EDESTADDRREQ, NULL, { NULL }, NULL },
	{ "recipient without domain",
	  "From: a@x.org\nTo: bob\n\nb\n", -EINVAL, NULL, { NULL }, NULL },
	{ "one good and one without domain",
	  "From: a@x.org\nTo: bob@x.org, carol\n\nb\n", -EINVAL, NULL, { NULL }, NULL },
	{ "double at",
	  "From: a@x.org\nTo: a@@b.org\n\nb\n", -EINVAL, NULL, { NULL }, NULL },
	{ "8-bit local part",
	  "From: a@x.org\nTo: j\xc3\xb6rg@x.org\n\nb\n", -EINVAL, NULL, { NULL }, NULL },
	{ "From without domain",
	  "From: alice\nTo: bob@x.org\n\nb\n", -EINVAL, NULL, { NULL }, NULL },
	{ "no From",
	  "To: bob@x.org\nSubject: s\n\nb\n", -EBADMSG, NULL, { NULL }, NULL },
	{ "first line is no header",
	  "Hello Bob,\nthis is a letter.\n", -EBADMSG, NULL, { NULL }, NULL },
	{ "first line is a continuation",
	  " From: a@x.org\nTo: bob@x.org\n\nb\n", -EBADMSG, NULL, { NULL }, NULL },
	{ "a line without colon inside the header",
	  "From: a@x.org\nTo: bob@x.org\nbroken line\n\nb\n", -EBADMSG, NULL, { NULL }, NULL },
	{ "empty field name",
	  "From: a@x.org\n: bob@x.org\n\nb\n", -EBADMSG, NULL, { NULL }, NULL },
	{ "empty message", "", -EBADMSG, NULL, { NULL }, NULL },
	{ "body only", "\nFrom: a@x.org\nTo: bob@x.org\n", -EBADMSG, NULL, { NULL }, NULL },
};
#define N_HDR_CASES	(sizeof(hdr_cases) / sizeof(hdr_cases[0]))

/* Where the body starts: after the first empty line, else the end. */
static size_t
expected_body_start(const char *msg, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (i == 0 || msg[i - 1] == '\n') {
			if (msg[i] == '\n')
				return i + 1;
			if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
				return i + 2;
		}
	}
	return len;
}

/* msg minus the drop ranges; also checks the ranges are ordered and inside the header. */
static char *
apply_drops(const char *msg, size_t len, const struct outbox_headers *h, size_t *outlen)
{
	char *out = malloc(len + 1);
	off_t pos = 0;
	size_t i, o = 0;

	ck_assert_ptr_nonnull(out);
	for (i = 0; i < h->ndrop; i++) {
		ck_assert_msg(h->drop[i].start >= pos && h->drop[i].end > h->drop[i].start &&
		    h->drop[i].end <= h->body_start, "drop range %zu [%lld, %lld) out of order or outside the header",
		    i, (long long)h->drop[i].start, (long long)h->drop[i].end);
		memcpy(out + o, msg + pos, (size_t)(h->drop[i].start - pos));
		o += (size_t)(h->drop[i].start - pos);
		pos = h->drop[i].end;
	}
	memcpy(out + o, msg + pos, len - (size_t)pos);
	o += len - (size_t)pos;
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* No header line of text (up to its body) is a Bcc field. */
static int
has_bcc_field(const char *text, size_t len)
{
	size_t body = expected_body_start(text, len), i;

	for (i = 0; i < body; i++)
		if ((i == 0 || text[i - 1] == '\n') && strncasecmp(text + i, "bcc:", 4) == 0)
			return 1;
	return 0;
}

START_TEST(test_parse_headers)
{
	const struct hdr_case *c = &hdr_cases[_i];
	struct outbox_headers h;
	size_t len = strlen(c->msg), n, i, outlen;
	char why[256] = "", *copy;
	const char *want;
	int r;

	r = outbox_parse_headers(c->msg, len, &h, why, sizeof(why));
	ck_assert_msg(r == c->want, "%s: outbox_parse_headers = %d (%s), want %d (%s); why: %s",
	    c->what, r, strerror(-r), c->want, strerror(-c->want), why);
	if (r < 0) {
		ck_assert_msg(why[0] != '\0', "%s: no reason given", c->what);
		ck_assert_uint_eq(h.nrcpt, 0);	/* nothing left to free */
		ck_assert_ptr_null(h.from);
		return;
	}
	ck_assert_msg(strcmp(h.from, c->from) == 0, "%s: from '%s', want '%s'", c->what, h.from, c->from);
	for (n = 0; n < MAX_RCPT && c->rcpt[n]; n++)
		;
	ck_assert_msg(h.nrcpt == n, "%s: %zu recipients, want %zu", c->what, h.nrcpt, n);
	for (i = 0; i < n; i++)
		ck_assert_msg(strcmp(h.rcpt[i], c->rcpt[i]) == 0, "%s: rcpt %zu '%s', want '%s'",
		    c->what, i, h.rcpt[i], c->rcpt[i]);
	ck_assert_msg((size_t)h.body_start == expected_body_start(c->msg, len), "%s: body_start %lld, want %zu",
	    c->what, (long long)h.body_start, expected_body_start(c->msg, len));
	copy = apply_drops(c->msg, len, &h, &outlen);
	want = c->stripped ? c->stripped : c->msg;
	ck_assert_msg(outlen == strlen(want) && memcmp(copy, want, outlen) == 0,
	    "%s: without Bcc:\n%s\nwant:\n%s", c->what, copy, want);
	ck_assert_msg(!has_bcc_field(copy, outlen), "%s: a Bcc field is left", c->what);
	free(copy);
	outbox_headers_free(&h);
	ck_assert_uint_eq(h.nrcpt, 0);
}
END_TEST

START_TEST(test_parse_headers_nul)
{
	static const char in_header[] = "From: a@x.org\nTo: bob@x.org\0\n\nb\n";
	static const char in_body[] = "From: a@x.org\nTo: bob@x.org\n\nb\0dy\n";
	struct outbox_headers h;
	char why[256] = "";

	ck_assert_int_eq(outbox_parse_headers(in_header, sizeof(in_header) - 1, &h, why, sizeof(why)), -EBADMSG);
	ck_assert_msg(strstr(why, "NUL") != NULL, "why: %s", why);
	/* the body may hold any byte */
	ck_assert_int_eq(outbox_parse_headers(in_body, sizeof(in_body) - 1, &h, why, sizeof(why)), 0);
	outbox_headers_free(&h);
	/* len bounds the parse: a To: beyond len is not read */
	ck_assert_int_eq(outbox_parse_headers(in_body, 14, &h, why, sizeof(why)), -EDESTADDRREQ);
	/* why may be NULL */
	ck_assert_int_eq(outbox_parse_headers("x", 1, &h, NULL, 0), -EBADMSG);
}
END_TEST

/* ---- outbox_submit on a real spool ---- */

static int
count_entries(const char *root, const char *rel)
{
	char path[PATH_LEN * 2];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static struct spool *
open_spool(const char *name, char *path)
{
	struct spool *spool;

	snprintf(path, PATH_LEN, "%.900s/%.100s", tmpbase, name);
	ck_assert_int_eq(spool_open(path, &spool), 0);
	return spool;
}

/* A file in tmpbase holding msg, opened read-only. */
static int
message_file(const char *name, const char *msg, size_t len)
{
	char path[PATH_LEN];
	int fd;

	snprintf(path, sizeof(path), "%.900s/%.100s.eml", tmpbase, name);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	ck_assert_int_eq(write(fd, msg, len), (ssize_t)len);
	close(fd);
	ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
	return fd;
}

#define TEST_HOST	"mx.example.org"
#define TEST_UID	1234

static int
submit(struct spool *spool, int fd, const char *name, unsigned long max_size, char id[SPOOL_ID_MAX],
    char *why, size_t whylen)
{
	char origin[300];
	struct outbox_source src = { .origin = origin, .name = name, .uid = TEST_UID,
		.hostname = TEST_HOST, .max_size = max_size };

	snprintf(origin, sizeof(origin), "fs outbox/%s", name);
	for (char *p = origin; *p; p++)		/* as fs/outfile.c does */
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	return outbox_submit(spool, fd, &src, id, why, whylen);
}

/* The queued data of id, NUL-terminated, in buf. */
static size_t
read_data(const char *spath, const char *id, char *buf, size_t size)
{
	char dpath[PATH_LEN * 2];
	ssize_t n;
	int dfd;

	snprintf(dpath, sizeof(dpath), "%s/data/%s", spath, id);
	ck_assert_int_ge(dfd = open(dpath, O_RDONLY), 0);
	n = read(dfd, buf, size - 1);
	close(dfd);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	return (size_t)n;
}

static void
assert_nothing_queued(const char *spath)
{
	ck_assert_int_eq(count_entries(spath, "queue"), 0);
	ck_assert_int_eq(count_entries(spath, "data"), 0);
	ck_assert_int_eq(count_entries(spath, "tmp"), 0);
	ck_assert_int_eq(count_entries(spath, "mail"), 0);
}

static const char submit_msg[] =
	"From: Alice <alice@example.org>\n"
	"To: bob@example.net\n"
	"Cc: Carol <carol@example.net>\n"
	"Return-Path: <forged@example.org>\n"
	"Bcc: eve@example.net,\n"
	" frank@example.net\n"
	"Subject: test\n"
	"return-path:\n"
	"\t<folded@example.org>\n"
	"\n"
	"body line\n"
	".dot line\n"
	"Bcc: in the body\n"
	"Return-Path: <in-the-body@example.org>\n";
static const char submit_stripped[] =
	"From: Alice <alice@example.org>\n"
	"To: bob@example.net\n"
	"Cc: Carol <carol@example.net>\n"
	"Subject: test\n"
	"\n"
	"body line\n"
	".dot line\n"
	"Bcc: in the body\n"
	"Return-Path: <in-the-body@example.org>\n";

START_TEST(test_submit)
{
	static const char *const want[] = { "bob@example.net", "carol@example.net", "eve@example.net",
		"frank@example.net" };
	char spath[PATH_LEN], id[SPOOL_ID_MAX] = "", why[256] = "", buf[2048], want_head[512], date[64];
	struct spool *spool = open_spool("submit", spath);
	int fd = message_file("m.eml", submit_msg, sizeof(submit_msg) - 1), r;
	const char *p, *q;
	struct envelope env;
	size_t i, n;

	r = submit(spool, fd, "m.eml", 1 << 20, id, why, sizeof(why));
	ck_assert_msg(r == 0, "outbox_submit = %d (%s): %s", r, strerror(-r), why);
	close(fd);
	ck_assert(id[0] != '\0');
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, &env), 0);
	ck_assert_str_eq(env.id, id);
	ck_assert_str_eq(env.from, "alice@example.org");
	ck_assert_str_eq(env.origin, "fs outbox/m.eml");
	ck_assert_int_eq(env.data_offset, 0);
	ck_assert_uint_eq(env.nrcpt, 4);
	for (i = 0; i < 4; i++) {
		ck_assert_str_eq(env.rcpt[i].addr, want[i]);
		ck_assert_int_eq(env.rcpt[i].state, RCPT_PENDING);
	}
	envelope_free(&env);
	/* Received:, Date:, Message-ID: first, then the file without Bcc: and Return-Path: */
	n = read_data(spath, id, buf, sizeof(buf));
	snprintf(want_head, sizeof(want_head), "Received: by " TEST_HOST " (spoolgate, from outbox)\n"
	    "\tid %s (uid 1234, file m.eml);\n\t", id);
	ck_assert_msg(strncmp(buf, want_head, strlen(want_head)) == 0, "trace header: %s", buf);
	p = buf + strlen(want_head);
	ck_assert_ptr_nonnull(q = strchr(p, '\n'));
	ck_assert_uint_lt((size_t)(q - p), sizeof(date));
	snprintf(date, sizeof(date), "%.*s", (int)(q - p), p);
	snprintf(want_head, sizeof(want_head), "\nDate: %s\nMessage-ID: <%s@" TEST_HOST ">\n", date, id);
	ck_assert_msg(strncmp(q, want_head, strlen(want_head)) == 0, "Date, Message-ID: %s", q);
	p = q + strlen(want_head);
	ck_assert_uint_eq(n - (size_t)(p - buf), sizeof(submit_stripped) - 1);
	ck_assert_str_eq(p, submit_stripped);
	ck_assert_int_eq(count_entries(spath, "tmp"), 0);
	ck_assert_int_eq(count_entries(spath, "queue"), 1);
	ck_assert_int_eq(count_entries(spath, "mail"), 0);
	spool_close(spool);
}
END_TEST

START_TEST(test_submit_size_limit)
{
	char spath[PATH_LEN], id[SPOOL_ID_MAX], why[256] = "";
	struct spool *spool = open_spool("oversize", spath);
	size_t len = sizeof(submit_msg) - 1;
	int fd = message_file("big.eml", submit_msg, len), r;

	r = submit(spool, fd, "big.eml", len - 1, id, why, sizeof(why));
	ck_assert_msg(r == -EFBIG, "one byte over the limit: %d (%s)", r, strerror(-r));
	ck_assert_msg(why[0] != '\0', "no reason given");
	assert_nothing_queued(spath);
	/* exactly at the limit is fine */
	r = submit(spool, fd, "big.eml", len, id, why, sizeof(why));
	ck_assert_msg(r == 0, "at the limit: %d (%s) %s", r, strerror(-r), why);
	ck_assert_int_eq(count_entries(spath, "queue"), 1);
	close(fd);
	spool_close(spool);
}
END_TEST

static const struct submit_err {
	const char     *what;
	const char     *msg;
	int		want;
} submit_errs[] = {
	{ "no recipient", "From: a@x.org\nSubject: s\n\nbody\n", -EDESTADDRREQ },
	{ "malformed address", "From: a@x.org\nTo: bob\n\nbody\n", -EINVAL },
	{ "no From", "To: bob@x.org\n\nbody\n", -EBADMSG },
	{ "not a message", "just some text\n", -EBADMSG },
	{ "empty file", "", -EBADMSG },
};
#define N_SUBMIT_ERRS	(sizeof(submit_errs) / sizeof(submit_errs[0]))

START_TEST(test_submit_refused)
{
	const struct submit_err *c = &submit_errs[_i];
	char spath[PATH_LEN], name[32], id[SPOOL_ID_MAX], why[256] = "";
	struct spool *spool;
	int fd, r;

	snprintf(name, sizeof(name), "refused%d", _i);
	spool = open_spool(name, spath);
	fd = message_file(name, c->msg, strlen(c->msg));
	r = submit(spool, fd, "x.eml", 1 << 20, id, why, sizeof(why));
	ck_assert_msg(r == c->want, "%s: %d (%s), want %d", c->what, r, strerror(-r), c->want);
	ck_assert_msg(why[0] != '\0', "%s: no reason given", c->what);
	assert_nothing_queued(spath);
	close(fd);
	spool_close(spool);
}
END_TEST

/*
 * A header section longer than OUTBOX_MAX_HEADER, cut by the bound at
 * several places in a line: inside the field name, just after the colon,
 * inside the value, at a line end.  Always -EFBIG, never a complaint
 * about a malformed line that is only cut.
 */
static const int cut_at[] = { 3, 6, 50, 0 };
#define N_CUTS	(sizeof(cut_at) / sizeof(cut_at[0]))

START_TEST(test_submit_header_too_long)
{
	static const char head[] = "From: a@x.org\nTo: b@x.org\n";
	char spath[PATH_LEN], name[32], id[SPOOL_ID_MAX], why[256] = "", pad[100];
	size_t hl = sizeof(head) - 1, subj, len, at;
	struct spool *spool;
	char *msg;
	int fd, r;

	/* "X-Pad: ...\n" lines of 100 bytes; a Subject sized so the bound falls cut_at[_i] into a line */
	subj = (OUTBOX_MAX_HEADER - hl - (size_t)cut_at[_i]) % 100 + 100;
	len = OUTBOX_MAX_HEADER + 20000;
	ck_assert_ptr_nonnull(msg = malloc(len + 64));
	memcpy(msg, head, hl);
	at = hl;
	memcpy(msg + at, "Subject: ", 9);
	memset(msg + at + 9, 's', subj - 10);
	msg[at + subj - 1] = '\n';
	at += subj;
	memset(pad, 'p', sizeof(pad));
	memcpy(pad, "X-Pad: ", 7);
	pad[99] = '\n';
	while (at + 100 <= len) {
		memcpy(msg + at, pad, 100);
		at += 100;
	}
	ck_assert_uint_eq((OUTBOX_MAX_HEADER - hl - subj) % 100, (size_t)cut_at[_i]);
	memcpy(msg + at, "\nbody\n", 6);
	at += 6;

	snprintf(name, sizeof(name), "longhdr%d", _i);
	spool = open_spool(name, spath);
	fd = message_file(name, msg, at);
	r = submit(spool, fd, "x.eml", 1 << 30, id, why, sizeof(why));
	ck_assert_msg(r == -EFBIG, "header of %zu bytes cut %d bytes into a line: %d (%s): %s",
	    at, cut_at[_i], r, strerror(-r), why);
	assert_nothing_queued(spath);
	close(fd);
	free(msg);
	spool_close(spool);
}
END_TEST

/* ---- outbox_reject: a refused file kept in failed/ ---- */

START_TEST(test_reject_kept_in_failed)
{
	static const char msg[] = "From: a@x.org\nSubject: s\n\nbody\n";
	char spath[PATH_LEN], dpath[PATH_LEN * 2], id[SPOOL_ID_MAX] = "", buf[256];
	struct spool *spool = open_spool("reject", spath);
	int fd = message_file("r.eml", msg, sizeof(msg) - 1), dfd, r;
	struct envelope env;
	ssize_t n;

	r = outbox_reject(spool, fd, (off_t)sizeof(msg) - 1, "fs outbox/r.eml uid=1000", EDESTADDRREQ,
	    "no recipient: no address in To:, Cc: or Bcc:", id);
	ck_assert_msg(r == 0, "outbox_reject = %d (%s)", r, strerror(-r));
	ck_assert(id[0] != '\0');
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_FAILED), id, &env), 0);
	ck_assert_str_eq(env.id, id);
	ck_assert_str_eq(env.from, "");
	ck_assert_str_eq(env.origin, "fs outbox/r.eml uid=1000");
	ck_assert_uint_eq(env.nrcpt, 0);
	ck_assert_str_eq(env.rejected, "554 5.5.1 EDESTADDRREQ rejected at submission: no recipient: "
	    "no address in To:, Cc: or Bcc:");
	envelope_free(&env);
	snprintf(dpath, sizeof(dpath), "%s/data/%s", spath, id);
	ck_assert_int_ge(dfd = open(dpath, O_RDONLY), 0);
	n = read(dfd, buf, sizeof(buf));
	close(dfd);
	ck_assert_int_eq(n, (ssize_t)sizeof(msg) - 1);
	ck_assert_mem_eq(buf, msg, (size_t)n);
	ck_assert_int_eq(count_entries(spath, "queue"), 0);
	ck_assert_int_eq(count_entries(spath, "failed"), 1);
	ck_assert_int_eq(count_entries(spath, "tmp"), 0);

	/* only the first keep bytes (a file over the size limit), and a reason with a line break */
	r = outbox_reject(spool, fd, 10, "fs outbox/big.eml uid=0", EFBIG, "too big\nrcpt: x", id);
	ck_assert_msg(r == 0, "outbox_reject = %d (%s)", r, strerror(-r));
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_FAILED), id, &env), 0);
	ck_assert_str_eq(env.rejected, "552 5.3.4 EFBIG rejected at submission: too big?rcpt: x");
	ck_assert_uint_eq(env.nrcpt, 0);
	envelope_free(&env);
	snprintf(dpath, sizeof(dpath), "%s/data/%s", spath, id);
	ck_assert_int_ge(dfd = open(dpath, O_RDONLY), 0);
	ck_assert_int_eq(read(dfd, buf, sizeof(buf)), 10);
	close(dfd);
	ck_assert_int_eq(count_entries(spath, "failed"), 2);
	ck_assert_int_eq(count_entries(spath, "queue"), 0);
	close(fd);
	spool_close(spool);
}
END_TEST

/* A message with its own Date: and Message-ID: keeps them and gets no second one. */
START_TEST(test_submit_keeps_date_and_message_id)
{
	static const char msg[] = "From: a@x.org\nTo: b@x.org\nDATE: Tue, 1 Dec 2026 10:00:00 +0000\n"
		"message-id: <mine@x.org>\n\nbody\n";
	char spath[PATH_LEN], id[SPOOL_ID_MAX], why[256] = "", buf[2048];
	struct spool *spool = open_spool("keepdate", spath);
	int fd = message_file("keep", msg, sizeof(msg) - 1), r;
	const char *body;

	r = submit(spool, fd, "keep.eml", 1 << 20, id, why, sizeof(why));
	ck_assert_msg(r == 0, "%d %s", r, why);
	read_data(spath, id, buf, sizeof(buf));
	ck_assert_ptr_nonnull(body = strstr(buf, msg));
	ck_assert_msg(strncmp(buf, "Received: ", 10) == 0, "%s", buf);
	ck_assert_msg(strstr(buf, "\nDate: ") == NULL, "a second Date: %s", buf);
	ck_assert_msg(strstr(buf, "\nMessage-ID: ") == NULL, "a second Message-ID: %s", buf);
	close(fd);
	spool_close(spool);
}
END_TEST

/*
 * A file name may hold anything: it must never end the comment or the
 * header, nor put a control or 8-bit octet into it, and a long one is
 * folded.
 */
START_TEST(test_submit_hostile_name)
{
	static const char msg[] = "From: a@x.org\nTo: b@x.org\n\nbody\n";
	char spath[PATH_LEN], id[SPOOL_ID_MAX], why[256] = "", buf[4096], name[256];
	struct spool *spool = open_spool("hostile", spath);
	int fd = message_file("hostile", msg, sizeof(msg) - 1), r, depth = 0;
	const char *p, *end;

	memset(name, 'n', sizeof(name));
	memcpy(name, "a) (b\\\r\n\nX-Evil: 1\x9b\xff\" %41", 25);
	name[255] = '\0';
	r = submit(spool, fd, name, 1 << 20, id, why, sizeof(why));
	ck_assert_msg(r == 0, "%d %s", r, why);
	read_data(spath, id, buf, sizeof(buf));
	ck_assert_ptr_nonnull(end = strstr(buf, "\nDate: "));
	for (p = buf; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		ck_assert_msg(c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f),
		    "octet 0x%02x in the Received: header", c);
		ck_assert_msg(c != '\n' || p[1] == '\t', "the header ends early: %s", buf);
		depth += c == '(' ? 1 : c == ')' ? -1 : 0;
		ck_assert_msg(depth >= 0 && depth <= 1, "unbalanced comment: %.*s", (int)(end - buf), buf);
	}
	ck_assert_int_eq(depth, 0);
	for (p = buf; p < end; p = strchr(p, '\n') + 1)
		ck_assert_msg(strchr(p, '\n') - p <= 78, "a line over 78 octets: %.*s", (int)(end - buf), buf);
	ck_assert_msg(strstr(buf, "file a%29%20%28b%5C%0D%0A%0AX-Evil:%201%9B%FF%22%20%2541nnn") != NULL,
	    "name not quoted as expected: %.*s", (int)(end - buf), buf);
	ck_assert_msg(strstr(buf, "X-Evil: 1") == NULL, "a header injected");
	close(fd);
	spool_close(spool);
}
END_TEST

static const struct quote_case {
	const char     *in, *out;
} quote_cases[] = {
	{ "report.eml", "report.eml" },
	{ "", "" },
	{ "a b", "a%20b" },
	{ "(x)\\\"%", "%28x%29%5C%22%25" },
	{ "\x01\x7f\x80\xff\t", "%01%7F%80%FF%09" },
	{ "caf\xc3\xa9.txt", "caf%C3%A9.txt" },
};

START_TEST(test_quote_name)
{
	const struct quote_case *c = &quote_cases[_i];
	char out[64];

	ck_assert_uint_eq(outbox_quote_name(c->in, out, sizeof(out)), strlen(c->out));
	ck_assert_str_eq(out, c->out);
}
END_TEST

START_TEST(test_quote_name_bound)
{
	char out[5];

	/* "ab" then "%20" does not fit in 4 octets + NUL: cut before it, never in it */
	ck_assert_uint_eq(outbox_quote_name("ab c", out, sizeof(out)), 2);
	ck_assert_str_eq(out, "ab");
	ck_assert_uint_eq(outbox_quote_name("abcdefgh", out, sizeof(out)), 4);
	ck_assert_str_eq(out, "abcd");
}
END_TEST

static const struct date_case {
	const char     *tz;
	time_t		t;
	const char     *want;
} date_cases[] = {
	{ "UTC0", 0, "Thu, 01 Jan 1970 00:00:00 +0000" },
	{ "UTC0", 1796189400, "Wed, 02 Dec 2026 05:30:00 +0000" },
	{ "IST-5:30", 1796189400, "Wed, 02 Dec 2026 11:00:00 +0530" },
	{ "EST5", 1796189400, "Wed, 02 Dec 2026 00:30:00 -0500" },
	{ "NST3:30", 1796189400, "Wed, 02 Dec 2026 02:00:00 -0330" },
};

START_TEST(test_format_date)
{
	const struct date_case *c = &date_cases[_i];
	char out[64], small[20];

	setenv("TZ", c->tz, 1);
	tzset();
	ck_assert_int_eq(outbox_format_date(c->t, out, sizeof(out)), 0);
	ck_assert_str_eq(out, c->want);
	ck_assert_int_eq(outbox_format_date(c->t, small, sizeof(small)), -ENAMETOOLONG);
	unsetenv("TZ");
	tzset();
}
END_TEST

static Suite *
outbox_suite(void)
{
	Suite *s = suite_create("outbox");
	TCase *tc;

	tc = tcase_create("parse_headers");
	tcase_add_loop_test(tc, test_parse_headers, 0, N_HDR_CASES);
	tcase_add_test(tc, test_parse_headers_nul);
	suite_add_tcase(s, tc);

	tc = tcase_create("submit");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_test(tc, test_submit);
	tcase_add_test(tc, test_submit_size_limit);
	tcase_add_loop_test(tc, test_submit_refused, 0, N_SUBMIT_ERRS);
	tcase_add_loop_test(tc, test_submit_header_too_long, 0, N_CUTS);
	tcase_add_test(tc, test_reject_kept_in_failed);
	tcase_add_test(tc, test_submit_keeps_date_and_message_id);
	tcase_add_test(tc, test_submit_hostile_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("trace");
	tcase_add_loop_test(tc, test_quote_name, 0, sizeof(quote_cases) / sizeof(quote_cases[0]));
	tcase_add_test(tc, test_quote_name_bound);
	tcase_add_loop_test(tc, test_format_date, 0, sizeof(date_cases) / sizeof(date_cases[0]));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	log_init("test_outbox", LOG_LVL_WARN);
	return testutil_run(outbox_suite());
}
