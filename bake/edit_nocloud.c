/*
 * Selecting tiny-cloud's NoCloud datasource in /etc/tiny-cloud.conf, the
 * way the tiny-cloud-nocloud package's post-install does it
 * (sed "s/^#?CLOUD=.*$/CLOUD=nocloud/"), but without package scripts.
 *
 * The file is sourced by sh, so the last active assignment wins: every
 * active CLOUD= line becomes CLOUD=nocloud. Without one, the first
 * commented "#CLOUD=" line is switched on instead; without that either,
 * the line is appended. Other bytes, and CRLF line ends, are kept.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "edit.h"

#define NOCLOUD_LINE "CLOUD=nocloud"

enum cloud_line {
	CLOUD_NONE,
	CLOUD_ACTIVE,		/* [ \t]*CLOUD= */
	CLOUD_COMMENT		/* #[ \t]*CLOUD= */
};

static enum cloud_line
classify(const char *s, size_t n)
{
	size_t i = 0;
	int hash = 0;

	if (n > 0 && s[0] == '#') {
		hash = 1;
		i = 1;
	}
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (n - i < 6 || memcmp(s + i, "CLOUD=", 6) != 0)
		return CLOUD_NONE;
	return hash ? CLOUD_COMMENT : CLOUD_ACTIVE;
}

/* Which lines to replace: CLOUD_ACTIVE ones, else the first comment. */
static enum cloud_line
pick(const char *in, size_t inlen, size_t *first_comment)
{
	size_t pos = 0, n, eol;
	enum cloud_line c, want = CLOUD_NONE;

	while (pos < inlen) {
		edit_next_line(in, inlen, pos, &n, &eol);
		c = classify(in + pos, n);
		if (c == CLOUD_ACTIVE)
			return CLOUD_ACTIVE;
		if (c == CLOUD_COMMENT && want == CLOUD_NONE) {
			want = CLOUD_COMMENT;
			*first_comment = pos;
		}
		pos += eol;
	}
	return want;
}

/* Copy in to out replacing the chosen lines; out has room. */
static size_t
replace(const char *in, size_t inlen, enum cloud_line want, size_t at,
    char *out)
{
	size_t pos = 0, o = 0, n, eol;
	int hit;

	while (pos < inlen) {
		edit_next_line(in, inlen, pos, &n, &eol);
		if (want == CLOUD_ACTIVE)
			hit = classify(in + pos, n) == CLOUD_ACTIVE;
		else
			hit = want == CLOUD_COMMENT && pos == at;
		if (hit) {
			memcpy(out + o, NOCLOUD_LINE, strlen(NOCLOUD_LINE));
			o += strlen(NOCLOUD_LINE);
		} else {
			memcpy(out + o, in + pos, n);
			o += n;
		}
		memcpy(out + o, in + pos + n, eol - n);
		o += eol - n;
		pos += eol;
	}
	return o;
}

int
nocloud_tiny_conf(const char *in, size_t inlen, char **out, size_t *outlen,
    int *changed, struct pep_err *e)
{
	enum cloud_line want;
	size_t at = 0, nlines = 1, i, o;
	char *b;

	*out = NULL;
	*outlen = 0;
	*changed = 0;
	for (i = 0; i < inlen; i++)
		nlines += in[i] == '\n';
	/* Worst case: every line replaced, plus an appended "\nCLOUD=...\n" */
	b = malloc(inlen + (nlines + 1) * (strlen(NOCLOUD_LINE) + 2) + 1);
	if (b == NULL)
		return pep_errf(e, ENOMEM, "tiny-cloud.conf: out of memory");
	want = pick(in, inlen, &at);
	o = replace(in, inlen, want, at, b);
	if (want == CLOUD_NONE) {
		if (inlen > 0 && in[inlen - 1] != '\n')
			b[o++] = '\n';
		memcpy(b + o, NOCLOUD_LINE "\n", strlen(NOCLOUD_LINE) + 1);
		o += strlen(NOCLOUD_LINE) + 1;
	}
	b[o] = '\0';
	*out = b;
	*outlen = o;
	*changed = o != inlen || memcmp(b, in, inlen) != 0;
	return 0;
}
