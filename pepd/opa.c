/*
 * External decision point: POST {"input": {method, url, scheme, host,
 * port, path, query, headers}} to the configured OPA URL (the fetcher
 * sends it, privsep.c). Everything in the input is the normalised
 * request (url.c): url as fetched, path as rules match it (repeated
 * slashes merged, no query), the query, header names in lower case with
 * repeats joined by ", " (values as ISO 8859-1 text). {"result":
 * true|false} or {"result": {"allow": bool}} decides; anything else, a
 * non-200 or a timeout is policy_unavailable (fail closed).
 *
 * Decisions are cached for cache_ttl_ms, keyed on the input document
 * itself: a request differing in anything OPA sees (a header, the query)
 * is asked again.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>

#include "../common/log.h"
#include "pepd.h"

#define OPA_BUCKETS 1024
#define OPA_MAX_ENTRIES 65536
#define OPA_MAX_BYTES (16u << 20)	/* keys, in all */

struct opa_entry {
	struct opa_entry *next;
	uint64_t expires_ms;
	int allow;
	size_t klen;
	char key[];
};

struct opa_cache {
	struct opa_entry *b[OPA_BUCKETS];
	size_t n;
	size_t bytes;
};

struct opa_query {
	struct preq *q;
	char *key;		/* the input document */
	size_t klen;
};

static uint32_t
opa_hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u;

	while (n-- > 0)
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
	s->opa->bytes = 0;
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
opa_lookup(struct opa_cache *c, const char *key, size_t klen, uint64_t now)
{
	struct opa_entry **pp = &c->b[opa_hash(key, klen)], *en;

	while ((en = *pp) != NULL) {
		if (en->expires_ms <= now) {
			*pp = en->next;
			c->n--;
			c->bytes -= en->klen;
			free(en);
			continue;
		}
		if (en->klen == klen && memcmp(en->key, key, klen) == 0)
			return en->allow;
		pp = &en->next;
	}
	return -1;
}

static void
opa_store(struct pepd *s, const char *key, size_t klen, int allow, long ttl)
{
	struct opa_cache *c = s->opa;
	struct opa_entry *en;
	uint32_t h = opa_hash(key, klen);

	if (ttl <= 0 || klen > OPA_MAX_BYTES / 16)
		return;
	if (c->n >= OPA_MAX_ENTRIES || c->bytes + klen > OPA_MAX_BYTES)
		opa_flush(s);
	en = malloc(sizeof(*en) + klen);
	if (en == NULL)
		return;
	memcpy(en->key, key, klen);
	en->klen = klen;
	en->allow = allow;
	en->expires_ms = pepd_now_ms() + (uint64_t)ttl;
	en->next = c->b[h];
	c->b[h] = en;
	c->n++;
	c->bytes += klen;
}

/* The header names in lower case, repeats joined: {"name": "a, b"}. */
static void
put_headers(struct jbuf *b, const struct pep_request *r)
{
	struct jbuf v;
	size_t i, j, k, n;
	int first = 1;
	char name[128];

	jb_put(b, "{", 1);
	for (i = 0; i < r->nheaders; i++) {
		for (j = 0; j < i; j++)
			if (strcasecmp(r->headers[j].name,
			    r->headers[i].name) == 0)
				break;
		n = strlen(r->headers[i].name);
		if (j < i || n >= sizeof(name))
			continue;	/* joined already, or too long */
		for (k = 0; k <= n; k++)
			name[k] = (char)tolower(
			    (unsigned char)r->headers[i].name[k]);
		jb_init(&v, 64);
		for (j = i; j < r->nheaders; j++) {
			if (strcasecmp(r->headers[j].name, name) != 0)
				continue;
			if (v.len > 0)
				jb_put(&v, ", ", 2);
			jb_puts(&v, r->headers[j].value);
		}
		jb_put(&v, "", 1);
		if (v.err != 0)
			b->err = v.err;
		if (!first)
			jb_put(b, ",", 1);
		first = 0;
		jb_str(b, name);
		jb_put(b, ":", 1);
		jb_bytestr(b, v.err == 0 ? (const char *)v.p : "");
		jb_free(&v);
	}
	jb_put(b, "}", 1);
}

