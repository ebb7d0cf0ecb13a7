/*
 * NAME
 *	inode - the node table of spoolgate-fs
 * DESCRIPTION
 *	Two chained hash tables over the same nodes: by node id (every
 *	operation) and by path (lookup, readdir, rename).  Both grow by
 *	doubling when the table holds more nodes than buckets.  See inode.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "inode.h"

#define INODE_MIN_BUCKETS	256
#define INODE_ROOT_ID		1	/* FUSE_ROOT_ID; no FUSE header here */

/* FNV-1a, then the splitmix64 finaliser so that similar paths spread. */
static uint64_t
inode_hash(const char *path)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *) path; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static size_t
inode_ino_bucket(const struct inode_table *t, uint64_t ino)
{
	/* ids are hashes already, except the root and probed neighbours */
	return (size_t) (ino ^ (ino >> 32)) & (t->nbuckets - 1);
}

static size_t
inode_path_bucket(const struct inode_table *t, const char *path)
{
	return (size_t) inode_hash(path) & (t->nbuckets - 1);
}

static void
inode_link_ino(struct inode_table *t, struct inode *node)
{
	size_t b = inode_ino_bucket(t, node->ino);

	node->ino_next = t->by_ino[b];
	t->by_ino[b] = node;
}

static void
inode_link_path(struct inode_table *t, struct inode *node)
{
	size_t b = inode_path_bucket(t, node->path);

	node->path_next = t->by_path[b];
	t->by_path[b] = node;
}

static void
inode_unlink_ino(struct inode_table *t, struct inode *node)
{
	struct inode **pp = &t->by_ino[inode_ino_bucket(t, node->ino)];

	for (; *pp; pp = &(*pp)->ino_next)
		if (*pp == node) {
			*pp = node->ino_next;
			return;
		}
}

static void
inode_unlink_path(struct inode_table *t, struct inode *node)
{
	struct inode **pp = &t->by_path[inode_path_bucket(t, node->path)];

	for (; *pp; pp = &(*pp)->path_next)
		if (*pp == node) {
			*pp = node->path_next;
			return;
		}
}

static int
inode_resize(struct inode_table *t, size_t nbuckets)
{
	struct inode **by_ino = calloc(nbuckets, sizeof *by_ino);
	struct inode **by_path = calloc(nbuckets, sizeof *by_path);
	struct inode **old_ino = t->by_ino, **old_path = t->by_path;
	size_t old_n = t->nbuckets;

	if (by_ino == NULL || by_path == NULL) {
		free(by_ino);
		free(by_path);
		return -ENOMEM;
	}
	t->by_ino = by_ino;
	t->by_path = by_path;
	t->nbuckets = nbuckets;
	for (size_t i = 0; i < old_n; i++) {
		struct inode *node, *next;

		for (node = old_ino[i]; node; node = next) {
			next = node->ino_next;
			inode_link_ino(t, node);
			if (!node->detached)
				inode_link_path(t, node);
		}
	}
	free(old_ino);
	free(old_path);
	return 0;
}

struct inode *
inode_get(struct inode_table *t, uint64_t ino)
{
	struct inode *node = t->by_ino[inode_ino_bucket(t, ino)];

	for (; node; node = node->ino_next)
		if (node->ino == ino)
			return node;
	return NULL;
}

struct inode *
inode_find(struct inode_table *t, const char *path)
{
	struct inode *node = t->by_path[inode_path_bucket(t, path)];

	for (; node; node = node->path_next)
		if (strcmp(node->path, path) == 0)
			return node;
	return NULL;
}

/* The id a new node for path gets: its hash, or the next free number. */
static uint64_t
inode_free_number(struct inode_table *t, const char *path)
{
	uint64_t ino = inode_hash(path);

	for (;;) {
		if (ino > INODE_ROOT_ID && inode_get(t, ino) == NULL)
			return ino;
		ino++;
	}
}

uint64_t
inode_number(struct inode_table *t, const char *path)
{
	struct inode *node = inode_find(t, path);

	return node ? node->ino : inode_free_number(t, path);
}

static void
inode_set_path(struct inode *node, char *path)
{
	const char *slash = strrchr(path, '/');

	node->path = path;
	node->name = slash ? slash + 1 : path;
}

static struct inode *
inode_new(struct inode_table *t, const char *path, uint64_t ino,
	  enum inode_kind kind, enum inode_area area)
{
	struct inode *node = calloc(1, sizeof *node);
	char *copy = strdup(path);

	if (node == NULL || copy == NULL) {
		free(node);
		free(copy);
		return NULL;
	}
	node->ino = ino;
	node->kind = kind;
	node->area = area;
	inode_set_path(node, copy);
	inode_link_ino(t, node);
	inode_link_path(t, node);
	t->count++;
	return node;
}

int
inode_table_init(struct inode_table *t)
{
	memset(t, 0, sizeof *t);
	t->by_ino = calloc(INODE_MIN_BUCKETS, sizeof *t->by_ino);
	t->by_path = calloc(INODE_MIN_BUCKETS, sizeof *t->by_path);
	t->nbuckets = INODE_MIN_BUCKETS;
	if (t->by_ino == NULL || t->by_path == NULL)
		goto nomem;
	t->root = inode_new(t, "", INODE_ROOT_ID, INODE_ROOT, AREA_NONE);
	if (t->root == NULL)
		goto nomem;
	t->root->pinned = true;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
nomem:
	free(t->by_ino);
	free(t->by_path);
	memset(t, 0, sizeof *t);
	return -ENOMEM;
}

