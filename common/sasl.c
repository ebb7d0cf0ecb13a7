/*
 * NAME
 *	sasl - SMTP AUTH through GNU SASL: client, server, credentials file
 * DESCRIPTION
 *	See sasl.h.  GNU SASL asks for what it needs through one callback per
 *	context; a server session finds its own state again through the
 *	session hook.  What a credential callback decided that GNU SASL's
 *	return code cannot carry (a temporary failure, a user without a SCRAM
 *	key) is kept in the session as a forced outcome and wins over the
 *	return code of the step.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gsasl.h>
#include <openssl/evp.h>

#include "sasl.h"
#include "tls.h"

#define SCRAM_KEY_LEN		32	/* SHA-256 */
#define SCRAM_SALT_LEN		18
#define DECOY_ITERATIONS	4096
#define CREDS_LINE_MAX		1024
#define CREDS_FILE_MAX		(1024 * 1024)
#define CREDS_MAX		10000
#define ROUTE_MAX		255
#define ERR_LEN			160

struct sasl_ctx {
	Gsasl	       *gsasl;
	unsigned char	decoy_key[32];	/* makes the salts of users that do not exist */
};

/* The mechanisms, strongest first: the client's order of choice. */
enum mech { MECH_SCRAM, MECH_PLAIN, MECH_LOGIN, MECH_CRAM, MECH__COUNT };

static const struct {
	const char     *name;
	bool		sends_password;		/* PLAIN and LOGIN: needs TLS */
	bool		initial_response;
	bool		client;			/* the relay may choose it */
	bool		opt_in;			/* the server keeps a password equivalent */
	int		strength;		/* for a listener's minimum */
} mechs[MECH__COUNT] = {
	[MECH_SCRAM] = { "SCRAM-SHA-256", false, true, true, false, 2 },
	[MECH_PLAIN] = { "PLAIN", true, true, true, false, 1 },
	[MECH_LOGIN] = { "LOGIN", true, false, true, false, 1 },
	[MECH_CRAM] = { "CRAM-MD5", false, false, false, true, 0 },
};

static const char *const status_names[] = {
	[SASL_OK] = "ok",
	[SASL_CONTINUE] = "continue",
	[SASL_BAD_CREDENTIALS] = "bad-credentials",
	[SASL_MALFORMED] = "malformed",
	[SASL_CANCELLED] = "cancelled",
	[SASL_UNKNOWN_MECH] = "unknown-mechanism",
	[SASL_TRANSITION] = "transition-needed",
	[SASL_TEMPFAIL] = "temporary-failure",
};

static int
mech_find(const char *name, size_t len)
{
	for (int i = 0; i < MECH__COUNT; i++)
		if (strlen(mechs[i].name) == len && strncasecmp(mechs[i].name, name, len) == 0)
			return i;
	return -1;
}

const char *
sasl_status_name(enum sasl_status status)
{
	if ((unsigned)status < sizeof(status_names) / sizeof(status_names[0]))
		return status_names[status];
	return "invalid";
}

/* Server sessions */

struct sasl_server {
	struct sasl_ctx	*ctx;
	Gsasl_session  *session;
	enum mech	mech;
	const struct sasl_server_ops *ops;
	void	       *arg;
	bool		looked_up;	/* scram_secrets was asked */
	bool		decoy;		/* no such user: made-up secrets */
	bool		started;	/* GNU SASL has taken a step */
	bool		pending_ok;	/* SCRAM's server-final sent, waiting for "" */
	bool		forced;		/* a callback decided the outcome */
	bool		over;		/* final holds the outcome */
	enum sasl_status final;
	struct sasl_scram_secrets secrets;
	char	       *identity;
	char		error[ERR_LEN];
};

static int
callback_result(struct sasl_server *srv, enum sasl_status status, const char *why)
{
	srv->forced = true;
	srv->final = status;
	if (why != srv->error)
		snprintf(srv->error, sizeof(srv->error), "%s", why);
	return GSASL_AUTHENTICATION_ERROR;
}

