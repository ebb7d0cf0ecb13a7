/*
 * NAME
 *	route - where a message goes: next hops, per-domain routes, MX order
 * SYNOPSIS
 *	#include "route.h"
 *
 *	int route_parse_nexthop(const char *spec, struct route_nexthop *nh);
 *	int route_parse_target(const char *spec, struct route_nexthop *nh);
 *	int route_pick(const struct cfg *cfg, const char *domain,
 *	    struct route_nexthop *nh);
 *	int route_mx_rdata_parse(const unsigned char *rdata, size_t len,
 *	    struct route_mx *mx);
 *	int route_mx_plan(const char *domain, const char *self,
 *	    const struct route_mx *mx, size_t n, route_rand_fn rnd, void *rarg,
 *	    struct route_mx *hosts, size_t max, size_t *nhosts,
 *	    struct route_fail *fail);
 *	int route_dns_fail(const struct route_nexthop *nh, const char *qname,
 *	    const char *qtype, enum route_dns_rcode rc, struct route_fail *fail);
 * DESCRIPTION
 *	The routing decision, as pure functions: no libevent, no DNS I/O.
 *	smtpd/dns.c asks the resolver and feeds the answers through these.
 *
 *	A next hop is written as in Postfix:
 *	  host:port	look up the MX records of host, then A/AAAA of each MX
 *			host (implicit MX: host itself when it has no MX)
 *	  [host]:port	look up A/AAAA of host only
 *	  192.0.2.1:port, [192.0.2.1]:port, [2001:db8::1]:port
 *			an address literal: no DNS at all
 *	The port is required.  route_parse_nexthop() fills nh (host without
 *	brackets, port, mx_lookup, literal); -EINVAL when spec is none of these
 *	or host is no valid host name (addr_domain_valid()).
 *
 *	route_parse_target() accepts a next hop, or "mx" (port 25) or
 *	"mx:PORT": route by the MX records of the recipient's domain.  Such a
 *	target has nh->recipient_mx set and an empty host, filled in by
 *	route_pick().  "hold" before a target ("hold [mail.example.org]:25",
 *	"hold mx") sets nh->hold: the relay keeps such mail queued until
 *	the domain's node asks for it (ETRN, RFC 1985; ATRN, RFC 2645), then
 *	delivers it to that target.  "hold" alone sets hold and no_hop:
 *	nothing can start a queue run to it (ETRN answers 458).
 *	After the target come the route's own options, separated by blanks,
 *	each key=value once: tls=POLICY (none, may, encrypt, verify, wrapper;
 *	case-insensitive, stored in lower case), auth_plaintext=yes|no and
 *	tls_ca_file=/absolute/path.pem, e.g. "[smtp.example.org]:587
 *	tls=verify auth_plaintext=no".  They fill nh->opts (unset: tls "",
 *	auth_plaintext ROUTE_UNSET, tls_ca_file "": a zeroed struct is all
 *	unset); nh->target is the spec without
 *	them (trailing blanks dropped), so the credentials of a route go by
 *	its target alone.  -EINVAL for an unknown key, a bad value, a key
 *	twice, options on "hold" alone (no next hop to secure), a spec of
 *	ROUTE_SPEC_MAX octets or more or a path of ROUTE_PATH_MAX or more.
 *	route_opts_equal() compares two option sets field by field.
 *
 *	route_pick() chooses the route for a recipient domain from cfg's
 *	[routes] and smarthost: the exact domain (case-insensitive), then the
 *	nearest ".parent" entry (".example.org" matches every name under
 *	example.org, not example.org itself), then "*", then the smarthost;
 *	an empty smarthost means "mx".  A route by MX ends with nh->host set
 *	to the domain and nh->recipient_mx true.  A recipient domain that is an
 *	address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") matches only "*"
 *	and the smarthost; routed by MX it goes to that address (nh->literal,
 *	no DNS).  nh->target is the chosen target as written in the
 *	configuration, without its options ("mx" for an empty smarthost),
 *	what the relay's credentials file is keyed by (sasl.h).  -EINVAL when domain is neither
 *	a domain name nor an address literal, -ENAMETOOLONG when it does not
 *	fit.
 *
 *	route_mx_rdata_parse() reads one MX record's rdata (RFC 1035 3.3.9:
 *	16-bit preference, then an uncompressed domain name; libunbound hands
 *	rdata without compression).  The bytes come from the network and are
 *	checked: labels of 1..63 bytes, at most 255 bytes of name, letters,
 *	digits, '-' and '_' only, nothing after the root label; a compression
 *	pointer is an error.  The root name is returned as ".".  0 or -EBADMSG.
 *
 *	route_mx_plan() turns the MX records of domain into the hosts to try,
 *	in order (RFC 5321 5.1): sorted by preference, equal preferences
 *	shuffled with rnd (a uniform value below its bound; NULL keeps the
 *	answer's order); no record gives the implicit MX (domain itself);
 *	a single record "0 ." is a null MX (RFC 7505): -EPERM with fail set
 *	to REPLY_NULL_MX (556 5.1.10); "." among other records is dropped.
 *	When self (this gateway's host name, may be NULL) is one of the hosts,
 *	it and every host of the same or a higher preference are dropped (RFC
 *	5321 5.1); when none is left: -EPERM, REPLY_MAIL_LOOP (554 5.4.6,
 *	"loops back to myself").  Names are compared, not addresses.
 *	At most max hosts are returned (the lowest preferences).  0 or -EPERM.
 *
 *	route_dns_fail() classifies a DNS lookup that gave no usable answer:
 *	NXDOMAIN of the recipient's own domain is permanent (-EPERM,
 *	REPLY_DNS_NXDOMAIN, 550 5.1.2); every other case is temporary
 *	(-EAGAIN, REPLY_DNS_TEMPFAIL, 451 4.4.3): SERVFAIL, a timeout, REFUSED,
 *	and also NXDOMAIN of a host the configuration names (a smarthost or a
 *	route): a configuration error must not bounce the queue, it is fixed
 *	and the queue drains.  fail->text holds the DNS answer, e.g.
 *	"MX lookup of nosuch.example: NXDOMAIN".
 *
 *	route_no_address() classifies the end of a lookup that found mail
 *	hosts but no address for any of them: permanent (-EPERM,
 *	REPLY_NO_MAIL_HOST, 550 5.4.4) when the route is the recipient's MX and
 *	every A/AAAA lookup was answered (no such name, or no record of the
 *	type); temporary (-EAGAIN, REPLY_DNS_TEMPFAIL) when any lookup failed
 *	(temporary is true) or the hosts come from the configuration.  detail
 *	(may be NULL) is appended to the text.
 *
 *	route_node_parse() reads the argument of ETRN (RFC 1985 section 3):
 *	"domain" (that domain), "@domain" (the domain and every name below
 *	it) or "#queue" (a named queue: letters, digits, '-', '_', '.', at
 *	most ROUTE_HOST_MAX).  A domain must be a valid domain name, no
 *	address literal.  0 or -EINVAL (-ENAMETOOLONG when it does not fit).
 *	route_node_matches() tells whether a recipient domain belongs to a
 *	domain node (case-insensitive); a queue node matches nothing.
 *	route_node_hold() finds the hold route a domain node names: the
 *	route of the domain itself, or for "@domain" also any route of
 *	".domain" or a name below it: 0 with nh filled, -ENOENT when the
 *	domain is not held (not a node this gateway queues for).
 *
 *	route_domain_list_parse() reads the argument of ATRN (RFC 2645):
 *	domains separated by commas, no blanks, no address literal, into
 *	domains[0..*n); an empty arg gives none.  0, -EINVAL (an empty or bad
 *	domain, a comma at either end), -E2BIG (more than max).
 * OWNERSHIP
 *	All structures are plain values; nothing is allocated.
 * THREADS
 *	Every function is thread-safe (rnd must be, if it is shared).
 */
