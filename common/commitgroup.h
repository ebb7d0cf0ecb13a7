/*
 * NAME
 *	commitgroup - group commit for threads that wait for their own commit
 * SYNOPSIS
 *	#include "commitgroup.h"
 *
 *	int commitgroup_new(struct spool *spool, struct commitgroup **out);
 *	int commitgroup_commit(struct commitgroup *g, struct spool_msg *msg);
 *	void commitgroup_get_stats(struct commitgroup *g,
 *			struct commitgroup_stats *out);
 *	void commitgroup_free(struct commitgroup *g);
 * DESCRIPTION
 *	commitgroup_commit() does what spool_msg_commit() does (the message
 *	and its names durable, or -errno and nothing published), but callers
 *	on several threads at once share the directory syncs: each caller
 *	runs spool_msg_commit_prepare() (its own file syncs) on its own
 *	thread, so those overlap; then the first caller to find no batch in
 *	progress becomes the leader, takes every prepared message waiting
 *	(its own included), publishes each, syncs each directory that got a
 *	name once (spool_dirset_sync), and wakes the others with their
 *	results.  Callers that arrive while a batch syncs wait, and form the
 *	next batch.  A lone caller costs what spool_msg_commit() costs.
 *
 *	This is smtpd's committer (smtpd/commitq.h) for callers that block:
 *	spoolgate-fs answers a close(2) on the thread of its request, and
 *	needs no event loop and no thread of its own.
 * ERRORS
 *	commitgroup_new(): -ENOMEM.  commitgroup_commit(): the errors of the
 *	commit phases (spool.h); when the directory sync of a batch fails,
 *	every message of the batch is unpublished and gets that error.
 * OWNERSHIP
 *	The caller keeps msg and frees it after commitgroup_commit() returns.
 *	spool must outlive the group.
 * THREADS
 *	commitgroup_commit() from any number of threads; a msg belongs to one
 *	caller.  commitgroup_free() when no call is in progress.
 */
#ifndef SPOOLGATE_COMMITGROUP_H
#define SPOOLGATE_COMMITGROUP_H

#include "spool.h"

struct commitgroup;

struct commitgroup_stats {
	unsigned long long	commits;	/* messages committed through batches */
	unsigned long long	batches;	/* directory syncs (one per batch) */
	unsigned long long	max_batch;
};

int commitgroup_new(struct spool *spool, struct commitgroup **out);
int commitgroup_commit(struct commitgroup *g, struct spool_msg *msg);
void commitgroup_get_stats(struct commitgroup *g, struct commitgroup_stats *out);
void commitgroup_free(struct commitgroup *g);

#endif
