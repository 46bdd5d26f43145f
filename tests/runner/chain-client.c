/*
 * The test guest's pep client (static, runs as a "chain" step of /init):
 * speaks pepd's frame protocol (pepd/PROTOCOL.md) to pexi-bridge on
 * TCP 127.0.0.1:4040, which relays to vsock CID 2 port 5000, which
 * pep-run joins to pepd. URLs are http://HOST PATH.
 *   get HOST PATH [COUNT]   COUNT GETs, one after the other, one connection
 *   post HOST PATH SIZE     POST SIZE pattern bytes, expect them echoed
 *   multi N HOST PATH       N concurrent connections, one GET each
 *   closed HOST PATH        the request must get no answer (EOF or reset)
 * Every answer is one line on stdout:
 *   PEPTEST chain get HOST PATH status=S len=N sha256=HEX
 *   PEPTEST chain get HOST PATH error=CODE
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BRIDGE_PORT 4040

/* ---- SHA-256 (FIPS 180-4) ---------------------------------------------- */

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char buf[64];
	size_t n;
};

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block(struct sha256 *s, const unsigned char *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		    (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 64; i++)
		w[i] = w[i - 16] + (ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^
		    (w[i - 15] >> 3)) + w[i - 7] + (ROR(w[i - 2], 17) ^
		    ROR(w[i - 2], 19) ^ (w[i - 2] >> 10));
	a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
	e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
		    ((e & f) ^ (~e & g)) + K[i] + w[i];
		t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
		    ((a & b) ^ (a & c) ^ (b & c));
		h = g; g = f; f = e; e = d + t1;
		d = c; c = b; b = a; a = t1 + t2;
	}
	s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
	s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void
sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372,
	    0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

	memcpy(s->h, iv, sizeof(iv));
	s->len = 0;
	s->n = 0;
}

static void
sha256_add(struct sha256 *s, const unsigned char *p, size_t n)
{
	s->len += n;
	while (n > 0) {
		size_t k = 64 - s->n < n ? 64 - s->n : n;

		memcpy(s->buf + s->n, p, k);
		s->n += k;
		p += k;
		n -= k;
		if (s->n == 64) {
			sha256_block(s, s->buf);
			s->n = 0;
		}
	}
}

