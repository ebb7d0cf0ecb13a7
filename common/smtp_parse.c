/*
 * NAME
 *	smtp_parse - command lines, MAIL/RCPT arguments, the DATA byte machine
 * SYNOPSIS
 *	See smtp_parse.h.
 * DESCRIPTION
 *	Pure functions over the bytes a client sent.  Every input is bounded
 *	by the caller (the line limit) and every copy here is bounded by the
 *	size of its destination.  ESMTP parameters are looked up in one table
 *	per command, so a new extension is one row and one small function.
 * SECURITY
 *	Everything here parses untrusted network input: no byte is assumed
 *	printable, no length is assumed to fit.
 */

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "errmap.h"
#include "dsnparam.h"
#include "smtp_parse.h"

#define SMTP_PARAM_KEY_MAX	32	/* longest ESMTP keyword we look at, + NUL */

static bool
is_blank(int c)
{
	return c == ' ' || c == '\t';
}

static const char *
skip_blanks(const char *p)
{
	while (is_blank((unsigned char)*p))
		p++;
	return p;
}

/* ------------------------------------------------------------------ */
/* Command lines                                                       */
/* ------------------------------------------------------------------ */

int
smtp_parse_command(char *line, size_t len, struct smtp_cmdline *out)
{
	size_t i, vlen;
	char *p;

	out->verb[0] = '\0';
	out->arg = "";

	/*
	 * A NUL would silently cut the line short for every str* function
	 * below, and a CR inside a command line is no part of any command:
	 * refuse both instead of guessing what the client meant.
	 */
	for (i = 0; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r')
			return -EILSEQ;
	line[len] = '\0';
	while (len > 0 && is_blank((unsigned char)line[len - 1]))
		line[--len] = '\0';

	p = (char *)skip_blanks(line);
	for (vlen = 0; isalpha((unsigned char)p[vlen]); vlen++)
		if (vlen + 1 >= SMTP_VERB_MAX)
			return -EINVAL;
	if (vlen == 0 || (p[vlen] != '\0' && !is_blank((unsigned char)p[vlen])))
		return -EINVAL;
	for (i = 0; i < vlen; i++)
		out->verb[i] = (char)toupper((unsigned char)p[i]);
	out->verb[vlen] = '\0';
	out->arg = skip_blanks(p + vlen);
	return 0;
}

int
smtp_parse_helo(const char *arg, char *out, size_t outlen)
{
	size_t len = strlen(arg), i;

	if (len == 0)
		return -EINVAL;
	for (i = 0; i < len; i++)
		if ((unsigned char)arg[i] <= ' ' || (unsigned char)arg[i] > '~')
			return -EINVAL;
	if (len >= SMTP_HELO_MAX || len >= outlen)
		return -ENAMETOOLONG;
	if (addr_helo_valid(arg) < 0)
		return -EINVAL;
	memcpy(out, arg, len + 1);
	return 0;
}

/* ------------------------------------------------------------------ */
/* ESMTP parameters                                                    */
/* ------------------------------------------------------------------ */

static int
refuse(struct smtp_perror *why, enum reply_id reply, const char *detail, int err)
{
	why->reply = reply;
	why->detail = detail;
	return err;
}

static int
param_size(const char *value, struct smtp_mail *mail, struct smtp_perror *why)
{
	uint64_t n = 0;
	const char *p;

	if (value == NULL || *value == '\0')
		return refuse(why, REPLY_SYNTAX, "SIZE needs a number", -EINVAL);
	for (p = value; *p; p++) {
		unsigned d;

		if (!isdigit((unsigned char)*p))
			return refuse(why, REPLY_SYNTAX, "SIZE value is not a number", -EINVAL);
		d = (unsigned)(*p - '0');
		/* Saturate: a size beyond 64 bits is simply too big. */
		n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
	}
	mail->has_size = true;
	mail->size = n;
	return 0;
}

static int
param_body(const char *value, struct smtp_mail *mail, struct smtp_perror *why)
{
	if (value != NULL && strcasecmp(value, "7BIT") == 0)
		mail->body = SMTP_BODY_7BIT;
	else if (value != NULL && strcasecmp(value, "8BITMIME") == 0)
		mail->body = SMTP_BODY_8BITMIME;
	else if (value != NULL && strcasecmp(value, "BINARYMIME") == 0)
		mail->body = SMTP_BODY_BINARYMIME;	/* RFC 3030 */
	else
		return refuse(why, REPLY_SYNTAX, "BODY must be 7BIT, 8BITMIME or BINARYMIME", -EINVAL);
	return 0;
}

/* SMTPUTF8 (RFC 6531 3.4): a keyword without a value. */
static int
param_smtputf8(const char *value, struct smtp_mail *mail, struct smtp_perror *why)
{
	if (value != NULL)
		return refuse(why, REPLY_SYNTAX, "SMTPUTF8 takes no value", -EINVAL);
	mail->smtputf8 = true;
	return 0;
}

/*
 * AUTH=<mailbox> or AUTH=<> (RFC 4954 section 5), xtext: decoded, it must
 * be "<>" or a printable word without blanks, as it goes into the record.
 */
static int
param_auth(const char *value, struct smtp_mail *mail, struct smtp_perror *why)
{
	ssize_t n;

	if (value == NULL || (n = smtp_xtext_decode(value, strlen(value), mail->auth, sizeof(mail->auth))) <= 0)
		return refuse(why, REPLY_SYNTAX, "AUTH= needs an xtext value (<> or a mailbox)", -EINVAL);
	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)mail->auth[i] <= 0x20 || (unsigned char)mail->auth[i] >= 0x7f)
			return refuse(why, REPLY_SYNTAX, "AUTH= value with a blank or control character", -EINVAL);
	mail->has_auth = true;
	return 0;
}

