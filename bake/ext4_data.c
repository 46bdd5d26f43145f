/*
 * The ext4 fsdir backend's file data (ext4_fsdir.c has the ops table):
 * write, truncate and read.
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
#include <unistd.h>

#include "../common/mem.h"
#include "ext4_priv.h"

#define X_INLINE_MAX	60	/* i_block: inline data always fits here */

static int
x_pwrite(struct fsdir *d, const void *buf, size_t len, uint64_t pblk,
    struct pep_err *e)
{
	struct ext4 *x = ext4_of(d);
	uint64_t at = x->off + pblk * ext4_fs_of(d)->blocksize;
	const uint8_t *p = buf;
	ssize_t n;

	ext4_io_forget(x->fs->io, pblk, len / ext4_fs_of(d)->blocksize);
	while (len > 0) {
		n = pwrite(x->fd, p, len, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return ext4_fsdir_err(d, e, n < 0 ? errno : EIO, "data",
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
	ext2_filsys fs = ext4_fs_of(w->d);
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
		r = ext4_fsdir_err(w->d, e, err, "data", "allocating");
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
	ext2_filsys fs = ext4_fs_of(w->d);
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
		r = ext4_fsdir_err(w->d, e, err, "data", "allocating");
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

	err = ext2fs_file_open(ext4_fs_of(d), ino, EXT2_FILE_WRITE, &f);
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
		return ext4_fsdir_err(d, e, err, "data", "writing");
	return 0;
}

/* Whole blocks that hold data, however the file maps them. */
static int
x_put_blocks(struct x_wr *w, blk64_t lblk, blk64_t count,
    const uint8_t *buf, struct pep_err *e)
{
	unsigned int bs = ext4_fs_of(w->d)->blocksize;

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
	unsigned int bs = ext4_fs_of(w->d)->blocksize;
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
			err = ext4_inode_free_last(ext4_fs_of(w->d), w->ino,
			    lblk + i, lblk + j - 1);
			if (err == 0)
				err = ext2fs_punch(ext4_fs_of(w->d), w->ino,
				    NULL, NULL, lblk + i, lblk + j - 1);
			if (err != 0)
				return ext4_fsdir_err(w->d, e, err, "data",
				    "punching");
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
	ext2_filsys fs = ext4_fs_of(w->d);
	unsigned int bs = fs->blocksize;
	blk64_t lblk = off / bs, pblk = 0;
	uint8_t *blk = NULL;
	errcode_t err = 0;
	int r;

	if (lblk * bs < w->old_size)
		err = ext2fs_bmap2(fs, w->ino, NULL, NULL, 0, lblk, NULL,
		    &pblk);
	if (err != 0)
		return ext4_fsdir_err(w->d, e, err, "data", "mapping");
	if (pblk == 0 && mem_is_zero(p, len))
		return 0;
	blk = calloc(1, bs);
	if (blk == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	err = pblk != 0 ? io_channel_read_blk64(fs->io, pblk, 1, blk) : 0;
	if (err != 0) {
		free(blk);
		return ext4_fsdir_err(w->d, e, err, "data", "reading");
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
	unsigned int bs = ext4_fs_of(w->d)->blocksize;
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
	ext2_filsys fs = ext4_fs_of(d);
	size_t size = 0;
	errcode_t err;

	*old = calloc(1, (size_t)EXT2_INODE_SIZE(fs->super) +
	    EXT4_MIN_INLINE_DATA_SIZE);
	if (*old == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	err = ext2fs_inline_data_get(fs, ino, NULL, *old, &size);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "inline data", "reading");
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

	r = ext4_inode_read(d, ino, &li, e);
	if (r < 0 || (grow_only && EXT2_I_SIZE(&li) >= size))
		return r;
	err = ext2fs_inode_size_set(ext4_fs_of(d), (struct ext2_inode *)&li,
	    size);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "data", "setting the size");
	return ext4_inode_write(d, ino, &li, e);
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
		err = ext2fs_inline_data_set(ext4_fs_of(d), ino, NULL, data,
		    sizeof(data));
		if (err != 0)
			r = ext4_fsdir_err(d, e, err, "inline data", "writing");
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
	ext2_filsys fs = ext4_fs_of(d);
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
		r = ext4_fsdir_err(d, e, err, "inline data", "converting");
	if (r == 0)
		r = ext4_inode_read(d, ino, &li, e);
	if (r == 0) {
		memset(li.i_block, 0, sizeof(li.i_block));
		li.i_flags &= ~(EXT4_INLINE_DATA_FL | EXT4_EXTENTS_FL);
		li.i_size = li.i_size_high = 0;
		err = ext2fs_extent_open2(fs, ino, (struct ext2_inode *)&li,
		    &h);
		if (err != 0)
			r = ext4_fsdir_err(d, e, err, "inline data",
			    "converting");
		else
			ext2fs_extent_free(h);
	}
	if (r == 0)
		r = ext4_inode_write(d, ino, &li, e);
	if (r == 0 && oldlen > 0)
		r = x_put(&w, 0, old, oldlen, e);
	if (r == 0)
		r = x_set_size(d, ino, isize, 0, e);
	free(old);
	return r;
}

/* A change to ino's data starts here: the change noted, the inode read. */
static int
x_data_begin(struct fsdir *d, ext2_ino_t ino, struct ext2_inode *in,
    struct pep_err *e)
{
	errcode_t err;
	int r = ext4_fsdir_change(d, "data", e);

	if (r < 0)
		return r;
	err = ext2fs_read_inode(ext4_fs_of(d), ino, in);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "inode", "reading");
	return 0;
}

int
ext4_data_write(struct fsdir *d, uint64_t node, uint64_t off, const void *buf,
    size_t len, struct pep_err *e)
{
	ext2_ino_t ino = (ext2_ino_t)node;
	struct x_wr w = { d, ino, 0, 0 };
	struct ext2_inode in;
	uint64_t end = off + len;
	int r;

	if (len == 0)
		return 0;
	if (len > UINT_MAX || off > UINT64_MAX - len)
		return pep_errf(e, EFBIG, "%s: a write of %zu bytes at %llu",
		    d->label, len, (unsigned long long)off);
	r = x_data_begin(d, ino, &in, e);
	if (r < 0)
		return r;
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

int
ext4_data_truncate(struct fsdir *d, uint64_t node, uint64_t size,
    struct pep_err *e)
{
	ext2_ino_t ino = (ext2_ino_t)node;
	struct ext2_inode in;
	ext2_file_t f = NULL;
	errcode_t err, err2;
	uint64_t bs;
	int r;

	r = x_data_begin(d, ino, &in, e);
	if (r < 0)
		return r;
	/*
	 * The size a copy leaves after writing to the end: only blocks past
	 * it (preallocated) to free; ext2fs_file_set_size2 would also read
	 * and rewrite the last block to zero its tail, which pep's writes
	 * leave zero.
	 */
	if (EXT2_I_SIZE(&in) == size && (in.i_flags & EXT4_INLINE_DATA_FL))
		return 0;
	bs = ext4_fs_of(d)->blocksize;
	err = ext4_inode_free_last(ext4_fs_of(d), ino, (size + bs - 1) / bs,
	    ~0ULL);
	if (err == 0 && EXT2_I_SIZE(&in) == size)
		err = ext2fs_punch(ext4_fs_of(d), ino, NULL, NULL,
		    (size + bs - 1) / bs, ~0ULL);
	if (err != 0 || EXT2_I_SIZE(&in) == size)
		return err != 0 ? ext4_fsdir_err(d, e, err, "data",
		    "truncating") : 0;
	if ((in.i_flags & EXT4_INLINE_DATA_FL) && size <= X_INLINE_MAX &&
	    EXT2_I_SIZE(&in) <= X_INLINE_MAX)
		return x_inline_put(d, ino, EXT2_I_SIZE(&in), 0, NULL, 0, size,
		    e);
	if (in.i_flags & EXT4_INLINE_DATA_FL) {
		r = x_uninline(d, ino, EXT2_I_SIZE(&in), e);
		if (r < 0)
			return r;
	}
	err = ext2fs_file_open(ext4_fs_of(d), ino, EXT2_FILE_WRITE, &f);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "data", "opening");
	err = ext2fs_file_set_size2(f, size);
	err2 = ext2fs_file_close(f);
	if (err == 0)
		err = err2;
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "data", "truncating");
	return 0;
}

int
ext4_data_read(struct fsdir *d, uint64_t node, uint64_t off, void *buf,
    size_t len, size_t *got, struct pep_err *e)
{
	struct ext2_inode in;
	ext2_file_t f = NULL;
	unsigned int n = 0;
	uint64_t size;
	errcode_t err;

	*got = 0;
	err = ext2fs_read_inode(ext4_fs_of(d), (ext2_ino_t)node, &in);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "inode", "reading");
	size = EXT2_I_SIZE(&in);
	if (off >= size || len == 0)
		return 0;
	/* Never ask past the end: 1.47.0's inline read returns the whole
	 * inline area, not i_size, when asked more. */
	if (len > size - off)
		len = (size_t)(size - off);
	if (len > UINT_MAX)
		len = UINT_MAX;
	err = ext2fs_file_open(ext4_fs_of(d), (ext2_ino_t)node, 0, &f);
	if (err == 0)
		err = ext2fs_file_llseek(f, off, EXT2_SEEK_SET, NULL);
	if (err == 0)
		err = ext2fs_file_read(f, buf, (unsigned int)len, &n);
	if (f != NULL)
		ext2fs_file_close(f);
	if (err != 0)
		return ext4_fsdir_err(d, e, err, "data", "reading");
	*got = n;
	return 0;
}
