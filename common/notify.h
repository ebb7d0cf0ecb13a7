/*
 * NAME
 *	notify - tell the service manager how a daemon is doing
 * SYNOPSIS
 *	#include "notify.h"
 *
 *	void notify_ready(const char *status);
 *	void notify_stopping(void);
 * DESCRIPTION
 *	The units in etc/systemd/ start both daemons with Type=notify:
 *	systemd counts a daemon as started when it says so, not when its
 *	process exists, so spoolgate-fs (After=spoolgate-smtpd) starts only
 *	once every listener is bound and the spool is recovered, and a unit
 *	that needs the mount can order itself after spoolgate-fs.
 *
 *	notify_ready() sends READY=1 (and STATUS=status when it is not NULL)
 *	through libsystemd's sd_notify(3); notify_stopping() sends
 *	STOPPING=1.  Outside systemd ($NOTIFY_SOCKET unset: ./run, the
 *	tests) both do nothing.
 *
 *	libsystemd is optional at build time (meson: dependency libsystemd,
 *	required : false).  Built without it both functions do nothing, and
 *	meson writes the units with Type=simple, where systemd counts a
 *	daemon as started as soon as its process runs.
 * ERRORS
 *	None returned: a notification that cannot be sent is logged
 *	(event=notify, level warn) and the daemon goes on; systemd then
 *	times the start out (TimeoutStartSec=), which is what says it.
 * THREADS
 *	Call from the main thread (sd_notify is thread-safe, the log line
 *	is one write).
 */
#ifndef SPOOLGATE_NOTIFY_H
#define SPOOLGATE_NOTIFY_H

void notify_ready(const char *status);
void notify_stopping(void);

#endif
