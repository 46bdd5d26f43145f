/*
 * pepd private header: the Policy Enforcement Point. Every module of
 * pepd/ is declared here under a banner per file. Modules return 0 or a
 * negative code (common/err.h) and fill a struct pep_err; only pepd.c
 * prints or exits. A request error never stops pepd: it is answered with a
 * refusal frame and audited.
 *
 * Two processes (privilege separation as relayd and OpenSSH do it; see
 * pepd(8), PROCESSES):
 *
 *   parent   the event loop of loop.c: listeners, guest connections,
 *            frame parsing, the URL, policy and OPA cache, the audit log
 *            (the only write handle), metrics, signals (reload, reopen,
 *            stop), the netlink watch of the host's addresses, and the
 *            fetcher's supervision. Drops to the configured user after
 *            opening what needs privilege.
 *   fetcher  "pepd --fetcher", exec'd by the parent with one socket (fd
 *            3) and nothing else: libcurl multi on its own epoll loop, the
 *            connect-time SSRF check, response parsing. Unprivileged,
 *            no_new_privs, landlock (read-only: CA certificates and the
 *            resolver's files) and a seccomp filter (sandbox.c).
 *
 * They talk through typed, packed messages (ipc.c) over that socketpair;
 * each side has one switch over the types it accepts and refuses the
 * rest.
 */
#ifndef PEP_PEPD_H
#define PEP_PEPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "../common/err.h"
#include "../common/frame.h"

#define PEPD_VERSION "0.2.0"
#define PEPD_EASY_POOL 64	/* idle curl easy handles kept for reuse */

/* ------------------------------------------------------------------ */
/* Refusal codes (the wire protocol's error.code values)              */

enum pep_code {
	PEP_OK = 0,
	PEP_DENIED_BY_POLICY,
	PEP_SSRF_BLOCKED,
	PEP_BAD_REQUEST,
	PEP_UPSTREAM_ERROR,
	PEP_TIMEOUT,
	PEP_RESPONSE_TOO_LARGE,
	PEP_OVERLOADED,
	PEP_POLICY_UNAVAILABLE,
	PEP_AUDIT_UNAVAILABLE,
	PEP_CODE_LAST = PEP_AUDIT_UNAVAILABLE
};

/* "denied_by_policy", ...; "" for PEP_OK, "upstream_error" if unknown. */
const char *pep_code_name(enum pep_code c);

/* ------------------------------------------------------------------ */
/* ssrf.c: address classification                                     */

enum ssrf_class {
	SSRF_PUBLIC = 0,	/* globally reachable unicast: allowed */
	SSRF_UNSPECIFIED,	/* 0.0.0.0/8, :: */
	SSRF_LOOPBACK,		/* 127/8, ::1 */
	SSRF_PRIVATE,		/* RFC 1918, fc00::/7, fec0::/10 */
	SSRF_LINKLOCAL,		/* 169.254/16 (incl. metadata), fe80::/10 */
	SSRF_CGNAT,		/* 100.64/10 */
	SSRF_MULTICAST,		/* 224/4, ff00::/8 */
	SSRF_BROADCAST,		/* 255.255.255.255 */
	SSRF_RESERVED,		/* see ssrf.c and pepd(8): IANA special
				 * purpose blocks that are not globally
				 * reachable, IPv6 outside 2000::/3 */
	SSRF_NAT64,		/* 64:ff9b::/96, 64:ff9b:1::/48 */
	SSRF_6TO4,		/* 2002::/16 */
	SSRF_TEREDO,		/* 2001::/32 */
	SSRF_IPV4_COMPAT,	/* ::/96 but :: and ::1 (IPv4-compatible) */
	SSRF_OWN_ADDRESS,	/* an address of one of the host's
				 * interfaces (ssrf_check only) */
	SSRF_BAD_ADDRESS	/* not AF_INET/AF_INET6, or malformed */
};

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network byte order; IPv4 in addr[0..3] */
	unsigned int prefix;
};

const char *ssrf_class_name(enum ssrf_class c);
/*
 * Classify an address. IPv4-mapped (::ffff:a.b.c.d) addresses are
 * unmapped and classified as IPv4 first.
 */
enum ssrf_class ssrf_classify(const struct sockaddr *sa, socklen_t len);
/* "10.0.0.0/8", "fd00::/8", "192.168.1.5" (= /32). 0 or -EINVAL. */
int cidr_parse(const char *s, struct cidr *c);
int cidr_contains(const struct cidr *c, const struct sockaddr *sa,
    socklen_t len);
/* The address of sa as a host cidr (/32, /128; mapped IPv4 unmapped). */
int cidr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
    struct cidr *c);
/*
 * The connect-time check: SSRF_PUBLIC if sa may be connected to (public
 * and not one of own[], or inside one of allow[]), else the class that
 * blocks it.
 */
enum ssrf_class ssrf_check(const struct sockaddr *sa, socklen_t len,
    const struct cidr *allow, size_t nallow, const struct cidr *own,
    size_t nown);

/* ------------------------------------------------------------------ */
/* url.c: URL and host normalisation (libcurl's URL API, libidn2)     */

#define URL_HOSTMAX 256

/*
 * The one normalised form of a URL: what the policy matches, what OPA
 * sees and what its cache keys on, what the audit records and what is
 * fetched.
 */
struct pep_url {
	char scheme[8];		/* "http" or "https" */
	char host[URL_HOSTMAX];	/* lower case, punycode, no trailing dot;
				 * IPv6 without brackets; numeric IPv4
				 * spellings normalised to dotted quad */
	int host_is_ip;
	int port;		/* explicit or the scheme's default */
	char *path;		/* path + query as the origin gets them,
				 * malloc'd, at least "/": dot segments
				 * removed, %XX of unreserved characters
				 * decoded, other %XX upper case, every
				 * byte that may not appear raw in a path
				 * or query %XX-encoded; repeated slashes
				 * kept */
	char *match;		/* path with each run of '/' merged into
				 * one, + query: what rules match */
	char *url;		/* scheme://host[:port]path, the port only
				 * when not the scheme's default */
};

