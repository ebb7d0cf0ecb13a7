/*
 * NAME
 *	test_outfile - unit tests of the files being written in outbox/
 * SYNOPSIS
 *	test_outfile
 * DESCRIPTION
 *	fs/outfile.c on a real spool under /tmp, without FUSE.
 *
 *	A table of refused messages (no recipient, a bad address, not a
 *	header line, a first line that is empty, LF and CRLF) is written one
 *	byte per write: every write before the one that completes the header
 *	section succeeds, that one fails with the errno of the refusal, every
 *	later write and the end of the message fail with it too, and failed/
 *	holds exactly the bytes written, with a record that says why.  A good
 *	message written byte by byte is not refused and is queued at its end.
 *	A header changed after it was checked is checked again; a header
 *	section past OUTBOX_MAX_HEADER is EFBIG; a write past max_size keeps
 *	max_size bytes in failed/.
 *
 *	The ends of a message: a close that is not the end submits nothing;
 *	an empty file is ENODATA (not kept in failed/); a draft whose writer
 *	never ended it is submitted at its release.  After a submission the
 *	name stays: write, truncate and an open for writing without O_TRUNC
 *	are EBUSY, O_TRUNC makes a new entry; a second writer is EBUSY; at
 *	most OUTFILE_SUBMITTED_MAX names stay.  A held (dot) name is not
 *	checked; renamed to a normal name it is submitted or refused.
 *
 *	Drafts in memory: a new draft is a memfd (its descriptor's
 *	/proc/self/fd link says so) and is queued whole from there.  It moves
 *	to an unlinked temporary in spool tmp/, under the same descriptor and
 *	with the same bytes, at the write or the truncation that takes it
 *	past its own limit, past the limit of all drafts in memory (the other
 *	draft stays), or below the free space the spool's filesystem must
 *	keep; the set's count of bytes in memory follows every draft to its
 *	end.  With memory drafts turned off (what a failed memfd_create does)
 *	a new draft starts in tmp/.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"
#include "outbox.h"
#include "spool.h"
#include "unixuser.h"
#include "fs/outfile.h"
#include "testutil.h"

#define PATH_LEN	1024
#define MAX_SIZE	(1u << 20)

static char tmpbase[PATH_LEN];
static struct spool *spool;
static struct outfile_set set;
static const struct outfile_writer writer = { 4242, 1000, 1000 };

static void
setup(void)
{
	char path[PATH_LEN + 16];

	testutil_mkdtemp(tmpbase, sizeof(tmpbase), "outfile");
	snprintf(path, sizeof(path), "%s/spool", tmpbase);
	ck_assert_int_eq(spool_open(path, &spool), 0);
	outfile_set_init(&set, spool, MAX_SIZE, "gw.example.org");
}

static void
teardown(void)
{
	outfile_set_free(&set);
	spool_close(spool);
	testutil_rmtree(tmpbase);
}

static int
count_entries(enum spool_dir dir)
{
	int fd = openat(spool_dirfd(spool, dir), ".", O_RDONLY | O_DIRECTORY), n = 0;
	struct dirent *de;
	DIR *d;

	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_nonnull(d = fdopendir(fd));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The name of the only record in dir. */
static void
only_record(enum spool_dir dir, char id[SPOOL_ID_MAX])
{
	int fd = openat(spool_dirfd(spool, dir), ".", O_RDONLY | O_DIRECTORY);
	struct dirent *de;
	DIR *d;

	id[0] = '\0';
	ck_assert_ptr_nonnull(d = fdopendir(fd));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.') {
			ck_assert_msg(id[0] == '\0', "more than one record");
			snprintf(id, SPOOL_ID_MAX, "%.63s", de->d_name);
		}
	closedir(d);
	ck_assert_msg(id[0] != '\0', "no record");
}

