/*
 * The parent's side of the fetcher (pepd.h, "privsep.c"): starting it
 * (fork, then exec of pepd itself as "pepd --fetcher" with the socket as
 * fd 3 and every other descriptor closed), the fetches and queries in
 * flight (slots: an id names a slot and its generation, so an answer
 * for a slot that was given up is recognised and dropped), the one switch
 * over the fetcher's messages (on_msg), and recovery: when the fetcher
 * dies (SIGCHLD) or breaks the protocol (then it is killed), every fetch
 * it had is answered upstream_error and every query policy_unavailable,
 * each audited, and a new fetcher is started (after 1 s when it crashed
 * five times in ten seconds).
 *
 * Who holds what: the parent has the listeners, the guest connections,
 * the audit log, the metrics listener, the netlink socket, its epoll,
 * signalfd and timerfd, /proc/self/exe (for the re-exec) and its end of
 * the socketpair. The fetcher has its end of the socketpair, stderr,
 * /dev/null as stdin and stdout, and what it opens itself: its epoll, a
 * timerfd and libcurl's sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../common/log.h"
#include "pepd.h"

#define FETCHER_SNDBUF (1u << 20)
#define FETCHER_READ_BUDGET (4u << 20)
#define FETCHER_HELLO_MS 10000
#define FETCHER_STOP_MS 1000
#define CRASH_WINDOW_MS 10000
#define CRASH_MAX 5
#define CRASH_BACKOFF_MS 1000

extern char **environ;

static void on_fetcher(struct pepd *s, struct ev *ev, uint32_t events);

/* ---- slots ---------------------------------------------------------- */

static uint64_t
slot_alloc(struct fetcher_ctl *fc, uint8_t kind, void *ptr)
{
	struct fslot *sl;
	uint32_t i, n;

	if (fc->free_head == UINT32_MAX || fc->nslots == 0) {
		n = fc->nslots == 0 ? 256 : fc->nslots * 2;
		sl = realloc(fc->slots, n * sizeof(*sl));
		if (sl == NULL)
			return 0;
		for (i = fc->nslots; i < n; i++) {
			sl[i].gen = 0;
			sl[i].kind = FSLOT_FREE;
			sl[i].ptr = NULL;
			sl[i].next_free = i + 1 < n ? i + 1 : UINT32_MAX;
		}
		fc->free_head = fc->nslots;
		fc->slots = sl;
		fc->nslots = n;
	}
	i = fc->free_head;
	sl = &fc->slots[i];
	fc->free_head = sl->next_free;
	sl->gen++;
	if (sl->gen == 0)
		sl->gen = 1;
	sl->kind = kind;
	sl->ptr = ptr;
	fc->busy++;
	return (uint64_t)sl->gen << 32 | i;
}

/* The slot id names, if it is still in use; else NULL. */
static struct fslot *
slot_get(struct fetcher_ctl *fc, uint64_t id)
{
	uint32_t i = (uint32_t)id, gen = (uint32_t)(id >> 32);

	if (i >= fc->nslots || fc->slots[i].gen != gen ||
	    fc->slots[i].kind == FSLOT_FREE)
		return NULL;
	return &fc->slots[i];
}

static void
slot_free(struct fetcher_ctl *fc, struct fslot *sl)
{
	sl->kind = FSLOT_FREE;
	sl->ptr = NULL;
	sl->next_free = fc->free_head;
	fc->free_head = (uint32_t)(sl - fc->slots);
	fc->busy--;
}

void
fetcher_slot_drop(struct pepd *s, uint64_t id)
{
	struct fslot *sl = slot_get(&s->fc, id);

	if (sl != NULL)
		slot_free(&s->fc, sl);
}

/* ---- starting ------------------------------------------------------- */

