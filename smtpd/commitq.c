/*
 * NAME
 *	commitq - the committer thread: group commit off the event loop
 * SYNOPSIS
 *	See commitq.h.
 * DESCRIPTION
 *	The event loop appends jobs to the pending list and signals the
 *	condition variable.  The committer thread takes the WHOLE pending list
 *	as one batch, runs prepare for each job, publish for each prepared
 *	one, one spool_dirset_sync() for the batch, unpublish where needed,
 *	and appends the batch to the done list.  It then writes to an eventfd;
 *	the loop reads it and runs done() for each finished job, in the order
 *	the jobs were submitted.  While a batch syncs, new jobs pile up and
 *	become the next batch: the busier the server, the more messages share
 *	each directory fsync.
 *
 *	The prepare phase (each job's file syncs) runs on COMMITQ_SYNCERS
 *	helper threads and the committer together, so that the flushes of a
 *	batch overlap instead of queueing one behind the other: on a disk
 *	whose flush takes milliseconds, a batch of twenty would otherwise cost
 *	twenty flush times.  The start phase before it (writeback started for
 *	every job) and the publish phase after it are quick and run on the
 *	committer alone.
 *
 *	The release phase, after the directory sync, is shared out the same
 *	way: on a filesystem mounted with discard the last close of an unlinked
 *	data file (keep_sent = no) costs a synchronous discard, hundreds of
 *	microseconds, which on one thread (the loop's, or the committer's)
 *	would bound the rate of the whole relay.
 *
 *	Jobs with sync_fs (the relay's records) skip their own fdatasync in
 *	prepare; between the prepare and the publish phases the committer
 *	makes all of them durable with one spool_fs_sync() on a descriptor of
 *	its own (syncfs(2) reports a writeback error once per descriptor, so
 *	no other thread must consume it).  On this machine's ext4 a batch of
 *	40 records took 15-24 ms with an fdatasync each on five threads and
 *	4-7 ms with one syncfs (docs/benchmarks.md).
 *
 *	A job whose publish fails is unpublished at once (whatever part of it
 *	was linked into place goes away), like spool_msg_commit() does, so a
 *	failed job never leaves a partial delivery behind.
 *
 *	Locking: q->mu protects pending, done, stopping and the statistics.
 *	The batch being run and q->dirs belong to the committer thread alone.
 *	q->sync.mu protects the work list (jobs, n, next, left, phase) shared
 *	by the committer and the helper threads; a job is prepared by exactly
 *	one thread (and released by one), the one that took its index.  Lock order: never both.
 *	eventfd rather than event_active() from the thread, so that the
 *	wake-up does not depend on libevent's locking being switched on.
 * DIAGNOSTICS
 *	event=commitq-stats at shutdown: jobs, batches, max_batch, fs_syncs, the
 *	milliseconds spent in each phase of all batches (prepare_ms with start,
 *	fs_sync_ms, publish_ms, dir_sync_ms, release_ms) and max_batch_ms;
 *	event=commitq-error when the thread cannot be woken or a sync fails.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/log.h"
#include "../common/spool.h"
#include "commitq.h"

struct job_list {
	struct commitq_job     *head;
	struct commitq_job    **tail;
};

#define COMMITQ_SYNCERS	4	/* helper threads for the prepare phase */

/* The phases of a batch that are shared out among threads. */
enum sync_phase { SYNC_PREPARE, SYNC_RELEASE };

/* One such phase of one batch. */
struct syncers {
	pthread_t		thread[COMMITQ_SYNCERS];
	unsigned		nthreads;	/* started */
	pthread_mutex_t		mu;
	pthread_cond_t		work;		/* jobs to take, or stopping */
	pthread_cond_t		idle;		/* the last job of the batch is prepared */
	struct commitq_job    **jobs;		/* protected by mu */
	size_t			cap, n, next, left;
	enum sync_phase		phase;		/* what is done to the jobs of the list */
	bool			stopping;
};

struct commitq {
	struct event_base      *base;
	struct spool	       *spool;
	struct spool_dirset    *dirs;		/* committer thread only */
	pthread_t		thread;
	bool			thread_started;
	bool			syncers_started;
	int			efd;		/* committer -> loop: jobs are done */
	int			fs_sync_fd;	/* spool_fs_sync_open(), or -1: no job may set sync_fs */
	struct event	       *ev_done;

