#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "vec.h"

int
vec_room(void **v, size_t n, size_t *cap, size_t elem)
{
	size_t c;
	void *nv;

	if (n < *cap)
		return 0;
	c = *cap != 0 ? *cap : 4;
	while (c <= n) {
		if (c > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		c *= 2;
	}
	nv = realloc(*v, c * elem);
	if (nv == NULL)
		return -ENOMEM;
	*v = nv;
	*cap = c;
	return 0;
}
