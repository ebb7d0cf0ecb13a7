/*
 * NAME
 *	spoolfs - the spool as a filesystem (libfuse3 low-level operations)
 * DESCRIPTION
 *	See spoolfs.h for the view and its errors.  Layout of this file:
 *	paths and spool access (0 or -errno, no FUSE), attributes, directory
 *	snapshots, then the operations, each of which ends in exactly one
 *	reply.  Nodes (inode.h) carry a kind and a path; outbox files
 *	(outfile.h) carry their own state.
 * SECURITY
 *	Names from the kernel and from the spool are single path components;
 *	every spool path is opened component by component with O_NOFOLLOW,
 *	so a symbolic link planted in the spool is never followed.
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "aliases.h"
#include "cfg.h"
#include "commitgroup.h"
#include "envelope.h"
#include "log.h"
#include "mboxlock.h"
#include "spool.h"

#include "access.h"
#include "inode.h"
#include "lockfile.h"
#include "outfile.h"
#include "passthrough.h"
#include "spoolfs.h"
#include "waiters.h"
#include "watch.h"

#define SPOOLFS_DIR_MAX		(1u << 20)	/* entries in one listing snapshot */
#define SPOOLFS_STATUS_SUFFIX	".status"
#define SPOOLFS_LOCATE_TRIES	3		/* a record may move while we look */
#define SPOOLFS_DRAFT_MODE	0600		/* an outbox/ file at its creation (access.h) */
#define SPOOLFS_OUTWAIT		"wait"		/* outbox/wait/: close(2) waits for the relay */

/*
 * Entry and attribute timeouts.  A committed message never changes
 * (inbox/ messages, queue/<id>, sent/<id>, failed/<id>): the kernel keeps
 * its name, attributes and pages.  Names outside outbox/ stand for the
 * same thing as long as they exist: the kernel keeps them too, and the
 * attributes of directories other than outbox/ (with default_permissions
 * the kernel checks a directory's mode at every step of a path walk: a
 * GETATTR per component when they are not cached).  The spool watcher
 * (watch.h) invalidates a name and its node when the spool removes,
 * moves or replaces it, and the attributes of its directory when a name
 * in it comes or goes.  The timeout bounds what the watcher cannot see
 * (a spool shared over a network filesystem, an event that races with a
 * lookup).  Never cached: records (.status, rewritten as the relay
 * works) and outbox names (a submitted name expires on its own);
 * outbox/'s own attributes and those of its files only for a second
 * (SPOOLFS_OUTBOX_DIR_TIMEOUT, SPOOLFS_OUTFILE_TIMEOUT).
 */
#define SPOOLFS_CACHE_TIMEOUT	60.0
#define SPOOLFS_NO_CACHE	0.0
/*
 * [spool] shared = yes: other hosts change the spool and the watcher sees
 * none of it.  Directories are not cached at all (their attributes, such
 * as the mtime a script polls, are asked each time; listings are read at
 * every opendir anyway and negative lookups are never cached, so another
 * node's arrival shows at once), and names of messages for a second (one
 * removed or moved by another node may linger that long).
 */
#define SPOOLFS_SHARED_TIMEOUT	1.0
/*
 * The attributes of outbox/ and outbox/wait/ (their mode, and an mtime that
 * moves as drafts come and go), asked at every step of every path into
 * them when not cached: twice per `cp` (the path walk, then the create's
 * write check).  The kernel forgets them itself after each create, unlink
 * and rename it sends there, so only what the daemon changes on its own
 * (a close that submits, a submitted name that expires) shows up to this
 * late in their mtime.
 */
#define SPOOLFS_OUTBOX_DIR_TIMEOUT	1.0
/*
 * The attributes of a file in outbox/: everything that changes them
 * comes through the kernel (a write, which makes the kernel forget the
 * size and times itself, a truncation, setattr, an open with O_TRUNC),
 * and a submission changes none of them.  Cached, they spare the GETATTR
 * that cp and dd send right after their create (fstat of the new file),
 * one request in seven of a drop.  A second bounds a change this reasoning
 * missed.
 */
#define SPOOLFS_OUTFILE_TIMEOUT	1.0

struct spoolfs_file;
struct spoolfs_dir;

/*
 * Locking.  The session loop is multi-threaded (fuse_session_loop_mt), so
 * requests run at once.  lock serialises every operation that touches
 * what is marked "protected by lock" below: each runs whole under it
 * (SPOOLFS_SERIALIZED), except
 *   - read: its handle is its own (the kernel sends no RELEASE while a
 *     READ of that handle is in flight), the descriptor in it never
 *     changes, and an outbox entry lives while a handle refers to it;
 *   - readdir: the snapshot belongs to its handle the same way;
 *   - flush: it reads /proc (spoolfs_process_writes_to()) before it takes
 *     lock, holds lock to decide, lets it go while a submission
 *     syncs (outfile.h, THREADS), and takes it again to record the outcome,
 *     so that one close(2) that syncs does not hold up other requests,
 *     and concurrent closes sync at once (and share directory syncs:
 *     spool_msg_commit);
 *   - the refusals (mkdir, link, ...) and statfs, which touch nothing.
 * Lock order: lock, then nodes.lock (taken inside inode.c for changes).
 * The spool watcher's thread takes only nodes.lock (inode_peek), never
 * lock, and sends its notifications holding neither.  The waiters
 * (waiters.h: a .next read, the flush of outbox/wait/) have a lock of
 * their own, taken by read and flush without lock and by the watcher's
 * thread: never held together with lock.
 */
struct spoolfs {
	pthread_mutex_t		lock;
	const struct cfg       *cfg;		/* constant */
	bool			per_user;	/* constant: allow_other, access.h's rules apply */
	struct spool	       *spool;		/* constant; thread-safe (spool.h) */
	struct inode_table	nodes;		/* protected by lock (and nodes.lock, inode.h) */
	struct outfile_set	outbox;		/* protected by lock */
	struct timespec		outbox_changed;	/* protected by lock: mtime, ctime of outbox/ */
	bool			listing_truncated_logged;	/* protected by lock */
	struct spoolfs_file    *files;		/* protected by lock: every open file handle */
	struct spoolfs_dir     *dirs;		/* protected by lock: every open listing */
	void		      (*ready)(void *);	/* protected by lock: run at the first request */
	void		       *ready_arg;
	struct fuse_session    *se;		/* set before the watch starts, then constant */
	struct watch	       *watch;		/* the session's thread only (start, stop) */
	struct waiters	       *waiters;	/* constant; thread-safe, its own lock (waiters.h) */
	struct passthrough     *pt;		/* set before the loop, then constant; its own lock */
};

/* An open file: a descriptor on the spool file, or an outbox entry. */
struct spoolfs_file {
	enum inode_kind		kind;
	uint64_t		ino;		/* of its node: fstat after rm or a move */
	int			fd;		/* -1 for outbox files */
	off_t			base;		/* bytes of fd before the file's offset 0 */
	off_t			end;		/* offset of fd where the file ends, or -1: fd's size */
	struct outfile	       *of;		/* outbox files only */
	struct waiters_reader  *reader;		/* inbox/<mailbox>/.next only (waiters.h) */
	bool			writable;
	bool			passthrough;	/* the kernel reads fd itself (passthrough.h) */
	struct spoolfs_file    *prev, *next;	/* fs->files */
};

/* A listing, taken at opendir so that readdir offsets stay valid. */
struct spoolfs_dirent {
	char		       *name;
	uint64_t		ino;
	mode_t			type;		/* S_IFDIR or S_IFREG */
};

struct spoolfs_dir {
	struct spoolfs_dirent  *ent;
	size_t			n, cap;
	struct spoolfs	       *fs;
	const char	       *path;		/* of the directory, for entry inos */
	char		       *base;		/* its path at opendir, for readdirplus */
	enum inode_kind		kind;		/* ... and what it was */
	enum inode_area		area;
	struct access_caller	caller;		/* who opened it: a shared mount lists per user */
	struct spoolfs_dir     *prev, *next;	/* fs->dirs, once opened */
};

/* The top of the view, as data. */
static const struct spoolfs_top {
	const char	       *name;
	enum inode_kind		kind;
	enum inode_area		area;
	enum spool_dir		dir;		/* whose owner and times it shows */
	mode_t			mode;
} spoolfs_top[] = {
	{ "inbox",  INODE_INBOX,  AREA_NONE,   SPOOL_DIR_MAIL,   0555 },
	{ "outbox", INODE_OUTBOX, AREA_NONE,   SPOOL_DIR_TMP,    0755 },
	{ "queue",  INODE_RECDIR, AREA_QUEUE,  SPOOL_DIR_QUEUE,  0555 },
	{ "sent",   INODE_RECDIR, AREA_SENT,   SPOOL_DIR_SENT,   0555 },
	{ "failed", INODE_RECDIR, AREA_FAILED, SPOOL_DIR_FAILED, 0555 },
};
#define SPOOLFS_NTOP	(sizeof spoolfs_top / sizeof spoolfs_top[0])

static const struct spoolfs_top *
spoolfs_top_by_name(const char *name)
{
	for (size_t i = 0; i < SPOOLFS_NTOP; i++)
		if (strcmp(spoolfs_top[i].name, name) == 0)
			return &spoolfs_top[i];
	return NULL;
}

static const struct spoolfs_top *
spoolfs_top_by_kind(enum inode_kind kind, enum inode_area area)
{
	for (size_t i = 0; i < SPOOLFS_NTOP; i++)
		if (spoolfs_top[i].kind == kind && spoolfs_top[i].area == area)
			return &spoolfs_top[i];
	return NULL;
}

static enum spool_dir
spoolfs_area_dir(enum inode_area area)
{
	switch (area) {
	case AREA_SENT:		return SPOOL_DIR_SENT;
	case AREA_FAILED:	return SPOOL_DIR_FAILED;
	default:		return SPOOL_DIR_QUEUE;
	}
}

/* ---------------------------------------------------------------- paths */

/* A name from the kernel or the spool that we are willing to show. */
static bool
spoolfs_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= NAME_MAX && strchr(name, '/') == NULL &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Spool names that are not shown: hidden files (Maildir temporaries, ...). */
static bool
spoolfs_name_visible(const char *name)
{
	return spoolfs_name_ok(name) && name[0] != '.';
}

