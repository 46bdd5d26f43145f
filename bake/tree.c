/*
 * --copy-in: a host file or directory tree into the image, as mkfs.ext4
 * -d copies one: numeric owners, permission bits, mtimes (nanoseconds
 * too; clamped to the bake's epoch, fs_clamp_mtime), symlinks as symlinks (never followed), hard links as hard links,
 * devices, FIFOs, sockets, extended attributes (security.capability
 * among them) and holes. Directories are walked in name order, so the
 * image's bytes do not depend on the host filesystem's readdir order; a
 * directory's own metadata is set after its entries.
 *
 * Into an existing directory the tree merges: a directory there is kept
 * (and given the host's metadata), anything else with the same name is
 * replaced; a directory is never replaced by a non-directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "content.h"

#define TREE_XATTR_LIST	65536	/* names of one file's attributes */
#define TREE_XATTR_VAL	65536	/* one value (ext4: one block at most) */

/* Host files with several links already copied: (dev, ino) -> node. */
struct tree_link {
	dev_t dev;
	ino_t ino;
	uint64_t node;
};

struct tree {
	struct fsdir *d;
	struct content_result *res;
	struct tree_link *links;	/* open addressing, cap a power of 2 */
	size_t nlinks, cap;
	char path[PATH_MAX];		/* the host path being copied */
	char *xnames;
	char *xval;
};

static size_t
tree_hash(dev_t dev, ino_t ino, size_t cap)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;

	return (size_t)(h ^ h >> 29) & (cap - 1);
}

static struct tree_link *
tree_link_find(struct tree *t, dev_t dev, ino_t ino)
{
	size_t i;

	if (t->cap == 0)
		return NULL;
	for (i = tree_hash(dev, ino, t->cap); t->links[i].node != 0;
	    i = (i + 1) & (t->cap - 1))
		if (t->links[i].dev == dev && t->links[i].ino == ino)
			return &t->links[i];
	return NULL;
}

static int
tree_link_add(struct tree *t, dev_t dev, ino_t ino, uint64_t node)
{
	struct tree_link *old = t->links;
	size_t i, oldcap = t->cap;

	if (2 * (t->nlinks + 1) > t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->links = calloc(t->cap, sizeof(*t->links));
		if (t->links == NULL) {
			t->links = old;
			t->cap = oldcap;
			return -ENOMEM;
		}
		t->nlinks = 0;
		for (i = 0; i < oldcap; i++)
			if (old[i].node != 0)
				tree_link_add(t, old[i].dev, old[i].ino,
				    old[i].node);
		free(old);
	}
	for (i = tree_hash(dev, ino, t->cap); t->links[i].node != 0;
	    i = (i + 1) & (t->cap - 1))
		;
	t->links[i].dev = dev;
	t->links[i].ino = ino;
	t->links[i].node = node;
	t->nlinks++;
	return 0;
}

static void
tree_meta(const struct tree *t, const struct stat *st, struct fs_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->mode = st->st_mode;
	m->uid = st->st_uid;
	m->gid = st->st_gid;
	m->mtime = st->st_mtim.tv_sec;
	m->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
	m->rdev_major = major(st->st_rdev);
	m->rdev_minor = minor(st->st_rdev);
	fs_clamp_mtime(m, t->d->now);
}

