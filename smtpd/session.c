/*
 * NAME
 *	session - one SMTP conversation (RFC 5321) on a bufferevent
 * SYNOPSIS
 *	See session.h.
 * DESCRIPTION
 *	A session is an enum of states and ONE command table; the state
 *	changes only through session_enter(), which logs old -> new.  Every
 *	reply goes through smtp_reply() / reply_send(): the code and enhanced
 *	code come from the errmap table, refusals are logged and counted there.
 *
 *	Input is processed by process_input(), in order, as long as there is a
 *	complete command (PIPELINING: many commands may arrive in one read).
 *	It stops while the message of the session is being committed (its 250
 *	must come before the reply of any later command), while the output is
 *	over OUT_HIGH (a client that does not read its replies is not read
 *	either), and when the session is closing.  The input buffer is bounded
 *	by the read high-water mark, so a stopped session holds bounded memory.
 *
 *	The message after DATA never sits in memory: smtp_data_decode() runs
 *	over the input buffer, byte by byte across reads, and what it yields
 *	goes through spool_msg_write() (buffered) into a file under tmp/.
 *	At the end of data the targets are registered and the commit is handed
 *	to commitq; the reply comes from commit_done() on the loop thread, which
 *	finds the session again by its id.
 *
 *	Closing is flush-then-close: the state becomes CLOSING, reading stops,
 *	and when the output has been written our side is shut down and what
 *	the client still sends is dropped until its FIN (a lingering close, so
 *	that unread input does not turn the close into a RST that destroys the
 *	last reply), at most LINGER_TIMEOUT seconds and LINGER_MAX bytes.  Then
 *	(or when a write times out) the deferred ev_free event runs
 *	session_free().  Nothing frees a session from inside its own
 *	bufferevent callbacks.
 *
 *	A client that half-closes after pipelining its commands still gets
 *	every reply, the 250 of a commit in flight included.
 *
 *	TLS (RFC 3207, RFC 8314) follows the listener's policy (s->lst):
 *	STARTTLS answers 220, drops what was pipelined behind it, stops
 *	reading and enters ST_TLS, where no command is read; when the 220 has
 *	left, a deferred event (ev_tls: never inside the bufferevent's own
 *	callback) hands the socket from the plaintext bufferevent to an
 *	OpenSSL socket bufferevent.  Its BEV_EVENT_CONNECTED sets tls_active
 *	and returns to ST_GREETED with everything learned before forgotten
 *	(session_forget(), which also has to clear AUTH state); any other
 *	event in ST_TLS is a failed handshake, which ends the session with no
 *	reply.  Under wrapper a session starts in ST_TLS on the OpenSSL
 *	bufferevent and greets after the handshake.  starttls_offered() decides
 *	EHLO's STARTTLS line; session_needs_tls() is the policy "TLS before
 *	MAIL and AUTH" and session_refuse_without_tls() its 530 5.7.0.
 *	AUTH (RFC 4954) follows the policy of the listener that accepted the
 *	session (s->lst->cfg: auth, auth_plaintext, auth_min_mechanism,
 *	auth_cram_md5, restrict_sender); CRAM-MD5 is neither offered nor
 *	accepted (504) where auth_cram_md5 is off.  While an exchange runs (ST_AUTH) each line is a
 *	response handed to auth.c, never dispatched as a command; a wrong
 *	password waits in ST_AUTH_DELAY (a timer, nothing read meanwhile) before
 *	its 535, longer with each failure of the client address (auth.h).
 *	tls_active is set once a TLS handshake completed; PLAIN and
 *	LOGIN need it unless auth_plaintext.  An authenticated session may
 *	relay; its user goes into Received:, the queue record and the log.
 *
 *	ETRN (RFC 1985) and ATRN (RFC 2645) are rows of the command table
 *	whose policy and replies live in etrn.c and atrn.c.  After ATRN's 250
 *	the session hands its bufferevent (plaintext or TLS, with what the
 *	client may have sent already) to the runner and schedules its own
 *	free with s->bev NULL: session_free() does not close a connection
 *	that is the relay's now.
 * DIAGNOSTICS
 *	event=connect, disconnect, refused (every 4xx/5xx reply), accepted
 *	(with tls=<version> cipher=<name>, or tls=no),
 *	rejected (a message refused at the end of data), discarded (the
 *	session ended during DATA), commit-failed, spool-error, deadline
 *	(kind=command or kind=session), auth, auth-failed, tls (a handshake
 *	completed), tls-failed (reason= from OpenSSL), starttls-injection
 *	(octets= thrown away), tls-unavailable (no SSL could be made), state and command
 *	(debug).  Lines about a message carry id=<message id>.
 * SECURITY
 *	Every byte comes from the network: command lines are capped at
 *	cfg->max_line, the message at cfg->max_message_size (the rest is read
 *	and dropped), recipients at cfg->max_recipients, errors at
 *	cfg->max_errors, idle time at cfg->idle_timeout.  Time is bounded by
 *	deadlines (as Postfix's smtpd_per_record_deadline): one line, a
 *	command or a line of the message, must be complete within
 *	cfg->command_deadline of the end of the previous one, however slowly
 *	its bytes trickle in, and the session ends after cfg->session_deadline
 *	(event=deadline, 421 4.4.2).  A commit in flight is our time, not the
 *	client's: the deadline of the next line starts when it is done.  A
 *	TLS handshake must end within command_deadline too (then the session
 *	ends without a reply: neither plaintext nor TLS can carry one).  Bytes
 *	sent in plaintext are never read as if they came through TLS.
 *	client's: the deadline of the next line starts when it is done; so
 *	is the delay before a 535.  AUTH responses are bounded by max_line
 *	(500 5.5.6), wiped from the line buffer after use, and never logged.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../common/addr.h"
#include "../common/aliases.h"
#include "../common/cfg.h"
#include "../common/checkpoint.h"
#include "../common/envelope.h"
#include "../common/errmap.h"
#include "../common/forward.h"
#include "../common/log.h"
#include "../common/mboxlock.h"
#include "../common/sasl.h"
#include "../common/spool.h"
#include "../common/tls.h"
#include "../common/userdb.h"
#include "auth.h"
#include "atrn.h"
#include "commitq.h"
#include "etrn.h"
#include "help.h"
#include "runner.h"
#include "server.h"
#include "session.h"
#include "../common/smtp_parse.h"

#define REPLY_LINE_MAX	512			/* RFC 5321 4.5.3.1.5, CRLF included */
#define OUT_HIGH	(64 * 1024)		/* stop reading above this much unsent output */
#define IN_HIGH_MIN	(64 * 1024)		/* read high-water mark, at least a line */
#define DATA_CHUNK	16384			/* decoded bytes per spool_msg_write() */
#define CLOSE_TIMEOUT	10			/* seconds to flush the last reply */
#define LINGER_TIMEOUT	2			/* seconds to wait for the client's FIN */
#define LINGER_MAX	(1024 * 1024)		/* bytes dropped while lingering */

enum smtp_state {
	ST_GREETED,		/* greeting sent, HELO/EHLO expected */
	ST_IDLE,		/* HELO/EHLO done, no transaction */
	ST_MAIL,		/* MAIL accepted, no recipient yet */
	ST_RCPT,		/* at least one recipient accepted */
	ST_AUTH,		/* AUTH exchange: the next line is a response, not a command */
	ST_AUTH_DELAY,		/* a failed AUTH waits before its 535 */
	ST_DATA,		/* receiving the message */
	ST_COMMIT,		/* message complete, its commit in flight */
	ST_BDAT,		/* reading the octets of a BDAT chunk (RFC 3030) */
	ST_CHUNKS,		/* a message started by BDAT: between its chunks */
	ST_TLS,			/* TLS handshake (after 220 to STARTTLS, or first under wrapper) */
	ST_CLOSING,		/* last reply queued: flush, then free */
	ST_NOMAIL,		/* greeted with 521 (accept_mail = no): only QUIT is served */
	ST__COUNT
};

static const char *const state_names[ST__COUNT] = {
	[ST_GREETED] = "greeted",
	[ST_IDLE] = "idle",
	[ST_MAIL] = "mail",
	[ST_RCPT] = "rcpt",
	[ST_AUTH] = "auth",
	[ST_AUTH_DELAY] = "auth-delay",
	[ST_DATA] = "data",
	[ST_COMMIT] = "commit",
	[ST_BDAT] = "bdat",
	[ST_CHUNKS] = "chunks",
	[ST_TLS] = "tls",
	[ST_CLOSING] = "closing",
	[ST_NOMAIL] = "nomail",
};

#define ST(x)		(1u << (x))
#define ST_ANY		(ST(ST_GREETED) | ST(ST_IDLE) | ST(ST_MAIL) | ST(ST_RCPT) | ST(ST_CHUNKS))

struct rcpt {
	char	       *addr;		/* without brackets */
	char	       *mailbox;	/* local mailbox, or NULL: for the relay */
	unsigned	notify;		/* RCPT NOTIFY= (RFC 3461), 0: not given */
	char	       *orcpt;		/* RCPT ORCPT= as sent, or NULL */
};

/* The mail transaction: at most one per session. */
struct txn {
	char		from[ADDR_MAX];
	struct rcpt    *rcpt;
	size_t		nrcpt;
	size_t		cap;
	unsigned	refused;	/* RCPTs refused in this transaction */
	/* from DATA on */
	struct spool_msg *msg;
	struct smtp_data dec;
	struct smtp_hdrscan hdr;
	struct smtp_hdrfilter filter;	/* drops Return-Path: fields of the header */
	char		mail_auth[ADDR_MAX];	/* MAIL's AUTH= of an authenticated client, or "" */
	enum dsn_ret	dsn_ret;	/* MAIL's RET= (RFC 3461) */
	char		dsn_envid[DSN_ORCPT_MAX + 1];	/* MAIL's ENVID= as sent, or "" */
	uint64_t	octets;		/* bytes received after the DATA line, or in BDAT chunks */
	int	       *locks;		/* shared mailbox locks (mboxlock.h) from the end of data on */
	size_t		nlocks;
	int		err;		/* first reason not to store: -EFBIG, -ELOOP, write error */
	enum smtp_body	body;		/* MAIL's BODY= */
	bool		smtputf8;	/* MAIL said SMTPUTF8 (RFC 6531) */
	struct smtp_chunk chunk;	/* BDAT: CRLF -> LF across chunks */
	char		transid[SMTP_TRANSID_MAX];	/* MAIL's TRANSID= (RFC 1845), or "" */
	struct txn_checkpoint {
		bool		active;		/* DATA with TRANSID: checkpoints are taken */
		char		key[CKPT_KEY_LEN + 1];
		struct ckpt_meta meta;		/* the last one saved (data "" before the first) */
		char		stale[CKPT_DATA_MAX];	/* a resumed transfer's old data file, or "" */
		uint64_t	last;		/* octets at the last checkpoint */
	} ckpt;
};

/* The BDAT chunk being read (RFC 3030): its octets follow the command. */
struct chunk_read {
	uint64_t	size;		/* octets of the chunk */
	uint64_t	left;		/* octets still to read */
	bool		last;		/* BDAT ... LAST */
	bool		discard;	/* refused: read and dropped, then refusal is the reply */
	enum reply_id	refusal;
	const char     *detail;		/* a string constant, or NULL */
	enum smtp_state	resume;		/* the state after a discarded chunk */
};

struct session {
	uint64_t	id;
	struct server  *srv;
	const struct server_listener *lst;	/* the listener that accepted it: its policy */
	struct bufferevent *bev;
	struct event   *ev_free;	/* deferred session_free() */
	struct event   *ev_deadline;	/* command_deadline / session_deadline */
	uint64_t	started_ms;	/* monotonic: session start */
	uint64_t	line_ms;	/* monotonic: the current line's deadline runs from here */
	enum smtp_state	state;
	char		ip[INET6_ADDRSTRLEN];
	bool		ipv6;
	bool		may_relay;
	bool		esmtp;
	char		helo[SMTP_HELO_MAX];
	bool		tls_active;	/* the TLS handshake completed: s->bev is an OpenSSL bufferevent */
	char		auth_user[USERDB_NAME_MAX + 1];	/* "" until AUTH succeeded */
	const char     *auth_mech;	/* its mechanism (a static name), NULL before */
	struct auth_exchange *authx;	/* the exchange of ST_AUTH */
	struct event   *ev_auth_delay;	/* sends the 535 of ST_AUTH_DELAY */
	unsigned	errors;		/* 4xx/5xx replies sent */
	bool		discarding;	/* dropping the rest of an over-long line */
	bool		eof;		/* the client closed its side */
	bool		out_paused;	/* reading stopped: output over OUT_HIGH */
	bool		processing;	/* process_input() is on the stack */
	bool		free_scheduled;
	bool		lingering;	/* last reply sent, our side shut down */
	SSL	       *tls_pending;	/* made at STARTTLS, used once its 220 has left */
	struct event   *ev_tls;	/* deferred: the 220 left, switch to the TLS bufferevent */
	size_t		lingered;	/* bytes dropped while lingering */
	char	       *line;		/* cfg->max_line + 1 */
	struct txn	txn;
	struct chunk_read chunk;	/* in ST_BDAT */
};

/* A commit in flight: owned by itself, not by the session. */
struct session_commit {
	struct commitq_job job;
	struct server  *srv;
	uint64_t	session_id;
	struct spool_msg *msg;
	bool		queued;		/* recipients for the relay */
	size_t		nrcpt;
	uint64_t	size;
	char		from[ADDR_MAX];
	char		client[INET6_ADDRSTRLEN];
	char		tls[128];	/* "tls=TLSv1.3 cipher=..." or "tls=no", for the log */
	char		auth_user[USERDB_NAME_MAX + 1];	/* "" when not authenticated */
	int	       *locks;		/* shared mailbox locks, released once published */
	size_t		nlocks;
	char		ckpt_key[CKPT_KEY_LEN + 1];	/* its partial transfer, removed once committed, or "" */
};

typedef void cmd_handler(struct session *s, const char *arg);

enum arg_policy { ARG_NONE, ARG_OPTIONAL, ARG_REQUIRED };

struct smtp_command {
	const char     *verb;
	unsigned	states;		/* ST() mask where it is in sequence */
	enum arg_policy	arg;
	cmd_handler    *handler;
	const char     *help;
};

static cmd_handler cmd_helo, cmd_ehlo, cmd_auth, cmd_mail, cmd_rcpt, cmd_data, cmd_rset,
	cmd_noop, cmd_quit, cmd_help, cmd_vrfy, cmd_expn, cmd_starttls, cmd_etrn, cmd_atrn, cmd_bdat;

