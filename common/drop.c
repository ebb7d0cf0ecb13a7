/*
 * NAME
 *	drop - messages left by spoolgate-sendmail for the gateway to queue
 * DESCRIPTION
 *	See drop.h.  The record is parsed line by line against a table of
 *	keys in their one allowed order; a writer is whoever can run the
 *	set-group-id command, so every line is bounded and checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "addr.h"
#include "drop.h"
#include "spool.h"

#define DROP_MAGIC	"spoolgate-drop: 1"

void
drop_record_free(struct drop_record *d)
{
	size_t i;

	for (i = 0; i < d->nrcpt; i++)
		free(d->rcpt[i]);
	free(d->rcpt);
	free(d->sender);
	free(d->full_name);
	memset(d, 0, sizeof(*d));
}

/* A value is printable ASCII (and, in full-name, UTF-8 octets), no control character. */
static bool
value_ok(const char *v, size_t n, bool eight_bit)
{
	size_t i;

	if (n == 0 || n >= DROP_VALUE_MAX)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 || c == 0x7f || (c > 0x7f && !eight_bit))
			return false;
	}
	return true;
}

static int
append(char **buf, size_t *len, size_t *cap, const char *key, const char *value)
{
	size_t need = strlen(key) + 2 + strlen(value) + 1;
	char *grown;

	if (*len + need + 1 > *cap) {
		size_t ncap = (*cap + need + 1) * 2;

		if ((grown = realloc(*buf, ncap)) == NULL)
			return -ENOMEM;
		*buf = grown;
		*cap = ncap;
	}
	*len += (size_t)sprintf(*buf + *len, "%s: %s\n", key, value);
	return 0;
}

int
drop_record_format(const struct drop_record *d, char **out, size_t *outlen)
{
	char uid[32], sender[DROP_VALUE_MAX + 2];
	size_t len = 0, cap = 0, i;
	char *buf = NULL;
	int r;

	if (d->nrcpt > DROP_MAX_RCPT || d->sender == NULL || strlen(d->sender) + 2 >= DROP_VALUE_MAX ||
	    (d->sender[0] != '\0' && !value_ok(d->sender, strlen(d->sender), false)) ||
	    (d->full_name != NULL && !value_ok(d->full_name, strlen(d->full_name), true)))
		return -EINVAL;
	for (i = 0; i < d->nrcpt; i++)
		if (!value_ok(d->rcpt[i], strlen(d->rcpt[i]), false))
			return -EINVAL;
	snprintf(uid, sizeof(uid), "%lu", d->uid);
	snprintf(sender, sizeof(sender), "<%s>", d->sender);
	if ((r = append(&buf, &len, &cap, "spoolgate-drop", "1")) < 0 ||
	    (r = append(&buf, &len, &cap, "uid", uid)) < 0 ||
	    (r = append(&buf, &len, &cap, "sender", sender)) < 0 ||
	    (r = append(&buf, &len, &cap, "extract", d->extract ? "yes" : "no")) < 0 ||
	    (d->full_name != NULL && (r = append(&buf, &len, &cap, "full-name", d->full_name)) < 0))
		goto fail;
	for (i = 0; i < d->nrcpt; i++)
		if ((r = append(&buf, &len, &cap, "rcpt", d->rcpt[i])) < 0)
			goto fail;
	if (len + 1 > DROP_RECORD_MAX) {
		r = -E2BIG;
		goto fail;
	}
	buf[len++] = '\n';
	*out = buf;
	*outlen = len;
	return 0;
fail:
	free(buf);
	return r;
}

/* The keys of a record, in their one order; rcpt repeats, full-name is optional. */
enum drop_key { K_MAGIC, K_UID, K_SENDER, K_EXTRACT, K_FULL_NAME, K_RCPT };

static const char *const drop_keys[] = {
	[K_MAGIC] = "spoolgate-drop", [K_UID] = "uid", [K_SENDER] = "sender",
	[K_EXTRACT] = "extract", [K_FULL_NAME] = "full-name", [K_RCPT] = "rcpt",
};

static int
key_of(const char *line, size_t n, const char **value, size_t *vlen)
{
	size_t k;

	for (k = 0; k < sizeof(drop_keys) / sizeof(drop_keys[0]); k++) {
		size_t kl = strlen(drop_keys[k]);

		if (n > kl + 2 && memcmp(line, drop_keys[k], kl) == 0 && line[kl] == ':' && line[kl + 1] == ' ') {
			*value = line + kl + 2;
			*vlen = n - kl - 2;
			return (int)k;
		}
	}
	return -1;
}

