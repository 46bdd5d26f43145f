/*
 * libFuzzer target for the container readers, seeded with VHDs
 * (tests/fuzz/corpus/vhd). The body is in fuzz_img.h.
 */
#include "fuzz_img.h"
