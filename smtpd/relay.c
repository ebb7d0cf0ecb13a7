/*
 * NAME
 *	relay - the queue runner and SMTP client inside spoolgate-smtpd
 * SYNOPSIS
 *	#include "relay.h"
 * DESCRIPTION
 *	See relay.h for what it does; this is how.
 *
 *	Finding work.  inotify names each record renamed into queue/ (a new
 *	message, or a deferred one given back): that one record is read, and
 *	it goes to the backlog when due, else it arms the timer of the
 *	earliest next-attempt.  Full scans of queue/ run from a periodic timer
 *	(scan_interval, the safety net), from that due timer, after lost
 *	inotify events, and from relay_kick() when inotify is unavailable.
 *	Scan requests are coalesced by a short timer (RELAY_SCAN_DELAY_MS).
 *	queue_scan() reads every record, so a scan is skipped while every
 *	delivery slot is busy; the due ids wait in a bounded backlog that
 *	feeds slots as they free up, and a new scan is made once the backlog
 *	ran dry after an overflow.
 *
 *	A delivery.  One claim, one connection, one state machine: the table
 *	dlv_steps says, for each state, what the delivery is waiting for and
 *	which function reads the reply; dlv_enter() is the only place the
 *	state changes.  Replies are read line by line (bounded) into the
 *	pure parser of relay_smtp.c.  The message body is streamed from the
 *	data file in RELAY_CHUNK pieces, refilled from the write low-water
 *	callback, so a message is never whole in memory.
 *
 *	Ending an attempt.  dlv_conclude() records every recipient's fate in
 *	the claimed envelope, decides the outcome (relay_settle) and hands
 *	the claim to a struct relay_finish, which goes through commitq: the
 *	record is written and synced on the committer thread, never on the
 *	loop.  The delivery keeps only its connection, to say QUIT.
 *
 *	Ownership.  A delivery owns its bufferevent and (until it concludes)
 *	its claim; it is freed from the reap event, never from inside one of
 *	its own callbacks.  A finish owns the claim from then on; it points
 *	back at the relay only to give the slot back, and relay_free() clears
 *	that pointer, so a done() that runs after relay_free() (commitq_free()
 *	comes later at shutdown) touches nothing that died.
 *
 *	Malformed replies.  A reply that breaks RFC 5321 4.2, or a line over
 *	RELAY_LINE_MAX, drops the connection and keeps the recipients pending
 *	with 451 4.5.0 (REPLY_REMOTE_PROTOCOL) and what happened.
 *
 *	Too many recipients.  A RCPT refused with 452 4.5.3 stays pending;
 *	when the same transaction delivered to others, the record is given
 *	back due at once (RFC 5321 4.5.3.1.10: send the rest in another
 *	transaction) instead of waiting for the backoff.
 * DIAGNOSTICS
 *	One key=value line per event, with id= where a message is concerned:
 *	relay-started; relay-attempt (attempt=, rcpts=); relay-rcpt (rcpt=,
 *	status=, reply=) for each recipient of an attempt; relay-sent,
 *	relay-deferred (next=, delay=, attempts=) and relay-failed (reply=,
 *	expired=) once the record is durable; relay-error (warn) for a
 *	connection or protocol failure; relay-abandoned at shutdown; and at
 *	error level relay-finish-failed: the record could not be written, it
 *	stays in active/ and the write is retried (recovery would return it
 *	to queue/ at the next start).  relay-state, relay-reply and
 *	relay-scan at debug level trace the state machine.
 * THREADS
 *	Event loop thread only, except the prepare/publish callbacks of a
 *	finish, which commitq runs on its thread while the finish is theirs.
 */
#include <sys/types.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "../common/addr.h"
#include "../common/cfg.h"
#include "../common/envelope.h"
#include "../common/errmap.h"
#include "../common/log.h"
#include "../common/mime7bit.h"
#include "../common/queue.h"
#include "../common/spool.h"
#include "commitq.h"
#include "nexthop.h"
#include "relay.h"
#include "relay_smtp.h"

#define RELAY_SCAN_DELAY_MS	50		/* coalesces a burst of triggers */
#define RELAY_BACKLOG_MAX	1024		/* due ids kept between scans */
#define RELAY_CHUNK		(64u << 10)	/* one pread of message data */
#define RELAY_BODY_LOWAT	(16u << 10)	/* refill the body below this */
#define RELAY_QUIT_WAIT		5		/* seconds we wait for 221 */
#define RELAY_CMD_MAX		1024		/* MAIL/RCPT lines: path 512 + parameters */
#define RELAY_FINISH_RETRY_MIN	5		/* seconds, doubled per failure */
#define RELAY_FINISH_RETRY_MAX	300
#define RELAY_HOST_MAX		300

struct delivery;
struct relay_finish;

struct relay {
	struct event_base      *base;
	const struct cfg       *cfg;
	struct spool	       *spool;
	struct commitq	       *cq;
	struct relay_policy	policy;

	struct nexthop		hop;		/* the smarthost: the only route */
	char			helo_name[RELAY_HOST_MAX];

	int			inotify_fd;	/* -1 when unavailable */
	struct event	       *inotify_ev;
	struct event	       *scan_ev;	/* the coalescing timer */
	struct event	       *interval_ev;	/* scan_interval, persistent */
	struct event	       *due_ev;		/* earliest next-attempt */
	long long		due_at;		/* when due_ev fires (unix s), 0 = not armed */
	struct event	       *reap_ev;	/* frees closed deliveries */
	bool			scan_scheduled;
	bool			scan_wanted;	/* rescan once the backlog is used up */

	char		      (*backlog)[SPOOL_ID_MAX];
	size_t			nbacklog, backlog_pos;

	unsigned		nclaims;	/* claims held by deliveries and finishes */
	LIST_HEAD(, delivery)	deliveries;	/* open */
	LIST_HEAD(, delivery)	dead;		/* closed, freed by reap_ev */
	LIST_HEAD(, relay_finish) finishes;	/* in commitq or waiting to retry */
};