static int
take_value(struct drop_record *d, int key, const char *v, size_t n)
{
	char path[DROP_VALUE_MAX + 1], addr[ADDR_MAX], *end, **grown;

	switch (key) {
	case K_MAGIC:
		return n == 1 && v[0] == '1' ? 0 : -EBADMSG;
	case K_UID:
		if (!value_ok(v, n, false) || v[0] < '0' || v[0] > '9')
			return -EBADMSG;
		snprintf(path, sizeof(path), "%.*s", (int)n, v);
		errno = 0;
		d->uid = strtoul(path, &end, 10);
		return *end != '\0' || errno != 0 || d->uid > 0xffffffffUL ? -EBADMSG : 0;
	case K_SENDER:
		if (!value_ok(v, n, false))
			return -EBADMSG;
		snprintf(path, sizeof(path), "%.*s", (int)n, v);
		if (addr_parse_path(path, addr, sizeof(addr), NULL, ADDR_ALLOW_NULL) < 0 ||
		    (size_t)strlen(addr) + 2 != n)
			return -EBADMSG;
		return (d->sender = strdup(addr)) == NULL ? -ENOMEM : 0;
	case K_EXTRACT:
		if ((n == 3 && memcmp(v, "yes", 3) == 0) || (n == 2 && memcmp(v, "no", 2) == 0)) {
			d->extract = n == 3;
			return 0;
		}
		return -EBADMSG;
	case K_FULL_NAME:
		if (!value_ok(v, n, true))
			return -EBADMSG;
		return (d->full_name = strndup(v, n)) == NULL ? -ENOMEM : 0;
	case K_RCPT:
		if (!value_ok(v, n, false) || d->nrcpt >= DROP_MAX_RCPT)
			return -EBADMSG;
		if ((grown = realloc(d->rcpt, (d->nrcpt + 1) * sizeof(*grown))) == NULL)
			return -ENOMEM;
		d->rcpt = grown;
		return (d->rcpt[d->nrcpt] = strndup(v, n)) == NULL ? -ENOMEM : (d->nrcpt++, 0);
	}
	return -EBADMSG;
}

int
drop_record_parse(const char *buf, size_t len, struct drop_record *d)
{
	const char *p = buf, *end = buf + (len < DROP_RECORD_MAX ? len : DROP_RECORD_MAX);
	int last = -1, r = 0;

	memset(d, 0, sizeof(*d));
	while (r == 0) {
		const char *lf = memchr(p, '\n', (size_t)(end - p)), *v;
		size_t vlen;
		int key;

		if (lf == NULL) {
			r = -EBADMSG;		/* cut, or over DROP_RECORD_MAX */
			break;
		}
		if (lf == p) {
			p++;
			break;			/* the empty line: the message follows */
		}
		key = key_of(p, (size_t)(lf - p), &v, &vlen);
		/* Each key once, in order; only rcpt repeats; full-name may be left out. */
		if (key < 0 || key < last || (key == last && key != K_RCPT) ||
		    (key > last + 1 && !(key == K_RCPT && last == K_EXTRACT)) || (last < K_MAGIC && key != K_MAGIC))
			r = -EBADMSG;
		else
			r = take_value(d, key, v, vlen);
		last = key;
		p = lf + 1;
	}
	if (r == 0 && last < K_EXTRACT)
		r = -EBADMSG;			/* uid, sender and extract are required */
	if (r < 0) {
		drop_record_free(d);
		return r == -ENOMEM ? r : -EBADMSG;
	}
	d->msg_start = p - buf;
	return 0;
}

void
drop_policy(const struct drop_record *d, const struct cfg *cfg, const char *own, struct outbox_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->sender = d->sender;
	pol->rcpt = (const char *const *)d->rcpt;
	pol->nrcpt = d->nrcpt;
	pol->rcpt_from_headers = d->extract;
	pol->qualify_domain = cfg_sender_domain(cfg);
	pol->from_addr = own;
	pol->from_name = d->full_name;
	pol->headerless_ok = true;
}

int
drop_create(int dirfd, char name[DROP_NAME_MAX], char tmp[DROP_NAME_MAX])
{
	unsigned long long rnd = 0;
	struct timeval tv;
	int fd;

	gettimeofday(&tv, NULL);
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	snprintf(name, DROP_NAME_MAX, "%lld.%06ld.%ld.%016llx", (long long)tv.tv_sec, (long)tv.tv_usec,
	    (long)getpid(), rnd);
	snprintf(tmp, DROP_NAME_MAX, ".%s", name);
	fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, DROP_FILE_MODE);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, DROP_FILE_MODE) < 0) {	/* the umask must not take the gateway's read */
		int err = -errno;

		close(fd);
		unlinkat(dirfd, tmp, 0);
		return err;
	}
	return fd;
}

int
drop_commit(int dirfd, int fd, const char *tmp, const char *name)
{
	if (fdatasync(fd) < 0)
		return -errno;
	if (renameat(dirfd, tmp, dirfd, name) < 0)
		return -errno;
	return spool_fs_sync(fd);
}
