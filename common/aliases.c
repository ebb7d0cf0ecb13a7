/*
 * aliases - the /etc/aliases table (aliases.h).
 *
 * The whole table, includes flattened, is read into memory at load: a
 * lookup is a binary search, an expansion touches no file.  Every bound
 * of aliases.h is checked while reading, so that a hostile or broken
 * file costs at most ALIASES_FILE_MAX octets and a clear "FILE:LINE:".
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "cfg.h"
#include "log.h"

enum target_kind { T_NAME, T_FINAL, T_ADDRESS, T_COMMAND, T_FILE };

struct target {
	enum target_kind kind;
	char	       *value;
	const char     *file;		/* one of struct aliases' files */
	unsigned	line;
};

struct alias_entry {
	char	       *name;		/* lower-cased */
	const char     *file;
	unsigned	line;
	struct target  *t;
	size_t		n, cap;
};

struct aliases {
	atomic_int	refs;
	struct alias_entry *e;
	size_t		n, cap;
	char	      **files;		/* [0] the table, then every include read */
	size_t		nfiles;
};

/* What one load needs while it reads. */
struct loader {
	struct aliases *a;
	const struct aliases_opts *opts;
	char	       *err;
	size_t		errlen;
};

static int
fail(struct loader *ld, int r, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int
fail(struct loader *ld, int r, const char *file, unsigned line, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(ld->err, ld->errlen, "%s:%u: %s", file, line, what);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", file, what);
	return r;
}

/* ------------------------------------------------------------------ */
/* Reading a file, with the checks of who may write it                 */
/* ------------------------------------------------------------------ */

static int
check_owner(struct loader *ld, const char *path, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return fail(ld, -EINVAL, path, 0, "not a regular file");
	if (st->st_uid != 0 && (ld->opts->daemon_uid == (uid_t)-1 || st->st_uid != ld->opts->daemon_uid))
		return fail(ld, -EPERM, path, 0, "owned by uid %lu: must be root's or the daemon user's",
		    (unsigned long)st->st_uid);
	if (st->st_mode & S_IWOTH)
		return fail(ld, -EPERM, path, 0, "writable by others (mode %04o): chmod o-w",
		    (unsigned)(st->st_mode & 07777));
	if ((st->st_mode & S_IWGRP) && st->st_gid != 0)
		return fail(ld, -EPERM, path, 0, "writable by group %lu (mode %04o): chmod g-w",
		    (unsigned long)st->st_gid, (unsigned)(st->st_mode & 07777));
	return 0;
}

/* The whole file into *buf (NUL-terminated), at most max octets. */
static int
read_file(struct loader *ld, const char *path, bool nofollow, size_t max, char **buf, size_t *len)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	char *b;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0)
		return fail(ld, -errno, path, 0, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return fail(ld, r, path, 0, "cannot stat: %s", strerror(-r));
	}
	if ((r = check_owner(ld, path, &st)) < 0) {
		close(fd);
		return r;
	}
	if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
		close(fd);
		return fail(ld, -EFBIG, path, 0, "larger than %zu octets", max);
	}
	max = (size_t)st.st_size;		/* what it holds now; more is a file being changed */
	if ((b = malloc(max + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (got <= max && (n = read(fd, b + got, max + 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			free(b);
			close(fd);
			return fail(ld, r, path, 0, "cannot read: %s", strerror(-r));
		}
		got += (size_t)n;
	}
	close(fd);
	if (got > max) {
		free(b);
		return fail(ld, -EAGAIN, path, 0, "grew while being read: try again");
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

static const char *
remember_file(struct loader *ld, const char *path)
{
	char **grown;

	if ((grown = realloc(ld->a->files, (ld->a->nfiles + 1) * sizeof(*grown))) == NULL)
		return NULL;
	ld->a->files = grown;
	if ((grown[ld->a->nfiles] = strdup(path)) == NULL)
		return NULL;
	return grown[ld->a->nfiles++];
}

/*
 * Calls fn for each physical line (CR LF or LF; the last may lack its LF),
 * after checking its length and, when it is no comment, its octets.
 */
typedef int line_fn(struct loader *ld, void *arg, const char *file, unsigned line, char *text);

static bool
is_blank_or_comment(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '\0' || *s == '#';
}

static int
each_line(struct loader *ld, const char *file, char *buf, size_t len, line_fn *fn, void *arg)
{
	unsigned lineno = 0;
	size_t at = 0;
	int r;

	while (at < len) {
		char *start = buf + at, *nl = memchr(start, '\n', len - at);
		size_t llen = nl ? (size_t)(nl - start) : len - at;
		size_t i;

		lineno++;
		at += llen + (nl ? 1 : 0);
		if (llen > ALIASES_LINE_MAX)
			return fail(ld, -EINVAL, file, lineno, "line longer than %u octets", ALIASES_LINE_MAX);
		if (llen > 0 && start[llen - 1] == '\r')
			llen--;
		if (memchr(start, '\0', llen) != NULL)
			return fail(ld, -EINVAL, file, lineno, "a NUL octet");
		start[llen] = '\0';
		if (is_blank_or_comment(start))
			continue;
		for (i = 0; i < llen; i++) {
			unsigned char c = (unsigned char)start[i];

			if (c != '\t' && (c < 0x20 || c > 0x7e))
				return fail(ld, -EINVAL, file, lineno,
				    "octet 0x%02x: only printable ASCII outside comments", c);
		}
		if ((r = fn(ld, arg, file, lineno, start)) < 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Entries and targets                                                 */
/* ------------------------------------------------------------------ */

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

static void
lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/*
 * The content of the quoted string at s (s[0] == '"') into out, with
 * backslash escapes resolved; *end gets the octet after the closing
 * quote.  0 or -EINVAL (no closing quote, too long).
 */
static int
unquote(const char *s, char *out, size_t outlen, const char **end)
{
	size_t o = 0;

	for (s++; *s != '"'; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		if (*s == '\0' || o + 1 >= outlen)
			return -EINVAL;
		out[o++] = *s;
	}
	out[o] = '\0';
	*end = s + 1;
	return 0;
}

/* A local name: 1..ALIASES_NAME_MAX octets, no blank, comma, quote or colon. */
static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= ALIASES_NAME_MAX && strpbrk(s, " \t,\":") == NULL;
}

static int
add_target(struct loader *ld, struct alias_entry *e, enum target_kind kind, const char *value,
    const char *file, unsigned line)
{
	struct target *grown;

	if (e->n >= ALIASES_MAX_TARGETS)
		return fail(ld, -E2BIG, file, line, "alias '%s' has more than %u targets", e->name,
		    ALIASES_MAX_TARGETS);
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 4;

		if ((grown = realloc(e->t, cap * sizeof(*grown))) == NULL)
			return -ENOMEM;
		e->t = grown;
		e->cap = cap;
	}
	if ((e->t[e->n].value = strdup(value)) == NULL)
		return -ENOMEM;
	e->t[e->n].kind = kind;
	e->t[e->n].file = file;
	e->t[e->n].line = line;
	e->n++;
	return 0;
}

static int load_include(struct loader *ld, struct alias_entry *e, const char *path,
    const char *file, unsigned line, unsigned depth);

static int
parse_target(struct loader *ld, struct alias_entry *e, char *tok, const char *file, unsigned line,
    unsigned depth)
{
	char buf[ALIASES_LINE_MAX], addr[ADDR_MAX];
	const char *rest;

	tok = trim(tok);
	if (tok[0] == '\0')
		return 0;			/* "a, , b" and a trailing comma, as Postfix */
	if (tok[0] == '"') {
		if (unquote(tok, buf, sizeof(buf), &rest) < 0)
			return fail(ld, -EINVAL, file, line, "target %s: no closing quote", tok);
		if (*rest == '@')
			goto address;
		if (*rest != '\0')
			return fail(ld, -EINVAL, file, line, "target %s: text after the quoted string", tok);
		if (buf[0] == '|')
			return add_target(ld, e, T_COMMAND, buf, file, line);
		if (buf[0] == '/')
			return add_target(ld, e, T_FILE, buf, file, line);
		lower(buf);
		if (strlen(buf) == 0 || strlen(buf) > ALIASES_NAME_MAX)
			return fail(ld, -EINVAL, file, line, "target %s: not a local name", tok);
		return add_target(ld, e, T_NAME, buf, file, line);
	}
	if (tok[0] == '|')
		return add_target(ld, e, T_COMMAND, tok, file, line);
	if (tok[0] == '/')
		return add_target(ld, e, T_FILE, tok, file, line);
	if (strncasecmp(tok, ":include:", 9) == 0)
		return load_include(ld, e, trim(tok + 9), file, line, depth + 1);
	if (tok[0] == '\\') {
		snprintf(buf, sizeof(buf), "%s", tok + 1);
		lower(buf);
		if (!name_ok(buf))
			return fail(ld, -EINVAL, file, line, "target %s: not a local name", tok);
		return add_target(ld, e, T_FINAL, buf, file, line);
	}
	if (strchr(tok, '@') != NULL) {
address:
		if (addr_parse_path(tok, addr, sizeof(addr), &rest, ADDR_ALLOW_UNBRACKETED) < 0 || *rest != '\0')
			return fail(ld, -EINVAL, file, line, "target %s: not a mail address", tok);
		return add_target(ld, e, T_ADDRESS, addr, file, line);
	}
	snprintf(buf, sizeof(buf), "%s", tok);
	lower(buf);
	if (!name_ok(buf))
		return fail(ld, -EINVAL, file, line, "target %s: not a local name or address", tok);
	return add_target(ld, e, T_NAME, buf, file, line);
}

/* Splits s at commas outside double quotes and parses each target. */
static int
parse_targets(struct loader *ld, struct alias_entry *e, char *s, const char *file, unsigned line,
    unsigned depth)
{
	bool quoted = false;
	char *tok = s, *p;
	int r;

	for (p = s;; p++) {
		if (*p == '\\' && quoted && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		if (*p == '\0' || (*p == ',' && !quoted)) {
			bool last = *p == '\0';

			*p = '\0';
			if ((r = parse_target(ld, e, tok, file, line, depth)) < 0)
				return r;
			if (last)
				return 0;
			tok = p + 1;
		}
	}
}

struct include_arg {
	struct alias_entry *e;
	unsigned	depth;
};

static int
include_line(struct loader *ld, void *arg, const char *file, unsigned line, char *text)
{
	struct include_arg *ia = arg;

	return parse_targets(ld, ia->e, text, file, line, ia->depth);
}

static int
load_include(struct loader *ld, struct alias_entry *e, const char *path, const char *file,
    unsigned line, unsigned depth)
{
	struct include_arg ia = { e, depth };
	const char *name;
	size_t len;
	char *buf;
	int r;

	if (path[0] != '/')
		return fail(ld, -EINVAL, file, line, ":include:%s: the path must be absolute", path);
	if (depth > ALIASES_INCLUDE_DEPTH)
		return fail(ld, -ELOOP, file, line, ":include:%s: includes nested deeper than %u", path,
		    ALIASES_INCLUDE_DEPTH);
	if ((r = read_file(ld, path, true, ALIASES_INCLUDE_MAX, &buf, &len)) < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", ld->err);
		return fail(ld, r, file, line, ":include: %s", why);
	}
	if ((name = remember_file(ld, path)) == NULL)
		r = -ENOMEM;
	else
		r = each_line(ld, name, buf, len, include_line, &ia);
	free(buf);
	if (r < 0 && r != -ENOMEM) {	/* under the line that includes it */
		char why[512];

		snprintf(why, sizeof(why), "%s", ld->err);
		return fail(ld, r, file, line, ":include: %s", why);
	}
	return r;
}

static struct alias_entry *
new_entry(struct aliases *a)
{
	struct alias_entry *grown;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;

		if ((grown = realloc(a->e, cap * sizeof(*grown))) == NULL)
			return NULL;
		a->e = grown;
		a->cap = cap;
	}
	memset(&a->e[a->n], 0, sizeof(a->e[a->n]));
	return &a->e[a->n++];
}

/* "name: targets" (continuations joined), read at file:line. */
static int
parse_entry(struct loader *ld, char *text, const char *file, unsigned line)
{
	char name[ALIASES_LINE_MAX];
	struct alias_entry *e;
	const char *rest;
	char *colon;
	int r;

	if (ld->a->n >= ALIASES_MAX_ENTRIES)
		return fail(ld, -E2BIG, file, line, "more than %u aliases", ALIASES_MAX_ENTRIES);
	if (text[0] == '"') {
		if (unquote(text, name, sizeof(name), &rest) < 0)
			return fail(ld, -EINVAL, file, line, "no closing quote in the alias name");
		while (*rest == ' ' || *rest == '\t')
			rest++;
		if (*rest != ':')
			return fail(ld, -EINVAL, file, line, "no ':' after the alias name");
		colon = (char *)rest;
	} else {
		if ((colon = strchr(text, ':')) == NULL)
			return fail(ld, -EINVAL, file, line, "no ':' after the alias name");
		*colon = '\0';
		snprintf(name, sizeof(name), "%s", trim(text));
		if (strpbrk(name, " \t\"") != NULL)
			return fail(ld, -EINVAL, file, line, "alias name '%s' has a blank or a quote", name);
	}
	if (name[0] == '\0' || strlen(name) > ALIASES_NAME_MAX || strpbrk(name, ",:\t") != NULL)
		return fail(ld, -EINVAL, file, line, "'%s' is no alias name (1 to %u octets, no ',', ':' or tab)",
		    name, ALIASES_NAME_MAX);
	lower(name);
	if ((e = new_entry(ld->a)) == NULL || (e->name = strdup(name)) == NULL)
		return -ENOMEM;
	e->file = file;
	e->line = line;
	if ((r = parse_targets(ld, e, colon + 1, file, line, 0)) < 0)
		return r;
	if (e->n == 0)
		return fail(ld, -EINVAL, file, line, "alias '%s' has no target", name);
	return 0;
}

/* Joins continuation lines into one entry, parsed when the next begins. */
struct joiner {
	char	       *buf;		/* ALIASES_ENTRY_MAX + 1 */
	size_t		len;
	unsigned	line;		/* of the entry's first line, 0: none yet */
};

static int
join_flush(struct loader *ld, struct joiner *j, const char *file)
{
	int r = 0;

	if (j->line > 0)
		r = parse_entry(ld, j->buf, file, j->line);
	j->line = 0;
	j->len = 0;
	return r;
}

static int
table_line(struct loader *ld, void *arg, const char *file, unsigned line, char *text)
{
	struct joiner *j = arg;
	size_t n = strlen(text);
	int r;

	if (text[0] == ' ' || text[0] == '\t') {
		if (j->line == 0)
			return fail(ld, -EINVAL, file, line, "a continuation line without an entry before it");
		if (j->len + 1 + n > ALIASES_ENTRY_MAX)
			return fail(ld, -EINVAL, file, j->line, "entry longer than %u octets", ALIASES_ENTRY_MAX);
		j->buf[j->len++] = ' ';
	} else {
		if ((r = join_flush(ld, j, file)) < 0)
			return r;
		j->line = line;
	}
	memcpy(j->buf + j->len, text, n + 1);
	j->len += n;
	return 0;
}

static int
entry_cmp(const void *x, const void *y)
{
	const struct alias_entry *a = x, *b = y;
	int c = strcmp(a->name, b->name);

	return c != 0 ? c : (a->line > b->line) - (a->line < b->line);
}

static void
free_table(struct aliases *a)
{
	size_t i, k;

	if (a == NULL)
		return;
	for (i = 0; i < a->n; i++) {
		for (k = 0; k < a->e[i].n; k++)
			free(a->e[i].t[k].value);
		free(a->e[i].t);
		free(a->e[i].name);
	}
	free(a->e);
	for (i = 0; i < a->nfiles; i++)
		free(a->files[i]);
	free(a->files);
	free(a);
}

int
aliases_load(const char *path, const struct aliases_opts *opts, struct aliases **out,
    char *err, size_t errlen)
{
	struct aliases_opts none = { (uid_t)-1, NULL };
	struct loader ld = { NULL, opts ? opts : &none, err, errlen };
	struct joiner j = { NULL, 0, 0 };
	const char *name;
	size_t len, i;
	char *buf;
	int r;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if ((ld.a = calloc(1, sizeof(*ld.a))) == NULL || (j.buf = malloc(ALIASES_ENTRY_MAX + 1)) == NULL) {
		free(ld.a);
		return -ENOMEM;
	}
	atomic_init(&ld.a->refs, 1);
	if ((name = remember_file(&ld, path)) == NULL)
		r = -ENOMEM;
	else if ((r = read_file(&ld, path, false, ALIASES_FILE_MAX, &buf, &len)) == 0) {
		r = each_line(&ld, name, buf, len, table_line, &j);
		if (r == 0)
			r = join_flush(&ld, &j, name);
		free(buf);
	}
	free(j.buf);
	if (r == 0) {
		if (ld.a->n > 1)
			qsort(ld.a->e, ld.a->n, sizeof(*ld.a->e), entry_cmp);
		for (i = 1; i < ld.a->n && r == 0; i++)
			if (strcmp(ld.a->e[i].name, ld.a->e[i - 1].name) == 0)
				r = fail(&ld, -EEXIST, ld.a->e[i].file, ld.a->e[i].line,
				    "alias '%s' is already defined at line %u", ld.a->e[i].name, ld.a->e[i - 1].line);
	}
	if (r < 0) {
		if (r == -ENOMEM && err[0] == '\0')
			snprintf(err, errlen, "%s: out of memory", path);
		free_table(ld.a);
		return r;
	}
	*out = ld.a;
	return 0;
}

int
aliases_refused_at(const struct aliases *a, size_t i, char *out, size_t outlen)
{
	size_t k, t;

	for (k = 0; a != NULL && k < a->n; k++)
		for (t = 0; t < a->e[k].n; t++) {
			const struct target *x = &a->e[k].t[t];

			if (x->kind != T_COMMAND && x->kind != T_FILE)
				continue;
			if (i-- == 0) {
				snprintf(out, outlen, "%s:%u: alias %s: %s", x->file, x->line, a->e[k].name,
				    x->value);
				return 1;
			}
		}
	return 0;
}

void
aliases_release(struct aliases *a)
{
	if (a != NULL && atomic_fetch_sub(&a->refs, 1) == 1)
		free_table(a);
}

size_t
aliases_count(const struct aliases *a)
{
	return a ? a->n : 0;
}

const char *
aliases_name_at(const struct aliases *a, size_t i)
{
	return a != NULL && i < a->n ? a->e[i].name : NULL;
}

static const struct alias_entry *
lookup(const struct aliases *a, const char *name)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, a->e[mid].name);

		if (c == 0)
			return &a->e[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int
aliases_key(const char *addr, char *key, size_t keylen)
{
	char local[ADDR_MAX];
	const char *end;
	int at = addr_split(addr);
	size_t n = at >= 0 ? (size_t)at : strlen(addr);

	if (n == 0 || n >= sizeof(local))
		return -EINVAL;
	memcpy(local, addr, n);
	local[n] = '\0';
	if (local[0] == '"') {
		if (unquote(local, key, keylen, &end) < 0 || *end != '\0')
			return -EINVAL;
	} else if (n >= keylen) {
		return -ENAMETOOLONG;
	} else {
		memcpy(key, local, n + 1);
	}
	if (strlen(key) == 0 || strlen(key) > ALIASES_NAME_MAX)
		return -ENAMETOOLONG;
	lower(key);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Expansion                                                           */
/* ------------------------------------------------------------------ */

struct expander {
	const struct aliases *a;
	const struct aliases_ctx *ctx;
	struct alias_expansion *out;
	const char     *path[ALIASES_MAX_DEPTH + 1];	/* the names being expanded */
	size_t		depth;
	size_t		visits;
};

static int
refuse(struct expander *x, const struct target *t, const char *value, const char *why)
{
	char **grown, *s;

	if (x->out->nrefused >= ALIASES_MAX_TARGETS)
		return 0;			/* logged enough */
	if ((grown = realloc(x->out->refused, (x->out->nrefused + 1) * sizeof(*grown))) == NULL)
		return -ENOMEM;
	x->out->refused = grown;
	if (asprintf(&s, "%s:%u: %s: %s", t->file, t->line, value, why) < 0)
		return -ENOMEM;
	grown[x->out->nrefused++] = s;
	return 0;
}

static int
add_result(struct expander *x, enum alias_dest dest, const char *value)
{
	struct alias_expansion *o = x->out;
	size_t i;

	for (i = 0; i < o->nrcpt; i++) {
		if (o->rcpt[i].dest != dest)
			continue;
		if (dest == ALIAS_MAILBOX ? strcmp(o->rcpt[i].value, value) == 0 :
		    addr_same_mailbox(o->rcpt[i].value, value))
			return 0;
	}
	if (o->nrcpt >= x->ctx->max_rcpt)
		return -E2BIG;
	if (o->nrcpt == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 8;
		struct alias_rcpt *grown = realloc(o->rcpt, cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		o->rcpt = grown;
		o->cap = cap;
	}
	if ((o->rcpt[o->nrcpt].value = strdup(value)) == NULL)
		return -ENOMEM;
	o->rcpt[o->nrcpt++].dest = dest;
	return 0;
}

static int
add_mailbox(struct expander *x, const struct target *t, const char *name)
{
	char addr[ALIASES_NAME_MAX + 3], mbox[ADDR_MAILBOX_MAX + 1];

	snprintf(addr, sizeof(addr), "%s@x", name);
	if (addr_mailbox_name(addr, mbox, sizeof(mbox)) < 0)
		return t ? refuse(x, t, name, "not a valid mailbox name") : -EINVAL;
	return add_result(x, ALIAS_MAILBOX, mbox);
}

static int expand_name(struct expander *x, const struct target *t, const char *name);

static int
expand_target(struct expander *x, const struct target *t)
{
	char key[ALIASES_NAME_MAX + 1];
	int at;

	switch (t->kind) {
	case T_NAME:
		return expand_name(x, t, t->value);
	case T_FINAL:
		return add_mailbox(x, t, t->value);
	case T_ADDRESS:
		at = addr_split(t->value);
		if (at < 0 || x->ctx->is_local == NULL || !x->ctx->is_local(t->value + at + 1, x->ctx->arg))
			return add_result(x, ALIAS_ADDRESS, t->value);
		if (aliases_key(t->value, key, sizeof(key)) < 0)
			return refuse(x, t, t->value, "not a valid local name");
		return expand_name(x, t, key);
	case T_COMMAND:
		return refuse(x, t, t->value, "command targets are not delivered by spoolgate");
	case T_FILE:
		return refuse(x, t, t->value, "file targets are not delivered by spoolgate");
	}
	return -EINVAL;
}

/* t: the target that named it (NULL for the key expanded). */
static int
expand_name(struct expander *x, const struct target *t, const char *name)
{
	const struct alias_entry *e;
	size_t i;
	int r;

	if (++x->visits > ALIASES_MAX_VISITS)
		return -E2BIG;
	for (i = 0; i < x->depth; i++)
		if (strcmp(x->path[i], name) == 0)
			return add_mailbox(x, t, name);	/* itself again: its own mailbox */
	if ((e = lookup(x->a, name)) == NULL)
		return add_mailbox(x, t, name);
	if (x->depth >= ALIASES_MAX_DEPTH)
		return -ELOOP;
	x->path[x->depth++] = e->name;
	for (i = 0, r = 0; i < e->n && r == 0; i++)
		r = expand_target(x, &e->t[i]);
	x->depth--;
	return r;
}

static void
make_trace(struct alias_expansion *o, const char *key)
{
	size_t i, len;

	len = (size_t)snprintf(o->trace, sizeof(o->trace), "%s ->", key);
	for (i = 0; i < o->nrcpt && len < sizeof(o->trace); i++)
		len += (size_t)snprintf(o->trace + len, sizeof(o->trace) - len, "%s %s",
		    i ? "," : "", o->rcpt[i].value);
	if (o->nrcpt == 0 && len < sizeof(o->trace))
		len += (size_t)snprintf(o->trace + len, sizeof(o->trace) - len, " (nothing)");
	if (len >= sizeof(o->trace))
		memcpy(o->trace + sizeof(o->trace) - 4, "...", 4);
}

int
aliases_expand(const struct aliases *a, const char *key, const struct aliases_ctx *ctx,
    struct alias_expansion *out)
{
	struct expander x = { a, ctx, out, { NULL }, 0, 0 };
	int r;

	memset(out, 0, sizeof(*out));
	if (a == NULL || lookup(a, key) == NULL)
		return 0;
	if ((r = expand_name(&x, NULL, key)) < 0) {
		alias_expansion_free(out);
		return r;
	}
	make_trace(out, key);
	return 1;
}

void
alias_expansion_free(struct alias_expansion *x)
{
	size_t i;

	for (i = 0; i < x->nrcpt; i++)
		free(x->rcpt[i].value);
	free(x->rcpt);
	for (i = 0; i < x->nrefused; i++)
		free(x->refused[i]);
	free(x->refused);
	memset(x, 0, sizeof(*x));
}

/* ------------------------------------------------------------------ */
/* Sources: reload on change                                           */
/* ------------------------------------------------------------------ */

struct fstamp {
	bool		present;
	dev_t		dev;
	ino_t		ino;
	off_t		size;
	struct timespec	mtim;
};

struct aliases_source {
	pthread_mutex_t	lock;		/* protects everything below */
	char	       *path;
	struct aliases_opts opts;
	char	       *stamp;		/* opts.stamp's copy */
	struct aliases *cur;
	struct fstamp  *seen;		/* cur's files, then the stamp file */
	size_t		nseen;
	time_t		checked;	/* CLOCK_MONOTONIC second of the last check */
};

static struct fstamp
stamp_of(const char *path)
{
	struct fstamp s = { 0 };
	struct stat st;

	if (path != NULL && stat(path, &st) == 0) {
		s.present = true;
		s.dev = st.st_dev;
		s.ino = st.st_ino;
		s.size = st.st_size;
		s.mtim = st.st_mtim;
	}
	return s;
}

static bool
stamp_equal(const struct fstamp *a, const struct fstamp *b)
{
	return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec;
}

/* Stamps of the files of t (the table's own path if t is NULL), then of the request file. */
static int
take_stamps(struct aliases_source *src, const struct aliases *t)
{
	size_t n = (t ? t->nfiles : 1) + 1, i;
	struct fstamp *s = calloc(n, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	for (i = 0; i + 1 < n; i++)
		s[i] = stamp_of(t ? t->files[i] : src->path);
	s[n - 1] = stamp_of(src->stamp);
	free(src->seen);
	src->seen = s;
	src->nseen = n;
	return 0;
}

static bool
changed(struct aliases_source *src)
{
	size_t i;

	for (i = 0; i < src->nseen; i++) {
		const char *p = i + 1 < src->nseen ? src->cur->files[i] : src->stamp;
		struct fstamp now = stamp_of(p);

		if (!stamp_equal(&now, &src->seen[i]))
			return true;
	}
	return false;
}

struct aliases_source *
aliases_source_new(const char *path, const struct aliases_opts *opts, char *err, size_t errlen)
{
	struct aliases_source *src = calloc(1, sizeof(*src));

	if (src == NULL || (src->path = strdup(path)) == NULL ||
	    (opts->stamp != NULL && (src->stamp = strdup(opts->stamp)) == NULL)) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	src->opts = *opts;
	src->opts.stamp = src->stamp;
	if (aliases_load(path, &src->opts, &src->cur, err, errlen) < 0)
		goto fail;
	if (take_stamps(src, src->cur) < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	pthread_mutex_init(&src->lock, NULL);
	src->checked = 0;
	return src;
fail:
	if (src != NULL) {
		aliases_release(src->cur);
		free(src->path);
		free(src->stamp);
		free(src);
	}
	return NULL;
}

static time_t
mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void
reload(struct aliases_source *src)
{
	char err[1024], q[1100], qf[512];
	struct aliases *fresh;

	if (aliases_load(src->path, &src->opts, &fresh, err, sizeof(err)) < 0) {
		log_error("aliases-reload-failed", "file=%s error=%s action=\"keeping the aliases loaded before\"",
		    log_quote(qf, sizeof(qf), src->path), log_quote(q, sizeof(q), err));
		take_stamps(src, src->cur);	/* retried at the next change */
		return;
	}
	log_info("aliases-loaded", "file=%s aliases=%zu when=reload", log_quote(q, sizeof(q), src->path),
	    aliases_count(fresh));
	aliases_release(src->cur);
	src->cur = fresh;
	take_stamps(src, src->cur);
}

struct aliases *
aliases_source_get(struct aliases_source *src)
{
	struct aliases *a;
	time_t now = mono_seconds();

	pthread_mutex_lock(&src->lock);
	if (now != src->checked) {
		src->checked = now;
		if (changed(src))
			reload(src);
	}
	a = src->cur;
	atomic_fetch_add(&a->refs, 1);
	pthread_mutex_unlock(&src->lock);
	return a;
}

void
aliases_source_free(struct aliases_source *src)
{
	if (src == NULL)
		return;
	pthread_mutex_destroy(&src->lock);
	aliases_release(src->cur);
	free(src->seen);
	free(src->path);
	free(src->stamp);
	free(src);
}

/* ------------------------------------------------------------------ */
/* The configured table                                                */
/* ------------------------------------------------------------------ */

int
aliases_source_configured(const struct cfg *cfg, uid_t daemon_uid, struct aliases_source **out,
    char *err, size_t errlen)
{
	struct aliases_opts opts = { daemon_uid, NULL };
	char stamp[4096];

	*out = NULL;
	if (cfg->aliases_file == NULL || cfg->aliases_file[0] == '\0')
		return 0;
	snprintf(stamp, sizeof(stamp), "%s/%s", cfg->spool_dir, ALIASES_STAMP_FILE);
	opts.stamp = stamp;
	if ((*out = aliases_source_new(cfg->aliases_file, &opts, err, errlen)) == NULL)
		return -EINVAL;
	return 0;
}

bool
aliases_cfg_is_local(const char *domain, void *cfg)
{
	return cfg_domain_is_local(cfg, domain);
}

int
aliases_expand_address(struct aliases_source *src, const struct cfg *cfg, const char *addr,
    size_t max_rcpt, const char *id, struct alias_expansion *out)
{
	struct aliases_ctx ctx = { aliases_cfg_is_local, (void *)cfg, max_rcpt };
	char key[ALIASES_NAME_MAX + 1], qa[ADDR_MAX + 8], qk[4 * ALIASES_NAME_MAX + 8], qt[1100];
	struct aliases *a;
	int at = addr_split(addr), r;
	size_t i;

	if (src == NULL || (at >= 0 && !cfg_domain_is_local(cfg, addr + at + 1)) ||
	    aliases_key(addr, key, sizeof(key)) < 0)
		return 0;
	a = aliases_source_get(src);
	r = aliases_expand(a, key, &ctx, out);
	aliases_release(a);
	log_quote(qa, sizeof(qa), addr);
	log_quote(qk, sizeof(qk), key);
	if (r < 0) {
		log_error("alias-failed", "%s rcpt=%s alias=%s error=%s why=%s", id, qa, qk, strerrorname_np(-r),
		    r == -E2BIG ? "\"more recipients than allowed\"" :
		    r == -ELOOP ? "\"aliases nested too deep\"" : "\"expansion failed\"");
		return r;
	}
	if (r == 0)
		return 0;
	for (i = 0; i < out->nrefused; i++)
		log_warn("alias-target-refused", "%s rcpt=%s alias=%s target=%s", id, qa, qk,
		    log_quote(qt, sizeof(qt), out->refused[i]));
	log_info("alias-expanded", "%s rcpt=%s alias=%s n=%zu to=%s", id, qa, qk, out->nrcpt,
	    log_quote(qt, sizeof(qt), out->trace));
	return 1;
}
