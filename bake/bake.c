/*
 * The bake pipeline: open the input by content, convert it into a sparse
 * raw output under a temporary name, grow the disk and its root partition,
 * edit the root filesystem through libext2fs, and only then give the
 * output its name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bake.h"

#define BAKE_DEFAULT_SIZE (2ULL << 30)


static const struct console_target {
	const char *path;
	enum console_file kind;
} console_targets[] = {
	{ "/boot/grub/grub.cfg", CONSOLE_GRUB_CFG },
	{ "/etc/default/grub", CONSOLE_DEFAULT_GRUB },
	{ "/boot/extlinux.conf", CONSOLE_EXTLINUX },
	{ "/etc/update-extlinux.conf", CONSOLE_UPDATE_EXTLINUX },
};

void
bake_warn(struct bake_report *r, const char *fmt, ...)
{
	va_list ap;

	if (r->nwarnings == sizeof(r->warnings) / sizeof(r->warnings[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(r->warnings[r->nwarnings++], sizeof(r->warnings[0]), fmt,
	    ap);
	va_end(ap);
}

static void
bake_edit(struct bake_report *r, const char *path, const char *action)
{
	struct bake_edit *ed;

	if (r->nedits == BAKE_MAXEDITS)
		return;
	ed = &r->edits[r->nedits++];
	snprintf(ed->path, sizeof(ed->path), "%s", path);
	snprintf(ed->action, sizeof(ed->action), "%s", action);
}

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

static int
bake_write(struct bake *b, const char *path, const char *buf, size_t len,
    const char *action, struct pep_err *e)
{
	int rc = ext4_write_file(b->fs, path, buf, len, e);

	if (rc == 0)
		bake_edit(b->r, path, action);
	return rc;
}

static int
bake_console_one(struct bake *b, const struct console_target *t,
    struct pep_err *e)
{
	char *in = NULL, *outb = NULL;
	size_t inlen = 0, outlen = 0;
	int rc, changed = 0;

	rc = ext4_read_file(b->fs, t->path, &in, &inlen, e);
	if (rc == -ENOENT) {
		rc = 0;		/* a dangling symlink: nothing to patch */
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = console_rewrite(t->kind, in, inlen, b->o->consoles,
	    b->o->nconsoles, &outb, &outlen, &changed, e);
	if (rc < 0)
		goto out;
	if (changed)
		rc = bake_write(b, t->path, outb, outlen, "patched", e);
	else
		bake_edit(b->r, t->path, "unchanged");
out:
	free(in);
	free(outb);
	return rc;
}

static int
bake_consoles(struct bake *b, struct pep_err *e)
{
	size_t i, seen = 0;
	int rc;

	for (i = 0; i < sizeof(console_targets) / sizeof(console_targets[0]);
	    i++) {
		if (ext4_exists(b->fs, console_targets[i].path) != 1)
			continue;
		seen++;
		rc = bake_console_one(b, &console_targets[i], e);
		if (rc < 0)
			return rc;
	}
	if (seen == 0)
		bake_warn(b->r, "%s: no bootloader configuration found "
		    "(looked for /boot/grub/grub.cfg, /etc/default/grub, "
		    "/boot/extlinux.conf, /etc/update-extlinux.conf); "
		    "console not set", b->o->input);
	return 0;
}

static int
bake_cloudinit(struct bake *b, struct pep_err *e)
{
	char *cur = NULL;
	size_t len = 0;
	int rc, had;

	rc = ext4_mkdir_p(b->fs, "/etc/cloud/cloud.cfg.d", e);
	if (rc < 0)
		return rc;
	had = ext4_read_file(b->fs, NOCLOUD_CFG_PATH, &cur, &len, NULL) == 0;
	if (had && len == strlen(NOCLOUD_CFG_TEXT) &&
	    memcmp(cur, NOCLOUD_CFG_TEXT, len) == 0) {
		bake_edit(b->r, NOCLOUD_CFG_PATH, "unchanged");
		free(cur);
		return 0;
	}
	free(cur);
	return bake_write(b, NOCLOUD_CFG_PATH, NOCLOUD_CFG_TEXT,
	    strlen(NOCLOUD_CFG_TEXT), had ? "patched" : "created", e);
}

