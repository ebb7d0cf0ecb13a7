/*
 * NAME
 *	fuzz_smtp_command - SMTP command lines and their paths (smtp_parse.h)
 * DESCRIPTION
 *	The input is one command line as the session hands it over (line
 *	ending removed; NUL bytes possible).  smtp_parse_command() splits it;
 *	its argument then goes through the HELO, MAIL and RCPT parsers and
 *	the xtext decoder, the BDAT argument parser, whatever the verb, and
 *	the whole input through addr_parse_path() with every flag
 *	combination (ADDR_ALLOW_UTF8 included).  Properties: the verb
 *	is 1..SMTP_VERB_MAX-1 upper-case letters; the argument lies inside
 *	the line; an accepted HELO name is printable ASCII without blanks;
 *	an accepted path is NUL-terminated within its buffer, without
 *	control characters, 7-bit unless UTF-8 was allowed (ADDR_ALLOW_UTF8,
 *	MAIL with SMTPUTF8, smtp_parse_rcpt_utf8()) and then well-formed UTF-8
 *	(fuzz_utf8_name_ok()), and its rest lies inside the input; a refusal
 *	is a 5xx reply; xtext never grows; an accepted TRANSID is <x@y> of
 *	printable ASCII; an accepted BDAT argument starts with a digit; the
 *	DSN parameters kept (ENVID, ORCPT, NOTIFY) are what an envelope
 *	record accepts.
 */
#include <ctype.h>
#include <errno.h>

#include "fuzz.h"
#include "common/smtp_parse.h"

static void
check_address(const char *a, size_t cap, const char *what, int utf8)
{
	size_t n = strnlen(a, cap);
	size_t i;

	FUZZ_CHECK(n < cap, "%s: not NUL-terminated within %zu", what, cap);
	FUZZ_CHECK(!utf8 || fuzz_utf8_name_ok(a, n), "%s: malformed UTF-8 in '%s'", what, a);
	for (i = 0; i < n; i++)
		FUZZ_CHECK(((unsigned char)a[i] >= 0x20 && (unsigned char)a[i] < 0x7f) ||
		    (utf8 && (unsigned char)a[i] >= 0x80),
		    "%s: byte 0x%02x at %zu in '%s'", what, (unsigned char)a[i], i, a);
}

static void
check_paths(const char *s, size_t len)
{
	char out[ADDR_MAX];
	const char *rest;
	unsigned flags;

	for (flags = 0; flags < 16; flags++) {
		rest = NULL;
		if (addr_parse_path(s, out, sizeof(out), &rest, flags) != 0)
			continue;
		check_address(out, sizeof(out), "addr_parse_path", (flags & ADDR_ALLOW_UTF8) != 0);
		FUZZ_CHECK(rest != NULL && rest >= s && rest <= s + len, "rest outside the input");
		FUZZ_CHECK(out[0] != '\0' || (flags & ADDR_ALLOW_NULL), "empty path without ADDR_ALLOW_NULL");
	}
}

