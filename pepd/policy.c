/*
 * The local policy: default deny, deny rules win over allow rules, and
 * "report" mode allows everything but says what enforcing would deny.
 * Host patterns are exact names or IP literals, or "*.name", which
 * matches one or more labels below name but not name itself
 * (smokescreen's meaning). See pepd/pepd.conf.5.md.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pepd.h"

#define POLICY_IDMAX 128

/* Where we are, for messages: "policy.allow[2]". */
struct pctx {
	const char *where;
	struct pep_err *e;
};

static int
is_ip_literal(const char *h)
{
	uint8_t a[16];

	return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

static int
rule_host(struct policy_rule *r, const char *pat, const struct pctx *c)
{
	char buf[URL_HOSTMAX];
	const char *base = pat;

	if (strcmp(pat, "*") == 0)
		return pep_errf(c->e, EINVAL, "%s: host '*' would allow or "
		    "deny every host; list the domains", c->where);
	if (strncmp(pat, "*.", 2) == 0) {
		r->wildcard = 1;
		base = pat + 2;
	}
	if (strchr(base, '*') != NULL)
		return pep_errf(c->e, EINVAL, "%s: host '%s': only a leading "
		    "'*.' wildcard is allowed", c->where, pat);
	if (host_normalize(base, buf, sizeof(buf)) < 0)
		return pep_errf(c->e, EINVAL, "%s: host '%s' is not a valid "
		    "host name or IP address", c->where, pat);
	if (r->wildcard && is_ip_literal(buf))
		return pep_errf(c->e, EINVAL, "%s: host '%s': a wildcard "
		    "cannot apply to an IP address", c->where, pat);
	r->host = strdup(buf);
	return r->host == NULL ? pep_errf(c->e, ENOMEM, "out of memory") : 0;
}

static int
rule_schemes(struct policy_rule *r, const cJSON *v, const struct pctx *c)
{
	const cJSON *s;

	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
		goto bad;
	cJSON_ArrayForEach(s, v) {
		if (!cJSON_IsString(s))
			goto bad;
		if (strcmp(s->valuestring, "http") == 0)
			r->schemes |= POLICY_SCHEME_HTTP;
		else if (strcmp(s->valuestring, "https") == 0)
			r->schemes |= POLICY_SCHEME_HTTPS;
		else
			goto bad;
	}
	return 0;
bad:
	return pep_errf(c->e, EINVAL, "%s: 'schemes' must be a non-empty "
	    "array of \"http\" and \"https\"", c->where);
}

static int
rule_ports(struct policy_rule *r, const cJSON *v, const struct pctx *c)
{
	const cJSON *p;
	int n;

	n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
	if (n == 0)
		goto bad;
	r->ports = calloc((size_t)n, sizeof(*r->ports));
	if (r->ports == NULL)
		return pep_errf(c->e, ENOMEM, "out of memory");
	cJSON_ArrayForEach(p, v) {
		if (!cJSON_IsNumber(p) || p->valuedouble < 1 ||
		    p->valuedouble > 65535 ||
		    p->valuedouble != (double)(int)p->valuedouble)
			goto bad;
		r->ports[r->nports++] = (int)p->valuedouble;
	}
	return 0;
bad:
	return pep_errf(c->e, EINVAL, "%s: 'ports' must be a non-empty "
	    "array of integers 1..65535", c->where);
}

static int
rule_methods(struct policy_rule *r, const cJSON *v, const struct pctx *c)
{
	const cJSON *m;
	int n;

	n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
	if (n == 0)
		goto bad;
	r->methods = calloc((size_t)n, sizeof(*r->methods));
	if (r->methods == NULL)
		return pep_errf(c->e, ENOMEM, "out of memory");
	cJSON_ArrayForEach(m, v) {
		if (!cJSON_IsString(m) || !proto_is_token(m->valuestring, 64))
			goto bad;
		r->methods[r->nmethods] = strdup(m->valuestring);
		if (r->methods[r->nmethods] == NULL)
			return pep_errf(c->e, ENOMEM, "out of memory");
		r->nmethods++;
	}
	return 0;
bad:
	return pep_errf(c->e, EINVAL, "%s: 'methods' must be a non-empty "
	    "array of HTTP method tokens", c->where);
}

/*
 * Normalise the prefix the way url_parse normalises request paths, into
 * the form rules match (repeated slashes merged).
 */
static int
rule_path(struct policy_rule *r, const cJSON *v, const struct pctx *c)
{
	struct pep_url u;
	char *url;
	size_t n;
	int rc;

	if (!cJSON_IsString(v) || v->valuestring[0] != '/' ||
	    strchr(v->valuestring, '#') != NULL)
		return pep_errf(c->e, EINVAL, "%s: 'path_prefix' must be a "
		    "string starting with '/'", c->where);
	n = strlen(v->valuestring);
	url = malloc(n + sizeof("http://x"));
	if (url == NULL)
		return pep_errf(c->e, ENOMEM, "out of memory");
	memcpy(url, "http://x", 8);
	memcpy(url + 8, v->valuestring, n + 1);
	rc = url_parse(url, &u, NULL);
	free(url);
	if (rc < 0)
		return pep_errf(c->e, EINVAL, "%s: 'path_prefix' '%s' is not "
		    "a valid URL path", c->where, v->valuestring);
	r->path_prefix = u.match;
	u.match = NULL;
	url_free(&u);
	return 0;
}

static int
rule_id(struct policy_rule *r, const cJSON *v, const struct pctx *c)
{
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0' ||
	    strlen(v->valuestring) > POLICY_IDMAX)
		return pep_errf(c->e, EINVAL, "%s: 'id' must be a string of "
		    "1..%d characters", c->where, POLICY_IDMAX);
	free(r->id);
	r->id = strdup(v->valuestring);
	return r->id == NULL ? pep_errf(c->e, ENOMEM, "out of memory") : 0;
}

