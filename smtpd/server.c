/*
 * NAME
 *	server - the SMTP listener and the table of live sessions
 * SYNOPSIS
 *	See server.h.
 * DESCRIPTION
 *	One evconnlistener per configured listener accepts; each connection
 *	becomes a session, which keeps the listener's policy
 *	(session.c) or a one-line 421 refusal: over cfg->max_sessions, or over
 *	cfg->max_sessions_per_client sessions from its address (counted by a
 *	walk over the live sessions: at most max_sessions of them).
 *	Sessions are kept in a small chained hash keyed by their 64-bit id,
 *	sized once for max_sessions (ids are sequential, so the low bits spread
 *	them evenly).
 *
 *	Out of descriptors: the server keeps one reserve descriptor (/dev/null)
 *	open.  When accept() fails with EMFILE or ENFILE, it closes the
 *	reserve, accepts the waiting client, answers 421 4.3.2 and closes it,
 *	then opens the reserve again: a client is never left in the backlog
 *	without a word, and each turn of the loop takes one client out of the
 *	backlog, so it does not spin.  Without a reserve (it could not be
 *	opened again), or on any other accept error (ENOBUFS...), the listener
 *	pauses for a second instead of spinning on a socket that stays
 *	readable, and tries to get its reserve back.
 *
 *	TLS contexts are made per listener before its socket is bound (so a
 *	listener that fails to bind leaves no context behind) from the
 *	listener's tls_* keys; see server.h for what happens when they do not
 *	load and on SIGHUP.
 * DIAGNOSTICS
 *	event=accept-error, out-of-descriptors, shutdown, shutdown-grace,
 *	tls-unavailable (a context that did not load at start), tls-reload
 *	and tls-reload-failed (SIGHUP).
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../common/cfg.h"
#include "../common/errmap.h"
#include "../common/log.h"
#include "server.h"
#include "session.h"

#define SERVER_BACKLOG		511
#define ACCEPT_PAUSE		1	/* seconds without accepting after an accept error */
#define SHUTDOWN_GRACE		30	/* seconds for sessions to finish at shutdown */
#define SLOTS_MIN		64
#define SLOTS_MAX		(1u << 16)

struct server_slot {
	uint64_t		id;
	struct session	       *session;
	struct server_slot     *next;
	int			family;		/* the client's address, for the per-client limit */
	unsigned char		addr[16];
};

