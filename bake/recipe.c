/*
 * Recipes: a JSON file parsed (cJSON) into the struct bake_opts and the
 * content operations a command line gives (recipe.h; the schema is
 * bake/pep-recipe.5). Keys are looked up in tables, each entry naming
 * the parser of its value: top_keys[] for the recipe, source_keys[] for
 * an object "source", op_kinds[] for the operation an entry of "files"
 * or "services" names (its kind key) and op_fields[] for the fields that
 * go with it. While it descends, the parser keeps the JSON path of the
 * value at hand, which every message starts with.
 *
 * This file holds the recipe's own keys, the text, loading and the merge
 * with the command line; the content operations ("files", "services":
 * op_kinds[], op_fields[]) are recipe_ops.c's, and the parser's tools
 * both use (strings, the JSON path, errors, suggestions, values)
 * recipe_parse.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/cli.h"
#include "edit.h"
#include "recipe_priv.h"

#define RECIPE_MAXBYTES	(1ULL << 53)	/* a size as a JSON number */

/* A key of an object and the parser of its value. */
struct rkey {
	const char *name;
	int (*parse)(struct rctx *c, const cJSON *v);
};

/*
 * "NAME" and a separator in front of the message in e, every control
 * character made '?': keys and values quoted from the recipe stay on one
 * line.
 */
static int
name_error(struct pep_err *e, const char *name, const char *sep, int r)
{
	char msg[PEP_ERR_MSGLEN];
	size_t i;

	if (e == NULL)
		return r;
	memcpy(msg, e->msg, sizeof(msg));
	msg[sizeof(msg) - 1] = '\0';
	r = pep_errf(e, r, "%s%s%s", name, sep, msg);
	for (i = 0; e->msg[i] != '\0'; i++)
		if ((unsigned char)e->msg[i] < 0x20 || e->msg[i] == 0x7f)
			e->msg[i] = '?';
	return r;
}

/* "unknown key (did you mean "x"?)", or the keys there are. */
static int
unknown_key(struct rctx *c, const char *key, const char *const *names,
    size_t n)
{
	const char *near = recipe_nearest(key, names, n);
	char list[PEP_ERR_MSGLEN];

	if (near != NULL)
		return recipe_err(c, "unknown key (did you mean \"%s\"?)",
		    near);
	return recipe_err(c, "unknown key (expected %s)",
	    recipe_name_list(names, n, list, sizeof(list)));
}

static int
get_int(struct rctx *c, const cJSON *v, long long lo, long long hi,
    long long *out)
{
	double d = cJSON_IsNumber(v) ? v->valuedouble : (double)lo - 1;

	/* In range before the cast: a double past long long has none. */
	if (d >= (double)lo && d <= (double)hi &&
	    d == (double)(long long)d) {
		*out = (long long)d;
		return 0;
	}
	return recipe_err(c, "expected an integer from %lld to %lld", lo, hi);
}

/* ----------------------------------------------------------- objects */

static size_t
key_index(const struct rkey *keys, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(keys[i].name, name) == 0)
			break;
	return i;
}

static int
key_unknown(struct rctx *c, const char *key, const struct rkey *keys,
    size_t n)
{
	const char *names[16];
	size_t i;

	for (i = 0; i < n && i < sizeof(names) / sizeof(names[0]); i++)
		names[i] = keys[i].name;
	return unknown_key(c, key, names, i);
}

/*
 * Every key of object o through its parser in keys[0..n) (at most 32),
 * in the object's order; an unknown or repeated key is an error. what
 * says what o should be, for a value that is no object.
 */
