/*
 * NAME
 *	route - where a message goes: next hops, per-domain routes, MX order
 * DESCRIPTION
 *	See route.h.  Pure functions: the DNS I/O is in smtpd/dns.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "cfg.h"
#include "route.h"

static bool
is_address_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static bool
is_ipv6_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET6, host, buf) == 1;
}

/* "25" -> 25; 1..65535, digits only. */
static int
parse_port(const char *s, unsigned *port)
{
	unsigned long p = 0;
	const char *c;

	if (*s == '\0' || strlen(s) > 5)
		return -EINVAL;
	for (c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return -EINVAL;
		p = p * 10 + (unsigned long)(*c - '0');
	}
	if (p == 0 || p > 65535)
		return -EINVAL;
	*port = (unsigned)p;
	return 0;
}

int
route_parse_nexthop(const char *spec, struct route_nexthop *nh)
{
	const char *hstart = spec, *hend, *colon;
	bool bracketed = spec[0] == '[';
	size_t hlen;

	memset(nh, 0, sizeof(*nh));
	if (bracketed) {
		hstart = spec + 1;
		if ((hend = strchr(hstart, ']')) == NULL || hend[1] != ':')
			return -EINVAL;
		colon = hend + 1;
	} else {
		/* One colon only: an IPv6 address must be written in brackets. */
		if ((colon = strchr(spec, ':')) == NULL || strchr(colon + 1, ':') != NULL)
			return -EINVAL;
		hend = colon;
	}
	hlen = (size_t)(hend - hstart);
	if (hlen == 0 || hlen > ROUTE_HOST_MAX || parse_port(colon + 1, &nh->port) < 0)
		return -EINVAL;
	memcpy(nh->host, hstart, hlen);
	nh->host[hlen] = '\0';
	if (is_address_literal(nh->host)) {
		if (!bracketed && is_ipv6_literal(nh->host))
			return -EINVAL;
		nh->literal = true;
		return 0;
	}
	if (nh->host[0] == '[' || addr_domain_valid(nh->host) < 0)
		return -EINVAL;
	nh->mx_lookup = !bracketed;
	return 0;
}

#define ROUTE_HOLD	"hold"

/* The target without options: a next hop, "mx[:port]", "hold [target]". */
static int
route_parse_hop(const char *spec, struct route_nexthop *nh)
{
	size_t hl = strlen(ROUTE_HOLD);
	int r;

	if (strncasecmp(spec, ROUTE_HOLD, hl) == 0 && (spec[hl] == '\0' || spec[hl] == ' ')) {
		const char *rest = spec + hl;

		while (*rest == ' ')
			rest++;
		if (*rest == '\0') {
			memset(nh, 0, sizeof(*nh));
			nh->hold = nh->no_hop = true;
			return 0;
		}
		if (strncasecmp(rest, ROUTE_HOLD, hl) == 0)
			return -EINVAL;		/* "hold hold" */
		if ((r = route_parse_hop(rest, nh)) < 0)
			return r;
		nh->hold = true;
		return 0;
	}
	if (strcasecmp(spec, "mx") == 0 || strncasecmp(spec, "mx:", 3) == 0) {
		memset(nh, 0, sizeof(*nh));
		nh->port = ROUTE_DEFAULT_PORT;
		if (spec[2] == ':' && parse_port(spec + 3, &nh->port) < 0)
			return -EINVAL;
		nh->mx_lookup = true;
		nh->recipient_mx = true;
		return 0;
	}
	return route_parse_nexthop(spec, nh);
}

static bool
opt_is(const char *word, const char *key, const char **value)
{
	size_t kl = strlen(key);

	if (strncasecmp(word, key, kl) != 0 || word[kl] != '=')
		return false;
	*value = word + kl + 1;
	return true;
}

