/*
 * qcow2 (versions 2 and 3), read-only: zlib or zstd compressed clusters,
 * zero clusters and extended L2 entries (32 subclusters per cluster, each
 * allocated, unallocated or reading as zeros); no backing files,
 * encryption or external data files. The active L1 table is held in
 * memory; one L2 table and one decompressed cluster are cached and one
 * zlib or zstd context is reused, so memory stays at a few clusters
 * whatever the image size. (A zstd frame may declare a window of up to
 * 128 MiB, libzstd's default limit and so qemu's; libzstd reserves it,
 * but decoding stops at a cluster, so only about that much is touched.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "img.h"

#define QCOW_MAGIC 0x514649fbu
#define QCOW_V2_HDR 72
#define QCOW_V3_HDR 104
#define QCOW_HDR_MAX 112
#define QCOW_INCOMPAT_DIRTY 1ull
#define QCOW_INCOMPAT_CORRUPT 2ull
#define QCOW_INCOMPAT_DATAFILE 4ull
#define QCOW_INCOMPAT_COMPRTYPE 8ull
#define QCOW_INCOMPAT_EXTL2 16ull
#define QCOW_COMP_ZLIB 0u
#define QCOW_COMP_ZSTD 1u
#define QCOW_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW_OFLAG_COMPRESSED (1ull << 62)
#define QCOW_OFLAG_ZERO 1ull
#define QCOW_MAX_L1 (32u << 20 >> 3)	/* qemu: 32 MiB of L1 table */
#define QCOW_MAX_BACKING_NAME 1023
#define QCOW_EXTL2_SC 32u	/* subclusters per cluster */
#define QCOW_EXTL2_MIN_BITS 14	/* qemu: subclusters of 512 bytes or more */
#define QCOW_ZSTD_WINDOWLOG_MAX 27	/* libzstd's default, as qemu has */

/* One extended L2 entry as stored (qcow2.txt "Extended L2 Entries"). */
struct qcow2_l2_ext {
	uint8_t desc[8];	/* the standard 64-bit L2 entry */
	uint8_t bitmap[8];	/* bit n: subcluster n allocated, n+32: zero */
} __attribute__((packed));

/* An L2 entry, decoded. */
struct qcow2_l2e {
	uint64_t desc;		/* cluster descriptor and flags */
	uint64_t bitmap;	/* subcluster bitmap (0 without extended L2) */
	uint64_t at;		/* file offset of the entry, 0: no L2 table */
};

/* Where a run of virtual bytes inside one cluster comes from. */
enum qcow2_src {
	QCOW_SRC_ZERO,		/* unallocated, or reads as zeros */
	QCOW_SRC_DATA,		/* stored verbatim in the host cluster */
	QCOW_SRC_COMPRESSED	/* inside the compressed cluster */
};

struct qcow2_run {
	enum qcow2_src src;
	uint64_t desc;		/* the cluster's L2 descriptor */
	uint64_t len;		/* bytes of this source from the offset */
};

struct qcow2 {
	unsigned cluster_bits;
	uint32_t cluster_size;
	unsigned sc_bits;	/* log2 of the subcluster (= cluster) size */
	unsigned ctype;		/* QCOW_COMP_ZLIB or QCOW_COMP_ZSTD */
	int extl2;		/* 128-bit L2 entries with subclusters */
	uint64_t l2_entries;
	uint32_t l1_size;	/* entries loaded (those covering the disk) */
	uint64_t *l1;
	uint8_t *l2;		/* one cached L2 table, as stored */
	uint64_t l2_off;	/* its file offset, 0 = none */
	uint8_t *cbuf;		/* compressed input, 2 clusters */
	uint8_t *dbuf;		/* one decompressed cluster */
	uint64_t dbuf_desc;	/* its L2 descriptor, 0 = none */
	z_stream zs;
	int zs_live;
	ZSTD_DCtx *zd;
};

