/*
 * NAME
 *	session - one SMTP conversation (RFC 5321) on a bufferevent
 * SYNOPSIS
 *	#include "session.h"
 *
 *	void session_accept(const struct server_listener *lst, evutil_socket_t fd,
 *			const struct sockaddr *sa, int salen);
 *	void session_refuse(struct server *srv, evutil_socket_t fd,
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
 *	session_refuse() answers a connection with one reply (421 when there
 *	are too many sessions, too many from its address, or no descriptor
 *	left) without making a session, and closes it; sa (may be NULL) is
 *	the client's address, for the log.
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
void session_refuse(struct server *srv, evutil_socket_t fd, enum reply_id reply, const struct sockaddr *sa);
void session_stop(struct session *s);
void session_free(struct session *s);

#endif
