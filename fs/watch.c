/*
 * NAME
 *	watch - tell spoolgate-fs which names of its view the spool changed
 * DESCRIPTION
 *	See watch.h.  One inotify instance, one thread that polls it and an
 *	eventfd that stops it.  Each watch descriptor maps to what it watches
 *	through a table indexed by the descriptor (the kernel hands them out
 *	as small increasing numbers).  Watches of a mailbox are added when
 *	mail/ reports its directory, and when the mailbox reports its new/ or
 *	cur/; the kernel removes them (IN_IGNORED) when the directory goes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

#include "watch.h"

#define WATCH_MAX_WDS		(1 << 22)	/* table slots: far above max_user_watches */
#define WATCH_NAME_EVENTS	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)
#define WATCH_DIR_FLAGS		(IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

enum watch_kind {
	WATCH_MAIL,		/* mail/: mailboxes */
	WATCH_MAILBOX,		/* mail/<mailbox>/: its new/ and cur/ */
	WATCH_MAILSUB,		/* mail/<mailbox>/new or cur: messages */
	WATCH_RECORDS,		/* queue/, active/ */
	WATCH_OUTCOMES		/* sent/, failed/: a record arriving there left queue/ */
};

struct watch_target {
	enum watch_kind		kind;
	char		       *view;	/* the mount path of the names: "inbox/bob", "queue" */
	char		       *mailbox;	/* WATCH_MAILBOX, WATCH_MAILSUB */
};

/* Only the watch thread touches the table once it runs. */
struct watch {
	struct spool	       *spool;
	watch_fn		fn;
	void		       *arg;
	int			ifd;		/* inotify */
	int			stopfd;		/* eventfd: watch_stop() */
	struct watch_target   **by_wd;
	size_t			nwd;
	bool			failed_logged;
	pthread_t		thread;
};

/*
 * A finished record's parked claim (tmp/<claim>.old, queue.c) stands for
 * it in queue/ until its new record is published; tmp/ is not watched
 * (every ingest passes there), so the publish in sent/ or failed/ is
 * what tells the kernel that queue/<id> is gone.
 */
static const struct watch_records {
	const char	       *dir;	/* in the spool */
	const char	       *view;	/* in the mount */
	enum watch_kind		kind;
} watch_records[] = {
	{ "queue",  "queue",  WATCH_RECORDS },
	{ "active", "queue",  WATCH_RECORDS },
	{ "sent",   "sent",   WATCH_OUTCOMES },
	{ "failed", "failed", WATCH_OUTCOMES },
};

static const char *const watch_maildir_subdirs[] = { "new", "cur" };

static void
watch_target_free(struct watch_target *t)
{
	if (t == NULL)
		return;
	free(t->view);
	free(t->mailbox);
	free(t);
}

static void
watch_forget(struct watch *w, int wd)
{
	if (wd >= 0 && (size_t) wd < w->nwd) {
		watch_target_free(w->by_wd[wd]);
		w->by_wd[wd] = NULL;
	}
}

static int
watch_slot(struct watch *w, int wd)
{
	size_t n;
	struct watch_target **t;

	if (wd < 0 || wd >= WATCH_MAX_WDS)
		return -ERANGE;
	if ((size_t) wd < w->nwd)
		return 0;
	for (n = w->nwd ? w->nwd : 64; n <= (size_t) wd; n *= 2)
		;
	if ((t = reallocarray(w->by_wd, n, sizeof *t)) == NULL)
		return -ENOMEM;
	memset(t + w->nwd, 0, (n - w->nwd) * sizeof *t);
	w->by_wd = t;
	w->nwd = n;
	return 0;
}

static void
watch_failed(struct watch *w, const char *path, int err)
{
	if (w->failed_logged)
		return;
	w->failed_logged = true;
	log_warn("watch-failed", "path=%s error=%s hint=\"names changed there stay cached until "
	    "their timeout; raise fs.inotify.max_user_watches\"", path, strerror(err));
}

/* Watches spool-relative path (its names are shown in view) as kind. */
static int
watch_add(struct watch *w, const char *rel, enum watch_kind kind, const char *view,
	  const char *mailbox, uint32_t mask)
{
	char path[PATH_MAX];
	struct watch_target *t;
	int wd, r;

	/* through the spool's descriptor: the configured path may be relative */
	if (snprintf(path, sizeof path, "/proc/self/fd/%d/%s",
	    spool_dirfd(w->spool, SPOOL_DIR_ROOT), rel) >= (int) sizeof path)
		return -ENAMETOOLONG;
	if ((wd = inotify_add_watch(w->ifd, path, mask | WATCH_DIR_FLAGS)) < 0) {
		r = -errno;
		if (r != -ENOENT && r != -ENOTDIR)	/* gone already: nothing to watch */
			watch_failed(w, path, -r);
		return r;
	}
	if ((r = watch_slot(w, wd)) < 0 || (t = calloc(1, sizeof *t)) == NULL) {
		(void) inotify_rm_watch(w->ifd, wd);
		return r < 0 ? r : -ENOMEM;
	}
	t->kind = kind;
	t->view = strdup(view);
	t->mailbox = mailbox ? strdup(mailbox) : NULL;
	if (t->view == NULL || (mailbox && t->mailbox == NULL)) {
		watch_target_free(t);
		(void) inotify_rm_watch(w->ifd, wd);
		return -ENOMEM;
	}
	watch_forget(w, wd);	/* the same directory again: the same descriptor */
	w->by_wd[wd] = t;
	return 0;
}

