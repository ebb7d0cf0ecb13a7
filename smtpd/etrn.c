/*
 * etrn.c - ETRN (RFC 1985): the argument, the policy, the queue run and
 * its reply.  See etrn.h.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/route.h"
#include "etrn.h"
#include "runner.h"

static void __attribute__((format(printf, 3, 4)))
etrn_set(struct etrn_reply *out, enum reply_id id, const char *fmt, ...)
{
	va_list ap;

	out->id = id;
	va_start(ap, fmt);
	vsnprintf(out->text, sizeof(out->text), fmt, ap);
	va_end(ap);
}

static void etrn_failed(int err, const char *arg, struct etrn_reply *out);

/* "#deferred": a run of the whole queue, for clients that may relay. */
static void
etrn_queue(struct runner *runner, bool may_relay, const char *arg, const struct route_node *node,
    struct etrn_reply *out)
{
	if (strcasecmp(node->name, ETRN_QUEUE_ALL) != 0)
		etrn_set(out, REPLY_ETRN_NOT_ALLOWED, "Node %s not allowed: no such queue (only #%s)", arg,
		    ETRN_QUEUE_ALL);
	else if (!may_relay)
		etrn_set(out, REPLY_ETRN_NOT_ALLOWED, "Node %s not allowed: only clients that may relay run "
		    "the whole queue", arg);
	else if (runner_flush_all(runner) < 0)
		etrn_failed(-ESHUTDOWN, arg, out);
	else
		etrn_set(out, REPLY_ETRN_STARTED, "OK, queuing for node %s started", arg);
}

/* The reply to runner_etrn()'s error. */
static void
etrn_failed(int err, const char *arg, struct etrn_reply *out)
{
	switch (err) {
	case -ENOENT:
		etrn_set(out, REPLY_ETRN_NOT_ALLOWED, "Node %s not allowed: not a domain this server holds mail for",
		    arg);
		break;
	case -EDESTADDRREQ:
		etrn_set(out, REPLY_ETRN_CANT_QUEUE, "Unable to queue messages for node %s: its route has no next "
		    "hop (hold without a target)", arg);
		break;
	case -ENOBUFS:
		etrn_set(out, REPLY_ETRN_CANT_QUEUE, "Unable to queue messages for node %s: too many released "
		    "messages wait, try again later", arg);
		break;
	default:
		etrn_set(out, REPLY_ETRN_CANT_QUEUE, "Unable to queue messages for node %s: %s", arg,
		    strerror(-err));
		break;
	}
}

void
etrn_answer(struct runner *runner, enum cfg_etrn_mode mode, bool may_relay, const char *arg,
    struct etrn_reply *out)
{
	struct runner_etrn_result res;
	struct route_node node;
	int err;

	if (mode == CFG_ETRN_NO) {
		etrn_set(out, REPLY_NOT_IMPLEMENTED, "%s", errmap_get(REPLY_NOT_IMPLEMENTED)->text);
		return;
	}
	if (route_node_parse(arg, &node) < 0) {
		etrn_set(out, REPLY_SYNTAX, "Syntax: ETRN <domain> | @<domain> | #<queue>");
		return;
	}
	if (mode == CFG_ETRN_RELAY && !may_relay) {
		etrn_set(out, REPLY_ETRN_NOT_ALLOWED, "Node %s not allowed: this client may not ask for queue runs",
		    arg);
		return;
	}
	if (node.kind == ROUTE_NODE_QUEUE) {
		etrn_queue(runner, may_relay, arg, &node, out);
		return;
	}
	if ((err = runner_etrn(runner, &node, &res)) < 0)
		etrn_failed(err, arg, out);
	else if (res.released > 0)
		etrn_set(out, REPLY_ETRN_COUNT, "OK, %u pending messages for node %s started", res.released, arg);
	else if (res.in_progress > 0)
		etrn_set(out, REPLY_ETRN_PENDING, "OK, pending messages for node %s started", arg);
	else
		etrn_set(out, REPLY_ETRN_NONE, "OK, no messages waiting for node %s", arg);
}
