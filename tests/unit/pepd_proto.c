/*
 * proto.c and common/base64.c: base64 vectors (tests/data/pepd/base64.tsv),
 * request parsing (requests.tsv, where "\xNN" is a raw byte), and
 * response/refusal frames, which are parsed back with cJSON and checked
 * field by field.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/base64.h"
#include "../../pepd/pepd.h"
#include "../tapdata.h"

/* Undo "\xNN" escapes in place; returns the length. */
static size_t
unescape(char *s)
{
	size_t i, o = 0;
	char hex[3] = { 0 };

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\\' && s[i + 1] == 'x' && s[i + 2] != '\0' &&
		    s[i + 3] != '\0') {
			hex[0] = s[i + 2];
			hex[1] = s[i + 3];
			s[o++] = (char)strtol(hex, NULL, 16);
			i += 3;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

/* A data line cut at its first tab: what follows it, or NULL (a failed
 * check) if it has none. */
static char *
after_tab(char *line)
{
	char *tab;

	line[strcspn(line, "\n")] = '\0';
	tab = strchr(line, '\t');
	if (tab == NULL) {
		tap_ok(0, "bad data line '%s'", line);
		return NULL;
	}
	*tab++ = '\0';
	return tab;
}

static void
b64_line(char *plain, char *enc)
{
	size_t pl, el, ol;
	uint8_t out[256];
	char buf[512], shown[512];
	int r;

	snprintf(shown, sizeof(shown), "%s", enc);
	el = unescape(enc);
	if (strcmp(plain, "!bad") == 0) {
		r = base64_decode(enc, el, out, &ol);
		tap_ok(r < 0 && ol == 0, "base64 '%s' refused", shown);
		return;
	}
	pl = unescape(plain);
	tap_ok(base64_encoded_len(pl) == el, "encoded length of %zu", pl);
	base64_encode((const uint8_t *)plain, pl, buf);
	tap_ok(strcmp(buf, enc) == 0, "encode -> '%s' (got '%s')", enc, buf);
	r = base64_decode(enc, el, out, &ol);
	tap_ok(r == 0 && ol == pl && memcmp(out, plain, pl) == 0 &&
	    ol <= base64_decoded_max(el), "decode '%s'", enc);
}

static void
base64_file(const char *dir)
{
	char line[512], *tab;
	FILE *fp;

	fp = tap_open_data(dir, "pepd", "base64.tsv");
	if (fp == NULL)
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		if ((tab = after_tab(line)) == NULL)
			continue;
		b64_line(line, tab);
	}
	fclose(fp);
}

static void
base64_bytes(void)
{
	uint8_t in[256], out[256];
	char enc[400];
	size_t n, ol, ok = 0;

	for (n = 0; n < 256; n++)
		in[n] = (uint8_t)(n * 7 + 3);
	for (n = 0; n <= 256; n++) {
		base64_encode(in, n, enc);
		if (base64_decode(enc, strlen(enc), out, &ol) == 0 &&
		    ol == n && memcmp(in, out, n) == 0)
			ok++;
	}
	tap_ok(ok == 257, "base64 round trip of 0..256 bytes");
	tap_ok(base64_encoded_len(BASE64_MAX_IN + 1) == 0,
	    "encoded length refuses an input that would overflow");
	tap_ok(base64_encoded_len(BASE64_MAX_IN) != 0,
	    "encoded length of the largest input");
}

static void
request_line(const char *want, const char *json, const struct pep_limits *l)
{
	struct pep_request r;
	struct pep_err e = { 0, "" };
	char got[256];
	int rc;

	rc = proto_parse_request((const uint8_t *)json, strlen(json), l, &r,
	    &e);
	if (strncmp(want, "bad ", 4) == 0) {
		tap_ok(rc < 0 && strstr(e.msg, want + 4) != NULL &&
		    r.method == NULL && r.headers == NULL,
		    "%s: %s (got %d '%s')", json, want, rc, e.msg);
		return;
	}
	if (rc < 0) {
		tap_ok(0, "%s: %s (got '%s')", json, want, e.msg);
		return;
	}
	snprintf(got, sizeof(got), "ok %s %zu %zu", r.method, r.nheaders,
	    r.body_len);
	tap_ok(strcmp(got, want) == 0, "%s: %s (got %s)", json, want, got);
	proto_request_free(&r);
}

static void
requests_file(const char *dir)
{
	struct pep_limits l;
	char line[4096], *tab;
	FILE *fp;

	limits_default(&l);
	l.max_headers = 4;
	l.max_header_bytes = 64;
	fp = tap_open_data(dir, "pepd", "requests.tsv");
	if (fp == NULL)
		return;
	while (tap_line(line, sizeof(line), fp) != NULL) {
		if ((tab = after_tab(line)) == NULL)
			continue;
		unescape(tab);	/* "\xNN": raw bytes (invalid UTF-8) */
		request_line(line, tab, &l);
	}
	fclose(fp);
}

