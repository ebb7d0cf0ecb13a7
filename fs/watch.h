/*
 * NAME
 *	watch - tell spoolgate-fs which names of its view the spool changed
 * SYNOPSIS
 *	#include "watch.h"
 *
 *	typedef void (*watch_fn)(void *arg, const char *dir, const char *name);
 *	int watch_start(struct spool *spool, watch_fn fn, void *arg,
 *			struct watch **out);
 *	void watch_stop(struct watch *w);
 * DESCRIPTION
 *	The mount lets the kernel cache committed messages (spoolfs.h); what
 *	changes the spool behind the mount's back (spoolgate-smtpd delivering,
 *	the relay moving records, a mail reader or an rm in the spool) must
 *	reach the kernel's caches.  watch_start() watches with inotify(7):
 *
 *	    mail/                   mailboxes appearing and going
 *	    mail/<mailbox>/         its new/ and cur/ appearing
 *	    mail/<mailbox>/new, cur messages arriving, moving, removed
 *	    queue/ active/          records queued, claimed, given back, done
 *	    sent/ failed/           records arriving, removed
 *
 *	and calls fn, on a thread of its own, once per changed name, with the
 *	name as the mount shows it and the mount path of its directory:
 *	("inbox/bob", "<message>"), ("queue", "<id>") (active/<id>@host,pid is
 *	queue/<id> too), ("sent", "<id>"), ("failed", "<id>"), ("inbox",
 *	"<mailbox>").  Names the mount does not show (dotfiles) are skipped.
 *	When the kernel dropped events (IN_Q_OVERFLOW) fn is called once with
 *	dir and name NULL: anything may have changed.
 *
 *	A name that goes away or is replaced matters to the cache of the name;
 *	any name that comes or goes matters to the cached attributes (times)
 *	of its directory.  The events watched are IN_CREATE, IN_DELETE,
 *	IN_MOVED_FROM and IN_MOVED_TO; mail/<mailbox>/ itself is watched for
 *	IN_CREATE and IN_MOVED_TO of its new/ and cur/.
 *
 *	watch_stop() stops and joins the thread and frees everything; after
 *	it returns fn is not running and will not be called again.
 * ERRORS
 *	watch_start(): -errno of inotify_init1(2), pthread_create(3), -ENOMEM.
 *	A watch that cannot be added (ENOSPC: fs.inotify.max_user_watches)
 *	is logged once (event=watch-failed); those names then stay cached
 *	until their timeout.
 * OWNERSHIP
 *	spool, fn and arg must outlive the watch.
 * THREADS
 *	fn runs on the watch thread, never on a FUSE request's thread, so it
 *	may call fuse_lowlevel_notify_inval_*() (libfuse: a notification sent
 *	from a request handler for a directory that the kernel holds locked
 *	for that request deadlocks); fn must not wait for a request to finish.
 */
#ifndef SPOOLGATE_FS_WATCH_H
#define SPOOLGATE_FS_WATCH_H

#include "spool.h"

struct watch;

typedef void (*watch_fn)(void *arg, const char *dir, const char *name);

int watch_start(struct spool *spool, watch_fn fn, void *arg, struct watch **out);
void watch_stop(struct watch *w);

#endif
