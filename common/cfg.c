/*
 * NAME
 *	cfg - the configuration file
 * DESCRIPTION
 *	See cfg.h.  The keys are one table (cfg_keys) of {section, key, type,
 *	offset}; parsing a value is one function per type.  inih reads the
 *	file and reports the line of the first error; the handler keeps the
 *	first message so that the final error names file, line, section and key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "cfg.h"
#include "log.h"
#include "route.h"

enum cfg_type { T_STRING, T_PATH, T_UINT, T_ULONG, T_BOOL, T_DOMAINS, T_MAILBOXES, T_NETS, T_LOGLEVEL, T_HOSTPORT,
    T_NEXTHOP, T_RESOLVER, T_TLSPOLICY, T_LISTENER_TLS, T_AUTHMODE, T_ETRNMODE, T_LISTENER_NETS, T_USERS, T_DOMAIN,
    T_AUTHMECH, T_OWNERS };

struct cfg_key {
	const char     *section;
	const char     *key;
	enum cfg_type	type;
	size_t		offset;
	unsigned long	min, max;	/* for numbers */
};

#define K(sec, key, type, field, min, max) { sec, key, type, offsetof(struct cfg, field), min, max }

static const struct cfg_key cfg_keys[] = {
	K("spool", "dir", T_PATH, spool_dir, 0, 0),
	K("spool", "local_domains", T_DOMAINS, local_domains, 0, 0),
	K("spool", "mailboxes", T_MAILBOXES, mailboxes, 0, 0),
	K("spool", "user", T_STRING, user, 0, 0),
	K("spool", "hostname", T_STRING, hostname, 0, 0),
	K("spool", "shared", T_BOOL, shared, 0, 0),
	K("spool", "heartbeat_interval", T_UINT, heartbeat_interval, 1, 3600),
	K("spool", "lease_time", T_UINT, lease_time, 3, 86400),
	K("spool", "poll_interval_ms", T_UINT, poll_interval_ms, 10, 60000),
	K("smtpd", "banner", T_STRING, banner, 0, 0),
	K("smtpd", "max_sessions", T_UINT, max_sessions, 1, 100000),
	K("smtpd", "max_sessions_per_client", T_UINT, max_sessions_per_client, 1, 100000),
	K("smtpd", "max_line", T_UINT, max_line, 512, 1u << 20),
	K("smtpd", "max_recipients", T_UINT, max_recipients, 1, 10000),
	K("smtpd", "max_message_size", T_ULONG, max_message_size, 1024, 1ul << 40),
	K("smtpd", "idle_timeout", T_UINT, idle_timeout, 1, 86400),
	K("smtpd", "command_deadline", T_UINT, command_deadline, 1, 86400),
	K("smtpd", "session_deadline", T_UINT, session_deadline, 1, 7 * 86400),
	K("smtpd", "max_errors", T_UINT, max_errors, 1, 10000),
	K("smtpd", "max_hops", T_UINT, max_hops, 1, 1000),
	K("smtpd", "checkpoint_interval", T_ULONG, checkpoint_interval, 4096, 1ul << 40),
	K("smtpd", "checkpoint_lifetime", T_UINT, checkpoint_lifetime, 1, 30 * 86400),
	K("smtpd", "relay_networks", T_NETS, relay_networks, 0, 0),
	K("smtpd", "auth_users", T_PATH, auth_users, 0, 0),
	K("smtpd", "auth_failure_delay", T_UINT, auth_failure_delay, 0, 60),
	K("smtpd", "vrfy", T_BOOL, vrfy, 0, 0),
	K("smtpd", "forwarding", T_BOOL, forwarding, 0, 0),
	K("relay", "smarthost", T_NEXTHOP, smarthost, 0, 0),
	K("relay", "resolver", T_RESOLVER, resolver, 0, 0),
	K("relay", "dns_timeout", T_UINT, dns_timeout, 1, 3600),
	K("relay", "retry_min", T_UINT, retry_min, 1, 86400),
	K("relay", "retry_max", T_UINT, retry_max, 1, 7 * 86400),
	K("relay", "max_queue_lifetime", T_UINT, max_queue_lifetime, 1, 365 * 86400),
	K("relay", "bounce_limit_per_hour", T_UINT, bounce_limit_per_hour, 1, 64),
	K("relay", "delay_warning_time", T_UINT, delay_warning_time, 0, 365 * 86400),
	K("relay", "dsn_full_max", T_UINT, dsn_full_max, 0, 64u << 20),
	K("relay", "max_deliveries", T_UINT, max_deliveries, 1, 1000),
	K("relay", "scan_interval", T_UINT, scan_interval, 1, 86400),
	K("relay", "connect_timeout", T_UINT, connect_timeout, 1, 3600),
	K("relay", "command_timeout", T_UINT, command_timeout, 1, 3600),
	K("relay", "data_done_timeout", T_UINT, data_done_timeout, 1, 3600),
	K("relay", "connection_idle_timeout", T_UINT, connection_idle_timeout, 0, 3600),
	K("relay", "connection_reuse_count_limit", T_UINT, connection_reuse_count_limit, 1, 100000),
	K("relay", "connection_reuse_time_limit", T_UINT, connection_reuse_time_limit, 1, 86400),
	K("relay", "max_per_destination", T_UINT, max_per_destination, 1, 1000),
	K("relay", "keep_sent", T_BOOL, keep_sent, 0, 0),
	K("relay", "tls", T_TLSPOLICY, relay_tls, 0, 0),
	K("relay", "tls_ca_file", T_PATH, relay_tls_ca_file, 0, 0),
	K("relay", "credentials", T_PATH, relay_credentials, 0, 0),
	K("relay", "auth_plaintext", T_BOOL, relay_auth_plaintext, 0, 0),
	K("sendmail", "group", T_STRING, drop_group, 0, 0),
	K("sendmail", "trusted_users", T_USERS, trusted_users, 0, 0),
	K("sendmail", "sender_domain", T_DOMAIN, sender_domain, 0, 0),
	K("aliases", "file", T_PATH, aliases_file, 0, 0),
	K("fs", "mountpoint", T_PATH, mountpoint, 0, 0),
	K("fs", "allow_other", T_BOOL, allow_other, 0, 0),
	K("fs", "mailbox_owners", T_OWNERS, mailbox_owners, 0, 0),
	K("fs", "wait_timeout", T_UINT, wait_timeout, 1, 86400),
	K("fs", "passthrough", T_BOOL, passthrough, 0, 0),
	K("log", "level", T_LOGLEVEL, log_level, 0, 0),
};

/*
 * The keys of a listener, in [listener NAME] and (but relay_networks,
 * which is [smtpd]'s own there) in [smtpd] for the shorthand listener.
 */
