/*
 * NAME
 *	spool - the spool directory, message ids and the durable commit
 * SYNOPSIS
 *	#include "spool.h"
 * DESCRIPTION
 *	The spool is a directory of plain files; it is the only interface
 *	between spoolgate-smtpd and spoolgate-fs.  Layout (docs/architecture.md):
 *
 *	    tmp/                    every new file starts here, O_EXCL|O_NOFOLLOW
 *	    mail/<mailbox>/{tmp,new,cur}   local mailboxes, Maildir
 *	    data/<id>               message data of queued, sent and failed messages
 *	    queue/<id>              envelope records waiting for delivery
 *	    active/<id>@<host>,<pid> records claimed by a queue runner
 *	    sent/<id>, failed/<id>  records of delivered and refused messages
 *	    nodes/<host>            heartbeats of the gateways using the spool (node.h)
 *
 *	The commit protocol: a message is written under tmp/, then
 *	fsync(file); link(2)/rename(2) to its final names; fsync of every
 *	directory that received a name; only then is it acknowledged.  The
 *	commit is split in phases so that a committer thread can run the
 *	phases of many messages and sync each directory once for all of them
 *	(group commit): spool_msg_commit_prepare() for each message,
 *	spool_msg_commit_publish() for each, one spool_dirset_sync(), and the
 *	acknowledgements.
 *
 *	spool_open() opens (and creates where missing) the layout and keeps a
 *	descriptor of each directory.  spool_set_hostname() sets the host
 *	name that this process writes into file names (tmp/<id>.<host>,
 *	mail/x/new/<id>.<host>, active/<id>@<host>,<pid>) and by which
 *	recovery knows its own files: the configured [spool] hostname, so
 *	that gateways sharing a spool are told apart even when their system
 *	host names are equal.  Until it is called (or with NULL or "") the
 *	system host name is used.  Call it before the spool is shared with
 *	other threads; the name is cut to 63 octets of [A-Za-z0-9-], any
 *	other byte becomes '_'.  When the process runs as root and the
 *	spool root belongs to another user, files and directories it creates
 *	are given to that user, so that a daemon that dropped root can use them.
 *
 *	spool_recover() runs at start-up: it removes half-written temporaries
 *	of dead processes of this host (tmp/), gives claims of dead runners of
 *	this host back to queue/ (also those parked in tmp/ by a runner that
 *	died while finishing, see queue.c), drops records whose data never
 *	became durable, removes queue/ records and dead claims of messages
 *	that have a record in sent/ (delivered: never sent twice), and counts
 *	what it kept.  It never touches another host's claims or temporaries:
 *	those are node.h's, once that node's lease has run out.
 *
 *	spool_reclaim() is the part of recovery that gives back what dead
 *	owners left: every claim in active/ and parked claim in tmp/ whose
 *	owner (host and pid from its name) dead() says is dead goes back to
 *	queue/ (a claim whose message already has a record in queue/, sent/
 *	or failed/ is removed instead: the published record is the newer
 *	one), and their temporaries older than tmp_min_age seconds (by
 *	mtime; 0: any age) are removed.  by names the node that takes over,
 *	for the log (NULL: this host's own recovery, which also removes any
 *	host's temporary older than a day; a node's sweep (by set) never
 *	judges another host's file by its age alone).
 *
 *	spool_new_id() makes a message id unique across hosts, processes and
 *	time: "<sec>.M<usec>P<pid>Q<counter>", usable as a file name.
 * ERRORS
 *	Every function returns 0 (or a count) or -errno.  Write errors are
 *	sticky on a spool_msg: once a write failed, every later call returns
 *	the same error, so the caller reports the first cause (ENOSPC, EDQUOT,
 *	EFBIG, EIO).
 * THREADS
 *	A struct spool is safe to share between threads after spool_open().
 *	A spool_msg belongs to one thread at a time: the session thread writes
 *	it, hands it to the committer, and gets it back when the commit is done.
 */
#ifndef SPOOLGATE_SPOOL_H
#define SPOOLGATE_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "envelope.h"

#define SPOOL_ID_MAX	ENVELOPE_ID_MAX
#define SPOOL_NAME_MAX	256

enum spool_dir {
	SPOOL_DIR_ROOT,
	SPOOL_DIR_TMP,
	SPOOL_DIR_MAIL,
	SPOOL_DIR_DATA,
	SPOOL_DIR_QUEUE,
	SPOOL_DIR_ACTIVE,
	SPOOL_DIR_SENT,
	SPOOL_DIR_FAILED,
	SPOOL_DIR_PARTIAL,	/* partial/: interrupted transfers kept for CHECKPOINT (checkpoint.h) */
	SPOOL_DIR_NODES,
	SPOOL_DIR__COUNT
};

struct spool;
struct spool_msg;
struct spool_dirset;

struct spool_recovery {
	unsigned	temporaries_removed;
	unsigned	claims_returned;
	unsigned	records_dropped;	/* envelope without durable data */
	unsigned	records_superseded;	/* queue/ record or dead claim of a message in sent/ */
	unsigned	orphans_removed;	/* data without any record */
	unsigned	queued;			/* records in queue/ after recovery */
	unsigned	mailboxes;
};

