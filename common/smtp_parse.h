/*
 * NAME
 *	smtp_parse - the pure parts of the SMTP server protocol
 * SYNOPSIS
 *	#include "smtp_parse.h"
 *
 *	int smtp_parse_command(char *line, size_t len, struct smtp_cmdline *out);
 *	int smtp_parse_helo(const char *arg, char *out, size_t outlen);
 *	int smtp_parse_mail(const char *arg, struct smtp_mail *out, struct smtp_perror *why);
 *	int smtp_parse_rcpt(const char *arg, struct smtp_rcpt *out, struct smtp_perror *why);
 *	ssize_t smtp_xtext_decode(const char *in, size_t inlen, char *out, size_t outlen);
 *	int smtp_parse_rcpt_utf8(const char *arg, struct smtp_rcpt *out,
 *			struct smtp_perror *why, bool smtputf8);
 *	bool smtp_is_ascii(const char *s);
int smtp_parse_transid(const char *value, char *out, size_t outlen);
 *	int smtp_parse_transid(const char *value, char *out, size_t outlen);
 *
 *	int smtp_parse_bdat(const char *arg, uint64_t *size, bool *last);
 *	size_t smtp_chunk_decode(struct smtp_chunk *c, const char *in, size_t len, char *out);
 *	size_t smtp_chunk_finish(struct smtp_chunk *c, char *out);
 *
 *	void smtp_data_init(struct smtp_data *d);
 *	int smtp_data_decode(struct smtp_data *d, const char *in, size_t inlen,
 *			size_t *used, char *out, size_t outcap, size_t *outlen);
 *
 *	void smtp_hdrscan_init(struct smtp_hdrscan *h);
 *	void smtp_hdrscan_feed(struct smtp_hdrscan *h, const char *buf, size_t len);
 *
 *	void smtp_hdrfilter_init(struct smtp_hdrfilter *f);
 *	size_t smtp_hdrfilter_feed(struct smtp_hdrfilter *f, const char *in,
 *			size_t len, char *out);
 *	size_t smtp_hdrfilter_finish(struct smtp_hdrfilter *f, char *out);
 * DESCRIPTION
 *	Everything here is a pure function over bytes: no sockets, no
 *	configuration, no allocation.  The session (session.c) feeds it what
 *	arrived and turns the results into replies; the unit test
 *	(tests/unit/test_smtp_parse.c) feeds it tables of good and bad input.
 *
 *	smtp_parse_command() splits one command line (its line ending already
 *	removed, len bytes, which may include NUL bytes; line[len] must be
 *	writable) into an upper-cased verb and the argument.  The line is
 *	modified in place: it is NUL-terminated and trailing blanks are cut;
 *	out->arg points into line ("" when there is none).  Errors: -EILSEQ the line holds a NUL or CR
 *	byte; -EINVAL no verb, or a verb that is not 1..SMTP_VERB_MAX-1 letters.
 *
 *	smtp_parse_helo() checks the argument of HELO/EHLO: one word of
 *	printable ASCII, at most SMTP_HELO_MAX-1 octets, that is a domain or
 *	an address literal (addr_helo_valid()), so that it is safe in
 *	Received:.  0, -EINVAL or -ENAMETOOLONG.
 *
 *	smtp_parse_mail() parses the argument of MAIL: "FROM:" (any case, blanks
 *	allowed after the colon as many clients send them), the reverse-path
 *	(addr_parse_path() with ADDR_ALLOW_NULL) and the ESMTP parameters this
 *	server announces: SIZE=<digits> (RFC 1870), BODY=7BIT|8BITMIME
 *	(RFC 6152) and AUTH=<xtext> (RFC 4954; decoded into auth, which must
 *	be printable without blanks; the session decides whether to trust
 *	it), RET=FULL|HDRS and ENVID=<xtext> (RFC 3461, dsnparam.h checks
 *	them; ENVID is kept as sent).  smtp_parse_rcpt() parses "TO:" and the
 *	forward-path (ADDR_ALLOW_POSTMASTER) and the DSN parameters
 *	NOTIFY= and ORCPT= (kept as sent).  Both return 0, or -errno with why->reply set to the reply the
 *	session must send and why->detail to a short text saying what was
 *	wrong (a string constant; NULL where the reply's own text says it):
 *	    no "FROM:"/"TO:", junk           REPLY_SYNTAX (501 5.5.4)
 *	    malformed reverse-path          REPLY_BAD_SENDER_SYNTAX (501 5.1.7)
 *	    malformed forward-path, paths   the errmap row of the errno of
 *	      too long, 8-bit bytes           addr_parse_path (553 5.1.3)
 *	    malformed parameter, duplicate  REPLY_SYNTAX (501 5.5.4)
 *	    unknown parameter               REPLY_BAD_PARAMETER (555 5.5.4)
 *	MAIL also takes BODY=BINARYMIME (RFC 3030; the session allows it
 *	only with BDAT), SMTPUTF8 (RFC 6531: only then may the reverse-path
 *	hold UTF-8, addr.h ADDR_ALLOW_UTF8; without it a non-ASCII sender is
 *	REPLY_NON_ASCII_SENDER, 553 5.6.7) and TRANSID=<id@host> (RFC 1845,
 *	kept in transid with its brackets).  smtp_parse_rcpt_utf8() is
 *	smtp_parse_rcpt() for a transaction whose MAIL said SMTPUTF8: a UTF-8
 *	forward-path is accepted (without: REPLY_NON_ASCII_RCPT, 553 5.6.7).
 *	smtp_is_ascii() tells whether a string has no octet >= 0x80.
 *	MAIL takes TRANSID=<id@host> (RFC 1845) into transid, checked by
 *	smtp_parse_transid(): "<" local "@" domain ">", printable ASCII
 *	without blanks, brackets or a second '@', at most SMTP_TRANSID_MAX - 1
 *	octets; 0 or -EINVAL.
 *
 *	smtp_parse_bdat() parses the argument of BDAT (RFC 3030):
 *	"<chunk-size> [LAST]", the size 1*DIGIT, LAST in any case.  0,
 *	-EINVAL (malformed) or -ERANGE (a size over 64 bits).
 *	smtp_chunk_decode() turns the octets of a chunk into the stored form
 *	of a message, as smtp_data_decode() does but without dot-unstuffing:
 *	CRLF becomes LF, a bare CR or LF stays; a CR at the end of a chunk is
 *	held in c until the next octet (out must hold len + 1 octets).
 *	smtp_chunk_finish() writes a CR still held (out holds 1 octet) and
 *	returns its length.  Any split of the message into chunks gives the
 *	same output.
 *
 *	SIZE is reported, not judged: the session compares it with its limit.
 *	A SIZE too large for 64 bits saturates to UINT64_MAX.
 *
 *	smtp_xtext_decode() decodes RFC 3461 xtext ("+2B" for '+'), as used by
 *	the values of the DSN and AUTH= parameters.  Returns the decoded length
 *	(out is NUL-terminated), -EINVAL for a character outside xtext or a bad
 *	"+XX", -ENAMETOOLONG when out is too small.
 *
 *	smtp_data_decode() is the byte-level state machine of the DATA phase.
 *	It consumes input until the end of data, <CRLF>.<CRLF>, where the CRLF
 *	that ended the DATA command counts as the first CRLF; a bare LF or a
 *	bare CR never ends the data.  It writes what is to be stored: CRLF
 *	becomes LF, a bare LF stays LF, a bare CR stays CR, and a line that
 *	begins (after a CRLF) with '.' followed by more characters loses that
 *	first '.' (RFC 5321 4.5.2).  Lines that follow a bare LF are not SMTP
 *	lines: nothing is unstuffed there, so the bytes are kept as sent.
 *	Returns SMTP_DATA_END when the terminator was consumed (*used counts it,
 *	what follows it is the next command), else SMTP_DATA_MORE: all input
 *	was consumed, or out is full (fewer than 2 bytes free; call again).
 *	outcap must be at least 2.  Any split of the input into calls gives the
 *	same output.
 *
 *	smtp_hdrscan_feed() watches the stored (LF) form of a message and
 *	counts the "Received:" header lines (any case) of its header section,
 *	which ends at the first empty line.  It serves the hop limit.
 *
 *	smtp_hdrfilter_feed() copies the stored (LF) form of a message from
 *	in to out without its "Return-Path:" fields (any case, white space
 *	allowed before the colon as RFC 5322 4.5 obs-optional does), each
 *	with its folded continuation lines: only the final delivery writes a
 *	Return-Path (RFC 5321 4.4), and the one smtpd writes comes before the
 *	data.  Only the header section is filtered (up to the first empty
 *	line); body lines pass untouched.  The start of a header line is held
 *	back until it is known not to be a Return-Path (at most
 *	SMTP_HDRFILTER_HOLD octets), so out must hold len +
 *	SMTP_HDRFILTER_HOLD octets; it returns the octets written.  Any split
 *	of the input gives the same output.  smtp_hdrfilter_finish() writes
 *	what is still held (a message that ends inside a field name) into out
 *	(SMTP_HDRFILTER_HOLD octets) and returns its length.
 * THREADS
 *	Pure functions; thread-safe on distinct state structs.
 */
