/*
 * NAME
 *	pickup - moves what spoolgate-sendmail dropped into the queue
 * DESCRIPTION
 *	See pickup.h.  One thread: poll(2) on an inotify descriptor and an
 *	eventfd that pickup_free() writes, with scan_interval as the timeout.
 *	Every drop goes through pickup_one(): checks, then outbox_submit() or
 *	outbox_reject(), then the drop's removal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/addr.h"
#include "../common/drop.h"
#include "../common/errmap.h"
#include "../common/log.h"
#include "../common/outbox.h"
#include "../common/unixuser.h"
#include "pickup.h"

struct pickup {
	const struct cfg       *cfg;
	struct spool	       *spool;
	struct aliases_source  *aliases;	/* main.c's, or NULL */
	int			dirfd;		/* drop/ */
	int			inotify_fd;
	int			stop_fd;	/* eventfd */
	pthread_t		thread;
	bool			started;
};

/* A refusal: what a check found, as an errno and a sentence. */
struct verdict {
	int	err;
	char	why[512];
};

static int
verdict(struct verdict *v, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
verdict(struct verdict *v, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->why, sizeof(v->why), fmt, ap);
	va_end(ap);
	v->err = err;
	return err;
}

int
pickup_prepare_dir(const struct cfg *cfg, uid_t uid, gid_t gid)
{
	struct group *gr = getgrnam(cfg->drop_group);
	struct stat st;
	int root, fd, r = 0;

	if ((root = open(cfg->spool_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (mkdirat(root, DROP_DIR, 0700) < 0 && errno != EEXIST)
		r = -errno;
	else if ((fd = openat(root, DROP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = -errno;
	else {
		if (fchown(fd, uid, gr != NULL ? gr->gr_gid : gid) < 0 ||
		    fchmod(fd, gr != NULL ? DROP_DIR_MODE : 0700) < 0)
			r = -errno;
		if (r == 0 && gr != NULL && fstat(root, &st) == 0 && (st.st_mode & S_IXOTH) == 0 &&
		    fchmod(root, (st.st_mode & 07777) | S_IXOTH) < 0)
			r = -errno;
		close(fd);
	}
	close(root);
	if (r < 0)
		log_error("drop-dir", "path=%s/%s error=\"%s\"", cfg->spool_dir, DROP_DIR, strerror(-r));
	else if (gr == NULL)
		log_warn("drop-dir", "path=%s/%s group=%s error=\"no such group\" action=\"drop/ is the spool user's "
		    "alone: only root can use spoolgate-sendmail\" hint=\"groupadd --system %s (./run does)\"",
		    cfg->spool_dir, DROP_DIR, cfg->drop_group, cfg->drop_group);
	else
		log_info("drop-dir", "path=%s/%s group=%s mode=1730", cfg->spool_dir, DROP_DIR, cfg->drop_group);
	return r;
}

static void
remove_drop(struct pickup *p, const char *name)
{
	if (unlinkat(p->dirfd, name, 0) < 0 && errno == EISDIR)
		(void)unlinkat(p->dirfd, name, AT_REMOVEDIR);
	if (fsync(p->dirfd) < 0)
		log_warn("pickup-error", "drop=%s error=\"fsync drop/: %s\"", name, strerror(errno));
}

/* An invalid drop: into failed/ with why, then away from drop/. */
static void
reject(struct pickup *p, const char *name, int fd, off_t keep, uid_t uid, const struct verdict *v)
{
	const struct errmap_reply *r = errmap_from_errno(-v->err);
	char quoted[3 * DROP_NAME_MAX + 1], origin[4 * DROP_NAME_MAX], id[SPOOL_ID_MAX], qwhy[1100], reply[300];
	int e;

	outbox_quote_name(name, quoted, sizeof(quoted));
	snprintf(origin, sizeof(origin), "sendmail drop/%s uid=%lu", quoted, (unsigned long)uid);
	id[0] = '\0';
	e = outbox_reject(p->spool, fd, keep, origin, -v->err, v->why, id);
	snprintf(reply, sizeof(reply), "%d %s %s", r->code, r->esc, r->text);
	log_warn("pickup-rejected", "drop=%s uid=%lu errno=%s reply=\"%s\" why=%s%s%s", quoted, (unsigned long)uid,
	    strerrorname_np(-v->err) ? strerrorname_np(-v->err) : "?", reply, log_quote(qwhy, sizeof(qwhy), v->why),
	    e == 0 ? " id=" : " kept=no error=", e == 0 ? id : strerror(-e));
	if (e == 0)
		remove_drop(p, name);
}

/* What of a refused drop is kept in failed/: at most what a good one may hold. */
static off_t
keep_bound(const struct pickup *p, off_t size)
{
	unsigned long long bound = (unsigned long long)DROP_RECORD_MAX + p->cfg->max_message_size;

	return size < 0 ? 0 : (unsigned long long)size > bound ? (off_t)bound : size;
}

/* The checks of the file itself, before a byte of it is believed. */
static int
check_file(struct pickup *p, int fd, struct stat *st, struct verdict *v)
{
	unsigned long long bound = (unsigned long long)DROP_RECORD_MAX + p->cfg->max_message_size;

	if (fstat(fd, st) < 0)
		return verdict(v, -errno, "cannot stat the drop: %s", strerror(errno));
	if (!S_ISREG(st->st_mode))
		return verdict(v, -EBADMSG, "not a regular file");
	if (st->st_nlink != 1)
		return verdict(v, -EPERM, "a drop with %lu links (a hard link to another file?)",
		    (unsigned long)st->st_nlink);
	if ((unsigned long long)st->st_size > bound)
		return verdict(v, -EFBIG, "drop of %lld bytes is over the limit of %llu (max_message_size and "
		    "its record)", (long long)st->st_size, bound);
	return 0;
}

/* The record, and whether its owner may say what it says. */
static int
check_record(struct pickup *p, int fd, const struct stat *st, struct drop_record *rec, char *login,
    size_t loginlen, char *own, size_t ownlen, struct verdict *v)
{
	size_t want = (size_t)st->st_size < DROP_RECORD_MAX ? (size_t)st->st_size : DROP_RECORD_MAX;
	char *head = malloc(want + 1), allowed[ADDR_MAX];
	ssize_t got;
	int r;

	if (head == NULL)
		return verdict(v, -ENOMEM, "out of memory");
	got = spool_pread_all(fd, head, want, 0);
	r = got < 0 ? (int)got : drop_record_parse(head, (size_t)got, rec);
	free(head);
	if (r < 0)
		return verdict(v, r == -ENOMEM ? r : -EBADMSG, "the drop's record does not parse (drop.h): "
		    "not written by spoolgate-sendmail");
	unixuser_login(st->st_uid, login, loginlen);
	if (rec->uid != (unsigned long)st->st_uid)
		return verdict(v, -EPERM, "the drop claims uid %lu but belongs to uid %lu (%s): forged",
		    rec->uid, (unsigned long)st->st_uid, login);
	if (unixuser_sender(p->cfg, login, NULL, own, ownlen) < 0)
		return verdict(v, -EINVAL, "%s@%s is too long for an address", login, cfg_sender_domain(p->cfg));
	if (unixuser_sender(p->cfg, login, rec->sender, allowed, sizeof(allowed)) == -EPERM)
		return verdict(v, -EPERM, "sender <%s> is not %s's to use (uid %lu is not in [sendmail] "
		    "trusted_users; its sender is <%s>)", rec->sender, login, (unsigned long)st->st_uid, own);
	return 0;
}

static void
pickup_one(struct pickup *p, const char *name)
{
	char login[UNIXUSER_LOGIN_MAX], own[ADDR_MAX], origin[32 + UNIXUSER_LOGIN_MAX], id[SPOOL_ID_MAX], quoted[3 * DROP_NAME_MAX + 1], qfrom[600];
	struct drop_record rec = { 0 };
	struct verdict v = { 0 };
	struct outbox_policy pol;
	struct stat st;
	int fd, r;

	outbox_quote_name(name, quoted, sizeof(quoted));
	if (fstatat(p->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;		/* gone already */
	if (!S_ISREG(st.st_mode)) {
		/* never opened: a device or a FIFO could act on an open, a link point anywhere */
		verdict(&v, -EBADMSG, "%s, not a drop", S_ISLNK(st.st_mode) ? "a symbolic link" :
		    S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
		reject(p, name, -1, 0, st.st_uid, &v);
		return;
	}
	if ((fd = openat(p->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
		int err = errno;

		verdict(&v, -err, "cannot open the drop: %s", strerror(err));
		if (err == EACCES)	/* a mode that shuts the gateway out: no drop of sendmail's */
			reject(p, name, -1, 0, st.st_uid, &v);
		return;
	}
	r = check_file(p, fd, &st, &v);
	if (r == 0)
		r = check_record(p, fd, &st, &rec, login, sizeof(login), own, sizeof(own), &v);
	if (r < 0) {
		reject(p, name, fd, keep_bound(p, st.st_size), st.st_uid, &v);
		goto out;
	}
	drop_policy(&rec, p->cfg, own, &pol);
	snprintf(origin, sizeof(origin), "sendmail uid=%lu user=%s", (unsigned long)st.st_uid, login);
	const struct outbox_source src = {
		.origin = origin, .name = NULL, .uid = st.st_uid, .user = login, .hostname = p->cfg->hostname,
		.max_size = p->cfg->max_message_size, .start = rec.msg_start, .via = "sendmail", .policy = &pol,
		.aliases = p->aliases, .cfg = p->cfg,
	};
	r = outbox_submit(p->spool, fd, &src, id, v.why, sizeof(v.why));
	if (r == 0) {
		log_info("pickup-queued", "id=%s drop=%s uid=%lu user=%s from=<%s> rcpt_args=%zu size=%lld", id, quoted,
		    (unsigned long)st.st_uid, login, log_quote(qfrom, sizeof(qfrom), rec.sender), rec.nrcpt,
		    (long long)(st.st_size - rec.msg_start));
		remove_drop(p, name);
	} else if (errmap_from_errno(-r)->code < 500) {
		log_warn("pickup-deferred", "drop=%s uid=%lu error=\"%s\" action=\"left in drop/ for the next scan\"",
		    quoted, (unsigned long)st.st_uid, v.why);
	} else {
		v.err = r;
		reject(p, name, fd, st.st_size, st.st_uid, &v);
	}
out:
	drop_record_free(&rec);
	close(fd);
}

/* A ".name" is being written; one whose writer died long ago goes. */
static void
maybe_stale(struct pickup *p, const char *name)
{
	char quoted[3 * DROP_NAME_MAX + 1];
	struct stat st;

	if (fstatat(p->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || time(NULL) - st.st_mtime < DROP_STALE_SECONDS)
		return;
	outbox_quote_name(name, quoted, sizeof(quoted));
	if (unlinkat(p->dirfd, name, 0) == 0)
		log_info("pickup-stale", "drop=%s uid=%lu age=%lld", quoted, (unsigned long)st.st_uid,
		    (long long)(time(NULL) - st.st_mtime));
}

static void
pickup_scan(struct pickup *p)
{
	struct dirent *de;
	DIR *d;
	int fd = dup(p->dirfd);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		log_error("pickup-error", "error=\"cannot list drop/: %s\"", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.')
			maybe_stale(p, de->d_name);
		else
			pickup_one(p, de->d_name);
	}
	closedir(d);
}

/* inotify names each drop renamed into place; a lost event means a scan. */
static void
pickup_events(struct pickup *p)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool rescan = false;
	ssize_t n;

	while ((n = read(p->inotify_fd, buf, sizeof(buf))) > 0) {
		for (const char *q = buf; q < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)q;

			if (ev->mask & IN_Q_OVERFLOW)
				rescan = true;
			else if (ev->len > 0 && ev->name[0] != '.')
				pickup_one(p, ev->name);
			q += sizeof(*ev) + ev->len;
		}
	}
	if (rescan)
		pickup_scan(p);
}

static void *
pickup_main(void *arg)
{
	struct pickup *p = arg;
	struct pollfd fds[2] = { { .fd = p->stop_fd, .events = POLLIN }, { .fd = p->inotify_fd, .events = POLLIN } };
	int timeout = (int)(p->cfg->scan_interval > INT_MAX / 1000 ? INT_MAX : p->cfg->scan_interval * 1000);
	int n;

	pickup_scan(p);		/* what waited while smtpd was stopped */
	for (;;) {
		n = poll(fds, p->inotify_fd >= 0 ? 2 : 1, p->inotify_fd >= 0 ? timeout : 1000);
		if (n < 0 && errno != EINTR) {
			log_error("pickup-error", "error=\"poll: %s\"", strerror(errno));
			break;
		}
		if (n > 0 && (fds[0].revents & POLLIN))
			break;
		if (n > 0 && (fds[1].revents & POLLIN))
			pickup_events(p);
		else if (n == 0)
			pickup_scan(p);
	}
	return NULL;
}

static int
open_drop_dir(struct pickup *p)
{
	int root = spool_dirfd(p->spool, SPOOL_DIR_ROOT);

	if ((p->dirfd = openat(root, DROP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
		return 0;
	if (errno != ENOENT || mkdirat(root, DROP_DIR, 0700) < 0)
		return -errno;
	p->dirfd = openat(root, DROP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return p->dirfd < 0 ? -errno : 0;
}

int
pickup_new(const struct cfg *cfg, struct spool *spool, struct aliases_source *aliases,
    struct pickup **out)
{
	char path[PATH_MAX];
	struct pickup *p;
	int r;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->cfg = cfg;
	p->spool = spool;
	p->aliases = aliases;
	p->dirfd = p->inotify_fd = p->stop_fd = -1;
	if ((r = open_drop_dir(p)) < 0) {
		log_error("pickup-error", "path=%s/%s error=\"%s\"", spool_path(spool), DROP_DIR, strerror(-r));
		pickup_free(p);
		return r;
	}
	if ((p->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		r = -errno;
		pickup_free(p);
		return r;
	}
	snprintf(path, sizeof(path), "%s/%s", spool_path(spool), DROP_DIR);
	if ((p->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(p->inotify_fd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		log_warn("pickup-error", "error=\"inotify on drop/: %s\" action=\"scanning drop/ every second\"",
		    strerror(errno));
		if (p->inotify_fd >= 0)
			close(p->inotify_fd);
		p->inotify_fd = -1;
	}
	if ((r = pthread_create(&p->thread, NULL, pickup_main, p)) != 0) {
		pickup_free(p);
		return -r;
	}
	p->started = true;
	*out = p;
	return 0;
}

void
pickup_free(struct pickup *p)
{
	uint64_t one = 1;

	if (p == NULL)
		return;
	if (p->started) {
		if (write(p->stop_fd, &one, sizeof(one)) != sizeof(one))
			log_error("pickup-error", "error=\"cannot wake the thread: %s\"", strerror(errno));
		pthread_join(p->thread, NULL);
	}
	if (p->inotify_fd >= 0)
		close(p->inotify_fd);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	if (p->dirfd >= 0)
		close(p->dirfd);
	free(p);
}
