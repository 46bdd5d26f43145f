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
#include "content.h"
#include "ext4.h"
#include "fsdir.h"

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

/*
 * Before any work: refuse an output name that exists and is not a regular
 * file, is the input itself, or is longer than its directory allows.
 */
int out_check(const char *path, const char *input, struct pep_err *e);
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
	uint64_t bytes_read;
	uint64_t bytes_written;	/* non-zero data written to the output */
};

/* Copy im's data to outfd (a fresh, empty file) leaving zeros as holes. */
int convert_run(struct img *im, int outfd, const char *outname,
    struct progress *p, struct convert_stats *st, struct pep_err *e);

/* ------------------------------------------------------------------ */
/* gpt.c: the GPT headers read directly                                */

struct gpt_info {
	int found;		/* a GPT signature, or an intact backup */
	unsigned long sector_size;	/* 512 or 4096: where it was found */
	int primary_ok;		/* header and entry-array CRC32s match */
	int backup_ok;
	uint64_t described_bytes;	/* the disk the primary describes */
	uint64_t entries_sectors;	/* the primary's entry array */
	uint64_t backup_lba;		/* the backup as found */
	uint64_t backup_entries_lba;
	uint64_t backup_entries_sectors;
	uint8_t guid_primary[16];
	uint8_t guid_backup[16];
};

/* Inspect the GPT (if any) of the disk of disk_bytes open at fd. */
void gpt_inspect(int fd, uint64_t disk_bytes, struct gpt_info *gi);
/* 1 if both copies are intact and name different disk GUIDs. */
int gpt_guids_differ(const struct gpt_info *gi);
/* A GUID as text, as sgdisk prints it. */
void gpt_guid_str(const uint8_t g[16], char out[37]);

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
	int nested;		/* MBR: a logical partition */
	int container;		/* MBR: an extended partition */
	char type[64];		/* GUID or MBR type code */
	char uuid[40];		/* GPT unique GUID */
	char name[80];		/* GPT name */
	uint64_t attrs;		/* GPT attribute bits */
};

struct layout {
	enum layout_kind kind;
	unsigned long sector_size;
	uint64_t disk_bytes;
	struct gpt_info gpt;
	size_t nparts;
	struct part_info parts[LAYOUT_MAXPARTS];
};

const char *layout_kind_name(enum layout_kind k);
/*
 * Read the partition table of the disk of disk_bytes open at fd, in the
 * sector size its GPT was written for. A table that cannot be used is an
 * error naming why: both GPT copies damaged, a GPT or a partition that
 * reaches past the end (a truncated image).
 */
int layout_read(int fd, const char *name, uint64_t disk_bytes,
    struct layout *l, struct pep_err *e);
/*
 * A GPT whose primary copy is damaged and backup intact is written anew
 * from the backup, at the disk's current size (before it grows, while the
 * backup is still where libfdisk looks). 1 if repaired, 0 if there was
 * nothing to do, < 0 on error. Read the layout again after a repair.
 */
int layout_repair(int fd, const char *name, const struct layout *l,
    struct pep_err *e);
/* The largest p can be where it starts (MBR: up to sector 2^32 - 1). */
uint64_t layout_max_part_bytes(const struct layout *l,
    const struct part_info *p);
/* Bytes the table keeps at the disk's end (GPT: backup entries+header). */
uint64_t layout_tail_bytes(const struct layout *l);
/* Partition partno, or NULL. */
const struct part_info *layout_part(const struct layout *l, int partno);
/* The first partition that starts after partno does, or NULL. */
const struct part_info *layout_after(const struct layout *l, int partno);
/*
 * The file behind fd has just been extended to disk_bytes from the size
 * before was read at. Relocate the GPT backup to the new end (zeroing the
 * stale old one) and grow primary partition partno, which must be the
 * last, to fill the disk, up to max_part_bytes. Fills *after.
 */
int layout_grow(int fd, const char *name, const struct layout *before,
    int partno, uint64_t disk_bytes, uint64_t max_part_bytes,
    struct layout *after, struct pep_err *e);

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
/* 0 if c is a usable console= value, else PEP_EUSAGE with the reason. */
int console_check(const char *c, struct pep_err *e);
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
/* bake.c: the pipeline, a list of steps run by one interpreter        */

#define BAKE_MAXCONSOLES 8

/* Which NoCloud datasource to configure (setup.c). */
enum bake_bootstrap {
	BAKE_BOOTSTRAP_AUTO = 0,	/* whichever the image has */
	BAKE_BOOTSTRAP_CLOUDINIT,	/* cloud-init's, found or not */
	BAKE_BOOTSTRAP_TINYCLOUD,	/* tiny-cloud's, found or not */
	BAKE_BOOTSTRAP_NONE		/* neither */
};

