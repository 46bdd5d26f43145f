/*
 * Requests: parse, decide (policy or OPA), fetch with libcurl multi on
 * pepd's epoll loop, answer, audit. The connect-time SSRF check runs in
 * CURLOPT_OPENSOCKETFUNCTION on the address libcurl is about to connect
 * to, so what is checked is what is connected to. Redirects are not
 * followed: the 3xx goes back to the browser and its next hop comes
 * through the policy again.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <curl/curl.h>

#include "../common/log.h"
#include "pepd.h"

#define FETCH_MAX_RESP_HEADERS 512

/* A socket libcurl asked us to watch. */
struct csock {
	struct ev ev;
};

static void fetch_done(struct pepd *s, struct cjob *j, int rc, int aborted);

static struct preq *
job_req(struct cjob *j)
{
	return (struct preq *)(void *)((char *)j - offsetof(struct preq, job));
}

/* ---- requests ----------------------------------------------------- */

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
	struct pep_err e = { 0 };
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
	}
	return q;
}

void
preq_free(struct pepd *s, struct preq *q)
{
	if (q == NULL)
		return;
	proto_request_free(&q->r);
	if (q->have_url)
		url_free(&q->u);
	free(q->resp.data);
	free(q->body);
	while (q->nrh > 0) {
		q->nrh--;
		free(q->rh[q->nrh].name);
		free(q->rh[q->nrh].value);
	}
	free(q->rh);
	curl_slist_free_all(q->hdrs);
	if (q->job.easy != NULL)
		curl_easy_cleanup(q->job.easy);
	pepd_cfg_unref(q->cfg);
	s->nreqs--;
	free(q);
}

static void
preq_finish(struct pepd *s, struct preq *q)
{
	uint64_t now = pepd_now_us();

	if (q->resp.data == NULL &&
	    proto_refusal(q->code == PEP_OK ? PEP_UPSTREAM_ERROR : q->code,
	    q->msg, &q->resp) < 0)
		log_warnx("%s: cannot build the answer", q->id);
	q->total_us = now - q->t0_us;
	q->done = 1;
	if (q->counted)
		s->inflight--;
	q->counted = 0;
	audit_request(s, q);
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
	struct pep_err e = { 0 };
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

/* ---- the fetch ---------------------------------------------------- */

static curl_socket_t
fetch_opensocket(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *a)
{
	struct preq *q = clientp;
	const struct policy *p = q->cfg->c->policy;
	const void *in;
	enum ssrf_class cls;
	int fd;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (a->family == AF_INET6)
		in = &((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr;
	else
		in = &((struct sockaddr_in *)(void *)&a->addr)->sin_addr;
	if (inet_ntop(a->family, in, q->ip, sizeof(q->ip)) == NULL)
		q->ip[0] = '\0';
	cls = ssrf_check(&a->addr, a->addrlen,
	    p == NULL ? NULL : p->allow_private,
	    p == NULL ? 0 : p->nallow_private);
	if (cls != SSRF_PUBLIC) {
		q->ssrf_blocked = (int)cls;
		return CURL_SOCKET_BAD;
	}
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	return fd == -1 ? CURL_SOCKET_BAD : fd;
}

/*
 * Called for every connection a request is about to use, new or taken
 * from libcurl's pool, before anything is sent. The pool may hold
 * connections opened under an older policy (before a SIGHUP narrowed
 * allow_private): check the peer again here.
 */
static int
fetch_prereq(void *clientp, char *peer_ip, char *local_ip, int peer_port,
    int local_port)
{
	struct preq *q = clientp;
	const struct policy *p = q->cfg->c->policy;
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	enum ssrf_class cls;

	(void)local_ip;
	(void)local_port;
	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	s4.sin_family = AF_INET;
	s4.sin_port = htons((uint16_t)peer_port);
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons((uint16_t)peer_port);
	if (inet_pton(AF_INET, peer_ip, &s4.sin_addr) == 1)
		cls = ssrf_check((struct sockaddr *)&s4, sizeof(s4),
		    p == NULL ? NULL : p->allow_private,
		    p == NULL ? 0 : p->nallow_private);
	else if (inet_pton(AF_INET6, peer_ip, &s6.sin6_addr) == 1)
		cls = ssrf_check((struct sockaddr *)&s6, sizeof(s6),
		    p == NULL ? NULL : p->allow_private,
		    p == NULL ? 0 : p->nallow_private);
	else
		cls = SSRF_BAD_ADDRESS;
	snprintf(q->ip, sizeof(q->ip), "%s", peer_ip);
	if (cls == SSRF_PUBLIC)
		return CURL_PREREQFUNC_OK;
	q->ssrf_blocked = (int)cls;
	return CURL_PREREQFUNC_ABORT;
}

static size_t
fetch_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct preq *q = userdata;
	size_t n = size * nmemb, cap;
	uint8_t *p;

	if (n > q->cfg->c->limits.max_response - q->blen) {
		q->too_large = 1;
		return CURL_WRITEFUNC_ERROR;
	}
	if (q->blen + n > q->bcap) {
		cap = q->bcap == 0 ? 16384 : q->bcap;
		while (cap < q->blen + n)
			cap *= 2;
		p = realloc(q->body, cap);
		if (p == NULL)
			return CURL_WRITEFUNC_ERROR;
		q->body = p;
		q->bcap = cap;
	}
	memcpy(q->body + q->blen, ptr, n);
	q->blen += n;
	return n;
}

static void
resp_headers_clear(struct preq *q)
{
	while (q->nrh > 0) {
		q->nrh--;
		free(q->rh[q->nrh].name);
		free(q->rh[q->nrh].value);
	}
}

static int
resp_header_skip(const char *name, size_t n)
{
	char tmp[64];

	if (n >= sizeof(tmp))
		return 0;
	memcpy(tmp, name, n);
	tmp[n] = '\0';
	return proto_hop_by_hop(tmp) ||
	    strcasecmp(tmp, "content-encoding") == 0 ||
	    strcasecmp(tmp, "content-length") == 0;
}

static int
resp_header_add(struct preq *q, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n), *v;
	struct pep_header *h;
	size_t vlen;

	if (colon == NULL || colon == line)
		return 0;
	if (resp_header_skip(line, (size_t)(colon - line)))
		return 0;
	if (q->nrh == q->caprh) {
		if (q->caprh >= FETCH_MAX_RESP_HEADERS)
			return 0;
		h = realloc(q->rh, (q->caprh + 16) * sizeof(*h));
		if (h == NULL)
			return -1;
		q->rh = h;
		q->caprh += 16;
	}
	v = colon + 1;
	vlen = n - (size_t)(v - line);
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	h = &q->rh[q->nrh];
	h->name = strndup(line, (size_t)(colon - line));
	h->value = strndup(v, vlen);
	if (h->name == NULL || h->value == NULL) {
		free(h->name);
		free(h->value);
		return -1;
	}
	q->nrh++;
	return 0;
}

static size_t
fetch_header(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct preq *q = userdata;
	size_t n = size * nitems, len = n;

	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0)
		resp_headers_clear(q);
	else if (len > 0 && buf[0] != ' ' && buf[0] != '\t' &&
	    resp_header_add(q, buf, len) < 0)
		return 0;
	return n;
}

