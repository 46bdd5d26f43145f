/*
 * Partition tables, through libfdisk: read GPT and MBR tables, repair a
 * GPT whose primary copy is damaged, and grow the root partition into a
 * disk that has just been extended. For GPT, libfdisk relocates the backup
 * header and entries to the new end while probing a read-write device; we
 * then zero the stale old backup so no "EFI PART" is left inside the grown
 * partition. gpt.c tells what libfdisk does not: the sector size an image
 * file's table was written for, and the state of each copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfdisk/libfdisk.h>

#include "layout.h"

/* MBR entries hold 32-bit sector numbers; libfdisk (and fdisk) let no
 * partition end past sector 2^32 - 1. */
#define MBR_END_SECTORS (1ull << 32)

struct layout_ask {
	char last[256];		/* the last warning libfdisk gave */
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

/* A context on fd; ss is the sector size the table was written for. */
static struct fdisk_context *
layout_context(int fd, const char *name, int rw, unsigned long ss,
    struct layout_ask *la, struct pep_err *e)
{
	struct fdisk_context *cxt = fdisk_new_context();
	int rc;

	if (cxt == NULL) {
		pep_errf(e, ENOMEM, "out of memory");
		return NULL;
	}
	fdisk_set_ask(cxt, layout_ask_cb, la);
	rc = fdisk_save_user_sector_size(cxt, (unsigned int)ss,
	    (unsigned int)ss);
	if (rc == 0)
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
	pi->nested = fdisk_partition_is_nested(pa);
	pi->container = fdisk_partition_is_container(pa);
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

/* What the raw GPT headers say that makes the table unusable. */
static int
layout_check_gpt(const struct layout *l, const char *name,
    struct pep_err *e)
{
	const struct gpt_info *g = &l->gpt;

	if (!g->found)
		return 0;
	if (!g->primary_ok && !g->backup_ok)
		return pep_errf(e, PEP_ECORRUPT, "%s: both GPT headers (or "
		    "their partition entries) are damaged; recover the table "
		    "with gdisk or testdisk first", name);
	if (g->primary_ok && g->described_bytes > l->disk_bytes)
		return pep_errf(e, PEP_ECORRUPT, "%s: truncated: its GPT "
		    "describes a disk of %llu bytes but the image holds only "
		    "%llu (an incomplete download or copy?)", name,
		    (unsigned long long)g->described_bytes,
		    (unsigned long long)l->disk_bytes);
	return 0;
}

/* A partition that ends past the disk's end: the image was cut short. */
static int
layout_check_ends(const struct layout *l, const char *name,
    struct pep_err *e)
{
	const struct part_info *p;
	size_t i;

	for (i = 0; i < l->nparts; i++) {
		p = &l->parts[i];
		if (p->start <= l->disk_bytes &&
		    p->size <= l->disk_bytes - p->start)
			continue;
		return pep_errf(e, PEP_ECORRUPT, "%s: truncated: partition "
		    "%d ends at byte %llu but the image holds only %llu (an "
		    "incomplete download or copy?)", name, p->partno,
		    (unsigned long long)(p->start + p->size),
		    (unsigned long long)l->disk_bytes);
	}
	return 0;
}

static int
layout_kind(struct fdisk_context *cxt, const char *name, struct layout *l,
    struct pep_err *e)
{
	if (!fdisk_has_label(cxt))
		l->kind = LAYOUT_NONE;
	else if (fdisk_is_label(cxt, GPT))
		l->kind = LAYOUT_GPT;
	else if (fdisk_is_label(cxt, DOS))
		l->kind = LAYOUT_MBR;
	else
		return pep_errf(e, PEP_EUNSUPPORTED,
		    "%s: unsupported partition table type '%s'", name,
		    fdisk_label_get_name(fdisk_get_label(cxt, NULL)));
	if (l->gpt.found && l->kind != LAYOUT_GPT)
		return pep_errf(e, PEP_ECORRUPT, "%s: the disk has a GPT "
		    "that libfdisk cannot read (check it with sgdisk -v)",
		    name);
	return 0;
}

int
layout_read(int fd, const char *name, uint64_t disk_bytes, struct layout *l,
    struct pep_err *e)
{
	struct layout_ask la = { "" };
	struct fdisk_context *cxt;
	int rc;

