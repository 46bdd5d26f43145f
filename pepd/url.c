/*
 * URL parsing through libcurl's URL API, and the one normalised form the
 * policy, OPA, its cache, the audit and the fetch all use. Hosts: IDN to
 * punycode (libidn2, UTS #46), lower case, no trailing dot, numeric IPv4
 * spellings (2130706433, 0x7f.1, 127.1, 0177.0.0.1) to dotted quad and
 * IPv6 literals to their canonical text without brackets, so that policy
 * and the SSRF check see one spelling per address. Paths (RFC 3986 6.2.2):
 * dot segments removed, unreserved characters decoded, every other escape
 * upper case and every byte that may not appear raw encoded, so "/café",
 * "/caf%c3%a9" and "/caf%C3%A9" are one path. Repeated slashes go to the
 * origin as they are (it may or may not merge them); rules match a form
 * with each run merged into one.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <idn2.h>
#include <stdlib.h>
#include <string.h>

#include "pepd.h"

#define HOST_MAXNAME 253

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
hex_val(int c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* WHATWG "ends in a number": is the last label numeric-looking? */
static int
ends_in_number(const char *s, size_t n)
{
	size_t i = n;

	while (i > 0 && s[i - 1] != '.')
		i--;
	if (i == n)
		return 0;
	if (n - i >= 2 && s[i] == '0' && (s[i + 1] | 0x20) == 'x') {
		for (i += 2; i < n; i++)
			if (hex_val((unsigned char)s[i]) < 0)
				return 0;
		return 1;
	}
	for (; i < n; i++)
		if (!is_digit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* One IPv4 part: decimal, 0-prefixed octal or 0x hex. 0 or -EINVAL. */
static int
ipv4_part(const char *s, size_t n, uint64_t *v)
{
	unsigned int base = 10;
	int d;

	*v = 0;
	if (n == 0)
		return -EINVAL;
	if (n >= 2 && s[0] == '0' && (s[1] | 0x20) == 'x') {
		base = 16;
		s += 2;
		n -= 2;
	} else if (n >= 2 && s[0] == '0') {
		base = 8;
		s++;
		n--;
	}
	for (; n > 0; s++, n--) {
		d = hex_val((unsigned char)*s);
		if (d < 0 || (unsigned int)d >= base)
			return -EINVAL;
		*v = *v * base + (unsigned int)d;
		if (*v > 0xffffffffu)
			return -EINVAL;
	}
	return 0;
}

/* WHATWG IPv4 parser over s[0..n). 0 or -EINVAL. */
static int
ipv4_parse(const char *s, size_t n, uint8_t out[4])
{
	uint64_t part[4], v;
	size_t np = 0, start = 0, i;
	int k;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (np == 4 || ipv4_part(s + start, i - start, &part[np]) < 0)
			return -EINVAL;
		np++;
		start = i + 1;
	}
	for (i = 0; i + 1 < np; i++)
		if (part[i] > 255)
			return -EINVAL;
	if (part[np - 1] >= (uint64_t)1 << (8 * (5 - np)))
		return -EINVAL;
	v = part[np - 1];
	for (i = 0; i + 1 < np; i++)
		v += part[i] << (8 * (3 - i));
	for (k = 0; k < 4; k++)
		out[k] = (uint8_t)(v >> (8 * (3 - k)));
	return 0;
}

/* Labels of [a-z0-9_-], 1..63 bytes, 253 in all. */
static int
dns_name_ok(const char *s)
{
	size_t n = strlen(s), lab = 0, i;
	unsigned char c;

	if (n == 0 || n > HOST_MAXNAME)
		return 0;
	for (i = 0; i <= n; i++) {
		c = (unsigned char)s[i];
		if (c == '.' || c == '\0') {
			if (lab == 0 || lab > 63)
				return 0;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' ||
		    c == '_'))
			return 0;
		lab++;
	}
	return 1;
}

