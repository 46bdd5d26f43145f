/*
 * The audit log: JSON lines (pepd(8), AUDIT LOG). An allowed request
 * gets a "decided" line before it is fetched, and every request an
 * "answered" line before its answer goes out. The parent is the only
 * process with the file open.
 *
 * Whole lines or nothing: a line is built in a buffer first and written
 * with one write(2) on an O_APPEND descriptor; a short write (a full file
 * system) is cut back with ftruncate, so a reader never sees half a line.
 * When a line cannot be written the log is "broken": requests are refused
 * audit_unavailable (their answered lines wait in a bounded backlog),
 * pepd says so in its log and metrics, and retries with a growing back-off
 * (100 ms to 2 s), reopening the file if need be; once the backlog is
 * written the log works again. fdatasync follows the fsync policy.
 * SIGUSR1 reopens the file (after logrotate's mv).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "pepd.h"

#define AUDIT_BACKLOG_MAX (1u << 20)	/* bytes of lines kept */
#define AUDIT_RETRY_MIN_MS 100
#define AUDIT_RETRY_MAX_MS 2000

struct audit_line {
	struct audit_line *next;
	size_t len;
	char data[];
};

static int
audit_fd_open(const char *path)
{
	int fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	return fd == -1 ? -errno : fd;
}

int
audit_open(struct audit *a, const struct pepd_config *c, struct pep_err *e)
{
	int fd;

	a->fd = -1;
	a->fsync = c->audit_fsync;
	a->interval_ms = c->audit_fsync_interval_ms;
	if (c->audit_path == NULL)
		return pep_errf(e, EINVAL, "no audit log: set audit.path "
		    "(pepd serves no request unaudited)");
	fd = audit_fd_open(c->audit_path);
	if (fd < 0)
		return pep_errf(e, fd, "audit log %s: %s", c->audit_path,
		    strerror(-fd));
	a->path = strdup(c->audit_path);
	if (a->path == NULL) {
		close(fd);
		return pep_errf(e, ENOMEM, "out of memory");
	}
	a->fd = fd;
	return 0;
}

static void
audit_fd_close(struct audit *a)
{
	if (a->fd >= 0) {
		if (a->dirty)
			fdatasync(a->fd);
		close(a->fd);
	}
	a->fd = -1;
	a->dirty = 0;
}

int
audit_switch(struct audit *a, const struct pepd_config *c,
    struct pep_err *e)
{
	char *path;
	int fd;

	if (c->audit_path == NULL)
		return pep_errf(e, EINVAL, "no audit log in the new "
		    "configuration");
	if (a->path == NULL || strcmp(a->path, c->audit_path) != 0) {
		fd = audit_fd_open(c->audit_path);
		if (fd < 0)
			return pep_errf(e, fd, "audit log %s: %s",
			    c->audit_path, strerror(-fd));
		path = strdup(c->audit_path);
		if (path == NULL) {
			close(fd);
			return pep_errf(e, ENOMEM, "out of memory");
		}
		audit_fd_close(a);
		free(a->path);
		a->path = path;
		a->fd = fd;
		a->retry_ms = pepd_now_ms();	/* a broken log: try it */
		log_info("audit log is now %s", a->path);
	}
	a->fsync = c->audit_fsync;
	a->interval_ms = c->audit_fsync_interval_ms;
	return 0;
}

int
audit_reopen(struct audit *a)
{
	int fd;

	if (a->path == NULL)
		return 0;
	fd = audit_fd_open(a->path);
	if (fd < 0) {
		errno = -fd;
		return fd;
	}
	audit_fd_close(a);
	a->fd = fd;
	a->retry_ms = pepd_now_ms();
	log_info("audit log %s reopened", a->path);
	return 0;
}

static void
backlog_free(struct audit *a)
{
	struct audit_line *l;

	while ((l = a->backlog) != NULL) {
		a->backlog = l->next;
		free(l);
	}
	a->backlog_tail = NULL;
	a->backlog_bytes = 0;
}

void
audit_close(struct audit *a)
{
	if (a->backlog != NULL)
		log_warnx("audit log %s: %zu bytes of lines were never "
		    "written", a->path != NULL ? a->path : "-",
		    a->backlog_bytes);
	backlog_free(a);
	audit_fd_close(a);
	free(a->path);
	a->path = NULL;
	jb_free(&a->jb);
}

/* ---- writing whole lines --------------------------------------------- */

