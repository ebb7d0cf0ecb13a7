/*
 * NAME
 *	test_nexthop - unit tests of where one delivery goes (smtpd/nexthop.c)
 * SYNOPSIS
 *	test_nexthop
 * DESCRIPTION
 *	A numeric smarthost is one address without a host name and keeps its
 *	name as written; a host name or a missing port is refused; addresses
 *	from DNS are appended in order up to NEXTHOP_ADDRS_MAX; the name of
 *	an address reads "host[192.0.2.1]:25", "192.0.2.1:25" or
 *	"[2001:db8::1]:25".  The name a certificate must carry is the
 *	address's host name, the configured number only for an address
 *	without one.  nexthop_set_security(): the default policy is may,
 *	verify when the hop has credentials; an explicit tls wins; the line
 *	of the route as written (target) before "*"; nexthop_wipe() leaves
 *	no password.  nexthop_can_share(): a connection is shared only with
 *	the same route, address and security; each of TLS policy, CA file,
 *	peer name, user, password, auth_plaintext and route changed alone
 *	forbids it.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "smtpd/nexthop.h"
#include "testutil.h"

static char dir[256], path[512];

static struct sasl_creds *
creds_from(const char *text)
{
	struct sasl_creds *creds = NULL;
	char err[512];
	FILE *f;

	testutil_mkdtemp(dir, sizeof(dir), "nexthop");
	snprintf(path, sizeof(path), "%s/creds", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_msg(sasl_creds_load(path, &creds, err, sizeof(err)) == 0, "%s", err);
	testutil_rmtree(dir);
	return creds;
}

static struct sockaddr_in
v4(const char *ip, unsigned port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	return sin;
}

START_TEST(test_smarthost_numeric)
{
	struct nexthop hop;
	char name[NEXTHOP_NAME_MAX];

	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:2525", &hop), 0);
	ck_assert_uint_eq(hop.naddrs, 1);
	ck_assert_str_eq(hop.name, "127.0.0.1:2525");
	ck_assert_str_eq(hop.addrs[0].host, "");
	nexthop_describe(&hop.addrs[0], name, sizeof(name));
	ck_assert_str_eq(name, "127.0.0.1:2525");

	ck_assert_int_eq(nexthop_from_smarthost("[2001:db8::1]:25", &hop), 0);
	ck_assert_uint_eq(hop.naddrs, 1);
	ck_assert_int_eq(hop.addrs[0].addr.ss_family, AF_INET6);
	nexthop_describe(&hop.addrs[0], name, sizeof(name));
	ck_assert_str_eq(name, "[2001:db8::1]:25");
}
END_TEST

START_TEST(test_smarthost_refused)
{
	struct nexthop hop;

	ck_assert_int_eq(nexthop_from_smarthost("mail.example.org:25", &hop), -EINVAL);
	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1", &hop), -EINVAL);
	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:0", &hop), -EINVAL);
	ck_assert_int_eq(nexthop_from_smarthost(NULL, &hop), -EINVAL);
	ck_assert_uint_eq(hop.naddrs, 0);
}
END_TEST

START_TEST(test_add_in_order_and_bounded)
{
	struct nexthop hop;
	struct sockaddr_in sin;
	char name[NEXTHOP_NAME_MAX], ip[32];
	size_t i;

	memset(&hop, 0, sizeof(hop));
	for (i = 0; i < NEXTHOP_ADDRS_MAX; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%zu", i + 1);
		sin = v4(ip, 25);
		ck_assert_int_eq(nexthop_add_addr(&hop, (struct sockaddr *)&sin, sizeof(sin),
		    i == 0 ? "mx1.example.net" : NULL), 0);
	}
	sin = v4("192.0.2.200", 25);
	ck_assert_int_eq(nexthop_add_addr(&hop, (struct sockaddr *)&sin, sizeof(sin), "x"), -ENOSPC);
	ck_assert_uint_eq(hop.naddrs, NEXTHOP_ADDRS_MAX);
	nexthop_describe(&hop.addrs[0], name, sizeof(name));
	ck_assert_str_eq(name, "mx1.example.net[192.0.2.1]:25");
	nexthop_describe(&hop.addrs[NEXTHOP_ADDRS_MAX - 1], name, sizeof(name));
	snprintf(ip, sizeof(ip), "192.0.2.%d:25", NEXTHOP_ADDRS_MAX);
	ck_assert_str_eq(name, ip);
}
END_TEST

START_TEST(test_add_refuses_bad_input)
{
	struct nexthop hop;
	struct sockaddr_in sin = v4("192.0.2.1", 25);
	char longname[NEXTHOP_HOST_MAX + 8];

	memset(&hop, 0, sizeof(hop));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(nexthop_add_addr(&hop, (struct sockaddr *)&sin, sizeof(sin), longname), -EINVAL);
	sin.sin_family = AF_UNIX;
	ck_assert_int_eq(nexthop_add_addr(&hop, (struct sockaddr *)&sin, sizeof(sin), NULL), -EINVAL);
	ck_assert_uint_eq(hop.naddrs, 0);
}
END_TEST

START_TEST(test_peer_name_is_the_host_name)
{
	struct sockaddr_in sin = v4("192.0.2.7", 25);
	struct nexthop hop;

	/* A literal: the number as configured. */
	ck_assert_int_eq(nexthop_from_smarthost("192.0.2.7:25", &hop), 0);
	ck_assert_str_eq(nexthop_peer_name(&hop, 0), "192.0.2.7");
	/* From DNS: each address's own host name, never the address. */
	memset(&hop, 0, sizeof(hop));
	snprintf(hop.tls_name, sizeof(hop.tls_name), "example.net");
	ck_assert_int_eq(nexthop_add_addr(&hop, (struct sockaddr *)&sin, sizeof(sin), "mx1.example.net"), 0);
	sin = v4("192.0.2.8", 25);
	ck_assert_int_eq(nexthop_add_addr(&hop, (struct sockaddr *)&sin, sizeof(sin), "mx2.example.net"), 0);
	ck_assert_str_eq(nexthop_peer_name(&hop, 0), "mx1.example.net");
	ck_assert_str_eq(nexthop_peer_name(&hop, 1), "mx2.example.net");
}
END_TEST

