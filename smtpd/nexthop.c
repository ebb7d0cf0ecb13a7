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
#include <strings.h>

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
nexthop_set_security(struct nexthop *hop, const struct cfg *cfg, const struct route_opts *opts,
		const struct sasl_creds *creds)
{
	static const struct route_opts unset = { .auth_plaintext = ROUTE_UNSET };
	const struct sasl_cred *cred = NULL;
	int r;

	nexthop_wipe(hop);
	if (creds != NULL && (cred = sasl_creds_find(creds, hop->target[0] ? hop->target : hop->name)) == NULL)
		cred = sasl_creds_find(creds, "*");
	if (opts == NULL)
		opts = &unset;
	hop->auth_plaintext = opts->auth_plaintext != ROUTE_UNSET ? opts->auth_plaintext == ROUTE_YES :
	    cfg->relay_auth_plaintext;
	if ((r = nexthop_copy_field(hop->tls_ca_file, sizeof(hop->tls_ca_file),
	    opts->tls_ca_file[0] ? opts->tls_ca_file : cfg->relay_tls_ca_file)) < 0)
		return r;
	if (cred != NULL) {
		if ((r = nexthop_copy_field(hop->user, sizeof(hop->user), cred->user)) < 0 ||
		    (r = nexthop_copy_field(hop->password, sizeof(hop->password), cred->password)) < 0) {
			nexthop_wipe(hop);
			return r;
		}
		hop->auth = true;
	}
	if (opts->tls[0] != '\0')
		return tls_policy_parse(opts->tls, &hop->tls);
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

/* Whether two addresses are the same socket address and the same mail host. */
static bool
nexthop_same_addr(const struct nexthop_addr *a, const struct nexthop_addr *b)
{
	const struct sockaddr *sa = (const struct sockaddr *)&a->addr, *sb = (const struct sockaddr *)&b->addr;

	if (a->addrlen != b->addrlen || sa->sa_family != sb->sa_family || strcasecmp(a->host, b->host) != 0)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)sa, *y = (const void *)sb;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)sa, *y = (const void *)sb;

		return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* The route as written, or the name when it has none: what the credentials go by. */
static const char *
nexthop_route(const struct nexthop *hop)
{
	return hop->target[0] != '\0' ? hop->target : hop->name;
}

bool
nexthop_same_security(const struct nexthop *a, const struct nexthop *b)
{
	return strcmp(nexthop_route(a), nexthop_route(b)) == 0 && a->tls == b->tls &&
	    strcmp(a->tls_name, b->tls_name) == 0 && strcmp(a->tls_ca_file, b->tls_ca_file) == 0 &&
	    a->auth == b->auth && a->auth_plaintext == b->auth_plaintext &&
	    strcmp(a->user, b->user) == 0 && strcmp(a->password, b->password) == 0;
}

int
nexthop_can_share(const struct nexthop *conn, size_t conn_addr, const struct nexthop *want)
{
	size_t i;

	if (conn_addr >= conn->naddrs || !nexthop_same_security(conn, want))
		return -1;
	for (i = 0; i < want->naddrs; i++)
		if (nexthop_same_addr(&conn->addrs[conn_addr], &want->addrs[i]))
			return (int)i;
	return -1;
}
