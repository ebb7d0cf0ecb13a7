/*
 * NAME
 *	runner - the relay's queue runner inside spoolgate-smtpd
 * SYNOPSIS
 *	#include "runner.h"
 * DESCRIPTION
 *	See runner.h for what it does; this is how.
 *
 *	Finding work.  inotify names each record renamed into queue/ (a new
 *	message, or a deferred one given back): that one record is read, and
 *	it goes to the backlog when due, else it arms the timer of the
 *	earliest next-attempt.  Full scans of queue/ run from a periodic timer
 *	(scan_interval, the safety net), from that due timer, after lost
 *	inotify events, and from runner_kick() when inotify is unavailable.
 *	Scan requests are coalesced by a short timer (RUNNER_SCAN_DELAY_MS).
 *	A second watch, on the spool root, sees <spool>/flush
 *	(QUEUE_FLUSH_FILE, spoolgate-mailq --flush): the runner removes it and
 *	the next scan takes every record as due (runner_flush()); at start a
 *	flush file left while smtpd was stopped is taken the same way.
 *	queue_scan() reads every record, so a scan is skipped while every
 *	delivery slot is busy; the due ids wait in a bounded backlog that
 *	feeds slots as they free up, and a new scan is made once the backlog
 *	ran dry after an overflow: from the next turn of the loop, without
 *	the coalescing delay, since slots are waiting for it.
 *
 *	A job.  Each claim is a struct runner_job, from queue_claim() to the
 *	end of its commit.  It holds one of the max_deliveries slots while it
 *	routes and delivers; once the outcome is known (job_commit()) the slot
 *	goes to the next claim and the job becomes one of the commits in
 *	flight (ncommits), its claim still in active/ until the record is
 *	durable.  At most RUNNER_COMMITS_PER_SLOT x max_deliveries commits are
 *	in flight: past that no new claim is made, so a slow disk holds the
 *	runner back instead of piling up claims.
 *
 *	The data path reads in one direction: runner_start() claims the
 *	record; job_route() groups its pending recipients by next hop
 *	(route_pick()); for each destination in turn job_next_dest() resolves
 *	the next hop (dns_resolve(); a literal needs none) and hands the
 *	envelope, the data file, the destination's recipients and the
 *	addresses (struct nexthop) to the delivery agent (delivery.c); the
 *	delivery fills in each recipient's fate and calls job_dest_delivered()
 *	once (a DNS failure fills them in without a delivery); after the last
 *	destination the job settles the envelope (relay_settle(): attempts,
 *	next-attempt, expiry), explains the outcome, and goes through commitq:
 *	the record is written and synced on the committer thread, never on
 *	the loop (with one syncfs for the records of a batch where the
 *	spool's filesystem allows it: commitq.h, sync_fs).  A record whose lifetime ran out while it waited is settled
 *	without a delivery (relay_expire()).  Before the commit,
 *	job_notify_sender() asks bounce.h whether the sender gets a notice
 *	(a failure, or a delay warning) and whether some recipients were
 *	delivered with NOTIFY=SUCCESS (a success notice); the notices commit in the same
 *	commitq job, published after the record.
 *
 *	A commit that fails (a full disk) is retried with a backoff; the job
 *	stays among the commits in flight meanwhile.
 *
 *	Ownership.  A job owns its claim.  It points back at the runner only
 *	to give the slot back, and runner_free() clears that pointer, so a
 *	done() that runs after runner_free() (commitq_free() comes later at
 *	shutdown) touches nothing that died.  The delivery agent owns the
 *	connections; runner_free() frees it first, then gives back the claims
 *	of deliveries that never reported.
 *
 *	Too many recipients.  When the delivery says a RCPT was refused with
 *	452 4.5.3 and the same transaction delivered to others, the record is
 *	given back due at once (RFC 5321 4.5.3.1.10: send the rest in another
 *	transaction) instead of waiting for the backoff.
 * DIAGNOSTICS
 *	One key=value line per event, with id= where a message is concerned:
 *	relay-started; relay-rcpt (rcpt=, status=, reply=) for each recipient
 *	of an attempt; relay-route-failed (route=, status=, reply=) when DNS
 *	gave a destination no address; relay-sent (reused=), relay-deferred (next=, delay=, attempts=)
 *	and relay-failed (reply=, expired=) once the record is durable;
 *	relay-concluded for a record claimed with no pending recipient (settled
 *	without a delivery: job_conclude());
 *	relay-abandoned at shutdown; and at error level relay-finish-failed:
 *	the record could not be written, it stays in active/ and the write is
 *	retried (recovery would return it to queue/ at the next start).
 *	relay-scan and relay-dest-wait (a job waits for max_per_destination)
 *	at debug level.  The delivery logs its own (delivery.c).
 * THREADS
 *	Event loop thread only, except the prepare/publish/release callbacks of a
 *	job, which commitq runs on its thread while the job is theirs.
 */
#include <sys/types.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "../common/cfg.h"
#include "../common/envelope.h"
#include "../common/log.h"
#include "../common/queue.h"
#include "../common/route.h"
#include "../common/sasl.h"
#include "../common/tls.h"
#include "../common/spool.h"
#include "bounce.h"
#include "commitq.h"
#include "delivery.h"
#include "dns.h"
#include "nexthop.h"
#include "runner.h"
#include "relay_smtp.h"

#define RUNNER_SCAN_DELAY_MS	50		/* coalesces a burst of triggers */
#define RUNNER_BACKLOG_MAX	1024		/* due ids kept between scans */
#define RUNNER_FINISH_RETRY_MIN	5		/* seconds, doubled per failure */
#define RUNNER_FINISH_RETRY_MAX	300
#define RUNNER_COMMITS_PER_SLOT	4		/* commits in flight per max_deliveries */
#define RUNNER_RELEASE_MAX	1024		/* held messages released by ETRN, not yet claimed */

#define RUNNER_ODMR_MAX		16		/* ATRN sessions at once */
#define RUNNER_ODMR_TARGET	"odmr:"		/* route target of an ATRN session's hop */

/* A held message an ETRN or ATRN asked for: its next claim delivers node's recipients. */
struct runner_release {
	char			id[SPOOL_ID_MAX];
	struct route_node	node;		/* ETRN's */
	unsigned		odmr;		/* ATRN's session, or 0 */
};

/*
 * An ATRN session (RFC 2645): the domains it took (locked against other
 * sessions), the turned connection until the first delivery takes it, and
 * the messages released for it that are not finished.
 */
struct runner_odmr {
	unsigned		id;		/* 0: a free slot */
	struct bufferevent     *bev;		/* owned until a delivery takes it */
	char			domains[CFG_MAX_LIST][ROUTE_HOST_MAX + 1];
	size_t			ndomains;
	unsigned		pending;
};

#define RUNNER_POLL_MAX		65536		/* names remembered by the poll of a shared queue/ */

struct runner_job;

struct runner {
	struct event_base      *base;
	const struct cfg       *cfg;
	struct spool	       *spool;
	struct commitq	       *cq;
	struct relay_policy	policy;

	struct dns	       *dns;		/* NULL when no route needs DNS */
	struct bounce	       *bounce;		/* delivery status notifications */
	struct sasl_creds      *creds;		/* the credentials file, or NULL */
	struct delivery_agent  *agent;		/* owns the connections */
	bool			stopping;	/* runner_free(): no new claims */

	int			inotify_fd;	/* -1 when unavailable */
	int			root_wd;	/* the spool root's watch (QUEUE_FLUSH_FILE), or -1 */
	struct event	       *inotify_ev;
	bool			flush_wanted;	/* mailq --flush: the next scan takes every record */
	struct runner_release  *releases;	/* RUNNER_RELEASE_MAX, nreleases used */
	size_t			nreleases;
	struct runner_odmr	odmr[RUNNER_ODMR_MAX];
	unsigned		next_odmr_id;
	struct event	       *scan_ev;	/* the coalescing timer */
	struct event	       *interval_ev;	/* scan_interval, persistent */
	struct event	       *poll_ev;	/* shared = yes: poll_interval_ms, persistent; else NULL */
	char		      (*polled)[SPOOL_ID_MAX];	/* queue/'s names at the last poll, sorted */
	size_t			npolled;
	struct event	       *due_ev;		/* earliest next-attempt */
	struct event	       *wake_ev;	/* a destination has room: resume jobs waiting for it */
	struct event	       *dispatch_ev;	/* a slot is free: claim the next message */
	long long		due_at;		/* when due_ev fires (unix s), 0 = not armed */
	bool			scan_scheduled;
	bool			scan_wanted;	/* rescan once the backlog is used up */

	char		      (*backlog)[SPOOL_ID_MAX];
	size_t			nbacklog, backlog_pos;

	unsigned		nclaims;	/* jobs holding a delivery slot */
	unsigned		ncommits;	/* jobs whose outcome is being committed (slot given back) */
	bool			dispatching;	/* runner_dispatch() is on the stack */
	LIST_HEAD(, runner_job)	jobs;
};

/* One next hop of a message and the recipients that go there (see "Routing" below). */
struct runner_dest {
	struct route_nexthop	nh;
	size_t			first, n;	/* its recipients: dest_rcpts[first .. first+n) */
	char			host[NEXTHOP_NAME_MAX];	/* who answered last, for job_explain() */
};

/* One claim, from queue_claim() until its record is durable. */
/* A notice about a job's message, committed with its record. */
struct runner_notice {
	struct spool_msg       *msg;		/* owned, or NULL */
	bool			published;
	int			err;		/* why it could not be committed */
};

#define RUNNER_NOTICES	2	/* a failure or delay notice, a success notice */

