/*
 * NAME
 *	outfile - the files being written in outbox/
 * DESCRIPTION
 *	See outfile.h.  The set is a short linked list: it holds at most
 *	OUTFILE_MAX entries, and outbox/ is a place files pass through.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errmap.h"
#include "log.h"
#include "outbox.h"
#include "spool.h"

#include "outfile.h"

/* Longest name we put into an envelope origin ("fs outbox/<name>"). */
#define OUTFILE_ORIGIN_MAX	(10 + 255 + 1)

void
outfile_set_init(struct outfile_set *set, struct spool *spool, unsigned long max_size,
    const char *hostname)
{
	set->spool = spool;
	set->max_size = max_size;
	set->hostname = hostname;
	set->head = NULL;
	set->count = 0;
}

bool
outfile_name_is_held(const char *name)
{
	return name[0] == '.';
}

static const char *
outfile_errno_name(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "unknown";
}

struct outfile *
outfile_find(struct outfile_set *set, const char *name)
{
	for (struct outfile *of = set->head; of; of = of->next)
		if (!of->unlinked && strcmp(of->name, name) == 0)
			return of;
	return NULL;
}

static void
outfile_remove_from_set(struct outfile_set *set, struct outfile *of)
{
	for (struct outfile **pp = &set->head; *pp; pp = &(*pp)->next)
		if (*pp == of) {
			*pp = of->next;
			set->count--;
			return;
		}
}

/* Closes the temporary (it has no name left); the entry must no longer be open. */
static void
outfile_destroy(struct outfile_set *set, struct outfile *of)
{
	outfile_remove_from_set(set, of);
	if (of->fd >= 0)
		(void) close(of->fd);
	free(of->name);
	free(of);
}

/*
 * A temporary in spool tmp/ whose name is removed at once: only the
 * descriptor is needed (outbox_submit() reads it), so nothing is left in
 * tmp/ after a close, and nothing at all if this process is killed.
 */
static int
outfile_anonymous_tmpfile(struct spool *spool)
{
	char name[SPOOL_NAME_MAX];
	int fd = spool_tmpfile(spool, name), r;

	if (fd < 0)
		return fd;
	if (unlinkat(spool_dirfd(spool, SPOOL_DIR_TMP), name, 0) < 0) {
		r = -errno;
		(void) close(fd);
		return r;
	}
	return fd;
}

int
outfile_create(struct outfile_set *set, const char *name, mode_t mode, uid_t uid,
	       gid_t gid, struct outfile **out)
{
	struct outfile *of;
	int fd;

	if (outfile_find(set, name) != NULL)
		return -EEXIST;
	if (set->count >= OUTFILE_MAX)
		return -ENFILE;
	if ((of = calloc(1, sizeof *of)) == NULL)
		return -ENOMEM;
	if ((of->name = strdup(name)) == NULL) {
		free(of);
		return -ENOMEM;
	}
	if ((fd = outfile_anonymous_tmpfile(set->spool)) < 0) {
		free(of->name);
		free(of);
		return fd;
	}
	of->fd = fd;
	of->refs = 1;
	of->mode = mode & 07777;
	of->uid = uid;
	of->gid = gid;
	of->next = set->head;
	set->head = of;
	set->count++;
	*out = of;
	return 0;
}

void
outfile_open(struct outfile *of)
{
	of->refs++;
}

void
outfile_release(struct outfile_set *set, struct outfile *of)
{
	char qname[512];

	if (of->refs > 0)
		of->refs--;
	if (of->refs > 0)
		return;
	if (of->unlinked) {
		outfile_destroy(set, of);
		return;
	}
	if (outfile_name_is_held(of->name))
		return;		/* kept for a rename, see outfile.h */
	if (of->dirty)
		/* a close whose FLUSH never completed (interrupted): not sent */
		log_warn("outbox-discarded", "name=%s reason=not-flushed",
		    log_quote(qname, sizeof qname, of->name));
	outfile_destroy(set, of);
}

ssize_t
outfile_write(struct outfile_set *set, struct outfile *of, const void *buf, size_t size,
	      off_t off)
{
	size_t done = 0;

	if (of->write_error)
		return of->write_error;
	if (off < 0)
		return -EINVAL;
	if ((uint64_t) off > set->max_size || size > set->max_size - (uint64_t) off) {
		of->write_error = -EFBIG;
		of->dirty = true;	/* so that close(2) reports it */
		return -EFBIG;
	}
	while (done < size) {
		ssize_t n = pwrite(of->fd, (const char *) buf + done, size - done,
		    off + (off_t) done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			of->write_error = n < 0 ? -errno : -EIO;
			of->dirty = true;
			return of->write_error;
		}
		done += (size_t) n;
	}
	of->dirty = true;
	return (ssize_t) done;
}

int
outfile_truncate(struct outfile_set *set, struct outfile *of, off_t size)
{
	struct stat st;

	if (size < 0)
		return -EINVAL;
	if ((uint64_t) size > set->max_size)
		return -EFBIG;
	if (fstat(of->fd, &st) < 0)
		return -errno;
	if (st.st_size == size)
		return 0;
	if (ftruncate(of->fd, size) < 0)
		return -errno;
	if (size == 0)
		of->write_error = 0;	/* a fresh start */
	of->dirty = true;
	return 0;
}

