/*
 * NAME
 *	test_spool - unit tests of the spool (layout, ids, commit, recovery) and the queue
 * SYNOPSIS
 *	test_spool
 * DESCRIPTION
 *	Every test works on a real spool in a fresh directory under
 *	/tmp/sg-spool-XXXXXX (removed at the end).
 *
 *	spool: spool_open() creates the layout and refuses symlinks in it;
 *	spool_new_id() is unique over 100000 calls from four threads; a
 *	message for two local mailboxes and the relay queue is invisible
 *	outside tmp/ until published, then appears in mail/a/new and
 *	mail/b/new as one inode shared with data/<id>, with queue/<id> whose
 *	data-offset is the length of the Return-Path line, and leaves tmp/
 *	empty once freed; write errors are sticky (EFBIG through
 *	RLIMIT_FSIZE always; ENOSPC on a 64 KB tmpfs when running as root,
 *	skipped otherwise), the first cause wins and nothing becomes
 *	visible; unpublish removes the published names, and a publish that
 *	fails half-way takes back what it linked (and only that);
 *	commitgroup: eight threads committing at once all get 0, every
 *	record and data file is there and tmp/ is empty, the statistics count
 *	eight commits in one to eight batches; a message with no target
 *	fails alone (-EDESTADDRREQ) and is counted in no batch; files
 *	prepared unsynced for one syncfs stay in tmp/ until published after
 *	spool_fs_sync() and spool_msg_commit_check(), which returns a failed
 *	write's error;
 *	spool_recover() removes temporaries of dead
 *	processes and old ones, returns dead claims, drops records without
 *	data, removes orphan data whose commit is dead, keeps orphan data
 *	whose temporary is still in tmp/ or whose creator lives (a commit
 *	under way), and counts.
 *
 *	queue: scan, claim (a second claim of the same id is -ENOENT),
 *	finish as DEFERRED, SENT (kept or dropped with its data), FAILED
 *	(per-recipient replies kept), release (also of a prepared claim),
 *	corrupt records and records without data moved to failed/, and a
 *	scan that no odd entry of queue/ (symlink, directory, record over
 *	the recipient bound) can stop.
 *
 *	nodes: a claim taken over by another node (spool_reclaim() with its
 *	owner dead) is never recorded by its first owner when it comes back
 *	(-ESTALE, for sent, failed, deferred and keep_sent = no); a parked
 *	claim (finishing, stopped) goes back to queue/ or, published already,
 *	is removed; a dead node's temporaries wait tmp_min_age; node names
 *	held by a live process or a fresh heartbeat of another machine are
 *	refused, dead ones taken; node_sweep() takes only dead nodes' claims;
 *	the heartbeat thread renews the file.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>

#include "commitgroup.h"
#include "envelope.h"
#include "log.h"
#include "node.h"
#include "queue.h"
#include "spool.h"
#include "testutil.h"

#define PATH_LEN	1024

static char tmpbase[PATH_LEN];
static char tmpfs_mount[PATH_LEN];	/* unmounted by the teardown if a test died */

/* snprintf into a PATH_LEN buffer; a cut path is a test failure, not a silent error. */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
pathf(char *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_LEN, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_LEN) {
		fprintf(stderr, "path too long: %s\n", out);
		abort();
	}
}

/* Once per test case, in the parent process. */
static void
base_setup(void)
{
	testutil_mkdtemp(tmpbase, sizeof(tmpbase), "spool");
	pathf(tmpfs_mount, "%s/tmpfs", tmpbase);
}

static void
base_teardown(void)
{
	umount2(tmpfs_mount, MNT_DETACH);
	testutil_rmtree(tmpbase);
}

/* ---- helpers ---- */

/*
 * fchown() as the spool sees it: this definition in the test program
 * takes the place of libc's for the spool library linked into it, so a
 * test can make it fail.  0: the real call.
 */
static int fchown_fails_with;

int
fchown(int fd, uid_t uid, gid_t gid)
{
	if (fchown_fails_with != 0) {
		errno = fchown_fails_with;
		return -1;
	}
	return (int)syscall(SYS_fchown, fd, uid, gid);
}

/* A fresh spool in tmpbase/<name>. */
static struct spool *
open_spool(const char *name, char path[PATH_LEN])
{
	struct spool *spool;
	int r;

	pathf(path, "%s/%s", tmpbase, name);
	r = spool_open(path, &spool);
	ck_assert_msg(r == 0, "spool_open(%s) = %s", path, strerror(-r));
	return spool;
}

static int
exists_at(struct spool *spool, enum spool_dir dir, const char *name)
{
	struct stat st;

	return fstatat(spool_dirfd(spool, dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Entries of spool_root/rel (no dot files); -1 if it cannot be opened. */
static int
count_entries(const char *root, const char *rel)
{
	char path[PATH_LEN];
	struct dirent *de;
	DIR *d;
	int n = 0;

	pathf(path, "%s/%s", root, rel);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The only entry of a directory (asserts there is exactly one). */
static void
only_entry(const char *root, const char *rel, char *name, size_t namelen)
{
	char path[PATH_LEN];
	struct dirent *de;
	DIR *d;
	int n = 0;

	pathf(path, "%s/%s", root, rel);
	ck_assert_msg((d = opendir(path)) != NULL, "cannot open %s", path);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(name, namelen, "%s", de->d_name);
		n++;
	}
	closedir(d);
	ck_assert_msg(n == 1, "%s has %d entries, want 1", path, n);
}

static char *
read_path(const char *path, size_t *lenp)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t got = 0;
	int fd;

	ck_assert_msg((fd = open(path, O_RDONLY)) >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_ptr_nonnull(buf = malloc((size_t)st.st_size + 1));
	while (got < (size_t)st.st_size && (n = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	ck_assert_uint_eq(got, (size_t)st.st_size);
	buf[got] = '\0';
	*lenp = got;
	return buf;
}

static void
write_path(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void
write_record(const char *path, const struct envelope *env)
{
	char *text;
	size_t len;

	ck_assert_int_eq(envelope_format(env, &text, &len), 0);
	write_path(path, text, len);
	free(text);
}

/* A test payload of len bytes, every byte value, no pattern of period 2^k. */
static char *
make_payload(size_t len)
{
	char *p = malloc(len);
	size_t i;

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < len; i++)
		p[i] = (char)((i * 7 + i / 251) & 0xff);
	return p;
}

/* Writes buf in chunks of awkward sizes, across the 64 KB write buffer. */
static void
write_chunked(struct spool_msg *msg, const char *buf, size_t len)
{
	static const size_t sizes[] = { 1, 7, 4096, 65535, 3, 65536, 100000, 13 };
	size_t off = 0, i = 0, n;

	while (off < len) {
		n = sizes[i++ % (sizeof(sizes) / sizeof(sizes[0]))];
		if (n > len - off)
			n = len - off;
		ck_assert_int_eq(spool_msg_write(msg, buf + off, n), 0);
		off += n;
	}
}

/* A pid that existed a moment ago and is dead now. */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	ck_assert_int_eq(kill(pid, 0), -1);
	return pid;
}

/* ---- layout and ids ---- */

START_TEST(test_open_creates_layout)
{
	static const enum spool_dir dirs[] = { SPOOL_DIR_TMP, SPOOL_DIR_MAIL, SPOOL_DIR_DATA,
		SPOOL_DIR_QUEUE, SPOOL_DIR_ACTIVE, SPOOL_DIR_SENT, SPOOL_DIR_FAILED };
	static const char *const names[] = { "tmp", "mail", "data", "queue", "active", "sent", "failed" };
	char path[PATH_LEN], sub[PATH_LEN];
	struct spool *spool, *again;
	struct stat st, st2;
	const char *h;
	size_t i;

	spool = open_spool("layout", path);
	ck_assert_str_eq(spool_path(spool), path);
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		ck_assert_str_eq(spool_dir_name(dirs[i]), names[i]);
		pathf(sub, "%s/%s", path, names[i]);
		ck_assert_msg(lstat(sub, &st) == 0 && S_ISDIR(st.st_mode), "%s is not a directory", sub);
		ck_assert_int_eq(fstat(spool_dirfd(spool, dirs[i]), &st2), 0);
		ck_assert_msg(st.st_ino == st2.st_ino, "descriptor of %s is another directory", names[i]);
	}
	ck_assert_int_eq(fstat(spool_dirfd(spool, SPOOL_DIR_ROOT), &st2), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(st.st_ino == st2.st_ino);
	ck_assert_int_eq(spool_dirfd(spool, SPOOL_DIR__COUNT), -1);
	h = spool_hostname(spool);
	ck_assert_msg(h[0] != '\0', "empty host name");
	for (; *h; h++)
		ck_assert_msg(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", *h) != NULL,
		    "host name has '%c'", *h);
	/* opening an existing spool works and changes nothing */
	ck_assert_int_eq(spool_open(path, &again), 0);
	spool_close(again);
	spool_close(spool);
}
END_TEST

START_TEST(test_open_refuses_symlink_and_file)
{
	char path[PATH_LEN], sub[PATH_LEN], elsewhere[PATH_LEN];
	struct spool *spool = NULL;

	pathf(path, "%s/evil", tmpbase);
	pathf(elsewhere, "%s/elsewhere", tmpbase);
	ck_assert_int_eq(mkdir(path, 0750), 0);
	ck_assert_int_eq(mkdir(elsewhere, 0750), 0);
	pathf(sub, "%s/queue", path);
	ck_assert_int_eq(symlink(elsewhere, sub), 0);
	ck_assert_int_lt(spool_open(path, &spool), 0);
	ck_assert_int_eq(count_entries(elsewhere, "."), 0);

	pathf(path, "%s/plainfile", tmpbase);
	ck_assert_int_eq(mkdir(path, 0750), 0);
	pathf(sub, "%s/data", path);
	write_path(sub, "x", 1);
	ck_assert_int_lt(spool_open(path, &spool), 0);
}
END_TEST

#define ID_THREADS	4
#define ID_PER_THREAD	25000

struct id_job {
	struct spool   *spool;
	char	      (*ids)[SPOOL_ID_MAX];
};

static void *
make_ids(void *arg)
{
	struct id_job *job = arg;
	size_t i;

	for (i = 0; i < ID_PER_THREAD; i++)
		spool_new_id(job->spool, job->ids[i]);
	return NULL;
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_new_id_unique)
{
	char path[PATH_LEN], (*ids)[SPOOL_ID_MAX];
	struct id_job jobs[ID_THREADS];
	pthread_t th[ID_THREADS];
	struct spool *spool = open_spool("ids", path);
	size_t i, n = ID_THREADS * ID_PER_THREAD;
	long long sec;
	long usec, pid;
	unsigned q;
	int used;

	ck_assert_ptr_nonnull(ids = calloc(n, SPOOL_ID_MAX));
	for (i = 0; i < ID_THREADS; i++) {
		jobs[i].spool = spool;
		jobs[i].ids = ids + i * ID_PER_THREAD;
		ck_assert_int_eq(pthread_create(&th[i], NULL, make_ids, &jobs[i]), 0);
	}
	for (i = 0; i < ID_THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < n; i++) {
		used = 0;
		ck_assert_msg(sscanf(ids[i], "%lld.M%6ldP%ldQ%u%n", &sec, &usec, &pid, &q, &used) == 4 &&
		    ids[i][used] == '\0', "id '%s' is not <sec>.M<usec>P<pid>Q<n>", ids[i]);
		ck_assert_int_eq(pid, (long)getpid());
		ck_assert_msg(strchr(ids[i], '/') == NULL && ids[i][0] != '.', "id '%s' is no file name", ids[i]);
	}
	qsort(ids, n, SPOOL_ID_MAX, cmp_id);
	for (i = 1; i < n; i++)
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "id '%s' made twice", ids[i]);
	free(ids);
	spool_close(spool);
}
END_TEST

/* ---- writing and committing ---- */

#define RETURN_PATH	"alice@example.org"
#define RP_LINE		"Return-Path: <" RETURN_PATH ">\n"
#define PAYLOAD_LEN	(200u << 10)

START_TEST(test_commit_two_mailboxes_and_queue)
{
	char path[PATH_LEN], p[PATH_LEN], final[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("commit", path);
	struct spool_dirset *dirs;
	struct spool_msg *msg;
	struct envelope env, rec;
	struct stat sa, sb, sd;
	char *payload = make_payload(PAYLOAD_LEN), *a, *b;
	size_t alen, blen, rplen = strlen(RP_LINE);

	ck_assert_int_eq(spool_msg_create(spool, RETURN_PATH, &msg), 0);
	snprintf(id, sizeof(id), "%s", spool_msg_id(msg));
	write_chunked(msg, payload, PAYLOAD_LEN);
	ck_assert_uint_eq(spool_msg_size(msg), rplen + PAYLOAD_LEN);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "a"), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "b"), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "a"), 0);
	ck_assert_uint_eq(spool_msg_local_count(msg), 2);
	ck_assert_int_eq(envelope_init(&env, "ignored", RETURN_PATH, "smtp 127.0.0.1"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "bob@example.net"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "carol@example.net"), 0);
	ck_assert_int_eq(spool_msg_queue(msg, &env), 0);
	envelope_free(&env);

	ck_assert_int_eq(spool_msg_commit_prepare(msg), 0);
	/* prepared: durable under tmp/, visible nowhere else */
	ck_assert_int_eq(count_entries(path, "tmp"), 2);
	ck_assert_int_eq(count_entries(path, "mail"), 0);
	ck_assert_int_eq(count_entries(path, "data"), 0);
	ck_assert_int_eq(count_entries(path, "queue"), 0);

	ck_assert_ptr_nonnull(dirs = spool_dirset_new(spool));
	ck_assert_int_eq(spool_msg_commit_publish(msg, dirs), 0);
	ck_assert_int_eq(spool_dirset_sync(dirs), 0);
	spool_dirset_free(dirs);

	/* mail/{a,b}/new/<id>.<host>, one inode with data/<id> */
	pathf(final, "%s.%s", id, spool_hostname(spool));
	pathf(p, "%s/mail/a/new/%s", path, final);
	ck_assert_msg(stat(p, &sa) == 0, "%s missing", p);
	a = read_path(p, &alen);
	pathf(p, "%s/mail/b/new/%s", path, final);
	ck_assert_msg(stat(p, &sb) == 0, "%s missing", p);
	b = read_path(p, &blen);
	pathf(p, "%s/data/%s", path, id);
	ck_assert_msg(stat(p, &sd) == 0, "%s missing", p);
	ck_assert(sa.st_ino == sb.st_ino && sa.st_ino == sd.st_ino);
	ck_assert_uint_eq(alen, rplen + PAYLOAD_LEN);
	ck_assert_uint_eq(blen, alen);
	ck_assert_mem_eq(a, RP_LINE, rplen);
	ck_assert(memcmp(a + rplen, payload, PAYLOAD_LEN) == 0);
	ck_assert(memcmp(a, b, alen) == 0);
	ck_assert_int_eq(count_entries(path, "mail/a/new"), 1);
	ck_assert_int_eq(count_entries(path, "mail/a/tmp"), 0);
	ck_assert_int_eq(count_entries(path, "mail/a/cur"), 0);

	/* queue/<id>: the record, data-offset skips the Return-Path line */
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, &rec), 0);
	ck_assert_str_eq(rec.id, id);
	ck_assert_str_eq(rec.from, RETURN_PATH);
	ck_assert_str_eq(rec.origin, "smtp 127.0.0.1");
	ck_assert_int_eq(rec.data_offset, (long long)rplen);
	ck_assert_uint_eq(rec.nrcpt, 2);
	ck_assert_str_eq(rec.rcpt[0].addr, "bob@example.net");
	ck_assert_int_eq(rec.rcpt[0].state, RCPT_PENDING);
	ck_assert_str_eq(rec.rcpt[1].addr, "carol@example.net");
	ck_assert_int_gt(rec.created, 0);
	envelope_free(&rec);

	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(stat(p, &sd), 0);
	ck_assert_uint_eq(sd.st_nlink, 3);	/* a, b, data */
	free(a);
	free(b);
	free(payload);
	spool_close(spool);
}
END_TEST

