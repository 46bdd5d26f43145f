/*
 * The fetcher process, "pepd --fetcher": exec'd by the parent with the
 * socket to it as fd 3 (and stderr for its log), nothing else. It sets
 * up libcurl, enters its sandbox (sandbox.c), says hello, and then runs
 * the transfers the parent sends, on its own epoll loop, until the
 * parent closes the socket. Its one switch is on_msg(); a message it does
 * not expect ends it (the parent then starts a new one).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <curl/curl.h>

#include "../common/log.h"
#include "pepd.h"

#define FETCHER_FD 3
#define FETCHER_EXIT_EXEC 3	/* the execve probe returned */
#define FETCHER_READ_BUDGET (4u << 20)

int
fev_add(struct fetcher *f, struct fev *ev, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	return epoll_ctl(f->epfd, EPOLL_CTL_ADD, ev->fd, &e) == -1 ? -errno : 0;
}

int
fev_mod(struct fetcher *f, struct fev *ev, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	return epoll_ctl(f->epfd, EPOLL_CTL_MOD, ev->fd, &e) == -1 ? -errno : 0;
}

void
fev_del(struct fetcher *f, struct fev *ev)
{
	if (ev->fd >= 0)
		epoll_ctl(f->epfd, EPOLL_CTL_DEL, ev->fd, NULL);
}

void
fetcher_defer_free(struct fetcher *f, struct fev *ev, void *obj)
{
	void **g;
	size_t cap;

	ev->fn = NULL;
	if (f->ngrave == f->capgrave) {
		cap = f->capgrave == 0 ? 64 : f->capgrave * 2;
		g = realloc(f->grave, cap * sizeof(*g));
		if (g == NULL) {
			log_warnx("out of memory: leaking a closed socket");
			return;
		}
		f->grave = g;
		f->capgrave = cap;
	}
	f->grave[f->ngrave++] = obj;
}

/* ---- sending ------------------------------------------------------------ */

/* A message for the parent's fixed char fields: no control characters. */
static void
msg_copy(char *dst, size_t size, const char *src)
{
	size_t i;

	snprintf(dst, size, "%s", src);
	for (i = 0; dst[i] != '\0'; i++)
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = '?';
}

static void
send_msg(struct fetcher *f, uint32_t type, uint64_t id, const void *p,
    size_t len)
{
	struct iovec iov = { .iov_base = (void *)p, .iov_len = len };

	if (ipc_put(&f->chan, type, id, &iov, len > 0 ? 1 : 0) < 0) {
		log_warnx("cannot queue a message for the parent");
		f->stop = 1;
	}
}

/* A result without a response frame (a refusal code). */
static void
send_refusal(struct fetcher *f, struct xfer *x, enum pep_code code,
    const char *msg, struct ipc_result *r)
{
	r->code = code;
	r->frame_len = 0;
	msg_copy(r->msg, sizeof(r->msg), msg);
	send_msg(f, IPC_RESULT, x->id, r, sizeof(*r));
}

static void
send_frame(struct fetcher *f, struct xfer *x, const struct pep_frame *fr,
    struct ipc_result *r)
{
	size_t off, n;

	r->code = PEP_OK;
	r->frame_len = fr->len;
	r->msg[0] = '\0';
	send_msg(f, IPC_RESULT, x->id, r, sizeof(*r));
	for (off = 0; off < fr->len; off += n) {
		n = fr->len - off < IPC_CHUNK ? fr->len - off : IPC_CHUNK;
		send_msg(f, IPC_RESP_BODY, x->id, fr->data + off, n);
	}
}

/* ---- transfers ---------------------------------------------------------- */

static void
xfer_free(struct fetcher *f, struct xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else if (f->xfers == x)
		f->xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	if (f->filling == x)
		f->filling = NULL;
	fetch_xfer_clear(x);
	curl_slist_free_all(x->hdrs);
	fetch_pool_put(f, x->easy);
	free(x->method);
	free(x->url);
	free(x->reqhdrs);
	free(x->reqbody);
	free(x);
}