/* One write(2) of the line; a short one is cut back. 0 or -errno. */
static int
write_whole(struct audit *a, const uint8_t *p, size_t len)
{
	ssize_t n;
	off_t end;
	int err;

	if (a->fd < 0)
		return -EBADF;
	do {
		n = write(a->fd, p, len);
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len)
		return 0;
	err = n < 0 ? errno : ENOSPC;
	if (n > 0) {
		end = lseek(a->fd, 0, SEEK_CUR);
		if (end < n || ftruncate(a->fd, end - n) < 0)
			log_warn("audit log %s: a line was cut short and "
			    "cannot be cut back", a->path);
	}
	return -err;
}

static void
audit_broke(struct audit *a, int err)
{
	a->write_errors++;
	if (a->broken)
		return;
	a->broken = 1;
	a->backoff_ms = AUDIT_RETRY_MIN_MS;
	a->retry_ms = pepd_now_ms() + a->backoff_ms;
	snprintf(a->why, sizeof(a->why), "%s", strerror(-err));
	log_warnx("audit log %s: %s: requests are refused "
	    "(audit_unavailable) until it can be written again", a->path,
	    a->why);
}

static int
audit_emit(struct audit *a, const uint8_t *p, size_t len)
{
	int r;

	if (a->broken)
		return -EAGAIN;
	r = write_whole(a, p, len);
	if (r < 0) {
		audit_broke(a, r);
		return r;
	}
	a->lines++;
	a->dirty = 1;
	return 0;
}

static void
backlog_push(struct audit *a, const uint8_t *p, size_t len)
{
	struct audit_line *l;

	if (a->backlog_bytes + len > AUDIT_BACKLOG_MAX ||
	    (l = malloc(sizeof(*l) + len)) == NULL) {
		if (a->lost++ % 1000 == 0)
			log_warnx("audit log %s: the backlog is full: %llu "
			    "lines lost", a->path,
			    (unsigned long long)a->lost);
		return;
	}
	l->next = NULL;
	l->len = len;
	memcpy(l->data, p, len);
	if (a->backlog_tail != NULL)
		a->backlog_tail->next = l;
	else
		a->backlog = l;
	a->backlog_tail = l;
	a->backlog_bytes += len;
}

/* The log broke: write the backlog, reopening if need be. */
static void
audit_recover(struct audit *a, uint64_t now)
{
	struct audit_line *l;
	size_t n = 0;
	int r = 0;

	if (a->fd < 0 && audit_reopen(a) < 0)
		r = -errno;
	while (r == 0 && (l = a->backlog) != NULL) {
		r = write_whole(a, (const uint8_t *)l->data, l->len);
		if (r < 0)
			break;
		a->backlog = l->next;
		if (a->backlog == NULL)
			a->backlog_tail = NULL;
		a->backlog_bytes -= l->len;
		a->lines++;
		a->dirty = 1;
		n++;
		free(l);
	}
	if (r < 0) {
		a->write_errors++;
		a->backoff_ms = a->backoff_ms * 2 > AUDIT_RETRY_MAX_MS ?
		    AUDIT_RETRY_MAX_MS : a->backoff_ms * 2;
		a->retry_ms = now + a->backoff_ms;
		return;
	}
	a->broken = 0;
	log_warnx("audit log %s is writable again (%zu lines from the "
	    "backlog written, %llu lost)", a->path, n,
	    (unsigned long long)a->lost);
}

void
audit_tick(struct audit *a, uint64_t now)
{
	if (a->broken && now >= a->retry_ms)
		audit_recover(a, now);
	if (a->fd < 0 || !a->dirty || a->fsync != AUDIT_FSYNC_INTERVAL)
		return;
	if (now - a->last_sync_ms < (uint64_t)a->interval_ms)
		return;
	fdatasync(a->fd);
	a->dirty = 0;
	a->last_sync_ms = now;
}

int
audit_sync(struct audit *a)
{
	if (a->broken)
		return -EAGAIN;
	if (!a->dirty)
		return 0;
	if (fdatasync(a->fd) < 0) {
		audit_broke(a, -errno);
		return -EIO;
	}
	a->dirty = 0;
	return 0;
}

/* ---- the lines ------------------------------------------------------- */