static void
watch_add_mailsub(struct watch *w, const char *mailbox, const char *sub)
{
	char rel[PATH_MAX], view[PATH_MAX];

	if (snprintf(rel, sizeof rel, "mail/%s/%s", mailbox, sub) >= (int) sizeof rel ||
	    snprintf(view, sizeof view, "inbox/%s", mailbox) >= (int) sizeof view)
		return;
	(void) watch_add(w, rel, WATCH_MAILSUB, view, mailbox, WATCH_NAME_EVENTS);
}

/* A mailbox: its directory (for new/ and cur/ made later), new/ and cur/. */
static void
watch_add_mailbox(struct watch *w, const char *mailbox)
{
	char rel[PATH_MAX];

	if (mailbox[0] == '.' || snprintf(rel, sizeof rel, "mail/%s", mailbox) >= (int) sizeof rel)
		return;
	if (watch_add(w, rel, WATCH_MAILBOX, "inbox", mailbox, IN_CREATE | IN_MOVED_TO) < 0)
		return;
	for (size_t i = 0; i < 2; i++)
		watch_add_mailsub(w, mailbox, watch_maildir_subdirs[i]);
}

static void
watch_add_existing_mailboxes(struct watch *w)
{
	int fd = openat(spool_dirfd(w->spool, SPOOL_DIR_MAIL), ".",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		(void) close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN))
			watch_add_mailbox(w, de->d_name);
	closedir(d);
}

static bool
watch_is_maildir_subdir(const char *name)
{
	return strcmp(name, "new") == 0 || strcmp(name, "cur") == 0;
}

/* active/<id>@<host>,<pid> is queue/<id> in the mount; view is where. */
static void
watch_record_changed(struct watch *w, const char *view, const char *name)
{
	const char *at = strchr(name, '@');
	char id[NAME_MAX + 1];
	size_t len = at ? (size_t) (at - name) : strlen(name);

	if (len == 0 || len >= sizeof id)
		return;
	memcpy(id, name, len);
	id[len] = '\0';
	w->fn(w->arg, view, id);
}

static void
watch_event(struct watch *w, const struct inotify_event *ev)
{
	const struct watch_target *t;
	bool dir_appears = (ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO));

	if (ev->mask & IN_Q_OVERFLOW) {
		w->fn(w->arg, NULL, NULL);
		return;
	}
	if (ev->wd < 0 || (size_t) ev->wd >= w->nwd || (t = w->by_wd[ev->wd]) == NULL)
		return;
	if (ev->mask & IN_IGNORED) {
		watch_forget(w, ev->wd);
		return;
	}
	if (ev->len == 0 || ev->name[0] == '.')
		return;
	switch (t->kind) {
	case WATCH_MAIL:
		if (dir_appears)
			watch_add_mailbox(w, ev->name);
		if (ev->mask & WATCH_NAME_EVENTS)
			w->fn(w->arg, t->view, ev->name);
		break;
	case WATCH_MAILBOX:
		if (dir_appears && watch_is_maildir_subdir(ev->name))
			watch_add_mailsub(w, t->mailbox, ev->name);
		break;
	case WATCH_MAILSUB:
		w->fn(w->arg, t->view, ev->name);
		break;
	case WATCH_RECORDS:
		watch_record_changed(w, t->view, ev->name);
		break;
	case WATCH_OUTCOMES:
		watch_record_changed(w, t->view, ev->name);
		if (ev->mask & (IN_CREATE | IN_MOVED_TO))
			watch_record_changed(w, "queue", ev->name);
		break;
	}
}

static void *
watch_thread(void *arg)
{
	struct watch *w = arg;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pfd[2] = { { w->ifd, POLLIN, 0 }, { w->stopfd, POLLIN, 0 } };

	for (;;) {
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("watch-stopped", "error=%s", strerror(errno));
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		if ((n = read(w->ifd, buf, sizeof buf)) <= 0)
			continue;
		for (char *p = buf; p < buf + n; ) {
			const struct inotify_event *ev = (const struct inotify_event *) p;

			watch_event(w, ev);
			p += sizeof *ev + ev->len;
		}
	}
}

static void
watch_free(struct watch *w)
{
	for (size_t i = 0; i < w->nwd; i++)
		watch_target_free(w->by_wd[i]);
	free(w->by_wd);
	if (w->ifd >= 0)
		(void) close(w->ifd);
	if (w->stopfd >= 0)
		(void) close(w->stopfd);
	free(w);
}

int
watch_start(struct spool *spool, watch_fn fn, void *arg, struct watch **out)
{
	struct watch *w = calloc(1, sizeof *w);
	int r;

	if (w == NULL)
		return -ENOMEM;
	w->spool = spool;
	w->fn = fn;
	w->arg = arg;
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->ifd < 0 || w->stopfd < 0) {
		r = -errno;
		watch_free(w);
		return r;
	}
	/* mail/ first: a mailbox made while we scan is reported, not missed */
	(void) watch_add(w, "mail", WATCH_MAIL, "inbox", NULL, WATCH_NAME_EVENTS);
	for (size_t i = 0; i < sizeof watch_records / sizeof watch_records[0]; i++)
		(void) watch_add(w, watch_records[i].dir, watch_records[i].kind, watch_records[i].view,
		    NULL, WATCH_NAME_EVENTS);
	watch_add_existing_mailboxes(w);
	if ((r = -pthread_create(&w->thread, NULL, watch_thread, w)) < 0) {
		watch_free(w);
		return r;
	}
	*out = w;
	return 0;
}

void
watch_stop(struct watch *w)
{
	uint64_t one = 1;

	if (w == NULL)
		return;
	if (write(w->stopfd, &one, sizeof one) != sizeof one)
		log_error("watch-stop-failed", "error=%s", strerror(errno));
	pthread_join(w->thread, NULL);
	watch_free(w);
}
