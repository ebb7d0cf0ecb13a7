/*
 * NAME
 *	test_sasl - unit tests of SMTP AUTH through GNU SASL
 * SYNOPSIS
 *	test_sasl
 * DESCRIPTION
 *	The module's client against its server, in this process, through
 *	base64 text only, with a user table behind the server's callbacks:
 *	alice has a password and SCRAM-SHA-256 secrets (made with
 *	sasl_scram_secrets_make()), carol only a password (as a user with only
 *	a crypt(3) hash).  For PLAIN, LOGIN and SCRAM-SHA-256: success gives
 *	the identity; a wrong password and an unknown user are bad
 *	credentials; text that is not base64 and base64 the mechanism cannot
 *	parse are malformed; "*" cancels; a failing credential store is a
 *	temporary failure; SCRAM for carol asks for a password transition;
 *	an unknown SCRAM user gets the same made-up salt each time;
 *	AUTH LOGIN with the user as initial response;
 *	an authorization identity other than the user is refused.  The
 *	client's choice of mechanism (order, plaintext refusal), a SCRAM
 *	server whose signature is wrong, and the credentials file (format,
 *	errors with line numbers, mode check, reload).
 *
 *	Interoperability: the real gsasl command (package gsasl) as the
 *	client against this module's server for each mechanism, and as the
 *	SCRAM-SHA-256 server against this module's client, over pipes (its
 *	--quiet mode writes one base64 line per step and reads one); and
 *	sasl_scram_secrets_make() against gsasl --mkpasswd for the same salt.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gsasl.h>

#include "sasl.h"
#include "testutil.h"

#define PATH_LEN	1024

static struct sasl_ctx *ctx;

/* The server's user table */

struct user {
	const char     *name, *password;
	bool		has_scram;
	struct sasl_scram_secrets scram;
};

static struct user users[] = {
	{ "alice", "correct horse battery", true, { 0 } },
	{ "carol", "only-a-crypt-hash", false, { 0 } },
};

struct store {
	int		fail;		/* -errno every lookup returns, 0: none */
	unsigned	lookups;
};

static struct user *
user_find(const char *name)
{
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
		if (strcmp(users[i].name, name) == 0)
			return &users[i];
	return NULL;
}

static int
check_password(void *arg, const char *name, const char *password)
{
	struct store *st = arg;
	struct user *u = user_find(name);

	st->lookups++;
	if (st->fail != 0)
		return st->fail;
	return u != NULL && strcmp(u->password, password) == 0 ? 0 : -EACCES;
}

static int
scram_secrets(void *arg, const char *name, struct sasl_scram_secrets *out)
{
	struct store *st = arg;
	struct user *u = user_find(name);

	st->lookups++;
	if (st->fail != 0)
		return st->fail;
	if (u == NULL)
		return -ENOENT;
	if (!u->has_scram)
		return -ENOKEY;
	*out = u->scram;
	return 0;
}

static const struct sasl_server_ops ops = { check_password, scram_secrets, NULL };

static void
setup(void)
{
	ck_assert_int_eq(sasl_ctx_new(&ctx), 0);
	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
		if (users[i].has_scram)
			ck_assert_int_eq(sasl_scram_secrets_make(users[i].password, 4096, NULL, &users[i].scram), 0);
}

static void
teardown(void)
{
	sasl_ctx_free(ctx);
	ctx = NULL;
}

/* One whole exchange, the module's client against its server.  Returns
 * the server's last status; *steps counts the server's steps and
 * *first its first status. */
struct run {
	enum sasl_status server, first, client;
	unsigned	steps;
	bool		client_finished;
	char		identity[64];
	char		error[200];
};

static void
exchange(const char *mech, const char *user, const char *password, struct store *st, struct run *r)
{
	struct sasl_client *cl;
	struct sasl_server *srv;
	char *initial, *resp, *chal;

	memset(r, 0, sizeof(*r));
	r->client = SASL_CONTINUE;
	ck_assert_int_eq(sasl_client_start(ctx, mech, user, password, &cl, &initial), 0);
	ck_assert_int_eq(sasl_server_start(ctx, mech, &ops, st, &srv), SASL_CONTINUE);
	resp = initial != NULL ? initial : strdup("");
	for (;;) {
		r->server = sasl_server_step(srv, resp, &chal);
		free(resp);
		resp = NULL;
		if (r->steps++ == 0)
			r->first = r->server;
		if (r->server != SASL_CONTINUE) {
			ck_assert_ptr_null(chal);
			break;
		}
		ck_assert_ptr_nonnull(chal);
		ck_assert_uint_lt(r->steps, 6);
		r->client = sasl_client_step(cl, chal, &resp);
		free(chal);
		if (r->client != SASL_OK && r->client != SASL_CONTINUE)
			break;
	}
	free(resp);
	r->client_finished = sasl_client_finished(cl);
	if (sasl_server_identity(srv) != NULL)
		snprintf(r->identity, sizeof(r->identity), "%s", sasl_server_identity(srv));
	snprintf(r->error, sizeof(r->error), "%s", sasl_server_error(srv));
	sasl_client_free(cl);
	sasl_server_free(srv);
}

