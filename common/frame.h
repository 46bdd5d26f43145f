/*
 * pep's wire framing, both directions: a 4-byte big-endian length, then
 * that many bytes of JSON. Shared by pepd, its tests and load generator.
 */
#ifndef PEP_FRAME_H
#define PEP_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FRAME_HDR 4
#define FRAME_DEFAULT_MAX (16u << 20)

/*
 * Look at avail buffered bytes. Returns 0 if more bytes are needed, the
 * total length (FRAME_HDR + payload) when a whole frame is at buf, or
 * -EMSGSIZE when the announced payload exceeds max (the length is still
 * stored in *plen). *plen is the payload length once the header is in.
 */
ssize_t frame_check(const uint8_t *buf, size_t avail, size_t max,
    size_t *plen);
/* Write the 4-byte header for a payload of len bytes. */
void frame_put_header(uint8_t hdr[FRAME_HDR], uint32_t len);

#endif
