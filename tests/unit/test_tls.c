/*
 * NAME
 *	test_tls - unit tests of the TLS contexts, policies and errors
 * SYNOPSIS
 *	test_tls
 * DESCRIPTION
 *	At start the test makes, with the openssl command into a temporary
 *	directory, a CA, server certificates for "mx.test" and "other.test"
 *	signed by it, an expired one for "mx.test" and a self-signed one.
 *	Real handshakes run in this process over a socketpair, both ends
 *	non-blocking, driven by one loop (SSL_connect/SSL_accept) until both
 *	are done or have failed.  OPENSSL_CONF is pointed at an empty file so
 *	that Debian's system-wide minimums cannot hide a missing setting of
 *	ours.
 *
 *	Checked: the policy table; verify succeeds with the right CA and name
 *	and the connection description says so; a wrong name, an unknown CA
 *	(self-signed) and an expired certificate fail under verify with
 *	OpenSSL's reason and the peer's names; may and encrypt do not verify
 *	and say verified=no; TLS 1.1 is refused and TLS 1.2 accepted; both
 *	sides forbid compression and renegotiation; an operator's cipher list
 *	is used; loading errors name the file (missing, not PEM, mismatched
 *	key, key readable by others); reload keeps the old context when the
 *	new files are bad, takes the new one when they are good, and a
 *	connection made before the reload keeps its certificate; the private
 *	file check.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"
#include "testutil.h"

#define PATH_LEN	1024

static char certdir[256];

/* certdir/name; a few rotating buffers so that one call can use several. */
static const char *
P(const char *name)
{
	static char buf[8][PATH_LEN];
	static unsigned next;
	char *b = buf[next++ % 8];

	snprintf(b, PATH_LEN, "%s/%s", certdir, name);
	return b;
}

static const char gen_script[] =
	"set -e; umask 077; cd \"$1\"\n"
	"k() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\"; }\n"
	"k ca.key\n"
	"openssl req -x509 -new -key ca.key -subj /CN=spoolgate-test-CA -days 30 -out ca.pem"
	" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign\n"
	"leaf() {\n"
	"  k \"$1.key\"\n"
	"  openssl req -new -key \"$1.key\" -subj \"/CN=$2\" -out \"$1.csr\"\n"
	"  printf 'subjectAltName=DNS:%s\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' \"$2\" > \"$1.ext\"\n"
	"  openssl x509 -req -in \"$1.csr\" -CA ca.pem -CAkey ca.key -CAcreateserial -days \"$3\""
	" -extfile \"$1.ext\" -out \"$1.pem\"\n"
	"}\n"
	"leaf mx mx.test 30\n"
	"leaf other other.test 30\n"
	"leaf expired mx.test -1\n"
	"k self.key\n"
	"openssl req -x509 -new -key self.key -subj /CN=mx.test -addext subjectAltName=DNS:mx.test"
	" -days 30 -out self.pem\n"
	"echo 'this is no certificate' > junk.pem\n"
	": > empty.conf\n";

static void
make_certs(void)
{
	char script[300], cmd[1024];
	FILE *fp;

	testutil_mkdtemp(certdir, sizeof(certdir), "tls");
	snprintf(script, sizeof(script), "%s/gen.sh", certdir);
	if ((fp = fopen(script, "w")) == NULL || fputs(gen_script, fp) < 0 || fclose(fp) != 0) {
		perror(script);
		exit(EXIT_FAILURE);
	}
	snprintf(cmd, sizeof(cmd), "bash %s %s >%s/gen.log 2>&1", script, certdir, certdir);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_tls: making certificates failed, see %s/gen.log\n", certdir);
		exit(EXIT_FAILURE);
	}
}

/* One handshake over a socketpair */

struct hs {
	bool		client_ok, server_ok;
	char		client_err[TLS_ERR_LEN], server_err[TLS_ERR_LEN];
	int		fds[2];
};

/* One step of one side: 1 done, 0 in progress, -1 failed. */
static int
hs_step(SSL *ssl, bool client, int fd, char *err)
{
	int r = client ? SSL_connect(ssl) : SSL_accept(ssl);
	int e;

	if (r == 1)
		return 1;
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	tls_handshake_error(ssl, r, err, TLS_ERR_LEN);
	shutdown(fd, SHUT_WR);	/* the other side sees the end */
	return -1;
}