static struct xfer *
xfer_new(struct fetcher *f, uint64_t id, int kind)
{
	struct xfer *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->f = f;
	x->id = id;
	x->kind = kind;
	x->next = f->xfers;
	if (f->xfers != NULL)
		f->xfers->prev = x;
	f->xfers = x;
	return x;
}

static void
fetch_times(struct xfer *x, struct ipc_result *r)
{
	curl_off_t t = 0;
	long conns = 0;
	char *ip = NULL;

	/* A reused connection took no lookup and no connect: both 0 (curl
	 * still counts a few microseconds of lookup in its cache). */
	if (curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &conns) ==
	    CURLE_OK && conns > 0) {
		if (curl_easy_getinfo(x->easy, CURLINFO_NAMELOOKUP_TIME_T,
		    &t) == CURLE_OK)
			r->dns_us = (uint64_t)t;
		if (curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T,
		    &t) == CURLE_OK)
			r->connect_us = (uint64_t)t;
	}
	if (curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &t) ==
	    CURLE_OK)
		r->bytes_out = (uint64_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK &&
	    ip != NULL && ip[0] != '\0')
		snprintf(x->ip, sizeof(x->ip), "%s", ip);
	msg_copy(r->ip, sizeof(r->ip), x->ip);
	r->bytes_in = x->blen;
}

/* A failed transfer's refusal code and message. */
static enum pep_code
fetch_code(struct fetcher *f, struct xfer *x, int rc, char *msg, size_t n)
{
	if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(msg, n, "response body over %zu bytes",
		    f->conf.max_response);
		return PEP_RESPONSE_TOO_LARGE;
	}
	if (x->ssrf_blocked && (rc == CURLE_COULDNT_CONNECT ||
	    rc == CURLE_OPERATION_TIMEDOUT ||
	    rc == CURLE_ABORTED_BY_CALLBACK)) {
		snprintf(msg, n, "address %s is %s", x->ip,
		    ssrf_class_name((enum ssrf_class)x->ssrf_blocked));
		return PEP_SSRF_BLOCKED;
	}
	if (x->bad_headers) {
		snprintf(msg, n, "the response has too many or too large "
		    "header fields");
		return PEP_UPSTREAM_ERROR;
	}
	snprintf(msg, n, "%s", x->msg[0] != '\0' ? x->msg :
	    curl_easy_strerror((CURLcode)rc));
	return rc == CURLE_OPERATION_TIMEDOUT ? PEP_TIMEOUT :
	    PEP_UPSTREAM_ERROR;
}

static void
fetch_done(struct fetcher *f, struct xfer *x, int rc)
{
	struct ipc_result r;
	struct pep_frame fr = { NULL, 0 };
	char msg[IPC_MSG];
	long status = 0;
	int e;

	memset(&r, 0, sizeof(r));
	fetch_times(x, &r);
	if (rc != CURLE_OK) {
		send_refusal(f, x, fetch_code(f, x, rc, msg, sizeof(msg)),
		    msg, &r);
		return;
	}
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	r.status = (uint32_t)status;
	e = proto_response((int)status, x->rh, x->nrh, x->rt, x->nrt,
	    x->body, x->blen, &fr);
	if (e < 0) {
		r.status = 0;
		send_refusal(f, x, PEP_UPSTREAM_ERROR, e == -EINVAL ?
		    "the origin's status code is not 100..999" :
		    "out of memory", &r);
		return;
	}
	fetch_xfer_clear(x);	/* the frame has it all now */
	send_frame(f, x, &fr, &r);
	free(fr.data);
}

static void
opa_done(struct fetcher *f, struct xfer *x, int rc)
{
	struct ipc_opa_result r;
	struct iovec iov[2];
	long status = 0;

	memset(&r, 0, sizeof(r));
	r.rc = rc;
	if (rc == CURLE_OK)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	r.status = status >= 100 && status <= 999 ? (uint32_t)status : 0;
	if (rc != CURLE_OK)
		msg_copy(r.msg, sizeof(r.msg), x->msg[0] != '\0' ? x->msg :
		    curl_easy_strerror((CURLcode)rc));
	r.answer_len = rc == CURLE_OK ? (uint32_t)x->blen : 0;
	iov[0].iov_base = &r;
	iov[0].iov_len = sizeof(r);
	iov[1].iov_base = x->body;
	iov[1].iov_len = r.answer_len;
	if (ipc_put(&f->chan, IPC_OPA_RESULT, x->id, iov, 2) < 0)
		f->stop = 1;
}

