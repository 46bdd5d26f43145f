#!/bin/sh
# pepd decisions: the connect-time SSRF block (loopback, names resolving to
# loopback, numeric spellings, link-local, private), the policy table
# (allow, deny, wildcard, deny wins, report mode), redirects to a denied
# host, SIGHUP reloads (a broken policy keeps the old one), and OPA as the
# decision point (allow, deny, undefined, cache, fail closed).
. "$(dirname "$0")/../pepd-tools/ns.sh"

origin_start HTTP
P=$HTTP_PORT
AUDIT=$PEP_TMP/audit.jsonl

# ---- SSRF: no allow_private, loopback is blocked ------------------------
cat >"$PEP_TMP/ssrf.json" <<EOF
{
  "audit": {"path": "$AUDIT"},
  "policy": {"allow": ["127.0.0.1", "internal.test", "localhost",
                       "169.254.169.254", "10.1.2.3"]}
}
EOF
pepd_start "$PEP_TMP/ssrf.json"
expect_eq "http://127.0.0.1 is ssrf_blocked by default" \
    "$(code_of -u "http://127.0.0.1:$P/")" "ssrf_blocked"
expect_eq "audit keeps the refused address" "$(audit_last '"\(.ip) \(.decision)"')" \
    "127.0.0.1 allow"
expect_eq "a name resolving to 127.0.0.1 is ssrf_blocked" \
    "$(code_of -u "http://internal.test:$P/")" "ssrf_blocked"
expect_eq "localhost (127.0.0.1 and ::1) is ssrf_blocked" \
    "$(code_of -u "http://localhost:$P/")" "ssrf_blocked"
expect_eq "decimal 2130706433 is 127.0.0.1: ssrf_blocked" \
    "$(code_of -u "http://2130706433:$P/")" "ssrf_blocked"
expect_eq "metadata 169.254.169.254 is ssrf_blocked" \
    "$(code_of -u "http://169.254.169.254/latest/meta-data/")" "ssrf_blocked"
expect_eq "RFC 1918 10.1.2.3 is ssrf_blocked" \
    "$(code_of -u "http://10.1.2.3/")" "ssrf_blocked"
pepd_stop

# ---- the policy table ----------------------------------------------------
cat >"$PEP_TMP/policy.json" <<EOF
{
  "audit": {"path": "$AUDIT"},
  "policy": {"allow": ["allowed.test", "*.wild.test", "origin.test"],
             "deny": [{"id": "no-bad", "host": "bad.wild.test"}],
             "allow_private": ["127.0.0.0/8", "::1/128"]}
}
EOF
cp "$PEP_TMP/policy.json" "$PEP_TMP/live.json"
pepd_start "$PEP_TMP/live.json"
expect_eq "allowed host is fetched" \
    "$(code_of -u "http://allowed.test:$P/")" "status 200"
expect_eq "audit: decision allow with its rule" \
    "$(audit_last '"\(.decision) \(.rule) \(.status)"')" "allow allow[0] 200"
expect_eq "unlisted host is denied" \
    "$(code_of -u "http://denied.test:$P/")" "denied_by_policy"
expect_eq "audit: decision deny" "$(audit_last .decision)" "deny"
expect_eq "wildcard matches a subdomain" \
    "$(code_of -u "http://a.wild.test:$P/")" "status 200"
expect_eq "wildcard does not match the apex" \
    "$(code_of -u "http://wild.test:$P/")" "denied_by_policy"
expect_eq "deny wins over a matching allow" \
    "$(code_of -u "http://bad.wild.test:$P/")" "denied_by_policy"
expect_eq "audit names the deny rule" "$(audit_last .rule)" "no-bad"
expect_eq "upper case host is normalised" \
    "$(code_of -u "http://ALLOWED.TEST:$P/")" "status 200"
out=$(req -u "http://origin.test:$P/redirect?to=http://denied.test:$P/")
expect_eq "redirect to a denied host: the 302 comes back" \
    "$(printf '%s\n' "$out" | jfield .status)" "302"
loc=$(printf '%s\n' "$out" | jfield '.headers[] | select(.[0] == "Location") | .[1]')
expect_eq "...and the next hop is denied" "$(code_of -u "$loc")" \
    "denied_by_policy"
expect_eq "bad URL is bad_request" "$(code_of -u "ftp://allowed.test/")" \
    "bad_request"

# ---- SIGHUP ---------------------------------------------------------------
echo '{"policy": {"allow": [' >"$PEP_TMP/live.json"
pepd_signal HUP reload
expect_eq "SIGHUP with a broken policy keeps the old one" \
    "$(code_of -u "http://allowed.test:$P/")" "status 200"
check "the broken reload is logged" grep -q "keeping the previous" \
    "$PEP_TMP/pepd.log"
sed 's/"allowed.test", //' "$PEP_TMP/policy.json" >"$PEP_TMP/live.json"
pepd_signal HUP reload
expect_eq "SIGHUP with a valid policy applies it" \
    "$(code_of -u "http://allowed.test:$P/")" "denied_by_policy"
