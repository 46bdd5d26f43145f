/*
 * runner/ev.c, the event loop's contract (runner.h): level-triggered fds,
 * queued work that runs after the batch it was queued in (so a handler
 * that re-queues itself yields to every ready fd each round), FIFO order,
 * cancel anywhere in the queue, and ev_del forgetting an event still
 * waiting in the current batch.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../../runner/runner.h"
#include "../tap.h"

static int fd_calls, work_calls, work_budget;
static struct ev_work self;

static void
on_ready(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
	fd_calls++;		/* never reads: level-triggered, fires again */
}

/* A handler with more to do than one round allows: runs, re-queues. */
static void
on_work(void *arg)
{
	(void)arg;
	work_calls++;
	if (--work_budget > 0)
		ev_work_queue(&self);
}

static char order[16];
static size_t norder;

static void
record(void *arg)
{
	if (norder < sizeof(order) - 1)
		order[norder++] = *(const char *)arg;
}

static struct ev_handler h1, h2;
static int h2_calls;

static void
on_h1(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
	ev_del(&h2);		/* h2's event may be later in this batch */
}

static void
on_h2(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
	h2_calls++;
}

static void
run_rounds(int n)
{
	while (n-- > 0)
		ev_run_once(0);
}

static void
starvation(void)
{
	struct ev_handler h = { 0 };
	int p[2], r, i, fair = 1;

	if (pipe(p) < 0 || write(p[1], "x", 1) != 1)
		abort();
	h.fd = p[0];
	h.cb = on_ready;
	r = ev_add(&h, EPOLLIN);
	tap_ok(r == 0, "ev_add a readable pipe");
	self.cb = on_work;
	work_budget = 1000;
	ev_work_queue(&self);
	for (i = 1; i <= 10; i++) {
		ev_run_once(0);
		if (fd_calls != i || work_calls != i)
			fair = 0;
	}
	tap_ok(fair, "a re-queued item runs once a round, the ready fd every "
	    "round (after 10: fd %d, work %d)", fd_calls, work_calls);
	ev_del(&h);
	run_rounds(5);
	tap_ok(fd_calls == 10, "after ev_del the fd's callback is not called");
	ev_work_cancel(&self);
	tap_ok(work_calls == 15 && !self.queued,
	    "ev_work_cancel takes a queued item off (%d runs)", work_calls);
	close(p[0]);
	close(p[1]);
}

static void
queue_order(void)
{
	static char a = 'a', b = 'b', c = 'c', d = 'd', e = 'e';
	struct ev_work wa = { .cb = record, .arg = &a };
	struct ev_work wb = { .cb = record, .arg = &b };
	struct ev_work wc = { .cb = record, .arg = &c };
	struct ev_work wd = { .cb = record, .arg = &d };
	struct ev_work we = { .cb = record, .arg = &e };

	/* the only item taken off: the queue is empty, then takes more */
	ev_work_queue(&wa);
	run_rounds(1);
	ev_work_queue(&wb);
	run_rounds(1);
	tap_ok(strcmp(order, "ab") == 0, "an item queued after the queue "
	    "emptied runs (ran '%s')", order);
	norder = 0;
	memset(order, 0, sizeof(order));
	ev_work_queue(&wa);
	ev_work_cancel(&wa);
	ev_work_queue(&wb);
	run_rounds(1);
	tap_ok(strcmp(order, "b") == 0, "the only item cancelled, the next "
	    "queued runs (ran '%s')", order);
	norder = 0;
	memset(order, 0, sizeof(order));
	ev_work_queue(&wa);
	ev_work_queue(&wb);
	ev_work_queue(&wc);
	ev_work_queue(&wa);		/* already queued: once */
	ev_work_cancel(&wc);		/* the tail */
	ev_work_queue(&wd);
	ev_work_cancel(&wb);		/* the middle */
	ev_work_queue(&we);
	ev_work_cancel(&wc);		/* not queued: nothing */
	run_rounds(1);
	tap_ok(strcmp(order, "ade") == 0, "FIFO, each once, cancels at the "
	    "tail and in the middle (ran '%s')", order);
	run_rounds(2);
	tap_ok(strcmp(order, "ade") == 0, "nothing runs twice");
}

static void
del_in_batch(void)
{
	int p[2], q[2], r;

	if (pipe(p) < 0 || pipe(q) < 0 || write(p[1], "x", 1) != 1 ||
	    write(q[1], "x", 1) != 1)
		abort();
	h1.fd = p[0];
	h1.cb = on_h1;
	h2.fd = q[0];
	h2.cb = on_h2;
	r = ev_add(&h1, EPOLLIN) | ev_add(&h2, EPOLLIN);
	tap_ok(r == 0, "two ready pipes added");
	/* one batch holds both, h1 first (epoll lists fds in the order
	 * they became ready; both were ready when added) */
	ev_run_once(0);
	tap_ok(h2_calls == 0, "a handler deleted earlier in the batch is not "
	    "called");
	h2_calls = 0;
	run_rounds(3);
	tap_ok(h2_calls == 0, "nor in later rounds");
	ev_del(&h1);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

int
main(void)
{
	tap_ok(ev_init() == 0, "ev_init");
	starvation();
	queue_order();
	del_in_batch();
	return tap_done();
}
