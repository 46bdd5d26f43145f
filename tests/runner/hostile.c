/*
 * hostile: pep-run's hostile-guest harness. pep-run starts it as its QEMU
 * (--qemu build/hostile), so the back-end under test is the real one in
 * the real pep-run, event loop, signals and all: hostile finds the
 * vhost-user and QMP sockets in QEMU's argv, plays QEMU (a memfd as guest
 * RAM, eventfds for kicks and calls, vhost-user messages with SCM_RIGHTS,
 * a QMP server) and a malicious guest writing rings and packets itself.
 * One case per run, from the environment:
 *   HOSTILE_CASE  replies | descidx | conncap | backlog | budget | memtable
 *                 | idle
 *                 | perf (not hostile: a fast guest, to time pep-run alone)
 *   HOSTILE_OUT   file for the results: "ok - ...", "not ok - ...", "# ..."
 *   HOSTILE_EP    the endpoint's unix socket (hostile serves it)
 *   HOSTILE_CMD   pep-run's --vsock-socket, for a host client
 *   HOSTILE_CAP   the connection cap pep-run should hold
 * The last line is "done" when the case ran to its end. A case's guest
 * "powers off" by exiting 0 after pep-run asked over QMP, or at its end.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../runner/runner.h"

#define MEM_SIZE	(16u << 20)
#define MEM_UA		0x7f0000000000ULL	/* "QEMU's" address of RAM */
#define RING_OFF(q)	((uint64_t)(q) * 0x10000)
#define BUF_OFF(q)	((q) == 0 ? 0x100000ULL : 0x800000ULL)
#define BUF_SIZE	(4096 + 64)
#define QMAX		1024
#define GUEST_CID	3
#define EP_PORT		5000

enum { VU_GET_FEATURES = 1, VU_SET_FEATURES, VU_SET_OWNER,
	VU_SET_MEM_TABLE = 5, VU_SET_VRING_NUM = 8, VU_SET_VRING_ADDR,
	VU_SET_VRING_BASE, VU_SET_VRING_KICK = 12, VU_SET_VRING_CALL,
	VU_GET_PROTOCOL_FEATURES = 15, VU_SET_PROTOCOL_FEATURES,
	VU_SET_VRING_ENABLE = 18 };

struct gq {		/* one virtqueue, from the guest's side */
	unsigned num;
	volatile uint8_t *desc, *avail, *used;
	uint16_t avail_idx, used_seen;
	int kick, call;
};

static struct {
	FILE *out;
	const char *vu_path, *qmp_path, *ep_path, *cmd_path;
	int vu, qmp_listen, qmp, ep;
	int powerdown;
	int vu_dead;
	uint8_t *mem;
	struct gq q[2];			/* 0 rx, 1 tx */
	char qline[1024];
	size_t qlen;
	int qcaps;	/* qmp_capabilities done on this connection */
	void (*on_rx)(const struct vsock_hdr *h, const uint8_t *p);
} H = { .vu = -1, .qmp_listen = -1, .qmp = -1, .ep = -1 };

static uint64_t
ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(H.out, fmt, ap);
	va_end(ap);
	fputc('\n', H.out);
	fflush(H.out);
}

static void
check(int cond, const char *fmt, ...)
{
	va_list ap;

	fputs(cond ? "ok - " : "not ok - ", H.out);
	va_start(ap, fmt);
	vfprintf(H.out, fmt, ap);
	va_end(ap);
	fputc('\n', H.out);
	fflush(H.out);
}

static _Noreturn void
die(const char *what)
{
	say("not ok - harness: %s: %s", what, strerror(errno));
	exit(1);
}

/* ---- QEMU's argv -------------------------------------------------- */

/* "socket,id=vsock0,path=P" and "unix:Q,server=on,wait=off"; ",," is ','. */
static char *
opt_value(const char *s, const char *key)
{
	const char *p = strstr(s, key);
	char *v, *d;

	if (p == NULL)
		return NULL;
	p += strlen(key);
	v = d = strdup(p);
	if (v == NULL)
		die("strdup");
	for (; *p != '\0'; p++) {
		if (*p == ',' && p[1] == ',')
			p++;
		else if (*p == ',')
			break;
		*d++ = *p;
	}
	*d = '\0';
	return v;
}

static void
parse_argv(int argc, char **argv)
{
	int i;

	for (i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "-chardev") == 0 &&
		    strncmp(argv[i + 1], "socket,id=vsock0,", 17) == 0)
			H.vu_path = opt_value(argv[i + 1], "path=");
		if (strcmp(argv[i], "-qmp") == 0)
			H.qmp_path = opt_value(argv[i + 1], "unix:");
	}
	if (H.vu_path == NULL || H.qmp_path == NULL) {
		errno = EINVAL;
		die("no vhost-user or QMP socket in the QEMU command line");
	}
}

/* ---- unix sockets, QMP -------------------------------------------- */