enum dlv_state {
	DLV_CONNECTING,
	DLV_GREETING,
	DLV_EHLO,
	DLV_HELO,
	DLV_MAIL,
	DLV_RCPT,
	DLV_DATA,
	DLV_BODY,
	DLV_DOT,
	DLV_QUIT,
	DLV__COUNT
};

/* A recipient of this attempt. */
enum tx_state { TX_WAIT, TX_ACCEPTED, TX_FINAL };
struct dlv_rcpt {
	size_t		idx;		/* in env->rcpt */
	enum tx_state	st;
};

struct delivery {
	LIST_ENTRY(delivery) link;
	struct relay	       *relay;
	char			id[SPOOL_ID_MAX];
	struct queue_claim     *qc;		/* NULL once handed to a finish */
	struct envelope	       *env;		/* the claim's; NULL with it */
	int			datafd;		/* the claim's */
	struct bufferevent     *bev;		/* owned */
	enum dlv_state		state;
	bool			closing;

	struct relay_reply	reply;		/* being read */
	struct relay_caps	caps;
	char			last_reply[RELAY_REPLY_TEXT_MAX];

	struct dlv_rcpt	       *rcpts;		/* the pending recipients */
	size_t			nrcpts;
	size_t		       *wire;		/* rcpts sent, in order: replies come so */
	size_t			nwire, rcpt_replied, naccepted;
	size_t			ndelivered;	/* recipients sent in this attempt */
	bool			rcpt_overflow;	/* some got 452 "too many recipients" */
	bool			expire_only;	/* lifetime ran out while queued: no attempt */

	unsigned long long	msg_size;	/* of what goes after DATA */
	struct mime7bit_scan	scan;		/* of the stored data */
	int			convfd;		/* a 7-bit copy made for this server, or -1 */
	long long		data_pos;
	struct relay_dot	dot;
	char		       *chunk;		/* RELAY_CHUNK, while in DLV_BODY */
};

struct relay_finish {
	struct commitq_job	job;
	LIST_ENTRY(relay_finish) link;
	struct relay	       *relay;		/* NULL after relay_free() */
	struct queue_claim     *qc;		/* owned */
	enum queue_outcome	outcome;
	bool			keep_sent;
	bool			expired;
	char			id[SPOOL_ID_MAX];
	unsigned		attempts;
	unsigned		delay;
	long long		next_attempt;
	unsigned		retry_delay;
	struct event	       *retry_ev;
	char			reply[RELAY_REPLY_TEXT_MAX];
};

typedef void (*dlv_reply_fn)(struct delivery *, const struct relay_reply *);

static void dlv_on_greeting(struct delivery *, const struct relay_reply *);
static void dlv_on_ehlo(struct delivery *, const struct relay_reply *);
static void dlv_on_helo(struct delivery *, const struct relay_reply *);
static void dlv_on_mail(struct delivery *, const struct relay_reply *);
static void dlv_on_rcpt(struct delivery *, const struct relay_reply *);
static void dlv_on_data(struct delivery *, const struct relay_reply *);
static void dlv_on_dot(struct delivery *, const struct relay_reply *);
static void dlv_on_quit(struct delivery *, const struct relay_reply *);

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
	[DLV_MAIL] = { "mail", "waiting for the reply to MAIL FROM", false, dlv_on_mail },
	[DLV_RCPT] = { "rcpt", "waiting for the reply to RCPT TO", false, dlv_on_rcpt },
	[DLV_DATA] = { "data", "waiting for the reply to DATA", false, dlv_on_data },
	[DLV_BODY] = { "body", "sending the message", false, NULL },
	[DLV_DOT] = { "dot", "waiting for the reply to the end of data", false, dlv_on_dot },
	[DLV_QUIT] = { "quit", "waiting for the reply to QUIT", false, dlv_on_quit },
};

static void relay_request_scan(struct relay *r);
static void relay_dispatch(struct relay *r);
static void dlv_close(struct delivery *d);
static void dlv_end(struct delivery *d);
static void finish_submit(struct relay_finish *f);

static long long
now_seconds(void)
{
	return (long long)time(NULL);
}

static const char *
smarthost(const struct relay *r)
{
	return r->hop.name;
}

/*
 * The state machine.
 */

static void
dlv_enter(struct delivery *d, enum dlv_state next)
{
	log_debug("relay-state", "id=%s from=%s to=%s", d->id, dlv_steps[d->state].name,
	    dlv_steps[next].name);
	d->state = next;
	relay_reply_begin(&d->reply, dlv_steps[next].ehlo);
}

static void
dlv_note_reply(struct delivery *d, const char *text)
{
	snprintf(d->last_reply, sizeof(d->last_reply), "%s", text);
}

/* Records one recipient's fate in this attempt; TX_ACCEPTED ones wait for the end of data. */
static void
dlv_rcpt_final(struct delivery *d, struct dlv_rcpt *rc, enum rcpt_state state, const char *reply)
{
	int err;

	rc->st = TX_FINAL;
	if ((err = envelope_set_rcpt(d->env, rc->idx, state, reply)) < 0)
		log_error("relay-rcpt", "id=%s rcpt=%zu error=\"%s\"", d->id, rc->idx, strerror(-err));
}

/* Every recipient still open in this attempt (waiting or accepted) gets state and reply. */
static void
dlv_settle_open(struct delivery *d, enum rcpt_state state, const char *reply)
{
	size_t i;

	for (i = 0; i < d->nrcpts; i++)
		if (d->rcpts[i].st != TX_FINAL)
			dlv_rcpt_final(d, &d->rcpts[i], state, reply);
}