#define LK(key, type, field) { "listener", key, type, offsetof(struct cfg_listener, field), 0, 0 }

static const struct cfg_key listener_keys[] = {
	LK("listen", T_HOSTPORT, listen),
	LK("tls", T_LISTENER_TLS, tls),
	LK("tls_cert_file", T_PATH, tls_cert_file),
	LK("tls_key_file", T_PATH, tls_key_file),
	LK("tls_chain_file", T_PATH, tls_chain_file),
	LK("tls_ciphers", T_STRING, tls_ciphers),
	LK("tls_ciphersuites", T_STRING, tls_ciphersuites),
	LK("auth", T_AUTHMODE, auth),
	LK("auth_plaintext", T_BOOL, auth_plaintext),
	LK("auth_min_mechanism", T_AUTHMECH, auth_min_mechanism),
	LK("auth_cram_md5", T_BOOL, auth_cram_md5),
	LK("restrict_sender", T_BOOL, restrict_sender),
	LK("etrn", T_ETRNMODE, etrn),
	LK("odmr", T_BOOL, odmr),
	LK("relay_networks", T_LISTENER_NETS, relay_networks),
	LK("accept_mail", T_BOOL, accept_mail),
};

#define NKEYS(table)	(sizeof(table) / sizeof((table)[0]))
#define SHORTHAND	"smtpd"		/* the listener of [smtpd]'s own keys */
#define SHORTHAND_LISTEN "127.0.0.1:2525"	/* its address unless [smtpd] listen says */

struct cfg_parse {
	struct cfg     *cfg;
	const char     *basedir;	/* directory of the file, for relative paths */
	char		detail[300];	/* what apply_key() found wrong */
	char		msg[1024];	/* first error, without file and line */
	int		err;
	int		err_line;	/* line of that error */
	int		line;		/* line being read */
	FILE	       *fp;
	bool		shorthand_used;	/* a listener key in [smtpd] */
	bool		named_seen;	/* a [listener NAME] section */
};

static char *
xstrdup(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

static void
free_list(char **list, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		free(list[i]);
		list[i] = NULL;
	}
	*n = 0;
}

static void
free_odmr(struct cfg *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_odmr; i++) {
		free(cfg->odmr[i].user);
		free_list(cfg->odmr[i].domains, &cfg->odmr[i].ndomains);
	}
	cfg->n_odmr = 0;
}

static void
free_routes(struct cfg *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_routes; i++) {
		free(cfg->routes[i].domain);
		free(cfg->routes[i].target);
	}
	cfg->n_routes = 0;
}

static void
free_forwards(struct cfg *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_forwards; i++) {
		free(cfg->forwards[i].from);
		free(cfg->forwards[i].to);
	}
	cfg->n_forwards = 0;
}

static int set_string(char **field, const char *value);

static void
listener_free(struct cfg_listener *l)
{
	free(l->name);
	free(l->listen);
	free(l->tls);
	free(l->tls_cert_file);
	free(l->tls_key_file);
	free(l->tls_chain_file);
	free(l->tls_ciphers);
	free(l->tls_ciphersuites);
	free(l->auth_min_mechanism);
	memset(l, 0, sizeof(*l));
}

static void
free_listeners(struct cfg *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_listeners; i++)
		listener_free(&cfg->listeners[i]);
	cfg->n_listeners = 0;
}

/* The relay's TLS and AUTH keys (tls.h and sasl.h give them meaning). */
static void
cfg_free_relay_tls(struct cfg *cfg)
{
	free(cfg->relay_tls);
	free(cfg->relay_tls_ca_file);
	free(cfg->relay_credentials);
	cfg->relay_tls = cfg->relay_tls_ca_file = cfg->relay_credentials = NULL;
}

/*
 * The names of tls.h's policies; common/ does not link OpenSSL, so the
 * list is spelled here and the relay parses the name again with
 * tls_policy_parse().
 */
static int
parse_tls_policy(const char *value, char **field, char *msg, size_t msglen)
{
	static const char *const names[] = { "none", "may", "encrypt", "verify", "wrapper" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(value, names[i]) == 0)
			return set_string(field, names[i]);
	snprintf(msg, msglen, "'%s' is not one of none, may, encrypt, verify, wrapper", value);
	return -EINVAL;
}

/* sasl.h's mechanisms, spelled here as the TLS policies are (no GNU SASL in common/). */
static int
parse_auth_mechanism(const char *value, char **field, char *msg, size_t msglen)
{
	static const char *const names[] = { "LOGIN", "PLAIN", "SCRAM-SHA-256" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(value, names[i]) == 0)
			return set_string(field, names[i]);
	snprintf(msg, msglen, "'%s' is not one of LOGIN, PLAIN, SCRAM-SHA-256", value);
	return -EINVAL;
}

void
cfg_free(struct cfg *cfg)
{
	free(cfg->path);
	free(cfg->spool_dir);
	free(cfg->user);
	free(cfg->hostname);
	free_listeners(cfg);
	free(cfg->banner);
	free(cfg->auth_users);
	free(cfg->smarthost);
	free(cfg->resolver);
	free_routes(cfg);
	free_forwards(cfg);
	free_odmr(cfg);
	cfg_free_relay_tls(cfg);
	free(cfg->mountpoint);
	free(cfg->drop_group);
	free(cfg->sender_domain);
	free(cfg->aliases_file);
	free_list(cfg->trusted_users, &cfg->n_trusted_users);
	free_list(cfg->local_domains, &cfg->n_local_domains);
	free_list(cfg->mailboxes, &cfg->n_mailboxes);
	free_list(cfg->mailbox_owners, &cfg->n_mailbox_owners);
	memset(cfg, 0, sizeof(*cfg));
}

static int parse_nets(struct cfg_net *nets, size_t *n_nets, const char *value, char *msg, size_t msglen);

