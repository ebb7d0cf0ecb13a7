/*
 * NAME
 *	outbox - submit a file as sendmail -t would
 * DESCRIPTION
 *	See outbox.h.  The header section is split into fields here (folded
 *	lines, CRLF or LF); the address lists are parsed by GMime, which
 *	knows RFC 5322 groups, display names, comments and quoting far better
 *	than a hand-written parser would.  Every address GMime returns is then
 *	checked as an RFC 5321 mailbox (addr_parse_path), because that is what
 *	the relay will have to send.
 */
#include <errno.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "commitgroup.h"
#include "errmap.h"
#include "log.h"
#include "outbox.h"

#define COPY_CHUNK	(64u << 10)

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();
}

static int
fail(int err, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

void
outbox_headers_free(struct outbox_headers *h)
{
	size_t i;

	for (i = 0; i < h->nrcpt; i++)
		free(h->rcpt[i]);
	free(h->rcpt);
	free(h->from);
	free(h->drop);
	memset(h, 0, sizeof(*h));
}

static int
add_rcpt(struct outbox_headers *h, const char *addr)
{
	char **grown;
	size_t i;

	for (i = 0; i < h->nrcpt; i++)
		if (addr_same_mailbox(h->rcpt[i], addr))
			return 0;
	if (h->nrcpt >= ENVELOPE_MAX_RCPT)
		return -E2BIG;
	if ((grown = realloc(h->rcpt, (h->nrcpt + 1) * sizeof(*grown))) == NULL)
		return -ENOMEM;
	h->rcpt = grown;
	if ((h->rcpt[h->nrcpt] = strdup(addr)) == NULL)
		return -ENOMEM;
	h->nrcpt++;
	return 0;
}

static int
add_drop(struct outbox_headers *h, off_t start, off_t end)
{
	struct outbox_range *grown = realloc(h->drop, (h->ndrop + 1) * sizeof(*grown));

	if (grown == NULL)
		return -ENOMEM;
	h->drop = grown;
	h->drop[h->ndrop].start = start;
	h->drop[h->ndrop].end = end;
	h->ndrop++;
	return 0;
}

/* The address must be one the relay can send: an RFC 5321 mailbox. */
static int
check_mailbox(const char *field, const char *addr, char *why, size_t whylen)
{
	char path[ADDR_MAX + 3], out[ADDR_MAX];
	int r;

	if (strlen(addr) > ADDR_MAX - 1)
		return fail(-EINVAL, why, whylen, "%s: address too long", field);
	snprintf(path, sizeof(path), "<%s>", addr);
	if ((r = addr_parse_path(path, out, sizeof(out), NULL, 0)) < 0)
		return fail(-EINVAL, why, whylen, "%s: '%s' is not a valid mail address (%s)",
		    field, addr, strerror(-r));
	return 0;
}

/* What one parse of a header section works with. */
struct parse_ctx {
	struct outbox_headers	       *h;
	const struct outbox_policy     *pol;	/* never NULL: outbox_policy_outbox for outbox/ */
	char			       *why;
	size_t				whylen;
};

/* outbox/: the envelope is the headers', and a message needs its own From:. */
static const struct outbox_policy outbox_policy_outbox = { .rcpt_from_headers = true };

/*
 * An address without '@' is completed with the policy's domain (sendmail:
 * "root" is root@<domain>, as Postfix's append_at_myorigin); outbox/ has
 * none, and addr_parse_path() refuses it.  Returns a malloc'd address.
 */
static char *
qualify(const struct outbox_policy *pol, const char *addr)
{
	char *out;

	if (pol->qualify_domain == NULL || addr[0] == '\0' || strchr(addr, '@') != NULL)
		return strdup(addr);
	if (asprintf(&out, "%s@%s", addr, pol->qualify_domain) < 0)
		return NULL;
	return out;
}

typedef int (*mailbox_fn)(struct parse_ctx *c, const char *field, const char *addr);

static int
walk_list(InternetAddressList *list, struct parse_ctx *c, const char *field, mailbox_fn fn)
{
	int i, n = internet_address_list_length(list), r;

	for (i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);

		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			InternetAddressList *members = internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia));

			if (members != NULL && (r = walk_list(members, c, field, fn)) != 0)
				return r;
			continue;
		}
		if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));

			if ((r = fn(c, field, addr ? addr : "")) != 0)
				return r;
		}
	}
	return 0;
}

