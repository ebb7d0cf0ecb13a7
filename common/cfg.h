/*
 * NAME
 *	cfg - the configuration file
 * SYNOPSIS
 *	#include "cfg.h"
 *
 *	void cfg_defaults(struct cfg *cfg);
 *	int cfg_load(const char *path, struct cfg *cfg, char *err, size_t errlen);
 *	void cfg_free(struct cfg *cfg);
 *	int cfg_value(const struct cfg *cfg, const char *section, const char *key,
 *	    char *out, size_t outlen);
 * DESCRIPTION
 *	One INI file (parsed with inih) configures both daemons; each reads
 *	the sections it needs.  docs in README.md and etc/spoolgate.conf list
 *	every key.  Relative paths are taken relative to the directory of the
 *	configuration file, so the file can be used from any working directory.
 *
 *	cfg_defaults() fills every field with its default.  cfg_load() applies
 *	cfg_defaults() and then the file.  On error it returns -errno and
 *	writes a message into err that names the file, the line and the key,
 *	e.g. "etc/spoolgate.conf:12: [smtpd] max_sessions: 'many' is not a
 *	number".  Unknown sections and keys are errors too: a typo must not
 *	silently leave a default in place.
 *
 *	[relay] smarthost is a next hop as route.h parses it (host:port
 *	looks up MX first, [host]:port only A/AAAA, address literals as they
 *	are), or empty: route by the recipient's MX.  [relay] resolver is empty
 *	(the system's /etc/resolv.conf) or the ip:port of a DNS server.  Each
 *	key of [routes] is a domain, ".domain" (every name below it) or "*",
 *	each value a next hop or "mx" / "mx:port"; a domain named twice is an
 *	error.  route_pick() (route.h) makes the decision.
 *
 *	cfg_domain_is_local() tells whether a domain (case-insensitive) is one
 *	of local_domains.  cfg_net_allows_relay() tells whether a client
 *	address may relay (relay_networks, CIDR list).
 *
 *	cfg_value() writes the value of one scalar key (text, path, host:port,
 *	number, yes/no) as the daemons use it into out: paths are absolute
 *	or relative to the working directory, an unset text is "".  It returns
 *	0, -ENOENT for a key that does not exist, -EOPNOTSUPP for a list or
 *	the log level, -ENAMETOOLONG when out is too small.  Scripts use it
 *	through spoolgate-smtpd -p (./run creates the [spool] user with it).
 * OWNERSHIP
 *	Strings in struct cfg are owned by it and freed by cfg_free().
 */
#ifndef SPOOLGATE_CFG_H
#define SPOOLGATE_CFG_H

#include <stddef.h>
#include <stdbool.h>
#include <sys/socket.h>

#define CFG_MAX_LIST	32
#define CFG_MAX_ROUTES	256

/* One line of [routes]: "example.org = [mail.example.org]:587". */
struct cfg_route {
	char	       *domain;		/* "example.org", ".example.org" (below it) or "*" */
	char	       *target;		/* a next hop (route.h) or "mx" / "mx:port" */
};

struct cfg_net {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	addr[16];
	unsigned	prefix;
};

/*
 * The AUTH policy of a listener (RFC 4954): whether AUTH is offered or
 * required before MAIL, whether PLAIN and LOGIN (which send the password)
 * may be used without TLS, the weakest mechanism taken (534 below it), and
 * whether an authenticated user may only send as its own addresses.
 */
enum cfg_auth_mode { CFG_AUTH_NO, CFG_AUTH_OFFER, CFG_AUTH_REQUIRED };
struct cfg_auth_policy {
	enum cfg_auth_mode mode;		/* auth = no | offer | required */
	bool		plaintext;		/* auth_plaintext = no */
	char	       *min_mechanism;		/* auth_min_mechanism = (none): LOGIN, PLAIN or SCRAM-SHA-256 */
	bool		restrict_sender;	/* restrict_sender = no */
};

struct cfg {
	char	       *path;			/* the file this came from, or "(defaults)" */

	/* [spool] */
	char	       *spool_dir;		/* dir = /var/spool/spoolgate */
	char	       *local_domains[CFG_MAX_LIST];	/* local_domains = localhost */
	size_t		n_local_domains;
	char	       *mailboxes[CFG_MAX_LIST];	/* mailboxes = *   (or a list of names) */
	size_t		n_mailboxes;
	bool		any_mailbox;		/* mailboxes = *: any valid name is created on demand */
	char	       *user;			/* user = spoolgate: drop root to this user */
	char	       *hostname;		/* hostname = (gethostname) */

