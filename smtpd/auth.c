/*
 * NAME
 *	auth - the SMTP server's side of AUTH: users, derived SCRAM keys, GNU SASL
 * DESCRIPTION
 *	See auth.h.  Two userdb sets: the operator's users file, and the keys
 *	derived at password transitions (owned by this daemon, in the spool).
 *	An exchange carries what its callbacks decided (a derived key) to
 *	auth_finish(), which keeps it only when the exchange succeeded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/userdb.h"
#include "auth.h"

#define AUTH_DIR	"auth"			/* in the spool, mode 0700 */
#define DERIVED_NAME	"scram-derived"
#define DERIVED_TMP	"scram-derived.tmp"
#define AUTH_CLIENTS	256			/* client addresses whose failures are counted */
#define FAILURES_FORGOTTEN	(15 * 60)	/* seconds after a client's last failure */

/* The failed AUTHs of one client address. */
struct client_failures {
	char		client[INET6_ADDRSTRLEN];	/* "" when free */
	unsigned	failures;
	time_t		last;		/* monotonic seconds of the last failure */
};

struct auth {
	const struct cfg *cfg;
	struct commitq *cq;
	struct sasl_ctx *sasl;
	struct userdb  *users;		/* NULL: not loaded, AUTH answers 454 */
	struct userdb  *derived;	/* never NULL */
	int		dirfd;		/* <spool>/auth, -1 when it could not be made */
	bool		writing;	/* a write of derived is in flight */
	bool		dirty;		/* derived changed since that write was formatted */
	struct client_failures clients[AUTH_CLIENTS];
};

struct auth_exchange {
	struct auth    *auth;
	struct sasl_server *srv;
	enum sasl_status last;
	bool		derived;	/* keys derived for user, kept on success */
	char		user[USERDB_NAME_MAX + 1];
	char		crypt[USERDB_CRYPT_MAX];
	struct sasl_scram_secrets secrets;
};

/* One write of the derived keys, on the committer. */
struct derived_write {
	struct commitq_job job;
	struct auth    *auth;
	char	       *text;
	size_t		len;
};

static void derived_write_start(struct auth *a);

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static int
load_users(struct auth *a, const char *why)
{
	struct userdb *db;
	char err[1024];
	int r;

	if (a->cfg->auth_users == NULL)
		return 0;
	if ((r = userdb_load(a->cfg->auth_users, &db, err, sizeof(err))) < 0) {
		log_error("auth-users", "when=%s path=%s error=\"%s\" action=\"%s\"", why, a->cfg->auth_users, err,
		    a->users != NULL ? "keeping the users loaded before" :
		    "AUTH answers 454 4.7.0 until SIGHUP loads the file");
		return r;
	}
	userdb_free(a->users);
	a->users = db;
	log_info("auth-users", "when=%s path=%s users=%zu", why, a->cfg->auth_users, userdb_count(db));
	return 0;
}

/* The derived keys of earlier transitions; a file that does not load is
 * logged and replaced at the next transition (it only saves logins). */
