/*
 * pep-bake private header: every module of bake/ is declared here,
 * grouped under a banner per file. Modules return 0 or a negative code
 * (see common/err.h) and fill a struct pep_err; only pep-bake.c prints.
 */
#ifndef PEP_BAKE_H
#define PEP_BAKE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../common/err.h"
#include "../common/progress.h"

#define BAKE_VERSION "0.1.0"

/* ------------------------------------------------------------------ */
/* img.c, img_raw.c, img_vhd.c, img_qcow2.c: input containers          */

enum img_extent {
	IMG_ZERO = 0,		/* the run reads as zeros (hole/unallocated) */
	IMG_DATA = 1		/* the run may hold data: read it */
};

struct img;

struct img_ops {
	const char *name;	/* "qcow2", "vhd", "raw" */
	/* 1 if the file is this format, 0 if not, < 0 on I/O error. */
	int (*probe)(struct img *im, struct pep_err *e);
	/* Parse and validate metadata; set virtual_size, format, priv. */
	int (*open)(struct img *im, struct pep_err *e);
	/* Read len bytes at virtual offset off (off+len <= virtual_size). */
	int (*pread)(struct img *im, void *buf, size_t len, uint64_t off,
	    struct pep_err *e);
	/*
	 * Classify the run at off. *len is in: the most the caller wants
	 * (> 0), out: the run's length (0 < out <= in). Returns IMG_DATA or
	 * IMG_ZERO, or < 0 on error.
	 */
	int (*map)(struct img *im, uint64_t off, uint64_t *len,
	    struct pep_err *e);
	/*
	 * Optional. If the run at off is stored verbatim in the container,
	 * set *file_off to where it starts, shorten *len to the contiguous
	 * stretch and return 1; return 0 when the run must go through pread.
	 */
	int (*direct)(struct img *im, uint64_t off, uint64_t *len,
	    uint64_t *file_off);
	void (*close)(struct img *im);
};

struct img {
	const struct img_ops *ops;
	const char *path;	/* for messages */
	int fd;			/* the container file, read-only */
	int own_fd;		/* img_close closes fd */
	uint64_t file_size;
	uint64_t virtual_size;
	char format[32];	/* "raw", "vhd-fixed", "vhd-dynamic", "qcow2-v3" */
	void *priv;
};

extern const struct img_ops img_raw_ops;
extern const struct img_ops img_vhd_ops;
extern const struct img_ops img_qcow2_ops;

/* Detect the format by content and open path read-only. */
int img_open(struct img **imp, const char *path, struct pep_err *e);
/* Same on an open fd (not closed by img_close); name is for messages. */
int img_open_fd(struct img **imp, int fd, const char *name,
    struct pep_err *e);
int img_pread(struct img *im, void *buf, size_t len, uint64_t off,
    struct pep_err *e);
int img_map(struct img *im, uint64_t off, uint64_t *len, struct pep_err *e);
int img_direct(struct img *im, uint64_t off, uint64_t *len,
    uint64_t *file_off);
void img_close(struct img *im);
/*
 * Exact read of the container file; a short read is PEP_ECORRUPT
 * "<path>: truncated: <what> at offset N past end of file".
 */
int img_read_file(struct img *im, void *buf, size_t len, uint64_t off,
    const char *what, struct pep_err *e);

/* Big-endian helpers shared by the container readers. */
static inline uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static inline uint16_t
be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* ------------------------------------------------------------------ */
/* out.c: the output file, written under a temporary name             */

struct out {
	const char *path;	/* the name the user asked for */
	char *tmppath;		/* visible temporary name, or NULL (O_TMPFILE) */
	char fdpath[64];	/* /proc/self/fd/N: a name libraries can open */
	int fd;
};

int out_create(struct out *o, const char *path, struct pep_err *e);
/* fsync, give it its final name, fsync the directory. */
int out_commit(struct out *o, struct pep_err *e);
/* Remove every trace (safe to call twice, and after commit). */
void out_abort(struct out *o);
/* Called from a signal handler: unlink the visible temp name. */
void out_abort_signal(void);

/* ------------------------------------------------------------------ */
/* convert.c: container -> sparse raw                                 */

struct convert_stats {
	uint64_t bytes_read;	/* by pep-bake, or by the kernel to copy */
	uint64_t bytes_written;	/* own blocks: non-zero data, kernel copies */
	uint64_t bytes_shared;	/* data sharing the input's blocks */
};

/*
 * Copy im's data to outfd (a fresh, empty file) leaving zeros as holes,
 * or sharing the input's blocks where the filesystem can (see convert.c).
 */
int convert_run(struct img *im, int outfd, const char *outname,
    struct progress *p, struct convert_stats *st, struct pep_err *e);

/* ------------------------------------------------------------------ */
/* layout.c: partition tables through libfdisk                        */

enum layout_kind {
	LAYOUT_NONE,		/* no partition table: a whole-disk fs */
	LAYOUT_GPT,
	LAYOUT_MBR
};

#define LAYOUT_MAXPARTS 128

struct part_info {
	int partno;		/* 1-based */
	uint64_t start;		/* bytes */
	uint64_t size;		/* bytes */
	char type[64];		/* GUID or MBR type code */
	char uuid[40];		/* GPT unique GUID */
	char name[80];		/* GPT name */
	uint64_t attrs;		/* GPT attribute bits */
};

struct layout {
	enum layout_kind kind;
	unsigned long sector_size;
	size_t nparts;
	struct part_info parts[LAYOUT_MAXPARTS];
};

const char *layout_kind_name(enum layout_kind k);
/* Read the partition table of the image open at fd. */
int layout_read(int fd, const char *name, struct layout *l,
    struct pep_err *e);
