/*
 * NAME
 *	addr - mail addresses: RFC 5321 paths and local mailbox names
 * DESCRIPTION
 *	See addr.h.  The grammar is RFC 5321 section 4.1.2; a quoted local
 *	part is kept quoted in the output, exactly as received, so that it can
 *	be relayed unchanged.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "addr.h"

static int
is_atext(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * The length of the well-formed UTF-8 sequence of a non-ASCII character
 * at p (RFC 3629: no overlong form, no surrogate, at most U+10FFFF), or 0.
 */
int
addr_utf8_seq(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned cp;
	int n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07u;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* UTF-8 of a character that may stand in a name: not a C1 control (U+0080..U+009F). */
static int
utf8_name_char(const char *s)
{
	int n = addr_utf8_seq(s);

	if (n == 2 && (unsigned char)s[0] == 0xc2 && (unsigned char)s[1] < 0xa0)
		return 0;
	return n;
}

/*
 * atext, or with utf8 a UTF8-non-ascii character (RFC 6531 3.3): the
 * octets it takes, 0 when none.
 */
static int
atext_len(const char *p, bool utf8)
{
	if ((unsigned char)*p < 0x80)
		return is_atext((unsigned char)*p) ? 1 : 0;
	return utf8 ? utf8_name_char(p) : 0;
}

static int
is_ldh(unsigned char c)
{
	return isalnum(c) || c == '-';
}

/* Dot-string: Atom *("." Atom).  Returns its length, or -EINVAL. */
static int
scan_dot_string(const char *s, bool utf8)
{
	const char *p = s;
	int n;

	for (;;) {
		if (atext_len(p, utf8) == 0)
			return -EINVAL;
		while ((n = atext_len(p, utf8)) > 0)
			p += n;
		if (*p != '.')
			break;
		p++;
	}
	return (int)(p - s);
}

/* Quoted-string of RFC 5321. */
static int
scan_quoted_string(const char *s, bool utf8)
{
	const char *p = s + 1;
	int n;

	for (;;) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x80 && utf8 && (n = utf8_name_char(p)) > 0) {
			p += n;
			continue;
		}
		if (c == '"')
			return (int)(p + 1 - s);
		if (c == '\\') {
			if ((unsigned char)p[1] < 32 || (unsigned char)p[1] > 126)
				return -EINVAL;
			p += 2;
			continue;
		}
		if (c < 32 || c > 126)
			return -EINVAL;
		p++;
	}
}

/* Letter, digit, hyphen, or with utf8 a non-ASCII character of a U-label: its octets. */
static int
ldh_len(const char *p, bool utf8)
{
	if ((unsigned char)*p < 0x80)
		return is_ldh((unsigned char)*p) ? 1 : 0;
	return utf8 ? utf8_name_char(p) : 0;
}

/* sub-domain *("." sub-domain) with labels of 1..63 octets (U-labels with utf8). */
static int
scan_domain_utf8(const char *s, bool utf8)
{
	const char *p = s, *label;
	int n;

	for (;;) {
		label = p;
		if (*p == '-' || ldh_len(p, utf8) == 0)
			return -EINVAL;
		while ((n = ldh_len(p, utf8)) > 0)
			p += n;
		if (p[-1] == '-' || p - label > 63)
			return -EINVAL;
		if (*p != '.')
			break;
		p++;
	}
	return (int)(p - s);
}

static int
scan_domain(const char *s)
{
	return scan_domain_utf8(s, false);
}

static int
literal_valid(const char *s, size_t len)
{
	char buf[64];
	unsigned char bin[16];

	if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s + 1, len - 2);
	buf[len - 2] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, bin) == 1 ? 0 : -EINVAL;
	return inet_pton(AF_INET, buf, bin) == 1 ? 0 : -EINVAL;
}

/* Domain or address literal at s; returns its length or -EINVAL. */
static int
scan_domain_or_literal(const char *s, bool utf8)
{
	const char *close;

	if (*s != '[')
		return scan_domain_utf8(s, utf8);
	if ((close = strchr(s, ']')) == NULL)
		return -EINVAL;
	if (literal_valid(s, (size_t)(close + 1 - s)) < 0)
		return -EINVAL;
	return (int)(close + 1 - s);
}

int
addr_domain_valid(const char *domain)
{
	int n = scan_domain_or_literal(domain, false);

	if (n < 0 || domain[n] != '\0')
		return -EINVAL;
	return n > ADDR_DOMAIN_MAX ? -ENAMETOOLONG : 0;
}

/*
 * RFC 5321 4.1.1.1: "EHLO" SP ( Domain / address-literal ).  The name is
 * written into Received: (RFC 5321 4.4), so nothing else may pass: no
 * comment or angle brackets, no ';', no '_', no trailing dot.
 */