int
fetcher_prepare(struct pepd *s, struct pep_err *e)
{
	s->fc.exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (s->fc.exe_fd < 0)
		return pep_errf(e, errno, "/proc/self/exe: %s (the fetcher "
		    "is pepd itself, started again)", strerror(errno));
	s->fc.free_head = UINT32_MAX;
	return 0;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static _Noreturn void
child_exec(int exe_fd, int sock, int verbose)
{
	char *argv[] = { "pepd", "--fetcher", NULL, NULL };
	sigset_t none;
	int null;

	if (verbose > 0)
		argv[2] = verbose > 1 ? "-vv" : "-v";
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
	}
	if (dup2(sock, 3) < 0)
		_exit(126);
	/* everything else goes: exe_fd is close-on-exec itself */
	if (exe_fd > 4)
		syscall(SYS_close_range, 4, exe_fd - 1, 0);
	syscall(SYS_close_range, exe_fd + 1, ~0U, 0);
	syscall(SYS_execveat, exe_fd, "", argv, environ, AT_EMPTY_PATH);
	_exit(127);
}

int
fetcher_spawn(struct pepd *s, struct pep_err *e)
{
	struct fetcher_ctl *fc = &s->fc;
	int sv[2], sz = FETCHER_SNDBUF;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return pep_errf(e, errno, "socketpair: %s", strerror(errno));
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return pep_errf(e, errno, "fork: %s", strerror(errno));
	}
	if (pid == 0)
		child_exec(fc->exe_fd, sv[1], s->opts.verbose);
	close(sv[1]);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	ipc_chan_init(&fc->chan, sv[0]);
	fc->ev.fd = sv[0];
	fc->ev.fn = on_fetcher;
	fc->pid = pid;
	fc->up = 0;
	fc->filling = 0;
	fc->fill_left = 0;
	fc->events = EPOLLIN;
	if (ev_add(s, &fc->ev, EPOLLIN) < 0 || fetcher_send_config(s) < 0 ||
	    fetcher_send_addrs(s) < 0)
		return pep_errf(e, EIO, "cannot talk to the fetcher");
	return 0;
}

