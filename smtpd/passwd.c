/*
 * NAME
 *	spoolgate-passwd - manage the SMTP server's users (AUTH credentials)
 * SYNOPSIS
 *	spoolgate-passwd (-c CONFIG | -f FILE) add [--scram-only | --crypt-only]
 *	    [--iterations N] [--from ADDR[,ADDR...]] [--cram-md5] [--stdin] USER
 *	spoolgate-passwd (-c CONFIG | -f FILE) del USER
 *	spoolgate-passwd (-c CONFIG | -f FILE) list
 * DESCRIPTION
 *	Edits the users file of userdb.h: -f names it, -c reads its path from
 *	the configuration ([smtpd] auth_users).  add creates the user or
 *	gives it a new password: the SCRAM-SHA-256 keys (salted, --iterations,
 *	4096 by default) and a yescrypt hash (crypt(3)), or only one of them
 *	with --scram-only or --crypt-only; --from sets the addresses the user
 *	may send as (restrict_sender; "" clears them), otherwise they stay.
 *	The password is read from the terminal, twice, without echo; with
 *	--stdin one line is read from standard input (for scripts).  It is
 *	never stored, printed or logged, except with --cram-md5: then the
 *	password itself is stored too (cram-md5=, base64, which hides
 *	nothing), a password equivalent for CRAM-MD5 on listeners with
 *	auth_cram_md5 = yes (fetchmail's ODMR mode knows no other mechanism);
 *	a warning says so on stderr.  An add without --cram-md5 removes a
 *	stored CRAM-MD5 secret.  del removes a user.  list prints
 *	each user, which secrets it has (never the secrets) and its senders;
 *	with -c also whether the daemon derived a SCRAM key at a password
 *	transition (<spool>/auth/scram-derived).
 *
 *	The file is rewritten atomically (a temporary beside it, fsync,
 *	rename, directory fsync), mode 0600, under an exclusive lock of its
 *	directory, keeping its owner; a new file made as root with -c is
 *	given to the [spool] user, whom the daemon reads it as on SIGHUP.
 *	Send SIGHUP to spoolgate-smtpd to use the change.
 * DIAGNOSTICS
 *	Exit 0 on success, 1 on an error (one line on stderr naming the file
 *	and what is wrong), 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <gsasl.h>

#include "../common/cfg.h"
#include "../common/sasl.h"
#include "../common/userdb.h"

#define PROG		"spoolgate-passwd"
#define PASSWORD_MAX	1024		/* bytes, NUL included */
#define DERIVED_FILE	"auth/scram-derived"

enum kinds { KIND_BOTH, KIND_SCRAM, KIND_CRYPT };

struct opts {
	const char     *config, *file, *from;
	enum kinds	kinds;
	unsigned	iterations;
	bool		from_stdin;
	bool		cram;		/* --cram-md5: store the password equivalent too */
	char		users_path[PATH_MAX];
	char		derived_path[PATH_MAX];	/* "" without -c */
	char		spool_user[256];	/* "" without -c */
};

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: %s (-c CONFIG | -f FILE) add [--scram-only | --crypt-only] [--iterations N]\n"
	    "           [--from ADDR[,ADDR...]] [--cram-md5] [--stdin] USER\n"
	    "       %s (-c CONFIG | -f FILE) del USER\n"
	    "       %s (-c CONFIG | -f FILE) list\n"
	    "  -c CONFIG     the users file is [smtpd] auth_users of CONFIG\n"
	    "  -f FILE       the users file itself\n"
	    "  --cram-md5    also store the password itself for CRAM-MD5 (a password equivalent)\n"
	    "  --stdin       read the password from one line of standard input, not the terminal\n",
	    PROG, PROG, PROG);
}

/* One line from fp without its line end; -EINVAL when empty or too long. */
static int
read_line(FILE *fp, char *buf, size_t len)
{
	size_t n;

	if (fgets(buf, (int)len, fp) == NULL)
		return -EINVAL;
	n = strcspn(buf, "\r\n");
	if (buf[n] == '\0' && n + 1 == len) {
		explicit_bzero(buf, len);
		return -E2BIG;
	}
	buf[n] = '\0';
	return n > 0 ? 0 : -EINVAL;
}

