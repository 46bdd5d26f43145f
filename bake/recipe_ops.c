/*
 * A recipe's content operations (recipe.c has the rest of the parser):
 * the entries of "files" and "services", each an object that names one
 * operation by its kind key (op_kinds[]) with the fields that go with it
 * (op_fields[]), parsed into struct content_op; then the two sections
 * into the recipe in order, and the check that the host files they name
 * can be read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/vec.h"
#include "openrc.h"
#include "recipe_priv.h"

/* ------------------------------------------------------------ values */

/* Decimal digits only, at most max. */
static int
dec_u32(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	unsigned long long v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* -------------------------------------------------------- operations */

enum op_field {
	F_CONTENT, F_MODE, F_OWNER, F_FROM, F_TARGET, F_LINE, F_INIT, F_CONF,
	F_RUNLEVEL, F_N
};

#define FB(f)	(1u << (f))

typedef int op_parse_fn(struct rctx *c, const cJSON *v,
    struct content_op *op);

/* A field that goes with an operation, and its parser. */
struct op_field_info {
	const char *name;
	op_parse_fn *parse;
};

/*
 * An operation: its kind key (whose value is the path in the image, or
 * the service's name), the section it belongs in, the fields it takes
 * and those it needs (bits FB(F_...)).
 */
struct op_kind {
	const char *key;
	enum content_kind kind;
	int section;
	op_parse_fn *parse;
	unsigned fields, needs;
};

static int
f_content(struct rctx *c, const cJSON *v, struct content_op *op)
{
	int r = recipe_copy_string(c, v, "a string", 1, &op->text);

	op->textlen = r == 0 ? strlen(op->text) : 0;
	return r;
}

static int
f_mode(struct rctx *c, const cJSON *v, struct content_op *op)
{
	const char *s = cJSON_IsString(v) ? v->valuestring : "";
	unsigned long m = 0;
	size_t i, n = strlen(s);

	for (i = 0; i < n && s[i] >= '0' && s[i] <= '7' && m <= 07777; i++)
		m = m * 8 + (unsigned long)(s[i] - '0');
	if (n == 0 || i < n || m > 07777)
		return recipe_err(c, "expected an octal string like \"0644\" "
		    "(at most \"7777\")");
	op->mode = (uint32_t)m;
	op->has_mode = 1;
	return 0;
}

static int
f_owner(struct rctx *c, const cJSON *v, struct content_op *op)
{
	const char *s = cJSON_IsString(v) ? v->valuestring : "";
	const char *colon = strchr(s, ':');

	if (colon == NULL ||
	    dec_u32(s, (size_t)(colon - s), UINT32_MAX - 1, &op->uid) < 0 ||
	    dec_u32(colon + 1, strlen(colon + 1), UINT32_MAX - 1,
	    &op->gid) < 0)
		return recipe_err(c, "expected \"UID:GID\", numbers, like "
		    "\"0:0\"");
	op->has_owner = 1;
	return 0;
}

static int
f_host(struct rctx *c, const cJSON *v, struct content_op *op)
{
	return recipe_host_path(c, v, &op->host);
}

static int
f_conf(struct rctx *c, const cJSON *v, struct content_op *op)
{
	return recipe_host_path(c, v, &op->conf);
}

static int
f_target(struct rctx *c, const cJSON *v, struct content_op *op)
{
	int r = recipe_copy_string(c, v, "a link target", 0, &op->text);

	op->textlen = r == 0 ? strlen(op->text) : 0;
	if (r == 0 && op->textlen > FS_SYMLINK_MAX)
		return recipe_err(c, "a link target is at most %d bytes",
		    FS_SYMLINK_MAX);
	return r;
}

static int
f_runlevel(struct rctx *c, const cJSON *v, struct content_op *op)
{
	const char *s;
	int r = recipe_get_string(c, v, "a runlevel name, like \"default\"",
	    &s);

	if (r == 0 && !openrc_name_ok(s))
		return recipe_err(c, "expected a runlevel name (not empty, no "
		    "'/')");
	return r < 0 ? r : recipe_copy_string(c, v, "", 0, &op->runlevel);
}

static const struct op_field_info op_fields[F_N] = {
	[F_CONTENT] = { "content", f_content },
	[F_MODE] = { "mode", f_mode },
	[F_OWNER] = { "owner", f_owner },
	[F_FROM] = { "from", f_host },
	[F_TARGET] = { "target", f_target },
	[F_LINE] = { "line", f_content },
	[F_INIT] = { "init", f_host },
	[F_CONF] = { "conf", f_conf },
	[F_RUNLEVEL] = { "runlevel", f_runlevel },
};

/* A kind key's value: the path in the image the operation acts on. */
static int
k_image(struct rctx *c, const cJSON *v, struct content_op *op)
{
	return recipe_image_path(c, v, &op->path);
}

/* ... or the service it acts on. */
static int
k_service(struct rctx *c, const cJSON *v, struct content_op *op)
{
	const char *s;
	int r = recipe_get_string(c, v, "a service name, like \"sshd\"", &s);

	if (r == 0 && !openrc_name_ok(s))
		return recipe_err(c, "expected a service name (not empty, no "
		    "'/')");
	op->path = "/etc/init.d";
	return r < 0 ? r : recipe_copy_string(c, v, "", 0, &op->name);
}

static const struct op_kind op_kinds[] = {
	{ "write", CONTENT_WRITE, SEC_FILES, k_image,
	  FB(F_CONTENT) | FB(F_MODE) | FB(F_OWNER), FB(F_CONTENT) },
	{ "upload", CONTENT_UPLOAD, SEC_FILES, k_image,
	  FB(F_FROM), FB(F_FROM) },
	{ "copy_in", CONTENT_COPY_IN, SEC_FILES, k_image,
	  FB(F_FROM), FB(F_FROM) },
	{ "tar_in", CONTENT_TAR_IN, SEC_FILES, k_image,
	  FB(F_FROM), FB(F_FROM) },
	{ "mkdir", CONTENT_MKDIR, SEC_FILES, k_image, 0, 0 },
	{ "link", CONTENT_LINK, SEC_FILES, k_image,
	  FB(F_TARGET), FB(F_TARGET) },
	{ "chmod", CONTENT_CHMOD, SEC_FILES, k_image,
	  FB(F_MODE), FB(F_MODE) },
	{ "chown", CONTENT_CHOWN, SEC_FILES, k_image,
	  FB(F_OWNER), FB(F_OWNER) },
	{ "delete", CONTENT_DELETE, SEC_FILES, k_image, 0, 0 },
	{ "append_line", CONTENT_APPEND_LINE, SEC_FILES, k_image,
	  FB(F_LINE), FB(F_LINE) },
	{ "touch", CONTENT_TOUCH, SEC_FILES, k_image, 0, 0 },
	{ "service", CONTENT_SERVICE, SEC_SERVICES, k_service,
	  FB(F_INIT) | FB(F_CONF) | FB(F_RUNLEVEL), FB(F_INIT) },
	{ "enable", CONTENT_ENABLE, SEC_SERVICES, k_service,
	  FB(F_RUNLEVEL), 0 },
	{ "disable", CONTENT_DISABLE, SEC_SERVICES, k_service,
	  FB(F_RUNLEVEL), 0 },
};

static const size_t op_nkinds = sizeof(op_kinds) / sizeof(op_kinds[0]);

static const char *const sec_names[SEC_N] = { "files", "services" };

static const struct op_kind *
kind_of(const char *key)
{
	size_t i;

	for (i = 0; i < op_nkinds; i++)
		if (strcmp(op_kinds[i].key, key) == 0)
			return &op_kinds[i];
	return NULL;
}

static int
field_of(const char *key)
{
	int f;

	for (f = 0; f < F_N; f++)
		if (strcmp(op_fields[f].name, key) == 0)
			return f;
	return -1;
}

/* The kind keys of section sec (or of every section, sec < 0). */
static size_t
kind_names(int sec, const char **names, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < op_nkinds && n < max; i++)
		if (sec < 0 || op_kinds[i].section == sec)
			names[n++] = op_kinds[i].key;
	return n;
}

