/*
 * File access inside an ext2/3/4 filesystem through libext2fs 1.47.0.
 *
 * Only files and directories are edited, never geometry. Every timestamp
 * written comes from the caller's `now` (fs->now, and the inode fields
 * we set ourselves), so two runs on identical input give identical bytes.
 *
 * Symlinks: ext4_exists does not follow a final symlink. ext4_read_file
 * and ext4_write_file do (ext2fs_namei_follow, resolved inside the image:
 * an absolute target starts at the image's root), so a read-modify-write
 * touches the same inode; writing through a dangling symlink is refused.
 * Intermediate symlinks are always followed.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "ext4_priv.h"

/* Config files only: refuse to slurp anything bigger. */
#define EXT4_READ_MAX	(64u << 20)
#define EXT4_SB_MAGIC_OFF	1080

const char *
ext4_lib_version(void)
{
	const char *v = NULL;

	ext2fs_get_library_version(&v, NULL);
	return v != NULL ? v : "unknown";
}

/* libext2fs passes the I/O layer's errno values through unchanged. */
static int
x_is_errno(errcode_t err)
{
	return err > 0 && err < 4096;
}

int
ext4_lib_err(struct ext4 *x, struct pep_err *e, errcode_t err,
    const char *path, const char *what)
{
	int code = PEP_ELIB;

	if (err == EXT2_ET_NO_MEMORY)
		code = ENOMEM;
	if (err == EXT2_ET_BLOCK_ALLOC_FAIL || err == EXT2_ET_INODE_ALLOC_FAIL)
		return pep_errf(e, ENOSPC, "%s: %s: %s: the filesystem is full "
		    "(%s; a larger --size grows it)", x->label, path, what,
		    error_message(err));
	if (x_is_errno(err) && x->io_name != NULL)
		return pep_errf(e, (int)err, "%s: %s: %s: %s: %s", x->io_name,
		    x->label, path, what, strerror((int)err));
	return pep_errf(e, code, "%s: %s: %s: %s", x->label, path, what,
	    error_message(err));
}

int
ext4_last_write(int fd, uint64_t off, time_t *t)
{
	struct ext2_super_block sb;

	if (off > (uint64_t)INT64_MAX - 2048 ||
	    pread(fd, &sb, sizeof(sb), (off_t)(off + 1024)) !=
	    (ssize_t)sizeof(sb) || le16toh(sb.s_magic) != EXT2_SUPER_MAGIC)
		return -EINVAL;
	*t = (time_t)le32toh(sb.s_wtime);
	if (*t == 0)
		*t = (time_t)le32toh(sb.s_mkfs_time);
	return 0;
}

int
ext4_probe(int fd, uint64_t off)
{
	unsigned char m[2];

	if (off > (uint64_t)INT64_MAX - EXT4_SB_MAGIC_OFF)
		return 0;
	if (pread(fd, m, sizeof(m), (off_t)(off + EXT4_SB_MAGIC_OFF)) !=
	    (ssize_t)sizeof(m))
		return 0;
	return m[0] == 0x53 && m[1] == 0xEF;
}

static int
open_errcode(errcode_t err)
{
	switch (err) {
	case EXT2_ET_BAD_MAGIC:
	case EXT2_ET_SB_CSUM_INVALID:
	case EXT2_ET_CORRUPT_SUPERBLOCK:
		return PEP_EFORMAT;
	case EXT2_ET_UNSUPP_FEATURE:
	case EXT2_ET_RO_UNSUPP_FEATURE:
	case EXT2_ET_REV_TOO_HIGH:
		return PEP_EUNSUPPORTED;
	case EXT2_ET_NO_MEMORY:
		return ENOMEM;
	default:
		return PEP_ELIB;
	}
}

