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

/* "denied_by_policy", ...; "" for PEP_OK. */
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
	SSRF_PRIVATE,		/* RFC 1918, fc00::/7 */
	SSRF_LINKLOCAL,		/* 169.254/16 (incl. metadata), fe80::/10 */
	SSRF_CGNAT,		/* 100.64/10 */
	SSRF_MULTICAST,		/* 224/4, ff00::/8 */
	SSRF_BROADCAST,		/* 255.255.255.255 */
	SSRF_RESERVED,		/* 240/4 */
	SSRF_NAT64,		/* 64:ff9b::/96 */
	SSRF_6TO4,		/* 2002::/16 */
	SSRF_TEREDO,		/* 2001::/32 */
	SSRF_IPV4_COMPAT,	/* ::a.b.c.d (deprecated IPv4-compatible) */
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
	char *path;		/* path + query, malloc'd, at least "/" */
};

/* Parse an absolute http(s) URL. PEP_BAD_REQUEST-worthy errors. */
int url_parse(const char *url, struct pep_url *u, struct pep_err *e);
void url_free(struct pep_url *u);
/* IDN to punycode, lower case, strip one trailing dot. 0 or -EINVAL. */
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
	char *method;		/* upper case token */
	char *url;
	struct pep_header *headers;
	size_t nheaders;
	uint8_t *body;		/* decoded body_base64, may be NULL */
	size_t body_len;
};

/*
 * Parse a request frame's JSON payload. Unknown fields are ignored.
 * Errors (invalid JSON, missing/ill-typed fields, bad base64, limits)
 * return < 0 with a message fit for a bad_request refusal.
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

/* Hop-by-hop headers (RFC 9110 7.6.1) and those pepd sets itself. */
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

#endif