/* An object with no kind key: a misspelt one, or none at all. */
static int
op_no_kind(struct rctx *c, const cJSON *o, int sec)
{
	const char *names[32], *near;
	char list[PEP_ERR_MSGLEN];
	const cJSON *v;
	size_t n = kind_names(-1, names, 32), mark;
	int r;

	cJSON_ArrayForEach(v, o) {
		near = field_of(v->string) < 0 ?
		    recipe_nearest(v->string, names, n) : NULL;
		if (near == NULL)
			continue;
		mark = recipe_path_key(c, v->string);
		r = recipe_err(c, "unknown key (did you mean \"%s\"?)", near);
		recipe_path_set(c, mark);
		return r;
	}
	n = kind_names(sec, names, 32);
	return recipe_err(c, "no operation (expected one of %s)",
	    recipe_name_list(names, n, list, sizeof(list)));
}

/* The one kind key of object o. */
static int
op_kind_find(struct rctx *c, const cJSON *o, int sec,
    const struct op_kind **kp)
{
	const struct op_kind *k;
	const cJSON *v;
	size_t mark;
	int r;

	*kp = NULL;
	cJSON_ArrayForEach(v, o) {
		k = kind_of(v->string);
		if (k == NULL)
			continue;
		if (*kp == NULL) {
			*kp = k;
			continue;
		}
		if (k != *kp)
			return recipe_err(c, "two operations in one object "
			    "(\"%s\" and \"%s\"): give each its own",
			    (*kp)->key, k->key);
		mark = recipe_path_key(c, v->string);
		r = recipe_err(c, "duplicate key");
		recipe_path_set(c, mark);
		return r;
	}
	return *kp != NULL ? 0 : op_no_kind(c, o, sec);
}