/* RET=FULL|HDRS (RFC 3461 4.3) */
static int
param_ret(const char *value, struct smtp_mail *mail, struct smtp_perror *why)
{
	if (value == NULL || dsn_ret_parse(value, &mail->ret) < 0)
		return refuse(why, REPLY_SYNTAX, "RET must be FULL or HDRS", -EINVAL);
	return 0;
}

/* ENVID=<xtext> (RFC 3461 4.4), kept as sent */
static int
param_envid(const char *value, struct smtp_mail *mail, struct smtp_perror *why)
{
	if (value == NULL || dsn_envid_check(value) < 0)
		return refuse(why, REPLY_SYNTAX, "ENVID must be xtext of 1 to 100 printable characters", -EINVAL);
	snprintf(mail->envid, sizeof(mail->envid), "%s", value);
	return 0;
}

/* NOTIFY=NEVER|SUCCESS,FAILURE,DELAY (RFC 3461 4.1) */
static int
param_notify(const char *value, struct smtp_rcpt *rcpt, struct smtp_perror *why)
{
	if (value == NULL || dsn_notify_parse(value, &rcpt->notify) < 0)
		return refuse(why, REPLY_SYNTAX, "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY", -EINVAL);
	return 0;
}

/* ORCPT=<addr-type>;<xtext> (RFC 3461 4.2), kept as sent */
static int
param_orcpt(const char *value, struct smtp_rcpt *rcpt, struct smtp_perror *why)
{
	if (value == NULL || dsn_orcpt_check(value) < 0)
		return refuse(why, REPLY_SYNTAX, "ORCPT must be addr-type;xtext (rfc822;...)", -EINVAL);
	snprintf(rcpt->orcpt, sizeof(rcpt->orcpt), "%s", value);
	return 0;
}

int
smtp_parse_transid(const char *value, char *out, size_t outlen)
{
	size_t len = strlen(value), i, ats = 0, at = 0;

	if (len < 5 || len >= SMTP_TRANSID_MAX || len >= outlen || value[0] != '<' || value[len - 1] != '>')
		return -EINVAL;
	for (i = 1; i + 1 < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c <= ' ' || c >= 0x7f || c == '<' || c == '>')
			return -EINVAL;
		if (c == '@') {
			ats++;
			at = i;
		}
	}
	if (ats != 1 || at == 1 || at + 2 == len)
		return -EINVAL;
	memcpy(out, value, len + 1);
	return 0;
}

/* TRANSID=<id@host> (RFC 1845 CHECKPOINT) */
static int
param_transid(const char *value, struct smtp_mail *mail, struct smtp_perror *why)
{
	if (value == NULL || smtp_parse_transid(value, mail->transid, sizeof(mail->transid)) < 0)
		return refuse(why, REPLY_SYNTAX, "TRANSID must be <id@host>", -EINVAL);
	return 0;
}

/* The MAIL parameters of the extensions that EHLO announces. */
struct mail_param {
	const char     *keyword;
	int	      (*apply)(const char *value, struct smtp_mail *mail, struct smtp_perror *why);
};

