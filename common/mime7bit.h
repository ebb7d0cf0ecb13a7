/*
 * NAME
 *	mime7bit - make a message safe for a 7-bit SMTP peer
 * SYNOPSIS
 *	#include "mime7bit.h"
 *
 *	int mime7bit_scan_fd(int fd, off_t offset, struct mime7bit_scan *out);
 *	bool mime7bit_needed(const struct mime7bit_scan *s, bool peer_8bitmime);
 *	int mime7bit_convert(int in, off_t offset, int out,
 *			struct mime7bit_scan *after, char *why, size_t whylen);
 * DESCRIPTION
 *	A message may hold what an SMTP peer is allowed to cut or corrupt:
 *	a line over 998 octets (RFC 5321 4.5.3.1.6), octets of 0x80 and
 *	above sent to a server that did not announce 8BITMIME (RFC 6152),
 *	or NUL octets (never allowed in DATA).  This module finds such a
 *	message and converts it for transport as Postfix's 8-bit to 7-bit
 *	conversion does: the body parts that need it are re-encoded, text parts
 *	as quoted-printable and everything else as base64, with their
 *	Content-Transfer-Encoding header, and MIME-Version: 1.0 is added to
 *	the message when it has none; the multipart structure, the other
 *	parts and every other header stay as they were.  The work is done by
 *	GMime, which streams the parts from the file: the message is never
 *	held whole in memory.
 *
 *	mime7bit_scan_fd() reads fd from offset to its end (pread(2), fixed
 *	buffer) and reports in out whether the header section (up to the
 *	first empty line) and the whole message hold 8-bit or NUL octets and
 *	how long the longest line is (octets, without CR LF or LF).
 *
 *	mime7bit_needed() tells whether a message so scanned must be
 *	converted before it goes to a peer: a line over MIME7BIT_LINE_MAX, a
 *	NUL octet, or an 8-bit octet when the peer has no 8BITMIME.
 *
 *	mime7bit_convert() writes the converted message read from in (from
 *	offset) to out (at its current position), LF line endings, and scans
 *	what it wrote into after (may be NULL).  Errors:
 *	    -EILSEQ   the message cannot be made 7-bit by a transfer
 *	              encoding: 8-bit octets in a header (RFC 2047 would be
 *	              needed, and a sender's header is not ours to rewrite),
 *	              in a multipart preamble or epilogue or in an enclosed
 *	              message/rfc822 header, a NUL octet in the header of a
 *	              body part or enclosed message (GMime cuts the header
 *	              there and would glue the next one onto it), or a header
 *	              line over 998 octets; why says which.  The relay answers it as
 *	              554 5.6.3 (conversion required but not supported).
 *	    -EIO, -ENOSPC, -ENOMEM  reading or writing failed
 *	Both fds stay open and belong to the caller.
 * THREADS
 *	Thread-safe for distinct fds (GMime is initialised once).
 */
#ifndef SPOOLGATE_MIME7BIT_H
#define SPOOLGATE_MIME7BIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MIME7BIT_LINE_MAX	998	/* octets of a line without CRLF, RFC 5321 4.5.3.1.6 */

struct mime7bit_scan {
	bool		header_8bit;	/* an octet >= 0x80 or NUL in the header section */
	bool		eightbit;	/* an octet >= 0x80 anywhere */
	bool		nul;		/* a NUL octet anywhere */
	size_t		longest_line;	/* octets, line ending excluded */
	size_t		longest_header_line;
	unsigned long long size;	/* octets scanned */
};

int mime7bit_scan_fd(int fd, off_t offset, struct mime7bit_scan *out);
bool mime7bit_needed(const struct mime7bit_scan *s, bool peer_8bitmime);
int mime7bit_convert(int in, off_t offset, int out, struct mime7bit_scan *after, char *why,
		size_t whylen);

#endif
