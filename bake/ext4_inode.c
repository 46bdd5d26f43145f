/*
 * The ext4 fsdir backend's inodes (ext4_fsdir.c has the ops table): read
 * and written whole, their timestamps and metadata, a new one made
 * (ext4_fsdir.c links it), and an inode freed with its blocks when it
 * loses its last link.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ext4_priv.h"

int
ext4_inode_read(struct fsdir *d, ext2_ino_t ino, struct ext2_inode_large *li,
    struct pep_err *e)
{
	int isz = EXT2_INODE_SIZE(ext4_fs_of(d)->super);
	errcode_t err;

	if (isz > (int)sizeof(*li))
		isz = sizeof(*li);
	memset(li, 0, sizeof(*li));
	err = ext2fs_read_inode_full(ext4_fs_of(d), ino,
	    (struct ext2_inode *)li, isz);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "inode", "reading");
	return 0;
}

/*
 * A new inode, all of it: li, and zeros to the inode size. (1.47.0's
 * ext2fs_write_new_inode keeps only the first 128 bytes of what it is
 * given, which lost the nanoseconds, and makes a zero mtime now.)
 */
static int
x_write_new(struct fsdir *d, ext2_ino_t ino, struct ext2_inode_large *li,
    struct pep_err *e)
{
	size_t isz = (size_t)EXT2_INODE_SIZE(ext4_fs_of(d)->super);
	uint8_t *buf = calloc(1, isz);
	errcode_t err;

	if (buf == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	memcpy(buf, li, isz < sizeof(*li) ? isz : sizeof(*li));
	err = ext2fs_write_inode_full(ext4_fs_of(d), ino,
	    (struct ext2_inode *)buf, (int)isz);
	free(buf);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "inode", "writing");
	return 0;
}

int
ext4_inode_write(struct fsdir *d, ext2_ino_t ino, struct ext2_inode_large *li,
    struct pep_err *e)
{
	int isz = EXT2_INODE_SIZE(ext4_fs_of(d)->super);
	errcode_t err;

	if (isz > (int)sizeof(*li))
		isz = sizeof(*li);
	err = ext2fs_write_inode_full(ext4_fs_of(d), ino,
	    (struct ext2_inode *)li, isz);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "inode", "writing");
	return 0;
}

/* 1 if the large inode (of isz bytes) holds the field ending at end. */
static int
x_holds(const struct ext2_inode_large *li, int isz, size_t end)
{
	return isz > EXT2_GOOD_OLD_INODE_SIZE && end <= (size_t)isz &&
	    end <= EXT2_GOOD_OLD_INODE_SIZE + (size_t)li->i_extra_isize;
}

#define X_END(f) (offsetof(struct ext2_inode_large, f) + \
	sizeof(((struct ext2_inode_large *)NULL)->f))

/* The *_extra word: nanoseconds << 2, epoch bits 0. */
static uint32_t
x_extra(uint32_t ns)
{
	return ns < 1000000000u ? ns << 2 : 0;
}

static int
x_isz(struct fsdir *d)
{
	int isz = EXT2_INODE_SIZE(ext4_fs_of(d)->super);

	return isz > (int)sizeof(struct ext2_inode_large) ?
	    (int)sizeof(struct ext2_inode_large) : isz;
}

/* ctime (and with mtime, mtime) now; crtime too for a new inode. */
void
ext4_inode_stamp(struct fsdir *d, struct ext2_inode_large *li, int mtime,
    int born)
{
	uint32_t now = (uint32_t)d->now;
	int isz = x_isz(d);

	li->i_ctime = now;
	if (mtime)
		li->i_mtime = now;
	if (x_holds(li, isz, X_END(i_ctime_extra)))
		li->i_ctime_extra = 0;
	if (mtime && x_holds(li, isz, X_END(i_mtime_extra)))
		li->i_mtime_extra = 0;
	if (born && x_holds(li, isz, X_END(i_crtime_extra))) {
		li->i_crtime = now;
		li->i_crtime_extra = 0;
	}
}