/* Refuse states in which editing would be unsafe. */
static int
check_state(struct ext4 *x, struct pep_err *e)
{
	struct ext2_super_block *sb = x->fs->super;

	if (ext2fs_has_feature_journal_needs_recovery(sb))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: the journal needs "
		    "recovery (replay it with e2fsck first)", x->label);
	if (sb->s_state & EXT2_ERROR_FS)
		return pep_errf(e, PEP_ECORRUPT, "%s: the filesystem has its "
		    "errors flag set (run e2fsck first)", x->label);
	if (x->rw && !(sb->s_state & EXT2_VALID_FS))
		return pep_errf(e, PEP_ECORRUPT, "%s: the filesystem was not "
		    "cleanly unmounted (run e2fsck first)", x->label);
	/* MMP stamps wall-clock time and random sequence numbers. */
	if (x->rw && ext2fs_has_feature_mmp(sb))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: multi-mount "
		    "protection (mmp) is not supported", x->label);
	return 0;
}

/*
 * e2fsck's first checks, before anything reads bitmaps or tables: a
 * hostile superblock or descriptor makes libext2fs itself overrun.
 */
static int
check_geometry(struct ext4 *x, struct pep_err *e)
{
	ext2_filsys fs = x->fs;
	errcode_t err;

	if (fs->super->s_first_data_block != (fs->blocksize == 1024 ? 1u : 0u))
		return pep_errf(e, PEP_ECORRUPT, "%s: first data block %u "
		    "does not fit the block size %u (run e2fsck)", x->label,
		    fs->super->s_first_data_block, fs->blocksize);
	err = ext2fs_check_desc(fs);
	if (err != 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: group descriptors are "
		    "corrupt: %s (run e2fsck)", x->label, error_message(err));
	return 0;
}

/*
 * The only time source libext2fs may use is fs->now, but it reads 0 there
 * as "the wall clock". 1.47.1 and later have a flag meaning "0 is meant";
 * 1.47.0 (Debian 12's, linked statically) stores fs->now only into 32-bit
 * fields, so 2^32 writes a 0 there.
 */
static void
set_lib_time(ext2_filsys fs, time_t now)
{
#ifdef EXT2_FLAG2_USE_FAKE_TIME
	fs->now = now;
	if (now == 0)
		fs->flags2 |= EXT2_FLAG2_USE_FAKE_TIME;
#else
	fs->now = now != 0 ? now : (time_t)1 << 32;
#endif
}

static int
open_fs(struct ext4 *x, int fd, uint64_t off, struct pep_err *e)
{
	char name[16], opts[64];
	int flags = EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP;
	errcode_t err;

	if (x->rw)
		flags |= EXT2_FLAG_RW;
	snprintf(name, sizeof(name), "%d", fd);
	snprintf(opts, sizeof(opts), "offset=%llu", (unsigned long long)off);
	err = ext2fs_open2(name, opts, flags, 0, 0, ext4_io_manager, &x->fs);
	if (err != 0)
		x->fs = NULL;
	if (err == EXT2_ET_BAD_MAGIC)
		return pep_errf(e, PEP_EFORMAT, "%s: not an ext2/3/4 "
		    "filesystem", x->label);
	if (err != 0)
		return pep_errf(e, open_errcode(err), "%s: cannot open the "
		    "filesystem: %s", x->label, error_message(err));
	set_lib_time(x->fs, x->now);
	return 0;
}

static void
x_free(struct ext4 *x)
{
	fsdir_release(&x->dir);
	if (x->fd >= 0)
		close(x->fd);
	free(x->label);
	free(x->io_name);
	free(x);
}

