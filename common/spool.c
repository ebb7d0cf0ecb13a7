/*
 * NAME
 *	spool - the spool directory, message ids and the durable commit
 * DESCRIPTION
 *	See spool.h for the layout and the protocol.  Everything is done
 *	relative to directory descriptors opened once, with O_NOFOLLOW on
 *	every open and O_EXCL on every create, so a symlink planted in the
 *	spool is never followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "log.h"
#include "spool.h"

#define SPOOL_WRITE_BUF		(64u << 10)
/* an inline record holds at most the buffer, which its readers must take */
_Static_assert(SPOOL_WRITE_BUF <= ENVELOPE_INLINE_MAX, "inline records larger than their readers allow");
#define SPOOL_FILE_MODE		0640
#define SPOOL_DIR_MODE		0750
#define SPOOL_STALE_SECONDS	(24 * 3600)	/* other hosts' temporaries */

struct spool {
	char	       *path;
	int		dirfd[SPOOL_DIR__COUNT];	/* constant after spool_open() */
	int		chown_needed;
	uid_t		owner_uid;
	gid_t		owner_gid;
	char		host[64];
	atomic_uint	counter;
	atomic_bool	no_unnamed;	/* O_TMPFILE refused here once: named temporaries */
};

struct spool_dirset {
	struct spool   *spool;
	char	      **rel;
	size_t		n, cap;
};

struct spool_msg {
	struct spool   *spool;
	char		id[SPOOL_ID_MAX];
	char		tmpname[SPOOL_NAME_MAX];	/* tmp/<name> of the data */
	char		final[SPOOL_NAME_MAX];		/* name in mail/x/new/ */
	int		fd;
	char	       *buf;
	size_t		used;
	uint64_t	size;
	int		error;		/* sticky */
	long long	data_offset;	/* length of the Return-Path line */
	char	      **mailbox;
	size_t		nmailbox;
	size_t		npublished;	/* mailboxes linked so far */
	int		queued;
	enum spool_dir	record_dir;	/* where the record goes: queue/, or failed/ (rejected) */
	struct envelope	env;
	char		envtmp[SPOOL_NAME_MAX];	/* tmp/<name> of the record, "" if none */
	int		envfd;		/* the record, left unsynced and open for the check; -1 */
	int		data_published, env_published;
	bool		unnamed;	/* data and record O_TMPFILE: tmpname and envtmp "" */
	bool		inlined;	/* fd holds the record, then the data (an inline record) */
};

static const char *const spool_dir_names[SPOOL_DIR__COUNT] = {
	[SPOOL_DIR_ROOT] = ".",
	[SPOOL_DIR_TMP] = "tmp",
	[SPOOL_DIR_MAIL] = "mail",
	[SPOOL_DIR_DATA] = "data",
	[SPOOL_DIR_QUEUE] = "queue",
	[SPOOL_DIR_ACTIVE] = "active",
	[SPOOL_DIR_SENT] = "sent",
	[SPOOL_DIR_FAILED] = "failed",
	[SPOOL_DIR_PARTIAL] = "partial",
	[SPOOL_DIR_NODES] = "nodes",
};

const char *
spool_dir_name(enum spool_dir dir)
{
	return (unsigned)dir < SPOOL_DIR__COUNT ? spool_dir_names[dir] : "?";
}

int
spool_dirfd(const struct spool *spool, enum spool_dir dir)
{
	return (unsigned)dir < SPOOL_DIR__COUNT ? spool->dirfd[dir] : -1;
}

const char *
spool_path(const struct spool *spool)
{
	return spool->path;
}

const char *
spool_hostname(const struct spool *spool)
{
	return spool->host;
}


int
spool_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
spool_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
spool_pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, p + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int
spool_chown_new(const struct spool *spool, int fd)
{
	/* Only root makes files for another user; after dropping root they are ours already. */
	if (spool->chown_needed && geteuid() == 0 && fchown(fd, spool->owner_uid, spool->owner_gid) < 0)
		return -errno;
	return 0;
}

