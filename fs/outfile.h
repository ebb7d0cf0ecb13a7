/*
 * NAME
 *	outfile - the files being written in outbox/
 * SYNOPSIS
 *	#include "outfile.h"
 *
 *	void outfile_set_init(struct outfile_set *set, struct spool *spool,
 *			unsigned long max_size, const char *hostname);
 *	void outfile_set_senders(struct outfile_set *set, const struct cfg *cfg);
 *	int outfile_create(struct outfile_set *set, const char *name,
 *			mode_t mode, const struct outfile_writer *w,
 *			bool writable, struct outfile **out);
 *	struct outfile *outfile_find(struct outfile_set *set, const char *name);
 *	int outfile_open(struct outfile_set *set, struct outfile **of,
 *			int flags, const struct outfile_writer *w);
 *	void outfile_release(struct outfile_set *set, struct outfile *of,
 *			bool writable);
 *	ssize_t outfile_write(struct outfile_set *set, struct outfile *of,
 *			const void *buf, size_t size, off_t off);
 *	int outfile_truncate(struct outfile_set *set, struct outfile *of, off_t size);
 *	int outfile_flush(struct outfile_set *set, struct outfile *of, bool ends);
int outfile_flush_begin(struct outfile_set *set, struct outfile *of, bool ends,
		struct outfile_submission *sub);
int outfile_submission_begin(struct outfile_set *set, struct outfile *of, const char *name,
		struct outfile_submission *sub);
int outfile_submission_run(const struct outfile_set *set, struct outfile_submission *sub);
int outfile_submission_end(struct outfile_set *set, struct outfile_submission *sub, int r);
 *	int outfile_unlink(struct outfile_set *set, const char *name);
 *	int outfile_rename(struct outfile_set *set, const char *from,
 *			const char *to, bool noreplace);
 *	void outfile_expire(struct outfile_set *set);
 *	void outfile_set_senders(struct outfile_set *set, const struct cfg *cfg);
void outfile_set_free(struct outfile_set *set);
 * DESCRIPTION
 *	A file created in outbox/ lives in memory while it is small (a
 *	memfd), else in a temporary of the spool without a name
 *	(spool_tmpfile_unnamed(): O_TMPFILE in tmp/).  Either
 *	way only a descriptor is kept, so a killed daemon leaves nothing
 *	behind; a draft is not durable before its close in both.  A draft
 *	in memory moves to tmp/ (copied, then dup3(2)'d onto the same
 *	descriptor, so a read under way sees the same bytes) before a write
 *	or truncation that would make it larger than set->mem_draft_max,
 *	make the drafts in memory hold more than set->mem_total_max bytes,
 *	or leave the spool's filesystem less free space (statvfs f_bavail)
 *	than those drafts plus set->mem_reserve, or when that much cannot be
 *	allocated in tmp/ (the room probe below): near a full disk or a
 *	quota the write then fails in tmp/ with -ENOSPC or -EDQUOT, as it did
 *	before drafts lived in memory, and the shell that wrote it says so.
 *	The room probe: statvfs(2) knows nothing of quotas (the user and
 *	group quotas of the spool's owner, to whom the spool's files are
 *	given; a btrfs qgroup of the spool's subvolume), so the set asks the
 *	filesystem the way the message will use it: fallocate(2) of those
 *	bytes in an unlinked file of tmp/ that belongs to the spool's owner,
 *	given back at once (ftruncate to 0).  An answer holds for
 *	OUTFILE_ROOM_TTL_MS for that size or less (a refusal for that size
 *	or more), so a burst of drops costs one probe a second.  Where
 *	fallocate is not supported (EOPNOTSUPP), statvfs alone decides.
 *	outfile_set_init() sets the three to OUTFILE_MEM_DRAFT_MAX,
 *	OUTFILE_MEM_TOTAL_MAX and OUTFILE_MEM_RESERVE; a memfd_create(2) that
 *	fails (seccomp, an old kernel) puts every later draft in tmp/, logged
 *	once (event=outbox-drafts-on-disk).  Why memory: ext4 without a
 *	journal skips recently freed inodes when it allocates one, so a
 *	temporary made and freed per drop slowed every create in tmp/, and
 *	the group commit's syncfs(2) wrote the other writers' drafts to disk
 *	for nothing.
 *	It is a message to send once it is closed: outbox_submit() queues it
 *	durably as sendmail -t would, or refuses it with the errno of the SMTP
 *	reply a server would have given.  The submission names the file, its
 *	writer's uid and the set's hostname (outfile_set_init(); the caller
 *	keeps it alive), which the queued message's Received: and
 *	Message-ID: headers record; the envelope's origin is
 *	"fs outbox/<name> uid=<uid> user=<login>", and Received: names the
 *	login too.
 *
 *	outfile_set_senders() gives the set the sender rule of Unix users
 *	(unixuser.h; the caller keeps cfg alive): from then on a writer whose
 *	login is not in [sendmail] trusted_users may name only its own
 *	address, login@sender_domain, as From: (or Sender:); any other makes
 *	the write that completes the header section fail with -EPERM (553
 *	5.7.1), as every other refusal.  The user the daemon runs as (its
 *	effective uid when outfile_set_senders() is called) is free of the
 *	rule too: it owns the spool and could queue anything itself, and
 *	without allow_other it is the mount's one user.  Without it (unit
 *	tests) any writer may choose its sender.
 *
 *	An entry is in one of three states:
 *
 *	  WRITING    a draft.  outfile_write() checks it as it grows: the
 *	             write that completes the header section (the first empty
 *	             line, or a first line that is empty) runs the header
 *	             checks of a submission (outbox_parse_headers(): sender,
 *	             recipients, addresses, "not a message"), and the write
 *	             that goes past max_size, or past OUTBOX_MAX_HEADER
 *	             without an end of the header section, is refused (EFBIG).
 *	             A refusal makes the entry REFUSED.
 *	  SUBMITTED  queued.  The name stays for OUTFILE_LINGER_SECONDS after
 *	             its last close (at most OUTFILE_SUBMITTED_MAX such names,
 *	             the oldest go first), so that install, cp -p, chmod and
 *	             touch -r, which touch a file after they closed it, work:
 *	             stat, read, chmod, chown and utimens show or change the
 *	             name's attributes only and never send again.  Writing to
 *	             it, or opening it for writing without O_TRUNC (>>, 'a',
 *	             'r+'), is -EBUSY; an open with O_TRUNC is a new message
 *	             that replaces the name (outfile_open() returns the new
 *	             entry).  outfile_unlink() removes the name, not the
 *	             queued message.
 *	  REFUSED    refused at submission: the bytes written so far (up to
 *	             max_size) are kept as failed/<id> with a record that says
 *	             why (outbox_reject()), logged, and every later write and
 *	             close returns the refusal's errno.  The name goes at its
 *	             last close; a truncation to 0 starts a new draft.
 *
 *	When the message ends: every close(2) of a descriptor is a FLUSH, and
 *	the caller (spoolfs) says whether this one ends the message: the
 *	close of the last descriptor that the process that opened the file
 *	for writing (writer.pid) holds on it.  Then close(2) returns the
 *	result of the submission.  The closes of copies end nothing: a child
 *	that inherited the descriptor ("{ cat a; cat b; } > outbox/f"), a
 *	shell's dup2 around "echo x >&3", the first descriptor of "> f".  If
 *	the last handle is released and the draft was never ended that way
 *	(the opener closed before a child wrote), the submission happens
 *	then, with nobody to tell but the log and failed/.  A draft of 0
 *	bytes at its end is refused with -ENODATA (touch, ": > f", a write of
 *	nothing) and logged at its release; it leaves nothing in failed/
 *	(there is nothing to keep).
 *
 *	Writers: at most one open file handle that may write (dup'ed
 *	descriptors and forked children share that one); a second open for
 *	writing while it is open is -EBUSY.  Handles that only read are
 *	counted in refs.
 *
 *	A name starting with '.' is held: it is not checked while written,
 *	closing it submits nothing, and it stays (listed, in tmp/) after its
 *	last close, because editors and rsync write a dotfile and rename it
 *	when complete.  outfile_rename() from a held name to a sendable one
 *	submits it; if the submission is refused the rename fails with its
 *	errno, the entry stays under its held name, REFUSED, and failed/ has
 *	it.  Held entries last as long as this process.
 *
 *	outfile_unlink() drops an entry (a draft is then never submitted);
 *	its temporary is closed at its last close.  outfile_expire() forgets
 *	submitted names past their time; outfile_find() and outfile_create()
 *	call it.
 *
 *	Every outcome is logged: event=outbox-submitted id=... name=...,
 *	event=outbox-rejected name=... errno=... reply="..." why="..."
 *	id=<failed/ record> (or kept=no error=... when not even failed/
 *	could take it), event=outbox-dropped, event=outbox-discarded.
 * ERRORS
 *	0 (or a byte count) or -errno: -ENOENT no such entry, -EEXIST,
 *	-ENFILE more than OUTFILE_MAX entries, -EBUSY (a second writer, or a
 *	submitted name opened to write without O_TRUNC), -EFBIG, -ENODATA,
 *	the errors of spool_tmpfile_unnamed(), pwrite(2), ftruncate(2), and those
 *	outbox_submit() documents (-EBADMSG, -EDESTADDRREQ, -EINVAL, -ENOSPC,
 *	-EIO, ...).
 * THREADS
 *	Not thread-safe: every call but outfile_submission_run() must hold
 *	the caller's lock over the set (spoolfs.c: fs->lock).  The syncs of a
 *	submission need not hold it: outfile_flush_begin() returns 1 when
 *	this close ends the message, with sub filled and the entry
 *	COMMITTING; the caller lets its lock go, runs
 *	outfile_submission_run() (outbox_submit(): it reads only sub, the
 *	entry's descriptor and the set's constant fields), takes the lock
 *	again and calls outfile_submission_end(), which makes the entry
 *	SUBMITTED or REFUSED and returns what close(2) returns.  Meanwhile
 *	the entry stays in the set (the flushing handle holds a reference):
 *	writes and truncations are -EBUSY as after a submission, other
 *	closes end nothing, unlink and rename change only its name.
 *	outfile_flush() is the three steps under one lock.  A refusal, a
 *	submission at the last release and a rename that submits still
 *	sync under the lock (see spoolfs.h).
 */
