/*
 * NAME
 *	delivery - one attempt to deliver a claimed message over SMTP
 * SYNOPSIS
 *	#include "delivery.h"
 * DESCRIPTION
 *	See delivery.h for what it does; this is how.
 *
 *	One delivery, one connection, one state machine: the table dlv_steps
 *	says, for each state, what the delivery is waiting for and which
 *	function reads the reply; dlv_enter() is the only place the state
 *	changes.  Replies are read line by line (bounded) into the pure
 *	parser of relay_smtp.c.  The message body is streamed from the data
 *	file in DLV_CHUNK pieces, refilled from the write low-water
 *	callback, so a message is never whole in memory.
 *
 *	A delivery has two parts.  The connection (bev, state, the reply
 *	being read, the peer's capabilities) and the transaction (the
 *	borrowed envelope and data file, the recipients on the wire, the
 *	body).  The session steps (connect, greeting, EHLO/HELO) end in
 *	dlv_session_ready(), where the transaction starts with MAIL; the
 *	transaction ends in dlv_conclude(), which hands the result back once,
 *	and dlv_finish(), which leaves the connection idle for the next
 *	message to the same destination, or dlv_end(), which says QUIT.  STARTTLS (an OpenSSL bufferevent
 *	filter over the socket's bufferevent, then EHLO again) and AUTH are
 *	session steps that dlv_session_ready() takes as the next hop's policy
 *	says; implicit TLS (wrapper) puts the filter in place at the connect.
 *	Connection reuse: see "Connection reuse" below and
 *	docs/architecture.md, "The idle pool".
 *
 *	Malformed replies.  A reply that breaks RFC 5321 4.2, or a line over
 *	RELAY_LINE_MAX, drops the connection and keeps the recipients pending
 *	with 451 4.5.0 (REPLY_REMOTE_PROTOCOL) and what happened.  So does
 *	a reply that was already read when the end of data is queued (sent
 *	with the 354, say): it cannot be the answer to a dot not yet sent.
 *	Bytes that arrive while the body goes out (reading is off then) are
 *	read after the dot and cannot be told from its reply.
 *
 *	Timeouts.  connect_timeout bounds the connect; command_timeout
 *	bounds each silence (the bufferevent's timeouts) and each whole reply
 *	(reply_by, checked at every read), so a peer trickling a reply gets
 *	no more time than one that says nothing.  The reply to the end of
 *	data has data_done_timeout instead (RFC 5321 4.5.3.2.6: 10 minutes,
 *	since a server may deliver or filter the message before it answers,
 *	and a sender that gives up earlier makes it deliver twice).
 *
 *	Too many recipients.  A RCPT refused with 452 4.5.3 stays pending and
 *	sets rcpt_overflow in the result: the runner gives the record back
 *	due at once when others were delivered (RFC 5321 4.5.3.1.10).
 *
 *	Ownership.  The agent owns its deliveries: open ones on a list, closed
 *	ones on another until the reap event frees them, never from inside
 *	one of their own callbacks.
 * DIAGNOSTICS
 *	One key=value line per event, with id=: relay-attempt (attempt=,
 *	host=, rcpts=, reused=yes conn= or reused=no); relay-reuse-failed
 *	(RSET refused or the connection gone: reconnect); relay-conn-dropped
 *	(an idle connection the server closed or spoke on); relay-conn-idle,
 *	relay-conn-expired, relay-conn-close at debug level; relay-error (warn) for a connection or protocol
 *	failure; relay-next-host (warn) when an address of the next hop did
 *	not answer, or under encrypt, verify or wrapper could not give TLS,
 *	and the next one is tried (host=, state=, why=);
 *	relay-converted and relay-convert-failed for the 7-bit copy;
 *	relay-state and relay-reply at debug level trace the state machine.
 * THREADS
 *	Event loop thread only.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../common/addr.h"
#include "../common/cfg.h"
#include "../common/envelope.h"
#include "../common/errmap.h"
#include "../common/log.h"
#include "../common/mime7bit.h"
#include "../common/smtp_parse.h"
#include "../common/sasl.h"
#include "../common/tls.h"
#include "../common/spool.h"
#include "delivery.h"
#include "nexthop.h"
#include "relay_smtp.h"

#define DLV_CHUNK		(64u << 10)	/* one pread of message data */
#define DLV_BODY_LOWAT		(16u << 10)	/* refill the body below this */
#define DLV_QUIT_WAIT		5		/* seconds we wait for 221 */
#define DLV_CMD_MAX		2048		/* MAIL/RCPT lines: path 512 + parameters (ORCPT= up to 500, RFC 3461) */
#define DLV_HELO_MAX		300
#define DLV_TLS_CONTEXTS	8		/* CA files the agent keeps a context for */

struct delivery;

/* One OpenSSL client context per CA file ("" : the system store), made when first needed. */
struct dlv_tls_context {
	char			ca_file[PATH_MAX];
	struct tls_client      *client;
};

struct delivery_agent {
	struct event_base      *base;
	struct spool	       *spool;
	struct sasl_ctx	       *sasl;
	struct dlv_tls_context	tls[DLV_TLS_CONTEXTS];
	size_t			ntls;
	char			helo_name[DLV_HELO_MAX];
	unsigned		connect_timeout;
	unsigned		command_timeout;
	unsigned		data_done_timeout;	/* the reply to the end of data */
	unsigned		idle_timeout;	/* 0: no reuse */
	unsigned		reuse_count_limit;
	unsigned		reuse_time_limit;
	size_t			idle_max, nidle;
	unsigned		next_conn_id;
	LIST_HEAD(, delivery)	open;
	LIST_HEAD(, delivery)	idle;		/* connections waiting for the next message */
	LIST_HEAD(, delivery)	dead;		/* closed, freed by reap_ev */
	struct event	       *reap_ev;
};

enum dlv_state {
	DLV_CONNECTING,
	DLV_GREETING,
	DLV_EHLO,
	DLV_HELO,
	DLV_STARTTLS,
	DLV_HANDSHAKE,
	DLV_AUTH,
	DLV_MAIL,
	DLV_RCPT,
	DLV_DATA,
	DLV_BODY,
	DLV_DOT,
	DLV_QUIT,
	DLV_IDLE,
	DLV_RSET,
	DLV__COUNT
};

/* Where a recipient of this transaction stands. */
enum tx_state { TX_WAIT, TX_ACCEPTED, TX_FINAL };

struct delivery {
	LIST_ENTRY(delivery) link;
	struct delivery_agent  *agent;
	char			id[SPOOL_ID_MAX];
	struct nexthop		hop;		/* as requested: the key of connection reuse */
	char			peer[NEXTHOP_NAME_MAX];	/* the address being tried, once it has a host */
	size_t			cur_addr;	/* index in hop.addrs */
	delivery_done_fn	done;		/* called once, by dlv_conclude() */
	void		       *arg;

	/* The connection. */
	struct bufferevent     *bev;		/* owned */
	enum dlv_state		state;
	bool			closing;
	long long		reply_by;	/* monotonic ms: the reply being read is due */
	struct relay_reply	reply;		/* being read */
	struct relay_caps	caps;		/* forgotten when TLS starts */
	bool			greeted;	/* the 220 greeting was read */
	bool			tls;		/* the connection is encrypted */
	bool			starttls_refused;	/* under may: go on in plaintext */
	struct tls_info		tls_info;	/* when tls */
	struct sasl_client     *sasl;		/* while in DLV_AUTH */
	const char	       *auth_mech;	/* static, sasl.h's */
	bool			authenticated;
	unsigned		conn_id;	/* the agent's number of this connection, for the log */
	unsigned		reuses;		/* transactions this connection carried before this one */
	time_t			connected_at;	/* CLOCK_MONOTONIC seconds */
	bool			idle;		/* on the agent's idle list */
	bool			rset_pipelined;	/* MAIL, RCPT and DATA went out with the RSET */

	/* The transaction: env and datafd are the caller's, NULL and -1 once reported. */
	struct envelope	       *env;
	int			datafd;
	char			last_reply[RELAY_REPLY_TEXT_MAX];
	const size_t	       *only;		/* the caller's recipients to try (NULL: all pending) */
	size_t			nonly;
	size_t		       *idx;		/* per recipient tried: its index in env->rcpt */
	enum tx_state	       *tx;		/* per recipient tried */
	size_t			nrcpts;
	size_t		       *wire;		/* recipients sent, in order: replies come so */
	size_t			nwire, rcpt_replied, naccepted;
	size_t			ndelivered;	/* recipients sent in this attempt */
	bool			rcpt_overflow;	/* some got 452 "too many recipients" */

	unsigned long long	msg_size;	/* of what goes after DATA */
	struct mime7bit_scan	scan;		/* of the stored data */
	int			convfd;		/* a 7-bit copy made for this server, or -1 */
	long long		data_pos;
	struct relay_dot	dot;
	char		       *chunk;		/* DLV_CHUNK, while in DLV_BODY */
	bool			bdat;		/* BINARYMIME: BDAT ... LAST instead of DATA (RFC 3030) */
	unsigned long long	bdat_header;	/* the stored header section, its empty line included */
	unsigned long long	bdat_header_left;	/* of it, still to encode (LF -> CRLF) */
	unsigned long long	bdat_size;	/* octets after BDAT: the header with CRLF, the body */
};

typedef void (*dlv_reply_fn)(struct delivery *, const struct relay_reply *);

static void dlv_on_greeting(struct delivery *, const struct relay_reply *);
static void dlv_on_ehlo(struct delivery *, const struct relay_reply *);
static void dlv_on_helo(struct delivery *, const struct relay_reply *);
static void dlv_on_starttls(struct delivery *, const struct relay_reply *);
static void dlv_on_auth(struct delivery *, const struct relay_reply *);
static void dlv_on_mail(struct delivery *, const struct relay_reply *);
static void dlv_on_rcpt(struct delivery *, const struct relay_reply *);
static void dlv_on_data(struct delivery *, const struct relay_reply *);
static void dlv_on_dot(struct delivery *, const struct relay_reply *);
static void dlv_on_quit(struct delivery *, const struct relay_reply *);
static void dlv_on_idle(struct delivery *, const struct relay_reply *);
static void dlv_on_rset(struct delivery *, const struct relay_reply *);