static void
sha256_hex(struct sha256 *s, char out[65])
{
	uint64_t bits = s->len * 8;
	unsigned char pad[72] = { 0x80 };
	size_t padn = (s->n < 56 ? 56 : 120) - s->n;
	int i;

	for (i = 0; i < 8; i++)
		pad[padn + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
	sha256_add(s, pad, padn + 8);
	for (i = 0; i < 8; i++)
		snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* ---- base64 ------------------------------------------------------------ */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *
b64_encode(const unsigned char *p, size_t n)
{
	char *o = malloc(4 * ((n + 2) / 3) + 1), *q = o;
	size_t i;

	if (o == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		*q++ = B64[p[i] >> 2];
		*q++ = B64[(p[i] & 3) << 4 | p[i + 1] >> 4];
		*q++ = B64[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
		*q++ = B64[p[i + 2] & 63];
	}
	if (i < n) {
		*q++ = B64[p[i] >> 2];
		if (i + 1 < n) {
			*q++ = B64[(p[i] & 3) << 4 | p[i + 1] >> 4];
			*q++ = B64[(p[i + 1] & 15) << 2];
		} else
			*q++ = B64[(p[i] & 3) << 4];
		*q++ = '=';
		if (i + 1 >= n)
			*q++ = '=';
	}
	*q = '\0';
	return o;
}

/* Decode n base64 characters in place; the decoded length, or -1. */
static long
b64_decode(char *s, size_t n)
{
	static signed char val[256];
	unsigned char *o = (unsigned char *)s;
	uint32_t acc = 0;
	size_t i, bits = 0, out = 0;
	int v;

	if (val[0] == 0) {
		memset(val, -1, sizeof(val));
		for (i = 0; i < 64; i++)
			val[(unsigned char)B64[i]] = (signed char)i;
	}
	while (n > 0 && s[n - 1] == '=')
		n--;
	for (i = 0; i < n; i++) {
		if ((v = val[(unsigned char)s[i]]) < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[out++] = (unsigned char)(acc >> bits);
		}
	}
	return (long)out;
}

/* ---- a minimal JSON reader for pepd's answers ---------------------------- */

static const char *
ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* The end of the JSON string starting at p (on the opening quote). */
static const char *
str_end(const char *p)
{
	for (p++; *p && *p != '"'; p++)
		if (*p == '\\' && p[1])
			p++;
	return *p ? p : NULL;
}

/* Past the value at p (at the ',' or '}' after it), or NULL. */
static const char *
skip_value(const char *p)
{
	int depth = 0;

	for (;;) {
		if (*p == '"') {
			if ((p = str_end(p)) == NULL)
				return NULL;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (depth == 0)
				return p;
			depth--;
		} else if (*p == ',' && depth == 0) {
			return p;
		} else if (*p == '\0') {
			return NULL;
		}
		p++;
	}
}

/* In the object at obj, the value of key (pointer at it), or NULL. */
static const char *
field(const char *obj, const char *key)
{
	const char *p = ws(obj), *e;
	size_t kl = strlen(key);

	if (*p != '{')
		return NULL;
	p = ws(p + 1);
	while (*p == '"') {
		if ((e = str_end(p)) == NULL)
			return NULL;
		int match = (size_t)(e - p - 1) == kl &&
		    memcmp(p + 1, key, kl) == 0;
		p = ws(e + 1);
		if (*p != ':')
			return NULL;
		p = ws(p + 1);
		if (match)
			return p;
		if ((p = skip_value(p)) == NULL)
			return NULL;
		p = ws(p);
		if (*p == ',')
			p = ws(p + 1);
	}
	return NULL;
}

/* ---- the connection ---------------------------------------------------- */

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t k;

	while (n > 0) {
		k = write(fd, c, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

/* 0, or -1 on EOF (*eof set when nothing at all was read) or error. */
static int
read_all(int fd, void *p, size_t n, int *eof)
{
	char *c = p;
	size_t got = 0;
	ssize_t k;

	*eof = 0;
	while (got < n) {
		k = read(fd, c + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0 && got == 0)
			*eof = 1;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

/* Connect to the bridge, retrying while it starts (up to 10 s). */
static int
bconnect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, i, one = 1;

	sa.sin_port = htons(BRIDGE_PORT);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < 200; i++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
			return fd;
		}
		close(fd);
		if (errno != ECONNREFUSED)
			return -errno;
		usleep(50000);
	}
	return -ECONNREFUSED;
}

static unsigned char
pat(size_t i)
{
	return (unsigned char)(((i % 251) * 131 + 7) % 251);
}

/* Send one request frame; the body (n bytes) may be NULL. */
static int
send_req(int fd, const char *method, const char *host, const char *path,
    const unsigned char *body, size_t n)
{
	char *b64 = b64_encode(body ? body : (const unsigned char *)"", n);
	size_t len = strlen(b64) + strlen(host) + strlen(path) + 256;
	char *js = malloc(len);
	unsigned char hdr[4];
	int r, k;

	if (b64 == NULL || js == NULL)
		return -1;
	k = snprintf(js, len, "{\"method\":\"%s\",\"url\":\"http://%s%s\","
	    "\"headers\":[[\"Accept\",\"*/*\"],[\"User-Agent\",\"pep-chain\"]],"
	    "\"body_base64\":\"%s\"}", method, host, path, b64);
	hdr[0] = (unsigned char)(k >> 24);
	hdr[1] = (unsigned char)(k >> 16);
	hdr[2] = (unsigned char)(k >> 8);
	hdr[3] = (unsigned char)k;
	r = write_all(fd, hdr, 4) == 0 && write_all(fd, js, (size_t)k) == 0
	    ? 0 : -1;
	free(js);
	free(b64);
	return r;
}

struct answer {
	int status;		/* -1: a refusal */
	char code[64];		/* the refusal's code */
	long len;		/* body bytes */
	char sha[65];
	char text[64];		/* the body's start when it is short text */
	int closed;		/* the connection ended before an answer */
};

/* Read one answer frame; -1 when the connection ended or broke. */
static int
read_answer(int fd, struct answer *a, unsigned char **bodyp)
{
	unsigned char hdr[4];
	uint32_t n;
	char *js, *b64;
	const char *v, *e;
	struct sha256 s;
	int eof;
	long bl;

	memset(a, 0, sizeof(*a));
	if (read_all(fd, hdr, 4, &eof) < 0) {
		a->closed = 1;
		return -1;
	}
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	js = malloc((size_t)n + 1);
	if (js == NULL || read_all(fd, js, n, &eof) < 0) {
		free(js);
		a->closed = 1;
		return -1;
	}
	js[n] = '\0';
	a->status = -1;
	if ((v = field(js, "status")) != NULL && *v >= '0' && *v <= '9')
		a->status = atoi(v);
	if ((v = field(js, "error")) != NULL && *v == '{' &&
	    (v = field(v, "code")) != NULL && *v == '"' &&
	    (e = str_end(v)) != NULL)
		snprintf(a->code, sizeof(a->code), "%.*s", (int)(e - v - 1),
		    v + 1);
	a->len = -1;
	if ((v = field(js, "body_base64")) != NULL && *v == '"' &&
	    (e = str_end(v)) != NULL) {
		b64 = (char *)v + 1;
		bl = b64_decode(b64, (size_t)(e - b64));
		a->len = bl;
		if (bl >= 0) {
			sha256_init(&s);
			sha256_add(&s, (unsigned char *)b64, (size_t)bl);
			sha256_hex(&s, a->sha);
			if (bl < (long)sizeof(a->text)) {
				long i;

				for (i = 0; i < bl; i++)
					a->text[i] = b64[i] >= ' ' &&
					    b64[i] < 127 && b64[i] != ' ' ?
					    b64[i] : '_';
				a->text[bl] = '\0';
			}
			if (bodyp != NULL) {
				*bodyp = malloc((size_t)bl + 1);
				if (*bodyp != NULL)
					memcpy(*bodyp, b64, (size_t)bl);
			}
		}
	}
	free(js);
	return 0;
}

static void
print_answer(const char *mode, const char *host, const char *path,
    const struct answer *a)
{
	if (a->closed)
		printf("PEPTEST chain %s %s %s closed\n", mode, host, path);
	else if (a->code[0])
		printf("PEPTEST chain %s %s %s error=%s\n", mode, host, path,
		    a->code);
	else
		printf("PEPTEST chain %s %s %s status=%d len=%ld sha256=%s "
		    "text=%s\n", mode, host, path, a->status, a->len, a->sha,
		    a->text[0] ? a->text : "-");
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
do_get(const char *host, const char *path, long count)
{
	struct answer a;
	double t0 = now();
	long i, bytes = 0;
	int fd = bconnect();

	if (fd < 0) {
		printf("PEPTEST chain get %s %s connect %s\n", host, path,
		    strerror(-fd));
		return -1;
	}
	for (i = 0; i < count; i++) {
		if (send_req(fd, "GET", host, path, NULL, 0) < 0) {
			printf("PEPTEST chain get %s %s send failed\n", host,
			    path);
			close(fd);
			return -1;
		}
		read_answer(fd, &a, NULL);
		print_answer("get", host, path, &a);
		if (a.closed)
			break;
		bytes += a.len > 0 ? a.len : 0;
	}
	close(fd);
	if (bytes > 1048576)
		printf("PEPTEST chain rate %ld bytes %.2f MiB/s\n", bytes,
		    (double)bytes / 1048576.0 / (now() - t0));
	return 0;
}

static int
do_post(const char *host, const char *path, size_t size)
{
	unsigned char *body = malloc(size + 1), *got = NULL;
	struct answer a;
	size_t i;
	int fd = bconnect(), same;

	if (body == NULL || fd < 0) {
		printf("PEPTEST chain post %s %s connect failed\n", host, path);
		return -1;
	}
	for (i = 0; i < size; i++)
		body[i] = pat(i);
	if (send_req(fd, "POST", host, path, body, size) < 0 ||
	    read_answer(fd, &a, &got) < 0) {
		printf("PEPTEST chain post %s %s closed\n", host, path);
		close(fd);
		return -1;
	}
	same = got != NULL && a.len == (long)size &&
	    memcmp(got, body, size) == 0;
	printf("PEPTEST chain post %s %s status=%d len=%ld echo=%s\n", host,
	    path, a.status, a.len, same ? "exact" : "DIFFERENT");
	free(got);
	free(body);
	close(fd);
	return 0;
}

static int
do_multi(int n, const char *host, const char *path)
{
	int i, st, bad = 0;
	pid_t pid;

	fflush(stdout);
	for (i = 0; i < n; i++) {
		pid = fork();
		if (pid == 0) {
			struct answer a;
			int fd = bconnect();

			if (fd < 0 || send_req(fd, "GET", host, path, NULL,
			    0) < 0)
				_exit(1);
			read_answer(fd, &a, NULL);
			print_answer("multi", host, path, &a);
			fflush(stdout);
			_exit(a.status == 200 ? 0 : 1);
		}
	}
	for (i = 0; i < n; i++)
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	printf("PEPTEST chain multi done %d failed=%d\n", n, bad);
	return bad ? -1 : 0;
}

static int
do_closed(const char *host, const char *path)
{
	struct answer a;
	int fd = bconnect();

	if (fd < 0) {
		/* the bridge itself refused: also "no answer" */
		printf("PEPTEST chain closed ok %s\n", strerror(-fd));
		return 0;
	}
	send_req(fd, "GET", host, path, NULL, 0);
	if (read_answer(fd, &a, NULL) < 0) {
		printf("PEPTEST chain closed ok %s\n",
		    errno == ECONNRESET ? "reset" : "eof");
		close(fd);
		return 0;
	}
	printf("PEPTEST chain closed FAIL answered status=%d code=%s\n",
	    a.status, a.code);
	close(fd);
	return -1;
}

int
main(int argc, char **argv)
{
	int r = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && strcmp(argv[1], "get") == 0)
		r = do_get(argv[2], argv[3], argc >= 5 ?
		    strtol(argv[4], NULL, 10) : 1);
	else if (argc >= 5 && strcmp(argv[1], "post") == 0)
		r = do_post(argv[2], argv[3], strtoul(argv[4], NULL, 10));
	else if (argc >= 5 && strcmp(argv[1], "multi") == 0)
		r = do_multi((int)strtol(argv[2], NULL, 10), argv[3], argv[4]);
	else if (argc >= 4 && strcmp(argv[1], "closed") == 0)
		r = do_closed(argv[2], argv[3]);
	else
		fprintf(stderr, "chain-client: bad arguments\n");
	return r == 0 ? 0 : 1;
}
