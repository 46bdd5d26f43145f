/*
 * pep-run's private header: QEMU argv building, the disk lock, the event
 * loop and the userspace vhost-user-vsock backend.
 */
#ifndef PEP_RUNNER_H
#define PEP_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/err.h"

#define RUN_HOST_CID	2
#define RUN_GUEST_CID	3

enum run_accel {
	RUN_ACCEL_AUTO = 0,
	RUN_ACCEL_KVM,
	RUN_ACCEL_TCG
};

enum run_vsock {
	RUN_VSOCK_AUTO = 0,	/* vhost-vsock if usable, else user */
	RUN_VSOCK_KERNEL,
	RUN_VSOCK_USER,
	RUN_VSOCK_NONE
};

struct run_opts {
	const char *disk;
	const char *seed;
	const char *kernel;
	const char *initrd;
	const char *append;
	const char *shared_dir;
	const char *console_log;
	const char *arch;		/* x86_64 or aarch64 */
	const char *qemu;		/* binary; NULL: qemu-system-<arch> */
	const char *pepd_socket;	/* endpoint: unix socket */
	const char *vsock_socket;	/* host-initiated CONNECT socket */
	unsigned bridge_port;		/* endpoint: TCP 127.0.0.1:port */
	unsigned vsock_port;		/* guest-side port for the endpoint */
	unsigned vsock_max_conns;	/* per direction; 0: the default */
	unsigned socket_mode;		/* of the sockets pep-run creates */
	unsigned cpus;
	uint64_t memory;		/* bytes */
	unsigned stop_timeout;		/* seconds, SIGTERM -> kill */
	enum run_accel accel;
	enum run_vsock vsock;
	int efi;
	int snapshot;
	int print_cmdline;
};

enum run_exit {
	RUN_EXIT_OK = 0,
	RUN_EXIT_ERROR = 1,
	RUN_EXIT_USAGE = 2
};

struct run_cli {
	struct run_opts o;
	int verbose;
	int quiet;		/* --quiet: errors only */
};

/* --- vm.c ------------------------------------------------------------ */
int vm_run(struct run_opts *o);

/* --- qemu.c ---------------------------------------------------------- */
struct run_argv {
	char **v;
	size_t n;
	size_t cap;
};

/* Paths pep-run creates in its private runtime directory. */
struct run_paths {
	char *dir;
	char *qmp;
	char *vhost_user;	/* vhost-user-vsock socket (pep-run listens) */
	char *virtiofs;		/* virtiofsd socket */
	char *efi_vars;		/* private writable copy of the VARS file */
	const char *efi_code;
	const char *efi_vars_template;
	const char *virtiofsd;	/* NULL: use 9p */
};

int argv_add(struct run_argv *a, const char *s);
int argv_addf(struct run_argv *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void argv_free(struct run_argv *a);
const char *run_host_arch(void);
/* 1 if /dev/kvm runs a tiny guest (probed in a child); why says so or
 * names what is missing, for the user. */
int kvm_usable(char *why, size_t len);
int vhost_vsock_usable(void);
int efi_find(const char *arch, const char **code, const char **vars);
const char *virtiofsd_find(void);
int qemu_build_argv(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a, struct pep_err *e);
int virtiofsd_build_argv(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a);
void argv_print(const struct run_argv *a);

/* --- lock.c ---------------------------------------------------------- */
int disk_lock(const char *path, int shared, struct pep_err *e);

/* --- ev.c ------------------------------------------------------------ */
typedef void (*ev_cb)(void *arg, uint32_t events);

struct ev_handler {
	int fd;
	ev_cb cb;
	void *arg;
};

/*
 * Work queued to run after the current batch of events (and before the
 * next wait returns more): how a handler that used up its budget lets
 * the other fds run and then continues.
 */
struct ev_work {
	struct ev_work *next;
	void (*cb)(void *arg);
	void *arg;
	int queued;
};

int ev_init(void);
int ev_add(struct ev_handler *h, uint32_t events);
int ev_mod(struct ev_handler *h, uint32_t events);
void ev_del(struct ev_handler *h);
void ev_work_queue(struct ev_work *w);
void ev_work_cancel(struct ev_work *w);
int ev_run_once(int timeout_ms);
uint64_t ev_now_ms(void);

/* --- qmp.c ----------------------------------------------------------- */
int qmp_powerdown(const char *path);

/* --- vhost_user.c ---------------------------------------------------- */
#define VU_MAX_REGIONS	8
#define VU_NQUEUES	3	/* rx, tx, event (the last stays QEMU's) */
#define VU_MAX_PAYLOAD	4096
#define VU_HDR_SIZE	12

struct vu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;		/* QEMU's virtual address */
	uint8_t *host;		/* our mapping of gpa (NULL: unmapped) */
	void *map;		/* mmap base, for munmap */
	size_t map_len;
};

