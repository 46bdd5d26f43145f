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
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "bake.h"

/* Config files only: refuse to slurp anything bigger. */
#define EXT4_READ_MAX	(64u << 20)
#define EXT4_SB_MAGIC_OFF	1080

struct ext4 {
	ext2_filsys fs;
	char *label;
	char *io_name;	/* the file, for failures to read or write it */
	int rw;
	int nosync;	/* the caller fsyncs the file itself */
	int changed;	/* something was written: quota usage is stale */
	time_t now;
};

/* libext2fs passes the I/O layer's errno values through unchanged. */
static int
x_is_errno(errcode_t err)
{
	return err > 0 && err < 4096;
}

static int
x_lib(struct ext4 *x, struct pep_err *e, errcode_t err, const char *path,
    const char *what)
{
	int code = PEP_ELIB;

	if (err == EXT2_ET_NO_MEMORY)
		code = ENOMEM;
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
	x->label = strdup(label);
	x->rw = rw != 0;
	x->now = now;
	if (x->label == NULL) {
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
		free(x->label);
		free(x);
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

static void
x_free(struct ext4 *x)
{
	free(x->label);
	free(x->io_name);
	free(x);
}

void
ext4_abort(struct ext4 *x)
{
	if (x == NULL)
		return;
	ext2fs_free(x->fs);	/* nothing is written */
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
			r = x_lib(x, e, err, "/", "writing the filesystem");
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

/* namei with or without following the final symlink; 0 or errcode. */
static errcode_t
lookup(struct ext4 *x, const char *path, int follow, ext2_ino_t *ino)
{
	if (path[0] != '/')
		return EXT2_ET_INVALID_ARGUMENT;
	if (follow)
		return ext2fs_namei_follow(x->fs, EXT2_ROOT_INO,
		    EXT2_ROOT_INO, path, ino);
	return ext2fs_namei(x->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino);
}

int
ext4_exists(struct ext4 *x, const char *path)
{
	ext2_ino_t ino;

	return lookup(x, path, 0, &ino) == 0;
}

static int
read_inode(struct ext4 *x, ext2_ino_t ino, struct ext2_inode *in,
    const char *path, struct pep_err *e)
{
	errcode_t err;

	err = ext2fs_read_inode(x->fs, ino, in);
	if (err != 0)
		return x_lib(x, e, err, path, "reading its inode");
	return 0;
}

static int
read_all(struct ext4 *x, ext2_ino_t ino, char *buf, unsigned int size,
    const char *path, struct pep_err *e)
{
	ext2_file_t f = NULL;
	unsigned int got = 0;
	errcode_t err;
	int r = 0;

	err = ext2fs_file_open(x->fs, ino, 0, &f);
	if (err != 0)
		return x_lib(x, e, err, path, "opening");
	/*
	 * One call for the whole size: 1.47.0's inline-data read returns
	 * the whole inline area (>= 60 bytes), not i_size, when asked more.
	 */
	err = ext2fs_file_read(f, buf, size, &got);
	if (err != 0)
		r = x_lib(x, e, err, path, "reading");
	else if (got != size)
		r = pep_errf(e, PEP_ECORRUPT, "%s: %s: short read (%u of %u "
		    "bytes)", x->label, path, got, size);
	ext2fs_file_close(f);
	return r;
}

int
ext4_read_file(struct ext4 *x, const char *path, char **buf, size_t *len,
    struct pep_err *e)
{
	struct ext2_inode in;
	ext2_ino_t ino;
	uint64_t size;
	char *b = NULL;
	errcode_t err;
	int r;

	*buf = NULL;
	*len = 0;
	if (path[0] != '/')
		return pep_errf(e, PEP_EUSAGE, "%s: %s: not an absolute path",
		    x->label, path);
	err = lookup(x, path, 1, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return pep_errf(e, ENOENT, "%s: %s: no such file", x->label,
		    path);
	if (err != 0)
		return x_lib(x, e, err, path, "looking up");
	r = read_inode(x, ino, &in, path, e);
	if (r < 0)
		return r;
	if (!LINUX_S_ISREG(in.i_mode))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: %s: not a regular "
		    "file", x->label, path);
	size = EXT2_I_SIZE(&in);
	if (size > EXT4_READ_MAX)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: %s: too large "
		    "(%llu bytes)", x->label, path, (unsigned long long)size);
	b = malloc(size + 1);
	if (b == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", x->label);
	r = read_all(x, ino, b, (unsigned int)size, path, e);
	if (r < 0) {
		free(b);
		return r;
	}
	b[size] = '\0';
	*buf = b;
	*len = size;
	return 0;
}

#define LI_END(f) (offsetof(struct ext2_inode_large, f) + \
	sizeof(((struct ext2_inode_large *)NULL)->f))

/* 1 if the inode (isz bytes on disk) holds the field ending at end. */
static int
holds(const struct ext2_inode_large *li, int isz, size_t end)
{
	return isz > EXT2_GOOD_OLD_INODE_SIZE && end <= (size_t)isz &&
	    end <= EXT2_GOOD_OLD_INODE_SIZE + (size_t)li->i_extra_isize;
}

/*
 * Set mtime = ctime = now (and atime/crtime too when all is set) on ino,
 * zeroing the nanosecond/epoch fields so the result is deterministic.
 */
static int
stamp_inode(struct ext4 *x, ext2_ino_t ino, int all, const char *path,
    struct pep_err *e)
{
	struct ext2_inode_large li;
	int isz = EXT2_INODE_SIZE(x->fs->super);
	uint32_t now = (uint32_t)x->now;
	errcode_t err;

	if (isz > (int)sizeof(li))
		isz = sizeof(li);
	memset(&li, 0, sizeof(li));
	err = ext2fs_read_inode_full(x->fs, ino, (struct ext2_inode *)&li,
	    isz);
	if (err != 0)
		return x_lib(x, e, err, path, "reading its inode");
	li.i_mtime = li.i_ctime = now;
	if (holds(&li, isz, LI_END(i_mtime_extra)))
		li.i_mtime_extra = li.i_ctime_extra = 0;
	if (all) {
		li.i_atime = now;
		if (holds(&li, isz, LI_END(i_atime_extra)))
			li.i_atime_extra = 0;
		if (holds(&li, isz, LI_END(i_crtime_extra))) {
			li.i_crtime = now;
			li.i_crtime_extra = 0;
		}
	}
	err = ext2fs_write_inode_full(x->fs, ino, (struct ext2_inode *)&li,
	    isz);
	if (err != 0)
		return x_lib(x, e, err, path, "writing its inode");
	return 0;
}

/* Remove the inline-data xattr (absent after truncation: then a no-op). */
static errcode_t
drop_system_data(struct ext4 *x, ext2_ino_t ino)
{
	struct ext2_xattr_handle *h = NULL;
	errcode_t err, err2;

	err = ext2fs_xattrs_open(x->fs, ino, &h);
	if (err != 0)
		return err;
	err = ext2fs_xattrs_read(h);
	if (err == 0)
		err = ext2fs_xattr_remove(h, "system.data");
	err2 = ext2fs_xattrs_close(&h);
	return err != 0 ? err : err2;
}

/*
 * An empty inline-data inode becomes an empty extent/block-mapped one.
 * Needed before big writes: 1.47.0's inline write path copies the whole
 * write into a 3-block buffer before it finds out it does not fit.
 */
static int
uninline(struct ext4 *x, ext2_ino_t ino, const char *path,
    struct pep_err *e)
{
	struct ext2_inode in;
	ext2_extent_handle_t h;
	errcode_t err;
	int r;

	r = read_inode(x, ino, &in, path, e);
	if (r < 0 || !(in.i_flags & EXT4_INLINE_DATA_FL))
		return r;
	err = drop_system_data(x, ino);
	if (err == 0)
		err = ext2fs_read_inode(x->fs, ino, &in);
	if (err != 0)
		return x_lib(x, e, err, path, "converting inline data");
	memset(in.i_block, 0, sizeof(in.i_block));
	in.i_flags &= ~(EXT4_INLINE_DATA_FL | EXT4_EXTENTS_FL);
	if (ext2fs_has_feature_extents(x->fs->super)) {
		err = ext2fs_extent_open2(x->fs, ino, &in, &h);
		if (err != 0)
			return x_lib(x, e, err, path, "converting to extents");
		ext2fs_extent_free(h);
	}
	err = ext2fs_write_inode(x->fs, ino, &in);
	if (err != 0)
		return x_lib(x, e, err, path, "writing its inode");
	return 0;
}

static int
truncate_ino(struct ext4 *x, ext2_ino_t ino, const char *path,
    struct pep_err *e)
{
	ext2_file_t f = NULL;
	errcode_t err, err2;

	err = ext2fs_file_open(x->fs, ino, EXT2_FILE_WRITE, &f);
	if (err != 0)
		return x_lib(x, e, err, path, "opening");
	err = ext2fs_file_set_size2(f, 0);
	err2 = ext2fs_file_close(f);
	if (err == 0)
		err = err2;
	if (err != 0)
		return x_lib(x, e, err, path, "truncating");
	return 0;
}

/* Replace ino's data with buf: truncate, then one write from offset 0. */
static int
put_data(struct ext4 *x, ext2_ino_t ino, const void *buf, size_t len,
    const char *path, struct pep_err *e)
{
	ext2_file_t f = NULL;
	unsigned int wrote = 0;
	__u64 size = 0;
	errcode_t err, err2;
	int r;

	r = truncate_ino(x, ino, path, e);
	if (r == 0 && len > x->fs->blocksize)
		r = uninline(x, ino, path, e);
	if (r < 0)
		return r;
	err = ext2fs_file_open(x->fs, ino, EXT2_FILE_WRITE, &f);
	if (err != 0)
		return x_lib(x, e, err, path, "opening");
	if (len > 0)
		err = ext2fs_file_write(f, buf, (unsigned int)len, &wrote);
	if (err == 0 && wrote != len)
		err = EXT2_ET_SHORT_WRITE;
	/*
	 * Should an inline write overflow into blocks, 1.47.0 first copies
	 * the whole inline area out: the size can exceed ours then.
	 */
	if (err == 0)
		err = ext2fs_file_get_lsize(f, &size);
	if (err == 0 && size != len)
		err = ext2fs_file_set_size2(f, len);
	err2 = ext2fs_file_close(f);
	if (err == 0)
		err = err2;
	if (err != 0)
		return x_lib(x, e, err, path, "writing");
	return 0;
}

/* Split "/a/b/c" into malloc'd "/a/b" and "c" (free both). */
static int
split_path(struct ext4 *x, const char *path, char **parent, char **name,
    struct pep_err *e)
{
	size_t n, cut;

	*parent = NULL;
	*name = NULL;
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (path[0] != '/' || n < 2)
		return pep_errf(e, PEP_EUSAGE, "%s: %s: not an absolute file "
		    "path", x->label, path);
	cut = n;
	while (path[cut - 1] != '/')
		cut--;
	if (n - cut > EXT2_NAME_LEN || (n - cut == 1 && path[cut] == '.') ||
	    (n - cut == 2 && path[cut] == '.' && path[cut + 1] == '.'))
		return pep_errf(e, PEP_EUSAGE, "%s: %s: bad file name",
		    x->label, path);
	*parent = strndup(path, cut > 1 ? cut - 1 : 1);
	*name = strndup(path + cut, n - cut);
	if (*parent == NULL || *name == NULL) {
		free(*parent);
		free(*name);
		*parent = *name = NULL;
		return pep_errf(e, ENOMEM, "%s: out of memory", x->label);
	}
	return 0;
}

/* Link name -> ino into dir, growing the directory when it is full. */
static errcode_t
link_entry(struct ext4 *x, ext2_ino_t dir, const char *name, ext2_ino_t ino,
    int type)
{
	errcode_t err;

	err = ext2fs_link(x->fs, dir, name, ino, type);
	if (err != EXT2_ET_DIR_NO_SPACE)
		return err;
	err = ext2fs_expand_dir(x->fs, dir);
	if (err != 0)
		return err;
	return ext2fs_link(x->fs, dir, name, ino, type);
}

/* The directory at path (final symlink followed), or an error. */
static int
dir_ino(struct ext4 *x, const char *path, ext2_ino_t *ino,
    struct pep_err *e)
{
	struct ext2_inode in;
	errcode_t err;
	int r;

	err = lookup(x, path, 1, ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return pep_errf(e, ENOENT, "%s: %s: no such directory",
		    x->label, path);
	if (err != 0)
		return x_lib(x, e, err, path, "looking up");
	r = read_inode(x, *ino, &in, path, e);
	if (r == 0 && !LINUX_S_ISDIR(in.i_mode))
		r = pep_errf(e, ENOTDIR, "%s: %s: not a directory", x->label,
		    path);
	return r;
}

/* A fresh empty regular inode, root:root 0644, linked as dir/name. */
static int
new_file(struct ext4 *x, ext2_ino_t dir, const char *name, size_t len,
    ext2_ino_t *inop, const char *path, struct pep_err *e)
{
	struct ext2_inode in;
	ext2_extent_handle_t h;
	ext2_ino_t ino;
	errcode_t err;

	err = ext2fs_new_inode(x->fs, dir, LINUX_S_IFREG | 0644, 0, &ino);
	if (err == 0)
		err = link_entry(x, dir, name, ino, EXT2_FT_REG_FILE);
	if (err != 0)
		return x_lib(x, e, err, path, "creating");
	ext2fs_inode_alloc_stats2(x->fs, ino, +1, 0);
	memset(&in, 0, sizeof(in));
	in.i_mode = LINUX_S_IFREG | 0644;
	in.i_links_count = 1;
	in.i_atime = in.i_mtime = in.i_ctime = (uint32_t)x->now;
	if (ext2fs_has_feature_inline_data(x->fs->super) &&
	    len <= x->fs->blocksize) {
		in.i_flags |= EXT4_INLINE_DATA_FL;
	} else if (ext2fs_has_feature_extents(x->fs->super)) {
		err = ext2fs_extent_open2(x->fs, ino, &in, &h);
		if (err != 0)
			return x_lib(x, e, err, path, "creating extents");
		ext2fs_extent_free(h);
	}
	/* Fills i_crtime from fs->now and zeroes every *_extra field. */
	err = ext2fs_write_new_inode(x->fs, ino, &in);
	if (err == 0 && (in.i_flags & EXT4_INLINE_DATA_FL))
		err = ext2fs_inline_data_init(x->fs, ino);
	if (err != 0)
		return x_lib(x, e, err, path, "writing its inode");
	*inop = ino;
	return 0;
}

static int
create_file(struct ext4 *x, const char *path, const void *buf, size_t len,
    struct pep_err *e)
{
	char *parent = NULL, *name = NULL;
	ext2_ino_t dir = 0, ino = 0;
	int r;

	r = split_path(x, path, &parent, &name, e);
	if (r < 0)
		return r;
	r = dir_ino(x, parent, &dir, e);
	if (r == 0)
		r = new_file(x, dir, name, len, &ino, path, e);
	if (r == 0)
		r = put_data(x, ino, buf, len, path, e);
	if (r == 0)
		r = stamp_inode(x, ino, 1, path, e);
	/* ext2fs_link leaves the directory's times alone. */
	if (r == 0)
		r = stamp_inode(x, dir, 0, parent, e);
	free(parent);
	free(name);
	return r;
}

/* Every change starts here: it also marks the quota usage stale. */
static int
check_rw(struct ext4 *x, const char *path, struct pep_err *e)
{
	if (!x->rw)
		return pep_errf(e, PEP_EUSAGE, "%s: %s: filesystem opened "
		    "read-only", x->label, path);
	x->changed = 1;
	return 0;
}

int
ext4_write_file(struct ext4 *x, const char *path, const void *buf,
    size_t len, struct pep_err *e)
{
	struct ext2_inode in;
	ext2_ino_t ino;
	errcode_t err;
	int r;

	r = check_rw(x, path, e);
	if (r < 0)
		return r;
	if (path[0] != '/')
		return pep_errf(e, PEP_EUSAGE, "%s: %s: not an absolute path",
		    x->label, path);
	if (len > UINT_MAX)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: %s: too large",
		    x->label, path);
	err = lookup(x, path, 0, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return create_file(x, path, buf, len, e);
	if (err == 0)
		err = lookup(x, path, 1, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return pep_errf(e, ENOENT, "%s: %s: dangling symlink",
		    x->label, path);
	if (err != 0)
		return x_lib(x, e, err, path, "looking up");
	r = read_inode(x, ino, &in, path, e);
	if (r < 0)
		return r;
	if (!LINUX_S_ISREG(in.i_mode))
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: %s: not a regular "
		    "file", x->label, path);
	r = put_data(x, ino, buf, len, path, e);
	if (r == 0)
		r = stamp_inode(x, ino, 0, path, e);
	return r;
}

/* mkdir dir/name (growing dir if full), root:root 0755, times now. */
static int
make_dir(struct ext4 *x, ext2_ino_t dir, const char *name, const char *path,
    struct pep_err *e)
{
	struct ext2_inode in;
	ext2_ino_t ino;
	errcode_t err;
	int r;

	err = ext2fs_mkdir(x->fs, dir, 0, name);
	if (err == EXT2_ET_DIR_NO_SPACE) {
		err = ext2fs_expand_dir(x->fs, dir);
		if (err == 0)
			err = ext2fs_mkdir(x->fs, dir, 0, name);
	}
	if (err == 0)
		err = ext2fs_lookup(x->fs, dir, name, (int)strlen(name), NULL,
		    &ino);
	if (err != 0)
		return x_lib(x, e, err, path, "creating directory");
	r = read_inode(x, ino, &in, path, e);
	if (r < 0)
		return r;
	in.i_mode = LINUX_S_IFDIR | 0755;
	in.i_uid = in.i_gid = 0;
	ext2fs_set_i_uid_high(in, 0);
	ext2fs_set_i_gid_high(in, 0);
	err = ext2fs_write_inode(x->fs, ino, &in);
	if (err != 0)
		return x_lib(x, e, err, path, "writing its inode");
	r = stamp_inode(x, ino, 1, path, e);
	if (r == 0)
		r = stamp_inode(x, dir, 0, path, e);
	return r;
}

/*
 * Descend from *cur into the component s..end of the copy p, creating it
 * when missing; p..end names the path so far in messages.
 */
static int
mkdir_step(struct ext4 *x, ext2_ino_t *cur, char *p, char *s, char *end,
    struct pep_err *e)
{
	char name[EXT2_NAME_LEN + 1];
	char save = *end;
	ext2_ino_t ino;
	errcode_t err;
	int r;

	if (end - s > EXT2_NAME_LEN)
		return pep_errf(e, PEP_EUSAGE, "%s: %s: name too long",
		    x->label, p);
	memcpy(name, s, (size_t)(end - s));
	name[end - s] = '\0';
	*end = '\0';
	err = ext2fs_namei_follow(x->fs, EXT2_ROOT_INO, *cur, name, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		r = make_dir(x, *cur, name, p, e);
	else if (err != 0)
		r = x_lib(x, e, err, p, "looking up");
	else
		r = 0;
	if (r == 0)
		r = dir_ino(x, p, cur, e);
	*end = save;
	return r;
}

int
ext4_mkdir_p(struct ext4 *x, const char *path, struct pep_err *e)
{
	ext2_ino_t cur = EXT2_ROOT_INO;
	char *p = NULL, *s, *end;
	int r;

	r = check_rw(x, path, e);
	if (r < 0)
		return r;
	if (path[0] != '/')
		return pep_errf(e, PEP_EUSAGE, "%s: %s: not an absolute path",
		    x->label, path);
	p = strdup(path);
	if (p == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", x->label);
	s = p;
	for (;;) {
		while (*s == '/')
			s++;
		if (*s == '\0')
			break;
		end = s + strcspn(s, "/");
		r = mkdir_step(x, &cur, p, s, end, e);
		if (r < 0)
			break;
		s = end;
	}
	free(p);
	return r;
}