struct runner_job {
	struct commitq_job	cj;
	LIST_ENTRY(runner_job)	link;
	struct runner	       *runner;		/* NULL after runner_free() */
	struct queue_claim     *qc;		/* owned */
	char			id[SPOOL_ID_MAX];
	bool			delivering;	/* routing or a delivery has the envelope */
	bool			at_dest;	/* counts against dests[cur_dest]'s max_per_destination */
	bool			waiting;	/* for room at dests[cur_dest] */
	bool			committing;	/* in commitq or waiting to retry: counts in ncommits, not nclaims */

	/* The routes of this attempt: one destination per next hop. */
	struct runner_dest     *dests;		/* owned, ndests */
	size_t			ndests, cur_dest;
	size_t		       *dest_rcpts;	/* owned: recipient indices, grouped per destination */
	size_t		       *dest_of;	/* owned: per env->rcpt, its destination or SIZE_MAX */
	bool			resolving;	/* dns_id is pending */
	uint64_t		dns_id;
	struct nexthop		hop;		/* of the current destination */
	bool			rcpt_overflow;	/* of any destination */
	bool			reused;		/* a delivery went over a connection used before */
	size_t			ndelivered;
	bool			released;	/* an ETRN asked for it: node's held recipients go */
	struct route_node	release_node;
	unsigned		odmr;		/* an ATRN session asked for it (runner_odmr.id), or 0 */
	size_t			npending, nheld;	/* at routing: pending, and of those held back */

	/* The outcome, set when the job goes to commitq. */
	enum queue_outcome	outcome;
	bool			keep_sent;
	bool			expired;
	unsigned		attempts;
	unsigned		delay;
	long long		next_attempt;
	char			reply[RELAY_REPLY_TEXT_MAX];

	/* Notices to the sender, committed with the record (bounce.h): a failure or delay, a success. */
	struct runner_notice	notice[RUNNER_NOTICES];

	unsigned		retry_delay;	/* of a failed commit */
	struct event	       *retry_ev;
};

static void runner_request_scan(struct runner *r);
static bool nexthop_is_odmr(const struct route_nexthop *nh);
static void runner_scan_soon(struct runner *r);
static void runner_dispatch(struct runner *r);
static void job_submit(struct runner_job *j);

static long long
now_seconds(void)
{
	return (long long)time(NULL);
}

/*
 * Room for one more claim: a free delivery slot, and fewer claims in all
 * than RUNNER_COMMITS_PER_SLOT x max_deliveries.  Every delivery becomes a
 * commit, so the commits in flight (each holding a claim and its memory)
 * never exceed that: a slow disk holds back new claims.
 */
static bool
runner_has_room(const struct runner *r)
{
	return r->nclaims < r->cfg->max_deliveries &&
	    r->nclaims + r->ncommits < RUNNER_COMMITS_PER_SLOT * r->cfg->max_deliveries;
}

/* The job's delivery slot, or its place among the commits in flight, goes to the next claim. */
static void
runner_release(struct runner *r, bool committing)
{
	unsigned *n = committing ? &r->ncommits : &r->nclaims;

	if (*n > 0)
		(*n)--;
	if (!r->stopping)
		runner_dispatch(r);
}

/*
 * A job's life.
 */

/* The claim goes back to queue/ unchanged (or stays in active/ for recovery). */
static void job_leave_dest(struct runner_job *j);

static void runner_odmr_done(struct runner *r, unsigned id);

static void
job_free(struct runner_job *j)
{
	if (j->odmr != 0 && j->runner != NULL)
		runner_odmr_done(j->runner, j->odmr);
	job_leave_dest(j);
	if (j->runner != NULL)
		LIST_REMOVE(j, link);
	queue_claim_free(j->qc);
	for (size_t i = 0; i < RUNNER_NOTICES; i++)
		spool_msg_free(j->notice[i].msg);	/* unpublished: removed with its temporaries */
	if (j->retry_ev != NULL)
		event_free(j->retry_ev);
	free(j->dests);
	free(j->dest_rcpts);
	free(j->dest_of);
	nexthop_wipe(&j->hop);
	free(j);
}

/* The record could not take the outcome: the claim goes back as it was. */
static void
job_give_back(struct runner_job *j, int err)
{
	struct runner *r = j->runner;

	log_error("relay-finish-failed", "id=%s error=\"%s\" action=\"claim returned to queue/ unchanged\"",
	    j->id, strerror(-err));
	job_free(j);
	runner_release(r, false);
}

/*
 * last-reply in the record (and reply= in the log) should explain the
 * outcome: for a deferral the reply that kept a recipient pending, for a
 * failure the one that refused, not a 250 that came after them.
 */
static void
job_explain(struct runner_job *j, struct envelope *env, enum queue_outcome outcome, const char *last)
{
	enum rcpt_state want = outcome == QUEUE_DEFERRED ? RCPT_PENDING : RCPT_FAILED;
	char host[NEXTHOP_NAME_MAX];
	size_t i;

	if (outcome == QUEUE_SENT)
		return;
	for (i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *er = &env->rcpt[i];

		if (er->state == want && er->reply != NULL) {
			/* The host of that recipient's destination, when this attempt had one. */
			if (j->dest_of != NULL && j->dest_of[i] != SIZE_MAX && j->dests[j->dest_of[i]].host[0])
				last = j->dests[j->dest_of[i]].host;
			snprintf(host, sizeof(host), "%s", last != NULL ? last : "");
			snprintf(j->reply, sizeof(j->reply), "%s", er->reply);
			if (envelope_set_last(env, host[0] ? host : NULL, j->reply) < 0)
				log_error("relay-rcpt", "id=%s error=\"%s\"", j->id, strerror(ENOMEM));
			return;
		}
	}
}

static void
job_log_rcpts(const struct runner_job *j, const struct envelope *env, const size_t *rcpts, size_t n)
{
	char addr[RELAY_REPLY_TEXT_MAX], reply[RELAY_REPLY_TEXT_MAX + 8];
	size_t i;

	for (i = 0; i < n; i++) {
		const struct envelope_rcpt *er = &env->rcpt[rcpts[i]];

		log_info("relay-rcpt", "id=%s rcpt=%s status=%s reply=%s", j->id,
		    log_quote(addr, sizeof(addr), er->addr), rcpt_state_name(er->state),
		    log_quote(reply, sizeof(reply), er->reply ? er->reply : ""));
	}
}

/*
 * The sender hears of a failure, or of a long delay: bounce.h decides,
 * records its decision in env and hands over the notice, which goes to
 * commitq with the record.
 */
static void
job_notify_sender(struct runner_job *j, struct envelope *env, const struct relay_verdict *v)
{
	j->notice[0].msg = bounce_for_outcome(j->runner->bounce, env, queue_claim_data_fd(j->qc), v->outcome,
	    now_seconds());
	j->notice[1].msg = bounce_for_success(j->runner->bounce, env, queue_claim_data_fd(j->qc), now_seconds());
}

/*
 * The settled envelope goes to commitq with its verdict.  The outcome is
 * known, so the delivery slot is free from here: the next claim starts
 * while the record is written and synced.  The claim itself stays in
 * active/ until the commit is done (job_committed()), so a crash meanwhile
 * gives it back at recovery, as before.
 */
static void
job_commit(struct runner_job *j, struct envelope *env, const struct relay_verdict *v)
{
	struct runner *r = j->runner;

	job_notify_sender(j, env, v);
	j->outcome = v->outcome;
	j->expired = v->expired;
	j->delay = v->delay;
	j->keep_sent = r->cfg->keep_sent;
	j->attempts = env->attempts;
	j->next_attempt = env->next_attempt;
	j->committing = true;
	r->ncommits++;
	if (r->nclaims > 0)
		r->nclaims--;
	job_submit(j);		/* from here j may be gone */
	if (!r->stopping && r->dispatch_ev != NULL)
		event_active(r->dispatch_ev, EV_TIMEOUT, 0);
}

/*
 * The attempt is over, every destination tried: settle it and make it
 * durable.  Also at shutdown for a job some of whose destinations were
 * tried already, so that what they delivered is not sent again.
 */
static void
job_settle(struct runner_job *j)
{
	struct runner *r = j->runner;
	struct envelope *env = queue_claim_envelope(j->qc);
	struct relay_verdict v;
	int err;

	j->delivering = false;
	if ((err = relay_settle(env, now_seconds(), &r->policy, &v)) < 0) {
		job_give_back(j, err);
		return;
	}
	if (v.outcome == QUEUE_DEFERRED && j->rcpt_overflow && j->ndelivered > 0) {
		/*
		 * RFC 5321 4.5.3.1.10: the server took what it could; the
		 * rest goes in the next transaction, now, not after a backoff.
		 * Each such round delivers someone, so the rounds end.
		 */
		env->next_attempt = now_seconds();
		v.delay = 0;
	}
	job_explain(j, env, v.outcome, env->last_host);
	job_commit(j, env, &v);
}

/*
 * Settled without an attempt (attempts unchanged): a record whose
 * max_queue_lifetime ran out while it waited fails now, and one with no
 * pending recipient goes where its recipients' states say.
 */
static void
job_settle_unattempted(struct runner_job *j)
{
	struct runner *r = j->runner;
	struct envelope *env = queue_claim_envelope(j->qc);
	struct relay_verdict v;
	int err;

	/* The last attempt's host and reply stay in the record. */
	if ((err = relay_expire(env, now_seconds(), &r->policy, &v)) < 0) {
		job_give_back(j, err);
		return;
	}
	job_explain(j, env, v.outcome, env->last_host);
	job_commit(j, env, &v);
}

