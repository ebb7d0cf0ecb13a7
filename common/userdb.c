/*
 * NAME
 *	userdb - the SMTP server's users: SCRAM keys, crypt(3) hashes, senders
 * DESCRIPTION
 *	See userdb.h.  Users are kept in an array sorted by name (bsearch for
 *	lookups, adjacent names for duplicates).  A line is parsed into a
 *	user of its own, which is then moved into the array: nothing half
 *	read ever joins a set.
 */
#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gsasl.h>

#include "addr.h"
#include "sasl.h"
#include "tls.h"
#include "userdb.h"

#define LINE_MAX_BYTES	4096
#define FILE_MAX	(16 * 1024 * 1024)
#define USERS_MAX	100000
#define SCRAM_KEY_B64	44		/* 32 bytes */
/* Checked for a user that does not exist, so that the answer takes as long
 * as for one that does (its password is unknown; any password fails). */
#define DECOY_HASH	"$y$j9T$YERlvH5n3HffiCvQdxr3k0$wic0Bbgonecsgg3dev7W4j6laPVC6bX.iAK/F9vbD/9"

struct userdb {
	struct userdb_user *v;
	size_t		n, cap;
};

static void
wipe_cram(struct userdb_user *u)
{
	if (u->cram != NULL)
		explicit_bzero(u->cram, strlen(u->cram));
	free(u->cram);
	u->cram = NULL;
}

static void
user_wipe(struct userdb_user *u)
{
	if (u->crypt != NULL)
		explicit_bzero(u->crypt, strlen(u->crypt));
	free(u->crypt);
	wipe_cram(u);
	free(u->name);
	for (size_t i = 0; i < u->nsenders; i++)
		free(u->senders[i]);
	explicit_bzero(u, sizeof(*u));
}

int
userdb_new(struct userdb **out)
{
	*out = calloc(1, sizeof(**out));
	return *out != NULL ? 0 : -ENOMEM;
}

void
userdb_free(struct userdb *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < db->n; i++)
		user_wipe(&db->v[i]);
	free(db->v);
	free(db);
}

size_t
userdb_count(const struct userdb *db)
{
	return db != NULL ? db->n : 0;
}

const struct userdb_user *
userdb_at(const struct userdb *db, size_t i)
{
	return db != NULL && i < db->n ? &db->v[i] : NULL;
}

static int
user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct userdb_user *)a)->name, ((const struct userdb_user *)b)->name);
}

const struct userdb_user *
userdb_find(const struct userdb *db, const char *name)
{
	struct userdb_user key = { .name = (char *)name };

	if (db == NULL || name == NULL || db->n == 0)
		return NULL;
	return bsearch(&key, db->v, db->n, sizeof(*db->v), user_cmp);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool
is_b64(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0 || len % 4 != 0)
		return false;
	while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '/'))
		i++;
	if (len - i > 2)
		return false;
	while (i < len && s[i] == '=')
		i++;
	return i == len;
}

static const char *
check_name(const char *name, size_t len)
{
	if (len == 0)
		return "empty user name";
	if (len > USERDB_NAME_MAX)
		return "user name longer than 255 characters";
	if (name[0] == '#')
		return "a user name cannot start with '#'";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f)
			return "user name with a blank, control or non-ASCII character";
	return NULL;
}

