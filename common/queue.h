/*
 * NAME
 *	queue - the outbound queue: scan, claim, finish
 * SYNOPSIS
 *	#include "queue.h"
 * DESCRIPTION
 *	Messages for the relay wait as envelope records in queue/.  A runner
 *	claims one by renaming queue/<id> to active/<id>@<host>,<pid>: the
 *	rename is atomic, so two runners (even two gateways on one shared
 *	spool) never deliver the same message twice.  A claim ends in one of
 *	three places, each reached by rename after the updated record was
 *	written and synced:
 *
 *	    QUEUE_DEFERRED  back to queue/<id> with attempts and next-attempt
 *	    QUEUE_SENT      sent/<id> (or removed with its data: keep_sent = no)
 *	    QUEUE_FAILED    failed/<id> with the remote reply of each recipient
 *
 *	queue_scan() lists queue/ and calls cb for each record with its
 *	envelope, borrowed for the call (records that do not parse are moved to failed/ as
 *	corrupt, and logged).  cb returns 0 to go on, non-zero to stop.
 *
 *	queue_claim() returns -ENOENT when the record is gone (another runner
 *	claimed it).  The claim holds the data file open (queue_claim_data_fd,
 *	positioned nowhere: use pread from data_offset): data/<id>, or the
 *	claim's own file when its record is inline (envelope.h).  The first
 *	prepare of an inline claim that writes a record links that file as
 *	data/<id> (synced when the prepare syncs; queue_finish_write()'s
 *	caller syncs the filesystem before it publishes), and the new record
 *	is plain.
 *
 *	Finishing is split in two phases for group commit, like spool_msg:
 *	queue_finish_prepare() writes and syncs the new record under tmp/;
 *	queue_finish_publish() renames it into place and adds the directories
 *	to dirs.  queue_finish_write() is queue_finish_prepare() without the
 *	fdatasync, for a caller that makes many records durable with one
 *	sync of the filesystem (spool_fs_sync()) before it publishes any:
 *	a record must never reach its final name before its content is
 *	durable, or a crash could leave an empty record in queue/ or sent/.
 *	queue_finish_writes_record() says whether an outcome writes a record
 *	at all (not a sent message with keep_sent = no, which is removed).
 *	Preparing again (a retry after a failed publish or sync) first
 *	removes the record the last try left under tmp/.
 *	queue_finish_release(), after the directories were synced (durable
 *	says whether they were), finishes what need not be synced and may be
 *	slow, so the caller chooses the thread: after a publish that removed
 *	the record with its data (keep_sent = no) it closes the data file,
 *	whose last close frees its blocks (slow with ext4's discard option;
 *	queue_claim_data_fd() is -1 from then on); after a record was
 *	published into sent/ (which takes one rename: see queue.c) it
 *	removes the claim, unsynced, when durable.  Otherwise it does
 *	nothing.  queue_claim_release() gives an unfinished claim back to
 *	queue/ unchanged (shutdown).
 *
 *	On a shared spool another node may take a claim over while this one
 *	is stopped (node.h).  queue_finish_publish() and
 *	queue_claim_release() then return -ESTALE and record nothing: every
 *	step that publishes is a rename whose source is the claim itself,
 *	never "check, then write" (queue.c).
 * THREADS
 *	A claim belongs to one thread at a time.
 */
#ifndef SPOOLGATE_QUEUE_H
#define SPOOLGATE_QUEUE_H

#include <stdbool.h>
#include "spool.h"
#include "envelope.h"

/*
 * <spool>/flush: spoolgate-mailq --flush writes it; the runner watches the
 * spool root for it (inotify), removes it and tries every queued message
 * at once, whatever its next-attempt.
 */
#define QUEUE_FLUSH_FILE	"flush"

/*
 * <spool>/flush.<node>: spoolgate-mailq --flush=NODE asks for the held
 * mail of one node (a domain, or "@domain" with every name below it), as
 * ETRN does (runner.h).  queue_flush_node_name() returns the node of such
 * a file name, or NULL when name is no such file (temporaries start with
 * '.', so never match).
 */
#define QUEUE_FLUSH_NODE_PREFIX	QUEUE_FLUSH_FILE "."

const char *queue_flush_node_name(const char *name);

enum queue_outcome { QUEUE_DEFERRED, QUEUE_SENT, QUEUE_FAILED };

struct queue_claim;

typedef int (*queue_scan_fn)(const char *id, const struct envelope *env, void *arg);

int queue_scan(struct spool *spool, queue_scan_fn cb, void *arg);
int queue_claim(struct spool *spool, const char *id, struct queue_claim **out);
struct envelope *queue_claim_envelope(struct queue_claim *qc);
int queue_claim_data_fd(const struct queue_claim *qc);
const char *queue_claim_id(const struct queue_claim *qc);

int queue_finish_prepare(struct queue_claim *qc, enum queue_outcome outcome, bool keep_sent);
int queue_finish_write(struct queue_claim *qc, enum queue_outcome outcome, bool keep_sent);
bool queue_finish_writes_record(enum queue_outcome outcome, bool keep_sent);
int queue_finish_publish(struct queue_claim *qc, struct spool_dirset *dirs);
void queue_finish_release(struct queue_claim *qc, bool durable);
int queue_claim_release(struct queue_claim *qc);
void queue_claim_free(struct queue_claim *qc);	/* releases an unfinished claim; NULL ok */

/* Where the record of a message is now: SPOOL_DIR_QUEUE, _ACTIVE, _SENT, _FAILED, or -ENOENT. */
int queue_locate(struct spool *spool, const char *id);

const char *queue_outcome_name(enum queue_outcome outcome);

#endif
