/*
 * Unit tests for the generic container API (bake/img.c) and the raw, VHD
 * and qcow2 readers on images built in memory: detection, bounds checks
 * on img_pread/img_map, VHD checksums, CHS vs current_size, block
 * bitmaps, qcow2 subcluster bitmaps (random ones against a model of the
 * format, and invalid ones). The qemu-img based tests are
 * tests/cases/img_*.sh.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../bake/img.h"
#include "../tap.h"

#define T_BS 4096u
#define T_QCB 14u			/* qcow2: 16 KiB clusters */
#define T_QC (1u << T_QCB)
#define T_QSC (T_QC / 32)		/* subcluster */
#define T_QN 4u				/* virtual clusters */
#define T_QDATA (3 * T_QC)		/* host cluster of entry i: +i */

static uint8_t disk[T_QDATA + T_QN * T_QC];
static size_t disk_len;

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static void
vhd_sum(uint8_t *p, size_t n, size_t off)
{
	uint32_t s = 0;
	size_t i;

	put32(p + off, 0);
	for (i = 0; i < n; i++)
		s += p[i];
	put32(p + off, ~s);
}

/* A footer: CHS 1/1/(size/512), current_size = size, creator given. */
static void
vhd_footer(uint8_t *f, uint32_t type, uint64_t size, const char *creator)
{
	memset(f, 0, 512);
	memcpy(f, "conectix", 8);
	put32(f + 8, 2);
	put32(f + 12, 0x10000);
	put64(f + 16, type == 2 ? UINT64_MAX : 512);
	memcpy(f + 28, creator, 4);
	put64(f + 40, size);
	put64(f + 48, size);
	f[56] = 0;
	f[57] = 1;
	f[58] = 1;
	f[59] = (uint8_t)(size / 512);
	put32(f + 60, type);
	vhd_sum(f, 512, 64);
}

/* Dynamic: 4 blocks of 4 KiB, block 1 allocated with bitmap 0x5a. */
static void
make_dynamic(void)
{
	uint8_t *h = disk + 512, *bat = disk + 1536;
	size_t i;

	memset(disk, 0, sizeof(disk));
	vhd_footer(disk, 3, 4 * T_BS, "win ");
	memcpy(h, "cxsparse", 8);
	put64(h + 8, UINT64_MAX);
	put64(h + 16, 1536);
	put32(h + 24, 0x10000);
	put32(h + 28, 4);
	put32(h + 32, T_BS);
	vhd_sum(h, 1024, 36);
	memset(bat, 0xff, 512);
	put32(bat + 4, 2048 / 512);
	disk[2048] = 0x5a;
	for (i = 0; i < T_BS; i++)
		disk[2560 + i] = (uint8_t)(i / 512 + 1);
	disk_len = 2560 + T_BS + 512;
	memcpy(disk + disk_len - 512, disk, 512);
}

