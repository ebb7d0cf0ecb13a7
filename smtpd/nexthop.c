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
nexthop_set_ipv4(struct nexthop_addr *a, const char *host, unsigned port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->addr;

	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -EINVAL;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	a->addrlen = sizeof(*sin);
	return 0;
}

static int
nexthop_set_ipv6(struct nexthop_addr *a, const char *host, unsigned port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->addr;

	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
		return -EINVAL;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	a->addrlen = sizeof(*sin6);
	return 0;
}

int
nexthop_add_addr(struct nexthop *hop, const struct sockaddr *sa, socklen_t salen, const char *host)
{
	struct nexthop_addr *a;

	if (hop->naddrs >= NEXTHOP_ADDRS_MAX)
		return -ENOSPC;
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || salen > sizeof(a->addr) ||
	    (host != NULL && strlen(host) >= sizeof(a->host)))
		return -EINVAL;
	a = &hop->addrs[hop->naddrs++];
	memset(a, 0, sizeof(*a));
	memcpy(&a->addr, sa, salen);
	a->addrlen = salen;
	snprintf(a->host, sizeof(a->host), "%s", host != NULL ? host : "");
	return 0;
}

void
nexthop_describe(const struct nexthop_addr *a, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (a->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		port = ntohs(sin6->sin6_port);
	} else if (a->addr.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->addr;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		port = ntohs(sin->sin_port);
	}
	if (a->host[0] != '\0')
		snprintf(buf, size, "%s[%s]:%u", a->host, ip, port);
	else if (a->addr.ss_family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", ip, port);
	else
		snprintf(buf, size, "%s:%u", ip, port);
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
	if (nexthop_set_ipv4(&hop->addrs[0], host, port) == 0 || nexthop_set_ipv6(&hop->addrs[0], host, port) == 0) {
		hop->naddrs = 1;
		return 0;
	}
	return -EINVAL;		/* a name is resolved by the runner (dns_resolve()) */
}
