/*
 * NAME
 *	fuzz_mime7bit - the 8-bit to 7-bit conversion of a relayed message
 * DESCRIPTION
 *	The input is a message as a client sent it (any bytes), in a memfd.
 *	mime7bit_scan_fd() must agree with reference_scan() below, a simple
 *	line-by-line reading of mime7bit.h.  mime7bit_convert() must then
 *	either refuse with a reason, or write a message that has no 8-bit or
 *	NUL octet and no line over MIME7BIT_LINE_MAX octets, that its
 *	"after" scan describes, and whose body parts decode (GMime's own
 *	decoders, part by part in the same tree order) to the same octets as
 *	the parts of the input, or as the parts of the input as GMime writes
 *	it back unchanged (in a text part, CRs before a LF count as the line
 *	break they are written as): the conversion changes transfer encodings, never
 *	content.  GMime's rewrite is allowed because GMime does not write
 *	every malformed message back octet for octet (a body that is a lone
 *	CR comes back empty; an empty part of a broken multipart comes back
 *	as one LF): that is GMime's parser and writer, which mime7bit.c uses
 *	for every message, not the conversion.  GMime is initialised here once (g_mime_init() is
 *	counted, mime7bit.c calls it too).
 */
#include <errno.h>
#include <gmime/gmime.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "common/mime7bit.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_mime_init();
	return 0;
}

/* mime7bit.h's scan, line by line: a line ends at LF; its length leaves
 * out a CR just before that LF; the header section ends with the first
 * line that is empty or a lone CR. */
static void
reference_scan(const unsigned char *p, size_t n, struct mime7bit_scan *s)
{
	size_t pos = 0;
	int in_header = 1;

	memset(s, 0, sizeof(*s));
	s->size = n;
	while (pos < n) {
		const unsigned char *lf = memchr(p + pos, '\n', n - pos);
		size_t end = lf != NULL ? (size_t)(lf - p) : n, len = end - pos, i;

		if (lf != NULL && len > 0 && p[end - 1] == '\r')
			len--;
		for (i = pos; i < end; i++) {
			if (p[i] == 0)
				s->nul = true;
			if (p[i] >= 0x80)
				s->eightbit = true;
			if (in_header && (p[i] == 0 || p[i] >= 0x80))
				s->header_8bit = true;
		}
		if (len > s->longest_line)
			s->longest_line = len;
		if (in_header && len > s->longest_header_line)
			s->longest_header_line = len;
		if (in_header && (end == pos || (end == pos + 1 && p[pos] == '\r')) && lf != NULL)
			in_header = 0;
		pos = end + (lf != NULL);
	}
}

static void
same_scan(const struct mime7bit_scan *a, const struct mime7bit_scan *b, const char *what)
{
	FUZZ_CHECK(a->header_8bit == b->header_8bit && a->eightbit == b->eightbit && a->nul == b->nul &&
	    a->longest_line == b->longest_line && a->longest_header_line == b->longest_header_line &&
	    a->size == b->size, "%s: 8bit %d/%d header %d/%d nul %d/%d longest %zu/%zu header %zu/%zu size %llu/%llu",
	    what, a->eightbit, b->eightbit, a->header_8bit, b->header_8bit, a->nul, b->nul, a->longest_line,
	    b->longest_line, a->longest_header_line, b->longest_header_line, a->size, b->size);
}

static int
memfd_with(const void *data, size_t size)
{
	int fd = memfd_create("fuzz_mime7bit", MFD_CLOEXEC);

	FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size, "write: %s", strerror(errno));
	return fd;
}

static GMimeMessage *
parse_fd(int fd)
{
	GMimeStream *stream = g_mime_stream_fs_new_with_bounds(dup(fd), 0, -1);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);

	g_object_unref(parser);
	g_object_unref(stream);
	return msg;
}

/* A text part's line break is CRLF or LF alike (RFC 2045 2.10): the output has LF line
 * endings (mime7bit.h), and the relay sends every line ending as CRLF.  GMime decodes a
 * quoted-printable "=0D" before a line break as CR LF, so a CR that ends a line's
 * content cannot be told from a CRLF: every CR just before a LF is left out. */
static void
text_line_breaks(GByteArray *b)
{
	guint i, o = 0;

	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\n')
			while (o > 0 && b->data[o - 1] == '\r')
				o--;
		b->data[o++] = b->data[i];
	}
	g_byte_array_set_size(b, o);
}

