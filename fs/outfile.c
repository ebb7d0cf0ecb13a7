/*
 * NAME
 *	outfile - the files being written in outbox/
 * DESCRIPTION
 *	See outfile.h.  The set is a short linked list: it holds at most
 *	OUTFILE_MAX entries, and outbox/ is a place files pass through.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "addr.h"
#include "cfg.h"
#include "errmap.h"
#include "log.h"
#include "outbox.h"
#include "spool.h"
#include "unixuser.h"

#include "outfile.h"

/* Longest envelope origin we make ("fs outbox/<name> uid=<uid> user=<login>"). */
#define OUTFILE_ORIGIN_MAX	(10 + 255 + 16 + 6 + UNIXUSER_LOGIN_MAX)

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL		0x0008U		/* Linux 6.3; older kernels say EINVAL */
#endif

#define OUTFILE_COPY_CHUNK	(64u << 10)	/* a draft moves to tmp/ this much at a time */
#define OUTFILE_ROOM_STEP	(1ull << 20)	/* the room probe asks in whole MiB */

void
outfile_set_init(struct outfile_set *set, struct spool *spool, unsigned long max_size,
    const char *hostname)
{
	set->spool = spool;
	set->max_size = max_size;
	set->hostname = hostname;
	set->head = NULL;
	set->count = 0;
	set->group = NULL;
	set->senders = NULL;
	set->aliases = NULL;
	set->cfg = NULL;
	set->mem_drafts = true;
	set->mem_bytes = 0;
	set->mem_draft_max = OUTFILE_MEM_DRAFT_MAX;
	set->mem_total_max = OUTFILE_MEM_TOTAL_MAX;
	set->mem_reserve = OUTFILE_MEM_RESERVE;
	set->room_fd = -1;
	set->room_unsupported = false;
	set->room_ok = set->room_refused = 0;
	set->room_errno = 0;
}

void
outfile_set_senders(struct outfile_set *set, const struct cfg *cfg)
{
	set->senders = cfg;
	set->self = geteuid();
}

/*
 * Who writes: its login, and the one sender it may use unless the set has
 * no sender rule, [sendmail] trusted_users names it (unixuser.h), or it is
 * the daemon's own user.  A login too long for an address may use none
 * ("-" matches no sender).
 */
static void
outfile_sender_of(const struct outfile_set *set, uid_t uid, struct outfile_sender *s)
{
	unixuser_login(uid, s->login, sizeof s->login);
	s->own[0] = '\0';
	if (set->senders == NULL || uid == set->self || cfg_user_is_trusted(set->senders, s->login))
		return;
	if (unixuser_sender(set->senders, s->login, NULL, s->own, sizeof s->own) < 0)
		snprintf(s->own, sizeof s->own, "-");
}

/* outbox/'s rules for this writer (outbox.h): recipients from the headers, its sender. */
static void
outfile_policy(const struct outfile_sender *s, struct outbox_policy *pol)
{
	memset(pol, 0, sizeof *pol);
	pol->rcpt_from_headers = true;
	pol->own_sender = s->own[0] != '\0' ? s->own : NULL;
	pol->writer = s->login;
}

/* A new writer opened the entry: its rules apply from now on. */
static void
outfile_set_writer(const struct outfile_set *set, struct outfile *of, const struct outfile_writer *w)
{
	of->writer = *w;
	outfile_sender_of(set, w->uid, &of->sender);
}

bool
outfile_name_is_held(const char *name)
{
	const char *slash = strrchr(name, '/');

	return (slash ? slash + 1 : name)[0] == '.';	/* "wait/.x" too */
}

static const char *
outfile_errno_name(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "unknown";
}

static struct outfile *
outfile_lookup_entry(struct outfile_set *set, const char *name)
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
	if (of->in_memory)
		set->mem_bytes -= (unsigned long long) of->mem_size;
	if (of->fd >= 0)
		(void) close(of->fd);
	free(of->name);
	free(of);
}

/* ------------------------------------------------ submitted names linger */

