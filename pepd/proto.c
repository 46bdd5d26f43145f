/*
 * The request/response protocol (pepd/PROTOCOL.md): requests are parsed
 * with cJSON and checked field by field; responses and refusals are
 * written straight into one frame buffer (header + JSON), so a large body
 * is base64-encoded once, in place. Header names and values are byte
 * strings; on the wire each byte is one code point U+0000..U+00FF
 * (ISO-8859-1, like the Fetch standard's ByteString).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/base64.h"
#include "../common/utf8.h"
#include "pepd.h"

#define PROTO_METHOD_MAX 64

void
limits_default(struct pep_limits *l)
{
	l->max_frame = FRAME_DEFAULT_MAX;
	l->max_headers = 128;
	l->max_header_bytes = 64u << 10;
	l->max_response = 64u << 20;
	l->max_queue = 16;
	l->max_concurrent = 512;
	l->max_connections = 4096;
	l->max_connections_per_client = 1024;
	l->idle_timeout_ms = 60000;
	l->connect_timeout_ms = 10000;
	l->total_timeout_ms = 60000;
}

/* RFC 9110 5.6.2 tchar. */
static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int
proto_is_token(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= max || !is_tchar((unsigned char)s[i]))
			return 0;
	return i > 0;
}

/* ------------------------------------------------------------------ */
/* request parsing                                                    */

/*
 * cJSON turns "\u0000" into a NUL that silently truncates the string,
 * and passes raw NUL bytes through: refuse both before parsing.
 */
static int
has_nul(const uint8_t *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\0')
			return 1;
		if (s[i] != '\\' || i + 1 >= n)
			continue;
		if (s[i + 1] == 'u' && i + 5 < n &&
		    memcmp(s + i + 2, "0000", 4) == 0)
			return 1;
		i++;	/* skip the escaped character */
	}
	return 0;
}

/*
 * Decode UTF-8 whose code points are all <= U+00FF into bytes (in
 * place; the result is never longer). 0 or -EINVAL.
 */
static int
latin1_from_utf8(char *s)
{
	unsigned char *p = (unsigned char *)s, *o = p;

	while (*p != '\0') {
		if (*p < 0x80) {
			*o++ = *p++;
		} else if ((*p == 0xc2 || *p == 0xc3) &&
		    (p[1] & 0xc0) == 0x80) {
			*o++ = (unsigned char)(((*p & 0x03) << 6) |
			    (p[1] & 0x3f));
			p += 2;
		} else {
			return -EINVAL;
		}
	}
	*o = '\0';
	return 0;
}

