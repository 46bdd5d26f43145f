/*
 * libcurl multi on the fetcher's epoll loop (libcurl-multi(3), the
 * "multi_socket" API): CURLMOPT_SOCKETFUNCTION registers the sockets
 * libcurl wants watched, CURLMOPT_TIMERFUNCTION arms a timerfd, and
 * every event is handed to curl_multi_socket_action(). Transfers end
 * here only, from curl_multi_info_read() after socket_action has
 * returned: the busy rule of pepd.h (no callback ends or frees one).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <curl/curl.h>

#include "pepd.h"

/* A socket libcurl asked us to watch. */
struct csock {
	struct fev ev;
};

static void
check_done(struct fetcher *f)
{
	CURLMsg *m;
	struct xfer *x;
	int left;

	while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &x);
		curl_multi_remove_handle(f->multi, m->easy_handle);
		if (x != NULL)
			xfer_done(f, x, (int)m->data.result);
	}
}

static void
on_csock(struct fetcher *f, struct fev *ev, uint32_t events)
{
	int flags = 0, running;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(f->multi, ev->fd, flags, &running);
	check_done(f);
}

static int
sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct fetcher *f = userp;
	struct csock *cs = socketp;
	uint32_t events = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (cs != NULL) {
			fev_del(f, &cs->ev);
			fetcher_defer_free(f, &cs->ev, cs);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (cs != NULL)
		return fev_mod(f, &cs->ev, events) < 0 ? -1 : 0;
	cs = calloc(1, sizeof(*cs));
	if (cs == NULL)
		return -1;
	cs->ev.fd = fd;
	cs->ev.fn = on_csock;
	curl_multi_assign(f->multi, fd, cs);
	return fev_add(f, &cs->ev, events) < 0 ? -1 : 0;
}

/*
 * libcurl asks for a new timeout after nearly every socket action. A
 * timer that fires early is harmless (curl looks, then asks again), one
 * that fires late is not: so re-arm only when the new deadline comes
 * before the armed one. That saves a timerfd_settime per event.
 */
static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct fetcher *f = userp;
	struct itimerspec it = { 0 };
	uint64_t due;

	(void)m;
	if (timeout_ms < 0)	/* "no timeout": an armed one fires */
		return 0;
	due = pepd_now_us() + (uint64_t)timeout_ms * 1000;
	if (f->curl_due_us != 0 && f->curl_due_us <= due)
		return 0;
	f->curl_due_us = due;
	if (timeout_ms == 0) {
		it.it_value.tv_nsec = 1;
	} else {
		it.it_value.tv_sec = timeout_ms / 1000;
		it.it_value.tv_nsec = (timeout_ms % 1000) * 1000000L;
	}
	return timerfd_settime(f->timerev.fd, 0, &it, NULL) == -1 ? -1 : 0;
}

void
fetch_multi_timer(struct fetcher *f)
{
	int running;

	f->curl_due_us = 0;	/* disarmed: the next request re-arms */
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(f);
}

int
fetch_multi_add(struct fetcher *f, struct xfer *x)
{
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(f->multi, x->easy) != CURLM_OK)
		return -EINVAL;
	return 0;
}

void
fetch_multi_remove(struct fetcher *f, struct xfer *x)
{
	if (x->easy != NULL)
		curl_multi_remove_handle(f->multi, x->easy);
}

int
fetch_multi_init(struct fetcher *f, struct pep_err *e)
{
	CURLM *m;

	m = curl_multi_init();
	if (m == NULL)
		return pep_errf(e, PEP_ELIB, "curl_multi_init failed");
	f->multi = m;
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(m, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(m, CURLMOPT_TIMERDATA, f);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 256L);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 512L);
	return 0;
}

void
fetch_multi_cleanup(struct fetcher *f)
{
	if (f->multi == NULL)
		return;
	curl_multi_cleanup(f->multi);
	f->multi = NULL;
}
