/*
 * The ext4 module: ext2/3/4 filesystems inside an image, through
 * libext2fs: open and close (ext4fs.c), I/O on the caller's descriptor
 * (ext4_io.c), the grow (ext4_grow.c, ext4_place.c), quota files
 * (ext4_quota.c), and the fsdir backend every write goes through
 * (ext4_fsdir.c, ext4_inode.c, ext4_dir.c, ext4_data.c). Modules return
 * 0 or a negative code and fill a struct pep_err.
 */
#ifndef PEP_EXT4_H
#define PEP_EXT4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../common/err.h"
#include "fsdir.h"

/* ------------------------------------------------------------------ */
/* ext4fs.c: file access inside an ext2/3/4 filesystem via libext2fs  */

struct ext4;

/* The version of the libext2fs pep-bake carries (linked statically, so
 * the one that writes every image): "1.47.0". */
const char *ext4_lib_version(void);
/* 1 if an ext2/3/4 superblock magic sits at byte offset off, else 0. */
int ext4_probe(int fd, uint64_t off);
/* The filesystem's last write time (else its creation time; 0 if
 * neither was ever set), read from the superblock at off. 0 or -EINVAL. */
int ext4_last_write(int fd, uint64_t off, time_t *t);
/*
 * Open the filesystem at byte offset off of the file open on fd (which
 * the handle dups: the caller keeps its own). label names it in messages.
 * now is used for every timestamp written (never the wall clock).
 */
int ext4_open(struct ext4 **xp, int fd, const char *label, uint64_t off,
    int rw, time_t now, struct pep_err *e);
/* Flush and close (NULL-safe). Returns an error only for rw handles. */
int ext4_close(struct ext4 *x, struct pep_err *e);
/* Failures to read or write the file name this file (the label names
 * the filesystem and what it holds). */
void ext4_set_io_name(struct ext4 *x, const char *name);
/* Drop the handle without writing anything (NULL-safe): after a failure. */
void ext4_abort(struct ext4 *x);
/*
 * Close writes everything but skips libext2fs's fsync barriers: for a file
 * the caller fsyncs once when complete (pep-bake's temporary output).
 */
void ext4_set_nosync(struct ext4 *x);
/* 1 if path exists (any type, symlinks not followed), 0 if not. */
int ext4_exists(struct ext4 *x, const char *path);
/* Whole regular file into a malloc'd NUL-terminated buffer. -ENOENT. */
int ext4_read_file(struct ext4 *x, const char *path, char **buf,
    size_t *len, struct pep_err *e);
/*
 * Replace path's contents (keeping mode, owner, xattrs, flags), or create
 * it root:root 0644 when absent (its directory must exist). mtime/ctime
 * become now.
 */
int ext4_write_file(struct ext4 *x, const char *path, const void *buf,
    size_t len, struct pep_err *e);
/* Create a directory and missing parents, root:root 0755. */
int ext4_mkdir_p(struct ext4 *x, const char *path, struct pep_err *e);
/* The fsdir every write goes through (owned by x). */
struct fsdir *ext4_fsdir(struct ext4 *x);
/* Filesystem facts for the report. */
uint64_t ext4_size_bytes(struct ext4 *x);
/* The libext2fs handle and label, for ext4_grow.c. */
struct struct_ext2_filsys *ext4_handle(struct ext4 *x);
const char *ext4_label(struct ext4 *x);

/* ext4_io.c: libext2fs I/O by pread/pwrite on a descriptor; the name
 * given to ext2fs_open2 is the descriptor's number, options "offset=N". */
struct struct_io_manager;
struct struct_io_channel;
extern struct struct_io_manager *ext4_io_manager;
/* Cache single blocks from now on (see ext4_io.c; never while growing). */
void ext4_io_cache(struct struct_io_channel *ch);
/* The file's blocks [block, block + count) were written around the
 * channel: what it cached of them is dropped. */
void ext4_io_forget(struct struct_io_channel *ch, unsigned long long block,
    unsigned long long count);

/* ------------------------------------------------------------------ */
/* ext4_quota.c: usage and project quota files                        */

enum quota_type {
	QUOTA_USR,
	QUOTA_GRP,
	QUOTA_PRJ,
	QUOTA_NTYPES
};

struct quota_entry {
	uint32_t id;
	uint64_t ihard, isoft;	/* inode limits */
	uint64_t inodes;	/* inodes in use */
	uint64_t bhard, bsoft;	/* space limits, in 1 KiB units */
	uint64_t space;		/* bytes in use */
	uint64_t btime, itime;	/* grace deadlines */
};

struct quota_file {
	uint32_t bgrace, igrace, flags;
	struct quota_entry *ent;	/* sorted by id, each id once */
	size_t n, cap;
};

/*
 * Parse a vfsv1 quota file of the given type held in buf (untrusted:
 * bounds and tree shape checked; an empty file is a fresh one). name is
 * for messages. Free with quota_file_free.
 */
int quota_parse(const uint8_t *buf, size_t len, int type, const char *name,
    struct quota_file *qf, struct pep_err *e);
/* Write qf (entries sorted by id, unique) as a malloc'd file. 0/-ENOMEM. */
int quota_build(const struct quota_file *qf, int type, uint8_t **out,
    size_t *len);
void quota_file_free(struct quota_file *qf);
/*
 * Count usage anew and rewrite each quota file of fs (open read-write,
 * bitmaps loaded), keeping limits and grace times; now stamps the files.
 * Does nothing for a filesystem without the quota feature.
 */
int ext4_quota_sync(struct struct_ext2_filsys *fs, time_t now,
    const char *label, struct pep_err *e);

/* ------------------------------------------------------------------ */
/* ext4_grow.c: grow-only offline resize of an ext2/3/4 filesystem    */

struct ext4_grow_info {
	unsigned int blocksize;
	uint64_t old_blocks;
	uint64_t new_blocks;
	uint32_t old_groups;
	uint32_t new_groups;
	uint64_t itable_zeroed;	/* inode-table bytes that were not holes */
	uint64_t limit_bytes;	/* a refusal for size: the most it can be */
};

/*
 * Grow x (open read-write) to fill max_bytes: new groups only, nothing
 * moves. fd is the file holding it at byte offset off (new inode tables
 * that are holes there are known zero). Refuses, with the reason and what
 * would work instead, anything that needs blocks moved or an fsck first.
 * The result is written when x is closed.
 */
int ext4_grow(struct ext4 *x, int fd, uint64_t off, uint64_t max_bytes,
    struct ext4_grow_info *gi, struct pep_err *e);

/* ext4_place.c: place new group g's bitmaps and inode table as mke2fs
 * and resize2fs do (0, or -ENOSPC when they do not fit). */
int ext4_place_group(struct struct_ext2_filsys *fs, unsigned int g);
/* The free run ext2fs_get_free_blocks2 finds, found by skipping runs of
 * set and clear bits (0, or -ENOSPC); exported for its unit test. */
int ext4_place_find(struct struct_ext2_filsys *fs, unsigned long long start,
    unsigned long long finish, unsigned long long num,
    unsigned long long *ret);

#endif
