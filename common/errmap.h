/*
 * NAME
 *	errmap - the one table between errno values and SMTP replies
 * SYNOPSIS
 *	#include "errmap.h"
 *
 *	const struct errmap_reply *errmap_get(enum reply_id id);
 *	const struct errmap_reply *errmap_from_errno(int err);
 *	int errmap_errno_from_reply(int code, const char *esc);
int errmap_errno_from_reply_text(const char *reply);
 *	int errmap_errno_from_reply_text(const char *reply);
 * DESCRIPTION
 *	Filesystem errors and SMTP replies are two spellings of the same
 *	facts.  Every reply that spoolgate speaks is one row of this table:
 *	its basic code, its RFC 3463 enhanced status code, a default text a
 *	person can act on, and the errno that stands for it on the filesystem
 *	side.  The SMTP session, the filesystem and the relay all use it.
 *
 *	errmap_get() returns the row of a reply id (never NULL).
 *
 *	errmap_from_errno() returns the reply for a (positive) errno.  Rows
 *	flagged ERRMAP_FROM_ERRNO answer this; an errno not in the table
 *	becomes 451 4.3.0 (local error), so the answer is never NULL.
 *
 *	errmap_errno_from_reply() turns a reply received from another server
 *	(or produced locally) back into an errno: first the row that is
 *	primary for that exact code and enhanced code, then the primary row of
 *	the basic code, then the class: 4xx gives EAGAIN, 5xx gives EIO.
 *	esc may be NULL.  errmap_errno_from_reply_text() does the same for a
 *	reply as text ("550 5.1.1 <a@b>: no such user", as envelope records
 *	keep them): the enhanced code counts when it starts the text and has
 *	the class of the basic code; 0 when the text starts with no code.
 *
 *	errmap_count() and errmap_at() walk the table (for tests, HELP and
 *	documentation).
 * THREADS
 *	The table is constant; every function is thread-safe.
 */
#ifndef SPOOLGATE_ERRMAP_H
#define SPOOLGATE_ERRMAP_H

#include <stddef.h>

