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

#include "../common/cli.h"
#include "../common/log.h"
#include "../common/vec.h"
#include "bake.h"
#include "edit.h"
#include "ext4.h"
#include "report.h"
#include "recipe.h"

enum bake_exit {
	BAKE_EXIT_OK = 0,
	BAKE_EXIT_ERROR = 1,
	BAKE_EXIT_USAGE = 2
};

/* Content operations take option values from OPT_CONTENT on, in the
 * order of enum content_kind. */
enum {
	OPT_ROOT = 256,
	OPT_CONSOLE,
	OPT_EPOCH,
	OPT_JSON,
	OPT_NO_PEXI,
	OPT_GUEST_DIR,
	OPT_RECIPE,
	OPT_ARCH,
	OPT_BOOTSTRAP,
	OPT_CONTENT = 512
};

struct bake_cli {
	struct bake_opts o;
	struct content_op *ops;	/* the command line's, each owning own */
	size_t nops, capops;
	const char *recipe_path;
	struct recipe *recipe;
	struct content_op *merged;	/* the recipe's, then ops (free()) */
	int json;
	int verbose;
};

/* One table drives getopt_long and --help (common/cli.h). */
static const struct cli_option bake_options[] = {
	{ "recipe", required_argument, OPT_RECIPE, "FILE",
	  "settings and operations from a JSON recipe (pep-recipe(5)); "
	  "flags override it, their operations run after its" },
	{ "output", required_argument, 'o', "FILE",
	  "raw disk to write (required, unless the recipe names it)" },
	{ "size", required_argument, 's', "SIZE",
	  "disk size, e.g. 2G (default 2G; never shrinks)" },
	{ "root-partition", required_argument, OPT_ROOT, "N",
	  "the root partition (default: found)" },
	{ "console", required_argument, OPT_CONSOLE, "VALUE",
	  "kernel console= value, repeatable (default hvc0)" },
	{ "epoch", required_argument, OPT_EPOCH, "SECONDS",
	  "timestamps written (default $SOURCE_DATE_EPOCH, else the input "
	  "filesystem's)" },
	{ "bootstrap", required_argument, OPT_BOOTSTRAP, "WHICH",
	  "NoCloud for auto (what the image has), cloud-init, tiny-cloud or "
	  "none" },
	{ "arch", required_argument, OPT_ARCH, "ARCH",
	  "refuse an image of another architecture (x86_64, aarch64...)" },
	{ "write", required_argument, OPT_CONTENT + CONTENT_WRITE,
	  "PATH:CONTENT", "write a file (root:root 0644)" },
	{ "upload", required_argument, OPT_CONTENT + CONTENT_UPLOAD,
	  "HOSTFILE:PATH", "copy a host file to PATH" },
	{ "copy-in", required_argument, OPT_CONTENT + CONTENT_COPY_IN,
	  "HOSTPATH:DIR", "copy a host file or tree into DIR" },
	{ "tar-in", required_argument, OPT_CONTENT + CONTENT_TAR_IN,
	  "ARCHIVE:DIR", "extract a tar or cpio archive into DIR" },
	{ "mkdir", required_argument, OPT_CONTENT + CONTENT_MKDIR, "DIR",
	  "make a directory and its parents" },
	{ "link", required_argument, OPT_CONTENT + CONTENT_LINK,
	  "TARGET:LINK", "make a symbolic link" },
	{ "chmod", required_argument, OPT_CONTENT + CONTENT_CHMOD,
	  "MODE:PATH", "set permissions (octal)" },
	{ "chown", required_argument, OPT_CONTENT + CONTENT_CHOWN,
	  "UID:GID:PATH", "set the owner (numeric)" },
	{ "delete", required_argument, OPT_CONTENT + CONTENT_DELETE, "PATH",
	  "delete a file, or a directory and all in it" },
	{ "append-line", required_argument,
	  OPT_CONTENT + CONTENT_APPEND_LINE, "PATH:LINE",
	  "append a line to a file" },
	{ "touch", required_argument, OPT_CONTENT + CONTENT_TOUCH, "PATH",
	  "make an empty file, or set its mtime" },
	{ "service", required_argument, OPT_CONTENT + CONTENT_SERVICE,
	  "NAME=INIT",
	  "install an OpenRC service and enable it; NAME=INIT[,CONF]"
	  "[@RUNLEVEL] (default runlevel: default)" },
	{ "enable", required_argument, OPT_CONTENT + CONTENT_ENABLE,
	  "NAME[@LEVEL]", "enable a service, as rc-update add" },
	{ "disable", required_argument, OPT_CONTENT + CONTENT_DISABLE,
	  "NAME[@LEVEL]", "disable a service, as rc-update del" },
	{ "no-pexi", no_argument, OPT_NO_PEXI, NULL,
	  "do not install the pexi-boot service" },
	{ "guest-dir", required_argument, OPT_GUEST_DIR, "DIR",
	  "where pexi-bridge and pexi-boot are (default: found)" },
	{ "json", no_argument, OPT_JSON, NULL,
	  "print a JSON report on stdout" },
	{ "quiet", no_argument, 'q', NULL,
	  "no progress or summary" },
	{ "verbose", no_argument, 'v', NULL,
	  "more messages" },
	{ "help", no_argument, 'h', NULL,
	  "show this help" },
	{ "version", no_argument, 'V', NULL,
	  "show the version" },
};