/* A key the operation k does not take. */
static int
op_not_field(struct rctx *c, const struct op_kind *k, const char *key)
{
	const char *names[F_N], *near;
	char list[PEP_ERR_MSGLEN];
	size_t n = 0;
	int f;

	for (f = 0; f < F_N; f++)
		if (k->fields & FB(f))
			names[n++] = op_fields[f].name;
	near = recipe_nearest(key, names, n);
	if (near != NULL)
		return recipe_err(c, "unknown key (did you mean \"%s\"?)",
		    near);
	if (n == 0)
		return recipe_err(c, "unknown key (\"%s\" takes nothing more)",
		    k->key);
	return recipe_err(c, "unknown key (\"%s\" takes %s)", k->key,
	    recipe_name_list(names, n, list, sizeof(list)));
}

/* One key of an operation object whose kind is k. */
static int
op_key(struct rctx *c, const struct op_kind *k, const cJSON *v,
    unsigned *seen, struct content_op *op)
{
	int f = field_of(v->string);

	if (kind_of(v->string) == k)
		return k->parse(c, v, op);
	if (f < 0 || !(k->fields & FB(f)))
		return op_not_field(c, k, v->string);
	if (*seen & FB(f))
		return recipe_err(c, "duplicate key");
	*seen |= FB(f);
	return op_fields[f].parse(c, v, op);
}

/* The keys of operation object o, whose kind is k, into op. */
static int
op_keys(struct rctx *c, const cJSON *o, const struct op_kind *k,
    struct content_op *op)
{
	unsigned seen = 0, missing;
	const cJSON *v;
	size_t mark;
	int r, f;

	cJSON_ArrayForEach(v, o) {
		mark = recipe_path_key(c, v->string);
		r = op_key(c, k, v, &seen, op);
		recipe_path_set(c, mark);
		if (r < 0)
			return r;
	}
	missing = k->needs & ~seen;
	for (f = 0; f < F_N && missing != 0; f++) {
		if (!(missing & FB(f)))
			continue;
		mark = recipe_path_add(c, ".%s", op_fields[f].name);
		r = recipe_err(c, "missing (\"%s\" needs it)", k->key);
		recipe_path_set(c, mark);
		return r;
	}
	return 0;
}