static int
unix_sock(const char *path, int do_listen, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (do_listen) {
		unlink(path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(fd, backlog) < 0)
			die(path);
		return fd;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static void
qmp_write(const char *s)
{
	if (write(H.qmp, s, strlen(s)) < 0)
		return;
}

static void
qmp_io(void)
{
	char c;
	int fd;

	if (H.qmp < 0) {
		fd = accept4(H.qmp_listen, NULL, NULL, SOCK_NONBLOCK);
		if (fd < 0)
			return;
		H.qmp = fd;
		H.qlen = 0;
		H.qcaps = 0;
		qmp_write("{\"QMP\": {\"version\": {}, \"capabilities\": []}}"
		    "\r\n");
	}
	while (read(H.qmp, &c, 1) == 1) {
		if (c != '\n' && H.qlen + 1 < sizeof(H.qline)) {
			H.qline[H.qlen++] = c;
			continue;
		}
		H.qline[H.qlen] = '\0';
		H.qlen = 0;
		/* as QEMU: nothing but qmp_capabilities before it */
		if (strstr(H.qline, "qmp_capabilities") != NULL) {
			H.qcaps = 1;
		} else if (!H.qcaps) {
			qmp_write("{\"error\": {\"class\": \"CommandNotFound\", "
			    "\"desc\": \"Expecting capabilities negotiation "
			    "with 'qmp_capabilities'\"}}\r\n");
			continue;
		} else if (strstr(H.qline, "system_powerdown") != NULL) {
			H.powerdown = 1;
		}
		qmp_write("{\"return\": {}}\r\n");
	}
}

/* ---- vhost-user, as QEMU ------------------------------------------- */

static int
vu_send(uint32_t req, const void *p, uint32_t size, int fd)
{
	uint8_t buf[VU_HDR_SIZE + 512];
	uint32_t h[3] = { req, 1, size };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { buf, VU_HDR_SIZE + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	memcpy(buf, h, sizeof(h));
	if (size > 0)
		memcpy(buf + VU_HDR_SIZE, p, size);
	if (fd >= 0) {
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(H.vu, &mh, MSG_NOSIGNAL) < 0) {
		if (errno != EAGAIN)
			H.vu_dead = 1;
		return -errno;
	}
	return 0;
}

static void pump(unsigned wait_ms);

/* The u64 reply to a GET request, waiting at most timeout ms. */
static int
vu_get(uint32_t req, uint64_t *v, unsigned timeout)
{
	uint8_t buf[VU_HDR_SIZE + 8];
	uint64_t end = ms() + timeout;
	size_t have = 0;
	ssize_t n;

	if (vu_send(req, NULL, 0, -1) < 0)
		return -EPIPE;
	while (have < sizeof(buf)) {
		n = read(H.vu, buf + have, sizeof(buf) - have);
		if (n == 0)
			return -ECONNRESET;
		if (n > 0) {
			have += (size_t)n;
			continue;
		}
		if (errno != EAGAIN)
			return -errno;
		if (ms() >= end)
			return -ETIMEDOUT;
		pump(1);
	}
	memcpy(v, buf + VU_HDR_SIZE, 8);
	return 0;
}

static void
vu_u64(uint32_t req, uint64_t v)
{
	vu_send(req, &v, 8, -1);
}

static void
vu_state(uint32_t req, uint32_t idx, uint32_t num)
{
	uint32_t s[2] = { idx, num };

	vu_send(req, s, sizeof(s), -1);
}

static void
vu_connect(void)
{
	uint64_t end = ms() + 10000;
	int fd;

	for (;;) {
		fd = unix_sock(H.vu_path, 0, 0);
		if (fd >= 0)
			break;
		if (ms() > end)
			die("connect to the vhost-user socket");
		usleep(20000);
	}
	H.vu = fd;
}

/*
 * Guest RAM: MEM_SIZE bytes at guest address 0, a memfd of file_size
 * bytes (short of MEM_SIZE for the memtable case). Rings at RING_OFF,
 * buffers at BUF_OFF; both queues get num entries.
 */
static void
vu_setup(unsigned num_rx, unsigned num_tx, size_t file_size,
    uint64_t ring_base)
{
	/* {u32 n, u32 pad}, then {gpa, size, uaddr, mmap_offset} */
	const uint64_t region[4] = { 0, MEM_SIZE, MEM_UA, 0 };
	uint8_t mt[8 + 32] = { 1 };
	uint8_t addr[40] = { 0 };
	uint64_t feat;
	uint64_t a;
	unsigned q;
	int mfd;

	vu_connect();
	if (vu_get(VU_GET_FEATURES, &feat, 5000) < 0)
		die("GET_FEATURES");
	vu_u64(VU_SET_FEATURES, (1ULL << 32) | (1ULL << 30));
	if (vu_get(VU_GET_PROTOCOL_FEATURES, &feat, 5000) < 0)
		die("GET_PROTOCOL_FEATURES");
	vu_u64(VU_SET_PROTOCOL_FEATURES, feat & ((1ULL << 0) | (1ULL << 9)));
	vu_send(VU_SET_OWNER, NULL, 0, -1);
	mfd = memfd_create("hostile-ram", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)file_size) < 0)
		die("memfd");
	H.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd,
	    0);
	if (H.mem == MAP_FAILED)
		die("mmap");
	memcpy(mt + 8, region, sizeof(region));
	vu_send(VU_SET_MEM_TABLE, mt, sizeof(mt), mfd);
	close(mfd);
	for (q = 0; q < 2; q++) {
		struct gq *g = &H.q[q];
		uint64_t base = ring_base + RING_OFF(q);

		g->num = q == 0 ? num_rx : num_tx;
		if (base + 0x10000 <= file_size) {
			g->desc = H.mem + base;
			g->avail = H.mem + base + 0x4000;
			g->used = H.mem + base + 0x8000;
		}
		g->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		g->call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (g->kick < 0 || g->call < 0)
			die("eventfd");
		vu_state(VU_SET_VRING_NUM, q, g->num);
		vu_state(VU_SET_VRING_BASE, q, 0);
		memcpy(addr, &q, 4);
		a = MEM_UA + base;
		memcpy(addr + 8, &a, 8);
		a = MEM_UA + base + 0x8000;
		memcpy(addr + 16, &a, 8);
		a = MEM_UA + base + 0x4000;
		memcpy(addr + 24, &a, 8);
		vu_send(VU_SET_VRING_ADDR, addr, sizeof(addr), -1);
		vu_send(VU_SET_VRING_CALL, &(uint64_t){ q }, 8, g->call);
		vu_send(VU_SET_VRING_KICK, &(uint64_t){ q }, 8, g->kick);
		vu_state(VU_SET_VRING_ENABLE, q, 1);
	}
	/* a round trip: everything above has been taken */
	if (vu_get(VU_GET_FEATURES, &feat, 5000) < 0 && file_size == MEM_SIZE)
		die("GET_FEATURES after setup");
}

