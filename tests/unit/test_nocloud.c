/*
 * nocloud_tiny_conf: every tests/data/nocloud/NAME.in must become
 * NAME.out, and NAME.out must stay as it is.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bake/edit.h"
#include "../tapdata.h"
static int
same(const char *in, size_t inlen, const char *want, size_t wantlen)
{
	char *out = NULL;
	size_t outlen = 0;
	int changed = -1, r, ok;

	r = nocloud_tiny_conf(in, inlen, &out, &outlen, &changed, NULL);
	ok = r == 0 && outlen == wantlen && memcmp(out, want, wantlen) == 0 &&
	    out[outlen] == '\0' &&
	    changed == (inlen != wantlen || memcmp(in, want, inlen) != 0);
	if (!ok && r == 0)
		printf("# got (%zu bytes):\n%.*s\n# end\n", outlen, (int)outlen,
		    out);
	free(out);
	return ok;
}

static void
one_case(const char *dir, const char *file)
{
	char pin[4096], pout[4096];
	char *in = NULL, *out = NULL;
	size_t n = strlen(file), inlen = 0, outlen = 0;

	if (n < 4 || strcmp(file + n - 3, ".in") != 0)
		return;
	if (snprintf(pin, sizeof(pin), "%s/%s", dir, file) >=
	    (int)sizeof(pin) - 1)
		return;
	snprintf(pout, sizeof(pout), "%.*s.out", (int)strlen(pin) - 3, pin);
	in = tap_slurp(pin, &inlen);
	out = tap_slurp(pout, &outlen);
	if (tap_ok(in != NULL && out != NULL, "%s: .in and .out read", file)) {
		tap_ok(same(in, inlen, out, outlen), "%s", file);
		tap_ok(same(out, outlen, out, outlen), "%s: .out is a fixed "
		    "point", file);
	}
	free(in);
	free(out);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
	char dir[4096];
	char **names = NULL, **nn;
	size_t n = 0, i;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/nocloud",
	    argc > 1 ? argv[1] : "tests/data");
	d = opendir(dir);
	if (tap_ok(d != NULL, "open %s", dir)) {
		while ((de = readdir(d)) != NULL) {
			nn = realloc(names, (n + 1) * sizeof(*names));
			if (nn == NULL)
				break;
			names = nn;
			names[n] = strdup(de->d_name);
			if (names[n] != NULL)
				n++;
		}
		closedir(d);
	}
	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		one_case(dir, names[i]);
		free(names[i]);
	}
	free(names);
	tap_ok(same("", 0, "CLOUD=nocloud\n", 14), "empty input");
	return tap_done();
}