/* The decoded content of every leaf, in tree order, as in mime7bit.c's encode_tree(). */
static void
collect_leaves(GMimeObject *obj, GPtrArray *out, unsigned depth)
{
	if (obj == NULL || depth > 64)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		int i, n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));

		for (i = 0; i < n; i++)
			collect_leaves(g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), out, depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		if (m != NULL)
			collect_leaves(g_mime_message_get_mime_part(m), out, depth + 1);
	} else if (GMIME_IS_PART(obj)) {
		GMimeDataWrapper *content = g_mime_part_get_content(GMIME_PART(obj));
		GMimeContentType *ct = g_mime_object_get_content_type(obj);
		GByteArray *bytes = g_byte_array_new();
		GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(bytes);

		g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
		if (content != NULL)
			g_mime_data_wrapper_write_to_stream(content, mem);
		g_object_unref(mem);
		if (ct != NULL && g_mime_content_type_is_type(ct, "text", "*"))
			text_line_breaks(bytes);
		g_ptr_array_add(out, bytes);
	}
}

static GPtrArray *
leaves_of(int fd)
{
	GMimeMessage *msg = parse_fd(fd);
	GPtrArray *leaves = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);

	FUZZ_CHECK(msg != NULL, "GMime cannot parse it again");
	collect_leaves(g_mime_message_get_mime_part(msg), leaves, 0);
	g_object_unref(msg);
	return leaves;
}

/* in as GMime writes it back without any change: what mime7bit.c starts from. */
static int
gmime_rewrite(int in)
{
	GMimeMessage *msg = parse_fd(in);
	int fd = memfd_with(NULL, 0);
	GMimeStream *stream = g_mime_stream_fs_new(dup(fd));

	FUZZ_CHECK(msg != NULL, "GMime cannot parse the input it converted");
	FUZZ_CHECK(g_mime_object_write_to_stream(GMIME_OBJECT(msg), NULL, stream) >= 0 &&
	    g_mime_stream_flush(stream) == 0, "GMime cannot write the input back");
	g_object_unref(stream);
	g_object_unref(msg);
	return fd;
}

static int
same_bytes(const GByteArray *x, const GByteArray *y)
{
	return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

/* Each part of out decodes as that part of in, or as that part of GMime's rewrite of in. */
static void
check_same_content(int in, int out)
{
	int rewritten = gmime_rewrite(in);
	GPtrArray *a = leaves_of(in), *r = leaves_of(rewritten), *b = leaves_of(out);
	guint i;

	FUZZ_CHECK(b->len == a->len || b->len == r->len, "%u body parts (%u rewritten) became %u", a->len, r->len,
	    b->len);
	for (i = 0; i < b->len; i++) {
		GByteArray *y = g_ptr_array_index(b, i);
		GByteArray *x = i < a->len ? g_ptr_array_index(a, i) : NULL;
		GByteArray *z = i < r->len ? g_ptr_array_index(r, i) : NULL;

		FUZZ_CHECK((x != NULL && same_bytes(x, y)) || (z != NULL && same_bytes(z, y)),
		    "part %u: %u octets (%u rewritten) decode to %u other octets:\n[%.*s]\n[%.*s]", i,
		    x ? x->len : 0, z ? z->len : 0, y->len, x ? (int)x->len : 0, x ? (const char *)x->data : "",
		    (int)y->len, (const char *)y->data);
	}
	g_ptr_array_unref(a);
	g_ptr_array_unref(r);
	g_ptr_array_unref(b);
	close(rewritten);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime7bit_scan want, got, after, out_scan;
	char why[256] = "";
	int in = memfd_with(data, size), out = memfd_with(NULL, 0), r;

	reference_scan(data, size, &want);
	FUZZ_CHECK(mime7bit_scan_fd(in, 0, &got) == 0, "scan failed");
	same_scan(&got, &want, "scan");

	memset(&after, 0, sizeof(after));
	r = mime7bit_convert(in, 0, out, &after, why, sizeof(why));
	if (r != 0) {
		FUZZ_CHECK(r == -EILSEQ || r == -EBADMSG, "errno %d (%s)", -r, why);
		FUZZ_CHECK(why[0] != '\0', "refused (%d) without a reason", -r);
		FUZZ_CHECK(r != -EILSEQ || want.header_8bit || want.longest_header_line > MIME7BIT_LINE_MAX ||
		    want.eightbit || want.nul || want.longest_line > MIME7BIT_LINE_MAX,
		    "refused a message that was 7-bit already: %s", why);
	} else {
		FUZZ_CHECK(mime7bit_scan_fd(out, 0, &out_scan) == 0, "scan of the output failed");
		same_scan(&after, &out_scan, "after");
		FUZZ_CHECK(!out_scan.eightbit && !out_scan.nul, "8-bit or NUL octets in the output");
		FUZZ_CHECK(out_scan.longest_line <= MIME7BIT_LINE_MAX, "a line of %zu octets in the output",
		    out_scan.longest_line);
		FUZZ_CHECK(!mime7bit_needed(&out_scan, false), "the output still needs a conversion");
		check_same_content(in, out);
	}
	close(in);
	close(out);
	return 0;
}
