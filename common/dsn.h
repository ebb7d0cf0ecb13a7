/*
 * NAME
 *	dsn - delivery status notifications (RFC 3464) from an envelope
 * SYNOPSIS
 *	#include "dsn.h"
 *
 *	int dsn_build(const struct dsn_request *req, char **out, size_t *outlen);
 *	size_t dsn_recipients_wanting(const struct envelope *env, bool delayed);
 *	size_t dsn_recipients_succeeded(const struct envelope *env);
 *	int dsn_status_code(const char *reply, bool delayed, char *out, size_t outlen);
 *	void dsn_limiter_init(struct dsn_limiter *lim, unsigned per_hour);
 *	bool dsn_limiter_allow(struct dsn_limiter *lim, const char *sender, long long now);
 * DESCRIPTION
 *	dsn_build() writes the notice the envelope sender gets when a message
 *	failed (req->delayed false: every RCPT_FAILED recipient, Action:
 *	failed) or waits longer than it should (req->delayed true: every
 *	RCPT_PENDING recipient, Action: delayed), or, with req->success, the
 *	success notice (RFC 3461 NOTIFY=SUCCESS; Subject "Successful Mail
 *	Delivery Report", Status 2.0.0): every RCPT_SENT recipient whose
 *	envelope rcpt-success says "<action> due", with that Action
 *	(delivered: stored in a local mailbox; relayed: passed to a server
 *	without DSN).  dsn_recipients_succeeded() counts those.  The result is a whole
 *	RFC 5322 message with LF line endings, as the spool stores messages,
 *	built with GMime:
 *
 *	    From: Mail Delivery System <MAILER-DAEMON@<hostname>>
 *	    To: <the envelope sender>
 *	    Subject: Undelivered Mail Returned to Sender
 *	             (Delayed Mail (still being retried) for a warning)
 *	    Date, Message-ID: <<id>@<hostname>>, Auto-Submitted: auto-replied
 *	    Content-Type: multipart/report; report-type=delivery-status
 *
 *	    1. text/plain: what failed and why in plain words, per recipient
 *	       the remote host, its reply and when
 *	    2. message/delivery-status: Reporting-MTA: dns; <hostname>,
 *	       Arrival-Date (the envelope's created), then per recipient
 *	       Final-Recipient: rfc822; <addr>, Action, Status (x.y.z),
 *	       Remote-MTA: dns; <host> and Last-Attempt-Date (when the
 *	       envelope's rcpt-at says), Diagnostic-Code: smtp; <reply> (when
 *	       there is one), Will-Retry-Until (warnings, when expires > 0)
 *	    3. the original, read from datafd at data_offset: with RET=FULL
 *	       (RFC 3461 4.3) the whole message as message/rfc822 when it is
 *	       at most full_max octets and 7-bit text (no 8-bit octet, NUL,
 *	       CR, no line over 998 octets: a message/rfc822 part cannot be
 *	       encoded); else, and with RET=HDRS or no RET, its header section
 *	       as text/rfc822-headers, at most DSN_HEADERS_MAX octets (cut at
 *	       a line end).  The first part says which, and why the headers
 *	       only when RET=FULL asked for more.  The bound keeps a notice
 *	       small and a large or confidential body from following a
 *	       (possibly forged) sender far (Postfix attaches the headers too
 *	       when the whole message would be too big).
 *
 *	The result is 7-bit: every byte of a reply, host or address that is a
 *	control character, DEL or 8-bit becomes '?', a reply is cut at
 *	DSN_TEXT_MAX octets and its fields folded at spaces, so no value
 *	can end a field, a part or the message; an 8-bit header section is
 *	quoted-printable.  Remote-MTA names the host without its address and
 *	port ("mx1.example[192.0.2.1]:25" -> mx1.example), and is left out
 *	when rcpt-at names no host:port (a DNS failure: no server answered).
 *
 *	Only the recipients whose NOTIFY= (RFC 3461, envelope.h's rcpt-dsn)
 *	asks for the notice's kind are in it: without NOTIFY failures and
 *	delays are reported; NEVER, or a list without FAILURE (DELAY), keeps
 *	a recipient out of a failure notice (a delay warning).
 *	dsn_recipients_wanting() counts them (0: no notice is due).  The
 *	report names MAIL's ENVID= as Original-Envelope-Id and each ORCPT=
 *	as Original-Recipient (decoded, RFC 3464 2.2.1 and 2.3.1).  RET=
 *	picks the third part, as above.
 *
 *	dsn_status_code() picks the Status of a recipient: the enhanced code
 *	of reply ("550 5.1.1 ...") when its class agrees with the reply's;
 *	else <class>.0.0 of the reply code; without a reply 5.0.0 (4.0.0
 *	when delayed).  A delayed notice never says 5.
 *
 *	dsn_limiter is the per-sender cap: at most per_hour notices per
 *	sender (compared without regard to case) in a sliding hour, kept for
 *	the DSN_LIMITER_SLOTS senders seen last (a sender beyond that evicts
 *	the one whose window is oldest).  per_hour is 1..DSN_LIMITER_MAX_PER_HOUR
 *	(a larger one counts as the maximum, 0 as 1).  now is
 *	caller-provided unix seconds, so tests control the clock.
 * OWNERSHIP
 *	*out is malloc'd; the caller frees it.  req and its strings are
 *	borrowed.
 * THREADS
 *	dsn_build() is thread-safe (GMime is initialised once).  A limiter
 *	belongs to one thread.
 * ERRORS
 *	dsn_build(): 0, -EINVAL (no hostname or id, no recipient of the
 *	wanted state), -ENOMEM, -EIO (the data could not be read).
 *	dsn_status_code(): 0 or -ENAMETOOLONG.
 */
