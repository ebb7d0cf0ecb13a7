/*
 * NAME
 *	delivery - one attempt to deliver a claimed message over SMTP
 * SYNOPSIS
 *	#include "delivery.h"
 *
 *	int delivery_agent_new(struct event_base *base, const struct cfg *cfg,
 *			struct spool *spool, struct delivery_agent **out);
 *	const char *delivery_agent_helo_name(const struct delivery_agent *agent);
 *	void delivery_agent_free(struct delivery_agent *agent);
 *
 *	int delivery_start(struct delivery_agent *agent,
 *			const struct delivery_request *req);
 * DESCRIPTION
 *	The SMTP client of the relay.  The delivery agent owns every
 *	outgoing connection; the runner hands it a claimed message and gets
 *	back, once, what became of each recipient.  It knows nothing of the
 *	queue, the retry policy or the commit: the data path reads in one
 *	direction, runner -> delivery -> result -> runner.
 *
 *	delivery_agent_new() makes an agent on the event loop base.  It
 *	takes connect_timeout and command_timeout from cfg, and the name for
 *	EHLO/HELO from cfg->hostname (localhost, with a warning, when that is
 *	no domain: RFC 5321 4.1.1.1); delivery_agent_helo_name() tells which.
 *	spool gives the temporary files of a 7-bit conversion.
 *
 *	delivery_start() tries req->env's pending recipients (those of
 *	req->rcpts, when it is not NULL: one destination's share) at req->hop:
 *	connect to each of req->hop's addresses in turn until one greets with
 *	220 (a refused or timed-out connection, one closed before the
 *	greeting, or a 4xx greeting moves on to the next: RFC 5321 5; the
 *	last one's failure ends the attempt), greeting, EHLO (HELO when EHLO is refused), MAIL, RCPT and
 *	DATA pipelined when PIPELINING is offered, the stored data after
 *	req->env->data_offset dot-stuffed with CRLF line endings (or a 7-bit
 *	copy of it, when the peer could cut or corrupt it: mime7bit), then
 *	QUIT.  Each recipient's fate goes into req->env (envelope_set_rcpt):
 *	sent on 2xx, failed on 5xx, pending on 4xx and on any failure of the
 *	connection or of the peer's protocol; a recipient whose address cannot
 *	be written as a command fails at once.  The attempt's host (the
 *	address that answered, "mx1.example[192.0.2.1]:25" when it came
 *	from DNS, else the next hop's name) and the
 *	reply that ended it go to envelope_set_last().  Then req->done(req->arg,
 *	res) runs, exactly once: res->reply is that reply ("" if none),
 *	res->rcpts the indices in env->rcpt of the recipients this attempt
 *	took (valid during the call), res->ndelivered how many of them were
 *	sent, res->rcpt_overflow whether one was refused as one too many
 *	(relay_reply_is_rcpt_overflow()).  The settling (attempts, next
 *	attempt, expiry) is the caller's: relay_settle().
 *
 *	The connection lives on after done(): when the transaction ended
 *	with every reply read it waits on the agent's idle list (for
 *	connection_idle_timeout; 0: never) for the next delivery_start() to
 *	the same destination (nexthop_can_share(): route, address, TLS policy
 *	and credentials), which says RSET on it and goes straight to MAIL,
 *	with the EHLO capabilities, TLS and AUTH it has (with PIPELINING,
 *	RSET goes out in one write with MAIL, RCPT and DATA); a refused RSET
 *	or a connection gone makes a fresh connection in the same attempt.  A
 *	connection is reused at most connection_reuse_count_limit times and
 *	not after connection_reuse_time_limit seconds; at most max_deliveries
 *	wait.  Otherwise it says QUIT.  It is freed by the agent, never from
 *	inside one of its own callbacks.  res->reused says whether the
 *	transaction went over a connection used before.
 *
 *	Security, per req->hop (nexthop.h): implicit TLS from the connect
 *	(wrapper), STARTTLS after the EHLO reply when the policy tries TLS
 *	and the server offers it, then EHLO again with everything learned
 *	before forgotten; a policy that requires TLS defers every recipient
 *	(454 4.7.0 and the reason) when STARTTLS is not offered, refused, the
 *	handshake or the certificate check fails, or the server sent bytes
 *	after its 220 before the handshake (response injection).  Then AUTH
 *	when the hop has credentials and the server offers it: SCRAM-SHA-256,
 *	else PLAIN, else LOGIN (PLAIN and LOGIN without TLS only with
 *	auth_plaintext); any refusal defers (454 4.7.0 authentication
 *	failed: <host> said: <reply>).  Each attempt's TLS and AUTH go to
 *	req->env (envelope_set_last_tls(), envelope_set_last_auth()).
 *	ODMR (RFC 2645): req->established is a connection turned around by
 *	ATRN (the peer, our client until then, greets next as a server).  The
 *	delivery takes it instead of connecting: greeting, EHLO, the
 *	transaction, and then the idle list as any other connection, so the
 *	next message to the same hop goes over it.  A hop with no_connect set
 *	never connects: without an idle connection of its own, its
 *	recipients are deferred (451 4.4.1).  delivery_agent_quit() says QUIT
 *	on the idle connections of the hop named hop_name (the end of an
 *	ODMR session).
 * OWNERSHIP
 *	req->env and req->datafd are borrowed from the caller's claim until
 *	done() runs; the delivery touches neither afterwards.  req->hop is
 *	copied; req->id and the other strings are copied; req->rcpts is
 *	borrowed until done() runs.  done() may run
 *	before delivery_start() returns (nothing to send, an unreadable data
 *	file, a connect() that fails at once).  delivery_agent_free() closes
 *	every connection without calling any done(): the claims of
 *	deliveries not yet reported are the caller's to give back; idle
 *	connections get a QUIT written before they close.
 * THREADS
 *	Event loop thread only.
 * ERRORS
 *	delivery_agent_new(): -ENOMEM.  delivery_start(): -ENOMEM when not
 *	even the delivery could be allocated; then done() is never called.
 *	Every later failure is a recipient's state and a reply, and in
 *	res->error -errno when the envelope could not take them (-ENOMEM).
 */
