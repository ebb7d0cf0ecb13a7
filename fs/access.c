/*
 * NAME
 *	access - who may see and use what under a shared mount (see access.h)
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "unixuser.h"

#include "access.h"

#define ACCESS_RECORD_HEAD	4096	/* the origin line comes within it (envelope.h) */
#define ACCESS_MAILBOX_MODE	0700	/* list, enter, rm */
#define ACCESS_MESSAGE_MODE	0400	/* a message in it, a record */

bool
access_sees_all(const struct access_caller *c)
{
	return c->uid == 0;
}

void
access_mailbox_owner(const struct cfg *cfg, const char *mailbox, uid_t *uid, gid_t *gid)
{
	if (unixuser_mailbox_owner(cfg, mailbox, uid, gid) < 0) {
		*uid = 0;
		*gid = 0;
	}
}

int
access_mailbox(const struct cfg *cfg, const struct access_caller *c, const char *mailbox)
{
	uid_t uid;
	gid_t gid;

	if (access_sees_all(c))
		return 0;
	access_mailbox_owner(cfg, mailbox, &uid, &gid);
	return uid == c->uid ? 0 : -EACCES;
}

void
access_mailbox_attr(const struct cfg *cfg, const char *mailbox, struct stat *st)
{
	access_mailbox_owner(cfg, mailbox, &st->st_uid, &st->st_gid);
	st->st_mode = (st->st_mode & S_IFMT) | (S_ISDIR(st->st_mode) ? ACCESS_MAILBOX_MODE : ACCESS_MESSAGE_MODE);
}

/* The value of the "origin: " line within the first len bytes of a record. */
static const char *
access_origin_line(char *buf, size_t len)
{
	char *line = buf, *end = buf + len, *nl;

	for (; line < end; line = nl + 1) {
		if ((nl = memchr(line, '\n', (size_t) (end - line))) == NULL)
			return NULL;	/* a line cut by the bound is no line */
		*nl = '\0';
		if (strncmp(line, "origin: ", 8) == 0)
			return line + 8;
	}
	return NULL;
}

int
access_record_submitter(int recfd, uid_t *uid)
{
	char buf[ACCESS_RECORD_HEAD + 1];
	ssize_t n = pread(recfd, buf, ACCESS_RECORD_HEAD, 0);
	const char *origin;

	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	if ((origin = access_origin_line(buf, (size_t) n)) == NULL)
		return -ENOENT;
	return unixuser_origin_uid(origin, uid);
}

int
access_record(const struct access_caller *c, int recfd)
{
	uid_t uid;

	if (access_sees_all(c))
		return 0;
	return access_record_submitter(recfd, &uid) == 0 && uid == c->uid ? 0 : -ENOENT;
}

void
access_record_attr(int recfd, struct stat *st)
{
	uid_t uid;

	st->st_uid = access_record_submitter(recfd, &uid) == 0 ? uid : 0;
	st->st_gid = 0;
	st->st_mode = (st->st_mode & S_IFMT) | ACCESS_MESSAGE_MODE;
}

int
access_outfile(const struct access_caller *c, uid_t owner)
{
	return access_sees_all(c) || c->uid == owner ? 0 : -EACCES;
}
