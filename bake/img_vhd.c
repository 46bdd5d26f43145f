/*
 * VHD (Virtual PC / Hyper-V, qemu "vpc"): fixed and dynamic disks.
 * Fixed: raw data followed by a 512-byte footer. Dynamic: a footer copy at
 * 0, a "cxsparse" header, a BAT of big-endian sector numbers, blocks laid
 * out as [sector bitmap][data], the footer at the end. The virtual size
 * follows qemu 7.2 (CHS unless the creator is known to use current_size).
 * Only the BAT and one block bitmap are held in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"

#define VHD_FOOTER_SIZE 512
#define VHD_DYNHDR_SIZE 1024
#define VHD_TYPE_FIXED 2
#define VHD_TYPE_DYNAMIC 3
#define VHD_TYPE_DIFF 4
#define VHD_BAT_FREE 0xFFFFFFFFu
#define VHD_MAX_ENTRIES (1u << 24)
#define VHD_MAX_BLOCK (1u << 28)
#define VHD_MAX_GEOMETRY (65535ull * 16 * 255)

struct vhd {
	uint64_t data_end;	/* where the end footer starts (or EOF) */
	uint32_t block_size;
	uint32_t bitmap_size;	/* bytes before each block's data */
	uint32_t nblocks;	/* BAT entries covering the virtual size */
	uint32_t *bat;
	uint8_t *bitmap;	/* the bitmap of block bitmap_block */
	uint32_t bitmap_block;
};

static uint32_t
vhd_checksum(const uint8_t *p, size_t n, size_t csum_off)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (i < csum_off || i >= csum_off + 4)
			sum += p[i];
	return ~sum;
}

static int
vhd_check_sum(struct img *im, const uint8_t *p, size_t n, size_t csum_off,
    const char *what, struct pep_err *e)
{
	uint32_t stored = be32(p + csum_off);
	uint32_t computed = vhd_checksum(p, n, csum_off);

	if (stored == computed)
		return 0;
	return pep_errf(e, PEP_ECORRUPT, "%s: bad VHD %s checksum (stored "
	    "0x%08x, computed 0x%08x)", im->path, what, stored, computed);
}

static int
vhd_cookie_at(struct img *im, uint64_t off, struct pep_err *e)
{
	uint8_t c[8];
	int r;

	r = img_read_file(im, c, sizeof(c), off, "VHD cookie", e);
	if (r < 0)
		return r;
	return memcmp(c, "conectix", 8) == 0;
}

static int
img_vhd_probe(struct img *im, struct pep_err *e)
{
	int r;

	if (im->file_size < VHD_FOOTER_SIZE)
		return 0;
	r = vhd_cookie_at(im, im->file_size - VHD_FOOTER_SIZE, e);
	if (r != 0)
		return r;
	return vhd_cookie_at(im, 0, e);
}

/* The footer at the end, else (a dynamic disk cut short) its copy at 0. */
static int
vhd_read_footer(struct img *im, uint8_t *f, struct vhd *v, struct pep_err *e)
{
	uint64_t off = im->file_size - VHD_FOOTER_SIZE;
	int r;

	r = vhd_cookie_at(im, off, e);
	if (r < 0)
		return r;
	v->data_end = off;
	if (r == 0) {
		off = 0;
		v->data_end = im->file_size;
	}
	r = img_read_file(im, f, VHD_FOOTER_SIZE, off, "VHD footer", e);
	if (r < 0)
		return r;
	r = vhd_check_sum(im, f, VHD_FOOTER_SIZE, 64, "footer", e);
	if (r < 0)
		return r;
	if (off == 0 && be32(f + 60) == VHD_TYPE_FIXED)
		return pep_errf(e, PEP_ECORRUPT, "%s: fixed VHD without a "
		    "footer at the end of the file (truncated?)", im->path);
	return 0;
}

/* qemu 7.2 vpc_open: CHS unless the creator is known to use current_size. */
static uint64_t
vhd_virtual_size(const uint8_t *f)
{
	static const char *const cur[] = {
		"win ", "qem2", "d2v ", "CTXS", "tap\0"
	};
	uint64_t chs = (uint64_t)be16(f + 56) * f[58] * f[59];
	size_t i;
	int use_chs = 1;

	for (i = 0; i < sizeof(cur) / sizeof(cur[0]); i++)
		if (memcmp(f + 28, cur[i], 4) == 0)
			use_chs = 0;
	if (!use_chs || chs == VHD_MAX_GEOMETRY)
		return be64(f + 48) / 512 * 512;
	return chs * 512;
}

static int
vhd_check_type(struct img *im, uint32_t type, struct pep_err *e)
{
	if (type == VHD_TYPE_FIXED || type == VHD_TYPE_DYNAMIC)
		return 0;
	if (type == VHD_TYPE_DIFF)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: differencing VHD "
		    "(needs its parent image) is not supported", im->path);
	return pep_errf(e, PEP_EUNSUPPORTED, "%s: VHD disk type %u is not "
	    "supported (only fixed and dynamic)", im->path, type);
}