/* "ITERATIONS:SALT:STOREDKEY:SERVERKEY" */
static const char *
parse_scram(const char *v, struct sasl_scram_secrets *out)
{
	const char *p[4];
	size_t len[4];
	unsigned long iter;
	char *end;

	for (int i = 0; i < 4; i++) {
		p[i] = v;
		len[i] = strcspn(v, ":");
		v += len[i];
		if (i < 3 && *v++ != ':')
			return "scram= needs ITERATIONS:SALT:STOREDKEY:SERVERKEY";
	}
	if (*v != '\0')
		return "scram= needs ITERATIONS:SALT:STOREDKEY:SERVERKEY";
	errno = 0;
	iter = strtoul(p[0], &end, 10);
	if (len[0] == 0 || !isdigit((unsigned char)p[0][0]) || end != p[0] + len[0] || errno != 0 ||
	    iter < USERDB_SCRAM_ITER_MIN || iter > USERDB_SCRAM_ITER_MAX)
		return "scram= iterations must be a number from 4096 to 1000000";
	if (len[1] >= sizeof(out->salt) || !is_b64(p[1], len[1]))
		return "scram= salt is not base64 (at most 63 characters)";
	if (len[2] != SCRAM_KEY_B64 || !is_b64(p[2], len[2]) || len[3] != SCRAM_KEY_B64 || !is_b64(p[3], len[3]))
		return "scram= keys must be 32 bytes in base64 (44 characters each)";
	out->iterations = (unsigned)iter;
	memcpy(out->salt, p[1], len[1]);
	out->salt[len[1]] = '\0';
	memcpy(out->stored_key, p[2], len[2]);
	out->stored_key[len[2]] = '\0';
	memcpy(out->server_key, p[3], len[3]);
	out->server_key[len[3]] = '\0';
	return NULL;
}

static const char *
check_crypt(const char *v)
{
	size_t len = strlen(v);

	if (len == 0 || len >= USERDB_CRYPT_MAX)
		return "crypt= hash must have 1 to 255 characters";
	if (v[0] != '$')
		return "crypt= hash must be a \"$id$...\" hash (e.g. yescrypt \"$y$...\")";
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)v[i]) && v[i] != '.' && v[i] != '/' && v[i] != '$')
			return "crypt= hash has a character outside [./0-9A-Za-z$]";
	return NULL;
}

/* A CRAM-MD5 secret: 1..255 bytes, no control character. */
static const char *
check_cram(const char *secret, size_t len)
{
	if (len == 0 || len >= USERDB_CRAM_MAX)
		return "cram-md5= secret must have 1 to 255 bytes";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)secret[i] < 0x20 || secret[i] == 0x7f)
			return "cram-md5= secret with a control character";
	return NULL;
}

/* cram-md5=BASE64 into u->cram. */
static const char *
parse_cram(struct userdb_user *u, const char *v, int *r)
{
	char *raw = NULL;
	size_t len = 0;
	const char *why = NULL;

	if (!is_b64(v, strlen(v)) || gsasl_base64_from(v, strlen(v), &raw, &len) != GSASL_OK)
		why = "cram-md5= secret is not base64";
	else if ((why = check_cram(raw, len)) == NULL && (u->cram = strndup(raw, len)) == NULL) {
		*r = -ENOMEM;
		why = "out of memory";
	}
	if (raw != NULL)
		explicit_bzero(raw, len);
	gsasl_free(raw);
	return why;
}

/* One from= entry: "local@domain" or "@domain". */
static const char *
check_sender(const char *s)
{
	int at;

	if (strlen(s) >= ADDR_MAX)
		return "from= address too long";
	if (s[0] == '@')
		return addr_domain_valid(s + 1) < 0 ? "from= \"@domain\" with a bad domain" : NULL;
	if ((at = addr_split(s)) <= 0 || addr_domain_valid(s + at + 1) < 0)
		return "from= entry is neither an address nor \"@domain\"";
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return "from= entry with a blank, control or non-ASCII character";
	return NULL;
}

/* Reads the comma list into u, which has no senders yet (bounded, checked). */
static const char *
parse_senders(struct userdb_user *u, const char *list, int *r)
{
	const char *p = list;

	*r = -EINVAL;
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		char *one;
		const char *why;

		if (len == 0)
			return "from= has an empty entry";
		if (u->nsenders == USERDB_SENDERS_MAX)
			return "from= has more than 32 entries";
		if ((one = strndup(p, len)) == NULL) {
			*r = -ENOMEM;
			return "out of memory";
		}
		if ((why = check_sender(one)) != NULL) {
			free(one);
			return why;
		}
		u->senders[u->nsenders++] = one;
		p += len;
		if (*p == ',' && *++p == '\0')
			return "from= has an empty entry";
	}
	*r = 0;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static const char *
