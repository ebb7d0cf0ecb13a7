/*
 * NAME
 *	dsn - delivery status notifications (RFC 3464) from an envelope
 * DESCRIPTION
 *	See dsn.h.  The three parts are made as text first (every value
 *	made 7-bit and bounded by clean_copy()), then assembled by GMime,
 *	which writes the boundaries, the Content-Type parameters and the
 *	header encodings.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "spool.h"

#include "dsn.h"

#define DSN_FOLD	76	/* fold a field's value at a space past this column */

/* The original as the third part returns it (RFC 3461 4.3). */
struct dsn_returned {
	char	       *text;		/* malloc'd; NULL: no third part */
	size_t		len;
	bool		full;		/* the whole message (message/rfc822), else its headers */
	const char     *why_headers;	/* RET=FULL but headers only: "too-large", "not-7bit" */
};

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();		/* counted by GMime: outbox.c and mime7bit.c may call it too */
}

/*
 * A copy of s that cannot break a line, a field or a part: control
 * characters, DEL and 8-bit octets become '?', at most max octets
 * (then "...").  NULL on ENOMEM.
 */
static char *
clean_copy(const char *s, size_t max)
{
	size_t n = strlen(s), i;
	bool cut = n > max;
	char *out;

	if (cut)
		n = max;
	if ((out = malloc(n + 4)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	strcpy(out + n, cut ? "..." : "");
	return out;
}

/*
 * value after prefix, folded at spaces so that lines stay short: a
 * continuation line starts with the space it was folded at (a field, RFC
 * 5322 2.2.3) or, with indent, after indent (the words of the text part).
 */
static void
put_folded(FILE *fp, const char *prefix, const char *value, const char *indent)
{
	size_t start = strlen(prefix), col = start;
	const char *p = value;

	fputs(prefix, fp);
	while (*p != '\0') {
		size_t word = strcspn(p + 1, " ") + 1;	/* up to the next space */

		if (col + word > DSN_FOLD && col > start && *p == ' ') {
			fputc('\n', fp);
			col = 0;
			if (indent != NULL) {
				fputs(indent, fp);
				col = strlen(indent);
				p++;		/* the indent replaces the space */
				word--;
			}
		}
		fwrite(p, 1, word, fp);
		col += word;
		p += word;
	}
	fputc('\n', fp);
}

static void
put_field(FILE *fp, const char *name, const char *value)
{
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "%s: ", name);
	put_folded(fp, prefix, value, NULL);
}

static char *
format_date(long long t)
{
	GDateTime *dt = g_date_time_new_from_unix_local(t);
	char *s, *copy;

	if (dt == NULL)
		return strdup("Thu, 01 Jan 1970 00:00:00 +0000");
	s = g_mime_utils_header_format_date(dt);
	g_date_time_unref(dt);
	copy = s != NULL ? strdup(s) : NULL;
	g_free(s);
	return copy;
}

int
dsn_status_code(const char *reply, bool delayed, char *out, size_t outlen)
{
	char cls = delayed ? '4' : '5';
	size_t n;
	int len;

	if (reply != NULL && (reply[0] == '4' || reply[0] == '5') && isdigit((unsigned char)reply[1]) &&
	    isdigit((unsigned char)reply[2])) {
		const char *esc = reply[3] == ' ' ? reply + 4 : NULL;

		if (!delayed || reply[0] == '4')
			cls = reply[0];
		if (esc != NULL && esc[0] == cls && esc[1] == '.') {
			/* class "." 1*3digit "." 1*3digit (RFC 3463) */
			const char *p = esc + 2;
			size_t a = strspn(p, "0123456789"), b;

			if (a >= 1 && a <= 3 && p[a] == '.') {
				b = strspn(p + a + 1, "0123456789");
				if (b >= 1 && b <= 3 && (p[a + 1 + b] == ' ' || p[a + 1 + b] == '\0')) {
					n = 2 + a + 1 + b;
					len = snprintf(out, outlen, "%.*s", (int)n, esc);
					return len < 0 || (size_t)len >= outlen ? -ENAMETOOLONG : 0;
				}
			}
		}
	}
	len = snprintf(out, outlen, "%c.0.0", cls);
	return len < 0 || (size_t)len >= outlen ? -ENAMETOOLONG : 0;
}

/*
 * Remote-MTA names the host that answered: "mx1.example[192.0.2.1]:25"
 * -> "mx1.example", "[2001:db8::1]:25" -> "2001:db8::1", "mx:25" ->
 * "mx".  false for what is no host and port ("mx:example.org", the
 * destination of a DNS lookup that failed): no server answered.
 */
static bool
host_without_port(const char *host, char *out, size_t outlen)
{
	const char *colon = strrchr(host, ':'), *open = strchr(host, '[');
	size_t n;

	if (colon == NULL || colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return false;
	if (open == host) {
		host++;
		n = strcspn(host, "]");
	} else if (open != NULL) {
		n = (size_t)(open - host);
	} else {
		n = (size_t)(colon - host);
	}
	if (n == 0)
		return false;
	snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1), host);
	return true;
}

