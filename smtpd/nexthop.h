/*
 * NAME
 *	nexthop - where one delivery goes
 * SYNOPSIS
 *	#include "nexthop.h"
 *
 *	int nexthop_from_smarthost(const char *hostport, struct nexthop *hop);
 *	int nexthop_add_addr(struct nexthop *hop, const struct sockaddr *sa,
 *	    socklen_t salen, const char *host);
 *	void nexthop_describe(const struct nexthop_addr *a, char *buf,
 *	    size_t size);
 * DESCRIPTION
 *	A struct nexthop is what the delivery needs to know about its peer
 *	and nothing else: the addresses to connect to, in the order to try
 *	them (RFC 5321 5: each in turn until one answers), and name, the
 *	text that logs (host=), replies made up locally and the record's
 *	last-host: line call it by.  It is the seam between choosing a route
 *	and delivering on it: the runner picks the next hop (route_pick(),
 *	dns_resolve()), the delivery copies it and never asks where it came
 *	from.  A TLS policy or credentials add their fields here.
 *
 *	Each address carries host, the mail host (MX) name it belongs to
 *	(for the log, the record and, later, the TLS peer name), or "" for an
 *	address that was configured as a number.
 *
 *	nexthop_from_smarthost() fills hop from a numeric "host:port" or
 *	"[ipv6]:port" (cfg_split_hostport()): one address, host "", name is
 *	hostport as written.
 *
 *	nexthop_add_addr() appends an address (with its port set) and its
 *	host name (may be NULL); -ENOSPC when NEXTHOP_ADDRS_MAX are there,
 *	-EINVAL for a family other than AF_INET/AF_INET6 or a host too long.
 *
 *	nexthop_describe() writes how the log and the record name one
 *	address: "host[192.0.2.1]:25" (Postfix's form), or "192.0.2.1:25" /
 *	"[2001:db8::1]:25" when it has no host name.
 * OWNERSHIP
 *	A plain value: copy it, no pointers inside.
 * THREADS
 *	Pure function over caller-owned memory; thread-safe.
 * ERRORS
 *	-EINVAL: no port, a port outside 1..65535, a host that is no IPv4
 *	or IPv6 address (a name goes through dns_resolve() instead), or a
 *	hostport longer than NEXTHOP_NAME_MAX - 1 octets.
 */
#ifndef SPOOLGATE_NEXTHOP_H
#define SPOOLGATE_NEXTHOP_H

#include <stddef.h>
#include <sys/socket.h>

#define NEXTHOP_NAME_MAX	320	/* a host of 299 octets, brackets, ":65535" */
#define NEXTHOP_HOST_MAX	256	/* a host name of 255 octets */
#define NEXTHOP_ADDRS_MAX	32	/* as many as dns.h returns (DNS_MAX_ADDRS) */

struct nexthop_addr {
	struct sockaddr_storage	addr;	/* with the port */
	socklen_t		addrlen;
	char			host[NEXTHOP_HOST_MAX];	/* MX host name, "" if configured as a number */
};

struct nexthop {
	char			name[NEXTHOP_NAME_MAX];	/* as configured: "127.0.0.1:2525" */
	struct nexthop_addr	addrs[NEXTHOP_ADDRS_MAX];	/* in the order to try */
	size_t			naddrs;
};

int nexthop_from_smarthost(const char *hostport, struct nexthop *hop);
int nexthop_add_addr(struct nexthop *hop, const struct sockaddr *sa, socklen_t salen, const char *host);
void nexthop_describe(const struct nexthop_addr *a, char *buf, size_t size);

#endif
