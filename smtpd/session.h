/*
 * NAME
 *	session - one SMTP conversation (RFC 5321) on a bufferevent
 * SYNOPSIS
 *	#include "session.h"
 *
 *	void session_accept(const struct server_listener *lst, evutil_socket_t fd,
 *			const struct sockaddr *sa, int salen);
 *	void session_refuse(const struct server_listener *lst, evutil_socket_t fd,
 *			enum reply_id reply, const struct sockaddr *sa);
 *	void session_stop(struct session *s);
 *	void session_free(struct session *s);
 * DESCRIPTION
 *	session_accept() takes a socket freshly accepted by listener lst
 *	(whose policy the session follows), registers a session with the
 *	listener's server, sends the greeting and serves the client: commands
 *	are read from a command table, in order, pipelined or not; the message
 *	after DATA is streamed into the spool and committed through commitq,
 *	and its 250 is sent only once the commit is durable.  On any failure
 *	to set the session up the socket is closed.  Three clocks bound a
 *	session: cfg->idle_timeout without a byte, cfg->command_deadline for
 *	one whole line (a command, or a line of the message: bytes trickling
 *	in do not restart it), cfg->session_deadline for the whole session;
 *	each ends it with 421 4.4.2.
 *
 *	TLS follows the listener's tls (server.h): STARTTLS (RFC 3207) is
 *	offered in EHLO on a listener with a usable certificate (may,
 *	encrypt) until TLS is up, answered 220 2.0.0, 454 4.7.0 (no usable
 *	certificate), 502 5.5.1 (tls = none), 501 5.5.4 (an argument), 503
 *	5.5.1 (inside a transaction or inside TLS); everything learned before
 *	the handshake is forgotten and bytes pipelined behind STARTTLS are
 *	discarded (event=starttls-injection).  Under encrypt MAIL before TLS is
 *	530 5.7.0.  Under wrapper (RFC 8314) the handshake comes first, then
 *	the greeting.  A failed handshake ends the session without a reply
 *	(event=tls-failed with OpenSSL's reason).  Received: then names the TLS
 *	version and cipher and says ESMTPS; event=accepted says tls=... or
 *	tls=no.
 *
 *	session_refuse() answers a connection with one reply (421 when there
 *	are too many sessions, too many from its address, or no descriptor
 *	left) without making a session, and closes it; sa (may be NULL) is
 *	the client's address, for the log.  On a wrapper listener nothing is
 *	sent (the client expects a TLS handshake, not plaintext): the
 *	connection is only closed, and the log line says sent=no.
 *
 *	session_stop() is the server shutting down: the session says 421 4.3.2
 *	and closes, except while its message is being committed, in which case
 *	it sends the commit's reply first.
 *
 *	session_free() is the one function that frees a session: it drops the
 *	transaction (a message being received is removed from tmp/), closes
 *	the connection and unregisters the id.  A session never calls it from
 *	its own bufferevent callbacks; it schedules it as a deferred event.
 * THREADS
 *	Event loop thread only.
 */
#ifndef SPOOLGATE_SESSION_H
#define SPOOLGATE_SESSION_H

#include <sys/socket.h>
#include <event2/util.h>

#include "../common/errmap.h"
#include "server.h"

void session_accept(const struct server_listener *lst, evutil_socket_t fd, const struct sockaddr *sa,
    int salen);
void session_refuse(const struct server_listener *lst, evutil_socket_t fd, enum reply_id reply,
    const struct sockaddr *sa);
void session_stop(struct session *s);
void session_free(struct session *s);

#endif