/* The client's address as family and bytes; false for other families. */
static bool
client_address(const struct sockaddr *sa, int *family, unsigned char addr[16])
{
	memset(addr, 0, 16);
	*family = sa->sa_family;
	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

static struct server_slot **
slot_head(const struct server *srv, uint64_t id)
{
	return &srv->slots[id & (srv->nslots - 1)];
}

int
server_register(struct server *srv, struct session *s, const struct sockaddr *sa, uint64_t *id)
{
	struct server_slot *slot, **head;

	if ((slot = malloc(sizeof(*slot))) == NULL)
		return -ENOMEM;
	if (!client_address(sa, &slot->family, slot->addr))
		slot->family = AF_UNSPEC;
	slot->id = ++srv->next_id;
	slot->session = s;
	head = slot_head(srv, slot->id);
	slot->next = *head;
	*head = slot;
	srv->nsessions++;
	*id = slot->id;
	return 0;
}

void
server_unregister(struct server *srv, uint64_t id)
{
	struct server_slot **pp, *slot;
	void (*drained)(void *);

	for (pp = slot_head(srv, id); (slot = *pp) != NULL; pp = &slot->next) {
		if (slot->id != id)
			continue;
		*pp = slot->next;
		free(slot);
		srv->nsessions--;
		break;
	}
	if (srv->stopping && srv->nsessions == 0 && (drained = srv->drained) != NULL) {
		srv->drained = NULL;
		drained(srv->drained_arg);
	}
}

struct session *
server_lookup(const struct server *srv, uint64_t id)
{
	const struct server_slot *slot;

	for (slot = *slot_head(srv, id); slot != NULL; slot = slot->next)
		if (slot->id == id)
			return slot->session;
	return NULL;
}

/* Live sessions from the address of sa. */
static unsigned
sessions_from(const struct server *srv, const struct sockaddr *sa)
{
	const struct server_slot *slot;
	unsigned char addr[16];
	unsigned n = 0;
	size_t i;
	int family;

	if (!client_address(sa, &family, addr))
		return 0;
	for (i = 0; i < srv->nslots; i++)
		for (slot = srv->slots[i]; slot != NULL; slot = slot->next)
			if (slot->family == family && memcmp(slot->addr, addr, sizeof(addr)) == 0)
				n++;
	return n;
}

/*
 * Replies go out as soon as they are written.  The session already writes
 * each turn's replies in one go (a pipelined group's replies together), so
 * Nagle's algorithm only ever delays a reply behind an unacknowledged one:
 * after STARTTLS, OpenSSL's two TLS 1.3 session tickets are two writes, and
 * the second, with the EHLO reply behind it, waited for the client's
 * delayed ACK (about 40 ms a connection; bench/ingest-tls measured it).
 */
static void
socket_no_delay(evutil_socket_t fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_debug("nodelay", "error=\"%s\"", strerror(errno));
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct server_listener *lst = arg;
	struct server *srv = lst->srv;

	(void)evl;
	if (srv->stopping) {
		evutil_closesocket(fd);
		return;
	}
	if (srv->nsessions >= srv->cfg->max_sessions) {
		session_refuse(lst, fd, REPLY_TOO_MANY_SESSIONS, sa);
		return;
	}
	if (sessions_from(srv, sa) >= srv->cfg->max_sessions_per_client) {
		session_refuse(lst, fd, REPLY_TOO_MANY_FROM_CLIENT, sa);
		return;
	}
	socket_no_delay(fd);
	session_accept(lst, fd, sa, salen);
}

static int
reserve_open(struct server *srv)
{
	if (srv->reserve_fd < 0)
		srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return srv->reserve_fd;
}

/*
 * accept() failed for want of a descriptor: spend the reserve on the
 * client that waits, tell it 421 4.3.2, and take the reserve back.
 * False when there was no reserve or no client could be accepted.
 */
static bool
refuse_with_reserve(struct server_listener *lst)
{
	struct server *srv = lst->srv;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd;

	if (srv->reserve_fd < 0)
		return false;
	close(srv->reserve_fd);
	srv->reserve_fd = -1;
	fd = accept4(evconnlistener_get_fd(lst->evl), (struct sockaddr *)&ss, &sslen,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		session_refuse(lst, fd, REPLY_OUT_OF_DESCRIPTORS, (struct sockaddr *)&ss);
	if (reserve_open(srv) < 0)
		log_error("out-of-descriptors", "addr=%s error=\"%s\" reason=\"cannot reopen the reserve descriptor\"",
		    lst->addr, strerror(errno));
	return fd >= 0;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	size_t i;

	(void)fd;
	(void)what;
	reserve_open(srv);
	if (!srv->stopping)
		for (i = 0; i < srv->nlisteners; i++)
			evconnlistener_enable(srv->listeners[i].evl);
}

static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct server_listener *lst = arg;
	struct server *srv = lst->srv;
	struct timeval tv = { ACCEPT_PAUSE, 0 };
	int err = EVUTIL_SOCKET_ERROR();

	if ((err == EMFILE || err == ENFILE) && refuse_with_reserve(lst)) {
		log_error("out-of-descriptors", "addr=%s error=\"%s\" sessions=%u action=\"421 4.3.2 to one client\"",
		    lst->addr, strerror(err), srv->nsessions);
		return;
	}
	log_error("accept-error", "addr=%s error=\"%s\" pause=%ds", lst->addr, strerror(err), ACCEPT_PAUSE);
	evconnlistener_disable(evl);
	evtimer_add(srv->ev_resume, &tv);
}

/* "ip:port" or "[ip6]:port" of a bound socket. */
static void
format_address(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(out, size, "%s:%u", ip, ntohs(a->sin_port));
	}
}

/* The listener's TLS files, as tls_server_new() takes them. */
static struct tls_server_opts
listener_tls_opts(const struct cfg_listener *lc)
{
	return (struct tls_server_opts){
		.cert_file = lc->tls_cert_file,
		.key_file = lc->tls_key_file,
		.chain_file = lc->tls_chain_file,
		.ciphers = lc->tls_ciphers,
		.ciphersuites = lc->tls_ciphersuites,
	};
}