	memset(l, 0, sizeof(*l));
	l->disk_bytes = disk_bytes;
	gpt_inspect(fd, disk_bytes, &l->gpt);
	l->sector_size = l->gpt.found ? l->gpt.sector_size : 512;
	rc = layout_check_gpt(l, name, e);
	if (rc < 0)
		return rc;
	cxt = layout_context(fd, name, 0, l->sector_size, &la, e);
	if (cxt == NULL)
		return e != NULL && e->code ? e->code : -EIO;
	rc = layout_kind(cxt, name, l, e);
	if (rc == 0 && l->kind != LAYOUT_NONE)
		rc = layout_collect(cxt, name, l, e);
	if (rc == 0)
		rc = layout_check_ends(l, name, e);
	fdisk_deassign_device(cxt, 1);
	fdisk_unref_context(cxt);
	return rc;
}

/* Write the table libfdisk holds; its last warning explains a failure. */
static int
layout_write(struct fdisk_context *cxt, const char *name,
    const struct layout_ask *la, struct pep_err *e)
{
	int rc = fdisk_write_disklabel(cxt);

	if (rc < 0)
		return pep_errf(e, PEP_ELIB, "%s: cannot write the partition "
		    "table: %s%s%s", name, strerror(-rc),
		    la->last[0] ? ": " : "", la->last);
	return 0;
}

int
layout_repair(int fd, const char *name, const struct layout *l,
    struct pep_err *e)
{
	struct layout_ask la = { "" };
	struct fdisk_context *cxt;
	int rc;

