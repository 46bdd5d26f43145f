/*
 * libFuzzer target for the container readers, seeded with qcow2 images
 * (tests/fuzz/corpus/qcow2: v2, v3, zlib and zstd compressed clusters,
 * extended L2 entries with every kind of subcluster): the input goes into
 * a memfd, is opened with img_open_fd (any format may match), and the
 * whole virtual disk is mapped and, when small enough, read. The qcow2
 * magic is forced at 0 so that mutations explore the qcow2 reader.
 */
#define FUZZ_MAGIC "QFI\xfb"	/* mutations stay in the qcow2 reader */
#include "fuzz_img.h"
