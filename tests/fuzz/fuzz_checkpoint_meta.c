/*
 * NAME
 *	fuzz_checkpoint_meta - the record of a partial transfer (checkpoint.h)
 * DESCRIPTION
 *	The input is a partial/<key>.meta file: it crossed a process and a
 *	time boundary.  An accepted record has a TRANSID smtp_parse_transid()
 *	accepts, a 64-digit envelope digest and a data name without '/' nor
 *	a leading '.'; formatting it and parsing that again gives the same
 *	record.
 */
#include "fuzz.h"
#include "common/checkpoint.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ckpt_meta m, again;
	char buf[4096], tid[SMTP_TRANSID_MAX];
	int n;

	if (ckpt_meta_parse((const char *)data, size, &m) != 0)
		return 0;
	FUZZ_CHECK(smtp_parse_transid(m.transid, tid, sizeof(tid)) == 0, "TRANSID '%s'", m.transid);
	FUZZ_CHECK(strlen(m.envelope) == CKPT_KEY_LEN, "envelope '%s'", m.envelope);
	FUZZ_CHECK(strchr(m.data, '/') == NULL && m.data[0] != '.' && m.data[0] != '\0', "data '%s'", m.data);
	n = ckpt_meta_format(&m, buf, sizeof(buf));
	FUZZ_CHECK(n > 0, "an accepted record does not format: %d", n);
	FUZZ_CHECK(ckpt_meta_parse(buf, (size_t)n, &again) == 0 && memcmp(&m, &again, sizeof(m)) == 0,
	    "format then parse differs");
	return 0;
}