static bool
outfile_lingering(const struct outfile *of)
{
	return of->state == OUTFILE_SUBMITTED && of->refs == 0 && !of->unlinked;
}

static bool
outfile_older(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

void
outfile_expire(struct outfile_set *set)
{
	struct outfile *of, *next, *oldest;
	struct timespec now;
	size_t lingering = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (of = set->head; of; of = next) {
		next = of->next;
		if (!outfile_lingering(of))
			continue;
		if (now.tv_sec - of->submitted.tv_sec >= OUTFILE_LINGER_SECONDS)
			outfile_destroy(set, of);
		else
			lingering++;
	}
	for (; lingering > OUTFILE_SUBMITTED_MAX; lingering--) {
		oldest = NULL;
		for (of = set->head; of; of = of->next)
			if (outfile_lingering(of) &&
			    (oldest == NULL || outfile_older(&of->submitted, &oldest->submitted)))
				oldest = of;
		outfile_destroy(set, oldest);
	}
}

struct outfile *
outfile_find(struct outfile_set *set, const char *name)
{
	outfile_expire(set);
	return outfile_lookup_entry(set, name);
}

/* ------------------------------------------------------------- entries */

/* ------------------------------------------------------ drafts in memory */

/* A memfd for a new draft, or -errno. */
static int
outfile_memfd(void)
{
	int fd = memfd_create("spoolgate-draft", MFD_CLOEXEC | MFD_NOEXEC_SEAL);

	if (fd < 0 && errno == EINVAL)	/* a kernel older than MFD_NOEXEC_SEAL */
		fd = memfd_create("spoolgate-draft", MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* The descriptor of a new draft: in memory unless that cannot be, then in tmp/. */
static int
outfile_draft_fd(struct outfile_set *set, bool *in_memory)
{
	int fd;

	*in_memory = false;
	if (set->mem_drafts) {
		if ((fd = outfile_memfd()) >= 0) {
			*in_memory = true;
			return fd;
		}
		set->mem_drafts = false;
		log_warn("outbox-drafts-on-disk", "why=\"memfd_create: %s\"", strerror(-fd));
	}
	return spool_tmpfile_unnamed(set->spool);
}

static long long
outfile_ms_since(const struct timespec *then)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - then->tv_sec) * 1000LL + (now.tv_nsec - then->tv_nsec) / 1000000;
}

/*
 * Allocates need bytes in the probe's file and gives them back: 0 if they
 * fit, else -errno (-ENOSPC, -EDQUOT, -EFBIG, -EOPNOTSUPP, ...).
 */
static int
outfile_room_allocate(struct outfile_set *set, unsigned long long need)
{
	int r = 0;

	if (set->room_fd < 0 && (set->room_fd = spool_tmpfile_unnamed(set->spool)) < 0) {
		r = set->room_fd;
		set->room_fd = -1;
		return r;
	}
	if (fallocate(set->room_fd, 0, 0, (off_t) need) < 0)
		r = -errno;
	if (ftruncate(set->room_fd, 0) < 0 && r == 0)	/* a refused fallocate may keep a part */
		r = -errno;
	return r;
}

/*
 * The room probe (outfile.h): do need bytes fit in tmp/ under every quota
 * that charges the spool's files?  0, or the -errno that says why not.
 * Answers held for OUTFILE_ROOM_TTL_MS; a probe that could not be made
 * says nothing (0), nor does a filesystem without fallocate.
 */
static int
outfile_room_probe(struct outfile_set *set, unsigned long long need)
{
	struct timespec now;
	int r;

	if (set->room_unsupported)
		return 0;
	need = (need + OUTFILE_ROOM_STEP - 1) / OUTFILE_ROOM_STEP * OUTFILE_ROOM_STEP;	/* fewer probes */
	if (set->room_ok != 0 && outfile_ms_since(&set->room_ok_at) >= OUTFILE_ROOM_TTL_MS)
		set->room_ok = 0;
	if (set->room_refused != 0 && outfile_ms_since(&set->room_refused_at) >= OUTFILE_ROOM_TTL_MS)
		set->room_refused = 0;
	if (set->room_ok != 0 && need <= set->room_ok)
		return 0;
	if (set->room_refused != 0 && need >= set->room_refused)
		return -set->room_errno;
	r = outfile_room_allocate(set, need);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (r == -EOPNOTSUPP || r == -ENOSYS) {
		set->room_unsupported = true;
		log_info("outbox-room-probe", "state=off why=\"fallocate: %s\" "
		    "action=\"free space from statvfs alone\"", strerror(-r));
		return 0;
	}
	if (r == 0) {
		set->room_ok = need;	/* more than any answer still held */
		set->room_ok_at = now;
		return 0;
	}
	if (r != -ENOSPC && r != -EDQUOT && r != -EFBIG)
		return 0;	/* could not ask (EMFILE, EIO...): statvfs has answered */
	set->room_refused = need;	/* less than any refusal still held */
	set->room_refused_at = now;
	set->room_errno = -r;
	return r;
}

/*
 * Why the draft, once end bytes long, may not stay in memory, or NULL if
 * it may: not past its own limit or the set's, and not if the spool's
 * filesystem would then have less free space than every draft in memory
 * needs, plus the reserve, or could not allocate that much in tmp/ (a
 * quota: the room probe).
 */
static const char *
outfile_memory_refusal(struct outfile_set *set, const struct outfile *of, off_t end)
{
	unsigned long long grow = end > of->mem_size ? (unsigned long long) (end - of->mem_size) : 0;
	unsigned long long total = set->mem_bytes + grow;
	struct statvfs sv;

	if ((unsigned long long) end > set->mem_draft_max)
		return "size";
	if (total > set->mem_total_max)
		return "memory";
	if (grow == 0)
		return NULL;
	if (fstatvfs(spool_dirfd(set->spool, SPOOL_DIR_TMP), &sv) < 0)
		return "statvfs";
	if ((unsigned long long) sv.f_bavail * sv.f_frsize < total + set->mem_reserve)
		return "disk-room";
	switch (outfile_room_probe(set, total + set->mem_reserve)) {
	case 0:
		return NULL;
	case -EDQUOT:
		return "quota";
	case -EFBIG:
		return "file-size";
	default:
		return "disk-room";
	}
}

/* Copies the first size bytes of from into to. */
static int
outfile_copy(int from, int to, off_t size)
{
	char *buf = malloc(OUTFILE_COPY_CHUNK);
	ssize_t got = 0;
	int r = 0;

	if (buf == NULL)
		return -ENOMEM;
	for (off_t off = 0; off < size && r == 0; off += got) {
		size_t want = size - off < OUTFILE_COPY_CHUNK ? (size_t) (size - off) : OUTFILE_COPY_CHUNK;

		if ((got = spool_pread_all(from, buf, want, off)) < 0)
			r = (int) got;
		else if ((size_t) got != want)
			r = -EIO;	/* it shrank under us: never */
		else
			r = spool_pwrite_all(to, buf, want, off);
	}
	free(buf);
	return r;
}

/* The draft leaves memory for a temporary in tmp/, under the same descriptor. */
static int
outfile_move_to_disk(struct outfile_set *set, struct outfile *of, const char *why)
{
	char qname[512];
	int fd = spool_tmpfile_unnamed(set->spool), r;

	if (fd < 0)
		return fd;
	r = outfile_copy(of->fd, fd, of->mem_size);
	if (r == 0 && dup3(fd, of->fd, O_CLOEXEC) < 0)
		r = -errno;
	(void) close(fd);
	if (r < 0)
		return r;
	set->mem_bytes -= (unsigned long long) of->mem_size;
	of->in_memory = false;
	of->mem_size = 0;
	log_debug("outbox-draft-to-disk", "name=%s why=%s", log_quote(qname, sizeof qname, of->name),
	    why);
	return 0;
}

/* Before the draft becomes end bytes long: keep it in memory, or move it to tmp/. */
static int
outfile_make_room(struct outfile_set *set, struct outfile *of, off_t end)
{
	const char *why;

	if (!of->in_memory || (why = outfile_memory_refusal(set, of, end)) == NULL)
		return 0;
	return outfile_move_to_disk(set, of, why);
}

/* The draft is now size bytes long. */
static void
outfile_resized(struct outfile_set *set, struct outfile *of, off_t size)
{
	if (!of->in_memory)
		return;
	set->mem_bytes = set->mem_bytes - (unsigned long long) of->mem_size + (unsigned long long) size;
	of->mem_size = size;
}

/* A new draft named name, not open yet (refs 0). */
static int
outfile_new_entry(struct outfile_set *set, const char *name, mode_t mode, uid_t uid, gid_t gid,
		  struct outfile **out)
{
	struct outfile *of;
	bool in_memory;
	int fd;

	if (set->count >= OUTFILE_MAX)
		return -ENFILE;
	if ((of = calloc(1, sizeof *of)) == NULL)
		return -ENOMEM;
	if ((of->name = strdup(name)) == NULL) {
		free(of);
		return -ENOMEM;
	}
	if ((fd = outfile_draft_fd(set, &in_memory)) < 0) {
		free(of->name);
		free(of);
		return fd;
	}
	of->fd = fd;
	of->in_memory = in_memory;
	of->state = OUTFILE_WRITING;
	of->mode = mode & 07777;
	of->uid = uid;
	of->gid = gid;
	of->next = set->head;
	set->head = of;
	set->count++;
	*out = of;
	return 0;
}

int
outfile_create(struct outfile_set *set, const char *name, mode_t mode,
	       const struct outfile_writer *w, bool writable, struct outfile **out)
{
	struct outfile *of;
	int r;

	if (outfile_find(set, name) != NULL)
		return -EEXIST;
	if ((r = outfile_new_entry(set, name, mode, w->uid, w->gid, &of)) < 0)
		return r;
	of->refs = 1;
	of->writers = writable ? 1 : 0;
	outfile_set_writer(set, of, w);
	*out = of;
	return 0;
}

static off_t
outfile_size(const struct outfile *of)
{
	struct stat st;

	return fstat(of->fd, &st) == 0 ? st.st_size : -1;
}

static void
outfile_drop(struct outfile_set *set, struct outfile *of, const char *reason)
{
	char qname[512];
	bool news = of->state == OUTFILE_WRITING && !outfile_name_is_held(of->name) &&
	    outfile_size(of) > 0;

	of->unlinked = true;
	/* editors' swap files and submitted names come and go: only a dropped draft is news */
	log_event(news ? LOG_LVL_INFO : LOG_LVL_DEBUG, "outbox-dropped", "name=%s reason=%s",
	    log_quote(qname, sizeof qname, of->name), reason);
	if (of->refs == 0)
		outfile_destroy(set, of);
}

/* A fresh start: nothing written, nothing checked, nothing refused. */
static void
outfile_reset(struct outfile *of)
{
	of->state = OUTFILE_WRITING;
	of->refusal = 0;
	of->head_scanned = 0;
	of->head_end = 0;
}

/* A refused open(2) is logged: the writer sees EBUSY, the operator sees why. */
static int
outfile_open_refused(const struct outfile *of, const char *why)
{
	char qname[512];

	log_warn("outbox-open-refused", "name=%s errno=EBUSY why=\"%s\"",
	    log_quote(qname, sizeof qname, of->name), why);
	return -EBUSY;
}

int
outfile_open(struct outfile_set *set, struct outfile **pof, int flags,
	     const struct outfile_writer *w)
{
	struct outfile *of = *pof, *fresh;
	int r;

	if ((flags & O_ACCMODE) == O_RDONLY) {
		of->refs++;
		return 0;
	}
	if (of->writers > 0)		/* one writer at a time, never a mixed message */
		return outfile_open_refused(of, "another open(2) is writing this file");
	if (of->state != OUTFILE_WRITING) {
		if (of->state == OUTFILE_REFUSED && !(flags & O_TRUNC))
			return of->refusal;
		if (!(flags & O_TRUNC))	/* >> after a submission would send a fragment */
			return outfile_open_refused(of, "already submitted; "
			    "only a new whole file (O_TRUNC) may reuse the name");
		/* a new whole file: a new message under the same name */
		if ((r = outfile_new_entry(set, of->name, of->mode, of->uid, of->gid, &fresh)) < 0)
			return r;
		outfile_drop(set, of, "replaced");
		of = fresh;
	} else if ((flags & O_TRUNC) && (r = outfile_truncate(set, of, 0)) < 0)
		return r;
	of->refs++;
	of->writers++;
	outfile_set_writer(set, of, w);
	*pof = of;
	return 0;
}

/* ------------------------------------------------------------- outcomes */

/*
 * Envelope values must not hold control characters (envelope.h), and a
 * file name may: those bytes become '?' in the origin.
 */
static void
outfile_origin(const char *name, uid_t uid, const char *login, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "fs outbox/%s uid=%u user=%s", name, (unsigned) uid, login);

	if (n < 0)
		out[0] = '\0';
	for (char *p = out; *p; p++)
		if ((unsigned char) *p < 0x20 || (unsigned char) *p == 0x7f)
			*p = '?';
}

