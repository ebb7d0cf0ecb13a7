/*
 * NAME
 *	passthrough - reads of committed messages straight from the spool file
 *	(FUSE passthrough on libfuse 3.14)
 * SYNOPSIS
 *	#include "passthrough.h"
 *
 *	int passthrough_install(struct fuse_session *se, bool wanted,
 *			struct passthrough **out);
 *	bool passthrough_active(struct passthrough *pt);
 *	int passthrough_open(struct passthrough *pt, uint64_t ino, int fd);
 *	void passthrough_release(struct passthrough *pt, uint64_t ino);
 *	void passthrough_free(struct passthrough *pt);
 * DESCRIPTION
 *	With passthrough (kernel 6.9, FUSE protocol 7.40) the kernel reads and
 *	maps a file opened through the mount from a file the daemon names, its
 *	"backing file": no READ request, no copy through the daemon, and the
 *	spool file's own page cache and read-ahead.  A committed message never
 *	changes (spoolfs.h), so an inbox/ message is read this way.
 *
 *	libfuse 3.16 has an API for it; Debian 12 ships 3.14, which does not
 *	know the protocol's three additions.  This module adds them through
 *	libfuse's custom I/O hooks (fuse_session_custom_io(), libfuse 3.13),
 *	which see every request read from /dev/fuse and every reply written:
 *
 *	  INIT: when the kernel offers FUSE_PASSTHROUGH, the reply accepts it,
 *	    with a stacking depth of 1 (a backing file on a filesystem that is
 *	    itself not stacked: the spool's disk);
 *	  the backing file: passthrough_open() registers the spool file's
 *	    descriptor with the kernel (ioctl FUSE_DEV_IOC_BACKING_OPEN on
 *	    /dev/fuse) and gets its id;
 *	  OPEN: the reply to the request that passthrough_open() was called
 *	    for carries FOPEN_PASSTHROUGH and the id.  The kernel refuses the
 *	    open (EIO) if the reply also asks for the page cache
 *	    (FOPEN_KEEP_CACHE): that flag is taken off.
 *
 *	The kernel allows one backing file per inode: every open of an inode
 *	shares one id, counted by passthrough_open() and _release(), closed
 *	(FUSE_DEV_IOC_BACKING_CLOSE) when the last open is released.  The
 *	kernel drops its own reference before it sends the RELEASE, so an
 *	open that follows is never given a second id for the same inode.
 *
 *	passthrough_install() is called once, after fuse_session_mount()
 *	and before the loop starts.  With wanted false ([fs] passthrough = no)
 *	or without CAP_SYS_ADMIN (the ioctl requires it) nothing is offered
 *	and every read goes through the daemon as before.
 *	passthrough_active() says whether INIT agreed to it; until it has,
 *	and when it did not, passthrough_open() returns -EOPNOTSUPP.
 *	passthrough_open() is called by the request's handler before it
 *	replies (the reply is matched to the request on the handler's
 *	thread); the caller replies without keep_cache, as a plain open.
 *
 *	Logs: passthrough (state=on, or state=off with reason= at INIT),
 *	passthrough-failed (a backing open the kernel refused: that open is
 *	served through the daemon), passthrough-stats at the end (opens=,
 *	backing_files=, failed=, open_now=).
 * ERRORS
 *	passthrough_install(): -ENOMEM, or libfuse's -errno.
 *	passthrough_open(): -EOPNOTSUPP (not agreed), -ENOMEM, or the
 *	ioctl's -errno; the caller then opens the file the usual way.
 * OWNERSHIP
 *	The module keeps no descriptor of the caller's: the kernel holds its
 *	own reference to the backing file.  One session per process (the
 *	hooks have no argument of their own).  passthrough_free() after
 *	fuse_session_destroy().
 * THREADS
 *	passthrough_open() and _release() from any request thread; a lock of
 *	the module's own, taken inside the caller's locks, never around them.
 */
#ifndef SPOOLGATE_FS_PASSTHROUGH_H
#define SPOOLGATE_FS_PASSTHROUGH_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

struct passthrough;

int passthrough_install(struct fuse_session *se, bool wanted, struct passthrough **out);
bool passthrough_active(struct passthrough *pt);
int passthrough_open(struct passthrough *pt, uint64_t ino, int fd);
void passthrough_release(struct passthrough *pt, uint64_t ino);
void passthrough_free(struct passthrough *pt);

#endif