START_TEST(test_commit_queue_only)
{
	char path[PATH_LEN], p[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("queueonly", path);
	struct spool_msg *msg;
	struct envelope env, rec;
	static const char body[] = "From: a@b\nTo: c@d\n\nhello\n";
	size_t len;
	char *data;

	ck_assert_int_eq(spool_msg_create(spool, NULL, &msg), 0);
	snprintf(id, sizeof(id), "%s", spool_msg_id(msg));
	ck_assert_int_eq(spool_msg_write(msg, body, sizeof(body) - 1), 0);
	ck_assert_int_eq(envelope_init(&env, "x", "a@b", "fs outbox/m.eml"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "c@d"), 0);
	ck_assert_int_eq(spool_msg_queue(msg, &env), 0);
	envelope_free(&env);
	ck_assert_int_eq(spool_msg_commit(msg), 0);
	spool_msg_free(msg);

	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(count_entries(path, "mail"), 0);
	pathf(p, "%s/data/%s", path, id);
	data = read_path(p, &len);
	ck_assert_uint_eq(len, sizeof(body) - 1);
	ck_assert_mem_eq(data, body, len);
	free(data);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, &rec), 0);
	ck_assert_int_eq(rec.data_offset, 0);
	ck_assert_str_eq(rec.id, id);
	envelope_free(&rec);
	spool_close(spool);
}
END_TEST

/* Several messages, one directory set, one sync. */
START_TEST(test_group_commit)
{
	char path[PATH_LEN];
	struct spool *spool = open_spool("group", path);
	struct spool_msg *msg[5];
	struct spool_dirset *dirs = spool_dirset_new(spool);
	size_t i;

	ck_assert_ptr_nonnull(dirs);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(spool_msg_create(spool, "x@y", &msg[i]), 0);
		ck_assert_int_eq(spool_msg_write(msg[i], "Subject: s\n\nb\n", 14), 0);
		ck_assert_int_eq(spool_msg_deliver_local(msg[i], i % 2 ? "odd" : "even"), 0);
		ck_assert_int_eq(spool_msg_commit_prepare(msg[i]), 0);
	}
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(spool_msg_commit_publish(msg[i], dirs), 0);
	ck_assert_int_eq(spool_dirset_sync(dirs), 0);
	ck_assert_int_eq(spool_dirset_sync(dirs), 0);	/* emptied: nothing left to sync */
	for (i = 0; i < 5; i++)
		spool_msg_free(msg[i]);
	spool_dirset_free(dirs);
	ck_assert_int_eq(count_entries(path, "mail/even/new"), 3);
	ck_assert_int_eq(count_entries(path, "mail/odd/new"), 2);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	spool_close(spool);
}
END_TEST

/*
 * One syncfs for a batch: files written unsynced, the filesystem synced,
 * each message checked, then published; nothing outside tmp/ before the
 * publish, tmp/ empty once freed (the record's descriptor kept for the
 * check is closed).  A message whose write failed fails its check with
 * that error.
 */
START_TEST(test_prepare_unsynced_then_fs_sync)
{
	char path[PATH_LEN];
	struct spool *spool = open_spool("unsynced", path);
	struct spool_dirset *dirs = spool_dirset_new(spool);
	struct spool_msg *msg[3], *bad;
	struct envelope env;
	struct rlimit old, small = { 8, 8 };
	int fd, r;
	size_t i;

	fd = spool_fs_sync_open(spool);
	if (fd == -EOPNOTSUPP) {
		fprintf(stderr, "test_prepare_unsynced_then_fs_sync: spool_fs_sync not available here\n");
		spool_dirset_free(dirs);
		spool_close(spool);
		return;
	}
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(envelope_init(&env, "x", "a@b", "test"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "c@d"), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(spool_msg_create(spool, NULL, &msg[i]), 0);
		ck_assert_int_eq(spool_msg_write(msg[i], "Subject: s\n\nb\n", 14), 0);
		ck_assert_int_eq(spool_msg_queue(msg[i], &env), 0);
		ck_assert_int_eq(spool_msg_commit_prepare_unsynced(msg[i]), 0);
	}
	ck_assert_int_eq(count_entries(path, "tmp"), 6);	/* data and record of each */
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	ck_assert_int_eq(spool_fs_sync(fd), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(spool_msg_commit_check(msg[i]), 0);
		ck_assert_int_eq(spool_msg_commit_publish(msg[i], dirs), 0);
	}
	ck_assert_int_eq(spool_fs_sync(fd), 0);
	for (i = 0; i < 3; i++)
		spool_msg_free(msg[i]);
	ck_assert_int_eq(count_entries(path, "queue"), 3);
	ck_assert_int_eq(count_entries(path, "data"), 3);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);

	/* a write that failed (EFBIG past RLIMIT_FSIZE) is what the check returns */
	ck_assert_int_eq(spool_msg_create(spool, NULL, &bad), 0);
	ck_assert_int_eq(spool_msg_queue(bad, &env), 0);
	ck_assert_int_eq(spool_msg_write(bad, "Subject: too long\n\nb\n", 22), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	r = spool_msg_commit_prepare_unsynced(bad);	/* no check output until the limit is back */
	setrlimit(RLIMIT_FSIZE, &old);
	ck_assert_int_eq(r, -EFBIG);
	ck_assert_int_eq(spool_msg_commit_check(bad), -EFBIG);
	spool_msg_free(bad);
	ck_assert_int_eq(count_entries(path, "queue"), 3);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	envelope_free(&env);
	spool_dirset_free(dirs);
	close(fd);
	spool_close(spool);
}
END_TEST

/* commitgroup: threads committing at once share batches; each gets its own result. */
struct group_thread {
	struct spool	       *spool;
	struct commitgroup     *group;
	int			result;
};

static void *
group_thread_run(void *arg)
{
	struct group_thread *t = arg;
	struct spool_msg *msg;
	struct envelope env;

	t->result = spool_msg_create(t->spool, NULL, &msg);
	if (t->result < 0)
		return NULL;
	if ((t->result = spool_msg_write(msg, "Subject: s\n\nb\n", 14)) == 0 &&
	    (t->result = envelope_init(&env, "x", "a@b", "test")) == 0) {
		if ((t->result = envelope_add_rcpt(&env, "c@d")) == 0 &&
		    (t->result = spool_msg_queue(msg, &env)) == 0)
			t->result = commitgroup_commit(t->group, msg);
		envelope_free(&env);
	}
	spool_msg_free(msg);
	return NULL;
}

START_TEST(test_commitgroup_threads)
{
	enum { N = 8 };
	char path[PATH_LEN];
	struct spool *spool = open_spool("commitgroup", path);
	struct group_thread t[N];
	struct commitgroup_stats st;
	struct commitgroup *g;
	struct spool_msg *msg;
	pthread_t tid[N];
	size_t i;

	ck_assert_int_eq(commitgroup_new(spool, &g), 0);
	for (i = 0; i < N; i++) {
		t[i] = (struct group_thread) { .spool = spool, .group = g, .result = 1 };
		ck_assert_int_eq(pthread_create(&tid[i], NULL, group_thread_run, &t[i]), 0);
	}
	for (i = 0; i < N; i++) {
		pthread_join(tid[i], NULL);
		ck_assert_int_eq(t[i].result, 0);
	}
	ck_assert_int_eq(count_entries(path, "queue"), N);
	ck_assert_int_eq(count_entries(path, "data"), N);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	commitgroup_get_stats(g, &st);
	ck_assert_uint_eq(st.commits, N);
	ck_assert_uint_ge(st.batches, 1);
	ck_assert_uint_le(st.batches, N);
	ck_assert_uint_ge(st.max_batch, 1);
	/* a message that cannot be prepared fails alone, and joins no batch */
	ck_assert_int_eq(spool_msg_create(spool, NULL, &msg), 0);
	ck_assert_int_eq(commitgroup_commit(g, msg), -EDESTADDRREQ);
	spool_msg_free(msg);
	commitgroup_get_stats(g, &st);
	ck_assert_uint_eq(st.commits, N);
	ck_assert_int_eq(count_entries(path, "queue"), N);
	commitgroup_free(g);
	spool_close(spool);
}
END_TEST

/*
 * spool_msg_create_unnamed(): no name in tmp/ at any time, the files
 * linked into data/, queue/ and a mailbox at the publish; one freed
 * unpublished leaves nothing.
 */
START_TEST(test_unnamed_files)
{
	char path[PATH_LEN], p[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("unnamed", path);
	static const char body[] = "Subject: unnamed\n\nno name until the publish\n";
	struct commitgroup *g;
	struct spool_msg *msg;
	struct envelope env, rec;
	size_t len;
	char *data;

	ck_assert_int_eq(commitgroup_new(spool, &g), 0);
	ck_assert_int_eq(spool_msg_create_unnamed(spool, "a@b", &msg), 0);
	snprintf(id, sizeof(id), "%s", spool_msg_id(msg));
	ck_assert_int_eq(spool_msg_write(msg, body, sizeof(body) - 1), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "bob"), 0);
	ck_assert_int_eq(envelope_init(&env, "x", "a@b", "test"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "c@d"), 0);
	ck_assert_int_eq(spool_msg_queue(msg, &env), 0);
	envelope_free(&env);
	ck_assert_int_eq(spool_msg_commit_start(msg), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(commitgroup_commit(g, msg), 0);
	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	pathf(p, "%s/data/%s", path, id);
	data = read_path(p, &len);
	ck_assert_uint_eq(len, strlen("Return-Path: <a@b>\n") + sizeof(body) - 1);
	ck_assert_mem_eq(data + len - (sizeof(body) - 1), body, sizeof(body) - 1);
	free(data);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, &rec), 0);
	ck_assert_str_eq(rec.id, id);
	ck_assert_int_eq(rec.data_offset, (long long) strlen("Return-Path: <a@b>\n"));
	envelope_free(&rec);
	ck_assert_int_eq(count_entries(path, "mail/bob/new"), 1);

	ck_assert_int_eq(spool_msg_create_unnamed(spool, NULL, &msg), 0);
	ck_assert_int_eq(spool_msg_write(msg, body, sizeof(body) - 1), 0);
	ck_assert_int_eq(spool_msg_commit_start(msg), 0);
	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(count_entries(path, "data"), 1);
	ck_assert_int_eq(count_entries(path, "queue"), 1);
	commitgroup_free(g);
	spool_close(spool);
}
END_TEST

/*
 * The publish of an unnamed file where the kernel refuses linkat(2) with
 * AT_EMPTY_PATH: always without CAP_DAC_READ_SEARCH before Linux 6.10
 * (Debian 12's kernel, and spoolgate-fs does not keep that capability),
 * and since then when the credentials changed after the open.  A child
 * drops every capability after the files are open; the links then go
 * through /proc/self/fd.
 */
