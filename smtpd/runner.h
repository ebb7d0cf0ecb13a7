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

#include <event2/event.h>
#include "../common/cfg.h"
#include "../common/spool.h"
#include "commitq.h"

struct runner;

int runner_new(struct event_base *base, const struct cfg *cfg, struct spool *spool,
		struct commitq *cq, struct runner **out);
void runner_kick(struct runner *runner);
void runner_poll_now(struct runner *runner);
int runner_reload(struct runner *runner);
void runner_free(struct runner *runner);

#endif