#ifndef SPOOLGATE_FS_OUTFILE_H
#define SPOOLGATE_FS_OUTFILE_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "addr.h"
#include "aliases.h"
#include "cfg.h"
#include "spool.h"
#include "unixuser.h"

#define OUTFILE_MAX		1024	/* entries in outbox/ at once (each holds an fd) */
#define OUTFILE_SUBMITTED_MAX	64	/* submitted names kept after their last close */
#define OUTFILE_LINGER_SECONDS	60	/* ... and for how long */
#define OUTFILE_MEM_DRAFT_MAX	(1u << 20)	/* a draft larger than this goes to tmp/ */
#define OUTFILE_MEM_TOTAL_MAX	(64u << 20)	/* bytes of all the drafts in memory */
#define OUTFILE_MEM_RESERVE	(16u << 20)	/* free space kept on the spool's filesystem */
#define OUTFILE_ROOM_TTL_MS	1000	/* how long the room probe's answer holds */

enum outfile_state {
	OUTFILE_WRITING,
	OUTFILE_COMMITTING,	/* its end is being submitted, without the caller's lock */
	OUTFILE_SUBMITTED,
	OUTFILE_REFUSED
};

/* Who opens a file for writing: the process whose close ends the message. */
struct outfile_writer {
	pid_t		pid;		/* process (thread group) id */
	uid_t		uid;
	gid_t		gid;
};

