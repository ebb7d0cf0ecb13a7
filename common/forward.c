/*
 * NAME
 *	forward - the [forwards] table: RFC 5321 251 and 551
 * DESCRIPTION
 *	See forward.h.  cfg.c parses and checks the table; this is the lookup.
 */
#include <stddef.h>

#include "addr.h"
#include "forward.h"

const char *
forward_find(const struct cfg *cfg, const char *addr)
{
	size_t i;

	for (i = 0; i < cfg->n_forwards; i++)
		if (addr_same_mailbox(cfg->forwards[i].from, addr))
			return cfg->forwards[i].to;
	return NULL;
}
