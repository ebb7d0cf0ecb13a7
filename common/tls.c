/*
 * NAME
 *	tls - OpenSSL contexts, policies and errors for both SMTP sides
 * DESCRIPTION
 *	See tls.h.  Every OpenSSL failure is turned into one line of text at
 *	the place it happens, naming the file concerned, so that an operator
 *	reads "key.pem does not match certificate cert.pem" rather than an
 *	error code.  The policy names are one table.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"

/* Policies */

static const struct {
	const char     *name;
	bool		tries, requires, verifies, wrapper;
} policies[] = {
	[TLS_POLICY_NONE]    = { "none",    false, false, false, false },
	[TLS_POLICY_MAY]     = { "may",     true,  false, false, false },
	[TLS_POLICY_ENCRYPT] = { "encrypt", true,  true,  false, false },
	[TLS_POLICY_VERIFY]  = { "verify",  true,  true,  true,  false },
	[TLS_POLICY_WRAPPER] = { "wrapper", true,  true,  true,  true  },
};
#define N_POLICIES	(sizeof(policies) / sizeof(policies[0]))

static bool
policy_valid(enum tls_policy p)
{
	return (unsigned)p < N_POLICIES;
}

int
tls_policy_parse(const char *text, enum tls_policy *out)
{
	for (size_t i = 0; text != NULL && i < N_POLICIES; i++) {
		if (strcasecmp(text, policies[i].name) == 0) {
			*out = (enum tls_policy)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
tls_policy_name(enum tls_policy policy)
{
	return policy_valid(policy) ? policies[policy].name : "(invalid)";
}

bool
tls_policy_tries_tls(enum tls_policy policy)
{
	return policy_valid(policy) && policies[policy].tries;
}

bool
tls_policy_requires_tls(enum tls_policy policy)
{
	return policy_valid(policy) && policies[policy].requires;
}

bool
tls_policy_verifies(enum tls_policy policy)
{
	return policy_valid(policy) && policies[policy].verifies;
}

bool
tls_policy_is_wrapper(enum tls_policy policy)
{
	return policy_valid(policy) && policies[policy].wrapper;
}

/* Errors */

/* The reason of the oldest error on this thread's OpenSSL queue (the
 * cause; later entries are consequences), or fallback.  Clears the queue. */
static const char *
openssl_reason(const char *fallback)
{
	unsigned long e = ERR_get_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r != NULL ? r : fallback;
}

static int
openssl_errno(void)
{
	unsigned long e = ERR_peek_error();

	return ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE ? -ENOMEM : -EINVAL;
}

/* Opens path only to learn whether OpenSSL will be able to: the message
 * then carries strerror (OpenSSL's own says "system lib"). */
static int
check_readable(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	close(fd);
	return 0;
}

int
tls_private_file_open(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) != 0) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
		snprintf(err, errlen, "%s: mode %04o lets group or others read it (chmod 600)",
		    path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* Each line of fp through fn; the first refusal names path and the line. */
static int
private_lines(FILE *fp, const char *path, size_t max_line, tls_line_fn *fn, void *arg, char *err,
    size_t errlen)
{
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t len;
	unsigned lineno = 0;
	int r = 0;

	while (r == 0 && (len = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		why[0] = '\0';
		if ((size_t)len >= max_line) {
			snprintf(why, sizeof(why), "line longer than %zu bytes", max_line - 1);
			r = -EINVAL;
		} else if (memchr(line, '\0', (size_t)len) != NULL) {
			snprintf(why, sizeof(why), "NUL byte in the line");
			r = -EINVAL;
		} else {
			r = fn(arg, line, lineno, why, sizeof(why));
		}
		if (r != 0)
			snprintf(err, errlen, "%s:%u: %s", path, lineno, why[0] != '\0' ? why : strerror(-r));
		explicit_bzero(line, cap);
	}
	if (r == 0 && ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		r = -EIO;
	}
	free(line);
	return r;
}

int
tls_private_file_lines(const char *path, size_t max_size, size_t max_line, tls_line_fn *fn, void *arg,
    char *err, size_t errlen)
{
	struct stat st;
	FILE *fp;
	int fd, r;

	if ((fd = tls_private_file_open(path, err, errlen)) < 0)
		return fd;
	if (fstat(fd, &st) != 0 || (size_t)st.st_size > max_size) {
		r = fstat(fd, &st) != 0 ? -errno : -EFBIG;
		close(fd);
		if (r == -EFBIG)
			snprintf(err, errlen, "%s: larger than %zu KiB", path, max_size / 1024);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		r = -errno;
		close(fd);
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	r = private_lines(fp, path, max_line, fn, arg, err, errlen);
	fclose(fp);
	return r;
}

/* Settings both sides share: versions, compression, renegotiation. */
static int
ctx_common(SSL_CTX *ctx, int max_version)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max_version) != 1)
		return -EPROTO;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	return 0;
}

/* Client */

struct tls_client {
	SSL_CTX	       *ctx;
};

static int
client_trust(SSL_CTX *ctx, const char *ca_file, char *err, size_t errlen)
{
	int r;

	if (ca_file == NULL) {
		if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			snprintf(err, errlen, "system CA store: %s",
			    openssl_reason("could not be loaded"));
			return -EINVAL;
		}
		return 0;
	}
	if ((r = check_readable(ca_file, err, errlen)) != 0)
		return r;
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		r = openssl_errno();
		snprintf(err, errlen, "%s: no CA certificate found (%s)", ca_file,
		    openssl_reason("not PEM?"));
		return r;
	}
	return 0;
}