static const struct mail_param mail_params[] = {
	{ "SIZE", param_size },		/* RFC 1870 */
	{ "BODY", param_body },		/* RFC 6152 */
	{ "AUTH", param_auth },		/* RFC 4954 */
	{ "RET", param_ret },		/* RFC 3461 */
	{ "ENVID", param_envid },	/* RFC 3461 */
	{ "SMTPUTF8", param_smtputf8 },	/* RFC 6531 */
	{ "TRANSID", param_transid },	/* RFC 1845 */
};
#define N_MAIL_PARAMS	(sizeof(mail_params) / sizeof(mail_params[0]))

/* The RCPT parameters: DSN's (RFC 3461). */
struct rcpt_param {
	const char     *keyword;
	int	      (*apply)(const char *value, struct smtp_rcpt *rcpt, struct smtp_perror *why);
};

static const struct rcpt_param rcpt_params[] = {
	{ "NOTIFY", param_notify },
	{ "ORCPT", param_orcpt },
};
#define N_RCPT_PARAMS	(sizeof(rcpt_params) / sizeof(rcpt_params[0]))

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool
keyword_valid(const char *kw, size_t len)
{
	size_t i;

	if (len == 0 || !isalnum((unsigned char)kw[0]))
		return false;
	for (i = 1; i < len; i++)
		if (!isalnum((unsigned char)kw[i]) && kw[i] != '-')
			return false;
	return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126) */
static bool
value_valid(const char *v, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] < 33 || (unsigned char)v[i] > 126 || v[i] == '=')
			return false;
	return true;
}

/* One "KEY[=VALUE]" taken from the parameters: its keyword and value (NULL without '='). */
struct param_token {
	char		key[SMTP_PARAM_KEY_MAX];
	char		value[ADDR_MAX];
	bool		has_value;
};

/*
 * Takes the next parameter at *pp: 1, 0 at the end, or -EINVAL (why set).
 * Syntax is checked before meaning, so a malformed parameter is a 501 and
 * only a well-formed but unknown one is a 555.
 */
static int
param_next(const char **pp, struct param_token *t, struct smtp_perror *why)
{
	const char *p = skip_blanks(*pp), *tok, *eq, *end;
	size_t klen, vlen;

	if (*p == '\0')
		return 0;
	tok = p;
	while (*p != '\0' && !is_blank((unsigned char)*p))
		p++;
	end = p;
	*pp = p;
	eq = memchr(tok, '=', (size_t)(end - tok));
	klen = (size_t)((eq ? eq : end) - tok);
	if (!keyword_valid(tok, klen) || klen >= sizeof(t->key))
		return refuse(why, REPLY_SYNTAX, "malformed parameter", -EINVAL);
	memcpy(t->key, tok, klen);
	t->key[klen] = '\0';
	t->has_value = eq != NULL;
	if (eq != NULL) {
		vlen = (size_t)(end - eq - 1);
		if (!value_valid(eq + 1, vlen))
			return refuse(why, REPLY_SYNTAX, "malformed parameter value", -EINVAL);
		if (vlen >= sizeof(t->value))
			return refuse(why, REPLY_SYNTAX, "parameter value too long", -EINVAL);
		memcpy(t->value, eq + 1, vlen);
		t->value[vlen] = '\0';
	}
	return 1;
}

/* Index i of a keyword met for the first time (bit i of *seen), or -EINVAL with why set. */
static int
param_first_use(size_t i, size_t n, unsigned *seen, struct smtp_perror *why)
{
	if (i == n)
		return refuse(why, REPLY_BAD_PARAMETER, "parameter not recognized", -EINVAL);
	if (*seen & (1u << i))
		return refuse(why, REPLY_SYNTAX, "duplicate parameter", -EINVAL);
	*seen |= 1u << i;
	return 0;
}

/* Walks "KEY[=VALUE] KEY[=VALUE] ..." of MAIL and applies each known keyword. */
static int
parse_params(const char *p, const struct mail_param *table, size_t ntable,
		struct smtp_mail *mail, struct smtp_perror *why)
{
	struct param_token t;
	unsigned seen = 0;
	size_t i;
	int r;

	while ((r = param_next(&p, &t, why)) > 0) {
		for (i = 0; i < ntable; i++)
			if (strcasecmp(t.key, table[i].keyword) == 0)
				break;
		if (param_first_use(i, ntable, &seen, why) < 0 ||
		    table[i].apply(t.has_value ? t.value : NULL, mail, why) < 0)
			return -EINVAL;
	}
	return r;
}

