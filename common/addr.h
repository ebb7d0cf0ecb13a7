/*
 * NAME
 *	addr - mail addresses: RFC 5321 paths and local mailbox names
 * SYNOPSIS
 *	#include "addr.h"
 *
 *	int addr_parse_path(const char *s, char *out, size_t outlen,
 *			const char **rest, unsigned flags);
 *	int addr_split(const char *addr);
 *	int addr_mailbox_name(const char *addr, char *out, size_t outlen);
 *	bool addr_same_mailbox(const char *a, const char *b);
int addr_utf8_seq(const char *s);
 * DESCRIPTION
 *	addr_parse_path() parses an RFC 5321 Reverse-path or Forward-path at
 *	the start of s: "<local@domain>", with optional RFC 5321 source route
 *	("<@a,@b:local@domain>", route dropped), a quoted-string local part,
 *	a domain or an address literal ("[127.0.0.1]", "[IPv6:...]").  With
 *	ADDR_ALLOW_NULL the null path "<>" is accepted (out becomes "").  With
 *	ADDR_ALLOW_POSTMASTER a bare "<Postmaster>" is accepted (RFC 5321
 *	4.1.1.3).  With ADDR_ALLOW_UNBRACKETED, an address without angle
 *	brackets is accepted (some clients send it; Postfix accepts it too).
 *	On success out holds "local@domain" (NUL-terminated) and *rest (if
 *	rest is not NULL) points after the path, at the ESMTP parameters.
 *	Errors: -EINVAL malformed, -ENAMETOOLONG local part over 64 octets,
 *	domain over 255 octets or path longer than outlen, -EILSEQ a byte
 *	that is not 7-bit printable ASCII (SMTPUTF8 is not offered).
 *
 *	With ADDR_ALLOW_UTF8 (the client said SMTPUTF8, RFC 6531 3.3) a
 *	local part (atoms and quoted strings) and a domain (U-labels) may also
 *	hold well-formed UTF-8 characters other than C1 controls; malformed
 *	UTF-8 is then -EINVAL.  Lengths are still counted in octets.
 *
 *	addr_utf8_seq() returns the octets (2..4) of the well-formed UTF-8
 *	sequence (RFC 3629) of a non-ASCII character at s, or 0.
 *
 *	addr_split() returns the offset of the last '@' in addr, or -EINVAL if
 *	there is none or either side is empty.
 *
 *	addr_mailbox_name() derives the local mailbox (directory) name from an
 *	address's local part: lower-cased, made of [a-z0-9._-] and '+', not
 *	starting with '.', at most ADDR_MAILBOX_MAX octets.  The name is also
 *	a safe single path component.  A non-ASCII character (an SMTPUTF8
 *	address) is kept as sent, without case folding, if it is
 *	well-formed UTF-8 and no C1 control; else -EILSEQ.  Errors: -EINVAL
 *	(a character that is no valid mailbox name, empty, leading dot),
 *	-EILSEQ, -ENAMETOOLONG.
 *
 *	addr_same_mailbox() tells whether two addresses ("local@domain", as
 *	addr_parse_path() gives them) name the same mailbox: the local parts
 *	are compared exactly, because only the receiving host may say that
 *	Bob and bob are one mailbox (RFC 5321 2.4), and the domains without
 *	regard to ASCII case (domain names are case-insensitive).  An address
 *	without '@' is compared exactly.  This is the one rule that both
 *	outbox submissions and SMTP transactions use to drop a duplicate
 *	recipient.
 *
 *	addr_domain_valid() checks a domain name (letters, digits, hyphens,
 *	dots, labels of 1..63) or an address literal; 0, -EINVAL or
 *	-ENAMETOOLONG (over ADDR_DOMAIN_MAX).
 *
 *	addr_helo_valid() checks the argument of HELO/EHLO: an RFC 5321
 *	Domain or address-literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") and
 *	nothing else, so that it can be written into a Received: header as
 *	is.  0, -EINVAL or -ENAMETOOLONG.
 * THREADS
 *	Pure functions; thread-safe.
 */
#ifndef SPOOLGATE_ADDR_H
#define SPOOLGATE_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_MAX		512	/* RFC 5321 path limit is 256; room for quoting */
#define ADDR_LOCAL_MAX		64
#define ADDR_DOMAIN_MAX		255
#define ADDR_MAILBOX_MAX	64

#define ADDR_ALLOW_NULL		0x1
#define ADDR_ALLOW_POSTMASTER	0x2
#define ADDR_ALLOW_UNBRACKETED	0x4
#define ADDR_ALLOW_UTF8		0x8	/* RFC 6531 SMTPUTF8 */

int addr_parse_path(const char *s, char *out, size_t outlen, const char **rest, unsigned flags);
int addr_split(const char *addr);
int addr_mailbox_name(const char *addr, char *out, size_t outlen);
int addr_domain_valid(const char *domain);
int addr_helo_valid(const char *name);
bool addr_same_mailbox(const char *a, const char *b);
int addr_utf8_seq(const char *s);

#endif
