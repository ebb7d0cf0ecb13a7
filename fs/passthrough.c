/*
 * NAME
 *	passthrough - FUSE passthrough on libfuse 3.14 (passthrough.h)
 * DESCRIPTION
 *	The hooks: pt_read() notes, per thread, which request the thread is
 *	about to handle; pt_writev() amends the reply to that request when it
 *	is an INIT or an OPEN that asked for passthrough.  Everything else
 *	passes through untouched, notifications (unique 0) and replies sent
 *	later from other threads (waiters.h) included.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "passthrough.h"

/*
 * FUSE protocol 7.40 (kernel 6.9), which Debian 12's <linux/fuse.h> (7.38)
 * does not have: the INIT flag, the open flag, the two ioctls, and the two
 * fields that took unused space (fuse_init_out.max_stack_depth in
 * unused[0], fuse_open_out.backing_id in padding).
 */
#define PT_FUSE_PASSTHROUGH	(1ULL << 37)
#define PT_FOPEN_PASSTHROUGH	(1u << 7)
/* what the kernel accepts beside FOPEN_PASSTHROUGH (FOPEN_PASSTHROUGH_MASK) */
#define PT_FOPEN_ALLOWED	(FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES | FOPEN_NOFLUSH)
#define PT_STACK_DEPTH		1	/* the spool's filesystem is not a stacked one */

struct pt_backing_map {
	int32_t		fd;
	uint32_t	flags;
	uint64_t	padding;
};

#define PT_IOC_BACKING_OPEN	_IOW(FUSE_DEV_IOC_MAGIC, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE	_IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

_Static_assert(sizeof(struct fuse_open_out) == 16, "fuse_open_out: fh, open_flags, backing_id");
_Static_assert(offsetof(struct fuse_init_out, unused) == 36, "fuse_init_out.max_stack_depth");

#define PT_BUCKETS		256

/* One backing file: an inode of the mount with passthrough opens. */
struct pt_backing {
	uint64_t		ino;
	int32_t			id;		/* the kernel's */
	unsigned long		opens;		/* handles of ino that use it */
	struct pt_backing      *next;		/* in its bucket */
};

struct passthrough {
	int			devfd;		/* constant: the session's /dev/fuse */
	bool			wanted;		/* constant: configured and CAP_SYS_ADMIN */
	atomic_bool		active;		/* set once, by INIT's reply */
	pthread_mutex_t		lock;
	struct pt_backing      *bucket[PT_BUCKETS];	/* protected by lock */
	unsigned long		opens, files, failed, open_now;	/* protected by lock */
	bool			failure_logged;	/* protected by lock */
};

/* The request this thread reads and handles (the loop's workers do both). */
struct pt_request {
	uint64_t		unique;
	uint32_t		opcode;
	uint64_t		kernel_flags;	/* INIT: what the kernel offers */
	int32_t			backing_id;	/* OPEN: set by passthrough_open() */
};

static _Thread_local struct pt_request pt_current;
static struct passthrough *pt_session;	/* the hooks' state: one session per process */

/* ---- the hooks ---- */

static uint64_t
pt_init_kernel_flags(const void *buf, size_t len)
{
	const struct fuse_init_in *in =
	    (const void *) ((const char *) buf + sizeof(struct fuse_in_header));
	uint64_t flags;

	if (len < sizeof(struct fuse_in_header) + sizeof *in)
		return 0;
	flags = in->flags;
	if (flags & FUSE_INIT_EXT)
		flags |= (uint64_t) in->flags2 << 32;
	return flags;
}

static ssize_t
pt_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *in = buf;

	(void) userdata;
	if (n >= (ssize_t) sizeof *in) {
		pt_current = (struct pt_request) { .unique = in->unique, .opcode = in->opcode };
		if (in->opcode == FUSE_INIT)
			pt_current.kernel_flags = pt_init_kernel_flags(buf, (size_t) n);
	}
	return n;
}

static ssize_t
pt_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len, unsigned int flags,
	       void *userdata)
{
	(void) userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

/* Why INIT does not agree to passthrough, or NULL when it does. */
static const char *
pt_init_refusal(const struct passthrough *pt, const struct fuse_init_out *out)
{
	if (!pt->wanted)
		return "not-wanted";
	if (!(pt_current.kernel_flags & FUSE_INIT_EXT) ||
	    !(pt_current.kernel_flags & PT_FUSE_PASSTHROUGH))
		return "kernel";
	if (out->flags & FUSE_WRITEBACK_CACHE)
		return "writeback-cache";
	return NULL;
}

static void
pt_amend_init(struct fuse_init_out *out)
{
	const char *refusal = pt_init_refusal(pt_session, out);

	if (refusal != NULL) {
		log_info("passthrough", "state=off reason=%s", refusal);
		return;
	}
	out->flags |= FUSE_INIT_EXT;
	out->flags2 |= (uint32_t) (PT_FUSE_PASSTHROUGH >> 32);
	out->unused[0] = PT_STACK_DEPTH;	/* max_stack_depth */
	atomic_store(&pt_session->active, true);
	log_info("passthrough", "state=on");
}

static void
pt_amend_open(struct fuse_open_out *out)
{
	out->open_flags = (out->open_flags & PT_FOPEN_ALLOWED) | PT_FOPEN_PASSTHROUGH;
	out->padding = (uint32_t) pt_current.backing_id;	/* backing_id */
}

/* Whether iov is the successful reply to this thread's request, with an argument of len. */
static bool
pt_is_reply_to_current(const struct iovec *iov, int count, size_t len)
{
	const struct fuse_out_header *h = iov[0].iov_base;

	return count == 2 && iov[0].iov_len == sizeof *h && h->unique != 0 &&
	    h->unique == pt_current.unique && h->error == 0 && iov[1].iov_len >= len;
}

static ssize_t
pt_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct iovec amended[2];
	union {
		struct fuse_init_out	init;
		struct fuse_open_out	open;
	} arg;

	(void) userdata;
	if (pt_current.opcode == FUSE_INIT && pt_is_reply_to_current(iov, count, sizeof arg.init)) {
		memcpy(&arg.init, iov[1].iov_base, sizeof arg.init);
		pt_amend_init(&arg.init);
	} else if (pt_current.opcode == FUSE_OPEN && pt_current.backing_id > 0 &&
	    pt_is_reply_to_current(iov, count, sizeof arg.open) && iov[1].iov_len == sizeof arg.open) {
		memcpy(&arg.open, iov[1].iov_base, sizeof arg.open);
		pt_amend_open(&arg.open);
	} else
		return writev(fd, iov, count);
	pt_current.backing_id = 0;
	amended[0] = iov[0];
	amended[1] = (struct iovec) { .iov_base = &arg, .iov_len = iov[1].iov_len };
	return writev(fd, amended, 2);
}

