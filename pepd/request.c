/*
 * A request's life in the parent: parsed from its frame, its URL
 * normalised (url.c), decided (policy.c, or opa.c), audited, fetched by
 * the fetcher (privsep.c), answered in order on its connection (conn.c)
 * and audited again.
 *
 * The audit is a precondition: an allowed request is handed to the
 * fetcher only once its "decided" line is written (and, with fsync
 * "line", synced: one fdatasync per event batch for every request decided
 * in it); when that line cannot be written the request is refused
 * audit_unavailable. Every request that was read gets an "answered" line
 * before its answer goes out.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "pepd.h"

void
preq_msg(struct preq *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->msg, sizeof(q->msg), fmt, ap);
	va_end(ap);
}

struct preq *
preq_new(struct pepd *s, struct conn *c, const uint8_t *json, size_t len,
    int *close_conn)
{
	struct preq *q = calloc(1, sizeof(*q));
	struct pep_err e = { 0, "" };
	const struct pep_limits *lim = &s->cfg->c->limits;

	if (q == NULL)
		return NULL;
	q->conn = c;
	memcpy(q->peer, c->peer, sizeof(q->peer));
	q->cfg = pepd_cfg_ref(s);
	s->nreqs++;
	snprintf(q->id, sizeof(q->id), "%s-%06llu", s->id_prefix,
	    (unsigned long long)++s->next_id);
	clock_gettime(CLOCK_REALTIME, &q->wall);
	q->t0_us = pepd_now_us();
	if (json == NULL) {
		q->code = PEP_BAD_REQUEST;
		preq_msg(q, "frame of %zu bytes exceeds "
		    "the limit of %zu", len, lim->max_frame);
		*close_conn = 1;
	} else if (proto_parse_request(json, len, lim, &q->r, &e) < 0) {
		q->code = PEP_BAD_REQUEST;
		preq_msg(q, "%s", e.msg);
		*close_conn = 1;
	} else if (c->over[0] != '\0') {
		q->code = PEP_OVERLOADED;
		preq_msg(q, "%s", c->over);
	}
	return q;
}

void
preq_free(struct pepd *s, struct preq *q)
{
	if (q == NULL)
		return;
	if (q->slot != 0)
		fetcher_slot_drop(s, q->slot);
	proto_request_free(&q->r);
	if (q->have_url)
		url_free(&q->u);
	free(q->resp.data);
	pepd_cfg_unref(q->cfg);
	s->nreqs--;
	free(q);
}

/* Audit, count, and hand q's answer to its connection. */
static void
preq_finish(struct pepd *s, struct preq *q)
{
	uint64_t now = pepd_now_us();

	q->total_us = now - q->t0_us;
	if (q->counted)
		s->inflight--;
	q->counted = 0;
	if (audit_answered(s, q) < 0) {
		if (q->code == PEP_OK) {
			/* the origin's answer does not go out unaudited */
			free(q->resp.data);
			q->resp.data = NULL;
			q->code = PEP_AUDIT_UNAVAILABLE;
			preq_msg(q, "the audit log cannot be written");
		}
		audit_keep(s, q);	/* the line, as answered */
	}
	if (q->code != PEP_OK || q->resp.data == NULL) {
		free(q->resp.data);
		q->resp.data = NULL;
		if (proto_refusal(q->code == PEP_OK ? PEP_UPSTREAM_ERROR :
		    q->code, q->msg, &q->resp) < 0)
			log_warnx("%s: cannot build the answer", q->id);
	}
	q->done = 1;
	metrics_request(s, q);
	if (q->conn != NULL)
		conn_kick(s, q->conn);
	else
		preq_free(s, q);
}

void
preq_refuse(struct pepd *s, struct preq *q, enum pep_code code,
    const char *msg)
{
	q->code = code;
	if (msg != q->msg)
		preq_msg(q, "%s", msg);
	preq_finish(s, q);
}

void
preq_fetched(struct pepd *s, struct preq *q)
{
	preq_finish(s, q);
}

static void
preq_policy(struct preq *q)
{
	const struct policy *p = q->cfg->c->policy;

	if (p == NULL) {
		q->d.allow = 0;
		q->d.would_deny = 0;
		q->d.rule = "default";
		return;
	}
	policy_decide(p, q->r.method, &q->u, &q->d);
}

void
preq_begin(struct pepd *s, struct preq *q)
{
	struct pep_err e = { 0, "" };
	int r;

	if (q->code != PEP_OK) {
		preq_finish(s, q);
		return;
	}
	if (url_parse(q->r.url, &q->u, &e) < 0) {
		preq_refuse(s, q, PEP_BAD_REQUEST, e.msg);
		return;
	}
	q->have_url = 1;
	if (strcmp(q->r.method, "CONNECT") == 0) {
		preq_refuse(s, q, PEP_BAD_REQUEST, "CONNECT is not supported");
		return;
	}
	if (q->cfg->c->opa.url == NULL) {
		preq_policy(q);
		preq_decided(s, q);
		return;
	}
	r = opa_decide(s, q);
	if (r == 1)
		preq_decided(s, q);
	else if (r < 0)
		preq_refuse(s, q, PEP_POLICY_UNAVAILABLE,
		    "the policy decision point failed");
}

/* The decided line is down (and synced when it has to be): fetch. */
static void
preq_fetch(struct pepd *s, struct preq *q)
{
	int r;

	r = fetcher_fetch(s, q);
	if (r < 0) {
		preq_refuse(s, q, PEP_UPSTREAM_ERROR, r == -EAGAIN ?
		    "the fetcher is restarting" : "cannot start the fetch");
		return;
	}
	s->inflight++;
	q->counted = 1;
}

void
preq_decided(struct pepd *s, struct preq *q)
{
	size_t max = q->cfg->c->limits.max_concurrent;
	int r;

	q->decided = 1;
	if (!q->d.allow) {
		preq_msg(q, "%s %s://%s:%d is not allowed "
		    "(%s)", q->r.method, q->u.scheme, q->u.host, q->u.port,
		    q->d.rule != NULL ? q->d.rule : "default");
		preq_refuse(s, q, PEP_DENIED_BY_POLICY, q->msg);
		return;
	}
	if (s->inflight >= max) {
		preq_msg(q, "%zu fetches in flight", s->inflight);
		preq_refuse(s, q, PEP_OVERLOADED, q->msg);
		return;
	}
	r = audit_decided(s, q);
	if (r < 0) {
		preq_refuse(s, q, PEP_AUDIT_UNAVAILABLE,
		    "the audit log cannot be written");
		return;
	}
	if (r == 0) {
		preq_fetch(s, q);
		return;
	}
	/* fsync "line": fetched after the batch's fdatasync */
	s->inflight++;
	q->counted = 1;
	q->snext = NULL;
	if (s->sync_tail != NULL)
		s->sync_tail->snext = q;
	else
		s->sync_head = q;
	s->sync_tail = q;
}

void
preq_sync_flush(struct pepd *s)
{
	struct preq *q, *next;
	int r;

	if (s->sync_head == NULL)
		return;
	r = audit_sync(&s->audit);
	q = s->sync_head;
	s->sync_head = s->sync_tail = NULL;
	for (; q != NULL; q = next) {
		next = q->snext;
		q->snext = NULL;
		s->inflight--;
		q->counted = 0;
		if (r < 0)
			preq_refuse(s, q, PEP_AUDIT_UNAVAILABLE,
			    "the audit log cannot be synced");
		else
			preq_fetch(s, q);
	}
}
