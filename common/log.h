/*
 * NAME
 *	log - one key=value line per event
 * SYNOPSIS
 *	#include "log.h"
 *
 *	void log_init(const char *prog, enum log_level min_level);
 *	void log_event(enum log_level level, const char *event, const char *fmt, ...);
 *	const char *log_quote(char *buf, size_t size, const char *value);
 * DESCRIPTION
 *	Every line written to standard error has the form
 *
 *	    ts=2026-11-29T18:47:39.123Z prog=smtpd level=info event=accepted id=... key=value ...
 *
 *	log_event() writes one such line.  fmt (printf-style, may be NULL)
 *	supplies the rest of the line, already in key=value form; a line that
 *	concerns a message carries id=<message id>.  Lines are written with
 *	one write(2), so lines from several threads never interleave.
 *
 *	log_quote() formats value for use after "key=": as is when it holds
 *	no space, '=', quote, backslash, control character or byte >= 0x7f,
 *	else in double quotes: '"' and '\\' get a backslash; control
 *	characters and DEL become \xNN; a well-formed UTF-8 character stays
 *	as it is (a name like "r\xc3\xa9sum\xc3\xa9.eml" reads as the person
 *	wrote it), except the invisible controls a terminal acts on or that
 *	reorder the line (C1 controls U+0080..U+009F, i.e. \xc2\x80..\xc2\x9f,
 *	U+200E/F, U+2028/9, U+202A..E, U+2066..9), whose bytes become \xNN;
 *	every other byte >= 0x80 (a lone 0x9b, broken or overlong UTF-8)
 *	becomes \xNN.  So a log line is one line of printable text whatever a
 *	file name or a client holds.  It writes into buf and returns buf
 *	(never a static buffer); values longer than the buffer are cut and end
 *	in "..." (never inside an escape or a UTF-8 character).
 * THREADS
 *	log_init() once at start-up; log_event() and log_quote() are thread-safe.
 */
#ifndef SPOOLGATE_LOG_H
#define SPOOLGATE_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_init(const char *prog, enum log_level min_level);
int log_level_parse(const char *name, enum log_level *out);	/* 0 or -EINVAL */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *log_quote(char *buf, size_t size, const char *value);

#define log_debug(ev, ...)	log_event(LOG_LVL_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...)	log_event(LOG_LVL_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...)	log_event(LOG_LVL_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...)	log_event(LOG_LVL_ERROR, ev, __VA_ARGS__)

#endif
