/*
 * Recipes (bake/pep-recipe.5): a JSON file that says what a pep-bake
 * command line says (source, output, size, consoles, bootstrap, arch,
 * epoch, root partition, pexi-boot) plus the content operations, parsed
 * into the same struct bake_opts and struct content_op array the
 * command line fills, so a recipe and flags are one pipeline.
 *
 * Parsing is strict: an unknown key (with the nearest known one
 * suggested), a duplicate key, a wrong type, a missing field, a bad value
 * and two operations in one object are errors. Every error is
 * PEP_EUSAGE (ENOMEM aside), one line, and names the recipe and where in
 * it the problem is:
 *
 *	NAME: .files[3].mode: expected an octal string like "0644"
 *	NAME:LINE:COLUMN: invalid JSON ...
 *
 * (the JSON path, jq's notation, "." for the whole recipe; a position
 * for text that is not JSON). Reading the file (recipe_load) is separate
 * from parsing a buffer (recipe_parse), which does no I/O.
 */
#ifndef PEP_RECIPE_H
#define PEP_RECIPE_H

#include <stddef.h>

#include "../common/err.h"
#include "bake.h"

#define RECIPE_MAXSIZE	(1u << 20)	/* bytes in a recipe file */

struct recipe_mem;

/*
 * A parsed recipe. Every string it points to (in o and ops) is the
 * recipe's own and lives until recipe_free; relative host paths are
 * already joined to the recipe's directory.
 */
struct recipe {
	const char *name;	/* as given to recipe_parse */
	/*
	 * What the recipe sets, as the command line would set it; what it
	 * leaves out is left as a zeroed struct bake_opts has it (input
	 * and output NULL, size_set 0, root_part 0, nconsoles 0,
	 * epoch_set 0, no_pexi 0, arch NULL, bootstrap_set 0). o.ops and
	 * o.nops are the operations below.
	 */
	struct bake_opts o;
	/* The operations: every "files" entry in order, then every
	 * "services" entry in order. Each op's own is NULL. */
	struct content_op *ops;
	size_t nops;
	/* where[i]: the JSON path of ops[i] (".files[2]"), for messages. */
	const char **where;
	const char *source_where;	/* ".source" or ".source.path" */
	struct recipe_mem *mem;		/* private: the strings */
};

/*
 * Parse the recipe text buf[0..len) (not NUL-terminated; any bytes).
 * name is the recipe's name in messages. dir is the directory that
 * relative host paths (source, output, from, init, conf) are joined to,
 * or NULL to keep them as written. On success *rp is a new recipe (free
 * with recipe_free); on failure *rp is NULL and e says why, as above.
 */
int recipe_parse(const char *buf, size_t len, const char *name,
    const char *dir, struct recipe **rp, struct pep_err *e);

/*
 * Read and parse the file at path (at most RECIPE_MAXSIZE bytes); host
 * paths are relative to the file's directory. A file that cannot be read
 * is "PATH: why" (PEP_EUSAGE).
 */
int recipe_load(const char *path, struct recipe **rp, struct pep_err *e);

/* Free r and every string it holds (NULL is fine). */
void recipe_free(struct recipe *r);

/*
 * Put the recipe under the command line: o holds what the flags said;
 * every scalar setting they left out (see struct recipe) is taken from
 * r, no_pexi is either's, and o->ops becomes a new array, r's operations
 * then the command line's (o->ops[0..o->nops) on entry), which *opsp
 * also receives: the caller frees it with free() alone (the operations'
 * strings stay r's and the command line's, so r must outlive o).
 * Returns 0, or -ENOMEM.
 */
int recipe_merge(const struct recipe *r, struct bake_opts *o,
    struct content_op **opsp, struct pep_err *e);

/*
 * Before any work: every host file the recipe's operations name can be
 * read, and so can the source when use_source (the command line gave no
 * INPUT). One that cannot is "NAME: .files[2].from: PATH: why"
 * (PEP_EUSAGE). This only reports early: the bake opens them again.
 */
int recipe_check_host(const struct recipe *r, int use_source,
    struct pep_err *e);

#endif