/*
 * Parse an absolute http(s) URL. PEP_BAD_REQUEST-worthy errors; also
 * refused: userinfo (user:pass@), IPv6 zone ids, port 0, encoded dot
 * segments (%2e%2e), numeric hosts that are not valid IPv4.
 */
int url_parse(const char *url, struct pep_url *u, struct pep_err *e);
void url_free(struct pep_url *u);
/*
 * IDN to punycode, lower case, strip one trailing dot; numeric IPv4
 * spellings to dotted quad; "[v6]" or "v6" to canonical v6 text without
 * brackets. 0 or -EINVAL.
 */
int host_normalize(const char *in, char *out, size_t outlen);
/* A malloc'd copy of path with each run of '/' before any '?' merged. */
char *url_merge_slashes(const char *path);

/* ------------------------------------------------------------------ */
/* json.c: JSON text written into one growing buffer                  */

struct jbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	int err;		/* sticky: -ENOMEM, -EMSGSIZE */
};

int jb_init(struct jbuf *b, size_t guess);
int jb_reserve(struct jbuf *b, size_t more);
void jb_put(struct jbuf *b, const void *s, size_t n);
void jb_puts(struct jbuf *b, const char *s);
/* A JSON string of the bytes of s, each byte one code point (ISO 8859-1,
 * for HTTP field names and values). */
void jb_bytestr(struct jbuf *b, const char *s);
/* A JSON string of the UTF-8 text s; every byte that does not start a
 * valid sequence becomes U+FFFD, so the output is always valid UTF-8. */
void jb_str(struct jbuf *b, const char *s);
/* jb_str, or null for NULL and "". */
void jb_str_or_null(struct jbuf *b, const char *s);
void jb_u64(struct jbuf *b, uint64_t v);
/* Microseconds as milliseconds with three decimals. */
void jb_ms(struct jbuf *b, uint64_t us);
void jb_base64(struct jbuf *b, const uint8_t *d, size_t n);
void jb_free(struct jbuf *b);

/* ------------------------------------------------------------------ */
/* proto.c: request parsing, response and refusal building            */

struct pep_header {
	char *name;
	char *value;
};

struct pep_limits {
	size_t max_frame;	/* default 16 MiB */
	size_t max_headers;	/* count, default 128 */
	size_t max_header_bytes;	/* all names+values, default 64 KiB */
	size_t max_response;	/* body bytes, default 64 MiB */
	size_t max_queue;	/* pipelined requests per connection, 16 */
	size_t max_concurrent;	/* in-flight fetches, default 512 */
	size_t max_connections;	/* open guest connections, default 4096 */
	size_t max_connections_per_client;	/* default 1024 */
	long idle_timeout_ms;	/* close idle connections, default 60000 */
	long connect_timeout_ms;	/* default 10000 */
	long total_timeout_ms;	/* default 60000 */
};

void limits_default(struct pep_limits *l);

struct pep_request {
	char *method;		/* RFC 9110 token, case as sent */
	char *url;
	struct pep_header *headers;	/* byte strings (see PROTOCOL.md) */
	size_t nheaders;
	uint8_t *body;		/* decoded body_base64, may be NULL */
	size_t body_len;
};

/*
 * Parse a request frame's JSON payload, which must be UTF-8 (RFC 8259).
 * Unknown fields are ignored. Errors (invalid UTF-8 or JSON,
 * missing/ill-typed fields, bad base64, limits) return < 0 (-EINVAL,
 * -EMSGSIZE) with a message fit for a bad_request refusal; -ENOMEM is
 * not the peer's fault.
 */
int proto_parse_request(const uint8_t *json, size_t len,
    const struct pep_limits *lim, struct pep_request *r,
    struct pep_err *e);
void proto_request_free(struct pep_request *r);

/* A whole frame (header + JSON), malloc'd, ready to write. */
struct pep_frame {
	uint8_t *data;
	size_t len;
};

/* A response; trailers (nt of them) appear as "trailers" when nt > 0. */
int proto_response(int status, const struct pep_header *h, size_t nh,
    const struct pep_header *t, size_t nt, const uint8_t *body,
    size_t blen, struct pep_frame *f);
int proto_refusal(enum pep_code code, const char *message,
    struct pep_frame *f);

/*
 * Hop-by-hop headers (RFC 9110 7.6.1: Connection, Keep-Alive,
 * Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
 * Transfer-Encoding, Upgrade) and those libcurl sets itself (Host,
 * Content-Length, Expect, Accept-Encoding). Not Content-Encoding: drop it
 * (and Content-Length) from responses whose body libcurl decoded.
 */
int proto_hop_by_hop(const char *name);
/* RFC 9110 5.6.2 token of at most max bytes. */
int proto_is_token(const char *s, size_t max);

/* ------------------------------------------------------------------ */
/* policy.c: the decision                                             */

enum policy_mode {
	POLICY_ENFORCE,
	POLICY_REPORT		/* allow, but audit what would be denied */
};

#define POLICY_SCHEME_HTTP	0x1
#define POLICY_SCHEME_HTTPS	0x2

struct policy_rule {
	char *id;		/* for the audit line: "allow[3]" or name */
	char *host;		/* normalised; without the "*." */
	int wildcard;		/* "*.x" matches sub.x, not x (smokescreen) */
	unsigned int schemes;	/* bitmask, 0 = any */
	int *ports;		/* NULL = any */
	size_t nports;
	char **methods;		/* NULL = any */
	size_t nmethods;
	char *path_prefix;	/* NULL = any; in pep_url.match form */
};