/*
 * id: the failed/ record that keeps it, or NULL (kept_err says why not, 0:
 * not meant to); of: whose it is.
 */
static void
outfile_log_rejected(const struct outfile *of, const char *name, int err, const char *why,
		     const char *id, int kept_err)
{
	const struct errmap_reply *r = errmap_from_errno(err);
	char qname[512], qreply[512], qwhy[1024], reply[400], kept[128];

	snprintf(reply, sizeof reply, "%d%s%s %s", r->code, r->esc[0] ? " " : "", r->esc,
	    r->text);
	if (id != NULL)
		snprintf(kept, sizeof kept, " id=%s", id);
	else if (kept_err != 0)
		snprintf(kept, sizeof kept, " kept=no error=%s", outfile_errno_name(-kept_err));
	else
		kept[0] = '\0';
	log_warn("outbox-rejected", "name=%s errno=%s reply=%s why=%s uid=%u user=%s%s",
	    log_quote(qname, sizeof qname, name), outfile_errno_name(err),
	    log_quote(qreply, sizeof qreply, reply), log_quote(qwhy, sizeof qwhy, why),
	    (unsigned) of->writer.uid, of->sender.login, kept);
}

/*
 * The entry is refused (err < 0): from now on every write and close says
 * so.  What was written (up to max_size) goes to failed/ with why,
 * unless the name is held or was removed (a draft nobody submitted).
 * Returns err.
 */
