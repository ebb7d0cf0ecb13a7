/*
 * NAME
 *	fuzz_smtp_hdrfilter - the Return-Path: filter against a reference, over any split
 * DESCRIPTION
 *	The input is the stored (LF) form of a message as it comes out of the
 *	DATA decoder: any bytes a client sent.  reference_filter() below is a
 *	second, deliberately simple filter written from smtp_parse.h, over
 *	whole lines: the header section ends at the first empty line; in it a
 *	line that is "Return-Path" (any case), blanks, ":" within the first
 *	SMTP_HDRFILTER_HOLD octets starts a dropped field, and the lines that
 *	follow it beginning with a space or a tab are its folded lines,
 *	dropped too; every other line, and every line from the empty one on,
 *	is copied as it is.  smtp_hdrfilter_feed() is then run with the input
 *	in one call and cut into random chunks (seeded from the input, so
 *	that a crash reproduces), each into a buffer of exactly the size the
 *	header promises; every run must write the reference's bytes.
 */
#include <ctype.h>
#include <strings.h>

#include "fuzz.h"
#include "common/smtp_parse.h"

static const char name[] = "return-path";
#define NAME_LEN	(sizeof(name) - 1)

/* Is the line (len octets, its LF excluded) the first line of a Return-Path field? */
static int
is_return_path(const char *line, size_t len)
{
	size_t i;

	if (len < NAME_LEN + 1 || strncasecmp(line, name, NAME_LEN) != 0)
		return 0;
	for (i = NAME_LEN; i < len && i < SMTP_HDRFILTER_HOLD; i++) {
		if (line[i] == ':')
			return 1;
		if (line[i] != ' ' && line[i] != '\t')
			return 0;
	}
	return 0;		/* no colon within the octets held back */
}

static size_t
reference_filter(const char *in, size_t n, char *out)
{
	size_t p = 0, o = 0;
	int dropping = 0;

	while (p < n) {
		const char *lf = memchr(in + p, '\n', n - p);
		size_t len = lf != NULL ? (size_t)(lf - (in + p)) : n - p;
		size_t with_lf = len + (lf != NULL);

		if (len == 0) {		/* the empty line: the rest is body */
			memcpy(out + o, in + p, n - p);
			return o + (n - p);
		}
		if (dropping && (in[p] == ' ' || in[p] == '\t')) {
			p += with_lf;		/* a folded line of the dropped field */
			continue;
		}
		dropping = is_return_path(in + p, len);
		if (!dropping) {
			memcpy(out + o, in + p, with_lf);
			o += with_lf;
		}
		p += with_lf;
	}
	return o;
}

/* The filter under test: chunks of 1..maxchunk octets (0: all at once). */
static size_t
chunked_filter(const char *in, size_t n, uint64_t *rng, size_t maxchunk, char *out)
{
	struct smtp_hdrfilter f;
	size_t pos = 0, o = 0;
	char *buf = malloc(n + SMTP_HDRFILTER_HOLD);

	FUZZ_CHECK(buf != NULL, "out of memory");
	smtp_hdrfilter_init(&f);
	while (pos < n) {
		size_t chunk = maxchunk ? 1 + (size_t)(fuzz_rand(rng) % maxchunk) : n - pos, w;

		if (chunk > n - pos)
			chunk = n - pos;
		/* Exactly the room the header asks for, so that ASan sees an overrun. */
		free(buf);
		buf = malloc(chunk + SMTP_HDRFILTER_HOLD);
		FUZZ_CHECK(buf != NULL, "out of memory");
		w = smtp_hdrfilter_feed(&f, in + pos, chunk, buf);
		FUZZ_CHECK(w <= chunk + SMTP_HDRFILTER_HOLD, "wrote %zu for %zu octets", w, chunk);
		FUZZ_CHECK(o + w <= n, "more output (%zu) than input (%zu)", o + w, n);
		memcpy(out + o, buf, w);
		o += w;
		pos += chunk;
	}
	free(buf);
	buf = malloc(SMTP_HDRFILTER_HOLD);
	FUZZ_CHECK(buf != NULL, "out of memory");
	{
		size_t w = smtp_hdrfilter_finish(&f, buf);

		FUZZ_CHECK(w <= SMTP_HDRFILTER_HOLD && o + w <= n, "finish wrote %zu", w);
		memcpy(out + o, buf, w);
		o += w;
	}
	free(buf);
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *want = malloc(size + 1), *got = malloc(size + 1);
	uint64_t rng = 0xcbf29ce484222325ull;
	size_t wantlen, gotlen, i;

	FUZZ_CHECK(want != NULL && got != NULL, "out of memory");
	for (i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 0x100000001b3ull;
	wantlen = reference_filter(in, size, want);
	for (i = 0; i < 5; i++) {
		size_t maxchunk = i == 0 ? 0 : 1 + (size_t)(fuzz_rand(&rng) % (i < 3 ? 4 : size + 1));

		gotlen = chunked_filter(in, size, &rng, maxchunk, got);
		FUZZ_CHECK(gotlen == wantlen && memcmp(got, want, wantlen) == 0,
		    "chunks of up to %zu: %zu octets, reference %zu:\n[%.*s]\nreference:\n[%.*s]", maxchunk,
		    gotlen, wantlen, (int)gotlen, got, (int)wantlen, want);
	}
	free(want);
	free(got);
	return 0;
}
