/*
 * --tar-in: an archive extracted into an image directory, through
 * libarchive's reader (tar in its ustar, pax and GNU forms, and cpio;
 * compressed with gzip, bzip2, xz, lzma, lz4 or zstd). Members are
 * written through the fsdir like everything else, so:
 *   - a member named with an absolute path is refused, and so is one whose
 *     path leads out of the target directory through ".." or through a
 *     symlink (made by an earlier member or already in the image);
 *   - hard links point at members already extracted, by the same rules;
 *   - owners, permission bits, mtimes (nanoseconds too), symlinks,
 *     devices, FIFOs, extended attributes (pax SCHILY.xattr and
 *     LIBARCHIVE.xattr: security.capability among them) and sparse
 *     members' holes are kept;
 *   - directories get their metadata after everything else, as tar does.
 * A member the image already has is replaced, except that a directory
 * stays a directory (merging) and is never replaced by anything else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "../common/vec.h"
#include "content.h"

#define ARCHIVE_BLOCK 65536

/* A directory extracted, whose metadata is set at the end. */
struct ar_dir {
	uint64_t node;
	struct fs_meta m;
};

struct ar {
	struct fsdir *d;
	const char *host;	/* names the archive in messages */
	const void *mem;	/* the archive in memory, or NULL: read host */
	size_t memlen;
	const char *dir;
	struct archive *a;
	struct content_result *res;
	struct ar_dir *dirs;
	size_t ndirs, cap;
	char name[8192];	/* the member's name, cleaned */
	char ipath[8192];	/* where it goes, for messages */
};

static int
ar_lib(struct ar *x, const char *what, struct pep_err *e)
{
	return pep_errf(e, PEP_ECORRUPT, "%s: %s: %s", x->host, what,
	    archive_error_string(x->a) != NULL ?
	    archive_error_string(x->a) : "unknown libarchive error");
}

static int
ar_member_err(struct ar *x, const char *why, struct pep_err *e)
{
	return pep_errf(e, PEP_EUSAGE, "%s: member %s: %s", x->host, x->name,
	    why);
}

/*
 * The member's name relative to the target directory: "./" and repeated
 * slashes dropped. An absolute name is refused (tar's default is to strip
 * the "/"; refusing says so rather than writing somewhere unnamed).
 */
static int
ar_clean(struct ar *x, const char *raw, struct pep_err *e)
{
	const char *p = raw;
	size_t n = 0;

	snprintf(x->name, sizeof(x->name), "%s", raw != NULL ? raw : "");
	if (raw == NULL || raw[0] == '\0')
		return ar_member_err(x, "has no name", e);
	if (raw[0] == '/')
		return ar_member_err(x, "has an absolute name", e);
	if (strlen(raw) >= sizeof(x->name))
		return ar_member_err(x, "name too long", e);
	while (*p != '\0') {
		while (*p == '/')
			p++;
		if (p[0] == '.' && (p[1] == '/' || p[1] == '\0')) {
			p++;
			continue;
		}
		while (*p != '\0' && *p != '/')
			x->name[n++] = *p++;
		if (*p == '/')
			x->name[n++] = '/';
	}
	while (n > 0 && x->name[n - 1] == '/')
		n--;
	x->name[n] = '\0';
	return 0;
}

static void
ar_meta(struct archive_entry *ent, struct fs_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->mode = archive_entry_mode(ent);
	m->uid = (uint32_t)archive_entry_uid(ent);
	m->gid = (uint32_t)archive_entry_gid(ent);
	m->mtime = archive_entry_mtime(ent);
	m->mtime_ns = (uint32_t)archive_entry_mtime_nsec(ent);
	m->rdev_major = (uint32_t)archive_entry_rdevmajor(ent);
	m->rdev_minor = (uint32_t)archive_entry_rdevminor(ent);
}

static int
ar_xattrs(struct ar *x, struct archive_entry *ent, uint64_t node,
    struct pep_err *e)
{
	const char *name;
	const void *val;
	size_t len;
	int r = 0;

