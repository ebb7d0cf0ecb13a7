/*
 * NAME
 *	waiters - FUSE requests answered later (see waiters.h)
 * DESCRIPTION
 *	One list of waiting requests under one mutex.  Whoever learns that a
 *	waiter may be done (a reader that asks, the spool watcher, the
 *	deadline thread, libfuse's interrupt callback) takes the lock, decides
 *	with waiter_check(), moves the decided waiters to a local list with
 *	their answer, lets the lock go and only then answers them
 *	(waiters_answer_all()): no FUSE reply is sent under w->lock.
 *
 *	No lost wake-up: a reader looks at new/ and, when it is empty, joins
 *	the list under the lock; the watcher's call comes after the rename or
 *	link that it reports and takes the same lock, so it either happened
 *	before the look (the look saw the message) or finds the waiter.
 *
 *	Interrupts: libfuse calls waiters_interrupted() with the request's own
 *	lock held, and fuse_req_interrupt_func() takes that lock, so it is
 *	called before w->lock is taken; the waiter then joins the list only if
 *	fuse_req_interrupted() (which takes the session's lock, never ours) is
 *	still false under w->lock, so an interrupt that came before is seen
 *	and one that comes after finds the waiter.  The callback finds its
 *	waiter by the request, never by a pointer it was given: the waiter may
 *	have been answered and freed while the interrupt arrived (libfuse keeps
 *	the request itself alive during the callback).
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "envelope.h"
#include "errmap.h"
#include "log.h"
#include "queue.h"
#include "spool.h"

#include "waiters.h"

#define WAITERS_LOCATE_TRIES	3	/* a record may move while we look */

enum waiter_kind {
	WAITER_NEXT,		/* a READ of inbox/<mailbox>/.next */
	WAITER_OUTCOME		/* a FLUSH of outbox/wait/<name> */
};

/* The answer of a .next open file: protected by waiters.lock once it waits. */
struct waiters_reader {
	char			mailbox[NAME_MAX + 1];
	long			timeout;		/* seconds, -1: forever */
	bool			answered;
	char			line[NAME_MAX + 2];	/* "<name>\n" */
	size_t			len;
};

struct waiter {
	enum waiter_kind	kind;
	fuse_req_t		req;
	bool			forever;
	struct timespec		deadline;	/* CLOCK_MONOTONIC */
	/* WAITER_NEXT */
	struct waiters_reader  *reader;
	size_t			size;
	off_t			off;
	/* WAITER_OUTCOME */
	char			id[SPOOL_ID_MAX];
	/* the answer, once decided */
	int			err;		/* 0: data below (NEXT) or success */
	char			data[NAME_MAX + 2];
	size_t			datalen;
	struct waiter	       *next;
};

/*
 * Lock order: a request's lock (libfuse, around waiters_interrupted()),
 * then lock.  Nothing here takes a request's or the session's lock while
 * holding lock except fuse_req_interrupted() (the session's, never held
 * by libfuse when it calls us).
 */
struct waiters {
	pthread_mutex_t		lock;
	pthread_cond_t		wake;		/* the thread: a new deadline, or stop */
	struct spool	       *spool;		/* constant; thread-safe */
	bool			keep_sent;	/* constant */
	struct waiter	       *head;		/* protected by lock */
	size_t			count;		/* protected by lock */
	bool			stopping;	/* protected by lock */
	bool			started;	/* the thread that starts and stops it */
	pthread_t		thread;
};

/* ------------------------------------------------------------- clocks */

static struct timespec
waiters_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static bool
waiters_before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static void
waiter_set_deadline(struct waiter *wt, long seconds)
{
	wt->forever = seconds < 0;
	wt->deadline = waiters_now();
	if (!wt->forever)
		wt->deadline.tv_sec += seconds;
}

/* --------------------------------------------------------- .next: names */