/* ---- rings, from the guest's side ---------------------------------- */

static uint16_t
rd16(volatile const uint8_t *p)
{
	uint16_t v;

	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	memcpy(&v, (const void *)p, 2);
	return v;
}

static void
wr16(volatile uint8_t *p, uint16_t v)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy((void *)p, &v, 2);
}

static void
set_desc(struct gq *g, unsigned i, uint64_t gpa, uint32_t len,
    uint16_t flags)
{
	volatile uint8_t *d = g->desc + 16 * i;

	memcpy((void *)d, &gpa, 8);
	memcpy((void *)(d + 8), &len, 4);
	memcpy((void *)(d + 12), &flags, 2);
	memset((void *)(d + 14), 0, 2);
}

static void
kick(const struct gq *g)
{
	uint64_t one = 1;

	if (write(g->kick, &one, 8) < 0)
		return;
}

static unsigned
tx_free(void)
{
	struct gq *g = &H.q[1];

	return g->num - (uint16_t)(g->avail_idx - rd16(g->used + 2));
}

/* One packet into the tx ring (no kick); -1 when the ring is full. */
static int
tx_put(const struct vsock_hdr *h, const void *payload)
{
	struct gq *g = &H.q[1];
	unsigned slot = g->avail_idx % g->num;
	uint8_t *b = H.mem + BUF_OFF(1) + (uint64_t)slot * BUF_SIZE;

	if (tx_free() == 0)
		return -1;
	vsock_hdr_encode(h, b);
	if (h->len > 0 && payload != NULL)
		memcpy(b + VSOCK_HDR_SIZE, payload, h->len);
	set_desc(g, slot, BUF_OFF(1) + (uint64_t)slot * BUF_SIZE,
	    VSOCK_HDR_SIZE + h->len, 0);
	memcpy((void *)(g->avail + 4 + 2 * slot), &(uint16_t){ slot }, 2);
	g->avail_idx++;
	wr16(g->avail + 2, g->avail_idx);
	return 0;
}

static uint32_t guest_fwd;	/* bytes the guest took from its rx ring */

static void
pkt(struct vsock_hdr *h, uint16_t op, uint32_t sport, uint32_t dport)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = GUEST_CID;
	h->dst_cid = RUN_HOST_CID;
	h->src_port = sport;
	h->dst_port = dport;
	h->type = VSOCK_TYPE_STREAM;
	h->op = op;
	h->buf_alloc = 64 * 1024;
	h->fwd_cnt = guest_fwd;
}

/* Send one packet, waiting (and pumping) for a free tx slot. */
static int
tx_send(uint16_t op, uint32_t sport, uint32_t dport, const void *p,
    uint32_t len)
{
	struct vsock_hdr h;
	uint64_t end = ms() + 5000;

	pkt(&h, op, sport, dport);
	h.len = len;
	while (tx_put(&h, p) < 0) {
		if (ms() > end || H.vu_dead)
			return -1;
		kick(&H.q[1]);
		pump(2);
	}
	kick(&H.q[1]);
	return 0;
}