/* A message id as spool_new_id() makes them; also a safe file name. */
static bool
spoolfs_id_ok(const char *id, size_t len)
{
	if (len == 0 || len >= ENVELOPE_ID_MAX || id[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int
spoolfs_child_path(const char *parent, const char *name, char *out, size_t outlen)
{
	int n = parent[0] ? snprintf(out, outlen, "%s/%s", parent, name) :
	    snprintf(out, outlen, "%s", name);

	return n < 0 || (size_t) n >= outlen ? -ENAMETOOLONG : 0;
}

/* The mailbox of "inbox/<mailbox>" or "inbox/<mailbox>/<message>". */
static int
spoolfs_path_mailbox(const char *path, char *out, size_t outlen)
{
	const char *mb = strchr(path, '/'), *end;
	size_t len;

	if (mb == NULL)
		return -ENOENT;
	mb++;
	end = strchr(mb, '/');
	len = end ? (size_t) (end - mb) : strlen(mb);
	if (len == 0 || len >= outlen)
		return -ENOENT;
	memcpy(out, mb, len);
	out[len] = '\0';
	return 0;
}

static const char *
spoolfs_path_leaf(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* ---------------------------------------------------------- spool access */

/* Opens dirfd/a[/b] as a directory, following no symbolic link. */
static int
spoolfs_open_dir(int dirfd, const char *a, const char *b)
{
	const int flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(dirfd, a, flags), fd2;

	if (fd < 0)
		return -errno;
	if (b == NULL)
		return fd;
	fd2 = openat(fd, b, flags);
	if (fd2 < 0)
		fd2 = -errno;
	(void) close(fd);
	return fd2;
}

static const char *const spoolfs_maildir_subdirs[] = { "new", "cur" };

/*
 * Finds inbox/<mailbox>/<message> in new/ or cur/ (a reader may move it
 * between the two) and calls fn with the directory and the name.
 */
static int
spoolfs_mailmsg_at(struct spoolfs *fs, const char *path,
		   int (*fn)(int dirfd, const char *name, void *arg), void *arg)
{
	char mailbox[NAME_MAX + 1];
	const char *msg = spoolfs_path_leaf(path);
	int r = -ENOENT;

	if (spoolfs_path_mailbox(path, mailbox, sizeof mailbox) < 0 ||
	    !spoolfs_name_visible(mailbox) || !spoolfs_name_visible(msg))
		return -ENOENT;
	for (size_t i = 0; i < 2; i++) {
		int dfd = spoolfs_open_dir(spool_dirfd(fs->spool, SPOOL_DIR_MAIL), mailbox,
		    spoolfs_maildir_subdirs[i]);

		if (dfd < 0)
			return dfd == -ENOTDIR || dfd == -ELOOP ? -ENOENT : dfd;
		r = fn(dfd, msg, arg);
		(void) close(dfd);
		if (r != -ENOENT)
			return r;
	}
	return r;
}

static int
spoolfs_stat_cb(int dirfd, const char *name, void *arg)
{
	struct stat *st = arg;

	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISREG(st->st_mode) ? 0 : -ENOENT;
}

static int
spoolfs_open_cb(int dirfd, const char *name, void *arg)
{
	int *fd = arg;
	struct stat st;

	*fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (*fd < 0)
		return errno == ELOOP ? -ENOENT : -errno;
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void) close(*fd);
		*fd = -1;
		return -ENOENT;
	}
	return 0;
}

static int
spoolfs_unlink_cb(int dirfd, const char *name, void *arg)
{
	struct stat st;

	(void) arg;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
}

static int
spoolfs_open_file_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;

	if (fd < 0)
		return errno == ELOOP ? -ENOENT : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		(void) close(fd);
		return -ENOENT;
	}
	return fd;
}

/* A parked claim in tmp/: "<id>@<host>,<pid>.old" (queue.h). */
static bool
spoolfs_name_is_parked(const char *name)
{
	char id[SPOOL_ID_MAX];

	return spool_parked_claim_id(name, id) == 0;
}

/*
 * The claim of id in where, opened, or -ENOENT: in active/ a claim
 * ("<id>@<host>,<pid>"), in tmp/ a parked one.
 */
static int
spoolfs_open_claim(struct spoolfs *fs, enum spool_dir where, const char *id)
{
	int dfd = openat(spool_dirfd(fs->spool, where), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t idlen = strlen(id);
	struct dirent *de;
	int r = -ENOENT;
	DIR *d;

	if (dfd < 0)
		return -errno;
	if ((d = fdopendir(dfd)) == NULL) {
		r = -errno;
		(void) close(dfd);
		return r;
	}
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, id, idlen) == 0 && de->d_name[idlen] == '@' &&
		    (where != SPOOL_DIR_TMP || spoolfs_name_is_parked(de->d_name))) {
			r = spoolfs_open_file_at(dirfd(d), de->d_name);
			break;
		}
	closedir(d);
	return r;
}

/*
 * The record of a claim being finished: parked in tmp/ until its new
 * record is published (and removed only after that), so it stands for
 * the message while nothing is published, and never once something is:
 * a parked claim left behind is then a leftover for recovery.
 */
static int
spoolfs_open_parked(struct spoolfs *fs, const char *id)
{
	int fd = spoolfs_open_claim(fs, SPOOL_DIR_TMP, id);

	if (fd >= 0 && spool_record_exists(fs->spool, id)) {
		(void) close(fd);
		return -ENOENT;
	}
	return fd;
}

/*
 * Opens the envelope record of id in area.  queue/ includes the claims
 * of active/ and the parked claims of tmp/, looked for in the order a
 * record moves through them (queue.c), each try after the record was
 * found in none (it may have moved back to queue/ meanwhile).
 */
static int
spoolfs_open_record(struct spoolfs *fs, enum inode_area area, const char *id)
{
	int fd = -ENOENT;

	for (int i = 0; i < SPOOLFS_LOCATE_TRIES && fd == -ENOENT; i++) {
		fd = spoolfs_open_file_at(spool_dirfd(fs->spool, spoolfs_area_dir(area)), id);
		if (fd == -ENOENT && area == AREA_QUEUE)
			fd = spoolfs_open_claim(fs, SPOOL_DIR_ACTIVE, id);
		if (fd == -ENOENT && area == AREA_QUEUE)
			fd = spoolfs_open_parked(fs, id);
	}
	return fd;
}

/* What an open envelope record says about where its message is. */
struct spoolfs_recinfo {
	off_t	data_offset;	/* where the message starts: in data/<id>, or in the record's file */
	off_t	text_len;	/* bytes of the record's text */
	bool	inline_data;	/* the message follows the record in its file (envelope.h) */
};

static int
spoolfs_record_info(int recfd, const char *id, struct spoolfs_recinfo *ri)
{
	struct envelope env;
	int r = envelope_read_fd(recfd, &env);	/* the text; an inline record's seal reads the rest */

	if (r == 0 && (r = envelope_check_inline(recfd, &env, id)) < 0) {
		envelope_free(&env);
		if (r == -EBADMSG) {
			log_warn("record-unreadable", "id=%s reason=torn", id);	/* until recovery drops it */
			return -EIO;
		}
	}
	if (r == -EBADMSG || r == -EINVAL || r == -EIO) {
		log_warn("record-unreadable", "id=%s reason=corrupt", id);
		return -EIO;
	}
	if (r < 0)
		return r;
	ri->data_offset = (off_t) env.data_offset;
	ri->text_len = (off_t) env.text_len;
	ri->inline_data = env.inline_data;
	envelope_free(&env);
	return 0;
}

/*
 * Opens the message of a record and the offset where the message starts
 * in it: data/<id>, or the record's own file when it is inline.
 */
static int
spoolfs_open_recmsg(struct spoolfs *fs, enum inode_area area, const char *id, off_t *base)
{
	int recfd = spoolfs_open_record(fs, area, id), fd = -1, r;
	struct spoolfs_recinfo ri;
	struct stat st;

	if (recfd < 0)
		return recfd;
	r = spoolfs_record_info(recfd, id, &ri);
	if (r == 0 && ri.inline_data)
		fd = recfd;
	else
		(void) close(recfd);
	if (r < 0)
		return r;
	*base = ri.data_offset;
	if (!ri.inline_data && (fd = spoolfs_open_file_at(spool_dirfd(fs->spool, SPOOL_DIR_DATA), id)) < 0)
		return fd;
	if (fstat(fd, &st) < 0 || st.st_size < *base) {
		(void) close(fd);
		log_warn("record-unreadable", "id=%s reason=data-shorter-than-offset", id);
		return -EIO;
	}
	return fd;
}

/*
 * Opens a record for its .status file, which ends where an inline
 * record's text does.  One that does not parse shows whole, as it is:
 * what an operator reads to see what is wrong with it.
 */
static int
spoolfs_open_recstatus(struct spoolfs *fs, enum inode_area area, const char *id, off_t *end)
{
	int fd = spoolfs_open_record(fs, area, id);
	struct spoolfs_recinfo ri;

	if (fd >= 0 && spoolfs_record_info(fd, id, &ri) == 0 && ri.inline_data)
		*end = ri.text_len;
	return fd;
}

/* Splits "<id>" or "<id>.status" (the leaf of a record path). */
static int
spoolfs_record_id(const char *leaf, enum inode_kind kind, char id[ENVELOPE_ID_MAX])
{
	size_t len = strlen(leaf);
	const size_t slen = sizeof SPOOLFS_STATUS_SUFFIX - 1;

	if (kind == INODE_RECSTATUS) {
		if (len <= slen || strcmp(leaf + len - slen, SPOOLFS_STATUS_SUFFIX) != 0)
			return -ENOENT;
		len -= slen;
	}
	if (!spoolfs_id_ok(leaf, len))
		return -ENOENT;
	memcpy(id, leaf, len);
	id[len] = '\0';
	return 0;
}

/* Opens the spool file behind a file node, for reading. */
static int
spoolfs_open_node_file(struct spoolfs *fs, enum inode_kind kind, enum inode_area area,
		       const char *path, off_t *base, off_t *end)
{
	char id[ENVELOPE_ID_MAX];
	int fd = -1, r;

	*base = 0;
	*end = -1;
	switch (kind) {
	case INODE_MAILMSG:
		r = spoolfs_mailmsg_at(fs, path, spoolfs_open_cb, &fd);
		return r < 0 ? r : fd;
	case INODE_RECMSG:
		if ((r = spoolfs_record_id(spoolfs_path_leaf(path), kind, id)) < 0)
			return r;
		return spoolfs_open_recmsg(fs, area, id, base);
	case INODE_RECSTATUS:
		if ((r = spoolfs_record_id(spoolfs_path_leaf(path), kind, id)) < 0)
			return r;
		return spoolfs_open_recstatus(fs, area, id, end);
	default:
		return -EISDIR;
	}
}

/* ------------------------------------------------------------ attributes */

static void
spoolfs_make_dir_attr(struct stat *st, mode_t mode)
{
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
}

/* Read-only files show their mode on disk without write bits, and the bytes from base to end (-1: EOF). */
static void
spoolfs_make_ro_file_attr(struct stat *st, off_t base, off_t end)
{
	st->st_mode = S_IFREG | (st->st_mode & 07555);
	st->st_nlink = st->st_nlink > 0 ? 1 : 0;	/* 0: removed while open */
	if (end >= 0 && st->st_size > end)
		st->st_size = end;
	st->st_size -= base;
	st->st_blocks = (st->st_size + 511) / 512;
}

static int
spoolfs_stat_top(struct spoolfs *fs, const struct spoolfs_top *top, struct stat *st)
{
	if (fstat(spool_dirfd(fs->spool, top->dir), st) < 0)
		return -errno;
	spoolfs_make_dir_attr(st, top->mode);
	if (top->kind == INODE_OUTBOX) {
		st->st_mtim = fs->outbox_changed;
		st->st_ctim = fs->outbox_changed;
	}
	return 0;
}

static int
spoolfs_stat_mailbox(struct spoolfs *fs, const char *path, struct stat *st)
{
	char mailbox[NAME_MAX + 1];
	int mailfd = spool_dirfd(fs->spool, SPOOL_DIR_MAIL);

	if (spoolfs_path_mailbox(path, mailbox, sizeof mailbox) < 0 ||
	    !spoolfs_name_visible(mailbox))
		return -ENOENT;
	if (fstatat(mailfd, mailbox, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st->st_mode))
		return -ENOENT;
	/* its times are those of its newest subdirectory: new mail shows (to the ns) */
	for (size_t i = 0; i < 2; i++) {
		struct stat sub;
		int dfd = spoolfs_open_dir(mailfd, mailbox, spoolfs_maildir_subdirs[i]);

		if (dfd < 0)
			continue;
		if (fstat(dfd, &sub) == 0 && (sub.st_mtim.tv_sec > st->st_mtim.tv_sec ||
		    (sub.st_mtim.tv_sec == st->st_mtim.tv_sec &&
		    sub.st_mtim.tv_nsec > st->st_mtim.tv_nsec))) {
			st->st_mtim = sub.st_mtim;
			st->st_ctim = sub.st_ctim;
		}
		(void) close(dfd);
	}
	spoolfs_make_dir_attr(st, st->st_mode & 07777);
	return 0;
}

