/*
 * Grow-only offline resize of ext2/3/4 through libext2fs's public API.
 *
 * New block groups are appended after the old ones and nothing that exists
 * moves, so the work is bounded by the new groups' metadata, not by the
 * data. The steps follow resize2fs 1.47.0's grow path (adjust_fs_info,
 * fix_resize_inode, the per-group recount), with these differences:
 *  - the backups of every new group are reserved before any new group's
 *    tables are placed (flex_bg placement could otherwise land on a later
 *    group's backup: the FIXME in alloc_tables.c);
 *  - new inode tables are made zero by the file itself: a range that is a
 *    hole in the freshly extended output reads as zeros, anything else is
 *    punched (or written) to zero, so ITABLE_ZEROED is always true and the
 *    result does not depend on the host kernel;
 *  - the sparse_super2 clean-up frees exactly the old last group's backup.
 * Growth that would need blocks moved is refused with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "ext4_priv.h"

/* The geometry a grow aims at. */
struct grow_plan {
	blk64_t blocks;
	dgrp_t groups;
	unsigned long desc_blocks;
};

/* What the old geometry was, captured before anything changes. */
struct grow_old {
	blk64_t blocks;
	dgrp_t groups;
	unsigned long desc_blocks;
	blk64_t r_blocks;
	__u32 backup_bgs[2];
	blk64_t ss2_sb;		/* sparse_super2: old last group's backup */
	blk64_t ss2_desc;
	blk_t ss2_num;
};

static int
grow_liberr(const char *label, errcode_t err, const char *what,
    struct pep_err *e)
{
	return pep_errf(e, PEP_ELIB, "%s: %s: %s", label, what,
	    error_message(err));
}

/* The resize inode is rebuilt at the end: check up front it can be. */
static int
grow_check_resize_inode(ext2_filsys fs, const char *label,
    struct pep_err *e)
{
	struct ext2_inode inode;
	errcode_t err;

	if (!ext2fs_has_feature_resize_inode(fs->super))
		return 0;
	err = ext2fs_read_inode(fs, EXT2_RESIZE_INO, &inode);
	if (err != 0)
		return grow_liberr(label, err, "reading the resize inode", e);
	if (inode.i_block[EXT2_DIND_BLOCK] == 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: the resize inode has no "
		    "indirect block; run e2fsck -f first", label);
	return 0;
}

static int
grow_refuse(ext2_filsys fs, const char *label, struct pep_err *e)
{
	struct ext2_super_block *sb = fs->super;

	if (ext2fs_has_feature_bigalloc(sb))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: bigalloc "
		    "filesystems are not grown by pep-bake (use resize2fs)",
		    label);
	if (ext2fs_has_feature_mmp(sb))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: multi-mount "
		    "protection (mmp) is on; turn it off with tune2fs -O "
		    "^mmp first", label);
	if (ext2fs_has_feature_journal_needs_recovery(sb))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: the journal needs "
		    "recovery; replay it with e2fsck first", label);
	if (sb->s_last_orphan != 0 || ext2fs_has_feature_orphan_present(sb))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: orphan inodes are "
		    "present; run e2fsck -f first", label);
	if (sb->s_state & EXT2_ERROR_FS)
		return pep_errf(e, PEP_ECORRUPT, "%s: the errors flag is set; "
		    "run e2fsck -f first", label);
	return grow_check_resize_inode(fs, label, e);
}

/* Does the last of `groups` groups hold a superblock backup? */
static int
grow_last_has_backup(ext2_filsys fs, dgrp_t groups)
{
	struct ext2_super_block *sb = fs->super;

	/* resize2fs's rule: s_backup_bgs is not updated yet here. */
	if (ext2fs_has_feature_sparse_super2(sb))
		return groups == 2 ? sb->s_backup_bgs[0] != 0 :
		    sb->s_backup_bgs[1] != 0;
	return ext2fs_bg_has_super(fs, groups - 1);
}

/*
 * The last-group rule: a partial last group too small for its own
 * metadata plus 50 blocks is dropped, as resize2fs does; and the inode
 * count must fit in 32 bits.
 */