#ifndef SPOOLGATE_SMTP_PARSE_H
#define SPOOLGATE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "dsnparam.h"
#include "errmap.h"

#define SMTP_VERB_MAX	16	/* longest verb + NUL */
#define SMTP_HELO_MAX	256	/* longest HELO/EHLO argument + NUL */
#define SMTP_TRANSID_MAX	256	/* TRANSID=<...> with its brackets, + NUL */

struct smtp_cmdline {
	char		verb[SMTP_VERB_MAX];	/* upper case */
	const char     *arg;			/* into the line; "" if none */
};

/* Why a MAIL or RCPT argument was refused. */
struct smtp_perror {
	enum reply_id	reply;
	const char     *detail;			/* string constant, or NULL */
};

enum smtp_body { SMTP_BODY_UNSPECIFIED, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };

struct smtp_mail {
	char		from[ADDR_MAX];		/* "" for the null reverse-path */
	bool		has_size;
	uint64_t	size;			/* SIZE=, saturated */
	enum smtp_body	body;
	bool		has_auth;
	char		auth[ADDR_MAX];		/* AUTH= decoded: "<>" or a mailbox */
	enum dsn_ret	ret;			/* RET= (RFC 3461), or unspecified */
	char		envid[DSN_ORCPT_MAX + 1];	/* ENVID= as sent (xtext), or "" */
	bool		smtputf8;		/* SMTPUTF8 (RFC 6531) */
	char		transid[SMTP_TRANSID_MAX];	/* TRANSID=<id@host> (RFC 1845), or "" */
};

