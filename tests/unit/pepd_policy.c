/*
 * policy.c: every tests/data/pepd/policy/NAME.case holds a policy (JSON,
 * or "domains: LIST" for policy_from_domains), a "--" line, then lines
 * "METHOD URL -> allow|deny RULE [would_deny]" or "METHOD URL -> bad"
 * (url_parse refuses it). bad.tsv lists policies that must not load.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../pepd/pepd.h"
#include "../tapdata.h"

/* Load the policy part of a case file (up to the "--" line). */
static struct policy *
case_policy(FILE *fp, const char *name)
{
	char line[1024], *text = NULL, *np;
	size_t len = 0, n;
	struct policy *p = NULL;
	struct pep_err e = { 0, "" };
	cJSON *j;
	int r = -1;

	while (fgets(line, sizeof(line), fp) != NULL &&
	    strcmp(line, "--\n") != 0) {
		if (line[0] == '#')
			continue;
		n = strlen(line);
		np = realloc(text, len + n + 1);
		if (np == NULL)
			break;
		text = np;
		memcpy(text + len, line, n + 1);
		len += n;
	}
	if (text != NULL && strncmp(text, "domains:", 8) == 0) {
		text[strcspn(text, "\n")] = '\0';
		r = policy_from_domains(text + 8, &p, &e);
	} else if (text != NULL) {
		j = cJSON_Parse(text);
		r = j != NULL ? policy_from_json(j, &p, &e) : -1;
		cJSON_Delete(j);
	}
	tap_ok(r == 0, "%s: policy loads (%s)", name, e.msg);
	free(text);
	return p;
}

static void
case_line(const struct policy *p, char *line, const char *name)
{
	char *method, *url, *arrow, *want, *save = NULL;
	struct policy_decision d;
	struct pep_url u;
	char got[256];

	line[strcspn(line, "\n")] = '\0';
	method = strtok_r(line, " ", &save);
	url = strtok_r(NULL, " ", &save);
	arrow = strtok_r(NULL, " ", &save);
	want = strtok_r(NULL, "", &save);
	if (method == NULL || url == NULL || arrow == NULL || want == NULL ||
	    strcmp(arrow, "->") != 0) {
		tap_ok(0, "%s: bad case line", name);
		return;
	}
	if (url_parse(url, &u, NULL) < 0) {
		tap_ok(strcmp(want, "bad") == 0, "%s: %s %s -> %s (got bad)",
		    name, method, url, want);
		return;
	}
	policy_decide(p, method, &u, &d);
	snprintf(got, sizeof(got), "%s %s%s", d.allow ? "allow" : "deny",
	    d.rule, d.would_deny ? " would_deny" : "");
	tap_ok(strcmp(got, want) == 0, "%s: %s %s -> %s (got %s)", name,
	    method, url, want, got);
	url_free(&u);
}

static void
case_file(const char *dir, const char *name)
{
	char path[8300], line[1024];
	struct policy *p;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "r");
	if (!tap_ok(fp != NULL, "open %s", path))
		return;
	p = case_policy(fp, name);
	while (p != NULL && tap_line(line, sizeof(line), fp) != NULL)
		case_line(p, line, name);
	policy_free(p);
	fclose(fp);
}

static void
case_dir(const char *dir)
{
	char **names;
	size_t n, i;

	names = tap_names(dir, ".case", &n);
	tap_ok(n >= 6, "%zu case files", n);
	for (i = 0; i < n; i++)
		case_file(dir, names[i]);
	tap_names_free(names, n);
}

static void
bad_file(const char *dir)
{
	char path[8300], line[1024], *tab;
	struct pep_err e;
	struct policy *p;
	cJSON *j;
	FILE *fp;
	int r;

	snprintf(path, sizeof(path), "%s/bad.tsv", dir);
	fp = fopen(path, "r");
	if (!tap_ok(fp != NULL, "open %s", path))
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		tab = strchr(line, '\t');
		if (tab == NULL)
			continue;
		*tab++ = '\0';
		j = cJSON_Parse(line);
		e.msg[0] = '\0';
		p = (struct policy *)1;
		r = j != NULL ? policy_from_json(j, &p, &e) : 0;
		tap_ok(r < 0 && p == NULL && strstr(e.msg, tab) != NULL,
		    "%s refused: %s (got '%s')", line, tab, e.msg);
		cJSON_Delete(j);
	}
	fclose(fp);
}

static void
domains_bad(void)
{
	struct pep_err e = { 0, "" };
	struct policy *p;

	tap_ok(policy_from_domains("a.com,*x.com", &p, &e) < 0 &&
	    p == NULL && strstr(e.msg, "allow[1]") != NULL,
	    "bad domain in the list is refused (%s)", e.msg);
	tap_ok(policy_from_domains("", &p, &e) == 0 && p->nallow == 0,
	    "an empty list allows nothing");
	policy_free(p);
	tap_ok(policy_from_domains(NULL, &p, &e) == 0 && p->nallow == 0,
	    "a NULL list allows nothing");
	policy_free(p);
	tap_ok(policy_from_json(NULL, &p, &e) == 0 && p->nallow == 0 &&
	    p->mode == POLICY_ENFORCE, "a NULL object is an empty policy");
	policy_free(p);
	policy_free(NULL);
}

int
main(int argc, char **argv)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/pepd/policy",
	    argc > 1 ? argv[1] : "tests/data");
	case_dir(dir);
	bad_file(dir);
	domains_bad();
	return tap_done();
}