static const struct smtp_command commands[] = {
	{ "EHLO", ST_ANY, ARG_REQUIRED, cmd_ehlo, "EHLO <domain>" },
	{ "HELO", ST_ANY, ARG_REQUIRED, cmd_helo, "HELO <domain>" },
	{ "AUTH", ST(ST_IDLE), ARG_REQUIRED, cmd_auth, "AUTH <mechanism> [<initial-response>]" },
	{ "MAIL", ST(ST_IDLE), ARG_REQUIRED, cmd_mail,
	  "MAIL FROM:<address> [SIZE=<octets>] [BODY=7BIT|8BITMIME|BINARYMIME] [SMTPUTF8] [TRANSID=<id@host>]" },
	{ "RCPT", ST(ST_MAIL) | ST(ST_RCPT), ARG_REQUIRED, cmd_rcpt, "RCPT TO:<address>" },
	{ "DATA", ST(ST_RCPT), ARG_NONE, cmd_data, "DATA" },
	{ "RSET", ST_ANY, ARG_NONE, cmd_rset, "RSET" },
	{ "NOOP", ST_ANY, ARG_OPTIONAL, cmd_noop, "NOOP [<string>]" },
	{ "QUIT", ST_ANY | ST(ST_NOMAIL), ARG_NONE, cmd_quit, "QUIT" },
	{ "HELP", ST_ANY, ARG_OPTIONAL, cmd_help, "HELP [<command> | STATUS]" },
	{ "VRFY", ST_ANY, ARG_REQUIRED, cmd_vrfy, "VRFY <address>" },
	{ "EXPN", ST_ANY, ARG_OPTIONAL, cmd_expn, "EXPN <list>" },
	{ "STARTTLS", ST(ST_GREETED) | ST(ST_IDLE), ARG_NONE, cmd_starttls, "STARTTLS" },
	{ "ETRN", ST(ST_IDLE), ARG_REQUIRED, cmd_etrn, "ETRN <domain> | @<domain> | #<queue>" },
	{ "ATRN", ST(ST_IDLE), ARG_OPTIONAL, cmd_atrn, "ATRN [<domain>[,<domain>...]]" },
	/* Its chunk must be read whatever the state: cmd_bdat() judges the sequence. */
	{ "BDAT", ST_ANY, ARG_REQUIRED, cmd_bdat, "BDAT <chunk-size> [LAST]" },
};
#define N_COMMANDS	(sizeof(commands) / sizeof(commands[0]))

/* Why a command came out of sequence; verb NULL matches every verb. */
static const struct {
	enum smtp_state	state;
	const char     *verb;
	const char     *detail;
} sequence_errors[] = {
	{ ST_GREETED, NULL, "send HELO/EHLO first" },
	{ ST_MAIL, "MAIL", "nested MAIL command" },
	{ ST_RCPT, "MAIL", "nested MAIL command" },
	{ ST_MAIL, "AUTH", "AUTH not allowed during a mail transaction" },
	{ ST_RCPT, "AUTH", "AUTH not allowed during a mail transaction" },
	{ ST_IDLE, NULL, "need MAIL command" },
	{ ST_MAIL, "DATA", "need RCPT command" },
	{ ST_MAIL, "STARTTLS", "MAIL transaction in progress" },
	{ ST_RCPT, "STARTTLS", "MAIL transaction in progress" },
	{ ST_MAIL, "ETRN", "MAIL transaction in progress" },
	{ ST_RCPT, "ETRN", "MAIL transaction in progress" },
	{ ST_MAIL, "ATRN", "MAIL transaction in progress" },
	{ ST_RCPT, "ATRN", "MAIL transaction in progress" },
	{ ST_CHUNKS, "DATA", "DATA after BDAT (RFC 3030): send BDAT ... LAST" },
	{ ST_CHUNKS, NULL, "BDAT transaction in progress" },
};

static bool starttls_offered(const struct session *s);
static bool tls_allows_auth(const struct session *s);
static bool etrn_offered(const struct session *s);
static bool atrn_offered(const struct session *s);

/* The extensions EHLO announces, each when offered() (NULL: always). */
static const struct {
	const char     *keyword;
	bool	      (*offered)(const struct session *s);
} ehlo_keywords[] = {
	{ "PIPELINING", NULL },			/* RFC 2920 */
	{ "SIZE", NULL },			/* RFC 1870, followed by the limit */
	{ "8BITMIME", NULL },			/* RFC 6152 */
	{ "ENHANCEDSTATUSCODES", NULL },	/* RFC 2034 */
	{ "CHUNKING", NULL },			/* RFC 3030 */
	{ "BINARYMIME", NULL },			/* RFC 3030 */
	{ "SMTPUTF8", NULL },			/* RFC 6531 */
	{ "CHECKPOINT", NULL },			/* RFC 1845 */
	{ "STARTTLS", starttls_offered },	/* RFC 3207 */
	{ "AUTH", tls_allows_auth },		/* RFC 4954, followed by the mechanisms; only where offered */
	{ "DSN", NULL },			/* RFC 3461 */
	{ "ETRN", etrn_offered },		/* RFC 1985 */
	{ "ATRN", atrn_offered },		/* RFC 2645 */
};
#define N_EHLO_KEYWORDS	(sizeof(ehlo_keywords) / sizeof(ehlo_keywords[0]))

static void process_input(struct session *s);

/* ------------------------------------------------------------------ */
/* State, closing, freeing                                             */
/* ------------------------------------------------------------------ */

static void
session_enter(struct session *s, enum smtp_state next)
{
	if (s->state == next)
		return;
	log_debug("state", "session=%" PRIu64 " client=%s old=%s new=%s", s->id, s->ip,
	    state_names[s->state], state_names[next]);
	s->state = next;
}

static void
session_schedule_free(struct session *s)
{
	if (s->free_scheduled)
		return;
	s->free_scheduled = true;
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	event_active(s->ev_free, 0, 0);
}

/*
 * The last reply has left: shut our side down and read (and drop) what
 * the client still sends until its FIN.  Closing a socket with unread
 * input makes the kernel send a RST, which can destroy the 421 or 221 the
 * client has not read yet; this lingering close lets it arrive.
 */
static void
session_linger(struct session *s)
{
	struct timeval tv = { LINGER_TIMEOUT, 0 };

	if (s->lingering || s->free_scheduled)
		return;
	s->lingering = true;
	evbuffer_drain(bufferevent_get_input(s->bev), evbuffer_get_length(bufferevent_get_input(s->bev)));
	if (s->tls_active && !s->eof)
		(void)SSL_shutdown(bufferevent_openssl_get_ssl(s->bev));	/* close_notify; best effort */
	if (s->eof || shutdown(bufferevent_getfd(s->bev), SHUT_WR) < 0) {
		session_schedule_free(s);
		return;
	}
	bufferevent_set_timeouts(s->bev, &tv, NULL);
	bufferevent_enable(s->bev, EV_READ);
}

/* Input after the last reply: dropped, within bounds. */
static void
session_linger_read(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	s->lingered += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (s->lingered > LINGER_MAX)
		session_schedule_free(s);
}

/* Flush what is queued, then linger, then free: CLOSING accepts nothing more. */
static void
session_close(struct session *s)
{
	struct timeval tv = { CLOSE_TIMEOUT, 0 };

	if (s->state == ST_CLOSING)
		return;
	session_enter(s, ST_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		session_linger(s);
		return;
	}
	bufferevent_set_timeouts(s->bev, NULL, &tv);
	bufferevent_enable(s->bev, EV_WRITE);
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                           */
/* ------------------------------------------------------------------ */

static uint64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The earlier of the two deadlines, in monotonic ms. */
static uint64_t
deadline_due(const struct session *s, bool *session_wide)
{
	uint64_t line = s->line_ms + (uint64_t)s->srv->cfg->command_deadline * 1000;
	uint64_t whole = s->started_ms + (uint64_t)s->srv->cfg->session_deadline * 1000;

	*session_wide = whole <= line;
	return *session_wide ? whole : line;
}

static void
deadline_arm(struct session *s)
{
	uint64_t now = monotonic_ms(), due;
	struct timeval tv = { 0, 0 };
	bool session_wide;

	due = deadline_due(s, &session_wide);
	if (due > now) {
		tv.tv_sec = (time_t)((due - now) / 1000);
		tv.tv_usec = (suseconds_t)((due - now) % 1000 * 1000);
	}
	evtimer_add(s->ev_deadline, &tv);
}

/* A line is complete (or our commit is over): the next line's deadline starts now. */
static void
deadline_restart(struct session *s)
{
	s->line_ms = monotonic_ms();
	deadline_arm(s);
}

static void session_close(struct session *s);
static void __attribute__((format(printf, 3, 4)))
smtp_reply(struct session *s, enum reply_id id, const char *fmt, ...);

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	uint64_t now = monotonic_ms(), due;
	bool session_wide;

	(void)fd;
	(void)what;
	if (s->state == ST_CLOSING || s->free_scheduled || s->state == ST_COMMIT || s->state == ST_AUTH_DELAY)
		return;			/* closing anyway; a commit or an AUTH delay re-arms when done */
	due = deadline_due(s, &session_wide);
	if (now < due) {
		deadline_arm(s);
		return;
	}
	if (s->state == ST_TLS) {
		/* No reply: plaintext cannot go into a handshake, and TLS is not up. */
		log_info("tls-failed", "session=%" PRIu64 " client=%s listener=%s reason=\"%s deadline passed\"",
		    s->id, s->ip, s->lst->cfg->name, session_wide ? "session" : "command");
		session_schedule_free(s);
		return;
	}
	log_info("deadline", "session=%" PRIu64 " client=%s state=%s kind=%s seconds=%u", s->id, s->ip,
	    state_names[s->state], session_wide ? "session" : "command",
	    session_wide ? s->srv->cfg->session_deadline : s->srv->cfg->command_deadline);
	smtp_reply(s, session_wide ? REPLY_SESSION_DEADLINE : REPLY_COMMAND_DEADLINE, NULL);
	session_close(s);
}

static void
txn_reset(struct session *s)
{
	struct txn *t = &s->txn;
	size_t i;

	for (i = 0; i < t->nrcpt; i++) {
		free(t->rcpt[i].addr);
		free(t->rcpt[i].mailbox);
		free(t->rcpt[i].orcpt);
	}
	free(t->rcpt);
	for (i = 0; i < t->nlocks; i++)
		mboxlock_release(t->locks[i]);
	free(t->locks);
	spool_msg_free(t->msg);		/* a message being received leaves tmp/ */
	memset(t, 0, sizeof(*t));
}

void
session_free(struct session *s)
{
	uint64_t id = s->id;
	struct server *srv = s->srv;

	if (s->txn.msg != NULL)
		log_info("discarded", "id=%s session=%" PRIu64 " client=%s octets=%" PRIu64
		    " reason=\"session ended before the end of data\"%s",
		    spool_msg_id(s->txn.msg), s->id, s->ip, s->txn.octets,
		    s->txn.ckpt.meta.offset > 0 ? " checkpoint=kept" : "");
	log_info("disconnect", "session=%" PRIu64 " client=%s errors=%u", s->id, s->ip, s->errors);
	txn_reset(s);
	auth_finish(s->authx);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	SSL_free(s->tls_pending);
	event_free(s->ev_free);
	event_free(s->ev_deadline);
	if (s->ev_tls != NULL)
		event_free(s->ev_tls);
	event_free(s->ev_auth_delay);
	free(s->line);
	free(s);
	server_unregister(srv, id);	/* last: it may end the event loop */
}

static void
free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_free(arg);
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

#define REPLY_NO_ESC	0x1	/* greeting, HELO/EHLO: RFC 2034 says no enhanced code */
#define REPLY_UNCOUNTED	0x2	/* a refusal that is no client error (max_errors) */

/* Appends to a reply line, never past the room kept for CRLF. */
static void __attribute__((format(printf, 3, 4)))
reply_append(char *buf, size_t *n, const char *fmt, ...)
{
	size_t room = REPLY_LINE_MAX - 2 - *n;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf + *n, room + 1, fmt, ap);
	va_end(ap);
	*n += len < 0 ? 0 : (size_t)len > room ? room : (size_t)len;
}

/*
 * One reply line: "code[- ]esc text\r\n", cut to REPLY_LINE_MAX.  The
 * greeting and 421 name the server first (RFC 5321 3.1, 4.2).  Bytes that
 * could break the line (CR, LF, controls) never reach the wire, whatever
 * the text holds.
 */
static size_t
reply_format(char *buf, const struct errmap_reply *r, bool more, unsigned flags,
		const char *host, const char *text)
{
	size_t n = 0, i;

	reply_append(buf, &n, "%d%c", r->code, more ? '-' : ' ');
	if (!(flags & REPLY_NO_ESC) && r->esc[0] != '\0')
		reply_append(buf, &n, "%s ", r->esc);
	if (r->code == 421 || r->id == REPLY_GREETING)
		reply_append(buf, &n, "%s ", host);
	for (i = 0; text[i] != '\0' && n < REPLY_LINE_MAX - 2; i++) {
		unsigned char c = (unsigned char)text[i];

		buf[n++] = (char)(c < 32 || c > 126 ? '?' : c);
	}
	buf[n++] = '\r';
	buf[n++] = '\n';
	return n;
}

static void
log_refusal(struct session *s, const char *line, size_t len)
{
	char q[REPLY_LINE_MAX + 16], text[REPLY_LINE_MAX];

	memcpy(text, line, len - 2);		/* without CRLF */
	text[len - 2] = '\0';
	if (s->txn.msg != NULL)
		log_info("refused", "id=%s session=%" PRIu64 " client=%s state=%s reply=%s",
		    spool_msg_id(s->txn.msg), s->id, s->ip, state_names[s->state],
		    log_quote(q, sizeof(q), text));
	else
		log_info("refused", "session=%" PRIu64 " client=%s state=%s reply=%s", s->id, s->ip,
		    state_names[s->state], log_quote(q, sizeof(q), text));
}

static void
reply_write(struct session *s, const char *buf, size_t len)
{
	if (bufferevent_write(s->bev, buf, len) < 0)
		session_schedule_free(s);	/* out of memory: nothing sensible to say */
}

/*
 * The one place where replies are written: n lines of one reply (n > 1
 * for EHLO and HELP).  A 4xx/5xx is logged and counted (unless
 * REPLY_UNCOUNTED); max_errors of them end the session with 421 4.7.0.
 */
