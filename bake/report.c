/*
 * What a bake did, for people (a few lines on stderr) and for programs
 * (--json on stdout).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../common/log.h"
#include "../common/utf8.h"
#include "../common/vec.h"
#include "bake.h"
#include "report.h"

/*
 * Add a string that may hold any bytes (file names, partition names, a
 * message quoting them): JSON must be UTF-8, so invalid bytes become
 * U+FFFD.
 */
static void
report_str(cJSON *obj, const char *key, const char *s)
{
	char *clean = utf8_sanitize(s != NULL ? s : "");

	if (clean == NULL)
		return;
	cJSON_AddStringToObject(obj, key, clean);
	free(clean);
}

static cJSON *
report_parts(const struct layout *l)
{
	cJSON *arr = cJSON_CreateArray(), *p;
	size_t i;

	for (i = 0; arr != NULL && i < l->nparts; i++) {
		const struct part_info *pi = &l->parts[i];

		p = cJSON_CreateObject();
		if (p == NULL)
			break;
		cJSON_AddNumberToObject(p, "number", pi->partno);
		cJSON_AddNumberToObject(p, "start", (double)pi->start);
		cJSON_AddNumberToObject(p, "size", (double)pi->size);
		report_str(p, "type", pi->type);
		report_str(p, "uuid", pi->uuid);
		report_str(p, "name", pi->name);
		cJSON_AddNumberToObject(p, "attrs", (double)pi->attrs);
		cJSON_AddItemToArray(arr, p);
	}
	return arr;
}

static cJSON *
report_edits(const struct bake_report *r)
{
	cJSON *arr = cJSON_CreateArray(), *ed;
	size_t i;

	for (i = 0; arr != NULL && i < r->nedits; i++) {
		ed = cJSON_CreateObject();
		if (ed == NULL)
			break;
		report_str(ed, "path", r->edits[i].path);
		report_str(ed, "action", r->edits[i].action);
		cJSON_AddItemToArray(arr, ed);
	}
	return arr;
}

/* Seconds by stage: the pipeline's fixed steps, and "edit" for every
 * step that changes the filesystem's files. */
static cJSON *
report_timings(const struct bake_report *r)
{
	cJSON *t = cJSON_CreateObject();
	double fixed;

	fixed = bake_seconds(r, "open") + bake_seconds(r, "convert") +
	    bake_seconds(r, "layout") + bake_seconds(r, "grow") +
	    bake_seconds(r, "commit");
	cJSON_AddNumberToObject(t, "convert", bake_seconds(r, "open") +
	    bake_seconds(r, "convert"));
	cJSON_AddNumberToObject(t, "layout", bake_seconds(r, "layout"));
	cJSON_AddNumberToObject(t, "grow", bake_seconds(r, "grow"));
	cJSON_AddNumberToObject(t, "edit", r->t_total - fixed > 0 ?
	    r->t_total - fixed : 0);
	cJSON_AddNumberToObject(t, "commit", bake_seconds(r, "commit"));
	cJSON_AddNumberToObject(t, "total", r->t_total);
	return t;
}

