/*
 * NAME
 *	bounce - who hears of a failed or late message, and how
 * DESCRIPTION
 *	See bounce.h.  One decision function (bounce_decide) says whether a
 *	notice is due and why not; one function makes it (bounce_make).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/addr.h"
#include "../common/dsn.h"
#include "../common/log.h"
#include "bounce.h"

struct bounce {
	const struct cfg       *cfg;
	struct spool	       *spool;
	struct dsn_limiter	limiter;
};

int
bounce_new(const struct cfg *cfg, struct spool *spool, struct bounce **out)
{
	struct bounce *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -ENOMEM;
	b->cfg = cfg;
	b->spool = spool;
	dsn_limiter_init(&b->limiter, cfg->bounce_limit_per_hour);
	*out = b;
	return 0;
}

void
bounce_free(struct bounce *b)
{
	free(b);
}

void
bounce_note_attempt(struct envelope *env, const size_t *rcpts, size_t n, const char *host, long long now)
{
	size_t i;

	if (host == NULL || host[0] == '\0')
		return;
	for (i = 0; i < n; i++)
		if (rcpts[i] < env->nrcpt && env->rcpt[rcpts[i]].reply != NULL &&
		    envelope_set_rcpt_at(env, rcpts[i], host, now) < 0)
			log_warn("dsn-failed", "id=%s error=\"cannot record the host of a recipient\"", env->id);
}

void
bounce_note_relayed(struct envelope *env, const size_t *rcpts, size_t n, bool dsn_passed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct envelope_rcpt *r = rcpts[i] < env->nrcpt ? &env->rcpt[rcpts[i]] : NULL;

		if (r == NULL || r->state != RCPT_SENT || r->success != NULL ||
		    !dsn_notify_wants(r->notify, DSN_NOTIFY_SUCCESS))
			continue;
		if (envelope_set_rcpt_success(env, rcpts[i], dsn_passed ? "relayed none passed-on" : "relayed due") < 0)
			log_error("dsn-failed", "id=%s error=\"%s\"", env->id, strerror(ENOMEM));
	}
}

/* Every recipient whose success notice is due gets value ("<id>", "none <why>") after its action. */
static int
mark_success(struct envelope *env, const char *value)
{
	char line[ENVELOPE_ID_MAX + 48];
	size_t i, action;
	int err;

	for (i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		if (r->state != RCPT_SENT || r->success == NULL || strcmp(strchr(r->success, ' '), " due") != 0)
			continue;
		action = strcspn(r->success, " ");
		snprintf(line, sizeof(line), "%.*s %s", (int)action, r->success, value);
		if ((err = envelope_set_rcpt_success(env, i, line)) < 0)
			return err;
	}
	return 0;
}

static const char *
kind_name(bool delayed, bool success)
{
	return success ? "success" : delayed ? "delayed" : "failed";
}

/* What a notice of this kind was, into the record: "dsn:", "dsn-delayed:" or rcpt-success. */
static int
record_notice(struct envelope *env, bool delayed, bool success, const char *value)
{
	return success ? mark_success(env, value) : envelope_set_dsn(env, delayed, value);
}

static const char *
sender_of(const struct envelope *env, char *buf, size_t len)
{
	return log_quote(buf, len, env->from);
}

/* Records "none <why>" and says so in the log (reason=). */
static void
bounce_suppress(struct envelope *env, bool delayed, bool success, const char *why)
{
	char value[32], to[300];

	snprintf(value, sizeof(value), "none %s", why);
	if (record_notice(env, delayed, success, value) < 0)
		log_error("dsn-failed", "id=%s error=\"%s\"", env->id, strerror(ENOMEM));
	log_info("dsn-suppressed", "id=%s to=%s kind=%s reason=%s", env->id, sender_of(env, to, sizeof(to)),
	    kind_name(delayed, success), why);
}

/* Is a notice of this kind due for env now?  No: false (with nothing recorded). */
static bool
bounce_due(const struct bounce *b, const struct envelope *env, enum queue_outcome outcome, long long now)
{
	if (outcome == QUEUE_FAILED)
		return env->dsn == NULL && envelope_count(env, RCPT_FAILED) > 0;
	if (outcome != QUEUE_DEFERRED || b->cfg->delay_warning_time == 0 || env->dsn_delayed != NULL)
		return false;
	return envelope_count(env, RCPT_PENDING) > 0 && now - env->created >= (long long)b->cfg->delay_warning_time;
}

/* The local mailbox of a sender in local_domains: 1, 0 (a remote sender), or -ENOENT. */
static int
local_sender_mailbox(const struct bounce *b, const char *from, char *mbox, size_t len)
{
	int at = addr_split(from);

	if (at >= 0 && !cfg_domain_is_local(b->cfg, from + at + 1))
		return 0;
	if (at < 0)
		snprintf(mbox, len, "postmaster");	/* <Postmaster> alone, as smtpd takes it */
	else if (addr_mailbox_name(from, mbox, len) < 0)
		return -ENOENT;
	return cfg_mailbox_is_known(b->cfg, mbox) ? 1 : -ENOENT;
}

