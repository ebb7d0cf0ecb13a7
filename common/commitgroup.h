/*
 * NAME
 *	commitgroup - group commit for threads that wait for their own commit
 * SYNOPSIS
 *	#include "commitgroup.h"
 *
 *	int commitgroup_new(struct spool *spool, struct commitgroup **out);
 *	int commitgroup_commit(struct commitgroup *g, struct spool_msg *msg);
 *	bool commitgroup_syncs_fs(const struct commitgroup *g);
 *	void commitgroup_get_stats(struct commitgroup *g,
 *			struct commitgroup_stats *out);
 *	void commitgroup_free(struct commitgroup *g);
 * DESCRIPTION
 *	commitgroup_commit() does what spool_msg_commit() does (the message
 *	and its names durable, or -errno and nothing published), but callers
 *	on several threads at once share the syncs.  The first caller to find
 *	no batch in progress becomes the leader: it takes every prepared
 *	message waiting (its own included), makes their files durable,
 *	publishes each, makes the new names durable once for all, and wakes
 *	the others with their results.  Callers that arrive while a batch
 *	runs wait, and form the next batch.  No name is published before the
 *	content it names is durable, unless that content checks itself (a
 *	sealed inline record, below), and no caller returns 0 before its
 *	names and content are.
 *
 *	Where the spool's filesystem allows it (spool_fs_sync_open(), the
 *	group's own descriptor opened by commitgroup_new()), each caller
 *	writes its files unsynced (spool_msg_commit_prepare_unsynced()) and
 *	the leader syncs the whole filesystem: one syncfs(2) for the files of
 *	the batch, then spool_msg_commit_check() of each message (its own
 *	writeback errors), the publication, and one syncfs for the names.
 *	That second syncfs also makes durable the files of every message
 *	already waiting when it starts.  A leader that finds such messages
 *	waiting takes only those, skips the first syncfs, and leaves the
 *	others for the next batch: its own second syncfs covers them.  So
 *	under load a batch costs one spool_fs_sync() (a syncfs and an fsync
 *	of the spool's root); a lone caller costs two (against two
 *	fdatasyncs and two directory fsyncs).  A self-checking message
 *	(spool_msg_self_checking(): an inline record, sealed) needs no first
 *	syncfs at all: it joins any batch, is published unsynced, and its
 *	file and name become durable in the one syncfs of the names, its
 *	writeback errors checked after it.  A batch of such messages costs
 *	one spool_fs_sync() even alone (stats: content_syncs counts the
 *	batches that paid the first).  Elsewhere (FUSE, NFS) each caller syncs its own files
 *	(spool_msg_commit_prepare()), those syncs overlapping, and the leader
 *	fsyncs each directory that got a name once (spool_dirset_sync()).
 *	commitgroup_syncs_fs() says which: true when the names are made
 *	durable by a syncfs, so that a message may be written with
 *	spool_msg_create_unnamed().
 *
 *	This is smtpd's committer (smtpd/commitq.h) for callers that block:
 *	spoolgate-fs answers a close(2) on the thread of its request, and
 *	needs no event loop and no thread of its own.
 * ERRORS
 *	commitgroup_new(): -ENOMEM.  commitgroup_commit(): the errors of the
 *	commit phases (spool.h); when a batch's sync of the files fails, each
 *	message that needed it gets that error and nothing of it is
 *	published; when the sync of the names fails, every message of the
 *	batch is unpublished and gets that error.
 * OWNERSHIP
 *	The caller keeps msg and frees it after commitgroup_commit() returns.
 *	spool must outlive the group.  The group owns its syncfs descriptor
 *	(closed by commitgroup_free()); only the leader of the batch in
 *	progress uses it, so a writeback error it reports is seen once.
 * THREADS
 *	commitgroup_commit() from any number of threads; a msg belongs to one
 *	caller.  commitgroup_free() when no call is in progress.
 */
#ifndef SPOOLGATE_COMMITGROUP_H
#define SPOOLGATE_COMMITGROUP_H

#include <stdbool.h>

#include "spool.h"

struct commitgroup;

struct commitgroup_stats {
	unsigned long long	commits;	/* messages committed through batches */
	unsigned long long	batches;	/* syncs of names (one per batch) */
	unsigned long long	max_batch;
	unsigned long long	content_syncs;	/* batches that synced their files first */
};

int commitgroup_new(struct spool *spool, struct commitgroup **out);
int commitgroup_commit(struct commitgroup *g, struct spool_msg *msg);
bool commitgroup_syncs_fs(const struct commitgroup *g);
void commitgroup_get_stats(struct commitgroup *g, struct commitgroup_stats *out);
void commitgroup_free(struct commitgroup *g);

#endif