/* A user that asks to act as someone else: not offered. */
static bool
authzid_differs(Gsasl_session *s)
{
	const char *authid = gsasl_property_fast(s, GSASL_AUTHID);
	const char *authzid = gsasl_property_fast(s, GSASL_AUTHZID);

	return authzid != NULL && *authzid != '\0' && (authid == NULL || strcmp(authid, authzid) != 0);
}

static int
server_validate_simple(struct sasl_server *srv, Gsasl_session *s)
{
	const char *user = gsasl_property_fast(s, GSASL_AUTHID);
	const char *password = gsasl_property_fast(s, GSASL_PASSWORD);
	int r;

	if (srv->ops->check_password == NULL)
		return callback_result(srv, SASL_TEMPFAIL, "no password check configured");
	if (user == NULL || *user == '\0' || password == NULL)
		return GSASL_AUTHENTICATION_ERROR;
	r = srv->ops->check_password(srv->arg, user, password);
	if (r == 0)
		return GSASL_OK;
	if (r == -EACCES) {
		snprintf(srv->error, sizeof(srv->error), "wrong user or password");
		return GSASL_AUTHENTICATION_ERROR;
	}
	snprintf(srv->error, sizeof(srv->error), "password check failed: %s", strerror(-r));
	return callback_result(srv, SASL_TEMPFAIL, srv->error);
}

/* A SCRAM-SHA-256 key as GNU SASL takes it: 32 bytes in base64. */
static bool
is_b64_key(const char *s)
{
	size_t n = strnlen(s, SASL_SCRAM_KEY_MAX);
	char *raw = NULL;
	size_t len = 0;
	bool ok;

	if (n == 0 || n >= SASL_SCRAM_KEY_MAX)
		return false;
	ok = gsasl_base64_from(s, n, &raw, &len) == GSASL_OK && len == SCRAM_KEY_LEN;
	gsasl_free(raw);
	return ok;
}

static bool
secrets_valid(const struct sasl_scram_secrets *sec)
{
	size_t salt = strnlen(sec->salt, sizeof(sec->salt));

	return sec->iterations >= 1 && salt > 0 && salt < sizeof(sec->salt) &&
	    is_b64_key(sec->stored_key) && is_b64_key(sec->server_key);
}

static int
b64_of(const char *raw, size_t len, char *out, size_t outlen)
{
	char *b64 = NULL;
	size_t n;

	if (gsasl_base64_to(raw, len, &b64, &n) != GSASL_OK)
		return -ENOMEM;
	snprintf(out, outlen, "%s", b64);
	gsasl_free(b64);
	return 0;
}

static int
random_key(char *out)
{
	char raw[SCRAM_KEY_LEN];

	if (gsasl_nonce(raw, sizeof(raw)) != GSASL_OK)
		return -ENOMEM;
	return b64_of(raw, sizeof(raw), out, SASL_SCRAM_KEY_MAX);
}

/* Made-up secrets for a user that does not exist: the exchange looks the
 * same and fails at its end.  The salt is HMAC-SHA-256(decoy_key, user),
 * so the same name gets the same salt each time, as a real user does,
 * and two names get different ones. */
static int
scram_decoy(struct sasl_server *srv, const char *user)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;

	srv->decoy = true;
	srv->secrets.iterations = DECOY_ITERATIONS;
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, srv->ctx->decoy_key,
	    sizeof(srv->ctx->decoy_key), (const unsigned char *)user, strlen(user), mac,
	    sizeof(mac), &mac_len) == NULL || mac_len < SCRAM_SALT_LEN ||
	    b64_of((const char *)mac, SCRAM_SALT_LEN, srv->secrets.salt, sizeof(srv->secrets.salt)) != 0 ||
	    random_key(srv->secrets.stored_key) != 0 || random_key(srv->secrets.server_key) != 0)
		return callback_result(srv, SASL_TEMPFAIL, "out of memory");
	snprintf(srv->error, sizeof(srv->error), "no such user");
	return GSASL_OK;
}

