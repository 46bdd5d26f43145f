/*
 * The output file (out.c): written under a temporary name, renamed only
 * when complete, never anything but a regular file.
 */
#ifndef PEP_OUT_H
#define PEP_OUT_H

#include "../common/err.h"

/* ------------------------------------------------------------------ */
/* out.c: the output file, written under a temporary name             */

struct out {
	const char *path;	/* the name the user asked for */
	char *tmppath;		/* visible temporary name, or NULL (O_TMPFILE) */
	char fdpath[64];	/* /proc/self/fd/N: a name libraries can open */
	int fd;
};

/*
 * Before any work: refuse an output name that exists and is not a regular
 * file, is the input itself, or is longer than its directory allows.
 */
int out_check(const char *path, const char *input, struct pep_err *e);
int out_create(struct out *o, const char *path, struct pep_err *e);
/* fsync, give it its final name, fsync the directory. */
int out_commit(struct out *o, struct pep_err *e);
/* Remove every trace (safe to call twice, and after commit). */
void out_abort(struct out *o);
/* Called from a signal handler: unlink the visible temp name. */
void out_abort_signal(void);

#endif