START_TEST(test_unnamed_link_through_proc)
{
	char path[PATH_LEN], probe_name[64];
	struct spool *spool = open_spool("unnamedproc", path);
	int status;
	pid_t child;

	snprintf(probe_name, sizeof(probe_name), "probe.%ld", (long)getpid());
	if ((child = fork()) == 0) {
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct caps[2] = { { 0 } };
		struct commitgroup *g;
		struct spool_msg *msg[2];	/* an inline record; a message with a local recipient too */
		struct envelope env;
		int probe, tmpfd = spool_dirfd(spool, SPOOL_DIR_TMP);

		probe = openat(tmpfd, ".", O_TMPFILE | O_RDWR, 0600);
		if (probe < 0 || commitgroup_new(spool, &g) < 0 || envelope_init(&env, "x", "a@b", "test") < 0 ||
		    envelope_add_rcpt(&env, "c@d") < 0)
			_exit(2);
		for (int i = 0; i < 2; i++)
			if (spool_msg_create_unnamed(spool, NULL, &msg[i]) < 0 ||
			    spool_msg_write(msg[i], "Subject: s\n\nb\n", 14) < 0 || spool_msg_queue(msg[i], &env) < 0 ||
			    (i == 1 && spool_msg_deliver_local(msg[i], "bob") < 0))
				_exit(2);
		if (syscall(SYS_capset, &hdr, caps) < 0)
			_exit(3);
		/* the case under test: the descriptor alone is refused now */
		if (linkat(probe, "", tmpfd, probe_name, AT_EMPTY_PATH) == 0 || errno != ENOENT)
			_exit(4);
		if (commitgroup_commit(g, msg[0]) != 0 || commitgroup_commit(g, msg[1]) != 0)
			_exit(5);
		if (faccessat(spool_dirfd(spool, SPOOL_DIR_QUEUE), spool_msg_id(msg[0]), F_OK, 0) < 0 ||
		    faccessat(spool_dirfd(spool, SPOOL_DIR_DATA), spool_msg_id(msg[1]), F_OK, 0) < 0 ||
		    faccessat(spool_dirfd(spool, SPOOL_DIR_QUEUE), spool_msg_id(msg[1]), F_OK, 0) < 0)
			_exit(6);
		_exit(0);
	}
	ck_assert_int_gt(child, 0);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d (see the test)", status);
	ck_assert_int_eq(count_entries(path, "queue"), 2);
	ck_assert_int_eq(count_entries(path, "data"), 1);
	ck_assert_int_eq(count_entries(path, "mail/bob/new"), 1);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	spool_close(spool);
}
END_TEST

START_TEST(test_no_target_is_sticky)
{
	char path[PATH_LEN];
	struct spool *spool = open_spool("notarget", path);
	struct spool_msg *msg;

	ck_assert_int_eq(spool_msg_create(spool, "x@y", &msg), 0);
	ck_assert_int_eq(spool_msg_write(msg, "a\n", 2), 0);
	ck_assert_int_eq(spool_msg_commit_prepare(msg), -EDESTADDRREQ);
	ck_assert_int_eq(spool_msg_error(msg), -EDESTADDRREQ);
	ck_assert_int_eq(spool_msg_write(msg, "b\n", 2), -EDESTADDRREQ);
	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	spool_close(spool);
}
END_TEST

START_TEST(test_deliver_local_names)
{
	char path[PATH_LEN];
	struct spool *spool = open_spool("names", path);
	struct spool_msg *msg;

	ck_assert_int_eq(spool_msg_create(spool, NULL, &msg), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "../etc"), -EINVAL);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "a/b"), -EINVAL);
	ck_assert_int_eq(spool_msg_deliver_local(msg, ".hidden"), -EINVAL);
	ck_assert_int_eq(spool_msg_deliver_local(msg, ""), -EINVAL);
	ck_assert_uint_eq(spool_msg_local_count(msg), 0);
	spool_msg_free(msg);
	{
		char rp[700];

		memset(rp, 'a', sizeof(rp) - 1);
		rp[sizeof(rp) - 1] = '\0';
		rp[300] = '@';
		ck_assert_int_eq(spool_msg_create(spool, rp, &msg), -ENAMETOOLONG);
		ck_assert_int_eq(count_entries(path, "tmp"), 0);
	}
	ck_assert_int_eq(spool_mailbox_create(spool, "../x", NULL), -EINVAL);
	ck_assert_int_eq(spool_mailbox_create(spool, ".x", NULL), -EINVAL);
	ck_assert_int_eq(spool_mailbox_exists(spool, "bob"), 0);
	ck_assert_int_eq(spool_mailbox_create(spool, "bob", NULL), 0);
	ck_assert_int_eq(spool_mailbox_exists(spool, "bob"), 1);
	ck_assert_int_eq(spool_mailbox_create(spool, "bob", NULL), 0);
	ck_assert_int_eq(count_entries(path, "mail/bob"), 3);	/* tmp new cur */
	ck_assert_int_eq(count_entries(path, "mail/bob/cur"), 0);
	spool_close(spool);
}
END_TEST

/* Writes 1 MB and returns the first error from write or prepare. */
static int
write_until_error(struct spool_msg *msg)
{
	char chunk[4096];
	size_t i;
	int r;

	memset(chunk, 'x', sizeof(chunk));
	chunk[sizeof(chunk) - 1] = '\n';
	for (i = 0; i < 256; i++)
		if ((r = spool_msg_write(msg, chunk, sizeof(chunk))) < 0)
			return r;
	return spool_msg_commit_prepare(msg);
}

/* After a write error nothing of the message is visible and tmp/ ends empty. */
static void
check_sticky_and_invisible(struct spool *spool, const char *path, struct spool_msg *msg, int err)
{
	struct spool_dirset *dirs = spool_dirset_new(spool);

	ck_assert_int_eq(spool_msg_error(msg), err);
	ck_assert_int_eq(spool_msg_write(msg, "more\n", 5), err);
	ck_assert_int_eq(spool_msg_commit_prepare(msg), err);
	ck_assert_int_eq(spool_msg_commit_publish(msg, dirs), err);
	ck_assert_int_eq(spool_msg_commit(msg), err);
	spool_dirset_free(dirs);
	ck_assert_msg(count_entries(path, "mail/a/new") <= 0, "a message appeared in new/ after %s", strerror(-err));
	ck_assert_int_eq(count_entries(path, "data"), 0);
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
}

START_TEST(test_sticky_error_efbig)
{
	char path[PATH_LEN];
	struct spool *spool = open_spool("efbig", path);
	struct rlimit old, lim;
	struct spool_msg *msg;
	struct envelope env;
	void (*oldsig)(int);
	int r;

	ck_assert_int_eq(spool_msg_create(spool, "x@y", &msg), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "a"), 0);
	ck_assert_int_eq(envelope_init(&env, "x", "x@y", NULL), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "r@z"), 0);
	ck_assert_int_eq(spool_msg_queue(msg, &env), 0);
	envelope_free(&env);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 100000;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	r = write_until_error(msg);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, oldsig);
	ck_assert_msg(r == -EFBIG, "writing past RLIMIT_FSIZE gave %d (%s), want -EFBIG", r, strerror(-r));
	check_sticky_and_invisible(spool, path, msg, -EFBIG);

	/* The first cause wins: a later fault (no target) does not replace it. */
	ck_assert_int_eq(spool_msg_create(spool, "x@y", &msg), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	signal(SIGXFSZ, SIG_IGN);
	r = write_until_error(msg);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, oldsig);
	ck_assert_int_eq(r, -EFBIG);
	ck_assert_int_eq(spool_msg_commit_prepare(msg), -EFBIG);
	ck_assert_int_eq(spool_msg_error(msg), -EFBIG);
	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	spool_close(spool);
}
END_TEST

START_TEST(test_sticky_error_enospc)
{
	struct spool *spool;
	struct spool_msg *msg;
	int r;

	if (geteuid() != 0) {
		fprintf(stderr, "test_spool: not root, ENOSPC on tmpfs skipped\n");
		return;
	}
	ck_assert_int_eq(mkdir(tmpfs_mount, 0750), 0);
	if (mount("tmpfs", tmpfs_mount, "tmpfs", 0, "size=64k") < 0) {
		fprintf(stderr, "test_spool: cannot mount tmpfs (%s), ENOSPC skipped\n", strerror(errno));
		return;
	}
	ck_assert_int_eq(spool_open(tmpfs_mount, &spool), 0);
	ck_assert_int_eq(spool_msg_create(spool, "x@y", &msg), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "a"), 0);
	r = write_until_error(msg);
	ck_assert_msg(r == -ENOSPC, "writing 1 MB into 64 KB gave %d (%s), want -ENOSPC", r, strerror(-r));
	check_sticky_and_invisible(spool, tmpfs_mount, msg, -ENOSPC);
	spool_close(spool);
	ck_assert_int_eq(umount(tmpfs_mount), 0);
}
END_TEST

/* Run as root in another user's spool: a file or directory that cannot be given to the owner is not made. */
START_TEST(test_chown_failure_fails_the_creation)
{
	char path[PATH_LEN], name[SPOOL_NAME_MAX];
	struct spool *spool;
	struct stat st;
	int fd;

	if (geteuid() != 0) {
		fprintf(stderr, "test_spool: not root, chown failures skipped\n");
		return;
	}
	pathf(path, "%s/chown", tmpbase);
	ck_assert_int_eq(mkdir(path, 0750), 0);
	ck_assert_int_eq(chown(path, 65534, 65534), 0);
	ck_assert_int_eq(spool_open(path, &spool), 0);
	fchown_fails_with = EPERM;
	ck_assert_int_eq(spool_tmpfile(spool, name), -EPERM);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(spool_mailbox_create(spool, "bob", NULL), -EPERM);
	ck_assert_int_eq(count_entries(path, "mail"), 0);
	fchown_fails_with = 0;
	ck_assert_int_ge(fd = spool_tmpfile(spool, name), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq(st.st_uid, 65534);
	close(fd);
	ck_assert_int_eq(spool_mailbox_create(spool, "bob", NULL), 0);
	ck_assert_int_eq(spool_mailbox_exists(spool, "bob"), 1);
	spool_close(spool);
	/* A spool directory that cannot be given to its owner stops spool_open(). */
	pathf(name, "%s/tmp", path);
	testutil_rmtree(name);
	fchown_fails_with = EPERM;
	ck_assert_int_eq(spool_open(path, &spool), -EPERM);
	fchown_fails_with = 0;
	ck_assert_int_eq(count_entries(path, "tmp"), -1);
}
END_TEST

START_TEST(test_unpublish)
{
	char path[PATH_LEN];
	struct spool *spool = open_spool("unpublish", path);
	struct spool_dirset *dirs = spool_dirset_new(spool);
	struct spool_msg *msg;
	struct envelope env;

	ck_assert_int_eq(spool_msg_create(spool, "x@y", &msg), 0);
	ck_assert_int_eq(spool_msg_write(msg, "Subject: s\n\nb\n", 14), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "a"), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "b"), 0);
	ck_assert_int_eq(envelope_init(&env, "x", "x@y", NULL), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "r@z"), 0);
	ck_assert_int_eq(spool_msg_queue(msg, &env), 0);
	envelope_free(&env);
	ck_assert_int_eq(spool_msg_commit_prepare(msg), 0);
	ck_assert_int_eq(spool_msg_commit_publish(msg, dirs), 0);
	ck_assert_int_eq(count_entries(path, "mail/a/new"), 1);
	ck_assert_int_eq(count_entries(path, "mail/b/new"), 1);
	ck_assert_int_eq(count_entries(path, "data"), 1);
	ck_assert_int_eq(count_entries(path, "queue"), 1);
	spool_msg_commit_unpublish(msg);
	ck_assert_int_eq(count_entries(path, "mail/a/new"), 0);
	ck_assert_int_eq(count_entries(path, "mail/b/new"), 0);
	ck_assert_int_eq(count_entries(path, "data"), 0);
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	spool_msg_commit_unpublish(msg);	/* twice is harmless */
	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	spool_dirset_free(dirs);
	spool_close(spool);
}
END_TEST

/* A target that cannot take the message: what was published is taken back. */
START_TEST(test_publish_failure_takes_back)
{
	char path[PATH_LEN], p[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("pubfail", path);
	struct spool_dirset *dirs = spool_dirset_new(spool);
	struct spool_msg *msg;
	int r;

	/* mail/b is a file: mailbox b cannot be created, a was linked first */
	pathf(p, "%s/mail/b", path);
	write_path(p, "x", 1);
	ck_assert_int_eq(spool_msg_create(spool, "x@y", &msg), 0);
	ck_assert_int_eq(spool_msg_write(msg, "Subject: s\n\nb\n", 14), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "a"), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "b"), 0);
	ck_assert_int_eq(spool_msg_commit_prepare(msg), 0);
	r = spool_msg_commit_publish(msg, dirs);
	ck_assert_msg(r < 0, "publish into a file named like a mailbox succeeded");
	ck_assert_int_eq(spool_msg_error(msg), r);
	spool_msg_commit_unpublish(msg);
	ck_assert_int_eq(count_entries(path, "mail/a/new"), 0);
	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);

	/* spool_msg_commit() does the same by itself; a name it did not create stays */
	ck_assert_int_eq(spool_msg_create(spool, "x@y", &msg), 0);
	snprintf(id, sizeof(id), "%s", spool_msg_id(msg));
	pathf(p, "%s/data/%s", path, id);
	write_path(p, "not ours", 8);
	ck_assert_int_eq(spool_msg_write(msg, "Subject: s\n\nb\n", 14), 0);
	ck_assert_int_eq(spool_msg_deliver_local(msg, "a"), 0);
	{
		struct envelope env;

		ck_assert_int_eq(envelope_init(&env, "x", "x@y", NULL), 0);
		ck_assert_int_eq(envelope_add_rcpt(&env, "r@z"), 0);
		ck_assert_int_eq(spool_msg_queue(msg, &env), 0);
		envelope_free(&env);
	}
	ck_assert_int_eq(spool_msg_commit(msg), -EEXIST);
	ck_assert_int_eq(count_entries(path, "mail/a/new"), 0);
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	ck_assert_msg(exists_at(spool, SPOOL_DIR_DATA, id), "a data file the commit did not create was removed");
	spool_msg_free(msg);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);

	/* a directory set reports the first directory it cannot sync, then is empty */
	ck_assert_int_eq(spool_dirset_add(dirs, "queue"), 0);
	ck_assert_int_eq(spool_dirset_add(dirs, "no-such-dir"), 0);
	ck_assert_int_eq(spool_dirset_add(dirs, "queue"), 0);
	ck_assert_int_eq(spool_dirset_sync(dirs), -ENOENT);
	ck_assert_int_eq(spool_dirset_sync(dirs), 0);
	spool_dirset_free(dirs);
	spool_close(spool);
}
END_TEST

/* ---- recovery ---- */

