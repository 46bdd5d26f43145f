/*
 * Partition tables: read, repaired and grown through libfdisk
 * (layout.c), with what the raw GPT headers say (gpt.c).
 */
#ifndef PEP_LAYOUT_H
#define PEP_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

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

#endif
