/*
 * The ext4 fsdir backend's directory entries (ext4_fsdir.c has the ops
 * table): lookup, a name added (into the last block of a plain
 * directory, else through libext2fs), hard links, unlink and iteration.
 */
#include <errno.h>
#include <string.h>

#include "ext4_priv.h"

int
ext4_dir_lookup(struct fsdir *d, uint64_t dir, const char *name,
    struct fs_node *n, struct pep_err *e)
{
	struct ext2_inode in;
	ext2_ino_t ino;
	errcode_t err;

	err = ext2fs_lookup(ext4_fs_of(d), (ext2_ino_t)dir, name,
	    (int)strlen(name), NULL, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return -ENOENT;
	if (err == 0)
		err = ext2fs_read_inode(ext4_fs_of(d), ino, &in);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name, "looking up");
	ext4_inode_node(ino, &in, n);
	return 0;
}

/* Link ino into dir through libext2fs, growing dir when it is full. */
static errcode_t
x_link_lib(ext2_filsys fs, ext2_ino_t dir, const char *name, ext2_ino_t ino,
    int type)
{
	errcode_t err;

	err = ext2fs_link(fs, dir, name, ino, type);
	if (err != EXT2_ET_DIR_NO_SPACE)
		return err;
	err = ext2fs_expand_dir(fs, dir);
	if (err != 0)
		return err;
	return ext2fs_link(fs, dir, name, ino, type);
}

/*
 * Put the entry into a directory block: into an unused entry with room,
 * or by splitting one that has more room than its name needs. 1 if it
 * went in, 0 if the block is full (or not a well-formed block).
 */
static int
x_dirblk_add(ext2_filsys fs, char *buf, const char *name, ext2_ino_t ino,
    int type)
{
	struct ext2_dir_entry *de, *nx;
	unsigned int off = 0, rec, min, len = (unsigned int)strlen(name);
	unsigned int need = EXT2_DIR_REC_LEN(len), end = fs->blocksize;

	if (ext2fs_has_feature_metadata_csum(fs->super))
		end -= sizeof(struct ext2_dir_entry_tail);
	while (off + 8 <= end) {
		de = (struct ext2_dir_entry *)(buf + off);
		if (ext2fs_get_rec_len(fs, de, &rec) != 0 || rec < 8 ||
		    rec % 4 != 0 || off + rec > end)
			return 0;
		min = de->inode != 0 ?
		    EXT2_DIR_REC_LEN(ext2fs_dirent_name_len(de)) : 0;
		if (rec >= min + need) {
			if (min > 0) {
				ext2fs_set_rec_len(fs, min, de);
				nx = (struct ext2_dir_entry *)(buf + off + min);
				ext2fs_set_rec_len(fs, rec - min, nx);
				de = nx;
			}
			de->inode = ino;
			ext2fs_dirent_set_name_len(de, (int)len);
			ext2fs_dirent_set_file_type(de,
			    ext2fs_has_feature_filetype(fs->super) ? type : 0);
			memcpy(de->name, name, len);
			return 1;
		}
		off += rec;
	}
	return 0;
}

/*
 * The directory's last block, when it is a plain one pep may append to:
 * not inline, not indexed (htree), casefolded or encrypted. 0 if not.
 */
static blk64_t
x_dir_last(ext2_filsys fs, ext2_ino_t dir, blk64_t *lblk)
{
	struct ext2_inode in;
	uint64_t size;
	blk64_t pblk = 0;

	if (ext2fs_read_inode(fs, dir, &in) != 0 || !LINUX_S_ISDIR(in.i_mode) ||
	    (in.i_flags & (EXT2_INDEX_FL | EXT4_INLINE_DATA_FL |
	    EXT4_CASEFOLD_FL | EXT4_ENCRYPT_FL)))
		return 0;
	size = EXT2_I_SIZE(&in);
	if (size < fs->blocksize || size % fs->blocksize != 0)
		return 0;
	*lblk = size / fs->blocksize - 1;
	if (ext2fs_bmap2(fs, dir, &in, NULL, 0, *lblk, NULL, &pblk) != 0)
		return 0;
	return pblk;
}

