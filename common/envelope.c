/*
 * NAME
 *	envelope - the envelope and delivery record of a queued message
 * DESCRIPTION
 *	See envelope.h for the format.  The parser is strict because the
 *	record crosses a process boundary: it checks every line, every key
 *	and every number, and rejects what it does not know.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "envelope.h"

#define ENVELOPE_MAGIC	"spoolgate-envelope"
#define SEAL_KEY	"inline-crc32"	/* an inline record's seal: its last line */
#define ENVELOPE_VERSION 1

static const char *const rcpt_state_names[] = {
	[RCPT_PENDING] = "pending",
	[RCPT_SENT] = "sent",
	[RCPT_FAILED] = "failed",
};

const char *
rcpt_state_name(enum rcpt_state state)
{
	return (unsigned)state <= RCPT_FAILED ? rcpt_state_names[state] : "unknown";
}

static int
replace_string(char **field, const char *value)
{
	char *copy = NULL;

	if (value != NULL && (copy = strdup(value)) == NULL)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

int
envelope_init(struct envelope *env, const char *id, const char *from, const char *origin)
{
	memset(env, 0, sizeof(*env));
	if (strlen(id) >= sizeof(env->id))
		return -EINVAL;
	strcpy(env->id, id);
	if (replace_string(&env->from, from) < 0 || replace_string(&env->origin, origin) < 0) {
		envelope_free(env);
		return -ENOMEM;
	}
	return 0;
}

void
envelope_free(struct envelope *env)
{
	size_t i;

	for (i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].reply);
		free(env->rcpt[i].host);
		free(env->rcpt[i].orcpt);
		free(env->rcpt[i].success);
	}
	free(env->rcpt);
	free(env->from);
	free(env->origin);
	free(env->last_host);
	free(env->last_reply);
	free(env->last_tls);
	free(env->last_auth);
	for (i = 0; i < env->nattempt; i++)
		free(env->attempt[i]);
	free(env->auth);
	free(env->rejected);
	free(env->conversion);
	free(env->dsn);
	free(env->dsn_delayed);
	free(env->dsn_envid);
	memset(env, 0, sizeof(*env));
}