static int
outfile_refuse(struct outfile_set *set, struct outfile *of, const char *name, int err,
	       const char *why)
{
	char origin[OUTFILE_ORIGIN_MAX], id[SPOOL_ID_MAX];
	off_t size = outfile_size(of), keep;
	int r = 0;

	of->state = OUTFILE_REFUSED;
	of->refusal = err;
	if (outfile_name_is_held(name) || of->unlinked) {
		/* a draft nobody submitted */
		outfile_log_rejected(of, name, -err, why, NULL, 0);
		return err;
	}
	keep = size < 0 ? 0 : (uint64_t) size > set->max_size ? (off_t) set->max_size : size;
	outfile_origin(name, of->writer.uid, of->sender.login, origin, sizeof origin);
	r = outbox_reject(set->spool, of->fd, keep, origin, -err, why, id);
	outfile_log_rejected(of, name, -err, why, r == 0 ? id : NULL, r);
	return err;
}

/* The message is complete: queue it, or refuse it (all under the caller's lock). */
static int
outfile_end(struct outfile_set *set, struct outfile *of, const char *name)
{
	struct outfile_submission sub;
	int r;

	if ((r = outfile_submission_begin(set, of, name, &sub)) < 0)
		return r;
	return outfile_submission_end(set, &sub, outfile_submission_run(set, &sub));
}