#ifndef SPOOLGATE_DSN_H
#define SPOOLGATE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "envelope.h"

#define DSN_HEADERS_MAX		(64u << 10)	/* octets of the original's header section */
#define DSN_TEXT_MAX		900		/* octets of one reply in the notice */
#define DSN_LIMITER_SLOTS	256

struct dsn_request {
	const struct envelope  *env;		/* the message the notice is about */
	const char	       *hostname;	/* this gateway: Reporting-MTA, From, Message-ID */
	const char	       *id;		/* the notice's own message id */
	bool			delayed;	/* a warning (pending recipients) */
	bool			success;	/* a success notice (overrides delayed) */
	long long		now;		/* Date: */
	long long		expires;	/* warnings: when the gateway gives up; 0 = unsaid */
	int			datafd;		/* the original message, or -1: no third part */
	off_t			data_offset;
	size_t			full_max;	/* RET=FULL: the largest original returned whole */
};

int dsn_build(const struct dsn_request *req, char **out, size_t *outlen);
size_t dsn_recipients_wanting(const struct envelope *env, bool delayed);
size_t dsn_recipients_succeeded(const struct envelope *env);
int dsn_status_code(const char *reply, bool delayed, char *out, size_t outlen);

#define DSN_LIMITER_MAX_PER_HOUR 64	/* the bound of bounce_limit_per_hour */

struct dsn_limiter_slot {
	char		sender[256];	/* lower-cased, cut */
	long long	times[DSN_LIMITER_MAX_PER_HOUR];	/* ring of the last sends */
	unsigned	n, head;
	long long	last;
};

struct dsn_limiter {
	unsigned		per_hour;
	struct dsn_limiter_slot	slot[DSN_LIMITER_SLOTS];
};

void dsn_limiter_init(struct dsn_limiter *lim, unsigned per_hour);
/* true, and counts it, when sender may get one more notice now. */
bool dsn_limiter_allow(struct dsn_limiter *lim, const char *sender, long long now);

#endif
