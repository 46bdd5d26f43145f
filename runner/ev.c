/*
 * The one event loop: epoll, level-triggered, a callback per fd. Signals
 * arrive through a signalfd registered like any other fd.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "runner.h"

static int ev_fd = -1;

/*
 * The batch ev_run_once is working through. A callback may free another
 * handler whose event is still waiting later in the batch: ev_del forgets
 * those events, so nothing touches freed memory.
 */
static struct epoll_event *ev_batch;
static int ev_batch_next, ev_batch_n;

int
ev_init(void)
{
	if (ev_fd >= 0)
		return 0;
	ev_fd = epoll_create1(EPOLL_CLOEXEC);
	if (ev_fd < 0)
		return -errno;
	return 0;
}

static int
ev_ctl(int op, struct ev_handler *h, uint32_t events)
{
	struct epoll_event e = { 0 };

	e.events = events;
	e.data.ptr = h;
	if (epoll_ctl(ev_fd, op, h->fd, &e) < 0)
		return -errno;
	return 0;
}

int
ev_add(struct ev_handler *h, uint32_t events)
{
	return ev_ctl(EPOLL_CTL_ADD, h, events);
}

int
ev_mod(struct ev_handler *h, uint32_t events)
{
	return ev_ctl(EPOLL_CTL_MOD, h, events);
}

void
ev_del(struct ev_handler *h)
{
	int i;

	if (h->fd >= 0 && ev_fd >= 0)
		epoll_ctl(ev_fd, EPOLL_CTL_DEL, h->fd, NULL);
	for (i = ev_batch_next; ev_batch != NULL && i < ev_batch_n; i++)
		if (ev_batch[i].data.ptr == h)
			ev_batch[i].data.ptr = NULL;
}

/* Run the callbacks of one epoll_wait; returns how many ran or -errno. */
int
ev_run_once(int timeout_ms)
{
	struct epoll_event ev[32];
	struct ev_handler *h;
	int i, n;

	n = epoll_wait(ev_fd, ev, 32, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	ev_batch = ev;
	ev_batch_n = n;
	for (i = 0; i < n; i++) {
		ev_batch_next = i + 1;
		h = ev[i].data.ptr;
		if (h != NULL)	/* NULL: its handler went away this batch */
			h->cb(h->arg, ev[i].events);
	}
	ev_batch = NULL;
	return n;
}