static int
scram_lookup(struct sasl_server *srv, Gsasl_session *s)
{
	const char *user = gsasl_property_fast(s, GSASL_AUTHID);
	int r;

	if (srv->ops->scram_secrets == NULL)
		return callback_result(srv, SASL_TEMPFAIL, "no SCRAM secrets configured");
	if (user == NULL || *user == '\0')
		return GSASL_NO_AUTHID;
	r = srv->ops->scram_secrets(srv->arg, user, &srv->secrets);
	if (r == 0 && secrets_valid(&srv->secrets))
		return GSASL_OK;
	if (r == 0)
		return callback_result(srv, SASL_TEMPFAIL, "the stored SCRAM secrets are malformed");
	if (r == -ENOENT)
		return scram_decoy(srv, user);
	if (r == -ENOKEY)
		return callback_result(srv, SASL_TRANSITION, "the user has no SCRAM key yet");
	snprintf(srv->error, sizeof(srv->error), "SCRAM secrets lookup failed: %s", strerror(-r));
	return callback_result(srv, SASL_TEMPFAIL, srv->error);
}

/* CRAM-MD5: GNU SASL computes and compares the HMAC-MD5 itself, from the
 * stored secret given here.  A user without one fails as a wrong secret
 * does (the challenge went out before the name was known). */
static int
server_cram_password(struct sasl_server *srv, Gsasl_session *s)
{
	const char *user = gsasl_property_fast(s, GSASL_AUTHID);
	char secret[SASL_CRAM_SECRET_MAX];
	int r, rc;

	if (srv->ops->cram_secret == NULL)
		return callback_result(srv, SASL_TEMPFAIL, "no CRAM-MD5 secrets configured");
	if (user == NULL || *user == '\0')
		return GSASL_NO_AUTHID;
	r = srv->ops->cram_secret(srv->arg, user, secret, sizeof(secret));
	if (r == -ENOENT) {
		snprintf(srv->error, sizeof(srv->error), "no such user or no CRAM-MD5 secret");
		return GSASL_AUTHENTICATION_ERROR;
	}
	if (r < 0) {
		snprintf(srv->error, sizeof(srv->error), "CRAM-MD5 secret lookup failed: %s", strerror(-r));
		return callback_result(srv, SASL_TEMPFAIL, srv->error);
	}
	rc = gsasl_property_set(s, GSASL_PASSWORD, secret);
	explicit_bzero(secret, sizeof(secret));
	snprintf(srv->error, sizeof(srv->error), "wrong user or secret");	/* kept only if it fails */
	return rc;
}

static int
server_scram_property(struct sasl_server *srv, Gsasl_session *s, Gsasl_property prop)
{
	char iter[16];
	int r;

	if (!srv->looked_up) {
		srv->looked_up = true;
		if ((r = scram_lookup(srv, s)) != GSASL_OK)
			return r;
	}
	if (srv->forced)
		return GSASL_AUTHENTICATION_ERROR;
	switch (prop) {
	case GSASL_SCRAM_ITER:
		snprintf(iter, sizeof(iter), "%u", srv->secrets.iterations);
		return gsasl_property_set(s, prop, iter);
	case GSASL_SCRAM_SALT:
		return gsasl_property_set(s, prop, srv->secrets.salt);
	case GSASL_SCRAM_STOREDKEY:
		return gsasl_property_set(s, prop, srv->secrets.stored_key);
	case GSASL_SCRAM_SERVERKEY:
		return gsasl_property_set(s, prop, srv->secrets.server_key);
	default:
		return GSASL_NO_CALLBACK;
	}
}