static int
copy_out(const char *s, char *out, size_t outlen)
{
	size_t n = strlen(s);

	if (n >= outlen)
		return -EINVAL;
	memcpy(out, s, n + 1);
	return 0;
}

/* "[v6]" or "v6" (no zone id) to canonical text. */
static int
host_ipv6(const char *in, size_t n, char *out, size_t outlen)
{
	char buf[INET6_ADDRSTRLEN + 2];
	struct in6_addr a;

	if (in[0] == '[') {
		if (n < 3 || in[n - 1] != ']')
			return -EINVAL;
		in++;
		n -= 2;
	}
	if (n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, in, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET6, buf, &a) != 1)
		return -EINVAL;
	if (inet_ntop(AF_INET6, &a, buf, sizeof(buf)) == NULL)
		return -EINVAL;
	return copy_out(buf, out, outlen);
}

/* Punycode s (UTF-8) when it is not ASCII; result malloc'd. */
static int
host_idn(const char *s, char **res)
{
	const unsigned char *p;
	int rc;

	*res = NULL;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p >= 0x80)
			break;
	if (*p == '\0') {
		*res = strdup(s);
		return *res == NULL ? -ENOMEM : 0;
	}
	rc = idn2_to_ascii_8z(s, res, IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		*res = NULL;
		rc = idn2_to_ascii_8z(s, res, IDN2_TRANSITIONAL);
	}
	if (rc != IDN2_OK) {
		*res = NULL;
		return -EINVAL;
	}
	return 0;
}

/* The name case: IDN, lower case, trailing dot, numeric IPv4. */
static int
host_name(const char *in, size_t n, char *out, size_t outlen, int *is_ip)
{
	char buf[HOST_MAXNAME + 2], *a = NULL, *p;
	uint8_t v4[4];
	size_t len;
	int r = -EINVAL;

	if (n > 4 * (HOST_MAXNAME + 1))
		return -EINVAL;
	if (host_idn(in, &a) < 0)
		goto out;
	len = strlen(a);
	if (len > 0 && a[len - 1] == '.')
		a[--len] = '\0';
	if (len == 0 || len > HOST_MAXNAME)
		goto out;
	for (p = a; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + ('a' - 'A'));
	if (ends_in_number(a, len)) {
		if (ipv4_parse(a, len, v4) < 0 ||
		    inet_ntop(AF_INET, v4, buf, sizeof(buf)) == NULL)
			goto out;
		*is_ip = 1;
		r = copy_out(buf, out, outlen);
		goto out;
	}
	if (dns_name_ok(a))
		r = copy_out(a, out, outlen);
out:
	free(a);
	return r;
}

static int
host_norm(const char *in, char *out, size_t outlen, int *is_ip)
{
	size_t n = strlen(in);

	*is_ip = 0;
	if (n == 0 || outlen == 0)
		return -EINVAL;
	if (in[0] == '[' || memchr(in, ':', n) != NULL) {
		*is_ip = 1;
		return host_ipv6(in, n, out, outlen);
	}
	return host_name(in, n, out, outlen, is_ip);
}

int
host_normalize(const char *in, char *out, size_t outlen)
{
	int is_ip;

	return host_norm(in, out, outlen, &is_ip);
}

static int
is_unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* May c appear raw in a path or query (RFC 3986 3.3, 3.4)? */
static int
is_pchar(int c, int query)
{
	return is_unreserved(c) || (c != 0 && strchr("!$&'()*+,;=:@/",
	    c) != NULL) || (query && c == '?');
}

static size_t
pct_put(char *d, size_t o, int c)
{
	d[o] = '%';
	d[o + 1] = "0123456789ABCDEF"[(c >> 4) & 15];
	d[o + 2] = "0123456789ABCDEF"[c & 15];
	return o + 3;
}