/*
 * Link ino into dir as name. A plain directory gets the name in its last
 * block, or in a block added after it: ext2fs_link looks for room from
 * the first block on, reading and checking every one, so filling a
 * directory of n names cost n^2/2 block reads and checksums (10,000 names
 * took 3 s). Other directories go through ext2fs_link, which keeps their
 * index. The caller has made sure the name is not there.
 */
errcode_t
ext4_dir_add(ext2_filsys fs, ext2_ino_t dir, const char *name, ext2_ino_t ino,
    int type)
{
	blk64_t lblk = 0, pblk;
	errcode_t err = 0;
	char *buf = NULL;
	int tries;

	for (tries = 0; tries < 2 && err == 0; tries++) {
		pblk = x_dir_last(fs, dir, &lblk);
		if (pblk == 0)
			break;
		if (buf == NULL)
			err = ext2fs_get_mem(fs->blocksize, &buf);
		if (err == 0)
			err = ext2fs_read_dir_block4(fs, pblk, buf, 0, dir);
		if (err == 0 && x_dirblk_add(fs, buf, name, ino, type)) {
			err = ext2fs_write_dir_block4(fs, pblk, buf, 0, dir);
			ext2fs_free_mem(&buf);
			return err;
		}
		if (err == 0 && tries == 0)
			err = ext2fs_expand_dir(fs, dir);
	}
	ext2fs_free_mem(&buf);
	if (err != 0)
		return err;
	return x_link_lib(fs, dir, name, ino, type);
}

int
ext4_dir_filetype(uint32_t mode)
{
	switch (mode & LINUX_S_IFMT) {
	case LINUX_S_IFREG: return EXT2_FT_REG_FILE;
	case LINUX_S_IFDIR: return EXT2_FT_DIR;
	case LINUX_S_IFLNK: return EXT2_FT_SYMLINK;
	case LINUX_S_IFCHR: return EXT2_FT_CHRDEV;
	case LINUX_S_IFBLK: return EXT2_FT_BLKDEV;
	case LINUX_S_IFIFO: return EXT2_FT_FIFO;
	case LINUX_S_IFSOCK: return EXT2_FT_SOCK;
	default: return EXT2_FT_UNKNOWN;
	}
}

int
ext4_dir_link(struct fsdir *d, uint64_t dir, const char *name, uint64_t node,
    struct pep_err *e)
{
	struct ext2_inode_large li;
	errcode_t err;
	int r;

	r = ext4_fsdir_change(d, name, e);
	if (r < 0)
		return r;
	r = ext4_inode_read(d, (ext2_ino_t)node, &li, e);
	if (r < 0)
		return r;
	if (LINUX_S_ISDIR(li.i_mode))
		return pep_errf(e, EPERM, "%s: %s: a hard link to a directory",
		    d->label, name);
	if (li.i_links_count == EXT2_LINK_MAX)
		return pep_errf(e, EMLINK, "%s: %s: too many links", d->label,
		    name);
	err = ext4_dir_add(ext4_fs_of(d), (ext2_ino_t)dir, name,
	    (ext2_ino_t)node, ext4_dir_filetype(li.i_mode));
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name, "linking");
	li.i_links_count++;
	ext4_inode_stamp(d, &li, 0, 0);
	r = ext4_inode_write(d, (ext2_ino_t)node, &li, e);
	if (r == 0)
		r = ext4_inode_touch_dir(d, (ext2_ino_t)dir, e);
	return r;
}

/* An entry that names nothing of its own: a free slot, "." or "..". */
static int
x_dirent_none(const struct ext2_dir_entry *de, int len)
{
	return de->inode == 0 || (len == 1 && de->name[0] == '.') ||
	    (len == 2 && de->name[0] == '.' && de->name[1] == '.');
}