static int
property_callback(Gsasl *g, Gsasl_session *s, Gsasl_property prop)
{
	struct sasl_server *srv = s != NULL ? gsasl_session_hook_get(s) : NULL;

	(void)g;
	if (srv == NULL)	/* a client: everything was set up front */
		return GSASL_NO_CALLBACK;
	switch (prop) {
	case GSASL_VALIDATE_SIMPLE:
		return srv->mech != MECH_SCRAM ? server_validate_simple(srv, s) : GSASL_NO_CALLBACK;
	case GSASL_SCRAM_ITER:
	case GSASL_SCRAM_SALT:
	case GSASL_SCRAM_STOREDKEY:
	case GSASL_SCRAM_SERVERKEY:
		return srv->mech == MECH_SCRAM ? server_scram_property(srv, s, prop) : GSASL_NO_CALLBACK;
	case GSASL_PASSWORD:
		return srv->mech == MECH_CRAM ? server_cram_password(srv, s) : GSASL_NO_CALLBACK;
	default:
		return GSASL_NO_CALLBACK;
	}
}

/* Context */

int
sasl_ctx_new(struct sasl_ctx **out)
{
	struct sasl_ctx *ctx = calloc(1, sizeof(*ctx));

	*out = NULL;
	if (ctx == NULL)
		return -ENOMEM;
	if (gsasl_init(&ctx->gsasl) != GSASL_OK) {
		free(ctx);
		return -ENOMEM;
	}
	gsasl_callback_set(ctx->gsasl, property_callback);
	if (gsasl_nonce((char *)ctx->decoy_key, sizeof(ctx->decoy_key)) != GSASL_OK) {
		sasl_ctx_free(ctx);
		return -ENOMEM;
	}
	*out = ctx;
	return 0;
}

void
sasl_ctx_free(struct sasl_ctx *ctx)
{
	if (ctx == NULL)
		return;
	gsasl_done(ctx->gsasl);
	explicit_bzero(ctx->decoy_key, sizeof(ctx->decoy_key));
	free(ctx);
}

/* Client */

struct sasl_client {
	Gsasl_session  *session;
	bool		finished;
	char		error[ERR_LEN];
};

int
sasl_client_choose(const char *offered, bool tls, bool allow_plaintext, const char **mech)
{
	bool seen[MECH__COUNT] = { false };
	bool refused = false;
	const char *p = offered;

	while (p != NULL && *p != '\0') {
		size_t len;
		int m;

		p += strspn(p, " \t");
		len = strcspn(p, " \t");
		if ((m = mech_find(p, len)) >= 0 && mechs[m].client)
			seen[m] = true;
		p += len;
	}
	for (int i = 0; i < MECH__COUNT; i++) {
		if (!seen[i])
			continue;
		if (mechs[i].sends_password && !tls && !allow_plaintext) {
			refused = true;
			continue;
		}
		*mech = mechs[i].name;
		return 0;
	}
	return refused ? -EPERM : -ENOENT;
}

static void
client_error(struct sasl_client *c, const char *what, int rc)
{
	snprintf(c->error, sizeof(c->error), "%s (%s)", what, gsasl_strerror_name(rc));
}

int
sasl_client_start(struct sasl_ctx *ctx, const char *mech, const char *user,
    const char *password, struct sasl_client **out, char **initial)
{
	struct sasl_client *c;
	char *first = NULL;
	int m = mech != NULL ? mech_find(mech, strlen(mech)) : -1;
	int rc;

	*out = NULL;
	*initial = NULL;
	if (m < 0 || !mechs[m].client)
		return -ENOTSUP;
	if (user == NULL || *user == '\0' || password == NULL)
		return -EINVAL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	if (gsasl_client_start(ctx->gsasl, mechs[m].name, &c->session) != GSASL_OK ||
	    gsasl_property_set(c->session, GSASL_AUTHID, user) != GSASL_OK ||
	    gsasl_property_set(c->session, GSASL_PASSWORD, password) != GSASL_OK) {
		sasl_client_free(c);
		return -ENOMEM;
	}
	if (mechs[m].initial_response) {
		rc = gsasl_step64(c->session, "", &first);
		if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
			sasl_client_free(c);
			return rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EINVAL;
		}
		c->finished = rc == GSASL_OK;
		if ((*initial = strdup(first)) == NULL) {
			gsasl_free(first);
			sasl_client_free(c);
			return -ENOMEM;
		}
		gsasl_free(first);
	}
	*out = c;
	return 0;
}

