#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Allowed range of the second byte for each lead byte (RFC 3629 sec. 4). */
static int
utf8_second_ok(unsigned char lead, unsigned char b)
{
	switch (lead) {
	case 0xe0:
		return b >= 0xa0 && b <= 0xbf;
	case 0xed:
		return b >= 0x80 && b <= 0x9f;	/* no surrogates */
	case 0xf0:
		return b >= 0x90 && b <= 0xbf;
	case 0xf4:
		return b >= 0x80 && b <= 0x8f;	/* <= U+10FFFF */
	default:
		return b >= 0x80 && b <= 0xbf;
	}
}

size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
	size_t len, i;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len || !utf8_second_ok(s[0], s[1]))
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

int
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t k;

	while (n > 0) {
		k = utf8_seq_len(p, n);
		if (k == 0)
			return 0;
		p += k;
		n -= k;
	}
	return 1;
}

char *
utf8_sanitize(const char *s)
{
	static const char repl[] = "\xef\xbf\xbd";	/* U+FFFD */
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), k, o = 0;
	char *out = malloc(n * 3 + 1);

	if (out == NULL)
		return NULL;
	while (n > 0) {
		k = utf8_seq_len(p, n);
		if (k == 0) {
			memcpy(out + o, repl, 3);
			o += 3;
			k = 1;
		} else {
			memcpy(out + o, p, k);
			o += k;
		}
		p += k;
		n -= k;
	}
	out[o] = '\0';
	return out;
}