/* Offer every rx slot not yet offered; kick if any was. */
static void
rx_post(void)
{
	struct gq *g = &H.q[0];
	unsigned slot, n = 0;

	while ((uint16_t)(g->avail_idx - g->used_seen) < g->num) {
		slot = g->avail_idx % g->num;
		set_desc(g, slot, BUF_OFF(0) + (uint64_t)slot * BUF_SIZE,
		    BUF_SIZE, 2 /* VRING_DESC_F_WRITE */);
		memcpy((void *)(g->avail + 4 + 2 * slot), &(uint16_t){ slot },
		    2);
		g->avail_idx++;
		n++;
	}
	if (n > 0) {
		wr16(g->avail + 2, g->avail_idx);
		kick(g);
	}
}

static int rx_posting;

/* What the back-end put in the rx ring, to H.on_rx. */
static void
rx_poll(void)
{
	struct gq *g = &H.q[0];
	struct vsock_hdr h;
	volatile uint8_t *e;
	uint32_t id;
	uint8_t *b;

	if (g->used == NULL)
		return;
	while (g->used_seen != rd16(g->used + 2)) {
		e = g->used + 4 + 8 * (g->used_seen % g->num);
		memcpy(&id, (const void *)e, 4);
		b = H.mem + BUF_OFF(0) + (uint64_t)(id % g->num) * BUF_SIZE;
		vsock_hdr_decode(&h, b);
		if (h.len > BUF_SIZE - VSOCK_HDR_SIZE)
			h.len = 0;
		g->used_seen++;
		if (H.on_rx != NULL)
			H.on_rx(&h, b + VSOCK_HDR_SIZE);
	}
	if (rx_posting)
		rx_post();
}

static int tx_call_flood;	/* the budget case's thread reads tx calls */

/* Serve QMP, drain calls, read the rx ring, for wait_ms (0: once). */
static void
pump(unsigned wait_ms)
{
	struct pollfd p[4];
	uint64_t end = ms() + wait_ms, c;
	int n;

	do {
		n = 0;
		p[n++] = (struct pollfd){ .fd = H.qmp_listen,
		    .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = H.qmp, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = H.q[0].call, .events = POLLIN };
		if (!tx_call_flood)
			p[n++] = (struct pollfd){ .fd = H.q[1].call,
			    .events = POLLIN };
		poll(p, (nfds_t)n, wait_ms > 0 ? 1 : 0);
		qmp_io();
		if (H.q[0].call >= 0 && read(H.q[0].call, &c, 8) < 0)
			c = 0;
		if (!tx_call_flood && H.q[1].call >= 0 &&
		    read(H.q[1].call, &c, 8) < 0)
			c = 0;
		rx_poll();
	} while (ms() < end);
}

/* pump until *flag or timeout; returns the ms it took, or -1. */
static long
wait_for(const int *flag, unsigned timeout)
{
	uint64_t t0 = ms();

	while (!*flag) {
		if (ms() - t0 > timeout)
			return -1;
		pump(1);
	}
	return (long)(ms() - t0);
}

/* Anonymous memory only: the guest RAM pep-run touches is shared. */
static long
rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "RssAnon:", 8) == 0)
			kb = strtol(line + 8, NULL, 10);
	fclose(f);
	return kb;
}

static uint64_t
tx_used_total(uint64_t *total, uint16_t *last)
{
	uint16_t now = rd16(H.q[1].used + 2);

	*total += (uint16_t)(now - *last);
	*last = now;
	return *total;
}

/* ---- case: replies ------------------------------------------------- */

static unsigned n_rst, n_other;
static uint32_t marker_port;
static int marker_seen;

static void
replies_rx(const struct vsock_hdr *h, const uint8_t *p)
{
	(void)p;
	if (h->op == VSOCK_OP_RST && h->dst_port == marker_port)
		marker_seen = 1;
	else if (h->op == VSOCK_OP_RST)
		n_rst++;
	else
		n_other++;
}

/*
 * The tx ring kept full of packets that each earn a control reply (a
 * CREDIT_REQUEST for no connection: RST), no rx buffer ever offered.
 * Every slot holds its packet; a refill is one store of avail->idx.
 */
static uint64_t
reply_flood(unsigned secs, long limit_kb, long *grew)
{
	struct gq *g = &H.q[1];
	pid_t pp = getppid();
	long rss0 = rss_kb(pp), rss;
	uint64_t end = ms() + secs * 1000, next = 0, total = 0;
	uint16_t last = rd16(g->used + 2), u;
	struct vsock_hdr h;
	unsigned i;

	for (i = 0; i < g->num; i++) {
		pkt(&h, VSOCK_OP_CREDIT_REQUEST, 30000 + i, 31000 + i);
		tx_put(&h, NULL);
	}
	kick(g);
	*grew = 0;
	while (ms() < end) {
		u = rd16(g->used + 2);
		if ((uint16_t)(u + g->num) != g->avail_idx) {
			g->avail_idx = (uint16_t)(u + g->num);
			wr16(g->avail + 2, g->avail_idx);
			kick(g);
		}
		tx_used_total(&total, &last);
		if (ms() >= next) {
			next = ms() + 20;
			rss = rss_kb(pp);
			*grew = rss - rss0;
			if (*grew > limit_kb)
				break;	/* failed: stop before it hurts */
			pump(0);
		}
	}
	return total;
}

