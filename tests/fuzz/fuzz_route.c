/*
 * NAME
 *	fuzz_route - MX rdata from the network, next-hop specs, the MX plan
 * DESCRIPTION
 *	The first input octet chooses the parser, the rest is its input:
 *	  0  route_mx_rdata_parse(): the rdata comes from a DNS answer.  It is
 *	     given in a buffer of exactly its length (ASan sees any overread).
 *	     An accepted name is "." or dot-separated labels of 1..63 letters,
 *	     digits, '-' and '_', at most ROUTE_HOST_MAX octets; written back
 *	     in wire form after the preference it gives the input exactly
 *	     (nothing skipped, nothing after the root label).
 *	  1  route_parse_nexthop() and route_parse_target() on the input as a
 *	     string: an accepted next hop, written back in the form its flags
 *	     say ("host:port", "[host]:port"), parses to the same next hop.
 *	  2  route_mx_plan() on up to ROUTE_MX_MAX + 4 records made from the
 *	     input (3 octets each: preference, host from a small set with "."
 *	     and names that differ only in case, so that duplicates occur),
 *	     "self" and max from the first octets, the shuffle from the input:
 *	     the hosts come out sorted by preference, each one of the records
 *	     (none lost, none twice: the lowest preferences first), without
 *	     self and what ranks with or after it; a refusal says why (a null
 *	     MX: "0 ." alone or only "." records; a loop: self ranks first).
 */
#include <errno.h>
#include <strings.h>

#include "fuzz.h"
#include "common/route.h"

static int
label_byte_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void
fuzz_rdata(const uint8_t *data, size_t size)
{
	unsigned char *rdata = malloc(size ? size : 1), *wire;
	struct route_mx mx;
	size_t len, w = 2, i = 0;

	FUZZ_CHECK(rdata != NULL, "out of memory");
	memcpy(rdata, data, size);
	if (route_mx_rdata_parse(size ? rdata : NULL, size, &mx) != 0) {
		free(rdata);
		return;
	}
	len = strlen(mx.host);
	FUZZ_CHECK(len >= 1 && len <= ROUTE_HOST_MAX, "a name of %zu octets", len);
	FUZZ_CHECK(mx.preference == ((unsigned)data[0] << 8 | data[1]), "preference %u", mx.preference);
	wire = malloc(len + 4);
	FUZZ_CHECK(wire != NULL, "out of memory");
	wire[0] = data[0];
	wire[1] = data[1];
	if (strcmp(mx.host, ".") != 0) {
		while (i < len) {		/* each label: 1..63 valid octets, then a dot or the end */
			size_t start = i;

			while (i < len && mx.host[i] != '.') {
				FUZZ_CHECK(label_byte_ok((unsigned char)mx.host[i]), "octet 0x%02x in '%s'",
				    (unsigned char)mx.host[i], mx.host);
				i++;
			}
			FUZZ_CHECK(i - start >= 1 && i - start <= 63, "a label of %zu octets in '%s'", i - start,
			    mx.host);
			wire[w++] = (unsigned char)(i - start);
			memcpy(wire + w, mx.host + start, i - start);
			w += i - start;
			if (i < len) {
				i++;
				FUZZ_CHECK(i < len, "'%s' ends with a dot", mx.host);
			}
		}
	}
	wire[w++] = 0;
	FUZZ_CHECK(w == size && memcmp(wire, data, size) == 0, "'%s' is not the %zu octets of rdata", mx.host, size);
	free(wire);
	free(rdata);
}

static void
check_nexthop_round_trip(const struct route_nexthop *nh, int target)
{
	struct route_nexthop back;
	char spec[ROUTE_HOST_MAX + 16];

	FUZZ_CHECK(nh->port >= 1 && nh->port <= 65535, "port %u", nh->port);
	if (nh->recipient_mx) {
		FUZZ_CHECK(target && nh->host[0] == '\0' && nh->mx_lookup, "recipient_mx from a next hop");
		snprintf(spec, sizeof(spec), "mx:%u", nh->port);
	} else {
		FUZZ_CHECK(nh->host[0] != '\0' && !(nh->literal && nh->mx_lookup), "host '%s' literal %d mx %d",
		    nh->host, nh->literal, nh->mx_lookup);
		snprintf(spec, sizeof(spec), nh->mx_lookup ? "%s:%u" : "[%s]:%u", nh->host, nh->port);
	}
	FUZZ_CHECK((target ? route_parse_target(spec, &back) : route_parse_nexthop(spec, &back)) == 0,
	    "'%s' does not parse back", spec);
	FUZZ_CHECK(strcmp(back.host, nh->host) == 0 && back.port == nh->port && back.mx_lookup == nh->mx_lookup &&
	    back.literal == nh->literal && back.recipient_mx == nh->recipient_mx, "'%s' parses to another next hop",
	    spec);
}

