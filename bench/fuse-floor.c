/*
 * NAME
 *	fuse-floor - the least a FUSE filesystem can do for a file dropped in it
 * SYNOPSIS
 *	fuse-floor null MOUNTPOINT
 *	fuse-floor sync STOREDIR MOUNTPOINT
 * DESCRIPTION
 *	A flat FUSE filesystem (one directory, its root) that takes new files
 *	and nothing else, for bench/fs: the drops part sets spoolgate-fs's
 *	outbox/ against it, to tell what FUSE itself costs a writer from what
 *	the spool's commit costs.  It is mounted the way spoolgate-fs mounts
 *	(libfuse's low-level API, default_permissions, the multi-threaded
 *	session loop with one /dev/fuse descriptor and 16 idle workers, the
 *	same capabilities asked for at INIT), and answers the requests a cp or
 *	dd into it makes:
 *
 *	  LOOKUP	ENOENT, not cached (every dropped name is new);
 *	  CREATE	a new inode number, attributes cached a second, as
 *			spoolgate-fs caches an outbox/ file's;
 *	  GETATTR	the root (mode 1777), or an empty file of mode 0600;
 *	  WRITE		null: counted and dropped; sync: pwrite(2) into the
 *			file's backing file;
 *	  FLUSH		null: nothing; sync: fsync(2) of the backing file,
 *			as dd conv=fsync does on the plain directory, when it
 *			was written since its last sync (a dd closes two
 *			descriptors, the second sync would be idle);
 *	  FSYNC		ENOSYS, as spoolgate-fs answers it in outbox/ (the
 *			kernel then answers every later fsync(2) itself);
 *	  RELEASE	closes the backing file.
 *
 *	null keeps nothing: its rate is what the FUSE round trips let a writer
 *	do, the ceiling of any FUSE filesystem on this machine.  sync creates
 *	each file in STOREDIR (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) and makes
 *	it durable at the close: the plain directory's write+fsync done through
 *	FUSE, without the spool's record, names and header checks.
 *
 *	It runs in the foreground until SIGTERM, SIGINT or an unmount, then
 *	prints one line on stdout: "fuse-floor: files=N bytes=N syncs=N".
 * EXIT STATUS
 *	0 after a clean unmount, 1 on an error (mount refused, a backing file
 *	that cannot be made), 2 for a usage error.
 * SECURITY
 *	Mounting needs root (or fusermount3).  Built with the project and
 *	never installed (bench/meson.build).
 * THREADS
 *	libfuse's workers; the counters are atomics, and a file's state
 *	(struct floor_file) is only touched by the requests on its handle,
 *	which the kernel serialises for one writer.
 */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLOOR_ATTR_TIMEOUT	1.0	/* seconds, as spoolgate-fs for outbox/ files */
#define FLOOR_IDLE_THREADS	16	/* as spoolgate-fs (fs/main.c) */

struct floor {
	int		store_fd;	/* the backing directory (sync), or -1 (null) */
	atomic_ulong	next_ino;	/* the next created file's inode number */
	atomic_ulong	files;
	atomic_ulong	bytes;
	atomic_ulong	syncs;
};

/* An open file: its backing file in sync mode, and whether it needs a sync. */
struct floor_file {
	int		fd;		/* -1 in null mode */
	bool		dirty;
};

static struct floor *
floor_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void
fill_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_nlink = ino == FUSE_ROOT_ID ? 2 : 1;
	st->st_mode = ino == FUSE_ROOT_ID ? S_IFDIR | 01777 : S_IFREG | 0600;
}

static void
floor_init(void *userdata, struct fuse_conn_info *conn)
{
	(void) userdata;
	/* what spoolgate-fs asks for (fs/spoolfs.c, spoolfs_init) */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void
floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void) parent;
	(void) name;
	fuse_reply_err(req, ENOENT);
}

static void
floor_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void) fi;
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, ino == FUSE_ROOT_ID ? 0 : FLOOR_ATTR_TIMEOUT);
}

/*
 * Sets *fdp to the backing file of a new name in sync mode, to -1 in null
 * mode; 0, or -errno when it cannot be made.
 */
