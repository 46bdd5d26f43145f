/*
 * The audit log: one JSON object per line and per request, appended with
 * one write(2) (O_APPEND), fdatasync'd per the fsync policy. SIGUSR1
 * reopens the file (after logrotate's mv).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "../common/log.h"
#include "pepd.h"

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
	if (c->audit_path == NULL) {
		log_warnx("no audit log configured: requests are not audited");
		return 0;
	}
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
	if (a->fd >= 0) {
		if (a->dirty)
			fdatasync(a->fd);
		close(a->fd);
	}
	a->fd = fd;
	a->dirty = 0;
	log_info("audit log %s reopened", a->path);
	return 0;
}

void
audit_close(struct audit *a)
{
	if (a->fd >= 0) {
		if (a->dirty)
			fdatasync(a->fd);
		close(a->fd);
	}
	a->fd = -1;
	free(a->path);
	a->path = NULL;
}

void
audit_tick(struct audit *a, uint64_t now)
{
	if (a->fd < 0 || !a->dirty || a->fsync != AUDIT_FSYNC_INTERVAL)
		return;
	if (now - a->last_sync_ms < (uint64_t)a->interval_ms)
		return;
	fdatasync(a->fd);
	a->dirty = 0;
	a->last_sync_ms = now;
}

static void
audit_time(const struct timespec *ts, char *out, size_t outlen)
{
	struct tm tm;
	size_t n;

	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, outlen - n, ".%03uZ",
	    (unsigned int)(ts->tv_nsec / 1000000) % 1000);
}

static const char *
audit_decision(const struct preq *q)
{
	if (!q->decided)
		return NULL;
	if (!q->d.allow)
		return "deny";
	return q->d.would_deny ? "report" : "allow";
}

static void
add_str(cJSON *o, const char *k, const char *v)
{
	if (v != NULL && v[0] != '\0')
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

static double
ms(uint64_t us)
{
	return (double)us / 1000.0;
}

static cJSON *
audit_json(const struct preq *q)
{
	cJSON *o = cJSON_CreateObject();
	char t[40];

	if (o == NULL)
		return NULL;
	audit_time(&q->wall, t, sizeof(t));
	cJSON_AddStringToObject(o, "time", t);
	cJSON_AddStringToObject(o, "id", q->id);
	add_str(o, "peer", q->peer);
	add_str(o, "method", q->r.method);
	add_str(o, "url", q->r.url);
	add_str(o, "host", q->have_url ? q->u.host : NULL);
	add_str(o, "ip", q->ip);
	add_str(o, "decision", audit_decision(q));
	add_str(o, "rule", q->decided ? q->d.rule : NULL);
	cJSON_AddBoolToObject(o, "would_deny", q->decided && q->d.would_deny);
	cJSON_AddNumberToObject(o, "status", q->status);
	cJSON_AddNumberToObject(o, "bytes_in", (double)q->blen);
	cJSON_AddNumberToObject(o, "bytes_out", (double)q->bytes_out);
	cJSON_AddNumberToObject(o, "dns_ms", ms((uint64_t)q->dns_us));
	cJSON_AddNumberToObject(o, "connect_ms", ms((uint64_t)q->connect_us));
	cJSON_AddNumberToObject(o, "total_ms", ms(q->total_us));
	add_str(o, "error", pep_code_name(q->code));
	if (q->code != PEP_OK)
		add_str(o, "message", q->msg);
	return o;
}

static int
audit_write(struct audit *a, const char *line, size_t len)
{
	ssize_t n;

	n = write(a->fd, line, len);
	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = EIO;
	return -errno;
}

void
audit_request(struct pepd *s, const struct preq *q)
{
	struct audit *a = &s->audit;
	cJSON *o;
	char *line = NULL;
	size_t len;

	if (a->fd < 0)
		return;
	o = audit_json(q);
	if (o != NULL)
		line = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (line == NULL) {
		a->errors++;
		log_warnx("%s: audit line: out of memory", q->id);
		return;
	}
	len = strlen(line);
	line[len] = '\n';
	if (audit_write(a, line, len + 1) < 0) {
		a->errors++;
		if (a->errors < 10 || a->errors % 1000 == 0)
			log_warn("%s: audit write %s", q->id, a->path);
	} else {
		a->lines++;
		a->dirty = 1;
		if (a->fsync == AUDIT_FSYNC_LINE) {
			fdatasync(a->fd);
			a->dirty = 0;
		}
	}
	cJSON_free(line);
}
