/*
 * NAME
 *	spoolgate-smtpd - the SMTP server and relay of spoolgate
 * SYNOPSIS
 *	spoolgate-smtpd -c FILE [-n | -p SECTION.KEY]
 *	spoolgate-smtpd -h | -V
 * DESCRIPTION
 *	Reads the configuration FILE, opens and recovers the spool, binds
 *	every listener ([smtpd] listen, [listener NAME] sections), prepares
 *	drop/ for spoolgate-sendmail (pickup.h), drops root for [spool] user,
 *	and then serves SMTP and runs the relay's queue runner on one event
 *	loop; a thread moves what spoolgate-sendmail dropped into the queue.
 *	Disk syncs happen on the committer thread (commitq), never on the loop.
 *
 *	-n	check the configuration (and that the users file of AUTH
 *		and the aliases table load), print what is wrong, exit 0 or 1.
 *	-p SECTION.KEY
 *		print the value of one key (e.g. spool.user, fs.mountpoint,
 *		"listener submission.listen") as
 *		the daemon would use it and exit; the file must parse, but the
 *		user need not exist yet (./run reads the user to create so).
 *	-h	usage.  -V	version.
 *
 *	SIGTERM and SIGINT stop it cleanly: no new connection is accepted,
 *	idle sessions get 421 4.3.2, a message being committed still gets its
 *	reply, the relay gives its claims back, pending commits finish; exit 0.
 *
 *	Under systemd (Type=notify, etc/systemd/spoolgate-smtpd.service) it
 *	sends READY=1 once the spool is recovered and every listener is bound
 *	(with the event=listening line), and STOPPING=1 at the first SIGTERM
 *	or SIGINT (notify.h); without $NOTIFY_SOCKET nothing is sent.
 *
 *	The aliases table ([aliases] file, aliases.h) is loaded before root
 *	is dropped (a table that does not load stops the start) and reloaded
 *	on change by whoever looks it up (sessions, the pickup thread).
 *
 *	SIGHUP reloads the relay's credentials file ([relay] credentials):
 *	the next delivery attempts use the new user and password; and the
 *	users file of AUTH ([smtpd] auth_users, auth.h): the next AUTH uses
 *	it.  A file that does not load (others may read it, a bad line)
 *	changes nothing and is logged (event=relay-credentials,
 *	event=auth-users, level error).  It also reloads every listener's
 *	certificate, chain and key (server_reload_tls()): new sessions get
 *	the new ones, sessions open before keep working; files that do not
 *	load keep the old ones in use (event=tls-reload-failed, naming the
 *	file).  By then the daemon is no longer root: the files must be
 *	readable by [spool] user.  Nothing else is reloaded: other changes of
 *	the configuration need a restart.
 * SECURITY
 *	Started as root it binds and loads the listeners' TLS keys first
 *	(a key only root may read works) and then becomes [spool] user
 *	(initgroups, setgid, setuid; checked to be irreversible).  As root
 *	without a user it refuses to start: an SMTP listener facing the
 *	network does not run as root.
 * DIAGNOSTICS
 *	Configuration errors go to stderr as one line naming file, line and
 *	key, exit 1.  Everything else is logged as key=value lines on stderr:
 *	event=recovery at start-up, event=listener (one per listener: name,
 *	address, tls, auth), then event=listening addr=... (the first
 *	listener's) once every listener is bound (tests wait for that line),
 *	event=stopped at exit.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/cfg.h"
#include "../common/checkpoint.h"
#include "../common/log.h"
#include "../common/node.h"
#include "../common/notify.h"
#include "../common/spool.h"
#include "../common/aliases.h"
#include "../common/userdb.h"
#include "auth.h"
#include "commitq.h"
#include "pickup.h"
#include "runner.h"
#include "server.h"

#define PROG	"spoolgate-smtpd"

struct daemon {
	struct cfg		cfg;
	struct event_base      *base;
	struct spool	       *spool;
	struct server	       *srv;
	struct commitq	       *cq;
	struct runner	       *runner;
	struct pickup	       *pickup;		/* drop/ -> queue/, its own thread */
	struct auth	       *auth;
	struct aliases_source  *aliases;	/* [aliases] file, or NULL */
	struct node	       *node;		/* nodes/<hostname>: heartbeat, takeover of dead nodes */
	struct event	       *ev_beat;	/* heartbeat_interval, persistent: node_sweep() */
	long long		last_sweep;	/* CLOCK_MONOTONIC seconds of the last sweep_cb */
	struct event	       *ev_term;
	struct event	       *ev_int;
	struct event	       *ev_hup;
	bool			stopping;
};

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: %s -c FILE [-n | -p SECTION.KEY]\n"
	    "       %s -h | -V\n"
	    "  -c FILE  configuration file (see etc/spoolgate.conf)\n"
	    "  -n       check the configuration and exit (0: good, 1: errors printed)\n"
	    "  -p SECTION.KEY  print the value of one key (e.g. spool.user) and exit\n"
	    "  -h       this help\n"
	    "  -V       print the version\n", PROG, PROG);
}

