/*
 * NAME
 *	outbox - submit a file as sendmail -t would
 * SYNOPSIS
 *	#include "outbox.h"
 *
 *	int outbox_submit(struct spool *spool, int fd,
 *			const struct outbox_source *src,
 *			char id[SPOOL_ID_MAX], char *why, size_t whylen);
 *	int outbox_reject(struct spool *spool, int fd, off_t keep,
 *			const char *origin, int err, const char *why,
 *			char id[SPOOL_ID_MAX]);
 *	int outbox_check(int fd, const struct outbox_source *src,
 *			struct outbox_headers *h, off_t *end, char *why, size_t whylen);
 *	int outbox_check_headers(const char *buf, size_t len,
 *			const struct outbox_policy *pol, struct outbox_headers *out,
 *			char *why, size_t whylen);
 *	size_t outbox_quote_name(const char *name, char *out, size_t outlen);
 *	int outbox_format_date(time_t t, char *out, size_t outlen);
 * DESCRIPTION
 *	Reads the RFC 5322 message in fd (from offset 0) and queues it for
 *	the relay.  The envelope comes from its headers as "sendmail -t"
 *	takes it: the sender from Sender: or else From: (the first mailbox),
 *	the recipients from To:, Cc: and Bcc: (groups, display names,
 *	comments and folded lines understood, via GMime), a duplicate
 *	dropped by addr_same_mailbox() (local parts exact, domains in any
 *	case).  Bcc: headers are removed from what is queued, and so is every
 *	Return-Path: header (with its folded lines): only the final delivery
 *	writes one (RFC 5321 4.4).  Resent-* headers are not used.
 *
 *	src says where the message comes from: origin is the envelope's
 *	origin ("fs outbox/<name> uid=<uid>", no control characters), name the file's
 *	name under outbox/ (any bytes; NULL for a submission that is no
 *	outbox/ file), uid the writer, hostname the
 *	configured host name (NULL or not a valid domain: the spool's host
 *	name, else "localhost"), max_size the size limit, start the offset
 *	of the message's first byte in fd (0 for outbox/; a sendmail drop
 *	begins with its own record, drop.h), via the word after "from" in
 *	Received: (NULL: "outbox").  The queued message
 *	starts with a trace header that records the submission, as Postfix
 *	does for a local one:
 *
 *	    Received: by <hostname> (spoolgate, from outbox)
 *	            id <id> (uid <uid>, user <login>, file <name>);
 *	            <date>
 *
 *	("user <login>" when src->user is set, "file <name>" when src->name
 *	is) where <name> is outbox_quote_name(name), folded every 64 octets,
 *	followed by "Date: <date>" and "Message-ID: <<id>@<hostname>>" when
 *	the message has no Date: or Message-ID: field (RFC 5322 3.6 requires
 *	Date:; sendmail -t adds both).  The date is outbox_format_date() of
 *	the submission time.
 *
 *	src->policy (NULL for outbox/) is what a sendmail submission adds to
 *	the rules: sender, the envelope sender decided outside the message
 *	("" is <>; the headers' From:/Sender: then only need to be valid);
 *	rcpt, the recipients named outside it (arguments, RCPT of -bs),
 *	checked as header addresses are and placed first; rcpt_from_headers,
 *	whether To:, Cc: and Bcc: name recipients too (sendmail -t; Bcc: is
 *	dropped either way); qualify_domain, appended to an address without
 *	'@' ("root" is root@<domain>, as Postfix's append_at_myorigin);
 *	from_addr and from_name, the From: written after the trace header
 *	when the message has none (with them a missing From: is no error);
 *	headerless_ok, a message whose first line is no header field (or
 *	that is empty) is all body, as Postfix's sendmail takes "echo text |
 *	sendmail root": the gateway's header lines and an empty line come
 *	before it; own_sender, when set, the only envelope sender the writer
 *	may use (an untrusted user's own address, unixuser_sender()): a
 *	From:/Sender: naming another is -EPERM, 553 5.7.1 "Sender address
 *	rejected: not owned by user", and writer (its login) names the user
 *	in why.
 *	outbox/ is the policy {rcpt_from_headers = true} (NULL), plus
 *	own_sender for a writer who may not choose its sender (fs/outfile.h).
 *
 *	With src->aliases and src->cfg, a recipient in a local domain whose
 *	local part is an alias is expanded (aliases_expand_address(), logged
 *	with the message id): its addresses are queued for the relay, and
 *	its local mailboxes get the message at once, with "Return-Path:"
 *	(the final delivery, as smtpd does), not through the relay.  The
 *	expansion of all recipients together is bounded by cfg's
 *	max_recipients (-E2BIG, 452 4.5.3); an alias with nothing
 *	deliverable left is -EDESTADDRREQ when no other recipient remains.
 *	Other recipients are queued as before, local domains included.
 *
 *	When it returns 0 the message is durable in queue/ (data and record
 *	synced, directories synced) and id holds its id.  Otherwise nothing
 *	was queued, and it returns -errno with why set to a sentence a person
 *	can act on:
 *	    -EBADMSG       not a message: no header section, a header line
 *	                   without a colon, NUL bytes in the header
 *	    -EDESTADDRREQ  no recipient in To:, Cc: or Bcc:
 *	    -EINVAL        a malformed or unusable address (553 5.1.3)
 *	    -EFBIG         larger than max_size
 *	    -EPERM         a sender the policy's own_sender forbids
 *	    -ENOSPC, -EDQUOT, -EIO  the spool could not take it
 *	The errno is the one errmap gives for the reply an SMTP server would
 *	have sent.
 *
 *	outbox_parse_headers() does the header work alone on a buffer (for
 *	tests and for checking before copying): spoolgate-fs runs it on the
 *	header section as soon as a writer has written it, so that a file
 *	that will be refused fails at write(2), not only at close(2).  It
 *	commits nothing.  outbox_check_headers() is the same under a policy
 *	(NULL: outbox/'s).  outbox_check() is every check of outbox_submit()
 *	on fd (size, header bound, headers) without queueing: the parsed
 *	headers go to h (outbox_headers_free() them) and the file's end to
 *	*end; spoolgate-sendmail runs it before it leaves a drop, and the
 *	gateway runs outbox_submit() on the drop again, from scratch.
 *
 *	outbox_reject() keeps a refused submission where a person finds it:
 *	the first keep bytes of fd become failed/<id>, with a record whose
 *	"rejected:" line (envelope.h) holds the reply of err, its errno
 *	name and "rejected at submission: <why>".  It is committed as durably
 *	as a queued message (spool_msg_reject) and never reaches the relay.
 *	0 with id set, or -errno (the spool could not take it either).
 *
 *	outbox_quote_name() writes name into out (outlen octets, always
 *	NUL-terminated when outlen > 0) so that it is safe inside a header
 *	comment: printable ASCII stays, every other octet and '(', ')', '\\',
 *	'"', '%' and space become %XX (upper-case hex).  It returns the
 *	length written; a name that does not fit is cut at a whole %XX.
 *	3 * strlen(name) + 1 octets always suffice.
 *
 *	outbox_format_date() writes t as an RFC 5322 date-time in local time
 *	with a numeric zone ("Wed, 02 Dec 2026 06:30:00 +0100"), day and month
 *	names in English whatever the locale; 0, or -ENAMETOOLONG when outlen
 *	is too small, -EOVERFLOW when t has no local time.
 * THREADS
 *	Thread-safe for distinct fds.
 */