struct policy {
	enum policy_mode mode;
	struct policy_rule *allow;
	size_t nallow;
	struct policy_rule *deny;
	size_t ndeny;
	struct cidr *allow_private;
	size_t nallow_private;
};

struct policy_decision {
	int allow;		/* what pepd does */
	int would_deny;		/* report mode: enforcing would deny */
	const char *rule;	/* matched rule id, or "default" */
};

/* From the "policy" object of the config (see pepd/pepd.conf.5.md). */
int policy_from_json(const void *cjson_obj, struct policy **pp,
    struct pep_err *e);
/* PEP_ALLOWED_DOMAINS="a.com,*.b.org": allow those hosts, any path. */
int policy_from_domains(const char *list, struct policy **pp,
    struct pep_err *e);
void policy_free(struct policy *p);
/* Default deny; deny rules win over allow rules. */
void policy_decide(const struct policy *p, const char *method,
    const struct pep_url *u, struct policy_decision *d);

/* ------------------------------------------------------------------ */
/* config.c: the JSON configuration                                   */

#define CONFIG_MAXLISTEN 8
#define CONFIG_MAX_CA (1u << 20)	/* ca_file, bytes */

enum audit_fsync {
	AUDIT_FSYNC_NONE,	/* write(2) per line only */
	AUDIT_FSYNC_LINE,	/* fdatasync after every line */
	AUDIT_FSYNC_INTERVAL	/* fdatasync at most every interval */
};

struct opa_config {
	char *url;		/* POST target, e.g. .../v1/data/pep/allow */
	long timeout_ms;
	long cache_ttl_ms;
};

struct pepd_config {
	char *listen[CONFIG_MAXLISTEN];	/* "tcp:H:P", "unix:PATH", "vsock:P" */
	size_t nlisten;
	char *user;		/* drop to this user when started as root */
	char *audit_path;	/* required */
	enum audit_fsync audit_fsync;
	long audit_fsync_interval_ms;
	struct policy *policy;
	struct opa_config opa;	/* url NULL = none */
	struct pep_limits limits;
	char *metrics;		/* "127.0.0.1:9464" or NULL */
	long shutdown_grace_ms;	/* default 5000 */
	char *ca_file;		/* extra CA bundle for origins, or NULL */
};

/* Parse a config file; every error is "file: what". */
int config_load(const char *path, struct pepd_config **cp,
    struct pep_err *e);
/* The prototype's environment: PEP_ALLOWED_DOMAINS, PEP_AUDIT_LOG. */
int config_from_env(struct pepd_config **cp, struct pep_err *e);
void config_free(struct pepd_config *c);

/* ------------------------------------------------------------------ */
/* ipc.c: typed messages between the parent and the fetcher           */

/*
 * Every message is a struct ipc_hdr and len payload bytes. Each type's
 * payload starts with a fixed packed struct; what follows it is described
 * by the struct's lengths, which must add up to len exactly. Strings are
 * sent with their NUL, which the decoder checks (and that there is no
 * other). A decoder never copies before every size is checked; the views
 * it fills point into the payload.
 */
#define IPC_MAX (2u << 20)	/* payload bytes of one message */
#define IPC_CHUNK (256u << 10)	/* bodies travel in chunks of this */
#define IPC_ADDRS_MAX 4096	/* own addresses in one IPC_ADDRS */
#define IPC_CIDRS_MAX 65536	/* allow_private entries */

enum ipc_type {
	/* parent -> fetcher */
	IPC_CONFIG = 1,		/* limits, allow_private, CA */
	IPC_ADDRS,		/* the host's own addresses */
	IPC_FETCH,		/* start a fetch (body in IPC_REQ_BODY) */
	IPC_REQ_BODY,		/* a chunk of the request body */
	IPC_OPA,		/* ask the decision point */
	IPC_PROBE,		/* --check-sandbox: try what must fail */
	IPC_PROBE_EXEC,		/* --check-sandbox: try execve */
	/* fetcher -> parent */
	IPC_HELLO = 64,		/* up, and how it is sandboxed */
	IPC_RESULT,		/* a fetch ended (frame in IPC_RESP_BODY) */
	IPC_RESP_BODY,		/* a chunk of the response frame */
	IPC_OPA_RESULT,		/* the decision point's answer */
	IPC_PROBE_RESULT
};

struct ipc_hdr {
	uint32_t type;
	uint32_t len;		/* payload bytes that follow */
	uint64_t id;		/* fetch or query id; 0 when none */
} __attribute__((packed));

struct ipc_cidr {
	uint8_t family;		/* 4 or 6 */
	uint8_t prefix;
	uint8_t addr[16];
} __attribute__((packed));

struct ipc_config {		/* + nallow ipc_cidr + ca_len PEM bytes */
	uint32_t connect_timeout_ms;
	uint32_t total_timeout_ms;
	uint64_t max_response;
	uint32_t nallow;
	uint32_t ca_len;
} __attribute__((packed));

struct ipc_addrs {		/* + n ipc_cidr */
	uint32_t n;
} __attribute__((packed));

struct ipc_fetch {		/* + method, url, headers */
	uint32_t flags;		/* 0 (none defined) */
	uint32_t method_len;	/* with the NUL */
	uint32_t url_len;	/* with the NUL */
	uint32_t nheaders;
	uint32_t headers_len;	/* name NUL value NUL, nheaders times */
	uint64_t body_len;	/* to come in IPC_REQ_BODY */
} __attribute__((packed));

