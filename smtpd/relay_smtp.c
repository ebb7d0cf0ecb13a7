/*
 * NAME
 *	relay_smtp - the pure pieces of the relay's SMTP client
 * SYNOPSIS
 *	#include "relay_smtp.h"
 * DESCRIPTION
 *	See relay_smtp.h.  Nothing here touches a socket, a clock or a file:
 *	every input arrives as an argument, so tests/unit/test_relay_smtp.c
 *	can feed it anything a hostile or broken server might send.
 * SECURITY
 *	Reply lines come from the network: every length is checked before
 *	use, with the "len > size - used" form that cannot overflow, and
 *	reply text is sanitised before it reaches an envelope record or a log.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/errmap.h"
#include "../common/envelope.h"
#include "../common/queue.h"
#include "relay_smtp.h"

/*
 * Replies.
 */

void
relay_reply_begin(struct relay_reply *r, bool ehlo)
{
	memset(r, 0, sizeof(*r));
	r->ehlo = ehlo;
}

int
relay_reply_class(int code)
{
	int c = code / 100;

	return code >= 200 && code <= 599 ? c : 0;
}

bool
relay_reply_is_rcpt_overflow(const struct relay_reply *r)
{
	return r->code == 452 && (r->esc[0] == '\0' || strcmp(r->esc, "4.5.3") == 0);
}

