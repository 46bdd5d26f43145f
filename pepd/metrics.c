/*
 * Prometheus text exposition on a separate loopback port: requests by
 * decision and by refusal code, a latency histogram, fetches in flight,
 * connections (open, refused by a cap, closed idle), the audit log's
 * state, the fetcher's. Every connection gets the page once, then is
 * closed.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "pepd.h"

#define METRICS_PAGE 16384

static const double metrics_le[METRICS_NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
	10, 60,
};

static const char *const metrics_decision[3] = { "allow", "deny", "report" };

struct mconn {
	struct ev ev;
};

void
metrics_request(struct pepd *s, const struct preq *q)
{
	struct metrics *m = &s->metrics;
	double sec = (double)q->total_us / 1e6;
	size_t i;

	if (q->decided)
		m->decisions[!q->d.allow ? 1 : q->d.would_deny ? 2 : 0]++;
	if ((size_t)q->code < sizeof(m->codes) / sizeof(m->codes[0]))
		m->codes[q->code]++;
	for (i = 0; i < METRICS_NBUCKETS; i++)
		if (sec <= metrics_le[i]) {
			m->buckets[i]++;
			break;
		}
	m->latency_sum += sec;
	m->latency_count++;
}

static size_t
put(char *buf, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static size_t
put(char *buf, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (off >= METRICS_PAGE)
		return off;
	va_start(ap, fmt);
	n = vsnprintf(buf + off, METRICS_PAGE - off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return off;
	return off + (size_t)n;
}

static size_t
metrics_conns(struct pepd *s, char *b, size_t o)
{
	static const char *const why[CONN_REFUSED_NREASONS] = {
		[CONN_REFUSED_MAX] = "max_connections",
		[CONN_REFUSED_CLIENT] = "per_client",
		[CONN_REFUSED_FDS] = "fd_exhausted",
	};
	size_t i;

	o = put(b, o, "# TYPE pepd_connections gauge\npepd_connections "
	    "%zu\n", s->nconns);
	o = put(b, o, "# TYPE pepd_connections_limit gauge\n"
	    "pepd_connections_limit %zu\n", s->conn_cap);
	o = put(b, o, "# TYPE pepd_connections_refused_total counter\n");
	for (i = 0; i < CONN_REFUSED_NREASONS; i++)
		o = put(b, o, "pepd_connections_refused_total{reason=\"%s\"} "
		    "%llu\n", why[i],
		    (unsigned long long)s->metrics.conn_refused[i]);
	o = put(b, o, "# TYPE pepd_connections_closed_total counter\n"
	    "pepd_connections_closed_total{reason=\"idle\"} %llu\n",
	    (unsigned long long)s->metrics.conn_closed_idle);
	return o;
}

static size_t
metrics_render(struct pepd *s, char *b)
{
	struct metrics *m = &s->metrics;
	uint64_t cum = 0;
	size_t i, o = 0;

	o = put(b, o, "# TYPE pepd_requests_total counter\n");
	for (i = 0; i < 3; i++)
		o = put(b, o, "pepd_requests_total{decision=\"%s\"} %llu\n",
		    metrics_decision[i], (unsigned long long)m->decisions[i]);
	o = put(b, o, "# TYPE pepd_responses_total counter\n");
	for (i = 0; i <= PEP_CODE_LAST; i++)
		o = put(b, o, "pepd_responses_total{code=\"%s\"} %llu\n",
		    i == 0 ? "ok" : pep_code_name((enum pep_code)i),
		    (unsigned long long)m->codes[i]);
	o = put(b, o, "# TYPE pepd_request_duration_seconds histogram\n");
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += m->buckets[i];
		o = put(b, o, "pepd_request_duration_seconds_bucket"
		    "{le=\"%g\"} %llu\n", metrics_le[i],
		    (unsigned long long)cum);
	}
	o = put(b, o, "pepd_request_duration_seconds_bucket{le=\"+Inf\"} "
	    "%llu\n", (unsigned long long)m->latency_count);
	o = put(b, o, "pepd_request_duration_seconds_sum %.6f\n",
	    m->latency_sum);
	o = put(b, o, "pepd_request_duration_seconds_count %llu\n",
	    (unsigned long long)m->latency_count);
	o = put(b, o, "# TYPE pepd_fetches_in_flight gauge\n"
	    "pepd_fetches_in_flight %zu\n", s->inflight);
	o = put(b, o, "# TYPE pepd_requests_in_flight gauge\n"
	    "pepd_requests_in_flight %zu\n", s->nreqs);
	o = metrics_conns(s, b, o);
	o = put(b, o, "# TYPE pepd_audit_available gauge\n"
	    "pepd_audit_available %d\n", !s->audit.broken);
	o = put(b, o, "# TYPE pepd_audit_lines_total counter\n"
	    "pepd_audit_lines_total %llu\n",
	    (unsigned long long)s->audit.lines);
	o = put(b, o, "# TYPE pepd_audit_errors_total counter\n"
	    "pepd_audit_errors_total %llu\n",
	    (unsigned long long)s->audit.write_errors);
	o = put(b, o, "# TYPE pepd_audit_lost_total counter\n"
	    "pepd_audit_lost_total %llu\n",
	    (unsigned long long)s->audit.lost);
	o = put(b, o, "# TYPE pepd_fetcher_up gauge\npepd_fetcher_up %d\n",
	    s->fc.up);
	o = put(b, o, "# TYPE pepd_fetcher_restarts_total counter\n"
	    "pepd_fetcher_restarts_total %llu\n",
	    (unsigned long long)s->fc.restarts);
	o = put(b, o, "# TYPE pepd_fetcher_landlock_abi gauge\n"
	    "pepd_fetcher_landlock_abi %d\n", (int)s->fc.hello.landlock_abi);
	return o < METRICS_PAGE ? o : METRICS_PAGE - 1;
}

static void
on_mconn(struct pepd *s, struct ev *ev, uint32_t events)
{
	struct mconn *mc = (struct mconn *)ev;
	char in[2048], *page, hdr[160];
	size_t n;
	int hl;

	(void)events;
	while (read(ev->fd, in, sizeof(in)) > 0)
		;
	page = malloc(METRICS_PAGE);
	if (page != NULL) {
		n = metrics_render(s, page);
		hl = snprintf(hdr, sizeof(hdr), "HTTP/1.0 200 OK\r\n"
		    "Content-Type: text/plain; version=0.0.4\r\n"
		    "Content-Length: %zu\r\nConnection: close\r\n\r\n", n);
		if (send(ev->fd, hdr, (size_t)hl, MSG_NOSIGNAL) == hl)
			send(ev->fd, page, n, MSG_NOSIGNAL);
		free(page);
	}
	ev_del(s, ev);
	close(ev->fd);
	free(mc);
}

static void
on_metrics_accept(struct pepd *s, struct ev *ev, uint32_t events)
{
	struct mconn *mc;
	int fd;

	(void)events;
	fd = accept4(ev->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1)
		return;
	mc = calloc(1, sizeof(*mc));
	if (mc == NULL) {
		close(fd);
		return;
	}
	mc->ev.fd = fd;
	mc->ev.fn = on_mconn;
	if (ev_add(s, &mc->ev, EPOLLIN) < 0) {
		close(fd);
		free(mc);
	}
}

int
metrics_open(struct pepd *s, const char *hostport, struct pep_err *e)
{
	struct listener l = { 0 };
	char spec[300];
	int r;

	snprintf(spec, sizeof(spec), "tcp:%s", hostport);
	r = listener_open(s, spec, &l, e);
	if (r < 0)
		return r;
	s->metrics.lev.fd = l.ev.fd;
	s->metrics.lev.fn = on_metrics_accept;
	return ev_mod(s, &s->metrics.lev, EPOLLIN);
}

void
metrics_close(struct pepd *s)
{
	if (s->metrics.lev.fd < 0)
		return;
	ev_del(s, &s->metrics.lev);
	close(s->metrics.lev.fd);
	s->metrics.lev.fd = -1;
}
