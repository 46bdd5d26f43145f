/*
 * Small memory helpers shared by the programs.
 */
#ifndef PEP_MEM_H
#define PEP_MEM_H

#include <stddef.h>

/* 1 if p[0..len) is all zero bytes. */
int mem_is_zero(const void *p, size_t len);

#endif
