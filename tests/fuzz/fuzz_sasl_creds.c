/*
 * NAME
 *	fuzz_sasl_creds - the relay's SMTP AUTH credentials file
 * DESCRIPTION
 *	The input is the file (in a memfd of mode 0600, loaded through
 *	/proc/self/fd/N, so the mode check passes and every load reads the
 *	bytes given).  When sasl_creds_load() accepts it: each entry's route
 *	is 1..255 printable non-blank octets, its user printable without a
 *	blank or ':', its password not empty and without a control character
 *	(a tab is a blank, allowed); the line it names is the entry, read
 *	again here from the input: blanks, route, blanks, user ":" password,
 *	the whole line, shorter than 1024 octets; every line that is neither
 *	blank nor a comment gave exactly one entry; no route is given twice
 *	(in any case) and sasl_creds_find() finds each.  When it refuses:
 *	-EINVAL with "path:line: what" and a line number inside the file
 *	(-EFBIG above 1 MiB, not reached with libFuzzer's input sizes).
 */
#include <errno.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "common/sasl.h"

struct line {
	const char     *p;
	size_t		len;		/* without its LF */
};

/* Splits the input at LF as getline(3) does. */
static size_t
split_lines(const char *in, size_t n, struct line *v)
{
	size_t pos = 0, k = 0;

	while (pos < n) {
		const char *lf = memchr(in + pos, '\n', n - pos);
		size_t len = lf != NULL ? (size_t)(lf - (in + pos)) : n - pos;

		v[k].p = in + pos;
		v[k++].len = len;
		pos += len + (lf != NULL);
	}
	return k;
}

static int
blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Blank or a comment, by the header's words. */
static int
ignored(const struct line *l)
{
	size_t i = 0;

	while (i < l->len && blank(l->p[i]))
		i++;
	return i == l->len || l->p[i] == '#';
}

static void
check_entry(const struct sasl_cred *c, const struct line *lines, size_t nlines, const struct sasl_creds *creds)
{
	const struct line *l;
	size_t rl = strlen(c->route), ul = strlen(c->user), pl = strlen(c->password), i = 0, k;

	FUZZ_CHECK(rl >= 1 && rl <= 255, "route of %zu octets", rl);
	for (k = 0; k < rl; k++)
		FUZZ_CHECK(c->route[k] > 0x20 && c->route[k] < 0x7f, "route octet 0x%02x", (unsigned char)c->route[k]);
	FUZZ_CHECK(ul >= 1, "empty user");
	for (k = 0; k < ul; k++)
		FUZZ_CHECK(c->user[k] > 0x20 && c->user[k] < 0x7f && c->user[k] != ':', "user octet 0x%02x",
		    (unsigned char)c->user[k]);
	FUZZ_CHECK(pl >= 1, "empty password");
	for (k = 0; k < pl; k++)
		FUZZ_CHECK((unsigned char)c->password[k] >= 0x20 ? c->password[k] != 0x7f : c->password[k] == '\t',
		    "password octet 0x%02x", (unsigned char)c->password[k]);
	FUZZ_CHECK(c->line >= 1 && c->line <= nlines, "line %u of %zu", c->line, nlines);
	l = &lines[c->line - 1];
	FUZZ_CHECK(l->len < 1024, "a line of %zu octets accepted", l->len);
	while (i < l->len && blank(l->p[i]))
		i++;
	FUZZ_CHECK(l->len - i > rl && memcmp(l->p + i, c->route, rl) == 0 && blank(l->p[i + rl]),
	    "line %u does not start with route '%s'", c->line, c->route);
	i += rl;
	while (i < l->len && blank(l->p[i]))
		i++;
	FUZZ_CHECK(l->len - i == ul + 1 + pl && memcmp(l->p + i, c->user, ul) == 0 && l->p[i + ul] == ':' &&
	    memcmp(l->p + i + ul + 1, c->password, pl) == 0, "line %u is not '%s' user:password", c->line, c->route);
	FUZZ_CHECK(sasl_creds_find(creds, c->route) == c, "route '%s' finds another entry", c->route);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct line *lines = malloc((size + 1) * sizeof(*lines));
	struct sasl_creds *creds = NULL;
	char path[64], err[512] = "";
	size_t nlines, entries = 0, i, j;
	int fd = memfd_create("fuzz_sasl_creds", MFD_CLOEXEC), r;

	FUZZ_CHECK(lines != NULL, "out of memory");
	FUZZ_CHECK(fd >= 0 && fchmod(fd, 0600) == 0, "memfd: %s", strerror(errno));
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size, "write: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nlines = split_lines((const char *)data, size, lines);

	r = sasl_creds_load(path, &creds, err, sizeof(err));
	if (r != 0) {
		FUZZ_CHECK(r == -EINVAL, "errno %d: %s", -r, err);
		FUZZ_CHECK(creds == NULL, "a set returned with an error");
		fuzz_check_line_error(err, path, nlines);
	} else {
		for (i = 0; i < nlines; i++)
			entries += !ignored(&lines[i]);
		FUZZ_CHECK(sasl_creds_count(creds) == entries, "%zu entries of %zu lines that are neither blank "
		    "nor a comment", sasl_creds_count(creds), entries);
		FUZZ_CHECK(entries <= 10000, "%zu entries", entries);
		for (i = 0; i < nlines; i++) {
			const struct sasl_cred *c = NULL;

			if (ignored(&lines[i]))
				continue;
			/* The entry of line i + 1: find it by its route, read from that line. */
			for (j = 0; j < lines[i].len && blank(lines[i].p[j]); j++)
				;
			{
				size_t k = j;
				char route[256];

				while (k < lines[i].len && !blank(lines[i].p[k]) && k - j < 255)
					k++;
				memcpy(route, lines[i].p + j, k - j);
				route[k - j] = '\0';
				c = sasl_creds_find(creds, route);
			}
			FUZZ_CHECK(c != NULL && c->line == i + 1, "line %zu gave no entry", i + 1);
			check_entry(c, lines, nlines, creds);
		}
	}
	sasl_creds_free(creds);
	close(fd);
	free(lines);
	return 0;
}
