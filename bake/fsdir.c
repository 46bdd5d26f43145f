/*
 * Paths inside an image, and what every writer needs on top of a
 * backend's ops: mkdir -p, put a whole file, remove a tree, copy a host
 * file's data with its holes. See fsdir.h for the resolution rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/vec.h"
#include "fsdir.h"

#define FS_PATH_MAX	8192	/* a path with its symlinks expanded */
#define FS_COPY_CHUNK	(1u << 20)

const char *
fs_kind(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFLNK: return "a symbolic link";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFIFO: return "a FIFO";
	case S_IFSOCK: return "a socket";
	default: return "of an unknown type";
	}
}

int
fs_join(char *buf, size_t size, const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);

	while (dl > 0 && dir[dl - 1] == '/')
		dl--;
	if (dl + 1 + nl >= size)
		return -ENAMETOOLONG;
	memmove(buf, dir, dl);
	buf[dl] = '/';
	memmove(buf + dl + 1, name, nl + 1);
	return 0;
}

/*
 * The walk: directories from the root (depth 0) down to where it is, the
 * text of that path for messages, and what is still to be walked.
 */
struct fs_walk {
	struct fsdir *d;
	const char *path;	/* as given, for messages */
	const char *base;	/* a walk kept inside this directory, or NULL */
	uint64_t *stack;
	size_t depth;
	size_t floor;		/* the base's depth (0: the root) */
	uint64_t base_id;
	char done[FS_PATH_MAX];
	char rest[FS_PATH_MAX];
	int hops;
};

static int
walk_push(struct fs_walk *w, uint64_t node, const char *name,
    struct pep_err *e)
{
	size_t n = strlen(w->done);

	if (w->depth + 1 >= FS_PATH_MAX / 2 ||
	    n + 1 + strlen(name) >= sizeof(w->done))
		return pep_errf(e, ENAMETOOLONG, "%s: %s: path too long",
		    w->d->label, w->path);
	w->stack[++w->depth] = node;
	snprintf(w->done + n, sizeof(w->done) - n, "%s%s",
	    n > 1 ? "/" : "", name);
	return 0;
}

/* 1 while the walk is in its base directory or under it. */
static int
walk_inside(const struct fs_walk *w)
{
	return w->depth >= w->floor && w->stack[w->floor] == w->base_id;
}

static int
walk_out(const struct fs_walk *w, struct pep_err *e)
{
	return pep_errf(e, PEP_EUSAGE, "%s: %s: leads out of %s (through an "
	    "absolute symlink)", w->d->label, w->path, w->base);
}

static int
walk_pop(struct fs_walk *w, const char *why, struct pep_err *e)
{
	char *slash;

	if (w->depth == 0)
		return pep_errf(e, PEP_EUSAGE, "%s: %s: %s climbs above the "
		    "image's root", w->d->label, w->path, why);
	if (w->base != NULL && w->depth == w->floor && walk_inside(w))
		return pep_errf(e, PEP_EUSAGE, "%s: %s: %s climbs out of %s",
		    w->d->label, w->path, why, w->base);
	w->depth--;
	slash = strrchr(w->done, '/');
	if (slash == w->done)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	return 0;
}

/* The next component of w->rest into name; 1 if one, 0 at the end. */
static int
walk_next(struct fs_walk *w, char *name, int *last, struct pep_err *e)
{
	char *p = w->rest, *end;
	size_t n;

	while (*p == '/')
		p++;
	if (*p == '\0')
		return 0;
	end = p + strcspn(p, "/");
	n = (size_t)(end - p);
	if (n > FS_NAME_MAX)
		return pep_errf(e, ENAMETOOLONG, "%s: %s: a name longer than "
		    "%d bytes", w->d->label, w->path, FS_NAME_MAX);
	memcpy(name, p, n);
	name[n] = '\0';
	while (*end == '/')
		end++;
	*last = *end == '\0';
	memmove(w->rest, end, strlen(end) + 1);
	return 1;
}

/* Walk into the symlink at node: its target, then what was left. */
static int
walk_symlink(struct fs_walk *w, uint64_t node, const char *name,
    struct pep_err *e)
{
	char target[FS_SYMLINK_MAX + 1], next[FS_PATH_MAX];
	int r;

