/*
 * NAME
 *	tls-source - SMTP load generator over STARTTLS or implicit TLS
 * SYNOPSIS
 *	tls-source [-d] [-S | -W] [-V 1.2|1.3] [-s SESSIONS] [-m MESSAGES]
 *		   [-l SIZE] [-f FROM] [-t TO] [-H HELO] [-T SECONDS]
 *		   [-b ADDR[,ADDR]...] [-v] HOST:PORT
 *	tls-source -I [-S | -W] [-V 1.2|1.3] [-s SESSIONS] [-r RAMP]
 *		   [-H HELO] [-T SECONDS] [-b ADDR[,ADDR]...] HOST:PORT
 * DESCRIPTION
 *	Postfix's smtp-source(1), with TLS: one process, one libevent loop
 *	(epoll), non-blocking sockets, OpenSSL through libevent's OpenSSL
 *	bufferevents.  It keeps SESSIONS SMTP sessions (default 1) busy until
 *	MESSAGES messages (default 1) have been sent to HOST:PORT, each from
 *	FROM to TO (defaults bench@localhost, bob@localhost) with a body of
 *	SIZE octets (default 4096, lines of 78 'x' and CRLF) after a From:,
 *	To: and Subject: header.  Commands go one at a time, each reply read
 *	before the next command (no PIPELINING), as smtp-source does.
 *
 *	Without -d a connection carries one message (greeting, EHLO, MAIL,
 *	RCPT, DATA, QUIT) and the session then opens a new one; with -d it
 *	carries messages until none is left.  -S sends STARTTLS after the
 *	first EHLO (the server must offer it), makes the handshake and sends
 *	EHLO again; -W makes the handshake first, before the greeting
 *	(implicit TLS, RFC 8314).  Every handshake is a full one (no session
 *	resumption); the certificate is not verified (a benchmark peer on
 *	loopback, usually self-signed).  -V limits the protocol to TLS 1.2 or
 *	1.3; the default allows both.
 *
 *	Every reply is checked: 220 for the greeting and STARTTLS, 250 for
 *	EHLO, MAIL, RCPT and the end of data, 354 for DATA, 221 for QUIT.
 *	Any other reply, a connection closed or a TLS failure before the
 *	expected reply, or no reply within -T SECONDS (default 60), is an
 *	error: the session's connection is dropped, its message (if it had
 *	one) counts as failed and is not sent again, and the session starts
 *	over with the next message.  The first errors are printed.
 *
 *	-I (idle) is the memory test: SESSIONS sessions (at most RAMP, default
 *	100, being set up at once) each make the greeting, EHLO and, with -S,
 *	STARTTLS and EHLO again, or with -W the handshake, greeting and EHLO,
 *	and then stay open and silent.  When all of them are (or failed), one
 *	line "tls-source: idle: N sessions open ..." is printed on stdout and
 *	flushed; on SIGTERM, SIGINT or SIGUSR1 every idle session sends QUIT
 *	and the program exits once the 221s are in.  A session the server
 *	closes while idle is an error.
 *
 *	-b gives source addresses, used in turn for the connections (bound
 *	with IP_BIND_ADDRESS_NO_PORT): several loopback addresses give more
 *	ephemeral ports and spread per-client limits.  RLIMIT_NOFILE is
 *	raised to fit SESSIONS (as root beyond the hard limit too).
 * OUTPUT
 *	On stdout, at the end: the messages sent, the wall time from the first
 *	connection to the last close, messages per second, connections, TLS
 *	handshakes (with the protocol and cipher of the first), errors; then
 *	one line "RESULT key=value ..." for scripts.  Errors on stderr.
 * EXIT STATUS
 *	0 when every message got its 250 (with -I: every session got idle and
 *	there was no error), 1 otherwise, 2 for a usage error.
 * THREADS
 *	One thread.
 * OWNERSHIP
 *	The run (struct source) owns the sessions; a session owns its
 *	bufferevent.  Before TLS the session owns the socket and the plain
 *	bufferevent does not close it; the TLS bufferevent closes it and frees
 *	its SSL.  A session's next connection is started from its own "kick"
 *	event, never from inside a callback of the bufferevent just freed.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define REPLY_LINE_MAX	4096	/* longer reply lines are an error */
