/*
 * NAME
 *	test_route - unit tests of the routing decision (common/route.c)
 * SYNOPSIS
 *	test_route
 * DESCRIPTION
 *	Tables of next hop strings and what they parse into (MX lookup or
 *	not, literals, bad forms); of recipient domains and the route that
 *	route_pick() chooses from a [routes] table (exact, .parent, *,
 *	smarthost, empty smarthost = MX; address literals); of MX rdata byte strings, good and
 *	malformed (truncated, compression pointers, long labels, bytes after
 *	the name, bad characters); of MX answers and the host order that
 *	route_mx_plan() makes (preference order, equal preferences shuffled by
 *	an injected random source, implicit MX, null MX 556 5.1.10, this
 *	host in the list cut off with its preference, 554 5.4.6 when it is the
 *	best); and of
 *	DNS failures and their class (NXDOMAIN 550 5.1.2 for the recipient's
 *	domain, 451 4.4.3 otherwise).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "errmap.h"
#include "route.h"
#include "testutil.h"

/* ---- next hops ---- */

static const struct nh_case {
	const char     *spec;
	int		want;
	const char     *host;
	unsigned	port;
	bool		mx_lookup, literal;
} nh_cases[] = {
	{ "mail.example.org:587", 0, "mail.example.org", 587, true, false },
	{ "[mail.example.org]:587", 0, "mail.example.org", 587, false, false },
	{ "127.0.0.1:2525", 0, "127.0.0.1", 2525, false, true },
	{ "[127.0.0.1]:25", 0, "127.0.0.1", 25, false, true },
	{ "[::1]:25", 0, "::1", 25, false, true },
	{ "[2001:db8::1]:465", 0, "2001:db8::1", 465, false, true },
	{ "localhost:1", 0, "localhost", 1, true, false },
	{ "a.b:65535", 0, "a.b", 65535, true, false },
	{ "::1:25", -EINVAL, NULL, 0, false, false },		/* v6 needs brackets */
	{ "2001:db8::1:25", -EINVAL, NULL, 0, false, false },
	{ "mail.example.org", -EINVAL, NULL, 0, false, false },	/* port required */
	{ "mail.example.org:", -EINVAL, NULL, 0, false, false },
	{ "mail.example.org:0", -EINVAL, NULL, 0, false, false },
	{ "mail.example.org:65536", -EINVAL, NULL, 0, false, false },
	{ "mail.example.org:+25", -EINVAL, NULL, 0, false, false },
	{ "mail.example.org:25x", -EINVAL, NULL, 0, false, false },
	{ "mail.example.org:000025", -EINVAL, NULL, 0, false, false },
	{ ":25", -EINVAL, NULL, 0, false, false },
	{ "[]:25", -EINVAL, NULL, 0, false, false },
	{ "[mail.example.org:25", -EINVAL, NULL, 0, false, false },
	{ "[mail.example.org]25", -EINVAL, NULL, 0, false, false },
	{ "[[a]]:25", -EINVAL, NULL, 0, false, false },
	{ "mail_x!.org:25", -EINVAL, NULL, 0, false, false },
	{ "mail..example.org:25", -EINVAL, NULL, 0, false, false },
	{ "mail.example.org.:25", -EINVAL, NULL, 0, false, false },
	{ "", -EINVAL, NULL, 0, false, false },
};
#define N_NH_CASES	(sizeof(nh_cases) / sizeof(nh_cases[0]))

START_TEST(test_parse_nexthop)
{
	const struct nh_case *c = &nh_cases[_i];
	struct route_nexthop nh;
	int r = route_parse_nexthop(c->spec, &nh);

	ck_assert_msg(r == c->want, "route_parse_nexthop(\"%s\") = %d, want %d", c->spec, r, c->want);
	if (r != 0)
		return;
	ck_assert_str_eq(nh.host, c->host);
	ck_assert_uint_eq(nh.port, c->port);
	ck_assert_msg(nh.mx_lookup == c->mx_lookup, "%s: mx_lookup %d", c->spec, nh.mx_lookup);
	ck_assert_msg(nh.literal == c->literal, "%s: literal %d", c->spec, nh.literal);
	ck_assert(!nh.recipient_mx);
}
END_TEST

START_TEST(test_parse_nexthop_long_host)
{
	char spec[400], label[64];
	struct route_nexthop nh;

	memset(label, 'a', 63);
	label[63] = '\0';
	/* 4 labels of 63 + 3 dots = 255 bytes: fits; one more byte does not. */
	snprintf(spec, sizeof(spec), "%s.%s.%s.%s:25", label, label, label, label);
	ck_assert_int_eq(route_parse_nexthop(spec, &nh), 0);
	ck_assert_uint_eq(strlen(nh.host), 255);
	snprintf(spec, sizeof(spec), "a%s.%s.%s.%s:25", label, label, label, label);
	ck_assert_int_eq(route_parse_nexthop(spec, &nh), -EINVAL);
}
END_TEST

