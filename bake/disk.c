/*
 * The disk stage of a bake: find the root filesystem, decide how far its
 * partition may grow (or why it may not, with a way out that works),
 * extend the output and grow the partition table. Everything here works
 * on the output, which holds the converted input; messages about what the
 * input holds name the input, and failures to write name the output.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bake.h"

/*
 * 1 if the ext4 at off is an OS root (has alpine-release/os-release).
 * A filesystem that cannot be opened leaves its reason in *why.
 */
static int
disk_is_root(struct bake *b, const struct part_info *p, int *alpine,
    struct pep_err *why)
{
	struct ext4 *x = NULL;
	char label[600];
	int found = 0;

	*alpine = 0;
	if (!ext4_probe(b->out.fd, p->start))
		return 0;
	snprintf(label, sizeof(label), "%s partition %d", b->o->input,
	    p->partno);
	if (ext4_open(&x, b->out.fd, label, p->start, 0, 1, why) < 0)
		return 0;
	if (ext4_exists(x, "/etc/alpine-release") == 1)
		found = *alpine = 1;
	else if (ext4_exists(x, "/etc/os-release") == 1)
		found = 1;
	ext4_abort(x);
	return found;
}

/* "1, 2 and 5": the partitions there are, for "no partition N". */
static void
disk_part_list(const struct layout *l, char *buf, size_t n)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < l->nparts && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%d", i == 0 ? "" :
		    i + 1 == l->nparts ? " and " : ", ", l->parts[i].partno);
}

static int
disk_no_root(struct bake *b, const struct pep_err *why, struct pep_err *e)
{
	char parts[256];

	if (b->o->root_part) {
		disk_part_list(&b->r->before, parts, sizeof(parts));
		return pep_errf(e, PEP_ENOTFOUND, "%s: no partition %d (the "
		    "disk has partition%s %s)", b->o->input,
		    b->o->root_part, b->r->before.nparts == 1 ? "" : "s",
		    b->r->before.nparts ? parts : "none");
	}
	if (why->code != 0)
		return pep_errf(e, why->code, "%s", why->msg);
	return pep_errf(e, PEP_ENOTFOUND, "%s: no partition holds an "
	    "ext2/3/4 filesystem with /etc/alpine-release or /etc/os-release "
	    "(name the root with --root-partition N)", b->o->input);
}

/*
 * The root: --root-partition, else the first Alpine root, else the first
 * partition with an os-release. Every root found is remembered, so that a
 * refusal about one can name another (A/B layouts).
 */
static int
disk_find_root(struct bake *b, struct pep_err *e)
{
	struct bake_report *r = b->r;
	const struct part_info *p;
	struct pep_err why = { 0, "" };
	size_t i;
	int alpine, best = 0, best_alpine = 0, is;

	b->nroots = 0;
	for (i = 0; i < r->before.nparts; i++) {
		p = &r->before.parts[i];
		is = disk_is_root(b, p, &alpine, &why);
		if (is && b->nroots < LAYOUT_MAXPARTS)
			b->roots[b->nroots++] = p->partno;
		if (b->o->root_part ? p->partno != b->o->root_part : !is)
			continue;
		if (best == 0 || (alpine && !best_alpine)) {
			best = p->partno;
			best_alpine = alpine;
			r->root_offset = p->start;
		}
	}
	if (best == 0)
		return disk_no_root(b, &why, e);
	if (!ext4_probe(b->out.fd, r->root_offset))
		return pep_errf(e, PEP_EFORMAT, "%s: partition %d holds no "
		    "ext2/3/4 filesystem", b->o->input, best);
	r->root_part = best;
	return 0;
}

/* Another root found on the disk that is the last partition, or 0. */
static int
disk_other_last_root(const struct bake *b)
{
	size_t i;

	for (i = 0; i < b->nroots; i++)
		if (b->roots[i] != b->r->root_part &&
		    layout_after(&b->r->before, b->roots[i]) == NULL)
			return b->roots[i];
	return 0;
}

