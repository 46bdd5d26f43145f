/*
 * libFuzzer target for one request payload: proto_parse_request, then,
 * for a request that parses, a response frame carrying its headers and
 * body, parsed back with cJSON: the header values must come back byte
 * for byte (ISO-8859-1 on the wire) and the body through base64. The
 * request URL goes through url_parse; a URL that parses must be stable
 * (its normalised URL string parses to the same scheme, host, port, path,
 * match form and string, host_normalize leaves the host alone, the path
 * has only bytes allowed raw), its OPA input (the decision cache key) is
 * valid UTF-8 JSON, and it gets a policy decision.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/base64.h"
#include "../../common/utf8.h"
#include "../../pepd/pepd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct policy *fuzz_policy;

static void
load_policy(void)
{
	static const char json[] = "{\"allow\":[\"*.example.com\","
	    "\"127.0.0.1\",{\"host\":\"api.example.org\",\"methods\":"
	    "[\"GET\"],\"path_prefix\":\"/v1/\"}],\"deny\":[{\"host\":"
	    "\"*.example.com\",\"path_prefix\":\"/admin\"}]}";
	cJSON *j = cJSON_Parse(json);

	if (j == NULL || policy_from_json(j, &fuzz_policy, NULL) < 0)
		abort();
	cJSON_Delete(j);
}

/* UTF-8 (code points <= U+00FF) back to bytes; compare with want. */
static int
same_latin1(const char *utf8, const char *want)
{
	const unsigned char *p = (const unsigned char *)utf8;
	const unsigned char *w = (const unsigned char *)want;

	for (; *p != '\0'; w++) {
		if (*p < 0x80) {
			if (*p++ != *w)
				return 0;
		} else {
			if ((unsigned char)(((p[0] & 3) << 6) | (p[1] & 0x3f))
			    != *w)
				return 0;
			p += 2;
		}
	}
	return *w == '\0';
}

static void
check_response(const struct pep_request *r)
{
	struct pep_frame f;
	cJSON *j, *hs, *b;
	uint8_t *body;
	size_t i, blen;
	int rc;

	rc = proto_response(200, r->headers, r->nheaders, NULL, 0, r->body,
	    r->body_len, &f);
	if (rc == -ENOMEM)
		return;
	if (rc < 0)
		abort();
	j = cJSON_ParseWithLength((const char *)f.data + FRAME_HDR,
	    f.len - FRAME_HDR);
	hs = cJSON_GetObjectItem(j, "headers");
	b = cJSON_GetObjectItem(j, "body_base64");
	if (j == NULL || cJSON_GetArraySize(hs) != (int)r->nheaders ||
	    !cJSON_IsString(b))
		abort();
	for (i = 0; i < r->nheaders; i++)
		if (!same_latin1(cJSON_GetArrayItem(cJSON_GetArrayItem(hs,
		    (int)i), 1)->valuestring, r->headers[i].value))
			abort();
	body = malloc(base64_decoded_max(strlen(b->valuestring)) + 1);
	if (body == NULL || base64_decode(b->valuestring,
	    strlen(b->valuestring), body, &blen) < 0 ||
	    blen != r->body_len || (blen > 0 &&
	    memcmp(body, r->body, blen) != 0))
		abort();
	free(body);
	cJSON_Delete(j);
	free(f.data);
}

/* What may appear raw in a normalised path: RFC 3986 pchar, '/', '?'. */
static void
check_path_bytes(const char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("\"<>\\^`{|}#[]", *p) != NULL)
			abort();
}

/* OPA's input (and decision cache key) is valid UTF-8 JSON. */
static void
check_opa_input(const struct pep_request *r, const struct pep_url *u)
{
	struct preq q;
	cJSON *j;
	char *in;

	memset(&q, 0, sizeof(q));
	q.r = *r;
	q.u = *u;
	in = opa_input(&q);
	if (in == NULL)
		return;
	j = cJSON_Parse(in);
	if (j == NULL || !utf8_valid(in, strlen(in)) ||
	    !cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(j,
	    "input"), "url")))
		abort();
	cJSON_Delete(j);
	free(in);
}

static void
check_url(const struct pep_request *r)
{
	struct policy_decision d;
	struct pep_url u, v;
	char host[URL_HOSTMAX];

	if (url_parse(r->url, &u, NULL) < 0)
		return;
	if (u.path == NULL || u.path[0] != '/' || u.port < 1 ||
	    u.port > 65535 || host_normalize(u.host, host, sizeof(host)) < 0 ||
	    strcmp(host, u.host) != 0 || u.match == NULL || u.url == NULL ||
	    strlen(u.match) > strlen(u.path))
		abort();
	check_path_bytes(u.path);
	/* the normalised URL is a fixed point */
	if (url_parse(u.url, &v, NULL) < 0 ||
	    strcmp(u.scheme, v.scheme) != 0 || strcmp(u.host, v.host) != 0 ||
	    u.port != v.port || u.host_is_ip != v.host_is_ip ||
	    strcmp(u.path, v.path) != 0 || strcmp(u.match, v.match) != 0 ||
	    strcmp(u.url, v.url) != 0)
		abort();
	url_free(&v);
	check_opa_input(r, &u);
	policy_decide(fuzz_policy, r->method, &u, &d);
	if (d.rule == NULL || d.would_deny)
		abort();
	url_free(&u);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pep_limits lim;
	struct pep_request r;
	struct pep_err e = { 0, "" };

	if (fuzz_policy == NULL)
		load_policy();
	limits_default(&lim);
	lim.max_headers = 32;
	lim.max_header_bytes = 4096;
	if (proto_parse_request(data, size, &lim, &r, &e) < 0) {
		if (e.msg[0] == '\0' || r.method != NULL)
			abort();
		return 0;
	}
	check_response(&r);
	check_url(&r);
	proto_request_free(&r);
	return 0;
}
