/*
 * pep-bake: an Alpine cloud image (VHD, qcow2 or raw) in, a grown,
 * hvc0-console, NoCloud raw disk out. main parses arguments and calls
 * bake_run(); only this file prints or exits.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "bake.h"

enum bake_exit {
	BAKE_EXIT_OK = 0,
	BAKE_EXIT_ERROR = 1,
	BAKE_EXIT_USAGE = 2
};

enum {
	OPT_ROOT = 256,
	OPT_CONSOLE,
	OPT_EPOCH,
	OPT_JSON
};

struct bake_cli {
	struct bake_opts o;
	int json;
	int verbose;
};

/* One table drives getopt_long and --help. */
static const struct bake_option {
	struct option opt;
	int shortopt;
	const char *arg;
	const char *help;
} bake_options[] = {
	{ { "output", required_argument, NULL, 'o' }, 'o', "FILE",
	  "raw disk to write (required)" },
	{ { "size", required_argument, NULL, 's' }, 's', "SIZE",
	  "disk size, e.g. 2G (default 2G; never shrinks)" },
	{ { "root-partition", required_argument, NULL, OPT_ROOT }, 0, "N",
	  "the root partition (default: found)" },
	{ { "console", required_argument, NULL, OPT_CONSOLE }, 0, "VALUE",
	  "kernel console= value, repeatable (default hvc0)" },
	{ { "epoch", required_argument, NULL, OPT_EPOCH }, 0, "SECONDS",
	  "timestamps written (default $SOURCE_DATE_EPOCH, else the input "
	  "filesystem's)" },
	{ { "json", no_argument, NULL, OPT_JSON }, 0, NULL,
	  "print a JSON report on stdout" },
	{ { "quiet", no_argument, NULL, 'q' }, 'q', NULL,
	  "no progress or summary" },
	{ { "verbose", no_argument, NULL, 'v' }, 'v', NULL,
	  "more messages" },
	{ { "help", no_argument, NULL, 'h' }, 'h', NULL,
	  "show this help" },
	{ { "version", no_argument, NULL, 'V' }, 'V', NULL,
	  "show the version" },
};

#define NOPTS (sizeof(bake_options) / sizeof(bake_options[0]))

static void
usage(void)
{
	size_t i;
	char left[48];

	printf("usage: pep-bake [options] INPUT -o OUTPUT\n\n"
	    "Bake an Alpine cloud image (VHD, qcow2 or raw, detected by "
	    "content)\ninto a sparse raw disk: grown, console on hvc0, "
	    "NoCloud datasource.\n\n");
	for (i = 0; i < NOPTS; i++) {
		const struct bake_option *b = &bake_options[i];

		snprintf(left, sizeof(left), "%s%c%s--%s%s%s",
		    b->shortopt ? "-" : "  ", b->shortopt ? b->shortopt : ' ',
		    b->shortopt ? ", " : "  ", b->opt.name,
		    b->arg ? " " : "", b->arg ? b->arg : "");
		printf("  %-28s %s\n", left, b->help);
	}
	printf("\nExit status: 0 success, 1 error, 2 usage error.\n");
}

static _Noreturn void
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "pep-bake: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'pep-bake --help' for more information.\n");
	exit(BAKE_EXIT_USAGE);
}

/* "2G", "512M", "1048576": binary suffixes K M G T. */
static int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
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

static int
parse_num(const char *s, long long lo, long long hi, long long *out)
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

