/*
 * NAME
 *	fuzz_outbox_quote_name - an outbox file name made safe for Received:
 * DESCRIPTION
 *	Any local user names the files under outbox/, and the name goes into
 *	the comment of the Received: header of the queued message.  The input
 *	is such a name (up to its first NUL, as a file name ends).  With the
 *	room outbox.h promises (3 * strlen + 1) the whole name is written:
 *	printable ASCII only, no space, parenthesis, backslash, quote, CR or
 *	LF (nothing that could end the comment or the header), every '%'
 *	starting an upper-case %XX, and decoding the %XX gives the name back;
 *	the length returned is the string's.  With less room (a size taken
 *	from the input) the output is the longest prefix of the whole one
 *	that ends on a whole %XX and fits, NUL-terminated, and nothing is
 *	written past the room given; with none, nothing is written at all.
 */
#include "fuzz.h"
#include "common/outbox.h"

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes q (qlen octets) into out; returns the length, or -1 for a '%' not followed by upper-case hex. */
static long
decode(const char *q, size_t qlen, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < qlen; i++) {
		if (q[i] != '%') {
			out[o++] = q[i];
			continue;
		}
		if (qlen - i < 3 || hex_value(q[i + 1]) < 0 || hex_value(q[i + 2]) < 0)
			return -1;
		out[o++] = (char)(hex_value(q[i + 1]) << 4 | hex_value(q[i + 2]));
		i += 2;
	}
	return (long)o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *name = fuzz_cstr(data, size), *full, *part, *back;
	size_t len, room, n, i, cut;
	uint64_t rng = 0x2545f4914f6cdd1dull;
	long blen;

	if (name == NULL)
		return 0;
	len = strlen(name);
	full = malloc(3 * len + 1);		/* exactly what outbox.h promises is enough */
	back = malloc(len + 1);
	FUZZ_CHECK(full != NULL && back != NULL, "out of memory");
	n = outbox_quote_name(name, full, 3 * len + 1);
	FUZZ_CHECK(n <= 3 * len && strlen(full) == n, "returned %zu, wrote %zu", n, strlen(full));
	for (i = 0; i < n; i++)
		FUZZ_CHECK(full[i] > 0x20 && full[i] < 0x7f && strchr("()\\\"", full[i]) == NULL,
		    "octet 0x%02x at %zu of '%s'", (unsigned char)full[i], i, full);
	blen = decode(full, n, back);
	FUZZ_CHECK(blen >= 0, "'%s' has a '%%' that is no %%XX", full);
	FUZZ_CHECK((size_t)blen == len && memcmp(back, name, len) == 0, "'%s' decodes to another name", full);

	/* Less room: the longest whole prefix. */
	for (i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 0x100000001b3ull;
	room = (size_t)(fuzz_rand(&rng) % (3 * len + 2));
	part = malloc(room ? room : 1);
	FUZZ_CHECK(part != NULL, "out of memory");
	if (room == 0)
		part[0] = 'x';
	n = outbox_quote_name(name, part, room);
	if (room == 0) {
		FUZZ_CHECK(n == 0 && part[0] == 'x', "wrote into no room");
	} else {
		for (cut = 0; cut < strlen(full); cut += full[cut] == '%' ? 3 : 1)
			if (cut + (full[cut] == '%' ? 3 : 1) >= room)
				break;
		FUZZ_CHECK(n == cut && strlen(part) == n && memcmp(part, full, n) == 0,
		    "%zu octets of room: '%s', want the first %zu of '%s'", room, part, cut, full);
	}
	free(part);
	free(full);
	free(back);
	free(name);
	return 0;
}
