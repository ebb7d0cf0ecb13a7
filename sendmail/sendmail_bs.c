/*
 * NAME
 *	sendmail_bs - spoolgate-sendmail -bs: SMTP on standard input and output
 * DESCRIPTION
 *	See sendmail_bs.h.  One process, one client, no concurrency: blocking
 *	reads of standard input into a buffer, a command table of {verb,
 *	handler}, and one reply() through which every reply goes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/addr.h"
#include "../common/errmap.h"
#include "../common/unixuser.h"
#include "../common/smtp_parse.h"
#include "sendmail_bs.h"

#define BS_IN_BUF	(64u << 10)

struct bs {
	const struct submitter *who;
	const char	       *own_sender;	/* what an untrusted MAIL FROM becomes */
	char			in[BS_IN_BUF];
	size_t			inlen;
	char			line[BS_IN_BUF];	/* the command being run */
	bool			eof;
	bool			greeted;
	bool			has_mail;
	bool			quit;
	unsigned		errors;
	char			sender[ADDR_MAX];
	char		      **rcpt;
	size_t			nrcpt;
	int			status;		/* the exit status */
};

/* Every reply: the row's code and enhanced code, its text, an optional detail. */
static void
reply(struct bs *b, enum reply_id id, const char *fmt, ...)
{
	const struct errmap_reply *r = errmap_get(id);
	char detail[1024] = "";
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	printf("%d%s%s %s%s%s\r\n", r->code, r->esc[0] ? " " : "", r->esc, r->text, detail[0] ? ": " : "", detail);
	fflush(stdout);
	if (r->code >= 400 && ++b->errors >= b->who->cfg->max_errors && id != REPLY_TOO_MANY_ERRORS) {
		reply(b, REPLY_TOO_MANY_ERRORS, NULL);
		b->quit = true;
	}
}

static void
reset_transaction(struct bs *b)
{
	size_t i;

	for (i = 0; i < b->nrcpt; i++)
		free(b->rcpt[i]);
	free(b->rcpt);
	b->rcpt = NULL;
	b->nrcpt = 0;
	b->has_mail = false;
	b->sender[0] = '\0';
}

static int
fill(struct bs *b)
{
	ssize_t n;

	if (b->eof || b->inlen == sizeof(b->in))
		return 0;
	do
		n = read(STDIN_FILENO, b->in + b->inlen, sizeof(b->in) - b->inlen);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		b->eof = true;
		return 0;
	}
	b->inlen += (size_t)n;
	return 1;
}

static void
consume(struct bs *b, size_t n)
{
	memmove(b->in, b->in + n, b->inlen - n);
	b->inlen -= n;
}

static void
cmd_helo(struct bs *b, const char *verb, const char *arg)
{
	char name[SMTP_HELO_MAX];
	const char *host = b->who->cfg->hostname;

	if (smtp_parse_helo(arg, name, sizeof(name)) < 0) {
		reply(b, REPLY_SYNTAX, "%s needs a domain or an address literal", verb);
		return;
	}
	reset_transaction(b);
	b->greeted = true;
	if (strcmp(verb, "HELO") == 0) {
		printf("250 %s\r\n", host);
	} else {
		/* The capabilities of this dialogue (RFC 5321 4.1.1.1); no AUTH, no TLS: a local pipe. */
		printf("250-%s\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE %lu\r\n250 HELP\r\n", host,
		    b->who->cfg->max_message_size);
	}
	fflush(stdout);
}

static void
cmd_mail(struct bs *b, const char *verb, const char *arg)
{
	struct smtp_perror why;
	struct smtp_mail m;
	int r;

	(void)verb;
	if (b->has_mail) {
		reply(b, REPLY_BAD_SEQUENCE, "MAIL inside a transaction (RSET first)");
		return;
	}
	if (smtp_parse_mail(arg, &m, &why) < 0) {
		reply(b, why.reply, "%s", why.detail ? why.detail : "");
		return;
	}
	/* The parser knows the server's extensions; -bs offers none of these (its EHLO says so). */
	if (m.body == SMTP_BODY_BINARYMIME || m.smtputf8 || m.transid[0] != '\0') {
		reply(b, REPLY_BAD_PARAMETER, "BINARYMIME, SMTPUTF8 and TRANSID are not offered by sendmail -bs");
		return;
	}
	if (m.has_size && m.size > b->who->cfg->max_message_size) {
		reply(b, REPLY_MESSAGE_TOO_BIG, "SIZE=%llu is over %lu", (unsigned long long)m.size,
		    b->who->cfg->max_message_size);
		return;
	}
	r = unixuser_sender(b->who->cfg, b->who->login, m.from, b->sender, sizeof(b->sender));
	b->has_mail = true;
	if (r == -EPERM)
		reply(b, REPLY_SENDER_OK, "<%s> (%s may not choose the sender: not in [sendmail] trusted_users; "
		    "MAIL FROM:<%s> replaced)", b->sender, b->who->login, m.from);
	else
		reply(b, REPLY_SENDER_OK, "<%s>", b->sender);
}