static const char *const all_mechs[] = { "SCRAM-SHA-256", "PLAIN", "LOGIN" };

START_TEST(test_success_each_mechanism)
{
	const char *mech = all_mechs[_i];
	struct store st = { 0 };
	struct run r;

	exchange(mech, "alice", "correct horse battery", &st, &r);
	ck_assert_msg(r.server == SASL_OK, "%s: %s (%s)", mech, sasl_status_name(r.server), r.error);
	ck_assert_str_eq(r.identity, "alice");
	ck_assert_int_eq(r.client_finished, true);
	ck_assert_str_eq(r.error, "");
	ck_assert_uint_eq(st.lookups, 1);
	/* SCRAM: client-first, client-final, then the empty line after
	 * server-final; PLAIN: one; LOGIN: empty, user, password */
	ck_assert_uint_eq(r.steps, strcmp(mech, "PLAIN") == 0 ? 1 : 3);
}
END_TEST

START_TEST(test_wrong_password_each_mechanism)
{
	const char *mech = all_mechs[_i];
	struct store st = { 0 };
	struct run r;

	exchange(mech, "alice", "correct horse battery!", &st, &r);
	ck_assert_msg(r.server == SASL_BAD_CREDENTIALS, "%s: %s", mech, sasl_status_name(r.server));
	ck_assert_str_eq(r.identity, "");
	ck_assert_str_ne(r.error, "");
	ck_assert_ptr_null(strstr(r.error, "battery"));
}
END_TEST

START_TEST(test_unknown_user_each_mechanism)
{
	const char *mech = all_mechs[_i];
	struct store st = { 0 };
	struct run r;

	exchange(mech, "mallory", "correct horse battery", &st, &r);
	ck_assert_msg(r.server == SASL_BAD_CREDENTIALS, "%s: %s", mech, sasl_status_name(r.server));
	/* SCRAM: the first round looks the same as for a real user */
	if (strcmp(mech, "SCRAM-SHA-256") == 0) {
		ck_assert_int_eq(r.first, SASL_CONTINUE);
		ck_assert_uint_eq(r.steps, 2);
	}
}
END_TEST

/* The salt in the server-first message of a SCRAM exchange for user. */
static void
scram_salt_of(const char *user, char *salt, size_t len)
{
	struct store st = { 0 };
	struct sasl_client *cl;
	struct sasl_server *srv;
	char *initial, *chal, *raw, *s;
	size_t n;

	ck_assert_int_eq(sasl_client_start(ctx, "SCRAM-SHA-256", user, "pw", &cl, &initial), 0);
	ck_assert_int_eq(sasl_server_start(ctx, "SCRAM-SHA-256", &ops, &st, &srv), SASL_CONTINUE);
	ck_assert_int_eq(sasl_server_step(srv, initial, &chal), SASL_CONTINUE);
	ck_assert_int_eq(gsasl_base64_from(chal, strlen(chal), &raw, &n), GSASL_OK);
	ck_assert_ptr_nonnull(s = strstr(raw, ",s="));
	snprintf(salt, len, "%.*s", (int)strcspn(s + 3, ","), s + 3);
	gsasl_free(raw);
	free(chal);
	free(initial);
	sasl_client_free(cl);
	sasl_server_free(srv);
}

/* An unknown name keeps its made-up salt, as a real user keeps its own. */
START_TEST(test_unknown_user_salt_is_stable)
{
	char a1[64], a2[64], b[64], alice[64];

	scram_salt_of("mallory", a1, sizeof(a1));
	scram_salt_of("mallory", a2, sizeof(a2));
	scram_salt_of("trudy", b, sizeof(b));
	scram_salt_of("alice", alice, sizeof(alice));
	ck_assert_str_eq(a1, a2);
	ck_assert_str_ne(a1, b);
	ck_assert_uint_eq(strlen(a1), strlen(alice));
	ck_assert_str_eq(alice, users[0].scram.salt);
}
END_TEST

