/*
 * NAME
 *	dns - asynchronous DNS for the relay: a next hop into addresses to try
 * DESCRIPTION
 *	See dns.h.  A lookup is a small state machine:
 *
 *	  MX phase	one MX query (only when nh->mx_lookup)
 *	  ADDR phase	AAAA and A queries for every host of the plan, in parallel
 *	  done		targets built, callback called, lookup freed
 *
 *	Every libunbound query of a lookup is a struct dns_query inside the
 *	lookup; libunbound's mydata points at it.  A lookup is freed only after
 *	ub_cancel() of its pending queries, and libunbound calls no callback
 *	for a cancelled query, so no callback sees freed memory.  Lookups are
 *	found again by id (dns_cancel) in a list.  The deadline timer of a
 *	lookup cancels what is still pending and finishes with what arrived.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unbound.h>

#include "dns.h"
#include "errmap.h"
#include "log.h"
#include "route.h"

#define RR_A		1
#define RR_MX		15
#define RR_AAAA		28
#define RR_CLASS_IN	1
#define RCODE_SERVFAIL	2
#define RCODE_NXDOMAIN	3

struct dns_lookup;

struct dns_query {
	struct dns_lookup      *lk;
	int			async_id;
	bool			pending;
	int			rrtype;
	size_t			host;		/* index into lk->hosts (ADDR phase) */
};

struct dns_host {
	struct route_mx		mx;
	struct dns_query	q[2];		/* [0] AAAA, [1] A */
	struct sockaddr_storage	addrs[2][DNS_MAX_HOST_ADDRS];
	size_t			naddrs[2];
};

struct dns_lookup {
	TAILQ_ENTRY(dns_lookup)	link;
	struct dns	       *d;
	uint64_t		id;
	struct route_nexthop	nh;
	dns_done_fn		done;
	void		       *arg;
	struct event	       *deadline;
	struct event	       *now;		/* literal next hops answer from the loop */
	struct dns_query	mxq;
	struct dns_host		hosts[DNS_MAX_HOSTS];
	size_t			nhosts;
	size_t			outstanding;	/* pending address queries */
	bool			temporary;	/* an address query failed in a way that may pass */
	char			detail[ROUTE_HOST_MAX + 64];	/* the first address failure */
};

struct dns {
	struct event_base      *base;
	struct ub_ctx	       *ctx;
	struct event	       *ev;
	unsigned		timeout_s;
	char			self[ROUTE_HOST_MAX + 1];	/* this gateway's name: never an MX to use */
	uint64_t		next_id;
	size_t			npending;
	route_rand_fn		rnd;
	void		       *rarg;
	TAILQ_HEAD(, dns_lookup) lookups;
};

static uint32_t
default_random(void *arg, uint32_t bound)
{
	(void)arg;
	return arc4random_uniform(bound);
}

static const char *
rrtype_name(int rrtype)
{
	return rrtype == RR_MX ? "MX" : rrtype == RR_AAAA ? "AAAA" : "A";
}

/* ------------------------------------------------------------ context */

static void
dns_readable_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	int r;

	(void)fd;
	(void)what;
	if ((r = ub_process(d->ctx)) != 0)
		log_event(LOG_LVL_ERROR, "dns-error", "error=\"ub_process: %s\"", ub_strerror(r));
}

static int
configure_resolver(struct ub_ctx *ctx, const char *resolver, char *err, size_t errlen)
{
	struct route_nexthop nh;
	char fwd[ROUTE_HOST_MAX + 16];
	int r;

	if (resolver == NULL || *resolver == '\0') {
		if ((r = ub_ctx_resolvconf(ctx, NULL)) != 0) {
			snprintf(err, errlen, "cannot read /etc/resolv.conf: %s", ub_strerror(r));
			return -EINVAL;
		}
		if ((r = ub_ctx_hosts(ctx, NULL)) != 0) {
			snprintf(err, errlen, "cannot read /etc/hosts: %s", ub_strerror(r));
			return -EINVAL;
		}
		return 0;
	}
	if (route_parse_nexthop(resolver, &nh) < 0 || !nh.literal) {
		snprintf(err, errlen, "resolver '%s' is not ip:port or [ipv6]:port", resolver);
		return -EINVAL;
	}
	snprintf(fwd, sizeof(fwd), "%s@%u", nh.host, nh.port);
	/* A forwarder on loopback (a local cache, the tests' unbound) is asked as any other. */
	if ((r = ub_ctx_set_fwd(ctx, fwd)) != 0) {
		snprintf(err, errlen, "resolver %s: %s", resolver, ub_strerror(r));
		return -EINVAL;
	}
	return 0;
}