struct vu_mem {
	struct vu_region r[VU_MAX_REGIONS];
	unsigned n;
};

struct virtq {
	unsigned num;
	uint64_t desc_ua, avail_ua, used_ua;
	volatile uint8_t *desc;		/* 16 bytes per entry */
	volatile uint8_t *avail;
	volatile uint8_t *used;
	uint16_t last_avail;
	uint16_t used_idx;
	int kick_fd;
	int call_fd;
	int enabled;
	int started;
	int pending_call;
};

struct vu_dev;

/* What the device (vsock) gets told by the protocol layer. */
struct vu_dev_ops {
	void (*queue_start)(struct vu_dev *d, unsigned q);
	void (*queue_stop)(struct vu_dev *d, unsigned q);
};

struct vu_dev {
	uint64_t features;
	uint64_t protocol_features;
	uint64_t guest_cid;
	int owner;
	struct vu_mem mem;
	struct virtq vq[VU_NQUEUES];
	const struct vu_dev_ops *ops;
	void *priv;
	/* receive buffer: one message at a time */
	uint8_t buf[VU_HDR_SIZE + VU_MAX_PAYLOAD];
	size_t have;
	int fds[VU_MAX_REGIONS];
	unsigned nfds;
	uint32_t last_req;		/* for error messages */
	const char *why;		/* and what was wrong, if known */
	/* reply */
	uint8_t reply[VU_HDR_SIZE + VU_MAX_PAYLOAD];
	size_t reply_len;
};

void vu_init(struct vu_dev *d, const struct vu_dev_ops *ops, void *priv);
void vu_reset(struct vu_dev *d);
int vu_feed(struct vu_dev *d, const uint8_t *data, size_t len,
    size_t *used);
int vu_handle(struct vu_dev *d, uint32_t req, uint32_t flags,
    const uint8_t *p, uint32_t size);
size_t vu_need(const struct vu_dev *d);
void vu_close_fds(struct vu_dev *d);

/* --- virtq.c --------------------------------------------------------- */
#define VQ_MAX_SEGS	64

struct vq_seg {
	uint8_t *p;
	uint32_t len;
};

struct vq_chain {
	uint16_t head;
	unsigned nout, nin;		/* readable first, then writable */
	uint64_t out_len, in_len;
	struct vq_seg seg[VQ_MAX_SEGS];	/* keep last: pop clears up to it */
};

int virtq_map(struct virtq *q, const struct vu_mem *m);
int virtq_pop(struct virtq *q, const struct vu_mem *m, struct vq_chain *c);
void virtq_unpop(struct virtq *q);
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
void virtq_notify(struct virtq *q);
size_t vq_chain_read(const struct vq_chain *c, size_t off, void *dst,
    size_t len);
size_t vq_chain_write(const struct vq_chain *c, size_t off,
    const void *src, size_t len);

/* --- vsock_conn.c ---------------------------------------------------- */
#define VSOCK_HDR_SIZE	44

enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST,
	VSOCK_OP_RESPONSE,
	VSOCK_OP_RST,
	VSOCK_OP_SHUTDOWN,
	VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE,
	VSOCK_OP_CREDIT_REQUEST
};

#define VSOCK_SHUT_RCV	1
#define VSOCK_SHUT_SEND	2
#define VSOCK_TYPE_STREAM 1

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

void vsock_hdr_decode(struct vsock_hdr *h, const uint8_t *b);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *b);

#define VSOCK_BUF_ALLOC	(256 * 1024)	/* our per-connection buffer */
#define VSOCK_MAX_PKT	(64 * 1024)

/*
 * Limits on what the guest can make pep-run do (pep-run(1), LIMITS).
 * Per slice of work on a virtqueue, as the kernel's vhost-vsock
 * (VHOST_VSOCK_PKT_WEIGHT, VHOST_VSOCK_WEIGHT): then the rest of the
 * ring waits until every other ready fd had its turn.
 */
#define VSOCK_PKT_WEIGHT	256
#define VSOCK_BYTE_WEIGHT	(512 * 1024)
#define VSOCK_MAX_CONNS		256	/* default, each direction */
#define VSOCK_MAX_CONNS_LIMIT	65536
#define VSOCK_FD_SPARE		64	/* fds kept out of the caps */
#define VSOCK_CONNECT_TIMEOUT_MS 2000	/* endpoint accept, guest answer */
#define VSOCK_ACCEPT_BACKOFF_MS	100	/* after EMFILE/ENFILE */
#define VSOCK_BURST_MS		1000	/* cap refusals apart: a new burst */
#define VSOCK_TICK_MS		50	/* timer, while something waits */

struct vsock_pkt {		/* a queued header-only packet */
	struct vsock_pkt *next;
	struct vsock_hdr h;
};