/* The same for RCPT. */
static int
parse_rcpt_params(const char *p, struct smtp_rcpt *rcpt, struct smtp_perror *why)
{
	struct param_token t;
	unsigned seen = 0;
	size_t i;
	int r;

	while ((r = param_next(&p, &t, why)) > 0) {
		for (i = 0; i < N_RCPT_PARAMS; i++)
			if (strcasecmp(t.key, rcpt_params[i].keyword) == 0)
				break;
		if (param_first_use(i, N_RCPT_PARAMS, &seen, why) < 0 ||
		    rcpt_params[i].apply(t.has_value ? t.value : NULL, rcpt, why) < 0)
			return -EINVAL;
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* MAIL and RCPT                                                       */
/* ------------------------------------------------------------------ */

/* "FROM:" / "TO:" in any case, then optional blanks: returns the path or NULL. */
static const char *
after_keyword(const char *arg, const char *kw)
{
	size_t len = strlen(kw);

	if (strncasecmp(arg, kw, len) != 0)
		return NULL;
	return skip_blanks(arg + len);
}

/* What follows a path must be the end or blanks before parameters. */
static bool
path_ends_cleanly(const char *rest)
{
	return *rest == '\0' || is_blank((unsigned char)*rest);
}

int
smtp_parse_mail(const char *arg, struct smtp_mail *out, struct smtp_perror *why)
{
	const char *p, *rest = NULL;
	int err;

	memset(out, 0, sizeof(*out));
	if ((p = after_keyword(arg, "FROM:")) == NULL)
		return refuse(why, REPLY_SYNTAX, "syntax: MAIL FROM:<address>", -EINVAL);
	/* Non-ASCII is allowed only with SMTPUTF8, which comes after the path. */
	err = addr_parse_path(p, out->from, sizeof(out->from), &rest, ADDR_ALLOW_NULL);
	if (err == -EILSEQ)
		err = addr_parse_path(p, out->from, sizeof(out->from), &rest, ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8);
	if (err == 0 && !path_ends_cleanly(rest))
		err = -EINVAL;
	/* Sender errors carry sender codes: X.1.7 (RFC 3463), 5.6.7 (RFC 6531). */
	if (err == -ENAMETOOLONG)
		return refuse(why, REPLY_SENDER_TOO_LONG, NULL, err);
	if (err < 0)
		return refuse(why, REPLY_BAD_SENDER_SYNTAX, "malformed sender address", err);
	if ((err = parse_params(rest, mail_params, N_MAIL_PARAMS, out, why)) < 0)
		return err;
	if (!out->smtputf8 && !smtp_is_ascii(out->from))
		return refuse(why, REPLY_NON_ASCII_SENDER, NULL, -EILSEQ);
	return 0;
}

bool
smtp_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

int
smtp_parse_rcpt(const char *arg, struct smtp_rcpt *out, struct smtp_perror *why)
{
	return smtp_parse_rcpt_utf8(arg, out, why, false);
}

int
smtp_parse_rcpt_utf8(const char *arg, struct smtp_rcpt *out, struct smtp_perror *why, bool smtputf8)
{
	const char *p, *rest = NULL;
	int err;

	memset(out, 0, sizeof(*out));
	if ((p = after_keyword(arg, "TO:")) == NULL)
		return refuse(why, REPLY_SYNTAX, "syntax: RCPT TO:<address>", -EINVAL);
	if (strncmp(p, "<>", 2) == 0 && path_ends_cleanly(p + 2))
		return refuse(why, REPLY_NULL_RCPT, NULL, -EINVAL);
	err = addr_parse_path(p, out->to, sizeof(out->to), &rest,
	    ADDR_ALLOW_POSTMASTER | (smtputf8 ? ADDR_ALLOW_UTF8 : 0));
	if (err == 0 && !path_ends_cleanly(rest))
		err = -EINVAL;
	if (err == -EILSEQ)
		return refuse(why, REPLY_NON_ASCII_RCPT, NULL, err);
	if (err < 0)
		return refuse(why, errmap_from_errno(-err)->id, NULL, err);
	return parse_rcpt_params(rest, out, why);
}

ssize_t
smtp_xtext_decode(const char *in, size_t inlen, char *out, size_t outlen)
{
	return dsn_xtext_decode(in, inlen, out, outlen);
}

/* ------------------------------------------------------------------ */
/* BDAT (RFC 3030)                                                     */
/* ------------------------------------------------------------------ */

int
smtp_parse_bdat(const char *arg, uint64_t *size, bool *last)
{
	const char *p = arg;
	uint64_t n = 0;
	size_t digits = 0;

	*size = 0;
	*last = false;
	for (; isdigit((unsigned char)*p); p++, digits++) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (UINT64_MAX - d) / 10)
			return -ERANGE;
		n = n * 10 + d;
	}
	if (digits == 0 || (*p != '\0' && !is_blank((unsigned char)*p)))
		return -EINVAL;
	p = skip_blanks(p);
	if (strncasecmp(p, "LAST", 4) == 0 && *skip_blanks(p + 4) == '\0') {
		*last = true;
		p += 4;
	}
	if (*skip_blanks(p) != '\0')
		return -EINVAL;
	*size = n;
	return 0;
}

