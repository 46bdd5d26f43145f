# Helpers for pepd's shell cases (tests/cases/pepd_*.sh), sourced after
# tests/lib.sh. Every case runs inside its own network and mount namespace
# (each case sources ns.sh first thing: it re-execs the case under
# `unshare -m -n`, sources this file and calls pepd_ns_setup): only
# loopback exists, /etc/hosts maps the test names to 127.0.0.1 and DNS
# points nowhere, so no test traffic leaves the machine.

# PEPD_BIN runs the cases against another pepd (the branch base, say).
PEPD=${PEPD_BIN:-$TOP/$BUILD/pepd}
PEPC=$TOP/$BUILD/pep-client
PEPLOAD=$TOP/$BUILD/pep-load
ORIGIN=$TOP/tests/pepd-tools/origin.py
_pids=""
# The test tools exit without freeing; leak reports are for pepd.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS
PEPD_ASAN="${ASAN_OPTIONS%detect_leaks=0}detect_leaks=1"

# Inside the namespace: loopback up, test names, no resolver.
pepd_ns_setup() {
	ip link set lo up
	cat >"$PEP_TMP/hosts" <<-EOF
	127.0.0.1 localhost origin.test allowed.test denied.test
	127.0.0.1 wild.test a.wild.test bad.wild.test internal.test
	127.0.0.1 report.test
	::1 localhost ip6-localhost
	EOF
	echo "nameserver 127.0.0.1" >"$PEP_TMP/resolv.conf"
	mount --bind "$PEP_TMP/hosts" /etc/hosts
	mount --bind "$PEP_TMP/resolv.conf" /etc/resolv.conf
	trap 'pepd_cleanup' EXIT
}

pepd_cleanup() {
	for _p in $_pids; do kill "$_p" 2>/dev/null; done
	for _p in $_pids; do wait "$_p" 2>/dev/null; done
	cleanup_tmp
}

bg_track() { _pids="$_pids $1"; }

# A test CA and a server certificate for origin.test, localhost, 127.0.0.1.
pepd_make_ca() {
	_pl_d=$PEP_TMP/ca
	mkdir -p "$_pl_d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	    -nodes -keyout "$_pl_d/ca.key" -out "$_pl_d/ca.pem" -days 2 \
	    -subj "/CN=pep test CA" >/dev/null 2>&1 || return 1
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$_pl_d/srv.key" -out "$_pl_d/srv.csr" -subj "/CN=origin.test" \
	    >/dev/null 2>&1 || return 1
	printf 'subjectAltName=DNS:origin.test,DNS:localhost,IP:127.0.0.1\n' \
	    >"$_pl_d/ext"
	openssl x509 -req -in "$_pl_d/srv.csr" -CA "$_pl_d/ca.pem" \
	    -CAkey "$_pl_d/ca.key" -CAcreateserial -out "$_pl_d/srv.pem" -days 2 \
	    -extfile "$_pl_d/ext" >/dev/null 2>&1
}

# origin_start NAME [origin.py args]: sets NAME_PORT.
origin_start() {
	_pl_n=$1; shift
	rm -f "$PEP_TMP/$_pl_n.port"
	python3 "$ORIGIN" --portfile "$PEP_TMP/$_pl_n.port" --dir "$PEP_TMP" \
	    "$@" 2>"$PEP_TMP/$_pl_n.log" &
	bg_track $!
	_i=0
	while [ ! -s "$PEP_TMP/$_pl_n.port" ] && [ $_i -lt 600 ]; do
		sleep 0.05; _i=$((_i + 1))
	done
	eval "${_pl_n}_PORT=\$(cat \"\$PEP_TMP/\$_pl_n.port\")"
}

# pepd_start CONFIG [pepd args]: pepd on tcp:127.0.0.1:5001 (PEPD_PID).
# PEPD_PREFIX is a command that execs pepd (prlimit --nofile=64:64, say).
PEPD_ADDR=tcp:127.0.0.1:5001
PEPD_PREFIX=
pepd_start() {
	_pl_c=$1; shift
	ASAN_OPTIONS=$PEPD_ASAN $PEPD_PREFIX "$PEPD" --config "$_pl_c" \
	    --listen "$PEPD_ADDR" "$@" 2>>"$PEP_TMP/pepd.log" &
	PEPD_PID=$!
	bg_track $PEPD_PID
	pepd_wait_ready
}

