/*
 * External decision point: POST {"input": {method, url, host, scheme,
 * port, path, headers}} to the configured OPA URL through pepd's curl
 * multi. {"result": true|false} or {"result": {"allow": bool}} decides;
 * anything else, a non-200 or a timeout is policy_unavailable (fail
 * closed). Decisions are cached by (method, scheme, host, port, path)
 * for cache_ttl_ms.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "../common/log.h"
#include "pepd.h"

#define OPA_BUCKETS 1024
#define OPA_MAX_ENTRIES 65536
#define OPA_MAX_ANSWER (1u << 20)

struct opa_entry {
	struct opa_entry *next;
	uint64_t expires_ms;
	int allow;
	char key[];
};

struct opa_cache {
	struct opa_entry *b[OPA_BUCKETS];
	size_t n;
};

struct opa_query {
	struct cjob job;	/* first: the job is the query */
	struct preq *q;
	char *key;
	char *answer;
	size_t alen;
	struct curl_slist *hdrs;
};

static uint32_t
opa_hash(const char *k)
{
	uint32_t h = 2166136261u;

	while (*k != '\0')
		h = (h ^ (uint8_t)*k++) * 16777619u;
	return h % OPA_BUCKETS;
}

int
opa_init(struct pepd *s, struct pep_err *e)
{
	s->opa = calloc(1, sizeof(*s->opa));
	if (s->opa == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	return 0;
}

void
opa_flush(struct pepd *s)
{
	struct opa_entry *en;
	size_t i;

	if (s->opa == NULL)
		return;
	for (i = 0; i < OPA_BUCKETS; i++) {
		while ((en = s->opa->b[i]) != NULL) {
			s->opa->b[i] = en->next;
			free(en);
		}
	}
	s->opa->n = 0;
}

void
opa_free(struct pepd *s)
{
	opa_flush(s);
	free(s->opa);
	s->opa = NULL;
}

/* Cached decision: 0 deny, 1 allow, -1 none. Drops expired entries. */
static int
opa_lookup(struct opa_cache *c, const char *key, uint64_t now)
{
	struct opa_entry **pp = &c->b[opa_hash(key)], *en;

	while ((en = *pp) != NULL) {
		if (en->expires_ms <= now) {
			*pp = en->next;
			free(en);
			c->n--;
			continue;
		}
		if (strcmp(en->key, key) == 0)
			return en->allow;
		pp = &en->next;
	}
	return -1;
}

static void
opa_store(struct pepd *s, const char *key, int allow, long ttl)
{
	struct opa_cache *c = s->opa;
	struct opa_entry *en;
	size_t klen = strlen(key);
	uint32_t h = opa_hash(key);

	if (ttl <= 0)
		return;
	if (c->n >= OPA_MAX_ENTRIES)
		opa_flush(s);
	en = malloc(sizeof(*en) + klen + 1);
	if (en == NULL)
		return;
	memcpy(en->key, key, klen + 1);
	en->allow = allow;
	en->expires_ms = pepd_now_ms() + (uint64_t)ttl;
	en->next = c->b[h];
	c->b[h] = en;
	c->n++;
}

static size_t
opa_pathlen(const char *path)
{
	const char *qm = strchr(path, '?');

	return qm == NULL ? strlen(path) : (size_t)(qm - path);
}

static char *
opa_key(const struct preq *q)
{
	const struct pep_url *u = &q->u;
	size_t n = strlen(q->r.method) + strlen(u->host) + strlen(u->path) + 32;
	char *k = malloc(n);

	if (k != NULL)
		snprintf(k, n, "%s %s %s %d %.*s", q->r.method, u->scheme,
		    u->host, u->port, (int)opa_pathlen(u->path), u->path);
	return k;
}

static void
opa_add_header(cJSON *h, const struct pep_header *ph)
{
	char name[128];
	size_t i, n = strlen(ph->name);
	cJSON *old;
	char *joined;

	if (n >= sizeof(name))
		return;
	for (i = 0; i <= n; i++)
		name[i] = (char)tolower((unsigned char)ph->name[i]);
	old = cJSON_GetObjectItemCaseSensitive(h, name);
	if (!cJSON_IsString(old)) {
		cJSON_AddStringToObject(h, name, ph->value);
		return;
	}
	n = strlen(old->valuestring) + strlen(ph->value) + 3;
	joined = malloc(n);
	if (joined == NULL)
		return;
	snprintf(joined, n, "%s, %s", old->valuestring, ph->value);
	cJSON_ReplaceItemInObjectCaseSensitive(h, name,
	    cJSON_CreateString(joined));
	free(joined);
}

static char *
opa_input(const struct preq *q)
{
	cJSON *root = cJSON_CreateObject(), *in, *h;
	char *out = NULL, path[2048];
	size_t i, plen = opa_pathlen(q->u.path);

	if (root == NULL)
		return NULL;
	in = cJSON_AddObjectToObject(root, "input");
	if (in == NULL)
		goto out;
	snprintf(path, sizeof(path), "%.*s", (int)plen, q->u.path);
	cJSON_AddStringToObject(in, "method", q->r.method);
	cJSON_AddStringToObject(in, "url", q->r.url);
	cJSON_AddStringToObject(in, "host", q->u.host);
	cJSON_AddStringToObject(in, "scheme", q->u.scheme);
	cJSON_AddNumberToObject(in, "port", q->u.port);
	cJSON_AddStringToObject(in, "path", path);
	h = cJSON_AddObjectToObject(in, "headers");
	for (i = 0; h != NULL && i < q->r.nheaders; i++)
		opa_add_header(h, &q->r.headers[i]);
	out = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return out;
}

/* 1 allow, 0 deny, -1 not a decision. */
static int
opa_parse(const char *answer, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(answer, len), *r;
	int v = -1;

	r = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (cJSON_IsObject(r))
		r = cJSON_GetObjectItemCaseSensitive(r, "allow");
	if (cJSON_IsBool(r))
		v = cJSON_IsTrue(r) ? 1 : 0;
	cJSON_Delete(root);
	return v;
}

static void
opa_set_decision(struct preq *q, int allow)
{
	const struct policy *p = q->cfg->c->policy;

	q->d.rule = "opa";
	q->d.allow = allow;
	q->d.would_deny = 0;
	if (!allow && p != NULL && p->mode == POLICY_REPORT) {
		q->d.allow = 1;
		q->d.would_deny = 1;
	}
}

static void
opa_query_free(struct opa_query *oq)
{
	if (oq->job.easy != NULL)
		curl_easy_cleanup(oq->job.easy);
	curl_slist_free_all(oq->hdrs);
	free(oq->key);
	free(oq->answer);
	free(oq);
}

static void
opa_done(struct pepd *s, struct cjob *j, int rc, int aborted)
{
	struct opa_query *oq = (struct opa_query *)j;
	struct preq *q = oq->q;
	long status = 0;
	int v = -1;

	if (!aborted && rc == CURLE_OK) {
		curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200)
			v = opa_parse(oq->answer, oq->alen);
	}
	if (v >= 0)
		opa_store(s, oq->key, v, q->cfg->c->opa.cache_ttl_ms);
	if (aborted)
		preq_msg(q, "pepd is shutting down");
	else if (rc != CURLE_OK)
		preq_msg(q, "decision point: %s",
		    curl_easy_strerror((CURLcode)rc));
	else
		preq_msg(q, "decision point: HTTP %ld, "
		    "no boolean result", status);
	opa_query_free(oq);
	if (aborted) {
		preq_refuse(s, q, PEP_OVERLOADED, q->msg);
	} else if (v < 0) {
		log_warnx("%s: %s", q->id, q->msg);
		preq_refuse(s, q, PEP_POLICY_UNAVAILABLE, q->msg);
	} else {
		q->msg[0] = '\0';
		opa_set_decision(q, v);
		preq_decided(s, q);
	}
}

