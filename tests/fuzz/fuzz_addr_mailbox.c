/*
 * NAME
 *	fuzz_addr_mailbox - address to local mailbox name (addr.h)
 * DESCRIPTION
 *	The input is an address as it reaches addr_mailbox_name() (a
 *	recipient from SMTP or from an outbox header).  The name becomes a
 *	directory under mail/, so when it is accepted it must be a safe
 *	single path component: not empty, at most ADDR_MAILBOX_MAX octets,
 *	no '/', no leading '.', no control character, only [a-z0-9._+-] and
 *	well-formed UTF-8 of characters that are no C1 controls (SMTPUTF8
 *	mailboxes, fuzz_utf8_name_ok()); and deriving it again from name@domain gives the same
 *	name.  addr_split() and addr_domain_valid() run on the same bytes:
 *	the '@' found is inside the string and has text on both sides.
 */
#include "fuzz.h"
#include "common/addr.h"

static void
check_name(const char *name, size_t cap)
{
	char again[ADDR_MAX + 16], name2[ADDR_MAILBOX_MAX + 1];
	size_t n = strnlen(name, cap), i;

	FUZZ_CHECK(n > 0 && n < cap && n <= ADDR_MAILBOX_MAX, "name of %zu octets", n);
	FUZZ_CHECK(name[0] != '.', "leading dot: '%s'", name);
	FUZZ_CHECK(strchr(name, '/') == NULL, "slash in '%s'", name);
	FUZZ_CHECK(fuzz_utf8_name_ok(name, n), "malformed UTF-8 or a C1 control in '%s'", name);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c >= 0x80)
			continue;
		FUZZ_CHECK(c >= 0x20 && c < 0x7f, "byte 0x%02x in the name", c);
		FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("._+-", c) != NULL,
		    "'%c' in the name '%s'", c, name);
	}
	snprintf(again, sizeof(again), "%s@localhost", name);
	FUZZ_CHECK(addr_mailbox_name(again, name2, sizeof(name2)) == 0 && strcmp(name, name2) == 0,
	    "'%s' does not map to itself", name);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[ADDR_MAILBOX_MAX + 1];
	char *addr = fuzz_cstr(data, size);
	int at;

	if (addr == NULL)
		return 0;
	if (addr_mailbox_name(addr, name, sizeof(name)) == 0)
		check_name(name, sizeof(name));
	if ((at = addr_split(addr)) >= 0) {
		FUZZ_CHECK((size_t)at < strlen(addr) && addr[at] == '@', "addr_split gave %d", at);
		FUZZ_CHECK(at > 0 && addr[at + 1] != '\0', "empty side at %d", at);
		(void)addr_domain_valid(addr + at + 1);
	}
	(void)addr_domain_valid(addr);
	free(addr);
	return 0;
}
