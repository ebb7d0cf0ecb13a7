/*
 * NAME
 *	inode - the node table of spoolgate-fs: paths, inode numbers, lookups
 * SYNOPSIS
 *	#include "inode.h"
 *
 *	int inode_table_init(struct inode_table *t);
 *	struct inode *inode_get(struct inode_table *t, uint64_t ino);
 *	struct inode *inode_find(struct inode_table *t, const char *path);
 *	int inode_lookup(struct inode_table *t, const char *path,
 *			enum inode_kind kind, enum inode_area area,
 *			struct inode **out);
 *	void inode_unref(struct inode_table *t, struct inode *node, uint64_t n);
 *	void inode_forget(struct inode_table *t, uint64_t ino, uint64_t n);
 *	int inode_move(struct inode_table *t, struct inode *node, const char *path);
 *	void inode_detach(struct inode_table *t, const char *path);
 *	uint64_t inode_number(struct inode_table *t, const char *path);
 *	uint64_t inode_peek(struct inode_table *t, const char *path);
 *	int inode_each_known(struct inode_table *t,
 *			bool (*want)(const struct inode *node),
 *			struct inode_known **out, size_t *n);
 *	void inode_known_free(struct inode_known *list, size_t n);
 *	void inode_table_free(struct inode_table *t);
 * DESCRIPTION
 *	The kernel names every file by a 64-bit node id and counts how many
 *	times we handed that id out (the lookup count).  This table maps node
 *	ids to what they stand for: a kind (the part of the view) and a path
 *	relative to the mount ("inbox/bob/1764.M1P2Q3.host", "" for the
 *	root).  The kind and path are all an operation needs to find the spool
 *	file again; nothing else is cached, so what the spool says now is what
 *	the mount shows.
 *
 *	Node ids are stable: a path's id is a 64-bit hash of the path, so the
 *	d_ino a readdir reports and the st_ino a later stat reports agree, and
 *	a file gets the same id after the kernel forgot and looked it up again.
 *	Two live nodes never share an id: on a hash collision (or when a path
 *	was detached while the kernel still holds its old node) the next free
 *	number is taken.  Ids 0 and 1 (FUSE_ROOT_ID) are never handed out
 *	except 1 for the root.
 *
 *	inode_lookup() finds the node of a path or creates it, and adds one to
 *	its lookup count (call it exactly when a reply hands the id to the
 *	kernel; if the reply fails, give the count back with inode_unref()).
 *	inode_forget() is FORGET: when the count reaches 0 the node is freed.
 *	The root and the five top directories are pinned: never freed.
 *
 *	inode_move() gives a node a new path (rename); a node that had the new
 *	path is detached first.  inode_detach() takes a path's node out of the
 *	path index (the file was removed or replaced): the kernel may still
 *	use its id until it forgets it, but a new file at that path gets a
 *	new node.  A detached node keeps its last path (for logs) and has
 *	detached set; operations on it answer ENOENT.
 *
 *	inode_number() is the id a path has or would get (for readdir).
 *
 *	inode_peek() is the id of the live node of a path that the kernel
 *	knows (lookup count above 0), else 0: the ids whose caches must be
 *	invalidated when the spool changes (fs/watch.h).  inode_each_known()
 *	copies the id and path of every such node that want() accepts (for
 *	an inotify overflow); free the list with inode_known_free().
 * ERRORS
 *	-ENOMEM.
 * THREADS
 *	Two locks.  The FUSE request threads use the table only under the
 *	caller's lock (spoolfs.c: fs->lock), which makes them one writer: they
 *	read it (inode_get, inode_find, inode_number, the fields of a node)
 *	with that lock alone, and every change (inode_lookup, inode_unref,
 *	inode_forget, inode_detach, inode_move) also takes t->lock inside.
 *	Other threads (the spool watcher) hold no fs->lock and call only
 *	inode_peek() and inode_each_known(), which read under t->lock and
 *	return copies.  Order: the caller's lock, then t->lock.
 */
#ifndef SPOOLGATE_FS_INODE_H
#define SPOOLGATE_FS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The parts of the view (see spoolfs.h). */
enum inode_kind {
	INODE_ROOT,		/* / */
	INODE_INBOX,		/* inbox/ */
	INODE_MAILBOX,		/* inbox/<mailbox>/ */
	INODE_MAILMSG,		/* inbox/<mailbox>/<message> */
	INODE_OUTBOX,		/* outbox/ */
	INODE_OUTFILE,		/* outbox/<name>, outbox/wait/<name> */
	INODE_OUTWAIT,		/* outbox/wait/ */
	INODE_NEXT,		/* inbox/<mailbox>/.next[.<seconds>] (waiters.h) */
	INODE_RECDIR,		/* queue/, sent/, failed/ */
	INODE_RECMSG,		/* queue/<id> (the message) */
	INODE_RECSTATUS,	/* queue/<id>.status (the envelope record) */
	INODE_LOCK		/* inbox/<mailbox>/.lock (lockfile.h) */
};

/* Which record directory a RECDIR/RECMSG/RECSTATUS node belongs to. */
enum inode_area { AREA_NONE, AREA_QUEUE, AREA_SENT, AREA_FAILED };

struct inode {
	uint64_t		ino;
	uint64_t		nlookup;	/* the kernel's references */
	enum inode_kind		kind;
	enum inode_area		area;
	char		       *path;		/* relative to the mount, "" = root */
	const char	       *name;		/* last component, inside path */
	bool			pinned;		/* root and top directories */
	bool			detached;	/* no longer reachable by path */
	struct inode	       *ino_next;	/* hash chains */
	struct inode	       *path_next;
};

/*
 * Every field: written under the caller's lock and lock, read under
 * either (see THREADS).
 */
struct inode_table {
	pthread_mutex_t		lock;
	struct inode	      **by_ino;
	struct inode	      **by_path;
	size_t			nbuckets;	/* power of two, same for both */
	size_t			count;
	struct inode	       *root;
};

int inode_table_init(struct inode_table *t);
void inode_table_free(struct inode_table *t);

struct inode *inode_get(struct inode_table *t, uint64_t ino);
struct inode *inode_find(struct inode_table *t, const char *path);
int inode_lookup(struct inode_table *t, const char *path, enum inode_kind kind,
		enum inode_area area, struct inode **out);
void inode_unref(struct inode_table *t, struct inode *node, uint64_t n);
void inode_forget(struct inode_table *t, uint64_t ino, uint64_t n);
int inode_move(struct inode_table *t, struct inode *node, const char *path);
void inode_detach(struct inode_table *t, const char *path);
uint64_t inode_number(struct inode_table *t, const char *path);

/* A node the kernel knows, copied out of the table. */
struct inode_known {
	uint64_t		ino;
	char		       *path;
};

uint64_t inode_peek(struct inode_table *t, const char *path);
int inode_each_known(struct inode_table *t, bool (*want)(const struct inode *node),
		struct inode_known **out, size_t *n);
void inode_known_free(struct inode_known *list, size_t n);

#endif