#define ERRORS_SHOWN	10	/* without -v, the first errors printed */
#define BODY_LINE	78	/* 'x' per body line, before CRLF */

/* Options */

struct opts {
	unsigned	sessions, messages, size, ramp, timeout;
	const char     *from, *to, *helo;
	bool		reuse, starttls, wrapper, idle, verbose;
	int		tls_version;	/* 0: TLS 1.2 and 1.3 */
	struct sockaddr_storage server;
	socklen_t	server_len;
	struct sockaddr_storage *sources;
	size_t		nsources;
};

/* The steps of a session: what it waits for, and what follows that */

enum step {
	STEP_HANDSHAKE,		/* TLS handshake (-W at connect, -S after 220) */
	STEP_GREETING,
	STEP_EHLO,
	STEP_STARTTLS,
	STEP_MAIL,
	STEP_RCPT,
	STEP_DATA,
	STEP_DOT,
	STEP_QUIT,
	STEP_IDLE,		/* -I: open and silent, no reply expected */
};

struct session;
typedef void	(*step_fn)(struct session *);

static void	after_greeting(struct session *);
static void	after_ehlo(struct session *);
static void	after_starttls(struct session *);
static void	after_mail(struct session *);
static void	after_rcpt(struct session *);
static void	after_data(struct session *);
static void	after_dot(struct session *);
static void	after_quit(struct session *);

static const struct {
	const char     *name;
	int		want;		/* reply code; 0: no reply expected */
	step_fn		next;		/* on that reply */
} steps[] = {
	[STEP_HANDSHAKE] = { "TLS handshake", 0,   NULL },
	[STEP_GREETING]  = { "greeting",      220, after_greeting },
	[STEP_EHLO]      = { "EHLO",          250, after_ehlo },
	[STEP_STARTTLS]  = { "STARTTLS",      220, after_starttls },
	[STEP_MAIL]      = { "MAIL FROM",     250, after_mail },
	[STEP_RCPT]      = { "RCPT TO",       250, after_rcpt },
	[STEP_DATA]      = { "DATA",          354, after_data },
	[STEP_DOT]       = { "end of data",   250, after_dot },
	[STEP_QUIT]      = { "QUIT",          221, after_quit },
	[STEP_IDLE]      = { "idle",          0,   NULL },
};

/* The run and its sessions */

struct source;

struct session {
	struct source  *src;
	struct bufferevent *bev;	/* NULL: no connection */
	struct event   *kick;		/* starts the next connection */
	evutil_socket_t	fd;
	enum step	step;
	bool		tls;		/* bev is the TLS bufferevent (owns fd) */
	bool		owns_fd;	/* -S before TLS: close fd after the bev */
	bool		has_message;	/* a claimed message not yet answered */
	bool		was_idle;	/* -I: got idle once */
	bool		offers_starttls;	/* in the current EHLO reply */
};

struct source {
	struct opts	o;
	struct event_base *base;
	SSL_CTX	       *ctx;
	struct session *sessions;
	struct event   *sigev[3];
	char	       *payload;	/* headers, body, "." */
	size_t		payload_len;
	unsigned	claimed;	/* messages handed to sessions */
	unsigned	sent, failed;	/* 250 after the data / not */
	unsigned	open;		/* sessions with a connection */
	unsigned	started;	/* -I: sessions started */
	unsigned	idle;		/* -I: sessions that got idle */
	unsigned	setup_failed;	/* -I: sessions that failed before */
	unsigned	idle_lost;	/* -I: idle sessions that failed */
	unsigned long	connections, handshakes, errors;
	size_t		next_source;
	bool		stopping, ready_printed;
	char		tls_version[32], tls_cipher[64];
	struct timespec	t0, t1;
};