static void
reply_send(struct session *s, enum reply_id id, unsigned flags, const char *const *lines, size_t n)
{
	const struct errmap_reply *r = errmap_get(id);
	char buf[REPLY_LINE_MAX];
	size_t i, len = 0;

	for (i = 0; i < n; i++) {
		len = reply_format(buf, r, i + 1 < n, flags, s->srv->hostname, lines[i]);
		reply_write(s, buf, len);
	}
	if (r->code < 400)
		return;
	log_refusal(s, buf, len);
	if (r->code == 421 || s->state == ST_CLOSING || (flags & REPLY_UNCOUNTED))
		return;
	if (++s->errors >= s->srv->cfg->max_errors) {
		r = errmap_get(REPLY_TOO_MANY_ERRORS);
		len = reply_format(buf, r, false, 0, s->srv->hostname, r->text);
		reply_write(s, buf, len);
		log_refusal(s, buf, len);
		session_close(s);
	}
}

/* A one-line reply; fmt (may be NULL: the table's text) gives the text. */
static void
smtp_vreply(struct session *s, enum reply_id id, unsigned flags, const char *fmt, va_list ap)
{
	char text[REPLY_LINE_MAX];
	const char *line = text;

	if (fmt == NULL)
		line = errmap_get(id)->text;
	else
		vsnprintf(text, sizeof(text), fmt, ap);
	reply_send(s, id, flags, &line, 1);
}

static void __attribute__((format(printf, 3, 4)))
smtp_reply(struct session *s, enum reply_id id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, id, 0, fmt, ap);
	va_end(ap);
}

/* A refusal that is not held against the client (it does not count toward max_errors). */
static void __attribute__((format(printf, 3, 4)))
smtp_reply_uncounted(struct session *s, enum reply_id id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, id, REPLY_UNCOUNTED, fmt, ap);
	va_end(ap);
}

/*
 * A refusal before any session exists.  On an implicit-TLS listener the
 * client's first bytes are a ClientHello and it reads nothing but TLS: a
 * plaintext 421 would be garbage to it, and a handshake only to say 421
 * would spend the CPU an overload lacks.  The connection is closed without
 * a word (sent=no in the log); the client retries later as for a 421.
 */
