/*
 * NAME
 *	mboxlock - a mailbox that a script has locked: 450 4.2.0
 * DESCRIPTION
 *	See mboxlock.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mboxlock.h"

/* "<mailbox>/.lock" below mail/: -EINVAL for a name that is no mailbox's. */
static int
mboxlock_path(const char *mailbox, char *path, size_t len)
{
	if (mailbox[0] == '\0' || mailbox[0] == '.' || strchr(mailbox, '/') != NULL ||
	    (size_t)snprintf(path, len, "%s/%s", mailbox, MBOXLOCK_NAME) >= len)
		return -EINVAL;
	return 0;
}

/* Opens the lock file with flags (O_RDONLY and more); a regular file only. -errno. */
static int
mboxlock_open_flags(const struct spool *spool, const char *mailbox, int flags)
{
	char path[PATH_MAX];
	struct stat st;
	int lfd, err;

	if ((err = mboxlock_path(mailbox, path, sizeof(path))) < 0)
		return err;
	lfd = openat(spool_dirfd(spool, SPOOL_DIR_MAIL), path,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | flags, MBOXLOCK_MODE);
	if (lfd < 0)
		return -errno;
	err = fstat(lfd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : 0;
	if (err < 0) {
		close(lfd);
		return err;
	}
	return lfd;
}

/*
 * A lock file made now belongs to the mailbox's owner, so that smtpd (the
 * spool's user) can open it whoever made it (spoolgate-fs may run as root).
 */
static int
mboxlock_give_to_mailbox_owner(const struct spool *spool, const char *mailbox, int lfd)
{
	struct stat dir, st;

	if (fstatat(spool_dirfd(spool, SPOOL_DIR_MAIL), mailbox, &dir, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fstat(lfd, &st) < 0)
		return -errno;
	if ((st.st_uid != dir.st_uid || st.st_gid != dir.st_gid) && fchown(lfd, dir.st_uid, dir.st_gid) < 0)
		return -errno;
	return 0;
}

int
mboxlock_open(const struct spool *spool, const char *mailbox, int *fd)
{
	int lfd = mboxlock_open_flags(spool, mailbox, O_CREAT | O_EXCL), err;

	if (lfd == -EEXIST)
		lfd = mboxlock_open_flags(spool, mailbox, 0);
	else if (lfd >= 0 && (err = mboxlock_give_to_mailbox_owner(spool, mailbox, lfd)) < 0) {
		close(lfd);
		lfd = err;
	}
	*fd = lfd;
	return lfd < 0 ? lfd : 0;
}

int
mboxlock_shared(const struct spool *spool, const char *mailbox, int *fd)
{
	int lfd, err;

	*fd = -1;
	if ((lfd = mboxlock_open_flags(spool, mailbox, 0)) < 0)
		return lfd == -ENOENT ? 0 : lfd;	/* no lock file (or no mailbox yet): not locked */
	if (flock(lfd, LOCK_SH | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		close(lfd);
		return err;
	}
	*fd = lfd;
	return 0;
}

void
mboxlock_release(int fd)
{
	if (fd >= 0)
		close(fd);		/* closing the last descriptor drops the flock */
}
