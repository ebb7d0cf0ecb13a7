/*
 * NAME
 *	test_cfg - unit tests of the configuration file
 * SYNOPSIS
 *	test_cfg
 * DESCRIPTION
 *	cfg_defaults() sets every documented default; a file that sets every
 *	key is read back field by field; each kind of error (bad number, out
 *	of range, unknown key, unknown section, bad bool, bad CIDR, bad
 *	mailbox name, a syntax error, ...) fails and its message names
 *	"file:line: [section] key"; relative paths are resolved against the
 *	directory of the file; cfg_value() prints scalar keys as used and
 *	refuses unknown keys and lists; cfg_net_allows_relay() for IPv4, IPv6 and
 *	IPv4-mapped IPv6 clients; cfg_split_hostport(); every smarthost form
 *	(names, [names], literals, empty = MX), resolver and dns_timeout,
 *	[routes] lines (domain, .domain, *; next hop or mx[:port]) with their
 *	errors (bad target, bad domain, a domain twice, more than 256).  The
 *	files are written into a temporary directory under /tmp.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "testutil.h"

#define PATH_LEN	1024

static char tmpbase[PATH_LEN];

static void
base_setup(void)
{
	testutil_mkdtemp(tmpbase, sizeof(tmpbase), "cfg");
}

static void
base_teardown(void)
{
	testutil_rmtree(tmpbase);
}

/* Writes text to tmpbase/name; the full path into path. */
static void
write_conf(const char *name, const char *text, char *path)
{
	FILE *fp;
	int n = snprintf(path, PATH_LEN, "%.900s/%.100s", tmpbase, name);

	ck_assert(n > 0 && n < PATH_LEN);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	ck_assert_int_eq(fputs(text, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
}

START_TEST(test_defaults)
{
	struct cfg cfg;

	cfg_defaults(&cfg);
	ck_assert_str_eq(cfg.path, "(defaults)");
	ck_assert_str_eq(cfg.spool_dir, "/var/spool/spoolgate");
	ck_assert_uint_eq(cfg.n_local_domains, 1);
	ck_assert_str_eq(cfg.local_domains[0], "localhost");
	ck_assert(cfg.any_mailbox);
	ck_assert_uint_eq(cfg.n_mailboxes, 0);
	ck_assert_ptr_nonnull(cfg.hostname);
	ck_assert(cfg.hostname[0] != '\0');
	ck_assert_uint_eq(cfg.n_listeners, 1);
	ck_assert_str_eq(cfg.listeners[0].name, "smtpd");
	ck_assert_str_eq(cfg.listeners[0].listen, "127.0.0.1:2525");
	ck_assert_str_eq(cfg.banner, "spoolgate ESMTP");
	ck_assert_uint_eq(cfg.max_sessions, 100);
	ck_assert_uint_eq(cfg.max_sessions_per_client, 10);
	ck_assert_uint_eq(cfg.max_line, 2048);
	ck_assert_uint_eq(cfg.max_recipients, 100);
	ck_assert_uint_eq(cfg.max_message_size, 10485760);
	ck_assert_uint_eq(cfg.idle_timeout, 300);
	ck_assert_uint_eq(cfg.command_deadline, 300);
	ck_assert_uint_eq(cfg.session_deadline, 3600);
	ck_assert_uint_eq(cfg.max_errors, 20);
	ck_assert_uint_eq(cfg.max_hops, 50);
	ck_assert_uint_eq(cfg.n_relay_networks, 2);
	ck_assert_int_eq(cfg.relay_networks[0].family, AF_INET);
	ck_assert_uint_eq(cfg.relay_networks[0].prefix, 8);
	ck_assert_int_eq(cfg.relay_networks[0].addr[0], 127);
	ck_assert_int_eq(cfg.relay_networks[1].family, AF_INET6);
	ck_assert_uint_eq(cfg.relay_networks[1].prefix, 128);
	ck_assert_str_eq(cfg.smarthost, "127.0.0.1:2525");
	ck_assert_str_eq(cfg.resolver, "");
	ck_assert_uint_eq(cfg.dns_timeout, 30);
	ck_assert_uint_eq(cfg.n_routes, 0);
	ck_assert_uint_eq(cfg.retry_min, 60);
	ck_assert_uint_eq(cfg.retry_max, 3600);
	ck_assert_uint_eq(cfg.max_queue_lifetime, 432000);
	ck_assert_uint_eq(cfg.bounce_limit_per_hour, 10);
	ck_assert_uint_eq(cfg.delay_warning_time, 0);
	ck_assert_uint_eq(cfg.max_deliveries, 4);
	ck_assert_uint_eq(cfg.scan_interval, 30);
	ck_assert_uint_eq(cfg.connect_timeout, 30);
	ck_assert_uint_eq(cfg.command_timeout, 300);
	ck_assert_uint_eq(cfg.data_done_timeout, 600);
	ck_assert_uint_eq(cfg.connection_idle_timeout, 5);
	ck_assert_uint_eq(cfg.connection_reuse_count_limit, 100);
	ck_assert_uint_eq(cfg.connection_reuse_time_limit, 300);
	ck_assert_uint_eq(cfg.max_per_destination, 20);
	ck_assert(cfg.keep_sent);
	ck_assert_ptr_null(cfg.relay_tls);	/* may, or verify with credentials: nexthop.h */
	ck_assert_ptr_null(cfg.relay_tls_ca_file);
	ck_assert_ptr_null(cfg.relay_credentials);
	ck_assert(!cfg.relay_auth_plaintext);
	ck_assert_str_eq(cfg.mountpoint, "/run/spoolgate/mnt");
	ck_assert(!cfg.allow_other);
	ck_assert_str_eq(cfg.drop_group, "spoolgate-drop");
	ck_assert_uint_eq(cfg.n_trusted_users, 1);
	ck_assert_str_eq(cfg.trusted_users[0], "root");
	ck_assert_str_eq(cfg.sender_domain, "");
	ck_assert_str_eq(cfg_sender_domain(&cfg), cfg.hostname);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_INFO);
	ck_assert(cfg_domain_is_local(&cfg, "LocalHost"));
	ck_assert(!cfg_domain_is_local(&cfg, "example.org"));
	ck_assert(cfg_mailbox_is_known(&cfg, "anyone"));
	cfg_free(&cfg);
	ck_assert_ptr_null(cfg.spool_dir);
}
END_TEST

static const char full_conf[] =
	"# every key, none at its default\n"
	"[spool]\n"
	"dir = /srv/spool\n"
	"local_domains = example.org, Example.NET localhost\n"
	"mailboxes = alice bob.smith carol+x\n"
	"user = mailer\n"
	"hostname = mx1.example.org\n"
	"\n"
	"[smtpd]\n"
	"listen = [::1]:2526\n"
	"banner = test banner here\n"
	"max_sessions = 7\n"
	"max_sessions_per_client = 2\n"
	"max_line = 1000\n"
	"max_recipients = 3\n"
	"max_message_size = 2048\n"
	"idle_timeout = 5\n"
	"command_deadline = 11\n"
	"session_deadline = 600\n"
	"max_errors = 4\n"
	"max_hops = 9\n"
	"relay_networks = 10.0.0.0/8, 2001:db8::/32 192.0.2.7\n"
	"\n"
	"[relay]\n"
	"smarthost = mail.example.net:587\n"
	"resolver = [::1]:5353\n"
	"dns_timeout = 7\n"
	"retry_min = 2\n"
	"retry_max = 20\n"
	"max_queue_lifetime = 600\n"
	"bounce_limit_per_hour = 3\n"
	"delay_warning_time = 120\n"
	"max_deliveries = 2\n"
	"scan_interval = 1\n"
	"connect_timeout = 3\n"
	"command_timeout = 6\n"
	"data_done_timeout = 9\n"
	"connection_idle_timeout = 0\n"
	"connection_reuse_count_limit = 7\n"
	"connection_reuse_time_limit = 60\n"
	"max_per_destination = 3\n"
	"keep_sent = no\n"
	"tls = WRAPPER\n"
	"tls_ca_file = /etc/ca.pem\n"
	"credentials = /etc/sg/creds\n"
	"auth_plaintext = yes\n"
	"\n"
	"[routes]\n"
	"example.org = [mail.example.org]:587\n"
	".example.org = mx:2525\n"
	"Example.COM = 192.0.2.1:25\n"
	"* = mx\n"
	"\n"
	"[sendmail]\n"
	"group = maildrop\n"
	"trusted_users = root, backup _svc-1\n"
	"sender_domain = mail.example.org\n"
	"\n"
	"[fs]\n"
	"mountpoint = /mnt/sg\n"
	"allow_other = yes\n"
	"mailbox_owners = alerts:ops postmaster:root\n"
	"\n"
	"[log]\n"
	"level = debug\n";

START_TEST(test_full_file)
{
	char path[PATH_LEN], err[512] = "";
	struct cfg cfg;
	int r;

	write_conf("full.conf", full_conf, path);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "cfg_load = %d: %s", r, err);
	ck_assert_str_eq(cfg.path, path);
	ck_assert_str_eq(cfg.spool_dir, "/srv/spool");
	ck_assert_uint_eq(cfg.n_local_domains, 3);
	ck_assert_str_eq(cfg.local_domains[0], "example.org");
	ck_assert_str_eq(cfg.local_domains[1], "Example.NET");
	ck_assert_str_eq(cfg.local_domains[2], "localhost");
	ck_assert(cfg_domain_is_local(&cfg, "example.net"));
	ck_assert(cfg_domain_is_local(&cfg, "EXAMPLE.ORG"));
	ck_assert(!cfg_domain_is_local(&cfg, "example.com"));
	ck_assert(!cfg.any_mailbox);
	ck_assert_uint_eq(cfg.n_mailboxes, 3);
	ck_assert(cfg_mailbox_is_known(&cfg, "alice"));
	ck_assert(cfg_mailbox_is_known(&cfg, "bob.smith"));
	ck_assert(cfg_mailbox_is_known(&cfg, "carol+x"));
	ck_assert(cfg_mailbox_is_known(&cfg, "postmaster"));
	ck_assert(!cfg_mailbox_is_known(&cfg, "dave"));
	ck_assert_str_eq(cfg.user, "mailer");
	ck_assert_str_eq(cfg.hostname, "mx1.example.org");
	ck_assert_uint_eq(cfg.n_listeners, 1);
	ck_assert_str_eq(cfg.listeners[0].listen, "[::1]:2526");
	ck_assert_str_eq(cfg.listeners[0].tls, "none");
	ck_assert_int_eq(cfg.listeners[0].auth, CFG_AUTH_NO);
	ck_assert_str_eq(cfg.banner, "test banner here");
	ck_assert_uint_eq(cfg.max_sessions, 7);
	ck_assert_uint_eq(cfg.max_sessions_per_client, 2);
	ck_assert_uint_eq(cfg.command_deadline, 11);
	ck_assert_uint_eq(cfg.session_deadline, 600);
	ck_assert_uint_eq(cfg.max_line, 1000);
	ck_assert_uint_eq(cfg.max_recipients, 3);
	ck_assert_uint_eq(cfg.max_message_size, 2048);
	ck_assert_uint_eq(cfg.idle_timeout, 5);
	ck_assert_uint_eq(cfg.max_errors, 4);
	ck_assert_uint_eq(cfg.max_hops, 9);
	ck_assert_uint_eq(cfg.n_relay_networks, 3);
	ck_assert_int_eq(cfg.relay_networks[1].family, AF_INET6);
	ck_assert_uint_eq(cfg.relay_networks[1].prefix, 32);
	ck_assert_uint_eq(cfg.relay_networks[2].prefix, 32);
	ck_assert_str_eq(cfg.smarthost, "mail.example.net:587");
	ck_assert_str_eq(cfg.resolver, "[::1]:5353");
	ck_assert_uint_eq(cfg.dns_timeout, 7);
	ck_assert_uint_eq(cfg.n_routes, 4);
	ck_assert_str_eq(cfg.routes[0].domain, "example.org");
	ck_assert_str_eq(cfg.routes[0].target, "[mail.example.org]:587");
	ck_assert_str_eq(cfg.routes[1].domain, ".example.org");
	ck_assert_str_eq(cfg.routes[1].target, "mx:2525");
	ck_assert_str_eq(cfg.routes[2].domain, "Example.COM");
	ck_assert_str_eq(cfg.routes[3].domain, "*");
	ck_assert_str_eq(cfg.routes[3].target, "mx");
	ck_assert_uint_eq(cfg.retry_min, 2);
	ck_assert_uint_eq(cfg.retry_max, 20);
	ck_assert_uint_eq(cfg.max_queue_lifetime, 600);
	ck_assert_uint_eq(cfg.bounce_limit_per_hour, 3);
	ck_assert_uint_eq(cfg.delay_warning_time, 120);
	ck_assert_uint_eq(cfg.max_deliveries, 2);
	ck_assert_uint_eq(cfg.scan_interval, 1);
	ck_assert_uint_eq(cfg.connect_timeout, 3);
	ck_assert_uint_eq(cfg.command_timeout, 6);
	ck_assert_uint_eq(cfg.data_done_timeout, 9);
	ck_assert_uint_eq(cfg.connection_idle_timeout, 0);	/* 0: no reuse */
	ck_assert_uint_eq(cfg.connection_reuse_count_limit, 7);
	ck_assert_uint_eq(cfg.connection_reuse_time_limit, 60);
	ck_assert_uint_eq(cfg.max_per_destination, 3);
	ck_assert(!cfg.keep_sent);
	ck_assert_str_eq(cfg.relay_tls, "wrapper");
	ck_assert_str_eq(cfg.relay_tls_ca_file, "/etc/ca.pem");
	ck_assert_str_eq(cfg.relay_credentials, "/etc/sg/creds");
	ck_assert(cfg.relay_auth_plaintext);
	ck_assert_str_eq(cfg.mountpoint, "/mnt/sg");
	ck_assert(cfg.allow_other);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_DEBUG);
	ck_assert_str_eq(cfg.drop_group, "maildrop");
	ck_assert_uint_eq(cfg.n_trusted_users, 3);
	ck_assert(cfg_user_is_trusted(&cfg, "backup") && cfg_user_is_trusted(&cfg, "_svc-1"));
	ck_assert(!cfg_user_is_trusted(&cfg, "Backup"));
	ck_assert_str_eq(cfg_sender_domain(&cfg), "mail.example.org");
	ck_assert_str_eq(cfg_mailbox_owner(&cfg, "alerts"), "ops");
	ck_assert_str_eq(cfg_mailbox_owner(&cfg, "postmaster"), "root");
	ck_assert_str_eq(cfg_mailbox_owner(&cfg, "alert"), "alert");	/* a prefix is another mailbox */
	ck_assert_str_eq(cfg_mailbox_owner(&cfg, "bob"), "bob");
	cfg_free(&cfg);
}
END_TEST

