/*
 * NAME
 *	test_cfg_doc - spoolgate.conf(5) documents exactly the keys of cfg.c
 * SYNOPSIS
 *	test_cfg_doc MANPAGE
 * DESCRIPTION
 *	Reads the mdoc source of spoolgate.conf(5) (docs/man/spoolgate.conf.5):
 *	each key is an ".It Cm KEY" line under the '.Ss "[SECTION]"' of its
 *	section ('.Ss "[listener NAME]"' for the listener keys).  Every key
 *	that cfg_key_at() names must be documented once, in its section, and
 *	every key the page documents must exist: a key added to or removed
 *	from common/cfg.c without the page fails here, and so does a page
 *	that keeps a key the code no longer has.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "testutil.h"

#define MAX_DOC_KEYS	256
#define NAME_LEN	64

struct doc_key {
	char	section[NAME_LEN];
	char	key[NAME_LEN];
	int	line;
};

static const char *manpage;
static struct doc_key doc[MAX_DOC_KEYS];
static size_t ndoc;

/* '.Ss "[listener NAME]"' -> "listener", '.Ss "[relay]"' -> "relay"; else "". */
static void
section_of(const char *line, char *out)
{
	const char *open = strchr(line, '['), *end;
	size_t len;

	out[0] = '\0';
	if (open == NULL || (end = strchr(open, ']')) == NULL)
		return;
	len = strcspn(open + 1, " ]");
	if (len >= NAME_LEN || open + 1 + len > end)
		return;
	memcpy(out, open + 1, len);
	out[len] = '\0';
}

static void
read_manpage(void)
{
	char line[1024], section[NAME_LEN] = "";
	int lineno = 0;
	FILE *fp = fopen(manpage, "r");

	ck_assert_msg(fp != NULL, "%s: %s", manpage, strerror(errno));
	ndoc = 0;
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strncmp(line, ".Sh ", 4) == 0)
			section[0] = '\0';
		else if (strncmp(line, ".Ss ", 4) == 0)
			section_of(line, section);
		else if (strncmp(line, ".It Cm ", 7) == 0) {
			struct doc_key *d = &doc[ndoc];
			size_t len = strcspn(line + 7, " \n");

			ck_assert_msg(ndoc < MAX_DOC_KEYS, "%s: more than %d keys", manpage, MAX_DOC_KEYS);
			ck_assert_msg(section[0] != '\0', "%s:%d: a key outside a [section]", manpage, lineno);
			ck_assert_msg(len < NAME_LEN, "%s:%d: key name too long", manpage, lineno);
			memcpy(d->key, line + 7, len);
			d->key[len] = '\0';
			strcpy(d->section, section);
			d->line = lineno;
			ndoc++;
		}
	}
	fclose(fp);
	ck_assert_msg(ndoc > 0, "%s: no '.It Cm KEY' line found", manpage);
}

START_TEST(every_key_is_documented_once_in_its_section)
{
	const char *section, *key;
	size_t i, j, found;

	read_manpage();
	for (i = 0; cfg_key_at(i, &section, &key) == 0; i++) {
		for (found = 0, j = 0; j < ndoc; j++)
			if (strcmp(doc[j].section, section) == 0 && strcmp(doc[j].key, key) == 0)
				found++;
		ck_assert_msg(found == 1, "%s: [%s] %s is documented %zu times (want once, as "
		    "'.It Cm %s' under '.Ss \"[%s]\"')", manpage, section, key, found, key, section);
	}
	ck_assert_uint_gt(i, 40);	/* the walk saw the tables */
}
END_TEST

START_TEST(every_documented_key_exists)
{
	const char *section, *key;
	size_t i, j;
	int known;

	read_manpage();
	for (j = 0; j < ndoc; j++) {
		for (known = 0, i = 0; !known && cfg_key_at(i, &section, &key) == 0; i++)
			known = strcmp(doc[j].section, section) == 0 && strcmp(doc[j].key, key) == 0;
		ck_assert_msg(known, "%s:%d: [%s] %s is documented but common/cfg.c has no such key",
		    manpage, doc[j].line, doc[j].section, doc[j].key);
	}
}
END_TEST

START_TEST(key_at_ends_with_enoent)
{
	const char *section = NULL, *key = NULL;
	size_t i;

	for (i = 0; cfg_key_at(i, &section, &key) == 0; i++)
		ck_assert(section != NULL && key != NULL);
	ck_assert_int_eq(cfg_key_at(i, &section, &key), -ENOENT);
	ck_assert_int_eq(cfg_key_at((size_t)-1, &section, &key), -ENOENT);
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s = suite_create("cfg_doc");
	TCase *tc = tcase_create("manpage");

	if (argc != 2) {
		fprintf(stderr, "usage: %s docs/man/spoolgate.conf.5\n", argv[0]);
		return 2;
	}
	manpage = argv[1];
	tcase_add_test(tc, every_key_is_documented_once_in_its_section);
	tcase_add_test(tc, every_documented_key_exists);
	tcase_add_test(tc, key_at_ends_with_enoent);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
