/*
 * NAME
 *	nexthop - where one delivery goes
 * SYNOPSIS
 *	#include "nexthop.h"
 * DESCRIPTION
 *	See nexthop.h.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../common/cfg.h"
#include "nexthop.h"

static int
nexthop_set_ipv4(struct nexthop *hop, const char *host, unsigned port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&hop->addr;

	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -EINVAL;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	hop->addrlen = sizeof(*sin);
	return 0;
}

static int
nexthop_set_ipv6(struct nexthop *hop, const char *host, unsigned port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&hop->addr;

	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
		return -EINVAL;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	hop->addrlen = sizeof(*sin6);
	return 0;
}

int
nexthop_from_smarthost(const char *hostport, struct nexthop *hop)
{
	char host[NEXTHOP_NAME_MAX];
	unsigned port;
	int n;

	memset(hop, 0, sizeof(*hop));
	if (hostport == NULL || cfg_split_hostport(hostport, host, sizeof(host), &port) < 0 ||
	    port == 0 || port > 65535)
		return -EINVAL;
	n = snprintf(hop->name, sizeof(hop->name), "%s", hostport);
	if (n < 0 || (size_t)n >= sizeof(hop->name))
		return -EINVAL;
	if (nexthop_set_ipv4(hop, host, port) == 0 || nexthop_set_ipv6(hop, host, port) == 0)
		return 0;
	return -EINVAL;		/* names need MX/A lookups: a later module */
}
