/*
 * NAME
 *	test_mime7bit - unit tests of the 8-bit to 7-bit conversion
 * SYNOPSIS
 *	test_mime7bit
 * DESCRIPTION
 *	mime7bit_scan_fd() on a table of messages (8-bit and NUL octets in
 *	the header or the body, CRLF and LF, line lengths at and over 998)
 *	and mime7bit_needed() on what a peer with and without 8BITMIME may
 *	take.  mime7bit_convert() on real files (memfd): a plain message
 *	with an 8-bit body and a 1500-octet line, and a multipart message
 *	with an 8-bit text part, a binary part and a 7-bit part.  The output
 *	must be all 7-bit with no line over 998 octets, carry MIME-Version
 *	and the right Content-Transfer-Encoding, keep the structure, and
 *	decode (through GMime, as a reader would) to the original bytes of
 *	every part.  Messages a transfer encoding cannot fix (8-bit header,
 *	8-bit epilogue, a 1200-octet header line) are -EILSEQ with a reason.
 */
#include <check.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "mime7bit.h"
#include "testutil.h"

static int
file_with(const void *data, size_t len)
{
	int fd = memfd_create("msg", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	return fd;
}

/* The whole content of fd, NUL-terminated; *len its length. */
static char *
file_content(int fd, size_t *len)
{
	off_t size = lseek(fd, 0, SEEK_END);
	char *buf = malloc((size_t)size + 1);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, (size_t)size, 0), size);
	buf[size] = '\0';
	*len = (size_t)size;
	return buf;
}

/* ---- scanning ---- */

static const struct scan_case {
	const char     *what;
	const char     *msg;
	size_t		len;		/* 0: strlen */
	bool		header_8bit, eightbit, nul;
	size_t		longest;
	bool		need_7bit_peer, need_8bit_peer;
} scan_cases[] = {
	{ "7-bit", "From: a\nSubject: s\n\nbody\n", 0, false, false, false, 10, false, false },
	{ "8-bit body", "From: a\n\ncaf\xc3\xa9\n", 0, false, true, false, 7, true, false },
	{ "8-bit header", "Subject: caf\xc3\xa9\n\nb\n", 0, true, true, false, 14, true, false },
	{ "8-bit after a CRLF empty line", "S: s\r\n\r\n\xff\r\n", 0, false, true, false, 4, true, false },
	{ "NUL in the body", "S: s\n\na\0b\n", 10, false, false, true, 4, true, true },
	{ "no empty line: all header", "S: s\nT: \xe9\n", 0, true, true, false, 4, true, false },
	{ "body starts at the first empty line only", "A: 1\n \n\n\xe9\n", 0, false, true, false, 4, true, false },
	{ "no line end at the end", "S: s\n\nabc", 0, false, false, false, 4, false, false },
	{ "", "", 0, false, false, false, 0, false, false },
};

START_TEST(test_scan)
{
	const struct scan_case *c = &scan_cases[_i];
	size_t len = c->len ? c->len : strlen(c->msg);
	struct mime7bit_scan s;
	int fd = file_with(c->msg, len);

	ck_assert_int_eq(mime7bit_scan_fd(fd, 0, &s), 0);
	ck_assert_msg(s.header_8bit == c->header_8bit, "%s: header_8bit", c->what);
	ck_assert_msg(s.eightbit == c->eightbit, "%s: eightbit", c->what);
	ck_assert_msg(s.nul == c->nul, "%s: nul", c->what);
	ck_assert_msg(s.longest_line == c->longest, "%s: longest %zu, want %zu", c->what, s.longest_line,
	    c->longest);
	ck_assert_uint_eq(s.size, len);
	ck_assert_msg(mime7bit_needed(&s, false) == c->need_7bit_peer, "%s: needed (7-bit peer)", c->what);
	ck_assert_msg(mime7bit_needed(&s, true) == c->need_8bit_peer, "%s: needed (8BITMIME peer)", c->what);
	close(fd);
}
END_TEST

/* Lines of 998 octets are fine, 999 are not; CR before LF does not count; offset skips. */
START_TEST(test_scan_line_limit)
{
	static char msg[4000];
	struct mime7bit_scan s;
	size_t len;
	int fd;

	len = (size_t)sprintf(msg, "Return-Path: <%01100d>\nS: s\n\n", 0);
	memset(msg + len, 'x', 998);
	memcpy(msg + len + 998, "\r\n", 2);
	len += 1000;
	fd = file_with(msg, len);
	ck_assert_int_eq(mime7bit_scan_fd(fd, 1116, &s), 0);	/* after the Return-Path line */
	ck_assert_uint_eq(s.longest_line, 998);
	ck_assert_uint_eq(s.longest_header_line, 4);
	ck_assert(!mime7bit_needed(&s, false));
	ck_assert_int_eq(mime7bit_scan_fd(fd, 0, &s), 0);
	ck_assert_uint_eq(s.longest_header_line, 1115);
	ck_assert(mime7bit_needed(&s, true));
	close(fd);
	msg[len - 2] = 'x';					/* 999 octets, then LF */
	fd = file_with(msg, len);
	ck_assert_int_eq(mime7bit_scan_fd(fd, 1116, &s), 0);
	ck_assert_uint_eq(s.longest_line, 999);
	ck_assert(mime7bit_needed(&s, true));
	close(fd);
}
END_TEST