static const struct dlv_step {
	const char     *name;
	const char     *doing;		/* completes "... while <doing>" */
	bool		ehlo;		/* the reply carries capabilities */
	dlv_reply_fn	on_reply;	/* NULL: no reply may arrive now */
} dlv_steps[DLV__COUNT] = {
	[DLV_CONNECTING] = { "connecting", "connecting", false, NULL },
	[DLV_GREETING] = { "greeting", "waiting for the greeting", false, dlv_on_greeting },
	[DLV_EHLO] = { "ehlo", "waiting for the reply to EHLO", true, dlv_on_ehlo },
	[DLV_HELO] = { "helo", "waiting for the reply to HELO", false, dlv_on_helo },
	[DLV_STARTTLS] = { "starttls", "waiting for the reply to STARTTLS", false, dlv_on_starttls },
	[DLV_HANDSHAKE] = { "handshake", "negotiating TLS", false, NULL },
	[DLV_AUTH] = { "auth", "waiting for the reply to AUTH", false, dlv_on_auth },
	[DLV_MAIL] = { "mail", "waiting for the reply to MAIL FROM", false, dlv_on_mail },
	[DLV_RCPT] = { "rcpt", "waiting for the reply to RCPT TO", false, dlv_on_rcpt },
	[DLV_DATA] = { "data", "waiting for the reply to DATA", false, dlv_on_data },
	[DLV_BODY] = { "body", "sending the message", false, NULL },
	[DLV_DOT] = { "dot", "waiting for the reply to the end of data", false, dlv_on_dot },
	[DLV_QUIT] = { "quit", "waiting for the reply to QUIT", false, dlv_on_quit },
	[DLV_IDLE] = { "idle", "waiting for the next message", false, dlv_on_idle },
	[DLV_RSET] = { "rset", "waiting for the reply to RSET", false, dlv_on_rset },
};

static void dlv_close(struct delivery *d);
static void dlv_connect_fresh(struct delivery *d, const char *why);
static void dlv_start_mail(struct delivery *d, bool rset);
static int dlv_connect(struct delivery *d);
static void dlv_end(struct delivery *d);
static void dlv_conclude(struct delivery *d, const char *open_reply);
static void dlv_read_cb(struct bufferevent *bev, void *arg);
static void dlv_write_cb(struct bufferevent *bev, void *arg);
static void dlv_event_cb(struct bufferevent *bev, short what, void *arg);
static void dlv_session_ready(struct delivery *d);
static void dlv_send_bdat(struct delivery *d);
static bool dlv_next_address(struct delivery *d, const char *why);

/*
 * The state machine.
 */

static long long
dlv_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds the reply awaited in state may take: data_done_timeout for the end of data's, else command_timeout. */
static unsigned
dlv_reply_timeout(const struct delivery *d, enum dlv_state state)
{
	return state == DLV_DOT ? d->agent->data_done_timeout : d->agent->command_timeout;
}

static void
dlv_enter(struct delivery *d, enum dlv_state next)
{
	log_debug("relay-state", "id=%s from=%s to=%s", d->id, dlv_steps[d->state].name,
	    dlv_steps[next].name);
	d->state = next;
	d->reply_by = dlv_monotonic_ms() + (long long)dlv_reply_timeout(d, next) * 1000;
	relay_reply_begin(&d->reply, dlv_steps[next].ehlo);
}

static void
dlv_note_reply(struct delivery *d, const char *text)
{
	snprintf(d->last_reply, sizeof(d->last_reply), "%s", text);
}

/* Records one recipient's fate in this attempt; TX_ACCEPTED ones wait for the end of data. */
static void
dlv_rcpt_final(struct delivery *d, size_t i, enum rcpt_state state, const char *reply)
{
	int err;

	d->tx[i] = TX_FINAL;
	if ((err = envelope_set_rcpt(d->env, d->idx[i], state, reply)) < 0)
		log_error("relay-rcpt", "id=%s rcpt=%zu error=\"%s\"", d->id, d->idx[i], strerror(-err));
}

/* Every recipient still open in this attempt (waiting or accepted) gets state and reply. */
static void
dlv_settle_open(struct delivery *d, enum rcpt_state state, const char *reply)
{
	size_t i;

	for (i = 0; i < d->nrcpts; i++)
		if (d->tx[i] != TX_FINAL)
			dlv_rcpt_final(d, i, state, reply);
}

/* The accepted recipients take the verdict of the end of data (or of DATA itself). */
static void
dlv_settle_accepted(struct delivery *d, const struct relay_reply *rep)
{
	enum rcpt_state state = relay_reply_class(rep->code) == 2 ? RCPT_SENT :
	    relay_reply_class(rep->code) == 5 ? RCPT_FAILED : RCPT_PENDING;
	size_t i;

	for (i = 0; i < d->nrcpts; i++) {
		if (d->tx[i] != TX_ACCEPTED)
			continue;
		dlv_rcpt_final(d, i, state, rep->text);
		if (state == RCPT_SENT)
			d->ndelivered++;
	}
}

/*
 * The attempt is over: every recipient still open stays pending with
 * open_reply (or the last reply), the host and reply go into the record,
 * and the envelope goes back to its owner with the result.  Idempotent:
 * once it is reported, nothing is left to do.
 */
/* The attempt's line in the record's history ("attempt:") and in the log: host, TLS, reply. */
static void
dlv_note_attempt(struct delivery *d)
{
	char quoted[RELAY_REPLY_TEXT_MAX + 8];

	if (d->peer[0] == '\0')
		return;		/* no recipient went on the wire: nothing was attempted */
	log_info("relay-attempt-done", "id=%s host=%s tls=%s cipher=%s verified=%s reply=%s", d->id, d->peer,
	    d->tls ? d->tls_info.version : "no", d->tls ? d->tls_info.cipher : "-",
	    d->tls && d->tls_info.verified ? "yes" : "no", log_quote(quoted, sizeof(quoted), d->last_reply));
	if (envelope_add_attempt(d->env, (long long)time(NULL), d->peer, d->tls ? d->tls_info.version : NULL,
	    d->tls_info.cipher, d->tls_info.verified, d->last_reply[0] ? d->last_reply : NULL) < 0)
		log_warn("relay-attempt-note", "id=%s error=\"the record cannot take this attempt\"", d->id);
}

static void
dlv_conclude(struct delivery *d, const char *open_reply)
{
	struct delivery_result res;

	if (d->env == NULL)
		return;
	if (open_reply != NULL) {
		dlv_settle_open(d, RCPT_PENDING, open_reply);
		dlv_note_reply(d, open_reply);
	}
	dlv_settle_open(d, RCPT_PENDING, d->last_reply[0] ? d->last_reply : NULL);
	dlv_note_attempt(d);
	memset(&res, 0, sizeof(res));
	res.error = envelope_set_last(d->env, d->peer, d->last_reply[0] ? d->last_reply : NULL);
	res.host = d->peer;
	res.reply = d->last_reply;
	res.rcpts = d->idx;
	res.nrcpts = d->nrcpts;
	res.ndelivered = d->ndelivered;
	res.rcpt_overflow = d->rcpt_overflow;
	res.reused = d->reuses > 0;
	res.dsn_passed = d->caps.dsn;
	d->env = NULL;
	d->datafd = -1;
	d->done(d->arg, &res);
}

static void
dlv_defer_all(struct delivery *d, const char *reply)
{
	dlv_note_reply(d, reply);
	dlv_settle_open(d, RCPT_PENDING, reply);
	dlv_conclude(d, NULL);
}

static void
dlv_fail_all(struct delivery *d, const char *reply)
{
	dlv_note_reply(d, reply);
	dlv_settle_open(d, RCPT_FAILED, reply);
	dlv_conclude(d, NULL);
}

