#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const char *const pep_errstr[] = {
	[PEP_EFORMAT - PEP_EFORMAT] = "unrecognised format",
	[PEP_ECORRUPT - PEP_EFORMAT] = "corrupt data",
	[PEP_EUNSUPPORTED - PEP_EFORMAT] = "unsupported feature",
	[PEP_ELIB - PEP_EFORMAT] = "library error",
	[PEP_EUSAGE - PEP_EFORMAT] = "usage error",
	[PEP_ENOTFOUND - PEP_EFORMAT] = "not found",
};

int
pep_errf(struct pep_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (code > 0)
		code = -code;
	if (e == NULL)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

const char *
pep_strerror(int code)
{
	code = abs(code);
	if (code >= PEP_EFORMAT && code < PEP_ELAST)
		return pep_errstr[code - PEP_EFORMAT];
	return strerror(code);
}
