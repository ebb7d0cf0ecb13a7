/*
 * NAME
 *	queue - the outbound queue: scan, claim, finish
 * DESCRIPTION
 *	See queue.h.  A claim's life, each step one atomic rename:
 *
 *	    queue/<id> -> active/<claim>                    (claim: <id>@<host>,<pid>)
 *	    tmp/<claim>.new                                 (new record written, synced
 *	                                                     alone or by the batch's syncfs)
 *	    active/<claim> -> tmp/<claim>.old               (parked: fails if taken over)
 *	    tmp/<claim>.new -> queue/<id> | sent/<id> | failed/<id>
 *	    unlink tmp/<claim>.old                          (at the release, once the
 *	                                                     destination was synced)
 *
 *	so at every instant the record exists under exactly one name outside
 *	tmp/.  Every step that publishes needs the claim itself as the source
 *	of a rename: a node that was stopped (SIGSTOP, a network cut) while
 *	another node took its claim over (node.h) finds it gone and records
 *	nothing (-ESTALE).  Once parked, the claim is in tmp/, where no other
 *	node takes over: a node that stops there is handled by
 *	spool_reclaim(), which removes the .new first (so a late rename of it
 *	fails) and then gives the .old back, or removes it when the new record
 *	got published.  A published record is always newer than any claim of
 *	its message left behind by a crash (the claim was made by renaming
 *	the record away), so recovery removes such a claim rather than giving
 *	it back over the record (spool.c).  Only the destination directory is
 *	synced before the release: a crash before the park reached the disk
 *	leaves the claim beside the record, a leftover that recovery removes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"

struct queue_claim {
	struct spool   *spool;
	char		id[SPOOL_ID_MAX];
	char		claim[SPOOL_NAME_MAX - 8];	/* name under active/; room for tmp/<claim>.new */
	char		newrec[SPOOL_NAME_MAX];	/* tmp/<claim>.new: the updated record, "" when none */
	struct envelope	env;
	int		datafd;
	enum queue_outcome outcome;
	int		prepared, finished, drop_sent, data_unlinked;
	int		parked_left;	/* published: tmp/<claim>.old goes at the release */
	int		data_linked;	/* an inline claim's file linked as data/<id>: data/ to sync */
};

static const char *const outcome_names[] = {
	[QUEUE_DEFERRED] = "deferred",
	[QUEUE_SENT] = "sent",
	[QUEUE_FAILED] = "failed",
};

const char *
queue_outcome_name(enum queue_outcome outcome)
{
	return (unsigned)outcome <= QUEUE_FAILED ? outcome_names[outcome] : "unknown";
}

static int
valid_id(const char *id)
{
	return id[0] != '\0' && id[0] != '.' && strchr(id, '/') == NULL && strchr(id, '@') == NULL &&
	    strlen(id) < SPOOL_ID_MAX;
}

/*
 * A record that does not parse is moved aside to failed/ so that it stays
 * visible.  The log says what really happened: moved and synced, moved but
 * not durably (a crash may bring it back to queue/, where the next scan
 * moves it again), or left in queue/ because the rename failed.
 */
static void
set_aside_corrupt(struct spool *spool, const char *id, int err)
{
	int r = 0;

	if (renameat(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, spool_dirfd(spool, SPOOL_DIR_FAILED), id) < 0) {
		r = -errno;
		log_error("queue-corrupt", "id=%s error=\"%s\" action=\"left in queue/\" move_error=\"%s\"", id,
		    strerror(-err), strerror(-r));
		return;
	}
	if (fsync(spool_dirfd(spool, SPOOL_DIR_FAILED)) < 0 || fsync(spool_dirfd(spool, SPOOL_DIR_QUEUE)) < 0)
		r = -errno;
	if (r < 0)
		log_error("queue-corrupt", "id=%s error=\"%s\" action=\"moved to failed/, not synced\" sync_error=\"%s\"",
		    id, strerror(-err), strerror(-r));
	else
		log_error("queue-corrupt", "id=%s error=\"%s\" action=\"moved to failed/\"", id, strerror(-err));
}

