/*
 * NAME
 *	fuzz_drop_record - the record at the start of a sendmail drop (drop.h)
 * DESCRIPTION
 *	A drop is written by whoever can run spoolgate-sendmail, and the
 *	gateway parses its record before anything else: drop_record_parse()
 *	takes any bytes.  When it accepts them, the message must start
 *	inside the input, right after an empty line; every value must be
 *	free of control characters; and drop_record_format() of the result
 *	must give exactly the bytes of the record, which parse again equal.
 */
#include "fuzz.h"
#include "common/drop.h"

static void
check_clean(const char *v, const char *what)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p != 0x7f, "%s has a control character", what);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct drop_record d, again;
	char *text = NULL;
	size_t len = 0, i;

	if (drop_record_parse((const char *)data, size, &d) != 0)
		return 0;
	FUZZ_CHECK(d.msg_start >= 2 && (size_t)d.msg_start <= size, "message start %lld outside the input",
	    (long long)d.msg_start);
	FUZZ_CHECK(data[d.msg_start - 1] == '\n' && data[d.msg_start - 2] == '\n',
	    "the message does not follow an empty line");
	check_clean(d.sender, "sender");
	if (d.full_name != NULL)
		check_clean(d.full_name, "full-name");
	FUZZ_CHECK(d.nrcpt <= DROP_MAX_RCPT, "%zu recipients", d.nrcpt);
	for (i = 0; i < d.nrcpt; i++)
		check_clean(d.rcpt[i], "rcpt");
	FUZZ_CHECK(drop_record_format(&d, &text, &len) == 0, "an accepted record does not format");
	FUZZ_CHECK(len == (size_t)d.msg_start && memcmp(text, data, len) == 0,
	    "format gives other bytes:\n%.*s\n---\n%.*s", (int)len, text, (int)d.msg_start, (const char *)data);
	FUZZ_CHECK(drop_record_parse(text, len, &again) == 0 && again.uid == d.uid && again.nrcpt == d.nrcpt &&
	    strcmp(again.sender, d.sender) == 0 && again.extract == d.extract, "the formatted record parses otherwise");
	drop_record_free(&again);
	free(text);
	drop_record_free(&d);
	return 0;
}
