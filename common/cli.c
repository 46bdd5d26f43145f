#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int
cli_has_short(const struct cli_option *o)
{
	return o->val > 0 && o->val < 128 && isalnum(o->val);
}

void
cli_getopt_tables(const struct cli_option *o, size_t n,
    struct option *longopts, char *shortopts)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		longopts[i].name = o[i].name;
		longopts[i].has_arg = o[i].has_arg;
		longopts[i].flag = NULL;
		longopts[i].val = o[i].val;
		if (!cli_has_short(&o[i]))
			continue;
		shortopts[k++] = (char)o[i].val;
		if (o[i].has_arg != no_argument)
			shortopts[k++] = ':';
	}
	shortopts[k] = '\0';
	memset(&longopts[n], 0, sizeof(longopts[n]));
}

#define CLI_HELP_COL	31	/* where help text starts */
#define CLI_WIDTH	79

/* Help text from column CLI_HELP_COL, wrapped at spaces before 80. */
static void
cli_print_help(FILE *f, const char *h)
{
	size_t room = CLI_WIDTH - CLI_HELP_COL, n;

	while (strlen(h) > room) {
		n = room;
		while (n > 0 && h[n] != ' ')
			n--;
		if (n == 0)	/* one long word: let it run over */
			n = strcspn(h, " ");
		fprintf(f, "%.*s\n%*s", (int)n, h, CLI_HELP_COL, "");
		h += n;
		while (*h == ' ')
			h++;
	}
	fprintf(f, "%s\n", h);
}

void
cli_print_options(FILE *f, const struct cli_option *o, size_t n)
{
	char left[64];
	size_t i;

	for (i = 0; i < n; i++) {
		if (cli_has_short(&o[i]))
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o[i].val,
			    o[i].name, o[i].arg ? " " : "",
			    o[i].arg ? o[i].arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o[i].name,
			    o[i].arg ? " " : "", o[i].arg ? o[i].arg : "");
		fprintf(f, "  %-*s ", CLI_HELP_COL - 3, left);
		cli_print_help(f, o[i].help);
	}
}

void
cli_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	exit(2);
}

int
cli_parse_num(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int
cli_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || s[0] == '-')
		return -1;
	switch (*end) {
	case 'T': case 't': shift = 40; break;
	case 'G': case 'g': shift = 30; break;
	case 'M': case 'm': shift = 20; break;
	case 'K': case 'k': shift = 10; break;
	case '\0': break;
	default: return -1;
	}
	if (*end != '\0' && end[1] != '\0' && strcmp(end + 1, "iB") != 0 &&
	    strcmp(end + 1, "B") != 0)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}