enum sasl_status
sasl_client_step(struct sasl_client *client, const char *challenge, char **response)
{
	char *out = NULL;
	int rc;

	*response = NULL;
	if (client->finished) {
		snprintf(client->error, sizeof(client->error),
		    "the server sent a challenge after the exchange finished");
		return SASL_MALFORMED;
	}
	rc = gsasl_step64(client->session, challenge != NULL ? challenge : "", &out);
	if (rc == GSASL_OK || rc == GSASL_NEEDS_MORE) {
		client->finished = rc == GSASL_OK;
		*response = strdup(out != NULL ? out : "");
		gsasl_free(out);
		if (*response == NULL)
			return SASL_TEMPFAIL;
		return rc == GSASL_OK ? SASL_OK : SASL_CONTINUE;
	}
	gsasl_free(out);
	switch (rc) {
	case GSASL_BASE64_ERROR:
		client_error(client, "the server's challenge is not base64", rc);
		return SASL_MALFORMED;
	case GSASL_AUTHENTICATION_ERROR:
		client_error(client, "the server did not prove it knows the password", rc);
		return SASL_BAD_CREDENTIALS;
	case GSASL_MALLOC_ERROR:
		client_error(client, "out of memory", rc);
		return SASL_TEMPFAIL;
	default:
		client_error(client, "the server's challenge makes no sense", rc);
		return SASL_MALFORMED;
	}
}

bool
sasl_client_finished(const struct sasl_client *client)
{
	return client->finished;
}

const char *
sasl_client_error(const struct sasl_client *client)
{
	return client->error;
}

void
sasl_client_free(struct sasl_client *client)
{
	if (client == NULL)
		return;
	if (client->session != NULL)
		gsasl_finish(client->session);
	free(client);
}

/* Server */

bool
sasl_server_supports(const char *mech)
{
	return mech != NULL && mech_find(mech, strlen(mech)) >= 0;
}

const char *
sasl_mech_at(size_t i, bool *sends_password, int *strength)
{
	if (i >= MECH__COUNT)
		return NULL;
	*sends_password = mechs[i].sends_password;
	*strength = mechs[i].strength;
	return mechs[i].name;
}

bool
sasl_mech_opt_in(const char *mech)
{
	int m = mech != NULL ? mech_find(mech, strlen(mech)) : -1;

	return m >= 0 && mechs[m].opt_in;
}

const char *
sasl_mech_lookup(const char *mech, bool *sends_password, int *strength)
{
	int m = mech != NULL ? mech_find(mech, strlen(mech)) : -1;

	return m < 0 ? NULL : sasl_mech_at((size_t)m, sends_password, strength);
}

enum sasl_status
sasl_server_start(struct sasl_ctx *ctx, const char *mech, const struct sasl_server_ops *ops,
    void *arg, struct sasl_server **out)
{
	struct sasl_server *srv;
	int m = mech != NULL ? mech_find(mech, strlen(mech)) : -1;

	*out = NULL;
	if (m < 0)
		return SASL_UNKNOWN_MECH;
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return SASL_TEMPFAIL;
	srv->ctx = ctx;
	srv->mech = (enum mech)m;
	srv->ops = ops;
	srv->arg = arg;
	if (gsasl_server_start(ctx->gsasl, mechs[m].name, &srv->session) != GSASL_OK) {
		sasl_server_free(srv);
		return SASL_TEMPFAIL;
	}
	gsasl_session_hook_set(srv->session, srv);
	*out = srv;
	return SASL_CONTINUE;
}