static int
req_header_skip(const char *name)
{
	static const char *const own[] = {
		"host", "content-length", "accept-encoding", "expect",
	};
	size_t i;

	if (proto_hop_by_hop(name))
		return 1;
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strcasecmp(name, own[i]) == 0)
			return 1;
	return 0;
}

static int
fetch_req_headers(struct preq *q)
{
	struct curl_slist *l = NULL, *t;
	char line[8192];
	size_t i;

	for (i = 0; i < q->r.nheaders; i++) {
		const struct pep_header *h = &q->r.headers[i];

		if (req_header_skip(h->name))
			continue;
		if (h->value[0] == '\0')
			snprintf(line, sizeof(line), "%s;", h->name);
		else
			snprintf(line, sizeof(line), "%s: %s", h->name,
			    h->value);
		t = curl_slist_append(l, line);
		if (t == NULL)
			goto fail;
		l = t;
	}
	t = curl_slist_append(l, "Expect:");
	if (t == NULL)
		goto fail;
	q->hdrs = t;
	return 0;
fail:
	curl_slist_free_all(l);
	return -ENOMEM;
}

void
fetch_common_opts(const struct pepd_config *c, void *easy)
{
	CURL *h = easy;

	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file != NULL) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
		curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
}

static void
fetch_method(struct preq *q, CURL *h)
{
	const char *m = q->r.method;

	if (strcmp(m, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		return;
	}
	if (strcmp(m, "GET") == 0 && q->r.body_len == 0)
		return;
	if (q->r.body_len > 0 || strcmp(m, "POST") == 0 ||
	    strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)q->r.body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
		    q->r.body != NULL ? (char *)q->r.body : "");
	}
	if (strcmp(m, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
}

static int
fetch_url(const struct pep_url *u, char *out, size_t outlen)
{
	int ipv6 = strchr(u->host, ':') != NULL;
	int n;

	n = snprintf(out, outlen, "%s://%s%s%s:%d%s", u->scheme,
	    ipv6 ? "[" : "", u->host, ipv6 ? "]" : "", u->port, u->path);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int
fetch_setup(struct preq *q, CURL *h)
{
	const struct pep_limits *lim = &q->cfg->c->limits;
	char *url;
	size_t ulen = strlen(q->u.host) + strlen(q->u.path) + 32;
	int r;

	url = malloc(ulen);
	if (url == NULL || fetch_url(&q->u, url, ulen) < 0) {
		free(url);
		return -ENOMEM;
	}
	fetch_common_opts(q->cfg->c, h);
	r = curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK ? 0 : -EINVAL;
	free(url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, q->msg);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, lim->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, lim->total_timeout_ms);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, fetch_opensocket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, q);
	curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, fetch_prereq);
	curl_easy_setopt(h, CURLOPT_PREREQDATA, q);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fetch_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)lim->max_response);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, q->hdrs);
	fetch_method(q, h);
	return r;
}

