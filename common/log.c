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
	for (p = (const unsigned char *)value; *p; p++) {
		char esc[5];
		size_t n;

		if (*p == '"' || *p == '\\')
			n = (size_t)snprintf(esc, sizeof(esc), "\\%c", *p);
		else if (*p < ' ' || *p == 0x7f)
			n = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p);
		else
			n = (size_t)snprintf(esc, sizeof(esc), "%c", *p);
		if (n > size - used - 5) {	/* room for '...', '"' and NUL */
			memcpy(buf + used, "...", 3);
			used += 3;
			break;
		}
		memcpy(buf + used, esc, n);
		used += n;
	}
	buf[used++] = '"';
	buf[used] = '\0';
	return buf;
}
