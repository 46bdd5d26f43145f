/*
 * pep-load: load generator for the pepd benchmark and the shutdown test.
 *   pep-load -c tcp:H:P -u URL -C 64 -n 20000     through pepd
 *   pep-load --direct -u URL -C 64 -n 20000        libcurl multi directly
 *   pep-load --direct --proxy http://H:P ...       through an HTTP proxy
 *   pep-load -c tcp:H:P -u URL -C 8 --until-closed  until pepd closes
 *   pep-load -c tcp:H:P --idle 1000                hold idle connections
 * Closed loop: each connection sends its next request when the answer
 * arrives. Prints one JSON line: requests, ok, refused, rps, p50/p99 ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "../../common/frame.h"

struct lconn {
	int fd;
	uint8_t *in;
	size_t ilen, icap;
	size_t ooff;
	double t_sent;
	int busy;
};

struct lopts {
	const char *connect, *url, *proxy, *ca;
	long conc, total, idle;
	int direct, until_closed;
};

struct stats {
	double *lat;
	size_t n, cap;
	size_t ok, refused, errors;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
record(struct stats *st, double sec)
{
	if (st->n == st->cap) {
		st->cap = st->cap * 2 + 1024;
		st->lat = realloc(st->lat, st->cap * sizeof(double));
	}
	st->lat[st->n++] = sec;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
report(const char *mode, struct stats *st, double secs)
{
	double p50 = 0, p99 = 0;

	if (st->n > 0) {
		qsort(st->lat, st->n, sizeof(double), cmp_d);
		p50 = st->lat[st->n / 2] * 1000;
		p99 = st->lat[st->n * 99 / 100] * 1000;
	}
	printf("{\"mode\":\"%s\",\"requests\":%zu,\"ok\":%zu,\"refused\":%zu,"
	    "\"errors\":%zu,\"seconds\":%.3f,\"rps\":%.1f,\"p50_ms\":%.3f,"
	    "\"p99_ms\":%.3f}\n", mode, st->n, st->ok, st->refused,
	    st->errors, secs, secs > 0 ? (double)st->n / secs : 0, p50, p99);
	fflush(stdout);
}

static int
dial(const char *spec)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	char host[256];
	const char *colon;
	int fd;

	if (strncmp(spec, "tcp:", 4) == 0)
		spec += 4;
	colon = strrchr(spec, ':');
	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* ---- through pepd ------------------------------------------------- */

static uint8_t *frame;
static size_t frame_len;

static void
make_frame(const char *url)
{
	char *json;
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "method", "GET");
	cJSON_AddStringToObject(r, "url", url);
	json = cJSON_PrintUnformatted(r);
	frame_len = FRAME_HDR + strlen(json);
	frame = malloc(frame_len);
	frame_put_header(frame, (uint32_t)strlen(json));
	memcpy(frame + FRAME_HDR, json, strlen(json));
	cJSON_free(json);
	cJSON_Delete(r);
}

static void
classify(struct stats *st, const uint8_t *p, size_t n)
{
	cJSON *r = cJSON_ParseWithLength((const char *)p, n);
	cJSON *e = cJSON_GetObjectItem(r, "error");

	if (r == NULL)
		st->errors++;
	else if (cJSON_IsObject(e))
		st->refused++;
	else
		st->ok++;
	cJSON_Delete(r);
}

