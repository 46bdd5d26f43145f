/*
 * Line scanning shared by the text editors (edit_console.c,
 * edit_nocloud.c): configuration files are edited line by line, keeping
 * each line's own ending (LF or CRLF) byte for byte.
 */
#include <string.h>

#include "edit.h"

void
edit_next_line(const char *in, size_t inlen, size_t pos, size_t *n,
    size_t *eol)
{
	const char *nl;
	size_t len;

	nl = memchr(in + pos, '\n', inlen - pos);
	len = nl != NULL ? (size_t)(nl - (in + pos)) : inlen - pos;
	*eol = len + (nl != NULL);
	if (nl != NULL && len > 0 && in[pos + len - 1] == '\r')
		len--;
	*n = len;
}
