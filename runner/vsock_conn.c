/*
 * virtio-vsock stream connections between the guest (CID 3) and host
 * sockets, hybrid-vsock style: a guest REQUEST to CID 2 port P is joined
 * to the endpoint configured for P; a host client writes "CONNECT P\n" to
 * the command socket and gets "OK n\n" once the guest accepts. Credit flow
 * control both ways: we never send the guest more than it granted, and
 * never take more than VSOCK_BUF_ALLOC of its bytes we cannot place.
 * Everything the guest writes is an attacker's input: connections are
 * capped per direction (vsock_caps), packets not from the guest's CID to
 * ours are dropped unanswered, and a connection whose host side closed is
 * gone once the guest was told, without waiting for its RST.
 */
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "runner.h"

#define VSOCK_CMD_PORT_BASE	0x40000000u

void
vsock_hdr_decode(struct vsock_hdr *h, const uint8_t *b)
{
	memcpy(&h->src_cid, b, 8);
	memcpy(&h->dst_cid, b + 8, 8);
	memcpy(&h->src_port, b + 16, 4);
	memcpy(&h->dst_port, b + 20, 4);
	memcpy(&h->len, b + 24, 4);
	memcpy(&h->type, b + 28, 2);
	memcpy(&h->op, b + 30, 2);
	memcpy(&h->flags, b + 32, 4);
	memcpy(&h->buf_alloc, b + 36, 4);
	memcpy(&h->fwd_cnt, b + 40, 4);
	h->src_cid = le64toh(h->src_cid);
	h->dst_cid = le64toh(h->dst_cid);
	h->src_port = le32toh(h->src_port);
	h->dst_port = le32toh(h->dst_port);
	h->len = le32toh(h->len);
	h->type = le16toh(h->type);
	h->op = le16toh(h->op);
	h->flags = le32toh(h->flags);
	h->buf_alloc = le32toh(h->buf_alloc);
	h->fwd_cnt = le32toh(h->fwd_cnt);
}

void
vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *b)
{
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;

	v64 = htole64(h->src_cid);
	memcpy(b, &v64, 8);
	v64 = htole64(h->dst_cid);
	memcpy(b + 8, &v64, 8);
	v32 = htole32(h->src_port);
	memcpy(b + 16, &v32, 4);
	v32 = htole32(h->dst_port);
	memcpy(b + 20, &v32, 4);
	v32 = htole32(h->len);
	memcpy(b + 24, &v32, 4);
	v16 = htole16(h->type);
	memcpy(b + 28, &v16, 2);
	v16 = htole16(h->op);
	memcpy(b + 30, &v16, 2);
	v32 = htole32(h->flags);
	memcpy(b + 32, &v32, 4);
	v32 = htole32(h->buf_alloc);
	memcpy(b + 36, &v32, 4);
	v32 = htole32(h->fwd_cnt);
	memcpy(b + 40, &v32, 4);
}

static void
conn_hdr(struct vsock_conn *c, struct vsock_hdr *h, uint16_t op,
    uint32_t flags, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = RUN_HOST_CID;
	h->dst_cid = c->v->vu.guest_cid;
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->type = VSOCK_TYPE_STREAM;
	h->op = op;
	h->flags = flags;
	h->len = len;
	h->buf_alloc = VSOCK_BUF_ALLOC;
	h->fwd_cnt = c->fwd_cnt;
	c->fwd_sent = c->fwd_cnt;
}

static void
ctl_queue(struct vsock_dev *v, const struct vsock_hdr *h)
{
	struct vsock_pkt *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		log_warnx("vsock: out of memory");
		v->failed = 1;
		return;
	}
	p->h = *h;
	if (v->ctl_tail != NULL)
		v->ctl_tail->next = p;
	else
		v->ctl_head = p;
	v->ctl_tail = p;
	v->ctl_n++;
}

static void
conn_send(struct vsock_conn *c, uint16_t op, uint32_t flags)
{
	struct vsock_hdr h;

	conn_hdr(c, &h, op, flags, 0);
	ctl_queue(c->v, &h);
}

