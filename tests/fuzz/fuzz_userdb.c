/*
 * NAME
 *	fuzz_userdb - the SMTP server's users file (AUTH credentials)
 * DESCRIPTION
 *	The input is the file (in a memfd of mode 0600, loaded through
 *	/proc/self/fd/N, so the mode check passes).  When userdb_load()
 *	accepts it: one user per line that is neither blank nor a comment,
 *	each with a clean name (1..255 printable non-blank octets), a secret
 *	(scram= with iterations 4096..1000000 and 44-character keys, or a
 *	crypt= hash starting with '$'), at most 32 senders, the users in
 *	strictly increasing name order (so no name twice) and each found by
 *	userdb_find(); what userdb_format() writes loads again and formats to
 *	the same bytes.  When it refuses: -EINVAL with "path:line: what" and
 *	a line number inside the file, one line of text.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "common/userdb.h"

static int
memfd_with(const char *data, size_t size, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz_userdb", MFD_CLOEXEC);

	FUZZ_CHECK(fd >= 0 && fchmod(fd, 0600) == 0, "memfd: %s", strerror(errno));
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size, "write: %s", strerror(errno));
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

/* Lines that are neither blank nor a comment, as the header defines them. */
static size_t
entry_lines(const char *in, size_t n, size_t *nlines)
{
	size_t pos = 0, entries = 0;

	*nlines = 0;
	while (pos < n) {
		const char *lf = memchr(in + pos, '\n', n - pos);
		size_t len = lf != NULL ? (size_t)(lf - (in + pos)) : n - pos, i = 0;

		while (i < len && (in[pos + i] == ' ' || in[pos + i] == '\t'))
			i++;
		entries += i < len && in[pos + i] != '#';
		(*nlines)++;
		pos += len + (lf != NULL);
	}
	return entries;
}

static void
check_user(const struct userdb *db, const struct userdb_user *u, const struct userdb_user *prev)
{
	size_t len = strlen(u->name);

	FUZZ_CHECK(len >= 1 && len <= 255, "name of %zu octets", len);
	for (size_t k = 0; k < len; k++)
		FUZZ_CHECK(u->name[k] > 0x20 && u->name[k] < 0x7f, "name octet 0x%02x", (unsigned char)u->name[k]);
	FUZZ_CHECK(prev == NULL || strcmp(prev->name, u->name) < 0, "'%s' not after '%s'", u->name, prev->name);
	FUZZ_CHECK(userdb_find(db, u->name) == u, "'%s' not found", u->name);
	FUZZ_CHECK(u->has_scram || u->crypt != NULL, "'%s' has no secret", u->name);
	if (u->has_scram)
		FUZZ_CHECK(u->scram.iterations >= 4096 && u->scram.iterations <= 1000000 &&
		    strlen(u->scram.stored_key) == 44 && strlen(u->scram.server_key) == 44 && u->scram.salt[0] != '\0',
		    "'%s': bad SCRAM secrets", u->name);
	if (u->crypt != NULL)
		FUZZ_CHECK(u->crypt[0] == '$' && strlen(u->crypt) < USERDB_CRYPT_MAX, "'%s': bad hash", u->name);
	FUZZ_CHECK(u->nsenders <= USERDB_SENDERS_MAX, "%zu senders", u->nsenders);
}

static void
check_round_trip(const struct userdb *db)
{
	char *text = NULL, *again = NULL, path[64], err[512];
	size_t len = 0, len2 = 0;
	struct userdb *db2 = NULL;
	int fd, r;

	FUZZ_CHECK(userdb_format(db, &text, &len) == 0, "format failed");
	fd = memfd_with(text, len, path, sizeof(path));
	r = userdb_load(path, &db2, err, sizeof(err));
	FUZZ_CHECK(r == 0, "what userdb_format() wrote does not load: %s", err);
	FUZZ_CHECK(userdb_format(db2, &again, &len2) == 0 && len2 == len && memcmp(text, again, len) == 0,
	    "formatted, loaded and formatted again differs");
	userdb_free(db2);
	free(text);
	free(again);
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct userdb *db = NULL;
	char path[64], err[512] = "";
	size_t nlines, entries = entry_lines((const char *)data, size, &nlines);
	int fd = memfd_with((const char *)data, size, path, sizeof(path)), r;

	r = userdb_load(path, &db, err, sizeof(err));
	if (r != 0) {
		FUZZ_CHECK(r == -EINVAL, "errno %d: %s", -r, err);
		FUZZ_CHECK(db == NULL, "a set returned with an error");
		fuzz_check_line_error(err, path, nlines);
	} else {
		FUZZ_CHECK(userdb_count(db) == entries, "%zu users of %zu entry lines", userdb_count(db), entries);
		for (size_t i = 0; i < userdb_count(db); i++)
			check_user(db, userdb_at(db, i), i > 0 ? userdb_at(db, i - 1) : NULL);
		check_round_trip(db);
	}
	userdb_free(db);
	close(fd);
	return 0;
}