bool
waiters_next_name(const char *name, long *timeout)
{
	const size_t base = sizeof WAITERS_NEXT_NAME - 1;
	const char *digits = name + base + 1;
	size_t n;
	long t = 0;

	if (strncmp(name, WAITERS_NEXT_NAME, base) != 0)
		return false;
	if (name[base] == '\0') {
		*timeout = -1;
		return true;
	}
	n = strspn(digits, "0123456789");
	if (name[base] != '.' || n == 0 || n > 7 || digits[n] != '\0')
		return false;
	for (size_t i = 0; i < n; i++)
		t = t * 10 + (digits[i] - '0');
	if (t > WAITERS_TIMEOUT_MAX)
		return false;
	*timeout = t;
	return true;
}

struct waiters_reader *
waiters_reader_new(const char *mailbox, long timeout)
{
	struct waiters_reader *r;

	if (strlen(mailbox) > NAME_MAX || (r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	strcpy(r->mailbox, mailbox);
	r->timeout = timeout;
	return r;
}

void
waiters_reader_free(struct waiters_reader *r)
{
	free(r);
}

/* --------------------------------------------------- .next: the oldest */

/*
 * Maildir names start with the delivery time: "<sec>.M<usec>P<pid>..."
 * (spoolgate, Dovecot, Postfix's "<sec>.V...": microseconds 0).
 */
static void
waiters_maildir_time(const char *name, unsigned long long *sec, unsigned long long *usec)
{
	char *end;

	*sec = strtoull(name, &end, 10);
	if (end == name)
		*sec = ULLONG_MAX;	/* not a Maildir name: after the others */
	*usec = end[0] == '.' && end[1] == 'M' ? strtoull(end + 2, NULL, 10) : 0;
}

static bool
waiters_older(const char *a, const char *b)
{
	unsigned long long as, au, bs, bu;

	waiters_maildir_time(a, &as, &au);
	waiters_maildir_time(b, &bs, &bu);
	if (as != bs)
		return as < bs;
	if (au != bu)
		return au < bu;
	return strcmp(a, b) < 0;
}

/* A name that one line can carry: no control character (a newline would cut it). */
static bool
waiters_name_fits_a_line(const char *name)
{
	for (const unsigned char *p = (const unsigned char *) name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static bool
waiters_is_message(int dirfd, const struct dirent *de)
{
	struct stat st;

	if (de->d_name[0] == '.' || strlen(de->d_name) > NAME_MAX ||
	    !waiters_name_fits_a_line(de->d_name))
		return false;
	if (de->d_type == DT_REG)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false;
	return fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* Opens mail/<mailbox>/new, following no symbolic link: a DIR, or NULL with errno. */
static DIR *
waiters_open_new(struct waiters *w, const char *mailbox)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd, sub;
	DIR *d;

	if (mailbox[0] == '.' || strchr(mailbox, '/') != NULL) {
		errno = ENOENT;
		return NULL;
	}
	if ((fd = openat(spool_dirfd(w->spool, SPOOL_DIR_MAIL), mailbox, flags)) < 0)
		return NULL;
	sub = openat(fd, "new", flags);
	(void) close(fd);
	if (sub < 0)
		return NULL;
	if ((d = fdopendir(sub)) == NULL)
		(void) close(sub);
	return d;
}

/* The oldest message in mail/<mailbox>/new into out: 1, 0 (none) or -errno. */
static int
waiters_oldest(struct waiters *w, const char *mailbox, char out[NAME_MAX + 1])
{
	DIR *d = waiters_open_new(w, mailbox);
	struct dirent *de;
	bool found = false;

	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (!waiters_is_message(dirfd(d), de))
			continue;
		if (!found || waiters_older(de->d_name, out)) {
			strcpy(out, de->d_name);
			found = true;
		}
	}
	closedir(d);
	return found ? 1 : 0;
}

/* A read of the reader's line at off: the part of it the request gets. */
static void
waiter_answer_from_line(struct waiter *wt)
{
	const struct waiters_reader *r = wt->reader;
	size_t n = 0;

	if ((size_t) wt->off < r->len)
		n = r->len - (size_t) wt->off < wt->size ? r->len - (size_t) wt->off : wt->size;
	memcpy(wt->data, r->line + (n ? wt->off : 0), n);
	wt->datalen = n;
	wt->err = 0;
}

/* Under lock: 1 when the reader has its answer (into wt), 0 to wait. */
static int
waiter_check_next(struct waiters *w, struct waiter *wt)
{
	struct waiters_reader *r = wt->reader;
	char name[NAME_MAX + 1], qname[2 * NAME_MAX + 8];
	int found;

	if (!r->answered) {
		if ((found = waiters_oldest(w, r->mailbox, name)) < 0) {
			log_warn("wait-next-failed", "mailbox=%s error=%s", r->mailbox,
			    strerror(-found));
			wt->err = found == -ENOENT ? ENOENT : EIO;
			return 1;
		}
		if (found == 0)
			return 0;
		r->len = (size_t) snprintf(r->line, sizeof r->line, "%s\n", name);
		r->answered = true;
		log_debug("wait-next", "mailbox=%s name=%s", r->mailbox,
		    log_quote(qname, sizeof qname, name));
	}
	waiter_answer_from_line(wt);
	return 1;
}

/* -------------------------------------------- outbox/wait/: the outcome */

/* The errno of the first refused recipient of failed/<id>: EIO when none. */
static int
waiters_failed_errno(struct waiters *w, const char *id)
{
	struct envelope env;
	int err = EIO;

	if (envelope_read_at(spool_dirfd(w->spool, SPOOL_DIR_FAILED), id, &env) < 0)
		return EIO;
	for (size_t i = 0; i < env.nrcpt; i++)
		if (env.rcpt[i].state == RCPT_FAILED && env.rcpt[i].reply != NULL) {
			err = errmap_errno_from_reply_text(env.rcpt[i].reply);
			break;
		}
	envelope_free(&env);
	return err > 0 ? err : EIO;
}

/* Where the record of id is; -ENOENT only when it was missing at every look. */
static int
waiters_locate(struct waiters *w, const char *id)
{
	int where = -ENOENT;

	for (int i = 0; i < WAITERS_LOCATE_TRIES && where == -ENOENT; i++)
		where = queue_locate(w->spool, id);
	return where;
}

/* Under lock: 1 when the submission's fate is known (wt->err), 0 to wait. */
static int
waiter_check_outcome(struct waiters *w, struct waiter *wt)
{
	switch (waiters_locate(w, wt->id)) {
	case SPOOL_DIR_SENT:
		wt->err = 0;
		break;
	case SPOOL_DIR_FAILED:
		wt->err = waiters_failed_errno(w, wt->id);
		break;
	case -ENOENT:
		if (w->keep_sent)
			return 0;	/* removed by hand: only the deadline tells */
		wt->err = 0;		/* delivered and not kept */
		break;
	default:
		return 0;		/* queued, claimed, deferred: wait */
	}
	log_info("wait-outcome", "id=%s errno=%s", wt->id,
	    wt->err ? strerrorname_np(wt->err) : "0");
	return 1;
}

/* ---------------------------------------------------- the waiting list */

static int
waiter_check(struct waiters *w, struct waiter *wt)
{
	return wt->kind == WAITER_NEXT ? waiter_check_next(w, wt) : waiter_check_outcome(w, wt);
}

static void
waiters_unlink(struct waiters *w, struct waiter **pp)
{
	struct waiter *wt = *pp;

	*pp = wt->next;
	w->count--;
	wt->next = NULL;
}

/* Under lock: moves every waiter that want() picks and check() decides to *done. */
static void
waiters_collect(struct waiters *w, bool (*want)(const struct waiter *, const void *),
		const void *arg, struct waiter **done)
{
	for (struct waiter **pp = &w->head; *pp != NULL; ) {
		struct waiter *wt = *pp;

		if (want(wt, arg) && waiter_check(w, wt) == 1) {
			waiters_unlink(w, pp);
			wt->next = *done;
			*done = wt;
		} else
			pp = &wt->next;
	}
}

static void
waiter_answer(struct waiter *wt)
{
	if (wt->err != 0)
		fuse_reply_err(wt->req, wt->err);
	else if (wt->kind == WAITER_NEXT)
		fuse_reply_buf(wt->req, wt->data, wt->datalen);
	else
		fuse_reply_err(wt->req, 0);
	free(wt);
}

/* Not under lock: answers and frees a list made by waiters_collect(). */
static void
waiters_answer_all(struct waiter *done)
{
	while (done != NULL) {
		struct waiter *next = done->next;

		waiter_answer(done);
		done = next;
	}
}

/*
 * libfuse, with the request's lock held: the caller was interrupted.
 * data is the struct waiters; the waiter is found by its request.
 */
static void
waiters_interrupted(fuse_req_t req, void *data)
{
	struct waiters *w = data;
	struct waiter *found = NULL;

	pthread_mutex_lock(&w->lock);
	for (struct waiter **pp = &w->head; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->req == req) {
			found = *pp;
			waiters_unlink(w, pp);
			break;
		}
	pthread_mutex_unlock(&w->lock);
	if (found == NULL)
		return;		/* answered already, or not yet waiting (see waiters_wait) */
	log_debug("wait-interrupted", "kind=%s", found->kind == WAITER_NEXT ? "next" : "outcome");
	found->err = EINTR;
	waiter_answer(found);
}

/* Answers wt now if it is decided, else keeps it until it is (takes wt). */
static void
waiters_wait(struct waiters *w, struct waiter *wt)
{
	bool now = true;

	fuse_req_interrupt_func(wt->req, waiters_interrupted, w);
	pthread_mutex_lock(&w->lock);
	if (waiter_check(w, wt) == 1)
		;				/* decided: answered below */
	else if (w->stopping)
		wt->err = ECONNABORTED;
	else if (fuse_req_interrupted(wt->req))
		wt->err = EINTR;
	else if (!wt->forever && !waiters_before(waiters_now(), wt->deadline))
		wt->err = ETIMEDOUT;		/* .next.0: looked once */
	else if (w->count >= WAITERS_MAX)
		wt->err = ENFILE;
	else {
		wt->next = w->head;
		w->head = wt;
		w->count++;
		now = false;
		pthread_cond_signal(&w->wake);	/* a deadline that may be the nearest */
	}
	pthread_mutex_unlock(&w->lock);
	if (now)
		waiter_answer(wt);
}

void
waiters_read(struct waiters *w, struct waiters_reader *r, fuse_req_t req, size_t size, off_t off)
{
	struct waiter *wt = calloc(1, sizeof *wt);

	if (wt == NULL)
		return (void) fuse_reply_err(req, ENOMEM);
	wt->kind = WAITER_NEXT;
	wt->req = req;
	wt->reader = r;
	wt->size = size;
	wt->off = off;
	waiter_set_deadline(wt, r->timeout);
	/* the line was answered already, or a read past it: no wait */
	pthread_mutex_lock(&w->lock);
	if (r->answered || off > 0) {
		if (r->answered)
			waiter_answer_from_line(wt);
		pthread_mutex_unlock(&w->lock);
		return waiter_answer(wt);	/* datalen 0 past the line: end of file */
	}
	pthread_mutex_unlock(&w->lock);
	waiters_wait(w, wt);
}

void
waiters_outcome(struct waiters *w, fuse_req_t req, const char *id, unsigned timeout)
{
	struct waiter *wt = calloc(1, sizeof *wt);

	if (wt == NULL)
		return (void) fuse_reply_err(req, ENOMEM);
	wt->kind = WAITER_OUTCOME;
	wt->req = req;
	snprintf(wt->id, sizeof wt->id, "%s", id);
	waiter_set_deadline(wt, (long) timeout);
	waiters_wait(w, wt);
}

/* ------------------------------------------------ news from the spool */

struct waiters_news {
	const char	       *mailbox;	/* inbox/<mailbox>, or NULL */
	const char	       *id;		/* queue, sent, failed: <id>, or NULL */
};

static bool
waiters_want_news(const struct waiter *wt, const void *arg)
{
	const struct waiters_news *n = arg;

	if (n->mailbox == NULL && n->id == NULL)
		return true;	/* anything may have changed */
	if (wt->kind == WAITER_NEXT)
		return n->mailbox != NULL && strcmp(wt->reader->mailbox, n->mailbox) == 0;
	return n->id != NULL && strcmp(wt->id, n->id) == 0;
}

void
waiters_spool_changed(struct waiters *w, const char *dir, const char *name)
{
	struct waiters_news news = { NULL, NULL };
	struct waiter *done = NULL;

	if (dir != NULL && strncmp(dir, "inbox/", 6) == 0)
		news.mailbox = dir + 6;
	else if (dir != NULL && (strcmp(dir, "queue") == 0 || strcmp(dir, "sent") == 0 ||
	    strcmp(dir, "failed") == 0))
		news.id = name;
	else if (dir != NULL)
		return;		/* a mailbox coming or going: its readers hear from new/ */
	pthread_mutex_lock(&w->lock);
	if (w->head != NULL)
		waiters_collect(w, waiters_want_news, &news, &done);
	pthread_mutex_unlock(&w->lock);
	waiters_answer_all(done);
}

/* ---------------------------------------------------- deadlines, rescans */

static bool
waiters_want_expired(const struct waiter *wt, const void *arg)
{
	const struct timespec *now = arg;

	return !wt->forever && !waiters_before(*now, wt->deadline);
}

/* Under lock: every waiter past its deadline to *done, answered ETIMEDOUT. */
static void
waiters_expire(struct waiters *w, struct timespec now, struct waiter **done)
{
	for (struct waiter **pp = &w->head; *pp != NULL; ) {
		struct waiter *wt = *pp;

		if (waiters_want_expired(wt, &now)) {
			waiters_unlink(w, pp);
			wt->err = ETIMEDOUT;
			if (wt->kind == WAITER_NEXT)
				log_debug("wait-timeout", "kind=next mailbox=%s", wt->reader->mailbox);
			else	/* a writer told its message did not leave: news */
				log_info("wait-timeout", "kind=outcome id=%s", wt->id);
			wt->next = *done;
			*done = wt;
		} else
			pp = &wt->next;
	}
}

/* Under lock: the nearest deadline, capped at the next rescan. */
static struct timespec
waiters_next_wakeup(const struct waiters *w, struct timespec rescan)
{
	struct timespec t = rescan;

	for (const struct waiter *wt = w->head; wt != NULL; wt = wt->next)
		if (!wt->forever && waiters_before(wt->deadline, t))
			t = wt->deadline;
	return t;
}

static void *
waiters_thread(void *arg)
{
	struct waiters *w = arg;
	struct timespec rescan = waiters_now();
	struct waiters_news all = { NULL, NULL };

	rescan.tv_sec += WAITERS_RESCAN_SECONDS;
	pthread_mutex_lock(&w->lock);
	while (!w->stopping) {
		struct timespec now = waiters_now(), until;
		struct waiter *done = NULL;

		if (!waiters_before(now, rescan)) {
			waiters_collect(w, waiters_want_news, &all, &done);
			rescan = now;
			rescan.tv_sec += WAITERS_RESCAN_SECONDS;
		}
		waiters_expire(w, now, &done);
		if (done != NULL) {
			pthread_mutex_unlock(&w->lock);
			waiters_answer_all(done);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		until = waiters_next_wakeup(w, rescan);
		(void) pthread_cond_timedwait(&w->wake, &w->lock, &until);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* ------------------------------------------------------------ lifetime */

int
waiters_new(struct spool *spool, bool keep_sent, struct waiters **out)
{
	struct waiters *w = calloc(1, sizeof *w);
	pthread_condattr_t ca;

	if (w == NULL)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	w->spool = spool;
	w->keep_sent = keep_sent;
	*out = w;
	return 0;
}

int
waiters_start(struct waiters *w)
{
	int r;

	pthread_mutex_lock(&w->lock);
	w->stopping = false;
	pthread_mutex_unlock(&w->lock);
	if ((r = pthread_create(&w->thread, NULL, waiters_thread, w)) != 0)
		return -r;
	w->started = true;
	return 0;
}

void
waiters_stop(struct waiters *w)
{
	struct waiter *done;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->wake);
	done = w->head;
	w->head = NULL;
	w->count = 0;
	pthread_mutex_unlock(&w->lock);
	for (struct waiter *wt = done; wt != NULL; wt = wt->next)
		wt->err = ECONNABORTED;
	waiters_answer_all(done);
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = false;
}

void
waiters_free(struct waiters *w)
{
	if (w == NULL)
		return;
	waiters_stop(w);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
