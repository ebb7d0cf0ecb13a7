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
    T_NEXTHOP, T_RESOLVER, T_TLSPOLICY, T_AUTHMODE, T_AUTHMECH };

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
	K("smtpd", "listen", T_HOSTPORT, listen, 0, 0),
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
	K("smtpd", "relay_networks", T_NETS, relay_networks, 0, 0),
	K("smtpd", "auth_users", T_PATH, auth_users, 0, 0),
	K("smtpd", "auth_failure_delay", T_UINT, auth_failure_delay, 0, 60),
	K("smtpd", "auth", T_AUTHMODE, auth.mode, 0, 0),
	K("smtpd", "auth_plaintext", T_BOOL, auth.plaintext, 0, 0),
	K("smtpd", "auth_min_mechanism", T_AUTHMECH, auth.min_mechanism, 0, 0),
	K("smtpd", "restrict_sender", T_BOOL, auth.restrict_sender, 0, 0),
	K("relay", "smarthost", T_NEXTHOP, smarthost, 0, 0),
	K("relay", "resolver", T_RESOLVER, resolver, 0, 0),
	K("relay", "dns_timeout", T_UINT, dns_timeout, 1, 3600),
	K("relay", "retry_min", T_UINT, retry_min, 1, 86400),
	K("relay", "retry_max", T_UINT, retry_max, 1, 7 * 86400),
	K("relay", "max_queue_lifetime", T_UINT, max_queue_lifetime, 1, 365 * 86400),
	K("relay", "bounce_limit_per_hour", T_UINT, bounce_limit_per_hour, 1, 64),
	K("relay", "delay_warning_time", T_UINT, delay_warning_time, 0, 365 * 86400),
	K("relay", "max_deliveries", T_UINT, max_deliveries, 1, 1000),
	K("relay", "scan_interval", T_UINT, scan_interval, 1, 86400),
	K("relay", "connect_timeout", T_UINT, connect_timeout, 1, 3600),
	K("relay", "command_timeout", T_UINT, command_timeout, 1, 3600),
	K("relay", "connection_idle_timeout", T_UINT, connection_idle_timeout, 0, 3600),
	K("relay", "connection_reuse_count_limit", T_UINT, connection_reuse_count_limit, 1, 100000),
	K("relay", "connection_reuse_time_limit", T_UINT, connection_reuse_time_limit, 1, 86400),
	K("relay", "max_per_destination", T_UINT, max_per_destination, 1, 1000),
	K("relay", "keep_sent", T_BOOL, keep_sent, 0, 0),
	K("relay", "tls", T_TLSPOLICY, relay_tls, 0, 0),
	K("relay", "tls_ca_file", T_PATH, relay_tls_ca_file, 0, 0),
	K("relay", "credentials", T_PATH, relay_credentials, 0, 0),
	K("relay", "auth_plaintext", T_BOOL, relay_auth_plaintext, 0, 0),
	K("fs", "mountpoint", T_PATH, mountpoint, 0, 0),
	K("fs", "allow_other", T_BOOL, allow_other, 0, 0),
	K("log", "level", T_LOGLEVEL, log_level, 0, 0),
};

struct cfg_parse {
	struct cfg     *cfg;
	const char     *basedir;	/* directory of the file, for relative paths */
	char		detail[300];	/* what apply_key() found wrong */
	char		msg[1024];	/* first error, without file and line */
	int		err;
	int		err_line;	/* line of that error */
	int		line;		/* line being read */
	FILE	       *fp;
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
free_routes(struct cfg *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_routes; i++) {
		free(cfg->routes[i].domain);
		free(cfg->routes[i].target);
	}
	cfg->n_routes = 0;
}

static int set_string(char **field, const char *value);

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

static const char *const auth_mode_names[] = {
	[CFG_AUTH_NO] = "no", [CFG_AUTH_OFFER] = "offer", [CFG_AUTH_REQUIRED] = "required",
};

