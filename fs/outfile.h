/*
 * NAME
 *	outfile - the files being written in outbox/
 * SYNOPSIS
 *	#include "outfile.h"
 *
 *	void outfile_set_init(struct outfile_set *set, struct spool *spool,
 *			unsigned long max_size, const char *hostname);
 *	int outfile_create(struct outfile_set *set, const char *name,
 *			mode_t mode, uid_t uid, gid_t gid, struct outfile **out);
 *	struct outfile *outfile_find(struct outfile_set *set, const char *name);
 *	void outfile_open(struct outfile *of);
 *	void outfile_release(struct outfile_set *set, struct outfile *of);
 *	ssize_t outfile_write(struct outfile_set *set, struct outfile *of,
 *			const void *buf, size_t size, off_t off);
 *	int outfile_truncate(struct outfile_set *set, struct outfile *of, off_t size);
 *	int outfile_submit(struct outfile_set *set, struct outfile *of);
 *	int outfile_unlink(struct outfile_set *set, const char *name);
 *	int outfile_rename(struct outfile_set *set, const char *from,
 *			const char *to, bool noreplace);
 *	void outfile_set_free(struct outfile_set *set);
 * DESCRIPTION
 *	A file created in outbox/ lives in a temporary of the spool (made in
 *	tmp/ by spool_tmpfile(), O_EXCL|O_NOFOLLOW, and unlinked at once: only
 *	its descriptor is kept, so a killed daemon leaves nothing behind and
 *	tmp/ holds nothing once a file is closed).  It is a message to send
 *	once it is closed: outfile_submit() hands its fd
 *	to outbox_submit(), which queues it durably as sendmail -t would, or
 *	refuses it with the errno of the SMTP reply a server would have given.
 *	The submission names the file, its creator's uid and the set's
 *	hostname (outfile_set_init(); the caller keeps it alive), which the
 *	queued message's Received: and Message-ID: headers record.
 *
 *	The life of an entry:
 *	  - outfile_create() makes it (one open handle); outfile_open() counts
 *	    each further open, outfile_release() each close.  The entry is
 *	    listed in outbox/ while it is open.
 *	  - outfile_write()/outfile_truncate() change it and mark it dirty.
 *	    Past max_size: -EFBIG.  A failed write is sticky: the entry will
 *	    not be submitted (a partial message must never be sent) until it
 *	    is truncated to 0 and written again.
 *	  - outfile_submit() (at FLUSH, i.e. close(2)) submits a dirty entry
 *	    and remembers the result; submitting an entry that has not changed
 *	    since returns that result again and queues nothing (dup'ed file
 *	    descriptors flush once each).  An entry never written is not
 *	    submitted (touch, ": >"): 0.
 *	  - A name starting with '.' is held: closing it submits nothing and
 *	    the entry stays (listed, in tmp/) after its last close, because
 *	    editors and rsync write a dotfile and rename it when complete.
 *	    outfile_rename() from a held name to a sendable one submits it
 *	    (unless it was submitted already and not changed since); if the
 *	    submission fails the rename fails with its errno and nothing
 *	    changes, and a later rename tries again.  Held entries last as long as this process: a restart
 *	    loses them (an editor's swap file, an rsync transfer in progress).
 *	  - outfile_unlink() drops an entry: never submitted; its temporary is
 *	    closed at its last close.
 *	  - An entry that is not held is removed at its last close.
 *
 *	Every outcome is logged: event=outbox-submitted id=... name=...,
 *	event=outbox-rejected name=... errno=... reply="..." why="...",
 *	event=outbox-dropped, event=outbox-discarded.
 * ERRORS
 *	0 (or a byte count) or -errno: -ENOENT no such entry, -EEXIST,
 *	-ENFILE more than OUTFILE_MAX entries, -EFBIG, the errors of
 *	spool_tmpfile(), pwrite(2), ftruncate(2), and those outbox_submit()
 *	documents (-EBADMSG, -EDESTADDRREQ, -EINVAL, -ENOSPC, -EIO, ...).
 * THREADS
 *	Not thread-safe: the set belongs to the FUSE session loop thread.
 *	outfile_submit() blocks on disk syncs (see spoolfs.h).
 */
#ifndef SPOOLGATE_FS_OUTFILE_H
#define SPOOLGATE_FS_OUTFILE_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "spool.h"

#define OUTFILE_MAX	1024	/* entries in outbox/ at once (each holds an fd) */

struct outfile {
	char	       *name;		/* its name in outbox/ */
	int		fd;		/* O_RDWR on the temporary (unlinked) */
	unsigned	refs;		/* open file handles */
	bool		dirty;		/* changed since the last submission */
	bool		unlinked;	/* dropped: never submitted */
	int		write_error;	/* sticky: 0 or -errno of a failed change */
	int		result;		/* of the last submission: 0 or -errno */
	mode_t		mode;		/* permission bits shown */
	uid_t		uid;		/* owner shown: the creator */
	gid_t		gid;
	struct outfile *next;
};

struct outfile_set {
	struct spool   *spool;
	unsigned long	max_size;
	const char     *hostname;	/* for Received: and Message-ID: (the caller's, not copied) */
	struct outfile *head;
	size_t		count;		/* entries, dropped ones still open included */
};

void outfile_set_init(struct outfile_set *set, struct spool *spool, unsigned long max_size,
		const char *hostname);
void outfile_set_free(struct outfile_set *set);

bool outfile_name_is_held(const char *name);
struct outfile *outfile_find(struct outfile_set *set, const char *name);
int outfile_create(struct outfile_set *set, const char *name, mode_t mode, uid_t uid,
		gid_t gid, struct outfile **out);
void outfile_open(struct outfile *of);
void outfile_release(struct outfile_set *set, struct outfile *of);

ssize_t outfile_write(struct outfile_set *set, struct outfile *of, const void *buf,
		size_t size, off_t off);
int outfile_truncate(struct outfile_set *set, struct outfile *of, off_t size);
int outfile_stat(const struct outfile *of, struct stat *st);

int outfile_submit(struct outfile_set *set, struct outfile *of);
int outfile_unlink(struct outfile_set *set, const char *name);
int outfile_rename(struct outfile_set *set, const char *from, const char *to, bool noreplace);

#endif
