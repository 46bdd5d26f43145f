/*
 * libFuzzer target for pep-run's vhost-user back-end. The first byte
 * modulo 3 picks:
 *   0: the rest is a vhost-user byte stream fed to vu_feed() (no fds);
 *   1: the rest is guest memory holding a descriptor table and avail
 *      ring; virtq_pop() must reject anything outside the memory table
 *      and the chains it returns are read, written and parsed as vsock
 *      packets;
 *   2: a whole vsock device (vsock_new) with rx and tx rings in guest
 *      memory, an endpoint and a --vsock-socket: the rest is a script of
 *      steps, a hostile guest's packets on tx (vsock_conn.c), rx buffers,
 *      host-side reads, writes, closes and CONNECTs, and turns of the
 *      real event loop.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../runner/runner.h"

#define MEM_SIZE	65536
#define MEM_GPA		0x100000ULL
#define MEM_UA		0x7f0000000000ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_stream(const uint8_t *data, size_t size)
{
	static struct vu_dev d;
	size_t used;

	vu_init(&d, NULL, NULL);
	while (size > 0) {
		if (vu_feed(&d, data, size, &used) < 0 || used == 0)
			break;
		data += used;
		size -= used;
	}
	vu_reset(&d);
}

static void
fuzz_ring(const uint8_t *data, size_t size)
{
	static uint8_t mem[MEM_SIZE];
	struct vu_mem m = { 0 };
	struct virtq q = { 0 };
	struct vq_chain c;
	struct vsock_hdr h;
	uint8_t pkt[VSOCK_HDR_SIZE + 256];
	int i, r;

	if (size < 2)
		return;
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data + 1, size - 1 < MEM_SIZE ? size - 1 : MEM_SIZE);
	m.n = 1;
	m.r[0].gpa = MEM_GPA;
	m.r[0].size = MEM_SIZE;
	m.r[0].uaddr = MEM_UA;
	m.r[0].host = mem;
	q.num = 1u << (data[0] % 9);		/* 1..256 */
	q.desc_ua = MEM_UA;
	q.avail_ua = MEM_UA + 16 * q.num;
	q.used_ua = MEM_UA + 32768;
	q.kick_fd = q.call_fd = -1;
	if (virtq_map(&q, &m) < 0)
		return;
	for (i = 0; i < 64; i++) {
		r = virtq_pop(&q, &m, &c);
		if (r <= 0)
			break;
		if (vq_chain_read(&c, 0, pkt, sizeof(pkt)) >= VSOCK_HDR_SIZE)
			vsock_hdr_decode(&h, pkt);
		vsock_hdr_encode(&h, pkt);
		vq_chain_write(&c, 0, pkt, sizeof(pkt));
		virtq_push(&q, c.head, (uint32_t)c.in_len);
	}
	virtq_notify(&q);
}

/* ---- mode 2: the vsock device ------------------------------------- */

#define DEV_MEM		(1u << 20)
#define DEV_UA		0x7e0000000000ULL
/* queue q: descriptors at RING(q), avail at +0x1000, used at +0x2000 */
#define RING(q)		((uint64_t)(q) * 0x4000)
#define BUF(q, i)	(0x10000ULL + (q) * 0x40000ULL + (i) * 0x1100ULL)
#define BUF_SIZE	0x1100
#define NFD		8

static struct run_opts dev_opts;
static char dev_dir[64], dev_ep[108], dev_cmd[108];
static int dev_ep_fd = -1;
static uint8_t dev_mem[DEV_MEM];

struct script {
	const uint8_t *p;
	size_t n;
};

static unsigned
take(struct script *s)
{
	if (s->n == 0)
		return 0;
	s->n--;
	return *s->p++;
}

static void
dev_cleanup(void)
{
	unlink(dev_ep);
	unlink(dev_cmd);
	rmdir(dev_dir);
}

