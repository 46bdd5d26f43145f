/*
 * Messages between the parent and the fetcher (pepd.h, "ipc.c"). The
 * channel is a non-blocking AF_UNIX stream with a buffer each way; a
 * message is a packed struct ipc_hdr and its payload. The decoders are
 * the only code that looks at a payload: each checks that the fixed
 * struct is there, that the lengths it announces add up to the payload
 * exactly, and that every string carries its NUL and no other, before
 * anything is copied. They do not trust either side: the fetcher parses
 * what origins send, so the parent treats it as hostile, and the fetcher
 * checks the parent the same way (a bug is a bug).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "pepd.h"

#define IPC_READ_MIN 65536

const char *const ipc_probe_names[IPC_PROBES] = {
	"open /etc/shadow for reading",
	"create /tmp/pepd-sandbox-probe",
	"list /",
	"socket(AF_UNIX)",
};

/* ---- the channel ---------------------------------------------------- */

void
ipc_chan_init(struct ipc_chan *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
}

void
ipc_chan_close(struct ipc_chan *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	ipc_chan_init(c, -1);
}

static int
grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t ncap = *cap == 0 ? 65536 : *cap;
	uint8_t *p;

	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	if (ncap == *cap)
		return 0;
	p = realloc(*buf, ncap);
	if (p == NULL)
		return -ENOMEM;
	*buf = p;
	*cap = ncap;
	return 0;
}

int
ipc_put(struct ipc_chan *c, uint32_t type, uint64_t id,
    const struct iovec *iov, int niov)
{
	struct ipc_hdr h;
	size_t len = 0;
	int i, r;

	for (i = 0; i < niov; i++)
		len += iov[i].iov_len;
	if (len > IPC_MAX)
		return -EMSGSIZE;
	if (c->ooff > 0 && c->ooff == c->olen)
		c->ooff = c->olen = 0;
	r = grow(&c->out, &c->ocap, c->olen + sizeof(h) + len);
	if (r < 0)
		return r;
	h.type = type;
	h.len = (uint32_t)len;
	h.id = id;
	memcpy(c->out + c->olen, &h, sizeof(h));
	c->olen += sizeof(h);
	for (i = 0; i < niov; i++) {
		if (iov[i].iov_len == 0)
			continue;
		memcpy(c->out + c->olen, iov[i].iov_base, iov[i].iov_len);
		c->olen += iov[i].iov_len;
	}
	return 0;
}

int
ipc_flush(struct ipc_chan *c)
{
	ssize_t n;

	while (c->ooff < c->olen) {
		n = send(c->fd, c->out + c->ooff, c->olen - c->ooff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n < 0)
			return -errno;
		c->ooff += (size_t)n;
	}
	c->ooff = c->olen = 0;
	if (c->ocap > 4 * IPC_MAX) {
		free(c->out);
		c->out = NULL;
		c->ocap = 0;
	}
	return 0;
}

size_t
ipc_pending(const struct ipc_chan *c)
{
	return c->olen - c->ooff;
}