static void
request_values(void)
{
	static const char json[] = "{\"method\":\"PUT\",\"url\":\"https://a/"
	    "\",\"headers\":[[\"X-L\",\"caf\\u00e9 \\u00ff\"],[\"B\",\"\"]],"
	    "\"body_base64\":\"AP8=\"}";
	struct pep_limits l;
	struct pep_request r;
	int rc;

	limits_default(&l);
	rc = proto_parse_request((const uint8_t *)json, sizeof(json) - 1, &l,
	    &r, NULL);
	if (!tap_ok(rc == 0, "a full request parses"))
		return;
	tap_ok(strcmp(r.url, "https://a/") == 0, "url kept");
	tap_ok(strcmp(r.headers[0].value, "caf\xe9 \xff") == 0,
	    "header value as ISO-8859-1 bytes");
	tap_ok(r.headers[1].value[0] == '\0', "empty header value");
	tap_ok(r.body_len == 2 && r.body[0] == 0 && r.body[1] == 0xff,
	    "body decoded");
	proto_request_free(&r);
	proto_request_free(&r);
	tap_ok(r.method == NULL, "proto_request_free twice is harmless");
	l.max_frame = 10;
	rc = proto_parse_request((const uint8_t *)json, sizeof(json) - 1, &l,
	    &r, NULL);
	tap_ok(rc < 0, "a payload above max_frame is refused");
	rc = proto_parse_request((const uint8_t *)"{\"method\":\"GET\",\"url\""
	    ":\"x\"}\0", 28, &l, &r, NULL);
	tap_ok(rc < 0, "a raw NUL after the object is refused");
}

/* The payload of frame f as JSON; checks the 4-byte length. */
static cJSON *
frame_json(const struct pep_frame *f)
{
	size_t plen;

	if (frame_check(f->data, f->len, UINT32_MAX, &plen) !=
	    (ssize_t)f->len)
		return NULL;
	return cJSON_ParseWithLength((const char *)f->data + FRAME_HDR, plen);
}

static void
response_frames(void)
{
	struct pep_header h[] = {
		{ "Content-Type", "text/html" },
		{ "X-Q", "a\"b\\c\x01\x7f\xe9" },
		{ "Set-Cookie", "a=1" },
		{ "Set-Cookie", "b=2" },
	};
	const uint8_t body[] = { 'h', 'i', 0, 0xff };
	struct pep_frame f;
	cJSON *j, *hs;
	int rc;

	rc = proto_response(200, h, 4, NULL, 0, body, sizeof(body), &f);
	j = rc == 0 ? frame_json(&f) : NULL;
	if (!tap_ok(j != NULL, "response frame is valid JSON")) {
		free(f.data);
		return;
	}
	hs = cJSON_GetObjectItem(j, "headers");
	tap_ok(cJSON_GetObjectItem(j, "status")->valueint == 200, "status");
	tap_ok(cJSON_IsNull(cJSON_GetObjectItem(j, "error")), "error null");
	tap_ok(strcmp(cJSON_GetObjectItem(j, "body_base64")->valuestring,
	    "aGkA/w==") == 0, "body_base64");
	tap_ok(cJSON_GetArraySize(hs) == 4, "all four headers, in order");
	tap_ok(strcmp(cJSON_GetArrayItem(cJSON_GetArrayItem(hs, 1), 1)->
	    valuestring, "a\"b\\c\x01\x7f\xc3\xa9") == 0,
	    "header value escaped; byte 0xe9 is U+00E9");
	tap_ok(strcmp(cJSON_GetArrayItem(cJSON_GetArrayItem(hs, 3), 1)->
	    valuestring, "b=2") == 0, "repeated Set-Cookie kept");
	tap_ok(cJSON_GetObjectItem(j, "trailers") == NULL,
	    "no trailers: no \"trailers\" member");
	cJSON_Delete(j);
	free(f.data);
	rc = proto_response(200, h, 1, h + 1, 2, body, sizeof(body), &f);
	j = rc == 0 ? frame_json(&f) : NULL;
	tap_ok(j != NULL && cJSON_GetArraySize(cJSON_GetObjectItem(j,
	    "headers")) == 1 && cJSON_GetArraySize(cJSON_GetObjectItem(j,
	    "trailers")) == 2 && strcmp(cJSON_GetArrayItem(cJSON_GetArrayItem(
	    cJSON_GetObjectItem(j, "trailers"), 1), 1)->valuestring, "a=1") ==
	    0, "trailers come apart from the headers");
	cJSON_Delete(j);
	free(f.data);
	rc = proto_response(204, NULL, 0, NULL, 0, NULL, 0, &f);
	j = rc == 0 ? frame_json(&f) : NULL;
	tap_ok(j != NULL && strcmp(cJSON_GetObjectItem(j, "body_base64")->
	    valuestring, "") == 0 && cJSON_GetArraySize(
	    cJSON_GetObjectItem(j, "headers")) == 0, "empty 204 response");
	cJSON_Delete(j);
	free(f.data);
	tap_ok(proto_response(99, NULL, 0, NULL, 0, NULL, 0, &f) < 0 &&
	    f.data == NULL, "status 99 refused");
	tap_ok(proto_response(1000, NULL, 0, NULL, 0, NULL, 0, &f) < 0,
	    "status 1000 refused");
}

