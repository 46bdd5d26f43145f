#!/bin/sh
# pepd's audit as a precondition (issue 13): a reload that would lose the
# audit is refused (1), a full filesystem never cuts a line and never lets
# a request reach the origin without its "decided" line, and pepd recovers
# by itself (2), frames that are not UTF-8 are bad_request and every line
# stays valid UTF-8 JSON (5), and every request read is answered and
# audited at SIGTERM, also past max_queue (9).
. "$(dirname "$0")/../pepd-tools/ns.sh"

origin_start HTTP --log "$PEP_TMP/origin.log"
H=http://origin.test:$HTTP_PORT
AUDIT=$PEP_TMP/audit.jsonl
mkcfg() {	# file audit-path-json allow-json [extra]
	cat >"$1" <<-EOF
	{
	  "audit": {"path": $2, "fsync": "none"},
	  "policy": {"allow": $3, "allow_private": ["127.0.0.0/8", "::1/128"]},
	  "metrics": "127.0.0.1:9464"${4:+,
	  $4}
	}
	EOF
}
answered() { jq -c 'select(.event != "decided")' "$1" | wc -l | tr -d ' '; }

# ---- 1: a reload that would lose the audit is refused ---------------------
mkcfg "$PEP_TMP/live.json" "\"$AUDIT\"" '["origin.test"]'
pepd_start "$PEP_TMP/live.json"
expect_eq "allowed request before the reloads" "$(code_of -u "$H/a")" \
    "status 200"
mkcfg "$PEP_TMP/live.json" '"/nonexistent/pepd/audit.jsonl"' '["other.test"]'
pepd_signal HUP reload
before=$(answered "$AUDIT")
expect_eq "reload to an unwritable audit path: old policy kept" \
    "$(code_of -u "$H/b")" "status 200"
expect_eq "...and the request is audited in the old file" \
    "$(answered "$AUDIT")" "$((before + 1))"
check "...and the refusal is logged" grep -q \
    "reload refused.*keeping the previous configuration" "$PEP_TMP/pepd.log"
mkcfg "$PEP_TMP/live.json" null '["other.test"]'
pepd_signal HUP reload
before=$(answered "$AUDIT")
expect_eq "reload to \"path\": null: old policy kept" \
    "$(code_of -u "$H/c")" "status 200"
expect_eq "...and the request is audited" "$(answered "$AUDIT")" \
    "$((before + 1))"
pepd_stop

# ---- 2: a full filesystem (a 16 KiB tmpfs) --------------------------------
mkdir -p "$PEP_TMP/small"
mount -t tmpfs -o size=16k tmpfs "$PEP_TMP/small"
head -c 8192 /dev/zero >"$PEP_TMP/small/filler"
mkcfg "$PEP_TMP/full.json" "\"$PEP_TMP/small/audit.jsonl\"" '["origin.test"]'
: >"$PEP_TMP/origin.log"
pepd_start "$PEP_TMP/full.json"
i=0
: >"$PEP_TMP/full.codes"
while [ $i -lt 60 ]; do
	i=$((i + 1))
	code_of -u "$H/hit/$i" >>"$PEP_TMP/full.codes"
done
hits=$(grep -c ' /hit/' "$PEP_TMP/origin.log")
diag "60 requests: $hits reached the origin; answers: $(sort \
    "$PEP_TMP/full.codes" | uniq -c | tr -s ' ' | tr '\n' ';')"
check "every audit line on the full filesystem is whole JSON" \
    jsonl_valid "$PEP_TMP/small/audit.jsonl"
missing=0
for p in $(sed -n 's|^GET \(/hit/[0-9]*\)$|\1|p' "$PEP_TMP/origin.log"); do
	grep -q "\"url\":\"$H$p\"" "$PEP_TMP/small/audit.jsonl" ||
	    missing=$((missing + 1))
done
expect_eq "no request reached the origin without its audit line" \
    "$missing" "0"