static int
append_rcpt(struct envelope *env, const char *addr, enum rcpt_state state, const char *reply)
{
	struct envelope_rcpt *grown, *r;

	if (env->nrcpt >= ENVELOPE_MAX_RCPT)
		return -E2BIG;
	grown = realloc(env->rcpt, (env->nrcpt + 1) * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	env->rcpt = grown;
	r = &env->rcpt[env->nrcpt];
	memset(r, 0, sizeof(*r));
	if ((r->addr = strdup(addr)) == NULL)
		return -ENOMEM;
	if (reply != NULL && reply[0] != '\0' && (r->reply = strdup(reply)) == NULL) {
		free(r->addr);
		return -ENOMEM;
	}
	r->state = state;
	env->nrcpt++;
	return 0;
}

int
envelope_add_rcpt(struct envelope *env, const char *addr)
{
	size_t i;

	for (i = 0; i < env->nrcpt; i++)
		if (strcmp(env->rcpt[i].addr, addr) == 0)
			return 0;
	return append_rcpt(env, addr, RCPT_PENDING, NULL);
}

int
envelope_set_rcpt(struct envelope *env, size_t i, enum rcpt_state state, const char *reply)
{
	if (i >= env->nrcpt)
		return -EINVAL;
	if (reply != NULL && reply[0] == '\0')
		reply = NULL;	/* an empty reply is no reply */
	if (replace_string(&env->rcpt[i].reply, reply) < 0)
		return -ENOMEM;
	env->rcpt[i].state = state;
	return 0;
}

int
envelope_set_last(struct envelope *env, const char *host, const char *reply)
{
	if (replace_string(&env->last_host, host) < 0 || replace_string(&env->last_reply, reply) < 0)
		return -ENOMEM;
	return 0;
}

int
envelope_set_conversion(struct envelope *env, const char *text)
{
	return replace_string(&env->conversion, text) < 0 ? -ENOMEM : 0;
}

/* One word of last-tls or last-auth: printable ASCII, no blank, not empty. */
static bool
word_is_clean(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* Splits v at single blanks into exactly n words; the words must be clean. */
static bool
words_are(const char *v, size_t n, const char **w, size_t *wl)
{
	size_t k;

	for (k = 0; k < n; k++) {
		const char *sp = strchr(v, ' ');
		size_t len = sp ? (size_t)(sp - v) : strlen(v);

		if (!word_is_clean(v, len) || (k + 1 < n) != (sp != NULL))
			return false;
		w[k] = v;
		wl[k] = len;
		v = sp ? sp + 1 : v + len;
	}
	return true;
}

static bool
has_prefix(const char *w, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);

	return len > pl && strncmp(w, prefix, pl) == 0;
}

/* "<version> <cipher> verified=yes|no peer=<name>" */
static bool
last_tls_is_valid(const char *v)
{
	const char *w[4];
	size_t wl[4];

	return words_are(v, 4, w, wl) &&
	    ((wl[2] == 12 && strncmp(w[2], "verified=yes", 12) == 0) ||
	     (wl[2] == 11 && strncmp(w[2], "verified=no", 11) == 0)) &&
	    has_prefix(w[3], wl[3], "peer=");
}

/* "<MECHANISM> user=<name>" */
static bool
last_auth_is_valid(const char *v)
{
	const char *w[2];
	size_t wl[2], i;

	if (!words_are(v, 2, w, wl) || !has_prefix(w[1], wl[1], "user="))
		return false;
	for (i = 0; i < wl[0]; i++)
		if (!((w[0][i] >= 'A' && w[0][i] <= 'Z') || (w[0][i] >= '0' && w[0][i] <= '9') ||
		    w[0][i] == '-' || w[0][i] == '_'))
			return false;
	return true;
}

/* "<MECHANISM> user=<name>[ mail-auth=<value>]" */
static bool
auth_is_valid(const char *v)
{
	const char *w[3];
	size_t wl[3];
	char *two;
	bool ok;

	if (!words_are(v, 3, w, wl))
		return last_auth_is_valid(v);
	if (!has_prefix(w[2], wl[2], "mail-auth=") || (two = strndup(v, (size_t)(w[2] - v - 1))) == NULL)
		return false;
	ok = last_auth_is_valid(two);
	free(two);
	return ok;
}

int
envelope_set_auth(struct envelope *env, const char *mech, const char *user, const char *mail_auth)
{
	char *text;
	int r;

	if (mech == NULL)
		return replace_string(&env->auth, NULL) < 0 ? -ENOMEM : 0;
	if (user == NULL)
		return -EINVAL;
	if (asprintf(&text, "%s user=%s%s%s", mech, user, mail_auth ? " mail-auth=" : "", mail_auth ? mail_auth : "") < 0)
		return -ENOMEM;
	r = !auth_is_valid(text) ? -EINVAL : replace_string(&env->auth, text) < 0 ? -ENOMEM : 0;
	free(text);
	return r;
}

int
envelope_set_last_tls(struct envelope *env, const char *version, const char *cipher,
		bool verified, const char *peer)
{
	char *text;
	int r;

	if (version == NULL)
		return replace_string(&env->last_tls, NULL) < 0 ? -ENOMEM : 0;
	if (cipher == NULL || peer == NULL ||
	    asprintf(&text, "%s %s verified=%s peer=%s", version, cipher, verified ? "yes" : "no", peer) < 0)
		return cipher == NULL || peer == NULL ? -EINVAL : -ENOMEM;
	r = !last_tls_is_valid(text) ? -EINVAL : replace_string(&env->last_tls, text) < 0 ? -ENOMEM : 0;
	free(text);
	return r;
}

static int value_is_clean(const char *v);

/*
 * "<unix-seconds> host=<h> tls=<version>|no cipher=<c>|- verified=yes|no reply=<text>":
 * five clean words, then the reply (no control character, may be empty).
 */
static bool
attempt_is_valid(const char *v)
{
	const char *w[5], *p = v, *reply;
	size_t wl[5], i;
	char head[1024];
	bool no_tls;

	for (i = 0; i < 5 && p != NULL; i++)
		p = strchr(p + (i > 0), ' ');
	if (p == NULL || (size_t)(p - v) >= sizeof(head) || strncmp(p + 1, "reply=", 6) != 0)
		return false;
	memcpy(head, v, (size_t)(p - v));
	head[p - v] = '\0';
	reply = p + 7;
	if (!words_are(head, 5, w, wl) || wl[0] > 19 || !value_is_clean(reply))
		return false;
	for (i = 0; i < wl[0]; i++)
		if (w[0][i] < '0' || w[0][i] > '9')
			return false;
	if (!has_prefix(w[1], wl[1], "host=") || !has_prefix(w[2], wl[2], "tls=") ||
	    !has_prefix(w[3], wl[3], "cipher="))
		return false;
	if (!((wl[4] == 12 && strncmp(w[4], "verified=yes", 12) == 0) ||
	    (wl[4] == 11 && strncmp(w[4], "verified=no", 11) == 0)))
		return false;
	no_tls = wl[2] == 6 && strncmp(w[2], "tls=no", 6) == 0;
	/* No TLS: no cipher and nothing verified. */
	return !no_tls || (wl[3] == 8 && w[3][7] == '-' && wl[4] == 11);
}

static int
append_attempt(struct envelope *env, const char *v)
{
	char *copy = strdup(v);

	if (copy == NULL)
		return -ENOMEM;
	if (env->nattempt == ENVELOPE_ATTEMPTS_MAX) {
		free(env->attempt[0]);
		memmove(&env->attempt[0], &env->attempt[1], (ENVELOPE_ATTEMPTS_MAX - 1) * sizeof(env->attempt[0]));
		env->nattempt--;
	}
	env->attempt[env->nattempt++] = copy;
	return 0;
}

int
envelope_add_attempt(struct envelope *env, long long at, const char *host, const char *version,
		const char *cipher, bool verified, const char *reply)
{
	char *text;
	int r;

	if (host == NULL || at < 0 || (version != NULL && cipher == NULL))
		return -EINVAL;
	if (asprintf(&text, "%lld host=%s tls=%s cipher=%s verified=%s reply=%s", at, host,
	    version ? version : "no", version ? cipher : "-", version && verified ? "yes" : "no",
	    reply ? reply : "") < 0)
		return -ENOMEM;
	r = !attempt_is_valid(text) ? -EINVAL : append_attempt(env, text);
	free(text);
	return r;
}

int
envelope_set_last_auth(struct envelope *env, const char *mech, const char *user)
{
	char *text;
	int r;

	if (mech == NULL)
		return replace_string(&env->last_auth, NULL) < 0 ? -ENOMEM : 0;
	if (user == NULL)
		return -EINVAL;
	if (asprintf(&text, "%s user=%s", mech, user) < 0)
		return -ENOMEM;
	r = !last_auth_is_valid(text) ? -EINVAL : replace_string(&env->last_auth, text) < 0 ? -ENOMEM : 0;
	free(text);
	return r;
}

size_t
envelope_count(const struct envelope *env, enum rcpt_state state)
{
	size_t i, n = 0;

	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == state)
			n++;
	return n;
}

