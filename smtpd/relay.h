/*
 * NAME
 *	relay - the queue runner and SMTP client inside spoolgate-smtpd
 * SYNOPSIS
 *	#include "relay.h"
 * DESCRIPTION
 *	relay_new() starts the runner on the smtpd event loop.  It watches
 *	queue/ with inotify (a newly queued message is noticed at once) and
 *	scans queue/ every scan_interval seconds as a safety net and for
 *	deferred messages whose next attempt is due.  Up to max_deliveries
 *	messages are delivered at once, each over its own connection to the
 *	smarthost: EHLO (HELO if EHLO is refused), MAIL/RCPT/DATA pipelined when
 *	PIPELINING is offered, the data dot-stuffed with every line ending sent
 *	as CRLF, then QUIT.
 *
 *	Outcome per recipient: 2xx sent, 5xx failed with the reply recorded,
 *	4xx (or a connection failure, a timeout, a 4xx to MAIL or DATA)
 *	pending.  The record then moves through commitq: to sent/ when every
 *	recipient is sent, to failed/ when none is pending and one failed, else
 *	back to queue/ with next-attempt = now + backoff (retry_min doubling up
 *	to retry_max), never later than created + max_queue_lifetime.  When
 *	the lifetime has run out the pending recipients fail (554 5.4.7), a
 *	record claimed after that without another attempt.
 *
 *	relay_kick() asks for a scan at once (e.g. after this process queued a
 *	message).  relay_free() stops: deliveries in flight are abandoned and
 *	their claims given back to queue/ unchanged.
 * THREADS
 *	Event loop thread only.
 */
#ifndef SPOOLGATE_RELAY_H
#define SPOOLGATE_RELAY_H

#include <event2/event.h>
#include "../common/cfg.h"
#include "../common/spool.h"
#include "commitq.h"

struct relay;

int relay_new(struct event_base *base, const struct cfg *cfg, struct spool *spool,
		struct commitq *cq, struct relay **out);
void relay_kick(struct relay *relay);
void relay_free(struct relay *relay);

#endif
