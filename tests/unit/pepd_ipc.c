/*
 * ipc.c: every payload of tests/data/pepd/ipc.tsv through the decoder of
 * its kind (accepted or refused as the line says), ipc_cidr both ways,
 * and the channel over a real socketpair: messages of every size up to
 * IPC_MAX cross in pieces and come out whole and in order, an announced
 * length over IPC_MAX is refused, and EOF is -EPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../pepd/pepd.h"
#include "../tapdata.h"

#define MAXF 4

static int
nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static size_t
unhex(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;

	if (strcmp(s, "-") == 0)
		return 0;
	while (n < max && nibble(s[0]) >= 0 && nibble(s[1]) >= 0) {
		out[n++] = (uint8_t)(nibble(s[0]) << 4 | nibble(s[1]));
		s += 2;
	}
	return n;
}

static int
decode(const char *kind, const uint8_t *p, size_t len)
{
	struct ipc_config_view cv;
	struct ipc_fetch_view fv;
	struct ipc_opa_view ov;
	struct ipc_hello h;
	struct ipc_result r;
	struct ipc_opa_result o;
	struct ipc_probe_result pr;
	const struct ipc_addrs *a;
	const struct ipc_cidr *c;
	const uint8_t *ans;

	if (strcmp(kind, "config") == 0)
		return ipc_dec_config(p, len, &cv);
	if (strcmp(kind, "addrs") == 0)
		return ipc_dec_addrs(p, len, &a, &c);
	if (strcmp(kind, "fetch") == 0)
		return ipc_dec_fetch(p, len, &fv);
	if (strcmp(kind, "opa") == 0)
		return ipc_dec_opa(p, len, &ov);
	if (strcmp(kind, "hello") == 0)
		return ipc_dec_hello(p, len, &h);
	if (strcmp(kind, "result") == 0)
		return ipc_dec_result(p, len, &r);
	if (strcmp(kind, "opa_result") == 0)
		return ipc_dec_opa_result(p, len, &o, &ans);
	if (strcmp(kind, "probe_result") == 0)
		return ipc_dec_probe_result(p, len, &pr);
	return 1;
}

static void
vectors(const char *dir)
{
	static uint8_t buf[1 << 16];
	char line[1 << 17], *f[MAXF];
	size_t len;
	FILE *fp;
	int r, n;

	fp = tap_open_data(dir, "pepd", "ipc.tsv");
	if (fp == NULL)
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		n = tap_split(line, f, MAXF);
		if (n < 3) {
			tap_ok(0, "bad data line '%s'", f[0]);
			continue;
		}
		len = unhex(f[1], buf, sizeof(buf));
		r = decode(f[0], buf, len);
		tap_ok(r != 1 && (strcmp(f[2], "ok") == 0 ? r == 0 :
		    r == -EBADMSG), "%s %s %s", f[0], f[2], n > 3 ? f[3] : "");
	}
	fclose(fp);
}

static void
cidr_round_trip(void)
{
	struct ipc_cidr i;
	struct cidr a, b;

	cidr_parse("fd00:1::/32", &a);
	ipc_cidr_put(&i, &a);
	tap_ok(ipc_cidr_get(&i, &b) == 0 && b.family == a.family &&
	    b.prefix == 32 && memcmp(a.addr, b.addr, 16) == 0,
	    "an IPv6 CIDR crosses whole");
	i.prefix = 33;
	i.family = 4;
	tap_ok(ipc_cidr_get(&i, &b) < 0, "IPv4 /33 is refused");
	i.family = 7;
	tap_ok(ipc_cidr_get(&i, &b) < 0, "family 7 is refused");
}

/* Send n messages of growing size through a socketpair, read them back. */
static void
chan_round_trip(void)
{
	static const size_t sizes[] = { 0, 1, 4095, 65536, 1u << 20,
	    IPC_MAX };
	struct ipc_chan w, rd;
	struct ipc_hdr h;
	struct iovec iov;
	const uint8_t *p;
	uint8_t *data = malloc(IPC_MAX);
	size_t i, got = 0, j;
	int sv[2], r, ok = 1;

	if (data == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		tap_ok(0, "socketpair");
		free(data);
		return;
	}
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	ipc_chan_init(&w, sv[0]);
	ipc_chan_init(&rd, sv[1]);
	for (j = 0; j < IPC_MAX; j++)
		data[j] = (uint8_t)(j * 7 + 3);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		iov.iov_base = data;
		iov.iov_len = sizes[i];
		ok &= ipc_put(&w, IPC_RESP_BODY, i + 1, &iov, 1) == 0;
	}
	iov.iov_len = IPC_MAX + 1;
	tap_ok(ipc_put(&w, IPC_RESP_BODY, 99, &iov, 1) == -EMSGSIZE,
	    "a payload over IPC_MAX is not queued");
	while (got < sizeof(sizes) / sizeof(sizes[0]) && ok) {
		r = ipc_flush(&w);
		ok &= r >= 0;
		r = ipc_fill(&rd, 1u << 16);
		ok &= r == 0;
		while (ok && ipc_next(&rd, &h, &p) == 1) {
			ok &= h.id == got + 1 && h.type == IPC_RESP_BODY &&
			    h.len == sizes[got] && (h.len == 0 ||
			    memcmp(p, data, h.len) == 0);
			got++;
		}
	}
	tap_ok(ok && got == 6 && ipc_pending(&w) == 0,
	    "6 messages, 0 to 2 MiB, cross in pieces, whole and in order");
	h.type = IPC_RESULT;
	h.len = IPC_MAX + 1;
	h.id = 1;
	if (send(sv[0], &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    ipc_fill(&rd, 1u << 16) == 0)
		tap_ok(ipc_next(&rd, &h, &p) == -EBADMSG,
		    "a header announcing more than IPC_MAX is refused");
	else
		tap_ok(0, "send a bad header");
	ipc_chan_close(&w);
	tap_ok(ipc_fill(&rd, 1u << 16) == -EPIPE, "EOF is -EPIPE");
	ipc_chan_close(&rd);
	free(data);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";

	vectors(dir);
	cidr_round_trip();
	chan_round_trip();
	return tap_done();
}