pepd_wait_ready() {
	_i=0
	while [ $_i -lt 100 ]; do
		"$PEPC" -c "$PEPD_ADDR" --wait 1 >/dev/null 2>&1 && return 0
		sleep 0.05; _i=$((_i + 1))
	done
	return 1
}

# pepd_signal SIG PATTERN: send SIG, then wait (up to 30 s) until pepd's
# log gains a line matching PATTERN: no guessing how long a loaded machine
# takes to handle it.
pepd_signal() {
	_ps_n=$(grep -c -- "$2" "$PEP_TMP/pepd.log" 2>/dev/null)
	kill -"$1" "$PEPD_PID"
	_i=0
	while [ "$(grep -c -- "$2" "$PEP_TMP/pepd.log" 2>/dev/null)" \
	    -le "${_ps_n:-0}" ] && [ $_i -lt 600 ]; do
		sleep 0.05; _i=$((_i + 1))
	done
}

# wait_lines FILE N: wait (up to 30 s) until FILE has at least N lines.
wait_lines() {
	_i=0
	while [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -lt "$2" ] &&
	    [ $_i -lt 600 ]; do
		sleep 0.05; _i=$((_i + 1))
	done
}

# wait_tcp PORT: wait (up to 30 s) until something listens on PORT.
wait_tcp() {
	_i=0
	while ! ss -ltnH "sport = :$1" 2>/dev/null | grep -q . &&
	    [ $_i -lt 600 ]; do
		sleep 0.05; _i=$((_i + 1))
	done
}

# pepd_stop: SIGTERM and wait; the exit status is in PEPD_RC.
pepd_stop() {
	kill -TERM "$PEPD_PID" 2>/dev/null
	wait "$PEPD_PID"
	PEPD_RC=$?
}

# req ARGS...: one request through pepd; the JSON answer on stdout.
req() {
	"$PEPC" -c "$PEPD_ADDR" --wait 20000 "$@" 2>>"$PEP_TMP/client.log"
}

# jfield FILTER: a jq filter over the JSON on stdin, raw output.
jfield() { jq -r "$1" 2>/dev/null; }

# expect_eq DESC GOT WANT
expect_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else
		not_ok "$1"; diag "got '$2', want '$3'"
		[ -f "$PEP_TMP/pepd.log" ] && tail -5 "$PEP_TMP/pepd.log" |
		    sed 's/^/#   pepd: /'
	fi
}

# code_of ARGS...: the refusal code of one request, or "status N".
code_of() {
	req "$@" | head -1 | jfield 'if .error then .error.code else
	    "status \(.status)" end'
}

# audit_last FILTER: the filter applied to the last audit line.
audit_last() { tail -1 "$PEP_TMP/audit.jsonl" | jfield "$1"; }

# jsonl_valid FILE: every line is one JSON value, the text strict UTF-8
# (Python's decoder; jq would quietly replace bad bytes), the file ends
# with a newline.
jsonl_valid() {
	python3 - "$1" <<-'PYEOF'
	import json, sys
	data = open(sys.argv[1], "rb").read()
	if data and not data.endswith(b"\n"):
	    sys.exit("no newline at the end: a cut line")
	for n, line in enumerate(data.splitlines(), 1):
	    try:
	        json.loads(line.decode("utf-8", "strict"))
	    except Exception as e:
	        sys.exit("line %d: %s: %r" % (n, e, line[:120]))
	PYEOF
}

# answered_of FILE: the "answered" audit lines (one per request; an allowed
# request also has a "decided" line, written before its fetch).
answered_of() { jq -c 'select(.event != "decided")' "$1"; }
# answered_count FILE: how many.
answered_count() { answered_of "$1" | wc -l | tr -d ' '; }