/*
 * Routing: the recipients of a message into destinations.
 *
 * Each pending recipient's domain goes through route_pick() ([routes],
 * smarthost, MX); recipients with the same next hop form one destination
 * and get one transaction.  The destinations are tried one after the
 * other within the job's slot: resolve (dns_resolve(), asynchronous; an
 * address literal needs no DNS), then deliver to the addresses in order.
 * Every outcome, DNS or SMTP, lands in the one envelope of the claim,
 * which is settled and committed once, after the last destination.
 */

static void job_next_dest(struct runner_job *j);

static bool
same_nexthop(const struct route_nexthop *a, const struct route_nexthop *b)
{
	return a->port == b->port && a->mx_lookup == b->mx_lookup && a->literal == b->literal &&
	    a->recipient_mx == b->recipient_mx && strcasecmp(a->host, b->host) == 0 &&
	    strcmp(a->target, b->target) == 0 &&	/* the credentials go by the target as written */
	    route_opts_equal(&a->opts, &b->opts);	/* and a route's own TLS policy splits it off */
}

/* How a destination is named before an address answers: "[host]:port", "host:port", "mx:domain". */
static void
dest_name(const struct route_nexthop *nh, char *buf, size_t size)
{
	if (nh->recipient_mx && !nh->literal)
		snprintf(buf, size, "mx:%s", nh->host);
	else if (nh->literal && strchr(nh->host, ':') != NULL)
		snprintf(buf, size, "[%s]:%u", nh->host, nh->port);
	else if (nh->literal || nh->mx_lookup)
		snprintf(buf, size, "%s:%u", nh->host, nh->port);
	else
		snprintf(buf, size, "[%s]:%u", nh->host, nh->port);
}

/*
 * At most max_per_destination jobs at one next hop (resolving or
 * delivering there); a job that would be one more waits, holding its
 * slot, and wake_ev resumes it when one leaves.  The wake is an event,
 * not a call from inside the delivery's done(): by the time it runs the
 * connection that just finished is on the agent's idle list, ready for
 * the job that resumes.
 */
static bool
runner_dest_full(struct runner *r, const struct runner_job *j)
{
	const struct route_nexthop *nh = &j->dests[j->cur_dest].nh;
	const struct runner_job *k;
	unsigned n = 0;

	/* An ATRN session's connection carries one message at a time. */
	unsigned max = nexthop_is_odmr(nh) ? 1 : r->cfg->max_per_destination;

	LIST_FOREACH(k, &r->jobs, link)
		if (k != j && k->at_dest && same_nexthop(&k->dests[k->cur_dest].nh, nh) && ++n >= max)
			return true;
	return false;
}

static void
job_leave_dest(struct runner_job *j)
{
	if (!j->at_dest)
		return;
	j->at_dest = false;
	if (j->runner != NULL && !j->runner->stopping && j->runner->wake_ev != NULL)
		event_active(j->runner->wake_ev, EV_TIMEOUT, 0);
}

/* One recipient's fate decided here, not by a server: the state, the reply, the record's last host. */
static void
job_rcpt_outcome(struct runner_job *j, size_t i, enum rcpt_state state, const char *host, const char *reply)
{
	struct envelope *env = queue_claim_envelope(j->qc);

	if (envelope_set_rcpt(env, i, state, reply) < 0 || envelope_set_last(env, host, reply) < 0)
		log_error("relay-rcpt", "id=%s rcpt=%zu error=\"%s\"", j->id, i, strerror(ENOMEM));
}

/* The pending recipients of a domain no route can take fail here. */
static void
job_unroutable(struct runner_job *j, size_t i, int err)
{
	char reply[RELAY_REPLY_TEXT_MAX];

	relay_local_reply(reply, sizeof(reply), errmap_get(REPLY_DNS_NXDOMAIN),
	    err == -ENAMETOOLONG ? "the domain is too long to route" : "no domain to route by");
	job_rcpt_outcome(j, i, RCPT_FAILED, "(none)", reply);
	job_log_rcpts(j, queue_claim_envelope(j->qc), &i, 1);
}

/* Finds or adds the destination of nh; returns its index. */
static size_t
job_dest_index(struct runner_job *j, const struct route_nexthop *nh)
{
	size_t k;

	for (k = 0; k < j->ndests; k++)
		if (same_nexthop(&j->dests[k].nh, nh))
			return k;
	j->dests[k].nh = *nh;
	j->ndests++;
	return k;
}

static struct runner_odmr *
runner_odmr_find(struct runner *r, unsigned id)
{
	size_t i;

	for (i = 0; id != 0 && i < RUNNER_ODMR_MAX; i++)
		if (r->odmr[i].id == id)
			return &r->odmr[i];
	return NULL;
}

static bool
odmr_has_domain(const struct runner_odmr *o, const char *domain)
{
	size_t i;

	for (i = 0; i < o->ndomains; i++)
		if (strcasecmp(o->domains[i], domain) == 0)
			return true;
	return false;
}

static bool
runner_odmr_covers(struct runner *r, unsigned id, const char *domain)
{
	const struct runner_odmr *o = runner_odmr_find(r, id);

	return o != NULL && odmr_has_domain(o, domain);
}

/* The hop of ATRN session id: an address that is never connected to (the connection is the client's). */
static void
odmr_nexthop(unsigned id, struct route_nexthop *nh)
{
	memset(nh, 0, sizeof(*nh));
	snprintf(nh->host, sizeof(nh->host), "0.0.0.0");
	nh->port = id;
	nh->literal = true;
	snprintf(nh->target, sizeof(nh->target), "%s%u", RUNNER_ODMR_TARGET, id);
}

static bool
nexthop_is_odmr(const struct route_nexthop *nh)
{
	return strncmp(nh->target, RUNNER_ODMR_TARGET, strlen(RUNNER_ODMR_TARGET)) == 0;
}

/* A held recipient's domain goes now: an ETRN released this message for its node. */
static bool
job_releases(const struct runner_job *j, const char *domain, const struct route_nexthop *nh)
{
	return j->released && !nh->no_hop && route_node_matches(&j->release_node, domain);
}

/*
 * Groups the pending recipients by next hop; those of a held domain
 * ([routes] hold) stay out, unless an ETRN released them.  0 or -ENOMEM.
 */
static int
job_route(struct runner_job *j)
{
	const struct envelope *env = queue_claim_envelope(j->qc);
	struct route_nexthop nh;
	size_t i, k, n = env->nrcpt ? env->nrcpt : 1, *fill;

	j->dests = calloc(n, sizeof(*j->dests));
	j->dest_rcpts = calloc(n, sizeof(*j->dest_rcpts));
	j->dest_of = calloc(n, sizeof(*j->dest_of));
	if (j->dests == NULL || j->dest_rcpts == NULL || j->dest_of == NULL)
		return -ENOMEM;
	for (i = 0; i < env->nrcpt; i++) {
		const char *at = strrchr(env->rcpt[i].addr, '@');
		int err;

		j->dest_of[i] = SIZE_MAX;
		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		j->npending++;
		if ((err = route_pick(j->runner->cfg, at != NULL ? at + 1 : "", &nh)) < 0) {
			job_unroutable(j, i, err);
			continue;
		}
		if (nh.hold && j->odmr != 0 && runner_odmr_covers(j->runner, j->odmr, at + 1))
			odmr_nexthop(j->odmr, &nh);
		else if (nh.hold && !job_releases(j, at + 1, &nh)) {
			j->nheld++;	/* stays pending, untouched, until its node asks */
			continue;
		}
		k = job_dest_index(j, &nh);
		j->dest_of[i] = k;
		j->dests[k].n++;
	}
	for (k = 1; k < j->ndests; k++)
		j->dests[k].first = j->dests[k - 1].first + j->dests[k - 1].n;
	if ((fill = calloc(n, sizeof(*fill))) == NULL)
		return -ENOMEM;
	for (i = 0; i < env->nrcpt; i++) {
		if ((k = j->dest_of[i]) == SIZE_MAX)
			continue;
		j->dest_rcpts[j->dests[k].first + fill[k]++] = i;
	}
	free(fill);
	return 0;
}

/* Every recipient of the current destination gets the outcome of its DNS lookup. */
static void
job_dest_failed(struct runner_job *j, int status, const struct route_fail *fail)
{
	struct runner_dest *dest = &j->dests[j->cur_dest];
	enum rcpt_state state = status == -EPERM ? RCPT_FAILED : RCPT_PENDING;
	char reply[RELAY_REPLY_TEXT_MAX], quoted[RELAY_REPLY_TEXT_MAX + 8];
	size_t m;

	relay_local_reply(reply, sizeof(reply), errmap_get(fail->reply), fail->text);
	snprintf(j->reply, sizeof(j->reply), "%s", reply);
	dest_name(&dest->nh, dest->host, sizeof(dest->host));
	log_info("relay-route-failed", "id=%s route=%s status=%s reply=%s", j->id, dest->host,
	    rcpt_state_name(state), log_quote(quoted, sizeof(quoted), reply));
	for (m = 0; m < dest->n; m++)
		job_rcpt_outcome(j, j->dest_rcpts[dest->first + m], state, dest->host, reply);
	if (envelope_add_attempt(queue_claim_envelope(j->qc), now_seconds(), dest->host, NULL, NULL, false, reply) < 0)
		log_warn("relay-attempt-note", "id=%s error=\"the record cannot take this attempt\"", j->id);
	bounce_note_attempt(queue_claim_envelope(j->qc), &j->dest_rcpts[dest->first], dest->n, dest->host,
	    now_seconds());
	job_log_rcpts(j, queue_claim_envelope(j->qc), &j->dest_rcpts[dest->first], dest->n);
	job_leave_dest(j);
	j->cur_dest++;
	job_next_dest(j);
}