static void	session_start(struct session *);
static void	start_more(struct source *);
static void	session_close(struct session *);
static void	maybe_finish(struct source *);

/* Small helpers */

static double
elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void
session_send(struct session *s, enum step next, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
	va_end(ap);
	s->step = next;
}

/* One line per error on stderr, the first ERRORS_SHOWN (all with -v). */
static void
session_fail(struct session *s, const char *fmt, ...)
{
	struct source *src = s->src;
	va_list ap;

	src->errors++;
	if (src->o.verbose || src->errors <= ERRORS_SHOWN) {
		fprintf(stderr, "tls-source: session %zu: ", (size_t)(s - src->sessions));
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	if (s->has_message) {
		s->has_message = false;
		src->failed++;
	}
	if (src->o.idle && !s->was_idle)
		src->setup_failed++;
	else if (src->o.idle)
		src->idle_lost++;
	session_close(s);
	if (src->o.idle)
		start_more(src);
	else if (!src->stopping)
		event_active(s->kick, 0, 0);	/* its next message */
	maybe_finish(src);
}

/* The steps */

static bool
claim_message(struct source *src)
{
	if (src->claimed >= src->o.messages || src->stopping)
		return false;
	src->claimed++;
	return true;
}

static void
send_ehlo(struct session *s)
{
	s->offers_starttls = false;
	session_send(s, STEP_EHLO, "EHLO %s\r\n", s->src->o.helo);
}

/*
 * A connection claims its first message when it is opened, so that one that
 * fails before MAIL uses a message up too (the run is bounded); with -d the
 * later ones are claimed here.
 */
static void
next_message(struct session *s)
{
	struct source *src = s->src;

	if (!s->has_message && !claim_message(src)) {
		session_send(s, STEP_QUIT, "QUIT\r\n");
		return;
	}
	s->has_message = true;
	session_send(s, STEP_MAIL, "MAIL FROM:<%s>\r\n", src->o.from);
}

/* The server talked after the last EHLO: a message, or -I's idle state. */
static void
session_ready(struct session *s)
{
	struct source *src = s->src;

	if (!src->o.idle) {
		next_message(s);
		return;
	}
	s->step = STEP_IDLE;
	s->was_idle = true;
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	src->idle++;
	start_more(src);
	maybe_finish(src);
}

static void
after_greeting(struct session *s)
{
	send_ehlo(s);
}

static void
after_ehlo(struct session *s)
{
	if (s->src->o.starttls && !s->tls) {
		if (!s->offers_starttls) {
			session_fail(s, "EHLO reply does not offer STARTTLS");
			return;
		}
		session_send(s, STEP_STARTTLS, "STARTTLS\r\n");
		return;
	}
	session_ready(s);
}

static void	session_event_cb(struct bufferevent *, short, void *);
static void	session_read_cb(struct bufferevent *, void *);

static struct timeval
reply_timeout(const struct source *src)
{
	struct timeval tv = { .tv_sec = src->o.timeout, .tv_usec = 0 };

	return tv;
}

/*
 * 220 to STARTTLS: the plain bufferevent gives way to a TLS one on the same
 * socket.  Anything the server sent after the 220 would have been read
 * before the handshake: a protocol error (and what STARTTLS injection is).
 */
static void
after_starttls(struct session *s)
{
	struct source *src = s->src;
	struct timeval tv = reply_timeout(src);
	SSL *ssl;

	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		session_fail(s, "bytes after the 220 to STARTTLS, before the handshake");
		return;
	}
	if ((ssl = SSL_new(src->ctx)) == NULL) {
		session_fail(s, "SSL_new: %s", ERR_reason_error_string(ERR_get_error()));
		return;
	}
	bufferevent_free(s->bev);
	s->bev = bufferevent_openssl_socket_new(src->base, s->fd, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		SSL_free(ssl);
		evutil_closesocket(s->fd);
		s->owns_fd = false;
		src->open--;
		session_fail(s, "bufferevent_openssl_socket_new failed");
		return;
	}
	s->tls = true;
	s->owns_fd = false;
	s->step = STEP_HANDSHAKE;
	bufferevent_setcb(s->bev, session_read_cb, NULL, session_event_cb, s);
	bufferevent_set_timeouts(s->bev, &tv, NULL);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
after_mail(struct session *s)
{
	session_send(s, STEP_RCPT, "RCPT TO:<%s>\r\n", s->src->o.to);
}

static void
after_rcpt(struct session *s)
{
	session_send(s, STEP_DATA, "DATA\r\n");
}

static void
after_data(struct session *s)
{
	struct source *src = s->src;

	evbuffer_add_reference(bufferevent_get_output(s->bev), src->payload, src->payload_len,
	    NULL, NULL);
	s->step = STEP_DOT;
}

static void
after_dot(struct session *s)
{
	struct source *src = s->src;

	s->has_message = false;
	src->sent++;
	if (src->o.reuse)
		next_message(s);
	else
		session_send(s, STEP_QUIT, "QUIT\r\n");
}

static void
after_quit(struct session *s)
{
	struct source *src = s->src;

	session_close(s);
	if (!src->o.idle && !src->stopping)
		event_active(s->kick, 0, 0);
	maybe_finish(src);
}

/* Replies */

/* The EHLO keyword of one reply line ("250-STARTTLS"). */
static void
note_ehlo_line(struct session *s, const char *line, size_t len)
{
	const char *kw = line + 4;
	size_t n = len - 4;

	if (len >= 12 && strncasecmp(kw, "STARTTLS", 8) == 0 && (n == 8 || kw[8] == ' '))
		s->offers_starttls = true;
}

/*
 * Reads one complete reply; returns 1 with its code, 0 when more input is
 * needed, -1 after failing the session.
 */
static int
read_reply(struct session *s, int *code)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t len;
	char *line;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		bool ok = len >= 3 && line[0] >= '2' && line[0] <= '5' &&
		    line[1] >= '0' && line[1] <= '9' && line[2] >= '0' && line[2] <= '9' &&
		    (len == 3 || line[3] == ' ' || line[3] == '-');
		bool last = len == 3 || (ok && line[3] == ' ');

		if (!ok || len > REPLY_LINE_MAX) {
			session_fail(s, "%s: not an SMTP reply line: \"%.80s\"", steps[s->step].name, line);
			free(line);
			return -1;
		}
		if (s->step == STEP_EHLO && len > 4)
			note_ehlo_line(s, line, len);
		*code = atoi(line);
		if (last && *code != steps[s->step].want) {
			session_fail(s, "%s: %.200s", steps[s->step].name, line);
			free(line);
			return -1;
		}
		free(line);
		if (last)
			return 1;
	}
	if (evbuffer_get_length(in) > REPLY_LINE_MAX) {
		session_fail(s, "%s: a reply line over %d octets", steps[s->step].name, REPLY_LINE_MAX);
		return -1;
	}
	return 0;
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	int code, r;

	while (s->bev == bev && evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		if (steps[s->step].want == 0) {
			char *line = evbuffer_readln(bufferevent_get_input(bev), NULL, EVBUFFER_EOL_CRLF);

			session_fail(s, "%s: unexpected from the server: \"%.200s\"", steps[s->step].name,
			    line != NULL ? line : "(a partial line)");
			free(line);
			return;
		}
		if ((r = read_reply(s, &code)) <= 0)
			return;
		steps[s->step].next(s);
	}
}

