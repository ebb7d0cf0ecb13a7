/*
 * NAME
 *	envelope - the envelope and delivery record of a queued message
 * SYNOPSIS
 *	#include "envelope.h"
 * DESCRIPTION
 *	A queued message is two files (but see inline records below): its
 *	data (data/<id>, immutable) and its envelope record (queue/<id>, active/<claim>, sent/<id> or
 *	failed/<id>).  The record is text, one "key: value" per line, so that
 *	a person can read it through the mount or with cat:
 *
 *	    spoolgate-envelope: 1
 *	    id: 1764442059.M123456P4242Q7
 *	    created: 1764442059
 *	    origin: smtp 127.0.0.1
 *	    from: <alice@example.org>
 *	    data-offset: 31
 *	    rcpt: pending <bob@example.net>
 *	    rcpt: sent <carol@example.net> 250 2.0.0 Ok: queued as 4F2
 *	    rcpt: failed <dave@example.net> 550 5.1.1 <dave@example.net>: no such user
 *	    attempts: 2
 *	    next-attempt: 1764442159
 *	    conversion: 7bit for 127.0.0.1:2525 (line-over-998), attempt 2
 *	    last-host: 127.0.0.1:2525
 *	    last-reply: 451 4.3.0 Local error in processing
 *
 *	A recipient line may be followed by one "rcpt-at: <unix-seconds>
 *	<host>" line: the host (next hop name, no space) that gave that
 *	recipient its reply, and when.  It belongs to the rcpt line right
 *	before it; records written before it existed simply lack it.
 *
 *	"dsn: <value>" (at most once) says which delivery status
 *	notification (RFC 3464) was made when the message failed, so that a
 *	restart never makes a second one: the notice's message id, or
 *	"none <why>" (null-sender, rejected, cap, error) when none was sent
 *	on purpose.  "dsn-delayed: <value>" (same form) is the one delay
 *	warning.  Both are written before "attempts:".
 *
 *	last-tls and last-auth (optional) describe the last attempt's
 *	connection: its TLS protocol, cipher, whether the peer certificate
 *	was verified (chain and name) and the name it was checked against;
 *	the SASL mechanism and the user name the relay authenticated as
 *	(never a password).  An attempt in plaintext or without AUTH has
 *	no such line:
 *
 *	    last-tls: TLSv1.3 TLS_AES_256_GCM_SHA384 verified=yes peer=mx.test
 *	    last-auth: SCRAM-SHA-256 user=me@example.net
 *
 *	Their values are strict: "<version> <cipher> verified=yes|no
 *	peer=<name>" and "<MECHANISM> user=<name>", each word printable
 *	ASCII without blanks.
 *
 *	"attempt:" lines (optional, at the end, at most ENVELOPE_ATTEMPTS_MAX,
 *	oldest first) are the history of the delivery attempts: when (unix
 *	seconds), the host that answered (or the destination whose DNS
 *	lookup failed), the TLS protocol and cipher or "tls=no cipher=-",
 *	whether the peer was verified, and the reply the attempt ended with
 *	(may be empty).  Five words, then "reply=" and the rest of the line:
 *
 *	    attempt: 1764442100 host=mx.test[192.0.2.1]:25 tls=TLSv1.3
 *	      cipher=TLS_AES_256_GCM_SHA384 verified=yes reply=250 2.0.0 Ok
 *	    (one line in the file)
 *
 *	envelope_add_attempt() appends one, dropping the oldest when
 *	ENVELOPE_ATTEMPTS_MAX are there.  A record with more such lines, or
 *	one of another form, does not parse (-EBADMSG).
 *
 *	auth (optional, after data-offset) says that the message came in over
 *	SMTP from a client that authenticated (RFC 4954): the mechanism, the
 *	user, and the AUTH= parameter of its MAIL command, decoded ("<>" when
 *	the client gave none), never a password:
 *
 *	    auth: SCRAM-SHA-256 user=alice@example.org mail-auth=<alice@example.org>
 *
 *	The DSN parameters of RFC 3461 (optional; records without them are
 *	read as before: no parameter given).  "dsn-ret:" and "dsn-envid:"
 *	(after auth, at most once each) are MAIL's RET= (FULL or HDRS) and
 *	ENVID= (xtext, as the client sent it); "rcpt-dsn:" right after a rcpt
 *	line (before its rcpt-at) holds that recipient's NOTIFY= and ORCPT=
 *	(as sent), either or both:
 *
 *	    dsn-ret: HDRS
 *	    dsn-envid: QQ314159
 *	    rcpt: pending <bob@example.net>
 *	    rcpt-dsn: notify=SUCCESS,FAILURE orcpt=rfc822;bob@example.net
 *
 *	The relay passes them on to a next hop that offers DSN; the bounce
 *	code honours NOTIFY and names ENVID and ORCPT in its reports.
 *
 *	"rcpt-success: <action> <value>" (optional, last of a recipient's
 *	lines) is the success notice (NOTIFY=SUCCESS) of a recipient that
 *	was delivered: <action> is "delivered" (stored in a local mailbox by
 *	the SMTP session, which writes such a recipient into the record as
 *	"rcpt: sent" only for the notice's sake) or "relayed" (to a next hop
 *	that did not offer DSN); <value> is "due" until the runner made the
 *	notice, then its message id, or "none <why>" ("none passed-on": the
 *	next hop offered DSN and got NOTIFY=, so it reports, not us).  At
 *	most one notice per recipient, across restarts:
 *
 *	    rcpt: sent <bob@localhost> 250 2.0.0 stored in mailbox bob
 *	    rcpt-dsn: notify=SUCCESS
 *	    rcpt-success: delivered 1764442061.M7P4242Q9
 *
 *	"body: binarymime" (optional, after auth) says that the message came
 *	with BODY=BINARYMIME over BDAT (RFC 3030): its data is stored as
 *	received, CRLF included, and may only leave by BDAT to a server that
 *	offers BINARYMIME.  "smtputf8: yes" (optional, next) says that its MAIL
 *	command carried SMTPUTF8 (RFC 6531): addresses and header may be UTF-8.
 *
 *	conversion (optional) says that what the relay sent was a 7-bit copy
 *	made for a server that could not take the stored message as it is
 *	(mime7bit.h), to which host, why, at which attempt.
 *
 *	A file refused when it was submitted through outbox/ is kept in
 *	failed/ with a record that says why, in a "rejected:" line: the
 *	reply an SMTP server would have given, the errno the writer got, and
 *	a sentence.  Such a record may have no recipient (the header that
 *	should have named them is what was refused) and "from: <>" when no
 *	sender could be read:
 *
 *	    spoolgate-envelope: 1
 *	    id: 1764442060.M5P4243Q1
 *	    created: 1764442060
 *	    origin: fs outbox/report.eml uid=1000
 *	    from: <>
 *	    data-offset: 0
 *	    rejected: 554 5.5.1 EDESTADDRREQ rejected at submission: no recipient
 *	    attempts: 0
 *	    next-attempt: 0
 *
 *	The value of "rejected:" is "<code> <x.y.z> <ERRNO> <text>": a 4xx or
 *	5xx code, an RFC 3463 enhanced code, an errno name (E and capitals or
 *	digits) and a text that is not empty.
 *
 *	An inline record ("data: inline", right after data-offset) is a
 *	queued message in one file: the record, an empty line, then what
 *	data/<id> would hold (the Return-Path line and the message).  Only
 *	spoolgate-fs writes it, for a message small enough to have stayed in
 *	memory and with no local recipient; the runner links the file as
 *	data/<id> at its first rewrite of the record, which is plain from then
 *	on.  In the file, data-offset counts from the end of the empty line;
 *	envelope_parse() makes env->data_offset count from the file's start
 *	(what the plain record written from it says about data/<id>, the same
 *	file).  envelope_format() writes an inline record's text without the
 *	empty line, and env->data_offset as it is: its writer gives the
 *	offset within what follows the empty line.
 *
 *	An inline record is sealed: its text's last line is
 *
 *	    inline-crc32: 8a1f03c2
 *
 *	the CRC-32 (zlib's crc32()) of the file without that line and
 *	without the empty line after it: the record's text before the seal,
 *	then the message to the file's end.  So spoolgate-fs may publish the
 *	file before its content is durable (one sync for both, commitgroup.h):
 *	after a power cut in between, the name may reach the disk with blocks
 *	that never did (stale data, zeros, an older file's inode), and
 *	envelope_check_inline() tells: the seal does not match, or the
 *	record names another id.  Such a record was never acknowledged, and
 *	recovery drops it.  Records without the line (written before it
 *	existed, with their content synced first) are read as before.  The
 *	plain record the runner writes from a sealed one says "data: sealed"
 *	(same place): its data/<id> is that file, whose own seal recovery
 *	checks before it gives such a record back (a power cut may have kept
 *	the new record and lost the file's blocks).
 *	envelope_parse() reads that format strictly (it crosses a process
 *	boundary): unknown keys, a missing id/from, no rcpt in a record that
 *	is not rejected, a recipient line without angle brackets, a
 *	"rejected:" value not of the form above, a value with a control
 *	character: -EBADMSG.  envelope_format() writes it; the result always
 *	parses back equal.
 * OWNERSHIP
 *	struct envelope owns all its strings; envelope_free() releases them
 *	and leaves a zeroed struct.  Not thread-safe per object; distinct
 *	objects may be used from distinct threads.
 */