static void
plant_tmp(const char *path, const char *name, int age_days)
{
	char p[PATH_LEN];
	struct timespec ts[2];

	pathf(p, "%s/tmp/%s", path, name);
	write_path(p, "half-written", 12);
	if (age_days > 0) {
		clock_gettime(CLOCK_REALTIME, &ts[0]);
		ts[0].tv_sec -= age_days * 86400L;
		ts[1] = ts[0];
		ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
}

START_TEST(test_recover)
{
	char path[PATH_LEN], p[PATH_LEN], name[PATH_LEN];
	struct spool *spool = open_spool("recover", path);
	const char *host = spool_hostname(spool);
	struct spool_recovery st;
	struct envelope env;
	long now = (long)time(NULL);
	pid_t dead = dead_pid();

	/* tmp/: dead pid of this host (removed), live pid 1 (kept), other host (kept), old (removed) */
	pathf(name, "%ld.M000001P%ldQ1.%s", now, (long)dead, host);
	plant_tmp(path, name, 0);
	pathf(name, "%ld.M000002P1Q1.%s", now, host);
	plant_tmp(path, name, 0);
	pathf(name, "%ld.M000003P%ldQ1.otherhost", now, (long)dead);
	plant_tmp(path, name, 0);
	pathf(name, "%ld.M000004P1Q2.%s", now - 2 * 86400, host);
	plant_tmp(path, name, 2);

	/* active/: a dead runner's claim with data (back to queue/), a live runner's claim (kept) */
	ck_assert_int_eq(envelope_init(&env, "100.M1P1Q1", "a@b", "smtp 127.0.0.1"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "c@d"), 0);
	pathf(p, "%s/active/100.M1P1Q1@%s,%ld", path, host, (long)dead);
	write_record(p, &env);
	pathf(p, "%s/data/100.M1P1Q1", path);
	write_path(p, "data", 4);
	snprintf(env.id, sizeof(env.id), "100.M1P1Q2");
	pathf(p, "%s/active/100.M1P1Q2@%s,1", path, host);
	write_record(p, &env);
	pathf(p, "%s/data/100.M1P1Q2", path);
	write_path(p, "data", 4);

	/* queue/: a record whose data never became durable (dropped) */
	snprintf(env.id, sizeof(env.id), "100.M1P1Q3");
	pathf(p, "%s/queue/100.M1P1Q3", path);
	write_record(p, &env);
	/*
	 * A message recorded in sent/ that also has a record in queue/, and
	 * one whose dead runner's claim is still in active/: both leftovers
	 * are removed (never delivered twice), the sent/ records and the
	 * data stay.
	 */
	snprintf(env.id, sizeof(env.id), "100.M1P1Q6");
	pathf(p, "%s/queue/100.M1P1Q6", path);
	write_record(p, &env);
	pathf(p, "%s/sent/100.M1P1Q6", path);
	write_record(p, &env);
	pathf(p, "%s/data/100.M1P1Q6", path);
	write_path(p, "data", 4);
	snprintf(env.id, sizeof(env.id), "100.M1P1Q7");
	pathf(p, "%s/active/100.M1P1Q7@%s,%ld", path, host, (long)dead);
	write_record(p, &env);
	pathf(p, "%s/sent/100.M1P1Q7", path);
	write_record(p, &env);
	pathf(p, "%s/data/100.M1P1Q7", path);
	write_path(p, "data", 4);
	/*
	 * data/: an orphan of a dead commit (its creator's pid dead: removed),
	 * one whose temporary is still in tmp/ (another host's commit under
	 * way: kept), and one of an unnamed commit whose creator lives (kept:
	 * between its data's link and its record's)
	 */
	pathf(p, "%s/data/100.M1P%ldQ4", path, (long)dead);
	write_path(p, "orphan", 6);
	pathf(p, "%s/data/100.M1P%ldQ5", path, (long)dead);
	write_path(p, "in flight", 9);
	pathf(name, "100.M1P%ldQ5.otherhost", (long)dead);
	plant_tmp(path, name, 0);
	pathf(p, "%s/data/100.M1P%ldQ8", path, (long)getppid());
	write_path(p, "unnamed, in flight", 18);
	envelope_free(&env);
	ck_assert_int_eq(spool_mailbox_create(spool, "a", NULL), 0);
	ck_assert_int_eq(spool_mailbox_create(spool, "b", NULL), 0);

	ck_assert_int_eq(spool_recover(spool, &st), 0);
	ck_assert_uint_eq(st.temporaries_removed, 2);
	ck_assert_uint_eq(st.claims_returned, 1);
	ck_assert_uint_eq(st.records_dropped, 1);
	ck_assert_uint_eq(st.records_superseded, 2);	/* the queue/ copy, and the claim without a return */
	ck_assert_uint_eq(st.orphans_removed, 1);
	ck_assert_uint_eq(st.queued, 1);
	ck_assert_uint_eq(st.mailboxes, 2);

	ck_assert_int_eq(count_entries(path, "tmp"), 3);
	pathf(name, "%ld.M000002P1Q1.%s", now, host);
	ck_assert_msg(exists_at(spool, SPOOL_DIR_TMP, name), "live process's temporary removed");
	pathf(name, "%ld.M000003P%ldQ1.otherhost", now, (long)dead);
	ck_assert_msg(exists_at(spool, SPOOL_DIR_TMP, name), "other host's temporary removed");
	ck_assert(exists_at(spool, SPOOL_DIR_QUEUE, "100.M1P1Q1"));
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), "100.M1P1Q1", &env), 0);
	envelope_free(&env);
	ck_assert_int_eq(count_entries(path, "active"), 1);
	ck_assert(!exists_at(spool, SPOOL_DIR_QUEUE, "100.M1P1Q3"));
	pathf(name, "100.M1P%ldQ4", (long)dead);
	ck_assert(!exists_at(spool, SPOOL_DIR_DATA, name));
	pathf(name, "100.M1P%ldQ5", (long)dead);
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, name));
	pathf(name, "100.M1P%ldQ8", (long)getppid());
	ck_assert_msg(exists_at(spool, SPOOL_DIR_DATA, name), "data of a live creator's commit removed");
	ck_assert(!exists_at(spool, SPOOL_DIR_QUEUE, "100.M1P1Q6"));
	ck_assert(!exists_at(spool, SPOOL_DIR_QUEUE, "100.M1P1Q7"));
	ck_assert(exists_at(spool, SPOOL_DIR_SENT, "100.M1P1Q6"));
	ck_assert(exists_at(spool, SPOOL_DIR_SENT, "100.M1P1Q7"));
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, "100.M1P1Q6"));
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, "100.M1P1Q7"));
	ck_assert_int_eq(count_entries(path, "data"), 6);

	/* a second run finds nothing more to do */
	ck_assert_int_eq(spool_recover(spool, &st), 0);
	ck_assert_uint_eq(st.temporaries_removed + st.claims_returned + st.records_dropped + st.records_superseded +
	    st.orphans_removed, 0);
	ck_assert_uint_eq(st.queued, 1);
	spool_close(spool);
}
END_TEST

/* ---- queue ---- */

static const char queued_body[] = "From: a@example.org\nTo: r1@example.net\nSubject: q\n\nbody line\n";

/* Queues one message for rcpts (NULL-terminated); its id into id. */
static void
queue_one(struct spool *spool, const char *const *rcpts, char id[SPOOL_ID_MAX])
{
	struct spool_msg *msg;
	struct envelope env;

	ck_assert_int_eq(spool_msg_create(spool, "a@example.org", &msg), 0);
	ck_assert_int_eq(spool_msg_write(msg, queued_body, sizeof(queued_body) - 1), 0);
	ck_assert_int_eq(envelope_init(&env, "x", "a@example.org", "smtp 127.0.0.1"), 0);
	for (; *rcpts; rcpts++)
		ck_assert_int_eq(envelope_add_rcpt(&env, *rcpts), 0);
	ck_assert_int_eq(spool_msg_queue(msg, &env), 0);
	envelope_free(&env);
	ck_assert_int_eq(spool_msg_commit(msg), 0);
	snprintf(id, SPOOL_ID_MAX, "%s", spool_msg_id(msg));
	spool_msg_free(msg);
}

struct scan_seen {
	char		ids[8][SPOOL_ID_MAX];
	long long	next[8];
	int		n;
	int		stop_after;
};

static int
scan_cb(const char *id, const struct envelope *env, void *arg)
{
	struct scan_seen *s = arg;

	if (s->n < 8) {
		snprintf(s->ids[s->n], SPOOL_ID_MAX, "%s", id);
		s->next[s->n] = env->next_attempt;
	}
	s->n++;
	return s->stop_after > 0 && s->n >= s->stop_after;
}

static int
seen_id(const struct scan_seen *s, const char *id)
{
	int i;

	for (i = 0; i < s->n && i < 8; i++)
		if (strcmp(s->ids[i], id) == 0)
			return 1;
	return 0;
}

static const char *const two_rcpts[] = { "r1@example.net", "r2@example.net", NULL };

/* Prepare, publish and sync a finish. */
static void
finish(struct spool *spool, struct queue_claim *qc, enum queue_outcome outcome, bool keep_sent)
{
	struct spool_dirset *dirs = spool_dirset_new(spool);

	ck_assert_int_eq(queue_finish_prepare(qc, outcome, keep_sent), 0);
	ck_assert_int_eq(queue_finish_publish(qc, dirs), 0);
	ck_assert_int_eq(spool_dirset_sync(dirs), 0);
	spool_dirset_free(dirs);
}

/* The one reading of a parked claim's name, for the mount and mailq. */
START_TEST(test_parked_claim_id)
{
	char id[SPOOL_ID_MAX], longname[SPOOL_ID_MAX + 32];

	ck_assert_int_eq(spool_parked_claim_id("100.M1P1Q1@gw.test,4242.old", id), 0);
	ck_assert_str_eq(id, "100.M1P1Q1");
	ck_assert_int_eq(spool_parked_claim_id("100.M1P1Q1@gw.test,4242.new", id), -1);	/* the new record */
	ck_assert_int_eq(spool_parked_claim_id("100.M1P1Q1@gw.test,4242", id), -1);		/* a claim */
	ck_assert_int_eq(spool_parked_claim_id("100.M1P1Q1@gw.test.old", id), -1);		/* no pid */
	ck_assert_int_eq(spool_parked_claim_id("@gw.test,1.old", id), -1);
	ck_assert_int_eq(spool_parked_claim_id("100.M1P1Q1.gw.test", id), -1);		/* a temporary */
	memset(longname, 'a', SPOOL_ID_MAX);
	snprintf(longname + SPOOL_ID_MAX, sizeof(longname) - SPOOL_ID_MAX, "@h,1.old");
	ck_assert_int_eq(spool_parked_claim_id(longname, id), -1);
}
END_TEST

/* Commits one unnamed message for rcpts through a group (spool-fs's way); its id into id. */
static void
queue_unnamed(struct spool *spool, struct commitgroup *g, const char *body, size_t len, char id[SPOOL_ID_MAX])
{
	struct spool_msg *msg;
	struct envelope env;

	ck_assert_int_eq(spool_msg_create_unnamed(spool, "a@example.org", &msg), 0);
	write_chunked(msg, body, len);
	ck_assert_int_eq(envelope_init(&env, "x", "a@example.org", "fs outbox/t.eml uid=0"), 0);
	ck_assert_int_eq(envelope_add_rcpt(&env, "r1@example.net"), 0);
	ck_assert_int_eq(spool_msg_queue(msg, &env), 0);
	envelope_free(&env);
	ck_assert_int_eq(commitgroup_commit(g, msg), 0);
	snprintf(id, SPOOL_ID_MAX, "%s", spool_msg_id(msg));
	spool_msg_free(msg);
}

/* The message of claim qc, read from its data descriptor at data-offset. */
static void
assert_claim_message(struct queue_claim *qc, const char *body, size_t len)
{
	char *got = malloc(len + 1);
	const struct envelope *env = queue_claim_envelope(qc);

	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(spool_pread_all(queue_claim_data_fd(qc), got, len + 1, env->data_offset), (ssize_t)len);
	ck_assert_mem_eq(got, body, len);
	free(got);
}

/*
 * A small unnamed message for the relay alone is one file, an inline
 * record (envelope.h): queue/<id> holds the record, an empty line, the
 * Return-Path line and the message; nothing in data/.  A claim reads the
 * message from that file; the first rewrite links it as data/<id> and
 * publishes a plain record whose data-offset skips the old text.  A
 * message past the write buffer, or with a local recipient, keeps two files.
 */
