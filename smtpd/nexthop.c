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
	snprintf(hop->target, sizeof(hop->target), "%s", hostport);	/* as long as name */
	snprintf(hop->tls_name, sizeof(hop->tls_name), "%s", host);	/* shorter than name */
	hop->tls = TLS_POLICY_NONE;
	if (nexthop_set_ipv4(&hop->addrs[0], host, port) == 0 || nexthop_set_ipv6(&hop->addrs[0], host, port) == 0) {
		hop->naddrs = 1;
		return 0;
	}
	return -EINVAL;		/* a name is resolved by the runner (dns_resolve()) */
}

static int
nexthop_copy_field(char *dst, size_t size, const char *src)
{
	int n = snprintf(dst, size, "%s", src ? src : "");

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

const char *
nexthop_peer_name(const struct nexthop *hop, size_t i)
{
	if (i < hop->naddrs && hop->addrs[i].host[0] != '\0')
		return hop->addrs[i].host;
	return hop->tls_name;
}

int
nexthop_set_security(struct nexthop *hop, const struct cfg *cfg, const struct sasl_creds *creds)
{
	const struct sasl_cred *cred = NULL;
	int r;

	nexthop_wipe(hop);
	if (creds != NULL && (cred = sasl_creds_find(creds, hop->target[0] ? hop->target : hop->name)) == NULL)
		cred = sasl_creds_find(creds, "*");
	hop->auth_plaintext = cfg->relay_auth_plaintext;
	if ((r = nexthop_copy_field(hop->tls_ca_file, sizeof(hop->tls_ca_file), cfg->relay_tls_ca_file)) < 0)
		return r;
	if (cred != NULL) {
		if ((r = nexthop_copy_field(hop->user, sizeof(hop->user), cred->user)) < 0 ||
		    (r = nexthop_copy_field(hop->password, sizeof(hop->password), cred->password)) < 0) {
			nexthop_wipe(hop);
			return r;
		}
		hop->auth = true;
	}
	if (cfg->relay_tls != NULL)
		return tls_policy_parse(cfg->relay_tls, &hop->tls);
	hop->tls = hop->auth ? TLS_POLICY_VERIFY : TLS_POLICY_MAY;
	return 0;
}

void
nexthop_wipe(struct nexthop *hop)
{
	explicit_bzero(hop->password, sizeof(hop->password));
	explicit_bzero(hop->user, sizeof(hop->user));
	hop->auth = false;
}