enum vsock_state {
	VSOCK_CMD = 0,		/* host side: reading "CONNECT P\n" */
	VSOCK_CONNECTING,	/* REQUEST sent to the guest */
	VSOCK_EP_CONNECTING,	/* guest REQUEST: connecting the endpoint */
	VSOCK_ESTABLISHED
};

struct vsock_dev;

struct vsock_conn {
	struct vsock_conn *next;
	struct vsock_dev *v;
	struct ev_handler ev;		/* the host-side socket */
	enum vsock_state state;
	uint32_t local_port;		/* our port (CID 2) */
	uint32_t peer_port;		/* the guest's port */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t tx_cnt;		/* bytes sent to the guest */
	uint32_t fwd_cnt;		/* bytes written to the host socket */
	uint32_t fwd_sent;		/* fwd_cnt last told to the guest */
	uint8_t *wbuf;			/* guest bytes the host has not taken */
	size_t wlen;
	uint32_t events;		/* current epoll interest */
	uint32_t guest_shut;		/* VSOCK_SHUT_* from the guest */
	int want_rx;			/* host bytes waiting for the guest */
	int host_eof;
	int from_guest;			/* counts against max_guest */
	int ep_again;			/* unix endpoint backlog full: retry */
	uint64_t deadline;		/* ev_now_ms(); 0: none */
	char cmd[32];			/* "CONNECT P\n" being read */
	size_t cmd_len;
};

/* A unix socket pep-run bound: removed at exit only if still ours. */
struct vsock_sockname {
	char *path;
	dev_t dev;
	ino_t ino;
};

struct vsock_dev {
	struct vu_dev vu;
	const struct run_opts *o;
	struct ev_handler listen_ev;	/* vhost-user listening socket */
	struct ev_handler sock_ev;	/* the vhost-user connection */
	struct ev_handler kick_ev[2];	/* rx, tx */
	struct ev_handler cmd_ev;	/* host-initiated CONNECT socket */
	struct ev_handler tick_ev;	/* timerfd: deadlines, back-off */
	struct ev_work tx_work, rx_work;	/* the rest of a ring */
	struct vsock_sockname listen_name, cmd_name;
	struct vsock_conn *conns;
	struct vsock_pkt *ctl_head, *ctl_tail;
	unsigned ctl_n;			/* queued control packets */
	int tx_stalled;			/* until ctl_n < the tx ring size */
	unsigned guest_conns, host_conns;
	unsigned max_guest, max_host;
	uint64_t refused;		/* guest connections at the cap */
	uint64_t burst;			/* refused in the current burst */
	uint64_t burst_last;		/* ms of its last refusal */
	uint64_t listen_resume, cmd_resume;	/* accept back-off, ms */
	int tick_armed, tick_added;
	int spare_fd;			/* closed to shed a connection */
	uint32_t next_port;
	int failed;			/* 1: protocol error, 2: QEMU left */
	uint8_t pkt[VSOCK_HDR_SIZE + VSOCK_MAX_PKT];	/* to the guest */
	uint8_t tx[VSOCK_HDR_SIZE + VSOCK_MAX_PKT];	/* from the guest */
};

/* vsock_user.c */
struct vsock_dev *vsock_new(const struct run_opts *o);
void vsock_free(struct vsock_dev *v);
int vsock_listen(struct vsock_dev *v, const char *path, struct pep_err *e);
int vsock_tx_process(struct vsock_dev *v);
int vsock_rx_process(struct vsock_dev *v);
int listen_unix(const char *path, unsigned mode, struct vsock_sockname *n,
    struct pep_err *e);
void sockname_unlink(struct vsock_sockname *n);
void fd_nonblock(int fd);

/* vsock_conn.c */
void vsock_guest_pkt(struct vsock_dev *v, const struct vsock_hdr *h,
    const uint8_t *payload);
int vsock_conn_rx(struct vsock_conn *c, const struct vq_chain *ch,
    uint32_t *len);
struct vsock_conn *vsock_next_rx(struct vsock_dev *v);
void vsock_close_all(struct vsock_dev *v);
void vsock_conn_reset(struct vsock_conn *c);
void vsock_conn_connected(struct vsock_conn *c);
void vsock_burst_end(struct vsock_dev *v);
int vsock_cmd_listen(struct vsock_dev *v, const char *path,
    struct pep_err *e);
void vsock_cmd_close(struct vsock_dev *v);

/* vsock_ep.c */
void vsock_caps(struct vsock_dev *v);
int vsock_ep_start(struct vsock_conn *c);
int vsock_ep_done(struct vsock_conn *c);
int vsock_tick_open(struct vsock_dev *v);
void vsock_tick_arm(struct vsock_dev *v);
void vsock_tick_close(struct vsock_dev *v);
void vsock_accept_shed(struct vsock_dev *v, struct ev_handler *h,
    uint64_t *resume, const char *what);

#endif