/* Runs the handshake of client c against server s; takes both SSLs'
 * fds.  Returns true when both sides finished. */
static bool
handshake(SSL *c, SSL *s, struct hs *h)
{
	int cs = 0, ss = 0;

	memset(h, 0, sizeof(*h));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, h->fds), 0);
	ck_assert_int_eq(SSL_set_fd(c, h->fds[0]), 1);
	ck_assert_int_eq(SSL_set_fd(s, h->fds[1]), 1);
	for (int i = 0; i < 10000 && (cs == 0 || ss == 0); i++) {
		if (cs == 0)
			cs = hs_step(c, true, h->fds[0], h->client_err);
		if (ss == 0)
			ss = hs_step(s, false, h->fds[1], h->server_err);
	}
	ck_assert_msg(cs != 0 && ss != 0, "the handshake loop did not end");
	h->client_ok = cs == 1;
	h->server_ok = ss == 1;
	return h->client_ok && h->server_ok;
}

static void
hs_close(struct hs *h, SSL *c, SSL *s)
{
	SSL_free(c);
	SSL_free(s);
	close(h->fds[0]);
	close(h->fds[1]);
}

static struct tls_server *
server_with(const char *cert, const char *key)
{
	struct tls_server_opts o = { .cert_file = P(cert), .key_file = P(key) };
	struct tls_server *srv;
	char err[TLS_ERR_LEN] = "";

	ck_assert_msg(tls_server_new(&srv, &o, err, sizeof(err)) == 0, "%s", err);
	return srv;
}

/* A client (CA ca.pem) connecting under policy to host, against srv. */
static bool
connect_to(struct tls_server *srv, const char *host, enum tls_policy policy, struct hs *h,
    struct tls_info *info)
{
	struct tls_client *cl;
	SSL *c, *s;
	char err[TLS_ERR_LEN] = "";
	bool ok;

