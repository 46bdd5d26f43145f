/*
 * UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF. JSON text must be valid UTF-8
 * (RFC 8259 section 8.1), so every string pep puts into JSON that came
 * from outside (file names, partition names, messages quoting them) goes
 * through utf8_sanitize first.
 */
#ifndef PEP_UTF8_H
#define PEP_UTF8_H

#include <stddef.h>

/*
 * Length of the valid sequence starting at s (1 to 4), or 0 when the
 * bytes at s (n of them) do not start one.
 */
size_t utf8_seq_len(const unsigned char *s, size_t n);
/* 1 if s[0..n) is valid UTF-8, else 0. */
int utf8_valid(const char *s, size_t n);
/*
 * A malloc'd copy of the NUL-terminated s with each byte that does not
 * start a valid sequence replaced by U+FFFD (as WHATWG's decoder does for
 * each maximal invalid subpart, byte by byte); NULL when out of memory.
 */
char *utf8_sanitize(const char *s);

#endif