/* A local or network failure: open recipients stay pending; the connection is dropped. */
static void
dlv_abort(struct delivery *d, const struct errmap_reply *row, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
dlv_abort(struct delivery *d, const struct errmap_reply *row, const char *fmt, ...)
{
	char detail[RELAY_REPLY_TEXT_MAX], reply[RELAY_REPLY_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	relay_local_reply(reply, sizeof(reply), row, detail);
	if (d->env != NULL) {
		char quoted[RELAY_REPLY_TEXT_MAX + 8];

		log_warn("relay-error", "id=%s host=%s state=%s reply=%s", d->id, d->peer,
		    dlv_steps[d->state].name, log_quote(quoted, sizeof(quoted), reply));
	}
	dlv_conclude(d, reply);
	dlv_close(d);
}

/* A reply that is well formed but makes no sense here. */
static void
dlv_unexpected(struct delivery *d, const struct relay_reply *rep)
{
	dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "unexpected reply from %s while %s: %s",
	    d->peer, dlv_steps[d->state].doing, rep->text);
}

static int
dlv_send(struct delivery *d, const char *line, size_t len)
{
	if (bufferevent_write(d->bev, line, len) < 0) {
		dlv_abort(d, errmap_from_errno(ENOMEM), "buffering a command for %s", d->peer);
		return -ENOMEM;
	}
	return 0;
}

static int
dlv_send_hello(struct delivery *d, const char *verb)
{
	char line[DLV_CMD_MAX];
	int n;

	if ((n = relay_cmd_hello(line, sizeof(line), verb, d->agent->helo_name)) < 0) {
		dlv_abort(d, errmap_from_errno(-n), "%s %s: not a name to send", verb, d->agent->helo_name);
		return n;
	}
	return dlv_send(d, line, (size_t)n);
}

/* RCPT TO for wire slot w into line; its length, or -errno when the delivery has ended. */
static int
dlv_format_rcpt(struct delivery *d, size_t w, char *line, size_t size)
{
	const struct envelope_rcpt *er = &d->env->rcpt[d->idx[d->wire[w]]];
	char params[RELAY_DSN_PARAMS_MAX];
	int n;

	/* dlv_pick_rcpts() put only sendable addresses on the wire. */
	relay_dsn_rcpt_params(params, sizeof(params), &d->caps, er);
	if ((n = relay_cmd_rcpt(line, size, er->addr, d->env->smtputf8 && d->caps.smtputf8, params)) < 0)
		dlv_abort(d, errmap_from_errno(-n), "formatting RCPT TO");
	return n;
}

static int
dlv_send_rcpt(struct delivery *d, size_t w)
{
	char line[DLV_CMD_MAX];
	int n;

	if ((n = dlv_format_rcpt(d, w, line, sizeof(line))) < 0)
		return n;
	return dlv_send(d, line, (size_t)n);
}

/*
 * The pipelined group (RFC 2920): MAIL (already in group), every RCPT TO
 * and DATA, handed to the connection in one write.  Over TLS the OpenSSL
 * filter writes a record per write it is given (it encrypts at once, one
 * SSL_write per chain), so command by command would be one record and,
 * with the peer's Nagle against our delayed ACK, a ~40 ms wait per
 * message; made contiguous it is one record, one segment.
 */
static int
dlv_send_group(struct delivery *d, struct evbuffer *group)
{
	char line[DLV_CMD_MAX];
	unsigned char *flat;
	size_t w;
	int n;

	for (w = 0; w < d->nwire; w++) {
		if ((n = dlv_format_rcpt(d, w, line, sizeof(line))) < 0)
			return n;
		if (evbuffer_add(group, line, (size_t)n) < 0)
			goto nomem;
	}
	/* BDAT waits for the RCPT replies: its octets follow it at once. */
	if ((!d->bdat && evbuffer_add(group, "DATA\r\n", 6) < 0) || (flat = evbuffer_pullup(group, -1)) == NULL)
		goto nomem;
	return dlv_send(d, (const char *)flat, evbuffer_get_length(group));
nomem:
	dlv_abort(d, errmap_from_errno(ENOMEM), "buffering the pipelined commands for %s", d->peer);
	return -ENOMEM;
}

/*
 * QUIT politely when the connection is still in a state to take it.
 * (Connection reuse will say RSET here and keep the connection.)
 */
static void
dlv_end(struct delivery *d)
{
	struct timeval tv = { DLV_QUIT_WAIT, 0 };

	if (d->closing)
		return;
	if (d->bev == NULL || d->state == DLV_CONNECTING || d->state == DLV_BODY) {
		dlv_close(d);
		return;
	}
	if ((unsigned)tv.tv_sec > d->agent->command_timeout)
		tv.tv_sec = d->agent->command_timeout;
	dlv_enter(d, DLV_QUIT);
	d->reply_by = dlv_monotonic_ms() + (long long)tv.tv_sec * 1000;
	bufferevent_set_timeouts(d->bev, &tv, &tv);
	bufferevent_enable(d->bev, EV_READ);
	if (bufferevent_write(d->bev, "QUIT\r\n", 6) < 0)
		dlv_close(d);
}

/*
 * Connection reuse.  A transaction that ended with every reply read
 * leaves its connection on the agent's idle list (dlv_finish()) instead
 * of saying QUIT; the next delivery to the same destination (same route,
 * security and address: nexthop_can_share()) takes it (dlv_adopt()),
 * says RSET and goes straight to MAIL with the EHLO capabilities, TLS and
 * AUTH the connection already has.  An idle connection that the server
 * closes, or answers on (421), is dropped quietly; one idle for
 * idle_timeout says QUIT.  RSET refused or the connection gone: a fresh
 * connection, as if none had been waiting (dlv_connect_fresh()).
 */

static time_t
dlv_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The transaction's memory goes; the connection and what it learned stay. */
static void
dlv_forget_transaction(struct delivery *d)
{
	if (d->convfd >= 0)
		(void)close(d->convfd);
	d->convfd = -1;
	free(d->chunk);
	free(d->idx);
	free(d->tx);
	free(d->wire);
	d->chunk = NULL;
	d->idx = d->wire = NULL;
	d->tx = NULL;
	d->only = NULL;
	d->nonly = d->nrcpts = d->nwire = d->rcpt_replied = d->naccepted = d->ndelivered = 0;
	d->rcpt_overflow = false;
	d->bdat = false;
	d->last_reply[0] = '\0';
}

/* Why this connection, its transaction over with every reply read, may not carry another; NULL: it may. */
static const char *
dlv_why_not_reused(struct delivery *d, int code)
{
	struct delivery_agent *a = d->agent;

	if (a->idle_timeout == 0)
		return "reuse-disabled";
	if (d->closing || d->bev == NULL)
		return "closed";
	if (code == 421)
		return "server-closing";
	if (d->reuses >= a->reuse_count_limit)
		return "reuse-count-limit";
	if (dlv_now() - d->connected_at >= (time_t)a->reuse_time_limit)
		return "reuse-time-limit";
	if (evbuffer_get_length(bufferevent_get_input(d->bev)) > 0)
		return "unread-input";
	if (a->nidle >= a->idle_max && !d->hop.no_connect)	/* ODMR's connection has no other use */
		return "idle-full";
	return NULL;
}

/* Off the idle list, back among the open ones. */
static void
dlv_unidle(struct delivery *d)
{
	if (!d->idle)
		return;
	d->idle = false;
	d->agent->nidle--;
	LIST_REMOVE(d, link);
	LIST_INSERT_HEAD(&d->agent->open, d, link);
}

/*
 * The transaction is reported (dlv_conclude()) and its last reply, code,
 * was read: the connection goes idle, or says QUIT.
 */
static void
dlv_finish(struct delivery *d, int code)
{
	struct delivery_agent *a = d->agent;
	struct timeval tv = { a->idle_timeout, 0 };
	const char *why;

	if ((why = dlv_why_not_reused(d, code)) != NULL) {
		log_debug("relay-conn-close", "conn=%u host=%s reuses=%u why=%s", d->conn_id, d->peer, d->reuses, why);
		dlv_end(d);
		return;
	}
	dlv_forget_transaction(d);
	LIST_REMOVE(d, link);
	LIST_INSERT_HEAD(&a->idle, d, link);
	a->nidle++;
	d->idle = true;
	dlv_enter(d, DLV_IDLE);
	bufferevent_set_timeouts(d->bev, &tv, NULL);
	bufferevent_enable(d->bev, EV_READ);
	log_debug("relay-conn-idle", "conn=%u host=%s reuses=%u", d->conn_id, d->peer, d->reuses);
}

/* The server spoke while the connection was idle (421, most likely): drop it quietly. */
static void
dlv_on_idle(struct delivery *d, const struct relay_reply *rep)
{
	char quoted[RELAY_REPLY_TEXT_MAX + 8];

	log_info("relay-conn-dropped", "conn=%u host=%s why=%s", d->conn_id, d->peer,
	    log_quote(quoted, sizeof(quoted), rep->text));
	dlv_close(d);
}

/* Closed, failed or timed out while idle. */
static void
dlv_idle_event(struct delivery *d, short what)
{
	if (what & BEV_EVENT_TIMEOUT) {
		log_debug("relay-conn-expired", "conn=%u host=%s reuses=%u", d->conn_id, d->peer, d->reuses);
		dlv_unidle(d);
		dlv_end(d);
		return;
	}
	log_info("relay-conn-dropped", "conn=%u host=%s why=\"%s\"", d->conn_id, d->peer,
	    (what & BEV_EVENT_EOF) ? "closed by the server" : "connection error");
	dlv_close(d);
}

/* An idle connection for d's destination, or NULL. */
static struct delivery *
dlv_find_idle(struct delivery *d, size_t *addr)
{
	struct delivery *c;
	int i;

	LIST_FOREACH(c, &d->agent->idle, link) {
		if (c->closing || c->state != DLV_IDLE)
			continue;
		if ((i = nexthop_can_share(&c->hop, c->cur_addr, &d->hop)) >= 0) {
			*addr = (size_t)i;
			return c;
		}
	}
	return NULL;
}

/* d takes c's connection and what it learned; c goes. Then RSET. */
static void
dlv_adopt(struct delivery *d, struct delivery *c, size_t addr)
{
	struct timeval tv = { d->agent->command_timeout, 0 };

	dlv_unidle(c);
	d->bev = c->bev;
	c->bev = NULL;
	bufferevent_setcb(d->bev, dlv_read_cb, dlv_write_cb, dlv_event_cb, d);
	d->state = DLV_IDLE;
	d->cur_addr = addr;
	snprintf(d->peer, sizeof(d->peer), "%s", c->peer);
	d->caps = c->caps;
	d->greeted = c->greeted;
	d->tls = c->tls;
	d->tls_info = c->tls_info;
	d->starttls_refused = c->starttls_refused;
	d->authenticated = c->authenticated;
	d->auth_mech = c->auth_mech;
	d->conn_id = c->conn_id;
	d->reuses = c->reuses;
	d->connected_at = c->connected_at;
	dlv_close(c);
	bufferevent_set_timeouts(d->bev, &tv, &tv);
	bufferevent_enable(d->bev, EV_READ);
	/* RFC 2920 3.1: RSET may open the pipelined group; without PIPELINING it waits for its reply. */
	if (d->caps.pipelining) {
		dlv_start_mail(d, true);
		return;
	}
	if (bufferevent_write(d->bev, "RSET\r\n", 6) < 0) {
		dlv_connect_fresh(d, "buffering RSET");
		return;
	}
	dlv_enter(d, DLV_RSET);
}

/*
 * RSET took: this attempt has the connection's TLS and AUTH; on to MAIL,
 * whose reply comes next when it went out with RSET.  RSET refused (or
 * 421): the connection is dropped, and with it a pipelined MAIL, RCPT and
 * DATA the server may have taken (no end of data was sent: nothing is
 * delivered), and a fresh one carries the message.
 */
static void
dlv_on_rset(struct delivery *d, const struct relay_reply *rep)
{
	bool pipelined = d->rset_pipelined;

	d->rset_pipelined = false;
	if (rep->code != 250) {
		dlv_connect_fresh(d, rep->text);
		return;
	}
	d->reuses++;
	if (d->tls && envelope_set_last_tls(d->env, d->tls_info.version, d->tls_info.cipher,
	    d->tls_info.verified, nexthop_peer_name(&d->hop, d->cur_addr)) < 0)
		log_warn("relay-tls-note", "id=%s error=\"the record cannot take this TLS description\"", d->id);
	if (d->authenticated && envelope_set_last_auth(d->env, d->auth_mech, d->hop.user) < 0)
		log_warn("relay-auth-note", "id=%s error=\"the record cannot take this user name\"", d->id);
	if (pipelined)
		dlv_enter(d, DLV_MAIL);
	else
		dlv_start_mail(d, false);
}

static const char *
dlv_conversion_reason(const struct mime7bit_scan *s)
{
	if (s->longest_line > MIME7BIT_LINE_MAX)
		return "line-over-998";
	if (s->nul)
		return "nul";
	return "8bit-without-8bitmime";
}

/*
 * What goes after DATA: the stored data, or, when this server could cut
 * or corrupt it (a line over 998 octets, NUL, 8-bit octets and no
 * 8BITMIME), a 7-bit copy made by mime7bit in an unlinked temporary of
 * the spool.  A message that cannot be made 7-bit fails with 554 5.6.3
 * rather than be sent.  Returns 0, or -errno when the delivery has ended.
 */
static int
dlv_prepare_body(struct delivery *d)
{
	char why[256], reply[RELAY_REPLY_TEXT_MAX], name[SPOOL_NAME_MAX], qwhy[512];
	char note[NEXTHOP_NAME_MAX + 64];
	struct mime7bit_scan after;
	int fd, r;

	if (d->convfd >= 0 || !mime7bit_needed(&d->scan, d->caps.eightbitmime))
		return 0;
	why[0] = '\0';
	if ((fd = r = spool_tmpfile(d->agent->spool, name)) >= 0) {
		(void)unlinkat(spool_dirfd(d->agent->spool, SPOOL_DIR_TMP), name, 0);
		r = mime7bit_convert(d->datafd, d->env->data_offset, fd, &after, why, sizeof(why));
	} else {
		snprintf(why, sizeof(why), "a temporary file for the conversion: %s", strerror(-r));
	}
	if (r < 0) {
		if (fd >= 0)
			(void)close(fd);
		log_warn("relay-convert-failed", "id=%s host=%s reason=%s error=%d why=%s", d->id,
		    d->peer, dlv_conversion_reason(&d->scan), -r, log_quote(qwhy, sizeof(qwhy), why));
		if (r == -EILSEQ || r == -EBADMSG) {	/* the message itself: it will never do */
			relay_local_reply(reply, sizeof(reply), errmap_get(REPLY_CONVERSION_UNSUPPORTED), why);
			dlv_fail_all(d, reply);
		} else {
			relay_local_reply(reply, sizeof(reply), errmap_from_errno(-r), why);
			dlv_defer_all(d, reply);
		}
		dlv_end(d);
		return r;
	}
	d->convfd = fd;
	d->msg_size = after.size;
	/* The record says so too (its "conversion:" line, in the .status file). */
	snprintf(note, sizeof(note), "7bit for %s (%s), attempt %u", d->peer,
	    dlv_conversion_reason(&d->scan), d->env->attempts + 1);
	if (envelope_set_conversion(d->env, note) < 0)
		log_warn("relay-convert-note", "id=%s error=\"%s\"", d->id, strerror(ENOMEM));
	log_info("relay-converted", "id=%s host=%s to=7bit reason=%s size=%llu converted-size=%llu", d->id,
	    d->peer, dlv_conversion_reason(&d->scan), d->scan.size, after.size);
	return 0;
}

/*
 * MAIL FROM, and with PIPELINING every RCPT TO and DATA in the same write
 * (RFC 2920); the replies are then read in order.  rset (a reused
 * connection with PIPELINING): RSET opens the group, so the reused
 * connection costs no round trip of its own; its reply comes first.
 */
/*
 * The wire size of a stored BINARYMIME message: its header section (up
 * to and with the first empty line, as the server's hop counter finds
 * it) was stored with LF and goes with CRLF; the body goes as stored.
 */
static int
dlv_measure_binary(struct delivery *d)
{
	char buf[16384];
	long long pos = d->env->data_offset;
	unsigned long long lfs = 0;
	bool bol = true, done = false;
	ssize_t n;

	d->bdat_header = 0;
	while (!done && (n = spool_pread_all(d->datafd, buf, sizeof(buf), (off_t)pos)) > 0) {
		for (ssize_t i = 0; i < n && !done; i++) {
			d->bdat_header++;
			if (buf[i] == '\n') {
				lfs++;
				done = bol;		/* an empty line ends the header */
				bol = true;
			} else {
				bol = false;
			}
		}
		pos += n;
	}
	if (n < 0)
		return (int)n;
	d->bdat_size = d->msg_size + lfs;
	return 0;
}

/*
 * A BINARYMIME message (RFC 3030) goes only by BDAT to a server that
 * offers CHUNKING and BINARYMIME: DATA would cut or corrupt a binary body.
 * To any other server it fails here with 554 5.6.3 (RFC 3030 section 3,
 * RFC 3463: conversion required but not supported).  Returns true when
 * the delivery has ended.
 */
static bool
dlv_refuse_binary(struct delivery *d)
{
	char reply[RELAY_REPLY_TEXT_MAX];
	int err;

	if (!d->env->binarymime)
		return false;
	if (d->caps.chunking && d->caps.binarymime) {
		if ((err = dlv_measure_binary(d)) == 0) {
			d->bdat = true;
			return false;
		}
		dlv_abort(d, errmap_from_errno(-err), "reading the message data");
		return true;
	}
	log_warn("relay-binarymime", "id=%s host=%s reason=\"BINARYMIME and the server offers no %s\"",
	    d->id, d->peer, d->caps.chunking ? "BINARYMIME" : "CHUNKING");
	relay_local_reply(reply, sizeof(reply), errmap_get(REPLY_CONVERSION_UNSUPPORTED),
	    "a BODY=BINARYMIME message, and the server offers no BDAT with BINARYMIME");
	dlv_fail_all(d, reply);
	dlv_end(d);
	return true;
}

/*
 * An SMTPUTF8 message (RFC 6531) and a server that does not offer
 * SMTPUTF8: a UTF-8 sender fails the message, each UTF-8 recipient fails
 * with 553 5.6.7 (no downgrade, RFC 6857 is not done here) and the
 * others go on.  Returns true when the delivery has ended.
 */
static bool
dlv_refuse_utf8(struct delivery *d)
{
	char reply[RELAY_REPLY_TEXT_MAX], why[NEXTHOP_NAME_MAX + 64];
	size_t w, kept = 0;

	if (!d->env->smtputf8 || d->caps.smtputf8)
		return false;
	snprintf(why, sizeof(why), "%s does not offer SMTPUTF8", d->peer);
	if (!smtp_is_ascii(d->env->from)) {
		relay_local_reply(reply, sizeof(reply), errmap_get(REPLY_NON_ASCII_SENDER), why);
		dlv_fail_all(d, reply);
		dlv_end(d);
		return true;
	}
	relay_local_reply(reply, sizeof(reply), errmap_get(REPLY_NON_ASCII_RCPT), why);
	for (w = 0; w < d->nwire; w++) {
		size_t k = d->wire[w];

		if (smtp_is_ascii(d->env->rcpt[d->idx[k]].addr))
			d->wire[kept++] = k;
		else
			dlv_rcpt_final(d, k, RCPT_FAILED, reply);
	}
	if (kept < d->nwire)
		log_info("relay-smtputf8", "id=%s host=%s failed=%zu reason=\"no SMTPUTF8\"", d->id, d->peer,
		    d->nwire - kept);
	d->nwire = kept;
	if (kept > 0)
		return false;
	dlv_fail_all(d, reply);
	dlv_end(d);
	return true;
}

static void
dlv_start_mail(struct delivery *d, bool rset)
{
	char line[DLV_CMD_MAX], why[NEXTHOP_NAME_MAX + 96], params[RELAY_DSN_PARAMS_MAX];
	int n;

	if (dlv_refuse_binary(d) || dlv_refuse_utf8(d) || (!d->bdat && dlv_prepare_body(d) < 0))
		return;
	if (d->caps.size && d->caps.size_max > 0 && d->msg_size > d->caps.size_max) {
		char reply[RELAY_REPLY_TEXT_MAX];

		snprintf(why, sizeof(why), "message of %llu bytes, %s accepts at most %llu",
		    d->msg_size, d->peer, d->caps.size_max);
		relay_local_reply(reply, sizeof(reply), errmap_from_errno(EFBIG), why);
		dlv_fail_all(d, reply);
		dlv_end(d);
		return;
	}
	/* RFC 6152: an 8-bit body is announced as such; a converted copy is 7-bit. */
	relay_dsn_mail_params(params, sizeof(params), &d->caps, d->env);	/* RFC 3461, where offered */
	n = relay_cmd_mail(line, sizeof(line), d->env->from, &d->caps, d->bdat ? d->bdat_size : d->msg_size,
	    !d->bdat && d->scan.eightbit && d->convfd < 0, d->env->smtputf8, params);
	if (n > 0 && d->bdat)
		n = relay_cmd_add_param(line, sizeof(line), (size_t)n, "BODY=BINARYMIME");
	if (n < 0) {
		char reply[RELAY_REPLY_TEXT_MAX];

		relay_local_reply(reply, sizeof(reply), errmap_from_errno(-n), "the sender address cannot be sent");
		dlv_fail_all(d, reply);
		dlv_end(d);
		return;
	}
	if (d->caps.pipelining) {
		struct evbuffer *group = evbuffer_new();

		if (group == NULL || (rset && evbuffer_add(group, "RSET\r\n", 6) < 0) ||
		    evbuffer_add(group, line, (size_t)n) < 0) {
			if (group != NULL)
				evbuffer_free(group);
			dlv_abort(d, errmap_from_errno(ENOMEM), "buffering the pipelined commands for %s", d->peer);
			return;
		}
		n = dlv_send_group(d, group);
		evbuffer_free(group);
		if (n < 0)
			return;
		d->rset_pipelined = rset;
		dlv_enter(d, rset ? DLV_RSET : DLV_MAIL);
		return;
	}
	if (dlv_send(d, line, (size_t)n) < 0)
		return;
	dlv_enter(d, DLV_MAIL);
}

/*
 * TLS (RFC 3207 STARTTLS, RFC 8314 implicit TLS) and AUTH (RFC 4954):
 * the session steps between the EHLO reply and MAIL.
 */

/* A session step could not be done as the route's policy asks: defer every recipient, drop the connection. */
static void
dlv_security_abort(struct delivery *d, enum reply_id row, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
dlv_security_abort(struct delivery *d, enum reply_id row, const char *fmt, ...)
{
	char detail[RELAY_REPLY_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	dlv_abort(d, errmap_get(row), "%s", detail);
}

/*
 * This address cannot give the TLS the route's policy asks for (no
 * STARTTLS, refused, a failed handshake or certificate, bytes injected
 * before the handshake).  Under encrypt, verify and wrapper the next
 * address of the same next hop is tried, as Postfix does (another MX may
 * have a good certificate; nothing was sent); when none is left, or under
 * may, every recipient is deferred.
 */
static void
dlv_tls_unavailable(struct delivery *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
dlv_tls_unavailable(struct delivery *d, const char *fmt, ...)
{
	char detail[RELAY_REPLY_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (tls_policy_requires_tls(d->hop.tls) && dlv_next_address(d, detail))
		return;
	dlv_abort(d, errmap_get(REPLY_TLS_UNAVAILABLE), "%s", detail);
}

/* The agent's client context for this next hop's CA file, made on first use. */
static struct tls_client *
dlv_tls_client(struct delivery *d, char *err, size_t errlen)
{
	struct delivery_agent *a = d->agent;
	struct dlv_tls_context *c;
	size_t i;

	for (i = 0; i < a->ntls; i++)
		if (strcmp(a->tls[i].ca_file, d->hop.tls_ca_file) == 0)
			return a->tls[i].client;
	if (a->ntls == DLV_TLS_CONTEXTS) {
		snprintf(err, errlen, "more than %d CA files", DLV_TLS_CONTEXTS);
		return NULL;
	}
	c = &a->tls[a->ntls];
	if (tls_client_new(&c->client, d->hop.tls_ca_file[0] ? d->hop.tls_ca_file : NULL, err, errlen) < 0)
		return NULL;
	snprintf(c->ca_file, sizeof(c->ca_file), "%s", d->hop.tls_ca_file);
	a->ntls++;
	return c->client;
}

/*
 * Wraps the connection in an OpenSSL filter and starts the handshake;
 * BEV_EVENT_CONNECTED on the filter says it is done (dlv_tls_ready()).
 */
static void
dlv_start_tls(struct delivery *d)
{
	struct timeval tv = { d->agent->command_timeout, 0 };
	char err[TLS_ERR_LEN];
	struct tls_client *client;
	struct bufferevent *filter;
	SSL *ssl = NULL;

	if ((client = dlv_tls_client(d, err, sizeof(err))) == NULL ||
	    tls_client_ssl(client, nexthop_peer_name(&d->hop, d->cur_addr), d->hop.tls, &ssl, err, sizeof(err)) < 0) {
		dlv_security_abort(d, REPLY_TLS_UNAVAILABLE, "TLS with %s: %s", d->peer, err);
		return;
	}
	filter = bufferevent_openssl_filter_new(d->agent->base, d->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (filter == NULL) {
		SSL_free(ssl);
		dlv_abort(d, errmap_from_errno(ENOMEM), "TLS with %s: no memory for the filter", d->peer);
		return;
	}
	/* The filter owns the socket's bufferevent now, and frees it with itself. */
	d->bev = filter;
	bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
	bufferevent_setcb(filter, dlv_read_cb, dlv_write_cb, dlv_event_cb, d);
	bufferevent_set_timeouts(filter, &tv, &tv);
	bufferevent_enable(filter, EV_READ | EV_WRITE);
	dlv_enter(d, DLV_HANDSHAKE);
}

/* The handshake failed: one line that says why (the certificate, the alert, the peer). */
static void
dlv_tls_failed(struct delivery *d, short what)
{
	SSL *ssl = bufferevent_openssl_get_ssl(d->bev);
	char why[TLS_ERR_LEN];
	unsigned long e;

	why[0] = '\0';
	if (ssl != NULL && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) && SSL_get_verify_result(ssl) != X509_V_OK)
		tls_handshake_error(ssl, -1, why, sizeof(why));
	else if ((e = bufferevent_get_openssl_error(d->bev)) != 0)
		ERR_error_string_n(e, why, sizeof(why));
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "the peer closed the connection");
	else if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "timed out");
	else
		snprintf(why, sizeof(why), "%s", strerror(EVUTIL_SOCKET_ERROR() ? EVUTIL_SOCKET_ERROR() : ECONNRESET));
	while (bufferevent_get_openssl_error(d->bev) != 0)
		;
	dlv_tls_unavailable(d, "TLS handshake with %s failed (policy %s): %s",
	    d->peer, tls_policy_name(d->hop.tls), why);
}

/*
 * The handshake is done: the record and the log say how.  After STARTTLS
 * everything learned in plaintext is forgotten and EHLO said again
 * (RFC 3207 4.2); under wrapper the greeting comes now.
 */
static void
dlv_tls_ready(struct delivery *d)
{
	char text[1024];

	tls_info_get(bufferevent_openssl_get_ssl(d->bev), &d->tls_info);
	d->tls = true;
	tls_info_format(&d->tls_info, text, sizeof(text));
	log_info("relay-tls", "id=%s host=%s policy=%s %s", d->id, d->peer, tls_policy_name(d->hop.tls), text);
	if (d->env != NULL && envelope_set_last_tls(d->env, d->tls_info.version, d->tls_info.cipher,
	    d->tls_info.verified, nexthop_peer_name(&d->hop, d->cur_addr)) < 0)
		log_warn("relay-tls-note", "id=%s error=\"the record cannot take this TLS description\"", d->id);
	memset(&d->caps, 0, sizeof(d->caps));
	if (!d->greeted) {
		dlv_enter(d, DLV_GREETING);
		return;
	}
	if (dlv_send_hello(d, "EHLO") == 0)
		dlv_enter(d, DLV_EHLO);
}

static void
dlv_on_starttls(struct delivery *d, const struct relay_reply *rep)
{
	if (rep->code == 220) {
		/*
		 * Anything after the 220 was sent before the handshake and would
		 * be read as if it came through TLS (response injection, the
		 * client side of CVE-2011-0411): refuse the server.
		 */
		size_t extra = evbuffer_get_length(bufferevent_get_input(d->bev));

		if (extra > 0) {
			dlv_tls_unavailable(d,
			    "%s sent %zu octets after its 220 to STARTTLS, before the TLS handshake "
			    "(response injection); nothing was sent", d->peer, extra);
			return;
		}
		dlv_start_tls(d);
		return;
	}
	if (!tls_policy_requires_tls(d->hop.tls)) {
		/* Under may, a refused STARTTLS leaves the session as it was (RFC 3207 4). */
		log_info("relay-starttls-refused", "id=%s host=%s policy=%s reply=\"%s\"", d->id, d->peer,
		    tls_policy_name(d->hop.tls), rep->text);
		d->starttls_refused = true;
		dlv_session_ready(d);
		return;
	}
	dlv_tls_unavailable(d, "TLS is required (policy %s), but %s refused STARTTLS: %s",
	    tls_policy_name(d->hop.tls), d->peer, rep->text);
}

/* Sends one AUTH line or response, then wipes it: it may hold the password. */
static int
dlv_send_secret(struct delivery *d, char *line)
{
	size_t len = strlen(line);
	int r = dlv_send(d, line, len);

	explicit_bzero(line, len);
	free(line);
	return r;
}

/*
 * AUTH, when the route has credentials and the server offers it:
 * SCRAM-SHA-256, else PLAIN, else LOGIN; PLAIN and LOGIN only over TLS
 * unless auth_plaintext.  Returns 1 when AUTH went out, 0 to go on
 * without it, -1 when the delivery has ended.
 */
static int
dlv_start_auth(struct delivery *d)
{
	char *initial = NULL, *line = NULL;
	int r;

	if (!d->hop.auth || d->authenticated)
		return 0;
	if (!d->caps.auth) {
		log_warn("relay-auth-not-offered", "id=%s host=%s tls=%s action=\"sending without AUTH\"", d->id,
		    d->peer, d->tls ? "yes" : "no");
		return 0;
	}
	r = sasl_client_choose(d->caps.auth_mechs, d->tls, d->hop.auth_plaintext, &d->auth_mech);
	if (r == -EPERM) {
		dlv_security_abort(d, REPLY_AUTH_TEMPFAIL, "%s offers only AUTH %s, which would send the password "
		    "without TLS (auth_plaintext = no)", d->peer, d->caps.auth_mechs);
		return -1;
	}
	if (r < 0) {
		dlv_security_abort(d, REPLY_AUTH_TEMPFAIL, "no SASL mechanism in common with %s (it offers: %s)",
		    d->peer, d->caps.auth_mechs);
		return -1;
	}
	if ((r = sasl_client_start(d->agent->sasl, d->auth_mech, d->hop.user, d->hop.password, &d->sasl,
	    &initial)) < 0) {
		dlv_security_abort(d, REPLY_AUTH_TEMPFAIL, "AUTH %s for %s: %s", d->auth_mech, d->peer,
		    strerror(-r));
		return -1;
	}
	if (initial == NULL)
		r = asprintf(&line, "AUTH %s\r\n", d->auth_mech);
	else
		r = asprintf(&line, "AUTH %s %s\r\n", d->auth_mech, initial[0] ? initial : "=");
	if (initial != NULL) {
		explicit_bzero(initial, strlen(initial));
		free(initial);
	}
	if (r < 0) {
		dlv_abort(d, errmap_from_errno(ENOMEM), "AUTH for %s", d->peer);
		return -1;
	}
	if (dlv_send_secret(d, line) < 0)
		return -1;
	dlv_enter(d, DLV_AUTH);
	return 1;
}

/* 334: the next step of the mechanism. */
static void
dlv_auth_step(struct delivery *d, const struct relay_reply *rep)
{
	const char *challenge = rep->text + 3;
	char *response = NULL, *line;
	enum sasl_status st;

	while (*challenge == ' ')
		challenge++;
	st = sasl_client_step(d->sasl, challenge, &response);
	if (st != SASL_OK && st != SASL_CONTINUE) {
		dlv_security_abort(d, REPLY_AUTH_TEMPFAIL, "AUTH %s with %s: %s (%s)", d->auth_mech, d->peer,
		    sasl_status_name(st), sasl_client_error(d->sasl));
		return;
	}
	if (asprintf(&line, "%s\r\n", response) < 0) {
		explicit_bzero(response, strlen(response));
		free(response);
		dlv_abort(d, errmap_from_errno(ENOMEM), "AUTH for %s", d->peer);
		return;
	}
	explicit_bzero(response, strlen(response));
	free(response);
	dlv_send_secret(d, line);
}

static void
dlv_on_auth(struct delivery *d, const struct relay_reply *rep)
{
	char reply[RELAY_REPLY_TEXT_MAX + NEXTHOP_NAME_MAX + 64];
	char quoted[RELAY_REPLY_TEXT_MAX + 8], qreply[RELAY_REPLY_TEXT_MAX + 8];
	const struct errmap_reply *row;

	if (rep->code == 334) {
		dlv_auth_step(d, rep);
		return;
	}
	if (rep->code == 235 && !sasl_client_finished(d->sasl)) {
		/* A SCRAM server that never proved it knows the password is not the server we mean. */
		dlv_security_abort(d, REPLY_AUTH_TEMPFAIL, "%s accepted AUTH %s without proving itself: %s",
		    d->peer, d->auth_mech, rep->text);
		return;
	}
	sasl_client_free(d->sasl);
	d->sasl = NULL;
	if (rep->code == 235) {
		d->authenticated = true;
		log_info("relay-auth", "id=%s host=%s mechanism=%s user=%s tls=%s", d->id, d->peer, d->auth_mech,
		    log_quote(quoted, sizeof(quoted), d->hop.user), d->tls ? "yes" : "no");
		if (d->env != NULL && envelope_set_last_auth(d->env, d->auth_mech, d->hop.user) < 0)
			log_warn("relay-auth-note", "id=%s error=\"the record cannot take this user name\"", d->id);
		dlv_start_mail(d, false);
		return;
	}
	/*
	 * 535 (wrong password), 454, 432 and anything else: the message waits
	 * (a soft bounce, as Postfix's smtp_sasl_auth_soft_bounce = yes): an
	 * expired password must not turn the queue into bounces.
	 */
	row = errmap_get(REPLY_AUTH_TEMPFAIL);
	snprintf(reply, sizeof(reply), "%d %s authentication failed: %s said: %s", row->code, row->esc,
	    d->peer, rep->text);
	log_error("relay-auth-failed", "id=%s host=%s mechanism=%s user=%s reply=%s", d->id, d->peer,
	    d->auth_mech, log_quote(quoted, sizeof(quoted), d->hop.user),
	    log_quote(qreply, sizeof(qreply), rep->text));
	dlv_defer_all(d, reply);
	dlv_end(d);
}

/*
 * The peer knows who we are and what it offers.  First TLS as the
 * route's policy says, then AUTH, then the transaction starts.
 */
static void
dlv_session_ready(struct delivery *d)
{
	if (!d->tls && tls_policy_tries_tls(d->hop.tls) && !d->starttls_refused) {
		if (d->caps.starttls) {
			if (dlv_send(d, "STARTTLS\r\n", 10) == 0)
				dlv_enter(d, DLV_STARTTLS);
			return;
		}
		if (tls_policy_requires_tls(d->hop.tls)) {
			dlv_tls_unavailable(d,
			    "TLS is required (policy %s), but %s did not offer STARTTLS; nothing was sent",
			    tls_policy_name(d->hop.tls), d->peer);
			return;
		}
	}
	if (dlv_start_auth(d) != 0)
		return;
	dlv_start_mail(d, false);
}

/*
 * A 4xx or 5xx before any recipient was accepted ends the transaction for
 * every recipient still open: 4xx defers them, 5xx fails them.  Returns
 * false for any other reply.
 */
static bool
dlv_refused_all(struct delivery *d, const struct relay_reply *rep)
{
	switch (relay_reply_class(rep->code)) {
	case 4:
		dlv_defer_all(d, rep->text);
		break;
	case 5:
		dlv_fail_all(d, rep->text);
		break;
	default:
		return false;
	}
	dlv_end(d);
	return true;
}

static void
dlv_on_greeting(struct delivery *d, const struct relay_reply *rep)
{
	if (rep->code == 220) {
		d->greeted = true;
		if (dlv_send_hello(d, "EHLO") == 0)
			dlv_enter(d, DLV_EHLO);
		return;
	}
	/*
	 * RFC 5321 5: a host that will not talk now is skipped for the next
	 * one.  So is one that greets with 5xx (RFC 5321 3.1's 554): one
	 * misconfigured or blocking MX host is no verdict on the recipients,
	 * so when no host is left the message is deferred, not failed
	 * (Postfix's smtp_skip_5xx_greeting = yes).
	 */
	switch (relay_reply_class(rep->code)) {
	case 4:
		if (!dlv_next_address(d, rep->text))
			dlv_refused_all(d, rep);
		return;
	case 5:
		if (!dlv_next_address(d, rep->text))
			dlv_abort(d, errmap_get(REPLY_GREETING_REFUSED), "%s greeted with %s", d->peer, rep->text);
		return;
	default:
		dlv_unexpected(d, rep);
	}
}

static void
dlv_on_ehlo(struct delivery *d, const struct relay_reply *rep)
{
	switch (relay_reply_class(rep->code)) {
	case 2:
		d->caps = rep->caps;
		dlv_session_ready(d);
		return;
	case 5:
		/* RFC 5321 3.2: a server that does not know EHLO still knows HELO. */
		if (dlv_send_hello(d, "HELO") == 0)
			dlv_enter(d, DLV_HELO);
		return;
	}
	if (!dlv_refused_all(d, rep))
		dlv_unexpected(d, rep);
}

static void
dlv_on_helo(struct delivery *d, const struct relay_reply *rep)
{
	if (relay_reply_class(rep->code) == 2) {
		memset(&d->caps, 0, sizeof(d->caps));
		dlv_session_ready(d);
		return;
	}
	if (!dlv_refused_all(d, rep))
		dlv_unexpected(d, rep);
}

static void
dlv_on_mail(struct delivery *d, const struct relay_reply *rep)
{
	if (relay_reply_class(rep->code) == 2) {
		if (!d->caps.pipelining && dlv_send_rcpt(d, 0) < 0)
			return;
		dlv_enter(d, DLV_RCPT);
		return;
	}
	/* Pipelined RCPT and DATA replies that follow are read and ignored in DLV_QUIT. */
	if (!dlv_refused_all(d, rep))
		dlv_unexpected(d, rep);
}

static void
dlv_on_rcpt(struct delivery *d, const struct relay_reply *rep)
{
	size_t i = d->wire[d->rcpt_replied];

	switch (relay_reply_class(rep->code)) {
	case 2:
		d->tx[i] = TX_ACCEPTED;
		d->naccepted++;
		break;
	case 4:
		dlv_note_reply(d, rep->text);
		dlv_rcpt_final(d, i, RCPT_PENDING, rep->text);
		if (relay_reply_is_rcpt_overflow(rep))
			d->rcpt_overflow = true;
		break;
	case 5:
		dlv_note_reply(d, rep->text);
		dlv_rcpt_final(d, i, RCPT_FAILED, rep->text);
		break;
	default:
		dlv_unexpected(d, rep);
		return;
	}
	d->rcpt_replied++;
	if (d->rcpt_replied < d->nwire) {
		if (!d->caps.pipelining)
			dlv_send_rcpt(d, d->rcpt_replied);
		return;
	}
	if (d->bdat && d->naccepted > 0) {
		dlv_send_bdat(d);
	} else if (d->caps.pipelining && !d->bdat) {
		dlv_enter(d, DLV_DATA);		/* DATA was sent already */
	} else if (d->naccepted > 0) {
		if (dlv_send(d, "DATA\r\n", 6) == 0)
			dlv_enter(d, DLV_DATA);
	} else {
		dlv_conclude(d, NULL);
		dlv_finish(d, rep->code);
	}
}

static void dlv_fill_body(struct delivery *d);
static void dlv_send_body(struct delivery *d);

/* BDAT <size> LAST and the message after it: its reply is the end of data's. */
static void
dlv_send_bdat(struct delivery *d)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "BDAT %llu LAST\r\n", d->bdat_size);

	if (dlv_send(d, line, (size_t)n) < 0)
		return;
	d->bdat_header_left = d->bdat_header;
	dlv_send_body(d);
}

/* The reply to DATA or to the final dot decides for every accepted recipient. */
static void
dlv_settle_transaction(struct delivery *d, const struct relay_reply *rep)
{
	dlv_note_reply(d, rep->text);
	dlv_settle_accepted(d, rep);
	dlv_conclude(d, NULL);
	dlv_finish(d, rep->code);
}

static void
dlv_on_data(struct delivery *d, const struct relay_reply *rep)
{
	if (rep->code == 354 && d->naccepted == 0) {
		/*
		 * Pipelined DATA after every RCPT was refused, and the server
		 * still wants data: RFC 2920 3.1 says end it empty.
		 */
		dlv_conclude(d, NULL);
		if (dlv_send(d, ".\r\n", 3) == 0)
			dlv_end(d);
		return;
	}
	if (rep->code == 354) {
		dlv_send_body(d);
		return;
	}
	switch (relay_reply_class(rep->code)) {
	case 4:
	case 5:
		dlv_settle_transaction(d, rep);
		return;
	}
	dlv_unexpected(d, rep);
}

/* After 354 (or with BDAT at once): the body goes out, refilled from the write callback. */
static void
dlv_send_body(struct delivery *d)
{
	if ((d->chunk = malloc(DLV_CHUNK)) == NULL) {
		dlv_abort(d, errmap_from_errno(ENOMEM), "buffer for the message data");
		return;
	}
	relay_dot_init(&d->dot);
	d->data_pos = d->convfd >= 0 ? 0 : d->env->data_offset;
	dlv_enter(d, DLV_BODY);
	/* Nothing is read while the body goes out; write errors still show. */
	bufferevent_disable(d->bev, EV_READ);
	bufferevent_setwatermark(d->bev, EV_WRITE, DLV_BODY_LOWAT, 0);
	dlv_fill_body(d);
}

static void
dlv_on_dot(struct delivery *d, const struct relay_reply *rep)
{
	switch (relay_reply_class(rep->code)) {
	case 2:
	case 4:
	case 5:
		dlv_settle_transaction(d, rep);
		return;
	}
	dlv_unexpected(d, rep);
}

static void
dlv_on_quit(struct delivery *d, const struct relay_reply *rep)
{
	/* Earlier pipelined replies may come first; only the 221 ends it. */
	if (rep->code == 221)
		dlv_close(d);
}

/*
 * The body: pread from the data file, encode, append; refilled from the
 * write callback whenever the output falls below DLV_BODY_LOWAT.  The end
 * of data goes in the same piece of the output as the last octets of the
 * message: over TLS each piece added is a record of its own, and a dot
 * alone in a record is one more for both sides to make and read.  The
 * last octets are known by the size measured before MAIL (msg_size); a
 * file that turns out shorter ends at its end (pread returns 0).
 */
static bool dlv_end_data(struct delivery *d, struct evbuffer_iovec *vec);
static void dlv_await_dot(struct delivery *d);

static void
dlv_fill_body(struct delivery *d)
{
	struct evbuffer *out = bufferevent_get_output(d->bev);
	long long end = (long long)d->msg_size + (d->convfd >= 0 ? 0 : d->env->data_offset);

	while (d->state == DLV_BODY && evbuffer_get_length(out) < DLV_CHUNK) {
		struct evbuffer_iovec vec;
		size_t consumed;
		bool last;
		ssize_t n;

		n = pread(d->convfd >= 0 ? d->convfd : d->datafd, d->chunk, DLV_CHUNK, (off_t)d->data_pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			dlv_abort(d, errmap_from_errno(err), "reading the message data: %s", strerror(err));
			return;
		}
		last = n == 0 || d->data_pos + n >= end;
		if (evbuffer_reserve_space(out, RELAY_DOT_ENCODE_MAX((size_t)n) + RELAY_DOT_FINISH_MAX, &vec, 1) < 1) {
			dlv_abort(d, errmap_from_errno(ENOMEM), "buffering the message data");
			return;
		}
		/* The reservation covers the worst case, so all of it is taken. */
		if (d->bdat) {
			vec.iov_len = relay_bdat_encode(&d->bdat_header_left, d->chunk, (size_t)n, vec.iov_base);
			consumed = (size_t)n;
		} else {
			vec.iov_len = relay_dot_encode(&d->dot, d->chunk, (size_t)n, &consumed, vec.iov_base,
			    vec.iov_len - RELAY_DOT_FINISH_MAX);
		}
		d->data_pos += (long long)consumed;
		if (last && !dlv_end_data(d, &vec))
			return;
		evbuffer_commit_space(out, &vec, 1);
		if (last) {
			dlv_await_dot(d);
			return;
		}
	}
}

/*
 * The end of data, appended to vec (reserved with room for it).  A reply
 * read before the dot is even sent acknowledges nothing: false, the
 * delivery has ended.
 */
static bool
dlv_end_data(struct delivery *d, struct evbuffer_iovec *vec)
{
	if (evbuffer_get_length(bufferevent_get_input(d->bev)) > 0) {
		dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "%s spoke out of turn while %s",
		    d->hop.name, dlv_steps[d->state].doing);
		return false;
	}
	if (!d->bdat)			/* BDAT counted its octets: no end marker */
		vec->iov_len += relay_dot_finish(&d->dot, (char *)vec->iov_base + vec->iov_len, RELAY_DOT_FINISH_MAX);
	return true;
}