#ifndef SPOOLGATE_ROUTE_H
#define SPOOLGATE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmap.h"

struct cfg;

#define ROUTE_HOST_MAX		255	/* longest host name, text form */
#define ROUTE_MX_MAX		64	/* MX records read from one answer */
#define ROUTE_DEFAULT_PORT	25
#define ROUTE_PATH_MAX		1024	/* a route's tls_ca_file, NUL included */
#define ROUTE_SPEC_MAX		2048	/* a target with its options */

/*
 * A route's own security, written after its target ("tls=verify
 * auth_plaintext=yes tls_ca_file=/path"); unset fields fall back to the
 * [relay] keys (nexthop.h).
 */
enum route_choice { ROUTE_UNSET = 0, ROUTE_NO, ROUTE_YES };	/* zeroed: unset */

struct route_opts {
	char		tls[8];		/* "none", "may", "encrypt", "verify", "wrapper"; "" : unset */
	enum route_choice auth_plaintext;
	char		tls_ca_file[ROUTE_PATH_MAX];	/* "" : unset */
};

struct route_nexthop {
	char		host[ROUTE_HOST_MAX + 1];	/* no brackets */
	unsigned	port;
	bool		mx_lookup;	/* host:port -> MX first */
	bool		literal;	/* host is an IPv4 or IPv6 address */
	bool		recipient_mx;	/* "mx": host is the recipient's domain */
	bool		hold;		/* "hold [target]": queued until ETRN/ATRN asks (runner.h) */
	bool		no_hop;		/* "hold" alone: no next hop, only ATRN can take it */
	char		target[ROUTE_HOST_MAX + 16];	/* the target as configured, without options */
	struct route_opts opts;		/* the route's tls=, auth_plaintext=, tls_ca_file= */
};

