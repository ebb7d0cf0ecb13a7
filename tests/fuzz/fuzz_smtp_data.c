/*
 * NAME
 *	fuzz_smtp_data - the DATA decoder against a reference, over any split
 * DESCRIPTION
 *	The input, followed by "\r\n.\r\n" so that the data always ends, is
 *	what a client sends after DATA.  reference_decode() below is a second,
 *	deliberately simple decoder written from RFC 5321 4.5.2 and the rules
 *	of smtp_parse.h, over the whole buffer at once: the data ends at the
 *	first ".\r\n" at a line start (the DATA command's CRLF counts as the
 *	first CRLF); CRLF becomes LF; a line start is only what follows a
 *	CRLF; there a '.' followed by anything but LF is dropped.
 *	smtp_data_decode() is then run with the input cut into random chunks
 *	and a random output capacity (the random choices seeded from the
 *	input, so a crash reproduces), and once in one call: each must stop
 *	where the reference stops and write exactly the reference's bytes.
 */
#include "fuzz.h"
#include "common/smtp_parse.h"

static const char terminator[] = "\r\n.\r\n";

struct decoded {
	char   *out;
	size_t	cap;		/* of out */
	size_t	outlen;
	size_t	used;		/* input consumed, terminator included */
	int	ended;
};

static void
reference_decode(const char *in, size_t n, struct decoded *r)
{
	size_t p = 0;
	int bol = 1;

	r->outlen = 0;
	r->ended = 0;
	while (p < n) {
		if (bol) {
			if (n - p >= 3 && memcmp(in + p, ".\r\n", 3) == 0) {
				r->used = p + 3;
				r->ended = 1;
				return;
			}
			if (in[p] == '.' && p + 1 < n && in[p + 1] != '\n')
				p++;		/* dot-stuffing */
			bol = 0;
		}
		if (n - p >= 2 && in[p] == '\r' && in[p + 1] == '\n') {
			r->out[r->outlen++] = '\n';
			p += 2;
			bol = 1;
			continue;
		}
		r->out[r->outlen++] = in[p++];
	}
	r->used = p;
}

/* The decoder under test: input in chunks of 1..maxchunk octets (0: all
 * at once), out of outcap octets per call. */
static void
chunked_decode(const char *in, size_t n, uint64_t *rng, size_t maxchunk, size_t outcap, struct decoded *r)
{
	struct smtp_data d;
	size_t pos = 0;
	char *buf = malloc(outcap);

	FUZZ_CHECK(buf != NULL, "out of memory");
	smtp_data_init(&d);
	r->outlen = 0;
	r->ended = 0;
	while (pos < n && !r->ended) {
		size_t chunk = maxchunk ? 1 + (size_t)(fuzz_rand(rng) % maxchunk) : n - pos, off = 0;

		if (chunk > n - pos)
			chunk = n - pos;
		while (off < chunk && !r->ended) {
			size_t used = 0, outlen = 0;
			int rc = smtp_data_decode(&d, in + pos + off, chunk - off, &used, buf, outcap, &outlen);

			FUZZ_CHECK(used <= chunk - off && outlen <= outcap, "used %zu of %zu, wrote %zu of %zu",
			    used, chunk - off, outlen, outcap);
			FUZZ_CHECK(used > 0 || outlen > 0 || rc == SMTP_DATA_END, "no progress");
			FUZZ_CHECK(outlen <= r->cap - r->outlen, "more output than input");
			memcpy(r->out + r->outlen, buf, outlen);
			r->outlen += outlen;
			off += used;
			r->ended = rc == SMTP_DATA_END;
		}
		pos += off;
	}
	r->used = pos;
	free(buf);
}

static void
same(const struct decoded *want, const struct decoded *got, const char *how)
{
	FUZZ_CHECK(got->ended == want->ended, "%s: ended %d, reference %d", how, got->ended, want->ended);
	FUZZ_CHECK(got->used == want->used, "%s: consumed %zu, reference %zu", how, got->used, want->used);
	FUZZ_CHECK(got->outlen == want->outlen, "%s: wrote %zu octets, reference %zu", how, got->outlen, want->outlen);
	FUZZ_CHECK(memcmp(got->out, want->out, want->outlen) == 0, "%s: other bytes than the reference", how);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size + sizeof(terminator) - 1, i;
	char *in = malloc(n);
	struct decoded want, got;
	uint64_t rng = 0xcbf29ce484222325ull;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	memcpy(in + size, terminator, sizeof(terminator) - 1);
	for (i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 0x100000001b3ull;
	want.cap = got.cap = n;		/* the output is never longer than the input */
	want.out = malloc(n);
	got.out = malloc(n);
	FUZZ_CHECK(want.out != NULL && got.out != NULL, "out of memory");

	reference_decode(in, n, &want);
	FUZZ_CHECK(want.ended, "the reference did not see the appended terminator");

	chunked_decode(in, n, &rng, 0, n + 2, &got);	/* one call, output never full */
	same(&want, &got, "one call");
	for (i = 0; i < 4; i++) {
		size_t maxchunk = 1 + (size_t)(fuzz_rand(&rng) % (i < 2 ? 8 : n));
		size_t outcap = 2 + (size_t)(fuzz_rand(&rng) % 16);

		chunked_decode(in, n, &rng, maxchunk, outcap, &got);
		same(&want, &got, "chunked");
	}
	free(want.out);
	free(got.out);
	free(in);
	return 0;
}
