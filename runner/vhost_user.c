/*
 * The vhost-user protocol (QEMU docs/interop/vhost-user.rst), back-end
 * side: message framing over the stream, feature negotiation, the memory
 * table and vring setup. Every length and index from the front-end is
 * checked; a malformed message is an error (the caller drops the
 * connection), never a crash. Only what virtio-vsock needs is accepted.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner.h"

enum vu_req {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25
};

#define VU_VERSION		0x1u
#define VU_FLAG_REPLY		0x4u
#define VU_F_PROTOCOL_FEATURES	(1ULL << 30)
#define VIRTIO_F_VERSION_1	(1ULL << 32)
#define VU_PROTO_F_MQ		(1ULL << 0)
#define VU_PROTO_F_CONFIG	(1ULL << 9)
#define VU_VRING_NOFD		(1ULL << 8)
#define VU_VRING_IDX_MASK	0xffULL
#define VU_MAX_QUEUE_SIZE	32768
#define VU_MAX_CONFIG		256

static const uint64_t vu_features = VIRTIO_F_VERSION_1 |
    VU_F_PROTOCOL_FEATURES;
static const uint64_t vu_protocol = VU_PROTO_F_MQ | VU_PROTO_F_CONFIG;

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void
vq_init(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
	q->kick_fd = -1;
	q->call_fd = -1;
}

void
vu_init(struct vu_dev *d, const struct vu_dev_ops *ops, void *priv)
{
	unsigned i;

	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->guest_cid = RUN_GUEST_CID;
	for (i = 0; i < VU_NQUEUES; i++)
		vq_init(&d->vq[i]);
}

static void
mem_unmap(struct vu_mem *m)
{
	unsigned i;

	for (i = 0; i < m->n; i++)
		if (m->r[i].map != NULL)
			munmap(m->r[i].map, m->r[i].map_len);
	memset(m, 0, sizeof(*m));
}

void
vu_close_fds(struct vu_dev *d)
{
	unsigned i;

	for (i = 0; i < d->nfds; i++)
		close(d->fds[i]);
	d->nfds = 0;
}

static void
vq_stop(struct vu_dev *d, unsigned i)
{
	struct virtq *q = &d->vq[i];

	if (q->started && d->ops != NULL && d->ops->queue_stop != NULL)
		d->ops->queue_stop(d, i);
	q->started = 0;
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = -1;
}

void
vu_reset(struct vu_dev *d)
{
	unsigned i;

	for (i = 0; i < VU_NQUEUES; i++) {
		vq_stop(d, i);
		if (d->vq[i].call_fd >= 0)
			close(d->vq[i].call_fd);
		vq_init(&d->vq[i]);
	}
	mem_unmap(&d->mem);
	vu_close_fds(d);
	d->features = d->protocol_features = 0;
	d->owner = 0;
	d->have = 0;
}

static int
reply(struct vu_dev *d, uint32_t req, const void *p, uint32_t size)
{
	uint32_t h[3] = { req, VU_VERSION | VU_FLAG_REPLY, size };

	memcpy(d->reply, h, sizeof(h));
	memcpy(d->reply + VU_HDR_SIZE, p, size);
	d->reply_len = VU_HDR_SIZE + size;
	return 0;
}

static int
reply_u64(struct vu_dev *d, uint32_t req, uint64_t v)
{
	return reply(d, req, &v, sizeof(v));
}

/*
 * Map one region of the table. Its file must hold all of [mmap_offset,
 * mmap_offset + size): a page past the end of a shorter file would be
 * SIGBUS at the first touch, so such a region is refused up front.
 */
static int
map_region(struct vu_region *r, const uint8_t *p, int fd)
{
	uint64_t off = get_u64(p + 24);
	struct stat st;
	void *map;

	r->gpa = get_u64(p);
	r->size = get_u64(p + 8);
	r->uaddr = get_u64(p + 16);
	if (r->size == 0 || r->size > (1ULL << 40) || off > (1ULL << 40) ||
	    r->gpa + r->size < r->gpa || r->uaddr + r->size < r->uaddr)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < 0 || (uint64_t)st.st_size < off + r->size)
		return -ERANGE;
	r->map_len = (size_t)(r->size + off);
	map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	r->map = map;
	r->host = (uint8_t *)map + off;
	return 0;
}