static void
note_handshake(struct session *s)
{
	struct source *src = s->src;
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	src->handshakes++;
	if (src->tls_version[0] == '\0') {
		snprintf(src->tls_version, sizeof(src->tls_version), "%s", SSL_get_version(ssl));
		snprintf(src->tls_cipher, sizeof(src->tls_cipher), "%s", SSL_get_cipher_name(ssl));
	}
}

static void
describe_error(struct session *s, short what, char *buf, size_t len)
{
	unsigned long e = s->tls ? bufferevent_get_openssl_error(s->bev) : 0;

	int err = EVUTIL_SOCKET_ERROR();

	if (e != 0)
		ERR_error_string_n(e, buf, len);
	else if (what & BEV_EVENT_TIMEOUT)
		snprintf(buf, len, "no reply within %u s", s->src->o.timeout);
	else if ((what & BEV_EVENT_ERROR) && err != 0)
		snprintf(buf, len, "%s", evutil_socket_error_to_string(err));
	else
		snprintf(buf, len, "connection closed by the server");
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	char why[256];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (!s->tls)
			return;		/* plain: connect() done, wait for the greeting */
		note_handshake(s);
		if (s->src->o.wrapper && s->step == STEP_HANDSHAKE)
			s->step = STEP_GREETING;
		else
			send_ehlo(s);
		return;
	}
	describe_error(s, what, why, sizeof(why));
	session_fail(s, "%s: %s", steps[s->step].name, why);
}

