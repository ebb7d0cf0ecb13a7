/*
 * NAME
 *	spoolgate-fs - the mail spool as a filesystem
 * SYNOPSIS
 *	spoolgate-fs -c FILE [-f] [-d] [-n] [-o fuse-options]
 *	spoolgate-fs -h | -V
 * DESCRIPTION
 *	Mounts the spool of the configuration FILE at its [fs] mountpoint
 *	(created if missing) with the libfuse3 low-level API: inbox/, outbox/,
 *	queue/, sent/ and failed/ (see fs/spoolfs.h and README.md).
 *
 *	It always stays in the foreground (the process is managed by ./run,
 *	the tests or a service manager); -f is accepted for habit.  Log lines
 *	go to standard error; "event=mounted mountpoint=..." says the mount is
 *	ready.  SIGTERM, SIGINT and SIGHUP unmount and exit 0; so does an
 *	unmount from outside (fusermount3 -u).  Under systemd (Type=notify,
 *	etc/systemd/spoolgate-fs.service) it sends READY=1 with the mount
 *	and STOPPING=1 when the session loop ends (notify.h).
 *
 *	The daemon holds no state the spool does not have, except outbox
 *	files being written and the names of those submitted in the last
 *	minute: it may be killed and restarted at any time.  It
 *	does not run spool recovery (spoolgate-smtpd does), so it never
 *	disturbs a commit in progress.  A mount left behind by a killed
 *	instance ("Transport endpoint is not connected") is detached at start.
 *
 *	The mount uses default_permissions (the kernel checks modes), and
 *	allow_other when [fs] allow_other = yes.  As root it sets the mount's
 *	read-ahead to FS_READAHEAD_KB (raise_readahead() says why).  When started as root it
 *	stays root: files it creates in the spool are given to the spool owner
 *	by the spool library.  Root is kept for /proc/<pid>/fdinfo of writers
 *	of every uid (which close ends an outbox message), the unmount at exit
 *	and the read-ahead; docs/architecture.md ("What spoolgate-fs keeps root
 *	for") says what dropping to the spool user after the mount broke.  Of
 *	root's capabilities it keeps those five after the mount and gives up
 *	every other one, from its bounding set too, and sets no_new_privs
 *	(drop_unneeded_capabilities(); event=capabilities-dropped).
 *	Users' access to the mount never depends on the daemon's privileges:
 *	with allow_other it is checked per request from the caller's uid
 *	(fs/access.h).
 * OPTIONS
 *	-c FILE	the configuration file (required)
 *	-d	debug: log level debug and libfuse's request trace
 *	-f	foreground (always)
 *	-n	check the configuration, print errors, exit 0 or 1
 *	-o OPTS	more mount options for libfuse (comma-separated)
 * DIAGNOSTICS
 *	Exit status 0 after a clean unmount, 1 on any error (configuration,
 *	spool, /dev/fuse missing, mount refused), 2 on a usage error.
 * THREADS
 *	libfuse's multi-threaded fuse_session_loop_mt() (a worker per request
 *	in flight, FS_IDLE_THREADS kept idle), and the spool watcher's thread;
 *	spoolfs.h says what each may touch.
 */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include <fuse_lowlevel.h>

#include "aliases.h"
#include "cfg.h"
#include "log.h"
#include "notify.h"
#include "spool.h"

#include "spoolfs.h"

#define PROG		"spoolgate-fs"
#define FUSE_DEVICE	"/dev/fuse"
#define MAX_FUSE_ARGS	32
#define FS_READAHEAD_KB	512	/* see raise_readahead() */
#define FS_IDLE_THREADS	16	/* above the 8 concurrent writers issue 8 asks for */

struct fs_options {
	const char     *config;
	bool		debug;
	bool		check_only;
	const char     *fuse_opts[MAX_FUSE_ARGS];
	size_t		n_fuse_opts;
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: %s -c FILE [-f] [-d] [-n] [-o fuse-options]\n"
	    "       %s -h | -V\n"
	    "  -c FILE  configuration file (mountpoint and spool from it)\n"
	    "  -d       debug log and libfuse request trace\n"
	    "  -f       stay in the foreground (always the case)\n"
	    "  -n       check the configuration and exit\n"
	    "  -o OPTS  extra mount options\n", PROG, PROG);
}