static int
set_mem_table(struct vu_dev *d, const uint8_t *p, uint32_t size)
{
	uint32_t n, i;
	int r;

	if (size < 8)
		return -EBADMSG;
	n = get_u32(p);
	if (n == 0 || n > VU_MAX_REGIONS || size != 8 + 32 * n ||
	    d->nfds != n)
		return -EBADMSG;
	mem_unmap(&d->mem);
	for (i = 0; i < n; i++) {
		r = map_region(&d->mem.r[i], p + 8 + 32 * i, d->fds[i]);
		d->mem.n = i + 1;
		if (r == -ERANGE)
			d->why = "a memory region is larger than its file";
		if (r < 0)
			return r;
	}
	vu_close_fds(d);
	for (i = 0; i < VU_NQUEUES; i++)
		if (d->vq[i].desc_ua != 0 && virtq_map(&d->vq[i], &d->mem) < 0)
			return -EFAULT;
	return 0;
}

/* {u32 index, u32 num}: the index must name one of our queues. */
static int
vring_state(const uint8_t *p, uint32_t size, unsigned *idx, uint32_t *num)
{
	if (size != 8)
		return -EBADMSG;
	*idx = get_u32(p);
	*num = get_u32(p + 4);
	return *idx < VU_NQUEUES ? 0 : -EBADMSG;
}

static void
maybe_start(struct vu_dev *d, unsigned i)
{
	struct virtq *q = &d->vq[i];

	if (q->started || q->kick_fd < 0 || !q->enabled || q->desc == NULL)
		return;
	q->started = 1;
	if (d->ops != NULL && d->ops->queue_start != NULL)
		d->ops->queue_start(d, i);
}

static int
set_vring_addr(struct vu_dev *d, const uint8_t *p, uint32_t size)
{
	struct virtq *q;
	uint32_t idx;

	if (size != 40)
		return -EBADMSG;
	idx = get_u32(p);
	if (idx >= VU_NQUEUES)
		return -EBADMSG;
	q = &d->vq[idx];
	q->desc_ua = get_u64(p + 8);
	q->used_ua = get_u64(p + 16);
	q->avail_ua = get_u64(p + 24);
	if (virtq_map(q, &d->mem) < 0)
		return -EFAULT;
	maybe_start(d, idx);
	return 0;
}

/* KICK, CALL, ERR: u64 index | NOFD; the fd arrives with the message. */
static int
set_vring_fd(struct vu_dev *d, uint32_t req, const uint8_t *p,
    uint32_t size)
{
	uint64_t v;
	unsigned idx;
	int fd = -1;
	struct virtq *q;

	if (size != 8)
		return -EBADMSG;
	v = get_u64(p);
	idx = (unsigned)(v & VU_VRING_IDX_MASK);
	if (idx >= VU_NQUEUES || (v & ~(VU_VRING_IDX_MASK | VU_VRING_NOFD)))
		return -EBADMSG;
	if (!(v & VU_VRING_NOFD)) {
		if (d->nfds != 1)
			return -EBADMSG;
		fd = d->fds[0];
		d->nfds = 0;
	}
	q = &d->vq[idx];
	if (req == VU_SET_VRING_ERR) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (req == VU_SET_VRING_CALL) {
		if (q->call_fd >= 0)
			close(q->call_fd);
		q->call_fd = fd;
		return 0;
	}
	vq_stop(d, idx);
	q->kick_fd = fd;
	if (fd < 0)
		return -EOPNOTSUPP;	/* polling mode: not offered */
	if (!(d->features & VU_F_PROTOCOL_FEATURES))
		q->enabled = 1;
	maybe_start(d, idx);
	return 0;
}

static int
get_config(struct vu_dev *d, const uint8_t *p, uint32_t size)
{
	uint8_t out[12 + VU_MAX_CONFIG] = { 0 };
	uint8_t cfg[8];
	uint32_t off, len;

	if (size < 12)
		return -EBADMSG;
	off = get_u32(p);
	len = get_u32(p + 4);
	if (len > VU_MAX_CONFIG || size != 12 + len || off > VU_MAX_CONFIG)
		return -EBADMSG;
	memcpy(out, p, 12);
	memcpy(cfg, &d->guest_cid, sizeof(cfg));
	if (off < sizeof(cfg))
		memcpy(out + 12, cfg + off,
		    len < sizeof(cfg) - off ? len : sizeof(cfg) - off);
	return reply(d, VU_GET_CONFIG, out, 12 + len);
}

