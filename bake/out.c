/*
 * The output file. It is created nameless (O_TMPFILE) in the output's
 * directory where the filesystem allows, else under a hidden temporary
 * name; only a complete, fsync'd file is given the name the user asked
 * for. An interrupted run leaves nothing under that name.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bake.h"

/* The visible temporary name, for the signal handler. */
static char out_sigpath[4096];
static volatile sig_atomic_t out_sigarmed;

static char *
out_dirname(const char *path)
{
	char *copy = strdup(path);
	char *dir;

	if (copy == NULL)
		return NULL;
	dir = strdup(dirname(copy));
	free(copy);
	return dir;
}

static int
out_mkstemp(struct out *o, const char *dir, struct pep_err *e)
{
	char *base = strdup(o->path);
	size_t n;
	int rc = 0;

	if (base == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	n = strlen(dir) + strlen(base) + 32;
	o->tmppath = malloc(n);
	if (o->tmppath == NULL) {
		rc = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	snprintf(o->tmppath, n, "%s/.%s.pep-XXXXXX", dir, basename(base));
	o->fd = mkostemp(o->tmppath, O_CLOEXEC);
	if (o->fd < 0) {
		rc = pep_errf(e, errno, "%s: cannot create: %s", o->path,
		    strerror(errno));
		free(o->tmppath);
		o->tmppath = NULL;
		goto out;
	}
	if (strlen(o->tmppath) < sizeof(out_sigpath)) {
		memcpy(out_sigpath, o->tmppath, strlen(o->tmppath) + 1);
		out_sigarmed = 1;
	}
out:
	free(base);
	return rc;
}

int
out_create(struct out *o, const char *path, struct pep_err *e)
{
	char *dir;
	int rc = 0;

	o->path = path;
	o->tmppath = NULL;
	o->fd = -1;
	dir = out_dirname(path);
	if (dir == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	o->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	if (o->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR ||
	    errno == EINVAL))
		rc = out_mkstemp(o, dir, e);
	else if (o->fd < 0)
		rc = pep_errf(e, errno, "%s: cannot create: %s", path,
		    strerror(errno));
	if (rc == 0) {
		fchmod(o->fd, 0644);
		snprintf(o->fdpath, sizeof(o->fdpath), "/proc/self/fd/%d",
		    o->fd);
	}
	free(dir);
	return rc;
}

static int
out_fsync_dir(const char *path)
{
	char *dir = out_dirname(path);
	int fd, rc = 0;

	if (dir == NULL)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) < 0 && errno != EINVAL)
			rc = -errno;
		close(fd);
	}
	free(dir);
	return rc;
}

/* "<dir>/.<base>.pep-<pid>": the name the finished file passes through. */
static char *
out_tmpname(const char *path)
{
	char *dir = out_dirname(path);
	char *base = strdup(path);
	char *name = NULL;
	size_t n;

	if (dir == NULL || base == NULL)
		goto out;
	n = strlen(dir) + strlen(base) + 40;
	name = malloc(n);
	if (name != NULL)
		snprintf(name, n, "%s/.%s.pep-%d", dir, basename(base),
		    (int)getpid());
out:
	free(dir);
	free(base);
	return name;
}

/* Give an O_TMPFILE file a visible temporary name beside the output. */
static int
out_link_tmpfile(struct out *o, struct pep_err *e)
{
	o->tmppath = out_tmpname(o->path);
	if (o->tmppath == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (strlen(o->tmppath) < sizeof(out_sigpath)) {
		memcpy(out_sigpath, o->tmppath, strlen(o->tmppath) + 1);
		out_sigarmed = 1;
	}
	unlink(o->tmppath);
	if (linkat(AT_FDCWD, o->fdpath, AT_FDCWD, o->tmppath,
	    AT_SYMLINK_FOLLOW) < 0)
		return pep_errf(e, errno, "%s: cannot link: %s", o->path,
		    strerror(errno));
	return 0;
}

int
out_commit(struct out *o, struct pep_err *e)
{
	int rc;

	if (fsync(o->fd) < 0)
		return pep_errf(e, errno, "%s: fsync: %s", o->path,
		    strerror(errno));
	if (o->tmppath == NULL) {
		rc = out_link_tmpfile(o, e);
		if (rc < 0)
			return rc;
	}
	if (rename(o->tmppath, o->path) < 0)
		return pep_errf(e, errno, "%s: cannot rename %s: %s",
		    o->path, o->tmppath, strerror(errno));
	out_sigarmed = 0;
	free(o->tmppath);
	o->tmppath = NULL;
	rc = out_fsync_dir(o->path);
	if (rc < 0)
		return pep_errf(e, rc, "%s: fsync of directory: %s", o->path,
		    strerror(-rc));
	close(o->fd);
	o->fd = -1;
	return 0;
}

void
out_abort(struct out *o)
{
	out_sigarmed = 0;
	if (o->tmppath != NULL) {
		unlink(o->tmppath);
		free(o->tmppath);
		o->tmppath = NULL;
	}
	if (o->fd >= 0) {
		close(o->fd);
		o->fd = -1;
	}
}

void
out_abort_signal(void)
{
	if (out_sigarmed)
		unlink(out_sigpath);
}
