/*
 * libFuzzer target for gpt_inspect (bake/gpt.c): the input is a disk
 * image (in a memfd). Beyond the sanitizers: what it reports is
 * consistent: a sector size of 512 or 4096 when a table is found, nothing
 * when not, and an intact copy's entry array inside the disk.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../bake/layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct gpt_info none;
	struct gpt_info gi;
	uint64_t sectors;
	int fd = memfd_create("fuzz-gpt", 0);

	if (fd < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	gpt_inspect(fd, size, &gi);
	close(fd);
	if (!gi.found) {
		if (memcmp(&gi, &none, sizeof(gi)) != 0)
			abort();
		return 0;
	}
	if (gi.sector_size != 512 && gi.sector_size != 4096)
		abort();
	sectors = size / gi.sector_size;
	if (gi.backup_ok && (gi.backup_lba >= sectors ||
	    gi.backup_entries_lba >= sectors ||
	    gi.backup_entries_sectors > sectors - gi.backup_entries_lba))
		abort();
	if (gi.primary_ok && gi.entries_sectors > sectors)
		abort();
	return 0;
}