int
outfile_stat(const struct outfile *of, struct stat *st)
{
	if (fstat(of->fd, st) < 0)
		return -errno;
	st->st_mode = S_IFREG | of->mode;
	st->st_uid = of->uid;
	st->st_gid = of->gid;
	st->st_nlink = of->unlinked ? 0 : 1;
	return 0;
}

/*
 * Envelope values must not hold control characters (envelope.h), and a
 * file name may: those bytes become '?' in the origin.
 */
static void
outfile_origin(const char *name, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "fs outbox/%s", name);

	if (n < 0)
		out[0] = '\0';
	for (char *p = out; *p; p++)
		if ((unsigned char) *p < 0x20 || (unsigned char) *p == 0x7f)
			*p = '?';
}

static void
outfile_log_rejected(const char *name, int err, const char *why)
{
	const struct errmap_reply *r = errmap_from_errno(err);
	char qname[512], qreply[512], qwhy[1024], reply[400];

	snprintf(reply, sizeof reply, "%d%s%s %s", r->code, r->esc[0] ? " " : "", r->esc,
	    r->text);
	log_warn("outbox-rejected", "name=%s errno=%s reply=%s why=%s",
	    log_quote(qname, sizeof qname, name), outfile_errno_name(err),
	    log_quote(qreply, sizeof qreply, reply), log_quote(qwhy, sizeof qwhy, why));
}

/* Submits of's content under the name it will have; records the result. */
static int
outfile_submit_as(struct outfile_set *set, struct outfile *of, const char *name)
{
	char origin[OUTFILE_ORIGIN_MAX], id[SPOOL_ID_MAX], why[512], qname[512];
	struct stat st;
	int r;

	if (of->write_error) {
		snprintf(why, sizeof why, "a write to the file failed (%s); nothing was sent",
		    strerror(-of->write_error));
		r = of->write_error;
	} else {
		outfile_origin(name, origin, sizeof origin);
		why[0] = '\0';
		id[0] = '\0';
		const struct outbox_source src = {
			.origin = origin, .name = name, .uid = of->uid,
			.hostname = set->hostname, .max_size = set->max_size,
		};

		r = outbox_submit(set->spool, of->fd, &src, id, why, sizeof why);
	}
	of->dirty = false;
	of->result = r;
	if (r < 0) {
		outfile_log_rejected(name, -r, why[0] ? why : strerror(-r));
		return r;
	}
	log_info("outbox-submitted", "id=%s name=%s size=%lld", id,
	    log_quote(qname, sizeof qname, name),
	    fstat(of->fd, &st) == 0 ? (long long) st.st_size : -1LL);
	return 0;
}

int
outfile_submit(struct outfile_set *set, struct outfile *of)
{
	if (of->unlinked || outfile_name_is_held(of->name))
		return 0;
	if (!of->dirty)
		return of->result;	/* nothing new: the answer of the last close */
	return outfile_submit_as(set, of, of->name);
}

static void
outfile_drop(struct outfile_set *set, struct outfile *of, const char *reason)
{
	char qname[512];

	of->unlinked = true;
	/* editors' swap files come and go: only a dropped message is news */
	if (of->dirty)
		log_event(outfile_name_is_held(of->name) ? LOG_LVL_DEBUG : LOG_LVL_INFO,
		    "outbox-dropped", "name=%s reason=%s",
		    log_quote(qname, sizeof qname, of->name), reason);
	if (of->refs == 0)
		outfile_destroy(set, of);
}

int
outfile_unlink(struct outfile_set *set, const char *name)
{
	struct outfile *of = outfile_find(set, name);

	if (of == NULL)
		return -ENOENT;
	outfile_drop(set, of, "unlinked");
	return 0;
}

int
outfile_rename(struct outfile_set *set, const char *from, const char *to, bool noreplace)
{
	struct outfile *src = outfile_find(set, from), *dst = outfile_find(set, to);
	char *newname;
	int r;

	if (src == NULL)
		return -ENOENT;
	if (src == dst)
		return 0;
	if (dst != NULL && noreplace)
		return -EEXIST;
	if ((newname = strdup(to)) == NULL)
		return -ENOMEM;
	/* a held file becomes sendable: now is its close (again, if it failed) */
	if (outfile_name_is_held(from) && !outfile_name_is_held(to) &&
	    (src->dirty || src->result < 0)) {
		if ((r = outfile_submit_as(set, src, to)) < 0) {
			free(newname);
			return r;
		}
	}
	if (dst != NULL)
		outfile_drop(set, dst, "replaced");
	free(src->name);
	src->name = newname;
	if (src->refs == 0 && !outfile_name_is_held(src->name))
		outfile_destroy(set, src);
	return 0;
}

void
outfile_set_free(struct outfile_set *set)
{
	char qname[512];

	while (set->head != NULL) {
		struct outfile *of = set->head;

		if (!of->unlinked)
			log_warn("outbox-discarded", "name=%s reason=shutdown",
			    log_quote(qname, sizeof qname, of->name));
		outfile_destroy(set, of);
	}
}
