#!/bin/sh
# pepd end to end against real HTTP, HTTPS and HTTP/2 origins on loopback:
# CLI, fetches, decoding, hop-by-hop headers, binary bodies, 10 MiB,
# limits, pipelining order, unix listener, audit lines, environment mode.
. "$(dirname "$0")/../pepd-tools/ns.sh"

# ---- CLI -------------------------------------------------------------
expect_eq "--version" "$("$PEPD" --version)" "pepd 0.2.0"
check "--help lists --listen" sh -c "'$PEPD' --help | grep -q -- --listen"
"$PEPD" --bogus >/dev/null 2>&1
expect_eq "unknown option exits 2" "$?" "2"
echo '{"policy": {"allow": [' >"$PEP_TMP/bad.json"
check_fail "--check-config rejects invalid JSON" \
    "$PEPD" --check-config "$PEP_TMP/bad.json"

# ---- fixtures ----------------------------------------------------------
check "test CA and server certificate" pepd_make_ca
head -c 10485760 /dev/urandom >"$PEP_TMP/big.bin"
head -c 12582912 /dev/zero >"$PEP_TMP/over.bin"
head -c 300000 /dev/urandom >"$PEP_TMP/post.bin"
origin_start HTTP
origin_start HTTPS --tls "$PEP_TMP/ca/srv.pem" "$PEP_TMP/ca/srv.key"
H=http://origin.test:$HTTP_PORT
S=https://origin.test:$HTTPS_PORT

cat >"$PEP_TMP/pepd.json" <<EOF
{
  "audit": {"path": "$PEP_TMP/audit.jsonl", "fsync": "none"},
  "policy": {"allow": ["origin.test"],
             "allow_private": ["127.0.0.0/8", "::1/128"]},
  "limits": {"max_response": 11534336},
  "ca_file": "$PEP_TMP/ca/ca.pem"
}
EOF
expect_eq "--check-config accepts the test config" \
    "$("$PEPD" --check-config "$PEP_TMP/pepd.json" 2>&1)" "configuration OK"
pepd_start "$PEP_TMP/pepd.json" --listen "unix:$PEP_TMP/pepd.sock"
n=0

# ---- fetches -----------------------------------------------------------
out=$(req -u "$H/" --text); n=$((n + 1))
expect_eq "HTTP GET is fetched" "$(printf '%s\n' "$out" | jfield '"\(.status) \(.body)"')" \
    "200 hello from origin"
out=$(req -u "$S/" --text); n=$((n + 1))
expect_eq "HTTPS GET verified with the configured CA" \
    "$(printf '%s\n' "$out" | jfield .status)" "200"
out=$("$PEPC" -c "unix:$PEP_TMP/pepd.sock" -u "$H/" --text); n=$((n + 1))
expect_eq "unix listener answers" "$(printf '%s\n' "$out" | jfield .status)" "200"
out=$(req -u "$H/gzip" --text); n=$((n + 1))
expect_eq "gzip body comes decoded" "$(printf '%s\n' "$out" | jfield .body)" \
    "hello gzip"
expect_eq "Content-Encoding is dropped" "$(printf '%s\n' "$out" | jfield \
    '[.headers[][0] | ascii_downcase | select(. == "content-encoding" or
    . == "content-length")] | length')" "0"
out=$(req -u "$H/hop"); n=$((n + 1))
expect_eq "response hop-by-hop headers dropped, others kept" \
    "$(printf '%s\n' "$out" | jfield '[.headers[][0] | ascii_downcase] |
    (index("keep-alive") == null) and (index("proxy-authenticate") ==
    null) and (index("x-kept") != null)')" "true"
out=$(req -u "$H/headers" -H "Proxy-Authorization: secret" \
    -H "Connection: close" -H "X-Test: 1" --text); n=$((n + 1))
expect_eq "request hop-by-hop headers dropped, others sent" \
    "$(printf '%s\n' "$out" | jfield '.body | fromjson | [.[][0] | ascii_downcase] |
    (index("proxy-authorization") == null) and (index("x-test") != null)')" \
    "true"