static int
take_rcpt(struct parse_ctx *c, const char *field, const char *given)
{
	char *addr = qualify(c->pol, given);
	int r;

	if (addr == NULL)
		return -ENOMEM;
	if ((r = check_mailbox(field, addr, c->why, c->whylen)) == 0 && (r = add_rcpt(c->h, addr)) < 0)
		r = fail(r, c->why, c->whylen, "%s: too many recipients", field);
	free(addr);
	return r;
}

static int
take_sender(struct parse_ctx *c, const char *field, const char *given)
{
	char *addr;
	int r;

	if (c->h->from != NULL)
		return 1;	/* the first mailbox wins; stop walking */
	if ((addr = qualify(c->pol, given)) == NULL)
		return -ENOMEM;
	if ((r = check_mailbox(field, addr, c->why, c->whylen)) < 0) {
		free(addr);
		return r;
	}
	c->h->from = addr;
	return 1;
}

static int
parse_address_field(struct parse_ctx *c, const char *field, const char *value, mailbox_fn fn)
{
	InternetAddressList *list;
	const char *p;
	int r;

	for (p = value; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '\0')
		return 0;	/* an empty To: is legal and names nobody */
	list = internet_address_list_parse(NULL, value);
	if (list == NULL || internet_address_list_length(list) == 0) {
		if (list != NULL)
			g_object_unref(list);
		return fail(-EINVAL, c->why, c->whylen, "%s: cannot parse address list '%.200s'", field, value);
	}
	r = walk_list(list, c, field, fn);
	g_object_unref(list);
	return r < 0 ? r : 0;
}

/* Length of the line at p (up to and including LF, or to end). */
static size_t
line_length(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));

	return lf ? (size_t)(lf + 1 - p) : (size_t)(end - p);
}

static int
is_blank_line(const char *p, size_t n)
{
	return (n == 1 && p[0] == '\n') || (n == 2 && p[0] == '\r' && p[1] == '\n');
}

/* Field name: printable ASCII except ':' (RFC 5322 2.2), then ':'. */
static size_t
field_name_length(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && p[i] != ':'; i++)
		if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126)
			return 0;
	return i < n && i > 0 ? i : 0;
}

/* Unfolds a field's value (continuation lines joined, CR/LF dropped). */
static char *
unfold(const char *p, size_t n)
{
	char *out = malloc(n + 1);
	size_t i, o = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (p[i] != '\r' && p[i] != '\n')
			out[o++] = p[i];
	out[o] = '\0';
	return out;
}

