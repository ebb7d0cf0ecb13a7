/*
 * NAME
 *	dsnparam - the DSN parameters of MAIL and RCPT (RFC 3461) as values
 * SYNOPSIS
 *	#include "dsnparam.h"
 *
 *	ssize_t dsn_xtext_decode(const char *in, size_t inlen, char *out, size_t outlen);
 *	int dsn_notify_parse(const char *v, unsigned *out);
 *	size_t dsn_notify_format(unsigned notify, char *buf, size_t len);
 *	bool dsn_notify_wants(unsigned notify, unsigned what);
 *	int dsn_ret_parse(const char *v, enum dsn_ret *out);
 *	const char *dsn_ret_name(enum dsn_ret ret);
 *	int dsn_envid_check(const char *xtext);
 *	int dsn_orcpt_check(const char *v);
 * DESCRIPTION
 *	The same checks serve the SMTP session (what a client sends) and the
 *	envelope record (what a record holds: the values are stored as the
 *	client sent them, xtext and all, and passed on so to a next hop that
 *	offers DSN).
 *
 *	dsn_xtext_decode() decodes RFC 3461 xtext ("+2B" for '+', upper-case
 *	hex): the decoded length (out NUL-terminated), -EINVAL for a
 *	character outside xtext or a bad "+XX", -ENAMETOOLONG when out is too
 *	small.
 *
 *	NOTIFY= is "NEVER" or a comma-separated list of SUCCESS, FAILURE,
 *	DELAY (any case, each at most once): dsn_notify_parse() sets *out to
 *	DSN_NOTIFY_* bits; -EINVAL otherwise.  dsn_notify_format() writes the
 *	upper-case form ("" for 0).  dsn_notify_wants() says whether a
 *	recipient with notify (0: not given) wants a notice of kind what
 *	(DSN_NOTIFY_SUCCESS, _FAILURE or _DELAY): without NOTIFY, failures
 *	and delays are reported and successes not (RFC 3461 4.1).
 *
 *	RET= is FULL or HDRS (any case).  ENVID= is xtext whose decoded form
 *	is 1..DSN_ENVID_MAX printable ASCII characters (RFC 3461 4.4).
 *	ORCPT= is addr-type ";" xtext (RFC 3461 4.2): addr-type an atom
 *	("rfc822"), the decoded address printable ASCII, the whole at most
 *	DSN_ORCPT_MAX characters.  The checks return 0 or -EINVAL.
 * THREADS
 *	Pure functions; thread-safe.
 */
#ifndef SPOOLGATE_DSNPARAM_H
#define SPOOLGATE_DSNPARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define DSN_NOTIFY_NEVER	0x1
#define DSN_NOTIFY_SUCCESS	0x2
#define DSN_NOTIFY_FAILURE	0x4
#define DSN_NOTIFY_DELAY	0x8
#define DSN_NOTIFY_TEXT_MAX	32	/* "SUCCESS,FAILURE,DELAY" + NUL fits */

#define DSN_ENVID_MAX		100	/* decoded characters (RFC 3461 4.4) */
#define DSN_ORCPT_MAX		500	/* characters of the parameter value (RFC 3461 4.2) */

enum dsn_ret { DSN_RET_UNSPECIFIED, DSN_RET_FULL, DSN_RET_HDRS };

ssize_t dsn_xtext_decode(const char *in, size_t inlen, char *out, size_t outlen);
int dsn_notify_parse(const char *v, unsigned *out);
size_t dsn_notify_format(unsigned notify, char *buf, size_t len);
bool dsn_notify_wants(unsigned notify, unsigned what);
int dsn_ret_parse(const char *v, enum dsn_ret *out);
const char *dsn_ret_name(enum dsn_ret ret);
int dsn_envid_check(const char *xtext);
int dsn_orcpt_check(const char *v);

#endif