/* The shipped configuration must load. */
START_TEST(test_shipped_file)
{
	static const char *const cands[] = { "../etc/spoolgate.conf", "etc/spoolgate.conf",
		"/work/main/etc/spoolgate.conf" };
	char err[512] = "", path[PATH_LEN];
	const char *src = getenv("SPOOLGATE_SRC");
	struct cfg cfg;
	size_t i;
	int r;

	path[0] = '\0';
	if (src != NULL)
		snprintf(path, sizeof(path), "%.900s/etc/spoolgate.conf", src);
	for (i = 0; (path[0] == '\0' || access(path, R_OK) != 0) && i < sizeof(cands) / sizeof(cands[0]); i++)
		snprintf(path, sizeof(path), "%s", cands[i]);
	if (access(path, R_OK) != 0) {
		fprintf(stderr, "test_cfg: etc/spoolgate.conf not found, skipped\n");
		return;
	}
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s: %s", path, err);
	cfg_free(&cfg);
}
END_TEST

static const struct err_case {
	const char     *what;
	const char     *text;
	int		line;		/* 0: no line in the message */
	const char     *where;		/* "[section] key", or NULL */
	const char     *detail;	/* a part of the message */
} err_cases[] = {
	{ "bad number", "[smtpd]\nmax_sessions = many\n", 2, "[smtpd] max_sessions", "'many' is not a number" },
	{ "number with junk", "[smtpd]\nmax_line = 1000x\n", 2, "[smtpd] max_line", "not a number" },
	{ "negative number", "[smtpd]\nmax_errors = -1\n", 2, "[smtpd] max_errors", "not a number" },
	{ "number too big for unsigned long", "[smtpd]\nmax_message_size = 99999999999999999999999\n", 2,
	    "[smtpd] max_message_size", "not a number" },
	{ "out of range low", "[smtpd]\nmax_sessions = 0\n", 2, "[smtpd] max_sessions", "out of range" },
	{ "per-client limit 0", "[smtpd]\nmax_sessions_per_client = 0\n", 2, "[smtpd] max_sessions_per_client",
	  "out of range" },
	{ "command deadline 0", "[smtpd]\ncommand_deadline = 0\n", 2, "[smtpd] command_deadline", "out of range" },
	{ "max_per_destination 0", "[relay]\nmax_per_destination = 0\n", 2, "[relay] max_per_destination",
	  "out of range" },
	{ "session deadline words", "[smtpd]\nsession_deadline = 1h\n", 2, "[smtpd] session_deadline",
	  "not a number" },
	{ "session deadline too long", "[smtpd]\nsession_deadline = 604801\n", 2, "[smtpd] session_deadline",
	  "out of range" },
	{ "out of range high", "# c\n; c\n[relay]\nretry_min = 86401\n", 4, "[relay] retry_min", "out of range" },
	{ "max_line below 512", "[smtpd]\nmax_line = 100\n", 2, "[smtpd] max_line", "out of range" },
	{ "unknown key", "[smtpd]\nmax_session = 5\n", 2, "[smtpd] max_session", "unknown key" },
	{ "unknown key after good ones", "[smtpd]\nmax_sessions = 5\nmax_errors = 3\n\ncolour = blue\n", 5,
	    "[smtpd] colour", "unknown" },
	{ "key of another section", "[relay]\nmax_sessions = 5\n", 2, "[relay] max_sessions", "unknown" },
	{ "unknown section", "[smtpd]\nmax_sessions = 5\n[smptd]\nmax_errors = 3\n", 4, "[smptd] max_errors", "unknown section [smptd]" },
	{ "key before any section", "dir = /x\n", 1, "[] dir", "unknown" },
	{ "bad bool", "[relay]\nkeep_sent = maybe\n", 2, "[relay] keep_sent", "'maybe' is not yes or no" },
	{ "unknown TLS policy", "[relay]\ntls = dane\n", 2, "[relay] tls",
	    "'dane' is not one of none, may, encrypt, verify, wrapper" },
	{ "empty credentials path", "[relay]\ncredentials =\n", 2, "[relay] credentials", "empty path" },
	{ "bad bool fs", "[fs]\nallow_other = 2\n", 2, "[fs] allow_other", "not yes or no" },
	{ "bad trusted user", "[sendmail]\ntrusted_users = root Bob\n", 2, "[sendmail] trusted_users",
	    "'Bob' is not a user name" },
	{ "mailbox owner without a colon", "[fs]\nmailbox_owners = alerts\n", 2, "[fs] mailbox_owners",
	    "'alerts' is not mailbox:user" },
	{ "mailbox owner bad user", "[fs]\nmailbox_owners = alerts:Ops\n", 2, "[fs] mailbox_owners",
	    "'alerts:Ops' is not mailbox:user" },
	{ "mailbox owner bad mailbox", "[fs]\nmailbox_owners = Alerts:ops\n", 2, "[fs] mailbox_owners",
	    "'Alerts:ops' is not mailbox:user" },
	{ "bad sender domain", "[sendmail]\nsender_domain = a..b\n", 2, "[sendmail] sender_domain",
	    "'a..b' is not a domain name" },
	{ "bad CIDR prefix", "[smtpd]\nrelay_networks = 10.0.0.0/33\n", 2, "[smtpd] relay_networks", "10.0.0.0/33" },
	{ "bad CIDR v6 prefix", "[smtpd]\nrelay_networks = ::1/129\n", 2, "[smtpd] relay_networks", "::1/129" },
	{ "CIDR without prefix", "[smtpd]\nrelay_networks = 10.0.0.0/\n", 2, "[smtpd] relay_networks", "10.0.0.0/" },
	{ "CIDR not an address", "[smtpd]\nrelay_networks = 127.0.0.1 localnet\n", 2, "[smtpd] relay_networks", "localnet" },
	{ "CIDR junk prefix", "[smtpd]\nrelay_networks = 10.0.0.0/8x\n", 2, "[smtpd] relay_networks", "10.0.0.0/8x" },
	{ "bad mailbox name upper", "[spool]\nmailboxes = alice Bob\n", 2, "[spool] mailboxes", "'Bob'" },
	{ "bad mailbox name dot", "[spool]\nmailboxes = .hidden\n", 2, "[spool] mailboxes", "'.hidden'" },
	{ "bad mailbox name slash", "[spool]\nmailboxes = a/b\n", 2, "[spool] mailboxes", "'a/b'" },
	{ "bad domain", "[spool]\nlocal_domains = exa_mple.org\n", 2, "[spool] local_domains", "exa_mple.org" },
	{ "bad log level", "[log]\nlevel = loud\n", 2, "[log] level", "'loud'" },
	{ "bad listen", "[smtpd]\nlisten = 127.0.0.1\n", 2, "[smtpd] listen", "host:port" },
	{ "bad smarthost port", "[relay]\nsmarthost = host:70000\n", 2, "[relay] smarthost", "host:port" },
	{ "smarthost v6 without brackets", "[relay]\nsmarthost = ::1:25\n", 2, "[relay] smarthost", "[ipv6]:port" },
	{ "smarthost without port", "[relay]\nsmarthost = mail.example.org\n", 2, "[relay] smarthost", "host:port" },
	{ "smarthost bad name", "[relay]\nsmarthost = [mail_x!.org]:25\n", 2, "[relay] smarthost", "mail_x!.org" },
	{ "smarthost unclosed bracket", "[relay]\nsmarthost = [mail.example.org:25\n", 2, "[relay] smarthost", "host:port" },
	{ "resolver by name", "[relay]\nresolver = dns.example.org:53\n", 2, "[relay] resolver", "ip:port" },
	{ "resolver without port", "[relay]\nresolver = 127.0.0.1\n", 2, "[relay] resolver", "ip:port" },
	{ "dns_timeout 0", "[relay]\ndns_timeout = 0\n", 2, "[relay] dns_timeout", "out of range" },
	{ "bounce cap 0", "[relay]\nbounce_limit_per_hour = 0\n", 2, "[relay] bounce_limit_per_hour", "out of range" },
	{ "bounce cap over 64", "[relay]\nbounce_limit_per_hour = 65\n", 2, "[relay] bounce_limit_per_hour", "out of range" },
	{ "delay warning negative", "[relay]\ndelay_warning_time = -1\n", 2, "[relay] delay_warning_time", "" },
	{ "route to nothing", "[routes]\nexample.org =\n", 2, "[routes] example.org", "is not mx" },
	{ "route to a word", "[routes]\nexample.org = direct\n", 2, "[routes] example.org", "'direct'" },
	{ "route mx bad port", "[routes]\n* = mx:0\n", 2, "[routes] *", "'mx:0'" },
	{ "route bad tls option", "[routes]\nexample.org = mx tls=sometimes\n", 2, "[routes] example.org",
	    "then tls=, auth_plaintext=, tls_ca_file= if any" },
	{ "route option on hold alone", "[routes]\nexample.org = hold tls=none\n", 2, "[routes] example.org",
	    "'hold tls=none'" },
	{ "route bad domain", "[routes]\nexa mple.org = mx\n", 2, "[routes] exa mple.org", "not a domain" },
	{ "route wildcard in name", "[routes]\n*.example.org = mx\n", 2, "[routes] *.example.org", "not a domain" },
	{ "route twice", "[routes]\nexample.org = mx\n# again\nEXAMPLE.org = [a.example]:25\n", 4,
	    "[routes] EXAMPLE.org", "second route" },
	{ "empty path", "[spool]\ndir =\n", 2, "[spool] dir", "empty" },
	{ "syntax error", "[smtpd]\nmax_sessions = 5\nthis line is not ini\n", 3, NULL, "syntax error" },
	{ "unclosed section", "[smtpd\nmax_sessions = 5\n", 1, NULL, "syntax error" },
 	{ "listener without listen", "[listener sub]\nauth = offer\n", 0, "[listener sub]", "no listen address" },
	{ "listener name with a blank", "[listener s b]\nlisten = 127.0.0.1:25\n", 2, "[listener s b] listen",
	  "'s b' is not a listener name" },
	{ "listener named smtpd", "[listener smtpd]\nlisten = 127.0.0.1:25\n", 2, "[listener smtpd] listen",
	  "not a listener name" },
	{ "listener name too long", "[listener abcdefghijabcdefghijabcdefghij12]\nlisten = 127.0.0.1:25\n", 2,
	  "listen", "not a listener name" },
	{ "listener tls verify", "[listener mx]\nlisten = 127.0.0.1:25\ntls = verify\n", 3, "[listener mx] tls",
	  "a relay policy" },
	{ "listener tls unknown", "[listener mx]\nlisten = 127.0.0.1:25\ntls = yes\n", 3, "[listener mx] tls",
	  "none, may, encrypt, wrapper" },
	{ "listener tls without key", "[listener mx]\nlisten = 127.0.0.1:25\ntls = encrypt\n", 0, "[listener mx]",
	  "tls = encrypt needs tls_cert_file and tls_key_file" },
	{ "listener certificate without key", "[listener mx]\nlisten = 127.0.0.1:25\ntls_cert_file = c.pem\n", 0,
	  "[listener mx]", "tls = may needs tls_cert_file and tls_key_file" },
	{ "shorthand wrapper without key", "[smtpd]\ntls = wrapper\n", 0, "[smtpd]", "needs tls_cert_file" },
	{ "listener key of [smtpd]", "[listener mx]\nlisten = 127.0.0.1:25\nmax_sessions = 5\n", 3,
	  "[listener mx] max_sessions", "unknown key" },
	{ "listener bad auth", "[listener mx]\nauth = maybe\n", 2, "[listener mx] auth",
	  "'maybe' is not one of no, offer, required" },
	{ "listener bad auth_min_mechanism", "[listener mx]\nauth_min_mechanism = CRAM-MD5\n", 2,
	  "[listener mx] auth_min_mechanism", "'CRAM-MD5' is not one of LOGIN, PLAIN, SCRAM-SHA-256" },
	{ "listener cram-md5 without odmr", "[listener mx]\nlisten = 127.0.0.1:25\nauth = offer\nauth_cram_md5 = yes\n", 0,
	  "[listener mx]", "auth_cram_md5 = yes needs odmr = yes" },
	{ "listener bad auth_cram_md5", "[listener mx]\nauth_cram_md5 = sometimes\n", 2,
	  "[listener mx] auth_cram_md5", "not yes or no" },
	{ "listener bad restrict_sender", "[listener mx]\nrestrict_sender = maybe\n", 2,
	  "[listener mx] restrict_sender", "not yes or no" },
	{ "listener bad etrn", "[listener mx]\netrn = sometimes\n", 2, "[listener mx] etrn",
	  "'sometimes' is not one of yes, relay, no" },
	{ "hold hold", "[routes]\nexample.org = hold hold\n", 2, "[routes] example.org", "hold <one of these>" },
	{ "odmr bad domain", "[odmr]\nalice = a..b\n", 2, "[odmr] alice", "'a..b' is not a domain name" },
	{ "odmr twice", "[odmr]\nalice = a.example\nalice = b.example\n", 3, "[odmr] alice", "a second line" },
	{ "odmr no domain", "[odmr]\nalice = ,\n", 2, "[odmr] alice", "no domain" },
	{ "listener bad odmr", "[listener mx]\nodmr = maybe\n", 2, "[listener mx] odmr", "not yes or no" },
	{ "auth_failure_delay too long", "[smtpd]\nauth_failure_delay = 61\n", 2, "[smtpd] auth_failure_delay",
	  "out of range" },
	{ "listener bad relay_networks", "[listener mx]\nrelay_networks = 10/8\n", 2, "[listener mx] relay_networks",
	  "'10/8'" },
	{ "listener bad listen", "[listener mx]\nlisten = 25\n", 2, "[listener mx] listen", "host:port" },
	{ "two listeners on one address", "[smtpd]\nlisten = 127.0.0.1:25\n[listener b]\nlisten = 127.0.0.1:25\n", 0,
	  "[listener b]", "already the address of another listener" },
	{ "retry_max below retry_min", "[relay]\nretry_min = 100\nretry_max = 50\n", 0, "[relay] retry_max", "retry_min" },
	{ "lease_time twice heartbeat_interval", "[spool]\nheartbeat_interval = 2\nlease_time = 4\n", 0,
	  "[spool] lease_time (4)", "more than twice heartbeat_interval (2)" },
	{ "lease_time below heartbeat_interval", "[spool]\nheartbeat_interval = 10\nlease_time = 5\n", 0,
	  "[spool] lease_time (5)", "more than twice heartbeat_interval (10)" },
	{ "heartbeat_interval against the default lease", "[spool]\nheartbeat_interval = 10\n", 0,
	  "[spool] lease_time (20)", "heartbeat_interval (10)" },
};
#define N_ERR_CASES	(sizeof(err_cases) / sizeof(err_cases[0]))

