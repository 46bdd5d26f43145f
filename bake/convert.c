/*
 * Container to sparse raw: walk the virtual disk with img_map, read only
 * what may hold data, and write only non-zero 4 KiB blocks. The output is
 * a fresh file, so everything not written stays a hole and reads as zero.
 * Memory use is one fixed buffer whatever the image size.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bake.h"

#define CONVERT_CHUNK	(1u << 20)
#define CONVERT_BLOCK	4096u
#define CONVERT_MAP	(8u << 20)

static int
convert_is_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zero[64];

	if (len <= sizeof(zero))
		return memcmp(p, zero, len) == 0;
	return memcmp(p, zero, sizeof(zero)) == 0 &&
	    memcmp(p, p + sizeof(zero), len - sizeof(zero)) == 0;
}

static int
convert_pwrite(int fd, const uint8_t *buf, size_t len, uint64_t off,
    const char *name, struct pep_err *e)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pep_errf(e, errno, "%s: write failed: %s",
			    name, strerror(errno));
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Write the non-zero blocks of buf (virtual offset off), coalesced. */
static int
convert_write_sparse(int fd, const uint8_t *buf, size_t len, uint64_t off,
    const char *name, uint64_t *written, struct pep_err *e)
{
	size_t i = 0, run = 0, bl;
	int rc;

	while (i < len) {
		bl = len - i < CONVERT_BLOCK ? len - i : CONVERT_BLOCK;
		if (!convert_is_zero(buf + i, bl)) {
			i += bl;
			continue;
		}
		if (i > run) {
			rc = convert_pwrite(fd, buf + run, i - run, off + run,
			    name, e);
			if (rc < 0)
				return rc;
			*written += i - run;
		}
		i += bl;
		run = i;
	}
	if (len > run) {
		rc = convert_pwrite(fd, buf + run, len - run, off + run, name,
		    e);
		if (rc < 0)
			return rc;
		*written += len - run;
	}
	return 0;
}

/*
 * A run stored verbatim in the container: map it and write its non-zero
 * blocks straight from the page cache (one copy instead of two).
 */
static int
convert_direct(struct img *im, int outfd, const char *outname,
    uint64_t off, uint64_t len, uint64_t foff, struct convert_stats *st,
    struct pep_err *e)
{
	static long pagesz;
	uint64_t base, skew;
	uint8_t *map;
	int rc;

	if (pagesz == 0)
		pagesz = sysconf(_SC_PAGESIZE);
	skew = foff % (uint64_t)pagesz;
	base = foff - skew;
	map = mmap(NULL, len + skew, PROT_READ, MAP_SHARED, im->fd,
	    (off_t)base);
	if (map == MAP_FAILED)
		return 1;	/* not mappable: let pread do it */
	madvise(map, len + skew, MADV_SEQUENTIAL);
	rc = convert_write_sparse(outfd, map + skew, len, off, outname,
	    &st->bytes_written, e);
	munmap(map, len + skew);
	if (rc == 0)
		st->bytes_read += len;
	return rc;
}

static int
convert_data_run(struct img *im, int outfd, const char *outname,
    uint8_t *buf, uint64_t off, uint64_t len, struct progress *p,
    struct convert_stats *st, struct pep_err *e)
{
	int rc;

	while (len > 0) {
		uint64_t n = len < CONVERT_MAP ? len : CONVERT_MAP, foff;

		if (img_direct(im, off, &n, &foff)) {
			rc = convert_direct(im, outfd, outname, off, n, foff,
			    st, e);
			if (rc < 0)
				return rc;
			if (rc == 0)
				goto next;
		}
		if (n > CONVERT_CHUNK)
			n = CONVERT_CHUNK;
		rc = img_pread(im, buf, n, off, e);
		if (rc < 0)
			return rc;
		st->bytes_read += n;
		rc = convert_write_sparse(outfd, buf, n, off, outname,
		    &st->bytes_written, e);
		if (rc < 0)
			return rc;
next:
		off += n;
		len -= n;
		progress_update(p, off);
	}
	return 0;
}

int
convert_run(struct img *im, int outfd, const char *outname,
    struct progress *p, struct convert_stats *st, struct pep_err *e)
{
	uint8_t *buf;
	uint64_t off = 0, len;
	int rc = 0, kind;

	buf = malloc(CONVERT_CHUNK);
	if (buf == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	progress_begin(p, "convert", im->virtual_size);
	while (off < im->virtual_size) {
		len = im->virtual_size - off;
		kind = img_map(im, off, &len, e);
		if (kind < 0) {
			rc = kind;
			goto out;
		}
		if (kind == IMG_DATA) {
			rc = convert_data_run(im, outfd, outname, buf, off,
			    len, p, st, e);
			if (rc < 0)
				goto out;
		}
		off += len;
		progress_update(p, off);
	}
	if (ftruncate(outfd, (off_t)im->virtual_size) < 0)
		rc = pep_errf(e, errno, "%s: cannot set size: %s", outname,
		    strerror(errno));
out:
	progress_end(p);
	free(buf);
	return rc;
}