/* The dot is in the output: reading again, for its reply (enabling may read at once). */
static void
dlv_await_dot(struct delivery *d)
{
	struct timeval tv = { dlv_reply_timeout(d, DLV_DOT), 0 };

	free(d->chunk);
	d->chunk = NULL;
	dlv_enter(d, DLV_DOT);
	bufferevent_setwatermark(d->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(d->bev, &tv, &tv);
	bufferevent_enable(d->bev, EV_READ);
}

/*
 * Connection callbacks.
 */

static void
dlv_read_cb(struct bufferevent *bev, void *arg)
{
	struct delivery *d = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[RELAY_LINE_MAX + 1];

	/*
	 * command_timeout bounds each reply, not only each silence: a peer
	 * that trickles octets, lines or (after QUIT) replies does not extend
	 * it.  The same ending as a read timeout.
	 */
	if (!d->closing && bev == d->bev && dlv_steps[d->state].on_reply != NULL &&
	    dlv_monotonic_ms() >= d->reply_by) {
		dlv_event_cb(bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, d);
		return;
	}
	/*
	 * bev != d->bev: STARTTLS replaced d->bev by a filter on top of bev,
	 * or the delivery moved on to the next address: stop reading the old one.
	 */
	while (!d->closing && bev == d->bev) {
		struct evbuffer_ptr eol;
		struct relay_reply rep;
		size_t eol_len = 0, len;
		int rc;

		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > RELAY_LINE_MAX)
				dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "reply line from %s over %d octets while %s",
				    d->peer, RELAY_LINE_MAX, dlv_steps[d->state].doing);
			return;
		}
		len = (size_t)eol.pos;
		if (len > RELAY_LINE_MAX - eol_len) {	/* eol_len is 1 or 2 */
			dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "reply line from %s over %d octets while %s",
			    d->peer, RELAY_LINE_MAX, dlv_steps[d->state].doing);
			return;
		}
		evbuffer_remove(in, line, len + eol_len);
		line[len] = '\0';
		if (dlv_steps[d->state].on_reply == NULL) {
			dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "%s spoke out of turn while %s",
			    d->peer, dlv_steps[d->state].doing);
			return;
		}
		if ((rc = relay_reply_line(&d->reply, line, len)) < 0) {
			if (d->state == DLV_QUIT) {
				dlv_close(d);
				return;
			}
			dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "%s reply from %s while %s",
			    rc == -E2BIG ? "overlong" : "malformed", d->peer,
			    dlv_steps[d->state].doing);
			return;
		}
		if (rc == 0)
			continue;
		rep = d->reply;
		relay_reply_begin(&d->reply, dlv_steps[d->state].ehlo);
		if (d->state != DLV_QUIT)	/* the next pipelined reply has its own time */
			d->reply_by = dlv_monotonic_ms() + (long long)dlv_reply_timeout(d, d->state) * 1000;
		log_debug("relay-reply", "id=%s state=%s code=%d", d->id, dlv_steps[d->state].name, rep.code);
		dlv_steps[d->state].on_reply(d, &rep);
	}
}