void
session_refuse(const struct server_listener *lst, evutil_socket_t fd, enum reply_id id, const struct sockaddr *sa)
{
	struct server *srv = lst->srv;
	const struct errmap_reply *r = errmap_get(id);
	char buf[REPLY_LINE_MAX], q[REPLY_LINE_MAX + 16], client[INET6_ADDRSTRLEN] = "unknown";
	size_t len = reply_format(buf, r, false, 0, srv->hostname, r->text);
	bool plaintext = !tls_policy_is_wrapper(lst->tls_policy);
	const void *a = NULL;

	/* Best effort: the socket buffer of a new connection takes one line. */
	if (plaintext && send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("refuse-send", "error=%d", errno);
	evutil_closesocket(fd);
	buf[len - 2] = '\0';
	if (sa != NULL && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa != NULL && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (a != NULL && inet_ntop(sa->sa_family, a, client, sizeof(client)) == NULL)
		snprintf(client, sizeof(client), "unknown");
	log_warn("refused", "client=%s reply=%s sessions=%u listener=%s sent=%s", client,
	    log_quote(q, sizeof(q), buf), srv->nsessions, lst->cfg->name, plaintext ? "yes" : "no");
}

/*
 * The reply to a spool error (create, write, commit).  Such an error is a
 * fault of this gateway, not of the message: it is temporary, so that the
 * client keeps the message and retries.  Only the rows that say something
 * about the message or its storage stay as the table has them (452 4.3.1
 * ENOSPC/ENOMEM, 552 5.3.4 EFBIG, 552 5.2.2 EDQUOT, 554 5.4.6 ELOOP, the
 * 451 rows); any other permanent row (EACCES is 550 5.7.1, EPERM 553 5.7.1 for
 * the filesystem's callers) becomes 451 4.3.0: a mailbox directory the
 * daemon cannot write must not bounce the message.
 */
static const struct errmap_reply *
spool_error_reply(int err)
{
	const struct errmap_reply *r = errmap_from_errno(-err);

	if (r->code < 500)
		return r;
	switch (err < 0 ? -err : err) {
	case EFBIG:
	case EMSGSIZE:
	case EDQUOT:
	case ELOOP:
		return r;
	default:
		return errmap_get(REPLY_LOCAL_ERROR);
	}
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */
/* ------------------------------------------------------------------ */

/* Back to "no transaction", which is ST_GREETED before HELO. */
static void
txn_abort(struct session *s)
{
	txn_reset(s);
	if (s->state == ST_MAIL || s->state == ST_RCPT || s->state == ST_DATA || s->state == ST_COMMIT ||
	    s->state == ST_BDAT || s->state == ST_CHUNKS)
		session_enter(s, ST_IDLE);
}

/* Adds a recipient with its DSN parameters (p); a duplicate is accepted and delivered once. */
static int
txn_add_rcpt(struct txn *t, const char *addr, const char *mailbox, const struct smtp_rcpt *p)
{
	struct rcpt *r;
	struct rcpt *grown;
	size_t i;

	for (i = 0; i < t->nrcpt; i++) {
		if (mailbox != NULL && t->rcpt[i].mailbox != NULL && strcmp(mailbox, t->rcpt[i].mailbox) == 0)
			return 0;
		if (mailbox == NULL && t->rcpt[i].mailbox == NULL && addr_same_mailbox(addr, t->rcpt[i].addr))
			return 0;
	}
	if (t->nrcpt == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4;

		if ((grown = realloc(t->rcpt, cap * sizeof(*grown))) == NULL)
			return -ENOMEM;
		t->rcpt = grown;
		t->cap = cap;
	}
	r = &t->rcpt[t->nrcpt];
	r->addr = strdup(addr);
	r->mailbox = mailbox ? strdup(mailbox) : NULL;
	r->notify = p->notify;
	r->orcpt = p->orcpt[0] != '\0' ? strdup(p->orcpt) : NULL;
	if (r->addr == NULL || (mailbox != NULL && r->mailbox == NULL) || (p->orcpt[0] != '\0' && r->orcpt == NULL)) {
		free(r->addr);
		free(r->mailbox);
		free(r->orcpt);
		return -ENOMEM;
	}
	t->nrcpt++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* TLS policy (RFC 3207)                                               */
/* ------------------------------------------------------------------ */

/* STARTTLS can be started now: a listener with a usable context, not yet in TLS. */
static bool
starttls_offered(const struct session *s)
{
	return !s->tls_active && s->lst->tls != NULL && tls_policy_tries_tls(s->lst->tls_policy);
}

/*
 * The listener requires TLS (tls = encrypt) and this session has none yet:
 * MAIL (and AUTH) must wait for STARTTLS.  Under wrapper a session has TLS
 * from its first byte, so only encrypt can be without it.
 */
static bool
session_needs_tls(const struct session *s)
{
	return !s->tls_active && tls_policy_requires_tls(s->lst->tls_policy);
}

/* AUTH is not offered where it would be refused for want of TLS (530). */
static bool
tls_allows_auth(const struct session *s)
{
	return !session_needs_tls(s);
}

/*
 * The one place that answers 530 5.7.0 "Must issue a STARTTLS command
 * first": true when it did (the caller stops there).  cmd_mail() calls it
 * first thing; so does AUTH.
 */
static bool
session_refuse_without_tls(struct session *s)
{
	if (!session_needs_tls(s))
		return false;
	smtp_reply(s, REPLY_STARTTLS_REQUIRED, NULL);
	return true;
}

/*
 * Everything learned from the client before TLS is forgotten (RFC 3207
 * 4.2): the greeting, any transaction (STARTTLS is refused inside one, so
 * there is none, but it costs nothing) and any AUTH state, which belongs
 * here too.  The client must say EHLO again.
 */
static void
session_forget(struct session *s)
{
	txn_abort(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->auth_user[0] = '\0';
	s->auth_mech = NULL;
	session_enter(s, ST_GREETED);
}

/* "tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384" or "tls=no", for log lines. */
static void
session_tls_describe(struct session *s, char *buf, size_t len)
{
	struct tls_info info;

	if (!s->tls_active) {
		snprintf(buf, len, "tls=no");
		return;
	}
	tls_info_get(bufferevent_openssl_get_ssl(s->bev), &info);
	snprintf(buf, len, "tls=%s cipher=%s", info.version, info.cipher);
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

/* HELO and EHLO: true when the client is greeted (and any transaction reset). */
static bool
greet(struct session *s, const char *arg, bool esmtp)
{
	if (smtp_parse_helo(arg, s->helo, sizeof(s->helo)) < 0) {
		smtp_reply(s, REPLY_SYNTAX, "%s needs a domain name or an address literal ([192.0.2.1], [IPv6:...])",
		    esmtp ? "EHLO" : "HELO");
		return false;
	}
	txn_abort(s);
	s->esmtp = esmtp;
	session_enter(s, ST_IDLE);
	return true;
}

static void
cmd_helo(struct session *s, const char *arg)
{
	const char *line = s->srv->hostname;

	if (greet(s, arg, false))
		reply_send(s, REPLY_OK, REPLY_NO_ESC, &line, 1);
}

static bool auth_offer(const struct session *s, char *buf, size_t len);

static void
cmd_ehlo(struct session *s, const char *arg)
{
	char first[REPLY_LINE_MAX], size[64], auth[128];
	const char *lines[1 + N_EHLO_KEYWORDS];
	size_t i, n = 1;

	if (!greet(s, arg, true))
		return;
	snprintf(first, sizeof(first), "%s Hello %s [%s]", s->srv->hostname, s->helo, s->ip);
	lines[0] = first;
	for (i = 0; i < N_EHLO_KEYWORDS; i++) {
		if (ehlo_keywords[i].offered != NULL && !ehlo_keywords[i].offered(s))
			continue;
		lines[n] = ehlo_keywords[i].keyword;
		if (strcmp(ehlo_keywords[i].keyword, "SIZE") == 0) {
			snprintf(size, sizeof(size), "SIZE %lu", s->srv->cfg->max_message_size);
			lines[n] = size;
		} else if (strcmp(ehlo_keywords[i].keyword, "AUTH") == 0) {
			snprintf(auth, sizeof(auth), "AUTH");
			if (!auth_offer(s, auth + 4, sizeof(auth) - 4))
				continue;		/* not offered here, or no mechanism now */
			lines[n] = auth;
		}
		n++;
	}
	reply_send(s, REPLY_OK, REPLY_NO_ESC, lines, n);
}

/* ------------------------------------------------------------------ */
/* AUTH (RFC 4954)                                                     */
/* ------------------------------------------------------------------ */

/* The policy of the listener the session came in on: auth, auth_plaintext, ... */
static const struct cfg_listener *
auth_policy(const struct session *s)
{
	return s->lst->cfg;
}

/* Why mech (a canonical name) may not be used now, or REPLY_AUTH_OK when it may. */
static enum reply_id
auth_mech_refusal(const struct session *s, const char *mech, bool sends_password, int strength)
{
	const struct cfg_listener *pol = auth_policy(s);
	bool ignored;
	int min = 0;

	if (sasl_mech_opt_in(mech) && !pol->auth_cram_md5)
		return REPLY_AUTH_UNKNOWN_MECH;		/* not offered here at all */
	if (pol->auth_min_mechanism != NULL)
		(void)sasl_mech_lookup(pol->auth_min_mechanism, &ignored, &min);
	if (strength < min)
		return REPLY_MECH_TOO_WEAK;
	if (sends_password && !s->tls_active && !pol->auth_plaintext)
		return REPLY_ENCRYPTION_REQUIRED;
	return REPLY_AUTH_OK;
}

/* " MECH MECH..." of what may be used now; false when nothing is offered. */
static bool
auth_offer(const struct session *s, char *buf, size_t len)
{
	const char *name;
	bool sends_password;
	int strength;
	size_t n = 0;

	buf[0] = '\0';
	if (auth_policy(s)->auth == CFG_AUTH_NO || s->srv->auth == NULL)
		return false;
	for (size_t i = 0; (name = sasl_mech_at(i, &sends_password, &strength)) != NULL; i++)
		if (auth_mech_refusal(s, name, sends_password, strength) == REPLY_AUTH_OK && n + strlen(name) + 2 < len)
			n += (size_t)snprintf(buf + n, len - n, " %s", name);
	return n > 0;
}

/* What each outcome of an exchange answers (sasl.h's table). */
static const struct {
	enum reply_id	reply;
	bool		counted;	/* a client error, toward max_errors */
} auth_outcomes[] = {
	[SASL_OK] = { REPLY_AUTH_OK, false },
	[SASL_CONTINUE] = { REPLY_AUTH_CHALLENGE, false },
	[SASL_BAD_CREDENTIALS] = { REPLY_AUTH_FAILED, true },
	[SASL_MALFORMED] = { REPLY_AUTH_NOT_BASE64, true },
	[SASL_CANCELLED] = { REPLY_AUTH_CANCELLED, true },
	[SASL_UNKNOWN_MECH] = { REPLY_AUTH_UNKNOWN_MECH, true },
	[SASL_TRANSITION] = { REPLY_PASSWORD_TRANSITION, false },
	[SASL_TEMPFAIL] = { REPLY_AUTH_TEMPFAIL, false },
};

/* The exchange is over: wipe it (keeping a derived key on success). */
static void
auth_end(struct session *s)
{
	auth_finish(s->authx);
	s->authx = NULL;
	if (s->state == ST_AUTH)
		session_enter(s, ST_IDLE);
}

static void
auth_succeeded(struct session *s)
{
	char q[USERDB_NAME_MAX * 4 + 8];

	snprintf(s->auth_user, sizeof(s->auth_user), "%s", auth_identity(s->authx));
	auth_client_succeeded(s->srv->auth, s->ip);
	log_info("auth", "session=%" PRIu64 " client=%s mechanism=%s user=%s tls=%s", s->id, s->ip, s->auth_mech,
	    log_quote(q, sizeof(q), s->auth_user), s->tls_active ? "yes" : "no");
	auth_end(s);
	smtp_reply(s, REPLY_AUTH_OK, NULL);
}

/* 535 waits: 1x, 2x, 4x ... 16x auth_failure_delay for the client's 1st, 2nd, ... failure. */
static void
auth_failed_later(struct session *s)
{
	unsigned failures = auth_client_failed(s->srv->auth, s->ip), shift = failures < 5 ? failures - 1 : 4;
	uint64_t ms = (uint64_t)s->srv->cfg->auth_failure_delay * 1000 * (1u << shift);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000) };

	log_info("auth-failed", "session=%" PRIu64 " client=%s mechanism=%s failures=%u delay_ms=%" PRIu64
	    " why=\"%s\"", s->id, s->ip, s->auth_mech, failures, ms, auth_error(s->authx));
	auth_end(s);
	session_enter(s, ST_AUTH_DELAY);
	evtimer_add(s->ev_auth_delay, &tv);
}

static void
auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->state != ST_AUTH_DELAY)
		return;				/* closing meanwhile */
	session_enter(s, ST_IDLE);
	smtp_reply(s, REPLY_AUTH_FAILED, NULL);
	deadline_restart(s);			/* the delay was ours, not the client's */
	process_input(s);
}

static void
auth_outcome(struct session *s, enum sasl_status st)
{
	if (st == SASL_OK) {
		auth_succeeded(s);
		return;
	}
	if (st == SASL_BAD_CREDENTIALS) {
		auth_failed_later(s);
		return;
	}
	log_info("auth-failed", "session=%" PRIu64 " client=%s mechanism=%s status=%s why=\"%s\"", s->id, s->ip,
	    s->auth_mech ? s->auth_mech : "-", sasl_status_name(st), s->authx ? auth_error(s->authx) : "");
	auth_end(s);
	if (auth_outcomes[st].counted)
		smtp_reply(s, auth_outcomes[st].reply, NULL);
	else
		smtp_reply_uncounted(s, auth_outcomes[st].reply, NULL);
}

/* One step with the client's response ("" for none). */
static void
auth_continue(struct session *s, const char *response)
{
	char *challenge = NULL;
	enum sasl_status st = auth_step(s->authx, response, &challenge);

	if (st != SASL_CONTINUE) {
		auth_outcome(s, st);
		return;
	}
	session_enter(s, ST_AUTH);
	smtp_reply(s, REPLY_AUTH_CHALLENGE, "%s", challenge);
	free(challenge);
}

/* "AUTH mechanism [initial-response]" */
static void
cmd_auth(struct session *s, const char *arg)
{
	char mech[32];
	const char *name, *initial;
	bool sends_password;
	int strength;
	size_t len = strcspn(arg, " ");
	enum reply_id refusal;
	enum sasl_status st;

	if (auth_policy(s)->auth == CFG_AUTH_NO || s->srv->auth == NULL) {
		smtp_reply(s, REPLY_NOT_IMPLEMENTED, "AUTH: %s: authentication is not offered on this service",
		    errmap_get(REPLY_NOT_IMPLEMENTED)->text);
		return;
	}
	if (session_refuse_without_tls(s))
		return;
	if (!s->esmtp || s->auth_user[0] != '\0') {
		smtp_reply(s, REPLY_BAD_SEQUENCE, "%s: %s", errmap_get(REPLY_BAD_SEQUENCE)->text,
		    s->esmtp ? "already authenticated" : "AUTH needs EHLO, not HELO");
		return;
	}
	initial = arg + len + strspn(arg + len, " ");
	if (len == 0 || len >= sizeof(mech) || strchr(initial, ' ') != NULL) {
		smtp_reply(s, REPLY_SYNTAX, "Syntax: AUTH <mechanism> [<initial-response>]");
		return;
	}
	memcpy(mech, arg, len);
	mech[len] = '\0';
	if ((name = sasl_mech_lookup(mech, &sends_password, &strength)) == NULL) {
		smtp_reply(s, REPLY_AUTH_UNKNOWN_MECH, "%s: %s", errmap_get(REPLY_AUTH_UNKNOWN_MECH)->text, mech);
		return;
	}
	if ((refusal = auth_mech_refusal(s, name, sends_password, strength)) != REPLY_AUTH_OK) {
		smtp_reply(s, refusal, "%s: %s", errmap_get(refusal)->text, name);
		return;
	}
	s->auth_mech = name;
	if ((st = auth_start(s->srv->auth, name, &s->authx)) != SASL_CONTINUE) {
		auth_outcome(s, st);
		return;
	}
	auth_continue(s, strcmp(initial, "=") == 0 ? "" : initial);
	explicit_bzero(s->line, s->srv->cfg->max_line);	/* a PLAIN initial response holds the password */
}

/* A line of the exchange (ST_AUTH): the client's response, or "*". */
static void
auth_response(struct session *s, size_t len)
{
	s->line[len] = '\0';
	auth_continue(s, s->line);
	explicit_bzero(s->line, len);		/* a PLAIN response holds the password */
}

/* A refused MAIL/RCPT argument: the table's text, then what was wrong. */
static void
reply_parse_error(struct session *s, const struct smtp_perror *why)
{
	const char *text = errmap_get(why->reply)->text;

	if (why->detail != NULL)
		smtp_reply(s, why->reply, "%s: %s", text, why->detail);
	else
		smtp_reply(s, why->reply, NULL);
}

static void
cmd_mail(struct session *s, const char *arg)
{
	struct smtp_mail mail;
	struct smtp_perror why;

	if (session_refuse_without_tls(s))
		return;
	if (smtp_parse_mail(arg, &mail, &why) < 0) {
		reply_parse_error(s, &why);
		return;
	}
	if (mail.has_size && mail.size > s->srv->cfg->max_message_size) {
		smtp_reply(s, REPLY_MESSAGE_TOO_BIG, "%s (%lu octets)",
		    errmap_get(REPLY_MESSAGE_TOO_BIG)->text, s->srv->cfg->max_message_size);
		return;
	}
	if (auth_policy(s)->auth == CFG_AUTH_REQUIRED && s->auth_user[0] == '\0') {
		smtp_reply(s, REPLY_AUTH_REQUIRED, NULL);
		return;
	}
	if (auth_policy(s)->restrict_sender && s->auth_user[0] != '\0' &&
	    !auth_may_send_as(s->srv->auth, s->auth_user, mail.from)) {
		smtp_reply(s, REPLY_SENDER_NOT_OWNED, "<%s>: %s", mail.from, errmap_get(REPLY_SENDER_NOT_OWNED)->text);
		return;
	}
	txn_reset(s);
	snprintf(s->txn.from, sizeof(s->txn.from), "%s", mail.from);
	s->txn.body = mail.body;
	s->txn.smtputf8 = mail.smtputf8;
	snprintf(s->txn.transid, sizeof(s->txn.transid), "%s", mail.transid);
	/* RFC 4954 section 5: AUTH= is kept only from an authenticated client. */
	if (mail.has_auth && s->auth_user[0] != '\0')
		snprintf(s->txn.mail_auth, sizeof(s->txn.mail_auth), "%s", mail.auth);
	s->txn.dsn_ret = mail.ret;
	snprintf(s->txn.dsn_envid, sizeof(s->txn.dsn_envid), "%s", mail.envid);
	session_enter(s, ST_MAIL);
	smtp_reply(s, REPLY_SENDER_OK, NULL);
}

/* Local mailbox of a recipient in a local domain, or the reply refusing it. */
static int
local_mailbox(struct session *s, const char *addr, char *mbox, size_t size, enum reply_id *why)
{
	int err;

	if (strchr(addr, '@') == NULL) {	/* "<Postmaster>" alone, RFC 5321 4.1.1.3 */
		snprintf(mbox, size, "postmaster");
		return 0;
	}
	if ((err = addr_mailbox_name(addr, mbox, size)) < 0) {
		*why = errmap_from_errno(-err)->id;
		return err;
	}
	if (!cfg_mailbox_is_known(s->srv->cfg, mbox)) {
		*why = REPLY_NO_SUCH_USER;
		return -ENOENT;
	}
	return 0;
}

/*
 * 450 4.2.0 to the RCPT of a mailbox a script has locked (mboxlock.h):
 * true when it answered.  Only a probe: the lock is taken again, and
 * held, at the end of the data.
 */
static bool
rcpt_mailbox_busy(struct session *s, const char *addr, const char *mbox)
{
	int fd, err = mboxlock_shared(s->srv->spool, mbox, &fd);

	mboxlock_release(fd);
	if (err != -EAGAIN)
		return false;
	s->txn.refused++;
	smtp_reply(s, REPLY_MAILBOX_BUSY, "<%s>: %s", addr, errmap_get(REPLY_MAILBOX_BUSY)->text);
	return true;
}

/*
 * A recipient with a [forwards] entry (RFC 5321 3.4): under forwarding =
 * yes it is accepted for the new address, 251 2.1.5 (a remote address is
 * queued for the relay like any remote recipient, a local one goes to its
 * mailbox); under no, 551 5.1.6 names the new address and nothing is
 * accepted.  One step: the new address is not looked up in [forwards].
 */
static void
rcpt_forward(struct session *s, const struct smtp_rcpt *rcpt, const char *to)
{
	const char *addr = rcpt->to;
	const struct cfg *cfg = s->srv->cfg;
	char mbox[ADDR_MAILBOX_MAX + 1];
	enum reply_id refusal;
	int at = addr_split(to), err;

	if (!cfg->forwarding) {
		s->txn.refused++;
		smtp_reply(s, REPLY_USER_NOT_LOCAL, "User not local; please try <%s>", to);
		return;
	}
	if (at >= 0 && cfg_domain_is_local(cfg, to + at + 1)) {
		if (local_mailbox(s, to, mbox, sizeof(mbox), &refusal) < 0) {
			s->txn.refused++;
			smtp_reply(s, refusal, "<%s>: forwarded to <%s>: %s", addr, to, errmap_get(refusal)->text);
			return;
		}
		if (rcpt_mailbox_busy(s, to, mbox))
			return;
		err = txn_add_rcpt(&s->txn, to, mbox, rcpt);
	} else {
		err = txn_add_rcpt(&s->txn, to, NULL, rcpt);
	}
	if (err < 0) {
		smtp_reply(s, errmap_from_errno(-err)->id, NULL);
		return;
	}
	log_info("forward", "session=%" PRIu64 " client=%s rcpt=<%s> to=<%s>", s->id, s->ip, addr, to);
	session_enter(s, ST_RCPT);
	smtp_reply(s, REPLY_WILL_FORWARD, "User not local; will forward to <%s>", to);
}

/*
 * A recipient in a local domain that is an alias: its mailboxes and
 * addresses join the transaction (addresses go to the relay whoever the
 * client is: the operator chose them).  1 when it was an alias (replied),
 * 0 when it is none.  The expansion counts against max_recipients:
 * over it, the RCPT gets 452 4.5.3 and adds nothing.
 */
static int
rcpt_alias(struct session *s, const struct smtp_rcpt *rcpt)
{
	const char *to = rcpt->to;
	const struct cfg *cfg = s->srv->cfg;
	struct alias_expansion x;
	char id[32], q[ADDR_MAX + 8];
	size_t i, added = 0;
	int r, err = 0;

	snprintf(id, sizeof(id), "session=%" PRIu64, s->id);
	r = aliases_expand_address(s->srv->aliases, cfg, to, cfg->max_recipients - s->txn.nrcpt, id, &x);
	if (r == 0)
		return 0;
	if (r == -E2BIG) {
		smtp_reply_uncounted(s, REPLY_TOO_MANY_RCPTS, "<%s>: the alias expands to more than %zu recipients",
		    to, (size_t)(cfg->max_recipients - s->txn.nrcpt));
		return 1;
	}
	if (r < 0) {
		s->txn.refused++;
		smtp_reply(s, r == -ELOOP ? errmap_from_errno(ELOOP)->id : REPLY_LOCAL_ERROR,
		    "<%s>: %s", to, r == -ELOOP ? "aliases nested too deep" : "alias expansion failed");
		return 1;
	}
	for (i = 0; i < x.nrcpt && err == 0; i++) {
		if (x.rcpt[i].dest == ALIAS_ADDRESS) {
			err = txn_add_rcpt(&s->txn, x.rcpt[i].value, NULL, rcpt);
		} else if (!cfg_mailbox_is_known(cfg, x.rcpt[i].value)) {
			log_warn("alias-target-refused", "%s rcpt=%s target=%s why=\"no such mailbox\"", id,
			    log_quote(q, sizeof(q), to), x.rcpt[i].value);
			continue;
		} else {
			err = txn_add_rcpt(&s->txn, to, x.rcpt[i].value, rcpt);
		}
		added++;
	}
	alias_expansion_free(&x);
	if (err < 0) {
		smtp_reply(s, errmap_from_errno(-err)->id, NULL);
	} else if (added == 0) {
		s->txn.refused++;
		smtp_reply(s, REPLY_NO_SUCH_USER, "<%s>: the alias has no deliverable target", to);
	} else {
		session_enter(s, ST_RCPT);
		smtp_reply(s, REPLY_RCPT_OK, NULL);
	}
	return 1;
}

static void
cmd_rcpt(struct session *s, const char *arg)
{
	const char *fwd;
	const struct cfg *cfg = s->srv->cfg;
	struct smtp_rcpt rcpt;
	struct smtp_perror why;
	char mbox[ADDR_MAILBOX_MAX + 1];
	enum reply_id refusal;
	int at, err;

	if (s->txn.nrcpt >= cfg->max_recipients) {
		/*
		 * RFC 5321 4.5.3.1.10: a client that pipelined more recipients
		 * than we take sends DATA for those accepted.  The overshoot is
		 * our limit, not a client error: it must not end the session.
		 */
		smtp_reply_uncounted(s, REPLY_TOO_MANY_RCPTS, "%s (at most %u)",
		    errmap_get(REPLY_TOO_MANY_RCPTS)->text, cfg->max_recipients);
		return;
	}
	if (smtp_parse_rcpt_utf8(arg, &rcpt, &why, s->txn.smtputf8) < 0) {
		s->txn.refused++;
		reply_parse_error(s, &why);
		return;
	}
	at = addr_split(rcpt.to);
	if (at >= 0 && cfg_domain_is_local(cfg, rcpt.to + at + 1) && (fwd = forward_find(cfg, rcpt.to)) != NULL) {
		rcpt_forward(s, &rcpt, fwd);
		return;
	}
	if (at < 0 || cfg_domain_is_local(cfg, rcpt.to + at + 1)) {
		if (rcpt_alias(s, &rcpt) != 0)
			return;
		if (local_mailbox(s, rcpt.to, mbox, sizeof(mbox), &refusal) < 0) {
			s->txn.refused++;
			smtp_reply(s, refusal, "<%s>: %s", rcpt.to, errmap_get(refusal)->text);
			return;
		}
		if (rcpt_mailbox_busy(s, rcpt.to, mbox))
			return;
		err = txn_add_rcpt(&s->txn, rcpt.to, mbox, &rcpt);
	} else if (s->may_relay || s->auth_user[0] != '\0') {	/* relay_networks, or AUTH */
		err = txn_add_rcpt(&s->txn, rcpt.to, NULL, &rcpt);
	} else {
		s->txn.refused++;
		smtp_reply(s, REPLY_RELAY_DENIED, "<%s>: %s", rcpt.to, errmap_get(REPLY_RELAY_DENIED)->text);
		return;
	}
	if (err < 0) {
		smtp_reply(s, errmap_from_errno(-err)->id, NULL);
		return;
	}
	session_enter(s, ST_RCPT);
	smtp_reply(s, REPLY_RCPT_OK, NULL);
}

/* RFC 5322 date of now, in local time. */
static void
rfc5322_date(char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL || strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(buf, size, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/*
 * RFC 3848: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both); RFC 6531
 * 4.3: UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA for an SMTPUTF8 message.
 */
static const char *
received_protocol(const struct session *s)
{
	static const char *const names[2][2][2] = {
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};

	if (!s->esmtp)
		return "SMTP";
	return names[s->txn.smtputf8][s->tls_active][s->auth_user[0] != '\0'];
}

/* "\n\t(using TLSv1.3 with cipher ... (256/256 bits))" as Postfix writes it, or "". */
static void
received_tls(struct session *s, char *buf, size_t len)
{
	struct tls_info info;
	char text[256];

	buf[0] = '\0';
	if (!s->tls_active)
		return;
	tls_info_get(bufferevent_openssl_get_ssl(s->bev), &info);
	tls_info_received(&info, text, sizeof(text));
	snprintf(buf, len, "\n\t(%s)", text);
}

/* Our trace header (RFC 5321 4.4), folded as Postfix folds it; an
 * authenticated client is named as Postfix does (never a secret). */
static int
write_received(struct session *s)
{
	char hdr[2048], date[64], forwho[ADDR_MAX + 16] = "", authwho[USERDB_NAME_MAX + 40] = "", tls[300];
	int n;

	rfc5322_date(date, sizeof(date));
	if (s->txn.nrcpt == 1)
		snprintf(forwho, sizeof(forwho), "\n\tfor <%s>", s->txn.rcpt[0].addr);
	received_tls(s, tls, sizeof(tls));
	if (s->auth_user[0] != '\0')
		snprintf(authwho, sizeof(authwho), "\n\t(Authenticated sender: %s)", s->auth_user);
	n = snprintf(hdr, sizeof(hdr),
	    "Received: from %s (unknown [%s%s])%s%s\n\tby %s (spoolgate) with %s id %s%s;\n\t%s\n",
	    s->helo, s->ipv6 ? "IPv6:" : "", s->ip, tls, authwho, s->srv->hostname, received_protocol(s),
	    spool_msg_id(s->txn.msg), forwho, date);
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return -ENAMETOOLONG;
	return spool_msg_write(s->txn.msg, hdr, (size_t)n);
}

static void data_store(struct session *s, const char *buf, size_t len);
static int txn_start_message(struct session *s);

/* ------------------------------------------------------------------ */
/* CHECKPOINT (RFC 1845): partial transfers in partial/ (checkpoint.h)  */
/* ------------------------------------------------------------------ */

static int
partial_dirfd(const struct session *s)
{
	return spool_dirfd(s->srv->spool, SPOOL_DIR_PARTIAL);
}

/* Who the client is, for the key: its user when authenticated, else its address. */
static void
checkpoint_client(const struct session *s, char *buf, size_t len)
{
	if (s->auth_user[0] != '\0')
		snprintf(buf, len, "user %s", s->auth_user);
	else
		snprintf(buf, len, "ip %s", s->ip);
}

/* The digest of sender and recipients, in order; 0 or -ENOMEM. */
static int
checkpoint_envelope(const struct txn *t, char hex[CKPT_KEY_LEN + 1])
{
	const char **rcpts = calloc(t->nrcpt + 1, sizeof(*rcpts));

	if (rcpts == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->nrcpt; i++)
		rcpts[i] = t->rcpt[i].addr;
	ckpt_envelope_hash(t->from, rcpts, t->nrcpt, hex);
	free(rcpts);
	return 0;
}

static void
checkpoint_drop(struct session *s, const char *why)
{
	struct txn *t = &s->txn;
	int err = ckpt_remove(partial_dirfd(s), t->ckpt.key);

	log_info("checkpoint-removed", "session=%" PRIu64 " client=%s key=%.16s reason=\"%s\" error=%d", s->id,
	    s->ip, t->ckpt.key, why, -err);
}

/*
 * Makes what was received so far durable: the data synced, linked into
 * partial/ (the first time), then the record that names it.  Called only
 * at a line end in the body, so that a resumed DATA starts at a line start.
 */
static void
checkpoint_take(struct session *s)
{
	struct txn *t = &s->txn;
	struct ckpt_meta *m = &t->ckpt.meta;
	int err, dirfd = partial_dirfd(s);

	t->ckpt.last = t->octets;
	if ((err = spool_msg_sync(t->msg)) < 0) {
		t->err = err;			/* reported at the end of data */
		return;
	}
	if (m->data[0] == '\0') {
		snprintf(m->data, sizeof(m->data), "%.64s.%s", t->ckpt.key, spool_msg_id(t->msg));
		if ((err = spool_msg_link(t->msg, dirfd, m->data)) < 0) {
			log_warn("checkpoint-failed", "id=%s session=%" PRIu64 " op=link error=%d", spool_msg_id(t->msg),
			    s->id, -err);
			t->ckpt.active = false;
			return;
		}
	}
	m->data_length = spool_msg_size(t->msg) - m->data_start;
	m->offset = t->octets;
	if ((err = ckpt_save(dirfd, t->ckpt.key, m)) < 0) {
		log_warn("checkpoint-failed", "id=%s session=%" PRIu64 " op=save error=%d", spool_msg_id(t->msg), s->id,
		    -err);
		return;
	}
	if (t->ckpt.stale[0] != '\0') {	/* the record names our data now */
		(void)unlinkat(dirfd, t->ckpt.stale, 0);
		t->ckpt.stale[0] = '\0';
	}
	log_info("checkpoint", "id=%s session=%" PRIu64 " client=%s transid=%s offset=%" PRIu64 " stored=%" PRIu64,
	    spool_msg_id(t->msg), s->id, s->ip, m->transid, m->offset, m->data_length);
}

/* Copies the content a partial transfer kept into the new message; 0 or -errno. */
static int
checkpoint_copy(struct session *s, const struct ckpt_meta *old)
{
	char buf[DATA_CHUNK];
	uint64_t done = 0;
	struct stat st;
	int fd, err = 0;

	if ((fd = openat(partial_dirfd(s), old->data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < old->data_start ||
	    (uint64_t)st.st_size - old->data_start < old->data_length)
		err = -EBADMSG;
	while (err == 0 && done < old->data_length) {
		size_t want = old->data_length - done < sizeof(buf) ? (size_t)(old->data_length - done) : sizeof(buf);
		ssize_t n = spool_pread_all(fd, buf, want, (off_t)(old->data_start + done));

		if (n <= 0)
			err = n < 0 ? (int)n : -EBADMSG;
		else {
			data_store(s, buf, (size_t)n);
			done += (uint64_t)n;
		}
	}
	close(fd);
	return err;
}

/*
 * DATA of a transaction with TRANSID: the partial transfer of this client
 * and TRANSID, if its envelope is the same, is taken up again.  Returns
 * the offset to announce in the 355, or 0 for a new transfer (354).
 */
static uint64_t
checkpoint_begin(struct session *s)
{
	struct txn *t = &s->txn;
	struct ckpt_meta old;
	int n, err;

	if ((n = ckpt_sweep(partial_dirfd(s), (long long)time(NULL), s->srv->cfg->checkpoint_lifetime)) > 0)
		log_info("checkpoint-expired", "count=%d lifetime=%u", n, s->srv->cfg->checkpoint_lifetime);
	memset(&t->ckpt, 0, sizeof(t->ckpt));
	t->ckpt.active = true;
	snprintf(t->ckpt.meta.transid, sizeof(t->ckpt.meta.transid), "%s", t->transid);
	checkpoint_client(s, t->ckpt.meta.client, sizeof(t->ckpt.meta.client));
	ckpt_key(t->ckpt.meta.client, t->transid, t->ckpt.key);
	if (checkpoint_envelope(t, t->ckpt.meta.envelope) < 0) {
		t->ckpt.active = false;		/* no checkpoints; the message itself goes on */
		return 0;
	}
	t->ckpt.meta.data_start = spool_msg_size(t->msg);
	if ((err = ckpt_load(partial_dirfd(s), t->ckpt.key, &old)) == -ENOENT)
		return 0;
	if (err < 0 || strcmp(old.envelope, t->ckpt.meta.envelope) != 0 || strcmp(old.transid, t->transid) != 0 ||
	    strcmp(old.client, t->ckpt.meta.client) != 0) {
		checkpoint_drop(s, err < 0 ? "unreadable record" : "another envelope under this TRANSID: a new transfer");
		return 0;
	}
	if ((err = checkpoint_copy(s, &old)) < 0) {
		/* What was copied is in the message file: start it again, as a new transfer. */
		log_warn("checkpoint-failed", "session=%" PRIu64 " op=resume error=%d", s->id, -err);
		checkpoint_drop(s, "its data cannot be read");
		spool_msg_free(t->msg);
		t->msg = NULL;
		if ((err = txn_start_message(s)) < 0)
			t->err = err;
		t->ckpt.active = t->msg != NULL;
		if (t->msg != NULL)
			t->ckpt.meta.data_start = spool_msg_size(t->msg);
		return 0;
	}
	t->octets = old.offset;
	snprintf(t->ckpt.stale, sizeof(t->ckpt.stale), "%s", old.data);
	log_info("checkpoint-resumed", "id=%s session=%" PRIu64 " client=%s transid=%s offset=%" PRIu64
	    " stored=%" PRIu64, spool_msg_id(t->msg), s->id, s->ip, t->transid, old.offset, old.data_length);
	checkpoint_take(s);			/* durable under the new id at once */
	return old.offset;
}

/* A checkpoint is due and DATA is at a line start in the body (nothing held back). */
static bool
checkpoint_due(const struct session *s)
{
	const struct txn *t = &s->txn;

	return t->ckpt.active && t->err == 0 && t->octets - t->ckpt.last >= s->srv->cfg->checkpoint_interval;
}

static bool
checkpoint_at_line_start(const struct txn *t)
{
	return t->dec.state == SMTP_DATA_BOL && t->hdr.done && t->filter.done;
}

/*
 * The message file of the transaction, with our Received: first; for
 * DATA and for the first BDAT chunk.  0, or the -errno of the spool.
 */
static int
txn_start_message(struct session *s)
{
	struct txn *t = &s->txn;
	int err;

	if ((err = spool_msg_create(s->srv->spool, t->from, &t->msg)) < 0) {
		t->msg = NULL;
		log_error("spool-error", "session=%" PRIu64 " client=%s op=create error=%d", s->id, s->ip, -err);
		return err;
	}
	/* A write error is remembered and reported after the data (no 250). */
	t->err = write_received(s);
	smtp_data_init(&t->dec);
	smtp_hdrscan_init(&t->hdr);
	smtp_hdrfilter_init(&t->filter);
	memset(&t->chunk, 0, sizeof(t->chunk));
	t->octets = 0;
	return 0;
}

static void
cmd_data(struct session *s, const char *arg)
{
	int err;

	(void)arg;
	if (s->txn.body == SMTP_BODY_BINARYMIME) {	/* RFC 3030 section 3 */
		smtp_reply(s, REPLY_BAD_SEQUENCE, "%s: BODY=BINARYMIME needs BDAT, not DATA",
		    errmap_get(REPLY_BAD_SEQUENCE)->text);
		return;
	}
	if ((err = txn_start_message(s)) < 0) {
		smtp_reply(s, spool_error_reply(err)->id, NULL);
		return;
	}
	session_enter(s, ST_DATA);
	if (s->txn.transid[0] != '\0' && checkpoint_begin(s) > 0) {
		smtp_reply(s, REPLY_CHECKPOINT_OFFSET, "%" PRIu64 " is the transaction offset", s->txn.octets);
		return;
	}
	smtp_reply(s, REPLY_START_DATA, NULL);
}

static void
cmd_rset(struct session *s, const char *arg)
{
	(void)arg;
	txn_abort(s);
	smtp_reply(s, REPLY_OK, NULL);
}

static void
cmd_noop(struct session *s, const char *arg)
{
	(void)arg;
	smtp_reply(s, REPLY_OK, NULL);
}

static void
cmd_quit(struct session *s, const char *arg)
{
	(void)arg;
	smtp_reply(s, REPLY_BYE, NULL);
	session_close(s);
}

/*
 * VRFY (RFC 5321 3.5.3): 252 unless vrfy = yes; then a local address is
 * answered 250 2.1.5 (a mailbox here), 550 (none), 251/551 (a forward,
 * the reply RCPT would give), and any other address 252, as RFC 5321
 * 7.3 allows a server that does not say.  Nothing is created.
 */
static void
cmd_vrfy(struct session *s, const char *arg)
{
	const struct cfg *cfg = s->srv->cfg;
	char addr[ADDR_MAX], mbox[ADDR_MAILBOX_MAX + 1];
	const char *rest, *fwd;
	enum reply_id refusal;
	int at, err;

	if (!cfg->vrfy) {
		smtp_reply(s, REPLY_CANNOT_VRFY, NULL);
		return;
	}
	err = addr_parse_path(arg, addr, sizeof(addr), &rest, ADDR_ALLOW_UNBRACKETED | ADDR_ALLOW_POSTMASTER);
	if (err < 0 || *rest != '\0') {
		smtp_reply(s, REPLY_SYNTAX, "Syntax: VRFY <address>");
		return;
	}
	at = addr_split(addr);
	if (at >= 0 && !cfg_domain_is_local(cfg, addr + at + 1)) {
		smtp_reply(s, REPLY_CANNOT_VRFY, NULL);
		return;
	}
	if (at >= 0 && (fwd = forward_find(cfg, addr)) != NULL) {
		if (cfg->forwarding)
			smtp_reply(s, REPLY_WILL_FORWARD, "User not local; will forward to <%s>", fwd);
		else
			smtp_reply(s, REPLY_USER_NOT_LOCAL, "User not local; please try <%s>", fwd);
		return;
	}
	if (local_mailbox(s, addr, mbox, sizeof(mbox), &refusal) < 0) {
		smtp_reply(s, refusal, "<%s>: %s", addr, errmap_get(refusal)->text);
		return;
	}
	smtp_reply(s, REPLY_RCPT_OK, "<%s>", addr);
}

static void
cmd_expn(struct session *s, const char *arg)
{
	(void)arg;
	smtp_reply(s, REPLY_NOT_IMPLEMENTED, "EXPN: %s", errmap_get(REPLY_NOT_IMPLEMENTED)->text);
}

static bool
etrn_offered(const struct session *s)
{
	return s->lst->cfg->etrn != CFG_ETRN_NO;
}

/* ETRN (RFC 1985): the argument, the policy and the queue run are etrn.c's. */
static void
cmd_etrn(struct session *s, const char *arg)
{
	struct etrn_reply r;

	etrn_answer(s->srv->runner, s->lst->cfg->etrn, s->may_relay || s->auth_user[0] != '\0', arg, &r);
	smtp_reply(s, r.id, "%s", r.text);
}

static bool
atrn_offered(const struct session *s)
{
	return s->lst->cfg->odmr;
}

/*
 * ATRN (RFC 2645): after its 250 the connection is the relay's, which
 * waits for the client's 220 and delivers the held mail of the domains
 * over it (runner_atrn_start()); the session goes without closing it.
 */
static void
cmd_atrn(struct session *s, const char *arg)
{
	struct bufferevent *bev;
	struct atrn_reply *r;

	if (!s->lst->cfg->odmr) {
		smtp_reply(s, REPLY_NOT_IMPLEMENTED, NULL);
		return;
	}
	if (s->auth_user[0] == '\0') {
		smtp_reply(s, REPLY_AUTH_REQUIRED, NULL);
		return;
	}
	if ((r = malloc(sizeof(*r))) == NULL) {
		smtp_reply(s, REPLY_NO_MEMORY, NULL);
		return;
	}
	atrn_answer(s->srv->cfg, s->srv->runner, s->auth_user, arg != NULL ? arg : "", r);
	smtp_reply(s, r->id, "%s", r->text);
	if (r->turn && !s->free_scheduled) {
		log_info("atrn", "session=%" PRIu64 " client=%s user=%s domains=%zu action=\"connection reversed\"",
		    s->id, s->ip, s->auth_user, r->ndomains);
		bev = s->bev;
		session_schedule_free(s);
		s->bev = NULL;		/* the relay's now: session_free() leaves it */
		(void)runner_atrn_start(s->srv->runner, bev, (const char (*)[ROUTE_HOST_MAX + 1])r->domains,
		    r->ndomains);
	}
	free(r);
}

static void tls_switch_when_flushed(struct session *s);
static void tls_switch_cb(evutil_socket_t fd, short what, void *arg);

/*
 * STARTTLS (RFC 3207).  The 220 goes out in plaintext; what the client
 * pipelined behind STARTTLS is thrown away unread (CVE-2011-0411, the
 * STARTTLS injection family of 2021: bytes sent in plaintext must not be
 * answered as if they came through TLS); reading stops, so the client's
 * ClientHello stays in the socket; once the 220 has left, the socket goes
 * to an OpenSSL bufferevent (tls_switch_cb()).
 */
static void
cmd_starttls(struct session *s, const char *arg)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	char err[TLS_ERR_LEN], q[TLS_ERR_LEN + 16];
	size_t injected;

	(void)arg;
	if (s->tls_active) {
		smtp_reply(s, REPLY_TLS_ALREADY_ACTIVE, NULL);
		return;
	}
	if (!tls_policy_tries_tls(s->lst->tls_policy)) {
		smtp_reply(s, REPLY_NOT_IMPLEMENTED, "STARTTLS: %s", errmap_get(REPLY_NOT_IMPLEMENTED)->text);
		return;
	}
	if (s->lst->tls == NULL) {
		smtp_reply_uncounted(s, REPLY_TLS_UNAVAILABLE, NULL);	/* logged at start and at reload */
		return;
	}
	if (s->ev_tls == NULL && (s->ev_tls = event_new(s->srv->base, -1, 0, tls_switch_cb, s)) == NULL) {
		smtp_reply_uncounted(s, REPLY_TLS_UNAVAILABLE, NULL);
		return;
	}
	if (tls_server_ssl(s->lst->tls, &s->tls_pending, err, sizeof(err)) < 0) {
		log_error("tls-unavailable", "session=%" PRIu64 " client=%s listener=%s error=%s", s->id, s->ip,
		    s->lst->cfg->name, log_quote(q, sizeof(q), err));
		smtp_reply_uncounted(s, REPLY_TLS_UNAVAILABLE, NULL);
		return;
	}
	if ((injected = evbuffer_get_length(in)) > 0) {
		log_warn("starttls-injection", "session=%" PRIu64 " client=%s listener=%s octets=%zu "
		    "action=\"discarded: sent after STARTTLS, before the TLS handshake\"", s->id, s->ip,
		    s->lst->cfg->name, injected);
		evbuffer_drain(in, injected);
	}
	s->discarding = false;
	bufferevent_disable(s->bev, EV_READ);
	session_forget(s);
	session_enter(s, ST_TLS);
	smtp_reply(s, REPLY_READY_TLS, NULL);
	tls_switch_when_flushed(s);
}

static const struct smtp_command *
command_lookup(const char *verb)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].verb, verb) == 0)
			return &commands[i];
	return NULL;
}

/* HELP STATUS (211): the server's state, for clients that may relay; others get 214 saying so. */
static void
help_status_reply(struct session *s)
{
	char buf[HELP_STATUS_LINES][HELP_LINE_MAX];
	const char *lines[HELP_STATUS_LINES];
	size_t i, n;

	if (!s->may_relay && s->auth_user[0] == '\0') {
		smtp_reply(s, REPLY_HELP, "STATUS: the server's state is shown to clients in relay_networks only");
		return;
	}
	n = help_status(s->srv, s->lst->cfg->name, buf, HELP_STATUS_LINES);
	for (i = 0; i < n; i++)
		lines[i] = buf[i];
	reply_send(s, REPLY_SYSTEM_STATUS, 0, lines, n);
}

/* HELP <command>: its syntax (the command table), then what help.c says about it. */
static void
help_command_reply(struct session *s, const struct smtp_command *c)
{
	char syntax[REPLY_LINE_MAX];
	const char *lines[1 + 8];
	size_t n;

	snprintf(syntax, sizeof(syntax), "Syntax: %s", c->help);
	lines[0] = syntax;
	n = 1 + help_topic(c->verb, lines + 1, 8);
	reply_send(s, REPLY_HELP, 0, lines, n);
}

static void
cmd_help(struct session *s, const char *arg)
{
	char verbs[REPLY_LINE_MAX], up[SMTP_VERB_MAX], intro[REPLY_LINE_MAX];
	const char *lines[4];
	const struct smtp_command *c;
	size_t i, n = 0;

	if (*arg != '\0') {
		for (i = 0; arg[i] != '\0' && i + 1 < sizeof(up); i++)
			up[i] = (char)(arg[i] >= 'a' && arg[i] <= 'z' ? arg[i] - 'a' + 'A' : arg[i]);
		up[i] = '\0';
		if (arg[i] == '\0' && strcmp(up, "STATUS") == 0) {
			help_status_reply(s);
			return;
		}
		if (arg[i] != '\0' || (c = command_lookup(up)) == NULL) {
			smtp_reply(s, REPLY_PARAM_NOT_IMPLEMENTED, "HELP: no such topic (HELP lists the commands)");
			return;
		}
		help_command_reply(s, c);
		return;
	}
	for (i = 0; i < N_COMMANDS; i++)
		n += (size_t)snprintf(verbs + n, sizeof(verbs) - n, "%s%s", i ? " " : "", commands[i].verb);
	snprintf(intro, sizeof(intro), "spoolgate %s on %s (RFC 5321); commands:", SPOOLGATE_VERSION,
	    s->srv->hostname);
	lines[0] = intro;
	lines[1] = verbs;
	lines[2] = "HELP <command> explains one; HELP STATUS shows the server's state (relay clients)";
	lines[3] = "To report a problem with this server, write to postmaster";
	reply_send(s, REPLY_HELP, 0, lines, 4);
}

/* 503, or 554 for DATA after every RCPT was refused (RFC 5321 3.3). */
static void
sequence_error(struct session *s, const struct smtp_command *c)
{
	size_t i;

	if (strcmp(c->verb, "DATA") == 0 && s->state == ST_MAIL && s->txn.refused > 0) {
		smtp_reply(s, REPLY_NO_VALID_RCPTS, NULL);
		return;
	}
	for (i = 0; i < sizeof(sequence_errors) / sizeof(sequence_errors[0]); i++) {
		if (sequence_errors[i].state != s->state)
			continue;
		if (sequence_errors[i].verb == NULL || strcmp(sequence_errors[i].verb, c->verb) == 0) {
			smtp_reply(s, REPLY_BAD_SEQUENCE, "%s: %s", errmap_get(REPLY_BAD_SEQUENCE)->text,
			    sequence_errors[i].detail);
			return;
		}
	}
	smtp_reply(s, REPLY_BAD_SEQUENCE, NULL);
}

/*
 * RFC 7504: a listener with accept_mail = no greets with 521 5.3.2 and
 * answers 521 to every command but QUIT.  These count toward max_errors:
 * a client that never says QUIT is closed with 421 like any other that
 * keeps failing.
 */
static void
no_mail_reply(struct session *s)
{
	smtp_reply(s, REPLY_NO_MAIL_ACCEPTED, "%s does not accept mail", s->srv->hostname);
}

/* The first reply: 220, or 521 on a listener that accepts no mail (then only QUIT is served). */
static void
session_greet(struct session *s)
{
	const struct cfg *cfg = s->srv->cfg;

	if (!s->lst->cfg->accept_mail) {
		session_enter(s, ST_NOMAIL);
		smtp_reply_uncounted(s, REPLY_NO_MAIL_ACCEPTED, "%s does not accept mail", s->srv->hostname);
		return;
	}
	smtp_reply(s, REPLY_GREETING, "%s", cfg->banner ? cfg->banner : "ESMTP");
}

/* One complete command line, line ending removed. */
static void
dispatch(struct session *s, size_t len)
{
	const struct smtp_command *c;
	struct smtp_cmdline cl;
	int err;

	err = smtp_parse_command(s->line, len, &cl);
	c = err == 0 ? command_lookup(cl.verb) : NULL;
	if (s->state == ST_NOMAIL && (c == NULL || !(c->states & ST(ST_NOMAIL)))) {
		no_mail_reply(s);		/* RFC 7504: 521 to everything but QUIT */
		return;
	}
	if (err == -EILSEQ) {
		smtp_reply(s, REPLY_SYNTAX, "%s: NUL or CR byte in command line", errmap_get(REPLY_SYNTAX)->text);
		return;
	}
	if (c == NULL) {
		smtp_reply(s, REPLY_UNKNOWN_COMMAND, NULL);
		return;
	}
	log_debug("command", "session=%" PRIu64 " verb=%s", s->id, c->verb);
	if (c->arg == ARG_NONE && *cl.arg != '\0') {
		smtp_reply(s, REPLY_NO_PARAMS, "%s: %s", errmap_get(REPLY_NO_PARAMS)->text, c->help);
		return;
	}
	if (c->arg == ARG_REQUIRED && *cl.arg == '\0') {
		smtp_reply(s, REPLY_SYNTAX, "Syntax: %s", c->help);
		return;
	}
	if (!(c->states & ST(s->state))) {
		sequence_error(s, c);
		return;
	}
	c->handler(s, cl.arg);
}

/* ------------------------------------------------------------------ */
/* DATA and the commit                                                 */
/* ------------------------------------------------------------------ */

static void
data_write(struct session *s, const char *buf, size_t len)
{
	struct txn *t = &s->txn;
	int err;

	if (len > 0 && (err = spool_msg_write(t->msg, buf, len)) < 0) {
		t->err = err;
		log_warn("spool-error", "id=%s session=%" PRIu64 " op=write error=%d", spool_msg_id(t->msg),
		    s->id, -err);
	}
}

/*
 * Decoded message bytes: watched for Received:, written unless refused,
 * without the sender's Return-Path: fields (ours comes first).
 */
static void
data_store(struct session *s, const char *buf, size_t len)
{
	struct txn *t = &s->txn;
	char kept[DATA_CHUNK + SMTP_HDRFILTER_HOLD];

	if (len == 0)
		return;
	smtp_hdrscan_feed(&t->hdr, buf, len);
	if (t->err == 0 && t->hdr.received > s->srv->cfg->max_hops)
		t->err = -ELOOP;
	while (t->err == 0 && len > 0) {	/* else read and dropped until the end */
		size_t n = len < DATA_CHUNK ? len : DATA_CHUNK;

		data_write(s, kept, smtp_hdrfilter_feed(&t->filter, buf, n, kept));
		buf += n;
		len -= n;
	}
}

/* The end of the data: what the Return-Path filter still holds. */
static void
data_store_end(struct session *s)
{
	char kept[SMTP_HDRFILTER_HOLD];
	size_t len = smtp_hdrfilter_finish(&s->txn.filter, kept);

	if (s->txn.err == 0)
		data_write(s, kept, len);
}

/* Feeds the input to the DATA machine; true once <CRLF>.<CRLF> was read. */
static bool
data_consume(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct txn *t = &s->txn;
	uint64_t limit = (uint64_t)s->srv->cfg->max_message_size + 3;	/* + ".\r\n" */
	char out[DATA_CHUNK];

	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v[8];
		size_t consumed = 0;
		bool line_ended = false;
		int i, n, rc = SMTP_DATA_MORE;

		n = evbuffer_peek(in, -1, NULL, v, 8);
		if (n > 8)
			n = 8;
		for (i = 0; i < n && rc == SMTP_DATA_MORE; i++) {
			const char *base = v[i].iov_base;
			size_t off = 0, used, olen;

			while (off < v[i].iov_len && rc == SMTP_DATA_MORE) {
				size_t avail = v[i].iov_len - off;
				const char *nl;

				/* A checkpoint waits for the next line end: decode up to it. */
				if (checkpoint_due(s) && (nl = memchr(base + off, '\n', avail)) != NULL)
					avail = (size_t)(nl - (base + off)) + 1;
				rc = smtp_data_decode(&t->dec, base + off, avail, &used, out, sizeof(out), &olen);
				off += used;
				t->octets += used;
				if (t->err == 0 && t->octets > limit)
					t->err = -EFBIG;
				data_store(s, out, olen);
				if (rc == SMTP_DATA_MORE && checkpoint_due(s) && checkpoint_at_line_start(t))
					checkpoint_take(s);
			}
			if (!line_ended && memchr(base, '\n', off) != NULL)
				line_ended = true;
			consumed += off;
		}
		evbuffer_drain(in, consumed);
		if (line_ended)
			deadline_restart(s);	/* per line of the message, as per command */
		if (rc == SMTP_DATA_END) {
			data_store_end(s);
			if (t->octets - 3 > s->srv->cfg->max_message_size && t->err == 0)
				t->err = -EFBIG;
			return true;
		}
	}
	return false;
}