static void
dev_once(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *dir = dev_dir;

	if (dev_ep_fd >= 0)
		return;
	snprintf(dev_dir, sizeof(dev_dir), "/tmp/pep-fuzz-vsock.XXXXXX");
	if (mkdtemp(dir) == NULL || ev_init() < 0)
		return;
	atexit(dev_cleanup);
	/*
	 * The back-end's warnings (every malformed packet) go nowhere;
	 * libFuzzer and the sanitizers report on fd 2 regardless.
	 */
	stderr = fopen("/dev/null", "w");
	signal(SIGPIPE, SIG_IGN);	/* pep-run blocks it (vm.c) */
	snprintf(dev_ep, sizeof(dev_ep), "%s/ep.sock", dir);
	snprintf(dev_cmd, sizeof(dev_cmd), "%s/hv.sock", dir);
	memcpy(sa.sun_path, dev_ep, strlen(dev_ep) + 1);
	dev_ep_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (dev_ep_fd < 0 || bind(dev_ep_fd, (struct sockaddr *)&sa,
	    sizeof(sa)) < 0 || listen(dev_ep_fd, 64) < 0)
		abort();
	dev_opts.pepd_socket = dev_ep;
	dev_opts.vsock_port = 5000;
	dev_opts.vsock_max_conns = 3;
	dev_opts.socket_mode = 0600;
}

static void
dev_rings(struct vsock_dev *v, unsigned num)
{
	struct vu_region *r = &v->vu.mem.r[0];
	struct virtq *q;
	unsigned i;

	memset(dev_mem, 0, sizeof(dev_mem));
	v->vu.mem.n = 1;
	r->gpa = 0;
	r->size = DEV_MEM;
	r->uaddr = DEV_UA;
	r->host = dev_mem;
	for (i = 0; i < 2; i++) {
		q = &v->vu.vq[i];
		q->num = num;
		q->desc_ua = DEV_UA + RING(i);
		q->avail_ua = DEV_UA + RING(i) + 0x1000;
		q->used_ua = DEV_UA + RING(i) + 0x2000;
		if (virtq_map(q, &v->vu.mem) < 0)
			abort();
		q->enabled = q->started = 1;
	}
}

static void
put16(uint64_t off, uint16_t v)
{
	memcpy(dev_mem + off, &v, 2);
}

static uint16_t
get16(uint64_t off)
{
	uint16_t v;

	memcpy(&v, dev_mem + off, 2);
	return v;
}

/* One descriptor on queue q, the next avail slot; no kick needed. */
static void
dev_offer(unsigned qi, uint16_t *avail, unsigned num, uint64_t addr,
    uint32_t len, uint16_t flags)
{
	unsigned slot = *avail % num;
	uint64_t d = RING(qi) + 16 * slot;

	memcpy(dev_mem + d, &addr, 8);
	memcpy(dev_mem + d + 8, &len, 4);
	memcpy(dev_mem + d + 12, &flags, 2);
	put16(d + 14, 0);
	put16(RING(qi) + 0x1000 + 4 + 2 * slot, (uint16_t)slot);
	(*avail)++;
	put16(RING(qi) + 0x1000 + 2, *avail);
}

/*
 * A guest packet: mostly well-formed (so it gets past the checks into
 * the connection code), fields steered by the script; flag bit 7 takes
 * the whole 44-byte header from the script instead.
 */
static void
dev_tx(struct vsock_dev *v, struct script *s, uint16_t *avail)
{
	static const uint32_t ports[4] = { 5000, 6000, 0x40000000, 7 };
	unsigned num = v->vu.vq[1].num, slot = *avail % num;
	unsigned op = take(s), sp = take(s), f = take(s), len = take(s);
	uint8_t *b = dev_mem + BUF(1, slot);
	struct vsock_hdr h = { 0 };
	size_t n;

	if ((uint16_t)(*avail - v->vu.vq[1].last_avail) >= num)
		return;
	h.src_cid = f & 4 ? 99 : 3;
	h.dst_cid = f & 8 ? 3 : RUN_HOST_CID;
	h.src_port = 1000 + sp % 4;
	h.dst_port = ports[f & 3] + ((f & 3) == 2 ? sp % 4 : 0);
	h.type = f & 16 ? 2 : VSOCK_TYPE_STREAM;
	h.op = (uint16_t)(op % 9);
	h.flags = op >> 4;
	h.buf_alloc = (uint32_t)take(s) << 10;
	h.fwd_cnt = (uint32_t)take(s) << 8;
	h.len = f & 32 ? len * 257u : len;	/* 32: lie about the length */
	vsock_hdr_encode(&h, b);
	if (f & 128) {
		n = s->n < VSOCK_HDR_SIZE ? s->n : VSOCK_HDR_SIZE;
		memcpy(b, s->p, n);
		s->p += n;
		s->n -= n;
	}
	n = s->n < len ? s->n : len;
	memcpy(b + VSOCK_HDR_SIZE, s->p, n);
	s->p += n;
	s->n -= n;
	dev_offer(1, avail, num, BUF(1, slot), VSOCK_HDR_SIZE + len,
	    f & 64 ? 2 : 0);	/* 64: a writable descriptor on tx */
	vsock_tx_process(v);
}