	ck_assert_msg(tls_client_new(&cl, P("ca.pem"), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(tls_client_ssl(cl, host, policy, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(tls_server_ssl(srv, &s, err, sizeof(err)) == 0, "%s", err);
	tls_client_free(cl);	/* the SSL keeps what it needs */
	ok = handshake(c, s, h);
	if (ok && info != NULL)
		tls_info_get(c, info);
	hs_close(h, c, s);
	return ok;
}

/* Policies */

START_TEST(test_policy_table)
{
	static const struct {
		const char     *name;
		enum tls_policy	p;
		bool		tries, requires, verifies, wrapper;
	} rows[] = {
		{ "none", TLS_POLICY_NONE, false, false, false, false },
		{ "may", TLS_POLICY_MAY, true, false, false, false },
		{ "encrypt", TLS_POLICY_ENCRYPT, true, true, false, false },
		{ "verify", TLS_POLICY_VERIFY, true, true, true, false },
		{ "wrapper", TLS_POLICY_WRAPPER, true, true, true, true },
	};
	enum tls_policy p;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ck_assert_int_eq(tls_policy_parse(rows[i].name, &p), 0);
		ck_assert_int_eq(p, rows[i].p);
		ck_assert_str_eq(tls_policy_name(p), rows[i].name);
		ck_assert_int_eq(tls_policy_tries_tls(p), rows[i].tries);
		ck_assert_int_eq(tls_policy_requires_tls(p), rows[i].requires);
		ck_assert_int_eq(tls_policy_verifies(p), rows[i].verifies);
		ck_assert_int_eq(tls_policy_is_wrapper(p), rows[i].wrapper);
	}
	ck_assert_int_eq(tls_policy_parse("VERIFY", &p), 0);
	ck_assert_int_eq(p, TLS_POLICY_VERIFY);
	ck_assert_int_eq(tls_policy_parse("maybe", &p), -EINVAL);
	ck_assert_int_eq(tls_policy_parse("", &p), -EINVAL);
	ck_assert_int_eq(tls_policy_parse(NULL, &p), -EINVAL);
	ck_assert_int_eq(tls_policy_requires_tls((enum tls_policy)99), false);
	ck_assert_str_eq(tls_policy_name((enum tls_policy)99), "(invalid)");
}
END_TEST

START_TEST(test_client_ssl_refuses_none)
{
	struct tls_client *cl;
	SSL *c;
	char err[TLS_ERR_LEN] = "";

	ck_assert_int_eq(tls_client_new(&cl, NULL, err, sizeof(err)), 0);	/* system store */
	ck_assert_int_eq(tls_client_ssl(cl, "mx.test", TLS_POLICY_NONE, &c, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err, "none"));
	ck_assert_int_eq(tls_client_ssl(cl, "", TLS_POLICY_MAY, &c, err, sizeof(err)), -EINVAL);
	tls_client_free(cl);
}
END_TEST

/* Handshakes */

START_TEST(test_verify_ok)
{
	struct tls_server *srv = server_with("mx.pem", "mx.key");
	struct tls_info info;
	struct hs h;
	char line[1024], want[1024];

	ck_assert_msg(connect_to(srv, "mx.test", TLS_POLICY_VERIFY, &h, &info),
	    "client: %s server: %s", h.client_err, h.server_err);
	ck_assert_str_eq(info.version, "TLSv1.3");
	ck_assert_int_ge(info.bits, 128);
	ck_assert_int_eq(info.verified, true);
	ck_assert_str_eq(info.peer_cn, "mx.test");
	ck_assert_str_eq(info.peer_san, "DNS:mx.test");
	ck_assert_int_gt(tls_info_format(&info, line, sizeof(line)), 0);
	ck_assert_ptr_nonnull(strstr(line, "tls=TLSv1.3 cipher=TLS_"));
	ck_assert_ptr_nonnull(strstr(line, "verified=yes peer_cn=mx.test peer_san=DNS:mx.test"));
	ck_assert_int_gt(tls_info_received(&info, line, sizeof(line)), 0);
	snprintf(want, sizeof(want), "using TLSv1.3 with cipher %s (%d/%d bits)", info.cipher,
	    info.bits, info.bits);
	ck_assert_str_eq(line, want);
	/* wrapper verifies as verify does */
	ck_assert(connect_to(srv, "mx.test", TLS_POLICY_WRAPPER, &h, &info));
	ck_assert_int_eq(info.verified, true);
	tls_server_free(srv);
}
END_TEST

START_TEST(test_verify_wrong_name)
{
	struct tls_server *srv = server_with("other.pem", "other.key");
	struct hs h;

	ck_assert(!connect_to(srv, "mx.test", TLS_POLICY_VERIFY, &h, NULL));
	ck_assert_int_eq(h.client_ok, false);
	ck_assert_msg(strstr(h.client_err, "certificate verify failed: hostname mismatch") != NULL ||
	    strstr(h.client_err, "certificate verify failed: Hostname mismatch") != NULL, "%s", h.client_err);
	ck_assert_msg(strstr(h.client_err, "CN=other.test DNS:other.test") != NULL, "%s", h.client_err);
	ck_assert(!connect_to(srv, "mx.test", TLS_POLICY_WRAPPER, &h, NULL));
	tls_server_free(srv);
}
END_TEST

START_TEST(test_verify_ip_literal)
{
	struct tls_server *srv = server_with("mx.pem", "mx.key");
	struct hs h;

	ck_assert(!connect_to(srv, "127.0.0.1", TLS_POLICY_VERIFY, &h, NULL));
	ck_assert_msg(strstr(h.client_err, "IP address mismatch") != NULL, "%s", h.client_err);
	tls_server_free(srv);
}
END_TEST

START_TEST(test_verify_unknown_ca)
{
	struct tls_server *srv = server_with("self.pem", "self.key");
	struct hs h;

	ck_assert(!connect_to(srv, "mx.test", TLS_POLICY_VERIFY, &h, NULL));
	ck_assert_msg(strstr(h.client_err, "certificate verify failed: self") != NULL, "%s", h.client_err);
	ck_assert_msg(strstr(h.client_err, "CN=mx.test") != NULL, "%s", h.client_err);
	tls_server_free(srv);
}
END_TEST

START_TEST(test_verify_expired)
{
	struct tls_server *srv = server_with("expired.pem", "expired.key");
	struct hs h;

	ck_assert(!connect_to(srv, "mx.test", TLS_POLICY_VERIFY, &h, NULL));
	ck_assert_msg(strstr(h.client_err, "certificate verify failed: certificate has expired") != NULL,
	    "%s", h.client_err);
	tls_server_free(srv);
}
END_TEST

START_TEST(test_may_encrypt_do_not_verify)
{
	static const char *const certs[][2] = {
		{ "self.pem", "self.key" }, { "other.pem", "other.key" }, { "expired.pem", "expired.key" },
	};
	static const enum tls_policy policies[] = { TLS_POLICY_MAY, TLS_POLICY_ENCRYPT };
	struct tls_info info;
	struct hs h;
	char line[1024];

	for (size_t i = 0; i < 3; i++) {
		struct tls_server *srv = server_with(certs[i][0], certs[i][1]);

		for (size_t j = 0; j < 2; j++) {
			ck_assert_msg(connect_to(srv, "mx.test", policies[j], &h, &info),
			    "%s under %s: %s", certs[i][0], tls_policy_name(policies[j]), h.client_err);
			ck_assert_int_eq(info.verified, false);
			tls_info_format(&info, line, sizeof(line));
			ck_assert_ptr_nonnull(strstr(line, "verified=no"));
		}
		tls_server_free(srv);
	}
	/* and a good certificate is reported as verified even under may */
	{
		struct tls_server *srv = server_with("mx.pem", "mx.key");

		ck_assert(connect_to(srv, "mx.test", TLS_POLICY_MAY, &h, &info));
		ck_assert_int_eq(info.verified, true);
		tls_server_free(srv);
	}
}
END_TEST

/* A client made by hand for versions our own client refuses to speak. */
static SSL *
raw_client(int min, int max)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	ck_assert_ptr_nonnull(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	ck_assert_int_eq(SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0"), 1);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, min), 1);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(ctx, max), 1);
	ck_assert_ptr_nonnull(ssl = SSL_new(ctx));
	SSL_CTX_free(ctx);
	return ssl;
}

START_TEST(test_old_versions_refused)
{
	struct tls_server *srv = server_with("mx.pem", "mx.key");
	char err[TLS_ERR_LEN];
	struct tls_info info;
	struct hs h;
	SSL *c, *s;

	c = raw_client(TLS1_VERSION, TLS1_1_VERSION);
	ck_assert_int_eq(tls_server_ssl(srv, &s, err, sizeof(err)), 0);
	ck_assert(!handshake(c, s, &h));
	ck_assert_int_eq(h.server_ok, false);
	ck_assert_msg(strstr(h.server_err, "unsupported protocol") != NULL, "%s", h.server_err);
	ck_assert_msg(strstr(h.client_err, "protocol version") != NULL, "%s", h.client_err);
	hs_close(&h, c, s);

	c = raw_client(TLS1_2_VERSION, TLS1_2_VERSION);
	ck_assert_int_eq(tls_server_ssl(srv, &s, err, sizeof(err)), 0);
	ck_assert_msg(handshake(c, s, &h), "%s / %s", h.client_err, h.server_err);
	tls_info_get(s, &info);
	ck_assert_str_eq(info.version, "TLSv1.2");
	ck_assert_int_eq(info.verified, false);	/* no client certificate */
	ck_assert_str_eq(info.peer_cn, "");
	ck_assert_ptr_nonnull(strstr(info.cipher, "ECDHE-ECDSA-"));
	hs_close(&h, c, s);
	tls_server_free(srv);
}
END_TEST

START_TEST(test_no_compression_no_renegotiation)
{
	struct tls_server *srv = server_with("mx.pem", "mx.key");
	struct tls_client *cl;
	char err[TLS_ERR_LEN];
	SSL *c, *s;
	const uint64_t want = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;

	ck_assert_int_eq(tls_client_new(&cl, P("ca.pem"), err, sizeof(err)), 0);
	ck_assert_int_eq(tls_client_ssl(cl, "mx.test", TLS_POLICY_MAY, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(tls_server_ssl(srv, &s, err, sizeof(err)), 0);
	ck_assert((SSL_get_options(c) & want) == want);
	ck_assert((SSL_get_options(s) & want) == want);
	ck_assert(SSL_get_options(s) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	ck_assert_int_eq(SSL_get_min_proto_version(c), TLS1_2_VERSION);
	ck_assert_int_eq(SSL_get_min_proto_version(s), TLS1_2_VERSION);
	SSL_free(c);
	SSL_free(s);
	tls_client_free(cl);
	tls_server_free(srv);
}
END_TEST

START_TEST(test_operator_ciphers)
{
	struct tls_server_opts o = {
		.cert_file = P("mx.pem"), .key_file = P("mx.key"),
		.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305",
		.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256",
	};
	struct tls_server *srv;
	struct tls_info info;
	char err[TLS_ERR_LEN] = "";
	struct hs h;
	SSL *c, *s;

	ck_assert_msg(tls_server_new(&srv, &o, err, sizeof(err)) == 0, "%s", err);
	ck_assert(connect_to(srv, "mx.test", TLS_POLICY_VERIFY, &h, &info));
	ck_assert_str_eq(info.cipher, "TLS_CHACHA20_POLY1305_SHA256");
	c = raw_client(TLS1_2_VERSION, TLS1_2_VERSION);
	ck_assert_int_eq(tls_server_ssl(srv, &s, err, sizeof(err)), 0);
	ck_assert(handshake(c, s, &h));
	tls_info_get(c, &info);
	ck_assert_str_eq(info.cipher, "ECDHE-ECDSA-CHACHA20-POLY1305");
	hs_close(&h, c, s);
	tls_server_free(srv);

	o.ciphers = "NO-SUCH-CIPHER";
	ck_assert_int_eq(tls_server_new(&srv, &o, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(srv);
	ck_assert_msg(strstr(err, "TLS cipher list 'NO-SUCH-CIPHER'") != NULL, "%s", err);
	o.ciphers = NULL;
	o.ciphersuites = "TLS_NOPE";
	ck_assert_int_eq(tls_server_new(&srv, &o, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "TLS 1.3 ciphersuites 'TLS_NOPE'") != NULL, "%s", err);
}
END_TEST

/* The certificates a client receives: the leaf, then what chain_file added. */
static int
chain_length(const char *chain_file)
{
	struct tls_server_opts o = { .cert_file = P("mx.pem"), .key_file = P("mx.key"), .chain_file = chain_file };
	struct tls_server *srv;
	char err[TLS_ERR_LEN] = "";
	struct hs h;
	SSL *c, *s;
	int n;

	ck_assert_msg(tls_server_new(&srv, &o, err, sizeof(err)) == 0, "%s", err);
	c = raw_client(TLS1_2_VERSION, TLS1_3_VERSION);
	ck_assert_int_eq(tls_server_ssl(srv, &s, err, sizeof(err)), 0);
	ck_assert(handshake(c, s, &h));
	n = sk_X509_num(SSL_get_peer_cert_chain(c));
	hs_close(&h, c, s);
	tls_server_free(srv);
	return n;
}

START_TEST(test_chain_file)
{
	static char cert[PATH_LEN], key[PATH_LEN];	/* P()'s buffers rotate */
	struct tls_server_opts o = { .cert_file = cert, .key_file = key };
	struct tls_server *srv;
	char err[TLS_ERR_LEN], want[2 * PATH_LEN];

	snprintf(cert, sizeof(cert), "%s", P("mx.pem"));
	snprintf(key, sizeof(key), "%s", P("mx.key"));
	ck_assert_int_eq(chain_length(NULL), 1);
	ck_assert_int_eq(chain_length(P("ca.pem")), 2);
	o.chain_file = P("junk.pem");
	ck_assert_int_eq(tls_server_new(&srv, &o, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: no certificate found (not PEM?)", P("junk.pem"));
	ck_assert_str_eq(err, want);
	o.chain_file = P("nope.pem");
	ck_assert_msg(tls_server_new(&srv, &o, err, sizeof(err)) == -ENOENT, "%s", err);
	snprintf(want, sizeof(want), "%s: No such file or directory", P("nope.pem"));
	ck_assert_str_eq(err, want);
}
END_TEST

/* The reason of an error code taken off the queue earlier (as libevent does). */
START_TEST(test_handshake_error_code)
{
	char why[TLS_ERR_LEN];
	struct hs h;
	SSL *c, *s;
	struct tls_server *srv = server_with("mx.pem", "mx.key");
	char err[TLS_ERR_LEN];
	unsigned long code;

	c = raw_client(TLS1_1_VERSION, TLS1_1_VERSION);
	ck_assert_int_eq(tls_server_ssl(srv, &s, err, sizeof(err)), 0);
	ERR_clear_error();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, h.fds), 0);
	SSL_set_fd(c, h.fds[0]);
	SSL_set_fd(s, h.fds[1]);
	(void)SSL_connect(c);		/* the ClientHello, TLS 1.1 only */
	ERR_clear_error();
	ck_assert_int_le(SSL_accept(s), 0);
	code = ERR_get_error();
	ERR_clear_error();
	tls_handshake_error_code(s, code, why, sizeof(why));
	ck_assert_str_eq(why, "unsupported protocol");
	tls_handshake_error_code(s, 0, why, sizeof(why));
	ck_assert_str_eq(why, "the peer closed the connection");
	tls_handshake_error_code(NULL, 0, why, sizeof(why));
	ck_assert_str_eq(why, "the peer closed the connection");
	hs_close(&h, c, s);
	tls_server_free(srv);
}
END_TEST

/* Loading errors */

static int
load_error(const char *cert, const char *key, char *err)
{
	struct tls_server_opts o = { .cert_file = cert, .key_file = key };
	struct tls_server *srv = NULL;
	int r;

	err[0] = '\0';
	r = tls_server_new(&srv, &o, err, TLS_ERR_LEN);
	if (r != 0)
		ck_assert_ptr_null(srv);
	tls_server_free(srv);
	return r;
}

START_TEST(test_load_errors)
{
	char err[TLS_ERR_LEN], want[2 * PATH_LEN];

	ck_assert_int_eq(load_error(P("nope.pem"), P("mx.key"), err), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", P("nope.pem"));
	ck_assert_str_eq(err, want);

	ck_assert_int_eq(load_error(P("mx.pem"), P("nope.key"), err), -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", P("nope.key"));
	ck_assert_str_eq(err, want);

	ck_assert_int_eq(load_error(P("junk.pem"), P("mx.key"), err), -EINVAL);
	snprintf(want, sizeof(want), "%s: no certificate found (", P("junk.pem"));
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

	ck_assert_int_eq(load_error(P("mx.pem"), P("other.key"), err), -EINVAL);
	snprintf(want, sizeof(want), "%s does not match certificate %s", P("other.key"), P("mx.pem"));
	ck_assert_str_eq(err, want);

	ck_assert_int_eq(chmod(P("junk.pem"), 0600), 0);
	ck_assert_int_eq(load_error(P("mx.pem"), P("junk.pem"), err), -EINVAL);
	snprintf(want, sizeof(want), "%s: no private key found (", P("junk.pem"));
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

	ck_assert_int_eq(chmod(P("mx.key"), 0644), 0);
	ck_assert_int_eq(load_error(P("mx.pem"), P("mx.key"), err), -EPERM);
	ck_assert_int_eq(chmod(P("mx.key"), 0600), 0);
	snprintf(want, sizeof(want), "%s: mode 0644 lets group or others read it (chmod 600)", P("mx.key"));
	ck_assert_str_eq(err, want);

	ck_assert_int_eq(load_error(NULL, P("mx.key"), err), -EINVAL);
	ck_assert_int_eq(load_error(P("mx.pem"), P("mx.key"), err), 0);
}
END_TEST

START_TEST(test_client_ca_errors)
{
	struct tls_client *cl;
	char err[TLS_ERR_LEN], want[2 * PATH_LEN];

	ck_assert_int_eq(tls_client_new(&cl, P("nope.pem"), err, sizeof(err)), -ENOENT);
	ck_assert_ptr_null(cl);
	snprintf(want, sizeof(want), "%s: No such file or directory", P("nope.pem"));
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(tls_client_new(&cl, P("junk.pem"), err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: no CA certificate found (", P("junk.pem"));
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
}
END_TEST

/* Reload */

START_TEST(test_reload)
{
	struct tls_server *srv = server_with("mx.pem", "mx.key");
	struct tls_server_opts bad = { .cert_file = P("other.pem"), .key_file = P("mx.key") };
	struct tls_server_opts good = { .cert_file = P("other.pem"), .key_file = P("other.key") };
	struct tls_client *cl;
	struct tls_info info;
	char err[TLS_ERR_LEN], want[2 * PATH_LEN];
	struct hs h;
	SSL *before, *c;

	/* a connection accepted before the reloads */
	ck_assert_int_eq(tls_server_ssl(srv, &before, err, sizeof(err)), 0);

	ck_assert_int_eq(tls_server_reload(srv, &bad, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s does not match certificate %s", P("mx.key"), P("other.pem"));
	ck_assert_str_eq(err, want);
	ck_assert(connect_to(srv, "mx.test", TLS_POLICY_VERIFY, &h, &info));
	ck_assert_str_eq(info.peer_cn, "mx.test");

	/* the same files again (SIGHUP after the files were replaced) */
	ck_assert_int_eq(tls_server_reload(srv, NULL, err, sizeof(err)), 0);
	ck_assert(connect_to(srv, "mx.test", TLS_POLICY_VERIFY, &h, &info));

	ck_assert_msg(tls_server_reload(srv, &good, err, sizeof(err)) == 0, "%s", err);
	ck_assert(connect_to(srv, "other.test", TLS_POLICY_VERIFY, &h, &info));
	ck_assert_str_eq(info.peer_cn, "other.test");

	/* a NULL reload now uses the new files, and a failing one keeps them */
	ck_assert_int_eq(chmod(P("other.key"), 0640), 0);
	ck_assert_int_eq(tls_server_reload(srv, NULL, err, sizeof(err)), -EPERM);
	ck_assert_int_eq(chmod(P("other.key"), 0600), 0);
	ck_assert(connect_to(srv, "other.test", TLS_POLICY_VERIFY, &h, &info));

	/* the connection made before still presents the old certificate */
	ck_assert_int_eq(tls_client_new(&cl, P("ca.pem"), err, sizeof(err)), 0);
	ck_assert_int_eq(tls_client_ssl(cl, "mx.test", TLS_POLICY_VERIFY, &c, err, sizeof(err)), 0);
	ck_assert_msg(handshake(c, before, &h), "%s", h.client_err);
	tls_info_get(c, &info);
	ck_assert_str_eq(info.peer_cn, "mx.test");
	hs_close(&h, c, before);
	tls_client_free(cl);
	tls_server_free(srv);
}
END_TEST

/* The private file check */

START_TEST(test_private_file_open)
{
	char err[TLS_ERR_LEN], want[2 * PATH_LEN];
	int fd;

	ck_assert_int_eq(chmod(P("self.key"), 0600), 0);
	ck_assert_int_ge(fd = tls_private_file_open(P("self.key"), err, sizeof(err)), 0);
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	close(fd);
	ck_assert_int_eq(chmod(P("self.key"), 0400), 0);
	ck_assert_int_ge(fd = tls_private_file_open(P("self.key"), err, sizeof(err)), 0);
	close(fd);
	ck_assert_int_eq(chmod(P("self.key"), 0620), 0);	/* group may write: not read */
	ck_assert_int_ge(fd = tls_private_file_open(P("self.key"), err, sizeof(err)), 0);
	close(fd);
	ck_assert_int_eq(chmod(P("self.key"), 0640), 0);
	ck_assert_int_eq(tls_private_file_open(P("self.key"), err, sizeof(err)), -EPERM);
	snprintf(want, sizeof(want), "%s: mode 0640 lets group or others read it (chmod 600)", P("self.key"));
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(chmod(P("self.key"), 0604), 0);
	ck_assert_int_eq(tls_private_file_open(P("self.key"), err, sizeof(err)), -EPERM);
	ck_assert_int_eq(chmod(P("self.key"), 0600), 0);
	ck_assert_int_eq(tls_private_file_open(certdir, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
	ck_assert_int_eq(tls_private_file_open(P("nope"), err, sizeof(err)), -ENOENT);
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_policy_table);
	tcase_add_test(tc, test_client_ssl_refuses_none);
	tcase_add_test(tc, test_verify_ok);
	tcase_add_test(tc, test_verify_wrong_name);
	tcase_add_test(tc, test_verify_ip_literal);
	tcase_add_test(tc, test_verify_unknown_ca);
	tcase_add_test(tc, test_verify_expired);
	tcase_add_test(tc, test_may_encrypt_do_not_verify);
	tcase_add_test(tc, test_old_versions_refused);
	tcase_add_test(tc, test_no_compression_no_renegotiation);
	tcase_add_test(tc, test_operator_ciphers);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_chain_file);
	tcase_add_test(tc, test_handshake_error_code);
	tcase_add_test(tc, test_client_ca_errors);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_private_file_open);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	char conf[PATH_LEN];
	int rc;

	make_certs();
	/* Debian's openssl.cnf raises the minimum version and security level
	 * for everyone; the tests must see what this module sets itself. */
	snprintf(conf, sizeof(conf), "%s/empty.conf", certdir);
	setenv("OPENSSL_CONF", conf, 1);
	rc = testutil_run(tls_suite());
	testutil_rmtree(certdir);
	return rc;
}