static void
fuzz_nexthop(const uint8_t *data, size_t size)
{
	char *spec = fuzz_cstr(data, size);
	struct route_nexthop nh;
	int r;

	if (spec == NULL)
		return;
	memset(&nh, 0x5a, sizeof(nh));
	if ((r = route_parse_nexthop(spec, &nh)) == 0)
		check_nexthop_round_trip(&nh, 0);
	else
		FUZZ_CHECK(r == -EINVAL, "errno %d", -r);
	memset(&nh, 0x5a, sizeof(nh));
	if ((r = route_parse_target(spec, &nh)) == 0)
		check_nexthop_round_trip(&nh, 1);
	else
		FUZZ_CHECK(r == -EINVAL, "errno %d", -r);
	free(spec);
}

static const char *const pool[] = {
	".", "mx1.example.org", "MX1.example.org", "mx2.example.org", "self.example.net", "backup.example.com",
	"mx3.example.org", "Self.Example.Net",
};
#define POOL_N	(sizeof(pool) / sizeof(pool[0]))

static uint32_t
input_rand(void *arg, uint32_t bound)
{
	return (uint32_t)(fuzz_rand(arg) % bound);
}

static void
fuzz_plan(const uint8_t *data, size_t size)
{
	struct route_mx mx[ROUTE_MX_MAX + 4], hosts[ROUTE_MX_MAX + 4], want[ROUTE_MX_MAX + 4];
	struct route_fail fail;
	const char *self;
	size_t n = 0, max, nhosts = 12345, nwant = 0, named, i, j, cut;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	int r, used[ROUTE_MX_MAX + 4] = { 0 };

	if (size < 2)
		return;
	memset(mx, 0, sizeof(mx));
	self = data[0] % 3 == 0 ? NULL : data[0] % 3 == 1 ? "" : pool[4 + data[0] / 3 % 4];
	max = data[1] % (ROUTE_MX_MAX + 6);
	for (i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 0x100000001b3ull;
	for (i = 2; i + 3 <= size && n < ROUTE_MX_MAX + 4; i += 3, n++) {
		mx[n].preference = (unsigned)data[i] << 8 | data[i + 1];
		if (data[i] >= 0xf0)
			mx[n].preference = data[i + 1] % 4;	/* many equal preferences */
		snprintf(mx[n].host, sizeof(mx[n].host), "%s", pool[data[i + 2] % POOL_N]);
	}
	memset(hosts, 0x5a, sizeof(hosts));
	memset(&fail, 0, sizeof(fail));
	r = route_mx_plan("example.org", self, mx, n, data[1] & 0x80 ? NULL : input_rand, &rng, hosts, max, &nhosts,
	    &fail);

	/* What RFC 5321 5.1 and route.h leave: the implicit MX, or the first ROUTE_MX_MAX named records. */
	if (n == 0) {
		want[nwant].preference = 0;
		snprintf(want[nwant++].host, sizeof(want[0].host), "example.org");
	}
	for (i = 0; i < n && nwant < ROUTE_MX_MAX; i++)
		if (strcmp(mx[i].host, ".") != 0)
			want[nwant++] = mx[i];
	named = nwant;
	if (self != NULL && self[0] != '\0') {
		unsigned best = UINT32_MAX;

		for (i = 0; i < nwant; i++)
			if (strcasecmp(want[i].host, self) == 0 && want[i].preference < best)
				best = want[i].preference;
		for (i = j = 0; i < nwant; i++)
			if (want[i].preference < best)
				want[j++] = want[i];
		nwant = j;
	}
	if (r != 0) {
		FUZZ_CHECK(r == -EPERM && nhosts == 0 && fail.text[0] != '\0', "errno %d, %zu hosts", -r, nhosts);
		if (fail.reply == REPLY_NULL_MX)	/* "0 ." alone, or "." records only */
			FUZZ_CHECK(n > 0 && named == 0, "a null MX out of %zu records, %zu named", n, named);
		else
			FUZZ_CHECK(fail.reply == REPLY_MAIL_LOOP && nwant == 0, "reply %d with %zu hosts left",
			    (int)fail.reply, nwant);
		return;
	}
	FUZZ_CHECK(!(n == 1 && mx[0].preference == 0 && strcmp(mx[0].host, ".") == 0), "a null MX accepted");
	cut = max < nwant ? max : nwant;
	FUZZ_CHECK(nhosts == cut, "%zu hosts of %zu left, max %zu", nhosts, nwant, max);
	for (i = 0; i < nhosts; i++) {
		FUZZ_CHECK(i == 0 || hosts[i - 1].preference <= hosts[i].preference, "not sorted at %zu", i);
		for (j = 0; j < nwant; j++)
			if (!used[j] && want[j].preference == hosts[i].preference &&
			    strcmp(want[j].host, hosts[i].host) == 0)
				break;
		FUZZ_CHECK(j < nwant, "host %zu (%u %s) is no record, or one given twice", i, hosts[i].preference,
		    hosts[i].host);
		used[j] = 1;
	}
	for (j = 0; j < nwant; j++)	/* what was left out ranks after what was kept */
		FUZZ_CHECK(used[j] || nhosts == 0 || want[j].preference >= hosts[nhosts - 1].preference,
		    "%u %s lost", want[j].preference, want[j].host);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_rdata(data + 1, size - 1);
		break;
	case 1:
		fuzz_nexthop(data + 1, size - 1);
		break;
	default:
		fuzz_plan(data + 1, size - 1);
		break;
	}
	return 0;
}
