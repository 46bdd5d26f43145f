/*
 * The parent: one epoll loop owning the listeners, the guest connections,
 * the socket to the fetcher, signals (signalfd) and a tick (timerfd).
 * SIGHUP reloads the configuration, SIGUSR1 reopens the audit log,
 * SIGTERM and SIGINT stop accepting and drain within shutdown_grace_ms,
 * SIGCHLD reaps the fetcher. At the end of each event batch: the host's
 * addresses are re-read if netlink said so, the decided lines of the
 * batch are synced and their fetches started, and what is queued for the
 * fetcher is sent.
 *
 * Start-up order: the configuration, the audit log, the listeners and
 * the metrics port (root may be needed for those), /proc/self/exe, then
 * dropping to the configured user, then the fetcher.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../common/log.h"
#include "pepd.h"

#define PEPD_EXIT_SLACK_MS 2000

uint64_t
pepd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
pepd_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int
ev_add(struct pepd *s, struct ev *ev, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, ev->fd, &e) == -1)
		return -errno;
	return 0;
}

int
ev_mod(struct pepd *s, struct ev *ev, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = ev };

	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, ev->fd, &e) == -1)
		return -errno;
	return 0;
}

void
ev_del(struct pepd *s, struct ev *ev)
{
	if (ev->fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, ev->fd, NULL);
}

/* ---- configurations -------------------------------------------------- */

/* ca_file's bytes, for the fetcher (which cannot open it). */
static int
read_ca(const char *path, uint8_t **out, size_t *len, struct pep_err *e)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	uint8_t *b = NULL;
	int fd, r = 0;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pep_errf(e, errno, "ca_file %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)CONFIG_MAX_CA) {
		r = pep_errf(e, EFBIG, "ca_file %s: not a regular file of at "
		    "most %u bytes", path, CONFIG_MAX_CA);
		goto out;
	}
	b = malloc((size_t)st.st_size + 1);
	if (b == NULL) {
		r = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, b + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = pep_errf(e, n < 0 ? errno : EIO, "ca_file %s: "
			    "short read", path);
			goto out;
		}
		got += (size_t)n;
	}
	*out = b;
	*len = got;
	b = NULL;
out:
	free(b);
	close(fd);
	return r;
}

int
pepd_config_load(const struct pepd_opts *o, struct pepd_cfg **cp,
    struct pep_err *e)
{
	struct pepd_config *c = NULL;
	struct pepd_cfg *w;
	int r;

	*cp = NULL;
	if (o->config_path != NULL)
		r = config_load(o->config_path, &c, e);
	else
		r = config_from_env(&c, e);
	if (r < 0)
		return r;
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		config_free(c);
		return pep_errf(e, ENOMEM, "out of memory");
	}
	w->c = c;
	w->refs = 1;
	if (c->ca_file != NULL) {
		r = read_ca(c->ca_file, &w->ca, &w->ca_len, e);
		if (r < 0) {
			pepd_cfg_unref(w);
			return r;
		}
	}
	*cp = w;
	return 0;
}

struct pepd_cfg *
pepd_cfg_ref(struct pepd *s)
{
	s->cfg->refs++;
	return s->cfg;
}

void
pepd_cfg_unref(struct pepd_cfg *c)
{
	if (c == NULL || --c->refs > 0)
		return;
	config_free(c->c);
	free(c->ca);
	free(c);
}

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * A reload is all or nothing: a configuration that does not load, or
 * whose audit log cannot be opened, is refused and the old one kept.
 * Listeners, the metrics port and the user do not change.
 */
static void
pepd_reload(struct pepd *s)
{
	struct pepd_cfg *w = NULL;
	struct pep_err e = { 0, "" };

	if (pepd_config_load(&s->opts, &w, &e) < 0 ||
	    audit_switch(&s->audit, w->c, &e) < 0) {
		log_warnx("reload refused: %s; keeping the previous "
		    "configuration", e.msg);
		pepd_cfg_unref(w);
		return;
	}
	if (!same_str(w->c->user, s->cfg->c->user))
		log_warnx("reload: \"user\" changes at the next start only");
	pepd_cfg_unref(s->cfg);
	s->cfg = w;
	opa_flush(s);
	if (listen_budget(s, &e) < 0)
		log_warnx("reload: %s", e.msg);
	if (fetcher_send_config(s) < 0)
		log_warnx("reload: the fetcher did not get the configuration");
	log_info("configuration reloaded");
}

