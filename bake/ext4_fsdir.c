/*
 * The fsdir backend for ext2/3/4, through libext2fs 1.47.0: nodes are
 * inode numbers. Every timestamp comes from the caller (fs_meta's mtime)
 * or the handle's now (ctime, crtime, and the mtime of a directory whose
 * entries change), with nanoseconds as given: two runs on identical input
 * write identical bytes.
 *
 * This file holds the ops table, the glue its files share (the handle,
 * failures, the read-only check) and the small ops: the root, readlink
 * and extended attributes. The others are ext4_inode.c (inodes: made,
 * their metadata, freed), ext4_dir.c (directory entries) and ext4_data.c
 * (file data).
 */
#include <errno.h>
#include <string.h>

#include <et/com_err.h>

#include "ext4_priv.h"

struct ext4 *
ext4_of(struct fsdir *d)
{
	return d->priv;
}

ext2_filsys
ext4_fs_of(struct fsdir *d)
{
	return ext4_of(d)->fs;
}

/* A libext2fs failure: named by the writer's subject if it set one. */
int
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
int
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

static uint64_t
x_root(struct fsdir *d)
{
	(void)d;
	return EXT2_ROOT_INO;
}

static int
x_readlink(struct fsdir *d, uint64_t node, char *buf, size_t size,
    struct pep_err *e)
{
	ext2_filsys fs = ext4_fs_of(d);
	struct ext2_inode in;
	ext2_file_t f = NULL;
	unsigned int got = 0;
	size_t len = 0;
	errcode_t err;

	err = ext2fs_read_inode(fs, (ext2_ino_t)node, &in);
	if (err == 0 && !LINUX_S_ISLNK(in.i_mode))
		err = EXT2_ET_INVALID_ARGUMENT;
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "symlink", "reading");
	len = EXT2_I_SIZE(&in);
	if (len + 1 > size || len > FS_SYMLINK_MAX)
		return pep_errf(e, ENAMETOOLONG, "%s: a symlink's target is "
		    "%zu bytes long", d->label, len);
	if (ext2fs_is_fast_symlink(&in)) {
		memcpy(buf, in.i_block, len);
	} else {
		err = ext2fs_file_open(fs, (ext2_ino_t)node, 0, &f);
		if (err == 0)
			err = ext2fs_file_read(f, buf, (unsigned int)len, &got);
		if (f != NULL)
			ext2fs_file_close(f);
		if (err == 0 && got < len)
			err = EXT2_ET_SHORT_READ;
		if (err != 0)
			return ext4_fsdir_err(d, e, err, "symlink", "reading");
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL || len == 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: a symlink (inode %llu) "
		    "with an empty or NUL-holding target", d->label,
		    (unsigned long long)node);
	return 0;
}

/*
 * The attributes a file may carry, as the kernel's ext4 takes them from
 * setxattr: user., trusted., security. and the two POSIX ACLs. Others
 * are ext4's own (system.data holds an inline file's bytes: setting it
 * rewrote them) or names ext4 has no prefix for.
 */
static int
x_xattr_ok(const char *name)
{
	static const char *const prefix[] = { "user.", "trusted.",
	    "security." };
	size_t i;

	for (i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++)
		if (strncmp(name, prefix[i], strlen(prefix[i])) == 0 &&
		    name[strlen(prefix[i])] != '\0')
			return 1;
	return strcmp(name, "system.posix_acl_access") == 0 ||
	    strcmp(name, "system.posix_acl_default") == 0;
}

static int
x_set_xattr(struct fsdir *d, uint64_t node, const char *name,
    const void *val, size_t len, struct pep_err *e)
{
	struct ext2_xattr_handle *h = NULL;
	errcode_t err, err2;
	int r;

	if (!x_xattr_ok(name))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: %s: extended "
		    "attribute '%s': not one a file can carry (user., "
		    "trusted., security. and POSIX ACLs)", d->label,
		    d->subject != NULL ? d->subject : "?", name);
	r = ext4_fsdir_change(d, name, e);
	if (r < 0)
		return r;
	err = ext2fs_xattrs_open(ext4_fs_of(d), (ext2_ino_t)node, &h);
	if (err == 0)
		err = ext2fs_xattrs_read(h);
	if (err == 0 && val != NULL)
		err = ext2fs_xattr_set(h, name, val, len);
	else if (err == 0)
		err = ext2fs_xattr_remove(h, name);
	err2 = h != NULL ? ext2fs_xattrs_close(&h) : 0;
	if (err == 0)
		err = err2;
	if (err == EINVAL)	/* a POSIX ACL libext2fs cannot convert */
		return pep_errf(e, EINVAL, "%s: %s: extended attribute '%s': "
		    "not a valid value", d->label,
		    d->subject != NULL ? d->subject : "?", name);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name,
		    "setting an extended attribute");
	return 0;
}

const struct fsdir_ops ext4_fsdir_ops = {
	.name = "ext4",
	.root = x_root,
	.lookup = ext4_dir_lookup,
	.readlink = x_readlink,
	.make = ext4_inode_make,
	.link = ext4_dir_link,
	.unlink = ext4_dir_unlink,
	.write = ext4_data_write,
	.truncate = ext4_data_truncate,
	.read = ext4_data_read,
	.set_meta = ext4_inode_set_meta,
	.set_xattr = x_set_xattr,
	.iterate = ext4_dir_iterate,
};