int
fetcher_send_config(struct pepd *s)
{
	const struct pepd_config *c = s->cfg->c;
	const struct policy *p = c->policy;
	struct ipc_config m;
	struct ipc_cidr *allow = NULL;
	struct iovec iov[3];
	size_t i, n = p != NULL ? p->nallow_private : 0;
	int r;

	if (s->fc.ev.fd < 0)
		return 0;	/* the next fetcher gets it */
	if (n > 0) {
		allow = calloc(n, sizeof(*allow));
		if (allow == NULL)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		ipc_cidr_put(&allow[i], &p->allow_private[i]);
	memset(&m, 0, sizeof(m));
	m.connect_timeout_ms = (uint32_t)c->limits.connect_timeout_ms;
	m.total_timeout_ms = (uint32_t)c->limits.total_timeout_ms;
	m.max_response = c->limits.max_response;
	m.nallow = (uint32_t)n;
	m.ca_len = (uint32_t)s->cfg->ca_len;
	iov[0].iov_base = &m;
	iov[0].iov_len = sizeof(m);
	iov[1].iov_base = allow;
	iov[1].iov_len = n * sizeof(*allow);
	iov[2].iov_base = s->cfg->ca;
	iov[2].iov_len = s->cfg->ca_len;
	r = ipc_put(&s->fc.chan, IPC_CONFIG, 0, iov, 3);
	free(allow);
	return r;
}

int
fetcher_send_addrs(struct pepd *s)
{
	struct ipc_addrs m;
	struct ipc_cidr *list = NULL;
	struct iovec iov[2];
	size_t i, n = s->ifw.n < IPC_ADDRS_MAX ? s->ifw.n : IPC_ADDRS_MAX;
	int r;

	if (s->fc.ev.fd < 0)
		return 0;
	if (n > 0) {
		list = calloc(n, sizeof(*list));
		if (list == NULL)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		ipc_cidr_put(&list[i], &s->ifw.list[i]);
	m.n = (uint32_t)n;
	iov[0].iov_base = &m;
	iov[0].iov_len = sizeof(m);
	iov[1].iov_base = list;
	iov[1].iov_len = n * sizeof(*list);
	r = ipc_put(&s->fc.chan, IPC_ADDRS, 0, iov, 2);
	free(list);
	return r;
}

/* ---- asking --------------------------------------------------------- */

/* name NUL value NUL for each header: the length, or the bytes. */
static size_t
pairs_len(const struct pep_request *r)
{
	size_t i, n = 0;

	for (i = 0; i < r->nheaders; i++)
		n += strlen(r->headers[i].name) +
		    strlen(r->headers[i].value) + 2;
	return n;
}

static void
pairs_put(const struct pep_request *r, char *out)
{
	size_t i, n;

	for (i = 0; i < r->nheaders; i++) {
		n = strlen(r->headers[i].name) + 1;
		memcpy(out, r->headers[i].name, n);
		out += n;
		n = strlen(r->headers[i].value) + 1;
		memcpy(out, r->headers[i].value, n);
		out += n;
	}
}

int
fetcher_fetch(struct pepd *s, struct preq *q)
{
	struct fetcher_ctl *fc = &s->fc;
	struct ipc_fetch m;
	struct iovec iov[4];
	size_t hl, off, n;
	char *pairs;
	uint64_t id;
	int r;

	if (fc->ev.fd < 0)
		return -EAGAIN;
	hl = pairs_len(&q->r);
	pairs = malloc(hl + 1);
	if (pairs == NULL)
		return -ENOMEM;
	pairs_put(&q->r, pairs);
	id = slot_alloc(fc, FSLOT_FETCH, q);
	if (id == 0) {
		free(pairs);
		return -ENOMEM;
	}
	memset(&m, 0, sizeof(m));
	m.method_len = (uint32_t)strlen(q->r.method) + 1;
	m.url_len = (uint32_t)strlen(q->u.url) + 1;
	m.nheaders = (uint32_t)q->r.nheaders;
	m.headers_len = (uint32_t)hl;
	m.body_len = q->r.body_len;
	iov[0].iov_base = &m;
	iov[0].iov_len = sizeof(m);
	iov[1].iov_base = q->r.method;
	iov[1].iov_len = m.method_len;
	iov[2].iov_base = q->u.url;
	iov[2].iov_len = m.url_len;
	iov[3].iov_base = pairs;
	iov[3].iov_len = hl;
	r = ipc_put(&fc->chan, IPC_FETCH, id, iov, 4);
	free(pairs);
	for (off = 0; r == 0 && off < q->r.body_len; off += n) {
		n = q->r.body_len - off < IPC_CHUNK ? q->r.body_len - off :
		    IPC_CHUNK;
		iov[0].iov_base = q->r.body + off;
		iov[0].iov_len = n;
		r = ipc_put(&fc->chan, IPC_REQ_BODY, id, iov, 1);
	}
	if (r < 0) {
		/* a half-queued fetch would break the stream: start over */
		log_warnx("%s: cannot queue the fetch: %s", q->id,
		    strerror(-r));
		fetcher_slot_drop(s, id);
		kill(fc->pid, SIGKILL);
		return r;
	}
	q->slot = id;
	return 0;
}

int
fetcher_opa(struct pepd *s, void *ptr, const char *url, const char *body,
    size_t blen, long timeout_ms)
{
	struct fetcher_ctl *fc = &s->fc;
	struct ipc_opa m;
	struct iovec iov[3];
	uint64_t id;
	int r;

	if (fc->ev.fd < 0)
		return -EAGAIN;
	if (blen > IPC_MAX - sizeof(m) - strlen(url) - 1)
		return -EMSGSIZE;
	id = slot_alloc(fc, FSLOT_OPA, ptr);
	if (id == 0)
		return -ENOMEM;
	m.timeout_ms = (uint32_t)timeout_ms;
	m.url_len = (uint32_t)strlen(url) + 1;
	m.body_len = (uint32_t)blen;
	iov[0].iov_base = &m;
	iov[0].iov_len = sizeof(m);
	iov[1].iov_base = (void *)url;
	iov[1].iov_len = m.url_len;
	iov[2].iov_base = (void *)body;
	iov[2].iov_len = blen;
	r = ipc_put(&fc->chan, IPC_OPA, id, iov, 3);
	if (r < 0)
		fetcher_slot_drop(s, id);
	return r;
}

/* ---- the fetcher's messages ---------------------------------------- */

/* The largest response frame the configuration allows, with margin. */
static size_t
frame_max(const struct pepd *s)
{
	size_t body = s->cfg->c->limits.max_response;

	return (body / 3 + 1) * 4 + (8u << 20);
}

static int
msg_result(struct pepd *s, uint64_t id, const uint8_t *p, size_t len)
{
	struct fslot *sl = slot_get(&s->fc, id);
	struct ipc_result r;
	struct preq *q;

	if (ipc_dec_result(p, len, &r) < 0 || r.frame_len > frame_max(s))
		return -EBADMSG;
	s->fc.filling = r.frame_len > 0 ? id : 0;
	s->fc.fill_left = r.frame_len;
	if (sl == NULL)
		return 0;	/* given up (the shutdown): skip its frame */
	if (sl->kind != FSLOT_FETCH)
		return -EBADMSG;
	q = sl->ptr;
	q->code = (enum pep_code)r.code;
	q->status = (int)r.status;
	q->bytes_in = r.bytes_in;
	q->bytes_out = r.bytes_out;
	q->dns_us = r.dns_us;
	q->connect_us = r.connect_us;
	memcpy(q->ip, r.ip, sizeof(q->ip));
	preq_msg(q, "%s", r.msg);
	if (r.frame_len == 0) {
		slot_free(&s->fc, sl);
		q->slot = 0;
		preq_fetched(s, q);
		return 0;
	}
	q->resp.data = malloc(r.frame_len);
	if (q->resp.data == NULL)
		return -ENOMEM;
	q->resp.len = r.frame_len;
	q->resp_got = 0;
	return 0;
}

static int
msg_resp_body(struct pepd *s, uint64_t id, const uint8_t *p, size_t len)
{
	struct fslot *sl;
	struct preq *q;
	size_t plen;

	if (s->fc.filling != id || len == 0 || len > s->fc.fill_left)
		return -EBADMSG;
	s->fc.fill_left -= len;
	if (s->fc.fill_left == 0)
		s->fc.filling = 0;
	sl = slot_get(&s->fc, id);
	if (sl == NULL)
		return 0;	/* given up: skipped */
	q = sl->ptr;
	memcpy(q->resp.data + q->resp_got, p, len);
	q->resp_got += len;
	if (q->resp_got < q->resp.len)
		return 0;
	if (frame_check(q->resp.data, q->resp.len, q->resp.len, &plen) !=
	    (ssize_t)q->resp.len)
		return -EBADMSG;	/* the frame's own length lies */
	slot_free(&s->fc, sl);
	q->slot = 0;
	preq_fetched(s, q);
	return 0;
}

static int
msg_opa_result(struct pepd *s, uint64_t id, const uint8_t *p, size_t len)
{
	struct fslot *sl = slot_get(&s->fc, id);
	struct ipc_opa_result r;
	const uint8_t *answer;
	void *ptr;

	if (ipc_dec_opa_result(p, len, &r, &answer) < 0)
		return -EBADMSG;
	if (sl == NULL)
		return 0;
	if (sl->kind != FSLOT_OPA)
		return -EBADMSG;
	ptr = sl->ptr;
	slot_free(&s->fc, sl);
	opa_answer(s, ptr, &r, answer, 0);
	return 0;
}

static int
msg_hello(struct pepd *s, const uint8_t *p, size_t len)
{
	struct fetcher_ctl *fc = &s->fc;

	if (fc->up || ipc_dec_hello(p, len, &fc->hello) < 0)
		return -EBADMSG;
	fc->up = 1;
	if (fc->hello.landlock_abi < 1)
		log_warnx("fetcher %d: seccomp filter in force, landlock "
		    "not available", (int)fc->pid);
	else
		log_info("fetcher %d: seccomp filter and landlock (ABI %d) "
		    "in force", (int)fc->pid, (int)fc->hello.landlock_abi);
	return 0;
}

static int
on_msg(struct pepd *s, const struct ipc_hdr *h, const uint8_t *p)
{
	if (s->fc.filling != 0 && h->type != IPC_RESP_BODY)
		return -EBADMSG;
	if (!s->fc.up && h->type != IPC_HELLO)
		return -EBADMSG;
	switch (h->type) {
	case IPC_HELLO:
		return msg_hello(s, p, h->len);
	case IPC_RESULT:
		return msg_result(s, h->id, p, h->len);
	case IPC_RESP_BODY:
		return msg_resp_body(s, h->id, p, h->len);
	case IPC_OPA_RESULT:
		return msg_opa_result(s, h->id, p, h->len);
	case IPC_PROBE_RESULT:
		if (!s->fc.probing ||
		    ipc_dec_probe_result(p, h->len, &s->fc.probe) < 0)
			return -EBADMSG;
		s->fc.probe_done = 1;
		return 0;
	default:
		return -EBADMSG;
	}
}

/* Close our end; the fetcher is dead or being killed. */
static void
chan_close(struct pepd *s)
{
	if (s->fc.ev.fd < 0)
		return;
	ev_del(s, &s->fc.ev);
	ipc_chan_close(&s->fc.chan);
	s->fc.ev.fd = -1;
	s->fc.filling = 0;
	s->fc.fill_left = 0;
}

/* Read and handle what the fetcher sent; < 0 when it must go. */
static int
fetcher_read(struct pepd *s)
{
	struct ipc_hdr h;
	const uint8_t *p;
	int r, rr;

	rr = ipc_fill(&s->fc.chan, FETCHER_READ_BUDGET);
	while ((r = ipc_next(&s->fc.chan, &h, &p)) == 1) {
		r = on_msg(s, &h, p);
		if (r < 0) {
			log_warnx("fetcher %d: bad message (type %u): %s",
			    (int)s->fc.pid, (unsigned int)h.type,
			    strerror(-r));
			return r;
		}
	}
	if (r < 0) {
		log_warnx("fetcher %d: bad message header", (int)s->fc.pid);
		return r;
	}
	return rr;
}

static void
on_fetcher(struct pepd *s, struct ev *ev, uint32_t events)
{
	int r;

	(void)ev;
	if (events & EPOLLOUT)
		ipc_flush(&s->fc.chan);
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	r = fetcher_read(s);
	if (r == 0)
		return;
	/* EOF or a broken protocol: it goes; SIGCHLD does the rest */
	if (r != -EPIPE && s->fc.pid > 0)
		kill(s->fc.pid, SIGKILL);
	chan_close(s);
}

/* ---- ending --------------------------------------------------------- */

/* Answer every fetch and query out: code and message (or the shutdown). */
static void
fail_all(struct pepd *s, enum pep_code code, const char *msg)
{
	struct fetcher_ctl *fc = &s->fc;
	struct ipc_opa_result r;
	struct fslot *sl;
	struct preq *q;
	uint32_t i;

	memset(&r, 0, sizeof(r));
	r.rc = -1;
	snprintf(r.msg, sizeof(r.msg), "%s", msg);
	for (i = 0; i < fc->nslots; i++) {
		sl = &fc->slots[i];
		if (sl->kind == FSLOT_FREE)
			continue;
		if (sl->kind == FSLOT_OPA) {
			void *ptr = sl->ptr;

			slot_free(fc, sl);
			opa_answer(s, ptr, &r, NULL, code == PEP_OVERLOADED);
			continue;
		}
		q = sl->ptr;
		slot_free(fc, sl);
		q->slot = 0;
		free(q->resp.data);
		q->resp.data = NULL;
		q->resp.len = q->resp_got = 0;
		q->code = code;
		q->status = 0;
		preq_msg(q, "%s", msg);
		preq_fetched(s, q);
	}
	/* a frame still arriving is skipped (fc->filling stays) */
}

static void
describe_status(int st, char *out, size_t n)
{
	if (WIFSIGNALED(st))
		snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(st),
		    strsignal(WTERMSIG(st)));
	else
		snprintf(out, n, "exited with status %d", WEXITSTATUS(st));
}

/* The fetcher is gone (status st): recover. */
static void
fetcher_gone(struct pepd *s, int st)
{
	struct fetcher_ctl *fc = &s->fc;
	uint64_t now = pepd_now_ms();
	char how[96], msg[160];

	describe_status(st, how, sizeof(how));
	if (fc->probing) {
		fc->probe_status = st;
		fc->probe_done |= 2;
	} else if (!s->stopping) {
		log_warnx("fetcher %d %s: its fetches are answered "
		    "upstream_error; starting a new one", (int)fc->pid, how);
	}
	/* what it finished before it went is still answered */
	if (fc->ev.fd >= 0 && fetcher_read(s) == -EBADMSG)
		log_warnx("fetcher %d: its last messages are dropped",
		    (int)fc->pid);
	chan_close(s);
	snprintf(msg, sizeof(msg), "the fetcher process %s", how);
	fail_all(s, PEP_UPSTREAM_ERROR, msg);
	fc->pid = 0;
	fc->up = 0;
	if (s->stopping || fc->probing)
		return;
	if (now - fc->crash_window_ms > CRASH_WINDOW_MS) {
		fc->crash_window_ms = now;
		fc->crashes = 0;
	}
	fc->crashes++;
	fc->respawn_ms = fc->crashes >= CRASH_MAX ? now + CRASH_BACKOFF_MS :
	    now;
	if (fc->crashes >= CRASH_MAX)
		log_warnx("the fetcher crashed %u times in %d s: waiting %d "
		    "ms", fc->crashes, CRASH_WINDOW_MS / 1000,
		    CRASH_BACKOFF_MS);
}

void
fetcher_reap(struct pepd *s)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		if (pid == s->fc.pid)
			fetcher_gone(s, st);
}

