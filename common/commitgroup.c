/*
 * NAME
 *	commitgroup - group commit for threads that wait for their own commit
 * DESCRIPTION
 *	See commitgroup.h.  Leader and followers: the waiting messages are a
 *	list under lock; busy says a leader is publishing and syncing a batch
 *	taken off that list (without the lock); done wakes every waiter when
 *	a batch ends, and each either finds its result or leads the next one.
 *	New messages go in front of the list, so the part of it that a
 *	syncfs covers (the messages waiting when it started) is the list's
 *	tail from the head seen then.  Only a leader marks it, under lock,
 *	and only a later leader reads the mark, after it took the lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

#include "commitgroup.h"

/* A caller's message, on the caller's stack while it waits. */
struct commitgroup_entry {
	struct spool_msg	       *msg;
	int				result;
	bool				contents_durable;	/* a syncfs covered its files: see above */
	bool				self_checking;	/* may be published before its file is durable */
	bool				check_after_names;	/* so it was: checked after the names' sync */
	bool				published;
	bool				finished;
	struct commitgroup_entry       *next;
};

struct commitgroup {
	struct spool		       *spool;		/* constant */
	int				fs_sync_fd;	/* constant, or -1; the leader's alone */
	pthread_mutex_t			lock;
	pthread_cond_t			done;		/* a batch ended */
	struct commitgroup_entry       *waiting;	/* protected by lock */
	bool				busy;		/* protected by lock: a batch in progress */
	struct commitgroup_stats	stats;		/* protected by lock */
};

int
commitgroup_new(struct spool *spool, struct commitgroup **out)
{
	struct commitgroup *g = calloc(1, sizeof *g);
	int r;

	if (g == NULL)
		return -ENOMEM;
	g->spool = spool;
	if ((r = spool_fs_sync_open(spool)) >= 0)
		g->fs_sync_fd = r;
	else {
		g->fs_sync_fd = -1;
		log_info("commitgroup-fs-sync", "available=no why=\"%s\" "
		    "action=\"every message synced on its own\"",
		    r == -EOPNOTSUPP ? "not a filesystem whose syncfs writes through" : strerror(-r));
	}
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->done, NULL);
	*out = g;
	return 0;
}

/* Whether e can be published without a syncfs of its files first. */
static bool
commitgroup_needs_no_content_sync(const struct commitgroup_entry *e)
{
	return e->contents_durable || e->self_checking;
}

/*
 * One syncfs for the files of the batch that no earlier syncfs covered,
 * then each message's own writeback errors (an error another syncfs
 * consumed).  None when every such file is self-checking (a sealed inline
 * record, spool_msg_self_checking()): those are published unsynced, and
 * the names' syncfs makes file and name durable at once; their check
 * comes after it.
 */
static void
commitgroup_sync_contents(struct commitgroup *g, struct commitgroup_entry *batch)
{
	struct commitgroup_entry *e;
	bool synced = false;
	int r = 0;

	for (e = batch; e; e = e->next)
		if (!commitgroup_needs_no_content_sync(e)) {
			r = spool_fs_sync(g->fs_sync_fd);
			synced = true;
			pthread_mutex_lock(&g->lock);
			g->stats.content_syncs++;
			pthread_mutex_unlock(&g->lock);
			break;
		}
	for (e = batch; e; e = e->next) {
		if (!e->contents_durable && !synced)
			e->check_after_names = true;
		else
			e->result = r < 0 && !e->contents_durable ? r : spool_msg_commit_check(e->msg);
	}
}

/* After the names' syncfs: the writeback errors of files published unsynced. */
static void
commitgroup_check_after_names(struct commitgroup_entry *batch)
{
	struct commitgroup_entry *e;

	for (e = batch; e; e = e->next)
		if (e->check_after_names && e->published && (e->result = spool_msg_commit_check(e->msg)) < 0) {
			spool_msg_commit_unpublish(e->msg);
			e->published = false;
		}
}

/*
 * The batch's names durable with one syncfs, which also makes durable the
 * files of every message waiting when it starts: those skip the first
 * syncfs of the next batch.
 */
