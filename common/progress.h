/*
 * A one-line progress meter on stderr: stage, percent, bytes, rate.
 * Silent unless stderr is a terminal and the program is not --quiet.
 */
#ifndef PEP_PROGRESS_H
#define PEP_PROGRESS_H

#include <stdint.h>

struct progress {
	int enabled;
	const char *stage;
	uint64_t total;
	uint64_t done;
	double t0;
	double last;
};

void progress_init(struct progress *p, int quiet);
void progress_begin(struct progress *p, const char *stage, uint64_t total);
void progress_update(struct progress *p, uint64_t done);
void progress_end(struct progress *p);
/* A transient status line ("layout", "copy-in /opt"), cleared by the next
 * one or by progress_clear. */
void progress_status(struct progress *p, const char *what, const char *arg);
void progress_clear(struct progress *p);
double progress_now(void);

#endif