static int
img_qcow2_probe(struct img *im, struct pep_err *e)
{
	uint8_t m[4];
	int r;

	if (im->file_size < 4)
		return 0;
	r = img_read_file(im, m, sizeof(m), 0, "qcow2 magic", e);
	if (r < 0)
		return r;
	return be32(m) == QCOW_MAGIC;
}

static void
qcow2_printable(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static int
qcow2_refuse_backing(struct img *im, const uint8_t *h, struct pep_err *e)
{
	char name[QCOW_MAX_BACKING_NAME + 1];
	uint32_t len = be32(h + 16);
	struct pep_err ignore;

	if (len > QCOW_MAX_BACKING_NAME ||
	    img_read_file(im, name, len, be64(h + 8), "backing file name",
	    &ignore) < 0)
		len = 0;
	name[len] = '\0';
	qcow2_printable(name);
	return pep_errf(e, PEP_EUNSUPPORTED, "%s: qcow2 with a backing file "
	    "(%s) is not supported; flatten it with qemu-img convert first",
	    im->path, len > 0 ? name : "name unreadable");
}

static int
qcow2_check_ctype(struct img *im, uint64_t inc, unsigned ctype,
    struct pep_err *e)
{
	if (ctype > QCOW_COMP_ZSTD)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: qcow2 compression "
		    "type %u is not supported (only 0, zlib, and 1, zstd)",
		    im->path, ctype);
	if (ctype != QCOW_COMP_ZLIB && !(inc & QCOW_INCOMPAT_COMPRTYPE))
		return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 compression "
		    "type %u (zstd) without the compression type "
		    "incompatible feature bit", im->path, ctype);
	if (ctype == QCOW_COMP_ZLIB && (inc & QCOW_INCOMPAT_COMPRTYPE))
		return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 compression type "
		    "incompatible feature bit set for compression type 0 "
		    "(zlib)", im->path);
	return 0;
}

static int
qcow2_check_features(struct img *im, const uint8_t *h, uint32_t hlen,
    struct pep_err *e)
{
	uint64_t inc = be64(h + 72);
	uint64_t known = QCOW_INCOMPAT_DIRTY | QCOW_INCOMPAT_CORRUPT |
	    QCOW_INCOMPAT_DATAFILE | QCOW_INCOMPAT_COMPRTYPE |
	    QCOW_INCOMPAT_EXTL2;
	unsigned ctype = hlen > QCOW_V3_HDR ? h[104] : QCOW_COMP_ZLIB;

	if (inc & QCOW_INCOMPAT_CORRUPT)
		return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 image is marked "
		    "corrupt (try qemu-img check -r all)", im->path);
	if (inc & ~known)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: qcow2 has unknown "
		    "incompatible features 0x%llx", im->path,
		    (unsigned long long)(inc & ~known));
	if (inc & QCOW_INCOMPAT_DATAFILE)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: qcow2 with an "
		    "external data file is not supported", im->path);
	if ((inc & QCOW_INCOMPAT_EXTL2) &&
	    be32(h + 20) < QCOW_EXTL2_MIN_BITS)
		return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 with extended L2 "
		    "entries needs clusters of at least 16 KiB (cluster_bits "
		    "%u)", im->path, be32(h + 20));
	return qcow2_check_ctype(im, inc, ctype, e);
}

/* Read the header; returns its usable length in *hlen. */
static int
qcow2_read_header(struct img *im, uint8_t *h, uint32_t *hlen,
    struct pep_err *e)
{
	uint32_t ver, len = QCOW_V2_HDR;
	int r;

