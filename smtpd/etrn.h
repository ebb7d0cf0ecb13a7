/*
 * NAME
 *	etrn - the answer to ETRN (RFC 1985): which queue run, which reply
 * SYNOPSIS
 *	#include "etrn.h"
 *
 *	void etrn_answer(struct runner *runner, enum cfg_etrn_mode mode,
 *	    bool may_relay, const char *arg, struct etrn_reply *out);
 * DESCRIPTION
 *	The SMTP session's ETRN row calls etrn_answer() with the argument and
 *	the listener's etrn mode, and sends the reply it gets: the session
 *	checks the sequence (after HELO/EHLO, outside a transaction: 503),
 *	this module the argument, the policy and the queue run.
 *
 *	    ETRN example.org	the held mail of example.org ([routes] hold)
 *	    ETRN @example.org	the same, and of every name below it
 *	    ETRN #deferred	every queued message now (the one named queue;
 *				clients that may relay only), held mail stays
 *
 *	Replies (code, enhanced code, text):
 *	    250 2.0.0 OK, queuing for node #deferred started
 *	    251 2.0.0 OK, no messages waiting for node <node>
 *	    252 2.0.0 OK, pending messages for node <node> started
 *		(its messages are being delivered already: a run under way)
 *	    253 2.0.0 OK, <n> pending messages for node <node> started
 *	    458 4.3.0 Unable to queue messages for node <node>: <why>
 *		(the hold has no next hop, no room to release, stopping)
 *	    459 4.7.1 Node <node> not allowed: <reason>
 *		(not a held domain, an unknown queue, a client that may not
 *		ask: etrn = relay and it may not relay, or #deferred)
 *	    501 5.5.4 a malformed argument (route_node_parse())
 *	    502 5.5.1 etrn = no
 * THREADS
 *	Event loop thread (it calls the runner).
 */
#ifndef SPOOLGATE_ETRN_H
#define SPOOLGATE_ETRN_H

#include <stdbool.h>

#include "../common/cfg.h"
#include "../common/errmap.h"
#include "runner.h"

#define ETRN_QUEUE_ALL	"deferred"	/* ETRN #deferred: every queued message */

struct etrn_reply {
	enum reply_id	id;
	char		text[400];
};

void etrn_answer(struct runner *runner, enum cfg_etrn_mode mode, bool may_relay, const char *arg,
    struct etrn_reply *out);

#endif
