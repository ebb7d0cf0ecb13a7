/*
 * NAME
 *	spoolgate-mailq - the outbound queue as a table; a queue run now
 * SYNOPSIS
 *	spoolgate-mailq [-v] [-c FILE]
 *	spoolgate-mailq --flush[=NODE] [-c FILE]
 * DESCRIPTION
 *	Lists the messages waiting for the relay, from the records in queue/,
 *	active/ and the claims parked in tmp/ while the relay publishes their
 *	new record (a message being delivered or finished right now is marked
 *	'*'), the oldest first, one line each:
 *
 *	    ID  SIZE  ARRIVAL  NEXT-ATTEMPT  SENDER  RECIPIENTS  LAST-REPLY
 *
 *	where RECIPIENTS are the ones still pending (the first, and "+N" for
 *	the others), NEXT-ATTEMPT "now" when due, "active" while claimed,
 *	"held" when every pending recipient is of a held domain ([routes]
 *	hold: kept until ETRN or --flush=NODE asks).
 *	-v adds a line per recipient with its state ("held" for a pending
 *	recipient of a held domain) and its last reply.  An
 *	empty queue prints "Mail queue is empty" (as Postfix's mailq).
 *
 *	--flush asks the relay to try every queued message now, whatever its
 *	next-attempt: it writes <spool>/flush (QUEUE_FLUSH_FILE), which
 *	spoolgate-smtpd watches with inotify; the runner removes it and
 *	starts the run.  mailq waits up to 10 s for that: "queue run
 *	started", or it says the gateway did not answer (the request stays
 *	and is taken at the next start) and exits EX_UNAVAILABLE.
 *
 *	--flush=NODE is ETRN from the shell: the held mail of NODE (a domain,
 *	or @domain for it and every name below) is delivered now.  It writes
 *	<spool>/flush.NODE (QUEUE_FLUSH_NODE_PREFIX), taken the same way; the
 *	gateway logs what it did (event=relay-etrn: released=, or why not).
 *	A NODE that is no domain or @domain is EX_USAGE.
 *
 *	The configuration is -c FILE, else SPOOLGATE_CONF, else the
 *	installed one.  mailq is an alias: "sendmail -bp" and "mailq" run it.
 * SECURITY
 *	The spool is the gateway user's (mode 0750): root and that user may
 *	read the queue; anyone else gets "the queue is readable by root and
 *	<user> only" and EX_NOPERM, before anything is shown.  No privilege
 *	of its own.
 * EXIT STATUS
 *	0, EX_USAGE, EX_CONFIG, EX_NOPERM, EX_IOERR, EX_UNAVAILABLE (--flush
 *	not answered).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "../common/cfg.h"
#include "../common/envelope.h"
#include "../common/queue.h"
#include "../common/route.h"
#include "../common/spool.h"

#define PROG		"mailq"
#define FLUSH_WAIT_MS	10000

/* Where a record was read, in the order a record moves through them (queue.c). */
enum source { FROM_QUEUE, FROM_ACTIVE, FROM_PARKED, FROM_QUEUE_AGAIN };

struct entry {
	struct envelope	env;
	long long	size;
	bool		active;
	enum source	from;
};

struct listing {
	struct entry   *e;
	size_t		n, cap;
};

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: %s [-v] [-c FILE]\n       %s --flush[=NODE] [-c FILE]\n", PROG, PROG);
}

/* The message's size: data/<id> after data-offset, or the record's own file when it is inline. */
static long long
data_size(int dirfd, const char *name, int datafd, const struct envelope *env)
{
	struct stat st;

	if (env->inline_data ? fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 :
	    fstatat(datafd, env->id, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	return (long long)st.st_size - env->data_offset;
}

static int
add_entry(struct listing *l, int dirfd, int datafd, const char *name, enum source from)
{
	struct entry *grown, *e;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;

		if ((grown = realloc(l->e, cap * sizeof(*grown))) == NULL)
			return -ENOMEM;
		l->e = grown;
		l->cap = cap;
	}
	e = &l->e[l->n];
	if (envelope_read_at(dirfd, name, &e->env) < 0)
		return 0;	/* moved meanwhile, or not a record: not ours to judge */
	e->size = data_size(dirfd, name, datafd, &e->env);
	e->active = from == FROM_ACTIVE || from == FROM_PARKED;
	e->from = from;
	l->n++;
	return 0;
}

/* A claim parked in tmp/ ("<id>@<host>,<pid>.old") whose message has no record published yet. */
static bool
parked_unpublished(const char *name, const int published[3])
{
	char id[SPOOL_ID_MAX];
	struct stat st;

	if (spool_parked_claim_id(name, id) < 0)
		return false;
	for (int i = 0; i < 3; i++)
		if (published[i] >= 0 && fstatat(published[i], id, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return false;
	return true;
}

/* published: queue/, sent/, failed/ (or -1), for FROM_PARKED only. */
static int
read_dir(struct listing *l, int dirfd, int datafd, enum source from, const int published[3])
{
	struct dirent *de;
	DIR *d;
	int fd = dup(dirfd), r = 0;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d);
	while (r == 0 && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && (from != FROM_PARKED || parked_unpublished(de->d_name, published)))
			r = add_entry(l, dirfd, datafd, de->d_name, from);
	closedir(d);
	return r;
}

/* By id, the latest read of each first. */
static int
by_id_latest(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->env.id, y->env.id);

	return c != 0 ? c : (int)y->from - (int)x->from;
}

/* A record that moved while we listed was read twice: its latest read stays. */
static void
drop_duplicates(struct listing *l)
{
	size_t kept = 0;

	if (l->n == 0)
		return;		/* l->e may be NULL: not for qsort */
	qsort(l->e, l->n, sizeof(*l->e), by_id_latest);
	for (size_t i = 0; i < l->n; i++) {
		if (kept > 0 && strcmp(l->e[kept - 1].env.id, l->e[i].env.id) == 0) {
			envelope_free(&l->e[i].env);
			continue;
		}
		l->e[kept++] = l->e[i];
	}
	l->n = kept;
}

static int
by_created(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return x->env.created < y->env.created ? -1 : x->env.created > y->env.created;
}

static void
format_time(long long t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL || strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, outlen, "%lld", t);
}

