/*
 * NAME
 *	dsnparam - the DSN parameters of MAIL and RCPT (RFC 3461) as values
 * DESCRIPTION
 *	See dsnparam.h.  The NOTIFY keywords are one table.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dsnparam.h"

static const struct {
	const char     *name;
	unsigned	bit;
} notify_words[] = {
	{ "NEVER", DSN_NOTIFY_NEVER },
	{ "SUCCESS", DSN_NOTIFY_SUCCESS },
	{ "FAILURE", DSN_NOTIFY_FAILURE },
	{ "DELAY", DSN_NOTIFY_DELAY },
};
#define N_NOTIFY_WORDS	(sizeof(notify_words) / sizeof(notify_words[0]))

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;		/* RFC 3461: upper case only */
}

ssize_t
dsn_xtext_decode(const char *in, size_t inlen, char *out, size_t outlen)
{
	size_t i = 0, o = 0;

	while (i < inlen) {
		unsigned char c = (unsigned char)in[i];
		int hi, lo;

		if (o + 1 >= outlen)
			return -ENAMETOOLONG;
		if (c == '+') {
			if (inlen - i < 3 || (hi = hexval(in[i + 1])) < 0 || (lo = hexval(in[i + 2])) < 0)
				return -EINVAL;
			out[o++] = (char)(hi * 16 + lo);
			i += 3;
		} else if (c >= 33 && c <= 126 && c != '=') {
			out[o++] = (char)c;
			i++;
		} else {
			return -EINVAL;
		}
	}
	if (outlen == 0)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return (ssize_t)o;
}

int
dsn_notify_parse(const char *v, unsigned *out)
{
	unsigned bits = 0;
	size_t len, i;

	for (;;) {
		len = strcspn(v, ",");
		for (i = 0; i < N_NOTIFY_WORDS; i++)
			if (strlen(notify_words[i].name) == len && strncasecmp(v, notify_words[i].name, len) == 0)
				break;
		if (i == N_NOTIFY_WORDS || (bits & notify_words[i].bit))
			return -EINVAL;
		bits |= notify_words[i].bit;
		if (v[len] == '\0')
			break;
		v += len + 1;
	}
	/* NEVER stands alone (RFC 3461 4.1). */
	if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
		return -EINVAL;
	*out = bits;
	return 0;
}

size_t
dsn_notify_format(unsigned notify, char *buf, size_t len)
{
	size_t n = 0, i;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	for (i = 0; i < N_NOTIFY_WORDS; i++) {
		if (!(notify & notify_words[i].bit))
			continue;
		int w = snprintf(buf + n, len - n, "%s%s", n ? "," : "", notify_words[i].name);

		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
	return n;
}

bool
dsn_notify_wants(unsigned notify, unsigned what)
{
	if (notify == 0)
		return what != DSN_NOTIFY_SUCCESS;
	return (notify & what) != 0;
}

int
dsn_ret_parse(const char *v, enum dsn_ret *out)
{
	if (strcasecmp(v, "FULL") == 0)
		*out = DSN_RET_FULL;
	else if (strcasecmp(v, "HDRS") == 0)
		*out = DSN_RET_HDRS;
	else
		return -EINVAL;
	return 0;
}

const char *
dsn_ret_name(enum dsn_ret ret)
{
	return ret == DSN_RET_FULL ? "FULL" : ret == DSN_RET_HDRS ? "HDRS" : "";
}

/* Decoded xtext of 1..max printable ASCII characters (no blank, no control). */
static int
xtext_printable(const char *in, size_t inlen, size_t max)
{
	char out[DSN_ORCPT_MAX + 1];
	ssize_t n, i;

	if (inlen == 0 || inlen > DSN_ORCPT_MAX)
		return -EINVAL;
	if ((n = dsn_xtext_decode(in, inlen, out, sizeof(out))) <= 0 || (size_t)n > max)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
			return -EINVAL;
	return 0;
}

int
dsn_envid_check(const char *xtext)
{
	return xtext_printable(xtext, strlen(xtext), DSN_ENVID_MAX);
}

/* addr-type: an atom of letters, digits and '-' (RFC 3461 4.2 names "rfc822"). */
int
dsn_orcpt_check(const char *v)
{
	size_t len = strlen(v), type = strcspn(v, ";");

	if (len > DSN_ORCPT_MAX || type == 0 || v[type] != ';' ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != type)
		return -EINVAL;
	return xtext_printable(v + type + 1, len - type - 1, DSN_ORCPT_MAX);
}
