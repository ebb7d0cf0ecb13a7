/*
 * NAME
 *	spoolgate-sendmail - the sendmail command of spoolgate
 * SYNOPSIS
 *	spoolgate-sendmail [-t] [-i | -oi] [-f sender] [-F name] [-v]
 *		[-bm | -bs] [-c FILE] [recipient ...]
 * DESCRIPTION
 *	What cron, smartd, mdadm, mail(1) and backup scripts run as
 *	/usr/sbin/sendmail.  It reads a message and leaves it for the gateway
 *	in <spool>/drop/ (drop.h), with the checks and the durability of an
 *	outbox/ submission: when it exits 0 the drop is on disk (file synced,
 *	renamed, filesystem synced); spoolgate-smtpd moves it into the queue
 *	when it runs, at once or at its next start.  The mount plays no part.
 *
 *	-bm (the default) reads the message from standard input until EOF or,
 *	without -i, a line holding only ".".  CRLF line endings become LF.
 *	The recipients are the arguments; with -t also the addresses of To:,
 *	Cc: and Bcc: (Postfix adds them to the arguments).  Bcc: and
 *	Return-Path: are dropped.  An address without '@' gets
 *	@<sender_domain>.  A message without From: gets one (with -F name),
 *	without Date: or Message-ID: those; one without any header (echo text
 *	| sendmail root) gets them before the text.
 *	-bs speaks SMTP on standard input and output (sendmail_bs.c).
 *	-f sender (or -r): the envelope sender, for the users of [sendmail]
 *	trusted_users (root by default); anyone else sends as
 *	login@sender_domain and -f is ignored with a warning.  -f '' or
 *	-f '<>' is the null sender.
 *	-F name: the display name of the From: added to a message without one.
 *	-v: say where the message went.
 *	-c FILE (or -C FILE, or SPOOLGATE_CONF in the environment): the
 *	configuration, default SPOOLGATE_DEFAULT_CONF.  Another file than
 *	that one is taken from a user who is not root only when it belongs to
 *	root and only root may write it: it decides where the set-group-id
 *	privilege writes.
 *
 *	Ignored as Postfix's sendmail ignores them: -B type, -G, -h N, -L
 *	label, -m, -n, -N dsn, -O opt, -o7, -o8, -oA..., -oe*, -od*, -om,
 *	any other -o, -p proto, -R ret, -U, -V envid, -X file, -x, -q with
 *	an interval.  -bp (and -q alone) run spoolgate-mailq (and its
 *	--flush), found beside this program or else in PATH, without the
 *	group, with -c passed on as SPOOLGATE_CONF; -bi and -I run
 *	spoolgate-newaliases the same way.
 * EXIT STATUS
 *	0 the message is in drop/ for the gateway; otherwise sysexits.h as
 *	Postfix's (submit.h): EX_USAGE no recipient or a bad command line,
 *	EX_NOUSER a bad address, EX_DATAERR not a message or too big,
 *	EX_CANTCREAT drop/ cannot be written, EX_TEMPFAIL the disk, EX_CONFIG
 *	the configuration.  stderr says why as "sendmail: <reply>: <why>",
 *	e.g. "sendmail: 554 5.5.1 No valid recipients: no recipient: ...".
 * SECURITY
 *	Installed set-group-id [sendmail] group (spoolgate-drop), which may
 *	write drop/ and nothing else.  It never reads another's drop, and
 *	the gateway trusts nothing it writes (drop.h).  The real uid is the
 *	submitter; it is what the drop, the Received: line and the log say.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "../common/addr.h"
#include "../common/cfg.h"
#include "../common/drop.h"
#include "../common/errmap.h"
#include "../common/unixuser.h"
#include "sendmail_bs.h"
#include "submit.h"

#define PROG	"sendmail"

struct options {
	bool		extract;	/* -t */
	bool		dot_ends;	/* without -i: a "." line ends the message */
	bool		smtp;		/* -bs */
	bool		verbose;	/* -v */
	const char     *want_sender;	/* -f, -r */
	const char     *full_name;	/* -F */
	const char     *conf;		/* -c, -C, SPOOLGATE_CONF */
	int		queue_tool;	/* -bp: -1, -q: -2 (run spoolgate-mailq), -bi: -3, else 0 */
	char	      **rcpt;		/* the arguments */
	size_t		nrcpt;
};