int
ipc_fill(struct ipc_chan *c, size_t budget)
{
	ssize_t n;
	int r;

	if (c->ioff > 0) {
		memmove(c->in, c->in + c->ioff, c->ilen - c->ioff);
		c->ilen -= c->ioff;
		c->ioff = 0;
	}
	while (budget > 0) {
		r = grow(&c->in, &c->icap, c->ilen + IPC_READ_MIN);
		if (r < 0)
			return r;
		n = read(c->fd, c->in + c->ilen, c->icap - c->ilen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		c->ilen += (size_t)n;
		budget -= (size_t)n < budget ? (size_t)n : budget;
	}
	return 0;
}

int
ipc_next(struct ipc_chan *c, struct ipc_hdr *h, const uint8_t **payload)
{
	size_t have = c->ilen - c->ioff;

	if (have < sizeof(*h))
		return 0;
	memcpy(h, c->in + c->ioff, sizeof(*h));
	if (h->len > IPC_MAX)
		return -EBADMSG;
	if (have - sizeof(*h) < h->len)
		return 0;
	*payload = c->in + c->ioff + sizeof(*h);
	c->ioff += sizeof(*h) + h->len;
	return 1;
}

/* ---- the decoders ---------------------------------------------------- */

/* s[0..len) is a string: len >= 1, the last byte NUL, no other. */
static int
is_cstr(const uint8_t *s, size_t len)
{
	return len >= 1 && s[len - 1] == '\0' &&
	    memchr(s, '\0', len - 1) == NULL;
}

/* n name NUL value NUL pairs fill s[0..len) exactly. */
static int
is_pairs(const uint8_t *s, size_t len, size_t n)
{
	size_t nul = 0, i;

	if (len == 0)
		return n == 0;
	if (s[len - 1] != '\0')
		return 0;
	for (i = 0; i < len; i++)
		nul += s[i] == '\0';
	return nul == 2 * n;
}

void
ipc_cidr_put(struct ipc_cidr *o, const struct cidr *c)
{
	memset(o, 0, sizeof(*o));
	o->family = c->family == AF_INET ? 4 : 6;
	o->prefix = (uint8_t)c->prefix;
	memcpy(o->addr, c->addr, sizeof(o->addr));
}

int
ipc_cidr_get(const struct ipc_cidr *i, struct cidr *c)
{
	memset(c, 0, sizeof(*c));
	if ((i->family != 4 && i->family != 6) ||
	    i->prefix > (i->family == 4 ? 32 : 128))
		return -EBADMSG;
	c->family = i->family == 4 ? AF_INET : AF_INET6;
	c->prefix = i->prefix;
	memcpy(c->addr, i->addr, sizeof(c->addr));
	return 0;
}

int
ipc_dec_config(const uint8_t *p, size_t len, struct ipc_config_view *v)
{
	const struct ipc_config *c = (const void *)p;
	size_t cidrs;

	if (len < sizeof(*c) || c->nallow > IPC_CIDRS_MAX ||
	    c->ca_len > CONFIG_MAX_CA)
		return -EBADMSG;
	cidrs = (size_t)c->nallow * sizeof(struct ipc_cidr);
	if (len - sizeof(*c) != cidrs + c->ca_len)
		return -EBADMSG;
	if (c->connect_timeout_ms == 0 || c->total_timeout_ms == 0)
		return -EBADMSG;
	v->c = c;
	v->allow = (const void *)(p + sizeof(*c));
	v->ca = p + sizeof(*c) + cidrs;
	return 0;
}

int
ipc_dec_addrs(const uint8_t *p, size_t len, const struct ipc_addrs **a,
    const struct ipc_cidr **list)
{
	const struct ipc_addrs *h = (const void *)p;

	if (len < sizeof(*h) || h->n > IPC_ADDRS_MAX ||
	    len - sizeof(*h) != (size_t)h->n * sizeof(struct ipc_cidr))
		return -EBADMSG;
	*a = h;
	*list = (const void *)(p + sizeof(*h));
	return 0;
}

int
ipc_dec_fetch(const uint8_t *p, size_t len, struct ipc_fetch_view *v)
{
	const struct ipc_fetch *f = (const void *)p;
	const uint8_t *m, *u, *hd;
	size_t rest;

	if (len < sizeof(*f))
		return -EBADMSG;
	rest = len - sizeof(*f);
	if ((size_t)f->method_len + f->url_len + f->headers_len != rest ||
	    f->method_len > rest || f->url_len > rest ||
	    f->headers_len > rest || f->nheaders > rest / 2 ||
	    f->body_len > UINT32_MAX)
		return -EBADMSG;
	m = p + sizeof(*f);
	u = m + f->method_len;
	hd = u + f->url_len;
	if (!is_cstr(m, f->method_len) || f->method_len < 2 ||
	    !is_cstr(u, f->url_len) || f->url_len < 2 ||
	    !is_pairs(hd, f->headers_len, f->nheaders))
		return -EBADMSG;
	v->f = f;
	v->method = (const char *)m;
	v->url = (const char *)u;
	v->headers = (const char *)hd;
	return 0;
}

int
ipc_dec_opa(const uint8_t *p, size_t len, struct ipc_opa_view *v)
{
	const struct ipc_opa *o = (const void *)p;
	const uint8_t *u;

	if (len < sizeof(*o) || o->url_len > len - sizeof(*o) ||
	    len - sizeof(*o) - o->url_len != o->body_len ||
	    o->timeout_ms == 0)
		return -EBADMSG;
	u = p + sizeof(*o);
	if (!is_cstr(u, o->url_len) || o->url_len < 2)
		return -EBADMSG;
	v->o = o;
	v->url = (const char *)u;
	v->body = u + o->url_len;
	return 0;
}

int
ipc_dec_hello(const uint8_t *p, size_t len, struct ipc_hello *h)
{
	if (len != sizeof(*h))
		return -EBADMSG;
	memcpy(h, p, sizeof(*h));
	return h->seccomp > 1 ? -EBADMSG : 0;
}

/* A NUL-terminated field of a fixed struct; printable ASCII or UTF-8. */
static int
field_ok(const char *s, size_t size)
{
	size_t n = strnlen(s, size), i;

	if (n == size)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int
ipc_dec_result(const uint8_t *p, size_t len, struct ipc_result *r)
{
	if (len != sizeof(*r))
		return -EBADMSG;
	memcpy(r, p, sizeof(*r));
	if (r->code > PEP_CODE_LAST ||
	    (r->status != 0 && (r->status < 100 || r->status > 999)) ||
	    !field_ok(r->ip, sizeof(r->ip)) ||
	    !field_ok(r->msg, sizeof(r->msg)))
		return -EBADMSG;
	if (r->code == PEP_OK ? r->frame_len < FRAME_HDR + 2 ||
	    r->status == 0 : r->frame_len != 0)
		return -EBADMSG;
	return 0;
}

int
ipc_dec_opa_result(const uint8_t *p, size_t len, struct ipc_opa_result *r,
    const uint8_t **answer)
{
	if (len < sizeof(*r))
		return -EBADMSG;
	memcpy(r, p, sizeof(*r));
	if (len - sizeof(*r) != r->answer_len ||
	    (r->status != 0 && (r->status < 100 || r->status > 999)) ||
	    !field_ok(r->msg, sizeof(r->msg)))
		return -EBADMSG;
	*answer = p + sizeof(*r);
	return 0;
}

int
ipc_dec_probe_result(const uint8_t *p, size_t len,
    struct ipc_probe_result *r)
{
	size_t i;

	if (len != sizeof(*r))
		return -EBADMSG;
	memcpy(r, p, sizeof(*r));
	for (i = 0; i < IPC_PROBES; i++)
		if (r->err[i] < 0 || r->err[i] > 4095)
			return -EBADMSG;
	return 0;
}