/* Connections */

static void
session_close(struct session *s)
{
	struct source *src = s->src;

	if (s->bev == NULL)
		return;
	if (s->tls) {
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

		if (SSL_is_init_finished(ssl))
			SSL_shutdown(ssl);	/* close_notify, best effort */
		ERR_clear_error();
	}
	bufferevent_free(s->bev);
	if (s->owns_fd)
		evutil_closesocket(s->fd);
	s->bev = NULL;
	s->fd = -1;
	s->tls = s->owns_fd = false;
	src->open--;
}

static int
open_socket(struct source *src)
{
	const struct opts *o = &src->o;
	int one = 1, fd;

	fd = socket(o->server.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* commands go whole, one at a time: no wait for an ACK of the last */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->nsources > 0) {
		const struct sockaddr_storage *sa = &o->sources[src->next_source++ % o->nsources];
		socklen_t len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
		    : sizeof(struct sockaddr_in);

		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)sa, len) != 0)
			goto fail;
	}
	if (connect(fd, (const struct sockaddr *)&o->server, o->server_len) != 0 && errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	{
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}

static void
session_start(struct session *s)
{
	struct source *src = s->src;
	struct timeval tv = reply_timeout(src);
	SSL *ssl = NULL;

	s->was_idle = false;
	s->step = src->o.wrapper ? STEP_HANDSHAKE : STEP_GREETING;
	if (!src->o.idle) {
		if (!claim_message(src))
			return;
		s->has_message = true;
	}
	if ((s->fd = open_socket(src)) < 0) {
		session_fail(s, "connect: %s", strerror(errno));
		return;
	}
	src->connections++;
	if (src->o.wrapper) {
		ssl = SSL_new(src->ctx);
		s->bev = ssl == NULL ? NULL : bufferevent_openssl_socket_new(src->base, s->fd, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		s->tls = true;
	} else {
		/* with -S the TLS bufferevent takes the socket over later */
		s->bev = bufferevent_socket_new(src->base, s->fd,
		    src->o.starttls ? 0 : BEV_OPT_CLOSE_ON_FREE);
		s->owns_fd = src->o.starttls;
	}
	if (s->bev == NULL) {
		if (ssl != NULL)
			SSL_free(ssl);
		close(s->fd);
		s->tls = s->owns_fd = false;
		session_fail(s, "cannot make a bufferevent");
		return;
	}
	src->open++;
	bufferevent_setcb(s->bev, session_read_cb, NULL, session_event_cb, s);
	bufferevent_set_timeouts(s->bev, &tv, NULL);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->bev == NULL && !s->src->stopping)
		session_start(s);
}

/* -I: the next sessions, while fewer than RAMP are being set up. */
static void
start_more(struct source *src)
{
	unsigned settling = src->started - src->idle - src->setup_failed;

	while (!src->stopping && src->started < src->o.sessions && settling++ < src->o.ramp)
		event_active(src->sessions[src->started++].kick, 0, 0);
}

/* The end: the loop stops once every message is answered or -I is over. */
static void
maybe_finish(struct source *src)
{
	if (src->o.idle && !src->ready_printed && src->started == src->o.sessions &&
	    src->idle + src->setup_failed == src->o.sessions) {
		src->ready_printed = true;
		printf("tls-source: idle: %u sessions open, %lu TLS handshakes, %u failed\n",
		    src->idle - src->idle_lost, src->handshakes, src->setup_failed + src->idle_lost);
		fflush(stdout);
	}
	if (src->open > 0)
		return;
	if (src->o.idle ? src->stopping || (src->started == src->o.sessions && src->ready_printed)
	    : src->claimed >= src->o.messages) {
		clock_gettime(CLOCK_MONOTONIC, &src->t1);
		event_base_loopbreak(src->base);
	}
}

/* -I: SIGTERM, SIGINT, SIGUSR1 end the idle sessions with QUIT. */
static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct source *src = arg;

	(void)what;
	if (src->stopping)
		return;
	fprintf(stderr, "tls-source: signal %d: closing the sessions\n", (int)sig);
	src->stopping = true;
	for (unsigned i = 0; i < src->o.sessions; i++) {
		struct session *s = &src->sessions[i];
		struct timeval tv = reply_timeout(src);

		if (s->bev == NULL)
			continue;
		if (s->step == STEP_IDLE) {
			bufferevent_set_timeouts(s->bev, &tv, NULL);
			session_send(s, STEP_QUIT, "QUIT\r\n");
		} else if (s->step != STEP_QUIT) {
			session_close(s);	/* interrupted: not counted */
		}
	}
	maybe_finish(src);
}

