/*
 * NAME
 *	pickup - moves what spoolgate-sendmail dropped into the queue
 * SYNOPSIS
 *	#include "pickup.h"
 *
 *	int pickup_prepare_dir(const struct cfg *cfg, uid_t uid, gid_t gid);
 *	int pickup_new(const struct cfg *cfg, struct spool *spool,
 *			struct aliases_source *aliases, struct pickup **out);
 *	void pickup_free(struct pickup *p);
 * DESCRIPTION
 *	<spool>/drop/ (drop.h) is where spoolgate-sendmail, set-group-id
 *	[sendmail] group, leaves messages; nobody else writes the spool.
 *	pickup_prepare_dir() runs as root before smtpd drops its privileges:
 *	it creates drop/ where missing and gives it (again) to the spool's
 *	user and the drop group with mode 1730, and lets others search the
 *	spool root (o+x, so that the command can reach drop/; every other
 *	directory there stays 0750).  Without the group it logs why
 *	(event=drop-dir) and leaves drop/ to the user alone: only root can
 *	submit then.
 *
 *	pickup_new() starts a thread that watches drop/ with inotify (a drop
 *	renamed into place is picked up at once) and scans it at start and
 *	every [relay] scan_interval, so a drop left while smtpd was stopped
 *	is queued at its next start.  Each drop is validated from scratch,
 *	as if nothing had checked it: it must be a regular file with one
 *	link, at most DROP_RECORD_MAX + max_message_size octets; its record
 *	must parse (drop.h); the uid it claims must be its owner's (st_uid);
 *	the sender it names must be one that owner may use (unixuser_sender());
 *	then outbox_submit() queues it with that owner's uid in the record's
 *	origin ("sendmail uid=<uid>") and in Received: ("from sendmail",
 *	"uid <uid>"), as an outbox/ file is, its recipients expanded through
 *	aliases (NULL: none; outbox.h says how).  Only once the message is durable
 *	in queue/ is the drop removed (and drop/ synced): a crash between the
 *	two queues it twice, never loses it.  A drop that fails a check goes
 *	to failed/ with a "rejected:" line (outbox_reject(), its bytes as they
 *	were, at most the size bound) and is removed; one the spool could not
 *	take (a full disk) stays for the next scan.  Names starting with '.'
 *	are drops being written, removed when older than DROP_STALE_SECONDS.
 *	The relay's runner notices the new queue/ record by its own inotify.
 *
 *	pickup_free() stops the thread (it finishes the drop it is on) and
 *	joins it.
 * DIAGNOSTICS
 *	event=pickup-queued (id=, drop=, uid=, user=, from=, rcpt_args=, size=),
 *	event=pickup-rejected (drop=, uid=, errno=, reply=, why=, id= of the
 *	failed/ record), event=pickup-deferred (the spool refused it for now),
 *	event=pickup-stale, event=drop-dir, event=pickup-error.
 * THREADS
 *	Its own thread does blocking I/O (reads, fdatasync, directory syncs),
 *	never the event loop; it shares only the spool (thread-safe) and the
 *	configuration (read-only) with it.
 */
#ifndef SPOOLGATE_PICKUP_H
#define SPOOLGATE_PICKUP_H

#include <sys/types.h>

#include "../common/aliases.h"
#include "../common/cfg.h"
#include "../common/spool.h"

struct pickup;

int pickup_prepare_dir(const struct cfg *cfg, uid_t uid, gid_t gid);
int pickup_new(const struct cfg *cfg, struct spool *spool, struct aliases_source *aliases,
		struct pickup **out);
void pickup_free(struct pickup *p);

#endif
