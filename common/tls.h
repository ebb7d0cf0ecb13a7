/*
 * NAME
 *	tls - OpenSSL contexts, policies and errors for both SMTP sides
 * SYNOPSIS
 *	#include "tls.h"
 *
 *	int tls_policy_parse(const char *text, enum tls_policy *out);
 *	const char *tls_policy_name(enum tls_policy policy);
 *	bool tls_policy_tries_tls(enum tls_policy policy);
 *	bool tls_policy_requires_tls(enum tls_policy policy);
 *	bool tls_policy_verifies(enum tls_policy policy);
 *	bool tls_policy_is_wrapper(enum tls_policy policy);
 *
 *	int tls_client_new(struct tls_client **out, const char *ca_file,
 *	    char *err, size_t errlen);
 *	int tls_client_ssl(struct tls_client *client, const char *host,
 *	    enum tls_policy policy, SSL **out, char *err, size_t errlen);
 *	void tls_client_free(struct tls_client *client);
 *
 *	int tls_server_new(struct tls_server **out,
 *	    const struct tls_server_opts *opts, char *err, size_t errlen);
 *	int tls_server_reload(struct tls_server *server,
 *	    const struct tls_server_opts *opts, char *err, size_t errlen);
 *	int tls_server_ssl(struct tls_server *server, SSL **out,
 *	    char *err, size_t errlen);
 *	void tls_server_free(struct tls_server *server);
 *
 *	void tls_handshake_error(SSL *ssl, int ret, char *buf, size_t len);
void tls_handshake_error_code(SSL *ssl, unsigned long code, char *buf, size_t len);
 *	void tls_info_get(SSL *ssl, struct tls_info *info);
 *	void tls_handshake_error_code(SSL *ssl, unsigned long code,
 *	    char *buf, size_t len);
 *	int tls_info_format(const struct tls_info *info, char *buf, size_t len);
 *	int tls_info_received(const struct tls_info *info, char *buf, size_t len);
 *	int tls_private_file_open(const char *path, char *err, size_t errlen);
 *	int tls_private_file_lines(const char *path, size_t max_size,
 *	    size_t max_line, tls_line_fn *fn, void *arg, char *err, size_t errlen);
 * DESCRIPTION
 *	The TLS pieces shared by the relay (client) and the SMTP server.
 *	This module makes contexts and per-connection SSL objects; it does no
 *	I/O: the caller drives the handshake (a libevent OpenSSL bufferevent in
 *	smtpd/, or SSL_connect/SSL_accept on a socket).  It knows nothing of
 *	libevent.
 *
 *	Policies (client delivery, per route):
 *	    none      plaintext only, STARTTLS is never tried;
 *	    may       STARTTLS when the server offers it, the certificate is
 *	              not checked; plaintext when it is not offered;
 *	    encrypt   STARTTLS required (no plaintext fallback), the
 *	              certificate is not checked;
 *	    verify    as encrypt, and the certificate must chain to the CA
 *	              file (or the system store) and match the host name;
 *	    wrapper   implicit TLS from the first byte (RFC 8314, port 465),
 *	              verified as for verify.
 *	tls_policy_parse() accepts these names (case-insensitive) and returns
 *	-EINVAL for anything else; tls_policy_name() prints them back.
 *	tls_policy_tries_tls(): anything but none.  tls_policy_requires_tls():
 *	encrypt, verify and wrapper (no delivery in plaintext).
 *	tls_policy_verifies(): verify and wrapper.  tls_policy_is_wrapper():
 *	wrapper only.
 *
 *	tls_client_new() makes the client context: TLS 1.2 minimum (1.3
 *	allowed), no compression, no renegotiation, the trust anchors of
 *	ca_file (PEM) or, when ca_file is NULL, the system's default store.
 *	tls_client_ssl() makes the SSL for one connection to host (a DNS name
 *	or an IP address literal, without brackets or port): SNI when host is
 *	a name, and the name (or address) check on the peer certificate.  The
 *	chain and name are always checked, so tls_info_get() can say whether
 *	the peer was verified; under a policy that verifies, a failure aborts
 *	the handshake, under may/encrypt it does not.
 *
 *	tls_server_new() makes a server context from opts: cert_file, a PEM
 *	chain (the server certificate first, then intermediates), chain_file
 *	(optional: more intermediates, for operators who keep them apart from
 *	the certificate), key_file, a
 *	PEM private key that nobody but its owner may read (see
 *	tls_private_file_open()), optional ciphers (the TLS 1.2 cipher list,
 *	default TLS_SERVER_CIPHERS) and ciphersuites (TLS 1.3, default
 *	OpenSSL's).  TLS 1.2 and 1.3 only, no compression, no renegotiation
 *	(SSL_OP_NO_RENEGOTIATION), the server's cipher preference, and
 *	SSL_MODE_RELEASE_BUFFERS so an idle connection holds no buffers.
 *	tls_server_reload() builds a new context from opts (or, when opts is
 *	NULL, from the files of the last successful load) and replaces the
 *	current one only when everything loaded; on error the old context
 *	stays in use.  Connections made before a reload keep the context they
 *	were made with (an SSL holds a reference to its SSL_CTX).
 *	tls_server_ssl() makes the SSL for one accepted connection from the
 *	current context.
 *
 *	tls_handshake_error() explains why a handshake (or any SSL call that
 *	returned ret) failed, as one line: a verification failure gives
 *	OpenSSL's reason (X509_verify_cert_error_string) and the names in the
 *	peer certificate ("certificate verify failed: Hostname mismatch;
 *	peer CN=other.test DNS:other.test"), else OpenSSL's error queue
 *	("tlsv1 alert protocol version"), else the system error or "the peer
 *	closed the connection".  It clears the thread's OpenSSL error queue.
 *	tls_handshake_error_code() says the same for an error code already
 *	taken off the queue (libevent's bufferevent_get_openssl_error()
 *	collects them): code 0 means none was recorded ("the peer closed the
 *	connection").
 *
 *	tls_info_get() describes an established connection: protocol
 *	version, cipher, secret bits, whether the peer certificate was
 *	verified (chain and name) and, when the peer sent a certificate, its
 *	subject CN and subject alternative names.  tls_info_format() writes
 *	it as key=value text for the log and the .status record:
 *	    tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verified=yes
 *	    peer_cn=mx.test peer_san=DNS:mx.test
 *	(peer_* only when known; values quoted as log_quote() does) and
 *	returns what snprintf would.  tls_info_received() writes the comment
 *	a Received: header carries, as Postfix writes it:
 *	    using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
 *
 *	tls_private_file_open() opens a file that holds a secret (a TLS key,
 *	SASL credentials) for reading and checks, on the open descriptor, that
 *	it is a regular file whose mode gives group and others no permission
 *	to read.  It returns the descriptor (O_CLOEXEC) or -errno: -EPERM
 *	with "key.pem: mode 0644 lets group or others read it (chmod 600)",
 *	-EINVAL for a file that is not a regular file, or open's error.
 *
 *	tls_private_file_lines() reads such a file line by line (the SASL
 *	credentials, the SMTP server's users): at most max_size bytes (else
 *	-EFBIG, "path: larger than N KiB"), each line shorter than max_line
 *	bytes with its LF (else "path:N: line longer than M bytes") and free
 *	of NUL bytes; fn(arg, line, lineno, why, whylen) gets each line without
 *	its LF and returns 0, or -errno with why set ("path:N: why" then goes
 *	into err).  The line buffer is wiped after every line.  It returns 0,
 *	-EINVAL (a bad line), fn's -errno, -EIO (a read error), or the open's.
 * ERRORS
 *	Every function that can fail returns 0 (or a descriptor) or -errno
 *	and writes a message a person can act on into err, naming the file
 *	and OpenSSL's reason: "cert.pem: No such file or directory",
 *	"cert.pem: no certificate found (not PEM?)", "key.pem does not match
 *	certificate cert.pem", "ca.pem: no CA certificate found".  -ENOENT,
 *	-EACCES, ... come from open(2); -EPERM from the mode check; -EINVAL
 *	for a file OpenSSL could not use or a policy name it does not know;
 *	-ENOMEM when OpenSSL could not allocate; -EPROTO for other OpenSSL
 *	failures.
 * OWNERSHIP
 *	struct tls_client and struct tls_server are owned by the caller and
 *	freed by their _free() (NULL is allowed).  An SSL returned through
 *	*out belongs to the caller (SSL_free(), or the bufferevent that takes
 *	it); it stays valid after the context that made it is freed or
 *	reloaded.  opts strings are copied.
 * THREADS
 *	Policies and tls_private_file_open() are thread-safe.  A tls_client
 *	is read-only after tls_client_new(): any thread may make SSLs from
 *	it.  tls_server_ssl() and tls_server_reload() may be called from
 *	different threads (a mutex guards the current context).  OpenSSL's
 *	error queue is per thread.
 */
