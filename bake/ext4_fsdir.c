/*
 * The fsdir backend for ext2/3/4, through libext2fs 1.47.0: nodes are
 * inode numbers. Every timestamp comes from the caller (fs_meta's mtime)
 * or the handle's now (ctime, crtime, and the mtime of a directory whose
 * entries change), with nanoseconds as given: two runs on identical input
 * write identical bytes.
 *
 * File data goes around libext2fs's block-at-a-time file writer: blocks
 * are allocated a run at a time (ext2fs_fallocate, which places them as
 * mke2fs would) and written with one pwrite per extent into the image.
 * Blocks that are all zero stay holes. Inline-data files and files
 * without extents (ext2/3) use libext2fs's own writer.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <et/com_err.h>

#include "../common/mem.h"
#include "ext4_priv.h"

#define X_INLINE_MAX	60	/* i_block: inline data always fits here */

static struct ext4 *
x_of(struct fsdir *d)
{
	return d->priv;
}

static ext2_filsys
fs_of(struct fsdir *d)
{
	return x_of(d)->fs;
}

/* A libext2fs failure: named by the writer's subject if it set one. */
static int
x_err(struct fsdir *d, struct pep_err *e, errcode_t err, const char *name,
    const char *what)
{
	return ext4_lib_err(x_of(d), e, err,
	    d->subject != NULL ? d->subject : name, what);
}

/*
 * Every change starts here: refused on a read-only handle, and it makes
 * the quota usage stale (ext4_close counts it again). From the first
 * one on, metadata blocks are cached (ext4_io.c): the grow, which writes
 * around libext2fs, is over by then.
 */