struct smtp_rcpt {
	char		to[ADDR_MAX];		/* "Postmaster" alone has no '@' */
	unsigned	notify;			/* NOTIFY= DSN_NOTIFY_* bits, 0: not given */
	char		orcpt[DSN_ORCPT_MAX + 1];	/* ORCPT= as sent (type;xtext), or "" */
};

int smtp_parse_command(char *line, size_t len, struct smtp_cmdline *out);
int smtp_parse_helo(const char *arg, char *out, size_t outlen);
int smtp_parse_mail(const char *arg, struct smtp_mail *out, struct smtp_perror *why);
int smtp_parse_rcpt(const char *arg, struct smtp_rcpt *out, struct smtp_perror *why);
int smtp_parse_rcpt_utf8(const char *arg, struct smtp_rcpt *out, struct smtp_perror *why, bool smtputf8);
bool smtp_is_ascii(const char *s);
int smtp_parse_transid(const char *value, char *out, size_t outlen);

/* BDAT (RFC 3030). */
struct smtp_chunk {
	bool		cr;		/* a CR ended the last chunk: held back */
};

int smtp_parse_bdat(const char *arg, uint64_t *size, bool *last);
size_t smtp_chunk_decode(struct smtp_chunk *c, const char *in, size_t len, char *out);
size_t smtp_chunk_finish(struct smtp_chunk *c, char *out);
ssize_t smtp_xtext_decode(const char *in, size_t inlen, char *out, size_t outlen);

/* The DATA phase. */
enum smtp_data_state {
	SMTP_DATA_BOL,		/* at the start of a line that followed a CRLF */
	SMTP_DATA_DOT,		/* saw '.' at such a start */
	SMTP_DATA_DOT_CR,	/* saw ".\r" there */
	SMTP_DATA_TEXT,		/* inside a line */
	SMTP_DATA_CR		/* saw '\r' inside a line */
};

struct smtp_data {
	enum smtp_data_state state;
};

#define SMTP_DATA_MORE	0
#define SMTP_DATA_END	1

void smtp_data_init(struct smtp_data *d);
int smtp_data_decode(struct smtp_data *d, const char *in, size_t inlen, size_t *used,
		char *out, size_t outcap, size_t *outlen);

/* Counting Received: headers. */
struct smtp_hdrscan {
	bool		done;		/* the header section has ended */
	bool		bol;		/* at the start of a line */
	size_t		match;		/* bytes of "received:" matched so far; SIZE_MAX: no match */
	unsigned	received;
};

void smtp_hdrscan_init(struct smtp_hdrscan *h);
void smtp_hdrscan_feed(struct smtp_hdrscan *h, const char *buf, size_t len);

/* Dropping Return-Path: fields from the header section. */
#define SMTP_HDRFILTER_HOLD	32

struct smtp_hdrfilter {
	bool		done;		/* the header section has ended: all passes */
	bool		bol;		/* at the start of a line */
	bool		dropping;	/* inside a Return-Path field */
	bool		matching;	/* holding the start of a line */
	size_t		held;
	char		hold[SMTP_HDRFILTER_HOLD];
};

void smtp_hdrfilter_init(struct smtp_hdrfilter *f);
size_t smtp_hdrfilter_feed(struct smtp_hdrfilter *f, const char *in, size_t len, char *out);
size_t smtp_hdrfilter_finish(struct smtp_hdrfilter *f, char *out);

#endif