/* 0 to go on, else the exit status. */
static int
parse_args(int argc, char **argv, struct fs_options *o)
{
	int c;

	memset(o, 0, sizeof *o);
	while ((c = getopt(argc, argv, "c:dfno:hV")) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'd':
			o->debug = true;
			break;
		case 'f':
			break;
		case 'n':
			o->check_only = true;
			break;
		case 'o':
			if (o->n_fuse_opts >= MAX_FUSE_ARGS) {
				fprintf(stderr, "%s: too many -o options (at most %d)\n", PROG,
				    MAX_FUSE_ARGS);
				return 2;
			}
			o->fuse_opts[o->n_fuse_opts++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s %s\n", PROG, SPOOLGATE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || o->config == NULL) {
		fprintf(stderr, "%s: %s\n", PROG, optind != argc ?
		    "unexpected argument (the mountpoint comes from the configuration)" :
		    "-c FILE is required");
		usage(stderr);
		return 2;
	}
	return -1;
}

static int
check_fuse_device(void)
{
	struct stat st;

	if (stat(FUSE_DEVICE, &st) == 0 && S_ISCHR(st.st_mode)) {
		/* libfuse opens it before it tries fusermount3 */
		if (access(FUSE_DEVICE, R_OK | W_OK) == 0)
			return 0;
		fprintf(stderr, "%s: %s is not usable by uid %u (mode %04o): run as root, "
		    "or make the device mode 0666 as distributions do\n", PROG, FUSE_DEVICE,
		    (unsigned) geteuid(), (unsigned) (st.st_mode & 07777));
		return -1;
	}
	fprintf(stderr, "%s: %s is missing: load the fuse kernel module (modprobe fuse), "
	    "or give the container the device (docker run --device /dev/fuse "
	    "--cap-add SYS_ADMIN)\n", PROG, FUSE_DEVICE);
	return -1;
}

/* mkdir -p, each new directory 0755. */
static int
make_dirs(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = saved;
			if (saved == '\0')
				return 0;
		}
	}
}

/* A killed instance leaves a dead mount behind; detach it lazily. */
static int
detach_stale_mount(const char *mnt)
{
	pid_t pid;
	int status;

	if (geteuid() == 0)
		return umount2(mnt, MNT_DETACH) < 0 ? -errno : 0;
	if ((pid = fork()) < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt, (char *) NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBUSY;
}

/* Undoes the octal escapes of /proc/self/mountinfo ("\040" is a space). */
static void
unescape_mountinfo(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char) ((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else
			*out++ = *s;
	}
	*out = '\0';
}

/*
 * Is a live FUSE filesystem mounted exactly at mnt (an absolute path)?
 * dev (may be NULL) gets its device, "major:minor", the name of its
 * backing device info in /sys/class/bdi.  Reading mountinfo asks nothing
 * of the mount.
 */
static bool
fuse_mounted_at(const char *mnt, char dev[32])
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		char point[PATH_MAX], majmin[32], *sep = strstr(line, " - ");

		if (sep == NULL || sscanf(line, "%*s %*s %31s %*s %4095s", majmin, point) != 2)
			continue;
		unescape_mountinfo(point);
		found = strcmp(point, mnt) == 0 && strncmp(sep + 3, "fuse", 4) == 0;
		if (found && dev != NULL)
			snprintf(dev, 32, "%s", majmin);
	}
	free(line);
	fclose(f);
	return found;
}

/*
 * The kernel reads ahead on the mount in requests of read_ahead_kb (128
 * by default).  FS_READAHEAD_KB makes cold reads of large messages about
 * a third faster here; 1024 (the largest request, max_pages = 256) is
 * several times slower: libfuse splices a reply through a pipe that may
 * not grow past /proc/sys/fs/pipe-max-size (1 MiB, the reply's header
 * makes it more) and copies instead (docs/benchmarks.md).  Root only;
 * otherwise the default stays.  After INIT, whose reply lowers it to
 * what the kernel proposed: at the first request (spoolfs_when_ready).
 */
static void
raise_readahead(void *arg)
{
	const char *mnt = arg;
	char dev[32], path[96];
	int fd;

	if (!fuse_mounted_at(mnt, dev))
		return;
	snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0 ||
	    dprintf(fd, "%d\n", FS_READAHEAD_KB) < 0) {
		log_debug("readahead-unchanged", "path=%s error=%s", path, strerror(errno));
	}
	if (fd >= 0)
		(void) close(fd);
}

