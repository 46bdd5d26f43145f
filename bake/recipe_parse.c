/*
 * The recipe parser's tools, used by recipe.c (the recipe's own keys)
 * and recipe_ops.c (the content operations): the recipe's strings, the
 * JSON path of the value at hand, errors that start with it, "did you
 * mean" suggestions, and string values.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipe_priv.h"

#define RECIPE_KEYSHOWN	40	/* bytes of a key shown in a path */
#define RECIPE_KEYNEAR	32	/* longer keys get no suggestion */

/* ------------------------------------------------------------ strings */

/* n bytes that live as long as r: recipe_free frees them all. */
char *
recipe_alloc(struct recipe *r, size_t n)
{
	struct recipe_mem *m = malloc(sizeof(*m) + n);

	if (m == NULL)
		return NULL;
	m->next = r->mem;
	r->mem = m;
	return m->s;
}

/* a, then "/" and b if b is given, as a new string of r's. */
char *
recipe_join(struct recipe *r, const char *a, const char *b)
{
	size_t la = strlen(a), lb = b != NULL ? strlen(b) : 0;
	int slash = b != NULL && (la == 0 || a[la - 1] != '/');
	char *s = recipe_alloc(r, la + (size_t)slash + lb + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, a, la);
	if (slash)
		s[la] = '/';
	if (b != NULL)
		memcpy(s + la + (size_t)slash, b, lb);
	s[la + (size_t)slash + lb] = '\0';
	return s;
}

/* s for a message: at most RECIPE_KEYSHOWN bytes, then "...". */
const char *
recipe_shown(const char *s, char *buf, size_t n)
{
	if (strlen(s) <= RECIPE_KEYSHOWN)
		return s;
	snprintf(buf, n, "%.*s...", RECIPE_KEYSHOWN, s);
	return buf;
}

/* ------------------------------------------------------ path, errors */

/* Append to the JSON path; returns the length to go back to. */
size_t
recipe_path_add(struct rctx *c, const char *fmt, ...)
{
	size_t mark = c->plen, room = sizeof(c->path) - c->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->path + c->plen, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		c->path[c->plen] = '\0';
	else
		c->plen += (size_t)n < room ? (size_t)n : room - 1;
	return mark;
}

/* ".key" for a key that is a name, ["key"] for any other (jq's way:
 * .["a b"] at the top). */
size_t
recipe_path_key(struct rctx *c, const char *key)
{
	char buf[RECIPE_KEYSHOWN + 4];
	const char *k = key;
	int name = isalpha((unsigned char)*k) || *k == '_';

	for (; *k != '\0' && name; k++)
		name = isalnum((unsigned char)*k) || *k == '_';
	if (name)
		return recipe_path_add(c, ".%s",
		    recipe_shown(key, buf, sizeof(buf)));
	return recipe_path_add(c, "%s[\"%s\"]", c->plen == 0 ? "." : "",
	    recipe_shown(key, buf, sizeof(buf)));
}

void
recipe_path_set(struct rctx *c, size_t mark)
{
	c->plen = mark;
	c->path[mark] = '\0';
}

/* "PATH: message" (PEP_EUSAGE); the recipe's name goes in front later. */
int
recipe_err(struct rctx *c, const char *fmt, ...)
{
	char msg[PEP_ERR_MSGLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return pep_errf(c->e, PEP_EUSAGE, "%s: %s",
	    c->plen > 0 ? c->path : ".", msg);
}

int
recipe_nomem(struct rctx *c)
{
	return pep_errf(c->e, ENOMEM, "%s: out of memory",
	    c->plen > 0 ? c->path : ".");
}

/* ------------------------------------------------------- suggestions */

static int
fold(int ch)
{
	return ch == '-' ? '_' : tolower(ch);
}

/* Optimal string alignment distance, case and '-' against '_' aside. */
static size_t
distance(const char *a, const char *b)
{
	size_t d[RECIPE_KEYNEAR + 1][RECIPE_KEYNEAR + 1];
	size_t la = strlen(a), lb = strlen(b), i, j, x, cost;

	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			cost = fold(a[i - 1]) != fold(b[j - 1]);
			x = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < x)
				x = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < x)
				x = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && fold(a[i - 1]) ==
			    fold(b[j - 2]) && fold(a[i - 2]) ==
			    fold(b[j - 1]) && d[i - 2][j - 2] + 1 < x)
				x = d[i - 2][j - 2] + 1;
			d[i][j] = x;
		}
	}
	return d[la][lb];
}

/* The name in names[0..n) nearest to key, if near enough, or NULL. */
const char *
recipe_nearest(const char *key, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t i, d, bestd = 3;

	if (strlen(key) > RECIPE_KEYNEAR)
		return NULL;
	for (i = 0; i < n; i++) {
		if (strlen(names[i]) > RECIPE_KEYNEAR)
			continue;
		d = distance(key, names[i]);
		if (d <= (strlen(names[i]) <= 4 ? 1u : 2u) && d < bestd) {
			best = names[i];
			bestd = d;
		}
	}
	return best;
}

/* names[0..n) as "a", "b", "c" into buf. */
const char *
recipe_name_list(const char *const *names, size_t n, char *buf, size_t len)
{
	size_t i, at = 0;
	int w;

	buf[0] = '\0';
	for (i = 0; i < n && at < len; i++) {
		w = snprintf(buf + at, len - at, "%s\"%s\"", i ? ", " : "",
		    names[i]);
		if (w < 0)
			break;
		at += (size_t)w;
	}
	return buf;
}

/* ------------------------------------------------------------ values */

int
recipe_get_string(struct rctx *c, const cJSON *v, const char *want,
    const char **out)
{
	*out = "";
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return recipe_err(c, "expected %s", want);
	*out = v->valuestring;
	return 0;
}

/* A copy of a string value (want: what it should be, for messages). */
int
recipe_copy_string(struct rctx *c, const cJSON *v, const char *want,
    int empty_ok, const char **out)
{
	const char *s;
	int r = recipe_get_string(c, v, want, &s);

	if (r < 0)
		return r;
	if (!empty_ok && s[0] == '\0')
		return recipe_err(c, "expected %s, not \"\"", want);
	*out = recipe_join(c->r, s, NULL);
	return *out == NULL ? recipe_nomem(c) : 0;
}

/* A host path, joined to the recipe's directory unless absolute. */
int
recipe_host_path(struct rctx *c, const cJSON *v, const char **out)
{
	const char *s;
	int r = recipe_get_string(c, v, "a file name (relative to the recipe)",
	    &s);

	if (r < 0)
		return r;
	if (s[0] == '\0')
		return recipe_err(c, "expected a file name, not \"\"");
	if (s[0] == '/' || c->dir == NULL)
		*out = recipe_join(c->r, s, NULL);
	else
		*out = recipe_join(c->r, c->dir, s);
	return *out == NULL ? recipe_nomem(c) : 0;
}

/* An absolute path in the image. */
int
recipe_image_path(struct rctx *c, const cJSON *v, const char **out)
{
	static const char want[] = "an absolute path in the image, like "
	    "\"/etc/motd\"";
	const char *s;
	int r = recipe_get_string(c, v, want, &s);

	if (r < 0)
		return r;
	if (s[0] != '/')
		return recipe_err(c, "expected %s", want);
	*out = recipe_join(c->r, s, NULL);
	return *out == NULL ? recipe_nomem(c) : 0;
}