/* failed/ holds exactly want, with a rejected: line naming errname. */
static void
assert_kept(const char *want, size_t len, const char *errname)
{
	char id[SPOOL_ID_MAX], *buf = malloc(len + 1), login[UNIXUSER_LOGIN_MAX], origin[128];
	struct envelope env;
	ssize_t n;
	int fd;

	only_record(SPOOL_DIR_FAILED, id);
	ck_assert_int_eq(envelope_read_at(spool_dirfd(spool, SPOOL_DIR_FAILED), id, &env), 0);
	ck_assert_ptr_nonnull(env.rejected);
	ck_assert_msg(strstr(env.rejected, errname) != NULL, "'%s' has no %s", env.rejected, errname);
	ck_assert_ptr_nonnull(strstr(env.rejected, " rejected at submission: "));
	unixuser_login(1000, login, sizeof login);
	snprintf(origin, sizeof origin, "fs outbox/m.eml uid=1000 user=%s", login);
	ck_assert_str_eq(env.origin, origin);
	envelope_free(&env);
	ck_assert_int_ge(fd = openat(spool_dirfd(spool, SPOOL_DIR_DATA), id, O_RDONLY), 0);
	n = read(fd, buf, len + 1);
	close(fd);
	ck_assert_int_eq(n, (ssize_t)len);
	ck_assert_mem_eq(buf, want, len);
	free(buf);
}

static struct outfile *
create(const char *name)
{
	struct outfile *of;

	ck_assert_int_eq(outfile_create(&set, name, 0644, &writer, true, &of), 0);
	return of;
}

/* ------------------------------------------------ refused, byte by byte */

static const struct refused_case {
	const char     *what;
	const char     *msg;
	size_t		at;		/* the byte whose write completes the header */
	int		err;
	const char     *errname;
} refused_cases[] = {
	{ "no recipient", "From: a@x.org\nSubject: s\n\nbody\n", 25, -EDESTADDRREQ, "EDESTADDRREQ" },
	{ "no recipient, CRLF", "From: a@x.org\r\nSubject: s\r\n\r\nbody\r\n", 28, -EDESTADDRREQ,
	    "EDESTADDRREQ" },
	{ "bad address", "From: a@x.org\nTo: bob@bad..example\n\nb\n", 35, -EINVAL, "EINVAL" },
	{ "not a header line", "hello there\nTo: b@x.org\n\nb\n", 24, -EBADMSG, "EBADMSG" },
	{ "first line empty", "\nbody\n", 0, -EBADMSG, "EBADMSG" },
	{ "first line empty, CRLF", "\r\nbody\r\n", 1, -EBADMSG, "EBADMSG" },
	{ "a CR alone is no empty line", "From: a@x.org\n\rX: y\n\nb\n", 20, -EBADMSG, "EBADMSG" },
};
#define N_REFUSED	(sizeof(refused_cases) / sizeof(refused_cases[0]))

START_TEST(test_refused_byte_by_byte)
{
	const struct refused_case *c = &refused_cases[_i];
	struct outfile *of = create("m.eml");
	size_t len = strlen(c->msg), i;
	ssize_t n;

	for (i = 0; i < len; i++) {
		n = outfile_write(&set, of, c->msg + i, 1, (off_t)i);
		if (i < c->at)
			ck_assert_msg(n == 1, "%s: write of byte %zu: %zd", c->what, i, n);
		else
			ck_assert_msg(n == c->err, "%s: write of byte %zu: %zd, want %d", c->what, i, n,
			    c->err);
	}
	ck_assert_int_eq(outfile_flush(&set, of, true), c->err);
	ck_assert_int_eq(outfile_flush(&set, of, false), c->err);
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 0);
	assert_kept(c->msg, c->at + 1, c->errname);
	outfile_release(&set, of, true);
	ck_assert_ptr_null(outfile_find(&set, "m.eml"));	/* failed/ has it */
}
END_TEST

START_TEST(test_good_byte_by_byte)
{
	static const char msg[] = "From: a@x.org\r\nTo: b@x.org\r\n\r\nbody\r\n";
	struct outfile *of = create("m.eml");
	char id[SPOOL_ID_MAX];

	for (size_t i = 0; i < sizeof(msg) - 1; i++)
		ck_assert_int_eq(outfile_write(&set, of, msg + i, 1, (off_t)i), 1);
	ck_assert_int_eq(outfile_flush(&set, of, false), 0);	/* a copy closed */
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 0);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);
	only_record(SPOOL_DIR_QUEUE, id);
	ck_assert_int_eq(count_entries(SPOOL_DIR_FAILED), 0);
	ck_assert_int_eq(of->state, OUTFILE_SUBMITTED);
}
END_TEST

