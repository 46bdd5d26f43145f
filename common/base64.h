/*
 * RFC 4648 base64, standard alphabet, with padding. The decoder is
 * strict: no whitespace, no missing or extra padding, no non-zero pad
 * bits, no characters outside the alphabet.
 */
#ifndef PEP_BASE64_H
#define PEP_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Longest input base64_encode accepts (its output fits a size_t). */
#define BASE64_MAX_IN ((SIZE_MAX - 1) / 4 * 3)

/* Encoded length of n bytes (no NUL); 0 if n > BASE64_MAX_IN. */
size_t base64_encoded_len(size_t n);
/* Upper bound of the decoded length of n base64 characters. */
size_t base64_decoded_max(size_t n);
/*
 * Encode n bytes into out, which must hold base64_encoded_len(n) + 1
 * bytes; out is NUL-terminated. Returns the encoded length.
 */
size_t base64_encode(const uint8_t *in, size_t n, char *out);
/*
 * Decode n characters into out (room for base64_decoded_max(n) bytes);
 * *outlen is the decoded length. 0 or -EINVAL.
 */
int base64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen);

#endif
