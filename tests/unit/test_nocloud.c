/*
 * nocloud_tiny_conf: every tests/data/nocloud/NAME.in must become
 * NAME.out, and NAME.out must stay as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bake/edit.h"
#include "../tapdata.h"

static int
same(void *arg, const char *in, size_t inlen, const char *want,
    size_t wantlen)
{
	char *out = NULL;
	size_t outlen = 0;
	int changed = -1, r, ok;

	(void)arg;
	r = nocloud_tiny_conf(in, inlen, &out, &outlen, &changed, NULL);
	ok = tap_rewrote(r, out, outlen, changed, in, inlen, want, wantlen) &&
	    out[outlen] == '\0';
	free(out);
	return ok;
}

static void
one_case(const char *dir, const char *file)
{
	tap_golden(dir, file, same, NULL);
}

int
main(int argc, char **argv)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/nocloud",
	    argc > 1 ? argv[1] : "tests/data");
	tap_each(dir, ".in", one_case);
	tap_ok(same(NULL, "", 0, "CLOUD=nocloud\n", 14), "empty input");
	return tap_done();
}
