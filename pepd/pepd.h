/*
 * pepd private header: the Policy Enforcement Point. Every module of
 * pepd/ is declared here under a banner per file. Modules return 0 or a
 * negative code (common/err.h) and fill a struct pep_err; only pepd.c
 * prints or exits. A request error never stops pepd: it is answered with a
 * refusal frame and audited.
 */
#ifndef PEP_PEPD_H
#define PEP_PEPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "../common/err.h"
#include "../common/frame.h"

#define PEPD_VERSION "0.1.0"
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
	PEP_POLICY_UNAVAILABLE
};

/* "denied_by_policy", ...; "" for PEP_OK, "upstream_error" if unknown. */
const char *pep_code_name(enum pep_code c);

/* ------------------------------------------------------------------ */
/* base64.c (common/base64.c): RFC 4648 with padding                   */
/* (declared in common/base64.h)                                       */

/* ------------------------------------------------------------------ */
/* ssrf.c: address classification                                     */

enum ssrf_class {
	SSRF_PUBLIC = 0,	/* globally routable: allowed */
	SSRF_UNSPECIFIED,	/* 0.0.0.0/8, :: */
	SSRF_LOOPBACK,		/* 127/8, ::1 */
	SSRF_PRIVATE,		/* RFC 1918, fc00::/7, fec0::/10 */
	SSRF_LINKLOCAL,		/* 169.254/16 (incl. metadata), fe80::/10 */
	SSRF_CGNAT,		/* 100.64/10 */
	SSRF_MULTICAST,		/* 224/4, ff00::/8 */
	SSRF_BROADCAST,		/* 255.255.255.255 */
	SSRF_RESERVED,		/* 240/4, 192.0.0/24, 192.0.2/24,
				 * 192.88.99/24, 198.18/15, 198.51.100/24,
				 * 203.0.113/24; IPv6 outside 2000::/3
				 * not listed here, 2001:db8::/32,
				 * 2001:2::/48, 2001:10::/28, 2001:20::/28,
				 * 3fff::/20 */
	SSRF_NAT64,		/* 64:ff9b::/96, 64:ff9b:1::/48 */
	SSRF_6TO4,		/* 2002::/16 */
	SSRF_TEREDO,		/* 2001::/32 */
	SSRF_IPV4_COMPAT,	/* ::/96 but :: and ::1 (IPv4-compatible) */
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
/*
 * The connect-time check: 0 if sa may be connected to (public, or inside
 * one of allow[]), else the ssrf_class that blocks it.
 */
enum ssrf_class ssrf_check(const struct sockaddr *sa, socklen_t len,
    const struct cidr *allow, size_t nallow);

/* ------------------------------------------------------------------ */
/* url.c: URL and host normalisation (libcurl's URL API, libidn2)     */

#define URL_HOSTMAX 256

struct pep_url {
	char scheme[8];		/* "http" or "https" */
	char host[URL_HOSTMAX];	/* lower case, punycode, no trailing dot;
				 * IPv6 without brackets; numeric IPv4
				 * spellings normalised to dotted quad */
	int host_is_ip;
	int port;		/* explicit or the scheme's default */
	char *path;		/* path + query, malloc'd, at least "/";
				 * dot segments removed, %XX of unreserved
				 * characters decoded, other %XX upper
				 * case (policy matches this; fetch it) */
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
 * Parse a request frame's JSON payload. Unknown fields are ignored.
 * Errors (invalid JSON, missing/ill-typed fields, bad base64, limits)
 * return < 0 (-EINVAL, -EMSGSIZE) with a message fit for a bad_request
 * refusal; -ENOMEM is not the peer's fault.
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

int proto_response(int status, const struct pep_header *h, size_t nh,
    const uint8_t *body, size_t blen, struct pep_frame *f);
int proto_refusal(enum pep_code code, const char *message,
    struct pep_frame *f);

/*
 * Hop-by-hop headers (RFC 9110 7.6.1: Connection, Keep-Alive,
 * Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
 * Transfer-Encoding, Upgrade) and those libcurl sets itself (Host,
 * Content-Length, Expect, Accept-Encoding). Not Content-Encoding: drop it
 * (and Content-Length) from responses whose body libcurl decoded; also
 * drop the names listed in a Connection header.
 */
int proto_hop_by_hop(const char *name);

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
	char *path_prefix;	/* NULL = any */
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
	char *audit_path;	/* NULL = no audit file (stderr warning) */
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
/* Runtime: server state (loop.c)                                     */
/* Everything below runs on the one event loop of the pepd process.   */

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
	unsigned int refs;
};

struct pepd_opts {
	const char *config_path;	/* NULL: config_from_env() */
	const char *listen[CONFIG_MAXLISTEN];	/* override the config's */
	size_t nlisten;
	long frame_timeout_ms;	/* partial frame lifetime, default 10000 */
};

/* audit.c state */
struct audit {
	int fd;			/* -1: no audit log */
	char *path;
	enum audit_fsync fsync;
	long interval_ms;
	uint64_t last_sync_ms;
	int dirty;
	uint64_t lines;
	uint64_t errors;
};

#define METRICS_NBUCKETS 14

/* metrics.c state */
struct metrics {
	struct ev lev;		/* listening socket, fd -1: off */
	uint64_t decisions[3];	/* allow, deny, report */
	uint64_t codes[PEP_POLICY_UNAVAILABLE + 1];
	uint64_t buckets[METRICS_NBUCKETS];	/* cumulative at render */
	double latency_sum;	/* seconds */
	uint64_t latency_count;
};

struct opa_cache;

struct pepd {
	int epfd;
	struct ev sigev;	/* signalfd: TERM INT HUP USR1 */
	struct ev tickev;	/* timerfd, every PEPD_TICK_MS */
	struct ev curlev;	/* timerfd driven by CURLMOPT_TIMERFUNCTION */
	uint64_t curl_due_us;	/* when curlev fires (monotonic), 0 = never */
	struct pepd_opts opts;
	struct pepd_cfg *cfg;	/* current configuration */
	struct listener *listeners;
	size_t nlisteners;
	uint64_t accept_resume_ms;	/* EMFILE back-off, 0 = accepting */
	struct conn *conns;	/* all connections */
	size_t nconns;
	struct cjob *jobs;	/* curl transfers in the multi handle */
	void *multi;		/* CURLM * */
	void *easy_pool[PEPD_EASY_POOL];	/* idle CURL * for reuse */
	size_t neasy_pool;
	size_t inflight;	/* fetches counted against max_concurrent */
	size_t nreqs;		/* live struct preq, incl. orphans */
	uint64_t next_id;
	char id_prefix[12];
	struct audit audit;
	struct metrics metrics;
	struct opa_cache *opa;
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
int pepd_config_load(const struct pepd_opts *o, struct pepd_config **cp,
    struct pep_err *e);
struct pepd_cfg *pepd_cfg_ref(struct pepd *s);
void pepd_cfg_unref(struct pepd_cfg *c);
int pepd_new(const struct pepd_opts *o, struct pepd **sp,
    struct pep_err *e);
/* Serve until SIGTERM/SIGINT and the shutdown grace are over. */
int pepd_run(struct pepd *s);
void pepd_free(struct pepd *s);

/* ------------------------------------------------------------------ */
/* listen.c: listeners, one ops table row per kind                    */

struct listen_ops {
	const char *kind;	/* "tcp", "unix", "vsock" */
	int (*open)(const char *arg, struct pep_err *e);
	/* Text for the audit line's peer field. */
	void (*peer)(const struct sockaddr *sa, socklen_t len, char *out,
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

/* ------------------------------------------------------------------ */
/* conn.c: one client connection, pipelined requests answered in order */

struct conn {
	struct ev ev;
	struct conn *prev, *next;
	char peer[64];
	uint8_t *rbuf;		/* unparsed input, freed when empty */
	size_t rlen, rcap;
	uint64_t partial_since_ms;	/* an incomplete frame is pending */
	struct preq *qhead, *qtail;	/* in request order */
	size_t nq;
	size_t woff;		/* bytes of qhead's frame written */
	uint32_t events;	/* current epoll mask */
	int closing;		/* read no more; close once answered */
	int rd_eof;		/* the peer sent EOF */
	int busy;		/* inside its event handler */
	int wblocked;		/* write hit EAGAIN: wait for EPOLLOUT */
	int draining;		/* SHUT_WR sent, await EOF, then close */
	uint64_t drain_deadline_ms;
};

int conn_new(struct pepd *s, int fd, const char *peer);
void conn_close(struct pepd *s, struct conn *c);
/* A request of c completed: write what can be written, in order. */
void conn_kick(struct pepd *s, struct conn *c);
/* Periodic: slowloris and drain time-outs. */
void conn_tick(struct pepd *s, uint64_t now);
/* Shutdown: read no more requests; close once the queue is answered. */
void conn_stop_reading(struct pepd *s, struct conn *c);

/* ------------------------------------------------------------------ */
/* fetch.c: requests, the decision and the libcurl multi fetch        */

/* A transfer in the multi handle (a fetch or an OPA query). */
struct cjob {
	struct cjob *prev, *next;
	void *easy;		/* CURL * */
	/* aborted: removed by the shutdown, rc is meaningless */
	void (*done)(struct pepd *s, struct cjob *j, int rc, int aborted);
};

struct preq {
	struct preq *next;	/* in conn's queue */
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
	enum pep_code code;
	char msg[256];
	int status;
	struct pep_frame resp;
	int done;
	struct cjob job;
	void *hdrs;		/* struct curl_slist * */
	uint8_t *body;
	size_t blen, bcap;
	struct pep_header *rh;
	size_t nrh, caprh;
	char ip[48];		/* last address connected (or refused) */
	int ssrf_blocked;
	int too_large;
	size_t bytes_out;	/* request body sent upstream */
	long dns_us, connect_us;
	uint64_t total_us;
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
/* The decision is known (from policy or OPA): fetch or refuse. */
void preq_decided(struct pepd *s, struct preq *q);
int fetch_init(struct pepd *s, struct pep_err *e);
void fetch_cleanup(struct pepd *s);
/* Add a configured easy handle to the multi; j->done runs at the end. */
int fetch_add_job(struct pepd *s, struct cjob *j);
/* The curl timer fired. */
void fetch_timer(struct pepd *s);
/* Shutdown grace over: end every transfer (done(..., aborted = 1)). */
void fetch_abort_all(struct pepd *s);
/* Set the options every easy handle of pepd shares (TLS, protocols). */
void fetch_common_opts(const struct pepd_config *c, void *easy);

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

/* ------------------------------------------------------------------ */
/* audit.c: one JSON line per request                                 */

int audit_open(struct audit *a, const struct pepd_config *c,
    struct pep_err *e);
int audit_reopen(struct audit *a);
void audit_close(struct audit *a);
void audit_tick(struct audit *a, uint64_t now);
void audit_request(struct pepd *s, const struct preq *q);

/* ------------------------------------------------------------------ */
/* metrics.c: Prometheus text on a loopback port                      */

int metrics_open(struct pepd *s, const char *hostport, struct pep_err *e);
void metrics_close(struct pepd *s);
void metrics_request(struct pepd *s, const struct preq *q);

#endif
