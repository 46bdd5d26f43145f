/*
 * Addresses for pexi-bridge: "tcp:HOST:PORT" (HOST a numeric IPv4 address
 * or a bracketed IPv6 one; no name lookup, so static glibc builds stay
 * clean), "unix:PATH" and "vsock:CID:PORT"; non-blocking listen and
 * connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pexi-bridge.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* Decimal digits only, s[0..n), at most max. */
static int
parse_u32(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static void
addr_format(const union pb_sockaddr *u, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	switch (u->sa.sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &u->in.sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "tcp:%s:%u", ip, ntohs(u->in.sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &u->in6.sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "tcp:[%s]:%u", ip, ntohs(u->in6.sin6_port));
		break;
	case AF_UNIX:
		snprintf(buf, len, "unix:%s", u->un.sun_path);
		break;
	case AF_VSOCK:
		snprintf(buf, len, "vsock:%u:%u", u->vm.svm_cid,
		    u->vm.svm_port);
		break;
	default:
		snprintf(buf, len, "family-%d", u->sa.sa_family);
		break;
	}
}

static int
parse_tcp(const char *s, struct pb_addr *a)
{
	const char *colon = strrchr(s, ':');
	char host[INET6_ADDRSTRLEN + 2];
	size_t hlen;
	uint32_t port;

	if (colon == NULL || parse_u32(colon + 1, strlen(colon + 1), 65535,
	    &port) < 0)
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, &a->u.in.sin_addr) == 1) {
		a->u.in.sin_family = AF_INET;
		a->u.in.sin_port = htons((uint16_t)port);
		a->len = sizeof(a->u.in);
		return 0;
	}
	if (hlen < 3 || host[0] != '[' || host[hlen - 1] != ']')
		return -EINVAL;
	host[hlen - 1] = '\0';
	if (inet_pton(AF_INET6, host + 1, &a->u.in6.sin6_addr) != 1)
		return -EINVAL;
	a->u.in6.sin6_family = AF_INET6;
	a->u.in6.sin6_port = htons((uint16_t)port);
	a->len = sizeof(a->u.in6);
	return 0;
}

static int
parse_unix(const char *s, struct pb_addr *a)
{
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(a->u.un.sun_path))
		return -EINVAL;
	a->u.un.sun_family = AF_UNIX;
	memcpy(a->u.un.sun_path, s, n + 1);
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

static int
parse_vsock(const char *s, struct pb_addr *a)
{
	const char *colon = strchr(s, ':');
	uint32_t cid, port;

	if (colon == NULL ||
	    parse_u32(s, (size_t)(colon - s), UINT32_MAX, &cid) < 0 ||
	    parse_u32(colon + 1, strlen(colon + 1), UINT32_MAX, &port) < 0)
		return -EINVAL;
	a->u.vm.svm_family = AF_VSOCK;
	a->u.vm.svm_cid = cid;
	a->u.vm.svm_port = port;
	a->len = sizeof(a->u.vm);
	return 0;
}

int
addr_parse(const char *s, struct pb_addr *a)
{
	int r = -EINVAL;

	memset(a, 0, sizeof(*a));
	if (strncmp(s, "tcp:", 4) == 0)
		r = parse_tcp(s + 4, a);
	else if (strncmp(s, "unix:", 5) == 0)
		r = parse_unix(s + 5, a);
	else if (strncmp(s, "vsock:", 6) == 0)
		r = parse_vsock(s + 6, a);
	if (r == 0)
		addr_format(&a->u, a->text, sizeof(a->text));
	return r;
}

static int
sock_new(int family)
{
	return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* A listening socket, or -errno. Port 0 is replaced by the bound port. */
int
addr_listen(struct pb_addr *a)
{
	int fd, one = 1, r;
	socklen_t len = sizeof(a->u);

	fd = sock_new(a->u.sa.sa_family);
	if (fd < 0)
		return -errno;
	if (a->u.sa.sa_family == AF_INET || a->u.sa.sa_family == AF_INET6)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, &a->u.sa, a->len) < 0 || listen(fd, SOMAXCONN) < 0)
		goto fail;
	if (a->u.sa.sa_family != AF_UNIX) {
		if (getsockname(fd, &a->u.sa, &len) < 0)
			goto fail;
		addr_format(&a->u, a->text, sizeof(a->text));
	}
	return fd;
fail:
	r = -errno;
	close(fd);
	return r;
}

/*
 * Start a non-blocking connect. Returns 0 when connected at once,
 * -EINPROGRESS when the caller must wait for EPOLLOUT, else -errno (no fd).
 */
int
addr_connect(const struct pb_addr *a, int *fdp)
{
	int fd, one = 1, r;

	*fdp = -1;
	fd = sock_new(a->u.sa.sa_family);
	if (fd < 0)
		return -errno;
	if (a->u.sa.sa_family == AF_INET || a->u.sa.sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r = connect(fd, &a->u.sa, a->len) < 0 ? -errno : 0;
	if (r == 0 || r == -EINPROGRESS)
		*fdp = fd;
	else
		close(fd);
	return r;
}

void
addr_unlink(const struct pb_addr *a)
{
	if (a->u.sa.sa_family == AF_UNIX)
		unlink(a->u.un.sun_path);
}

void
addr_peer_text(int fd, char *buf, size_t len)
{
	union pb_sockaddr u;
	socklen_t sl = sizeof(u);

	memset(&u, 0, sizeof(u));
	if (getpeername(fd, &u.sa, &sl) < 0) {
		snprintf(buf, len, "?");
		return;
	}
	addr_format(&u, buf, len);
}
