/*
 * NAME
 *	fuzz_route_node - the arguments of ETRN (RFC 1985) and ATRN (RFC 2645)
 * DESCRIPTION
 *	The input, as a string, goes to route_node_parse(), as an SMTP
 *	client's "ETRN <arg>" does.  An accepted node is written back as its
 *	kind says ("name", "@name", "#name") and gives the input exactly; its
 *	name is 1..ROUTE_HOST_MAX octets without NUL, a domain node matches
 *	its own name in any case (route_node_matches()) and a name one label
 *	below it only for "@"; a queue node matches nothing.  A refusal is
 *	-EINVAL or -ENAMETOOLONG, nothing else.
 *	The same input goes to route_domain_list_parse() (ATRN's list): the
 *	domains it accepts are 1..ROUTE_HOST_MAX octets without a comma,
 *	at most the bound given, and joined with commas give the input back.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "fuzz.h"
#include "common/route.h"

static void
check_node(const char *arg, const struct route_node *node)
{
	static const char prefix[] = { [ROUTE_NODE_DOMAIN] = '\0', [ROUTE_NODE_SUBDOMAINS] = '@',
	    [ROUTE_NODE_QUEUE] = '#' };
	char back[ROUTE_HOST_MAX + 8], below[ROUTE_HOST_MAX + 8], upper[ROUTE_HOST_MAX + 1];
	size_t len = strlen(node->name), i;

	FUZZ_CHECK(len >= 1 && len <= ROUTE_HOST_MAX, "a name of %zu octets", len);
	FUZZ_CHECK(node->kind <= ROUTE_NODE_QUEUE, "kind %d", (int)node->kind);
	snprintf(back, sizeof(back), "%s%s", prefix[node->kind] ? (char[]){ prefix[node->kind], '\0' } : "",
	    node->name);
	FUZZ_CHECK(strcmp(back, arg) == 0, "'%s' written back as '%s'", arg, back);
	if (node->kind == ROUTE_NODE_QUEUE) {
		FUZZ_CHECK(!route_node_matches(node, node->name), "a queue matched a domain");
		return;
	}
	for (i = 0; i <= len; i++)
		upper[i] = (char)toupper((unsigned char)node->name[i]);
	FUZZ_CHECK(route_node_matches(node, upper), "'%s' does not match its own name", arg);
	snprintf(below, sizeof(below), "a.%s", node->name);
	if (strlen(below) <= ROUTE_HOST_MAX)
		FUZZ_CHECK(route_node_matches(node, below) == (node->kind == ROUTE_NODE_SUBDOMAINS),
		    "'%s' and the name below it", arg);
}

static void
check_list(const char *arg)
{
	char domains[4][ROUTE_HOST_MAX + 1], back[4 * (ROUTE_HOST_MAX + 1) + 1];
	size_t n = 99, i, used = 0;
	int r = route_domain_list_parse(arg, domains, 4, &n);

	if (r != 0) {
		FUZZ_CHECK(r == -EINVAL || r == -E2BIG, "list: errno %d", -r);
		return;
	}
	FUZZ_CHECK(n <= 4, "%zu domains", n);
	back[0] = '\0';
	for (i = 0; i < n; i++) {
		size_t len = strlen(domains[i]);

		FUZZ_CHECK(len >= 1 && len <= ROUTE_HOST_MAX && strchr(domains[i], ',') == NULL, "domain %zu", i);
		used += (size_t)snprintf(back + used, sizeof(back) - used, "%s%s", i ? "," : "", domains[i]);
	}
	FUZZ_CHECK(strcmp(back, arg) == 0, "list '%s' written back as '%s'", arg, back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *arg = fuzz_cstr(data, size);
	struct route_node node;
	int r;

	if (arg == NULL)
		return 0;
	memset(&node, 0x5a, sizeof(node));
	if ((r = route_node_parse(arg, &node)) == 0)
		check_node(arg, &node);
	else
		FUZZ_CHECK(r == -EINVAL || r == -ENAMETOOLONG, "errno %d", -r);
	check_list(arg);
	free(arg);
	return 0;
}