static int
walk_object(struct rctx *c, const cJSON *o, const struct rkey *keys,
    size_t n, const char *what)
{
	unsigned long seen = 0;
	const cJSON *v;
	size_t i, mark;
	int r;

	if (!cJSON_IsObject(o))
		return recipe_err(c, "expected %s", what);
	cJSON_ArrayForEach(v, o) {
		mark = recipe_path_key(c, v->string);
		i = key_index(keys, n, v->string);
		if (i == n)
			r = key_unknown(c, v->string, keys, n);
		else if (seen & 1UL << i)
			r = recipe_err(c, "duplicate key");
		else
			r = keys[i].parse(c, v);
		seen |= i < n ? 1UL << i : 0;
		recipe_path_set(c, mark);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------ source */

static int
k_source_path(struct rctx *c, const cJSON *v)
{
	int r = recipe_host_path(c, v, &c->r->o.input);

	if (r == 0)
		c->r->source_where = recipe_join(c->r, c->path, NULL);
	return r == 0 && c->r->source_where == NULL ? recipe_nomem(c) : r;
}

static int
k_source_later(struct rctx *c, const cJSON *v)
{
	(void)v;
	return recipe_err(c, "downloads are not supported yet: give the "
	    "image's local \"path\"");
}

static const struct rkey source_keys[] = {
	{ "path", k_source_path },
	{ "sha512", k_source_later },
	{ "url", k_source_later },
};

static int
k_source(struct rctx *c, const cJSON *v)
{
	size_t mark;
	int r;

	if (cJSON_IsString(v))
		return k_source_path(c, v);
	r = walk_object(c, v, source_keys, sizeof(source_keys) /
	    sizeof(source_keys[0]), "a file name or an object like "
	    "{\"path\": FILE}");
	if (r == 0 && c->r->o.input == NULL) {
		mark = recipe_path_add(c, ".path");
		r = recipe_err(c, "missing (the image to bake)");
		recipe_path_set(c, mark);
	}
	return r;
}

/* ---------------------------------------------------------- settings */

static int
k_output(struct rctx *c, const cJSON *v)
{
	return recipe_host_path(c, v, &c->r->o.output);
}

static int
k_description(struct rctx *c, const cJSON *v)
{
	const char *s;

	return recipe_get_string(c, v, "a string", &s);
}

static int
k_arch(struct rctx *c, const cJSON *v)
{
	char list[256], buf[64];
	const char *s;
	int r = recipe_get_string(c, v,
	    "an Alpine architecture, like \"x86_64\"", &s);

	if (r < 0)
		return r;
	if (!pexi_arch_known(s)) {
		pexi_arch_names(list, sizeof(list));
		return recipe_err(c, "\"%s\" is not an Alpine architecture "
		    "(expected one of %s)", recipe_shown(s, buf, sizeof(buf)),
		    list);
	}
	return recipe_copy_string(c, v, "", 0, &c->r->o.arch);
}

static int
k_size(struct rctx *c, const cJSON *v)
{
	struct bake_opts *o = &c->r->o;
	double d = cJSON_IsNumber(v) ? v->valuedouble : 0;

	if (d >= 1 && d <= (double)RECIPE_MAXBYTES &&
	    d == (double)(uint64_t)d)
		o->size = (uint64_t)d;
	else if (!cJSON_IsString(v) ||
	    cli_parse_size(v->valuestring, &o->size) < 0)
		o->size = 0;
	if (o->size == 0)
		return recipe_err(c, "expected a size like \"2G\" or a number "
		    "of bytes");
	if (o->size % 512 != 0)
		return recipe_err(c, "%llu bytes is not a multiple of 512",
		    (unsigned long long)o->size);
	o->size_set = 1;
	return 0;
}

static int
k_console(struct rctx *c, const cJSON *v)
{
	struct bake_opts *o = &c->r->o;
	struct pep_err ce = { 0, "" };
	const cJSON *it;
	size_t mark;
	int r = 0;

	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
	    cJSON_GetArraySize(v) > BAKE_MAXCONSOLES)
		return recipe_err(c, "expected an array of 1 to %d console "
		    "names, like [\"hvc0\"]", BAKE_MAXCONSOLES);
	o->nconsoles = 0;
	cJSON_ArrayForEach(it, v) {
		mark = recipe_path_add(c, "[%zu]", o->nconsoles);
		r = recipe_copy_string(c, it, "a console name, like \"hvc0\"",
		    0, &o->consoles[o->nconsoles]);
		if (r == 0 && console_check(it->valuestring, &ce) < 0)
			r = recipe_err(c, "%s", ce.msg);
		recipe_path_set(c, mark);
		if (r < 0)
			return r;
		o->nconsoles++;
	}
	return 0;
}

static int
k_bootstrap(struct rctx *c, const cJSON *v)
{
	int b = cJSON_IsString(v) ? setup_bootstrap_of(v->valuestring) : -1;

	if (b < 0)
		return recipe_err(c, "expected \"auto\", \"cloud-init\", "
		    "\"tiny-cloud\" or \"none\"");
	c->r->o.bootstrap = (enum bake_bootstrap)b;
	c->r->o.bootstrap_set = 1;
	return 0;
}

static int
k_epoch(struct rctx *c, const cJSON *v)
{
	long long n = 0;
	int r = get_int(c, v, 0, INT32_MAX, &n);

	c->r->o.epoch = (time_t)n;
	c->r->o.epoch_set = r == 0;
	return r;
}

static int
k_root_partition(struct rctx *c, const cJSON *v)
{
	long long n = 0;
	int r = get_int(c, v, 1, LAYOUT_MAXPARTS, &n);

	c->r->o.root_part = r == 0 ? (int)n : 0;
	return r;
}

static int
k_pexi(struct rctx *c, const cJSON *v)
{
	if (!cJSON_IsBool(v))
		return recipe_err(c, "expected true or false");
	c->r->o.no_pexi = cJSON_IsFalse(v);
	return 0;
}

/*
 * The runner's configuration, an object, kept as cJSON prints it (tabs,
 * a line end after it): pexi.c writes it to /etc/pexi/config.json. Its
 * keys are the runner's to check (guest-init/intercept/README.md).
 */
static int
k_pexi_config(struct rctx *c, const cJSON *v)
{
	struct bake_opts *o = &c->r->o;
	char *text, *s;
	size_t n;

	if (!cJSON_IsObject(v))
		return recipe_err(c, "expected an object: the intercept "
		    "runner's configuration, like {\"visits\": "
		    "[\"http://example.com/\"]}");
	text = cJSON_Print(v);
	if (text == NULL)
		return recipe_nomem(c);
	n = strlen(text);
	s = recipe_alloc(c->r, n + 2);
	if (s != NULL) {
		memcpy(s, text, n);
		s[n] = '\n';
		s[n + 1] = '\0';
		o->pexi_config = s;
		o->pexi_config_len = n + 1;
	}
	cJSON_free(text);
	return s == NULL ? recipe_nomem(c) : 0;
}

/* ---------------------------------------------------------- the recipe */

static const struct rkey top_keys[] = {
	{ "source", k_source },
	{ "output", k_output },
	{ "arch", k_arch },
	{ "size", k_size },
	{ "console", k_console },
	{ "bootstrap", k_bootstrap },
	{ "epoch", k_epoch },
	{ "root_partition", k_root_partition },
	{ "pexi", k_pexi },
	{ "pexi_config", k_pexi_config },
	{ "files", recipe_ops_files },
	{ "services", recipe_ops_services },
	{ "description", k_description },
};

#define NTOP_KEYS (sizeof(top_keys) / sizeof(top_keys[0]))

/* ----------------------------------------------------------- the text */

/* "NAME:LINE:COLUMN: what" for the byte at (1-based, in bytes). */
static int
text_error(const char *name, const char *buf, const char *at,
    const char *what, struct pep_err *e)
{
	size_t line = 1, col = 1;
	const char *p;

	for (p = buf; p < at; p++) {
		col++;
		if (*p == '\n') {
			line++;
			col = 1;
		}
	}
	return pep_errf(e, PEP_EUSAGE, "%s:%zu:%zu: %s", name, line, col,
	    what);
}

/*
 * In a valid JSON text, the first string holding what a recipe cannot
 * carry: a raw control character (not valid JSON, which cJSON lets
 * through) or a \u0000 (cJSON would cut the string short there).
 */
static const char *
text_bad_string(const char *p, const char *end, const char **why)
{
	int in = 0;

	for (; p < end; p++) {
		if (*p == '"') {
			in = !in;
		} else if (in && (unsigned char)*p < 0x20) {
			*why = "invalid JSON: a control character in a string "
			    "(write it as \\n, \\t or \\u00XX)";
			return p;
		} else if (in && *p == '\\') {
			if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) {
				*why = "a string holds \\u0000, which a recipe "
				    "cannot carry";
				return p;
			}
			p++;
		}
	}
	return NULL;
}