static int
parse_auth_mode(const char *value, enum cfg_auth_mode *out, char *msg, size_t msglen)
{
	for (size_t i = 0; i < sizeof(auth_mode_names) / sizeof(auth_mode_names[0]); i++)
		if (strcasecmp(value, auth_mode_names[i]) == 0)
			return (*out = (enum cfg_auth_mode)i), 0;
	snprintf(msg, msglen, "'%s' is not one of no, offer, required", value);
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
	free(cfg->listen);
	free(cfg->banner);
	free(cfg->auth_users);
	free(cfg->auth.min_mechanism);
	free(cfg->smarthost);
	free(cfg->resolver);
	free_routes(cfg);
	cfg_free_relay_tls(cfg);
	free(cfg->mountpoint);
	free_list(cfg->local_domains, &cfg->n_local_domains);
	free_list(cfg->mailboxes, &cfg->n_mailboxes);
	memset(cfg, 0, sizeof(*cfg));
}

static int parse_nets(struct cfg *cfg, const char *value, char *msg, size_t msglen);

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
	cfg->listen = xstrdup("127.0.0.1:2525");
	cfg->banner = xstrdup("spoolgate ESMTP");
	cfg->max_sessions = 100;
	cfg->max_sessions_per_client = 10;
	cfg->max_line = 2048;
	cfg->max_recipients = 100;
	cfg->max_message_size = 10485760;
	cfg->idle_timeout = 300;
	cfg->command_deadline = 300;
	cfg->session_deadline = 3600;
	cfg->max_errors = 20;
	cfg->max_hops = 50;
	cfg->auth_failure_delay = 1;
	parse_nets(cfg, "127.0.0.0/8 ::1/128", NULL, 0);
	cfg->smarthost = xstrdup("127.0.0.1:2525");
	cfg->resolver = xstrdup("");
	cfg->dns_timeout = 30;
	cfg->retry_min = 60;
	cfg->retry_max = 3600;
	cfg->max_queue_lifetime = 432000;
	cfg->bounce_limit_per_hour = 10;
	cfg->delay_warning_time = 0;
	cfg->max_deliveries = 4;
	cfg->scan_interval = 30;
	cfg->connect_timeout = 30;
	cfg->command_timeout = 300;
	cfg->connection_idle_timeout = 5;
	cfg->connection_reuse_count_limit = 100;
	cfg->connection_reuse_time_limit = 300;
	cfg->max_per_destination = 20;
	cfg->keep_sent = true;
	cfg->mountpoint = xstrdup("/run/spoolgate/mnt");
	cfg->allow_other = false;
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
parse_nets(struct cfg *cfg, const char *value, char *msg, size_t msglen)
{
	char *words[CFG_MAX_LIST];
	size_t n = 0, i;
	int r;

	if ((r = split_words(value, words, CFG_MAX_LIST, &n, msg, msglen)) < 0) {
		free_list(words, &n);
		return r;
	}
	cfg->n_relay_networks = 0;
	for (i = 0; i < n; i++) {
		if (parse_one_net(words[i], &cfg->relay_networks[i]) < 0) {
			if (msg != NULL)
				snprintf(msg, msglen, "'%s' is not an address or CIDR network", words[i]);
			free_list(words, &n);
			return -EINVAL;
		}
		cfg->n_relay_networks++;
	}
	free_list(words, &n);
	return 0;
}