static int
open_backing(const struct floor *fl, const char *name, int *fdp)
{
	*fdp = -1;
	if (fl->store_fd < 0)
		return 0;
	*fdp = openat(fl->store_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	return *fdp < 0 ? -errno : 0;
}

static void
floor_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	     struct fuse_file_info *fi)
{
	struct floor *fl = floor_of(req);
	struct fuse_entry_param e;
	struct floor_file *f;
	int fd, r;

	(void) mode;
	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if ((r = open_backing(fl, name, &fd)) < 0) {
		fprintf(stderr, "fuse-floor: %s: %s\n", name, strerror(-r));
		fuse_reply_err(req, -r);
		return;
	}
	if ((f = malloc(sizeof *f)) == NULL) {
		if (fd >= 0)
			close(fd);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	f->fd = fd;
	f->dirty = false;
	memset(&e, 0, sizeof e);
	e.ino = atomic_fetch_add(&fl->next_ino, 1);
	e.attr_timeout = FLOOR_ATTR_TIMEOUT;
	e.entry_timeout = FLOOR_ATTR_TIMEOUT;
	fill_attr(e.ino, &e.attr);
	fi->fh = (uint64_t) (uintptr_t) f;
	atomic_fetch_add(&fl->files, 1);
	if (fuse_reply_create(req, &e, fi) != 0) {
		if (fd >= 0)
			close(fd);
		free(f);
	}
}

static struct floor_file *
file_of(const struct fuse_file_info *fi)
{
	return (struct floor_file *) (uintptr_t) fi->fh;
}

static void
floor_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	    struct fuse_file_info *fi)
{
	struct floor_file *f = file_of(fi);
	ssize_t n = (ssize_t) size;

	(void) ino;
	if (f->fd >= 0 && (n = pwrite(f->fd, buf, size, off)) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	f->dirty = f->fd >= 0;
	atomic_fetch_add(&floor_of(req)->bytes, (unsigned long) n);
	fuse_reply_write(req, (size_t) n);
}

static void
floor_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct floor_file *f = file_of(fi);

	(void) ino;
	if (f->dirty) {
		if (fsync(f->fd) < 0) {
			fuse_reply_err(req, errno);
			return;
		}
		f->dirty = false;
		atomic_fetch_add(&floor_of(req)->syncs, 1);
	}
	fuse_reply_err(req, 0);
}

static void
floor_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void) ino;
	(void) datasync;
	(void) fi;
	fuse_reply_err(req, ENOSYS);
}

static void
floor_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct floor_file *f = file_of(fi);

	(void) ino;
	if (f->fd >= 0)
		close(f->fd);
	free(f);
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops floor_ops = {
	.init		= floor_init,
	.lookup		= floor_lookup,
	.getattr	= floor_getattr,
	.create		= floor_create,
	.write		= floor_write,
	.flush		= floor_flush,
	.fsync		= floor_fsync,
	.release	= floor_release,
};

static int
usage(void)
{
	fprintf(stderr, "usage: fuse-floor null MOUNTPOINT\n"
	    "       fuse-floor sync STOREDIR MOUNTPOINT\n");
	return 2;
}

/* Mounts, serves until a signal or an unmount; the exit status. */
static int
serve(struct floor *fl, const char *mnt)
{
	char *argv[] = { (char *) "fuse-floor", (char *) "-o",
	    (char *) "default_permissions,fsname=fuse-floor,subtype=fuse-floor", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct fuse_loop_config loop = { .clone_fd = 0, .max_idle_threads = FLOOR_IDLE_THREADS };
	struct fuse_session *se;
	int r = 1;

	if ((se = fuse_session_new(&args, &floor_ops, sizeof floor_ops, fl)) == NULL)
		return 1;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "fuse-floor: cannot mount %s\n", mnt);
		fuse_remove_signal_handlers(se);
		goto out;
	}
	printf("fuse-floor: mounted on %s\n", mnt);
	fflush(stdout);
	r = fuse_session_loop_mt(se, &loop) < 0;
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	printf("fuse-floor: files=%lu bytes=%lu syncs=%lu\n", atomic_load(&fl->files),
	    atomic_load(&fl->bytes), atomic_load(&fl->syncs));
out:
	fuse_session_destroy(se);
	return r;
}

int
main(int argc, char **argv)
{
	struct floor fl = { .store_fd = -1 };
	const char *mnt;

	atomic_init(&fl.next_ino, FUSE_ROOT_ID + 1);
	if (argc == 3 && strcmp(argv[1], "null") == 0) {
		mnt = argv[2];
	} else if (argc == 4 && strcmp(argv[1], "sync") == 0) {
		if ((fl.store_fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			fprintf(stderr, "fuse-floor: %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		mnt = argv[3];
	} else {
		return usage();
	}
	return serve(&fl, mnt);
}