/* tls.h's policy names, spelled here as in cfg.c (common/ does not link OpenSSL). */
static int
opt_tls(const char *value, struct route_opts *o)
{
	static const char *const names[] = { "none", "may", "encrypt", "verify", "wrapper" };
	size_t i;

	if (o->tls[0] != '\0')
		return -EINVAL;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(value, names[i]) == 0) {
			snprintf(o->tls, sizeof(o->tls), "%s", names[i]);
			return 0;
		}
	return -EINVAL;
}

static int
opt_auth_plaintext(const char *value, struct route_opts *o)
{
	if (o->auth_plaintext != ROUTE_UNSET)
		return -EINVAL;
	if (strcasecmp(value, "yes") == 0)
		o->auth_plaintext = ROUTE_YES;
	else if (strcasecmp(value, "no") == 0)
		o->auth_plaintext = ROUTE_NO;
	else
		return -EINVAL;
	return 0;
}

static int
opt_ca_file(const char *value, struct route_opts *o)
{
	if (o->tls_ca_file[0] != '\0' || value[0] != '/' || strlen(value) >= sizeof(o->tls_ca_file))
		return -EINVAL;
	snprintf(o->tls_ca_file, sizeof(o->tls_ca_file), "%s", value);
	return 0;
}

/* One "key=value" word of a route's options. */
static int
route_parse_opt(const char *word, struct route_opts *o)
{
	const char *v;

	if (opt_is(word, "tls", &v))
		return opt_tls(v, o);
	if (opt_is(word, "auth_plaintext", &v))
		return opt_auth_plaintext(v, o);
	if (opt_is(word, "tls_ca_file", &v))
		return opt_ca_file(v, o);
	return -EINVAL;
}

/* Where the options start: the first blank-separated word with '=' (no target has one), or the end. */
static size_t
route_opts_start(const char *spec)
{
	const char *w = spec, *e;

	for (;;) {
		while (*w == ' ' || *w == '\t')
			w++;
		if (*w == '\0')
			return strlen(spec);
		e = w + strcspn(w, " \t");
		if (memchr(w, '=', (size_t)(e - w)) != NULL)
			return (size_t)(w - spec);
		w = e;
	}
}

int
route_parse_target(const char *spec, struct route_nexthop *nh)
{
	char buf[ROUTE_SPEC_MAX], *word, *save = NULL;
	struct route_opts o = { .auth_plaintext = ROUTE_UNSET };
	size_t len = strlen(spec), at;
	int r;

	if (len >= sizeof(buf))
		return -EINVAL;
	at = route_opts_start(spec);
	memcpy(buf, spec, len + 1);
	for (word = strtok_r(buf + at, " \t", &save); word != NULL; word = strtok_r(NULL, " \t", &save))
		if (route_parse_opt(word, &o) < 0)
			return -EINVAL;
	while (at > 0 && (buf[at - 1] == ' ' || buf[at - 1] == '\t'))
		at--;
	buf[at] = '\0';
	if ((r = route_parse_hop(buf, nh)) < 0)
		return r;
	if (nh->no_hop && (o.tls[0] != '\0' || o.auth_plaintext != ROUTE_UNSET || o.tls_ca_file[0] != '\0'))
		return -EINVAL;		/* "hold tls=verify": nothing to secure */
	if (at >= sizeof(nh->target))
		return -EINVAL;
	memcpy(nh->target, buf, at + 1);
	nh->opts = o;
	return 0;
}

bool
route_opts_equal(const struct route_opts *a, const struct route_opts *b)
{
	return strcmp(a->tls, b->tls) == 0 && a->auth_plaintext == b->auth_plaintext &&
	    strcmp(a->tls_ca_file, b->tls_ca_file) == 0;
}

static const char *
route_lookup_wildcard(const struct cfg *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].domain, "*") == 0)
			return cfg->routes[i].target;
	return NULL;
}