#define NOPTS (sizeof(bake_options) / sizeof(bake_options[0]))

static void
usage(void)
{
	printf("usage: pep-bake [options] INPUT -o OUTPUT\n"
	    "       pep-bake --recipe FILE [options] [INPUT] [-o OUTPUT]\n\n"
	    "Bake an Alpine cloud image (VHD, qcow2 or raw, detected by "
	    "content)\ninto a sparse raw disk: grown, console on hvc0, "
	    "NoCloud datasource.\nContent operations run in the order "
	    "given, after those.\n\n");
	cli_print_options(stdout, bake_options, NOPTS);
	printf("\nExit status: 0 success, 1 error, 2 usage error.\n");
}

static _Noreturn void
usage_error(const char *fmt, const char *arg)
{
	cli_usage_error("pep-bake", fmt, arg);
}

static void
add_content(struct bake_cli *c, enum content_kind k, const char *arg)
{
	struct pep_err e = { 0, "" };

	if (vec_room((void **)&c->ops, c->nops, &c->capops,
	    sizeof(*c->ops)) < 0)
		fatal("out of memory");
	if (content_parse(k, arg, &c->ops[c->nops], &e) < 0)
		usage_error("%s", e.msg);
	c->nops++;
}

/* An --arch value: one of Alpine's architectures. */
static const char *
arch_arg(const char *arg)
{
	char list[256];

	if (!pexi_arch_known(arg)) {
		pexi_arch_names(list, sizeof(list));
		cli_usage_error("pep-bake", "invalid --arch '%s' (one of %s)",
		    arg, list);
	}
	return arg;
}

/* A setting of the bake (struct bake_opts). 0 if ch is none. */
static int
parse_setting(struct bake_cli *c, int ch, const char *arg)
{
	struct pep_err e = { 0, "" };
	long long n;
	int b;

	switch (ch) {
	case 'o': c->o.output = arg; break;
	case 's':
		if (cli_parse_size(arg, &c->o.size) < 0 || c->o.size == 0)
			usage_error("invalid --size '%s'", arg);
		if (c->o.size % 512 != 0)
			usage_error("--size %s is not a multiple of 512 bytes",
			    arg);
		c->o.size_set = 1;
		break;
	case OPT_ROOT:
		if (cli_parse_num(arg, 1, LAYOUT_MAXPARTS, &n) < 0)
			usage_error("invalid --root-partition '%s'", arg);
		c->o.root_part = (int)n;
		break;
	case OPT_CONSOLE:
		if (c->o.nconsoles == BAKE_MAXCONSOLES)
			usage_error("too many --console values (%s)", arg);
		if (console_check(arg, &e) < 0)
			usage_error("--console: %s", e.msg);
		c->o.consoles[c->o.nconsoles++] = arg;
		break;
	case OPT_EPOCH:
		if (cli_parse_num(arg, 0, INT32_MAX, &n) < 0)
			usage_error("invalid --epoch '%s' (seconds since 1970, "
			    "0 to 2147483647)", arg);
		c->o.epoch = (time_t)n;
		c->o.epoch_set = 1;
		break;
	case OPT_BOOTSTRAP:
		b = setup_bootstrap_of(arg);
		if (b < 0)
			usage_error("invalid --bootstrap '%s' (auto, "
			    "cloud-init, tiny-cloud or none)", arg);
		c->o.bootstrap = (enum bake_bootstrap)b;
		c->o.bootstrap_set = 1;
		break;
	case OPT_ARCH: c->o.arch = arch_arg(arg); break;
	case OPT_NO_PEXI: c->o.no_pexi = 1; break;
	default: return 0;
	}
	return 1;
}

static void
parse_opt(struct bake_cli *c, int ch, const char *arg)
{
	if (parse_setting(c, ch, arg))
		return;
	switch (ch) {
	case OPT_RECIPE:
		if (c->recipe_path != NULL)
			usage_error("%s", "only one --recipe");
		c->recipe_path = arg;
		break;
	case OPT_JSON: c->json = 1; break;
	case OPT_GUEST_DIR: c->o.guest_dir = arg; break;
	case 'q': c->o.quiet = 1; break;
	case 'v': c->verbose++; break;
	case 'h': usage(); exit(BAKE_EXIT_OK);
	case 'V':
		printf("pep-bake %s (libext2fs %s, linked in)\n", BAKE_VERSION,
		    ext4_lib_version());
		exit(BAKE_EXIT_OK);
	default:
		if (ch >= OPT_CONTENT && ch < OPT_CONTENT + CONTENT_NKINDS) {
			add_content(c, (enum content_kind)(ch - OPT_CONTENT),
			    arg);
			break;
		}
		usage_error("%s", "invalid option");
	}
}

