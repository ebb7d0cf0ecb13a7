/*
 * NAME
 *	dns - asynchronous DNS for the relay: a next hop into addresses to try
 * SYNOPSIS
 *	#include "dns.h"
 *
 *	int dns_new(struct event_base *base, const char *resolver,
 *	    unsigned timeout_s, const char *self, struct dns **out,
 *	    char *err, size_t errlen);
 *	int dns_resolve(struct dns *d, const struct route_nexthop *nh,
 *	    dns_done_fn done, void *arg, uint64_t *id);
 *	int dns_cancel(struct dns *d, uint64_t id);
 *	size_t dns_pending(const struct dns *d);
 *	void dns_set_random(struct dns *d, route_rand_fn rnd, void *arg);
 *	void dns_free(struct dns *d);
 * DESCRIPTION
 *	libunbound on the libevent loop: one ub_ctx in threaded async mode,
 *	its ub_fd() watched by a persistent read event that calls ub_process(),
 *	which runs the answer callbacks on the loop's thread.  No call here
 *	blocks the loop: a slow or dead resolver stalls no SMTP session.
 *
 *	dns_new() creates the context.  resolver is "" (or NULL) for the
 *	system's /etc/resolv.conf and /etc/hosts, or "ip:port" / "[ipv6]:port"
 *	of one DNS server that is asked recursively (the tests' unbound).
 *	timeout_s bounds one whole resolution (MX, then A/AAAA of the hosts).
 *	self is this gateway's host name (cfg hostname, may be NULL): an MX
 *	list that names it is cut there (RFC 5321 5.1, route_mx_plan()).
 *	On error returns -errno and a message in err.
 *
 *	dns_resolve() resolves a next hop (route.h):
 *	  mx_lookup	MX of nh->host, route_mx_plan() (sorted, equal
 *			preferences shuffled, implicit MX, null MX), then
 *			AAAA and A of each host, all at once
 *	  otherwise	AAAA and A of nh->host
 *	  literal	no DNS; the address itself
 *	and calls done(arg, id, answer) exactly once, always later from the
 *	loop, never from inside dns_resolve().  answer->status is 0 with
 *	answer->targets in the order to try (per host in MX order, its IPv6
 *	addresses then its IPv4 addresses, each with nh->port and the host name
 *	for TLS), or -EPERM (permanent: NXDOMAIN of the recipient's domain,
 *	null MX, no address for any MX host, an MX list that loops back here)
 *	or -EAGAIN (temporary: SERVFAIL,
 *	a timeout, a malformed answer, the resolver's own errors) with
 *	answer->fail (reply id and the DNS answer as text).  The answer and its
 *	targets live until done returns; copy what you keep.  done may call
 *	dns_resolve() and dns_cancel(), never dns_free().  *id (may be
 *	NULL) names the lookup for dns_cancel().  Returns 0, -EAGAIN when
 *	DNS_MAX_PENDING lookups are already pending, -ENOMEM.
 *
 *	dns_cancel() forgets a pending lookup; its callback is not called.
 *	0, or -ENOENT when no lookup has that id (it has finished).
 *
 *	dns_set_random() replaces the random source of the MX shuffle
 *	(default: arc4random_uniform) -- for tests.
 *
 *	dns_free() cancels every pending lookup (no callback is called) and
 *	frees the context; call it on shutdown.  NULL is allowed.
 * LIMITS
 *	DNS_MAX_HOSTS mail hosts are tried (the lowest preferences), at most
 *	DNS_MAX_HOST_ADDRS IPv6 and as many IPv4 addresses of each, at most
 *	DNS_MAX_ADDRS addresses in all; ROUTE_MX_MAX MX records are read.  A
 *	pending lookup holds about 20 KiB; at most DNS_MAX_PENDING are pending.
 *
 *	libunbound starts its worker thread at the first lookup: create the
 *	context after the daemon has forked (if it does), not before.
 * DIAGNOSTICS
 *	Each finished lookup is logged at debug level (event=dns-resolved or
 *	dns-failed, with its id); malformed MX records at warn (dns-malformed).
 * THREADS
 *	Loop thread only.  libunbound's worker thread never calls back here.
 */
#ifndef SPOOLGATE_DNS_H
#define SPOOLGATE_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "route.h"

struct event_base;
struct dns;

#define DNS_MAX_HOSTS	10
#define DNS_MAX_HOST_ADDRS	8
#define DNS_MAX_ADDRS	32
#define DNS_MAX_PENDING	1024

struct dns_target {
	struct sockaddr_storage	addr;	/* with the port set */
	socklen_t		addrlen;
	char			host[ROUTE_HOST_MAX + 1];	/* the MX host (or next hop) name */
	unsigned		preference;
};

struct dns_answer {
	int				status;		/* 0, -EPERM, -EAGAIN */
	struct route_fail		fail;		/* when status != 0 */
	const struct dns_target	       *targets;
	size_t				n_targets;
};

typedef void (*dns_done_fn)(void *arg, uint64_t id, const struct dns_answer *answer);

int dns_new(struct event_base *base, const char *resolver, unsigned timeout_s, const char *self,
    struct dns **out, char *err, size_t errlen);
int dns_resolve(struct dns *d, const struct route_nexthop *nh, dns_done_fn done, void *arg, uint64_t *id);
int dns_cancel(struct dns *d, uint64_t id);
size_t dns_pending(const struct dns *d);
void dns_set_random(struct dns *d, route_rand_fn rnd, void *arg);
void dns_free(struct dns *d);

#endif