/* ---- backing files ---- */

static struct pt_backing **
pt_slot(struct passthrough *pt, uint64_t ino)
{
	struct pt_backing **p = &pt->bucket[ino % PT_BUCKETS];

	while (*p != NULL && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* A new backing file for ino, registered with the kernel: its id or -errno. */
static int
pt_backing_open(struct passthrough *pt, struct pt_backing **slot, uint64_t ino, int fd)
{
	struct pt_backing_map map = { .fd = fd };
	struct pt_backing *b = calloc(1, sizeof *b);
	int id;

	if (b == NULL)
		return -ENOMEM;
	if ((id = ioctl(pt->devfd, PT_IOC_BACKING_OPEN, &map)) <= 0) {
		int r = id < 0 ? -errno : -EPROTO;

		free(b);
		return r;
	}
	b->ino = ino;
	b->id = id;
	*slot = b;
	pt->files++;
	return id;
}

static void
pt_backing_close(struct passthrough *pt, struct pt_backing **slot)
{
	struct pt_backing *b = *slot;
	uint32_t id = (uint32_t) b->id;

	if (ioctl(pt->devfd, PT_IOC_BACKING_CLOSE, &id) < 0)
		log_warn("passthrough-failed", "op=close ino=%llu error=%s",
		    (unsigned long long) b->ino, strerror(errno));
	*slot = b->next;
	free(b);
}

static void
pt_note_failure(struct passthrough *pt, uint64_t ino, int r)
{
	pt->failed++;
	if (pt->failure_logged)
		return;
	pt->failure_logged = true;
	log_warn("passthrough-failed", "op=open ino=%llu error=%s (read through the daemon;"
	    " logged once)", (unsigned long long) ino, strerror(-r));
}

int
passthrough_open(struct passthrough *pt, uint64_t ino, int fd)
{
	struct pt_backing **slot;
	int id;

	if (pt == NULL || !passthrough_active(pt))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&pt->lock);
	slot = pt_slot(pt, ino);
	if (*slot != NULL)
		id = (*slot)->id;
	else if ((id = pt_backing_open(pt, slot, ino, fd)) < 0) {
		pt_note_failure(pt, ino, id);
		pthread_mutex_unlock(&pt->lock);
		return id;
	}
	(*slot)->opens++;
	pt->opens++;
	pt->open_now++;
	pthread_mutex_unlock(&pt->lock);
	pt_current.backing_id = id;
	return 0;
}

void
passthrough_release(struct passthrough *pt, uint64_t ino)
{
	struct pt_backing **slot;

	pthread_mutex_lock(&pt->lock);
	slot = pt_slot(pt, ino);
	if (*slot != NULL) {
		pt->open_now--;
		if (--(*slot)->opens == 0)
			pt_backing_close(pt, slot);
	}
	pthread_mutex_unlock(&pt->lock);
}

bool
passthrough_active(struct passthrough *pt)
{
	return atomic_load(&pt->active);
}

/* ---- set-up ---- */

/* FUSE_DEV_IOC_BACKING_OPEN requires CAP_SYS_ADMIN (in the initial namespace). */
static bool
pt_has_sys_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

int
passthrough_install(struct fuse_session *se, bool wanted, struct passthrough **out)
{
	static const struct fuse_custom_io io = {
		.read = pt_read, .writev = pt_writev, .splice_send = pt_splice_send,
	};
	struct passthrough *pt = calloc(1, sizeof *pt);
	int r;

	if (pt == NULL)
		return -ENOMEM;
	pt->devfd = fuse_session_fd(se);
	pt->wanted = wanted && pt_has_sys_admin();
	if (wanted && !pt->wanted)
		log_info("passthrough", "state=off reason=no-cap_sys_admin");
	pthread_mutex_init(&pt->lock, NULL);
	pt_session = pt;
	if ((r = fuse_session_custom_io(se, &io, pt->devfd)) < 0) {
		pt_session = NULL;
		pthread_mutex_destroy(&pt->lock);
		free(pt);
		return r;
	}
	*out = pt;
	return 0;
}

void
passthrough_free(struct passthrough *pt)
{
	if (pt == NULL)
		return;
	if (atomic_load(&pt->active))
		log_info("passthrough-stats", "opens=%lu backing_files=%lu failed=%lu open_now=%lu",
		    pt->opens, pt->files, pt->failed, pt->open_now);
	for (size_t i = 0; i < PT_BUCKETS; i++)
		while (pt->bucket[i] != NULL) {
			struct pt_backing *b = pt->bucket[i];

			pt->bucket[i] = b->next;
			free(b);
		}
	if (pt_session == pt)
		pt_session = NULL;
	pthread_mutex_destroy(&pt->lock);
	free(pt);
}