/*
 * The listener's policy, and its context when it has TLS.  Files that do
 * not load leave the listener without TLS (logged), not the daemon down:
 * an MX host keeps taking mail in plaintext while the operator fixes them.
 */
static int
listener_tls_load(struct server_listener *lst)
{
	const struct cfg_listener *lc = lst->cfg;
	struct tls_server_opts o = listener_tls_opts(lc);
	char err[TLS_ERR_LEN], q[TLS_ERR_LEN + 16];

	if (tls_policy_parse(lc->tls, &lst->tls_policy) < 0 || lst->tls_policy == TLS_POLICY_VERIFY) {
		log_error("listen", "listener=%s tls=%s error=\"not a listener's TLS policy\"", lc->name, lc->tls);
		return -EINVAL;
	}
	if (lst->tls_policy == TLS_POLICY_NONE)
		return 0;
	if (tls_server_new(&lst->tls, &o, err, sizeof(err)) < 0)
		log_error("tls-unavailable", "listener=%s tls=%s error=%s action=\"%s\"", lc->name, lc->tls,
		    log_quote(q, sizeof(q), err), lst->tls_policy == TLS_POLICY_WRAPPER ?
		    "connections are closed until a reload loads the files" :
		    "STARTTLS is answered 454 4.7.0 until a reload loads the files");
	return 0;
}

/* SIGHUP: every listener's files again; a failure keeps what was in use. */
static void
listener_tls_reload(struct server_listener *lst)
{
	const struct cfg_listener *lc = lst->cfg;
	struct tls_server_opts o = listener_tls_opts(lc);
	char err[TLS_ERR_LEN], q[TLS_ERR_LEN + 16];
	int r;

	if (lst->tls_policy == TLS_POLICY_NONE)
		return;
	r = lst->tls != NULL ? tls_server_reload(lst->tls, &o, err, sizeof(err)) :
	    tls_server_new(&lst->tls, &o, err, sizeof(err));
	if (r < 0)
		log_error("tls-reload-failed", "listener=%s error=%s action=\"%s\"", lc->name,
		    log_quote(q, sizeof(q), err), lst->tls != NULL ? "the previous certificate stays in use" :
		    "still without TLS");
	else
		log_info("tls-reload", "listener=%s cert=%s key=%s", lc->name, lc->tls_cert_file, lc->tls_key_file);
}

void
server_reload_tls(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++)
		listener_tls_reload(&srv->listeners[i]);
}

static int
listener_bind(struct server *srv, struct server_listener *lst, const struct cfg_listener *lc)
{
	char host[256], port[16];
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	unsigned portnum;
	int r;

	lst->srv = srv;
	lst->cfg = lc;
	if (cfg_split_hostport(lc->listen, host, sizeof(host), &portnum) < 0) {
		log_error("listen", "listener=%s listen=%s error=\"not host:port or [ipv6]:port\"", lc->name, lc->listen);
		return -EINVAL;
	}
	snprintf(port, sizeof(port), "%u", portnum);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai)) != 0) {
		log_error("listen", "listener=%s listen=%s error=\"%s\"", lc->name, lc->listen, gai_strerror(r));
		return -EINVAL;
	}
	if ((r = listener_tls_load(lst)) < 0) {
		freeaddrinfo(ai);
		return r;
	}
	lst->evl = evconnlistener_new_bind(srv->base, accept_cb, lst,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_DISABLED,
	    SERVER_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
	r = errno;
	freeaddrinfo(ai);
	if (lst->evl == NULL) {
		log_error("listen", "listener=%s listen=%s error=\"%s\"", lc->name, lc->listen, strerror(r));
		tls_server_free(lst->tls);
		lst->tls = NULL;
		return r ? -r : -EADDRNOTAVAIL;
	}
	evconnlistener_set_error_cb(lst->evl, accept_error_cb);
	if (getsockname(evconnlistener_get_fd(lst->evl), (struct sockaddr *)&ss, &sslen) == 0)
		format_address(&ss, lst->addr, sizeof(lst->addr));
	else
		snprintf(lst->addr, sizeof(lst->addr), "%s", lc->listen);
	return 0;
}