int
addr_helo_valid(const char *name)
{
	return addr_domain_valid(name);
}

/* A-d-l: "@" domain *("," "@" domain) ":" -- parsed and dropped. */
static int
skip_source_route(const char *s)
{
	const char *p = s;
	int n;

	if (*p != '@')
		return 0;
	for (;;) {
		p++;
		if ((n = scan_domain(p)) < 0)
			return -EINVAL;
		p += n;
		if (*p == ':')
			return (int)(p + 1 - s);
		if (*p != ',' || p[1] != '@')
			return -EINVAL;
		p++;
	}
}

/* An 8-bit byte in the path (up to its closing '>', quotes skipped)? */
static int
has_8bit(const char *s)
{
	int quoted = 0;

	for (; *s; s++) {
		if ((unsigned char)*s >= 0x80)
			return 1;
		if (quoted && *s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (!quoted && *s == '>')
			return 0;
	}
	return 0;
}

static int
parse_mailbox(const char *p, int *locallen, int *domlen, bool utf8)
{
	int n;

	n = *p == '"' ? scan_quoted_string(p, utf8) : scan_dot_string(p, utf8);
	if (n < 0)
		return -EINVAL;
	*locallen = n;
	if (p[n] != '@')
		return -EINVAL;
	if ((*domlen = scan_domain_or_literal(p + n + 1, utf8)) < 0)
		return -EINVAL;
	return 0;
}

int
addr_parse_path(const char *s, char *out, size_t outlen, const char **rest, unsigned flags)
{
	const char *p = s;
	int bracketed, locallen, domlen, n;
	size_t total;

	bool utf8 = (flags & ADDR_ALLOW_UTF8) != 0;

	if (has_8bit(s) && !utf8)
		return -EILSEQ;
	bracketed = *p == '<';
	if (!bracketed && !(flags & ADDR_ALLOW_UNBRACKETED))
		return -EINVAL;
	if (bracketed)
		p++;
	if (bracketed && *p == '>' && (flags & ADDR_ALLOW_NULL)) {
		if (outlen < 1)
			return -ENAMETOOLONG;
		out[0] = '\0';
		if (rest)
			*rest = p + 1;
		return 0;
	}
	if (bracketed && (flags & ADDR_ALLOW_POSTMASTER) && strncasecmp(p, "postmaster>", 11) == 0) {
		if (outlen < 11)
			return -ENAMETOOLONG;
		memcpy(out, p, 10);
		out[10] = '\0';
		if (rest)
			*rest = p + 11;
		return 0;
	}
	if (bracketed) {
		if ((n = skip_source_route(p)) < 0)
			return -EINVAL;
		p += n;
	}
	if (parse_mailbox(p, &locallen, &domlen, utf8) < 0)
		return -EINVAL;
	total = (size_t)locallen + 1 + (size_t)domlen;
	if (bracketed && p[total] != '>')
		return -EINVAL;
	if (!bracketed && p[total] != '\0' && p[total] != ' ')
		return -EINVAL;
	if (locallen > ADDR_LOCAL_MAX || domlen > ADDR_DOMAIN_MAX || total >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, p, total);
	out[total] = '\0';
	if (rest)
		*rest = p + total + (bracketed ? 1 : 0);
	return 0;
}

int
addr_split(const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || at == addr || at[1] == '\0')
		return -EINVAL;
	return (int)(at - addr);
}

int
addr_mailbox_name(const char *addr, char *out, size_t outlen)
{
	size_t len, i;
	int at = addr_split(addr);

	len = at >= 0 ? (size_t)at : strlen(addr);
	if (len == 0 || addr[0] == '.')
		return -EINVAL;
	if (len > ADDR_MAILBOX_MAX || len >= outlen)
		return -ENAMETOOLONG;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];
		int n;

		if (c >= 0x80) {	/* RFC 6531: kept as sent, no case folding */
			if ((n = utf8_name_char(addr + i)) == 0 || (size_t)n > len - i)
				return -EILSEQ;
			memcpy(out + i, addr + i, (size_t)n);
			i += (size_t)n - 1;
			continue;
		}
		if (!isalnum(c) && c != '.' && c != '_' && c != '-' && c != '+')
			return -EINVAL;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	if (strcmp(out, ".") == 0 || strstr(out, "..") != NULL)
		return -EINVAL;
	return 0;
}

bool
addr_same_mailbox(const char *a, const char *b)
{
	int at_a = addr_split(a), at_b = addr_split(b);

	if (at_a < 0 || at_b < 0)
		return strcmp(a, b) == 0;
	return at_a == at_b && memcmp(a, b, (size_t)at_a) == 0 &&
	    strcasecmp(a + at_a + 1, b + at_b + 1) == 0;
}