static int
grow_fit(ext2_filsys fs, blk64_t blocks, struct grow_plan *p,
    const char *label, struct pep_err *e)
{
	struct ext2_super_block *sb = fs->super;
	blk64_t fdb = sb->s_first_data_block, rem, overhead;
	__u32 bpg = sb->s_blocks_per_group, ipg = sb->s_inodes_per_group;

	for (;;) {
		p->blocks = blocks;
		p->groups = (dgrp_t)ext2fs_div64_ceil(blocks - fdb, bpg);
		p->desc_blocks = ext2fs_div_ceil(p->groups,
		    EXT2_DESC_PER_BLOCK(sb));
		overhead = 2 + fs->inode_blocks_per_group;
		if (grow_last_has_backup(fs, p->groups))
			overhead += 1 + p->desc_blocks +
			    sb->s_reserved_gdt_blocks;
		rem = (blocks - fdb) % bpg;
		if (p->groups > 1 && rem != 0 && rem < overhead + 50) {
			blocks -= rem;
			continue;
		}
		if ((uint64_t)ipg * p->groups <= 0xFFFFFFFFu)
			return 0;
		if ((uint64_t)ipg * (p->groups - 1) > 0xFFFFFFFFu)
			return pep_errf(e, PEP_EUNSUPPORTED, "%s: too many "
			    "inodes for that size", label);
		blocks = (blk64_t)bpg * (p->groups - 1) + fdb;
	}
}

/* Refuse what would need blocks moved, naming the largest size that
 * would not. */
static int
grow_check_gdt(ext2_filsys fs, const struct grow_plan *p,
    const char *label, uint64_t *limit, struct pep_err *e)
{
	struct ext2_super_block *sb = fs->super;
	unsigned long room = fs->desc_blocks + sb->s_reserved_gdt_blocks;
	unsigned long long max_bytes;

	if (ext2fs_has_feature_meta_bg(sb))
		return 0;
	max_bytes = ((unsigned long long)room * EXT2_DESC_PER_BLOCK(sb) *
	    sb->s_blocks_per_group + sb->s_first_data_block) * fs->blocksize;
	if (p->desc_blocks > room) {
		*limit = max_bytes;
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: growing to %llu "
		    "blocks needs %lu group descriptor blocks but only %lu "
		    "(%lu + %u reserved) exist: resize2fs would move blocks "
		    "to make room, pep-bake grows only in place, to at most "
		    "%llu bytes", label, (unsigned long long)p->blocks,
		    p->desc_blocks, room, fs->desc_blocks,
		    sb->s_reserved_gdt_blocks, max_bytes);
	}
	if (p->desc_blocks + sb->s_first_data_block > sb->s_blocks_per_group)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: too many block "
		    "group descriptors for that size", label);
	return 0;
}

static int
grow_plan(ext2_filsys fs, uint64_t max_bytes, struct grow_plan *p,
    const char *label, uint64_t *limit, struct pep_err *e)
{
	blk64_t blocks = max_bytes / fs->blocksize;
	int r;

	p->blocks = ext2fs_blocks_count(fs->super);
	p->groups = fs->group_desc_count;
	p->desc_blocks = fs->desc_blocks;
	if (!ext2fs_has_feature_64bit(fs->super) && blocks == 1ULL << 32)
		blocks--;
	if (blocks <= p->blocks)
		return 0;
	if (!ext2fs_has_feature_64bit(fs->super) && blocks > 1ULL << 32) {
		*limit = ((1ULL << 32) - 1) * fs->blocksize;
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: a filesystem "
		    "without the 64bit feature cannot pass 2^32-1 blocks "
		    "(%llu bytes)", label, (unsigned long long)*limit);
	}
	r = grow_fit(fs, blocks, p, label, e);
	if (r == 0 && p->blocks > ext2fs_blocks_count(fs->super))
		r = grow_check_gdt(fs, p, label, limit, e);
	return r;
}

static void
grow_save_old(ext2_filsys fs, struct grow_old *o)
{
	struct ext2_super_block *sb = fs->super;

	memset(o, 0, sizeof(*o));
	o->blocks = ext2fs_blocks_count(sb);
	o->groups = fs->group_desc_count;
	o->desc_blocks = fs->desc_blocks;
	o->r_blocks = ext2fs_r_blocks_count(sb);
	o->backup_bgs[0] = sb->s_backup_bgs[0];
	o->backup_bgs[1] = sb->s_backup_bgs[1];
	if (ext2fs_has_feature_sparse_super2(sb) && o->groups > 1)
		ext2fs_super_and_bgd_loc2(fs, o->groups - 1, &o->ss2_sb,
		    &o->ss2_desc, NULL, &o->ss2_num);
}