static int
lconn_send(struct lconn *c)
{
	ssize_t n;

	if (!c->busy) {
		c->busy = 1;
		c->ooff = 0;
		c->t_sent = now_s();
	}
	while (c->ooff < frame_len) {
		n = send(c->fd, frame + c->ooff, frame_len - c->ooff,
		    MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		c->ooff += (size_t)n;
	}
	return 0;
}

/* Read; 1 when an answer completed, 0 more to come, -1 closed. */
static int
lconn_read(struct lconn *c, struct stats *st)
{
	size_t plen;
	ssize_t n, r;

	if (c->icap - c->ilen < 16384) {
		c->icap = c->icap * 2 + 16384;
		c->in = realloc(c->in, c->icap);
	}
	n = read(c->fd, c->in + c->ilen, c->icap - c->ilen);
	if (n == 0 || (n < 0 && errno != EAGAIN))
		return -1;
	if (n < 0)
		return 0;
	c->ilen += (size_t)n;
	r = frame_check(c->in, c->ilen, 1u << 30, &plen);
	if (r <= 0)
		return 0;
	record(st, now_s() - c->t_sent);
	classify(st, c->in + FRAME_HDR, plen);
	memmove(c->in, c->in + r, c->ilen - (size_t)r);
	c->ilen -= (size_t)r;
	c->busy = 0;
	return 1;
}

static int
run_pepd(const struct lopts *o)
{
	struct lconn *cs = calloc((size_t)o->conc, sizeof(*cs));
	struct epoll_event ev, evs[256];
	struct stats st = { 0 };
	size_t sent = 0, open = 0, i;
	int ep = epoll_create1(0), n, k;
	double t0 = now_s();

	make_frame(o->url);
	for (i = 0; i < (size_t)o->conc; i++) {
		cs[i].fd = dial(o->connect);
		if (cs[i].fd < 0) {
			perror("pep-load: connect");
			return 2;
		}
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.u64 = i;
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
		open++;
		if (o->until_closed || sent < (size_t)o->total) {
			sent++;
			lconn_send(&cs[i]);
		}
	}
	while (open > 0 && (o->until_closed || st.n < sent)) {
		n = epoll_wait(ep, evs, 256, 1000);
		for (k = 0; k < n; k++) {
			struct lconn *c = &cs[evs[k].data.u64];

			if (c->fd < 0)
				continue;
			if (c->busy && c->ooff < frame_len)
				lconn_send(c);
			if (!(evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			int r = lconn_read(c, &st);
			if (r < 0) {
				close(c->fd);
				c->fd = -1;
				open--;
			} else if (r == 1 && (o->until_closed ||
			    sent < (size_t)o->total)) {
				sent++;
				lconn_send(c);
			}
		}
	}
	report("pepd", &st, now_s() - t0);
	return 0;
}

/* ---- directly with libcurl (optionally through a proxy) ----------- */

static size_t
sink(char *p, size_t s, size_t n, void *u)
{
	(void)p;
	(void)u;
	return s * n;
}

static CURL *
direct_easy(const struct lopts *o, double *t)
{
	CURL *h = curl_easy_init();

	curl_easy_setopt(h, CURLOPT_URL, o->url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_PRIVATE, t);
	curl_easy_setopt(h, CURLOPT_PROXY, o->proxy != NULL ? o->proxy : "");
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	if (o->ca != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, o->ca);
	return h;
}

static int
run_direct(const struct lopts *o)
{
	CURLM *m = curl_multi_init();
	double *ts = calloc((size_t)o->conc, sizeof(double)), *t, t0;
	struct stats st = { 0 };
	size_t sent = 0, i;
	int running = 1, left;
	CURLMsg *msg;
	long code;

	for (i = 0; i < (size_t)o->conc && sent < (size_t)o->total; i++) {
		ts[i] = now_s();
		curl_multi_add_handle(m, direct_easy(o, &ts[i]));
		sent++;
	}
	t0 = now_s();
	while (st.n < sent) {
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
			    &t);
			curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_RESPONSE_CODE, &code);
			record(&st, now_s() - *t);
			if (msg->data.result != CURLE_OK)
				st.errors++;
			else if (code == 200)
				st.ok++;
			else
				st.refused++;
			curl_multi_remove_handle(m, msg->easy_handle);
			if (sent < (size_t)o->total) {
				*t = now_s();
				curl_multi_add_handle(m, msg->easy_handle);
				sent++;
			} else {
				curl_easy_cleanup(msg->easy_handle);
			}
		}
		if (st.n < sent)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	report(o->proxy != NULL ? "proxy" : "direct", &st, now_s() - t0);
	curl_multi_cleanup(m);
	return 0;
}

static int
run_idle(const struct lopts *o)
{
	char buf[64];
	long i;

	for (i = 0; i < o->idle; i++)
		if (dial(o->connect) < 0) {
			perror("pep-load: connect");
			return 2;
		}
	printf("ready %ld\n", o->idle);
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "connect", 1, NULL, 'c' }, { "url", 1, NULL, 'u' },
		{ "concurrency", 1, NULL, 'C' }, { "requests", 1, NULL, 'n' },
		{ "direct", 0, NULL, 'd' }, { "proxy", 1, NULL, 'P' },
		{ "ca", 1, NULL, 'a' }, { "idle", 1, NULL, 'i' },
		{ "until-closed", 0, NULL, 'U' }, { NULL, 0, NULL, 0 },
	};
	struct lopts o = { .conc = 64, .total = 10000 };
	int ch;

	while ((ch = getopt_long(argc, argv, "c:u:C:n:dP:a:i:U", lo,
	    NULL)) != -1) {
		switch (ch) {
		case 'c': o.connect = optarg; break;
		case 'u': o.url = optarg; break;
		case 'C': o.conc = strtol(optarg, NULL, 10); break;
		case 'n': o.total = strtol(optarg, NULL, 10); break;
		case 'd': o.direct = 1; break;
		case 'P': o.proxy = optarg; o.direct = 1; break;
		case 'a': o.ca = optarg; break;
		case 'i': o.idle = strtol(optarg, NULL, 10); break;
		case 'U': o.until_closed = 1; break;
		default:
			fprintf(stderr, "usage: see the comment in "
			    "tests/pepd-tools/pep-load.c\n");
			return 2;
		}
	}
	if (o.idle > 0 && o.connect != NULL)
		return run_idle(&o);
	if (o.url == NULL || o.conc < 1 || (!o.direct && o.connect == NULL)) {
		fprintf(stderr, "pep-load: need -u URL and -c or --direct\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return o.direct ? run_direct(&o) : run_pepd(&o);
}
