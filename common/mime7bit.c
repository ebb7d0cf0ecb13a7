/*
 * NAME
 *	mime7bit - make a message safe for a 7-bit SMTP peer
 * DESCRIPTION
 *	See mime7bit.h.  The scanner is a byte loop over a fixed buffer; the
 *	conversion is GMime's: its parser keeps the parts as windows on the
 *	file (a seekable stream), g_mime_part_get_best_content_encoding()
 *	streams a part's decoded content through a filter that counts 8-bit
 *	octets and line lengths, and writing the message re-encodes only the
 *	parts whose encoding was changed.  What was written is scanned again:
 *	whatever a transfer encoding could not fix is refused, never sent.
 */
#include <errno.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mime7bit.h"

#define SCAN_CHUNK	(64u << 10)

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();		/* counted by GMime: outbox.c may call it too */
}

static int
fail(int err, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* ---- scanning ---- */

struct scan_state {
	struct mime7bit_scan *out;
	bool		in_header;
	bool		bol;
	bool		prev_cr;
	size_t		line;		/* octets of the current line so far */
};

static void
scan_line_end(struct scan_state *st)
{
	size_t len = st->line - (st->prev_cr ? 1 : 0);

	if (len > st->out->longest_line)
		st->out->longest_line = len;
	if (st->in_header && len > st->out->longest_header_line)
		st->out->longest_header_line = len;
	if (st->in_header && st->bol)
		st->in_header = false;	/* the empty line ends the header section */
	st->bol = true;
	st->line = 0;
}

static void
scan_feed(struct scan_state *st, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (c == '\n') {
			scan_line_end(st);
			st->prev_cr = false;
			continue;
		}
		if (c >= 0x80 || c == 0) {
			if (c == 0)
				st->out->nul = true;
			else
				st->out->eightbit = true;
			if (st->in_header)
				st->out->header_8bit = true;
		}
		/* A line holding only CR is still the empty line (CRLF). */
		if (!(c == '\r' && st->line == 0))
			st->bol = false;
		st->prev_cr = c == '\r';
		st->line++;
	}
	st->out->size += n;
}

static void
scan_finish(struct scan_state *st)
{
	if (st->line > 0) {
		st->prev_cr = false;
		st->bol = false;
		scan_line_end(st);
	}
}

int
mime7bit_scan_fd(int fd, off_t offset, struct mime7bit_scan *out)
{
	struct scan_state st = { .out = out, .in_header = true, .bol = true };
	unsigned char *buf = malloc(SCAN_CHUNK);
	ssize_t n;

	memset(out, 0, sizeof(*out));
	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		n = pread(fd, buf, SCAN_CHUNK, offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		scan_feed(&st, buf, (size_t)n);
		offset += n;
	}
	free(buf);
	if (n < 0)
		return -errno;
	scan_finish(&st);
	return 0;
}

bool
mime7bit_needed(const struct mime7bit_scan *s, bool peer_8bitmime)
{
	return s->longest_line > MIME7BIT_LINE_MAX || s->nul || (s->eightbit && !peer_8bitmime);
}

/* ---- conversion ---- */

/* A leaf part: a new transfer encoding if its content is not 7-bit safe as it is. */
static void
encode_part(GMimePart *part, unsigned *changed)
{
	GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
	GMimeContentEncoding best;
	GMimeContentType *ct;

	if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    enc == GMIME_CONTENT_ENCODING_UUENCODE)
		return;				/* already made of short 7-bit lines */
	best = g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT);
	if (best == GMIME_CONTENT_ENCODING_DEFAULT || best == GMIME_CONTENT_ENCODING_7BIT)
		return;
	ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
	g_mime_part_set_content_encoding(part, ct != NULL && g_mime_content_type_is_type(ct, "text", "*") ?
	    GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE : GMIME_CONTENT_ENCODING_BASE64);
	(*changed)++;
}

/*
 * GMime keeps a header's raw value as a C string with its line end: one cut
 * at a NUL octet has none, and writing it back glues the next header (a new
 * Content-Transfer-Encoding, say) onto it.  A header section that ends with
 * the end of the message has none either.
 */
static bool
headers_whole(GMimeObject *obj)
{
	GMimeHeaderList *list = g_mime_object_get_header_list(obj);
	int i, n = list != NULL ? g_mime_header_list_get_count(list) : 0;

	for (i = 0; i < n; i++) {
		const char *raw = g_mime_header_get_raw_value(g_mime_header_list_get_header_at(list, i));
		size_t len = raw != NULL ? strlen(raw) : 0;

		if (len == 0 || raw[len - 1] != '\n')
			return false;
	}
	return true;
}

/* Every leaf under obj, through multiparts and enclosed messages; *cut counts
 * the header sections below the top one that GMime could not keep whole. */