#ifndef SPOOLGATE_ENVELOPE_H
#define SPOOLGATE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

#include "dsnparam.h"

#define ENVELOPE_ID_MAX		64
#define ENVELOPE_MAX_RCPT	10000
#define ENVELOPE_HOST_MAX	255		/* a rcpt-at: host */
#define ENVELOPE_ATTEMPTS_MAX	10		/* attempt: lines kept, the newest */
#define ENVELOPE_MAX_SIZE	(4u << 20)	/* a record larger than this is corrupt */
#define ENVELOPE_INLINE_MAX	(1u << 20)	/* an inline record's message larger than this is corrupt */

enum rcpt_state { RCPT_PENDING, RCPT_SENT, RCPT_FAILED };

struct envelope_rcpt {
	char	       *addr;		/* without angle brackets */
	enum rcpt_state	state;
	char	       *reply;		/* last reply for this recipient, or NULL */
	char		       *host;		/* the host that gave it ("rcpt-at:"), or NULL */
	long long		at;		/* when (unix seconds); 0 when host is NULL */
	unsigned		notify;		/* RCPT NOTIFY= (DSN_NOTIFY_* bits), 0: not given */
	char		       *orcpt;		/* RCPT ORCPT= as sent ("rfc822;xtext"), or NULL */
	char		       *success;	/* "rcpt-success:" "<action> <value>", or NULL */
};