static enum sasl_status
server_over(struct sasl_server *srv, enum sasl_status status, const char *why)
{
	srv->over = true;
	srv->final = status;
	if (why != NULL && why != srv->error)
		snprintf(srv->error, sizeof(srv->error), "%s", why);
	return status;
}

static enum sasl_status
server_success(struct sasl_server *srv)
{
	const char *user = gsasl_property_fast(srv->session, GSASL_AUTHID);

	if (srv->decoy)		/* cannot happen: the decoy keys are random */
		return server_over(srv, SASL_BAD_CREDENTIALS, "no such user");
	if (user == NULL || *user == '\0' || authzid_differs(srv->session))
		return server_over(srv, SASL_BAD_CREDENTIALS, "authorization identity differs from the user");
	if ((srv->identity = strdup(user)) == NULL)
		return server_over(srv, SASL_TEMPFAIL, "out of memory");
	srv->error[0] = '\0';
	return server_over(srv, SASL_OK, NULL);
}

static enum sasl_status
server_failure(struct sasl_server *srv, int rc)
{
	char why[ERR_LEN];

	switch (rc) {
	case GSASL_BASE64_ERROR:
		return server_over(srv, SASL_MALFORMED, "the response is not base64");
	case GSASL_MECHANISM_PARSE_ERROR:
	case GSASL_MECHANISM_CALLED_TOO_MANY_TIMES:
		return server_over(srv, SASL_MALFORMED, "the response does not parse");
	case GSASL_MALLOC_ERROR:
		return server_over(srv, SASL_TEMPFAIL, "out of memory");
	case GSASL_AUTHENTICATION_ERROR:
		return server_over(srv, SASL_BAD_CREDENTIALS,
		    srv->error[0] != '\0' ? srv->error : "wrong user or password");
	default:
		snprintf(why, sizeof(why), "authentication failed (%s)", gsasl_strerror_name(rc));
		return server_over(srv, SASL_BAD_CREDENTIALS, why);
	}
}

enum sasl_status
sasl_server_step(struct sasl_server *server, const char *response, char **challenge)
{
	char *out = NULL;
	int rc;

	*challenge = NULL;
	if (server->over)
		return server->final;
	if (response == NULL)
		response = "";
	if (strcmp(response, "*") == 0)
		return server_over(server, SASL_CANCELLED, "the client cancelled the exchange");
	if (server->pending_ok) {
		if (*response != '\0')
			return server_over(server, SASL_MALFORMED, "a response after the exchange finished");
		return server_success(server);
	}
	if (server->mech == MECH_LOGIN && !server->started && *response != '\0') {
		/* AUTH LOGIN <user>: GNU SASL would take the user for nothing
		 * and ask for it again; let it prompt first (RFC 4954 allows an
		 * initial response for any mechanism). */
		rc = gsasl_step64(server->session, "", &out);
		gsasl_free(out);
		out = NULL;
		if (rc != GSASL_NEEDS_MORE)
			return server_failure(server, rc);
	}
	server->started = true;
	rc = gsasl_step64(server->session, response, &out);
	if (server->forced) {
		gsasl_free(out);
		return server_over(server, server->final, NULL);
	}
	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		gsasl_free(out);
		return server_failure(server, rc);
	}
	if (rc == GSASL_OK && (out == NULL || *out == '\0')) {
		gsasl_free(out);
		return server_success(server);
	}
	/* More to say: a challenge, or SCRAM's server-final, which SMTP can
	 * only carry in a 334 (RFC 4954 has no data with 235). */
	server->pending_ok = rc == GSASL_OK;
	*challenge = strdup(out != NULL ? out : "");
	gsasl_free(out);
	if (*challenge == NULL)
		return server_over(server, SASL_TEMPFAIL, "out of memory");
	return SASL_CONTINUE;
}