/* RST for a packet that has no connection. */
static void
reply_rst(struct vsock_dev *v, const struct vsock_hdr *in)
{
	struct vsock_hdr h = { 0 };

	if (in->op == VSOCK_OP_RST)
		return;
	h.src_cid = RUN_HOST_CID;
	h.dst_cid = in->src_cid;
	h.src_port = in->dst_port;
	h.dst_port = in->src_port;
	h.type = VSOCK_TYPE_STREAM;
	h.op = VSOCK_OP_RST;
	ctl_queue(v, &h);
}

static uint32_t
conn_credit(const struct vsock_conn *c)
{
	uint32_t used = c->tx_cnt - c->peer_fwd_cnt;

	return used >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - used;
}

static void
conn_interest(struct vsock_conn *c)
{
	uint32_t want = 0;
	int r = 0;

	if (c->state == VSOCK_CMD)
		want = EPOLLIN;
	if (c->state == VSOCK_EP_CONNECTING && !c->ep_again)
		want = EPOLLOUT;	/* TCP: the connect completes */
	if (c->state == VSOCK_ESTABLISHED && !c->want_rx && !c->host_eof &&
	    conn_credit(c) > 0)
		want = EPOLLIN;
	if (c->wlen > 0)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	/* unregistered when idle, so a hung-up socket cannot spin us */
	if (c->events == 0)
		r = ev_add(&c->ev, want);
	else if (want == 0)
		ev_del(&c->ev);
	else
		r = ev_mod(&c->ev, want);
	if (r < 0)
		log_warnx("vsock: epoll: %s", strerror(-r));
	c->events = want;
}

static void
conn_free(struct vsock_conn *c)
{
	struct vsock_dev *v = c->v;
	struct vsock_conn **pp;

	for (pp = &v->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->from_guest)
		v->guest_conns--;
	else
		v->host_conns--;
	ev_del(&c->ev);		/* also forgets its pending events */
	if (c->ev.fd >= 0)
		close(c->ev.fd);
	free(c->wbuf);
	free(c);
}

static void
conn_reset(struct vsock_conn *c)
{
	conn_send(c, VSOCK_OP_RST, 0);
	conn_free(c);
}

void
vsock_conn_reset(struct vsock_conn *c)
{
	conn_reset(c);
}

static void conn_io(void *arg, uint32_t events);

static struct vsock_conn *
conn_new(struct vsock_dev *v, int fd, uint32_t local, uint32_t peer,
    enum vsock_state st)
{
	struct vsock_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->v = v;
	c->ev.fd = fd;
	c->ev.cb = conn_io;
	c->ev.arg = c;
	c->local_port = local;
	c->peer_port = peer;
	c->state = st;
	c->from_guest = st == VSOCK_EP_CONNECTING;
	if (c->from_guest)
		v->guest_conns++;
	else
		v->host_conns++;
	c->next = v->conns;
	v->conns = c;
	return c;
}