/* The notice as a spool_msg bound for the sender's mailbox or the relay. */
static int
bounce_make(struct bounce *b, struct envelope *env, int datafd, bool delayed, bool success, long long now,
	    const char *mbox, struct spool_msg **out)
{
	struct spool_msg *msg;
	struct envelope denv;
	struct dsn_request req = {
		.env = env, .delayed = delayed, .success = success, .now = now, .datafd = datafd, .data_offset = env->data_offset,
		.hostname = b->cfg->hostname != NULL ? b->cfg->hostname : spool_hostname(b->spool),
		.expires = env->created + (long long)b->cfg->max_queue_lifetime,
		.full_max = b->cfg->dsn_full_max,
	};
	char origin[ENVELOPE_ID_MAX + 16], *text;
	size_t len;
	int err;

	if ((err = spool_msg_create(b->spool, mbox != NULL ? "" : NULL, &msg)) < 0)
		return err;
	req.id = spool_msg_id(msg);
	if ((err = dsn_build(&req, &text, &len)) < 0) {
		spool_msg_free(msg);
		return err;
	}
	err = spool_msg_write(msg, text, len);
	free(text);
	if (err == 0 && mbox != NULL) {
		err = spool_msg_deliver_local(msg, mbox);
	} else if (err == 0) {
		snprintf(origin, sizeof(origin), "dsn %s", env->id);
		if ((err = envelope_init(&denv, spool_msg_id(msg), "", origin)) == 0) {
			denv.created = now;
			if ((err = envelope_add_rcpt(&denv, env->from)) == 0)
				err = spool_msg_queue(msg, &denv);
			envelope_free(&denv);
		}
	}
	if (err == 0)
		err = record_notice(env, delayed, success, spool_msg_id(msg));
	if (err < 0) {
		spool_msg_free(msg);
		return err;
	}
	*out = msg;
	return 0;
}

/*
 * The common path of every notice: who may not get one (recorded as
 * "none <why>"), else the notice itself.
 */
static struct spool_msg *
bounce_send(struct bounce *b, struct envelope *env, int datafd, bool delayed, bool success, long long now)
{
	char mbox[ADDR_MAILBOX_MAX + 1], to[300];
	struct spool_msg *msg = NULL;
	int local, err;

	if (env->from == NULL || env->from[0] == '\0') {
		bounce_suppress(env, delayed, success, "null-sender");
		return NULL;
	}
	if (env->rejected != NULL) {
		bounce_suppress(env, delayed, success, "rejected");	/* the writer saw the error */
		return NULL;
	}
	if (!success && dsn_recipients_wanting(env, delayed) == 0) {
		bounce_suppress(env, delayed, success, "notify");	/* RFC 3461 NOTIFY=NEVER, or no FAILURE/DELAY */
		return NULL;
	}
	if ((local = local_sender_mailbox(b, env->from, mbox, sizeof(mbox))) < 0) {
		bounce_suppress(env, delayed, success, "no-mailbox");
		return NULL;
	}
	if (!dsn_limiter_allow(&b->limiter, env->from, now)) {
		bounce_suppress(env, delayed, success, "cap");
		return NULL;
	}
	if ((err = bounce_make(b, env, datafd, delayed, success, now, local ? mbox : NULL, &msg)) < 0) {
		log_error("dsn-failed", "id=%s to=%s kind=%s error=\"%s\"", env->id, sender_of(env, to, sizeof(to)),
		    kind_name(delayed, success), strerror(-err));
		if (record_notice(env, delayed, success, "none error") < 0)
			log_error("dsn-failed", "id=%s error=\"%s\"", env->id, strerror(ENOMEM));
		return NULL;
	}
	log_info("dsn-queued", "id=%s dsn=%s to=%s kind=%s via=%s", env->id, spool_msg_id(msg),
	    sender_of(env, to, sizeof(to)), kind_name(delayed, success), local ? "mailbox" : "relay");
	return msg;
}

struct spool_msg *
bounce_for_outcome(struct bounce *b, struct envelope *env, int datafd, enum queue_outcome outcome,
		   long long now)
{
	if (!bounce_due(b, env, outcome, now))
		return NULL;
	return bounce_send(b, env, datafd, outcome == QUEUE_DEFERRED, false, now);
}

struct spool_msg *
bounce_for_success(struct bounce *b, struct envelope *env, int datafd, long long now)
{
	if (dsn_recipients_succeeded(env) == 0)
		return NULL;
	return bounce_send(b, env, datafd, false, true, now);
}