/* A recipient whose success notice is still to be made ("rcpt-success: <action> due"). */
static bool
rcpt_success_due(const struct envelope_rcpt *r)
{
	size_t n;

	if (r->state != RCPT_SENT || r->success == NULL || !dsn_notify_wants(r->notify, DSN_NOTIFY_SUCCESS))
		return false;
	n = strlen(r->success);
	return n > 4 && strcmp(r->success + n - 4, " due") == 0;
}

/* A recipient of the notice's kind whose NOTIFY= (RFC 3461 4.1) asks for it. */
static bool
rcpt_wanted(const struct dsn_request *req, const struct envelope_rcpt *r)
{
	if (req->success)
		return rcpt_success_due(r);
	return r->state == (req->delayed ? RCPT_PENDING : RCPT_FAILED) &&
	    dsn_notify_wants(r->notify, req->delayed ? DSN_NOTIFY_DELAY : DSN_NOTIFY_FAILURE);
}

static size_t
count_wanted(const struct dsn_request *req)
{
	size_t i, n = 0;

	for (i = 0; i < req->env->nrcpt; i++)
		n += rcpt_wanted(req, &req->env->rcpt[i]);
	return n;
}

size_t
dsn_recipients_wanting(const struct envelope *env, bool delayed)
{
	struct dsn_request req = { .env = env, .delayed = delayed };

	return count_wanted(&req);
}

size_t
dsn_recipients_succeeded(const struct envelope *env)
{
	struct dsn_request req = { .env = env, .success = true };

	return count_wanted(&req);
}

/* The Action of a recipient in this notice (RFC 3464 2.3.3). */
static const char *
rcpt_action(const struct dsn_request *req, const struct envelope_rcpt *r)
{
	if (req->success)
		return strncmp(r->success, "delivered ", 10) == 0 ? "delivered" : "relayed";
	return req->delayed ? "delayed" : "failed";
}

/*
 * A DSN parameter kept as xtext (ENVID, the address of ORCPT), decoded
 * for a report field (RFC 3464 2.2.1, 2.3.1); prefix ("rfc822;") first.
 * NULL when it does not decode (never, for what dsnparam.h accepted).
 */
static char *
xtext_field(const char *prefix, size_t plen, const char *xtext)
{
	char decoded[DSN_ORCPT_MAX + 1], *out;

	if (dsn_xtext_decode(xtext, strlen(xtext), decoded, sizeof(decoded)) < 0)
		return NULL;
	if (asprintf(&out, "%.*s%s", (int)plen, prefix, decoded) < 0)
		return NULL;
	return out;
}

/* "Original-Recipient: rfc822;<decoded>" of an ORCPT=, if any. */
static void
put_original_recipient(FILE *fp, const struct envelope_rcpt *r)
{
	size_t type;
	char *v;

	if (r->orcpt == NULL)
		return;
	type = strcspn(r->orcpt, ";") + 1;
	if ((v = xtext_field(r->orcpt, type, r->orcpt + type)) != NULL)
		put_field(fp, "Original-Recipient", v);
	free(v);
}

