/*
 * One disk is never booted twice: pep-run holds flock() on the disk for
 * its lifetime (shared with --snapshot, exclusive otherwise). The fd is
 * close-on-exec and deliberately never closed: the lock dies with us.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "runner.h"

int
disk_lock(const char *path, int shared, struct pep_err *e)
{
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pep_errf(e, errno, "%s: cannot open", path);
	r = flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB);
	if (r < 0) {
		r = errno;
		close(fd);
		if (r == EWOULDBLOCK)
			return pep_errf(e, EBUSY, "%s: disk in use by another "
			    "pep-run", path);
		return pep_errf(e, r, "%s: flock", path);
	}
	return fd;
}
