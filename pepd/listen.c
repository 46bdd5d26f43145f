/*
 * Listeners: "tcp:HOST:PORT", "unix:PATH[,mode=OCTAL]", "vsock:PORT". One
 * ops table row per kind opens the socket and names peers and clients;
 * accepting is common. A unix socket gets exactly its mode (0600 unless
 * given), never the umask's; only a socket is ever removed at its path.
 * The caps are common too: a connection over max_connections
 * (bounded by RLIMIT_NOFILE, so descriptors never run out) or over
 * max_connections_per_client is taken anyway and answered overloaded
 * (conn.c). Should accept(2) still find no descriptor, a reserve one is
 * given up for a moment to take the connection and close it: a full
 * table never leaves connections waiting in the backlog.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>

#include "../common/log.h"
#include "pepd.h"

#define LISTEN_BACKLOG 4096
#define ACCEPT_BACKOFF_MS 100
#define ACCEPT_BATCH 256
#define FD_HEADROOM 32	/* the parent's own descriptors, with room */
#define UNIX_MODE 0600

static int
sock_listen(int fd, const struct sockaddr *sa, socklen_t len)
{
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) == -1 || listen(fd, LISTEN_BACKLOG) == -1)
		return -errno;
	return 0;
}

/* Split "HOST:PORT" or "[V6]:PORT" into host and port. */
static int
split_hostport(const char *arg, char *host, size_t hlen, const char **port)
{
	const char *colon, *h = arg;
	size_t n;

	if (*arg == '[') {
		colon = strstr(arg, "]:");
		h = arg + 1;
		if (colon == NULL)
			return -EINVAL;
		n = (size_t)(colon - h);
		*port = colon + 2;
	} else {
		colon = strrchr(arg, ':');
		if (colon == NULL)
			return -EINVAL;
		n = (size_t)(colon - arg);
		*port = colon + 1;
	}
	if (n == 0 || n >= hlen || **port == '\0')
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	return 0;
}

static int
tcp_open(const char *arg, struct pep_err *e)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char host[256];
	const char *port;
	int fd = -1, r;

	if (split_hostport(arg, host, sizeof(host), &port) < 0)
		return pep_errf(e, PEP_EUSAGE, "tcp:%s: want HOST:PORT", arg);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0)
		return pep_errf(e, PEP_EUSAGE, "tcp:%s: %s", arg,
		    gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		r = pep_errf(e, errno, "tcp:%s: socket: %s", arg,
		    strerror(errno));
		goto out;
	}
	r = sock_listen(fd, ai->ai_addr, ai->ai_addrlen);
	if (r < 0) {
		pep_errf(e, r, "tcp:%s: %s", arg, strerror(-r));
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(ai);
	return r;
}

static void
tcp_peer(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";

	getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV);
	if (sa->sa_family == AF_INET6)
		snprintf(out, outlen, "[%s]:%s", host, port);
	else
		snprintf(out, outlen, "%s:%s", host, port);
}

/* "PATH" or "PATH,mode=OCTAL" (at most 0777): the path and the mode. */
static int
unix_spec(const char *arg, char *path, size_t len, mode_t *mode)
{
	const char *m = strstr(arg, ",mode=");
	size_t n = m != NULL ? (size_t)(m - arg) : strlen(arg);
	unsigned long v = UNIX_MODE;
	char *end;

	if (m != NULL) {
		errno = 0;
		v = strtoul(m + 6, &end, 8);
		if (errno != 0 || end == m + 6 || *end != '\0' ||
		    m[6] == '-' || v > 0777)
			return -EINVAL;
	}
	if (n == 0 || n >= len)
		return -EINVAL;
	memcpy(path, arg, n);
	path[n] = '\0';
	*mode = (mode_t)v;
	return 0;
}

