/*
 * NAME
 *	fuzz_relay_reply - the relay's SMTP reply parser (relay_smtp.h)
 * DESCRIPTION
 *	The bytes are what a smarthost answers.  The first octet chooses
 *	whether the reply answers EHLO (capabilities parsed); the rest is cut
 *	into lines at LF (a CR before it dropped, as relay.c reads them) and
 *	fed to relay_reply_line() until a reply is complete or refused, then
 *	the next reply begins.  Every complete reply has a code of 2xx..5xx,
 *	and its text starts with that code, is NUL-terminated at textlen,
 *	within RELAY_REPLY_TEXT_MAX, with no control or 8-bit octet (it goes
 *	into envelope records and logs); its enhanced code is short,
 *	printable and NUL-terminated.
 */
#include <errno.h>

#include "fuzz.h"
#include "smtpd/relay_smtp.h"

static void
check_reply(const struct relay_reply *r)
{
	char code[8];
	size_t i;

	FUZZ_CHECK(r->code >= 200 && r->code <= 599, "code %d", r->code);
	FUZZ_CHECK(r->textlen < RELAY_REPLY_TEXT_MAX && strlen(r->text) == r->textlen,
	    "textlen %zu, strlen %zu", r->textlen, strnlen(r->text, sizeof(r->text)));
	snprintf(code, sizeof(code), "%d", r->code);
	FUZZ_CHECK(strncmp(r->text, code, 3) == 0, "text '%s' does not start with %d", r->text, r->code);
	for (i = 0; i < r->textlen; i++)
		FUZZ_CHECK((unsigned char)r->text[i] >= 0x20 && (unsigned char)r->text[i] < 0x7f,
		    "byte 0x%02x in the text at %zu", (unsigned char)r->text[i], i);
	FUZZ_CHECK(strnlen(r->esc, sizeof(r->esc)) < sizeof(r->esc), "esc not terminated");
	for (i = 0; r->esc[i] != '\0'; i++)
		FUZZ_CHECK(r->esc[i] == '.' || (r->esc[i] >= '0' && r->esc[i] <= '9'), "esc '%s'", r->esc);
	(void)relay_reply_class(r->code);
	(void)relay_reply_is_rcpt_overflow(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_reply r;
	const char *p, *end, *nl;
	bool ehlo;

	if (size == 0)
		return 0;
	ehlo = data[0] & 1;
	p = (const char *)data + 1;
	end = (const char *)data + size;
	relay_reply_begin(&r, ehlo);
	while (p < end) {
		size_t len;
		char *line;
		int rc;

		nl = memchr(p, '\n', (size_t)(end - p));
		len = (size_t)((nl != NULL ? nl : end) - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		line = fuzz_cstr((const uint8_t *)p, len);	/* exactly len octets and a NUL */
		if (line == NULL)
			return 0;
		rc = relay_reply_line(&r, line, len);
		free(line);
		p = nl != NULL ? nl + 1 : end;
		if (rc == 1) {
			FUZZ_CHECK(r.done, "complete but not done");
			check_reply(&r);
			relay_reply_begin(&r, ehlo);
		} else if (rc < 0) {
			FUZZ_CHECK(rc == -EPROTO || rc == -E2BIG, "error %d", rc);
			relay_reply_begin(&r, ehlo);
		} else {
			FUZZ_CHECK(rc == 0, "return %d", rc);
		}
	}
	return 0;
}
