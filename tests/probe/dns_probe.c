/*
 * NAME
 *	dns_probe - resolve next hops through smtpd/dns.c on a libevent loop
 * SYNOPSIS
 *	dns_probe [-t timeout_s] [-k] [-c index] [-x count] [-s self] RESOLVER SPEC...
 * DESCRIPTION
 *	The test program of tests/integration/test_dns.py.  Starts one lookup
 *	per SPEC at once on one loop, with a 20 ms timer ticking beside them,
 *	and prints one line per finished lookup, in the order they finish:
 *
 *	  done i=N order=K ticks=T status=0 targets=HOST/ADDR/PORT,...
 *	  done i=N order=K ticks=T status=-1 code=550 esc=5.1.2 text=...
 *
 *	then "end pending=P ticks=T".  SPEC is "mx=DOMAIN" or "mx=DOMAIN:PORT"
 *	(route by the MX of DOMAIN, as route_pick() does for a recipient) or a
 *	next hop string (route.h).  RESOLVER is ip:port, or "system".
 *	-t sets the lookup deadline (default 30 s); -k replaces the MX shuffle
 *	by the identity (to see the sort alone); -c cancels lookup INDEX right
 *	after starting it (it must never print); -x stops after COUNT lookups
 *	finished and frees the resolver with the others pending; -s names
 *	this host (an MX list that names it is cut there).
 * EXIT STATUS
 *	0 when the loop ran to the end, 2 on usage or setup errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"
#include "route.h"

#define MAX_SPECS	64

static struct event_base *base;
static struct dns *dns;
static unsigned long ticks;
static size_t finished, nspecs, expected, stop_after;
static uint64_t ids[MAX_SPECS];
static int in_resolve;		/* a callback from inside dns_resolve() is an error */

static uint32_t
identity(void *arg, uint32_t bound)
{
	(void)arg;
	return bound - 1;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	ticks++;
}

static void
print_target(const struct dns_target *t, int first)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned port;

	if (t->addr.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&t->addr)->sin6_addr, addr, sizeof(addr));
		port = ntohs(((const struct sockaddr_in6 *)&t->addr)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&t->addr)->sin_addr, addr, sizeof(addr));
		port = ntohs(((const struct sockaddr_in *)&t->addr)->sin_port);
	}
	printf("%s%s/%s/%u", first ? "" : ",", t->host, addr, port);
}

static void
done_cb(void *arg, uint64_t id, const struct dns_answer *ans)
{
	size_t i = (size_t)(uintptr_t)arg, k;

	if (in_resolve)
		printf("error i=%zu called back from inside dns_resolve\n", i);
	if (ids[i] != 0 && ids[i] != id)
		printf("error i=%zu id=%llu expected=%llu\n", i, (unsigned long long)id, (unsigned long long)ids[i]);
	printf("done i=%zu order=%zu ticks=%lu status=%d", i, finished, ticks, ans->status);
	if (ans->status == 0) {
		printf(" targets=");
		for (k = 0; k < ans->n_targets; k++)
			print_target(&ans->targets[k], k == 0);
	} else {
		const struct errmap_reply *row = errmap_get(ans->fail.reply);

		printf(" code=%d esc=%s text=%s", row->code, row->esc, ans->fail.text);
	}
	printf("\n");
	fflush(stdout);
	finished++;
	if (finished == expected || (stop_after && finished == stop_after))
		event_base_loopbreak(base);
}

static int
parse_spec(const char *spec, struct route_nexthop *nh)
{
	char domain[ROUTE_HOST_MAX + 1], *colon;
	unsigned long port = ROUTE_DEFAULT_PORT;

	if (strncmp(spec, "mx=", 3) != 0)
		return route_parse_nexthop(spec, nh);
	snprintf(domain, sizeof(domain), "%s", spec + 3);
	if ((colon = strchr(domain, ':')) != NULL) {
		*colon = '\0';
		port = strtoul(colon + 1, NULL, 10);
	}
	if (route_parse_target("mx", nh) < 0 || port == 0 || port > 65535)
		return -EINVAL;
	nh->port = (unsigned)port;
	snprintf(nh->host, sizeof(nh->host), "%s", domain);
	return 0;
}

int
main(int argc, char **argv)
{
	struct timeval every = { 0, 20000 };
	struct route_nexthop nh;
	struct event *tick;
	char err[256];
	unsigned timeout_s = 30;
	const char *self = NULL;
	long cancel = -1;
	int c, keep = 0, r;
	size_t i;

	while ((c = getopt(argc, argv, "t:kc:x:s:")) != -1) {
		switch (c) {
		case 't': timeout_s = (unsigned)atoi(optarg); break;
		case 'k': keep = 1; break;
		case 'c': cancel = atol(optarg); break;
		case 'x': stop_after = (size_t)atol(optarg); break;
		case 's': self = optarg; break;
		default: return 2;
		}
	}
	if (argc - optind < 2 || argc - optind - 1 > MAX_SPECS) {
		fprintf(stderr, "usage: dns_probe [-t s] [-k] [-c i] [-x n] RESOLVER SPEC...\n");
		return 2;
	}
	log_init("dns_probe", LOG_LVL_DEBUG);
	base = event_base_new();
	if ((r = dns_new(base, strcmp(argv[optind], "system") == 0 ? "" : argv[optind], timeout_s, self, &dns,
	    err, sizeof(err))) < 0) {
		fprintf(stderr, "dns_new: %s\n", err);
		return 2;
	}
	if (keep)
		dns_set_random(dns, identity, NULL);
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &every);
	nspecs = expected = (size_t)(argc - optind - 1);
	for (i = 0; i < nspecs; i++) {
		if (parse_spec(argv[optind + 1 + i], &nh) < 0) {
			fprintf(stderr, "bad spec: %s\n", argv[optind + 1 + i]);
			return 2;
		}
		in_resolve = 1;
		r = dns_resolve(dns, &nh, done_cb, (void *)(uintptr_t)i, &ids[i]);
		in_resolve = 0;
		if (r < 0) {
			fprintf(stderr, "dns_resolve(%s): %s\n", argv[optind + 1 + i], strerror(-r));
			return 2;
		}
		if ((long)i == cancel) {
			if ((r = dns_cancel(dns, ids[i])) != 0)
				printf("error cancel=%d\n", r);
			if (dns_cancel(dns, ids[i]) != -ENOENT)
				printf("error cancelled twice\n");
			expected--;	/* it never finishes */
			ids[i] = 0;
		}
	}
	if (finished < expected)
		event_base_dispatch(base);
	printf("end pending=%zu ticks=%lu\n", dns_pending(dns), ticks);
	fflush(stdout);
	dns_free(dns);
	event_free(tick);
	event_base_free(base);
	return 0;
}
