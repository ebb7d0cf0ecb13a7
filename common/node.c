/*
 * NAME
 *	node - gateways sharing one spool: names, heartbeats, leases, takeover
 * DESCRIPTION
 *	See node.h.  Liveness is the heartbeat file's mtime, read by stat:
 *	what every client of a shared filesystem sees alike, without reading
 *	the file.  The file is replaced by rename, never rewritten in place,
 *	so a reader sees one whole line or the previous one.
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
#define NODE_MAX_PEERS		1024	/* nodes remembered by one sweep */

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
};

/* What nodes/<name> says about its writer. */
struct node_beat {
	char		boot[NODE_BOOT_MAX];
	long		pid;
	long long	age_ms;			/* milliseconds since its mtime */
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

/* Since the file's mtime, by this host's clock (whole seconds would make a lease up to a second short). */
static long long
age_ms(const struct stat *st)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return ((long long)now.tv_sec - (long long)st->st_mtim.tv_sec) * 1000 +
	    ((long long)now.tv_nsec - (long long)st->st_mtim.tv_nsec) / 1000000;
}

/* -ENOENT when the node has no heartbeat file; other fields stay empty if its line does not parse. */
static int
read_beat(struct spool *spool, const char *name, struct node_beat *b)
{
	char line[NODE_LINE_MAX] = "";
	struct stat st;
	ssize_t n;
	int fd;

	memset(b, 0, sizeof(*b));
	fd = openat(spool_dirfd(spool, SPOOL_DIR_NODES), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	b->age_ms = age_ms(&st);
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "boot=%63s pid=%ld", b->boot, &b->pid) != 2)
		b->boot[0] = '\0';
	return 0;
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

/* Is the name held by another live node?  Fills why with who holds it. */
static bool
name_taken(const struct node *node, const struct node_beat *b, char *why, size_t whylen)
{
	if (strcmp(b->boot, node->boot) == 0 && b->pid > 0) {
		if (b->pid == (long)getpid() || (kill((pid_t)b->pid, 0) < 0 && errno == ESRCH))
			return false;	/* our own predecessor on this machine, gone */
		snprintf(why, whylen, "pid %ld on this machine has it", b->pid);
		return true;
	}
	if (b->age_ms >= (long long)node->lease * 1000)
		return false;	/* its lease ran out: a dead node's name */
	snprintf(why, whylen, "another machine (boot id %s, pid %ld) renewed its heartbeat %lld.%03llds ago (lease %us)",
	    b->boot[0] ? b->boot : "?", b->pid, b->age_ms / 1000, b->age_ms % 1000, node->lease);
	return true;
}

int
node_register(struct spool *spool, unsigned heartbeat_interval, unsigned lease_time, struct node **out,
    char *err, size_t errlen)
{
	struct node_beat beat;
	struct node *node;
	char why[200];
	int r;

	if ((node = calloc(1, sizeof(*node))) == NULL)
		return -ENOMEM;
	node->spool = spool;
	node->name = spool_hostname(spool);
	node->interval = heartbeat_interval;
	node->lease = lease_time;
	node->started = (long long)time(NULL);
	pthread_mutex_init(&node->lock, NULL);
	read_boot_id(node->boot);
	r = read_beat(spool, node->name, &beat);
	if (r == 0 && name_taken(node, &beat, why, sizeof(why))) {
		snprintf(err, errlen, "node name \"%s\" is in use on spool %s: %s; each gateway on a shared spool "
		    "needs its own [spool] hostname", node->name, spool_path(spool), why);
		pthread_mutex_destroy(&node->lock);
		free(node);
		return -EADDRINUSE;
	}
	if ((r < 0 && r != -ENOENT) || (r = write_beat(node)) < 0) {
		snprintf(err, errlen, "cannot write the heartbeat %s/nodes/%s: %s", spool_path(spool), node->name,
		    strerror(-r));
		pthread_mutex_destroy(&node->lock);
		free(node);
		return r;
	}
	log_info("node-registered", "node=%s boot=%s heartbeat_interval=%u lease_time=%u%s", node->name,
	    node->boot, node->interval, node->lease, r == 0 && beat.pid > 0 ? " previous=dead" : "");
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
 * What one sweep learnt about the nodes named by claims and temporaries.
 * Each name's heartbeat file is looked up by name (never from a listing of
 * nodes/: a network filesystem's directory caches may miss a name that
 * another client just renamed into place), once per sweep.
 */
struct node_peer {
	char		name[64];
	bool		dead;
};

struct node_peers {
	const struct node *self;
	struct node_peer *peer;			/* NODE_MAX_PEERS */
	size_t		n;
};

static int
peer_dead(const char *host, long pid, void *arg)
{
	struct node_peers *p = arg;
	struct node_beat beat;
	bool dead;
	size_t i;
	int r;

	(void)pid;
	if (strcmp(host, p->self->name) == 0)
		return 0;	/* ours: recovery at start, by pid */
	for (i = 0; i < p->n; i++)
		if (strcmp(p->peer[i].name, host) == 0)
			return p->peer[i].dead;
	r = read_beat(p->self->spool, host, &beat);
	if (r < 0 && r != -ENOENT)
		return 0;	/* cannot tell (EIO, EMFILE...): not dead */
	dead = r == -ENOENT || beat.age_ms >= (long long)p->self->lease * 1000;
	if (p->n < NODE_MAX_PEERS && strlen(host) < sizeof(p->peer[0].name)) {
		snprintf(p->peer[p->n].name, sizeof(p->peer[0].name), "%s", host);
		p->peer[p->n++].dead = dead;
	}
	return dead;
}

int
node_sweep(struct node *node, struct spool_reclaim *stats)
{
	struct node_peers peers = { .self = node };
	int r;

	memset(stats, 0, sizeof(*stats));
	if ((peers.peer = calloc(NODE_MAX_PEERS, sizeof(*peers.peer))) == NULL)
		return -ENOMEM;
	r = spool_reclaim(node->spool, peer_dead, &peers, (long)node->lease, node->name, stats);
	free(peers.peer);
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
	pthread_mutex_destroy(&node->lock);
	/* Only our own file: a successor with our name may have replaced it (then its pid is in it). */
	if (read_beat(node->spool, node->name, &beat) == 0 && beat.pid == (long)getpid() &&
	    strcmp(beat.boot, node->boot) == 0)
		unlinkat(spool_dirfd(node->spool, SPOOL_DIR_NODES), node->name, 0);
	log_info("node-unregistered", "node=%s", node->name);
	free(node);
}