static void
big_response(void)
{
	size_t n = 3u << 20;
	uint8_t *body = malloc(n);
	struct pep_frame f;
	cJSON *j;

	if (body == NULL)
		return;
	memset(body, 0xab, n);
	j = proto_response(200, NULL, 0, NULL, 0, body, n, &f) == 0 ?
	    frame_json(&f) : NULL;
	tap_ok(j != NULL && strlen(cJSON_GetObjectItem(j, "body_base64")->
	    valuestring) == 4u << 20, "3 MiB body is 4 MiB of base64");
	cJSON_Delete(j);
	free(f.data);
	free(body);
}

static void
refusal_frames(void)
{
	struct pep_frame f;
	cJSON *j, *err;
	int c, ok = 0;

	for (c = PEP_DENIED_BY_POLICY; c <= PEP_CODE_LAST; c++) {
		if (proto_refusal((enum pep_code)c, "why \"not\"\n", &f) < 0)
			continue;
		j = frame_json(&f);
		err = cJSON_GetObjectItem(j, "error");
		if (err != NULL && strcmp(cJSON_GetObjectItem(err, "code")->
		    valuestring, pep_code_name((enum pep_code)c)) == 0 &&
		    strcmp(cJSON_GetObjectItem(err, "message")->valuestring,
		    "why \"not\"\n") == 0)
			ok++;
		cJSON_Delete(j);
		free(f.data);
	}
	tap_ok(ok == 9, "a refusal frame for each of the 9 codes");
	tap_ok(proto_refusal(PEP_BAD_REQUEST, "caf\xc3\xa9 \xff", &f) == 0,
	    "a message with invalid UTF-8");
	j = frame_json(&f);
	err = cJSON_GetObjectItem(j, "error");
	tap_ok(err != NULL && strcmp(cJSON_GetObjectItem(err, "message")->
	    valuestring, "caf\xc3\xa9 \xef\xbf\xbd") == 0,
	    "...keeps UTF-8, makes the bad byte U+FFFD");
	cJSON_Delete(j);
	free(f.data);
	tap_ok(proto_refusal(PEP_OK, "x", &f) < 0, "PEP_OK is no refusal");
	tap_ok(proto_refusal((enum pep_code)42, "x", &f) < 0,
	    "unknown code refused");
	tap_ok(proto_refusal(PEP_TIMEOUT, NULL, &f) == 0, "NULL message");
	free(f.data);
	tap_ok(strcmp(pep_code_name(PEP_AUDIT_UNAVAILABLE),
	    "audit_unavailable") == 0 &&
	    strcmp(pep_code_name(PEP_SSRF_BLOCKED), "ssrf_blocked") == 0 &&
	    strcmp(pep_code_name(PEP_OVERLOADED), "overloaded") == 0 &&
	    strcmp(pep_code_name(PEP_OK), "") == 0, "pep_code_name");
}

static void
hop_by_hop(void)
{
	static const char *const yes[] = {
		"Connection", "keep-alive", "TE", "Transfer-Encoding",
		"Upgrade", "Proxy-Authorization", "Host", "content-length",
		"Trailer", "Proxy-Connection", "Expect"
	};
	static const char *const no[] = {
		"Content-Type", "Cookie", "Authorization", "Set-Cookie",
		"Content-Encoding", "X-Connection", "Hostname"
	};
	size_t i, ok = 0;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ok += proto_hop_by_hop(yes[i]) != 0;
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ok += proto_hop_by_hop(no[i]) == 0;
	tap_ok(ok == sizeof(yes) / sizeof(yes[0]) + sizeof(no) / sizeof(no[0]),
	    "hop-by-hop header names");
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";

	base64_file(dir);
	base64_bytes();
	requests_file(dir);
	request_values();
	response_frames();
	big_response();
	refusal_frames();
	hop_by_hop();
	return tap_done();
}