START_TEST(test_temporary_failure_each_mechanism)
{
	const char *mech = all_mechs[_i];
	struct store st = { .fail = -EIO };
	struct run r;

	exchange(mech, "alice", "correct horse battery", &st, &r);
	ck_assert_msg(r.server == SASL_TEMPFAIL, "%s: %s", mech, sasl_status_name(r.server));
	ck_assert_ptr_nonnull(strstr(r.error, "Input/output error"));
}
END_TEST

START_TEST(test_password_transition)
{
	struct store st = { 0 };
	struct run r;

	exchange("SCRAM-SHA-256", "carol", "only-a-crypt-hash", &st, &r);
	ck_assert_int_eq(r.server, SASL_TRANSITION);
	ck_assert_uint_eq(r.steps, 1);
	exchange("PLAIN", "carol", "only-a-crypt-hash", &st, &r);
	ck_assert_int_eq(r.server, SASL_OK);
	ck_assert_str_eq(r.identity, "carol");
}
END_TEST

/* A server step on raw text, in a fresh exchange of mech. */
static enum sasl_status
server_once(const char *mech, const char *response)
{
	struct store st = { 0 };
	struct sasl_server *srv;
	enum sasl_status s;
	char *chal;

	ck_assert_int_eq(sasl_server_start(ctx, mech, &ops, &st, &srv), SASL_CONTINUE);
	if (strcmp(mech, "LOGIN") == 0) {	/* first the prompt for the user */
		ck_assert_int_eq(sasl_server_step(srv, "", &chal), SASL_CONTINUE);
		free(chal);
	}
	s = sasl_server_step(srv, response, &chal);
	ck_assert(s == SASL_CONTINUE || chal == NULL);
	free(chal);
	/* once over, it stays over */
	if (s != SASL_CONTINUE) {
		ck_assert_int_eq(sasl_server_step(srv, "", &chal), s);
		ck_assert_ptr_null(chal);
	}
	sasl_server_free(srv);
	return s;
}

static char *
b64(const char *raw, size_t len)
{
	char *out;
	size_t n;

	ck_assert_int_eq(gsasl_base64_to(raw, len, &out, &n), GSASL_OK);
	return out;
}

START_TEST(test_malformed)
{
	const char *mech = all_mechs[_i];
	char *junk = b64("no-nul-and-no-commas", 20);

	ck_assert_int_eq(server_once(mech, "not base64!"), SASL_MALFORMED);
	ck_assert_int_eq(server_once(mech, "AGFsaWNl=AHB3"), SASL_MALFORMED);
	ck_assert_int_eq(server_once(mech, "*"), SASL_CANCELLED);
	if (strcmp(mech, "LOGIN") != 0)		/* LOGIN takes any text as a name */
		ck_assert_int_eq(server_once(mech, junk), SASL_MALFORMED);
	gsasl_free(junk);
}
END_TEST

/* AUTH LOGIN with the user on the AUTH line, as some clients send it. */
START_TEST(test_login_initial_response)
{
	struct store st = { 0 };
	struct sasl_server *srv;
	char *user = b64("alice", 5), *pw = b64("correct horse battery", 21), *chal, *raw;
	size_t len;

	ck_assert_int_eq(sasl_server_start(ctx, "LOGIN", &ops, &st, &srv), SASL_CONTINUE);
	ck_assert_int_eq(sasl_server_step(srv, user, &chal), SASL_CONTINUE);
	ck_assert_int_eq(gsasl_base64_from(chal, strlen(chal), &raw, &len), GSASL_OK);
	ck_assert_int_eq(strncasecmp(raw, "Password", 8), 0);	/* the user was taken */
	gsasl_free(raw);
	free(chal);
	ck_assert_int_eq(sasl_server_step(srv, pw, &chal), SASL_OK);
	ck_assert_str_eq(sasl_server_identity(srv), "alice");
	sasl_server_free(srv);
	gsasl_free(user);
	gsasl_free(pw);
}
END_TEST