static int
commit_start(void *arg)
{
	struct session_commit *c = arg;

	return spool_msg_commit_start(c->msg);
}

static int
commit_prepare(void *arg)
{
	struct session_commit *c = arg;

	return spool_msg_commit_prepare(c->msg);
}

static int
commit_publish(void *arg, struct spool_dirset *dirs)
{
	struct session_commit *c = arg;

	return spool_msg_commit_publish(c->msg, dirs);
}

static void
commit_unpublish(void *arg)
{
	struct session_commit *c = arg;

	spool_msg_commit_unpublish(c->msg);
}

/* The reply to a committed message, sent by the session that still waits for it. */
static void
session_commit_done(struct session *s, const char *id, int result)
{
	if (result == 0)
		smtp_reply(s, REPLY_QUEUED, "%s as %s", errmap_get(REPLY_QUEUED)->text, id);
	else
		smtp_reply(s, spool_error_reply(result)->id, NULL);
	if (s->state == ST_CLOSING)
		return;				/* max_errors reached */
	session_enter(s, ST_IDLE);
	deadline_restart(s);			/* the commit was our time, not the client's */
	if (s->srv->stopping) {
		smtp_reply(s, REPLY_SHUTDOWN, NULL);
		session_close(s);
		return;
	}
	process_input(s);			/* the pipelined commands that waited */
}

