/*
 * NAME
 *	fuzz_aliases - the aliases(5) table (common/aliases.h)
 * DESCRIPTION
 *	The input is the table (in a memfd of mode 0644, loaded through
 *	/proc/self/fd/N; this process's uid may own it).  When aliases_load()
 *	accepts it: at most one alias per line that is neither blank, a
 *	comment nor a continuation; each name clean (1..64 octets, lower
 *	case, no ',' ':' or control); every alias expands (with "localhost"
 *	local) to at most max_rcpt results, or fails only with -E2BIG or
 *	-ELOOP; each mailbox is a valid mailbox name (addr_mailbox_name()
 *	gives it back unchanged), each address an RFC 5321 path outside the
 *	local domain, without duplicates; each refused target names a line
 *	of the file (or of an include).  When it refuses: one line of text
 *	that names the file, or "path:N: what" with N a line of the file.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "common/addr.h"
#include "common/aliases.h"

static bool
is_local(const char *domain, void *arg)
{
	(void)arg;
	return strcasecmp(domain, "localhost") == 0;
}

/* Lines that may start an entry: not blank, no comment, no leading white space. */
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
		entries += i == 0 && len > 0 && in[pos] != '#' && !(len == 1 && in[pos] == '\r');
		(*nlines)++;
		pos += len + (lf != NULL);
	}
	return entries;
}

static void
check_name(const char *name)
{
	size_t len = strlen(name);

	FUZZ_CHECK(len >= 1 && len <= ALIASES_NAME_MAX, "name of %zu octets", len);
	for (size_t k = 0; k < len; k++)
		FUZZ_CHECK(name[k] >= 0x20 && name[k] < 0x7f && name[k] != ',' && name[k] != ':' &&
		    !(name[k] >= 'A' && name[k] <= 'Z'), "name octet 0x%02x", (unsigned char)name[k]);
}

static void
check_expansion(const struct aliases *a, const char *key)
{
	struct aliases_ctx ctx = { is_local, NULL, 50 };
	struct alias_expansion x;
	char mbox[ADDR_MAILBOX_MAX + 1], addr[ALIASES_NAME_MAX + 8], path[ADDR_MAX + 2], out[ADDR_MAX];
	int r = aliases_expand(a, key, &ctx, &x);

	if (r != 1) {
		FUZZ_CHECK(r == -E2BIG || r == -ELOOP, "expanding '%s': %d", key, r);
		FUZZ_CHECK(x.nrcpt == 0 && x.rcpt == NULL, "results left after an error");
		return;
	}
	FUZZ_CHECK(x.nrcpt <= ctx.max_rcpt, "%zu results", x.nrcpt);
	for (size_t i = 0; i < x.nrcpt; i++) {
		const char *v = x.rcpt[i].value;

		if (x.rcpt[i].dest == ALIAS_MAILBOX) {
			snprintf(addr, sizeof(addr), "%s@x", v);
			FUZZ_CHECK(addr_mailbox_name(addr, mbox, sizeof(mbox)) == 0 && strcmp(mbox, v) == 0,
			    "mailbox '%s' is no mailbox name", v);
		} else {
			int at = addr_split(v);

			snprintf(path, sizeof(path), "<%s>", v);
			FUZZ_CHECK(addr_parse_path(path, out, sizeof(out), NULL, 0) == 0 && strcmp(out, v) == 0,
			    "address '%s' is no path", v);
			FUZZ_CHECK(at > 0 && !is_local(v + at + 1, NULL), "'%s' is local", v);
		}
		for (size_t k = 0; k < i; k++)
			FUZZ_CHECK(x.rcpt[k].dest != x.rcpt[i].dest || strcmp(x.rcpt[k].value, v) != 0,
			    "'%s' twice", v);
	}
	for (size_t i = 0; i < x.nrefused; i++)
		FUZZ_CHECK(strchr(x.refused[i], ':') != NULL && strchr(x.refused[i], '\n') == NULL,
		    "refusal without file:line: %s", x.refused[i]);
	alias_expansion_free(&x);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aliases_opts opts = { geteuid(), NULL };
	struct aliases *a = NULL;
	char path[64], err[1024] = "";
	size_t nlines, entries = entry_lines((const char *)data, size, &nlines);
	int fd = memfd_create("fuzz_aliases", MFD_CLOEXEC), r;

	FUZZ_CHECK(fd >= 0 && fchmod(fd, 0644) == 0, "memfd: %s", strerror(errno));
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size, "write: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = aliases_load(path, &opts, &a, err, sizeof(err));
	if (r != 0) {
		FUZZ_CHECK(a == NULL, "a table returned with an error");
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':' &&
		    strchr(err, '\n') == NULL, "refusal '%s' does not name %s", err, path);
		if (err[strlen(path) + 1] != ' ')
			fuzz_check_line_error(err, path, nlines);
	} else {
		FUZZ_CHECK(aliases_count(a) <= entries, "%zu aliases of %zu entry lines", aliases_count(a), entries);
		for (size_t i = 0; i < aliases_count(a); i++) {
			const char *name = aliases_name_at(a, i);

			check_name(name);
			FUZZ_CHECK(i == 0 || strcmp(aliases_name_at(a, i - 1), name) < 0, "'%s' out of order", name);
			if (i < 256)
				check_expansion(a, name);
		}
		FUZZ_CHECK(aliases_name_at(a, aliases_count(a)) == NULL, "a name past the end");
		for (size_t i = 0;; i++) {
			char line[1024];

			if (aliases_refused_at(a, i, line, sizeof(line)) != 1)
				break;
			FUZZ_CHECK(strncmp(line, path, strlen(path)) == 0 || line[0] == '/', "refused '%s'", line);
		}
		aliases_release(a);
	}
	close(fd);
	return 0;
}
