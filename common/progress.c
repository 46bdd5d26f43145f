#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

double
progress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
progress_init(struct progress *p, int quiet)
{
	p->enabled = !quiet && isatty(STDERR_FILENO);
	p->stage = NULL;
	p->total = p->done = 0;
	p->t0 = p->last = 0;
}

static void
progress_draw(struct progress *p)
{
	double el = progress_now() - p->t0;
	double rate = el > 0 ? p->done / el : 0;
	double pct = p->total ? 100.0 * p->done / p->total : 100.0;

	fprintf(stderr, "\r%-10s %5.1f%% %8.1f MiB  %7.1f MiB/s ",
	    p->stage, pct, p->done / 1048576.0, rate / 1048576.0);
	fflush(stderr);
}

void
progress_begin(struct progress *p, const char *stage, uint64_t total)
{
	p->stage = stage;
	p->total = total;
	p->done = 0;
	p->t0 = p->last = progress_now();
	if (p->enabled)
		progress_draw(p);
}

void
progress_update(struct progress *p, uint64_t done)
{
	double now;

	p->done = done;
	if (!p->enabled)
		return;
	now = progress_now();
	if (now - p->last < 0.1)
		return;
	p->last = now;
	progress_draw(p);
}

void
progress_end(struct progress *p)
{
	if (!p->enabled)
		return;
	progress_draw(p);
	fputc('\n', stderr);
}

void
progress_status(struct progress *p, const char *what, const char *arg)
{
	if (!p->enabled)
		return;
	fprintf(stderr, "\r\033[K%s%s%.60s", what, arg != NULL ? " " : "",
	    arg != NULL ? arg : "");
	fflush(stderr);
}

void
progress_clear(struct progress *p)
{
	if (!p->enabled)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
}