static struct vsock_conn *
conn_find(struct vsock_dev *v, uint32_t local, uint32_t peer)
{
	struct vsock_conn *c;

	for (c = v->conns; c != NULL; c = c->next)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

/*
 * A guest connection beyond the cap: RST, counted; one warning per burst
 * (refusals less than VSOCK_BURST_MS apart), and a count when it ends.
 */
static void
cap_refuse(struct vsock_dev *v, const struct vsock_hdr *h)
{
	if (v->burst == 0)
		log_warnx("vsock: the guest has %u connections open, the cap: "
		    "refusing more (RST)", v->max_guest);
	v->refused++;
	v->burst++;
	v->burst_last = ev_now_ms();
	vsock_tick_arm(v);
	reply_rst(v, h);
}

/* From the tick: the burst is over once refusals stopped for a while. */
void
vsock_burst_end(struct vsock_dev *v)
{
	if (v->burst == 0 || ev_now_ms() - v->burst_last < VSOCK_BURST_MS)
		return;
	log_warnx("vsock: %llu guest connections refused at the cap of %u "
	    "(%llu since start)", (unsigned long long)v->burst, v->max_guest,
	    (unsigned long long)v->refused);
	v->burst = 0;
}

/* The endpoint took the connection: tell the guest. */
void
vsock_conn_connected(struct vsock_conn *c)
{
	c->state = VSOCK_ESTABLISHED;
	c->deadline = 0;
	conn_send(c, VSOCK_OP_RESPONSE, 0);
	conn_interest(c);
}

/*
 * A guest REQUEST for CID 2 port P: join it to the endpoint, with a
 * non-blocking connect that completes in the event loop (or times out).
 */
static void
guest_request(struct vsock_dev *v, const struct vsock_hdr *h)
{
	const struct run_opts *o = v->o;
	struct vsock_conn *c;
	int r;

	if (h->dst_port != o->vsock_port ||
	    (o->pepd_socket == NULL && o->bridge_port == 0)) {
		log_debug("vsock: port %u: nothing there", h->dst_port);
		reply_rst(v, h);
		return;
	}
	if (v->guest_conns >= v->max_guest) {
		cap_refuse(v, h);
		return;
	}
	c = conn_new(v, -1, h->dst_port, h->src_port, VSOCK_EP_CONNECTING);
	if (c == NULL) {
		reply_rst(v, h);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	r = vsock_ep_start(c);
	if (r < 0) {
		log_debug("vsock: port %u: %s", h->dst_port, strerror(-r));
		conn_reset(c);
		return;
	}
	if (r == 0) {
		vsock_conn_connected(c);
		return;
	}
	c->deadline = ev_now_ms() + VSOCK_CONNECT_TIMEOUT_MS;
	vsock_tick_arm(v);
	conn_interest(c);
}

static void
maybe_credit_update(struct vsock_conn *c)
{
	if (c->fwd_cnt - c->fwd_sent >= VSOCK_BUF_ALLOC / 4)
		conn_send(c, VSOCK_OP_CREDIT_UPDATE, 0);
}

/* After the host took every pending byte: honour a guest SHUTDOWN. */
static int
conn_drained(struct vsock_conn *c)
{
	if (c->guest_shut & VSOCK_SHUT_SEND)
		shutdown(c->ev.fd, SHUT_WR);
	if (c->guest_shut == (VSOCK_SHUT_SEND | VSOCK_SHUT_RCV)) {
		conn_reset(c);
		return -1;
	}
	return 0;
}

/* Write pending guest bytes; -1 when the connection was freed. */
static int
conn_flush(struct vsock_conn *c)
{
	ssize_t n;

	while (c->wlen > 0) {
		n = write(c->ev.fd, c->wbuf, c->wlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_reset(c);
			return -1;
		}
		memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
		c->wlen -= (size_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (c->wlen == 0 && c->host_eof) {
		conn_free(c);	/* the guest was told: SHUTDOWN */
		return -1;
	}
	maybe_credit_update(c);
	if (c->wlen == 0 && conn_drained(c) < 0)
		return -1;
	conn_interest(c);
	return 0;
}

static void
guest_rw(struct vsock_conn *c, const uint8_t *p, uint32_t len)
{
	if ((c->guest_shut & VSOCK_SHUT_SEND) ||
	    c->wlen + len > VSOCK_BUF_ALLOC) {
		log_debug("vsock: port %u: guest overran its credit",
		    c->peer_port);
		conn_reset(c);
		return;
	}
	if (c->wbuf == NULL) {
		c->wbuf = malloc(VSOCK_BUF_ALLOC);
		if (c->wbuf == NULL) {
			conn_reset(c);
			return;
		}
	}
	memcpy(c->wbuf + c->wlen, p, len);
	c->wlen += len;
	conn_flush(c);
}

static void
guest_response(struct vsock_conn *c)
{
	char line[32];
	int n;

	if (c->state != VSOCK_CONNECTING) {
		conn_reset(c);
		return;
	}
	n = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
	if (write(c->ev.fd, line, (size_t)n) != n) {
		conn_reset(c);
		return;
	}
	c->state = VSOCK_ESTABLISHED;
	c->deadline = 0;
	conn_interest(c);
}

static void
conn_pkt(struct vsock_conn *c, const struct vsock_hdr *h,
    const uint8_t *payload)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (c->state == VSOCK_EP_CONNECTING &&
	    h->op != VSOCK_OP_CREDIT_UPDATE) {
		if (h->op == VSOCK_OP_RST)
			conn_free(c);
		else
			conn_reset(c);	/* nothing else before RESPONSE */
		return;
	}
	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		guest_response(c);
		return;
	case VSOCK_OP_RW:
		if (c->state != VSOCK_ESTABLISHED) {
			conn_reset(c);
			return;
		}
		guest_rw(c, payload, h->len);
		return;
	case VSOCK_OP_CREDIT_REQUEST:
		conn_send(c, VSOCK_OP_CREDIT_UPDATE, 0);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->guest_shut |= h->flags & (VSOCK_SHUT_RCV | VSOCK_SHUT_SEND);
		if (c->wlen == 0 && conn_drained(c) < 0)
			return;
		break;
	case VSOCK_OP_RST:
		conn_free(c);
		return;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	default:
		conn_reset(c);
		return;
	}
	conn_interest(c);
}

void
vsock_guest_pkt(struct vsock_dev *v, const struct vsock_hdr *h,
    const uint8_t *payload)
{
	struct vsock_conn *c;

	/* misaddressed: dropped, never answered (the kernel does the same) */
	if (h->dst_cid != RUN_HOST_CID || h->src_cid != v->vu.guest_cid) {
		log_debug("vsock: dropping a packet from CID %llu to %llu",
		    (unsigned long long)h->src_cid,
		    (unsigned long long)h->dst_cid);
		return;
	}
	if (h->type != VSOCK_TYPE_STREAM) {
		reply_rst(v, h);
		return;
	}
	c = conn_find(v, h->dst_port, h->src_port);
	if (h->op == VSOCK_OP_REQUEST) {
		if (c != NULL)
			conn_reset(c);
		else
			guest_request(v, h);
		return;
	}
	if (c == NULL) {
		reply_rst(v, h);
		return;
	}
	conn_pkt(c, h, payload);
}

/*
 * Fill one guest rx chain from c: host bytes within the guest's credit,
 * or SHUTDOWN at host EOF. 1: chain used (*len), 0: nothing to send.
 * After the SHUTDOWN, c is freed once no guest bytes wait for the host.
 */
int
vsock_conn_rx(struct vsock_conn *c, const struct vq_chain *ch, uint32_t *len)
{
	struct vsock_dev *v = c->v;
	struct vsock_hdr h;
	uint64_t cap = ch->in_len - VSOCK_HDR_SIZE;
	uint32_t credit = conn_credit(c);
	ssize_t n;

	if (cap > VSOCK_MAX_PKT)
		cap = VSOCK_MAX_PKT;
	if (credit < cap)
		cap = credit;
	c->want_rx = 0;
	if (cap == 0) {
		conn_send(c, VSOCK_OP_CREDIT_REQUEST, 0);
		return 0;
	}
	n = read(c->ev.fd, v->pkt + VSOCK_HDR_SIZE, (size_t)cap);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR)) {
		conn_interest(c);
		return 0;
	}
	if (n <= 0) {
		c->host_eof = 1;
		conn_hdr(c, &h, VSOCK_OP_SHUTDOWN,
		    VSOCK_SHUT_RCV | VSOCK_SHUT_SEND, 0);
	} else {
		conn_hdr(c, &h, VSOCK_OP_RW, 0, (uint32_t)n);
		c->tx_cnt += (uint32_t)n;
	}
	vsock_hdr_encode(&h, v->pkt);
	*len = VSOCK_HDR_SIZE + h.len;
	vq_chain_write(ch, 0, v->pkt, *len);
	if (c->host_eof && c->wlen == 0)
		conn_free(c);
	else
		conn_interest(c);
	return 1;
}