static int
rule_key(struct policy_rule *r, const cJSON *v, const struct pctx *c)
{
	if (strcmp(v->string, "id") == 0)
		return rule_id(r, v, c);
	if (strcmp(v->string, "host") == 0) {
		if (!cJSON_IsString(v))
			return pep_errf(c->e, EINVAL, "%s: 'host' must be a "
			    "string", c->where);
		return rule_host(r, v->valuestring, c);
	}
	if (strcmp(v->string, "schemes") == 0)
		return rule_schemes(r, v, c);
	if (strcmp(v->string, "ports") == 0)
		return rule_ports(r, v, c);
	if (strcmp(v->string, "methods") == 0)
		return rule_methods(r, v, c);
	if (strcmp(v->string, "path_prefix") == 0)
		return rule_path(r, v, c);
	return pep_errf(c->e, EINVAL, "%s: unknown key '%s'", c->where,
	    v->string);
}

static int
rule_object(struct policy_rule *r, const cJSON *o, const struct pctx *c)
{
	const cJSON *v;
	int rc;

	cJSON_ArrayForEach(v, o) {
		if (cJSON_GetObjectItemCaseSensitive(o, v->string) != v)
			return pep_errf(c->e, EINVAL, "%s: duplicate key '%s'",
			    c->where, v->string);
		rc = rule_key(r, v, c);
		if (rc < 0)
			return rc;
	}
	if (r->host == NULL)
		return pep_errf(c->e, EINVAL, "%s: missing 'host'", c->where);
	return 0;
}