int
tls_client_new(struct tls_client **out, const char *ca_file, char *err, size_t errlen)
{
	struct tls_client *c;
	int r;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "TLS client context: out of memory");
		return -ENOMEM;
	}
	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "TLS client context: %s", openssl_reason("cannot be made"));
		free(c);
		return -ENOMEM;
	}
	if ((r = ctx_common(c->ctx, TLS1_3_VERSION)) != 0) {
		snprintf(err, errlen, "TLS client context: %s", openssl_reason("bad protocol versions"));
		tls_client_free(c);
		return r;
	}
	if ((r = client_trust(c->ctx, ca_file, err, errlen)) != 0) {
		tls_client_free(c);
		return r;
	}
	*out = c;
	return 0;
}

static bool
is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* SNI for a name, and the name or address the certificate must carry. */
static int
ssl_set_peer_name(SSL *ssl, const char *host)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (is_ip_literal(host))
		return X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ? 0 : -EINVAL;
	if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1)
		return -EINVAL;
	return 0;
}

int
tls_client_ssl(struct tls_client *client, const char *host, enum tls_policy policy,
    SSL **out, char *err, size_t errlen)
{
	SSL *ssl;

	*out = NULL;
	if (!tls_policy_tries_tls(policy)) {
		snprintf(err, errlen, "TLS policy %s allows no TLS", tls_policy_name(policy));
		return -EINVAL;
	}
	if (host == NULL || *host == '\0' || strlen(host) > 253) {
		snprintf(err, errlen, "TLS: no valid peer host name");
		return -EINVAL;
	}
	if ((ssl = SSL_new(client->ctx)) == NULL) {
		snprintf(err, errlen, "TLS: %s", openssl_reason("cannot make a connection"));
		return -ENOMEM;
	}
	if (ssl_set_peer_name(ssl, host) != 0) {
		snprintf(err, errlen, "TLS: %s: %s", host, openssl_reason("not a valid host name"));
		SSL_free(ssl);
		return -EINVAL;
	}
	SSL_set_verify(ssl, tls_policy_verifies(policy) ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	*out = ssl;
	return 0;
}

void
tls_client_free(struct tls_client *client)
{
	if (client == NULL)
		return;
	SSL_CTX_free(client->ctx);
	free(client);
}

/* Server */

struct tls_server {
	pthread_mutex_t	lock;		/* protects ctx and the strings */
	SSL_CTX	       *ctx;		/* the current context */
	char	       *cert_file, *key_file, *chain_file, *ciphers, *ciphersuites;
};

static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

static int
server_load_key(SSL_CTX *ctx, const struct tls_server_opts *o, char *err, size_t errlen)
{
	int fd = tls_private_file_open(o->key_file, err, errlen);
	EVP_PKEY *pkey;
	FILE *fp;

	if (fd < 0)
		return fd;
	if ((fp = fdopen(fd, "r")) == NULL) {
		int e = errno;

		close(fd);
		snprintf(err, errlen, "%s: %s", o->key_file, strerror(e));
		return -e;
	}
	pkey = PEM_read_PrivateKey(fp, NULL, no_passphrase, NULL);
	fclose(fp);
	if (pkey == NULL) {
		snprintf(err, errlen, "%s: no private key found (%s)", o->key_file,
		    openssl_reason("not PEM?"));
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		EVP_PKEY_free(pkey);
		snprintf(err, errlen, "%s does not match certificate %s", o->key_file, o->cert_file);
		return -EINVAL;
	}
	EVP_PKEY_free(pkey);
	return 0;
}

static int
server_ciphers(SSL_CTX *ctx, const struct tls_server_opts *o, char *err, size_t errlen)
{
	const char *list = o->ciphers != NULL ? o->ciphers : TLS_SERVER_CIPHERS;

	if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
		snprintf(err, errlen, "TLS cipher list '%s': %s", list,
		    openssl_reason("no cipher matches"));
		return -EINVAL;
	}
	if (o->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1) {
		snprintf(err, errlen, "TLS 1.3 ciphersuites '%s': %s", o->ciphersuites,
		    openssl_reason("no ciphersuite matches"));
		return -EINVAL;
	}
	return 0;
}