static void
cmd_rcpt(struct bs *b, const char *verb, const char *arg)
{
	struct smtp_perror why;
	struct smtp_rcpt rc;
	char **grown;

	(void)verb;
	if (!b->has_mail) {
		reply(b, REPLY_BAD_SEQUENCE, "RCPT before MAIL");
		return;
	}
	if (smtp_parse_rcpt(arg, &rc, &why) < 0) {
		reply(b, why.reply, "%s", why.detail ? why.detail : "");
		return;
	}
	if (b->nrcpt >= b->who->cfg->max_recipients || b->nrcpt >= DROP_MAX_RCPT) {
		reply(b, REPLY_TOO_MANY_RCPTS, NULL);
		return;
	}
	if ((grown = realloc(b->rcpt, (b->nrcpt + 1) * sizeof(*grown))) == NULL ||
	    (grown[b->nrcpt] = strdup(rc.to)) == NULL) {
		if (grown != NULL)
			b->rcpt = grown;
		reply(b, REPLY_NO_MEMORY, NULL);
		return;
	}
	b->rcpt = grown;
	b->nrcpt++;
	reply(b, REPLY_RCPT_OK, "<%s>", rc.to);
}

/*
 * The message: decoded (dot-unstuffed, CRLF to LF) into a drop until
 * <CRLF>.<CRLF>; what follows it stays in the buffer as the next command.
 */
static int
read_data(struct bs *b, struct submit_msg *m)
{
	struct smtp_data d;
	char out[8192];
	size_t used, outlen;
	int end = SMTP_DATA_MORE;

	smtp_data_init(&d);
	while (end != SMTP_DATA_END) {
		if (b->inlen == 0 && !fill(b))
			return -ECONNRESET;	/* the input ended inside the message */
		end = smtp_data_decode(&d, b->in, b->inlen, &used, out, sizeof(out), &outlen);
		consume(b, used);
		(void)submit_write(m, out, outlen);	/* an error is sticky: reported at the end */
	}
	return 0;
}

static void
cmd_data(struct bs *b, const char *verb, const char *arg)
{
	struct drop_record rec = { .uid = b->who->uid, .sender = b->sender, .rcpt = b->rcpt, .nrcpt = b->nrcpt };
	struct submit_msg m;
	char why[1024];
	int r;

	(void)verb;
	if (arg[0] != '\0') {
		reply(b, REPLY_NO_PARAMS, NULL);
		return;
	}
	if (!b->has_mail || b->nrcpt == 0) {
		reply(b, b->has_mail ? REPLY_NO_VALID_RCPTS : REPLY_BAD_SEQUENCE, "%s",
		    b->has_mail ? "no recipient accepted" : "DATA before MAIL");
		return;
	}
	if ((r = submit_begin(b->who, &rec, &m)) < 0) {
		submit_abort(b->who, &m);
		reply(b, REPLY_LOCAL_ERROR, "cannot create a file in %s/%s: %s", b->who->cfg->spool_dir, DROP_DIR,
		    strerror(-r));
		return;
	}
	reply(b, REPLY_START_DATA, NULL);
	if (read_data(b, &m) < 0) {
		submit_abort(b->who, &m);
		b->status = EX_TEMPFAIL;
		b->quit = true;
		return;
	}
	r = submit_end(b->who, &rec, &m, why, sizeof(why));
	if (r < 0) {
		const struct errmap_reply *row = errmap_from_errno(-r);

		reply(b, row->id, "%s", why);
	} else {
		reply(b, REPLY_QUEUED, "in %s/%s for the gateway", DROP_DIR, m.name);
	}
	reset_transaction(b);
}

