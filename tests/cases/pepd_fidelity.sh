#!/bin/sh
# One normalised URL for every decision, and header fidelity (issue 13):
# path_prefix rules against other spellings of a path (3), OPA sees the
# normalised URL and its cache keys on everything OPA sees (4), request
# header values up to the limit (7), response headers: bare CR, obs-fold,
# trailers (8), no request headers added or dropped (10).
. "$(dirname "$0")/../pepd-tools/ns.sh"

origin_start HTTP --log "$PEP_TMP/origin.log"
H=http://origin.test:$HTTP_PORT
AUDIT=$PEP_TMP/audit.jsonl

# ---- 3: path_prefix rules and the spellings of a path -----------------------
cat >"$PEP_TMP/paths.json" <<EOF
{
  "audit": {"path": "$AUDIT", "fsync": "none"},
  "policy": {"allow": ["origin.test"],
             "deny": [{"id": "no-admin", "host": "origin.test",
                       "path_prefix": "/admin"},
                      {"id": "no-cafe", "host": "origin.test",
                       "path_prefix": "/caf%C3%A9"},
                      {"id": "no-naive", "host": "origin.test",
                       "path_prefix": "/naïve"}],
             "allow_private": ["127.0.0.0/8", "::1/128"]}
}
EOF
pepd_start "$PEP_TMP/paths.json"
expect_eq "deny /admin: /admin" "$(code_of -u "$H/admin")" "denied_by_policy"
expect_eq "deny /admin: //admin" "$(code_of -u "$H//admin")" \
    "denied_by_policy"
expect_eq "deny /admin: ///admin/x" "$(code_of -u "$H///admin/x")" \
    "denied_by_policy"
expect_eq "deny /admin: /%61dmin" "$(code_of -u "$H/%61dmin")" \
    "denied_by_policy"
expect_eq "deny /caf%C3%A9: raw /café" "$(code_of -u "$H/café")" \
    "denied_by_policy"
expect_eq "deny /caf%C3%A9: /caf%c3%a9" "$(code_of -u "$H/caf%c3%a9")" \
    "denied_by_policy"
expect_eq "deny raw /naïve: /na%C3%AFve" "$(code_of -u "$H/na%C3%AFve")" \
    "denied_by_policy"
expect_eq "deny raw /naïve: raw /naïve" "$(code_of -u "$H/naïve")" \
    "denied_by_policy"
out=$(req -u "$H/path//x/./y/../z?a=%7e" --text)
expect_eq "allowed: the origin sees the repeated slashes, no dot segments" \
    "$(printf '%s\n' "$out" | jfield .body)" "/path//x/z?a=~"
out=$(req -u "$H/path/é?q=é" --text)
expect_eq "allowed: non-ASCII goes out percent-encoded, upper case" \
    "$(printf '%s\n' "$out" | jfield .body)" "/path/%C3%A9?q=%C3%A9"
expect_eq "the audit has the URL as fetched" "$(audit_last .url)" \
    "$H/path/%C3%A9?q=%C3%A9"
pepd_stop

