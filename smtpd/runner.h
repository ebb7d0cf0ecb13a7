/*
 * NAME
 *	runner - the relay's queue runner inside spoolgate-smtpd
 * SYNOPSIS
 *	#include "runner.h"
 *
 *	int runner_new(struct event_base *base, const struct cfg *cfg,
 *			struct spool *spool, struct commitq *cq, struct runner **out);
 *	void runner_kick(struct runner *runner);
 *	void runner_poll_now(struct runner *runner);
 *	int runner_reload(struct runner *runner);
 *	void runner_free(struct runner *runner);
 * DESCRIPTION
 *	The relay is three modules, and this is the one the rest of smtpd
 *	sees.  The runner finds and schedules work and finishes records;
 *	delivery.h is the SMTP client that makes one attempt; relay_smtp.h
 *	holds the pure pieces (reply parser, command formatters, retry
 *	policy); nexthop.h is where a delivery goes; route.h decides it and
 *	dns.h resolves it.
 *
 *	runner_new() starts the runner on the smtpd event loop.  It watches
 *	queue/ with inotify (a newly queued message is noticed at once) and
 *	scans queue/ every scan_interval seconds as a safety net and for
 *	deferred messages whose next attempt is due.  Up to max_deliveries
 *	messages are delivered at once, at most max_per_destination of them
 *	to one next hop (the others wait, holding their slot).  A slot is
 *	free as soon as the outcome of its message is known; the record is
 *	then committed in the background (at most 4 x max_deliveries commits
 *	in flight, the claim in active/ until its commit is done).
 *
 *	Routing.  Each pending recipient's domain is routed by route_pick()
 *	([routes]: exact, nearest .parent, "*"; then smarthost; an empty
 *	smarthost means MX); recipients with the same next hop make one
 *	destination, and the destinations of a message are tried one after
 *	the other within its delivery slot.  A next hop by name is resolved
 *	with dns_resolve() (asynchronous, on the loop: the claim waits); an
 *	address literal needs no DNS.  A DNS answer that gives no address
 *	decides for the destination's recipients at once: permanent ones
 *	(NXDOMAIN of the recipient's domain 550 5.1.2, null MX 556 5.1.10, no
 *	address for any MX host 550 5.4.4, an MX list looping back 554 5.4.6)
 *	fail, temporary ones (SERVFAIL, timeout: 451 4.4.3) stay pending, each
 *	with the DNS answer in its reply.  Otherwise one connection tries the
 *	addresses in order (delivery.h): EHLO (HELO if EHLO is refused), MAIL/RCPT/DATA pipelined when
 *	PIPELINING is offered, the data dot-stuffed with every line ending sent
 *	as CRLF, then QUIT, or the connection waits for the next message to
 *	the same destination (connection_idle_timeout, delivery.h).
 *
 *	Outcome per recipient: 2xx sent, 5xx failed with the reply recorded,
 *	4xx (or a connection failure, a timeout, a 4xx to MAIL or DATA)
 *	pending.  The record then moves through commitq: to sent/ when every
 *	recipient is sent, to failed/ when none is pending and one failed, else
 *	back to queue/ with next-attempt = now + backoff (retry_min doubling up
 *	to retry_max), never later than created + max_queue_lifetime.  When
 *	the lifetime has run out the pending recipients fail (554 5.4.7), a
 *	record claimed after that without another attempt.  The sender of a
 *	message that ends in failed/ (and, with delay_warning_time, of one
 *	that waits that long) gets a delivery status notification: bounce.h.
 *
 *	Every next hop it routes (a literal, a resolved smarthost or [routes]
 *	target, the recipient's MX) gets its TLS policy and credentials from
 *	[relay] tls, tls_ca_file, credentials and auth_plaintext
 *	(nexthop_set_security(), the credentials line of the route as
 *	written, else "*"); one that cannot (a user or password too long for
 *	its field) leaves its recipients pending with the reason.
 *	runner_new() reads the credentials file and fails when it cannot
 *	(a mode that lets group or others read it, a bad line: logged as
 *	relay-credentials with the file and the reason).  runner_reload()
 *	reads it again (SIGHUP): on success the next attempts use the new
 *	credentials, on failure the old ones stay and the reason is logged;
 *	deliveries in flight keep the copy they started with.
 *
 *	spoolgate-mailq --flush writes <spool>/flush (queue.h): the runner
 *	sees it by inotify on the spool root (or finds it at start), removes
 *	it and tries every record of queue/ at once, as if each were due
 *	(event=relay-flush).
 *
 *	Held domains.  A recipient whose route says "hold" ([routes]
 *	example.org = hold [mail.example.org]:25, route.h) stays pending and
 *	untouched: a record whose pending recipients are all held is skipped
 *	by scans (not claimed, no attempt counted, no backoff) until its
 *	lifetime runs out; a message with others is delivered to those and
 *	deferred for the held ones.  runner_etrn() is ETRN's queue run for a
 *	node (route_node_parse(): a domain, or "@domain" for it and every name
 *	below): it reads queue/, releases every record with a pending
 *	recipient of a held domain under the node (at most 1024 waiting to be
 *	claimed), and claims them at once, whatever their next-attempt; the
 *	claim delivers the node's held recipients to the hold's target, others
 *	stay held.  It reports how many it released and how many of the
 *	node's are claimed already (a run under way).  Errors: -ENOENT when no
 *	held route covers the node (ETRN 459), -EDESTADDRREQ when the hold has
 *	no next hop ("hold" alone, ETRN 458), -ENOBUFS when none could be
 *	released for want of room, -ESHUTDOWN when stopping (or runner NULL),
 *	queue_scan()'s errors.  runner_flush_all() is a queue run of every
 *	record, as spoolgate-mailq --flush (held ones stay held): 0, or
 *	-ESHUTDOWN when stopping.  runner_etrn() reads queue/ on the loop's
 *	thread, as a scan does.
 *	A file <spool>/flush.<node> (QUEUE_FLUSH_FILE ".<node>", e.g.
 *	flush.example.org or flush.@example.org) is runner_etrn() from the
 *	spool: written by spoolgate-mailq --flush=NODE, removed when taken,
 *	with the outcome logged (event=relay-etrn).
 *
 *	ATRN (RFC 2645).  runner_atrn_check() says whether an ATRN for
 *	domains can go: -EBUSY when another ATRN session holds one of them,
 *	-EAGAIN when RUNNER_ODMR_MAX (16) sessions run or the release list is
 *	full, -ESHUTDOWN when stopping; else 0 and in count the queued
 *	messages with a pending recipient of a held domain among them.
 *	runner_atrn_start() takes bev, the connection turned around after
 *	"250 OK, now reversing the connection" (owned from here; the client
 *	greets next), locks the domains, releases those messages for the
 *	session and claims them; each goes over that connection, one at a
 *	time (the first delivery takes it, the next ones find it idle:
 *	delivery.h), each record to sent/ (or back to queue/ when refused
 *	for now) as any delivery's.  When the last is finished the connection
 *	says QUIT and the domains are free again (event=odmr-start,
 *	odmr-end).  A message claimed by another runner meanwhile is not
 *	delivered; with none left the connection is closed at once.
 *	connection_idle_timeout must not be 0 (the connection waits idle
 *	between two messages).
 *
 *	With [spool] shared = yes (other hosts write the spool, and inotify
 *	sees no other host's rename) it also lists queue/ every
 *	poll_interval_ms and reads only the records whose names are new since
 *	the last listing.  When another node takes a claim over while this
 *	one was stopped, finishing that claim records nothing and logs
 *	relay-claim-lost (queue.h, -ESTALE).  runner_poll_now() asks for a
 *	scan whatever inotify said (node.h gave claims back).
 *
 *	runner_kick() asks for a scan at once (e.g. after this process queued a
 *	message).  runner_free() stops: pending DNS lookups are cancelled,
 *	deliveries in flight are abandoned and their claims given back to
 *	queue/ unchanged, except a message some of whose destinations were
 *	tried already: it is settled and committed with what they did (the
 *	rest stays pending), so that nothing delivered is sent again.  Records
 *	being committed finish in commitq, so commitq_free() comes after
 *	runner_free().
 * OWNERSHIP
 *	The runner borrows base, cfg, spool and cq, which must outlive it.
 *	It owns its claims, its timers and the delivery agent.
 * THREADS
 *	Event loop thread only.
 * ERRORS
 *	runner_new(): the error of dns_new() when a route needs DNS and the
 *	resolver cannot be set up (logged as relay-config; a configuration of
 *	address literals only makes no resolver), sasl_creds_load()'s errors
 *	(-EPERM for a file others may read, -EINVAL, -ENOENT, ...), -ENOMEM.
 *	runner_reload(): sasl_creds_load()'s errors, with nothing changed.
 *	runner_kick() and
 *	runner_free() accept NULL.
 */
#ifndef SPOOLGATE_RUNNER_H
#define SPOOLGATE_RUNNER_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include "../common/cfg.h"
#include "../common/route.h"
#include "../common/spool.h"
#include "commitq.h"

struct runner;

/* What runner_etrn() did. */
struct runner_etrn_result {
	unsigned	released;	/* held messages in queue/ now released for the node */
	unsigned	in_progress;	/* of the node's, claimed already (a run under way) */
};

int runner_new(struct event_base *base, const struct cfg *cfg, struct spool *spool,
		struct commitq *cq, struct runner **out);
void runner_kick(struct runner *runner);
void runner_poll_now(struct runner *runner);
int runner_reload(struct runner *runner);
int runner_etrn(struct runner *runner, const struct route_node *node, struct runner_etrn_result *res);
int runner_flush_all(struct runner *runner);
int runner_atrn_check(struct runner *runner, const char (*domains)[ROUTE_HOST_MAX + 1], size_t n,
    unsigned *count);
int runner_atrn_start(struct runner *runner, struct bufferevent *bev, const char (*domains)[ROUTE_HOST_MAX + 1],
    size_t n);
void runner_free(struct runner *runner);

#endif