const char *
sasl_server_identity(const struct sasl_server *server)
{
	return server->identity;
}

const char *
sasl_server_error(const struct sasl_server *server)
{
	return server->error;
}

/* GNU SASL frees its properties without wiping them: the password PLAIN and
 * LOGIN received, the CRAM-MD5 secret server_cram_password() handed over. */
static void
wipe_password_property(Gsasl_session *s)
{
	const char *pw = gsasl_property_fast(s, GSASL_PASSWORD);

	if (pw != NULL)
		explicit_bzero((char *)pw, strlen(pw));
}

void
sasl_server_free(struct sasl_server *server)
{
	if (server == NULL)
		return;
	if (server->session != NULL) {
		wipe_password_property(server->session);
		gsasl_finish(server->session);
	}
	explicit_bzero(&server->secrets, sizeof(server->secrets));
	free(server->identity);
	free(server);
}

/* SCRAM secrets */

int
sasl_scram_secrets_make(const char *password, unsigned iterations, const char *salt,
    struct sasl_scram_secrets *out)
{
	char fresh[SCRAM_SALT_LEN], salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	char server_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN];
	char *prep = NULL, *raw = NULL;
	size_t raw_len = 0;
	int r = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (password == NULL || *password == '\0' || iterations == 0)
		return -EINVAL;
	if (salt == NULL) {
		if (gsasl_nonce(fresh, sizeof(fresh)) != GSASL_OK ||
		    b64_of(fresh, sizeof(fresh), out->salt, sizeof(out->salt)) != 0)
			return -ENOMEM;
	} else if (strlen(salt) >= sizeof(out->salt)) {
		return -EINVAL;
	} else {
		snprintf(out->salt, sizeof(out->salt), "%s", salt);
	}
	if (gsasl_base64_from(out->salt, strlen(out->salt), &raw, &raw_len) != GSASL_OK || raw_len == 0)
		goto out;
	if (gsasl_saslprep(password, GSASL_ALLOW_UNASSIGNED, &prep, NULL) != GSASL_OK)
		goto out;
	r = -ENOMEM;
	if (gsasl_scram_secrets_from_password(GSASL_HASH_SHA256, prep, iterations, raw, raw_len,
	    salted, client_key, server_key, stored_key) != GSASL_OK)
		goto out;
	out->iterations = iterations;
	if (b64_of(stored_key, sizeof(stored_key), out->stored_key, sizeof(out->stored_key)) == 0 &&
	    b64_of(server_key, sizeof(server_key), out->server_key, sizeof(out->server_key)) == 0)
		r = 0;
out:
	if (prep != NULL)
		explicit_bzero(prep, strlen(prep));
	gsasl_free(prep);
	gsasl_free(raw);
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	if (r != 0)
		memset(out, 0, sizeof(*out));
	return r;
}

/* Credentials file */

struct sasl_creds {
	struct sasl_cred *v;
	size_t		n, cap;
};

static void
cred_wipe(struct sasl_cred *c)
{
	if (c->password != NULL)
		explicit_bzero(c->password, strlen(c->password));
	free(c->password);
	free(c->route);
	free(c->user);
}

void
sasl_creds_free(struct sasl_creds *creds)
{
	if (creds == NULL)
		return;
	for (size_t i = 0; i < creds->n; i++)
		cred_wipe(&creds->v[i]);
	free(creds->v);
	free(creds);
}

size_t
sasl_creds_count(const struct sasl_creds *creds)
{
	return creds != NULL ? creds->n : 0;
}

