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