static void
case_replies(void)
{
	struct gq *t = &H.q[1];
	uint64_t total, after;
	uint16_t last;
	long grew;
	unsigned i;

	vu_setup(256, 256, MEM_SIZE, 0);
	H.on_rx = replies_rx;
	total = reply_flood(2, 32 * 1024, &grew);
	check(grew < 8 * 1024, "tx flood, no rx buffers: pep-run grew "
	    "%ld KiB (under 8 MiB)", grew);
	/* each packet earns a reply, and the replies waiting are capped
	 * at the ring's size: exactly a ring's worth is taken, no more */
	check(total <= t->num, "tx stops while a ring's worth of "
	    "replies waits: %llu packets taken (ring %u)",
	    (unsigned long long)total, t->num);
	/* offer rx buffers: the replies drain, and tx runs again */
	last = rd16(t->used + 2);
	after = 0;
	rx_posting = 1;
	rx_post();
	for (i = 0; i < 100 && after < 4 * t->num; i++) {
		t->avail_idx = (uint16_t)(rd16(t->used + 2) + t->num);
		wr16(t->avail + 2, t->avail_idx);
		kick(t);
		pump(10);
		tx_used_total(&after, &last);
	}
	check(n_rst >= t->num && after >= 4 * t->num, "rx buffers "
	    "offered: %u replies arrive and tx resumes (%llu more packets)",
	    n_rst, (unsigned long long)after);
	/* drain: stop refilling, wait for the ring to empty and settle */
	for (i = 0; i < 200 && tx_free() < t->num; i++)
		pump(5);
	pump(200);
	n_rst = n_other = 0;
	for (i = 0; i < 16; i++) {
		struct vsock_hdr h;

		pkt(&h, VSOCK_OP_CREDIT_REQUEST, 32000 + i, 5000);
		h.src_cid = i < 8 ? 99 : GUEST_CID;
		h.dst_cid = i < 8 ? RUN_HOST_CID : 7;
		while (tx_put(&h, NULL) < 0) {
			kick(t);
			pump(2);
		}
	}
	kick(t);
	marker_port = 33000;
	tx_send(VSOCK_OP_CREDIT_REQUEST, marker_port, 5000, NULL, 0);
	wait_for(&marker_seen, 3000);
	check(marker_seen && n_rst == 0, "misaddressed packets (wrong source "
	    "or destination CID) are dropped, not answered: %u RST", n_rst);
}

/* ---- case: conncap ------------------------------------------------- */

#define CC_MAX	8192
static uint8_t cc_state[CC_MAX];	/* 1 RESPONSE, 2 RST */
static unsigned cc_resp, cc_rst, cc_replies;
static int host_req, host_rw;
static uint32_t host_port;
static char host_data[64];

static void
conncap_rx(const struct vsock_hdr *h, const uint8_t *p)
{
	uint32_t i = h->dst_port - 20000;

	if (h->dst_port == 6000 && h->op == VSOCK_OP_REQUEST) {
		host_req = 1;
		host_port = h->src_port;
		return;
	}
	if (h->dst_port == 6000 && h->op == VSOCK_OP_RW) {
		snprintf(host_data, sizeof(host_data), "%.*s",
		    (int)(h->len < 63 ? h->len : 63), (const char *)p);
		host_rw = 1;
		return;
	}
	if (i >= CC_MAX || cc_state[i] != 0)
		return;
	if (h->op == VSOCK_OP_RESPONSE) {
		cc_state[i] = 1;
		cc_resp++;
	} else if (h->op == VSOCK_OP_RST) {
		cc_state[i] = 2;
		cc_rst++;
	}
	cc_replies++;
}

static void
limits_check(void)
{
	char path[64], line[256];
	unsigned long soft = 0, hard = 1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)getppid());
	f = fopen(path, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Max open files", 14) != 0)
			continue;
		soft = strtoul(line + 26, NULL, 10);
		hard = strtoul(line + 47, NULL, 10);
	}
	if (f != NULL)
		fclose(f);
	check(soft == hard, "pep-run raised RLIMIT_NOFILE to the hard limit "
	    "(%lu of %lu)", soft, hard);
}

/* A host client on --vsock-socket: CONNECT, the guest answers, OK. */
static void
host_client(const char *when)
{
	char line[64] = "";
	size_t n = 0;
	uint64_t end;
	int fd;

	host_req = host_rw = 0;
	fd = unix_sock(H.cmd_path, 0, 0);
	if (fd < 0 || write(fd, "CONNECT 6000\n", 13) != 13) {
		check(0, "%s: host client connects to --vsock-socket", when);
		goto out;
	}
	wait_for(&host_req, 5000);
	check(host_req, "%s: the host client's REQUEST reaches the guest",
	    when);
	if (!host_req)
		goto out;
	tx_send(VSOCK_OP_RESPONSE, 6000, host_port, NULL, 0);
	for (end = ms() + 5000; ms() < end && strchr(line, '\n') == NULL;) {
		if (read(fd, line + n, 1) == 1 && n + 2 < sizeof(line))
			n++;
		else
			pump(1);
	}
	check(strncmp(line, "OK ", 3) == 0, "%s: the host client is served "
	    "(\"%.*s\")", when, (int)strcspn(line, "\n"), line);
	if (write(fd, "ping", 4) == 4)
		wait_for(&host_rw, 3000);
	check(host_rw && strcmp(host_data, "ping") == 0, "%s: its bytes "
	    "reach the guest", when);
	tx_send(VSOCK_OP_RST, 6000, host_port, NULL, 0);
out:
	if (fd >= 0)
		close(fd);
}