static const struct target_case {
	const char     *spec;
	int		want;
	unsigned	port;
	bool		recipient_mx;
} target_cases[] = {
	{ "mx", 0, 25, true },
	{ "MX", 0, 25, true },
	{ "mx:2525", 0, 2525, true },
	{ "mx:0", -EINVAL, 0, false },
	{ "mx:", -EINVAL, 0, false },
	{ "mx:x", -EINVAL, 0, false },
	{ "mxx", -EINVAL, 0, false },
	{ "mx.example.org:25", 0, 25, false },
	{ "[mx]:25", 0, 25, false },
	{ "direct", -EINVAL, 0, false },
};
#define N_TARGET_CASES	(sizeof(target_cases) / sizeof(target_cases[0]))

START_TEST(test_parse_target)
{
	const struct target_case *c = &target_cases[_i];
	struct route_nexthop nh;
	int r = route_parse_target(c->spec, &nh);

	ck_assert_msg(r == c->want, "route_parse_target(\"%s\") = %d, want %d", c->spec, r, c->want);
	if (r != 0)
		return;
	ck_assert_uint_eq(nh.port, c->port);
	ck_assert(nh.recipient_mx == c->recipient_mx);
	if (nh.recipient_mx)
		ck_assert(nh.mx_lookup && nh.host[0] == '\0');
}
END_TEST

static void add_route(struct cfg *cfg, const char *domain, const char *target);

/* ---- hold targets ([routes] hold) ---- */

static const struct hold_case {
	const char     *spec;
	int		want;
	bool		no_hop;
	const char     *host;
	unsigned	port;
	bool		recipient_mx;
} hold_cases[] = {
	{ "hold", 0, true, "", 0, false },
	{ "HOLD", 0, true, "", 0, false },
	{ "hold [192.0.2.1]:25", 0, false, "192.0.2.1", 25, false },
	{ "hold  mail.example.org:587", 0, false, "mail.example.org", 587, false },
	{ "hold mx", 0, false, "", 25, true },
	{ "hold mx:2526", 0, false, "", 2526, true },
	{ "hold hold", -EINVAL, false, NULL, 0, false },
	{ "hold hold 1.2.3.4:25", -EINVAL, false, NULL, 0, false },
	{ "hold nonsense", -EINVAL, false, NULL, 0, false },
	{ "holdx", -EINVAL, false, NULL, 0, false },
	{ "hold:25", 0, false, "hold", 25, false },	/* a host named hold */
	{ "hold.example.org:25", 0, false, "hold.example.org", 25, false },	/* a host, not the word */
};
#define N_HOLD_CASES	(sizeof(hold_cases) / sizeof(hold_cases[0]))

START_TEST(test_parse_hold)
{
	const struct hold_case *c = &hold_cases[_i];
	struct route_nexthop nh;
	int r = route_parse_target(c->spec, &nh);

	ck_assert_msg(r == c->want, "route_parse_target(\"%s\") = %d, want %d", c->spec, r, c->want);
	if (r != 0)
		return;
	ck_assert_msg(nh.hold == (strncasecmp(c->spec, "hold", 4) == 0 && (c->spec[4] == '\0' || c->spec[4] == ' ')),
	    "%s: hold", c->spec);
	ck_assert(nh.no_hop == c->no_hop);
	ck_assert_str_eq(nh.host, c->host);
	ck_assert_uint_eq(nh.port, c->port);
	ck_assert(nh.recipient_mx == c->recipient_mx);
}
END_TEST

/* ---- a route's own options (tls=, auth_plaintext=, tls_ca_file=) ---- */

static const struct opts_case {
	const char     *spec;
	int		want;
	const char     *target;	/* nh.target: the spec without its options */
	const char     *tls;
	enum route_choice auth_plaintext;
	const char     *ca;
} opts_cases[] = {
	{ "[smtp.example.org]:587", 0, "[smtp.example.org]:587", "", ROUTE_UNSET, "" },
	{ "[smtp.example.org]:587 tls=verify", 0, "[smtp.example.org]:587", "verify", ROUTE_UNSET, "" },
	{ "[smtp.example.org]:587  TLS=Encrypt\tauth_plaintext=yes ", 0, "[smtp.example.org]:587", "encrypt", ROUTE_YES, "" },
	{ "mx tls=may", 0, "mx", "may", ROUTE_UNSET, "" },
	{ "mx:2525 auth_plaintext=no", 0, "mx:2525", "", ROUTE_NO, "" },
	{ "192.0.2.1:465 tls=wrapper tls_ca_file=/etc/ca.pem", 0, "192.0.2.1:465", "wrapper", ROUTE_UNSET, "/etc/ca.pem" },
	{ "hold [b.example]:25 tls=none", 0, "hold [b.example]:25", "none", ROUTE_UNSET, "" },
	{ "hold tls=none", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },		/* nothing to secure */
	{ "mx tls=sometimes", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },
	{ "mx tls=verify tls=may", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },	/* twice */
	{ "mx auth_plaintext=maybe", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },
	{ "mx tls_ca_file=relative.pem", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },
	{ "mx color=blue", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },
	{ "mx tls=", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },
	{ "tls=verify", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },			/* no target */
	{ "mx tls=verify junk", -EINVAL, NULL, NULL, ROUTE_UNSET, NULL },		/* a word after the options */
};
#define N_OPTS_CASES	(sizeof(opts_cases) / sizeof(opts_cases[0]))

