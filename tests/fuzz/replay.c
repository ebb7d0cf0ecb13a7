/*
 * NAME
 *	replay - run a fuzz harness over its seed corpus, without libFuzzer
 * SYNOPSIS
 *	fuzz_<name> PATH...
 * DESCRIPTION
 *	The main() that ./test links each harness with (gcc, no clang needed):
 *	every regular file named, or found directly in a directory named, is
 *	read into a buffer of exactly its size (so that a sanitizer sees an
 *	overread) and given to LLVMFuzzerTestOneInput() once.  A harness that
 *	finds a property broken aborts, and the test fails.
 * EXIT STATUS
 *	0 when every input ran; 1 when a path cannot be read or no input was
 *	found (an empty corpus would test nothing).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int
replay_file(const char *path, unsigned *count)
{
	struct stat st;
	uint8_t *buf;
	FILE *fp;
	size_t n;

	if ((fp = fopen(path, "rb")) == NULL || fstat(fileno(fp), &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	n = (size_t)st.st_size;
	if ((buf = malloc(n ? n : 1)) == NULL || fread(buf, 1, n, fp) != n) {
		fprintf(stderr, "replay: %s: cannot read\n", path);
		free(buf);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	(*count)++;
	return 0;
}

static int
replay_path(const char *path, unsigned *count)
{
	char child[4096];
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path, count);
	if ((dir = opendir(path)) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (r == 0 && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(child, sizeof(child), "%s/%s", path, de->d_name) >= sizeof(child)) {
			fprintf(stderr, "replay: %s/%s: path too long\n", path, de->d_name);
			r = -1;
			break;
		}
		if (stat(child, &st) == 0 && S_ISREG(st.st_mode))
			r = replay_file(child, count);
	}
	closedir(dir);
	return r;
}

int
main(int argc, char **argv)
{
	unsigned count = 0;
	int i;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) < 0)
			return 1;
	if (count == 0) {
		fprintf(stderr, "replay: no input found in the corpus\n");
		return 1;
	}
	printf("replay: %u inputs, every property held\n", count);
	return 0;
}
