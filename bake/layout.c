/*
 * Partition tables, through libfdisk: read GPT and MBR tables, and grow
 * the root partition into a disk that has just been extended. For GPT,
 * libfdisk relocates the backup header and entries to the new end while
 * probing a read-write device; we then zero the stale old backup so no
 * "EFI PART" is left inside the grown partition.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfdisk/libfdisk.h>

#include "bake.h"

struct layout_ask {
	char last[256];		/* the last warning libfdisk gave */
};

/* A stale GPT backup: header LBA and its entry array, in sectors. */
struct gpt_stale {
	int valid;
	uint64_t hdr_lba;
	uint64_t ent_lba;
	uint64_t ent_sectors;
};

const char *
layout_kind_name(enum layout_kind k)
{
	switch (k) {
	case LAYOUT_GPT:
		return "gpt";
	case LAYOUT_MBR:
		return "mbr";
	case LAYOUT_NONE:
		break;
	}
	return "none";
}

/* libfdisk talks through "ask"; keep its last warning for our message. */
static int
layout_ask_cb(struct fdisk_context *cxt, struct fdisk_ask *ask, void *data)
{
	struct layout_ask *la = data;
	const char *m;

	(void)cxt;
	switch (fdisk_ask_get_type(ask)) {
	case FDISK_ASKTYPE_WARN:
	case FDISK_ASKTYPE_WARNX:
		m = fdisk_ask_print_get_mesg(ask);
		if (m != NULL && la != NULL)
			snprintf(la->last, sizeof(la->last), "%s", m);
		break;
	default:
		break;
	}
	return 0;
}

static struct fdisk_context *
layout_context(int fd, const char *name, int rw, struct layout_ask *la,
    struct pep_err *e)
{
	struct fdisk_context *cxt = fdisk_new_context();
	int rc;

	if (cxt == NULL) {
		pep_errf(e, ENOMEM, "out of memory");
		return NULL;
	}
	fdisk_set_ask(cxt, layout_ask_cb, la);
	rc = fdisk_assign_device_by_fd(cxt, fd, name, !rw);
	if (rc < 0) {
		pep_errf(e, PEP_ELIB, "%s: cannot read partition table: %s",
		    name, strerror(-rc));
		fdisk_unref_context(cxt);
		return NULL;
	}
	return cxt;
}

static void
layout_copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src != NULL ? src : "");
}

static void
layout_fill_part(struct fdisk_context *cxt, struct fdisk_partition *pa,
    unsigned long ss, struct part_info *pi)
{
	struct fdisk_parttype *t = fdisk_partition_get_type(pa);
	size_t n = fdisk_partition_get_partno(pa);
	uint64_t attrs = 0;

	memset(pi, 0, sizeof(*pi));
	pi->partno = (int)n + 1;
	pi->start = (uint64_t)fdisk_partition_get_start(pa) * ss;
	pi->size = (uint64_t)fdisk_partition_get_size(pa) * ss;
	layout_copy_str(pi->type, sizeof(pi->type),
	    t != NULL ? fdisk_parttype_get_string(t) : NULL);
	if (t != NULL && pi->type[0] == '\0')
		snprintf(pi->type, sizeof(pi->type), "%02x",
		    fdisk_parttype_get_code(t));
	layout_copy_str(pi->uuid, sizeof(pi->uuid),
	    fdisk_partition_get_uuid(pa));
	layout_copy_str(pi->name, sizeof(pi->name),
	    fdisk_partition_get_name(pa));
	if (fdisk_is_label(cxt, GPT) &&
	    fdisk_gpt_get_partition_attrs(cxt, n, &attrs) == 0)
		pi->attrs = attrs;
}

static int
layout_collect(struct fdisk_context *cxt, const char *name,
    struct layout *l, struct pep_err *e)
{
	struct fdisk_table *tb = NULL;
	struct fdisk_iter *itr = NULL;
	struct fdisk_partition *pa = NULL;
	int rc;

