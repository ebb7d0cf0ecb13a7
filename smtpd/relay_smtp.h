/*
 * NAME
 *	relay_smtp - the pure pieces of the relay's SMTP client
 * SYNOPSIS
 *	#include "relay_smtp.h"
 *
 *	void relay_reply_begin(struct relay_reply *r, bool ehlo);
 *	int relay_reply_line(struct relay_reply *r, const char *line, size_t len);
 *	int relay_reply_class(int code);
 *	bool relay_reply_is_rcpt_overflow(const struct relay_reply *r);
 *
 *	void relay_dot_init(struct relay_dot *st);
 *	size_t relay_dot_encode(struct relay_dot *st, const char *in, size_t inlen,
 *			size_t *consumed, char *out, size_t outsize);
 *	size_t relay_dot_finish(struct relay_dot *st, char *out, size_t outsize);
 *
 *	int relay_cmd_mail(char *buf, size_t size, const char *from,
 *			const struct relay_caps *caps, unsigned long long msgsize,
 *			bool eightbit, bool smtputf8, const char *params);
 *	int relay_cmd_rcpt(char *buf, size_t size, const char *to, bool smtputf8,
 *			const char *params);
 *	void relay_dsn_mail_params(char *out, size_t size, const struct relay_caps *caps,
 *			const struct envelope *env);
 *	void relay_dsn_rcpt_params(char *out, size_t size, const struct relay_caps *caps,
 *			const struct envelope_rcpt *r);
 *	int relay_cmd_add_param(char *buf, size_t size, size_t len, const char *param);
 *	size_t relay_bdat_encode(unsigned long long *header_left, const char *in,
 *			size_t inlen, char *out);
 *	int relay_cmd_hello(char *buf, size_t size, const char *verb, const char *name);
 *	int relay_local_reply(char *buf, size_t size,
 *			const struct errmap_reply *row, const char *detail);
 *
 *	unsigned relay_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max);
 *	enum queue_outcome relay_outcome(const struct envelope *env);
 *	int relay_settle(struct envelope *env, long long now,
 *			const struct relay_policy *p, struct relay_verdict *v);
 * DESCRIPTION
 *	Everything in the relay that can be decided without a socket, a
 *	clock or a disk lives here, so that unit tests can drive it with
 *	any input: the reply parser, the EHLO capability parser, the DATA
 *	encoder, the command formatters and the retry policy.  delivery.c
 *	(the SMTP client) and runner.c (the queue runner, which applies the
 *	policy) are the event-driven glue around them.
 *
 *	Replies (RFC 5321 section 4.2).  relay_reply_begin() prepares r for
 *	the next reply; with ehlo set, the lines after the first are read as
 *	EHLO keywords (PIPELINING, SIZE [limit], 8BITMIME, DSN) into r->caps.
 *	relay_reply_line() takes one line without its line ending and
 *	returns 0 when more lines must follow ("250-"), 1 when the reply is
 *	complete ("250 " or a bare "250"), -EPROTO for a malformed line (no
 *	three-digit code, a code outside 2xx..5xx, a separator other than
 *	'-' or ' ', a code that differs from the first line's) and -E2BIG
 *	for a line longer than RELAY_LINE_MAX - 2 octets or more than
 *	RELAY_REPLY_LINES_MAX lines.  A complete reply has code, esc (the
 *	RFC 3463 enhanced code of its first line, or "") and text: the whole
 *	reply as one line, "550 5.1.1 <x@y>: no such user", continuation
 *	texts joined with a space, control and 8-bit octets replaced by '?',
 *	cut at RELAY_REPLY_TEXT_MAX - 1 octets (ending in "...").  The text
 *	is safe to store in an envelope record and to log.
 *	relay_reply_is_rcpt_overflow() tells a RCPT reply of 452 4.5.3 (or a
 *	452 without enhanced code), which RFC 5321 4.5.3.1.10 asks clients to
 *	answer by sending the remaining recipients in a later transaction.
 *
 *	DATA (RFC 5321 sections 4.1.1.4 and 4.5.2).  relay_dot_encode()
 *	turns stored message bytes into what goes on the wire: every line
 *	ending (LF, CRLF, and a bare CR) becomes CRLF and a line that starts
 *	with '.' gets one more.  The input may be split anywhere: state
 *	carries over between calls, so any chunking gives the same output.
 *	It encodes as much input as fits into out (*consumed says how much)
 *	and returns the octets written; out of RELAY_DOT_ENCODE_MAX(inlen)
 *	octets always takes all of in.  relay_dot_finish() ends the message:
 *	a CRLF if the last line had none, then ".\r\n"; out must hold
 *	RELAY_DOT_FINISH_MAX octets (else nothing is written and 0 returned).
 *
 *	Commands.  relay_cmd_*() format one command line with its CRLF into
 *	buf and return its length, -EINVAL for an address with a control
 *	character, a space or an angle bracket (the envelope crossed a
 *	process boundary), -ENAMETOOLONG when it does not fit.  MAIL gets
 *	SIZE=<msgsize> when the server offered SIZE and BODY=8BITMIME when
 *	the content is 8-bit (eightbit) and the server offered 8BITMIME
 *	(RFC 6152; a 7-bit body is sent without BODY=); params (NULL or "")
 *	follows, as relay_dsn_*_params() make it.  relay_dsn_mail_params()
 *	writes " RET=... ENVID=..." and relay_dsn_rcpt_params() " NOTIFY=...
 *	ORCPT=..." with the values the envelope kept (RFC 3461, as the client
 *	sent them), when the server offered DSN (caps->dsn) and the values
 *	were given; else "" (a server without DSN gets none: RFC 3461 4).
 *	With smtputf8 (the message came with SMTPUTF8) and a server that offered SMTPUTF8, MAIL
 *	gets SMTPUTF8 (RFC 6531) and the sender may be UTF-8; relay_cmd_rcpt()
 *	with smtputf8 (the caller checked the server) takes a UTF-8 address.
 *	Otherwise an octet >= 0x80 is -EILSEQ (a C1 control is -EINVAL).
 *	relay_cmd_add_param() puts " param" before the CRLF of the command
 *	of len octets in buf: its new length, -EINVAL (no CRLF at the end),
 *	-ENAMETOOLONG (it does not fit).
 *
 *	BDAT (RFC 3030, BINARYMIME).  relay_bdat_encode() turns a stored
 *	BINARYMIME message into its wire form: while *header_left octets of
 *	the header section (stored with LF) remain, each LF becomes CRLF;
 *	the body after it goes as it is.  out must hold 2 * inlen octets; it
 *	returns the octets written.  relay_local_reply() writes the reply of an
 *	errmap row (errmap_from_errno(ECONNREFUSED), errmap_get(...)) as a
 *	reply line, "451 4.4.1 No answer from host: connection refused
 *	(detail)", with the same sanitising and bound as a remote reply; it
 *	returns the length written.
 *
 *	Policy.  relay_backoff() is the delay before attempt attempts+1:
 *	retry_min doubled per attempt after the first, capped at retry_max.
 *	relay_outcome() decides from the recipients' states: all sent, sent;
 *	none pending and one failed, failed; else deferred.  relay_expired()
 *	is true when env has pending recipients and its max_queue_lifetime
 *	has run out (now >= created + lifetime).  relay_settle() ends an
 *	attempt on env: attempts + 1; once the lifetime has run out, its
 *	pending recipients fail with "554 5.4.7 Delivery time expired (after
 *	N s and M attempts; last reply: <reply>)"; the outcome; for a deferral
 *	next_attempt, which is never later than created + lifetime (the
 *	message expires when its time runs out, not at the attempt after).
 *	relay_expire() is the same without an attempt (attempts unchanged):
 *	for a record whose lifetime ran out while it waited.
 * THREADS
 *	Pure functions over caller-owned memory; thread-safe.
 */