/* A directory whose entries changed: its mtime and ctime become now. */
int
ext4_inode_touch_dir(struct fsdir *d, ext2_ino_t dir, struct pep_err *e)
{
	struct ext2_inode_large li;
	int r;

	r = ext4_inode_read(d, dir, &li, e);
	if (r < 0)
		return r;
	ext4_inode_stamp(d, &li, 1, 0);
	return ext4_inode_write(d, dir, &li, e);
}

void
ext4_inode_node(ext2_ino_t ino, const struct ext2_inode *in, struct fs_node *n)
{
	n->id = ino;
	n->mode = in->i_mode;
	n->nlink = in->i_links_count;
	n->size = EXT2_I_SIZE(in);
}

/* Owner, permissions and times from m onto an inode being made. */
static void
x_apply_meta(struct fsdir *d, struct ext2_inode_large *li,
    const struct fs_meta *m)
{
	int isz = x_isz(d);

	li->i_mode = (uint16_t)((li->i_mode & LINUX_S_IFMT) |
	    (m->mode & 07777));
	li->i_uid = (uint16_t)m->uid;
	ext2fs_set_i_uid_high(*li, m->uid >> 16);
	li->i_gid = (uint16_t)m->gid;
	ext2fs_set_i_gid_high(*li, m->gid >> 16);
	li->i_atime = li->i_mtime = (uint32_t)m->mtime;
	if (x_holds(li, isz, X_END(i_atime_extra)))
		li->i_atime_extra = li->i_mtime_extra = x_extra(m->mtime_ns);
	ext4_inode_stamp(d, li, 0, 1);
}

/* The device number as the kernel's ext4 stores it. */
static void
x_set_rdev(struct ext2_inode_large *li, const struct fs_meta *m)
{
	uint32_t ma = m->rdev_major, mi = m->rdev_minor;

	memset(li->i_block, 0, sizeof(li->i_block));
	if (ma < 256 && mi < 256) {
		li->i_block[0] = ma << 8 | mi;
	} else {
		li->i_block[1] = (mi & 0xff) | (ma & 0xfff) << 8 |
		    (mi & ~0xffu) << 12;
	}
}

/*
 * A directory through ext2fs_mkdir (given m later), on an inode taken
 * first: with no name, it does not look the name up in dir twice (for
 * being there, then for the inode it got) and link it by a scan.
 */
static int
x_make_dir(struct fsdir *d, ext2_ino_t dir, const char *name,
    ext2_ino_t *ino, struct pep_err *e)
{
	ext2_filsys fs = ext4_fs_of(d);
	errcode_t err;

	err = ext2fs_new_inode(fs, dir, LINUX_S_IFDIR | 0755, 0, ino);
	if (err == 0)
		err = ext2fs_mkdir(fs, dir, *ino, NULL);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name, "making directory");
	return 0;
}

static int
x_make_symlink(struct fsdir *d, ext2_ino_t dir, const char *name,
    const char *target, ext2_ino_t *ino, struct pep_err *e)
{
	ext2_filsys fs = ext4_fs_of(d);
	errcode_t err;

	err = ext2fs_new_inode(fs, dir, LINUX_S_IFLNK | 0777, 0, ino);
	if (err == 0)
		err = ext2fs_symlink(fs, dir, *ino, NULL, target);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name, "making symlink");
	return 0;
}

