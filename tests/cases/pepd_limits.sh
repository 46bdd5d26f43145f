#!/bin/sh
# Connection limits (issue 13, defect 6): file-descriptor exhaustion never
# blocks the listener (70 idle connections under a 64-fd limit), idle
# connections are closed, a global and a per-client cap answer
# "overloaded" (and audit it), and the metrics count all of it.
. "$(dirname "$0")/../pepd-tools/ns.sh"

origin_start HTTP
H=http://origin.test:$HTTP_PORT
AUDIT=$PEP_TMP/audit.jsonl
mkcfg() {	# [limits-json]
	_lim="\"limits\": ${1:-}"
	cat >"$PEP_TMP/pepd.json" <<-EOF
	{
	  "audit": {"path": "$AUDIT", "fsync": "none"},
	  "policy": {"allow": ["origin.test"],
	             "allow_private": ["127.0.0.0/8", "::1/128"]},
	  "metrics": "127.0.0.1:9464"${1:+,
	  $_lim}
	}
	EOF
}
# hold N: N idle connections to pepd until release (HOLD_PID).
hold() {
	rm -f "$PEP_TMP/hold" "$PEP_TMP/idle.out"
	mkfifo "$PEP_TMP/hold"
	"$PEPLOAD" -c "$PEPD_ADDR" --idle "$1" <"$PEP_TMP/hold" \
	    >"$PEP_TMP/idle.out" &
	HOLD_PID=$!
	exec 4>"$PEP_TMP/hold"
	_i=0
	while ! grep -q ready "$PEP_TMP/idle.out" 2>/dev/null &&
	    [ $_i -lt 1200 ]; do sleep 0.05; _i=$((_i + 1)); done
	grep -q ready "$PEP_TMP/idle.out" ||
	    diag "hold $1: pep-load not connected after 60 s"
}
release() { exec 4>&-; wait "$HOLD_PID"; }
# wait_conns N: until pepd's gauge says it holds N connections (accepted,
# not just queued in the backlog), up to 30 s.
wait_conns() {
	_i=0
	until curl -s --noproxy '*' http://127.0.0.1:9464/metrics |
	    grep -q "^pepd_connections $1\$" || [ $_i -ge 600 ]; do
		sleep 0.05; _i=$((_i + 1))
	done
}
answer() { head -1 | jfield 'if .error then .error.code elif .status then
    "status \(.status)" else .event end'; }

# ---- 70 idle connections under a 64-fd limit -------------------------------
mkcfg
PEPD_PREFIX="prlimit --nofile=64:64" pepd_start "$PEP_TMP/pepd.json"
hold 70
t0=$(date +%s%N)
got=$(req -u "$H/" --wait 5000 | answer)
ms=$((($(date +%s%N) - t0) / 1000000))
diag "with 70 idle connections: '$got' after $ms ms"
case $got in
"overloaded"|"status 200") ok "70 idle connections, 64 fds: a request is answered ($got)" ;;
*) not_ok "70 idle connections, 64 fds: a request is answered (got '$got')" ;;
esac
check "...within 2 s (no accept backlog stall)" test "$ms" -lt 2000
release
expect_eq "pepd still serves after the idle connections are gone" \
    "$(code_of -u "$H/")" "status 200"
pepd_stop

# ---- idle time-out, per-client and global caps -----------------------------
mkcfg '{"idle_timeout_ms": 1000, "max_connections_per_client": 5}'
PEPD_PREFIX="prlimit --nofile=64:64" pepd_start "$PEP_TMP/pepd.json"
hold 70
expect_eq "70 idle connections: answered overloaded at once" \
    "$(req -u "$H/" --wait 5000 | answer)" "overloaded"
sleep 1.5
expect_eq "after idle_timeout_ms, the idle connections are gone: 200" \
    "$(req -u "$H/" --wait 5000 | answer)" "status 200"
release
hold 5
expect_eq "a 6th connection of one client is answered overloaded" \
    "$(req -u "$H/" --wait 5000 | answer)" "overloaded"
expect_eq "...and audited" "$(audit_last '"\(.error) \(.message)"')" \
    "overloaded too many connections from 127.0.0.1 (max_connections_per_client 5)"
release
m=$(curl -s --noproxy '*' http://127.0.0.1:9464/metrics)
like "metrics: connections closed idle" "$m" \
    'pepd_connections_closed_total\{reason="idle"\} [1-9]'
like "metrics: connections refused per client" "$m" \
    'pepd_connections_refused_total\{reason="per_client"\} [1-9]'
like "metrics: open connections gauge" "$m" 'pepd_connections [0-9]'
pepd_stop
mkcfg '{"max_connections": 3}'
pepd_start "$PEP_TMP/pepd.json"
hold 3
wait_conns 3
expect_eq "max_connections 3: a 4th connection is answered overloaded" \
    "$(req -u "$H/" --wait 5000 | answer)" "overloaded"
release
expect_eq "...and served once there is room" "$(code_of -u "$H/")" \
    "status 200"
m=$(curl -s --noproxy '*' http://127.0.0.1:9464/metrics)
like "metrics: connections refused by max_connections" "$m" \
    'pepd_connections_refused_total\{reason="max_connections"\} [1-9]'
pepd_stop
check "no accept error was logged" sh -c "! grep -q 'accept:' \
    '$PEP_TMP/pepd.log'"
done_testing