	r = img_read_file(im, h, QCOW_V2_HDR, 0, "qcow2 header", e);
	if (r < 0)
		return r;
	ver = be32(h + 4);
	if (ver != 2 && ver != 3)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: qcow2 version %u "
		    "is not supported (only 2 and 3)", im->path, ver);
	memset(h + QCOW_V2_HDR, 0, QCOW_HDR_MAX - QCOW_V2_HDR);
	if (ver == 3) {
		r = img_read_file(im, h + QCOW_V2_HDR,
		    QCOW_V3_HDR - QCOW_V2_HDR, QCOW_V2_HDR, "qcow2 header", e);
		if (r < 0)
			return r;
		len = be32(h + 100);
		if (len < QCOW_V3_HDR || len % 8 != 0)
			return pep_errf(e, PEP_ECORRUPT, "%s: bad qcow2 "
			    "header length %u", im->path, len);
		if (len > QCOW_HDR_MAX)
			len = QCOW_HDR_MAX;
		r = img_read_file(im, h + QCOW_V3_HDR, len - QCOW_V3_HDR,
		    QCOW_V3_HDR, "qcow2 header", e);
	}
	*hlen = len;
	return r;
}

static int
qcow2_check_header(struct img *im, const uint8_t *h, uint32_t hlen,
    struct pep_err *e)
{
	uint32_t cb = be32(h + 20);
	int r;

	if (be64(h + 8) != 0)
		return qcow2_refuse_backing(im, h, e);
	if (be32(h + 32) != 0)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: encrypted qcow2 "
		    "(%s) is not supported: decrypt it first (qemu-img "
		    "convert --image-opts with its secret)", im->path,
		    be32(h + 32) == 1 ? "AES" : be32(h + 32) == 2 ? "LUKS" :
		    "unknown method");
	if (be32(h + 4) == 3) {
		r = qcow2_check_features(im, h, hlen, e);
		if (r < 0)
			return r;
	}
	if (cb < 9 || cb > 21)
		return pep_errf(e, PEP_ECORRUPT, "%s: bad qcow2 cluster_bits "
		    "%u (must be 9 to 21)", im->path, cb);
	return 0;
}

static int
qcow2_check_l1(struct img *im, struct qcow2 *q, struct pep_err *e)
{
	uint64_t l2;
	uint32_t i;

	for (i = 0; i < q->l1_size; i++) {
		l2 = q->l1[i] & QCOW_OFFSET_MASK;
		if (l2 == 0)
			continue;
		if (l2 & (q->cluster_size - 1))
			return pep_errf(e, PEP_ECORRUPT, "%s: L2 table offset "
			    "0x%llx for L1 entry %u is not cluster-aligned",
			    im->path, (unsigned long long)l2, i);
		if (l2 > im->file_size ||
		    q->cluster_size > im->file_size - l2)
			return pep_errf(e, PEP_ECORRUPT, "%s: L2 table offset "
			    "0x%llx for L1 entry %u is past the end of the "
			    "file", im->path, (unsigned long long)l2, i);
	}
	return 0;
}

static int
qcow2_load_l1(struct img *im, struct qcow2 *q, const uint8_t *h,
    struct pep_err *e)
{
	uint64_t span = q->cluster_size * q->l2_entries;
	uint64_t need = im->virtual_size / span +
	    (im->virtual_size % span != 0);
	uint64_t off = be64(h + 40);
	uint32_t i;
	int r;

	if (need > QCOW_MAX_L1)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: qcow2 virtual size "
		    "%llu is too large", im->path,
		    (unsigned long long)im->virtual_size);
	if (need > be32(h + 36))
		return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 L1 table has %u "
		    "entries, too few for the virtual size %llu", im->path,
		    be32(h + 36), (unsigned long long)im->virtual_size);
	if (need > 0 && (off & (q->cluster_size - 1)) != 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 L1 table offset "
		    "0x%llx is not cluster-aligned", im->path,
		    (unsigned long long)off);
	if (off > im->file_size || need * 8 > im->file_size - off)
		return pep_errf(e, PEP_ECORRUPT, "%s: truncated: qcow2 L1 "
		    "table at offset %llu is past the end of the file (size "
		    "%llu)", im->path, (unsigned long long)off,
		    (unsigned long long)im->file_size);
	q->l1_size = (uint32_t)need;
	q->l1 = malloc(need * 8 + 8);
	if (q->l1 == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", im->path);
	r = img_read_file(im, q->l1, need * 8, off, "qcow2 L1 table", e);
	if (r < 0)
		return r;
	for (i = 0; i < q->l1_size; i++)
		q->l1[i] = be64((const uint8_t *)&q->l1[i]);
	return qcow2_check_l1(im, q, e);
}