#ifndef SPOOLGATE_TLS_H
#define SPOOLGATE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* TLS 1.2 ciphers a server offers unless the operator overrides them:
 * forward secrecy and AEAD only. */
#define TLS_SERVER_CIPHERS \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"

/* Longest error message any function here writes (callers' buffers). */
#define TLS_ERR_LEN	512

enum tls_policy {
	TLS_POLICY_NONE,
	TLS_POLICY_MAY,
	TLS_POLICY_ENCRYPT,
	TLS_POLICY_VERIFY,
	TLS_POLICY_WRAPPER,
};

int tls_policy_parse(const char *text, enum tls_policy *out);
const char *tls_policy_name(enum tls_policy policy);
bool tls_policy_tries_tls(enum tls_policy policy);
bool tls_policy_requires_tls(enum tls_policy policy);
bool tls_policy_verifies(enum tls_policy policy);
bool tls_policy_is_wrapper(enum tls_policy policy);

struct tls_client;

int tls_client_new(struct tls_client **out, const char *ca_file, char *err, size_t errlen);
int tls_client_ssl(struct tls_client *client, const char *host, enum tls_policy policy,
    SSL **out, char *err, size_t errlen);
void tls_client_free(struct tls_client *client);

struct tls_server_opts {
	const char     *cert_file;	/* PEM chain, leaf first */
	const char     *key_file;	/* PEM private key, mode 0600 or stricter */
	const char     *chain_file;	/* PEM intermediates, NULL: only those in cert_file */
	const char     *ciphers;	/* TLS 1.2 cipher list, NULL: TLS_SERVER_CIPHERS */
	const char     *ciphersuites;	/* TLS 1.3 suites, NULL: OpenSSL's default */
};

