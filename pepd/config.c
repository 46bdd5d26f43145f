/*
 * The JSON configuration file (pepd/pepd.conf.5.md). Strict: unknown
 * keys, duplicate keys, wrong types and out-of-range numbers are errors,
 * each reported as one line "FILE: what".
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pepd.h"

#define CONFIG_MAXSIZE (1u << 20)

struct ckey {
	const char *name;
	int (*fn)(const cJSON *v, struct pepd_config *c, struct pep_err *e);
};

static struct pepd_config *
config_new(void)
{
	struct pepd_config *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->audit_fsync = AUDIT_FSYNC_INTERVAL;
	c->audit_fsync_interval_ms = 1000;
	c->opa.timeout_ms = 1000;
	c->opa.cache_ttl_ms = 0;
	limits_default(&c->limits);
	c->shutdown_grace_ms = 5000;
	return c;
}

void
config_free(struct pepd_config *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlisten; i++)
		free(c->listen[i]);
	free(c->user);
	free(c->audit_path);
	policy_free(c->policy);
	free(c->opa.url);
	free(c->metrics);
	free(c->ca_file);
	free(c);
}

/* ------------------------------------------------------------------ */
/* value helpers                                                      */

static int
get_int(const cJSON *v, const char *name, long long min, long long max,
    long long *out, struct pep_err *e)
{
	if (!cJSON_IsNumber(v) || v->valuedouble < (double)min ||
	    v->valuedouble > (double)max ||
	    v->valuedouble != (double)(long long)v->valuedouble)
		return pep_errf(e, EINVAL, "'%s' must be an integer in "
		    "%lld..%lld", name, min, max);
	*out = (long long)v->valuedouble;
	return 0;
}

