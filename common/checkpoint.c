/*
 * NAME
 *	checkpoint - partial transfers kept for CHECKPOINT/TRANSID (RFC 1845)
 * DESCRIPTION
 *	See checkpoint.h.  The record crosses a process (and a time) boundary,
 *	so it is parsed as strictly as an envelope record: every key once,
 *	numbers in decimal, names without '/', nothing else.
 * SECURITY
 *	The TRANSID comes from the network: it is checked before it is hashed
 *	or written, and file names come from hex digests and message ids only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "checkpoint.h"
#include "smtp_parse.h"

#define CKPT_MAGIC	"spoolgate-partial: 1"
#define CKPT_META_MAX	2048	/* a record is far smaller */
#define CKPT_SUFFIX	".meta"

static void
hex_digest(EVP_MD_CTX *ctx, char hex[CKPT_KEY_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	if (EVP_DigestFinal_ex(ctx, md, &n) != 1 || n * 2 != CKPT_KEY_LEN)
		n = 0;
	for (i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * n] = '\0';
}

/*
 * SHA-256 of first and the n strings of rest, each with its NUL (so that
 * "ab","c" differs from "a","bc"), in hex ("" when OpenSSL fails).
 */
static void
digest_strings(const char *first, const char *const *rest, size_t n, char hex[CKPT_KEY_LEN + 1])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t i;

	hex[0] = '\0';
	if (ctx == NULL)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		EVP_DigestUpdate(ctx, first, strlen(first) + 1);
		for (i = 0; i < n; i++)
			EVP_DigestUpdate(ctx, rest[i], strlen(rest[i]) + 1);
		hex_digest(ctx, hex);
	}
	EVP_MD_CTX_free(ctx);
}

void
ckpt_key(const char *client, const char *transid, char key[CKPT_KEY_LEN + 1])
{
	const char *parts[] = { client, transid };

	digest_strings("spoolgate-transid", parts, 2, key);
}

void
ckpt_envelope_hash(const char *from, const char *const *rcpts, size_t n, char hex[CKPT_KEY_LEN + 1])
{
	digest_strings(from, rcpts, n, hex);
}

int
ckpt_meta_format(const struct ckpt_meta *m, char *buf, size_t size)
{
	int n = snprintf(buf, size, CKPT_MAGIC "\ntransid: %s\nclient: %s\nenvelope: %s\ndata: %s\n"
	    "data-start: %" PRIu64 "\ndata-length: %" PRIu64 "\noffset: %" PRIu64 "\n", m->transid, m->client,
	    m->envelope, m->data, m->data_start, m->data_length, m->offset);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return n;
}

