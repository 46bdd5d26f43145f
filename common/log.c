#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *log_prog = "pep";
static int log_verb;
static int log_quiet;

void
log_init(const char *progname, int verbose, int quiet)
{
	log_prog = progname;
	log_verb = verbose;
	log_quiet = quiet;
}

const char *
log_progname(void)
{
	return log_prog;
}

int
log_verbose(void)
{
	return log_verb;
}

static void
log_vmsg(const char *fmt, va_list ap, const char *suffix)
{
	fprintf(stderr, "%s: ", log_prog);
	vfprintf(stderr, fmt, ap);
	if (suffix != NULL)
		fprintf(stderr, ": %s", suffix);
	fputc('\n', stderr);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	const char *s = strerror(errno);

	va_start(ap, fmt);
	log_vmsg(fmt, ap, s);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (log_quiet)
		return;
	va_start(ap, fmt);
	log_vmsg(fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_verb < 2)
		return;
	va_start(ap, fmt);
	log_vmsg(fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	const char *s = strerror(errno);

	va_start(ap, fmt);
	log_vmsg(fmt, ap, s);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
