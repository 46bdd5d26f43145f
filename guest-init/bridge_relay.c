/*
 * The relay: one epoll loop owning the listener, the signalfd, a retry
 * timer and every connection pair. Each pair has two ends (client,
 * upstream) and two directions, each with a bounded buffer; a side is
 * read only while its direction's buffer has room (backpressure). An
 * end whose interest set is empty is removed from epoll, so HUP/ERR on a
 * socket we are not waiting on cannot spin the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../common/log.h"
#include "pexi-bridge.h"

#define PB_MAXEVENTS	64
#define PB_ACCEPT_BATCH	64
#define PB_TICK_NS	10000000L	/* 10 ms */
#define PB_MAXRETRIES	100		/* unix backlog full: 1 s of ticks */
#define PB_SPARE	8		/* emptied buffers kept for reuse */

enum pb_kind { PB_K_LISTEN, PB_K_SIGNAL, PB_K_TIMER, PB_K_CONN };
enum pb_side { PB_CLI = 0, PB_UP = 1 };
enum pb_state { PB_S_CONNECTING, PB_S_RETRY, PB_S_OPEN, PB_S_DEAD };

struct pb_conn;

/* One socket in the epoll set; data.ptr points here. */
struct pb_end {
	enum pb_kind kind;
	int fd;
	uint32_t mask;		/* registered events; 0: not in epoll */
	struct pb_conn *conn;
	int side;
};

/* Bytes read from end[i] and not yet written to end[!i]. */
struct pb_dir {
	char *buf;		/* NULL while empty */
	size_t off, len;
	uint64_t total;
	int eof;		/* end[i] reached end of file */
	int shut;		/* end[!i] shut down for writing */
};

struct pb_conn {
	struct pb_end end[2];
	struct pb_dir dir[2];
	struct pb_relay *relay;
	struct pb_conn *prev, *next;	/* relay->conns, or relay->dead */
	enum pb_state state;
	unsigned long id;
	unsigned retries;
};

struct pb_relay {
	int epfd;
	struct pb_end listen, sig, timer;
	struct pb_relay_opts o;
	struct pb_conn *conns;
	struct pb_conn *dead;		/* closed this round, freed after it */
	unsigned nconns, nretry;
	unsigned long nextid;
	int accept_paused;		/* out of fds or memory: wait a tick */
	int accept_warned;		/* logged for this episode */
	int timer_armed;
	int up_failing;			/* last upstream connect failed */
	int stop;			/* signal number that ended the loop */
	char *spare[PB_SPARE];		/* spares: no malloc churn per read */
	unsigned nspare;
};

static size_t
dir_pending(const struct pb_dir *d)
{
	return d->len - d->off;
}

static char *
buf_get(struct pb_relay *r)
{
	if (r->nspare > 0)
		return r->spare[--r->nspare];
	return malloc(r->o.bufsize);
}

static void
buf_put(struct pb_relay *r, char *buf)
{
	if (buf != NULL && r->nspare < PB_SPARE)
		r->spare[r->nspare++] = buf;
	else
		free(buf);
}

/* An empty direction holds no buffer: idle pairs cost no buffer memory. */
static void
dir_trim(struct pb_relay *r, struct pb_dir *d)
{
	if (dir_pending(d) > 0)
		return;
	buf_put(r, d->buf);
	d->buf = NULL;
	d->off = 0;
	d->len = 0;
}

static int
end_set(struct pb_relay *r, struct pb_end *e, uint32_t want)
{
	struct epoll_event ev;
	int op = EPOLL_CTL_MOD;

	if (want == e->mask)
		return 0;
	if (want == 0)
		op = EPOLL_CTL_DEL;
	else if (e->mask == 0)
		op = EPOLL_CTL_ADD;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = e;
	if (epoll_ctl(r->epfd, op, e->fd, &ev) < 0)
		return -errno;
	e->mask = want;
	return 0;
}