START_TEST(test_authzid_refused)
{
	static const char other[] = "carol\0alice\0correct horse battery";
	static const char same[] = "alice\0alice\0correct horse battery";
	char *r1 = b64(other, sizeof(other) - 1), *r2 = b64(same, sizeof(same) - 1);

	ck_assert_int_eq(server_once("PLAIN", r1), SASL_BAD_CREDENTIALS);
	ck_assert_int_eq(server_once("PLAIN", r2), SASL_OK);
	gsasl_free(r1);
	gsasl_free(r2);
}
END_TEST

START_TEST(test_unknown_mechanism)
{
	static const char *const unknown[] = { "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS",
		"DIGEST-MD5", "ANONYMOUS", "EXTERNAL", "GSSAPI", "", "PLAIN ", "X" };
	struct store st = { 0 };
	struct sasl_server *srv;
	struct sasl_client *cl;
	char *initial;

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		ck_assert_int_eq(sasl_server_supports(unknown[i]), false);
		ck_assert_int_eq(sasl_server_start(ctx, unknown[i], &ops, &st, &srv), SASL_UNKNOWN_MECH);
		ck_assert_ptr_null(srv);
		ck_assert_int_eq(sasl_client_start(ctx, unknown[i], "a", "b", &cl, &initial), -ENOTSUP);
	}
	ck_assert_int_eq(sasl_server_supports("plain"), true);
	ck_assert_int_eq(sasl_server_start(ctx, "scram-sha-256", &ops, &st, &srv), SASL_CONTINUE);
	sasl_server_free(srv);
	ck_assert_int_eq(sasl_client_start(ctx, "PLAIN", "", "b", &cl, &initial), -EINVAL);
	ck_assert_str_eq(sasl_status_name(SASL_UNKNOWN_MECH), "unknown-mechanism");
}
END_TEST

/* CRAM-MD5: a server mechanism only, opt-in, the weakest; without a
 * cram_secret callback it fails temporarily (the exchange itself is in
 * test_userdb, against the users file). */
START_TEST(test_cram_md5_server_only)
{
	struct store st = { 0 };
	struct sasl_server *srv;
	struct sasl_client *cl;
	char *initial, *chal = NULL;
	bool sends_password = true;
	int strength = -1;

	ck_assert_int_eq(sasl_server_supports("cram-md5"), true);
	ck_assert_str_eq(sasl_mech_lookup("cram-md5", &sends_password, &strength), "CRAM-MD5");
	ck_assert_int_eq(sends_password, false);
	ck_assert_int_eq(strength, 0);
	ck_assert_int_eq(sasl_mech_opt_in("CRAM-MD5"), true);
	ck_assert_int_eq(sasl_mech_opt_in("PLAIN"), false);
	ck_assert_int_eq(sasl_mech_opt_in("SCRAM-SHA-256"), false);
	ck_assert_int_eq(sasl_mech_opt_in("X"), false);
	ck_assert_int_eq(sasl_client_start(ctx, "CRAM-MD5", "a", "b", &cl, &initial), -ENOTSUP);
	ck_assert_int_eq(sasl_server_start(ctx, "CRAM-MD5", &ops, &st, &srv), SASL_CONTINUE);
	ck_assert_int_eq(sasl_server_step(srv, "", &chal), SASL_CONTINUE);
	ck_assert_ptr_nonnull(chal);
	free(chal);
	/* "a 0123...": a user and a digest, but no secrets callback */
	ck_assert_int_eq(sasl_server_step(srv, "YSAwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==", &chal),
	    SASL_TEMPFAIL);
	sasl_server_free(srv);
}
END_TEST

START_TEST(test_client_choice)
{
	static const struct {
		const char     *offered;
		bool		tls, allow;
		int		rc;
		const char     *mech;
	} rows[] = {
		{ "PLAIN LOGIN SCRAM-SHA-256", true, false, 0, "SCRAM-SHA-256" },
		{ "LOGIN PLAIN", true, false, 0, "PLAIN" },
		{ "CRAM-MD5 LOGIN", true, false, 0, "LOGIN" },
		{ "login  plain\tscram-sha-256", true, false, 0, "SCRAM-SHA-256" },
		{ "SCRAM-SHA-1 SCRAM-SHA-256-PLUS DIGEST-MD5", true, false, -ENOENT, NULL },
		{ "", true, false, -ENOENT, NULL },
		{ "PLAINX LOGINS", true, true, -ENOENT, NULL },
		/* without TLS */
		{ "PLAIN LOGIN", false, false, -EPERM, NULL },
		{ "LOGIN", false, false, -EPERM, NULL },
		{ "PLAIN LOGIN SCRAM-SHA-256", false, false, 0, "SCRAM-SHA-256" },
		{ "PLAIN LOGIN", false, true, 0, "PLAIN" },
		{ "CRAM-MD5", false, false, -ENOENT, NULL },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *mech = NULL;
		int rc = sasl_client_choose(rows[i].offered, rows[i].tls, rows[i].allow, &mech);

		ck_assert_msg(rc == rows[i].rc, "row %zu: %d", i, rc);
		if (rows[i].mech != NULL)
			ck_assert_str_eq(mech, rows[i].mech);
	}
}
END_TEST

