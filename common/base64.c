#include <errno.h>

#include "base64.h"

static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
base64_encoded_len(size_t n)
{
	if (n > BASE64_MAX_IN)
		return 0;
	return (n + 2) / 3 * 4;
}

size_t
base64_decoded_max(size_t n)
{
	return n / 4 * 3;
}

size_t
base64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = b64_alpha[v >> 18];
		out[o++] = b64_alpha[(v >> 12) & 63];
		out[o++] = b64_alpha[(v >> 6) & 63];
		out[o++] = b64_alpha[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64_alpha[v >> 18];
		out[o++] = b64_alpha[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alpha[v >> 18];
		out[o++] = b64_alpha[(v >> 12) & 63];
		out[o++] = b64_alpha[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

/* The 6-bit value of c, or -1. */
static int
b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode one quantum of 4 characters; last says padding may appear. */
static int
b64_quantum(const char *in, int last, uint8_t *out, size_t *o)
{
	int v[4], i, npad = 0;
	uint32_t w;

	for (i = 0; i < 4; i++) {
		if (last && i >= 2 && in[i] == '=') {
			npad++;
			v[i] = 0;
			continue;
		}
		if (npad > 0)
			return -EINVAL;	/* data after '=' */
		v[i] = b64_val((unsigned char)in[i]);
		if (v[i] < 0)
			return -EINVAL;
	}
	w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
	    (uint32_t)v[2] << 6 | (uint32_t)v[3];
	/* The bits under the padding must be zero (canonical form). */
	if ((npad == 1 && (w & 0xff) != 0) ||
	    (npad == 2 && (w & 0xffff) != 0))
		return -EINVAL;
	out[(*o)++] = (uint8_t)(w >> 16);
	if (npad < 2)
		out[(*o)++] = (uint8_t)(w >> 8);
	if (npad < 1)
		out[(*o)++] = (uint8_t)w;
	return 0;
}

int
base64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen)
{
	size_t i, o = 0;
	int r;

	*outlen = 0;
	if (n % 4 != 0)
		return -EINVAL;
	for (i = 0; i < n; i += 4) {
		r = b64_quantum(in + i, i + 4 == n, out, &o);
		if (r < 0)
			return r;
	}
	*outlen = o;
	return 0;
}
