/*
 * The body shared by the container-reader fuzz targets (fuzz_vhd.c,
 * fuzz_qcow2.c): the input goes into a memfd, is opened with img_open_fd
 * (any format may match; a target may force its format's magic with
 * FUZZ_MAGIC), and the whole virtual disk is mapped, checked for
 * verbatim runs, and, when small enough, read; the start of every run the
 * map calls zero must read as zeros.
 */
#ifndef PEP_FUZZ_IMG_H
#define PEP_FUZZ_IMG_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../bake/img.h"

#define FUZZ_MAX_READ (64ull << 20)	/* read disks up to this size */
#define FUZZ_MAX_RUN (1ull << 30)	/* most asked of one img_map */
#define FUZZ_MAX_MAPS 4096
#define FUZZ_CHUNK (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
fuzz_memfd(const uint8_t *data, size_t size)
{
	size_t done = 0;
	ssize_t n;
	int fd;

	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	while (done < size) {
		n = write(fd, data + done, size - done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
#ifdef FUZZ_MAGIC
	/* Keep mutations inside one reader: force its magic at byte 0. */
	if (size >= sizeof(FUZZ_MAGIC) - 1 &&
	    pwrite(fd, FUZZ_MAGIC, sizeof(FUZZ_MAGIC) - 1, 0) !=
	    (ssize_t)(sizeof(FUZZ_MAGIC) - 1))
		abort();
#endif
	return fd;
}

static void
fuzz_read(struct img *im, uint8_t *buf, uint64_t off, uint64_t len)
{
	struct pep_err e;
	size_t n;

	while (len > 0) {
		n = len < FUZZ_CHUNK ? (size_t)len : FUZZ_CHUNK;
		if (img_pread(im, buf, n, off, &e) < 0)
			return;
		off += n;
		len -= n;
	}
}

/* A run img_map calls zero must read as zeros (its first chunk, here). */
static void
fuzz_zero(struct img *im, uint8_t *buf, uint64_t off, uint64_t len)
{
	struct pep_err e;
	size_t n = len < FUZZ_CHUNK ? (size_t)len : FUZZ_CHUNK;
	size_t i;

	if (img_pread(im, buf, n, off, &e) < 0)
		return;
	for (i = 0; i < n; i++)
		if (buf[i] != 0)
			abort();
}

/* A verbatim run must lie inside the container file (convert mmaps it). */
static void
fuzz_direct(struct img *im, uint64_t off, uint64_t len)
{
	uint64_t foff;

	if (img_direct(im, off, &len, &foff) &&
	    (foff > im->file_size || len > im->file_size - foff))
		abort();
}

static void
fuzz_walk(struct img *im)
{
	static uint8_t buf[FUZZ_CHUNK];
	struct pep_err e;
	uint64_t off = 0, len;
	int i, kind;

	for (i = 0; i < FUZZ_MAX_MAPS && off < im->virtual_size; i++) {
		len = im->virtual_size - off;
		if (len > FUZZ_MAX_RUN)
			len = FUZZ_MAX_RUN;
		kind = img_map(im, off, &len, &e);
		if (kind < 0)
			return;
		fuzz_direct(im, off, len);
		if (kind == IMG_DATA && im->virtual_size <= FUZZ_MAX_READ)
			fuzz_read(im, buf, off, len);
		else if (kind == IMG_ZERO)
			fuzz_zero(im, buf, off, len);
		off += len;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pep_err e;
	struct img *im = NULL;
	int fd;

	fd = fuzz_memfd(data, size);
	if (img_open_fd(&im, fd, "fuzz", &e) == 0) {
		fuzz_walk(im);
		img_close(im);
	}
	close(fd);
	return 0;
}

#endif