/* A local failure before the delivery could start: the destination's recipients stay pending. */
static void
job_dest_local_error(struct runner_job *j, int err, const char *what)
{
	struct route_fail fail;

	fail.reply = errmap_from_errno(-err)->id;
	snprintf(fail.text, sizeof(fail.text), "%s: %s", what, strerror(-err));
	job_dest_failed(j, -EAGAIN, &fail);
}

/* One destination's transaction is over: its recipients' fate is in the envelope. */
static void
job_dest_delivered(void *arg, const struct delivery_result *res)
{
	struct runner_job *j = arg;
	struct runner_dest *dest = &j->dests[j->cur_dest];

	if (res->error < 0) {
		j->delivering = false;
		job_give_back(j, res->error);
		return;
	}
	snprintf(j->reply, sizeof(j->reply), "%s", res->reply);
	snprintf(dest->host, sizeof(dest->host), "%s", res->host);
	j->rcpt_overflow |= res->rcpt_overflow;
	j->ndelivered += res->ndelivered;
	bounce_note_attempt(queue_claim_envelope(j->qc), res->rcpts, res->nrcpts, res->host, now_seconds());
	bounce_note_relayed(queue_claim_envelope(j->qc), res->rcpts, res->nrcpts, res->dsn_passed);
	job_log_rcpts(j, queue_claim_envelope(j->qc), res->rcpts, res->nrcpts);
	j->reused |= res->reused;
	job_leave_dest(j);
	j->cur_dest++;
	job_next_dest(j);
}

/*
 * An ATRN session's hop: the client authenticated already and its
 * connection is what it is (TLS or not), so no STARTTLS, no AUTH, no
 * connect; the first delivery takes the turned connection.
 */
static struct bufferevent *
job_odmr_hop(struct runner_job *j)
{
	struct runner_odmr *o = runner_odmr_find(j->runner, j->odmr);
	struct bufferevent *bev = NULL;

	nexthop_wipe(&j->hop);
	/* Its name in the log and in last-host: "odmr:<id>", not the address that is never used. */
	snprintf(j->hop.name, sizeof(j->hop.name), "%s%u", RUNNER_ODMR_TARGET, j->odmr);
	j->hop.tls = TLS_POLICY_NONE;
	j->hop.auth = false;
	j->hop.no_connect = true;
	if (o != NULL) {
		bev = o->bev;
		o->bev = NULL;
	}
	return bev;
}

/*
 * The current destination's TLS policy and credentials ([relay] keys, the
 * credentials line of the route as written, else "*"), from the
 * credentials loaded last.  Then the delivery.
 */
static void
job_dest_deliver(struct runner_job *j)
{
	struct runner_dest *dest = &j->dests[j->cur_dest];
	struct delivery_request req = {
		.id = j->id,
		.env = queue_claim_envelope(j->qc),
		.datafd = queue_claim_data_fd(j->qc),
		.hop = &j->hop,
		.rcpts = &j->dest_rcpts[dest->first],
		.nrcpts = dest->n,
		.done = job_dest_delivered,
		.arg = j,
	};
	int err;

	snprintf(j->hop.target, sizeof(j->hop.target), "%s", dest->nh.target);
	if ((err = nexthop_set_security(&j->hop, j->runner->cfg, &dest->nh.opts, j->runner->creds)) < 0) {
		nexthop_wipe(&j->hop);
		job_dest_local_error(j, err, "the TLS policy or credentials of the next hop");
		return;
	}
	if (nexthop_is_odmr(&dest->nh))
		req.established = job_odmr_hop(j);
	/* From here j may be gone: the delivery can report before it returns. */
	if ((err = delivery_start(j->runner->agent, &req)) < 0)
		job_dest_local_error(j, err, "starting the delivery");
}

/* The addresses of the current destination are known: deliver there. */
static void
job_resolved(void *arg, uint64_t id, const struct dns_answer *ans)
{
	struct runner_job *j = arg;
	struct runner_dest *dest = &j->dests[j->cur_dest];
	size_t t;

	(void)id;
	j->resolving = false;
	if (ans->status < 0) {
		job_dest_failed(j, ans->status, &ans->fail);
		return;
	}
	memset(&j->hop, 0, sizeof(j->hop));
	dest_name(&dest->nh, j->hop.name, sizeof(j->hop.name));
	/* The peer name of an address without a host (none from DNS today): the host asked for. */
	snprintf(j->hop.tls_name, sizeof(j->hop.tls_name), "%s", dest->nh.host);
	for (t = 0; t < ans->n_targets; t++)
		if (nexthop_add_addr(&j->hop, (const struct sockaddr *)&ans->targets[t].addr,
		    ans->targets[t].addrlen, ans->targets[t].host) < 0)
			break;
	if (j->hop.naddrs == 0) {
		job_dest_local_error(j, -EDESTADDRREQ, "the DNS answer has no usable address");
		return;
	}
	job_dest_deliver(j);
}

/* An address literal (a numeric smarthost or route, user@[192.0.2.1]) needs no DNS. */
static int
job_literal_hop(struct runner_job *j, const struct route_nexthop *nh)
{
	char spec[NEXTHOP_NAME_MAX];

	dest_name(nh, spec, sizeof(spec));
	return nexthop_from_smarthost(spec, &j->hop);
}

/* The next destination, or the end of the attempt. */
static void
job_next_dest(struct runner_job *j)
{
	struct runner *r = j->runner;
	struct runner_dest *dest;
	int err;

	if (j->cur_dest >= j->ndests) {
		job_settle(j);
		return;
	}
	dest = &j->dests[j->cur_dest];
	if (runner_dest_full(r, j)) {
		j->waiting = true;
		log_debug("relay-dest-wait", "id=%s max_per_destination=%u", j->id, r->cfg->max_per_destination);
		return;
	}
	j->waiting = false;
	j->at_dest = true;
	if (dest->nh.literal) {
		if ((err = job_literal_hop(j, &dest->nh)) < 0)
			job_dest_local_error(j, err, "the address of the next hop");
		else
			job_dest_deliver(j);
		return;
	}
	if (r->dns == NULL) {
		job_dest_local_error(j, -ENOTSUP, "no resolver");
		return;
	}
	j->resolving = true;
	if ((err = dns_resolve(r->dns, &dest->nh, job_resolved, j, &j->dns_id)) < 0) {
		j->resolving = false;
		job_dest_local_error(j, err, "asking DNS");
	}
}

/* Jobs waiting for a destination that has room again go on, oldest claim first. */
static void
runner_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct runner *r = arg;
	struct runner_job *j, *pick;

	(void)fd;
	(void)what;
	for (;;) {
		pick = NULL;
		LIST_FOREACH(j, &r->jobs, link)	/* newest first: the last one found is the oldest */
			if (j->waiting && !runner_dest_full(r, j))
				pick = j;
		if (pick == NULL || r->stopping)
			return;
		job_next_dest(pick);	/* may free pick */
	}
}

static void
job_deliver(struct runner_job *j)
{
	struct runner *r = j->runner;
	int err;

	j->delivering = true;
	if ((err = job_route(j)) < 0) {
		j->delivering = false;
		log_error("relay-claim-failed", "id=%s error=\"%s\"", j->id, strerror(-err));
		job_free(j);
		r->nclaims--;
		return;
	}
	if (j->ndests == 0 && j->nheld > 0 && j->nheld == j->npending) {
		/* Only held recipients: no attempt, the record goes back as it was. */
		log_debug("relay-held", "id=%s held=%zu", j->id, j->nheld);
		job_free(j);
		runner_release(r, false);
		return;
	}
	/* From here j may be gone: a destination can report before this returns. */
	job_next_dest(j);
}

/*
 * A record with no pending recipient: an attempt's record, written over
 * its claim in active/, whose move to sent/ or failed/ was not durable
 * when smtpd stopped (recovery gave the claim back to queue/).  Nothing
 * is sent again: it goes to sent/ or failed/, attempts unchanged, and no
 * second notice (the record says whether one was made).
 */
static void
job_conclude(struct runner_job *j)
{
	const struct envelope *env = queue_claim_envelope(j->qc);

	snprintf(j->reply, sizeof(j->reply), "%s", env->last_reply != NULL ? env->last_reply : "");
	log_info("relay-concluded", "id=%s attempts=%u reason=\"no pending recipient: the record of an attempt "
	    "made before a restart, or of local deliveries whose success notice is due\"", j->id, env->attempts);
	job_settle_unattempted(j);
}

/* The release of id (removed from the list), if there is one. */
static bool
runner_take_release(struct runner *r, const char *id, struct runner_release *out)
{
	size_t i;

	for (i = 0; i < r->nreleases; i++) {
		if (strcmp(r->releases[i].id, id) == 0) {
			*out = r->releases[i];
			r->releases[i] = r->releases[--r->nreleases];
			return true;
		}
	}
	return false;
}

/*
 * The end of an ATRN session: its last released message is finished.  A
 * connection no delivery took is closed; the one that carried the mail
 * says QUIT from the idle list.
 */
static void
runner_odmr_end(struct runner *r, struct runner_odmr *o)
{
	char name[NEXTHOP_NAME_MAX];

	log_info("odmr-end", "odmr=%u domains=%zu", o->id, o->ndomains);
	if (o->bev != NULL)
		bufferevent_free(o->bev);
	else {
		snprintf(name, sizeof(name), "%s%u", RUNNER_ODMR_TARGET, o->id);
		delivery_agent_quit(r->agent, name);
	}
	memset(o, 0, sizeof(*o));
}

static void
runner_odmr_done(struct runner *r, unsigned id)
{
	struct runner_odmr *o = runner_odmr_find(r, id);

	if (o != NULL && o->pending > 0 && --o->pending == 0)
		runner_odmr_end(r, o);
}