enum reply_id {
	/* 2xx */
	REPLY_SYSTEM_STATUS,	/* 211 */
	REPLY_HELP,		/* 214 */
	REPLY_GREETING,		/* 220 */
	REPLY_READY_TLS,	/* 220 2.0.0 */
	REPLY_BYE,		/* 221 2.0.0 */
	REPLY_OK,		/* 250 2.0.0 */
	REPLY_SENDER_OK,	/* 250 2.1.0 */
	REPLY_RCPT_OK,		/* 250 2.1.5 */
	REPLY_QUEUED,		/* 250 2.0.0 */
	REPLY_ETRN_STARTED,	/* 250 */
	REPLY_WILL_FORWARD,	/* 251 2.1.5 */
	REPLY_ETRN_NONE,	/* 251 */
	REPLY_CANNOT_VRFY,	/* 252 2.5.0 */
	REPLY_ETRN_PENDING,	/* 252 */
	REPLY_ETRN_COUNT,	/* 253 */
	REPLY_AUTH_OK,		/* 235 2.7.0 */
	/* 3xx */
	REPLY_START_DATA,	/* 354 */
	REPLY_CHECKPOINT_OFFSET,/* 355 */
	REPLY_AUTH_CHALLENGE,	/* 334: the text is a base64 challenge */
	/* 4xx */
	REPLY_SHUTDOWN,		/* 421 4.3.2 */
	REPLY_TOO_MANY_SESSIONS,/* 421 4.7.0 */
	REPLY_IDLE_TIMEOUT,	/* 421 4.4.2 */
	REPLY_COMMAND_DEADLINE,	/* 421 4.4.2: a command took longer than idle_timeout */
	REPLY_SESSION_DEADLINE,	/* 421 4.4.2: the session lasted longer than max_session_time */
	REPLY_TOO_MANY_ERRORS,	/* 421 4.7.0 */
	REPLY_TOO_MANY_FROM_CLIENT,/* 421 4.7.0: max_sessions_per_client */
	REPLY_OUT_OF_DESCRIPTORS,/* 421 4.3.2: accept() failed with EMFILE/ENFILE */
	REPLY_CONNECTION_LOST,	/* 421 4.4.2, ECONNRESET */
	REPLY_PASSWORD_TRANSITION,/* 432 4.7.12 */
	REPLY_MAILBOX_BUSY,	/* 450 4.2.0, EAGAIN */
	REPLY_MAILBOX_LOCKED,	/* 450 4.2.0, EBUSY */
	REPLY_ATRN_REFUSED,	/* 450 */
	REPLY_LOCAL_ERROR,	/* 451 4.3.0, EIO */
	REPLY_TOO_MANY_FILES,	/* 451 4.3.0, EMFILE */
	REPLY_TOO_MANY_FILES_SYS,/* 451 4.3.0, ENFILE */
	REPLY_READ_ONLY_SPOOL,	/* 451 4.3.0, EROFS */
	REPLY_NO_ANSWER,	/* 451 4.4.1, ECONNREFUSED */
	REPLY_HOST_UNREACHABLE,	/* 451 4.4.1, EHOSTUNREACH */
	REPLY_NET_UNREACHABLE,	/* 451 4.4.1, ENETUNREACH */
	REPLY_TIMED_OUT,	/* 451 4.4.2, ETIMEDOUT */
	REPLY_DNS_TEMPFAIL,	/* 451 4.4.3: SERVFAIL, no DNS answer in time */
	REPLY_REMOTE_PROTOCOL,	/* 451 4.5.0: the other server's reply made no sense */
	REPLY_ATRN_LOCKED,	/* 451 */
	REPLY_GREETING_REFUSED,	/* 451 4.4.0: the relay's peer greeted with 5xx (skipped, deferred) */
	REPLY_NO_STORAGE,	/* 452 4.3.1, ENOSPC */
	REPLY_NO_MEMORY,	/* 452 4.3.1, ENOMEM */
	REPLY_TOO_MANY_RCPTS,	/* 452 4.5.3 */
	REPLY_NO_MAIL,		/* 453 */
	REPLY_TLS_UNAVAILABLE,	/* 454 4.7.0 */
	REPLY_AUTH_TEMPFAIL,	/* 454 4.7.0 */
	REPLY_ETRN_CANT_QUEUE,	/* 458 */
	REPLY_ETRN_NOT_ALLOWED,	/* 459 */
	/* 5xx */
	REPLY_UNKNOWN_COMMAND,	/* 500 5.5.1 */
	REPLY_LINE_TOO_LONG,	/* 500 5.5.2 */
	REPLY_AUTH_LINE_TOO_LONG,/* 500 5.5.6 */
	REPLY_SYNTAX,		/* 501 5.5.4 */
	REPLY_NO_PARAMS,	/* 501 5.5.4 */
	REPLY_NULL_RCPT,	/* 501 5.1.3: RCPT TO:<> */
	REPLY_AUTH_NOT_BASE64,	/* 501 5.5.2 */
	REPLY_AUTH_CANCELLED,	/* 501 5.0.0: the client sent "*" */
	REPLY_NOT_IMPLEMENTED,	/* 502 5.5.1, ENOSYS */
	REPLY_BAD_SEQUENCE,	/* 503 5.5.1 */
	REPLY_TLS_ALREADY_ACTIVE,/* 503 5.5.1: STARTTLS inside TLS */
	REPLY_PARAM_NOT_IMPLEMENTED,/* 504 5.5.4, ENOTSUP */
	REPLY_AUTH_UNKNOWN_MECH,/* 504 5.5.4 */
	REPLY_NO_MAIL_ACCEPTED,	/* 521 5.3.2 */
	REPLY_STARTTLS_REQUIRED,/* 530 5.7.0 */
	REPLY_AUTH_REQUIRED,	/* 530 5.7.0 */
	REPLY_MECH_TOO_WEAK,	/* 534 5.7.9 */
	REPLY_AUTH_FAILED,	/* 535 5.7.8 */
	REPLY_ENCRYPTION_REQUIRED,/* 538 5.7.11 */
	REPLY_NO_SUCH_USER,	/* 550 5.1.1, ENOENT */
	REPLY_DNS_NXDOMAIN,	/* 550 5.1.2: the recipient's domain does not exist */
	REPLY_NO_MAIL_HOST,	/* 550 5.4.4: no address for any mail host of the domain */
	REPLY_RELAY_DENIED,	/* 550 5.7.1 */
	REPLY_ACCESS_DENIED,	/* 550 5.7.1, EACCES */
	REPLY_NOT_PERMITTED,	/* 550 5.7.1 (EPERM maps to REPLY_SENDER_NOT_OWNED) */
	REPLY_USER_NOT_LOCAL,	/* 551 5.1.6 */
	REPLY_MESSAGE_TOO_BIG,	/* 552 5.3.4, EFBIG */
	REPLY_MESSAGE_TOO_BIG_MSG,/* 552 5.3.4, EMSGSIZE */
	REPLY_OVER_QUOTA,	/* 552 5.2.2, EDQUOT */
	REPLY_BAD_MAILBOX,	/* 553 5.1.3, EINVAL */
	REPLY_NAME_TOO_LONG,	/* 553 5.1.3, ENAMETOOLONG */
	REPLY_BAD_ENCODING,	/* 553 5.1.3, EILSEQ */
	REPLY_BAD_SENDER_SYNTAX,/* 553 5.1.7 */
	REPLY_SENDER_TOO_LONG,	/* 553 5.1.7 */
	REPLY_SENDER_NOT_OWNED,	/* 553 5.7.1, EPERM: restrict_sender, a Unix user's sender */
	REPLY_NON_ASCII_SENDER,	/* 553 5.6.7 (RFC 6531, no SMTPUTF8) */
	REPLY_NON_ASCII_RCPT,	/* 553 5.6.7 (RFC 6531, no SMTPUTF8) */
	REPLY_TXN_FAILED,	/* 554 5.0.0 */
	REPLY_NO_VALID_RCPTS,	/* 554 5.5.1, EDESTADDRREQ */
	REPLY_NOT_A_MESSAGE,	/* 554 5.6.0, EBADMSG */
	REPLY_EMPTY_MESSAGE,	/* 554 5.6.0, ENODATA: an empty outbox file */
	REPLY_CONVERSION_UNSUPPORTED,/* 554 5.6.3: cannot be made 7-bit for the peer */
	REPLY_MAIL_LOOP,	/* 554 5.4.6, ELOOP */
	REPLY_DELIVERY_EXPIRED,	/* 554 5.4.7: max_queue_lifetime ran out */
	REPLY_PROTOCOL_ERROR,	/* 554 5.5.0, EPROTO */
	REPLY_CLIENT_BLOCKED,	/* 554 5.7.1 */
	REPLY_BAD_PARAMETER,	/* 555 5.5.4 */
	REPLY_NULL_MX,		/* 556 5.1.10: the domain has a null MX (RFC 7505) */
	REPLY__COUNT
};

/* Row flags. */
#define ERRMAP_FROM_ERRNO	0x1	/* this row is THE reply for its errno */
#define ERRMAP_PRIMARY		0x2	/* this row answers reply->errno for its code+esc */

struct errmap_reply {
	enum reply_id	id;
	int		code;		/* 211 .. 556 */
	const char     *esc;		/* RFC 3463 "x.y.z", or "" where none applies */
	int		err;		/* errno this reply stands for, 0 if none */
	unsigned	flags;		/* ERRMAP_* */
	const char     *text;		/* default human text, no CRLF */
};

const struct errmap_reply *errmap_get(enum reply_id id);
const struct errmap_reply *errmap_from_errno(int err);
int errmap_errno_from_reply(int code, const char *esc);
int errmap_errno_from_reply_text(const char *reply);
size_t errmap_count(void);
const struct errmap_reply *errmap_at(size_t i);

#endif