/* Superblock counts, bitmaps and the descriptor array, for the plan. */
static int
grow_geometry(ext2_filsys fs, const struct grow_old *o,
    const struct grow_plan *p, const char *label, struct pep_err *e)
{
	struct ext2_super_block *sb = fs->super;
	blk64_t real_end;
	double percent;
	errcode_t err;

	ext2fs_blocks_count_set(sb, p->blocks);
	sb->s_overhead_clusters = 0;
	fs->group_desc_count = p->groups;
	fs->desc_blocks = p->desc_blocks;
	sb->s_inodes_count = sb->s_inodes_per_group * p->groups;
	percent = (o->r_blocks * 100.0) / o->blocks;
	ext2fs_r_blocks_count_set(sb, (blk64_t)(percent * p->blocks / 100.0));
	err = ext2fs_resize_inode_bitmap2(sb->s_inodes_count,
	    sb->s_inodes_count, fs->inode_map);
	if (err != 0)
		return grow_liberr(label, err, "resizing the inode bitmap", e);
	real_end = (blk64_t)sb->s_blocks_per_group * p->groups - 1 +
	    sb->s_first_data_block;
	err = ext2fs_resize_block_bitmap2(p->blocks - 1, real_end,
	    fs->block_map);
	if (err != 0)
		return grow_liberr(label, err, "resizing the block bitmap", e);
	if (p->desc_blocks == o->desc_blocks)
		return 0;
	err = ext2fs_resize_mem(o->desc_blocks * fs->blocksize,
	    p->desc_blocks * fs->blocksize, &fs->group_desc);
	if (err != 0)
		return grow_liberr(label, err, "growing the descriptors", e);
	memset((char *)fs->group_desc + o->desc_blocks * fs->blocksize, 0,
	    (p->desc_blocks - o->desc_blocks) * fs->blocksize);
	/* The GDT grows into the reserved blocks: their sum stays. */
	if (ext2fs_has_feature_resize_inode(sb)) {
		long left = (long)sb->s_reserved_gdt_blocks -
		    (long)(p->desc_blocks - o->desc_blocks);

		sb->s_reserved_gdt_blocks = left < 0 ? 0 : (__u16)left;
	}
	return 0;
}

/* sparse_super2 keeps its second backup in the last group. */
static void
grow_sparse_super2(ext2_filsys fs, const struct grow_old *o)
{
	struct ext2_super_block *sb = fs->super;

	if (!ext2fs_has_feature_sparse_super2(sb))
		return;
	if (o->groups == 1)
		sb->s_backup_bgs[0] = 1;
	if ((o->groups < 3 && fs->group_desc_count > 2) ||
	    sb->s_backup_bgs[1] != 0)
		sb->s_backup_bgs[1] = fs->group_desc_count - 1;
}

/* A new group's descriptor: all inodes free, blocks counted later. */
static void
grow_init_group(ext2_filsys fs, dgrp_t g)
{
	__u32 ipg = fs->super->s_inodes_per_group;

	memset(ext2fs_group_desc(fs, fs->group_desc, g), 0,
	    EXT2_DESC_SIZE(fs->super));
	ext2fs_bg_flags_zap(fs, g);
	if (ext2fs_has_group_desc_csum(fs)) {
		/* Zeroed: grow_zero_itable guarantees it. */
		ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_UNINIT |
		    EXT2_BG_INODE_ZEROED);
		ext2fs_bg_itable_unused_set(fs, g, ipg);
		if (g < fs->group_desc_count - 1)
			ext2fs_bg_flags_set(fs, g, EXT2_BG_BLOCK_UNINIT);
	}
	ext2fs_bg_free_blocks_count_set(fs, g, ext2fs_group_blocks_count(fs,
	    g));
	ext2fs_bg_free_inodes_count_set(fs, g, ipg);
	ext2fs_bg_used_dirs_count_set(fs, g, 0);
	fs->super->s_free_inodes_count += ipg;
}

/* Claim a new group's superblock and descriptor backups. */
static void
grow_claim_backup(ext2_filsys fs, dgrp_t g)
{
	struct ext2_super_block *sb = fs->super;
	blk64_t first = ext2fs_group_first_block2(fs, g), j, ndesc;
	dgrp_t per = EXT2_DESC_PER_BLOCK(sb), pos = g % per;
	int has_super = ext2fs_bg_has_super(fs, g);

	if (has_super)
		ext2fs_block_alloc_stats2(fs, first, +1);
	if (!ext2fs_has_feature_meta_bg(sb) || g / per < sb->s_first_meta_bg) {
		if (!has_super)
			return;
		ndesc = ext2fs_has_feature_meta_bg(sb) ? sb->s_first_meta_bg :
		    fs->desc_blocks + sb->s_reserved_gdt_blocks;
		for (j = 0; j < ndesc; j++)
			ext2fs_block_alloc_stats2(fs, first + 1 + j, +1);
		return;
	}
	if (pos == 0 || pos == 1 || pos == per - 1)
		ext2fs_block_alloc_stats2(fs, first + (has_super ? 1 : 0), +1);
}