struct ipc_opa {		/* + url (with NUL) + body */
	uint32_t timeout_ms;
	uint32_t url_len;
	uint32_t body_len;
} __attribute__((packed));

struct ipc_hello {
	uint32_t pid;
	int32_t landlock_abi;	/* < 1: not in force */
	uint32_t seccomp;	/* 1: filter in force */
} __attribute__((packed));

#define IPC_MSG 256

struct ipc_result {		/* the response frame follows in chunks */
	uint32_t code;		/* enum pep_code */
	uint32_t status;	/* 0, or 100..999 */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t dns_us;
	uint64_t connect_us;
	uint64_t frame_len;	/* 0 unless code is PEP_OK */
	char ip[48];		/* NUL-terminated */
	char msg[IPC_MSG];	/* NUL-terminated */
} __attribute__((packed));

struct ipc_opa_result {		/* + answer_len bytes */
	int32_t rc;		/* 0 ok, else a CURLcode */
	uint32_t status;
	uint32_t answer_len;
	char msg[IPC_MSG];
} __attribute__((packed));

#define IPC_PROBES 4

struct ipc_probe_result {	/* per probe: 0 (it worked!) or an errno */
	int32_t err[IPC_PROBES];
} __attribute__((packed));

/* What the probes try, in order (sandbox.c). */
extern const char *const ipc_probe_names[IPC_PROBES];

struct ipc_config_view {
	const struct ipc_config *c;
	const struct ipc_cidr *allow;
	const uint8_t *ca;
};

struct ipc_fetch_view {
	const struct ipc_fetch *f;
	const char *method;
	const char *url;
	const char *headers;	/* nheaders name NUL value NUL pairs */
};

struct ipc_opa_view {
	const struct ipc_opa *o;
	const char *url;
	const uint8_t *body;
};

/* The decoders: 0, or -EBADMSG with nothing filled in. */
int ipc_dec_config(const uint8_t *p, size_t len, struct ipc_config_view *v);
int ipc_dec_addrs(const uint8_t *p, size_t len, const struct ipc_addrs **a,
    const struct ipc_cidr **list);
int ipc_dec_fetch(const uint8_t *p, size_t len, struct ipc_fetch_view *v);
int ipc_dec_opa(const uint8_t *p, size_t len, struct ipc_opa_view *v);
int ipc_dec_hello(const uint8_t *p, size_t len, struct ipc_hello *h);
int ipc_dec_result(const uint8_t *p, size_t len, struct ipc_result *r);
int ipc_dec_opa_result(const uint8_t *p, size_t len,
    struct ipc_opa_result *r, const uint8_t **answer);
int ipc_dec_probe_result(const uint8_t *p, size_t len,
    struct ipc_probe_result *r);
/* ipc_cidr <-> struct cidr; the decoder checks family and prefix. */
void ipc_cidr_put(struct ipc_cidr *o, const struct cidr *c);
int ipc_cidr_get(const struct ipc_cidr *i, struct cidr *c);

/* One end of the socketpair: non-blocking, buffered both ways. */
struct ipc_chan {
	int fd;
	uint8_t *in;
	size_t ioff, ilen, icap;	/* unread bytes are in[ioff..ilen) */
	uint8_t *out;
	size_t ooff, olen, ocap;	/* unsent bytes are out[ooff..olen) */
};

void ipc_chan_init(struct ipc_chan *c, int fd);
/* Close the fd and free the buffers. */
void ipc_chan_close(struct ipc_chan *c);
/* Queue one message: the header, then the iov parts as its payload. */
int ipc_put(struct ipc_chan *c, uint32_t type, uint64_t id,
    const struct iovec *iov, int niov);
/* Send what is queued: 0 all sent, 1 the socket is full, < 0 error. */
int ipc_flush(struct ipc_chan *c);
/* Read what is there (up to budget bytes): 0, -EPIPE at EOF, < 0. */
int ipc_fill(struct ipc_chan *c, size_t budget);
/*
 * The next whole message: 1 (h and *payload set, valid until the next
 * ipc_fill), 0 none yet, -EBADMSG when the header announces more than
 * IPC_MAX.
 */
int ipc_next(struct ipc_chan *c, struct ipc_hdr *h, const uint8_t **payload);
/* Bytes queued and not sent. */
size_t ipc_pending(const struct ipc_chan *c);

/* ------------------------------------------------------------------ */
/* sandbox.c: the fetcher's confinement                               */

struct sandbox_state {
	int landlock_abi;	/* < 1: landlock not in force */
	int seccomp;		/* 1: the filter is in force */
};

/*
 * Confine the calling process for good: no_new_privs, landlock (read
 * only: the CA certificate directories and the resolver's files; no
 * TCP bind; no signals or abstract sockets outside it, where the
 * kernel's ABI has them) and the seccomp filter. Degrades with a logged
 * warning where the kernel lacks landlock; fails if seccomp cannot be
 * installed.
 */
int sandbox_enter(struct sandbox_state *st, struct pep_err *e);
/* --check-sandbox, in the fetcher: try each probe, errno or 0. */
void sandbox_probe(struct ipc_probe_result *r);
/* --check-sandbox, in the fetcher: execve /bin/true (must not return). */
int sandbox_probe_exec(void);

/* ------------------------------------------------------------------ */
/* Runtime: the parent's server state (loop.c)                        */
/* Everything below runs on the one event loop of the parent process. */

struct pepd;
struct conn;
struct preq;

/* An epoll registration; epoll_event.data.ptr points at it. */
struct ev {
	int fd;
	void (*fn)(struct pepd *s, struct ev *ev, uint32_t events);
};

/* A configuration shared by the requests that started under it. */
struct pepd_cfg {
	struct pepd_config *c;
	uint8_t *ca;		/* ca_file's bytes, read by the parent */
	size_t ca_len;
	unsigned int refs;
};

