/*
 * Differential test of bake/ext4_place.c's free-run search against the
 * libext2fs function whose answers it must reproduce,
 * ext2fs_get_free_blocks2: the same block bitmap, the same (start,
 * finish, num) queries, including start 0, finish 0, finish before start
 * (the wrap-around), runs that reach the last block and runs longer than
 * any free space. Bitmaps are runs of used and free blocks of random
 * lengths at several densities, for 1 KiB blocks (first data block 1) and
 * 4 KiB blocks, in both libext2fs bitmap back ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>

#include "../../bake/ext4.h"
#include "../tap.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? rng % n : 0;
}

/* A filesystem in memory: only its geometry and bitmaps are used. */
static ext2_filsys
mkfs(unsigned int log_bs, blk64_t blocks, int bitmap_type)
{
	struct ext2_super_block param;
	ext2_filsys fs = NULL;
	char name[16];
	int fd = memfd_create("place", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)(blocks << (10 + log_bs))) < 0)
		return NULL;
	memset(&param, 0, sizeof(param));
	param.s_log_block_size = log_bs;
	ext2fs_blocks_count_set(&param, blocks);
	ext2fs_set_feature_64bit(&param);
	snprintf(name, sizeof(name), "%d", fd);
	if (ext2fs_initialize(name, EXT2_FLAG_64BITS, &param, ext4_io_manager,
	    &fs) != 0)
		fs = NULL;
	close(fd);
	if (fs == NULL)
		return NULL;
	ext2fs_free_block_bitmap(fs->block_map);
	fs->block_map = NULL;
	fs->default_bitmap_type = (__u16)bitmap_type;
	if (ext2fs_allocate_block_bitmap(fs, "test", &fs->block_map) != 0) {
		ext2fs_free(fs);
		return NULL;
	}
	return fs;
}

/* Alternate used and free runs; `busy` in 0..100 biases toward used. */
static void
fill(ext2_filsys fs, unsigned int busy, unsigned int maxrun)
{
	blk64_t b = fs->super->s_first_data_block;
	blk64_t end = ext2fs_blocks_count(fs->super), n;
	int used;

	ext2fs_clear_block_bitmap(fs->block_map);
	while (b < end) {
		used = rnd(100) < busy;
		n = 1 + rnd(maxrun);
		if (n > end - b)
			n = end - b;
		if (used)
			ext2fs_mark_block_bitmap_range2(fs->block_map, b,
			    (unsigned int)n);
		b += n;
	}
}

static blk64_t
pick(blk64_t total)
{
	switch (rnd(6)) {
	case 0:
		return 0;
	case 1:
		return total - 1 - rnd(4);
	default:
		return rnd(total);
	}
}

/*
 * Wrapping queries that ext2fs_get_free_blocks2 never returns from when
 * nothing fits (its end condition is b == finish, which these never
 * reach), or answers by testing a range past the end of the bitmap.
 */
static int
skip(ext2_filsys fs, blk64_t start, blk64_t finish, blk64_t num)
{
	blk64_t total = ext2fs_blocks_count(fs->super);
	blk64_t first = fs->super->s_first_data_block;
	blk64_t f = finish != 0 ? finish : start;

	if (f > start)
		return 0;	/* no wrap */
	return start == 0 || f <= first || first + num > total ||
	    f + num > total;
}

/* Mismatches over `queries` random queries. */
static int
compare(ext2_filsys fs, int queries, char *first, size_t firstlen)
{
	blk64_t total = ext2fs_blocks_count(fs->super);
	blk64_t start, finish, num, a, b;
	errcode_t ea;
	int eb, bad = 0, q;

	for (q = 0; q < queries; q++) {
		start = pick(total);
		finish = pick(total);
		/* Every length up to longer than the whole filesystem. */
		num = rnd(4) == 0 ? 1 + rnd(total + 8) : 1 + rnd(64);
		if (skip(fs, start, finish, num))
			continue;
		a = b = 0;
		ea = ext2fs_get_free_blocks2(fs, start, finish, (int)num,
		    fs->block_map, &a);
		eb = ext4_place_find(fs, start, finish, num, &b);
		if ((ea == 0) == (eb == 0) && (ea != 0 || a == b))
			continue;
		if (bad++ == 0)
			snprintf(first, firstlen, "start %llu finish %llu "
			    "num %llu: libext2fs %s %llu, pep %s %llu",
			    (unsigned long long)start,
			    (unsigned long long)finish,
			    (unsigned long long)num, ea ? "fails" : "finds",
			    (unsigned long long)a, eb ? "fails" : "finds",
			    (unsigned long long)b);
	}
	return bad;
}

int
main(void)
{
	static const struct {
		unsigned int log_bs;
		blk64_t blocks;
	} geo[] = { { 0, 20000 }, { 2, 40000 }, { 0, 8193 } };
	static const int types[] = { EXT2FS_BMAP64_BITARRAY,
	    EXT2FS_BMAP64_RBTREE };
	static const unsigned int busy[] = { 20, 60, 95 };
	static const unsigned int maxrun[] = { 3, 64, 2000 };
	char first[256];
	ext2_filsys fs;
	size_t g, t, d, m;
	int bad;

	initialize_ext2_error_table();
	for (g = 0; g < sizeof(geo) / sizeof(geo[0]); g++) {
		for (t = 0; t < 2; t++) {
			fs = mkfs(geo[g].log_bs, geo[g].blocks, types[t]);
			if (!tap_ok(fs != NULL, "a %llu-block filesystem in "
			    "memory", (unsigned long long)geo[g].blocks))
				continue;
			for (d = 0; d < 3; d++) {
				for (m = 0; m < 3; m++) {
					fill(fs, busy[d], maxrun[m]);
					first[0] = '\0';
					bad = compare(fs, 1000, first,
					    sizeof(first));
					tap_ok(bad == 0, "%u KiB blocks, %s, "
					    "%u%% used in runs of up to %u: "
					    "same answers as "
					    "ext2fs_get_free_blocks2%s%s",
					    1u << geo[g].log_bs,
					    t ? "rbtree" : "bitarray",
					    busy[d], maxrun[m],
					    bad ? "; first difference: " : "",
					    first);
				}
			}
			ext2fs_free(fs);
		}
	}
	return tap_done();
}