/* One recipient's block of the delivery-status part (RFC 3464 2.3). */
static int
put_rcpt_fields(FILE *fp, const struct dsn_request *req, const struct envelope_rcpt *r)
{
	char status[16], host[ENVELOPE_HOST_MAX + 1], *addr, *reply = NULL, *hclean = NULL, *date = NULL;
	char *line = NULL;
	int err = -ENOMEM;

	if ((addr = clean_copy(r->addr, DSN_TEXT_MAX)) == NULL)
		return -ENOMEM;
	if (r->reply != NULL && r->reply[0] != '\0' && (reply = clean_copy(r->reply, DSN_TEXT_MAX)) == NULL)
		goto out;
	if (req->success)
		snprintf(status, sizeof(status), "2.0.0");
	else
		dsn_status_code(reply, req->delayed, status, sizeof(status));
	if (asprintf(&line, "rfc822; %s", addr) < 0) {
		line = NULL;
		goto out;
	}
	put_original_recipient(fp, r);
	put_field(fp, "Final-Recipient", line);
	put_field(fp, "Action", rcpt_action(req, r));
	put_field(fp, "Status", status);
	if (r->host != NULL && host_without_port(r->host, host, sizeof(host))) {
		if ((hclean = clean_copy(host, ENVELOPE_HOST_MAX)) == NULL)
			goto out;
		fprintf(fp, "Remote-MTA: dns; %s\n", hclean);
	}
	if (reply != NULL) {
		free(line);
		if (asprintf(&line, "smtp; %s", reply) < 0) {
			line = NULL;
			goto out;
		}
		put_field(fp, "Diagnostic-Code", line);
	}
	if (r->host != NULL && r->at > 0) {
		if ((date = format_date(r->at)) == NULL)
			goto out;
		put_field(fp, "Last-Attempt-Date", date);
	}
	if (req->delayed && req->expires > 0) {
		free(date);
		if ((date = format_date(req->expires)) == NULL)
			goto out;
		put_field(fp, "Will-Retry-Until", date);
	}
	err = 0;
out:
	free(addr);
	free(reply);
	free(hclean);
	free(date);
	free(line);
	return err;
}

