/*
 * Raw disk images: the file is the disk. Accepted only when it looks like
 * one (an MBR boot signature, which a GPT's protective MBR also carries,
 * or an ext2/3/4 superblock at 1024), so that a stray text file is not
 * taken for a disk. Holes are found with SEEK_DATA/SEEK_HOLE.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "img.h"

#define RAW_EXT_MAGIC_OFF 1080

static int
img_raw_probe(struct img *im, struct pep_err *e)
{
	uint8_t sig[2];
	int r;

	if (im->file_size >= 512) {
		r = img_read_file(im, sig, 2, 510, "boot signature", e);
		if (r < 0)
			return r;
		if (sig[0] == 0x55 && sig[1] == 0xAA)
			return 1;
	}
	if (im->file_size >= RAW_EXT_MAGIC_OFF + 2) {
		r = img_read_file(im, sig, 2, RAW_EXT_MAGIC_OFF,
		    "ext superblock magic", e);
		if (r < 0)
			return r;
		if (sig[0] == 0x53 && sig[1] == 0xEF)
			return 1;
	}
	return 0;
}

static int
img_raw_open(struct img *im, struct pep_err *e)
{
	(void)e;
	im->virtual_size = im->file_size;
	snprintf(im->format, sizeof(im->format), "raw");
	return 0;
}

static int
img_raw_pread(struct img *im, void *buf, size_t len, uint64_t off,
    struct pep_err *e)
{
	return img_read_file(im, buf, len, off, "data", e);
}

/*
 * Also used for fixed VHDs (img_vhd.c): it needs only im->fd and works on
 * the first bytes of the file, whatever follows them.
 */
static int
img_raw_map(struct img *im, uint64_t off, uint64_t *len, struct pep_err *e)
{
	off_t d, h;

	(void)e;
	d = lseek(im->fd, (off_t)off, SEEK_DATA);
	if (d < 0 && errno == ENXIO)
		return IMG_ZERO;	/* nothing but a hole up to EOF */
	if (d < 0)
		return IMG_DATA;	/* no SEEK_DATA here: all data */
	if ((uint64_t)d > off) {
		if ((uint64_t)d - off < *len)
			*len = (uint64_t)d - off;
		return IMG_ZERO;
	}
	h = lseek(im->fd, (off_t)off, SEEK_HOLE);
	if (h > (off_t)off && (uint64_t)h - off < *len)
		*len = (uint64_t)h - off;
	return IMG_DATA;
}

/* Raw data (and a fixed VHD's) is the file itself. */
static int
img_raw_direct(struct img *im, uint64_t off, uint64_t *len,
    uint64_t *file_off)
{
	(void)im;
	(void)len;
	*file_off = off;
	return 1;
}

static void
img_raw_close(struct img *im)
{
	(void)im;
}

const struct img_ops img_raw_ops = {
	.name = "raw",
	.probe = img_raw_probe,
	.open = img_raw_open,
	.pread = img_raw_pread,
	.map = img_raw_map,
	.direct = img_raw_direct,
	.close = img_raw_close,
};