int spool_open(const char *path, struct spool **out);
void spool_close(struct spool *spool);
const char *spool_path(const struct spool *spool);
int spool_dirfd(const struct spool *spool, enum spool_dir dir);
const char *spool_dir_name(enum spool_dir dir);		/* "tmp", "mail", ... */
const char *spool_hostname(const struct spool *spool);	/* sanitised, for file names */
void spool_set_hostname(struct spool *spool, const char *name);
void spool_new_id(struct spool *spool, char id[SPOOL_ID_MAX]);
int spool_recover(struct spool *spool, struct spool_recovery *stats);

typedef int (*spool_dead_fn)(const char *host, long pid, void *arg);	/* 1: dead */
struct spool_reclaim {
	unsigned	claims;		/* active/ claims given back to queue/ */
	unsigned	parked;		/* parked claims given back (or removed: their record was published) */
	unsigned	superseded;	/* claims removed: their message has a newer record */
	unsigned	temporaries;	/* tmp/ files removed */
};
int spool_reclaim(struct spool *spool, spool_dead_fn dead, void *arg, long tmp_min_age, const char *by,
    struct spool_reclaim *stats);
/* Is there a claim active/<id>@<host>,<pid> of this id?  1 or 0. */
int spool_claim_exists(struct spool *spool, const char *id);
/* Is there a record of this id in queue/, sent/ or failed/?  1 or 0. */
int spool_record_exists(struct spool *spool, const char *id);
/*
 * The id of a claim parked in tmp/ while its runner publishes the new
 * record, "<id>@<host>,<pid>.old" (queue.h): 0, or -1 when name is no
 * such claim.  One reading of that name for every reader of tmp/.
 */
int spool_parked_claim_id(const char *name, char id[SPOOL_ID_MAX]);

/* Mailboxes.  name must come from addr_mailbox_name(). */
int spool_mailbox_exists(struct spool *spool, const char *name);	/* 1, 0 or -errno */
/* Creates mail/<name>/{tmp,new,cur} if missing; directories that got an entry are added to dirs (may be NULL: synced at once). */
int spool_mailbox_create(struct spool *spool, const char *name, struct spool_dirset *dirs);

/* Directory sets for group commit: each directory fsync'd once. */
struct spool_dirset *spool_dirset_new(struct spool *spool);
/* relpath is relative to the spool root, e.g. "queue" or "mail/bob/new". */
int spool_dirset_add(struct spool_dirset *dirs, const char *relpath);
int spool_dirset_sync(struct spool_dirset *dirs);	/* syncs and empties; first error wins */
void spool_dirset_free(struct spool_dirset *dirs);

/*
 * Writing a message.  return_path: when not NULL a "Return-Path: <...>"
 * line starts the data (local mailboxes want it); queued copies skip it
 * (envelope data-offset).
 */
int spool_msg_create(struct spool *spool, const char *return_path, struct spool_msg **out);
/*
 * As spool_msg_create(), but the message's data and record are files
 * without a name (O_TMPFILE in tmp/) until spool_msg_commit_publish()
 * links them into place: no name is created, renamed or removed in tmp/,
 * which on a journaled filesystem is journal work per message, and a
 * crash leaves nothing there for recovery.  Only for a caller whose batch
 * makes the names durable with spool_fs_sync() (commitgroup_syncs_fs()):
 * a link raises the file's link count, which the fsync of a directory
 * does not write on ext4 without a journal (a syncfs does).  Where the
 * spool's filesystem has no O_TMPFILE (logged once, event=spool-unnamed),
 * the message gets named temporaries, as from spool_msg_create().
 * A message for the relay alone (no local mailbox, queued, not
 * rejected) whose bytes all stayed in the 64 KiB write buffer until the
 * prepare is one file: an inline record (envelope.h), its record then
 * its data, published as queue/<id> alone.
 */
int spool_msg_create_unnamed(struct spool *spool, const char *return_path, struct spool_msg **out);
const char *spool_msg_id(const struct spool_msg *msg);
int spool_msg_write(struct spool_msg *msg, const void *buf, size_t len);
int spool_msg_error(const struct spool_msg *msg);	/* the sticky error, or 0 */
uint64_t spool_msg_size(const struct spool_msg *msg);	/* bytes written so far */
/* Targets: a local mailbox (deduplicated) and/or the relay queue. */
int spool_msg_deliver_local(struct spool_msg *msg, const char *mailbox);
/* Takes a copy of env; its id and data_offset are set from msg. */
int spool_msg_queue(struct spool_msg *msg, const struct envelope *env);
/*
 * As spool_msg_queue(), but the record goes to failed/<id> (never to the
 * relay): a submission that was refused, kept with its reason.  env must
 * carry a "rejected:" line (envelope_set_rejected), else -EINVAL.
 */
int spool_msg_reject(struct spool_msg *msg, const struct envelope *env);
size_t spool_msg_local_count(const struct spool_msg *msg);