/* inbox/<mailbox>/.next: read-only for whoever may read the mailbox, size 0. */
static int
spoolfs_stat_next(struct spoolfs *fs, const char *path, struct stat *st)
{
	int r = spoolfs_stat_mailbox(fs, path, st);

	if (r < 0)
		return r;
	st->st_mode = S_IFREG | (st->st_mode & 0444);
	st->st_nlink = 1;
	st->st_size = 0;
	st->st_blocks = 0;
	return 0;
}

/* inbox/<mailbox>/.lock: the mailbox's lock file (lockfile.h), there for whoever may read the mailbox. */
static int
spoolfs_stat_lock(struct spoolfs *fs, const char *path, struct stat *st)
{
	return spoolfs_stat_next(fs, path, st);		/* the same: read-only, empty */
}

/*
 * The name of an outbox file in the outfile set: its path below outbox/
 * ("report", "wait/report"), so that outbox/ and outbox/wait/ share one set
 * and its bounds, and a submission from wait/ says so in its origin.
 */
static const char *
spoolfs_outbox_name(const char *path)
{
	return path + sizeof "outbox/" - 1;
}

static bool
spoolfs_outbox_name_waits(const char *name)
{
	return strncmp(name, SPOOLFS_OUTWAIT "/", sizeof SPOOLFS_OUTWAIT) == 0;
}

/* The attributes of what path shows now; st_ino is left to the caller. */
static int
spoolfs_stat_spool(struct spoolfs *fs, enum inode_kind kind, enum inode_area area,
		   const char *path, struct stat *st)
{
	struct outfile *of;
	off_t base, end;
	int fd, r;

	memset(st, 0, sizeof *st);
	switch (kind) {
	case INODE_ROOT:
		if (fstat(spool_dirfd(fs->spool, SPOOL_DIR_ROOT), st) < 0)
			return -errno;
		spoolfs_make_dir_attr(st, 0555);
		return 0;
	case INODE_INBOX:
	case INODE_OUTBOX:
	case INODE_RECDIR:
		return spoolfs_stat_top(fs, spoolfs_top_by_kind(kind, area), st);
	case INODE_OUTWAIT:
		return spoolfs_stat_top(fs, spoolfs_top_by_kind(INODE_OUTBOX, AREA_NONE), st);
	case INODE_MAILBOX:
		return spoolfs_stat_mailbox(fs, path, st);
	case INODE_NEXT:
		return spoolfs_stat_next(fs, path, st);
	case INODE_LOCK:
		return spoolfs_stat_lock(fs, path, st);
	case INODE_MAILMSG:
		if ((r = spoolfs_mailmsg_at(fs, path, spoolfs_stat_cb, st)) < 0)
			return r;
		spoolfs_make_ro_file_attr(st, 0, -1);
		return 0;
	case INODE_OUTFILE:
		if ((of = outfile_find(&fs->outbox, spoolfs_outbox_name(path))) == NULL)
			return -ENOENT;
		return outfile_stat(of, st);
	case INODE_RECMSG:
	case INODE_RECSTATUS:
		if ((fd = spoolfs_open_node_file(fs, kind, area, path, &base, &end)) < 0)
			return fd;
		r = fstat(fd, st) < 0 ? -errno : 0;
		(void) close(fd);
		if (r == 0)
			spoolfs_make_ro_file_attr(st, base, end);
		return r;
	}
	return -ENOENT;
}

/* Attributes of an open file, from its descriptor (it may have moved). */
static int
spoolfs_stat_handle(const struct spoolfs_file *h, struct stat *st)
{
	if (h->of != NULL)
		return outfile_stat(h->of, st);
	if (fstat(h->fd, st) < 0)
		return -errno;
	spoolfs_make_ro_file_attr(st, h->base, h->end);
	return 0;
}

/* An open handle of node ino, or NULL. */
static struct spoolfs_file *
spoolfs_open_file_of_node(struct spoolfs *fs, uint64_t ino)
{
	for (struct spoolfs_file *h = fs->files; h; h = h->next)
		if (h->ino == ino)
			return h;
	return NULL;
}

/* Committed messages: immutable, cached by the kernel (see the timeouts). */
static bool
spoolfs_kind_is_message(enum inode_kind kind)
{
	return kind == INODE_MAILMSG || kind == INODE_RECMSG;
}

static double
spoolfs_attr_timeout(const struct spoolfs *fs, enum inode_kind kind)
{
	bool shared = fs->cfg->shared;

	switch (kind) {
	case INODE_MAILMSG:
	case INODE_RECMSG:
		return shared ? SPOOLFS_SHARED_TIMEOUT : SPOOLFS_CACHE_TIMEOUT;
	case INODE_ROOT:
	case INODE_INBOX:
	case INODE_MAILBOX:
	case INODE_RECDIR:
		return shared ? SPOOLFS_NO_CACHE : SPOOLFS_CACHE_TIMEOUT;
	case INODE_OUTBOX:
	case INODE_OUTWAIT:
		return SPOOLFS_OUTBOX_DIR_TIMEOUT;
	case INODE_OUTFILE:
		return SPOOLFS_OUTFILE_TIMEOUT;
	default:
		return SPOOLFS_NO_CACHE;
	}
}

/*
 * Names filtered per user (allow_other) are never cached by the kernel:
 * every path walk through them asks again (access.h).  On a shared spool
 * names are kept briefly: other nodes change it without inotify.
 */
static double
spoolfs_entry_timeout(const struct spoolfs *fs, enum inode_kind kind)
{
	if (kind == INODE_OUTFILE)
		return SPOOLFS_NO_CACHE;
	if (fs->per_user && (kind == INODE_MAILBOX || kind == INODE_RECMSG || kind == INODE_RECSTATUS))
		return SPOOLFS_NO_CACHE;
	return fs->cfg->shared ? SPOOLFS_SHARED_TIMEOUT : SPOOLFS_CACHE_TIMEOUT;
}

static bool
spoolfs_kind_is_file(enum inode_kind kind)
{
	return kind == INODE_MAILMSG || kind == INODE_OUTFILE || kind == INODE_RECMSG ||
	    kind == INODE_RECSTATUS;
}

/* What a name in a directory of the given kind stands for. */
static int
spoolfs_child_kind(enum inode_kind parent, enum inode_area parea, const char *name,
		   enum inode_kind *kind, enum inode_area *area)
{
	const struct spoolfs_top *top;
	size_t len = strlen(name), slen = sizeof SPOOLFS_STATUS_SUFFIX - 1;
	long timeout;

	*area = parea;
	switch (parent) {
	case INODE_ROOT:
		if ((top = spoolfs_top_by_name(name)) == NULL)
			return -ENOENT;
		*kind = top->kind;
		*area = top->area;
		return 0;
	case INODE_INBOX:	*kind = INODE_MAILBOX;	return 0;
	case INODE_MAILBOX:
		*kind = strcmp(name, MBOXLOCK_NAME) == 0 ? INODE_LOCK :
		    waiters_next_name(name, &timeout) ? INODE_NEXT : INODE_MAILMSG;
		return 0;
	case INODE_OUTBOX:
		*kind = strcmp(name, SPOOLFS_OUTWAIT) == 0 ? INODE_OUTWAIT : INODE_OUTFILE;
		return 0;
	case INODE_OUTWAIT:	*kind = INODE_OUTFILE;	return 0;
	case INODE_RECDIR:
		*kind = len > slen && strcmp(name + len - slen, SPOOLFS_STATUS_SUFFIX) == 0 ?
		    INODE_RECSTATUS : INODE_RECMSG;
		return 0;
	default:
		return -ENOTDIR;
	}
}

/* ------------------------------------------- a mount shared by Unix users */

static struct access_caller
spoolfs_caller(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	return (struct access_caller) { ctx->uid, ctx->gid };
}

/* The envelope record behind a record node's path, opened (for its submitter). */
static int
spoolfs_open_record_of(struct spoolfs *fs, enum inode_kind kind, enum inode_area area,
		       const char *path)
{
	char id[ENVELOPE_ID_MAX];
	int r;

	if ((r = spoolfs_record_id(spoolfs_path_leaf(path), kind, id)) < 0)
		return r;
	return spoolfs_open_record(fs, area, id);
}

/*
 * May the caller see what path shows (access.h)?  0; -EACCES for another
 * user's mailbox and what is in it; -ENOENT for a record another user
 * submitted.  Everything, when the mount is not shared.
 */
static int
spoolfs_may_see(struct spoolfs *fs, const struct access_caller *c, enum inode_kind kind,
		enum inode_area area, const char *path)
{
	char mailbox[NAME_MAX + 1];
	int fd, r;

	if (!fs->per_user || access_sees_all(c))
		return 0;
	switch (kind) {
	case INODE_MAILBOX:
	case INODE_MAILMSG:
		if (spoolfs_path_mailbox(path, mailbox, sizeof mailbox) < 0)
			return -ENOENT;
		return access_mailbox(fs->cfg, c, mailbox);
	case INODE_RECMSG:
	case INODE_RECSTATUS:
		if ((fd = spoolfs_open_record_of(fs, kind, area, path)) < 0)
			return fd;
		r = access_record(c, fd);
		(void) close(fd);
		return r;
	default:
		return 0;
	}
}

/* May the caller open, rename, remove or change an outbox/ file? */
static int
spoolfs_may_use_outfile(struct spoolfs *fs, const struct access_caller *c,
			const struct outfile *of)
{
	return fs->per_user ? access_outfile(c, of->uid) : 0;
}

/* The same for a name in outbox/ (0 when there is no such file). */
static int
spoolfs_may_use_outfile_named(struct spoolfs *fs, const struct access_caller *c,
			      const char *name)
{
	const struct outfile *of = outfile_find(&fs->outbox, name);

	return of != NULL ? spoolfs_may_use_outfile(fs, c, of) : 0;
}

/*
 * What a shared mount shows of owners and modes (access.h): outbox/ 1777,
 * a mailbox and its messages its owner's, a record its submitter's.
 */
static void
spoolfs_shared_attr(struct spoolfs *fs, enum inode_kind kind, enum inode_area area,
		    const char *path, struct stat *st)
{
	char mailbox[NAME_MAX + 1];
	int fd;

	if (!fs->per_user)
		return;
	switch (kind) {
	case INODE_OUTBOX:
		st->st_mode = S_IFDIR | 01777;
		return;
	case INODE_MAILBOX:
	case INODE_MAILMSG:
		if (spoolfs_path_mailbox(path, mailbox, sizeof mailbox) == 0)
			access_mailbox_attr(fs->cfg, mailbox, st);
		return;
	case INODE_RECMSG:
	case INODE_RECSTATUS:
		if ((fd = spoolfs_open_record_of(fs, kind, area, path)) >= 0) {
			access_record_attr(fd, st);
			(void) close(fd);
		}
		return;
	default:
		return;
	}
}

/* The attributes of what path shows now, for every user; st_ino is left to the caller. */
static int
spoolfs_stat_path(struct spoolfs *fs, enum inode_kind kind, enum inode_area area,
		  const char *path, struct stat *st)
{
	int r = spoolfs_stat_spool(fs, kind, area, path, st);

	if (r == 0)
		spoolfs_shared_attr(fs, kind, area, path, st);
	return r;
}