void
fetcher_flush(struct pepd *s, uint64_t now)
{
	struct fetcher_ctl *fc = &s->fc;
	struct pep_err e = { 0, "" };
	uint32_t want;
	int r;

	if (fc->pid == 0 && fc->respawn_ms != 0 && now >= fc->respawn_ms &&
	    !s->stopping) {
		fc->respawn_ms = 0;
		if (fetcher_spawn(s, &e) < 0) {
			log_warnx("fetcher: %s; trying again", e.msg);
			chan_close(s);
			fc->respawn_ms = now + CRASH_BACKOFF_MS;
		} else {
			fc->restarts++;
			log_info("fetcher %d started", (int)fc->pid);
		}
	}
	if (fc->ev.fd < 0)
		return;
	r = ipc_flush(&fc->chan);
	if (r < 0) {
		kill(fc->pid, SIGKILL);
		chan_close(s);
		return;
	}
	want = r == 1 ? EPOLLIN | EPOLLOUT : EPOLLIN;
	if (want != fc->events && ev_mod(s, &fc->ev, want) == 0)
		fc->events = want;
}

void
fetcher_abort_all(struct pepd *s)
{
	fail_all(s, PEP_OVERLOADED, "pepd is shutting down");
}

/* waitpid with a deadline; 1 reaped (st set), 0 not yet. */
static int
wait_for(pid_t pid, int ms, int *st)
{
	int i;

	for (i = 0; i <= ms / 10; i++) {
		if (waitpid(pid, st, WNOHANG) == pid)
			return 1;
		usleep(10000);
	}
	return 0;
}