#ifdef __SANITIZE_ADDRESS__
/*
 * Under AddressSanitizer (./test --sanitize): LeakSanitizer cannot stop the
 * threads of a set-group-id process, which is not dumpable, and would end
 * every run with a fatal error.  Address and UB checks stay; the leak check
 * stays for a run without the group (root's, the tests' plain copies).
 */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return getegid() != getgid() ? "detect_leaks=0" : "";
}
#endif

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-t] [-i] [-f sender] [-F name] [-v] [-bm | -bs] [-c FILE] [recipient ...]\n"
	    "  Postfix's other options are accepted and ignored; see README.md (\"sendmail\").\n", PROG);
}

/* A mode (-bX): 0 to go on, else the exit status. */
static int
take_mode(struct options *o, const char *mode)
{
	if (strcmp(mode, "m") == 0)
		return 0;
	if (strcmp(mode, "s") == 0) {
		o->smtp = true;
		return 0;
	}
	if (strcmp(mode, "p") == 0) {
		o->queue_tool = -1;	/* the caller runs spoolgate-mailq */
		return 0;
	}
	if (strcmp(mode, "i") == 0) {
		o->queue_tool = -3;	/* the caller runs spoolgate-newaliases */
		return 0;
	}
	fprintf(stderr, "%s: -b%s: mode not supported (only -bm, -bs, -bp)\n", PROG, mode);
	return EX_USAGE;
}

/*
 * -bp and -q: spoolgate-mailq; -bi and -I: spoolgate-newaliases; from the
 * directory of this program, else from PATH.
 */
static int
run_tool(const char *tool, const char *argv0, const char *arg)
{
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 32);

	/* The tools need none of our group. */
	if (setgid(getgid()) < 0)
		return EX_OSERR;
	if (n > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL) {
			snprintf(slash + 1, sizeof(self) - (size_t)(slash + 1 - self), "%s", tool);
			execl(self, argv0, arg, (char *)NULL);
		}
	}
	execlp(tool, argv0, arg, (char *)NULL);
	fprintf(stderr, "%s: cannot run %s: %s\n", PROG, tool, strerror(errno));
	return EX_OSERR;
}

/*
 * Postfix's option letters; the ones it ignores are ignored here.
 * Returns 0 to go on, a status to exit with, or -1 (run mailq), -2 (flush),
 * -3 (run newaliases).
 */
static int
parse_options(int argc, char **argv, struct options *o)
{
	int c, r;

	o->dot_ends = true;
	opterr = 0;
	while ((c = getopt(argc, argv, "+B:C:c:F:f:GIL:N:O:R:UV:X:b:e:h:imno:p:q::r:tvx")) != -1) {
		switch (c) {
		case 't':
			o->extract = true;
			break;
		case 'i':
			o->dot_ends = false;
			break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				o->dot_ends = false;
			break;		/* -oem, -odi, -oA..., -o7: ignored */
		case 'f':
		case 'r':
			o->want_sender = optarg;
			break;
		case 'F':
			o->full_name = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'c':
		case 'C':
			o->conf = optarg;
			break;
		case 'b':
			if ((r = take_mode(o, optarg)) != 0)
				return r;
			break;
		case 'I':
			o->queue_tool = -3;	/* newaliases */
			break;
		case 'q':
			if (optarg == NULL)
				o->queue_tool = -2;	/* -q alone: flush the queue */
			break;		/* -q<interval>: ignored, as Postfix */
		case 'B': case 'G': case 'L': case 'N': case 'O': case 'R': case 'U': case 'V': case 'X':
		case 'e': case 'h': case 'm': case 'n': case 'p': case 'x':
			break;		/* ignored, as Postfix's sendmail */
		case '?':
			fprintf(stderr, "%s: -%c: %s\n", PROG, optopt,
			    strchr("BCcFfLNORVXbehopr", optopt) ? "needs an argument" : "unknown option");
			usage();
			return EX_USAGE;
		}
	}
	if (o->queue_tool != 0)
		return o->queue_tool;
	o->rcpt = argv + optind;
	o->nrcpt = (size_t)(argc - optind);
	if (o->smtp && o->nrcpt > 0) {
		fprintf(stderr, "%s: -bs takes no recipients (they come with RCPT)\n", PROG);
		return EX_USAGE;
	}
	return 0;
}

/*
 * Another configuration than the installed one decides where the
 * set-group-id privilege writes: a user who is not root may name one
 * only if root owns it and no one else may change it (as Postfix allows
 * MAIL_CONFIG only for alternate_config_directories).
 */
