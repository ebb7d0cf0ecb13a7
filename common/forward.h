/*
 * NAME
 *	forward - the [forwards] table: RFC 5321 251 and 551
 * SYNOPSIS
 *	#include "forward.h"
 *
 *	const char *forward_find(const struct cfg *cfg, const char *addr);
 * DESCRIPTION
 *	A forward says that the user of a local address has moved: mail for
 *	alice@localhost goes to alice@example.net.  RFC 5321 3.4 gives the
 *	server two answers: "251 User not local; will forward to <new>"
 *	(forwarding = yes: the message is queued for the new address, as for
 *	a remote recipient) and "551 User not local; please try <new>"
 *	(forwarding = no: the client is told, nothing is accepted).  This is
 *	a table of its own, kept apart from any aliases file: one step (the
 *	new address is not looked up again), and its keys are addresses in
 *	local_domains (cfg.c checks that at load).
 *
 *	forward_find() returns the address addr ("local@domain") is
 *	forwarded to, or NULL.  The local part is compared exactly, the
 *	domain without regard to case (addr_same_mailbox()).  Linear in the
 *	table's length (at most CFG_MAX_FORWARDS).
 * OWNERSHIP
 *	The result points into cfg and lives as long as it.
 * THREADS
 *	Thread-safe: it only reads cfg.
 */
#ifndef SPOOLGATE_FORWARD_H
#define SPOOLGATE_FORWARD_H

#include "cfg.h"

const char *forward_find(const struct cfg *cfg, const char *addr);

#endif