/* ---- signals and timers ----------------------------------------------- */

static void
pepd_stop(struct pepd *s)
{
	struct conn *c, *next;
	size_t i;
	uint64_t now = pepd_now_ms();

	if (s->stopping)
		return;
	s->stopping = 1;
	s->stop_deadline_ms = now + (uint64_t)s->cfg->c->shutdown_grace_ms;
	s->exit_deadline_ms = s->stop_deadline_ms + PEPD_EXIT_SLACK_MS;
	for (i = 0; i < s->nlisteners; i++)
		listener_close(s, &s->listeners[i]);
	log_info("shutting down: %zu connections, %zu requests in flight",
	    s->nconns + s->nover, s->nreqs);
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		conn_stop_reading(s, c);
	}
}

static void
on_signal(struct pepd *s, struct ev *ev, uint32_t events)
{
	struct signalfd_siginfo si;
	ssize_t n;

	(void)events;
	for (;;) {
		n = read(ev->fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			return;
		switch (si.ssi_signo) {
		case SIGHUP:
			pepd_reload(s);
			break;
		case SIGUSR1:
			if (audit_reopen(&s->audit) < 0)
				log_warn("audit reopen %s", s->audit.path);
			break;
		case SIGCHLD:
			fetcher_reap(s);
			break;
		default:
			pepd_stop(s);
			break;
		}
	}
}

static void
on_tick(struct pepd *s, struct ev *ev, uint32_t events)
{
	uint64_t exp, now = pepd_now_ms();

	(void)events;
	if (read(ev->fd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
		log_warn("timerfd");
	if (s->accept_resume_ms != 0 && now >= s->accept_resume_ms) {
		s->accept_resume_ms = 0;
		if (!s->stopping)
			listeners_pause(s, 0);
	}
	conn_tick(s, now);
	audit_tick(&s->audit, now);
	if (s->stopping && !s->aborted && now >= s->stop_deadline_ms) {
		s->aborted = 1;
		fetcher_abort_all(s);
	}
}

static int
signals_open(struct pepd *s)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	s->sigev.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sigev.fd == -1)
		return -errno;
	s->sigev.fn = on_signal;
	return ev_add(s, &s->sigev, EPOLLIN);
}

static int
timers_open(struct pepd *s)
{
	struct itimerspec it = { 0 };

	s->tickev.fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->tickev.fd == -1)
		return -errno;
	s->tickev.fn = on_tick;
	it.it_interval.tv_nsec = PEPD_TICK_MS * 1000000L;
	it.it_value = it.it_interval;
	if (timerfd_settime(s->tickev.fd, 0, &it, NULL) == -1)
		return -errno;
	return ev_add(s, &s->tickev, EPOLLIN);
}

static int
listeners_open(struct pepd *s, struct pep_err *e)
{
	const struct pepd_config *c = s->cfg->c;
	const char *const *specs = s->opts.listen;
	size_t i, n = s->opts.nlisten;
	int r;

	if (n == 0) {
		specs = (const char *const *)c->listen;
		n = c->nlisten;
	}
	if (n == 0)
		return pep_errf(e, PEP_EUSAGE, "no listener: use --listen, "
		    "--port or \"listen\" in the configuration");
	s->listeners = calloc(n, sizeof(*s->listeners));
	if (s->listeners == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		r = listener_open(s, specs[i], &s->listeners[i], e);
		if (r < 0)
			return r;
		s->nlisteners++;
	}
	return 0;
}

static void
id_prefix_init(struct pepd *s)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	snprintf(s->id_prefix, sizeof(s->id_prefix), "%08x", v);
}

/* What needs privilege: opened before privdrop(). */
static int
pepd_open_privileged(struct pepd *s, struct pep_err *e)
{
	const struct pepd_config *c = s->cfg->c;
	int r;

	r = audit_open(&s->audit, c, e);
	if (r == 0)
		r = listen_budget(s, e);
	if (r == 0 && c->metrics != NULL)
		r = metrics_open(s, c->metrics, e);
	if (r == 0)
		r = listeners_open(s, e);
	return r;
}