const struct sasl_cred *
sasl_creds_find(const struct sasl_creds *creds, const char *route)
{
	for (size_t i = 0; creds != NULL && route != NULL && i < creds->n; i++)
		if (strcasecmp(creds->v[i].route, route) == 0)
			return &creds->v[i];
	return NULL;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool
is_token_char(char c)
{
	return c > 0x20 && c < 0x7f;
}

/* One parsed line, pointing into the line buffer. */
struct creds_line {
	const char     *route, *user, *password;
	size_t		route_len, user_len;
};

/* Parses one line (without its newline); returns NULL when it holds an
 * entry (out set) or an explanation; sets *skip for blank and comment lines. */
static const char *
creds_parse_line(const char *line, struct creds_line *out, bool *skip)
{
	const char *p = line;

	*skip = false;
	while (is_blank(*p))
		p++;
	if (*p == '\0' || *p == '#') {
		*skip = true;
		return NULL;
	}
	for (const char *q = line; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 && *q != '\t')
			return "control character in the line";
		else if (*q == 0x7f)
			return "control character in the line";
	out->route = p;
	while (is_token_char(*p))
		p++;
	out->route_len = (size_t)(p - out->route);
	if (out->route_len > ROUTE_MAX)
		return "route longer than 255 characters";
	if (!is_blank(*p))
		return "expected: route user:password";
	while (is_blank(*p))
		p++;
	out->user = p;
	while (is_token_char(*p) && *p != ':')
		p++;
	out->user_len = (size_t)(p - out->user);
	if (*p != ':')
		return *p == '\0' ? "no ':' between user and password" : "blank in the user name";
	if (out->user_len == 0)
		return "empty user name";
	out->password = p + 1;
	if (*out->password == '\0')
		return "empty password";
	return NULL;
}

static int
creds_add(struct sasl_creds *creds, const struct creds_line *l, unsigned lineno)
{
	struct sasl_cred *c;

	if (creds->n == creds->cap) {
		size_t cap = creds->cap ? creds->cap * 2 : 8;
		struct sasl_cred *v = realloc(creds->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		creds->v = v;
		creds->cap = cap;
	}
	c = &creds->v[creds->n];
	c->route = strndup(l->route, l->route_len);
	c->user = strndup(l->user, l->user_len);
	c->password = strdup(l->password);
	c->line = lineno;
	if (c->route == NULL || c->user == NULL || c->password == NULL) {
		cred_wipe(c);
		return -ENOMEM;
	}
	creds->n++;
	return 0;
}

/* One line of the file (tls_private_file_lines()'s callback). */
static int
creds_take_line(void *arg, char *line, unsigned lineno, char *why, size_t whylen)
{
	struct sasl_creds *creds = arg;
	const struct sasl_cred *dup;
	struct creds_line l;
	const char *bad;
	bool skip = false;
	int r;

	if ((bad = creds_parse_line(line, &l, &skip)) == NULL && !skip && creds->n >= CREDS_MAX)
		bad = "more than 10000 entries";
	if (bad != NULL) {
		snprintf(why, whylen, "%s", bad);
		return -EINVAL;
	}
	if (skip)
		return 0;
	if ((r = creds_add(creds, &l, lineno)) != 0) {
		snprintf(why, whylen, "out of memory");
		return r;
	}
	if ((dup = sasl_creds_find(creds, creds->v[creds->n - 1].route)) != &creds->v[creds->n - 1]) {
		snprintf(why, whylen, "route %s already given on line %u", creds->v[creds->n - 1].route, dup->line);
		return -EINVAL;
	}
	return 0;
}

int
sasl_creds_load(const char *path, struct sasl_creds **out, char *err, size_t errlen)
{
	struct sasl_creds *creds;
	int r;

	*out = NULL;
	if ((creds = calloc(1, sizeof(*creds))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	r = tls_private_file_lines(path, CREDS_FILE_MAX, CREDS_LINE_MAX, creds_take_line, creds, err, errlen);
	if (r != 0) {
		sasl_creds_free(creds);
		return r;
	}
	*out = creds;
	return 0;
}