static bool
runner_is_released(const struct runner *r, const char *id)
{
	size_t i;

	for (i = 0; i < r->nreleases; i++)
		if (strcmp(r->releases[i].id, id) == 0)
			return true;
	return false;
}

/*
 * A record to leave alone in a normal run: every pending recipient is of
 * a held domain, no ETRN released it, and its lifetime has not run out
 * (an expired one is claimed, to fail as any other).
 */
static bool
runner_record_held(const struct runner *r, const char *id, const struct envelope *env, long long now)
{
	struct route_nexthop nh;
	size_t i, npending = 0;

	if (runner_is_released(r, id) || relay_expired(env, now, &r->policy))
		return false;
	for (i = 0; i < env->nrcpt; i++) {
		const char *at = strrchr(env->rcpt[i].addr, '@');

		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		npending++;
		if (route_pick(r->cfg, at != NULL ? at + 1 : "", &nh) < 0 || !nh.hold)
			return false;
	}
	return npending > 0;
}

static void
runner_start(struct runner *r, const char *id)
{
	struct queue_claim *qc;
	struct runner_job *j;
	int err;

	struct runner_release rel;

	if ((err = queue_claim(r->spool, id, &qc)) < 0) {
		if (runner_take_release(r, id, &rel) && rel.odmr != 0)	/* gone: nothing to release */
			runner_odmr_done(r, rel.odmr);
		if (err != -ENOENT)	/* ENOENT: another runner has it */
			log_warn("relay-claim-failed", "id=%s error=\"%s\"", id, strerror(-err));
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_error("relay-claim-failed", "id=%s error=\"%s\"", id, strerror(ENOMEM));
		queue_claim_free(qc);
		return;
	}
	j->runner = r;
	j->qc = qc;
	j->retry_delay = RUNNER_FINISH_RETRY_MIN;
	snprintf(j->id, sizeof(j->id), "%s", queue_claim_id(qc));
	if (runner_take_release(r, j->id, &rel)) {
		j->odmr = rel.odmr;
		j->released = rel.odmr == 0;
		j->release_node = rel.node;
	}
	r->nclaims++;
	LIST_INSERT_HEAD(&r->jobs, j, link);
	if (envelope_count(queue_claim_envelope(qc), RCPT_PENDING) == 0)
		job_conclude(j);
	else if (relay_expired(queue_claim_envelope(qc), now_seconds(), &r->policy))
		job_settle_unattempted(j);
	else
		job_deliver(j);
}

/*
 * Finishing through commitq.
 */

/* A notice that cannot be written does not hold back the record (it says dsn-failed). */
static int
job_prepare(void *arg)
{
	struct runner_job *j = arg;

	for (size_t i = 0; i < RUNNER_NOTICES; i++)
		if (j->notice[i].msg != NULL && !j->notice[i].published && j->notice[i].err == 0)
			j->notice[i].err = spool_msg_commit_prepare(j->notice[i].msg);
	if (j->cj.sync_fs)	/* commitq syncs the filesystem once for the batch */
		return queue_finish_write(j->qc, j->outcome, j->keep_sent);
	return queue_finish_prepare(j->qc, j->outcome, j->keep_sent);
}

/*
 * The record first, then the notice it names: a crash between the two
 * loses the notice, never sends it twice.  One directory sync for both.
 */
static int
job_publish(void *arg, struct spool_dirset *dirs)
{
	struct runner_job *j = arg;
	int err;

	if ((err = queue_finish_publish(j->qc, dirs)) < 0)
		return err;
	for (size_t i = 0; i < RUNNER_NOTICES; i++) {
		struct runner_notice *n = &j->notice[i];

		if (n->msg == NULL || n->published || n->err != 0)
			continue;
		if ((n->err = spool_msg_commit_publish(n->msg, dirs)) < 0)
			spool_msg_commit_unpublish(n->msg);
		else
			n->published = true;
	}
	return 0;
}

/*
 * On a helper of the committer, after the directory sync: the slow part of
 * removing a sent message with its data, or the claim of a record that
 * reached sent/.
 */
static void
job_release(void *arg, int result)
{
	struct runner_job *j = arg;

	queue_finish_release(j->qc, result == 0);
}

/* The job is over: its slot, or its place among the commits in flight, goes to the next one. */
static void
job_finished(struct runner_job *j)
{
	struct runner *r = j->runner;
	bool committing = j->committing;

	job_free(j);
	if (r != NULL)
		runner_release(r, committing);
}

static void
job_log_outcome(const struct runner_job *j)
{
	char reply[RELAY_REPLY_TEXT_MAX + 8];

	log_quote(reply, sizeof(reply), j->reply);
	switch (j->outcome) {
	case QUEUE_SENT:
		log_info("relay-sent", "id=%s attempts=%u reused=%s reply=%s", j->id, j->attempts,
		    j->reused ? "yes" : "no", reply);
		break;
	case QUEUE_DEFERRED:
		log_info("relay-deferred", "id=%s attempts=%u next=%lld delay=%u reply=%s", j->id,
		    j->attempts, j->next_attempt, j->delay, reply);
		break;
	case QUEUE_FAILED:
		log_info("relay-failed", "id=%s attempts=%u expired=%s reply=%s", j->id, j->attempts,
		    j->expired ? "yes" : "no", reply);
		break;
	}
}

static void
job_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	job_submit(arg);
}

static void
job_committed(void *arg, int result)
{
	struct runner_job *j = arg;
	struct runner *r = j->runner;
	struct timeval tv;
	int where;

	for (size_t i = 0; i < RUNNER_NOTICES; i++) {
		struct runner_notice *n = &j->notice[i];

		if (n->msg == NULL || n->err == 0)
			continue;
		log_error("dsn-failed", "id=%s dsn=%s error=\"%s\" action=\"the record names a notice that was "
		    "not written\"", j->id, spool_msg_id(n->msg), strerror(-n->err));
		spool_msg_free(n->msg);
		n->msg = NULL;
	}
	if (result == 0) {
		job_log_outcome(j);
		job_finished(j);
		return;
	}
	if (result == -ESTALE) {
		/* Stopped past our lease: another node has the message now, and its record is that node's to write. */
		log_warn("relay-claim-lost", "id=%s outcome=%s action=\"nothing recorded: another node took the "
		    "claim over while this one was not renewing its heartbeat\"", j->id, queue_outcome_name(j->outcome));
		job_finished(j);
		return;
	}
	if (r == NULL) {
		log_error("relay-finish-failed", "id=%s outcome=%s error=\"%s\" action=\"shutting down: claim "
		    "returned to queue/ unchanged\"", j->id, queue_outcome_name(j->outcome), strerror(-result));
		job_finished(j);
		return;
	}
	where = queue_locate(r->spool, j->id);
	if (where != SPOOL_DIR_ACTIVE) {
		/* Renamed into place, but the directory sync failed: nothing to redo. */
		log_error("relay-finish-failed", "id=%s outcome=%s error=\"%s\" action=\"record moved but its "
		    "directory was not synced\"", j->id, queue_outcome_name(j->outcome), strerror(-result));
		job_finished(j);
		return;
	}
	/*
	 * The record could not be written (a full disk, say).  It stays in
	 * active/, holding its slot, and the write is tried again: giving it
	 * back to queue/ now would deliver a sent message again, at once.
	 */
	log_error("relay-finish-failed", "id=%s outcome=%s error=\"%s\" action=\"record stays in active/; "
	    "retry in %us, or recovery returns it to queue/ at the next start\"", j->id,
	    queue_outcome_name(j->outcome), strerror(-result), j->retry_delay);
	if (j->retry_ev == NULL && (j->retry_ev = evtimer_new(r->base, job_retry_cb, j)) == NULL) {
		job_finished(j);
		return;
	}
	tv.tv_sec = j->retry_delay;
	tv.tv_usec = 0;
	evtimer_add(j->retry_ev, &tv);
	j->retry_delay = j->retry_delay > RUNNER_FINISH_RETRY_MAX / 2 ? RUNNER_FINISH_RETRY_MAX : j->retry_delay * 2;
}

static void
job_submit(struct runner_job *j)
{
	int err;

	memset(&j->cj, 0, sizeof(j->cj));
	j->cj.prepare = job_prepare;
	j->cj.publish = job_publish;
	j->cj.unpublish = NULL;	/* a rename into place is not undone: the sync is retried by whoever reads it */
	j->cj.release = job_release;
	j->cj.done = job_committed;
	j->cj.arg = j;
	j->cj.sync_fs = queue_finish_writes_record(j->outcome, j->keep_sent) &&
	    commitq_fs_sync_available(j->runner->cq);
	if ((err = commitq_submit(j->runner->cq, &j->cj)) < 0) {
		log_error("relay-finish-failed", "id=%s outcome=%s error=\"%s\" action=\"claim returned to queue/ "
		    "unchanged\"", j->id, queue_outcome_name(j->outcome), strerror(-err));
		job_finished(j);
	}
}

/*
 * Finding work.
 */

struct scan_ctx {
	struct runner   *runner;
	long long	now;
	long long	due_before;	/* now, or LLONG_MAX for a flush */
	long long	earliest;	/* of the records not yet due; 0 = none */
	bool		overflow;
};

static int
scan_one(const char *id, const struct envelope *env, void *arg)
{
	struct scan_ctx *sc = arg;
	struct runner *r = sc->runner;
	long long next_attempt = env->next_attempt;

	if (runner_record_held(r, id, env, sc->now))
		return 0;	/* waits for ETRN or ATRN, not for a time */
	if (next_attempt > sc->due_before && !runner_is_released(r, id)) {
		if (sc->earliest == 0 || next_attempt < sc->earliest)
			sc->earliest = next_attempt;
		return 0;
	}
	if (r->nbacklog >= RUNNER_BACKLOG_MAX) {
		sc->overflow = true;
		return 0;	/* go on: the earliest deferred one still matters */
	}
	snprintf(r->backlog[r->nbacklog++], SPOOL_ID_MAX, "%s", id);
	return 0;
}