int
outfile_submission_begin(struct outfile_set *set, struct outfile *of, const char *name,
			 struct outfile_submission *sub)
{
	(void) set;
	memset(sub, 0, sizeof *sub);
	if ((sub->name = strdup(name)) == NULL)
		return -ENOMEM;
	sub->of = of;
	sub->fd = of->fd;
	sub->uid = of->writer.uid;
	sub->sender = of->sender;
	of->state = OUTFILE_COMMITTING;
	return 0;
}

int
outfile_submission_run(const struct outfile_set *set, struct outfile_submission *sub)
{
	char origin[OUTFILE_ORIGIN_MAX];
	struct outbox_policy pol;

	outfile_origin(sub->name, sub->uid, sub->sender.login, origin, sizeof origin);
	outfile_policy(&sub->sender, &pol);
	const struct outbox_source src = {
		.origin = origin, .name = sub->name, .uid = sub->uid, .user = sub->sender.login,
		.hostname = set->hostname, .max_size = set->max_size, .group = set->group,
		.policy = &pol, .aliases = set->aliases, .cfg = set->cfg,
	};

	return outbox_submit(set->spool, sub->fd, &src, sub->id, sub->why, sizeof sub->why);
}

int
outfile_submission_end(struct outfile_set *set, struct outfile_submission *sub, int r)
{
	struct outfile *of = sub->of;
	char qname[512];

	if (r < 0)
		r = outfile_refuse(set, of, sub->name, r, sub->why[0] ? sub->why : strerror(-r));
	else {
		of->state = OUTFILE_SUBMITTED;
		clock_gettime(CLOCK_MONOTONIC, &of->submitted);
		log_info("outbox-submitted", "id=%s name=%s size=%lld uid=%u user=%s", sub->id,
		    log_quote(qname, sizeof qname, sub->name), (long long) outfile_size(of),
		    (unsigned) sub->uid, sub->sender.login);
	}
	free(sub->name);
	sub->name = NULL;
	return r;
}