struct pepd_opts {
	const char *config_path;	/* NULL: config_from_env() */
	const char *listen[CONFIG_MAXLISTEN];	/* override the config's */
	size_t nlisten;
	long frame_timeout_ms;	/* partial frame lifetime, default 10000 */
	int check_sandbox;	/* --check-sandbox: probe, then exit */
	int verbose;		/* passed on to the fetcher */
};

/* audit.c state */
struct audit_line;

struct audit {
	int fd;			/* -1: closed */
	char *path;
	enum audit_fsync fsync;
	long interval_ms;
	uint64_t last_sync_ms;
	int dirty;		/* written since the last fdatasync */
	int broken;		/* writing failed: refuse, retry */
	uint64_t retry_ms;	/* next retry (monotonic) */
	unsigned int backoff_ms;
	char why[128];		/* what failed, for the log */
	struct audit_line *backlog, *backlog_tail;	/* unwritten lines */
	size_t backlog_bytes;
	uint64_t lines;
	uint64_t write_errors;
	uint64_t lost;		/* lines the backlog could not keep */
	struct jbuf jb;		/* the line being built */
};

#define METRICS_NBUCKETS 14

enum conn_refusal {
	CONN_REFUSED_MAX,	/* max_connections (or the fd budget) */
	CONN_REFUSED_CLIENT,	/* max_connections_per_client */
	CONN_REFUSED_FDS,	/* accept: out of file descriptors */
	CONN_REFUSED_NREASONS
};

/* metrics.c state */
struct metrics {
	struct ev lev;		/* listening socket, fd -1: off */
	uint64_t decisions[3];	/* allow, deny, report */
	uint64_t codes[PEP_CODE_LAST + 1];
	uint64_t buckets[METRICS_NBUCKETS];	/* cumulative at render */
	double latency_sum;	/* seconds */
	uint64_t latency_count;
	uint64_t conn_refused[CONN_REFUSED_NREASONS];
	uint64_t conn_closed_idle;
};

struct opa_cache;

/* ifaddr.c: the host's own addresses, followed through netlink */
struct ifaddr_watch {
	struct ev ev;		/* NETLINK_ROUTE, address groups; -1 off */
	struct cidr *list;
	size_t n;
	int dirty;		/* changed: re-read at the end of the batch */
};

/* privsep.c: the parent's side of the fetcher */
struct fslot {
	uint32_t gen;		/* bumped on every use */
	uint8_t kind;		/* FSLOT_FREE, _FETCH, _OPA */
	void *ptr;		/* struct preq or struct opa_query */
	uint32_t next_free;
};

struct fetcher_ctl {
	struct ev ev;		/* the socket to the fetcher, -1: none */
	uint32_t events;	/* its epoll mask */
	struct ipc_chan chan;
	pid_t pid;		/* 0: none */
	int exe_fd;		/* /proc/self/exe, for the re-exec */
	int up;			/* IPC_HELLO seen */
	struct ipc_hello hello;
	struct fslot *slots;
	uint32_t nslots, free_head;
	size_t busy;		/* slots in use */
	uint64_t filling;	/* slot whose response frame is arriving */
	uint64_t fill_left;	/* bytes of it still to come */
	uint64_t restarts;
	unsigned int crashes;	/* within the window below */
	uint64_t crash_window_ms;
	uint64_t respawn_ms;	/* 0: not waiting to respawn */
	/* --check-sandbox */
	int probing;
	struct ipc_probe_result probe;
	int probe_status;	/* the fetcher's wait status after exec */
	int probe_done;
};

struct client;

struct pepd {
	int epfd;
	struct ev sigev;	/* signalfd: TERM INT HUP USR1 CHLD */
	struct ev tickev;	/* timerfd, every PEPD_TICK_MS */
	struct pepd_opts opts;
	struct pepd_cfg *cfg;	/* current configuration */
	struct listener *listeners;
	size_t nlisteners;
	int reserve_fd;		/* spare descriptor for EMFILE */
	uint64_t accept_resume_ms;	/* back-off, 0 = accepting */
	struct conn *conns;	/* all guest connections */
	size_t nconns;		/* counted against the caps */
	struct conn *over_head, *over_tail;	/* over-cap, oldest first */
	size_t nover;
	size_t over_max;	/* over-cap connections kept at once */
	size_t conn_cap;	/* max_connections within the fd budget */
	struct client *clients;	/* connections per client */
	size_t inflight;	/* fetches counted against max_concurrent */
	size_t nreqs;		/* live struct preq, incl. orphans */
	struct preq *sync_head, *sync_tail;	/* decided, await fdatasync */
	uint64_t next_id;
	char id_prefix[12];
	struct audit audit;
	struct metrics metrics;
	struct opa_cache *opa;
	struct fetcher_ctl fc;
	struct ifaddr_watch ifw;
	void **grave;		/* closed objects, freed after the batch */
	size_t ngrave, capgrave;
	int stopping;
	uint64_t stop_deadline_ms;	/* grace end: abort what is left */
	uint64_t exit_deadline_ms;	/* hard end of the loop */
	int aborted;
};

#define PEPD_TICK_MS 100

/* Monotonic milliseconds and microseconds. */
uint64_t pepd_now_ms(void);
uint64_t pepd_now_us(void);
int ev_add(struct pepd *s, struct ev *ev, uint32_t events);
int ev_mod(struct pepd *s, struct ev *ev, uint32_t events);
void ev_del(struct pepd *s, struct ev *ev);
/*
 * Free obj (holding ev) once the current epoll batch is handled, so a
 * later event of the batch never reaches freed memory; ev->fn = NULL.
 */
