/*
 * recipe_parse: every tests/data/recipe/NAME.json is parsed (named
 * NAME.json, host paths joined to "base") and must either fail with the
 * one-line message in NAME.err, exit-status class PEP_EUSAGE, or parse
 * into what NAME.ok dumps (settings, then one line per operation).
 * Then recipe_merge (flags over the recipe, flag operations after its)
 * and recipe_load (the recipe's directory, unreadable files).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../bake/recipe.h"
#include "../tapdata.h"

struct dump {
	char *buf;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void
dump_add(struct dump *d, const char *fmt, ...)
{
	va_list ap;
	char *nb;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (d->len + (size_t)n + 1 > d->cap) {
		d->cap = (d->len + (size_t)n + 1) * 2;
		nb = realloc(d->buf, d->cap);
		if (nb == NULL)
			abort();
		d->buf = nb;
	}
	va_start(ap, fmt);
	vsnprintf(d->buf + d->len, d->cap - d->len, fmt, ap);
	va_end(ap);
	d->len += (size_t)n;
}

/* A string as C would write it, in quotes; NULL as -. */
static void
dump_str(struct dump *d, const char *key, const char *s)
{
	if (s == NULL)
		return;
	dump_add(d, " %s=\"", key);
	for (; *s != '\0'; s++) {
		if (*s == '\n')
			dump_add(d, "\\n");
		else if (*s == '\t')
			dump_add(d, "\\t");
		else if (*s == '"' || *s == '\\')
			dump_add(d, "\\%c", *s);
		else if ((unsigned char)*s < 0x20 || *s == 0x7f)
			dump_add(d, "\\x%02x", (unsigned char)*s);
		else
			dump_add(d, "%c", *s);
	}
	dump_add(d, "\"");
}

static void
dump_op(struct dump *d, const struct content_op *op, const char *where)
{
	dump_add(d, "%s %s", where, content_name(op->kind));
	dump_str(d, "path", op->path);
	dump_str(d, "host", op->host);
	dump_str(d, "text", op->text);
	if (op->text != NULL && op->textlen != strlen(op->text))
		dump_add(d, " textlen=%zu", op->textlen);
	if (op->has_mode)
		dump_add(d, " mode=%04o", (unsigned)op->mode);
	if (op->has_owner)
		dump_add(d, " owner=%u:%u", (unsigned)op->uid,
		    (unsigned)op->gid);
	dump_str(d, "name", op->name);
	dump_str(d, "conf", op->conf);
	dump_str(d, "runlevel", op->runlevel);
	dump_add(d, "%s\n", op->own != NULL ? " own!" : "");
}

static void
dump_recipe(struct dump *d, const struct recipe *r)
{
	const struct bake_opts *o = &r->o;
	size_t i;

	dump_str(d, "input", o->input);
	dump_str(d, "source_where", r->source_where);
	dump_str(d, "output", o->output);
	if (o->size_set)
		dump_add(d, " size=%llu", (unsigned long long)o->size);
	if (o->root_part)
		dump_add(d, " root_partition=%d", o->root_part);
	for (i = 0; i < o->nconsoles; i++)
		dump_str(d, "console", o->consoles[i]);
	if (o->epoch_set)
		dump_add(d, " epoch=%lld", (long long)o->epoch);
	dump_str(d, "arch", o->arch);
	if (o->bootstrap_set)
		dump_add(d, " bootstrap=%s",
		    setup_bootstrap_name(o->bootstrap));
	if (o->no_pexi)
		dump_add(d, " no_pexi");
	dump_str(d, "pexi_config", o->pexi_config);
	if (o->pexi_config != NULL &&
	    o->pexi_config_len != strlen(o->pexi_config))
		dump_add(d, " pexi_config_len=%zu", o->pexi_config_len);
	dump_add(d, "\n");
	for (i = 0; i < r->nops; i++)
		dump_op(d, &r->ops[i], r->where[i]);
	if (o->ops != r->ops || o->nops != r->nops)
		dump_add(d, "o.ops is not ops!\n");
}

