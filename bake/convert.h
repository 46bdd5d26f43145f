/*
 * Container to sparse raw (convert.c).
 */
#ifndef PEP_CONVERT_H
#define PEP_CONVERT_H

#include <stdint.h>

#include "../common/err.h"
#include "../common/progress.h"
#include "img.h"

/* ------------------------------------------------------------------ */
/* convert.c: container -> sparse raw                                 */

struct convert_stats {
	uint64_t bytes_read;	/* by pep-bake, or by the kernel to copy */
	uint64_t bytes_written;	/* own blocks: non-zero data, kernel copies */
	uint64_t bytes_shared;	/* data sharing the input's blocks */
};

/*
 * Copy im's data to outfd (a fresh, empty file) leaving zeros as holes,
 * or sharing the input's blocks where the filesystem can (see convert.c).
 */
int convert_run(struct img *im, int outfd, const char *outname,
    struct progress *p, struct convert_stats *st, struct pep_err *e);

#endif
