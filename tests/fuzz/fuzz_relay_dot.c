/*
 * NAME
 *	fuzz_relay_dot - the relay's DATA encoder against the server's decoder
 * DESCRIPTION
 *	The input is a stored message (any bytes: a local user wrote it into
 *	outbox/, or a client sent it).  relay_dot_encode() is run over random
 *	chunks with random output room of at least 4 octets (the most one
 *	input octet can need; seeded from the input, so that a crash
 *	reproduces), then relay_dot_finish().  What goes on the wire must
 *	hold CR only in CRLF and LF only after CR, whatever the split give
 *	the same octets, take all of a chunk when given
 *	RELAY_DOT_ENCODE_MAX(chunk) octets, and, decoded by the SMTP
 *	server's own DATA decoder (smtp_data_decode(), in one call and in
 *	small pieces), end exactly at its end and give back the input with
 *	relay_smtp.h's one change: every line ending (CRLF, LF, bare CR) is
 *	a LF, and a last line without one gets one.
 */
#include "fuzz.h"
#include "smtpd/relay_smtp.h"
#include "common/smtp_parse.h"

/* The input as the far side stores it. */
static size_t
normalise(const char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (in[i] == '\r') {
			out[o++] = '\n';
			if (i + 1 < n && in[i + 1] == '\n')
				i++;
		} else {
			out[o++] = in[i];
		}
	}
	if (o > 0 && out[o - 1] != '\n')
		out[o++] = '\n';
	return o;
}

/* Encodes in chunks of 1..maxchunk octets (0: one call with all the room); returns the wire length. */
static size_t
encode(const char *in, size_t n, uint64_t *rng, size_t maxchunk, char *wire)
{
	struct relay_dot st;
	size_t pos = 0, w = 0;
	char *out;

	relay_dot_init(&st);
	while (pos < n) {
		size_t chunk = maxchunk ? 1 + (size_t)(fuzz_rand(rng) % maxchunk) : n - pos, consumed = 12345, k;
		size_t full, room;

		if (chunk > n - pos)
			chunk = n - pos;
		full = RELAY_DOT_ENCODE_MAX(chunk);
		room = maxchunk ? 4 + (size_t)(fuzz_rand(rng) % (full - 3)) : full;
		out = malloc(room);	/* exactly the room given, so that ASan sees an overrun */
		FUZZ_CHECK(out != NULL, "out of memory");
		k = relay_dot_encode(&st, in + pos, chunk, &consumed, out, room);
		FUZZ_CHECK(k <= room && consumed <= chunk, "wrote %zu of %zu, took %zu of %zu", k, room, consumed, chunk);
		FUZZ_CHECK(consumed > 0, "no progress with %zu octets of room", room);
		FUZZ_CHECK(room < full || consumed == chunk, "took %zu of %zu with %zu octets of room", consumed, chunk,
		    room);
		memcpy(wire + w, out, k);
		w += k;
		pos += consumed;
		free(out);
	}
	out = malloc(RELAY_DOT_FINISH_MAX);
	FUZZ_CHECK(out != NULL, "out of memory");
	FUZZ_CHECK(relay_dot_finish(&st, out, RELAY_DOT_FINISH_MAX - 1) == 0, "finish wrote into too small a buffer");
	{
		size_t k = relay_dot_finish(&st, out, RELAY_DOT_FINISH_MAX);

		FUZZ_CHECK(k >= 3 && k <= RELAY_DOT_FINISH_MAX, "finish wrote %zu", k);
		memcpy(wire + w, out, k);
		w += k;
	}
	free(out);
	return w;
}

static void
check_wire(const char *wire, size_t w)
{
	size_t i;

	for (i = 0; i < w; i++) {
		if (wire[i] == '\r')
			FUZZ_CHECK(i + 1 < w && wire[i + 1] == '\n', "a bare CR on the wire at %zu", i);
		if (wire[i] == '\n')
			FUZZ_CHECK(i > 0 && wire[i - 1] == '\r', "a bare LF on the wire at %zu", i);
	}
	FUZZ_CHECK(w >= 3 && memcmp(wire + w - 3, ".\r\n", 3) == 0 && (w == 3 || (w >= 5 && memcmp(wire + w - 5, "\r\n", 2) == 0)),
	    "the data does not end with CRLF . CRLF");
}

/* The server's side: decode in pieces of 1..maxchunk octets, out of outcap octets a call. */
static size_t
decode(const char *wire, size_t w, uint64_t *rng, size_t maxchunk, size_t outcap, char *stored)
{
	struct smtp_data d;
	size_t pos = 0, s = 0;
	char *buf = malloc(outcap);
	int rc = SMTP_DATA_MORE;

	FUZZ_CHECK(buf != NULL, "out of memory");
	smtp_data_init(&d);
	while (pos < w && rc != SMTP_DATA_END) {
		size_t chunk = maxchunk ? 1 + (size_t)(fuzz_rand(rng) % maxchunk) : w - pos, used = 0, outlen = 0;

		if (chunk > w - pos)
			chunk = w - pos;
		rc = smtp_data_decode(&d, wire + pos, chunk, &used, buf, outcap, &outlen);
		memcpy(stored + s, buf, outlen);
		s += outlen;
		pos += used;
	}
	free(buf);
	FUZZ_CHECK(rc == SMTP_DATA_END && pos == w, "the server's decoder ended at %zu of %zu (rc %d)", pos, w, rc);
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t cap = RELAY_DOT_ENCODE_MAX(size) + RELAY_DOT_FINISH_MAX, wlen, w, want, got, i;
	char *wire = malloc(cap), *again = malloc(cap), *norm = malloc(size + 1), *stored = malloc(cap);
	uint64_t rng = 0xcbf29ce484222325ull;

	FUZZ_CHECK(wire != NULL && again != NULL && norm != NULL && stored != NULL, "out of memory");
	for (i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 0x100000001b3ull;
	want = normalise(in, size, norm);
	wlen = encode(in, size, &rng, 0, wire);
	check_wire(wire, wlen);
	for (i = 0; i < 3; i++) {
		w = encode(in, size, &rng, 1 + (size_t)(fuzz_rand(&rng) % (i < 2 ? 5 : size + 1)), again);
		FUZZ_CHECK(w == wlen && memcmp(again, wire, w) == 0, "another split, other octets on the wire");
	}
	got = decode(wire, wlen, &rng, 0, wlen + 2, stored);
	FUZZ_CHECK(got == want && memcmp(stored, norm, want) == 0, "the server stores %zu octets, want %zu:\n[%.*s]\n[%.*s]",
	    got, want, (int)got, stored, (int)want, norm);
	got = decode(wire, wlen, &rng, 7, 2 + (size_t)(fuzz_rand(&rng) % 9), stored);
	FUZZ_CHECK(got == want && memcmp(stored, norm, want) == 0, "in pieces, the server stores other octets");
	free(wire);
	free(again);
	free(norm);
	free(stored);
	return 0;
}
