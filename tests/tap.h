/*
 * Minimal TAP for pep's C unit tests. A unit test is tests/unit/NAME.c,
 * built to $(BUILD)/tests/NAME, run by tests/run.sh with the path of
 * tests/data as argv[1]; it prints "ok N - ..." / "not ok N - ..." lines
 * and returns tap_done().
 */
#ifndef PEP_TAP_H
#define PEP_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3))) static int
tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}

#endif