/* Echo goes off before the prompt shows: what is typed after it is kept, never echoed. */
static int
prompt_tty(FILE *tty, const char *prompt, char *buf, size_t len)
{
	struct termios old, quiet;
	int r;

	if (tcgetattr(fileno(tty), &old) < 0)
		return -errno;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(fileno(tty), TCSAFLUSH, &quiet) < 0)
		return -errno;
	fprintf(tty, "%s", prompt);
	fflush(tty);
	r = read_line(tty, buf, len);
	tcsetattr(fileno(tty), TCSANOW, &old);
	return r;
}

/* The new password: twice from the terminal, or once from stdin. */
static int
read_password(const struct opts *o, const char *user, char *pw, size_t len)
{
	char again[PASSWORD_MAX], prompt[300];
	FILE *tty;
	int r;

	if (o->from_stdin) {
		if ((r = read_line(stdin, pw, len)) < 0)
			fprintf(stderr, "%s: %s\n", PROG, r == -E2BIG ? "password longer than 1023 bytes" :
			    "no password on standard input (one line expected)");
		return r;
	}
	if ((tty = fopen("/dev/tty", "r+")) == NULL) {
		fprintf(stderr, "%s: no terminal to ask the password on: use --stdin\n", PROG);
		return -ENOTTY;
	}
	snprintf(prompt, sizeof(prompt), "New password for %s: ", user);
	if ((r = prompt_tty(tty, prompt, pw, len)) == 0 &&
	    (r = prompt_tty(tty, "Again: ", again, sizeof(again))) == 0 && strcmp(pw, again) != 0)
		r = -EAGAIN;
	explicit_bzero(again, sizeof(again));
	fclose(tty);
	if (r < 0)
		fprintf(stderr, "%s: %s\n", PROG, r == -EAGAIN ? "the passwords differ; nothing changed" :
		    r == -E2BIG ? "password longer than 1023 bytes" : "empty password; nothing changed");
	return r;
}

/* The users file as it is now, or an empty set when there is none yet. */
static int
load_users(const char *path, bool may_be_missing, struct userdb **db)
{
	char err[1024];
	int r = userdb_load(path, db, err, sizeof(err));

	if (r == -ENOENT && may_be_missing)
		return userdb_new(db);
	if (r < 0)
		fprintf(stderr, "%s: %s\n", PROG, err);
	return r;
}

/* A new file made by root with -c belongs to the [spool] user, who reads it on SIGHUP. */
static void
give_new_file_away(const struct opts *o, bool existed)
{
	struct passwd *pw;

	if (existed || geteuid() != 0 || o->spool_user[0] == '\0' || (pw = getpwnam(o->spool_user)) == NULL)
		return;
	if (chown(o->users_path, pw->pw_uid, pw->pw_gid) < 0)
		fprintf(stderr, "%s: %s: chown to %s: %s\n", PROG, o->users_path, o->spool_user, strerror(errno));
}

static int
secrets_of(const struct opts *o, const char *pw, struct sasl_scram_secrets *scram, char *hash, size_t len)
{
	int r = 0;

	if (o->kinds != KIND_CRYPT && (r = sasl_scram_secrets_make(pw, o->iterations, NULL, scram)) < 0) {
		fprintf(stderr, "%s: the password cannot be used for SCRAM (SASLprep refused it): %s\n", PROG,
		    strerror(-r));
		return r;
	}
	if (o->kinds != KIND_SCRAM && (r = userdb_crypt_make(pw, hash, len)) < 0)
		fprintf(stderr, "%s: crypt(3) could not hash the password: %s\n", PROG, strerror(-r));
	return r;
}

/* A password CRAM-MD5 can use as stored: the file's limits, and SASLprep
 * leaves it as it is (the server prepares it, fetchmail does not). */
