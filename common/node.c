/*
 * NAME
 *	node - gateways sharing one spool: names, heartbeats, leases, takeover
 * DESCRIPTION
 *	See node.h.  Liveness is the heartbeat file's content, never its
 *	mtime: an mtime is a time by the writer's (or the file server's)
 *	clock, compared with the reader's, so it would make every host's
 *	clock part of the protocol.  The content (boot id, pid, seq) changes
 *	at every beat; a reader remembers what it last saw of each node and
 *	since when by its own CLOCK_MONOTONIC, and a node whose content has
 *	not changed for lease_time of that clock is dead.  A reader with a
 *	stale view (a cache of the filesystem's) sees no change either, so the
 *	lease must cover the filesystem's cache times as well as missed beats.
 *	The file is replaced by rename, never rewritten in place, so a reader
 *	sees one whole line or the previous one.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "node.h"

#define NODE_BOOT_ID_PATH	"/proc/sys/kernel/random/boot_id"
#define NODE_BOOT_MAX		64
#define NODE_LINE_MAX		256
#define NODE_MAX_PEERS		256	/* other nodes watched (claims named by more wait: not dead) */
#define NODE_START_POLL_MS	200	/* node_register() rereads a foreign heartbeat that often */

struct node {
	struct spool   *spool;			/* constant after node_register() */
	const char     *name;			/* constant: spool_hostname() */
	char		boot[NODE_BOOT_MAX];	/* constant: this machine's boot id */
	unsigned	interval, lease;	/* constant */
	long long	started;		/* constant */
	unsigned long	seq;			/* the beating thread's (node_register() before it starts) */

	pthread_t	beater;
	bool		beating;		/* the thread runs: node_unregister() joins it */
	pthread_mutex_t	lock;
	pthread_cond_t	wake;			/* protected by lock: stop */
	bool		stop;			/* protected by lock */

	struct node_watch *watch;		/* NODE_MAX_PEERS; node_sweep()'s */
	size_t		n_watch;
	unsigned	sweeps;			/* node_sweep() calls */
};

/* What nodes/<name> says about its writer; all zero when there is no file. */
struct node_beat {
	char		boot[NODE_BOOT_MAX];
	long		pid;
	long long	started;
	unsigned long	seq;
};

/* What this node last saw of another one, and since when (its own monotonic clock). */
struct node_watch {
	char		name[64];
	struct node_beat beat;
	long long	since_ms;		/* CLOCK_MONOTONIC when beat was first seen */
	bool		seen;			/* beat and since_ms are set */
	unsigned	sweep;			/* the sweep that last read it: read once per sweep */
	bool		dead;			/* as judged by that sweep */
};

static void
read_boot_id(char boot[NODE_BOOT_MAX])
{
	FILE *fp = fopen(NODE_BOOT_ID_PATH, "re");

	snprintf(boot, NODE_BOOT_MAX, "unknown");
	if (fp == NULL)
		return;
	if (fgets(boot, NODE_BOOT_MAX, fp) == NULL)
		snprintf(boot, NODE_BOOT_MAX, "unknown");
	boot[strcspn(boot, "\n")] = '\0';
	fclose(fp);
}