size_t
smtp_chunk_decode(struct smtp_chunk *c, const char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (c->cr) {
			c->cr = false;
			if (in[i] == '\n') {
				out[o++] = '\n';
				continue;
			}
			out[o++] = '\r';
		}
		if (in[i] == '\r')
			c->cr = true;
		else
			out[o++] = in[i];
	}
	return o;
}

size_t
smtp_chunk_finish(struct smtp_chunk *c, char *out)
{
	if (!c->cr)
		return 0;
	c->cr = false;
	out[0] = '\r';
	return 1;
}

/* ------------------------------------------------------------------ */
/* DATA                                                                */
/* ------------------------------------------------------------------ */

void
smtp_data_init(struct smtp_data *d)
{
	/* The CRLF of the DATA command itself is the first CRLF of <CRLF>.<CRLF>. */
	d->state = SMTP_DATA_BOL;
}

/*
 * Each state remembers the bytes held back ("." or ".\r" or "\r") until
 * the next byte says what they were, so a chunk may end anywhere.  One
 * input byte yields at most two output bytes, hence the 2-byte headroom.
 */
int
smtp_data_decode(struct smtp_data *d, const char *in, size_t inlen, size_t *used,
		char *out, size_t outcap, size_t *outlen)
{
	enum smtp_data_state st = d->state;
	size_t i = 0, o = 0;
	int rc = SMTP_DATA_MORE;

	while (i < inlen && outcap - o >= 2) {
		char c;

		if (st == SMTP_DATA_TEXT) {
			/* The common case: copy a run of ordinary bytes at once. */
			size_t n = 0, max = inlen - i < outcap - o ? inlen - i : outcap - o;

			while (n < max && in[i + n] != '\r' && in[i + n] != '\n')
				n++;
			if (n > 0) {
				memcpy(out + o, in + i, n);
				o += n;
				i += n;
				continue;
			}
		}
		c = in[i++];
		switch (st) {
		case SMTP_DATA_BOL:
			if (c == '.')
				st = SMTP_DATA_DOT;
			else if (c == '\r')
				st = SMTP_DATA_CR;
			else {
				out[o++] = c;
				st = SMTP_DATA_TEXT;
			}
			break;
		case SMTP_DATA_DOT:
			if (c == '\r')
				st = SMTP_DATA_DOT_CR;
			else if (c == '\n') {
				/* "." ended by a bare LF: content, kept as is. */
				out[o++] = '.';
				out[o++] = '\n';
				st = SMTP_DATA_TEXT;
			} else {
				out[o++] = c;		/* the stuffed '.' is dropped */
				st = SMTP_DATA_TEXT;
			}
			break;
		case SMTP_DATA_DOT_CR:
			if (c == '\n') {
				rc = SMTP_DATA_END;
				st = SMTP_DATA_BOL;
				goto done;
			}
			/* ".\r" + more: a stuffed line holding a bare CR. */
			out[o++] = '\r';
			if (c == '\r')
				st = SMTP_DATA_CR;
			else {
				out[o++] = c;
				st = SMTP_DATA_TEXT;
			}
			break;
		case SMTP_DATA_TEXT:
			if (c == '\r')
				st = SMTP_DATA_CR;
			else
				out[o++] = c;		/* '\n': a bare LF, no line start */
			break;
		case SMTP_DATA_CR:
			if (c == '\n') {
				out[o++] = '\n';
				st = SMTP_DATA_BOL;
			} else if (c == '\r') {
				out[o++] = '\r';	/* the previous CR was bare */
			} else {
				out[o++] = '\r';
				out[o++] = c;
				st = SMTP_DATA_TEXT;
			}
			break;
		}
	}
done:
	d->state = st;
	*used = i;
	*outlen = o;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Received: headers                                                   */
/* ------------------------------------------------------------------ */

static const char received_prefix[] = "received:";
#define RECEIVED_LEN	(sizeof(received_prefix) - 1)

void
smtp_hdrscan_init(struct smtp_hdrscan *h)
{
	h->done = false;
	h->bol = true;
	h->match = 0;
	h->received = 0;
}

void
smtp_hdrscan_feed(struct smtp_hdrscan *h, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && !h->done; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (h->bol) {
			if (c == '\n') {
				h->done = true;		/* the empty line ends the header */
				return;
			}
			h->bol = false;
			h->match = 0;
		}
		if (c == '\n') {
			h->bol = true;
			continue;
		}
		if (h->match >= RECEIVED_LEN)
			continue;		/* decided for this line */
		if (tolower(c) != received_prefix[h->match]) {
			h->match = SIZE_MAX;
			continue;
		}
		if (++h->match == RECEIVED_LEN) {
			h->received++;
			h->match = SIZE_MAX;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Return-Path: headers                                                */
/* ------------------------------------------------------------------ */

static const char return_path_name[] = "return-path";
#define RETURN_PATH_LEN	(sizeof(return_path_name) - 1)

void
smtp_hdrfilter_init(struct smtp_hdrfilter *f)
{
	memset(f, 0, sizeof(*f));
	f->bol = true;
}

enum hold_verdict { HOLD_MORE, HOLD_RETURN_PATH, HOLD_OTHER };

/* Is the held start of a line "Return-Path" [WSP] ":", could it still become one, or not? */
static enum hold_verdict
hold_verdict(const struct smtp_hdrfilter *f)
{
	size_t i;

	for (i = 0; i < f->held && i < RETURN_PATH_LEN; i++)
		if (tolower((unsigned char)f->hold[i]) != return_path_name[i])
			return HOLD_OTHER;
	for (; i < f->held; i++) {
		if (f->hold[i] == ':')
			return i + 1 == f->held ? HOLD_RETURN_PATH : HOLD_OTHER;
		if (f->hold[i] != ' ' && f->hold[i] != '\t')
			return HOLD_OTHER;
	}
	return f->held < SMTP_HDRFILTER_HOLD ? HOLD_MORE : HOLD_OTHER;
}

/* The first octet of a header line: a continuation, the end of the header, or a field to look at. */
static void
hdrfilter_line_start(struct smtp_hdrfilter *f, char c, char *out, size_t *o)
{
	f->bol = false;
	if (f->dropping && (c == ' ' || c == '\t'))
		return;				/* a folded line of the dropped field */
	f->dropping = false;
	if (c == '\n') {
		f->done = true;			/* the empty line ends the header section */
		out[(*o)++] = c;
		return;
	}
	f->matching = true;
	f->held = 0;
}

size_t
smtp_hdrfilter_feed(struct smtp_hdrfilter *f, const char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		char c = in[i];

		if (f->done) {
			memcpy(out + o, in + i, len - i);
			return o + (len - i);
		}
		if (f->bol) {
			hdrfilter_line_start(f, c, out, &o);
			if (!f->matching) {
				if (c != '\n' && !f->dropping)
					out[o++] = c;
				continue;
			}
		}
		if (f->matching) {
			enum hold_verdict v;

			f->hold[f->held++] = c;
			v = hold_verdict(f);
			if (v == HOLD_MORE && c != '\n')
				continue;
			if (v == HOLD_RETURN_PATH) {
				f->dropping = true;
			} else {		/* another field, or a line cut short */
				memcpy(out + o, f->hold, f->held);
				o += f->held;
			}
			f->matching = false;
			f->held = 0;
			f->bol = c == '\n';
			continue;
		}
		if (!f->dropping)
			out[o++] = c;
		if (c == '\n')
			f->bol = true;
	}
	return o;
}

size_t
smtp_hdrfilter_finish(struct smtp_hdrfilter *f, char *out)
{
	size_t n = f->matching ? f->held : 0;

	memcpy(out, f->hold, n);
	f->matching = false;
	f->held = 0;
	return n;
}
