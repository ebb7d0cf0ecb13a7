/*
 * NAME
 *	spoolfs - the spool as a filesystem (libfuse3 low-level operations)
 * SYNOPSIS
 *	#define FUSE_USE_VERSION 35
 *	#include <fuse_lowlevel.h>
 *	#include "spoolfs.h"
 *
 *	int spoolfs_new(const struct cfg *cfg, struct spool *spool,
 *			struct spoolfs **out);
 *	const struct fuse_lowlevel_ops *spoolfs_ops(void);
 *	int spoolfs_passthrough_start(struct spoolfs *fs,
 *			struct fuse_session *se);
 *	int spoolfs_watch_start(struct spoolfs *fs, struct fuse_session *se);
 *	void spoolfs_watch_stop(struct spoolfs *fs);
 *	void spoolfs_when_ready(struct spoolfs *fs, void (*fn)(void *arg),
 *			void *arg);
 *	void spoolfs_free(struct spoolfs *fs);
 * DESCRIPTION
 *	What the mount shows:
 *
 *	    inbox/<mailbox>/<message>   spool mail/<mailbox>/new and cur, names
 *	                                as on disk; read-only; rm deletes
 *	    inbox/<mailbox>/.next[.<N>] not listed: a read waits for the oldest
 *	                                message in new/ and answers its name
 *	                                (at most N seconds; fs/waiters.h)
 *	    outbox/<name>               write a message, close it: submitted
 *	                                (the name stays a minute; fs/outfile.h)
 *	    outbox/wait/<name>          the same, and close(2) waits for the
 *	                                relay's outcome (fs/waiters.h)
 *	    queue/<id>                  the message of a record in queue/ or
 *	                                active/ (data/<id> after data-offset)
 *	    queue/<id>.status           the envelope record, as on disk
 *	    sent/..., failed/...        the same for sent/ and failed/
 *
 *	Caches: a committed message never changes, so the kernel keeps the
 *	name, attributes and pages of inbox/ messages and of queue/<id>,
 *	sent/<id>, failed/<id> (entry and attribute timeouts of a minute,
 *	keep_cache at open).  With passthrough (fs/passthrough.h, [fs]
 *	passthrough = yes, kernel 6.9 or later) an inbox/ message is opened
 *	with the spool file as its backing file instead: the kernel reads and
 *	maps that file itself, with its page cache and read-ahead, and asks
 *	the daemon nothing until the close.  spoolfs_passthrough_start(),
 *	called once the session is mounted and before its loop, sets it up.
 *	spoolfs_watch_start(), called once the session is mounted, watches
 *	the spool (fs/watch.h) and tells the kernel to forget a name and its
 *	node (fuse_lowlevel_notify_inval_entry and _inode, from the watch
 *	thread) when the spool removes, moves or replaces it, so that rm in
 *	the spool or a record moving to sent/ shows at once.  Names outside
 *	outbox/, and the attributes of directories other than outbox/, are
 *	cached the same way (the watcher invalidates a directory's attributes
 *	when a name in it comes or goes): with default_permissions the kernel
 *	checks each directory of a path.
 *	Nothing else is cached: records (.status, read with direct_io) and
 *	the files of outbox/ have timeouts of 0 (outbox/ itself a second),
 *	listings are read afresh at every opendir (answered with
 *	readdirplus: names and attributes together), and a name that does
 *	not exist is never cached, so a message that arrives shows at once.
 *	The timeout bounds what inotify cannot see (another host writing a
 *	shared spool).  spoolfs_watch_stop() before
 *	the session is unmounted.  Files are read with pread(2) on a
 *	descriptor opened O_RDONLY|O_NOFOLLOW|O_CLOEXEC at open(2) and kept in
 *	the file handle, so a message that moves (queue/ -> sent/) or is
 *	deleted stays readable by whoever has it open; fstat(2) works on it
 *	too (the kernel sends no handle with it: a node whose path no longer
 *	leads to a file is answered from an open handle of that node).
 *	Listings are snapshots taken at opendir(3), so readdir offsets stay
 *	valid.  Every open handle and listing is on a list of the struct
 *	spoolfs, and spoolfs_free() frees what an unmount left open.
 *
 *	Errors a user sees (documented in README.md too):
 *	  - open for writing of anything outside outbox/: EACCES (the file's
 *	    mode has no write bit; root gets the same answer);
 *	  - creating, renaming, linking, or mkdir outside outbox/, unlink in
 *	    queue/ sent/ failed/, setattr of a read-only file: EPERM (the
 *	    mount is not read-only as a whole, so EROFS would mislead);
 *	  - mkdir in outbox/: EPERM (outbox/<address>/ is a later feature);
 *	  - a rename between outbox/ and another directory: EPERM;
 *	  - an outbox file that is no sendable message: the write(2) that
 *	    completes its header section, or passes max_message_size, fails
 *	    with the errno a submission would give (EDESTADDRREQ, EINVAL,
 *	    EBADMSG, EFBIG), and so does every later write and close(2); what
 *	    is known only at the end (ENOSPC, a header with no empty line
 *	    after it) fails close(2); an empty file is ENODATA at close(2).
 *	    The refused file is kept in failed/ (fs/outfile.h);
 *	  - a second open for writing of an outbox file being written, or an
 *	    open for writing without O_TRUNC (>>) of a submitted name: EBUSY;
 *	  - an outbox file whose From: is not its writer's own address, from
 *	    a writer not in [sendmail] trusted_users: EPERM at the write that
 *	    completes the header (553 5.7.1, outfile.h);
 *	  - with allow_other, another user's mailbox (EACCES), record
 *	    (ENOENT) or outbox file (EACCES).
 *
 *	Which close(2) ends an outbox message: the close, by the process that
 *	opened it for writing, of the last descriptor it holds on it (read
 *	from /proc/<pid>/fdinfo, which asks nothing of this filesystem); see
 *	fs/outfile.h.
 *
 *	Modes: directories 0555, outbox/ 0755, inbox/<mailbox>/ the mode of
 *	the mailbox directory (rm needs its write bit); message files their
 *	mode on disk without write bits; outbox files 0600 at their creation
 *	(chmod changes what is shown), owned by their creator.
 *
 *	With [fs] allow_other the mount follows Unix users (fs/access.h):
 *	inbox/<mailbox>/ is its owner's (0700, messages 0400) and EACCES to
 *	everyone else but root, listings of inbox/, queue/, sent/ and failed/
 *	show the caller its own mailboxes and submissions, another user's
 *	record is ENOENT, another user's outbox file EACCES (EPERM to chmod),
 *	outbox/ is 1777; every such decision is taken per request from
 *	fuse_req_ctx(), and those names are never cached by the kernel.
 *
 *	Every operation answers its request exactly once, through one reply
 *	at its end (return (void) fuse_reply_err(req, e) on failure), or hands
 *	it to fs/waiters.h, which answers it later: a read of .next that waits
 *	for a message, the close(2) in outbox/wait/ that waits for the relay.
 * THREADS
 *	The operations run on libfuse's worker threads (spoolgate-fs runs
 *	fuse_session_loop_mt()).  One lock in struct spoolfs serialises them,
 *	except read and readdir, which touch only their own handle, and the
 *	syncs of a close(2) that submits: flush lets the lock go while they
 *	run (outfile.h), and concurrent submissions share their syncs
 *	(commitgroup.h).  spoolfs.c says what each lock protects and
 *	their order.  A write(2) that is refused (failed/ gets the file), a
 *	submission at the last release and a rename that submits still sync
 *	under the lock.  The spool watcher's thread reads the node table
 *	under the table's lock (inode.h) and sends notifications holding no
 *	lock.
 */