static int
copy_attempts(struct envelope *dst, const struct envelope *src)
{
	size_t i;
	int r;

	for (i = 0; i < src->nattempt; i++)
		if ((r = append_attempt(dst, src->attempt[i])) < 0)
			return r;
	return 0;
}

int
envelope_copy(struct envelope *dst, const struct envelope *src)
{
	size_t i;
	int r;

	if ((r = envelope_init(dst, src->id, src->from, src->origin)) < 0)
		return r;
	dst->created = src->created;
	dst->data_offset = src->data_offset;
	dst->attempts = src->attempts;
	dst->next_attempt = src->next_attempt;
	dst->binarymime = src->binarymime;
	dst->smtputf8 = src->smtputf8;
	dst->inline_data = src->inline_data;
	dst->data_sealed = src->data_sealed;
	for (i = 0; i < src->nrcpt; i++)
		if ((r = append_rcpt(dst, src->rcpt[i].addr, src->rcpt[i].state, src->rcpt[i].reply)) < 0 ||
		    (r = envelope_set_rcpt_at(dst, i, src->rcpt[i].host, src->rcpt[i].at)) < 0 ||
		    (r = envelope_set_rcpt_dsn(dst, i, src->rcpt[i].notify, src->rcpt[i].orcpt)) < 0 ||
		    (r = envelope_set_rcpt_success(dst, i, src->rcpt[i].success)) < 0)
			goto fail;
	if ((r = envelope_set_last(dst, src->last_host, src->last_reply)) < 0 ||
	    (r = replace_string(&dst->dsn, src->dsn)) < 0 ||
	    (r = replace_string(&dst->dsn_delayed, src->dsn_delayed)) < 0 ||
	    (r = replace_string(&dst->rejected, src->rejected)) < 0 ||
	    (r = envelope_set_conversion(dst, src->conversion)) < 0 ||
	    (r = replace_string(&dst->last_tls, src->last_tls)) < 0 ||
	    (r = replace_string(&dst->last_auth, src->last_auth)) < 0 ||
	    (r = copy_attempts(dst, src)) < 0 ||
	    (r = replace_string(&dst->auth, src->auth)) < 0 ||
	    (r = envelope_set_dsn_request(dst, src->dsn_ret, src->dsn_envid)) < 0)
		goto fail;
	return 0;
fail:
	envelope_free(dst);
	return r;
}