int
queue_scan(struct spool *spool, queue_scan_fn cb, void *arg)
{
	struct envelope env;
	struct dirent *de;
	DIR *d;
	int fd, r = 0, stop = 0, first = 0;

	fd = openat(spool_dirfd(spool, SPOOL_DIR_QUEUE), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	while (!stop && (de = readdir(d)) != NULL) {
		if (!valid_id(de->d_name))
			continue;
		r = envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), de->d_name, &env);
		if (r == -ENOENT) {
			r = 0;
			continue;	/* claimed meanwhile */
		}
		if (r == -EBADMSG || r == -ELOOP || r == -EINVAL) {
			/* Not a record (corrupt, a symlink, a directory): one odd entry must not stop the queue. */
			set_aside_corrupt(spool, de->d_name, r);
			r = 0;
			continue;
		}
		if (r < 0) {
			/* EMFILE, EIO...: may pass; try the other entries, report the error. */
			if (first == 0)
				first = r;
			log_error("queue-scan", "id=%s error=\"%s\"", de->d_name, strerror(-r));
			r = 0;
			continue;
		}
		stop = cb(de->d_name, &env, arg);
		envelope_free(&env);
	}
	closedir(d);
	return first;
}

const char *
queue_flush_node_name(const char *name)
{
	size_t n = strlen(QUEUE_FLUSH_NODE_PREFIX);

	return strncmp(name, QUEUE_FLUSH_NODE_PREFIX, n) == 0 && name[n] != '\0' ? name + n : NULL;
}

static int finish_now(struct queue_claim *qc, enum queue_outcome outcome);
static int claim_gone(struct queue_claim *qc, int err);

/* A record whose data is gone can never be delivered: say so in failed/. */
static void
fail_without_data(struct queue_claim *qc)
{
	const char *why = "451 4.3.0 message data file missing from the spool";
	size_t i;

	for (i = 0; i < qc->env.nrcpt; i++)
		if (qc->env.rcpt[i].state == RCPT_PENDING)
			envelope_set_rcpt(&qc->env, i, RCPT_FAILED, why);
	envelope_set_last(&qc->env, NULL, why);
	if (finish_now(qc, QUEUE_FAILED) == 0)
		log_error("queue-failed", "id=%s reason=\"%s\"", qc->id, why);
}