/* The root cannot grow where it is: say why, and what would work. */
static int
disk_refuse_fixed(struct bake *b, const struct part_info *root,
    const struct part_info *next, struct pep_err *e)
{
	int other = disk_other_last_root(b);
	char way[256];

	if (other)
		snprintf(way, sizeof(way), "partition %d is a root too and "
		    "is the last: bake it with --root-partition %d", other,
		    other);
	else
		snprintf(way, sizeof(way), "bake it at its own size with "
		    "--size %llu (the root filesystem is then not grown)",
		    (unsigned long long)b->im->virtual_size);
	if (next != NULL)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: the root, partition "
		    "%d, is followed by partition %d: growing it would need "
		    "partition %d moved; %s", b->o->input, root->partno,
		    next->partno, next->partno, way);
	return pep_errf(e, PEP_EUNSUPPORTED, "%s: the root, partition %d, is "
	    "a logical partition inside an extended one; pep-bake grows only "
	    "primary partitions; %s", b->o->input, root->partno, way);
}

/*
 * An MBR partition cannot end past sector 2^32 - 1 (2 TiB with 512-byte
 * sectors). A --size beyond what the root can reach is refused with the
 * largest that works; a disk that is that big already keeps its size and
 * the partition stops at the limit, with a warning.
 */
static int
disk_table_limit(struct bake *b, const struct part_info *root,
    struct pep_err *e)
{
	const struct layout *l = &b->r->before;
	uint64_t max = layout_max_part_bytes(l, root);
	uint64_t want = b->target - layout_tail_bytes(l) - root->start;
	uint64_t reach = root->start + max + layout_tail_bytes(l);

	b->max_part = max;
	if (want <= max)
		return 0;
	if (b->o->size_set && b->target > b->im->virtual_size &&
	    reach > b->im->virtual_size)
		return pep_errf(e, PEP_EUSAGE, "%s: an MBR partition cannot "
		    "end past sector 2^32 - 1 (byte %llu with %lu-byte "
		    "sectors): with --size %llu partition %d would end at "
		    "byte %llu; use --size of at most %llu, or convert the "
		    "disk to GPT", b->o->input, (unsigned long long)reach,
		    l->sector_size, (unsigned long long)b->target,
		    root->partno, (unsigned long long)b->target,
		    (unsigned long long)reach);
	bake_warn(b->r, "mbr-limit", b->o->input, "%s: an MBR partition "
	    "cannot end past sector 2^32 - 1: partition %d grows to byte "
	    "%llu and the last %llu bytes of the disk are left unused "
	    "(convert the disk to GPT to use them)", b->o->input,
	    root->partno, (unsigned long long)reach,
	    (unsigned long long)(want - max));
	return 0;
}

/* Decide b->grow_part and b->max_part for the table read in before. */
static int
disk_plan(struct bake *b, struct pep_err *e)
{
	const struct layout *l = &b->r->before;
	const struct part_info *root, *next;

	b->grow_part = 0;
	b->max_part = UINT64_MAX;
	if (l->kind == LAYOUT_NONE)
		return 0;
	root = layout_part(l, b->r->root_part);
	next = layout_after(l, b->r->root_part);
	if (root == NULL)
		return pep_errf(e, PEP_ENOTFOUND, "%s: no partition %d",
		    b->o->input, b->r->root_part);
	/*
	 * Grow the root into whatever follows it, even when the disk keeps
	 * its size; a root that cannot grow is refused only if the disk
	 * grows (then the new space would be unreachable).
	 */
	if (next != NULL || root->nested) {
		if (b->target == b->im->virtual_size)
			return 0;
		return disk_refuse_fixed(b, root, next, e);
	}
	b->grow_part = 1;
	return disk_table_limit(b, root, e);
}

