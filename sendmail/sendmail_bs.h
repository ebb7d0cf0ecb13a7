/*
 * NAME
 *	sendmail_bs - spoolgate-sendmail -bs: SMTP on standard input and output
 * SYNOPSIS
 *	#include "sendmail_bs.h"
 *
 *	int sendmail_bs(const struct submitter *who, const char *sender);
 * DESCRIPTION
 *	The RFC 5321 dialogue a local program (Python's smtplib over a pipe,
 *	a mail client configured with "sendmail -bs") expects: greeting,
 *	EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, HELP; VRFY is 252.
 *	Command lines and the DATA stream go through the parser and decoder
 *	of smtpd's sessions (common/smtp_parse.h): at most [smtpd] max_line
 *	octets a line, dot-unstuffing, <CRLF>.<CRLF> only.  Each message
 *	accepted becomes one drop (submit.h) and gets its 250 once the drop is
 *	durable; a refusal at the end of DATA is the error table's reply for
 *	the check that failed.  MAIL FROM is the envelope sender for the
 *	users of [sendmail] trusted_users; for anyone else sender (their own
 *	address) replaces it, and the 250 says so.  At most [smtpd]
 *	max_recipients RCPTs (then 452 4.5.3), max_errors error replies (then
 *	421 4.7.0).  The dialogue ends at QUIT or end of input; it returns
 *	EX_OK, or EX_TEMPFAIL when a message was cut by the end of input.
 *	Replies come from the error table (errmap.h).
 */
#ifndef SPOOLGATE_SENDMAIL_BS_H
#define SPOOLGATE_SENDMAIL_BS_H

#include "submit.h"

int sendmail_bs(const struct submitter *who, const char *sender);

#endif