/* RFC 5321 4.2: first digit 2..5, second 0..5, third 0..9. */
static int
reply_code(const char *line, size_t len)
{
	if (len < 3)
		return -1;
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

static size_t
digits(const char *s, size_t len, size_t max)
{
	size_t n = 0;

	while (n < len && n <= max && s[n] >= '0' && s[n] <= '9')
		n++;
	return n;
}

/*
 * RFC 3463: class "." subject "." detail, subject and detail 1..3 digits,
 * class equal to the reply's first digit.  Returns its length or 0.
 */
static size_t
enhanced_code(int code, const char *s, size_t len)
{
	size_t i = 0, n;

	if (len < 5 || s[0] != '0' + code / 100 || s[1] != '.')
		return 0;
	i = 2;
	if ((n = digits(s + i, len - i, 3)) == 0 || n > 3)
		return 0;
	i += n;
	if (i >= len || s[i] != '.')
		return 0;
	i++;
	if ((n = digits(s + i, len - i, 3)) == 0 || n > 3)
		return 0;
	i += n;
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

/* Appends s to the reply text: control and 8-bit octets become '?'. */
static void
reply_append(struct relay_reply *r, const char *s, size_t len)
{
	const size_t cap = sizeof(r->text) - 1;
	size_t i;

	if (r->cut)
		return;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (r->textlen >= cap) {
			memcpy(r->text + cap - 3, "...", 3);
			r->cut = true;
			break;
		}
		r->text[r->textlen++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	r->text[r->textlen] = '\0';
}

static bool
keyword_is(const char *s, size_t len, const char *kw)
{
	return strlen(kw) == len && strncasecmp(s, kw, len) == 0;
}

/* AUTH's mechanisms, appended (a server may send AUTH and AUTH= lines); cut when too long. */
static void
reply_add_auth_mechs(struct relay_caps *caps, const char *s, size_t len)
{
	size_t have = strlen(caps->auth_mechs), i;

	caps->auth = true;
	for (i = 0; i < len && have + 2 < sizeof(caps->auth_mechs); i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 0 && have > 0)
			caps->auth_mechs[have++] = ' ';
		caps->auth_mechs[have++] = c < 0x20 || c >= 0x7f ? ' ' : (char)c;
	}
	caps->auth_mechs[have] = '\0';
}

/* One EHLO line after the greeting line: "KEYWORD[ param...]". */
static void
reply_parse_capability(struct relay_caps *caps, const char *s, size_t len)
{
	size_t kwlen = 0, i, n;
	unsigned long long v = 0;

	while (kwlen < len && s[kwlen] != ' ')
		kwlen++;
	if (keyword_is(s, kwlen, "PIPELINING")) {
		caps->pipelining = true;
	} else if (keyword_is(s, kwlen, "STARTTLS")) {
		caps->starttls = true;
	} else if (keyword_is(s, kwlen, "AUTH")) {
		for (i = kwlen; i < len && s[i] == ' '; i++)
			;
		reply_add_auth_mechs(caps, s + i, len - i);
	} else if (kwlen >= 5 && strncasecmp(s, "AUTH=", 5) == 0) {
		reply_add_auth_mechs(caps, s + 5, len - 5);
	} else if (keyword_is(s, kwlen, "8BITMIME")) {
		caps->eightbitmime = true;
	} else if (keyword_is(s, kwlen, "DSN")) {
		caps->dsn = true;
	} else if (keyword_is(s, kwlen, "SMTPUTF8")) {
		caps->smtputf8 = true;
	} else if (keyword_is(s, kwlen, "CHUNKING")) {
		caps->chunking = true;
	} else if (keyword_is(s, kwlen, "BINARYMIME")) {
		caps->binarymime = true;
	} else if (keyword_is(s, kwlen, "SIZE")) {
		caps->size = true;
		caps->size_max = 0;
		i = kwlen;
		while (i < len && s[i] == ' ')
			i++;
		/* RFC 1870: an absent, zero or unreadable limit means none. */
		n = digits(s + i, len - i, 20);
		if (n == 0 || i + n != len)
			return;
		for (size_t k = 0; k < n; k++) {
			unsigned d = (unsigned)(s[i + k] - '0');

			if (v > (ULLONG_MAX - d) / 10)
				return;
			v = v * 10 + d;
		}
		caps->size_max = v;
	}
}

int
relay_reply_line(struct relay_reply *r, const char *line, size_t len)
{
	const char *text;
	size_t textlen, esclen;
	int code;
	bool last;

	if (r->done)
		return -EPROTO;
	if (len > RELAY_LINE_MAX - 2 || r->nlines >= RELAY_REPLY_LINES_MAX)
		return -E2BIG;
	if ((code = reply_code(line, len)) < 0)
		return -EPROTO;
	if (len > 3 && line[3] != '-' && line[3] != ' ')
		return -EPROTO;
	if (r->nlines > 0 && code != r->code)
		return -EPROTO;
	last = len == 3 || line[3] == ' ';
	text = len > 4 ? line + 4 : "";
	textlen = len > 4 ? len - 4 : 0;

	if (r->nlines == 0) {
		char num[4] = { line[0], line[1], line[2], '\0' };

		r->code = code;
		if ((esclen = enhanced_code(code, text, textlen)) > 0 && esclen < sizeof(r->esc)) {
			memcpy(r->esc, text, esclen);
			r->esc[esclen] = '\0';
		}
		reply_append(r, num, 3);
	} else {
		if (r->ehlo)
			reply_parse_capability(&r->caps, text, textlen);
		/* "550-5.1.1 a" "550 5.1.1 b" reads better as "550 5.1.1 a b". */
		esclen = strlen(r->esc);
		if (esclen > 0 && textlen >= esclen && memcmp(text, r->esc, esclen) == 0 &&
		    (textlen == esclen || text[esclen] == ' ')) {
			text += esclen;
			textlen -= esclen;
			while (textlen > 0 && *text == ' ') {
				text++;
				textlen--;
			}
		}
	}
	if (textlen > 0) {
		reply_append(r, " ", 1);
		reply_append(r, text, textlen);
	}
	r->nlines++;
	r->done = last;
	return last ? 1 : 0;
}

/*
 * DATA encoding.
 */

void
relay_dot_init(struct relay_dot *st)
{
	st->mid_line = false;
	st->cr = false;
}

/* The wire form of one input octet; at most 4 octets ("\r\n.." after a CR). */
static size_t
dot_octet(struct relay_dot *st, unsigned char c, char o[4])
{
	size_t n = 0;

	if (st->cr) {
		st->cr = false;
		st->mid_line = false;
		o[n++] = '\r';
		o[n++] = '\n';
		if (c == '\n')
			return n;	/* that CR was half of a CRLF */
	}
	if (c == '\r') {
		st->cr = true;		/* CRLF or bare CR: decided by the next octet */
		return n;
	}
	if (c == '\n') {
		st->mid_line = false;
		o[n++] = '\r';
		o[n++] = '\n';
		return n;
	}
	if (!st->mid_line && c == '.')
		o[n++] = '.';
	st->mid_line = true;
	o[n++] = (char)c;
	return n;
}

size_t
relay_dot_encode(struct relay_dot *st, const char *in, size_t inlen, size_t *consumed,
		char *out, size_t outsize)
{
	size_t i = 0, used = 0;

	while (i < inlen) {
		/* Fast path: the middle of a line is copied as it is. */
		if (st->mid_line && !st->cr) {
			size_t run = 0, room = outsize - used;

			while (run < inlen - i && run < room && in[i + run] != '\r' && in[i + run] != '\n')
				run++;
			if (run > 0) {
				memcpy(out + used, in + i, run);
				used += run;
				i += run;
				continue;
			}
		}
		{
			struct relay_dot save = *st;
			char o[4];
			size_t n = dot_octet(st, (unsigned char)in[i], o);

			if (n > outsize - used) {
				*st = save;
				break;
			}
			memcpy(out + used, o, n);
			used += n;
			i++;
		}
	}
	*consumed = i;
	return used;
}

size_t
relay_dot_finish(struct relay_dot *st, char *out, size_t outsize)
{
	size_t n = 0;

	if (outsize < RELAY_DOT_FINISH_MAX)
		return 0;
	if (st->cr || st->mid_line) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	memcpy(out + n, ".\r\n", 3);
	n += 3;
	relay_dot_init(st);
	return n;
}

/*
 * Commands.
 */

/*
 * The envelope was checked when it was parsed, but it crossed a process
 * boundary: a CR or LF here would let a record inject SMTP commands.
 */
static int
check_word(const char *s, bool allow_space, bool utf8)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f || (*p == ' ' && !allow_space))
			return -EINVAL;
		if (*p >= 0x80 && !utf8)
			return -EILSEQ;		/* only under SMTPUTF8 (RFC 6531) */
		if (*p >= 0x80 && (p[0] == 0xc2 && p[1] < 0xa0))
			return -EINVAL;		/* a C1 control */
	}
	return 0;
}