	archive_entry_xattr_reset(ent);
	while (r == 0 && archive_entry_xattr_next(ent, &name, &val,
	    &len) == ARCHIVE_OK)
		r = x->d->ops->set_xattr(x->d, node, name, val, len, e);
	return r;
}

/* The member's data into node, a block at a time, holes kept. */
static int
ar_data(struct ar *x, struct archive_entry *ent, uint64_t node,
    struct pep_err *e)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int rc, r = 0;

	for (;;) {
		rc = archive_read_data_block(x->a, &buf, &len, &off);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
			return ar_lib(x, x->name, e);
		if (off < 0)
			return ar_member_err(x, "data at a negative offset", e);
		r = x->d->ops->write(x->d, node, (uint64_t)off, buf, len, e);
		if (r < 0)
			return r;
		x->res->bytes += len;
	}
	return x->d->ops->truncate(x->d, node,
	    (uint64_t)archive_entry_size(ent), e);
}

static int
ar_defer_dir(struct ar *x, uint64_t node, const struct fs_meta *m,
    struct pep_err *e)
{
	if (vec_room((void **)&x->dirs, x->ndirs, &x->cap,
	    sizeof(*x->dirs)) < 0)
		return pep_errf(e, ENOMEM, "out of memory");
	x->dirs[x->ndirs].node = node;
	x->dirs[x->ndirs].m = *m;
	x->ndirs++;
	return 0;
}

/*
 * A hard link: the earlier member it names, by the same rules. A link
 * member may carry the data itself (cpio's newc and odc put it on the
 * last name of a file, the earlier ones being empty): then it becomes
 * the file's data.
 */
static int
ar_hardlink(struct ar *x, struct archive_entry *ent, const char *target,
    const struct fs_where *w, struct pep_err *e)
{
	struct fs_where t;
	char tname[8192];
	int r;

	snprintf(tname, sizeof(tname), "%s", x->name);
	r = ar_clean(x, target, e);
	if (r == 0)
		r = fsdir_resolve_in(x->d, x->dir, x->name, 0, NULL, &t, e);
	snprintf(x->name, sizeof(x->name), "%s", tname);
	if (r < 0)
		return r;
	if (!t.exists)
		return ar_member_err(x, "a hard link to a member not "
		    "extracted", e);
	x->res->links++;
	r = x->d->ops->link(x->d, w->parent, w->name, t.node.id, e);
	if (r == 0 && S_ISREG(t.node.mode) && archive_entry_size_is_set(ent) &&
	    archive_entry_size(ent) > 0)
		r = x->d->ops->truncate(x->d, t.node.id, 0, e);
	if (r == 0 && S_ISREG(t.node.mode) && archive_entry_size_is_set(ent) &&
	    archive_entry_size(ent) > 0)
		r = ar_data(x, ent, t.node.id, e);
	return r;
}

/* Clear the member's place: a directory may stay if it is one too. */
static int
ar_clear(struct ar *x, struct fs_where *w, uint32_t mode, struct pep_err *e)
{
	if (!w->exists)
		return 0;
	if (S_ISDIR(w->node.mode) && S_ISDIR(mode))
		return 1;
	if (S_ISDIR(w->node.mode))
		return ar_member_err(x, "would replace a directory of the "
		    "image", e);
	w->exists = 0;
	return x->d->ops->unlink(x->d, w->parent, w->name, e);
}

