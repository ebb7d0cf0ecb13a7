/*
 * NAME
 *	help - the texts of HELP (214) and the status of HELP STATUS (211)
 * DESCRIPTION
 *	See help.h.  The texts are data: one row per verb, a few lines each,
 *	each line short enough for a reply line (REPLY_LINE_MAX).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/spool.h"
#include "help.h"

#define HELP_TOPIC_LINES	4

static const struct {
	const char     *verb;
	const char     *lines[HELP_TOPIC_LINES];	/* NULL-terminated when shorter */
} help_topics[] = {
	{ "EHLO", { "Greets the server and lists the extensions it offers (RFC 5321);",
	    "the argument is your host name or an address literal such as [192.0.2.1]." } },
	{ "HELO", { "Greets the server without extensions (RFC 821 clients); prefer EHLO." } },
	{ "AUTH", { "Authenticates (RFC 4954) with a mechanism EHLO lists: PLAIN, LOGIN, SCRAM-SHA-256.",
	    "PLAIN and LOGIN need TLS unless the listener allows them in plaintext." } },
	{ "MAIL", { "Starts a transaction with the envelope sender; <> for a bounce.",
	    "SIZE= is compared with the limit EHLO announces (552 5.3.4 when over)." } },
	{ "RCPT", { "Adds a recipient: a local mailbox, or (relay clients only) a remote address.",
	    "251 when a forward sends it on, 551 when forwarding is off and names the new address." } },
	{ "DATA", { "Sends the message, ended by a line with a single dot.",
	    "250 comes only once the message is on disk (fsync)." } },
	{ "RSET", { "Abandons the current transaction; the greeting stays." } },
	{ "NOOP", { "Does nothing and answers 250; keeps the connection alive." } },
	{ "QUIT", { "Ends the session (221)." } },
	{ "HELP", { "HELP <command> explains one command; HELP STATUS gives the server's",
	    "state (211) to clients in relay_networks." } },
	{ "VRFY", { "Asks whether an address is a mailbox here: 252 unless vrfy = yes,",
	    "then 250 for a local mailbox, 550 for an unknown one, 251/551 for a forward." } },
	{ "EXPN", { "Mailing list expansion is not offered (502)." } },
	{ "STARTTLS", { "Starts TLS (RFC 3207); then greet again with EHLO." } },
	/* Verbs of the extensions other modules add to the command table (a row here is harmless before). */
	{ "ETRN", { "Asks the server to start delivering the mail it holds for a domain (RFC 1985):",
	    "ETRN example.org; @example.org for its subdomains too; #name for a named queue." } },
	{ "ATRN", { "After AUTH, turns the connection around: the server delivers the mail it holds",
	    "for your domains over it (RFC 2645, On-Demand Mail Relay)." } },
	{ "BDAT", { "Sends the message in chunks of the given size (RFC 3030 CHUNKING); LAST ends it." } },
};

size_t
help_topic(const char *verb, const char **lines, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < sizeof(help_topics) / sizeof(help_topics[0]); i++) {
		if (strcmp(help_topics[i].verb, verb) != 0)
			continue;
		while (n < HELP_TOPIC_LINES && n < max && help_topics[i].lines[n] != NULL) {
			lines[n] = help_topics[i].lines[n];
			n++;
		}
		break;
	}
	return n;
}

/* Entries of one spool directory (not starting with '.'), up to HELP_COUNT_MAX; -1 on error. */
static long
count_entries(const struct spool *spool, enum spool_dir which)
{
	struct dirent *de;
	long n = 0;
	DIR *d;
	int fd;

	if ((fd = openat(spool_dirfd(spool, which), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while (n < (long)HELP_COUNT_MAX && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
format_count(char *buf, size_t len, long n)
{
	if (n < 0)
		snprintf(buf, len, "unknown");
	else
		snprintf(buf, len, "%ld%s", n, n >= (long)HELP_COUNT_MAX ? "+" : "");
}

size_t
help_status(const struct server *srv, const char *listener, char buf[][HELP_LINE_MAX], size_t max)
{
	char queued[32], active[32];
	size_t n = 0;

	format_count(queued, sizeof(queued), count_entries(srv->spool, SPOOL_DIR_QUEUE));
	format_count(active, sizeof(active), count_entries(srv->spool, SPOOL_DIR_ACTIVE));
	if (n < max)
		snprintf(buf[n++], HELP_LINE_MAX, "spoolgate %s on %s", SPOOLGATE_VERSION, srv->hostname);
	if (n < max)
		snprintf(buf[n++], HELP_LINE_MAX, "sessions: %u of %u", srv->nsessions, srv->cfg->max_sessions);
	if (n < max)
		snprintf(buf[n++], HELP_LINE_MAX, "listener: %s", listener);
	if (n < max)
		snprintf(buf[n++], HELP_LINE_MAX, "queue: %s waiting, %s being delivered", queued, active);
	if (n < max)
		snprintf(buf[n++], HELP_LINE_MAX, "state: %s", srv->stopping ? "shutting down" : "accepting");
	return n;
}