/* An ETRN node (RFC 1985): "example.org", "@example.org" or "#queue". */
enum route_node_kind { ROUTE_NODE_DOMAIN, ROUTE_NODE_SUBDOMAINS, ROUTE_NODE_QUEUE };

struct route_node {
	enum route_node_kind kind;
	char		name[ROUTE_HOST_MAX + 1];	/* the domain or queue, without '@'/'#' */
};

struct route_mx {
	unsigned	preference;
	char		host[ROUTE_HOST_MAX + 1];	/* "." for the null MX */
};

enum route_dns_rcode {
	ROUTE_DNS_NXDOMAIN,	/* the name does not exist */
	ROUTE_DNS_SERVFAIL,	/* the resolver could not answer */
	ROUTE_DNS_TIMEOUT,	/* no answer in time */
	ROUTE_DNS_OTHER,	/* REFUSED, FORMERR, a resolver error, ... */
};

struct route_fail {
	enum reply_id	reply;	/* REPLY_DNS_NXDOMAIN, REPLY_NULL_MX, REPLY_DNS_TEMPFAIL, ... */
	char		text[400];	/* what DNS said, for the .status file and the log */
};

/* Returns a uniform value in [0, bound). */
typedef uint32_t (*route_rand_fn)(void *arg, uint32_t bound);

int route_parse_nexthop(const char *spec, struct route_nexthop *nh);
int route_parse_target(const char *spec, struct route_nexthop *nh);
int route_pick(const struct cfg *cfg, const char *domain, struct route_nexthop *nh);
bool route_opts_equal(const struct route_opts *a, const struct route_opts *b);
int route_mx_rdata_parse(const unsigned char *rdata, size_t len, struct route_mx *mx);
int route_mx_plan(const char *domain, const char *self, const struct route_mx *mx, size_t n, route_rand_fn rnd,
    void *rarg, struct route_mx *hosts, size_t max, size_t *nhosts, struct route_fail *fail);
int route_dns_fail(const struct route_nexthop *nh, const char *qname, const char *qtype,
    enum route_dns_rcode rc, struct route_fail *fail);
int route_no_address(const struct route_nexthop *nh, bool temporary, const char *detail, struct route_fail *fail);
const char *route_dns_rcode_name(enum route_dns_rcode rc);
int route_node_parse(const char *arg, struct route_node *node);
bool route_node_matches(const struct route_node *node, const char *domain);
int route_node_hold(const struct cfg *cfg, const struct route_node *node, struct route_nexthop *nh);
int route_domain_list_parse(const char *arg, char (*domains)[ROUTE_HOST_MAX + 1], size_t max, size_t *n);

#endif