/* Set-up */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: tls-source [-d] [-S|-W] [-V 1.2|1.3] [-s sessions] [-m messages] [-l size]\n"
	    "                  [-f from] [-t to] [-H helo] [-T seconds] [-b addr,...] [-v] host:port\n"
	    "       tls-source -I [-S|-W] [-V 1.2|1.3] [-s sessions] [-r ramp] [-H helo]\n"
	    "                  [-T seconds] [-b addr,...] host:port\n");
	exit(2);
}

static unsigned
parse_count(const char *text, char opt, unsigned min)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > 10000000) {
		fprintf(stderr, "tls-source: -%c %s: want a number from %u to 10000000\n", opt, text, min);
		exit(2);
	}
	return (unsigned)v;
}

/* A numeric address, "1.2.3.4" or "::1", with a port (0 for a source). */
static bool
parse_addr(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return true;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return true;
	}
	return false;
}

/* HOST:PORT or [HOST]:PORT, numeric. */
static void
parse_server(const char *text, struct opts *o)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(text, ':');
	size_t hlen;
	char *end;
	unsigned long port;

	if (colon == NULL)
		goto bad;
	hlen = (size_t)(colon - text);
	if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
		text++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port == 0 || port > 65535)
		goto bad;
	if (parse_addr(host, (unsigned)port, &o->server, &o->server_len))
		return;
bad:
	fprintf(stderr, "tls-source: %s: want a numeric HOST:PORT (127.0.0.1:2525, [::1]:2525)\n", text);
	exit(2);
}