void pepd_defer_free(struct pepd *s, struct ev *ev, void *obj);
/* Load the configuration that opts name (file or environment). */
int pepd_config_load(const struct pepd_opts *o, struct pepd_cfg **cp,
    struct pep_err *e);
struct pepd_cfg *pepd_cfg_ref(struct pepd *s);
void pepd_cfg_unref(struct pepd_cfg *c);
int pepd_new(const struct pepd_opts *o, struct pepd **sp,
    struct pep_err *e);
/* Serve until SIGTERM/SIGINT and the shutdown grace are over. */
int pepd_run(struct pepd *s);
/* --check-sandbox: start a fetcher, probe it, print; 0 when all held. */
int pepd_check_sandbox(struct pepd *s);
void pepd_free(struct pepd *s);

/* ------------------------------------------------------------------ */
/* privdrop.c: the parent gives up root                               */

/*
 * Started as root with c->user set: switch to that user and its group
 * for good (setgroups, setresgid, setresuid, checked). Not root: fine
 * when c->user is unset or is the current user. Sets no_new_privs.
 */
int privdrop(const struct pepd_config *c, struct pep_err *e);

/* ------------------------------------------------------------------ */
/* listen.c: listeners, one ops table row per kind                    */

struct listen_ops {
	const char *kind;	/* "tcp", "unix", "vsock" */
	int (*open)(const char *arg, struct pep_err *e);
	/* Text for the audit line's peer field. */
	void (*peer)(const struct sockaddr *sa, socklen_t len, char *out,
	    size_t outlen);
	/* Who the per-client cap counts: the address, the CID, "unix". */
	void (*client)(const struct sockaddr *sa, socklen_t len, char *out,
	    size_t outlen);
};

struct listener {
	struct ev ev;
	const struct listen_ops *ops;
	char *path;		/* unix: unlinked at close */
};

/* Open "tcp:H:P", "unix:PATH" or "vsock:PORT" non-blocking. */
int listener_open(struct pepd *s, const char *spec, struct listener *l,
    struct pep_err *e);
void listener_close(struct pepd *s, struct listener *l);
/* Stop or resume accepting on every listener. */
void listeners_pause(struct pepd *s, int pause);
/*
 * The fd budget: the connection cap from max_connections and
 * RLIMIT_NOFILE, and the reserve descriptor. 0 or < 0.
 */
int listen_budget(struct pepd *s, struct pep_err *e);

/* ------------------------------------------------------------------ */
/* conn.c: one guest connection, pipelined requests answered in order */

#define CONN_OVER_MAX 64	/* over-cap connections kept to answer */
#define CONN_OVER_MS 1000	/* how long one may stay */

struct client {
	struct client *next;
	char key[64];
	size_t n;		/* its connections */
};

struct conn {
	struct ev ev;
	struct conn *prev, *next;	/* s->conns */
	struct conn *oprev, *onext;	/* s->over_*, when over */
	struct client *cl;	/* NULL when over */
	char peer[64];
	char over[160];		/* over a cap: why (answer, then close) */
	uint8_t *rbuf;		/* unparsed input, freed when empty */
	size_t rlen, rcap;
	uint64_t partial_since_ms;	/* an incomplete frame is pending */
	uint64_t active_ms;	/* last read or write */
	uint64_t born_ms;
	struct preq *qhead, *qtail;	/* in request order */
	size_t nq;
	size_t woff;		/* bytes of qhead's frame written */
	uint32_t events;	/* current epoll mask */
	int closing;		/* read no more; close once answered */
	int rd_eof;		/* the peer sent EOF */
	int busy;		/* inside its event handler: see below */
	int wblocked;		/* write hit EAGAIN: wait for EPOLLOUT */
	int draining;		/* SHUT_WR sent, await EOF, then close */
	uint64_t drain_deadline_ms;
};

/*
 * The busy rule (conn.c): while a connection's own handler runs
 * (reading, cutting frames, starting requests), c->busy is set, and
 * everything that may complete one of its requests from within that
 * handler (a refusal, a cached decision, an audit failure) only marks
 * the request done: conn_kick() returns at once and the handler services
 * the connection (writes answers, closes) when it is back at the top.
 * So nothing frees a connection, or the request being parsed, under
 * the feet of the code that is using it. Outside a handler (a fetcher
 * answer, a tick) conn_kick() services at once. The fetcher has the same
 * rule for libcurl (fetch_multi.c): its callbacks never end or free a
 * transfer; transfers end only after curl_multi_socket_action() has
 * returned, from curl_multi_info_read().
 */

/* A new connection; over: not "" when over a cap (answer, close). */
int conn_new(struct pepd *s, int fd, const char *peer, const char *client,
    const char *over);
void conn_close(struct pepd *s, struct conn *c);
/* A request of c completed: write what can be written, in order. */
void conn_kick(struct pepd *s, struct conn *c);
/* Periodic: slowloris, idle and drain time-outs. */
void conn_tick(struct pepd *s, uint64_t now);
/*
 * Shutdown: read no more; every whole frame already read becomes a
 * request (answered and audited); close once all are answered.
 */
void conn_stop_reading(struct pepd *s, struct conn *c);
/* The per-client count for key, created at 0; NULL when out of memory. */
struct client *client_get(struct pepd *s, const char *key);
void client_put(struct pepd *s, struct client *cl);

/* ------------------------------------------------------------------ */
/* request.c: a request's life in the parent                          */