void
xfer_done(struct fetcher *f, struct xfer *x, int rc)
{
	if (x->kind == XFER_OPA)
		opa_done(f, x, rc);
	else
		fetch_done(f, x, rc);
	xfer_free(f, x);
}

/* The body is complete: configure and add to the multi handle. */
static void
xfer_start(struct fetcher *f, struct xfer *x)
{
	struct ipc_result r;
	int rc;

	if (f->filling == x)
		f->filling = NULL;
	x->easy = fetch_pool_get(f);
	rc = x->easy == NULL ? -ENOMEM : x->kind == XFER_OPA ?
	    fetch_setup_opa(f, x, x->easy) : fetch_setup(f, x, x->easy);
	if (rc == 0)
		rc = fetch_multi_add(f, x);
	if (rc == 0)
		return;
	if (x->kind == XFER_OPA) {
		opa_done(f, x, CURLE_FAILED_INIT);
	} else {
		memset(&r, 0, sizeof(r));
		send_refusal(f, x, PEP_UPSTREAM_ERROR,
		    "cannot start the fetch", &r);
	}
	xfer_free(f, x);
}

/* ---- the parent's messages ---------------------------------------------- */

static int
cidrs_copy(const struct ipc_cidr *in, size_t n, struct cidr **out,
    size_t *nout)
{
	struct cidr *c = NULL;
	size_t i;

	if (n > 0) {
		c = calloc(n, sizeof(*c));
		if (c == NULL)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (ipc_cidr_get(&in[i], &c[i]) < 0) {
			free(c);
			return -EBADMSG;
		}
	}
	free(*out);
	*out = c;
	*nout = n;
	return 0;
}

static int
msg_config(struct fetcher *f, const uint8_t *p, size_t len)
{
	struct ipc_config_view v;
	uint8_t *ca = NULL;
	int r;

	r = ipc_dec_config(p, len, &v);
	if (r < 0)
		return r;
	if (v.c->ca_len > 0) {
		ca = malloc(v.c->ca_len);
		if (ca == NULL)
			return -ENOMEM;
		memcpy(ca, v.ca, v.c->ca_len);
	}
	r = cidrs_copy(v.allow, v.c->nallow, &f->conf.allow, &f->conf.nallow);
	if (r < 0) {
		free(ca);
		return r;
	}
	free(f->conf.ca);
	f->conf.ca = ca;
	f->conf.ca_len = v.c->ca_len;
	f->conf.connect_timeout_ms = (long)v.c->connect_timeout_ms;
	f->conf.total_timeout_ms = (long)v.c->total_timeout_ms;
	f->conf.max_response = (size_t)v.c->max_response;
	return 0;
}

static int
msg_addrs(struct fetcher *f, const uint8_t *p, size_t len)
{
	const struct ipc_addrs *a;
	const struct ipc_cidr *list;
	int r;

	r = ipc_dec_addrs(p, len, &a, &list);
	if (r < 0)
		return r;
	return cidrs_copy(list, a->n, &f->conf.own, &f->conf.nown);
}

static int
msg_fetch(struct fetcher *f, uint64_t id, const uint8_t *p, size_t len)
{
	struct ipc_fetch_view v;
	struct xfer *x;
	int r;

	r = ipc_dec_fetch(p, len, &v);
	if (r < 0)
		return r;
	x = xfer_new(f, id, XFER_FETCH);
	if (x == NULL)
		return -ENOMEM;
	x->method = strdup(v.method);
	x->url = strdup(v.url);
	x->nreqhdrs = v.f->nheaders;
	x->reqhdrs = malloc(v.f->headers_len + 1);
	x->reqlen = (size_t)v.f->body_len;
	x->reqbody = x->reqlen > 0 ? malloc(x->reqlen) : NULL;
	if (x->method == NULL || x->url == NULL || x->reqhdrs == NULL ||
	    (x->reqlen > 0 && x->reqbody == NULL)) {
		xfer_free(f, x);
		return -ENOMEM;
	}
	memcpy(x->reqhdrs, v.headers, v.f->headers_len);
	if (x->reqlen > 0)
		f->filling = x;
	else
		xfer_start(f, x);
	return 0;
}