static int
is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* 1 if buf[0..len) ends inside a string or an unclosed [ or {. */
static int
text_unclosed(const char *p, const char *end)
{
	long depth = 0;
	int in = 0;

	for (; p < end; p++) {
		if (in && *p == '\\')
			p++;
		else if (*p == '"')
			in = !in;
		else if (!in && (*p == '{' || *p == '['))
			depth++;
		else if (!in && (*p == '}' || *p == ']'))
			depth--;
	}
	return in || depth > 0;
}

/*
 * Why cJSON stopped at at in buf[0..len). Where it says is near the
 * fault, not always on it (after a trailing comma it points past the
 * bracket), hence "near".
 */
static int
text_invalid(const char *name, const char *buf, size_t len, const char *at,
    struct pep_err *e)
{
	const char *p, *last = NULL;
	char what[64];

	for (p = buf; p < buf + len; p++)
		if (!is_blank(*p))
			last = p;
	if (last == NULL)
		return text_error(name, buf, buf + len, "invalid JSON: no "
		    "value (a recipe is an object: {...})", e);
	if (text_unclosed(buf, buf + len))
		return text_error(name, buf, buf + len, "invalid JSON: "
		    "unexpected end of text", e);
	if (at == NULL || at < buf || at > last)
		at = last;
	snprintf(what, sizeof(what), (unsigned char)*at > 0x20 &&
	    (unsigned char)*at < 0x7f ? "invalid JSON near '%c'" :
	    "invalid JSON near byte 0x%02x", (unsigned char)*at);
	return text_error(name, buf, at, what, e);
}

/*
 * buf[0..len) as one JSON value, or "NAME:LINE:COL: why". cJSON parses
 * a NUL-terminated copy.
 */
static int
text_parse(const char *buf, size_t len, const char *name, cJSON **root,
    struct pep_err *e)
{
	const char *end = NULL, *why = NULL, *p, *bad;
	char *t = malloc(len + 1);
	int r = 0;

	*root = NULL;
	if (t == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", name);
	memcpy(t, buf, len);
	t[len] = '\0';
	*root = cJSON_ParseWithLengthOpts(t, len, &end, 0);
	if (*root == NULL) {
		r = text_invalid(name, t, len, end, e);
		goto out;
	}
	for (p = end; p < t + len && is_blank(*p); p++)
		;
	bad = text_bad_string(t, end, &why);
	if (bad == NULL && p < t + len) {
		bad = p;
		why = "invalid JSON: text after the recipe's value";
	}
	if (bad != NULL) {
		cJSON_Delete(*root);
		*root = NULL;
		r = text_error(name, t, bad, why, e);
	}
out:
	free(t);
	return r;
}

/* ------------------------------------------------------------ public */

void
recipe_free(struct recipe *r)
{
	struct recipe_mem *m, *next;

	if (r == NULL)
		return;
	for (m = r->mem; m != NULL; m = next) {
		next = m->next;
		free(m);
	}
	free(r->ops);
	free(r->where);
	free(r);
}

int
recipe_parse(const char *buf, size_t len, const char *name,
    const char *dir, struct recipe **rp, struct pep_err *e)
{
	struct rctx c;
	cJSON *root = NULL;
	int r, s;

	*rp = NULL;
	memset(&c, 0, sizeof(c));
	c.dir = dir != NULL && dir[0] != '\0' ? dir : NULL;
	c.e = e;
	c.r = calloc(1, sizeof(*c.r));
	if (c.r == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", name);
	c.r->name = recipe_join(c.r, name, NULL);
	r = c.r->name != NULL ? text_parse(buf, len, name, &root, e) :
	    pep_errf(e, ENOMEM, "%s: out of memory", name);
	if (r == 0)
		r = walk_object(&c, root, top_keys, NTOP_KEYS, "an object");
	if (r == 0 && c.r->o.no_pexi && c.r->o.pexi_config != NULL) {
		recipe_path_add(&c, ".pexi_config");
		r = recipe_err(&c, "the runner's configuration, with \"pexi\": "
		    "false (no runner to read it)");
	}
	if (r == 0)
		r = recipe_ops_finish(&c);
	if (r < 0 && root != NULL)
		r = name_error(e, name, ": ", r);
	cJSON_Delete(root);
	for (s = 0; s < SEC_N; s++) {
		free(c.sec[s].v);
		free(c.sec[s].where);
	}
	if (r < 0)
		recipe_free(c.r);
	else
		*rp = c.r;
	return r;
}

/* The directory of the file at path, for host paths; NULL: the cwd. */
static char *
recipe_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	char *d;

	if (slash == NULL)
		return NULL;
	d = malloc(n + 1);
	if (d != NULL) {
		memcpy(d, path, n);
		d[n] = '\0';
	}
	return d;
}

static int
recipe_read(const char *path, char **bufp, size_t *lenp, struct pep_err *e)
{
	struct stat st;
	ssize_t got = 0;
	size_t len = 0;
	char *buf = NULL;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = pep_errf(e, PEP_EUSAGE, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) ||
	    (unsigned long long)st.st_size > RECIPE_MAXSIZE) {
		r = pep_errf(e, PEP_EUSAGE, "%s: %s", path, S_ISREG(st.st_mode)
		    ? "bigger than a recipe may be (1 MiB)" :
		    "not a regular file");
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	while (buf != NULL && len < (size_t)st.st_size) {
		got = read(fd, buf + len, (size_t)st.st_size - len);
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	if (buf == NULL || got < 0)
		r = pep_errf(e, PEP_EUSAGE, "%s: %s", path, buf == NULL ?
		    "out of memory" : strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		free(buf);
	*bufp = r < 0 ? NULL : buf;
	*lenp = len;
	return r;
}

int
recipe_load(const char *path, struct recipe **rp, struct pep_err *e)
{
	char *buf = NULL, *dir = NULL;
	size_t len = 0;
	int r;

	*rp = NULL;
	r = recipe_read(path, &buf, &len, e);
	if (r < 0)
		return r;
	dir = recipe_dir(path);
	if (dir == NULL && strchr(path, '/') != NULL)
		r = pep_errf(e, ENOMEM, "%s: out of memory", path);
	else
		r = recipe_parse(buf, len, path, dir, rp, e);
	free(dir);
	free(buf);
	return r;
}

static void
merge_scalars(const struct bake_opts *ro, struct bake_opts *o)
{
	size_t i;

	if (o->input == NULL)
		o->input = ro->input;
	if (o->output == NULL)
		o->output = ro->output;
	if (!o->size_set) {
		o->size = ro->size;
		o->size_set = ro->size_set;
	}
	if (o->root_part == 0)
		o->root_part = ro->root_part;
	for (i = 0; o->nconsoles == 0 && i < ro->nconsoles; i++)
		o->consoles[i] = ro->consoles[i];
	if (o->nconsoles == 0)
		o->nconsoles = ro->nconsoles;
	if (!o->epoch_set) {
		o->epoch = ro->epoch;
		o->epoch_set = ro->epoch_set;
	}
	if (o->arch == NULL)
		o->arch = ro->arch;
	if (!o->bootstrap_set) {
		o->bootstrap = ro->bootstrap;
		o->bootstrap_set = ro->bootstrap_set;
	}
	o->no_pexi = o->no_pexi || ro->no_pexi;
	if (o->pexi_config == NULL) {
		o->pexi_config = ro->pexi_config;
		o->pexi_config_len = ro->pexi_config_len;
	}
}

int
recipe_merge(const struct recipe *r, struct bake_opts *o,
    struct content_op **opsp, struct pep_err *e)
{
	size_t n = r->nops + o->nops;
	struct content_op *ops = calloc(n ? n : 1, sizeof(*ops));

	*opsp = NULL;
	if (ops == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (r->nops > 0)
		memcpy(ops, r->ops, r->nops * sizeof(*ops));
	if (o->nops > 0)
		memcpy(ops + r->nops, o->ops, o->nops * sizeof(*ops));
	merge_scalars(&r->o, o);
	o->ops = ops;
	o->nops = n;
	*opsp = ops;
	return 0;
}