static int
handle_field(struct parse_ctx *c, const char *name, size_t namelen, const char *value,
    size_t vlen, off_t start, off_t end)
{
	static const char *const rcpt_fields[] = { "To", "Cc", "Bcc" };
	struct outbox_headers *h = c->h;
	char field[16], *v;
	size_t i;
	int r = 0, is_rcpt = -1;

	if (namelen >= sizeof(field))
		return 0;
	snprintf(field, sizeof(field), "%.*s", (int)namelen, name);
	if (strcasecmp(field, "Return-Path") == 0)
		return add_drop(h, start, end);	/* only the final delivery writes one (RFC 5321 4.4) */
	if (strcasecmp(field, "Date") == 0)
		h->has_date = true;
	if (strcasecmp(field, "Message-ID") == 0)
		h->has_message_id = true;
	if (strcasecmp(field, "From") == 0)
		h->has_from = true;
	for (i = 0; i < 3; i++)
		if (strcasecmp(field, rcpt_fields[i]) == 0)
			is_rcpt = (int)i;
	if (is_rcpt >= 0 && !c->pol->rcpt_from_headers)
		return is_rcpt == 2 ? add_drop(h, start, end) : 0;	/* Bcc: goes all the same */
	if (is_rcpt < 0 && strcasecmp(field, "From") != 0 && strcasecmp(field, "Sender") != 0)
		return 0;
	if ((v = unfold(value, vlen)) == NULL)
		return -ENOMEM;
	if (is_rcpt >= 0)
		r = parse_address_field(c, field, v, take_rcpt);
	else if (strcasecmp(field, "Sender") == 0 || h->from == NULL) {
		char *before = h->from;	/* Sender: names the sender even after From: */

		h->from = NULL;
		r = parse_address_field(c, field, v, take_sender);
		if (h->from == NULL)
			h->from = before;	/* an empty Sender: names nobody */
		else
			free(before);
	}
	free(v);
	if (r == 0 && is_rcpt == 2)
		r = add_drop(h, start, end);
	return r;
}

/* Recipients named outside the message (sendmail's arguments, -bs RCPT), first. */
static int
take_given_rcpts(struct parse_ctx *c)
{
	size_t i;
	int r;

	for (i = 0; i < c->pol->nrcpt; i++)
		if ((r = take_rcpt(c, "recipient", c->pol->rcpt[i])) < 0)
			return r;
	return 0;
}

/*
 * A writer who may not choose its sender (unixuser_sender()) sends as its
 * own address only: the sender the headers name must be that one.
 */
static int
check_sender_owned(struct parse_ctx *c)
{
	const struct outbox_policy *pol = c->pol;

	if (pol->own_sender == NULL || addr_same_mailbox(c->h->from, pol->own_sender))
		return 0;
	return fail(-EPERM, c->why, c->whylen, "sender <%s> (From:/Sender:) is not %s's to use: %s may send as "
	    "<%s> only (not in [sendmail] trusted_users)", c->h->from, pol->writer ? pol->writer : "the writer",
	    pol->writer ? pol->writer : "the writer", pol->own_sender);
}

/*
 * The envelope sender: the policy's when it names one (sendmail decided
 * it), else the headers' (From:, Sender:), which the message must have
 * unless the policy adds a From: of its own.
 */
static int
settle_sender(struct parse_ctx *c)
{
	struct outbox_headers *h = c->h;

	if (c->pol->sender != NULL) {
		int r = c->pol->sender[0] == '\0' ? 0 : check_mailbox("sender", c->pol->sender, c->why, c->whylen);

		if (r < 0)
			return r;
		free(h->from);
		return (h->from = strdup(c->pol->sender)) == NULL ? -ENOMEM : 0;
	}
	if (h->from == NULL)
		return fail(-EBADMSG, c->why, c->whylen, "not a message: no From: header (RFC 5322 3.6 requires one)");
	return check_sender_owned(c);
}

int
outbox_parse_headers(const char *buf, size_t len, struct outbox_headers *out, char *why, size_t whylen)
{
	return outbox_check_headers(buf, len, NULL, out, why, whylen);
}

int
outbox_check_headers(const char *buf, size_t len, const struct outbox_policy *pol,
    struct outbox_headers *out, char *why, size_t whylen)
{
	struct parse_ctx c = { .h = out, .pol = pol != NULL ? pol : &outbox_policy_outbox,
		.why = why, .whylen = whylen };
	const char *p = buf, *end = buf + len;
	unsigned lineno = 1, nfields = 0;
	int r;