/* The accepted recipients take the verdict of the end of data (or of DATA itself). */
static void
dlv_settle_accepted(struct delivery *d, const struct relay_reply *rep)
{
	enum rcpt_state state = relay_reply_class(rep->code) == 2 ? RCPT_SENT :
	    relay_reply_class(rep->code) == 5 ? RCPT_FAILED : RCPT_PENDING;
	size_t i;

	for (i = 0; i < d->nrcpts; i++) {
		if (d->rcpts[i].st != TX_ACCEPTED)
			continue;
		dlv_rcpt_final(d, &d->rcpts[i], state, rep->text);
		if (state == RCPT_SENT)
			d->ndelivered++;
	}
}

static void
dlv_log_rcpts(const struct delivery *d)
{
	char addr[RELAY_REPLY_TEXT_MAX], reply[RELAY_REPLY_TEXT_MAX + 8];
	size_t i;

	for (i = 0; i < d->nrcpts; i++) {
		const struct envelope_rcpt *er = &d->env->rcpt[d->rcpts[i].idx];

		log_info("relay-rcpt", "id=%s rcpt=%s status=%s reply=%s", d->id,
		    log_quote(addr, sizeof(addr), er->addr), rcpt_state_name(er->state),
		    log_quote(reply, sizeof(reply), er->reply ? er->reply : ""));
	}
}

/*
 * last-reply in the record (and reply= in the log) should explain the
 * outcome: for a deferral the reply that kept a recipient pending, for a
 * failure the one that refused, not a 250 that came after them.
 */
static void
dlv_explain(struct delivery *d, enum queue_outcome outcome)
{
	enum rcpt_state want = outcome == QUEUE_DEFERRED ? RCPT_PENDING : RCPT_FAILED;
	size_t i;

	if (outcome == QUEUE_SENT)
		return;
	for (i = 0; i < d->env->nrcpt; i++) {
		const struct envelope_rcpt *er = &d->env->rcpt[i];

		if (er->state == want && er->reply != NULL) {
			dlv_note_reply(d, er->reply);
			if (envelope_set_last(d->env, smarthost(d->relay), d->last_reply) < 0)
				log_error("relay-rcpt", "id=%s error=\"%s\"", d->id, strerror(ENOMEM));
			return;
		}
	}
}

static void
relay_release_slot(struct relay *r)
{
	if (r->nclaims > 0)
		r->nclaims--;
	relay_dispatch(r);
}

/*
 * The attempt is over: every recipient still open stays pending with
 * open_reply, the envelope is settled and the claim goes to commitq.
 * Idempotent: once the claim is handed over, nothing is left to do.
 */