static int
check_conf_owner(const char *path)
{
	struct stat st;

	if (getuid() == 0 || strcmp(path, SPOOLGATE_DEFAULT_CONF) == 0)
		return 0;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s: %s\n", PROG, path, strerror(errno));
		return EX_CONFIG;
	}
	if (st.st_uid != 0 || (st.st_mode & 022) != 0) {
		fprintf(stderr, "%s: %s: refused: a configuration other than %s must belong to root and be "
		    "writable by root only (this command is set-group-id)\n", PROG, path, SPOOLGATE_DEFAULT_CONF);
		return EX_CONFIG;
	}
	return 0;
}

static int
load_conf(struct options *o, struct cfg *cfg)
{
	char err[1024];
	int r;

	if (o->conf == NULL)
		o->conf = getenv("SPOOLGATE_CONF");
	if (o->conf == NULL || o->conf[0] == '\0')
		o->conf = SPOOLGATE_DEFAULT_CONF;
	if ((r = check_conf_owner(o->conf)) != 0)
		return r;
	if (cfg_load(o->conf, cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		return EX_CONFIG;
	}
	return 0;
}

/* The submitter: the real uid, its login, its own address, the sender it may use. */
static int
who_submits(const struct options *o, const struct cfg *cfg, struct submitter *who, char *login,
    size_t loginlen, char *own, size_t ownlen, char *sender, size_t senderlen)
{
	char want[ADDR_MAX + 2], parsed[ADDR_MAX];
	const char *w = NULL;
	int r;

	who->uid = getuid();
	unixuser_login(who->uid, login, loginlen);
	if ((r = unixuser_sender(cfg, login, NULL, own, ownlen)) < 0) {
		fprintf(stderr, "%s: %s@%s: too long for an address\n", PROG, login, cfg_sender_domain(cfg));
		return EX_NOUSER;
	}
	if (o->want_sender != NULL) {
		/* "-f bob@x", "-f <bob@x>", "-f ''", "-f <>" */
		snprintf(want, sizeof(want), o->want_sender[0] == '<' ? "%s" : "<%s>", o->want_sender);
		if (addr_parse_path(want, parsed, sizeof(parsed), NULL, ADDR_ALLOW_NULL) < 0) {
			submit_print_refusal(stderr, PROG, EINVAL, "-f: not a mail address");
			return EX_NOUSER;
		}
		w = parsed;
	}
	r = unixuser_sender(cfg, login, w, sender, senderlen);
	if (r == -EPERM)
		fprintf(stderr, "%s: warning: -f %s ignored: %s is not in [sendmail] trusted_users; the sender is <%s>\n",
		    PROG, o->want_sender, login, sender);
	else if (r < 0)
		return EX_NOUSER;
	who->cfg = cfg;
	who->login = login;
	who->own = own;
	who->verbose = o->verbose;
	return 0;
}

static int
open_drop_dir(const struct cfg *cfg, struct submitter *who)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", cfg->spool_dir, DROP_DIR);
	if ((who->dirfd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		char why[PATH_MAX + 256];

		snprintf(why, sizeof(why), "cannot reach %s: %s (spoolgate-smtpd creates it at its start; this "
		    "command must be set-group-id %s)", path, strerror(errno), cfg->drop_group);
		submit_print_refusal(stderr, PROG, EIO, why);
		return EX_CANTCREAT;
	}
	return 0;
}

/*
 * -bm reads standard input as bytes (NULs included: the checks must see
 * what came): CRLF becomes LF, and without -i a line holding only "."
 * (LF or CRLF) ends the message.  A CR or a "." is held back until the
 * next byte says what it was.
 */
enum stdin_hold { HOLD_NONE, HOLD_CR, HOLD_DOT, HOLD_DOT_CR };

struct stdin_reader {
	bool		dot_ends;
	bool		at_bol;
	enum stdin_hold	hold;
	bool		ended;		/* the "." line came */
};

static void
emit(struct submit_msg *m, const char *bytes, size_t n)
{
	(void)submit_write(m, bytes, n);	/* an error is sticky: submit_end() reports it */
}

static void
reader_byte(struct stdin_reader *rd, struct submit_msg *m, char c)
{
	switch (rd->hold) {
	case HOLD_DOT:
		rd->hold = HOLD_NONE;
		if (c == '\n') {
			rd->ended = true;
			return;
		}
		if (c == '\r') {
			rd->hold = HOLD_DOT_CR;
			return;
		}
		emit(m, ".", 1);
		rd->at_bol = false;
		break;
	case HOLD_DOT_CR:
		rd->hold = HOLD_NONE;
		if (c == '\n') {
			rd->ended = true;
			return;
		}
		emit(m, ".\r", 2);
		rd->at_bol = false;
		break;
	case HOLD_CR:
		rd->hold = HOLD_NONE;
		if (c != '\n')
			emit(m, "\r", 1);	/* a bare CR stays */
		break;
	case HOLD_NONE:
		break;
	}
	if (c == '.' && rd->at_bol && rd->dot_ends) {
		rd->hold = HOLD_DOT;
		return;
	}
	if (c == '\r') {
		rd->hold = HOLD_CR;
		return;
	}
	emit(m, &c, 1);
	rd->at_bol = c == '\n';
}

static int
read_message(const struct options *o, struct submit_msg *m)
{
	struct stdin_reader rd = { .dot_ends = o->dot_ends, .at_bol = true };
	char buf[8192];
	size_t n, i;

	while (!rd.ended && (n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		for (i = 0; i < n && !rd.ended; i++)
			reader_byte(&rd, m, buf[i]);
	if (!rd.ended && rd.hold == HOLD_CR)
		emit(m, "\r", 1);
	else if (!rd.ended && rd.hold == HOLD_DOT_CR)
		emit(m, ".\r", 2);	/* a "." alone at the very end ends the message, as its line would */
	return ferror(stdin) ? -EIO : 0;
}

static int
send_stdin(const struct options *o, const struct submitter *who, const char *sender)
{
	struct drop_record rec = { .uid = who->uid, .sender = (char *)sender, .extract = o->extract,
		.full_name = (char *)o->full_name, .rcpt = o->rcpt, .nrcpt = o->nrcpt };
	struct submit_msg m;
	char why[1024];
	int r;

	if (o->full_name != NULL)
		for (char *p = rec.full_name; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';	/* no control character reaches a header */
	if (!o->extract && o->nrcpt == 0) {
		submit_print_refusal(stderr, PROG, EDESTADDRREQ,
		    "name the recipients as arguments, or use -t to take them from To:, Cc: and Bcc:");
		return EX_USAGE;
	}
	if ((r = submit_begin(who, &rec, &m)) < 0) {
		snprintf(why, sizeof(why), "cannot create a file in %s/%s: %s", who->cfg->spool_dir, DROP_DIR,
		    strerror(-r));
		submit_print_refusal(stderr, PROG, r == -EINVAL || r == -E2BIG ? EINVAL : EIO, why);
		submit_abort(who, &m);
		return r == -EINVAL || r == -E2BIG ? EX_NOUSER : EX_CANTCREAT;
	}
	if ((r = read_message(o, &m)) < 0) {
		snprintf(why, sizeof(why), "reading the message: %s", strerror(-r));
		submit_print_refusal(stderr, PROG, r, why);
		submit_abort(who, &m);
		return EX_TEMPFAIL;
	}
	if ((r = submit_end(who, &rec, &m, why, sizeof(why))) < 0) {
		submit_print_refusal(stderr, PROG, r, why);
		return submit_exit_code(r);
	}
	if (o->verbose)
		fprintf(stderr, "%s: queued as %s/%s/%s from <%s> for the gateway to pick up\n", PROG,
		    who->cfg->spool_dir, DROP_DIR, m.name, sender);
	return EX_OK;
}

int
main(int argc, char **argv)
{
	char login[64], own[ADDR_MAX], sender[ADDR_MAX];
	struct options o;
	struct submitter who;
	struct cfg cfg;
	int status;

	memset(&o, 0, sizeof(o));
	memset(&cfg, 0, sizeof(cfg));
	memset(&who, 0, sizeof(who));
	who.dirfd = -1;
	status = parse_options(argc, argv, &o);
	if (status == -1 || status == -2 || status == -3) {
		if (o.conf != NULL && setenv("SPOOLGATE_CONF", o.conf, 1) < 0)
			return EX_OSERR;
		if (status == -3)
			return run_tool("spoolgate-newaliases", "newaliases", NULL);
		return run_tool("spoolgate-mailq", "mailq", status == -2 ? "--flush" : NULL);
	}
	if (status != 0 || (status = load_conf(&o, &cfg)) != 0)
		goto out;
	umask(077);
	if ((status = who_submits(&o, &cfg, &who, login, sizeof(login), own, sizeof(own), sender,
	    sizeof(sender))) != 0 || (status = open_drop_dir(&cfg, &who)) != 0)
		goto out;
	status = o.smtp ? sendmail_bs(&who, sender) : send_stdin(&o, &who, sender);
out:
	if (who.dirfd >= 0)
		close(who.dirfd);
	cfg_free(&cfg);
	return status;
}