static int
delivery_status_text(const struct dsn_request *req, char **out, size_t *outlen)
{
	char *buf = NULL, *host = NULL, *date = NULL;
	size_t len = 0, i;
	FILE *fp;
	int err = 0;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		return -ENOMEM;
	if ((host = clean_copy(req->hostname, 255)) == NULL || (date = format_date(req->env->created)) == NULL)
		err = -ENOMEM;
	if (err == 0 && req->env->dsn_envid != NULL) {
		char *envid = xtext_field("", 0, req->env->dsn_envid);

		if (envid != NULL)
			put_field(fp, "Original-Envelope-Id", envid);
		free(envid);
	}
	if (err == 0) {
		fprintf(fp, "Reporting-MTA: dns; %s\n", host);
		put_field(fp, "Arrival-Date", date);
	}
	for (i = 0; err == 0 && i < req->env->nrcpt; i++) {
		if (!rcpt_wanted(req, &req->env->rcpt[i]))
			continue;
		fputc('\n', fp);
		err = put_rcpt_fields(fp, req, &req->env->rcpt[i]);
	}
	free(host);
	free(date);
	if (fclose(fp) != 0 && err == 0)
		err = -ENOMEM;
	if (err < 0) {
		free(buf);
		return err;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

/* The last sentence of the first part: what the third part holds, and why. */
static void
put_returned_sentence(FILE *fp, const struct dsn_request *req, const struct dsn_returned *ret)
{
	if (ret->text != NULL && ret->full)
		fprintf(fp, "Your message is attached.\n");
	else if (ret->text != NULL && ret->why_headers != NULL && strcmp(ret->why_headers, "too-large") == 0)
		fprintf(fp, "The headers of your message are attached; the whole message\n"
		    "(RET=FULL) is larger than the %zu octets a notice returns.\n", req->full_max);
	else if (ret->text != NULL && ret->why_headers != NULL)
		fprintf(fp, "The headers of your message are attached; the whole message\n"
		    "(RET=FULL) is not 7-bit text that a notice can return as it is.\n");
	else if (ret->text != NULL)
		fprintf(fp, "The headers of your message are attached.\n");
}

/* The first part: the same facts, in words. */
static int
human_text(const struct dsn_request *req, const struct dsn_returned *ret, char **out, size_t *outlen)
{
	char *buf = NULL, *host = NULL, *arrived = NULL;
	size_t len = 0, i;
	FILE *fp;
	int err = 0;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		return -ENOMEM;
	if ((host = clean_copy(req->hostname, 255)) == NULL || (arrived = format_date(req->env->created)) == NULL)
		err = -ENOMEM;
	if (err == 0) {
		fprintf(fp, "This is the mail system at host %s.\n\n", host);
		if (req->success)
			fprintf(fp, "Your message of %s was successfully delivered to the\n"
			    "recipients below, as you asked (NOTIFY=SUCCESS). A recipient\n"
			    "marked relayed was passed to a server that does not send such\n"
			    "reports: you will hear no more of it.\n\n", arrived);
		else if (req->delayed)
			fprintf(fp, "Your message of %s has not been delivered yet to the\n"
			    "recipients below. The mail system keeps trying; you do not\n"
			    "need to send it again. This is a warning only.\n\n", arrived);
		else
			fprintf(fp, "Your message of %s could not be delivered to the\n"
			    "recipients below. It will not be tried again.\n\n", arrived);
		if (req->delayed && req->expires > 0) {
			char *until = format_date(req->expires);

			if (until == NULL)
				err = -ENOMEM;
			else
				fprintf(fp, "It gives up on %s.\n\n", until);
			free(until);
		}
	}
	for (i = 0; err == 0 && i < req->env->nrcpt; i++) {
		const struct envelope_rcpt *r = &req->env->rcpt[i];
		char *addr = NULL, *reply = NULL, *rhost = NULL, *when = NULL;

		if (!rcpt_wanted(req, r))
			continue;
		addr = clean_copy(r->addr, DSN_TEXT_MAX);
		reply = clean_copy(r->reply != NULL && r->reply[0] != '\0' ? r->reply : "no reply recorded",
		    DSN_TEXT_MAX);
		rhost = r->host != NULL ? clean_copy(r->host, ENVELOPE_HOST_MAX) : NULL;
		when = r->host != NULL && r->at > 0 ? format_date(r->at) : NULL;
		if (addr == NULL || reply == NULL || (r->host != NULL && rhost == NULL))
			err = -ENOMEM;
		else if (rhost != NULL)
			fprintf(fp, "<%s>: the host %s said%s%s:\n", addr, rhost, when ? " on " : "",
			    when ? when : "");
		else
			fprintf(fp, "<%s>: %s:\n", addr, req->success ? rcpt_action(req, r) :
			    req->delayed ? "not delivered yet" : "refused");
		if (err == 0)
			put_folded(fp, "    ", reply, "    ");
		if (err == 0)
			fputc('\n', fp);
		free(addr);
		free(reply);
		free(rhost);
		free(when);
	}
	if (err == 0)
		put_returned_sentence(fp, req, ret);
	free(host);
	free(arrived);
	if (fclose(fp) != 0 && err == 0)
		err = -ENOMEM;
	if (err < 0) {
		free(buf);
		return err;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

/*
 * The original's header section: up to the first empty line, at most
 * DSN_HEADERS_MAX octets, cut after the last whole line when longer.
 */
/*
 * The LF that ends the last header: before an empty line, LF or CRLF (a
 * message kept with CRLF, BINARYMIME); NULL when there is none.
 */
static const char *
header_section_end(const char *buf, size_t len)
{
	const char *lf = memmem(buf, len, "\n\n", 2), *crlf = memmem(buf, len, "\n\r\n", 3);

	if (lf == NULL || (crlf != NULL && crlf < lf))
		return crlf;
	return lf;
}

static int
read_headers(int fd, off_t offset, char **out, size_t *outlen)
{
	const char *end;
	char *buf;
	size_t got = 0, len;
	ssize_t n;

	if ((buf = malloc(DSN_HEADERS_MAX + 1)) == NULL)
		return -ENOMEM;
	if ((n = spool_pread_all(fd, buf, DSN_HEADERS_MAX, offset)) < 0) {
		free(buf);
		return -EIO;
	}
	got = (size_t)n;
	buf[got] = '\0';
	len = got;
	if (got > 0 && buf[0] == '\n')
		len = 0;				/* no header at all */
	else if ((end = header_section_end(buf, got)) != NULL)
		len = (size_t)(end - buf) + 1;		/* keep the last header's LF */
	else if (got == DSN_HEADERS_MAX && (end = memrchr(buf, '\n', got)) != NULL)
		len = (size_t)(end - buf) + 1;
	*out = buf;
	*outlen = len;
	return 0;
}

/*
 * The whole original, for RET=FULL: *out NULL (and *why set) when it
 * cannot go whole: larger than full_max, or not 7-bit text that a
 * message/rfc822 part may carry as it is (an 8-bit octet, NUL, CR, a
 * line over 998 octets).  -EIO when it cannot be read.
 */
static int
read_full(int fd, off_t offset, size_t full_max, char **out, size_t *outlen, const char **why)
{
	struct stat st;
	size_t size, i, col = 0;
	char *buf;
	ssize_t n;

	*out = NULL;
	if (fstat(fd, &st) < 0 || st.st_size < offset)
		return -EIO;
	size = (size_t)(st.st_size - offset);
	if (size > full_max) {
		*why = "too-large";
		return 0;
	}
	if ((buf = malloc(size + 1)) == NULL)
		return -ENOMEM;
	if ((n = spool_pread_all(fd, buf, size, offset)) < 0 || (size_t)n != size) {
		free(buf);
		return -EIO;
	}
	for (i = 0; i < size; i++) {
		unsigned char c = (unsigned char)buf[i];

		col = c == '\n' ? 0 : col + 1;
		if (c == '\0' || c == '\r' || c >= 0x80 || col > 998) {
			free(buf);
			*why = "not-7bit";
			return 0;
		}
	}
	buf[size] = '\0';
	*out = buf;
	*outlen = size;
	return 0;
}

/*
 * GMime calls text with a CR or NUL 7-bit; RFC 5322 allows neither
 * alone (an original's header section may hold them): such a part is
 * quoted-printable.
 */
static bool
has_bare_controls(const char *text, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (text[i] == '\r' || text[i] == '\0')
			return true;
	return false;
}

static GMimePart *
new_text_part(const char *type, const char *subtype, const char *text, size_t len, bool charset)
{
	GMimePart *part = g_mime_part_new_with_type(type, subtype);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(text, len);
	GMimeDataWrapper *content = g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);
	GMimeContentEncoding enc;

	g_mime_part_set_content(part, content);
	g_object_unref(content);
	g_object_unref(stream);
	if (charset)
		g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "us-ascii");
	enc = g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT);
	if (enc == GMIME_CONTENT_ENCODING_DEFAULT || enc == GMIME_CONTENT_ENCODING_7BIT)
		enc = has_bare_controls(text, len) ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE :
		    GMIME_CONTENT_ENCODING_7BIT;
	g_mime_part_set_content_encoding(part, enc);
	return part;
}

static void
add_part(GMimeMultipart *mp, GMimePart *part)
{
	g_mime_multipart_add(mp, GMIME_OBJECT(part));
	g_object_unref(part);
}

static int
set_headers(GMimeMessage *msg, const struct dsn_request *req)
{
	char *host, *to, *from, *mid, *date;
	int err = 0;

	host = clean_copy(req->hostname, 255);
	to = clean_copy(req->env->from, DSN_TEXT_MAX);
	date = format_date(req->now);
	from = mid = NULL;
	if (host == NULL || to == NULL || date == NULL || asprintf(&from, "MAILER-DAEMON@%s", host) < 0 ||
	    asprintf(&mid, "%s@%s", req->id, host) < 0) {
		err = -ENOMEM;
		goto out;
	}
	g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, "Mail Delivery System", from);
	g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, NULL, to);
	g_mime_message_set_subject(msg, req->success ? "Successful Mail Delivery Report" :
	    req->delayed ? "Delayed Mail (still being retried)" : "Undelivered Mail Returned to Sender", NULL);
	g_mime_object_set_header(GMIME_OBJECT(msg), "Date", date, NULL);
	g_mime_message_set_message_id(msg, mid);
	g_mime_object_set_header(GMIME_OBJECT(msg), "Auto-Submitted", "auto-replied", NULL);