int
queue_claim(struct spool *spool, const char *id, struct queue_claim **out)
{
	struct queue_claim *qc;
	int fd, r;

	if (!valid_id(id))
		return -EINVAL;
	if ((qc = calloc(1, sizeof(*qc))) == NULL)
		return -ENOMEM;
	qc->spool = spool;
	qc->datafd = -1;
	snprintf(qc->id, sizeof(qc->id), "%s", id);
	snprintf(qc->claim, sizeof(qc->claim), "%s@%s,%ld", id, spool_hostname(spool), (long)getpid());
	if (renameat(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, spool_dirfd(spool, SPOOL_DIR_ACTIVE), qc->claim) < 0) {
		r = -errno;
		free(qc);
		return r;
	}
	fd = openat(spool_dirfd(spool, SPOOL_DIR_ACTIVE), qc->claim, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if ((r = fd < 0 ? -errno : envelope_read_fd(fd, &qc->env)) < 0 ||
	    (r = envelope_check_inline(fd, &qc->env, id)) < 0) {
		if (fd >= 0)
			close(fd);
		envelope_free(&qc->env);	/* read whole, but torn (a cut before recovery ran) */
		queue_claim_release(qc);
		free(qc);
		if (r == -EBADMSG)
			set_aside_corrupt(spool, id, r);
		return r;
	}
	/* an inline record is its own data file until the first rewrite (envelope.h) */
	if (qc->env.inline_data)
		qc->datafd = fd;
	else {
		close(fd);
		qc->datafd = openat(spool_dirfd(spool, SPOOL_DIR_DATA), id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (qc->datafd < 0) {
		r = -errno;
		log_error("queue-claim", "id=%s error=\"data file: %s\"", id, strerror(-r));
		if (r == -ENOENT)
			fail_without_data(qc);
		queue_claim_free(qc);
		return r;
	}
	*out = qc;
	return 0;
}

struct envelope *
queue_claim_envelope(struct queue_claim *qc)
{
	return &qc->env;
}

int
queue_claim_data_fd(const struct queue_claim *qc)
{
	return qc->datafd;
}

const char *
queue_claim_id(const struct queue_claim *qc)
{
	return qc->id;
}

bool
queue_finish_writes_record(enum queue_outcome outcome, bool keep_sent)
{
	return outcome != QUEUE_SENT || keep_sent;
}

/* tmp/<claim>.new, O_EXCL; one left by an earlier failed attempt of this claim is replaced. */
static int
newrec_create(struct queue_claim *qc)
{
	int tmpfd = spool_dirfd(qc->spool, SPOOL_DIR_TMP), fd, r;

	snprintf(qc->newrec, sizeof(qc->newrec), "%s.new", qc->claim);
	fd = openat(tmpfd, qc->newrec, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0 && errno == EEXIST && unlinkat(tmpfd, qc->newrec, 0) == 0)
		fd = openat(tmpfd, qc->newrec, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0) {
		r = -errno;
		qc->newrec[0] = '\0';
		return r;
	}
	if ((r = spool_chown_new(qc->spool, fd)) < 0) {
		close(fd);
		unlinkat(tmpfd, qc->newrec, 0);
		qc->newrec[0] = '\0';
		return r;
	}
	return fd;
}

/*
 * An inline claim's file (its record, then its data) becomes data/<id>,
 * the same inode, so that the record written next is a plain one whose
 * data-offset skips the old record's text.  The name is durable before
 * that record can be published: synced here when sync is true, else by
 * the caller's sync of the filesystem, which comes first.  The file is
 * synced too: the link raised its link count, which the fsync of a
 * directory does not write on ext4 without a journal, and the claim's
 * name goes once the record is published.  A name left by an earlier
 * try (a failed publish, a restart) is this same file.
 */
static int
link_inline_data(struct queue_claim *qc, bool sync)
{
	int datadir = spool_dirfd(qc->spool, SPOOL_DIR_DATA);
	struct stat ours, named;

	if (linkat(spool_dirfd(qc->spool, SPOOL_DIR_ACTIVE), qc->claim, datadir, qc->id, 0) < 0) {
		if (errno != EEXIST)
			return claim_gone(qc, -errno);
		if (fstat(qc->datafd, &ours) < 0 || fstatat(datadir, qc->id, &named, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (ours.st_ino != named.st_ino || ours.st_dev != named.st_dev) {
			log_error("queue-inline", "id=%s error=\"data/%s exists and is another file\" action=\"the "
			    "message stays in active/ until an operator looks\"", qc->id, qc->id);
			return -EEXIST;
		}
	}
	if (sync && (fsync(qc->datafd) < 0 || fsync(datadir) < 0))
		return -errno;
	qc->env.inline_data = false;	/* data_offset counts from the file's start already */
	qc->env.data_sealed = qc->env.inline_sealed;	/* data/<id> checks itself (envelope.h) */
	qc->data_linked = 1;
	return 0;
}

/* The new record under tmp/, synced when sync is true. */
static int
finish_write(struct queue_claim *qc, enum queue_outcome outcome, bool keep_sent, bool sync)
{
	char *text;
	size_t len;
	int fd, r;

	qc->outcome = outcome;
	qc->drop_sent = !queue_finish_writes_record(outcome, keep_sent);
	if (qc->newrec[0] != '\0') {
		/* Left by a try whose publish or batch sync failed: this try writes its own. */
		unlinkat(spool_dirfd(qc->spool, SPOOL_DIR_TMP), qc->newrec, 0);
		qc->newrec[0] = '\0';
	}
	if (qc->drop_sent) {
		qc->prepared = 1;
		return 0;
	}
	if (qc->env.inline_data && (r = link_inline_data(qc, sync)) < 0)
		return r;
	if ((r = envelope_format(&qc->env, &text, &len)) < 0)
		return r;
	if ((fd = newrec_create(qc)) < 0) {
		free(text);
		return fd;
	}
	r = spool_write_all(fd, text, len);
	free(text);
	if (r == 0 && sync && fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0) {
		unlinkat(spool_dirfd(qc->spool, SPOOL_DIR_TMP), qc->newrec, 0);
		qc->newrec[0] = '\0';
		return r;
	}
	qc->prepared = 1;
	return 0;
}

int
queue_finish_prepare(struct queue_claim *qc, enum queue_outcome outcome, bool keep_sent)
{
	return finish_write(qc, outcome, keep_sent, true);
}

int
queue_finish_write(struct queue_claim *qc, enum queue_outcome outcome, bool keep_sent)
{
	return finish_write(qc, outcome, keep_sent, false);
}

static enum spool_dir
outcome_dir(enum queue_outcome outcome)
{
	switch (outcome) {
	case QUEUE_SENT:
		return SPOOL_DIR_SENT;
	case QUEUE_FAILED:
		return SPOOL_DIR_FAILED;
	default:
		return SPOOL_DIR_QUEUE;
	}
}

/* The claim is not in active/ any more: another node took it over (its lease ran out). */
static int
claim_gone(struct queue_claim *qc, int err)
{
	if (err != -ENOENT)
		return err;
	qc->finished = 1;	/* nothing of it is ours to give back */
	return -ESTALE;
}

static int
publish_drop(struct queue_claim *qc, struct spool_dirset *dirs)
{
	struct spool *spool = qc->spool;
	int r;

	if (unlinkat(spool_dirfd(spool, SPOOL_DIR_ACTIVE), qc->claim, 0) < 0)
		return claim_gone(qc, -errno);
	unlinkat(spool_dirfd(spool, SPOOL_DIR_DATA), qc->id, 0);
	qc->data_unlinked = 1;
	if ((r = spool_dirset_add(dirs, "active")) < 0 || (r = spool_dirset_add(dirs, "data")) < 0)
		return r;
	return 0;
}

/*
 * The claim parked in tmp/ (the rename fails when another node took it
 * over), then the new record into dest.  sent/ alone is synced for a
 * delivered message (a claim left beside its record is a leftover);
 * active/ too for the others.
 */
int
queue_finish_publish(struct queue_claim *qc, struct spool_dirset *dirs)
{
	struct spool *spool = qc->spool;
	enum spool_dir dest = outcome_dir(qc->outcome);
	int tmpfd = spool_dirfd(spool, SPOOL_DIR_TMP), r;
	char parked[SPOOL_NAME_MAX];

	if (!qc->prepared)
		return -EINVAL;
	if (qc->drop_sent) {
		if ((r = publish_drop(qc, dirs)) < 0)
			return r;
		qc->finished = 1;
		return 0;
	}
	snprintf(parked, sizeof(parked), "%s.old", qc->claim);
	if (renameat(spool_dirfd(spool, SPOOL_DIR_ACTIVE), qc->claim, tmpfd, parked) < 0)
		return claim_gone(qc, -errno);
	if (renameat(tmpfd, qc->newrec, spool_dirfd(spool, dest), qc->id) < 0) {
		r = -errno;	/* ENOENT: a node that took us for dead removed it; spool_reclaim() returns the parked one */
		if (renameat(tmpfd, parked, spool_dirfd(spool, SPOOL_DIR_ACTIVE), qc->claim) < 0)
			return claim_gone(qc, -ENOENT);
		return r;
	}
	qc->newrec[0] = '\0';
	qc->finished = 1;
	qc->parked_left = 1;
	if (dest != SPOOL_DIR_SENT && (r = spool_dirset_add(dirs, "active")) < 0)
		return r;
	if (qc->data_linked && (r = spool_dirset_add(dirs, "data")) < 0)
		return r;
	return spool_dirset_add(dirs, spool_dir_name(dest));
}

/*
 * The last close of the unlinked data file frees its blocks: with ext4's
 * discard option a synchronous discard, hundreds of microseconds.  Here,
 * where the caller can afford it, not in queue_claim_free().  The parked
 * claim of a published record goes only once the destination was synced:
 * if it was not, the claim stays for recovery, which gives it back
 * unless the published record survived.
 */
void
queue_finish_release(struct queue_claim *qc, bool durable)
{
	char parked[SPOOL_NAME_MAX];

	if (qc->parked_left && durable) {
		snprintf(parked, sizeof(parked), "%s.old", qc->claim);
		if (unlinkat(spool_dirfd(qc->spool, SPOOL_DIR_TMP), parked, 0) < 0 && errno != ENOENT)
			log_error("queue-release", "id=%s claim=%s error=\"%s\" action=\"recovery removes it at the "
			    "next start (the record was published)\"", qc->id, parked, strerror(errno));
		qc->parked_left = 0;
	}
	if (!qc->data_unlinked || qc->datafd < 0)
		return;
	close(qc->datafd);
	qc->datafd = -1;
}

int
queue_claim_release(struct queue_claim *qc)
{
	if (qc->finished)
		return 0;
	if (renameat(spool_dirfd(qc->spool, SPOOL_DIR_ACTIVE), qc->claim, spool_dirfd(qc->spool, SPOOL_DIR_QUEUE), qc->id) < 0)
		return claim_gone(qc, -errno);
	qc->finished = 1;
	return 0;
}

void
queue_claim_free(struct queue_claim *qc)
{
	int r = 0;

	if (qc == NULL)
		return;
	if (!qc->finished && (r = queue_claim_release(qc)) == -ESTALE)
		log_warn("queue-release", "id=%s claim=%s action=\"taken over by another node meanwhile\"", qc->id,
		    qc->claim);
	else if (r < 0)
		log_error("queue-release", "id=%s claim=%s error=\"%s\" action=\"recovery returns it at next start\"",
		    qc->id, qc->claim, strerror(-r));
	if (qc->newrec[0] != '\0')
		unlinkat(spool_dirfd(qc->spool, SPOOL_DIR_TMP), qc->newrec, 0);
	if (qc->datafd >= 0)
		close(qc->datafd);
	envelope_free(&qc->env);
	free(qc);
}

int
queue_locate(struct spool *spool, const char *id)
{
	static const enum spool_dir order[] = { SPOOL_DIR_QUEUE, SPOOL_DIR_SENT, SPOOL_DIR_FAILED };
	struct stat st;
	size_t i;

	if (!valid_id(id))
		return -EINVAL;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (fstatat(spool_dirfd(spool, order[i]), id, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return order[i];
	if (spool_claim_exists(spool, id))
		return SPOOL_DIR_ACTIVE;
	return -ENOENT;
}

/* Prepare, publish and sync at once (rare paths, not the runner's). */
static int
finish_now(struct queue_claim *qc, enum queue_outcome outcome)
{
	struct spool_dirset *dirs = spool_dirset_new(qc->spool);
	int r;

	if (dirs == NULL)
		return -ENOMEM;
	r = queue_finish_prepare(qc, outcome, true);
	if (r == 0)
		r = queue_finish_publish(qc, dirs);
	if (r == 0)
		r = spool_dirset_sync(dirs);
	queue_finish_release(qc, r == 0);
	spool_dirset_free(dirs);
	return r;
}