struct envelope {
	char			id[ENVELOPE_ID_MAX];
	long long		created;	/* unix seconds */
	char		       *origin;		/* "smtp 127.0.0.1", "fs outbox/report.eml" */
	char		       *from;		/* "" for the null reverse-path */
	long long		data_offset;	/* bytes of data/<id> before the message (Return-Path line) */
	struct envelope_rcpt   *rcpt;
	size_t			nrcpt;
	unsigned		attempts;
	long long		next_attempt;	/* unix seconds; 0 = now */
	char		       *last_host;	/* or NULL */
	char		       *last_reply;	/* or NULL */
	char		       *rejected;	/* "<code> <esc> <ERRNO> <text>" of a refused
						   submission, or NULL */
	char		       *conversion;	/* the last conversion for transport, or NULL */
	char		       *dsn;		/* "dsn:" the failure notice: its id or "none <why>" */
	char		       *dsn_delayed;	/* "dsn-delayed:" the delay warning, same form */
	char		       *last_tls;	/* "<version> <cipher> verified=yes peer=<name>", or NULL */
	char		       *last_auth;	/* "<MECHANISM> user=<name>", or NULL */
	char		       *attempt[ENVELOPE_ATTEMPTS_MAX];	/* "attempt:" values, oldest first */
	size_t			nattempt;
	char		       *auth;		/* how the sender authenticated to our SMTP server:
						   "<MECHANISM> user=<name>[ mail-auth=<value>]", or NULL */
	enum dsn_ret		dsn_ret;	/* MAIL RET= (RFC 3461), or unspecified */
	char		       *dsn_envid;	/* MAIL ENVID= as sent (xtext), or NULL */
	bool			binarymime;	/* "body: binarymime": came as BODY=BINARYMIME (RFC 3030) */
	bool			smtputf8;	/* "smtputf8: yes": MAIL said SMTPUTF8 (RFC 6531) */
	bool			inline_data;	/* "data: inline": the message follows the record in
						   its own file (data_offset counts from the file's start) */
	long long		text_len;	/* set by envelope_parse(): bytes of the record's text,
						   without an inline record's empty line and message */
	bool			data_sealed;	/* "data: sealed": a plain record whose data/<id> is a sealed
						   inline record's file (the runner's rewrite of one) */
	bool			inline_sealed;	/* "inline-crc32:" read (envelope_parse() only) */
	unsigned		inline_crc;	/* its value */
	long long		seal_at;	/* where its line starts in the file */
};

/* 0 or -ENOMEM / -EINVAL (id too long). */
int envelope_init(struct envelope *env, const char *id, const char *from, const char *origin);
/* Adds a pending recipient; duplicates are ignored. 0, -ENOMEM, -E2BIG. */
int envelope_add_rcpt(struct envelope *env, const char *addr);
/* Sets rcpt i's state and reply (reply copied, may be NULL). 0 or -ENOMEM. */
int envelope_set_rcpt(struct envelope *env, size_t i, enum rcpt_state state, const char *reply);
/* Sets last_host / last_reply (copied, may be NULL). 0 or -ENOMEM. */
int envelope_set_last(struct envelope *env, const char *host, const char *reply);
/*
 * Marks the record as refused at submission: code (4xx/5xx), esc
 * ("x.y.z"), errname ("EDESTADDRREQ") and why (a sentence) make the
 * "rejected:" line.  0, -ENOMEM, -EINVAL (a part of the wrong form).
 */
