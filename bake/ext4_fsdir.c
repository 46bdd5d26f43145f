/*
 * The fsdir backend for ext2/3/4, through libext2fs 1.47.0: nodes are
 * inode numbers. Every timestamp comes from the caller (fs_meta's mtime)
 * or the handle's now (ctime, crtime, and the mtime of a directory whose
 * entries change), with nanoseconds as given: two runs on identical input
 * write identical bytes.
 *
 * This file holds the ops table and the small ops: the root, readlink,
 * extended attributes, and a node made (a new inode, linked). The others
 * are ext4_inode.c (inodes: made, their metadata, freed), ext4_dir.c
 * (directory entries) and ext4_data.c (file data); the glue they share
 * (the handle, failures, the read-only check) is inline in ext4_priv.h.
 */
#include <errno.h>
#include <string.h>

#include <et/com_err.h>

#include "ext4_priv.h"

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

/* A node made: a new inode (ext4_inode.c), linked into dir. */
static int
x_make(struct fsdir *d, uint64_t dir, const char *name,
    const struct fs_meta *m, const char *target, struct fs_node *n,
    struct pep_err *e)
{
	struct ext2_inode_large li;
	ext2_ino_t ino;
	errcode_t err;
	int r;

	r = ext4_fsdir_change(d, name, e);
	if (r == 0)
		r = ext4_inode_new(d, (ext2_ino_t)dir, name, m, target, &ino,
		    e);
	if (r < 0)
		return r;
	err = ext4_dir_add(ext4_fs_of(d), (ext2_ino_t)dir, name, ino,
	    ext4_dir_filetype(m->mode));
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name,
		    LINUX_S_ISDIR(m->mode) ? "making directory" :
		    LINUX_S_ISLNK(m->mode) ? "making symlink" : "making");
	r = ext4_inode_touch_dir(d, (ext2_ino_t)dir, e);
	if (r == 0)
		r = ext4_inode_read(d, ino, &li, e);
	if (r == 0)
		ext4_inode_node(ino, (struct ext2_inode *)&li, n);
	return r;
}

const struct fsdir_ops ext4_fsdir_ops = {
	.name = "ext4",
	.root = x_root,
	.lookup = ext4_dir_lookup,
	.readlink = x_readlink,
	.make = x_make,
	.link = ext4_dir_link,
	.unlink = ext4_dir_unlink,
	.write = ext4_data_write,
	.truncate = ext4_data_truncate,
	.read = ext4_data_read,
	.set_meta = ext4_inode_set_meta,
	.set_xattr = x_set_xattr,
	.iterate = ext4_dir_iterate,
};