static int
msg_body(struct fetcher *f, uint64_t id, const uint8_t *p, size_t len)
{
	struct xfer *x = f->filling;

	if (x == NULL || x->id != id || len == 0 ||
	    len > x->reqlen - x->reqgot)
		return -EBADMSG;
	memcpy(x->reqbody + x->reqgot, p, len);
	x->reqgot += len;
	if (x->reqgot == x->reqlen)
		xfer_start(f, x);
	return 0;
}

static int
msg_opa(struct fetcher *f, uint64_t id, const uint8_t *p, size_t len)
{
	struct ipc_opa_view v;
	struct xfer *x;
	int r;

	r = ipc_dec_opa(p, len, &v);
	if (r < 0)
		return r;
	x = xfer_new(f, id, XFER_OPA);
	if (x == NULL)
		return -ENOMEM;
	x->url = strdup(v.url);
	x->reqlen = v.o->body_len;
	x->reqbody = malloc(x->reqlen + 1);
	x->timeout_ms = (long)v.o->timeout_ms;
	if (x->url == NULL || x->reqbody == NULL) {
		xfer_free(f, x);
		return -ENOMEM;
	}
	memcpy(x->reqbody, v.body, x->reqlen);
	x->reqbody[x->reqlen] = '\0';
	xfer_start(f, x);
	return 0;
}

static int
msg_probe(struct fetcher *f)
{
	struct ipc_probe_result r;

	sandbox_probe(&r);
	send_msg(f, IPC_PROBE_RESULT, 0, &r, sizeof(r));
	return 0;
}

static int
on_msg(struct fetcher *f, const struct ipc_hdr *h, const uint8_t *p)
{
	if (f->filling != NULL && h->type != IPC_REQ_BODY)
		return -EBADMSG;
	switch (h->type) {
	case IPC_CONFIG:
		return msg_config(f, p, h->len);
	case IPC_ADDRS:
		return msg_addrs(f, p, h->len);
	case IPC_FETCH:
		return msg_fetch(f, h->id, p, h->len);
	case IPC_REQ_BODY:
		return msg_body(f, h->id, p, h->len);
	case IPC_OPA:
		return msg_opa(f, h->id, p, h->len);
	case IPC_PROBE:
		return msg_probe(f);
	case IPC_PROBE_EXEC:
		/* must not return: the filter kills us first */
		log_warnx("execve /bin/true: %s",
		    strerror(-sandbox_probe_exec()));
		_exit(FETCHER_EXIT_EXEC);
	default:
		return -EBADMSG;
	}
}

/* ---- the loop ----------------------------------------------------------- */