/* The intermediates of chain_file, sent after the certificate. */
static int
server_load_chain(SSL_CTX *ctx, const char *chain_file, char *err, size_t errlen)
{
	X509 *cert;
	FILE *fp;
	int n = 0, r;

	if ((r = check_readable(chain_file, err, errlen)) != 0)
		return r;
	if ((fp = fopen(chain_file, "re")) == NULL) {
		r = errno;
		snprintf(err, errlen, "%s: %s", chain_file, strerror(r));
		return -r;
	}
	while ((cert = PEM_read_X509(fp, NULL, no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, cert) != 1) {
			X509_free(cert);
			fclose(fp);
			snprintf(err, errlen, "%s: %s", chain_file, openssl_reason("cannot add to the chain"));
			return -ENOMEM;
		}
		n++;
	}
	fclose(fp);
	ERR_clear_error();		/* the end of the file reads as an error */
	if (n == 0) {
		snprintf(err, errlen, "%s: no certificate found (not PEM?)", chain_file);
		return -EINVAL;
	}
	return 0;
}

/* A new server context from o, or NULL with err written. */
static SSL_CTX *
server_ctx_build(const struct tls_server_opts *o, int *rc, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "spoolgate";
	SSL_CTX *ctx;

	if (o->cert_file == NULL || o->key_file == NULL) {
		snprintf(err, errlen, "TLS server: a certificate file and a key file are needed");
		*rc = -EINVAL;
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "TLS server context: %s", openssl_reason("cannot be made"));
		*rc = -ENOMEM;
		return NULL;
	}
	if ((*rc = ctx_common(ctx, TLS1_3_VERSION)) != 0) {
		snprintf(err, errlen, "TLS server context: %s", openssl_reason("bad protocol versions"));
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if ((*rc = server_ciphers(ctx, o, err, errlen)) != 0)
		goto fail;
	if ((*rc = check_readable(o->cert_file, err, errlen)) != 0)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
		*rc = openssl_errno();
		snprintf(err, errlen, "%s: no certificate found (%s)", o->cert_file,
		    openssl_reason("not PEM?"));
		goto fail;
	}
	if (o->chain_file != NULL && (*rc = server_load_chain(ctx, o->chain_file, err, errlen)) != 0)
		goto fail;
	if ((*rc = server_load_key(ctx, o, err, errlen)) != 0)
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static void
server_strings_free(struct tls_server *s)
{
	free(s->cert_file);
	free(s->key_file);
	free(s->chain_file);
	free(s->ciphers);
	free(s->ciphersuites);
	s->cert_file = s->key_file = s->chain_file = s->ciphers = s->ciphersuites = NULL;
}

static int
dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	return (*dst = strdup(src)) != NULL ? 0 : -ENOMEM;
}

/* Copies o into s's strings (freeing the old ones only on success). */
static int
server_strings_set(struct tls_server *s, const struct tls_server_opts *o)
{
	struct tls_server n = { .ctx = NULL };

	if (dup_opt(&n.cert_file, o->cert_file) != 0 || dup_opt(&n.key_file, o->key_file) != 0 ||
	    dup_opt(&n.chain_file, o->chain_file) != 0 ||
	    dup_opt(&n.ciphers, o->ciphers) != 0 || dup_opt(&n.ciphersuites, o->ciphersuites) != 0) {
		server_strings_free(&n);
		return -ENOMEM;
	}
	server_strings_free(s);
	s->cert_file = n.cert_file;
	s->key_file = n.key_file;
	s->chain_file = n.chain_file;
	s->ciphers = n.ciphers;
	s->ciphersuites = n.ciphersuites;
	return 0;
}