#ifndef SPOOLGATE_OUTBOX_H
#define SPOOLGATE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <sys/types.h>
#include "aliases.h"
#include "cfg.h"
#include "commitgroup.h"
#include "spool.h"
#include "envelope.h"

#define OUTBOX_MAX_HEADER	(256u << 10)	/* header section bound */

struct outbox_range { off_t start, end; };	/* [start, end) of bytes to drop */

/* What a sendmail submission decides outside the message (see above). */
struct outbox_policy {
	const char	       *sender;		/* envelope sender, "" = <>; NULL: From:/Sender: */
	const char *const      *rcpt;		/* recipients given outside the message */
	size_t			nrcpt;
	bool			rcpt_from_headers;	/* To:, Cc:, Bcc: name recipients (-t) */
	const char	       *qualify_domain;	/* for addresses without '@', or NULL */
	const char	       *from_addr;	/* From: to add when there is none, or NULL */
	const char	       *from_name;	/* its display name (-F), or NULL */
	bool			headerless_ok;	/* a first line that is no header field starts the body */
	const char	       *own_sender;	/* non-NULL: the headers' sender must be this (-EPERM) */
	const char	       *writer;		/* the writer's login, for that refusal's text */
};

struct outbox_source {
	const char	       *origin;		/* envelope origin, "fs outbox/<name> uid=<uid>" */
	const char	       *name;		/* the file's name under outbox/, any bytes; or NULL */
	uid_t			uid;		/* the writer */
	const char	       *user;		/* its login name, or NULL */
	const char	       *hostname;	/* configured host name, or NULL */
	unsigned long		max_size;	/* bytes */
	off_t			start;		/* the message's first byte in fd */
	const char	       *via;		/* Received: "from <via>"; NULL: "outbox" */
	const struct outbox_policy *policy;	/* NULL: outbox/'s rules */
	struct commitgroup     *group;		/* shares syncs with other threads; NULL: its own */
	struct aliases_source  *aliases;	/* [aliases] file (aliases.h), or NULL: none */
	const struct cfg       *cfg;		/* local_domains, mailboxes, max_recipients; with aliases */
};

struct outbox_headers {
	char		       *from;		/* envelope sender, "" if none found */
	char		      **rcpt;		/* recipients, deduplicated */
	size_t			nrcpt;
	struct outbox_range    *drop;		/* Bcc: and Return-Path: headers, folded lines included */
	size_t			ndrop;
	bool			has_date;	/* a Date: field is present */
	bool			has_message_id;	/* a Message-ID: field is present */
	bool			has_from;	/* a From: field is present */
	bool			headerless;	/* no header section at all (headerless_ok) */
	off_t			body_start;	/* offset of the first body byte */
};

int outbox_parse_headers(const char *buf, size_t len, struct outbox_headers *out,
		char *why, size_t whylen);
int outbox_check_headers(const char *buf, size_t len, const struct outbox_policy *pol,
		struct outbox_headers *out, char *why, size_t whylen);
void outbox_headers_free(struct outbox_headers *h);
int outbox_check(int fd, const struct outbox_source *src, struct outbox_headers *h, off_t *end,
		char *why, size_t whylen);
int outbox_submit(struct spool *spool, int fd, const struct outbox_source *src,
		char id[SPOOL_ID_MAX], char *why, size_t whylen);
int outbox_reject(struct spool *spool, int fd, off_t keep, const char *origin, int err,
		const char *why, char id[SPOOL_ID_MAX]);
size_t outbox_quote_name(const char *name, char *out, size_t outlen);
int outbox_format_date(time_t t, char *out, size_t outlen);

#endif