static int
x_change(struct fsdir *d, const char *name, struct pep_err *e)
{
	struct ext4 *x = x_of(d);

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
x_read_large(struct fsdir *d, ext2_ino_t ino, struct ext2_inode_large *li,
    struct pep_err *e)
{
	int isz = EXT2_INODE_SIZE(fs_of(d)->super);
	errcode_t err;

	if (isz > (int)sizeof(*li))
		isz = sizeof(*li);
	memset(li, 0, sizeof(*li));
	err = ext2fs_read_inode_full(fs_of(d), ino, (struct ext2_inode *)li,
	    isz);
	if (err != 0)
		return x_err(d, e, err, "inode", "reading");
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
	size_t isz = (size_t)EXT2_INODE_SIZE(fs_of(d)->super);
	uint8_t *buf = calloc(1, isz);
	errcode_t err;

	if (buf == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	memcpy(buf, li, isz < sizeof(*li) ? isz : sizeof(*li));
	err = ext2fs_write_inode_full(fs_of(d), ino, (struct ext2_inode *)buf,
	    (int)isz);
	free(buf);
	if (err != 0)
		return x_err(d, e, err, "inode", "writing");
	return 0;
}

static int
x_write_large(struct fsdir *d, ext2_ino_t ino, struct ext2_inode_large *li,
    struct pep_err *e)
{
	int isz = EXT2_INODE_SIZE(fs_of(d)->super);
	errcode_t err;

	if (isz > (int)sizeof(*li))
		isz = sizeof(*li);
	err = ext2fs_write_inode_full(fs_of(d), ino, (struct ext2_inode *)li,
	    isz);
	if (err != 0)
		return x_err(d, e, err, "inode", "writing");
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
	int isz = EXT2_INODE_SIZE(fs_of(d)->super);

	return isz > (int)sizeof(struct ext2_inode_large) ?
	    (int)sizeof(struct ext2_inode_large) : isz;
}

/* ctime (and with mtime, mtime) now; crtime too for a new inode. */
static void
x_stamp(struct fsdir *d, struct ext2_inode_large *li, int mtime, int born)
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
static int
x_touch_dir(struct fsdir *d, ext2_ino_t dir, struct pep_err *e)
{
	struct ext2_inode_large li;
	int r;

	r = x_read_large(d, dir, &li, e);
	if (r < 0)
		return r;
	x_stamp(d, &li, 1, 0);
	return x_write_large(d, dir, &li, e);
}

static void
x_node(ext2_ino_t ino, const struct ext2_inode *in, struct fs_node *n)
{
	n->id = ino;
	n->mode = in->i_mode;
	n->nlink = in->i_links_count;
	n->size = EXT2_I_SIZE(in);
}

static int
x_lookup(struct fsdir *d, uint64_t dir, const char *name, struct fs_node *n,
    struct pep_err *e)
{
	struct ext2_inode in;
	ext2_ino_t ino;
	errcode_t err;

	err = ext2fs_lookup(fs_of(d), (ext2_ino_t)dir, name,
	    (int)strlen(name), NULL, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return -ENOENT;
	if (err == 0)
		err = ext2fs_read_inode(fs_of(d), ino, &in);
	if (err != 0)
		return x_err(d, e, err, name, "looking up");
	x_node(ino, &in, n);
	return 0;
}

static int
x_readlink(struct fsdir *d, uint64_t node, char *buf, size_t size,
    struct pep_err *e)
{
	ext2_filsys fs = fs_of(d);
	struct ext2_inode in;
	ext2_file_t f = NULL;
	unsigned int got = 0;
	size_t len = 0;
	errcode_t err;

	err = ext2fs_read_inode(fs, (ext2_ino_t)node, &in);
	if (err == 0 && !LINUX_S_ISLNK(in.i_mode))
		err = EXT2_ET_INVALID_ARGUMENT;
	if (err != 0)
		return x_err(d, e, err, "symlink", "reading");
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
			return x_err(d, e, err, "symlink", "reading");
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL || len == 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: a symlink (inode %llu) "
		    "with an empty or NUL-holding target", d->label,
		    (unsigned long long)node);
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
static errcode_t
x_dir_add(ext2_filsys fs, ext2_ino_t dir, const char *name, ext2_ino_t ino,
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

static int
x_filetype(uint32_t mode)
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
	x_stamp(d, li, 0, 1);
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
	ext2_filsys fs = fs_of(d);
	errcode_t err;

	err = ext2fs_new_inode(fs, dir, LINUX_S_IFDIR | 0755, 0, ino);
	if (err == 0)
		err = ext2fs_mkdir(fs, dir, *ino, NULL);
	if (err == 0)
		err = x_dir_add(fs, dir, name, *ino, EXT2_FT_DIR);
	if (err != 0)
		return x_err(d, e, err, name, "making directory");
	return 0;
}

static int
x_make_symlink(struct fsdir *d, ext2_ino_t dir, const char *name,
    const char *target, ext2_ino_t *ino, struct pep_err *e)
{
	ext2_filsys fs = fs_of(d);
	errcode_t err;

	err = ext2fs_new_inode(fs, dir, LINUX_S_IFLNK | 0777, 0, ino);
	if (err == 0)
		err = ext2fs_symlink(fs, dir, *ino, NULL, target);
	if (err == 0)
		err = x_dir_add(fs, dir, name, *ino, EXT2_FT_SYMLINK);
	if (err != 0)
		return x_err(d, e, err, name, "making symlink");
	return 0;
}

/* A regular file, device, FIFO or socket: a fresh inode, linked. */
static int
x_make_other(struct fsdir *d, ext2_ino_t dir, const char *name,
    const struct fs_meta *m, ext2_ino_t *ino, struct pep_err *e)
{
	ext2_filsys fs = fs_of(d);
	struct ext2_inode_large li;
	ext2_extent_handle_t h;
	errcode_t err;
	int r;

	err = ext2fs_new_inode(fs, dir, (int)m->mode, 0, ino);
	if (err == 0)
		err = x_dir_add(fs, dir, name, *ino, x_filetype(m->mode));
	if (err != 0)
		return x_err(d, e, err, name, "making");
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
			return x_err(d, e, err, name, "making extents");
		ext2fs_extent_free(h);
	}
	li.i_extra_isize = x_isz(d) > EXT2_GOOD_OLD_INODE_SIZE ?
	    sizeof(li) - EXT2_GOOD_OLD_INODE_SIZE : 0;
	x_apply_meta(d, &li, m);
	r = x_write_new(d, *ino, &li, e);
	if (r == 0 && (li.i_flags & EXT4_INLINE_DATA_FL)) {
		err = ext2fs_inline_data_init(fs, *ino);
		if (err != 0)
			r = x_err(d, e, err, name, "writing its inode");
	}
	return r;
}

static int
x_make(struct fsdir *d, uint64_t dir, const char *name,
    const struct fs_meta *m, const char *target, struct fs_node *n,
    struct pep_err *e)
{
	struct ext2_inode_large li;
	ext2_ino_t ino = 0;
	int r;

	r = x_change(d, name, e);
	if (r < 0)
		return r;
	if (LINUX_S_ISDIR(m->mode))
		r = x_make_dir(d, (ext2_ino_t)dir, name, &ino, e);
	else if (LINUX_S_ISLNK(m->mode))
		r = x_make_symlink(d, (ext2_ino_t)dir, name, target, &ino, e);
	else
		r = x_make_other(d, (ext2_ino_t)dir, name, m, &ino, e);
	if (r == 0 && (LINUX_S_ISDIR(m->mode) || LINUX_S_ISLNK(m->mode))) {
		r = x_read_large(d, ino, &li, e);
		if (r == 0) {
			x_apply_meta(d, &li, m);
			r = x_write_large(d, ino, &li, e);
		}
	}
	if (r == 0)
		r = x_touch_dir(d, (ext2_ino_t)dir, e);
	if (r == 0)
		r = x_read_large(d, ino, &li, e);
	if (r == 0)
		x_node(ino, (struct ext2_inode *)&li, n);
	return r;
}

static int
x_link(struct fsdir *d, uint64_t dir, const char *name, uint64_t node,
    struct pep_err *e)
{
	struct ext2_inode_large li;
	errcode_t err;
	int r;

	r = x_change(d, name, e);
	if (r < 0)
		return r;
	r = x_read_large(d, (ext2_ino_t)node, &li, e);
	if (r < 0)
		return r;
	if (LINUX_S_ISDIR(li.i_mode))
		return pep_errf(e, EPERM, "%s: %s: a hard link to a directory",
		    d->label, name);
	if (li.i_links_count == EXT2_LINK_MAX)
		return pep_errf(e, EMLINK, "%s: %s: too many links", d->label,
		    name);
	err = x_dir_add(fs_of(d), (ext2_ino_t)dir, name, (ext2_ino_t)node,
	    x_filetype(li.i_mode));
	if (err != 0)
		return x_err(d, e, err, name, "linking");
	li.i_links_count++;
	x_stamp(d, &li, 0, 0);
	r = x_write_large(d, (ext2_ino_t)node, &li, e);
	if (r == 0)
		r = x_touch_dir(d, (ext2_ino_t)dir, e);
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
		if ((ex.e_flags & EXT2_EXTENT_FLAGS_LEAF) && pblk >= ex.e_pblk &&
		    pblk - ex.e_pblk < ex.e_len) {
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
static errcode_t
x_free_last(ext2_filsys fs, ext2_ino_t ino, blk64_t from, blk64_t to)
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
static int
x_free_inode(struct fsdir *d, ext2_ino_t ino, struct ext2_inode_large *li,
    struct pep_err *e)
{
	ext2_filsys fs = fs_of(d);
	errcode_t err = 0;
	int r;

	if (ext2fs_inode_has_valid_blocks2(fs, (struct ext2_inode *)li)) {
		err = x_free_last(fs, ino, 0, ~0ULL);
		if (err != 0)
			return x_err(d, e, err, "inode", "freeing");
		r = x_read_large(d, ino, li, e);	/* as x_free_last left it */
		if (r < 0)
			return r;
		err = ext2fs_punch(fs, ino, (struct ext2_inode *)li, NULL, 0,
		    ~0ULL);
	}
	if (err == 0)
		err = ext2fs_free_ext_attr(fs, ino, li);
	if (err != 0)
		return x_err(d, e, err, "inode", "freeing");
	ext2fs_inode_alloc_stats2(fs, ino, -1, LINUX_S_ISDIR(li->i_mode));
	li->i_links_count = 0;
	li->i_dtime = (uint32_t)d->now;
	return x_write_large(d, ino, li, e);
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
	if (de->inode == 0 || (len == 1 && de->name[0] == '.') ||
	    (len == 2 && de->name[0] == '.' && de->name[1] == '.'))
		return 0;
	*empty = 0;
	return DIRENT_ABORT;
}

static int
x_unlink(struct fsdir *d, uint64_t dir, const char *name, struct pep_err *e)
{
	ext2_filsys fs = fs_of(d);
	struct ext2_inode_large li, pi;
	ext2_ino_t ino;
	errcode_t err;
	int r, empty = 1, isdir;

	r = x_change(d, name, e);
	if (r < 0)
		return r;
	err = ext2fs_lookup(fs, (ext2_ino_t)dir, name, (int)strlen(name),
	    NULL, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return -ENOENT;
	if (err != 0)
		return x_err(d, e, err, name, "looking up");
	r = x_read_large(d, ino, &li, e);
	if (r < 0)
		return r;
	isdir = LINUX_S_ISDIR(li.i_mode);
	if (isdir) {
		err = ext2fs_dir_iterate(fs, ino, 0, NULL, x_dir_empty_cb,
		    &empty);
		if (err != 0)
			return x_err(d, e, err, name, "reading directory");
		if (!empty)
			return pep_errf(e, ENOTEMPTY, "%s: %s: directory not "
			    "empty", d->label, name);
	}
	err = ext2fs_unlink(fs, (ext2_ino_t)dir, name, ino, 0);
	if (err != 0)
		return x_err(d, e, err, name, "unlinking");
	if (isdir) {
		r = x_read_large(d, (ext2_ino_t)dir, &pi, e);
		if (r == 0 && pi.i_links_count > 2)
			pi.i_links_count--;	/* its ".." is gone */
		if (r == 0)
			r = x_write_large(d, (ext2_ino_t)dir, &pi, e);
		li.i_links_count = 0;
	} else if (li.i_links_count > 0) {
		li.i_links_count--;
	}
	if (r == 0 && li.i_links_count == 0)
		r = x_free_inode(d, ino, &li, e);
	else if (r == 0) {
		x_stamp(d, &li, 0, 0);
		r = x_write_large(d, ino, &li, e);
	}
	if (r == 0)
		r = x_touch_dir(d, (ext2_ino_t)dir, e);
	return r;
}

/* ------------------------------------------------------------- data */

static int
x_pwrite(struct fsdir *d, const void *buf, size_t len, uint64_t pblk,
    struct pep_err *e)
{
	struct ext4 *x = x_of(d);
	uint64_t at = x->off + pblk * fs_of(d)->blocksize;
	const uint8_t *p = buf;
	ssize_t n;

	ext4_io_forget(x->fs->io, pblk, len / fs_of(d)->blocksize);
	while (len > 0) {
		n = pwrite(x->fd, p, len, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return x_err(d, e, n < 0 ? errno : EIO, "data",
			    "writing");
		p += n;
		len -= (size_t)n;
		at += (uint64_t)n;
	}
	return 0;
}

/* One write into a file: where, and how its blocks are mapped. */
struct x_wr {
	struct fsdir *d;
	ext2_ino_t ino;
	uint64_t old_size;	/* before this write */
	int mapped;		/* block-mapped (ext2/3): libext2fs's writer */
};

#define X_EXT_MAX	32768	/* blocks in an initialized extent */

/* Room to add after the last extent: blocks and where they go. */
static void
x_append_run(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode *in,
    const struct ext2fs_extent *last, int have, blk64_t lblk, blk64_t want,
    blk64_t *goal, blk64_t *max)
{
	*max = want < X_EXT_MAX ? want : X_EXT_MAX;
	if (!have) {
		*goal = ext2fs_find_inode_goal(fs, ino, in, lblk);
		return;
	}
	*goal = last->e_pblk + last->e_len + (lblk - last->e_lblk -
	    last->e_len);
	if (lblk == last->e_lblk + last->e_len &&
	    !(last->e_flags & EXT2_EXTENT_FLAGS_UNINIT) &&
	    X_EXT_MAX - last->e_len < *max)
		*max = X_EXT_MAX - last->e_len;
	if (*max == 0)
		*max = want < X_EXT_MAX ? want : X_EXT_MAX;
}

/* One run of blocks [lblk, +len) at pblk into the tree: the last extent
 * grows when the run follows it in the file and on disk. */
static errcode_t
x_append_extent(ext2_extent_handle_t h, struct ext2fs_extent *last,
    int *have, blk64_t lblk, blk64_t pblk, blk64_t len)
{
	struct ext2fs_extent nx;
	errcode_t err;

	if (*have && lblk == last->e_lblk + last->e_len &&
	    pblk == last->e_pblk + last->e_len &&
	    !(last->e_flags & EXT2_EXTENT_FLAGS_UNINIT) &&
	    last->e_len + len <= X_EXT_MAX) {
		last->e_len += (uint32_t)len;
		err = ext2fs_extent_replace(h, 0, last);
	} else {
		nx.e_lblk = lblk;
		nx.e_pblk = pblk;
		nx.e_len = (uint32_t)len;
		nx.e_flags = 0;
		err = ext2fs_extent_insert(h, *have ? EXT2_EXTENT_INSERT_AFTER :
		    0, &nx);
		if (err == 0)
			err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, last);
		*have = 1;
	}
	if (err == 0)
		err = ext2fs_extent_fix_parents(h);
	return err;
}

/*
 * Blocks past the last extent of the file (the common case: a file
 * written in order): allocated in runs from where the last extent ends
 * (or the inode's goal), each merged into the last extent when it
 * follows it in the file and on disk, and written. ext2fs_fallocate
 * never extends an initialized extent without zeroing its new blocks
 * first, so a file copied a 1 MiB chunk at a time got an extent per
 * chunk and a tree block for every 340. 1 when done, 0 when the blocks
 * are not past the last extent.
 */
static int
x_append(struct x_wr *w, blk64_t lblk, blk64_t count, const uint8_t *buf,
    struct pep_err *e)
{
	ext2_filsys fs = fs_of(w->d);
	ext2_extent_handle_t h = NULL;
	struct ext2fs_extent last;
	struct ext2_extent_info info;
	struct ext2_inode in;
	blk64_t done = 0, goal, max, pblk, plen;
	errcode_t err;
	int have = 0, r = 0;

	if (EXT2FS_CLUSTER_RATIO(fs) > 1)
		return 0;
	err = ext2fs_read_inode(fs, w->ino, &in);
	if (err == 0)
		err = ext2fs_extent_open2(fs, w->ino, &in, &h);
	if (err == 0)
		err = ext2fs_extent_get_info(h, &info);
	if (err == 0 && (info.max_depth > 0 || info.num_entries > 0)) {
		err = ext2fs_extent_get(h, EXT2_EXTENT_LAST_LEAF, &last);
		have = 1;
	}
	if (err == 0 && have && last.e_lblk + last.e_len > lblk) {
		ext2fs_extent_free(h);
		return 0;
	}
	while (err == 0 && r == 0 && done < count) {
		x_append_run(fs, w->ino, &in, &last, have, lblk + done,
		    count - done, &goal, &max);
		err = ext2fs_new_range(fs, 0, goal, max, NULL, &pblk, &plen);
		if (err != 0)
			break;
		if (plen > max)
			plen = max;
		ext2fs_block_alloc_stats_range(fs, pblk, (blk_t)plen, +1);
		err = ext2fs_iblk_add_blocks(fs, &in, plen);
		if (err == 0)
			err = x_append_extent(h, &last, &have, lblk + done,
			    pblk, plen);
		if (err == 0)
			r = x_pwrite(w->d, buf + done * fs->blocksize,
			    (size_t)(plen * fs->blocksize), pblk, e);
		done += plen;
	}
	if (err == 0 && r == 0)
		err = ext2fs_write_inode(fs, w->ino, &in);
	ext2fs_extent_free(h);
	if (r == 0 && err != 0)
		r = x_err(w->d, e, err, "data", "allocating");
	return r < 0 ? r : 1;
}

/*
 * Blocks lblk.. of an extent-mapped file, count of them, hold data:
 * allocate what is not allocated (one run, placed as mke2fs would) and
 * write them one extent at a time.
 */
static int
x_put_extents(struct x_wr *w, blk64_t lblk, blk64_t count,
    const uint8_t *buf, struct pep_err *e)
{
	ext2_filsys fs = fs_of(w->d);
	ext2_extent_handle_t h = NULL;
	struct ext2fs_extent ex;
	blk64_t done = 0, skip, n;
	errcode_t err;
	int r;

	r = x_append(w, lblk, count, buf, e);
	if (r != 0)
		return r < 0 ? r : 0;
	err = ext2fs_fallocate(fs, EXT2_FALLOCATE_FORCE_INIT, w->ino, NULL,
	    ~0ULL, lblk, count);
	if (err == 0)
		err = ext2fs_extent_open(fs, w->ino, &h);
	if (err == 0)
		err = ext2fs_extent_goto(h, lblk);
	while (err == 0 && done < count) {
		err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &ex);
		if (err != 0)
			break;
		skip = lblk + done - ex.e_lblk;
		if (lblk + done < ex.e_lblk || skip >= ex.e_len) {
			err = EXT2_ET_EXTENT_NOT_FOUND;
			break;
		}
		n = ex.e_len - skip;
		if (n > count - done)
			n = count - done;
		r = x_pwrite(w->d, buf + done * fs->blocksize,
		    (size_t)(n * fs->blocksize), ex.e_pblk + skip, e);
		if (r < 0)
			break;
		done += n;
		if (done < count)
			err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT_LEAF, &ex);
	}
	ext2fs_extent_free(h);
	if (r == 0 && err != 0)
		r = x_err(w->d, e, err, "data", "allocating");
	return r;
}

/* Through libext2fs's file writer (block-mapped files). */
static int
x_write_lib(struct fsdir *d, ext2_ino_t ino, uint64_t off, const void *buf,
    size_t len, struct pep_err *e)
{
	ext2_file_t f = NULL;
	unsigned int wrote = 0;
	errcode_t err, err2;

	err = ext2fs_file_open(fs_of(d), ino, EXT2_FILE_WRITE, &f);
	if (err == 0)
		err = ext2fs_file_llseek(f, off, EXT2_SEEK_SET, NULL);
	if (err == 0 && len > 0)
		err = ext2fs_file_write(f, buf, (unsigned int)len, &wrote);
	if (err == 0 && wrote != len)
		err = EXT2_ET_SHORT_WRITE;
	err2 = f != NULL ? ext2fs_file_close(f) : 0;
	if (err == 0)
		err = err2;
	if (err != 0)
		return x_err(d, e, err, "data", "writing");
	return 0;
}

/* Whole blocks that hold data, however the file maps them. */
static int
x_put_blocks(struct x_wr *w, blk64_t lblk, blk64_t count,
    const uint8_t *buf, struct pep_err *e)
{
	unsigned int bs = fs_of(w->d)->blocksize;

	if (w->mapped)
		return x_write_lib(w->d, w->ino, lblk * bs, buf,
		    (size_t)(count * bs), e);
	return x_put_extents(w, lblk, count, buf, e);
}

/* Whole blocks from lblk: runs of data written, runs of zeros punched
 * where the file had data (left as holes where it had none). */
static int
x_put_whole(struct x_wr *w, blk64_t lblk, blk64_t count, const uint8_t *buf,
    struct pep_err *e)
{
	unsigned int bs = fs_of(w->d)->blocksize;
	blk64_t i = 0, j;
	errcode_t err;
	int zero, r;

	while (i < count) {
		zero = mem_is_zero(buf + i * bs, bs);
		for (j = i + 1; j < count &&
		    mem_is_zero(buf + j * bs, bs) == zero; j++)
			;
		if (!zero) {
			r = x_put_blocks(w, lblk + i, j - i, buf + i * bs, e);
			if (r < 0)
				return r;
		} else if ((lblk + i) * bs < w->old_size) {
			err = x_free_last(fs_of(w->d), w->ino, lblk + i,
			    lblk + j - 1);
			if (err == 0)
				err = ext2fs_punch(fs_of(w->d), w->ino, NULL,
				    NULL, lblk + i, lblk + j - 1);
			if (err != 0)
				return x_err(w->d, e, err, "data", "punching");
		}
		i = j;
	}
	return 0;
}

/* A part of one block: read-modify-write where it has a block. */
static int
x_put_part(struct x_wr *w, uint64_t off, const uint8_t *p, size_t len,
    struct pep_err *e)
{
	ext2_filsys fs = fs_of(w->d);
	unsigned int bs = fs->blocksize;
	blk64_t lblk = off / bs, pblk = 0;
	uint8_t *blk = NULL;
	errcode_t err = 0;
	int r;

	if (lblk * bs < w->old_size)
		err = ext2fs_bmap2(fs, w->ino, NULL, NULL, 0, lblk, NULL,
		    &pblk);
	if (err != 0)
		return x_err(w->d, e, err, "data", "mapping");
	if (pblk == 0 && mem_is_zero(p, len))
		return 0;
	blk = calloc(1, bs);
	if (blk == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	err = pblk != 0 ? io_channel_read_blk64(fs->io, pblk, 1, blk) : 0;
	if (err != 0) {
		free(blk);
		return x_err(w->d, e, err, "data", "reading");
	}
	memcpy(blk + off % bs, p, len);
	r = x_put_blocks(w, lblk, 1, blk, e);
	free(blk);
	return r;
}

/* Head part, whole blocks, tail part. */
static int
x_put(struct x_wr *w, uint64_t off, const uint8_t *p, size_t len,
    struct pep_err *e)
{
	unsigned int bs = fs_of(w->d)->blocksize;
	size_t n;
	int r = 0;

	if (off % bs != 0) {
		n = bs - off % bs < len ? bs - off % bs : len;
		r = x_put_part(w, off, p, n, e);
		off += n;
		p += n;
		len -= n;
	}
	if (r == 0 && len >= bs) {
		n = len / bs * bs;
		r = x_put_whole(w, off / bs, n / bs, p, e);
		off += n;
		p += n;
		len -= n;
	}
	if (r == 0 && len > 0)
		r = x_put_part(w, off, p, len, e);
	return r;
}

/* Remove the inline-data xattr (system.data). */
static errcode_t
x_drop_system_data(ext2_filsys fs, ext2_ino_t ino)
{
	struct ext2_xattr_handle *h = NULL;
	errcode_t err, err2;

	err = ext2fs_xattrs_open(fs, ino, &h);
	if (err != 0)
		return err;
	err = ext2fs_xattrs_read(h);
	if (err == 0)
		err = ext2fs_xattr_remove(h, "system.data");
	err2 = ext2fs_xattrs_close(&h);
	return err != 0 ? err : err2;
}

/* An inline-data file's bytes (its size of them), malloc'd. */
static int
x_inline_get(struct fsdir *d, ext2_ino_t ino, uint64_t isize, uint8_t **old,
    size_t *oldlen, struct pep_err *e)
{
	ext2_filsys fs = fs_of(d);
	size_t size = 0;
	errcode_t err;

	*old = calloc(1, (size_t)EXT2_INODE_SIZE(fs->super) +
	    EXT4_MIN_INLINE_DATA_SIZE);
	if (*old == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	err = ext2fs_inline_data_get(fs, ino, NULL, *old, &size);
	if (err != 0)
		return x_err(d, e, err, "inline data", "reading");
	/* size is the room inline, not the file's size */
	*oldlen = isize < size ? (size_t)isize : size;
	return 0;
}

static int
x_set_size(struct fsdir *d, ext2_ino_t ino, uint64_t size, int grow_only,
    struct pep_err *e)
{
	struct ext2_inode_large li;
	errcode_t err;
	int r;

	r = x_read_large(d, ino, &li, e);
	if (r < 0 || (grow_only && EXT2_I_SIZE(&li) >= size))
		return r;
	err = ext2fs_inode_size_set(fs_of(d), (struct ext2_inode *)&li, size);
	if (err != 0)
		return x_err(d, e, err, "data", "setting the size");
	return x_write_large(d, ino, &li, e);
}

/*
 * An inline-data file that stays inline (size at most X_INLINE_MAX):
 * its bytes rebuilt, buf put at off, set whole, then its size. 1.47.0's
 * own writer copies nbytes - pos bytes from the start of the inline area
 * (fixed in 1.47.3), and its truncate asks bmap for a block an inline
 * file does not have (EXT2_ET_INLINE_DATA_NO_BLOCK).
 */
static int
x_inline_put(struct fsdir *d, ext2_ino_t ino, uint64_t isize, uint64_t off,
    const void *buf, size_t len, uint64_t size, struct pep_err *e)
{
	uint8_t data[X_INLINE_MAX], *old = NULL;
	size_t oldlen = 0;
	errcode_t err;
	int r;

	memset(data, 0, sizeof(data));
	r = x_inline_get(d, ino, isize, &old, &oldlen, e);
	if (r == 0) {
		memcpy(data, old, oldlen < size ? oldlen : (size_t)size);
		if (len > 0)
			memcpy(data + off, buf, len);
		err = ext2fs_inline_data_set(fs_of(d), ino, NULL, data,
		    sizeof(data));
		if (err != 0)
			r = x_err(d, e, err, "inline data", "writing");
	}
	free(old);
	if (r == 0)
		r = x_set_size(d, ino, size, 0, e);
	return r;
}

/*
 * An inline-data file about to outgrow i_block: its bytes come out, the
 * inline area goes, the file becomes an extent-mapped one and its bytes
 * go back in (1.47.0's own conversion first copies a whole write into a
 * 3-block buffer).
 */
static int
x_uninline(struct fsdir *d, ext2_ino_t ino, uint64_t isize,
    struct pep_err *e)
{
	ext2_filsys fs = fs_of(d);
	struct ext2_inode_large li;
	ext2_extent_handle_t h;
	struct x_wr w = { d, ino, 0, 0 };
	uint8_t *old = NULL;
	size_t oldlen = 0;
	errcode_t err;
	int r;

	r = x_inline_get(d, ino, isize, &old, &oldlen, e);
	err = r == 0 ? x_drop_system_data(fs, ino) : 0;
	if (err != 0)
		r = x_err(d, e, err, "inline data", "converting");
	if (r == 0)
		r = x_read_large(d, ino, &li, e);
	if (r == 0) {
		memset(li.i_block, 0, sizeof(li.i_block));
		li.i_flags &= ~(EXT4_INLINE_DATA_FL | EXT4_EXTENTS_FL);
		li.i_size = li.i_size_high = 0;
		err = ext2fs_extent_open2(fs, ino, (struct ext2_inode *)&li,
		    &h);
		if (err != 0)
			r = x_err(d, e, err, "inline data", "converting");
		else
			ext2fs_extent_free(h);
	}
	if (r == 0)
		r = x_write_large(d, ino, &li, e);
	if (r == 0 && oldlen > 0)
		r = x_put(&w, 0, old, oldlen, e);
	if (r == 0)
		r = x_set_size(d, ino, isize, 0, e);
	free(old);
	return r;
}

static int
x_write(struct fsdir *d, uint64_t node, uint64_t off, const void *buf,
    size_t len, struct pep_err *e)
{
	ext2_ino_t ino = (ext2_ino_t)node;
	struct x_wr w = { d, ino, 0, 0 };
	struct ext2_inode in;
	uint64_t end = off + len;
	errcode_t err;
	int r;

	if (len == 0)
		return 0;
	if (len > UINT_MAX || off > UINT64_MAX - len)
		return pep_errf(e, EFBIG, "%s: a write of %zu bytes at %llu",
		    d->label, len, (unsigned long long)off);
	r = x_change(d, "data", e);
	if (r < 0)
		return r;
	err = ext2fs_read_inode(fs_of(d), ino, &in);
	if (err != 0)
		return x_err(d, e, err, "inode", "reading");
	w.old_size = EXT2_I_SIZE(&in);
	if (in.i_flags & EXT4_INLINE_DATA_FL) {
		if (end <= X_INLINE_MAX && w.old_size <= X_INLINE_MAX)
			return x_inline_put(d, ino, w.old_size, off, buf, len,
			    end > w.old_size ? end : w.old_size, e);
		r = x_uninline(d, ino, w.old_size, e);
		if (r < 0)
			return r;
	}
	w.mapped = !(in.i_flags & (EXT4_EXTENTS_FL | EXT4_INLINE_DATA_FL));
	r = x_put(&w, off, buf, len, e);
	/* libext2fs's writer sets the size to the end of a whole block */
	if (r == 0)
		r = x_set_size(d, ino, end > w.old_size ? end : w.old_size,
		    !w.mapped, e);
	return r;
}

static int
x_truncate(struct fsdir *d, uint64_t node, uint64_t size, struct pep_err *e)
{
	ext2_ino_t ino = (ext2_ino_t)node;
	struct ext2_inode in;
	ext2_file_t f = NULL;
	errcode_t err, err2;
	uint64_t bs;
	int r;

	r = x_change(d, "data", e);
	if (r < 0)
		return r;
	err = ext2fs_read_inode(fs_of(d), ino, &in);
	if (err != 0)
		return x_err(d, e, err, "inode", "reading");
	/*
	 * The size a copy leaves after writing to the end: only blocks past
	 * it (preallocated) to free; ext2fs_file_set_size2 would also read
	 * and rewrite the last block to zero its tail, which pep's writes
	 * leave zero.
	 */
	if (EXT2_I_SIZE(&in) == size && (in.i_flags & EXT4_INLINE_DATA_FL))
		return 0;
	bs = fs_of(d)->blocksize;
	err = x_free_last(fs_of(d), ino, (size + bs - 1) / bs, ~0ULL);
	if (err == 0 && EXT2_I_SIZE(&in) == size)
		err = ext2fs_punch(fs_of(d), ino, NULL, NULL,
		    (size + bs - 1) / bs, ~0ULL);
	if (err != 0 || EXT2_I_SIZE(&in) == size)
		return err != 0 ? x_err(d, e, err, "data", "truncating") : 0;
	if ((in.i_flags & EXT4_INLINE_DATA_FL) && size <= X_INLINE_MAX &&
	    EXT2_I_SIZE(&in) <= X_INLINE_MAX)
		return x_inline_put(d, ino, EXT2_I_SIZE(&in), 0, NULL, 0, size,
		    e);
	if (in.i_flags & EXT4_INLINE_DATA_FL) {
		r = x_uninline(d, ino, EXT2_I_SIZE(&in), e);
		if (r < 0)
			return r;
	}
	err = ext2fs_file_open(fs_of(d), ino, EXT2_FILE_WRITE, &f);
	if (err != 0)
		return x_err(d, e, err, "data", "opening");
	err = ext2fs_file_set_size2(f, size);
	err2 = ext2fs_file_close(f);
	if (err == 0)
		err = err2;
	if (err != 0)
		return x_err(d, e, err, "data", "truncating");
	return 0;
}

static int
x_read(struct fsdir *d, uint64_t node, uint64_t off, void *buf, size_t len,
    size_t *got, struct pep_err *e)
{
	struct ext2_inode in;
	ext2_file_t f = NULL;
	unsigned int n = 0;
	uint64_t size;
	errcode_t err;

	*got = 0;
	err = ext2fs_read_inode(fs_of(d), (ext2_ino_t)node, &in);
	if (err != 0)
		return x_err(d, e, err, "inode", "reading");
	size = EXT2_I_SIZE(&in);
	if (off >= size || len == 0)
		return 0;
	/* Never ask past the end: 1.47.0's inline read returns the whole
	 * inline area, not i_size, when asked more. */
	if (len > size - off)
		len = (size_t)(size - off);
	if (len > UINT_MAX)
		len = UINT_MAX;
	err = ext2fs_file_open(fs_of(d), (ext2_ino_t)node, 0, &f);
	if (err == 0)
		err = ext2fs_file_llseek(f, off, EXT2_SEEK_SET, NULL);
	if (err == 0)
		err = ext2fs_file_read(f, buf, (unsigned int)len, &n);
	if (f != NULL)
		ext2fs_file_close(f);
	if (err != 0)
		return x_err(d, e, err, "data", "reading");
	*got = n;
	return 0;
}

static int
x_set_meta(struct fsdir *d, uint64_t node, unsigned what,
    const struct fs_meta *m, struct pep_err *e)
{
	struct ext2_inode_large li;
	int r;

	r = x_change(d, "inode", e);
	if (r < 0)
		return r;
	r = x_read_large(d, (ext2_ino_t)node, &li, e);
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
	x_stamp(d, &li, 0, 0);
	return x_write_large(d, (ext2_ino_t)node, &li, e);
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
	r = x_change(d, name, e);
	if (r < 0)
		return r;
	err = ext2fs_xattrs_open(fs_of(d), (ext2_ino_t)node, &h);
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
		return x_err(d, e, err, name, "setting an extended attribute");
	return 0;
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
	if (de->inode == 0 || (len == 1 && de->name[0] == '.') ||
	    (len == 2 && de->name[0] == '.' && de->name[1] == '.'))
		return 0;
	memcpy(name, de->name, (size_t)len);
	name[len] = '\0';
	it->err = ext2fs_read_inode(fs_of(it->d), de->inode, &in);
	if (it->err != 0)
		return DIRENT_ABORT;
	x_node(de->inode, &in, &n);
	it->stop = it->fn(it->arg, name, &n);
	return it->stop ? DIRENT_ABORT : 0;
}

static int
x_iterate(struct fsdir *d, uint64_t dir, fs_iter_fn fn, void *arg,
    struct pep_err *e)
{
	struct x_iter it = { d, fn, arg, 0, 0 };
	errcode_t err;

	err = ext2fs_dir_iterate(fs_of(d), (ext2_ino_t)dir, 0, NULL,
	    x_iter_cb, &it);
	if (err == 0)
		err = it.err;
	if (err != 0)
		return x_err(d, e, err, "directory", "reading");
	return it.stop;
}

const struct fsdir_ops ext4_fsdir_ops = {
	.name = "ext4",
	.root = x_root,
	.lookup = x_lookup,
	.readlink = x_readlink,
	.make = x_make,
	.link = x_link,
	.unlink = x_unlink,
	.write = x_write,
	.truncate = x_truncate,
	.read = x_read,
	.set_meta = x_set_meta,
	.set_xattr = x_set_xattr,
	.iterate = x_iterate,
};