/* GPT copies that disagree or are damaged: libfdisk mends what it writes. */
static void
disk_warn_gpt(struct bake *b)
{
	const struct gpt_info *g = &b->r->before.gpt;
	char p[37], k[37];

	if (gpt_guids_differ(g)) {
		gpt_guid_str(g->guid_primary, p);
		gpt_guid_str(g->guid_backup, k);
		bake_warn(b->r, "gpt-backup-guid", b->o->input, "%s: the "
		    "backup GPT header names disk GUID %s but the primary "
		    "%s: %s", b->o->input, k, p, b->grow_part ? "the backup "
		    "is written anew from the primary" : "left as it is, "
		    "since the table is not rewritten");
	}
	if (g->found && g->primary_ok && !g->backup_ok)
		bake_warn(b->r, "gpt-backup-damaged", b->o->input, "%s: the "
		    "backup GPT header or its entries are damaged: %s",
		    b->o->input, b->grow_part ? "written anew from the "
		    "primary" : "left as they are, since the table is not "
		    "rewritten");
}

/* Read the input's table (repairing a damaged primary GPT) and root. */
static int
disk_read(struct bake *b, struct pep_err *e)
{
	struct bake_report *r = b->r;
	uint64_t vs = b->im->virtual_size;
	int rc;

	rc = layout_read(b->out.fd, b->o->input, vs, &r->before, e);
	if (rc < 0)
		return rc;
	if (r->before.kind == LAYOUT_NONE)
		return pep_errf(e, PEP_EFORMAT, "%s: no partition table and no "
		    "ext2/3/4 filesystem on the disk", b->o->input);
	rc = layout_repair(b->out.fd, b->o->output, &r->before, e);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		bake_warn(r, "gpt-primary-rebuilt", b->o->input, "%s: the "
		    "primary GPT header or its entries were damaged: rebuilt "
		    "from the intact backup", b->o->input);
		rc = layout_read(b->out.fd, b->o->input, vs, &r->before, e);
		if (rc < 0)
			return rc;
	}
	return disk_find_root(b, e);
}

int
disk_layout(struct bake *b, struct pep_err *e)
{
	struct bake_report *r = b->r;
	int rc;

	if (ext4_probe(b->out.fd, 0)) {
		r->before.kind = r->after.kind = LAYOUT_NONE;
		r->before.sector_size = r->after.sector_size = 512;
		r->root_part = 0;
		r->root_offset = 0;
	} else {
		rc = disk_read(b, e);
		if (rc < 0)
			return rc;
	}
	rc = disk_plan(b, e);
	if (rc < 0)
		return rc;
	disk_warn_gpt(b);
	if (ftruncate(b->out.fd, (off_t)b->target) < 0)
		return pep_errf(e, errno, "%s: cannot extend to %llu bytes: "
		    "%s", b->o->output, (unsigned long long)b->target,
		    strerror(errno));
	r->output_size = b->target;
	if (r->before.kind == LAYOUT_NONE)
		return 0;
	if (!b->grow_part)
		return layout_read(b->out.fd, b->o->output, b->target,
		    &r->after, e);
	return layout_grow(b->out.fd, b->o->output, &r->before, r->root_part,
	    b->target, b->max_part, &r->after, e);
}

uint64_t
disk_room(const struct bake *b, const struct layout *l, uint64_t whole)
{
	const struct part_info *p;

	if (b->r->root_part == 0)
		return whole;
	p = layout_part(l, b->r->root_part);
	return p != NULL ? p->size : 0;
}

/*
 * The root filesystem cannot grow past limit bytes: the disk size that
 * brings it there, as the next step of a refusal ("; use --size ...").
 */
void
disk_size_advice(const struct bake *b, uint64_t limit, char *buf, size_t n)
{
	const struct layout *l = &b->r->before;
	unsigned long ss = l->kind == LAYOUT_NONE ? 512 : l->sector_size;
	uint64_t disk = b->r->root_offset + limit / ss * ss +
	    layout_tail_bytes(l);

	if (disk > b->im->virtual_size)
		snprintf(buf, n, "; use --size of at most %llu, or resize2fs",
		    (unsigned long long)disk);
	else
		snprintf(buf, n, "; the input disk is bigger than that "
		    "already and the root grows to fill it: grow the "
		    "filesystem with resize2fs first");
}
