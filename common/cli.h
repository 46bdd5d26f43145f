/*
 * Command lines: one option table drives getopt_long and --help in every
 * pep program. An option whose val is a printable ASCII letter also has
 * that letter as its short form; long-only options use values >= 256.
 */
#ifndef PEP_CLI_H
#define PEP_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cli_option {
	const char *name;	/* long name, without "--" */
	int has_arg;		/* no_argument or required_argument */
	int val;		/* what getopt_long returns */
	const char *arg;	/* the argument's name in --help, or NULL */
	const char *help;
};

/* The tables getopt_long wants: longopts[n + 1], shortopts[2n + 1]. */
void cli_getopt_tables(const struct cli_option *o, size_t n,
    struct option *longopts, char *shortopts);
/* One line per option: "  -o, --output FILE           help". */
void cli_print_options(FILE *f, const struct cli_option *o, size_t n);
/* "PROG: MESSAGE", then "Try 'PROG --help' ...", and exit(2). */
_Noreturn void cli_usage_error(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A decimal integer in [lo, hi], nothing after it. 0 or -1. */
int cli_parse_num(const char *s, long long lo, long long hi,
    long long *out);
/* "2G", "512M", "1048576", "1GiB": binary suffixes K M G T. 0 or -1. */
int cli_parse_size(const char *s, uint64_t *out);

#endif