int
tls_server_new(struct tls_server **out, const struct tls_server_opts *opts,
    char *err, size_t errlen)
{
	struct tls_server *s;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "TLS server: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	if ((r = tls_server_reload(s, opts, err, errlen)) != 0) {
		tls_server_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int
tls_server_reload(struct tls_server *server, const struct tls_server_opts *opts,
    char *err, size_t errlen)
{
	struct tls_server_opts cur;
	SSL_CTX *ctx, *old;
	int r = 0;

	pthread_mutex_lock(&server->lock);
	if (opts == NULL) {
		cur = (struct tls_server_opts){ .cert_file = server->cert_file,
		    .key_file = server->key_file, .chain_file = server->chain_file,
		    .ciphers = server->ciphers, .ciphersuites = server->ciphersuites };
		opts = &cur;
	}
	if ((ctx = server_ctx_build(opts, &r, err, errlen)) == NULL)
		goto out;
	if (opts != &cur && (r = server_strings_set(server, opts)) != 0) {
		snprintf(err, errlen, "TLS server: out of memory");
		SSL_CTX_free(ctx);
		goto out;
	}
	old = server->ctx;
	server->ctx = ctx;
	SSL_CTX_free(old);
out:
	pthread_mutex_unlock(&server->lock);
	return r;
}

int
tls_server_ssl(struct tls_server *server, SSL **out, char *err, size_t errlen)
{
	pthread_mutex_lock(&server->lock);
	*out = SSL_new(server->ctx);
	pthread_mutex_unlock(&server->lock);
	if (*out == NULL) {
		snprintf(err, errlen, "TLS: %s", openssl_reason("cannot make a connection"));
		return -ENOMEM;
	}
	return 0;
}

void
tls_server_free(struct tls_server *server)
{
	if (server == NULL)
		return;
	SSL_CTX_free(server->ctx);
	server_strings_free(server);
	pthread_mutex_destroy(&server->lock);
	free(server);
}

/* Certificates and connections */

/* Copies an ASN.1 string as printable ASCII ('?' for anything else). */
static void
copy_printable(char *dst, size_t len, const unsigned char *src, int n)
{
	size_t o = 0;

	for (int i = 0; i < n && o + 1 < len; i++)
		dst[o++] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
	dst[o] = '\0';
}

static void
cert_cn(X509 *cert, char *out, size_t len)
{
	X509_NAME *subject = X509_get_subject_name(cert);
	int i = subject != NULL ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
	ASN1_STRING *s;

	out[0] = '\0';
	if (i < 0 || (s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i))) == NULL)
		return;
	copy_printable(out, len, ASN1_STRING_get0_data(s), ASN1_STRING_length(s));
}

/* Appends "DNS:name" or "IP:addr" of one general name to out. */
static void
san_append(const GENERAL_NAME *gn, char *out, size_t len)
{
	char item[300], addr[INET6_ADDRSTRLEN];
	size_t used = strlen(out);
	const unsigned char *p;
	int n;

	if (gn->type == GEN_DNS) {
		p = ASN1_STRING_get0_data(gn->d.dNSName);
		n = ASN1_STRING_length(gn->d.dNSName);
		memcpy(item, "DNS:", 4);
		copy_printable(item + 4, sizeof(item) - 4, p, n);
	} else if (gn->type == GEN_IPADD) {
		n = ASN1_STRING_length(gn->d.iPAddress);
		p = ASN1_STRING_get0_data(gn->d.iPAddress);
		if ((n != 4 && n != 16) || inet_ntop(n == 4 ? AF_INET : AF_INET6, p, addr, sizeof(addr)) == NULL)
			return;
		snprintf(item, sizeof(item), "IP:%s", addr);
	} else {
		return;
	}
	snprintf(out + used, len - used, "%s%s", used > 0 ? "," : "", item);
}

static void
cert_san(X509 *cert, char *out, size_t len)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

	out[0] = '\0';
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++)
		san_append(sk_GENERAL_NAME_value(names, i), out, len);
	GENERAL_NAMES_free(names);
}

/* The peer's certificate, also after a handshake that failed verification
 * (then only the chain it sent is kept).  Not a new reference. */
