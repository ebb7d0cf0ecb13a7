/*
 * NAME
 *	test_checkpoint - partial transfers of CHECKPOINT (common/checkpoint.h)
 * DESCRIPTION
 *	The record round-trips and is parsed strictly (a table of bad
 *	records); keys differ by client and by TRANSID; the envelope digest
 *	tells ("ab","c") from ("a","bc"); save, load, remove and the sweep by
 *	age in a real directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/checkpoint.h"
#include "testutil.h"

static const char good[] =
	"spoolgate-partial: 1\n"
	"transid: <1234@client.example>\n"
	"client: ip 127.0.0.1\n"
	"envelope: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
	"data: k.1764442059.M1P2Q3.host\n"
	"data-start: 212\n"
	"data-length: 1048576\n"
	"offset: 1050000\n";

START_TEST(test_good_round_trips)
{
	struct ckpt_meta m, again;
	char buf[2048];
	int n;

	ck_assert_int_eq(ckpt_meta_parse(good, strlen(good), &m), 0);
	ck_assert_str_eq(m.transid, "<1234@client.example>");
	ck_assert_str_eq(m.client, "ip 127.0.0.1");
	ck_assert(m.data_start == 212 && m.data_length == 1048576 && m.offset == 1050000);
	n = ckpt_meta_format(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, (int)strlen(good));
	ck_assert_str_eq(buf, good);
	ck_assert_int_eq(ckpt_meta_parse(buf, (size_t)n, &again), 0);
	ck_assert(memcmp(&m, &again, sizeof(m)) == 0);
}
END_TEST

static const struct { const char *find, *with; } bad[] = {
	{ "spoolgate-partial: 1\n", "spoolgate-partial: 2\n" },
	{ "transid: <1234@client.example>\n", "" },
	{ "<1234@client.example>", "1234@client.example" },
	{ "<1234@client.example>", "<12 34@client.example>" },
	{ "client: ip 127.0.0.1\n", "client: ip 127.0.0.1\nclient: ip 127.0.0.1\n" },
	{ "envelope: 0123", "envelope: 123" },
	{ "data: k.", "data: ../k." },
	{ "data: k.", "data: .k" },
	{ "data-start: 212", "data-start: -1" },
	{ "offset: 1050000\n", "offset: 1050000" },
	{ "offset: 1050000\n", "offset: 99999999999999999999\n" },
	{ "offset: 1050000\n", "offset: 1050000\ncolour: blue\n" },
	{ "client: ip", "client: i\x01p" },
};

START_TEST(test_bad_records)
{
	char buf[2048];
	const char *at = strstr(good, bad[_i].find);
	struct ckpt_meta m;
	size_t pre;

	ck_assert_ptr_nonnull(at);
	pre = (size_t)(at - good);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)pre, good, bad[_i].with, at + strlen(bad[_i].find));
	ck_assert_int_eq(ckpt_meta_parse(buf, strlen(buf), &m), -EBADMSG);
}
END_TEST

START_TEST(test_keys_and_digests)
{
	char a[CKPT_KEY_LEN + 1], b[CKPT_KEY_LEN + 1];
	const char *r1[] = { "c" }, *r2[] = { "bc" };

	ckpt_key("ip 127.0.0.1", "<1@x>", a);
	ck_assert_uint_eq(strlen(a), CKPT_KEY_LEN);
	ckpt_key("ip 127.0.0.2", "<1@x>", b);
	ck_assert_str_ne(a, b);
	ckpt_key("ip 127.0.0.1", "<2@x>", b);
	ck_assert_str_ne(a, b);
	ckpt_key("ip 127.0.0.1", "<1@x>", b);
	ck_assert_str_eq(a, b);
	ckpt_envelope_hash("ab", r1, 1, a);
	ckpt_envelope_hash("a", r2, 1, b);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_save_load_remove_sweep)
{
	char dir[256], key[CKPT_KEY_LEN + 1];
	struct ckpt_meta m, got;
	struct stat st;
	int dirfd, fd;

	testutil_mkdtemp(dir, sizeof(dir), "ckpt");
	dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(ckpt_meta_parse(good, strlen(good), &m), 0);
	ckpt_key(m.client, m.transid, key);
	ck_assert_int_eq(ckpt_load(dirfd, key, &got), -ENOENT);
	fd = openat(dirfd, m.data, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(ckpt_save(dirfd, key, &m), 0);
	ck_assert_int_eq(ckpt_load(dirfd, key, &got), 0);
	ck_assert(memcmp(&m, &got, sizeof(m)) == 0);
	/* Young: the sweep keeps it; as if a day later: record and data go. */
	ck_assert_int_eq(ckpt_sweep(dirfd, (long long)time(NULL), 3600), 0);
	ck_assert_int_eq(fstatat(dirfd, m.data, &st, 0), 0);
	ck_assert_int_eq(ckpt_sweep(dirfd, (long long)time(NULL) + 86400, 3600), 1);
	ck_assert_int_eq(ckpt_load(dirfd, key, &got), -ENOENT);
	ck_assert_int_eq(fstatat(dirfd, m.data, &st, 0), -1);
	/* remove: the record and the data it names. */
	fd = openat(dirfd, m.data, O_WRONLY | O_CREAT | O_EXCL, 0600);
	close(fd);
	ck_assert_int_eq(ckpt_save(dirfd, key, &m), 0);
	ck_assert_int_eq(ckpt_remove(dirfd, key), 0);
	ck_assert_int_eq(fstatat(dirfd, m.data, &st, 0), -1);
	ck_assert_int_eq(ckpt_load(dirfd, key, &got), -ENOENT);
	close(dirfd);
	testutil_rmtree(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("checkpoint");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_good_round_trips);
	tcase_add_loop_test(tc, test_bad_records, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_keys_and_digests);
	tcase_add_test(tc, test_save_load_remove_sweep);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
