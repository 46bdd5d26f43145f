/*
 * The fetcher's libcurl callbacks and easy handle options. The
 * connect-time SSRF check runs in CURLOPT_OPENSOCKETFUNCTION on the
 * address libcurl is about to connect to, so what is checked is what is
 * connected to, and again in CURLOPT_PREREQFUNCTION for connections taken
 * from libcurl's pool. Redirects are not followed.
 *
 * Header fidelity (PROTOCOL.md): the guest's request fields go out as
 * sent, whole (no fixed line buffer), empty and whitespace-only values
 * included; libcurl's own Accept and Content-Type are removed when the
 * guest sent none, and Accept-Encoding (libcurl's list: it decodes) is
 * only sent when the guest sent one. Response fields come back in order;
 * CR, LF and NUL inside a value become SP (RFC 9110 5.5), obs-fold lines
 * are unfolded with one SP (RFC 9112 5.2), and trailer fields are kept
 * apart from the header fields.
 *
 * Callbacks run inside curl_multi_socket_action(): they fill the xfer
 * and may make libcurl fail the transfer, never end or free it (the busy
 * rule, pepd.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <curl/curl.h>

#include "pepd.h"

#define FETCH_MAX_RESP_FIELDS 512
#define FETCH_MAX_RESP_BYTES (256u << 10)	/* all names and values */
#define OPA_MAX_ANSWER (1u << 20)

/* ---- the connect-time SSRF check ------------------------------------ */

static enum ssrf_class
check_addr(const struct xfer *x, const struct sockaddr *sa, socklen_t len)
{
	const struct fetch_conf *c = &x->f->conf;

	return ssrf_check(sa, len, c->allow, c->nallow, c->own, c->nown);
}

static curl_socket_t
cb_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct xfer *x = clientp;
	const void *in;
	enum ssrf_class cls;
	int fd;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (a->family == AF_INET6)
		in = &((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr;
	else
		in = &((struct sockaddr_in *)(void *)&a->addr)->sin_addr;
	if (inet_ntop(a->family, in, x->ip, sizeof(x->ip)) == NULL)
		x->ip[0] = '\0';
	cls = check_addr(x, &a->addr, a->addrlen);
	if (cls != SSRF_PUBLIC) {
		x->ssrf_blocked = (int)cls;
		return CURL_SOCKET_BAD;
	}
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	return fd == -1 ? CURL_SOCKET_BAD : fd;
}

/*
 * Called for every connection a request is about to use, new or taken
 * from libcurl's pool, before anything is sent. The pool may hold
 * connections opened under an older configuration (before a SIGHUP
 * narrowed allow_private, or an address became the host's): check the
 * peer again.
 */
static int
cb_prereq(void *clientp, char *peer_ip, char *local_ip, int peer_port,
    int local_port)
{
	struct xfer *x = clientp;
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	enum ssrf_class cls;

	(void)local_ip;
	(void)local_port;
	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	s4.sin_family = AF_INET;
	s4.sin_port = htons((uint16_t)peer_port);
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons((uint16_t)peer_port);
	if (inet_pton(AF_INET, peer_ip, &s4.sin_addr) == 1)
		cls = check_addr(x, (struct sockaddr *)&s4, sizeof(s4));
	else if (inet_pton(AF_INET6, peer_ip, &s6.sin6_addr) == 1)
		cls = check_addr(x, (struct sockaddr *)&s6, sizeof(s6));
	else
		cls = SSRF_BAD_ADDRESS;
	snprintf(x->ip, sizeof(x->ip), "%s", peer_ip);
	if (cls == SSRF_PUBLIC)
		return CURL_PREREQFUNC_OK;
	x->ssrf_blocked = (int)cls;
	return CURL_PREREQFUNC_ABORT;
}

/* ---- the response --------------------------------------------------- */

static size_t
cb_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb, cap, max;
	uint8_t *p;

	max = x->kind == XFER_OPA ? OPA_MAX_ANSWER : x->f->conf.max_response;
	if (n > max - x->blen) {
		x->too_large = 1;
		return CURL_WRITEFUNC_ERROR;
	}
	if (x->blen + n > x->bcap) {
		cap = x->bcap == 0 ? 16384 : x->bcap;
		while (cap < x->blen + n)
			cap *= 2;
		p = realloc(x->body, cap);
		if (p == NULL)
			return CURL_WRITEFUNC_ERROR;
		x->body = p;
		x->bcap = cap;
	}
	memcpy(x->body + x->blen, ptr, n);
	x->blen += n;
	return n;
}

static void
fields_clear(struct pep_header *h, size_t *n)
{
	while (*n > 0) {
		(*n)--;
		free(h[*n].name);
		free(h[*n].value);
	}
}