static void
dlv_write_cb(struct bufferevent *bev, void *arg)
{
	struct delivery *d = arg;

	(void)bev;
	if (d->state == DLV_BODY && !d->closing)
		dlv_fill_body(d);
}

static void
dlv_event_cb(struct bufferevent *bev, short what, void *arg)
{
	const struct errmap_reply *row;
	struct delivery *d = arg;
	int err;

	if ((what & BEV_EVENT_CONNECTED) && d->state == DLV_HANDSHAKE) {
		dlv_tls_ready(d);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		struct timeval tv = { d->agent->command_timeout, 0 };

		bufferevent_set_timeouts(bev, &tv, &tv);
		bufferevent_enable(bev, EV_READ);
		if (tls_policy_is_wrapper(d->hop.tls))
			dlv_start_tls(d);	/* RFC 8314: TLS from the first byte */
		else
			dlv_enter(d, DLV_GREETING);
		return;
	}
	if (d->state == DLV_IDLE && !d->closing) {
		dlv_idle_event(d, what);
		return;
	}
	if (d->state == DLV_QUIT || d->closing) {
		dlv_close(d);
		return;
	}
	if (d->state == DLV_RSET) {
		dlv_connect_fresh(d, (what & BEV_EVENT_EOF) ? "closed the connection" :
		    (what & BEV_EVENT_TIMEOUT) ? "timed out" : "connection error");
		return;
	}
	if (d->state == DLV_HANDSHAKE) {
		dlv_tls_failed(d, what);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		err = ETIMEDOUT;
	else if (what & BEV_EVENT_EOF)
		err = ECONNRESET;
	else if ((err = EVUTIL_SOCKET_ERROR()) == 0)
		err = ECONNRESET;
	/* No answer, or gone before the greeting: RFC 5321 5 says try the next address. */
	if ((d->state == DLV_CONNECTING || d->state == DLV_GREETING) &&
	    dlv_next_address(d, (what & BEV_EVENT_EOF) ? "closed the connection" : strerror(err)))
		return;
	row = errmap_from_errno(err);
	if (what & BEV_EVENT_EOF)
		dlv_abort(d, row, "%s closed the connection while %s", d->peer,
		    dlv_steps[d->state].doing);
	else if (row->err != err)	/* the row does not name this errno: say it */
		dlv_abort(d, row, "%s: %s, while %s", d->peer, strerror(err),
		    dlv_steps[d->state].doing);
	else
		dlv_abort(d, row, "%s, while %s", d->peer, dlv_steps[d->state].doing);
}

/*
 * A delivery's life.
 */

/* Frees at once: from the reap event, or at delivery_agent_free(). */
static void
dlv_free(struct delivery *d)
{
	if (d->bev != NULL)
		bufferevent_free(d->bev);
	if (d->convfd >= 0)
		(void)close(d->convfd);
	sasl_client_free(d->sasl);
	nexthop_wipe(&d->hop);
	free(d->chunk);
	free(d->idx);
	free(d->tx);
	free(d->wire);
	free(d);
}

/* Never frees inside a callback of its own bufferevent: the reap event does. */
static void
dlv_close(struct delivery *d)
{
	struct delivery_agent *a = d->agent;

	if (d->closing)
		return;
	dlv_unidle(d);
	d->closing = true;
	if (d->bev != NULL) {
		bufferevent_disable(d->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(d->bev, NULL, NULL, NULL, NULL);
	}
	LIST_REMOVE(d, link);
	LIST_INSERT_HEAD(&a->dead, d, link);
	event_active(a->reap_ev, EV_TIMEOUT, 0);
}

static void
agent_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery_agent *a = arg;
	struct delivery *d;

	(void)fd;
	(void)what;
	while ((d = LIST_FIRST(&a->dead)) != NULL) {
		LIST_REMOVE(d, link);
		dlv_free(d);
	}
}

/*
 * Which recipients go on the wire: the pending ones whose address can be
 * written as a command.  One that cannot fails now, with its reason.
 */
static int
dlv_pick_rcpts(struct delivery *d)
{
	const struct envelope *env = d->env;
	char line[DLV_CMD_MAX];
	size_t i, j, n = d->only != NULL ? d->nonly : env->nrcpt;

	if (envelope_count(env, RCPT_PENDING) == 0 || n == 0)
		return 0;
	if ((d->idx = calloc(n, sizeof(*d->idx))) == NULL || (d->tx = calloc(n, sizeof(*d->tx))) == NULL ||
	    (d->wire = calloc(n, sizeof(*d->wire))) == NULL)
		return -ENOMEM;
	for (j = 0; j < n; j++) {
		size_t k;
		int len;

		i = d->only != NULL ? d->only[j] : j;
		if (i >= env->nrcpt || env->rcpt[i].state != RCPT_PENDING)
			continue;
		k = d->nrcpts++;
		d->idx[k] = i;
		d->tx[k] = TX_WAIT;
		/* A UTF-8 address may go if the message is SMTPUTF8: the server is asked after EHLO. */
		if ((len = relay_cmd_rcpt(line, sizeof(line), env->rcpt[i].addr, env->smtputf8, NULL)) < 0) {
			char reply[RELAY_REPLY_TEXT_MAX];

			relay_local_reply(reply, sizeof(reply), errmap_from_errno(-len),
			    "the recipient address cannot be sent");
			dlv_rcpt_final(d, k, RCPT_FAILED, reply);
			continue;
		}
		d->wire[d->nwire++] = k;
	}
	return 0;
}

/* The data file must hold at least the skipped Return-Path line. */
static int
dlv_measure(struct delivery *d)
{
	struct stat st;

	if (fstat(d->datafd, &st) < 0)
		return -errno;
	if (d->env->data_offset < 0 || (long long)st.st_size < d->env->data_offset)
		return -EBADMSG;
	/*
	 * SIZE= is the stored size, LF line endings: like Postfix, whose
	 * queue file has no CRs either.  RFC 1870 allows an estimate.
	 */
	d->msg_size = (unsigned long long)(st.st_size - d->env->data_offset);
	/* 8-bit octets, NUL, long lines: whether a server may take it as it is. */
	return mime7bit_scan_fd(d->datafd, d->env->data_offset, &d->scan);
}

/*
 * Connects to the address d->cur_addr.  An address with a host name
 * (from DNS) names the peer from now on: "mx1.example[192.0.2.1]:25" in
 * the log, in local replies and in the record's last-host.
 */
static int
dlv_connect(struct delivery *d)
{
	struct delivery_agent *a = d->agent;
	struct timeval rtv = { a->command_timeout, 0 };
	struct timeval ctv = { a->connect_timeout, 0 };
	const struct nexthop_addr *na = &d->hop.addrs[d->cur_addr];

	if (d->cur_addr >= d->hop.naddrs)
		return -EDESTADDRREQ;
	if (d->hop.no_connect)
		return -ENOTCONN;	/* ODMR: the client's connection is gone */
	if (na->host[0] != '\0')
		nexthop_describe(na, d->peer, sizeof(d->peer));
	else
		snprintf(d->peer, sizeof(d->peer), "%s", d->hop.name);
	d->conn_id = ++a->next_conn_id;
	d->reuses = 0;
	d->connected_at = dlv_now();
	d->bev = bufferevent_socket_new(a->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (d->bev == NULL)
		return -ENOMEM;
	bufferevent_setcb(d->bev, dlv_read_cb, dlv_write_cb, dlv_event_cb, d);
	/* While connecting, the write timeout is the connect timeout. */
	bufferevent_set_timeouts(d->bev, &rtv, &ctv);
	d->state = DLV_CONNECTING;
	if (bufferevent_socket_connect(d->bev, (const struct sockaddr *)&na->addr, (int)na->addrlen) < 0)
		return errno ? -errno : -ECONNREFUSED;
	return 0;
}

/* What one connection learned (EHLO, TLS, AUTH) does not carry over to the next. */
static void
dlv_forget_session(struct delivery *d)
{
	memset(&d->caps, 0, sizeof(d->caps));
	memset(&d->tls_info, 0, sizeof(d->tls_info));
	d->greeted = false;
	d->tls = false;
	d->starttls_refused = false;
	d->authenticated = false;
	sasl_client_free(d->sasl);
	d->sasl = NULL;
}

/*
 * The connection goes, this delivery stays: before another connection of
 * the same attempt (the next address, or a fresh one after a failed reuse).
 * May run inside a callback of the old bufferevent: freeing it there is
 * safe (libevent holds a reference while its callback runs).
 */
static void
dlv_drop_connection(struct delivery *d)
{
	if (d->bev != NULL) {
		bufferevent_disable(d->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(d->bev, NULL, NULL, NULL, NULL);
		bufferevent_free(d->bev);
		d->bev = NULL;
	}
	dlv_forget_session(d);
}

/*
 * RFC 5321 5: when an address does not answer (refused, timed out, closed
 * before the greeting, a 4xx or 5xx greeting), the next one is tried.  Returns
 * false when there is none left: the caller ends the attempt as before.
 */
static bool
dlv_next_address(struct delivery *d, const char *why)
{
	char quoted[RELAY_REPLY_TEXT_MAX + 8];
	int err;

	while (d->cur_addr + 1 < d->hop.naddrs) {
		log_warn("relay-next-host", "id=%s host=%s state=%s why=%s", d->id, d->peer,
		    dlv_steps[d->state].name, log_quote(quoted, sizeof(quoted), why));
		dlv_drop_connection(d);
		d->cur_addr++;
		if ((err = dlv_connect(d)) == 0)
			return true;
		why = strerror(-err);
	}
	return false;
}

/*
 * The idle connection taken for this delivery failed at RSET (refused,
 * 421, closed): as if none had been waiting, a fresh connection to the
 * first address.  No attempt is counted for it.
 */
static void
dlv_connect_fresh(struct delivery *d, const char *why)
{
	char quoted[RELAY_REPLY_TEXT_MAX + 8];
	int err;

	log_info("relay-reuse-failed", "id=%s conn=%u host=%s why=%s action=reconnect", d->id, d->conn_id,
	    d->peer, log_quote(quoted, sizeof(quoted), why));
	dlv_drop_connection(d);
	d->rset_pipelined = false;
	d->cur_addr = 0;
	if ((err = dlv_connect(d)) < 0 && !dlv_next_address(d, strerror(-err)))
		dlv_abort(d, errmap_from_errno(-err), "connecting to %s", d->peer);
}

/*
 * ODMR (RFC 2645): the connection exists and its peer greets next; the
 * greeting may be read already, so the read callback is triggered.
 */
static void
dlv_take_established(struct delivery *d)
{
	struct timeval tv = { d->agent->command_timeout, 0 };

	d->conn_id = ++d->agent->next_conn_id;
	d->reuses = 0;
	d->connected_at = dlv_now();
	bufferevent_setcb(d->bev, dlv_read_cb, dlv_write_cb, dlv_event_cb, d);
	bufferevent_set_timeouts(d->bev, &tv, &tv);
	dlv_enter(d, DLV_GREETING);
	bufferevent_enable(d->bev, EV_READ | EV_WRITE);
	bufferevent_trigger(d->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * Before the first command: which recipients, how big, whether the data
 * is fit to send as it is; then the connection.  A failure here reports
 * at once, inside delivery_start().
 */
static void
dlv_begin(struct delivery *d)
{
	struct delivery *idle;
	size_t idle_addr = 0;
	int err;

	if ((err = dlv_pick_rcpts(d)) < 0) {
		dlv_abort(d, errmap_from_errno(-err), "starting the delivery");
		return;
	}
	idle = d->bev == NULL ? dlv_find_idle(d, &idle_addr) : NULL;
	if (idle != NULL)
		log_info("relay-attempt", "id=%s attempt=%u host=%s rcpts=%zu tls=%s auth=%s reused=yes conn=%u",
		    d->id, d->env->attempts + 1, idle->peer, d->nwire, tls_policy_name(d->hop.tls),
		    d->hop.auth ? "yes" : "no", idle->conn_id);
	else
		log_info("relay-attempt", "id=%s attempt=%u host=%s rcpts=%zu tls=%s auth=%s reused=no", d->id,
		    d->env->attempts + 1, d->peer, d->nwire, tls_policy_name(d->hop.tls), d->hop.auth ? "yes" : "no");
	/* last-tls and last-auth describe this attempt, or none. */
	(void)envelope_set_last_tls(d->env, NULL, NULL, false, NULL);
	(void)envelope_set_last_auth(d->env, NULL, NULL);
	if (d->nwire == 0) {
		dlv_conclude(d, NULL);
		dlv_close(d);
		return;
	}
	if ((err = dlv_measure(d)) < 0) {
		char reply[RELAY_REPLY_TEXT_MAX];

		relay_local_reply(reply, sizeof(reply), errmap_from_errno(-err), "the message data file");
		if (err == -EBADMSG)	/* a data file shorter than its own header never heals */
			dlv_fail_all(d, reply);
		else
			dlv_defer_all(d, reply);
		dlv_close(d);
		return;
	}
	/* Nothing ran since dlv_find_idle(): idle is still waiting. */
	if (idle != NULL) {
		dlv_adopt(d, idle, idle_addr);
		return;
	}
	if (d->bev != NULL) {
		dlv_take_established(d);
		return;
	}
	/* Callbacks can only run once we return to the loop. */
	if ((err = dlv_connect(d)) < 0 && !dlv_next_address(d, strerror(-err)))
		dlv_abort(d, errmap_from_errno(-err), "connecting to %s", d->peer);
}

void
delivery_agent_quit(struct delivery_agent *a, const char *hop_name)
{
	struct delivery *d, *next;

	for (d = LIST_FIRST(&a->idle); d != NULL; d = next) {
		next = LIST_NEXT(d, link);
		if (!d->closing && strcmp(d->hop.name, hop_name) == 0) {
			dlv_unidle(d);
			dlv_end(d);
		}
	}
}

int
delivery_start(struct delivery_agent *a, const struct delivery_request *req)
{
	struct delivery *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	d->agent = a;
	d->hop = *req->hop;
	snprintf(d->peer, sizeof(d->peer), "%s", d->hop.name);
	d->done = req->done;
	d->arg = req->arg;
	d->env = req->env;
	d->datafd = req->datafd;
	d->only = req->rcpts;
	d->nonly = req->nrcpts;
	d->convfd = -1;
	snprintf(d->id, sizeof(d->id), "%s", req->id);
	d->bev = req->established;	/* NULL but for ODMR */
	LIST_INSERT_HEAD(&a->open, d, link);
	dlv_begin(d);
	return 0;
}

/*
 * The agent.
 */

/* EHLO needs a domain (RFC 5321 4.1.1.1); a host name that is none is replaced. */
static void
agent_pick_helo_name(struct delivery_agent *a, const char *name)
{
	if (name == NULL || addr_domain_valid(name) < 0) {
		log_warn("relay-helo-name", "hostname=%s action=\"using localhost\"", name ? name : "(none)");
		name = "localhost";
	}
	snprintf(a->helo_name, sizeof(a->helo_name), "%s", name);
}

int
delivery_agent_new(struct event_base *base, const struct cfg *cfg, struct spool *spool,
		struct delivery_agent **out)
{
	struct delivery_agent *a;
	int err;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -ENOMEM;
	a->base = base;
	a->spool = spool;
	a->connect_timeout = cfg->connect_timeout;
	a->command_timeout = cfg->command_timeout;
	a->data_done_timeout = cfg->data_done_timeout;
	a->idle_timeout = cfg->connection_idle_timeout;
	a->reuse_count_limit = cfg->connection_reuse_count_limit;
	a->reuse_time_limit = cfg->connection_reuse_time_limit;
	a->idle_max = cfg->max_deliveries;
	LIST_INIT(&a->idle);
	LIST_INIT(&a->open);
	LIST_INIT(&a->dead);
	agent_pick_helo_name(a, cfg->hostname);
	if ((err = sasl_ctx_new(&a->sasl)) < 0) {
		free(a);
		return err;
	}
	if ((a->reap_ev = event_new(base, -1, 0, agent_reap_cb, a)) == NULL) {
		sasl_ctx_free(a->sasl);
		free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

const char *
delivery_agent_helo_name(const struct delivery_agent *a)
{
	return a->helo_name;
}

/* QUIT written to the socket now (the loop runs no more), best effort. */
static void
dlv_quit_now(struct delivery *d)
{
	struct bufferevent *under = bufferevent_get_underlying(d->bev);
	SSL *ssl = under != NULL ? bufferevent_openssl_get_ssl(d->bev) : NULL;

	/*
	 * Through TLS, SSL_write() puts the record straight into the socket
	 * bufferevent's output: a flush of the filter would leave callbacks
	 * pending that no loop runs any more, holding the connection.
	 */
	if (ssl != NULL) {
		if (SSL_write(ssl, "QUIT\r\n", 6) <= 0) {
			ERR_clear_error();
			return;
		}
	} else if (bufferevent_write(d->bev, "QUIT\r\n", 6) < 0) {
		return;
	} else {
		under = d->bev;
	}
	/* The socket bufferevent drains its output only from the loop: this is its last write. */
	(void)evbuffer_unfreeze(bufferevent_get_output(under), 1);
	(void)evbuffer_write(bufferevent_get_output(under), bufferevent_getfd(under));
}

void
delivery_agent_free(struct delivery_agent *a)
{
	struct delivery *d;

	if (a == NULL)
		return;
	/* Idle connections say QUIT, without waiting for the 221. */
	while ((d = LIST_FIRST(&a->idle)) != NULL) {
		LIST_REMOVE(d, link);
		if (!d->closing && d->bev != NULL)
			dlv_quit_now(d);
		dlv_free(d);
	}
	/* Connections close; a delivery not yet reported is the caller's claim to give back. */
	while ((d = LIST_FIRST(&a->open)) != NULL) {
		LIST_REMOVE(d, link);
		dlv_free(d);
	}
	while ((d = LIST_FIRST(&a->dead)) != NULL) {
		LIST_REMOVE(d, link);
		dlv_free(d);
	}
	event_free(a->reap_ev);
	while (a->ntls > 0)
		tls_client_free(a->tls[--a->ntls].client);
	sasl_ctx_free(a->sasl);
	free(a);
}