static void
case_conncap(void)
{
	const char *s = getenv("HOSTILE_CAP");
	unsigned cap = s != NULL ? (unsigned)strtoul(s, NULL, 10) : 256;
	unsigned tries = cap + 2000, i, sent = 0;
	uint64_t end;
	long t;

	H.ep = unix_sock(H.ep_path, 1, 4096);
	vu_setup(256, 256, MEM_SIZE, 0);
	H.on_rx = conncap_rx;
	rx_posting = 1;
	rx_post();
	limits_check();
	end = ms() + 60000;
	while (cc_replies < tries && ms() < end && !H.vu_dead) {
		while (sent < tries && tx_free() > 0) {
			struct vsock_hdr h;

			pkt(&h, VSOCK_OP_REQUEST, 20000 + sent, EP_PORT);
			tx_put(&h, NULL);
			sent++;
		}
		kick(&H.q[1]);
		pump(2);
	}
	check(cc_resp == cap && cc_rst == tries - cap, "%u guest REQUESTs: "
	    "%u accepted (the cap, %u), %u refused with RST", tries, cc_resp,
	    cap, cc_rst);
	host_client("at the cap");
	for (i = 0; i < tries; i++)
		if (cc_state[i] == 1)
			tx_send(VSOCK_OP_RST, 20000 + i, EP_PORT, NULL, 0);
	pump(100);
	cc_state[CC_MAX - 1] = 0;
	t = (long)ms();
	tx_send(VSOCK_OP_REQUEST, 20000 + CC_MAX - 1, EP_PORT, NULL, 0);
	for (end = ms() + 3000; ms() < end && cc_state[CC_MAX - 1] == 0;)
		pump(1);
	check(cc_state[CC_MAX - 1] == 1, "after the guest closed them, a new "
	    "connection is accepted (%ld ms)", (long)ms() - t);
}

/* ---- case: backlog ------------------------------------------------- */

static int bl_a, bl_b;

static void
backlog_rx(const struct vsock_hdr *h, const uint8_t *p)
{
	(void)p;
	if (h->dst_port == 21000)
		bl_a = h->op == VSOCK_OP_RST ? 2 : 1;
	if (h->dst_port == 21001)
		bl_b = h->op == VSOCK_OP_RESPONSE ? 1 : 2;
}

static void
case_backlog(void)
{
	uint64_t v, t0;
	long t;
	int c1, c2, a;

	H.ep = unix_sock(H.ep_path, 1, 0);
	c1 = unix_sock(H.ep_path, 0, 0);
	c2 = unix_sock(H.ep_path, 0, 0);
	check(c1 >= 0 && c2 == -EAGAIN, "the endpoint's backlog is full");
	vu_setup(256, 256, MEM_SIZE, 0);
	H.on_rx = backlog_rx;
	rx_posting = 1;
	rx_post();
	t0 = ms();
	tx_send(VSOCK_OP_REQUEST, 21000, EP_PORT, NULL, 0);
	pump(100);
	a = vu_get(VU_GET_FEATURES, &v, 1000);
	check(a == 0, "vhost-user is answered while pep-run connects to a "
	    "full endpoint (%ld ms)", (long)(ms() - t0));
	while (bl_a == 0 && ms() - t0 < 5000)
		pump(5);
	check(bl_a == 2, "the guest gets RST when the endpoint does not "
	    "accept in time (%ld ms)", (long)(ms() - t0));
	t0 = ms();
	tx_send(VSOCK_OP_REQUEST, 21001, EP_PORT, NULL, 0);
	pump(300);
	a = accept(H.ep, NULL, NULL);	/* room for one more */
	while (bl_b == 0 && ms() - t0 < 3000)
		pump(5);
	check(bl_b == 1, "a connection completes once the endpoint has room "
	    "(%ld ms)", (long)(ms() - t0));
	if (a >= 0)
		close(a);
	if (c1 >= 0)
		close(c1);
	t0 = ms();
	kill(getppid(), SIGTERM);
	t = wait_for(&H.powerdown, 3000);
	check(t >= 0, "SIGTERM: pep-run asks for a powerdown over QMP (%ld "
	    "ms)", t);
}

/* ---- case: budget -------------------------------------------------- */

#define FLOOD_MS	3000
static volatile int flood_stop;
static uint64_t flood_total;	/* __atomic */
static uint64_t flood_run;	/* most packets between two calls */

/*
 * The tx ring refilled as fast as the back-end empties it with packets
 * that need no reply (RST for no connection), for FLOOD_MS: every slot
 * always holds a packet, one store of avail->idx refills it all. The
 * back-end signals the call eventfd when it returns from a run over the
 * ring: how many packets it took between two signals is how long it
 * kept the loop to itself.
 */