static int
cram_check(const char *pw)
{
	char *prepped = NULL;
	int r = -EINVAL;

	if (strlen(pw) >= USERDB_CRAM_MAX || gsasl_saslprep(pw, 0, &prepped, NULL) != GSASL_OK)
		return r;
	if (strcmp(prepped, pw) == 0)
		r = 0;
	for (const char *p = pw; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			r = -EINVAL;
	explicit_bzero(prepped, strlen(prepped));
	gsasl_free(prepped);
	return r;
}

static int
cmd_add(const struct opts *o, struct userdb *db, const char *user)
{
	char pw[PASSWORD_MAX], hash[USERDB_CRYPT_MAX], err[512];
	struct sasl_scram_secrets scram;
	int r;

	if (strlen(user) > USERDB_NAME_MAX || strpbrk(user, " \t") != NULL || user[0] == '#' || user[0] == '\0') {
		fprintf(stderr, "%s: %s: not a user name (1 to 255 printable characters, no blank, no leading #)\n",
		    PROG, user);
		return -EINVAL;
	}
	if ((r = read_password(o, user, pw, sizeof(pw))) < 0)
		return r;
	r = secrets_of(o, pw, &scram, hash, sizeof(hash));
	if (r == 0 && o->cram && (r = cram_check(pw)) < 0)
		fprintf(stderr, "%s: --cram-md5: the password must have at most 255 bytes, no control character, and be "
		    "unchanged by SASLprep (GNU SASL's CRAM-MD5 prepares it; clients do not)\n", PROG);
	if (r == 0 && (r = userdb_set(db, user, o->kinds != KIND_CRYPT ? &scram : NULL,
	    o->kinds != KIND_SCRAM ? hash : NULL)) < 0)
		fprintf(stderr, "%s: %s: %s\n", PROG, user, r == -EINVAL ? "not a user name" : strerror(-r));
	if (r == 0 && o->cram && (r = userdb_set_cram(db, user, pw)) < 0)
		fprintf(stderr, "%s: %s: --cram-md5: %s\n", PROG, user, strerror(-r));
	if (r == 0 && o->cram)
		fprintf(stderr, "%s: WARNING: %s: --cram-md5 stores a password-equivalent secret in %s: whoever can "
		    "read that file can log in as %s with CRAM-MD5; use it only for ODMR clients (fetchmail) on a "
		    "listener with auth_cram_md5 = yes\n", PROG, user, o->users_path, user);
	explicit_bzero(pw, sizeof(pw));
	if (r == 0 && o->from != NULL && (r = userdb_set_senders(db, user, o->from, err, sizeof(err))) < 0)
		fprintf(stderr, "%s: --from %s: %s\n", PROG, o->from, err);
	explicit_bzero(&scram, sizeof(scram));
	explicit_bzero(hash, sizeof(hash));
	return r;
}

static const char *
crypt_kind(const char *hash)
{
	static const struct { const char *prefix, *name; } kinds[] = {
		{ "$y$", "yescrypt" }, { "$gy$", "gost-yescrypt" }, { "$7$", "scrypt" },
		{ "$2b$", "bcrypt" }, { "$2y$", "bcrypt" }, { "$6$", "sha512crypt" },
		{ "$5$", "sha256crypt" }, { "$1$", "md5crypt" },
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strncmp(hash, kinds[i].prefix, strlen(kinds[i].prefix)) == 0)
			return kinds[i].name;
	return "other";
}

static int
cmd_list(const struct opts *o, const struct userdb *db)
{
	struct userdb *derived = NULL;
	char err[1024];

	if (o->derived_path[0] != '\0' && userdb_load(o->derived_path, &derived, err, sizeof(err)) < 0 &&
	    access(o->derived_path, F_OK) == 0)
		fprintf(stderr, "%s: (derived SCRAM keys not shown) %s\n", PROG, err);
	for (size_t i = 0; i < userdb_count(db); i++) {
		const struct userdb_user *u = userdb_at(db, i);
		struct sasl_scram_secrets s;

		printf("%s", u->name);
		if (u->has_scram)
			printf(" scram-sha-256(%u)", u->scram.iterations);
		else if (derived != NULL && userdb_scram(db, derived, u->name, &s) == 0)
			printf(" scram-sha-256(%u,derived)", s.iterations);
		if (u->crypt != NULL)
			printf(" crypt(%s)", crypt_kind(u->crypt));
		if (u->cram != NULL)
			printf(" cram-md5(password-equivalent)");
		for (size_t k = 0; k < u->nsenders; k++)
			printf("%s%s", k == 0 ? " from=" : ",", u->senders[k]);
		printf("\n");
	}
	userdb_free(derived);
	return 0;
}

/* -c: the users file, the spool user and the derived keys from the configuration. */
static int
paths_from_config(struct opts *o)
{
	struct cfg cfg;
	char err[1024];
	int r = cfg_load(o->config, &cfg, err, sizeof(err));

	if (r < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
	} else if (cfg.auth_users == NULL) {
		fprintf(stderr, "%s: %s: [smtpd] auth_users is not set: name the users file there, or use -f FILE\n",
		    PROG, o->config);
		r = -ENOENT;
	} else {
		snprintf(o->users_path, sizeof(o->users_path), "%s", cfg.auth_users);
		snprintf(o->derived_path, sizeof(o->derived_path), "%s/%s", cfg.spool_dir, DERIVED_FILE);
		snprintf(o->spool_user, sizeof(o->spool_user), "%s", cfg.user != NULL ? cfg.user : "");
	}
	cfg_free(&cfg);
	return r;
}

/* Load, change, write, under an exclusive lock of the file's directory. */
static int
run(struct opts *o, const char *cmd, const char *user)
{
	char dir[PATH_MAX], err[1024];
	struct userdb *db = NULL;
	bool change = strcmp(cmd, "list") != 0, existed;
	int dirfd, r;

	snprintf(dir, sizeof(dir), "%s", o->users_path);
	if ((dirfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    flock(dirfd, change ? LOCK_EX : LOCK_SH) < 0) {
		fprintf(stderr, "%s: %s: %s\n", PROG, dir, strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		return 1;
	}
	existed = access(o->users_path, F_OK) == 0;
	if ((r = load_users(o->users_path, strcmp(cmd, "add") == 0, &db)) < 0)
		goto out;
	if (strcmp(cmd, "list") == 0) {
		r = cmd_list(o, db);
		goto out;
	}
	if (strcmp(cmd, "add") == 0)
		r = cmd_add(o, db, user);
	else if ((r = userdb_del(db, user)) < 0)
		fprintf(stderr, "%s: %s: no such user in %s\n", PROG, user, o->users_path);
	if (r == 0 && (r = userdb_write(o->users_path, db, err, sizeof(err))) < 0)
		fprintf(stderr, "%s: %s\n", PROG, err);
	if (r == 0)
		give_new_file_away(o, existed);
out:
	userdb_free(db);
	close(dirfd);
	return r < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "scram-only", no_argument, NULL, 'S' },
		{ "crypt-only", no_argument, NULL, 'C' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "from", required_argument, NULL, 'F' },
		{ "stdin", no_argument, NULL, 's' },
		{ "cram-md5", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .kinds = KIND_BOTH, .iterations = USERDB_SCRAM_ITER_DEFAULT };
	const char *cmd, *user = NULL;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "c:f:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'f': o.file = optarg; break;
		case 'S': o.kinds = KIND_SCRAM; break;
		case 'C': o.kinds = KIND_CRYPT; break;
		case 'F': o.from = optarg; break;
		case 's': o.from_stdin = true; break;
		case 'M': o.cram = true; break;
		case 'i':
			errno = 0;
			o.iterations = (unsigned)strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || o.iterations < USERDB_SCRAM_ITER_MIN ||
			    o.iterations > USERDB_SCRAM_ITER_MAX) {
				fprintf(stderr, "%s: --iterations: from 4096 to 1000000\n", PROG);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if ((o.config == NULL) == (o.file == NULL) || optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (optind < argc)
		user = argv[optind++];
	if (optind != argc || (strcmp(cmd, "list") == 0) != (user == NULL) ||
	    (strcmp(cmd, "add") != 0 && strcmp(cmd, "del") != 0 && strcmp(cmd, "list") != 0)) {
		usage(stderr);
		return 2;
	}
	if (o.config != NULL && paths_from_config(&o) < 0)
		return 1;
	if (o.file != NULL)
		snprintf(o.users_path, sizeof(o.users_path), "%s", o.file);
	return run(&o, cmd, user);
}