static int
unix_open(const char *arg, struct pep_err *e)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t mode, old;
	int fd, r;

	if (unix_spec(arg, sun.sun_path, sizeof(sun.sun_path), &mode) < 0)
		return pep_errf(e, PEP_EUSAGE, "unix:%s: bad path or mode",
		    arg);
	if (lstat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(sun.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return pep_errf(e, errno, "unix:%s: socket: %s", arg,
		    strerror(errno));
	/* bind creates the socket 0777 & ~umask: make that exactly mode */
	old = umask(0777 & ~mode);
	r = sock_listen(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0) {
		close(fd);
		return pep_errf(e, r, "unix:%s: %s", arg, strerror(-r));
	}
	return fd;
}

/* The address without the port. */
static void
tcp_client(const struct sockaddr *sa, socklen_t len, char *out,
    size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";

	getnameinfo(sa, len, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	snprintf(out, outlen, "%s", host);
}

static void
unix_peer(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	(void)sa;
	(void)len;
	snprintf(out, outlen, "unix");
}

static int
vsock_open(const char *arg, struct pep_err *e)
{
	struct sockaddr_vm svm = { .svm_family = AF_VSOCK };
	char *end;
	unsigned long port;
	int fd, r;

	errno = 0;
	port = strtoul(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || port > UINT_MAX)
		return pep_errf(e, PEP_EUSAGE, "vsock:%s: want PORT", arg);
	svm.svm_cid = VMADDR_CID_ANY;
	svm.svm_port = (unsigned int)port;
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return pep_errf(e, errno, "vsock:%s: socket: %s", arg,
		    strerror(errno));
	r = sock_listen(fd, (struct sockaddr *)&svm, sizeof(svm));
	if (r < 0) {
		close(fd);
		return pep_errf(e, r, "vsock:%s: %s", arg, strerror(-r));
	}
	return fd;
}

static void
vsock_peer(const struct sockaddr *sa, socklen_t len, char *out,
    size_t outlen)
{
	const struct sockaddr_vm *svm = (const struct sockaddr_vm *)sa;

	if (len < sizeof(*svm)) {
		snprintf(out, outlen, "vsock");
		return;
	}
	snprintf(out, outlen, "vsock:%u:%u", svm->svm_cid, svm->svm_port);
}

/* The guest: its CID. */
static void
vsock_client(const struct sockaddr *sa, socklen_t len, char *out,
    size_t outlen)
{
	const struct sockaddr_vm *svm = (const struct sockaddr_vm *)sa;

	if (len < sizeof(*svm)) {
		snprintf(out, outlen, "vsock");
		return;
	}
	snprintf(out, outlen, "vsock:%u", svm->svm_cid);
}

static const struct listen_ops listen_kinds[] = {
	{ "tcp", tcp_open, tcp_peer, tcp_client },
	{ "unix", unix_open, unix_peer, unix_peer },
	{ "vsock", vsock_open, vsock_peer, vsock_client },
};

/* No descriptor for accept(2): take the connection with the reserve one,
 * close it, get the reserve back. 0 taken, -1 stop accepting for now. */
static int
accept_with_reserve(struct pepd *s, struct ev *ev)
{
	int fd;

	if (s->reserve_fd < 0)
		return -1;
	close(s->reserve_fd);
	fd = accept4(ev->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (s->metrics.conn_refused[CONN_REFUSED_FDS]++ % 1000 == 0)
		log_warnx("accept: out of file descriptors: a connection "
		    "was closed at once (%llu so far)", (unsigned long long)
		    s->metrics.conn_refused[CONN_REFUSED_FDS]);
	return 0;
}

static void
on_accept_error(struct pepd *s, struct ev *ev, int err)
{
	if ((err == EMFILE || err == ENFILE) &&
	    accept_with_reserve(s, ev) == 0)
		return;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM) {
		log_warnx("accept: %s; pausing %d ms", strerror(err),
		    ACCEPT_BACKOFF_MS);
		listeners_pause(s, 1);
		s->accept_resume_ms = pepd_now_ms() + ACCEPT_BACKOFF_MS;
		return;
	}
	if (err != EAGAIN && err != ECONNABORTED && err != EINTR)
		log_warnx("accept: %s", strerror(err));
}

/* Which cap, if any, fd is over: why, for its answer. */
static void
over_cap(struct pepd *s, const char *client, char *over, size_t n)
{
	const struct pep_limits *lim = &s->cfg->c->limits;
	struct client *cl;

	over[0] = '\0';
	if (s->nconns >= s->conn_cap) {
		snprintf(over, n, "too many connections (max_connections "
		    "%zu)", s->conn_cap);
		s->metrics.conn_refused[CONN_REFUSED_MAX]++;
		return;
	}
	for (cl = s->clients; cl != NULL; cl = cl->next)
		if (strcmp(cl->key, client) == 0)
			break;
	if (cl != NULL && cl->n >= lim->max_connections_per_client) {
		snprintf(over, n, "too many connections from %s "
		    "(max_connections_per_client %zu)", client,
		    lim->max_connections_per_client);
		s->metrics.conn_refused[CONN_REFUSED_CLIENT]++;
	}
}

static void
on_accept(struct pepd *s, struct ev *ev, uint32_t events)
{
	struct listener *l = (struct listener *)ev;
	struct sockaddr_storage ss;
	socklen_t len;
	char peer[64], client[64], over[160];
	int fd, i, err;

	(void)events;
	for (i = 0; i < ACCEPT_BATCH; i++) {
		len = sizeof(ss);
		fd = accept4(ev->fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			err = errno;
			if (err == EAGAIN)
				return;
			on_accept_error(s, ev, err);
			if ((err != EMFILE && err != ENFILE) ||
			    s->accept_resume_ms != 0)
				return;
			continue;
		}
		l->ops->peer((struct sockaddr *)&ss, len, peer, sizeof(peer));
		l->ops->client((struct sockaddr *)&ss, len, client,
		    sizeof(client));
		over_cap(s, client, over, sizeof(over));
		if (conn_new(s, fd, peer, client, over) < 0) {
			log_warnx("%s: out of memory, connection dropped",
			    peer);
			close(fd);
		}
	}
}

int
listen_budget(struct pepd *s, struct pep_err *e)
{
	struct rlimit rl;
	size_t max = s->cfg->c->limits.max_connections, fds;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return pep_errf(e, errno, "getrlimit: %s", strerror(errno));
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1u << 30 ?
	    1u << 30 : (size_t)rl.rlim_cur;
	s->over_max = fds / 8 < CONN_OVER_MAX ? fds / 8 : CONN_OVER_MAX;
	if (fds < FD_HEADROOM + s->over_max + 8)
		return pep_errf(e, EMFILE, "RLIMIT_NOFILE %zu leaves no room "
		    "for connections", fds);
	fds -= FD_HEADROOM + s->over_max;
	s->conn_cap = max < fds ? max : fds;
	if (s->conn_cap < max)
		log_info("max_connections %zu: at most %zu within "
		    "RLIMIT_NOFILE", max, s->conn_cap);
	if (s->reserve_fd < 0)
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->reserve_fd < 0)
		return pep_errf(e, errno, "/dev/null: %s", strerror(errno));
	return 0;
}

int
listener_open(struct pepd *s, const char *spec, struct listener *l,
    struct pep_err *e)
{
	const char *colon = strchr(spec, ':');
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	mode_t mode;
	size_t i, n;
	int fd, r;

	l->ev.fd = -1;
	n = colon == NULL ? 0 : (size_t)(colon - spec);
	for (i = 0; i < sizeof(listen_kinds) / sizeof(listen_kinds[0]); i++)
		if (strlen(listen_kinds[i].kind) == n &&
		    strncmp(spec, listen_kinds[i].kind, n) == 0)
			break;
	if (i == sizeof(listen_kinds) / sizeof(listen_kinds[0]))
		return pep_errf(e, PEP_EUSAGE, "%s: want tcp:HOST:PORT, "
		    "unix:PATH or vsock:PORT", spec);
	fd = listen_kinds[i].open(colon + 1, e);
	if (fd < 0)
		return fd;
	l->ops = &listen_kinds[i];
	l->ev.fd = fd;
	l->ev.fn = on_accept;
	if (strcmp(l->ops->kind, "unix") == 0 &&
	    unix_spec(colon + 1, path, sizeof(path), &mode) == 0)
		l->path = strdup(path);
	r = ev_add(s, &l->ev, EPOLLIN);
	if (r < 0)
		return pep_errf(e, r, "%s: epoll: %s", spec, strerror(-r));
	log_info("listening on %s", spec);
	return 0;
}

void
listener_close(struct pepd *s, struct listener *l)
{
	struct stat st;

	if (l->ev.fd < 0)
		return;
	ev_del(s, &l->ev);
	close(l->ev.fd);
	l->ev.fd = -1;
	if (l->path != NULL && lstat(l->path, &st) == 0 &&
	    S_ISSOCK(st.st_mode))
		unlink(l->path);	/* not what replaced our socket */
	free(l->path);
	l->path = NULL;
}

void
listeners_pause(struct pepd *s, int pause)
{
	size_t i;

	for (i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i].ev.fd < 0)
			continue;
		if (pause)
			ev_del(s, &s->listeners[i].ev);
		else
			ev_add(s, &s->listeners[i].ev, EPOLLIN);
	}
}