START_TEST(test_credentials_by_target)
{
	struct sasl_creds *creds = creds_from("[smtp.example.net]:587 me:pw\n* any:other\n");
	struct sockaddr_in sin = v4("192.0.2.9", 587);
	struct nexthop hop;
	struct cfg cfg;

	cfg_defaults(&cfg);
	/* A resolved smarthost: named by its address, keyed by the route as written. */
	memset(&hop, 0, sizeof(hop));
	snprintf(hop.name, sizeof(hop.name), "smtp.example.net[192.0.2.9]:587");
	snprintf(hop.target, sizeof(hop.target), "[smtp.example.net]:587");
	ck_assert_int_eq(nexthop_add_addr(&hop, (struct sockaddr *)&sin, sizeof(sin), "smtp.example.net"), 0);
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, NULL, creds), 0);
	ck_assert_str_eq(hop.user, "me");
	ck_assert_int_eq(hop.tls, TLS_POLICY_VERIFY);
	/* An MX route has no line of its own: "*". */
	snprintf(hop.target, sizeof(hop.target), "mx");
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, NULL, creds), 0);
	ck_assert_str_eq(hop.user, "any");
	nexthop_wipe(&hop);
	sasl_creds_free(creds);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_smarthost_names)
{
	struct nexthop hop;

	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:2525", &hop), 0);
	ck_assert_str_eq(hop.name, "127.0.0.1:2525");
	ck_assert_str_eq(hop.tls_name, "127.0.0.1");
	ck_assert_int_eq(nexthop_from_smarthost("[::1]:465", &hop), 0);
	ck_assert_str_eq(hop.tls_name, "::1");
	ck_assert_int_eq(hop.tls, TLS_POLICY_NONE);
	ck_assert(!hop.auth);
}
END_TEST

START_TEST(test_default_policy)
{
	struct sasl_creds *creds = creds_from("127.0.0.1:587 me@example.net:pw one\n* any:other\n");
	struct nexthop hop;
	struct cfg cfg;

	cfg_defaults(&cfg);
	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:587", &hop), 0);
	/* No credentials file: may. */
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, NULL, NULL), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_MAY);
	ck_assert(!hop.auth);
	ck_assert_str_eq(hop.tls_ca_file, "");
	/* Its own line: verify, and that user. */
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, NULL, creds), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_VERIFY);
	ck_assert(hop.auth);
	ck_assert_str_eq(hop.user, "me@example.net");
	ck_assert_str_eq(hop.password, "pw one");
	ck_assert(!hop.auth_plaintext);
	/* Another hop falls back to "*". */
	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:465", &hop), 0);
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, NULL, creds), 0);
	ck_assert_str_eq(hop.user, "any");
	ck_assert_int_eq(hop.tls, TLS_POLICY_VERIFY);
	nexthop_wipe(&hop);
	ck_assert(!hop.auth);
	ck_assert_str_eq(hop.password, "");
	ck_assert_str_eq(hop.user, "");
	sasl_creds_free(creds);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_explicit_policy_and_keys)
{
	struct sasl_creds *creds = creds_from("other:25 me:pw\n");
	struct nexthop hop;
	struct cfg cfg;

	cfg_defaults(&cfg);
	cfg.relay_tls = strdup("wrapper");
	cfg.relay_tls_ca_file = strdup("/etc/ca.pem");
	cfg.relay_auth_plaintext = true;
	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:465", &hop), 0);
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, NULL, creds), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_WRAPPER);
	ck_assert_str_eq(hop.tls_ca_file, "/etc/ca.pem");
	ck_assert(hop.auth_plaintext);
	ck_assert(!hop.auth);		/* no line for this hop, no "*" */
	free(cfg.relay_tls);
	cfg.relay_tls = strdup("none");
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, NULL, creds), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_NONE);
	sasl_creds_free(creds);
	cfg_free(&cfg);
}
END_TEST

