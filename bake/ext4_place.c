/*
 * Where a new block group's bitmaps and inode table go.
 *
 * With flex_bg, the tables of a flex group are packed together at the
 * start of its first group, so a new group's tables usually land among
 * old, full groups. libext2fs's ext2fs_allocate_group_table finds the room
 * with ext2fs_get_free_blocks2, which tests every candidate block in turn:
 * behind 256 MiB of data that is tens of thousands of range tests per
 * table, and most of a grow's time. This file places the tables by the
 * same rules (so the layout is the one resize2fs and mke2fs give) but
 * finds free runs by jumping between set and clear bits.
 *
 * Without flex_bg a group's tables go inside the group itself, which is
 * new and empty, so libext2fs's own placement is used there.
 */
#include <errno.h>

#include <ext2fs/ext2fs.h>

#include "ext4_priv.h"

/*
 * The first b in [lo, hi) with blocks b .. b+num-1 all free. A clear b is
 * taken as is: libext2fs 1.47.0's rbtree find_first_zero answers ENOENT
 * on a bitmap with no bit set at all (tests/unit/test_place.c found it).
 */
static int
place_run(ext2fs_block_bitmap map, blk64_t lo, blk64_t hi, blk64_t num,
    blk64_t *ret)
{
	blk64_t b = lo, z, s;

	while (b < hi) {
		z = b;
		if (ext2fs_test_block_bitmap2(map, b) &&
		    ext2fs_find_first_zero_block_bitmap2(map, b, hi - 1,
		    &z) != 0)
			return -ENOSPC;
		if (ext2fs_find_first_set_block_bitmap2(map, z, z + num - 1,
		    &s) != 0) {
			*ret = z;
			return 0;
		}
		b = s + 1;
	}
	return -ENOSPC;
}

/*
 * ext2fs_get_free_blocks2's contract, and its answer: candidates run from
 * start (0: the first data block) up to finish; when finish is not past
 * start the search wraps round the end of the filesystem.
 */
int
ext4_place_find(struct struct_ext2_filsys *fs, blk64_t start, blk64_t finish,
    blk64_t num, blk64_t *ret)
{
	blk64_t total = ext2fs_blocks_count(fs->super);
	blk64_t first = fs->super->s_first_data_block;
	blk64_t b = start != 0 ? start : first, end, hi;

	if (num == 0)
		num = 1;
	if (total < num)
		return -ENOSPC;
	end = total - num + 1;	/* candidates lie below this */
	if (finish == 0)
		finish = start;
	if (finish > start) {
		hi = b < finish && finish < end ? finish : end;
		return place_run(fs->block_map, b, hi, num, ret);
	}
	if (place_run(fs->block_map, b, end, num, ret) == 0)
		return 0;
	hi = finish > first && finish < end ? finish : end;
	return place_run(fs->block_map, first, hi, num, ret);
}

/*
 * Where the flex group's tables of one kind continue: right after the
 * previous group's when there is room for the rest of the flex group,
 * else the first run in the flex group with room for all of them, else
 * for one, else anywhere below the flex group's end. 0 if nothing fits.
 */
static blk64_t
place_flex_start(ext2_filsys fs, dgrp_t g, blk64_t prev, dgrp_t rem,
    blk64_t elem)
{
	dgrp_t flex = 1U << fs->super->s_log_groups_per_flex;
	dgrp_t last = g | (flex - 1);
	blk64_t size = rem * elem, from, to, r = 0;

	if (size > fs->super->s_blocks_per_group / 4)
		size = fs->super->s_blocks_per_group / 4;
	if (prev != 0 && prev < ext2fs_blocks_count(fs->super) &&
	    ext4_place_find(fs, prev, prev + size, elem, &r) == 0)
		return r;
	if (last > fs->group_desc_count - 1)
		last = fs->group_desc_count - 1;
	from = ext2fs_group_first_block2(fs, g - g % flex);
	to = ext2fs_group_last_block2(fs, last);
	if (ext4_place_find(fs, from, to, size, &r) == 0 ||
	    ext4_place_find(fs, from, to, elem, &r) == 0 ||
	    ext4_place_find(fs, 0, to, elem, &r) == 0)
		return r;
	return 0;
}