static int
server_bind(struct server *srv)
{
	size_t i;
	int r;

	for (i = 0; i < srv->cfg->n_listeners; i++) {
		if ((r = listener_bind(srv, &srv->listeners[i], &srv->cfg->listeners[i])) < 0)
			return r;
		srv->nlisteners++;
	}
	if (srv->nlisteners == 0) {
		log_error("listen", "error=\"no listener configured\"");
		return -EINVAL;
	}
	return 0;
}

int
server_new(struct event_base *base, const struct cfg *cfg, struct spool *spool, struct server **out)
{
	struct server *srv;
	int r;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return -ENOMEM;
	srv->base = base;
	srv->cfg = cfg;
	srv->spool = spool;
	srv->reserve_fd = -1;
	if (reserve_open(srv) < 0) {
		r = -errno;
		server_free(srv);
		return r;
	}
	srv->hostname = cfg->hostname != NULL && cfg->hostname[0] != '\0' ? cfg->hostname : spool_hostname(spool);
	for (srv->nslots = SLOTS_MIN; srv->nslots < 2 * (size_t)cfg->max_sessions && srv->nslots < SLOTS_MAX;)
		srv->nslots *= 2;
	if ((srv->slots = calloc(srv->nslots, sizeof(*srv->slots))) == NULL ||
	    (srv->ev_resume = evtimer_new(base, resume_cb, srv)) == NULL) {
		server_free(srv);
		return -ENOMEM;
	}
	if ((r = server_bind(srv)) < 0) {
		server_free(srv);
		return r;
	}
	*out = srv;
	return 0;
}

const char *
server_address(const struct server *srv)
{
	return srv->listeners[0].addr;
}

void
server_start(struct server *srv, struct commitq *cq, struct runner *runner)
{
	size_t i;

	srv->cq = cq;
	srv->runner = runner;
	for (i = 0; i < srv->nlisteners; i++)
		evconnlistener_enable(srv->listeners[i].evl);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	void (*drained)(void *) = srv->drained;

	(void)fd;
	(void)what;
	log_warn("shutdown-grace", "sessions=%u reason=\"sessions did not end in %ds\"", srv->nsessions,
	    SHUTDOWN_GRACE);
	srv->drained = NULL;
	if (drained != NULL)
		drained(srv->drained_arg);
}

void
server_shutdown(struct server *srv, void (*drained)(void *), void *arg)
{
	struct timeval tv = { SHUTDOWN_GRACE, 0 };
	struct server_slot *slot;
	size_t i;

	if (srv->stopping)
		return;
	srv->stopping = true;
	srv->drained = drained;
	srv->drained_arg = arg;
	for (i = 0; i < srv->nlisteners; i++)
		evconnlistener_disable(srv->listeners[i].evl);
	event_del(srv->ev_resume);
	log_info("shutdown", "sessions=%u", srv->nsessions);
	/* session_stop() only schedules frees, so the chains stay intact here. */
	for (i = 0; i < srv->nslots; i++)
		for (slot = srv->slots[i]; slot != NULL; slot = slot->next)
			session_stop(slot->session);
	if (srv->nsessions == 0) {
		srv->drained = NULL;
		drained(arg);
		return;
	}
	if ((srv->ev_grace = evtimer_new(srv->base, grace_cb, srv)) == NULL || evtimer_add(srv->ev_grace, &tv) < 0) {
		srv->drained = NULL;
		drained(arg);		/* no timer: do not risk waiting forever */
	}
}

void
server_free(struct server *srv)
{
	size_t i;

	if (srv == NULL)
		return;
	srv->drained = NULL;
	for (i = 0; srv->slots != NULL && i < srv->nslots; i++)
		while (srv->slots[i] != NULL)
			session_free(srv->slots[i]->session);	/* unregisters it */
	for (i = 0; i < srv->nlisteners; i++) {
		evconnlistener_free(srv->listeners[i].evl);
		tls_server_free(srv->listeners[i].tls);
	}
	if (srv->ev_resume != NULL)
		event_free(srv->ev_resume);
	if (srv->ev_grace != NULL)
		event_free(srv->ev_grace);
	if (srv->reserve_fd >= 0)
		close(srv->reserve_fd);
	free(srv->slots);
	free(srv);
}
