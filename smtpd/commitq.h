/*
 * NAME
 *	commitq - the committer thread: group commit off the event loop
 * SYNOPSIS
 *	#include "commitq.h"
 * DESCRIPTION
 *	Disk syncs must never stall the event loop.  Sessions (end of DATA)
 *	and the relay (end of a delivery) hand their commit to this queue.
 *	One committer thread takes every job waiting at that moment (a batch)
 *	and runs, for the whole batch:
 *
 *	    start(arg)              each job (if set): start writeback of its files,
 *	                            so the disk works on the whole batch at once
 *	    prepare(arg)            each job: write and fsync its files (on several
 *	                            threads at once, so the flushes overlap)
 *	    spool_fs_sync()         once, if a prepared job has sync_fs set: its
 *	                            prepare wrote its files without syncing them,
 *	                            and one syncfs(2) makes them all durable
 *	                            before any is published (a failure is the
 *	                            result of every such job)
 *	    publish(arg, dirs)      each prepared job: link/rename into place
 *	    spool_dirset_sync(dirs) once: each directory fsync'd once
 *	    unpublish(arg)          each job whose own publish failed (its partial
 *	                            names go), and every published job if the sync failed
 *	    release(arg, result)    each job (if set), whatever its result (0 when
 *	                            its names are durable): slow clean-up that need
 *	                            not be synced nor wait in done() on the loop
 *	                            (the last close of an unlinked file frees its
 *	                            blocks; a claim left beside a record in sent/),
 *	                            on several threads at once
 *
 *	and then delivers every job's result to done(arg, result) on the event
 *	loop thread (0 or -errno).  Under load batches grow, so many sessions
 *	share each directory sync.
 *
 *	sync_fs is for many small files finished at once (the relay's records):
 *	one sync of the spool's filesystem costs about what one fdatasync does,
 *	where each file's own would cost a journal commit of its own.  Set it
 *	only when commitq_fs_sync_available() says the spool's filesystem
 *	allows it (spool_fs_sync_open()); otherwise prepare syncs each file.
 *
 *	commitq_submit() never blocks on disk.  The job struct is owned by the
 *	caller and must stay valid until done() ran; done() may free it.  done()
 *	must not assume that whatever submitted the job still exists: look
 *	it up by id (a session may have been closed meanwhile).
 *
 *	commitq_free() stops accepting jobs, waits for the jobs already
 *	submitted, runs their done() callbacks, and joins the thread.
 * THREADS
 *	commitq_submit() and commitq_free() from the event loop thread only.
 *	start/publish/unpublish run on the committer thread, prepare and
 *	release on the committer or one of its helper threads (they must be
 *	thread-safe across distinct jobs); done on the loop.
 */
#ifndef SPOOLGATE_COMMITQ_H
#define SPOOLGATE_COMMITQ_H

#include <stdbool.h>
#include <event2/event.h>
#include "../common/spool.h"

struct commitq;

struct commitq_job {
	int	      (*start)(void *arg);		/* may be NULL */
	int	      (*prepare)(void *arg);
	int	      (*publish)(void *arg, struct spool_dirset *dirs);
	void	      (*unpublish)(void *arg);		/* may be NULL */
	void	      (*release)(void *arg, int result);	/* may be NULL */
	void	      (*done)(void *arg, int result);
	void	       *arg;
	bool		sync_fs;	/* prepare left its files unsynced: see above */
	/* private to commitq */
	int		result;
	int		published;
	struct commitq_job *next;
};

int commitq_new(struct event_base *base, struct spool *spool, struct commitq **out);
int commitq_submit(struct commitq *q, struct commitq_job *job);	/* 0 or -ESHUTDOWN */
void commitq_free(struct commitq *q);
/* Whether a job may set sync_fs: the spool's filesystem syncs through (spool_fs_sync_open()). */
bool commitq_fs_sync_available(const struct commitq *q);

/* Statistics for logs and benchmarks. */
enum commitq_phase { COMMITQ_PREPARE, COMMITQ_FS_SYNC, COMMITQ_PUBLISH, COMMITQ_DIR_SYNC, COMMITQ_RELEASE,
	COMMITQ_PHASES };
struct commitq_stats {
	unsigned long long jobs, batches, max_batch, fs_syncs;
	unsigned long long phase_us[COMMITQ_PHASES];	/* time in each phase, all batches */
	unsigned long long max_batch_us;		/* the longest batch */
};
void commitq_get_stats(struct commitq *q, struct commitq_stats *out);

#endif
