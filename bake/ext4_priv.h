/*
 * Inside the ext4 module (ext4*.c only): the handle, and what its files
 * share. Everyone else sees struct ext4 as opaque (ext4.h).
 */
#ifndef PEP_EXT4_PRIV_H
#define PEP_EXT4_PRIV_H

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "ext4.h"

struct ext4 {
	ext2_filsys fs;
	char *label;		/* names the filesystem in messages */
	char *io_name;		/* the file, for failures to read or write it */
	int rw;
	int nosync;		/* the caller fsyncs the file itself */
	int changed;		/* something was written: quota usage is stale */
	time_t now;		/* every timestamp written */
	int fd;			/* a dup of the caller's descriptor */
	uint64_t off;		/* the filesystem's byte offset in it */
	struct fsdir dir;	/* ops: ext4_fsdir_ops, priv: this */
};

extern const struct fsdir_ops ext4_fsdir_ops;

/* A libext2fs failure about path as one message (the file is named when
 * the I/O layer failed). */
int ext4_lib_err(struct ext4 *x, struct pep_err *e, errcode_t err,
    const char *path, const char *what);

/*
 * The fsdir backend, ext4_fsdir_ops, in four files: what they share
 * (each function's comment is at its definition).
 */

/* The glue of the four files: the handle, failures, the read-only check. */
static inline struct ext4 *
ext4_of(struct fsdir *d)
{
	return d->priv;
}

static inline ext2_filsys
ext4_fs_of(struct fsdir *d)
{
	return ext4_of(d)->fs;
}

/* A libext2fs failure: named by the writer's subject if it set one. */
static inline int
ext4_fsdir_err(struct fsdir *d, struct pep_err *e, errcode_t err,
    const char *name, const char *what)
{
	return ext4_lib_err(ext4_of(d), e, err,
	    d->subject != NULL ? d->subject : name, what);
}

/*
 * Every change starts here: refused on a read-only handle, and it makes
 * the quota usage stale (ext4_close counts it again). From the first
 * one on, metadata blocks are cached (ext4_io.c): the grow, which writes
 * around libext2fs, is over by then.
 */
static inline int
ext4_fsdir_change(struct fsdir *d, const char *name, struct pep_err *e)
{
	struct ext4 *x = ext4_of(d);

	if (!x->rw)
		return pep_errf(e, PEP_EUSAGE, "%s: %s: filesystem opened "
		    "read-only", d->label, name);
	if (!x->changed)
		ext4_io_cache(x->fs->io);
	x->changed = 1;
	return 0;
}

/* ext4_inode.c: inodes, made and freed; the op set_meta */
int ext4_inode_read(struct fsdir *d, ext2_ino_t ino,
    struct ext2_inode_large *li, struct pep_err *e);
int ext4_inode_write(struct fsdir *d, ext2_ino_t ino,
    struct ext2_inode_large *li, struct pep_err *e);
void ext4_inode_stamp(struct fsdir *d, struct ext2_inode_large *li,
    int mtime, int born);
int ext4_inode_touch_dir(struct fsdir *d, ext2_ino_t dir, struct pep_err *e);
void ext4_inode_node(ext2_ino_t ino, const struct ext2_inode *in,
    struct fs_node *n);
errcode_t ext4_inode_free_last(ext2_filsys fs, ext2_ino_t ino, blk64_t from,
    blk64_t to);
int ext4_inode_free(struct fsdir *d, ext2_ino_t ino,
    struct ext2_inode_large *li, struct pep_err *e);
int ext4_inode_new(struct fsdir *d, ext2_ino_t dir, const char *name,
    const struct fs_meta *m, const char *target, ext2_ino_t *ino,
    struct pep_err *e);
int ext4_inode_set_meta(struct fsdir *d, uint64_t node, unsigned what,
    const struct fs_meta *m, struct pep_err *e);

/* ext4_dir.c: directory entries; the ops lookup, link, unlink, iterate */
errcode_t ext4_dir_add(ext2_filsys fs, ext2_ino_t dir, const char *name,
    ext2_ino_t ino, int type);
int ext4_dir_filetype(uint32_t mode);
int ext4_dir_lookup(struct fsdir *d, uint64_t dir, const char *name,
    struct fs_node *n, struct pep_err *e);
int ext4_dir_link(struct fsdir *d, uint64_t dir, const char *name,
    uint64_t node, struct pep_err *e);
int ext4_dir_unlink(struct fsdir *d, uint64_t dir, const char *name,
    struct pep_err *e);
int ext4_dir_iterate(struct fsdir *d, uint64_t dir, fs_iter_fn fn,
    void *arg, struct pep_err *e);

/* ext4_data.c: file data; the ops write, truncate, read */
int ext4_data_write(struct fsdir *d, uint64_t node, uint64_t off,
    const void *buf, size_t len, struct pep_err *e);
int ext4_data_truncate(struct fsdir *d, uint64_t node, uint64_t size,
    struct pep_err *e);
int ext4_data_read(struct fsdir *d, uint64_t node, uint64_t off, void *buf,
    size_t len, size_t *got, struct pep_err *e);

#endif