static int
commitgroup_sync_names_and_next(struct commitgroup *g)
{
	struct commitgroup_entry *next, *e;
	int r;

	pthread_mutex_lock(&g->lock);
	next = g->waiting;	/* later arrivals go in front of these */
	pthread_mutex_unlock(&g->lock);
	if ((r = spool_fs_sync(g->fs_sync_fd)) < 0)
		return r;
	pthread_mutex_lock(&g->lock);
	for (e = next; e; e = e->next)
		e->contents_durable = true;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

/* The leader's work, without the lock: contents durable, publish each, one sync for all names. */
static void
commitgroup_run_batch(struct commitgroup *g, struct commitgroup_entry *batch)
{
	struct spool_dirset *dirs = spool_dirset_new(g->spool);
	struct commitgroup_entry *e;
	int r;

	if (g->fs_sync_fd >= 0)
		commitgroup_sync_contents(g, batch);
	for (e = batch; e; e = e->next) {
		if (e->result < 0)
			continue;
		if (dirs == NULL) {
			e->result = -ENOMEM;
			continue;
		}
		if ((e->result = spool_msg_commit_publish(e->msg, dirs)) < 0)
			spool_msg_commit_unpublish(e->msg);	/* its partial names */
		else
			e->published = true;
	}
	if (dirs == NULL)
		return;
	r = g->fs_sync_fd >= 0 ? commitgroup_sync_names_and_next(g) : spool_dirset_sync(dirs);
	if (r < 0)
		for (e = batch; e; e = e->next)
			if (e->published) {
				spool_msg_commit_unpublish(e->msg);
				e->result = r;
			}
	if (r == 0)
		commitgroup_check_after_names(batch);
	spool_dirset_free(dirs);
}

static bool
commitgroup_any_covered(const struct commitgroup_entry *list)
{
	for (; list; list = list->next)
		if (list->contents_durable)
			return true;
	return false;
}

/*
 * Under lock: the next batch, taken off the waiting list.  Where a syncfs
 * covered some of the waiting messages, only those and the self-checking
 * ones: the others stay and are covered by this batch's second syncfs, so
 * that a batch under load costs one syncfs, not two.  Otherwise every
 * message waiting.
 */
static struct commitgroup_entry *
commitgroup_take_batch(struct commitgroup *g)
{
	struct commitgroup_entry *batch = NULL, **tail = &batch, **link = &g->waiting, *e;

	if (g->fs_sync_fd < 0 || !commitgroup_any_covered(g->waiting)) {
		batch = g->waiting;
		g->waiting = NULL;
		return batch;
	}
	while ((e = *link) != NULL) {
		if (!commitgroup_needs_no_content_sync(e)) {
			link = &e->next;
			continue;
		}
		*link = e->next;	/* stays in the order it came */
		e->next = NULL;
		*tail = e;
		tail = &e->next;
	}
	return batch;
}

static void
commitgroup_lead(struct commitgroup *g)
{
	struct commitgroup_entry *batch = commitgroup_take_batch(g), *e;
	unsigned long long n = 0;

	g->busy = true;
	pthread_mutex_unlock(&g->lock);
	commitgroup_run_batch(g, batch);
	pthread_mutex_lock(&g->lock);
	for (e = batch; e; e = e->next) {
		e->finished = true;
		n++;
	}
	g->stats.commits += n;
	g->stats.batches++;
	if (n > g->stats.max_batch)
		g->stats.max_batch = n;
	g->busy = false;
	pthread_cond_broadcast(&g->done);
}

int
commitgroup_commit(struct commitgroup *g, struct spool_msg *msg)
{
	struct commitgroup_entry self = { .msg = msg };
	int r;

	r = g->fs_sync_fd >= 0 ? spool_msg_commit_prepare_unsynced(msg) :
	    spool_msg_commit_prepare(msg);	/* its own syncs, overlapping others' */
	if (r < 0)
		return r;
	self.self_checking = g->fs_sync_fd >= 0 && spool_msg_self_checking(msg);
	pthread_mutex_lock(&g->lock);
	self.next = g->waiting;
	g->waiting = &self;
	while (!self.finished) {
		if (!g->busy)
			commitgroup_lead(g);	/* self too, unless taken or waiting for a syncfs */
		else
			pthread_cond_wait(&g->done, &g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return self.result;
}

void
commitgroup_get_stats(struct commitgroup *g, struct commitgroup_stats *out)
{
	pthread_mutex_lock(&g->lock);
	*out = g->stats;
	pthread_mutex_unlock(&g->lock);
}

void
commitgroup_free(struct commitgroup *g)
{
	if (g == NULL)
		return;
	if (g->fs_sync_fd >= 0)
		close(g->fs_sync_fd);
	pthread_cond_destroy(&g->done);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

bool
commitgroup_syncs_fs(const struct commitgroup *g)
{
	return g->fs_sync_fd >= 0;
}
