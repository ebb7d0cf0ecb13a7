/*
 * NAME
 *	nexthop - where one delivery goes
 * SYNOPSIS
 *	#include "nexthop.h"
 *
 *	int nexthop_from_smarthost(const char *hostport, struct nexthop *hop);
 * DESCRIPTION
 *	A struct nexthop is what the delivery needs to know about its peer
 *	and nothing else: the address to connect to, and name, the text that
 *	logs (host=), replies made up locally and the record's last-host:
 *	line call it by.  It is the seam between choosing a route and
 *	delivering on it: the runner picks the next hop, the delivery copies
 *	it and never asks where it came from.  Today the configured
 *	smarthost is the only route; a route that needs DNS, a TLS policy
 *	or credentials adds its fields here.
 *
 *	nexthop_from_smarthost() fills hop from a numeric "host:port" or
 *	"[ipv6]:port" (cfg_split_hostport()); name is hostport as written.
 * OWNERSHIP
 *	A plain value: copy it, no pointers inside.
 * THREADS
 *	Pure function over caller-owned memory; thread-safe.
 * ERRORS
 *	-EINVAL: no port, a port outside 1..65535, a host that is no IPv4
 *	or IPv6 address (names need MX/A lookups, a later module), or a
 *	hostport longer than NEXTHOP_NAME_MAX - 1 octets.
 */
#ifndef SPOOLGATE_NEXTHOP_H
#define SPOOLGATE_NEXTHOP_H

#include <sys/socket.h>

#define NEXTHOP_NAME_MAX	320	/* a host of 299 octets, brackets, ":65535" */

struct nexthop {
	char			name[NEXTHOP_NAME_MAX];	/* as configured: "127.0.0.1:2525" */
	struct sockaddr_storage	addr;
	socklen_t		addrlen;
};

int nexthop_from_smarthost(const char *hostport, struct nexthop *hop);

#endif