static X509 *
peer_cert(SSL *ssl)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	STACK_OF(X509) *chain;

	if (cert == NULL && (chain = SSL_get_peer_cert_chain(ssl)) != NULL && sk_X509_num(chain) > 0)
		cert = sk_X509_value(chain, 0);
	return cert;
}

static void
peer_names(SSL *ssl, char *out, size_t len)
{
	char cn[256], san[512];
	X509 *cert = peer_cert(ssl);

	if (cert == NULL) {
		snprintf(out, len, "no peer certificate");
		return;
	}
	cert_cn(cert, cn, sizeof(cn));
	cert_san(cert, san, sizeof(san));
	snprintf(out, len, "peer CN=%s%s%s", cn[0] ? cn : "(none)", san[0] ? " " : "", san);
}

/* A failed verification of the peer, as one line; false when that is not why. */
static bool
verify_failure(SSL *ssl, char *buf, size_t len)
{
	long vr = SSL_get_verify_result(ssl);
	char names[800];

	if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) || vr == X509_V_OK)
		return false;
	peer_names(ssl, names, sizeof(names));
	snprintf(buf, len, "certificate verify failed: %s; %s", X509_verify_cert_error_string(vr), names);
	return true;
}

void
tls_handshake_error_code(SSL *ssl, unsigned long code, char *buf, size_t len)
{
	const char *r = code != 0 ? ERR_reason_error_string(code) : NULL;

	if (ssl != NULL && verify_failure(ssl, buf, len))
		return;
	if (r != NULL)
		snprintf(buf, len, "%s", r);
	else if (code != 0)
		snprintf(buf, len, "TLS error %lu", code);
	else
		snprintf(buf, len, "the peer closed the connection");
}

void
tls_handshake_error(SSL *ssl, int ret, char *buf, size_t len)
{
	int e = SSL_get_error(ssl, ret);

	if (verify_failure(ssl, buf, len)) {
		ERR_clear_error();
		return;
	}
	switch (e) {
	case SSL_ERROR_SSL:
		snprintf(buf, len, "%s", openssl_reason("TLS protocol error"));
		break;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() != 0)
			snprintf(buf, len, "%s", openssl_reason("TLS protocol error"));
		else if (errno != 0)
			snprintf(buf, len, "%s", strerror(errno));
		else
			snprintf(buf, len, "the peer closed the connection");
		break;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(buf, len, "the peer closed the TLS connection");
		break;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		snprintf(buf, len, "the handshake is not finished");
		break;
	default:
		snprintf(buf, len, "%s", openssl_reason("TLS error"));
		break;
	}
	ERR_clear_error();
}

void
tls_info_get(SSL *ssl, struct tls_info *info)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	X509 *cert = peer_cert(ssl);

	memset(info, 0, sizeof(*info));
	snprintf(info->version, sizeof(info->version), "%s", SSL_get_version(ssl));
	snprintf(info->cipher, sizeof(info->cipher), "%s",
	    cipher != NULL ? SSL_CIPHER_get_name(cipher) : "none");
	info->bits = cipher != NULL ? SSL_CIPHER_get_bits(cipher, &info->alg_bits) : 0;
	info->verified = cert != NULL && SSL_get0_peer_certificate(ssl) != NULL &&
	    SSL_get_verify_result(ssl) == X509_V_OK;
	if (cert != NULL) {
		cert_cn(cert, info->peer_cn, sizeof(info->peer_cn));
		cert_san(cert, info->peer_san, sizeof(info->peer_san));
	}
}

int
tls_info_format(const struct tls_info *info, char *buf, size_t len)
{
	char cn[300], san[600];
	int n;

	n = snprintf(buf, len, "tls=%s cipher=%s bits=%d verified=%s", info->version,
	    info->cipher, info->bits, info->verified ? "yes" : "no");
	if (n < 0 || (size_t)n >= len)
		return n;
	if (info->peer_cn[0] != '\0' || info->peer_san[0] != '\0') {
		int m = snprintf(buf + n, len - (size_t)n, " peer_cn=%s peer_san=%s",
		    log_quote(cn, sizeof(cn), info->peer_cn), log_quote(san, sizeof(san), info->peer_san));

		n = m < 0 ? m : n + m;
	}
	return n;
}

int
tls_info_received(const struct tls_info *info, char *buf, size_t len)
{
	return snprintf(buf, len, "using %s with cipher %s (%d/%d bits)", info->version,
	    info->cipher, info->bits, info->alg_bits);
}
