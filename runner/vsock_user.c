/*
 * pep-run's own vhost-user-vsock back-end: QEMU connects to a unix socket
 * we listen on, the vhost-user protocol (vhost_user.c) sets up the rx and
 * tx virtqueues (virtq.c), and packets go to the connection layer
 * (vsock_conn.c). The event queue stays QEMU's. Everything runs in
 * pep-run's event loop. A broken message or descriptor is an error: the
 * back-end marks itself failed and pep-run stops the VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "runner.h"

#define VQ_RX	0
#define VQ_TX	1

void
fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * Only a socket is ever replaced, and only a stale one: a path holding
 * anything else, or a socket someone still listens on, is refused.
 */
static int
path_free(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (r == 0 || errno == EAGAIN)
		r = -EADDRINUSE;
	else if (errno == ECONNREFUSED)
		r = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	else
		r = -errno;
	close(fd);
	return r;
}

/*
 * Listen on a unix socket created with exactly mode (not the umask's
 * idea); n remembers which inode is ours for sockname_unlink.
 */
int
listen_unix(const char *path, unsigned mode, struct vsock_sockname *n,
    struct pep_err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd = -1, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return pep_errf(e, ENAMETOOLONG, "%s: path too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = path_free(path, &sa);
	if (r == -EEXIST)
		return pep_errf(e, r, "%s: exists and is not a socket: "
		    "not replaced", path);
	if (r == -EADDRINUSE)
		return pep_errf(e, r, "%s: another process listens there",
		    path);
	if (r < 0)
		return pep_errf(e, r, "%s: %s", path, pep_strerror(r));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pep_errf(e, errno, "%s: socket", path);
	old = umask(0777 & ~(mode_t)mode);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || lstat(path, &st) < 0 || listen(fd, 64) < 0) {
		r = pep_errf(e, errno, "%s: cannot listen: %s", path,
		    strerror(errno));
		goto out;
	}
	n->path = strdup(path);
	if (n->path == NULL) {
		unlink(path);
		r = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	n->dev = st.st_dev;
	n->ino = st.st_ino;
	return fd;
out:
	close(fd);
	return r;
}

/* Remove the socket we bound, if the path still names it. */
void
sockname_unlink(struct vsock_sockname *n)
{
	struct stat st;

	if (n->path == NULL)
		return;
	if (lstat(n->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == n->dev && st.st_ino == n->ino)
		unlink(n->path);
	free(n->path);
	n->path = NULL;
}

static void
vsock_fail(struct vsock_dev *v, const char *what, int err)
{
	if (v->failed == 0)
		log_warnx("vhost-user-vsock: %s: %s", what, pep_strerror(err));
	v->failed = 1;
}

static void
kick_drain(int fd)
{
	uint64_t cnt;

	if (read(fd, &cnt, sizeof(cnt)) < 0)
		return;		/* EAGAIN: nothing pending */
}

static void
kick_rx(void *arg, uint32_t events)
{
	struct vsock_dev *v = arg;

	(void)events;
	kick_drain(v->kick_ev[VQ_RX].fd);
	vsock_rx_process(v);
}

static void
kick_tx(void *arg, uint32_t events)
{
	struct vsock_dev *v = arg;

	(void)events;
	kick_drain(v->kick_ev[VQ_TX].fd);
	vsock_tx_process(v);
	vsock_rx_process(v);
}

/* The rest of a ring, after the other ready fds had their turn. */
static void
tx_more(void *arg)
{
	struct vsock_dev *v = arg;

	vsock_tx_process(v);
	vsock_rx_process(v);
}

static void
rx_more(void *arg)
{
	vsock_rx_process(arg);
}

static void
queue_start(struct vu_dev *d, unsigned q)
{
	struct vsock_dev *v = d->priv;
	struct ev_handler *h;
	int r;

	if (q > VQ_TX)
		return;		/* the event queue is QEMU's */
	h = &v->kick_ev[q];
	h->fd = d->vq[q].kick_fd;
	h->cb = q == VQ_RX ? kick_rx : kick_tx;
	h->arg = v;
	fd_nonblock(h->fd);
	r = ev_add(h, EPOLLIN);
	if (r < 0)
		vsock_fail(v, "epoll", r);
	log_debug("vhost-user-vsock: queue %u started", q);
}

static void
queue_stop(struct vu_dev *d, unsigned q)
{
	struct vsock_dev *v = d->priv;

	if (q > VQ_TX)
		return;
	ev_del(&v->kick_ev[q]);
	v->kick_ev[q].fd = -1;
	/* a stopped device is a transport reset: every stream is gone */
	vsock_close_all(v);
	log_debug("vhost-user-vsock: queue %u stopped", q);
}

static const struct vu_dev_ops vsock_vu_ops = {
	.queue_start = queue_start,
	.queue_stop = queue_stop,
};

struct vsock_dev *
vsock_new(const struct run_opts *o)
{
	struct vsock_dev *v = calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	vu_init(&v->vu, &vsock_vu_ops, v);
	v->o = o;
	v->listen_ev.fd = v->sock_ev.fd = v->cmd_ev.fd = v->tick_ev.fd = -1;
	v->kick_ev[0].fd = v->kick_ev[1].fd = -1;
	v->tx_work.cb = tx_more;
	v->tx_work.arg = v;
	v->rx_work.cb = rx_more;
	v->rx_work.arg = v;
	v->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (v->spare_fd < 0 || vsock_tick_open(v) < 0) {
		log_warn("vsock: spare fd, timerfd");
		if (v->spare_fd >= 0)
			close(v->spare_fd);
		free(v);
		return NULL;
	}
	vsock_caps(v);
	return v;
}

static void
sock_close(struct vsock_dev *v)
{
	if (v->sock_ev.fd < 0)
		return;
	ev_del(&v->sock_ev);
	close(v->sock_ev.fd);
	v->sock_ev.fd = -1;
	vu_reset(&v->vu);
	vsock_close_all(v);
}

void
vsock_free(struct vsock_dev *v)
{
	if (v == NULL)
		return;
	sock_close(v);
	vsock_close_all(v);	/* host clients even if QEMU never came */
	vsock_cmd_close(v);
	if (v->listen_ev.fd >= 0) {
		ev_del(&v->listen_ev);
		close(v->listen_ev.fd);
	}
	sockname_unlink(&v->listen_name);
	vsock_tick_close(v);
	ev_work_cancel(&v->tx_work);
	ev_work_cancel(&v->rx_work);
	if (v->spare_fd >= 0)
		close(v->spare_fd);
	if (v->refused > 0)
		log_info("vsock: %llu guest connections were refused at the "
		    "cap of %u", (unsigned long long)v->refused, v->max_guest);
	free(v);
}

static int
send_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Collect SCM_RIGHTS fds into d->fds; too many is a protocol error. */
static int
take_fds(struct vu_dev *d, struct msghdr *mh)
{
	struct cmsghdr *cm;
	size_t i, n;
	int fd, r = 0;

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			    sizeof(fd));
			if (d->nfds < VU_MAX_REGIONS)
				d->fds[d->nfds++] = fd;
			else {
				close(fd);
				r = -EBADMSG;
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		r = -EBADMSG;
	return r;
}

/*
 * Read no further than the end of the current message, so the fds that
 * come with the next message are not taken for this one.
 */
static int
sock_read_one(struct vsock_dev *v)
{
	uint8_t buf[VU_HDR_SIZE + VU_MAX_PAYLOAD];
	char cbuf[CMSG_SPACE(VU_MAX_REGIONS * sizeof(int))];
	struct iovec iov = { buf, vu_need(&v->vu) };
	struct msghdr mh = { 0 };
	size_t used;
	ssize_t n;
	int r;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	n = recvmsg(v->sock_ev.fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -ECONNRESET;
	r = take_fds(&v->vu, &mh);
	if (r == 0)
		r = vu_feed(&v->vu, buf, (size_t)n, &used);
	if (r == 0 && v->vu.reply_len > 0)
		r = send_all(v->sock_ev.fd, v->vu.reply, v->vu.reply_len);
	return r < 0 ? r : 1;
}

static void
sock_read(void *arg, uint32_t events)
{
	struct vsock_dev *v = arg;
	int r;

	(void)events;
	do {
		r = sock_read_one(v);
	} while (r > 0);
	if (r == -ECONNRESET) {
		log_debug("vhost-user-vsock: front-end disconnected");
		sock_close(v);
		v->failed = 2;
	} else if (r < 0) {
		log_warnx("vhost-user-vsock: request %u from QEMU failed%s%s",
		    v->vu.last_req, v->vu.why != NULL ? ": " : "",
		    v->vu.why != NULL ? v->vu.why : "");
		vsock_fail(v, "bad message from QEMU", r);
		sock_close(v);
	}
}

static void
listen_accept(void *arg, uint32_t events)
{
	struct vsock_dev *v = arg;
	int fd;

	(void)events;
	fd = accept4(v->listen_ev.fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE))
		vsock_accept_shed(v, &v->listen_ev, &v->listen_resume,
		    "vhost-user");
	if (fd < 0)
		return;
	if (v->sock_ev.fd >= 0) {
		close(fd);	/* one front-end only */
		return;
	}
	fd_nonblock(fd);
	v->sock_ev.fd = fd;
	v->sock_ev.cb = sock_read;
	v->sock_ev.arg = v;
	if (ev_add(&v->sock_ev, EPOLLIN) < 0)
		vsock_fail(v, "epoll", -errno);
}

int
vsock_listen(struct vsock_dev *v, const char *path, struct pep_err *e)
{
	int fd = listen_unix(path, v->o->socket_mode, &v->listen_name, e);

	if (fd < 0)
		return fd;
	v->listen_ev.fd = fd;
	v->listen_ev.cb = listen_accept;
	v->listen_ev.arg = v;
	return ev_add(&v->listen_ev, EPOLLIN);
}

/*
 * The guest's packets, a slice at a time (VSOCK_PKT_WEIGHT packets or
 * VSOCK_BYTE_WEIGHT bytes, then the rest waits for the other fds). As
 * the kernel's vhost_vsock_more_replies: while as many control packets
 * wait for rx buffers as the tx ring holds, tx is not read at all, so a
 * guest that posts no rx buffers stalls itself, not pep-run's memory.
 */
int
vsock_tx_process(struct vsock_dev *v)
{
	struct virtq *q = &v->vu.vq[VQ_TX];
	struct vsock_hdr h;
	struct vq_chain ch;
	size_t bytes = 0;
	unsigned pkts = 0;
	int r;

	while (q->started && v->failed == 0) {
		if (v->ctl_n >= q->num) {
			v->tx_stalled = 1;	/* rx_ctl restarts us */
			break;
		}
		if (pkts >= VSOCK_PKT_WEIGHT || bytes >= VSOCK_BYTE_WEIGHT) {
			ev_work_queue(&v->tx_work);
			break;
		}
		r = virtq_pop(q, &v->vu.mem, &ch);
		if (r < 0) {
			vsock_fail(v, "tx descriptor", r);
			return r;
		}
		if (r == 0)
			break;
		if (ch.out_len < VSOCK_HDR_SIZE) {
			vsock_fail(v, "tx packet shorter than a header",
			    -EBADMSG);
			return -EBADMSG;
		}
		vq_chain_read(&ch, 0, v->tx, VSOCK_HDR_SIZE);
		vsock_hdr_decode(&h, v->tx);
		if (h.len > VSOCK_MAX_PKT ||
		    h.len > ch.out_len - VSOCK_HDR_SIZE) {
			log_debug("vsock: dropping packet, bad length %u",
			    h.len);
			h.op = VSOCK_OP_INVALID;
			h.len = 0;
		}
		vq_chain_read(&ch, VSOCK_HDR_SIZE, v->tx + VSOCK_HDR_SIZE,
		    h.len);
		vsock_guest_pkt(v, &h, v->tx + VSOCK_HDR_SIZE);
		virtq_push(q, ch.head, 0);
		pkts++;
		bytes += VSOCK_HDR_SIZE + h.len;
	}
	virtq_notify(q);
	return 0;
}

/* One rx chain for the first queued control packet; 0: none queued. */
static int
rx_ctl(struct vsock_dev *v, struct virtq *q)
{
	struct vsock_pkt *p = v->ctl_head;
	struct vq_chain ch;
	int r;

	r = virtq_pop(q, &v->vu.mem, &ch);
	if (r <= 0)
		return r;
	if (ch.in_len < VSOCK_HDR_SIZE)
		return -EBADMSG;
	vsock_hdr_encode(&p->h, v->pkt);
	vq_chain_write(&ch, 0, v->pkt, VSOCK_HDR_SIZE);
	virtq_push(q, ch.head, VSOCK_HDR_SIZE);
	v->ctl_head = p->next;
	if (v->ctl_head == NULL)
		v->ctl_tail = NULL;
	free(p);
	v->ctl_n--;
	if (v->tx_stalled && v->ctl_n < v->vu.vq[VQ_TX].num) {
		v->tx_stalled = 0;
		ev_work_queue(&v->tx_work);
	}
	return 1;
}

static int
rx_data(struct vsock_dev *v, struct virtq *q, struct vsock_conn *c,
    size_t *bytes)
{
	struct vq_chain ch;
	uint32_t len;
	int r;

	r = virtq_pop(q, &v->vu.mem, &ch);
	if (r <= 0)
		return r;
	if (ch.in_len <= VSOCK_HDR_SIZE)
		return -EBADMSG;
	if (vsock_conn_rx(c, &ch, &len) == 0) {
		virtq_unpop(q);
		return 2;
	}
	virtq_push(q, ch.head, len);
	*bytes += len;
	return 1;
}

/* Control packets first, then host bytes round robin; a slice at a time. */
int
vsock_rx_process(struct vsock_dev *v)
{
	struct virtq *q = &v->vu.vq[VQ_RX];
	struct vsock_conn *c;
	uint16_t used = q->used_idx;
	size_t bytes = 0;
	int r = 0;

	while (q->started && v->failed == 0) {
		if ((uint16_t)(q->used_idx - used) >= VSOCK_PKT_WEIGHT ||
		    bytes >= VSOCK_BYTE_WEIGHT) {
			ev_work_queue(&v->rx_work);
			break;
		}
		if (v->ctl_head != NULL) {
			r = rx_ctl(v, q);
			bytes += VSOCK_HDR_SIZE;
		} else {
			c = vsock_next_rx(v);
			if (c == NULL)
				break;
			r = rx_data(v, q, c, &bytes);
		}
		if (r <= 0)
			break;
	}
	if (r < 0)
		vsock_fail(v, "rx descriptor", r);
	virtq_notify(q);
	return r < 0 ? r : 0;
}
