/*
 * libFuzzer target for --tar-in (bake/archive.c, through bake/fsdir.c's
 * path resolution and the ext4 backend), seeded with small archives
 * (tests/fuzz/corpus/archive: ustar, pax, GNU and cpio, plain, gzip and
 * zstd; members leading out through "..", absolute names and symlinks,
 * hard links, sparse members, xattrs, devices). The input is the archive,
 * extracted from memory (archive_extract_mem) into /t of a small ext4
 * that the target makes once with libext2fs, as mke2fs would (4 MiB, 1 KiB
 * blocks, 4 groups, extents, metadata_csum, 64bit; inline_data too when
 * the input's length is odd), and copies into a memfd for every run.
 * Beyond the sanitizers it checks that:
 *   - a failure carries a message;
 *   - nothing landed outside /t: the root and /lost+found hold what they
 *     held, whatever the members' names and symlinks;
 *   - after a success the closed filesystem adds up: the blocks every
 *     inode maps (data, extent-tree, xattr blocks) and the filesystem's
 *     own tables are exactly the block bitmap, none mapped twice; each
 *     inode's i_blocks is what it maps; the free counts are the bitmap's;
 *     an inline-data file's size fits inline, and no other inode carries
 *     system.data (the inline area's xattr, which a member's xattrs must
 *     not reach).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>

#include "../../bake/bake.h"

#define FUZZ_BLOCKS	4096		/* 4 MiB of 1 KiB blocks */
#define FUZZ_BSIZE	1024
#define FUZZ_NOW	1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A template filesystem: its bytes, and which 1 KiB blocks are not 0. */
struct tmpl {
	uint8_t *bytes;
	uint8_t used[FUZZ_BLOCKS];
};

static struct tmpl tmpls[2];

static int
memfd_sized(void)
{
	int fd = memfd_create("fuzz-archive", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)FUZZ_BLOCKS * FUZZ_BSIZE) < 0)
		abort();
	return fd;
}

static void
check(errcode_t err)
{
	if (err != 0) {
		fprintf(stderr, "fuzz_archive: %s\n", error_message(err));
		abort();
	}
}

static void
tmpl_params(struct ext2_super_block *p, int inline_data)
{
	memset(p, 0, sizeof(*p));
	p->s_rev_level = EXT2_DYNAMIC_REV;
	p->s_log_block_size = 0;
	ext2fs_blocks_count_set(p, FUZZ_BLOCKS);
	p->s_blocks_per_group = 1024;
	p->s_inodes_count = 512;
	p->s_inode_size = 256;
	p->s_min_extra_isize = p->s_want_extra_isize = 32;
	p->s_log_groups_per_flex = 2;
	p->s_feature_compat = EXT2_FEATURE_COMPAT_DIR_INDEX |
	    EXT2_FEATURE_COMPAT_EXT_ATTR;
	p->s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE |
	    EXT3_FEATURE_INCOMPAT_EXTENTS | EXT4_FEATURE_INCOMPAT_FLEX_BG |
	    EXT4_FEATURE_INCOMPAT_64BIT;
	if (inline_data)
		p->s_feature_incompat |= EXT4_FEATURE_INCOMPAT_INLINE_DATA;
	p->s_feature_ro_compat = EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER |
	    EXT2_FEATURE_RO_COMPAT_LARGE_FILE |
	    EXT4_FEATURE_RO_COMPAT_HUGE_FILE |
	    EXT4_FEATURE_RO_COMPAT_DIR_NLINK |
	    EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE |
	    EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
}

/* $FUZZ_ARCHIVE_DUMP.0 and .1: the templates, for e2fsck to check. */
static void
tmpl_dump(const struct tmpl *t, int inline_data)
{
	const char *dir = getenv("FUZZ_ARCHIVE_DUMP");
	char path[4096];
	FILE *f;

	if (dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s.%d", dir, inline_data);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(t->bytes, FUZZ_BSIZE, FUZZ_BLOCKS, f) !=
	    FUZZ_BLOCKS)
		abort();
	fclose(f);
}

/* What mke2fs does for such a filesystem, with fixed UUID and seed; and
 * /t to extract into. */
