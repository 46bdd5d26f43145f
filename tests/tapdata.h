/*
 * Reading test data files (tests/data/...), shared by the C unit tests:
 * cases live in files, the tests only walk them.
 */
#ifndef PEP_TAPDATA_H
#define PEP_TAPDATA_H

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

#endif
