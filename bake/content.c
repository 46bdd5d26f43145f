/*
 * Content operations with virt-customize's names and argument forms:
 * --write, --upload, --copy-in, --tar-in, --mkdir, --link, --chmod,
 * --chown, --delete, --append-line, --touch. Each is parsed up front (a
 * bad argument is a usage error before any work) and applied through the
 * image's fsdir.
 *
 * What pep makes up is root:root, 0644 for files and 0755 for
 * directories, with the bake's epoch as mtime; what comes from the host
 * (--upload) keeps the host file's permission bits and mtime, clamped to
 * the epoch (fs_clamp_mtime).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content.h"
#include "openrc.h"

#define CONTENT_FILE_MAX (64u << 20)	/* --append-line reads it whole */

static const struct content_kind_info {
	const char *name;
	int fields;		/* ':'-separated fields in the argument */
	const char *form;	/* for messages */
} kinds[CONTENT_NKINDS] = {
	[CONTENT_WRITE] = { "write", 2, "PATH:CONTENT" },
	[CONTENT_UPLOAD] = { "upload", 2, "HOSTFILE:PATH" },
	[CONTENT_COPY_IN] = { "copy-in", 2, "HOSTPATH:DIR" },
	[CONTENT_TAR_IN] = { "tar-in", 2, "ARCHIVE:DIR" },
	[CONTENT_MKDIR] = { "mkdir", 1, "DIR" },
	[CONTENT_LINK] = { "link", 2, "TARGET:LINK" },
	[CONTENT_CHMOD] = { "chmod", 2, "MODE:PATH" },
	[CONTENT_CHOWN] = { "chown", 3, "UID:GID:PATH" },
	[CONTENT_DELETE] = { "delete", 1, "PATH" },
	[CONTENT_APPEND_LINE] = { "append-line", 2, "PATH:LINE" },
	[CONTENT_TOUCH] = { "touch", 1, "PATH" },
	[CONTENT_SERVICE] = { "service", 1, "NAME=INIT[,CONF][@RUNLEVEL]" },
	[CONTENT_ENABLE] = { "enable", 1, "NAME[@RUNLEVEL]" },
	[CONTENT_DISABLE] = { "disable", 1, "NAME[@RUNLEVEL]" },
};

const char *
content_name(enum content_kind k)
{
	return (unsigned)k < CONTENT_NKINDS ? kinds[k].name : "?";
}

int
content_kind_of(const char *name)
{
	int k;

	for (k = 0; k < CONTENT_NKINDS; k++)
		if (strcmp(kinds[k].name, name) == 0)
			return k;
	return -1;
}

void
content_free(struct content_op *op)
{
	free(op->own);
	op->own = NULL;
}

