/*
 * NAME
 *	fuzz_outbox_headers - the header section of an outbox file (outbox.h)
 * DESCRIPTION
 *	Any local user can write any bytes into outbox/.  When
 *	outbox_parse_headers() accepts them: the sender and every recipient
 *	are NUL-terminated text without control characters, there is at
 *	least one recipient and no two are the same string, the body starts
 *	inside the input, every dropped range (Bcc:) lies inside the header
 *	section, in order and without overlap; and the envelope made from
 *	them, as outbox_submit() makes it, formats into a record that parses
 *	back (a record that did not would leave the message stuck).  When it
 *	refuses them, it says why.  GMime initialises itself once, inside
 *	outbox.c.
 */
#include <errno.h>

#include "fuzz.h"
#include "common/outbox.h"

static void
check_text(const char *s, const char *what)
{
	size_t i;

	FUZZ_CHECK(s != NULL, "%s is NULL", what);
	for (i = 0; s[i] != '\0'; i++)
		FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f, "%s: byte 0x%02x at %zu",
		    what, (unsigned char)s[i], i);
}

static void
check_record(const struct outbox_headers *h)
{
	struct envelope e, back;
	char *text = NULL;
	size_t len = 0, i;

	memset(&e, 0, sizeof(e));
	memset(&back, 0, sizeof(back));
	FUZZ_CHECK(envelope_init(&e, "1764442059.M123456P4242Q7", h->from, "fs outbox/fuzz.eml") == 0,
	    "envelope_init refused from '%s'", h->from);
	for (i = 0; i < h->nrcpt; i++)
		FUZZ_CHECK(envelope_add_rcpt(&e, h->rcpt[i]) == 0, "envelope_add_rcpt refused '%s'", h->rcpt[i]);
	FUZZ_CHECK(envelope_format(&e, &text, &len) == 0, "no record");
	FUZZ_CHECK(envelope_parse(text, len, &back) == 0, "the record does not parse back:\n%.*s",
	    (int)len, text);
	FUZZ_CHECK(back.nrcpt == h->nrcpt, "%zu recipients came back of %zu", back.nrcpt, h->nrcpt);
	free(text);
	envelope_free(&e);
	envelope_free(&back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outbox_headers h;
	char why[256] = "";
	size_t i, j;
	off_t prev = 0;
	int r;

	memset(&h, 0, sizeof(h));
	r = outbox_parse_headers((const char *)data, size, &h, why, sizeof(why));
	if (r != 0) {
		FUZZ_CHECK(r == -EBADMSG || r == -EDESTADDRREQ || r == -EINVAL || r == -EFBIG || r == -ENOMEM,
		    "errno %d", -r);
		FUZZ_CHECK(why[0] != '\0', "refused (%d) without a reason", -r);
		return 0;
	}
	check_text(h.from, "from");
	FUZZ_CHECK(h.nrcpt > 0, "accepted without a recipient");
	for (i = 0; i < h.nrcpt; i++) {
		check_text(h.rcpt[i], "rcpt");
		FUZZ_CHECK(h.rcpt[i][0] != '\0', "empty recipient");
		for (j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(h.rcpt[i], h.rcpt[j]) != 0, "recipient '%s' twice", h.rcpt[i]);
	}
	FUZZ_CHECK(h.body_start >= 0 && (size_t)h.body_start <= size, "body at %lld of %zu",
	    (long long)h.body_start, size);
	for (i = 0; i < h.ndrop; i++) {
		FUZZ_CHECK(h.drop[i].start >= prev && h.drop[i].start < h.drop[i].end &&
		    h.drop[i].end <= h.body_start, "drop %zu: [%lld, %lld) after %lld, body at %lld", i,
		    (long long)h.drop[i].start, (long long)h.drop[i].end, (long long)prev, (long long)h.body_start);
		prev = h.drop[i].end;
	}
	check_record(&h);
	outbox_headers_free(&h);
	return 0;
}
