/*
 * libFuzzer target for the messages between pepd's processes (ipc.c):
 * the input is the byte stream one side reads from the socketpair. It
 * goes through the channel's framing (ipc_next, with the input arriving
 * in chunks whose sizes come from the first byte) and every message
 * through the decoder of its type, both directions' (a compromised
 * fetcher writes what the parent reads; a confused parent what the
 * fetcher reads). Beyond the sanitizers: a decoder that accepts a message
 * must have checked every length, so the views it fills are walked to
 * their ends (strings end with their NUL inside the payload, the header
 * pairs are exactly nheaders, the CIDRs convert), and a result's text is
 * written as valid UTF-8 JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../common/utf8.h"
#include "../../pepd/pepd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* p .. p+len must hold s and its NUL. */
static void
inside(const uint8_t *p, size_t len, const char *s)
{
	const uint8_t *q = (const uint8_t *)s;

	if (q < p || q >= p + len ||
	    memchr(q, '\0', (size_t)(p + len - q)) == NULL)
		abort();
}

static void
fetch(const uint8_t *p, size_t len)
{
	struct ipc_fetch_view v;
	const char *h;
	uint32_t i;

	if (ipc_dec_fetch(p, len, &v) < 0)
		return;
	inside(p, len, v.method);
	inside(p, len, v.url);
	h = v.headers;
	for (i = 0; i < v.f->nheaders; i++) {
		inside(p, len, h);
		h += strlen(h) + 1;
		inside(p, len, h);
		h += strlen(h) + 1;
	}
	if ((const uint8_t *)h != p + len)
		abort();
}

static void
cidrs(const struct ipc_cidr *c, size_t n)
{
	struct cidr out;
	size_t i;

	for (i = 0; i < n; i++)
		if (ipc_cidr_get(&c[i], &out) == 0 &&
		    out.prefix > (out.family == AF_INET ? 32u : 128u))
			abort();
}

static void
config(const uint8_t *p, size_t len)
{
	struct ipc_config_view v;

	if (ipc_dec_config(p, len, &v) < 0)
		return;
	if (v.ca + v.c->ca_len != p + len)
		abort();
	cidrs(v.allow, v.c->nallow);
}

static void
addrs(const uint8_t *p, size_t len)
{
	const struct ipc_addrs *a;
	const struct ipc_cidr *l;

	if (ipc_dec_addrs(p, len, &a, &l) < 0)
		return;
	if ((const uint8_t *)(l + a->n) != p + len)
		abort();
	cidrs(l, a->n);
}

static void
opa(const uint8_t *p, size_t len)
{
	struct ipc_opa_view v;

	if (ipc_dec_opa(p, len, &v) < 0)
		return;
	inside(p, len, v.url);
	if (v.body + v.o->body_len != p + len)
		abort();
}

/* What the parent does with a result's text: a JSON string. */
static void
text(const char *s)
{
	struct jbuf b;

	if (jb_init(&b, 64) < 0)
		return;
	jb_str(&b, s);
	if (b.err == 0 && !utf8_valid((const char *)b.p, b.len))
		abort();
	jb_free(&b);
}

static void
results(uint32_t type, const uint8_t *p, size_t len)
{
	struct ipc_result r;
	struct ipc_opa_result o;
	struct ipc_hello h;
	struct ipc_probe_result pr;
	const uint8_t *ans;

	if (type == IPC_RESULT && ipc_dec_result(p, len, &r) == 0) {
		if (r.code > PEP_CODE_LAST || (r.code != PEP_OK &&
		    r.frame_len != 0))
			abort();
		text(r.msg);
		text(r.ip);
	}
	if (type == IPC_OPA_RESULT && ipc_dec_opa_result(p, len, &o,
	    &ans) == 0) {
		if (ans + o.answer_len != p + len)
			abort();
		text(o.msg);
	}
	if (type == IPC_HELLO)
		ipc_dec_hello(p, len, &h);
	if (type == IPC_PROBE_RESULT)
		ipc_dec_probe_result(p, len, &pr);
}

static void
message(const struct ipc_hdr *h, const uint8_t *p)
{
	switch (h->type) {
	case IPC_CONFIG:
		config(p, h->len);
		break;
	case IPC_ADDRS:
		addrs(p, h->len);
		break;
	case IPC_FETCH:
		fetch(p, h->len);
		break;
	case IPC_OPA:
		opa(p, h->len);
		break;
	default:
		results(h->type, p, h->len);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_chan c;
	struct ipc_hdr h;
	const uint8_t *p;
	uint32_t rng;
	size_t off = 1, chunk;
	int r;

	if (size < 1)
		return 0;
	ipc_chan_init(&c, -1);
	c.in = malloc(size);
	if (c.in == NULL)
		return 0;
	c.icap = size;
	rng = data[0] * 2654435761u + 1;
	while (off < size) {
		/* what ipc_fill would append, in pieces */
		rng = rng * 1103515245u + 12345u;
		chunk = 1 + (rng >> 16) % 4096;
		if (chunk > size - off)
			chunk = size - off;
		if (c.ioff > 0) {
			memmove(c.in, c.in + c.ioff, c.ilen - c.ioff);
			c.ilen -= c.ioff;
			c.ioff = 0;
		}
		memcpy(c.in + c.ilen, data + off, chunk);
		c.ilen += chunk;
		off += chunk;
		while ((r = ipc_next(&c, &h, &p)) == 1) {
			if (h.len > IPC_MAX || p + h.len > c.in + c.ilen)
				abort();
			message(&h, p);
		}
		if (r < 0)
			break;	/* the side reading this drops the peer */
	}
	ipc_chan_close(&c);
	return 0;
}
