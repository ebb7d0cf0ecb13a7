/*
 * NAME
 *	node - gateways sharing one spool: names, heartbeats, leases, takeover
 * SYNOPSIS
 *	#include "node.h"
 * DESCRIPTION
 *	Each spoolgate-smtpd on a spool is a node, named by the configured
 *	[spool] hostname (spool_hostname()).  It proves it is alive with a
 *	heartbeat file, nodes/<name>, one line rewritten (temporary in
 *	nodes/, then rename) every heartbeat_interval seconds:
 *
 *	    boot=<kernel boot id> pid=<pid> started=<unix s> seq=<n>
 *
 *	Liveness is judged by the observer's own clock, never by a file's
 *	mtime (hosts' clocks need not agree): every node remembers, per other
 *	node, the line it last read and when it first read it (CLOCK_MONOTONIC).
 *	A node whose line (seq, or pid, boot id) has not changed for lease_time
 *	seconds of that clock is dead; so is one whose file stays absent that
 *	long.  The first sighting starts the count: a node that has just
 *	started waits a lease before it takes anything over.  node_sweep(),
 *	run by any live node, gives a dead node's claims back to queue/ and
 *	removes its temporaries (spool_reclaim(), logged node-takeover with
 *	both names).  A node that was only stopped and comes back finds its
 *	claims gone when it finishes them and records nothing (queue.h,
 *	-ESTALE).
 *
 *	node_register() refuses a name in use by a live node.  A file that
 *	names this machine (same boot id) is judged by its pid: taken while
 *	that process runs, free when it is gone (this node's own predecessor,
 *	killed) or is this process.  Another machine's file is watched for up
 *	to lease_time: a change of its line means a live holder (refused at
 *	once, within about a heartbeat_interval), no change or the file
 *	removed means the name is free (so a node that finds a dead foreign
 *	holder starts up to a lease late).  Without shared ([spool] shared =
 *	no: a spool of this host alone) another boot's file is this host's,
 *	left by a crash, and taken at once.  The refusal says who holds the
 *	name; err gets one line.  It then writes the first heartbeat.
 *
 *	node_start_heartbeat() starts a thread of the node's own that renews
 *	the file every heartbeat_interval (not the event loop: a loop slowed
 *	down by a slow filesystem must not look dead and lose its claims while
 *	it delivers them).
 *
 *	node_unregister() stops that thread, removes the file (a clean
 *	shutdown: the claims were given back already) and frees the node;
 *	NULL ok.
 * ERRORS
 *	0 or -errno; node_register(): -EADDRINUSE when the name is taken.
 * THREADS
 *	node_register(), node_sweep() and node_unregister() on one thread
 *	(smtpd's event loop); the heartbeat thread touches only the heartbeat
 *	file and seq.
 */
#ifndef SPOOLGATE_NODE_H
#define SPOOLGATE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include "spool.h"

struct node;

int node_register(struct spool *spool, unsigned heartbeat_interval, unsigned lease_time, bool shared,
    struct node **out, char *err, size_t errlen);
int node_start_heartbeat(struct node *node);
int node_sweep(struct node *node, struct spool_reclaim *stats);
void node_unregister(struct node *node);

#endif