static int
parse_u32(const char *s, int base, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (*s == '\0' || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* Split own at the first n-1 colons into f[0..n). */
static int
split_fields(char *own, int n, char **f)
{
	int i;

	f[0] = own;
	for (i = 1; i < n; i++) {
		f[i] = strchr(f[i - 1], ':');
		if (f[i] == NULL)
			return -1;
		*f[i]++ = '\0';
	}
	return 0;
}

static int
bad(enum content_kind k, const char *arg, const char *why,
    struct pep_err *e)
{
	return pep_errf(e, PEP_EUSAGE, "--%s '%s': %s (the form is --%s %s)",
	    kinds[k].name, arg, why, kinds[k].name, kinds[k].form);
}

/* The fields into op, by kind; f[] point into op->own. */
static int
fill_op(enum content_kind k, const char *arg, char **f,
    struct content_op *op, struct pep_err *e)
{
	switch (k) {
	case CONTENT_WRITE:
	case CONTENT_APPEND_LINE:
		op->path = f[0];
		op->text = f[1];
		op->textlen = strlen(f[1]);
		break;
	case CONTENT_UPLOAD:
	case CONTENT_COPY_IN:
	case CONTENT_TAR_IN:
		op->host = f[0];
		op->path = f[1];
		break;
	case CONTENT_LINK:
		op->text = f[0];
		op->textlen = strlen(f[0]);
		op->path = f[1];
		if (op->textlen == 0 || op->textlen > FS_SYMLINK_MAX)
			return bad(k, arg, "the target must be 1 to 4096 "
			    "bytes", e);
		break;
	case CONTENT_CHMOD:
		op->path = f[1];
		op->has_mode = 1;
		if (parse_u32(f[0], 8, 07777, &op->mode) < 0)
			return bad(k, arg, "MODE must be octal, at most "
			    "7777", e);
		break;
	case CONTENT_CHOWN:
		op->path = f[2];
		op->has_owner = 1;
		if (parse_u32(f[0], 10, UINT32_MAX - 1, &op->uid) < 0 ||
		    parse_u32(f[1], 10, UINT32_MAX - 1, &op->gid) < 0)
			return bad(k, arg, "UID and GID must be numbers", e);
		break;
	default:
		op->path = f[0];
		break;
	}
	return 0;
}

/* NAME=INIT[,CONF][@RUNLEVEL] (--service) or NAME[@RUNLEVEL]. */
static int
fill_service(enum content_kind k, const char *arg, char *s,
    struct content_op *op, struct pep_err *e)
{
	char *at = strrchr(s, '@'), *eq, *comma;

	if (at != NULL) {
		*at++ = '\0';
		op->runlevel = at;
	}
	op->name = s;
	op->path = "/etc/init.d";
	if (k == CONTENT_SERVICE) {
		eq = strchr(s, '=');
		if (eq == NULL)
			return bad(k, arg, "missing '='", e);
		*eq++ = '\0';
		op->host = eq;
		comma = strchr(eq, ',');
		if (comma != NULL) {
			*comma++ = '\0';
			op->conf = comma;
		}
	}
	if (!openrc_name_ok(op->name) ||
	    (op->runlevel != NULL && !openrc_name_ok(op->runlevel)))
		return bad(k, arg, "a name or runlevel with '/' or empty", e);
	return 0;
}

int
content_parse(enum content_kind k, const char *arg, struct content_op *op,
    struct pep_err *e)
{
	char *f[3] = { NULL, NULL, NULL };
	int r;

	memset(op, 0, sizeof(*op));
	if ((unsigned)k >= CONTENT_NKINDS)
		return pep_errf(e, PEP_EUSAGE, "unknown operation %d", k);
	op->kind = k;
	op->own = strdup(arg);
	if (op->own == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (k == CONTENT_SERVICE || k == CONTENT_ENABLE ||
	    k == CONTENT_DISABLE)
		r = fill_service(k, arg, op->own, op, e);
	else if (split_fields(op->own, kinds[k].fields, f) < 0)
		r = bad(k, arg, "missing ':'", e);
	else
		r = fill_op(k, arg, f, op, e);
	if (r == 0 && (op->host != NULL && op->host[0] == '\0'))
		r = bad(k, arg, "empty host path", e);
	if (r == 0 && op->path[0] != '/')
		r = bad(k, arg, "the path in the image must be absolute", e);
	if (r < 0)
		content_free(op);
	return r;
}

/* ------------------------------------------------------------ apply */

static int
op_write(struct fsdir *d, const struct content_op *op, time_t now,
    struct content_result *res, struct pep_err *e)
{
	struct fs_meta fm = fs_meta_made(S_IFREG | 0644, now);
	struct fs_meta dm = fs_meta_made(S_IFDIR | 0755, now);

	if (op->has_mode)
		fm.mode = S_IFREG | op->mode;
	if (op->has_owner) {
		fm.uid = op->uid;
		fm.gid = op->gid;
	}
	res->files++;
	res->bytes += op->textlen;
	return fsdir_put(d, op->path, op->text, op->textlen, &fm, FS_MKDIRS,
	    &dm, e);
}

static int
op_upload(struct fsdir *d, const struct content_op *op, time_t now,
    struct content_result *res, struct pep_err *e)
{
	res->files++;
	return fsdir_upload(d, op->host, op->path, 0, 0, now, e);
}

static int
op_link(struct fsdir *d, const struct content_op *op, time_t now,
    struct content_result *res, struct pep_err *e)
{
	struct fs_meta lm = fs_meta_made(S_IFLNK | 0777, now);
	struct fs_meta dm = fs_meta_made(S_IFDIR | 0755, now);
	struct fs_where w;
	struct fs_node n;
	int r;

	r = fsdir_resolve(d, op->path, FS_MKDIRS, &dm, &w, e);
	if (r < 0)
		return r;
	if (w.exists && !S_ISLNK(w.node.mode))
		return pep_errf(e, EEXIST, "%s: %s: exists and is %s",
		    d->label, op->path, fs_kind(w.node.mode));
	if (w.exists)
		r = d->ops->unlink(d, w.parent, w.name, e);
	if (r == 0)
		r = d->ops->make(d, w.parent, w.name, &lm, op->text, &n, e);
	res->links++;
	return r;
}

static int
op_meta(struct fsdir *d, const struct content_op *op, struct pep_err *e)
{
	struct fs_meta m;
	struct fs_node n;
	int r;

	r = fsdir_stat(d, op->path, &n, e);
	if (r == -ENOENT)
		return pep_errf(e, ENOENT, "%s: %s: no such file or directory",
		    d->label, op->path);
	if (r < 0)
		return r;
	memset(&m, 0, sizeof(m));
	m.mode = op->mode;
	m.uid = op->uid;
	m.gid = op->gid;
	return d->ops->set_meta(d, n.id, op->kind == CONTENT_CHMOD ?
	    FS_SET_MODE : FS_SET_OWNER, &m, e);
}

static int
op_delete(struct fsdir *d, const struct content_op *op, struct pep_err *e)
{
	int r = fsdir_remove(d, op->path, e);

	return r == -ENOENT ? 0 : r;	/* as rm -rf */
}

/*
 * Add a line, as virt-customize does: a newline first if the file does
 * not end with one, the file's own line ending (CRLF if its first line
 * has one); a missing file is made.
 */
static int
op_append(struct fsdir *d, const struct content_op *op, time_t now,
    struct content_result *res, struct pep_err *e)
{
	struct fs_meta fm = fs_meta_made(S_IFREG | 0644, now);
	struct fs_meta dm = fs_meta_made(S_IFDIR | 0755, now);
	const char *eol = "\n";
	char *old = NULL, *buf, *nl;
	size_t len = 0, n = 0;
	int r;

	r = fsdir_slurp(d, op->path, CONTENT_FILE_MAX, &old, &len, e);
	if (r < 0 && r != -ENOENT)
		return r;
	nl = old != NULL ? memchr(old, '\n', len) : NULL;
	if (nl != NULL && nl > old && nl[-1] == '\r')
		eol = "\r\n";
	buf = malloc(len + 2 * strlen(eol) + op->textlen + 1);
	if (buf == NULL) {
		free(old);
		return pep_errf(e, ENOMEM, "out of memory");
	}
	if (len > 0)
		memcpy(buf, old, len);
	n = len;
	if (len > 0 && old[len - 1] != '\n') {
		memcpy(buf + n, eol, strlen(eol));
		n += strlen(eol);
	}
	memcpy(buf + n, op->text, op->textlen);
	n += op->textlen;
	memcpy(buf + n, eol, strlen(eol));
	n += strlen(eol);
	r = fsdir_put(d, op->path, buf, n, &fm, FS_MKDIRS, &dm, e);
	res->bytes += n - len;
	free(old);
	free(buf);
	return r;
}

static int
op_touch(struct fsdir *d, const struct content_op *op, time_t now,
    struct content_result *res, struct pep_err *e)
{
	struct fs_meta fm = fs_meta_made(S_IFREG | 0644, now);
	struct fs_meta dm = fs_meta_made(S_IFDIR | 0755, now);
	struct fs_where w;
	int r;

	r = fsdir_resolve(d, op->path, FS_FOLLOW | FS_MKDIRS, &dm, &w, e);
	if (r < 0)
		return r;
	if (w.exists)
		return d->ops->set_meta(d, w.node.id, FS_SET_MTIME, &fm, e);
	if (w.via_link)
		return pep_errf(e, ENOENT, "%s: %s: dangling symlink",
		    d->label, op->path);
	res->files++;
	return d->ops->make(d, w.parent, w.name, &fm, NULL, &w.node, e);
}

static int
content_run(struct fsdir *d, const struct content_op *op, time_t now,
    struct content_result *res, struct pep_err *e)
{
	struct fs_meta dm = fs_meta_made(S_IFDIR | 0755, now);

	switch (op->kind) {
	case CONTENT_WRITE:
		return op_write(d, op, now, res, e);
	case CONTENT_UPLOAD:
		return op_upload(d, op, now, res, e);
	case CONTENT_COPY_IN:
		return tree_copy_in(d, op->host, op->path, res, e);
	case CONTENT_TAR_IN:
		return archive_extract(d, op->host, op->path, res, e);
	case CONTENT_MKDIR:
		res->dirs++;
		return fsdir_mkdir_p(d, op->path, &dm, e);
	case CONTENT_LINK:
		return op_link(d, op, now, res, e);
	case CONTENT_CHMOD:
	case CONTENT_CHOWN:
		return op_meta(d, op, e);
	case CONTENT_DELETE:
		return op_delete(d, op, e);
	case CONTENT_APPEND_LINE:
		return op_append(d, op, now, res, e);
	case CONTENT_TOUCH:
		return op_touch(d, op, now, res, e);
	case CONTENT_SERVICE:
		return openrc_install(d, op->name, op->host, op->conf,
		    op->runlevel, now, e);
	case CONTENT_ENABLE:
		return openrc_enable(d, op->name, op->runlevel, now, e);
	case CONTENT_DISABLE:
		return openrc_disable(d, op->name, op->runlevel, e);
	case CONTENT_NKINDS:
		break;
	}
	return pep_errf(e, PEP_EUSAGE, "unknown operation %d", op->kind);
}

int
content_apply(struct fsdir *d, const struct content_op *op, time_t now,
    struct content_result *res, struct pep_err *e)
{
	int r;

	d->subject = op->path;
	r = content_run(d, op, now, res, e);
	d->subject = NULL;
	return r;
}