/*
 * Make a new inode table read as zeros. The output was just extended, so
 * normally the range is a hole already; check rather than assume.
 */
static int
grow_zero_itable(ext2_filsys fs, int fd, uint64_t off, dgrp_t g,
    uint64_t *zeroed, const char *label, struct pep_err *e)
{
	static const char zero[4096];
	uint64_t start = off + ext2fs_inode_table_loc(fs, g) * fs->blocksize;
	uint64_t len = (uint64_t)fs->inode_blocks_per_group * fs->blocksize;
	off_t d = lseek(fd, (off_t)start, SEEK_DATA);
	ssize_t w;

	/* Written around libext2fs: nothing of it may stay cached. */
	ext4_io_forget(fs->io, ext2fs_inode_table_loc(fs, g),
	    fs->inode_blocks_per_group);
	if ((d < 0 && errno == ENXIO) || (d >= 0 && (uint64_t)d >= start + len))
		return 0;
	*zeroed += len;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	    (off_t)start, (off_t)len) == 0)
		return 0;
	while (len > 0) {
		w = pwrite(fd, zero, len < sizeof(zero) ? len : sizeof(zero),
		    (off_t)start);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return pep_errf(e, errno, "%s: zeroing an inode table: "
			    "%s", label, strerror(errno));
		start += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

static int
grow_new_groups(ext2_filsys fs, const struct grow_old *o, int fd,
    uint64_t off, struct ext4_grow_info *gi, const char *label,
    struct pep_err *e)
{
	dgrp_t g;
	int r;

	for (g = o->groups; g < fs->group_desc_count; g++)
		grow_init_group(fs, g);
	/* Every group's descriptor area (the GDT may have grown). */
	for (g = 0; g < fs->group_desc_count; g++)
		ext2fs_reserve_super_and_bgd(fs, g, fs->block_map);
	for (g = o->groups; g < fs->group_desc_count; g++)
		grow_claim_backup(fs, g);
	/*
	 * No flush before the hole checks: ext4_io.c buffers nothing, so the
	 * file is what they see (and new tables only go where the bitmap
	 * says free, where nothing is ever written).
	 */
	for (g = o->groups; g < fs->group_desc_count; g++) {
		if (ext4_place_group(fs, g) < 0)
			return pep_errf(e, ENOSPC, "%s: no room for new "
			    "group %u's bitmaps and inode table", label, g);
		r = grow_zero_itable(fs, fd, off, g, &gi->itable_zeroed,
		    label, e);
		if (r < 0)
			return r;
	}
	ext2fs_bg_flags_clear(fs, fs->group_desc_count - 1,
	    EXT2_BG_BLOCK_UNINIT);
	return 0;
}

/* The old last group no longer holds sparse_super2's second backup. */
static void
grow_drop_old_backup(ext2_filsys fs, const struct grow_old *o)
{
	struct ext2_super_block *sb = fs->super;
	dgrp_t old_last = o->groups - 1;

	if (!ext2fs_has_feature_sparse_super2(sb) || old_last == 0)
		return;
	if (o->backup_bgs[0] != old_last && o->backup_bgs[1] != old_last)
		return;
	if (sb->s_backup_bgs[0] == old_last || sb->s_backup_bgs[1] == old_last)
		return;
	if (o->ss2_sb != 0)
		ext2fs_unmark_block_bitmap2(fs->block_map, o->ss2_sb);
	/* ss2_num counts the superblock too: free only the GDT area. */
	if (o->ss2_desc != 0 && o->ss2_num > (o->ss2_sb != 0 ? 1u : 0u))
		ext2fs_unmark_block_bitmap_range2(fs->block_map, o->ss2_desc,
		    o->ss2_num - (o->ss2_sb != 0 ? 1 : 0));
}

/* Set bits among the first `bits` of buf, a word at a time. */
static unsigned int
grow_popcount(const unsigned char *buf, size_t bits)
{
	unsigned int n = 0;
	uint64_t w;
	size_t i;

	for (i = 0; i + 64 <= bits; i += 64) {
		memcpy(&w, buf + i / 8, sizeof(w));
		n += (unsigned int)__builtin_popcountll(w);
	}
	for (; i < bits; i++)
		n += (buf[i / 8] >> (i % 8)) & 1;
	return n;
}

/* Free counts per group and in total, from the bitmaps. */
static int
grow_recount(ext2_filsys fs, const char *label, struct pep_err *e)
{
	struct ext2_super_block *sb = fs->super;
	__u32 ipg = sb->s_inodes_per_group;
	size_t bytes = (sb->s_blocks_per_group > ipg ?
	    sb->s_blocks_per_group : ipg) / 8 + 1;
	unsigned char *buf = malloc(bytes);
	blk64_t first, n, free_blocks = 0;
	__u64 free_inodes = 0;
	unsigned int used;
	dgrp_t g;
	errcode_t err = 0;

	if (buf == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", label);
	for (g = 0; g < fs->group_desc_count && err == 0; g++) {
		first = ext2fs_group_first_block2(fs, g);
		n = ext2fs_group_last_block2(fs, g) - first + 1;
		err = ext2fs_get_block_bitmap_range2(fs->block_map, first,
		    n, buf);
		if (err == 0) {
			used = grow_popcount(buf, n);
			ext2fs_bg_free_blocks_count_set(fs, g, n - used);
			free_blocks += n - used;
			err = ext2fs_get_inode_bitmap_range2(fs->inode_map,
			    (__u64)g * ipg + 1, ipg, buf);
		}
		if (err == 0) {
			used = grow_popcount(buf, ipg);
			ext2fs_bg_free_inodes_count_set(fs, g, ipg - used);
			free_inodes += ipg - used;
			ext2fs_group_desc_csum_set(fs, g);
		}
	}
	free(buf);
	if (err != 0)
		return grow_liberr(label, err, "counting free space", e);
	ext2fs_free_blocks_count_set(sb, free_blocks);
	sb->s_free_inodes_count = (__u32)free_inodes;
	return 0;
}

/* Rebuild the resize inode (7) for the new descriptor count. */
static int
grow_resize_inode(ext2_filsys fs, const char *label, struct pep_err *e)
{
	struct ext2_inode inode;
	blk64_t dind;
	char *zero = NULL;
	errcode_t err;

	if (!ext2fs_has_feature_resize_inode(fs->super))
		return 0;
	err = ext2fs_read_inode(fs, EXT2_RESIZE_INO, &inode);
	if (err != 0)
		return grow_liberr(label, err, "reading the resize inode", e);
	dind = inode.i_block[EXT2_DIND_BLOCK];
	if (dind == 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: the resize inode has no "
		    "indirect block; run e2fsck -f first", label);
	ext2fs_iblk_set(fs, &inode, 1);
	err = ext2fs_write_inode(fs, EXT2_RESIZE_INO, &inode);
	if (err == 0)
		err = ext2fs_get_memzero(fs->blocksize, &zero);
	if (err == 0)
		err = io_channel_write_blk64(fs->io, dind, 1, zero);
	ext2fs_free_mem(&zero);
	if (err == 0)
		err = ext2fs_create_resize_inode(fs);
	if (err != 0)
		return grow_liberr(label, err, "rebuilding the resize inode",
		    e);
	return 0;
}

int
ext4_grow(struct ext4 *x, int fd, uint64_t off, uint64_t max_bytes,
    struct ext4_grow_info *gi, struct pep_err *e)
{
	ext2_filsys fs = ext4_handle(x);
	const char *label = ext4_label(x);
	struct grow_plan p;
	struct grow_old o;
	errcode_t err;
	int r;

	memset(gi, 0, sizeof(*gi));
	gi->blocksize = fs->blocksize;
	gi->old_blocks = gi->new_blocks = ext2fs_blocks_count(fs->super);
	gi->old_groups = gi->new_groups = fs->group_desc_count;
	r = grow_plan(fs, max_bytes, &p, label, &gi->limit_bytes, e);
	if (r < 0 || p.blocks == gi->old_blocks)
		return r;
	r = grow_refuse(fs, label, e);
	if (r < 0)
		return r;
	grow_save_old(fs, &o);
	r = grow_geometry(fs, &o, &p, label, e);
	if (r < 0)
		return r;
	grow_sparse_super2(fs, &o);
	if (p.groups > o.groups)
		r = grow_new_groups(fs, &o, fd, off, gi, label, e);
	if (r < 0)
		return r;
	grow_drop_old_backup(fs, &o);
	r = grow_recount(fs, label, e);
	if (r == 0)
		r = grow_resize_inode(fs, label, e);
	if (r < 0)
		return r;
	err = ext2fs_set_gdt_csum(fs);
	if (err != 0)
		return grow_liberr(label, err, "setting checksums", e);
	/* Write every backup superblock and descriptor copy on close. */
	fs->flags &= ~EXT2_FLAG_MASTER_SB_ONLY;
	ext2fs_mark_super_dirty(fs);
	ext2fs_mark_bb_dirty(fs);
	ext2fs_mark_ib_dirty(fs);
	gi->new_blocks = p.blocks;
	gi->new_groups = p.groups;
	return 0;
}