/* This host's monotonic clock, in milliseconds: what leases are measured with (never a file's time). */
static long long
monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* -ENOENT when the node has no heartbeat file; fields stay zero where its line does not parse. */
static int
read_beat(struct spool *spool, const char *name, struct node_beat *b)
{
	char line[NODE_LINE_MAX] = "";
	ssize_t n;
	int fd;

	memset(b, 0, sizeof(*b));
	fd = openat(spool_dirfd(spool, SPOOL_DIR_NODES), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	line[n] = '\0';
	if (sscanf(line, "boot=%63s pid=%ld started=%lld seq=%lu", b->boot, &b->pid, &b->started, &b->seq) < 2) {
		b->boot[0] = '\0';
		b->pid = 0;
	}
	return 0;
}

/* Did the writer beat between two readings?  Any field that changed says so (a restart resets seq). */
static bool
beat_changed(const struct node_beat *a, const struct node_beat *b)
{
	return a->seq != b->seq || a->pid != b->pid || a->started != b->started || strcmp(a->boot, b->boot) != 0;
}

/*
 * The liveness rule: dead once what w last saw has not changed for
 * lease_ms of this host's monotonic clock.  A first sighting is never
 * dead: the lease counts from when this node began to watch.
 */
static bool
watch_dead(struct node_watch *w, const struct node_beat *now_seen, long long now_ms, long long lease_ms)
{
	if (!w->seen || beat_changed(&w->beat, now_seen)) {
		w->beat = *now_seen;
		w->since_ms = now_ms;
		w->seen = true;
		return false;
	}
	return now_ms - w->since_ms >= lease_ms;
}

static int
write_beat(struct node *node)
{
	int dirfd = spool_dirfd(node->spool, SPOOL_DIR_NODES), fd, r = 0;
	char tmp[SPOOL_NAME_MAX], line[NODE_LINE_MAX];
	int len;

	len = snprintf(line, sizeof(line), "boot=%s pid=%ld started=%lld seq=%lu\n", node->boot, (long)getpid(),
	    node->started, node->seq + 1);
	snprintf(tmp, sizeof(tmp), ".%s.%ld.%ld", node->name, (long)getpid(), (long)gettid());	/* the beat thread or a start */
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if ((r = spool_chown_new(node->spool, fd)) == 0)
		r = spool_write_all(fd, line, (size_t)len);
	close(fd);
	if (r == 0 && renameat(dirfd, tmp, dirfd, node->name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	node->seq++;
	return 0;
}

/*
 * Another machine's heartbeat under our name: watch it for up to a lease
 * of our own clock.  A change of its content means a live holder (-EADDRINUSE,
 * why says who); no change for lease_time, or the file removed, means a
 * dead (or cleanly stopped) holder, whose name is ours to take (0).
 */
static int
watch_foreign_holder(const struct node *node, const struct node_beat *first, char *why, size_t whylen)
{
	struct node_watch w = { .seen = false };
	struct node_beat now_seen;
	long long start = monotonic_ms(), lease_ms = (long long)node->lease * 1000;
	int r;

	log_info("node-name-check", "node=%s holder_boot=%s holder_pid=%ld seq=%lu action=\"watching its heartbeat "
	    "for up to lease_time=%us: a change means the name is in use\"", node->name, first->boot[0] ? first->boot : "?",
	    first->pid, first->seq, node->lease);
	(void)watch_dead(&w, first, start, lease_ms);
	for (;;) {
		usleep(NODE_START_POLL_MS * 1000);
		if ((r = read_beat(node->spool, node->name, &now_seen)) == -ENOENT)
			return 0;
		if (r < 0)
			return r;
		if (beat_changed(first, &now_seen)) {
			snprintf(why, whylen, "another machine (boot id %s, pid %ld) renewed its heartbeat (seq %lu to %lu) "
			    "within %lld ms", now_seen.boot[0] ? now_seen.boot : "?", now_seen.pid, first->seq, now_seen.seq,
			    monotonic_ms() - start);
			return -EADDRINUSE;
		}
		if (watch_dead(&w, &now_seen, monotonic_ms(), lease_ms))
			return 0;	/* unchanged for a lease: a dead node's name */
	}
}

/* Is the name held by another live node?  0 when free; -EADDRINUSE with why saying who holds it. */
static int
name_check(const struct node *node, const struct node_beat *b, bool shared, char *why, size_t whylen)
{
	if (strcmp(b->boot, node->boot) == 0 && b->pid > 0) {
		if (b->pid == (long)getpid() || (kill((pid_t)b->pid, 0) < 0 && errno == ESRCH))
			return 0;	/* our own predecessor on this machine, gone */
		snprintf(why, whylen, "pid %ld on this machine has it", b->pid);
		return -EADDRINUSE;
	}
	if (!shared) {
		/* A spool of this host alone: the file is its own, left by a boot that crashed. */
		log_info("node-name-taken", "node=%s holder_boot=%s holder_pid=%ld reason=\"[spool] shared = no: "
		    "a heartbeat of an earlier boot of this host\"", node->name, b->boot[0] ? b->boot : "?", b->pid);
		return 0;
	}
	return watch_foreign_holder(node, b, why, whylen);
}

static void
node_free(struct node *node)
{
	pthread_mutex_destroy(&node->lock);
	free(node->watch);
	free(node);
}

int
node_register(struct spool *spool, unsigned heartbeat_interval, unsigned lease_time, bool shared,
    struct node **out, char *err, size_t errlen)
{
	struct node_beat beat;
	struct node *node;
	char why[200];
	int r;

	if ((node = calloc(1, sizeof(*node))) == NULL)
		return -ENOMEM;
	if ((node->watch = calloc(NODE_MAX_PEERS, sizeof(*node->watch))) == NULL) {
		free(node);
		return -ENOMEM;
	}
	node->spool = spool;
	node->name = spool_hostname(spool);
	node->interval = heartbeat_interval;
	node->lease = lease_time;
	node->started = (long long)time(NULL);
	pthread_mutex_init(&node->lock, NULL);
	read_boot_id(node->boot);
	r = read_beat(spool, node->name, &beat);
	if (r == 0 && (r = name_check(node, &beat, shared, why, sizeof(why))) == -EADDRINUSE) {
		snprintf(err, errlen, "node name \"%s\" is in use on spool %s: %s; each gateway on a shared spool "
		    "needs its own [spool] hostname", node->name, spool_path(spool), why);
		node_free(node);
		return -EADDRINUSE;
	}
	if ((r < 0 && r != -ENOENT) || (r = write_beat(node)) < 0) {
		snprintf(err, errlen, "cannot write the heartbeat %s/nodes/%s: %s", spool_path(spool), node->name,
		    strerror(-r));
		node_free(node);
		return r;
	}
	log_info("node-registered", "node=%s boot=%s heartbeat_interval=%u lease_time=%u%s", node->name,
	    node->boot, node->interval, node->lease, beat.pid > 0 ? " previous=dead" : "");
	*out = node;
	return 0;
}

static int
heartbeat(struct node *node)
{
	int r = write_beat(node);

	if (r < 0)
		log_warn("node-heartbeat", "node=%s error=\"%s\" action=\"retried at the next beat; other nodes take "
		    "this one's claims over after lease_time\"", node->name, strerror(-r));
	return r;
}

/*
 * Its own thread, so that an event loop busy with slow network I/O does
 * not look like a dead node to the others (they would take its claims
 * over while it delivers them).  SIGSTOP stops it with the rest.
 */
static void *
beat_thread(void *arg)
{
	struct node *node = arg;
	struct timespec next;

	pthread_mutex_lock(&node->lock);
	while (!node->stop) {
		clock_gettime(CLOCK_MONOTONIC, &next);
		next.tv_sec += node->interval;
		while (!node->stop && pthread_cond_timedwait(&node->wake, &node->lock, &next) != ETIMEDOUT)
			;
		if (node->stop)
			break;
		pthread_mutex_unlock(&node->lock);
		(void)heartbeat(node);
		pthread_mutex_lock(&node->lock);
	}
	pthread_mutex_unlock(&node->lock);
	return NULL;
}

int
node_start_heartbeat(struct node *node)
{
	pthread_condattr_t ca;
	int r;

	if ((r = pthread_condattr_init(&ca)) != 0)
		return -r;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r = pthread_cond_init(&node->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (r != 0)
		return -r;
	if ((r = pthread_create(&node->beater, NULL, beat_thread, node)) != 0) {
		pthread_cond_destroy(&node->wake);
		return -r;
	}
	node->beating = true;
	return 0;
}

/*
 * The watch of one other node, found or started; NULL when NODE_MAX_PEERS
 * others are watched already (then that node is never judged dead: its
 * claims wait, nothing is taken from a node that might be alive).
 */
static struct node_watch *
watch_of(struct node *node, const char *host)
{
	struct node_watch *w;
	size_t i;

	for (i = 0; i < node->n_watch; i++)
		if (strcmp(node->watch[i].name, host) == 0)
			return &node->watch[i];
	if (node->n_watch == NODE_MAX_PEERS || strlen(host) >= sizeof(w->name))
		return NULL;
	w = &node->watch[node->n_watch++];
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", host);
	return w;
}

/*
 * spool_reclaim()'s question about the nodes named by claims and
 * temporaries.  Each name's heartbeat file is looked up by name (never
 * from a listing of nodes/: a network filesystem's directory caches may
 * miss a name that another client just renamed into place), once per
 * sweep.  No file counts as content too ("none"): it must stay so for a
 * lease before its node is dead, as a view that missed a rename would.
 */
static int
peer_dead(const char *host, long pid, void *arg)
{
	struct node *node = arg;
	struct node_watch *w;
	struct node_beat beat;
	int r;

	(void)pid;
	if (strcmp(host, node->name) == 0)
		return 0;	/* ours: recovery at start, by pid */
	if ((w = watch_of(node, host)) == NULL)
		return 0;
	if (w->sweep == node->sweeps)
		return w->dead;
	r = read_beat(node->spool, host, &beat);
	if (r < 0 && r != -ENOENT)
		return 0;	/* cannot tell (EIO, EMFILE...): not dead, and the watch goes on */
	w->sweep = node->sweeps;
	w->dead = watch_dead(w, &beat, monotonic_ms(), (long long)node->lease * 1000);
	return w->dead;
}

int
node_sweep(struct node *node, struct spool_reclaim *stats)
{
	int r;

	memset(stats, 0, sizeof(*stats));
	node->sweeps++;
	/* tmp_min_age 0: peer_dead() has watched a lease already; file times are other clocks' */
	r = spool_reclaim(node->spool, peer_dead, node, 0, node->name, stats);
	if (r < 0)
		log_warn("node-sweep", "node=%s error=\"%s\"", node->name, strerror(-r));
	return r;
}

void
node_unregister(struct node *node)
{
	struct node_beat beat;

	if (node == NULL)
		return;
	if (node->beating) {
		pthread_mutex_lock(&node->lock);
		node->stop = true;
		pthread_cond_signal(&node->wake);
		pthread_mutex_unlock(&node->lock);
		pthread_join(node->beater, NULL);
		pthread_cond_destroy(&node->wake);
	}
	/* Only our own file: a successor with our name may have replaced it (then its pid is in it). */
	if (read_beat(node->spool, node->name, &beat) == 0 && beat.pid == (long)getpid() &&
	    strcmp(beat.boot, node->boot) == 0)
		unlinkat(spool_dirfd(node->spool, SPOOL_DIR_NODES), node->name, 0);
	log_info("node-unregistered", "node=%s", node->name);
	node_free(node);
}