/* Does a listing show this mailbox (its own, to a user of a shared mount)? */
static bool
spoolfs_dir_shows_mailbox(const struct spoolfs_dir *dir, const char *mailbox)
{
	return !dir->fs->per_user || access_mailbox(dir->fs->cfg, &dir->caller, mailbox) == 0;
}

/* Does a listing show the record dirfd/name (the caller's submissions)? */
static bool
spoolfs_dir_shows_record(const struct spoolfs_dir *dir, int dirfd, const char *name)
{
	int fd, r;

	if (!dir->fs->per_user || access_sees_all(&dir->caller))
		return true;
	if ((fd = spoolfs_open_file_at(dirfd, name)) < 0)
		return false;
	r = access_record(&dir->caller, fd);
	(void) close(fd);
	return r == 0;
}

/* ----------------------------------------------------- directory snapshots */

static int
spoolfs_dir_add(struct spoolfs_dir *dir, const char *name, mode_t type)
{
	char path[PATH_MAX];
	struct spoolfs_dirent *e;

	if (dir->n >= SPOOLFS_DIR_MAX) {
		if (!dir->fs->listing_truncated_logged)
			log_warn("listing-truncated", "dir=%s max=%u", dir->path[0] ? dir->path : "/",
			    SPOOLFS_DIR_MAX);
		dir->fs->listing_truncated_logged = true;
		return 0;
	}
	if (dir->n == dir->cap) {
		size_t cap = dir->cap ? dir->cap * 2 : 32;

		e = reallocarray(dir->ent, cap, sizeof *e);
		if (e == NULL)
			return -ENOMEM;
		dir->ent = e;
		dir->cap = cap;
	}
	e = &dir->ent[dir->n];
	if ((e->name = strdup(name)) == NULL)
		return -ENOMEM;
	e->type = type;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		e->ino = 0;	/* filled in by the caller */
	else if (spoolfs_child_path(dir->path, name, path, sizeof path) == 0)
		e->ino = inode_number(&dir->fs->nodes, path);
	else {
		free(e->name);
		return 0;	/* a name we could not show anyway */
	}
	dir->n++;
	return 0;
}

static void
spoolfs_dir_free(struct spoolfs_dir *dir)
{
	if (dir == NULL)
		return;
	if (dir->prev != NULL)
		dir->prev->next = dir->next;
	else if (dir->fs->dirs == dir)
		dir->fs->dirs = dir->next;
	if (dir->next != NULL)
		dir->next->prev = dir->prev;
	for (size_t i = 0; i < dir->n; i++)
		free(dir->ent[i].name);
	free(dir->ent);
	free(dir->base);
	free(dir);
}

typedef int (*spoolfs_list_fn)(struct spoolfs_dir *dir, int dirfd, const char *name,
		unsigned char d_type, void *arg);

/* Calls fn for each visible entry of at/sub (sub NULL: at itself). */
static int
spoolfs_list(struct spoolfs_dir *dir, int at, const char *sub, spoolfs_list_fn fn,
	     void *arg)
{
	int fd = sub ? openat(at, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) :
	    openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	int r = 0;
	DIR *d;

	if (fd < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		r = -errno;
		(void) close(fd);
		return r;
	}
	errno = 0;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (spoolfs_name_visible(de->d_name))
			r = fn(dir, dirfd(d), de->d_name, de->d_type, arg);
		errno = 0;
	}
	if (r == 0 && errno != 0)
		r = -errno;
	closedir(d);
	return r;
}

static bool
spoolfs_dirent_is(int dirfd, const char *name, unsigned char d_type, mode_t type)
{
	struct stat st;

	if (d_type != DT_UNKNOWN)
		return (type == S_IFDIR && d_type == DT_DIR) || (type == S_IFREG && d_type == DT_REG);
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (st.st_mode & S_IFMT) == type;
}

static int
spoolfs_list_mailbox_cb(struct spoolfs_dir *dir, int dirfd, const char *name,
			unsigned char d_type, void *arg)
{
	(void) arg;
	if (!spoolfs_dirent_is(dirfd, name, d_type, S_IFDIR) || !spoolfs_dir_shows_mailbox(dir, name))
		return 0;
	return spoolfs_dir_add(dir, name, S_IFDIR);
}

static int
spoolfs_list_message_cb(struct spoolfs_dir *dir, int dirfd, const char *name,
			unsigned char d_type, void *arg)
{
	(void) arg;
	if (!spoolfs_dirent_is(dirfd, name, d_type, S_IFREG))
		return 0;
	return spoolfs_dir_add(dir, name, S_IFREG);
}

/* A record name in queue/, sent/, failed/ ("<id>") or active/ ("<id>@..."). */
static int
spoolfs_list_record_cb(struct spoolfs_dir *dir, int dirfd, const char *name,
		       unsigned char d_type, void *arg)
{
	const char *at = strchr(name, '@');
	size_t len = at ? (size_t) (at - name) : strlen(name);
	char entry[ENVELOPE_ID_MAX + sizeof SPOOLFS_STATUS_SUFFIX];
	int r;

	(void) d_type;
	(void) arg;
	if (!spoolfs_id_ok(name, len) || !spoolfs_dir_shows_record(dir, dirfd, name))
		return 0;
	memcpy(entry, name, len);
	entry[len] = '\0';
	if ((r = spoolfs_dir_add(dir, entry, S_IFREG)) < 0)
		return r;
	memcpy(entry + len, SPOOLFS_STATUS_SUFFIX, sizeof SPOOLFS_STATUS_SUFFIX);
	return spoolfs_dir_add(dir, entry, S_IFREG);
}

static int
spoolfs_dirent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct spoolfs_dirent *) a)->name,
	    ((const struct spoolfs_dirent *) b)->name);
}

/* Sorts the entries from index first on and drops the names seen twice. */
static void
spoolfs_dir_unique(struct spoolfs_dir *dir, size_t first)
{
	size_t i, kept = first;

	if (dir->n <= first)
		return;
	qsort(dir->ent + first, dir->n - first, sizeof *dir->ent, spoolfs_dirent_cmp);
	for (i = first; i < dir->n; i++) {
		if (kept > first && strcmp(dir->ent[kept - 1].name, dir->ent[i].name) == 0) {
			free(dir->ent[i].name);
			continue;
		}
		dir->ent[kept++] = dir->ent[i];
	}
	dir->n = kept;
}

/* A parked claim in tmp/ whose message has no record published yet. */
static int
spoolfs_list_parked_cb(struct spoolfs_dir *dir, int dirfd, const char *name,
		       unsigned char d_type, void *arg)
{
	char id[SPOOL_ID_MAX];

	if (spool_parked_claim_id(name, id) < 0 || spool_record_exists(dir->fs->spool, id))
		return 0;
	return spoolfs_list_record_cb(dir, dirfd, name, d_type, arg);
}

/*
 * queue/ shows the records of queue/, the claims of active/ and the
 * claims parked in tmp/ while the relay finishes them (queue.c).  A
 * record moves forward through these in that order at any time, and
 * back from active/ to queue/.  Listed as queue/, active/, tmp/,
 * queue/ again, a record that moves once while we list is seen in one
 * of the four, and never twice once duplicates are dropped.
 */
static int
spoolfs_snapshot_queue(struct spoolfs *fs, struct spoolfs_dir *dir)
{
	int qfd = spool_dirfd(fs->spool, SPOOL_DIR_QUEUE);
	int afd = spool_dirfd(fs->spool, SPOOL_DIR_ACTIVE);
	int tfd = spool_dirfd(fs->spool, SPOOL_DIR_TMP);
	size_t first = dir->n;
	int r;

	if ((r = spoolfs_list(dir, qfd, NULL, spoolfs_list_record_cb, NULL)) < 0 ||
	    (r = spoolfs_list(dir, afd, NULL, spoolfs_list_record_cb, NULL)) < 0 ||
	    (r = spoolfs_list(dir, tfd, NULL, spoolfs_list_parked_cb, NULL)) < 0 ||
	    (r = spoolfs_list(dir, qfd, NULL, spoolfs_list_record_cb, NULL)) < 0)
		return r;
	spoolfs_dir_unique(dir, first);
	return 0;
}

/* outbox/ (its files and wait/) or outbox/wait/ (the files of the set under wait/). */
static int
spoolfs_snapshot_outbox(struct spoolfs *fs, bool waits, struct spoolfs_dir *dir)
{
	const size_t skip = waits ? sizeof SPOOLFS_OUTWAIT : 0;
	int r = waits ? 0 : spoolfs_dir_add(dir, SPOOLFS_OUTWAIT, S_IFDIR);

	outfile_expire(&fs->outbox);
	for (struct outfile *of = fs->outbox.head; of && r == 0; of = of->next)
		if (!of->unlinked && spoolfs_outbox_name_waits(of->name) == waits)
			r = spoolfs_dir_add(dir, of->name + skip, S_IFREG);
	return r;
}

static int
spoolfs_snapshot(struct spoolfs *fs, const struct inode *node, struct spoolfs_dir *dir)
{
	char mailbox[NAME_MAX + 1];
	int r = 0, mailfd = spool_dirfd(fs->spool, SPOOL_DIR_MAIL), mbfd;

	switch (node->kind) {
	case INODE_ROOT:
		for (size_t i = 0; i < SPOOLFS_NTOP && r == 0; i++)
			r = spoolfs_dir_add(dir, spoolfs_top[i].name, S_IFDIR);
		return r;
	case INODE_INBOX:
		return spoolfs_list(dir, mailfd, NULL, spoolfs_list_mailbox_cb, NULL);
	case INODE_MAILBOX:
		if (spoolfs_path_mailbox(node->path, mailbox, sizeof mailbox) < 0)
			return -ENOENT;
		if ((mbfd = spoolfs_open_dir(mailfd, mailbox, NULL)) < 0)
			return mbfd;
		for (size_t i = 0; i < 2 && r == 0; i++) {
			r = spoolfs_list(dir, mbfd, spoolfs_maildir_subdirs[i],
			    spoolfs_list_message_cb, NULL);
			if (r == -ENOENT)
				r = 0;	/* a mailbox being created */
		}
		(void) close(mbfd);
		return r;
	case INODE_OUTBOX:
	case INODE_OUTWAIT:
		return spoolfs_snapshot_outbox(fs, node->kind == INODE_OUTWAIT, dir);
	case INODE_RECDIR:
		if (node->area == AREA_QUEUE)
			return spoolfs_snapshot_queue(fs, dir);
		return spoolfs_list(dir, spool_dirfd(fs->spool, spoolfs_area_dir(node->area)), NULL,
		    spoolfs_list_record_cb, NULL);
	default:
		return -ENOTDIR;
	}
}

static uint64_t
spoolfs_parent_ino(struct spoolfs *fs, const struct inode *node)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(node->path, '/');
	size_t len;
	struct inode *p;

	if (slash == NULL)
		return FUSE_ROOT_ID;
	len = (size_t) (slash - node->path);
	memcpy(parent, node->path, len);
	parent[len] = '\0';
	p = inode_find(&fs->nodes, parent);
	return p ? p->ino : inode_number(&fs->nodes, parent);
}

/* ------------------------------------------------------------ operations */

static struct spoolfs *
spoolfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct spoolfs_file *
spoolfs_file_of(const struct fuse_file_info *fi)
{
	return (struct spoolfs_file *) (uintptr_t) fi->fh;
}