static void
parse_opt(struct bake_cli *c, int ch, const char *arg)
{
	long long n;

	switch (ch) {
	case 'o': c->o.output = arg; break;
	case 's':
		if (parse_size(arg, &c->o.size) < 0 || c->o.size == 0)
			usage_error("invalid --size '%s'", arg);
		c->o.size_set = 1;
		break;
	case OPT_ROOT:
		if (parse_num(arg, 1, LAYOUT_MAXPARTS, &n) < 0)
			usage_error("invalid --root-partition '%s'", arg);
		c->o.root_part = (int)n;
		break;
	case OPT_CONSOLE:
		if (c->o.nconsoles == BAKE_MAXCONSOLES)
			usage_error("too many --console values (%s)", arg);
		c->o.consoles[c->o.nconsoles++] = arg;
		break;
	case OPT_EPOCH:
		if (parse_num(arg, 1, INT32_MAX, &n) < 0)
			usage_error("invalid --epoch '%s'", arg);
		c->o.epoch = (time_t)n;
		break;
	case OPT_JSON: c->json = 1; break;
	case 'q': c->o.quiet = 1; break;
	case 'v': c->verbose++; break;
	case 'h': usage(); exit(BAKE_EXIT_OK);
	case 'V': printf("pep-bake %s\n", BAKE_VERSION); exit(BAKE_EXIT_OK);
	default: usage_error("%s", "invalid option");
	}
}

static void
parse_args(struct bake_cli *c, int argc, char **argv)
{
	struct option longopts[NOPTS + 1];
	char shortopts[64] = "";
	size_t i, n = 0;
	const char *env;
	long long ep;
	int ch;

	memset(longopts, 0, sizeof(longopts));
	for (i = 0; i < NOPTS; i++) {
		longopts[i] = bake_options[i].opt;
		if (bake_options[i].shortopt == 0)
			continue;
		shortopts[n++] = (char)bake_options[i].shortopt;
		if (bake_options[i].arg != NULL)
			shortopts[n++] = ':';
	}
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
		parse_opt(c, ch, optarg);
	if (optind != argc - 1)
		usage_error("%s", optind < argc ? "exactly one INPUT expected" :
		    "missing INPUT");
	c->o.input = argv[optind];
	if (c->o.output == NULL)
		usage_error("%s", "missing -o OUTPUT");
	if (c->o.nconsoles == 0)
		c->o.consoles[c->o.nconsoles++] = "hvc0";
	env = getenv("SOURCE_DATE_EPOCH");
	if (c->o.epoch == 0 && env != NULL && *env != '\0') {
		if (parse_num(env, 1, INT32_MAX, &ep) < 0)
			usage_error("invalid SOURCE_DATE_EPOCH '%s'", env);
		c->o.epoch = (time_t)ep;
	}
}

/* Built before the work starts: a handler may only write(2). */
static char sigmsg[512];
static size_t sigmsglen;

static void
on_signal(int sig)
{
	out_abort_signal();
	if (sigmsglen > 0 && write(STDERR_FILENO, sigmsg, sigmsglen) < 0)
		sigmsglen = 0;
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
install_signals(const char *output)
{
	int n = snprintf(sigmsg, sizeof(sigmsg), "pep-bake: %s: interrupted; "
	    "nothing written\n", output);

	sigmsglen = n > 0 && (size_t)n < sizeof(sigmsg) ? (size_t)n : 0;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
}

int
main(int argc, char **argv)
{
	struct bake_cli c;
	struct bake_report *r;
	struct pep_err e = { 0, "" };
	size_t i;
	char *js;
	int rc;

	memset(&c, 0, sizeof(c));
	parse_args(&c, argc, argv);
	log_init("pep-bake", c.verbose, c.o.quiet);
	install_signals(c.o.output);
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		fatal("calloc");
	rc = bake_run(&c.o, r, &e);
	if (rc < 0) {
		log_warnx("%s", e.msg[0] ? e.msg : pep_strerror(rc));
		free(r);
		return BAKE_EXIT_ERROR;
	}
	for (i = 0; i < r->nwarnings; i++)
		log_warnx("warning: %s", r->warnings[i]);
	if (c.json) {
		js = report_json(&c.o, r);
		if (js != NULL)
			printf("%s\n", js);
		free(js);
	} else if (!c.o.quiet && (c.verbose || isatty(STDERR_FILENO)))
		report_human(&c.o, r);
	free(r);
	return BAKE_EXIT_OK;
}
