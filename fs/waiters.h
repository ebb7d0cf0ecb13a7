/*
 * NAME
 *	waiters - FUSE requests answered later: inbox/<mailbox>/.next and
 *	outbox/wait/
 * SYNOPSIS
 *	#define FUSE_USE_VERSION 35
 *	#include <fuse_lowlevel.h>
 *	#include "waiters.h"
 *
 *	int waiters_new(struct spool *spool, bool keep_sent,
 *			struct waiters **out);
 *	int waiters_start(struct waiters *w);
 *	void waiters_stop(struct waiters *w);
 *	void waiters_free(struct waiters *w);
 *
 *	bool waiters_next_name(const char *name, long *timeout);
 *	struct waiters_reader *waiters_reader_new(const char *mailbox,
 *			long timeout);
 *	void waiters_reader_free(struct waiters_reader *r);
 *	void waiters_read(struct waiters *w, struct waiters_reader *r,
 *			fuse_req_t req, size_t size, off_t off);
 *
 *	void waiters_outcome(struct waiters *w, fuse_req_t req,
 *			const char *id, unsigned timeout);
 *
 *	void waiters_spool_changed(struct waiters *w, const char *dir,
 *			const char *name);
 * DESCRIPTION
 *	Scripts wait for the spool without polling.  A request that must
 *	wait is kept (its fuse_req_t) and answered later, from the spool
 *	watcher's thread when the spool changes (watch.h), or from this
 *	module's thread at its deadline, so that no worker thread of the
 *	session is held while it waits.
 *
 *	Reading inbox/<mailbox>/.next (waiters_read()) answers the name of
 *	the oldest message in the mailbox's new/ directory, one line
 *	("<name>\n"), as soon as there is one: at once when new/ holds a
 *	message, else when one arrives.  The oldest is the one with the
 *	smallest Maildir time (the seconds that start its name, then the
 *	microseconds after ".M"), then by name; dotfiles and names with a
 *	control character (which one line cannot carry) are not answered.
 *	The answer belongs to the open file (waiters_reader_new() at open):
 *	later reads of that open file read the same line, then end of file.  A message stays the
 *	answer until it leaves new/ (rm, or a reader moving it to cur/),
 *	so the loop
 *
 *	    while f=$(cat inbox/bob/.next); do process "inbox/bob/$f"; rm "inbox/bob/$f"; done
 *
 *	handles each message once, in order, however fast they come and
 *	whether or not it ran when they came: nothing is remembered between
 *	two opens.  Two readers of one mailbox are given the same message.
 *
 *	The name says how long to wait: ".next" waits as long as it takes,
 *	".next.<N>" at most N seconds (0 to WAITERS_TIMEOUT_MAX; ".next.0"
 *	only looks); waiters_next_name() parses it (timeout -1: forever).
 *	At the deadline the read fails with ETIMEDOUT, not end of file:
 *	cat then exits non-zero (the loop above ends) instead of printing
 *	an empty name that a script would take for a message.
 *
 *	waiters_outcome() answers the FLUSH that ends a submission to
 *	outbox/wait/ (close(2) returns its answer) with what became of the
 *	queued message id: 0 when its record reaches sent/ (or vanishes
 *	with keep_sent = no: delivered, not kept), the errno of the first
 *	refused recipient's reply when it reaches failed/
 *	(errmap_errno_from_reply_text(): 550 5.1.1 is ENOENT, 552 5.2.2
 *	EDQUOT, ...), ETIMEDOUT after timeout seconds (a deferral keeps it
 *	waiting; the message stays queued and is delivered later).
 *
 *	A request whose caller is interrupted (Ctrl-C, kill: FUSE_INTERRUPT)
 *	is answered EINTR at once (fuse_req_interrupt_func()), so the
 *	process can go and the mount unmounts.  waiters_stop() answers
 *	every request still waiting ECONNABORTED (the daemon stops; a
 *	waited submission stays queued) and joins the thread.
 *
 *	waiters_spool_changed() is the spool watcher's news (the arguments
 *	of watch_fn): a name changed in inbox/<mailbox> wakes that
 *	mailbox's readers, one in queue, sent or failed the submission of
 *	that id; dir NULL (events lost) looks at every waiter.  The thread
 *	also looks at every waiter each WAITERS_RESCAN_SECONDS, for what
 *	inotify cannot see (a mailbox's new/ made and written before its
 *	watch was added, another host on a shared spool).
 *
 *	Every request is answered exactly once.  Log lines: event=wait-next
 *	mailbox=... name=..., event=wait-outcome id=... errno=...,
 *	event=wait-timeout, event=wait-interrupted (debug).
 * ERRORS
 *	waiters_new(), waiters_start(): -ENOMEM, -errno of
 *	pthread_create(3).  Answers: ETIMEDOUT, EINTR, ECONNABORTED, ENFILE
 *	(more than WAITERS_MAX requests waiting), EIO (the mailbox cannot
 *	be read, a failed/ record that does not parse or names no refused
 *	recipient), and the errnos of the error table for a refusal.
 * OWNERSHIP
 *	A reader belongs to the open file that made it: free it at RELEASE
 *	(the kernel sends no RELEASE while a READ of the file is unanswered,
 *	and this module keeps no pointer to a reader once it answered).
 *	waiters_read() and waiters_outcome() take the request: the caller
 *	must not answer it.  spool must outlive w.
 * THREADS
 *	Every function but waiters_new(), waiters_start(), waiters_stop()
 *	and waiters_free() may be called from any thread.  One mutex (w->lock)
 *	protects the list of waiting requests and the answers of readers;
 *	requests are answered after it is let go.  It is taken by FUSE
 *	request threads, the watch thread, libfuse's interrupt handling
 *	(which holds the request's own lock: nothing in this module waits for
 *	that lock while holding w->lock) and this module's thread; callers
 *	may hold their own locks (spoolfs.c's fs->lock) when they call.
 */
#ifndef SPOOLGATE_FS_WAITERS_H
#define SPOOLGATE_FS_WAITERS_H

#include <stdbool.h>
#include <sys/types.h>

#include "spool.h"

#define WAITERS_NEXT_NAME	".next"
#define WAITERS_TIMEOUT_MAX	604800L		/* .next.<N>: at most a week */
#define WAITERS_MAX		4096		/* requests waiting at once */
#define WAITERS_RESCAN_SECONDS	10		/* the safety net under inotify */

struct waiters;
struct waiters_reader;

int waiters_new(struct spool *spool, bool keep_sent, struct waiters **out);
int waiters_start(struct waiters *w);
void waiters_stop(struct waiters *w);
void waiters_free(struct waiters *w);

bool waiters_next_name(const char *name, long *timeout);
struct waiters_reader *waiters_reader_new(const char *mailbox, long timeout);
void waiters_reader_free(struct waiters_reader *r);
void waiters_read(struct waiters *w, struct waiters_reader *r, fuse_req_t req, size_t size,
		off_t off);

void waiters_outcome(struct waiters *w, fuse_req_t req, const char *id, unsigned timeout);

void waiters_spool_changed(struct waiters *w, const char *dir, const char *name);

#endif
