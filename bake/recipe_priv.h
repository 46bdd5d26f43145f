/*
 * Inside the recipe module (recipe.c, recipe_ops.c, recipe_parse.c
 * only): the parser's state and what its files share. Everyone else sees
 * recipe.h.
 */
#ifndef PEP_RECIPE_PRIV_H
#define PEP_RECIPE_PRIV_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "recipe.h"

#define RECIPE_PATHMAX	192	/* the JSON path kept for messages */

enum { SEC_FILES, SEC_SERVICES, SEC_N };

/* The operations of one section, as they are parsed. */
struct opvec {
	struct content_op *v;
	const char **where;	/* where[i]: v[i]'s JSON path */
	size_t n, cap, capw;
};

/* Every string a recipe holds: one allocation each, freed together. */
struct recipe_mem {
	struct recipe_mem *next;
	char s[];
};

/* Where the parser is: the recipe it fills and the value at hand. */
struct rctx {
	struct recipe *r;
	const char *dir;	/* relative host paths are joined to it */
	struct pep_err *e;
	struct opvec sec[SEC_N];
	char path[RECIPE_PATHMAX];	/* ".files[3].mode" */
	size_t plen;
};

/*
 * recipe_parse.c: the parser's tools (strings, the JSON path, errors,
 * suggestions, values); each function's comment is at its definition.
 */
char *recipe_alloc(struct recipe *r, size_t n);
char *recipe_join(struct recipe *r, const char *a, const char *b);
const char *recipe_shown(const char *s, char *buf, size_t n);
size_t recipe_path_add(struct rctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
size_t recipe_path_key(struct rctx *c, const char *key);
void recipe_path_set(struct rctx *c, size_t mark);
int recipe_err(struct rctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int recipe_nomem(struct rctx *c);
const char *recipe_nearest(const char *key, const char *const *names,
    size_t n);
const char *recipe_name_list(const char *const *names, size_t n, char *buf,
    size_t len);
int recipe_get_string(struct rctx *c, const cJSON *v, const char *want,
    const char **out);
int recipe_copy_string(struct rctx *c, const cJSON *v, const char *want,
    int empty_ok, const char **out);
int recipe_host_path(struct rctx *c, const cJSON *v, const char **out);
int recipe_image_path(struct rctx *c, const cJSON *v, const char **out);

/*
 * recipe_ops.c: the content operations. The parsers of the top keys
 * "files" and "services", and the two sections into the recipe.
 */
int recipe_ops_files(struct rctx *c, const cJSON *v);
int recipe_ops_services(struct rctx *c, const cJSON *v);
int recipe_ops_finish(struct rctx *c);

#endif