struct preq {
	struct preq *next;	/* in conn's queue */
	struct preq *snext;	/* in s->sync_head: await fdatasync */
	struct conn *conn;	/* NULL once the client is gone */
	struct pepd_cfg *cfg;	/* configuration it started under */
	char id[32];
	char peer[64];
	struct timespec wall;	/* arrival */
	uint64_t t0_us;		/* monotonic arrival */
	struct pep_request r;
	struct pep_url u;
	int have_url;
	struct policy_decision d;
	int decided;
	int counted;		/* holds one of max_concurrent */
	uint64_t slot;		/* fetcher slot id while fetching, or 0 */
	enum pep_code code;
	char msg[256];
	int status;
	uint64_t bytes_in, bytes_out;
	uint64_t dns_us, connect_us, total_us;
	char ip[48];		/* last address connected (or refused) */
	struct pep_frame resp;	/* the answer */
	size_t resp_got;	/* bytes of resp from the fetcher so far */
	int done;
};

/*
 * A frame's payload arrived on c (json NULL: the frame announced len
 * bytes, over the limit). NULL when out of memory. *close_conn is set when
 * the frame is unusable (bad_request, then close). preq_begin decides and
 * fetches, once q is in c's queue.
 */
struct preq *preq_new(struct pepd *s, struct conn *c, const uint8_t *json,
    size_t len, int *close_conn);