static void
relay_timer_update(struct pb_relay *r)
{
	struct itimerspec its;
	int need = r->nretry > 0 || r->accept_paused;

	if (need == r->timer_armed)
		return;
	memset(&its, 0, sizeof(its));
	if (need) {
		its.it_value.tv_nsec = PB_TICK_NS;
		its.it_interval.tv_nsec = PB_TICK_NS;
	}
	if (timerfd_settime(r->timer.fd, 0, &its, NULL) < 0)
		fatal("%s: timerfd_settime", __func__);
	r->timer_armed = need;
}

static void
relay_listen_update(struct pb_relay *r)
{
	uint32_t want = 0;

	if (r->listen.fd >= 0 && !r->accept_paused &&
	    r->nconns < r->o.maxconns)
		want = EPOLLIN;
	if (end_set(r, &r->listen, want) < 0)
		fatal("%s: epoll_ctl", __func__);
	relay_timer_update(r);
}

/* --- one connection pair ------------------------------------------- */

static void
conn_close(struct pb_conn *c, int abort)
{
	struct pb_relay *r = c->relay;
	struct linger lg = { 1, 0 };
	int i;

	if (abort && c->end[PB_CLI].fd >= 0)	/* reset, not a clean EOF */
		setsockopt(c->end[PB_CLI].fd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg));
	for (i = 0; i < 2; i++) {
		if (c->end[i].fd >= 0)
			close(c->end[i].fd);
		c->end[i].fd = -1;
		buf_put(r, c->dir[i].buf);
		c->dir[i].buf = NULL;
	}
	if (log_verbose() > 0)
		log_info("conn %lu: closed, %" PRIu64 " bytes up, %" PRIu64
		    " down", c->id, c->dir[PB_CLI].total, c->dir[PB_UP].total);
	if (c->state == PB_S_RETRY)
		r->nretry--;
	c->state = PB_S_DEAD;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		r->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = r->dead;
	r->dead = c;
	r->nconns--;
	relay_listen_update(r);
}

/* Write direction d's buffer to the opposite end; shut it down at EOF. */
static int
dir_write(struct pb_conn *c, int side)
{
	struct pb_dir *d = &c->dir[side];
	int fd = c->end[!side].fd;
	ssize_t n;

	if (c->state != PB_S_OPEN)
		return 0;
	if (dir_pending(d) > 0) {
		n = send(fd, d->buf + d->off, dir_pending(d), MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n > 0)
			d->off += (size_t)n;
	}
	dir_trim(c->relay, d);
	if (d->eof && !d->shut && dir_pending(d) == 0) {
		shutdown(fd, SHUT_WR);	/* ENOTCONN: the peer is gone */
		d->shut = 1;
	}
	return 0;
}

static int
dir_read(struct pb_conn *c, int side)
{
	struct pb_dir *d = &c->dir[side];
	size_t cap = c->relay->o.bufsize;
	ssize_t n;

	if (d->buf == NULL) {
		d->buf = buf_get(c->relay);
		if (d->buf == NULL)
			return -ENOMEM;
	} else if (d->off > 0) {
		memmove(d->buf, d->buf + d->off, dir_pending(d));
		d->len -= d->off;
		d->off = 0;
	}
	n = recv(c->end[side].fd, d->buf + d->len, cap - d->len, 0);
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return -errno;
	if (n == 0)
		d->eof = 1;
	if (n > 0) {
		d->len += (size_t)n;
		d->total += (uint64_t)n;
	}
	return dir_write(c, side);
}

static uint32_t
end_want(const struct pb_conn *c, int side)
{
	const struct pb_dir *in = &c->dir[side], *out = &c->dir[!side];
	uint32_t w = 0;

	if (c->end[side].fd < 0)
		return 0;
	if (side == PB_UP && c->state == PB_S_CONNECTING)
		return EPOLLOUT;
	if (!in->eof && dir_pending(in) < c->relay->o.bufsize)
		w |= EPOLLIN;
	if (dir_pending(out) > 0 && c->state == PB_S_OPEN)
		w |= EPOLLOUT;
	return w;
}

static void
conn_upstream_failed(struct pb_conn *c, int err)
{
	struct pb_relay *r = c->relay;

	if (!r->up_failing)
		log_warnx("upstream %s: %s (further failures are not logged "
		    "until a connect succeeds)", r->o.upstream->text,
		    strerror(-err));
	r->up_failing = 1;
	conn_close(c, 1);
}