	if (++w->hops > FS_HOPS_MAX)
		return pep_errf(e, ELOOP, "%s: %s: too many levels of "
		    "symbolic links", w->d->label, w->path);
	r = w->d->ops->readlink(w->d, node, target, sizeof(target), e);
	if (r < 0)
		return r;
	if ((size_t)snprintf(next, sizeof(next), "%s/%s", target, w->rest) >=
	    sizeof(next))
		return pep_errf(e, ENAMETOOLONG, "%s: %s: path too long",
		    w->d->label, w->path);
	memcpy(w->rest, next, sizeof(next));
	if (target[0] == '/') {
		w->depth = 0;
		snprintf(w->done, sizeof(w->done), "/");
	}
	(void)name;
	return 0;
}

/* A missing directory on the way: make it (FS_MKDIRS) or fail. */
static int
walk_missing(struct fs_walk *w, const char *name, unsigned flags,
    const struct fs_meta *dm, struct fs_node *n, struct pep_err *e)
{
	struct fs_meta m;

	if (!(flags & FS_MKDIRS) || dm == NULL)
		return pep_errf(e, ENOENT, "%s: %s: no such directory %s%s%s",
		    w->d->label, w->path, w->done,
		    strcmp(w->done, "/") == 0 ? "" : "/", name);
	if (w->base != NULL && !walk_inside(w))
		return walk_out(w, e);
	m = *dm;
	m.mode = S_IFDIR | (dm->mode & 07777);
	return w->d->ops->make(w->d, w->stack[w->depth], name, &m, NULL, n,
	    e);
}

/* One component before the last: a directory to go into. */
static int
walk_step(struct fs_walk *w, const char *name, unsigned flags,
    const struct fs_meta *dm, struct pep_err *e)
{
	struct fs_node n;
	int r;

	if (strcmp(name, ".") == 0)
		return 0;
	if (strcmp(name, "..") == 0)
		return walk_pop(w, "\"..\"", e);
	r = w->d->ops->lookup(w->d, w->stack[w->depth], name, &n, e);
	if (r == -ENOENT)
		r = walk_missing(w, name, flags, dm, &n, e);
	if (r < 0)
		return r;
	if (S_ISLNK(n.mode))
		return walk_symlink(w, n.id, name, e);
	if (!S_ISDIR(n.mode))
		return pep_errf(e, ENOTDIR, "%s: %s: %s%s%s is %s, not a "
		    "directory", w->d->label, w->path, w->done,
		    strcmp(w->done, "/") == 0 ? "" : "/", name,
		    fs_kind(n.mode));
	return walk_push(w, n.id, name, e);
}

/* The last component: where it is; a symlink there is followed (if so
 * asked) by walking its target instead. 1 when done, 0 to go on. */
static int
walk_last(struct fs_walk *w, const char *name, unsigned flags,
    struct fs_where *where, struct pep_err *e)
{
	int r;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return pep_errf(e, PEP_EUSAGE, "%s: %s: ends in \"%s\": name "
		    "the file itself", w->d->label, w->path, name);
	where->parent = w->stack[w->depth];
	snprintf(where->name, sizeof(where->name), "%s", name);
	r = w->d->ops->lookup(w->d, where->parent, name, &where->node, e);
	if (r == -ENOENT) {
		where->exists = 0;
		return 1;
	}
	if (r < 0)
		return r;
	where->exists = 1;
	if (!(flags & FS_FOLLOW) || !S_ISLNK(where->node.mode))
		return 1;
	where->via_link = 1;
	r = walk_symlink(w, where->node.id, name, e);
	return r < 0 ? r : 0;
}

/* Walk w->rest from where w is; fills where. */
static int
walk_all(struct fs_walk *w, unsigned flags, const struct fs_meta *dm,
    struct fs_where *where, struct pep_err *e)
{
	char name[FS_NAME_MAX + 1];
	int r, last = 0;

	for (;;) {
		r = walk_next(w, name, &last, e);
		if (r < 0)
			return r;
		if (r == 0)
			return pep_errf(e, PEP_EUSAGE, "%s: %s: names the "
			    "directory itself, not something in it",
			    w->d->label, w->path);
		r = last ? walk_last(w, name, flags, where, e) :
		    walk_step(w, name, flags, dm, e);
		if (r < 0)
			return r;
		if (last && r == 1)
			break;
	}
	if (w->base != NULL && !walk_inside(w))
		return walk_out(w, e);
	return 0;
}