/* A non-empty string, or null (leaves *out NULL). */
static int
get_str(const cJSON *v, const char *name, char **out, struct pep_err *e)
{
	free(*out);
	*out = NULL;
	if (cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return pep_errf(e, EINVAL, "'%s' must be a non-empty string "
		    "or null", name);
	*out = strdup(v->valuestring);
	return *out == NULL ? pep_errf(e, ENOMEM, "out of memory") : 0;
}

/* Strict decimal in [min, max]. */
static int
dec_ok(const char *s, size_t n, unsigned long long min,
    unsigned long long max)
{
	unsigned long long v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	return v >= min && v <= max;
}

/* "HOST:PORT" or "[V6]:PORT"; port in [minport, 65535]. */
static int
hostport_ok(const char *s, unsigned long long minport)
{
	const char *colon = strrchr(s, ':');
	size_t hl;

	if (colon == NULL)
		return 0;
	hl = (size_t)(colon - s);
	if (hl == 0 || !dec_ok(colon + 1, strlen(colon + 1), minport, 65535))
		return 0;
	if (s[0] == '[')
		return hl > 2 && s[hl - 1] == ']';
	return memchr(s, ':', hl) == NULL;
}

static int
listen_ok(const char *s)
{
	if (strncmp(s, "tcp:", 4) == 0)
		return hostport_ok(s + 4, 0);
	if (strncmp(s, "unix:", 5) == 0)
		return s[5] != '\0' &&
		    strlen(s + 5) < sizeof(((struct sockaddr_un *)0)->sun_path);
	if (strncmp(s, "vsock:", 6) == 0)
		return dec_ok(s + 6, strlen(s + 6), 0, 0xfffffffeu);
	return 0;
}

/* ------------------------------------------------------------------ */
/* sections                                                           */

/*
 * Walk object o of section name (NULL: the top level): every key must
 * be in keys[]; no key may appear twice.
 */
static int
walk(const cJSON *o, const char *name, const struct ckey *keys,
    struct pepd_config *c, struct pep_err *e)
{
	const cJSON *v;
	size_t i;
	int r;

	if (!cJSON_IsObject(o))
		return pep_errf(e, EINVAL, "'%s' must be an object",
		    name != NULL ? name : "the top level");
	cJSON_ArrayForEach(v, o) {
		if (cJSON_GetObjectItemCaseSensitive(o, v->string) != v)
			return pep_errf(e, EINVAL, "duplicate key '%s'",
			    v->string);
		for (i = 0; keys[i].name != NULL; i++)
			if (strcmp(keys[i].name, v->string) == 0)
				break;
		if (keys[i].name == NULL && name == NULL)
			return pep_errf(e, EINVAL, "unknown key '%s'",
			    v->string);
		if (keys[i].name == NULL)
			return pep_errf(e, EINVAL, "unknown key '%s' in '%s'",
			    v->string, name);
		r = keys[i].fn(v, c, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
k_listen(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	const cJSON *s;

	if (!cJSON_IsArray(v))
		return pep_errf(e, EINVAL, "'listen' must be an array");
	if (cJSON_GetArraySize(v) > CONFIG_MAXLISTEN)
		return pep_errf(e, EINVAL, "'listen' has more than %d entries",
		    CONFIG_MAXLISTEN);
	cJSON_ArrayForEach(s, v) {
		if (!cJSON_IsString(s) || !listen_ok(s->valuestring))
			return pep_errf(e, EINVAL, "listen[%zu]: expected "
			    "\"tcp:HOST:PORT\", \"unix:PATH\" or "
			    "\"vsock:PORT\"", c->nlisten);
		c->listen[c->nlisten] = strdup(s->valuestring);
		if (c->listen[c->nlisten] == NULL)
			return pep_errf(e, ENOMEM, "out of memory");
		c->nlisten++;
	}
	return 0;
}

static int
k_audit_path(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return pep_errf(e, EINVAL, "'audit.path' must be a non-empty "
		    "string (pepd serves no request unaudited)");
	return get_str(v, "audit.path", &c->audit_path, e);
}

static int
k_user(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	return get_str(v, "user", &c->user, e);
}

static int
k_audit_fsync(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	static const char *const names[] = { "none", "line", "interval" };
	size_t i;

	for (i = 0; i < 3 && cJSON_IsString(v); i++) {
		if (strcmp(v->valuestring, names[i]) == 0) {
			c->audit_fsync = (enum audit_fsync)i;
			return 0;
		}
	}
	return pep_errf(e, EINVAL, "'audit.fsync' must be \"none\", "
	    "\"line\" or \"interval\"");
}

static int
k_audit_interval(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	long long n = 0;
	int r;

	r = get_int(v, "audit.interval_ms", 1, 3600000, &n, e);
	c->audit_fsync_interval_ms = (long)n;
	return r;
}

static int
k_audit(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	static const struct ckey keys[] = {
		{ "path", k_audit_path },
		{ "fsync", k_audit_fsync },
		{ "interval_ms", k_audit_interval },
		{ NULL, NULL }
	};

	return walk(v, "audit", keys, c, e);
}

static int
k_policy(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	policy_free(c->policy);
	c->policy = NULL;
	return policy_from_json(v, &c->policy, e);
}

static int
k_opa_url(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	struct pep_url u;
	int r;

	r = get_str(v, "opa.url", &c->opa.url, e);
	if (r < 0)
		return r;
	if (c->opa.url == NULL)
		return 0;
	if (url_parse(c->opa.url, &u, NULL) < 0)
		return pep_errf(e, EINVAL, "'opa.url' must be an http or "
		    "https URL");
	url_free(&u);
	return 0;
}

static int
k_opa_timeout(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	long long n = 0;
	int r;

	r = get_int(v, "opa.timeout_ms", 1, 60000, &n, e);
	c->opa.timeout_ms = (long)n;
	return r;
}

static int
k_opa_ttl(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	long long n = 0;
	int r;

	r = get_int(v, "opa.cache_ttl_ms", 0, 3600000, &n, e);
	c->opa.cache_ttl_ms = (long)n;
	return r;
}

static int
k_opa(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	static const struct ckey keys[] = {
		{ "url", k_opa_url },
		{ "timeout_ms", k_opa_timeout },
		{ "cache_ttl_ms", k_opa_ttl },
		{ NULL, NULL }
	};

	if (cJSON_IsNull(v))
		return 0;
	return walk(v, "opa", keys, c, e);
}

/* One table drives the "limits" keys: name, range, where it goes. */
static const struct {
	const char *name;
	long long min;
	long long max;
	size_t off;
	int is_long;
} limit_keys[] = {
	{ "max_frame", 1024, 1LL << 30,
	    offsetof(struct pep_limits, max_frame), 0 },
	{ "max_headers", 1, 10000,
	    offsetof(struct pep_limits, max_headers), 0 },
	{ "max_header_bytes", 64, 16LL << 20,
	    offsetof(struct pep_limits, max_header_bytes), 0 },
	{ "max_response", 0, 1LL << 30,
	    offsetof(struct pep_limits, max_response), 0 },
	{ "max_queue", 1, 1024,
	    offsetof(struct pep_limits, max_queue), 0 },
	{ "max_concurrent", 1, 65536,
	    offsetof(struct pep_limits, max_concurrent), 0 },
	{ "max_connections", 1, 1000000,
	    offsetof(struct pep_limits, max_connections), 0 },
	{ "max_connections_per_client", 1, 1000000,
	    offsetof(struct pep_limits, max_connections_per_client), 0 },
	{ "idle_timeout_ms", 100, 86400000,
	    offsetof(struct pep_limits, idle_timeout_ms), 1 },
	{ "connect_timeout_ms", 1, 600000,
	    offsetof(struct pep_limits, connect_timeout_ms), 1 },
	{ "total_timeout_ms", 1, 3600000,
	    offsetof(struct pep_limits, total_timeout_ms), 1 },
};

static int
limit_set(const cJSON *v, struct pep_limits *l, struct pep_err *e)
{
	char name[64];
	long long n = 0;
	size_t i;
	char *p = (char *)l;

	for (i = 0; i < sizeof(limit_keys) / sizeof(limit_keys[0]); i++)
		if (strcmp(limit_keys[i].name, v->string) == 0)
			break;
	if (i == sizeof(limit_keys) / sizeof(limit_keys[0]))
		return pep_errf(e, EINVAL, "unknown key '%s' in 'limits'",
		    v->string);
	snprintf(name, sizeof(name), "limits.%s", limit_keys[i].name);
	if (get_int(v, name, limit_keys[i].min, limit_keys[i].max, &n,
	    e) < 0)
		return -EINVAL;
	if (limit_keys[i].is_long)
		*(long *)(void *)(p + limit_keys[i].off) = (long)n;
	else
		*(size_t *)(void *)(p + limit_keys[i].off) = (size_t)n;
	return 0;
}

static int
k_limits(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	const cJSON *k;
	int r;

	if (!cJSON_IsObject(v))
		return pep_errf(e, EINVAL, "'limits' must be an object");
	cJSON_ArrayForEach(k, v) {
		if (cJSON_GetObjectItemCaseSensitive(v, k->string) != k)
			return pep_errf(e, EINVAL, "duplicate key '%s' in "
			    "'limits'", k->string);
		r = limit_set(k, &c->limits, e);
		if (r < 0)
			return r;
	}
	if (c->limits.connect_timeout_ms > c->limits.total_timeout_ms)
		return pep_errf(e, EINVAL, "'limits.connect_timeout_ms' is "
		    "larger than 'limits.total_timeout_ms'");
	return 0;
}

static int
k_metrics(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	int r;

	r = get_str(v, "metrics", &c->metrics, e);
	if (r < 0)
		return r;
	if (c->metrics != NULL && !hostport_ok(c->metrics, 1))
		return pep_errf(e, EINVAL, "'metrics' must be \"HOST:PORT\"");
	return 0;
}

static int
k_grace(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	long long n = 0;
	int r;

	r = get_int(v, "shutdown_grace_ms", 0, 600000, &n, e);
	c->shutdown_grace_ms = (long)n;
	return r;
}

static int
k_ca_file(const cJSON *v, struct pepd_config *c, struct pep_err *e)
{
	struct stat st;
	int r;

	r = get_str(v, "ca_file", &c->ca_file, e);
	if (r < 0)
		return r;
	if (c->ca_file == NULL)
		return 0;
	if (access(c->ca_file, R_OK) != 0)
		return pep_errf(e, errno, "'ca_file' %s: %s", c->ca_file,
		    strerror(errno));
	if (stat(c->ca_file, &st) != 0 || st.st_size > (off_t)CONFIG_MAX_CA)
		return pep_errf(e, EFBIG, "'ca_file' %s: larger than %u "
		    "bytes", c->ca_file, CONFIG_MAX_CA);
	return 0;
}

static const struct ckey top_keys[] = {
	{ "listen", k_listen },
	{ "user", k_user },
	{ "audit", k_audit },
	{ "policy", k_policy },
	{ "opa", k_opa },
	{ "limits", k_limits },
	{ "metrics", k_metrics },
	{ "shutdown_grace_ms", k_grace },
	{ "ca_file", k_ca_file },
	{ NULL, NULL }
};

/* ------------------------------------------------------------------ */
/* loading                                                            */

static int
read_file(const char *path, char **buf, size_t *len, struct pep_err *e)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, r = 0;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pep_errf(e, errno, "%s", strerror(errno));
	/* /proc and pipes report st_size 0: read up to the cap. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)CONFIG_MAXSIZE) {
		r = pep_errf(e, EINVAL, "not a regular file of at most %u "
		    "bytes", CONFIG_MAXSIZE);
		goto out;
	}
	*buf = malloc(CONFIG_MAXSIZE + 1);
	if (*buf == NULL) {
		r = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		n = read(fd, *buf + got, CONFIG_MAXSIZE + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pep_errf(e, errno, "%s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > CONFIG_MAXSIZE) {
			r = pep_errf(e, EFBIG, "larger than %u bytes",
			    CONFIG_MAXSIZE);
			goto out;
		}
	}
	*len = got;
out:
	close(fd);
	if (r < 0) {
		free(*buf);
		*buf = NULL;
	}
	return r;
}

static size_t
line_of(const char *buf, const char *at)
{
	size_t line = 1;

	for (; buf < at; buf++)
		if (*buf == '\n')
			line++;
	return line;
}

static int
parse_json(const char *buf, size_t len, cJSON **root, struct pep_err *e)
{
	const char *end = NULL, *p;

	*root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (*root == NULL) {
		if (end == NULL || end < buf || end > buf + len)
			end = buf;
		return pep_errf(e, EINVAL, "invalid JSON near line %zu",
		    line_of(buf, end));
	}
	for (p = end; p < buf + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			cJSON_Delete(*root);
			*root = NULL;
			return pep_errf(e, EINVAL, "trailing text at line %zu",
			    line_of(buf, p));
		}
	}
	return 0;
}

static int
config_build(const cJSON *root, struct pepd_config *c, struct pep_err *e)
{
	int r;

	r = walk(root, NULL, top_keys, c, e);
	if (r < 0)
		return r;
	if (c->audit_path == NULL)
		return pep_errf(e, EINVAL, "'audit.path' is required (pepd "
		    "serves no request unaudited)");
	if (c->policy == NULL)
		return policy_from_json(NULL, &c->policy, e);
	return 0;
}

/*
 * Put "path: " in front of the message in e and keep it on one line:
 * keys and values quoted from the file may hold control characters.
 */
static int
prefix_path(struct pep_err *e, const char *path, int r)
{
	char msg[PEP_ERR_MSGLEN];
	size_t i;

	if (e == NULL)
		return r;
	memcpy(msg, e->msg, sizeof(msg));
	msg[sizeof(msg) - 1] = '\0';
	r = pep_errf(e, r, "%s: %s", path, msg);
	for (i = 0; e->msg[i] != '\0'; i++)
		if ((unsigned char)e->msg[i] < 0x20 || e->msg[i] == 0x7f)
			e->msg[i] = '?';
	return r;
}

int
config_load(const char *path, struct pepd_config **cp, struct pep_err *e)
{
	struct pepd_config *c = NULL;
	cJSON *root = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r;

	*cp = NULL;
	r = read_file(path, &buf, &len, e);
	if (r == 0)
		r = parse_json(buf, len, &root, e);
	if (r < 0)
		goto out;
	c = config_new();
	if (c == NULL) {
		r = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	r = config_build(root, c, e);
out:
	cJSON_Delete(root);
	free(buf);
	if (r < 0) {
		config_free(c);
		return prefix_path(e, path, r);
	}
	*cp = c;
	return 0;
}

int
config_from_env(struct pepd_config **cp, struct pep_err *e)
{
	struct pepd_config *c;
	const char *dom, *audit;
	int r;

	*cp = NULL;
	c = config_new();
	if (c == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	dom = getenv("PEP_ALLOWED_DOMAINS");
	r = policy_from_domains(dom != NULL ? dom : "", &c->policy, e);
	if (r < 0) {
		config_free(c);
		return prefix_path(e, "PEP_ALLOWED_DOMAINS", r);
	}
	audit = getenv("PEP_AUDIT_LOG");
	if (audit == NULL || audit[0] == '\0') {
		config_free(c);
		return pep_errf(e, EINVAL, "PEP_AUDIT_LOG: required (pepd "
		    "serves no request unaudited)");
	}
	c->audit_path = strdup(audit);
	if (c->audit_path == NULL) {
		config_free(c);
		return pep_errf(e, ENOMEM, "out of memory");
	}
	*cp = c;
	return 0;
}