/* The live node of ino, or NULL (forgotten, or its file was removed). */
static struct inode *
spoolfs_node(struct spoolfs *fs, fuse_ino_t ino)
{
	struct inode *node = inode_get(&fs->nodes, ino);

	return node && !node->detached ? node : NULL;
}

static void
spoolfs_touch_outbox(struct spoolfs *fs)
{
	clock_gettime(CLOCK_REALTIME, &fs->outbox_changed);
}

static void
spoolfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void) userdata;
	/* open(O_TRUNC) arrives as one request we can check, not a SETATTR */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* flock(2) reaches us: inbox/<mailbox>/.lock is the spool's lock (lockfile.h) */
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
	/* every write must reach us before FLUSH: close(2) submits */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/*
	 * Every listing with attributes: ls reads the whole directory before
	 * its first lstat, so the kernel's "auto" mode (attributes only while
	 * lookups come between readdir calls) would give them for the first
	 * batch only.
	 */
	/* read replies go from the spool file to /dev/fuse through a pipe */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	}
}

/* Fills e for node and hands its id to the kernel (one lookup counted). */
static void
spoolfs_reply_entry(fuse_req_t req, struct spoolfs *fs, const char *path,
		    enum inode_kind kind, enum inode_area area, const struct stat *st)
{
	struct fuse_entry_param e;
	struct inode *node;
	int r;

	if ((r = inode_lookup(&fs->nodes, path, kind, area, &node)) < 0)
		return (void) fuse_reply_err(req, -r);
	memset(&e, 0, sizeof e);
	e.ino = node->ino;
	e.attr = *st;
	e.attr.st_ino = node->ino;
	e.attr_timeout = spoolfs_attr_timeout(fs, kind);
	e.entry_timeout = spoolfs_entry_timeout(fs, kind);
	if (fuse_reply_entry(req, &e) != 0)
		inode_unref(&fs->nodes, node, 1);	/* the kernel never got it */
}

