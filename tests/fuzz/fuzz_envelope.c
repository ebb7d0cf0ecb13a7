/*
 * NAME
 *	fuzz_envelope - envelope records (envelope.h)
 * DESCRIPTION
 *	A record crosses a process boundary (smtpd, the relay and the fs
 *	daemon read what the others wrote; anyone with access to the spool
 *	can edit one), so envelope_parse() takes any bytes.  When it accepts
 *	them, envelope_format() of the result must parse again into an equal
 *	envelope, and formatting that one must give the same bytes.  An
 *	inline record is formatted as the runner rewrites one: plain, its
 *	data_offset as parsed (from the file's start), "data: sealed" when it
 *	had a seal.
 */
#include "fuzz.h"
#include "common/envelope.h"

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
check_equal(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	FUZZ_CHECK(strcmp(a->id, b->id) == 0, "id '%s' != '%s'", a->id, b->id);
	FUZZ_CHECK(a->created == b->created, "created");
	FUZZ_CHECK(same_str(a->origin, b->origin), "origin");
	FUZZ_CHECK(same_str(a->from, b->from), "from");
	FUZZ_CHECK(a->data_offset == b->data_offset, "data_offset");
	FUZZ_CHECK(a->inline_data == b->inline_data && a->data_sealed == b->data_sealed, "data: line");
	FUZZ_CHECK(a->attempts == b->attempts, "attempts");
	FUZZ_CHECK(a->next_attempt == b->next_attempt, "next_attempt");
	FUZZ_CHECK(same_str(a->last_host, b->last_host), "last_host");
	FUZZ_CHECK(same_str(a->last_reply, b->last_reply), "last_reply");
	FUZZ_CHECK(same_str(a->dsn, b->dsn), "dsn");
	FUZZ_CHECK(same_str(a->dsn_delayed, b->dsn_delayed), "dsn_delayed");
	FUZZ_CHECK(same_str(a->rejected, b->rejected), "rejected");
	FUZZ_CHECK(same_str(a->conversion, b->conversion), "conversion");
	FUZZ_CHECK(same_str(a->last_tls, b->last_tls), "last_tls");
	FUZZ_CHECK(same_str(a->last_auth, b->last_auth), "last_auth");
	FUZZ_CHECK(a->nattempt == b->nattempt && a->nattempt <= ENVELOPE_ATTEMPTS_MAX, "nattempt");
	for (i = 0; i < a->nattempt; i++)
		FUZZ_CHECK(same_str(a->attempt[i], b->attempt[i]), "attempt %zu", i);
	FUZZ_CHECK(a->nrcpt == b->nrcpt, "nrcpt %zu != %zu", a->nrcpt, b->nrcpt);
	for (i = 0; i < a->nrcpt; i++) {
		FUZZ_CHECK(same_str(a->rcpt[i].addr, b->rcpt[i].addr), "rcpt %zu address", i);
		FUZZ_CHECK(a->rcpt[i].state == b->rcpt[i].state, "rcpt %zu state", i);
		FUZZ_CHECK(same_str(a->rcpt[i].reply, b->rcpt[i].reply), "rcpt %zu reply", i);
		FUZZ_CHECK(same_str(a->rcpt[i].host, b->rcpt[i].host), "rcpt %zu host", i);
		FUZZ_CHECK(a->rcpt[i].at == b->rcpt[i].at, "rcpt %zu at", i);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e1, e2;
	char *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;

	memset(&e1, 0, sizeof(e1));
	memset(&e2, 0, sizeof(e2));
	if (envelope_parse((const char *)data, size, &e1) != 0) {
		envelope_free(&e1);
		return 0;
	}
	FUZZ_CHECK(!e1.inline_sealed || (e1.inline_data && e1.seal_at < e1.text_len), "a seal out of place");
	if (e1.inline_data) {
		e1.inline_data = false;
		e1.data_sealed = e1.inline_sealed;
	}
	FUZZ_CHECK(envelope_format(&e1, &t1, &l1) == 0, "an accepted record does not format");
	FUZZ_CHECK(envelope_parse(t1, l1, &e2) == 0, "the formatted record does not parse:\n%.*s", (int)l1, t1);
	check_equal(&e1, &e2);
	FUZZ_CHECK(envelope_format(&e2, &t2, &l2) == 0, "the reparsed record does not format");
	FUZZ_CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0, "format, parse, format differs:\n%.*s\n---\n%.*s",
	    (int)l1, t1, (int)l2, t2);
	free(t1);
	free(t2);
	envelope_free(&e1);
	envelope_free(&e2);
	return 0;
}
