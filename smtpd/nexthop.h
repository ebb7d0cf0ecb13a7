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
 *	const char *nexthop_peer_name(const struct nexthop *hop, size_t i);
 *	int nexthop_set_security(struct nexthop *hop, const struct cfg *cfg,
 *	    const struct route_opts *opts, const struct sasl_creds *creds);
 *	void nexthop_wipe(struct nexthop *hop);
 *	bool nexthop_same_security(const struct nexthop *a,
 *	    const struct nexthop *b);
 *	int nexthop_can_share(const struct nexthop *conn, size_t conn_addr,
 *	    const struct nexthop *want);
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
 *	"[ipv6]:port" (cfg_split_hostport()): one address, host "", name and
 *	target are hostport as written, tls_name the host part (no brackets,
 *	no port).  Security is left at policy none, no credentials.
 *
 *	nexthop_add_addr() appends an address (with its port set) and its
 *	host name (may be NULL); -ENOSPC when NEXTHOP_ADDRS_MAX are there,
 *	-EINVAL for a family other than AF_INET/AF_INET6 or a host too long.
 *
 *	nexthop_describe() writes how the log and the record name one
 *	address: "host[192.0.2.1]:25" (Postfix's form), or "192.0.2.1:25" /
 *	"[2001:db8::1]:25" when it has no host name.
 *
 *	nexthop_peer_name() is the name a certificate of address i must
 *	carry under a policy that verifies (RFC 7817 3, Postfix's
 *	smtp_tls_verify_cert_match = hostname): the address's host name (the
 *	MX host, or the host name the route was configured with), or tls_name
 *	for an address that was configured as a number.  Never an address
 *	that DNS returned.
 *
 *	nexthop_set_security() gives hop its TLS policy and credentials: each
 *	of tls (tls.h's policies), tls_ca_file ("": the system store) and
 *	auth_plaintext from the route's own options (opts, route.h; may be
 *	NULL: none set), else from the [relay] key of that name; and the entry of creds (the loaded
 *	credentials file, may be NULL) for hop->target (the route as written
 *	in the configuration: the smarthost or the [routes] target; name when
 *	target is ""), or else for "*".  An unset tls is may, or verify when
 *	the hop has credentials (issue 6: a password goes only to a server
 *	whose certificate checks out).  The runner calls it for every next
 *	hop it routes (literal or resolved), with the credentials loaded
 *	last (start, SIGHUP).  nexthop_wipe() clears the password in hop
 *	before its memory goes.
 *
 *	nexthop_same_security() tells whether two next hops are the same
 *	route under the same security: the route as written (target, else
 *	name), the TLS policy, the peer name and CA file a certificate is
 *	checked against, and the credentials (user, password,
 *	auth_plaintext).  nexthop_can_share() is the key of connection reuse
 *	(delivery.c): a connection made for conn to its address conn_addr
 *	may carry a delivery for want only when both have the same security
 *	and that address (the same socket address and mail host) is one of
 *	want's; it returns that address's index in want, or -1.  So a
 *	connection authenticated or verified for one route never carries
 *	mail for another.
 * OWNERSHIP
 *	A plain value: copy it, no pointers inside.  It may hold a password:
 *	whoever drops a copy calls nexthop_wipe().
 * THREADS
 *	Pure function over caller-owned memory; thread-safe.
 * ERRORS
 *	-EINVAL: no port, a port outside 1..65535, a host that is no IPv4
 *	or IPv6 address (a name goes through dns_resolve() instead), or a
 *	hostport longer than NEXTHOP_NAME_MAX - 1 octets.
 *	nexthop_set_security(): -EINVAL for a tls value tls.h does not know
 *	(cfg.c already refused it), -ENAMETOOLONG for a CA path, user or
 *	password longer than its field.
 */
#ifndef SPOOLGATE_NEXTHOP_H
#define SPOOLGATE_NEXTHOP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../common/cfg.h"
#include "../common/route.h"
#include "../common/sasl.h"
#include "../common/tls.h"

#define NEXTHOP_NAME_MAX	320	/* a host of 299 octets, brackets, ":65535" */
#define NEXTHOP_HOST_MAX	256	/* a host name of 255 octets */
#define NEXTHOP_ADDRS_MAX	32	/* as many as dns.h returns (DNS_MAX_ADDRS) */
#define NEXTHOP_SECRET_MAX	1024	/* user or password, NUL included (sasl.h's lines) */

struct nexthop_addr {
	struct sockaddr_storage	addr;	/* with the port */
	socklen_t		addrlen;
	char			host[NEXTHOP_HOST_MAX];	/* MX host name, "" if configured as a number */
};

struct nexthop {
	char			name[NEXTHOP_NAME_MAX];	/* as configured: "127.0.0.1:2525" */
	char			target[NEXTHOP_NAME_MAX];	/* the route as written: credentials key */
	struct nexthop_addr	addrs[NEXTHOP_ADDRS_MAX];	/* in the order to try */
	size_t			naddrs;

	/* Security: the route's TLS policy and credentials. */
	char			tls_name[NEXTHOP_NAME_MAX];	/* peer name of an address without host */
	enum tls_policy		tls;
	char			tls_ca_file[PATH_MAX];	/* "" : the system store */
	bool			auth;		/* user and password are set */
	bool			auth_plaintext;	/* AUTH allowed without TLS */
	char			user[NEXTHOP_SECRET_MAX];
	char			password[NEXTHOP_SECRET_MAX];
	bool			no_connect;	/* ODMR: only the connection the client turned around */
};

int nexthop_from_smarthost(const char *hostport, struct nexthop *hop);
int nexthop_add_addr(struct nexthop *hop, const struct sockaddr *sa, socklen_t salen, const char *host);
void nexthop_describe(const struct nexthop_addr *a, char *buf, size_t size);
const char *nexthop_peer_name(const struct nexthop *hop, size_t i);
int nexthop_set_security(struct nexthop *hop, const struct cfg *cfg, const struct route_opts *opts,
    const struct sasl_creds *creds);
void nexthop_wipe(struct nexthop *hop);
bool nexthop_same_security(const struct nexthop *a, const struct nexthop *b);
int nexthop_can_share(const struct nexthop *conn, size_t conn_addr, const struct nexthop *want);

#endif