static void
spoolfs_lookup_locked(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct inode *dir = spoolfs_node(fs, parent);
	struct access_caller caller = spoolfs_caller(req);
	char path[PATH_MAX];
	enum inode_kind kind;
	enum inode_area area;
	struct stat st;
	int r;

	if (dir == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	if (!spoolfs_name_ok(name))
		return (void) fuse_reply_err(req, strlen(name) > NAME_MAX ? ENAMETOOLONG : ENOENT);
	if ((r = spoolfs_child_kind(dir->kind, dir->area, name, &kind, &area)) < 0 ||
	    (r = spoolfs_child_path(dir->path, name, path, sizeof path)) < 0 ||
	    (r = spoolfs_may_see(fs, &caller, kind, area, path)) < 0 ||
	    (r = spoolfs_stat_path(fs, kind, area, path, &st)) < 0)
		return (void) fuse_reply_err(req, -r);
	spoolfs_reply_entry(req, fs, path, kind, area, &st);
}

static void
spoolfs_forget_locked(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct spoolfs *fs = spoolfs_of(req);

	inode_forget(&fs->nodes, ino, nlookup);
	log_debug("forget", "count=1 nodes=%zu", fs->nodes.count);
	fuse_reply_none(req);
}

static void
spoolfs_forget_multi_locked(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct spoolfs *fs = spoolfs_of(req);

	for (size_t i = 0; i < count; i++)
		inode_forget(&fs->nodes, forgets[i].ino, forgets[i].nlookup);
	log_debug("forget", "count=%zu nodes=%zu", count, fs->nodes.count);
	fuse_reply_none(req);
}

static void
spoolfs_getattr_locked(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct inode *node = inode_get(&fs->nodes, ino);
	struct spoolfs_file *h;
	struct stat st;
	int r;

	if (node == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	/* fstat(2) of an open file: what the descriptor has, even if moved */
	if (fi != NULL && fi->fh != 0 && spoolfs_kind_is_file(node->kind)) {
		r = spoolfs_stat_handle(spoolfs_file_of(fi), &st);
		if (r == 0)
			spoolfs_shared_attr(fs, node->kind, node->area, node->path, &st);
	} else {
		r = node->detached ? -ENOENT :
		    spoolfs_stat_path(fs, node->kind, node->area, node->path, &st);
		/*
		 * The kernel sends no handle with fstat(2): a file removed (rm)
		 * or moved (queue/ -> sent/) while open is found by its node.
		 */
		if (r == -ENOENT && (h = spoolfs_open_file_of_node(fs, node->ino)) != NULL)
			r = spoolfs_stat_handle(h, &st);
	}
	if (r < 0)
		return (void) fuse_reply_err(req, -r);
	st.st_ino = node->ino;
	fuse_reply_attr(req, &st, spoolfs_attr_timeout(fs, node->kind));
}

static int
spoolfs_set_outfile_times(struct outfile *of, const struct stat *attr, int to_set)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		ts[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		ts[1] = attr->st_mtim;
	if (ts[0].tv_nsec == UTIME_OMIT && ts[1].tv_nsec == UTIME_OMIT)
		return 0;
	return futimens(of->fd, ts) < 0 ? -errno : 0;
}

/* truncate(2), chmod(2), chown(2), utimensat(2) on an outbox file. */
static int
spoolfs_setattr_outfile(struct spoolfs *fs, struct outfile *of, const struct stat *attr,
			int to_set)
{
	int r;

	if ((to_set & FUSE_SET_ATTR_SIZE) &&
	    (r = outfile_truncate(&fs->outbox, of, attr->st_size)) < 0)
		return r;
	if ((r = spoolfs_set_outfile_times(of, attr, to_set)) < 0)
		return r;
	if (to_set & FUSE_SET_ATTR_MODE)
		of->mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		of->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		of->gid = attr->st_gid;
	return 0;
}

static void
spoolfs_setattr_locked(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct inode *node = inode_get(&fs->nodes, ino);
	struct access_caller caller = spoolfs_caller(req);
	struct outfile *of = NULL;
	struct stat st;
	int r;

	if (node == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	if (node->kind != INODE_OUTFILE)
		return (void) fuse_reply_err(req, EPERM);
	if (fi != NULL && fi->fh != 0)
		of = spoolfs_file_of(fi)->of;
	else if (!node->detached)
		of = outfile_find(&fs->outbox, spoolfs_outbox_name(node->path));
	if (of == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	if (spoolfs_may_use_outfile(fs, &caller, of) < 0)
		return (void) fuse_reply_err(req, EPERM);	/* as chmod(2) of another's file */
	if ((r = spoolfs_setattr_outfile(fs, of, attr, to_set)) < 0 ||
	    (r = outfile_stat(of, &st)) < 0)
		return (void) fuse_reply_err(req, -r);
	st.st_ino = node->ino;
	fuse_reply_attr(req, &st, spoolfs_attr_timeout(fs, node->kind));
}

/* A new handle, in fs->files until spoolfs_file_close(). */
static struct spoolfs_file *
spoolfs_file_new(struct spoolfs *fs, enum inode_kind kind, uint64_t ino, int fd, off_t base,
		 off_t end, struct outfile *of, bool writable)
{
	struct spoolfs_file *h = calloc(1, sizeof *h);

	if (h == NULL)
		return NULL;
	h->kind = kind;
	h->ino = ino;
	h->fd = fd;
	h->base = base;
	h->end = end;
	h->of = of;
	h->writable = writable;
	h->next = fs->files;
	if (fs->files != NULL)
		fs->files->prev = h;
	fs->files = h;
	return h;
}

static void
spoolfs_file_unlist(struct spoolfs *fs, struct spoolfs_file *h)
{
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		fs->files = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
}

static void
spoolfs_file_close(struct spoolfs *fs, struct spoolfs_file *h)
{
	spoolfs_file_unlist(fs, h);
	if (h->of != NULL) {
		outfile_release(&fs->outbox, h->of, h->writable);
		spoolfs_touch_outbox(fs);
	} else if (h->fd >= 0)
		(void) close(h->fd);
	if (h->passthrough)
		passthrough_release(fs->pt, h->ino);
	waiters_reader_free(h->reader);
	free(h);
}

/*
 * Whether tid is its process's main thread (a single-threaded writer's
 * only one: cp, dd, a shell), which saves a read of /proc: tgkill(2) with
 * signal 0 finds the thread tid in the group tid (0, or EPERM for another
 * user's process: the daemon keeps no CAP_KILL) or finds none (ESRCH).
 */
static bool
spoolfs_thread_leads_its_group(pid_t tid)
{
	return tgkill(tid, tid, 0) == 0 || errno == EPERM;
}

/*
 * The process (thread group) of the thread a request comes from: the
 * kernel names the thread, and a program may open on one thread and
 * close on another.  The thread id itself when /proc does not say.
 */
static pid_t
spoolfs_process_of(pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	long tgid;
	int fd;

	if (tid <= 0 || spoolfs_thread_leads_its_group(tid))
		return tid;
	snprintf(path, sizeof path, "/proc/%d/status", (int) tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return tid;
	n = read(fd, buf, sizeof buf - 1);
	(void) close(fd);
	if (n <= 0)
		return tid;
	buf[n] = '\0';
	if ((p = strstr(buf, "\nTgid:")) == NULL || (tgid = strtol(p + 6, NULL, 10)) <= 0)
		return tid;
	return (pid_t) tgid;
}

/*
 * Does process pid hold another descriptor, open for writing, on the
 * file of node ino?  /proc/<pid>/fdinfo says, without a request to this
 * filesystem (a stat of /proc/<pid>/fd/N would ask us, and we are busy).
 * The descriptor being closed is already out of the table.  A process
 * whose /proc we may not read holds nothing more, as far as we know.
 */
static bool
spoolfs_process_writes_to(pid_t pid, uint64_t ino)
{
	char path[64], buf[256], *p;
	struct dirent *de;
	bool found = false;
	int dfd, fd;
	ssize_t n;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/fdinfo", (int) pid);
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return false;
	if ((d = fdopendir(dfd)) == NULL) {
		(void) close(dfd);
		return false;
	}
	while (!found && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    (fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		n = read(fd, buf, sizeof buf - 1);
		(void) close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if ((p = strstr(buf, "\nino:\t")) == NULL || strtoull(p + 6, NULL, 10) != ino)
			continue;
		found = strncmp(buf, "pos:", 4) == 0 && (p = strstr(buf, "\nflags:\t")) != NULL &&
		    (strtoul(p + 8, NULL, 8) & O_ACCMODE) != O_RDONLY;
	}
	closedir(d);
	return found;
}

/*
 * Is this close(2) the end of the message?  Only the process that opened
 * it for writing ends it (a child that inherited a copy does not), and
 * only with its last descriptor on it: a shell closes copies all the
 * time (dup2 around "echo x >&3", the first descriptor of "> f").
 * closer_writes_more is spoolfs_process_writes_to(closer, ino), read
 * before lock was taken: the scan of /proc touches nothing of ours, and
 * under lock it held up every other request for its length.  The closer
 * is inside close(2) while we answer; only its other threads could open
 * or close a descriptor meanwhile, which the lock never stopped either.
 */
static bool
spoolfs_close_ends_message(const struct spoolfs_file *h, pid_t closer, bool closer_writes_more)
{
	return closer == h->of->writer.pid && !closer_writes_more;
}

static struct outfile_writer
spoolfs_writer_of(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	return (struct outfile_writer) { spoolfs_process_of(ctx->pid), ctx->uid, ctx->gid };
}

static bool
spoolfs_flags_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static void
spoolfs_create_locked(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct inode *dir = spoolfs_node(fs, parent), *node;
	struct outfile_writer w = spoolfs_writer_of(req);
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct fuse_entry_param e;
	struct spoolfs_file *h;
	struct outfile *of;
	char path[PATH_MAX];
	enum inode_kind kind;
	enum inode_area area;
	int r;

	(void) mode;	/* a draft is its writer's alone: SPOOLFS_DRAFT_MODE */
	if (dir == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	if (dir->kind != INODE_OUTBOX && dir->kind != INODE_OUTWAIT)
		return (void) fuse_reply_err(req, EPERM);
	if (!spoolfs_name_ok(name))
		return (void) fuse_reply_err(req, EINVAL);
	if ((r = spoolfs_child_path(dir->path, name, path, sizeof path)) < 0 ||
	    (r = spoolfs_child_kind(dir->kind, dir->area, name, &kind, &area)) < 0 ||
	    (r = kind == INODE_OUTFILE ? 0 : -EEXIST) < 0 ||
	    (r = outfile_create(&fs->outbox, spoolfs_outbox_name(path), SPOOLFS_DRAFT_MODE, &w, writable, &of)) < 0)
		return (void) fuse_reply_err(req, -r);
	memset(&e, 0, sizeof e);
	if ((r = outfile_stat(of, &e.attr)) < 0 ||
	    (r = inode_lookup(&fs->nodes, path, INODE_OUTFILE, AREA_NONE, &node)) < 0 ||
	    (h = spoolfs_file_new(fs, INODE_OUTFILE, node->ino, -1, 0, -1, of, writable)) == NULL) {
		if (r == 0) {
			inode_unref(&fs->nodes, node, 1);
			r = -ENOMEM;
		}
		(void) outfile_unlink(&fs->outbox, spoolfs_outbox_name(path));
		outfile_release(&fs->outbox, of, writable);
		return (void) fuse_reply_err(req, -r);
	}
	e.ino = e.attr.st_ino = node->ino;
	e.attr_timeout = spoolfs_attr_timeout(fs, INODE_OUTFILE);
	e.entry_timeout = spoolfs_entry_timeout(fs, INODE_OUTFILE);
	fi->fh = (uintptr_t) h;
	fi->direct_io = 0;
	fi->keep_cache = 0;
	spoolfs_touch_outbox(fs);
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* the caller is gone (interrupted): as if it never existed */
		(void) outfile_unlink(&fs->outbox, spoolfs_outbox_name(path));
		spoolfs_file_close(fs, h);
		inode_unref(&fs->nodes, node, 1);
	}
}

static int
spoolfs_open_outfile(struct spoolfs *fs, struct inode *node, int flags,
		     const struct outfile_writer *w, const struct access_caller *c,
		     struct spoolfs_file **out)
{
	struct outfile *of = outfile_find(&fs->outbox, spoolfs_outbox_name(node->path));
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	int r;

	if (of == NULL)
		return -ENOENT;
	if ((r = spoolfs_may_use_outfile(fs, c, of)) < 0)
		return r;
	if ((r = outfile_open(&fs->outbox, &of, flags, w)) < 0)
		return r;
	if ((*out = spoolfs_file_new(fs, INODE_OUTFILE, node->ino, -1, 0, -1, of, writable)) == NULL) {
		outfile_release(&fs->outbox, of, writable);
		return -ENOMEM;
	}
	return 0;
}

static int
spoolfs_open_ro(struct spoolfs *fs, struct inode *node, int flags, struct spoolfs_file **out)
{
	off_t base, end;
	int fd;

	if (spoolfs_flags_write(flags))
		return -EACCES;
	if ((fd = spoolfs_open_node_file(fs, node->kind, node->area, node->path, &base, &end)) < 0)
		return fd;
	if ((*out = spoolfs_file_new(fs, node->kind, node->ino, fd, base, end, NULL, false)) == NULL) {
		(void) close(fd);
		return -ENOMEM;
	}
	return 0;
}

/* inbox/<mailbox>/.next[.<seconds>]: a handle with its own answer (waiters.h). */
static int
spoolfs_open_next(struct spoolfs *fs, struct inode *node, int flags, struct spoolfs_file **out)
{
	char mailbox[NAME_MAX + 1];
	struct waiters_reader *reader;
	long timeout;

	if (spoolfs_flags_write(flags))
		return -EACCES;
	if (spoolfs_path_mailbox(node->path, mailbox, sizeof mailbox) < 0 ||
	    !waiters_next_name(node->name, &timeout))
		return -ENOENT;
	if ((reader = waiters_reader_new(mailbox, timeout)) == NULL)
		return -ENOMEM;
	if ((*out = spoolfs_file_new(fs, node->kind, node->ino, -1, 0, -1, NULL, false)) == NULL) {
		waiters_reader_free(reader);
		return -ENOMEM;
	}
	(*out)->reader = reader;
	return 0;
}

/*
 * inbox/<mailbox>/.lock: a descriptor of the spool's mail/<mailbox>/.lock
 * for this open file, which its flock(2) requests lock (lockfile.h) and
 * whose release drops the lock.
 */
static int
spoolfs_open_lock(struct spoolfs *fs, struct inode *node, int flags, struct spoolfs_file **out)
{
	char mailbox[NAME_MAX + 1];
	int fd, r;

	if (spoolfs_flags_write(flags))
		return -EACCES;
	if (spoolfs_path_mailbox(node->path, mailbox, sizeof mailbox) < 0)
		return -ENOENT;
	if ((r = mboxlock_open(fs->spool, mailbox, &fd)) < 0)
		return r;
	if ((*out = spoolfs_file_new(fs, node->kind, node->ino, fd, 0, -1, NULL, false)) == NULL) {
		(void) close(fd);
		return -ENOMEM;
	}
	return 0;
}

/* flock(2) on an open file, forwarded by the kernel (FUSE_CAP_FLOCK_LOCKS): lockfile.h. */
static void
spoolfs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	(void) ino;
	lockfile_flock(req, spoolfs_file_of(fi)->fd, op);
}

static void
spoolfs_open_locked(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct inode *node = spoolfs_node(fs, ino);
	struct access_caller caller = spoolfs_caller(req);
	struct spoolfs_file *h = NULL;
	struct outfile_writer w;
	int r;

	if (node == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	switch (node->kind) {
	case INODE_OUTFILE:
		w = spoolfs_writer_of(req);
		r = spoolfs_open_outfile(fs, node, fi->flags, &w, &caller, &h);
		if (r == 0 && (fi->flags & O_TRUNC))
			spoolfs_touch_outbox(fs);	/* it may be a new message now */
		break;
	case INODE_MAILMSG:
	case INODE_RECMSG:
	case INODE_RECSTATUS:
		r = spoolfs_may_see(fs, &caller, node->kind, node->area, node->path);
		if (r == 0)
			r = spoolfs_open_ro(fs, node, fi->flags, &h);
		break;
	case INODE_NEXT:
		r = spoolfs_open_next(fs, node, fi->flags, &h);
		break;
	case INODE_LOCK:
		r = spoolfs_may_see(fs, &caller, INODE_MAILBOX, node->area, node->path);
		if (r == 0)
			r = spoolfs_open_lock(fs, node, fi->flags, &h);
		break;
	default:
		r = -EISDIR;
		break;
	}
	if (r < 0)
		return (void) fuse_reply_err(req, -r);
	fi->fh = (uintptr_t) h;
	/* an inbox/ message is the spool file itself: the kernel may read it */
	h->passthrough = node->kind == INODE_MAILMSG && h->base == 0 &&
	    passthrough_open(fs->pt, node->ino, h->fd) == 0;
	/* a message's pages stay valid until the watcher says it went */
	fi->keep_cache = spoolfs_kind_is_message(node->kind) && !h->passthrough;
	/* nothing to do at close(2) of a message: no FLUSH request */
	fi->noflush = spoolfs_kind_is_message(node->kind);
	/* a record's size changes as it moves, .next has none: no page cache */
	fi->direct_io = node->kind == INODE_RECSTATUS || node->kind == INODE_NEXT || node->kind == INODE_LOCK;
	if (fuse_reply_open(req, fi) != 0)
		spoolfs_file_close(fs, h);
}

/* How much of size bytes read at pos lie before end. */
static size_t
spoolfs_read_size(off_t pos, off_t end, size_t size)
{
	if (pos >= end)
		return 0;
	return (uint64_t) (end - pos) < size ? (size_t) (end - pos) : size;
}

static void
spoolfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	struct spoolfs_file *h = spoolfs_file_of(fi);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	off_t base = h->of ? 0 : h->base;

	(void) ino;
	if (off < 0 || off > INT64_MAX - base)
		return (void) fuse_reply_err(req, EINVAL);
	if (h->reader != NULL)	/* answered now or when a message comes */
		return waiters_read(spoolfs_of(req)->waiters, h->reader, req, size, off);
	if (h->of == NULL && h->end >= 0)	/* an inline record's .status: its text alone */
		buf.buf[0].size = spoolfs_read_size(base + off, h->end, size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = h->of ? h->of->fd : h->fd;
	buf.buf[0].pos = base + off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void
spoolfs_write_locked(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct spoolfs_file *h = spoolfs_file_of(fi);
	ssize_t n;

	(void) ino;
	if (h->of == NULL || !h->writable)
		return (void) fuse_reply_err(req, EBADF);
	n = outfile_write(&fs->outbox, h->of, data, size, off);
	if (n < 0)
		return (void) fuse_reply_err(req, (int) -n);
	fuse_reply_write(req, (size_t) n);
}

/*
 * close(2) returns the answer of FLUSH: the submission happens here, its
 * syncs without fs->lock (outfile.h, THREADS).
 */
static void
spoolfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct spoolfs_file *h = spoolfs_file_of(fi);
	struct outfile_submission sub;
	bool waits = false, writes_more;
	pid_t closer;
	int r = 0;

	if (h->of == NULL || !h->writable)
		return (void) fuse_reply_err(req, 0);
	closer = spoolfs_process_of(fuse_req_ctx(req)->pid);
	writes_more = spoolfs_process_writes_to(closer, ino);
	pthread_mutex_lock(&fs->lock);
	r = outfile_flush_begin(&fs->outbox, h->of, spoolfs_close_ends_message(h, closer, writes_more),
	    &sub);
	if (r == 1) {
		waits = spoolfs_outbox_name_waits(sub.name);
		pthread_mutex_unlock(&fs->lock);
		r = outfile_submission_run(&fs->outbox, &sub);
		pthread_mutex_lock(&fs->lock);
		r = outfile_submission_end(&fs->outbox, &sub, r);
	}
	pthread_mutex_unlock(&fs->lock);
	if (r == 0 && waits)	/* outbox/wait/: close(2) returns what the relay got */
		return waiters_outcome(fs->waiters, req, sub.id, fs->cfg->wait_timeout);
	fuse_reply_err(req, -r);
}

static void
spoolfs_release_locked(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void) ino;
	spoolfs_file_close(spoolfs_of(req), spoolfs_file_of(fi));
	fuse_reply_err(req, 0);
}

static void
spoolfs_opendir_locked(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct inode *node = spoolfs_node(fs, ino);
	struct spoolfs_dir *dir;
	int r;

	if (node == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	if ((dir = calloc(1, sizeof *dir)) == NULL)
		return (void) fuse_reply_err(req, ENOMEM);
	dir->fs = fs;
	dir->path = node->path;
	dir->kind = node->kind;
	dir->area = node->area;
	dir->caller = spoolfs_caller(req);
	if ((r = spoolfs_may_see(fs, &dir->caller, node->kind, node->area, node->path)) < 0) {
		spoolfs_dir_free(dir);
		return (void) fuse_reply_err(req, -r);
	}
	r = -ENOMEM;
	if ((dir->base = strdup(node->path)) == NULL ||
	    (r = spoolfs_dir_add(dir, ".", S_IFDIR)) < 0 ||
	    (r = spoolfs_dir_add(dir, "..", S_IFDIR)) < 0 ||
	    (r = spoolfs_snapshot(fs, node, dir)) < 0) {
		spoolfs_dir_free(dir);
		return (void) fuse_reply_err(req, -r);
	}
	dir->ent[0].ino = node->ino;
	dir->ent[1].ino = spoolfs_parent_ino(fs, node);
	dir->path = NULL;	/* node->path may change: only the snapshot counts */
	dir->next = fs->dirs;	/* freed at releasedir, or by spoolfs_free at unmount */
	if (fs->dirs != NULL)
		fs->dirs->prev = dir;
	fs->dirs = dir;
	fi->fh = (uintptr_t) dir;
	if (fuse_reply_open(req, fi) != 0)
		spoolfs_dir_free(dir);
}

static void
spoolfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct spoolfs_dir *dir = (struct spoolfs_dir *) (uintptr_t) fi->fh;
	size_t used = 0;
	char *buf;

	(void) ino;
	if (off < 0)
		return (void) fuse_reply_err(req, EINVAL);
	if ((buf = malloc(size ? size : 1)) == NULL)
		return (void) fuse_reply_err(req, ENOMEM);
	for (size_t i = (size_t) off; i < dir->n; i++) {
		struct stat st = { .st_ino = dir->ent[i].ino, .st_mode = dir->ent[i].type };
		size_t len = fuse_add_direntry(req, buf + used, size - used, dir->ent[i].name,
		    &st, (off_t) i + 1);

		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/*
 * The attributes of a listed message of a mailbox, from the new/ and cur/
 * descriptors of the batch (instead of opening both per entry).
 */
static int
spoolfs_stat_listed_mailmsg(const int sub[2], const char *name, struct stat *st)
{
	int r = -ENOENT;

	for (size_t i = 0; i < 2 && r == -ENOENT; i++)
		if (sub[i] >= 0)
			r = spoolfs_stat_cb(sub[i], name, st);
	if (r == 0)
		spoolfs_make_ro_file_attr(st, 0, -1);
	return r;
}

/* new/ and cur/ of the mailbox a listing shows, -1 where missing. */
static void
spoolfs_open_listed_mailbox(struct spoolfs *fs, const struct spoolfs_dir *dir, int sub[2])
{
	char mailbox[NAME_MAX + 1];

	sub[0] = sub[1] = -1;
	if (dir->kind != INODE_MAILBOX ||
	    spoolfs_path_mailbox(dir->base, mailbox, sizeof mailbox) < 0)
		return;
	for (size_t i = 0; i < 2; i++)
		sub[i] = spoolfs_open_dir(spool_dirfd(fs->spool, SPOOL_DIR_MAIL), mailbox,
		    spoolfs_maildir_subdirs[i]);
}

/*
 * The entry of a readdirplus: the node and attributes of what the name
 * shows now, one lookup counted (*node set); or, for "." and ".." and a
 * name gone since opendir, only its name (e->ino 0: the kernel links
 * nothing and looks the name up when it is used).
 */
static void
spoolfs_dirent_plus(struct spoolfs *fs, const struct spoolfs_dir *dir, size_t i,
		    const int sub[2], struct fuse_entry_param *e, struct inode **node)
{
	const struct spoolfs_dirent *ent = &dir->ent[i];
	char path[PATH_MAX];
	enum inode_kind kind;
	enum inode_area area;
	int r;

	memset(e, 0, sizeof *e);
	*node = NULL;
	if (i >= 2 && spoolfs_child_kind(dir->kind, dir->area, ent->name, &kind, &area) == 0 &&
	    spoolfs_child_path(dir->base, ent->name, path, sizeof path) == 0) {
		if (kind == INODE_MAILMSG && (sub[0] >= 0 || sub[1] >= 0)) {
			r = spoolfs_stat_listed_mailmsg(sub, ent->name, &e->attr);
			if (r == 0)
				spoolfs_shared_attr(fs, kind, area, path, &e->attr);
		} else
			r = spoolfs_stat_path(fs, kind, area, path, &e->attr);
		if (r == 0 && inode_lookup(&fs->nodes, path, kind, area, node) == 0) {
			e->ino = (*node)->ino;
			e->attr.st_ino = (*node)->ino;
			e->attr_timeout = spoolfs_attr_timeout(fs, kind);
			e->entry_timeout = spoolfs_entry_timeout(fs, kind);
			return;
		}
		memset(&e->attr, 0, sizeof e->attr);
	}
	e->attr.st_ino = ent->ino;
	e->attr.st_mode = ent->type;
}

/*
 * readdir with attributes: "ls -l" costs one request per batch instead of
 * a LOOKUP per name.  Every node in the reply counts one lookup; if the
 * reply cannot be sent, they are given back.
 */
static void
spoolfs_readdirplus_locked(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct spoolfs_dir *dir = (struct spoolfs_dir *) (uintptr_t) fi->fh;
	struct inode **sent = NULL, *node;
	size_t used = 0, nsent = 0;
	struct fuse_entry_param e;
	int sub[2];
	char *buf;

	(void) ino;
	if (off < 0)
		return (void) fuse_reply_err(req, EINVAL);
	/* an entry takes more than 64 bytes: at most size / 64 nodes */
	if ((buf = malloc(size ? size : 1)) == NULL ||
	    (sent = calloc(size / 64 + 1, sizeof *sent)) == NULL) {
		free(buf);
		return (void) fuse_reply_err(req, ENOMEM);
	}
	spoolfs_open_listed_mailbox(fs, dir, sub);
	for (size_t i = (size_t) off; i < dir->n; i++) {
		size_t len;

		spoolfs_dirent_plus(fs, dir, i, sub, &e, &node);
		len = fuse_add_direntry_plus(req, buf + used, size - used, dir->ent[i].name, &e,
		    (off_t) i + 1);
		if (len > size - used) {
			if (node != NULL)
				inode_unref(&fs->nodes, node, 1);
			break;
		}
		used += len;
		if (node != NULL)
			sent[nsent++] = node;
	}
	for (size_t i = 0; i < 2; i++)
		if (sub[i] >= 0)
			(void) close(sub[i]);
	if (fuse_reply_buf(req, buf, used) != 0)
		for (size_t i = 0; i < nsent; i++)
			inode_unref(&fs->nodes, sent[i], 1);
	free(sent);
	free(buf);
}

static void
spoolfs_releasedir_locked(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void) ino;
	spoolfs_dir_free((struct spoolfs_dir *) (uintptr_t) fi->fh);
	fuse_reply_err(req, 0);
}

static int
spoolfs_unlink_mailmsg(struct spoolfs *fs, const char *path)
{
	char mailbox[NAME_MAX + 1], qname[512];
	int r = spoolfs_mailmsg_at(fs, path, spoolfs_unlink_cb, NULL);

	if (r == 0 && spoolfs_path_mailbox(path, mailbox, sizeof mailbox) == 0)
		log_info("inbox-deleted", "mailbox=%s name=%s", mailbox,
		    log_quote(qname, sizeof qname, spoolfs_path_leaf(path)));
	return r;
}

static void
spoolfs_unlink_locked(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct inode *dir = spoolfs_node(fs, parent);
	struct access_caller caller = spoolfs_caller(req);
	char path[PATH_MAX];
	int r;

	if (dir == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	if ((r = spoolfs_child_path(dir->path, name, path, sizeof path)) < 0)
		return (void) fuse_reply_err(req, -r);
	switch (dir->kind) {
	case INODE_MAILBOX:
		r = spoolfs_may_see(fs, &caller, dir->kind, dir->area, dir->path);
		if (r == 0)
			r = spoolfs_name_ok(name) ? spoolfs_unlink_mailmsg(fs, path) : -ENOENT;
		break;
	case INODE_OUTBOX:
	case INODE_OUTWAIT:
		r = spoolfs_may_use_outfile_named(fs, &caller, spoolfs_outbox_name(path));
		if (r == 0)
			r = outfile_unlink(&fs->outbox, spoolfs_outbox_name(path));
		if (r == 0)
			spoolfs_touch_outbox(fs);
		break;
	default:
		r = -EPERM;
		break;
	}
	if (r == 0)
		inode_detach(&fs->nodes, path);
	fuse_reply_err(req, -r);
}

/* mkdir, rmdir, symlink, link, mknod: the view has a fixed shape. */
static void
spoolfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void) parent;
	(void) name;
	(void) mode;
	fuse_reply_err(req, EPERM);
}

static void
spoolfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void) parent;
	(void) name;
	fuse_reply_err(req, EPERM);
}

static void
spoolfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void) link;
	(void) parent;
	(void) name;
	fuse_reply_err(req, EPERM);
}

static void
spoolfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void) ino;
	(void) newparent;
	(void) newname;
	fuse_reply_err(req, EPERM);
}