START_TEST(test_header_changed_after_check)
{
	static const char msg[] = "From: a@x.org\nTo: b@x.org\n\nbody\n";
	struct outfile *of = create("m.eml");

	ck_assert_int_eq(outfile_write(&set, of, msg, sizeof(msg) - 1, 0), (ssize_t)sizeof(msg) - 1);
	/* "To:" becomes "Tx " : no longer a field */
	ck_assert_int_eq(outfile_write(&set, of, "Tx ", 3, 14), -EBADMSG);
	ck_assert_int_eq(outfile_flush(&set, of, true), -EBADMSG);
}
END_TEST

START_TEST(test_header_too_long)
{
	static const char line[] = "X-Filler: 0123456789012345678901234567890123456789\n";
	struct outfile *of = create("m.eml");
	size_t off = 0;
	ssize_t n = 0;

	ck_assert_int_eq(outfile_write(&set, of, "From: a@x.org\n", 14, 0), 14);
	off = 14;
	while (off <= OUTBOX_MAX_HEADER + sizeof(line)) {
		n = outfile_write(&set, of, line, sizeof(line) - 1, (off_t)off);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	ck_assert_int_eq(n, -EFBIG);
	ck_assert_uint_gt(off + sizeof(line) - 1, OUTBOX_MAX_HEADER);
	ck_assert_uint_le(off, OUTBOX_MAX_HEADER);
	ck_assert_int_eq(count_entries(SPOOL_DIR_FAILED), 1);
}
END_TEST

START_TEST(test_too_big_keeps_the_limit)
{
	static const char head[] = "From: a@x.org\nTo: b@x.org\n\n";
	struct outfile *of;
	char *big = malloc(MAX_SIZE + 100);

	memset(big, 'x', MAX_SIZE + 100);
	memcpy(big, head, sizeof(head) - 1);
	of = create("m.eml");
	ck_assert_int_eq(outfile_write(&set, of, big, 1000, 0), 1000);
	ck_assert_int_eq(outfile_write(&set, of, big + 1000, MAX_SIZE, 1000), -EFBIG);
	ck_assert_int_eq(outfile_write(&set, of, "x", 1, MAX_SIZE + 1000), -EFBIG);
	ck_assert_int_eq(outfile_flush(&set, of, true), -EFBIG);
	assert_kept(big, MAX_SIZE, "EFBIG");
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 0);
	free(big);
}
END_TEST

/* ------------------------------------------------------ ends and names */

START_TEST(test_empty)
{
	struct outfile *of = create("m.eml");

	ck_assert_int_eq(outfile_flush(&set, of, false), 0);
	ck_assert_int_eq(outfile_flush(&set, of, true), -ENODATA);
	ck_assert_int_eq(of->state, OUTFILE_WRITING);		/* not sticky */
	ck_assert_int_eq(outfile_write(&set, of, "", 0, 0), 0);
	ck_assert_int_eq(outfile_flush(&set, of, true), -ENODATA);
	outfile_release(&set, of, true);
	ck_assert_ptr_null(outfile_find(&set, "m.eml"));
	ck_assert_int_eq(count_entries(SPOOL_DIR_FAILED), 0);
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 0);
}
END_TEST

START_TEST(test_release_submits)
{
	static const char msg[] = "From: a@x.org\nTo: b@x.org\n\nbody\n";
	struct outfile *of = create("m.eml");

	ck_assert_int_eq(outfile_write(&set, of, msg, sizeof(msg) - 1, 0), (ssize_t)sizeof(msg) - 1);
	ck_assert_int_eq(outfile_flush(&set, of, false), 0);
	outfile_release(&set, of, true);
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 1);
	ck_assert_ptr_eq(outfile_find(&set, "m.eml"), of);	/* the name stays */
}
END_TEST