#ifndef SPOOLGATE_RELAY_SMTP_H
#define SPOOLGATE_RELAY_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include "../common/envelope.h"
#include "../common/errmap.h"
#include "../common/queue.h"

#define RELAY_LINE_MAX		2048	/* one reply line, line ending included */
#define RELAY_REPLY_LINES_MAX	100
#define RELAY_REPLY_TEXT_MAX	512
#define RELAY_ESC_MAX		16	/* "5.123.123" and NUL */

#define RELAY_AUTH_MECHS_MAX	256	/* the AUTH keyword's mechanism list, NUL included */

struct relay_caps {
	bool		pipelining;
	bool		size;
	bool		eightbitmime;
	bool		smtputf8;	/* RFC 6531 */
	bool		chunking;	/* RFC 3030 BDAT */
	bool		binarymime;	/* RFC 3030 */
	bool		starttls;	/* RFC 3207 */
	bool		auth;		/* RFC 4954: AUTH (or the old AUTH=) */
	bool		dsn;		/* RFC 3461 */
	unsigned long long size_max;	/* SIZE limit; 0 = none announced */
	char		auth_mechs[RELAY_AUTH_MECHS_MAX];	/* "PLAIN LOGIN SCRAM-SHA-256" */
};

struct relay_reply {
	int		code;		/* of the first line; 0 until one was read */
	char		esc[RELAY_ESC_MAX];
	char		text[RELAY_REPLY_TEXT_MAX];
	size_t		textlen;
	unsigned	nlines;
	bool		ehlo;		/* read lines 2..n as EHLO keywords */
	bool		done;
	bool		cut;		/* text was cut at RELAY_REPLY_TEXT_MAX */
	struct relay_caps caps;
};