/* The sender rule of a writer (outfile_set_senders()). */
struct outfile_sender {
	char		login[UNIXUSER_LOGIN_MAX];	/* its login name, "uid<N>" without one */
	char		own[ADDR_MAX];	/* the one sender it may use; "": any (trusted, no rule) */
};

struct outfile {
	char	       *name;		/* its name in outbox/ */
	int		fd;		/* O_RDWR on the memfd or the temporary (unlinked) */
	bool		in_memory;	/* fd is a memfd */
	off_t		mem_size;	/* in_memory: its size, counted in set->mem_bytes */
	enum outfile_state state;
	unsigned	refs;		/* open file handles */
	unsigned	writers;	/* of which may write: 0 or 1 */
	bool		unlinked;	/* dropped: never submitted */
	int		refusal;	/* REFUSED: -errno */
	struct outfile_writer writer;	/* the last one that opened it to write */
	struct outfile_sender sender;	/* ... and its rule */
	off_t		head_scanned;	/* [0, head_scanned) holds no end of the header */
	off_t		head_end;	/* 0, or just past the empty line, checked */
	struct timespec	submitted;	/* CLOCK_MONOTONIC, SUBMITTED */
	mode_t		mode;		/* permission bits shown */
	uid_t		uid;		/* owner shown: the creator */
	gid_t		gid;
	struct outfile *next;
};