	pthread_once(&gmime_once, gmime_start);
	memset(out, 0, sizeof(*out));
	r = take_given_rcpts(&c);
	while (r == 0 && p < end) {
		size_t n = line_length(p, end), namelen, flen;
		const char *field = p;

		if (is_blank_line(p, n)) {
			p += n;
			break;
		}
		if (memchr(p, '\0', n) != NULL) {
			r = fail(-EBADMSG, why, whylen, "NUL byte in the header section");
			break;
		}
		if ((namelen = field_name_length(p, n)) == 0 && nfields == 0 && c.pol->headerless_ok) {
			out->headerless = true;	/* all body: sendmail's "echo text | sendmail root" */
			break;
		}
		if (namelen == 0) {
			r = fail(-EBADMSG, why, whylen, "not a message: header line %u is not a 'Name: value' field",
			    lineno);
			break;
		}
		/* The field goes on while lines start with white space. */
		flen = n;
		while (field + flen < end && (field[flen] == ' ' || field[flen] == '\t')) {
			flen += line_length(field + flen, end);
			lineno++;
		}
		lineno++;
		nfields++;
		if ((r = handle_field(&c, field, namelen, field + namelen + 1, flen - namelen - 1,
		    field - buf, field + flen - buf)) < 0)
			break;
		p = field + flen;
	}
	out->body_start = p - buf;
	if (r == 0 && p == buf && len == 0 && c.pol->headerless_ok)
		out->headerless = true;		/* an empty message: the gateway's headers and nothing else */
	if (r == 0 && p == buf && !out->headerless)
		r = fail(-EBADMSG, why, whylen, "not a message: empty file");
	if (r == 0 && nfields == 0 && !c.pol->headerless_ok)
		r = fail(-EBADMSG, why, whylen, "not a message: no header section (the file starts with an empty line)");
	if (r == 0 && out->nrcpt == 0)
		r = fail(-EDESTADDRREQ, why, whylen, "no recipient: %s", !c.pol->rcpt_from_headers ?
		    "none given (name them as arguments, or use -t to take them from To:, Cc: and Bcc:)" :
		    c.pol->nrcpt == 0 ? "no address in To:, Cc: or Bcc:" :
		    "none given, and no address in To:, Cc: or Bcc:");
	if (r == 0)
		r = settle_sender(&c);
	if (r < 0)
		outbox_headers_free(out);
	return r;
}

/* Does the header section end (a blank line) within buf? */
static int
has_header_end(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;

	while (p < end) {
		size_t n = line_length(p, end);

		if (p + n == end && p[n - 1] != '\n')
			return 0;	/* a line cut by the bound */
		if (is_blank_line(p, n))
			return 1;
		p += n;
	}
	return 0;
}