	rc = fdisk_get_partitions(cxt, &tb);
	if (rc < 0) {
		rc = pep_errf(e, PEP_ELIB, "%s: cannot list partitions: %s",
		    name, strerror(-rc));
		goto out;
	}
	itr = fdisk_new_iter(FDISK_ITER_FORWARD);
	if (itr == NULL) {
		rc = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	while (fdisk_table_next_partition(tb, itr, &pa) == 0) {
		if (!fdisk_partition_is_used(pa))
			continue;
		if (l->nparts == LAYOUT_MAXPARTS)
			break;
		layout_fill_part(cxt, pa, l->sector_size,
		    &l->parts[l->nparts++]);
	}
	rc = 0;
out:
	fdisk_free_iter(itr);
	fdisk_unref_table(tb);
	return rc;
}

int
layout_read(int fd, const char *name, struct layout *l, struct pep_err *e)
{
	struct layout_ask la = { "" };
	struct fdisk_context *cxt;
	int rc = 0;

	memset(l, 0, sizeof(*l));
	cxt = layout_context(fd, name, 0, &la, e);
	if (cxt == NULL)
		return e != NULL && e->code ? e->code : -EIO;
	l->sector_size = fdisk_get_sector_size(cxt);
	if (!fdisk_has_label(cxt))
		l->kind = LAYOUT_NONE;
	else if (fdisk_is_label(cxt, GPT))
		l->kind = LAYOUT_GPT;
	else if (fdisk_is_label(cxt, DOS))
		l->kind = LAYOUT_MBR;
	else {
		rc = pep_errf(e, PEP_EUNSUPPORTED,
		    "%s: unsupported partition table type '%s'", name,
		    fdisk_label_get_name(fdisk_get_label(cxt, NULL)));
		goto out;
	}
	if (l->kind != LAYOUT_NONE)
		rc = layout_collect(cxt, name, l, e);
out:
	fdisk_deassign_device(cxt, 1);
	fdisk_unref_context(cxt);
	return rc;
}

static uint64_t
le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Where the backup GPT is now, so it can be wiped once it has moved. */
static void
gpt_find_stale(int fd, unsigned long ss, uint64_t disk_sectors,
    struct gpt_stale *st)
{
	uint8_t h[512];
	uint64_t alt, ent_bytes;