static void
spoolfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void) parent;
	(void) name;
	(void) mode;
	(void) rdev;
	fuse_reply_err(req, EPERM);
}

static void
spoolfs_rename_locked(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags)
{
	struct spoolfs *fs = spoolfs_of(req);
	struct inode *from = spoolfs_node(fs, parent), *to = spoolfs_node(fs, newparent), *node;
	struct access_caller caller = spoolfs_caller(req);
	char oldpath[PATH_MAX], newpath[PATH_MAX];
	int r;

	if (from == NULL || to == NULL)
		return (void) fuse_reply_err(req, ENOENT);
	if ((from->kind != INODE_OUTBOX && from->kind != INODE_OUTWAIT) ||
	    (to->kind != INODE_OUTBOX && to->kind != INODE_OUTWAIT))
		return (void) fuse_reply_err(req, EPERM);
	if (flags & ~(unsigned) RENAME_NOREPLACE)
		return (void) fuse_reply_err(req, EINVAL);
	if (!spoolfs_name_ok(newname))
		return (void) fuse_reply_err(req, EINVAL);
	if ((r = spoolfs_child_path(from->path, name, oldpath, sizeof oldpath)) < 0 ||
	    (r = spoolfs_child_path(to->path, newname, newpath, sizeof newpath)) < 0 ||
	    (r = spoolfs_may_use_outfile_named(fs, &caller, spoolfs_outbox_name(oldpath))) < 0 ||
	    (r = spoolfs_may_use_outfile_named(fs, &caller, spoolfs_outbox_name(newpath))) < 0 ||
	    (r = outfile_rename(&fs->outbox, spoolfs_outbox_name(oldpath),
	    spoolfs_outbox_name(newpath), flags & RENAME_NOREPLACE)) < 0)
		return (void) fuse_reply_err(req, -r);
	spoolfs_touch_outbox(fs);
	if ((node = inode_find(&fs->nodes, oldpath)) != NULL) {
		if (inode_move(&fs->nodes, node, newpath) < 0)
			inode_detach(&fs->nodes, oldpath);	/* looked up afresh */
	} else
		inode_detach(&fs->nodes, newpath);
	fuse_reply_err(req, 0);
}

static void
spoolfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void) ino;
	if (fstatvfs(spool_dirfd(spoolfs_of(req)->spool, SPOOL_DIR_ROOT), &sv) < 0)
		return (void) fuse_reply_err(req, errno);
	fuse_reply_statfs(req, &sv);
}

