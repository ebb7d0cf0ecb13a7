/*
 * NAME
 *	fuzz_smtp_hdrscan - the Received: counter (hop limit) against a reference
 * DESCRIPTION
 *	The input is the stored (LF) form of a message.  reference_count()
 *	counts, over whole lines, the lines of the header section (up to the
 *	first empty line) that begin with "Received:" in any case, as
 *	smtp_parse.h documents; smtp_hdrscan_feed() must give the same count
 *	and say that the header ended exactly when the input holds an empty
 *	line, in one call and over random chunk splits (seeded from the
 *	input, so that a crash reproduces), chunks of zero octets included.
 *	A counter that depended on the split would let a message loop
 *	forever, or be refused for hops it does not have.
 */
#include <strings.h>

#include "fuzz.h"
#include "common/smtp_parse.h"

static unsigned
reference_count(const char *in, size_t n, int *ended)
{
	size_t p = 0;
	unsigned count = 0;

	*ended = 0;
	while (p < n) {
		const char *lf = memchr(in + p, '\n', n - p);
		size_t len = lf != NULL ? (size_t)(lf - (in + p)) : n - p;

		if (lf != NULL && len == 0) {
			*ended = 1;
			break;
		}
		if (len >= 9 && strncasecmp(in + p, "received:", 9) == 0)
			count++;
		p += len + (lf != NULL);
	}
	return count;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	uint64_t rng = 0xcbf29ce484222325ull;
	unsigned want;
	int ended;
	size_t i;

	for (i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 0x100000001b3ull;
	want = reference_count(in, size, &ended);
	for (i = 0; i < 5; i++) {
		size_t maxchunk = i == 0 ? size : 1 + (size_t)(fuzz_rand(&rng) % (i < 3 ? 4 : size + 1));
		struct smtp_hdrscan h;
		size_t pos = 0;

		smtp_hdrscan_init(&h);
		while (pos < size) {
			/* 0..maxchunk octets: an empty read must change nothing. */
			size_t chunk = (size_t)(fuzz_rand(&rng) % (maxchunk + 1));

			if (i == 0 || chunk > size - pos)
				chunk = size - pos;
			smtp_hdrscan_feed(&h, in + pos, chunk);
			pos += chunk;
		}
		FUZZ_CHECK(h.received == want, "chunks of up to %zu: %u Received: lines, reference %u",
		    maxchunk, h.received, want);
		FUZZ_CHECK(h.done == (ended != 0), "chunks of up to %zu: header ended %d, reference %d",
		    maxchunk, h.done, ended);
	}
	return 0;
}