static void
tmpl_make(struct tmpl *t, int inline_data)
{
	struct ext2_super_block p;
	ext2_filsys fs = NULL;
	char name[16];
	ext2_ino_t i;
	dgrp_t g;
	size_t b;
	int fd = memfd_sized();

	tmpl_params(&p, inline_data);
	snprintf(name, sizeof(name), "%d", fd);
	check(ext2fs_initialize(name, EXT2_FLAG_RW | EXT2_FLAG_64BITS, &p,
	    ext4_io_manager, &fs));
	fs->now = FUZZ_NOW;
	memset(fs->super->s_uuid, 0x5e, sizeof(fs->super->s_uuid));
	memset(fs->super->s_hash_seed, 0x9d, sizeof(fs->super->s_hash_seed));
	fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
	fs->super->s_checksum_type = EXT2_CRC32C_CHKSUM;
	ext2fs_init_csum_seed(fs);
	check(ext2fs_allocate_tables(fs));
	check(ext2fs_convert_subcluster_bitmap(fs, &fs->block_map));
	for (g = 0; g < fs->group_desc_count; g++)
		ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);
	check(ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, 0));
	check(ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found"));
	ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
	for (i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); i++)
		ext2fs_inode_alloc_stats2(fs, i, +1, 0);
	check(ext2fs_update_bb_inode(fs, NULL));
	check(ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "t"));
	check(ext2fs_set_gdt_csum(fs));
	check(ext2fs_close2(fs, 0));
	t->bytes = malloc((size_t)FUZZ_BLOCKS * FUZZ_BSIZE);
	if (t->bytes == NULL || pread(fd, t->bytes, (size_t)FUZZ_BLOCKS *
	    FUZZ_BSIZE, 0) != (ssize_t)FUZZ_BLOCKS * FUZZ_BSIZE)
		abort();
	tmpl_dump(t, inline_data);
	for (b = 0; b < FUZZ_BLOCKS; b++) {
		uint8_t *blk = t->bytes + b * FUZZ_BSIZE;

		t->used[b] = blk[0] != 0 ||
		    memcmp(blk, blk + 1, FUZZ_BSIZE - 1) != 0;
	}
	close(fd);
}

/* A fresh copy of the template in a memfd (its zero blocks holes). */
static int
tmpl_copy(const struct tmpl *t)
{
	int fd = memfd_sized();
	size_t b;

	for (b = 0; b < FUZZ_BLOCKS; b++)
		if (t->used[b] && pwrite(fd, t->bytes + b * FUZZ_BSIZE,
		    FUZZ_BSIZE, (off_t)(b * FUZZ_BSIZE)) != FUZZ_BSIZE)
			abort();
	return fd;
}

/* ------------------------------------------------- nothing outside /t */

static int
names_cb(struct ext2_dir_entry *de, int off, int bs, char *buf, void *priv)
{
	char *names = priv;
	size_t n = strlen(names);
	int len = ext2fs_dirent_name_len(de);

	(void)off;
	(void)bs;
	(void)buf;
	if (de->inode == 0 || n + (size_t)len + 2 > 4096)
		return 0;
	memcpy(names + n, de->name, (size_t)len);
	names[n + (size_t)len] = '/';
	names[n + (size_t)len + 1] = '\0';
	return 0;
}

/* The names in a directory, each followed by '/', in the order read. */
static void
dir_names(ext2_filsys fs, const char *path, char *names)
{
	ext2_ino_t ino;

	names[0] = '\0';
	check(ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino));
	check(ext2fs_dir_iterate(fs, ino, 0, NULL, names_cb, names));
}

/* ---------------------------------------------- the blocks add up */

struct acct {
	ext2fs_block_bitmap seen;
	blk64_t count;		/* blocks the inode maps */
};

static int
acct_cb(ext2_filsys fs, blk64_t *blk, e2_blkcnt_t cnt, blk64_t ref,
    int refoff, void *priv)
{
	struct acct *a = priv;

	(void)cnt;
	(void)ref;
	(void)refoff;
	if (*blk < fs->super->s_first_data_block ||
	    *blk >= ext2fs_blocks_count(fs->super) ||
	    ext2fs_test_block_bitmap2(a->seen, *blk) ||
	    !ext2fs_test_block_bitmap2(fs->block_map, *blk))
		abort();	/* outside, mapped twice, or free */
	ext2fs_mark_block_bitmap2(a->seen, *blk);
	a->count++;
	return 0;
}

/* The filesystem's own tables into seen. */
static void
acct_tables(ext2_filsys fs, ext2fs_block_bitmap seen)
{
	dgrp_t g;

	for (g = 0; g < fs->group_desc_count; g++) {
		ext2fs_reserve_super_and_bgd(fs, g, seen);
		ext2fs_mark_block_bitmap2(seen, ext2fs_block_bitmap_loc(fs, g));
		ext2fs_mark_block_bitmap2(seen, ext2fs_inode_bitmap_loc(fs, g));
		ext2fs_mark_block_bitmap_range2(seen,
		    ext2fs_inode_table_loc(fs, g), fs->inode_blocks_per_group);
	}
}

static void
acct_inode(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode *in,
    struct acct *a)
{
	blk64_t acl = ext2fs_file_acl_block(fs, in);

	a->count = 0;
	if (ext2fs_inode_has_valid_blocks2(fs, in))
		check(ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY, NULL,
		    acct_cb, a));
	if (acl != 0) {	/* an xattr block may be shared: once */
		if (!ext2fs_test_block_bitmap2(fs->block_map, acl))
			abort();
		if (!ext2fs_test_block_bitmap2(a->seen, acl))
			ext2fs_mark_block_bitmap2(a->seen, acl);
		a->count++;
	}
	if (ext2fs_get_stat_i_blocks(fs, (struct ext2_inode *)in) !=
	    a->count * (fs->blocksize / 512))
		abort();
}

