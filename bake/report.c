/*
 * What a bake did, for people (a few lines on stderr) and for programs
 * (--json on stdout).
 */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "../common/log.h"
#include "bake.h"

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
		cJSON_AddStringToObject(p, "type", pi->type);
		cJSON_AddStringToObject(p, "uuid", pi->uuid);
		cJSON_AddStringToObject(p, "name", pi->name);
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
		cJSON_AddStringToObject(ed, "path", r->edits[i].path);
		cJSON_AddStringToObject(ed, "action", r->edits[i].action);
		cJSON_AddItemToArray(arr, ed);
	}
	return arr;
}

static cJSON *
report_timings(const struct bake_report *r)
{
	cJSON *t = cJSON_CreateObject();

	cJSON_AddNumberToObject(t, "convert", r->t_convert);
	cJSON_AddNumberToObject(t, "layout", r->t_layout);
	cJSON_AddNumberToObject(t, "grow", r->t_grow);
	cJSON_AddNumberToObject(t, "edit", r->t_edit);
	cJSON_AddNumberToObject(t, "commit", r->t_commit);
	cJSON_AddNumberToObject(t, "total", r->t_total);
	return t;
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
	cJSON *j = cJSON_CreateObject(), *w;
	char *s;
	size_t i;

	if (j == NULL)
		return NULL;
	cJSON_AddStringToObject(j, "input", o->input);
	cJSON_AddStringToObject(j, "input_format", r->input_format);
	cJSON_AddNumberToObject(j, "virtual_size", (double)r->virtual_size);
	cJSON_AddStringToObject(j, "output", o->output);
	cJSON_AddNumberToObject(j, "output_size", (double)r->output_size);
	cJSON_AddStringToObject(j, "layout", layout_kind_name(r->before.kind));
	cJSON_AddItemToObject(j, "partitions_before", report_parts(&r->before));
	cJSON_AddItemToObject(j, "partitions_after", report_parts(&r->after));
	cJSON_AddNumberToObject(j, "root_partition", r->root_part);
	cJSON_AddNumberToObject(j, "root_offset", (double)r->root_offset);
	cJSON_AddItemToObject(j, "filesystem", report_fs(r));
	cJSON_AddStringToObject(j, "bootstrap", r->bootstrap);
	cJSON_AddItemToObject(j, "edits", report_edits(r));
	cJSON_AddNumberToObject(j, "epoch", (double)r->epoch);
	cJSON_AddNumberToObject(j, "bytes_read", (double)r->conv.bytes_read);
	cJSON_AddNumberToObject(j, "bytes_written",
	    (double)r->conv.bytes_written);
	cJSON_AddNumberToObject(j, "bytes_shared",
	    (double)r->conv.bytes_shared);
	cJSON_AddItemToObject(j, "timings", report_timings(r));
	w = cJSON_AddArrayToObject(j, "warnings");
	for (i = 0; w != NULL && i < r->nwarnings; i++)
		cJSON_AddItemToArray(w, cJSON_CreateString(r->warnings[i]));
	s = cJSON_Print(j);
	cJSON_Delete(j);
	return s;
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