static int
tree_host_err(struct tree *t, int err, const char *what, struct pep_err *e)
{
	return pep_errf(e, err, "%s: %s: %s", t->path, what, strerror(err));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The host path's extended attributes onto node, in name order. */
static int
tree_xattrs(struct tree *t, uint64_t node, struct pep_err *e)
{
	char *names[512], *p;
	ssize_t len, vlen;
	size_t n = 0, i;
	int r = 0;

	len = llistxattr(t->path, t->xnames, TREE_XATTR_LIST);
	if (len < 0 && (errno == ENOTSUP || errno == ENODATA))
		return 0;
	if (len < 0)
		return tree_host_err(t, errno, "listing attributes", e);
	for (p = t->xnames; p < t->xnames + len && n < 512;
	    p += strlen(p) + 1)
		names[n++] = p;
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (i = 0; i < n && r == 0; i++) {
		vlen = lgetxattr(t->path, names[i], t->xval, TREE_XATTR_VAL);
		if (vlen < 0)
			return tree_host_err(t, errno, names[i], e);
		r = t->d->ops->set_xattr(t->d, node, names[i], t->xval,
		    (size_t)vlen, e);
	}
	return r;
}

static int tree_node(struct tree *t, int dirfd, const char *hname,
    uint64_t parent, const char *name, int depth, struct pep_err *e);

/* Names in the host directory fd, sorted; free each and the vector. */
static int
tree_names(struct tree *t, int fd, char ***v, size_t *n, struct pep_err *e)
{
	DIR *dir = fdopendir(dup(fd));
	struct dirent *de;
	char **nv;
	size_t cap = 0;
	int r = 0;

	*v = NULL;
	*n = 0;
	if (dir == NULL)
		return tree_host_err(t, errno, "opening", e);
	while (r == 0 && (errno = 0, de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			nv = realloc(*v, cap * sizeof(*nv));
			if (nv == NULL) {
				r = pep_errf(e, ENOMEM, "out of memory");
				break;
			}
			*v = nv;
		}
		(*v)[*n] = strdup(de->d_name);
		if ((*v)[*n] == NULL)
			r = pep_errf(e, ENOMEM, "out of memory");
		else
			(*n)++;
	}
	if (r == 0 && errno != 0)
		r = tree_host_err(t, errno, "reading", e);
	closedir(dir);
	if (*n > 0)
		qsort(*v, *n, sizeof(**v), cmp_str);
	return r;
}

static int
tree_dir_entries(struct tree *t, int dirfd, const char *hname,
    uint64_t node, int depth, struct pep_err *e)
{
	char **names = NULL;
	size_t n = 0, i, plen = strlen(t->path);
	int fd, r;

	fd = openat(dirfd, hname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd < 0)
		return tree_host_err(t, errno, "opening", e);
	r = tree_names(t, fd, &names, &n, e);
	for (i = 0; r == 0 && i < n; i++) {
		if (plen + 1 + strlen(names[i]) >= sizeof(t->path)) {
			r = pep_errf(e, ENAMETOOLONG, "%s/%s: path too long",
			    t->path, names[i]);
			break;
		}
		snprintf(t->path + plen, sizeof(t->path) - plen, "/%s",
		    names[i]);
		r = tree_node(t, fd, names[i], node, names[i], depth + 1, e);
		t->path[plen] = '\0';
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	close(fd);
	return r;
}

static int
tree_file_data(struct tree *t, int dirfd, const char *hname,
    const struct stat *st, uint64_t node, struct pep_err *e)
{
	int fd, r;

	fd = openat(dirfd, hname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return tree_host_err(t, errno, "opening", e);
	r = fsdir_copy_fd(t->d, node, fd, (uint64_t)st->st_size, t->path, e);
	close(fd);
	t->res->bytes += (uint64_t)st->st_size;
	return r;
}

/* Make room for name in parent: a directory stays (1), anything else is
 * removed (0); a non-directory over a directory is refused. */
static int
tree_clear(struct tree *t, uint64_t parent, const char *name,
    const struct stat *st, struct fs_node *old, struct pep_err *e)
{
	int r;

	r = t->d->ops->lookup(t->d, parent, name, old, e);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (S_ISDIR(old->mode) && S_ISDIR(st->st_mode))
		return 1;
	if (S_ISDIR(old->mode))
		return pep_errf(e, EISDIR, "%s: %s is a directory in the "
		    "image; %s would replace it", t->d->label, name, t->path);
	r = t->d->ops->unlink(t->d, parent, name, e);
	return r < 0 ? r : 0;
}

static int
tree_make(struct tree *t, int dirfd, const char *hname, const struct stat *st,
    uint64_t parent, const char *name, struct fs_node *n, struct pep_err *e)
{
	char target[FS_SYMLINK_MAX + 1];
	struct fs_meta m;
	ssize_t len;

	tree_meta(t, st, &m);
	if (!S_ISLNK(st->st_mode))
		return t->d->ops->make(t->d, parent, name, &m, NULL, n, e);
	len = readlinkat(dirfd, hname, target, sizeof(target));
	if (len < 0)
		return tree_host_err(t, errno, "reading the link", e);
	if ((size_t)len >= sizeof(target) || len == 0)
		return pep_errf(e, ENAMETOOLONG, "%s: a symlink target of "
		    "%zd bytes", t->path, len);
	target[len] = '\0';
	return t->d->ops->make(t->d, parent, name, &m, target, n, e);
}

static int
tree_node(struct tree *t, int dirfd, const char *hname, uint64_t parent,
    const char *name, int depth, struct pep_err *e)
{
	struct tree_link *l;
	struct fs_node n;
	struct fs_meta m;
	struct stat st;
	int r, kept;

	if (depth > PATH_MAX / 2)
		return pep_errf(e, ELOOP, "%s: nested too deep", t->path);
	if (fstatat(dirfd, hname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return tree_host_err(t, errno, "stat", e);
	kept = tree_clear(t, parent, name, &st, &n, e);
	if (kept < 0)
		return kept;
	l = !S_ISDIR(st.st_mode) && st.st_nlink > 1 ?
	    tree_link_find(t, st.st_dev, st.st_ino) : NULL;
	if (l != NULL) {
		t->res->links++;
		return t->d->ops->link(t->d, parent, name, l->node, e);
	}
	r = kept ? 0 : tree_make(t, dirfd, hname, &st, parent, name, &n, e);
	if (r == 0 && !S_ISDIR(st.st_mode) && st.st_nlink > 1 &&
	    tree_link_add(t, st.st_dev, st.st_ino, n.id) < 0)
		r = pep_errf(e, ENOMEM, "out of memory");
	if (r == 0 && S_ISREG(st.st_mode))
		r = tree_file_data(t, dirfd, hname, &st, n.id, e);
	if (r == 0)
		r = tree_xattrs(t, n.id, e);
	if (r == 0 && S_ISDIR(st.st_mode))
		r = tree_dir_entries(t, dirfd, hname, n.id, depth, e);
	if (r == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
		tree_meta(t, &st, &m);
		r = t->d->ops->set_meta(t->d, n.id, FS_SET_MODE |
		    FS_SET_OWNER | FS_SET_MTIME, &m, e);
	}
	if (r == 0 && S_ISDIR(st.st_mode))
		t->res->dirs++;
	else if (r == 0)
		t->res->files++;
	return r;
}

/* The host path's last name, and its directory open. */
static int
tree_split(const char *host, char *name, size_t n, int *dirfd,
    struct pep_err *e)
{
	char copy[PATH_MAX], *slash, *base;
	size_t len = strlen(host);

	if (len == 0 || len >= sizeof(copy))
		return pep_errf(e, PEP_EUSAGE, "%s: bad host path", host);
	memcpy(copy, host, len + 1);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	slash = strrchr(copy, '/');
	base = slash != NULL ? slash + 1 : copy;
	if (strlen(base) >= n)
		return pep_errf(e, ENAMETOOLONG, "%s: name longer than %zu "
		    "bytes", host, n - 1);
	memcpy(name, base, strlen(base) + 1);
	if (name[0] == '\0' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return pep_errf(e, PEP_EUSAGE, "%s: name the directory to copy "
		    "by its own name (not /, . or ..)", host);
	if (slash == copy)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	*dirfd = open(slash != NULL ? copy : ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	if (*dirfd < 0)
		return pep_errf(e, errno, "%s: %s", host, strerror(errno));
	return 0;
}

int
tree_copy_in(struct fsdir *d, const char *host, const char *dir,
    struct content_result *res, struct pep_err *e)
{
	struct tree t;
	struct fs_node top;
	char name[FS_NAME_MAX + 1];
	int dirfd = -1, r;

	memset(&t, 0, sizeof(t));
	t.d = d;
	t.res = res;
	t.xnames = malloc(TREE_XATTR_LIST);
	t.xval = malloc(TREE_XATTR_VAL);
	if (t.xnames == NULL || t.xval == NULL) {
		r = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	r = fsdir_stat(d, dir, &top, e);
	if (r == -ENOENT)
		r = pep_errf(e, ENOENT, "%s: %s: no such directory (copy-in "
		    "puts %s there)", d->label, dir, host);
	else if (r == 0 && !S_ISDIR(top.mode))
		r = pep_errf(e, ENOTDIR, "%s: %s: is %s, not a directory",
		    d->label, dir, fs_kind(top.mode));
	if (r == 0)
		r = tree_split(host, name, sizeof(name), &dirfd, e);
	if (r == 0) {
		snprintf(t.path, sizeof(t.path), "%s", host);
		r = tree_node(&t, dirfd, name, top.id, name, 0, e);
	}
out:
	if (dirfd >= 0)
		close(dirfd);
	free(t.links);
	free(t.xnames);
	free(t.xval);
	return r;
}
