/*
 * One client connection: non-blocking reads into a buffer, frames cut
 * with frame_check, requests queued in arrival order and answered in that
 * order even when their fetches finish out of order. A frame over the
 * limit or one that does not parse is answered bad_request, then the
 * connection closes. An incomplete frame older than frame_timeout_ms is
 * closed (slowloris). Closing after the last answer shuts the write side
 * down first and discards input until EOF, so no RST eats the answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "pepd.h"

#define CONN_READ_MIN 16384
#define CONN_READ_BUDGET (1u << 20)	/* bytes per wake-up */
#define CONN_DRAIN_MS 1000

static void
conn_enqueue(struct conn *c, struct preq *q)
{
	if (c->qtail == NULL)
		c->qhead = q;
	else
		c->qtail->next = q;
	c->qtail = q;
	c->nq++;
}

static struct preq *
conn_dequeue(struct conn *c)
{
	struct preq *q = c->qhead;

	c->qhead = q->next;
	if (c->qhead == NULL)
		c->qtail = NULL;
	c->nq--;
	q->next = NULL;
	return q;
}

static size_t
conn_max_queue(struct pepd *s)
{
	size_t m = s->cfg->c->limits.max_queue;

	return m == 0 ? 1 : m;
}

static void
conn_update(struct pepd *s, struct conn *c)
{
	uint32_t want = 0;

	if (c->draining)
		want = EPOLLIN;
	else if (!c->closing && c->nq < conn_max_queue(s))
		want = EPOLLIN;
	if (c->wblocked)
		want |= EPOLLOUT;
	if (want != c->events && ev_mod(s, &c->ev, want) == 0)
		c->events = want;
}

static void
conn_drain(struct pepd *s, struct conn *c)
{
	free(c->rbuf);
	c->rbuf = NULL;
	c->rlen = c->rcap = 0;
	c->partial_since_ms = 0;
	if (c->rd_eof) {
		conn_close(s, c);
		return;
	}
	c->draining = 1;
	c->drain_deadline_ms = pepd_now_ms() + CONN_DRAIN_MS;
	shutdown(c->ev.fd, SHUT_WR);
	conn_update(s, c);
}

/* Write done answers in order; 0, or -1 when c was closed. */
static int
conn_flush(struct pepd *s, struct conn *c)
{
	struct preq *q;
	ssize_t n;

	c->wblocked = 0;
	while ((q = c->qhead) != NULL && q->done) {
		n = send(c->ev.fd, q->resp.data + c->woff,
		    q->resp.len - c->woff, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			c->wblocked = 1;
			break;
		}
		if (n < 0) {
			log_debug("%s: write: %s", c->peer, strerror(errno));
			conn_close(s, c);
			return -1;
		}
		c->woff += (size_t)n;
		if (c->woff < q->resp.len)
			continue;
		c->woff = 0;
		preq_free(s, conn_dequeue(c));
	}
	return 0;
}

static int conn_parse(struct pepd *s, struct conn *c);

/*
 * Flush; parse frames left buffered by a full queue once it has room;
 * close or drain when nothing is left; update the epoll mask.
 */
static void
conn_service(struct pepd *s, struct conn *c)
{
	size_t nq;
	int r;

	do {
		if (conn_flush(s, c) < 0)
			return;
		nq = c->nq;
		if (c->closing || c->rlen == 0 || nq >= conn_max_queue(s))
			break;
		c->busy = 1;
		r = conn_parse(s, c);
		c->busy = 0;
		if (r < 0) {
			conn_close(s, c);
			return;
		}
	} while (c->nq != nq);
	if (c->closing && !c->draining && c->qhead == NULL) {
		conn_drain(s, c);
		return;
	}
	conn_update(s, c);
}

void
conn_kick(struct pepd *s, struct conn *c)
{
	if (!c->busy)
		conn_service(s, c);
}

static int
conn_grow(struct conn *c, size_t need)
{
	size_t cap = c->rcap == 0 ? CONN_READ_MIN : c->rcap;
	uint8_t *p;

	while (cap < need)
		cap *= 2;
	if (cap == c->rcap)
		return 0;
	p = realloc(c->rbuf, cap);
	if (p == NULL)
		return -ENOMEM;
	c->rbuf = p;
	c->rcap = cap;
	return 0;
}

/* One frame (or an oversize announcement) becomes a queued request. */
static int
conn_take(struct pepd *s, struct conn *c, const uint8_t *json, size_t len)
{
	struct preq *q;
	int close_conn = 0;

	q = preq_new(s, c, json, len, &close_conn);
	if (q == NULL)
		return -ENOMEM;
	conn_enqueue(c, q);
	if (close_conn)
		c->closing = 1;
	preq_begin(s, q);
	return 0;
}