static void
dlv_conclude(struct delivery *d, const char *open_reply)
{
	struct relay *r = d->relay;
	struct relay_finish *f;
	struct relay_verdict v;
	int err;

	if (d->qc == NULL)
		return;
	if (open_reply != NULL) {
		dlv_settle_open(d, RCPT_PENDING, open_reply);
		dlv_note_reply(d, open_reply);
	}
	dlv_settle_open(d, RCPT_PENDING, d->last_reply[0] ? d->last_reply : NULL);
	if (d->expire_only)
		err = relay_expire(d->env, now_seconds(), &r->policy, &v);	/* the last attempt's record stays */
	else if ((err = envelope_set_last(d->env, smarthost(r), d->last_reply[0] ? d->last_reply : NULL)) == 0)
		err = relay_settle(d->env, now_seconds(), &r->policy, &v);
	if (err < 0 ||
	    (f = calloc(1, sizeof(*f))) == NULL) {
		err = err < 0 ? err : -ENOMEM;
		log_error("relay-finish-failed", "id=%s error=\"%s\" action=\"claim returned to queue/ unchanged\"",
		    d->id, strerror(-err));
		queue_claim_free(d->qc);
		d->qc = NULL;
		d->env = NULL;
		relay_release_slot(r);
		return;
	}
	if (v.outcome == QUEUE_DEFERRED && d->rcpt_overflow && d->ndelivered > 0) {
		/*
		 * RFC 5321 4.5.3.1.10: the server took what it could; the
		 * rest goes in the next transaction, now, not after a backoff.
		 * Each such round delivers someone, so the rounds end.
		 */
		d->env->next_attempt = now_seconds();
		v.delay = 0;
	}
	dlv_explain(d, v.outcome);
	dlv_log_rcpts(d);
	f->relay = r;
	f->qc = d->qc;
	f->outcome = v.outcome;
	f->expired = v.expired;
	f->delay = v.delay;
	f->keep_sent = r->cfg->keep_sent;
	f->attempts = d->env->attempts;
	f->next_attempt = d->env->next_attempt;
	f->retry_delay = RELAY_FINISH_RETRY_MIN;
	snprintf(f->id, sizeof(f->id), "%s", d->id);
	snprintf(f->reply, sizeof(f->reply), "%s", d->last_reply);
	d->qc = NULL;
	d->env = NULL;
	LIST_INSERT_HEAD(&r->finishes, f, link);
	finish_submit(f);
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
	if (d->qc != NULL) {
		char quoted[RELAY_REPLY_TEXT_MAX + 8];

		log_warn("relay-error", "id=%s host=%s state=%s reply=%s", d->id, smarthost(d->relay),
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
	    smarthost(d->relay), dlv_steps[d->state].doing, rep->text);
}

static int
dlv_send(struct delivery *d, const char *line, size_t len)
{
	if (bufferevent_write(d->bev, line, len) < 0) {
		dlv_abort(d, errmap_from_errno(ENOMEM), "buffering a command for %s", smarthost(d->relay));
		return -ENOMEM;
	}
	return 0;
}

static int
dlv_send_hello(struct delivery *d, const char *verb)
{
	char line[RELAY_CMD_MAX];
	int n;

	if ((n = relay_cmd_hello(line, sizeof(line), verb, d->relay->helo_name)) < 0) {
		dlv_abort(d, errmap_from_errno(-n), "%s %s: not a name to send", verb, d->relay->helo_name);
		return n;
	}
	return dlv_send(d, line, (size_t)n);
}

static int
dlv_send_rcpt(struct delivery *d, size_t w)
{
	const struct envelope_rcpt *er = &d->env->rcpt[d->rcpts[d->wire[w]].idx];
	char line[RELAY_CMD_MAX];
	int n;

	/* dlv_pick_rcpts() put only sendable addresses on the wire. */
	if ((n = relay_cmd_rcpt(line, sizeof(line), er->addr)) < 0) {
		dlv_abort(d, errmap_from_errno(-n), "formatting RCPT TO");
		return n;
	}
	return dlv_send(d, line, (size_t)n);
}

/* QUIT politely when the connection is still in a state to take it. */
static void
dlv_end(struct delivery *d)
{
	struct timeval tv = { RELAY_QUIT_WAIT, 0 };

	if (d->closing)
		return;
	if (d->bev == NULL || d->state == DLV_CONNECTING || d->state == DLV_BODY) {
		dlv_close(d);
		return;
	}
	if ((unsigned)tv.tv_sec > d->relay->cfg->command_timeout)
		tv.tv_sec = d->relay->cfg->command_timeout;
	dlv_enter(d, DLV_QUIT);
	bufferevent_set_timeouts(d->bev, &tv, &tv);
	if (bufferevent_write(d->bev, "QUIT\r\n", 6) < 0)
		dlv_close(d);
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
	if ((fd = r = spool_tmpfile(d->relay->spool, name)) >= 0) {
		(void)unlinkat(spool_dirfd(d->relay->spool, SPOOL_DIR_TMP), name, 0);
		r = mime7bit_convert(d->datafd, d->env->data_offset, fd, &after, why, sizeof(why));
	} else {
		snprintf(why, sizeof(why), "a temporary file for the conversion: %s", strerror(-r));
	}
	if (r < 0) {
		if (fd >= 0)
			(void)close(fd);
		log_warn("relay-convert-failed", "id=%s host=%s reason=%s error=%d why=%s", d->id,
		    smarthost(d->relay), dlv_conversion_reason(&d->scan), -r, log_quote(qwhy, sizeof(qwhy), why));
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
	snprintf(note, sizeof(note), "7bit for %s (%s), attempt %u", smarthost(d->relay),
	    dlv_conversion_reason(&d->scan), d->env->attempts + 1);
	if (envelope_set_conversion(d->env, note) < 0)
		log_warn("relay-convert-note", "id=%s error=\"%s\"", d->id, strerror(ENOMEM));
	log_info("relay-converted", "id=%s host=%s to=7bit reason=%s size=%llu converted-size=%llu", d->id,
	    smarthost(d->relay), dlv_conversion_reason(&d->scan), d->scan.size, after.size);
	return 0;
}

/*
 * MAIL FROM, and with PIPELINING every RCPT TO and DATA in the same write
 * (RFC 2920); the replies are then read in order.
 */
static void
dlv_start_mail(struct delivery *d)
{
	char line[RELAY_CMD_MAX], why[NEXTHOP_NAME_MAX + 96];
	size_t w;
	int n;

	if (dlv_prepare_body(d) < 0)
		return;
	if (d->caps.size && d->caps.size_max > 0 && d->msg_size > d->caps.size_max) {
		char reply[RELAY_REPLY_TEXT_MAX];

		snprintf(why, sizeof(why), "message of %llu bytes, %s accepts at most %llu",
		    d->msg_size, smarthost(d->relay), d->caps.size_max);
		relay_local_reply(reply, sizeof(reply), errmap_from_errno(EFBIG), why);
		dlv_fail_all(d, reply);
		dlv_end(d);
		return;
	}
	/* RFC 6152: an 8-bit body is announced as such; a converted copy is 7-bit. */
	n = relay_cmd_mail(line, sizeof(line), d->env->from, &d->caps, d->msg_size,
	    d->scan.eightbit && d->convfd < 0);
	if (n < 0) {
		char reply[RELAY_REPLY_TEXT_MAX];

		relay_local_reply(reply, sizeof(reply), errmap_from_errno(-n), "the sender address cannot be sent");
		dlv_fail_all(d, reply);
		dlv_end(d);
		return;
	}
	if (dlv_send(d, line, (size_t)n) < 0)
		return;
	if (d->caps.pipelining) {
		for (w = 0; w < d->nwire; w++)
			if (dlv_send_rcpt(d, w) < 0)
				return;
		if (dlv_send(d, "DATA\r\n", 6) < 0)
			return;
	}
	dlv_enter(d, DLV_MAIL);
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
		if (dlv_send_hello(d, "EHLO") == 0)
			dlv_enter(d, DLV_EHLO);
		return;
	}
	if (!dlv_refused_all(d, rep))
		dlv_unexpected(d, rep);
}

static void
dlv_on_ehlo(struct delivery *d, const struct relay_reply *rep)
{
	switch (relay_reply_class(rep->code)) {
	case 2:
		d->caps = rep->caps;
		dlv_start_mail(d);
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
		dlv_start_mail(d);
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
	struct dlv_rcpt *rc = &d->rcpts[d->wire[d->rcpt_replied]];

	switch (relay_reply_class(rep->code)) {
	case 2:
		rc->st = TX_ACCEPTED;
		d->naccepted++;
		break;
	case 4:
		dlv_note_reply(d, rep->text);
		dlv_rcpt_final(d, rc, RCPT_PENDING, rep->text);
		if (relay_reply_is_rcpt_overflow(rep))
			d->rcpt_overflow = true;
		break;
	case 5:
		dlv_note_reply(d, rep->text);
		dlv_rcpt_final(d, rc, RCPT_FAILED, rep->text);
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
	if (d->caps.pipelining) {
		dlv_enter(d, DLV_DATA);		/* DATA was sent already */
	} else if (d->naccepted > 0) {
		if (dlv_send(d, "DATA\r\n", 6) == 0)
			dlv_enter(d, DLV_DATA);
	} else {
		dlv_conclude(d, NULL);
		dlv_end(d);
	}
}

static void dlv_fill_body(struct delivery *d);

/* The reply to DATA or to the final dot decides for every accepted recipient. */
static void
dlv_settle_transaction(struct delivery *d, const struct relay_reply *rep)
{
	dlv_note_reply(d, rep->text);
	dlv_settle_accepted(d, rep);
	dlv_conclude(d, NULL);
	dlv_end(d);
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
		if ((d->chunk = malloc(RELAY_CHUNK)) == NULL) {
			dlv_abort(d, errmap_from_errno(ENOMEM), "buffer for the message data");
			return;
		}
		relay_dot_init(&d->dot);
		d->data_pos = d->convfd >= 0 ? 0 : d->env->data_offset;
		dlv_enter(d, DLV_BODY);
		/* Nothing is read while the body goes out; write errors still show. */
		bufferevent_disable(d->bev, EV_READ);
		bufferevent_setwatermark(d->bev, EV_WRITE, RELAY_BODY_LOWAT, 0);
		dlv_fill_body(d);
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
 * write callback whenever the output falls below RELAY_BODY_LOWAT.
 */
static void
dlv_fill_body(struct delivery *d)
{
	struct evbuffer *out = bufferevent_get_output(d->bev);

	while (d->state == DLV_BODY && evbuffer_get_length(out) < RELAY_CHUNK) {
		struct evbuffer_iovec vec;
		size_t consumed, produced;
		ssize_t n;

		n = pread(d->convfd >= 0 ? d->convfd : d->datafd, d->chunk, RELAY_CHUNK, (off_t)d->data_pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			dlv_abort(d, errmap_from_errno(err), "reading the message data: %s", strerror(err));
			return;
		}
		if (n == 0) {
			char tail[RELAY_DOT_FINISH_MAX];
			size_t len = relay_dot_finish(&d->dot, tail, sizeof(tail));
			struct timeval tv = { d->relay->cfg->command_timeout, 0 };

			free(d->chunk);
			d->chunk = NULL;
			if (evbuffer_add(out, tail, len) < 0) {
				dlv_abort(d, errmap_from_errno(ENOMEM), "buffering the end of data");
				return;
			}
			dlv_enter(d, DLV_DOT);
			bufferevent_setwatermark(d->bev, EV_WRITE, 0, 0);
			bufferevent_set_timeouts(d->bev, &tv, &tv);
			bufferevent_enable(d->bev, EV_READ);
			return;
		}
		if (evbuffer_reserve_space(out, RELAY_DOT_ENCODE_MAX((size_t)n), &vec, 1) < 1) {
			dlv_abort(d, errmap_from_errno(ENOMEM), "buffering the message data");
			return;
		}
		produced = relay_dot_encode(&d->dot, d->chunk, (size_t)n, &consumed, vec.iov_base, vec.iov_len);
		vec.iov_len = produced;
		evbuffer_commit_space(out, &vec, 1);
		/* The reservation covers the worst case, so all of it was taken. */
		d->data_pos += (long long)consumed;
	}
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

	while (!d->closing) {
		struct evbuffer_ptr eol;
		struct relay_reply rep;
		size_t eol_len = 0, len;
		int rc;

		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > RELAY_LINE_MAX)
				dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "reply line from %s over %d octets while %s",
				    smarthost(d->relay), RELAY_LINE_MAX, dlv_steps[d->state].doing);
			return;
		}
		len = (size_t)eol.pos;
		if (len > RELAY_LINE_MAX - eol_len) {	/* eol_len is 1 or 2 */
			dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "reply line from %s over %d octets while %s",
			    smarthost(d->relay), RELAY_LINE_MAX, dlv_steps[d->state].doing);
			return;
		}
		evbuffer_remove(in, line, len + eol_len);
		line[len] = '\0';
		if (dlv_steps[d->state].on_reply == NULL) {
			dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "%s spoke out of turn while %s",
			    smarthost(d->relay), dlv_steps[d->state].doing);
			return;
		}
		if ((rc = relay_reply_line(&d->reply, line, len)) < 0) {
			if (d->state == DLV_QUIT) {
				dlv_close(d);
				return;
			}
			dlv_abort(d, errmap_get(REPLY_REMOTE_PROTOCOL), "%s reply from %s while %s",
			    rc == -E2BIG ? "overlong" : "malformed", smarthost(d->relay),
			    dlv_steps[d->state].doing);
			return;
		}
		if (rc == 0)
			continue;
		rep = d->reply;
		relay_reply_begin(&d->reply, dlv_steps[d->state].ehlo);
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

	if (what & BEV_EVENT_CONNECTED) {
		struct timeval tv = { d->relay->cfg->command_timeout, 0 };

		bufferevent_set_timeouts(bev, &tv, &tv);
		bufferevent_enable(bev, EV_READ);
		dlv_enter(d, DLV_GREETING);
		return;
	}
	if (d->state == DLV_QUIT || d->closing) {
		dlv_close(d);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		err = ETIMEDOUT;
	else if (what & BEV_EVENT_EOF)
		err = ECONNRESET;
	else if ((err = EVUTIL_SOCKET_ERROR()) == 0)
		err = ECONNRESET;
	row = errmap_from_errno(err);
	if (what & BEV_EVENT_EOF)
		dlv_abort(d, row, "%s closed the connection while %s", smarthost(d->relay),
		    dlv_steps[d->state].doing);
	else if (row->err != err)	/* the row does not name this errno: say it */
		dlv_abort(d, row, "%s: %s, while %s", smarthost(d->relay), strerror(err),
		    dlv_steps[d->state].doing);
	else
		dlv_abort(d, row, "%s, while %s", smarthost(d->relay), dlv_steps[d->state].doing);
}

/*
 * A delivery's life.
 */

static void
dlv_free(struct delivery *d)
{
	if (d->qc != NULL) {
		/* Only at relay_free(): the claim goes back unchanged. */
		log_info("relay-abandoned", "id=%s action=\"claim returned to queue/\"", d->id);
		queue_claim_free(d->qc);
		d->qc = NULL;
		if (d->relay->nclaims > 0)
			d->relay->nclaims--;
	}
	if (d->bev != NULL)
		bufferevent_free(d->bev);
	if (d->convfd >= 0)
		(void)close(d->convfd);
	free(d->chunk);
	free(d->rcpts);
	free(d->wire);
	free(d);
}

/* Never frees inside a callback of its own bufferevent: the reap event does. */
static void
dlv_close(struct delivery *d)
{
	struct relay *r = d->relay;

	if (d->closing)
		return;
	d->closing = true;
	if (d->bev != NULL) {
		bufferevent_disable(d->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(d->bev, NULL, NULL, NULL, NULL);
	}
	LIST_REMOVE(d, link);
	LIST_INSERT_HEAD(&r->dead, d, link);
	event_active(r->reap_ev, EV_TIMEOUT, 0);
}

static void
relay_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	struct delivery *d;

	(void)fd;
	(void)what;
	while ((d = LIST_FIRST(&r->dead)) != NULL) {
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
	char line[RELAY_CMD_MAX];
	size_t i, n = envelope_count(env, RCPT_PENDING);

	if (n == 0)
		return 0;
	if ((d->rcpts = calloc(n, sizeof(*d->rcpts))) == NULL || (d->wire = calloc(n, sizeof(*d->wire))) == NULL)
		return -ENOMEM;
	for (i = 0; i < env->nrcpt; i++) {
		struct dlv_rcpt *rc;
		int len;

		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		rc = &d->rcpts[d->nrcpts++];
		rc->idx = i;
		if ((len = relay_cmd_rcpt(line, sizeof(line), env->rcpt[i].addr)) < 0) {
			char reply[RELAY_REPLY_TEXT_MAX];

			relay_local_reply(reply, sizeof(reply), errmap_from_errno(-len),
			    "the recipient address cannot be sent");
			dlv_rcpt_final(d, rc, RCPT_FAILED, reply);
			continue;
		}
		d->wire[d->nwire++] = d->nrcpts - 1;
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

static int
dlv_connect(struct delivery *d)
{
	struct relay *r = d->relay;
	struct timeval rtv = { r->cfg->command_timeout, 0 };
	struct timeval ctv = { r->cfg->connect_timeout, 0 };

	d->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (d->bev == NULL)
		return -ENOMEM;
	bufferevent_setcb(d->bev, dlv_read_cb, dlv_write_cb, dlv_event_cb, d);
	/* While connecting, the write timeout is the connect timeout. */
	bufferevent_set_timeouts(d->bev, &rtv, &ctv);
	d->state = DLV_CONNECTING;
	if (bufferevent_socket_connect(d->bev, (struct sockaddr *)&r->hop.addr, (int)r->hop.addrlen) < 0)
		return errno ? -errno : -ECONNREFUSED;
	return 0;
}

static void
relay_start(struct relay *r, const char *id)
{
	struct queue_claim *qc;
	struct delivery *d;
	int err;

	if ((err = queue_claim(r->spool, id, &qc)) < 0) {
		if (err != -ENOENT)	/* ENOENT: another runner has it */
			log_warn("relay-claim-failed", "id=%s error=\"%s\"", id, strerror(-err));
		return;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		log_error("relay-claim-failed", "id=%s error=\"%s\"", id, strerror(ENOMEM));
		queue_claim_free(qc);
		return;
	}
	d->relay = r;
	d->convfd = -1;
	d->qc = qc;
	d->env = queue_claim_envelope(qc);
	d->datafd = queue_claim_data_fd(qc);
	snprintf(d->id, sizeof(d->id), "%s", queue_claim_id(qc));
	r->nclaims++;
	LIST_INSERT_HEAD(&r->deliveries, d, link);

	if (relay_expired(d->env, now_seconds(), &r->policy)) {
		/* max_queue_lifetime ran out while it waited: it fails now, without another attempt. */
		d->expire_only = true;
		dlv_conclude(d, NULL);
		dlv_close(d);
		return;
	}
	if ((err = dlv_pick_rcpts(d)) < 0) {
		dlv_abort(d, errmap_from_errno(-err), "starting the delivery");
		return;
	}
	log_info("relay-attempt", "id=%s attempt=%u host=%s rcpts=%zu", d->id, d->env->attempts + 1,
	    smarthost(r), d->nwire);
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
	/* Callbacks can only run once we return to the loop. */
	if ((err = dlv_connect(d)) < 0)
		dlv_abort(d, errmap_from_errno(-err), "connecting to %s", smarthost(r));
}

/*
 * Finishing through commitq.
 */

static int
finish_prepare(void *arg)
{
	struct relay_finish *f = arg;

	return queue_finish_prepare(f->qc, f->outcome, f->keep_sent);
}

static int
finish_publish(void *arg, struct spool_dirset *dirs)
{
	struct relay_finish *f = arg;

	return queue_finish_publish(f->qc, dirs);
}

static void
finish_free(struct relay_finish *f)
{
	struct relay *r = f->relay;

	queue_claim_free(f->qc);
	if (f->retry_ev != NULL)
		event_free(f->retry_ev);
	if (r != NULL)
		LIST_REMOVE(f, link);
	free(f);
	if (r != NULL)
		relay_release_slot(r);
}

static void
finish_log(const struct relay_finish *f)
{
	char reply[RELAY_REPLY_TEXT_MAX + 8];

	log_quote(reply, sizeof(reply), f->reply);
	switch (f->outcome) {
	case QUEUE_SENT:
		log_info("relay-sent", "id=%s attempts=%u reply=%s", f->id, f->attempts, reply);
		break;
	case QUEUE_DEFERRED:
		log_info("relay-deferred", "id=%s attempts=%u next=%lld delay=%u reply=%s", f->id,
		    f->attempts, f->next_attempt, f->delay, reply);
		break;
	case QUEUE_FAILED:
		log_info("relay-failed", "id=%s attempts=%u expired=%s reply=%s", f->id, f->attempts,
		    f->expired ? "yes" : "no", reply);
		break;
	}
}

static void
finish_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish_submit(arg);
}

static void
finish_done(void *arg, int result)
{
	struct relay_finish *f = arg;
	struct relay *r = f->relay;
	struct timeval tv;
	int where;

	if (result == 0) {
		finish_log(f);
		finish_free(f);
		return;
	}
	if (r == NULL) {
		log_error("relay-finish-failed", "id=%s outcome=%s error=\"%s\" action=\"shutting down: claim "
		    "returned to queue/ unchanged\"", f->id, queue_outcome_name(f->outcome), strerror(-result));
		finish_free(f);
		return;
	}
	where = queue_locate(r->spool, f->id);
	if (where != SPOOL_DIR_ACTIVE) {
		/* Renamed into place, but the directory sync failed: nothing to redo. */
		log_error("relay-finish-failed", "id=%s outcome=%s error=\"%s\" action=\"record moved but its "
		    "directory was not synced\"", f->id, queue_outcome_name(f->outcome), strerror(-result));
		finish_free(f);
		return;
	}
	/*
	 * The record could not be written (a full disk, say).  It stays in
	 * active/, holding its slot, and the write is tried again: giving it
	 * back to queue/ now would deliver a sent message again, at once.
	 */
	log_error("relay-finish-failed", "id=%s outcome=%s error=\"%s\" action=\"record stays in active/; "
	    "retry in %us, or recovery returns it to queue/ at the next start\"", f->id,
	    queue_outcome_name(f->outcome), strerror(-result), f->retry_delay);
	if (f->retry_ev == NULL && (f->retry_ev = evtimer_new(r->base, finish_retry_cb, f)) == NULL) {
		finish_free(f);
		return;
	}
	tv.tv_sec = f->retry_delay;
	tv.tv_usec = 0;
	evtimer_add(f->retry_ev, &tv);
	f->retry_delay = f->retry_delay > RELAY_FINISH_RETRY_MAX / 2 ? RELAY_FINISH_RETRY_MAX : f->retry_delay * 2;
}

static void
finish_submit(struct relay_finish *f)
{
	int err;

	memset(&f->job, 0, sizeof(f->job));
	f->job.prepare = finish_prepare;
	f->job.publish = finish_publish;
	f->job.unpublish = NULL;	/* a rename into place is not undone: the sync is retried by whoever reads it */
	f->job.done = finish_done;
	f->job.arg = f;
	if ((err = commitq_submit(f->relay->cq, &f->job)) < 0) {
		log_error("relay-finish-failed", "id=%s outcome=%s error=\"%s\" action=\"claim returned to queue/ "
		    "unchanged\"", f->id, queue_outcome_name(f->outcome), strerror(-err));
		finish_free(f);
	}
}

/*
 * Finding work.
 */

struct scan_ctx {
	struct relay   *relay;
	long long	now;
	long long	earliest;	/* of the records not yet due; 0 = none */
	bool		overflow;
};

static int
scan_one(const char *id, long long next_attempt, void *arg)
{
	struct scan_ctx *sc = arg;
	struct relay *r = sc->relay;

	if (next_attempt > sc->now) {
		if (sc->earliest == 0 || next_attempt < sc->earliest)
			sc->earliest = next_attempt;
		return 0;
	}
	if (r->nbacklog >= RELAY_BACKLOG_MAX) {
		sc->overflow = true;
		return 0;	/* go on: the earliest deferred one still matters */
	}
	snprintf(r->backlog[r->nbacklog++], SPOOL_ID_MAX, "%s", id);
	return 0;
}

/* The due timer fires at the earliest next-attempt known. */
static void
relay_arm_due(struct relay *r, long long when, long long now)
{
	struct timeval tv = { when > now ? when - now : 0, 0 };

	if (r->due_at != 0 && r->due_at <= when)
		return;
	r->due_at = when;
	evtimer_add(r->due_ev, &tv);
}

static void
relay_scan(struct relay *r)
{
	struct scan_ctx sc = { .relay = r, .now = now_seconds() };
	int err;

	r->nbacklog = r->backlog_pos = 0;
	r->scan_wanted = false;
	if ((err = queue_scan(r->spool, scan_one, &sc)) < 0)
		log_error("relay-scan-failed", "error=\"%s\"", strerror(-err));
	r->scan_wanted = sc.overflow;
	r->due_at = 0;
	evtimer_del(r->due_ev);
	if (sc.earliest > 0)
		relay_arm_due(r, sc.earliest, sc.now);
	log_debug("relay-scan", "due=%zu overflow=%s next=%lld", r->nbacklog, sc.overflow ? "yes" : "no",
	    sc.earliest);
}

static void
relay_dispatch(struct relay *r)
{
	while (r->nclaims < r->cfg->max_deliveries && r->backlog_pos < r->nbacklog)
		relay_start(r, r->backlog[r->backlog_pos++]);
	if (r->nclaims < r->cfg->max_deliveries && r->backlog_pos >= r->nbacklog && r->scan_wanted)
		relay_request_scan(r);
}

static void
relay_scan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	(void)fd;
	(void)what;
	r->scan_scheduled = false;
	if (r->nclaims >= r->cfg->max_deliveries) {
		r->scan_wanted = true;	/* a slot that frees up asks again */
		return;
	}
	relay_scan(r);
	relay_dispatch(r);
}

static void
relay_request_scan(struct relay *r)
{
	struct timeval tv = { 0, RELAY_SCAN_DELAY_MS * 1000 };

	if (r->scan_scheduled)
		return;
	r->scan_scheduled = true;
	evtimer_add(r->scan_ev, &tv);
}

static void
relay_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	(void)fd;
	(void)what;
	if (r->due_ev != NULL && !evtimer_pending(r->due_ev, NULL))
		r->due_at = 0;
	relay_request_scan(r);
}

/*
 * One record that appeared in queue/ (a new message, or a deferred one
 * given back): due now goes to the backlog, due later arms the due timer.
 * Reading one record instead of scanning queue/ keeps a long queue (a
 * smarthost that is down for a day) from costing a full scan per arrival.
 */
static void
relay_consider(struct relay *r, const char *id)
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
		relay_request_scan(r);	/* the scan sets what is no record aside */
		return;
	}
	if (r->backlog_pos == r->nbacklog)
		r->backlog_pos = r->nbacklog = 0;	/* all taken: start over */
	if (env.next_attempt > now)
		relay_arm_due(r, env.next_attempt, now);
	else if (r->nbacklog < RELAY_BACKLOG_MAX)
		snprintf(r->backlog[r->nbacklog++], SPOOL_ID_MAX, "%s", id);
	else
		r->scan_wanted = true;
	envelope_free(&env);
}

