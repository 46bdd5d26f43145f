#include <string.h>

#include "mem.h"

int
mem_is_zero(const void *p, size_t len)
{
	static const unsigned char zero[64];
	const unsigned char *b = p;

	/* Compare the head with zeros, then the rest with the head. */
	if (len <= sizeof(zero))
		return memcmp(b, zero, len) == 0;
	return memcmp(b, zero, sizeof(zero)) == 0 &&
	    memcmp(b, b + sizeof(zero), len - sizeof(zero)) == 0;
}