START_TEST(test_submitted_name)
{
	static const char msg[] = "From: a@x.org\nTo: b@x.org\n\nbody\n";
	struct outfile *of = create("m.eml"), *again;
	struct stat st;

	ck_assert_int_eq(outfile_write(&set, of, msg, sizeof(msg) - 1, 0), (ssize_t)sizeof(msg) - 1);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);
	ck_assert_int_eq(outfile_write(&set, of, "more", 4, sizeof(msg) - 1), -EBUSY);
	ck_assert_int_eq(outfile_truncate(&set, of, 0), -EBUSY);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);	/* no second submission */
	outfile_release(&set, of, true);
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 1);
	ck_assert_ptr_eq(outfile_find(&set, "m.eml"), of);
	ck_assert_int_eq(outfile_stat(of, &st), 0);
	ck_assert_int_eq(st.st_size, sizeof(msg) - 1);
	again = of;
	ck_assert_int_eq(outfile_open(&set, &again, O_WRONLY, &writer), -EBUSY);
	ck_assert_int_eq(outfile_open(&set, &again, O_WRONLY | O_APPEND, &writer), -EBUSY);
	ck_assert_int_eq(outfile_open(&set, &again, O_RDWR, &writer), -EBUSY);
	ck_assert_ptr_eq(again, of);
	ck_assert_int_eq(outfile_open(&set, &again, O_RDONLY, &writer), 0);	/* read it */
	ck_assert_ptr_eq(again, of);
	outfile_release(&set, of, false);
	/* a new whole file: a new message, the old name replaced */
	ck_assert_int_eq(outfile_open(&set, &again, O_WRONLY | O_TRUNC, &writer), 0);
	ck_assert_ptr_ne(again, of);
	ck_assert_ptr_eq(outfile_find(&set, "m.eml"), again);
	ck_assert_int_eq(again->state, OUTFILE_WRITING);
	ck_assert_int_eq(outfile_write(&set, again, msg, sizeof(msg) - 1, 0), (ssize_t)sizeof(msg) - 1);
	ck_assert_int_eq(outfile_flush(&set, again, true), 0);
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 2);
	/* rm: the name goes, the queued message stays */
	outfile_release(&set, again, true);
	ck_assert_int_eq(outfile_unlink(&set, "m.eml"), 0);
	ck_assert_ptr_null(outfile_find(&set, "m.eml"));
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 2);
}
END_TEST

START_TEST(test_two_writers)
{
	struct outfile *of = create("m.eml"), *other = of;

	ck_assert_int_eq(outfile_open(&set, &other, O_WRONLY, &writer), -EBUSY);
	ck_assert_int_eq(outfile_open(&set, &other, O_WRONLY | O_TRUNC, &writer), -EBUSY);
	ck_assert_int_eq(outfile_open(&set, &other, O_RDONLY, &writer), 0);
	outfile_release(&set, of, false);
	outfile_release(&set, of, true);	/* empty: gone */
	ck_assert_ptr_null(outfile_find(&set, "m.eml"));
}
END_TEST

START_TEST(test_linger_bound)
{
	static const char msg[] = "From: a@x.org\nTo: b@x.org\n\nbody\n";
	char name[32];
	size_t n = 0;

	for (int i = 0; i < OUTFILE_SUBMITTED_MAX + 5; i++) {
		struct outfile *of;

		snprintf(name, sizeof(name), "m%d.eml", i);
		of = create(name);
		ck_assert_int_eq(outfile_write(&set, of, msg, sizeof(msg) - 1, 0),
		    (ssize_t)sizeof(msg) - 1);
		ck_assert_int_eq(outfile_flush(&set, of, true), 0);
		outfile_release(&set, of, true);
	}
	outfile_expire(&set);
	for (struct outfile *of = set.head; of; of = of->next)
		n++;
	ck_assert_uint_eq(n, OUTFILE_SUBMITTED_MAX);
	ck_assert_ptr_null(outfile_find(&set, "m0.eml"));	/* the oldest went first */
	ck_assert_ptr_nonnull(outfile_find(&set, "m68.eml"));
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), OUTFILE_SUBMITTED_MAX + 5);
}
END_TEST

START_TEST(test_held_then_renamed)
{
	static const char bad[] = "From: a@x.org\nSubject: s\n\nbody\n";
	struct outfile *of = create(".m.eml");

	/* a draft: not checked, not submitted at close */
	ck_assert_int_eq(outfile_write(&set, of, bad, sizeof(bad) - 1, 0), (ssize_t)sizeof(bad) - 1);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);
	outfile_release(&set, of, true);
	ck_assert_ptr_eq(outfile_find(&set, ".m.eml"), of);
	ck_assert_int_eq(count_entries(SPOOL_DIR_FAILED), 0);
	/* renamed to a name that is sent: refused, kept, the draft stays */
	ck_assert_int_eq(outfile_rename(&set, ".m.eml", "m.eml", false), -EDESTADDRREQ);
	ck_assert_ptr_eq(outfile_find(&set, ".m.eml"), of);
	ck_assert_ptr_null(outfile_find(&set, "m.eml"));
	assert_kept(bad, sizeof(bad) - 1, "EDESTADDRREQ");
	ck_assert_int_eq(outfile_rename(&set, ".m.eml", "m.eml", false), -EDESTADDRREQ);
	ck_assert_int_eq(count_entries(SPOOL_DIR_FAILED), 1);	/* kept once */
}
END_TEST

