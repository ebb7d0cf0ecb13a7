/*
 * NAME
 *	fuzz_dsn_param - the DSN parameter values of RFC 3461 (dsnparam.h)
 * DESCRIPTION
 *	The input is one parameter value as a client sends it (after
 *	"NOTIFY=", "ORCPT=", "ENVID=", "RET=").  Properties: xtext decoding
 *	never grows and stays within its buffer; a NOTIFY list that parses
 *	formats back to a list that parses to the same bits, and NEVER stands
 *	alone; a value that passes dsn_orcpt_check() / dsn_envid_check() goes
 *	into an envelope record (envelope_set_rcpt_dsn / _request) and the
 *	record formats and parses back with the same value: what the session
 *	takes the record keeps, and a record never holds what the session
 *	would refuse.
 */
#include <errno.h>

#include "fuzz.h"
#include "common/dsnparam.h"
#include "common/envelope.h"

static void
check_record(const char *orcpt, const char *envid, unsigned notify)
{
	struct envelope env, back;
	char *text;
	size_t len;

	if (envelope_init(&env, "1.M1P1Q1", "a@b.example", NULL) < 0 || envelope_add_rcpt(&env, "c@d.example") < 0) {
		envelope_free(&env);
		return;
	}
	FUZZ_CHECK(envelope_set_rcpt_dsn(&env, 0, notify, orcpt) == 0, "rcpt-dsn refused: %#x '%s'", notify,
	    orcpt ? orcpt : "");
	FUZZ_CHECK(envelope_set_dsn_request(&env, DSN_RET_FULL, envid) == 0, "dsn-envid refused: '%s'",
	    envid ? envid : "");
	FUZZ_CHECK(envelope_format(&env, &text, &len) == 0, "record does not format");
	FUZZ_CHECK(envelope_parse(text, len, &back) == 0, "record does not parse back:\n%s", text);
	FUZZ_CHECK(back.rcpt[0].notify == notify, "notify %#x came back %#x", notify, back.rcpt[0].notify);
	FUZZ_CHECK((orcpt == NULL) == (back.rcpt[0].orcpt == NULL) &&
	    (orcpt == NULL || strcmp(orcpt, back.rcpt[0].orcpt) == 0), "orcpt changed");
	FUZZ_CHECK((envid == NULL) == (back.dsn_envid == NULL) &&
	    (envid == NULL || strcmp(envid, back.dsn_envid) == 0), "envid changed");
	free(text);
	envelope_free(&back);
	envelope_free(&env);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = fuzz_cstr(data, size), out[DSN_ORCPT_MAX + 1], text[DSN_NOTIFY_TEXT_MAX];
	unsigned notify = 0, again = 0;
	enum dsn_ret ret;
	ssize_t n;
	bool orcpt_ok, envid_ok;

	if (v == NULL)
		return 0;
	n = dsn_xtext_decode(v, strlen(v), out, sizeof(out));
	FUZZ_CHECK(n < 0 || ((size_t)n <= strlen(v) && out[n] == '\0'), "xtext grew or is not terminated");
	if (dsn_notify_parse(v, &notify) == 0) {
		FUZZ_CHECK(notify != 0 && (!(notify & DSN_NOTIFY_NEVER) || notify == DSN_NOTIFY_NEVER),
		    "NOTIFY bits %#x", notify);
		dsn_notify_format(notify, text, sizeof(text));
		FUZZ_CHECK(dsn_notify_parse(text, &again) == 0 && again == notify, "'%s' does not parse back", text);
	} else {
		notify = 0;
	}
	if (dsn_ret_parse(v, &ret) == 0)
		FUZZ_CHECK(ret == DSN_RET_FULL || ret == DSN_RET_HDRS, "RET %d", (int)ret);
	orcpt_ok = dsn_orcpt_check(v) == 0;
	envid_ok = dsn_envid_check(v) == 0;
	FUZZ_CHECK(!orcpt_ok || strlen(v) <= DSN_ORCPT_MAX, "ORCPT of %zu characters", strlen(v));
	check_record(orcpt_ok ? v : NULL, envid_ok ? v : NULL, notify);
	free(v);
	return 0;
}