static void *
flood(void *arg)
{
	struct gq *g = &H.q[1];
	uint16_t last = rd16(g->used + 2), u;
	uint64_t total = 0, run = 0, c, end = ms() + FLOOD_MS;

	(void)arg;
	while (!flood_stop && ms() < end) {
		u = rd16(g->used + 2);
		total += (uint16_t)(u - last);
		run += (uint16_t)(u - last);
		last = u;
		if (run > flood_run)
			flood_run = run;
		if (read(g->call, &c, 8) == 8)
			run = 0;
		__atomic_store_n(&flood_total, total, __ATOMIC_RELAXED);
		if ((uint16_t)(u + g->num) != g->avail_idx) {
			g->avail_idx = (uint16_t)(u + g->num);
			wr16(g->avail + 2, g->avail_idx);
			kick(g);
		}
	}
	flood_stop = 1;
	return NULL;
}

/*
 * While the flood lasts, vhost-user requests (what QEMU needs answered)
 * every 20 ms: none may wait for the flood to end.
 */
static void
case_budget(void)
{
	uint64_t v, t, t0, worst = 0, sum = 0, total;
	struct vsock_hdr h;
	pthread_t th;
	unsigned i, n = 0, answered = 0;

	vu_setup(256, 256, MEM_SIZE, 0);
	for (i = 0; i < H.q[1].num; i++) {
		pkt(&h, VSOCK_OP_RST, 40000 + i, 5000);
		tx_put(&h, NULL);
	}
	kick(&H.q[1]);
	t0 = ms();
	tx_call_flood = 1;
	if (pthread_create(&th, NULL, flood, NULL) != 0)
		die("pthread_create");
	pump(100);
	while (!flood_stop) {
		t = ms();
		if (vu_get(VU_GET_FEATURES, &v, 5000) == 0)
			answered++;
		t = ms() - t;
		n++;
		if (t > worst)
			worst = t;
		sum += t;
		pump(20);
	}
	pthread_join(th, NULL);
	total = __atomic_load_n(&flood_total, __ATOMIC_RELAXED);
	say("# flood: %llu packets in %llu ms; %u vhost-user round trips, "
	    "worst %llu ms, mean %llu ms", (unsigned long long)total,
	    (unsigned long long)(ms() - t0), n, (unsigned long long)worst,
	    (unsigned long long)(n > 0 ? sum / n : 0));
	check(flood_run <= 4 * VSOCK_PKT_WEIGHT, "a tx ring kept full for "
	    "%d ms: at most %llu packets per run over the ring (budget %d)",
	    FLOOD_MS, (unsigned long long)flood_run, VSOCK_PKT_WEIGHT);
	/* a loop the flood starves answers only when it ends (FLOOD_MS);
	 * a third of that leaves room for a loaded 2-core machine (641 ms
	 * seen with other tests running) */
	check(n >= 2 && answered == n && worst < FLOOD_MS / 3, "every vhost-user "
	    "request during the flood answered, the slowest in %llu ms",
	    (unsigned long long)worst);
	check(total > 100 * VSOCK_PKT_WEIGHT, "and the back-end kept taking "
	    "packets (%llu)", (unsigned long long)total);
}

/* ---- case: memtable, idle ------------------------------------------ */

static void
case_memtable(void)
{
	uint64_t end = ms() + 10000;
	pid_t pp = getppid();

	/* RAM says 16 MiB, the file has 1; the rings lie past its end */
	vu_setup(256, 256, 1u << 20, 8u << 20);
	kick(&H.q[0]);
	kick(&H.q[1]);
	say("# sent a 16 MiB region backed by a 1 MiB file");
	while (ms() < end && getppid() == pp)
		pump(10);	/* pep-run stops us (SIGTERM) */
	say("# pep-run %s", getppid() == pp ? "did not stop us" : "is gone");
}

/* ---- case: descidx --------------------------------------------------- */

/*
 * The tx ring's first entry names descriptor num, one past the table (a
 * well-formed packet sits there, in the gap before the avail ring): a
 * protocol error pep-run must refuse, never follow.
 */
static void
case_descidx(void)
{
	struct gq *g = &H.q[1];
	uint64_t end = ms() + 3000;
	pid_t pp = getppid();
	struct vsock_hdr h;

	vu_setup(256, 256, MEM_SIZE, 0);
	pkt(&h, VSOCK_OP_CREDIT_REQUEST, 30000, 31000);
	vsock_hdr_encode(&h, H.mem + BUF_OFF(1));
	set_desc(g, g->num, BUF_OFF(1), VSOCK_HDR_SIZE, 0);
	memcpy((void *)(g->avail + 4), &(uint16_t){ (uint16_t)g->num }, 2);
	g->avail_idx++;
	wr16(g->avail + 2, g->avail_idx);
	kick(g);
	say("# tx ring entry 0 names descriptor %u, the ring's size", g->num);
	while (ms() < end && getppid() == pp)
		pump(10);	/* pep-run stops us (SIGTERM) */
	say("# pep-run %s", getppid() == pp ? "did not stop us" : "is gone");
}