/* Copies [from, to) of fd into msg. */
static int
copy_range(int fd, struct spool_msg *msg, off_t from, off_t to, char *chunk)
{
	ssize_t n;
	int r;

	while (from < to) {
		size_t want = (size_t)(to - from) < COPY_CHUNK ? (size_t)(to - from) : COPY_CHUNK;

		n = pread(fd, chunk, want, from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* the file shrank under us */
		if ((r = spool_msg_write(msg, chunk, (size_t)n)) < 0)
			return r;
		from += n;
	}
	return 0;
}

/* The message (from start to end of fd) minus its Bcc: and Return-Path: fields. */
static int
copy_without_dropped(int fd, off_t start, off_t end, const struct outbox_headers *h, struct spool_msg *msg)
{
	char *chunk = malloc(COPY_CHUNK);
	off_t pos = start;
	size_t i;
	int r = 0;

	if (chunk == NULL)
		return -ENOMEM;
	for (i = 0; r == 0 && i < h->ndrop; i++) {
		r = copy_range(fd, msg, pos, start + h->drop[i].start, chunk);
		pos = start + h->drop[i].end;
	}
	if (r == 0)
		r = copy_range(fd, msg, pos, end, chunk);
	free(chunk);
	return r;
}

/*
 * A file name as it goes into the Received: comment: printable ASCII
 * stays, every other octet and the ones that mean something in a comment
 * or in this notation ('(', ')', '\\', '"', '%', space) become %XX.  The
 * result is one token of visible ASCII whatever the name holds (control
 * characters, parentheses, non-UTF-8), so it can never end the comment
 * or the header, and a fold inside it is plainly not part of the name.
 */
size_t
outbox_quote_name(const char *name, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		bool plain = *p > 0x20 && *p < 0x7f && strchr("()\\\"%", *p) == NULL;

		if (o + (plain ? 1 : 3) >= outlen)
			break;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (outlen > 0)
		out[o] = '\0';
	return o;
}

/* The host name for Message-ID and Received:, when it is a usable domain. */
static const char *
trace_hostname(const struct spool *spool, const char *configured)
{
	if (configured != NULL && configured[0] != '\0' && addr_domain_valid(configured) == 0)
		return configured;
	if (addr_domain_valid(spool_hostname(spool)) == 0)
		return spool_hostname(spool);
	return "localhost";
}

/*
 * RFC 5322 3.3 date-time in local time with a numeric zone, e.g.
 * "Wed, 02 Dec 2026 06:30:00 +0100".  Names are written from our own
 * tables: strftime's %a and %b follow the locale.
 */
int
outbox_format_date(time_t t, char *out, size_t outlen)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off, n;

	if (localtime_r(&t, &tm) == NULL)
		return -EOVERFLOW;
	off = tm.tm_gmtoff / 60;
	n = snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

#define TRACE_LINE	78	/* RFC 5322 2.1.1: lines SHOULD stay within 78 characters */
#define TRACE_FOLD	64	/* octets of a quoted name per folded line */

/* The end of the next piece of a quoted name: at most TRACE_FOLD octets, never inside a %XX. */
static size_t
fold_end(const char *quoted, size_t at, size_t qlen)
{
	size_t end = qlen - at <= TRACE_FOLD ? qlen : at + TRACE_FOLD;

	if (end < qlen && quoted[end - 1] == '%')
		end -= 1;
	else if (end < qlen && quoted[end - 2] == '%')
		end -= 2;
	return end;
}

/*
 * The From: a sendmail submission gets when it has none (as Postfix's
 * cleanup adds one): the user's address, with the -F name as display name
 * (GMime quotes it, and encodes it when it is not ASCII, so that no name
 * can end the header).
 */
static int
write_from_header(struct spool_msg *msg, const struct outbox_policy *pol)
{
	InternetAddress *ia = internet_address_mailbox_new(pol->from_name, pol->from_addr);
	char *text;
	int r;

	if (ia == NULL)
		return -ENOMEM;
	text = internet_address_to_string(ia, NULL, TRUE);
	g_object_unref(ia);
	if (text == NULL)
		return -ENOMEM;
	if ((r = spool_msg_write(msg, "From: ", 6)) == 0 && (r = spool_msg_write(msg, text, strlen(text))) == 0)
		r = spool_msg_write(msg, "\n", 1);
	g_free(text);
	return r;
}

/*
 * The file part of Received: ("file <quoted name>"), folded, for an outbox/
 * file; used is the length of the line so far.
 */
static int
write_trace_name(struct spool_msg *msg, const char *name, size_t used)
{
	char quoted[3 * SPOOL_NAME_MAX + 1];
	size_t qlen = outbox_quote_name(name, quoted, sizeof(quoted)), at, next;
	bool fits = used + 7 + qlen + 2 <= TRACE_LINE;
	int r;

	if ((r = spool_msg_write(msg, fits ? ", file " : ",\n\tfile ", fits ? 7 : 8)) < 0)
		return r;
	for (at = 0; at < qlen; at = next) {
		next = fold_end(quoted, at, qlen);
		if (at > 0 && (r = spool_msg_write(msg, "\n\t", 2)) < 0)
			return r;
		if ((r = spool_msg_write(msg, quoted + at, next - at)) < 0)
			return r;
	}
	return 0;
}

/*
 * Received: records the submission as Postfix's pickup does for a local
 * one (by whom, the writer's uid, the outbox/ file), then Date: and
 * Message-ID: when the file has none (as sendmail -t would add them), and
 * From: for a sendmail submission without one.
 */
static int
write_trace_headers(struct spool_msg *msg, const struct outbox_headers *h,
    const struct outbox_source *src, const char *host)
{
	char date[64], line[512];
	int r, n;

	if ((r = outbox_format_date(time(NULL), date, sizeof(date))) < 0)
		return r;
	n = snprintf(line, sizeof(line), "Received: by %s (spoolgate, from %s)\n", host,
	    src->via != NULL ? src->via : "outbox");
	if ((r = spool_msg_write(msg, line, (size_t)n)) < 0)
		return r;
	n = snprintf(line, sizeof(line), "\tid %s (uid %lu%s%s", spool_msg_id(msg), (unsigned long)src->uid,
	    src->user != NULL ? ", user " : "", src->user != NULL ? src->user : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return -ENAMETOOLONG;
	if ((r = spool_msg_write(msg, line, (size_t)n)) < 0)
		return r;
	if (src->name != NULL && (r = write_trace_name(msg, src->name, (size_t)n + 7)) < 0)
		return r;
	n = snprintf(line, sizeof(line), ");\n\t%s\n", date);
	if ((r = spool_msg_write(msg, line, (size_t)n)) < 0)
		return r;
	if (!h->has_date) {
		n = snprintf(line, sizeof(line), "Date: %s\n", date);
		if ((r = spool_msg_write(msg, line, (size_t)n)) < 0)
			return r;
	}
	if (!h->has_message_id) {
		n = snprintf(line, sizeof(line), "Message-ID: <%s@%s>\n", spool_msg_id(msg), host);
		if ((r = spool_msg_write(msg, line, (size_t)n)) < 0)
			return r;
	}
	if (!h->has_from && src->policy != NULL && src->policy->from_addr != NULL &&
	    (r = write_from_header(msg, src->policy)) < 0)
		return r;
	return h->headerless ? spool_msg_write(msg, "\n", 1) : 0;	/* the body starts after our header */
}

/* Where the message goes once aliases are expanded: addresses for the relay, local mailboxes. */
struct targets {
	char	      **remote;
	size_t		nremote;
	char	      **local;
	size_t		nlocal;
	size_t		cap;		/* of each array: the bound on both together */
};

static void
targets_free(struct targets *t)
{
	size_t i;

	for (i = 0; i < t->nremote; i++)
		free(t->remote[i]);
	for (i = 0; i < t->nlocal; i++)
		free(t->local[i]);
	free(t->remote);
	free(t->local);
}

static int
targets_add(struct targets *t, bool local, const char *value)
{
	char ***list = local ? &t->local : &t->remote;
	size_t *n = local ? &t->nlocal : &t->nremote, i;

	for (i = 0; i < *n; i++)
		if (local ? strcmp((*list)[i], value) == 0 : addr_same_mailbox((*list)[i], value))
			return 0;
	if (t->nlocal + t->nremote >= t->cap)
		return -E2BIG;
	if (((*list)[*n] = strdup(value)) == NULL)
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* Expands the recipients through the aliases (outbox.h); 0 or -errno with why. */
static int
resolve_targets(const struct outbox_headers *h, const struct outbox_source *src, const char *id,
    struct targets *t, char *why, size_t whylen)
{
	size_t max = src->cfg && src->aliases ? src->cfg->max_recipients : h->nrcpt;
	struct alias_expansion x;
	char logid[SPOOL_ID_MAX + 4], q[ADDR_MAX + 8];
	size_t i, k;
	int r = 0;

	if (max < h->nrcpt)
		max = h->nrcpt;		/* named in the message: never refused for the bound */
	memset(t, 0, sizeof(*t));
	t->cap = max;
	if ((t->remote = calloc(max + 1, sizeof(char *))) == NULL || (t->local = calloc(max + 1, sizeof(char *))) == NULL)
		return fail(-ENOMEM, why, whylen, "out of memory");
	snprintf(logid, sizeof(logid), "id=%s", id);
	for (i = 0; i < h->nrcpt && r == 0; i++) {
		r = src->aliases && src->cfg ? aliases_expand_address(src->aliases, src->cfg, h->rcpt[i],
		    max - t->nlocal - t->nremote, logid, &x) : 0;
		if (r == 0) {
			r = targets_add(t, false, h->rcpt[i]);
			continue;
		}
		if (r < 0)
			break;
		r = 0;
		for (k = 0; k < x.nrcpt && r == 0; k++) {
			bool local = x.rcpt[k].dest == ALIAS_MAILBOX;

			if (local && !cfg_mailbox_is_known(src->cfg, x.rcpt[k].value))
				log_warn("alias-target-refused", "%s rcpt=%s target=%s why=\"no such mailbox\"", logid,
				    log_quote(q, sizeof(q), h->rcpt[i]), x.rcpt[k].value);
			else
				r = targets_add(t, local, x.rcpt[k].value);
		}
		alias_expansion_free(&x);
	}
	if (r == -E2BIG)
		return fail(r, why, whylen, "the aliases expand to more than %zu recipients", max);
	if (r == -ELOOP)
		return fail(r, why, whylen, "aliases nested deeper than %u (%s)", ALIASES_MAX_DEPTH, h->rcpt[i]);
	if (r < 0)
		return fail(r, why, whylen, "expanding the aliases: %s", strerror(-r));
	if (t->nremote + t->nlocal == 0)
		return fail(-EDESTADDRREQ, why, whylen, "no recipient left once the aliases are expanded");
	return 0;
}

static int
queue_copy(struct spool *spool, int fd, off_t end, const struct outbox_headers *h,
    const struct outbox_source *src, char id[SPOOL_ID_MAX], char *why, size_t whylen)
{
	struct spool_msg *msg;
	struct envelope env;
	struct targets t;
	size_t i;
	int r;

	/*
	 * With aliases, a local mailbox may be a target: the data then starts
	 * with the final delivery's Return-Path: line, which the queued copy
	 * skips (its data-offset), as in an SMTP transaction.  Its files have
	 * no name until they are published where the group's syncfs makes
	 * the names durable (spool.h).
	 */
	if (src->group && commitgroup_syncs_fs(src->group))
		r = spool_msg_create_unnamed(spool, src->aliases ? h->from : NULL, &msg);
	else
		r = spool_msg_create(spool, src->aliases ? h->from : NULL, &msg);
	if (r < 0)
		return r;
	if ((r = resolve_targets(h, src, spool_msg_id(msg), &t, why, whylen)) < 0) {
		spool_msg_free(msg);
		targets_free(&t);
		return r;
	}
	r = envelope_init(&env, spool_msg_id(msg), h->from, src->origin);
	for (i = 0; r == 0 && i < t.nremote; i++)
		r = envelope_add_rcpt(&env, t.remote[i]);
	for (i = 0; r == 0 && i < t.nlocal; i++)
		r = spool_msg_deliver_local(msg, t.local[i]);
	if (r == 0)
		r = write_trace_headers(msg, h, src, trace_hostname(spool, src->hostname));
	if (r == 0)
		r = copy_without_dropped(fd, src->start, end, h, msg);
	if (r == 0 && t.nremote > 0)
		r = spool_msg_queue(msg, &env);
	targets_free(&t);
	if (r == 0)
		r = src->group ? commitgroup_commit(src->group, msg) : spool_msg_commit(msg);
	if (r == 0)
		snprintf(id, SPOOL_ID_MAX, "%s", spool_msg_id(msg));
	envelope_free(&env);
	spool_msg_free(msg);
	return r;
}

int
outbox_check(int fd, const struct outbox_source *src, struct outbox_headers *h, off_t *end,
    char *why, size_t whylen)
{
	unsigned long max_size = src->max_size;
	unsigned long long size;
	struct stat st;
	size_t headmax;
	ssize_t got;
	char *head;
	int r;

	if (fstat(fd, &st) < 0)
		return fail(-errno, why, whylen, "cannot stat the file: %s", strerror(errno));
	if (src->start < 0 || st.st_size < src->start)
		return fail(-EIO, why, whylen, "the file is shorter than its message's start");
	size = (unsigned long long)(st.st_size - src->start);
	if (size > max_size)
		return fail(-EFBIG, why, whylen, "message of %llu bytes exceeds the limit of %lu bytes",
		    size, max_size);
	headmax = size < OUTBOX_MAX_HEADER ? (size_t)size : OUTBOX_MAX_HEADER;
	if ((head = malloc(headmax + 1)) == NULL)
		return fail(-ENOMEM, why, whylen, "out of memory");
	if ((got = spool_pread_all(fd, head, headmax, src->start)) < 0) {
		free(head);
		return fail((int)got, why, whylen, "cannot read the file: %s", strerror((int)-got));
	}
	if ((size_t)got == OUTBOX_MAX_HEADER && size > (size_t)got && !has_header_end(head, (size_t)got)) {
		free(head);
		return fail(-EFBIG, why, whylen, "header section larger than %u bytes", OUTBOX_MAX_HEADER);
	}
	r = outbox_check_headers(head, (size_t)got, src->policy, h, why, whylen);
	free(head);
	if (r == 0 && end != NULL)
		*end = st.st_size;
	return r;
}

int
outbox_submit(struct spool *spool, int fd, const struct outbox_source *src,
    char id[SPOOL_ID_MAX], char *why, size_t whylen)
{
	struct outbox_headers h;
	off_t end;
	int r;

	if ((r = outbox_check(fd, src, &h, &end, why, whylen)) < 0)
		return r;
	why[0] = '\0';
	r = queue_copy(spool, fd, end, &h, src, id, why, whylen);
	if (r < 0 && why[0] == '\0')
		fail(r, why, whylen, "could not queue the message: %s", strerror(-r));
	outbox_headers_free(&h);
	return r;
}

/* A "rejected:" text must stay on one line (envelope.h): controls become '?'. */
static void
clean_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

int
outbox_reject(struct spool *spool, int fd, off_t keep, const char *origin, int err,
    const char *why, char id[SPOOL_ID_MAX])
{
	const struct errmap_reply *reply = errmap_from_errno(err);
	const char *errname = strerrorname_np(err);
	struct spool_msg *msg;
	struct envelope env;
	char text[1024], *chunk;
	int r;

	snprintf(text, sizeof(text), "rejected at submission: %s", why && why[0] ? why : strerror(err));
	clean_line(text);
	if ((chunk = malloc(COPY_CHUNK)) == NULL)
		return -ENOMEM;
	if ((r = spool_msg_create(spool, NULL, &msg)) < 0) {
		free(chunk);
		return r;
	}
	r = envelope_init(&env, spool_msg_id(msg), "", origin);
	if (r == 0)
		r = envelope_set_rejected(&env, reply->code, reply->esc, errname ? errname : "EUNKNOWN",
		    text);
	if (r == 0)
		r = copy_range(fd, msg, 0, keep, chunk);
	if (r == 0)
		r = spool_msg_reject(msg, &env);
	if (r == 0)
		r = spool_msg_commit(msg);
	if (r == 0)
		snprintf(id, SPOOL_ID_MAX, "%s", spool_msg_id(msg));
	envelope_free(&env);
	spool_msg_free(msg);
	free(chunk);
	return r;
}