/* On the loop thread, when the commit is over: the session may be gone. */
static void
commit_done(void *arg, int result)
{
	struct session_commit *c = arg;
	struct session *s = server_lookup(c->srv, c->session_id);
	const char *id = spool_msg_id(c->msg);
	char from[ADDR_MAX + 2], q[ADDR_MAX + 8], auth[USERDB_NAME_MAX * 4 + 16] = "";

	if (result == 0) {
		snprintf(from, sizeof(from), "<%s>", c->from);	/* "<>" shows the null sender */
		if (c->auth_user[0] != '\0') {
			memcpy(auth, " auth=", 6);
			log_quote(auth + 6, sizeof(auth) - 6, c->auth_user);
		}
		log_info("accepted", "id=%s from=%s nrcpt=%zu size=%" PRIu64 " client=%s %s%s%s", id,
		    log_quote(q, sizeof(q), from), c->nrcpt, c->size, c->client, c->tls, auth,
		    s == NULL ? " session=gone" : "");
		if (c->queued)
			runner_kick(c->srv->runner);
		if (c->ckpt_key[0] != '\0')	/* the transfer is complete: its partial goes */
			(void)ckpt_remove(spool_dirfd(c->srv->spool, SPOOL_DIR_PARTIAL), c->ckpt_key);
	} else {
		log_error("commit-failed", "id=%s client=%s error=%d reply=%d", id, c->client, -result,
		    spool_error_reply(result)->code);
	}
	if (s != NULL && s->state == ST_COMMIT)
		session_commit_done(s, id, result);
	for (size_t i = 0; i < c->nlocks; i++)
		mboxlock_release(c->locks[i]);
	free(c->locks);
	spool_msg_free(c->msg);
	free(c);
}