static int
outfile_refuse_empty(const struct outfile *of, const char *name)
{
	outfile_log_rejected(of, name, ENODATA, "empty file: nothing was written", NULL, 0);
	return -ENODATA;
}

void
outfile_release(struct outfile_set *set, struct outfile *of, bool writable)
{
	if (of->refs > 0)
		of->refs--;
	if (writable && of->writers > 0)
		of->writers--;
	if (of->refs > 0)
		return;
	if (of->unlinked) {
		outfile_destroy(set, of);
		return;
	}
	if (outfile_name_is_held(of->name))
		return;		/* kept for a rename, see outfile.h */
	if (of->state == OUTFILE_WRITING) {
		/* never ended by its opener's close: now is the end, told to no one */
		if (outfile_size(of) == 0)
			(void) outfile_refuse_empty(of, of->name);
		else
			(void) outfile_end(set, of, of->name);
	}
	if (of->state != OUTFILE_SUBMITTED)
		outfile_destroy(set, of);	/* a refused file is in failed/ */
}

int
outfile_flush_begin(struct outfile_set *set, struct outfile *of, bool ends,
		    struct outfile_submission *sub)
{
	int r;

	if (of->unlinked)
		return 0;
	switch (of->state) {
	case OUTFILE_SUBMITTED:
	case OUTFILE_COMMITTING:	/* the close that ends it is under way */
		return 0;
	case OUTFILE_REFUSED:
		return of->refusal;
	case OUTFILE_WRITING:
		break;
	}
	if (outfile_name_is_held(of->name) || !ends)
		return 0;	/* a draft, or a copy of the descriptor closed */
	if (outfile_size(of) == 0)
		return -ENODATA;	/* the release logs it */
	if ((r = outfile_submission_begin(set, of, of->name, sub)) < 0)
		return r;
	return 1;
}

int
outfile_flush(struct outfile_set *set, struct outfile *of, bool ends)
{
	struct outfile_submission sub;
	int r = outfile_flush_begin(set, of, ends, &sub);

	if (r <= 0)
		return r;
	return outfile_submission_end(set, &sub, outfile_submission_run(set, &sub));
}

/* ------------------------------------------------------ writing, checked */

/*
 * Looks for the empty line that ends the header section in buf, which
 * holds the file's bytes [base, base + len); the search starts at from
 * (base <= from, and base == from only when from == 0, so that the byte
 * before is known).  Returns the offset just past the empty line, 0 if
 * there is none yet; *next is where the next search starts (a CR at the
 * very end may begin "\r\n").
 */
