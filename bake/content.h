/*
 * Content operations on the image's root filesystem, with virt-customize's
 * names and argument forms (content.c), a whole host tree (tree.c) and an
 * archive (archive.c: tar, cpio; gzip, xz, zstd, bzip2 through
 * libarchive). All write through an fsdir (fsdir.h), so every path is
 * resolved inside the image and nothing lands outside what it names.
 */
#ifndef PEP_CONTENT_H
#define PEP_CONTENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../common/err.h"
#include "fsdir.h"

enum content_kind {
	CONTENT_WRITE,		/* --write PATH:CONTENT */
	CONTENT_UPLOAD,		/* --upload HOSTFILE:PATH */
	CONTENT_COPY_IN,	/* --copy-in HOSTPATH:DIR */
	CONTENT_TAR_IN,		/* --tar-in ARCHIVE:DIR */
	CONTENT_MKDIR,		/* --mkdir DIR */
	CONTENT_LINK,		/* --link TARGET:LINK */
	CONTENT_CHMOD,		/* --chmod MODE:PATH */
	CONTENT_CHOWN,		/* --chown UID:GID:PATH */
	CONTENT_DELETE,		/* --delete PATH */
	CONTENT_APPEND_LINE,	/* --append-line PATH:LINE */
	CONTENT_TOUCH,		/* --touch PATH */
	CONTENT_SERVICE,	/* --service NAME=INIT[,CONF][@RUNLEVEL] */
	CONTENT_ENABLE,		/* --enable NAME[@RUNLEVEL] */
	CONTENT_DISABLE,	/* --disable NAME[@RUNLEVEL] */
	CONTENT_NKINDS
};

/* One operation. The strings point into own (freed by content_free) or,
 * from a recipe, into memory the recipe keeps. */
struct content_op {
	enum content_kind kind;
	const char *path;	/* in the image */
	const char *host;	/* a host file, directory or archive */
	const char *text;	/* content, line, or a symlink's target */
	size_t textlen;
	uint32_t mode;		/* --chmod, and a recipe file's mode */
	uint32_t uid, gid;	/* --chown, and a recipe file's owner */
	int has_mode, has_owner;
	const char *name;	/* a service's name */
	const char *conf;	/* a service's /etc/conf.d file (host), or NULL */
	const char *runlevel;	/* a service's runlevel ("default") */
	char *own;
};

/* The option name of a kind ("write", "copy-in", ...). */
const char *content_name(enum content_kind k);
/* The kind an option name stands for, or -1. */
int content_kind_of(const char *name);
/*
 * Parse an option's argument in virt-customize's form. The first ':'
 * separates the fields (so a --write CONTENT or --append-line LINE may
 * hold more); --chown splits at the first two. Errors are PEP_EUSAGE.
 */
int content_parse(enum content_kind k, const char *arg, struct content_op *op,
    struct pep_err *e);
void content_free(struct content_op *op);

/* What an operation did, for the report (created, replaced, ...). */
struct content_result {
	uint64_t files, dirs, links, bytes;
};

/*
 * Apply op to the filesystem behind d; now is the epoch, every mtime pep
 * makes up. Missing parent directories are made root:root 0755.
 */
int content_apply(struct fsdir *d, const struct content_op *op, time_t now,
    struct content_result *res, struct pep_err *e);

/* ------------------------------------------------------------ tree.c */

/*
 * Copy the host file or directory at host into the image directory dir
 * (which must exist), as host's last name: modes, owners, mtimes,
 * symlinks, hard links, devices, FIFOs, sockets, extended attributes and
 * holes, as mkfs.ext4 -d copies them.
 */
int tree_copy_in(struct fsdir *d, const char *host, const char *dir,
    struct content_result *res, struct pep_err *e);

/* --------------------------------------------------------- archive.c */

/*
 * Extract the archive at host into the image directory dir (which must
 * exist). Members with an absolute name, or whose path (through ".." or
 * symlinks) leads out of dir, are refused. Metadata as in tree_copy_in;
 * hard links to earlier members.
 */
int archive_extract(struct fsdir *d, const char *host, const char *dir,
    struct content_result *res, struct pep_err *e);
/* The same for an archive of len bytes at buf, called name in messages
 * (tests/fuzz/fuzz_archive.c). */
int archive_extract_mem(struct fsdir *d, const void *buf, size_t len,
    const char *name, const char *dir, struct content_result *res,
    struct pep_err *e);

#endif