START_TEST(test_parse_options)
{
	const struct opts_case *c = &opts_cases[_i];
	struct route_nexthop nh;
	int r = route_parse_target(c->spec, &nh);

	ck_assert_msg(r == c->want, "route_parse_target(\"%s\") = %d, want %d", c->spec, r, c->want);
	if (r != 0)
		return;
	ck_assert_str_eq(nh.target, c->target);
	ck_assert_str_eq(nh.opts.tls, c->tls);
	ck_assert_int_eq(nh.opts.auth_plaintext, c->auth_plaintext);
	ck_assert_str_eq(nh.opts.tls_ca_file, c->ca);
}
END_TEST

START_TEST(test_pick_options)
{
	struct route_nexthop a, b;
	struct cfg cfg;

	cfg_defaults(&cfg);
	add_route(&cfg, "a.example", "[relay.example]:25 tls=encrypt");
	add_route(&cfg, "b.example", "[relay.example]:25 tls=none auth_plaintext=yes");
	ck_assert_int_eq(route_pick(&cfg, "a.example", &a), 0);
	ck_assert_int_eq(route_pick(&cfg, "b.example", &b), 0);
	/* One target (one credentials line), two policies. */
	ck_assert_str_eq(a.target, "[relay.example]:25");
	ck_assert_str_eq(b.target, "[relay.example]:25");
	ck_assert_str_eq(a.opts.tls, "encrypt");
	ck_assert_int_eq(b.opts.auth_plaintext, ROUTE_YES);
	ck_assert(!route_opts_equal(&a.opts, &b.opts));
	ck_assert(route_opts_equal(&a.opts, &a.opts));
	cfg_free(&cfg);
}
END_TEST

/* ---- ETRN nodes ---- */

static const struct node_case {
	const char     *arg;
	int		want;
	enum route_node_kind kind;
	const char     *name;
} node_cases[] = {
	{ "example.org", 0, ROUTE_NODE_DOMAIN, "example.org" },
	{ "@example.org", 0, ROUTE_NODE_SUBDOMAINS, "example.org" },
	{ "#deferred", 0, ROUTE_NODE_QUEUE, "deferred" },
	{ "#q-1_a.b", 0, ROUTE_NODE_QUEUE, "q-1_a.b" },
	{ "", -EINVAL, 0, NULL },
	{ "@", -EINVAL, 0, NULL },
	{ "#", -EINVAL, 0, NULL },
	{ "@@example.org", -EINVAL, 0, NULL },
	{ "#a/b", -EINVAL, 0, NULL },
	{ "#a b", -EINVAL, 0, NULL },
	{ "a..b", -EINVAL, 0, NULL },
	{ "[192.0.2.1]", -EINVAL, 0, NULL },
	{ "@[192.0.2.1]", -EINVAL, 0, NULL },
	{ "exa mple.org", -EINVAL, 0, NULL },
};
#define N_NODE_CASES	(sizeof(node_cases) / sizeof(node_cases[0]))

START_TEST(test_node_parse)
{
	const struct node_case *c = &node_cases[_i];
	struct route_node node;
	int r = route_node_parse(c->arg, &node);

	ck_assert_msg(r == c->want, "route_node_parse(\"%s\") = %d, want %d", c->arg, r, c->want);
	if (r != 0)
		return;
	ck_assert_int_eq(node.kind, c->kind);
	ck_assert_str_eq(node.name, c->name);
}
END_TEST

