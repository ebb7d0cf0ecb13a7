/*
 * NAME
 *	test_userdb - unit tests of the SMTP server's users file
 * SYNOPSIS
 *	test_userdb
 * DESCRIPTION
 *	The file format (every key, comments, sorting), each refusal with
 *	its "path:line: what" message, the mode check, passwords checked
 *	against a yescrypt hash and against SCRAM keys alone, the SCRAM
 *	secrets of a user (own, derived from the same hash, derived from an
 *	old hash, none), sender ownership, changes written atomically and
 *	read back (mode 0600, owner kept), and a SCRAM-SHA-256 exchange of
 *	GNU SASL against keys that came through the file, including keys
 *	made by the gsasl command.  The opt-in CRAM-MD5 secret: parsed from
 *	base64 (blanks kept), refused when malformed, never a password for
 *	PLAIN, kept through a rewrite, dropped by a new password, and a
 *	CRAM-MD5 exchange of GNU SASL's own client against the server.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gsasl.h>

#include "sasl.h"
#include "testutil.h"
#include "userdb.h"

#define PATH_LEN	1024

static char dir[PATH_LEN];

static void
setup(void)
{
	testutil_mkdtemp(dir, sizeof(dir), "userdb");
}

static void
teardown(void)
{
	testutil_rmtree(dir);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* A users line for name with the SCRAM keys of password. */
static void
scram_line(char *out, size_t len, const char *name, const char *password, const char *rest)
{
	struct sasl_scram_secrets s;

	ck_assert_int_eq(sasl_scram_secrets_make(password, 4096, NULL, &s), 0);
	snprintf(out, len, "%s scram=%u:%s:%s:%s%s\n", name, s.iterations, s.salt, s.stored_key, s.server_key,
	    rest);
}

static struct userdb *
load_text(const char *text, int expect, char *err, size_t errlen)
{
	char path[PATH_LEN + 16];
	struct userdb *db = NULL;

	snprintf(path, sizeof(path), "%s/users", dir);
	write_file(path, text, 0600);
	ck_assert_int_eq(userdb_load(path, &db, err, errlen), expect);
	return db;
}

START_TEST(test_load_and_find)
{
	char text[4096], line[1024], hash[USERDB_CRYPT_MAX], err[512] = "";
	const struct userdb_user *u;
	struct userdb *db;

	ck_assert_int_eq(userdb_crypt_make("bob's password", hash, sizeof(hash)), 0);
	ck_assert(strncmp(hash, "$y$", 3) == 0);
	scram_line(line, sizeof(line), "zoe@example.org", "zoe pw", " from=zoe@example.org,@example.net");
	snprintf(text, sizeof(text), "# users\n\n   # indented comment\n%sbob\tcrypt=%s\n", line, hash);
	db = load_text(text, 0, err, sizeof(err));
	ck_assert_uint_eq(userdb_count(db), 2);
	ck_assert_str_eq(userdb_at(db, 0)->name, "bob");		/* name order */
	ck_assert_str_eq(userdb_at(db, 1)->name, "zoe@example.org");
	u = userdb_find(db, "zoe@example.org");
	ck_assert_ptr_nonnull(u);
	ck_assert(u->has_scram);
	ck_assert_ptr_null(u->crypt);
	ck_assert_uint_eq(u->nsenders, 2);
	ck_assert_str_eq(u->senders[1], "@example.net");
	ck_assert_uint_eq(u->line, 4);
	u = userdb_find(db, "bob");
	ck_assert(!u->has_scram);
	ck_assert_str_eq(u->crypt, hash);
	ck_assert_ptr_null(userdb_find(db, "Bob"));		/* exact names */
	ck_assert_ptr_null(userdb_find(db, "nobody"));
	userdb_free(db);
}
END_TEST