static int
vring_msg(struct vu_dev *d, uint32_t req, const uint8_t *p, uint32_t size)
{
	struct virtq *q;
	unsigned idx;
	uint32_t num, st[2];
	int r;

	r = vring_state(p, size, &idx, &num);
	if (r < 0)
		return r;
	q = &d->vq[idx];
	switch (req) {
	case VU_SET_VRING_NUM:
		if (num == 0 || num > VU_MAX_QUEUE_SIZE || (num & (num - 1)))
			return -EBADMSG;
		q->num = num;
		q->desc = q->avail = q->used = NULL;
		return q->desc_ua != 0 ? virtq_map(q, &d->mem) : 0;
	case VU_SET_VRING_BASE:
		if (num > 0xffff)
			return -EBADMSG;
		q->last_avail = q->used_idx = (uint16_t)num;
		return 0;
	case VU_GET_VRING_BASE:
		vq_stop(d, idx);
		st[0] = idx;
		st[1] = q->last_avail;
		return reply(d, req, st, sizeof(st));
	default:	/* VU_SET_VRING_ENABLE */
		if (num > 1)
			return -EBADMSG;
		q->enabled = (int)num;
		if (num)
			maybe_start(d, idx);
		else
			vq_stop(d, idx);
		return 0;
	}
}

static int
u64_msg(struct vu_dev *d, uint32_t req, const uint8_t *p, uint32_t size)
{
	uint64_t v;

	if (size != 8)
		return -EBADMSG;
	v = get_u64(p);
	if (req == VU_SET_FEATURES) {
		if (v & ~vu_features)
			return -EBADMSG;
		d->features = v;
	} else {
		if (v & ~vu_protocol)
			return -EBADMSG;
		d->protocol_features = v;
	}
	return 0;
}

/* One complete message; fds (if any) are in d->fds. */
int
vu_handle(struct vu_dev *d, uint32_t req, uint32_t flags, const uint8_t *p,
    uint32_t size)
{
	d->reply_len = 0;
	d->why = NULL;
	if ((flags & 3) != VU_VERSION || size > VU_MAX_PAYLOAD)
		return -EBADMSG;
	switch (req) {
	case VU_GET_FEATURES:
		return reply_u64(d, req, vu_features);
	case VU_GET_PROTOCOL_FEATURES:
		return reply_u64(d, req, vu_protocol);
	case VU_GET_QUEUE_NUM:
		return reply_u64(d, req, VU_NQUEUES);
	case VU_SET_FEATURES:
	case VU_SET_PROTOCOL_FEATURES:
		return u64_msg(d, req, p, size);
	case VU_SET_OWNER:
		d->owner = 1;
		return 0;
	case VU_RESET_OWNER:
		vu_reset(d);
		return 0;
	case VU_SET_MEM_TABLE:
		return set_mem_table(d, p, size);
	case VU_SET_VRING_NUM:
	case VU_SET_VRING_BASE:
	case VU_GET_VRING_BASE:
	case VU_SET_VRING_ENABLE:
		return vring_msg(d, req, p, size);
	case VU_SET_VRING_ADDR:
		return set_vring_addr(d, p, size);
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		return set_vring_fd(d, req, p, size);
	case VU_GET_CONFIG:
		return get_config(d, p, size);
	case VU_SET_CONFIG:
		return 0;	/* guest_cid is ours; ignore writes */
	default:
		return -EOPNOTSUPP;
	}
}

/* Bytes still missing from the current message (header first). */
size_t
vu_need(const struct vu_dev *d)
{
	uint32_t size;

	if (d->have < VU_HDR_SIZE)
		return VU_HDR_SIZE - d->have;
	size = get_u32(d->buf + 8);
	if (size > VU_MAX_PAYLOAD)
		return 1;	/* vu_feed reports the error */
	return VU_HDR_SIZE + size - d->have;
}

/*
 * Bytes from the stream: assemble header + payload, handle each complete
 * message. A reply (if any) is left in d->reply for the caller to send
 * before feeding more: *used says how much of data was consumed.
 */
int
vu_feed(struct vu_dev *d, const uint8_t *data, size_t len, size_t *used)
{
	uint32_t req, flags, size;
	size_t need, take;
	int r;

	*used = 0;
	d->reply_len = 0;
	while (*used < len) {
		need = VU_HDR_SIZE;
		if (d->have >= VU_HDR_SIZE) {
			size = get_u32(d->buf + 8);
			if (size > VU_MAX_PAYLOAD)
				return -EBADMSG;
			need += size;
		}
		take = need - d->have;
		if (take > len - *used)
			take = len - *used;
		memcpy(d->buf + d->have, data + *used, take);
		d->have += take;
		*used += take;
		if (d->have < VU_HDR_SIZE)
			continue;
		size = get_u32(d->buf + 8);
		if (size > VU_MAX_PAYLOAD)
			return -EBADMSG;
		if (d->have < VU_HDR_SIZE + size)
			continue;
		req = get_u32(d->buf);
		flags = get_u32(d->buf + 4);
		d->have = 0;
		d->last_req = req;
		r = vu_handle(d, req, flags, d->buf + VU_HDR_SIZE, size);
		vu_close_fds(d);
		if (r < 0)
			return r;
		if (d->reply_len > 0)
			return 0;
	}
	return 0;
}
