/*
 * NAME
 *	bounce - who hears of a failed or late message, and how
 * SYNOPSIS
 *	#include "bounce.h"
 *
 *	int bounce_new(const struct cfg *cfg, struct spool *spool, struct bounce **out);
 *	void bounce_free(struct bounce *b);
 *	void bounce_note_attempt(struct envelope *env, const size_t *rcpts, size_t n,
 *			const char *host, long long now);
 *	struct spool_msg *bounce_for_outcome(struct bounce *b, struct envelope *env,
 *			int datafd, enum queue_outcome outcome, long long now);
 *	void bounce_note_relayed(struct envelope *env, const size_t *rcpts, size_t n,
 *			bool dsn_passed);
 *	struct spool_msg *bounce_for_success(struct bounce *b, struct envelope *env,
 *			int datafd, long long now);
 * DESCRIPTION
 *	The relay's policy for delivery status notifications (the notice
 *	itself is dsn.h).  bounce_for_outcome() is called by the runner with
 *	a settled envelope just before its record is committed:
 *
 *	    QUEUE_FAILED    a failure notice about the failed recipients
 *	    QUEUE_DEFERRED  one delay warning about the pending ones, when
 *	                    delay_warning_time is set and the message has
 *	                    waited that long since it was created
 *
 *	None when the envelope already records one ("dsn:", "dsn-delayed:":
 *	at most one of each per message, across restarts), when the sender
 *	is <> (no bounce of a bounce: "none null-sender"), for a record of a
 *	refused outbox submission ("none rejected"), when the sender already
 *	had bounce_limit_per_hour notices in the last hour ("none cap"), or
 *	when a local sender has no mailbox here ("none no-mailbox").  A
 *	failure notice that could not be made is "none error".  Whatever
 *	it decides is written into env (envelope_set_dsn), so the record that
 *	is committed says it.
 *
 *	A notice is a new message of this spool (spool_msg), returned to the
 *	caller, who commits it with the record in the same commitq job (one
 *	directory sync for both): a sender in local_domains gets it in its
 *	own mail/<mailbox>/new/ with "Return-Path: <>"; any other sender gets
 *	it through the relay: queue/<id> with from <> (MAIL FROM:<>) and the
 *	sender as its only recipient.  The caller publishes the record
 *	first and the notice after it, so a crash between the two loses a
 *	notice rather than sending two.
 *
 *	Success notices (RFC 3461 NOTIFY=SUCCESS): bounce_note_relayed()
 *	marks each recipient of an attempt (indices rcpts) that was sent and
 *	asked NOTIFY=SUCCESS: "relayed due" when the next hop did not offer
 *	DSN, "relayed none passed-on" when it did (it got NOTIFY= and reports
 *	itself, RFC 3461 5.2.2).  The SMTP session marks a local mailbox's
 *	recipient "delivered due" (envelope.h rcpt-success).
 *	bounce_for_success() makes one notice about every recipient marked
 *	due and records its id (or "none <why>", for the same reasons as
 *	above, the per-sender cap included) in each one's rcpt-success, so
 *	a recipient gets at most one.  It is called with every settled
 *	envelope, beside bounce_for_outcome(), and its notice is committed
 *	the same way.
 *
 *	bounce_note_attempt() writes into env where and when each recipient
 *	of an attempt (indices rcpts) got its reply: envelope rcpt-at.
 *
 *	The per-sender cap is kept in memory (dsn_limiter): a restart
 *	forgets it, which lets at most one more hour's worth through per
 *	restart; keeping it in the spool would cost a synced write per
 *	notice for a limit whose only job is to stop storms.
 * DIAGNOSTICS
 *	dsn-queued (id=, dsn=, to=, kind=failed|delayed|success, via=mailbox|relay)
 *	when a notice is made; dsn-suppressed (id=, to=, reason=null-sender, notify,
 *	cap, no-mailbox) when one is held back on purpose; dsn-failed at
 *	error level (id=, error=) when one could not be made.
 * THREADS
 *	Event loop thread (the limiter is not locked).
 * ERRORS
 *	bounce_new(): 0 or -ENOMEM.  bounce_for_outcome() returns the
 *	notice to commit, or NULL (none, for a reason it logged).
 */
#ifndef SPOOLGATE_BOUNCE_H
#define SPOOLGATE_BOUNCE_H

#include "../common/cfg.h"
#include "../common/envelope.h"
#include "../common/queue.h"
#include "../common/spool.h"

struct bounce;

int bounce_new(const struct cfg *cfg, struct spool *spool, struct bounce **out);
void bounce_free(struct bounce *b);
void bounce_note_attempt(struct envelope *env, const size_t *rcpts, size_t n, const char *host,
		long long now);
struct spool_msg *bounce_for_outcome(struct bounce *b, struct envelope *env, int datafd,
		enum queue_outcome outcome, long long now);
void bounce_note_relayed(struct envelope *env, const size_t *rcpts, size_t n, bool dsn_passed);
struct spool_msg *bounce_for_success(struct bounce *b, struct envelope *env, int datafd, long long now);

#endif
