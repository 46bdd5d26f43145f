/*
 * The host side of the vsock back-end under a hostile guest: the
 * per-direction connection caps (sized so the fds always suffice), the
 * non-blocking connect to the endpoint, one timer for every deadline
 * (endpoint connects, unanswered host REQUESTs, accept back-off, the end
 * of a burst of refusals), and shedding a connection when fds run out.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "runner.h"

/*
 * Each connection holds one fd. Whatever --vsock-max-conns says, both
 * caps together stay VSOCK_FD_SPARE fds below RLIMIT_NOFILE, so guest
 * connections can never take the fds a host client or QEMU needs.
 */
void
vsock_caps(struct vsock_dev *v)
{
	struct rlimit rl = { 0, 0 };
	unsigned want = v->o->vsock_max_conns, fit = VSOCK_MAX_CONNS_LIMIT;

	if (want == 0)
		want = VSOCK_MAX_CONNS;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur !=
	    RLIM_INFINITY) {
		fit = rl.rlim_cur > 2 * VSOCK_FD_SPARE ?
		    (unsigned)((rl.rlim_cur - VSOCK_FD_SPARE) / 2) :
		    (unsigned)(rl.rlim_cur / 4);
		if (fit == 0)
			fit = 1;
	}
	if (want > fit) {
		log_warnx("vsock: %u open files allowed: at most %u "
		    "connections each way, not %u", (unsigned)rl.rlim_cur,
		    fit, want);
		want = fit;
	}
	v->max_guest = v->max_host = want;
}

static int
ep_addr(const struct run_opts *o, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (o->pepd_socket != NULL) {
		if (strlen(o->pepd_socket) >= sizeof(sun->sun_path))
			return -ENAMETOOLONG;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, o->pepd_socket,
		    strlen(o->pepd_socket) + 1);
		*len = sizeof(*sun);
		return AF_UNIX;
	}
	if (o->bridge_port == 0)
		return -ECONNREFUSED;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)o->bridge_port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof(*sin);
	return AF_INET;
}

/*
 * Connect c to the endpoint without blocking. 0: connected; 1: TCP in
 * progress (EPOLLOUT completes it); 2: the unix endpoint's backlog is
 * full (the tick tries again until the deadline); <0: refused.
 */
int
vsock_ep_start(struct vsock_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int fam, fd;

	fam = ep_addr(c->v->o, &ss, &len);
	if (fam < 0)
		return fam;
	if (c->ev.fd >= 0) {	/* a unix retry: a fresh socket each time */
		ev_del(&c->ev);
		c->events = 0;
		close(c->ev.fd);
		c->ev.fd = -1;
	}
	fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	c->ev.fd = fd;
	c->ep_again = 0;
	if (connect(fd, (struct sockaddr *)&ss, len) == 0)
		return 0;
	if (errno == EINPROGRESS)
		return 1;
	if (errno == EAGAIN && fam == AF_UNIX) {
		c->ep_again = 1;
		return 2;
	}
	return -errno;
}

/* EPOLLOUT on a connecting TCP socket: how did it end? */
int
vsock_ep_done(struct vsock_conn *c)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(c->ev.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err != 0) {
		log_debug("vsock: port %u: endpoint: %s", c->local_port,
		    strerror(err));
		return -err;
	}
	return 0;
}

/* A connection past its deadline, or a unix endpoint to try again. */
static void
tick_conn(struct vsock_conn *c, uint64_t now)
{
	int r;

	if (c->state == VSOCK_EP_CONNECTING && c->ep_again) {
		r = vsock_ep_start(c);
		if (r == 0) {
			vsock_conn_connected(c);
			return;
		}
		if (r < 0) {
			vsock_conn_reset(c);
			return;
		}
	}
	if (now < c->deadline)
		return;
	log_debug("vsock: port %u/%u: no answer in %d ms: reset",
	    c->local_port, c->peer_port, VSOCK_CONNECT_TIMEOUT_MS);
	vsock_conn_reset(c);
}

