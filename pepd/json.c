/*
 * JSON text written straight into one growing buffer: response frames
 * (proto.c), audit lines (audit.c), OPA input (opa.c). Errors are sticky
 * (b->err), so a writer checks once at the end. Two kinds of strings:
 * byte strings (HTTP field names and values, each byte one code point,
 * ISO 8859-1 like the Fetch standard's ByteString) and text, which is
 * always written as valid UTF-8 (RFC 8259 8.1): a byte that does not
 * start a valid sequence becomes U+FFFD.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/base64.h"
#include "../common/utf8.h"
#include "pepd.h"

static const char jb_hex[] = "0123456789abcdef";

int
jb_init(struct jbuf *b, size_t guess)
{
	memset(b, 0, sizeof(*b));
	return jb_reserve(b, guess < 64 ? 64 : guess);
}

int
jb_reserve(struct jbuf *b, size_t more)
{
	size_t cap;
	uint8_t *np;

	if (b->err != 0)
		return -1;
	if (more <= b->cap - b->len)
		return 0;
	if (more > SIZE_MAX / 2 - b->len) {
		b->err = -EMSGSIZE;
		return -1;
	}
	cap = b->cap * 2 > b->len + more ? b->cap * 2 : b->len + more;
	np = realloc(b->p, cap);
	if (np == NULL) {
		b->err = -ENOMEM;
		return -1;
	}
	b->p = np;
	b->cap = cap;
	return 0;
}

void
jb_put(struct jbuf *b, const void *s, size_t n)
{
	if (jb_reserve(b, n) < 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

void
jb_puts(struct jbuf *b, const char *s)
{
	jb_put(b, s, strlen(s));
}

/* The escape of an ASCII byte that JSON needs escaped, else 0. */
static size_t
jb_escape(unsigned char c, char esc[6])
{
	if (c == '"' || c == '\\') {
		esc[0] = '\\';
		esc[1] = (char)c;
		return 2;
	}
	if (c >= 0x20 && c != 0x7f)
		return 0;
	memcpy(esc, "\\u00", 4);
	esc[4] = jb_hex[c >> 4];
	esc[5] = jb_hex[c & 15];
	return 6;
}

/* Does this byte go into a JSON string as itself? (ASCII, no escape) */
static int
jb_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

void
jb_bytestr(struct jbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *run;
	char esc[6], u8[2];
	size_t n;

	jb_put(b, "\"", 1);
	for (;;) {
		for (run = p; jb_plain(*p); p++)
			;
		if (p > run)
			jb_put(b, run, (size_t)(p - run));
		if (*p == '\0')
			break;
		n = jb_escape(*p, esc);
		if (n > 0) {
			jb_put(b, esc, n);
		} else {	/* >= 0x80: one code point U+0080..U+00FF */
			u8[0] = (char)(0xc0 | (*p >> 6));
			u8[1] = (char)(0x80 | (*p & 0x3f));
			jb_put(b, u8, 2);
		}
		p++;
	}
	jb_put(b, "\"", 1);
}

void
jb_str(struct jbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *run;
	char esc[6];
	size_t k;

	jb_put(b, "\"", 1);
	for (;;) {
		for (run = p; jb_plain(*p); p++)
			;
		if (p > run)
			jb_put(b, run, (size_t)(p - run));
		if (*p == '\0')
			break;
		if (*p < 0x80) {
			jb_put(b, esc, jb_escape(*p, esc));
			p++;
			continue;
		}
		/* a NUL ends a truncated sequence before it is read past */
		k = utf8_seq_len(p, 4);
		if (k == 0) {
			jb_put(b, "\xef\xbf\xbd", 3);
			k = 1;
		} else {
			jb_put(b, p, k);
		}
		p += k;
	}
	jb_put(b, "\"", 1);
}

void
jb_str_or_null(struct jbuf *b, const char *s)
{
	if (s == NULL || s[0] == '\0')
		jb_put(b, "null", 4);
	else
		jb_str(b, s);
}

/* Decimal digits of v at the end of buf[24]; returns where they start. */
static char *
u64_digits(uint64_t v, char buf[24])
{
	char *d = buf + 24;

	do {
		*--d = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	return d;
}

void
jb_u64(struct jbuf *b, uint64_t v)
{
	char buf[24], *d = u64_digits(v, buf);

	jb_put(b, d, (size_t)(buf + 24 - d));
}

void
jb_ms(struct jbuf *b, uint64_t us)
{
	char frac[4];
	unsigned int f = (unsigned int)(us % 1000);

	jb_u64(b, us / 1000);
	frac[0] = '.';
	frac[1] = (char)('0' + f / 100);
	frac[2] = (char)('0' + f / 10 % 10);
	frac[3] = (char)('0' + f % 10);
	jb_put(b, frac, 4);
}

void
jb_base64(struct jbuf *b, const uint8_t *d, size_t n)
{
	size_t el = base64_encoded_len(n);

	if (n > 0 && el == 0) {
		b->err = -EMSGSIZE;
		return;
	}
	jb_put(b, "\"", 1);
	if (jb_reserve(b, el + 1) < 0)
		return;
	b->len += base64_encode(d, n, (char *)b->p + b->len);
	jb_put(b, "\"", 1);
}

void
jb_free(struct jbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
