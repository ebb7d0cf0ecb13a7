/*
 * NAME
 *	fuzz.h - what every harness in tests/fuzz/ shares
 * SYNOPSIS
 *	#include "fuzz.h"
 *
 *	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
 *	FUZZ_CHECK(cond, fmt, ...);
 *	char *fuzz_cstr(const uint8_t *data, size_t size);
 *	uint64_t fuzz_rand(uint64_t *state);
 *	void fuzz_check_line_error(const char *err, const char *path,
 *	    size_t nlines);
 * DESCRIPTION
 *	Each fuzz_<name>.c defines LLVMFuzzerTestOneInput() for one parser of
 *	untrusted bytes.  It is linked either with libFuzzer (./test --fuzz,
 *	clang -fsanitize=fuzzer) or with replay.c, a main() that runs every
 *	file of the seed corpus tests/fuzz/corpus/<name>/ through it (./test).
 *
 *	FUZZ_CHECK() states a property of the parser's result: when it does
 *	not hold, it prints where and why and aborts, which libFuzzer reports
 *	as a crash (and saves the input) and which fails the replay.
 *	fuzz_cstr() copies the input into a malloc'd NUL-terminated string
 *	(the caller frees it; NULL on memory exhaustion).  fuzz_rand() is a
 *	small deterministic generator (splitmix64) for choices such as chunk
 *	splits, seeded from the input so that a crash reproduces.
 *	fuzz_utf8_name_ok() is an oracle written apart from common/addr.c:
 *	every octet >= 0x80 of s[0..n) belongs to a well-formed UTF-8 sequence
 *	(RFC 3629: shortest form, no surrogate, at most U+10FFFF) of a
 *	character that is no C1 control (SMTPUTF8 names).
 *	fuzz_check_line_error() checks the refusal of a file parser: one line
 *	of text "path:N: what" naming a line N of the nlines of the file.
 */
#ifndef SPOOLGATE_FUZZ_H
#define SPOOLGATE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...) do {						\
	if (!(cond)) {								\
		fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__);					\
		fputc('\n', stderr);						\
		abort();							\
	}									\
} while (0)

static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s != NULL) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

static inline uint64_t
fuzz_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline int
fuzz_utf8_name_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len, k;
	unsigned long cp, min;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0)
			len = 2, cp = p[i] & 0x1f, min = 0xa0;		/* C1 (U+0080..U+009F) excluded */
		else if ((p[i] & 0xf0) == 0xe0)
			len = 3, cp = p[i] & 0x0f, min = 0x800;
		else if ((p[i] & 0xf8) == 0xf0)
			len = 4, cp = p[i] & 0x07, min = 0x10000;
		else
			return 0;
		if (len > n - i)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

static inline void
fuzz_check_line_error(const char *err, const char *path, size_t nlines)
{
	size_t plen = strlen(path);
	unsigned long lineno;
	char *end;

	FUZZ_CHECK(strncmp(err, path, plen) == 0 && err[plen] == ':', "'%s' does not name %s", err, path);
	lineno = strtoul(err + plen + 1, &end, 10);
	FUZZ_CHECK(end != err + plen + 1 && *end == ':' && lineno >= 1 && lineno <= nlines,
	    "'%s': no line number of %zu lines", err, nlines);
	FUZZ_CHECK(strchr(err, '\n') == NULL, "a newline in '%s'", err);
}

#endif