/* dir/file[0..keep) ext, malloc'd; NULL if out of memory. */
static char *
data_path(const char *dir, const char *file, int keep, const char *ext)
{
	char *p = NULL;

	return asprintf(&p, "%s/%.*s%s", dir, keep, file, ext) < 0 ? NULL : p;
}

/* NAME.json against NAME.err or NAME.ok. */
static void
one_case(const char *dir, const char *file)
{
	char *path = NULL, *want_path = NULL, *json = NULL, *want = NULL;
	size_t n = strlen(file), jlen = 0, wlen = 0;
	struct pep_err e = { 0, "" };
	struct recipe *r = NULL;
	struct dump d = { NULL, 0, 0 };
	int rc, is_err;

	if (n < 6 || strcmp(file + n - 5, ".json") != 0)
		return;
	path = data_path(dir, file, (int)n, "");
	want_path = data_path(dir, file, (int)n - 5, ".err");
	is_err = want_path != NULL && access(want_path, F_OK) == 0;
	if (!is_err) {
		free(want_path);
		want_path = data_path(dir, file, (int)n - 5, ".ok");
	}
	json = path != NULL ? tap_slurp(path, &jlen) : NULL;
	want = want_path != NULL ? tap_slurp(want_path, &wlen) : NULL;
	if (!tap_ok(json != NULL && want != NULL, "%s: read, with %s", file,
	    want_path != NULL ? want_path : "?"))
		goto out;
	want[wlen] = '\0';
	rc = recipe_parse(json, jlen, file, "base", &r, &e);
	if (is_err) {
		want[strcspn(want, "\n")] = '\0';
		tap_ok(rc == -PEP_EUSAGE && r == NULL, "%s: fails", file);
		if (!tap_ok(strcmp(e.msg, want) == 0, "%s: message", file))
			printf("# got:  %s\n# want: %s\n", e.msg, want);
		goto out;
	}
	if (!tap_ok(rc == 0 && r != NULL, "%s: parses", file)) {
		printf("# %s\n", e.msg);
		goto out;
	}
	dump_recipe(&d, r);
	if (!tap_ok(d.buf != NULL && strcmp(d.buf, want) == 0, "%s: as %s",
	    file, want_path))
		printf("# got:\n%s# end\n", d.buf != NULL ? d.buf : "");
out:
	free(d.buf);
	recipe_free(r);
	free(json);
	free(want);
	free(path);
	free(want_path);
}

static void
data_cases(const char *top)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/recipe", top);
	tap_each(dir, ".json", one_case);
}

static struct recipe *
parse_str(const char *s)
{
	struct pep_err e = { 0, "" };
	struct recipe *r = NULL;

	if (recipe_parse(s, strlen(s), "inline.json", NULL, &r, &e) < 0)
		printf("# %s\n", e.msg);
	return r;
}

/* Flags win; the recipe fills the rest; its operations go first. */
static void
merge_cases(void)
{
	struct recipe *r = parse_str("{\"source\": \"d.raw\", \"output\": "
	    "\"o.raw\", \"size\": \"1G\", \"console\": [\"ttyS0\", \"hvc0\"], "
	    "\"epoch\": 5, \"pexi\": false, \"bootstrap\": \"none\", "
	    "\"files\": [{\"mkdir\": \"/a\"}], \"services\": [{\"enable\": "
	    "\"x\"}]}");
	struct content_op cli[1], *ops = NULL;
	struct bake_opts o;
	struct pep_err e = { 0, "" };

	if (!tap_ok(r != NULL, "merge: the recipe parses"))
		return;
	memset(&o, 0, sizeof(o));
	memset(cli, 0, sizeof(cli));
	cli[0].kind = CONTENT_TOUCH;
	cli[0].path = "/cli";
	o.ops = cli;
	o.nops = 1;
	o.output = "flag.raw";
	o.epoch = 0;
	o.epoch_set = 1;
	tap_ok(recipe_merge(r, &o, &ops, &e) == 0 && ops == o.ops,
	    "merge: merges");
	tap_ok(strcmp(o.input, "d.raw") == 0 &&
	    strcmp(o.output, "flag.raw") == 0, "merge: -o wins, source kept");
	tap_ok(o.size_set && o.size == 1ULL << 30 && o.epoch_set &&
	    o.epoch == 0, "merge: size from the recipe, epoch 0 from flags");
	tap_ok(o.nconsoles == 2 && strcmp(o.consoles[1], "hvc0") == 0 &&
	    o.no_pexi && o.bootstrap_set &&
	    o.bootstrap == BAKE_BOOTSTRAP_NONE, "merge: consoles, pexi, "
	    "bootstrap from the recipe");
	tap_ok(o.nops == 3 && o.ops[0].kind == CONTENT_MKDIR &&
	    o.ops[1].kind == CONTENT_ENABLE && o.ops[2].kind == CONTENT_TOUCH,
	    "merge: files, services, then the flags' operations");
	free(ops);
	recipe_free(r);
}