static void
on_ipc(struct fetcher *f, struct fev *ev, uint32_t events)
{
	struct ipc_hdr h;
	const uint8_t *p;
	int r;

	(void)ev;
	if (events & EPOLLOUT && ipc_flush(&f->chan) < 0) {
		f->stop = 1;
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	r = ipc_fill(&f->chan, FETCHER_READ_BUDGET);
	if (r < 0) {
		if (r != -EPIPE)
			log_warnx("reading from the parent: %s", strerror(-r));
		f->stop = 1;
		return;
	}
	while (!f->stop && (r = ipc_next(&f->chan, &h, &p)) == 1) {
		r = on_msg(f, &h, p);
		if (r < 0) {
			log_warnx("message type %u from the parent: %s",
			    (unsigned int)h.type, strerror(-r));
			f->stop = 1;
		}
	}
	if (r < 0 && !f->stop) {
		log_warnx("bad message from the parent");
		f->stop = 1;
	}
}

static void
on_timer(struct fetcher *f, struct fev *ev, uint32_t events)
{
	uint64_t exp;

	(void)events;
	if (read(ev->fd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
		return;
	fetch_multi_timer(f);
}

static int
fetcher_setup(struct fetcher *f, struct pep_err *e)
{
	struct stat st;
	int fl;

	if (fstat(FETCHER_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
		return pep_errf(e, EBADF, "fd %d is not the parent's socket "
		    "(pepd starts the fetcher itself)", FETCHER_FD);
	fl = fcntl(FETCHER_FD, F_GETFL);
	fcntl(FETCHER_FD, F_SETFL, fl | O_NONBLOCK);
	fcntl(FETCHER_FD, F_SETFD, FD_CLOEXEC);
	ipc_chan_init(&f->chan, FETCHER_FD);
	f->ipcev.fd = FETCHER_FD;
	f->ipcev.fn = on_ipc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return pep_errf(e, PEP_ELIB, "curl_global_init failed");
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	f->timerev.fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC);
	if (f->epfd < 0 || f->timerev.fd < 0)
		return pep_errf(e, errno, "epoll/timerfd: %s",
		    strerror(errno));
	f->timerev.fn = on_timer;
	if (fev_add(f, &f->ipcev, EPOLLIN) < 0 ||
	    fev_add(f, &f->timerev, EPOLLIN) < 0)
		return pep_errf(e, errno, "epoll: %s", strerror(errno));
	return fetch_multi_init(f, e);
}

static void
fetcher_loop(struct fetcher *f)
{
	struct epoll_event evs[64];
	struct fev *ev;
	uint32_t want = EPOLLIN, w;
	int i, n, r;

	while (!f->stop) {
		n = epoll_wait(f->epfd, evs, 64, -1);
		if (n < 0 && errno != EINTR) {
			log_warn("epoll_wait");
			break;
		}
		for (i = 0; i < n && !f->stop; i++) {
			ev = evs[i].data.ptr;
			if (ev->fn != NULL)
				ev->fn(f, ev, evs[i].events);
		}
		while (f->ngrave > 0)
			free(f->grave[--f->ngrave]);
		r = ipc_flush(&f->chan);
		if (r < 0)
			f->stop = 1;
		w = r == 1 ? EPOLLIN | EPOLLOUT : EPOLLIN;
		if (w != want && fev_mod(f, &f->ipcev, w) == 0)
			want = w;
	}
}

static void
fetcher_free(struct fetcher *f)
{
	while (f->xfers != NULL) {
		fetch_multi_remove(f, f->xfers);
		xfer_free(f, f->xfers);
	}
	fetch_pool_free(f);
	fetch_multi_cleanup(f);
	while (f->ngrave > 0)
		free(f->grave[--f->ngrave]);
	free(f->grave);
	free(f->conf.allow);
	free(f->conf.own);
	free(f->conf.ca);
	ipc_chan_close(&f->chan);
	if (f->timerev.fd >= 0)
		close(f->timerev.fd);
	if (f->epfd >= 0)
		close(f->epfd);
	curl_global_cleanup();
}

int
fetcher_main(int verbose)
{
	struct fetcher f;
	struct ipc_hello hello;
	struct pep_err e = { 0, "" };
	int rc = 1;

	memset(&f, 0, sizeof(f));
	f.epfd = f.timerev.fd = -1;
	ipc_chan_init(&f.chan, -1);
	log_init("pepd[fetcher]", verbose, 0);
	signal(SIGPIPE, SIG_IGN);
	if (fetcher_setup(&f, &e) < 0 || sandbox_enter(&f.sb, &e) < 0) {
		log_warnx("%s", e.msg);
		goto out;
	}
	hello.pid = (uint32_t)getpid();
	hello.landlock_abi = f.sb.landlock_abi;
	hello.seccomp = (uint32_t)f.sb.seccomp;
	send_msg(&f, IPC_HELLO, 0, &hello, sizeof(hello));
	fetcher_loop(&f);
	rc = 0;
out:
	fetcher_free(&f);
	/*
	 * _exit: LeakSanitizer's exit-time check needs ptrace, which the
	 * sandbox forbids; the parent's run checks the shared code.
	 */
	fflush(stderr);
	_exit(rc);
}
