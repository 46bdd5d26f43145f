/*
 * The bake pipeline as a list of steps run by one interpreter (as
 * bubblewrap runs its SetupOp list): open the input by content, convert
 * it into a sparse raw output under a temporary name, grow the disk and
 * its root partition, open the root filesystem (and check its
 * architecture, when one is asked for), grow it, make the image a pep
 * guest (console, NoCloud, the pexi-boot service), apply the content
 * operations in the order given, close the filesystem (quota files
 * recounted), and only then give the output its name. Each step is
 * timed; the first failure stops the run and nothing is left under the
 * output's name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bake.h"
#include "report.h"

#define BAKE_DEFAULT_SIZE (2ULL << 30)

/* ------------------------------------------------------------- steps */

static int
bake_target_size(struct bake *b, struct pep_err *e)
{
	const struct bake_opts *o = b->o;
	uint64_t vs = b->im->virtual_size;

	if (!o->size_set) {
		b->target = vs > BAKE_DEFAULT_SIZE ? vs : BAKE_DEFAULT_SIZE;
		return 0;
	}
	if (o->size < vs)
		return pep_errf(e, PEP_EUSAGE, "%s: refusing to shrink: "
		    "--size %llu is smaller than the disk (%llu bytes)",
		    o->input, (unsigned long long)o->size,
		    (unsigned long long)vs);
	b->target = o->size;
	return 0;
}

/* The output name is usable, the input opens, the output is created. */
static int
step_open_run(struct bake *b, const struct bake_step *s, struct pep_err *e)
{
	int rc;

	(void)s;
	rc = out_check(b->o->output, b->o->input, e);
	if (rc == 0)
		rc = img_open(&b->im, b->o->input, e);
	if (rc < 0)
		return rc;
	snprintf(b->r->input_format, sizeof(b->r->input_format), "%s",
	    b->im->format);
	b->r->virtual_size = b->im->virtual_size;
	rc = bake_target_size(b, e);
	if (rc == 0)
		rc = out_create(&b->out, b->o->output, e);
	return rc;
}

static int
step_convert_run(struct bake *b, const struct bake_step *s,
    struct pep_err *e)
{
	(void)s;
	return convert_run(b->im, b->out.fd, b->o->output, &b->p,
	    &b->r->conv, e);
}

static int
step_layout_run(struct bake *b, const struct bake_step *s, struct pep_err *e)
{
	(void)s;
	return disk_layout(b, e);
}

/* --epoch, else $SOURCE_DATE_EPOCH (parsed by main), else the input
 * root filesystem's last write time: same inputs, same bytes. */
static time_t
bake_epoch(struct bake *b)
{
	time_t t = 0;

	if (b->o->epoch_set)
		return b->o->epoch;
	if (ext4_last_write(b->out.fd, b->r->root_offset, &t) < 0)
		t = 0;
	return t > INT32_MAX ? INT32_MAX : t;	/* inodes hold 32 bits */
}

/*
 * A filesystem larger than its partition or file (e2fsck: "the physical
 * size of the device is ... blocks") is cut short: what lies past the end
 * would read as zeros, and growing it would bury the loss.
 */
static int
bake_check_fits(struct bake *b, struct pep_err *e)
{
	uint64_t had = disk_room(b, &b->r->before, b->r->virtual_size);
	uint64_t fs = ext4_size_bytes(b->fs);

	if (had == 0 || fs <= had)
		return 0;
	return pep_errf(e, PEP_ECORRUPT, "%s: the filesystem is %llu bytes "
	    "but its %s only %llu: the image is truncated or the partition "
	    "table is wrong (e2fsck would say the same)", b->o->input,
	    (unsigned long long)fs, b->r->root_part ? "partition holds" :
	    "file holds", (unsigned long long)had);
}

static int
step_fs_open_run(struct bake *b, const struct bake_step *s,
    struct pep_err *e)
{
	struct bake_report *r = b->r;
	int rc;

	(void)s;
	r->epoch = bake_epoch(b);
	/* What the filesystem holds came from the input: name it so. */
	if (r->root_part)
		snprintf(b->label, sizeof(b->label), "%s partition %d",
		    b->o->input, r->root_part);
	else
		snprintf(b->label, sizeof(b->label), "%s", b->o->input);
	rc = ext4_open(&b->fs, b->out.fd, b->label, r->root_offset, 1,
	    r->epoch, e);
	if (rc < 0)
		return rc;
	ext4_set_nosync(b->fs);	/* out_commit fsyncs the whole output */
	ext4_set_io_name(b->fs, b->o->output);
	return bake_check_fits(b, e);
}

/* Grow the root filesystem into its room; a refusal for size gets the
 * --size that would work. */