/* The configured target for domain, or NULL: exact, nearest ".parent", "*". */
static const char *
route_lookup(const struct cfg *cfg, const char *domain)
{
	const char *p;
	size_t i;

	for (i = 0; i < cfg->n_routes; i++)
		if (strcasecmp(cfg->routes[i].domain, domain) == 0)
			return cfg->routes[i].target;
	for (p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.'))
		for (i = 0; i < cfg->n_routes; i++)
			if (cfg->routes[i].domain[0] == '.' && strcasecmp(cfg->routes[i].domain, p) == 0)
				return cfg->routes[i].target;
	return route_lookup_wildcard(cfg);
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (already valid) -> the address itself. */
static void
literal_as_nexthop(const char *domain, struct route_nexthop *nh)
{
	const char *a = domain + 1;
	size_t len;

	if (strncasecmp(a, "IPv6:", 5) == 0)
		a += 5;
	len = strlen(a) - 1;	/* without ']' */
	memcpy(nh->host, a, len);
	nh->host[len] = '\0';
	nh->literal = true;
	nh->mx_lookup = false;
	nh->recipient_mx = false;
}

int
route_pick(const struct cfg *cfg, const char *domain, struct route_nexthop *nh)
{
	bool is_literal = domain[0] == '[';
	const char *target = NULL;
	int r;

	if (strlen(domain) > ROUTE_HOST_MAX)
		return -ENAMETOOLONG;
	if (addr_domain_valid(domain) < 0)
		return -EINVAL;
	/* An address literal has no name to match: only "*" and the smarthost apply. */
	target = is_literal ? route_lookup_wildcard(cfg) : route_lookup(cfg, domain);
	if (target == NULL)
		target = cfg->smarthost != NULL && cfg->smarthost[0] != '\0' ? cfg->smarthost : "mx";
	if ((r = route_parse_target(target, nh)) < 0)
		return r;
	if (nh->no_hop)
		return 0;
	if (nh->recipient_mx && is_literal)
		literal_as_nexthop(domain, nh);
	else if (nh->recipient_mx)
		snprintf(nh->host, sizeof(nh->host), "%s", domain);
	return 0;
}

static bool
host_byte_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int
route_mx_rdata_parse(const unsigned char *rdata, size_t len, struct route_mx *mx)
{
	size_t pos = 2, out = 0, lab;

	memset(mx, 0, sizeof(*mx));
	if (rdata == NULL || len < 3)
		return -EBADMSG;
	mx->preference = (unsigned)rdata[0] << 8 | rdata[1];
	for (;;) {
		if (pos >= len)
			return -EBADMSG;	/* no root label */
		lab = rdata[pos++];
		if (lab == 0)
			break;
		if (lab > 63)
			return -EBADMSG;	/* a compression pointer or a reserved label type */
		if (lab > len - pos)
			return -EBADMSG;	/* label runs past the rdata */
		/* out bytes so far, plus a dot if not first, plus the label, must fit in 255. */
		if (out + (out > 0) + lab > ROUTE_HOST_MAX)
			return -EBADMSG;
		if (out > 0)
			mx->host[out++] = '.';
		for (size_t i = 0; i < lab; i++) {
			if (!host_byte_ok(rdata[pos + i]))
				return -EBADMSG;
			mx->host[out++] = (char)rdata[pos + i];
		}
		pos += lab;
	}
	if (pos != len)
		return -EBADMSG;	/* bytes after the name */
	if (out == 0)
		mx->host[out++] = '.';
	mx->host[out] = '\0';
	return 0;
}

static void
shuffle(struct route_mx *a, size_t n, route_rand_fn rnd, void *rarg)
{
	struct route_mx tmp;
	size_t i, j;

	if (rnd == NULL)
		return;
	for (i = n; i > 1; i--) {
		j = rnd(rarg, (uint32_t)i);
		if (j >= i)
			j = i - 1;	/* a broken source must not index out of range */
		tmp = a[i - 1];
		a[i - 1] = a[j];
		a[j] = tmp;
	}
}

/* Stable insertion sort by preference: the shuffle decides among equals. */
static void
sort_by_preference(struct route_mx *a, size_t n)
{
	struct route_mx tmp;
	size_t i, j;

	for (i = 1; i < n; i++) {
		tmp = a[i];
		for (j = i; j > 0 && a[j - 1].preference > tmp.preference; j--)
			a[j] = a[j - 1];
		a[j] = tmp;
	}
}

/*
 * RFC 5321 5.1: when this host is one of the MX hosts, it and every host
 * with the same or a higher preference are dropped (they would send the
 * mail back here).  hosts are sorted.  Returns the hosts that remain.
 */
static size_t
drop_self(const struct route_mx *hosts, size_t n, const char *self)
{
	size_t i;

	if (self == NULL || *self == '\0')
		return n;
	for (i = 0; i < n; i++)
		if (strcasecmp(hosts[i].host, self) == 0)
			break;
	if (i == n)
		return n;
	while (i > 0 && hosts[i - 1].preference == hosts[i].preference)
		i--;
	return i;
}

int
route_mx_plan(const char *domain, const char *self, const struct route_mx *mx, size_t n, route_rand_fn rnd,
    void *rarg, struct route_mx *hosts, size_t max, size_t *nhosts, struct route_fail *fail)
{
	struct route_mx all[ROUTE_MX_MAX];
	size_t i, k = 0;

	*nhosts = 0;
	if (n == 1 && mx[0].preference == 0 && strcmp(mx[0].host, ".") == 0) {
		fail->reply = REPLY_NULL_MX;
		snprintf(fail->text, sizeof(fail->text), "%s has a null MX (RFC 7505): it accepts no mail", domain);
		return -EPERM;
	}
	if (max == 0)
		return 0;
	if (n == 0) {
		/* Implicit MX (RFC 5321 5.1): the domain itself, at preference 0. */
		all[0].preference = 0;
		snprintf(all[0].host, sizeof(all[0].host), "%s", domain);
		k = 1;
	}
	for (i = 0; i < n && k < ROUTE_MX_MAX; i++)
		if (strcmp(mx[i].host, ".") != 0)
			all[k++] = mx[i];
	if (k == 0) {
		/* Only "." records, more than one or not at preference 0: no mail host either. */
		fail->reply = REPLY_NULL_MX;
		snprintf(fail->text, sizeof(fail->text), "%s has only null MX records: it accepts no mail", domain);
		return -EPERM;
	}
	shuffle(all, k, rnd, rarg);
	sort_by_preference(all, k);
	if ((k = drop_self(all, k, self)) == 0) {
		fail->reply = REPLY_MAIL_LOOP;
		snprintf(fail->text, sizeof(fail->text),
		    "mail for %s loops back to myself: %s is its best MX host", domain, self);
		return -EPERM;
	}
	for (i = 0; i < k && i < max; i++)
		hosts[i] = all[i];
	*nhosts = i;
	return 0;
}

const char *
route_dns_rcode_name(enum route_dns_rcode rc)
{
	switch (rc) {
	case ROUTE_DNS_NXDOMAIN:
		return "NXDOMAIN";
	case ROUTE_DNS_SERVFAIL:
		return "SERVFAIL";
	case ROUTE_DNS_TIMEOUT:
		return "no answer in time";
	case ROUTE_DNS_OTHER:
		break;
	}
	return "resolver error";
}

int
route_dns_fail(const struct route_nexthop *nh, const char *qname, const char *qtype, enum route_dns_rcode rc,
    struct route_fail *fail)
{
	bool recipient_domain = nh->recipient_mx && strcasecmp(qname, nh->host) == 0;

	snprintf(fail->text, sizeof(fail->text), "%s lookup of %s: %s", qtype, qname, route_dns_rcode_name(rc));
	if (rc == ROUTE_DNS_NXDOMAIN && recipient_domain) {
		fail->reply = REPLY_DNS_NXDOMAIN;
		return -EPERM;
	}
	fail->reply = REPLY_DNS_TEMPFAIL;
	return -EAGAIN;
}

int
route_no_address(const struct route_nexthop *nh, bool temporary, const char *detail, struct route_fail *fail)
{
	snprintf(fail->text, sizeof(fail->text), "no address for the mail hosts of %s%s%s", nh->host,
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	if (nh->recipient_mx && !temporary) {
		fail->reply = REPLY_NO_MAIL_HOST;
		return -EPERM;
	}
	fail->reply = REPLY_DNS_TEMPFAIL;
	return -EAGAIN;
}

/*
 * ETRN nodes (RFC 1985).
 */

static bool
queue_name_valid(const char *name)
{
	const char *c;

	if (*name == '\0')
		return false;
	for (c = name; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
			return false;
	return true;
}

int
route_node_parse(const char *arg, struct route_node *node)
{
	const char *name = arg;

	memset(node, 0, sizeof(*node));
	node->kind = ROUTE_NODE_DOMAIN;
	if (*arg == '@' || *arg == '#') {
		node->kind = *arg == '@' ? ROUTE_NODE_SUBDOMAINS : ROUTE_NODE_QUEUE;
		name++;
	}
	if (strlen(name) > ROUTE_HOST_MAX)
		return -ENAMETOOLONG;
	if (node->kind == ROUTE_NODE_QUEUE ? !queue_name_valid(name)
	    : (name[0] == '[' || addr_domain_valid(name) < 0))
		return -EINVAL;
	snprintf(node->name, sizeof(node->name), "%s", name);
	return 0;
}

/* domain is name, or (below) ends in ".name". */
static bool
domain_is_or_below(const char *domain, const char *name, bool below)
{
	size_t dl = strlen(domain), nl = strlen(name);

	if (strcasecmp(domain, name) == 0)
		return true;
	return below && dl > nl && domain[dl - nl - 1] == '.' && strcasecmp(domain + dl - nl, name) == 0;
}

bool
route_node_matches(const struct route_node *node, const char *domain)
{
	if (node->kind == ROUTE_NODE_QUEUE)
		return false;
	return domain_is_or_below(domain, node->name, node->kind == ROUTE_NODE_SUBDOMAINS);
}

int
route_node_hold(const struct cfg *cfg, const struct route_node *node, struct route_nexthop *nh)
{
	size_t i;

	if (node->kind == ROUTE_NODE_QUEUE)
		return -ENOENT;
	if (route_pick(cfg, node->name, nh) == 0 && nh->hold)
		return 0;
	if (node->kind != ROUTE_NODE_SUBDOMAINS)
		return -ENOENT;
	/* "@example.org": a held route of a name below it counts too. */
	for (i = 0; i < cfg->n_routes; i++) {
		const char *d = cfg->routes[i].domain;

		if (d[0] == '.')
			d++;
		if (domain_is_or_below(d, node->name, true) && route_parse_target(cfg->routes[i].target, nh) == 0
		    && nh->hold)
			return 0;
	}
	return -ENOENT;
}

int
route_domain_list_parse(const char *arg, char (*domains)[ROUTE_HOST_MAX + 1], size_t max, size_t *n)
{
	const char *p = arg, *comma;
	size_t len;

	*n = 0;
	while (*p != '\0') {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len == 0 || len > ROUTE_HOST_MAX)
			return -EINVAL;
		if (*n >= max)
			return -E2BIG;
		memcpy(domains[*n], p, len);
		domains[*n][len] = '\0';
		if (domains[*n][0] == '[' || addr_domain_valid(domains[*n]) < 0)
			return -EINVAL;
		(*n)++;
		if (comma == NULL)
			break;
		p = comma + 1;
		if (*p == '\0')
			return -EINVAL;		/* "a.example," */
	}
	return 0;
}