static void
check_arguments(const char *arg)
{
	char helo[SMTP_HELO_MAX], xt[512];
	struct smtp_perror why;
	struct smtp_mail mail;
	struct smtp_rcpt rcpt;
	ssize_t n;
	size_t i;

	if (smtp_parse_helo(arg, helo, sizeof(helo)) == 0) {
		FUZZ_CHECK(helo[0] != '\0', "empty HELO name accepted");
		for (i = 0; helo[i] != '\0'; i++)
			FUZZ_CHECK(helo[i] > 0x20 && helo[i] < 0x7f, "HELO name byte 0x%02x", (unsigned char)helo[i]);
	}
	memset(&why, 0, sizeof(why));
	if (smtp_parse_mail(arg, &mail, &why) == 0) {
		check_address(mail.from, sizeof(mail.from), "MAIL FROM", mail.smtputf8);
		/* RFC 3461: what is kept is what the record accepts */
		FUZZ_CHECK(mail.envid[0] == '\0' || dsn_envid_check(mail.envid) == 0, "ENVID kept: '%s'", mail.envid);
		FUZZ_CHECK(mail.ret <= DSN_RET_HDRS, "RET %d", (int)mail.ret);
		if (mail.transid[0] != '\0') {
			size_t tl = strlen(mail.transid);

			FUZZ_CHECK(tl >= 5 && mail.transid[0] == '<' && mail.transid[tl - 1] == '>' &&
			    strchr(mail.transid, '@') != NULL, "TRANSID '%s'", mail.transid);
			check_address(mail.transid, sizeof(mail.transid), "TRANSID", 0);
		}
	} else
		FUZZ_CHECK(why.reply < REPLY__COUNT && errmap_get(why.reply)->code >= 500,
		    "MAIL refused with reply %d", (int)why.reply);
	memset(&why, 0, sizeof(why));
	memset(&why, 0, sizeof(why));
	if (smtp_parse_rcpt_utf8(arg, &rcpt, &why, true) == 0)
		check_address(rcpt.to, sizeof(rcpt.to), "RCPT TO (SMTPUTF8)", 1);
	else
		FUZZ_CHECK(why.reply < REPLY__COUNT && errmap_get(why.reply)->code >= 500,
		    "RCPT refused with reply %d", (int)why.reply);
	{
		uint64_t size;
		bool last;

		if (smtp_parse_bdat(arg, &size, &last) == 0)
			FUZZ_CHECK(isdigit((unsigned char)arg[0]), "BDAT '%s' accepted", arg);
	}
	memset(&why, 0, sizeof(why));
	if (smtp_parse_rcpt(arg, &rcpt, &why) == 0) {
		check_address(rcpt.to, sizeof(rcpt.to), "RCPT TO", 0);
		FUZZ_CHECK(rcpt.orcpt[0] == '\0' || dsn_orcpt_check(rcpt.orcpt) == 0, "ORCPT kept: '%s'", rcpt.orcpt);
		FUZZ_CHECK(!(rcpt.notify & DSN_NOTIFY_NEVER) || rcpt.notify == DSN_NOTIFY_NEVER,
		    "NEVER with another NOTIFY keyword: %#x", rcpt.notify);
		FUZZ_CHECK(rcpt.to[0] != '\0', "empty forward-path accepted");
	} else {
		FUZZ_CHECK(why.reply < REPLY__COUNT && errmap_get(why.reply)->code >= 500,
		    "RCPT refused with reply %d", (int)why.reply);
	}
	n = smtp_xtext_decode(arg, strlen(arg), xt, sizeof(xt));
	FUZZ_CHECK(n < 0 || ((size_t)n <= strlen(arg) && (size_t)n < sizeof(xt) && xt[n] == '\0'),
	    "xtext decoded to %zd octets from %zu", n, strlen(arg));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_cmdline cmd;
	char *line = fuzz_cstr(data, size);	/* line[size] is writable */
	size_t i;

	if (line == NULL)
		return 0;
	check_paths(line, strlen(line));
	if (smtp_parse_command(line, size, &cmd) == 0) {
		size_t vlen = strnlen(cmd.verb, sizeof(cmd.verb));

		FUZZ_CHECK(vlen > 0 && vlen < SMTP_VERB_MAX, "verb of %zu letters", vlen);
		for (i = 0; i < vlen; i++)
			FUZZ_CHECK(isupper((unsigned char)cmd.verb[i]), "verb '%s' not upper case", cmd.verb);
		FUZZ_CHECK(cmd.arg != NULL && cmd.arg >= line && cmd.arg <= line + size, "argument outside the line");
		FUZZ_CHECK(memchr(cmd.arg, '\r', strlen(cmd.arg)) == NULL, "CR in the argument");
		check_arguments(cmd.arg);
	}
	free(line);
	return 0;
}