/* The due timer fires at the earliest next-attempt known. */
static void
runner_arm_due(struct runner *r, long long when, long long now)
{
	struct timeval tv = { when > now ? when - now : 0, 0 };

	if (r->due_at != 0 && r->due_at <= when)
		return;
	r->due_at = when;
	evtimer_add(r->due_ev, &tv);
}

static void
runner_scan(struct runner *r)
{
	struct scan_ctx sc = { .runner = r, .now = now_seconds() };
	int err;

	sc.due_before = r->flush_wanted ? LLONG_MAX : sc.now;
	r->flush_wanted = false;
	r->nbacklog = r->backlog_pos = 0;
	r->scan_wanted = false;
	if ((err = queue_scan(r->spool, scan_one, &sc)) < 0)
		log_error("relay-scan-failed", "error=\"%s\"", strerror(-err));
	r->scan_wanted = sc.overflow;
	r->due_at = 0;
	evtimer_del(r->due_ev);
	if (sc.earliest > 0)
		runner_arm_due(r, sc.earliest, sc.now);
	log_debug("relay-scan", "due=%zu overflow=%s next=%lld", r->nbacklog, sc.overflow ? "yes" : "no",
	    sc.earliest);
}

/*
 * Claims from the backlog while there is room.  A job that ends at once
 * (expired, unroutable) frees its slot from inside runner_start(): the
 * loop below sees that room, instead of a nested dispatch growing the
 * stack.
 */
static void
runner_dispatch(struct runner *r)
{
	if (r->dispatching)
		return;
	r->dispatching = true;
	while (runner_has_room(r) && r->backlog_pos < r->nbacklog)
		runner_start(r, r->backlog[r->backlog_pos++]);
	r->dispatching = false;
	if (runner_has_room(r) && r->backlog_pos >= r->nbacklog && r->scan_wanted)
		runner_scan_soon(r);
}

/*
 * The slot freed by job_commit() is used from an event, not from inside
 * the delivery's done(): by the time it runs, the connection that just
 * finished is on the agent's idle list, ready for the next message.
 */
static void
runner_dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct runner *r = arg;

	(void)fd;
	(void)what;
	runner_dispatch(r);
}

static void
runner_scan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct runner *r = arg;

	(void)fd;
	(void)what;
	r->scan_scheduled = false;
	if (!runner_has_room(r)) {
		r->scan_wanted = true;	/* a slot that frees up asks again */
		return;
	}
	runner_scan(r);
	runner_dispatch(r);
}

/*
 * The backlog ran dry after an overflow: more records are due, and slots
 * wait for them.  There is no burst of triggers to coalesce here, so the
 * scan runs from the next turn of the loop, not RUNNER_SCAN_DELAY_MS later
 * (50 ms without a claim, every RUNNER_BACKLOG_MAX messages of a long queue).
 */
static void
runner_scan_soon(struct runner *r)
{
	struct timeval now = { 0, 0 };

	r->scan_scheduled = true;
	evtimer_add(r->scan_ev, &now);	/* re-arms a scan already requested, too */
}

static void
runner_request_scan(struct runner *r)
{
	struct timeval tv = { 0, RUNNER_SCAN_DELAY_MS * 1000 };

	if (r->scan_scheduled)
		return;
	r->scan_scheduled = true;
	evtimer_add(r->scan_ev, &tv);
}

static void
runner_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct runner *r = arg;

	(void)fd;
	(void)what;
	if (r->due_ev != NULL && !evtimer_pending(r->due_ev, NULL))
		r->due_at = 0;
	runner_request_scan(r);
}

/*
 * One record that appeared in queue/ (a new message, or a deferred one
 * given back): due now goes to the backlog, due later arms the due timer.
 * Reading one record instead of scanning queue/ keeps a long queue (a
 * smarthost that is down for a day) from costing a full scan per arrival.
 */
static void
runner_consider(struct runner *r, const char *id)
{
	struct envelope env;
	long long now = now_seconds();
	int err;

	if (id[0] == '.' || strchr(id, '@') != NULL)
		return;
	err = envelope_read_at(spool_dirfd(r->spool, SPOOL_DIR_QUEUE), id, &env);
	if (err == -ENOENT)
		return;			/* claimed already */
	if (err < 0) {
		runner_request_scan(r);	/* the scan sets what is no record aside */
		return;
	}
	if (r->backlog_pos == r->nbacklog)
		r->backlog_pos = r->nbacklog = 0;	/* all taken: start over */
	if (runner_record_held(r, id, &env, now))
		;	/* waits for ETRN or ATRN */
	else if (env.next_attempt > now)
		runner_arm_due(r, env.next_attempt, now);
	else if (r->nbacklog < RUNNER_BACKLOG_MAX)
		snprintf(r->backlog[r->nbacklog++], SPOOL_ID_MAX, "%s", id);
	else
		r->scan_wanted = true;
	envelope_free(&env);
}

static int
cmp_polled(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Doubles the room for names, up to RUNNER_POLL_MAX; -1 when there is no more. */
static int
grow_polled(char (**names)[SPOOL_ID_MAX], size_t *cap)
{
	size_t more = *cap * 2 > RUNNER_POLL_MAX ? RUNNER_POLL_MAX : *cap * 2;
	char (*grown)[SPOOL_ID_MAX];

	if (more <= *cap || (grown = realloc(*names, more * sizeof(*grown))) == NULL)
		return -1;
	*names = grown;
	*cap = more;
	return 0;
}

/*
 * shared = yes: other nodes' renames into queue/ make no inotify event
 * here.  Every poll_interval_ms the names of queue/ are listed (no record
 * is read), and each name that was not there at the last poll is read as
 * an inotify event would have named it (runner_consider()).  A deferred
 * record given back by another node is a new name too.
 */
static void
runner_poll_queue(struct runner *r)
{
	char (*names)[SPOOL_ID_MAX];
	struct dirent *de;
	size_t n = 0, i, cap;
	DIR *d;
	int fd;

	fd = openat(spool_dirfd(r->spool, SPOOL_DIR_QUEUE), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* room for as many names as last time, twice over */
	cap = r->npolled < 64 ? 128 : r->npolled < RUNNER_POLL_MAX / 2 ? r->npolled * 2 : RUNNER_POLL_MAX;
	if ((names = malloc(cap * sizeof(*names))) == NULL) {
		closedir(d);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= SPOOL_ID_MAX)
			continue;
		if (n == cap && grow_polled(&names, &cap) < 0) {
			runner_request_scan(r);	/* too many to remember: a full scan decides */
			break;
		}
		snprintf(names[n++], SPOOL_ID_MAX, "%s", de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_polled);
	for (i = 0; i < n && !r->stopping; i++)
		if (r->polled == NULL || bsearch(names[i], r->polled, r->npolled, sizeof(*names), cmp_polled) == NULL)
			runner_consider(r, names[i]);
	free(r->polled);
	r->polled = names;
	r->npolled = n;
	runner_dispatch(r);
}

static void
runner_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	runner_poll_queue(arg);
}

void
runner_poll_now(struct runner *r)
{
	if (r != NULL)
		runner_request_scan(r);
}

/*
 * spoolgate-mailq --flush wrote <spool>/flush: every record is due at the
 * next scan, whatever its next-attempt.  Removing the file is the answer
 * mailq waits for.
 */
static void
runner_flush(struct runner *r)
{
	if (unlinkat(spool_dirfd(r->spool, SPOOL_DIR_ROOT), QUEUE_FLUSH_FILE, 0) < 0) {
		if (errno != ENOENT)
			log_warn("relay-flush", "error=\"cannot remove %s: %s\"", QUEUE_FLUSH_FILE, strerror(errno));
		return;		/* taken already */
	}
	runner_flush_all(r);
}

/*
 * ETRN (RFC 1985) and its spool twin.
 */

struct etrn_ctx {
	struct runner		       *runner;
	const struct route_node	       *node;
	struct runner_etrn_result      *res;
	unsigned			refused;	/* found, but no room in releases */
};

/* Whether env has a pending recipient of a held domain under node. */
static bool
envelope_has_held_for(const struct runner *r, const struct envelope *env, const struct route_node *node)
{
	struct route_nexthop nh;
	size_t i;

	for (i = 0; i < env->nrcpt; i++) {
		const char *at = strrchr(env->rcpt[i].addr, '@');

		if (env->rcpt[i].state == RCPT_PENDING && at != NULL && route_node_matches(node, at + 1) &&
		    route_pick(r->cfg, at + 1, &nh) == 0 && nh.hold)
			return true;
	}
	return false;
}

static int
etrn_one(const char *id, const struct envelope *env, void *arg)
{
	struct etrn_ctx *ec = arg;
	struct runner *r = ec->runner;
	struct runner_release *rel;

	if (!envelope_has_held_for(r, env, ec->node) || runner_is_released(r, id))
		return 0;
	if (r->nreleases >= RUNNER_RELEASE_MAX) {
		ec->refused++;
		return 0;
	}
	rel = &r->releases[r->nreleases++];
	snprintf(rel->id, sizeof(rel->id), "%s", id);
	rel->node = *ec->node;
	ec->res->released++;
	return 0;
}

int
runner_etrn(struct runner *r, const struct route_node *node, struct runner_etrn_result *res)
{
	struct etrn_ctx ec = { .runner = r, .node = node, .res = res };
	struct route_nexthop nh;
	struct runner_job *j;
	int err;

	memset(res, 0, sizeof(*res));
	if (r == NULL || r->stopping)
		return -ESHUTDOWN;
	if (route_node_hold(r->cfg, node, &nh) < 0)
		return -ENOENT;
	if (nh.no_hop)
		return -EDESTADDRREQ;
	if ((err = queue_scan(r->spool, etrn_one, &ec)) < 0 && res->released == 0)
		return err;
	LIST_FOREACH(j, &r->jobs, link)
		if (!j->committing && envelope_has_held_for(r, queue_claim_envelope(j->qc), node))
			res->in_progress++;
	if (ec.refused > 0 && res->released == 0)
		return -ENOBUFS;
	log_info("relay-etrn", "node=%s%s released=%u in_progress=%u refused=%u",
	    node->kind == ROUTE_NODE_SUBDOMAINS ? "@" : "", node->name, res->released, res->in_progress, ec.refused);
	if (res->released > 0)
		runner_scan_soon(r);
	return 0;
}

/*
 * ATRN (RFC 2645).
 */

struct atrn_ctx {
	struct runner	       *runner;
	const char	      (*domains)[ROUTE_HOST_MAX + 1];
	size_t			ndomains;
	struct runner_odmr     *odmr;		/* NULL: only count */
	unsigned		found, refused;
};

/* Whether env has a pending recipient of a held domain among the session's. */
static bool
envelope_has_held_in(const struct runner *r, const struct envelope *env, const char (*domains)[ROUTE_HOST_MAX + 1],
    size_t n)
{
	struct route_node node = { .kind = ROUTE_NODE_DOMAIN };
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(node.name, sizeof(node.name), "%s", domains[i]);
		if (envelope_has_held_for(r, env, &node))
			return true;
	}
	return false;
}

