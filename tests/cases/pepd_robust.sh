#!/bin/sh
# pepd under bad input and load: malformed and oversize frames, slowloris,
# upstream errors and time-outs, overload, 1000 concurrent connections,
# metrics, SIGUSR1 audit reopen, SIGTERM in the middle of load (every
# answered request has its audit line).
. "$(dirname "$0")/../pepd-tools/ns.sh"
ulimit -n 8192 2>/dev/null

origin_start HTTP
H=http://origin.test:$HTTP_PORT
AUDIT=$PEP_TMP/audit.jsonl
mkcfg() {	# max_concurrent audit-path [total_timeout_ms]
	cat >"$PEP_TMP/pepd.json" <<-EOF
	{
	  "audit": {"path": "$2", "fsync": "interval", "interval_ms": 200},
	  "policy": {"allow": ["origin.test"],
	             "allow_private": ["127.0.0.0/8", "::1/128"]},
	  "limits": {"connect_timeout_ms": 1000, "total_timeout_ms": ${3:-1500},
	             "max_concurrent": $1},
	  "metrics": "127.0.0.1:9464",
	  "shutdown_grace_ms": 1000
	}
	EOF
}
mkcfg 2048 "$AUDIT"
pepd_start "$PEP_TMP/pepd.json" --frame-timeout 1000

# ---- malformed frames ---------------------------------------------------
out=$(req --raw-hex 00000003616263 --wait 5000)
expect_eq "invalid JSON: bad_request, then close" \
    "$(printf '%s\n' "$out" | jfield '.error.code // .event' | tr '\n' ' ')" \
    "bad_request closed "
out=$(req --raw-hex 7fffffff00 --wait 5000)
expect_eq "length over the frame limit: bad_request, then close" \
    "$(printf '%s\n' "$out" | jfield '.error.code // .event' | tr '\n' ' ')" \
    "bad_request closed "
out=$(req --raw-hex 000000025b5d --wait 5000)
expect_eq "JSON that is not a request object: bad_request, then close" \
    "$(printf '%s\n' "$out" | jfield '.error.code // .event' | tr '\n' ' ')" \
    "bad_request closed "
ok_frame=$(printf '{"method":"GET","url":"%s/"}' "$H" | od -An -tx1 |
    tr -d ' \n')
len=$(printf '%08x' $((${#ok_frame} / 2)))
out=$(req --raw-hex "$len$ok_frame"000000017b --wait 5000)
expect_eq "a good frame before a bad one is answered first" \
    "$(printf '%s\n' "$out" | jfield '.status // .error.code // .event' |
    tr '\n' ' ')" "200 bad_request closed "

# ---- slowloris --------------------------------------------------------------
out=$(req -u "$H/" --partial 2 --wait 5000)
ms=$(printf '%s\n' "$out" | jfield .after_ms)
check "an incomplete length prefix is closed after the frame timeout" \
    test "${ms:-0}" -ge 900 -a "${ms:-0}" -le 3000
out=$(req -u "$H/" --partial 10 --wait 5000)
ms=$(printf '%s\n' "$out" | jfield .after_ms)
check "an incomplete payload is closed after the frame timeout" \
    test "${ms:-0}" -ge 900 -a "${ms:-0}" -le 3000

# ---- upstream failures --------------------------------------------------
expect_eq "connection refused is upstream_error" \
    "$(code_of -u "http://origin.test:1/")" "upstream_error"
expect_eq "a slow origin past total_timeout_ms is timeout" \
    "$(code_of -u "$H/slow/3000")" "timeout"
expect_eq "pepd still answers after all that" "$(code_of -u "$H/")" \
    "status 200"

# ---- overload ----------------------------------------------------------------
mkcfg 2 "$AUDIT"
pepd_signal HUP reload
out=$("$PEPC" -c "$PEPD_ADDR" -C 6 -n 6 -u "$H/slow/400" --wait 10000)
expect_eq "over max_concurrent: overloaded" \
    "$(printf '%s\n' "$out" | jfield '.error.code // .status' | sort |
    uniq -c | tr -s ' ' | tr '\n' ';')" " 2 200; 4 overloaded;"
mkcfg 2048 "$AUDIT"
pepd_signal HUP reload

# ---- 1000 concurrent connections ------------------------------------------
out=$("$PEPC" -c "$PEPD_ADDR" -C 1000 -n 1000 -u "$H/page" --wait 60000)
expect_eq "1000 concurrent connections all answered 200" \
    "$(printf '%s\n' "$out" | jfield .status | grep -c '^200$')" "1000"

# ---- metrics -------------------------------------------------------------------
m=$(curl -s --noproxy '*' http://127.0.0.1:9464/metrics)
check "metrics: requests by decision" sh -c "printf '%s' '$m' |
    grep -q 'pepd_requests_total{decision=\"allow\"} [1-9]'"
expect_eq "metrics: allow and deny counts are the audit's" \
    "$(printf '%s\n' "$m" | awk '/^pepd_requests_total{decision="allow"}/ {
        a = $2 } /^pepd_requests_total{decision="deny"}/ { d = $2 }
        END { print a + 0, d + 0 }')" \
    "$(jq -rs '[.[] | select(.event == "answered")] |
        "\(map(select(.decision == "allow")) | length) \(map(select(
        .decision == "deny")) | length)"' "$AUDIT")"