static int
open_mem(struct img **im, struct pep_err *e)
{
	int fd = memfd_create("t", MFD_CLOEXEC);

	if (fd < 0 || write(fd, disk, disk_len) != (ssize_t)disk_len)
		return -1;
	if (img_open_fd(im, fd, "mem", e) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
test_dynamic(void)
{
	struct pep_err e = { 0, "" };
	struct img *im = NULL;
	uint8_t buf[T_BS];
	uint64_t len = 4 * T_BS;
	int fd, ok = 1, s;

	make_dynamic();
	fd = open_mem(&im, &e);
	if (!tap_ok(fd >= 0, "dynamic VHD opens (%s)", e.msg))
		return;
	tap_ok(strcmp(im->format, "vhd-dynamic") == 0 &&
	    im->virtual_size == 4 * T_BS, "format %s, size %llu", im->format,
	    (unsigned long long)im->virtual_size);
	tap_ok(img_map(im, 0, &len, &e) == IMG_ZERO && len == T_BS,
	    "block 0 maps as zero");
	len = 100 * T_BS;
	tap_ok(img_map(im, T_BS, &len, &e) == IMG_DATA && len == T_BS,
	    "block 1 maps as data");
	tap_ok(img_pread(im, buf, T_BS, T_BS, &e) == 0, "read block 1");
	for (s = 0; s < 8; s++)
		if (buf[s * 512] != ((0x5a & (0x80 >> s)) ? s + 1 : 0))
			ok = 0;
	tap_ok(ok, "sectors with a clear bitmap bit read as zeros");
	tap_ok(img_pread(im, buf, 2, 4 * T_BS - 1, &e) < 0,
	    "read past the virtual end fails: %s", e.msg);
	len = 1;
	tap_ok(img_map(im, 4 * T_BS, &len, &e) < 0, "map at the end fails");
	img_close(im);
	close(fd);
}

static void
test_bad_sum(void)
{
	struct pep_err e = { 0, "" };
	struct img *im = NULL;
	int fd;

	make_dynamic();
	disk[disk_len - 512 + 100] ^= 1;
	fd = open_mem(&im, &e);
	tap_ok(fd < 0 && e.code == -PEP_ECORRUPT &&
	    strstr(e.msg, "footer checksum") != NULL, "bad checksum: %s",
	    e.msg);
}

static void
test_chs(void)
{
	struct pep_err e = { 0, "" };
	struct img *im = NULL;
	int fd;

	memset(disk, 0, sizeof(disk));
	vhd_footer(disk + 8192, 2, 8192, "vpc ");
	disk[8192 + 59] = 15;	/* CHS 15 sectors < current_size 16 */
	vhd_sum(disk + 8192, 512, 64);
	disk_len = 8192 + 512;
	fd = open_mem(&im, &e);
	tap_ok(fd >= 0 && im->virtual_size == 15 * 512,
	    "\"vpc \" fixed VHD: CHS size (%s)", e.msg);
	img_close(im);
	if (fd >= 0)
		close(fd);
}

/*
 * A raw file whose data is followed by a hole up to its end (truncate
 * -s, a sparse copy): the hole maps as zero, to the end, so nothing is
 * read for it and the output stays sparse.
 */
static void
test_raw_hole_tail(void)
{
	struct pep_err e = { 0, "" };
	struct img *im = NULL;
	uint64_t size = 1 << 20, len;
	int fd = memfd_create("t", MFD_CLOEXEC), kind = -1, head = -1;

	if (fd >= 0 && write(fd, disk, 4096) == 4096 &&
	    ftruncate(fd, (off_t)size) == 0 &&
	    img_open_fd(&im, fd, "mem", &e) == 0) {
		len = size;
		head = img_map(im, 0, &len, &e);
		tap_ok(head == IMG_DATA && len == 4096,
		    "raw, data then a hole to the end: the data (%llu bytes)",
		    (unsigned long long)len);
		len = size - 4096;
		kind = img_map(im, 4096, &len, &e);
		tap_ok(kind == IMG_ZERO && len == size - 4096,
		    "raw, data then a hole to the end: the hole maps as zero, "
		    "to the end (%s, %llu bytes)", kind == IMG_ZERO ? "zero" :
		    "data", (unsigned long long)len);
	} else {
		tap_ok(0, "raw with a hole to the end: open: %s", e.msg);
	}
	img_close(im);
	if (fd >= 0)
		close(fd);
}

static void
test_raw(void)
{
	struct pep_err e = { 0, "" };
	struct img *im = NULL;
	int fd;

	memset(disk, 0, sizeof(disk));
	disk_len = 4096;
	fd = open_mem(&im, &e);
	tap_ok(fd < 0 && strstr(e.msg, "not a disk image") != NULL,
	    "zeros are not a disk: %s", e.msg);
	disk[1080] = 0x53;
	disk[1081] = 0xef;
	fd = open_mem(&im, &e);
	tap_ok(fd >= 0 && strcmp(im->format, "raw") == 0,
	    "ext superblock magic: raw");
	img_close(im);
	if (fd >= 0)
		close(fd);
	img_close(NULL);
	test_raw_hole_tail();
}

/* ---------------------------------------------------------- qcow2 */

static uint32_t t_seed = 12345;

static uint32_t
t_rand(void)
{
	t_seed = t_seed * 1103515245u + 12345u;
	return (t_seed >> 16) | (t_seed << 16);
}

/* v3, extended L2, 16 KiB clusters, T_QN clusters: header, L1, L2. */
static void
qcow2_base(void)
{
	memset(disk, 0, sizeof(disk));
	put32(disk, 0x514649fb);
	put32(disk + 4, 3);
	put32(disk + 20, T_QCB);
	put64(disk + 24, T_QN * T_QC);
	put32(disk + 36, 1);
	put64(disk + 40, T_QC);			/* L1 */
	put64(disk + 48, T_QC);			/* refcount table: unused */
	put32(disk + 56, 1);
	put64(disk + 72, 16);			/* extended L2 */
	put32(disk + 96, 4);
	put32(disk + 100, 112);
	put64(disk + T_QC, (1ull << 63) | 2 * T_QC);
	disk_len = sizeof(disk);
}

static void
qcow2_entry(unsigned i, uint64_t desc, uint64_t bitmap)
{
	put64(disk + 2 * T_QC + 16 * i, desc);
	put64(disk + 2 * T_QC + 16 * i + 8, bitmap);
}

/*
 * Random valid entries: cluster 1 unallocated (zero bits only), the others
 * at their host cluster with random allocated and zero bits; every host
 * byte non-zero. *alloc gets each cluster's allocated bits.
 */
static void
qcow2_random(uint32_t *alloc)
{
	uint32_t a, z;
	unsigned i;

	qcow2_base();
	for (i = 0; i < T_QN * T_QC; i++)
		disk[T_QDATA + i] = (uint8_t)(t_rand() | 1);
	for (i = 0; i < T_QN; i++) {
		a = i == 1 ? 0 : t_rand() & t_rand();
		if (i == 2)
			a = ~a;
		z = t_rand() & ~a;
		alloc[i] = a;
		qcow2_entry(i, i == 1 ? 0 : (1ull << 63) | (T_QDATA + i * T_QC),
		    (uint64_t)z << 32 | a);
	}
}

/* 1 if the bytes at virtual offset off are data (allocated subcluster). */
static int
qcow2_model_data(const uint32_t *alloc, uint64_t off)
{
	return (alloc[off / T_QC] >> (off % T_QC / T_QSC)) & 1;
}

/* pread in odd chunks agrees with the model, byte for byte. */
static int
qcow2_check_read(struct img *im, const uint32_t *alloc)
{
	static uint8_t buf[T_QN * T_QC];
	struct pep_err e;
	uint64_t off;
	size_t n;

	for (off = 0; off < sizeof(buf); off += n) {
		n = sizeof(buf) - off < 3001 ? sizeof(buf) - off : 3001;
		if (img_pread(im, buf + off, n, off, &e) < 0)
			return 0;
	}
	for (off = 0; off < sizeof(buf); off++)
		if (buf[off] != (qcow2_model_data(alloc, off) ?
		    disk[T_QDATA + off] : 0))
			return 0;
	return 1;
}

/* img_map's runs are the model's runs, merged: same kind, maximal. */
static int
qcow2_check_map(struct img *im, const uint32_t *alloc)
{
	struct pep_err e;
	uint64_t off = 0, len, i;
	int kind;

	while (off < T_QN * T_QC) {
		len = T_QN * T_QC - off;
		kind = img_map(im, off, &len, &e);
		if (kind < 0 || len == 0)
			return 0;
		for (i = off; i < off + len; i += T_QSC)
			if (qcow2_model_data(alloc, i) != (kind == IMG_DATA))
				return 0;
		off += len;
		if (off < T_QN * T_QC &&
		    qcow2_model_data(alloc, off) == (kind == IMG_DATA))
			return 0;
	}
	return 1;
}

static void
test_qcow2_subclusters(void)
{
	struct pep_err e = { 0, "" };
	struct img *im = NULL;
	uint32_t alloc[T_QN];
	int round, fd, rd = 1, mp = 1, op = 1;

	for (round = 0; round < 64; round++) {
		qcow2_random(alloc);
		fd = open_mem(&im, &e);
		if (fd < 0) {
			op = 0;
			continue;
		}
		rd &= qcow2_check_read(im, alloc);
		mp &= qcow2_check_map(im, alloc);
		img_close(im);
		close(fd);
	}
	tap_ok(op, "64 qcow2 images with random subcluster bitmaps open (%s)",
	    e.msg);
	tap_ok(rd, "they read as the model says: allocated subclusters from "
	    "the host cluster, the others as zeros");
	tap_ok(mp, "their maps are the model's runs: data where allocated");
}

/*
 * Open the image in disk: 1 if reading it all and mapping it both fail
 * with PEP_ECORRUPT and one message naming the file and holding want.
 */
static int
qcow2_refused(const char *want)
{
	static uint8_t buf[T_QN * T_QC];
	struct pep_err e = { 0, "" }, e2 = { 0, "" };
	struct img *im = NULL;
	uint64_t len, off = 0;
	int fd, ok, kind = 0;

	fd = open_mem(&im, &e);
	if (fd < 0)
		return 0;
	ok = img_pread(im, buf, sizeof(buf), 0, &e) == -PEP_ECORRUPT;
	while (off < T_QN * T_QC) {
		len = T_QN * T_QC - off;
		kind = img_map(im, off, &len, &e2);
		if (kind < 0)
			break;
		off += len;
	}
	ok = ok && kind == -PEP_ECORRUPT && strstr(e.msg, want) != NULL &&
	    strcmp(e.msg, e2.msg) == 0 && strncmp(e.msg, "mem: ", 5) == 0;
	printf("# %s\n", e.msg);
	img_close(im);
	close(fd);
	return ok;
}

static void
test_qcow2_invalid(void)
{
	struct pep_err e = { 0, "" };
	struct img *im = NULL;
	uint32_t alloc[T_QN];
	int fd;

	qcow2_random(alloc);
	qcow2_entry(2, (1ull << 63) | (T_QDATA + 2 * T_QC),
	    0x00000100ffffffffull);
	tap_ok(qcow2_refused("in the L2 entry at offset 0x8020: subcluster 8 "
	    "is both allocated and zero"), "a subcluster both allocated and "
	    "zero is refused");
	qcow2_random(alloc);
	qcow2_entry(1, 0, 1ull << 31);
	tap_ok(qcow2_refused("in the L2 entry at offset 0x8010: subcluster 31 "
	    "is allocated in an unallocated cluster"), "an allocated "
	    "subcluster in an unallocated cluster is refused");
	qcow2_random(alloc);
	qcow2_entry(3, (1ull << 62) | (T_QDATA + 3 * T_QC), 1ull << 40);
	tap_ok(qcow2_refused("L2 entry at offset 0x8030: compressed cluster "
	    "with a non-zero subcluster bitmap"), "a compressed cluster with "
	    "a subcluster bitmap is refused");
	qcow2_base();
	put32(disk + 20, T_QCB - 1);
	fd = open_mem(&im, &e);
	tap_ok(fd < 0 && e.code == -PEP_ECORRUPT &&
	    strstr(e.msg, "at least 16 KiB") != NULL,
	    "extended L2 with 8 KiB clusters is refused: %s", e.msg);
}

int
main(void)
{
	test_dynamic();
	test_bad_sum();
	test_chs();
	test_raw();
	test_qcow2_subclusters();
	test_qcow2_invalid();
	return tap_done();
}