START_TEST(test_inline_record)
{
	char path[PATH_LEN], p[PATH_LEN], id[SPOOL_ID_MAX], big_id[SPOOL_ID_MAX], *raw, *big;
	struct spool *spool = open_spool("inline", path);
	const size_t big_len = (64u << 10) + 1;
	struct spool_recovery rec;
	struct commitgroup *g;
	struct queue_claim *qc;
	struct envelope env;
	struct stat a, b;
	size_t len;

	ck_assert_int_eq(commitgroup_new(spool, &g), 0);
	queue_unnamed(spool, g, queued_body, sizeof(queued_body) - 1, id);
	ck_assert(!exists_at(spool, SPOOL_DIR_DATA, id));
	pathf(p, "%s/queue/%s", path, id);
	raw = read_path(p, &len);
	ck_assert_ptr_nonnull(strstr(raw, "\ndata: inline\n"));
	ck_assert_ptr_nonnull(strstr(raw, "\n\nReturn-Path: <a@example.org>\n"));
	ck_assert_mem_eq(raw + len - (sizeof(queued_body) - 1), queued_body, sizeof(queued_body) - 1);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, &env), 0);
	ck_assert(env.inline_data);
	ck_assert_int_eq(env.data_offset, (long long)(len - (sizeof(queued_body) - 1)));
	ck_assert_int_eq(env.text_len, (long long)(strstr(raw, "\n\n") - raw + 1));
	envelope_free(&env);
	free(raw);

	/* recovery keeps it: its data is in it */
	ck_assert_int_eq(spool_recover(spool, &rec), 0);
	ck_assert_uint_eq(rec.records_dropped, 0);
	ck_assert_uint_eq(rec.queued, 1);

	/* claimed: the message is read from the claim's own file */
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	assert_claim_message(qc, queued_body, sizeof(queued_body) - 1);
	/* a first try that linked the data and was not published, then a retry: the same file */
	ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), 0);
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, id));
	ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), 0);
	finish(spool, qc, QUEUE_DEFERRED, true);
	queue_finish_release(qc, true);
	queue_claim_free(qc);
	/* the rewrite: a plain record; data/<id> is the inline file, read from the same offset */
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, &env), 0);
	ck_assert(!env.inline_data);
	pathf(p, "%s/data/%s", path, id);
	raw = read_path(p, &len);
	ck_assert_ptr_nonnull(strstr(raw, "\ndata: inline\n"));
	ck_assert_int_eq(env.data_offset, (long long)(len - (sizeof(queued_body) - 1)));
	envelope_free(&env);
	free(raw);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	assert_claim_message(qc, queued_body, sizeof(queued_body) - 1);
	finish(spool, qc, QUEUE_SENT, false);
	queue_finish_release(qc, true);
	queue_claim_free(qc);
	ck_assert_int_eq(queue_locate(spool, id), -ENOENT);
	ck_assert(!exists_at(spool, SPOOL_DIR_DATA, id));

	/* delivered at the first try and not kept: nothing was ever linked into data/ */
	queue_unnamed(spool, g, queued_body, sizeof(queued_body) - 1, id);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	finish(spool, qc, QUEUE_SENT, false);
	queue_finish_release(qc, true);
	queue_claim_free(qc);
	ck_assert_int_eq(queue_locate(spool, id), -ENOENT);
	ck_assert_int_eq(count_entries(path, "data"), 0);

	/* failed at the first try: a plain record in failed/, its data in data/ */
	queue_unnamed(spool, g, queued_body, sizeof(queued_body) - 1, id);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	finish(spool, qc, QUEUE_FAILED, true);
	queue_finish_release(qc, true);
	queue_claim_free(qc);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_FAILED), id, &env), 0);
	ck_assert(!env.inline_data);
	envelope_free(&env);
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, id));

	/* a data/<id> that is another file: the rewrite refuses, the claim stays */
	queue_unnamed(spool, g, queued_body, sizeof(queued_body) - 1, id);
	pathf(p, "%s/data/%s", path, id);
	write_path(p, "other", 5);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), -EEXIST);
	queue_claim_free(qc);	/* given back to queue/ as it was */
	ck_assert_int_eq(fstatat(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, &a, 0), 0);
	ck_assert_int_eq(fstatat(spool_dirfd(spool, SPOOL_DIR_DATA), id, &b, 0), 0);
	ck_assert_uint_ne(a.st_ino, b.st_ino);

	/* past the write buffer: two files, as before */
	big = make_payload(big_len);
	queue_unnamed(spool, g, big, big_len, big_id);
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, big_id));
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), big_id, &env), 0);
	ck_assert(!env.inline_data);
	envelope_free(&env);
	ck_assert_int_eq(queue_claim(spool, big_id, &qc), 0);
	assert_claim_message(qc, big, big_len);
	queue_claim_free(qc);
	free(big);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	commitgroup_free(g);
	spool_close(spool);
}
END_TEST

/* Changes one byte of dir/name, at off from its end (a block a power cut did not write). */
static void
tear_file(const char *path, const char *dir, const char *name, size_t from_end)
{
	char p[PATH_LEN], *raw;
	size_t len;

	pathf(p, "%s/%s/%s", path, dir, name);
	raw = read_path(p, &len);
	ck_assert_uint_gt(len, from_end);
	raw[len - 1 - from_end] ^= 0x01;
	write_path(p, raw, len);
	free(raw);
}

/*
 * An inline record is sealed (envelope.h), so the group publishes it
 * without syncing its file first: a batch of inline records costs one
 * sync (content_syncs stays 0), a message of two files still two.  A
 * record torn by a power cut before that sync is refused where it is
 * read: a claim sets it aside in failed/, and recovery drops it as a
 * commit that never completed, whole records around it kept.  So is an
 * older record's whole file under a new name (its id is another).
 */
START_TEST(test_inline_record_sealed)
{
	char path[PATH_LEN], id[4][SPOOL_ID_MAX], big_id[SPOOL_ID_MAX], p[PATH_LEN], *raw, *big;
	struct spool *spool = open_spool("sealed", path);
	const size_t big_len = (64u << 10) + 1;
	struct commitgroup_stats st;
	struct spool_recovery rec;
	struct commitgroup *g;
	struct queue_claim *qc;
	struct envelope env;
	size_t len, i;

	ck_assert_int_eq(commitgroup_new(spool, &g), 0);
	for (i = 0; i < 4; i++)
		queue_unnamed(spool, g, queued_body, sizeof(queued_body) - 1, id[i]);
	commitgroup_get_stats(g, &st);
	ck_assert_uint_eq(st.commits, 4);
	ck_assert_uint_eq(st.content_syncs, 0);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id[0], &env), 0);
	ck_assert(env.inline_data && env.inline_sealed);
	envelope_free(&env);
	big = make_payload(big_len);
	queue_unnamed(spool, g, big, big_len, big_id);
	free(big);
	commitgroup_get_stats(g, &st);
	ck_assert_uint_eq(st.content_syncs, 1);

	/* a claim of a torn record: refused, set aside in failed/ */
	tear_file(path, "queue", id[1], 3);
	ck_assert_int_eq(queue_claim(spool, id[1], &qc), -EBADMSG);
	ck_assert(!exists_at(spool, SPOOL_DIR_QUEUE, id[1]));
	ck_assert(exists_at(spool, SPOOL_DIR_FAILED, id[1]));
	ck_assert_int_eq(count_entries(path, "active"), 0);

	/* recovery: a torn text, and id[0]'s whole file under id[3]'s name, dropped; id[0] and big kept */
	tear_file(path, "queue", id[2], sizeof(queued_body) + 40);	/* in the record's text */
	pathf(p, "%s/queue/%s", path, id[0]);
	raw = read_path(p, &len);
	pathf(p, "%s/queue/%s", path, id[3]);
	write_path(p, raw, len);
	free(raw);
	ck_assert_int_eq(spool_recover(spool, &rec), 0);
	ck_assert_uint_eq(rec.records_dropped, 2);
	ck_assert_uint_eq(rec.queued, 2);
	ck_assert(exists_at(spool, SPOOL_DIR_QUEUE, id[0]));
	ck_assert(exists_at(spool, SPOOL_DIR_QUEUE, big_id));
	ck_assert(!exists_at(spool, SPOOL_DIR_QUEUE, id[2]));
	ck_assert(!exists_at(spool, SPOOL_DIR_QUEUE, id[3]));
	ck_assert_int_eq(queue_claim(spool, id[0], &qc), 0);
	assert_claim_message(qc, queued_body, sizeof(queued_body) - 1);
	queue_claim_free(qc);
	commitgroup_free(g);
	spool_close(spool);
}
END_TEST

START_TEST(test_scan_claim_release)
{
	char path[PATH_LEN], id1[SPOOL_ID_MAX], id2[SPOOL_ID_MAX], claim[PATH_LEN], want[PATH_LEN], p[PATH_LEN];
	struct spool *spool = open_spool("claim", path);
	struct scan_seen seen = { .n = 0 };
	struct queue_claim *qc, *qc2;
	struct envelope *env;
	char buf[256], *before, *after;
	size_t blen, alen;
	ssize_t n;

	queue_one(spool, two_rcpts, id1);
	queue_one(spool, two_rcpts, id2);
	ck_assert_int_eq(queue_scan(spool, scan_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 2);
	ck_assert(seen_id(&seen, id1) && seen_id(&seen, id2));
	ck_assert_int_eq(seen.next[0], 0);
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 1;
	ck_assert_int_eq(queue_scan(spool, scan_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 1);

	pathf(p, "%s/queue/%s", path, id1);
	before = read_path(p, &blen);
	ck_assert_int_eq(queue_locate(spool, id1), SPOOL_DIR_QUEUE);
	ck_assert_int_eq(queue_claim(spool, id1, &qc), 0);
	ck_assert_str_eq(queue_claim_id(qc), id1);
	/* renamed into active/<id>@<host>,<pid> */
	ck_assert(!exists_at(spool, SPOOL_DIR_QUEUE, id1));
	only_entry(path, "active", claim, sizeof(claim));
	pathf(want, "%s@%s,%ld", id1, spool_hostname(spool), (long)getpid());
	ck_assert_str_eq(claim, want);
	ck_assert_int_eq(queue_locate(spool, id1), SPOOL_DIR_ACTIVE);
	env = queue_claim_envelope(qc);
	ck_assert_str_eq(env->id, id1);
	ck_assert_str_eq(env->from, "a@example.org");
	ck_assert_uint_eq(env->nrcpt, 2);
	/* the data, read from data_offset, is the message without Return-Path */
	n = pread(queue_claim_data_fd(qc), buf, sizeof(buf), env->data_offset);
	ck_assert_int_eq(n, (ssize_t)sizeof(queued_body) - 1);
	ck_assert_mem_eq(buf, queued_body, (size_t)n);

	/* a second claim of the same id: gone */
	ck_assert_int_eq(queue_claim(spool, id1, &qc2), -ENOENT);
	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(queue_scan(spool, scan_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_str_eq(seen.ids[0], id2);

	/* release: back in queue/, unchanged */
	ck_assert_int_eq(queue_claim_release(qc), 0);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	after = read_path(p, &alen);
	ck_assert_uint_eq(alen, blen);
	ck_assert_mem_eq(after, before, blen);
	queue_claim_free(qc);
	ck_assert_int_eq(queue_locate(spool, id1), SPOOL_DIR_QUEUE);

	/* freeing an unfinished claim releases it too, even a prepared one (shutdown) */
	ck_assert_int_eq(queue_claim(spool, id2, &qc), 0);
	ck_assert_int_eq(queue_finish_publish(qc, NULL), -EINVAL);	/* not prepared */
	queue_claim_envelope(qc)->attempts = 7;
	ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 1);
	queue_claim_free(qc);
	{
		struct envelope rec;

		ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id2, &rec), 0);
		ck_assert_uint_eq(rec.attempts, 0);	/* unchanged: the update was never published */
		envelope_free(&rec);
	}
	ck_assert_int_eq(queue_locate(spool, id2), SPOOL_DIR_QUEUE);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	free(before);
	free(after);
	spool_close(spool);
}
END_TEST

START_TEST(test_finish_deferred)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("deferred", path);
	struct scan_seen seen = { .n = 0 };
	struct queue_claim *qc;
	struct envelope *env, rec;
	long long later = (long long)time(NULL) + 600;

	queue_one(spool, two_rcpts, id);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	env = queue_claim_envelope(qc);
	env->attempts++;
	env->next_attempt = later;
	ck_assert_int_eq(envelope_set_rcpt(env, 0, RCPT_SENT, "250 2.0.0 Ok"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 1, RCPT_PENDING, "451 4.3.0 try later"), 0);
	ck_assert_int_eq(envelope_set_last(env, "127.0.0.1:2525", "451 4.3.0 try later"), 0);
	ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), 0);
	/* prepared: the new record waits in tmp/, the claim is still the record */
	ck_assert_int_eq(count_entries(path, "tmp"), 1);
	ck_assert_int_eq(count_entries(path, "active"), 1);
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	{
		struct spool_dirset *dirs = spool_dirset_new(spool);

		ck_assert_int_eq(queue_finish_publish(qc, dirs), 0);
		ck_assert_int_eq(spool_dirset_sync(dirs), 0);
		spool_dirset_free(dirs);
	}
	/* published: the claim is parked in tmp/ until the release after the sync */
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 1);
	queue_finish_release(qc, true);
	queue_claim_free(qc);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(queue_locate(spool, id), SPOOL_DIR_QUEUE);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, &rec), 0);
	ck_assert_uint_eq(rec.attempts, 1);
	ck_assert_int_eq(rec.next_attempt, later);
	ck_assert_int_eq(rec.rcpt[0].state, RCPT_SENT);
	ck_assert_int_eq(rec.rcpt[1].state, RCPT_PENDING);
	ck_assert_str_eq(rec.rcpt[1].reply, "451 4.3.0 try later");
	ck_assert_str_eq(rec.last_host, "127.0.0.1:2525");
	envelope_free(&rec);
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, id));
	ck_assert_int_eq(queue_scan(spool, scan_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_int_eq(seen.next[0], later);
	spool_close(spool);
}
END_TEST

START_TEST(test_finish_sent_keep)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("sentkeep", path);
	struct queue_claim *qc;
	struct envelope *env, rec;

	queue_one(spool, two_rcpts, id);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	env = queue_claim_envelope(qc);
	ck_assert_int_eq(envelope_set_rcpt(env, 0, RCPT_SENT, "250 2.0.0 Ok: queued as A"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 1, RCPT_SENT, "250 2.0.0 Ok: queued as A"), 0);
	finish(spool, qc, QUEUE_SENT, true);
	/* Parked, then into sent/; the parked claim goes at the release, and only when sent/ was synced. */
	ck_assert_int_eq(queue_locate(spool, id), SPOOL_DIR_SENT);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 1);
	queue_finish_release(qc, false);
	ck_assert_int_eq(count_entries(path, "tmp"), 1);
	queue_finish_release(qc, true);
	queue_claim_free(qc);
	ck_assert_int_eq(queue_locate(spool, id), SPOOL_DIR_SENT);
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, id));
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_SENT), id, &rec), 0);
	ck_assert_uint_eq(envelope_count(&rec, RCPT_SENT), 2);
	ck_assert_str_eq(rec.rcpt[1].reply, "250 2.0.0 Ok: queued as A");
	envelope_free(&rec);
	spool_close(spool);
}
END_TEST