static void
load_derived(struct auth *a, struct spool *spool)
{
	char err[1024], path[4096];
	int fd, r;

	if (mkdirat(spool_dirfd(spool, SPOOL_DIR_ROOT), AUTH_DIR, 0700) < 0 && errno != EEXIST)
		log_error("auth-transition", "step=mkdir dir=%s/%s error=\"%s\"", a->cfg->spool_dir, AUTH_DIR,
		    strerror(errno));
	a->dirfd = openat(spool_dirfd(spool, SPOOL_DIR_ROOT), AUTH_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/%s/%s", a->cfg->spool_dir, AUTH_DIR, DERIVED_NAME);
	if (a->dirfd < 0 || (fd = openat(a->dirfd, DERIVED_NAME, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	close(fd);
	if ((r = userdb_load(path, &a->derived, err, sizeof(err))) < 0) {
		log_error("auth-transition", "step=load path=%s error=\"%s\" action=\"ignored: users without "
		    "a SCRAM key get 432 again until they log in with PLAIN or LOGIN\"", path, err);
		userdb_new(&a->derived);
	}
}

int
auth_new(const struct cfg *cfg, struct spool *spool, struct commitq *cq, bool needed, struct auth **out)
{
	struct auth *a;
	int r;

	*out = NULL;
	if (needed && cfg->auth_users == NULL) {
		log_error("auth-users", "when=start error=\"AUTH is offered but [smtpd] auth_users names no users "
		    "file (make one with spoolgate-passwd)\"");
		return -EINVAL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -ENOMEM;
	a->cfg = cfg;
	a->cq = cq;
	a->dirfd = -1;
	if ((r = sasl_ctx_new(&a->sasl)) < 0) {
		free(a);
		return r;
	}
	(void)load_users(a, "start");
	load_derived(a, spool);
	if (a->derived == NULL && userdb_new(&a->derived) < 0) {
		auth_free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

void
auth_reload(struct auth *a)
{
	if (a != NULL)
		(void)load_users(a, "reload");
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	userdb_free(a->users);
	userdb_free(a->derived);
	sasl_ctx_free(a->sasl);
	if (a->dirfd >= 0)
		close(a->dirfd);
	free(a);
}

/* ------------------------------------------------------------------ */
/* The credential callbacks                                            */
/* ------------------------------------------------------------------ */

/* PLAIN and LOGIN; a user without a SCRAM key gets one derived. */
static int
cb_check_password(void *arg, const char *user, const char *password)
{
	struct auth_exchange *x = arg;
	struct auth *a = x->auth;
	const struct userdb_user *u;
	struct sasl_scram_secrets have;
	int r;

	if (a->users == NULL)
		return -EIO;
	u = userdb_find(a->users, user);
	if ((r = userdb_check_password(u, password)) != 0)
		return r;
	if (userdb_scram(a->users, a->derived, user, &have) == -ENOKEY &&
	    sasl_scram_secrets_make(password, USERDB_SCRAM_ITER_DEFAULT, NULL, &x->secrets) == 0) {
		x->derived = true;
		snprintf(x->user, sizeof(x->user), "%s", user);
		snprintf(x->crypt, sizeof(x->crypt), "%s", u->crypt);
	}
	explicit_bzero(&have, sizeof(have));
	return 0;
}

static int
cb_scram_secrets(void *arg, const char *user, struct sasl_scram_secrets *out)
{
	struct auth_exchange *x = arg;

	if (x->auth->users == NULL)
		return -EIO;
	return userdb_scram(x->auth->users, x->auth->derived, user, out);
}

/* CRAM-MD5, offered only where a listener set auth_cram_md5 (session.c). */
static int
cb_cram_secret(void *arg, const char *user, char *out, size_t outlen)
{
	struct auth_exchange *x = arg;

	if (x->auth->users == NULL)
		return -EIO;
	return userdb_cram(x->auth->users, user, out, outlen);
}

static const struct sasl_server_ops auth_ops = { cb_check_password, cb_scram_secrets, cb_cram_secret };

/* ------------------------------------------------------------------ */
/* Exchanges                                                           */
/* ------------------------------------------------------------------ */

enum sasl_status
auth_start(struct auth *a, const char *mech, struct auth_exchange **out)
{
	struct auth_exchange *x;
	enum sasl_status st;

	*out = NULL;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return SASL_TEMPFAIL;
	x->auth = a;
	if ((st = sasl_server_start(a->sasl, mech, &auth_ops, x, &x->srv)) != SASL_CONTINUE) {
		free(x);
		return st;
	}
	x->last = SASL_CONTINUE;
	*out = x;
	return SASL_CONTINUE;
}

enum sasl_status
auth_step(struct auth_exchange *x, const char *response, char **challenge)
{
	return x->last = sasl_server_step(x->srv, response, challenge);
}

const char *
auth_identity(const struct auth_exchange *x)
{
	return sasl_server_identity(x->srv);
}

const char *
auth_error(const struct auth_exchange *x)
{
	return sasl_server_error(x->srv);
}

/* Keeps the key derived by a successful PLAIN or LOGIN. */
static void
transition_keep(struct auth_exchange *x)
{
	struct auth *a = x->auth;
	int r;

	if ((r = userdb_set(a->derived, x->user, &x->secrets, x->crypt)) < 0) {
		log_error("auth-transition", "step=derived user=%s error=\"%s\"", x->user, strerror(-r));
		return;
	}
	log_info("auth-transition", "step=derived user=%s mechanism=SCRAM-SHA-256 iterations=%u", x->user,
	    x->secrets.iterations);
	a->dirty = true;
	if (!a->writing)
		derived_write_start(a);
}

void
auth_finish(struct auth_exchange *x)
{
	if (x == NULL)
		return;
	if (x->last == SASL_OK && x->derived && strcmp(x->user, auth_identity(x)) == 0)
		transition_keep(x);
	sasl_server_free(x->srv);
	explicit_bzero(x, sizeof(*x));
	free(x);
}

bool
auth_may_send_as(const struct auth *a, const char *user, const char *addr)
{
	return userdb_may_send_as(userdb_find(a->users, user), addr);
}

/* ------------------------------------------------------------------ */
/* Failures per client address                                         */
/* ------------------------------------------------------------------ */

static time_t
monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The slot of client, or NULL; stale counts are forgotten on the way. */
static struct client_failures *
client_find(struct auth *a, const char *client, time_t now)
{
	for (size_t i = 0; i < AUTH_CLIENTS; i++) {
		struct client_failures *c = &a->clients[i];

		if (c->client[0] != '\0' && now - c->last > FAILURES_FORGOTTEN)
			c->client[0] = '\0';
		if (c->client[0] != '\0' && strcmp(c->client, client) == 0)
			return c;
	}
	return NULL;
}

unsigned
auth_client_failed(struct auth *a, const char *client)
{
	time_t now = monotonic_s();
	struct client_failures *c = client_find(a, client, now), *oldest = &a->clients[0];

	if (c == NULL) {
		for (size_t i = 0; i < AUTH_CLIENTS && oldest->client[0] != '\0'; i++)
			if (a->clients[i].client[0] == '\0' || a->clients[i].last < oldest->last)
				oldest = &a->clients[i];
		c = oldest;
		snprintf(c->client, sizeof(c->client), "%s", client);
		c->failures = 0;
	}
	c->last = now;
	return c->failures < UINT32_MAX ? ++c->failures : c->failures;
}

void
auth_client_succeeded(struct auth *a, const char *client)
{
	struct client_failures *c = client_find(a, client, monotonic_s());

	if (c != NULL)
		c->client[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Writing the derived keys                                            */
/* ------------------------------------------------------------------ */

static int
derived_prepare(void *arg)
{
	struct derived_write *w = arg;

	return userdb_file_prepare(w->auth->dirfd, DERIVED_TMP, w->text, w->len, NULL);
}

static int
derived_publish(void *arg, struct spool_dirset *dirs)
{
	struct derived_write *w = arg;

	if (renameat(w->auth->dirfd, DERIVED_TMP, w->auth->dirfd, DERIVED_NAME) < 0)
		return -errno;
	return spool_dirset_add(dirs, AUTH_DIR);
}

static void
derived_done(void *arg, int result)
{
	struct derived_write *w = arg;
	struct auth *a = w->auth;

	if (result == 0)
		log_info("auth-transition", "step=stored path=%s/%s/%s users=%zu", a->cfg->spool_dir, AUTH_DIR,
		    DERIVED_NAME, userdb_count(a->derived));
	else
		log_error("auth-transition", "step=store-failed path=%s/%s/%s error=\"%s\" action=\"kept in memory; "
		    "written again at the next transition\"", a->cfg->spool_dir, AUTH_DIR, DERIVED_NAME,
		    strerror(-result));
	explicit_bzero(w->text, w->len);
	free(w->text);
	free(w);
	a->writing = false;
	if (a->dirty)
		derived_write_start(a);
}

static void
derived_write_start(struct auth *a)
{
	struct derived_write *w;
	int r = -ENOENT;

	if (a->dirfd < 0 || (w = calloc(1, sizeof(*w))) == NULL) {
		log_error("auth-transition", "step=store-failed error=\"%s\"", a->dirfd < 0 ?
		    "no auth/ directory in the spool" : "out of memory");
		return;
	}
	w->auth = a;
	w->job.prepare = derived_prepare;
	w->job.publish = derived_publish;
	w->job.done = derived_done;
	w->job.arg = w;
	if ((r = userdb_format(a->derived, &w->text, &w->len)) < 0 || (r = commitq_submit(a->cq, &w->job)) < 0) {
		log_error("auth-transition", "step=store-failed error=\"%s\"", strerror(-r));
		free(w->text);
		free(w);
		return;
	}
	a->writing = true;
	a->dirty = false;
}