/* A pending recipient of a held domain ([routes] hold): waits for ETRN, not for a time. */
static bool
rcpt_held(const struct cfg *cfg, const struct envelope_rcpt *rc)
{
	const char *at = strrchr(rc->addr, '@');
	struct route_nexthop nh;

	return rc->state == RCPT_PENDING && at != NULL && route_pick(cfg, at + 1, &nh) == 0 && nh.hold;
}

static bool
entry_held(const struct cfg *cfg, const struct envelope *env)
{
	size_t i, held = 0;

	for (i = 0; i < env->nrcpt; i++)
		held += rcpt_held(cfg, &env->rcpt[i]);
	return held > 0 && held == envelope_count(env, RCPT_PENDING);
}

static void
print_entry(const struct cfg *cfg, const struct entry *e, bool verbose, long long now)
{
	char arrival[32], next[32], rcpts[600];
	const struct envelope *env = &e->env;
	size_t i, pending = envelope_count(env, RCPT_PENDING);
	const char *first = NULL;

	for (i = 0; i < env->nrcpt && first == NULL; i++)
		if (env->rcpt[i].state == RCPT_PENDING)
			first = env->rcpt[i].addr;
	format_time(env->created, arrival, sizeof(arrival));
	if (e->active)
		snprintf(next, sizeof(next), "active");
	else if (entry_held(cfg, env))
		snprintf(next, sizeof(next), "held");
	else if (env->next_attempt <= now)
		snprintf(next, sizeof(next), "now");
	else
		format_time(env->next_attempt, next, sizeof(next));
	if (first == NULL)
		snprintf(rcpts, sizeof(rcpts), "-");
	else if (pending > 1)
		snprintf(rcpts, sizeof(rcpts), "%s +%zu", first, pending - 1);
	else
		snprintf(rcpts, sizeof(rcpts), "%s", first);
	printf("%-32s%c %8lld  %-19s  %-19s  %-24s  %-24s  %s\n", env->id, e->active ? '*' : ' ', e->size,
	    arrival, next, env->from[0] ? env->from : "<>", rcpts,
	    env->last_reply != NULL ? env->last_reply : "-");
	if (!verbose)
		return;
	for (i = 0; i < env->nrcpt; i++)
		printf("    %-8s <%s>%s%s\n", rcpt_held(cfg, &env->rcpt[i]) ? "held" :
		    rcpt_state_name(env->rcpt[i].state), env->rcpt[i].addr,
		    env->rcpt[i].reply ? " " : "", env->rcpt[i].reply ? env->rcpt[i].reply : "");
	if (env->attempts > 0)
		printf("    attempts %u, last host %s\n", env->attempts, env->last_host ? env->last_host : "-");
}

static int
refuse_reader(const struct cfg *cfg, int err)
{
	struct passwd *pw = getpwuid(getuid());

	if (err == -EACCES || err == -EPERM)
		fprintf(stderr, "%s: the queue in %s is readable by root and %s only (you are %s, uid %lu)\n", PROG,
		    cfg->spool_dir, cfg->user && cfg->user[0] ? cfg->user : "the spool's owner",
		    pw ? pw->pw_name : "?", (unsigned long)getuid());
	else
		fprintf(stderr, "%s: cannot read the queue in %s: %s\n", PROG, cfg->spool_dir, strerror(-err));
	return err == -EACCES || err == -EPERM ? EX_NOPERM : EX_IOERR;
}