out:
	free(host);
	free(to);
	free(from);
	free(mid);
	free(date);
	return err;
}

static int
assemble(const struct dsn_request *req, const char *human, size_t hlen, const char *status, size_t slen,
	 const struct dsn_returned *ret, char **out, size_t *outlen)
{
	GMimeMessage *msg = g_mime_message_new(TRUE);
	GMimeMultipart *mp = g_mime_multipart_new_with_subtype("report");
	GMimeStream *mem;
	GByteArray *bytes;
	int err;

	g_mime_object_set_content_type_parameter(GMIME_OBJECT(mp), "report-type", "delivery-status");
	add_part(mp, new_text_part("text", "plain", human, hlen, true));
	add_part(mp, new_text_part("message", "delivery-status", status, slen, false));
	if (ret->text != NULL && ret->full)
		add_part(mp, new_text_part("message", "rfc822", ret->text, ret->len, false));
	else if (ret->text != NULL)
		add_part(mp, new_text_part("text", "rfc822-headers", ret->text, ret->len, false));
	g_mime_message_set_mime_part(msg, GMIME_OBJECT(mp));
	g_object_unref(mp);
	if ((err = set_headers(msg, req)) < 0) {
		g_object_unref(msg);
		return err;
	}
	mem = g_mime_stream_mem_new();
	if (g_mime_object_write_to_stream(GMIME_OBJECT(msg), NULL, mem) < 0) {
		g_object_unref(mem);
		g_object_unref(msg);
		return -ENOMEM;
	}
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	*out = malloc(bytes->len + 1);
	if (*out != NULL) {
		memcpy(*out, bytes->data, bytes->len);
		(*out)[bytes->len] = '\0';
		*outlen = bytes->len;
	}
	g_object_unref(mem);
	g_object_unref(msg);
	return *out != NULL ? 0 : -ENOMEM;
}

