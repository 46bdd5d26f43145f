/*
 * libFuzzer target for the connection read path: the input is a byte
 * stream from a peer, fed in chunks (sizes from a small generator seeded
 * by the first byte) into a buffer the way a connection accumulates
 * reads. Each complete frame goes through proto_parse_request; a parsed
 * request is answered with a response frame built from its own headers
 * and body, a refused one with a bad_request refusal frame; an oversize
 * announcement ends the stream as pepd closes the connection. Beyond the
 * sanitizers it checks that every frame built is well formed and that a
 * refusal always carries a message.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../pepd/pepd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_FRAME 65536

static void
check_frame(const struct pep_frame *f)
{
	size_t plen;

	if (frame_check(f->data, f->len, UINT32_MAX, &plen) !=
	    (ssize_t)f->len || plen + FRAME_HDR != f->len ||
	    f->data[FRAME_HDR] != '{' || f->data[f->len - 1] != '}')
		abort();
}

static void
answer(const uint8_t *payload, size_t len, const struct pep_limits *lim)
{
	struct pep_request r;
	struct pep_err e = { 0, "" };
	struct pep_frame f;
	int rc;

	rc = proto_parse_request(payload, len, lim, &r, &e);
	if (rc < 0) {
		if (e.msg[0] == '\0' || r.method != NULL || r.url != NULL)
			abort();
		rc = proto_refusal(PEP_BAD_REQUEST, e.msg, &f);
	} else {
		if (r.method == NULL || r.url == NULL ||
		    r.nheaders > lim->max_headers)
			abort();
		rc = proto_response(200, r.headers, r.nheaders, r.headers,
		    r.nheaders > 2 ? 2 : r.nheaders, r.body, r.body_len, &f);
		proto_request_free(&r);
	}
	if (rc == -ENOMEM)
		return;
	if (rc < 0)
		abort();
	check_frame(&f);
	free(f.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pep_limits lim;
	uint8_t *buf;
	size_t have = 0, off = 1, chunk, plen;
	uint32_t rng;
	ssize_t n;

	if (size < 1)
		return 0;
	limits_default(&lim);
	lim.max_frame = FUZZ_MAX_FRAME;
	lim.max_headers = 16;
	lim.max_header_bytes = 1024;
	buf = malloc(size);
	if (buf == NULL)
		return 0;
	rng = data[0] * 2654435761u + 1;
	while (off < size) {
		rng = rng * 1103515245u + 12345u;
		chunk = 1 + (rng >> 16) % 64;
		if (chunk > size - off)
			chunk = size - off;
		memcpy(buf + have, data + off, chunk);
		have += chunk;
		off += chunk;
		for (;;) {
			n = frame_check(buf, have, lim.max_frame, &plen);
			/* Oversize: pepd answers, then closes. */
			if (n == -EMSGSIZE)
				goto out;
			if (n < 0 || (n > 0 && (size_t)n != plen + FRAME_HDR))
				abort();
			if (n == 0)
				break;
			answer(buf + FRAME_HDR, plen, &lim);
			memmove(buf, buf + n, have - (size_t)n);
			have -= (size_t)n;
		}
	}
out:
	free(buf);
	return 0;
}