static int
open_sub(int root, const char *name)
{
	int fd = openat(root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int
list_queue(const struct cfg *cfg, bool verbose)
{
	struct listing l = { 0 };
	int root, q = -1, a = -1, t = -1, data = -1, published[3] = { -1, -1, -1 }, r, status = EX_OK;
	size_t i, npending = 0;

	if ((root = open(cfg->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return refuse_reader(cfg, -errno);
	if ((q = open_sub(root, "queue")) < 0 || (a = open_sub(root, "active")) < 0 ||
	    (t = open_sub(root, "tmp")) < 0 || (data = open_sub(root, "data")) < 0) {
		status = refuse_reader(cfg, q < 0 ? q : a < 0 ? a : t < 0 ? t : data);
		goto out;
	}
	published[0] = q;
	published[1] = open_sub(root, "sent");
	published[2] = open_sub(root, "failed");
	/*
	 * In the order a record moves (claimed, parked, published), and
	 * queue/ again for one given back: a record that moves once while we
	 * list is read at least once.
	 */
	if ((r = read_dir(&l, q, data, FROM_QUEUE, NULL)) < 0 || (r = read_dir(&l, a, data, FROM_ACTIVE, NULL)) < 0 ||
	    (r = read_dir(&l, t, data, FROM_PARKED, published)) < 0 ||
	    (r = read_dir(&l, q, data, FROM_QUEUE_AGAIN, NULL)) < 0) {
		status = refuse_reader(cfg, r);
		goto out;
	}
	drop_duplicates(&l);
	if (l.n == 0) {
		printf("Mail queue is empty\n");
		goto out;
	}
	qsort(l.e, l.n, sizeof(*l.e), by_created);
	printf("%-33s %8s  %-19s  %-19s  %-24s  %-24s  %s\n", "ID", "SIZE", "ARRIVAL", "NEXT-ATTEMPT", "SENDER",
	    "RECIPIENTS", "LAST-REPLY");
	for (i = 0; i < l.n; i++) {
		print_entry(cfg, &l.e[i], verbose, (long long)time(NULL));
		npending += envelope_count(&l.e[i].env, RCPT_PENDING);
	}
	printf("-- %zu message%s, %zu recipient%s pending\n", l.n, l.n == 1 ? "" : "s", npending,
	    npending == 1 ? "" : "s");
out:
	for (i = 0; i < l.n; i++)
		envelope_free(&l.e[i].env);
	free(l.e);
	if (q >= 0)
		close(q);
	if (a >= 0)
		close(a);
	if (t >= 0)
		close(t);
	if (data >= 0)
		close(data);
	for (i = 1; i < 3; i++)
		if (published[i] >= 0)
			close(published[i]);
	close(root);
	return status;
}

/*
 * --flush: the request file (QUEUE_FLUSH_FILE, or flush.NODE), then the
 * wait for the runner to take it.
 */
static int
flush_queue(const struct cfg *cfg, const char *node)
{
	char line[96], file[ROUTE_HOST_MAX + 16];
	struct route_node rn;
	struct stat st;
	int root, fd, n, waited;

	if (node != NULL && (route_node_parse(node, &rn) < 0 || rn.kind == ROUTE_NODE_QUEUE)) {
		fprintf(stderr, "%s: --flush=%s: not a domain or @domain\n", PROG, node);
		return EX_USAGE;
	}
	snprintf(file, sizeof(file), "%s%s", node != NULL ? QUEUE_FLUSH_NODE_PREFIX : QUEUE_FLUSH_FILE,
	    node != NULL ? node : "");

	if ((root = open(cfg->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return refuse_reader(cfg, -errno);
	fd = openat(root, file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0 || fstat(root, &st) < 0) {
		int err = -errno;

		close(root);
		return refuse_reader(cfg, err);
	}
	/* root makes it the gateway's, which removes it */
	if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
		fprintf(stderr, "%s: warning: chown %s/%s: %s\n", PROG, cfg->spool_dir, file, strerror(errno));
	n = snprintf(line, sizeof(line), "flush requested by uid %lu at %lld\n", (unsigned long)getuid(),
	    (long long)time(NULL));
	if (write(fd, line, (size_t)n) != n || close(fd) < 0) {
		close(root);
		return refuse_reader(cfg, -errno);
	}
	for (waited = 0; waited < FLUSH_WAIT_MS; waited += 50) {
		if (faccessat(root, file, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
			close(root);
			if (node != NULL)
				printf("%s: queue run for %s asked (the gateway logs event=relay-etrn)\n", PROG, node);
			else
				printf("%s: queue run started\n", PROG);
			return EX_OK;
		}
		usleep(50 * 1000);
	}
	close(root);
	fprintf(stderr, "%s: spoolgate-smtpd did not take the request within %d s: is it running? "
	    "%s/%s stays, and its next start runs the queue\n", PROG, FLUSH_WAIT_MS / 1000, cfg->spool_dir, file);
	return EX_UNAVAILABLE;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "flush", optional_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL;
	bool verbose = false, flush = false;
	const char *node = NULL;
	char err[1024];
	struct cfg cfg;
	int c, status;

	while ((c = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'f':
			flush = true;
			node = optarg;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (conf == NULL)
		conf = getenv("SPOOLGATE_CONF");
	if (conf == NULL || conf[0] == '\0')
		conf = SPOOLGATE_DEFAULT_CONF;
	if (cfg_load(conf, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		cfg_free(&cfg);
		return EX_CONFIG;
	}
	status = flush ? flush_queue(&cfg, node) : list_queue(&cfg, verbose);
	cfg_free(&cfg);
	return status;
}
