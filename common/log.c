/*
 * NAME
 *	log - one key=value line per event
 * DESCRIPTION
 *	See log.h.  Each line is formatted into a stack buffer and written
 *	with a single write(2) to standard error, so concurrent threads never
 *	interleave within a line.  Lines longer than LOG_LINE_MAX are cut and
 *	marked with "truncated=yes" rather than split.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	4096

static const char *log_prog = "spoolgate";
static enum log_level log_min = LOG_LVL_INFO;

static const char *const log_level_names[] = {
	[LOG_LVL_DEBUG] = "debug",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_ERROR] = "error",
};

void
log_init(const char *prog, enum log_level min_level)
{
	log_prog = prog;
	log_min = min_level;
}

int
log_level_parse(const char *name, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcasecmp(name, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static size_t
format_timestamp(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n > 0 && size - n > 6)
		n += (size_t)snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
	return n;
}

void
log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	char stamp[40];
	size_t used;
	int n;
	va_list ap;

	if (level < log_min)
		return;
	format_timestamp(stamp, sizeof(stamp));
	n = snprintf(line, sizeof(line), "ts=%s prog=%s pid=%ld level=%s event=%s", stamp, log_prog,
	    (long)getpid(), log_level_names[level], event);
	used = n < 0 ? 0 : (size_t)n;
	if (fmt != NULL && used < sizeof(line) - 1) {
		line[used++] = ' ';
		va_start(ap, fmt);
		n = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
		va_end(ap);
		if (n > 0)
			used += (size_t)n;
	}
	if (used >= sizeof(line) - 1) {
		static const char cut[] = " truncated=yes";

		used = sizeof(line) - sizeof(cut) - 1;
		memcpy(line + used, cut, sizeof(cut) - 1);
		used += sizeof(cut) - 1;
	}
	line[used++] = '\n';
	/* One write per line; a failed log write has nowhere to be reported. */
	if (write(STDERR_FILENO, line, used) < 0)
		return;
}

static int
needs_quoting(const char *value)
{
	const unsigned char *p;

	if (*value == '\0')
		return 1;
	for (p = (const unsigned char *)value; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '\\' || *p == '=' || *p >= 0x7f)
			return 1;
	return 0;
}

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF) of 2 to 4 bytes at p, its code point in
 * *cp; 0 when p does not start one.
 */
static size_t
utf8_sequence(const unsigned char *p, unsigned *cp)
{
	size_t n, i;
	unsigned c;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;		/* also stops at the NUL */
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/*
 * Characters that are valid UTF-8 but no text for a log line: C1 controls
 * (U+0080..U+009F, e.g. U+009B, the 8-bit CSI of terminals), line and
 * paragraph separators, and the bidi controls that reorder what a person
 * sees (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069).
 */
static bool
invisible_control(unsigned cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f || cp == 0x2028 || cp == 0x2029 ||
	    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/*
 * What stands for the bytes at p in a quoted value: esc gets it, the
 * return value is how many bytes of p it covers.  Printable ASCII stays,
 * '"' and '\\' get a backslash, controls and DEL become \xNN, a
 * well-formed UTF-8 character stays as it is unless it is an invisible
 * control (then each of its bytes is \xNN), any other byte >= 0x80 is \xNN.
 */
static size_t
quote_one(const unsigned char *p, char esc[32], size_t *esclen)
{
	unsigned cp;
	size_t n, i, used = 0;

	if (*p == '"' || *p == '\\') {
		*esclen = (size_t)snprintf(esc, 32, "\\%c", *p);
		return 1;
	}
	if (*p < 0x80) {
		if (*p < ' ' || *p == 0x7f)
			*esclen = (size_t)snprintf(esc, 32, "\\x%02x", *p);
		else
			*esclen = (size_t)snprintf(esc, 32, "%c", *p);
		return 1;
	}
	if ((n = utf8_sequence(p, &cp)) == 0) {
		*esclen = (size_t)snprintf(esc, 32, "\\x%02x", *p);
		return 1;
	}
	for (i = 0; i < n; i++)
		used += invisible_control(cp) ? (size_t)snprintf(esc + used, 32 - used, "\\x%02x", p[i])
		    : (size_t)snprintf(esc + used, 32 - used, "%c", p[i]);
	*esclen = used;
	return n;
}

const char *
log_quote(char *buf, size_t size, const char *value)
{
	const unsigned char *p;
	size_t used = 0;

	if (size < 8) {
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	if (value == NULL)
		value = "";
	if (!needs_quoting(value)) {
		snprintf(buf, size, "%s", value);
		if (strlen(value) >= size)
			memcpy(buf + size - 4, "...", 4);
		return buf;
	}
	buf[used++] = '"';
	for (p = (const unsigned char *)value; *p;) {
		char esc[32];
		size_t n, took;

		took = quote_one(p, esc, &n);
		if (n > size - used - 5) {	/* room for '...', '"' and NUL */
			memcpy(buf + used, "...", 3);
			used += 3;
			break;
		}
		memcpy(buf + used, esc, n);
		used += n;
		p += took;
	}
	buf[used++] = '"';
	buf[used] = '\0';
	return buf;
}