/*
 * The kernel sends no request before it has processed the reply to INIT:
 * what must come after it (the mount's read-ahead, which INIT sets) runs
 * at the first request.  Under fs->lock.
 */
static void
spoolfs_run_ready(struct spoolfs *fs)
{
	void (*fn)(void *) = fs->ready;

	if (fn != NULL) {
		fs->ready = NULL;
		fn(fs->ready_arg);
	}
}

void
spoolfs_when_ready(struct spoolfs *fs, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&fs->lock);
	fs->ready = fn;
	fs->ready_arg = arg;
	pthread_mutex_unlock(&fs->lock);
}

/*
 * The operations that touch shared state run whole under fs->lock (see
 * struct spoolfs); read, readdir and the refusals need no lock, flush
 * lets it go while a submission syncs (spoolfs_flush).
 */
#define SPOOLFS_SERIALIZED(op, params, args)			\
static void							\
spoolfs_##op params						\
{								\
	struct spoolfs *fs_ = spoolfs_of(req);			\
								\
	pthread_mutex_lock(&fs_->lock);				\
	spoolfs_run_ready(fs_);					\
	spoolfs_##op##_locked args;				\
	pthread_mutex_unlock(&fs_->lock);			\
}

SPOOLFS_SERIALIZED(lookup, (fuse_req_t req, fuse_ino_t parent, const char *name),
    (req, parent, name))
SPOOLFS_SERIALIZED(forget, (fuse_req_t req, fuse_ino_t ino, uint64_t nlookup),
    (req, ino, nlookup))
SPOOLFS_SERIALIZED(forget_multi, (fuse_req_t req, size_t count, struct fuse_forget_data *forgets),
    (req, count, forgets))
SPOOLFS_SERIALIZED(getattr, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
    (req, ino, fi))
SPOOLFS_SERIALIZED(setattr, (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi),
    (req, ino, attr, to_set, fi))
SPOOLFS_SERIALIZED(unlink, (fuse_req_t req, fuse_ino_t parent, const char *name),
    (req, parent, name))
SPOOLFS_SERIALIZED(rename, (fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags),
    (req, parent, name, newparent, newname, flags))
SPOOLFS_SERIALIZED(create, (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi),
    (req, parent, name, mode, fi))
SPOOLFS_SERIALIZED(open, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
    (req, ino, fi))
SPOOLFS_SERIALIZED(write, (fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off, struct fuse_file_info *fi),
    (req, ino, data, size, off, fi))
SPOOLFS_SERIALIZED(release, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
    (req, ino, fi))
SPOOLFS_SERIALIZED(opendir, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
    (req, ino, fi))
SPOOLFS_SERIALIZED(readdirplus, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi),
    (req, ino, size, off, fi))
SPOOLFS_SERIALIZED(releasedir, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
    (req, ino, fi))

static const struct fuse_lowlevel_ops spoolfs_lowlevel_ops = {
	.init		= spoolfs_init,
	.lookup		= spoolfs_lookup,
	.forget		= spoolfs_forget,
	.forget_multi	= spoolfs_forget_multi,
	.getattr	= spoolfs_getattr,
	.setattr	= spoolfs_setattr,
	.mknod		= spoolfs_mknod,
	.mkdir		= spoolfs_mkdir,
	.unlink		= spoolfs_unlink,
	.rmdir		= spoolfs_rmdir,
	.symlink	= spoolfs_symlink,
	.link		= spoolfs_link,
	.rename		= spoolfs_rename,
	.create		= spoolfs_create,
	.open		= spoolfs_open,
	.read		= spoolfs_read,
	.write		= spoolfs_write,
	.flush		= spoolfs_flush,
	.release	= spoolfs_release,
	/*
	 * No fsync: an outbox file is a draft that becomes durable when close(2)
	 * submits it, and every other file is read-only.  libfuse answers the
	 * first FSYNC with ENOSYS, and the kernel then answers every fsync(2)
	 * of the mount with 0 itself (fc->no_fsync): no request per `cp` that
	 * syncs, or `dd conv=fsync`.
	 */
	.flock		= spoolfs_flock,
	.opendir	= spoolfs_opendir,
	.readdir	= spoolfs_readdir,
	.readdirplus	= spoolfs_readdirplus,
	.releasedir	= spoolfs_releasedir,
	.statfs		= spoolfs_statfs,
};

/* ------------------------------------------------- the spool changed */

/*
 * On the watch thread: the kernel forgets the name dir/name and what it
 * cached of the node behind it.  Never on a request's thread (watch.h).
 */
static void
spoolfs_forget_name(struct spoolfs *fs, const char *dir, const char *name)
{
	char path[PATH_MAX];
	uint64_t parent = inode_peek(&fs->nodes, dir), child;

	if (spoolfs_child_path(dir, name, path, sizeof path) < 0)
		return;
	child = inode_peek(&fs->nodes, path);
	if (parent != 0) {
		(void) fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name));
		/* a negative offset: its attributes (times, link count) only */
		(void) fuse_lowlevel_notify_inval_inode(fs->se, parent, -1, 0);
	}
	if (child != 0)
		(void) fuse_lowlevel_notify_inval_inode(fs->se, child, 0, 0);
}

static bool
spoolfs_node_is_cached(const struct inode *node)
{
	return node->kind != INODE_OUTFILE && !node->pinned;	/* the kinds whose names the kernel keeps */
}

/* Events were lost: every message the kernel knows is forgotten. */
static void
spoolfs_forget_all(struct spoolfs *fs)
{
	struct inode_known *known;
	size_t n;

	if (inode_each_known(&fs->nodes, spoolfs_node_is_cached, &known, &n) < 0)
		return;
	log_warn("watch-overflow", "forgotten=%zu", n);
	for (size_t i = 0; i < n; i++) {
		char *slash = strrchr(known[i].path, '/');

		if (slash == NULL)
			continue;
		*slash = '\0';
		spoolfs_forget_name(fs, known[i].path, slash + 1);
	}
	inode_known_free(known, n);
}

static void
spoolfs_spool_changed(void *arg, const char *dir, const char *name)
{
	struct spoolfs *fs = arg;
	char status[NAME_MAX + 1];

	waiters_spool_changed(fs->waiters, dir, name);	/* .next, outbox/wait/ */
	if (dir == NULL)
		return spoolfs_forget_all(fs);
	spoolfs_forget_name(fs, dir, name);
	if (strchr(dir, '/') == NULL && strcmp(dir, "inbox") != 0 &&
	    snprintf(status, sizeof status, "%s%s", name, SPOOLFS_STATUS_SUFFIX) < (int) sizeof status)
		spoolfs_forget_name(fs, dir, status);	/* queue/<id> and queue/<id>.status */
}

int
spoolfs_watch_start(struct spoolfs *fs, struct fuse_session *se)
{
	int r;

	fs->se = se;
	if ((r = waiters_start(fs->waiters)) < 0)
		return r;
	if ((r = watch_start(fs->spool, spoolfs_spool_changed, fs, &fs->watch)) < 0)
		waiters_stop(fs->waiters);
	return r;
}

int
spoolfs_passthrough_start(struct spoolfs *fs, struct fuse_session *se)
{
	return passthrough_install(se, fs->cfg->passthrough, &fs->pt);
}

void
spoolfs_watch_stop(struct spoolfs *fs)
{
	watch_stop(fs->watch);
	fs->watch = NULL;
	waiters_stop(fs->waiters);	/* answers what still waits, before the unmount */
}

const struct fuse_lowlevel_ops *
spoolfs_ops(void)
{
	return &spoolfs_lowlevel_ops;
}

/*
 * The aliases table of outbox/ submissions, the same file smtpd loads:
 * its files may belong to root or to the spool's owner (the daemons'
 * user).  A table that does not load stops the start.
 */
static int
spoolfs_load_aliases(struct spoolfs *fs)
{
	char err[1024], q[1100];
	struct stat st;
	uid_t owner = fstat(spool_dirfd(fs->spool, SPOOL_DIR_ROOT), &st) == 0 ? st.st_uid : geteuid();

	if (aliases_source_configured(fs->cfg, owner, &fs->outbox.aliases, err, sizeof(err)) < 0) {
		log_error("aliases", "error=%s", log_quote(q, sizeof(q), err));
		fprintf(stderr, "spoolgate-fs: %s\n", err);
		return -EINVAL;
	}
	if (fs->outbox.aliases != NULL) {
		struct aliases *a = aliases_source_get(fs->outbox.aliases);

		log_info("aliases-loaded", "file=%s aliases=%zu when=start",
		    log_quote(q, sizeof(q), fs->cfg->aliases_file), aliases_count(a));
		aliases_release(a);
	}
	return 0;
}

int
spoolfs_new(const struct cfg *cfg, struct spool *spool, struct spoolfs **out)
{
	struct spoolfs *fs = calloc(1, sizeof *fs);
	struct inode *node;
	int r;

	if (fs == NULL)
		return -ENOMEM;
	pthread_mutex_init(&fs->lock, NULL);
	fs->cfg = cfg;
	fs->per_user = cfg->allow_other;
	fs->spool = spool;
	if ((r = inode_table_init(&fs->nodes)) < 0) {
		free(fs);
		return r;
	}
	for (size_t i = 0; i < SPOOLFS_NTOP; i++) {
		if ((r = inode_lookup(&fs->nodes, spoolfs_top[i].name, spoolfs_top[i].kind,
		    spoolfs_top[i].area, &node)) < 0) {
			inode_table_free(&fs->nodes);
			free(fs);
			return r;
		}
		node->pinned = true;
		node->nlookup = 0;	/* the kernel's count starts at its first lookup */
	}
	outfile_set_init(&fs->outbox, spool, cfg->max_message_size, cfg->hostname);
	outfile_set_senders(&fs->outbox, cfg);
	fs->outbox.cfg = cfg;
	if ((r = spoolfs_load_aliases(fs)) < 0 || (r = commitgroup_new(spool, &fs->outbox.group)) < 0 ||
	    (r = waiters_new(spool, cfg->keep_sent, &fs->waiters)) < 0) {
		commitgroup_free(fs->outbox.group);
		aliases_source_free(fs->outbox.aliases);
		inode_table_free(&fs->nodes);
		pthread_mutex_destroy(&fs->lock);
		free(fs);
		return r;
	}
	spoolfs_touch_outbox(fs);
	*out = fs;
	return 0;
}

void
spoolfs_free(struct spoolfs *fs)
{
	if (fs == NULL)
		return;
	/* an unmount releases nothing: what was still open is freed here */
	while (fs->dirs != NULL)
		spoolfs_dir_free(fs->dirs);
	while (fs->files != NULL) {
		struct spoolfs_file *h = fs->files;

		spoolfs_file_unlist(fs, h);
		if (h->of == NULL && h->fd >= 0)
			(void) close(h->fd);
		waiters_reader_free(h->reader);
		free(h);		/* its outbox entry goes with the set */
	}
	outfile_set_free(&fs->outbox);
	if (fs->outbox.group != NULL) {
		struct commitgroup_stats st;

		commitgroup_get_stats(fs->outbox.group, &st);
		log_info("outbox-commits", "commits=%llu batches=%llu max_batch=%llu content_syncs=%llu", st.commits,
		    st.batches, st.max_batch, st.content_syncs);
	}
	commitgroup_free(fs->outbox.group);
	passthrough_free(fs->pt);
	aliases_source_free(fs->outbox.aliases);
	waiters_free(fs->waiters);
	inode_table_free(&fs->nodes);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}