void
cfg_defaults(struct cfg *cfg)
{
	char host[256];

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = xstrdup("(defaults)");
	cfg->spool_dir = xstrdup("/var/spool/spoolgate");
	cfg->local_domains[0] = xstrdup("localhost");
	cfg->n_local_domains = 1;
	cfg->any_mailbox = true;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = xstrdup(host);
	cfg->listeners[0].name = xstrdup(SHORTHAND);
	cfg->listeners[0].listen = xstrdup(SHORTHAND_LISTEN);
	cfg->listeners[0].accept_mail = true;
	cfg->n_listeners = 1;
	cfg->banner = xstrdup("spoolgate ESMTP");
	cfg->max_sessions = 100;
	cfg->max_sessions_per_client = 10;
	cfg->max_line = 2048;
	cfg->max_recipients = 100;
	cfg->max_message_size = 10485760;
	cfg->idle_timeout = 300;
	cfg->command_deadline = 300;
	cfg->session_deadline = 3600;
	cfg->checkpoint_interval = 1048576;
	cfg->checkpoint_lifetime = 86400;
	cfg->max_errors = 20;
	cfg->max_hops = 50;
	cfg->auth_failure_delay = 1;
	cfg->vrfy = false;
	cfg->forwarding = true;
	parse_nets(cfg->relay_networks, &cfg->n_relay_networks, "127.0.0.0/8 ::1/128", NULL, 0);
	cfg->smarthost = xstrdup("127.0.0.1:2525");
	cfg->resolver = xstrdup("");
	cfg->dns_timeout = 30;
	cfg->retry_min = 60;
	cfg->retry_max = 3600;
	cfg->max_queue_lifetime = 432000;
	cfg->bounce_limit_per_hour = 10;
	cfg->delay_warning_time = 0;
	cfg->dsn_full_max = 1u << 20;
	cfg->max_deliveries = 4;
	cfg->scan_interval = 30;
	cfg->shared = false;
	cfg->heartbeat_interval = 2;
	cfg->lease_time = 20;
	cfg->poll_interval_ms = 500;
	cfg->connect_timeout = 30;
	cfg->command_timeout = 300;
	cfg->data_done_timeout = 600;
	cfg->connection_idle_timeout = 5;
	cfg->connection_reuse_count_limit = 100;
	cfg->connection_reuse_time_limit = 300;
	cfg->max_per_destination = 20;
	cfg->keep_sent = true;
	cfg->mountpoint = xstrdup("/run/spoolgate/mnt");
	cfg->allow_other = false;
	cfg->wait_timeout = 300;
	cfg->passthrough = true;
	cfg->drop_group = xstrdup("spoolgate-drop");
	cfg->trusted_users[0] = xstrdup("root");
	cfg->n_trusted_users = 1;
	cfg->sender_domain = xstrdup("");
	cfg->log_level = LOG_LVL_INFO;
}

/* Splits value at white space or commas into at most max words. */
static int
split_words(const char *value, char **out, size_t max, size_t *n, char *msg, size_t msglen)
{
	char *copy, *word, *save = NULL;

	if ((copy = strdup(value)) == NULL)
		return -ENOMEM;
	*n = 0;
	for (word = strtok_r(copy, " \t,", &save); word; word = strtok_r(NULL, " \t,", &save)) {
		if (*n >= max) {
			snprintf(msg, msglen, "more than %zu entries", max);
			free(copy);
			return -E2BIG;
		}
		if ((out[*n] = strdup(word)) == NULL) {
			free(copy);
			return -ENOMEM;
		}
		(*n)++;
	}
	free(copy);
	return 0;
}

static int
parse_number(const char *value, unsigned long min, unsigned long max, unsigned long *out,
    char *msg, size_t msglen)
{
	char *end;
	unsigned long v;

	errno = 0;
	if (*value < '0' || *value > '9') {
		snprintf(msg, msglen, "'%s' is not a number", value);
		return -EINVAL;
	}
	v = strtoul(value, &end, 10);
	if (errno != 0 || *end != '\0') {
		snprintf(msg, msglen, "'%s' is not a number", value);
		return -EINVAL;
	}
	if (v < min || v > max) {
		snprintf(msg, msglen, "%lu is out of range (%lu..%lu)", v, min, max);
		return -ERANGE;
	}
	*out = v;
	return 0;
}

static int
parse_bool(const char *value, bool *out, char *msg, size_t msglen)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(value, yes[i]) == 0)
			return (*out = true), 0;
		if (strcasecmp(value, no[i]) == 0)
			return (*out = false), 0;
	}
	snprintf(msg, msglen, "'%s' is not yes or no", value);
	return -EINVAL;
}

static int
parse_one_net(const char *word, struct cfg_net *net)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(word, '/');
	size_t alen = slash ? (size_t)(slash - word) : strlen(word);
	unsigned long prefix;
	char *end;

	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, word, alen);
	addr[alen] = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, addr, net->addr) == 1)
		net->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, net->addr) == 1)
		net->family = AF_INET6;
	else
		return -EINVAL;
	net->prefix = net->family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || errno != 0 || prefix > net->prefix)
			return -EINVAL;
		net->prefix = (unsigned)prefix;
	}
	return 0;
}

static int
parse_nets(struct cfg_net *nets, size_t *n_nets, const char *value, char *msg, size_t msglen)
{
	char *words[CFG_MAX_LIST];
	size_t n = 0, i;
	int r;

	if ((r = split_words(value, words, CFG_MAX_LIST, &n, msg, msglen)) < 0) {
		free_list(words, &n);
		return r;
	}
	*n_nets = 0;
	for (i = 0; i < n; i++) {
		if (parse_one_net(words[i], &nets[i]) < 0) {
			if (msg != NULL)
				snprintf(msg, msglen, "'%s' is not an address or CIDR network", words[i]);
			free_list(words, &n);
			return -EINVAL;
		}
		(*n_nets)++;
	}
	free_list(words, &n);
	return 0;
}

typedef bool (*word_check_fn)(const char *word);

/* A list of words (white space or commas), each of which ok() accepts: "'x' is not <what>". */
static int
parse_checked_words(char **list, size_t *n, const char *value, word_check_fn ok, const char *what, char *msg,
    size_t msglen)
{
	size_t i;
	int r;

	free_list(list, n);
	if ((r = split_words(value, list, CFG_MAX_LIST, n, msg, msglen)) < 0)
		return r;
	for (i = 0; i < *n; i++) {
		if (!ok(list[i])) {
			snprintf(msg, msglen, "'%s' is not %s", list[i], what);
			return -EINVAL;
		}
	}
	return 0;
}

static bool
domain_ok(const char *domain)
{
	return addr_domain_valid(domain) == 0;
}

static int
parse_domains(struct cfg *cfg, const char *value, char *msg, size_t msglen)
{
	return parse_checked_words(cfg->local_domains, &cfg->n_local_domains, value, domain_ok, "a domain name",
	    msg, msglen);
}

