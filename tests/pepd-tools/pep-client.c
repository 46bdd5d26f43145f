/*
 * pep-client: a frame client for pepd's tests. Sends requests (given as
 * JSON with --json/--stdin, or built from --method/--url/--header/
 * --body-file) over one or more connections, pipelined, and prints every
 * response as one JSON line (body_base64 replaced by body_len, and by
 * "body" text with --text). --raw-hex sends bytes as they are;
 * --partial N sends only the first N bytes of each connection's frames.
 * A server-side close prints {"event":"closed","conn":I,"after_ms":MS}.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <cjson/cJSON.h>

#include "../../common/base64.h"
#include "../../common/frame.h"

#define MAXREQ 4096
#define MAXCONN 4096

struct cconn {
	int fd;
	uint8_t *out;
	size_t olen, ooff;
	uint8_t *in;
	size_t ilen, icap;
	size_t expect, got;
	int closed;
};

struct copts {
	const char *connect;
	const char *method, *url, *body_file, *body_out, *raw_hex;
	const char *headers[64];
	size_t nheaders;
	char *reqs[MAXREQ];
	size_t nreqs;
	long count, conc, partial, wait_ms;
	int text, full;
};

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
die(const char *msg)
{
	fprintf(stderr, "pep-client: %s\n", msg);
	exit(2);
}

static int
dial(const char *spec)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	char host[256];
	const char *colon;
	int fd;

	if (strncmp(spec, "unix:", 5) == 0) {
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", spec + 5);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			return -1;
		return fd;
	}
	if (strncmp(spec, "tcp:", 4) == 0)
		spec += 4;
	colon = strrchr(spec, ':');
	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		die("bad --connect");
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (f == NULL)
		die("cannot open body file");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("cannot read body file");
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static char *
build_request(const struct copts *o)
{
	cJSON *r = cJSON_CreateObject(), *hs, *pair;
	uint8_t *body;
	char *b64, *out, name[256];
	const char *colon, *v;
	size_t i, blen;

	cJSON_AddStringToObject(r, "method", o->method);
	cJSON_AddStringToObject(r, "url", o->url);
	hs = cJSON_AddArrayToObject(r, "headers");
	for (i = 0; i < o->nheaders; i++) {
		colon = strchr(o->headers[i], ':');
		if (colon == NULL || (size_t)(colon - o->headers[i]) >= 256)
			die("--header wants 'Name: value'");
		snprintf(name, sizeof(name), "%.*s",
		    (int)(colon - o->headers[i]), o->headers[i]);
		for (v = colon + 1; *v == ' '; v++)
			;
		pair = cJSON_CreateArray();
		cJSON_AddItemToArray(pair, cJSON_CreateString(name));
		cJSON_AddItemToArray(pair, cJSON_CreateString(v));
		cJSON_AddItemToArray(hs, pair);
	}
	if (o->body_file != NULL) {
		body = read_file(o->body_file, &blen);
		b64 = malloc(base64_encoded_len(blen) + 1);
		base64_encode(body, blen, b64);
		cJSON_AddStringToObject(r, "body_base64", b64);
		free(b64);
		free(body);
	}
	out = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return out;
}

static void
append(struct cconn *c, const void *p, size_t n)
{
	c->out = realloc(c->out, c->olen + n);
	if (c->out == NULL)
		die("out of memory");
	memcpy(c->out + c->olen, p, n);
	c->olen += n;
}

static void
append_frame(struct cconn *c, const char *json)
{
	uint8_t hdr[FRAME_HDR];
	size_t n = strlen(json);

	frame_put_header(hdr, (uint32_t)n);
	append(c, hdr, FRAME_HDR);
	append(c, json, n);
	c->expect++;
}

static void
append_hex(struct cconn *c, const char *hex)
{
	uint8_t b;
	unsigned int hi, lo;

	for (; hex[0] != '\0' && hex[1] != '\0'; hex += 2) {
		hi = (unsigned int)(hex[0] <= '9' ? hex[0] - '0' :
		    (hex[0] | 0x20) - 'a' + 10);
		lo = (unsigned int)(hex[1] <= '9' ? hex[1] - '0' :
		    (hex[1] | 0x20) - 'a' + 10);
		b = (uint8_t)(hi << 4 | lo);
		append(c, &b, 1);
	}
}

static void
print_response(const struct copts *o, size_t ci, const uint8_t *p,
    size_t n)
{
	cJSON *r = cJSON_ParseWithLength((const char *)p, n), *b;
	uint8_t *body;
	size_t blen = 0;
	char *s;
	FILE *f;

	if (r == NULL) {
		printf("{\"event\":\"unparsable\",\"conn\":%zu}\n", ci);
		return;
	}
	b = cJSON_GetObjectItem(r, "body_base64");
	if (cJSON_IsString(b) && !o->full) {
		n = strlen(b->valuestring);
		body = malloc(base64_decoded_max(n) + 1);
		if (base64_decode(b->valuestring, n, body, &blen) < 0)
			blen = 0;
		body[blen] = '\0';
		if (o->body_out != NULL) {
			f = fopen(o->body_out, "wb");
			if (f == NULL || fwrite(body, 1, blen, f) != blen)
				die("cannot write --body-out");
			fclose(f);
		}
		cJSON_DeleteItemFromObject(r, "body_base64");
		cJSON_AddNumberToObject(r, "body_len", (double)blen);
		if (o->text)
			cJSON_AddStringToObject(r, "body", (char *)body);
		free(body);
	}
	cJSON_AddNumberToObject(r, "conn", (double)ci);
	s = cJSON_PrintUnformatted(r);
	printf("%s\n", s);
	cJSON_free(s);
	cJSON_Delete(r);
}

static void
take_frames(const struct copts *o, struct cconn *c, size_t ci)
{
	size_t plen;
	ssize_t r;

	for (;;) {
		r = frame_check(c->in, c->ilen, 1u << 30, &plen);
		if (r <= 0)
			break;
		print_response(o, ci, c->in + FRAME_HDR, plen);
		c->got++;
		memmove(c->in, c->in + r, c->ilen - (size_t)r);
		c->ilen -= (size_t)r;
	}
}

static int
conn_io(const struct copts *o, struct cconn *c, size_t ci, short rev,
    long t0)
{
	ssize_t n;

	if ((rev & POLLOUT) && c->ooff < c->olen) {
		n = send(c->fd, c->out + c->ooff, c->olen - c->ooff,
		    MSG_NOSIGNAL);
		if (n > 0)
			c->ooff += (size_t)n;
	}
	if (!(rev & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	if (c->icap - c->ilen < 65536) {
		c->icap = c->icap * 2 + 65536;
		c->in = realloc(c->in, c->icap);
		if (c->in == NULL)
			die("out of memory");
	}
	n = read(c->fd, c->in + c->ilen, c->icap - c->ilen);
	if (n <= 0) {
		c->closed = 1;
		printf("{\"event\":\"closed\",\"conn\":%zu,\"after_ms\":%ld}\n",
		    ci, now_ms() - t0);
		return 1;
	}
	c->ilen += (size_t)n;
	take_frames(o, c, ci);
	return 0;
}

static int
conn_done(const struct copts *o, const struct cconn *c)
{
	if (c->closed)
		return 1;
	if (o->raw_hex != NULL || o->partial >= 0)
		return 0;
	return c->got >= c->expect;
}

static int
run(const struct copts *o, struct cconn *cs, size_t nc)
{
	struct pollfd *p = calloc(nc, sizeof(*p));
	long t0 = now_ms();
	size_t i, left;

	for (;;) {
		left = 0;
		for (i = 0; i < nc; i++) {
			p[i].fd = conn_done(o, &cs[i]) ? -1 : cs[i].fd;
			p[i].events = POLLIN;
			if (cs[i].ooff < cs[i].olen)
				p[i].events |= POLLOUT;
			left += p[i].fd >= 0;
		}
		if (left == 0 || now_ms() - t0 > o->wait_ms)
			break;
		if (poll(p, nc, 100) < 0)
			break;
		for (i = 0; i < nc; i++)
			if (p[i].fd >= 0 && p[i].revents)
				conn_io(o, &cs[i], i, p[i].revents, t0);
	}
	free(p);
	for (i = 0; i < nc; i++)
		if (o->raw_hex == NULL && o->partial < 0 &&
		    cs[i].got < cs[i].expect)
			return 1;
	return 0;
}

static void
usage(void)
{
	printf("usage: pep-client --connect tcp:H:P|unix:PATH [options]\n"
	    "  -m METHOD -u URL [-H 'N: v'...] [--body-file F]  build one "
	    "request\n"
	    "  -j JSON (repeatable) | --stdin      requests as JSON\n"
	    "  -n N       send the requests N times (1)\n"
	    "  -C N       over N connections, round robin, pipelined (1)\n"
	    "  --raw-hex HEX  send raw bytes instead\n"
	    "  --partial N    send only N bytes per connection\n"
	    "  --wait MS      give up after MS (30000)\n"
	    "  --body-out F   write the last decoded body to F\n"
	    "  --text         print bodies as text; --full keeps base64\n");
}

static void
read_stdin(struct copts *o)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n > 0 && o->nreqs < MAXREQ)
			o->reqs[o->nreqs++] = strdup(line);
	}
	free(line);
}

static void
parse_opts(int argc, char **argv, struct copts *o)
{
	static const struct option lo[] = {
		{ "connect", 1, NULL, 'c' }, { "method", 1, NULL, 'm' },
		{ "url", 1, NULL, 'u' }, { "header", 1, NULL, 'H' },
		{ "body-file", 1, NULL, 'b' }, { "json", 1, NULL, 'j' },
		{ "stdin", 0, NULL, 's' }, { "count", 1, NULL, 'n' },
		{ "concurrency", 1, NULL, 'C' }, { "raw-hex", 1, NULL, 'r' },
		{ "partial", 1, NULL, 'p' }, { "wait", 1, NULL, 'w' },
		{ "body-out", 1, NULL, 'o' }, { "text", 0, NULL, 't' },
		{ "full", 0, NULL, 'F' }, { "help", 0, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:m:u:H:b:j:sn:C:r:p:w:o:tFh",
	    lo, NULL)) != -1) {
		switch (ch) {
		case 'c': o->connect = optarg; break;
		case 'm': o->method = optarg; break;
		case 'u': o->url = optarg; break;
		case 'H':
			if (o->nheaders < 64)
				o->headers[o->nheaders++] = optarg;
			break;
		case 'b': o->body_file = optarg; break;
		case 'j':
			if (o->nreqs < MAXREQ)
				o->reqs[o->nreqs++] = strdup(optarg);
			break;
		case 's': read_stdin(o); break;
		case 'n': o->count = strtol(optarg, NULL, 10); break;
		case 'C': o->conc = strtol(optarg, NULL, 10); break;
		case 'r': o->raw_hex = optarg; break;
		case 'p': o->partial = strtol(optarg, NULL, 10); break;
		case 'w': o->wait_ms = strtol(optarg, NULL, 10); break;
		case 'o': o->body_out = optarg; break;
		case 't': o->text = 1; break;
		case 'F': o->full = 1; break;
		case 'h': usage(); exit(0);
		default: usage(); exit(2);
		}
	}
}

int
main(int argc, char **argv)
{
	struct copts o = { .method = "GET", .count = 1, .conc = 1,
	    .partial = -1, .wait_ms = 30000 };
	struct cconn *cs;
	size_t i, k = 0;
	long r;

	parse_opts(argc, argv, &o);
	if (o.connect == NULL)
		die("--connect is required");
	if (o.url != NULL && o.nreqs < MAXREQ)
		o.reqs[o.nreqs++] = build_request(&o);
	if (o.conc < 1 || o.conc > MAXCONN)
		die("bad -C");
	cs = calloc((size_t)o.conc, sizeof(*cs));
	for (i = 0; i < (size_t)o.conc; i++) {
		cs[i].fd = dial(o.connect);
		if (cs[i].fd < 0) {
			perror("pep-client: connect");
			return 2;
		}
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		if (o.raw_hex != NULL)
			append_hex(&cs[i], o.raw_hex);
	}
	for (r = 0; o.raw_hex == NULL && r < o.count; r++)
		for (i = 0; i < o.nreqs; i++)
			append_frame(&cs[k++ % (size_t)o.conc], o.reqs[i]);
	for (i = 0; o.partial >= 0 && i < (size_t)o.conc; i++)
		if ((size_t)o.partial < cs[i].olen)
			cs[i].olen = (size_t)o.partial;
	return run(&o, cs, (size_t)o.conc);
}