static int
atrn_one(const char *id, const struct envelope *env, void *arg)
{
	struct atrn_ctx *ac = arg;
	struct runner *r = ac->runner;
	struct runner_release *rel;

	if (!envelope_has_held_in(r, env, ac->domains, ac->ndomains) || runner_is_released(r, id))
		return 0;
	if (ac->odmr == NULL) {
		ac->found++;
		return 0;
	}
	if (r->nreleases >= RUNNER_RELEASE_MAX) {
		ac->refused++;
		return 0;
	}
	rel = &r->releases[r->nreleases++];
	memset(rel, 0, sizeof(*rel));
	snprintf(rel->id, sizeof(rel->id), "%s", id);
	rel->odmr = ac->odmr->id;
	ac->odmr->pending++;
	ac->found++;
	return 0;
}

static bool
runner_domain_taken(struct runner *r, const char *domain)
{
	size_t i;

	for (i = 0; i < RUNNER_ODMR_MAX; i++)
		if (r->odmr[i].id != 0 && odmr_has_domain(&r->odmr[i], domain))
			return true;
	return false;
}

static struct runner_odmr *
runner_odmr_slot(struct runner *r)
{
	size_t i;

	for (i = 0; i < RUNNER_ODMR_MAX; i++)
		if (r->odmr[i].id == 0)
			return &r->odmr[i];
	return NULL;
}

int
runner_atrn_check(struct runner *r, const char (*domains)[ROUTE_HOST_MAX + 1], size_t n, unsigned *count)
{
	struct atrn_ctx ac = { .runner = r, .domains = domains, .ndomains = n };
	size_t i;
	int err;

	*count = 0;
	if (r == NULL || r->stopping)
		return -ESHUTDOWN;
	for (i = 0; i < n; i++)
		if (runner_domain_taken(r, domains[i]))
			return -EBUSY;
	if (runner_odmr_slot(r) == NULL || r->nreleases >= RUNNER_RELEASE_MAX)
		return -EAGAIN;
	if ((err = queue_scan(r->spool, atrn_one, &ac)) < 0 && ac.found == 0)
		return err;
	*count = ac.found;
	return 0;
}

int
runner_atrn_start(struct runner *r, struct bufferevent *bev, const char (*domains)[ROUTE_HOST_MAX + 1], size_t n)
{
	struct runner_odmr *o = r != NULL && !r->stopping ? runner_odmr_slot(r) : NULL;
	struct atrn_ctx ac = { .runner = r, .domains = domains, .ndomains = n };
	size_t i;

	if (o == NULL || n > CFG_MAX_LIST) {
		bufferevent_free(bev);
		return -EAGAIN;
	}
	if (++r->next_odmr_id == 0 || r->next_odmr_id > 65535)
		r->next_odmr_id = 1;	/* the id is the port of the session's hop */
	o->id = r->next_odmr_id;
	o->bev = bev;
	o->ndomains = n;
	for (i = 0; i < n; i++)
		snprintf(o->domains[i], sizeof(o->domains[i]), "%s", domains[i]);
	/* Until the first delivery takes it, nobody reads it: the client's 220 waits in the socket. */
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(bev, EV_READ);
	bufferevent_enable(bev, EV_WRITE);	/* the 250 still goes out */
	ac.odmr = o;
	(void)queue_scan(r->spool, atrn_one, &ac);
	log_info("odmr-start", "odmr=%u domains=%zu released=%u refused=%u", o->id, n, ac.found, ac.refused);
	if (o->pending == 0) {
		runner_odmr_end(r, o);	/* taken meanwhile: nothing to deliver */
		return 0;
	}
	runner_scan_soon(r);
	return 0;
}

int
runner_flush_all(struct runner *r)
{
	if (r == NULL || r->stopping)
		return -ESHUTDOWN;
	log_info("relay-flush", "action=\"every queued message is tried now\"");
	r->flush_wanted = true;
	runner_request_scan(r);
	return 0;
}

/*
 * <spool>/flush.<node>: an ETRN from the spool (spoolgate-mailq
 * --flush=NODE).  The file is removed first (that is the answer mailq
 * waits for), then the outcome is logged, as an ETRN's reply would say it.
 */
static void
runner_flush_node(struct runner *r, const char *name)
{
	struct runner_etrn_result res;
	struct route_node node;
	const char *arg = queue_flush_node_name(name);
	char q[300];
	int err;

	if (unlinkat(spool_dirfd(r->spool, SPOOL_DIR_ROOT), name, 0) < 0) {
		if (errno != ENOENT)
			log_warn("relay-etrn", "error=\"cannot remove %s: %s\"", log_quote(q, sizeof(q), name),
			    strerror(errno));
		return;		/* taken already */
	}
	if (route_node_parse(arg, &node) < 0 || node.kind == ROUTE_NODE_QUEUE) {
		log_warn("relay-etrn", "file=%s error=\"not a domain or @domain\"", log_quote(q, sizeof(q), name));
		return;
	}
	if ((err = runner_etrn(r, &node, &res)) < 0)
		log_warn("relay-etrn", "file=%s node=%s error=\"%s\"", log_quote(q, sizeof(q), name), arg,
		    err == -ENOENT ? "not a held domain" : err == -EDESTADDRREQ ? "the hold has no next hop" :
		    strerror(-err));
}

/* flush.<node> files left while smtpd was stopped. */
static void
runner_flush_nodes_left(struct runner *r)
{
	int fd = openat(spool_dirfd(r->spool, SPOOL_DIR_ROOT), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (queue_flush_node_name(de->d_name) != NULL)
			runner_flush_node(r, de->d_name);
	closedir(d);
}

static void
runner_inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct runner *r = arg;
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		const char *p = buf;

		while (p < buf + n) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW)
				runner_request_scan(r);	/* events were lost: look at everything */
			else if (ev->wd == r->root_wd && ev->len > 0 && strcmp(ev->name, QUEUE_FLUSH_FILE) == 0)
				runner_flush(r);
			else if (ev->wd == r->root_wd && ev->len > 0 && queue_flush_node_name(ev->name) != NULL)
				runner_flush_node(r, ev->name);
			else if (ev->wd != r->root_wd && ev->len > 0)
				runner_consider(r, ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_warn("relay-inotify", "error=\"%s\"", strerror(errno));
	runner_dispatch(r);
}

