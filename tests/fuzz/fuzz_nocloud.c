/*
 * libFuzzer target for nocloud_tiny_conf, seeded with tiny-cloud.conf
 * files (tests/fuzz/corpus/nocloud). Beyond the sanitizers it checks that
 * a call succeeds or fails cleanly, that *changed tells the truth, that
 * the output is NUL-terminated, grows by a bounded amount and holds a
 * line that is exactly "CLOUD=nocloud" (LF or CRLF ended, or the last
 * line), and that a second pass over the output changes nothing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bake/edit.h"

#define FUZZ_LINE "CLOUD=nocloud"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run nocloud_tiny_conf; abort unless it succeeds or fails cleanly. */
static int
tiny_conf(const char *in, size_t inlen, char **out, size_t *outlen,
    int *changed)
{
	struct pep_err e = { 0, "" };
	int r;

	r = nocloud_tiny_conf(in, inlen, out, outlen, changed, &e);
	if (r < 0) {
		if (*out != NULL || e.msg[0] == '\0' || r != -ENOMEM)
			abort();
		return r;
	}
	if (r != 0 || *out == NULL || (*out)[*outlen] != '\0')
		abort();
	if (*changed != (*outlen != inlen ||
	    memcmp(*out, in, inlen) != 0))
		abort();
	return 0;
}

/* 1 if s[0..n) has a line that is exactly FUZZ_LINE. */
static int
has_line(const char *s, size_t n)
{
	const char *nl;
	size_t pos = 0, len, k = strlen(FUZZ_LINE);

	while (pos < n) {
		nl = memchr(s + pos, '\n', n - pos);
		len = nl != NULL ? (size_t)(nl - (s + pos)) : n - pos;
		if (nl != NULL && len > 0 && s[pos + len - 1] == '\r')
			len--;
		if (len == k && memcmp(s + pos, FUZZ_LINE, k) == 0)
			return 1;
		if (nl == NULL)
			break;
		pos = (size_t)(nl - s) + 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *out = NULL, *again = NULL;
	size_t outlen = 0, againlen = 0, lines, i;
	int changed = 0, changed2 = 0;

	if (tiny_conf(in, size, &out, &outlen, &changed) < 0)
		return 0;
	lines = 1;
	for (i = 0; i < size; i++)
		lines += in[i] == '\n';
	/* Each line may grow to FUZZ_LINE; one line may be appended. */
	if (outlen > size + (lines + 1) * (strlen(FUZZ_LINE) + 2))
		abort();
	if (!has_line(out, outlen))
		abort();
	if (tiny_conf(out, outlen, &again, &againlen, &changed2) == 0) {
		if (changed2 != 0 || againlen != outlen ||
		    memcmp(again, out, outlen) != 0)
			abort();
	}
	free(again);
	free(out);
	return 0;
}