/* RFC 9110 5.5: no CTLs but HTAB (so no CR, LF or NUL). */
static int
field_value_ok(const char *v)
{
	const unsigned char *p;

	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

static int
req_method(const cJSON *v, struct pep_request *r, struct pep_err *e)
{
	if (!cJSON_IsString(v) ||
	    !proto_is_token(v->valuestring, PROTO_METHOD_MAX))
		return pep_errf(e, EINVAL,
		    "method must be an HTTP token of at most %d characters",
		    PROTO_METHOD_MAX);
	r->method = strdup(v->valuestring);
	return r->method == NULL ? pep_errf(e, ENOMEM, "out of memory") : 0;
}

static int
req_url(const cJSON *v, struct pep_request *r, struct pep_err *e)
{
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return pep_errf(e, EINVAL, "url must be a non-empty string");
	r->url = strdup(v->valuestring);
	return r->url == NULL ? pep_errf(e, ENOMEM, "out of memory") : 0;
}

static int
req_header(const cJSON *pair, size_t i, struct pep_header *h,
    size_t *bytes, const struct pep_limits *lim, struct pep_err *e)
{
	const cJSON *k, *v;

	k = cJSON_GetArrayItem(pair, 0);
	v = cJSON_GetArrayItem(pair, 1);
	if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 ||
	    !cJSON_IsString(k) || !cJSON_IsString(v))
		return pep_errf(e, EINVAL,
		    "headers[%zu] must be [name, value] strings", i);
	if (!proto_is_token(k->valuestring, lim->max_header_bytes))
		return pep_errf(e, EINVAL,
		    "headers[%zu]: name is not an HTTP token", i);
	h->name = strdup(k->valuestring);
	h->value = strdup(v->valuestring);
	if (h->name == NULL || h->value == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (latin1_from_utf8(h->value) < 0)
		return pep_errf(e, EINVAL,
		    "headers[%zu]: value has characters above U+00FF", i);
	if (!field_value_ok(h->value))
		return pep_errf(e, EINVAL,
		    "headers[%zu]: value contains CR, LF or another control "
		    "character", i);
	*bytes += strlen(h->name) + strlen(h->value);
	if (*bytes > lim->max_header_bytes)
		return pep_errf(e, EMSGSIZE,
		    "headers exceed %zu bytes", lim->max_header_bytes);
	return 0;
}

static int
req_headers(const cJSON *v, const struct pep_limits *lim,
    struct pep_request *r, struct pep_err *e)
{
	const cJSON *pair;
	size_t n, bytes = 0;
	int rc;

	if (cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v))
		return pep_errf(e, EINVAL, "headers must be an array");
	n = (size_t)cJSON_GetArraySize(v);
	if (n > lim->max_headers)
		return pep_errf(e, EMSGSIZE, "more than %zu headers",
		    lim->max_headers);
	if (n == 0)
		return 0;
	r->headers = calloc(n, sizeof(*r->headers));
	if (r->headers == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	cJSON_ArrayForEach(pair, v) {
		rc = req_header(pair, r->nheaders, &r->headers[r->nheaders],
		    &bytes, lim, e);
		r->nheaders++;
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
req_body(const cJSON *v, struct pep_request *r, struct pep_err *e)
{
	size_t n;

	if (cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return pep_errf(e, EINVAL, "body_base64 must be a string");
	n = strlen(v->valuestring);
	if (n == 0)
		return 0;
	r->body = malloc(base64_decoded_max(n));
	if (r->body == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (base64_decode(v->valuestring, n, r->body, &r->body_len) < 0)
		return pep_errf(e, EINVAL, "body_base64 is not valid base64");
	return 0;
}

static int
req_field(const cJSON *v, const struct pep_limits *lim,
    struct pep_request *r, unsigned int *seen, struct pep_err *e)
{
	static const char *const names[] = {
		"method", "url", "headers", "body_base64"
	};
	unsigned int i;

	for (i = 0; i < 4; i++)
		if (strcmp(v->string, names[i]) == 0)
			break;
	if (i == 4)
		return 0;	/* unknown fields are ignored */
	if (*seen & (1u << i))
		return pep_errf(e, EINVAL, "duplicate field '%s'", names[i]);
	*seen |= 1u << i;
	switch (i) {
	case 0:
		return req_method(v, r, e);
	case 1:
		return req_url(v, r, e);
	case 2:
		return req_headers(v, lim, r, e);
	default:
		return req_body(v, r, e);
	}
}

static int
req_object(const cJSON *root, const struct pep_limits *lim,
    struct pep_request *r, struct pep_err *e)
{
	const cJSON *v;
	unsigned int seen = 0;
	int rc;

	if (!cJSON_IsObject(root))
		return pep_errf(e, EINVAL, "request must be a JSON object");
	cJSON_ArrayForEach(v, root) {
		rc = req_field(v, lim, r, &seen, e);
		if (rc < 0)
			return rc;
	}
	if (r->method == NULL)
		return pep_errf(e, EINVAL, "missing field 'method'");
	if (r->url == NULL)
		return pep_errf(e, EINVAL, "missing field 'url'");
	return 0;
}

static int
only_space(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			return 0;
	return 1;
}

int
proto_parse_request(const uint8_t *json, size_t len,
    const struct pep_limits *lim, struct pep_request *r,
    struct pep_err *e)
{
	const char *s = (const char *)json, *end = NULL;
	cJSON *root = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	if (len > lim->max_frame)
		return pep_errf(e, EMSGSIZE, "frame of %zu bytes exceeds %zu",
		    len, lim->max_frame);
	if (!utf8_valid(s, len))
		return pep_errf(e, EINVAL, "the frame is not valid UTF-8");
	if (len == 0 || has_nul(json, len))
		return pep_errf(e, EINVAL, "invalid JSON");
	root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
	if (root == NULL || end == NULL || !only_space(end, s + len)) {
		rc = pep_errf(e, EINVAL, "invalid JSON");
		goto out;
	}
	rc = req_object(root, lim, r, e);
out:
	cJSON_Delete(root);
	if (rc < 0)
		proto_request_free(r);
	return rc;
}

void
proto_request_free(struct pep_request *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->method);
	free(r->url);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------------ */
/* frame building (json.c writes the JSON)                            */

static int
frame_begin(struct jbuf *b, size_t guess)
{
	if (jb_init(b, guess) < 0)
		return b->err;
	jb_put(b, "\0\0\0\0", FRAME_HDR);
	return b->err;
}

/* Put the frame header in front and hand the buffer over. */
static int
frame_end(struct jbuf *b, struct pep_frame *f)
{
	size_t plen = b->len - FRAME_HDR;

	if (b->err == 0 && plen > UINT32_MAX)
		b->err = -EMSGSIZE;
	if (b->err != 0) {
		free(b->p);
		return b->err;
	}
	frame_put_header(b->p, (uint32_t)plen);
	f->data = b->p;
	f->len = b->len;
	return 0;
}

static size_t
fields_guess(const struct pep_header *h, size_t nh, size_t g)
{
	size_t i, hl;

	for (i = 0; i < nh; i++) {
		hl = strlen(h[i].name) + (h[i].value ? strlen(h[i].value) : 0);
		if (hl > (SIZE_MAX - g) / 4)
			return g;
		g += hl * 2 + 8;
	}
	return g;
}

static void
put_fields(struct jbuf *b, const struct pep_header *h, size_t nh)
{
	size_t i;

	jb_put(b, "[", 1);
	for (i = 0; i < nh; i++) {
		jb_puts(b, i == 0 ? "[" : ",[");
		jb_bytestr(b, h[i].name != NULL ? h[i].name : "");
		jb_put(b, ",", 1);
		jb_bytestr(b, h[i].value != NULL ? h[i].value : "");
		jb_put(b, "]", 1);
	}
	jb_put(b, "]", 1);
}

int
proto_response(int status, const struct pep_header *h, size_t nh,
    const struct pep_header *t, size_t nt, const uint8_t *body,
    size_t blen, struct pep_frame *f)
{
	struct jbuf b;
	char num[3];
	size_t g;

	f->data = NULL;
	f->len = 0;
	if (status < 100 || status > 999 || (nh > 0 && h == NULL) ||
	    (nt > 0 && t == NULL) || (blen > 0 && body == NULL))
		return -EINVAL;
	g = fields_guess(t, nt, fields_guess(h, nh, 128 +
	    base64_encoded_len(blen)));
	if (frame_begin(&b, g) < 0)
		return b.err;
	num[0] = (char)('0' + status / 100);
	num[1] = (char)('0' + status / 10 % 10);
	num[2] = (char)('0' + status % 10);
	jb_puts(&b, "{\"status\":");
	jb_put(&b, num, 3);
	jb_puts(&b, ",\"headers\":");
	put_fields(&b, h, nh);
	if (nt > 0) {
		jb_puts(&b, ",\"trailers\":");
		put_fields(&b, t, nt);
	}
	jb_puts(&b, ",\"body_base64\":");
	jb_base64(&b, body, blen);
	jb_puts(&b, ",\"error\":null}");
	return frame_end(&b, f);
}

int
proto_refusal(enum pep_code code, const char *message,
    struct pep_frame *f)
{
	struct jbuf b;

	f->data = NULL;
	f->len = 0;
	if (code == PEP_OK || (unsigned int)code > PEP_CODE_LAST)
		return -EINVAL;
	if (frame_begin(&b, 96 + (message ? strlen(message) * 2 : 0)) < 0)
		return b.err;
	jb_puts(&b, "{\"error\":{\"code\":");
	jb_str(&b, pep_code_name(code));
	jb_puts(&b, ",\"message\":");
	jb_str(&b, message != NULL ? message : "");
	jb_puts(&b, "}}");
	return frame_end(&b, f);
}

int
proto_hop_by_hop(const char *name)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "proxy-connection",
		"proxy-authenticate", "proxy-authorization", "te",
		"trailer", "transfer-encoding", "upgrade",
		/* set by pepd (libcurl) itself */
		"host", "content-length", "expect", "accept-encoding",
	};
	size_t i;

	for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (strcasecmp(name, hop[i]) == 0)
			return 1;
	return 0;
}