static void
resume_accept(struct ev_handler *h, uint64_t *resume, uint64_t now)
{
	int r;

	if (*resume == 0 || now < *resume)
		return;
	*resume = 0;
	r = h->fd >= 0 ? ev_add(h, EPOLLIN) : 0;
	if (r < 0)
		log_warnx("vsock: epoll: %s", strerror(-r));
}

static void
tick(void *arg, uint32_t events)
{
	struct vsock_dev *v = arg;
	struct vsock_conn *c, *next;
	uint64_t now = ev_now_ms(), n;
	int busy = 0;

	(void)events;
	if (read(v->tick_ev.fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("vsock: timer: %s", strerror(errno));
	for (c = v->conns; c != NULL; c = next) {
		next = c->next;
		if (c->deadline != 0)
			tick_conn(c, now);
	}
	resume_accept(&v->listen_ev, &v->listen_resume, now);
	resume_accept(&v->cmd_ev, &v->cmd_resume, now);
	vsock_burst_end(v);
	for (c = v->conns; c != NULL && !busy; c = c->next)
		busy = c->deadline != 0;
	busy |= v->listen_resume != 0 || v->cmd_resume != 0 || v->burst != 0;
	if (!busy) {
		struct itimerspec off = { { 0, 0 }, { 0, 0 } };

		timerfd_settime(v->tick_ev.fd, 0, &off, NULL);
		v->tick_armed = 0;
	}
	vsock_rx_process(v);
}

/*
 * The timer's fd is made with the device: it must exist when fds have
 * run out, to end the accept back-off.
 */
int
vsock_tick_open(struct vsock_dev *v)
{
	v->tick_ev.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK |
	    TFD_CLOEXEC);
	if (v->tick_ev.fd < 0)
		return -errno;
	v->tick_ev.cb = tick;
	v->tick_ev.arg = v;
	return 0;
}

/* Tick every VSOCK_TICK_MS while something waits; idle, it stops. */
void
vsock_tick_arm(struct vsock_dev *v)
{
	struct itimerspec it = { { 0, VSOCK_TICK_MS * 1000000L },
	    { 0, VSOCK_TICK_MS * 1000000L } };
	int r;

	if (v->tick_armed || v->tick_ev.fd < 0)
		return;
	if (!v->tick_added) {
		r = ev_add(&v->tick_ev, EPOLLIN);
		if (r < 0) {
			log_warnx("vsock: epoll: %s", strerror(-r));
			return;
		}
		v->tick_added = 1;
	}
	if (timerfd_settime(v->tick_ev.fd, 0, &it, NULL) == 0)
		v->tick_armed = 1;
}

void
vsock_tick_close(struct vsock_dev *v)
{
	if (v->tick_ev.fd < 0)
		return;
	ev_del(&v->tick_ev);
	close(v->tick_ev.fd);
	v->tick_ev.fd = -1;
	v->tick_armed = v->tick_added = 0;
}

/*
 * accept failed with EMFILE/ENFILE: the connection stays queued and the
 * level-triggered listener would fire again at once. Close the spare fd
 * to accept it and close it (its client sees EOF, not a hang), take the
 * spare back, and stop listening for VSOCK_ACCEPT_BACKOFF_MS.
 */
void
vsock_accept_shed(struct vsock_dev *v, struct ev_handler *h,
    uint64_t *resume, const char *what)
{
	int fd;

	log_warnx("vsock: %s: %s: closing a connection, pausing %d ms",
	    what, strerror(errno), VSOCK_ACCEPT_BACKOFF_MS);
	if (v->spare_fd >= 0) {
		close(v->spare_fd);
		fd = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			close(fd);
		v->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	ev_del(h);
	*resume = ev_now_ms() + VSOCK_ACCEPT_BACKOFF_MS;
	vsock_tick_arm(v);
}