/*
 * When started as root with a user to become, a spool directory that does
 * not exist yet is created for that user, so that the daemon can still use
 * it once it is no longer root (spool_open() gives what it creates inside
 * to the owner of the spool root).
 */
static int
prepare_spool_dir(const struct cfg *cfg, const struct passwd *pw)
{
	int fd;

	if (pw == NULL)
		return 0;
	if (mkdir(cfg->spool_dir, 0750) < 0)
		return errno == EEXIST ? 0 : -errno;
	if ((fd = open(cfg->spool_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
		close(fd);
		return -errno;
	}
	close(fd);
	return 0;
}

/* The user to become, or NULL when not root; refuses root without one. */
static int
lookup_user(const struct cfg *cfg, struct passwd **out)
{
	*out = NULL;
	if (geteuid() != 0)
		return 0;
	if (cfg->user == NULL || cfg->user[0] == '\0') {
		fprintf(stderr, "%s: %s: running as root without [spool] user: refusing to serve SMTP as root; "
		    "set user = <unprivileged account> or start it as that user\n", PROG, cfg->path);
		return -EPERM;
	}
	errno = 0;
	if ((*out = getpwnam(cfg->user)) == NULL) {
		fprintf(stderr, "%s: %s: [spool] user: no such user '%s'%s%s\n", PROG, cfg->path, cfg->user,
		    errno ? ": " : "", errno ? strerror(errno) : "");
		return -ENOENT;
	}
	if ((*out)->pw_uid == 0) {
		fprintf(stderr, "%s: %s: [spool] user: '%s' is root; name an unprivileged account\n", PROG,
		    cfg->path, cfg->user);
		return -EPERM;
	}
	return 0;
}

static int
drop_privileges(const struct cfg *cfg, const struct passwd *pw)
{
	if (pw == NULL)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_error("privileges", "user=%s error=\"%s\"", pw->pw_name, strerror(errno));
		return -errno;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		log_error("privileges", "user=%s error=\"root could be regained\"", pw->pw_name);
		return -EPERM;
	}
	if (access(cfg->spool_dir, R_OK | W_OK | X_OK) < 0) {
		log_error("privileges", "user=%s spool=%s error=\"%s\" hint=\"chown -R %s the spool\"", pw->pw_name,
		    cfg->spool_dir, strerror(errno), pw->pw_name);
		return -EACCES;
	}
	log_info("privileges", "user=%s uid=%u gid=%u", pw->pw_name, (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
	return 0;
}

/* -p SECTION.KEY: one value for scripts, without checking the user. */
static int
print_value(const struct cfg *cfg, const char *name)
{
	char section[32], value[4096];
	const char *dot = strchr(name, '.');
	int r;

	if (dot == NULL || (size_t)(dot - name) >= sizeof(section)) {
		fprintf(stderr, "%s: -p %s: expected SECTION.KEY, e.g. spool.user\n", PROG, name);
		return 1;
	}
	memcpy(section, name, (size_t)(dot - name));
	section[dot - name] = '\0';
	if ((r = cfg_value(cfg, section, dot + 1, value, sizeof(value))) < 0) {
		fprintf(stderr, "%s: -p %s: %s\n", PROG, name,
		    r == -ENOENT ? "no such key" : r == -EOPNOTSUPP ? "a list, not printable" : strerror(-r));
		return 1;
	}
	printf("%s\n", value);
	return 0;
}

/* Whether any listener offers AUTH. */
static bool
auth_offered(const struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->n_listeners; i++)
		if (cfg->listeners[i].auth != CFG_AUTH_NO)
			return true;
	return false;
}

/* -n: the users file of AUTH loads (as whoever runs the check). */
static int
check_auth_users(const struct cfg *cfg)
{
	struct userdb *db;
	char err[1024];
	int r;

	if (auth_offered(cfg) && cfg->auth_users == NULL) {
		fprintf(stderr, "%s: %s: a listener offers AUTH but [smtpd] auth_users names no users file "
		    "(make one with spoolgate-passwd)\n", PROG, cfg->path);
		return -EINVAL;
	}
	if (cfg->auth_users == NULL)
		return 0;
	if ((r = userdb_load(cfg->auth_users, &db, err, sizeof(err))) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		return r;
	}
	userdb_free(db);
	return 0;
}

static void
drained(void *arg)
{
	struct daemon *d = arg;

	event_base_loopexit(d->base, NULL);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	if (d->stopping) {
		log_warn("stop", "signal=%d reason=\"second signal: not waiting any longer\"", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = true;
	log_info("stop", "signal=%d", (int)sig);
	notify_stopping();
	server_shutdown(d->srv, drained, d);
}

static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	log_info("reload", "signal=%d what=credentials,auth_users,certificates", (int)sig);
	(void)runner_reload(d->runner);		/* logs what it did, or why not */
	auth_reload(d->auth);			/* the same */
	server_reload_tls(d->srv);		/* likewise, per listener */
}

/*
 * The aliases table, read before root is dropped (a file only root may
 * read works at start); reloads on change run as the daemon's user.
 * A table that does not load stops the start, as a bad configuration does.
 */
static int
load_aliases(struct daemon *d, const struct passwd *pw)
{
	char err[1024], q[1100];

	if (aliases_source_configured(&d->cfg, pw != NULL ? pw->pw_uid : geteuid(), &d->aliases,
	    err, sizeof(err)) < 0) {
		log_error("aliases", "error=%s", log_quote(q, sizeof(q), err));
		return -1;
	}
	if (d->aliases != NULL) {
		struct aliases *a = aliases_source_get(d->aliases);

		log_info("aliases-loaded", "file=%s aliases=%zu when=start", log_quote(q, sizeof(q),
		    d->cfg.aliases_file), aliases_count(a));
		aliases_release(a);
	}
	return 0;
}

/* -n: the aliases table loads. */
static int
check_aliases(const struct cfg *cfg, const struct passwd *pw)
{
	struct aliases_source *src;
	char err[1024];

	if (aliases_source_configured(cfg, pw != NULL ? pw->pw_uid : geteuid(), &src, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		return -1;
	}
	aliases_source_free(src);
	return 0;
}

/* One line per listener: where it listens and its policy. */
static void
log_listeners(const struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++) {
		const struct server_listener *l = &srv->listeners[i];

		log_info("listener", "listener=%s addr=%s tls=%s auth=%s", l->cfg->name, l->addr,
		    l->cfg->tls != NULL ? l->cfg->tls : "none", cfg_auth_mode_name(l->cfg->auth));
	}
}

/*
 * Every heartbeat_interval (the heartbeat itself has a thread of its own,
 * node.h): give back what nodes whose lease ran out left in active/ and
 * tmp/; a record given back lands in queue/, where this node's runner (or
 * another's) finds it.  A tick that comes a lease late means this process
 * was stopped: its claims may be another node's now.
 */
static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct spool_reclaim st;
	struct timespec now;

	(void)fd;
	(void)what;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (d->last_sweep != 0 && now.tv_sec - d->last_sweep >= (time_t)(d->cfg.lease_time - d->cfg.heartbeat_interval))
		log_warn("node-stalled", "seconds=%lld action=\"this process did not run for about a lease: other "
		    "nodes may have taken its claims over; finishing those records nothing (relay-claim-lost)\"",
		    (long long)(now.tv_sec - d->last_sweep));
	d->last_sweep = now.tv_sec;
	if (node_sweep(d->node, &st) == 0 && st.claims + st.parked > 0)
		runner_poll_now(d->runner);
}

static int
start_node(struct daemon *d)
{
	char err[512];
	int r;

	if ((r = node_register(d->spool, d->cfg.heartbeat_interval, d->cfg.lease_time, d->cfg.shared, &d->node, err,
	    sizeof(err))) < 0) {
		log_error("node", "error=\"%s\"", err);
		fprintf(stderr, "%s: %s\n", PROG, err);
		return -1;
	}
	return 0;
}

static int
start_heartbeat(struct daemon *d)
{
	struct timeval every = { d->cfg.heartbeat_interval, 0 };
	int r;

	if ((r = node_start_heartbeat(d->node)) < 0) {
		log_error("startup", "error=\"cannot start the heartbeat: %s\"", strerror(-r));
		return -1;
	}
	if ((d->ev_beat = event_new(d->base, -1, EV_PERSIST, sweep_cb, d)) == NULL ||
	    event_add(d->ev_beat, &every) < 0) {
		log_error("startup", "error=\"cannot start the sweep of dead nodes\"");
		return -1;
	}
	return 0;
}

/* READY=1 for systemd (Type=notify): recovered, every listener bound. */
static void
notify_ready_listening(const struct server *srv)
{
	char status[128];

	snprintf(status, sizeof(status), "listening on %s (%zu listener%s)", server_address(srv),
	    srv->nlisteners, srv->nlisteners == 1 ? "" : "s");
	notify_ready(status);
}

static int
start(struct daemon *d)
{
	struct spool_recovery rec;
	struct passwd *pw;
	int r;

	if (lookup_user(&d->cfg, &pw) < 0)
		return -1;
	log_init("smtpd", (enum log_level)d->cfg.log_level);
	if ((r = prepare_spool_dir(&d->cfg, pw)) < 0 || (r = spool_open(d->cfg.spool_dir, &d->spool)) < 0) {
		log_error("spool-open", "path=%s error=\"%s\"", d->cfg.spool_dir, strerror(-r));
		return -1;
	}
	spool_set_hostname(d->spool, d->cfg.hostname);	/* claims and recovery know us by it */
	if (start_node(d) < 0)
		return -1;
	if (pw != NULL)
		(void)pickup_prepare_dir(&d->cfg, pw->pw_uid, pw->pw_gid);	/* logs what it did */
	if ((r = spool_recover(d->spool, &rec)) < 0) {
		log_error("recovery", "path=%s error=\"%s\"", d->cfg.spool_dir, strerror(-r));
		return -1;
	}
	log_info("recovery", "temporaries_removed=%u claims_returned=%u records_dropped=%u records_superseded=%u "
	    "orphans_removed=%u queued=%u mailboxes=%u", rec.temporaries_removed, rec.claims_returned,
	    rec.records_dropped, rec.records_superseded, rec.orphans_removed, rec.queued, rec.mailboxes);
	/* Partial transfers (CHECKPOINT) outlive a restart, not their lifetime. */
	if ((r = ckpt_sweep(spool_dirfd(d->spool, SPOOL_DIR_PARTIAL), (long long)time(NULL),
	    d->cfg.checkpoint_lifetime)) > 0)
		log_info("checkpoint-expired", "count=%d lifetime=%u", r, d->cfg.checkpoint_lifetime);
	/*
	 * No evthread_use_pthreads(): only the loop thread touches libevent;
	 * the committer wakes it through an eventfd (commitq.c).
	 */
	if ((d->base = event_base_new()) == NULL) {
		log_error("startup", "error=\"cannot create the event loop\"");
		return -1;
	}
	if (server_new(d->base, &d->cfg, d->spool, &d->srv) < 0)
		return -1;
	if (load_aliases(d, pw) < 0)
		return -1;
	d->srv->aliases = d->aliases;
	if (drop_privileges(&d->cfg, pw) < 0)
		return -1;
	if ((r = commitq_new(d->base, d->spool, &d->cq)) < 0) {
		log_error("startup", "error=\"cannot start the committer: %s\"", strerror(-r));
		return -1;
	}
	if ((r = runner_new(d->base, &d->cfg, d->spool, d->cq, &d->runner)) < 0) {
		log_error("startup", "error=\"cannot start the relay: %s\"", strerror(-r));
		return -1;
	}
	if (start_heartbeat(d) < 0)
		return -1;
	if ((r = pickup_new(&d->cfg, d->spool, d->aliases, &d->pickup)) < 0) {
		log_error("startup", "error=\"cannot start the pickup of drop/: %s\"", strerror(-r));
		return -1;
	}
	if ((r = auth_new(&d->cfg, d->spool, d->cq, auth_offered(&d->cfg), &d->auth)) < 0) {
		log_error("startup", "error=\"cannot set up AUTH: %s\"", strerror(-r));
		return -1;
	}
	d->srv->auth = d->auth;
	if ((d->ev_term = evsignal_new(d->base, SIGTERM, signal_cb, d)) == NULL ||
	    (d->ev_int = evsignal_new(d->base, SIGINT, signal_cb, d)) == NULL ||
	    (d->ev_hup = evsignal_new(d->base, SIGHUP, reload_cb, d)) == NULL ||
	    evsignal_add(d->ev_term, NULL) < 0 || evsignal_add(d->ev_int, NULL) < 0 ||
	    evsignal_add(d->ev_hup, NULL) < 0) {
		log_error("startup", "error=\"cannot watch signals\"");
		return -1;
	}
	server_start(d->srv, d->cq, d->runner);
	log_listeners(d->srv);
	log_info("listening", "addr=%s listeners=%zu hostname=%s version=%s", server_address(d->srv),
	    d->srv->nlisteners, d->srv->hostname, SPOOLGATE_VERSION);
	notify_ready_listening(d->srv);
	return 0;
}

/* Order matters: commit callbacks look sessions up in the server's table. */
static void
stop(struct daemon *d)
{
	pickup_free(d->pickup);	/* finishes the drop it is on */
	if (d->ev_beat != NULL)
		event_free(d->ev_beat);
	runner_free(d->runner);
	commitq_free(d->cq);	/* runs the done() of what is still in flight */
	node_unregister(d->node);	/* after the claims went back: other nodes see a clean stop */
	server_free(d->srv);
	auth_free(d->auth);	/* after the commits: a write of derived keys refers to it */
	aliases_source_free(d->aliases);	/* after the pickup and the sessions that used it */
	if (d->ev_term != NULL)
		event_free(d->ev_term);
	if (d->ev_int != NULL)
		event_free(d->ev_int);
	if (d->ev_hup != NULL)
		event_free(d->ev_hup);
	if (d->base != NULL)
		event_base_free(d->base);
	spool_close(d->spool);
	cfg_free(&d->cfg);
}

int
main(int argc, char **argv)
{
	struct daemon d;
	const char *path = NULL, *print_key = NULL;
	bool check_only = false;
	char err[1024];
	int c, status;

	memset(&d, 0, sizeof(d));
	while ((c = getopt(argc, argv, "c:np:hV")) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check_only = true;
			break;
		case 'p':
			print_key = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s %s\n", PROG, SPOOLGATE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 1;
	}
	if (cfg_load(path, &d.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		cfg_free(&d.cfg);
		return 1;
	}
	if (print_key != NULL) {
		status = print_value(&d.cfg, print_key);
		cfg_free(&d.cfg);
		return status;
	}
	if (check_only) {
		struct passwd *pw;

		if (lookup_user(&d.cfg, &pw) < 0 || check_auth_users(&d.cfg) < 0 || check_aliases(&d.cfg, pw) < 0) {
			cfg_free(&d.cfg);
			return 1;
		}
		printf("%s: %s: configuration ok\n", PROG, path);
		cfg_free(&d.cfg);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);	/* a vanished client is an error return, not a death */
	signal(SIGXFSZ, SIG_IGN);	/* a file size limit (ulimit -f) is EFBIG, 552 5.3.4 */
	status = start(&d) == 0 && event_base_dispatch(d.base) >= 0 ? 0 : 1;
	stop(&d);
	if (status == 0)
		log_info("stopped", NULL);
	return status;
}
