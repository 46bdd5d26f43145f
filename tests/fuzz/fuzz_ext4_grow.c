/*
 * libFuzzer target for ext4_grow (bake/ext4_grow.c), seeded with small
 * ext2/3/4 images of various feature sets (tests/fuzz/corpus/ext4_grow,
 * 1 KiB blocks and 256..1024-block groups, so a few MiB is many groups).
 * The input is the image. Its first two bytes, which no ext2/3/4 layout
 * uses (the boot block, or the padding before the superblock), pick the
 * target: byte 0 a multiple of the input size (2..9 times, at most
 * FUZZ_MAX_TARGET), byte 1 bit 0 puts the image at a 64 KiB offset. The
 * image goes into a memfd, which ext4_open opens (rw) through pep's own
 * I/O manager (bake/ext4_io.c), then it is grown and closed.
 * Beyond the sanitizers it checks that a failure carries a message, that
 * a success reports a size within the target, and that a grown image
 * that reopens has the size reported.
 *
 * Hostile images that libext2fs 1.47.0 itself overruns on (e.g. in
 * ext2fs_read_bitmaps with s_first_data_block = 10 and 1 KiB blocks) are
 * refused by ext4_open's own checks, as e2fsck's first checks do: this
 * target feeds them unscreened.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>

#include "../../bake/bake.h"

#define FUZZ_MAX_TARGET (6ull << 20)
#define FUZZ_OFFSET 65536
#define FUZZ_NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_memfd(const uint8_t *data, size_t size, uint64_t off)
{
	size_t done = 0;
	ssize_t n;
	int fd;

	fd = memfd_create("fuzz-ext4", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	while (done < size) {
		n = pwrite(fd, data + done, size - done, (off_t)(off + done));
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	return fd;
}

/* The checks e2fsck makes before it trusts the geometry. */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pep_err e = { 0, "" };
	struct ext4_grow_info gi;
	struct ext4 *x = NULL;
	uint64_t off, target;
	int fd, r;

	if (size < 2048)
		return 0;
	off = (data[1] & 1) ? FUZZ_OFFSET : 0;
	target = (uint64_t)size * (2 + data[0] % 8);
	if (target > FUZZ_MAX_TARGET)
		target = FUZZ_MAX_TARGET;
	fd = fuzz_memfd(data, size, off);
	/* As the callers do: the file already holds the target size. */
	if (ftruncate(fd, (off_t)(off + target)) < 0)
		abort();
	if (ext4_open(&x, fd, "fuzz", off, 1, FUZZ_NOW, &e) < 0) {
		if (e.msg[0] == '\0')
			abort();
		close(fd);
		return 0;
	}
	r = ext4_grow(x, fd, off, target, &gi, &e);
	if (r < 0) {
		if (e.msg[0] == '\0')
			abort();
		ext4_abort(x);
		close(fd);
		return 0;
	}
	if (gi.new_blocks < gi.old_blocks || gi.new_groups < gi.old_groups)
		abort();
	if (gi.new_blocks > gi.old_blocks &&
	    gi.new_blocks * gi.blocksize > target)
		abort();
	if (ext4_close(x, &e) < 0) {
		close(fd);
		return 0;
	}
	x = NULL;
	/* Reopen read-only: if it opens, it has the size reported. */
	if (ext4_open(&x, fd, "fuzz", off, 0, FUZZ_NOW, &e) == 0) {
		if (ext4_size_bytes(x) != gi.new_blocks * gi.blocksize)
			abort();
		ext4_close(x, NULL);
	}
	close(fd);
	return 0;
}