static int
finish_line(int n, size_t size)
{
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= size)
		return -ENAMETOOLONG;
	return n;
}

int
relay_cmd_mail(char *buf, size_t size, const char *from, const struct relay_caps *caps,
		unsigned long long msgsize, bool eightbit, bool smtputf8, const char *params)
{
	char size_param[32] = "";
	bool utf8 = smtputf8 && caps->smtputf8;
	int r;

	/* A quoted local part may hold spaces; angle brackets end the path. */
	if ((r = check_word(from, true, utf8)) < 0)
		return r;
	if (caps->size)
		snprintf(size_param, sizeof(size_param), " SIZE=%llu", msgsize);
	return finish_line(snprintf(buf, size, "MAIL FROM:<%s>%s%s%s%s\r\n", from, size_param,
	    caps->eightbitmime && eightbit ? " BODY=8BITMIME" : "", utf8 ? " SMTPUTF8" : "", params ? params : ""), size);
}

void
relay_dsn_mail_params(char *out, size_t size, const struct relay_caps *caps, const struct envelope *env)
{
	size_t n = 0;

	out[0] = '\0';
	if (!caps->dsn)
		return;
	if (env->dsn_ret != DSN_RET_UNSPECIFIED)
		n += (size_t)snprintf(out + n, size - n, " RET=%s", dsn_ret_name(env->dsn_ret));
	if (env->dsn_envid != NULL && n < size)
		snprintf(out + n, size - n, " ENVID=%s", env->dsn_envid);
}

void
relay_dsn_rcpt_params(char *out, size_t size, const struct relay_caps *caps, const struct envelope_rcpt *r)
{
	char notify[DSN_NOTIFY_TEXT_MAX];
	size_t n = 0;

	out[0] = '\0';
	if (!caps->dsn)
		return;
	if (r->notify != 0) {
		dsn_notify_format(r->notify, notify, sizeof(notify));
		n += (size_t)snprintf(out + n, size - n, " NOTIFY=%s", notify);
	}
	if (r->orcpt != NULL && n < size)
		snprintf(out + n, size - n, " ORCPT=%s", r->orcpt);
}

int
relay_cmd_add_param(char *buf, size_t size, size_t len, const char *param)
{
	size_t plen = strlen(param);

	if (len < 2 || len >= size || buf[len - 2] != '\r' || buf[len - 1] != '\n')
		return -EINVAL;
	if (plen + 1 > size - len - 1)
		return -ENAMETOOLONG;
	memcpy(buf + len - 2, " ", 1);
	memcpy(buf + len - 1, param, plen);
	memcpy(buf + len - 1 + plen, "\r\n", 3);
	return (int)(len + 1 + plen);
}

size_t
relay_bdat_encode(unsigned long long *header_left, const char *in, size_t inlen, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < inlen && *header_left > 0; i++, (*header_left)--) {
		if (in[i] == '\n')
			out[o++] = '\r';
		out[o++] = in[i];
	}
	memcpy(out + o, in + i, inlen - i);
	return o + (inlen - i);
}

int
relay_cmd_rcpt(char *buf, size_t size, const char *to, bool smtputf8, const char *params)
{
	int r;

	if (*to == '\0')
		return -EINVAL;
	if ((r = check_word(to, true, smtputf8)) < 0)
		return r;
	return finish_line(snprintf(buf, size, "RCPT TO:<%s>%s\r\n", to, params ? params : ""), size);
}

int
relay_cmd_hello(char *buf, size_t size, const char *verb, const char *name)
{
	int r;

	if (*name == '\0')
		return -EINVAL;
	if ((r = check_word(name, false, false)) < 0)
		return r;
	return finish_line(snprintf(buf, size, "%s %s\r\n", verb, name), size);
}