/* A regular file, device, FIFO or socket: a fresh inode. */
static int
x_make_other(struct fsdir *d, ext2_ino_t dir, const char *name,
    const struct fs_meta *m, ext2_ino_t *ino, struct pep_err *e)
{
	ext2_filsys fs = ext4_fs_of(d);
	struct ext2_inode_large li;
	ext2_extent_handle_t h;
	errcode_t err;
	int r;

	err = ext2fs_new_inode(fs, dir, (int)m->mode, 0, ino);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, name, "making");
	ext2fs_inode_alloc_stats2(fs, *ino, +1, 0);
	memset(&li, 0, sizeof(li));
	li.i_mode = (uint16_t)m->mode;
	li.i_links_count = 1;
	if (LINUX_S_ISCHR(m->mode) || LINUX_S_ISBLK(m->mode))
		x_set_rdev(&li, m);
	if (LINUX_S_ISREG(m->mode) && ext2fs_has_feature_inline_data(
	    fs->super)) {
		li.i_flags |= EXT4_INLINE_DATA_FL;
	} else if (LINUX_S_ISREG(m->mode) &&
	    ext2fs_has_feature_extents(fs->super)) {
		err = ext2fs_extent_open2(fs, *ino, (struct ext2_inode *)&li,
		    &h);
		if (err != 0)
			return ext4_fsdir_err(d, e, err, name,
			    "making extents");
		ext2fs_extent_free(h);
	}
	li.i_extra_isize = x_isz(d) > EXT2_GOOD_OLD_INODE_SIZE ?
	    sizeof(li) - EXT2_GOOD_OLD_INODE_SIZE : 0;
	x_apply_meta(d, &li, m);
	r = x_write_new(d, *ino, &li, e);
	if (r == 0 && (li.i_flags & EXT4_INLINE_DATA_FL)) {
		err = ext2fs_inline_data_init(fs, *ino);
		if (err != 0)
			r = ext4_fsdir_err(d, e, err, name,
			    "writing its inode");
	}
	return r;
}

/*
 * A new inode for a node named name (for messages) in dir, made as m
 * says (target: a symlink's), not yet linked: ext4_fsdir.c links it.
 */
int
ext4_inode_new(struct fsdir *d, ext2_ino_t dir, const char *name,
    const struct fs_meta *m, const char *target, ext2_ino_t *ino,
    struct pep_err *e)
{
	struct ext2_inode_large li;
	int r;

	*ino = 0;
	if (LINUX_S_ISDIR(m->mode))
		r = x_make_dir(d, dir, name, ino, e);
	else if (LINUX_S_ISLNK(m->mode))
		r = x_make_symlink(d, dir, name, target, ino, e);
	else
		r = x_make_other(d, dir, name, m, ino, e);
	if (r == 0 && (LINUX_S_ISDIR(m->mode) || LINUX_S_ISLNK(m->mode))) {
		r = ext4_inode_read(d, *ino, &li, e);
		if (r == 0) {
			x_apply_meta(d, &li, m);
			r = ext4_inode_write(d, *ino, &li, e);
		}
	}
	return r;
}

/* The logical block at which ino's extents map physical block pblk, in
 * [from, to]; 0 (and *found 0) when they do not. */
static errcode_t
x_find_pblk(ext2_extent_handle_t h, blk64_t pblk, blk64_t from, blk64_t to,
    blk64_t *lblk, int *found)
{
	struct ext2fs_extent ex;
	errcode_t err;

	*found = 0;
	err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &ex);
	while (err == 0) {
		if ((ex.e_flags & EXT2_EXTENT_FLAGS_LEAF) &&
		    pblk >= ex.e_pblk && pblk - ex.e_pblk < ex.e_len) {
			*lblk = ex.e_lblk + (pblk - ex.e_pblk);
			*found = *lblk >= from && *lblk <= to;
			return 0;
		}
		err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT_LEAF, &ex);
	}
	return err == EXT2_ET_EXTENT_NO_NEXT ? 0 : err;
}

/*
 * libext2fs 1.47.0's punch refuses to free the filesystem's last block
 * ('Illegal block number': an off-by-one fixed upstream in 1.47.3), after
 * it has taken the extent out of the tree: a file holding that block
 * could be neither deleted nor replaced. Before anything frees ino's
 * blocks [from, to], that one is unmapped and freed here if ino holds it
 * there. (Block-mapped files are freed without the check.)
 */