/*
 * The relay's batch: records written unsynced (queue_finish_write), one
 * sync of the filesystem, then published.  A second write of the same
 * claim (a retry after a failed sync) leaves one temporary, not two.
 */
START_TEST(test_finish_write_then_fs_sync)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("fssync", path);
	struct spool_dirset *dirs = spool_dirset_new(spool);
	struct queue_claim *qc;
	struct envelope *env, rec;
	int fd;

	ck_assert_msg(!queue_finish_writes_record(QUEUE_SENT, false), "keep_sent = no writes no record");
	ck_assert(queue_finish_writes_record(QUEUE_SENT, true));
	ck_assert(queue_finish_writes_record(QUEUE_DEFERRED, false));
	ck_assert(queue_finish_writes_record(QUEUE_FAILED, false));
	queue_one(spool, two_rcpts, id);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	env = queue_claim_envelope(qc);
	ck_assert_int_eq(envelope_set_rcpt(env, 0, RCPT_SENT, "250 2.0.0 Ok"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 1, RCPT_SENT, "250 2.0.0 Ok"), 0);
	ck_assert_int_eq(queue_finish_write(qc, QUEUE_SENT, true), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 1);
	ck_assert_int_eq(queue_finish_write(qc, QUEUE_SENT, true), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 1);
	/* The unit tests' spools are on the build's filesystem: ext4 or tmpfs here. */
	fd = spool_fs_sync_open(spool);
	if (fd == -EOPNOTSUPP)
		fprintf(stderr, "test_finish_write_then_fs_sync: spool_fs_sync not available here\n");
	else {
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(spool_fs_sync(fd), 0);
		close(fd);
	}
	ck_assert_int_eq(queue_finish_publish(qc, dirs), 0);
	ck_assert_int_eq(spool_dirset_sync(dirs), 0);
	queue_finish_release(qc, true);
	queue_claim_free(qc);
	ck_assert_int_eq(queue_locate(spool, id), SPOOL_DIR_SENT);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_SENT), id, &rec), 0);
	ck_assert_uint_eq(envelope_count(&rec, RCPT_SENT), 2);
	envelope_free(&rec);
	spool_dirset_free(dirs);
	spool_close(spool);
}
END_TEST

START_TEST(test_finish_sent_drop)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("sentdrop", path);
	struct queue_claim *qc;
	struct stat st;
	int datafd;

	queue_one(spool, two_rcpts, id);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	datafd = queue_claim_data_fd(qc);
	finish(spool, qc, QUEUE_SENT, false);
	/* The unlinked data file is closed by the release (its blocks freed there, not at free). */
	ck_assert_int_eq(queue_claim_data_fd(qc), datafd);
	queue_finish_release(qc, true);
	ck_assert_int_eq(queue_claim_data_fd(qc), -1);
	ck_assert_int_eq(fstat(datafd, &st), -1);
	ck_assert_int_eq(errno, EBADF);
	queue_claim_free(qc);
	ck_assert_int_eq(queue_locate(spool, id), -ENOENT);
	ck_assert(!exists_at(spool, SPOOL_DIR_DATA, id));
	ck_assert_int_eq(count_entries(path, "sent"), 0);
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	spool_close(spool);
}
END_TEST

START_TEST(test_finish_failed)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("failed", path);
	struct queue_claim *qc;
	struct envelope *env, rec;

	queue_one(spool, two_rcpts, id);
	ck_assert_int_eq(queue_claim(spool, id, &qc), 0);
	env = queue_claim_envelope(qc);
	ck_assert_int_eq(envelope_set_rcpt(env, 0, RCPT_FAILED, "550 5.1.1 <r1@example.net>: no such user"), 0);
	ck_assert_int_eq(envelope_set_rcpt(env, 1, RCPT_FAILED, "552 5.2.2 mailbox full"), 0);
	ck_assert_int_eq(envelope_set_last(env, "127.0.0.1:2525", "552 5.2.2 mailbox full"), 0);
	finish(spool, qc, QUEUE_FAILED, true);
	queue_finish_release(qc, true);
	queue_claim_free(qc);
	ck_assert_int_eq(queue_locate(spool, id), SPOOL_DIR_FAILED);
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert(exists_at(spool, SPOOL_DIR_DATA, id));
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_FAILED), id, &rec), 0);
	ck_assert_int_eq(rec.rcpt[0].state, RCPT_FAILED);
	ck_assert_str_eq(rec.rcpt[0].reply, "550 5.1.1 <r1@example.net>: no such user");
	ck_assert_int_eq(rec.rcpt[1].state, RCPT_FAILED);
	ck_assert_str_eq(rec.rcpt[1].reply, "552 5.2.2 mailbox full");
	ck_assert_str_eq(rec.last_reply, "552 5.2.2 mailbox full");
	envelope_free(&rec);
	spool_close(spool);
}
END_TEST

START_TEST(test_scan_moves_corrupt_to_failed)
{
	char path[PATH_LEN], p[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("corrupt", path);
	struct scan_seen seen = { .n = 0 };
	struct queue_claim *qc;
	static const char garbage[] = "this is no envelope\n";
	int r;

	queue_one(spool, two_rcpts, id);
	pathf(p, "%s/queue/1.M1P1Q1", path);
	write_path(p, garbage, sizeof(garbage) - 1);
	pathf(p, "%s/queue/1.M1P1Q2", path);
	write_path(p, "spoolgate-envelope: 1\nid: 1.M1P1Q2\n", 35);	/* cut */
	ck_assert_int_eq(queue_scan(spool, scan_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_str_eq(seen.ids[0], id);
	ck_assert_int_eq(queue_locate(spool, "1.M1P1Q1"), SPOOL_DIR_FAILED);
	ck_assert_int_eq(queue_locate(spool, "1.M1P1Q2"), SPOOL_DIR_FAILED);
	ck_assert_int_eq(count_entries(path, "queue"), 1);

	/* a corrupt record as the only (so the last) entry: the scan itself still succeeds */
	ck_assert_int_eq(renameat(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, spool_dirfd(spool, SPOOL_DIR_SENT), id), 0);
	pathf(p, "%s/queue/1.M1P1Q4", path);
	write_path(p, garbage, sizeof(garbage) - 1);
	memset(&seen, 0, sizeof(seen));
	r = queue_scan(spool, scan_cb, &seen);
	ck_assert_msg(r == 0, "queue_scan with only a corrupt record = %d (%s), want 0", r, strerror(-r));
	ck_assert_int_eq(seen.n, 0);
	ck_assert_int_eq(queue_locate(spool, "1.M1P1Q4"), SPOOL_DIR_FAILED);

	/* a corrupt record met by a claim goes to failed/ too */
	pathf(p, "%s/queue/1.M1P1Q3", path);
	write_path(p, garbage, sizeof(garbage) - 1);
	ck_assert_int_eq(queue_claim(spool, "1.M1P1Q3", &qc), -EBADMSG);
	ck_assert_int_eq(queue_locate(spool, "1.M1P1Q3"), SPOOL_DIR_FAILED);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	spool_close(spool);
}
END_TEST

/* What a function writes to stderr (the log), NUL-terminated into buf. */
static int saved_stderr = -1;

static void
capture_stderr(const char *file)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(STDERR_FILENO);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

static void
captured_stderr(const char *file, char *buf, size_t size)
{
	FILE *fp;
	size_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	fp = fopen(file, "r");
	ck_assert_ptr_nonnull(fp);
	n = fread(buf, 1, size - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

/* failed/ cannot take the record (it was removed): the record stays in queue/ and the log says so. */
START_TEST(test_corrupt_record_that_cannot_move)
{
	char path[PATH_LEN], p[PATH_LEN], log[4096];
	struct spool *spool = open_spool("corrupt-stuck", path);
	struct scan_seen seen = { .n = 0 };
	static const char garbage[] = "this is no envelope\n";

	pathf(p, "%s/queue/1.M1P1Q1", path);
	write_path(p, garbage, sizeof(garbage) - 1);
	pathf(p, "%s/failed", path);
	ck_assert_int_eq(rmdir(p), 0);		/* the descriptor now names a removed directory */
	pathf(p, "%s/scan.log", tmpbase);
	capture_stderr(p);
	ck_assert_int_eq(queue_scan(spool, scan_cb, &seen), 0);
	captured_stderr(p, log, sizeof(log));
	ck_assert_int_eq(seen.n, 0);
	ck_assert_msg(exists_at(spool, SPOOL_DIR_QUEUE, "1.M1P1Q1"), "the record vanished");
	ck_assert_msg(strstr(log, "action=\"left in queue/\"") != NULL, "log: %s", log);
	ck_assert_msg(strstr(log, "moved to failed/") == NULL, "the log claims a move that failed: %s", log);
	spool_close(spool);
}
END_TEST

/* A record with more recipients than ENVELOPE_MAX_RCPT: no valid record. */
static void
write_too_many_rcpts(const char *path, const char *id)
{
	FILE *fp = fopen(path, "w");
	size_t i;

	ck_assert_ptr_nonnull(fp);
	fprintf(fp, "spoolgate-envelope: 1\nid: %s\ncreated: 1\nfrom: <a@b>\ndata-offset: 0\n", id);
	for (i = 0; i <= ENVELOPE_MAX_RCPT; i++)
		fprintf(fp, "rcpt: pending <r%zu@x>\n", i);
	fprintf(fp, "attempts: 0\nnext-attempt: 0\n");
	ck_assert_int_eq(fclose(fp), 0);
}

/*
 * Entries in queue/ that are no readable record (a symlink, a directory,
 * a record over the recipient bound) must not stop the scan: each is
 * tested alone (so it is the last entry), then all with good records.
 */
START_TEST(test_scan_survives_odd_entries)
{
	char path[PATH_LEN], p[PATH_LEN], ids[3][SPOOL_ID_MAX];
	struct spool *spool = open_spool("oddentries", path);
	struct scan_seen seen;
	int r, i;

	pathf(p, "%s/queue/1.M1P1Q5", path);
	ck_assert_int_eq(symlink("../data/1.M1P1Q5", p), 0);
	memset(&seen, 0, sizeof(seen));
	r = queue_scan(spool, scan_cb, &seen);
	ck_assert_msg(r == 0, "queue_scan with a symlink in queue/ = %d (%s)", r, strerror(-r));

	/* Set aside into failed/, where it stays visible. */
	pathf(p, "%s/failed/1.M1P1Q5", path);
	ck_assert_int_eq(unlink(p), 0);
	pathf(p, "%s/queue/1.M1P1Q6", path);
	ck_assert_int_eq(mkdir(p, 0750), 0);
	memset(&seen, 0, sizeof(seen));
	r = queue_scan(spool, scan_cb, &seen);
	ck_assert_msg(r == 0, "queue_scan with a directory in queue/ = %d (%s)", r, strerror(-r));

	pathf(p, "%s/failed/1.M1P1Q6", path);
	ck_assert_int_eq(rmdir(p), 0);
	pathf(p, "%s/queue/1.M1P1Q7", path);
	write_too_many_rcpts(p, "1.M1P1Q7");
	memset(&seen, 0, sizeof(seen));
	r = queue_scan(spool, scan_cb, &seen);
	ck_assert_msg(r == 0, "queue_scan with a record of %u recipients = %d (%s)", ENVELOPE_MAX_RCPT + 1,
	    r, strerror(-r));
	ck_assert_msg(queue_locate(spool, "1.M1P1Q7") == SPOOL_DIR_FAILED, "over-long record not set aside");

	/* all at once, with good records around them */
	pathf(p, "%s/queue/1.M1P1Q5", path);
	ck_assert_int_eq(symlink("../data/1.M1P1Q5", p), 0);
	pathf(p, "%s/queue/1.M1P1Q6", path);
	ck_assert_int_eq(mkdir(p, 0750), 0);
	pathf(p, "%s/queue/1.M1P1Q8", path);
	write_too_many_rcpts(p, "1.M1P1Q8");
	for (i = 0; i < 3; i++)
		queue_one(spool, two_rcpts, ids[i]);
	memset(&seen, 0, sizeof(seen));
	r = queue_scan(spool, scan_cb, &seen);
	ck_assert_msg(r == 0, "queue_scan = %d (%s)", r, strerror(-r));
	ck_assert_int_eq(seen.n, 3);
	for (i = 0; i < 3; i++)
		ck_assert_msg(seen_id(&seen, ids[i]), "good record %s not scanned", ids[i]);
	spool_close(spool);
}
END_TEST

START_TEST(test_claim_without_data)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *spool = open_spool("nodata", path);
	struct queue_claim *qc = NULL;
	struct envelope rec;
	size_t i;

	queue_one(spool, two_rcpts, id);
	ck_assert_int_eq(unlinkat(spool_dirfd(spool, SPOOL_DIR_DATA), id, 0), 0);
	ck_assert_int_eq(queue_claim(spool, id, &qc), -ENOENT);
	ck_assert_int_eq(queue_locate(spool, id), SPOOL_DIR_FAILED);
	ck_assert_int_eq(count_entries(path, "active"), 0);
	ck_assert_int_eq(count_entries(path, "queue"), 0);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_FAILED), id, &rec), 0);
	for (i = 0; i < rec.nrcpt; i++) {
		ck_assert_int_eq(rec.rcpt[i].state, RCPT_FAILED);
		ck_assert_ptr_nonnull(rec.rcpt[i].reply);
		ck_assert_msg(strstr(rec.rcpt[i].reply, "data") != NULL, "reason '%s' does not say why",
		    rec.rcpt[i].reply);
	}
	ck_assert_ptr_nonnull(rec.last_reply);
	ck_assert_msg(strstr(rec.last_reply, "missing") != NULL, "last-reply '%s'", rec.last_reply);
	envelope_free(&rec);
	spool_close(spool);
}
END_TEST

/*
 * Two gateways with one system host name but different configured names
 * on one spool: each knows its claims and temporaries by the configured
 * name, so recovery of A gives back nothing of B's that is alive.
 */
START_TEST(test_configured_hostname_tells_gateways_apart)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX], claim[PATH_LEN], tmpname[SPOOL_NAME_MAX];
	struct spool *a = open_spool("twohosts", path), *b;
	const char *rcpts[] = { "r1@example.net", NULL };
	struct spool_recovery st;
	struct queue_claim *qc;
	int fd;

	ck_assert_int_eq(spool_open(path, &b), 0);
	spool_set_hostname(a, "gw-a.example.org");
	spool_set_hostname(b, "gw-b.example.org");
	ck_assert_str_eq(spool_hostname(a), "gw-a_example_org");
	ck_assert_str_eq(spool_hostname(b), "gw-b_example_org");

	queue_one(a, rcpts, id);
	ck_assert_int_eq(queue_claim(b, id, &qc), 0);
	pathf(claim, "%s@gw-b_example_org,%ld", id, (long)getpid());
	ck_assert_msg(exists_at(a, SPOOL_DIR_ACTIVE, claim), "claim not tagged with the configured name");
	ck_assert_int_ge(fd = spool_tmpfile(b, tmpname), 0);
	close(fd);
	ck_assert_msg(strstr(tmpname, ".gw-b_example_org") != NULL, "tmp/%s", tmpname);

	ck_assert_int_eq(spool_recover(a, &st), 0);
	ck_assert_uint_eq(st.claims_returned, 0);
	ck_assert_uint_eq(st.temporaries_removed, 0);
	ck_assert_msg(exists_at(a, SPOOL_DIR_ACTIVE, claim), "A gave back B's live claim");
	ck_assert_msg(!exists_at(a, SPOOL_DIR_QUEUE, id), "B's claimed record is back in queue/");
	ck_assert_msg(exists_at(a, SPOOL_DIR_TMP, tmpname), "A removed B's live temporary");

	/* B's own recovery (its pid is ours: a dead predecessor) does give it back. */
	ck_assert_int_eq(spool_recover(b, &st), 0);
	ck_assert_uint_eq(st.claims_returned, 1);
	ck_assert(exists_at(a, SPOOL_DIR_QUEUE, id));
	queue_claim_free(qc);
	spool_close(b);
	spool_close(a);
}
END_TEST