/*
 * Percent-encoding normalisation (RFC 3986 6.2.2): decode escapes of
 * unreserved characters, upper-case the hex of the others, encode every
 * byte that may not appear raw (non-ASCII, controls, space, '"', '<',
 * '\\'...), and encode a stray '%' as "%25" (else "%%32e" would become
 * "%2e", which a second decoding turns into "."). The first '?' starts
 * the query. Returns a malloc'd string or NULL.
 */
static char *
pct_normalize(const char *s)
{
	size_t i, o = 0, n = strlen(s);
	int hi, lo, c, query = 0;
	char *d;

	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	d = malloc(3 * n + 1);
	if (d == NULL)
		return NULL;
	for (i = 0; s[i] != '\0'; i++) {
		c = (unsigned char)s[i];
		hi = c == '%' ? hex_val((unsigned char)s[i + 1]) : -1;
		lo = hi >= 0 ? hex_val((unsigned char)s[i + 2]) : -1;
		if (c == '%' && lo < 0) {
			o = pct_put(d, o, '%');
		} else if (c == '%') {
			c = hi * 16 + lo;
			if (is_unreserved(c))
				d[o++] = (char)c;
			else
				o = pct_put(d, o, c);
			i += 2;
		} else if (c == '?' || is_pchar(c, query)) {
			d[o++] = (char)c;
			query |= c == '?';
		} else {
			o = pct_put(d, o, c);
		}
	}
	d[o] = '\0';
	return d;
}

char *
url_merge_slashes(const char *path)
{
	size_t i, o = 0, n = strlen(path);
	int query = 0;
	char *d = malloc(n + 1);

	if (d == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		query |= path[i] == '?';
		if (!query && path[i] == '/' && o > 0 && d[o - 1] == '/')
			continue;
		d[o++] = path[i];
	}
	d[o] = '\0';
	return d;
}