START_TEST(test_client_detects_false_server)
{
	struct store st = { 0 };
	struct sasl_client *cl;
	struct sasl_server *srv;
	char *initial, *chal, *resp, *fake;
	char raw[] = "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

	ck_assert_int_eq(sasl_client_start(ctx, "SCRAM-SHA-256", "alice", "correct horse battery",
	    &cl, &initial), 0);
	ck_assert_int_eq(sasl_server_start(ctx, "SCRAM-SHA-256", &ops, &st, &srv), SASL_CONTINUE);
	ck_assert_int_eq(sasl_server_step(srv, initial, &chal), SASL_CONTINUE);
	ck_assert_int_eq(sasl_client_step(cl, chal, &resp), SASL_CONTINUE);
	free(chal);
	ck_assert_int_eq(sasl_server_step(srv, resp, &chal), SASL_CONTINUE);	/* server-final */
	free(chal);
	free(resp);
	fake = b64(raw, strlen(raw));
	ck_assert_int_eq(sasl_client_step(cl, fake, &resp), SASL_BAD_CREDENTIALS);
	ck_assert_ptr_null(resp);
	ck_assert_int_eq(sasl_client_finished(cl), false);
	ck_assert_ptr_nonnull(strstr(sasl_client_error(cl), "did not prove"));
	ck_assert_int_eq(sasl_client_step(cl, "not base64!", &resp), SASL_MALFORMED);
	gsasl_free(fake);
	free(initial);
	sasl_client_free(cl);
	sasl_server_free(srv);
}
END_TEST

START_TEST(test_scram_secrets_make)
{
	struct sasl_scram_secrets a, b;

	ck_assert_int_eq(sasl_scram_secrets_make("pw", 4096, NULL, &a), 0);
	ck_assert_int_eq(sasl_scram_secrets_make("pw", 4096, NULL, &b), 0);
	ck_assert_uint_eq(a.iterations, 4096);
	ck_assert_uint_eq(strlen(a.stored_key), 44);	/* 32 bytes in base64 */
	ck_assert_uint_eq(strlen(a.server_key), 44);
	ck_assert_uint_eq(strlen(a.salt), 24);		/* 18 bytes in base64 */
	ck_assert_str_ne(a.salt, b.salt);
	ck_assert_str_ne(a.stored_key, b.stored_key);
	ck_assert_int_eq(sasl_scram_secrets_make("", 4096, NULL, &a), -EINVAL);
	ck_assert_int_eq(sasl_scram_secrets_make("pw", 0, NULL, &a), -EINVAL);
	ck_assert_int_eq(sasl_scram_secrets_make("pw", 4096, "not base64!", &a), -EINVAL);
	/* the same salt gives the same secrets */
	ck_assert_int_eq(sasl_scram_secrets_make("pw", 4096, NULL, &a), 0);
	ck_assert_int_eq(sasl_scram_secrets_make("pw", 4096, a.salt, &b), 0);
	ck_assert_str_eq(a.stored_key, b.stored_key);
	ck_assert_str_eq(a.server_key, b.server_key);
}
END_TEST

/* The credentials file */

static char tmpdir[256];