static int
runner_watch_queue(struct runner *r)
{
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", spool_path(r->spool), spool_dir_name(SPOOL_DIR_QUEUE));
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if ((r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		return -errno;
	/* IN_CREATE: a record linked into queue/ from an unnamed file (spool_msg_create_unnamed()) */
	if (inotify_add_watch(r->inotify_fd, path, IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE) < 0)
		return -errno;
	if ((r->root_wd = inotify_add_watch(r->inotify_fd, spool_path(r->spool), IN_MOVED_TO | IN_CLOSE_WRITE)) < 0)
		return -errno;
	r->inotify_ev = event_new(r->base, r->inotify_fd, EV_READ | EV_PERSIST, runner_inotify_cb, r);
	if (r->inotify_ev == NULL || event_add(r->inotify_ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * Reads the credentials file ([relay] credentials) and checks the [relay]
 * security keys on the default route (the smarthost, or "mx").  Every next
 * hop gets its own security from these when it is routed
 * (job_secure_hop()).  On failure nothing changes: at start the daemon
 * refuses to run, at a reload the old credentials stay.
 */
static int
runner_load_security(struct runner *r, const char *why)
{
	const struct cfg *cfg = r->cfg;
	struct sasl_creds *creds = NULL;
	struct nexthop hop;
	char err[1024], qerr[1100];
	int e;

	if (cfg->relay_credentials != NULL &&
	    (e = sasl_creds_load(cfg->relay_credentials, &creds, err, sizeof(err))) < 0) {
		log_error("relay-credentials", "path=%s when=%s error=%s action=\"%s\"", cfg->relay_credentials, why,
		    log_quote(qerr, sizeof(qerr), err),
		    r->creds != NULL || strcmp(why, "reload") == 0 ? "keeping the credentials loaded before" :
		    "not starting");
		return e;
	}
	memset(&hop, 0, sizeof(hop));
	snprintf(hop.target, sizeof(hop.target), "%s",
	    cfg->smarthost != NULL && cfg->smarthost[0] != '\0' ? cfg->smarthost : "mx");
	snprintf(hop.name, sizeof(hop.name), "%s", hop.target);
	if ((e = nexthop_set_security(&hop, cfg, NULL, creds)) < 0) {
		log_error("relay-credentials", "path=%s when=%s error=\"%s\"",
		    cfg->relay_credentials ? cfg->relay_credentials : "(none)", why, strerror(-e));
		nexthop_wipe(&hop);
		sasl_creds_free(creds);
		return e;
	}
	sasl_creds_free(r->creds);
	r->creds = creds;
	log_info("relay-security", "when=%s smarthost=%s tls=%s tls_ca_file=%s credentials=%s entries=%zu auth=%s "
	    "auth_plaintext=%s", why, hop.name, tls_policy_name(hop.tls),
	    hop.tls_ca_file[0] ? hop.tls_ca_file : "(system)",
	    cfg->relay_credentials ? cfg->relay_credentials : "(none)", sasl_creds_count(creds),
	    hop.auth ? "yes" : "no", hop.auth_plaintext ? "yes" : "no");
	nexthop_wipe(&hop);
	return 0;
}

int
runner_reload(struct runner *r)
{
	return r == NULL ? 0 : runner_load_security(r, "reload");
}

/* Whether a target of the configuration ("mx", a host name) needs DNS; an unparsable one counts. */
static bool
target_needs_dns(const char *target)
{
	struct route_nexthop nh;

	return route_parse_target(target, &nh) < 0 || !(nh.literal || nh.no_hop);
}

/*
 * The resolver, when a route can need it: an empty smarthost (MX), a host
 * name, a route by name or by MX.  A configuration of address literals only
 * (the default, a numeric smarthost) makes no DNS context at all.
 */
static int
runner_open_dns(struct runner *r)
{
	const struct cfg *cfg = r->cfg;
	bool need = cfg->smarthost == NULL || cfg->smarthost[0] == '\0' || target_needs_dns(cfg->smarthost);
	char err[256];
	size_t i;
	int rc;

	for (i = 0; i < cfg->n_routes && !need; i++)
		need = target_needs_dns(cfg->routes[i].target);
	if (!need)
		return 0;
	if ((rc = dns_new(r->base, cfg->resolver, cfg->dns_timeout, cfg->hostname, &r->dns, err, sizeof(err))) < 0)
		log_error("relay-config", "resolver=%s error=\"%s\"",
		    cfg->resolver != NULL && cfg->resolver[0] ? cfg->resolver : "system", err);
	return rc;
}

int
runner_new(struct event_base *base, const struct cfg *cfg, struct spool *spool,
		struct commitq *cq, struct runner **out)
{
	struct timeval every;
	struct runner *r;
	int err;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	r->base = base;
	r->cfg = cfg;
	r->spool = spool;
	r->cq = cq;
	r->inotify_fd = -1;
	r->root_wd = -1;
	r->policy.retry_min = cfg->retry_min;
	r->policy.retry_max = cfg->retry_max;
	r->policy.max_queue_lifetime = cfg->max_queue_lifetime;
	LIST_INIT(&r->jobs);
	if ((err = runner_open_dns(r)) < 0) {
		free(r);
		return err;
	}
	if ((err = bounce_new(cfg, spool, &r->bounce)) < 0) {
		dns_free(r->dns);
		free(r);
		return err;
	}
	if ((err = runner_load_security(r, "start")) < 0) {
		bounce_free(r->bounce);
		dns_free(r->dns);
		free(r);
		return err;
	}
	if ((err = delivery_agent_new(base, cfg, spool, &r->agent)) < 0) {
		sasl_creds_free(r->creds);
		bounce_free(r->bounce);
		dns_free(r->dns);
		free(r);
		return err;
	}
	r->backlog = calloc(RUNNER_BACKLOG_MAX, sizeof(*r->backlog));
	r->releases = calloc(RUNNER_RELEASE_MAX, sizeof(*r->releases));
	r->scan_ev = evtimer_new(base, runner_scan_cb, r);
	r->due_ev = evtimer_new(base, runner_timer_cb, r);
	r->interval_ev = event_new(base, -1, EV_PERSIST, runner_timer_cb, r);
	r->wake_ev = event_new(base, -1, 0, runner_wake_cb, r);
	r->dispatch_ev = event_new(base, -1, 0, runner_dispatch_cb, r);
	if (r->backlog == NULL || r->releases == NULL || r->scan_ev == NULL || r->due_ev == NULL || r->interval_ev == NULL ||
	    r->wake_ev == NULL || r->dispatch_ev == NULL) {
		runner_free(r);
		return -ENOMEM;
	}
	every.tv_sec = cfg->scan_interval;
	every.tv_usec = 0;
	if ((err = runner_watch_queue(r)) < 0) {
		/* Without inotify the promise of "within a second" needs a poll. */
		log_warn("relay-inotify", "error=\"%s\" action=\"scanning queue/ every second\"", strerror(-err));
		every.tv_sec = 1;
	}
	event_add(r->interval_ev, &every);
	if (cfg->shared) {
		struct timeval poll = { cfg->poll_interval_ms / 1000, (cfg->poll_interval_ms % 1000) * 1000 };

		if ((r->poll_ev = event_new(base, -1, EV_PERSIST, runner_poll_cb, r)) == NULL ||
		    event_add(r->poll_ev, &poll) < 0) {
			runner_free(r);
			return -ENOMEM;
		}
	}
	log_info("relay-started", "smarthost=%s routes=%zu dns=%s helo=%s max_deliveries=%u scan_interval=%ld "
	    "inotify=%s poll_ms=%u", cfg->smarthost != NULL && cfg->smarthost[0] ? cfg->smarthost : "mx", cfg->n_routes,
	    r->dns != NULL ? (cfg->resolver != NULL && cfg->resolver[0] ? cfg->resolver : "system") : "none",
	    delivery_agent_helo_name(r->agent), cfg->max_deliveries, (long)every.tv_sec,
	    r->inotify_ev != NULL ? "yes" : "no", cfg->shared ? cfg->poll_interval_ms : 0);
	runner_request_scan(r);	/* whatever the last run left in queue/ */
	runner_flush(r);	/* a mailq --flush made while smtpd was stopped */
	runner_flush_nodes_left(r);
	*out = r;
	return 0;
}

void
runner_kick(struct runner *r)
{
	/* With inotify the rename into queue/ has told us already. */
	if (r != NULL && r->inotify_ev == NULL)
		runner_request_scan(r);
}

/*
 * At shutdown, a job that has tried some of its destinations already
 * keeps what they did: it is settled and committed (the recipients not
 * tried stay pending), so that what was delivered is not sent again.
 * Jobs that tried none give their claim back below, as before.
 */
static void
runner_settle_partial(struct runner *r)
{
	struct runner_job *j, *next;

	for (j = LIST_FIRST(&r->jobs); j != NULL; j = next) {
		next = LIST_NEXT(j, link);
		if (!j->delivering || j->cur_dest == 0)
			continue;
		log_info("relay-abandoned", "id=%s action=\"%zu of %zu destinations tried: recorded\"", j->id,
		    j->cur_dest, j->ndests);
		j->resolving = false;
		job_settle(j);	/* to commitq, or freed (and off the list) on a failure */
	}
}

void
runner_free(struct runner *r)
{
	struct runner_job *j, *next;
	size_t i;

	if (r == NULL)
		return;
	if (r->inotify_ev != NULL)
		event_free(r->inotify_ev);
	if (r->inotify_fd >= 0)
		close(r->inotify_fd);
	if (r->scan_ev != NULL)
		event_free(r->scan_ev);
	if (r->due_ev != NULL)
		event_free(r->due_ev);
	if (r->interval_ev != NULL)
		event_free(r->interval_ev);
	if (r->poll_ev != NULL)
		event_free(r->poll_ev);
	free(r->polled);
	r->stopping = true;
	if (r->wake_ev != NULL)
		event_free(r->wake_ev);
	r->wake_ev = NULL;
	if (r->dispatch_ev != NULL)
		event_free(r->dispatch_ev);
	r->dispatch_ev = NULL;
	/* Connections close; deliveries in flight never report. */
	delivery_agent_free(r->agent);
	r->agent = NULL;
	/* Lookups pending are cancelled: their callbacks never run. */
	dns_free(r->dns);
	r->dns = NULL;
	runner_settle_partial(r);
	/*
	 * Claims of deliveries in flight go back to queue/ unchanged.  Jobs
	 * in commitq stay there: their done() runs later (at commitq_free)
	 * and must not find the runner.  Those waiting to retry a failed
	 * write give their claim back, as recovery would.
	 */
	for (j = LIST_FIRST(&r->jobs); j != NULL; j = next) {
		next = LIST_NEXT(j, link);
		LIST_REMOVE(j, link);
		j->runner = NULL;
		if (j->delivering) {
			log_info("relay-abandoned", "id=%s action=\"claim returned to queue/\"", j->id);
			job_free(j);
		} else if (j->retry_ev != NULL && evtimer_pending(j->retry_ev, NULL)) {
			job_free(j);
		}
	}
	bounce_free(r->bounce);
	free(r->backlog);
	free(r->releases);
	for (i = 0; i < RUNNER_ODMR_MAX; i++)
		if (r->odmr[i].bev != NULL)
			bufferevent_free(r->odmr[i].bev);
	sasl_creds_free(r->creds);
	free(r);
}