check "metrics: latency histogram" sh -c "printf '%s' '$m' |
    grep -q 'pepd_request_duration_seconds_bucket{le=\"+Inf\"} [1-9]'"

# ---- SIGUSR1 reopen --------------------------------------------------------------
# (pepd writes a request's audit line before its answer: no waiting here)
before=$(wc -l <"$AUDIT")
mv "$AUDIT" "$AUDIT.1"
pepd_signal USR1 reopen
code_of -u "$H/" >/dev/null
code_of -u "$H/" >/dev/null
wait_lines "$AUDIT" 4
expect_eq "after mv + SIGUSR1 new lines go to a new file" \
    "$(answered_count "$AUDIT")" "2"
expect_eq "...and the old file is intact" "$(wc -l <"$AUDIT.1")" "$before"
pepd_stop

# ---- SIGTERM in the middle of load ----------------------------------------------
mkcfg 2048 "$PEP_TMP/term.jsonl" 10000
pepd_start "$PEP_TMP/pepd.json"
"$PEPLOAD" -c "$PEPD_ADDR" -u "$H/page" -C 16 --until-closed \
    >"$PEP_TMP/fast.out" &
L1=$!
"$PEPLOAD" -c "$PEPD_ADDR" -u "$H/slow/5000" -C 4 --until-closed \
    >"$PEP_TMP/slow.out" &
L2=$!
wait_lines "$PEP_TMP/term.jsonl" 300	# load is flowing
# and the 4 slow requests are in flight: decided (their line is written
# before the fetch starts), each held 5 s by the origin
_i=0
while [ "$(grep -c '"event":"decided".*/slow/5000' "$PEP_TMP/term.jsonl")" \
    -lt 4 ] && [ $_i -lt 600 ]; do
	sleep 0.05; _i=$((_i + 1))
done
t0=$(date +%s)
pepd_stop
t1=$(date +%s)
wait $L1 $L2
expect_eq "SIGTERM under load exits 0" "$PEPD_RC" "0"
check "SIGTERM exits within the grace (+2 s)" test $((t1 - t0)) -le 4
got=$(cat "$PEP_TMP/fast.out" "$PEP_TMP/slow.out" | jq -s 'map(.requests) | add')
check "load was running (answers > 100)" test "${got:-0}" -gt 100
expect_eq "every answered request has its audit line" \
    "$(answered_count "$PEP_TMP/term.jsonl")" "$got"
expect_eq "in-flight past the grace are refused, and audited" \
    "$(jfield .refused <"$PEP_TMP/slow.out") $(jq -s \
    'map(select(.error == "overloaded")) | length' "$PEP_TMP/term.jsonl")" \
    "4 4"
check "every line is valid JSON" jq -e -s 'length > 0' "$PEP_TMP/term.jsonl"
done_testing