/* File names carry the host name (name, or the system's when NULL); keep it to [A-Za-z0-9-_]. */
static void
sanitise_hostname(const char *name, char *out, size_t outlen)
{
	char host[256];
	size_t i;

	if (name != NULL && name[0] != '\0')
		snprintf(host, sizeof(host), "%s", name);
	else if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (i = 0; i < outlen - 1 && host[i]; i++) {
		char c = host[i];

		out[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-') ? c : '_';
	}
	out[i] = '\0';
}

void
spool_set_hostname(struct spool *spool, const char *name)
{
	sanitise_hostname(name, spool->host, sizeof(spool->host));
}

static int
open_dir_at(int parent, const char *name, int create, const struct spool *spool)
{
	int fd, r;

	if (create && mkdirat(parent, name, SPOOL_DIR_MODE) == 0) {
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (spool != NULL && (r = spool_chown_new(spool, fd)) < 0) {
			/* Root's directory in the owner's spool: the daemon could not use it after dropping root. */
			close(fd);
			unlinkat(parent, name, AT_REMOVEDIR);
			return r;
		}
		return fd;
	}
	if (create && errno != EEXIST)
		return -errno;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void
spool_close(struct spool *spool)
{
	int i;

	if (spool == NULL)
		return;
	for (i = 0; i < SPOOL_DIR__COUNT; i++)
		if (spool->dirfd[i] >= 0)
			close(spool->dirfd[i]);
	free(spool->path);
	free(spool);
}

int
spool_open(const char *path, struct spool **out)
{
	struct spool *spool;
	struct stat st;
	int i, fd;

	if ((spool = calloc(1, sizeof(*spool))) == NULL)
		return -ENOMEM;
	for (i = 0; i < SPOOL_DIR__COUNT; i++)
		spool->dirfd[i] = -1;
	if ((spool->path = strdup(path)) == NULL) {
		spool_close(spool);
		return -ENOMEM;
	}
	sanitise_hostname(NULL, spool->host, sizeof(spool->host));
	if (mkdir(path, SPOOL_DIR_MODE) < 0 && errno != EEXIST)
		goto fail_errno;
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto fail_errno;
	spool->dirfd[SPOOL_DIR_ROOT] = fd;
	if (fstat(fd, &st) < 0)
		goto fail_errno;
	spool->owner_uid = st.st_uid;
	spool->owner_gid = st.st_gid;
	spool->chown_needed = geteuid() == 0 && (st.st_uid != 0 || st.st_gid != 0);
	for (i = SPOOL_DIR_ROOT + 1; i < SPOOL_DIR__COUNT; i++) {
		fd = open_dir_at(spool->dirfd[SPOOL_DIR_ROOT], spool_dir_names[i], 1, spool);
		if (fd < 0) {
			log_error("spool-open", "path=%s dir=%s error=\"%s\"", path, spool_dir_names[i], strerror(-fd));
			errno = -fd;
			goto fail_errno;
		}
		spool->dirfd[i] = fd;
	}
	if (fsync(spool->dirfd[SPOOL_DIR_ROOT]) < 0)
		goto fail_errno;
	*out = spool;
	return 0;
fail_errno:
	i = -errno;
	spool_close(spool);
	return i;
}

void
spool_new_id(struct spool *spool, char id[SPOOL_ID_MAX])
{
	struct timeval tv;
	unsigned n = atomic_fetch_add(&spool->counter, 1);

	gettimeofday(&tv, NULL);
	snprintf(id, SPOOL_ID_MAX, "%lld.M%06ldP%ldQ%u", (long long)tv.tv_sec, (long)tv.tv_usec,
	    (long)getpid(), n);
}

/*
 * A file in tmp/ without a name (O_TMPFILE), for a message's data or
 * record: -EOPNOTSUPP where the filesystem has none (and from then on),
 * else the descriptor or -errno.
 */
static int
unnamed_tmpfile(struct spool *spool)
{
	int fd, r;

	if (atomic_load(&spool->no_unnamed))
		return -EOPNOTSUPP;
	fd = openat(spool->dirfd[SPOOL_DIR_TMP], ".", O_TMPFILE | O_RDWR | O_CLOEXEC, SPOOL_FILE_MODE);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		if (!atomic_exchange(&spool->no_unnamed, true))
			log_info("spool-unnamed", "available=no error=\"%s\" action=\"named temporaries in tmp/\"",
			    strerror(errno));
		return -EOPNOTSUPP;
	}
	if (fd < 0)
		return -errno;
	if ((r = spool_chown_new(spool, fd)) < 0) {
		log_error("spool-chown", "name=tmp/(unnamed) error=\"%s\"", strerror(-r));
		close(fd);
		return r;
	}
	return fd;
}

/*
 * Gives the file fd, tmp/name or unnamed when name is "", the name
 * dirfd/to (never replacing one: -EEXIST).  An unnamed file is linked by
 * its descriptor; where the kernel refuses that to a process without
 * CAP_DAC_READ_SEARCH (before Linux 6.10, or after the thread's
 * credentials changed), through /proc, as open(2) documents.
 */
static int
spool_file_link(const struct spool *spool, int fd, const char *name, int dirfd, const char *to)
{
	char proc[32];

	if (name[0] != '\0')
		return linkat(spool->dirfd[SPOOL_DIR_TMP], name, dirfd, to, 0) < 0 ? -errno : 0;
	if (linkat(fd, "", dirfd, to, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, proc, dirfd, to, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

int
spool_tmpfile_unnamed(struct spool *spool)
{
	char name[SPOOL_NAME_MAX];
	int fd = unnamed_tmpfile(spool), r;

	if (fd != -EOPNOTSUPP)
		return fd;
	if ((fd = spool_tmpfile(spool, name)) < 0)
		return fd;
	if (unlinkat(spool->dirfd[SPOOL_DIR_TMP], name, 0) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int
spool_tmpfile(struct spool *spool, char name_out[SPOOL_NAME_MAX])
{
	char id[SPOOL_ID_MAX];
	int fd, r;

	spool_new_id(spool, id);
	snprintf(name_out, SPOOL_NAME_MAX, "%s.%s", id, spool->host);
	fd = openat(spool->dirfd[SPOOL_DIR_TMP], name_out,
	    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, SPOOL_FILE_MODE);
	if (fd < 0)
		return -errno;
	if ((r = spool_chown_new(spool, fd)) < 0) {
		/* A file the spool's owner cannot rename or remove later: refuse it now. */
		log_error("spool-chown", "name=tmp/%s error=\"%s\"", name_out, strerror(-r));
		close(fd);
		unlinkat(spool->dirfd[SPOOL_DIR_TMP], name_out, 0);
		return r;
	}
	return fd;
}

/* ---- one sync for many files ---- */

/* Filesystems whose syncfs(2) writes every dirty file and commits it to their disk. */
static int
fs_sync_writes_through(long type)
{
	switch (type) {
	case EXT4_SUPER_MAGIC:		/* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case F2FS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return 1;
	default:
		return 0;
	}
}

int
spool_fs_sync_open(const struct spool *spool)
{
	struct statfs sfs;
	int fd, r;

	fd = openat(spool->dirfd[SPOOL_DIR_ROOT], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatfs(fd, &sfs) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!fs_sync_writes_through((long)sfs.f_type)) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

/*
 * syncfs(2) flushes the disk's cache (->sync_fs) before it writes the block
 * device's buffers a last time (sync_filesystem()): on ext4 without a
 * journal, metadata written in that last pass (inode sizes and extents of
 * files just written back, directory blocks) may still be in a volatile
 * disk cache when it returns.  An fsync of fd (the root, or a file that is
 * already synced) flushes it again; where fd is clean that costs the flush
 * alone.
 */
int
spool_fs_sync(int fd)
{
	if (syncfs(fd) < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* ---- directory sets (group commit) ---- */

struct spool_dirset *
spool_dirset_new(struct spool *spool)
{
	struct spool_dirset *dirs = calloc(1, sizeof(*dirs));

	if (dirs != NULL)
		dirs->spool = spool;
	return dirs;
}

int
spool_dirset_add(struct spool_dirset *dirs, const char *relpath)
{
	char **grown;
	size_t i;

	for (i = 0; i < dirs->n; i++)
		if (strcmp(dirs->rel[i], relpath) == 0)
			return 0;
	if (dirs->n == dirs->cap) {
		size_t cap = dirs->cap ? dirs->cap * 2 : 8;

		if ((grown = realloc(dirs->rel, cap * sizeof(*grown))) == NULL)
			return -ENOMEM;
		dirs->rel = grown;
		dirs->cap = cap;
	}
	if ((dirs->rel[dirs->n] = strdup(relpath)) == NULL)
		return -ENOMEM;
	dirs->n++;
	return 0;
}

static void
dirset_clear(struct spool_dirset *dirs)
{
	size_t i;

	for (i = 0; i < dirs->n; i++)
		free(dirs->rel[i]);
	dirs->n = 0;
}

int
spool_dirset_sync(struct spool_dirset *dirs)
{
	int first = 0, fd;
	size_t i;

	for (i = 0; i < dirs->n; i++) {
		fd = openat(dirs->spool->dirfd[SPOOL_DIR_ROOT], dirs->rel[i],
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			if (first == 0)
				first = -errno;
			log_error("spool-sync", "dir=%s error=\"%s\"", dirs->rel[i], strerror(errno));
		}
		if (fd >= 0)
			close(fd);
	}
	dirset_clear(dirs);
	return first;
}

void
spool_dirset_free(struct spool_dirset *dirs)
{
	if (dirs == NULL)
		return;
	dirset_clear(dirs);
	free(dirs->rel);
	free(dirs);
}

/* ---- mailboxes ---- */

int
spool_mailbox_exists(struct spool *spool, const char *name)
{
	char rel[SPOOL_NAME_MAX];
	struct stat st;

	snprintf(rel, sizeof(rel), "%s/new", name);
	if (fstatat(spool->dirfd[SPOOL_DIR_MAIL], rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return S_ISDIR(st.st_mode) ? 1 : 0;
	return errno == ENOENT ? 0 : -errno;
}

static int
make_subdir(struct spool *spool, int parent, const char *name, int *created)
{
	int fd, r;

	if (mkdirat(parent, name, SPOOL_DIR_MODE) == 0) {
		if ((fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
			r = -errno;
			unlinkat(parent, name, AT_REMOVEDIR);
			return r;
		}
		r = spool_chown_new(spool, fd);
		close(fd);
		if (r < 0) {
			/* Root's mailbox directory: the daemon could not deliver into it after dropping root. */
			log_error("spool-chown", "name=%s error=\"%s\"", name, strerror(-r));
			unlinkat(parent, name, AT_REMOVEDIR);
			return r;
		}
		*created = 1;
		return 0;
	}
	return errno == EEXIST ? 0 : -errno;
}

int
spool_mailbox_create(struct spool *spool, const char *name, struct spool_dirset *dirs)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char rel[SPOOL_NAME_MAX];
	int created_box = 0, created_sub = 0, mfd, r;
	size_t i;

	if (strchr(name, '/') != NULL || name[0] == '.' || name[0] == '\0')
		return -EINVAL;
	if (spool_mailbox_exists(spool, name) == 1)
		return 0;	/* the common case: one stat instead of four mkdir */
	if ((r = make_subdir(spool, spool->dirfd[SPOOL_DIR_MAIL], name, &created_box)) < 0)
		return r;
	if ((mfd = openat(spool->dirfd[SPOOL_DIR_MAIL], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	for (i = 0; i < 3; i++) {
		if ((r = make_subdir(spool, mfd, sub[i], &created_sub)) < 0) {
			close(mfd);
			return r;
		}
	}
	if (dirs == NULL) {
		r = created_sub && fsync(mfd) < 0 ? -errno : 0;
		if (r == 0 && created_box && fsync(spool->dirfd[SPOOL_DIR_MAIL]) < 0)
			r = -errno;
		close(mfd);
		return r;
	}
	close(mfd);
	snprintf(rel, sizeof(rel), "mail/%s", name);
	if (created_sub && (r = spool_dirset_add(dirs, rel)) < 0)
		return r;
	if (created_box && (r = spool_dirset_add(dirs, "mail")) < 0)
		return r;
	return 0;
}

/* ---- writing a message ---- */

static int
msg_fail(struct spool_msg *msg, int err)
{
	if (msg->error == 0)
		msg->error = err;
	return msg->error;
}

static int
msg_flush(struct spool_msg *msg)
{
	int r;

	if (msg->error != 0)
		return msg->error;
	if (msg->used == 0)
		return 0;
	if ((r = spool_write_all(msg->fd, msg->buf, msg->used)) < 0)
		return msg_fail(msg, r);
	msg->used = 0;
	return 0;
}

/* The message's data file: unnamed if asked and possible, else tmp/<id>.<host>. */
static int
msg_open_data(struct spool_msg *msg, bool unnamed)
{
	int fd = unnamed ? unnamed_tmpfile(msg->spool) : -EOPNOTSUPP;

	if (fd >= 0) {
		msg->unnamed = true;
		spool_new_id(msg->spool, msg->id);
		snprintf(msg->final, sizeof(msg->final), "%s.%s", msg->id, msg->spool->host);
		return fd;
	}
	if (fd != -EOPNOTSUPP)
		return fd;
	if ((fd = spool_tmpfile(msg->spool, msg->tmpname)) < 0)
		return fd;
	/* The id is the temporary's name without the host suffix. */
	snprintf(msg->id, sizeof(msg->id), "%.*s", (int)(strrchr(msg->tmpname, '.') - msg->tmpname),
	    msg->tmpname);
	snprintf(msg->final, sizeof(msg->final), "%s", msg->tmpname);
	return fd;
}

static int
msg_create(struct spool *spool, const char *return_path, bool unnamed, struct spool_msg **out)
{
	struct spool_msg *msg;
	int fd, r;

	if ((msg = calloc(1, sizeof(*msg))) == NULL)
		return -ENOMEM;
	msg->spool = spool;
	msg->fd = -1;
	msg->envfd = -1;
	if ((msg->buf = malloc(SPOOL_WRITE_BUF)) == NULL) {
		free(msg);
		return -ENOMEM;
	}
	if ((fd = msg_open_data(msg, unnamed)) < 0) {
		free(msg->buf);
		free(msg);
		return fd;
	}
	msg->fd = fd;
	if (return_path != NULL) {
		char line[600];
		int n = snprintf(line, sizeof(line), "Return-Path: <%s>\n", return_path);

		if (n < 0 || (size_t)n >= sizeof(line)) {
			spool_msg_free(msg);
			return -ENAMETOOLONG;
		}
		if ((r = spool_msg_write(msg, line, (size_t)n)) < 0) {
			spool_msg_free(msg);
			return r;
		}
		msg->data_offset = n;
	}
	*out = msg;
	return 0;
}

int
spool_msg_create(struct spool *spool, const char *return_path, struct spool_msg **out)
{
	return msg_create(spool, return_path, false, out);
}

int
spool_msg_create_unnamed(struct spool *spool, const char *return_path, struct spool_msg **out)
{
	return msg_create(spool, return_path, true, out);
}

int
spool_msg_sync(struct spool_msg *msg)
{
	int r;

	if ((r = msg_flush(msg)) < 0)
		return r;
	if (fdatasync(msg->fd) < 0)
		return msg_fail(msg, -errno);
	return 0;
}

int
spool_msg_link(struct spool_msg *msg, int dirfd, const char *name)
{
	return spool_file_link(msg->spool, msg->fd, msg->tmpname, dirfd, name);
}

const char *
spool_msg_id(const struct spool_msg *msg)
{
	return msg->id;
}

int
spool_msg_error(const struct spool_msg *msg)
{
	return msg->error;
}

uint64_t
spool_msg_size(const struct spool_msg *msg)
{
	return msg->size;
}

size_t
spool_msg_local_count(const struct spool_msg *msg)
{
	return msg->nmailbox;
}

int
spool_msg_write(struct spool_msg *msg, const void *buf, size_t len)
{
	const char *p = buf;
	size_t room;
	int r;

	if (msg->error != 0)
		return msg->error;
	while (len > 0) {
		room = SPOOL_WRITE_BUF - msg->used;
		if (room == 0) {
			if ((r = msg_flush(msg)) < 0)
				return r;
			continue;
		}
		if (room > len)
			room = len;
		memcpy(msg->buf + msg->used, p, room);
		msg->used += room;
		msg->size += room;
		p += room;
		len -= room;
	}
	return 0;
}

int
spool_msg_deliver_local(struct spool_msg *msg, const char *mailbox)
{
	char **grown;
	size_t i;

	if (strchr(mailbox, '/') != NULL || mailbox[0] == '.' || mailbox[0] == '\0')
		return -EINVAL;
	for (i = 0; i < msg->nmailbox; i++)
		if (strcmp(msg->mailbox[i], mailbox) == 0)
			return 0;
	if ((grown = realloc(msg->mailbox, (msg->nmailbox + 1) * sizeof(*grown))) == NULL)
		return -ENOMEM;
	msg->mailbox = grown;
	if ((msg->mailbox[msg->nmailbox] = strdup(mailbox)) == NULL)
		return -ENOMEM;
	msg->nmailbox++;
	return 0;
}

/* The record of msg will be published as record_dir/<id>. */
static int
msg_set_record(struct spool_msg *msg, const struct envelope *env, enum spool_dir record_dir)
{
	int r;

	if (msg->queued)
		envelope_free(&msg->env);
	msg->queued = 0;
	if ((r = envelope_copy(&msg->env, env)) < 0)
		return r;
	snprintf(msg->env.id, sizeof(msg->env.id), "%s", msg->id);
	msg->env.data_offset = msg->data_offset;
	if (msg->env.created == 0)
		msg->env.created = (long long)time(NULL);
	msg->queued = 1;
	msg->record_dir = record_dir;
	return 0;
}

int
spool_msg_queue(struct spool_msg *msg, const struct envelope *env)
{
	return msg_set_record(msg, env, SPOOL_DIR_QUEUE);
}

int
spool_msg_reject(struct spool_msg *msg, const struct envelope *env)
{
	if (env->rejected == NULL)
		return -EINVAL;
	return msg_set_record(msg, env, SPOOL_DIR_FAILED);
}

/*
 * The record's temporary: tmp/<name>, or unnamed when name is NULL (kept
 * open in *keep_fd, which its publish links).  synced: fdatasync'd, and
 * a named one closed; otherwise left unsynced, its descriptor in *keep_fd
 * for spool_msg_commit_check().
 */
static int
write_record_tmp(struct spool *spool, const struct envelope *env, char name[SPOOL_NAME_MAX], bool synced,
    int *keep_fd)
{
	char *text;
	size_t len;
	int fd, r;

	if ((r = envelope_format(env, &text, &len)) < 0)
		return r;
	if ((fd = name != NULL ? spool_tmpfile(spool, name) : unnamed_tmpfile(spool)) < 0) {
		free(text);
		return fd;
	}
	r = spool_write_all(fd, text, len);
	free(text);
	if (r == 0 && synced && fdatasync(fd) < 0)
		r = -errno;
	if (r == 0 && (!synced || name == NULL))
		*keep_fd = fd;
	else
		close(fd);
	if (r < 0 && name != NULL) {
		unlinkat(spool->dirfd[SPOOL_DIR_TMP], name, 0);
		name[0] = '\0';
	}
	return r;
}

int
spool_msg_commit_start(struct spool_msg *msg)
{
	int r;

	if ((r = msg_flush(msg)) < 0)
		return r;
	/* A hint: if it fails, fdatasync in _prepare reports what matters. */
	(void)sync_file_range(msg->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	return 0;
}

/*
 * Whether msg is written as one file, an inline record (envelope.h): an
 * unnamed message for the relay alone, still whole in its buffer.
 */
static bool
msg_fits_inline(const struct spool_msg *msg)
{
	return msg->unnamed && msg->queued && msg->record_dir == SPOOL_DIR_QUEUE && msg->nmailbox == 0 &&
	    msg->used == msg->size;
}

/*
 * The record, its seal, an empty line and the buffered data, in one write
 * to the unnamed file.
 */
static int
msg_write_inline(struct spool_msg *msg)
{
	char *text, *grown;
	size_t len;
	int r;

	msg->env.inline_data = true;	/* data_offset: the Return-Path line, after the empty line */
	if ((r = envelope_format(&msg->env, &text, &len)) < 0)
		return r;
	if ((r = envelope_seal_inline(&text, &len, msg->buf, msg->used)) < 0) {
		free(text);
		return r;
	}
	if ((grown = realloc(text, len + msg->used)) == NULL) {
		free(text);
		return -ENOMEM;
	}
	text = grown;
	memcpy(text + len, msg->buf, msg->used);
	r = spool_write_all(msg->fd, text, len + msg->used);
	free(text);
	if (r < 0)
		return r;
	msg->used = 0;
	msg->inlined = true;
	return 0;
}

/* The prepare phase; synced: each file fdatasync'd, else left to the caller's spool_fs_sync(). */
static int
msg_commit_write(struct spool_msg *msg, bool synced)
{
	int r;

	if (msg->nmailbox == 0 && !msg->queued)
		return msg_fail(msg, -EDESTADDRREQ);
	if (msg->error == 0 && !msg->inlined && msg_fits_inline(msg) && (r = msg_write_inline(msg)) < 0)
		return msg_fail(msg, r);
	if ((r = msg_flush(msg)) < 0)
		return r;
	if (synced && fdatasync(msg->fd) < 0)
		return msg_fail(msg, -errno);
	if (msg->queued && !msg->inlined && (r = write_record_tmp(msg->spool, &msg->env,
	    msg->unnamed ? NULL : msg->envtmp, synced, &msg->envfd)) < 0)
		return msg_fail(msg, r);
	return 0;
}

bool
spool_msg_self_checking(const struct spool_msg *msg)
{
	return msg->inlined && msg->error == 0;
}

int
spool_msg_commit_prepare(struct spool_msg *msg)
{
	return msg_commit_write(msg, true);
}

int
spool_msg_commit_prepare_unsynced(struct spool_msg *msg)
{
	return msg_commit_write(msg, false);
}

/* Waits for fd's writeback; its errors since fd was opened (errseq), once. */
static int
wait_writeback(int fd)
{
	if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
	    SYNC_FILE_RANGE_WAIT_AFTER) < 0)
		return -errno;
	return 0;
}

int
spool_msg_commit_check(struct spool_msg *msg)
{
	int r;

	if (msg->error != 0)
		return msg->error;
	if ((r = wait_writeback(msg->fd)) < 0)
		return msg_fail(msg, r);
	if (msg->envfd >= 0 && (r = wait_writeback(msg->envfd)) < 0)
		return msg_fail(msg, r);
	return 0;
}

static int
publish_local(struct spool_msg *msg, struct spool_dirset *dirs, const char *mailbox)
{
	char rel[SPOOL_NAME_MAX * 2];
	int r;

	if ((r = spool_mailbox_create(msg->spool, mailbox, dirs)) < 0)
		return r;
	snprintf(rel, sizeof(rel), "%s/new/%s", mailbox, msg->final);
	if ((r = spool_file_link(msg->spool, msg->fd, msg->tmpname, msg->spool->dirfd[SPOOL_DIR_MAIL], rel)) < 0)
		return r;
	snprintf(rel, sizeof(rel), "mail/%s/new", mailbox);
	return spool_dirset_add(dirs, rel);
}

/* An inline record's one name: queue/<id>. */
static int
msg_publish_inline(struct spool_msg *msg, struct spool_dirset *dirs)
{
	int r;

	if ((r = spool_file_link(msg->spool, msg->fd, "", msg->spool->dirfd[msg->record_dir], msg->id)) < 0)
		return msg_fail(msg, r);
	msg->env_published = 1;
	if ((r = spool_dirset_add(dirs, spool_dir_name(msg->record_dir))) < 0)
		return msg_fail(msg, r);
	return 0;
}

int
spool_msg_commit_publish(struct spool_msg *msg, struct spool_dirset *dirs)
{
	struct spool *spool = msg->spool;
	int r;

	if (msg->error != 0)
		return msg->error;
	for (; msg->npublished < msg->nmailbox; msg->npublished++)
		if ((r = publish_local(msg, dirs, msg->mailbox[msg->npublished])) < 0)
			return msg_fail(msg, r);
	if (!msg->queued)
		return 0;
	if (msg->inlined)
		return msg_publish_inline(msg, dirs);
	if ((r = spool_file_link(spool, msg->fd, msg->tmpname, spool->dirfd[SPOOL_DIR_DATA], msg->id)) < 0)
		return msg_fail(msg, r);
	msg->data_published = 1;
	if (msg->unnamed)
		r = spool_file_link(spool, msg->envfd, "", spool->dirfd[msg->record_dir], msg->id);
	else
		r = renameat(spool->dirfd[SPOOL_DIR_TMP], msg->envtmp, spool->dirfd[msg->record_dir], msg->id) < 0 ?
		    -errno : 0;
	if (r < 0)
		return msg_fail(msg, r);
	msg->envtmp[0] = '\0';
	msg->env_published = 1;
	if ((r = spool_dirset_add(dirs, "data")) < 0 ||
	    (r = spool_dirset_add(dirs, spool_dir_name(msg->record_dir))) < 0)
		return msg_fail(msg, r);
	return 0;
}

void
spool_msg_commit_unpublish(struct spool_msg *msg)
{
	struct spool *spool = msg->spool;
	char rel[SPOOL_NAME_MAX * 2];

	while (msg->npublished > 0) {
		msg->npublished--;
		snprintf(rel, sizeof(rel), "%s/new/%s", msg->mailbox[msg->npublished], msg->final);
		unlinkat(spool->dirfd[SPOOL_DIR_MAIL], rel, 0);
	}
	if (msg->env_published)
		unlinkat(spool->dirfd[msg->record_dir], msg->id, 0);
	if (msg->data_published)
		unlinkat(spool->dirfd[SPOOL_DIR_DATA], msg->id, 0);
	msg->env_published = msg->data_published = 0;
}

int
spool_msg_commit(struct spool_msg *msg)
{
	struct spool_dirset *dirs;
	int r;

	if ((dirs = spool_dirset_new(msg->spool)) == NULL)
		return -ENOMEM;
	r = spool_msg_commit_prepare(msg);
	if (r == 0)
		r = spool_msg_commit_publish(msg, dirs);
	if (r == 0)
		r = spool_dirset_sync(dirs);
	if (r < 0)
		spool_msg_commit_unpublish(msg);
	spool_dirset_free(dirs);
	return r;
}

void
spool_msg_free(struct spool_msg *msg)
{
	size_t i;

	if (msg == NULL)
		return;
	if (msg->fd >= 0) {
		close(msg->fd);
		if (!msg->unnamed)
			unlinkat(msg->spool->dirfd[SPOOL_DIR_TMP], msg->tmpname, 0);
	}
	if (msg->envfd >= 0)
		close(msg->envfd);
	if (msg->envtmp[0] != '\0')
		unlinkat(msg->spool->dirfd[SPOOL_DIR_TMP], msg->envtmp, 0);
	for (i = 0; i < msg->nmailbox; i++)
		free(msg->mailbox[i]);
	free(msg->mailbox);
	if (msg->queued)
		envelope_free(&msg->env);
	free(msg->buf);
	free(msg);
}

/* ---- recovery ---- */

typedef int (*dir_entry_fn)(struct spool *spool, const char *name, void *arg);

/* Calls fn for each entry of a spool directory except dot files. */
static int
for_each_entry(struct spool *spool, enum spool_dir dir, dir_entry_fn fn, void *arg)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if ((fd = openat(spool->dirfd[dir], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		r = fn(spool, de->d_name, arg);
	}
	closedir(d);
	return r;
}

/* "<sec>.M<usec>P<pid>Q<n>" -> pid, or -1. */
static long
pid_of_name(const char *name)
{
	const char *p = strchr(name, 'P');

	return p ? strtol(p + 1, NULL, 10) : -1;
}

/* The previous process of this host whose pid is in a name: is it gone? */
static int
owner_is_dead(const struct spool *spool, const char *host, long pid)
{
	if (strcmp(host, spool->host) != 0 || pid <= 0)
		return 0;
	if (pid == (long)getpid())
		return 1;	/* a previous process that had our pid */
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/*
 * "<id>@<host>,<pid>" (a claim in active/) or "<id>@<host>,<pid>.new|.old"
 * (a finishing claim's new record and parked old record in tmp/, queue.c):
 * its parts, suffix "" for a claim.  -1 when name is no claim.
 */
static int
parse_claim(const char *name, char id[SPOOL_ID_MAX], char host[64], long *pid, const char **suffix)
{
	const char *at = strchr(name, '@'), *comma = at ? strchr(at, ',') : NULL;
	char *end;

	if (at == NULL || comma == NULL || (size_t)(at - name) >= SPOOL_ID_MAX || at == name ||
	    (size_t)(comma - at - 1) >= 64)
		return -1;
	*pid = strtol(comma + 1, &end, 10);
	if (end == comma + 1 || (*end != '\0' && strcmp(end, ".new") != 0 && strcmp(end, ".old") != 0))
		return -1;
	snprintf(id, SPOOL_ID_MAX, "%.*s", (int)(at - name), name);
	snprintf(host, 64, "%.*s", (int)(comma - at - 1), at + 1);
	*suffix = end;
	return 0;
}

int
spool_parked_claim_id(const char *name, char id[SPOOL_ID_MAX])
{
	const char *suffix;
	char host[64];
	long pid;

	if (parse_claim(name, id, host, &pid, &suffix) < 0 || strcmp(suffix, ".old") != 0)
		return -1;
	return 0;
}

struct reclaim_ctx {
	spool_dead_fn		dead;
	void		       *arg;
	long			tmp_min_age;
	const char	       *by;
	struct spool_reclaim   *stats;
	const char	       *suffix;		/* the tmp/ pass: ".new", ".old" or "" (plain temporaries) */
};


static void
log_given_back(const struct reclaim_ctx *rc, const char *id, const char *name, const char *host, const char *where)
{
	if (rc->by == NULL)
		log_info("recovery-claim-returned", "id=%s claim=%s%s", id, where, name);
	else
		log_warn("node-takeover", "id=%s claim=%s%s node=%s by=%s action=\"returned to queue/: its node's "
		    "lease ran out\"", id, where, name, host, rc->by);
}

/*
 * active/<id>@<host>,<pid> of a dead owner goes back to queue/, or away when
 * its message has a record already.
 */
static int
reclaim_claim(struct spool *spool, const char *name, void *arg)
{
	struct reclaim_ctx *rc = arg;
	char id[SPOOL_ID_MAX], host[64];
	const char *suffix;
	long pid;

	if (parse_claim(name, id, host, &pid, &suffix) < 0 || suffix[0] != '\0' || !rc->dead(host, pid, rc->arg))
		return 0;
	if (spool_record_exists(spool, id)) {
		/* Left beside its published record by a crash (queue.c): that record is the newer one. */
		if (unlinkat(spool->dirfd[SPOOL_DIR_ACTIVE], name, 0) == 0) {
			rc->stats->superseded++;
			log_warn("recovery-record-superseded", "id=%s name=active/%s reason=\"the message has a newer "
			    "record in queue/, sent/ or failed/: the claim is removed, not given back\"", id, name);
		}
		return 0;
	}
	if (renameat(spool->dirfd[SPOOL_DIR_ACTIVE], name, spool->dirfd[SPOOL_DIR_QUEUE], id) == 0) {
		rc->stats->claims++;
		log_given_back(rc, id, name, host, "active/");
	}
	return 0;
}

static int
sent_record_exists(struct spool *spool, const char *id)
{
	struct stat st;

	return fstatat(spool->dirfd[SPOOL_DIR_SENT], id, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/*
 * A record in sent/ makes a queue/ record or a claim of the same message a
 * leftover: sent/ is final (nothing moves a record out of it), so the
 * message was delivered and recorded and must not go out again.  A
 * delivered message's record is renamed into sent/ before its claim is
 * removed (queue.c), so a crash between the two leaves both; a filesystem
 * that lost half of a rename, or a hand that copied a record, can too.
 * The data belongs to the record in sent/ and stays.
 */
static int
remove_superseded(struct spool *spool, enum spool_dir dir, const char *name, const char *id,
		struct spool_recovery *stats)
{
	if (unlinkat(spool->dirfd[dir], name, 0) < 0)
		return 0;
	stats->records_superseded++;
	log_warn("recovery-record-superseded", "id=%s name=%s/%s reason=\"the message has its record in sent/: "
	    "removed, not delivered again\"", id, spool_dir_name(dir), name);
	return 0;
}

static int record_anywhere(struct spool *spool, const char *id);

/*
 * Is data/<id> a whole inline record of that id (envelope.h), as the
 * runner leaves a claim's file there at its first rewrite?  1: yes, its
 * seal matches (need_seal: it has one; else an unsealed one of this id
 * will do); 0: no (not such a record, another id, or torn); -1: not
 * judged (missing, or it cannot be read now).
 */
static int
data_is_inline_record(struct spool *spool, const char *id, bool need_seal)
{
	struct envelope env;
	int fd, r;

	if ((fd = openat(spool->dirfd[SPOOL_DIR_DATA], id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	if ((r = envelope_read_fd(fd, &env)) == 0) {
		if (!env.inline_data || (need_seal && !env.inline_sealed) || strcmp(env.id, id) != 0)
			r = -EBADMSG;
		else
			r = envelope_check_inline(fd, &env, id);
		envelope_free(&env);
	}
	close(fd);
	return r == 0 ? 1 : r == -EBADMSG || r == -EINVAL ? 0 : -1;
}

/* A claim of id parked in tmp/ (<id>@<host>,<pid>.old)? */
static int
parked_claim_of(struct spool *spool, const char *name, void *arg)
{
	char id[SPOOL_ID_MAX];

	(void)spool;
	return spool_parked_claim_id(name, id) == 0 && strcmp(id, arg) == 0;
}

/* Where a whole record goes: queue/ while a recipient is pending, else failed/ if one failed, else sent/. */
static enum spool_dir
record_dir_of(const struct envelope *env)
{
	if (envelope_count(env, RCPT_PENDING) > 0)
		return SPOOL_DIR_QUEUE;
	return envelope_count(env, RCPT_FAILED) > 0 ? SPOOL_DIR_FAILED : SPOOL_DIR_SENT;
}

/*
 * A dead owner's new record tmp/<claim>.new, when its message has no
 * record and no claim anywhere (active/ or parked): the owner was
 * publishing it, since it parks the claim only after the new record is
 * durable, and a crash kept one directory's half of the park (the claim
 * gone from active/) and lost the other's (its name in tmp/), as ext4
 * without a journal may.  That new record is then the message's only
 * record: published where its recipients say, not removed.  0, or -1 when
 * it is no such record (or does not parse: removed as before).
 */
static int
restore_new_record(struct spool *spool, const char *name, const char *id)
{
	struct envelope env;
	enum spool_dir dest;
	bool torn;

	if (record_anywhere(spool, id) || for_each_entry(spool, SPOOL_DIR_TMP, parked_claim_of, (void *)id) != 0 ||
	    envelope_read_at(spool->dirfd[SPOOL_DIR_TMP], name, &env) < 0)
		return -1;
	dest = record_dir_of(&env);
	torn = env.data_sealed && data_is_inline_record(spool, id, true) == 0;	/* not a whole sealed one */
	envelope_free(&env);
	if (torn) {
		/* its message's file did not reach the disk: a commit of spoolgate-fs never acknowledged */
		log_warn("recovery-record-dropped", "id=%s name=tmp/%s reason=\"data/%s torn (its seal does not "
		    "match): commit never completed\"", id, name, id);
		return -1;
	}
	if (renameat(spool->dirfd[SPOOL_DIR_TMP], name, spool->dirfd[dest], id) < 0 || fsync(spool->dirfd[dest]) < 0)
		return -1;
	log_warn("recovery-record-restored", "id=%s name=tmp/%s to=%s/ reason=\"its claim was lost while the record "
	    "was published (a filesystem without a journal keeps half of a rename): the new record is the message's "
	    "only one\"", id, name, spool_dir_name(dest));
	return 0;
}

/*
 * tmp/, in three passes (rc->suffix): first the new records of finishing
 * claims of dead owners are removed, so that an owner that was only
 * stopped cannot publish one later (its rename fails), unless the claim
 * is nowhere (restore_new_record()); then each parked old record goes
 * back to queue/, unless the new one was published before (then it is
 * removed); then plain temporaries.
 */
static int
reclaim_tmp(struct spool *spool, const char *name, void *arg)
{
	struct reclaim_ctx *rc = arg;
	int tmpfd = spool->dirfd[SPOOL_DIR_TMP];
	char id[SPOOL_ID_MAX], host[64];
	const char *suffix, *dot;
	struct stat st;
	long pid;

	if (parse_claim(name, id, host, &pid, &suffix) == 0) {
		if (strcmp(suffix, rc->suffix) != 0 || !rc->dead(host, pid, rc->arg))
			return 0;
		if (strcmp(suffix, ".new") == 0) {
			if (restore_new_record(spool, name, id) == 0)
				rc->stats->parked++;
			else
				unlinkat(tmpfd, name, 0);
		} else if (record_anywhere(spool, id)) {
			if (unlinkat(tmpfd, name, 0) == 0)
				rc->stats->parked++;
		} else if (renameat(tmpfd, name, spool->dirfd[SPOOL_DIR_QUEUE], id) == 0) {
			rc->stats->parked++;
			log_given_back(rc, id, name, host, "tmp/");
		}
		return 0;
	}
	if (rc->suffix[0] != '\0' || (dot = strrchr(name, '.')) == NULL ||
	    fstatat(tmpfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	/*
	 * By age alone only at start-up recovery (by == NULL): a node's sweep
	 * never judges another host's file by its mtime, a time by that host's
	 * clock; its dead() has watched the owner's heartbeat for a lease.
	 */
	if ((rc->by != NULL || time(NULL) - st.st_mtime <= SPOOL_STALE_SECONDS) &&
	    ((rc->tmp_min_age > 0 && time(NULL) - st.st_mtime < rc->tmp_min_age) ||
	    !rc->dead(dot + 1, pid_of_name(name), rc->arg)))
		return 0;
	if (unlinkat(tmpfd, name, 0) == 0) {
		rc->stats->temporaries++;
		if (rc->by == NULL)
			log_info("recovery-tmp-removed", "name=%s", name);
		else
			log_info("node-tmp-removed", "name=%s node=%s by=%s", name, dot + 1, rc->by);
	}
	return 0;
}

int
spool_reclaim(struct spool *spool, spool_dead_fn dead, void *arg, long tmp_min_age, const char *by,
    struct spool_reclaim *stats)
{
	static const char *const passes[] = { ".new", ".old", "" };
	struct reclaim_ctx rc = { dead, arg, tmp_min_age, by, stats, "" };
	size_t i;
	int r;

	memset(stats, 0, sizeof(*stats));
	if ((r = for_each_entry(spool, SPOOL_DIR_ACTIVE, reclaim_claim, &rc)) < 0)
		return r;
	for (i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
		rc.suffix = passes[i];
		if ((r = for_each_entry(spool, SPOOL_DIR_TMP, reclaim_tmp, &rc)) < 0)
			return r;
	}
	if (stats->claims + stats->parked + stats->superseded > 0 &&
	    (fsync(spool->dirfd[SPOOL_DIR_QUEUE]) < 0 || fsync(spool->dirfd[SPOOL_DIR_ACTIVE]) < 0))
		return -errno;
	return 0;
}

static int
own_process_dead(const char *host, long pid, void *arg)
{
	return owner_is_dead(arg, host, pid);
}

/* What a queued record's file is, to recovery (check_queued_record()). */
enum queued_file {
	QUEUED_PLAIN,		/* a record whose data is data/<id> */
	QUEUED_INLINE_WHOLE,	/* an inline record (envelope.h), or one that cannot be read now */
	QUEUED_INLINE_TORN,	/* an inline record whose seal does not match */
	QUEUED_UNREADABLE,	/* not a record: cut short or zeros by a power cut, or corrupt */
};

static enum queued_file
queued_file_kind(struct spool *spool, const char *id)
{
	enum queued_file kind;
	struct envelope env;
	int fd, r;

	if ((fd = openat(spool->dirfd[SPOOL_DIR_QUEUE], id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return errno == ENOENT || errno == ELOOP ? QUEUED_UNREADABLE : QUEUED_INLINE_WHOLE;
	if ((r = envelope_read_fd(fd, &env)) < 0)
		kind = r == -EBADMSG || r == -EINVAL ? QUEUED_UNREADABLE : QUEUED_INLINE_WHOLE;
	else {
		r = env.inline_data ? envelope_check_inline(fd, &env, id) : 0;
		kind = !env.inline_data ? QUEUED_PLAIN : r == -EBADMSG ? QUEUED_INLINE_TORN : QUEUED_INLINE_WHOLE;
		envelope_free(&env);
	}
	close(fd);
	return kind;
}

/*
 * A queued record whose data never became durable was never acknowledged
 * (its data file missing, or an inline record torn or not readable); one
 * whose message has a record in sent/ is a leftover (above).  data/<id>
 * may be the record's own file: an inline record whose claim a runner
 * was rewriting (it links the file there first), then given back.  Whole,
 * it is queued; else dropped, its data with it (an orphan, below).
 */
static int
check_queued_record(struct spool *spool, const char *name, void *arg)
{
	static const char *const why[] = {
		[QUEUED_PLAIN] = "data file missing",
		[QUEUED_INLINE_TORN] = "inline record torn (its seal does not match)",
		[QUEUED_UNREADABLE] = "record unreadable (cut short or zeros: torn)",
	};
	struct spool_recovery *stats = arg;
	struct stat rec, data;
	bool has_data, own_file;
	enum queued_file kind;

	if (sent_record_exists(spool, name))
		return remove_superseded(spool, SPOOL_DIR_QUEUE, name, name, stats);
	has_data = fstatat(spool->dirfd[SPOOL_DIR_DATA], name, &data, AT_SYMLINK_NOFOLLOW) == 0;
	own_file = has_data && fstatat(spool->dirfd[SPOOL_DIR_QUEUE], name, &rec, AT_SYMLINK_NOFOLLOW) == 0 &&
	    rec.st_ino == data.st_ino && rec.st_dev == data.st_dev;
	if (has_data && !own_file) {
		stats->queued++;
		return 0;
	}
	if ((kind = queued_file_kind(spool, name)) == QUEUED_INLINE_WHOLE) {
		stats->queued++;
		return 0;
	}
	if (own_file && kind != QUEUED_UNREADABLE)
		kind = QUEUED_INLINE_TORN;
	if (unlinkat(spool->dirfd[SPOOL_DIR_QUEUE], name, 0) == 0) {
		stats->records_dropped++;
		log_warn("recovery-record-dropped", "id=%s reason=\"%s: commit never completed\"", name, why[kind]);
	}
	return 0;
}

int
spool_record_exists(struct spool *spool, const char *id)
{
	static const enum spool_dir dirs[] = { SPOOL_DIR_QUEUE, SPOOL_DIR_SENT, SPOOL_DIR_FAILED };
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (fstatat(spool->dirfd[dirs[i]], id, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return 1;
	return 0;
}

static int
find_claim_of(struct spool *spool, const char *name, void *arg)
{
	const char *id = arg;
	size_t n = strlen(id);

	(void)spool;
	return strncmp(name, id, n) == 0 && name[n] == '@';
}

/* Does tmp/ hold "<id>.<host>" or "<id>@...", a commit or a claim's finish under way? */
static int
tmp_twin_of(struct spool *spool, const char *name, void *arg)
{
	const char *id = arg;
	size_t n = strlen(id);

	(void)spool;
	return strncmp(name, id, n) == 0 && (name[n] == '.' || name[n] == '@');	/* '@': a parked claim */
}

int
spool_claim_exists(struct spool *spool, const char *id)
{
	return for_each_entry(spool, SPOOL_DIR_ACTIVE, find_claim_of, (void *)id) > 0;
}

static int
record_anywhere(struct spool *spool, const char *id)
{
	return spool_record_exists(spool, id) || spool_claim_exists(spool, id);
}

/*
 * Whether the commit of data/<id> may still be under way.  The data is
 * linked into data/ before the record into queue/.  A named commit keeps
 * its temporary in tmp/ until both are done; an unnamed one
 * (spool_msg_create_unnamed()) has no name there, so its creator, the
 * process whose pid is in the id, alive (another spoolgate-fs, or a
 * gateway on a shared spool of this machine) says so.  A live process
 * that only reuses the pid keeps an orphan until the next recovery.
 */
static bool
commit_may_be_under_way(struct spool *spool, const char *id)
{
	long pid = pid_of_name(id);

	if (pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		return true;
	return for_each_entry(spool, SPOOL_DIR_TMP, tmp_twin_of, (void *)id) > 0;
}

/*
 * data/<id> that is a whole inline record of that id: the runner linked a
 * claim's file there at its first rewrite, and a power cut lost the
 * claim's name (half of its rename, on ext4 without a journal) before the
 * new record was durable.  The file is still the message's record, as
 * submitted: it goes back to queue/<id> (the same file, data/<id> stays
 * its own).  1 when restored, 0 when it is no such file.
 */
static int
restore_inline_data(struct spool *spool, const char *id)
{
	if (data_is_inline_record(spool, id, false) != 1 ||
	    linkat(spool->dirfd[SPOOL_DIR_DATA], id, spool->dirfd[SPOOL_DIR_QUEUE], id, 0) < 0 ||
	    fsync(spool->dirfd[SPOOL_DIR_QUEUE]) < 0)
		return 0;
	log_warn("recovery-record-restored", "id=%s name=data/%s to=queue/ reason=\"its claim was lost while the "
	    "relay rewrote its record (a filesystem without a journal keeps half of a rename): data/%s is its "
	    "inline record, the message's only one\"", id, id, id);
	return 1;
}

/*
 * Data without any record is the remains of a commit that never finished,
 * unless that commit is still under way: it stays; or unless it is a
 * whole inline record, which is restored (above).  The stale temporaries
 * of dead processes of this host are gone already (first step of
 * recovery).  A runner may be moving the record between directories
 * while we look: look twice before removing.
 */
static int
remove_orphan_data(struct spool *spool, const char *name, void *arg)
{
	struct spool_recovery *stats = arg;

	if (record_anywhere(spool, name) || commit_may_be_under_way(spool, name) || record_anywhere(spool, name))
		return 0;
	if (restore_inline_data(spool, name)) {
		stats->claims_returned++;
		stats->queued++;
		return 0;
	}
	if (unlinkat(spool->dirfd[SPOOL_DIR_DATA], name, 0) == 0) {
		stats->orphans_removed++;
		log_warn("recovery-orphan-removed", "id=%s reason=\"data without envelope record: commit never completed\"", name);
	}
	return 0;
}

static int
count_mailbox(struct spool *spool, const char *name, void *arg)
{
	struct spool_recovery *stats = arg;

	(void)spool;
	(void)name;
	stats->mailboxes++;
	return 0;
}

int
spool_recover(struct spool *spool, struct spool_recovery *stats)
{
	struct spool_reclaim own;
	int r;

	memset(stats, 0, sizeof(*stats));
	if ((r = spool_reclaim(spool, own_process_dead, spool, 0, NULL, &own)) < 0)
		return r;
	stats->temporaries_removed = own.temporaries;
	stats->records_superseded = own.superseded;
	stats->claims_returned = own.claims + own.parked;
	if ((r = for_each_entry(spool, SPOOL_DIR_QUEUE, check_queued_record, stats)) < 0 ||
	    (r = for_each_entry(spool, SPOOL_DIR_DATA, remove_orphan_data, stats)) < 0 ||
	    (r = for_each_entry(spool, SPOOL_DIR_MAIL, count_mailbox, stats)) < 0)
		return r;
	if (fsync(spool->dirfd[SPOOL_DIR_QUEUE]) < 0 || fsync(spool->dirfd[SPOOL_DIR_ACTIVE]) < 0 ||
	    fsync(spool->dirfd[SPOOL_DIR_DATA]) < 0)
		return -errno;
	return 0;
}