int
relay_local_reply(char *buf, size_t size, const struct errmap_reply *row, const char *detail)
{
	struct relay_reply r;
	char line[RELAY_REPLY_TEXT_MAX];
	int n;

	if (size == 0)
		return 0;
	n = snprintf(line, sizeof(line), "%d%s%s %s%s%s%s", row->code, *row->esc ? " " : "",
	    row->esc, row->text, detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	/* Same sanitising and bound as a reply that came from the network. */
	relay_reply_begin(&r, false);
	if (relay_reply_line(&r, line, (size_t)n) != 1) {
		snprintf(buf, size, "%d", row->code);
		return (int)strlen(buf);
	}
	snprintf(buf, size, "%s", r.text);
	return (int)strlen(buf);
}

/*
 * Retry policy.
 */

unsigned
relay_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max)
{
	unsigned delay = retry_min > 0 ? retry_min : 1;	/* 0 would retry in a busy loop */
	unsigned i;

	if (retry_max < delay)
		retry_max = delay;
	for (i = 1; i < attempts && delay < retry_max; i++)
		delay = delay > retry_max / 2 ? retry_max : delay * 2;
	return delay;
}

enum queue_outcome
relay_outcome(const struct envelope *env)
{
	size_t sent = envelope_count(env, RCPT_SENT);
	size_t pending = envelope_count(env, RCPT_PENDING);

	if (env->nrcpt > 0 && sent == env->nrcpt)
		return QUEUE_SENT;
	if (pending == 0)
		return QUEUE_FAILED;
	return QUEUE_DEFERRED;
}

/*
 * The lifetime runs out at created + lifetime.  Written so that neither a
 * created time in the future nor a bogus one can overflow.
 */
static bool
is_expired(long long created, long long now, unsigned lifetime)
{
	return created <= now - (long long)lifetime;
}

bool
relay_expired(const struct envelope *env, long long now, const struct relay_policy *p)
{
	return envelope_count(env, RCPT_PENDING) > 0 && is_expired(env->created, now, p->max_queue_lifetime);
}

/* Each pending recipient fails with "554 5.4.7 Delivery time expired (after N s and M attempts; last reply: ...)". */
static int
expire_pending(struct envelope *env, long long now)
{
	char why[RELAY_REPLY_TEXT_MAX], detail[RELAY_REPLY_TEXT_MAX];
	/* in unsigned arithmetic: a bogus created time far in the past cannot overflow */
	unsigned long long age = now > env->created ?
	    (unsigned long long)now - (unsigned long long)env->created : 0;
	size_t i;
	int r;

	for (i = 0; i < env->nrcpt; i++) {
		const char *last;

		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		last = env->rcpt[i].reply ? env->rcpt[i].reply :
		    env->last_reply ? env->last_reply : "none";
		snprintf(detail, sizeof(detail), "after %llu s and %u attempts; last reply: %s", age, env->attempts,
		    last);
		relay_local_reply(why, sizeof(why), errmap_get(REPLY_DELIVERY_EXPIRED), detail);
		if ((r = envelope_set_rcpt(env, i, RCPT_FAILED, why)) < 0)
			return r;
	}
	return 0;
}

static int
settle(struct envelope *env, long long now, const struct relay_policy *p, struct relay_verdict *v,
		bool attempted)
{
	long long left;
	int r;

	if (attempted && env->attempts < UINT_MAX)
		env->attempts++;
	v->expired = false;
	v->delay = 0;
	if (relay_expired(env, now, p)) {
		if ((r = expire_pending(env, now)) < 0)
			return r;
		v->expired = true;
	}
	v->outcome = relay_outcome(env);
	if (v->outcome == QUEUE_DEFERRED) {
		v->delay = relay_backoff(env->attempts, p->retry_min, p->retry_max);
		/* Never past the lifetime: the message expires when it runs out, not at the attempt after. */
		left = env->created - now;		/* > -lifetime: not expired */
		if (left < (long long)v->delay - (long long)p->max_queue_lifetime)
			v->delay = (unsigned)(left + (long long)p->max_queue_lifetime);
		env->next_attempt = now + v->delay;
	} else {
		env->next_attempt = 0;
	}
	return 0;
}

int
relay_settle(struct envelope *env, long long now, const struct relay_policy *p,
		struct relay_verdict *v)
{
	return settle(env, now, p, v, true);
}

int
relay_expire(struct envelope *env, long long now, const struct relay_policy *p,
		struct relay_verdict *v)
{
	return settle(env, now, p, v, false);
}