/* After any event: close on error or when both directions are done. */
static void
conn_settle(struct pb_conn *c, int err)
{
	int i;

	if (err != 0) {
		if (log_verbose() > 0)
			log_info("conn %lu: %s", c->id, strerror(-err));
		conn_close(c, 1);
		return;
	}
	if (c->dir[PB_CLI].shut && c->dir[PB_UP].shut) {
		conn_close(c, 0);
		return;
	}
	for (i = 0; i < 2; i++) {
		err = end_set(c->relay, &c->end[i], end_want(c, i));
		if (err < 0) {
			log_warnx("%s: epoll_ctl: %s", __func__,
			    strerror(-err));
			conn_close(c, 1);
			return;
		}
	}
}

static int
conn_opened(struct pb_conn *c)
{
	struct pb_relay *r = c->relay;

	c->state = PB_S_OPEN;
	if (r->up_failing)
		log_info("upstream %s: connected again", r->o.upstream->text);
	r->up_failing = 0;
	return dir_write(c, PB_CLI);	/* what the client sent meanwhile */
}

/* EPOLLOUT on a connecting upstream: SO_ERROR says how it went. */
static int
conn_connect_done(struct pb_conn *c)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(c->end[PB_UP].fd, SOL_SOCKET, SO_ERROR, &soerr,
	    &len) < 0)
		return -errno;
	if (soerr != 0)
		return -soerr;
	return conn_opened(c);
}

/* Like conn_settle, but an error here means the upstream failed. */
static void
conn_connect_settle(struct pb_conn *c, int err)
{
	if (err != 0)
		conn_upstream_failed(c, err);
	else
		conn_settle(c, 0);
}

static int
conn_connect(struct pb_conn *c)
{
	struct pb_relay *r = c->relay;
	int err;

	err = addr_connect(r->o.upstream, &c->end[PB_UP].fd);
	if (err == -EAGAIN && c->retries < PB_MAXRETRIES) {
		if (c->state != PB_S_RETRY) {
			log_debug("conn %lu: upstream backlog full, retrying",
			    c->id);
			r->nretry++;
		}
		c->state = PB_S_RETRY;	/* unix listener's backlog is full */
		c->retries++;
		return 0;
	}
	if (c->state == PB_S_RETRY)
		r->nretry--;
	c->state = PB_S_CONNECTING;
	if (err == 0)
		return conn_opened(c);
	return err == -EINPROGRESS ? 0 : err;
}

static void
conn_new(struct pb_relay *r, int fd)
{
	struct pb_conn *c;
	char peer[128];
	int i, one = 1;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_warnx("%s: out of memory", __func__);
		close(fd);
		return;
	}
	for (i = 0; i < 2; i++) {
		c->end[i].kind = PB_K_CONN;
		c->end[i].conn = c;
		c->end[i].side = i;
	}
	/* Relay segments as they come; fails harmlessly on non-TCP. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->end[PB_CLI].fd = fd;
	c->end[PB_UP].fd = -1;
	c->relay = r;
	c->id = ++r->nextid;
	c->next = r->conns;
	if (r->conns != NULL)
		r->conns->prev = c;
	r->conns = c;
	r->nconns++;
	if (log_verbose() > 0) {
		addr_peer_text(fd, peer, sizeof(peer));
		log_info("conn %lu: from %s", c->id, peer);
	}
	conn_connect_settle(c, conn_connect(c));
}

static void
conn_event(struct pb_end *e, uint32_t ev)
{
	struct pb_conn *c = e->conn;
	int err = 0;

	if (c->state == PB_S_DEAD)
		return;
	if (e->side == PB_UP && c->state == PB_S_CONNECTING) {
		conn_connect_settle(c, conn_connect_done(c));
		return;
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (e->mask & EPOLLIN))
		err = dir_read(c, e->side);
	if (err == 0 && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) &&
	    (e->mask & EPOLLOUT))
		err = dir_write(c, !e->side);
	conn_settle(c, err);
}

/* --- listener, timer, signals -------------------------------------- */