static void
relay_inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct relay *r = arg;
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		const char *p = buf;

		while (p < buf + n) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW)
				relay_request_scan(r);	/* events were lost: look at everything */
			else if (ev->len > 0)
				relay_consider(r, ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_warn("relay-inotify", "error=\"%s\"", strerror(errno));
	relay_dispatch(r);
}

static int
relay_watch_queue(struct relay *r)
{
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", spool_path(r->spool), spool_dir_name(SPOOL_DIR_QUEUE));
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if ((r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		return -errno;
	if (inotify_add_watch(r->inotify_fd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
		return -errno;
	r->inotify_ev = event_new(r->base, r->inotify_fd, EV_READ | EV_PERSIST, relay_inotify_cb, r);
	if (r->inotify_ev == NULL || event_add(r->inotify_ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* EHLO needs a domain (RFC 5321 4.1.1.1); a host name that is none is replaced. */
static void
relay_pick_helo_name(struct relay *r)
{
	const char *name = r->cfg->hostname;

	if (name == NULL || addr_domain_valid(name) < 0) {
		log_warn("relay-helo-name", "hostname=%s action=\"using localhost\"", name ? name : "(none)");
		name = "localhost";
	}
	snprintf(r->helo_name, sizeof(r->helo_name), "%s", name);
}

int
relay_new(struct event_base *base, const struct cfg *cfg, struct spool *spool,
		struct commitq *cq, struct relay **out)
{
	struct timeval every;
	struct relay *r;
	int err;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	r->base = base;
	r->cfg = cfg;
	r->spool = spool;
	r->cq = cq;
	r->inotify_fd = -1;
	r->policy.retry_min = cfg->retry_min;
	r->policy.retry_max = cfg->retry_max;
	r->policy.max_queue_lifetime = cfg->max_queue_lifetime;
	LIST_INIT(&r->deliveries);
	LIST_INIT(&r->dead);
	LIST_INIT(&r->finishes);
	if ((err = nexthop_from_smarthost(cfg->smarthost, &r->hop)) < 0) {
		log_error("relay-config", "smarthost=%s error=\"not a numeric host:port or [ipv6]:port\"",
		    cfg->smarthost ? cfg->smarthost : "(none)");
		free(r);
		return err;
	}
	relay_pick_helo_name(r);
	r->backlog = calloc(RELAY_BACKLOG_MAX, sizeof(*r->backlog));
	r->scan_ev = evtimer_new(base, relay_scan_cb, r);
	r->due_ev = evtimer_new(base, relay_timer_cb, r);
	r->interval_ev = event_new(base, -1, EV_PERSIST, relay_timer_cb, r);
	r->reap_ev = event_new(base, -1, 0, relay_reap_cb, r);
	if (r->backlog == NULL || r->scan_ev == NULL || r->due_ev == NULL || r->interval_ev == NULL ||
	    r->reap_ev == NULL) {
		relay_free(r);
		return -ENOMEM;
	}
	every.tv_sec = cfg->scan_interval;
	every.tv_usec = 0;
	if ((err = relay_watch_queue(r)) < 0) {
		/* Without inotify the promise of "within a second" needs a poll. */
		log_warn("relay-inotify", "error=\"%s\" action=\"scanning queue/ every second\"", strerror(-err));
		every.tv_sec = 1;
	}
	event_add(r->interval_ev, &every);
	log_info("relay-started", "smarthost=%s helo=%s max_deliveries=%u scan_interval=%ld inotify=%s",
	    cfg->smarthost, r->helo_name, cfg->max_deliveries, (long)every.tv_sec,
	    r->inotify_ev != NULL ? "yes" : "no");
	relay_request_scan(r);	/* whatever the last run left in queue/ */
	*out = r;
	return 0;
}

void
relay_kick(struct relay *relay)
{
	/* With inotify the rename into queue/ has told us already. */
	if (relay != NULL && relay->inotify_ev == NULL)
		relay_request_scan(relay);
}

void
relay_free(struct relay *r)
{
	struct relay_finish *f;
	struct delivery *d;

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
	/* Deliveries in flight: connections closed, claims back to queue/ unchanged. */
	while ((d = LIST_FIRST(&r->deliveries)) != NULL) {
		LIST_REMOVE(d, link);
		dlv_free(d);
	}
	while ((d = LIST_FIRST(&r->dead)) != NULL) {
		LIST_REMOVE(d, link);
		dlv_free(d);
	}
	if (r->reap_ev != NULL)
		event_free(r->reap_ev);
	/*
	 * Finishes in commitq stay there: their done() runs later (at
	 * commitq_free) and must not find the relay.  Those waiting to retry
	 * a failed write give their claim back, as recovery would.
	 */
	while ((f = LIST_FIRST(&r->finishes)) != NULL) {
		LIST_REMOVE(f, link);
		f->relay = NULL;
		if (f->retry_ev != NULL && evtimer_pending(f->retry_ev, NULL))
			finish_free(f);
	}
	free(r->backlog);
	free(r);
}