void
fetcher_stop(struct pepd *s)
{
	struct fetcher_ctl *fc = &s->fc;
	int st;

	chan_close(s);
	if (fc->pid > 0 && !wait_for(fc->pid, FETCHER_STOP_MS, &st)) {
		kill(fc->pid, SIGKILL);
		waitpid(fc->pid, &st, 0);
	}
	fc->pid = 0;
	free(fc->slots);
	fc->slots = NULL;
	fc->nslots = 0;
	if (fc->exe_fd >= 0)
		close(fc->exe_fd);
	fc->exe_fd = -1;
}

/* ---- starting, synchronously (start-up, --check-sandbox) ------------ */

/* Run the fetcher's side of the protocol until done() or ms pass. */
static int
pump(struct pepd *s, int ms, int (*done)(struct pepd *s))
{
	struct pollfd pfd;
	uint64_t end = pepd_now_ms() + (uint64_t)ms;
	int st;

	while (!done(s)) {
		if (s->fc.ev.fd < 0) {
			if (s->fc.pid > 0 && waitpid(s->fc.pid, &st, 0) ==
			    s->fc.pid)
				fetcher_gone(s, st);
			return done(s) ? 0 : -EPIPE;
		}
		if (pepd_now_ms() >= end)
			return -ETIMEDOUT;
		ipc_flush(&s->fc.chan);
		pfd.fd = s->fc.ev.fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) > 0)
			on_fetcher(s, &s->fc.ev, EPOLLIN);
	}
	return 0;
}

