/*
 * One guest connection: non-blocking reads into a buffer, frames cut
 * with frame_check, requests queued in arrival order and answered in that
 * order even when their fetches finish out of order. A frame over the
 * limit or one that does not parse is answered bad_request, then the
 * connection closes. An incomplete frame older than frame_timeout_ms is
 * closed (slowloris), and so is a connection idle for idle_timeout_ms.
 * Closing after the last answer shuts the write side down first and
 * discards input until EOF, so no RST eats the answer.
 *
 * A connection over a cap (max_connections, max_connections_per_client;
 * listen.c decides) is "over": its first request is answered overloaded
 * (and audited), then it closes; it may wait CONN_OVER_MS for that
 * request, and at most a few such wait at once (the oldest goes first).
 *
 * At SIGTERM, the frames already read are requests too, max_queue or
 * not: pepd(8) promises an answer and an audit line for every request
 * it read.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
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
		c->active_ms = pepd_now_ms();
		if (c->woff < q->resp.len)
			continue;
		c->woff = 0;
		preq_free(s, conn_dequeue(c));
	}
	return 0;
}

static int conn_parse(struct pepd *s, struct conn *c, size_t limit);

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
		r = conn_parse(s, c, conn_max_queue(s));
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
	if (close_conn || c->over[0] != '\0')
		c->closing = 1;
	preq_begin(s, q);
	return 0;
}

/* Cut the buffered bytes into frames while the queue has room. */
static int
conn_parse(struct pepd *s, struct conn *c, size_t limit)
{
	size_t off = 0, plen = 0, max = s->cfg->c->limits.max_frame;
	ssize_t r;
	int rc = 0, incomplete = 0;

	while (!c->closing && c->nq < limit) {
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
		c->active_ms = pepd_now_ms();
		budget -= (size_t)n < budget ? (size_t)n : budget;
		if (conn_parse(s, c, conn_max_queue(s)) < 0)
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

struct client *
client_get(struct pepd *s, const char *key)
{
	struct client *cl;

	for (cl = s->clients; cl != NULL; cl = cl->next)
		if (strcmp(cl->key, key) == 0)
			return cl;
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return NULL;
	snprintf(cl->key, sizeof(cl->key), "%s", key);
	cl->next = s->clients;
	s->clients = cl;
	return cl;
}

void
client_put(struct pepd *s, struct client *cl)
{
	struct client **pp;

	if (cl == NULL || --cl->n > 0)
		return;
	for (pp = &s->clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			free(cl);
			return;
		}
	}
}

static void
over_unlink(struct pepd *s, struct conn *c)
{
	if (c->oprev != NULL)
		c->oprev->onext = c->onext;
	else
		s->over_head = c->onext;
	if (c->onext != NULL)
		c->onext->oprev = c->oprev;
	else
		s->over_tail = c->oprev;
	c->oprev = c->onext = NULL;
	s->nover--;
}

int
conn_new(struct pepd *s, int fd, const char *peer, const char *client,
    const char *over)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct client *cl = NULL;
	int r;

	if (c == NULL)
		return -ENOMEM;
	if (over[0] == '\0') {
		cl = client_get(s, client);
		if (cl == NULL) {
			free(c);
			return -ENOMEM;
		}
	}
	c->ev.fd = fd;
	c->ev.fn = on_conn;
	memcpy(c->peer, peer, strnlen(peer, sizeof(c->peer) - 1));
	snprintf(c->over, sizeof(c->over), "%s", over);
	c->events = EPOLLIN;
	c->born_ms = c->active_ms = pepd_now_ms();
	r = ev_add(s, &c->ev, EPOLLIN);
	if (r < 0) {
		if (cl != NULL && cl->n == 0) {
			cl->n = 1;	/* a new, empty entry: let it go */
			client_put(s, cl);
		}
		free(c);
		return r;
	}
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	if (cl != NULL) {
		c->cl = cl;
		cl->n++;
		s->nconns++;
		return 0;
	}
	/* over a cap: at most s->over_max wait; the oldest goes */
	if (s->nover >= s->over_max && s->over_head != NULL)
		conn_close(s, s->over_head);
	c->oprev = s->over_tail;
	if (s->over_tail != NULL)
		s->over_tail->onext = c;
	else
		s->over_head = c;
	s->over_tail = c;
	s->nover++;
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
	if (c->cl != NULL) {
		client_put(s, c->cl);
		s->nconns--;
	} else {
		over_unlink(s, c);
	}
	free(c->rbuf);
	pepd_defer_free(s, &c->ev, c);
}

void
conn_stop_reading(struct pepd *s, struct conn *c)
{
	if (c->draining)
		return;
	if (!c->closing && c->rlen > 0) {
		/* read already: every whole frame is a request */
		c->busy = 1;
		if (conn_parse(s, c, SIZE_MAX) < 0)
			log_warnx("%s: out of memory at shutdown", c->peer);
		c->busy = 0;
	}
	c->closing = 1;
	conn_service(s, c);
}

/* Idle: nothing queued, nothing half-read, not closing. */
static int
conn_idle(const struct conn *c)
{
	return c->nq == 0 && c->rlen == 0 && !c->closing && !c->draining;
}

void
conn_tick(struct pepd *s, uint64_t now)
{
	struct conn *c, *next;
	uint64_t limit = (uint64_t)s->opts.frame_timeout_ms;
	uint64_t idle = (uint64_t)s->cfg->c->limits.idle_timeout_ms;

	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (c->draining && now >= c->drain_deadline_ms) {
			conn_close(s, c);
		} else if (c->partial_since_ms != 0 &&
		    now - c->partial_since_ms >= limit) {
			log_info("%s: incomplete frame for %lu ms, closing",
			    c->peer, (unsigned long)limit);
			conn_close(s, c);
		} else if (c->over[0] != '\0' && conn_idle(c) &&
		    now - c->born_ms >= CONN_OVER_MS) {
			conn_close(s, c);
		} else if (conn_idle(c) && now - c->active_ms >= idle) {
			log_debug("%s: idle for %lu ms, closing", c->peer,
			    (unsigned long)idle);
			s->metrics.conn_closed_idle++;
			conn_close(s, c);
		}
	}
}