/* ---- case: perf ---------------------------------------------------- */

static int perf_up;
static uint32_t host_fwd;	/* pep-run's fwd_cnt: guest bytes it wrote */

static void
perf_rx(const struct vsock_hdr *h, const uint8_t *p)
{
	(void)p;
	if (h->dst_port != 50000)
		return;
	if (h->op == VSOCK_OP_RESPONSE)
		perf_up = 1;
	if (h->op == VSOCK_OP_RW)
		guest_fwd += h->len;
	host_fwd = h->fwd_cnt;
}

/* Echo what the endpoint has; the bytes read (-1: closed). */
static long
ep_echo(int fd, int echo)
{
	static uint8_t buf[65536];
	long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		total += n;
		if (echo && write(fd, buf, (size_t)n) != n)
			return -1;
	}
	return n == 0 ? -1 : total;
}

/*
 * pep-run alone, with a guest much faster than a TCG one: 64-byte round
 * trips through an echo endpoint, then guest-to-host bytes within the
 * credit pep-run grants. Prints "# perf: ..." for bench-vsock.sh.
 */
static void
case_perf(void)
{
	const unsigned rtts = 20000, chunk = 4096;
	const uint64_t bulk = 256u << 20;
	uint8_t data[4096];
	struct vsock_hdr h;
	uint64_t t0, sent = 0, got = 0;
	double rtt_us, mibs;
	unsigned i;
	long n;
	int e = -1;

	memset(data, 'p', sizeof(data));
	H.ep = unix_sock(H.ep_path, 1, 16);
	vu_setup(256, 256, MEM_SIZE, 0);
	H.on_rx = perf_rx;
	rx_posting = 1;
	rx_post();
	tx_send(VSOCK_OP_REQUEST, 50000, EP_PORT, NULL, 0);
	wait_for(&perf_up, 3000);
	for (t0 = ms(); e < 0 && ms() - t0 < 3000; pump(1))
		e = accept4(H.ep, NULL, NULL, SOCK_NONBLOCK);
	if (!perf_up || e < 0)
		die("perf: no connection");
	t0 = ms();
	for (i = 0; i < rtts; i++) {
		tx_send(VSOCK_OP_RW, 50000, EP_PORT, data, 64);
		while (guest_fwd < 64u * (i + 1)) {
			ep_echo(e, 1);
			pump(0);
		}
	}
	rtt_us = (double)(ms() - t0) * 1000.0 / rtts;
	t0 = ms();
	sent = 64u * rtts;	/* what host_fwd counts from */
	while (got < bulk) {
		while (sent < 64u * rtts + bulk && tx_free() > 0 &&
		    (uint32_t)(sent - host_fwd) + chunk <= VSOCK_BUF_ALLOC) {
			pkt(&h, VSOCK_OP_RW, 50000, EP_PORT);
			h.len = chunk;
			tx_put(&h, data);
			sent += chunk;
		}
		kick(&H.q[1]);
		n = ep_echo(e, 0);
		if (n < 0)
			die("perf: the endpoint connection closed");
		got += (uint64_t)n;
		pump(0);
	}
	mibs = (double)bulk / 1048576.0 / ((double)(ms() - t0 + 1) / 1000.0);
	say("# perf: rtt %.1f us, guest->host %.1f MiB/s", rtt_us, mibs);
	close(e);
}

static void
case_idle(void)
{
	struct stat st;
	unsigned m = 0;

	vu_setup(256, 256, MEM_SIZE, 0);
	if (stat(H.vu_path, &st) == 0)
		m = st.st_mode & 07777;
	check(m == 0600, "the vhost-user socket is mode 0600 (%o)", m);
	say("# idle");
	wait_for(&H.powerdown, 120000);
}

int
main(int argc, char **argv)
{
	const char *c = getenv("HOSTILE_CASE"), *out = getenv("HOSTILE_OUT");

	H.out = out != NULL ? fopen(out, "a") : stderr;
	if (H.out == NULL || c == NULL)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	parse_argv(argc, argv);
	H.ep_path = getenv("HOSTILE_EP");
	H.cmd_path = getenv("HOSTILE_CMD");
	H.q[0].call = H.q[1].call = -1;
	H.qmp_listen = unix_sock(H.qmp_path, 1, 4);
	if (strcmp(c, "replies") == 0)
		case_replies();
	else if (strcmp(c, "conncap") == 0 && H.ep_path && H.cmd_path)
		case_conncap();
	else if (strcmp(c, "backlog") == 0 && H.ep_path)
		case_backlog();
	else if (strcmp(c, "budget") == 0)
		case_budget();
	else if (strcmp(c, "descidx") == 0)
		case_descidx();
	else if (strcmp(c, "memtable") == 0)
		case_memtable();
	else if (strcmp(c, "idle") == 0)
		case_idle();
	else if (strcmp(c, "perf") == 0 && H.ep_path)
		case_perf();
	else
		return 2;
	say("done");
	return 0;
}
