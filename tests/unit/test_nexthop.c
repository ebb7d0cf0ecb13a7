/*
 * NAME
 *	test_nexthop - the next hop's address, TLS policy and credentials
 * DESCRIPTION
 *	nexthop_from_smarthost() and nexthop_set_security(): the default
 *	policy is may, verify when the hop has credentials; an explicit tls
 *	wins; a hop's own credentials line before "*"; nexthop_wipe() leaves
 *	no password.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "smtpd/nexthop.h"
#include "tests/unit/testutil.h"

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
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, NULL), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_MAY);
	ck_assert(!hop.auth);
	ck_assert_str_eq(hop.tls_ca_file, "");
	/* Its own line: verify, and that user. */
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, creds), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_VERIFY);
	ck_assert(hop.auth);
	ck_assert_str_eq(hop.user, "me@example.net");
	ck_assert_str_eq(hop.password, "pw one");
	ck_assert(!hop.auth_plaintext);
	/* Another hop falls back to "*". */
	ck_assert_int_eq(nexthop_from_smarthost("127.0.0.1:465", &hop), 0);
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, creds), 0);
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
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, creds), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_WRAPPER);
	ck_assert_str_eq(hop.tls_ca_file, "/etc/ca.pem");
	ck_assert(hop.auth_plaintext);
	ck_assert(!hop.auth);		/* no line for this hop, no "*" */
	free(cfg.relay_tls);
	cfg.relay_tls = strdup("none");
	ck_assert_int_eq(nexthop_set_security(&hop, &cfg, creds), 0);
	ck_assert_int_eq(hop.tls, TLS_POLICY_NONE);
	sasl_creds_free(creds);
	cfg_free(&cfg);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("nexthop");
	TCase *tc = tcase_create("nexthop");

	tcase_add_test(tc, test_smarthost_names);
	tcase_add_test(tc, test_default_policy);
	tcase_add_test(tc, test_explicit_policy_and_keys);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