	/* [smtpd] */
	char	       *listen;			/* listen = 127.0.0.1:2525 (host:port, [v6]:port) */
	unsigned	max_sessions;		/* 100 */
	unsigned	max_sessions_per_client;	/* 10 from one IP address */
	unsigned	max_line;		/* 2048: longest command line, CRLF included */
	unsigned	max_recipients;		/* 100 */
	unsigned long	max_message_size;	/* 10485760 bytes */
	unsigned	idle_timeout;		/* 300 s without a byte */
	unsigned	command_deadline;	/* 300 s for one command line or message line */
	unsigned	session_deadline;	/* 3600 s for a whole session */
	unsigned	max_errors;		/* 20 */
	unsigned	max_hops;		/* 50 Received: headers */
	struct cfg_net	relay_networks[CFG_MAX_LIST];	/* 127.0.0.0/8 ::1/128 */
	size_t		n_relay_networks;
	char	       *banner;			/* banner = spoolgate ESMTP */
	char	       *auth_users;		/* auth_users = (none): userdb.h's file, for AUTH */
	unsigned	auth_failure_delay;	/* 1 s before the first 535, doubling per failure */
	struct cfg_auth_policy auth;		/* auth, auth_plaintext, auth_min_mechanism, restrict_sender */

	/* [relay] */
	char	       *smarthost;		/* smarthost = 127.0.0.1:2525; "" = route by MX */
	char	       *resolver;		/* resolver = "" (resolv.conf) or a DNS server's ip:port */
	unsigned	dns_timeout;		/* 30 s for one lookup (MX, then A/AAAA) */
	unsigned	retry_min;		/* 60 s: first backoff */
	unsigned	retry_max;		/* 3600 s: longest backoff */
	unsigned	max_queue_lifetime;	/* 432000 s (5 days), then failed/ */
	unsigned	bounce_limit_per_hour;	/* 10 delivery status notifications per sender (1..64) */
	unsigned	delay_warning_time;	/* 0 = off; else s a message waits before one delay warning */
	unsigned	max_deliveries;		/* 4 concurrent */
	unsigned	scan_interval;		/* 30 s: safety-net scan of queue/ */
	unsigned	connect_timeout;	/* 30 s */
	unsigned	command_timeout;	/* 300 s */
	unsigned	connection_idle_timeout;	/* 5 s a finished connection waits for the next
						   message to its destination; 0 = no reuse */
	unsigned	connection_reuse_count_limit;	/* 100: times one connection is reused */
	unsigned	connection_reuse_time_limit;	/* 300 s: no reuse after a connection is this old */
	unsigned	max_per_destination;	/* 20 concurrent deliveries to one next hop */
	bool		keep_sent;		/* keep_sent = yes: delivered go to sent/, else removed */
	char	       *relay_tls;		/* tls = none|may|encrypt|verify|wrapper; NULL: may,
						   or verify when the next hop has credentials */
	char	       *relay_tls_ca_file;	/* tls_ca_file = (the system store) */
	char	       *relay_credentials;	/* credentials = (none): sasl.h's file format */
	bool		relay_auth_plaintext;	/* auth_plaintext = no: never AUTH without TLS */

	/* [routes] */
	struct cfg_route routes[CFG_MAX_ROUTES];
	size_t		n_routes;

	/* [fs] */
	char	       *mountpoint;		/* mountpoint = /run/spoolgate/mnt */
	bool		allow_other;		/* allow_other = no */

	/* [log] */
	int		log_level;		/* level = info (enum log_level) */
};

void cfg_defaults(struct cfg *cfg);
int cfg_load(const char *path, struct cfg *cfg, char *err, size_t errlen);
void cfg_free(struct cfg *cfg);
int cfg_value(const struct cfg *cfg, const char *section, const char *key, char *out, size_t outlen);

bool cfg_domain_is_local(const struct cfg *cfg, const char *domain);
bool cfg_mailbox_is_known(const struct cfg *cfg, const char *mailbox);
bool cfg_net_allows_relay(const struct cfg *cfg, const struct sockaddr *sa);

/* Parse "host:port" or "[v6]:port" into host (no brackets) and port. 0 or -EINVAL. */
int cfg_split_hostport(const char *spec, char *host, size_t hostlen, unsigned *port);

#endif