/* A login name as useradd takes it: a letter or '_', then letters, digits, '_', '-', '.' (32 at most). */
static bool
user_name_valid(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 32 || !((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
		return false;
	for (i = 1; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		    strchr("_-.", name[i]) != NULL))
			return false;
	return true;
}

static int
parse_users(struct cfg *cfg, const char *value, char *msg, size_t msglen)
{
	return parse_checked_words(cfg->trusted_users, &cfg->n_trusted_users, value, user_name_valid, "a user name",
	    msg, msglen);
}

/* A mailbox name as local delivery makes it (addr_mailbox_name() gives it back unchanged). */
static bool
mailbox_name_valid(const char *mailbox)
{
	char name[ADDR_MAILBOX_MAX + 1];

	return addr_mailbox_name(mailbox, name, sizeof(name)) == 0 && strcmp(name, mailbox) == 0;
}

/* "mailbox:login": a mailbox and the Unix user it belongs to. */
static bool
mailbox_owner_valid(const char *word)
{
	const char *colon = strchr(word, ':');
	char mailbox[ADDR_MAILBOX_MAX + 1];
	size_t len;

	if (colon == NULL || (len = (size_t)(colon - word)) == 0 || len >= sizeof(mailbox))
		return false;
	memcpy(mailbox, word, len);
	mailbox[len] = '\0';
	return mailbox_name_valid(mailbox) && user_name_valid(colon + 1);
}

static int
parse_mailbox_owners(struct cfg *cfg, const char *value, char *msg, size_t msglen)
{
	return parse_checked_words(cfg->mailbox_owners, &cfg->n_mailbox_owners, value, mailbox_owner_valid,
	    "mailbox:user (a mailbox name, a colon, a login name)", msg, msglen);
}

static int
parse_mailboxes(struct cfg *cfg, const char *value, char *msg, size_t msglen)
{
	size_t i;
	int r;

	free_list(cfg->mailboxes, &cfg->n_mailboxes);
	cfg->any_mailbox = false;
	r = split_words(value, cfg->mailboxes, CFG_MAX_LIST, &cfg->n_mailboxes, msg, msglen);
	if (r < 0)
		return r;
	for (i = 0; i < cfg->n_mailboxes; i++) {
		if (strcmp(cfg->mailboxes[i], "*") == 0) {
			cfg->any_mailbox = true;
			continue;
		}
		if (!mailbox_name_valid(cfg->mailboxes[i])) {
			snprintf(msg, msglen, "'%s' is not a valid mailbox name (lower-case letters, digits, . _ - +)",
			    cfg->mailboxes[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int
parse_path(const char *basedir, const char *value, char **out)
{
	char *p;

	if (value[0] == '/' || basedir == NULL || basedir[0] == '\0') {
		p = strdup(value);
	} else if (asprintf(&p, "%s/%s", basedir, value) < 0) {
		p = NULL;
	}
	if (p == NULL)
		return -ENOMEM;
	free(*out);
	*out = p;
	return 0;
}

static int
set_string(char **field, const char *value)
{
	char *p = strdup(value);

	if (p == NULL)
		return -ENOMEM;
	free(*field);
	*field = p;
	return 0;
}

/* The names of cfg_auth_mode, in its order. */
static const char *const auth_mode_names[] = { "no", "offer", "required" };

const char *
cfg_auth_mode_name(enum cfg_auth_mode mode)
{
	return (size_t)mode < NKEYS(auth_mode_names) ? auth_mode_names[mode] : "?";
}

/* value as an index into names (case-insensitive).  0 or -EINVAL with msg "'v' is not one of a, b, c". */
static int
parse_enum_name(const char *value, const char *const *names, size_t n, int *out, char *msg, size_t msglen)
{
	size_t i, used;

	for (i = 0; i < n; i++) {
		if (strcasecmp(value, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	used = (size_t)snprintf(msg, msglen, "'%s' is not one of", value);
	for (i = 0; i < n && used < msglen; i++)
		used += (size_t)snprintf(msg + used, msglen - used, "%s %s", i ? "," : "", names[i]);
	return -EINVAL;
}

static int
parse_auth_mode(const char *value, enum cfg_auth_mode *out, char *msg, size_t msglen)
{
	int i = 0, r = parse_enum_name(value, auth_mode_names, NKEYS(auth_mode_names), &i, msg, msglen);

	if (r == 0)
		*out = (enum cfg_auth_mode)i;
	return r;
}

/* The names of cfg_etrn_mode, in its order. */
static const char *const etrn_mode_names[] = { "yes", "relay", "no" };

const char *
cfg_etrn_mode_name(enum cfg_etrn_mode mode)
{
	return (size_t)mode < NKEYS(etrn_mode_names) ? etrn_mode_names[mode] : "?";
}

static int
parse_etrn_mode(const char *value, enum cfg_etrn_mode *out, char *msg, size_t msglen)
{
	int i = 0, r = parse_enum_name(value, etrn_mode_names, NKEYS(etrn_mode_names), &i, msg, msglen);

	if (r == 0)
		*out = (enum cfg_etrn_mode)i;
	return r;
}

/* A listener's tls: the relay's policy names but verify (a server does not verify clients). */
static int
parse_listener_tls(const char *value, char **field, char *msg, size_t msglen)
{
	if (strcasecmp(value, "verify") == 0) {
		snprintf(msg, msglen, "'%s' is a relay policy; a listener's tls is one of none, may, encrypt, wrapper",
		    value);
		return -EINVAL;
	}
	if (parse_tls_policy(value, field, msg, msglen) < 0) {
		snprintf(msg, msglen, "'%s' is not one of none, may, encrypt, wrapper", value);
		return -EINVAL;
	}
	return 0;
}

/* Applies one key to base: the struct cfg, or a struct cfg_listener for listener_keys. */
static int
apply_key(struct cfg_parse *ps, const struct cfg_key *k, void *base, const char *value)
{
	struct cfg *cfg = ps->cfg;
	void *field = (char *)base + k->offset;
	struct cfg_listener *lst = base;
	struct route_nexthop nh;
	char host[256];
	unsigned long v;
	unsigned port;
	enum log_level lvl;
	int r;

	switch (k->type) {
	case T_STRING:
		return set_string(field, value);
	case T_PATH:
		if (*value == '\0') {
			snprintf(ps->detail, sizeof(ps->detail), "empty path");
			return -EINVAL;
		}
		return parse_path(ps->basedir, value, field);
	case T_HOSTPORT:
		if (cfg_split_hostport(value, host, sizeof(host), &port) < 0) {
			snprintf(ps->detail, sizeof(ps->detail), "'%s' is not host:port or [ipv6]:port", value);
			return -EINVAL;
		}
		return set_string(field, value);
	case T_NEXTHOP:
		if (*value != '\0' && route_parse_nexthop(value, &nh) < 0) {
			snprintf(ps->detail, sizeof(ps->detail),
			    "'%s' is not host:port, [host]:port, ip:port, [ipv6]:port or empty (route by MX)", value);
			return -EINVAL;
		}
		return set_string(field, value);
	case T_RESOLVER:
		if (*value != '\0' && (route_parse_nexthop(value, &nh) < 0 || !nh.literal)) {
			snprintf(ps->detail, sizeof(ps->detail),
			    "'%s' is not ip:port or [ipv6]:port of a DNS server, or empty (/etc/resolv.conf)", value);
			return -EINVAL;
		}
		return set_string(field, value);
	case T_UINT:
		if ((r = parse_number(value, k->min, k->max, &v, ps->detail, sizeof(ps->detail))) < 0)
			return r;
		*(unsigned *)field = (unsigned)v;
		return 0;
	case T_ULONG:
		if ((r = parse_number(value, k->min, k->max, &v, ps->detail, sizeof(ps->detail))) < 0)
			return r;
		*(unsigned long *)field = v;
		return 0;
	case T_BOOL:
		return parse_bool(value, field, ps->detail, sizeof(ps->detail));
	case T_DOMAINS:
		return parse_domains(cfg, value, ps->detail, sizeof(ps->detail));
	case T_MAILBOXES:
		return parse_mailboxes(cfg, value, ps->detail, sizeof(ps->detail));
	case T_USERS:
		return parse_users(cfg, value, ps->detail, sizeof(ps->detail));
	case T_OWNERS:
		return parse_mailbox_owners(cfg, value, ps->detail, sizeof(ps->detail));
	case T_DOMAIN:
		if (*value != '\0' && addr_domain_valid(value) < 0) {
			snprintf(ps->detail, sizeof(ps->detail), "'%s' is not a domain name (or empty: [spool] hostname)",
			    value);
			return -EINVAL;
		}
		return set_string(field, value);
	case T_NETS:
		return parse_nets(cfg->relay_networks, &cfg->n_relay_networks, value, ps->detail,
		    sizeof(ps->detail));
	case T_LISTENER_NETS:
		lst->relay_networks_set = true;
		return parse_nets(lst->relay_networks, &lst->n_relay_networks, value, ps->detail,
		    sizeof(ps->detail));
	case T_LISTENER_TLS:
		return parse_listener_tls(value, field, ps->detail, sizeof(ps->detail));
	case T_AUTHMODE:
		return parse_auth_mode(value, field, ps->detail, sizeof(ps->detail));
	case T_ETRNMODE:
		return parse_etrn_mode(value, field, ps->detail, sizeof(ps->detail));
	case T_TLSPOLICY:
		return parse_tls_policy(value, field, ps->detail, sizeof(ps->detail));
	case T_AUTHMECH:
		return parse_auth_mechanism(value, field, ps->detail, sizeof(ps->detail));
	case T_LOGLEVEL:
		if (log_level_parse(value, &lvl) < 0) {
			snprintf(ps->detail, sizeof(ps->detail), "'%s' is not one of debug, info, warn, error", value);
			return -EINVAL;
		}
		*(int *)field = (int)lvl;
		return 0;
	}
	return -EINVAL;
}

/* "example.org", ".example.org" or "*". */
static bool
route_domain_valid(const char *domain)
{
	if (strcmp(domain, "*") == 0)
		return true;
	if (domain[0] == '.')
		domain++;
	return domain[0] != '[' && strlen(domain) <= ROUTE_HOST_MAX && addr_domain_valid(domain) == 0;
}

/* The two strings of a [routes] or [forwards] line, both or neither. */
static int
dup_pair(char **a, const char *va, char **b, const char *vb)
{
	*a = strdup(va);
	*b = strdup(vb);
	if (*a == NULL || *b == NULL) {
		free(*a);
		free(*b);
		*a = *b = NULL;
		return -ENOMEM;
	}
	return 0;
}

static bool
odmr_user_valid(const char *user)
{
	size_t n = strlen(user), i;

	for (i = 0; i < n; i++)
		if (user[i] <= ' ' || user[i] > '~')
			return false;
	return n > 0 && n <= 255;
}

/* One line of [odmr]: user = domain ... */
static int
apply_odmr(struct cfg_parse *ps, const char *user, const char *value)
{
	struct cfg *cfg = ps->cfg;
	struct cfg_odmr *o;
	int r;

	if (!odmr_user_valid(user)) {
		snprintf(ps->detail, sizeof(ps->detail), "'%s' is not a user name", user);
		return -EINVAL;
	}
	if (cfg_odmr_find(cfg, user) != NULL) {
		snprintf(ps->detail, sizeof(ps->detail), "a second line for '%s'", user);
		return -EEXIST;
	}
	if (cfg->n_odmr >= CFG_MAX_ODMR) {
		snprintf(ps->detail, sizeof(ps->detail), "more than %d users", CFG_MAX_ODMR);
		return -E2BIG;
	}
	o = &cfg->odmr[cfg->n_odmr];
	if ((o->user = strdup(user)) == NULL)
		return -ENOMEM;
	cfg->n_odmr++;
	if ((r = parse_checked_words(o->domains, &o->ndomains, value, domain_ok, "a domain name", ps->detail,
	    sizeof(ps->detail))) < 0)
		return r;
	if (o->ndomains == 0) {
		snprintf(ps->detail, sizeof(ps->detail), "no domain for '%s'", user);
		return -EINVAL;
	}
	return 0;
}

const struct cfg_odmr *
cfg_odmr_find(const struct cfg *cfg, const char *user)
{
	size_t i;

	for (i = 0; i < cfg->n_odmr; i++)
		if (strcmp(cfg->odmr[i].user, user) == 0)
			return &cfg->odmr[i];
	return NULL;
}

/* One line of [routes]. */
static int
apply_route(struct cfg_parse *ps, const char *domain, const char *target)
{
	struct cfg *cfg = ps->cfg;
	struct route_nexthop nh;
	struct cfg_route *rt;
	size_t i;

	if (!route_domain_valid(domain)) {
		snprintf(ps->detail, sizeof(ps->detail), "'%s' is not a domain, .domain or *", domain);
		return -EINVAL;
	}
	for (i = 0; i < cfg->n_routes; i++) {
		if (strcasecmp(cfg->routes[i].domain, domain) == 0) {
			snprintf(ps->detail, sizeof(ps->detail), "a second route for '%s'", domain);
			return -EEXIST;
		}
	}
	if (route_parse_target(target, &nh) < 0) {
		snprintf(ps->detail, sizeof(ps->detail),
		    "'%s' is not mx, mx:port, host:port, [host]:port, ip:port, [ipv6]:port, hold or hold <one of these>,"
		    " then tls=, auth_plaintext=, tls_ca_file= if any",
		    target);
		return -EINVAL;
	}
	if (cfg->n_routes >= CFG_MAX_ROUTES) {
		snprintf(ps->detail, sizeof(ps->detail), "more than %d routes", CFG_MAX_ROUTES);
		return -E2BIG;
	}
	rt = &cfg->routes[cfg->n_routes];
	if (dup_pair(&rt->domain, domain, &rt->target, target) < 0)
		return -ENOMEM;
	cfg->n_routes++;
	return 0;
}

/* "local@domain", as addr_parse_path() would give it back (no brackets, no route). */
static bool
forward_address_valid(const char *addr)
{
	char path[ADDR_MAX + 2], out[ADDR_MAX];
	const char *rest;

	if (strlen(addr) >= ADDR_MAX - 2 || addr_split(addr) < 0)
		return false;
	snprintf(path, sizeof(path), "<%s>", addr);
	return addr_parse_path(path, out, sizeof(out), &rest, 0) == 0 && *rest == '\0' && strcmp(out, addr) == 0;
}

/* One line of [forwards]: an address, the address its mail goes to. */
static int
apply_forward(struct cfg_parse *ps, const char *from, const char *to)
{
	struct cfg *cfg = ps->cfg;
	struct cfg_forward *fw;
	size_t i;

	if (!forward_address_valid(from) || !forward_address_valid(to)) {
		snprintf(ps->detail, sizeof(ps->detail), "'%s = %s' is not local@domain = local@domain",
		    from, to);
		return -EINVAL;
	}
	for (i = 0; i < cfg->n_forwards; i++) {
		if (addr_same_mailbox(cfg->forwards[i].from, from)) {
			snprintf(ps->detail, sizeof(ps->detail), "a second forward for '%s'", from);
			return -EEXIST;
		}
	}
	if (cfg->n_forwards >= CFG_MAX_FORWARDS) {
		snprintf(ps->detail, sizeof(ps->detail), "more than %d forwards", CFG_MAX_FORWARDS);
		return -E2BIG;
	}
	fw = &cfg->forwards[cfg->n_forwards];
	if (dup_pair(&fw->from, from, &fw->to, to) < 0)
		return -ENOMEM;
	cfg->n_forwards++;
	return 0;
}

/* Every [forwards] key is in a local domain (known only once the whole file is read). */
static int
forwards_finish(const struct cfg *cfg, char *msg, size_t msglen)
{
	size_t i;

	for (i = 0; i < cfg->n_forwards; i++) {
		const char *from = cfg->forwards[i].from;

		if (!cfg_domain_is_local(cfg, from + addr_split(from) + 1)) {
			snprintf(msg, msglen, "[forwards] %s: not in [spool] local_domains (only local "
			    "addresses can be forwarded)", from);
			return -EINVAL;
		}
	}
	return 0;
}

/* "listener NAME" -> NAME; NULL for any other section. */
static const char *
listener_section_name(const char *section)
{
	static const char prefix[] = "listener ";

	if (strncmp(section, prefix, sizeof(prefix) - 1) != 0)
		return NULL;
	return section + sizeof(prefix) - 1;
}

static bool
listener_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= CFG_LISTENER_NAME_MAX)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == len;
}

static struct cfg_listener *
listener_lookup(struct cfg *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_listeners; i++)
		if (strcmp(cfg->listeners[i].name, name) == 0)
			return &cfg->listeners[i];
	return NULL;
}

const struct cfg_listener *
cfg_listener_find(const struct cfg *cfg, const char *name)
{
	return listener_lookup((struct cfg *)cfg, name);
}

/* The listener named name, made when new; NULL with ps->detail set when there is no room. */
static struct cfg_listener *
listener_get(struct cfg_parse *ps, const char *name)
{
	struct cfg *cfg = ps->cfg;
	struct cfg_listener *l;

	if ((l = listener_lookup(cfg, name)) != NULL)
		return l;
	if (cfg->n_listeners == CFG_MAX_LISTENERS) {
		snprintf(ps->detail, sizeof(ps->detail), "more than %d listeners", CFG_MAX_LISTENERS);
		return NULL;
	}
	l = &cfg->listeners[cfg->n_listeners];
	memset(l, 0, sizeof(*l));
	l->accept_mail = true;
	if ((l->name = strdup(name)) == NULL) {
		snprintf(ps->detail, sizeof(ps->detail), "out of memory");
		return NULL;
	}
	cfg->n_listeners++;
	return l;
}

static const struct cfg_key *
key_find(const struct cfg_key *table, size_t n, const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(table[i].section, section) == 0 && strcmp(table[i].key, name) == 0)
			return &table[i];
	return NULL;
}

static bool
section_is_known(const char *section)
{
	const struct cfg_key *k;

	if (strcmp(section, "routes") == 0 || strcmp(section, "forwards") == 0 || strcmp(section, "odmr") == 0 ||
	    listener_section_name(section) != NULL)
		return true;

	for (k = cfg_keys; k < cfg_keys + NKEYS(cfg_keys); k++)
		if (strcmp(k->section, section) == 0)
			return true;
	return false;
}

/* Records the first error: "[section] name: what". Returns inih's 0 (stop). */
static int
parse_failed(struct cfg_parse *ps, const char *section, const char *name, int r)
{
	snprintf(ps->msg, sizeof(ps->msg), "[%s] %s: %s", section, name, ps->detail[0] ? ps->detail : strerror(-r));
	ps->err = r;
	ps->err_line = ps->line;
	return 0;
}

/* One key of a listener (section is "smtpd" for the shorthand or "listener NAME"). */
static int
apply_listener_key(struct cfg_parse *ps, const char *section, const char *lname, const char *name,
    const char *value)
{
	const struct cfg_key *k = key_find(listener_keys, NKEYS(listener_keys), "listener", name);
	struct cfg_listener *l;
	int r;

	if (k == NULL) {
		snprintf(ps->detail, sizeof(ps->detail), "unknown key");
		return parse_failed(ps, section, name, -EINVAL);
	}
	if ((l = listener_get(ps, lname)) == NULL)
		return parse_failed(ps, section, name, -EINVAL);
	if ((r = apply_key(ps, k, l, value)) < 0)
		return parse_failed(ps, section, name, r);
	return 1;
}

static int
cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parse *ps = user;
	const struct cfg_key *k;
	const char *lname;
	int r;

	if (ps->err != 0)
		return 1;	/* keep the first error only */
	ps->detail[0] = '\0';
	if (strcmp(section, "routes") == 0 || strcmp(section, "odmr") == 0) {
		if ((r = (section[0] == 'r' ? apply_route : apply_odmr)(ps, name, value)) == 0)
			return 1;
		return parse_failed(ps, section, name, r);
	}
	if (strcmp(section, "forwards") == 0) {
		if ((r = apply_forward(ps, name, value)) == 0)
			return 1;
		return parse_failed(ps, section, name, r);
	}
	if ((k = key_find(cfg_keys, NKEYS(cfg_keys), section, name)) != NULL) {
		if ((r = apply_key(ps, k, ps->cfg, value)) == 0)
			return 1;
		return parse_failed(ps, section, name, r);
	}
	if (strcmp(section, "smtpd") == 0 && key_find(listener_keys, NKEYS(listener_keys), "listener", name)) {
		ps->shorthand_used = true;
		return apply_listener_key(ps, section, SHORTHAND, name, value);
	}
	if ((lname = listener_section_name(section)) != NULL) {
		if (!listener_name_valid(lname) || strcmp(lname, SHORTHAND) == 0) {
			snprintf(ps->detail, sizeof(ps->detail),
			    "'%s' is not a listener name (1 to %d letters, digits, '-' or '_'; not \"%s\")",
			    lname, CFG_LISTENER_NAME_MAX - 1, SHORTHAND);
			return parse_failed(ps, section, name, -EINVAL);
		}
		ps->named_seen = true;
		return apply_listener_key(ps, section, lname, name, value);
	}
	if (section_is_known(section))
		snprintf(ps->detail, sizeof(ps->detail), "unknown key");
	else
		snprintf(ps->detail, sizeof(ps->detail),
		    "unknown section [%s] (known: spool, smtpd, listener NAME, relay, routes, forwards, odmr, sendmail, aliases, fs, log)", section);
	return parse_failed(ps, section, name, -EINVAL);
}

/* "[smtpd]" or "[listener NAME]", for messages. */
static void
listener_section(const struct cfg_listener *l, char *buf, size_t len)
{
	if (strcmp(l->name, SHORTHAND) == 0)
		snprintf(buf, len, "[%s]", SHORTHAND);
	else
		snprintf(buf, len, "[listener %s]", l->name);
}

/* Defaults that depend on other keys, and what no single key can check. */
static int
listener_finish(struct cfg *cfg, struct cfg_listener *l, char *msg, size_t msglen)
{
	char sect[CFG_LISTENER_NAME_MAX + 16];
	size_t i;

	listener_section(l, sect, sizeof(sect));
	if (l->listen == NULL) {
		snprintf(msg, msglen, "%s has no listen address (listen = host:port)", sect);
		return -EINVAL;
	}
	for (i = 0; &cfg->listeners[i] != l; i++) {
		if (strcmp(cfg->listeners[i].listen, l->listen) == 0) {
			snprintf(msg, msglen, "%s listen = %s: already the address of another listener", sect, l->listen);
			return -EINVAL;
		}
	}
	if (l->tls == NULL && (l->tls = strdup(l->tls_cert_file != NULL ? "may" : "none")) == NULL)
		return -ENOMEM;
	if (strcmp(l->tls, "none") != 0 && (l->tls_cert_file == NULL || l->tls_key_file == NULL)) {
		snprintf(msg, msglen, "%s tls = %s needs tls_cert_file and tls_key_file", sect, l->tls);
		return -EINVAL;
	}
	if (l->auth_cram_md5 && !l->odmr) {
		snprintf(msg, msglen, "%s auth_cram_md5 = yes needs odmr = yes: CRAM-MD5 is only for ODMR clients "
		    "(fetchmail) that know no other mechanism", sect);
		return -EINVAL;
	}
	if (!l->relay_networks_set) {
		memcpy(l->relay_networks, cfg->relay_networks, sizeof(l->relay_networks));
		l->n_relay_networks = cfg->n_relay_networks;
	}
	return 0;
}

/*
 * The [smtpd] shorthand listener: made by a listener key in [smtpd], or
 * by the absence of any listener; first in the list, listen defaulted.
 */
static int
shorthand_finish(struct cfg_parse *ps)
{
	struct cfg *cfg = ps->cfg;
	struct cfg_listener *l, tmp;

	if (!ps->shorthand_used && cfg->n_listeners > 0)
		return 0;
	if ((l = listener_get(ps, SHORTHAND)) == NULL)
		return -ENOMEM;
	if (l->listen == NULL && (l->listen = strdup(SHORTHAND_LISTEN)) == NULL)
		return -ENOMEM;
	if (l != &cfg->listeners[0]) {
		tmp = *l;
		memmove(&cfg->listeners[1], &cfg->listeners[0], (size_t)(l - cfg->listeners) * sizeof(tmp));
		cfg->listeners[0] = tmp;
	}
	return 0;
}

static int
listeners_finish(struct cfg_parse *ps, char *msg, size_t msglen)
{
	struct cfg *cfg = ps->cfg;
	size_t i;
	int r;

	if ((r = shorthand_finish(ps)) < 0) {
		snprintf(msg, msglen, "out of memory");
		return r;
	}
	for (i = 0; i < cfg->n_listeners; i++)
		if ((r = listener_finish(cfg, &cfg->listeners[i], msg, msglen)) < 0)
			return r;
	return 0;
}

/* inih's reader: fgets that counts lines, so the handler knows where it is. */
static char *
read_counting_lines(char *str, int num, void *stream)
{
	struct cfg_parse *ps = stream;

	ps->line++;
	return fgets(str, num, ps->fp);
}

static char *
directory_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int
cfg_load(const char *path, struct cfg *cfg, char *err, size_t errlen)
{
	struct cfg_parse ps;
	FILE *fp;
	int line, r = 0;

	cfg_defaults(cfg);
	free_listeners(cfg);		/* the file's, or the shorthand at the end */
	memset(&ps, 0, sizeof(ps));
	ps.cfg = cfg;
	if ((fp = fopen(path, "re")) == NULL) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return r;
	}
	free(cfg->path);
	cfg->path = strdup(path);
	if ((ps.basedir = directory_of(path)) == NULL || cfg->path == NULL) {
		fclose(fp);
		free((char *)ps.basedir);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	ps.fp = fp;
	line = ini_parse_stream(read_counting_lines, &ps, cfg_handler, &ps);
	fclose(fp);
	free((char *)ps.basedir);
	if (line != 0) {
		/* inih reports the first error's line; a syntax error may come before the handler's. */
		if (ps.err == 0 || line < ps.err_line) {
			ps.err = -EINVAL;
			snprintf(ps.msg, sizeof(ps.msg), "syntax error (expected [section] or key = value)");
		} else {
			line = ps.err_line;
		}
		snprintf(err, errlen, "%s:%d: %s", path, line, ps.msg);
		return ps.err;
	}
	if ((r = listeners_finish(&ps, ps.msg, sizeof(ps.msg))) < 0 ||
	    (r = forwards_finish(cfg, ps.msg, sizeof(ps.msg))) < 0) {
		snprintf(err, errlen, "%s: %s", path, ps.msg);
		return r;
	}
	if (cfg->lease_time < 2 * cfg->heartbeat_interval + 1) {
		/* A node must be able to miss a heartbeat without losing its claims. */
		snprintf(err, errlen, "%s: [spool] lease_time (%u) must be more than twice heartbeat_interval (%u)",
		    path, cfg->lease_time, cfg->heartbeat_interval);
		return -EINVAL;
	}
	if (cfg->retry_max < cfg->retry_min) {
		snprintf(err, errlen, "%s: [relay] retry_max (%u) is less than retry_min (%u)",
		    path, cfg->retry_max, cfg->retry_min);
		return -EINVAL;
	}
	return 0;
}

bool
cfg_domain_is_local(const struct cfg *cfg, const char *domain)
{
	size_t i;

	for (i = 0; i < cfg->n_local_domains; i++)
		if (strcasecmp(cfg->local_domains[i], domain) == 0)
			return true;
	return false;
}

const char *
cfg_sender_domain(const struct cfg *cfg)
{
	if (cfg->sender_domain != NULL && cfg->sender_domain[0] != '\0')
		return cfg->sender_domain;
	if (cfg->hostname != NULL && addr_domain_valid(cfg->hostname) == 0)
		return cfg->hostname;
	return "localhost";
}

bool
cfg_user_is_trusted(const struct cfg *cfg, const char *login)
{
	size_t i;

	for (i = 0; i < cfg->n_trusted_users; i++)
		if (strcmp(cfg->trusted_users[i], login) == 0)
			return true;
	return false;
}

const char *
cfg_mailbox_owner(const struct cfg *cfg, const char *mailbox)
{
	size_t i, len = strlen(mailbox);

	for (i = 0; i < cfg->n_mailbox_owners; i++)
		if (strncmp(cfg->mailbox_owners[i], mailbox, len) == 0 && cfg->mailbox_owners[i][len] == ':')
			return cfg->mailbox_owners[i] + len + 1;
	return mailbox;
}

bool
cfg_mailbox_is_known(const struct cfg *cfg, const char *mailbox)
{
	size_t i;

	if (cfg->any_mailbox || strcmp(mailbox, "postmaster") == 0)
		return true;
	for (i = 0; i < cfg->n_mailboxes; i++)
		if (strcmp(cfg->mailboxes[i], mailbox) == 0)
			return true;
	return false;
}

static bool
prefix_matches(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool
cfg_net_allows_relay(const struct cfg *cfg, const struct cfg_listener *lst, const struct sockaddr *sa)
{
	const struct cfg_net *nets = lst != NULL ? lst->relay_networks : cfg->relay_networks;
	size_t n_nets = lst != NULL ? lst->n_relay_networks : cfg->n_relay_networks;
	unsigned char addr[16];
	int family;
	size_t i;

	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			memcpy(addr, a6->s6_addr + 12, 4);
		} else {
			family = AF_INET6;
			memcpy(addr, a6->s6_addr, 16);
		}
	} else {
		return false;
	}
	for (i = 0; i < n_nets; i++) {
		const struct cfg_net *n = &nets[i];

		if (n->family == family && prefix_matches(addr, n->addr, n->prefix))
			return true;
	}
	return false;
}

int
cfg_split_hostport(const char *spec, char *host, size_t hostlen, unsigned *port)
{
	const char *colon, *hstart = spec, *hend;
	unsigned long p;
	char *end;

	if (spec[0] == '[') {
		hstart = spec + 1;
		if ((hend = strchr(hstart, ']')) == NULL || hend[1] != ':')
			return -EINVAL;
		colon = hend + 1;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL || memchr(spec, ':', (size_t)(colon - spec)))
			return -EINVAL;
		hend = colon;
	}
	if (hend == hstart || (size_t)(hend - hstart) >= hostlen || colon[1] == '\0')
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || p == 0 || p > 65535 || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	memcpy(host, hstart, (size_t)(hend - hstart));
	host[hend - hstart] = '\0';
	*port = (unsigned)p;
	return 0;
}

/* The value of one key as the daemons use it: scalar keys only. */
static int
format_value(const struct cfg_key *k, const void *base, char *out, size_t outlen)
{
	const void *field = (const char *)base + k->offset;
	const char *s;
	int n;

	switch (k->type) {
	case T_STRING:
	case T_PATH:
	case T_HOSTPORT:
	case T_NEXTHOP:
	case T_RESOLVER:
	case T_TLSPOLICY:
	case T_LISTENER_TLS:
	case T_DOMAIN:
	case T_AUTHMECH:
		s = *(char *const *)field;
		n = snprintf(out, outlen, "%s", s != NULL ? s : "");
		break;
	case T_UINT:
		n = snprintf(out, outlen, "%u", *(const unsigned *)field);
		break;
	case T_ULONG:
		n = snprintf(out, outlen, "%lu", *(const unsigned long *)field);
		break;
	case T_BOOL:
		n = snprintf(out, outlen, "%s", *(const bool *)field ? "yes" : "no");
		break;
	case T_AUTHMODE:
		n = snprintf(out, outlen, "%s", cfg_auth_mode_name(*(const enum cfg_auth_mode *)field));
		break;
	case T_ETRNMODE:
		n = snprintf(out, outlen, "%s", cfg_etrn_mode_name(*(const enum cfg_etrn_mode *)field));
		break;
	default:
		return -EOPNOTSUPP;	/* lists and levels: not needed by scripts yet */
	}
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int
cfg_value(const struct cfg *cfg, const char *section, const char *key, char *out, size_t outlen)
{
	const struct cfg_listener *l;
	const struct cfg_key *k;
	const char *lname = listener_section_name(section);

	if ((k = key_find(cfg_keys, NKEYS(cfg_keys), section, key)) != NULL)
		return format_value(k, cfg, out, outlen);
	if (strcmp(section, "smtpd") == 0)
		lname = SHORTHAND;
	if (lname == NULL || (k = key_find(listener_keys, NKEYS(listener_keys), "listener", key)) == NULL ||
	    (l = cfg_listener_find(cfg, lname)) == NULL)
		return -ENOENT;
	return format_value(k, l, out, outlen);
}

int
cfg_key_at(size_t i, const char **section, const char **key)
{
	const struct cfg_key *k;

	if (i < NKEYS(cfg_keys))
		k = &cfg_keys[i];
	else if (i - NKEYS(cfg_keys) < NKEYS(listener_keys))
		k = &listener_keys[i - NKEYS(cfg_keys)];
	else
		return -ENOENT;
	*section = k->section;
	*key = k->key;
	return 0;
}
