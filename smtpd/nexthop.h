/*
 * NAME
 *	nexthop - where one delivery goes
 * SYNOPSIS
 *	#include "nexthop.h"
 *
 *	int nexthop_from_smarthost(const char *hostport, struct nexthop *hop);
 *	int nexthop_set_security(struct nexthop *hop, const struct cfg *cfg,
 *	    const struct sasl_creds *creds);
 *	void nexthop_wipe(struct nexthop *hop);
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
 *	"[ipv6]:port" (cfg_split_hostport()); name is hostport as written,
 *	tls_name the host part (no brackets, no port): what a certificate
 *	must name under a policy that verifies.  Security is left at policy
 *	none, no credentials.
 *
 *	nexthop_set_security() gives hop its TLS policy and credentials from
 *	the [relay] keys: tls (tls.h's policies), tls_ca_file (NULL: the
 *	system store), auth_plaintext, and the entry of creds (the loaded
 *	credentials file, may be NULL) for hop->name, or else for "*".  An
 *	unset tls is may, or verify when the hop has credentials (issue 6:
 *	a password goes only to a server whose certificate checks out).
 *	It is called again after the credentials file is reloaded.
 *	nexthop_wipe() clears the password in hop before its memory goes.
 * OWNERSHIP
 *	A plain value: copy it, no pointers inside.  It may hold a password:
 *	whoever drops a copy calls nexthop_wipe().
 * THREADS
 *	Pure function over caller-owned memory; thread-safe.
 * ERRORS
 *	-EINVAL: no port, a port outside 1..65535, a host that is no IPv4
 *	or IPv6 address (names need MX/A lookups, a later module), or a
 *	hostport longer than NEXTHOP_NAME_MAX - 1 octets.
 *	nexthop_set_security(): -EINVAL for a tls value tls.h does not know
 *	(cfg.c already refused it), -ENAMETOOLONG for a CA path, user or
 *	password longer than its field.
 */
#ifndef SPOOLGATE_NEXTHOP_H
#define SPOOLGATE_NEXTHOP_H

#include <limits.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "../common/cfg.h"
#include "../common/sasl.h"
#include "../common/tls.h"

#define NEXTHOP_NAME_MAX	320	/* a host of 299 octets, brackets, ":65535" */
#define NEXTHOP_SECRET_MAX	1024	/* user or password, NUL included (sasl.h's lines) */

struct nexthop {
	char			name[NEXTHOP_NAME_MAX];	/* as configured: "127.0.0.1:2525" */
	struct sockaddr_storage	addr;
	socklen_t		addrlen;

	/* Security: the route's TLS policy and credentials. */
	char			tls_name[NEXTHOP_NAME_MAX];	/* the host a certificate must name */
	enum tls_policy		tls;
	char			tls_ca_file[PATH_MAX];	/* "" : the system store */
	bool			auth;		/* user and password are set */
	bool			auth_plaintext;	/* AUTH allowed without TLS */
	char			user[NEXTHOP_SECRET_MAX];
	char			password[NEXTHOP_SECRET_MAX];
};

int nexthop_from_smarthost(const char *hostport, struct nexthop *hop);
int nexthop_set_security(struct nexthop *hop, const struct cfg *cfg, const struct sasl_creds *creds);
void nexthop_wipe(struct nexthop *hop);

#endif
