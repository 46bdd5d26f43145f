#include <errno.h>

#include "frame.h"

ssize_t
frame_check(const uint8_t *buf, size_t avail, size_t max, size_t *plen)
{
	uint32_t len;

	*plen = 0;
	if (avail < FRAME_HDR)
		return 0;
	len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
	*plen = len;
	if (len > max)
		return -EMSGSIZE;
	if (avail - FRAME_HDR < len)
		return 0;
	return (ssize_t)(FRAME_HDR + (size_t)len);
}

void
frame_put_header(uint8_t hdr[FRAME_HDR], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}
