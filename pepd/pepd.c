/*
 * pepd: the host-side Policy Enforcement Point. Parses options, loads the
 * configuration and runs the server (loop.c). "pepd --fetcher" (first and
 * only option, not in --help) is the fetcher process, which pepd starts
 * itself (fetcher.c). Exit codes: 0 ok, 1 error, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/cli.h"
#include "../common/log.h"
#include "pepd.h"

enum {
	OPT_HELP = 'h', OPT_VERSION = 'V', OPT_CONFIG = 'c',
	OPT_LISTEN = 'l', OPT_PORT = 'p', OPT_FOREGROUND = 'f',
	OPT_VERBOSE = 'v', OPT_QUIET = 'q',
	OPT_CHECK = 256, OPT_FRAME_TIMEOUT, OPT_CHECK_SANDBOX
};

/* One table drives getopt_long and --help (common/cli.h). */
static const struct cli_option opts[] = {
	{ "config", 1, OPT_CONFIG, "FILE",
	    "configuration file (default: PEP_ALLOWED_DOMAINS and "
	    "PEP_AUDIT_LOG from the environment)" },
	{ "check-config", 1, OPT_CHECK, "FILE",
	    "validate FILE, print \"configuration OK\" or the error, exit" },
	{ "check-sandbox", 0, OPT_CHECK_SANDBOX, NULL,
	    "start a fetcher as serving would, make it try what its sandbox "
	    "forbids, print what happened; exit 0 if everything was denied" },
	{ "listen", 1, OPT_LISTEN, "SPEC",
	    "tcp:HOST:PORT, unix:PATH or vsock:PORT (repeatable; replaces "
	    "the configuration's)" },
	{ "port", 1, OPT_PORT, "PORT", "same as --listen tcp:127.0.0.1:PORT" },
	{ "frame-timeout", 1, OPT_FRAME_TIMEOUT, "MS",
	    "close a connection whose frame stays incomplete (10000)" },
	{ "foreground", 0, OPT_FOREGROUND, NULL,
	    "stay in the foreground (always, for now)" },
	{ "verbose", 0, OPT_VERBOSE, NULL, "more messages (repeatable)" },
	{ "quiet", 0, OPT_QUIET, NULL, "warnings only" },
	{ "help", 0, OPT_HELP, NULL, "this help" },
	{ "version", 0, OPT_VERSION, NULL, "print the version" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

struct cli {
	struct pepd_opts o;
	const char *check;
	char *ports[CONFIG_MAXLISTEN];
	int verbose;
	int quiet;
};

static void
usage(void)
{
	printf("usage: pepd [options]\n\n"
	    "The Policy Enforcement Point: answers framed web requests by "
	    "policy,\nfetching allowed ones, and audits every request.\n\n");
	cli_print_options(stdout, opts, NOPTS);
	printf("\nSignals: HUP reloads, USR1 reopens the audit log, TERM "
	    "drains and exits.\nTwo processes: this one, and a sandboxed "
	    "fetcher it starts. See pepd(8).\n");
}

/* With msg NULL, getopt_long has already said what is wrong. */
static _Noreturn void
try_help(const char *msg)
{
	if (msg != NULL)
		cli_usage_error("pepd", "%s", msg);
	fprintf(stderr, "Try 'pepd --help' for more information.\n");
	exit(2);
}

static long
num_arg(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "pepd: bad %s: %s\n", what, s);
		try_help(NULL);
	}
	return v;
}

static void
add_listen(struct cli *c, const char *spec)
{
	if (c->o.nlisten == CONFIG_MAXLISTEN)
		try_help("too many listeners");
	c->o.listen[c->o.nlisten++] = spec;
}

static void
add_port(struct cli *c, const char *port)
{
	size_t n = c->o.nlisten;
	long p = num_arg(port, 1, 65535, "port");

	if (n == CONFIG_MAXLISTEN)
		try_help("too many listeners");
	c->ports[n] = malloc(32);
	if (c->ports[n] == NULL)
		fatalx("out of memory");
	snprintf(c->ports[n], 32, "tcp:127.0.0.1:%ld", p);
	add_listen(c, c->ports[n]);
}

static void
parse_args(int argc, char **argv, struct cli *c)
{
	struct option lo[NOPTS + 1];
	char shortopts[2 * NOPTS + 1];
	int ch;

	cli_getopt_tables(opts, NOPTS, lo, shortopts);
	while ((ch = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		switch (ch) {
		case OPT_HELP:
			usage();
			exit(0);
		case OPT_VERSION:
			printf("pepd %s\n", PEPD_VERSION);
			exit(0);
		case OPT_CONFIG:
			c->o.config_path = optarg;
			break;
		case OPT_CHECK:
			c->check = optarg;
			break;
		case OPT_CHECK_SANDBOX:
			c->o.check_sandbox = 1;
			break;
		case OPT_LISTEN:
			add_listen(c, optarg);
			break;
		case OPT_PORT:
			add_port(c, optarg);
			break;
		case OPT_FRAME_TIMEOUT:
			c->o.frame_timeout_ms = num_arg(optarg, 1, 3600000,
			    "frame timeout");
			break;
		case OPT_FOREGROUND:
			break;
		case OPT_VERBOSE:
			c->verbose++;
			break;
		case OPT_QUIET:
			c->quiet = 1;
			break;
		default:
			try_help(NULL);
		}
	}
	if (optind != argc)
		try_help("unexpected argument");
}

static int
check_config(const char *path)
{
	struct pepd_config *cfg = NULL;
	struct pep_err e = { 0 };

	if (config_load(path, &cfg, &e) < 0) {
		fprintf(stderr, "pepd: %s\n", e.msg);
		return 1;
	}
	config_free(cfg);
	printf("configuration OK\n");
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli c = { 0 };
	struct pepd *s = NULL;
	struct pep_err e = { 0 };
	int rc = 0;
	size_t i;

	if (argc >= 2 && strcmp(argv[1], "--fetcher") == 0)
		return fetcher_main(argc > 2 ? (int)strlen(argv[2]) - 1 : 0);
	parse_args(argc, argv, &c);
	log_init("pepd", c.verbose, c.quiet);
	c.o.verbose = c.verbose;
	if (c.check != NULL)
		return check_config(c.check);
	if (pepd_new(&c.o, &s, &e) < 0) {
		log_warnx("%s", e.msg);
		rc = 1;
	} else if (c.o.check_sandbox) {
		rc = pepd_check_sandbox(s);
	} else if (pepd_run(s) < 0) {
		log_warn("event loop");
		rc = 1;
	}
	pepd_free(s);
	for (i = 0; i < CONFIG_MAXLISTEN; i++)
		free(c.ports[i]);
	return rc;
}