/* ---- conversion ---- */

/* Every leaf part of the message in buf, decoded, in order. */
static size_t
decoded_parts(const char *buf, size_t len, GByteArray *out[], size_t max)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(buf, len);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
	GMimePartIter *it;
	size_t n = 0;

	ck_assert_ptr_nonnull(m);
	it = g_mime_part_iter_new(GMIME_OBJECT(m));
	do {
		GMimeObject *o = g_mime_part_iter_get_current(it);

		if (o != NULL && GMIME_IS_PART(o) && n < max) {
			GMimeStream *mem = g_mime_stream_mem_new();
			GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));

			g_mime_data_wrapper_write_to_stream(w, mem);
			out[n] = g_byte_array_new();
			g_byte_array_append(out[n], g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem))->data,
			    g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem))->len);
			n++;
			g_object_unref(mem);
		}
	} while (g_mime_part_iter_next(it));
	g_mime_part_iter_free(it);
	g_object_unref(m);
	g_object_unref(p);
	g_object_unref(st);
	return n;
}

static void
assert_sendable_7bit(const char *out, size_t len)
{
	size_t i, line = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)out[i];

		ck_assert_msg(c != 0 && c < 0x80, "octet 0x%02x at %zu", c, i);
		line = c == '\n' ? 0 : line + 1;
		ck_assert_msg(line <= MIME7BIT_LINE_MAX, "a line over 998 octets at %zu", i);
	}
}

static void
assert_part_is(GByteArray *got, const char *want, size_t wlen)
{
	/* A part's last line end belongs to the boundary after it; encoders may keep or add one. */
	size_t glen = got->len;

	if (glen == wlen + 1 && got->data[glen - 1] == '\n')
		glen--;
	ck_assert_msg(glen == wlen && memcmp(got->data, want, wlen) == 0, "decoded %u octets '%.*s', want '%s'",
	    got->len, (int)got->len, got->data, want);
}

START_TEST(test_convert_plain)
{
	static char msg[4096], body[2048];
	struct mime7bit_scan after;
	GByteArray *parts[4];
	char why[256] = "", *out;
	size_t len, blen, olen;
	int in, fd;

	blen = (size_t)sprintf(body, "caf\xc3\xa9 na\xefve\n");
	memset(body + blen, 'y', 1500);
	blen += 1500;
	blen += (size_t)sprintf(body + blen, "\n.\n\xff\xfe end\n");
	len = (size_t)sprintf(msg, "Return-Path: <a@x.org>\nFrom: a@x.org\nTo: b@y.org\nSubject: hi\n\n");
	memcpy(msg + len, body, blen);
	len += blen;
	in = file_with(msg, len);
	fd = memfd_create("out", MFD_CLOEXEC);
	ck_assert_int_eq(mime7bit_convert(in, 23, fd, &after, why, sizeof(why)), 0);
	out = file_content(fd, &olen);
	assert_sendable_7bit(out, olen);
	ck_assert(!after.eightbit && !after.nul && after.longest_line <= 76);
	ck_assert_msg(strncmp(out, "From: a@x.org\nTo: b@y.org\nSubject: hi\n", 38) == 0, "headers kept: %s", out);
	ck_assert_msg(strstr(out, "\nMIME-Version: 1.0\n") != NULL, "no MIME-Version: %s", out);
	ck_assert_msg(strstr(out, "\nContent-Transfer-Encoding: quoted-printable\n") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(out, "Return-Path"));
	ck_assert_uint_eq(decoded_parts(out, olen, parts, 4), 1);
	ck_assert_uint_eq(parts[0]->len, blen);
	ck_assert_mem_eq(parts[0]->data, body, blen);
	g_byte_array_unref(parts[0]);
	free(out);
	close(fd);
	close(in);
}
END_TEST