/* Cut the buffered bytes into frames while the queue has room. */
static int
conn_parse(struct pepd *s, struct conn *c)
{
	size_t off = 0, plen = 0, max = s->cfg->c->limits.max_frame;
	ssize_t r;
	int rc = 0, incomplete = 0;

	while (!c->closing && c->nq < conn_max_queue(s)) {
		r = frame_check(c->rbuf + off, c->rlen - off, max, &plen);
		if (r == 0) {
			incomplete = 1;
			break;
		}
		if (r < 0) {
			rc = conn_take(s, c, NULL, plen);
			off = c->rlen;
			break;
		}
		rc = conn_take(s, c, c->rbuf + off + FRAME_HDR, plen);
		off += (size_t)r;
		c->partial_since_ms = 0;
		if (rc < 0)
			break;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	if (c->rlen == 0 || c->closing) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rlen = c->rcap = 0;
		c->partial_since_ms = 0;
	} else if (incomplete && c->partial_since_ms == 0) {
		c->partial_since_ms = pepd_now_ms();
	}
	if (incomplete && plen > 0 && rc == 0)
		rc = conn_grow(c, FRAME_HDR + plen);
	return rc;
}

static void
conn_discard(struct pepd *s, struct conn *c)
{
	char buf[4096];
	ssize_t n;

	do {
		n = read(c->ev.fd, buf, sizeof(buf));
	} while (n > 0);
	if (n == 0 || errno != EAGAIN)
		conn_close(s, c);
}

/* Read what is there; 0, or -1 when c must be closed. */
static int
conn_read(struct pepd *s, struct conn *c)
{
	size_t budget = CONN_READ_BUDGET;
	ssize_t n;

	while (budget > 0 && !c->closing && c->nq < conn_max_queue(s)) {
		if (c->rcap - c->rlen < CONN_READ_MIN / 4 &&
		    conn_grow(c, c->rlen + CONN_READ_MIN) < 0)
			return -1;
		n = read(c->ev.fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return -1;
		if (n == 0) {
			c->rd_eof = 1;
			c->closing = 1;
			break;
		}
		c->rlen += (size_t)n;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		if (conn_parse(s, c) < 0)
			return -1;
	}
	return 0;
}

static void
on_conn(struct pepd *s, struct ev *ev, uint32_t events)
{
	struct conn *c = (struct conn *)ev;
	int r = 0;

	if (events & (EPOLLERR | EPOLLHUP)) {
		conn_close(s, c);
		return;
	}
	if (c->draining) {
		conn_discard(s, c);
		return;
	}
	c->busy = 1;
	if (events & EPOLLIN)
		r = conn_read(s, c);
	c->busy = 0;
	if (r < 0) {
		conn_close(s, c);
		return;
	}
	conn_service(s, c);
}

int
conn_new(struct pepd *s, int fd, const char *peer)
{
	struct conn *c = calloc(1, sizeof(*c));
	int r;

	if (c == NULL)
		return -ENOMEM;
	c->ev.fd = fd;
	c->ev.fn = on_conn;
	memcpy(c->peer, peer, strnlen(peer, sizeof(c->peer) - 1));
	c->events = EPOLLIN;
	r = ev_add(s, &c->ev, EPOLLIN);
	if (r < 0) {
		free(c);
		return r;
	}
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	return 0;
}

void
conn_close(struct pepd *s, struct conn *c)
{
	struct preq *q;

	ev_del(s, &c->ev);
	close(c->ev.fd);
	while (c->qhead != NULL) {
		q = conn_dequeue(c);
		if (q->done)
			preq_free(s, q);
		else
			q->conn = NULL;
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	free(c->rbuf);
	pepd_defer_free(s, &c->ev, c);
}

void
conn_stop_reading(struct pepd *s, struct conn *c)
{
	if (c->draining)
		return;
	c->closing = 1;
	conn_service(s, c);
}

void
conn_tick(struct pepd *s, uint64_t now)
{
	struct conn *c, *next;
	uint64_t limit = (uint64_t)s->opts.frame_timeout_ms;

	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (c->draining && now >= c->drain_deadline_ms) {
			conn_close(s, c);
		} else if (c->partial_since_ms != 0 &&
		    now - c->partial_since_ms >= limit) {
			log_info("%s: incomplete frame for %lu ms, closing",
			    c->peer, (unsigned long)limit);
			conn_close(s, c);
		}
	}
}