/* RFC 3339 UTC with milliseconds; the seconds are formatted once. */
static void
put_time(struct jbuf *b, const struct timespec *ts)
{
	static time_t cached = -1;
	static char sec[32];
	unsigned int ms = (unsigned int)(ts->tv_nsec / 1000000) % 1000;
	char tail[7];
	struct tm tm;

	if (ts->tv_sec != cached) {
		gmtime_r(&ts->tv_sec, &tm);
		if (strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			sec[0] = '\0';
		cached = ts->tv_sec;
	}
	tail[0] = '.';
	tail[1] = (char)('0' + ms / 100);
	tail[2] = (char)('0' + ms / 10 % 10);
	tail[3] = (char)('0' + ms % 10);
	tail[4] = 'Z';
	tail[5] = '"';
	tail[6] = '\0';
	jb_put(b, "\"", 1);
	jb_puts(b, sec);
	jb_puts(b, tail);
}

static const char *
decision_of(const struct preq *q)
{
	if (!q->decided)
		return NULL;
	if (!q->d.allow)
		return "deny";
	return q->d.would_deny ? "report" : "allow";
}

/* "key": */
static void
key(struct jbuf *b, const char *k)
{
	jb_put(b, ",\"", 2);
	jb_puts(b, k);
	jb_put(b, "\":", 2);
}

/* The fields both lines start with. */
static void
line_head(struct jbuf *b, const struct preq *q, const char *event)
{
	b->len = 0;
	b->err = 0;
	jb_puts(b, "{\"time\":");
	put_time(b, &q->wall);
	key(b, "event");
	jb_str(b, event);
	key(b, "id");
	jb_str(b, q->id);
	key(b, "peer");
	jb_str_or_null(b, q->peer);
	key(b, "method");
	jb_str_or_null(b, q->r.method);
	key(b, "url");
	jb_str_or_null(b, q->have_url ? q->u.url : q->r.url);
	key(b, "host");
	jb_str_or_null(b, q->have_url ? q->u.host : NULL);
}

static void
line_decision(struct jbuf *b, const struct preq *q)
{
	key(b, "decision");
	jb_str_or_null(b, decision_of(q));
	key(b, "rule");
	jb_str_or_null(b, q->decided ? q->d.rule : NULL);
	key(b, "would_deny");
	jb_puts(b, q->decided && q->d.would_deny ? "true" : "false");
}

static void
line_end(struct jbuf *b)
{
	jb_put(b, "}\n", 2);
}

int
audit_decided(struct pepd *s, struct preq *q)
{
	struct audit *a = &s->audit;
	int r;

	if (a->broken)
		return -EAGAIN;
	line_head(&a->jb, q, "decided");
	line_decision(&a->jb, q);
	line_end(&a->jb);
	if (a->jb.err != 0) {
		log_warnx("%s: audit line: out of memory", q->id);
		return a->jb.err;
	}
	r = audit_emit(a, a->jb.p, a->jb.len);
	if (r < 0)
		return r;
	return a->fsync == AUDIT_FSYNC_LINE ? 1 : 0;
}

static int
answered_line(struct audit *a, const struct preq *q)
{
	struct jbuf *b = &a->jb;

	line_head(b, q, "answered");
	key(b, "ip");
	jb_str_or_null(b, q->ip);
	line_decision(b, q);
	key(b, "status");
	jb_u64(b, (uint64_t)q->status);
	key(b, "bytes_in");
	jb_u64(b, q->bytes_in);
	key(b, "bytes_out");
	jb_u64(b, q->bytes_out);
	key(b, "dns_ms");
	jb_ms(b, q->dns_us);
	key(b, "connect_ms");
	jb_ms(b, q->connect_us);
	key(b, "total_ms");
	jb_ms(b, q->total_us);
	key(b, "error");
	jb_str_or_null(b, pep_code_name(q->code));
	if (q->code != PEP_OK) {
		key(b, "message");
		jb_str_or_null(b, q->msg);
	}
	line_end(b);
	if (b->err != 0)
		log_warnx("%s: audit line: out of memory", q->id);
	return b->err;
}

int
audit_answered(struct pepd *s, const struct preq *q)
{
	struct audit *a = &s->audit;
	int r;

	if (a->broken)
		return -EAGAIN;
	r = answered_line(a, q);
	if (r == 0)
		r = audit_emit(a, a->jb.p, a->jb.len);
	if (r == 0 && a->fsync == AUDIT_FSYNC_LINE)
		r = audit_sync(a);
	return r;
}

void
audit_keep(struct pepd *s, const struct preq *q)
{
	struct audit *a = &s->audit;

	if (answered_line(a, q) == 0)
		backlog_push(a, a->jb.p, a->jb.len);
}