static void
parse_sources(char *list, struct opts *o)
{
	size_t n = 1;
	socklen_t len;

	for (const char *p = list; *p != '\0'; p++)
		n += *p == ',';
	if ((o->sources = calloc(n, sizeof(*o->sources))) == NULL) {
		perror("tls-source");
		exit(1);
	}
	for (char *save = NULL, *a = strtok_r(list, ",", &save); a != NULL;
	    a = strtok_r(NULL, ",", &save)) {
		if (!parse_addr(a, 0, &o->sources[o->nsources++], &len)) {
			fprintf(stderr, "tls-source: -b %s: not a numeric address\n", a);
			exit(2);
		}
	}
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
	int c;

	*o = (struct opts){ .sessions = 1, .messages = 1, .size = 4096, .ramp = 100, .timeout = 60,
		.from = "bench@localhost", .to = "bob@localhost", .helo = "tls-source.localdomain" };
	while ((c = getopt(argc, argv, "b:df:hH:Il:m:r:s:St:T:vV:W")) != -1) {
		switch (c) {
		case 'b': parse_sources(optarg, o); break;
		case 'd': o->reuse = true; break;
		case 'f': o->from = optarg; break;
		case 'H': o->helo = optarg; break;
		case 'I': o->idle = true; break;
		case 'l': o->size = parse_count(optarg, 'l', 1); break;
		case 'm': o->messages = parse_count(optarg, 'm', 1); break;
		case 'r': o->ramp = parse_count(optarg, 'r', 1); break;
		case 's': o->sessions = parse_count(optarg, 's', 1); break;
		case 'S': o->starttls = true; break;
		case 't': o->to = optarg; break;
		case 'T': o->timeout = parse_count(optarg, 'T', 1); break;
		case 'v': o->verbose = true; break;
		case 'V':
			if (strcmp(optarg, "1.2") == 0)
				o->tls_version = TLS1_2_VERSION;
			else if (strcmp(optarg, "1.3") == 0)
				o->tls_version = TLS1_3_VERSION;
			else
				usage();
			break;
		case 'W': o->wrapper = true; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || (o->starttls && o->wrapper))
		usage();
	if (o->tls_version != 0 && !o->starttls && !o->wrapper) {
		fprintf(stderr, "tls-source: -V needs -S or -W\n");
		exit(2);
	}
	parse_server(argv[optind], o);
}

static SSL_CTX *
client_ctx(const struct opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, o->tls_version ? o->tls_version : TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, o->tls_version ? o->tls_version : TLS1_3_VERSION) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

/* From:, To:, Subject:, SIZE octets of body in lines of 'x', then ".". */
static void
build_payload(struct source *src)
{
	const struct opts *o = &src->o;
	size_t rem = o->size < 3 ? 3 : o->size;
	size_t cap = strlen(o->from) + strlen(o->to) + 128 + rem + 3;
	char *p;
	int n;

	if ((src->payload = p = malloc(cap)) == NULL) {
		perror("tls-source");
		exit(1);
	}
	n = snprintf(p, cap, "From: <%s>\r\nTo: <%s>\r\nSubject: tls-source %u octets\r\n\r\n",
	    o->from, o->to, o->size);
	p += n;
	while (rem > BODY_LINE + 4) {
		memset(p, 'x', BODY_LINE);
		memcpy(p + BODY_LINE, "\r\n", 2);
		p += BODY_LINE + 2;
		rem -= BODY_LINE + 2;
	}
	memset(p, 'x', rem - 2);
	memcpy(p + rem - 2, "\r\n.\r\n", 5);
	p += rem + 3;
	src->payload_len = (size_t)(p - src->payload);
}

/* Room for every session's socket, and some. */
static void
raise_fd_limit(unsigned sessions)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)sessions + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	if (rl.rlim_max < want)
		rl.rlim_max = want;	/* root only */
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		fprintf(stderr, "tls-source: cannot raise the open files limit to %lu: %s\n",
		    (unsigned long)want, strerror(errno));
}