int envelope_set_rejected(struct envelope *env, int code, const char *esc, const char *errname,
		const char *why);
/*
 * Records where and when rcpt i got its reply ("rcpt-at:" line): host
 * copied (NULL clears both).  0, -ENOMEM, -EINVAL (i out of range, host
 * empty or with a space or control character, at < 0).
 */
int envelope_set_rcpt_at(struct envelope *env, size_t i, const char *host, long long at);
/*
 * Records the delivery status notification sent about this message
 * (delayed = false: "dsn:", the failure notice; true: "dsn-delayed:",
 * the delay warning).  value is the notice's message id, or "none <why>"
 * (why: lower-case letters and '-') when none was sent on purpose.
 * 0, -ENOMEM, -EINVAL (value of another form).
 */
int envelope_set_dsn(struct envelope *env, bool delayed, const char *value);
/* Sets conversion (copied, may be NULL). 0 or -ENOMEM. */
int envelope_set_conversion(struct envelope *env, const char *text);
/*
 * Sets last_tls from its parts (NULL version: no TLS, the line goes).
 * 0, -ENOMEM, -EINVAL (a part empty or with a blank or control character).
 */
int envelope_set_last_tls(struct envelope *env, const char *version, const char *cipher,
		bool verified, const char *peer);
/*
 * Appends an "attempt:" line: at (unix seconds), host (one word), the TLS
 * version and cipher (version NULL: no TLS; cipher then ignored),
 * verified, reply (may be NULL: none).  The oldest goes past
 * ENVELOPE_ATTEMPTS_MAX.  0, -ENOMEM, -EINVAL (a part of the wrong form).
 */
int envelope_add_attempt(struct envelope *env, long long at, const char *host, const char *version,
		const char *cipher, bool verified, const char *reply);
/* Sets last_auth (NULL mech: no AUTH, the line goes). 0, -ENOMEM, -EINVAL. */
int envelope_set_last_auth(struct envelope *env, const char *mech, const char *user);
/*
 * The DSN parameters (RFC 3461) of rcpt i: notify (DSN_NOTIFY_* bits, 0:
 * not given) and orcpt (ORCPT= as sent, NULL: none).  0, -ENOMEM,
 * -EINVAL (i out of range, a value dsnparam.h refuses).
 */
int envelope_set_rcpt_dsn(struct envelope *env, size_t i, unsigned notify, const char *orcpt);
/*
 * The success notice of rcpt i ("rcpt-success:", NULL clears it):
 * "delivered " or "relayed " (its Action), then "due" (to be made) or a
 * "dsn:" value (the notice's id, "none <why>").  0, -ENOMEM, -EINVAL.
 */
int envelope_set_rcpt_success(struct envelope *env, size_t i, const char *value);
/* MAIL's RET= and ENVID= (as sent, NULL: none). 0, -ENOMEM, -EINVAL. */
int envelope_set_dsn_request(struct envelope *env, enum dsn_ret ret, const char *envid);
/* Sets auth (NULL mech: none); mail_auth (MAIL's AUTH=, decoded) may be NULL. 0, -ENOMEM, -EINVAL. */
int envelope_set_auth(struct envelope *env, const char *mech, const char *user, const char *mail_auth);
size_t envelope_count(const struct envelope *env, enum rcpt_state state);
/* *out is malloc'd text, caller frees. 0 or -ENOMEM. */
int envelope_format(const struct envelope *env, char **out, size_t *outlen);
int envelope_parse(const char *buf, size_t len, struct envelope *env);	/* len may cover an inline
									   record's message too */
/* Reads and parses dirfd/name (O_NOFOLLOW). 0, -errno, -EBADMSG. */
int envelope_read_at(int dirfd, const char *name, struct envelope *env);
/* The same from an open record (read with pread, from its start); fd stays open. */
int envelope_read_fd(int fd, struct envelope *env);
/*
 * The seal of an inline record (above): appends its line and the empty
 * line to text (envelope_format()'s, *len bytes, realloc'd) for the
 * message msg.  0 or -ENOMEM.
 */
int envelope_seal_inline(char **text, size_t *len, const void *msg, size_t msglen);
/*
 * Whether the file fd, parsed into env, is the record named id as its
 * writer wrote it: 0 for a record that is not inline or not sealed;
 * -EBADMSG when its id is another or its seal does not match what the
 * file holds (torn by a power cut); -errno of a read.
 */
int envelope_check_inline(int fd, const struct envelope *env, const char *id);
void envelope_free(struct envelope *env);
int envelope_copy(struct envelope *dst, const struct envelope *src);
const char *rcpt_state_name(enum rcpt_state state);

#endif