START_TEST(test_error_names_file_line_key)
{
	const struct err_case *c = &err_cases[_i];
	char path[PATH_LEN], name[32], err[1024] = "", prefix[PATH_LEN + 32];
	struct cfg cfg;
	int r;

	snprintf(name, sizeof(name), "err%d.conf", _i);
	write_conf(name, c->text, path);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r < 0, "%s: cfg_load accepted:\n%s", c->what, c->text);
	if (c->line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, c->line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s: message '%s' does not start with '%s'",
	    c->what, err, prefix);
	if (c->where != NULL)
		ck_assert_msg(strstr(err, c->where) != NULL, "%s: message '%s' does not name '%s'",
		    c->what, err, c->where);
	ck_assert_msg(strstr(err, c->detail) != NULL, "%s: message '%s' does not say '%s'",
	    c->what, err, c->detail);
	cfg_free(&cfg);
}
END_TEST

/*
 * lease_time just above twice heartbeat_interval is accepted; so is a
 * lease longer than [relay] command_timeout (not a bound: the heartbeat
 * has a thread of its own, a slow command never costs a node its claims).
 */
START_TEST(test_lease_bounds)
{
	char path[PATH_LEN], err[1024] = "";
	struct cfg cfg;
	int r;

	write_conf("lease.conf", "[spool]\nheartbeat_interval = 2\nlease_time = 5\n[relay]\ncommand_timeout = 2\n", path);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_uint_eq(cfg.heartbeat_interval, 2);
	ck_assert_uint_eq(cfg.lease_time, 5);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_listeners)
{
	static const char text[] =
	    "[smtpd]\nrelay_networks = 10.0.0.0/8\nmax_sessions = 50\n"
	    "[listener mx]\nlisten = 127.0.0.1:25\ntls_cert_file = mx.pem\ntls_key_file = mx.key\n"
	    "relay_networks =\n"
	    "[listener submission]\nlisten = [::1]:587\ntls = encrypt\ntls_cert_file = /etc/c.pem\n"
	    "tls_key_file = /etc/k.pem\ntls_chain_file = chain.pem\nauth = required\n"
	    "auth_min_mechanism = scram-sha-256\nrestrict_sender = yes\n"
	    "tls_ciphers = ECDHE+AESGCM\ntls_ciphersuites = TLS_AES_128_GCM_SHA256\n"
	    "[listener submissions]\nlisten = 127.0.0.1:465\ntls = WRAPPER\ntls_cert_file = /etc/c.pem\n"
	    "tls_key_file = /etc/k.pem\nauth = offer\nauth_plaintext = yes\n"
	    "[listener plain]\nlisten = 127.0.0.1:2526\n"
	    "[listener mx]\nauth = no\n";	/* a section named again continues it */
	char path[PATH_LEN], want[PATH_LEN], out[PATH_LEN], err[1024] = "";
	const struct cfg_listener *mx, *sub, *subs, *plain;
	struct sockaddr_in sin;
	struct cfg cfg;
	int r;

	write_conf("listeners.conf", text, path);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	/* [smtpd] set no listener key: the shorthand listener is gone. */
	ck_assert_uint_eq(cfg.n_listeners, 4);
	ck_assert_ptr_null(cfg_listener_find(&cfg, "smtpd"));
	ck_assert_ptr_nonnull(mx = cfg_listener_find(&cfg, "mx"));
	ck_assert_ptr_nonnull(sub = cfg_listener_find(&cfg, "submission"));
	ck_assert_ptr_nonnull(subs = cfg_listener_find(&cfg, "submissions"));
	ck_assert_ptr_nonnull(plain = cfg_listener_find(&cfg, "plain"));
	ck_assert_ptr_eq(mx, &cfg.listeners[0]);
	ck_assert_str_eq(mx->listen, "127.0.0.1:25");
	ck_assert_str_eq(mx->tls, "may");		/* a certificate and no tls: STARTTLS offered */
	snprintf(want, sizeof(want), "%.900s/mx.pem", tmpbase);
	ck_assert_str_eq(mx->tls_cert_file, want);
	ck_assert_int_eq(mx->auth, CFG_AUTH_NO);
	ck_assert(mx->relay_networks_set);
	ck_assert_uint_eq(mx->n_relay_networks, 0);	/* relay for nobody */
	ck_assert_str_eq(sub->listen, "[::1]:587");
	ck_assert_str_eq(sub->tls, "encrypt");
	ck_assert_str_eq(sub->tls_key_file, "/etc/k.pem");
	snprintf(want, sizeof(want), "%.900s/chain.pem", tmpbase);
	ck_assert_str_eq(sub->tls_chain_file, want);
	ck_assert_str_eq(sub->tls_ciphers, "ECDHE+AESGCM");
	ck_assert_str_eq(sub->tls_ciphersuites, "TLS_AES_128_GCM_SHA256");
	ck_assert_int_eq(sub->auth, CFG_AUTH_REQUIRED);
	ck_assert(!sub->auth_plaintext);
	ck_assert_str_eq(sub->auth_min_mechanism, "SCRAM-SHA-256");	/* sasl.h's spelling */
	ck_assert(sub->restrict_sender);
	ck_assert_ptr_null(mx->auth_min_mechanism);
	ck_assert(!mx->restrict_sender);
	ck_assert_uint_eq(sub->n_relay_networks, 1);	/* [smtpd]'s */
	ck_assert_str_eq(subs->tls, "wrapper");
	ck_assert_int_eq(subs->auth, CFG_AUTH_OFFER);
	ck_assert(subs->auth_plaintext);
	ck_assert_str_eq(plain->tls, "none");
	ck_assert_ptr_null(plain->tls_cert_file);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr), 1);
	ck_assert(cfg_net_allows_relay(&cfg, NULL, (struct sockaddr *)&sin));
	ck_assert(cfg_net_allows_relay(&cfg, sub, (struct sockaddr *)&sin));
	ck_assert(!cfg_net_allows_relay(&cfg, mx, (struct sockaddr *)&sin));

	ck_assert_int_eq(cfg_value(&cfg, "listener submission", "listen", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "[::1]:587");
	ck_assert_int_eq(cfg_value(&cfg, "listener submission", "auth", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "required");
	ck_assert_int_eq(cfg_value(&cfg, "listener submission", "auth_min_mechanism", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "SCRAM-SHA-256");
	ck_assert_int_eq(cfg_value(&cfg, "listener mx", "tls", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "may");
	ck_assert_int_eq(cfg_value(&cfg, "listener nope", "listen", out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(cfg_value(&cfg, "smtpd", "listen", out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(cfg_value(&cfg, "listener mx", "relay_networks", out, sizeof(out)), -EOPNOTSUPP);
	cfg_free(&cfg);

	/* A listener key in [smtpd] keeps the shorthand beside named listeners, first. */
	write_conf("listeners2.conf", "[listener sub]\nlisten = 127.0.0.1:587\n[smtpd]\nlisten = 127.0.0.1:25\n", path);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_uint_eq(cfg.n_listeners, 2);
	ck_assert_str_eq(cfg.listeners[0].name, "smtpd");
	ck_assert_str_eq(cfg.listeners[0].listen, "127.0.0.1:25");
	ck_assert_str_eq(cfg.listeners[1].name, "sub");
	ck_assert_int_eq(cfg_value(&cfg, "smtpd", "listen", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "127.0.0.1:25");
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_too_many_listeners)
{
	char path[PATH_LEN], err[1024] = "", text[4096], *p = text;
	struct cfg cfg;
	int i, r;

	for (i = 0; i <= CFG_MAX_LISTENERS; i++)
		p += sprintf(p, "[listener l%d]\nlisten = 127.0.0.1:%d\n", i, 3000 + i);
	write_conf("manyl.conf", text, path);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_msg(strstr(err, "more than 16 listeners") != NULL, "%s", err);
	ck_assert_msg(strstr(err, ":34: [listener l16] listen") != NULL, "%s", err);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_missing_file)
{
	char err[512] = "";
	struct cfg cfg;

	ck_assert_int_eq(cfg_load("/nonexistent/spoolgate.conf", &cfg, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "/nonexistent/spoolgate.conf") != NULL, "message '%s'", err);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_relative_paths)
{
	char sub[PATH_LEN], path[PATH_LEN], want[PATH_LEN], err[512] = "";
	struct cfg cfg;
	int r;

	snprintf(sub, sizeof(sub), "%.900s/etc", tmpbase);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	write_conf("etc/rel.conf", "[spool]\ndir = ../var/spool\n[fs]\nmountpoint = mnt\n", path);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	snprintf(want, sizeof(want), "%.900s/etc/../var/spool", tmpbase);
	ck_assert_str_eq(cfg.spool_dir, want);
	snprintf(want, sizeof(want), "%.900s/etc/mnt", tmpbase);
	ck_assert_str_eq(cfg.mountpoint, want);
	cfg_free(&cfg);

	/* absolute paths stay as they are */
	write_conf("etc/abs.conf", "[spool]\ndir = /srv/x\n", path);
	ck_assert_int_eq(cfg_load(path, &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.spool_dir, "/srv/x");
	cfg_free(&cfg);

	/* a file named relative to the working directory */
	ck_assert_int_eq(chdir(sub), 0);
	ck_assert_int_eq(cfg_load("rel.conf", &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.spool_dir, "./../var/spool");
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_value)
{
	char path[PATH_LEN], want[PATH_LEN], out[PATH_LEN], small[4], err[512] = "";
	struct cfg cfg;
	int r;

	write_conf("value.conf", "[spool]\nuser = mailer\ndir = spool\n[smtpd]\nmax_line = 4096\n"
	    "[relay]\nkeep_sent = no\n", path);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_int_eq(cfg_value(&cfg, "spool", "user", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "mailer");
	ck_assert_int_eq(cfg_value(&cfg, "spool", "dir", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%.900s/spool", tmpbase);
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(cfg_value(&cfg, "smtpd", "max_line", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "4096");
	ck_assert_int_eq(cfg_value(&cfg, "smtpd", "listen", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "127.0.0.1:2525");
	ck_assert_int_eq(cfg_value(&cfg, "relay", "keep_sent", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "no");
	ck_assert_int_eq(cfg_value(&cfg, "relay", "tls", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");	/* unset: the relay's default */
	ck_assert_int_eq(cfg_value(&cfg, "smtpd", "banner", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "spoolgate ESMTP");
	ck_assert_int_eq(cfg_value(&cfg, "spool", "nope", out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(cfg_value(&cfg, "user", "spool", out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(cfg_value(&cfg, "spool", "local_domains", out, sizeof(out)), -EOPNOTSUPP);
	ck_assert_int_eq(cfg_value(&cfg, "spool", "user", small, sizeof(small)), -ENAMETOOLONG);
	cfg_free(&cfg);
}
END_TEST

/* ---- relay networks ---- */

static int
allows(const struct cfg *cfg, const char *addr)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return cfg_net_allows_relay(cfg, NULL, (struct sockaddr *)&sin);
	}
	ck_assert_msg(inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1, "test table: bad address %s", addr);
	sin6.sin6_family = AF_INET6;
	return cfg_net_allows_relay(cfg, NULL, (struct sockaddr *)&sin6);
}

static const struct net_case {
	const char     *addr;
	int		want;
} net_cases[] = {
	/* relay_networks = 10.0.0.0/8 192.168.1.0/24 172.16.0.0/12 198.51.100.7 2001:db8::/32 ::1 fe80::/10 */
	{ "10.0.0.0", 1 }, { "10.1.2.3", 1 }, { "10.255.255.255", 1 }, { "11.0.0.1", 0 }, { "9.255.255.255", 0 },
	{ "192.168.1.0", 1 }, { "192.168.1.255", 1 }, { "192.168.2.1", 0 }, { "192.168.0.255", 0 },
	{ "172.16.0.1", 1 }, { "172.31.255.255", 1 }, { "172.32.0.0", 0 }, { "172.15.255.255", 0 },
	{ "198.51.100.7", 1 }, { "198.51.100.8", 0 }, { "198.51.100.6", 0 },
	{ "127.0.0.1", 0 }, { "0.0.0.0", 0 }, { "255.255.255.255", 0 },
	{ "2001:db8::1", 1 }, { "2001:db8:ffff:ffff::1", 1 }, { "2001:db9::1", 0 }, { "2001:db7::1", 0 },
	{ "::1", 1 }, { "::2", 0 }, { "::", 0 },
	{ "fe80::1", 1 }, { "febf:ffff::1", 1 }, { "fec0::1", 0 },
	/* IPv4-mapped IPv6: the IPv4 rules apply */
	{ "::ffff:10.1.2.3", 1 }, { "::ffff:192.168.1.9", 1 }, { "::ffff:11.0.0.1", 0 },
	{ "::ffff:127.0.0.1", 0 }, { "::ffff:198.51.100.7", 1 },
	/* IPv4-compatible (deprecated) is no mapped address */
	{ "::10.1.2.3", 0 },
};
#define N_NET_CASES	(sizeof(net_cases) / sizeof(net_cases[0]))

static void
load_nets(struct cfg *cfg, const char *nets, const char *name)
{
	char path[PATH_LEN], text[512], err[512] = "";
	int r;

	snprintf(text, sizeof(text), "[smtpd]\nrelay_networks = %s\n", nets);
	write_conf(name, text, path);
	r = cfg_load(path, cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
}

START_TEST(test_net_allows_relay)
{
	const struct net_case *c = &net_cases[_i];
	struct cfg cfg;
	char name[32];

	snprintf(name, sizeof(name), "net%d.conf", _i);
	load_nets(&cfg, "10.0.0.0/8 192.168.1.0/24 172.16.0.0/12 198.51.100.7 2001:db8::/32 ::1 fe80::/10", name);
	ck_assert_uint_eq(cfg.n_relay_networks, 7);
	ck_assert_msg(allows(&cfg, c->addr) == c->want, "%s: relay %s, want %s", c->addr,
	    c->want ? "refused" : "allowed", c->want ? "allowed" : "refused");
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_net_defaults_and_edges)
{
	struct sockaddr_un sun;
	struct cfg cfg;

	cfg_defaults(&cfg);
	ck_assert(allows(&cfg, "127.0.0.1"));
	ck_assert(allows(&cfg, "127.255.0.9"));
	ck_assert(allows(&cfg, "::1"));
	ck_assert(allows(&cfg, "::ffff:127.0.0.1"));
	ck_assert(!allows(&cfg, "128.0.0.1"));
	ck_assert(!allows(&cfg, "10.0.0.1"));
	ck_assert(!allows(&cfg, "::2"));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert(!cfg_net_allows_relay(&cfg, NULL, (struct sockaddr *)&sun));
	cfg_free(&cfg);

	load_nets(&cfg, "0.0.0.0/0", "all4.conf");
	ck_assert(allows(&cfg, "1.2.3.4"));
	ck_assert(allows(&cfg, "::ffff:1.2.3.4"));
	ck_assert(!allows(&cfg, "2001:db8::1"));
	cfg_free(&cfg);

	load_nets(&cfg, "::/0", "all6.conf");
	ck_assert(allows(&cfg, "2001:db8::1"));
	ck_assert(!allows(&cfg, "1.2.3.4"));
	cfg_free(&cfg);

	/* an empty list relays for nobody */
	load_nets(&cfg, "", "none.conf");
	ck_assert_uint_eq(cfg.n_relay_networks, 0);
	ck_assert(!allows(&cfg, "127.0.0.1"));
	cfg_free(&cfg);
}
END_TEST

/* ---- host:port ---- */

static const struct hp_case {
	const char     *spec;
	int		want;
	const char     *host;
	unsigned	port;
} hp_cases[] = {
	{ "127.0.0.1:2525", 0, "127.0.0.1", 2525 },
	{ "localhost:25", 0, "localhost", 25 },
	{ "mail.example.org:65535", 0, "mail.example.org", 65535 },
	{ "[::1]:25", 0, "::1", 25 },
	{ "[2001:db8::1]:587", 0, "2001:db8::1", 587 },
	{ "h:1", 0, "h", 1 },
	{ "host", -EINVAL, NULL, 0 },
	{ "host:", -EINVAL, NULL, 0 },
	{ ":25", -EINVAL, NULL, 0 },
	{ "host:0", -EINVAL, NULL, 0 },
	{ "host:65536", -EINVAL, NULL, 0 },
	{ "host:99999999999999999999", -EINVAL, NULL, 0 },
	{ "host:-1", -EINVAL, NULL, 0 },
	{ "host:+25", -EINVAL, NULL, 0 },
	{ "host: 25", -EINVAL, NULL, 0 },
	{ "host:25x", -EINVAL, NULL, 0 },
	{ "::1:25", -EINVAL, NULL, 0 },
	{ "[::1]", -EINVAL, NULL, 0 },
	{ "[::1]25", -EINVAL, NULL, 0 },
	{ "[::1:25", -EINVAL, NULL, 0 },
	{ "[]:25", -EINVAL, NULL, 0 },
	{ "", -EINVAL, NULL, 0 },
};
#define N_HP_CASES	(sizeof(hp_cases) / sizeof(hp_cases[0]))

START_TEST(test_split_hostport)
{
	const struct hp_case *c = &hp_cases[_i];
	char host[256] = "";
	unsigned port = 0;
	int r = cfg_split_hostport(c->spec, host, sizeof(host), &port);

	ck_assert_msg(r == c->want, "cfg_split_hostport(\"%s\") = %d, want %d", c->spec, r, c->want);
	if (r == 0) {
		ck_assert_str_eq(host, c->host);
		ck_assert_uint_eq(port, c->port);
	}
}
END_TEST

START_TEST(test_split_hostport_hostlen)
{
	char host[10];
	unsigned port;

	ck_assert_int_eq(cfg_split_hostport("123456789:25", host, sizeof(host), &port), 0);
	ck_assert_str_eq(host, "123456789");
	ck_assert_int_eq(cfg_split_hostport("1234567890:25", host, sizeof(host), &port), -EINVAL);
	ck_assert_int_eq(cfg_split_hostport("[123456789a]:25", host, sizeof(host), &port), -EINVAL);
}
END_TEST

/* An empty smarthost means "route by MX"; every old form still loads. */
START_TEST(test_smarthost_forms)
{
	static const char *const good[] = { "", "127.0.0.1:2525", "[127.0.0.1]:25", "[::1]:25",
		"mail.example.org:587", "[mail.example.org]:587", "localhost:2525" };
	char path[PATH_LEN], text[256], err[1024] = "";
	struct cfg cfg;
	size_t i;
	int r;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[relay]\nsmarthost = %s\n", good[i]);
		write_conf("sh.conf", text, path);
		r = cfg_load(path, &cfg, err, sizeof(err));
		ck_assert_msg(r == 0, "smarthost '%s': %s", good[i], err);
		ck_assert_str_eq(cfg.smarthost, good[i]);
		cfg_free(&cfg);
	}
}
END_TEST

START_TEST(test_too_many_routes)
{
	char path[PATH_LEN], err[1024] = "", *text, *p;
	size_t i, len = (CFG_MAX_ROUTES + 2) * 40 + 16;
	struct cfg cfg;
	int r;

	ck_assert_ptr_nonnull(text = malloc(len));
	p = text + sprintf(text, "[routes]\n");
	for (i = 0; i <= CFG_MAX_ROUTES; i++)
		p += sprintf(p, "d%zu.example = mx\n", i);
	write_conf("many.conf", text, path);
	free(text);
	r = cfg_load(path, &cfg, err, sizeof(err));
	ck_assert_int_eq(r, -E2BIG);
	ck_assert_msg(strstr(err, "more than 256 routes") != NULL, "%s", err);
	ck_assert_msg(strstr(err, ":258: ") != NULL, "%s", err);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_odmr_and_hold)
{
	char path[PATH_LEN], err[1024] = "";
	const struct cfg_listener *l;
	const struct cfg_odmr *o;
	struct cfg cfg;

	write_conf("odmr.conf", "[listener odmr]\nlisten = 127.0.0.1:366\nodmr = yes\netrn = relay\n"
	    "auth_cram_md5 = yes\n[listener mx]\nlisten = 127.0.0.1:25\n[routes]\nbranch.example = hold\nother.example = hold [192.0.2.1]:25\n"
	    "[odmr]\nbranch@example.org = branch.example, other.example\nsolo = other.example\n", path);
	ck_assert_msg(cfg_load(path, &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_nonnull(l = cfg_listener_find(&cfg, "odmr"));
	ck_assert(l->odmr);
	ck_assert(l->auth_cram_md5);
	ck_assert(!cfg_listener_find(&cfg, "mx")->auth_cram_md5);	/* off unless set */
	ck_assert_int_eq(l->etrn, CFG_ETRN_RELAY);
	ck_assert_uint_eq(cfg.n_odmr, 2);
	ck_assert_ptr_nonnull(o = cfg_odmr_find(&cfg, "branch@example.org"));
	ck_assert_uint_eq(o->ndomains, 2);
	ck_assert_str_eq(o->domains[1], "other.example");
	ck_assert_ptr_null(cfg_odmr_find(&cfg, "Branch@example.org"));
	ck_assert_ptr_null(cfg_odmr_find(&cfg, "nobody"));
	cfg_free(&cfg);
}
END_TEST

static Suite *
cfg_suite(void)
{
	Suite *s = suite_create("cfg");
	TCase *tc;

	tc = tcase_create("load");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_shipped_file);
	tcase_add_loop_test(tc, test_error_names_file_line_key, 0, N_ERR_CASES);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_relative_paths);
	tcase_add_test(tc, test_value);
	tcase_add_loop_test(tc, test_net_allows_relay, 0, N_NET_CASES);
	tcase_add_test(tc, test_net_defaults_and_edges);
	tcase_add_test(tc, test_smarthost_forms);
	tcase_add_test(tc, test_too_many_routes);
	tcase_add_test(tc, test_odmr_and_hold);
	tcase_add_test(tc, test_listeners);
	tcase_add_test(tc, test_too_many_listeners);
	tcase_add_test(tc, test_lease_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostport");
	tcase_add_loop_test(tc, test_split_hostport, 0, N_HP_CASES);
	tcase_add_test(tc, test_split_hostport_hostlen);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(cfg_suite());
}