static void
setup(struct source *src)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGUSR1 };

	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(src->o.sessions);
	build_payload(src);
	if ((src->base = event_base_new()) == NULL)
		goto fail;
	if ((src->o.starttls || src->o.wrapper) && (src->ctx = client_ctx(&src->o)) == NULL)
		goto fail;
	if ((src->sessions = calloc(src->o.sessions, sizeof(*src->sessions))) == NULL)
		goto fail;
	for (unsigned i = 0; i < src->o.sessions; i++) {
		struct session *s = &src->sessions[i];

		*s = (struct session){ .src = src, .fd = -1 };
		if ((s->kick = event_new(src->base, -1, 0, kick_cb, s)) == NULL)
			goto fail;
	}
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		src->sigev[i] = evsignal_new(src->base, sigs[i], signal_cb, src);
		if (src->sigev[i] == NULL || event_add(src->sigev[i], NULL) != 0)
			goto fail;
	}
	return;
fail:
	fprintf(stderr, "tls-source: set-up failed: %s\n", ERR_reason_error_string(ERR_get_error()));
	exit(1);
}

static void
teardown(struct source *src)
{
	for (unsigned i = 0; i < src->o.sessions; i++) {
		session_close(&src->sessions[i]);
		event_free(src->sessions[i].kick);
	}
	for (size_t i = 0; i < sizeof(src->sigev) / sizeof(src->sigev[0]); i++)
		event_free(src->sigev[i]);
	free(src->sessions);
	free(src->payload);
	free(src->o.sources);
	SSL_CTX_free(src->ctx);
	event_base_free(src->base);
}

static const char *
mode_name(const struct opts *o)
{
	return o->starttls ? "STARTTLS" : o->wrapper ? "implicit TLS" : "plaintext";
}

static void
report(const struct source *src)
{
	const struct opts *o = &src->o;
	double secs = elapsed(&src->t0, &src->t1);
	const char *version = src->tls_version[0] ? src->tls_version : "-";
	const char *cipher = src->tls_cipher[0] ? src->tls_cipher : "-";

	if (o->idle) {
		printf("tls-source: idle: %u of %u sessions got idle (%s), %lu connections, "
		    "%lu TLS handshakes (%s %s), %lu errors\n", src->idle, o->sessions, mode_name(o), src->connections, src->handshakes, version, cipher,
		    src->errors);
	} else {
		printf("tls-source: %u of %u messages of %u octets in %.3f s: %.1f msg/s "
		    "(%u sessions, %s, %s)\n", src->sent, o->messages, o->size, secs,
		    secs > 0 ? src->sent / secs : 0.0, o->sessions,
		    o->reuse ? "connections reused (-d)" : "one connection per message", mode_name(o));
		printf("tls-source: %lu connections, %lu TLS handshakes (%s %s), %u messages failed, "
		    "%lu errors\n", src->connections, src->handshakes, version, cipher, src->failed,
		    src->errors);
	}
	printf("RESULT mode=%s sessions=%u messages=%u size=%u reuse=%s sent=%u failed=%u "
	    "errors=%lu seconds=%.3f rate=%.1f connections=%lu handshakes=%lu tls=%s cipher=%s\n",
	    o->starttls ? "starttls" : o->wrapper ? "wrapper" : "plain", o->sessions,
	    o->idle ? 0 : o->messages, o->size, o->reuse ? "yes" : "no", src->sent, src->failed,
	    src->errors, secs, secs > 0 ? src->sent / secs : 0.0, src->connections, src->handshakes,
	    version, cipher);
}

int
main(int argc, char **argv)
{
	struct source src = { 0 };
	bool ok;

	parse_args(argc, argv, &src.o);
	setup(&src);
	clock_gettime(CLOCK_MONOTONIC, &src.t0);
	if (src.o.idle)
		start_more(&src);
	else
		for (unsigned i = 0; i < src.o.sessions; i++)
			session_start(&src.sessions[i]);
	maybe_finish(&src);
	if (src.t1.tv_sec == 0)
		event_base_dispatch(src.base);
	if (src.t1.tv_sec == 0)
		clock_gettime(CLOCK_MONOTONIC, &src.t1);
	report(&src);
	ok = src.errors == 0 && (src.o.idle ? src.idle == src.o.sessions
	    : src.sent == src.o.messages);
	teardown(&src);
	return ok ? 0 : 1;
}