struct tls_server;

int tls_server_new(struct tls_server **out, const struct tls_server_opts *opts,
    char *err, size_t errlen);
int tls_server_reload(struct tls_server *server, const struct tls_server_opts *opts,
    char *err, size_t errlen);
int tls_server_ssl(struct tls_server *server, SSL **out, char *err, size_t errlen);
void tls_server_free(struct tls_server *server);

void tls_handshake_error(SSL *ssl, int ret, char *buf, size_t len);
void tls_handshake_error_code(SSL *ssl, unsigned long code, char *buf, size_t len);

struct tls_info {
	char		version[16];	/* "TLSv1.3" */
	char		cipher[64];	/* "TLS_AES_256_GCM_SHA384" */
	int		bits;		/* secret bits of the cipher */
	int		alg_bits;	/* bits of the algorithm */
	bool		verified;	/* chain and name checked and good */
	char		peer_cn[256];	/* subject CN, "" when none */
	char		peer_san[512];	/* "DNS:a,DNS:b,IP:1.2.3.4", "" when none */
};

void tls_info_get(SSL *ssl, struct tls_info *info);
int tls_info_format(const struct tls_info *info, char *buf, size_t len);
int tls_info_received(const struct tls_info *info, char *buf, size_t len);

int tls_private_file_open(const char *path, char *err, size_t errlen);

typedef int tls_line_fn(void *arg, char *line, unsigned lineno, char *why, size_t whylen);
int tls_private_file_lines(const char *path, size_t max_size, size_t max_line, tls_line_fn *fn, void *arg,
    char *err, size_t errlen);

#endif
