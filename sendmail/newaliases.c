/*
 * NAME
 *	spoolgate-newaliases - check the aliases table, make the daemons reload it
 * SYNOPSIS
 *	spoolgate-newaliases [-n] [-c FILE]
 * DESCRIPTION
 *	Reads the table that [aliases] file names with the parser the
 *	daemons use (common/aliases.h) and says what is wrong with it as
 *	"FILE:LINE: what" (the first error).  Targets that are never
 *	delivered (|command, /file) are listed as warnings with their
 *	FILE:LINE.  A good table prints "newaliases: FILE: N aliases".
 *
 *	Then, unless -n, it replaces <spool>/newaliases (ALIASES_STAMP_FILE:
 *	a new file renamed over the old one), whose change spoolgate-smtpd
 *	and spoolgate-fs notice within a second, at their next lookup: they
 *	load the table again (event=aliases-loaded when=reload), or, when it
 *	does not load, keep the one they had and log why
 *	(event=aliases-reload-failed).  The daemons also reload on their own
 *	when the table or one of its includes changes; the request is for a
 *	change they cannot see (an include added by an edit that failed).
 *
 *	The configuration is -c FILE, else SPOOLGATE_CONF, else the
 *	installed one.  "sendmail -bi" and "sendmail -I" run it.
 * SECURITY
 *	No privilege of its own.  The table's files must belong to root or
 *	to the [spool] user and not be writable by others (aliases.h);
 *	writing the request needs write access to the spool root (root, or
 *	the spool's user): anyone else gets the check only, and a warning.
 * EXIT STATUS
 *	0 the table loads (or none is configured); EX_DATAERR it does not;
 *	EX_USAGE; EX_CONFIG the configuration does not load.  A request that
 *	cannot be written is a warning, not an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "../common/aliases.h"
#include "../common/cfg.h"

#define PROG	"newaliases"

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: %s [-n] [-c FILE]\n"
	    "  -n       only check the table; do not ask the daemons to reload it\n"
	    "  -c FILE  the configuration (default: SPOOLGATE_CONF, else %s)\n", PROG, SPOOLGATE_DEFAULT_CONF);
}

/* The owner the daemons accept besides root: the [spool] user. */
static uid_t
daemon_uid(const struct cfg *cfg)
{
	struct passwd *pw;

	if (cfg->user == NULL || cfg->user[0] == '\0' || (pw = getpwnam(cfg->user)) == NULL)
		return (uid_t)-1;
	return pw->pw_uid;
}

static void
warn_refused(const struct aliases *a)
{
	char line[1024];
	size_t i;

	for (i = 0; aliases_refused_at(a, i, line, sizeof(line)) == 1; i++)
		fprintf(stderr, "%s: warning: %s: never delivered (spoolgate delivers to no command or file); "
		    "the other targets of the alias still work\n", PROG, line);
}

/* A new <spool>/newaliases, renamed over the old one: its inode changes. */
static int
request_reload(const struct cfg *cfg)
{
	char path[4096], tmp[4200], text[64];
	int fd, n, r = 0;

	snprintf(path, sizeof(path), "%s/%s", cfg->spool_dir, ALIASES_STAMP_FILE);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%ld", cfg->spool_dir, ALIASES_STAMP_FILE, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(text, sizeof(text), "%lld\n", (long long)time(NULL));
	if (write(fd, text, (size_t)n) != n || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int
main(int argc, char **argv)
{
	const char *conf = NULL;
	bool check_only = false;
	struct aliases_opts opts;
	struct aliases *a;
	struct cfg cfg;
	char err[1024];
	int c, r;

	while ((c = getopt(argc, argv, "c:nh")) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'n':
			check_only = true;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (conf == NULL && (conf = getenv("SPOOLGATE_CONF")) == NULL)
		conf = SPOOLGATE_DEFAULT_CONF;
	if (cfg_load(conf, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		cfg_free(&cfg);
		return EX_CONFIG;
	}
	if (cfg.aliases_file == NULL || cfg.aliases_file[0] == '\0') {
		fprintf(stderr, "%s: %s: [aliases] file is not set: spoolgate uses no aliases\n", PROG, conf);
		cfg_free(&cfg);
		return EX_OK;
	}
	opts.daemon_uid = daemon_uid(&cfg);
	opts.stamp = NULL;
	if (aliases_load(cfg.aliases_file, &opts, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		fprintf(stderr, "%s: the daemons keep the table they have\n", PROG);
		cfg_free(&cfg);
		return EX_DATAERR;
	}
	warn_refused(a);
	printf("%s: %s: %zu aliases\n", PROG, cfg.aliases_file, aliases_count(a));
	aliases_release(a);
	if (!check_only && (r = request_reload(&cfg)) < 0)
		fprintf(stderr, "%s: warning: cannot write %s/%s (%s): the daemons reload when the table changes\n",
		    PROG, cfg.spool_dir, ALIASES_STAMP_FILE, strerror(-r));
	cfg_free(&cfg);
	return EX_OK;
}