parse_word(struct userdb_user *u, char *word, unsigned *seen, int *r)
{
	static const char *const keys[] = { "scram", "crypt", "from", "cram-md5" };
	char *eq = strchr(word, '=');
	const char *why;
	size_t k;

	*r = -EINVAL;
	if (eq == NULL)
		return "expected key=value (scram=, crypt=, from=, cram-md5=)";
	*eq = '\0';
	for (k = 0; k < 4 && strcmp(word, keys[k]) != 0; k++)
		;
	if (k == 4)
		return "unknown key (scram=, crypt=, from=, cram-md5=)";
	if (*seen & (1u << k))
		return "key given twice on the line";
	*seen |= 1u << k;
	switch (k) {
	case 0:
		u->has_scram = true;
		return parse_scram(eq + 1, &u->scram);
	case 1:
		if ((why = check_crypt(eq + 1)) != NULL)
			return why;
		if ((u->crypt = strdup(eq + 1)) == NULL) {
			*r = -ENOMEM;
			return "out of memory";
		}
		return NULL;
	case 2:
		if (eq[1] == '\0')
			return "from= is empty";
		return parse_senders(u, eq + 1, r);
	default:
		return parse_cram(u, eq + 1, r);
	}
}

/* One line (NUL-terminated, no newline) into u; NULL or why not. */
static const char *
parse_line(char *line, struct userdb_user *u, bool *skip, int *r)
{
	char *p = line, *word, *save = NULL;
	unsigned seen = 0;
	const char *why;
	size_t len;

	*skip = false;
	*r = -EINVAL;
	for (const char *q = line; *q != '\0'; q++)
		if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
			return "control character in the line";
	while (is_blank(*p))
		p++;
	if (*p == '\0' || *p == '#') {
		*skip = true;
		*r = 0;
		return NULL;
	}
	len = strcspn(p, " \t");
	if ((why = check_name(p, len)) != NULL)
		return why;
	if ((u->name = strndup(p, len)) == NULL) {
		*r = -ENOMEM;
		return "out of memory";
	}
	for (word = strtok_r(p + len, " \t", &save); word != NULL; word = strtok_r(NULL, " \t", &save))
		if ((why = parse_word(u, word, &seen, r)) != NULL)
			return why;
	if (!u->has_scram && u->crypt == NULL)
		return "no secret: give scram= or crypt= (spoolgate-passwd add makes them)";
	*r = 0;
	return NULL;
}

static int
db_grow(struct userdb *db)
{
	struct userdb_user *v;
	size_t cap;

	if (db->n < db->cap)
		return 0;
	cap = db->cap ? db->cap * 2 : 16;
	if ((v = realloc(db->v, cap * sizeof(*v))) == NULL)
		return -ENOMEM;
	db->v = v;
	db->cap = cap;
	return 0;
}

/* One line of the file (tls_private_file_lines()'s callback). */
static int
db_take_line(void *arg, char *line, unsigned lineno, char *why, size_t whylen)
{
	struct userdb *db = arg;
	struct userdb_user u = { .line = lineno };
	const char *bad;
	bool skip = false;
	int r;

	bad = parse_line(line, &u, &skip, &r);
	if (bad == NULL && !skip && db->n >= USERS_MAX)
		bad = "more than 100000 users", r = -EINVAL;
	if (bad == NULL && !skip && (r = db_grow(db)) < 0)
		bad = "out of memory";
	if (bad != NULL) {
		snprintf(why, whylen, "%s", bad);
		user_wipe(&u);
		return r;
	}
	if (!skip)
		db->v[db->n++] = u;
	return 0;
}