int
dns_new(struct event_base *base, const char *resolver, unsigned timeout_s, const char *self, struct dns **out,
    char *err, size_t errlen)
{
	struct dns *d;
	int r;

	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	TAILQ_INIT(&d->lookups);
	d->base = base;
	d->timeout_s = timeout_s ? timeout_s : 30;
	snprintf(d->self, sizeof(d->self), "%s", self != NULL ? self : "");
	d->next_id = 1;
	d->rnd = default_random;
	if ((d->ctx = ub_ctx_create()) == NULL) {
		snprintf(err, errlen, "ub_ctx_create failed");
		free(d);
		return -ENOMEM;
	}
	if ((r = ub_ctx_async(d->ctx, 1)) != 0) {
		snprintf(err, errlen, "ub_ctx_async: %s", ub_strerror(r));
		dns_free(d);
		return -EINVAL;
	}
	if ((r = configure_resolver(d->ctx, resolver, err, errlen)) < 0) {
		dns_free(d);
		return r;
	}
	d->ev = event_new(base, ub_fd(d->ctx), EV_READ | EV_PERSIST, dns_readable_cb, d);
	if (d->ev == NULL || event_add(d->ev, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the resolver's descriptor");
		dns_free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void
dns_set_random(struct dns *d, route_rand_fn rnd, void *arg)
{
	d->rnd = rnd != NULL ? rnd : default_random;
	d->rarg = rnd != NULL ? arg : NULL;
}

size_t
dns_pending(const struct dns *d)
{
	return d->npending;
}

/* ------------------------------------------------------------ lookups */

static void
query_cancel(struct dns *d, struct dns_query *q)
{
	if (!q->pending)
		return;
	ub_cancel(d->ctx, q->async_id);
	q->pending = false;
}

static void
lookup_cancel_queries(struct dns_lookup *lk)
{
	size_t i;

	query_cancel(lk->d, &lk->mxq);
	for (i = 0; i < lk->nhosts; i++) {
		query_cancel(lk->d, &lk->hosts[i].q[0]);
		query_cancel(lk->d, &lk->hosts[i].q[1]);
	}
	lk->outstanding = 0;
}

/* Takes the lookup off the list: dns_cancel() no longer finds it. */
static void
lookup_unlink(struct dns_lookup *lk)
{
	TAILQ_REMOVE(&lk->d->lookups, lk, link);
	lk->d->npending--;
}

static void
lookup_destroy(struct dns_lookup *lk)
{
	lookup_cancel_queries(lk);
	if (lk->deadline != NULL)
		event_free(lk->deadline);
	if (lk->now != NULL)
		event_free(lk->now);
	free(lk);
}

static void
lookup_free(struct dns_lookup *lk)
{
	lookup_unlink(lk);
	lookup_destroy(lk);
}

static void
log_answer(const struct dns_lookup *lk, const struct dns_answer *ans)
{
	char q[sizeof(ans->fail.text) * 4 + 3];

	if (ans->status == 0) {
		log_event(LOG_LVL_DEBUG, "dns-resolved", "id=%llu host=%s port=%u targets=%zu first=%s",
		    (unsigned long long)lk->id, lk->nh.host, lk->nh.port, ans->n_targets, ans->targets[0].host);
		return;
	}
	log_event(LOG_LVL_DEBUG, "dns-failed", "id=%llu host=%s reply=%d esc=%s text=%s",
	    (unsigned long long)lk->id, lk->nh.host, errmap_get(ans->fail.reply)->code,
	    errmap_get(ans->fail.reply)->esc, log_quote(q, sizeof(q), ans->fail.text));
}

/*
 * Calls the callback once and frees the lookup.  The lookup is off the list
 * before the callback runs, so a dns_cancel() of its id from inside finds
 * nothing, and a new dns_resolve() from inside is safe.
 */
static void
lookup_finish(struct dns_lookup *lk, const struct dns_answer *ans)
{
	lookup_cancel_queries(lk);
	lookup_unlink(lk);
	log_answer(lk, ans);
	lk->done(lk->arg, lk->id, ans);
	lookup_destroy(lk);
}

static void
lookup_fail(struct dns_lookup *lk, int status, const struct route_fail *fail)
{
	struct dns_answer ans = { .status = status, .fail = *fail };

	lookup_finish(lk, &ans);
}

static enum route_dns_rcode
rcode_of(int err, const struct ub_result *res)
{
	if (err != 0 || res == NULL)
		return ROUTE_DNS_OTHER;
	if (res->rcode == RCODE_NXDOMAIN || res->nxdomain)
		return ROUTE_DNS_NXDOMAIN;
	if (res->rcode == RCODE_SERVFAIL)
		return ROUTE_DNS_SERVFAIL;
	return ROUTE_DNS_OTHER;
}

static bool
answered(int err, const struct ub_result *res)
{
	return err == 0 && res != NULL && res->rcode == 0;
}

static void
set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/* Targets in order: per host, IPv6 then IPv4; then the callback. */
static void
lookup_deliver(struct dns_lookup *lk)
{
	struct dns_target *t;
	struct dns_answer ans = { 0 };
	struct route_fail fail;
	size_t h, f, i, n = 0;
	int r;

	if ((t = calloc(DNS_MAX_ADDRS, sizeof(*t))) == NULL) {
		fail.reply = REPLY_NO_MEMORY;
		snprintf(fail.text, sizeof(fail.text), "out of memory resolving %s", lk->nh.host);
		lookup_fail(lk, -EAGAIN, &fail);
		return;
	}
	for (h = 0; h < lk->nhosts; h++) {
		struct dns_host *host = &lk->hosts[h];

		for (f = 0; f < 2; f++) {
			for (i = 0; i < host->naddrs[f] && n < DNS_MAX_ADDRS; i++, n++) {
				t[n].addr = host->addrs[f][i];
				t[n].addrlen = f == 0 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
				set_port(&t[n].addr, lk->nh.port);
				snprintf(t[n].host, sizeof(t[n].host), "%s", host->mx.host);
				t[n].preference = host->mx.preference;
			}
		}
	}
	if (n == 0) {
		r = route_no_address(&lk->nh, lk->temporary, lk->detail[0] ? lk->detail : NULL, &fail);
		free(t);
		lookup_fail(lk, r, &fail);
		return;
	}
	ans.targets = t;
	ans.n_targets = n;
	lookup_finish(lk, &ans);
	free(t);
}

static void
note_address_failure(struct dns_lookup *lk, const char *host, int rrtype, enum route_dns_rcode rc, bool temporary)
{
	if (temporary)
		lk->temporary = true;
	if (lk->detail[0] == '\0')
		snprintf(lk->detail, sizeof(lk->detail), "%s lookup of %s: %s", rrtype_name(rrtype), host,
		    rc == ROUTE_DNS_NXDOMAIN ? "NXDOMAIN" : temporary ? route_dns_rcode_name(rc) : "no record");
}

/* Reads A (4 bytes) or AAAA (16 bytes) rdata; anything else is skipped. */
static void
collect_addresses(struct dns_host *host, int rrtype, const struct ub_result *res)
{
	size_t f = rrtype == RR_AAAA ? 0 : 1, want = rrtype == RR_AAAA ? 16 : 4;
	int i;

	for (i = 0; res->data[i] != NULL && host->naddrs[f] < DNS_MAX_HOST_ADDRS; i++) {
		struct sockaddr_storage *ss = &host->addrs[f][host->naddrs[f]];

		if (res->len[i] < 0 || (size_t)res->len[i] != want)
			continue;
		memset(ss, 0, sizeof(*ss));
		if (rrtype == RR_AAAA) {
			ss->ss_family = AF_INET6;
			memcpy(&((struct sockaddr_in6 *)ss)->sin6_addr, res->data[i], 16);
		} else {
			ss->ss_family = AF_INET;
			memcpy(&((struct sockaddr_in *)ss)->sin_addr, res->data[i], 4);
		}
		host->naddrs[f]++;
	}
}

static void
address_cb(void *mydata, int err, struct ub_result *res)
{
	struct dns_query *q = mydata;
	struct dns_lookup *lk = q->lk;
	struct dns_host *host = &lk->hosts[q->host];
	enum route_dns_rcode rc;

	q->pending = false;
	lk->outstanding--;
	if (answered(err, res) && res->havedata) {
		collect_addresses(host, q->rrtype, res);
	} else if (answered(err, res)) {
		note_address_failure(lk, host->mx.host, q->rrtype, ROUTE_DNS_OTHER, false);	/* no record */
	} else {
		rc = rcode_of(err, res);
		note_address_failure(lk, host->mx.host, q->rrtype, rc, rc != ROUTE_DNS_NXDOMAIN);
	}
	if (res != NULL)
		ub_resolve_free(res);
	if (lk->outstanding == 0)
		lookup_deliver(lk);
}

static int
query_start(struct dns_lookup *lk, struct dns_query *q, const char *name, int rrtype, ub_callback_type cb)
{
	int r;

	q->lk = lk;
	q->rrtype = rrtype;
	if ((r = ub_resolve_async(lk->d->ctx, name, rrtype, RR_CLASS_IN, q, cb, &q->async_id)) != 0)
		return r;
	q->pending = true;
	return 0;
}

/* ADDR phase: AAAA and A of every host at once. */
static void
lookup_start_addresses(struct dns_lookup *lk)
{
	struct route_fail fail;
	size_t h;
	int r;

	if (lk->nhosts == 0) {
		lookup_deliver(lk);	/* no address to wait for: fail now, not at the deadline */
		return;
	}
	for (h = 0; h < lk->nhosts; h++) {
		struct dns_host *host = &lk->hosts[h];

		host->q[0].host = host->q[1].host = h;
		if ((r = query_start(lk, &host->q[0], host->mx.host, RR_AAAA, address_cb)) != 0 ||
		    (r = query_start(lk, &host->q[1], host->mx.host, RR_A, address_cb)) != 0) {
			fail.reply = REPLY_DNS_TEMPFAIL;
			snprintf(fail.text, sizeof(fail.text), "cannot ask the resolver about %s: %s",
			    host->mx.host, ub_strerror(r));
			lookup_fail(lk, -EAGAIN, &fail);
			return;
		}
		lk->outstanding += 2;
	}
}

/* The MX records of a NOERROR answer, malformed ones skipped. */
static size_t
parse_mx_answer(const struct ub_result *res, struct route_mx *mx, size_t max, size_t *bad)
{
	size_t n = 0;
	int i;

	*bad = 0;
	for (i = 0; res->havedata && res->data[i] != NULL && n < max; i++) {
		if (res->len[i] < 0 || route_mx_rdata_parse((const unsigned char *)res->data[i],
		    (size_t)res->len[i], &mx[n]) < 0) {
			(*bad)++;
			continue;
		}
		n++;
	}
	return n;
}

static void
mx_cb(void *mydata, int err, struct ub_result *res)
{
	struct dns_query *q = mydata;
	struct dns_lookup *lk = q->lk;
	struct route_mx mx[ROUTE_MX_MAX], plan[DNS_MAX_HOSTS];
	struct route_fail fail;
	size_t n, bad, nplan, h;
	int r;

	q->pending = false;
	if (!answered(err, res)) {
		r = route_dns_fail(&lk->nh, lk->nh.host, "MX", rcode_of(err, res), &fail);
		if (err != 0)
			snprintf(fail.text, sizeof(fail.text), "MX lookup of %s: %s", lk->nh.host, ub_strerror(err));
		if (res != NULL)
			ub_resolve_free(res);
		lookup_fail(lk, r, &fail);
		return;
	}
	n = parse_mx_answer(res, mx, ROUTE_MX_MAX, &bad);
	ub_resolve_free(res);
	if (n == 0 && bad > 0) {
		fail.reply = REPLY_DNS_TEMPFAIL;
		snprintf(fail.text, sizeof(fail.text), "MX lookup of %s: %zu malformed record(s)", lk->nh.host, bad);
		lookup_fail(lk, -EAGAIN, &fail);
		return;
	}
	if (bad > 0)
		log_event(LOG_LVL_WARN, "dns-malformed", "name=%s type=MX skipped=%zu", lk->nh.host, bad);
	if ((r = route_mx_plan(lk->nh.host, lk->d->self, mx, n, lk->d->rnd, lk->d->rarg, plan, DNS_MAX_HOSTS, &nplan,
	    &fail)) < 0) {
		lookup_fail(lk, r, &fail);
		return;
	}
	for (h = 0; h < nplan; h++)
		lk->hosts[h].mx = plan[h];
	lk->nhosts = nplan;
	lookup_start_addresses(lk);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_lookup *lk = arg;
	struct route_fail fail;
	const char *qname = lk->nh.host, *qtype = "MX";
	size_t h;
	int r;

	(void)fd;
	(void)what;
	if (!lk->mxq.pending) {
		/* ADDR phase: use what arrived; name a host still pending. */
		for (h = 0; h < lk->nhosts; h++) {
			if (lk->hosts[h].q[0].pending || lk->hosts[h].q[1].pending) {
				qname = lk->hosts[h].mx.host;
				qtype = lk->hosts[h].q[0].pending ? "AAAA" : "A";
				break;
			}
		}
		lookup_cancel_queries(lk);
		note_address_failure(lk, qname, strcmp(qtype, "A") == 0 ? RR_A : RR_AAAA, ROUTE_DNS_TIMEOUT, true);
		for (h = 0; h < lk->nhosts; h++)
			if (lk->hosts[h].naddrs[0] + lk->hosts[h].naddrs[1] > 0)
				break;
		if (h < lk->nhosts) {
			lookup_deliver(lk);
			return;
		}
	}
	r = route_dns_fail(&lk->nh, qname, qtype, ROUTE_DNS_TIMEOUT, &fail);
	snprintf(fail.text + strlen(fail.text), sizeof(fail.text) - strlen(fail.text), " (%u s)", lk->d->timeout_s);
	lookup_fail(lk, r, &fail);
}

static void
literal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_lookup *lk = arg;

	(void)fd;
	(void)what;
	lookup_deliver(lk);
}

static int
literal_address(struct dns_lookup *lk)
{
	struct dns_host *host = &lk->hosts[0];

	memset(&host->addrs[0][0], 0, sizeof(host->addrs[0][0]));
	memset(&host->addrs[1][0], 0, sizeof(host->addrs[1][0]));
	if (inet_pton(AF_INET6, lk->nh.host, &((struct sockaddr_in6 *)&host->addrs[0][0])->sin6_addr) == 1) {
		host->addrs[0][0].ss_family = AF_INET6;
		host->naddrs[0] = 1;
	} else if (inet_pton(AF_INET, lk->nh.host, &((struct sockaddr_in *)&host->addrs[1][0])->sin_addr) == 1) {
		host->addrs[1][0].ss_family = AF_INET;
		host->naddrs[1] = 1;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int
lookup_begin(struct dns_lookup *lk)
{
	struct timeval tv = { 0, 0 };
	int r;

	snprintf(lk->hosts[0].mx.host, sizeof(lk->hosts[0].mx.host), "%s", lk->nh.host);
	lk->nhosts = 1;
	if (lk->nh.literal) {
		if ((r = literal_address(lk)) < 0)
			return r;
		if ((lk->now = evtimer_new(lk->d->base, literal_cb, lk)) == NULL || evtimer_add(lk->now, &tv) < 0)
			return -ENOMEM;
		return 0;
	}
	tv.tv_sec = lk->d->timeout_s;
	if ((lk->deadline = evtimer_new(lk->d->base, deadline_cb, lk)) == NULL || evtimer_add(lk->deadline, &tv) < 0)
		return -ENOMEM;
	if (lk->nh.mx_lookup) {
		lk->nhosts = 0;
		if ((r = query_start(lk, &lk->mxq, lk->nh.host, RR_MX, mx_cb)) != 0) {
			log_event(LOG_LVL_ERROR, "dns-error", "name=%s error=\"%s\"", lk->nh.host, ub_strerror(r));
			return -EIO;
		}
		return 0;
	}
	/* [host]:port: its addresses only.  Started from the loop, so the callback is never inside here. */
	lk->hosts[0].q[0].host = lk->hosts[0].q[1].host = 0;
	if ((r = query_start(lk, &lk->hosts[0].q[0], lk->nh.host, RR_AAAA, address_cb)) != 0 ||
	    (r = query_start(lk, &lk->hosts[0].q[1], lk->nh.host, RR_A, address_cb)) != 0) {
		log_event(LOG_LVL_ERROR, "dns-error", "name=%s error=\"%s\"", lk->nh.host, ub_strerror(r));
		return -EIO;
	}
	lk->outstanding = 2;
	return 0;
}

int
dns_resolve(struct dns *d, const struct route_nexthop *nh, dns_done_fn done, void *arg, uint64_t *id)
{
	struct dns_lookup *lk;
	int r;

	if (d->npending >= DNS_MAX_PENDING)
		return -EAGAIN;
	if ((lk = calloc(1, sizeof(*lk))) == NULL)
		return -ENOMEM;
	lk->d = d;
	lk->id = d->next_id++;
	lk->nh = *nh;
	lk->done = done;
	lk->arg = arg;
	TAILQ_INSERT_TAIL(&d->lookups, lk, link);
	d->npending++;
	if ((r = lookup_begin(lk)) < 0) {
		lookup_free(lk);
		return r;
	}
	if (id != NULL)
		*id = lk->id;
	return 0;
}

int
dns_cancel(struct dns *d, uint64_t id)
{
	struct dns_lookup *lk;

	TAILQ_FOREACH(lk, &d->lookups, link) {
		if (lk->id == id) {
			lookup_free(lk);
			return 0;
		}
	}
	return -ENOENT;
}

void
dns_free(struct dns *d)
{
	struct dns_lookup *lk;

	if (d == NULL)
		return;
	while ((lk = TAILQ_FIRST(&d->lookups)) != NULL)
		lookup_free(lk);
	if (d->ev != NULL)
		event_free(d->ev);
	if (d->ctx != NULL)
		ub_ctx_delete(d->ctx);
	free(d);
}