/* After decoding, a "." or ".." segment was an encoded one: refuse. */
static int
has_dot_segment(const char *path)
{
	const char *seg = path, *end;
	size_t n;

	while (*seg == '/') {
		seg++;
		end = strchr(seg, '/');
		n = end != NULL ? (size_t)(end - seg) : strlen(seg);
		if ((n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return 1;
		seg += n;
	}
	return 0;
}

static int
url_get(CURLU *h, CURLUPart part, char **out, unsigned int flags)
{
	CURLUcode rc;

	*out = NULL;
	rc = curl_url_get(h, part, out, flags);
	if (rc != CURLUE_OK)
		*out = NULL;
	return rc;
}

static int
url_scheme(CURLU *h, struct pep_url *u, struct pep_err *e)
{
	char *s = NULL;
	int r = 0;

	if (url_get(h, CURLUPART_SCHEME, &s, 0) != CURLUE_OK ||
	    (strcmp(s, "http") != 0 && strcmp(s, "https") != 0))
		r = pep_errf(e, EINVAL, "URL scheme must be http or https");
	else
		memcpy(u->scheme, s, strlen(s) + 1);
	curl_free(s);
	return r;
}

static int
url_no_userinfo(CURLU *h, struct pep_err *e)
{
	static const CURLUPart parts[] = {
		CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS
	};
	char *s;
	size_t i;

	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (url_get(h, parts[i], &s, 0) == CURLUE_OK) {
			curl_free(s);
			return pep_errf(e, EINVAL,
			    "URL must not carry credentials");
		}
	}
	if (url_get(h, CURLUPART_ZONEID, &s, 0) == CURLUE_OK) {
		curl_free(s);
		return pep_errf(e, EINVAL, "URL must not carry a zone id");
	}
	return 0;
}

static int
url_host_port(CURLU *h, struct pep_url *u, struct pep_err *e)
{
	char *s = NULL, *end;
	long port = 0;
	int r = 0;

	if (url_get(h, CURLUPART_HOST, &s, 0) != CURLUE_OK ||
	    host_norm(s, u->host, sizeof(u->host), &u->host_is_ip) < 0) {
		r = pep_errf(e, EINVAL, "bad host in URL");
		goto out;
	}
	curl_free(s);
	s = NULL;
	if (url_get(h, CURLUPART_PORT, &s, CURLU_DEFAULT_PORT) ==
	    CURLUE_OK) {
		errno = 0;
		port = strtol(s, &end, 10);
		if (errno != 0 || *end != '\0')
			port = 0;
	}
	if (port < 1 || port > 65535)
		r = pep_errf(e, EINVAL, "bad port in URL");
	else
		u->port = (int)port;
out:
	curl_free(s);
	return r;
}

/* "/" + path + ("?" + query), before normalisation; malloc'd. */
static char *
join_path(const char *path, const char *query)
{
	size_t pl = strlen(path), ql = query != NULL ? strlen(query) : 0;
	char *j;

	j = malloc(pl + ql + 3);
	if (j == NULL)
		return NULL;
	j[0] = '/';
	memcpy(j + (path[0] != '/'), path, pl + 1);
	if (query != NULL) {
		pl = strlen(j);
		j[pl] = '?';
		memcpy(j + pl + 1, query, ql + 1);
	}
	return j;
}

static int
url_path(CURLU *h, struct pep_url *u, struct pep_err *e)
{
	char *path = NULL, *query = NULL, *joined = NULL, *q;
	int r = 0;

	if (url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		r = pep_errf(e, EINVAL, "bad path in URL");
		goto out;
	}
	url_get(h, CURLUPART_QUERY, &query, 0);
	joined = join_path(path, query);
	u->path = joined != NULL ? pct_normalize(joined) : NULL;
	if (u->path == NULL) {
		r = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	/* Only the path part may not hold (encoded) dot segments. */
	q = strchr(u->path, '?');
	if (q != NULL)
		*q = '\0';
	if (has_dot_segment(u->path))
		r = pep_errf(e, EINVAL, "URL path has an encoded dot segment");
	if (q != NULL)
		*q = '?';
	if (r == 0) {
		u->match = url_merge_slashes(u->path);
		if (u->match == NULL)
			r = pep_errf(e, ENOMEM, "out of memory");
	}
out:
	free(joined);
	curl_free(path);
	curl_free(query);
	return r;
}

/* scheme://host[:port]path, the port only when not the default. */
static int
url_string(struct pep_url *u, struct pep_err *e)
{
	int ipv6 = strchr(u->host, ':') != NULL, n;
	int dflt = u->port == (strcmp(u->scheme, "https") == 0 ? 443 : 80);
	size_t len = strlen(u->host) + strlen(u->path) + 32;
	char port[8] = "";

	u->url = malloc(len);
	if (u->url == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (!dflt)
		snprintf(port, sizeof(port), ":%d", u->port);
	n = snprintf(u->url, len, "%s://%s%s%s%s%s", u->scheme,
	    ipv6 ? "[" : "", u->host, ipv6 ? "]" : "", port, u->path);
	if (n < 0 || (size_t)n >= len)
		return pep_errf(e, EINVAL, "URL too long");
	return 0;
}

int
url_parse(const char *url, struct pep_url *u, struct pep_err *e)
{
	CURLU *h;
	int r;

	memset(u, 0, sizeof(*u));
	h = curl_url();
	if (h == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK) {
		r = pep_errf(e, EINVAL, "malformed URL");
		goto out;
	}
	r = url_scheme(h, u, e);
	if (r == 0)
		r = url_no_userinfo(h, e);
	if (r == 0)
		r = url_host_port(h, u, e);
	if (r == 0)
		r = url_path(h, u, e);
	if (r == 0)
		r = url_string(u, e);
out:
	curl_url_cleanup(h);
	if (r < 0)
		url_free(u);
	return r;
}

void
url_free(struct pep_url *u)
{
	if (u == NULL)
		return;
	free(u->path);
	free(u->match);
	free(u->url);
	u->path = NULL;
	u->match = NULL;
	u->url = NULL;
}