refused=$(grep -c '^audit_unavailable$' "$PEP_TMP/full.codes")
check "requests that cannot be audited are refused audit_unavailable" \
    test "$refused" -gt 0
check "audit_unavailable is logged" grep -q "audit" "$PEP_TMP/pepd.log"
m=$(curl -s --noproxy '*' http://127.0.0.1:9464/metrics)
like "metrics: audit unavailable" "$m" 'pepd_audit_available 0'
mount -o remount,size=1m "$PEP_TMP/small"
i=0
while [ $i -lt 100 ]; do
	c=$(code_of -u "$H/again")
	[ "$c" = "status 200" ] && break
	echo "$c" >>"$PEP_TMP/full.codes"
	sleep 0.1; i=$((i + 1))
done
refused=$(grep -c '^audit_unavailable$' "$PEP_TMP/full.codes")
expect_eq "room again: pepd recovers by itself" "$(code_of -u "$H/again")" \
    "status 200"
check "the recovery is logged" grep -q "audit log .* writable again" \
    "$PEP_TMP/pepd.log"
expect_eq "the refused requests' lines were kept and written" \
    "$(jq -c 'select(.error == "audit_unavailable")' \
    "$PEP_TMP/small/audit.jsonl" | wc -l | tr -d ' ')" "$refused"
check "every line is whole JSON after the recovery" \
    jsonl_valid "$PEP_TMP/small/audit.jsonl"
pepd_stop
umount "$PEP_TMP/small"

# ---- 5: frames must be UTF-8; audit lines always are -----------------------
mkcfg "$PEP_TMP/u.json" "\"$AUDIT\"" '["origin.test"]'
pepd_start "$PEP_TMP/u.json"
bad=$(printf '{"method":"GET","url":"%s/\377\376"}' "$H" | od -An -tx1 |
    tr -d ' \n')
out=$(req --raw-hex "$(printf '%08x' $((${#bad} / 2)))$bad" --wait 5000)
expect_eq "a URL with bytes ff fe: bad_request" \
    "$(printf '%s\n' "$out" | head -1 | jfield .error.code)" "bad_request"
bad=$(printf '{"method":"GET","url":"%s/","headers":[["X-A","\355\240\200"]]}' \
    "$H" | od -An -tx1 | tr -d ' \n')
out=$(req --raw-hex "$(printf '%08x' $((${#bad} / 2)))$bad" --wait 5000)
expect_eq "an encoded surrogate (ed a0 80): bad_request" \
    "$(printf '%s\n' "$out" | head -1 | jfield .error.code)" "bad_request"
code_of -u "$H/caf%C3%A9?q=%FF" >/dev/null
code_of -u 'http://a"b\c/' >/dev/null
pepd_stop
check "every audit line is valid UTF-8 JSON (strict decoder)" \
    jsonl_valid "$AUDIT"
expect_eq "a bad URL with a quote and a backslash is audited as sent" \
    "$(jq -r 'select(.url | . != null and startswith("http://a")) | .url' \
    "$AUDIT" | sort -u)" 'http://a"b\c/'

# ---- 9: SIGTERM: every request read is answered and audited -----------------
mkcfg "$PEP_TMP/q.json" "\"$PEP_TMP/term.jsonl\"" '["origin.test"]' \
    '"limits": {"max_queue": 4}, "shutdown_grace_ms": 5000'
pepd_start "$PEP_TMP/q.json"
"$PEPC" -c "$PEPD_ADDR" -n 19 -u "$H/slow/300" --wait 15000 \
    >"$PEP_TMP/pipe.out" 2>/dev/null &
CL=$!
sleep 0.5
pepd_stop
wait $CL
expect_eq "19 pipelined requests (max_queue 4), SIGTERM: 19 answers" \
    "$(jq -c 'select(.status or .error)' "$PEP_TMP/pipe.out" | wc -l |
    tr -d ' ')" "19"
expect_eq "...and 19 audit lines" "$(answered "$PEP_TMP/term.jsonl")" "19"
done_testing