static const char multipart[] =
	"From: a@x.org\nTo: b@y.org\nMIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"BB\"\n\n"
	"preamble\n"
	"--BB\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
	"caf\xc3\xa9\n"
	"--BB\nContent-Type: application/octet-stream\n\n"
	"\x01\x02\xff\x80 binary\n"
	"--BB\nContent-Type: text/plain\n\nplain ascii stays as it is\n"
	"--BB--\nepilogue\n";

START_TEST(test_convert_multipart)
{
	GByteArray *parts[4];
	char why[256] = "", *out;
	size_t olen, i;
	int in = file_with(multipart, sizeof(multipart) - 1), fd = memfd_create("out", MFD_CLOEXEC);

	ck_assert_int_eq(mime7bit_convert(in, 0, fd, NULL, why, sizeof(why)), 0);
	out = file_content(fd, &olen);
	assert_sendable_7bit(out, olen);
	ck_assert_msg(strstr(out, "charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9") != NULL,
	    "text part: %s", out);
	ck_assert_msg(strstr(out, "octet-stream\nContent-Transfer-Encoding: base64\n") != NULL, "binary: %s", out);
	ck_assert_msg(strstr(out, "--BB\nContent-Type: text/plain\n\nplain ascii stays as it is\n--BB--\nepilogue\n")
	    != NULL, "7-bit part changed: %s", out);
	ck_assert_msg(strstr(out, "\n\npreamble\n--BB\n") != NULL, "preamble: %s", out);
	ck_assert_uint_eq(decoded_parts(out, olen, parts, 4), 3);
	assert_part_is(parts[0], "caf\xc3\xa9", 5);
	assert_part_is(parts[1], "\x01\x02\xff\x80 binary", 11);
	assert_part_is(parts[2], "plain ascii stays as it is", 26);
	for (i = 0; i < 3; i++)
		g_byte_array_unref(parts[i]);
	ck_assert_msg(strstr(out, "MIME-Version: 1.0\n") == strstr(out, "MIME-Version"), "one MIME-Version");
	free(out);
	close(fd);
	close(in);
}
END_TEST

/* Found by tests/fuzz/fuzz_mime7bit: GMime cut the X-A: header at its NUL
 * and wrote the new Content-Transfer-Encoding onto the same line, so the
 * part arrived as literal "=E9=00" text. */
#define NUL_IN_PART_HEADER "From: a@x.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n" \
	"--B\nX-A: a\0b\nContent-Type: text/plain\n\n\xe9\0\n--B--\n"

static const struct refusal {
	const char     *what;
	const char     *msg;
	const char     *why;		/* a word the reason must hold */
	size_t		len;		/* 0: strlen(msg) */
} refusals[] = {
	{ "8-bit header", "From: a@x.org\nSubject: caf\xc3\xa9\n\nbody \xe9\n", "header", 0 },
	{ "8-bit epilogue",
	  "From: a@x.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\n\n\xe9\n--B--\n\xe9pilogue\n",
	  "epilogue", 0 },
	{ "header line over 998", NULL, "998", 0 },
	{ "NUL in a body part header", NUL_IN_PART_HEADER, "NUL", sizeof(NUL_IN_PART_HEADER) - 1 },
};

START_TEST(test_convert_refused)
{
	const struct refusal *c = &refusals[_i];
	char why[256] = "", *msg = NULL;
	size_t len;
	int in, fd = memfd_create("out", MFD_CLOEXEC);

	if (c->msg == NULL) {
		msg = malloc(2000);
		ck_assert_ptr_nonnull(msg);
		len = (size_t)sprintf(msg, "From: a@x.org\nX-Long: %01200d\n\nbody \xe9\n", 0);
	} else {
		len = c->len ? c->len : strlen(c->msg);
	}
	in = file_with(msg ? msg : c->msg, len);
	ck_assert_int_eq(mime7bit_convert(in, 0, fd, NULL, why, sizeof(why)), -EILSEQ);
	ck_assert_msg(strstr(why, c->why) != NULL, "%s: reason '%s'", c->what, why);
	free(msg);
	close(fd);
	close(in);
}
END_TEST

static Suite *
mime7bit_suite(void)
{
	Suite *s = suite_create("mime7bit");
	TCase *tc = tcase_create("scan");

	tcase_add_loop_test(tc, test_scan, 0, sizeof(scan_cases) / sizeof(scan_cases[0]));
	tcase_add_test(tc, test_scan_line_limit);
	suite_add_tcase(s, tc);
	tc = tcase_create("convert");
	tcase_add_test(tc, test_convert_plain);
	tcase_add_test(tc, test_convert_multipart);
	tcase_add_loop_test(tc, test_convert_refused, 0, sizeof(refusals) / sizeof(refusals[0]));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	log_init("test_mime7bit", LOG_LVL_WARN);
	g_mime_init();
	return testutil_run(mime7bit_suite());
}
