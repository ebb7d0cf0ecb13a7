/*
 * NAME
 *	fuzz_dsn - delivery status notifications (dsn.h)
 * DESCRIPTION
 *	dsn_build() puts bytes from elsewhere into a message: a remote
 *	server's reply and the host name, the recipient and sender addresses,
 *	the original's header section.  The input is split at NUL bytes
 *	into sender, recipient, host, reply, and the rest is the original
 *	message.  Whatever they hold, the notice builds, is 7-bit with no CR
 *	and no line over 998 octets, and parses back (GMime) as a
 *	multipart/report of two or three parts whose delivery-status part
 *	has exactly one recipient block: no value ended a field, a part or
 *	the message.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "fuzz.h"
#include "common/dsn.h"

/* The next NUL-terminated field of the input, or all that is left. */
static char *
next_field(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n = nul != NULL ? (size_t)(nul - *p) : (size_t)(end - *p);
	char *s = fuzz_cstr(*p, n);

	*p += nul != NULL ? n + 1 : n;
	return s;
}

static void
check_wire(const char *raw, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		FUZZ_CHECK((unsigned char)raw[i] < 0x80 && raw[i] != '\r' && raw[i] != '\0',
		    "octet 0x%02x at %zu", (unsigned char)raw[i], i);
		col = raw[i] == '\n' ? 0 : col + 1;
		FUZZ_CHECK(col <= 998, "line over 998 octets at %zu", i);
	}
}

static void
check_structure(const char *raw, size_t len)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	GMimeObject *body, *status;
	GMimeStream *mem;
	GByteArray *bytes;
	size_t i, blocks = 1;
	int n;

	FUZZ_CHECK(msg != NULL, "the notice does not parse");
	body = g_mime_message_get_mime_part(msg);
	FUZZ_CHECK(GMIME_IS_MULTIPART(body), "not multipart");
	FUZZ_CHECK(g_mime_content_type_is_type(g_mime_object_get_content_type(body), "multipart", "report"),
	    "not multipart/report");
	n = g_mime_multipart_get_count(GMIME_MULTIPART(body));
	FUZZ_CHECK(n == 2 || n == 3, "%d parts", n);
	status = g_mime_multipart_get_part(GMIME_MULTIPART(body), 1);
	FUZZ_CHECK(GMIME_IS_PART(status) && g_mime_content_type_is_type(g_mime_object_get_content_type(status),
	    "message", "delivery-status"), "the second part is no message/delivery-status");
	mem = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(GMIME_PART(status)), mem);
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	for (i = 0; i + 1 < bytes->len; i++)
		blocks += bytes->data[i] == '\n' && bytes->data[i + 1] == '\n';
	FUZZ_CHECK(blocks == 2, "%zu blocks in the delivery-status part", blocks);
	g_object_unref(mem);
	g_object_unref(msg);
	g_object_unref(parser);
	g_object_unref(stream);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int started;
	const uint8_t *p = data, *end = data + size;
	char *from = next_field(&p, end), *rcpt = next_field(&p, end);
	char *host = next_field(&p, end), *reply = next_field(&p, end), *raw = NULL;
	struct dsn_request req = { .hostname = "gw.example", .id = "1.M1P1Q1", .now = 1764442059 };
	struct envelope env;
	size_t len;
	int fd;

	if (!started) {
		g_mime_init();
		started = 1;
	}
	FUZZ_CHECK(from && rcpt && host && reply, "out of memory");
	FUZZ_CHECK(envelope_init(&env, "1.M1P1Q2", from, "fuzz") == 0, "envelope_init");
	FUZZ_CHECK(envelope_add_rcpt(&env, rcpt[0] ? rcpt : "x") == 0, "envelope_add_rcpt");
	/* set on the struct: the record's checks are not what protects the notice */
	env.rcpt[0].state = RCPT_FAILED;
	env.rcpt[0].reply = reply;
	env.rcpt[0].host = host[0] ? host : NULL;
	env.rcpt[0].at = 1764442000;
	env.created = 1764440000;
	/* RET=FULL on odd sizes: the original whole (when 7-bit) must not break the notice either */
	env.dsn_ret = (size & 1) ? DSN_RET_FULL : DSN_RET_HDRS;
	req.full_max = 1u << 20;
	fd = memfd_create("fuzz_dsn", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0, "memfd_create");
	FUZZ_CHECK(write(fd, p, (size_t)(end - p)) == end - p, "write");
	req.env = &env;
	req.datafd = fd;
	FUZZ_CHECK(dsn_build(&req, &raw, &len) == 0, "dsn_build failed");
	check_wire(raw, len);
	check_structure(raw, len);
	free(raw);
	close(fd);
	if (env.rcpt[0].host == NULL)
		free(host);
	envelope_free(&env);	/* frees reply and host */
	free(from);
	free(rcpt);
	return 0;
}
