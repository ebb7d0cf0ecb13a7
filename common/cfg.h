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
 *	int cfg_key_at(size_t i, const char **section, const char **key);
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
 *	Listeners: each [listener NAME] section (NAME: 1..31 letters, digits,
 *	'-' or '_') is one listening address with its own policy (struct
 *	cfg_listener: listen, tls, tls_cert_file, tls_key_file, tls_chain_file,
 *	tls_ciphers, tls_ciphersuites, auth, auth_plaintext, auth_cram_md5, etrn,
 *	relay_networks, accept_mail).
 *	The same keys in [smtpd] make the listener named "smtpd", the
 *	one-listener shorthand of earlier configurations; it exists when the
 *	file sets one of them in [smtpd] or has no [listener] section at all
 *	(then with listen = 127.0.0.1:2525).  Every listener needs listen; tls
 *	is none, may, encrypt (STARTTLS required before MAIL and AUTH) or
 *	wrapper (implicit TLS, RFC 8314), and all but none need
 *	tls_cert_file and tls_key_file; without tls, a listener with a
 *	certificate offers STARTTLS (may), one without does not (none).  A
 *	listener without relay_networks uses [smtpd]'s.  At most
 *	CFG_MAX_LISTENERS; a name used twice is one section continued.
 *	cfg_listener_find() finds one by name (NULL when there is none).
 *
 *	[odmr] maps an AUTH user (a key: 1..255 printable octets, no blank)
 *	to the domains (a list) it may take with ATRN on a listener with
 *	odmr = yes (RFC 2645); a user named twice is an error, at most
 *	CFG_MAX_ODMR lines.  cfg_odmr_find() finds a user's line (exact
 *	match) or NULL.
 *
 *	cfg_domain_is_local() tells whether a domain (case-insensitive) is one
 *	of local_domains.  cfg_net_allows_relay() tells whether a client
 *	address may relay through listener lst (its relay_networks, CIDR list;
 *	lst NULL: [smtpd]'s).
 *
 *	[forwards] (RFC 5321 3.4, replies 251 and 551): each key is an address
 *	in one of local_domains, each value the address its mail is
 *	forwarded to (a remote address is queued for the relay; a local one is
 *	delivered to that mailbox; one step, no chains).  An address named
 *	twice, a malformed address or a key outside local_domains is an error.
 *	[smtpd] forwarding = no keeps the table but refuses such recipients
 *	with 551 naming the new address.  cfg_forward_find() (forward.h) looks
 *	an address up.  At most CFG_MAX_FORWARDS lines.
 *
 *	[sendmail] is read by spoolgate-sendmail, spoolgate-mailq and the
 *	gateway's pickup of drops: group (the set-group-id group that may
 *	write drop/), trusted_users (login names that may choose the envelope
 *	sender with -f or MAIL FROM), sender_domain (the domain of user@domain
 *	senders and of unqualified addresses; empty: [spool] hostname).
 *	cfg_sender_domain() is that domain, cfg_user_is_trusted() the test.
 *
 *	[fs] mailbox_owners maps mailboxes to the Unix users they belong to
 *	when the mount has allow_other ("alerts:ops postmaster:root");
 *	cfg_mailbox_owner() is the login a mailbox belongs to: the mapped one,
 *	else the mailbox's own name (unixuser.h looks it up).
 *
 *	[aliases] file names the aliases(5) table (aliases.h) that smtpd
 *	and spoolgate-fs load at start; unset, there is none.
 *
 *	cfg_value() writes the value of one scalar key (text, path, host:port,
 *	number, yes/no) as the daemons use it into out (section "listener
 *	NAME" for a listener's keys; "smtpd" for the shorthand's): paths are absolute
 *	or relative to the working directory, an unset text is "".  It returns
 *	0, -ENOENT for a key that does not exist, -EOPNOTSUPP for a list or
 *	the log level, -ENAMETOOLONG when out is too small.  Scripts use it
 *	through spoolgate-smtpd -p (./run creates the [spool] user with it).
 *
 *	cfg_key_at() names the i-th key the file accepts (from 0): its
 *	section ("listener" for the keys of a [listener NAME] section, which
 *	[smtpd] takes too) and its name, pointers to static strings; it
 *	returns -ENOENT past the last key.  [routes] keys are domains and
 *	[forwards] keys addresses: neither is listed.  The unit test of the manual page spoolgate.conf(5)
 *	walks it, so that the page documents exactly the keys there are.
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
#define CFG_MAX_FORWARDS	1024
#define CFG_MAX_LISTENERS	16
#define CFG_LISTENER_NAME_MAX	32	/* [listener NAME]: letters, digits, '-', '_' */

/* One line of [forwards]: "alice@localhost = alice@example.net" (RFC 5321 251/551). */
struct cfg_forward {
	char	       *from;		/* an address in a local domain */
	char	       *to;		/* where its mail goes (or where the client is told to try) */
};

/* One line of [routes]: "example.org = [mail.example.org]:587". */
struct cfg_route {
	char	       *domain;		/* "example.org", ".example.org" (below it) or "*" */
	char	       *target;		/* a next hop (route.h) or "mx" / "mx:port" */
};

#define CFG_MAX_ODMR	256

/* One line of [odmr]: "alice@example.org = branch.example other.example". */
struct cfg_odmr {
	char	       *user;			/* an AUTH user (users file) */
	char	       *domains[CFG_MAX_LIST];	/* the domains it may take with ATRN */
	size_t		ndomains;
};

struct cfg_net {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	addr[16];
	unsigned	prefix;
};

/* What a listener asks of a client before it may do what. */
enum cfg_auth_mode {
	CFG_AUTH_NO,		/* auth = no: AUTH not offered */
	CFG_AUTH_OFFER,		/* auth = offer: offered, MAIL allowed without it */
	CFG_AUTH_REQUIRED,	/* auth = required: 530 5.7.0 to MAIL before AUTH */
};

/* Who may ask for a queue run with ETRN (RFC 1985) on a listener. */
enum cfg_etrn_mode {
	CFG_ETRN_YES,		/* etrn = yes: any client, for a held domain ([routes] hold) */
	CFG_ETRN_RELAY,		/* etrn = relay: clients that may relay (relay_networks or AUTH) */
	CFG_ETRN_NO,		/* etrn = no: 502 5.5.1, not announced */
};

/*
 * One listening address and its policy: a [listener NAME] section, or the
 * [smtpd] section's own keys (the one-listener shorthand, named "smtpd").
 */
struct cfg_listener {
	char	       *name;			/* "smtpd" or NAME */
	char	       *listen;			/* listen = host:port, [v6]:port */
	char	       *tls;			/* tls = none|may|encrypt|wrapper (tls.h names);
						   NULL: may with a certificate, else none */
	char	       *tls_cert_file;		/* PEM: the certificate, then its chain */
	char	       *tls_key_file;		/* PEM private key, mode 0600 */
	char	       *tls_chain_file;		/* PEM intermediates, when not in tls_cert_file */
	char	       *tls_ciphers;		/* TLS 1.2 cipher list (tls.h default) */
	char	       *tls_ciphersuites;	/* TLS 1.3 suites (OpenSSL's default) */
	enum cfg_auth_mode auth;		/* auth = no|offer|required */
	bool		auth_plaintext;		/* auth_plaintext = no: PLAIN/LOGIN need TLS */
	char	       *auth_min_mechanism;	/* auth_min_mechanism = (none): LOGIN, PLAIN or
						   SCRAM-SHA-256; weaker ones get 534 5.7.9 */
	bool		auth_cram_md5;		/* auth_cram_md5 = no: offer CRAM-MD5 (a stored
						   password equivalent); needs odmr = yes */
	bool		restrict_sender;	/* restrict_sender = no: an authenticated user
						   may send only as its own addresses (553 5.7.1) */
	enum cfg_etrn_mode etrn;		/* etrn = yes|relay|no */
	bool		odmr;			/* odmr = no: ATRN (RFC 2645) after AUTH */
	struct cfg_net	relay_networks[CFG_MAX_LIST];	/* relay_networks = ([smtpd]'s) */
	size_t		n_relay_networks;
	bool		relay_networks_set;	/* else [smtpd] relay_networks applies */
	bool		accept_mail;		/* accept_mail = yes; no: greet 521 5.3.2 (RFC 7504)
						   and answer 521 to all but QUIT */
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
	char	       *hostname;		/* hostname = (gethostname): the node's name, unique per spool */
	bool		shared;			/* shared = no: other hosts use the spool (no inotify across them) */
	unsigned	heartbeat_interval;	/* 2 s: nodes/<hostname> renewed */
	unsigned	lease_time;		/* 20 s: a node silent that long is dead; its claims are taken over */
	unsigned	poll_interval_ms;	/* 500 ms: with shared = yes, queue/ and inbox/ polled */

	/* [smtpd], and the listeners: [smtpd] listen & co. are the shorthand
	 * for one listener named "smtpd" (listeners[0] when it is used). */
	struct cfg_listener listeners[CFG_MAX_LISTENERS];
	size_t		n_listeners;
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
	unsigned long	checkpoint_interval;	/* 1048576: bytes of DATA between checkpoints (RFC 1845) */
	unsigned	checkpoint_lifetime;	/* 86400 s: a partial transfer older than this is removed */
	struct cfg_net	relay_networks[CFG_MAX_LIST];	/* 127.0.0.0/8 ::1/128 */
	size_t		n_relay_networks;
	char	       *banner;			/* banner = spoolgate ESMTP */
	char	       *auth_users;		/* auth_users = (none): userdb.h's file, for AUTH */
	unsigned	auth_failure_delay;	/* 1 s before the first 535, doubling per failure */
	bool		vrfy;			/* vrfy = no: VRFY says 252; yes: 250/550 for local mailboxes */
	bool		forwarding;		/* forwarding = yes: [forwards] gets 251 and is forwarded;
						   no: 551 names the new address */

	/* [relay] */
	char	       *smarthost;		/* smarthost = 127.0.0.1:2525; "" = route by MX */
	char	       *resolver;		/* resolver = "" (resolv.conf) or a DNS server's ip:port */
	unsigned	dns_timeout;		/* 30 s for one lookup (MX, then A/AAAA) */
	unsigned	retry_min;		/* 60 s: first backoff */
	unsigned	retry_max;		/* 3600 s: longest backoff */
	unsigned	max_queue_lifetime;	/* 432000 s (5 days), then failed/ */
	unsigned	bounce_limit_per_hour;	/* 10 delivery status notifications per sender (1..64) */
	unsigned	delay_warning_time;	/* 0 = off; else s a message waits before one delay warning */
	unsigned	dsn_full_max;		/* RET=FULL: octets of the original a notice carries whole
						   (1 MiB; 0..64 MiB); larger or 0: its headers only */
	unsigned	max_deliveries;		/* 4 concurrent */
	unsigned	scan_interval;		/* 30 s: safety-net scan of queue/ */
	unsigned	connect_timeout;	/* 30 s */
	unsigned	command_timeout;	/* 300 s */
	unsigned	data_done_timeout;	/* 600 s for the reply to the end of data (RFC 5321 4.5.3.2.6) */
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

	/* [forwards] */
	struct cfg_forward forwards[CFG_MAX_FORWARDS];
	size_t		n_forwards;

	/* [odmr]: who may take which domains with ATRN */
	struct cfg_odmr	odmr[CFG_MAX_ODMR];
	size_t		n_odmr;

	/* [sendmail]: spoolgate-sendmail and the gateway's pickup of its drops */
	char	       *drop_group;		/* group = spoolgate-drop: may write drop/ only */
	char	       *trusted_users[CFG_MAX_LIST];	/* trusted_users = root: may choose the sender */
	size_t		n_trusted_users;
	char	       *sender_domain;		/* sender_domain = "" ([spool] hostname): user@<it> */

	/* [aliases]: aliases.h's table, for SMTP, outbox/ and sendmail */
	char	       *aliases_file;		/* file = (none): no aliases */

	/* [fs] */
	char	       *mountpoint;		/* mountpoint = /run/spoolgate/mnt */
	bool		allow_other;		/* allow_other = no */
	char	       *mailbox_owners[CFG_MAX_LIST];	/* mailbox_owners = (none): "mailbox:login" words */
	size_t		n_mailbox_owners;
	unsigned	wait_timeout;		/* wait_timeout = 300: outbox/wait/ close(2), seconds */
	bool		passthrough;		/* passthrough = yes: inbox/ reads from the spool file (passthrough.h) */

	/* [log] */
	int		log_level;		/* level = info (enum log_level) */
};

void cfg_defaults(struct cfg *cfg);
int cfg_load(const char *path, struct cfg *cfg, char *err, size_t errlen);
void cfg_free(struct cfg *cfg);
int cfg_value(const struct cfg *cfg, const char *section, const char *key, char *out, size_t outlen);
int cfg_key_at(size_t i, const char **section, const char **key);

bool cfg_domain_is_local(const struct cfg *cfg, const char *domain);
const char *cfg_sender_domain(const struct cfg *cfg);
bool cfg_user_is_trusted(const struct cfg *cfg, const char *login);
bool cfg_mailbox_is_known(const struct cfg *cfg, const char *mailbox);
const char *cfg_mailbox_owner(const struct cfg *cfg, const char *mailbox);
bool cfg_net_allows_relay(const struct cfg *cfg, const struct cfg_listener *lst,
    const struct sockaddr *sa);
const struct cfg_listener *cfg_listener_find(const struct cfg *cfg, const char *name);
const struct cfg_odmr *cfg_odmr_find(const struct cfg *cfg, const char *user);
const char *cfg_auth_mode_name(enum cfg_auth_mode mode);
const char *cfg_etrn_mode_name(enum cfg_etrn_mode mode);

/* Parse "host:port" or "[v6]:port" into host (no brackets) and port. 0 or -EINVAL. */
int cfg_split_hostport(const char *spec, char *host, size_t hostlen, unsigned *port);

#endif