/* 1 if directory ino holds nothing but "." and "..". */
static int
x_dir_empty_cb(struct ext2_dir_entry *de, int off, int bs, char *buf,
    void *priv)
{
	int len = ext2fs_dirent_name_len(de), *empty = priv;

	(void)off;
	(void)bs;
	(void)buf;
	if (x_dirent_none(de, len))
		return 0;
	*empty = 0;
	return DIRENT_ABORT;
}

int
ext4_dir_unlink(struct fsdir *d, uint64_t dir, const char *name,
    struct pep_err *e)
{
	ext2_filsys fs = ext4_fs_of(d);
	struct ext2_inode_large li, pi;
	ext2_ino_t ino;
	errcode_t err;
	int r, empty = 1, isdir;

	r = ext4_fsdir_change(d, name, e);
	if (r < 0)
		return r;
	err = ext2fs_lookup(fs, (ext2_ino_t)dir, name, (int)strlen(name),
	    NULL, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return -ENOENT;
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name, "looking up");
	r = ext4_inode_read(d, ino, &li, e);
	if (r < 0)
		return r;
	isdir = LINUX_S_ISDIR(li.i_mode);
	if (isdir) {
		err = ext2fs_dir_iterate(fs, ino, 0, NULL, x_dir_empty_cb,
		    &empty);
		if (err != 0)
			return ext4_fsdir_err(d, e, err, name,
			    "reading directory");
		if (!empty)
			return pep_errf(e, ENOTEMPTY, "%s: %s: directory not "
			    "empty", d->label, name);
	}
	err = ext2fs_unlink(fs, (ext2_ino_t)dir, name, ino, 0);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name, "unlinking");
	if (isdir) {
		r = ext4_inode_read(d, (ext2_ino_t)dir, &pi, e);
		if (r == 0 && pi.i_links_count > 2)
			pi.i_links_count--;	/* its ".." is gone */
		if (r == 0)
			r = ext4_inode_write(d, (ext2_ino_t)dir, &pi, e);
		li.i_links_count = 0;
	} else if (li.i_links_count > 0) {
		li.i_links_count--;
	}
	if (r == 0 && li.i_links_count == 0)
		r = ext4_inode_free(d, ino, &li, e);
	else if (r == 0) {
		ext4_inode_stamp(d, &li, 0, 0);
		r = ext4_inode_write(d, ino, &li, e);
	}
	if (r == 0)
		r = ext4_inode_touch_dir(d, (ext2_ino_t)dir, e);
	return r;
}

struct x_iter {
	struct fsdir *d;
	fs_iter_fn fn;
	void *arg;
	int stop;
	errcode_t err;
};

static int
x_iter_cb(struct ext2_dir_entry *de, int off, int bs, char *buf, void *priv)
{
	struct x_iter *it = priv;
	char name[EXT2_NAME_LEN + 1];
	int len = ext2fs_dirent_name_len(de);
	struct ext2_inode in;
	struct fs_node n;

	(void)off;
	(void)bs;
	(void)buf;
	if (x_dirent_none(de, len))
		return 0;
	memcpy(name, de->name, (size_t)len);
	name[len] = '\0';
	it->err = ext2fs_read_inode(ext4_fs_of(it->d), de->inode, &in);
	if (it->err != 0)
		return DIRENT_ABORT;
	ext4_inode_node(de->inode, &in, &n);
	it->stop = it->fn(it->arg, name, &n);
	return it->stop ? DIRENT_ABORT : 0;
}

int
ext4_dir_iterate(struct fsdir *d, uint64_t dir, fs_iter_fn fn, void *arg,
    struct pep_err *e)
{
	struct x_iter it = { d, fn, arg, 0, 0 };
	errcode_t err;

	err = ext2fs_dir_iterate(ext4_fs_of(d), (ext2_ino_t)dir, 0, NULL,
	    x_iter_cb, &it);
	if (err == 0)
		err = it.err;
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "directory", "reading");
	return it.stop;
}