/*
 * What the third part returns of the original: the whole of it when
 * RET=FULL asked and it may go whole (read_full), else its header
 * section; none without datafd.
 */
static int
read_returned(const struct dsn_request *req, struct dsn_returned *ret)
{
	int err;

	if (req->datafd < 0)
		return 0;
	if (req->env->dsn_ret == DSN_RET_FULL) {
		if ((err = read_full(req->datafd, req->data_offset, req->full_max, &ret->text, &ret->len,
		    &ret->why_headers)) < 0 || ret->text != NULL) {
			ret->full = ret->text != NULL;
			return err;
		}
	}
	if ((err = read_headers(req->datafd, req->data_offset, &ret->text, &ret->len)) < 0)
		return err;
	if (ret->len == 0) {
		free(ret->text);
		ret->text = NULL;
	}
	return 0;
}

int
dsn_build(const struct dsn_request *req, char **out, size_t *outlen)
{
	struct dsn_returned ret = { 0 };
	char *human = NULL, *status = NULL;
	size_t hlen = 0, slen = 0;
	int err;

	if (req->hostname == NULL || req->hostname[0] == '\0' || req->id == NULL || req->id[0] == '\0' ||
	    req->env == NULL || req->env->from == NULL)
		return -EINVAL;
	if (count_wanted(req) == 0)
		return -EINVAL;
	pthread_once(&gmime_once, gmime_start);
	if ((err = read_returned(req, &ret)) < 0 ||
	    (err = human_text(req, &ret, &human, &hlen)) < 0 ||
	    (err = delivery_status_text(req, &status, &slen)) < 0)
		goto out;
	err = assemble(req, human, hlen, status, slen, &ret, out, outlen);
out:
	free(human);
	free(status);
	free(ret.text);
	return err;
}

/*
 * The per-sender cap.
 */

void
dsn_limiter_init(struct dsn_limiter *lim, unsigned per_hour)
{
	memset(lim, 0, sizeof(*lim));
	lim->per_hour = per_hour == 0 ? 1 :
	    per_hour > DSN_LIMITER_MAX_PER_HOUR ? DSN_LIMITER_MAX_PER_HOUR : per_hour;
}

static struct dsn_limiter_slot *
limiter_slot(struct dsn_limiter *lim, const char *key, long long now)
{
	struct dsn_limiter_slot *s, *free_slot = NULL, *oldest = &lim->slot[0];
	size_t i;

	for (i = 0; i < DSN_LIMITER_SLOTS; i++) {
		s = &lim->slot[i];
		if (s->n > 0 && s->last <= now - 3600)
			s->n = 0;		/* nothing of it counts any more */
		if (s->n > 0 && strcmp(s->sender, key) == 0)
			return s;
		if (s->n == 0 && free_slot == NULL)
			free_slot = s;
		if (s->last < oldest->last)
			oldest = s;
	}
	/* Every slot busy within the hour: the sender seen least recently goes. */
	s = free_slot != NULL ? free_slot : oldest;
	memset(s, 0, sizeof(*s));
	snprintf(s->sender, sizeof(s->sender), "%s", key);
	return s;
}

bool
dsn_limiter_allow(struct dsn_limiter *lim, const char *sender, long long now)
{
	struct dsn_limiter_slot *s;
	char key[sizeof(s->sender)];
	size_t i;

	for (i = 0; sender[i] != '\0' && i + 1 < sizeof(key); i++)
		key[i] = (char)tolower((unsigned char)sender[i]);
	key[i] = '\0';
	s = limiter_slot(lim, key, now);
	/* Forget the sends older than an hour (the ring holds them oldest first). */
	while (s->n > 0 && s->times[(s->head + DSN_LIMITER_MAX_PER_HOUR - s->n) % DSN_LIMITER_MAX_PER_HOUR]
	    <= now - 3600)
		s->n--;
	if (s->n >= lim->per_hour)
		return false;
	s->times[s->head] = now;
	s->head = (s->head + 1) % DSN_LIMITER_MAX_PER_HOUR;
	s->n++;
	s->last = now;
	return true;
}