/* One --console replaces the recipe's list; --no-pexi beats "pexi";
 * pexi_config comes from the recipe (no flag sets it). */
static void
merge_flags_cases(void)
{
	struct recipe *r = parse_str("{\"console\": [\"ttyS0\", \"hvc0\"], "
	    "\"pexi\": true, \"bootstrap\": \"none\", \"arch\": \"x86_64\", "
	    "\"root_partition\": 3, \"pexi_config\": {\"visits\": []}}");
	struct content_op *ops = NULL;
	struct bake_opts o;
	struct pep_err e = { 0, "" };

	if (!tap_ok(r != NULL, "merge flags: the recipe parses"))
		return;
	memset(&o, 0, sizeof(o));
	o.consoles[0] = "hvc1";
	o.nconsoles = 1;
	o.no_pexi = 1;
	o.bootstrap = BAKE_BOOTSTRAP_AUTO;
	o.bootstrap_set = 1;
	o.arch = "aarch64";
	o.root_part = 1;
	tap_ok(recipe_merge(r, &o, &ops, &e) == 0 && o.nops == 0,
	    "merge flags: merges, no operations");
	tap_ok(o.nconsoles == 1 && strcmp(o.consoles[0], "hvc1") == 0,
	    "merge flags: --console replaces the recipe's consoles");
	tap_ok(o.no_pexi && o.bootstrap == BAKE_BOOTSTRAP_AUTO &&
	    strcmp(o.arch, "aarch64") == 0 && o.root_part == 1 &&
	    o.input == NULL && o.output == NULL && !o.size_set,
	    "merge flags: flags win, unset stays unset");
	tap_ok(o.pexi_config != NULL &&
	    strcmp(o.pexi_config, "{\n\t\"visits\":\t[]\n}\n") == 0 &&
	    o.pexi_config_len == strlen(o.pexi_config),
	    "merge flags: the recipe's pexi_config, as cJSON prints it");
	free(ops);
	recipe_free(r);
}

/* recipe_load: host paths against the file's directory; bad files. */
static void
load_cases(const char *top)
{
	char path[4096], want[4096];
	struct pep_err e = { 0, "" };
	struct recipe *r = NULL;

	snprintf(path, sizeof(path), "%s/recipe/full.json", top);
	snprintf(want, sizeof(want), "%s/recipe/disk.raw", top);
	if (tap_ok(recipe_load(path, &r, &e) == 0, "load: %s", path))
		tap_ok(strcmp(r->o.input, want) == 0, "load: source is "
		    "relative to the recipe (%s)", r->o.input);
	recipe_free(r);
	snprintf(path, sizeof(path), "%s/recipe/missing.json", top);
	tap_ok(recipe_load(path, &r, &e) == -PEP_EUSAGE && r == NULL &&
	    strstr(e.msg, "missing.json: No such file") != NULL,
	    "load: a missing file (%s)", e.msg);
	snprintf(path, sizeof(path), "%s/recipe", top);
	tap_ok(recipe_load(path, &r, &e) == -PEP_EUSAGE && r == NULL &&
	    strstr(e.msg, "recipe: not a regular file") != NULL,
	    "load: a directory (%s)", e.msg);
}

int
main(int argc, char **argv)
{
	const char *top = argc > 1 ? argv[1] : "tests/data";

	data_cases(top);
	merge_cases();
	merge_flags_cases();
	load_cases(top);
	return tap_done();
}