static void
relay_accept(struct pb_relay *r)
{
	int i, fd;

	for (i = 0; i < PB_ACCEPT_BATCH && r->nconns < r->o.maxconns; i++) {
		fd = accept4(r->listen.fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			r->accept_warned = 0;
			conn_new(r, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		if (errno == EAGAIN)
			break;
		if (!r->accept_warned)
			log_warn("%s: accept (pausing, retried every 10 ms)",
			    __func__);
		r->accept_warned = 1;
		r->accept_paused = 1;	/* EMFILE, ENOBUFS...: a tick later */
		break;
	}
	relay_listen_update(r);
}

static void
relay_tick(struct pb_relay *r)
{
	struct pb_conn *c, *next;
	uint64_t n;

	if (read(r->timer.fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		fatal("%s: read timerfd", __func__);
	r->accept_paused = 0;
	for (c = r->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state == PB_S_RETRY)
			conn_connect_settle(c, conn_connect(c));
	}
	relay_listen_update(r);
}

static void
relay_signal(struct pb_relay *r)
{
	struct signalfd_siginfo si;
	ssize_t n;

	n = read(r->sig.fd, &si, sizeof(si));
	if (n == (ssize_t)sizeof(si))
		r->stop = (int)si.ssi_signo;
	else if (n < 0 && errno != EAGAIN)
		fatal("%s: read signalfd", __func__);
}

static void
relay_dispatch(struct pb_relay *r, struct pb_end *e, uint32_t ev)
{
	switch (e->kind) {
	case PB_K_LISTEN:
		relay_accept(r);
		break;
	case PB_K_SIGNAL:
		relay_signal(r);
		break;
	case PB_K_TIMER:
		relay_tick(r);
		break;
	case PB_K_CONN:
		conn_event(e, ev);
		break;
	}
}

static void
relay_reap(struct pb_relay *r)
{
	struct pb_conn *c;

	while (r->dead != NULL) {
		c = r->dead;
		r->dead = c->next;
		free(c);
	}
}

/* Runs until a signal arrives; returns its number, or -errno. */
int
relay_run(struct pb_relay *r)
{
	struct epoll_event evs[PB_MAXEVENTS];
	int i, n;

	while (r->stop == 0) {
		n = epoll_wait(r->epfd, evs, PB_MAXEVENTS, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (i = 0; i < n; i++)
			relay_dispatch(r, evs[i].data.ptr, evs[i].events);
		relay_reap(r);
	}
	return r->stop;
}

static void
end_close(struct pb_end *e)
{
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	e->mask = 0;
}

static void
end_init(struct pb_end *e, enum pb_kind kind, int fd)
{
	e->kind = kind;
	e->fd = fd;
	e->mask = 0;
	e->conn = NULL;
}

/* Takes ownership of listenfd and sigfd, even on failure. */
int
relay_new(struct pb_relay **rp, int listenfd, int sigfd,
    const struct pb_relay_opts *o)
{
	struct pb_relay *r;
	int err;

	*rp = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		close(listenfd);
		close(sigfd);
		return -ENOMEM;
	}
	r->o = *o;
	end_init(&r->listen, PB_K_LISTEN, listenfd);
	end_init(&r->sig, PB_K_SIGNAL, sigfd);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	end_init(&r->timer, PB_K_TIMER,
	    timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
	if (r->epfd < 0 || r->timer.fd < 0)
		goto fail;
	if (end_set(r, &r->sig, EPOLLIN) < 0 ||
	    end_set(r, &r->timer, EPOLLIN) < 0 ||
	    end_set(r, &r->listen, EPOLLIN) < 0)
		goto fail;
	*rp = r;
	return 0;
fail:
	err = -errno;
	relay_free(r);
	return err;
}

void
relay_free(struct pb_relay *r)
{
	if (r == NULL)
		return;
	end_close(&r->listen);		/* stop accepting first */
	while (r->conns != NULL)
		conn_close(r->conns, 0);
	relay_reap(r);
	while (r->nspare > 0)
		free(r->spare[--r->nspare]);
	end_close(&r->sig);
	end_close(&r->timer);
	if (r->epfd >= 0)
		close(r->epfd);
	free(r);
}
