/*
 * NAME
 *	help - the texts of HELP (214) and the status of HELP STATUS (211)
 * SYNOPSIS
 *	#include "help.h"
 *
 *	size_t help_topic(const char *verb, const char **lines, size_t max);
 *	size_t help_status(const struct server *srv, const char *listener,
 *			char buf[][HELP_LINE_MAX], size_t max);
 * DESCRIPTION
 *	RFC 5321 4.1.1.8: HELP answers 214 with what a person needs to use a
 *	command.  The syntax line of each command is in the session's command
 *	table (session.c); this is the rest, one data table keyed by verb:
 *	what the command does here, its limits and the replies worth knowing.
 *	help_topic() copies the description lines of verb (upper case) into
 *	lines (at most max) and returns how many; 0 for a verb without a
 *	description (the session still answers with the syntax line).  The
 *	lines are static strings.
 *
 *	HELP STATUS answers 211 (RFC 5321 4.2.2 "System status") with the
 *	state of the server: help_status() writes its lines into buf: the
 *	version and host, the sessions (open / max_sessions), the listener,
 *	and the outbound queue (records in queue/ and in active/, counted
 *	with readdir up to HELP_COUNT_MAX each).  The session gives it only to
 *	clients in relay_networks (or authenticated ones): the numbers say
 *	how busy the gateway is, nothing a stranger needs.
 * THREADS
 *	Event loop thread (help_status() reads the server and the spool).
 */
#ifndef SPOOLGATE_HELP_H
#define SPOOLGATE_HELP_H

#include <stddef.h>

#include "server.h"

#define HELP_LINE_MAX	160
#define HELP_STATUS_LINES	5
#define HELP_COUNT_MAX	1000000u	/* readdir stops counting here ("1000000+") */

size_t help_topic(const char *verb, const char **lines, size_t max);
size_t help_status(const struct server *srv, const char *listener, char buf[][HELP_LINE_MAX], size_t max);

#endif
