/*
 * The GPT headers, read directly: what libfdisk does not tell its caller.
 * Which sector size the table was written for (512 or 4096: an image file
 * has no device to ask), whether each copy is intact (signature, header
 * and entry-array CRC32s, where it says it is), the disk size the table
 * describes (a truncated image is shorter), whether both copies name the
 * same disk GUID, and where the backup lies, so that once libfdisk has
 * written a new one at the grown disk's end the old one can be wiped.
 *
 * Everything here is read-only and bounded by the file: a header's fields
 * are trusted only after its CRC matched, and then only within the disk.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "layout.h"

#define GPT_SIG "EFI PART"
#define GPT_HDR_MIN 92		/* UEFI 2.10 table 5-5: the defined fields */
#define GPT_ENTRY_MIN 128
#define GPT_ENTRIES_MAX (4u << 20)	/* more than any real table */

/* UEFI 2.10 section 5.3.2, table 5-5; all fields little-endian. */
struct gpt_header_disk {
	char signature[8];
	uint32_t revision;
	uint32_t header_size;
	uint32_t header_crc32;
	uint32_t reserved;
	uint64_t my_lba;
	uint64_t alternate_lba;
	uint64_t first_usable_lba;
	uint64_t last_usable_lba;
	uint8_t disk_guid[16];
	uint64_t entries_lba;
	uint32_t nentries;
	uint32_t entry_size;
	uint32_t entries_crc32;
} __attribute__((packed));

_Static_assert(sizeof(struct gpt_header_disk) == GPT_HDR_MIN,
    "GPT header layout");

static int
gpt_read(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(fd, buf, len, (off_t)off);

	return n == (ssize_t)len ? 0 : -EIO;
}

/* The entry array's CRC32 matches the header's (h already checked). */
static int
gpt_entries_ok(int fd, const struct gpt_header_disk *h, unsigned long ss,
    uint64_t disk_sectors)
{
	uint64_t lba = le64toh(h->entries_lba);
	uint64_t bytes = (uint64_t)le32toh(h->nentries) *
	    le32toh(h->entry_size);
	uint8_t *buf;
	int ok;

	if (bytes == 0 || bytes > GPT_ENTRIES_MAX || lba < 2 ||
	    lba >= disk_sectors || (bytes + ss - 1) / ss > disk_sectors - lba)
		return 0;
	buf = malloc((size_t)bytes);
	if (buf == NULL)
		return 0;
	ok = gpt_read(fd, buf, (size_t)bytes, lba * ss) == 0 &&
	    (uint32_t)crc32(0, buf, (uInt)bytes) == le32toh(h->entries_crc32);
	free(buf);
	return ok;
}

/*
 * Read the header at lba into *h. 1 if it is an intact GPT header that
 * says it lives there, 0 if not (or absent); *sig tells whether at least
 * the signature is there.
 */
static int
gpt_header_at(int fd, uint64_t lba, unsigned long ss, uint64_t disk_sectors,
    struct gpt_header_disk *h, int *sig)
{
	uint8_t sector[4096];
	uint32_t hsize, crc;

	*sig = 0;
	if (lba >= disk_sectors || gpt_read(fd, sector, ss, lba * ss) < 0)
		return 0;
	memcpy(h, sector, sizeof(*h));
	if (memcmp(h->signature, GPT_SIG, 8) != 0)
		return 0;
	*sig = 1;
	hsize = le32toh(h->header_size);
	if (hsize < GPT_HDR_MIN || hsize > ss)
		return 0;
	crc = le32toh(h->header_crc32);
	memset(sector + offsetof(struct gpt_header_disk, header_crc32), 0, 4);
	if ((uint32_t)crc32(0, sector, hsize) != crc ||
	    le64toh(h->my_lba) != lba ||
	    le32toh(h->entry_size) < GPT_ENTRY_MIN)
		return 0;
	return gpt_entries_ok(fd, h, ss, disk_sectors);
}

static void
gpt_fill_backup(struct gpt_info *gi, const struct gpt_header_disk *b,
    unsigned long ss)
{
	uint64_t bytes = (uint64_t)le32toh(b->nentries) *
	    le32toh(b->entry_size);

	gi->backup_ok = 1;
	gi->backup_lba = le64toh(b->my_lba);
	gi->backup_entries_lba = le64toh(b->entries_lba);
	gi->backup_entries_sectors = (bytes + ss - 1) / ss;
	memcpy(gi->guid_backup, b->disk_guid, 16);
}

/* Look for a table written for sector size ss. 1 if one was found. */
static int
gpt_probe_ss(int fd, uint64_t disk_bytes, unsigned long ss,
    struct gpt_info *gi)
{
	struct gpt_header_disk p, b;
	uint64_t sectors = disk_bytes / ss, alt;
	int psig, bsig;

	memset(gi, 0, sizeof(*gi));
	if (sectors < 3)
		return 0;
	gi->primary_ok = gpt_header_at(fd, 1, ss, sectors, &p, &psig);
	alt = sectors - 1;
	if (gi->primary_ok) {
		alt = le64toh(p.alternate_lba);
		gi->described_bytes = alt < UINT64_MAX / ss - 1 ?
		    (alt + 1) * ss : UINT64_MAX;
		memcpy(gi->guid_primary, p.disk_guid, 16);
		gi->entries_sectors = ((uint64_t)le32toh(p.nentries) *
		    le32toh(p.entry_size) + ss - 1) / ss;
	}
	if (gpt_header_at(fd, alt, ss, sectors, &b, &bsig))
		gpt_fill_backup(gi, &b, ss);
	if (!psig && !gi->backup_ok)
		return 0;
	gi->found = 1;
	gi->sector_size = ss;
	return 1;
}

void
gpt_inspect(int fd, uint64_t disk_bytes, struct gpt_info *gi)
{
	/*
	 * 512 first: a 4096-byte-sector table has its header at 4096, where
	 * a 512-byte one has partition entries; a 512 one has nothing at 512
	 * that says "EFI PART" unless it is one.
	 */
	if (gpt_probe_ss(fd, disk_bytes, 512, gi))
		return;
	if (gpt_probe_ss(fd, disk_bytes, 4096, gi))
		return;
	memset(gi, 0, sizeof(*gi));
}

int
gpt_guids_differ(const struct gpt_info *gi)
{
	return gi->primary_ok && gi->backup_ok &&
	    memcmp(gi->guid_primary, gi->guid_backup, 16) != 0;
}

void
gpt_guid_str(const uint8_t g[16], char out[37])
{
	static const char hex[] = "0123456789ABCDEF";
	/* Mixed-endian: the first three fields are little-endian. */
	static const int order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11,
	    12, 13, 14, 15 };
	int i, o = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[g[order[i]] >> 4];
		out[o++] = hex[g[order[i]] & 15];
	}
	out[o] = '\0';
}