static int
pepd_setup(struct pepd *s, struct pep_err *e)
{
	int r;

	r = pepd_config_load(&s->opts, &s->cfg, e);
	if (r < 0)
		return r;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd == -1)
		return pep_errf(e, errno, "epoll_create1: %s",
		    strerror(errno));
	r = signals_open(s);
	if (r == 0)
		r = timers_open(s);
	if (r < 0)
		return pep_errf(e, r, "signals/timers: %s", strerror(-r));
	if (!s->opts.check_sandbox) {
		r = pepd_open_privileged(s, e);
		if (r == 0)
			r = opa_init(s, e);
		if (r == 0)
			r = ifaddr_open(s, e);
		if (r < 0)
			return r;
	}
	r = fetcher_prepare(s, e);
	if (r == 0)
		r = privdrop(s->cfg->c, e);
	if (r == 0)
		r = fetcher_start(s, e);
	return r;
}

int
pepd_new(const struct pepd_opts *o, struct pepd **sp, struct pep_err *e)
{
	struct pepd *s;
	int r;

	*sp = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	s->opts = *o;
	if (s->opts.frame_timeout_ms <= 0)
		s->opts.frame_timeout_ms = 10000;
	s->epfd = s->sigev.fd = s->tickev.fd = -1;
	s->reserve_fd = -1;
	s->audit.fd = -1;
	s->metrics.lev.fd = -1;
	s->fc.ev.fd = -1;
	s->fc.exe_fd = -1;
	s->fc.chan.fd = -1;
	s->ifw.ev.fd = -1;
	id_prefix_init(s);
	r = pepd_setup(s, e);
	if (r < 0) {
		pepd_free(s);
		return r;
	}
	*sp = s;
	return 0;
}

void
pepd_defer_free(struct pepd *s, struct ev *ev, void *obj)
{
	void **g;
	size_t cap;

	ev->fn = NULL;
	if (s->ngrave == s->capgrave) {
		cap = s->capgrave == 0 ? 64 : s->capgrave * 2;
		g = realloc(s->grave, cap * sizeof(*g));
		if (g == NULL) {
			log_warnx("out of memory: leaking a closed object");
			return;
		}
		s->grave = g;
		s->capgrave = cap;
	}
	s->grave[s->ngrave++] = obj;
}

static void
pepd_bury(struct pepd *s)
{
	while (s->ngrave > 0)
		free(s->grave[--s->ngrave]);
}

/* ---- the loop --------------------------------------------------------- */

static int
pepd_finished(struct pepd *s)
{
	uint64_t now;

	if (!s->stopping)
		return 0;
	if (s->nconns + s->nover == 0 && s->nreqs == 0)
		return 1;
	now = pepd_now_ms();
	return now >= s->exit_deadline_ms;
}

/* The end of an event batch. */
static void
pepd_flush(struct pepd *s)
{
	ifaddr_flush(s);
	preq_sync_flush(s);
	fetcher_flush(s, pepd_now_ms());
	pepd_bury(s);
}

int
pepd_run(struct pepd *s)
{
	struct epoll_event evs[64];
	struct ev *ev;
	int i, n;

	log_info("pepd %s ready", PEPD_VERSION);
	while (!pepd_finished(s)) {
		n = epoll_wait(s->epfd, evs, 64, PEPD_TICK_MS);
		if (n == -1 && errno != EINTR)
			return -errno;
		for (i = 0; i < n; i++) {
			ev = evs[i].data.ptr;
			if (ev->fn != NULL)
				ev->fn(s, ev, evs[i].events);
		}
		pepd_flush(s);
	}
	if (s->nreqs != 0)
		log_warnx("exit with %zu requests unanswered", s->nreqs);
	log_info("stopped");
	return 0;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void
pepd_free(struct pepd *s)
{
	struct client *cl;
	size_t i;

	if (s == NULL)
		return;
	while (s->conns != NULL)
		conn_close(s, s->conns);
	for (i = 0; i < s->nlisteners; i++)
		listener_close(s, &s->listeners[i]);
	free(s->listeners);
	fetcher_abort_all(s);
	fetcher_stop(s);
	opa_free(s);
	metrics_close(s);
	ifaddr_close(s);
	audit_close(&s->audit);
	close_fd(&s->sigev.fd);
	close_fd(&s->tickev.fd);
	close_fd(&s->reserve_fd);
	close_fd(&s->epfd);
	pepd_bury(s);
	free(s->grave);
	while ((cl = s->clients) != NULL) {
		s->clients = cl->next;
		free(cl);
	}
	pepd_cfg_unref(s->cfg);
	free(s);
}