struct outfile_set {
	struct spool   *spool;
	unsigned long	max_size;
	const char     *hostname;	/* for Received: and Message-ID: (the caller's, not copied) */
	struct commitgroup *group;	/* submissions share their syncs (NULL: each its own) */
	const struct cfg *senders;	/* the sender rule's configuration, or NULL (no rule) */
	uid_t		self;		/* the daemon's user, free of the rule */
	struct aliases_source *aliases;	/* [aliases] file (aliases.h), or NULL; owned by the set */
	const struct cfg *cfg;		/* with aliases: local domains, mailboxes, max_recipients */
	struct outfile *head;
	size_t		count;		/* entries, dropped ones still open included */
	bool		mem_drafts;	/* new drafts go to memory (false once memfd_create fails) */
	unsigned long long mem_bytes;	/* the drafts in memory hold this many bytes */
	unsigned long long mem_draft_max, mem_total_max, mem_reserve;	/* see DESCRIPTION */
	int		room_fd;	/* the room probe's file in tmp/; -1: not made yet */
	bool		room_unsupported;	/* fallocate(2) not supported there: statvfs alone */
	unsigned long long room_ok;	/* the probe found this many bytes fit (0: none known) */
	struct timespec	room_ok_at;	/* ... then (CLOCK_MONOTONIC) */
	unsigned long long room_refused;	/* ... that this many did not (0: none known) */
	struct timespec	room_refused_at;	/* ... then */
	int		room_errno;	/* ... and why: ENOSPC, EDQUOT, EFBIG */
};

/* The end of a message, submitted without the caller's lock (see THREADS). */
struct outfile_submission {
	struct outfile *of;		/* COMMITTING until outfile_submission_end() */
	char	       *name;		/* a copy: the entry may be renamed meanwhile */
	int		fd;
	uid_t		uid;
	struct outfile_sender sender;	/* a copy of the writer's rule */
	char		id[SPOOL_ID_MAX];	/* of the queued message */
	char		why[512];	/* of a refusal */
};

void outfile_set_init(struct outfile_set *set, struct spool *spool, unsigned long max_size,
		const char *hostname);
void outfile_set_senders(struct outfile_set *set, const struct cfg *cfg);
void outfile_set_free(struct outfile_set *set);

bool outfile_name_is_held(const char *name);
struct outfile *outfile_find(struct outfile_set *set, const char *name);
int outfile_create(struct outfile_set *set, const char *name, mode_t mode,
		const struct outfile_writer *w, bool writable, struct outfile **out);
int outfile_open(struct outfile_set *set, struct outfile **of, int flags,
		const struct outfile_writer *w);
void outfile_release(struct outfile_set *set, struct outfile *of, bool writable);

ssize_t outfile_write(struct outfile_set *set, struct outfile *of, const void *buf,
		size_t size, off_t off);
int outfile_truncate(struct outfile_set *set, struct outfile *of, off_t size);
int outfile_stat(const struct outfile *of, struct stat *st);

int outfile_flush(struct outfile_set *set, struct outfile *of, bool ends);
int outfile_flush_begin(struct outfile_set *set, struct outfile *of, bool ends,
		struct outfile_submission *sub);
int outfile_submission_begin(struct outfile_set *set, struct outfile *of, const char *name,
		struct outfile_submission *sub);
int outfile_submission_run(const struct outfile_set *set, struct outfile_submission *sub);
int outfile_submission_end(struct outfile_set *set, struct outfile_submission *sub, int r);
int outfile_unlink(struct outfile_set *set, const char *name);
int outfile_rename(struct outfile_set *set, const char *from, const char *to, bool noreplace);
void outfile_expire(struct outfile_set *set);

#endif