/* A route's own options win over the [relay] keys, one by one. */
START_TEST(test_route_options_win)
{
	struct route_opts opts = { .auth_plaintext = ROUTE_UNSET };
	struct nexthop hop;
	struct cfg cfg;

	cfg_defaults(&cfg);
	cfg.relay_tls = strdup("verify");
	cfg.relay_tls_ca_file = strdup("/etc/ca.pem");
	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:25", &hop), 0);
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, &opts, NULL), 0);	/* none set: [relay] */
	ck_assert_int_eq(hop.tls, TLS_POLICY_VERIFY);
	ck_assert_str_eq(hop.tls_ca_file, "/etc/ca.pem");
	ck_assert(!hop.auth_plaintext);
	snprintf(opts.tls, sizeof(opts.tls), "none");
	opts.auth_plaintext = ROUTE_YES;
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, &opts, NULL), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_NONE);
	ck_assert(hop.auth_plaintext);
	ck_assert_str_eq(hop.tls_ca_file, "/etc/ca.pem");
	snprintf(opts.tls_ca_file, sizeof(opts.tls_ca_file), "/etc/route-ca.pem");
	cfg.relay_auth_plaintext = true;
	opts.auth_plaintext = ROUTE_NO;
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, &opts, NULL), 0);
	ck_assert_str_eq(hop.tls_ca_file, "/etc/route-ca.pem");
	ck_assert(!hop.auth_plaintext);
	cfg_free(&cfg);
}
END_TEST

/* The key of connection reuse: same route, address and security, or no sharing. */
START_TEST(test_can_share_only_same_security)
{
	static struct nexthop conn, want;
	struct sockaddr_in sin;

	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:587", &conn), 0);
	conn.tls = TLS_POLICY_VERIFY;
	conn.auth = true;
	snprintf(conn.user, sizeof(conn.user), "me");
	snprintf(conn.password, sizeof(conn.password), "pw");
	want = conn;
	ck_assert(nexthop_same_security(&conn, &want));
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), 0);
	/* The same address second in want's list: its index. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(587);
	sin.sin_addr.s_addr = htonl(0x7f000002);
	want.naddrs = 0;
	ck_assert_int_eq(nexthop_add_addr(&want, (struct sockaddr *)&sin, sizeof(sin), NULL), 0);
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);	/* another address */
	want.addrs[1] = conn.addrs[0];
	want.naddrs = 2;
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), 1);
	ck_assert_int_eq(nexthop_can_share(&conn, 1, &want), -1);	/* conn has no address 1 */
	/* Each part of the security, changed alone, forbids sharing. */
	want = conn;
	want.tls = TLS_POLICY_MAY;
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	want = conn;
	snprintf(want.password, sizeof(want.password), "other");
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	want = conn;
	snprintf(want.user, sizeof(want.user), "you");
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	want = conn;
	want.auth = false;
	want.user[0] = want.password[0] = '\0';
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	want = conn;
	want.auth_plaintext = true;
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	want = conn;
	snprintf(want.tls_ca_file, sizeof(want.tls_ca_file), "/etc/other-ca.pem");
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	want = conn;
	snprintf(want.tls_name, sizeof(want.tls_name), "mail.example.net");
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	/* Another route as written (credentials key) to the same address. */
	want = conn;
	snprintf(want.target, sizeof(want.target), "relay.example.net:587");
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	/* The same address under another mail host name. */
	want = conn;
	snprintf(want.addrs[0].host, sizeof(want.addrs[0].host), "mx.example.net");
	ck_assert_int_eq(nexthop_can_share(&conn, 0, &want), -1);
	nexthop_wipe(&conn);
	nexthop_wipe(&want);
}
END_TEST

static Suite *
nexthop_suite(void)
{
	Suite *s = suite_create("nexthop");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_smarthost_numeric);
	tcase_add_test(tc, test_smarthost_refused);
	tcase_add_test(tc, test_add_in_order_and_bounded);
	tcase_add_test(tc, test_add_refuses_bad_input);
	tcase_add_test(tc, test_peer_name_is_the_host_name);
	tcase_add_test(tc, test_smarthost_names);
	tcase_add_test(tc, test_default_policy);
	tcase_add_test(tc, test_route_options_win);
	tcase_add_test(tc, test_explicit_policy_and_keys);
	tcase_add_test(tc, test_credentials_by_target);
	tcase_add_test(tc, test_can_share_only_same_security);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(nexthop_suite());
}
