/*
 * The one event loop: epoll, level-triggered, a callback per fd. Signals
 * arrive through a signalfd registered like any other fd. Work queued
 * with ev_work_queue runs after the batch it was queued in, so a handler
 * with more to do than its budget yields to every other ready fd first.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
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

static struct ev_work *work_head, *work_tail;
static unsigned work_n;

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

uint64_t
ev_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
ev_work_queue(struct ev_work *w)
{
	if (w->queued)
		return;
	w->queued = 1;
	w->next = NULL;
	if (work_tail != NULL)
		work_tail->next = w;
	else
		work_head = w;
	work_tail = w;
	work_n++;
}

void
ev_work_cancel(struct ev_work *w)
{
	struct ev_work **pp, *prev = NULL;

	if (!w->queued)
		return;
	for (pp = &work_head; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
		if (*pp != w)
			continue;
		*pp = w->next;
		if (work_tail == w)
			work_tail = prev;
		work_n--;
		break;
	}
	w->queued = 0;
	w->next = NULL;
}

/*
 * Run as many items as were queued before this call: work queued by these
 * callbacks waits for the next round, after the next batch of events.
 */
static void
work_run(void)
{
	struct ev_work *w;
	unsigned n = work_n;

	while (n-- > 0 && work_head != NULL) {
		w = work_head;
		ev_work_cancel(w);
		w->cb(w->arg);
	}
}

/*
 * Run the callbacks of one epoll_wait, then the queued work (and never
 * sleep while work is queued); returns how many fds were ready or -errno.
 */
int
ev_run_once(int timeout_ms)
{
	struct epoll_event ev[32];
	struct ev_handler *h;
	int i, n;

	if (work_head != NULL)
		timeout_ms = 0;
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
	work_run();
	return n;
}