static void
dev_rx(struct vsock_dev *v, struct script *s, uint16_t *avail)
{
	static const uint32_t sizes[4] = { VSOCK_HDR_SIZE, 64, 1024,
	    BUF_SIZE };
	unsigned num = v->vu.vq[0].num, k = take(s) % 8 + 1, sz = take(s);

	while (k-- > 0 && (uint16_t)(*avail - get16(RING(0) + 0x2000 + 2)) <
	    num)
		dev_offer(0, avail, num, BUF(0, *avail % num), sizes[sz % 4],
		    2);
	vsock_rx_process(v);
}

/* The host's side: endpoint connections and --vsock-socket clients. */
static void
dev_host(struct script *s, int *ep, int *cl)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned what = take(s), i = take(s) % NFD, n;
	char line[32];
	int fd;

	switch (what % 6) {
	case 0:		/* accept at the endpoint */
		fd = accept(dev_ep_fd, NULL, NULL);
		if (fd >= 0 && ep[i] < 0)
			ep[i] = fd;
		else if (fd >= 0)
			close(fd);
		break;
	case 1:		/* bytes from one side */
	case 2:
		fd = what % 6 == 1 ? ep[i] : cl[i];
		n = take(s);
		n = n < s->n ? n : (unsigned)s->n;
		if (fd >= 0 && send(fd, s->p, n, MSG_DONTWAIT |
		    MSG_NOSIGNAL) < 0)
			break;
		s->p += n;
		s->n -= n;
		break;
	case 3:		/* a close or a half-close */
		fd = what & 8 ? cl[i] : ep[i];
		if (fd >= 0 && (what & 16))
			shutdown(fd, SHUT_WR);
		else if (fd >= 0) {
			close(fd);
			*(what & 8 ? &cl[i] : &ep[i]) = -1;
		}
		break;
	case 4:		/* a host client: CONNECT P */
		if (cl[i] >= 0)
			break;
		memcpy(sa.sun_path, dev_cmd, strlen(dev_cmd) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fd);
			break;
		}
		n = (unsigned)snprintf(line, sizeof(line), what & 8 ?
		    "CONNECT %u\n" : "CONNECT %ux\n", 1000 + take(s) % 4);
		if (send(fd, line, n, MSG_NOSIGNAL) < 0) {
			close(fd);
			break;
		}
		cl[i] = fd;
		break;
	default:	/* read what the back-end sent */
		fd = what & 8 ? cl[i] : ep[i];
		if (fd >= 0)
			while (recv(fd, line, sizeof(line), MSG_DONTWAIT) > 0)
				;
		break;
	}
}

static void
fuzz_device(const uint8_t *data, size_t size)
{
	struct script s = { data, size };
	struct vsock_dev *v;
	uint16_t avail[2] = { 0, 0 };
	int ep[NFD], cl[NFD], fd, i, steps;

	dev_once();
	if (dev_ep_fd < 0)
		return;
	v = vsock_new(&dev_opts);
	if (v == NULL)
		return;
	if (vsock_cmd_listen(v, dev_cmd, NULL) < 0)
		abort();
	dev_rings(v, 4u << (take(&s) % 4));	/* 4..32 */
	for (i = 0; i < NFD; i++)
		ep[i] = cl[i] = -1;
	for (steps = 0; s.n > 0 && steps < 256 && v->failed == 0; steps++) {
		switch (take(&s) % 4) {
		case 0:
			dev_tx(v, &s, &avail[1]);
			break;
		case 1:
			dev_rx(v, &s, &avail[0]);
			break;
		case 2:
			dev_host(&s, ep, cl);
			break;
		default:
			ev_run_once(0);
			break;
		}
	}
	for (i = 0; i < NFD; i++) {
		if (ep[i] >= 0)
			close(ep[i]);
		if (cl[i] >= 0)
			close(cl[i]);
	}
	vsock_free(v);
	while ((fd = accept(dev_ep_fd, NULL, NULL)) >= 0)
		close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_stream(data + 1, size - 1);
		break;
	case 1:
		fuzz_ring(data + 1, size - 1);
		break;
	default:
		fuzz_device(data + 1, size - 1);
		break;
	}
	return 0;
}