static struct fs_walk *
walk_new(struct fsdir *d, const char *path, struct pep_err *e)
{
	struct fs_walk *w = calloc(1, sizeof(*w));

	if (w != NULL)
		w->stack = calloc(FS_PATH_MAX / 2 + 1, sizeof(w->stack[0]));
	if (w == NULL || w->stack == NULL) {
		free(w);
		pep_errf(e, ENOMEM, "out of memory");
		return NULL;
	}
	w->d = d;
	w->path = path;
	w->stack[0] = d->ops->root(d);
	w->base_id = w->stack[0];
	snprintf(w->done, sizeof(w->done), "/");
	return w;
}

static void
walk_free(struct fs_walk *w)
{
	if (w != NULL)
		free(w->stack);
	free(w);
}

/* Walk to the directory base itself: it becomes the floor. */
static int
walk_base(struct fs_walk *w, const char *base, struct pep_err *e)
{
	char name[FS_NAME_MAX + 1];
	int r, last;

	snprintf(w->rest, sizeof(w->rest), "%s", base);
	for (;;) {
		r = walk_next(w, name, &last, e);
		if (r <= 0)
			break;
		r = walk_step(w, name, 0, NULL, e);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	w->floor = w->depth;
	w->base_id = w->stack[w->depth];
	w->base = base;
	return 0;
}

int
fsdir_resolve_in(struct fsdir *d, const char *base, const char *path,
    unsigned flags, const struct fs_meta *dir_meta, struct fs_where *where,
    struct pep_err *e)
{
	struct fs_walk *w;
	int r = 0;

	memset(where, 0, sizeof(*where));
	if (base == NULL ? path[0] != '/' : base[0] != '/' || path[0] == '/')
		return pep_errf(e, PEP_EUSAGE, "%s: %s: %s", d->label, path,
		    base == NULL ? "not an absolute path" :
		    "an absolute name where a relative one belongs");
	if (strlen(path) >= FS_PATH_MAX ||
	    (base != NULL && strlen(base) >= FS_PATH_MAX))
		return pep_errf(e, ENAMETOOLONG, "%s: path too long",
		    d->label);
	w = walk_new(d, path, e);
	if (w == NULL)
		return -ENOMEM;
	if (base != NULL)
		r = walk_base(w, base, e);
	if (r == 0) {
		snprintf(w->rest, sizeof(w->rest), "%s", path);
		r = walk_all(w, flags, dir_meta, where, e);
	}
	walk_free(w);
	return r;
}

int
fsdir_resolve(struct fsdir *d, const char *path, unsigned flags,
    const struct fs_meta *dir_meta, struct fs_where *where,
    struct pep_err *e)
{
	return fsdir_resolve_in(d, NULL, path, flags, dir_meta, where, e);
}

int
fsdir_stat(struct fsdir *d, const char *path, struct fs_node *n,
    struct pep_err *e)
{
	struct fs_where w;
	int r;

	if (strcmp(path, "/") == 0) {
		memset(n, 0, sizeof(*n));
		n->id = d->ops->root(d);
		n->mode = S_IFDIR | 0755;
		return 0;
	}
	r = fsdir_resolve(d, path, FS_FOLLOW, NULL, &w, e);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return r;
	if (!w.exists)
		return -ENOENT;
	*n = w.node;
	return 0;
}

static int
mkdir_p(struct fsdir *d, const char *path, const struct fs_meta *m,
    struct pep_err *e)
{
	struct fs_where w;
	struct fs_meta dm = *m;
	struct fs_node n;
	int r;

	dm.mode = S_IFDIR | (m->mode & 07777);
	r = fsdir_resolve(d, path, FS_FOLLOW | FS_MKDIRS, &dm, &w, e);
	if (r < 0)
		return r;
	if (w.exists && S_ISDIR(w.node.mode))
		return 0;
	if (w.exists || w.via_link)
		return pep_errf(e, EEXIST, "%s: %s: exists and is %s", d->label,
		    path, w.exists ? fs_kind(w.node.mode) :
		    "a dangling symlink");
	return d->ops->make(d, w.parent, w.name, &dm, NULL, &n, e);
}

static int
put(struct fsdir *d, const char *path, const void *buf, size_t len,
    const struct fs_meta *m, unsigned flags, const struct fs_meta *dir_meta,
    struct pep_err *e)
{
	struct fs_where w;
	struct fs_meta fm = *m;
	int r;

	r = fsdir_resolve(d, path, FS_FOLLOW | (flags & FS_MKDIRS), dir_meta,
	    &w, e);
	if (r < 0)
		return r;
	if (!w.exists && w.via_link)
		return pep_errf(e, ENOENT, "%s: %s: dangling symlink",
		    d->label, path);
	if (w.exists && !S_ISREG(w.node.mode))
		return pep_errf(e, EEXIST, "%s: %s: exists and is %s, not a "
		    "regular file", d->label, path, fs_kind(w.node.mode));
	if (!w.exists) {
		fm.mode = S_IFREG | (m->mode & 07777);
		r = d->ops->make(d, w.parent, w.name, &fm, NULL, &w.node, e);
	} else {
		r = d->ops->truncate(d, w.node.id, 0, e);
	}
	if (r == 0)
		r = d->ops->write(d, w.node.id, 0, buf, len, e);
	if (r == 0 && w.exists)
		r = d->ops->set_meta(d, w.node.id, FS_SET_MTIME, m, e);
	return r;
}

/* Names in a directory, copied out: the walk must not change it. */
struct fs_names {
	char **v;
	size_t n, cap;
	int oom;
};

static int
names_add(void *arg, const char *name, const struct fs_node *n)
{
	struct fs_names *l = arg;

	(void)n;
	if (vec_room((void **)&l->v, l->n, &l->cap, sizeof(*l->v)) < 0) {
		l->oom = 1;
		return 1;
	}
	l->v[l->n] = strdup(name);
	if (l->v[l->n] == NULL) {
		l->oom = 1;
		return 1;
	}
	l->n++;
	return 0;
}

static void
names_free(struct fs_names *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Remove name in dir, a directory with everything under it. */
static int
remove_in(struct fsdir *d, uint64_t dir, const char *name, int depth,
    struct pep_err *e)
{
	struct fs_names l = { NULL, 0, 0, 0 };
	struct fs_node n;
	size_t i;
	int r;

	r = d->ops->lookup(d, dir, name, &n, e);
	if (r < 0)
		return r;
	if (S_ISDIR(n.mode)) {
		if (depth > FS_PATH_MAX / 2)
			return pep_errf(e, ELOOP, "%s: directories nested too "
			    "deep", d->label);
		r = d->ops->iterate(d, n.id, names_add, &l, e);
		if (r >= 0 && l.oom)
			r = pep_errf(e, ENOMEM, "out of memory");
		for (i = 0; r >= 0 && i < l.n; i++)
			r = remove_in(d, n.id, l.v[i], depth + 1, e);
		names_free(&l);
		if (r < 0)
			return r;
	}
	return d->ops->unlink(d, dir, name, e);
}

static int
remove_path(struct fsdir *d, const char *path, struct pep_err *e)
{
	struct fs_where w;
	int r;

	r = fsdir_resolve(d, path, 0, NULL, &w, e);
	if (r < 0)
		return r;
	if (!w.exists)
		return -ENOENT;
	return remove_in(d, w.parent, w.name, 0, e);
}

/*
 * The public forms: a backend's failure names path unless the writer
 * named something already (d->subject), as the built-in edits do not.
 */
int
fsdir_mkdir_p(struct fsdir *d, const char *path, const struct fs_meta *m,
    struct pep_err *e)
{
	const char *old = d->subject;
	int r;

	d->subject = old != NULL ? old : path;
	r = mkdir_p(d, path, m, e);
	d->subject = old;
	return r;
}

int
fsdir_put(struct fsdir *d, const char *path, const void *buf, size_t len,
    const struct fs_meta *m, unsigned flags, const struct fs_meta *dir_meta,
    struct pep_err *e)
{
	const char *old = d->subject;
	int r;

	d->subject = old != NULL ? old : path;
	r = put(d, path, buf, len, m, flags, dir_meta, e);
	d->subject = old;
	return r;
}

int
fsdir_remove(struct fsdir *d, const char *path, struct pep_err *e)
{
	const char *old = d->subject;
	int r;

	d->subject = old != NULL ? old : path;
	r = remove_path(d, path, e);
	d->subject = old;
	return r;
}

int
fsdir_slurp(struct fsdir *d, const char *path, size_t max, char **buf,
    size_t *len, struct pep_err *e)
{
	struct fs_node n;
	size_t got = 0;
	char *b;
	int r;

	*buf = NULL;
	*len = 0;
	r = fsdir_stat(d, path, &n, e);
	if (r == -ENOENT)
		return pep_errf(e, ENOENT, "%s: %s: no such file", d->label,
		    path);
	if (r < 0)
		return r;
	if (!S_ISREG(n.mode))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: %s: not a regular "
		    "file", d->label, path);
	if (n.size > max)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: %s: too large "
		    "(%llu bytes)", d->label, path,
		    (unsigned long long)n.size);
	b = malloc((size_t)n.size + 1);
	if (b == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", d->label);
	r = d->ops->read(d, n.id, 0, b, (size_t)n.size, &got, e);
	if (r == 0 && got != n.size)
		r = pep_errf(e, PEP_ECORRUPT, "%s: %s: short read (%zu of "
		    "%llu bytes)", d->label, path, got,
		    (unsigned long long)n.size);
	if (r < 0) {
		free(b);
		return r;
	}
	b[n.size] = '\0';
	*buf = b;
	*len = (size_t)n.size;
	return 0;
}

int
fsdir_upload(struct fsdir *d, const char *host, const char *path,
    uint32_t mode, int force, time_t now, struct pep_err *e)
{
	struct fs_meta fm, dm;
	struct fs_where w;
	struct stat st;
	int fd, r;

	fd = open(host, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = pep_errf(e, fd < 0 ? errno : EINVAL, "%s: %s", host,
		    fd < 0 ? strerror(errno) : "not a regular file");
		goto out;
	}
	memset(&fm, 0, sizeof(fm));
	fm.mode = S_IFREG | (mode != 0 ? mode : st.st_mode & 07777);
	fm.mtime = st.st_mtime;
	fm.mtime_ns = (uint32_t)st.st_mtim.tv_nsec;
	fs_clamp_mtime(&fm, now);
	dm = fm;
	dm.mode = S_IFDIR | 0755;
	dm.mtime = now;
	dm.mtime_ns = 0;
	r = fsdir_put(d, path, NULL, 0, &fm, FS_MKDIRS, &dm, e);
	if (r == 0)
		r = fsdir_resolve(d, path, FS_FOLLOW, NULL, &w, e);
	if (r == 0)
		r = fsdir_copy_fd(d, w.node.id, fd, (uint64_t)st.st_size, host,
		    e);
	if (r == 0 && force)
		r = d->ops->set_meta(d, w.node.id, FS_SET_MODE | FS_SET_OWNER,
		    &fm, e);
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* Copy [off, end) of fd into node through buf. */
static int
copy_range(struct fsdir *d, uint64_t node, int fd, uint64_t off,
    uint64_t end, uint8_t *buf, const char *name, struct pep_err *e)
{
	ssize_t n;
	size_t want;
	int r;

	while (off < end) {
		want = end - off < FS_COPY_CHUNK ? (size_t)(end - off) :
		    FS_COPY_CHUNK;
		n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pep_errf(e, errno, "%s: read failed: %s", name,
			    strerror(errno));
		if (n == 0)
			return pep_errf(e, PEP_ECORRUPT, "%s: changed while "
			    "being copied (shorter than it was)", name);
		r = d->ops->write(d, node, off, buf, (size_t)n, e);
		if (r < 0)
			return r;
		off += (uint64_t)n;
	}
	return 0;
}

struct fs_meta
fs_meta_made(uint32_t mode, time_t now)
{
	struct fs_meta m;

	memset(&m, 0, sizeof(m));
	m.mode = mode;
	m.mtime = now;
	return m;
}

void
fs_clamp_mtime(struct fs_meta *m, time_t now)
{
	if (m->mtime > (int64_t)now) {
		m->mtime = now;
		m->mtime_ns = 0;
	}
}

void
fsdir_release(struct fsdir *d)
{
	free(d->copybuf);
	d->copybuf = NULL;
}

int
fsdir_copy_fd(struct fsdir *d, uint64_t node, int fd, uint64_t size,
    const char *name, struct pep_err *e)
{
	off_t data, hole;
	uint64_t off = 0;
	int r = 0;

	if (d->copybuf == NULL)
		d->copybuf = malloc(FS_COPY_CHUNK);
	if (d->copybuf == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	while (off < size) {
		data = lseek(fd, (off_t)off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;		/* a hole to the end */
		if (data < 0) {
			data = (off_t)off;	/* no SEEK_DATA: all data */
			hole = (off_t)size;
		} else {
			hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > size)
				hole = (off_t)size;
		}
		if ((uint64_t)data >= size)
			break;
		r = copy_range(d, node, fd, (uint64_t)data, (uint64_t)hole,
		    d->copybuf, name, e);
		if (r < 0)
			break;
		off = (uint64_t)hole;
	}
	if (r == 0)
		r = d->ops->truncate(d, node, size, e);
	return r;
}