#ifndef SPOOLGATE_FS_SPOOLFS_H
#define SPOOLGATE_FS_SPOOLFS_H

#include "cfg.h"
#include "spool.h"

struct spoolfs;
struct fuse_lowlevel_ops;
struct fuse_session;

/* 0 or -ENOMEM; fs keeps pointers to cfg and spool (they must outlive it). */
int spoolfs_new(const struct cfg *cfg, struct spool *spool, struct spoolfs **out);
/* The operations; their userdata is the struct spoolfs. */
const struct fuse_lowlevel_ops *spoolfs_ops(void);
/*
 * fn(arg) runs once, at the first request after the kernel processed the
 * reply to INIT (under the operations' lock: it must not use the mount).
 */
void spoolfs_when_ready(struct spoolfs *fs, void (*fn)(void *arg), void *arg);
/*
 * Offers passthrough at INIT when [fs] passthrough = yes (0, or libfuse's
 * -errno: the mount then works without it).
 */
int spoolfs_passthrough_start(struct spoolfs *fs, struct fuse_session *se);
/* Watches the spool and invalidates the kernel's caches (0 or -errno). */
int spoolfs_watch_start(struct spoolfs *fs, struct fuse_session *se);
void spoolfs_watch_stop(struct spoolfs *fs);
/*
 * Frees the node table, the listings and file handles still open (an
 * unmount releases none), and removes the temporaries of outbox files
 * still held.
 */
void spoolfs_free(struct spoolfs *fs);

#endif
