/*
 * NAME
 *	submit - one message of spoolgate-sendmail, from its first byte to a drop
 * DESCRIPTION
 *	See submit.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/errmap.h"
#include "../common/outbox.h"
#include "../common/spool.h"
#include "submit.h"

static int
flush_buf(struct submit_msg *m)
{
	int r;

	if (m->err == 0 && m->used > 0 && (r = spool_write_all(m->fd, m->buf, m->used)) < 0)
		m->err = r;
	m->used = 0;
	return m->err;
}

int
submit_begin(const struct submitter *who, const struct drop_record *rec, struct submit_msg *m)
{
	char *text;
	size_t len;
	int r;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if ((m->buf = malloc(SUBMIT_BUF)) == NULL)
		return -ENOMEM;
	if ((r = drop_record_format(rec, &text, &len)) < 0)
		return r;
	if ((m->fd = drop_create(who->dirfd, m->name, m->tmp)) < 0) {
		r = m->fd;
		m->fd = -1;
		free(text);
		return r;
	}
	r = spool_write_all(m->fd, text, len);
	free(text);
	m->start = (off_t)len;
	return r;
}

int
submit_write(struct submit_msg *m, const char *buf, size_t len)
{
	size_t room;

	if (m->err != 0)
		return m->err;
	m->size += len;
	while (len > 0) {
		if (m->used == SUBMIT_BUF && flush_buf(m) < 0)
			return m->err;
		room = SUBMIT_BUF - m->used;
		if (room > len)
			room = len;
		memcpy(m->buf + m->used, buf, room);
		m->used += room;
		buf += room;
		len -= room;
	}
	return 0;
}

void
submit_abort(const struct submitter *who, struct submit_msg *m)
{
	if (m->fd >= 0) {
		close(m->fd);
		unlinkat(who->dirfd, m->tmp, 0);
	}
	m->fd = -1;
	free(m->buf);
	m->buf = NULL;
}

int
submit_end(const struct submitter *who, const struct drop_record *rec, struct submit_msg *m,
    char *why, size_t whylen)
{
	struct outbox_policy pol;
	struct outbox_headers h;
	struct outbox_source src = { .origin = "sendmail", .uid = who->uid, .hostname = who->cfg->hostname,
		.max_size = who->cfg->max_message_size, .start = m->start, .via = "sendmail", .policy = &pol };
	int r;

	snprintf(why, whylen, "%s", "");
	if (m->size > who->cfg->max_message_size) {
		snprintf(why, whylen, "message of more than %lu bytes", who->cfg->max_message_size);
		r = -EFBIG;
	} else if ((r = flush_buf(m)) < 0) {
		snprintf(why, whylen, "cannot write %s/.%s: %s", DROP_DIR, m->name, strerror(-r));
	} else {
		drop_policy(rec, who->cfg, who->own, &pol);
		if ((r = outbox_check(m->fd, &src, &h, NULL, why, whylen)) == 0)
			outbox_headers_free(&h);
	}
	if (r == 0 && (r = drop_commit(who->dirfd, m->fd, m->tmp, m->name)) < 0)
		snprintf(why, whylen, "cannot make %s/%s durable: %s", DROP_DIR, m->name, strerror(-r));
	if (r < 0) {
		submit_abort(who, m);
		return r;
	}
	close(m->fd);
	m->fd = -1;
	free(m->buf);
	m->buf = NULL;
	return 0;
}

/* The status Postfix's sendmail exits with for each kind of refusal (sysexits.h). */
static const struct { int err; int status; } exit_codes[] = {
	{ EDESTADDRREQ, EX_USAGE },	/* no recipient at all */
	{ EINVAL, EX_NOUSER },		/* a malformed address */
	{ ENAMETOOLONG, EX_NOUSER },
	{ EILSEQ, EX_NOUSER },
	{ E2BIG, EX_NOUSER },		/* too many recipients */
	{ EBADMSG, EX_DATAERR },	/* not a message */
	{ EFBIG, EX_DATAERR },		/* over max_message_size */
	{ ENODATA, EX_DATAERR },
	{ EPERM, EX_NOPERM },
	{ EACCES, EX_CANTCREAT },	/* drop/ not writable: not set-group-id? */
	{ ENOENT, EX_CANTCREAT },	/* no drop/: the gateway never ran */
	{ ENOTDIR, EX_CANTCREAT },
	{ ELOOP, EX_CANTCREAT },
	{ EROFS, EX_CANTCREAT },
};

int
submit_exit_code(int err)
{
	size_t i;

	if (err < 0)
		err = -err;
	for (i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++)
		if (exit_codes[i].err == err)
			return exit_codes[i].status;
	return EX_TEMPFAIL;	/* a full disk, an I/O error: try again later */
}

void
submit_print_refusal(FILE *fp, const char *prog, int err, const char *why)
{
	const struct errmap_reply *reply = errmap_from_errno(err < 0 ? -err : err);

	fprintf(fp, "%s: %d%s%s %s%s%s\n", prog, reply->code, reply->esc[0] ? " " : "", reply->esc, reply->text,
	    why != NULL && why[0] ? ": " : "", why != NULL ? why : "");
}