	memset(st, 0, sizeof(*st));
	if (pread(fd, h, sizeof(h), (off_t)ss) != (ssize_t)sizeof(h) ||
	    memcmp(h, "EFI PART", 8) != 0)
		return;
	alt = le64(h + 32);
	if (alt < 2 || alt >= disk_sectors)
		return;
	if (pread(fd, h, sizeof(h), (off_t)(alt * ss)) != (ssize_t)sizeof(h) ||
	    memcmp(h, "EFI PART", 8) != 0)
		return;
	ent_bytes = (uint64_t)(h[80] | h[81] << 8 | h[82] << 16 |
	    (uint32_t)h[83] << 24) * (h[84] | h[85] << 8 | h[86] << 16 |
	    (uint32_t)h[87] << 24);
	st->hdr_lba = alt;
	st->ent_lba = le64(h + 72);
	st->ent_sectors = (ent_bytes + ss - 1) / ss;
	if (st->ent_lba < 2 || st->ent_lba >= disk_sectors ||
	    st->ent_sectors > disk_sectors - st->ent_lba)
		return;
	st->valid = 1;
}

/* Make a range read as zeros: a hole where the filesystem can punch one. */
static int
layout_zero(int fd, uint64_t off, uint64_t len, const char *name,
    struct pep_err *e)
{
	static const uint8_t zero[4096];

	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	    (off_t)off, (off_t)len) == 0)
		return 0;

	while (len > 0) {
		size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);
		ssize_t w = pwrite(fd, zero, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return pep_errf(e, errno, "%s: write failed: %s",
			    name, strerror(errno));
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* Zero the old backup header and entries, below the new backup area. */
static int
gpt_wipe_stale(int fd, const char *name, unsigned long ss,
    uint64_t new_sectors, const struct gpt_stale *st, struct pep_err *e)
{
	uint64_t limit = new_sectors - 33;	/* new backup entries start */
	uint64_t lo = st->ent_lba, hi = st->ent_lba + st->ent_sectors;
	int rc;

	if (!st->valid || st->hdr_lba >= new_sectors - 1)
		return 0;
	if (st->hdr_lba < limit) {
		rc = layout_zero(fd, st->hdr_lba * ss, ss, name, e);
		if (rc < 0)
			return rc;
	}
	if (hi > limit)
		hi = limit;
	if (lo < 34 || lo >= hi)
		return 0;
	return layout_zero(fd, lo * ss, (hi - lo) * ss, name, e);
}

static const struct part_info *
layout_find(const struct layout *l, int partno)
{
	size_t i;

	for (i = 0; i < l->nparts; i++)
		if (l->parts[i].partno == partno)
			return &l->parts[i];
	return NULL;
}

/* The first partition starting after partno's start, or NULL. */
static const struct part_info *
layout_after(const struct layout *l, const struct part_info *root)
{
	size_t i;

	for (i = 0; i < l->nparts; i++)
		if (l->parts[i].start > root->start)
			return &l->parts[i];
	return NULL;
}

int
layout_is_last(const struct layout *l, int partno)
{
	const struct part_info *root = layout_find(l, partno);

	return root != NULL && layout_after(l, root) == NULL;
}

static int
layout_check_last(const struct layout *l, int partno, const char *name,
    struct pep_err *e)
{
	const struct part_info *root = layout_find(l, partno), *next;

	if (root == NULL)
		return pep_errf(e, PEP_ENOTFOUND, "%s: no partition %d",
		    name, partno);
	next = layout_after(l, root);
	if (next != NULL)
		return pep_errf(e, PEP_EUNSUPPORTED,
		    "%s: partition %d is followed by partition %d; growing "
		    "it would need partition %d moved", name, partno,
		    next->partno, next->partno);
	return 0;
}

static int
layout_set_size(struct fdisk_context *cxt, const char *name, int partno,
    struct pep_err *e)
{
	struct fdisk_partition *cur = NULL, *pa = NULL;
	fdisk_sector_t start, last = fdisk_get_last_lba(cxt);
	int rc;

	rc = fdisk_get_partition(cxt, (size_t)partno - 1, &cur);
	if (rc < 0)
		return pep_errf(e, PEP_ENOTFOUND, "%s: no partition %d",
		    name, partno);
	start = fdisk_partition_get_start(cur);
	fdisk_unref_partition(cur);
	pa = fdisk_new_partition();
	if (pa == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	rc = fdisk_partition_set_size(pa, last - start + 1);
	if (rc == 0)
		rc = fdisk_set_partition(cxt, (size_t)partno - 1, pa);
	fdisk_unref_partition(pa);
	if (rc < 0)
		return pep_errf(e, PEP_ELIB,
		    "%s: cannot grow partition %d: %s", name, partno,
		    strerror(-rc));
	return 0;
}

int
layout_grow(int fd, const char *name, uint64_t old_size, int partno,
    struct layout *after, struct pep_err *e)
{
	struct layout_ask la = { "" };
	struct fdisk_context *cxt = NULL;
	struct gpt_stale st;
	struct layout before;
	unsigned long ss;
	uint64_t new_sectors;
	int rc;

	rc = layout_read(fd, name, &before, e);
	if (rc < 0)
		return rc;
	rc = layout_check_last(&before, partno, name, e);
	if (rc < 0)
		return rc;
	ss = before.sector_size;
	gpt_find_stale(fd, ss, old_size / ss, &st);
	cxt = layout_context(fd, name, 1, &la, e);
	if (cxt == NULL)
		return e != NULL && e->code ? e->code : -EIO;
	new_sectors = fdisk_get_nsectors(cxt);
	rc = layout_set_size(cxt, name, partno, e);
	if (rc < 0)
		goto out;
	rc = fdisk_write_disklabel(cxt);
	if (rc < 0) {
		rc = pep_errf(e, PEP_ELIB, "%s: cannot write partition "
		    "table: %s%s%s", name, strerror(-rc),
		    la.last[0] ? ": " : "", la.last);
		goto out;
	}
	if (before.kind == LAYOUT_GPT)
		rc = gpt_wipe_stale(fd, name, ss, new_sectors, &st, e);
out:
	fdisk_deassign_device(cxt, 1);
	fdisk_unref_context(cxt);
	if (rc == 0)
		rc = layout_read(fd, name, after, e);
	return rc;
}
