/*
 * NAME
 *	logdisk - a disk image that records every write and every flush
 * SYNOPSIS
 *	logdisk IMAGE LOG MOUNTPOINT
 * DESCRIPTION
 *	A FUSE filesystem holding one file, MOUNTPOINT/disk, whose contents
 *	are IMAGE (read and written in place).  Every write to it is also
 *	appended to LOG as a record, and so is every fsync: what a loop device
 *	over MOUNTPOINT/disk sends for the block layer's writes and cache
 *	flushes (the kernel turns a REQ_OP_FLUSH and a FUA write of the loop
 *	device into an fsync of its backing file).  From IMAGE's first state
 *	and a prefix of LOG, tests/integration/test_powercut.py builds any
 *	state a disk with a volatile write cache could have been left in by
 *	a power cut, as dm-log-writes does where the kernel has device-mapper
 *	(this one has none).
 *
 *	The requests are served one at a time (-s), and writes go straight
 *	through (direct_io, no page cache in between), so LOG holds them in
 *	the order the loop device issued them, and each record is in LOG
 *	before the write is answered.  LOG's size is the position a caller
 *	reads to say "everything acknowledged so far is before here".
 *
 *	Records, all integers little-endian:
 *	  'W' u64 offset, u32 length, then length bytes;
 *	  'F' (an fsync of the disk: every write before it is durable).
 * EXIT STATUS
 *	0 after an unmount, 1 on an error.
 * SECURITY
 *	A test tool, never installed; mounting needs root.
 */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int image_fd = -1;
static int log_fd = -1;
static off_t image_size;

static const char disk_path[] = "/disk";

/* Appends the whole buffer to LOG; 0 or -errno. */
static int
log_append(const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(log_fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t) n;
	}
	return 0;
}

static int
log_write_record(uint64_t off, uint32_t len, const char *data)
{
	unsigned char head[13];
	int r;

	head[0] = 'W';
	for (int i = 0; i < 8; i++)
		head[1 + i] = (unsigned char) (off >> (8 * i));
	for (int i = 0; i < 4; i++)
		head[9 + i] = (unsigned char) (len >> (8 * i));
	if ((r = log_append(head, sizeof head)) < 0)
		return r;
	return log_append(data, len);
}

static int
ld_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void) fi;
	memset(st, 0, sizeof *st);
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, disk_path) != 0)
		return -ENOENT;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = 1;
	st->st_size = image_size;
	return 0;
}

static int
ld_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
	   struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void) off;
	(void) fi;
	(void) flags;
	if (strcmp(path, "/") != 0)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, disk_path + 1, NULL, 0, 0);
	return 0;
}

static int
ld_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, disk_path) != 0)
		return -ENOENT;
	fi->direct_io = 1;	/* every write reaches us, in order */
	return 0;
}

static int
ld_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	(void) path;
	(void) fi;
	if (off >= image_size)
		return 0;
	if ((off_t) size > image_size - off)
		size = (size_t) (image_size - off);
	n = pread(image_fd, buf, size, off);
	return n < 0 ? -errno : (int) n;
}

static int
ld_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;
	int r;

	(void) path;
	(void) fi;
	if (off < 0 || off >= image_size || (off_t) size > image_size - off)
		return -ENOSPC;
	if ((r = log_write_record((uint64_t) off, (uint32_t) size, buf)) < 0)
		return r;
	n = pwrite(image_fd, buf, size, off);
	return n < 0 ? -errno : (int) n;
}

static int
ld_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void) path;
	(void) datasync;
	(void) fi;
	return log_append("F", 1);
}

static int
ld_flush(const char *path, struct fuse_file_info *fi)
{
	(void) path;
	(void) fi;
	return 0;
}

static const struct fuse_operations ld_ops = {
	.getattr	= ld_getattr,
	.readdir	= ld_readdir,
	.open		= ld_open,
	.read		= ld_read,
	.write		= ld_write,
	.fsync		= ld_fsync,
	.flush		= ld_flush,
};

int
main(int argc, char **argv)
{
	char *fargv[] = { argv[0], (char *) "-f", (char *) "-s", (char *) "-o",
	    (char *) "fsname=logdisk", argc == 4 ? argv[3] : NULL, NULL };
	struct stat st;

	if (argc != 4) {
		fprintf(stderr, "usage: logdisk IMAGE LOG MOUNTPOINT\n");
		return 2;
	}
	if ((image_fd = open(argv[1], O_RDWR | O_CLOEXEC)) < 0 || fstat(image_fd, &st) < 0) {
		fprintf(stderr, "logdisk: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	image_size = st.st_size;
	if ((log_fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)) < 0) {
		fprintf(stderr, "logdisk: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	return fuse_main(6, fargv, &ld_ops, NULL) == 0 ? 0 : 1;
}