/* Take n blocks at b; the groups they lie in now hold metadata. */
static void
place_claim(ext2_filsys fs, blk64_t b, blk64_t n)
{
	blk64_t end, k;
	dgrp_t gr;

	ext2fs_mark_block_bitmap_range2(fs->block_map, b, (unsigned int)n);
	while (n > 0) {
		gr = ext2fs_group_of_blk2(fs, b);
		end = ext2fs_group_last_block2(fs, gr) + 1;
		k = b + n > end ? end - b : n;
		ext2fs_bg_free_blocks_count_set(fs, gr,
		    ext2fs_bg_free_blocks_count(fs, gr) - (__u32)k);
		ext2fs_bg_flags_clear(fs, gr, EXT2_BG_BLOCK_UNINIT);
		ext2fs_group_desc_csum_set(fs, gr);
		ext2fs_free_blocks_count_add(fs->super, -(blk64_t)k);
		b += k;
		n -= k;
	}
}

/* One table of `elem` blocks, searched from `start`, else from `retry`. */
static int
place_one(ext2_filsys fs, blk64_t start, blk64_t retry, blk64_t last,
    blk64_t elem, blk64_t *loc)
{
	int r = ext4_place_find(fs, start, last, elem, loc);

	if (r < 0 && retry != 0)
		r = ext4_place_find(fs, retry, last, elem, loc);
	if (r == 0)
		place_claim(fs, *loc, elem);
	return r;
}

int
ext4_place_group(struct struct_ext2_filsys *fs, unsigned int g)
{
	dgrp_t flex, last;
	blk64_t group_blk = ext2fs_group_first_block2(fs, g), last_blk;
	blk64_t ipb = fs->inode_blocks_per_group, offset, prev, loc;
	int r;

	if (!ext2fs_has_feature_flex_bg(fs->super) ||
	    fs->super->s_log_groups_per_flex == 0)
		return ext2fs_allocate_group_table(fs, g, 0) == 0 ? 0 :
		    -ENOSPC;
	flex = 1U << fs->super->s_log_groups_per_flex;
	last = g | (flex - 1);
	if (last > fs->group_desc_count - 1)
		last = fs->group_desc_count - 1;
	last_blk = ext2fs_group_last_block2(fs, last);
	/*
	 * The last flex group keeps its tables contiguous: each kind leaves
	 * room for just the groups that exist, not for a whole flex group.
	 */
	offset = flex;
	if (g % flex == 0 && last == fs->group_desc_count - 1)
		offset = (last & (flex - 1)) != 0 ? (last & (flex - 1)) + 1 :
		    flex;

	prev = g % flex ? ext2fs_block_bitmap_loc(fs, g - 1) + 1 : 0;
	r = place_one(fs, place_flex_start(fs, g, prev, last - g + 1, 1),
	    group_blk, last_blk, 1, &loc);
	if (r < 0)
		return r;
	ext2fs_block_bitmap_loc_set(fs, g, loc);

	prev = g % flex ? ext2fs_inode_bitmap_loc(fs, g - 1) + 1 :
	    loc + offset;
	r = place_one(fs, place_flex_start(fs, g, prev, last - g + 1, 1),
	    group_blk, last_blk, 1, &loc);
	if (r < 0)
		return r;
	ext2fs_inode_bitmap_loc_set(fs, g, loc);

	prev = g % flex ? ext2fs_inode_table_loc(fs, g - 1) + ipb :
	    loc + offset;
	r = place_one(fs, place_flex_start(fs, g, prev, last - g + 1, ipb),
	    0, last_blk, ipb, &loc);
	if (r < 0)
		return r;
	ext2fs_inode_table_loc_set(fs, g, loc);
	ext2fs_group_desc_csum_set(fs, g);
	return 0;
}