/*
 * Commit phases (may run on a committer thread; blocking I/O).  _start is
 * optional: it writes out the buffer and starts writeback without waiting,
 * so that a committer can start the writes of a whole batch before it
 * waits for the first fdatasync in _prepare.
 */
int spool_msg_commit_start(struct spool_msg *msg);
int spool_msg_commit_prepare(struct spool_msg *msg);
/*
 * One sync for a batch (spool_fs_sync_open() succeeded): _prepare_unsynced
 * writes the data and the record's temporary without syncing either; the
 * caller runs spool_fs_sync(), then spool_msg_commit_check() on each message
 * before its publish.  _check waits for the writeback of the message's own
 * files and returns any writeback error they had since they were created
 * (sync_file_range(2): no device flush), so that an error another
 * spool_fs_sync() consumed first is not lost; 0 or -errno, sticky.
 */
int spool_msg_commit_prepare_unsynced(struct spool_msg *msg);
int spool_msg_commit_check(struct spool_msg *msg);
/*
 * After _prepare_unsynced: whether msg may be published before its file
 * is durable, the publication and the file then made durable by one
 * spool_fs_sync(), with spool_msg_commit_check() after it.  True for an
 * inline record, which is sealed (envelope.h): a power cut between the
 * two leaves a name that envelope_check_inline() refuses and recovery
 * drops, never a message that reads whole but is not.
 */
bool spool_msg_self_checking(const struct spool_msg *msg);
int spool_msg_commit_publish(struct spool_msg *msg, struct spool_dirset *dirs);
/* After a failed dirset sync: remove the names published, best effort. */
void spool_msg_commit_unpublish(struct spool_msg *msg);
/* All phases for one message, with its own sync (the filesystem daemon). */
int spool_msg_commit(struct spool_msg *msg);
/*
 * For a checkpoint (RFC 1845): writes out the buffer and syncs the data
 * (fdatasync); 0 or the sticky error.  spool_msg_link() gives the
 * temporary a second name dirfd/name (linkat(2); -EEXIST when taken); the
 * caller syncs dirfd.  That name outlives spool_msg_free().
 */
int spool_msg_sync(struct spool_msg *msg);
int spool_msg_link(struct spool_msg *msg, int dirfd, const char *name);
/* Removes the temporaries (the published names stay) and frees. NULL ok. */
void spool_msg_free(struct spool_msg *msg);

/*
 * One sync for many files.  spool_fs_sync_open() opens a descriptor of the
 * spool's root for spool_fs_sync(), which calls syncfs(2) on it, then
 * fsync(2) of it (syncfs writes some metadata after its own flush of the
 * disk's cache, on ext4 without a journal at least; any descriptor of the
 * filesystem serves, a file's too: drop_commit()): when it returns 0,
 * every file written on the spool's filesystem so far is durable, with
 * every rename and unlink; it returns a writeback error of any file of
 * that filesystem since the previous call on the same descriptor (Linux 5.8
 * and later), once.  Keep one descriptor per thread that syncs this way.
 * spool_fs_sync_open() returns -EOPNOTSUPP unless the filesystem is one
 * whose syncfs is known to write through to its disk (ext2/3/4, XFS, Btrfs,
 * F2FS; tmpfs, where there is no disk): on FUSE (GlusterFS, MooseFS) and
 * NFS it may return before the data reached the server, and the caller must
 * sync each file instead.  It syncs whatever else is dirty on that
 * filesystem too, which costs more where the spool shares it with busy
 * writers.
 */
int spool_fs_sync_open(const struct spool *spool);	/* a descriptor, or -errno */
int spool_fs_sync(int fd);				/* 0 or -errno */

/* Creates a file under tmp/ with O_CREAT|O_EXCL|O_NOFOLLOW; name_out gets its name. */
int spool_tmpfile(struct spool *spool, char name_out[SPOOL_NAME_MAX]);
/*
 * A file in tmp/ that has no name, for scratch data read back through its
 * descriptor only: O_TMPFILE, or where the filesystem has none a
 * spool_tmpfile() removed at once.  Nothing is left in tmp/, even if the
 * process is killed.  The descriptor, or -errno.
 */
int spool_tmpfile_unnamed(struct spool *spool);
/*
 * Gives a new file or directory to the spool owner when running as root;
 * 0 or -errno of fchown.  Its callers here fail the creation when it
 * fails (and remove what they created): a root-owned file in the owner's
 * spool is one the daemon cannot rename or remove once it dropped root.
 */
int spool_chown_new(const struct spool *spool, int fd);

/* write(2) all of buf, retrying short writes and EINTR; 0 or -errno. */
int spool_write_all(int fd, const void *buf, size_t len);
/* pwrite(2) all of buf at off, retrying short writes and EINTR; 0 or -errno. */
int spool_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/*
 * pread(2) up to len bytes at off, retrying short reads and EINTR: the
 * bytes read (fewer than len only at the end of the file), or -errno.
 */
ssize_t spool_pread_all(int fd, void *buf, size_t len, off_t off);

#endif
