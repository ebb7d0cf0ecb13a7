/*
 * NAME
 *	atrn - the answer to ATRN (RFC 2645, On-Demand Mail Relay)
 * SYNOPSIS
 *	#include "atrn.h"
 *
 *	void atrn_answer(const struct cfg *cfg, struct runner *runner,
 *	    const char *user, const char *arg, struct atrn_reply *out);
 * DESCRIPTION
 *	On a listener with odmr = yes, an authenticated client (the session
 *	answers 530 5.7.0 before AUTH, 502 5.5.1 on other listeners) asks with
 *	"ATRN [domain[,domain...]]" for the held mail of its domains ([odmr]
 *	in the configuration says which user may take which; no argument:
 *	all of them; route_domain_list_parse() reads the argument).
 *	atrn_answer() decides the reply:
 *
 *	    250 2.0.0 OK, now reversing the connection	(out->turn: the
 *		session hands its connection to runner_atrn_start())
 *	    450 4.7.0 Access denied to domain <d>	(not the user's)
 *	    451 4.4.0 Unable to process ATRN request now	(another session has
 *		one of the domains, too many sessions, stopping)
 *	    453 4.7.0 You have no mail
 *	    501 5.5.4 a malformed argument
 * THREADS
 *	Event loop thread (it calls the runner).
 */
#ifndef SPOOLGATE_ATRN_H
#define SPOOLGATE_ATRN_H

#include <stdbool.h>

#include "../common/cfg.h"
#include "../common/errmap.h"
#include "../common/route.h"
#include "runner.h"

struct atrn_reply {
	enum reply_id	id;
	char		text[400];
	bool		turn;		/* 250: reverse the connection now */
	char		domains[CFG_MAX_LIST][ROUTE_HOST_MAX + 1];
	size_t		ndomains;
};

void atrn_answer(const struct cfg *cfg, struct runner *runner, const char *user, const char *arg,
    struct atrn_reply *out);

#endif