/*
 * The shared lock of a local target (mboxlock.h), held until the message
 * is published there: -EAGAIN (450 4.2.0 for the message) while a script
 * holds the mailbox.
 */
static int
txn_lock_mailbox(struct session *s, const char *mbox)
{
	struct txn *t = &s->txn;
	int *grown, fd, err;

	if ((grown = realloc(t->locks, (t->nlocks + 1) * sizeof(*grown))) == NULL)
		return -ENOMEM;
	t->locks = grown;
	if ((err = mboxlock_shared(s->srv->spool, mbox, &fd)) < 0) {
		log_info("mailbox-locked", "id=%s session=%" PRIu64 " mailbox=%s error=%d", spool_msg_id(t->msg),
		    s->id, mbox, -err);
		return err;
	}
	if (fd >= 0)
		t->locks[t->nlocks++] = fd;
	return 0;
}

/* A relay recipient into the record, with its DSN parameters. */
static int
envelope_add_queued_rcpt(struct envelope *env, const struct rcpt *r)
{
	size_t before = env->nrcpt;
	int err;

	if ((err = envelope_add_rcpt(env, r->addr)) < 0 || env->nrcpt == before)
		return err;		/* a duplicate keeps the parameters of its first RCPT */
	return envelope_set_rcpt_dsn(env, env->nrcpt - 1, r->notify, r->orcpt);
}

/*
 * A local recipient whose sender asked for a success notice (RFC 3461
 * NOTIFY=SUCCESS): it goes into the queued record too, already sent, so
 * that the runner makes the "delivered" notice (bounce.h).  Never for
 * MAIL FROM:<>.
 */
static bool
rcpt_wants_delivered_notice(const struct txn *t, const struct rcpt *r)
{
	return r->mailbox != NULL && t->from[0] != '\0' && dsn_notify_wants(r->notify, DSN_NOTIFY_SUCCESS);
}

/* Such a local recipient into the record: stored, its notice due (envelope.h rcpt-success). */
static int
envelope_add_delivered_rcpt(struct envelope *env, const struct rcpt *r)
{
	char reply[ADDR_MAX + 48];
	size_t i = env->nrcpt;
	int err;

	if ((err = envelope_add_queued_rcpt(env, r)) < 0 || env->nrcpt == i)
		return err;
	snprintf(reply, sizeof(reply), "250 2.0.0 stored in mailbox %s", r->mailbox);
	if ((err = envelope_set_rcpt(env, i, RCPT_SENT, reply)) < 0)
		return err;
	return envelope_set_rcpt_success(env, i, "delivered due");
}

/* Registers where the message goes: local mailboxes, the relay's queue. */
static int
data_register_targets(struct session *s, bool *queued)
{
	struct txn *t = &s->txn;
	struct envelope env;
	char origin[INET6_ADDRSTRLEN + 8];
	size_t i;
	int err = 0;

	*queued = false;
	for (i = 0; i < t->nrcpt && err == 0; i++)
		if (t->rcpt[i].mailbox != NULL && (err = txn_lock_mailbox(s, t->rcpt[i].mailbox)) == 0)
			err = spool_msg_deliver_local(t->msg, t->rcpt[i].mailbox);
	for (i = 0; i < t->nrcpt && err == 0; i++)
		if (t->rcpt[i].mailbox == NULL || rcpt_wants_delivered_notice(t, &t->rcpt[i]))
			*queued = true;
	if (err < 0 || !*queued)
		return err;
	snprintf(origin, sizeof(origin), "smtp %s", s->ip);
	if ((err = envelope_init(&env, spool_msg_id(t->msg), t->from, origin)) < 0)
		return err;
	if (s->auth_user[0] != '\0' && (err = envelope_set_auth(&env, s->auth_mech, s->auth_user,
	    t->mail_auth[0] != '\0' ? t->mail_auth : NULL)) < 0) {
		envelope_free(&env);
		return err;
	}
	if ((err = envelope_set_dsn_request(&env, t->dsn_ret, t->dsn_envid[0] != '\0' ? t->dsn_envid : NULL)) < 0) {
		envelope_free(&env);
		return err;
	}
	env.binarymime = t->body == SMTP_BODY_BINARYMIME;
	env.smtputf8 = t->smtputf8;
	for (i = 0; i < t->nrcpt && err == 0; i++)
		if (t->rcpt[i].mailbox == NULL)
			err = envelope_add_queued_rcpt(&env, &t->rcpt[i]);
		else if (rcpt_wants_delivered_notice(t, &t->rcpt[i]))
			err = envelope_add_delivered_rcpt(&env, &t->rcpt[i]);
	if (err == 0)
		err = spool_msg_queue(t->msg, &env);
	envelope_free(&env);
	return err;
}

static void
data_reject(struct session *s, int err)
{
	const struct errmap_reply *r = spool_error_reply(err);

	log_info("rejected", "id=%s session=%" PRIu64 " client=%s octets=%" PRIu64 " error=%d reply=%d",
	    spool_msg_id(s->txn.msg), s->id, s->ip, s->txn.octets, -err, r->code);
	if (s->txn.ckpt.active && r->code >= 500)
		checkpoint_drop(s, "the message was refused");
	smtp_reply(s, r->id, NULL);
	if (s->state != ST_CLOSING)
		txn_abort(s);
}

/* <CRLF>.<CRLF> was read: refuse, or hand the message to the committer. */
static void
data_finish(struct session *s)
{
	struct txn *t = &s->txn;
	struct session_commit *c;
	bool queued;
	int err;

	if (t->err == 0)
		t->err = spool_msg_error(t->msg);
	if (t->err == 0)
		t->err = data_register_targets(s, &queued);
	if (t->err != 0) {
		data_reject(s, t->err);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		data_reject(s, -ENOMEM);
		return;
	}
	c->job.start = commit_start;
	c->job.prepare = commit_prepare;
	c->job.publish = commit_publish;
	c->job.unpublish = commit_unpublish;
	c->job.done = commit_done;
	c->job.arg = c;
	c->srv = s->srv;
	c->session_id = s->id;
	c->msg = t->msg;
	c->queued = queued;
	c->nrcpt = t->nrcpt;
	c->size = spool_msg_size(t->msg);
	snprintf(c->from, sizeof(c->from), "%s", t->from);
	snprintf(c->client, sizeof(c->client), "%s", s->ip);
	session_tls_describe(s, c->tls, sizeof(c->tls));
	snprintf(c->auth_user, sizeof(c->auth_user), "%s", s->auth_user);
	if (t->ckpt.active)
		snprintf(c->ckpt_key, sizeof(c->ckpt_key), "%s", t->ckpt.key);
	if ((err = commitq_submit(s->srv->cq, &c->job)) < 0) {
		free(c);
		data_reject(s, err);
		return;
	}
	t->msg = NULL;				/* the job owns it now */
	c->locks = t->locks;			/* and the mailbox locks, until published */
	c->nlocks = t->nlocks;
	t->locks = NULL;
	t->nlocks = 0;
	txn_reset(s);
	session_enter(s, ST_COMMIT);
}

/* ------------------------------------------------------------------ */
/* BDAT (RFC 3030 CHUNKING, BINARYMIME)                                */
/* ------------------------------------------------------------------ */

/*
 * A BDAT that cannot be taken: its chunk is still read (the client sends
 * it right behind the command, pipelined or not) and dropped, and the
 * refusal is the reply once the chunk is over.
 */
static void
bdat_refuse(struct session *s, enum reply_id refusal, const char *detail)
{
	s->chunk.discard = true;
	s->chunk.refusal = refusal;
	s->chunk.detail = detail;
	s->chunk.resume = s->state;
	session_enter(s, ST_BDAT);
}

/* Why BDAT is out of sequence here, or NULL when it is not. */
static const char *
bdat_sequence_detail(const struct session *s)
{
	switch (s->state) {
	case ST_RCPT:
	case ST_CHUNKS:
		return NULL;
	case ST_GREETED:
		return "send HELO/EHLO first";
	case ST_MAIL:
		return "need RCPT command";
	default:
		return "need MAIL command";
	}
}

/* "BDAT <chunk-size> [LAST]" */
static void
cmd_bdat(struct session *s, const char *arg)
{
	struct txn *t = &s->txn;
	const char *detail;
	uint64_t max = s->srv->cfg->max_message_size;
	int err;

	memset(&s->chunk, 0, sizeof(s->chunk));
	if (smtp_parse_bdat(arg, &s->chunk.size, &s->chunk.last) < 0) {
		/* No size: nothing can be skipped; the client must start again. */
		smtp_reply(s, REPLY_SYNTAX, "Syntax: BDAT <chunk-size> [LAST]");
		return;
	}
	s->chunk.left = s->chunk.size;
	if ((detail = bdat_sequence_detail(s)) != NULL) {
		if (s->state == ST_MAIL && t->refused > 0)
			bdat_refuse(s, REPLY_NO_VALID_RCPTS, NULL);
		else
			bdat_refuse(s, REPLY_BAD_SEQUENCE, detail);
		return;
	}
	if (t->msg == NULL && (err = txn_start_message(s)) < 0) {
		txn_abort(s);
		bdat_refuse(s, spool_error_reply(err)->id, NULL);
		return;
	}
	/* Over the limit: still read, refused with 552 5.3.4 after it. */
	if (t->err == 0 && (t->octets > max || s->chunk.size > max - t->octets))
		t->err = -EFBIG;
	session_enter(s, ST_BDAT);
}

/*
 * Octets of a chunk: stored with CRLF made LF, except the body of a
 * BINARYMIME message (after the header section, which is text like any
 * other), which is stored as received: binary has no lines.  The header
 * goes a line at a time, so that the octet after its empty line is the
 * first one kept as received.
 */
static void
bdat_store(struct session *s, const char *buf, size_t len)
{
	struct txn *t = &s->txn;
	bool binary = t->body == SMTP_BODY_BINARYMIME;
	char out[DATA_CHUNK + 1];

	t->octets += len;
	while (len > 0) {
		size_t n = len < DATA_CHUNK ? len : DATA_CHUNK;
		const char *nl;

		if (binary && t->hdr.done) {
			data_store(s, buf, len);
			return;
		}
		if (binary && (nl = memchr(buf, '\n', n)) != NULL)
			n = (size_t)(nl - buf) + 1;
		data_store(s, out, smtp_chunk_decode(&t->chunk, buf, n, out));
		buf += n;
		len -= n;
	}
}

/* Reads the current chunk from the input; true once all of it was read. */
static bool
bdat_consume(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	bool read_some = false;

	while (s->chunk.left > 0 && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len < s->chunk.left ? v.iov_len : (size_t)s->chunk.left;
		if (!s->chunk.discard)
			bdat_store(s, v.iov_base, n);
		evbuffer_drain(in, n);
		s->chunk.left -= n;
		read_some = true;
	}
	if (read_some)
		deadline_restart(s);	/* the chunk is moving: its next octets have command_deadline */
	return s->chunk.left == 0;
}

