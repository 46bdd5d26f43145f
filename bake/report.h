/*
 * What a bake did: --json (report.c) and the human summary.
 */
#ifndef PEP_REPORT_H
#define PEP_REPORT_H

/* ------------------------------------------------------------------ */
/* report.c: --json and the human summary                            */

struct bake_opts;
struct bake_report;

char *report_json(const struct bake_opts *o, const struct bake_report *r);
void report_human(const struct bake_opts *o, const struct bake_report *r);

#endif