/* An inline-data inode holds its size in bytes inline; no other inode
 * carries system.data (the inline area's xattr). */
static void
check_inline(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode *in)
{
	struct ext2_xattr_handle *h = NULL;
	size_t room = 0, len = 0;
	void *val = NULL;
	errcode_t err;

	if (in->i_flags & EXT4_INLINE_DATA_FL) {
		check(ext2fs_inline_data_size(fs, ino, &room));
		if (!LINUX_S_ISDIR(in->i_mode) && EXT2_I_SIZE(in) > room)
			abort();
		return;
	}
	check(ext2fs_xattrs_open(fs, ino, &h));
	check(ext2fs_xattrs_read(h));
	err = ext2fs_xattr_get(h, "system.data", &val, &len);
	ext2fs_free_mem(&val);
	check(ext2fs_xattrs_close(&h));
	/* system.data on an inode without inline data */
	if (err != EXT2_ET_EA_KEY_NOT_FOUND)
		abort();
}

static void
check_blocks(ext2_filsys fs)
{
	ext2_inode_scan scan;
	struct ext2_inode in;
	struct acct a;
	ext2_ino_t ino;
	blk64_t b, free_bits = 0;

	check(ext2fs_allocate_block_bitmap(fs, "seen", &a.seen));
	acct_tables(fs, a.seen);
	check(ext2fs_open_inode_scan(fs, 0, &scan));
	while (ext2fs_get_next_inode(scan, &ino, &in) == 0 && ino != 0) {
		if (in.i_links_count == 0 || in.i_mode == 0 ||
		    !ext2fs_test_inode_bitmap2(fs->inode_map, ino))
			continue;
		acct_inode(fs, ino, &in, &a);
		check_inline(fs, ino, &in);
	}
	ext2fs_close_inode_scan(scan);
	for (b = fs->super->s_first_data_block;
	    b < ext2fs_blocks_count(fs->super); b++) {
		if (ext2fs_test_block_bitmap2(fs->block_map, b) !=
		    ext2fs_test_block_bitmap2(a.seen, b))
			abort();	/* leaked, or in use but free */
		free_bits += !ext2fs_test_block_bitmap2(fs->block_map, b);
	}
	if (free_bits != ext2fs_free_blocks_count(fs->super))
		abort();
	ext2fs_free_block_bitmap(a.seen);
}

/* ---------------------------------------------------------- the run */

static void
after(int fd, const char *root_before, const char *lf_before, int ok)
{
	char name[16], names[4096];
	ext2_filsys fs = NULL;

	snprintf(name, sizeof(name), "%d", fd);
	check(ext2fs_open2(name, NULL, EXT2_FLAG_64BITS, 0, 0,
	    ext4_io_manager, &fs));
	check(ext2fs_read_bitmaps(fs));
	dir_names(fs, "/", names);
	if (strcmp(names, root_before) != 0)
		abort();	/* something landed in / */
	dir_names(fs, "/lost+found", names);
	if (strcmp(names, lf_before) != 0)
		abort();
	if (ok)
		check_blocks(fs);
	ext2fs_close_free(&fs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char root_names[2][4096], lf_names[2][4096];
	struct content_result res = { 0, 0, 0, 0 };
	struct pep_err e = { 0, "" };
	struct ext4 *x = NULL;
	ext2_filsys fs;
	int which = (int)(size & 1), fd, r;

	if (tmpls[which].bytes == NULL) {
		initialize_ext2_error_table();
		tmpl_make(&tmpls[which], which);
	}
	fd = tmpl_copy(&tmpls[which]);
	if (root_names[which][0] == '\0') {
		char name[16];

		snprintf(name, sizeof(name), "%d", fd);
		check(ext2fs_open2(name, NULL, EXT2_FLAG_64BITS, 0, 0,
		    ext4_io_manager, &fs));
		dir_names(fs, "/", root_names[which]);
		dir_names(fs, "/lost+found", lf_names[which]);
		ext2fs_close_free(&fs);
	}
	if (ext4_open(&x, fd, "fuzz", 0, 1, FUZZ_NOW, &e) < 0)
		abort();	/* the template always opens */
	r = archive_extract_mem(ext4_fsdir(x), data, size, "fuzz.tar", "/t",
	    &res, &e);
	if (r < 0 && e.msg[0] == '\0')
		abort();
	if (r < 0) {
		ext4_abort(x);
	} else if (ext4_close(x, &e) < 0) {
		abort();	/* nothing to fail on a memfd */
	}
	after(fd, root_names[which], lf_names[which], r == 0);
	close(fd);
	return 0;
}
