/*
 * NAME
 *	sync_order - an LD_PRELOAD shim that reports names published before
 *	their content was synced
 * SYNOPSIS
 *	LD_PRELOAD=libsync_order.so SPOOLGATE_SYNC_ORDER_LOG=FILE spoolgate-fs ...
 * DESCRIPTION
 *	For tests only (tests/integration/test_fs.py, SyncOrder).  It keeps
 *	the inodes written (write, pwrite) since their last sync: fdatasync
 *	or fsync of a descriptor of the inode, or a syncfs(2) that started
 *	after the write returned.  A linkat(2) or renameat(2) that gives such
 *	an inode (named, or unnamed and linked by its descriptor) a name
 *	outside tmp/ appends "published-unsynced <name>" to
 *	FILE, or "published-sealed <name>" when the file is a sealed inline
 *	record (its text's last line "inline-crc32: ...", common/envelope.h),
 *	whose readers tell it torn; every other one appends "published
 *	<name>", and every syncfs "syncfs", so that a test sees that the shim
 *	saw the commits.  The check stands for a crash: a name that reaches
 *	the disk before its content is what a crash between the two would
 *	leave.
 * BUGS
 *	Knows the write calls the spool uses (write, pwrite, pwrite64), not
 *	writev, mmap or copy_file_range.  At most SHIM_DIRTY_MAX inodes
 *	written and unsynced at once; beyond that it logs "overflow".
 */
#undef _FILE_OFFSET_BITS	/* to define pwrite and pwrite64 each */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define SHIM_DIRTY_MAX	8192

/* An inode written since its last sync, and when (a counter of writes). */
struct dirty {
	dev_t			dev;
	ino_t			ino;
	unsigned long long	seq;
};

static pthread_mutex_t shim_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dirty shim_dirty[SHIM_DIRTY_MAX];	/* protected by shim_lock */
static size_t shim_ndirty;
static unsigned long long shim_seq;

#define REAL(fn) ({							\
	static __typeof__(fn) *real_;					\
	if (real_ == NULL)						\
		real_ = (__typeof__(fn) *)dlsym(RTLD_NEXT, #fn);	\
	real_;								\
})

static void
shim_log(const char *what, const char *name)
{
	const char *path = getenv("SPOOLGATE_SYNC_ORDER_LOG");
	char line[4200];
	int fd, n;

	if (path == NULL)
		return;
	n = snprintf(line, sizeof line, "%s%s%s\n", what, name ? " " : "", name ? name : "");
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return;
	(void)REAL(write)(fd, line, (size_t)n);
	close(fd);
}

/* Index of the inode in shim_dirty, or shim_ndirty.  Under shim_lock. */
static size_t
dirty_find(dev_t dev, ino_t ino)
{
	size_t i;

	for (i = 0; i < shim_ndirty; i++)
		if (shim_dirty[i].dev == dev && shim_dirty[i].ino == ino)
			break;
	return i;
}

static void
mark_written(int fd)
{
	struct stat st;
	size_t i;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	pthread_mutex_lock(&shim_lock);
	i = dirty_find(st.st_dev, st.st_ino);
	if (i == shim_ndirty && shim_ndirty == SHIM_DIRTY_MAX) {
		pthread_mutex_unlock(&shim_lock);
		shim_log("overflow", NULL);
		return;
	}
	if (i == shim_ndirty)
		shim_ndirty++;
	shim_dirty[i] = (struct dirty){ st.st_dev, st.st_ino, ++shim_seq };
	pthread_mutex_unlock(&shim_lock);
}

/* Forgets the inodes (of fd, or all when fd < 0) written up to seq. */
static void
mark_synced(int fd, unsigned long long upto)
{
	struct stat st;
	size_t i = 0;

	if (fd >= 0 && fstat(fd, &st) < 0)
		return;
	pthread_mutex_lock(&shim_lock);
	while (i < shim_ndirty) {
		struct dirty *d = &shim_dirty[i];

		if (d->seq <= upto && (fd < 0 || (d->dev == st.st_dev && d->ino == st.st_ino)))
			*d = shim_dirty[--shim_ndirty];
		else
			i++;
	}
	pthread_mutex_unlock(&shim_lock);
}

static unsigned long long
seq_now(void)
{
	unsigned long long s;

	pthread_mutex_lock(&shim_lock);
	s = shim_seq;
	pthread_mutex_unlock(&shim_lock);
	return s;
}