static const char *
write_file(const char *name, const char *text, size_t len, mode_t mode)
{
	static char path[PATH_LEN];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	ck_assert_uint_eq(fwrite(text, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

static void
creds_setup(void)
{
	testutil_mkdtemp(tmpdir, sizeof(tmpdir), "sasl");
}

static void
creds_teardown(void)
{
	testutil_rmtree(tmpdir);
}

START_TEST(test_creds_file)
{
	static const char text[] =
		"# relay credentials\n"
		"\n"
		"[smtp.example.net]:587  me@example.net:s3cret pass: phrase \n"
		"   \t# an indented comment\n"
		"*\tbackup:x\n"
		"mx.Example.ORG backup:p#not-a-comment";	/* no final newline */
	const struct sasl_cred *c;
	struct sasl_creds *creds;
	char err[300] = "";
	const char *path = write_file("creds", text, sizeof(text) - 1, 0600);

	ck_assert_msg(sasl_creds_load(path, &creds, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(sasl_creds_count(creds), 3);
	ck_assert_ptr_nonnull(c = sasl_creds_find(creds, "[SMTP.example.net]:587"));
	ck_assert_str_eq(c->user, "me@example.net");
	ck_assert_str_eq(c->password, "s3cret pass: phrase ");
	ck_assert_uint_eq(c->line, 3);
	ck_assert_ptr_nonnull(c = sasl_creds_find(creds, "*"));
	ck_assert_str_eq(c->password, "x");
	ck_assert_ptr_nonnull(c = sasl_creds_find(creds, "mx.example.org"));
	ck_assert_str_eq(c->password, "p#not-a-comment");
	ck_assert_ptr_null(sasl_creds_find(creds, "smtp.example.net"));
	sasl_creds_free(creds);
}
END_TEST

START_TEST(test_creds_errors)
{
	static const struct {
		const char     *text;
		const char     *want;
	} rows[] = {
		{ "a b:c\nhost user\n", ":2: no ':' between user and password" },
		{ "host\n", ":1: expected: route user:password" },
		{ "host user:\n", ":1: empty password" },
		{ "host :pw\n", ":1: empty user name" },
		{ "host us er:pw\n", ":1: blank in the user name" },
		{ "host user:pw\r\n", ":1: control character in the line" },
		{ "host user:p\033w\n", ":1: control character in the line" },
		{ "a u:p\n# c\nA u:q\n", ":3: route A already given on line 1" },
	};
	struct sasl_creds *creds;
	char err[300];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *path = write_file("creds", rows[i].text, strlen(rows[i].text), 0600);

		creds = NULL;
		ck_assert_int_eq(sasl_creds_load(path, &creds, err, sizeof(err)), -EINVAL);
		ck_assert_ptr_null(creds);
		ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && strstr(err, rows[i].want) != NULL,
		    "row %zu: %s", i, err);
		ck_assert_ptr_null(strstr(err, "pw"));
	}
}
END_TEST

START_TEST(test_creds_limits)
{
	char line[1100], err[300];
	struct sasl_creds *creds;
	const char *path;

	memset(line, 'p', sizeof(line));
	memcpy(line, "host user:", 10);
	line[1023] = '\n';		/* 1023 bytes and a newline: fits */
	path = write_file("creds", line, 1024, 0600);
	ck_assert_msg(sasl_creds_load(path, &creds, err, sizeof(err)) == 0, "%s", err);
	sasl_creds_free(creds);
	line[1023] = 'p';
	line[1024] = '\n';
	path = write_file("creds", line, 1025, 0600);
	ck_assert_int_eq(sasl_creds_load(path, &creds, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, ":1: line longer than 1023 bytes"));
	path = write_file("creds", "host user:p\0w\n", 14, 0600);
	ck_assert_int_eq(sasl_creds_load(path, &creds, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, ":1: NUL byte in the line"));
}
END_TEST

START_TEST(test_creds_mode_and_reload)
{
	struct sasl_creds *creds, *fresh;
	char err[300], want[PATH_LEN + 100];
	const char *path = write_file("creds", "relay u:old\n", 12, 0644);

	ck_assert_int_eq(sasl_creds_load(path, &creds, err, sizeof(err)), -EPERM);
	snprintf(want, sizeof(want), "%s: mode 0644 lets group or others read it (chmod 600)", path);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(sasl_creds_load(path, &creds, err, sizeof(err)), 0);
	ck_assert_str_eq(sasl_creds_find(creds, "relay")->password, "old");

	/* the operator fixes the password; a reload sees it */
	path = write_file("creds", "relay u:new\n", 12, 0600);
	ck_assert_int_eq(sasl_creds_load(path, &fresh, err, sizeof(err)), 0);
	sasl_creds_free(creds);
	creds = fresh;
	ck_assert_str_eq(sasl_creds_find(creds, "relay")->password, "new");
	/* a broken edit leaves the loaded set alone (the caller keeps it) */
	path = write_file("creds", "relay u\n", 8, 0600);
	ck_assert_int_eq(sasl_creds_load(path, &fresh, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(sasl_creds_find(creds, "relay")->password, "new");
	sasl_creds_free(creds);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(sasl_creds_load(path, &fresh, err, sizeof(err)), -ENOENT);
}
END_TEST

/* Interoperability with the gsasl command */

struct child {
	pid_t		pid;
	FILE	       *in;		/* its stdin */
	FILE	       *out;		/* its stdout */
};

static bool
have_gsasl(void)
{
	return system("command -v gsasl >/dev/null 2>&1") == 0;
}

static void
child_start(struct child *c, char *const argv[])
{
	int to[2], from[2];

	ck_assert_int_eq(pipe(to), 0);
	ck_assert_int_eq(pipe(from), 0);
	ck_assert_int_ge(c->pid = fork(), 0);
	if (c->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(to[0], 0);
		dup2(from[1], 1);
		dup2(null, 2);	/* its prompts and warnings; the steps say what failed */
		close(to[1]);
		close(from[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	ck_assert_ptr_nonnull(c->in = fdopen(to[1], "w"));
	ck_assert_ptr_nonnull(c->out = fdopen(from[0], "r"));
	setvbuf(c->in, NULL, _IOLBF, 0);
}

/* The next line the child writes, without its newline; NULL at the end. */
static char *
child_line(struct child *c, char *buf, size_t len)
{
	size_t n;

	if (fgets(buf, (int)len, c->out) == NULL)
		return NULL;
	n = strcspn(buf, "\n");
	buf[n] = '\0';
	return buf;
}

static void
child_end(struct child *c)
{
	int status;

	fclose(c->in);
	fclose(c->out);
	if (waitpid(c->pid, &status, WNOHANG) == 0) {
		kill(c->pid, SIGTERM);
		waitpid(c->pid, &status, 0);
	}
}

/* The gsasl command as client with password, against this server. */
static enum sasl_status
gsasl_client_run(const char *mech, const char *password, char *identity, size_t len)
{
	char *argv[] = { "gsasl", "--client", "--quiet", "--no-cb", "--mechanism", (char *)mech,
		"--authentication-id", "alice", "--password", (char *)password, NULL };
	struct store st = { 0 };
	struct sasl_server *srv;
	struct child c;
	enum sasl_status s = SASL_CONTINUE;
	char line[4096], *chal;

	ck_assert_msg(have_gsasl(), "the gsasl command is missing (scripts/deps.sh installs it)");
	child_start(&c, argv);
	ck_assert_ptr_nonnull(child_line(&c, line, sizeof(line)));
	ck_assert_str_eq(line, mech);		/* it names the mechanism first */
	ck_assert_int_eq(sasl_server_start(ctx, mech, &ops, &st, &srv), SASL_CONTINUE);
	if (strcmp(mech, "LOGIN") == 0) {	/* no initial response: prompt first */
		ck_assert_int_eq(sasl_server_step(srv, "", &chal), SASL_CONTINUE);
		fprintf(c.in, "%s\n", chal);
		free(chal);
	}
	for (int i = 0; i < 6 && s == SASL_CONTINUE; i++) {
		ck_assert_ptr_nonnull(child_line(&c, line, sizeof(line)));
		s = sasl_server_step(srv, line, &chal);
		if (s == SASL_CONTINUE) {
			fprintf(c.in, "%s\n", chal);
			free(chal);
		}
	}
	snprintf(identity, len, "%s", sasl_server_identity(srv) != NULL ? sasl_server_identity(srv) : "");
	sasl_server_free(srv);
	child_end(&c);
	return s;
}

START_TEST(test_gsasl_client_interop)
{
	const char *mech = all_mechs[_i];
	char identity[64];
	enum sasl_status s = gsasl_client_run(mech, "correct horse battery", identity, sizeof(identity));

	ck_assert_msg(s == SASL_OK, "%s: %s", mech, sasl_status_name(s));
	ck_assert_str_eq(identity, "alice");
	s = gsasl_client_run(mech, "correct horse batterY", identity, sizeof(identity));
	ck_assert_msg(s == SASL_BAD_CREDENTIALS, "%s: %s", mech, sasl_status_name(s));
	ck_assert_str_eq(identity, "");
}
END_TEST

START_TEST(test_gsasl_server_interop)
{
	char *argv[] = { "gsasl", "--server", "--quiet", "--no-cb", "--mechanism", "SCRAM-SHA-256",
		"--password", "correct horse battery", NULL };
	struct sasl_client *cl;
	struct child c;
	enum sasl_status s = SASL_CONTINUE;
	char line[4096], *initial, *resp;

	ck_assert_msg(have_gsasl(), "the gsasl command is missing (scripts/deps.sh installs it)");
	child_start(&c, argv);
	ck_assert_ptr_nonnull(child_line(&c, line, sizeof(line)));
	ck_assert_str_eq(line, "SCRAM-SHA-256");
	ck_assert_ptr_nonnull(child_line(&c, line, sizeof(line)));	/* its empty prompt */
	ck_assert_int_eq(sasl_client_start(ctx, "SCRAM-SHA-256", "alice", "correct horse battery",
	    &cl, &initial), 0);
	fprintf(c.in, "%s\n", initial);
	free(initial);
	for (int i = 0; i < 4 && s == SASL_CONTINUE; i++) {
		ck_assert_ptr_nonnull(child_line(&c, line, sizeof(line)));
		s = sasl_client_step(cl, line, &resp);
		if (resp != NULL)
			fprintf(c.in, "%s\n", resp);
		free(resp);
	}
	/* OK only once gsasl's server-final signature verified: it knew the
	 * same password, and it had accepted our proof */
	ck_assert_msg(s == SASL_OK, "%s (%s)", sasl_status_name(s), sasl_client_error(cl));
	ck_assert_int_eq(sasl_client_finished(cl), true);
	sasl_client_free(cl);
	child_end(&c);
}
END_TEST

START_TEST(test_gsasl_mkpasswd_interop)
{
	struct sasl_scram_secrets sec;
	char cmd[300], got[300], want[300];
	FILE *fp;

	ck_assert_msg(have_gsasl(), "the gsasl command is missing (scripts/deps.sh installs it)");
	ck_assert_int_eq(sasl_scram_secrets_make("correct horse battery", 4096, NULL, &sec), 0);
	snprintf(cmd, sizeof(cmd), "gsasl --mkpasswd --mechanism SCRAM-SHA-256 --iteration-count 4096"
	    " --salt '%s' --password 'correct horse battery'", sec.salt);
	ck_assert_ptr_nonnull(fp = popen(cmd, "r"));
	ck_assert_ptr_nonnull(fgets(got, sizeof(got), fp));
	ck_assert_int_eq(pclose(fp), 0);
	got[strcspn(got, "\n")] = '\0';
	snprintf(want, sizeof(want), "{SCRAM-SHA-256}4096,%s,%s,%s", sec.salt, sec.stored_key, sec.server_key);
	ck_assert_str_eq(got, want);
}
END_TEST

static Suite *
sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc = tcase_create("exchange");
	TCase *files = tcase_create("credentials file");
	TCase *interop = tcase_create("gsasl interop");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_success_each_mechanism, 0, 3);
	tcase_add_loop_test(tc, test_wrong_password_each_mechanism, 0, 3);
	tcase_add_loop_test(tc, test_unknown_user_each_mechanism, 0, 3);
	tcase_add_test(tc, test_unknown_user_salt_is_stable);
	tcase_add_loop_test(tc, test_temporary_failure_each_mechanism, 0, 3);
	tcase_add_test(tc, test_password_transition);
	tcase_add_loop_test(tc, test_malformed, 0, 3);
	tcase_add_test(tc, test_login_initial_response);
	tcase_add_test(tc, test_authzid_refused);
	tcase_add_test(tc, test_unknown_mechanism);
	tcase_add_test(tc, test_cram_md5_server_only);
	tcase_add_test(tc, test_client_choice);
	tcase_add_test(tc, test_client_detects_false_server);
	tcase_add_test(tc, test_scram_secrets_make);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(files, creds_setup, creds_teardown);
	tcase_add_test(files, test_creds_file);
	tcase_add_test(files, test_creds_errors);
	tcase_add_test(files, test_creds_limits);
	tcase_add_test(files, test_creds_mode_and_reload);
	suite_add_tcase(s, files);

	tcase_add_checked_fixture(interop, setup, teardown);
	tcase_set_timeout(interop, 30);
	tcase_add_loop_test(interop, test_gsasl_client_interop, 0, 3);
	tcase_add_test(interop, test_gsasl_server_interop);
	tcase_add_test(interop, test_gsasl_mkpasswd_interop);
	suite_add_tcase(s, interop);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return testutil_run(sasl_suite());
}