/* A reset easy handle from the pool, or a new one. */
static CURL *
fetch_easy_get(struct pepd *s)
{
	CURL *h;

	if (s->neasy_pool == 0)
		return curl_easy_init();
	h = s->easy_pool[--s->neasy_pool];
	curl_easy_reset(h);
	return h;
}

static void
fetch_easy_put(struct pepd *s, CURL *h)
{
	if (s->neasy_pool < PEPD_EASY_POOL)
		s->easy_pool[s->neasy_pool++] = h;
	else
		curl_easy_cleanup(h);
}

static void
fetch_start(struct pepd *s, struct preq *q)
{
	size_t max = q->cfg->c->limits.max_concurrent;
	CURL *h;

	if (s->inflight >= max) {
		preq_msg(q, "%zu fetches in flight",
		    s->inflight);
		preq_refuse(s, q, PEP_OVERLOADED, q->msg);
		return;
	}
	h = fetch_easy_get(s);
	q->job.easy = h;
	q->job.done = fetch_done;
	if (h == NULL || fetch_req_headers(q) < 0 || fetch_setup(q, h) < 0 ||
	    fetch_add_job(s, &q->job) < 0) {
		preq_refuse(s, q, PEP_UPSTREAM_ERROR, "cannot start the fetch");
		return;
	}
	s->inflight++;
	q->counted = 1;
}

void
preq_decided(struct pepd *s, struct preq *q)
{
	q->decided = 1;
	if (!q->d.allow) {
		preq_msg(q, "%s %s://%s:%d is not allowed "
		    "(%s)", q->r.method, q->u.scheme, q->u.host, q->u.port,
		    q->d.rule != NULL ? q->d.rule : "default");
		preq_refuse(s, q, PEP_DENIED_BY_POLICY, q->msg);
		return;
	}
	fetch_start(s, q);
}

static void
fetch_times(struct preq *q, CURL *h)
{
	curl_off_t t = 0;
	char *ip = NULL;

	if (curl_easy_getinfo(h, CURLINFO_NAMELOOKUP_TIME_T, &t) == CURLE_OK)
		q->dns_us = (long)t;
	if (curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK)
		q->connect_us = (long)t;
	if (curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &t) == CURLE_OK)
		q->bytes_out = (size_t)t;
	if (curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK &&
	    ip != NULL && ip[0] != '\0')
		snprintf(q->ip, sizeof(q->ip), "%s", ip);
}

static enum pep_code
fetch_code(struct preq *q, int rc)
{
	if (q->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		preq_msg(q, "response body over %zu "
		    "bytes", q->cfg->c->limits.max_response);
		return PEP_RESPONSE_TOO_LARGE;
	}
	if (q->ssrf_blocked && (rc == CURLE_COULDNT_CONNECT ||
	    rc == CURLE_OPERATION_TIMEDOUT ||
	    rc == CURLE_ABORTED_BY_CALLBACK)) {
		preq_msg(q, "address %s is %s", q->ip,
		    ssrf_class_name((enum ssrf_class)q->ssrf_blocked));
		return PEP_SSRF_BLOCKED;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return PEP_TIMEOUT;
	if (q->msg[0] == '\0')
		preq_msg(q, "%s",
		    curl_easy_strerror((CURLcode)rc));
	return PEP_UPSTREAM_ERROR;
}

static void
fetch_done(struct pepd *s, struct cjob *j, int rc, int aborted)
{
	struct preq *q = job_req(j);
	CURL *h = j->easy;
	long status = 0;

	fetch_times(q, h);
	if (aborted) {
		q->code = PEP_OVERLOADED;
		preq_msg(q, "pepd is shutting down");
	} else if (rc != CURLE_OK) {
		q->code = fetch_code(q, rc);
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		q->status = (int)status;
		if (proto_response(q->status, q->rh, q->nrh, q->body, q->blen,
		    &q->resp) < 0) {
			q->code = PEP_UPSTREAM_ERROR;
			preq_msg(q, "out of memory");
		}
	}
	fetch_easy_put(s, h);
	j->easy = NULL;
	free(q->body);
	q->body = NULL;
	q->bcap = 0;
	preq_finish(s, q);
}

/* ---- libcurl multi on epoll --------------------------------------- */

static void
fetch_check_done(struct pepd *s)
{
	CURLMsg *m;
	struct cjob *j;
	int left;

	while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		j = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &j);
		curl_multi_remove_handle(s->multi, m->easy_handle);
		if (j == NULL)
			continue;
		if (j->prev != NULL)
			j->prev->next = j->next;
		else
			s->jobs = j->next;
		if (j->next != NULL)
			j->next->prev = j->prev;
		j->done(s, j, (int)m->data.result, 0);
	}
}

