/*
 * Growing arrays: the one helper for "make room for one more element".
 * An array is a pointer, a count and a capacity kept by the caller; the
 * capacity doubles (from 8) as needed.
 */
#ifndef PEP_VEC_H
#define PEP_VEC_H

#include <stddef.h>

/*
 * Make *v (capacity *cap elements of elem bytes, n of them used) hold at
 * least n + 1. Returns 0, or -ENOMEM with *v and *cap left as they were.
 */
int vec_room(void **v, size_t n, size_t *cap, size_t elem);

#endif