# ---- 4: OPA sees the normalised URL; the cache keys on all of it -----------
cat >"$PEP_TMP/opa.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
base, hits = sys.argv[2], sys.argv[3]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        inp = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(hits, "a") as f:
            f.write(json.dumps(inp) + "\n")
        i = inp["input"]
        url = i.get("url", "")
        allow = (url.startswith(base + "/public/") or
                 i.get("headers", {}).get("x-role") == "admin" or
                 "token=good" in url)
        body = json.dumps({"result": allow}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
open(sys.argv[4], "w").write("ready\n")
srv.serve_forever()
EOF
python3 "$PEP_TMP/opa.py" 8181 "$H" "$PEP_TMP/opa.hits" "$PEP_TMP/opa.ready" &
bg_track $!
_i=0
while [ ! -s "$PEP_TMP/opa.ready" ] && [ $_i -lt 600 ]; do
	sleep 0.05; _i=$((_i + 1))
done
cat >"$PEP_TMP/opa.json" <<EOF
{
  "audit": {"path": "$AUDIT", "fsync": "none"},
  "policy": {"allow_private": ["127.0.0.0/8"]},
  "opa": {"url": "http://127.0.0.1:8181/v1/data/pep/allow",
          "timeout_ms": 2000, "cache_ttl_ms": 60000}
}
EOF
pepd_start "$PEP_TMP/opa.json"
expect_eq "OPA: /public/x allowed" "$(code_of -u "$H/public/x")" "status 200"
expect_eq "OPA: /public/../admin is /admin to OPA too: denied" \
    "$(code_of -u "$H/public/../admin")" "denied_by_policy"
expect_eq "...OPA's input.url is the normalised URL" \
    "$(tail -1 "$PEP_TMP/opa.hits" | jfield .input.url)" "$H/admin"
expect_eq "OPA: X-Role admin allowed (and cached)" \
    "$(code_of -u "$H/c1" -H "X-Role: admin")" "status 200"
expect_eq "OPA cache: the same URL with X-Role guest is asked again: denied" \
    "$(code_of -u "$H/c1" -H "X-Role: guest")" "denied_by_policy"
expect_eq "OPA: ?token=good allowed (and cached)" \
    "$(code_of -u "$H/q1?token=good")" "status 200"
expect_eq "OPA cache: the same path with ?token=bad is asked again: denied" \
    "$(code_of -u "$H/q1?token=bad")" "denied_by_policy"
n=$(wc -l <"$PEP_TMP/opa.hits")
code_of -u "$H/c1" -H "X-Role: admin" >/dev/null
expect_eq "OPA cache: an identical request is answered from the cache" \
    "$(wc -l <"$PEP_TMP/opa.hits")" "$n"
pepd_stop

# ---- 7, 8, 10: header fidelity ----------------------------------------------------
cat >"$PEP_TMP/h.json" <<EOF
{
  "audit": {"path": "$AUDIT", "fsync": "none"},
  "policy": {"allow": ["origin.test"],
             "allow_private": ["127.0.0.0/8", "::1/128"]}
}
EOF
pepd_start "$PEP_TMP/h.json"
big=$(head -c 10000 /dev/zero | tr '\0' a)
out=$(req -u "$H/headers" -H "X-Big: $big" --text)
expect_eq "a 10,000-byte header value arrives whole" \
    "$(printf '%s\n' "$out" | jfield '.body | fromjson | .[] |
    select(.[0] == "X-Big") | .[1] | length')" "10000"
out=$(req -u "$H/raw/bare-cr")
expect_eq "bare CR in a response header value: replaced by SP" \
    "$(printf '%s\n' "$out" | jfield '.headers[] |
    select(.[0] == "X-Evil") | .[1]')" "a Injected: yes"
expect_eq "...no CR, LF or NUL in any value, no injected header" \
    "$(printf '%s\n' "$out" | jfield '[.headers[] | select((.[1] |
    test("[\r\n\u0000]")) or .[0] == "Injected")] | length')" "0"
out=$(req -u "$H/raw/obs-fold")
expect_eq "obs-fold: continuation lines unfolded with SP" \
    "$(printf '%s\n' "$out" | jfield '.headers[] |
    select(.[0] == "X-Fold") | .[1]')" "a b c"
expect_eq "...the next header is intact" "$(printf '%s\n' "$out" | jfield \
    '.headers[] | select(.[0] == "X-Ok") | .[1]')" "1"
out=$(req -u "$H/raw/trailers" --text)
expect_eq "chunked trailers are not merged into the headers" \
    "$(printf '%s\n' "$out" | jfield '[.headers[][0]] |
    index("X-Trailer")')" "null"
expect_eq "...they come apart, in .trailers" \
    "$(printf '%s\n' "$out" | jfield '.trailers | tostring')" \
    '[["X-Trailer","t"]]'
expect_eq "...the body is intact" "$(printf '%s\n' "$out" | jfield .body)" \
    "hi"
out=$(req -u "$H/raw/nul")
expect_eq "NUL in a response header value never reaches the guest" \
    "$(printf '%s\n' "$out" | jfield '[.headers[]? | select(.[1] |
    test("\u0000"))] | length')" "0"
out=$(req -u "$H/headers" --text)
expect_eq "no Accept from the guest: none reaches the origin" \
    "$(printf '%s\n' "$out" | jfield '[.body | fromjson | .[][0] |
    ascii_downcase | select(. == "accept")] | length')" "0"
expect_eq "no Accept-Encoding from the guest: none reaches the origin" \
    "$(printf '%s\n' "$out" | jfield '[.body | fromjson | .[][0] |
    ascii_downcase | select(. == "accept-encoding")] | length')" "0"
printf 'a=1' >"$PEP_TMP/form"
out=$(req -m POST -u "$H/headers" --body-file "$PEP_TMP/form" --text)
expect_eq "POST without Content-Type: none reaches the origin" \
    "$(printf '%s\n' "$out" | jfield '[.body | fromjson | .[][0] |
    ascii_downcase | select(. == "content-type")] | length')" "0"
out=$(req -u "$H/headers" -H "Accept: text/html" --text)
expect_eq "the guest's Accept is sent as is" \
    "$(printf '%s\n' "$out" | jfield '.body | fromjson | .[] |
    select(.[0] == "Accept") | .[1]')" "text/html"
out=$(req --text -j "{\"method\":\"GET\",\"url\":\"$H/headers\",
    \"headers\":[[\"X-Space\",\"   \"],[\"X-Empty\",\"\"]]}")
expect_eq "whitespace-only and empty values are sent, not dropped" \
    "$(printf '%s\n' "$out" | jfield '[.body | fromjson | .[][0] |
    select(. == "X-Space" or . == "X-Empty")] | sort | join(",")')" \
    "X-Empty,X-Space"
pepd_stop
done_testing