static int
resp_skip(const char *name)
{
	return proto_hop_by_hop(name) ||
	    strcasecmp(name, "content-encoding") == 0 ||
	    strcasecmp(name, "content-length") == 0;
}

/* Trim SP and HT at both ends of [*v, *v + *n). */
static void
trim_ows(const char **v, size_t *n)
{
	while (*n > 0 && (**v == ' ' || **v == '\t')) {
		(*v)++;
		(*n)--;
	}
	while (*n > 0 && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
		(*n)--;
}

/* A copy of v[0..n) with CR, LF and NUL replaced by SP (RFC 9110 5.5). */
static char *
value_dup(const char *v, size_t n)
{
	char *d = malloc(n + 1);
	size_t i;

	if (d == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		d[i] = v[i] == '\r' || v[i] == '\n' || v[i] == '\0' ? ' ' :
		    v[i];
	d[n] = '\0';
	return d;
}

/* obs-fold: append the continuation to the last field, one SP between. */
static int
resp_unfold(struct xfer *x, const char *line, size_t n)
{
	struct pep_header *h;
	size_t old;
	char *v, *add;

	if (x->fold_to <= 0)
		return 0;	/* after a dropped field, or none */
	h = x->fold_to == 1 ? &x->rh[x->nrh - 1] : &x->rt[x->nrt - 1];
	trim_ows(&line, &n);
	if (n == 0)
		return 0;
	add = value_dup(line, n);
	if (add == NULL)
		return -1;
	old = strlen(h->value);
	v = realloc(h->value, old + n + 2);
	if (v == NULL) {
		free(add);
		return -1;
	}
	if (old > 0)
		v[old++] = ' ';
	memcpy(v + old, add, n + 1);
	free(add);
	h->value = v;
	x->hdr_bytes += n + 1;
	return 0;
}

static int
fields_add(struct pep_header **h, size_t *n, size_t *cap, char *name,
    char *value)
{
	struct pep_header *nh;

	if (*n == *cap) {
		nh = realloc(*h, (*cap + 16) * sizeof(**h));
		if (nh == NULL)
			return -1;
		*h = nh;
		*cap += 16;
	}
	(*h)[*n].name = name;
	(*h)[*n].value = value;
	(*n)++;
	return 0;
}

/* One "name: value" line; to the trailers once the header section ended. */
static int
resp_field(struct xfer *x, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n), *v;
	size_t nlen, vlen;
	char *name, *value;

	x->fold_to = -1;
	if (colon == NULL)
		return 0;	/* not a field line: dropped */
	nlen = (size_t)(colon - line);
	while (nlen > 0 && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
		nlen--;		/* RFC 9112 5.1: a proxy removes it */
	v = colon + 1;
	vlen = n - (size_t)(v - line);
	trim_ows(&v, &vlen);
	if (x->nrh + x->nrt >= FETCH_MAX_RESP_FIELDS ||
	    x->hdr_bytes + nlen + vlen > FETCH_MAX_RESP_BYTES) {
		x->bad_headers = 1;
		return -1;
	}
	name = strndup(line, nlen);
	if (name == NULL)
		return -1;
	if (!proto_is_token(name, nlen) || resp_skip(name)) {
		free(name);
		return 0;
	}
	value = value_dup(v, vlen);
	if (value == NULL ||
	    (x->hdr_done ? fields_add(&x->rt, &x->nrt, &x->caprt, name,
	    value) : fields_add(&x->rh, &x->nrh, &x->caprh, name, value)) <
	    0) {
		free(name);
		free(value);
		return -1;
	}
	x->hdr_bytes += nlen + vlen;
	x->fold_to = x->hdr_done ? 2 : 1;
	return 0;
}

static size_t
cb_header(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nitems, len = n;
	int r = 0;

	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* a new header section: after a 1xx, the final one */
		fields_clear(x->rh, &x->nrh);
		fields_clear(x->rt, &x->nrt);
		x->hdr_done = 0;
		x->hdr_bytes = 0;
		x->fold_to = 0;
	} else if (len == 0) {
		x->hdr_done = 1;	/* what follows are trailers */
		x->fold_to = 0;
	} else if (buf[0] == ' ' || buf[0] == '\t') {
		r = resp_unfold(x, buf, len);
	} else {
		r = resp_field(x, buf, len);
	}
	return r < 0 ? 0 : n;
}

void
fetch_xfer_clear(struct xfer *x)
{
	fields_clear(x->rh, &x->nrh);
	fields_clear(x->rt, &x->nrt);
	free(x->rh);
	free(x->rt);
	free(x->body);
	x->rh = x->rt = NULL;
	x->caprh = x->caprt = 0;
	x->body = NULL;
	x->blen = x->bcap = 0;
}

/* ---- the request ---------------------------------------------------- */

static int
req_skip(const char *name)
{
	/* proto_hop_by_hop has Host, Content-Length, Expect and
	 * Accept-Encoding too: libcurl sets those */
	return proto_hop_by_hop(name);
}

/* "Name: value", or "Name;" for an empty or whitespace-only value (libcurl
 * sends it as "Name:"; "Name:" alone would remove the field). */
static int
slist_field(struct curl_slist **l, const char *name, const char *value)
{
	const char *v = value;
	size_t nl = strlen(name), vl;
	struct curl_slist *t;
	char *line;

	while (*v == ' ' || *v == '\t')
		v++;
	vl = *v == '\0' ? 0 : strlen(value);
	line = malloc(nl + vl + 3);
	if (line == NULL)
		return -ENOMEM;
	memcpy(line, name, nl);
	if (vl == 0) {
		memcpy(line + nl, ";", 2);
	} else {
		memcpy(line + nl, ": ", 2);
		memcpy(line + nl + 2, value, vl + 1);
	}
	t = curl_slist_append(*l, line);
	free(line);
	if (t == NULL)
		return -ENOMEM;
	*l = t;
	return 0;
}

/* An internal header libcurl would add, removed ("Name:"). */
static int
slist_remove(struct curl_slist **l, const char *what)
{
	struct curl_slist *t = curl_slist_append(*l, what);

	if (t == NULL)
		return -ENOMEM;
	*l = t;
	return 0;
}

static int
req_headers(struct xfer *x)
{
	struct curl_slist *l = NULL;
	const char *name = x->reqhdrs, *value;
	int accept = 0, ctype = 0, aenc = 0, r = 0;
	size_t i;

	for (i = 0; i < x->nreqhdrs && r == 0; i++) {
		value = name + strlen(name) + 1;
		if (strcasecmp(name, "accept") == 0)
			accept = 1;
		else if (strcasecmp(name, "content-type") == 0)
			ctype = 1;
		else if (strcasecmp(name, "accept-encoding") == 0)
			aenc = 1;
		if (!req_skip(name))
			r = slist_field(&l, name, value);
		name = value + strlen(value) + 1;
	}
	if (r == 0 && !accept)
		r = slist_remove(&l, "Accept:");
	if (r == 0 && !ctype)
		r = slist_remove(&l, "Content-Type:");
	if (r == 0 && !aenc)
		r = slist_remove(&l, "Accept-Encoding:");
	if (r == 0)
		r = slist_remove(&l, "Expect:");
	if (r < 0) {
		curl_slist_free_all(l);
		return r;
	}
	x->hdrs = l;
	return 0;
}

void
fetch_common_opts(const struct fetch_conf *c, void *easy)
{
	CURL *h = easy;
	struct curl_blob ca;

	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca != NULL) {
		ca.data = c->ca;
		ca.len = c->ca_len;
		ca.flags = CURL_BLOB_COPY;
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
		curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
}

static void
set_method(struct xfer *x, CURL *h)
{
	const char *m = x->method;

	if (strcmp(m, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		return;
	}
	if (strcmp(m, "GET") == 0 && x->reqlen == 0)
		return;
	if (x->reqlen > 0 || strcmp(m, "POST") == 0 ||
	    strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)x->reqlen);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
		    x->reqbody != NULL ? (char *)x->reqbody : "");
	}
	if (strcmp(m, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
}

int
fetch_setup(struct fetcher *f, struct xfer *x, void *easy)
{
	const struct fetch_conf *c = &f->conf;
	CURL *h = easy;
	int r;

	r = req_headers(x);
	if (r < 0)
		return r;
	fetch_common_opts(c, h);
	if (curl_easy_setopt(h, CURLOPT_URL, x->url) != CURLE_OK)
		return -EINVAL;
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->msg);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->total_timeout_ms);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, cb_opensocket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, cb_prereq);
	curl_easy_setopt(h, CURLOPT_PREREQDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cb_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	/* decode whatever the origin encodes (even unasked); ask only
	 * when the guest asked (else "Accept-Encoding:" removes it) */
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)c->max_response);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
	set_method(x, h);
	return 0;
}

int
fetch_setup_opa(struct fetcher *f, struct xfer *x, void *easy)
{
	CURL *h = easy;
	struct curl_slist *l;

	l = curl_slist_append(NULL, "Content-Type: application/json");
	if (l == NULL)
		return -ENOMEM;
	x->hdrs = l;
	fetch_common_opts(&f->conf, h);
	if (curl_easy_setopt(h, CURLOPT_URL, x->url) != CURLE_OK)
		return -EINVAL;
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->msg);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->reqlen);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS,
	    x->reqbody != NULL ? (char *)x->reqbody : "");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, x->timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	return 0;
}