static int
ops_push(struct rctx *c, int sec, const struct content_op *op)
{
	struct opvec *s = &c->sec[sec];

	if (vec_room((void **)&s->v, s->n, &s->cap, sizeof(*s->v)) < 0 ||
	    vec_room((void **)&s->where, s->n, &s->capw,
	    sizeof(*s->where)) < 0)
		return recipe_nomem(c);
	s->where[s->n] = recipe_join(c->r, c->path, NULL);
	if (s->where[s->n] == NULL)
		return recipe_nomem(c);
	s->v[s->n++] = *op;
	return 0;
}

static int
parse_op(struct rctx *c, const cJSON *o, int sec)
{
	const struct op_kind *k = NULL;
	struct content_op op;
	size_t mark;
	int r;

	if (!cJSON_IsObject(o))
		return recipe_err(c, "expected an object naming one operation, "
		    "like {\"%s\": ...}", sec == SEC_FILES ? "mkdir" :
		    "enable");
	r = op_kind_find(c, o, sec, &k);
	if (r == 0 && k->section != sec) {
		mark = recipe_path_key(c, k->key);
		r = recipe_err(c, "\"%s\" goes in \"%s\", not \"%s\"", k->key,
		    sec_names[k->section], sec_names[sec]);
		recipe_path_set(c, mark);
	}
	if (r < 0)
		return r;
	memset(&op, 0, sizeof(op));
	op.kind = k->kind;
	r = op_keys(c, o, k, &op);
	return r < 0 ? r : ops_push(c, sec, &op);
}

static int
walk_ops(struct rctx *c, const cJSON *v, int sec)
{
	const cJSON *it;
	size_t i = 0, mark;
	int r;

	if (!cJSON_IsArray(v))
		return recipe_err(c, "expected an array of operations, like "
		    "[{\"%s\": ...}]", sec == SEC_FILES ? "mkdir" : "enable");
	cJSON_ArrayForEach(it, v) {
		mark = recipe_path_add(c, "[%zu]", i++);
		r = parse_op(c, it, sec);
		recipe_path_set(c, mark);
		if (r < 0)
			return r;
	}
	return 0;
}

int
recipe_ops_files(struct rctx *c, const cJSON *v)
{
	return walk_ops(c, v, SEC_FILES);
}

int
recipe_ops_services(struct rctx *c, const cJSON *v)
{
	return walk_ops(c, v, SEC_SERVICES);
}

/* -------------------------------------------------------- the recipe */

/* The operations of both sections into r: files, then services. */
int
recipe_ops_finish(struct rctx *c)
{
	struct recipe *r = c->r;
	size_t n = c->sec[SEC_FILES].n + c->sec[SEC_SERVICES].n, i, k = 0;
	int s;

	r->ops = calloc(n ? n : 1, sizeof(*r->ops));
	r->where = calloc(n ? n : 1, sizeof(*r->where));
	if (r->ops == NULL || r->where == NULL)
		return recipe_nomem(c);
	for (s = 0; s < SEC_N; s++) {
		for (i = 0; i < c->sec[s].n; i++, k++) {
			r->ops[k] = c->sec[s].v[i];
			r->where[k] = c->sec[s].where[i];
		}
	}
	r->nops = n;
	r->o.ops = r->ops;
	r->o.nops = n;
	return 0;
}

/* -------------------------------------------------------- host files */

/* A host file an operation reads, and the field that names it. */
static int
check_one(const struct recipe *r, const char *where, const char *field,
    const char *path, struct pep_err *e)
{
	if (path == NULL || access(path, R_OK) == 0)
		return 0;
	return pep_errf(e, PEP_EUSAGE, "%s: %s%s: %s: %s", r->name, where,
	    field, path, strerror(errno));
}

int
recipe_check_host(const struct recipe *r, int use_source,
    struct pep_err *e)
{
	const struct content_op *op;
	size_t i;
	int rc = 0;

	if (use_source)
		rc = check_one(r, r->source_where, "", r->o.input, e);
	for (i = 0; i < r->nops && rc == 0; i++) {
		op = &r->ops[i];
		if (op->kind == CONTENT_SERVICE) {
			rc = check_one(r, r->where[i], ".init", op->host, e);
			if (rc == 0)
				rc = check_one(r, r->where[i], ".conf",
				    op->conf, e);
		} else {
			rc = check_one(r, r->where[i], ".from", op->host, e);
		}
	}
	return rc;
}