/* Round robin: the first connection with host bytes goes to the tail. */
struct vsock_conn *
vsock_next_rx(struct vsock_dev *v)
{
	struct vsock_conn **pp, *c, *t;

	for (pp = &v->conns; *pp != NULL; pp = &(*pp)->next) {
		c = *pp;
		if (!c->want_rx)
			continue;
		*pp = c->next;
		c->next = NULL;
		if (v->conns == NULL) {
			v->conns = c;
			return c;
		}
		for (t = v->conns; t->next != NULL; t = t->next)
			;
		t->next = c;
		return c;
	}
	return NULL;
}

void
vsock_close_all(struct vsock_dev *v)
{
	struct vsock_pkt *p;

	while (v->conns != NULL)
		conn_free(v->conns);
	while (v->ctl_head != NULL) {
		p = v->ctl_head;
		v->ctl_head = p->next;
		free(p);
	}
	v->ctl_tail = NULL;
	v->ctl_n = 0;
	v->tx_stalled = 0;
}

/* "CONNECT <port>\n" from a host client; anything else closes it. */
static void
cmd_line(struct vsock_conn *c)
{
	const char *s = c->cmd + 8;
	unsigned long port = 0;

	if (c->cmd_len < 10 || memcmp(c->cmd, "CONNECT ", 8) != 0)
		goto bad;
	for (; *s >= '0' && *s <= '9'; s++) {
		port = port * 10 + (unsigned long)(*s - '0');
		if (port > UINT32_MAX)
			goto bad;
	}
	if (*s != '\n' || s == c->cmd + 8)
		goto bad;
	c->peer_port = (uint32_t)port;
	c->state = VSOCK_CONNECTING;
	c->peer_buf_alloc = 0;
	c->deadline = ev_now_ms() + VSOCK_CONNECT_TIMEOUT_MS;
	vsock_tick_arm(c->v);
	conn_send(c, VSOCK_OP_REQUEST, 0);
	conn_interest(c);
	vsock_rx_process(c->v);
	return;
bad:
	conn_free(c);
}

