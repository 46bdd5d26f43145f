/*
 * pep-bake's pipeline: the options, the report, one bake's state and the
 * steps (bake.c, disk.c, setup.c, pexi.c). Every other module of bake/
 * has its own header. Modules return 0 or a negative code (see
 * common/err.h) and fill a struct pep_err; only pep-bake.c prints.
 */
#ifndef PEP_BAKE_H
#define PEP_BAKE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../common/err.h"
#include "../common/progress.h"
#include "content.h"
#include "convert.h"
#include "ext4.h"
#include "fsdir.h"
#include "img.h"
#include "layout.h"
#include "out.h"

#define BAKE_VERSION "0.1.0"

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
	/* The runner's /etc/pexi/config.json (a recipe's "pexi_config"),
	 * replacing the image's; NULL: the image's, else a default. */
	const char *pexi_config;
	size_t pexi_config_len;
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

/* report.c: filling the report (the report's memory is its own). */
void bake_report_free(struct bake_report *r);
/* Add a warning (code: a short token such as "mbr-limit"). */
void bake_warn(struct bake_report *r, const char *code, const char *path,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Record what happened to a file in the image. */
void bake_edit(struct bake_report *r, const char *path, const char *action);
/* Record how long a step took (arg may be NULL). */
void bake_time(struct bake_report *r, const char *step, const char *arg,
    double seconds);
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
/* The runner's /etc/pexi/config.json: len bytes of json (a JSON object,
 * else PEP_EUSAGE), root:root 0644, mtime now; replaces an older one. */
int pexi_config_write(struct fsdir *d, const char *json, size_t len,
    time_t now, struct pep_err *e);

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

#endif
