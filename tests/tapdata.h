/*
 * Reading test data files (tests/data/...), shared by the C unit tests:
 * cases live in files, the tests only walk them.
 */
#ifndef PEP_TAPDATA_H
#define PEP_TAPDATA_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* A whole file, malloc'd with room for a NUL; NULL if unreadable. */
static inline char *
tap_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		n = ftell(f);
		if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
			b = malloc((size_t)n + 1);
			if (b != NULL &&
			    fread(b, 1, (size_t)n, f) != (size_t)n) {
				free(b);
				b = NULL;
			}
			*len = (size_t)n;
		}
	}
	fclose(f);
	return b;
}

/* The next line of a data file that is neither a # comment nor blank. */
static inline char *
tap_line(char *line, int size, FILE *fp)
{
	while (fgets(line, size, fp) != NULL)
		if (line[0] != '#' && line[0] != '\n')
			return line;
	return NULL;
}

/* Split line at tabs into at most max fields; returns the count. */
static inline int
tap_split(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;

	line[strcspn(line, "\n")] = '\0';
	while (n < max) {
		f[n++] = p;
		p = strchr(p, '\t');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	return n;
}

/* dir/sub/name opened for reading, with a TAP line saying so. */
static inline FILE *
tap_open_data(const char *dir, const char *sub, const char *name)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	fp = fopen(path, "r");
	tap_ok(fp != NULL, "open %s", path);
	return fp;
}

static inline int
tap_by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The names in dir that end in suffix (after at least one character),
 * sorted, with a TAP line for opening dir: *n of them, malloc'd (free
 * with tap_names_free); NULL if there are none.
 */
static inline char **
tap_names(const char *dir, const char *suffix, size_t *n)
{
	size_t sl = strlen(suffix), l;
	char **names = NULL, **nn;
	struct dirent *de;
	DIR *d;

	*n = 0;
	d = opendir(dir);
	if (!tap_ok(d != NULL, "open %s", dir))
		return NULL;
	while ((de = readdir(d)) != NULL) {
		l = strlen(de->d_name);
		if (l <= sl || strcmp(de->d_name + l - sl, suffix) != 0)
			continue;
		nn = realloc(names, (*n + 1) * sizeof(*names));
		if (nn == NULL)
			break;
		names = nn;
		names[*n] = strdup(de->d_name);
		if (names[*n] != NULL)
			(*n)++;
	}
	closedir(d);
	if (*n > 0)
		qsort(names, *n, sizeof(*names), tap_by_name);
	return names;
}

static inline void
tap_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* fn(dir, name) for each of tap_names(dir, suffix), in order. */
static inline void
tap_each(const char *dir, const char *suffix,
    void (*fn)(const char *, const char *))
{
	char **names;
	size_t n, i;

	names = tap_names(dir, suffix, &n);
	for (i = 0; i < n; i++)
		fn(dir, names[i]);
	tap_names_free(names, n);
}

/*
 * A text rewrite's result (r, out, changed) against want: r is 0, out is
 * want byte for byte and changed says whether want differs from in. If
 * r is 0 but the result is not that, out is printed as a TAP comment.
 */
static inline int
tap_rewrote(int r, const char *out, size_t outlen, int changed,
    const char *in, size_t inlen, const char *want, size_t wantlen)
{
	int ok;

	ok = r == 0 && outlen == wantlen && memcmp(out, want, wantlen) == 0 &&
	    changed == (inlen != wantlen || memcmp(in, want, inlen) != 0);
	if (!ok && r == 0)
		printf("# got (%zu bytes):\n%.*s\n# end\n", outlen,
		    (int)outlen, out);
	return ok;
}

/*
 * A golden-file case: dir/NAME.in (file) must become dir/NAME.out, and
 * NAME.out must stay as it is; same(arg, in, inlen, want, wantlen) is 1
 * if the code under test turns in into want. A name longer than a path
 * is passed over.
 */
static inline void
tap_golden(const char *dir, const char *file,
    int (*same)(void *, const char *, size_t, const char *, size_t),
    void *arg)
{
	char pin[4096], pout[4096];
	char *in = NULL, *out = NULL;
	size_t inlen = 0, outlen = 0;

	if (snprintf(pin, sizeof(pin), "%s/%s", dir, file) >=
	    (int)sizeof(pin) - 1)
		return;
	snprintf(pout, sizeof(pout), "%.*s.out", (int)strlen(pin) - 3, pin);
	in = tap_slurp(pin, &inlen);
	out = tap_slurp(pout, &outlen);
	if (tap_ok(in != NULL && out != NULL, "%s: .in and .out read", file)) {
		tap_ok(same(arg, in, inlen, out, outlen), "%s", file);
		tap_ok(same(arg, out, outlen, out, outlen),
		    "%s: .out is a fixed point", file);
	}
	free(in);
	free(out);
}

#endif
