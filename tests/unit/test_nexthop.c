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
 *	"[2001:db8::1]:25".
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "smtpd/nexthop.h"
#include "testutil.h"

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

static Suite *
nexthop_suite(void)
{
	Suite *s = suite_create("nexthop");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_smarthost_numeric);
	tcase_add_test(tc, test_smarthost_refused);
	tcase_add_test(tc, test_add_in_order_and_bounded);
	tcase_add_test(tc, test_add_refuses_bad_input);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(nexthop_suite());
}
