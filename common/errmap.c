/*
 * NAME
 *	errmap - the one table between errno values and SMTP replies
 * DESCRIPTION
 *	See errmap.h.  The table is indexed by enum reply_id; a unit test
 *	(tests/unit/test_errmap.c) checks that row i has id i, that no errno
 *	is claimed by two ERRMAP_FROM_ERRNO rows, that no (code, esc) pair has
 *	two primary rows, and that every code of shared/reply-codes.md is here.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errmap.h"

#define ROW(id, code, esc, err, flags, text) [id] = { id, code, esc, err, flags, text }
#define FE	ERRMAP_FROM_ERRNO
#define PR	ERRMAP_PRIMARY

static const struct errmap_reply errmap_table[REPLY__COUNT] = {
	ROW(REPLY_SYSTEM_STATUS, 211, "2.0.0", 0, PR, "System status"),
	ROW(REPLY_HELP, 214, "2.0.0", 0, PR, "Help: see RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY"),
	ROW(REPLY_GREETING, 220, "", 0, PR, "Service ready"),
	ROW(REPLY_READY_TLS, 220, "2.0.0", 0, PR, "Ready to start TLS"),
	ROW(REPLY_BYE, 221, "2.0.0", 0, PR, "Service closing transmission channel"),
	ROW(REPLY_OK, 250, "2.0.0", 0, PR, "Ok"),
	ROW(REPLY_SENDER_OK, 250, "2.1.0", 0, PR, "Sender ok"),
	ROW(REPLY_RCPT_OK, 250, "2.1.5", 0, PR, "Recipient ok"),
	ROW(REPLY_QUEUED, 250, "2.0.0", 0, 0, "Ok: queued"),
	ROW(REPLY_ETRN_STARTED, 250, "2.0.0", 0, 0, "Queuing for node started"),
	ROW(REPLY_WILL_FORWARD, 251, "2.1.5", 0, PR, "User not local; will forward"),
	ROW(REPLY_ETRN_NONE, 251, "2.0.0", 0, PR, "No messages waiting for node"),
	ROW(REPLY_CANNOT_VRFY, 252, "2.5.0", 0, PR, "Cannot VRFY user, but will accept message and attempt delivery"),
	ROW(REPLY_ETRN_PENDING, 252, "2.0.0", 0, PR, "Pending messages for node started"),
	ROW(REPLY_ETRN_COUNT, 253, "2.0.0", 0, PR, "Pending messages for node started"),
	ROW(REPLY_AUTH_OK, 235, "2.7.0", 0, PR, "Authentication successful"),
	ROW(REPLY_START_DATA, 354, "", 0, PR, "Start mail input; end with <CRLF>.<CRLF>"),
	ROW(REPLY_CHECKPOINT_OFFSET, 355, "", 0, PR, "Octet-offset is the transaction offset"),
	ROW(REPLY_AUTH_CHALLENGE, 334, "", 0, PR, "Go ahead (the text is the challenge, base64)"),
	ROW(REPLY_SHUTDOWN, 421, "4.3.2", ESHUTDOWN, FE | PR, "Service shutting down, closing transmission channel"),
	ROW(REPLY_TOO_MANY_SESSIONS, 421, "4.7.0", EUSERS, FE | PR, "Too many connections, try again later"),
	ROW(REPLY_IDLE_TIMEOUT, 421, "4.4.2", 0, PR, "Idle timeout, closing transmission channel"),
	ROW(REPLY_COMMAND_DEADLINE, 421, "4.4.2", 0, 0, "Command deadline passed, closing transmission channel"),
	ROW(REPLY_SESSION_DEADLINE, 421, "4.4.2", 0, 0, "Session deadline passed, closing transmission channel"),
	ROW(REPLY_TOO_MANY_ERRORS, 421, "4.7.0", 0, 0, "Too many errors, closing transmission channel"),
	ROW(REPLY_TOO_MANY_FROM_CLIENT, 421, "4.7.0", 0, 0, "Too many connections from your address, try again later"),
	ROW(REPLY_OUT_OF_DESCRIPTORS, 421, "4.3.2", 0, 0, "Out of file descriptors, try again later"),
	ROW(REPLY_CONNECTION_LOST, 421, "4.4.2", ECONNRESET, FE, "Connection lost"),
	ROW(REPLY_PASSWORD_TRANSITION, 432, "4.7.12", 0, PR, "A password transition is needed"),
	ROW(REPLY_MAILBOX_BUSY, 450, "4.2.0", EAGAIN, FE | PR, "Mailbox busy, try again later"),
	ROW(REPLY_MAILBOX_LOCKED, 450, "4.2.0", EBUSY, FE, "Mailbox locked, try again later"),
	ROW(REPLY_ATRN_REFUSED, 450, "4.7.0", 0, PR, "ATRN request refused"),
	ROW(REPLY_LOCAL_ERROR, 451, "4.3.0", EIO, FE | PR, "Local error in processing"),
	ROW(REPLY_TOO_MANY_FILES, 451, "4.3.0", EMFILE, FE, "Local error in processing: too many open files"),
	ROW(REPLY_TOO_MANY_FILES_SYS, 451, "4.3.0", ENFILE, FE, "Local error in processing: too many open files in system"),
	ROW(REPLY_READ_ONLY_SPOOL, 451, "4.3.0", EROFS, FE, "Local error in processing: spool is read-only"),
	ROW(REPLY_NO_ANSWER, 451, "4.4.1", ECONNREFUSED, FE | PR, "No answer from host: connection refused"),
	ROW(REPLY_HOST_UNREACHABLE, 451, "4.4.1", EHOSTUNREACH, FE, "No answer from host: host unreachable"),
	ROW(REPLY_NET_UNREACHABLE, 451, "4.4.1", ENETUNREACH, FE, "No answer from host: network unreachable"),
	ROW(REPLY_TIMED_OUT, 451, "4.4.2", ETIMEDOUT, FE | PR, "Connection timed out"),
	ROW(REPLY_DNS_TEMPFAIL, 451, "4.4.3", 0, PR, "Directory server failure: the DNS lookup failed, try again later"),
	ROW(REPLY_REMOTE_PROTOCOL, 451, "4.5.0", 0, PR, "Protocol error in the remote server's reply"),
	ROW(REPLY_ATRN_LOCKED, 451, "4.4.0", 0, PR, "Unable to process ATRN request now"),
	ROW(REPLY_GREETING_REFUSED, 451, "4.4.0", 0, 0, "Host refused to talk to us"),
	ROW(REPLY_NO_STORAGE, 452, "4.3.1", ENOSPC, FE | PR, "Insufficient system storage"),
	ROW(REPLY_NO_MEMORY, 452, "4.3.1", ENOMEM, FE, "Insufficient system resources"),
	ROW(REPLY_TOO_MANY_RCPTS, 452, "4.5.3", E2BIG, FE | PR, "Too many recipients"),
	ROW(REPLY_NO_MAIL, 453, "4.7.0", 0, PR, "You have no mail"),
	ROW(REPLY_TLS_UNAVAILABLE, 454, "4.7.0", 0, PR, "TLS not available due to temporary reason"),
	ROW(REPLY_AUTH_TEMPFAIL, 454, "4.7.0", 0, 0, "Temporary authentication failure"),
	ROW(REPLY_ETRN_CANT_QUEUE, 458, "4.3.0", 0, PR, "Unable to queue messages for node"),
	ROW(REPLY_ETRN_NOT_ALLOWED, 459, "4.7.1", 0, PR, "Node not allowed"),
	ROW(REPLY_UNKNOWN_COMMAND, 500, "5.5.1", 0, PR, "Command not recognized"),
	ROW(REPLY_LINE_TOO_LONG, 500, "5.5.2", 0, PR, "Line too long"),
	ROW(REPLY_AUTH_LINE_TOO_LONG, 500, "5.5.6", 0, PR, "Authentication exchange line is too long"),
	ROW(REPLY_SYNTAX, 501, "5.5.4", 0, PR, "Syntax error in parameters or arguments"),
	ROW(REPLY_NO_PARAMS, 501, "5.5.4", 0, 0, "Syntax error, no parameters allowed"),
	ROW(REPLY_NULL_RCPT, 501, "5.1.3", 0, PR, "Bad destination mailbox address syntax: the null path <> is no recipient"),
	ROW(REPLY_AUTH_NOT_BASE64, 501, "5.5.2", 0, PR, "Cannot decode the authentication response (not base64, or not what the mechanism expects)"),
	ROW(REPLY_AUTH_CANCELLED, 501, "5.0.0", 0, PR, "Authentication cancelled"),
	ROW(REPLY_NOT_IMPLEMENTED, 502, "5.5.1", ENOSYS, FE | PR, "Command not implemented"),
	ROW(REPLY_BAD_SEQUENCE, 503, "5.5.1", 0, PR, "Bad sequence of commands"),
	ROW(REPLY_TLS_ALREADY_ACTIVE, 503, "5.5.1", 0, 0, "Bad sequence of commands: TLS already active"),
	ROW(REPLY_PARAM_NOT_IMPLEMENTED, 504, "5.5.4", ENOTSUP, FE | PR, "Command parameter not implemented"),
	ROW(REPLY_AUTH_UNKNOWN_MECH, 504, "5.5.4", 0, 0, "Unrecognized authentication type"),
	ROW(REPLY_NO_MAIL_ACCEPTED, 521, "5.3.2", 0, PR, "Machine does not accept mail"),
	ROW(REPLY_STARTTLS_REQUIRED, 530, "5.7.0", 0, PR, "Must issue a STARTTLS command first"),
	ROW(REPLY_AUTH_REQUIRED, 530, "5.7.0", 0, 0, "Authentication required"),
	ROW(REPLY_MECH_TOO_WEAK, 534, "5.7.9", 0, PR, "Authentication mechanism is too weak"),
	ROW(REPLY_AUTH_FAILED, 535, "5.7.8", 0, PR, "Authentication credentials invalid"),
	ROW(REPLY_ENCRYPTION_REQUIRED, 538, "5.7.11", 0, PR, "Encryption required for requested authentication mechanism"),
	ROW(REPLY_NO_SUCH_USER, 550, "5.1.1", ENOENT, FE | PR, "Mailbox unavailable: no such user here"),
	ROW(REPLY_DNS_NXDOMAIN, 550, "5.1.2", 0, PR, "Bad destination system address: the domain does not exist"),
	ROW(REPLY_NO_MAIL_HOST, 550, "5.4.4", 0, PR, "Unable to route: no address for the domain's mail hosts"),
	ROW(REPLY_RELAY_DENIED, 550, "5.7.1", EACCES, PR, "Relay access denied"),
	ROW(REPLY_ACCESS_DENIED, 550, "5.7.1", EACCES, FE, "Mailbox unavailable: permission denied"),
	ROW(REPLY_NOT_PERMITTED, 550, "5.7.1", EPERM, 0, "Mailbox unavailable: operation not permitted"),
	ROW(REPLY_USER_NOT_LOCAL, 551, "5.1.6", 0, PR, "User not local; please try the forward-path"),
	ROW(REPLY_MESSAGE_TOO_BIG, 552, "5.3.4", EFBIG, FE | PR, "Message exceeds the fixed maximum message size"),
	ROW(REPLY_MESSAGE_TOO_BIG_MSG, 552, "5.3.4", EMSGSIZE, FE, "Message exceeds the fixed maximum message size"),
	ROW(REPLY_OVER_QUOTA, 552, "5.2.2", EDQUOT, FE | PR, "Mailbox full: storage allocation exceeded"),
	ROW(REPLY_BAD_MAILBOX, 553, "5.1.3", EINVAL, FE | PR, "Mailbox name not allowed: bad address syntax"),
	ROW(REPLY_NAME_TOO_LONG, 553, "5.1.3", ENAMETOOLONG, FE, "Mailbox name not allowed: address too long"),
	ROW(REPLY_BAD_ENCODING, 553, "5.1.3", EILSEQ, FE, "Mailbox name not allowed: non-ASCII characters in address"),
	ROW(REPLY_BAD_SENDER_SYNTAX, 553, "5.1.7", 0, PR, "Bad sender address syntax"),
	ROW(REPLY_SENDER_TOO_LONG, 553, "5.1.7", 0, 0, "Bad sender address: address too long"),
	ROW(REPLY_SENDER_NOT_OWNED, 553, "5.7.1", EPERM, FE | PR, "Sender address rejected: not owned by user"),
	ROW(REPLY_NON_ASCII_SENDER, 553, "5.6.7", 0, PR, "Non-ASCII addresses not permitted for that sender (no SMTPUTF8)"),
	ROW(REPLY_NON_ASCII_RCPT, 553, "5.6.7", 0, 0, "Non-ASCII addresses not permitted for that recipient (no SMTPUTF8)"),
	ROW(REPLY_TXN_FAILED, 554, "5.0.0", EPROTO, PR, "Transaction failed"),
	ROW(REPLY_NO_VALID_RCPTS, 554, "5.5.1", EDESTADDRREQ, FE | PR, "No valid recipients"),
	ROW(REPLY_NOT_A_MESSAGE, 554, "5.6.0", EBADMSG, FE | PR, "Transaction failed: not a valid RFC 5322 message"),
	ROW(REPLY_EMPTY_MESSAGE, 554, "5.6.0", ENODATA, FE, "Transaction failed: empty message"),
	ROW(REPLY_CONVERSION_UNSUPPORTED, 554, "5.6.3", 0, PR, "Conversion required but not supported"),
	ROW(REPLY_MAIL_LOOP, 554, "5.4.6", ELOOP, FE | PR, "Too many hops: mail forwarding loop"),
	ROW(REPLY_DELIVERY_EXPIRED, 554, "5.4.7", 0, PR, "Delivery time expired"),
	ROW(REPLY_PROTOCOL_ERROR, 554, "5.5.0", EPROTO, FE | PR, "Transaction failed: protocol error"),
	ROW(REPLY_CLIENT_BLOCKED, 554, "5.7.1", EACCES, PR, "Access denied: no SMTP service for you here"),
	ROW(REPLY_BAD_PARAMETER, 555, "5.5.4", 0, PR, "MAIL FROM/RCPT TO parameters not recognized or not implemented"),
	ROW(REPLY_NULL_MX, 556, "5.1.10", 0, PR, "Recipient address has null MX: the domain accepts no mail"),
};

const struct errmap_reply *
errmap_get(enum reply_id id)
{
	if ((unsigned)id >= REPLY__COUNT)
		return &errmap_table[REPLY_LOCAL_ERROR];
	return &errmap_table[id];
}

const struct errmap_reply *
errmap_from_errno(int err)
{
	size_t i;

	if (err < 0)
		err = -err;
	for (i = 0; i < REPLY__COUNT; i++)
		if ((errmap_table[i].flags & ERRMAP_FROM_ERRNO) && errmap_table[i].err == err)
			return &errmap_table[i];
	return &errmap_table[REPLY_LOCAL_ERROR];
}

static int
primary_errno_for(int code, const char *esc)
{
	size_t i;

	for (i = 0; i < REPLY__COUNT; i++) {
		const struct errmap_reply *r = &errmap_table[i];

		if (!(r->flags & ERRMAP_PRIMARY) || r->code != code || r->err == 0)
			continue;
		if (esc == NULL || strcmp(r->esc, esc) == 0)
			return r->err;
	}
	return 0;
}

int
errmap_errno_from_reply(int code, const char *esc)
{
	int err;

	if (esc != NULL && *esc != '\0' && (err = primary_errno_for(code, esc)) != 0)
		return err;
	if ((err = primary_errno_for(code, NULL)) != 0)
		return err;
	if (code >= 400 && code < 500)
		return EAGAIN;
	if (code >= 500 && code < 600)
		return EIO;
	return 0;
}

/*
 * A reply as stored ("550 5.1.1 <bob@x>: no such user"): its basic code
 * and, when the text starts with one of the same class, its enhanced code
 * (RFC 3463: class "." 1*3digit "." 1*3digit).
 */
int
errmap_errno_from_reply_text(const char *reply)
{
	char esc[12] = "";
	const char *p;
	size_t a, b;
	int code;

	if (reply == NULL || !isdigit((unsigned char)reply[0]) || !isdigit((unsigned char)reply[1]) ||
	    !isdigit((unsigned char)reply[2]) || (reply[3] != ' ' && reply[3] != '-' && reply[3] != '\0'))
		return 0;
	code = (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
	p = reply[3] ? reply + 4 : reply + 3;
	if (p[0] == reply[0] && p[1] == '.') {
		a = strspn(p + 2, "0123456789");
		b = a >= 1 && a <= 3 && p[2 + a] == '.' ? strspn(p + 3 + a, "0123456789") : 0;
		if (b >= 1 && b <= 3 && (p[3 + a + b] == ' ' || p[3 + a + b] == '\0'))
			memcpy(esc, p, 3 + a + b);
	}
	return errmap_errno_from_reply(code, esc);
}

size_t
errmap_count(void)
{
	return REPLY__COUNT;
}

const struct errmap_reply *
errmap_at(size_t i)
{
	return i < REPLY__COUNT ? &errmap_table[i] : NULL;
}
