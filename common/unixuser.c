/*
 * NAME
 *	unixuser - Unix users as the mail system sees them (see unixuser.h)
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cfg.h"

#include "unixuser.h"

#define PASSWD_BUF	4096

void
unixuser_login(uid_t uid, char *out, size_t outlen)
{
	struct passwd pw, *res = NULL;
	char buf[PASSWD_BUF];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(out, outlen, "%s", res->pw_name);
	else
		snprintf(out, outlen, "uid%lu", (unsigned long)uid);
}

int
unixuser_sender(const struct cfg *cfg, const char *login, const char *want, char *out, size_t outlen)
{
	int n;

	if (want != NULL && cfg_user_is_trusted(cfg, login)) {
		n = snprintf(out, outlen, "%s", want);
		return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
	}
	n = snprintf(out, outlen, "%s@%s", login, cfg_sender_domain(cfg));
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return want != NULL && !addr_same_mailbox(want, out) ? -EPERM : 0;
}

int
unixuser_mailbox_owner(const struct cfg *cfg, const char *mailbox, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[PASSWD_BUF];

	if (getpwnam_r(cfg_mailbox_owner(cfg, mailbox), &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -ENOENT;
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	return 0;
}

int
unixuser_origin_uid(const char *origin, uid_t *uid)
{
	const char *at = NULL, *p;
	unsigned long v;
	char *end;

	for (p = origin; (p = strstr(p, " uid=")) != NULL; p++)
		at = p;
	if (at == NULL)
		return -ENOENT;
	errno = 0;
	v = strtoul(at + 5, &end, 10);
	if (end == at + 5 || (*end != '\0' && *end != ' ') || errno != 0 || v != (uid_t)v)
		return -ENOENT;
	*uid = (uid_t)v;
	return 0;
}