/* Creates the mountpoint, clears a dead mount, refuses a live one. */
static int
prepare_mountpoint(const char *mnt, char *abs, size_t abslen)
{
	struct stat st;
	int r;

	if (stat(mnt, &st) < 0 && errno == ENOTCONN) {
		if ((r = detach_stale_mount(mnt)) < 0) {
			fprintf(stderr, "%s: %s: a dead mount is in the way and cannot be "
			    "detached: %s (try: fusermount3 -uz %s)\n", PROG, mnt, strerror(-r), mnt);
			return -1;
		}
		log_warn("stale-mount-detached", "mountpoint=%s", mnt);
	}
	if ((r = make_dirs(mnt)) < 0) {
		fprintf(stderr, "%s: cannot create mountpoint %s: %s\n", PROG, mnt, strerror(-r));
		return -1;
	}
	if (stat(mnt, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: mountpoint %s is not a directory\n", PROG, mnt);
		return -1;
	}
	if (realpath(mnt, abs) == NULL || strlen(abs) >= abslen) {
		fprintf(stderr, "%s: mountpoint %s: %s\n", PROG, mnt, strerror(errno));
		return -1;
	}
	if (fuse_mounted_at(abs, NULL)) {
		fprintf(stderr, "%s: a FUSE filesystem is already mounted at %s "
		    "(another spoolgate-fs?); unmount it first\n", PROG, abs);
		return -1;
	}
	return 0;
}

/* Each outbox file holds a descriptor: take every one we may. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static struct fuse_session *
new_session(const struct fs_options *o, const struct cfg *cfg, struct spoolfs *fs)
{
	char *argv[2 * MAX_FUSE_ARGS + 4];
	int argc = 0;
	struct fuse_args args;
	struct fuse_session *se;

	argv[argc++] = (char *) PROG;
	argv[argc++] = (char *) "-o";
	argv[argc++] = (char *) (cfg->allow_other ?
	    "default_permissions,fsname=spoolgate,subtype=spoolgate,allow_other" :
	    "default_permissions,fsname=spoolgate,subtype=spoolgate");
	for (size_t i = 0; i < o->n_fuse_opts; i++) {
		argv[argc++] = (char *) "-o";
		argv[argc++] = (char *) o->fuse_opts[i];
	}
	if (o->debug)
		argv[argc++] = (char *) "-d";
	argv[argc] = NULL;
	args = (struct fuse_args) FUSE_ARGS_INIT(argc, argv);
	se = fuse_session_new(&args, spoolfs_ops(), sizeof *spoolfs_ops(), fs);
	fuse_opt_free_args(&args);
	return se;
}

/*
 * What root keeps once the filesystem is mounted (docs/architecture.md,
 * "What spoolgate-fs keeps root for"; the unit's CapabilityBoundingSet is
 * the same list): umount2 at exit, /proc/<pid>/fdinfo of writers of every
 * uid, the spool of the [spool] user and the files given to it.
 */
static const int fs_kept_caps[] = {
	CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER,
};

static bool
cap_is_kept(int cap)
{
	for (size_t i = 0; i < sizeof fs_kept_caps / sizeof fs_kept_caps[0]; i++)
		if (fs_kept_caps[i] == cap)
			return true;
	return false;
}

/*
 * As root, after the mount: every other capability goes, from the bounding
 * set too (setuid, kill, module loading, raw I/O, ...), and no exec may
 * give one back.  Capabilities are per thread: this runs before any thread
 * starts (the watcher, libfuse's workers), which inherit the result.
 * Failing is logged, not fatal: a seccomp filter may forbid it, and the
 * service manager's bounding set applies then.
 */
static void
drop_unneeded_capabilities(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	int last = CAP_LAST_CAP;
	char mask[32];
	FILE *f;

	if (geteuid() != 0)
		return;
	if ((f = fopen("/proc/sys/kernel/cap_last_cap", "re")) != NULL) {
		if (fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	for (int cap = 0; cap <= last; cap++)
		if (!cap_is_kept(cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
			log_warn("capabilities-kept", "cap=%d error=%s", cap, strerror(errno));
			return;
		}
	memset(data, 0, sizeof data);
	for (size_t i = 0; i < sizeof fs_kept_caps / sizeof fs_kept_caps[0]; i++) {
		int cap = fs_kept_caps[i];

		data[cap / 32].effective |= 1u << (cap % 32);
		data[cap / 32].permitted |= 1u << (cap % 32);
	}
	if (syscall(SYS_capset, &hdr, data) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_warn("capabilities-kept", "error=%s", strerror(errno));
		return;
	}
	snprintf(mask, sizeof mask, "%08x%08x", data[1].effective, data[0].effective);
	log_info("capabilities-dropped", "kept=sys_admin,sys_ptrace,dac_override,chown,fowner mask=%s", mask);
}

/* READY=1 for systemd (Type=notify): the mount is there to use. */
static void
notify_mounted(const char *mnt)
{
	char status[PATH_MAX + 16];

	snprintf(status, sizeof(status), "mounted at %s", mnt);
	notify_ready(status);
}

/* Mounts and serves until a signal or an unmount; the exit status. */
static int
serve(const struct fs_options *o, const struct cfg *cfg, struct spool *spool,
      const char *mnt)
{
	struct spoolfs *fs = NULL;
	struct fuse_session *se = NULL;
	/* one /dev/fuse descriptor; up to FS_IDLE_THREADS workers kept idle */
	struct fuse_loop_config loop_config = { .clone_fd = 0, .max_idle_threads = FS_IDLE_THREADS };
	int r, status = 1;

	if ((r = spoolfs_new(cfg, spool, &fs)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, strerror(-r));
		return 1;
	}
	if ((se = new_session(o, cfg, fs)) == NULL) {
		fprintf(stderr, "%s: libfuse refused the mount options (see above)\n", PROG);
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "%s: cannot install signal handlers\n", PROG);
		goto out;
	}
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "%s: cannot mount %s (see the libfuse message above)\n", PROG, mnt);
		fuse_remove_signal_handlers(se);
		goto out;
	}
	spoolfs_when_ready(fs, raise_readahead, (void *) mnt);
	if ((r = spoolfs_passthrough_start(fs, se)) < 0)
		log_warn("passthrough", "state=off reason=%s (reads go through the daemon)", strerror(-r));
	drop_unneeded_capabilities();
	if ((r = spoolfs_watch_start(fs, se)) < 0) {
		fprintf(stderr, "%s: cannot watch the spool %s: %s\n", PROG, spool_path(spool),
		    strerror(-r));
		fuse_session_unmount(se);
		fuse_remove_signal_handlers(se);
		goto out;
	}
	log_info("mounted", "mountpoint=%s spool=%s", mnt, spool_path(spool));
	notify_mounted(mnt);
	r = fuse_session_loop_mt(se, &loop_config);
	spoolfs_watch_stop(fs);
	notify_stopping();
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	if (r < 0) {
		log_error("session-failed", "mountpoint=%s error=%s", mnt, strerror(-r));
	} else {
		/* r is the signal that ended the loop, or 0 for an outside unmount */
		log_info("unmounted", "mountpoint=%s signal=%s", mnt, r > 0 ? sigabbrev_np(r) : "none");
		status = 0;
	}
out:
	if (se != NULL)
		fuse_session_destroy(se);
	spoolfs_free(fs);
	return status;
}

int
main(int argc, char **argv)
{
	struct fs_options o;
	struct spool *spool = NULL;
	char err[1024], mnt[PATH_MAX];
	struct cfg cfg;
	int r, status;

	if ((status = parse_args(argc, argv, &o)) >= 0)
		return status;
	if ((r = cfg_load(o.config, &cfg, err, sizeof err)) < 0) {
		fprintf(stderr, "%s: %s\n", PROG, err);
		return 1;
	}
	if (o.check_only) {
		struct aliases_source *aliases;
		struct stat sst;
		uid_t owner = stat(cfg.spool_dir, &sst) == 0 ? sst.st_uid : geteuid();

		/* the aliases table loads, as spoolfs_new() will load it */
		if (aliases_source_configured(&cfg, owner, &aliases, err, sizeof err) < 0) {
			fprintf(stderr, "%s: %s\n", PROG, err);
			cfg_free(&cfg);
			return 1;
		}
		aliases_source_free(aliases);
		printf("%s: %s: configuration ok (spool %s, mountpoint %s)\n", PROG, cfg.path,
		    cfg.spool_dir, cfg.mountpoint);
		cfg_free(&cfg);
		return 0;
	}
	log_init("fs", o.debug ? LOG_LVL_DEBUG : (enum log_level) cfg.log_level);
	status = 1;
	if (check_fuse_device() < 0)
		goto out;
	if ((r = spool_open(cfg.spool_dir, &spool)) < 0) {
		fprintf(stderr, "%s: cannot open the spool %s: %s\n", PROG, cfg.spool_dir,
		    strerror(-r));
		goto out;
	}
	spool_set_hostname(spool, cfg.hostname);	/* the name in tmp/ that smtpd's recovery knows */
	raise_fd_limit();
	/* A file size limit (ulimit -f) is EFBIG from write(2) and fallocate(2), not a death. */
	signal(SIGXFSZ, SIG_IGN);
	if (prepare_mountpoint(cfg.mountpoint, mnt, sizeof mnt) < 0)
		goto out;
	status = serve(&o, &cfg, spool, mnt);
out:
	spool_close(spool);
	cfg_free(&cfg);
	return status;
}
