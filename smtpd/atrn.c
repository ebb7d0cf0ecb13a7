/*
 * atrn.c - ATRN (RFC 2645): the argument, who may take which domain, and
 * the reply.  See atrn.h.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "atrn.h"

static void __attribute__((format(printf, 3, 4)))
atrn_set(struct atrn_reply *out, enum reply_id id, const char *fmt, ...)
{
	va_list ap;

	out->id = id;
	va_start(ap, fmt);
	vsnprintf(out->text, sizeof(out->text), fmt, ap);
	va_end(ap);
}

static bool
user_may_take(const struct cfg_odmr *o, const char *domain)
{
	size_t i;

	for (i = 0; i < o->ndomains; i++)
		if (strcasecmp(o->domains[i], domain) == 0)
			return true;
	return false;
}

/* The domains asked for, each the user's; or all of the user's.  False: out says why not. */
static bool
atrn_domains(const struct cfg_odmr *o, const char *user, const char *arg, struct atrn_reply *out)
{
	size_t i;

	if (*arg == '\0') {
		for (i = 0; o != NULL && i < o->ndomains; i++)
			snprintf(out->domains[i], sizeof(out->domains[i]), "%s", o->domains[i]);
		out->ndomains = o != NULL ? o->ndomains : 0;
		if (out->ndomains == 0) {
			atrn_set(out, REPLY_ATRN_REFUSED, "Access denied to domain: %s may take none", user);
			return false;
		}
		return true;
	}
	if (route_domain_list_parse(arg, out->domains, CFG_MAX_LIST, &out->ndomains) < 0) {
		atrn_set(out, REPLY_SYNTAX, "Syntax: ATRN [<domain>[,<domain>...]]");
		return false;
	}
	for (i = 0; i < out->ndomains; i++) {
		if (o == NULL || !user_may_take(o, out->domains[i])) {
			atrn_set(out, REPLY_ATRN_REFUSED, "Access denied to domain %s", out->domains[i]);
			return false;
		}
	}
	return true;
}

void
atrn_answer(const struct cfg *cfg, struct runner *runner, const char *user, const char *arg,
    struct atrn_reply *out)
{
	unsigned count = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if (!atrn_domains(cfg_odmr_find(cfg, user), user, arg, out))
		return;
	err = runner_atrn_check(runner, (const char (*)[ROUTE_HOST_MAX + 1])out->domains, out->ndomains, &count);
	if (err == -EBUSY)
		atrn_set(out, REPLY_ATRN_LOCKED, "Unable to process ATRN request now: another session has that domain");
	else if (err < 0)
		atrn_set(out, REPLY_ATRN_LOCKED, "Unable to process ATRN request now: the queue is busy");
	else if (count == 0)
		atrn_set(out, REPLY_NO_MAIL, "You have no mail");
	else {
		atrn_set(out, REPLY_OK, "OK, now reversing the connection");
		out->turn = true;
	}
}