START_TEST(test_claim_bad_ids)
{
	char path[PATH_LEN];
	struct spool *spool = open_spool("badids", path);
	struct queue_claim *qc;

	ck_assert_int_eq(queue_claim(spool, "", &qc), -EINVAL);
	ck_assert_int_eq(queue_claim(spool, "../queue/x", &qc), -EINVAL);
	ck_assert_int_eq(queue_claim(spool, ".hidden", &qc), -EINVAL);
	ck_assert_int_eq(queue_claim(spool, "a@b", &qc), -EINVAL);
	ck_assert_int_eq(queue_claim(spool, "1.M1P1Q9", &qc), -ENOENT);
	ck_assert_int_eq(queue_locate(spool, "a/b"), -EINVAL);
	ck_assert_int_eq(queue_locate(spool, "1.M1P1Q9"), -ENOENT);
	ck_assert_str_eq(queue_outcome_name(QUEUE_DEFERRED), "deferred");
	ck_assert_str_eq(queue_outcome_name(QUEUE_SENT), "sent");
	ck_assert_str_eq(queue_outcome_name(QUEUE_FAILED), "failed");
	spool_close(spool);
}
END_TEST

/* spool_reclaim()'s view of the nodes: only the host named "gw-a" is dead. */
static int
gw_a_dead(const char *host, long pid, void *arg)
{
	(void)pid;
	(void)arg;
	return strcmp(host, "gw-a") == 0;
}

/*
 * Node A claims and is stopped; B finds A's lease run out and gives the
 * claim back; A comes back and finishes: nothing recorded (-ESTALE), in
 * each of the ways a claim ends, and B's record in queue/ is untouched.
 */
START_TEST(test_takeover_then_late_finish)
{
	static const enum queue_outcome outcomes[] = { QUEUE_SENT, QUEUE_FAILED, QUEUE_DEFERRED, QUEUE_SENT };
	char path[PATH_LEN], id[SPOOL_ID_MAX];
	struct spool *a = open_spool("takeover", path), *b;
	struct spool_dirset *dirs;
	struct spool_reclaim st;
	struct queue_claim *qc;
	struct envelope rec;
	size_t i;

	ck_assert_int_eq(spool_open(path, &b), 0);
	spool_set_hostname(a, "gw-a");
	spool_set_hostname(b, "gw-b");
	for (i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
		bool keep = i != 3;	/* the last: keep_sent = no, the claim is unlinked with its data */

		queue_one(a, two_rcpts, id);
		ck_assert_int_eq(queue_claim(a, id, &qc), 0);
		queue_claim_envelope(qc)->attempts = 5;
		ck_assert_int_eq(spool_reclaim(b, gw_a_dead, NULL, 3600, "gw-b", &st), 0);
		ck_assert_uint_eq(st.claims, 1);
		ck_assert_int_eq(queue_finish_prepare(qc, outcomes[i], keep), 0);	/* A continues */
		ck_assert(exists_at(a, SPOOL_DIR_QUEUE, id));
		dirs = spool_dirset_new(a);
		ck_assert_int_eq(queue_finish_publish(qc, dirs), -ESTALE);
		spool_dirset_free(dirs);
		queue_claim_free(qc);
		ck_assert_msg(!exists_at(a, SPOOL_DIR_SENT, id) && !exists_at(a, SPOOL_DIR_FAILED, id),
		    "a second record of %s (outcome %s)", id, queue_outcome_name(outcomes[i]));
		ck_assert(exists_at(a, SPOOL_DIR_DATA, id));
		ck_assert_int_eq(envelope_read_at(spool_dirfd(a, SPOOL_DIR_QUEUE), id, &rec), 0);
		ck_assert_uint_eq(rec.attempts, 0);	/* B's copy, not A's update */
		envelope_free(&rec);
		ck_assert_int_eq(count_entries(path, "active"), 0);
		ck_assert_int_eq(count_entries(path, "tmp"), 0);
		ck_assert_int_eq(unlinkat(spool_dirfd(a, SPOOL_DIR_QUEUE), id, 0), 0);
	}
	/* a live node's claim is never taken */
	queue_one(b, two_rcpts, id);
	ck_assert_int_eq(queue_claim(b, id, &qc), 0);
	ck_assert_int_eq(spool_reclaim(a, gw_a_dead, NULL, 0, "gw-a", &st), 0);
	ck_assert_uint_eq(st.claims + st.parked + st.temporaries, 0);
	finish(b, qc, QUEUE_SENT, true);
	queue_claim_free(qc);
	ck_assert(exists_at(a, SPOOL_DIR_SENT, id));
	spool_close(b);
	spool_close(a);
}
END_TEST

/*
 * A stopped between parking its claim in tmp/ and publishing the new
 * record: B removes the new record first (A's late rename fails) and
 * gives the parked one back; or, when A had published, removes the parked
 * one and queues nothing.  A's plain temporaries go once old enough.
 */
START_TEST(test_parked_claim_reclaimed)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX], claim[SPOOL_NAME_MAX], parked[SPOOL_NAME_MAX + 8],
	    newrec[SPOOL_NAME_MAX + 8], tmpname[SPOOL_NAME_MAX];
	struct spool *a = open_spool("parked", path), *b;
	struct spool_reclaim st;
	struct queue_claim *qc;
	int fd;

	ck_assert_int_eq(spool_open(path, &b), 0);
	spool_set_hostname(a, "gw-a");
	spool_set_hostname(b, "gw-b");
	for (int published = 0; published < 2; published++) {
		queue_one(a, two_rcpts, id);
		ck_assert_int_eq(queue_claim(a, id, &qc), 0);
		ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_SENT, true), 0);
		pathf(claim, "%s@gw-a,%ld", id, (long)getpid());
		pathf(parked, "%s.old", claim);
		pathf(newrec, "%s.new", claim);
		ck_assert(exists_at(a, SPOOL_DIR_TMP, newrec));
		/* queue_finish_publish()'s first step, then A stops */
		ck_assert_int_eq(renameat(spool_dirfd(a, SPOOL_DIR_ACTIVE), claim, spool_dirfd(a, SPOOL_DIR_TMP), parked), 0);
		if (published)
			ck_assert_int_eq(renameat(spool_dirfd(a, SPOOL_DIR_TMP), newrec, spool_dirfd(a, SPOOL_DIR_SENT), id), 0);
		ck_assert_int_eq(spool_reclaim(b, gw_a_dead, NULL, 3600, "gw-b", &st), 0);
		ck_assert_uint_eq(st.parked, 1);
		ck_assert_int_eq(count_entries(path, "tmp"), 0);
		ck_assert_int_eq(exists_at(a, SPOOL_DIR_QUEUE, id), !published);
		ck_assert_int_eq(exists_at(a, SPOOL_DIR_SENT, id), published);
		/* A continues: the rename of its new record finds nothing */
		ck_assert_int_lt(renameat(spool_dirfd(a, SPOOL_DIR_TMP), newrec, spool_dirfd(a, SPOOL_DIR_SENT), id), 0);
		queue_claim_free(qc);
	}
	/* a dead node's temporary: kept while younger than tmp_min_age, then removed */
	ck_assert_int_ge(fd = spool_tmpfile(a, tmpname), 0);
	close(fd);
	ck_assert_int_eq(spool_reclaim(b, gw_a_dead, NULL, 3600, "gw-b", &st), 0);
	ck_assert_uint_eq(st.temporaries, 0);
	ck_assert_int_eq(spool_reclaim(b, gw_a_dead, NULL, 0, "gw-b", &st), 0);
	ck_assert_uint_eq(st.temporaries, 1);
	ck_assert(!exists_at(a, SPOOL_DIR_TMP, tmpname));
	spool_close(b);
	spool_close(a);
}
END_TEST

/*
 * A crash while the runner parked its claim (active/<claim> ->
 * tmp/<claim>.old), on a filesystem that kept the source directory's
 * half of that rename and lost the target's (ext4 without a journal):
 * the claim is nowhere, the new record waits in tmp/<claim>.new, synced
 * before the park began.  Recovery publishes it where its recipients
 * say, instead of removing the message's only record.
 */
START_TEST(test_new_record_of_a_lost_claim)
{
	static const struct {
		enum queue_outcome	outcome;
		enum rcpt_state		second;
		const char	       *reply;
		enum spool_dir		dest;
	} cases[] = {
		{ QUEUE_DEFERRED, RCPT_PENDING, "451 4.3.0 later", SPOOL_DIR_QUEUE },
		{ QUEUE_SENT, RCPT_SENT, "250 2.0.0 Ok", SPOOL_DIR_SENT },
		{ QUEUE_FAILED, RCPT_FAILED, "550 5.1.1 no such user", SPOOL_DIR_FAILED },
	};
	char path[PATH_LEN], id[SPOOL_ID_MAX], claim[SPOOL_NAME_MAX];
	struct spool *a = open_spool("lostclaim", path), *b;
	struct spool_reclaim st;
	struct queue_claim *qc;
	struct envelope *env, rec;

	ck_assert_int_eq(spool_open(path, &b), 0);
	spool_set_hostname(a, "gw-a");
	spool_set_hostname(b, "gw-b");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		queue_one(a, two_rcpts, id);
		ck_assert_int_eq(queue_claim(a, id, &qc), 0);
		env = queue_claim_envelope(qc);
		ck_assert_int_eq(envelope_set_rcpt(env, 0, RCPT_SENT, "250 2.0.0 Ok"), 0);
		ck_assert_int_eq(envelope_set_rcpt(env, 1, cases[i].second, cases[i].reply), 0);
		ck_assert_int_eq(queue_finish_prepare(qc, cases[i].outcome, true), 0);
		pathf(claim, "%s@gw-a,%ld", id, (long)getpid());
		ck_assert_int_eq(unlinkat(spool_dirfd(a, SPOOL_DIR_ACTIVE), claim, 0), 0);
		ck_assert_int_eq(spool_reclaim(b, gw_a_dead, NULL, 3600, "gw-b", &st), 0);
		ck_assert_uint_eq(st.parked, 1);
		ck_assert_int_eq(count_entries(path, "tmp"), 0);
		ck_assert_int_eq(queue_locate(a, id), cases[i].dest);
		ck_assert_int_eq(envelope_read_at(spool_dirfd(a, cases[i].dest), id, &rec), 0);
		ck_assert_int_eq(rec.rcpt[1].state, cases[i].second);
		envelope_free(&rec);
		ck_assert(exists_at(a, SPOOL_DIR_DATA, id));
		queue_claim_free(qc);	/* A's late release finds no claim */
	}
	/* the claim still in active/: given back, and its new record removed (as before) */
	queue_one(a, two_rcpts, id);
	ck_assert_int_eq(queue_claim(a, id, &qc), 0);
	ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_SENT, true), 0);
	ck_assert_int_eq(spool_reclaim(b, gw_a_dead, NULL, 3600, "gw-b", &st), 0);
	ck_assert_uint_eq(st.claims, 1);
	ck_assert_int_eq(count_entries(path, "tmp"), 0);
	ck_assert_int_eq(queue_locate(a, id), SPOOL_DIR_QUEUE);
	queue_claim_free(qc);
	spool_close(b);
	spool_close(a);
}
END_TEST

/*
 * The runner's first rewrite of a sealed inline record writes a plain
 * record saying "data: sealed": data/<id> is the inline file, which checks
 * itself.  Recovery checks it where a power cut may have kept names
 * without the file's blocks: a new record whose claim was lost is
 * restored only over a whole file; a claim given back to queue/ whose
 * own file is data/<id> stays queued only whole.
 */