	pthread_mutex_t		mu;
	pthread_cond_t		cv;
	struct job_list		pending;	/* protected by mu */
	struct job_list		done;		/* protected by mu */
	bool			stopping;	/* protected by mu */
	struct commitq_stats	stats;		/* protected by mu */
	struct syncers		sync;
};

static void
list_init(struct job_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

static void
list_append(struct job_list *l, struct commitq_job *job)
{
	job->next = NULL;
	*l->tail = job;
	l->tail = &job->next;
}

/* Moves all of src to the end of dst. */
static void
list_splice(struct job_list *dst, struct job_list *src)
{
	if (src->head == NULL)
		return;
	*dst->tail = src->head;
	dst->tail = src->tail;
	list_init(src);
}

static void
block_signals(void)
{
	sigset_t all;

	/* Signals are the loop's business (evsignal). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* One job's share of a phase. */
static void
sync_one(enum sync_phase phase, struct commitq_job *job)
{
	if (phase == SYNC_PREPARE)
		job->result = job->prepare(job->arg);
	else
		job->release(job->arg, job->result);
}

/* Takes jobs of the current list and does the phase to them until none is left to take. Called with sy->mu held. */
static void
work_taken(struct syncers *sy)
{
	while (sy->next < sy->n) {
		struct commitq_job *job = sy->jobs[sy->next++];
		enum sync_phase phase = sy->phase;

		pthread_mutex_unlock(&sy->mu);
		sync_one(phase, job);
		pthread_mutex_lock(&sy->mu);
		if (--sy->left == 0)
			pthread_cond_signal(&sy->idle);
	}
}

static void *
syncer(void *arg)
{
	struct syncers *sy = arg;

	block_signals();
	pthread_mutex_lock(&sy->mu);
	for (;;) {
		while (!sy->stopping && sy->next >= sy->n)
			pthread_cond_wait(&sy->work, &sy->mu);
		if (sy->stopping)
			break;
		work_taken(sy);
	}
	pthread_mutex_unlock(&sy->mu);
	return NULL;
}

/* Whether the phase has anything to do to this job. */
static bool
sync_wants(enum sync_phase phase, const struct commitq_job *job)
{
	return phase == SYNC_PREPARE ? job->result == 0 : job->release != NULL;
}

/*
 * The phase for every job that wants it: prepare() of every job still
 * without error, or release() of every job that has one; on the committer
 * and the helpers at once.
 */
static void
sync_all(struct syncers *sy, enum sync_phase phase, struct commitq_job *batch, unsigned long long n)
{
	struct commitq_job *job, **grown;
	size_t count = 0;

	if (n > sy->cap) {
		if ((grown = realloc(sy->jobs, n * sizeof(*grown))) == NULL) {
			/* No room to share the work: do it alone. */
			for (job = batch; job != NULL; job = job->next)
				if (sync_wants(phase, job))
					sync_one(phase, job);
			return;
		}
		pthread_mutex_lock(&sy->mu);
		sy->jobs = grown;
		sy->cap = n;
		pthread_mutex_unlock(&sy->mu);
	}
	pthread_mutex_lock(&sy->mu);
	for (job = batch; job != NULL; job = job->next)
		if (sync_wants(phase, job))
			sy->jobs[count++] = job;
	sy->phase = phase;
	sy->n = count;
	sy->next = 0;
	sy->left = count;
	if (count > 1)
		pthread_cond_broadcast(&sy->work);
	work_taken(sy);
	while (sy->left > 0)
		pthread_cond_wait(&sy->idle, &sy->mu);
	sy->n = sy->next = 0;
	pthread_mutex_unlock(&sy->mu);
}

static void
syncers_start(struct syncers *sy)
{
	pthread_mutex_init(&sy->mu, NULL);
	pthread_cond_init(&sy->work, NULL);
	pthread_cond_init(&sy->idle, NULL);
	/* Fewer helpers than asked for still work: the committer prepares too. */
	while (sy->nthreads < COMMITQ_SYNCERS &&
	    pthread_create(&sy->thread[sy->nthreads], NULL, syncer, sy) == 0)
		sy->nthreads++;
}

static void
syncers_stop(struct syncers *sy)
{
	unsigned i;

	pthread_mutex_lock(&sy->mu);
	sy->stopping = true;
	pthread_cond_broadcast(&sy->work);
	pthread_mutex_unlock(&sy->mu);
	for (i = 0; i < sy->nthreads; i++)
		pthread_join(sy->thread[i], NULL);
	free(sy->jobs);
	pthread_cond_destroy(&sy->idle);
	pthread_cond_destroy(&sy->work);
	pthread_mutex_destroy(&sy->mu);
}

static unsigned long long
monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000 + (unsigned long long)ts.tv_nsec / 1000;
}

/* Microseconds since *t; *t becomes now. */
static unsigned long long
lap(unsigned long long *t)
{
	unsigned long long now = monotonic_us(), d = now - *t;

	*t = now;
	return d;
}

static void
add_phase_times(struct commitq *q, const unsigned long long us[COMMITQ_PHASES], unsigned long long total)
{
	int i;

	pthread_mutex_lock(&q->mu);
	for (i = 0; i < COMMITQ_PHASES; i++)
		q->stats.phase_us[i] += us[i];
	if (total > q->stats.max_batch_us)
		q->stats.max_batch_us = total;
	pthread_mutex_unlock(&q->mu);
}

/* One sync of the filesystem for every prepared job that left its files unsynced. */
static void
sync_unsynced(struct commitq *q, struct commitq_job *batch)
{
	struct commitq_job *job;
	unsigned long long waiting = 0;
	int r;

	for (job = batch; job != NULL; job = job->next)
		if (job->sync_fs && job->result == 0)
			waiting++;
	if (waiting == 0)
		return;
	if (q->fs_sync_fd < 0)
		r = -EOPNOTSUPP;	/* a job that did not ask commitq_fs_sync_available() */
	else
		r = spool_fs_sync(q->fs_sync_fd);
	pthread_mutex_lock(&q->mu);
	q->stats.fs_syncs++;
	pthread_mutex_unlock(&q->mu);
	if (r == 0)
		return;
	log_error("commitq-error", "op=syncfs jobs=%llu error=%d", waiting, -r);
	for (job = batch; job != NULL; job = job->next)
		if (job->sync_fs && job->result == 0)
			job->result = r;
}

/* The batch protocol of commitq.h; returns the batch size. */
static unsigned long long
run_batch(struct commitq *q, struct commitq_job *batch)
{
	unsigned long long us[COMMITQ_PHASES];
	struct commitq_job *job;
	unsigned long long n = 0, t = monotonic_us(), t0 = t;
	bool any_published = false;
	int r;

	for (job = batch; job != NULL; job = job->next, n++) {
		job->published = 0;
		job->result = job->start != NULL ? job->start(job->arg) : 0;
	}
	sync_all(&q->sync, SYNC_PREPARE, batch, n);
	us[COMMITQ_PREPARE] = lap(&t);
	sync_unsynced(q, batch);
	us[COMMITQ_FS_SYNC] = lap(&t);
	for (job = batch; job != NULL; job = job->next) {
		if (job->result != 0)
			continue;
		job->result = job->publish(job->arg, q->dirs);
		if (job->result == 0) {
			job->published = 1;
			any_published = true;
		} else if (job->unpublish != NULL) {
			job->unpublish(job->arg);
		}
	}
	us[COMMITQ_PUBLISH] = lap(&t);
	if (any_published && (r = spool_dirset_sync(q->dirs)) < 0) {
		log_error("commitq-error", "op=sync jobs=%llu error=%d", n, -r);
		for (job = batch; job != NULL; job = job->next) {
			if (!job->published)
				continue;
			if (job->unpublish != NULL)
				job->unpublish(job->arg);
			job->published = 0;
			job->result = r;
		}
	}
	us[COMMITQ_DIR_SYNC] = lap(&t);
	sync_all(&q->sync, SYNC_RELEASE, batch, n);
	us[COMMITQ_RELEASE] = lap(&t);
	add_phase_times(q, us, t - t0);
	return n;
}

static void
wake_loop(struct commitq *q)
{
	uint64_t one = 1;

	/* An eventfd counter only fails to take 1 when it is about to overflow. */
	while (write(q->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void *
committer(void *arg)
{
	struct commitq *q = arg;
	struct job_list batch;
	unsigned long long n;

	block_signals();

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->pending.head == NULL && !q->stopping)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->pending.head == NULL)
			break;			/* stopping, and nothing left */
		list_init(&batch);
		list_splice(&batch, &q->pending);
		pthread_mutex_unlock(&q->mu);

		n = run_batch(q, batch.head);

		pthread_mutex_lock(&q->mu);
		list_splice(&q->done, &batch);
		q->stats.jobs += n;
		q->stats.batches++;
		if (n > q->stats.max_batch)
			q->stats.max_batch = n;
		pthread_mutex_unlock(&q->mu);
		wake_loop(q);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Runs done() of every finished job, in submission order. */
static void
run_done(struct commitq *q)
{
	struct job_list done;
	struct commitq_job *job, *next;

	list_init(&done);
	pthread_mutex_lock(&q->mu);
	list_splice(&done, &q->done);
	pthread_mutex_unlock(&q->mu);
	for (job = done.head; job != NULL; job = next) {
		next = job->next;		/* done() may free the job */
		job->done(job->arg, job->result);
	}
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t count;

	(void)what;
	while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	run_done(arg);
}

int
commitq_new(struct event_base *base, struct spool *spool, struct commitq **out)
{
	struct commitq *q;
	int r;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -ENOMEM;
	q->base = base;
	q->spool = spool;
	q->efd = -1;
	q->fs_sync_fd = -1;
	list_init(&q->pending);
	list_init(&q->done);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	if ((q->dirs = spool_dirset_new(spool)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = spool_fs_sync_open(spool)) >= 0)
		q->fs_sync_fd = r;
	else
		log_info("commitq-fs-sync", "available=no why=\"%s\" action=\"every record synced on its own\"",
		    r == -EOPNOTSUPP ? "not a filesystem whose syncfs writes through" : strerror(-r));
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		r = -errno;
		goto fail;
	}
	if ((q->ev_done = event_new(base, q->efd, EV_READ | EV_PERSIST, done_cb, q)) == NULL ||
	    event_add(q->ev_done, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	syncers_start(&q->sync);
	q->syncers_started = true;
	if ((r = pthread_create(&q->thread, NULL, committer, q)) != 0) {
		r = -r;
		goto fail;
	}
	q->thread_started = true;
	*out = q;
	return 0;
fail:
	commitq_free(q);
	return r;
}

int
commitq_submit(struct commitq *q, struct commitq_job *job)
{
	pthread_mutex_lock(&q->mu);
	if (q->stopping) {
		pthread_mutex_unlock(&q->mu);
		return -ESHUTDOWN;
	}
	job->result = 0;
	job->published = 0;
	list_append(&q->pending, job);
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

bool
commitq_fs_sync_available(const struct commitq *q)
{
	return q->fs_sync_fd >= 0;
}

void
commitq_get_stats(struct commitq *q, struct commitq_stats *out)
{
	pthread_mutex_lock(&q->mu);
	*out = q->stats;
	pthread_mutex_unlock(&q->mu);
}

void
commitq_free(struct commitq *q)
{
	struct commitq_stats st;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	if (q->thread_started) {
		/* The thread finishes every job submitted before it stops. */
		pthread_join(q->thread, NULL);
		run_done(q);
		commitq_get_stats(q, &st);
		log_info("commitq-stats", "jobs=%llu batches=%llu max_batch=%llu fs_syncs=%llu prepare_ms=%llu "
		    "fs_sync_ms=%llu publish_ms=%llu dir_sync_ms=%llu release_ms=%llu max_batch_ms=%llu", st.jobs,
		    st.batches, st.max_batch, st.fs_syncs, st.phase_us[COMMITQ_PREPARE] / 1000,
		    st.phase_us[COMMITQ_FS_SYNC] / 1000, st.phase_us[COMMITQ_PUBLISH] / 1000,
		    st.phase_us[COMMITQ_DIR_SYNC] / 1000, st.phase_us[COMMITQ_RELEASE] / 1000,
		    st.max_batch_us / 1000);
	}
	if (q->syncers_started)
		syncers_stop(&q->sync);
	if (q->ev_done != NULL)
		event_free(q->ev_done);
	if (q->efd >= 0)
		close(q->efd);
	if (q->fs_sync_fd >= 0)
		close(q->fs_sync_fd);
	spool_dirset_free(q->dirs);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}