/* A chunk was read: its reply, and with LAST the commit. */
static void
bdat_chunk_done(struct session *s)
{
	struct txn *t = &s->txn;
	char tail[1];

	if (s->chunk.discard) {
		session_enter(s, s->chunk.resume);
		if (s->chunk.detail != NULL)
			smtp_reply(s, s->chunk.refusal, "%s: %s", errmap_get(s->chunk.refusal)->text,
			    s->chunk.detail);
		else
			smtp_reply(s, s->chunk.refusal, NULL);
		return;
	}
	if (t->err != 0) {		/* RFC 3030: the transaction has failed */
		data_reject(s, t->err);
		return;
	}
	if (!s->chunk.last) {
		session_enter(s, ST_CHUNKS);
		smtp_reply(s, REPLY_OK, "%" PRIu64 " octets received (%" PRIu64 " in all)", s->chunk.size,
		    t->octets);
		return;
	}
	data_store(s, tail, smtp_chunk_finish(&t->chunk, tail));
	data_store_end(s);
	data_finish(s);
}

/* ------------------------------------------------------------------ */
/* Input                                                               */
/* ------------------------------------------------------------------ */

enum step { STEP_AGAIN, STEP_NEED_INPUT, STEP_WAIT };

/* Whether the input starts with an AUTH command (its initial response may be what is too long). */
static bool
input_is_auth_command(struct session *s)
{
	char head[5];

	return evbuffer_copyout(bufferevent_get_input(s->bev), head, sizeof(head)) == (ev_ssize_t)sizeof(head) &&
	    strncasecmp(head, "AUTH ", sizeof(head)) == 0;
}

/* A line over max_line: a command (500 5.5.2), or a line of AUTH (500
 * 5.5.6, RFC 4954 section 4): its command, or a response in its exchange,
 * which ends the exchange.  Called before the line is drained. */
static void
line_too_long(struct session *s)
{
	if (s->state != ST_AUTH) {
		smtp_reply(s, input_is_auth_command(s) ? REPLY_AUTH_LINE_TOO_LONG : REPLY_LINE_TOO_LONG, NULL);
		return;
	}
	log_info("auth-failed", "session=%" PRIu64 " client=%s mechanism=%s status=line-too-long", s->id, s->ip,
	    s->auth_mech);
	auth_end(s);
	smtp_reply(s, REPLY_AUTH_LINE_TOO_LONG, NULL);
}

/*
 * Takes one command line out of the input into s->line, or handles a line
 * over cfg->max_line: 500 5.5.2 at once, then everything up to the next
 * LF is dropped and the session goes on.
 */
static enum step
read_command(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t max = s->srv->cfg->max_line, len;
	struct evbuffer_ptr eol;

	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (s->discarding) {
		if (eol.pos < 0) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return STEP_NEED_INPUT;
		}
		evbuffer_drain(in, (size_t)eol.pos + 1);
		s->discarding = false;
		deadline_restart(s);
		return STEP_AGAIN;
	}
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) < max)
			return STEP_NEED_INPUT;
		line_too_long(s);
		evbuffer_drain(in, evbuffer_get_length(in));
		s->discarding = true;
		return STEP_AGAIN;
	}
	len = (size_t)eol.pos + 1;		/* with the LF */
	if (len > max) {
		deadline_restart(s);
		line_too_long(s);
		evbuffer_drain(in, len);
		return STEP_AGAIN;
	}
	evbuffer_remove(in, s->line, len);
	deadline_restart(s);
	len--;					/* LF */
	if (len > 0 && s->line[len - 1] == '\r')
		len--;
	if (s->state == ST_AUTH)
		auth_response(s, len);
	else
		dispatch(s, len);
	return STEP_AGAIN;
}

static enum step
process_step(struct session *s)
{
	if (s->free_scheduled || s->state == ST_CLOSING || s->state == ST_COMMIT || s->state == ST_AUTH_DELAY ||
	    s->state == ST_TLS)
		return STEP_WAIT;
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUT_HIGH) {
		/* The client does not read its replies: stop reading it too. */
		s->out_paused = true;
		bufferevent_disable(s->bev, EV_READ);
		return STEP_WAIT;
	}
	if (s->state == ST_DATA) {
		if (!data_consume(s))
			return STEP_NEED_INPUT;
		data_finish(s);
		return STEP_AGAIN;
	}
	if (s->state == ST_BDAT) {
		if (!bdat_consume(s))
			return STEP_NEED_INPUT;
		bdat_chunk_done(s);
		return STEP_AGAIN;
	}
	return read_command(s);
}

static void
process_input(struct session *s)
{
	enum step step;

	if (s->processing)
		return;
	s->processing = true;
	while ((step = process_step(s)) == STEP_AGAIN)
		;
	s->processing = false;
	/* The client half-closed and every complete command was answered. */
	if (step == STEP_NEED_INPUT && s->eof)
		session_close(s);
}

/* ------------------------------------------------------------------ */
/* TLS handshakes                                                      */
/* ------------------------------------------------------------------ */

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* Callbacks, read bound and idle timeouts of s->bev, plaintext or TLS. */
static void
session_bev_setup(struct session *s)
{
	const struct cfg *cfg = s->srv->cfg;
	struct timeval idle = { (time_t)cfg->idle_timeout, 0 };
	size_t in_high = cfg->max_line + 1 > IN_HIGH_MIN ? cfg->max_line + 1 : IN_HIGH_MIN;

	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, in_high);
	bufferevent_set_timeouts(s->bev, &idle, &idle);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* An OpenSSL bufferevent that accepts a handshake on fd and owns fd and ssl, or NULL. */
static struct bufferevent *
tls_bev_new(struct session *s, evutil_socket_t fd, SSL *ssl)
{
	struct bufferevent *bev = bufferevent_openssl_socket_new(s->srv->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);

	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);	/* EOF without close_notify is EOF */
	return bev;
}

/* The 220 to STARTTLS is queued: switch once it has left (write_cb() calls again). */
static void
tls_switch_when_flushed(struct session *s)
{
	if (s->tls_pending != NULL && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		event_active(s->ev_tls, 0, 0);
}

/*
 * Deferred from write_cb(): the plaintext bufferevent is freed here, not
 * in its own callback.  Its input is empty and reading was off since
 * STARTTLS, so the first byte OpenSSL reads is the first byte the client
 * sent after reading our 220.
 */
static void
tls_switch_cb(evutil_socket_t unused, short what, void *arg)
{
	struct session *s = arg;
	struct bufferevent *plain = s->bev, *bev;
	evutil_socket_t fd = bufferevent_getfd(plain);
	SSL *ssl = s->tls_pending;

	(void)unused;
	(void)what;
	if (s->free_scheduled || s->state != ST_TLS || ssl == NULL)
		return;
	s->tls_pending = NULL;
	if ((bev = tls_bev_new(s, fd, ssl)) == NULL) {
		log_error("session-error", "session=%" PRIu64 " client=%s reason=\"cannot set up TLS\"", s->id, s->ip);
		SSL_free(ssl);
		session_schedule_free(s);
		return;
	}
	bufferevent_setfd(plain, -1);		/* the socket is the TLS bufferevent's now */
	bufferevent_free(plain);
	s->bev = bev;
	session_bev_setup(s);
}

/*
 * The handshake is done.  After STARTTLS the client starts again with
 * EHLO (session_forget() ran at STARTTLS); under wrapper the greeting
 * comes now, the first thing said through TLS.
 */
static void
tls_ready(struct session *s)
{
	struct tls_info info;
	char text[1024];

	s->tls_active = true;
	tls_info_get(bufferevent_openssl_get_ssl(s->bev), &info);
	tls_info_format(&info, text, sizeof(text));
	log_info("tls", "session=%" PRIu64 " client=%s listener=%s %s", s->id, s->ip, s->lst->cfg->name, text);
	session_enter(s, ST_GREETED);
	deadline_restart(s);
	if (tls_policy_is_wrapper(s->lst->tls_policy))
		session_greet(s);
	process_input(s);
}

/* The handshake failed: one log line that says why, and the session ends. */
static void
tls_failed(struct session *s, short what)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	unsigned long code = ssl != NULL ? bufferevent_get_openssl_error(s->bev) : 0;
	char why[TLS_ERR_LEN], q[TLS_ERR_LEN + 16];

	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "timed out");
	else
		tls_handshake_error_code(ssl, code, why, sizeof(why));
	while (ssl != NULL && bufferevent_get_openssl_error(s->bev) != 0)
		;
	log_info("tls-failed", "session=%" PRIu64 " client=%s listener=%s reason=%s", s->id, s->ip,
	    s->lst->cfg->name, log_quote(q, sizeof(q), why));
	session_schedule_free(s);
}

static void
tls_event(struct session *s, short what)
{
	if ((what & BEV_EVENT_CONNECTED) && s->tls_pending == NULL)
		tls_ready(s);
	else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		tls_failed(s, what);
}

/* ------------------------------------------------------------------ */
/* Bufferevent callbacks                                               */
/* ------------------------------------------------------------------ */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == ST_CLOSING)
		session_linger_read(s);
	else
		process_input(s);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == ST_CLOSING) {
		session_linger(s);
		return;
	}
	if (s->state == ST_TLS) {
		tls_switch_when_flushed(s);
		return;
	}
	if (s->out_paused) {
		s->out_paused = false;
		if (!s->eof)
			bufferevent_enable(s->bev, EV_READ);
		process_input(s);
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == ST_TLS) {
		tls_event(s, what);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		s->eof = true;
		bufferevent_disable(s->bev, EV_READ);
		if (s->lingering)
			session_schedule_free(s);	/* the client's FIN: all done */
		else if (s->state != ST_CLOSING)
			process_input(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		log_debug("connection-error", "session=%" PRIu64 " client=%s error=%d", s->id, s->ip,
		    EVUTIL_SOCKET_ERROR());
		session_schedule_free(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_WRITING) || s->state == ST_CLOSING) {
			/* The client does not take its replies: give up on it. */
			session_schedule_free(s);
		} else if (s->state == ST_COMMIT || s->state == ST_AUTH_DELAY) {
			bufferevent_enable(s->bev, EV_READ);	/* our fault, not idleness */
		} else {
			smtp_reply(s, REPLY_IDLE_TIMEOUT, NULL);
			session_close(s);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Birth and death                                                     */
/* ------------------------------------------------------------------ */

static void
peer_name(struct session *s, const struct sockaddr *sa)
{
	const void *a = NULL;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	s->ipv6 = sa->sa_family == AF_INET6;
	if (a == NULL || inet_ntop(sa->sa_family, a, s->ip, sizeof(s->ip)) == NULL)
		snprintf(s->ip, sizeof(s->ip), "unknown");
}

/*
 * Implicit TLS (RFC 8314): the session starts in ST_TLS on an OpenSSL
 * bufferevent; the greeting waits for the handshake (tls_ready()).
 */
static int
session_wrapper_bev(struct session *s, evutil_socket_t fd)
{
	char err[TLS_ERR_LEN], q[TLS_ERR_LEN + 16];
	SSL *ssl;

	if (s->lst->tls == NULL) {
		log_warn("refused", "session=%" PRIu64 " client=%s listener=%s sent=no "
		    "reason=\"implicit TLS without a certificate (see event=tls-unavailable)\"", s->id, s->ip,
		    s->lst->cfg->name);
		return -ENOENT;
	}
	if (tls_server_ssl(s->lst->tls, &ssl, err, sizeof(err)) < 0) {
		log_error("tls-unavailable", "session=%" PRIu64 " client=%s listener=%s error=%s", s->id, s->ip,
		    s->lst->cfg->name, log_quote(q, sizeof(q), err));
		return -ENOMEM;
	}
	if ((s->bev = tls_bev_new(s, fd, ssl)) == NULL) {
		SSL_free(ssl);
		return -ENOMEM;
	}
	s->state = ST_TLS;
	return 0;
}

void
session_accept(const struct server_listener *lst, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
	struct server *srv = lst->srv;
	const struct cfg *cfg = srv->cfg;
	struct session *s;
	int err = -ENOMEM;

	(void)salen;
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->line = malloc(cfg->max_line + 1)) == NULL)
		goto fail;
	s->srv = srv;
	s->lst = lst;
	s->state = ST_GREETED;
	peer_name(s, sa);
	s->may_relay = cfg_net_allows_relay(cfg, lst->cfg, sa);
	if ((s->ev_free = event_new(srv->base, -1, 0, free_cb, s)) == NULL ||
	    (s->ev_deadline = evtimer_new(srv->base, deadline_cb, s)) == NULL ||
	    (s->ev_auth_delay = evtimer_new(srv->base, auth_delay_cb, s)) == NULL)
		goto fail;
	if (tls_policy_is_wrapper(lst->tls_policy)) {
		if ((err = session_wrapper_bev(s, fd)) < 0)
			goto fail;
	} else if ((s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		goto fail;
	}
	fd = -1;				/* the bufferevent owns it now */
	if (server_register(srv, s, sa, &s->id) < 0)
		goto fail;
	session_bev_setup(s);
	s->started_ms = s->line_ms = monotonic_ms();
	deadline_arm(s);
	log_info("connect", "session=%" PRIu64 " client=%s listener=%s relay=%s", s->id, s->ip, lst->cfg->name,
	    s->may_relay ? "yes" : "no");
	if (s->state != ST_TLS)
		session_greet(s);
	return;
fail:
	if (err == -ENOMEM)
		log_error("session-error", "error=%d reason=\"cannot set up a session\"", ENOMEM);
	if (fd >= 0)
		evutil_closesocket(fd);
	if (s != NULL) {
		if (s->bev != NULL)
			bufferevent_free(s->bev);
		if (s->ev_free != NULL)
			event_free(s->ev_free);
		if (s->ev_deadline != NULL)
			event_free(s->ev_deadline);
		if (s->ev_auth_delay != NULL)
			event_free(s->ev_auth_delay);
		free(s->line);
		free(s);
	}
}

void
session_stop(struct session *s)
{
	struct timeval tv = { CLOSE_TIMEOUT, 0 };

	if (s->state == ST_CLOSING || s->free_scheduled)
		return;
	if (s->state == ST_COMMIT)
		return;			/* commit_done() replies, then says 421 */
	if (s->state == ST_TLS) {
		session_schedule_free(s);	/* mid-handshake: nothing can be said */
		return;
	}
	bufferevent_set_timeouts(s->bev, NULL, &tv);
	smtp_reply(s, REPLY_SHUTDOWN, NULL);
	session_close(s);
}
