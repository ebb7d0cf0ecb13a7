/*
 * NAME
 *	outbox - submit a file as sendmail -t would
 * SYNOPSIS
 *	#include "outbox.h"
 *
 *	int outbox_submit(struct spool *spool, int fd, const char *origin,
 *			unsigned long max_size, char id[SPOOL_ID_MAX],
 *			char *why, size_t whylen);
 *	int outbox_reject(struct spool *spool, int fd, off_t keep,
 *			const char *origin, int err, const char *why,
 *			char id[SPOOL_ID_MAX]);
 * DESCRIPTION
 *	Reads the RFC 5322 message in fd (from offset 0) and queues it for
 *	the relay.  The envelope comes from its headers as "sendmail -t"
 *	takes it: the sender from Sender: or else From: (the first mailbox),
 *	the recipients from To:, Cc: and Bcc: (groups, display names,
 *	comments and folded lines understood, via GMime).  Bcc: headers are
 *	removed from what is queued.  Resent-* headers are not used.
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
 *	    -ENOSPC, -EDQUOT, -EIO  the spool could not take it
 *	The errno is the one errmap gives for the reply an SMTP server would
 *	have sent.
 *
 *	outbox_parse_headers() does the header work alone on a buffer (for
 *	tests and for checking before copying): spoolgate-fs runs it on the
 *	header section as soon as a writer has written it, so that a file
 *	that will be refused fails at write(2), not only at close(2).  It
 *	commits nothing.
 *
 *	outbox_reject() keeps a refused submission where a person finds it:
 *	the first keep bytes of fd become failed/<id>, with a record whose
 *	"rejected:" line (envelope.h) holds the reply of err, its errno
 *	name and "rejected at submission: <why>".  It is committed as durably
 *	as a queued message (spool_msg_reject) and never reaches the relay.
 *	0 with id set, or -errno (the spool could not take it either).
 * THREADS
 *	Thread-safe for distinct fds.
 */
#ifndef SPOOLGATE_OUTBOX_H
#define SPOOLGATE_OUTBOX_H

#include <stddef.h>
#include <sys/types.h>
#include "spool.h"
#include "envelope.h"

#define OUTBOX_MAX_HEADER	(256u << 10)	/* header section bound */

struct outbox_range { off_t start, end; };	/* [start, end) of bytes to drop */

struct outbox_headers {
	char		       *from;		/* envelope sender, "" if none found */
	char		      **rcpt;		/* recipients, deduplicated */
	size_t			nrcpt;
	struct outbox_range    *drop;		/* Bcc: headers, folded lines included */
	size_t			ndrop;
	off_t			body_start;	/* offset of the first body byte */
};

int outbox_parse_headers(const char *buf, size_t len, struct outbox_headers *out,
		char *why, size_t whylen);
void outbox_headers_free(struct outbox_headers *h);
int outbox_submit(struct spool *spool, int fd, const char *origin, unsigned long max_size,
		char id[SPOOL_ID_MAX], char *why, size_t whylen);
int outbox_reject(struct spool *spool, int fd, off_t keep, const char *origin, int err,
		const char *why, char id[SPOOL_ID_MAX]);

#endif