static void inode_detach_locked(struct inode_table *t, const char *path);

static int
inode_lookup_locked(struct inode_table *t, const char *path, enum inode_kind kind,
	     enum inode_area area, struct inode **out)
{
	struct inode *node = inode_find(t, path);

	if (node != NULL && node->kind != kind) {
		/* the name now stands for something else: a fresh node */
		inode_detach_locked(t, path);
		node = NULL;
	}
	if (node == NULL) {
		if (t->count >= t->nbuckets && t->nbuckets <= SIZE_MAX / 4 / sizeof(void *))
			(void) inode_resize(t, t->nbuckets * 2);	/* else chains grow */
		node = inode_new(t, path, inode_free_number(t, path), kind, area);
		if (node == NULL)
			return -ENOMEM;
	}
	node->nlookup++;
	*out = node;
	return 0;
}

static void
inode_free(struct inode_table *t, struct inode *node)
{
	inode_unlink_ino(t, node);
	if (!node->detached)
		inode_unlink_path(t, node);
	t->count--;
	free(node->path);
	free(node);
}

static void
inode_unref_locked(struct inode_table *t, struct inode *node, uint64_t n)
{
	/* the kernel never forgets more than it was given; clamp if it did */
	node->nlookup = n > node->nlookup ? 0 : node->nlookup - n;
	if (node->nlookup == 0 && !node->pinned)
		inode_free(t, node);
}

static void
inode_forget_locked(struct inode_table *t, uint64_t ino, uint64_t n)
{
	struct inode *node = inode_get(t, ino);

	if (node != NULL)
		inode_unref_locked(t, node, n);
}

static void
inode_detach_locked(struct inode_table *t, const char *path)
{
	struct inode *node = inode_find(t, path);

	if (node == NULL || node->pinned)
		return;
	inode_unlink_path(t, node);
	node->detached = true;
	if (node->nlookup == 0)
		inode_free(t, node);
}

static int
inode_move_locked(struct inode_table *t, struct inode *node, const char *path)
{
	char *copy;

	if (!node->detached && strcmp(node->path, path) == 0)
		return 0;
	if ((copy = strdup(path)) == NULL)
		return -ENOMEM;
	inode_detach_locked(t, path);
	if (!node->detached)
		inode_unlink_path(t, node);
	free(node->path);
	inode_set_path(node, copy);
	node->detached = false;
	inode_link_path(t, node);
	return 0;
}

void
inode_table_free(struct inode_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct inode *node, *next;

		for (node = t->by_ino[i]; node; node = next) {
			next = node->ino_next;
			free(node->path);
			free(node);
		}
	}
	free(t->by_ino);
	free(t->by_path);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof *t);
}

/* ------------------------------------------------- changes, under the lock */

int
inode_lookup(struct inode_table *t, const char *path, enum inode_kind kind,
	     enum inode_area area, struct inode **out)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = inode_lookup_locked(t, path, kind, area, out);
	pthread_mutex_unlock(&t->lock);
	return r;
}

void
inode_unref(struct inode_table *t, struct inode *node, uint64_t n)
{
	pthread_mutex_lock(&t->lock);
	inode_unref_locked(t, node, n);
	pthread_mutex_unlock(&t->lock);
}

void
inode_forget(struct inode_table *t, uint64_t ino, uint64_t n)
{
	pthread_mutex_lock(&t->lock);
	inode_forget_locked(t, ino, n);
	pthread_mutex_unlock(&t->lock);
}

void
inode_detach(struct inode_table *t, const char *path)
{
	pthread_mutex_lock(&t->lock);
	inode_detach_locked(t, path);
	pthread_mutex_unlock(&t->lock);
}

int
inode_move(struct inode_table *t, struct inode *node, const char *path)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = inode_move_locked(t, node, path);
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* ------------------------------------------------- reads from other threads */

uint64_t
inode_peek(struct inode_table *t, const char *path)
{
	struct inode *node;
	uint64_t ino;

	pthread_mutex_lock(&t->lock);
	node = inode_find(t, path);
	ino = node != NULL && node->nlookup > 0 ? node->ino : 0;
	pthread_mutex_unlock(&t->lock);
	return ino;
}

int
inode_each_known(struct inode_table *t, bool (*want)(const struct inode *node),
		 struct inode_known **out, size_t *n)
{
	struct inode_known *list = NULL, *grown;
	size_t cap = 0, used = 0;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nbuckets && r == 0; i++)
		for (struct inode *node = t->by_ino[i]; node && r == 0; node = node->ino_next) {
			if (node->detached || node->nlookup == 0 || !want(node))
				continue;
			if (used == cap) {
				cap = cap ? cap * 2 : 64;
				if ((grown = reallocarray(list, cap, sizeof *list)) == NULL) {
					r = -ENOMEM;
					break;
				}
				list = grown;
			}
			if ((list[used].path = strdup(node->path)) == NULL) {
				r = -ENOMEM;
				break;
			}
			list[used++].ino = node->ino;
		}
	pthread_mutex_unlock(&t->lock);
	if (r < 0) {
		inode_known_free(list, used);
		return r;
	}
	*out = list;
	*n = used;
	return 0;
}

void
inode_known_free(struct inode_known *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i].path);
	free(list);
}