static off_t
outfile_find_header_end(const char *buf, size_t len, off_t base, off_t from, off_t *next)
{
	off_t end = base + (off_t) len;

	for (off_t p = from; p < end; p++) {
		char c = buf[p - base];

		if (p > 0 && buf[p - 1 - base] != '\n')
			continue;	/* not at the start of a line */
		if (c == '\n')
			return p + 1;
		if (c == '\r' && p + 1 < end && buf[p + 1 - base] == '\n')
			return p + 2;
		if (c == '\r' && p + 1 == end) {
			*next = p;
			return 0;
		}
	}
	*next = end;
	return 0;
}

/* Runs the header checks of a submission on [0, of->head_end). */
static int
outfile_check_header(struct outfile_set *set, struct outfile *of)
{
	struct outbox_headers h;
	struct outbox_policy pol;
	char why[512];
	ssize_t got;
	char *buf = malloc((size_t) of->head_end);
	int r;

	if (buf == NULL)
		return -ENOMEM;
	got = spool_pread_all(of->fd, buf, (size_t) of->head_end, 0);
	if (got != (ssize_t) of->head_end) {
		free(buf);
		return outfile_refuse(set, of, of->name, got < 0 ? (int) got : -EIO,
		    "cannot read back what was written");
	}
	why[0] = '\0';
	outfile_policy(&of->sender, &pol);
	r = outbox_check_headers(buf, (size_t) got, &pol, &h, why, sizeof why);
	free(buf);
	if (r < 0)
		return outfile_refuse(set, of, of->name, r, why[0] ? why : strerror(-r));
	outbox_headers_free(&h);
	return 0;
}

/*
 * After a write at off: does the file now hold its whole header section?
 * Then check it as a submission would, once.  Only the header section is
 * ever read back, and at most OUTBOX_MAX_HEADER bytes of it.
 */
static int
outfile_watch_header(struct outfile_set *set, struct outfile *of, off_t off)
{
	const off_t bound = OUTBOX_MAX_HEADER;
	off_t size = outfile_size(of), limit, base, next = 0;
	ssize_t got;
	char *buf, why[128];

	if (off < of->head_end)
		of->head_end = 0;	/* the header changed after it was checked */
	if (of->head_end != 0)
		return 0;
	if (off < of->head_scanned)
		of->head_scanned = off;
	if (size < 0)
		return outfile_refuse(set, of, of->name, -EIO, "cannot stat the file");
	limit = size < bound ? size : bound;
	if (limit <= of->head_scanned)
		return 0;
	base = of->head_scanned > 0 ? of->head_scanned - 1 : 0;
	if ((buf = malloc((size_t) (limit - base))) == NULL)
		return -ENOMEM;
	got = spool_pread_all(of->fd, buf, (size_t) (limit - base), base);
	if (got != limit - base) {
		free(buf);
		return outfile_refuse(set, of, of->name, got < 0 ? (int) got : -EIO,
		    "cannot read back what was written");
	}
	of->head_end = outfile_find_header_end(buf, (size_t) got, base, of->head_scanned, &next);
	free(buf);
	if (of->head_end != 0)
		return outfile_check_header(set, of);
	of->head_scanned = next;
	if (size > bound) {
		snprintf(why, sizeof why, "header section larger than %u bytes", OUTBOX_MAX_HEADER);
		return outfile_refuse(set, of, of->name, -EFBIG, why);
	}
	return 0;
}

/* Writes the bytes into the draft, wherever it lives. */
static int
outfile_write_draft(struct outfile_set *set, struct outfile *of, const void *buf, size_t size,
		    off_t off)
{
	off_t end = off + (off_t) size;
	int r;

	if (size == 0)
		return 0;
	if ((r = outfile_make_room(set, of, end)) < 0 ||
	    (r = spool_pwrite_all(of->fd, buf, size, off)) < 0)
		return r;
	if (end > of->mem_size)
		outfile_resized(set, of, end);
	return 0;
}