static int
parse_u64(const char *v, uint64_t *out)
{
	uint64_t n = 0;

	if (*v == '\0')
		return -EBADMSG;
	for (; *v != '\0'; v++) {
		unsigned d = (unsigned)(*v - '0');

		if (*v < '0' || *v > '9' || n > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

/* A value of printable ASCII (spaces allowed where allow_space) into out. */
static int
copy_value(const char *v, char *out, size_t outlen, bool allow_space)
{
	size_t len = strlen(v), i;

	if (len == 0 || len >= outlen)
		return -EBADMSG;
	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] < ' ' || (unsigned char)v[i] >= 0x7f || (v[i] == ' ' && !allow_space))
			return -EBADMSG;
	memcpy(out, v, len + 1);
	return 0;
}

static int
parse_line(struct ckpt_meta *m, const char *key, const char *v, unsigned *seen)
{
	static const char *const keys[] = { "transid", "client", "envelope", "data", "data-start",
		"data-length", "offset" };
	unsigned i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			break;
	if (i == sizeof(keys) / sizeof(keys[0]) || (*seen & (1u << i)))
		return -EBADMSG;
	*seen |= 1u << i;
	switch (i) {
	case 0:
		return smtp_parse_transid(v, m->transid, sizeof(m->transid)) < 0 ? -EBADMSG : 0;
	case 1:
		return copy_value(v, m->client, sizeof(m->client), true);
	case 2:
		return strlen(v) != CKPT_KEY_LEN ? -EBADMSG : copy_value(v, m->envelope, sizeof(m->envelope), false);
	case 3:
		if (strchr(v, '/') != NULL || v[0] == '.')
			return -EBADMSG;
		return copy_value(v, m->data, sizeof(m->data), false);
	case 4:
		return parse_u64(v, &m->data_start);
	case 5:
		return parse_u64(v, &m->data_length);
	default:
		return parse_u64(v, &m->offset);
	}
}

int
ckpt_meta_parse(const char *buf, size_t len, struct ckpt_meta *m)
{
	char copy[CKPT_META_MAX + 1], *line, *next;
	unsigned seen = 0;
	int r;

	memset(m, 0, sizeof(*m));
	if (len > CKPT_META_MAX || len == 0 || buf[len - 1] != '\n' || memchr(buf, '\0', len) != NULL)
		return -EBADMSG;
	memcpy(copy, buf, len);
	copy[len] = '\0';
	if (strncmp(copy, CKPT_MAGIC "\n", sizeof(CKPT_MAGIC)) != 0)
		return -EBADMSG;
	for (line = copy + sizeof(CKPT_MAGIC); *line != '\0'; line = next) {
		char *colon;

		next = strchr(line, '\n');
		*next++ = '\0';
		if ((colon = strstr(line, ": ")) == NULL)
			return -EBADMSG;
		*colon = '\0';
		if ((r = parse_line(m, line, colon + 2, &seen)) < 0)
			return r;
	}
	return seen == 0x7f ? 0 : -EBADMSG;
}

int
ckpt_load(int dirfd, const char *key, struct ckpt_meta *m)
{
	char name[CKPT_KEY_LEN + sizeof(CKPT_SUFFIX)], buf[CKPT_META_MAX + 1];
	ssize_t n;
	int fd;

	snprintf(name, sizeof(name), "%s" CKPT_SUFFIX, key);
	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return -errno;
	return ckpt_meta_parse(buf, (size_t)n, m);
}

int
ckpt_save(int dirfd, const char *key, const struct ckpt_meta *m)
{
	char name[CKPT_KEY_LEN + sizeof(CKPT_SUFFIX)], tmp[CKPT_KEY_LEN + 8], buf[CKPT_META_MAX];
	int fd, n, r = 0;

	if ((n = ckpt_meta_format(m, buf, sizeof(buf))) < 0)
		return n;
	snprintf(name, sizeof(name), "%s" CKPT_SUFFIX, key);
	snprintf(tmp, sizeof(tmp), "%s.tmp", key);
	(void)unlinkat(dirfd, tmp, 0);		/* left by a crash: ours (the key is this client's) */
	if ((fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r == 0 && fsync(dirfd) < 0)
		r = -errno;
	if (r < 0)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}

int
ckpt_remove(int dirfd, const char *key)
{
	char name[CKPT_KEY_LEN + sizeof(CKPT_SUFFIX)];
	struct ckpt_meta m;
	int r = ckpt_load(dirfd, key, &m);

	snprintf(name, sizeof(name), "%s" CKPT_SUFFIX, key);
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	if (r == 0 && unlinkat(dirfd, m.data, 0) < 0 && errno != ENOENT)
		return -errno;
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* A transfer's record, older than the lifetime: it goes with its data. */
static bool
expired(int dirfd, const char *name, long long now, unsigned lifetime)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (long long)st.st_mtime + lifetime <= now;
}

int
ckpt_sweep(int dirfd, long long now, unsigned lifetime)
{
	int fd = dup(dirfd), removed = 0;
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char key[CKPT_KEY_LEN + 1];

		if (e->d_name[0] == '.' || !expired(dirfd, e->d_name, now, lifetime))
			continue;
		if (len == CKPT_KEY_LEN + sizeof(CKPT_SUFFIX) - 1 && strcmp(e->d_name + CKPT_KEY_LEN, CKPT_SUFFIX) == 0) {
			memcpy(key, e->d_name, CKPT_KEY_LEN);
			key[CKPT_KEY_LEN] = '\0';
			if (ckpt_remove(dirfd, key) == 0)
				removed++;
			continue;
		}
		/* A data file whose record is gone, or a temporary: as old, so nobody writes it. */
		(void)unlinkat(dirfd, e->d_name, 0);
	}
	closedir(d);
	return removed;
}