/* $SOURCE_DATE_EPOCH, when neither --epoch nor the recipe sets one. */
static void
env_epoch(struct bake_cli *c)
{
	const char *env = getenv("SOURCE_DATE_EPOCH");
	long long ep;

	if (c->o.epoch_set || env == NULL || *env == '\0')
		return;
	if (cli_parse_num(env, 0, INT32_MAX, &ep) < 0)
		usage_error("invalid SOURCE_DATE_EPOCH '%s' (seconds since "
		    "1970, 0 to 2147483647)", env);
	c->o.epoch = (time_t)ep;
	c->o.epoch_set = 1;
}

/* A recipe's settings under the command line's; errors are one line. */
static void
load_recipe(struct bake_cli *c)
{
	struct pep_err e = { 0, "" };
	int use_source = c->o.input == NULL;
	int r;

	r = recipe_load(c->recipe_path, &c->recipe, &e);
	if (r == 0)
		r = recipe_merge(c->recipe, &c->o, &c->merged, &e);
	if (r == 0)
		r = recipe_check_host(c->recipe, use_source, &e);
	if (r < 0) {
		log_warnx("%s", e.msg[0] ? e.msg : pep_strerror(r));
		exit(r == -ENOMEM ? BAKE_EXIT_ERROR : BAKE_EXIT_USAGE);
	}
}

static void
parse_args(struct bake_cli *c, int argc, char **argv)
{
	struct option longopts[NOPTS + 1];
	char shortopts[2 * NOPTS + 1];
	int ch;

	cli_getopt_tables(bake_options, NOPTS, longopts, shortopts);
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
		parse_opt(c, ch, optarg);
	if (optind < argc - 1)
		usage_error("%s", "exactly one INPUT expected");
	if (optind < argc)
		c->o.input = argv[optind];
	c->o.ops = c->ops;
	c->o.nops = c->nops;
	if (c->recipe_path != NULL)
		load_recipe(c);
	if (c->o.input == NULL)
		usage_error("%s", c->recipe_path == NULL ? "missing INPUT" :
		    "missing INPUT (the recipe has no \"source\")");
	if (c->o.output == NULL)
		usage_error("%s", c->recipe_path == NULL ?
		    "missing -o OUTPUT" :
		    "missing -o OUTPUT (the recipe has no \"output\")");
	if (c->o.output[0] == '\0')
		usage_error("%s", "-o: empty file name");
	if (c->o.input[0] == '\0')
		usage_error("%s", "INPUT: empty file name");
	if (c->o.nconsoles == 0)
		c->o.consoles[c->o.nconsoles++] = "hvc0";
	env_epoch(c);
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

static void
free_cli(struct bake_cli *c)
{
	size_t i;

	for (i = 0; i < c->nops; i++)
		content_free(&c->ops[i]);
	free(c->ops);
	free(c->merged);
	recipe_free(c->recipe);
}

/* Print the report; the exit status. */
static int
finish(struct bake_cli *c, struct bake_report *r)
{
	size_t i;
	char *js;

	for (i = 0; i < r->nwarnings; i++)
		log_warnx("warning: %s", r->warnings[i].msg);
	if (c->json) {
		js = report_json(&c->o, r);
		if (js == NULL) {
			log_warnx("--json: out of memory");
			return BAKE_EXIT_ERROR;
		}
		printf("%s\n", js);
		free(js);
	} else if (!c->o.quiet && (c->verbose || isatty(STDERR_FILENO))) {
		report_human(&c->o, r);
	}
	return BAKE_EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct bake_cli c;
	struct bake_report r;
	struct pep_err e = { 0, "" };
	int rc, status;

	memset(&c, 0, sizeof(c));
	log_init("pep-bake", 0, 0);
	parse_args(&c, argc, argv);
	log_init("pep-bake", c.verbose, c.o.quiet);
	install_signals(c.o.output);
	rc = bake_run(&c.o, &r, &e);
	if (rc < 0) {
		log_warnx("%s", e.msg[0] ? e.msg : pep_strerror(rc));
		status = rc == -PEP_EUSAGE ? BAKE_EXIT_USAGE : BAKE_EXIT_ERROR;
	} else {
		status = finish(&c, &r);
	}
	bake_report_free(&r);
	free_cli(&c);
	return status;
}