static int
step_grow_run(struct bake *b, const struct bake_step *s, struct pep_err *e)
{
	struct bake_report *r = b->r;
	char advice[256];
	size_t len;
	int rc;

	(void)s;
	rc = ext4_grow(b->fs, b->out.fd, r->root_offset,
	    disk_room(b, &r->after, b->target), &r->grow, e);
	if (rc < 0 && r->grow.limit_bytes != 0 && e != NULL) {
		disk_size_advice(b, r->grow.limit_bytes, advice,
		    sizeof(advice));
		len = strlen(e->msg);
		snprintf(e->msg + len, sizeof(e->msg) - len, "%s", advice);
	}
	return rc;
}

static int
step_content_run(struct bake *b, const struct bake_step *s,
    struct pep_err *e)
{
	struct content_result res = { 0, 0, 0, 0 };
	int rc;

	rc = content_apply(ext4_fsdir(b->fs), s->op, b->r->epoch, &res, e);
	if (rc == 0)
		bake_edit(b->r, s->op->path, content_name(s->op->kind));
	return rc;
}

/* Quota files are recounted and everything is written (ext4_close). */
static int
step_fs_close_run(struct bake *b, const struct bake_step *s,
    struct pep_err *e)
{
	struct ext4 *x = b->fs;

	(void)s;
	b->fs = NULL;
	return ext4_close(x, e);
}

static int
step_commit_run(struct bake *b, const struct bake_step *s,
    struct pep_err *e)
{
	(void)s;
	return out_commit(&b->out, e);
}

static const struct step_ops step_open = { "open", step_open_run };
static const struct step_ops step_convert = { "convert", step_convert_run };
static const struct step_ops step_layout = { "layout", step_layout_run };
static const struct step_ops step_fs_open = { "fs-open", step_fs_open_run };
static const struct step_ops step_grow = { "grow", step_grow_run };
static const struct step_ops step_content = { "content",
	step_content_run };
static const struct step_ops step_fs_close = { "fs-close",
	step_fs_close_run };
static const struct step_ops step_commit = { "commit", step_commit_run };

/* ------------------------------------------------------------- plan */

/* Whether a step of the fixed head runs in this bake. */
static int
step_wanted(const struct bake_opts *o, const struct step_ops *ops)
{
	if (ops == &step_arch)
		return o->arch != NULL;
	if (ops == &step_pexi)
		return !o->no_pexi;
	return 1;
}

/* The steps of this bake, in order. Free with free(). */
static struct bake_step *
bake_plan(const struct bake_opts *o, size_t *n)
{
	static const struct step_ops *const head[] = { &step_open,
	    &step_convert, &step_layout, &step_fs_open, &step_arch,
	    &step_grow, &step_console, &step_nocloud, &step_pexi };
	static const struct step_ops *const tail[] = { &step_fs_close,
	    &step_commit };
	size_t nh = sizeof(head) / sizeof(head[0]);
	size_t nt = sizeof(tail) / sizeof(tail[0]), i, k = 0;
	struct bake_step *s = calloc(nh + o->nops + nt, sizeof(*s));

	if (s == NULL)
		return NULL;
	for (i = 0; i < nh; i++)
		if (step_wanted(o, head[i]))
			s[k++].ops = head[i];
	for (i = 0; i < o->nops; i++) {
		s[k].ops = &step_content;
		s[k++].op = &o->ops[i];
	}
	for (i = 0; i < nt; i++)
		s[k++].ops = tail[i];
	*n = k;
	return s;
}

/* The name a step has in timings: a content step by its operation. */
static const char *
step_name(const struct bake_step *s)
{
	return s->op != NULL ? content_name(s->op->kind) : s->ops->name;
}

int
bake_run(const struct bake_opts *o, struct bake_report *r,
    struct pep_err *e)
{
	struct bake b = { .o = o, .r = r, .out = { .fd = -1 } };
	struct bake_step *steps;
	size_t n = 0, i;
	double t0 = progress_now(), t;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	progress_init(&b.p, o->quiet);
	steps = bake_plan(o, &n);
	if (steps == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	for (i = 0; i < n && rc == 0; i++) {
		t = progress_now();
		progress_status(&b.p, step_name(&steps[i]),
		    steps[i].op != NULL ? steps[i].op->path : NULL);
		rc = steps[i].ops->run(&b, &steps[i], e);
		bake_time(r, step_name(&steps[i]),
		    steps[i].op != NULL ? steps[i].op->path : NULL,
		    progress_now() - t);
	}
	progress_clear(&b.p);
	if (rc < 0) {
		ext4_abort(b.fs);
		out_abort(&b.out);
	}
	img_close(b.im);
	free(steps);
	r->t_total = progress_now() - t0;
	return rc;
}
