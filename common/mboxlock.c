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

int
mboxlock_shared(const struct spool *spool, const char *mailbox, int *fd)
{
	char path[PATH_MAX];
	struct stat st;
	int lfd, err;

	*fd = -1;
	if (mailbox[0] == '\0' || mailbox[0] == '.' || strchr(mailbox, '/') != NULL ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", mailbox, MBOXLOCK_NAME) >= sizeof(path))
		return -EINVAL;
	lfd = openat(spool_dirfd(spool, SPOOL_DIR_MAIL), path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (lfd < 0)
		return errno == ENOENT ? 0 : -errno;	/* no lock file (or no mailbox yet): not locked */
	err = fstat(lfd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : 0;
	if (err < 0) {
		close(lfd);
		return err;
	}
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