static void
cmd_rset(struct bs *b, const char *verb, const char *arg)
{
	(void)verb;
	(void)arg;
	reset_transaction(b);
	reply(b, REPLY_OK, NULL);
}

static void
cmd_noop(struct bs *b, const char *verb, const char *arg)
{
	(void)verb;
	(void)arg;
	reply(b, REPLY_OK, NULL);
}

static void
cmd_quit(struct bs *b, const char *verb, const char *arg)
{
	(void)verb;
	(void)arg;
	reply(b, REPLY_BYE, NULL);
	b->quit = true;
}

static void
cmd_help(struct bs *b, const char *verb, const char *arg)
{
	(void)verb;
	(void)arg;
	reply(b, REPLY_HELP, NULL);
}

static void
cmd_vrfy(struct bs *b, const char *verb, const char *arg)
{
	(void)verb;
	(void)arg;
	reply(b, REPLY_CANNOT_VRFY, NULL);
}

static const struct {
	const char     *verb;
	bool		needs_greeting;
	void	      (*run)(struct bs *b, const char *verb, const char *arg);
} bs_commands[] = {
	{ "EHLO", false, cmd_helo },
	{ "HELO", false, cmd_helo },
	{ "MAIL", true, cmd_mail },
	{ "RCPT", true, cmd_rcpt },
	{ "DATA", true, cmd_data },
	{ "RSET", false, cmd_rset },
	{ "NOOP", false, cmd_noop },
	{ "QUIT", false, cmd_quit },
	{ "HELP", false, cmd_help },
	{ "VRFY", false, cmd_vrfy },
};

static void
run_command(struct bs *b, char *line, size_t len)
{
	struct smtp_cmdline cl;
	size_t i;

	if (smtp_parse_command(line, len, &cl) < 0) {
		reply(b, REPLY_UNKNOWN_COMMAND, NULL);
		return;
	}
	for (i = 0; i < sizeof(bs_commands) / sizeof(bs_commands[0]); i++) {
		if (strcmp(bs_commands[i].verb, cl.verb) != 0)
			continue;
		if (bs_commands[i].needs_greeting && !b->greeted)
			reply(b, REPLY_BAD_SEQUENCE, "send EHLO or HELO first");
		else
			bs_commands[i].run(b, cl.verb, cl.arg);
		return;
	}
	reply(b, REPLY_UNKNOWN_COMMAND, NULL);
}

/* One command line, bounded by max_line; a longer one is refused whole. */
static int
next_line(struct bs *b)
{
	size_t max = b->who->cfg->max_line < sizeof(b->in) ? b->who->cfg->max_line : sizeof(b->in);
	char *lf;

	for (;;) {
		lf = memchr(b->in, '\n', b->inlen);
		if (lf != NULL && (size_t)(lf - b->in) + 1 <= max) {
			size_t n = (size_t)(lf - b->in), len = n > 0 && b->in[n - 1] == '\r' ? n - 1 : n;

			memcpy(b->line, b->in, len);
			consume(b, n + 1);
			run_command(b, b->line, len);
			return 1;
		}
		if (lf != NULL || b->inlen >= max) {
			/* too long: drop up to its end */
			while ((lf = memchr(b->in, '\n', b->inlen)) == NULL) {
				b->inlen = 0;
				if (!fill(b))
					return 0;
			}
			consume(b, (size_t)(lf - b->in) + 1);
			reply(b, REPLY_LINE_TOO_LONG, NULL);
			return 1;
		}
		if (!fill(b))
			return 0;
	}
}

int
sendmail_bs(const struct submitter *who, const char *sender)
{
	struct bs *b = calloc(1, sizeof(*b));
	int status;

	if (b == NULL)
		return EX_OSERR;
	b->who = who;
	b->own_sender = sender;
	b->status = EX_OK;
	printf("%d %s ESMTP spoolgate (sendmail -bs, uid %lu)\r\n", errmap_get(REPLY_GREETING)->code,
	    who->cfg->hostname, (unsigned long)who->uid);
	fflush(stdout);
	while (!b->quit && next_line(b))
		;
	reset_transaction(b);
	status = b->status;
	free(b);
	return status;
}