static int
qcow2_zstd_init(struct img *im, struct qcow2 *q, struct pep_err *e)
{
	size_t r;

	q->zd = ZSTD_createDCtx();
	if (q->zd == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", im->path);
	r = ZSTD_DCtx_setParameter(q->zd, ZSTD_d_windowLogMax,
	    QCOW_ZSTD_WINDOWLOG_MAX);
	if (ZSTD_isError(r))
		return pep_errf(e, PEP_ELIB, "%s: zstd: %s", im->path,
		    ZSTD_getErrorName(r));
	return 0;
}

static int
qcow2_alloc(struct img *im, struct qcow2 *q, struct pep_err *e)
{
	q->l2 = malloc(q->cluster_size);
	q->cbuf = malloc((size_t)q->cluster_size * 2);
	q->dbuf = malloc(q->cluster_size);
	if (q->l2 == NULL || q->cbuf == NULL || q->dbuf == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", im->path);
	if (q->ctype == QCOW_COMP_ZSTD)
		return qcow2_zstd_init(im, q, e);
	if (inflateInit2(&q->zs, -12) != Z_OK)
		return pep_errf(e, PEP_ELIB, "%s: zlib: inflateInit2 failed",
		    im->path);
	q->zs_live = 1;
	return 0;
}

/* Cluster geometry and compression from a checked header. */
static void
qcow2_geometry(struct qcow2 *q, const uint8_t *h, uint32_t hlen)
{
	uint64_t inc = be32(h + 4) == 3 ? be64(h + 72) : 0;

	q->cluster_bits = be32(h + 20);
	q->cluster_size = 1u << q->cluster_bits;
	q->extl2 = (inc & QCOW_INCOMPAT_EXTL2) != 0;
	q->ctype = be32(h + 4) == 3 && hlen > QCOW_V3_HDR ? h[104] :
	    QCOW_COMP_ZLIB;
	if (q->extl2) {
		q->l2_entries = q->cluster_size / sizeof(struct qcow2_l2_ext);
		q->sc_bits = q->cluster_bits - 5;	/* 32 subclusters */
	} else {
		q->l2_entries = q->cluster_size / 8;
		q->sc_bits = q->cluster_bits;
	}
}

static int
img_qcow2_open(struct img *im, struct pep_err *e)
{
	uint8_t h[QCOW_HDR_MAX];
	struct qcow2 *q;
	uint32_t hlen = 0;
	int r;

	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", im->path);
	im->priv = q;
	r = qcow2_read_header(im, h, &hlen, e);
	if (r < 0)
		return r;
	r = qcow2_check_header(im, h, hlen, e);
	if (r < 0)
		return r;
	qcow2_geometry(q, h, hlen);
	im->virtual_size = be64(h + 24);
	snprintf(im->format, sizeof(im->format), "qcow2-v%u", be32(h + 4));
	r = qcow2_load_l1(im, q, h, e);
	if (r < 0)
		return r;
	return qcow2_alloc(im, q, e);
}

/* The L2 entry for the cluster at virtual offset off (all 0: none). */
static int
qcow2_l2_entry(struct img *im, struct qcow2 *q, uint64_t off,
    struct qcow2_l2e *l2e, struct pep_err *e)
{
	uint64_t ci = off >> q->cluster_bits;
	uint64_t l2 = q->l1[ci / q->l2_entries] & QCOW_OFFSET_MASK;
	uint64_t i = ci % q->l2_entries;
	const struct qcow2_l2_ext *x;
	int r;

	memset(l2e, 0, sizeof(*l2e));
	if (l2 == 0)
		return 0;
	if (q->l2_off != l2) {
		q->l2_off = 0;
		r = img_read_file(im, q->l2, q->cluster_size, l2,
		    "qcow2 L2 table", e);
		if (r < 0)
			return r;
		q->l2_off = l2;
	}
	if (q->extl2) {
		x = (const struct qcow2_l2_ext *)q->l2 + i;
		l2e->desc = be64(x->desc);
		l2e->bitmap = be64(x->bitmap);
		l2e->at = l2 + i * sizeof(*x);
	} else {
		l2e->desc = be64(q->l2 + i * 8);
		l2e->at = l2 + i * 8;
	}
	return 0;
}

/* Subclusters from sc on, to the cluster end at most, whose bit is sc's. */
static unsigned
qcow2_sc_same(uint32_t mask, unsigned sc)
{
	uint32_t m = mask >> sc;
	unsigned n;

	if (m & 1)
		m = ~m;
	n = m == 0 ? QCOW_EXTL2_SC : (unsigned)__builtin_ctz(m);
	return n < QCOW_EXTL2_SC - sc ? n : QCOW_EXTL2_SC - sc;
}

/*
 * The run at in-cluster offset pos of a standard cluster with subclusters:
 * allocated ones hold data, the others (unallocated or zero) read as
 * zeros. A bitmap qemu calls invalid is refused.
 */
static int
qcow2_sub_run(struct img *im, struct qcow2 *q, uint32_t pos,
    const struct qcow2_l2e *l2e, struct qcow2_run *run, struct pep_err *e)
{
	uint32_t alloc = (uint32_t)l2e->bitmap;
	uint32_t both = alloc & (uint32_t)(l2e->bitmap >> 32);
	unsigned sc = pos >> q->sc_bits;

	if (both != 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: corrupt qcow2 "
		    "subcluster bitmap 0x%016llx in the L2 entry at offset "
		    "0x%llx: subcluster %d is both allocated and zero",
		    im->path, (unsigned long long)l2e->bitmap,
		    (unsigned long long)l2e->at, __builtin_ctz(both));
	if (alloc != 0 && (l2e->desc & QCOW_OFFSET_MASK) == 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: corrupt qcow2 "
		    "subcluster bitmap 0x%016llx in the L2 entry at offset "
		    "0x%llx: subcluster %d is allocated in an unallocated "
		    "cluster", im->path, (unsigned long long)l2e->bitmap,
		    (unsigned long long)l2e->at, __builtin_ctz(alloc));
	run->src = (alloc >> sc) & 1 ? QCOW_SRC_DATA : QCOW_SRC_ZERO;
	run->len = ((uint64_t)qcow2_sc_same(alloc, sc) << q->sc_bits) -
	    (pos & ((1u << q->sc_bits) - 1));
	return 0;
}

/* Classify the bytes at virtual offset off, to the end of their run. */
static int
qcow2_run_at(struct img *im, struct qcow2 *q, uint64_t off,
    struct qcow2_run *run, struct pep_err *e)
{
	uint32_t pos = (uint32_t)(off & (q->cluster_size - 1));
	struct qcow2_l2e l2e;
	int r;

	r = qcow2_l2_entry(im, q, off, &l2e, e);
	if (r < 0)
		return r;
	run->desc = l2e.desc;
	run->len = q->cluster_size - pos;
	if (l2e.desc & QCOW_OFLAG_COMPRESSED) {
		run->src = QCOW_SRC_COMPRESSED;
		if (l2e.bitmap == 0)
			return 0;
		return pep_errf(e, PEP_ECORRUPT, "%s: corrupt qcow2 L2 entry "
		    "at offset 0x%llx: compressed cluster with a non-zero "
		    "subcluster bitmap 0x%016llx", im->path,
		    (unsigned long long)l2e.at,
		    (unsigned long long)l2e.bitmap);
	}
	if (q->extl2)
		return qcow2_sub_run(im, q, pos, &l2e, run, e);
	if ((l2e.desc & QCOW_OFLAG_ZERO) || (l2e.desc & QCOW_OFFSET_MASK) == 0)
		run->src = QCOW_SRC_ZERO;
	else
		run->src = QCOW_SRC_DATA;
	return 0;
}

/* Read up to len file bytes at off into buf; zeros past the end of file. */
static int
qcow2_read_tail(struct img *im, uint8_t *buf, size_t len, uint64_t off,
    const char *what, struct pep_err *e)
{
	size_t n = len;

	if (off >= im->file_size)
		return pep_errf(e, PEP_ECORRUPT, "%s: %s at offset 0x%llx is "
		    "past the end of the file (size %llu)", im->path, what,
		    (unsigned long long)off,
		    (unsigned long long)im->file_size);
	if (n > im->file_size - off)
		n = (size_t)(im->file_size - off);
	memset(buf + n, 0, len - n);
	return img_read_file(im, buf, n, off, what, e);
}

/*
 * zlib (raw deflate, 4 KiB window): the output must fill the cluster; the
 * input may have bytes left over (its size is known to a sector).
 */
static int
qcow2_inflate(struct img *im, struct qcow2 *q, size_t csize,
    uint64_t host, struct pep_err *e)
{
	int r;

	inflateReset(&q->zs);
	q->zs.next_in = q->cbuf;
	q->zs.avail_in = (uInt)csize;
	q->zs.next_out = q->dbuf;
	q->zs.avail_out = q->cluster_size;
	r = inflate(&q->zs, Z_FINISH);
	if ((r != Z_STREAM_END && r != Z_BUF_ERROR) || q->zs.avail_out != 0)
		return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 compressed "
		    "cluster at offset 0x%llx does not inflate to a full "
		    "cluster", im->path, (unsigned long long)host);
	return 0;
}

/*
 * zstd as qemu reads it: one or more frames decoded as a stream until the
 * cluster is full, every step making progress, the last frame ending
 * exactly at the end of the cluster; bytes after it are ignored.
 */
static int
qcow2_unzstd(struct img *im, struct qcow2 *q, size_t csize, uint64_t host,
    struct pep_err *e)
{
	ZSTD_inBuffer in = { q->cbuf, csize, 0 };
	ZSTD_outBuffer out = { q->dbuf, q->cluster_size, 0 };
	size_t r = 0, ipos, opos;
	const char *why = NULL;

	ZSTD_DCtx_reset(q->zd, ZSTD_reset_session_only);
	while (out.pos < out.size && why == NULL) {
		ipos = in.pos;
		opos = out.pos;
		r = ZSTD_decompressStream(q->zd, &out, &in);
		if (ZSTD_isError(r))
			why = ZSTD_getErrorName(r);
		else if (in.pos == ipos && out.pos == opos)
			why = "the data ends before a full cluster";
	}
	if (why == NULL && r != 0)
		why = "a frame runs past the end of the cluster";
	if (why == NULL)
		return 0;
	return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 zstd compressed cluster "
	    "at offset 0x%llx is corrupt: %s", im->path,
	    (unsigned long long)host, why);
}

