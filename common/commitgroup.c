/*
 * NAME
 *	commitgroup - group commit for threads that wait for their own commit
 * DESCRIPTION
 *	See commitgroup.h.  Leader and followers: the waiting messages are a
 *	list under lock; busy says a leader is publishing and syncing a batch
 *	taken off that list (without the lock); done wakes every waiter when
 *	a batch ends, and each either finds its result or leads the next one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "spool.h"

#include "commitgroup.h"

/* A caller's message, on the caller's stack while it waits. */
struct commitgroup_entry {
	struct spool_msg	       *msg;
	int				result;
	bool				published;
	bool				finished;
	struct commitgroup_entry       *next;
};

struct commitgroup {
	struct spool		       *spool;		/* constant */
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

	if (g == NULL)
		return -ENOMEM;
	g->spool = spool;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->done, NULL);
	*out = g;
	return 0;
}

/* The leader's work, without the lock: publish each, one sync for all. */
static void
commitgroup_run_batch(struct commitgroup *g, struct commitgroup_entry *batch)
{
	struct spool_dirset *dirs = spool_dirset_new(g->spool);
	struct commitgroup_entry *e;
	int r;

	for (e = batch; e; e = e->next) {
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
	if ((r = spool_dirset_sync(dirs)) < 0)
		for (e = batch; e; e = e->next)
			if (e->published) {
				spool_msg_commit_unpublish(e->msg);
				e->result = r;
			}
	spool_dirset_free(dirs);
}

static void
commitgroup_lead(struct commitgroup *g)
{
	struct commitgroup_entry *batch = g->waiting, *e;
	unsigned long long n = 0;

	g->waiting = NULL;
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

	if ((r = spool_msg_commit_prepare(msg)) < 0)	/* its own syncs, overlapping others' */
		return r;
	pthread_mutex_lock(&g->lock);
	self.next = g->waiting;
	g->waiting = &self;
	while (!self.finished) {
		if (!g->busy)
			commitgroup_lead(g);	/* takes self too, unless an earlier leader did */
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
	pthread_cond_destroy(&g->done);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