static const struct {
	const char     *line;
	const char     *why;
} bad_lines[] = {
	{ "alice", "no secret" },
	{ "alice crypt=$y$abc scram", "expected key=value" },
	{ "alice password=x", "unknown key" },
	{ "alice crypt=$y$a crypt=$y$b", "key given twice" },
	{ "alice crypt=plain", "\"$id$...\" hash" },
	{ "alice crypt=$y$a b;c", "expected key=value" },
	{ "alice crypt=$y$a;c", "outside [./0-9A-Za-z$]" },
	{ "alice scram=4096:c2FsdA==:abc", "ITERATIONS:SALT:STOREDKEY:SERVERKEY" },
	{ "alice scram=100:c2FsdA==:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	  "from 4096 to 1000000" },
	{ "alice scram=4096:not*b64:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	  "salt is not base64" },
	{ "alice scram=4096:c2FsdA==:AAAA:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "32 bytes in base64" },
	{ "alice crypt=$y$a from=", "from= is empty" },
	{ "alice crypt=$y$a from=a@b.c,,d@e.f", "empty entry" },
	{ "alice crypt=$y$a from=a@b.c,", "empty entry" },
	{ "alice crypt=$y$a from=nodomain", "neither an address" },
	{ "alice crypt=$y$a from=@bad..domain", "bad domain" },
	{ "al\x01ice crypt=$y$a", "control character" },
	{ "alice cram-md5=c2VjcmV0", "no secret" },		/* a CRAM secret alone is no user */
	{ "alice crypt=$y$a cram-md5=not*b64=", "cram-md5= secret is not base64" },
	{ "alice crypt=$y$a cram-md5=", "cram-md5= secret is not base64" },
	{ "alice crypt=$y$a cram-md5=c2V", "cram-md5= secret is not base64" },
	{ "alice crypt=$y$a cram-md5=YQFi", "cram-md5= secret with a control character" },
	{ "alice crypt=$y$a cram-md5=YQ== cram-md5=Yg==", "key given twice" },
	{ "al\xc3\xa9 crypt=$y$a", "non-ASCII" },
};

START_TEST(test_bad_lines)
{
	char text[512], err[512] = "";

	snprintf(text, sizeof(text), "# first\n%s\n", bad_lines[_i].line);
	ck_assert_ptr_null(load_text(text, -EINVAL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "/users:2: ") != NULL, "%s: %s", bad_lines[_i].line, err);
	ck_assert_msg(strstr(err, bad_lines[_i].why) != NULL, "%s: %s", bad_lines[_i].line, err);
}
END_TEST

START_TEST(test_limits_and_duplicates)
{
	char *text, err[512] = "";
	size_t len = 6000;

	ck_assert_ptr_null(load_text("a crypt=$y$a\nb crypt=$y$b\na crypt=$y$c\n", -EINVAL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "users:3: user a already given on line 1") != NULL, "%s", err);

	text = malloc(len + 32);
	ck_assert_ptr_nonnull(text);
	memset(text, 'x', len);
	memcpy(text + len, " crypt=$y$a\n", 13);
	ck_assert_ptr_null(load_text(text, -EINVAL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "users:1: line longer than 4095 bytes") != NULL, "%s", err);
	free(text);

	text = malloc(300);
	memset(text, 'n', 256);
	memcpy(text + 256, " crypt=$y$a\n", 13);
	ck_assert_ptr_null(load_text(text, -EINVAL, err, sizeof(err)));
	ck_assert_msg(strstr(err, "longer than 255") != NULL, "%s", err);
	free(text);
}
END_TEST

START_TEST(test_mode_and_missing)
{
	char path[PATH_LEN + 16], err[512] = "";
	struct userdb *db = NULL;

	snprintf(path, sizeof(path), "%s/users", dir);
	ck_assert_int_eq(userdb_load(path, &db, err, sizeof(err)), -ENOENT);
	ck_assert(strstr(err, "No such file") != NULL);
	write_file(path, "a crypt=$y$a\n", 0644);
	ck_assert_int_eq(userdb_load(path, &db, err, sizeof(err)), -EPERM);
	ck_assert_msg(strstr(err, "mode 0644 lets group or others read it (chmod 600)") != NULL, "%s", err);
	ck_assert_ptr_null(db);
}
END_TEST

START_TEST(test_check_password)
{
	char text[2048], line[1024], hash[USERDB_CRYPT_MAX], err[512] = "";
	struct userdb *db;

	ck_assert_int_eq(userdb_crypt_make("crypt pw", hash, sizeof(hash)), 0);
	scram_line(line, sizeof(line), "scram", "scram pw", "");
	snprintf(text, sizeof(text), "%scrypt crypt=%s\nother crypt=$zz$unknown\n", line, hash);
	db = load_text(text, 0, err, sizeof(err));
	ck_assert_int_eq(userdb_check_password(userdb_find(db, "crypt"), "crypt pw"), 0);
	ck_assert_int_eq(userdb_check_password(userdb_find(db, "crypt"), "crypt pw "), -EACCES);
	ck_assert_int_eq(userdb_check_password(userdb_find(db, "crypt"), ""), -EACCES);
	ck_assert_int_eq(userdb_check_password(userdb_find(db, "scram"), "scram pw"), 0);
	ck_assert_int_eq(userdb_check_password(userdb_find(db, "scram"), "crypt pw"), -EACCES);
	ck_assert_int_eq(userdb_check_password(NULL, "x"), -EACCES);
	ck_assert_int_eq(userdb_check_password(userdb_find(db, "other"), "x"), -EINVAL);
	userdb_free(db);
}
END_TEST

START_TEST(test_scram_own_derived_stale)
{
	char text[2048], line[1024], hash[USERDB_CRYPT_MAX], old[USERDB_CRYPT_MAX], err[512] = "";
	struct sasl_scram_secrets s, d;
	struct userdb *db, *derived;

	ck_assert_int_eq(userdb_crypt_make("pw", hash, sizeof(hash)), 0);
	ck_assert_int_eq(userdb_crypt_make("old pw", old, sizeof(old)), 0);
	scram_line(line, sizeof(line), "own", "own pw", "");
	snprintf(text, sizeof(text), "%scarol crypt=%s\nstale crypt=%s\n", line, hash, hash);
	db = load_text(text, 0, err, sizeof(err));
	ck_assert_int_eq(userdb_scram(db, NULL, "own", &s), 0);
	ck_assert_str_eq(s.stored_key, userdb_find(db, "own")->scram.stored_key);
	ck_assert_int_eq(userdb_scram(db, NULL, "carol", &s), -ENOKEY);
	ck_assert_int_eq(userdb_scram(db, NULL, "nobody", &s), -ENOENT);

	ck_assert_int_eq(userdb_new(&derived), 0);
	ck_assert_int_eq(sasl_scram_secrets_make("pw", 4096, NULL, &d), 0);
	ck_assert_int_eq(userdb_set(derived, "carol", &d, hash), 0);
	ck_assert_int_eq(userdb_set(derived, "stale", &d, old), 0);	/* from a hash replaced since */
	ck_assert_int_eq(userdb_scram(db, derived, "carol", &s), 0);
	ck_assert_str_eq(s.server_key, d.server_key);
	ck_assert_int_eq(userdb_scram(db, derived, "stale", &s), -ENOKEY);
	userdb_free(derived);
	userdb_free(db);
}
END_TEST

START_TEST(test_senders)
{
	char err[512] = "";
	struct userdb *db = load_text("a@example.org crypt=$y$a\nlisted crypt=$y$a from=ann@example.org,@Example.NET\n"
	    "plain crypt=$y$a\n", 0, err, sizeof(err));
	const struct userdb_user *a = userdb_find(db, "a@example.org"), *l = userdb_find(db, "listed");

	ck_assert(userdb_may_send_as(a, "a@example.org"));
	ck_assert(userdb_may_send_as(a, "a@EXAMPLE.org"));		/* domains in any case */
	ck_assert(!userdb_may_send_as(a, "A@example.org"));		/* local parts exactly */
	ck_assert(!userdb_may_send_as(a, "b@example.org"));
	ck_assert(userdb_may_send_as(a, ""));				/* the null sender */
	ck_assert(userdb_may_send_as(l, "ann@example.org"));
	ck_assert(userdb_may_send_as(l, "anyone@example.net"));
	ck_assert(!userdb_may_send_as(l, "anyone@sub.example.net"));
	ck_assert(!userdb_may_send_as(l, "listed@example.org"));
	ck_assert(!userdb_may_send_as(userdb_find(db, "plain"), "plain@example.org"));
	ck_assert(!userdb_may_send_as(NULL, "x@example.org"));
	userdb_free(db);
}
END_TEST

START_TEST(test_change_write_reload)
{
	char path[PATH_LEN + 16], err[512] = "", hash[USERDB_CRYPT_MAX];
	struct sasl_scram_secrets s;
	struct userdb *db, *again;
	struct stat st;

	snprintf(path, sizeof(path), "%s/users", dir);
	write_file(path, "old crypt=$y$a\n", 0600);
	if (geteuid() == 0)
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
	ck_assert_int_eq(userdb_load(path, &db, err, sizeof(err)), 0);
	ck_assert_int_eq(userdb_crypt_make("pw", hash, sizeof(hash)), 0);
	ck_assert_int_eq(sasl_scram_secrets_make("pw", 4096, NULL, &s), 0);
	ck_assert_int_eq(userdb_set(db, "new", &s, hash), 0);
	ck_assert_int_eq(userdb_set_senders(db, "new", "new@example.org,@example.com", err, sizeof(err)), 0);
	ck_assert_int_eq(userdb_set_senders(db, "new", "bad", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(userdb_set_senders(db, "ghost", "a@b.c", err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(userdb_set(db, "x y", &s, NULL), -EINVAL);
	ck_assert_int_eq(userdb_set(db, "x", NULL, NULL), -EINVAL);
	ck_assert_int_eq(userdb_del(db, "old"), 0);
	ck_assert_int_eq(userdb_del(db, "old"), -ENOENT);
	ck_assert_int_eq(userdb_write(path, db, err, sizeof(err)), 0);

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	if (geteuid() == 0)
		ck_assert_uint_eq(st.st_uid, 65534);		/* the owner is kept */
	ck_assert_int_eq(userdb_load(path, &again, err, sizeof(err)), 0);
	ck_assert_uint_eq(userdb_count(again), 1);
	ck_assert_str_eq(userdb_at(again, 0)->crypt, hash);
	ck_assert_str_eq(userdb_at(again, 0)->scram.stored_key, s.stored_key);
	ck_assert_str_eq(userdb_at(again, 0)->senders[1], "@example.com");
	ck_assert_int_eq(userdb_check_password(userdb_at(again, 0), "pw"), 0);
	/* the set was changed after its rename: no temporary is left */
	ck_assert_int_eq(access(path, F_OK), 0);
	{
		char tmp[PATH_LEN + 32];

		snprintf(tmp, sizeof(tmp), "%s/.users.tmp", dir);
		ck_assert_int_eq(access(tmp, F_OK), -1);
	}
	userdb_free(again);
	userdb_free(db);
}
END_TEST

/* The server's callbacks, backed by a loaded set. */
static int
ops_password(void *arg, const char *user, const char *password)
{
	return userdb_check_password(userdb_find(arg, user), password);
}

static int
ops_scram(void *arg, const char *user, struct sasl_scram_secrets *out)
{
	return userdb_scram(arg, NULL, user, out);
}

static enum sasl_status
scram_exchange(struct userdb *db, const char *user, const char *password)
{
	static const struct sasl_server_ops ops = { ops_password, ops_scram, NULL };
	struct sasl_ctx *ctx;
	struct sasl_client *cl;
	struct sasl_server *srv;
	enum sasl_status st;
	char *resp, *chal;

	ck_assert_int_eq(sasl_ctx_new(&ctx), 0);
	ck_assert_int_eq(sasl_client_start(ctx, "SCRAM-SHA-256", user, password, &cl, &resp), 0);
	ck_assert_int_eq(sasl_server_start(ctx, "SCRAM-SHA-256", &ops, db, &srv), SASL_CONTINUE);
	for (int i = 0; i < 5; i++) {
		st = sasl_server_step(srv, resp, &chal);
		free(resp);
		resp = NULL;
		if (st != SASL_CONTINUE)
			break;
		sasl_client_step(cl, chal, &resp);
		free(chal);
	}
	free(resp);
	sasl_client_free(cl);
	sasl_server_free(srv);
	sasl_ctx_free(ctx);
	return st;
}

/* Keys made by the gsasl command ("{SCRAM-SHA-256}count,salt,stored,server"). */
START_TEST(test_scram_exchange_with_gsasl_keys)
{
	char out[512] = "", text[1024], err[512] = "", *p;
	FILE *fp = popen("gsasl --mkpasswd --mechanism SCRAM-SHA-256 --iteration-count 4096 "
	    "--password 'gsasl pw' 2>/dev/null", "r");
	struct userdb *db;

	ck_assert_ptr_nonnull(fp);
	ck_assert_ptr_nonnull(fgets(out, sizeof(out), fp));
	ck_assert_int_eq(pclose(fp), 0);
	out[strcspn(out, "\n")] = '\0';
	ck_assert(strncmp(out, "{SCRAM-SHA-256}", 15) == 0);
	for (p = out; *p != '\0'; p++)
		if (*p == ',')
			*p = ':';
	snprintf(text, sizeof(text), "gus scram=%s\n", out + 15);
	db = load_text(text, 0, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	ck_assert_int_eq(scram_exchange(db, "gus", "gsasl pw"), SASL_OK);
	ck_assert_int_eq(scram_exchange(db, "gus", "gsasl pw!"), SASL_BAD_CREDENTIALS);
	ck_assert_int_eq(userdb_check_password(userdb_find(db, "gus"), "gsasl pw"), 0);
	userdb_free(db);
}
END_TEST

static int
ops_cram(void *arg, const char *user, char *out, size_t outlen)
{
	return userdb_cram(arg, user, out, outlen);
}

/* GNU SASL's own CRAM-MD5 client (the relay's client never does CRAM-MD5). */
static enum sasl_status
cram_exchange(struct userdb *db, const char *user, const char *secret)
{
	static const struct sasl_server_ops ops = { ops_password, ops_scram, ops_cram };
	struct sasl_ctx *ctx;
	struct sasl_server *srv;
	Gsasl *g;
	Gsasl_session *cl;
	enum sasl_status st;
	char *chal = NULL, *resp = NULL;

	ck_assert_int_eq(gsasl_init(&g), GSASL_OK);
	ck_assert_int_eq(gsasl_client_start(g, "CRAM-MD5", &cl), GSASL_OK);
	gsasl_property_set(cl, GSASL_AUTHID, user);
	gsasl_property_set(cl, GSASL_PASSWORD, secret);
	ck_assert_int_eq(sasl_ctx_new(&ctx), 0);
	ck_assert_int_eq(sasl_server_start(ctx, "CRAM-MD5", &ops, db, &srv), SASL_CONTINUE);
	ck_assert_int_eq(sasl_server_step(srv, "", &chal), SASL_CONTINUE);
	ck_assert_int_eq(gsasl_step64(cl, chal, &resp), GSASL_OK);
	free(chal);
	st = sasl_server_step(srv, resp, &chal);
	ck_assert_ptr_null(chal);
	if (st == SASL_OK)
		ck_assert_str_eq(sasl_server_identity(srv), user);
	gsasl_free(resp);
	sasl_server_free(srv);
	sasl_ctx_free(ctx);
	gsasl_finish(cl);
	gsasl_done(g);
	return st;
}

/* "two words!" in base64: blanks survive the file. */
#define CRAM_B64	"dHdvIHdvcmRzIQ=="

START_TEST(test_cram_secret)
{
	char err[512] = "", buf[USERDB_CRAM_MAX], small[4], path[PATH_LEN + 16], *text = NULL;
	struct userdb *db, *again = NULL;
	struct sasl_scram_secrets s;
	size_t len;

	db = load_text("carol crypt=$y$abc cram-md5=" CRAM_B64 "\ndave crypt=$y$abc\n", 0, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	ck_assert_str_eq(userdb_find(db, "carol")->cram, "two words!");
	ck_assert_int_eq(userdb_cram(db, "carol", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "two words!");
	ck_assert_int_eq(userdb_cram(db, "carol", small, sizeof(small)), -ENAMETOOLONG);
	ck_assert_int_eq(userdb_cram(db, "dave", buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(userdb_cram(db, "nobody", buf, sizeof(buf)), -ENOENT);
	/* the CRAM secret is never a password for PLAIN or LOGIN */
	ck_assert_int_eq(userdb_check_password(userdb_find(db, "carol"), "two words!"), -EINVAL);

	ck_assert_int_eq(cram_exchange(db, "carol", "two words!"), SASL_OK);
	ck_assert_int_eq(cram_exchange(db, "carol", "two words?"), SASL_BAD_CREDENTIALS);
	ck_assert_int_eq(cram_exchange(db, "dave", "anything"), SASL_BAD_CREDENTIALS);
	ck_assert_int_eq(cram_exchange(db, "nobody", "anything"), SASL_BAD_CREDENTIALS);

	/* kept through a rewrite, as base64 */
	ck_assert_int_eq(userdb_format(db, &text, &len), 0);
	ck_assert_ptr_nonnull(strstr(text, "carol crypt=$y$abc cram-md5=" CRAM_B64 "\n"));
	free(text);
	snprintf(path, sizeof(path), "%s/users", dir);
	ck_assert_int_eq(userdb_write(path, db, err, sizeof(err)), 0);
	ck_assert_int_eq(userdb_load(path, &again, err, sizeof(err)), 0);
	ck_assert_str_eq(userdb_find(again, "carol")->cram, "two words!");
	userdb_free(again);

	/* set, refused, removed; a new password drops it */
	ck_assert_int_eq(userdb_set_cram(db, "dave", "d secret"), 0);
	ck_assert_int_eq(userdb_cram(db, "dave", buf, sizeof(buf)), 0);
	ck_assert_int_eq(userdb_set_cram(db, "dave", "bad\nsecret"), -EINVAL);
	ck_assert_int_eq(userdb_set_cram(db, "dave", ""), -EINVAL);
	ck_assert_int_eq(userdb_set_cram(db, "nobody", "x"), -ENOENT);
	ck_assert_int_eq(userdb_set_cram(db, "dave", NULL), 0);
	ck_assert_int_eq(userdb_cram(db, "dave", buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(sasl_scram_secrets_make("new pw", 4096, NULL, &s), 0);
	ck_assert_int_eq(userdb_set(db, "carol", &s, NULL), 0);
	ck_assert_ptr_null(userdb_find(db, "carol")->cram);
	ck_assert_int_eq(cram_exchange(db, "carol", "two words!"), SASL_BAD_CREDENTIALS);
	userdb_free(db);
}
END_TEST

static Suite *
userdb_suite(void)
{
	Suite *s = suite_create("userdb");
	TCase *tc = tcase_create("userdb");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_load_and_find);
	tcase_add_loop_test(tc, test_bad_lines, 0, sizeof(bad_lines) / sizeof(bad_lines[0]));
	tcase_add_test(tc, test_limits_and_duplicates);
	tcase_add_test(tc, test_mode_and_missing);
	tcase_add_test(tc, test_check_password);
	tcase_add_test(tc, test_scram_own_derived_stale);
	tcase_add_test(tc, test_senders);
	tcase_add_test(tc, test_change_write_reload);
	tcase_add_test(tc, test_scram_exchange_with_gsasl_keys);
	tcase_add_test(tc, test_cram_secret);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(userdb_suite());
}