static int
rule_parse(struct policy_rule *r, const cJSON *v, const char *list,
    size_t i, struct pep_err *e)
{
	char where[64];
	struct pctx c = { where, e };

	snprintf(where, sizeof(where), "policy.%s[%zu]", list, i);
	r->id = strdup(where + sizeof("policy.") - 1);
	if (r->id == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (cJSON_IsString(v))
		return rule_host(r, v->valuestring, &c);
	if (cJSON_IsObject(v))
		return rule_object(r, v, &c);
	return pep_errf(e, EINVAL, "%s: a rule is a host pattern string or "
	    "an object", where);
}

static void
rule_free(struct policy_rule *r)
{
	size_t i;

	free(r->id);
	free(r->host);
	free(r->ports);
	for (i = 0; i < r->nmethods; i++)
		free(r->methods[i]);
	free(r->methods);
	free(r->path_prefix);
}

static int
rules_parse(const cJSON *arr, const char *list, struct policy_rule **out,
    size_t *nout, struct pep_err *e)
{
	const cJSON *v;
	int n, rc;

	if (!cJSON_IsArray(arr))
		return pep_errf(e, EINVAL, "policy.%s must be an array", list);
	n = cJSON_GetArraySize(arr);
	if (n == 0)
		return 0;
	*out = calloc((size_t)n, sizeof(**out));
	if (*out == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	cJSON_ArrayForEach(v, arr) {
		rc = rule_parse(&(*out)[*nout], v, list, *nout, e);
		(*nout)++;
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
cidrs_parse(const cJSON *arr, struct policy *p, struct pep_err *e)
{
	const cJSON *v;
	int n;

	n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
	if (n < 0)
		return pep_errf(e, EINVAL, "policy.allow_private must be an "
		    "array of CIDR strings");
	if (n == 0)
		return 0;
	p->allow_private = calloc((size_t)n, sizeof(*p->allow_private));
	if (p->allow_private == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	cJSON_ArrayForEach(v, arr) {
		if (!cJSON_IsString(v) || cidr_parse(v->valuestring,
		    &p->allow_private[p->nallow_private]) < 0)
			return pep_errf(e, EINVAL, "policy.allow_private[%zu]: "
			    "not an address or CIDR", p->nallow_private);
		p->nallow_private++;
	}
	return 0;
}

static int
policy_mode(const cJSON *v, struct policy *p, struct pep_err *e)
{
	if (cJSON_IsString(v) && strcmp(v->valuestring, "enforce") == 0)
		p->mode = POLICY_ENFORCE;
	else if (cJSON_IsString(v) && strcmp(v->valuestring, "report") == 0)
		p->mode = POLICY_REPORT;
	else
		return pep_errf(e, EINVAL,
		    "policy.mode must be \"enforce\" or \"report\"");
	return 0;
}

static int
policy_key(const cJSON *v, struct policy *p, struct pep_err *e)
{
	if (strcmp(v->string, "mode") == 0)
		return policy_mode(v, p, e);
	if (strcmp(v->string, "allow") == 0)
		return rules_parse(v, "allow", &p->allow, &p->nallow, e);
	if (strcmp(v->string, "deny") == 0)
		return rules_parse(v, "deny", &p->deny, &p->ndeny, e);
	if (strcmp(v->string, "allow_private") == 0)
		return cidrs_parse(v, p, e);
	return pep_errf(e, EINVAL, "unknown key '%s' in 'policy'", v->string);
}

int
policy_from_json(const void *cjson_obj, struct policy **pp,
    struct pep_err *e)
{
	const cJSON *o = cjson_obj, *v;
	struct policy *p;
	int rc = 0;

	*pp = NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (o != NULL && !cJSON_IsObject(o)) {
		rc = pep_errf(e, EINVAL, "'policy' must be an object");
		goto out;
	}
	cJSON_ArrayForEach(v, o) {
		if (cJSON_GetObjectItemCaseSensitive(o, v->string) != v) {
			rc = pep_errf(e, EINVAL, "duplicate key '%s' in "
			    "'policy'", v->string);
			goto out;
		}
		rc = policy_key(v, p, e);
		if (rc < 0)
			goto out;
	}
out:
	if (rc < 0)
		policy_free(p);
	else
		*pp = p;
	return rc;
}

int
policy_from_domains(const char *list, struct policy **pp,
    struct pep_err *e)
{
	const char *sep = ", \t\r\n";
	cJSON *arr;
	char *copy, *tok, *save = NULL;
	int rc;

	*pp = NULL;
	copy = strdup(list != NULL ? list : "");
	arr = cJSON_CreateArray();
	rc = copy == NULL || arr == NULL ? -ENOMEM : 0;
	for (tok = rc == 0 ? strtok_r(copy, sep, &save) : NULL; tok != NULL;
	    tok = strtok_r(NULL, sep, &save))
		if (!cJSON_AddItemToArray(arr, cJSON_CreateString(tok)))
			rc = -ENOMEM;
	if (rc < 0) {
		rc = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	*pp = calloc(1, sizeof(**pp));
	if (*pp == NULL) {
		rc = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	rc = rules_parse(arr, "allow", &(*pp)->allow, &(*pp)->nallow, e);
	if (rc < 0) {
		policy_free(*pp);
		*pp = NULL;
	}
out:
	cJSON_Delete(arr);
	free(copy);
	return rc;
}

void
policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nallow; i++)
		rule_free(&p->allow[i]);
	for (i = 0; i < p->ndeny; i++)
		rule_free(&p->deny[i]);
	free(p->allow);
	free(p->deny);
	free(p->allow_private);
	free(p);
}

static int
host_match(const struct policy_rule *r, const struct pep_url *u)
{
	size_t hl, bl;

	if (!r->wildcard)
		return strcmp(u->host, r->host) == 0;
	if (u->host_is_ip)
		return 0;
	hl = strlen(u->host);
	bl = strlen(r->host);
	return hl > bl + 1 && u->host[hl - bl - 1] == '.' &&
	    strcmp(u->host + hl - bl, r->host) == 0;
}

static int
rule_match(const struct policy_rule *r, const char *method,
    const struct pep_url *u)
{
	unsigned int sch;
	size_t i;

	if (!host_match(r, u))
		return 0;
	sch = strcmp(u->scheme, "https") == 0 ? POLICY_SCHEME_HTTPS :
	    POLICY_SCHEME_HTTP;
	if (r->schemes != 0 && (r->schemes & sch) == 0)
		return 0;
	for (i = 0; i < r->nports && r->ports[i] != u->port; i++)
		;
	if (r->ports != NULL && i == r->nports)
		return 0;
	for (i = 0; i < r->nmethods && strcasecmp(r->methods[i], method); i++)
		;
	if (r->methods != NULL && i == r->nmethods)
		return 0;
	return r->path_prefix == NULL || strncmp(u->match, r->path_prefix,
	    strlen(r->path_prefix)) == 0;
}

static const struct policy_rule *
rules_find(const struct policy_rule *rules, size_t n, const char *method,
    const struct pep_url *u)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rule_match(&rules[i], method, u))
			return &rules[i];
	return NULL;
}

void
policy_decide(const struct policy *p, const char *method,
    const struct pep_url *u, struct policy_decision *d)
{
	const struct policy_rule *r;

	d->allow = 0;
	d->would_deny = 1;
	d->rule = "default";
	r = rules_find(p->deny, p->ndeny, method, u);
	if (r == NULL) {
		r = rules_find(p->allow, p->nallow, method, u);
		if (r != NULL) {
			d->allow = 1;
			d->would_deny = 0;
		}
	}
	if (r != NULL)
		d->rule = r->id;
	if (p->mode == POLICY_REPORT)
		d->allow = 1;
	else
		d->would_deny = 0;
}
