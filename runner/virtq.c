/*
 * Split virtqueues (virtio 1.x, section 2.7) in guest memory shared by
 * QEMU. Ring addresses are QEMU virtual addresses, descriptor addresses
 * guest-physical; both are translated through the memory table, and every
 * descriptor must lie wholly inside one region. Indirect descriptors and
 * event-idx are not offered, so they are errors here.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "runner.h"

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4
#define VRING_AVAIL_F_NO_INTERRUPT 1

static uint16_t
rd16(volatile const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, (const void *)p, sizeof(v));
	return le16toh(v);
}

static uint32_t
rd32(volatile const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, (const void *)p, sizeof(v));
	return le32toh(v);
}

static uint64_t
rd64(volatile const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, (const void *)p, sizeof(v));
	return le64toh(v);
}

static void
wr16(volatile uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy((void *)p, &v, sizeof(v));
}

static void
wr32(volatile uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy((void *)p, &v, sizeof(v));
}

/* Host pointer for [a, a+len) in one region, NULL when outside. */
static void *
vq_lookup(const struct vu_mem *m, uint64_t a, uint64_t len, int user)
{
	const struct vu_region *r;
	uint64_t base, off;
	unsigned i;

	for (i = 0; i < m->n; i++) {
		r = &m->r[i];
		base = user ? r->uaddr : r->gpa;
		if (a < base || r->host == NULL)
			continue;
		off = a - base;
		if (off >= r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

static void *
vq_gpa(const struct vu_mem *m, uint64_t gpa, uint64_t len)
{
	return vq_lookup(m, gpa, len, 0);
}

static void *
vq_uaddr(const struct vu_mem *m, uint64_t ua, uint64_t len)
{
	return vq_lookup(m, ua, len, 1);
}

int
virtq_map(struct virtq *q, const struct vu_mem *m)
{
	uint64_t n = q->num;

	q->desc = q->avail = q->used = NULL;
	if (n == 0 || q->desc_ua == 0 || m->n == 0)
		return 0;	/* not ready yet; mapped again later */
	q->desc = vq_uaddr(m, q->desc_ua, 16 * n);
	q->avail = vq_uaddr(m, q->avail_ua, 6 + 2 * n);
	q->used = vq_uaddr(m, q->used_ua, 6 + 8 * n);
	if (q->desc == NULL || q->avail == NULL || q->used == NULL) {
		q->desc = q->avail = q->used = NULL;
		return -EFAULT;
	}
	return 0;
}

static int
chain_add(struct vq_chain *c, const struct vu_mem *m, uint64_t addr,
    uint32_t len, int writable)
{
	struct vq_seg *s;
	uint8_t *p;

	if (c->nout + c->nin >= VQ_MAX_SEGS)
		return -E2BIG;
	if (!writable && c->nin > 0)
		return -EPROTO;		/* readable after writable */
	p = vq_gpa(m, addr, len);
	if (p == NULL && len > 0)
		return -EFAULT;
	s = &c->seg[c->nout + c->nin];
	s->p = p;
	s->len = len;
	if (writable) {
		c->nin++;
		c->in_len += len;
	} else {
		c->nout++;
		c->out_len += len;
	}
	return 0;
}

/* 1: a chain in c; 0: ring empty; <0: the guest broke the rules. */
int
virtq_pop(struct virtq *q, const struct vu_mem *m, struct vq_chain *c)
{
	volatile const uint8_t *d;
	uint16_t avail, i, flags;
	unsigned n;
	int r;

	if (q->desc == NULL)
		return 0;
	avail = rd16(q->avail + 2);
	if (avail == q->last_avail)
		return 0;
	if ((uint16_t)(avail - q->last_avail) > q->num)
		return -EPROTO;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	i = rd16(q->avail + 4 + 2 * (q->last_avail % q->num));
	memset(c, 0, offsetof(struct vq_chain, seg));
	c->head = i;
	for (n = 0;; n++) {
		if (i >= q->num || n >= q->num)
			return -EPROTO;
		d = q->desc + 16 * (size_t)i;
		flags = rd16(d + 12);
		if (flags & VRING_DESC_F_INDIRECT)
			return -EPROTO;
		r = chain_add(c, m, rd64(d), rd32(d + 8),
		    (flags & VRING_DESC_F_WRITE) != 0);
		if (r < 0)
			return r;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		i = rd16(d + 14);
	}
	q->last_avail++;
	return 1;
}

void
virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

void
virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	volatile uint8_t *e;

	if (q->used == NULL)
		return;
	e = q->used + 4 + 8 * (size_t)(q->used_idx % q->num);
	wr32(e, head);
	wr32(e + 4, len);
	q->used_idx++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	wr16(q->used + 2, q->used_idx);
	q->pending_call = 1;
}

void
virtq_notify(struct virtq *q)
{
	uint64_t one = 1;

	if (!q->pending_call || q->avail == NULL)
		return;
	q->pending_call = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (rd16(q->avail) & VRING_AVAIL_F_NO_INTERRUPT)
		return;
	if (q->call_fd >= 0 && write(q->call_fd, &one, sizeof(one)) < 0)
		return;
}

size_t
vq_chain_read(const struct vq_chain *c, size_t off, void *dst, size_t len)
{
	const struct vq_seg *s;
	size_t done = 0, k;
	unsigned i;

	for (i = 0; i < c->nout && done < len; i++) {
		s = &c->seg[i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		k = s->len - off;
		if (k > len - done)
			k = len - done;
		memcpy((uint8_t *)dst + done, s->p + off, k);
		done += k;
		off = 0;
	}
	return done;
}

size_t
vq_chain_write(const struct vq_chain *c, size_t off, const void *src,
    size_t len)
{
	const struct vq_seg *s;
	size_t done = 0, k;
	unsigned i;

	for (i = c->nout; i < c->nout + c->nin && done < len; i++) {
		s = &c->seg[i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		k = s->len - off;
		if (k > len - done)
			k = len - done;
		memcpy(s->p + off, (const uint8_t *)src + done, k);
		done += k;
		off = 0;
	}
	return done;
}