/* Sorts by name; a name given twice is an error naming both lines. */
static int
db_sort(struct userdb *db, const char *path, char *err, size_t errlen)
{
	if (db->n > 1)
		qsort(db->v, db->n, sizeof(*db->v), user_cmp);
	for (size_t i = 1; i < db->n; i++) {
		if (strcmp(db->v[i - 1].name, db->v[i].name) == 0) {
			unsigned a = db->v[i - 1].line, b = db->v[i].line;

			snprintf(err, errlen, "%s:%u: user %s already given on line %u", path, a > b ? a : b,
			    db->v[i].name, a > b ? b : a);
			return -EINVAL;
		}
	}
	return 0;
}

int
userdb_load(const char *path, struct userdb **out, char *err, size_t errlen)
{
	struct userdb *db = NULL;
	int r;

	*out = NULL;
	if ((r = userdb_new(&db)) < 0)
		snprintf(err, errlen, "%s: out of memory", path);
	else if ((r = tls_private_file_lines(path, FILE_MAX, LINE_MAX_BYTES, db_take_line, db, err, errlen)) == 0)
		r = db_sort(db, path, err, errlen);
	if (r < 0) {
		userdb_free(db);
		return r;
	}
	*out = db;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */
/* ------------------------------------------------------------------ */

/* Equal strings, in a time that does not depend on where they differ. */
static bool
same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la > lb ? la : lb;
	unsigned char diff = la != lb;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(i < la ? a[i] : 0) ^ (unsigned char)(i < lb ? b[i] : 0);
	return diff == 0;
}

int
userdb_scram(const struct userdb *db, const struct userdb *derived, const char *name,
    struct sasl_scram_secrets *out)
{
	const struct userdb_user *u = userdb_find(db, name), *d;

	if (u == NULL)
		return -ENOENT;
	if (u->has_scram) {
		*out = u->scram;
		return 0;
	}
	d = userdb_find(derived, name);
	if (d != NULL && d->has_scram && d->crypt != NULL && u->crypt != NULL && strcmp(d->crypt, u->crypt) == 0) {
		*out = d->scram;
		return 0;
	}
	return -ENOKEY;
}

int
userdb_cram(const struct userdb *db, const char *name, char *out, size_t outlen)
{
	const struct userdb_user *u = userdb_find(db, name);

	if (u == NULL || u->cram == NULL)
		return -ENOENT;
	if (strlen(u->cram) >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, u->cram, strlen(u->cram) + 1);
	return 0;
}

static int
check_crypt_password(const char *hash, const char *password)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *res;
	int r;

	if (cd == NULL)
		return -ENOMEM;
	res = crypt_rn(password, hash, cd, sizeof(*cd));
	if (res == NULL || res[0] == '*')
		r = -EINVAL;
	else
		r = same_secret(res, hash) ? 0 : -EACCES;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return r;
}

static int
check_scram_password(const struct sasl_scram_secrets *s, const char *password)
{
	struct sasl_scram_secrets got;
	int r = sasl_scram_secrets_make(password, s->iterations, s->salt, &got);

	if (r == -EINVAL)
		return -EACCES;		/* a password SASLprep refuses matches nothing */
	if (r == 0)
		r = same_secret(got.stored_key, s->stored_key) & same_secret(got.server_key, s->server_key) ?
		    0 : -EACCES;
	explicit_bzero(&got, sizeof(got));
	return r;
}

int
userdb_check_password(const struct userdb_user *user, const char *password)
{
	if (password == NULL || *password == '\0')
		return -EACCES;
	if (user == NULL) {
		(void)check_crypt_password(DECOY_HASH, password);
		return -EACCES;
	}
	if (user->crypt != NULL)
		return check_crypt_password(user->crypt, password);
	if (user->has_scram)
		return check_scram_password(&user->scram, password);
	return -EACCES;
}

static bool
sender_matches(const char *entry, const char *addr)
{
	int at = addr_split(addr);

	if (entry[0] == '@')
		return at >= 0 && strcasecmp(entry + 1, addr + at + 1) == 0;
	return addr_same_mailbox(entry, addr);
}

