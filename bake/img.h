/*
 * Input containers, detected by content (img.c): raw (img_raw.c), VHD
 * (img_vhd.c), qcow2 (img_qcow2.c), behind one ops table.
 */
#ifndef PEP_IMG_H
#define PEP_IMG_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

/* ------------------------------------------------------------------ */
/* img.c, img_raw.c, img_vhd.c, img_qcow2.c: input containers          */

enum img_extent {
	IMG_ZERO = 0,		/* the run reads as zeros (hole/unallocated) */
	IMG_DATA = 1		/* the run may hold data: read it */
};

struct img;

struct img_ops {
	const char *name;	/* "qcow2", "vhd", "raw" */
	/* 1 if the file is this format, 0 if not, < 0 on I/O error. */
	int (*probe)(struct img *im, struct pep_err *e);
	/* Parse and validate metadata; set virtual_size, format, priv. */
	int (*open)(struct img *im, struct pep_err *e);
	/* Read len bytes at virtual offset off (off+len <= virtual_size). */
	int (*pread)(struct img *im, void *buf, size_t len, uint64_t off,
	    struct pep_err *e);
	/*
	 * Classify the run at off. *len is in: the most the caller wants
	 * (> 0), out: the run's length (0 < out <= in). Returns IMG_DATA or
	 * IMG_ZERO, or < 0 on error.
	 */
	int (*map)(struct img *im, uint64_t off, uint64_t *len,
	    struct pep_err *e);
	/*
	 * Optional. If the run at off is stored verbatim in the container,
	 * set *file_off to where it starts, shorten *len to the contiguous
	 * stretch and return 1; return 0 when the run must go through pread.
	 */
	int (*direct)(struct img *im, uint64_t off, uint64_t *len,
	    uint64_t *file_off);
	void (*close)(struct img *im);
};

struct img {
	const struct img_ops *ops;
	const char *path;	/* for messages */
	int fd;			/* the container file, read-only */
	int own_fd;		/* img_close closes fd */
	uint64_t file_size;
	uint64_t virtual_size;
	char format[32];	/* "raw", "vhd-fixed", "vhd-dynamic", "qcow2-v3" */
	void *priv;
};

extern const struct img_ops img_raw_ops;
extern const struct img_ops img_vhd_ops;
extern const struct img_ops img_qcow2_ops;

/* Detect the format by content and open path read-only. */
int img_open(struct img **imp, const char *path, struct pep_err *e);
/* Same on an open fd (not closed by img_close); name is for messages. */
int img_open_fd(struct img **imp, int fd, const char *name,
    struct pep_err *e);
int img_pread(struct img *im, void *buf, size_t len, uint64_t off,
    struct pep_err *e);
int img_map(struct img *im, uint64_t off, uint64_t *len, struct pep_err *e);
int img_direct(struct img *im, uint64_t off, uint64_t *len,
    uint64_t *file_off);
void img_close(struct img *im);
/*
 * Exact read of the container file; a short read is PEP_ECORRUPT
 * "<path>: truncated: <what> at offset N past end of file".
 */
int img_read_file(struct img *im, void *buf, size_t len, uint64_t off,
    const char *what, struct pep_err *e);
/* The same through fd: another open file description of the container
 * (convert.c's workers each have one, and so their own readahead). */
int img_read_fd(struct img *im, int fd, void *buf, size_t len, uint64_t off,
    const char *what, struct pep_err *e);

/* Big-endian helpers shared by the container readers. */
static inline uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static inline uint16_t
be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

#endif