out=$(req -m POST -u "$H/echo" --body-file "$PEP_TMP/post.bin" \
    --body-out "$PEP_TMP/post.out"); n=$((n + 1))
check "POST binary body echoed byte-exact" cmp "$PEP_TMP/post.bin" \
    "$PEP_TMP/post.out"
out=$(req -m PUT -u "$H/echo" --body-file "$PEP_TMP/post.bin" \
    --text); n=$((n + 1))
expect_eq "PUT is sent as PUT" "$(printf '%s\n' "$out" | jfield \
    '.headers[] | select(.[0] == "X-Method") | .[1]')" "PUT"
out=$(req -u "$H/file/big.bin" --body-out "$PEP_TMP/big.out"); n=$((n + 1))
check "10 MiB response byte-exact" cmp "$PEP_TMP/big.bin" "$PEP_TMP/big.out"
expect_eq "response over max_response is response_too_large" \
    "$(code_of -u "$H/file/over.bin")" "response_too_large"; n=$((n + 1))
out=$(req -m HEAD -u "$H/"); n=$((n + 1))
expect_eq "HEAD has status and no body" \
    "$(printf '%s\n' "$out" | jfield '"\(.status) \(.body_len)"')" "200 0"
out=$(req -u "$H/redirect?to=http://denied.test/x"); n=$((n + 1))
expect_eq "3xx is returned, not followed" "$(printf '%s\n' "$out" | jfield \
    '"\(.status) \(.headers[] | select(.[0] == "Location") | .[1])"')" \
    "302 http://denied.test/x"
out=$(req -j "{\"method\":\"GET\",\"url\":\"$H/slow/600\"}" \
    -j "{\"method\":\"GET\",\"url\":\"$H/\"}" --text --wait 5000); n=$((n + 2))
expect_eq "pipelined answers come in request order" \
    "$(printf '%s\n' "$out" | jfield .body | tr -d '\n')" "slowhello from origin"

# ---- HTTP/2 (nghttpd speaks only h2) -----------------------------------
if command -v nghttpd >/dev/null 2>&1; then
	mkdir -p "$PEP_TMP/h2"
	echo "h2 page" >"$PEP_TMP/h2/index.html"
	nghttpd -a 127.0.0.1 -d "$PEP_TMP/h2" 5443 "$PEP_TMP/ca/srv.key" \
	    "$PEP_TMP/ca/srv.pem" >/dev/null 2>&1 &
	bg_track $!
	wait_tcp 5443
	out=$(req -u "https://origin.test:5443/index.html" --text); n=$((n + 1))
	expect_eq "HTTP/2 origin over TLS (lower-case h2 header names)" \
	    "$(printf '%s\n' "$out" | jfield '"\(.status) \(.body) \(
	    [.headers[][0]] | all(. == ascii_downcase))"')" "200 h2 page
 true"
else
	skip "nghttpd not installed"
fi

expect_eq "a host outside the policy is denied_by_policy" \
    "$(code_of -u "http://denied.test/x")" "denied_by_policy"
n=$((n + 1)); refused=1

# ---- audit -------------------------------------------------------------
wait_lines "$PEP_TMP/audit.jsonl" "$((2 * n - refused))"
answered_of "$PEP_TMP/audit.jsonl" >"$PEP_TMP/answered.jsonl"
expect_eq "one answered audit line per request" \
    "$(wc -l <"$PEP_TMP/answered.jsonl" | tr -d ' ')" "$n"
expect_eq "one decided line per fetch, written before it" \
    "$(jq -c 'select(.event == "decided")' "$PEP_TMP/audit.jsonl" |
    wc -l | tr -d ' ')" "$((n - refused))"
expect_eq "every request has its own id (pepd(8): unique)" \
    "$(jq -s '[.[].id] | unique | length' "$PEP_TMP/answered.jsonl")" "$n"
expect_eq "each decided line precedes the answered line with its id" \
    "$(jq -s 'reduce .[] as $l ({d: {}, bad: 0};
        if $l.event == "decided" then .d[$l.id] = 1
        elif $l.error == null and .d[$l.id] != 1 then .bad += 1
        else . end) | .bad' "$PEP_TMP/audit.jsonl")" "0"