# A connection pooled under the old policy must not outlive a reload that
# takes its address out of allow_private.
expect_eq "fetch pools a keep-alive connection to the origin" \
    "$(code_of -u "http://a.wild.test:$P/")" "status 200"
sed 's/"allow_private": \[[^]]*\]/"allow_private": []/' \
    "$PEP_TMP/policy.json" >"$PEP_TMP/live.json"
pepd_signal HUP reload
expect_eq "after SIGHUP drops allow_private, a pooled connection is refused" \
    "$(code_of -u "http://a.wild.test:$P/")" "ssrf_blocked"
pepd_stop

# ---- report mode ------------------------------------------------------------
cat >"$PEP_TMP/report.json" <<EOF
{
  "audit": {"path": "$AUDIT"},
  "policy": {"mode": "report", "allow": ["allowed.test"],
             "allow_private": ["127.0.0.0/8"]}
}
EOF
pepd_start "$PEP_TMP/report.json"
expect_eq "report mode fetches what enforce would deny" \
    "$(code_of -u "http://report.test:$P/")" "status 200"
expect_eq "report mode audit line: decision report, would_deny" \
    "$(audit_last '"\(.decision) \(.would_deny)"')" "report true"
code_of -u "http://allowed.test:$P/" >/dev/null
expect_eq "report mode: allowed host is a plain allow" \
    "$(audit_last '"\(.decision) \(.would_deny)"')" "allow false"
pepd_stop

# ---- OPA ------------------------------------------------------------------
cat >"$PEP_TMP/opa.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
hits = sys.argv[2]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        inp = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(hits, "a") as f:
            f.write(json.dumps(inp) + "\n")
        host = inp["input"]["host"]
        ans = {"allowed.test": {"result": True},
               "denied.test": {"result": {"allow": False}},
               "garbage.test": {}}.get(host, {"result": "yes"})
        body = json.dumps(ans).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
open(sys.argv[3], "w").write("ready\n")
srv.serve_forever()
EOF
python3 "$PEP_TMP/opa.py" 8181 "$PEP_TMP/opa.hits" "$PEP_TMP/opa.ready" &
OPA_PID=$!; bg_track $OPA_PID
_i=0	# wait until the stub listens (a loaded machine may take seconds)
while [ ! -s "$PEP_TMP/opa.ready" ] && [ $_i -lt 600 ]; do
	sleep 0.05; _i=$((_i + 1))
done
cat >"$PEP_TMP/opa.json" <<EOF
{
  "audit": {"path": "$AUDIT"},
  "policy": {"allow": [], "allow_private": ["127.0.0.0/8"]},
  "opa": {"url": "http://127.0.0.1:8181/v1/data/pep/allow",
          "timeout_ms": 2000, "cache_ttl_ms": 60000}
}
EOF
pepd_start "$PEP_TMP/opa.json"
expect_eq "OPA true allows" \
    "$(code_of -u "http://allowed.test:$P/a?q=1" -H "X-Tag: t")" "status 200"
expect_eq "OPA input carries method, host, port, path, headers" \
    "$(tail -1 "$PEP_TMP/opa.hits" | jfield '.input |
    "\(.method) \(.scheme) \(.host) \(.port) \(.path) \(.query) \(.headers["x-tag"])"')" \
    "GET http allowed.test $P /a q=1 t"
expect_eq "OPA {allow:false} denies, rule opa" \
    "$(code_of -u "http://denied.test:$P/")" "denied_by_policy"
expect_eq "audit rule is opa" "$(audit_last .rule)" "opa"
expect_eq "OPA undefined result is policy_unavailable" \
    "$(code_of -u "http://garbage.test:$P/")" "policy_unavailable"
expect_eq "OPA non-boolean result is policy_unavailable" \
    "$(code_of -u "http://other.test:$P/")" "policy_unavailable"
before=$(wc -l <"$PEP_TMP/opa.hits")
code_of -u "http://allowed.test:$P/a?q=1" -H "X-Tag: t" >/dev/null
expect_eq "cached decision: the same request does not ask OPA again" \
    "$(wc -l <"$PEP_TMP/opa.hits")" "$before"
code_of -u "http://allowed.test:$P/a?q=2" -H "X-Tag: t" >/dev/null
expect_eq "...another query (OPA sees it) does" \
    "$(wc -l <"$PEP_TMP/opa.hits")" "$((before + 1))"
kill "$OPA_PID"; wait "$OPA_PID" 2>/dev/null
expect_eq "OPA down: cached decision still applies" \
    "$(code_of -u "http://allowed.test:$P/a?q=1" -H "X-Tag: t")" "status 200"
expect_eq "OPA down: new decision fails closed" \
    "$(code_of -u "http://allowed.test:$P/b")" "policy_unavailable"
pepd_stop
expect_eq "pepd exits 0 after all this" "$PEPD_RC" "0"
done_testing
