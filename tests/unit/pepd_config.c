/*
 * config.c: tests/data/pepd/config/good-*.json load (good-full.json is
 * checked value by value, good-minimal.json against the defaults), every
 * bad-NAME.json fails with exactly
 * "PATH: " + the line in bad-NAME.err, and config_from_env reads
 * PEP_ALLOWED_DOMAINS and PEP_AUDIT_LOG.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../pepd/pepd.h"
#include "../tapdata.h"

static void
check_full(const struct pepd_config *c)
{
	const struct pep_limits *l = &c->limits;

	tap_ok(c->nlisten == 4 && strcmp(c->listen[1], "tcp:[::1]:7071") ==
	    0 && strcmp(c->listen[3], "vsock:5000") == 0, "full: listen");
	tap_ok(strcmp(c->audit_path, "/var/log/pepd/audit.jsonl") == 0 &&
	    c->audit_fsync == AUDIT_FSYNC_LINE &&
	    c->audit_fsync_interval_ms == 250, "full: audit");
	tap_ok(c->policy->mode == POLICY_REPORT && c->policy->nallow == 2 &&
	    c->policy->ndeny == 1 && c->policy->nallow_private == 2 &&
	    strcmp(c->policy->allow[1].id, "api") == 0 &&
	    c->policy->allow[1].wildcard &&
	    strcmp(c->policy->allow[1].host, "example.org") == 0 &&
	    c->policy->allow[1].schemes == POLICY_SCHEME_HTTPS &&
	    c->policy->allow[1].nports == 1 &&
	    c->policy->allow[1].ports[0] == 443 &&
	    strcmp(c->policy->allow[1].path_prefix, "/v1/") == 0,
	    "full: policy");
	tap_ok(strcmp(c->opa.url, "http://127.0.0.1:8181/v1/data/pep/allow")
	    == 0 && c->opa.timeout_ms == 250 && c->opa.cache_ttl_ms == 5000,
	    "full: opa");
	tap_ok(l->max_frame == 1048576 && l->max_headers == 64 &&
	    l->max_header_bytes == 32768 && l->max_response == 8388608 &&
	    l->max_queue == 8 && l->max_concurrent == 100 &&
	    l->connect_timeout_ms == 2000 && l->total_timeout_ms == 30000 &&
	    l->max_connections == 2000 &&
	    l->max_connections_per_client == 100 &&
	    l->idle_timeout_ms == 30000, "full: limits");
	tap_ok(strcmp(c->user, "nobody") == 0, "full: user");
	tap_ok(strcmp(c->metrics, "127.0.0.1:9464") == 0 &&
	    c->shutdown_grace_ms == 1000 &&
	    strcmp(c->ca_file, "/dev/null") == 0, "full: the rest");
}

static void
check_defaults(const struct pepd_config *c)
{
	struct pep_limits d;

	limits_default(&d);
	tap_ok(c->nlisten == 0 && c->user == NULL &&
	    strcmp(c->audit_path, "/var/log/pepd/audit.jsonl") == 0 &&
	    c->audit_fsync == AUDIT_FSYNC_INTERVAL &&
	    c->audit_fsync_interval_ms == 1000 && c->opa.url == NULL &&
	    c->metrics == NULL && c->ca_file == NULL &&
	    c->shutdown_grace_ms == 5000 &&
	    memcmp(&c->limits, &d, sizeof(d)) == 0 && c->policy != NULL &&
	    c->policy->nallow == 0 && c->policy->mode == POLICY_ENFORCE,
	    "minimal: defaults");
	tap_ok(d.max_frame == 16u << 20 && d.max_headers == 128 &&
	    d.max_header_bytes == 65536 && d.max_response == 64u << 20 &&
	    d.max_queue == 16 && d.max_concurrent == 512 &&
	    d.connect_timeout_ms == 10000 && d.total_timeout_ms == 60000 &&
	    d.max_connections == 4096 && d.max_connections_per_client == 1024 &&
	    d.idle_timeout_ms == 60000, "limits_default matches pepd.h");
}

static void
good(const char *path, const char *name)
{
	struct pepd_config *c = NULL;
	struct pep_err e = { 0, "" };

	if (!tap_ok(config_load(path, &c, &e) == 0, "%s loads (%s)", name,
	    e.msg))
		return;
	if (strcmp(name, "good-full.json") == 0)
		check_full(c);
	if (strcmp(name, "good-minimal.json") == 0)
		check_defaults(c);
	config_free(c);
}

static void
bad(const char *path, const char *name)
{
	struct pepd_config *c = (struct pepd_config *)1;
	struct pep_err e = { 0, "" };
	char errpath[8300], want[8300 + 520], line[512];
	FILE *fp;
	int r;

	snprintf(errpath, sizeof(errpath), "%.*s.err",
	    (int)(strlen(path) - 5), path);
	fp = fopen(errpath, "r");
	if (!tap_ok(fp != NULL, "open %s", errpath))
		return;
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	line[strcspn(line, "\n")] = '\0';
	snprintf(want, sizeof(want), "%s: %s", path, line);
	r = config_load(path, &c, &e);
	tap_ok(r < 0 && c == NULL && strcmp(e.msg, want) == 0 &&
	    strchr(e.msg, '\n') == NULL, "%s: '%s' (got '%s')", name, line,
	    e.msg);
}

static void
files(const char *dir)
{
	char path[8300], **names;
	size_t n, i, ng = 0, nb = 0;

	names = tap_names(dir, ".json", &n);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (strncmp(names[i], "good-", 5) == 0) {
			good(path, names[i]);
			ng++;
		} else if (strncmp(names[i], "bad-", 4) == 0) {
			bad(path, names[i]);
			nb++;
		}
	}
	tap_names_free(names, n);
	tap_ok(ng >= 4 && nb >= 30, "%zu good and %zu bad configs", ng, nb);
}

static void
odd_files(const char *dir)
{
	static const char memfd_cfg[] =
	    "{\"metrics\":\"[::1]:9\",\"audit\":{\"path\":\"/a\"}}";
	struct pepd_config *c = NULL;
	struct pep_err e = { 0, "" };
	char path[64];
	int fd;

	tap_ok(config_load("/nonexistent/pepd.json", &c, &e) < 0 &&
	    strcmp(e.msg, "/nonexistent/pepd.json: No such file or "
	    "directory") == 0, "missing file (%s)", e.msg);
	tap_ok(config_load(dir, &c, &e) < 0 && strstr(e.msg,
	    "not a regular file") != NULL, "a directory (%s)", e.msg);
	fd = memfd_create("cfg", 0);
	if (fd < 0 || write(fd, memfd_cfg, strlen(memfd_cfg)) !=
	    (ssize_t)strlen(memfd_cfg)) {
		tap_ok(0, "memfd");
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	tap_ok(config_load(path, &c, &e) == 0 &&
	    strcmp(c->metrics, "[::1]:9") == 0, "config from a memfd");
	config_free(c);
	close(fd);
	config_free(NULL);
}

static void
from_env(void)
{
	struct pepd_config *c = NULL;
	struct pep_err e = { 0, "" };
	struct pep_url u;
	struct policy_decision d;

	unsetenv("PEP_ALLOWED_DOMAINS");
	unsetenv("PEP_AUDIT_LOG");
	c = (struct pepd_config *)1;
	tap_ok(config_from_env(&c, &e) < 0 && c == NULL && strcmp(e.msg,
	    "PEP_AUDIT_LOG: required (pepd serves no request unaudited)") ==
	    0, "env: no PEP_AUDIT_LOG (%s)", e.msg);
	setenv("PEP_AUDIT_LOG", "/tmp/audit.jsonl", 1);
	tap_ok(config_from_env(&c, &e) == 0 && c->policy->nallow == 0 &&
	    c->nlisten == 0, "env: only PEP_AUDIT_LOG set");
	config_free(c);
	setenv("PEP_ALLOWED_DOMAINS", "example.com *.example.org", 1);
	setenv("PEP_AUDIT_LOG", "/tmp/audit.jsonl", 1);
	if (!tap_ok(config_from_env(&c, &e) == 0, "env: loads (%s)", e.msg))
		return;
	tap_ok(c->policy->nallow == 2 &&
	    strcmp(c->audit_path, "/tmp/audit.jsonl") == 0, "env: values");
	if (url_parse("https://a.example.org/x", &u, NULL) == 0) {
		policy_decide(c->policy, "GET", &u, &d);
		tap_ok(d.allow && strcmp(d.rule, "allow[1]") == 0,
		    "env: wildcard domain allowed");
		url_free(&u);
	}
	config_free(c);
	setenv("PEP_ALLOWED_DOMAINS", "ok.com,bad*.com", 1);
	c = (struct pepd_config *)1;
	tap_ok(config_from_env(&c, &e) < 0 && c == NULL &&
	    strncmp(e.msg, "PEP_ALLOWED_DOMAINS: policy.allow[1]: ", 38) == 0,
	    "env: bad domain (%s)", e.msg);
}

int
main(int argc, char **argv)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/pepd/config",
	    argc > 1 ? argv[1] : "tests/data");
	files(dir);
	odd_files(dir);
	from_env();
	return tap_done();
}