static int
vhd_check_bat(struct img *im, struct vhd *v, struct pep_err *e)
{
	uint64_t need = (uint64_t)v->bitmap_size + v->block_size;
	uint64_t start;
	uint32_t i;

	for (i = 0; i < v->nblocks; i++) {
		if (v->bat[i] == VHD_BAT_FREE)
			continue;
		start = (uint64_t)v->bat[i] * 512;
		if (start > v->data_end || need > v->data_end - start)
			return pep_errf(e, PEP_ECORRUPT, "%s: BAT entry %u "
			    "points past the end of the file (block of %llu "
			    "bytes at offset %llu, data ends at %llu)",
			    im->path, i, (unsigned long long)need,
			    (unsigned long long)start,
			    (unsigned long long)v->data_end);
	}
	return 0;
}

static int
vhd_load_bat(struct img *im, struct vhd *v, uint64_t table_off,
    uint32_t entries, struct pep_err *e)
{
	uint32_t i;
	int r;

	if (table_off > im->file_size ||
	    (uint64_t)entries * 4 > im->file_size - table_off)
		return pep_errf(e, PEP_ECORRUPT, "%s: truncated: BAT at "
		    "offset %llu (%u entries) is past the end of the file "
		    "(size %llu)", im->path, (unsigned long long)table_off,
		    entries, (unsigned long long)im->file_size);
	v->bat = malloc((size_t)v->nblocks * 4 + 4);
	if (v->bat == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", im->path);
	r = img_read_file(im, v->bat, (size_t)v->nblocks * 4, table_off,
	    "BAT", e);
	if (r < 0)
		return r;
	for (i = 0; i < v->nblocks; i++)
		v->bat[i] = be32((const uint8_t *)&v->bat[i]);
	return vhd_check_bat(im, v, e);
}

static int
vhd_check_dynhdr(struct img *im, const uint8_t *h, struct pep_err *e)
{
	uint32_t bs = be32(h + 32);

	if (memcmp(h, "cxsparse", 8) != 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: VHD dynamic header "
		    "cookie is not \"cxsparse\"", im->path);
	if (bs < 512 || bs > VHD_MAX_BLOCK || (bs & (bs - 1)) != 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: bad VHD block size %u "
		    "(must be a power of two from 512 to %u)", im->path, bs,
		    VHD_MAX_BLOCK);
	if (be32(h + 28) > VHD_MAX_ENTRIES)
		return pep_errf(e, PEP_ECORRUPT, "%s: VHD BAT has %u "
		    "entries (more than %u)", im->path, be32(h + 28),
		    VHD_MAX_ENTRIES);
	return vhd_check_sum(im, h, VHD_DYNHDR_SIZE, 36, "dynamic header", e);
}

static int
vhd_open_dynamic(struct img *im, struct vhd *v, const uint8_t *f,
    struct pep_err *e)
{
	uint8_t h[VHD_DYNHDR_SIZE];
	uint64_t need;
	uint32_t entries;
	int r;

	r = img_read_file(im, h, sizeof(h), be64(f + 16),
	    "VHD dynamic header", e);
	if (r < 0)
		return r;
	r = vhd_check_dynhdr(im, h, e);
	if (r < 0)
		return r;
	v->block_size = be32(h + 32);
	entries = be32(h + 28);
	need = im->virtual_size / v->block_size +
	    (im->virtual_size % v->block_size != 0);
	if (need > entries)
		return pep_errf(e, PEP_ECORRUPT, "%s: VHD BAT has %u entries "
		    "of %u bytes, too few for the virtual size %llu",
		    im->path, entries, v->block_size,
		    (unsigned long long)im->virtual_size);
	v->nblocks = (uint32_t)need;
	v->bitmap_size = (v->block_size / 512 / 8 + 511) / 512 * 512;
	v->bitmap = malloc(v->bitmap_size);
	if (v->bitmap == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", im->path);
	v->bitmap_block = VHD_BAT_FREE;
	snprintf(im->format, sizeof(im->format), "vhd-dynamic");
	return vhd_load_bat(im, v, be64(h + 16), entries, e);
}

static int
img_vhd_open(struct img *im, struct pep_err *e)
{
	uint8_t f[VHD_FOOTER_SIZE];
	struct vhd *v;
	int r;

	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", im->path);
	im->priv = v;
	r = vhd_read_footer(im, f, v, e);
	if (r < 0)
		return r;
	r = vhd_check_type(im, be32(f + 60), e);
	if (r < 0)
		return r;
	im->virtual_size = vhd_virtual_size(f);
	if (be32(f + 60) == VHD_TYPE_DYNAMIC)
		return vhd_open_dynamic(im, v, f, e);
	if (im->virtual_size > v->data_end)
		return pep_errf(e, PEP_ECORRUPT, "%s: fixed VHD holds %llu "
		    "bytes of data, less than its virtual size %llu",
		    im->path, (unsigned long long)v->data_end,
		    (unsigned long long)im->virtual_size);
	snprintf(im->format, sizeof(im->format), "vhd-fixed");
	return 0;
}

static int
vhd_bit(const struct vhd *v, uint32_t sector)
{
	return (v->bitmap[sector >> 3] & (0x80 >> (sector & 7))) != 0;
}

static int
vhd_load_bitmap(struct img *im, struct vhd *v, uint32_t blk,
    struct pep_err *e)
{
	int r;

	if (v->bitmap_block == blk)
		return 0;
	v->bitmap_block = VHD_BAT_FREE;
	r = img_read_file(im, v->bitmap, v->bitmap_size,
	    (uint64_t)v->bat[blk] * 512, "VHD block bitmap", e);
	if (r < 0)
		return r;
	v->bitmap_block = blk;
	return 0;
}

/* Read n bytes at in-block offset pos of block blk (within the block). */
static int
vhd_read_block(struct img *im, struct vhd *v, uint32_t blk, uint32_t pos,
    uint8_t *p, uint32_t n, struct pep_err *e)
{
	uint64_t data = (uint64_t)v->bat[blk] * 512 + v->bitmap_size;
	uint32_t end = pos + n, stop;
	int r, bit;

	if (v->bat[blk] == VHD_BAT_FREE) {
		memset(p, 0, n);
		return 0;
	}
	r = vhd_load_bitmap(im, v, blk, e);
	while (r == 0 && pos < end) {
		bit = vhd_bit(v, pos / 512);
		stop = (pos / 512 + 1) * 512;
		while (stop < end && vhd_bit(v, stop / 512) == bit)
			stop += 512;
		if (stop > end)
			stop = end;
		if (bit)
			r = img_read_file(im, p, stop - pos, data + pos,
			    "VHD block data", e);
		else
			memset(p, 0, stop - pos);
		p += stop - pos;
		pos = stop;
	}
	return r;
}

static int
img_vhd_pread(struct img *im, void *buf, size_t len, uint64_t off,
    struct pep_err *e)
{
	struct vhd *v = im->priv;
	uint8_t *p = buf;
	uint32_t pos, n;
	int r;

	if (v->bat == NULL)
		return img_read_file(im, buf, len, off, "VHD data", e);
	while (len > 0) {
		pos = (uint32_t)(off % v->block_size);
		n = v->block_size - pos;
		if (n > len)
			n = (uint32_t)len;
		r = vhd_read_block(im, v, (uint32_t)(off / v->block_size),
		    pos, p, n, e);
		if (r < 0)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int
img_vhd_map(struct img *im, uint64_t off, uint64_t *len, struct pep_err *e)
{
	struct vhd *v = im->priv;
	uint64_t blk, run;
	int kind;

	if (v->bat == NULL)
		return img_raw_ops.map(im, off, len, e);
	blk = off / v->block_size;
	kind = v->bat[blk] == VHD_BAT_FREE ? IMG_ZERO : IMG_DATA;
	run = v->block_size - off % v->block_size;
	while (run < *len && blk + 1 < v->nblocks &&
	    (v->bat[blk + 1] == VHD_BAT_FREE ? IMG_ZERO : IMG_DATA) == kind) {
		blk++;
		run += v->block_size;
	}
	if (run < *len)
		*len = run;
	return kind;
}

/* 1 if every sector of [pos, end) in block blk's bitmap is present. */
static int
vhd_all_present(const struct vhd *v, uint32_t pos, uint32_t end)
{
	uint32_t s = pos / 512, last = (end + 511) / 512;

	while (s < last && (s & 7) != 0)
		if (!vhd_bit(v, s++))
			return 0;
	for (; s + 8 <= last; s += 8)
		if (v->bitmap[s >> 3] != 0xFF)
			return 0;
	for (; s < last; s++)
		if (!vhd_bit(v, s))
			return 0;
	return 1;
}

/* A dynamic block is stored verbatim where its bitmap is all ones. */
static int
img_vhd_direct(struct img *im, uint64_t off, uint64_t *len,
    uint64_t *file_off)
{
	struct vhd *v = im->priv;
	uint32_t blk, pos, n;

	if (v->bat == NULL) {
		*file_off = off;
		return 1;
	}
	blk = (uint32_t)(off / v->block_size);
	pos = (uint32_t)(off % v->block_size);
	n = v->block_size - pos;
	if (n > *len)
		n = (uint32_t)*len;
	if (v->bat[blk] == VHD_BAT_FREE ||
	    vhd_load_bitmap(im, v, blk, NULL) < 0 ||
	    !vhd_all_present(v, pos, pos + n))
		return 0;
	*len = n;
	*file_off = (uint64_t)v->bat[blk] * 512 + v->bitmap_size + pos;
	return 1;
}

static void
img_vhd_close(struct img *im)
{
	struct vhd *v = im->priv;

	if (v == NULL)
		return;
	free(v->bat);
	free(v->bitmap);
	free(v);
	im->priv = NULL;
}

const struct img_ops img_vhd_ops = {
	.name = "vhd",
	.probe = img_vhd_probe,
	.open = img_vhd_open,
	.pread = img_vhd_pread,
	.map = img_vhd_map,
	.direct = img_vhd_direct,
	.close = img_vhd_close,
};
