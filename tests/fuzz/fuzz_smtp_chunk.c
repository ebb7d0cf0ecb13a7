/*
 * NAME
 *	fuzz_smtp_chunk - BDAT: the size argument and the chunk decoder (smtp_parse.h)
 * DESCRIPTION
 *	The input is a message as BDAT chunks carry it.  smtp_chunk_decode()
 *	over the whole input in one call, and over chunks of sizes drawn from
 *	the input (a CR may end one chunk and its LF start the next), gives
 *	the same bytes, and those are the input with each CRLF made LF and
 *	nothing else changed.  The first line also goes to smtp_parse_bdat():
 *	an accepted size is the decimal number the line starts with.
 */
#include <ctype.h>
#include <errno.h>

#include "fuzz.h"
#include "common/smtp_parse.h"

/* The input with CRLF -> LF, by the book. */
static size_t
expected(const char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			continue;
		out[o++] = in[i];
	}
	return o;
}

static size_t
decode_in_chunks(const char *in, size_t len, uint64_t seed, char *out)
{
	struct smtp_chunk c = { false };
	size_t pos = 0, o = 0;

	while (pos < len) {
		size_t n = (size_t)(fuzz_rand(&seed) % 7);

		if (n > len - pos)
			n = len - pos;
		o += smtp_chunk_decode(&c, in + pos, n, out + o);
		pos += n;
	}
	return o + smtp_chunk_finish(&c, out + o);
}

static void
check_bdat_arg(const char *in, size_t len)
{
	char line[64];
	size_t n = 0;
	uint64_t size, want = 0;
	bool last;

	while (n < len && n + 1 < sizeof(line) && in[n] != '\n' && in[n] != '\0') {
		line[n] = in[n];
		n++;
	}
	line[n] = '\0';
	if (smtp_parse_bdat(line, &size, &last) != 0)
		return;
	FUZZ_CHECK(isdigit((unsigned char)line[0]), "BDAT '%s' accepted", line);
	for (n = 0; isdigit((unsigned char)line[n]); n++)
		want = want * 10 + (uint64_t)(line[n] - '0');
	FUZZ_CHECK(size == want, "BDAT '%s' gave %llu", line, (unsigned long long)size);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *one = malloc(size + 2), *many = malloc(size + 2), *want = malloc(size + 1);
	struct smtp_chunk c = { false };
	size_t n1, n2, nw;
	uint64_t seed = size;

	if (one == NULL || many == NULL || want == NULL)
		goto out;
	for (size_t i = 0; i < size && i < 8; i++)
		seed = seed * 131 + data[i];
	n1 = smtp_chunk_decode(&c, in, size, one);
	n1 += smtp_chunk_finish(&c, one + n1);
	n2 = decode_in_chunks(in, size, seed, many);
	nw = expected(in, size, want);
	FUZZ_CHECK(n1 == nw && memcmp(one, want, nw) == 0, "one chunk: %zu octets, want %zu", n1, nw);
	FUZZ_CHECK(n2 == nw && memcmp(many, want, nw) == 0, "many chunks: %zu octets, want %zu", n2, nw);
	check_bdat_arg(in, size);
out:
	free(one);
	free(many);
	free(want);
	return 0;
}