static int
parse_domains(struct cfg *cfg, const char *value, char *msg, size_t msglen)
{
	size_t i;
	int r;

	free_list(cfg->local_domains, &cfg->n_local_domains);
	r = split_words(value, cfg->local_domains, CFG_MAX_LIST, &cfg->n_local_domains, msg, msglen);
	if (r < 0)
		return r;
	for (i = 0; i < cfg->n_local_domains; i++) {
		if (addr_domain_valid(cfg->local_domains[i]) < 0) {
			snprintf(msg, msglen, "'%s' is not a domain name", cfg->local_domains[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int
parse_mailboxes(struct cfg *cfg, const char *value, char *msg, size_t msglen)
{
	char name[ADDR_MAILBOX_MAX + 1];
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
		if (addr_mailbox_name(cfg->mailboxes[i], name, sizeof(name)) < 0 ||
		    strcmp(name, cfg->mailboxes[i]) != 0) {
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

static int
apply_key(struct cfg_parse *ps, const struct cfg_key *k, const char *value)
{
	struct cfg *cfg = ps->cfg;
	void *field = (char *)cfg + k->offset;
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
	case T_NETS:
		return parse_nets(cfg, value, ps->detail, sizeof(ps->detail));
	case T_TLSPOLICY:
		return parse_tls_policy(value, field, ps->detail, sizeof(ps->detail));
	case T_AUTHMODE:
		return parse_auth_mode(value, field, ps->detail, sizeof(ps->detail));
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
		    "'%s' is not mx, mx:port, host:port, [host]:port, ip:port or [ipv6]:port", target);
		return -EINVAL;
	}
	if (cfg->n_routes >= CFG_MAX_ROUTES) {
		snprintf(ps->detail, sizeof(ps->detail), "more than %d routes", CFG_MAX_ROUTES);
		return -E2BIG;
	}
	rt = &cfg->routes[cfg->n_routes];
	rt->domain = strdup(domain);
	rt->target = strdup(target);
	if (rt->domain == NULL || rt->target == NULL) {
		free(rt->domain);
		free(rt->target);
		rt->domain = rt->target = NULL;
		return -ENOMEM;
	}
	cfg->n_routes++;
	return 0;
}

static bool
section_is_known(const char *section)
{
	const struct cfg_key *k;

	if (strcmp(section, "routes") == 0)
		return true;

	for (k = cfg_keys; k < cfg_keys + sizeof(cfg_keys) / sizeof(cfg_keys[0]); k++)
		if (strcmp(k->section, section) == 0)
			return true;
	return false;
}

static int
cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parse *ps = user;
	const struct cfg_key *k;
	int r;

	if (ps->err != 0)
		return 1;	/* keep the first error only */
	if (strcmp(section, "routes") == 0) {
		ps->detail[0] = '\0';
		if ((r = apply_route(ps, name, value)) == 0)
			return 1;
		snprintf(ps->msg, sizeof(ps->msg), "[routes] %s: %s", name, ps->detail[0] ? ps->detail : strerror(-r));
		ps->err = r;
		ps->err_line = ps->line;
		return 0;
	}
	for (k = cfg_keys; k < cfg_keys + sizeof(cfg_keys) / sizeof(cfg_keys[0]); k++) {
		if (strcmp(k->section, section) != 0 || strcmp(k->key, name) != 0)
			continue;
		ps->detail[0] = '\0';
		if ((r = apply_key(ps, k, value)) == 0)
			return 1;
		snprintf(ps->msg, sizeof(ps->msg), "[%s] %s: %s", section, name,
		    ps->detail[0] ? ps->detail : strerror(-r));
		ps->err = r;
		ps->err_line = ps->line;
		return 0;
	}
	if (section_is_known(section))
		snprintf(ps->msg, sizeof(ps->msg), "[%s] %s: unknown key", section, name);
	else
		snprintf(ps->msg, sizeof(ps->msg), "[%s] %s: unknown section [%s] (known: spool, smtpd, relay, routes, fs, log)",
		    section, name, section);
	ps->err = -EINVAL;
	ps->err_line = ps->line;
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
cfg_net_allows_relay(const struct cfg *cfg, const struct sockaddr *sa)
{
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
	for (i = 0; i < cfg->n_relay_networks; i++) {
		const struct cfg_net *n = &cfg->relay_networks[i];

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
int
cfg_value(const struct cfg *cfg, const char *section, const char *key, char *out, size_t outlen)
{
	const struct cfg_key *k;
	const void *field;
	const char *s;
	int n;

	for (k = cfg_keys; k < cfg_keys + sizeof(cfg_keys) / sizeof(cfg_keys[0]); k++) {
		if (strcmp(k->section, section) != 0 || strcmp(k->key, key) != 0)
			continue;
		field = (const char *)cfg + k->offset;
		switch (k->type) {
		case T_STRING:
		case T_PATH:
		case T_HOSTPORT:
		case T_NEXTHOP:
		case T_RESOLVER:
		case T_TLSPOLICY:
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
			n = snprintf(out, outlen, "%s", auth_mode_names[*(const enum cfg_auth_mode *)field]);
			break;
		default:
			return -EOPNOTSUPP;	/* lists and levels: not needed by scripts yet */
		}
		return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
	}
	return -ENOENT;
}