static int
is_up(struct pepd *s)
{
	return s->fc.up;
}

int
fetcher_start(struct pepd *s, struct pep_err *e)
{
	int r;

	r = fetcher_spawn(s, e);
	if (r < 0)
		return r;
	r = pump(s, FETCHER_HELLO_MS, is_up);
	if (r < 0)
		return pep_errf(e, r, "the fetcher did not start (%s; see its "
		    "messages above)", strerror(-r));
	return 0;
}

static int
probe_answered(struct pepd *s)
{
	return s->fc.probe_done & 1;
}

static int
probe_died(struct pepd *s)
{
	return s->fc.probe_done & 2;
}

static void
print_status_line(pid_t pid)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Uid:", 4) == 0 ||
		    strncmp(line, "Gid:", 4) == 0 ||
		    strncmp(line, "NoNewPrivs:", 11) == 0 ||
		    strncmp(line, "Seccomp:", 8) == 0 ||
		    strncmp(line, "CapEff:", 7) == 0)
			printf("fetcher %d %s", (int)pid, line);
	fclose(f);
}

int
pepd_check_sandbox(struct pepd *s)
{
	struct fetcher_ctl *fc = &s->fc;
	char how[96];
	int i, bad = 0, r;

	fc->probing = 1;
	print_status_line(fc->pid);
	if (fc->hello.landlock_abi >= 1)
		printf("landlock: ABI %d\n", (int)fc->hello.landlock_abi);
	else
		printf("landlock: not in force\n");
	printf("seccomp: %s\n", fc->hello.seccomp ? "filter in force" :
	    "none");
	bad |= fc->hello.landlock_abi < 1 || !fc->hello.seccomp;
	r = ipc_put(&fc->chan, IPC_PROBE, 0, NULL, 0);
	if (r == 0)
		r = pump(s, FETCHER_HELLO_MS, probe_answered);
	if (r < 0) {
		printf("probe: no answer (%s)\n", strerror(-r));
		return 1;
	}
	for (i = 0; i < IPC_PROBES; i++) {
		if (fc->probe.err[i] == 0)
			printf("%s: ALLOWED\n", ipc_probe_names[i]);
		else
			printf("%s: denied (%s)\n", ipc_probe_names[i],
			    strerror(fc->probe.err[i]));
		bad |= fc->probe.err[i] == 0;
	}
	r = ipc_put(&fc->chan, IPC_PROBE_EXEC, 0, NULL, 0);
	if (r == 0)
		r = pump(s, FETCHER_HELLO_MS, probe_died);
	if (r < 0) {
		printf("execve /bin/true: no answer (%s)\n", strerror(-r));
		return 1;
	}
	describe_status(fc->probe_status, how, sizeof(how));
	if (WIFSIGNALED(fc->probe_status) &&
	    WTERMSIG(fc->probe_status) == SIGSYS) {
		printf("execve /bin/true: denied (the fetcher was %s)\n", how);
	} else {
		printf("execve /bin/true: %s (the fetcher %s)\n",
		    WIFEXITED(fc->probe_status) &&
		    WEXITSTATUS(fc->probe_status) == 0 ? "ALLOWED" : "failed",
		    how);
		bad = 1;
	}
	printf("%s\n", bad ? "sandbox NOT in force" : "sandbox OK");
	return bad ? 1 : 0;
}
