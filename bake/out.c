/*
 * The output file. It is created nameless (O_TMPFILE) in the output's
 * directory where the filesystem allows, else under a hidden temporary
 * name; only a complete, fsync'd file is given the name the user asked
 * for. An interrupted run leaves nothing under that name.
 *
 * pep-bake writes regular files only: a name that holds anything else (a
 * device node, a FIFO, a socket, a directory, a symbolic link) is refused
 * before any work, and again at the rename, which would otherwise replace
 * it (`-o /dev/null` as root would replace the system's /dev/null).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "out.h"

/* "/.NAME.pep-XXXXXX" beyond the name itself, and the pid's digits. */
#define OUT_TMP_EXTRA	32

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

/* What a file that is not a regular file is, in words. */
static const char *
out_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISLNK(m))
		return "a symbolic link";
	return "not a regular file";
}

/* Refuse an existing path that is not a regular file. */
static int
out_check_type(const char *path, struct pep_err *e)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0;
	if (S_ISREG(st.st_mode))
		return 0;
	return pep_errf(e, PEP_EUSAGE, "%s: exists and is %s; pep-bake "
	    "writes only regular files and never replaces anything else "
	    "(name a new file%s)", path, out_kind(st.st_mode),
	    S_ISLNK(st.st_mode) ? ", or the link's target" : "");
}

/* The longest file name the output's directory takes (NAME_MAX). */
static long
out_name_max(const char *dir)
{
	long n = pathconf(dir, _PC_NAME_MAX);

	return n > 0 ? n : NAME_MAX;
}

int
out_check(const char *path, const char *input, struct pep_err *e)
{
	struct stat si, so;
	char *copy, *dir;
	size_t len;
	long max;
	int rc;

	rc = out_check_type(path, e);
	if (rc < 0)
		return rc;
	if (stat(path, &so) == 0 && stat(input, &si) == 0 &&
	    si.st_dev == so.st_dev && si.st_ino == so.st_ino)
		return pep_errf(e, PEP_EUSAGE, "%s: output is the input file "
		    "(the input is never modified)", path);
	copy = strdup(path);
	dir = out_dirname(path);
	if (copy == NULL || dir == NULL) {
		rc = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	len = strlen(basename(copy));
	max = out_name_max(dir);
	if (len > (size_t)max)
		rc = pep_errf(e, PEP_EUSAGE, "%s: file name too long (%zu "
		    "bytes; the directory takes at most %ld)", path, len,
		    max);
out:
	free(copy);
	free(dir);
	return rc;
}

/*
 * "<dir>/.<base><tail>", with <base> cut so the name fits in NAME_MAX:
 * an output name near the limit must not fail at the very end.
 */
static char *
out_tmpname(const char *path, const char *tail)
{
	char *dir = out_dirname(path);
	char *base = strdup(path);
	char *name = NULL, *b;
	size_t n, room;
	long max;

	if (dir == NULL || base == NULL)
		goto out;
	b = basename(base);
	max = out_name_max(dir);
	room = (size_t)max > 1 + strlen(tail) ? (size_t)max - 1 -
	    strlen(tail) : 0;
	n = strlen(dir) + strlen(b) + strlen(tail) + OUT_TMP_EXTRA;
	name = malloc(n);
	if (name != NULL)
		snprintf(name, n, "%s/.%.*s%s", dir, (int)room, b, tail);
out:
	free(dir);
	free(base);
	return name;
}

static void
out_arm_signal(const char *tmppath)
{
	if (strlen(tmppath) < sizeof(out_sigpath)) {
		memcpy(out_sigpath, tmppath, strlen(tmppath) + 1);
		out_sigarmed = 1;
	}
}

static int
out_mkstemp(struct out *o, struct pep_err *e)
{
	o->tmppath = out_tmpname(o->path, ".pep-XXXXXX");
	if (o->tmppath == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	o->fd = mkostemp(o->tmppath, O_CLOEXEC);
	if (o->fd < 0) {
		free(o->tmppath);
		o->tmppath = NULL;
		return pep_errf(e, errno, "%s: cannot create: %s", o->path,
		    strerror(errno));
	}
	out_arm_signal(o->tmppath);
	return 0;
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
		rc = out_mkstemp(o, e);
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

/* Give an O_TMPFILE file a visible temporary name beside the output. */
static int
out_link_tmpfile(struct out *o, struct pep_err *e)
{
	char tail[32];

	snprintf(tail, sizeof(tail), ".pep-%d", (int)getpid());
	o->tmppath = out_tmpname(o->path, tail);
	if (o->tmppath == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	out_arm_signal(o->tmppath);
	unlink(o->tmppath);
	if (linkat(AT_FDCWD, o->fdpath, AT_FDCWD, o->tmppath,
	    AT_SYMLINK_FOLLOW) < 0)
		return pep_errf(e, errno, "%s: cannot link: %s", o->path,
		    strerror(errno));
	return 0;
}

/*
 * The temporary file takes the output's name. Where nothing has that
 * name, RENAME_NOREPLACE makes sure nothing got it meanwhile; a regular
 * file there is replaced; anything else is refused (out_check_type).
 */
static int
out_rename(struct out *o, struct pep_err *e)
{
	int rc, tries;

	for (tries = 0; tries < 2; tries++) {
		rc = out_check_type(o->path, e);
		if (rc < 0)
			return rc;
		if (access(o->path, F_OK) == 0 || errno != ENOENT) {
			if (rename(o->tmppath, o->path) == 0)
				return 0;
			break;
		}
		if (renameat2(AT_FDCWD, o->tmppath, AT_FDCWD, o->path,
		    RENAME_NOREPLACE) == 0)
			return 0;
		if (errno == EINVAL || errno == ENOSYS) {
			if (rename(o->tmppath, o->path) == 0)
				return 0;
			break;
		}
		if (errno != EEXIST)
			break;
	}
	return pep_errf(e, errno, "%s: cannot rename %s: %s", o->path,
	    o->tmppath, strerror(errno));
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
	rc = out_rename(o, e);
	if (rc < 0)
		return rc;
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