/* ------------------------------------------------------ drafts in memory */

#define SMALL_LIMIT	4096
static const char draft_head[] = "From: a@x.org\nTo: b@x.org\n\n";

/* Where a descriptor of this process points. */
static void
fd_target(int fd, char *out, size_t outlen)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, out, outlen - 1);
	ck_assert_int_gt(n, 0);
	out[n] = '\0';
}

/* The draft lives in a memfd (want) or in an unlinked temporary of spool tmp/. */
static void
assert_in_memory(const struct outfile *of, bool want)
{
	char target[PATH_MAX], tmpdir[PATH_MAX + 32], real[PATH_MAX];

	fd_target(of->fd, target, sizeof target);
	ck_assert_int_eq(of->in_memory, want);
	if (want) {
		ck_assert_msg(strncmp(target, "/memfd:spoolgate-draft", 22) == 0, "%s", target);
		return;
	}
	ck_assert_ptr_nonnull(realpath(tmpbase, real));
	snprintf(tmpdir, sizeof tmpdir, "%s/spool/tmp/", real);
	ck_assert_msg(strncmp(target, tmpdir, strlen(tmpdir)) == 0, "%s is not in %s", target, tmpdir);
	ck_assert_msg(strstr(target, "(deleted)") != NULL, "%s has a name left", target);
}

/* A draft of draft_head then size - strlen(draft_head) bytes of fill, written in one go. */
static char *
draft_bytes(size_t size, char fill)
{
	char *buf = malloc(size);

	ck_assert_ptr_nonnull(buf);
	memset(buf, fill, size);
	memcpy(buf, draft_head, sizeof(draft_head) - 1);
	return buf;
}

/* The draft holds exactly want. */
static void
assert_draft_holds(const struct outfile *of, const char *want, size_t len)
{
	char *buf = malloc(len + 1);
	struct stat st;

	ck_assert_int_eq(fstat(of->fd, &st), 0);
	ck_assert_int_eq(st.st_size, (off_t) len);
	ck_assert_int_eq(pread(of->fd, buf, len + 1, 0), (ssize_t) len);
	ck_assert_mem_eq(buf, want, len);
	free(buf);
}

/* The one queued message's data ends with the body of want (after its trace headers). */
static void
assert_queued_body(const char *want, size_t len)
{
	char id[SPOOL_ID_MAX], *buf = malloc(len + 4096);
	ssize_t n;
	int fd;

	only_record(SPOOL_DIR_QUEUE, id);
	ck_assert_int_ge(fd = openat(spool_dirfd(spool, SPOOL_DIR_DATA), id, O_RDONLY), 0);
	n = read(fd, buf, len + 4096);
	close(fd);
	ck_assert_int_ge(n, (ssize_t) len);
	ck_assert_msg(memcmp(buf + n - (len - (sizeof(draft_head) - 1)), want + sizeof(draft_head) - 1,
	    len - (sizeof(draft_head) - 1)) == 0, "the queued body differs from the draft's");
	free(buf);
}

START_TEST(test_small_draft_in_memory)
{
	char *msg = draft_bytes(2000, 'm');
	struct outfile *of = create("m.eml");

	assert_in_memory(of, true);
	ck_assert_int_eq(outfile_write(&set, of, msg, 2000, 0), 2000);
	assert_in_memory(of, true);
	ck_assert_uint_eq(set.mem_bytes, 2000);
	assert_draft_holds(of, msg, 2000);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);
	assert_queued_body(msg, 2000);
	outfile_release(&set, of, true);
	ck_assert_uint_eq(set.mem_bytes, 2000);		/* the name lingers, with its bytes */
	ck_assert_int_eq(outfile_unlink(&set, "m.eml"), 0);
	ck_assert_uint_eq(set.mem_bytes, 0);
	free(msg);
}
END_TEST