static void
encode_tree(GMimeObject *obj, unsigned *changed, unsigned *cut, unsigned depth)
{
	if (obj == NULL || depth > 64)
		return;			/* GMime bounds nesting too; a message that deep stays as it is */
	if (depth > 0 && !headers_whole(obj))
		(*cut)++;		/* the top header section was checked for NUL octets */
	if (GMIME_IS_MULTIPART(obj)) {
		int i, n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));

		for (i = 0; i < n; i++)
			encode_tree(g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), changed, cut, depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		if (m != NULL && !headers_whole(GMIME_OBJECT(m)))
			(*cut)++;
		if (m != NULL)
			encode_tree(g_mime_message_get_mime_part(m), changed, cut, depth + 1);
	} else if (GMIME_IS_PART(obj)) {
		encode_part(GMIME_PART(obj), changed);
	}
}

static GMimeMessage *
parse_message(int in, off_t offset)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	int fd = dup(in);

	if (fd < 0)
		return NULL;
	stream = g_mime_stream_fs_new_with_bounds(fd, offset, -1);	/* owns fd */
	parser = g_mime_parser_new_with_stream(stream);
	msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	return msg;
}

static int
write_message(GMimeMessage *msg, int out)
{
	GMimeStream *stream;
	int fd = dup(out), r = 0;

	if (fd < 0)
		return -errno;
	stream = g_mime_stream_fs_new(fd);		/* owns fd */
	errno = 0;
	if (g_mime_object_write_to_stream(GMIME_OBJECT(msg), NULL, stream) < 0 ||
	    g_mime_stream_flush(stream) < 0)
		r = errno ? -errno : -EIO;
	g_object_unref(stream);
	return r;
}

/* What is still unfit after the conversion, as a reason. */
static int
check_converted(const struct mime7bit_scan *before, const struct mime7bit_scan *after, char *why,
    size_t whylen)
{
	if (after->eightbit || after->nul) {
		if (before->header_8bit)
			return fail(-EILSEQ, why, whylen, "8-bit octets in the message header "
			    "cannot be sent to a 7-bit server (a transfer encoding cannot fix a header)");
		return fail(-EILSEQ, why, whylen, "8-bit octets outside any body part (a multipart "
		    "preamble or epilogue, or the header of an enclosed message) cannot be encoded");
	}
	if (after->longest_line > MIME7BIT_LINE_MAX)
		return fail(-EILSEQ, why, whylen, "a header line of %zu octets (the limit is %d) "
		    "cannot be encoded", after->longest_line, MIME7BIT_LINE_MAX);
	return 0;
}

int
mime7bit_convert(int in, off_t offset, int out, struct mime7bit_scan *after, char *why, size_t whylen)
{
	struct mime7bit_scan before, scanned;
	GMimeMessage *msg;
	unsigned changed = 0, cut = 0;
	off_t start;
	int r;

	pthread_once(&gmime_once, gmime_start);
	if ((r = mime7bit_scan_fd(in, offset, &before)) < 0)
		return fail(r, why, whylen, "reading the message: %s", strerror(-r));
	if (before.header_8bit)
		return check_converted(&before, &before, why, whylen);
	if (before.longest_header_line > MIME7BIT_LINE_MAX)
		return fail(-EILSEQ, why, whylen, "a header line of %zu octets (the limit is %d) cannot be encoded",
		    before.longest_header_line, MIME7BIT_LINE_MAX);
	if ((start = lseek(out, 0, SEEK_CUR)) < 0)
		return fail(-errno, why, whylen, "the output file: %s", strerror(errno));
	if ((msg = parse_message(in, offset)) == NULL)
		return fail(-EBADMSG, why, whylen, "the message cannot be parsed as MIME");
	encode_tree(g_mime_message_get_mime_part(msg), &changed, &cut, 0);
	if (cut > 0 && before.nul) {	/* without a NUL, only the end of the message cut it: harmless */
		g_object_unref(msg);
		return fail(-EILSEQ, why, whylen, "a NUL octet in the header of a body part or an enclosed "
		    "message (or a part header cut off by the end of the message) cannot be sent");
	}
	if (changed > 0 && g_mime_object_get_header(GMIME_OBJECT(msg), "MIME-Version") == NULL)
		g_mime_object_set_header(GMIME_OBJECT(msg), "MIME-Version", "1.0", NULL);
	r = write_message(msg, out);
	g_object_unref(msg);
	if (r < 0)
		return fail(r, why, whylen, "writing the converted message: %s", strerror(-r));
	if ((r = mime7bit_scan_fd(out, start, &scanned)) < 0)
		return fail(r, why, whylen, "reading the converted message: %s", strerror(-r));
	if (after != NULL)
		*after = scanned;
	return check_converted(&before, &scanned, why, whylen);
}