/* Every step in order: [{"step", "arg", "seconds"}]. */
static cJSON *
report_steps(const struct bake_report *r)
{
	cJSON *arr = cJSON_CreateArray(), *o;
	size_t i;

	for (i = 0; arr != NULL && i < r->ntimings; i++) {
		o = cJSON_CreateObject();
		if (o == NULL)
			break;
		report_str(o, "step", r->timings[i].step);
		if (r->timings[i].arg != NULL)
			report_str(o, "arg", r->timings[i].arg);
		cJSON_AddNumberToObject(o, "seconds", r->timings[i].seconds);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *
report_warnings(const struct bake_report *r)
{
	cJSON *arr = cJSON_CreateArray(), *o;
	size_t i;

	for (i = 0; arr != NULL && i < r->nwarnings; i++) {
		o = cJSON_CreateObject();
		if (o == NULL)
			break;
		report_str(o, "code", r->warnings[i].code);
		report_str(o, "path", r->warnings[i].path);
		report_str(o, "message", r->warnings[i].msg);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *
report_fs(const struct bake_report *r)
{
	const struct ext4_grow_info *g = &r->grow;
	cJSON *f = cJSON_CreateObject();

	cJSON_AddNumberToObject(f, "block_size", g->blocksize);
	cJSON_AddNumberToObject(f, "blocks_before", (double)g->old_blocks);
	cJSON_AddNumberToObject(f, "blocks_after", (double)g->new_blocks);
	cJSON_AddNumberToObject(f, "groups_before", g->old_groups);
	cJSON_AddNumberToObject(f, "groups_after", g->new_groups);
	cJSON_AddNumberToObject(f, "itable_bytes_zeroed",
	    (double)g->itable_zeroed);
	return f;
}

char *
report_json(const struct bake_opts *o, const struct bake_report *r)
{
	cJSON *j = cJSON_CreateObject();
	char *s;

	if (j == NULL)
		return NULL;
	report_str(j, "input", o->input);
	report_str(j, "input_format", r->input_format);
	cJSON_AddNumberToObject(j, "virtual_size", (double)r->virtual_size);
	report_str(j, "output", o->output);
	cJSON_AddNumberToObject(j, "output_size", (double)r->output_size);
	report_str(j, "layout", layout_kind_name(r->before.kind));
	cJSON_AddItemToObject(j, "partitions_before", report_parts(&r->before));
	cJSON_AddItemToObject(j, "partitions_after", report_parts(&r->after));
	cJSON_AddNumberToObject(j, "root_partition", r->root_part);
	cJSON_AddNumberToObject(j, "root_offset", (double)r->root_offset);
	cJSON_AddItemToObject(j, "filesystem", report_fs(r));
	report_str(j, "bootstrap", r->bootstrap);
	report_str(j, "guest_arch", r->guest_arch);
	cJSON_AddItemToObject(j, "edits", report_edits(r));
	cJSON_AddNumberToObject(j, "epoch", (double)r->epoch);
	cJSON_AddNumberToObject(j, "bytes_read", (double)r->conv.bytes_read);
	cJSON_AddNumberToObject(j, "bytes_written",
	    (double)r->conv.bytes_written);
	cJSON_AddNumberToObject(j, "bytes_shared",
	    (double)r->conv.bytes_shared);
	cJSON_AddItemToObject(j, "timings", report_timings(r));
	cJSON_AddItemToObject(j, "steps", report_steps(r));
	cJSON_AddItemToObject(j, "warnings", report_warnings(r));
	s = cJSON_Print(j);
	cJSON_Delete(j);
	return s;
}

void
bake_warn(struct bake_report *r, const char *code, const char *path,
    const char *fmt, ...)
{
	struct bake_warning *w;
	char msg[1024];
	va_list ap;

	if (vec_room((void **)&r->warnings, r->nwarnings, &r->capw,
	    sizeof(*w)) < 0) {
		r->oom = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w = &r->warnings[r->nwarnings];
	w->code = code;
	w->path = strdup(path != NULL ? path : "");
	w->msg = strdup(msg);
	if (w->path == NULL || w->msg == NULL) {
		free(w->path);
		free(w->msg);
		r->oom = 1;
		return;
	}
	r->nwarnings++;
}

void
bake_edit(struct bake_report *r, const char *path, const char *action)
{
	struct bake_edit *ed;

	if (vec_room((void **)&r->edits, r->nedits, &r->cape,
	    sizeof(*ed)) < 0) {
		r->oom = 1;
		return;
	}
	ed = &r->edits[r->nedits];
	ed->path = strdup(path);
	ed->action = action;
	if (ed->path == NULL)
		r->oom = 1;
	else
		r->nedits++;
}

void
bake_time(struct bake_report *r, const char *step, const char *arg,
    double seconds)
{
	struct bake_timing *t;

	if (vec_room((void **)&r->timings, r->ntimings, &r->capt,
	    sizeof(*t)) < 0) {
		r->oom = 1;
		return;
	}
	t = &r->timings[r->ntimings++];
	t->step = step;
	t->arg = arg != NULL ? strdup(arg) : NULL;
	t->seconds = seconds;
}

double
bake_seconds(const struct bake_report *r, const char *step)
{
	double s = 0;
	size_t i;

	for (i = 0; i < r->ntimings; i++)
		if (strcmp(r->timings[i].step, step) == 0)
			s += r->timings[i].seconds;
	return s;
}

void
bake_report_free(struct bake_report *r)
{
	size_t i;

	for (i = 0; i < r->nwarnings; i++) {
		free(r->warnings[i].path);
		free(r->warnings[i].msg);
	}
	for (i = 0; i < r->nedits; i++)
		free(r->edits[i].path);
	for (i = 0; i < r->ntimings; i++)
		free(r->timings[i].arg);
	free(r->warnings);
	free(r->edits);
	free(r->timings);
	memset(r, 0, sizeof(*r));
}

static double
mib(uint64_t b)
{
	return b / 1048576.0;
}

static const struct part_info *
report_find(const struct layout *l, int partno)
{
	size_t i;

	for (i = 0; i < l->nparts; i++)
		if (l->parts[i].partno == partno)
			return &l->parts[i];
	return NULL;
}

void
report_human(const struct bake_opts *o, const struct bake_report *r)
{
	const struct part_info *a, *b;
	size_t i;

	log_info("%s: %s, %.1f MiB -> %s: raw, %.1f MiB (%s), %.1f MiB of "
	    "data written in %.2fs", o->input, r->input_format,
	    mib(r->virtual_size), o->output, mib(r->output_size),
	    layout_kind_name(r->before.kind), mib(r->conv.bytes_written),
	    r->t_total);
	b = report_find(&r->before, r->root_part);
	a = report_find(&r->after, r->root_part);
	if (a != NULL && b != NULL)
		log_info("root partition %d: %.1f MiB -> %.1f MiB",
		    r->root_part, mib(b->size), mib(a->size));
	if (r->grow.new_blocks != r->grow.old_blocks)
		log_info("root filesystem: %.1f MiB -> %.1f MiB (%u -> %u "
		    "block groups)", mib(r->grow.old_blocks * r->grow.blocksize),
		    mib(r->grow.new_blocks * r->grow.blocksize),
		    r->grow.old_groups, r->grow.new_groups);
	for (i = 0; i < r->nedits; i++)
		log_info("%s %s", r->edits[i].action, r->edits[i].path);
}