static int
ar_member(struct ar *x, struct archive_entry *ent, struct pep_err *e)
{
	struct fs_meta m, dm;
	struct fs_where w;
	struct fs_node n;
	const char *hl = archive_entry_hardlink(ent);
	int r, kept;

	ar_meta(ent, &m);
	memset(&dm, 0, sizeof(dm));
	dm.mode = S_IFDIR | 0755;
	dm.mtime = x->d->now;
	r = ar_clean(x, archive_entry_pathname(ent), e);
	if (r == 0 && x->name[0] == '\0')
		return 0;	/* "./": the target directory itself */
	if (r == 0 && fs_join(x->ipath, sizeof(x->ipath), x->dir, x->name) < 0)
		return ar_member_err(x, "name too long", e);
	if (r == 0)
		r = fsdir_resolve_in(x->d, x->dir, x->name, FS_MKDIRS, &dm,
		    &w, e);
	kept = r == 0 ? ar_clear(x, &w, hl != NULL ? S_IFREG : m.mode, e) : r;
	if (kept < 0)
		return kept;
	if (hl != NULL)
		return ar_hardlink(x, ent, hl, &w, e);
	if (kept)
		n = w.node;
	else
		r = x->d->ops->make(x->d, w.parent, w.name, &m,
		    archive_entry_symlink(ent), &n, e);
	if (r == 0 && S_ISREG(m.mode))
		r = ar_data(x, ent, n.id, e);
	if (r == 0)
		r = ar_xattrs(x, ent, n.id, e);
	if (r == 0 && S_ISDIR(m.mode))
		r = ar_defer_dir(x, n.id, &m, e);
	else if (r == 0 && S_ISREG(m.mode))
		r = x->d->ops->set_meta(x->d, n.id, FS_SET_MTIME, &m, e);
	if (r == 0 && S_ISDIR(m.mode))
		x->res->dirs++;
	else if (r == 0)
		x->res->files++;
	return r;
}

static int
ar_open(struct ar *x, struct pep_err *e)
{
	x->a = archive_read_new();
	if (x->a == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	archive_read_support_filter_all(x->a);
	archive_read_support_format_tar(x->a);
	archive_read_support_format_gnutar(x->a);
	archive_read_support_format_cpio(x->a);
	if ((x->mem != NULL ? archive_read_open_memory(x->a, x->mem,
	    x->memlen) : archive_read_open_filename(x->a, x->host,
	    ARCHIVE_BLOCK)) != ARCHIVE_OK)
		return ar_lib(x, "cannot read as an archive", e);
	return 0;
}

/* Directories' metadata, last (their entries changed their mtimes). */
static int
ar_finish_dirs(struct ar *x, struct pep_err *e)
{
	size_t i;
	int r = 0;

	for (i = x->ndirs; r == 0 && i > 0; i--)
		r = x->d->ops->set_meta(x->d, x->dirs[i - 1].node,
		    FS_SET_MODE | FS_SET_OWNER | FS_SET_MTIME,
		    &x->dirs[i - 1].m, e);
	return r;
}

/* The target directory, then every member, then directories' metadata. */
static int
ar_run(struct ar *x, struct pep_err *e)
{
	struct fsdir *d = x->d;
	const char *subject = d->subject;
	struct archive_entry *ent;
	struct fs_node top;
	int rc, r;

	r = fsdir_stat(d, x->dir, &top, e);
	if (r == -ENOENT)
		r = pep_errf(e, ENOENT, "%s: %s: no such directory (tar-in "
		    "extracts %s there)", d->label, x->dir, x->host);
	else if (r == 0 && !S_ISDIR(top.mode))
		r = pep_errf(e, ENOTDIR, "%s: %s: is %s, not a directory",
		    d->label, x->dir, fs_kind(top.mode));
	if (r == 0)
		r = ar_open(x, e);
	d->subject = x->ipath;
	while (r == 0) {
		rc = archive_read_next_header(x->a, &ent);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
			r = ar_lib(x, "reading", e);
			break;
		}
		r = ar_member(x, ent, e);
	}
	if (r == 0)
		r = ar_finish_dirs(x, e);
	d->subject = subject;
	if (x->a != NULL)
		archive_read_free(x->a);
	free(x->dirs);
	return r;
}

int
archive_extract(struct fsdir *d, const char *host, const char *dir,
    struct content_result *res, struct pep_err *e)
{
	struct ar x;

	memset(&x, 0, sizeof(x));
	x.d = d;
	x.host = host;
	x.dir = dir;
	x.res = res;
	return ar_run(&x, e);
}

int
archive_extract_mem(struct fsdir *d, const void *buf, size_t len,
    const char *name, const char *dir, struct content_result *res,
    struct pep_err *e)
{
	struct ar x;

	memset(&x, 0, sizeof(x));
	x.d = d;
	x.host = name;
	x.mem = buf;
	x.memlen = len;
	x.dir = dir;
	x.res = res;
	return ar_run(&x, e);
}