START_TEST(test_draft_moves_at_its_limit)
{
	char *msg = draft_bytes(SMALL_LIMIT + 500, 'l');
	struct outfile *of;
	int fd;

	set.mem_draft_max = SMALL_LIMIT;
	of = create("m.eml");
	fd = of->fd;
	ck_assert_int_eq(outfile_write(&set, of, msg, SMALL_LIMIT, 0), SMALL_LIMIT);
	assert_in_memory(of, true);		/* up to the limit itself */
	ck_assert_uint_eq(set.mem_bytes, SMALL_LIMIT);
	ck_assert_int_eq(outfile_write(&set, of, msg + SMALL_LIMIT, 500, SMALL_LIMIT), 500);
	assert_in_memory(of, false);
	ck_assert_int_eq(of->fd, fd);		/* a read under way keeps its descriptor */
	ck_assert_uint_eq(set.mem_bytes, 0);
	assert_draft_holds(of, msg, SMALL_LIMIT + 500);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);
	assert_queued_body(msg, SMALL_LIMIT + 500);
	free(msg);
}
END_TEST

START_TEST(test_memory_bound_of_all_drafts)
{
	char *a = draft_bytes(4000, 'a'), *b = draft_bytes(2500, 'b');
	struct outfile *ofa, *ofb;

	set.mem_total_max = 6000;
	ofa = create("a.eml");
	ofb = create("b.eml");
	ck_assert_int_eq(outfile_write(&set, ofa, a, 4000, 0), 4000);
	ck_assert_int_eq(outfile_write(&set, ofb, b, 1000, 0), 1000);
	assert_in_memory(ofb, true);
	ck_assert_uint_eq(set.mem_bytes, 5000);
	ck_assert_int_eq(outfile_write(&set, ofb, b + 1000, 1500, 1000), 1500);	/* 6500 > 6000 */
	assert_in_memory(ofb, false);
	assert_in_memory(ofa, true);
	ck_assert_uint_eq(set.mem_bytes, 4000);
	assert_draft_holds(ofb, b, 2500);
	ck_assert_int_eq(outfile_unlink(&set, "b.eml"), 0);
	outfile_release(&set, ofb, true);
	ck_assert_int_eq(outfile_unlink(&set, "a.eml"), 0);
	outfile_release(&set, ofa, true);
	ck_assert_uint_eq(set.mem_bytes, 0);
	ck_assert_int_eq(count_entries(SPOOL_DIR_QUEUE), 0);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_disk_room_kept)
{
	char *msg = draft_bytes(3000, 'r');
	struct outfile *of = create("m.eml");

	/* more free space than any disk has: every draft must go where ENOSPC shows */
	set.mem_reserve = ULLONG_MAX / 4;
	assert_in_memory(of, true);
	ck_assert_int_eq(outfile_write(&set, of, msg, 3000, 0), 3000);
	assert_in_memory(of, false);
	ck_assert_uint_eq(set.mem_bytes, 0);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);
	assert_queued_body(msg, 3000);
	free(msg);
}
END_TEST

/*
 * The room probe: where tmp/ cannot allocate the drafts plus the reserve
 * (here RLIMIT_FSIZE, as a quota would: fallocate says EFBIG), a draft
 * goes to disk from its first byte, and so does the next one (the answer
 * holds); the probe leaves no name in tmp/.  Once the refusal is older
 * than OUTFILE_ROOM_TTL_MS the probe asks again.
 */
START_TEST(test_room_probe_refuses)
{
	struct rlimit lim;
	char *msg = draft_bytes(3000, 'q');
	struct outfile *of, *of2, *of3;
	rlim_t was;

	signal(SIGXFSZ, SIG_IGN);	/* this test's process only: Check forks each test */
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &lim), 0);
	was = lim.rlim_cur;
	lim.rlim_cur = 1 << 20;		/* the soft limit: raised again below */
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	of = create("m.eml");
	ck_assert_int_eq(outfile_write(&set, of, msg, 3000, 0), 3000);
	assert_in_memory(of, false);
	ck_assert_uint_eq(set.mem_bytes, 0);
	ck_assert_int_eq(set.room_errno, EFBIG);
	of2 = create("n.eml");
	ck_assert_int_eq(outfile_write(&set, of2, msg, 3000, 0), 3000);
	assert_in_memory(of2, false);
	ck_assert_int_eq(count_entries(SPOOL_DIR_TMP), 0);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);
	ck_assert_int_eq(outfile_unlink(&set, "n.eml"), 0);
	outfile_release(&set, of2, true);
	assert_queued_body(msg, 3000);
	/* the room is back; the refusal holds until it is a second old */
	lim.rlim_cur = was;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	of3 = create("o.eml");
	ck_assert_int_eq(outfile_write(&set, of3, msg, 100, 0), 100);
	assert_in_memory(of3, false);
	of3 = create("p.eml");
	set.room_refused_at.tv_sec -= OUTFILE_ROOM_TTL_MS / 1000 + 1;
	ck_assert_int_eq(outfile_write(&set, of3, msg, 100, 0), 100);
	assert_in_memory(of3, true);
	free(msg);
}
END_TEST