/*
 * Is the file a sealed inline record: the last line of its text (before
 * the first empty line) "inline-crc32: "?  The file is olddirfd itself
 * when flags has AT_EMPTY_PATH and oldpath is empty, else oldpath.
 */
static bool
is_sealed_inline(int olddirfd, const char *oldpath, int flags)
{
	static const char seal[] = "\ninline-crc32: ";
	char buf[16384 + 1], *blank, *last;
	int fd = (flags & AT_EMPTY_PATH) && oldpath[0] == '\0' ? olddirfd :
	    openat(olddirfd, oldpath, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = pread(fd, buf, sizeof buf - 1, 0);
	if (fd != olddirfd)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if ((blank = strstr(buf, "\n\n")) == NULL)
		return false;
	*blank = '\0';
	return (last = strrchr(buf, '\n')) != NULL && strncmp(last, seal, sizeof seal - 1) == 0;
}

/*
 * Before oldpath gets newpath: is its inode written and unsynced?  flags
 * as linkat's: an unnamed file is linked by its descriptor (AT_EMPTY_PATH)
 * or through /proc/self/fd/N (AT_SYMLINK_FOLLOW).
 */
static void
check_publish(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	char link[64], dir[4096], name[4096 + 256];
	int statflags = (flags & AT_EMPTY_PATH) ? AT_EMPTY_PATH : (flags & AT_SYMLINK_FOLLOW) ? 0 :
	    AT_SYMLINK_NOFOLLOW;
	struct stat st;
	ssize_t n;
	bool unsynced;

	if (fstatat(olddirfd, oldpath, &st, statflags) < 0 || !S_ISREG(st.st_mode))
		return;
	snprintf(link, sizeof link, "/proc/self/fd/%d", newdirfd);
	if ((n = readlink(link, dir, sizeof dir - 1)) < 0)
		n = 0;
	dir[n] = '\0';
	if (n >= 4 && strcmp(dir + n - 4, "/tmp") == 0 && strchr(newpath, '/') == NULL)
		return;		/* a temporary's second name is no publication */
	snprintf(name, sizeof name, "%s/%s", dir, newpath);
	pthread_mutex_lock(&shim_lock);
	unsynced = dirty_find(st.st_dev, st.st_ino) < shim_ndirty;
	pthread_mutex_unlock(&shim_lock);
	shim_log(!unsynced ? "published" : is_sealed_inline(olddirfd, oldpath, flags) ? "published-sealed" :
	    "published-unsynced", name);
}

ssize_t
write(int fd, const void *buf, size_t len)
{
	ssize_t r = REAL(write)(fd, buf, len);

	if (r > 0)
		mark_written(fd);
	return r;
}

/* Defines fn(fd, buf, len, off): the real fn; then fd's inode is written. */
#define WRITE_AT_CALL(fn, off_type)					\
ssize_t									\
fn(int fd, const void *buf, size_t len, off_type off)			\
{									\
	ssize_t r = REAL(fn)(fd, buf, len, off);			\
									\
	if (r > 0)							\
		mark_written(fd);					\
	return r;							\
}

WRITE_AT_CALL(pwrite, off_t)
WRITE_AT_CALL(pwrite64, off64_t)

/* Defines fn(fd): the real fn; then fd's inode is synced up to the writes before it. */
#define FILE_SYNC_CALL(fn)						\
int									\
fn(int fd)								\
{									\
	unsigned long long upto = seq_now();				\
	int r = REAL(fn)(fd);						\
									\
	if (r == 0)							\
		mark_synced(fd, upto);					\
	return r;							\
}

FILE_SYNC_CALL(fdatasync)
FILE_SYNC_CALL(fsync)

int
syncfs(int fd)
{
	unsigned long long upto = seq_now();
	int r = REAL(syncfs)(fd);

	if (r == 0)
		mark_synced(-1, upto);
	shim_log("syncfs", NULL);
	return r;
}

int
linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	check_publish(olddirfd, oldpath, newdirfd, newpath, flags);
	return REAL(linkat)(olddirfd, oldpath, newdirfd, newpath, flags);
}

int
renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	check_publish(olddirfd, oldpath, newdirfd, newpath, 0);
	return REAL(renameat)(olddirfd, oldpath, newdirfd, newpath);
}