char *
opa_input(const struct preq *q)
{
	const struct pep_url *u = &q->u;
	const char *qm = strchr(u->match, '?');
	struct jbuf b;
	char *path;

	path = strndup(u->match, qm != NULL ? (size_t)(qm - u->match) :
	    strlen(u->match));
	if (path == NULL || jb_init(&b, 256) < 0) {
		free(path);
		return NULL;
	}
	jb_puts(&b, "{\"input\":{\"method\":");
	jb_str(&b, q->r.method);
	jb_puts(&b, ",\"url\":");
	jb_str(&b, u->url);
	jb_puts(&b, ",\"scheme\":");
	jb_str(&b, u->scheme);
	jb_puts(&b, ",\"host\":");
	jb_str(&b, u->host);
	jb_puts(&b, ",\"port\":");
	jb_u64(&b, (uint64_t)u->port);
	jb_puts(&b, ",\"path\":");
	jb_str(&b, path);
	jb_puts(&b, ",\"query\":");
	jb_str(&b, qm != NULL ? qm + 1 : "");
	jb_puts(&b, ",\"headers\":");
	put_headers(&b, &q->r);
	jb_puts(&b, "}}");
	jb_put(&b, "", 1);
	free(path);
	if (b.err != 0) {
		jb_free(&b);
		return NULL;
	}
	return (char *)b.p;
}

/* 1 allow, 0 deny, -1 not a decision. */
static int
opa_parse(const uint8_t *answer, size_t len)
{
	cJSON *root, *r;
	int v = -1;

	root = cJSON_ParseWithLength((const char *)answer, len);
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

void
opa_answer(struct pepd *s, void *ptr, const struct ipc_opa_result *r,
    const uint8_t *answer, int aborted)
{
	struct opa_query *oq = ptr;
	struct preq *q = oq->q;
	int v = -1;

	if (!aborted && r->rc == 0 && r->status == 200)
		v = opa_parse(answer, r->answer_len);
	if (v >= 0)
		opa_store(s, oq->key, oq->klen, v, q->cfg->c->opa.cache_ttl_ms);
	free(oq->key);
	free(oq);
	q->slot = 0;
	if (aborted) {
		preq_refuse(s, q, PEP_OVERLOADED, "pepd is shutting down");
	} else if (v < 0) {
		if (r->rc != 0)
			preq_msg(q, "decision point: %s", r->msg);
		else
			preq_msg(q, "decision point: HTTP %u, no boolean "
			    "result", (unsigned int)r->status);
		log_warnx("%s: %s", q->id, q->msg);
		preq_refuse(s, q, PEP_POLICY_UNAVAILABLE, q->msg);
	} else {
		opa_set_decision(q, v);
		preq_decided(s, q);
	}
}

int
opa_decide(struct pepd *s, struct preq *q)
{
	const struct opa_config *oc = &q->cfg->c->opa;
	struct opa_query *oq;
	char *key = opa_input(q);
	size_t klen;
	int v, r;

	if (key == NULL)
		return -ENOMEM;
	klen = strlen(key);
	v = opa_lookup(s->opa, key, klen, pepd_now_ms());
	if (v >= 0) {
		free(key);
		opa_set_decision(q, v);
		return 1;
	}
	oq = calloc(1, sizeof(*oq));
	if (oq == NULL) {
		free(key);
		return -ENOMEM;
	}
	oq->q = q;
	oq->key = key;
	oq->klen = klen;
	r = fetcher_opa(s, oq, oc->url, key, klen, oc->timeout_ms);
	if (r < 0) {
		free(key);
		free(oq);
		return r;
	}
	return 0;
}