START_TEST(test_node_too_long)
{
	char arg[ROUTE_HOST_MAX + 3];
	struct route_node node;
	size_t i;

	for (i = 0; i < sizeof(arg) - 1; i++)
		arg[i] = (i % 60 == 59) ? '.' : 'a';
	arg[sizeof(arg) - 1] = '\0';
	arg[0] = '@';
	ck_assert_int_eq(route_node_parse(arg, &node), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_node_matches_and_hold)
{
	struct route_nexthop nh;
	struct route_node node;
	struct cfg cfg;

	cfg_defaults(&cfg);
	add_route(&cfg, "held.example", "hold [192.0.2.1]:25");
	add_route(&cfg, ".below.example", "hold");
	add_route(&cfg, "plain.example", "[192.0.2.2]:25");

	ck_assert_int_eq(route_node_parse("held.example", &node), 0);
	ck_assert(route_node_matches(&node, "HELD.example"));
	ck_assert(!route_node_matches(&node, "a.held.example"));
	ck_assert(!route_node_matches(&node, "xheld.example"));
	ck_assert_int_eq(route_node_hold(&cfg, &node, &nh), 0);
	ck_assert(nh.hold && !nh.no_hop);
	ck_assert_str_eq(nh.host, "192.0.2.1");

	ck_assert_int_eq(route_node_parse("@held.example", &node), 0);
	ck_assert(route_node_matches(&node, "held.example"));
	ck_assert(route_node_matches(&node, "a.b.held.example"));
	ck_assert(!route_node_matches(&node, "aheld.example"));

	/* "@below.example": the held ".below.example" route counts; "below.example" alone is not held */
	ck_assert_int_eq(route_node_parse("@below.example", &node), 0);
	ck_assert_int_eq(route_node_hold(&cfg, &node, &nh), 0);
	ck_assert(nh.no_hop);
	ck_assert_int_eq(route_node_parse("below.example", &node), 0);
	ck_assert_int_eq(route_node_hold(&cfg, &node, &nh), -ENOENT);
	ck_assert_int_eq(route_node_parse("x.below.example", &node), 0);
	ck_assert_int_eq(route_node_hold(&cfg, &node, &nh), 0);

	ck_assert_int_eq(route_node_parse("plain.example", &node), 0);
	ck_assert_int_eq(route_node_hold(&cfg, &node, &nh), -ENOENT);
	ck_assert_int_eq(route_node_parse("#deferred", &node), 0);
	ck_assert(!route_node_matches(&node, "deferred"));
	ck_assert_int_eq(route_node_hold(&cfg, &node, &nh), -ENOENT);
	cfg_free(&cfg);
}
END_TEST

/* ---- ATRN's domain list ---- */

static const struct list_case {
	const char     *arg;
	int		want;
	size_t		n;
	const char     *last;
} list_cases[] = {
	{ "", 0, 0, NULL },
	{ "a.example", 0, 1, "a.example" },
	{ "a.example,b.example,c.example", 0, 3, "c.example" },
	{ "a.example,", -EINVAL, 0, NULL },
	{ ",a.example", -EINVAL, 0, NULL },
	{ "a.example,,b.example", -EINVAL, 0, NULL },
	{ "a.example, b.example", -EINVAL, 0, NULL },
	{ "[192.0.2.1]", -EINVAL, 0, NULL },
	{ "a..b", -EINVAL, 0, NULL },
	{ "a,b,c,d,e", -E2BIG, 0, NULL },
};
#define N_LIST_CASES	(sizeof(list_cases) / sizeof(list_cases[0]))

START_TEST(test_domain_list)
{
	const struct list_case *c = &list_cases[_i];
	char domains[4][ROUTE_HOST_MAX + 1];
	size_t n = 99;
	int r = route_domain_list_parse(c->arg, domains, 4, &n);

	ck_assert_msg(r == c->want, "route_domain_list_parse(\"%s\") = %d, want %d", c->arg, r, c->want);
	if (r != 0)
		return;
	ck_assert_uint_eq(n, c->n);
	if (c->last != NULL)
		ck_assert_str_eq(domains[n - 1], c->last);
}
END_TEST

/* ---- route_pick ---- */

static const struct pick_case {
	const char     *smarthost;
	bool		wildcard;	/* add "* = [star.example]:26" */
	const char     *domain;
	int		want;
	const char     *host;
	unsigned	port;
	bool		mx_lookup, recipient_mx;
} pick_cases[] = {
	/* exact, case-insensitive */
	{ "127.0.0.1:2525", true, "example.org", 0, "sub.example.net", 587, false, false },
	{ "127.0.0.1:2525", true, "EXAMPLE.Org", 0, "sub.example.net", 587, false, false },
	/* .example.org covers names below it only; the nearest parent wins */
	{ "127.0.0.1:2525", true, "a.example.org", 0, "a.example.org", 2525, true, true },
	{ "127.0.0.1:2525", true, "x.y.example.org", 0, "x.y.example.org", 2525, true, true },
	{ "127.0.0.1:2525", true, "x.deep.example.org", 0, "deep.relay.example", 25, true, false },
	{ "127.0.0.1:2525", true, "deep.example.org", 0, "deep.example.org", 2525, true, true },
	{ "127.0.0.1:2525", true, "notexample.org", 0, "star.example", 26, false, false },
	/* *, then the smarthost, then MX */
	{ "127.0.0.1:2525", true, "example.com", 0, "star.example", 26, false, false },
	{ "127.0.0.1:2525", false, "example.com", 0, "127.0.0.1", 2525, false, false },
	{ "[::1]:2526", false, "example.com", 0, "::1", 2526, false, false },
	{ "relay.example.net:25", false, "example.com", 0, "relay.example.net", 25, true, false },
	{ "", false, "example.com", 0, "example.com", 25, true, true },
	{ "", false, "literal.example", 0, "192.0.2.9", 25, false, false },
	/* address literals: only * and the smarthost apply; by MX they are the address */
	{ "", false, "[192.0.2.7]", 0, "192.0.2.7", 25, false, false },
	{ "", false, "[IPv6:2001:db8::7]", 0, "2001:db8::7", 25, false, false },
	{ "", false, "[ipv6:::1]", 0, "::1", 25, false, false },
	{ "127.0.0.1:2525", false, "[192.0.2.7]", 0, "127.0.0.1", 2525, false, false },
	{ "127.0.0.1:2525", true, "[192.0.2.7]", 0, "star.example", 26, false, false },
	/* domains that are no domains */
	{ "", false, "[127.0.0.1", -EINVAL, NULL, 0, false, false },
	{ "", false, "[999.0.0.1]", -EINVAL, NULL, 0, false, false },
	{ "", false, "[2001:db8::7]", -EINVAL, NULL, 0, false, false },
	{ "", false, "a..b", -EINVAL, NULL, 0, false, false },
	{ "", false, "", -EINVAL, NULL, 0, false, false },
};
#define N_PICK_CASES	(sizeof(pick_cases) / sizeof(pick_cases[0]))

static void
add_route(struct cfg *cfg, const char *domain, const char *target)
{
	ck_assert_uint_lt(cfg->n_routes, CFG_MAX_ROUTES);
	cfg->routes[cfg->n_routes].domain = strdup(domain);
	cfg->routes[cfg->n_routes].target = strdup(target);
	cfg->n_routes++;
}

static bool
host_is_address(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

START_TEST(test_pick)
{
	const struct pick_case *c = &pick_cases[_i];
	struct route_nexthop nh;
	struct cfg cfg;
	int r;

	cfg_defaults(&cfg);
	free(cfg.smarthost);
	cfg.smarthost = strdup(c->smarthost);
	add_route(&cfg, ".example.org", "mx:2525");
	add_route(&cfg, "example.org", "[sub.example.net]:587");
	add_route(&cfg, ".deep.example.org", "deep.relay.example:25");
	add_route(&cfg, "literal.example", "192.0.2.9:25");
	if (c->wildcard)
		add_route(&cfg, "*", "[star.example]:26");
	r = route_pick(&cfg, c->domain, &nh);
	ck_assert_msg(r == c->want, "route_pick(%s) = %d, want %d", c->domain, r, c->want);
	if (r == 0) {
		ck_assert_str_eq(nh.host, c->host);
		ck_assert_uint_eq(nh.port, c->port);
		ck_assert_msg(nh.mx_lookup == c->mx_lookup, "%s: mx_lookup %d", c->domain, nh.mx_lookup);
		ck_assert_msg(nh.recipient_mx == c->recipient_mx, "%s: recipient_mx %d", c->domain, nh.recipient_mx);
		ck_assert_msg(nh.literal == host_is_address(c->host), "%s: literal %d", c->domain, nh.literal);
	}
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_pick_long_domain)
{
	char domain[300];
	struct route_nexthop nh;
	struct cfg cfg;

	cfg_defaults(&cfg);
	memset(domain, 'a', sizeof(domain) - 1);
	domain[sizeof(domain) - 1] = '\0';
	ck_assert_int_eq(route_pick(&cfg, domain, &nh), -ENAMETOOLONG);
	cfg_free(&cfg);
}
END_TEST

/* ---- MX rdata ---- */

#define RD(...)	{ __VA_ARGS__ }
static const struct rdata_case {
	const char     *what;
	unsigned char	data[32];
	size_t		len;
	int		want;
	unsigned	pref;
	const char     *host;
} rdata_cases[] = {
	{ "simple", RD(0, 10, 2, 'm', 'x', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0), 14, 0, 10, "mx.example" },
	{ "big preference", RD(0xff, 0xfe, 1, 'a', 0), 5, 0, 65534, "a" },
	{ "null MX", RD(0, 0, 0), 3, 0, 0, "." },
	{ "digits hyphen underscore", RD(1, 0, 5, 'a', '-', '1', '_', 'Z', 0), 9, 0, 256, "a-1_Z" },
	{ "empty", RD(0), 0, -EBADMSG, 0, NULL },
	{ "preference only", RD(0, 10), 2, -EBADMSG, 0, NULL },
	{ "no root label", RD(0, 10, 2, 'm', 'x'), 5, -EBADMSG, 0, NULL },
	{ "label past the end", RD(0, 10, 9, 'm', 'x', 0), 6, -EBADMSG, 0, NULL },
	{ "compression pointer", RD(0, 10, 0xc0, 12), 4, -EBADMSG, 0, NULL },
	{ "pointer after a label", RD(0, 10, 1, 'a', 0xc0, 12), 6, -EBADMSG, 0, NULL },
	{ "extended label type", RD(0, 10, 0x41, 'a', 0), 5, -EBADMSG, 0, NULL },
	{ "bytes after the name", RD(0, 10, 1, 'a', 0, 'x'), 6, -EBADMSG, 0, NULL },
	{ "a dot inside a label", RD(0, 10, 3, 'a', '.', 'b', 0), 7, -EBADMSG, 0, NULL },
	{ "a NUL inside a label", RD(0, 10, 3, 'a', 0, 'b', 0), 7, -EBADMSG, 0, NULL },
	{ "a space", RD(0, 10, 2, 'a', ' ', 0), 6, -EBADMSG, 0, NULL },
	{ "8-bit byte", RD(0, 10, 2, 'a', 0xe9, 0), 6, -EBADMSG, 0, NULL },
	{ "a newline", RD(0, 10, 2, 'a', '\n', 0), 6, -EBADMSG, 0, NULL },
};
#define N_RDATA_CASES	(sizeof(rdata_cases) / sizeof(rdata_cases[0]))

START_TEST(test_rdata)
{
	const struct rdata_case *c = &rdata_cases[_i];
	struct route_mx mx;
	int r = route_mx_rdata_parse(c->data, c->len, &mx);

	ck_assert_msg(r == c->want, "%s: route_mx_rdata_parse = %d, want %d", c->what, r, c->want);
	if (r == 0) {
		ck_assert_uint_eq(mx.preference, c->pref);
		ck_assert_str_eq(mx.host, c->host);
	}
}
END_TEST

/* Names of 255 bytes fit, 256 do not; 63-byte labels fit, 64 do not. */
START_TEST(test_rdata_lengths)
{
	unsigned char buf[2 + 300];
	struct route_mx mx;
	size_t len, i;

	/* 4 labels of 63 = 252 + 3 dots = 255 text bytes. */
	buf[0] = 0;
	buf[1] = 5;
	len = 2;
	for (i = 0; i < 4; i++) {
		buf[len++] = 63;
		memset(buf + len, 'a' + (int)i, 63);
		len += 63;
	}
	buf[len++] = 0;
	ck_assert_int_eq(route_mx_rdata_parse(buf, len, &mx), 0);
	ck_assert_uint_eq(strlen(mx.host), 255);
	ck_assert_int_eq(mx.host[63], '.');
	/* One more label of 1: 257 text bytes. */
	buf[len - 1] = 1;
	buf[len++] = 'z';
	buf[len++] = 0;
	ck_assert_int_eq(route_mx_rdata_parse(buf, len, &mx), -EBADMSG);
	/* A 64-byte label is a reserved label type. */
	buf[2] = 64;
	ck_assert_int_eq(route_mx_rdata_parse(buf, 2 + 1 + 64 + 1, &mx), -EBADMSG);
	ck_assert_int_eq(route_mx_rdata_parse(NULL, 0, &mx), -EBADMSG);
	/* A compression pointer (0xc0) followed by enough bytes to pass as a 192-byte label. */
	buf[2] = 0xc0;
	memset(buf + 3, 'a', 192);
	buf[3 + 192] = 0;
	ck_assert_int_eq(route_mx_rdata_parse(buf, 3 + 192 + 1, &mx), -EBADMSG);
	/* The same with 63, the longest label, is a name. */
	buf[2] = 63;
	buf[3 + 63] = 0;
	ck_assert_int_eq(route_mx_rdata_parse(buf, 3 + 63 + 1, &mx), 0);
}
END_TEST

/* ---- MX order ---- */

/* A scripted random source: returns the next value of a list, modulo bound. */
struct script {
	const uint32_t *v;
	size_t		n, at;
};

static uint32_t
scripted(void *arg, uint32_t bound)
{
	struct script *s = arg;
	uint32_t v = s->n ? s->v[s->at++ % s->n] : 0;

	return v % bound;
}

/* Always the last index: a Fisher-Yates that is the identity. */
static uint32_t
keep_order(void *arg, uint32_t bound)
{
	(void)arg;
	return bound - 1;
}

#define MX(p, h)	{ p, h }
static const struct plan_case {
	const char     *what;
	struct route_mx	mx[6];
	size_t		n;
	bool		shuffle_identity;	/* keep_order, else scripted with zeros */
	size_t		max;
	int		want;
	enum reply_id	reply;		/* for failures */
	const char     *hosts[6];	/* expected order; hosts[0] is a part of the text of a failure */
	size_t		nhosts;
	const char     *self;		/* this host's name, or NULL */
} plan_cases[] = {
	{ "sorted by preference", { MX(30, "c"), MX(10, "a"), MX(20, "b") }, 3, true, 8, 0, 0,
	  { "a", "b", "c" }, 3, NULL },
	{ "the answer's rotation does not matter", { MX(20, "b"), MX(30, "c"), MX(10, "a") }, 3, true, 8, 0, 0,
	  { "a", "b", "c" }, 3, NULL },
	{ "preference 0 first", { MX(5, "b"), MX(0, "a") }, 2, true, 8, 0, 0, { "a", "b" }, 2, NULL },
	{ "max cuts the highest preferences", { MX(30, "c"), MX(10, "a"), MX(20, "b") }, 3, true, 2, 0, 0,
	  { "a", "b" }, 2, NULL },
	{ "no MX: implicit MX", { MX(0, "") }, 0, true, 8, 0, 0, { "dom.example" }, 1, NULL },
	{ "null MX", { MX(0, ".") }, 1, true, 8, -EPERM, REPLY_NULL_MX, { "has a null MX (RFC 7505)" }, 0, NULL },
	{ "null MX at preference 10 is no host", { MX(10, ".") }, 1, true, 8, -EPERM, REPLY_NULL_MX,
	  { "only null MX records" }, 0, NULL },
	{ "two null MX", { MX(0, "."), MX(0, ".") }, 2, true, 8, -EPERM, REPLY_NULL_MX, { "only null MX records" }, 0, NULL },
	{ "\".\" among real hosts is dropped", { MX(0, "."), MX(10, "a") }, 2, true, 8, 0, 0, { "a" }, 1, NULL },
	{ "equal preferences stay together", { MX(20, "x"), MX(10, "a"), MX(20, "y"), MX(10, "b") }, 4, true, 8,
	  0, 0, { "a", "b", "x", "y" }, 4, NULL },
	/* RFC 5321 5.1: this host and every host at its preference or above are dropped */
	{ "self is the last MX", { MX(10, "a"), MX(20, "me.example"), MX(30, "c") }, 3, true, 8, 0, 0, { "a" }, 1,
	  "me.example" },
	{ "self shares a preference", { MX(10, "a"), MX(20, "b"), MX(20, "ME.example") }, 3, true, 8, 0, 0, { "a" }, 1,
	  "me.example" },
	{ "self is the best MX", { MX(20, "b"), MX(10, "me.example") }, 2, true, 8, -EPERM, REPLY_MAIL_LOOP,
	  { "loops back to myself" }, 0, "me.example" },
	{ "self ties for the best MX", { MX(10, "b"), MX(10, "me.example") }, 2, true, 8, -EPERM, REPLY_MAIL_LOOP,
	  { "loops back to myself" }, 0, "me.example" },
	{ "self not in the list", { MX(10, "a"), MX(20, "b") }, 2, true, 8, 0, 0, { "a", "b" }, 2, "me.example" },
	{ "implicit MX is self", { MX(0, "") }, 0, true, 8, -EPERM, REPLY_MAIL_LOOP, { "loops back" }, 0, "dom.example" },
	/* scripted zeros: Fisher-Yates swaps each last with the first: a b x y -> rotations */
	{ "shuffled equal preferences", { MX(10, "a"), MX(10, "b"), MX(10, "c") }, 3, false, 8, 0, 0,
	  { "b", "c", "a" }, 3, NULL },
};
#define N_PLAN_CASES	(sizeof(plan_cases) / sizeof(plan_cases[0]))

START_TEST(test_plan)
{
	const struct plan_case *c = &plan_cases[_i];
	static const uint32_t zeros[] = { 0 };
	struct script s = { zeros, 1, 0 };
	struct route_mx hosts[8];
	struct route_fail fail = { 0 };
	size_t n = 99, i;
	int r;

	r = route_mx_plan("dom.example", c->self, c->mx, c->n, c->shuffle_identity ? keep_order : scripted,
	    c->shuffle_identity ? NULL : &s, hosts, c->max, &n, &fail);
	ck_assert_msg(r == c->want, "%s: route_mx_plan = %d, want %d", c->what, r, c->want);
	if (r != 0) {
		ck_assert_int_eq(fail.reply, c->reply);
		if (c->reply == REPLY_NULL_MX) {
			ck_assert_int_eq(errmap_get(fail.reply)->code, 556);
			ck_assert_str_eq(errmap_get(fail.reply)->esc, "5.1.10");
		} else {
			ck_assert_int_eq(errmap_get(fail.reply)->code, 554);
			ck_assert_str_eq(errmap_get(fail.reply)->esc, "5.4.6");
		}
		ck_assert_msg(strstr(fail.text, "dom.example") != NULL, "%s", fail.text);
		ck_assert_msg(strstr(fail.text, c->hosts[0]) != NULL, "%s: \"%s\" lacks \"%s\"", c->what, fail.text,
		    c->hosts[0]);
		ck_assert_uint_eq(n, 0);
		return;
	}
	ck_assert_msg(n == c->nhosts, "%s: %zu hosts, want %zu", c->what, n, c->nhosts);
	for (i = 0; i < n; i++)
		ck_assert_msg(strcmp(hosts[i].host, c->hosts[i]) == 0, "%s: host %zu is %s, want %s",
		    c->what, i, hosts[i].host, c->hosts[i]);
}
END_TEST

/* Every order of three equal preferences comes out of some random source, and each one only. */
START_TEST(test_plan_shuffle_reaches_every_order)
{
	const struct route_mx mx[] = { MX(10, "a"), MX(10, "b"), MX(10, "c"), MX(5, "first"), MX(20, "last") };
	uint32_t v[2];
	struct script s = { v, 2, 0 };
	struct route_mx hosts[8];
	struct route_fail fail;
	char seen[6][8];
	size_t n, nseen = 0, i, k;
	uint32_t a, b;

	/* The three equals sit between "first" and "last" whatever the source says. */
	for (a = 0; a < 5; a++) {
		for (b = 0; b < 5; b++) {
			char order[8];

			v[0] = a;
			v[1] = b;
			s.at = 0;
			ck_assert_int_eq(route_mx_plan("d.example", NULL, mx, 5, scripted, &s, hosts, 8, &n, &fail), 0);
			ck_assert_uint_eq(n, 5);
			ck_assert_str_eq(hosts[0].host, "first");
			ck_assert_str_eq(hosts[4].host, "last");
			for (i = 1; i < 4; i++)
				order[i - 1] = hosts[i].host[0];
			order[3] = '\0';
			for (k = 0; k < nseen && strcmp(seen[k], order) != 0; k++)
				;
			if (k == nseen && nseen < 6)
				snprintf(seen[nseen++], sizeof(seen[0]), "%s", order);
		}
	}
	ck_assert_uint_eq(nseen, 6);
}
END_TEST

/* A random source that answers out of range must not index out of the array. */
static uint32_t
too_big(void *arg, uint32_t bound)
{
	(void)arg;
	return bound + 7;
}

START_TEST(test_plan_bad_random_source)
{
	const struct route_mx mx[] = { MX(10, "a"), MX(10, "b") };
	struct route_mx hosts[2];
	struct route_fail fail;
	size_t n;

	ck_assert_int_eq(route_mx_plan("d.example", NULL, mx, 2, too_big, NULL, hosts, 2, &n, &fail), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(route_mx_plan("d.example", NULL, mx, 2, NULL, NULL, hosts, 2, &n, &fail), 0);
	ck_assert_str_eq(hosts[0].host, "a");
}
END_TEST

/* ---- DNS failures ---- */

static const struct fail_case {
	const char     *target;		/* route_parse_target() */
	const char     *domain;		/* route_pick fills host for mx */
	const char     *qname, *qtype;
	enum route_dns_rcode rc;
	int		want;
	int		code;
	const char     *esc;
	const char     *text;
} fail_cases[] = {
	{ "mx", "gone.example", "gone.example", "MX", ROUTE_DNS_NXDOMAIN, -EPERM, 550, "5.1.2",
	  "MX lookup of gone.example: NXDOMAIN" },
	{ "mx", "Gone.Example", "gone.example", "MX", ROUTE_DNS_NXDOMAIN, -EPERM, 550, "5.1.2", "NXDOMAIN" },
	{ "mx", "d.example", "d.example", "MX", ROUTE_DNS_SERVFAIL, -EAGAIN, 451, "4.4.3", "SERVFAIL" },
	{ "mx", "d.example", "d.example", "MX", ROUTE_DNS_TIMEOUT, -EAGAIN, 451, "4.4.3", "no answer in time" },
	{ "mx", "d.example", "d.example", "MX", ROUTE_DNS_OTHER, -EAGAIN, 451, "4.4.3", "resolver error" },
	/* an MX host that does not exist is the domain owner's fault, but may be fixed: defer */
	{ "mx", "d.example", "mx1.d.example", "A", ROUTE_DNS_NXDOMAIN, -EAGAIN, 451, "4.4.3",
	  "A lookup of mx1.d.example: NXDOMAIN" },
	/* a configured host that does not exist: fix the configuration, the queue waits */
	{ "relay.example:25", NULL, "relay.example", "MX", ROUTE_DNS_NXDOMAIN, -EAGAIN, 451, "4.4.3", "NXDOMAIN" },
	{ "[relay.example]:25", NULL, "relay.example", "AAAA", ROUTE_DNS_NXDOMAIN, -EAGAIN, 451, "4.4.3",
	  "AAAA lookup" },
};
#define N_FAIL_CASES	(sizeof(fail_cases) / sizeof(fail_cases[0]))

START_TEST(test_dns_fail)
{
	const struct fail_case *c = &fail_cases[_i];
	struct route_nexthop nh;
	struct route_fail fail;
	const struct errmap_reply *row;
	int r;

	ck_assert_int_eq(route_parse_target(c->target, &nh), 0);
	if (c->domain != NULL)
		snprintf(nh.host, sizeof(nh.host), "%s", c->domain);
	r = route_dns_fail(&nh, c->qname, c->qtype, c->rc, &fail);
	ck_assert_msg(r == c->want, "case %d: %d, want %d", _i, r, c->want);
	row = errmap_get(fail.reply);
	ck_assert_int_eq(row->code, c->code);
	ck_assert_str_eq(row->esc, c->esc);
	ck_assert_msg(strstr(fail.text, c->text) != NULL, "case %d: text \"%s\" lacks \"%s\"", _i, fail.text, c->text);
}
END_TEST

START_TEST(test_no_address)
{
	struct route_nexthop nh;
	struct route_fail fail;

	ck_assert_int_eq(route_parse_target("mx", &nh), 0);
	snprintf(nh.host, sizeof(nh.host), "d.example");
	ck_assert_int_eq(route_no_address(&nh, false, "mx1.d.example: no A or AAAA", &fail), -EPERM);
	ck_assert_int_eq(errmap_get(fail.reply)->code, 550);
	ck_assert_str_eq(errmap_get(fail.reply)->esc, "5.4.4");
	ck_assert_msg(strstr(fail.text, "d.example: mx1.d.example: no A or AAAA") != NULL, "%s", fail.text);
	ck_assert_int_eq(route_no_address(&nh, true, NULL, &fail), -EAGAIN);
	ck_assert_str_eq(errmap_get(fail.reply)->esc, "4.4.3");
	ck_assert_int_eq(route_parse_target("[relay.example]:25", &nh), 0);
	ck_assert_int_eq(route_no_address(&nh, false, NULL, &fail), -EAGAIN);
	ck_assert_int_eq(errmap_get(fail.reply)->code, 451);
}
END_TEST

static Suite *
route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc;

	tc = tcase_create("nexthop");
	tcase_add_loop_test(tc, test_parse_nexthop, 0, N_NH_CASES);
	tcase_add_test(tc, test_parse_nexthop_long_host);
	tcase_add_loop_test(tc, test_parse_target, 0, N_TARGET_CASES);
	tcase_add_loop_test(tc, test_parse_hold, 0, N_HOLD_CASES);
	tcase_add_loop_test(tc, test_node_parse, 0, N_NODE_CASES);
	tcase_add_test(tc, test_node_too_long);
	tcase_add_loop_test(tc, test_parse_options, 0, N_OPTS_CASES);
	tcase_add_test(tc, test_pick_options);
	tcase_add_test(tc, test_node_matches_and_hold);
	tcase_add_loop_test(tc, test_domain_list, 0, N_LIST_CASES);
	tcase_add_loop_test(tc, test_pick, 0, N_PICK_CASES);
	tcase_add_test(tc, test_pick_long_domain);
	suite_add_tcase(s, tc);

	tc = tcase_create("mx");
	tcase_add_loop_test(tc, test_rdata, 0, N_RDATA_CASES);
	tcase_add_test(tc, test_rdata_lengths);
	tcase_add_loop_test(tc, test_plan, 0, N_PLAN_CASES);
	tcase_add_test(tc, test_plan_shuffle_reaches_every_order);
	tcase_add_test(tc, test_plan_bad_random_source);
	tcase_add_loop_test(tc, test_dns_fail, 0, N_FAIL_CASES);
	tcase_add_test(tc, test_no_address);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(route_suite());
}
