/*
 * The host's own addresses, for the SSRF check (ssrf.c refuses them unless
 * allow_private names them: a guest must not reach services of the host
 * through an address of one of its interfaces, public or not). Read with
 * getifaddrs(3) at start; a NETLINK_ROUTE socket subscribed to the IPv4
 * and IPv6 address groups says when they change (RTM_NEWADDR,
 * RTM_DELADDR, or an overrun), and at the end of that event batch they
 * are read again and sent to the fetcher. A change takes effect for the
 * connections opened after the fetcher has the new list.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "../common/log.h"
#include "pepd.h"

static int
read_addrs(struct cidr **out, size_t *nout)
{
	struct ifaddrs *ifa = NULL, *i;
	struct cidr *list;
	size_t n = 0;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (i = ifa; i != NULL; i = i->ifa_next)
		if (i->ifa_addr != NULL && (i->ifa_addr->sa_family == AF_INET ||
		    i->ifa_addr->sa_family == AF_INET6))
			n++;
	list = calloc(n > 0 ? n : 1, sizeof(*list));
	if (list == NULL) {
		freeifaddrs(ifa);
		return -ENOMEM;
	}
	n = 0;
	for (i = ifa; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (cidr_from_sockaddr(i->ifa_addr, i->ifa_addr->sa_family ==
		    AF_INET ? sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6), &list[n]) == 0)
			n++;
	}
	freeifaddrs(ifa);
	*out = list;
	*nout = n;
	return 0;
}

static int
same_list(const struct cidr *a, size_t na, const struct cidr *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

/* Read them again; tell the fetcher when they changed. */
static int
ifaddr_reload(struct pepd *s)
{
	struct cidr *list = NULL;
	size_t n = 0;
	int r;

	r = read_addrs(&list, &n);
	if (r < 0)
		return r;
	if (same_list(list, n, s->ifw.list, s->ifw.n)) {
		free(list);
		return 0;
	}
	free(s->ifw.list);
	s->ifw.list = list;
	s->ifw.n = n;
	log_debug("the host has %zu addresses", n);
	return fetcher_send_addrs(s);
}

static void
on_netlink(struct pepd *s, struct ev *ev, uint32_t events)
{
	char buf[8192];
	struct nlmsghdr *h;
	ssize_t n;
	size_t len;

	(void)events;
	for (;;) {
		n = recv(ev->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOBUFS) {
			s->ifw.dirty = 1;	/* lost some: read them all */
			continue;
		}
		if (n <= 0)
			return;
		len = (size_t)n;
		for (h = (struct nlmsghdr *)(void *)buf; NLMSG_OK(h, len);
		    h = NLMSG_NEXT(h, len))
			if (h->nlmsg_type == RTM_NEWADDR ||
			    h->nlmsg_type == RTM_DELADDR)
				s->ifw.dirty = 1;
	}
}

int
ifaddr_open(struct pepd *s, struct pep_err *e)
{
	struct sockaddr_nl sa;
	int fd, r;

	s->ifw.ev.fd = -1;
	r = read_addrs(&s->ifw.list, &s->ifw.n);
	if (r < 0)
		return pep_errf(e, r, "getifaddrs: %s", strerror(-r));
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    NETLINK_ROUTE);
	if (fd < 0)
		return pep_errf(e, errno, "netlink: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = pep_errf(e, errno, "netlink bind: %s", strerror(errno));
		close(fd);
		return r;
	}
	s->ifw.ev.fd = fd;
	s->ifw.ev.fn = on_netlink;
	r = ev_add(s, &s->ifw.ev, EPOLLIN);
	if (r < 0)
		return pep_errf(e, r, "epoll: %s", strerror(-r));
	return 0;
}

void
ifaddr_flush(struct pepd *s)
{
	int r;

	if (!s->ifw.dirty)
		return;
	s->ifw.dirty = 0;
	r = ifaddr_reload(s);
	if (r < 0)
		log_warnx("the host's addresses: %s", strerror(-r));
}

void
ifaddr_close(struct pepd *s)
{
	if (s->ifw.ev.fd >= 0) {
		ev_del(s, &s->ifw.ev);
		close(s->ifw.ev.fd);
	}
	s->ifw.ev.fd = -1;
	free(s->ifw.list);
	s->ifw.list = NULL;
	s->ifw.n = 0;
}
