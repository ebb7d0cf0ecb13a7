/*
 * NAME
 *	notify - tell the service manager how a daemon is doing
 * DESCRIPTION
 *	See notify.h.  A thin layer over sd_notify(3), compiled to nothing
 *	when meson found no libsystemd (HAVE_LIBSYSTEMD undefined).
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "notify.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

static void
notify_send(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0)
		log_warn("notify", "state=%s error=\"%s\"", state, strerror(-r));
}

void
notify_ready(const char *status)
{
	char buf[512];

	if (status == NULL) {
		notify_send("READY=1");
		return;
	}
	snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status);
	notify_send(buf);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1");
}

#else /* !HAVE_LIBSYSTEMD */

void
notify_ready(const char *status)
{
	(void)status;
}

void
notify_stopping(void)
{
}

#endif