expect_eq "peer: the client's address on tcp, \"unix\" once" \
    "$(jq -rs '[.[].peer | if . == "unix" then "unix" elif
        test("^127[.]0[.]0[.]1:[0-9]+$") then "tcp" else . end] |
        group_by(.) | map("\(.[0])=\(length)") | join(" ")' \
    "$PEP_TMP/answered.jsonl")" "tcp=$((n - 1)) unix=1"
expect_eq "fetched: 0 <= dns_ms <= connect_ms <= total_ms, total > 0" \
    "$(jq -s '[.[] | select(.status > 0) | select((.dns_ms >= 0 and
        .dns_ms <= .connect_ms and .connect_ms <= .total_ms and
        .total_ms > 0) | not)] | length' "$PEP_TMP/answered.jsonl")" "0"
expect_eq "every refusal carries a message naming what was refused" \
    "$(jq -r 'select(.error != null) | "\(.error): \(.message)"' \
    "$PEP_TMP/answered.jsonl")" "response_too_large: $(jq -r \
    'select(.error == "response_too_large") | .message' \
    "$PEP_TMP/answered.jsonl")
denied_by_policy: GET http://denied.test:80 is not allowed (default)"
check "response_too_large's message names the limit" sh -c \
    "jq -r 'select(.error == \"response_too_large\") | .message' \
    '$PEP_TMP/answered.jsonl' | grep -q 11534336"
check "every audit line is JSON with the documented fields" sh -c "jq -e -s '
    all(.[]; has(\"time\") and has(\"id\") and has(\"peer\") and
    has(\"method\") and has(\"url\") and has(\"host\") and has(\"ip\") and
    has(\"decision\") and has(\"rule\") and has(\"status\") and
    has(\"bytes_in\") and has(\"bytes_out\") and has(\"dns_ms\") and
    has(\"connect_ms\") and has(\"total_ms\") and has(\"error\"))' \
    '$PEP_TMP/answered.jsonl'"
check "audit time is RFC 3339 UTC with ms" sh -c "jq -e -s 'all(.[];
    .time | test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\\\.[0-9]{3}Z$\"))' \
    '$PEP_TMP/answered.jsonl'"
expect_eq "audit records the resolved IP and the POST size" \
    "$(jq -r 'select(.method == "POST") | "\(.ip) \(.bytes_out)"' \
    "$PEP_TMP/answered.jsonl")" "127.0.0.1 300000"
expect_eq "audit records the 10 MiB response size" \
    "$(jq -r 'select(.url | endswith("big.bin")) | .bytes_in' \
    "$PEP_TMP/answered.jsonl")" "10485760"

# ---- reload without the test CA: HTTPS is no longer trusted ------------
cat >"$PEP_TMP/pepd.json" <<EOF
{
  "audit": {"path": "$PEP_TMP/audit.jsonl"},
  "policy": {"allow": ["origin.test"],
             "allow_private": ["127.0.0.0/8", "::1/128"]}
}
EOF
pepd_signal HUP reload
expect_eq "after SIGHUP without ca_file, the test CA is not trusted" \
    "$(code_of -u "$S/")" "upstream_error"
pepd_stop
expect_eq "SIGTERM exits 0" "$PEPD_RC" "0"

# ---- environment mode (the prototype's invocation) ---------------------
(cd "$PEP_TMP" && PEP_ALLOWED_DOMAINS="origin.test" \
    PEP_AUDIT_LOG="$PEP_TMP/env.jsonl" "$PEPD" --port 5002 \
    2>>"$PEP_TMP/pepd.log") &
PEPD_PID=$!; bg_track $PEPD_PID
PEPD_ADDR=tcp:127.0.0.1:5002
pepd_wait_ready
expect_eq "env mode: allowed host on loopback is ssrf_blocked" \
    "$(code_of -u "$H/")" "ssrf_blocked"
expect_eq "env mode: other hosts are denied" \
    "$(code_of -u "http://denied.test/")" "denied_by_policy"
pepd_stop
expect_eq "env mode: audit log written" "$(answered_count "$PEP_TMP/env.jsonl")" \
    "2"
done_testing
