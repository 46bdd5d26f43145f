/*
 * Unit tests for the generic container API (bake/img.c) and the raw and
 * VHD readers on images built in memory: detection, bounds checks on
 * img_pread/img_map, VHD checksums, CHS vs current_size, block bitmaps.
 * The qemu-img based tests are tests/cases/img_*.sh.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../bake/bake.h"
#include "../tap.h"

#define T_BS 4096u

static uint8_t disk[64 << 10];
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
}

int
main(void)
{
	test_dynamic();
	test_bad_sum();
	test_chs();
	test_raw();
	return tap_done();
}