struct bake_opts {
	const char *input;
	const char *output;
	uint64_t size;		/* target bytes; 0 = default */
	int size_set;
	int root_part;		/* 1-based; 0 = find it */
	const char *consoles[BAKE_MAXCONSOLES];
	size_t nconsoles;
	time_t epoch;		/* timestamps written into the image */
	int epoch_set;		/* epoch given (0 is a valid epoch) */
	int quiet;
	const struct content_op *ops;	/* content operations, in order */
	size_t nops;
	int no_pexi;		/* do not install pexi-boot */
	const char *guest_dir;	/* where the guest files are (pexi.c) */
	const char *arch;	/* the image must be this arch, or NULL */
	enum bake_bootstrap bootstrap;
	int bootstrap_set;	/* bootstrap given (auto is a valid choice) */
};

struct bake_edit {
	char *path;
	const char *action;	/* "patched", "created", "unchanged", or a
				 * content operation's name */
};

/* A warning: a stable code for programs, the path it is about (a file in
 * the image, or the input), and a sentence for people. */
struct bake_warning {
	const char *code;
	char *path;
	char *msg;
};

/* How long a step took. */
struct bake_timing {
	const char *step;
	char *arg;		/* what it worked on, or NULL */
	double seconds;
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
	char guest_arch[32];	/* pexi-boot's architecture, "" if none */
	struct bake_edit *edits;
	size_t nedits, cape;
	struct convert_stats conv;
	struct ext4_grow_info grow;
	time_t epoch;
	struct bake_timing *timings;
	size_t ntimings, capt;
	double t_total;
	struct bake_warning *warnings;
	size_t nwarnings, capw;
	int oom;		/* a warning, edit or timing was lost */
};

/* Run the whole bake; r is filled as far as it got (bake_report_free). */
int bake_run(const struct bake_opts *o, struct bake_report *r,
    struct pep_err *e);
void bake_report_free(struct bake_report *r);
/* Add a warning (code: a short token such as "mbr-limit"). */
void bake_warn(struct bake_report *r, const char *code, const char *path,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Record what happened to a file in the image. */
void bake_edit(struct bake_report *r, const char *path, const char *action);
/* The seconds the named steps took, summed. */
double bake_seconds(const struct bake_report *r, const char *step);

/* One bake's state, shared by the steps (bake.c, disk.c, setup.c). */
struct bake {
	const struct bake_opts *o;
	struct bake_report *r;
	struct progress p;
	struct img *im;
	struct out out;
	struct ext4 *fs;
	uint64_t target;	/* the output disk's size */
	int grow_part;		/* the root partition grows */
	uint64_t max_part;	/* ... to at most this many bytes */
	int roots[LAYOUT_MAXPARTS];	/* every root partition found */
	size_t nroots;
	char label[512];	/* "<input> partition N", for messages */
};

struct bake_step;

/* A kind of step: its name (in timings) and what it does. */
struct step_ops {
	const char *name;
	int (*run)(struct bake *b, const struct bake_step *s,
	    struct pep_err *e);
};

struct bake_step {
	const struct step_ops *ops;
	const struct content_op *op;	/* a content step's operation */
};

/* ------------------------------------------------------------------ */
/* setup.c: the steps that make the image a pep guest                 */

/* console= on hvc0 (or --console) in every bootloader config found. */
extern const struct step_ops step_console;
/* The NoCloud datasource for cloud-init or tiny-cloud. */
extern const struct step_ops step_nocloud;
/* A bootstrap's name ("auto", "cloud-init", "tiny-cloud", "none"), and
 * the bootstrap a name stands for, or -1. */
const char *setup_bootstrap_name(enum bake_bootstrap b);
int setup_bootstrap_of(const char *name);

/* ------------------------------------------------------------------ */
/* pexi.c: the pexi-boot service, installed by default                */

extern const struct step_ops step_pexi;
/* Refuse an image whose architecture is not o->arch. */
extern const struct step_ops step_arch;
/* 1 if arch is one of Alpine's architecture names ("x86_64", ...). */
int pexi_arch_known(const char *arch);
/* Alpine's architecture names into buf, quoted and comma-separated. */
void pexi_arch_names(char *buf, size_t n);
/* The image's architecture ("x86_64", "aarch64"). */
int pexi_image_arch(struct fsdir *d, char *arch, size_t n,
    struct pep_err *e);
/* The guest directory: given, $PEP_GUEST_DIR, beside the executable,
 * or ../lib/pep/guest from it. */
int pexi_guest_dir(const char *given, char *out, size_t n,
    struct pep_err *e);

/* ------------------------------------------------------------------ */
/* disk.c: the root partition and the partition table                 */

/*
 * Find the root, decide how far its partition grows (refusing, with what
 * would work, what cannot), extend the output to b->target and grow the
 * table: fills r->before, r->after, r->root_part, r->root_offset.
 */
int disk_layout(struct bake *b, struct pep_err *e);
/* The bytes the root filesystem has room for in l (the disk is whole
 * bytes when there is no table). */
uint64_t disk_room(const struct bake *b, const struct layout *l,
    uint64_t whole);
/* "; use --size of at most N ..." for a root that can reach limit bytes. */
void disk_size_advice(const struct bake *b, uint64_t limit, char *buf,
    size_t n);

/* ------------------------------------------------------------------ */
/* report.c: --json and the human summary                            */

char *report_json(const struct bake_opts *o, const struct bake_report *r);
void report_human(const struct bake_opts *o, const struct bake_report *r);

#endif