void preq_begin(struct pepd *s, struct preq *q);
/* Set q->msg (truncated to fit). */
void preq_msg(struct preq *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void preq_free(struct pepd *s, struct preq *q);
/* Answer q with a refusal, audit it and hand it to its connection. */
void preq_refuse(struct pepd *s, struct preq *q, enum pep_code code,
    const char *msg);
/* The decision is known (from policy or OPA): audit, then fetch, or
 * refuse. */
void preq_decided(struct pepd *s, struct preq *q);
/* The fetcher's answer is complete (q->code, q->resp): finish q. */
void preq_fetched(struct pepd *s, struct preq *q);
/*
 * End of an event batch: fdatasync the decided lines that wait for it
 * (fsync "line", one sync for the batch), then start their fetches, or
 * refuse them when the sync failed.
 */
void preq_sync_flush(struct pepd *s);

/* ------------------------------------------------------------------ */
/* privsep.c: the parent's side of the fetcher                        */

#define FSLOT_FREE 0
#define FSLOT_FETCH 1
#define FSLOT_OPA 2

/* Open /proc/self/exe for the re-exec (before dropping privileges). */
int fetcher_prepare(struct pepd *s, struct pep_err *e);
/* fork, then exec "pepd --fetcher" with the socket as fd 3. */
int fetcher_spawn(struct pepd *s, struct pep_err *e);
/* fetcher_spawn, then wait for its hello (start-up). */
int fetcher_start(struct pepd *s, struct pep_err *e);
/* Send the configuration (at spawn and after a reload). */
int fetcher_send_config(struct pepd *s);
/* Send the host's own addresses (at spawn and when they change). */
int fetcher_send_addrs(struct pepd *s);
/* Start q's fetch; 0, or < 0 (q untouched) when it cannot start. */
int fetcher_fetch(struct pepd *s, struct preq *q);
/* Ask the decision point: a slot for ptr, the query sent. 0 or < 0. */
int fetcher_opa(struct pepd *s, void *ptr, const char *url,
    const char *body, size_t blen, long timeout_ms);
/* Forget a slot (its answer, if one comes, is dropped). */
void fetcher_slot_drop(struct pepd *s, uint64_t id);
/* A child changed state (SIGCHLD): reap, and recover from a crash. */
void fetcher_reap(struct pepd *s);
/* End of an event batch: send what is queued; respawn when due. */
void fetcher_flush(struct pepd *s, uint64_t now);
/* Shutdown grace over: answer every fetch and query still out. */
void fetcher_abort_all(struct pepd *s);
/* Stop the fetcher (EOF, then SIGKILL after a moment) and wait. */
void fetcher_stop(struct pepd *s);

/* ------------------------------------------------------------------ */
/* ifaddr.c: the host's own addresses                                 */

/* Read them (getifaddrs) and subscribe to RTM_NEWADDR/DELADDR. */
int ifaddr_open(struct pepd *s, struct pep_err *e);
void ifaddr_close(struct pepd *s);
/* End of an event batch: re-read when netlink said they changed. */
void ifaddr_flush(struct pepd *s);

/* ------------------------------------------------------------------ */
/* opa.c: external decision point with a decision cache               */

int opa_init(struct pepd *s, struct pep_err *e);
void opa_free(struct pepd *s);
void opa_flush(struct pepd *s);
/*
 * Decide q through OPA: 1 when the cache answered (q->d filled), 0 when
 * a query started (preq_decided or preq_refuse follow), < 0 on error.
 */
int opa_decide(struct pepd *s, struct preq *q);
/* The fetcher's answer to query ptr (rc < 0: the fetcher died, or the
 * shutdown: aborted). */
void opa_answer(struct pepd *s, void *ptr, const struct ipc_opa_result *r,
    const uint8_t *answer, int aborted);
/* The input document for q, as sent: {"input": {...}} (cJSON_free). */
char *opa_input(const struct preq *q);

/* ------------------------------------------------------------------ */
/* audit.c: JSON lines, whole or not at all                           */

int audit_open(struct audit *a, const struct pepd_config *c,
    struct pep_err *e);
/*
 * A reload: switch to c's path and fsync policy. A new path is opened
 * first; if it cannot be, nothing changes and the error is returned.
 */
int audit_switch(struct audit *a, const struct pepd_config *c,
    struct pep_err *e);
int audit_reopen(struct audit *a);
void audit_close(struct audit *a);
/* Periodic: interval fsync, and retrying a broken log. */
void audit_tick(struct audit *a, uint64_t now);
/*
 * The "decided" line of an allowed request, before its fetch: 0 written
 * (1 when it still needs the fdatasync of fsync "line"), < 0 when it
 * cannot be written (refuse: audit_unavailable).
 */
int audit_decided(struct pepd *s, struct preq *q);
/* fdatasync for the decided lines of a batch: 0 or < 0. */
int audit_sync(struct audit *a);
/* The "answered" line of every request, before the answer goes out: 0
 * written, < 0 not (nothing kept: see audit_keep). */
int audit_answered(struct pepd *s, const struct preq *q);
/* Keep q's answered line for when the log works again (bounded). */
void audit_keep(struct pepd *s, const struct preq *q);

/* ------------------------------------------------------------------ */
/* metrics.c: Prometheus text on a loopback port                      */

int metrics_open(struct pepd *s, const char *hostport, struct pep_err *e);
void metrics_close(struct pepd *s);
void metrics_request(struct pepd *s, const struct preq *q);

/* ------------------------------------------------------------------ */
/* The fetcher process (fetcher.c, fetch_*.c)                         */
/* Everything below runs in "pepd --fetcher", on its own epoll loop.  */

struct fetcher;
struct xfer;

/* An epoll registration of the fetcher's loop. */
struct fev {
	int fd;
	void (*fn)(struct fetcher *f, struct fev *ev, uint32_t events);
};

/* What IPC_CONFIG and IPC_ADDRS set. */
struct fetch_conf {
	long connect_timeout_ms;
	long total_timeout_ms;
	size_t max_response;
	struct cidr *allow;	/* allow_private */
	size_t nallow;
	struct cidr *own;	/* the host's addresses */
	size_t nown;
	uint8_t *ca;		/* PEM, or NULL */
	size_t ca_len;
};

#define XFER_FETCH 1
#define XFER_OPA 2

/* One transfer in the multi handle: a fetch or an OPA query. */
struct xfer {
	struct xfer *prev, *next;	/* f->xfers */
	struct fetcher *f;
	uint64_t id;		/* the parent's slot id */
	int kind;
	void *easy;		/* CURL * */
	void *hdrs;		/* struct curl_slist * */
	char *method;
	char *url;
	char *reqhdrs;		/* nreqhdrs name NUL value NUL pairs */
	size_t nreqhdrs;
	uint8_t *reqbody;	/* request body (fetch), query (OPA) */
	size_t reqlen, reqgot;
	long timeout_ms;	/* OPA */
	/* the response */
	uint8_t *body;
	size_t blen, bcap;
	struct pep_header *rh;	/* header fields */
	size_t nrh, caprh;
	struct pep_header *rt;	/* trailer fields */
	size_t nrt, caprt;
	int hdr_done;		/* the final header section ended */
	int fold_to;		/* obs-fold continues: 1 header, 2 trailer,
				 * 0 none, -1 a dropped field */
	size_t hdr_bytes;	/* of the response's fields */
	int bad_headers;	/* too many, or too large */
	char ip[48];
	int ssrf_blocked;	/* enum ssrf_class */
	int too_large;
	char msg[256];		/* CURLOPT_ERRORBUFFER */
};

struct fetcher {
	int epfd;
	struct fev ipcev;	/* fd 3, the parent */
	struct fev timerev;	/* timerfd for CURLMOPT_TIMERFUNCTION */
	uint64_t curl_due_us;	/* when timerev fires, 0 = never */
	struct ipc_chan chan;
	void *multi;		/* CURLM * */
	struct xfer *xfers;
	struct xfer *filling;	/* its request body is arriving */
	void *pool[PEPD_EASY_POOL];	/* idle CURL * (fetch_pool.c) */
	size_t npool;
	struct fetch_conf conf;
	struct sandbox_state sb;
	void **grave;		/* sockets released by libcurl */
	size_t ngrave, capgrave;
	int stop;		/* the parent is gone */
};

/* fetcher.c */
/* "pepd --fetcher": the fetcher's main; its exit status. */
int fetcher_main(int verbose);
int fev_add(struct fetcher *f, struct fev *ev, uint32_t events);
int fev_mod(struct fetcher *f, struct fev *ev, uint32_t events);
void fev_del(struct fetcher *f, struct fev *ev);
void fetcher_defer_free(struct fetcher *f, struct fev *ev, void *obj);
/* A transfer ended (rc: CURLcode; from fetch_multi.c only). */
void xfer_done(struct fetcher *f, struct xfer *x, int rc);

/* fetch_cb.c: libcurl's callbacks and the easy handle's options */
/* Options every easy handle shares (TLS, protocols, CA). */
void fetch_common_opts(const struct fetch_conf *c, void *easy);
/* Configure easy for the fetch x; 0 or -ENOMEM, -EINVAL. */
int fetch_setup(struct fetcher *f, struct xfer *x, void *easy);
/* Configure easy for the OPA query x. */
int fetch_setup_opa(struct fetcher *f, struct xfer *x, void *easy);
/* Free what the callbacks collected (headers, body). */
void fetch_xfer_clear(struct xfer *x);

/* fetch_pool.c: idle easy handles */
void *fetch_pool_get(struct fetcher *f);
void fetch_pool_put(struct fetcher *f, void *easy);
void fetch_pool_free(struct fetcher *f);

/* fetch_multi.c: libcurl multi on the fetcher's epoll */
int fetch_multi_init(struct fetcher *f, struct pep_err *e);
void fetch_multi_cleanup(struct fetcher *f);
/* Add x (its easy handle configured); 0 or < 0. */
int fetch_multi_add(struct fetcher *f, struct xfer *x);
/* Remove x without ending it (it is being freed). */
void fetch_multi_remove(struct fetcher *f, struct xfer *x);
/* The curl timer fired. */
void fetch_multi_timer(struct fetcher *f);

#endif