static void
on_csock(struct pepd *s, struct ev *ev, uint32_t events)
{
	int flags = 0, running;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(s->multi, ev->fd, flags, &running);
	fetch_check_done(s);
}

static int
fetch_sock_cb(CURL *e, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
	struct pepd *s = userp;
	struct csock *cs = socketp;
	uint32_t events = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (cs != NULL) {
			ev_del(s, &cs->ev);
			pepd_defer_free(s, &cs->ev, cs);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (cs != NULL)
		return ev_mod(s, &cs->ev, events) < 0 ? -1 : 0;
	cs = calloc(1, sizeof(*cs));
	if (cs == NULL)
		return -1;
	cs->ev.fd = fd;
	cs->ev.fn = on_csock;
	curl_multi_assign(s->multi, fd, cs);
	return ev_add(s, &cs->ev, events) < 0 ? -1 : 0;
}

/*
 * libcurl asks for a new timeout after nearly every socket action. A
 * timer that fires early is harmless (curl looks, then asks again), one
 * that fires late is not: so re-arm only when the new deadline comes
 * before the armed one. That saves a timerfd_settime per event.
 */
static int
fetch_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct pepd *s = userp;
	struct itimerspec it = { 0 };
	uint64_t due;

	(void)m;
	if (timeout_ms < 0)
		return 0;	/* "no timeout": an armed one fires harmlessly */
	due = pepd_now_us() + (uint64_t)timeout_ms * 1000;
	if (s->curl_due_us != 0 && s->curl_due_us <= due)
		return 0;
	s->curl_due_us = due;
	if (timeout_ms == 0) {
		it.it_value.tv_nsec = 1;
	} else {
		it.it_value.tv_sec = timeout_ms / 1000;
		it.it_value.tv_nsec = (timeout_ms % 1000) * 1000000L;
	}
	return timerfd_settime(s->curlev.fd, 0, &it, NULL) == -1 ? -1 : 0;
}

void
fetch_timer(struct pepd *s)
{
	int running;

	curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	fetch_check_done(s);
}

int
fetch_add_job(struct pepd *s, struct cjob *j)
{
	curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
	if (curl_multi_add_handle(s->multi, j->easy) != CURLM_OK)
		return -EINVAL;
	j->prev = NULL;
	j->next = s->jobs;
	if (s->jobs != NULL)
		s->jobs->prev = j;
	s->jobs = j;
	return 0;
}

void
fetch_abort_all(struct pepd *s)
{
	struct cjob *j;

	while ((j = s->jobs) != NULL) {
		s->jobs = j->next;
		if (s->jobs != NULL)
			s->jobs->prev = NULL;
		curl_multi_remove_handle(s->multi, j->easy);
		j->done(s, j, 0, 1);
	}
}

int
fetch_init(struct pepd *s, struct pep_err *e)
{
	CURLM *m;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return pep_errf(e, PEP_ELIB, "curl_global_init failed");
	m = curl_multi_init();
	if (m == NULL)
		return pep_errf(e, PEP_ELIB, "curl_multi_init failed");
	s->multi = m;
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, fetch_sock_cb);
	curl_multi_setopt(m, CURLMOPT_SOCKETDATA, s);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, fetch_timer_cb);
	curl_multi_setopt(m, CURLMOPT_TIMERDATA, s);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 256L);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 512L);
	return 0;
}

void
fetch_cleanup(struct pepd *s)
{
	if (s->multi == NULL)
		return;
	while (s->neasy_pool > 0)
		curl_easy_cleanup(s->easy_pool[--s->neasy_pool]);
	curl_multi_cleanup(s->multi);
	s->multi = NULL;
	curl_global_cleanup();
}