int
ext4_open(struct ext4 **xp, int fd, const char *label, uint64_t off,
    int rw, time_t now, struct pep_err *e)
{
	struct ext4 *x = NULL;
	errcode_t err;
	int r;

	*xp = NULL;
	/* So that error_message() knows the ext2 codes (idempotent). */
	initialize_ext2_error_table();
	/* Past 2038 would need the inodes' epoch bits. */
	if (now < 0 || now > INT32_MAX)
		return pep_errf(e, PEP_EUSAGE, "%s: timestamp %lld out of "
		    "range (0..%ld)", label, (long long)now, (long)INT32_MAX);
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", label);
	x->fd = -1;
	x->label = strdup(label);
	x->rw = rw != 0;
	x->now = now;
	x->off = off;
	x->fd = dup(fd);
	x->dir.ops = &ext4_fsdir_ops;
	x->dir.priv = x;
	x->dir.label = x->label;
	x->dir.now = now;
	if (x->label == NULL || x->fd < 0) {
		r = pep_errf(e, ENOMEM, "%s: out of memory", label);
		goto out;
	}
	r = open_fs(x, fd, off, e);
	if (r < 0)
		goto out;
	r = check_state(x, e);
	if (r == 0)
		r = check_geometry(x, e);
	if (r < 0)
		goto out;
	if (x->rw) {
		/*
		 * Extent-tree bitmaps: a grown filesystem's new area is one
		 * free extent, not megabytes of zeros to allocate and fault in.
		 */
		x->fs->default_bitmap_type = EXT2FS_BMAP64_RBTREE;
		err = ext2fs_read_bitmaps(x->fs);
		if (err != 0) {
			r = pep_errf(e, PEP_ELIB, "%s: reading the bitmaps: "
			    "%s", x->label, error_message(err));
			goto out;
		}
	}
	*xp = x;
	x = NULL;
out:
	if (x != NULL) {
		if (x->fs != NULL)
			ext2fs_free(x->fs);
		x_free(x);
	}
	return r;
}

void
ext4_set_nosync(struct ext4 *x)
{
	x->nosync = 1;
}

void
ext4_set_io_name(struct ext4 *x, const char *name)
{
	free(x->io_name);
	x->io_name = strdup(name);
}

void
ext4_abort(struct ext4 *x)
{
	if (x == NULL)
		return;
	/* nothing is written: not even what the I/O cache holds */
	if (x->fs != NULL)
		ext4_io_forget(x->fs->io, 0, ~0ULL);
	ext2fs_free(x->fs);
	x_free(x);
}

int
ext4_close(struct ext4 *x, struct pep_err *e)
{
	errcode_t err;
	int r = 0;

	if (x == NULL)
		return 0;
	if (x->rw && x->changed) {
		r = ext4_quota_sync(x->fs, x->now, x->label, e);
		if (r < 0) {
			ext4_abort(x);
			return r;
		}
	}
	if (x->rw) {
		err = ext2fs_close2(x->fs, x->nosync ?
		    EXT2_FLAG_FLUSH_NO_SYNC : 0);
		if (err != 0)	/* close2 frees the handle only on success */
			ext2fs_free(x->fs);
		x->fs = NULL;
		if (err != 0)
			r = ext4_lib_err(x, e, err, "/",
			    "writing the filesystem");
	} else {
		ext2fs_free(x->fs);
	}
	x_free(x);
	return r;
}

uint64_t
ext4_size_bytes(struct ext4 *x)
{
	return ext2fs_blocks_count(x->fs->super) * (uint64_t)x->fs->blocksize;
}

struct struct_ext2_filsys *
ext4_handle(struct ext4 *x)
{
	return x->fs;
}

const char *
ext4_label(struct ext4 *x)
{
	return x->label;
}

struct fsdir *
ext4_fsdir(struct ext4 *x)
{
	return &x->dir;
}

int
ext4_exists(struct ext4 *x, const char *path)
{
	struct fs_where w;

	if (fsdir_resolve(&x->dir, path, 0, NULL, &w, NULL) < 0)
		return 0;
	return w.exists;
}

int
ext4_read_file(struct ext4 *x, const char *path, char **buf, size_t *len,
    struct pep_err *e)
{
	return fsdir_slurp(&x->dir, path, EXT4_READ_MAX, buf, len, e);
}

int
ext4_write_file(struct ext4 *x, const char *path, const void *buf,
    size_t len, struct pep_err *e)
{
	struct fs_meta m = fs_meta_made(S_IFREG | 0644, x->now);

	return fsdir_put(&x->dir, path, buf, len, &m, 0, NULL, e);
}

int
ext4_mkdir_p(struct ext4 *x, const char *path, struct pep_err *e)
{
	struct fs_meta m = fs_meta_made(S_IFDIR | 0755, x->now);

	return fsdir_mkdir_p(&x->dir, path, &m, e);
}