static void
cmd_read(struct vsock_conn *c)
{
	ssize_t n;

	n = read(c->ev.fd, c->cmd + c->cmd_len, 1);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || c->cmd_len + 1 >= sizeof(c->cmd)) {
		conn_free(c);
		return;
	}
	c->cmd_len++;
	c->cmd[c->cmd_len] = '\0';
	if (c->cmd[c->cmd_len - 1] == '\n')
		cmd_line(c);
}

static void
conn_io(void *arg, uint32_t events)
{
	struct vsock_conn *c = arg;
	struct vsock_dev *v = c->v;

	if (c->state == VSOCK_CMD) {
		cmd_read(c);
		return;
	}
	if (c->state == VSOCK_EP_CONNECTING) {
		if (vsock_ep_done(c) < 0)
			conn_reset(c);
		else
			vsock_conn_connected(c);
		goto out;
	}
	if ((events & EPOLLOUT) && conn_flush(c) < 0)
		goto out;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR) &&
	    c->state == VSOCK_ESTABLISHED) {
		c->want_rx = 1;
		conn_interest(c);
	}
out:
	vsock_rx_process(v);
}

/* Host clients, up to the cap (more are closed at once). */
static void
cmd_accept(void *arg, uint32_t events)
{
	struct vsock_dev *v = arg;
	struct vsock_conn *c;
	int fd, i;

	(void)events;
	for (i = 0; i < 16; i++) {
		fd = accept4(v->cmd_ev.fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE))
			vsock_accept_shed(v, &v->cmd_ev, &v->cmd_resume,
			    "--vsock-socket");
		if (fd < 0)
			return;
		if (v->host_conns >= v->max_host) {
			log_debug("vsock: %u host clients, the cap: closing "
			    "one more", v->host_conns);
			close(fd);
			continue;
		}
		if (v->next_port < VSOCK_CMD_PORT_BASE)
			v->next_port = VSOCK_CMD_PORT_BASE;
		c = conn_new(v, fd, v->next_port++, 0, VSOCK_CMD);
		if (c == NULL) {
			close(fd);
			return;
		}
		conn_interest(c);
	}
}

int
vsock_cmd_listen(struct vsock_dev *v, const char *path, struct pep_err *e)
{
	int fd = listen_unix(path, v->o->socket_mode, &v->cmd_name, e);

	if (fd < 0)
		return fd;
	v->cmd_ev.fd = fd;
	v->cmd_ev.cb = cmd_accept;
	v->cmd_ev.arg = v;
	return ev_add(&v->cmd_ev, EPOLLIN);
}

void
vsock_cmd_close(struct vsock_dev *v)
{
	if (v->cmd_ev.fd < 0)
		return;
	ev_del(&v->cmd_ev);
	close(v->cmd_ev.fd);
	v->cmd_ev.fd = -1;
	sockname_unlink(&v->cmd_name);
}
