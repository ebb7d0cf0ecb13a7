/*
 * NAME
 *	server - the SMTP listener and the table of live sessions
 * SYNOPSIS
 *	#include "server.h"
 *
 *	int server_new(struct event_base *base, const struct cfg *cfg,
 *			struct spool *spool, struct server **out);
 *	void server_start(struct server *srv, struct commitq *cq, struct runner *runner);
 *	void server_shutdown(struct server *srv, void (*drained)(void *), void *arg);
 *	void server_reload_tls(struct server *srv);
 *	void server_free(struct server *srv);
 * DESCRIPTION
 *	server_new() binds one listening socket per configured listener
 *	(cfg->listeners: "host:port", "[v6]:port") but accepts nothing yet, so
 *	that the caller can bind while still root and drop privileges before
 *	any client is served.  Errors: -EINVAL (listen not parsable), -errno
 *	of socket/bind/listen; nothing stays bound after an error.  Each
 *	struct server_listener keeps its configuration (policy: TLS, AUTH,
 *	relay_networks) and bound address; a session knows the listener that
 *	accepted it.  server_address() is the first listener's bound address
 *	as "ip:port" / "[ip]:port" (the real port when the configured one was
 *	0); srv->listeners[i].addr the others'.
 *
 *	TLS: a listener whose tls is not none gets its OpenSSL server context
 *	(tls.h: certificate, chain, key, ciphers) in server_new(), so while
 *	still root: a key only root may read works.  When the files cannot be
 *	loaded the error is logged (event=tls-unavailable, naming the file)
 *	and the listener still starts, with tls NULL: under may it takes mail
 *	in plaintext and answers STARTTLS 454 4.7.0 (as Postfix does), under
 *	encrypt it takes no mail at all (MAIL is refused 530), under wrapper
 *	it closes each connection.  server_reload_tls() (SIGHUP) builds every
 *	listener's context again from its files: a context that loads
 *	replaces the old one for new sessions (sessions already in TLS keep
 *	theirs), one that does not leaves the old one in use and is logged
 *	(event=tls-reload-failed, naming the file).  A reload happens after
 *	the drop of root: the files must then be readable by [spool] user.
 *
 *	server_start() gives the server the committer and the relay's queue
 *	runner (which sessions kick at the end of DATA) and starts accepting.  A connection
 *	over cfg->max_sessions, or over cfg->max_sessions_per_client from one
 *	address, gets 421 4.7.0 and is closed at once.  When accept() fails
 *	for want of descriptors (EMFILE, ENFILE), a reserve descriptor kept
 *	open for the purpose is spent on answering the client 421 4.3.2.
 *
 *	server_shutdown() stops accepting and asks every session to end: idle
 *	sessions get 421 4.3.2 and are closed, a session whose message is
 *	being committed gets its reply first.  drained(arg) is called once no
 *	session is left, or after a grace period, whichever comes first.
 *
 *	Sessions are found by a 64-bit id that is never reused in a process:
 *	work that finishes later (a commit) looks its session up with
 *	server_lookup() and gets NULL when the session is gone.
 *	server_register() (with the client's address, for the per-client
 *	limit) and server_unregister() are for session.c.
 * OWNERSHIP
 *	The server owns its listeners and every session; server_free() frees
 *	sessions still alive.  It does not own cfg, spool, cq or runner, which
 *	must outlive it; call it after commitq_free() so that commit callbacks
 *	still find the table.
 * THREADS
 *	Event loop thread only.
 */
#ifndef SPOOLGATE_SERVER_H
#define SPOOLGATE_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "../common/cfg.h"
#include "../common/spool.h"
#include "../common/tls.h"
#include "commitq.h"
#include "runner.h"

struct session;
struct server_slot;
struct auth;
struct server;

#define SERVER_ADDR_MAX	64	/* "[ipv6]:port" */

/* One listening socket and its policy. */
struct server_listener {
	struct server	       *srv;
	const struct cfg_listener *cfg;		/* name, listen, tls, auth, relay_networks */
	struct evconnlistener  *evl;
	char			addr[SERVER_ADDR_MAX];	/* bound address */
	enum tls_policy		tls_policy;	/* none, may, encrypt or wrapper (cfg->tls) */
	struct tls_server      *tls;		/* NULL: tls none, or the files did not load */
};

struct server {
	struct event_base      *base;
	const struct cfg       *cfg;
	struct spool	       *spool;
	struct commitq	       *cq;		/* from server_start() */
	struct runner	       *runner;		/* from server_start() */
	struct auth	       *auth;		/* AUTH's users and SASL (auth.h), set before server_start() */
	struct aliases_source  *aliases;	/* [aliases] file (aliases.h), or NULL; main.c's */
	struct server_listener	listeners[CFG_MAX_LISTENERS];
	size_t			nlisteners;
	struct event	       *ev_resume;	/* accepting again after EMFILE & co */
	struct event	       *ev_grace;	/* shutdown grace period */
	int			reserve_fd;	/* /dev/null, spent when accept() hits EMFILE */
	const char	       *hostname;	/* our name in replies and Received: */

	struct server_slot    **slots;		/* live sessions by id, chained */
	size_t			nslots;		/* a power of two */
	unsigned		nsessions;
	uint64_t		next_id;

	bool			stopping;
	void		      (*drained)(void *arg);
	void		       *drained_arg;
};

int server_new(struct event_base *base, const struct cfg *cfg, struct spool *spool,
		struct server **out);
const char *server_address(const struct server *srv);
void server_start(struct server *srv, struct commitq *cq, struct runner *runner);
void server_shutdown(struct server *srv, void (*drained)(void *), void *arg);
void server_reload_tls(struct server *srv);
void server_free(struct server *srv);

/* The session table (for session.c). */
int server_register(struct server *srv, struct session *s, const struct sockaddr *sa,
		uint64_t *id);	/* 0 or -ENOMEM */
void server_unregister(struct server *srv, uint64_t id);
struct session *server_lookup(const struct server *srv, uint64_t id);

#endif