/*
 * The file behind fd has just been extended from old_size bytes.
 * Relocate the GPT backup to the new end (zeroing the stale old one) and
 * grow partition partno (1-based) to fill the disk. MBR: partno must be
 * the last partition. Fills *after with the new table.
 */
int layout_grow(int fd, const char *name, uint64_t old_size, int partno,
    struct layout *after, struct pep_err *e);
/* 1 if partition partno exists and no partition starts after it. */
int layout_is_last(const struct layout *l, int partno);

/* ------------------------------------------------------------------ */
/* ext4fs.c: file access inside an ext2/3/4 filesystem via libext2fs  */

struct ext4;

/* 1 if an ext2/3/4 superblock magic sits at byte offset off, else 0. */
int ext4_probe(int fd, uint64_t off);
/*
 * Open the filesystem at byte offset off of the file open on fd (which
 * the handle dups: the caller keeps its own). label names it in messages.
 * now is used for every timestamp written (never the wall clock).
 */
int ext4_open(struct ext4 **xp, int fd, const char *label, uint64_t off,
    int rw, time_t now, struct pep_err *e);
/* Flush and close (NULL-safe). Returns an error only for rw handles. */
int ext4_close(struct ext4 *x, struct pep_err *e);
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
/* Filesystem facts for the report. */
uint64_t ext4_size_bytes(struct ext4 *x);
/* The libext2fs handle and label, for ext4_grow.c. */
struct struct_ext2_filsys *ext4_handle(struct ext4 *x);
const char *ext4_label(struct ext4 *x);

/* ext4_io.c: libext2fs I/O by pread/pwrite on a descriptor; the name
 * given to ext2fs_open2 is the descriptor's number, options "offset=N". */
struct struct_io_manager;
extern struct struct_io_manager *ext4_io_manager;

/* ------------------------------------------------------------------ */
/* ext4_grow.c: grow-only offline resize of an ext2/3/4 filesystem    */

struct ext4_grow_info {
	unsigned int blocksize;
	uint64_t old_blocks;
	uint64_t new_blocks;
	uint32_t old_groups;
	uint32_t new_groups;
	uint64_t itable_zeroed;	/* inode-table bytes that were not holes */
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

/* ------------------------------------------------------------------ */
/* edit_text.c: line scanning for the text editors                    */

/* The line at in[pos..]: content length *n (no CR/LF), *eol its end. */
void edit_next_line(const char *in, size_t inlen, size_t pos, size_t *n,
    size_t *eol);

/* ------------------------------------------------------------------ */
/* edit_console.c: console= rewriting in bootloader configs          */

enum console_file {
	CONSOLE_GRUB_CFG,	/* /boot/grub/grub.cfg: linux lines */
	CONSOLE_DEFAULT_GRUB,	/* /etc/default/grub: GRUB_CMDLINE_LINUX* */
	CONSOLE_EXTLINUX,	/* /boot/extlinux.conf: APPEND lines */
	CONSOLE_UPDATE_EXTLINUX	/* /etc/update-extlinux.conf */
};

/*
 * Rewrite text of a file of the given kind: in each kernel command line,
 * the console= arguments are replaced by console=<c> for each of
 * consoles[] (at the first one's place); a command line without any gets
 * them appended. Nothing else changes. *out is malloc'd; *changed tells
 * whether it differs from in.
 */
int console_rewrite(enum console_file kind, const char *in, size_t inlen,
    const char *const *consoles, size_t ncons, char **out, size_t *outlen,
    int *changed, struct pep_err *e);

/* ------------------------------------------------------------------ */
/* edit_nocloud.c: selecting the NoCloud datasource                  */

#define NOCLOUD_CFG_PATH "/etc/cloud/cloud.cfg.d/99_nocloud.cfg"
#define NOCLOUD_CFG_TEXT "datasource_list: [ NoCloud, None ]\n"

/* /etc/tiny-cloud.conf text with CLOUD=nocloud (line replaced/added). */
int nocloud_tiny_conf(const char *in, size_t inlen, char **out,
    size_t *outlen, int *changed, struct pep_err *e);

/* ------------------------------------------------------------------ */
/* bake.c: the pipeline                                               */

#define BAKE_MAXCONSOLES 8
#define BAKE_MAXEDITS 16

struct bake_opts {
	const char *input;
	const char *output;
	uint64_t size;		/* target bytes; 0 = default */
	int size_set;
	int root_part;		/* 1-based; 0 = find it */
	const char *consoles[BAKE_MAXCONSOLES];
	size_t nconsoles;
	time_t epoch;		/* timestamps written into the image */
	int quiet;
};

struct bake_edit {
	char path[128];
	char action[16];	/* "patched", "created", "unchanged" */
};

struct bake_report {
	char input_format[32];
	uint64_t virtual_size;
	uint64_t output_size;
	struct layout before;
	struct layout after;
	int root_part;		/* 0 for a whole-disk filesystem */
	uint64_t root_offset;
	char bootstrap[16];	/* "cloud-init", "tiny-cloud", "none" */
	struct bake_edit edits[BAKE_MAXEDITS];
	size_t nedits;
	struct convert_stats conv;
	struct ext4_grow_info grow;
	time_t epoch;
	double t_convert, t_layout, t_grow, t_edit, t_commit, t_total;
	char warnings[4][256];
	size_t nwarnings;
};

int bake_run(const struct bake_opts *o, struct bake_report *r,
    struct pep_err *e);

/* ------------------------------------------------------------------ */
/* report.c: --json and the human summary                            */

char *report_json(const struct bake_opts *o, const struct bake_report *r);
void report_human(const struct bake_opts *o, const struct bake_report *r);

#endif