bool
userdb_may_send_as(const struct userdb_user *user, const char *addr)
{
	if (addr == NULL || *addr == '\0')
		return true;		/* the null sender */
	if (user == NULL)
		return false;
	if (user->nsenders == 0)
		return strchr(user->name, '@') != NULL && addr_same_mailbox(user->name, addr);
	for (size_t i = 0; i < user->nsenders; i++)
		if (sender_matches(user->senders[i], addr))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Changes and writing                                                 */
/* ------------------------------------------------------------------ */

int
userdb_crypt_make(const char *password, char *out, size_t outlen)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *res;
	int r = 0;

	if (password == NULL || *password == '\0')
		return -EINVAL;
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) == NULL)
		return errno ? -errno : -EINVAL;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -ENOMEM;
	res = crypt_rn(password, setting, cd, sizeof(*cd));
	if (res == NULL || res[0] == '*')
		r = -EINVAL;
	else if (strlen(res) >= outlen || strlen(res) >= USERDB_CRYPT_MAX || check_crypt(res) != NULL)
		r = -ENAMETOOLONG;
	else
		snprintf(out, outlen, "%s", res);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return r;
}

static struct userdb_user *
find_mut(struct userdb *db, const char *name)
{
	return (struct userdb_user *)userdb_find(db, name);
}

int
userdb_set(struct userdb *db, const char *name, const struct sasl_scram_secrets *scram, const char *crypt)
{
	struct userdb_user *u;
	char *copy = NULL;
	int r;

	if (check_name(name, strlen(name)) != NULL || (scram == NULL && crypt == NULL) ||
	    (crypt != NULL && check_crypt(crypt) != NULL))
		return -EINVAL;
	if (crypt != NULL && (copy = strdup(crypt)) == NULL)
		return -ENOMEM;
	if ((u = find_mut(db, name)) == NULL) {
		if ((r = db_grow(db)) < 0) {
			free(copy);
			return r;
		}
		u = &db->v[db->n];
		memset(u, 0, sizeof(*u));
		if ((u->name = strdup(name)) == NULL) {
			free(copy);
			return -ENOMEM;
		}
		db->n++;
	}
	if (u->crypt != NULL)
		explicit_bzero(u->crypt, strlen(u->crypt));
	free(u->crypt);
	u->crypt = copy;
	wipe_cram(u);		/* a new password: the old CRAM-MD5 secret must not stay valid */
	u->has_scram = scram != NULL;
	if (scram != NULL)
		u->scram = *scram;
	else
		explicit_bzero(&u->scram, sizeof(u->scram));
	qsort(db->v, db->n, sizeof(*db->v), user_cmp);
	return 0;
}

int
userdb_set_cram(struct userdb *db, const char *name, const char *secret)
{
	struct userdb_user *u = find_mut(db, name);
	char *copy = NULL;

	if (u == NULL)
		return -ENOENT;
	if (secret != NULL && check_cram(secret, strlen(secret)) != NULL)
		return -EINVAL;
	if (secret != NULL && (copy = strdup(secret)) == NULL)
		return -ENOMEM;
	wipe_cram(u);
	u->cram = copy;
	return 0;
}

int
userdb_set_senders(struct userdb *db, const char *name, const char *list, char *err, size_t errlen)
{
	struct userdb_user *u = find_mut(db, name), fresh = { .nsenders = 0 };
	const char *why;
	int r;

	if (u == NULL) {
		snprintf(err, errlen, "%s: no such user", name);
		return -ENOENT;
	}
	if ((why = parse_senders(&fresh, list, &r)) != NULL) {
		snprintf(err, errlen, "%s", why);
		for (size_t i = 0; i < fresh.nsenders; i++)
			free(fresh.senders[i]);
		return r;
	}
	for (size_t i = 0; i < u->nsenders; i++)	/* only a good list replaces the old */
		free(u->senders[i]);
	memcpy(u->senders, fresh.senders, sizeof(u->senders));
	u->nsenders = fresh.nsenders;
	return 0;
}