#ifndef SPOOLGATE_DELIVERY_H
#define SPOOLGATE_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include "../common/cfg.h"
#include "../common/envelope.h"
#include "../common/spool.h"
#include "nexthop.h"

struct delivery_agent;

struct delivery_result {
	int		error;		/* 0, or -errno: env could not take the outcome */
	const char     *host;		/* the next hop's name */
	const char     *reply;		/* the reply that ended the attempt; "" if none */
	const size_t   *rcpts;		/* indices in env->rcpt of those this attempt took */
	size_t		nrcpts;
	size_t		ndelivered;	/* of them, sent */
	bool		rcpt_overflow;	/* one was refused as one too many (452 4.5.3) */
	bool		reused;		/* the transaction went over a connection used before */
	bool		dsn_passed;	/* the next hop offered DSN: NOTIFY= went with the RCPTs */
};

typedef void (*delivery_done_fn)(void *arg, const struct delivery_result *res);

struct delivery_request {
	const char	       *id;		/* the message's, for the log */
	struct envelope	       *env;		/* borrowed until done() */
	int			datafd;		/* borrowed until done() */
	const struct nexthop   *hop;		/* copied */
	const size_t	       *rcpts;		/* indices in env->rcpt to try; NULL: every pending one */
	size_t			nrcpts;
	delivery_done_fn	done;
	void		       *arg;
	struct bufferevent     *established;	/* ODMR: NULL, or a connection whose peer greets next (owned from here) */
};

int delivery_agent_new(struct event_base *base, const struct cfg *cfg, struct spool *spool,
		struct delivery_agent **out);
const char *delivery_agent_helo_name(const struct delivery_agent *agent);
void delivery_agent_free(struct delivery_agent *agent);

int delivery_start(struct delivery_agent *agent, const struct delivery_request *req);
void delivery_agent_quit(struct delivery_agent *agent, const char *hop_name);

#endif