/* Decompress the cluster of L2 descriptor desc into q->dbuf. */
static int
qcow2_decompress(struct img *im, struct qcow2 *q, uint64_t desc,
    struct pep_err *e)
{
	unsigned shift = 62 - (q->cluster_bits - 8);
	uint64_t host = desc & ((1ull << shift) - 1);
	uint64_t nsect = ((desc >> shift) &
	    ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
	size_t csize = (size_t)(nsect * 512 - (host & 511));
	int r;

	if (q->dbuf_desc == desc)
		return 0;
	q->dbuf_desc = 0;
	r = qcow2_read_tail(im, q->cbuf, csize, host,
	    "qcow2 compressed cluster", e);
	if (r < 0)
		return r;
	if (q->ctype == QCOW_COMP_ZSTD)
		r = qcow2_unzstd(im, q, csize, host, e);
	else
		r = qcow2_inflate(im, q, csize, host, e);
	if (r < 0)
		return r;
	q->dbuf_desc = desc;
	return 0;
}

/* Read n bytes at virtual offset off, all inside run. */
static int
qcow2_read_run(struct img *im, struct qcow2 *q, uint64_t off, uint8_t *p,
    uint32_t n, const struct qcow2_run *run, struct pep_err *e)
{
	uint32_t pos = (uint32_t)(off & (q->cluster_size - 1));
	uint64_t host = run->desc & QCOW_OFFSET_MASK;
	int r;

	if (run->src == QCOW_SRC_ZERO) {
		memset(p, 0, n);
		return 0;
	}
	if (run->src == QCOW_SRC_COMPRESSED) {
		r = qcow2_decompress(im, q, run->desc, e);
		if (r == 0)
			memcpy(p, q->dbuf + pos, n);
		return r;
	}
	if (host & (q->cluster_size - 1))
		return pep_errf(e, PEP_ECORRUPT, "%s: qcow2 data cluster "
		    "offset 0x%llx is not cluster-aligned", im->path,
		    (unsigned long long)host);
	return qcow2_read_tail(im, p, n, host + pos, "qcow2 data cluster",
	    e);
}

static int
img_qcow2_pread(struct img *im, void *buf, size_t len, uint64_t off,
    struct pep_err *e)
{
	struct qcow2 *q = im->priv;
	struct qcow2_run run;
	uint8_t *p = buf;
	uint32_t n;
	int r;