int
userdb_del(struct userdb *db, const char *name)
{
	struct userdb_user *u = find_mut(db, name);
	size_t i;

	if (u == NULL)
		return -ENOENT;
	i = (size_t)(u - db->v);
	user_wipe(u);
	memmove(&db->v[i], &db->v[i + 1], (db->n - i - 1) * sizeof(*db->v));
	db->n--;
	return 0;
}

/* Appends to a growing buffer. */
struct buf {
	char	       *p;
	size_t		len, cap;
	int		err;
};

static void __attribute__((format(printf, 2, 3)))
buf_add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err != 0)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, b->p != NULL ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = -EINVAL;
			return;
		}
		if (b->p != NULL && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap : 256) * 2 + (size_t)n;
		char *p = realloc(b->p, cap);

		if (p == NULL) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* " cram-md5=BASE64": base64 keeps blanks in the secret off the line (it hides nothing). */
static void
buf_add_cram(struct buf *b, const char *secret)
{
	char *b64 = NULL;
	size_t n = 0;

	if (gsasl_base64_to(secret, strlen(secret), &b64, &n) != GSASL_OK) {
		b->err = b->err ? b->err : -ENOMEM;
		return;
	}
	buf_add(b, " cram-md5=%s", b64);
	explicit_bzero(b64, n);
	gsasl_free(b64);
}

int
userdb_format(const struct userdb *db, char **out, size_t *len)
{
	struct buf b = { 0 };

	buf_add(&b, "# spoolgate users (spoolgate-passwd): name scram=ITER:SALT:STOREDKEY:SERVERKEY "
	    "crypt=HASH from=ADDR,... [cram-md5=SECRET]\n");
	for (size_t i = 0; i < userdb_count(db); i++) {
		const struct userdb_user *u = &db->v[i];

		buf_add(&b, "%s", u->name);
		if (u->has_scram)
			buf_add(&b, " scram=%u:%s:%s:%s", u->scram.iterations, u->scram.salt, u->scram.stored_key,
			    u->scram.server_key);
		if (u->crypt != NULL)
			buf_add(&b, " crypt=%s", u->crypt);
		for (size_t k = 0; k < u->nsenders; k++)
			buf_add(&b, "%s%s", k == 0 ? " from=" : ",", u->senders[k]);
		if (u->cram != NULL)
			buf_add_cram(&b, u->cram);
		buf_add(&b, "\n");
	}
	if (b.err != 0) {
		if (b.p != NULL)
			explicit_bzero(b.p, b.cap);
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
userdb_file_prepare(int dirfd, const char *tmpname, const char *buf, size_t len, const struct stat *owner)
{
	int fd, r = 0;

	if (unlinkat(dirfd, tmpname, 0) < 0 && errno != ENOENT)
		return -errno;
	if ((fd = openat(dirfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if (owner != NULL && fchown(fd, owner->st_uid, owner->st_gid) < 0)
		r = -errno;
	if (r == 0)
		r = write_all(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmpname, 0);
	return r;
}

int
userdb_write(const char *path, const struct userdb *db, char *err, size_t errlen)
{
	char dir[PATH_MAX], base[PATH_MAX], tmp[PATH_MAX + 16];
	struct stat st;
	const struct stat *owner = NULL;
	char *text = NULL;
	size_t len = 0;
	int dirfd, r;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir) ||
	    snprintf(base, sizeof(base), "%s", path) >= (int)sizeof(base)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(tmp, sizeof(tmp), ".%s.tmp", basename(base));
	if ((dirfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(-r));
		return r;
	}
	if (stat(path, &st) == 0)
		owner = &st;		/* keep the owner (e.g. the [spool] user) */
	if ((r = userdb_format(db, &text, &len)) == 0 &&
	    (r = userdb_file_prepare(dirfd, tmp, text, len, owner)) == 0) {
		if (renameat(dirfd, tmp, AT_FDCWD, path) < 0 || fsync(dirfd) < 0) {
			r = -errno;
			unlinkat(dirfd, tmp, 0);
		}
	}
	if (r < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
	if (text != NULL)
		explicit_bzero(text, len);
	free(text);
	close(dirfd);
	return r;
}