static int
bake_tinycloud(struct bake *b, struct pep_err *e)
{
	static const char *const conf = "/etc/tiny-cloud.conf";
	char *in = NULL, *outb = NULL;
	size_t inlen = 0, outlen = 0;
	int rc, changed = 0, had;

	had = ext4_read_file(b->fs, conf, &in, &inlen, NULL) == 0;
	if (!had &&
	    ext4_read_file(b->fs, "/usr/lib/tiny-cloud/tiny-cloud.conf", &in,
	    &inlen, NULL) < 0) {
		in = NULL;
		inlen = 0;
	}
	rc = nocloud_tiny_conf(in != NULL ? in : "", inlen, &outb, &outlen,
	    &changed, e);
	if (rc < 0)
		goto out;
	if (had && !changed)
		bake_edit(b->r, conf, "unchanged");
	else
		rc = bake_write(b, conf, outb, outlen,
		    had ? "patched" : "created", e);
out:
	free(in);
	free(outb);
	return rc;
}

static int
bake_nocloud(struct bake *b, struct pep_err *e)
{
	int ci = ext4_exists(b->fs, "/etc/cloud") == 1;
	int tiny = ext4_exists(b->fs, "/etc/tiny-cloud.conf") == 1 ||
	    ext4_exists(b->fs, "/usr/lib/tiny-cloud") == 1 ||
	    ext4_exists(b->fs, "/lib/tiny-cloud") == 1;
	int rc = 0;

	snprintf(b->r->bootstrap, sizeof(b->r->bootstrap), "%s",
	    ci ? "cloud-init" : tiny ? "tiny-cloud" : "none");
	if (ci)
		rc = bake_cloudinit(b, e);
	if (rc == 0 && tiny)
		rc = bake_tinycloud(b, e);
	if (!ci && !tiny)
		bake_warn(b->r, "%s: neither cloud-init (/etc/cloud) nor "
		    "tiny-cloud (/etc/tiny-cloud.conf, /usr/lib/tiny-cloud) "
		    "found; NoCloud datasource not configured", b->o->input);
	return rc;
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

/* Grow the root filesystem into its room; a refusal for size gets the
 * --size that would work. */
static int
bake_grow(struct bake *b, struct pep_err *e)
{
	struct bake_report *r = b->r;
	char advice[256];
	size_t len;
	int rc;

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
bake_edits(struct bake *b, struct pep_err *e)
{
	struct bake_report *r = b->r;
	double t;
	int rc;

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
	t = progress_now();
	rc = bake_check_fits(b, e);
	if (rc == 0)
		rc = bake_grow(b, e);
	r->t_grow = progress_now() - t;
	if (rc == 0)
		rc = bake_consoles(b, e);
	if (rc == 0)
		rc = bake_nocloud(b, e);
	if (rc == 0)
		rc = ext4_close(b->fs, e);
	else
		ext4_abort(b->fs);
	b->fs = NULL;
	return rc;
}

int
bake_run(const struct bake_opts *o, struct bake_report *r,
    struct pep_err *e)
{
	struct bake b = { .o = o, .r = r, .out = { .fd = -1 } };
	struct progress p;
	double t0 = progress_now(), t;
	int rc;

	memset(r, 0, sizeof(*r));
	progress_init(&p, o->quiet);
	rc = out_check(o->output, o->input, e);
	if (rc == 0)
		rc = img_open(&b.im, o->input, e);
	if (rc < 0)
		goto out;
	snprintf(r->input_format, sizeof(r->input_format), "%s",
	    b.im->format);
	r->virtual_size = b.im->virtual_size;
	rc = bake_target_size(&b, e);
	if (rc == 0)
		rc = out_create(&b.out, o->output, e);
	if (rc < 0)
		goto out;
	rc = convert_run(b.im, b.out.fd, o->output, &p, &r->conv, e);
	t = progress_now();
	r->t_convert = t - t0;
	if (rc == 0)
		rc = disk_layout(&b, e);
	r->t_layout = progress_now() - t;
	t = progress_now();
	if (rc == 0)
		rc = bake_edits(&b, e);
	r->t_edit = progress_now() - t - r->t_grow;
	t = progress_now();
	if (rc == 0)
		rc = out_commit(&b.out, e);
	r->t_commit = progress_now() - t;
out:
	if (rc < 0)
		out_abort(&b.out);
	img_close(b.im);
	r->t_total = progress_now() - t0;
	return rc;
}