ssize_t
outfile_write(struct outfile_set *set, struct outfile *of, const void *buf, size_t size,
	      off_t off)
{
	char why[256];
	size_t fits = size;
	bool over;
	int r;

	if (of->state == OUTFILE_REFUSED)
		return of->refusal;
	if (of->state == OUTFILE_SUBMITTED || of->state == OUTFILE_COMMITTING)
		return -EBUSY;		/* sent already: never a fragment after it */
	if (off < 0)
		return -EINVAL;
	over = (uint64_t) off > set->max_size || size > set->max_size - (uint64_t) off;
	if (over)
		fits = (uint64_t) off < set->max_size ? set->max_size - (size_t) off : 0;
	if ((r = outfile_write_draft(set, of, buf, fits, off)) < 0) {
		snprintf(why, sizeof why, "a write to the file failed (%s); nothing was sent",
		    strerror(-r));
		return outfile_refuse(set, of, of->name, r, why);
	}
	if (over) {
		snprintf(why, sizeof why, "larger than the limit of %lu bytes; the first %lu bytes "
		    "are kept", set->max_size, set->max_size);
		return outfile_refuse(set, of, of->name, -EFBIG, why);
	}
	if (!outfile_name_is_held(of->name) && !of->unlinked &&
	    (r = outfile_watch_header(set, of, off)) < 0)
		return r;
	return (ssize_t) size;
}

int
outfile_truncate(struct outfile_set *set, struct outfile *of, off_t size)
{
	off_t now;

	if (size < 0)
		return -EINVAL;
	if (of->state == OUTFILE_SUBMITTED || of->state == OUTFILE_COMMITTING)
		return -EBUSY;
	if (of->state == OUTFILE_REFUSED && size != 0)
		return of->refusal;
	if ((uint64_t) size > set->max_size)
		return -EFBIG;
	if ((now = outfile_size(of)) < 0)
		return -errno;
	if (now != size) {
		int r = outfile_make_room(set, of, size);

		if (r < 0)
			return r;
		if (ftruncate(of->fd, size) < 0)
			return -errno;
		outfile_resized(set, of, size);
	}
	if (size == 0)
		outfile_reset(of);	/* a fresh start */
	if (size < of->head_end)
		of->head_end = 0;
	if (size < of->head_scanned)
		of->head_scanned = size;
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

/* ---------------------------------------------------------------- names */

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
	struct outfile *src = outfile_find(set, from), *dst = outfile_lookup_entry(set, to);
	bool submits = outfile_name_is_held(from) && !outfile_name_is_held(to);
	char *newname;
	int r;

	if (src == NULL)
		return -ENOENT;
	if (src == dst)
		return 0;
	if (dst != NULL && noreplace)
		return -EEXIST;
	/* a held file becomes sendable: now is its close */
	if (submits && src->state == OUTFILE_REFUSED)
		return src->refusal;
	if (submits && src->state == OUTFILE_WRITING && outfile_size(src) == 0)
		return outfile_refuse_empty(src, to);
	if ((newname = strdup(to)) == NULL)
		return -ENOMEM;
	if (submits && src->state == OUTFILE_WRITING && (r = outfile_end(set, src, to)) < 0) {
		free(newname);
		return r;
	}
	if (dst != NULL)
		outfile_drop(set, dst, "replaced");
	free(src->name);
	src->name = newname;
	if (src->refs == 0 && !outfile_name_is_held(src->name) && src->state != OUTFILE_SUBMITTED)
		outfile_destroy(set, src);
	return 0;
}

void
outfile_set_free(struct outfile_set *set)
{
	char qname[512];

	while (set->head != NULL) {
		struct outfile *of = set->head;

		if (!of->unlinked && of->state == OUTFILE_WRITING)
			log_warn("outbox-discarded", "name=%s reason=shutdown",
			    log_quote(qname, sizeof qname, of->name));
		outfile_destroy(set, of);
	}
	if (set->room_fd >= 0)
		(void) close(set->room_fd);
	set->room_fd = -1;
}