void relay_reply_begin(struct relay_reply *r, bool ehlo);
int relay_reply_line(struct relay_reply *r, const char *line, size_t len);
/* 2, 3, 4 or 5; 0 for anything else. */
int relay_reply_class(int code);
/* A RCPT reply that means "too many recipients in this transaction, send the rest in another". */
bool relay_reply_is_rcpt_overflow(const struct relay_reply *r);

struct relay_dot {
	bool		mid_line;	/* a line has started and not ended */
	bool		cr;		/* a CR was seen, its LF (if any) not yet */
};

#define RELAY_DOT_ENCODE_MAX(n)	(2 * (n) + 2)
#define RELAY_DOT_FINISH_MAX	5

void relay_dot_init(struct relay_dot *st);
size_t relay_dot_encode(struct relay_dot *st, const char *in, size_t inlen, size_t *consumed,
		char *out, size_t outsize);
size_t relay_dot_finish(struct relay_dot *st, char *out, size_t outsize);

int relay_cmd_mail(char *buf, size_t size, const char *from, const struct relay_caps *caps,
		unsigned long long msgsize, bool eightbit, bool smtputf8, const char *params);
int relay_cmd_rcpt(char *buf, size_t size, const char *to, bool smtputf8, const char *params);
#define RELAY_DSN_PARAMS_MAX	(2 * DSN_ORCPT_MAX + 64)	/* " RET=HDRS ENVID=..." or " NOTIFY=... ORCPT=..." */
void relay_dsn_mail_params(char *out, size_t size, const struct relay_caps *caps, const struct envelope *env);
void relay_dsn_rcpt_params(char *out, size_t size, const struct relay_caps *caps, const struct envelope_rcpt *r);
int relay_cmd_add_param(char *buf, size_t size, size_t len, const char *param);
size_t relay_bdat_encode(unsigned long long *header_left, const char *in, size_t inlen, char *out);
int relay_cmd_hello(char *buf, size_t size, const char *verb, const char *name);
int relay_local_reply(char *buf, size_t size, const struct errmap_reply *row, const char *detail);

struct relay_policy {
	unsigned	retry_min;
	unsigned	retry_max;
	unsigned	max_queue_lifetime;
};

struct relay_verdict {
	enum queue_outcome outcome;
	bool		expired;	/* pending recipients failed for age */
	unsigned	delay;		/* deferred: seconds until next_attempt */
};

unsigned relay_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max);
enum queue_outcome relay_outcome(const struct envelope *env);
bool relay_expired(const struct envelope *env, long long now, const struct relay_policy *p);
int relay_settle(struct envelope *env, long long now, const struct relay_policy *p,
		struct relay_verdict *v);
int relay_expire(struct envelope *env, long long now, const struct relay_policy *p,
		struct relay_verdict *v);

#endif