/* Where tmp/ has room, the probe lets drafts stay in memory, and says so for a while. */
START_TEST(test_room_probe_allows)
{
	char *msg = draft_bytes(2000, 'p');
	struct outfile *of = create("m.eml");

	ck_assert_int_eq(outfile_write(&set, of, msg, 2000, 0), 2000);
	assert_in_memory(of, true);
	ck_assert_uint_ge(set.room_ok, 2000 + set.mem_reserve);
	ck_assert_uint_eq(set.room_refused, 0);
	ck_assert_int_ge(set.room_fd, 0);
	ck_assert_int_eq(count_entries(SPOOL_DIR_TMP), 0);
	ck_assert_int_eq(outfile_flush(&set, of, true), 0);
	free(msg);
}
END_TEST

START_TEST(test_truncate_past_limit)
{
	char *msg = draft_bytes(100, 't');
	struct outfile *of;
	struct stat st;

	set.mem_draft_max = SMALL_LIMIT;
	of = create("m.eml");
	ck_assert_int_eq(outfile_write(&set, of, msg, 100, 0), 100);
	ck_assert_int_eq(outfile_truncate(&set, of, 50), 0);
	assert_in_memory(of, true);
	ck_assert_uint_eq(set.mem_bytes, 50);
	ck_assert_int_eq(outfile_truncate(&set, of, 3 * SMALL_LIMIT), 0);
	assert_in_memory(of, false);
	ck_assert_uint_eq(set.mem_bytes, 0);
	ck_assert_int_eq(fstat(of->fd, &st), 0);
	ck_assert_int_eq(st.st_size, 3 * SMALL_LIMIT);
	ck_assert_int_eq(outfile_stat(of, &st), 0);
	ck_assert_int_eq(st.st_size, 3 * SMALL_LIMIT);
	free(msg);
}
END_TEST

START_TEST(test_memory_drafts_off)
{
	struct outfile *of;

	set.mem_drafts = false;		/* what a failed memfd_create leaves */
	of = create("m.eml");
	assert_in_memory(of, false);
	ck_assert_int_eq(outfile_write(&set, of, draft_head, sizeof(draft_head) - 1, 0),
	    (ssize_t) sizeof(draft_head) - 1);
	ck_assert_uint_eq(set.mem_bytes, 0);
}
END_TEST

static Suite *
outfile_suite(void)
{
	Suite *s = suite_create("outfile");
	TCase *tc;

	tc = tcase_create("checked_writes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_refused_byte_by_byte, 0, N_REFUSED);
	tcase_add_test(tc, test_good_byte_by_byte);
	tcase_add_test(tc, test_header_changed_after_check);
	tcase_add_test(tc, test_header_too_long);
	tcase_add_test(tc, test_too_big_keeps_the_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("ends_and_names");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_release_submits);
	tcase_add_test(tc, test_submitted_name);
	tcase_add_test(tc, test_two_writers);
	tcase_add_test(tc, test_linger_bound);
	tcase_add_test(tc, test_held_then_renamed);
	suite_add_tcase(s, tc);

	tc = tcase_create("drafts_in_memory");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_small_draft_in_memory);
	tcase_add_test(tc, test_draft_moves_at_its_limit);
	tcase_add_test(tc, test_memory_bound_of_all_drafts);
	tcase_add_test(tc, test_disk_room_kept);
	tcase_add_test(tc, test_room_probe_refuses);
	tcase_add_test(tc, test_room_probe_allows);
	tcase_add_test(tc, test_truncate_past_limit);
	tcase_add_test(tc, test_memory_drafts_off);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(outfile_suite());
}