START_TEST(test_sealed_data_torn)
{
	char path[PATH_LEN], id[SPOOL_ID_MAX], claim[SPOOL_NAME_MAX], p[PATH_LEN], *raw;
	struct spool *a = open_spool("sealeddata", path), *b;
	struct spool_recovery rec;
	struct spool_reclaim st;
	struct commitgroup *g;
	struct queue_claim *qc;
	struct envelope env;
	size_t len;
	int torn;

	ck_assert_int_eq(spool_open(path, &b), 0);
	spool_set_hostname(a, "gw-a");
	spool_set_hostname(b, "gw-b");
	ck_assert_int_eq(commitgroup_new(a, &g), 0);
	/* the claim lost, the new record in tmp/: restored over a whole file, dropped over a torn one */
	for (torn = 0; torn < 2; torn++) {
		queue_unnamed(a, g, queued_body, sizeof(queued_body) - 1, id);
		ck_assert_int_eq(queue_claim(a, id, &qc), 0);
		ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), 0);
		pathf(claim, "%s@gw-a,%ld.new", id, (long)getpid());
		pathf(p, "%s/tmp/%s", path, claim);
		raw = read_path(p, &len);
		ck_assert_ptr_nonnull(strstr(raw, "\ndata: sealed\n"));
		free(raw);
		pathf(claim, "%s@gw-a,%ld", id, (long)getpid());
		ck_assert_int_eq(unlinkat(spool_dirfd(a, SPOOL_DIR_ACTIVE), claim, 0), 0);
		if (torn)
			tear_file(path, "data", id, 5);
		ck_assert_int_eq(spool_reclaim(b, gw_a_dead, NULL, 3600, "gw-b", &st), 0);
		ck_assert_int_eq(count_entries(path, "tmp"), 0);
		ck_assert_int_eq(queue_locate(a, id), torn ? -ENOENT : SPOOL_DIR_QUEUE);
		if (!torn) {
			ck_assert_int_eq(envelope_read_at(spool_dirfd(a, SPOOL_DIR_QUEUE), id, &env), 0);
			ck_assert(env.data_sealed && !env.inline_data);
			envelope_free(&env);
		}
		queue_claim_free(qc);
	}
	/*
	 * the claim and its new record both lost, data/<id> (its own file) the message's only name:
	 * given back to queue/ whole, removed as an orphan torn
	 */
	for (torn = 0; torn < 2; torn++) {
		queue_unnamed(a, g, queued_body, sizeof(queued_body) - 1, id);
		ck_assert_int_eq(queue_claim(a, id, &qc), 0);
		ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), 0);
		pathf(claim, "%s@gw-a,%ld", id, (long)getpid());
		ck_assert_int_eq(unlinkat(spool_dirfd(a, SPOOL_DIR_ACTIVE), claim, 0), 0);
		pathf(claim, "%s@gw-a,%ld.new", id, (long)getpid());
		ck_assert_int_eq(unlinkat(spool_dirfd(a, SPOOL_DIR_TMP), claim, 0), 0);
		if (torn)
			tear_file(path, "data", id, 5);
		ck_assert_int_eq(spool_recover(a, &rec), 0);
		ck_assert_int_eq(queue_locate(a, id), torn ? -ENOENT : SPOOL_DIR_QUEUE);
		ck_assert(exists_at(a, SPOOL_DIR_DATA, id) == !torn);
		queue_claim_free(qc);	/* its late release finds no claim */
		if (!torn) {
			ck_assert_int_eq(queue_claim(a, id, &qc), 0);
			assert_claim_message(qc, queued_body, sizeof(queued_body) - 1);
			ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), 0);	/* data/<id>: the same file */
			queue_claim_free(qc);
		}
	}
	/* a claim given back after its file was linked as data/<id>: queue/<id> is that file */
	for (torn = 0; torn < 2; torn++) {
		queue_unnamed(a, g, queued_body, sizeof(queued_body) - 1, id);
		ck_assert_int_eq(queue_claim(a, id, &qc), 0);
		ck_assert_int_eq(queue_finish_prepare(qc, QUEUE_DEFERRED, true), 0);
		queue_claim_free(qc);
		if (torn)
			tear_file(path, "queue", id, 5);
		ck_assert_int_eq(spool_recover(a, &rec), 0);
		ck_assert_uint_eq(rec.records_dropped, (unsigned)torn);
		ck_assert_int_eq(queue_locate(a, id), torn ? -ENOENT : SPOOL_DIR_QUEUE);
	}
	commitgroup_free(g);
	spool_close(b);
	spool_close(a);
}
END_TEST

/* nodes/<name>: written as "another machine" would, with seq and an mtime age seconds ago (< 0: ahead). */
static void
fake_heartbeat(struct spool *spool, const char *name, const char *boot, long age, unsigned long seq)
{
	char line[200];
	struct timespec ts[2];
	int fd;

	snprintf(line, sizeof(line), "boot=%s pid=4242 started=1 seq=%lu\n", boot, seq);
	fd = openat(spool_dirfd(spool, SPOOL_DIR_NODES), name, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age;
	ts[1] = ts[0];
	ck_assert_int_eq(futimens(fd, ts), 0);
	close(fd);
}

static double
monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define FOREIGN_BOOT	"11111111-2222-3333-4444-555555555555"

/* Another machine's node beating under name: a child that renews the line every 200 ms, its mtime an hour old. */
static pid_t
foreign_beater(struct spool *spool, const char *name)
{
	pid_t child = fork();

	ck_assert_int_ge(child, 0);
	if (child == 0)
		for (unsigned long seq = 1;; seq++) {
			fake_heartbeat(spool, name, FOREIGN_BOOT, 3600, seq);
			usleep(200 * 1000);
		}
	return child;
}

static void
claim_as(struct spool *spool, const char *host, char id[SPOOL_ID_MAX], char claim[SPOOL_NAME_MAX])
{
	queue_one(spool, two_rcpts, id);
	pathf(claim, "%s@%s,4242", id, host);
	ck_assert_int_eq(renameat(spool_dirfd(spool, SPOOL_DIR_QUEUE), id, spool_dirfd(spool, SPOOL_DIR_ACTIVE), claim), 0);
}

/*
 * node_register(): a live name is refused (a child process of this
 * machine holding it; another machine's heartbeat whose seq changes, its
 * mtime an hour old), a dead one taken (killed predecessor; another
 * machine's heartbeat with a fresh mtime but a frozen seq, after a lease
 * of watching).  node_sweep() judges by what it observes, by its own
 * clock: a node whose seq changes is alive whatever its file's mtime
 * (an hour old); one whose seq is frozen is dead after lease_time of the
 * observer, though its mtime is fresh or a day ahead; so is one without a
 * file.  Nothing is taken at the first sighting.
 */
START_TEST(test_node_names_and_sweep)
{
	char path[PATH_LEN], err[512], id[4][SPOOL_ID_MAX], claim[4][SPOOL_NAME_MAX];
	static const char *const hosts[] = { "gw-live-old-mtime", "gw-frozen-fresh-mtime", "gw-frozen-ahead",
	    "gw-no-file" };
	struct spool *spool = open_spool("nodes", path);
	struct spool_reclaim st;
	struct node *node, *other;
	int sync_pipe[2], status;
	unsigned long seq = 1;
	pid_t child;
	double t0;
	char c;

	spool_set_hostname(spool, "gw-a");
	ck_assert_int_eq(pipe(sync_pipe), 0);
	if ((child = fork()) == 0) {
		close(sync_pipe[0]);
		if (node_register(spool, 1, 10, true, &node, err, sizeof(err)) != 0)
			_exit(1);
		(void)!write(sync_pipe[1], "r", 1);
		pause();
		_exit(0);
	}
	close(sync_pipe[1]);
	ck_assert_int_eq(read(sync_pipe[0], &c, 1), 1);
	ck_assert_int_eq(node_register(spool, 1, 10, true, &node, err, sizeof(err)), -EADDRINUSE);
	ck_assert_msg(strstr(err, "gw-a") != NULL && strstr(err, "on this machine") != NULL, "%s", err);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	close(sync_pipe[0]);
	ck_assert_int_eq(node_register(spool, 1, 10, true, &node, err, sizeof(err)), 0);	/* its holder died */
	node_unregister(node);
	ck_assert(!exists_at(spool, SPOOL_DIR_NODES, "gw-a"));

	/* shared = no: another boot's heartbeat is this host's own, left by a crash: taken at once */
	fake_heartbeat(spool, "gw-a", FOREIGN_BOOT, 0, 7);
	t0 = monotonic_s();
	ck_assert_int_eq(node_register(spool, 1, 10, false, &node, err, sizeof(err)), 0);
	ck_assert_msg(monotonic_s() - t0 < 1.0, "an unshared spool's name taken after %.1f s", monotonic_s() - t0);
	node_unregister(node);

	child = foreign_beater(spool, "gw-a");
	usleep(100 * 1000);
	t0 = monotonic_s();
	ck_assert_int_eq(node_register(spool, 1, 2, true, &node, err, sizeof(err)), -EADDRINUSE);
	ck_assert_msg(strstr(err, "another machine") != NULL && strstr(err, FOREIGN_BOOT) != NULL, "%s", err);
	ck_assert_msg(monotonic_s() - t0 < 1.5, "refused only after %.1f s", monotonic_s() - t0);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	fake_heartbeat(spool, "gw-a", FOREIGN_BOOT, 0, 7);	/* fresh mtime, and no writer any more */
	t0 = monotonic_s();
	ck_assert_int_eq(node_register(spool, 1, 2, true, &node, err, sizeof(err)), 0);
	ck_assert_msg(monotonic_s() - t0 >= 1.9, "a foreign name taken after %.1f s, lease 2 s", monotonic_s() - t0);

	for (size_t i = 0; i < 4; i++)
		claim_as(spool, hosts[i], id[i], claim[i]);
	for (int round = 0; round < 3; round++) {
		fake_heartbeat(spool, hosts[0], "x", 3600, seq++);	/* beats; its clock an hour behind */
		fake_heartbeat(spool, hosts[1], "y", 0, 9);		/* frozen, touched just now */
		fake_heartbeat(spool, hosts[2], "z", -86400, 9);	/* frozen, its clock a day ahead */
		ck_assert_int_eq(node_sweep(node, &st), 0);
		if (round < 2) {	/* 0 s and 1.1 s after the first sighting: within the lease */
			ck_assert_uint_eq(st.claims, 0);
			usleep(1100 * 1000);
		}
	}
	ck_assert_uint_eq(st.claims, 3);	/* 2.2 s after the first sighting */
	ck_assert(exists_at(spool, SPOOL_DIR_ACTIVE, claim[0]));
	for (size_t i = 1; i < 4; i++)
		ck_assert_msg(exists_at(spool, SPOOL_DIR_QUEUE, id[i]), "%s's claim not taken over", hosts[i]);
	ck_assert_int_eq(node_start_heartbeat(node), 0);
	{
		struct stat before, after;

		ck_assert_int_eq(fstatat(spool_dirfd(spool, SPOOL_DIR_NODES), "gw-a", &before, 0), 0);
		sleep(2);	/* the thread renews it every second: a new file (rename) */
		ck_assert_int_eq(fstatat(spool_dirfd(spool, SPOOL_DIR_NODES), "gw-a", &after, 0), 0);
		ck_assert_uint_ne(before.st_ino, after.st_ino);
	}
	/* a second process with this name on this machine is refused */
	ck_assert_int_eq(node_register(spool, 1, 10, true, &other, err, sizeof(err)), 0);	/* same pid: ours */
	node_unregister(other);
	node_unregister(node);
	spool_close(spool);
}
END_TEST

static Suite *
spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc;

	tc = tcase_create("spool");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_open_creates_layout);
	tcase_add_test(tc, test_open_refuses_symlink_and_file);
	tcase_add_test(tc, test_new_id_unique);
	tcase_add_test(tc, test_commit_two_mailboxes_and_queue);
	tcase_add_test(tc, test_commit_queue_only);
	tcase_add_test(tc, test_group_commit);
	tcase_add_test(tc, test_commitgroup_threads);
	tcase_add_test(tc, test_unnamed_files);
	tcase_add_test(tc, test_unnamed_link_through_proc);
	tcase_add_test(tc, test_prepare_unsynced_then_fs_sync);
	tcase_add_test(tc, test_no_target_is_sticky);
	tcase_add_test(tc, test_deliver_local_names);
	tcase_add_test(tc, test_sticky_error_efbig);
	tcase_add_test(tc, test_sticky_error_enospc);
	tcase_add_test(tc, test_chown_failure_fails_the_creation);
	tcase_add_test(tc, test_unpublish);
	tcase_add_test(tc, test_publish_failure_takes_back);
	tcase_add_test(tc, test_recover);
	suite_add_tcase(s, tc);

	tc = tcase_create("queue");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_test(tc, test_scan_claim_release);
	tcase_add_test(tc, test_finish_deferred);
	tcase_add_test(tc, test_finish_sent_keep);
	tcase_add_test(tc, test_finish_write_then_fs_sync);
	tcase_add_test(tc, test_finish_sent_drop);
	tcase_add_test(tc, test_inline_record);
	tcase_add_test(tc, test_inline_record_sealed);
	tcase_add_test(tc, test_parked_claim_id);
	tcase_add_test(tc, test_finish_failed);
	tcase_add_test(tc, test_scan_moves_corrupt_to_failed);
	tcase_add_test(tc, test_scan_survives_odd_entries);
	tcase_add_test(tc, test_corrupt_record_that_cannot_move);
	tcase_add_test(tc, test_claim_without_data);
	tcase_add_test(tc, test_claim_bad_ids);
	tcase_add_test(tc, test_configured_hostname_tells_gateways_apart);
	tcase_add_test(tc, test_takeover_then_late_finish);
	tcase_add_test(tc, test_parked_claim_reclaimed);
	tcase_add_test(tc, test_new_record_of_a_lost_claim);
	tcase_add_test(tc, test_sealed_data_torn);
	tcase_add_test(tc, test_node_names_and_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	log_init("test_spool", LOG_LVL_WARN);
	return testutil_run(spool_suite());
}
