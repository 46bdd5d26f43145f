/*
 * libFuzzer target for pep-run's vhost-user back-end. The first byte picks:
 *   even: the rest is a vhost-user byte stream fed to vu_feed() (no fds);
 *   odd:  the rest is guest memory holding a descriptor table and avail
 *         ring; virtq_pop() must reject anything outside the memory table
 *         and the chains it returns are read, written and parsed as vsock
 *         packets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_ring(data + 1, size - 1);
	else
		fuzz_stream(data + 1, size - 1);
	return 0;
}
