/*
 * libFuzzer target for console_rewrite, seeded with bootloader configs
 * (tests/fuzz/corpus/console). The first input byte picks the file kind
 * (bits 0-1) and the console list (bits 2-3); the rest is the file text.
 * Beyond the sanitizers it checks that a call succeeds or fails cleanly,
 * that *changed tells the truth, that the output is NUL-terminated and
 * grows by at most one console list (plus a blank and two quotes) per
 * line, and that a second rewrite of the output changes nothing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bake/edit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const cons_hvc[] = { "hvc0" };
static const char *const cons_tty[] = { "ttyS0,115200n8" };
static const char *const cons_two[] = { "hvc0", "ttyS0,115200n8" };
static const char *const cons_rev[] = { "ttyS0,115200n8", "hvc0" };

static const struct {
	const char *const *v;
	size_t n;
} cons_sets[4] = {
	{ cons_hvc, 1 },
	{ cons_tty, 1 },
	{ cons_two, 2 },
	{ cons_rev, 2 },
};

static const enum console_file kinds[4] = {
	CONSOLE_GRUB_CFG,
	CONSOLE_DEFAULT_GRUB,
	CONSOLE_EXTLINUX,
	CONSOLE_UPDATE_EXTLINUX
};

/* Length of "console=A console=B" for the list. */
static size_t
list_len(const char *const *v, size_t n)
{
	size_t i, len = 0;

	for (i = 0; i < n; i++)
		len += (i > 0) + strlen("console=") + strlen(v[i]);
	return len;
}

/* Run console_rewrite; abort unless it succeeds or fails cleanly. */
static int
rewrite(enum console_file kind, const char *in, size_t inlen,
    const char *const *v, size_t n, char **out, size_t *outlen,
    int *changed)
{
	struct pep_err e = { 0, "" };
	int r;

	r = console_rewrite(kind, in, inlen, v, n, out, outlen, changed, &e);
	if (r < 0) {
		/* Only running out of memory may fail with valid args. */
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	const char *const *v;
	enum console_file kind;
	char *out = NULL, *again = NULL;
	size_t inlen, outlen = 0, againlen = 0, n, lines, i;
	int changed = 0, changed2 = 0;

	if (size < 1)
		return 0;
	kind = kinds[data[0] & 3];
	v = cons_sets[(data[0] >> 2) & 3].v;
	n = cons_sets[(data[0] >> 2) & 3].n;
	inlen = size - 1;
	if (rewrite(kind, in, inlen, v, n, &out, &outlen, &changed) < 0)
		return 0;
	lines = 1;
	for (i = 0; i < inlen; i++)
		lines += in[i] == '\n';
	if (outlen > inlen + lines * (list_len(v, n) + 3))
		abort();
	if (rewrite(kind, out, outlen, v, n, &again, &againlen,
	    &changed2) == 0) {
		if (changed2 != 0 || againlen != outlen ||
		    memcmp(again, out, outlen) != 0)
			abort();
	}
	free(again);
	free(out);
	return 0;
}