errcode_t
ext4_inode_free_last(ext2_filsys fs, ext2_ino_t ino, blk64_t from, blk64_t to)
{
	blk64_t last = ext2fs_blocks_count(fs->super) - 1, lblk = 0;
	ext2_extent_handle_t h = NULL;
	struct ext2_inode in;
	errcode_t err;
	int found = 0;

	if (!ext2fs_test_block_bitmap2(fs->block_map, last))
		return 0;
	err = ext2fs_read_inode(fs, ino, &in);
	if (err != 0 || !(in.i_flags & EXT4_EXTENTS_FL))
		return err;
	err = ext2fs_extent_open2(fs, ino, &in, &h);
	if (err == 0)
		err = x_find_pblk(h, last, from, to, &lblk, &found);
	if (err == 0 && found)
		err = ext2fs_extent_set_bmap(h, lblk, 0, 0);
	if (err == 0 && found) {
		ext2fs_block_alloc_stats2(fs, last, -1);
		err = ext2fs_iblk_sub_blocks(fs, &in, 1);
	}
	if (err == 0 && found)
		err = ext2fs_write_inode(fs, ino, &in);
	ext2fs_extent_free(h);
	return err;
}

/* Free an inode that lost its last link: blocks, xattr block, bitmap. */
int
ext4_inode_free(struct fsdir *d, ext2_ino_t ino, struct ext2_inode_large *li,
    struct pep_err *e)
{
	ext2_filsys fs = ext4_fs_of(d);
	errcode_t err = 0;
	int r;

	if (ext2fs_inode_has_valid_blocks2(fs, (struct ext2_inode *)li)) {
		err = ext4_inode_free_last(fs, ino, 0, ~0ULL);
		if (err != 0)
			return ext4_fsdir_err(d, e, err, "inode", "freeing");
		/* as ext4_inode_free_last left it */
		r = ext4_inode_read(d, ino, li, e);
		if (r < 0)
			return r;
		err = ext2fs_punch(fs, ino, (struct ext2_inode *)li, NULL, 0,
		    ~0ULL);
	}
	if (err == 0)
		err = ext2fs_free_ext_attr(fs, ino, li);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "inode", "freeing");
	ext2fs_inode_alloc_stats2(fs, ino, -1, LINUX_S_ISDIR(li->i_mode));
	li->i_links_count = 0;
	li->i_dtime = (uint32_t)d->now;
	return ext4_inode_write(d, ino, li, e);
}

int
ext4_inode_set_meta(struct fsdir *d, uint64_t node, unsigned what,
    const struct fs_meta *m, struct pep_err *e)
{
	struct ext2_inode_large li;
	int r;

	r = ext4_fsdir_change(d, "inode", e);
	if (r < 0)
		return r;
	r = ext4_inode_read(d, (ext2_ino_t)node, &li, e);
	if (r < 0)
		return r;
	if (what & FS_SET_MODE)
		li.i_mode = (uint16_t)((li.i_mode & LINUX_S_IFMT) |
		    (m->mode & 07777));
	if (what & FS_SET_OWNER) {
		li.i_uid = (uint16_t)m->uid;
		ext2fs_set_i_uid_high(li, m->uid >> 16);
		li.i_gid = (uint16_t)m->gid;
		ext2fs_set_i_gid_high(li, m->gid >> 16);
	}
	if (what & FS_SET_MTIME) {
		li.i_mtime = (uint32_t)m->mtime;
		if (x_holds(&li, x_isz(d), X_END(i_mtime_extra)))
			li.i_mtime_extra = x_extra(m->mtime_ns);
	}
	ext4_inode_stamp(d, &li, 0, 0);
	return ext4_inode_write(d, (ext2_ino_t)node, &li, e);
}