	if (l->kind != LAYOUT_GPT || l->gpt.primary_ok || !l->gpt.backup_ok)
		return 0;
	/* Probing read-write, libfdisk rebuilds the primary from the backup
	 * (and says so through ask); writing puts both on disk. */
	cxt = layout_context(fd, name, 1, l->sector_size, &la, e);
	if (cxt == NULL)
		return e != NULL && e->code ? e->code : -EIO;
	rc = layout_write(cxt, name, &la, e);
	fdisk_deassign_device(cxt, 1);
	fdisk_unref_context(cxt);
	return rc < 0 ? rc : 1;
}

uint64_t
layout_max_part_bytes(const struct layout *l, const struct part_info *p)
{
	uint64_t start = p->start / l->sector_size;

	if (l->kind != LAYOUT_MBR)
		return UINT64_MAX;
	return start < MBR_END_SECTORS ?
	    (MBR_END_SECTORS - start) * l->sector_size : 0;
}

uint64_t
layout_tail_bytes(const struct layout *l)
{
	if (l->kind == LAYOUT_GPT)
		return (l->gpt.entries_sectors + 1) * l->sector_size;
	return 0;
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

/*
 * Zero the old backup header and its whole entry array (both would lie
 * inside the grown partition), below the new backup area at the end.
 */
static int
gpt_wipe_stale(int fd, const char *name, const struct layout *before,
    uint64_t new_sectors, struct pep_err *e)
{
	const struct gpt_info *g = &before->gpt;
	unsigned long ss = before->sector_size;
	uint64_t limit = new_sectors - 1 - g->entries_sectors;
	uint64_t lo = g->backup_entries_lba;
	uint64_t hi = lo + g->backup_entries_sectors;
	int rc;

	if (!g->backup_ok || g->backup_lba >= new_sectors - 1)
		return 0;
	if (g->backup_lba < limit) {
		rc = layout_zero(fd, g->backup_lba * ss, ss, name, e);
		if (rc < 0)
			return rc;
	}
	if (hi > limit)
		hi = limit;
	if (lo < 2 + g->entries_sectors || lo >= hi)
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

/* The first partition starting after root's start, or NULL. */
const struct part_info *
layout_after(const struct layout *l, int partno)
{
	const struct part_info *root = layout_find(l, partno);
	size_t i;

	if (root == NULL)
		return NULL;
	for (i = 0; i < l->nparts; i++)
		if (l->parts[i].start > root->start)
			return &l->parts[i];
	return NULL;
}

const struct part_info *
layout_part(const struct layout *l, int partno)
{
	return layout_find(l, partno);
}

/* What has to survive the re-creation of a partition. */
struct layout_keep {
	struct fdisk_partition *pa;	/* start, size, type, uuid, name */
	uint64_t attrs;			/* GPT attribute bits */
	int bootable;			/* MBR active flag */
};

static int
layout_keep_init(struct fdisk_context *cxt, size_t n, fdisk_sector_t size,
    struct layout_keep *k)
{
	struct fdisk_partition *cur = NULL;
	int rc;

	memset(k, 0, sizeof(*k));
	rc = fdisk_get_partition(cxt, n, &cur);
	if (rc < 0)
		return rc;
	k->pa = fdisk_new_partition();
	if (k->pa == NULL) {
		fdisk_unref_partition(cur);
		return -ENOMEM;
	}
	fdisk_partition_set_partno(k->pa, n);
	fdisk_partition_set_start(k->pa, fdisk_partition_get_start(cur));
	fdisk_partition_set_size(k->pa, size);
	fdisk_partition_size_explicit(k->pa, 1);
	rc = fdisk_partition_set_type(k->pa, fdisk_partition_get_type(cur));
	if (rc == 0 && fdisk_partition_get_uuid(cur) != NULL)
		rc = fdisk_partition_set_uuid(k->pa,
		    fdisk_partition_get_uuid(cur));
	if (rc == 0 && fdisk_partition_get_name(cur) != NULL)
		rc = fdisk_partition_set_name(k->pa,
		    fdisk_partition_get_name(cur));
	k->bootable = fdisk_partition_is_bootable(cur);
	if (fdisk_is_label(cxt, GPT))
		fdisk_gpt_get_partition_attrs(cxt, n, &k->attrs);
	fdisk_unref_partition(cur);
	return rc;
}

/*
 * Give partition n (a primary) the new size, keeping everything else.
 * libfdisk's resize (fdisk_set_partition with a size) takes only free
 * space it would offer for a new partition, at least one alignment grain
 * (1 MiB): a disk grown by less fails with ERANGE. So the entry is deleted
 * and made again in place, with an explicit start and size, as sgdisk
 * users do (-d N -n N:START:END) and the reference pipeline does.
 */
static int
layout_recreate(struct fdisk_context *cxt, size_t n, fdisk_sector_t size)
{
	struct layout_keep k;
	int rc;

	rc = layout_keep_init(cxt, n, size, &k);
	if (rc == 0)
		rc = fdisk_delete_partition(cxt, n);
	if (rc == 0)
		rc = fdisk_add_partition(cxt, k.pa, NULL);
	if (rc == 0 && fdisk_is_label(cxt, GPT))
		rc = fdisk_gpt_set_partition_attrs(cxt, n, k.attrs);
	if (rc == 0 && k.bootable)
		rc = fdisk_toggle_partition_flag(cxt, n, DOS_FLAG_ACTIVE);
	fdisk_unref_partition(k.pa);
	return rc;
}

static int
layout_set_size(struct fdisk_context *cxt, const char *name,
    const struct part_info *root, uint64_t max_part_bytes,
    struct pep_err *e)
{
	unsigned long ss = fdisk_get_sector_size(cxt);
	fdisk_sector_t start = root->start / ss;
	fdisk_sector_t last = fdisk_get_last_lba(cxt);
	uint64_t size;
	int rc;

	if (last < start)
		return 0;
	size = last - start + 1;
	if (size > max_part_bytes / ss)
		size = max_part_bytes / ss;
	if (size <= root->size / ss)
		return 0;	/* nothing to take: never shrink */
	rc = layout_recreate(cxt, (size_t)root->partno - 1, size);
	if (rc < 0)
		return pep_errf(e, PEP_ELIB, "%s: cannot grow partition %d "
		    "to %llu sectors: libfdisk: %s", name, root->partno,
		    (unsigned long long)size, strerror(-rc));
	return 0;
}

/* libfdisk writes each copy's own disk GUID: make the backup's the
 * primary's. */
static int
layout_same_guid(struct fdisk_context *cxt, const char *name,
    const struct gpt_info *g, struct pep_err *e)
{
	char guid[37];
	int rc;

	gpt_guid_str(g->guid_primary, guid);
	rc = fdisk_set_disklabel_id_from_string(cxt, guid);
	if (rc < 0)
		return pep_errf(e, PEP_ELIB, "%s: cannot set the disk GUID: "
		    "%s", name, strerror(-rc));
	return 0;
}

int
layout_grow(int fd, const char *name, const struct layout *before,
    int partno, uint64_t disk_bytes, uint64_t max_part_bytes,
    struct layout *after, struct pep_err *e)
{
	struct layout_ask la = { "" };
	struct fdisk_context *cxt = NULL;
	const struct part_info *root = layout_find(before, partno);
	uint64_t new_sectors;
	int rc;

	if (root == NULL)
		return pep_errf(e, PEP_ENOTFOUND, "%s: no partition %d",
		    name, partno);
	if (root->nested)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: partition %d is a "
		    "logical partition; only primary partitions are grown",
		    name, partno);
	cxt = layout_context(fd, name, 1, before->sector_size, &la, e);
	if (cxt == NULL)
		return e != NULL && e->code ? e->code : -EIO;
	new_sectors = fdisk_get_nsectors(cxt);
	rc = layout_set_size(cxt, name, root, max_part_bytes, e);
	if (rc == 0 && gpt_guids_differ(&before->gpt))
		rc = layout_same_guid(cxt, name, &before->gpt, e);
	if (rc == 0)
		rc = layout_write(cxt, name, &la, e);
	if (rc == 0 && before->kind == LAYOUT_GPT)
		rc = gpt_wipe_stale(fd, name, before, new_sectors, e);
	fdisk_deassign_device(cxt, 1);
	fdisk_unref_context(cxt);
	if (rc == 0)
		rc = layout_read(fd, name, disk_bytes, after, e);
	return rc;
}