	while (len > 0) {
		r = qcow2_run_at(im, q, off, &run, e);
		if (r < 0)
			return r;
		n = run.len < len ? (uint32_t)run.len : (uint32_t)len;
		r = qcow2_read_run(im, q, off, p, n, &run, e);
		if (r < 0)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* IMG_ZERO or IMG_DATA for the run at off; *skip: bytes it covers. */
static int
qcow2_kind(struct img *im, struct qcow2 *q, uint64_t off, uint64_t *skip,
    struct pep_err *e)
{
	uint64_t span = q->cluster_size * q->l2_entries;
	struct qcow2_run run;
	int r;

	if ((q->l1[(off >> q->cluster_bits) / q->l2_entries] &
	    QCOW_OFFSET_MASK) == 0) {
		*skip = span - off % span;
		return IMG_ZERO;
	}
	r = qcow2_run_at(im, q, off, &run, e);
	if (r < 0)
		return r;
	*skip = run.len;
	return run.src == QCOW_SRC_ZERO ? IMG_ZERO : IMG_DATA;
}

static int
img_qcow2_map(struct img *im, uint64_t off, uint64_t *len,
    struct pep_err *e)
{
	struct qcow2 *q = im->priv;
	uint64_t run = 0, skip;
	int kind, k;

	kind = qcow2_kind(im, q, off, &run, e);
	while (kind >= 0 && run < *len) {
		k = qcow2_kind(im, q, off + run, &skip, e);
		if (k < 0)
			return k;
		if (k != kind)
			break;
		run += skip;
	}
	if (kind >= 0 && run < *len)
		*len = run;
	return kind;
}

static void
img_qcow2_close(struct img *im)
{
	struct qcow2 *q = im->priv;

	if (q == NULL)
		return;
	if (q->zs_live)
		inflateEnd(&q->zs);
	ZSTD_freeDCtx(q->zd);
	free(q->l1);
	free(q->l2);
	free(q->cbuf);
	free(q->dbuf);
	free(q);
	im->priv = NULL;
}

const struct img_ops img_qcow2_ops = {
	.name = "qcow2",
	.probe = img_qcow2_probe,
	.open = img_qcow2_open,
	.pread = img_qcow2_pread,
	.map = img_qcow2_map,
	.close = img_qcow2_close,
};
