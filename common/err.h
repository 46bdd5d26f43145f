/*
 * pep error convention: functions return 0 on success or a negative code:
 * a negative errno, or a negative PEP_E* value (>= 1024, never an errno).
 * Detail for the user goes into a struct pep_err filled by the module that
 * failed; only the top level prints it.
 */
#ifndef PEP_ERR_H
#define PEP_ERR_H

#include <stddef.h>

enum pep_errcode {
	PEP_EFORMAT = 1024,	/* not a format we recognise */
	PEP_ECORRUPT,		/* recognised, but inconsistent or damaged */
	PEP_EUNSUPPORTED,	/* valid, but a feature pep does not handle */
	PEP_ELIB,		/* a library (libext2fs, libfdisk...) failed */
	PEP_EUSAGE,		/* bad option or argument */
	PEP_ENOTFOUND,		/* a required thing is absent */
	PEP_ELAST
};

#define PEP_ERR_MSGLEN 512

struct pep_err {
	int code;
	char msg[PEP_ERR_MSGLEN];
};

/* Fill e (if not NULL) with a formatted message; returns -abs(code). */
int pep_errf(struct pep_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Text for a code (negative or positive; errno or PEP_E*). */
const char *pep_strerror(int code);

#endif