static size_t
opa_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct opa_query *oq = userdata;
	size_t n = size * nmemb;
	char *p;

	if (oq->alen + n > OPA_MAX_ANSWER)
		return CURL_WRITEFUNC_ERROR;
	p = realloc(oq->answer, oq->alen + n + 1);
	if (p == NULL)
		return CURL_WRITEFUNC_ERROR;
	memcpy(p + oq->alen, ptr, n);
	oq->answer = p;
	oq->alen += n;
	return n;
}

static int
opa_start(struct pepd *s, struct preq *q, char *key)
{
	const struct opa_config *oc = &q->cfg->c->opa;
	struct opa_query *oq = calloc(1, sizeof(*oq));
	char *body = NULL;
	CURL *h;

	if (oq == NULL) {
		free(key);
		return -ENOMEM;
	}
	oq->q = q;
	oq->key = key;
	oq->job.done = opa_done;
	oq->job.easy = h = curl_easy_init();
	oq->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	body = opa_input(q);
	if (h == NULL || oq->hdrs == NULL || body == NULL)
		goto fail;
	fetch_common_opts(q->cfg->c, h);
	curl_easy_setopt(h, CURLOPT_URL, oc->url);
	curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, oq->hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, oc->timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, opa_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, oq);
	if (fetch_add_job(s, &oq->job) < 0)
		goto fail;
	cJSON_free(body);
	return 0;
fail:
	cJSON_free(body);
	opa_query_free(oq);
	return -ENOMEM;
}

int
opa_decide(struct pepd *s, struct preq *q)
{
	char *key = opa_key(q);
	int v;

	if (key == NULL)
		return -ENOMEM;
	v = opa_lookup(s->opa, key, pepd_now_ms());
	if (v >= 0) {
		free(key);
		opa_set_decision(q, v);
		return 1;
	}
	return opa_start(s, q, key);
}