/* Text fields must not break the line format. */
static int
value_is_clean(const char *v)
{
	for (; v && *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return 0;
	return 1;
}

/* Length of a run of characters of class fn at p. */
static size_t
span(const char *p, int (*fn)(int))
{
	size_t n = 0;

	while (p[n] != '\0' && fn((unsigned char)p[n]))
		n++;
	return n;
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_errno_char(int c)
{
	return (c >= 'A' && c <= 'Z') || is_digit(c);
}

/* "<code> <x.y.z> <ERRNO> <text>" (envelope.h); NULL-safe for the caller. */
static int
rejected_is_valid(const char *v)
{
	size_t n;

	if (!value_is_clean(v) || (v[0] != '4' && v[0] != '5') || span(v, is_digit) != 3 || v[3] != ' ')
		return 0;
	v += 4;
	if (v[0] != v[-4] || v[1] != '.')	/* the class of the code and of the esc agree */
		return 0;
	v += 2;
	for (int part = 0; part < 2; part++) {
		n = span(v, is_digit);
		if (n < 1 || n > 3 || v[n] != (part == 0 ? '.' : ' '))
			return 0;
		v += n + 1;
	}
	if (v[0] != 'E' || (n = span(v, is_errno_char)) < 2 || v[n] != ' ')
		return 0;
	v += n + 1;
	return v[0] != '\0' && v[0] != ' ';
}

/* A host name of "rcpt-at:": printable, no space, not empty. */
static int
rcpt_host_is_valid(const char *h)
{
	return h[0] != '\0' && value_is_clean(h) && strchr(h, ' ') == NULL &&
	    strlen(h) <= ENVELOPE_HOST_MAX;
}

static int
is_id_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '.';
}

static int
is_why_char(int c)
{
	return (c >= 'a' && c <= 'z') || c == '-';
}

/* "dsn:" values: a message id, or "none <why>". */
static int
dsn_value_is_valid(const char *v)
{
	size_t n;

	if (strncmp(v, "none ", 5) == 0) {
		n = span(v + 5, is_why_char);
		return n > 0 && v[5 + n] == '\0';
	}
	n = span(v, is_id_char);	/* ids start with their time: "none" is no id */
	return is_digit((unsigned char)v[0]) && n < ENVELOPE_ID_MAX && v[n] == '\0';
}

/* "rcpt-success:" values: "delivered|relayed " then "due" or a "dsn:" value. */
static int
rcpt_success_is_valid(const char *v)
{
	const char *rest;

	if (strncmp(v, "delivered ", 10) == 0)
		rest = v + 10;
	else if (strncmp(v, "relayed ", 8) == 0)
		rest = v + 8;
	else
		return 0;
	return strcmp(rest, "due") == 0 || dsn_value_is_valid(rest);
}

int
envelope_set_rcpt_success(struct envelope *env, size_t i, const char *value)
{
	if (i >= env->nrcpt || (value != NULL && !rcpt_success_is_valid(value)))
		return -EINVAL;
	return replace_string(&env->rcpt[i].success, value) < 0 ? -ENOMEM : 0;
}

int
envelope_set_rcpt_at(struct envelope *env, size_t i, const char *host, long long at)
{
	if (i >= env->nrcpt || (host != NULL && (!rcpt_host_is_valid(host) || at < 0)))
		return -EINVAL;
	if (replace_string(&env->rcpt[i].host, host) < 0)
		return -ENOMEM;
	env->rcpt[i].at = host != NULL ? at : 0;
	return 0;
}

int
envelope_set_rcpt_dsn(struct envelope *env, size_t i, unsigned notify, const char *orcpt)
{
	char text[DSN_NOTIFY_TEXT_MAX];
	unsigned check;

	if (i >= env->nrcpt || (orcpt != NULL && dsn_orcpt_check(orcpt) < 0))
		return -EINVAL;
	if (notify != 0 && (dsn_notify_format(notify, text, sizeof(text)) == 0 ||
	    dsn_notify_parse(text, &check) < 0 || check != notify))
		return -EINVAL;
	if (replace_string(&env->rcpt[i].orcpt, orcpt) < 0)
		return -ENOMEM;
	env->rcpt[i].notify = notify;
	return 0;
}

int
envelope_set_dsn_request(struct envelope *env, enum dsn_ret ret, const char *envid)
{
	if ((unsigned)ret > DSN_RET_HDRS || (envid != NULL && dsn_envid_check(envid) < 0))
		return -EINVAL;
	if (replace_string(&env->dsn_envid, envid) < 0)
		return -ENOMEM;
	env->dsn_ret = ret;
	return 0;
}

/* "rcpt-dsn: notify=<list> orcpt=<type;xtext>", either part optional, for rcpt i. */
static void
put_rcpt_dsn(FILE *fp, const struct envelope_rcpt *r)
{
	char notify[DSN_NOTIFY_TEXT_MAX];

	if (r->notify == 0 && r->orcpt == NULL)
		return;
	dsn_notify_format(r->notify, notify, sizeof(notify));
	fprintf(fp, "rcpt-dsn:%s%s%s%s\n", r->notify ? " notify=" : "", r->notify ? notify : "",
	    r->orcpt ? " orcpt=" : "", r->orcpt ? r->orcpt : "");
}

int
envelope_set_dsn(struct envelope *env, bool delayed, const char *value)
{
	if (value != NULL && !dsn_value_is_valid(value))
		return -EINVAL;
	return replace_string(delayed ? &env->dsn_delayed : &env->dsn, value) < 0 ? -ENOMEM : 0;
}

int
envelope_set_rejected(struct envelope *env, int code, const char *esc, const char *errname,
		      const char *why)
{
	char *line;

	if (asprintf(&line, "%d %s %s %s", code, esc, errname, why) < 0)
		return -ENOMEM;
	if (!rejected_is_valid(line)) {
		free(line);
		return -EINVAL;
	}
	free(env->rejected);
	env->rejected = line;
	return 0;
}

static bool
attempts_are_valid(const struct envelope *env)
{
	size_t i;

	if (env->nattempt > ENVELOPE_ATTEMPTS_MAX)
		return false;
	for (i = 0; i < env->nattempt; i++)
		if (env->attempt[i] == NULL || !attempt_is_valid(env->attempt[i]))
			return false;
	return true;
}

int
envelope_format(const struct envelope *env, char **out, size_t *outlen)
{
	char *buf = NULL;
	size_t len = 0, i;
	int has_reply;
	FILE *fp;

	if (!value_is_clean(env->from) || !value_is_clean(env->origin) ||
	    !value_is_clean(env->last_host) || !value_is_clean(env->last_reply) ||
	    !value_is_clean(env->conversion) ||
	    (env->dsn != NULL && !dsn_value_is_valid(env->dsn)) ||
	    (env->dsn_delayed != NULL && !dsn_value_is_valid(env->dsn_delayed)) ||
	    (env->last_tls != NULL && !last_tls_is_valid(env->last_tls)) ||
	    (env->last_auth != NULL && !last_auth_is_valid(env->last_auth)) ||
	    !attempts_are_valid(env) ||
	    (env->auth != NULL && !auth_is_valid(env->auth)) ||
	    (env->rejected != NULL && !rejected_is_valid(env->rejected)))
		return -EINVAL;
	if ((fp = open_memstream(&buf, &len)) == NULL)
		return -ENOMEM;
	fprintf(fp, "%s: %d\nid: %s\ncreated: %lld\n", ENVELOPE_MAGIC, ENVELOPE_VERSION,
	    env->id, env->created);
	if (env->origin != NULL)
		fprintf(fp, "origin: %s\n", env->origin);
	fprintf(fp, "from: <%s>\ndata-offset: %lld\n", env->from ? env->from : "", env->data_offset);
	if (env->inline_data)
		fprintf(fp, "data: inline\n");
	else if (env->data_sealed)
		fprintf(fp, "data: sealed\n");
	if (env->auth != NULL)
		fprintf(fp, "auth: %s\n", env->auth);
	if (env->dsn_ret != DSN_RET_UNSPECIFIED)
		fprintf(fp, "dsn-ret: %s\n", dsn_ret_name(env->dsn_ret));
	if (env->dsn_envid != NULL)
		fprintf(fp, "dsn-envid: %s\n", env->dsn_envid);
	if (env->binarymime)
		fprintf(fp, "body: binarymime\n");
	if (env->smtputf8)
		fprintf(fp, "smtputf8: yes\n");
	for (i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		if (!value_is_clean(r->addr) || !value_is_clean(r->reply) ||
		    (r->host != NULL && (!rcpt_host_is_valid(r->host) || r->at < 0))) {
			fclose(fp);
			free(buf);
			return -EINVAL;
		}
		has_reply = r->reply != NULL && r->reply[0] != '\0';
		fprintf(fp, "rcpt: %s <%s>%s%s\n", rcpt_state_name(r->state), r->addr,
		    has_reply ? " " : "", has_reply ? r->reply : "");
		put_rcpt_dsn(fp, r);
		if (r->host != NULL)
			fprintf(fp, "rcpt-at: %lld %s\n", r->at, r->host);
		if (r->success != NULL)
			fprintf(fp, "rcpt-success: %s\n", r->success);
	}
	if (env->rejected != NULL)
		fprintf(fp, "rejected: %s\n", env->rejected);
	if (env->dsn != NULL)
		fprintf(fp, "dsn: %s\n", env->dsn);
	if (env->dsn_delayed != NULL)
		fprintf(fp, "dsn-delayed: %s\n", env->dsn_delayed);
	fprintf(fp, "attempts: %u\nnext-attempt: %lld\n", env->attempts, env->next_attempt);
	if (env->conversion != NULL)
		fprintf(fp, "conversion: %s\n", env->conversion);
	if (env->last_host != NULL)
		fprintf(fp, "last-host: %s\n", env->last_host);
	if (env->last_reply != NULL)
		fprintf(fp, "last-reply: %s\n", env->last_reply);
	if (env->last_tls != NULL)
		fprintf(fp, "last-tls: %s\n", env->last_tls);
	if (env->last_auth != NULL)
		fprintf(fp, "last-auth: %s\n", env->last_auth);
	for (i = 0; i < env->nattempt; i++)
		fprintf(fp, "attempt: %s\n", env->attempt[i]);

	if (fclose(fp) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static int
parse_ll(const char *v, long long *out)
{
	char *end;

	if (*v < '0' || *v > '9')
		return -EBADMSG;
	errno = 0;
	*out = strtoll(v, &end, 10);
	return (errno != 0 || *end != '\0') ? -EBADMSG : 0;
}

/*
 * The '>' that closes a path, skipping quoted local parts (RFC 5321
 * qtextSMTP allows '<', '>' and space inside quotes).  NULL if none, or
 * if a '<' stands outside quotes.
 */
static char *
find_path_end(char *p)
{
	int quoted = 0;

	for (; *p; p++) {
		if (quoted && *p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			return p;
		else if (!quoted && *p == '<')
			return NULL;
	}
	return NULL;
}

/* "<addr>" possibly followed by " rest". */
static int
parse_bracketed(char *v, char **addr, char **rest)
{
	char *close;

	if (*v != '<' || (close = find_path_end(v + 1)) == NULL)
		return -EBADMSG;
	*close = '\0';
	*addr = v + 1;
	if (close[1] == '\0')
		*rest = NULL;
	else if (close[1] == ' ' && close[2] != '\0')
		*rest = close + 2;
	else
		return -EBADMSG;
	return 0;
}

static int
parse_rcpt_line(struct envelope *env, char *v)
{
	char *sp = strchr(v, ' '), *addr, *reply;
	enum rcpt_state st;

	if (sp == NULL)
		return -EBADMSG;
	*sp = '\0';
	for (st = RCPT_PENDING; st <= RCPT_FAILED; st++)
		if (strcmp(v, rcpt_state_names[st]) == 0)
			break;
	if (st > RCPT_FAILED || parse_bracketed(sp + 1, &addr, &reply) < 0 || *addr == '\0')
		return -EBADMSG;
	return append_rcpt(env, addr, st, reply);
}

/* "rcpt-at: <seconds> <host>" belongs to the rcpt line right before it. */
static int
parse_rcpt_at(struct envelope *env, char *v, bool after_rcpt)
{
	char *sp = strchr(v, ' ');
	long long at;

	if (!after_rcpt || env->nrcpt == 0 || sp == NULL)
		return -EBADMSG;
	*sp = '\0';
	if (parse_ll(v, &at) < 0 || !rcpt_host_is_valid(sp + 1))
		return -EBADMSG;
	return envelope_set_rcpt_at(env, env->nrcpt - 1, sp + 1, at) == -ENOMEM ? -ENOMEM : 0;
}

/* "rcpt-success: <action> <value>" belongs to the recipient whose lines end right before it. */
static int
parse_rcpt_success(struct envelope *env, const char *v, bool after_rcpt)
{
	if (!after_rcpt || env->nrcpt == 0 || env->rcpt[env->nrcpt - 1].success != NULL ||
	    !rcpt_success_is_valid(v))
		return -EBADMSG;
	return envelope_set_rcpt_success(env, env->nrcpt - 1, v);
}

/* "rcpt-dsn: notify=... orcpt=..." belongs to the rcpt line right before it. */
static int
parse_rcpt_dsn(struct envelope *env, char *v, bool after_rcpt)
{
	unsigned notify = 0;
	char *orcpt = NULL, *word, *save = NULL, text[DSN_NOTIFY_TEXT_MAX];
	int r;

	if (!after_rcpt || env->nrcpt == 0 || *v == '\0')
		return -EBADMSG;
	for (word = strtok_r(v, " ", &save); word != NULL; word = strtok_r(NULL, " ", &save)) {
		if (strncmp(word, "notify=", 7) == 0 && notify == 0) {
			/* as envelope_format() writes it: upper case, in the table's order */
			if (dsn_notify_parse(word + 7, &notify) < 0 ||
			    (dsn_notify_format(notify, text, sizeof(text)), strcmp(text, word + 7) != 0))
				return -EBADMSG;
		} else if (strncmp(word, "orcpt=", 6) == 0 && orcpt == NULL) {
			orcpt = word + 6;
		} else {
			return -EBADMSG;
		}
	}
	if (notify == 0 && orcpt == NULL)
		return -EBADMSG;
	r = envelope_set_rcpt_dsn(env, env->nrcpt - 1, notify, orcpt);
	return r == -EINVAL ? -EBADMSG : r;
}

/* "dsn-ret: FULL|HDRS" and "dsn-envid: <xtext>", once each. */
static int
parse_dsn_request(struct envelope *env, const char *key, const char *v)
{
	enum dsn_ret ret = env->dsn_ret;

	if (strcmp(key, "dsn-ret") == 0) {
		if (env->dsn_ret != DSN_RET_UNSPECIFIED || dsn_ret_parse(v, &ret) < 0 || strcmp(v, dsn_ret_name(ret)) != 0)
			return -EBADMSG;
		env->dsn_ret = ret;
		return 0;
	}
	if (env->dsn_envid != NULL || dsn_envid_check(v) < 0)
		return -EBADMSG;
	return replace_string(&env->dsn_envid, v);
}

static int
parse_dsn(char **field, const char *v)
{
	if (*field != NULL || !dsn_value_is_valid(v))
		return -EBADMSG;
	return replace_string(field, v);
}

static int
parse_line(struct envelope *env, char *key, char *v, unsigned *seen, const char *prev)
{
	bool after_rcpt = strcmp(prev, "rcpt") == 0;

	long long n;
	char *addr, *rest;

	if (strcmp(key, ENVELOPE_MAGIC) == 0)
		return (*seen |= 1, strcmp(v, "1") == 0 ? 0 : -EBADMSG);
	if (strcmp(key, "id") == 0) {
		if (*v == '\0' || strlen(v) >= sizeof(env->id) || strchr(v, '/'))
			return -EBADMSG;
		strcpy(env->id, v);
		return (*seen |= 2), 0;
	}
	if (strcmp(key, "from") == 0) {
		if (parse_bracketed(v, &addr, &rest) < 0 || rest != NULL)
			return -EBADMSG;
		*seen |= 4;
		return replace_string(&env->from, addr);
	}
	if (strcmp(key, "rcpt") == 0)
		return parse_rcpt_line(env, v);
	if (strcmp(key, "rcpt-at") == 0)
		return parse_rcpt_at(env, v, after_rcpt || strcmp(prev, "rcpt-dsn") == 0);
	if (strcmp(key, "rcpt-dsn") == 0)
		return parse_rcpt_dsn(env, v, after_rcpt);
	if (strcmp(key, "rcpt-success") == 0)
		return parse_rcpt_success(env, v, after_rcpt || strcmp(prev, "rcpt-dsn") == 0 ||
		    strcmp(prev, "rcpt-at") == 0);
	if (strcmp(key, "dsn-ret") == 0 || strcmp(key, "dsn-envid") == 0)
		return parse_dsn_request(env, key, v);
	if (strcmp(key, "dsn") == 0)
		return parse_dsn(&env->dsn, v);
	if (strcmp(key, "dsn-delayed") == 0)
		return parse_dsn(&env->dsn_delayed, v);
	if (strcmp(key, "origin") == 0)
		return replace_string(&env->origin, v);
	if (strcmp(key, "last-host") == 0)
		return replace_string(&env->last_host, v);
	if (strcmp(key, "last-reply") == 0)
		return replace_string(&env->last_reply, v);
	if (strcmp(key, "rejected") == 0) {
		if (env->rejected != NULL || !rejected_is_valid(v))
			return -EBADMSG;
		return replace_string(&env->rejected, v);
	}
	if (strcmp(key, "conversion") == 0)
		return replace_string(&env->conversion, v);
	if (strcmp(key, "last-tls") == 0) {
		if (env->last_tls != NULL || !last_tls_is_valid(v))
			return -EBADMSG;
		return replace_string(&env->last_tls, v);
	}
	if (strcmp(key, "auth") == 0) {
		if (env->auth != NULL || !auth_is_valid(v))
			return -EBADMSG;
		return replace_string(&env->auth, v);
	}
	if (strcmp(key, "body") == 0) {		/* RFC 3030: only BINARYMIME is recorded */
		if (env->binarymime || strcmp(v, "binarymime") != 0)
			return -EBADMSG;
		return (env->binarymime = true), 0;
	}
	if (strcmp(key, "data") == 0) {		/* the message follows the record, or is such a file */
		if (env->inline_data || env->data_sealed)
			return -EBADMSG;
		if (strcmp(v, "inline") == 0)
			return (env->inline_data = true), 0;
		if (strcmp(v, "sealed") == 0)
			return (env->data_sealed = true), 0;
		return -EBADMSG;
	}
	if (strcmp(key, "smtputf8") == 0) {	/* RFC 6531 */
		if (env->smtputf8 || strcmp(v, "yes") != 0)
			return -EBADMSG;
		return (env->smtputf8 = true), 0;
	}
	if (strcmp(key, "last-auth") == 0) {
		if (env->last_auth != NULL || !last_auth_is_valid(v))
			return -EBADMSG;
		return replace_string(&env->last_auth, v);
	}
	if (strcmp(key, "attempt") == 0) {
		if (env->nattempt >= ENVELOPE_ATTEMPTS_MAX || !attempt_is_valid(v))
			return -EBADMSG;
		return append_attempt(env, v);
	}
	if (parse_ll(v, &n) < 0)
		return -EBADMSG;
	if (strcmp(key, "created") == 0)
		env->created = n;
	else if (strcmp(key, "data-offset") == 0)
		env->data_offset = n;
	else if (strcmp(key, "next-attempt") == 0)
		env->next_attempt = n;
	else if (strcmp(key, "attempts") == 0 && n <= UINT_MAX)
		env->attempts = (unsigned)n;
	else
		return -EBADMSG;
	return 0;
}

/*
 * Where an inline record's message starts: just past the first empty
 * line, looked for in the record's largest size; -1 when there is none.
 */
static long long
record_body(const char *buf, size_t len)
{
	const char *blank;

	if (len > ENVELOPE_MAX_SIZE + 1)
		len = ENVELOPE_MAX_SIZE + 1;
	if (len > 0 && buf[0] == '\n')
		return 1;
	if ((blank = memmem(buf, len, "\n\n", 2)) == NULL)
		return -1;
	return (long long)(blank - buf) + 2;
}

/*
 * "inline-crc32: <8 hex digits>": only in an inline record (its "data:"
 * line comes earlier), once, and its text's last line (rest is what
 * follows it); at is where it starts in the file.
 */
static int
parse_seal(struct envelope *env, const char *v, const char *rest, long long at)
{
	if (!env->inline_data || env->inline_sealed || *rest != '\0' || strlen(v) != 8 ||
	    strspn(v, "0123456789abcdef") != 8)
		return -EBADMSG;
	env->inline_crc = (unsigned)strtoul(v, NULL, 16);
	env->inline_sealed = true;
	env->seal_at = at;
	return 0;
}

int
envelope_parse(const char *buf, size_t len, struct envelope *env)
{
	char *copy, *line, *next, *colon;
	long long body;
	unsigned seen = 0;
	const char *prev = "";
	int r = 0;

	memset(env, 0, sizeof(*env));
	if ((body = record_body(buf, len)) >= 0)
		len = (size_t)body - 1;	/* the record's text, its last line's LF included */
	if (len > ENVELOPE_MAX_SIZE || memchr(buf, '\0', len) != NULL)
		return -EBADMSG;
	if ((copy = strndup(buf, len)) == NULL)
		return -ENOMEM;
	for (line = copy; r == 0 && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) == NULL) {
			r = -EBADMSG;	/* every line ends in LF: a cut file is corrupt */
			break;
		}
		*next++ = '\0';
		if ((colon = strstr(line, ": ")) == NULL || !value_is_clean(line)) {
			r = -EBADMSG;
			break;
		}
		*colon = '\0';
		if (strcmp(line, SEAL_KEY) == 0)
			r = parse_seal(env, colon + 2, next, (long long)(line - copy));
		else
			r = parse_line(env, line, colon + 2, &seen, prev);
		prev = line;			/* in copy, alive until the end */
	}
	free(copy);
	if (r == -E2BIG)
		r = -EBADMSG;	/* more recipients than any writer could have put there */
	/* only a record of a refused submission may name nobody */
	if (r == 0 && (seen != 7 || (env->nrcpt == 0 && env->rejected == NULL) ||
	    env->data_offset < 0 || env->inline_data != (body >= 0)))
		r = -EBADMSG;
	if (r == 0 && body >= 0)
		env->data_offset += body;
	if (r == 0)
		env->text_len = (long long)len;
	if (r < 0)
		envelope_free(env);
	return r;
}

/*
 * Reads fd from its start until the record's text is in buf: the whole
 * file, or (an inline record) up to its empty line, in steps that grow
 * from 16 KiB so that a queue scan does not read the messages.  No more
 * than the largest record and its empty line.
 */
static int
read_record_text(int fd, off_t size, char **out, size_t *outlen)
{
	size_t want = (size_t)size, cap = 16u << 10, got = 0;
	char *buf = malloc(1), *grown;	/* an empty file reads as an empty buffer, not NULL */
	ssize_t n;

	if (buf == NULL)
		return -ENOMEM;
	if (want > ENVELOPE_MAX_SIZE + 2)
		want = ENVELOPE_MAX_SIZE + 2;
	while (got < want) {
		if (cap > want)
			cap = want;
		if ((grown = realloc(buf, cap + 1)) == NULL) {
			free(buf);
			return -ENOMEM;
		}
		buf = grown;
		n = pread(fd, buf + got, cap - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;	/* shorter than its size: cut while read */
		}
		got += (size_t)n;
		if (memmem(buf, got, "\n\n", 2) != NULL || (got > 0 && buf[0] == '\n'))
			break;
		if (got == cap)
			cap *= 2;
	}
	*out = buf;
	*outlen = got;
	return 0;
}

int
envelope_read_fd(int fd, struct envelope *env)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;		/* st is not filled in: nothing to judge it by */
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((r = read_record_text(fd, st.st_size, &buf, &len)) == 0)
		r = envelope_parse(buf, len, env);
	free(buf);
	return r;
}

int
envelope_seal_inline(char **text, size_t *len, const void *msg, size_t msglen)
{
	uLong crc = crc32_z(crc32_z(0L, Z_NULL, 0), (const Bytef *)*text, *len);
	char line[sizeof(SEAL_KEY) + 16], *grown;
	int n;

	crc = crc32_z(crc, msg, msglen);
	n = snprintf(line, sizeof(line), "%s: %08lx\n\n", SEAL_KEY, (unsigned long)crc);
	if ((grown = realloc(*text, *len + (size_t)n)) == NULL)
		return -ENOMEM;
	memcpy(grown + *len, line, (size_t)n);
	*text = grown;
	*len += (size_t)n;
	return 0;
}

/*
 * Adds to *crc the bytes of fd from off to end (-1: to the end of the
 * file, at most ENVELOPE_INLINE_MAX).  -EBADMSG when the file ends first
 * or goes on past that bound; -errno of a read.
 */
static int
crc_of_range(int fd, off_t off, off_t end, uLong *crc)
{
	off_t limit = end >= 0 ? end : off + (off_t)ENVELOPE_INLINE_MAX;
	char buf[16384];
	ssize_t n;
	size_t want;

	while (off < limit) {
		want = limit - off < (off_t)sizeof(buf) ? (size_t)(limit - off) : sizeof(buf);
		if ((n = pread(fd, buf, want, off)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return end >= 0 ? -EBADMSG : 0;
		*crc = crc32_z(*crc, (const Bytef *)buf, (size_t)n);
		off += n;
	}
	if (end < 0 && pread(fd, buf, 1, off) != 0)
		return -EBADMSG;	/* larger than any writer makes it (or unreadable) */
	return 0;
}

int
envelope_check_inline(int fd, const struct envelope *env, const char *id)
{
	uLong crc = crc32_z(0L, Z_NULL, 0);
	int r;

	if (!env->inline_data || !env->inline_sealed)
		return 0;
	if (strcmp(env->id, id) != 0)
		return -EBADMSG;	/* an older file's inode or blocks under this name */
	if ((r = crc_of_range(fd, 0, (off_t)env->seal_at, &crc)) < 0 ||
	    (r = crc_of_range(fd, (off_t)env->text_len + 1, -1, &crc)) < 0)
		return r;
	return crc == env->inline_crc ? 0 : -EBADMSG;
}

int
envelope_read_at(int dirfd, const char *name, struct envelope *env)
{
	int fd, r;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	r = envelope_read_fd(fd, env);
	close(fd);
	return r;
}
