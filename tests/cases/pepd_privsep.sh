#!/bin/sh
# pepd's privilege separation (issue 13): a parent that reads frames and
# holds the audit log, a fetcher process that runs libcurl as the
# configured user under seccomp and landlock. The sandbox is proved from
# outside (/proc/PID/status of the live fetcher: uid, NoNewPrivs,
# Seccomp) and from inside (pepd --check-sandbox starts a fetcher the way
# serving does and asks it to open /etc/shadow, create a file, list /,
# open an AF_UNIX socket and exec /bin/true; each must be refused, the
# exec by seccomp killing the fetcher). A SIGKILLed fetcher is noticed, its
# in-flight requests answered upstream_error and audited, and a new one
# started. Last, the systemd unit's hardening (systemd-analyze).
. "$(dirname "$0")/../pepd-tools/ns.sh"

origin_start HTTP
H=http://origin.test:$HTTP_PORT
AUDIT=$PEP_TMP/audit.jsonl
NOBODY=$(id -u nobody)
cat >"$PEP_TMP/pepd.json" <<EOF
{
  "user": "nobody",
  "audit": {"path": "$AUDIT", "fsync": "none"},
  "policy": {"allow": ["origin.test"],
             "allow_private": ["127.0.0.0/8", "::1/128"]},
  "shutdown_grace_ms": 2000
}
EOF
status_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
fetcher_pid() { cat "/proc/$PEPD_PID/task/$PEPD_PID/children" 2>/dev/null |
    tr ' ' '\n' | grep -m1 .; }

pepd_start "$PEP_TMP/pepd.json"
expect_eq "a request is fetched" "$(code_of -u "$H/")" "status 200"
F=$(fetcher_pid)
check "pepd runs a fetcher child process" test -n "$F"
F=${F:-0}
like "...started as pepd --fetcher" "$(tr '\0' ' ' <"/proc/$F/cmdline" \
    2>/dev/null)" "--fetcher"
expect_eq "the parent dropped to the configured user" \
    "$(status_of "$PEPD_PID" Uid)" "$NOBODY"
ids_of() { awk -v k="$2:" '$1 == k { $1 = ""; print substr($0, 2) }' \
    "/proc/$1/status"; }
expect_eq "...real, effective, saved and fs uid" \
    "$(ids_of "$PEPD_PID" Uid)" "$NOBODY $NOBODY $NOBODY $NOBODY"
expect_eq "...and gid: the user's group" "$(ids_of "$PEPD_PID" Gid)" \
    "$(id -g nobody) $(id -g nobody) $(id -g nobody) $(id -g nobody)"
expect_eq "...its only group (root's are gone)" \
    "$(ids_of "$PEPD_PID" Groups)" "$(id -g nobody)"
expect_eq "the fetcher runs as the configured user" "$(status_of "$F" Uid)" \
    "$NOBODY"
expect_eq "the fetcher has no_new_privs" "$(status_of "$F" NoNewPrivs)" "1"
expect_eq "the fetcher is under a seccomp filter (mode 2)" \
    "$(status_of "$F" Seccomp)" "2"
expect_eq "the fetcher holds no handle to the audit log" \
    "$(ls -l "/proc/$F/fd" 2>/dev/null | grep -c audit.jsonl)" "0"
expect_eq "...the parent does" \
    "$(ls -l "/proc/$PEPD_PID/fd" | grep -c audit.jsonl)" "1"
expect_eq "the fetcher has no capabilities" \
    "$(status_of "$F" CapEff)" "0000000000000000"

# ---- the sandbox from inside -------------------------------------------
out=$(ASAN_OPTIONS=$PEPD_ASAN "$PEPD" --check-sandbox --config \
    "$PEP_TMP/pepd.json" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
expect_eq "pepd --check-sandbox exits 0" "$rc" "0"
like "sandbox: open /etc/shadow is denied" "$out" \
    'open /etc/shadow for reading: denied \(Permission denied\)'
like "sandbox: creating a file is denied" "$out" \
    'create /tmp/pepd-sandbox-probe: denied'
like "sandbox: listing / is denied" "$out" 'list /: denied'
like "sandbox: an AF_UNIX socket is denied" "$out" \
    'socket\(AF_UNIX\): denied \(Operation not permitted\)'
like "sandbox: execve kills the fetcher (seccomp)" "$out" \
    'execve /bin/true: denied \(the fetcher was killed by signal 31'
like "sandbox: landlock is in force" "$out" 'landlock: ABI [1-9]'
check "the probe left no file behind" test ! -e /tmp/pepd-sandbox-probe

# ---- a fetcher crash ----------------------------------------------------
crash_test() {
	"$PEPC" -c "$PEPD_ADDR" -C 3 -n 3 -u "$H/slow/4000" --wait 10000 \
	    >"$PEP_TMP/crash.out" 2>/dev/null &
	CL=$!
	i=0
	while [ "$(grep -c '/slow/4000' "$AUDIT" 2>/dev/null)" -lt 3 ] &&
	    [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	t0=$(date +%s%N)
	kill -KILL "$F"
	wait $CL
	ms=$((($(date +%s%N) - t0) / 1000000))
	expect_eq "SIGKILL of the fetcher: its 3 in-flight requests: upstream_error" \
	    "$(jfield '.error.code' <"$PEP_TMP/crash.out" | sort | uniq -c |
	    tr -s ' ')" " 3 upstream_error"
	check "...answered at once ($ms ms), not at their time-out" \
	    test "$ms" -lt 3000
	expect_eq "...and audited" "$(jq -c 'select(.event != "decided" and
	    .error == "upstream_error" and (.url | endswith("/slow/4000")))' \
	    "$AUDIT" | wc -l | tr -d ' ')" "3"
	check "the crash is logged" grep -q "fetcher.*killed by signal 9" \
	    "$PEP_TMP/pepd.log"
	expect_eq "a new fetcher serves the next request" \
	    "$(code_of -u "$H/")" "status 200"
	F2=$(fetcher_pid)
	check "...in a new process ($F -> ${F2:-none})" \
	    test -n "$F2" -a "${F2:-0}" != "$F"
	expect_eq "...sandboxed like the first" "$(status_of "${F2:-0}" \
	    Seccomp) $(status_of "${F2:-0}" Uid)" "2 $NOBODY"
}
# (never kill -KILL 0: that is this whole process group)
if [ "$F" -gt 1 ]; then crash_test; else not_ok "no fetcher to kill"; fi
pepd_stop
expect_eq "pepd exits 0" "$PEPD_RC" "0"
check "the fetcher is gone after pepd exits" test ! -d "/proc/${F2:-0}"

# ---- the systemd unit ---------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
	sed "s|/usr/local/bin/pepd|$PEPD|" "$TOP/pepd/pepd.service" \
	    >"$PEP_TMP/pepd.service"
	out=$(systemd-analyze verify --man=no "$PEP_TMP/pepd.service" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/# verify: /'
	expect_eq "systemd-analyze verify pepd.service" "$rc" "0"
	out=$(systemd-analyze security --offline=yes --no-pager \
	    "$PEP_TMP/pepd.service" 2>&1)
	rc=$?
	score=$(printf '%s\n' "$out" | sed -n \
	    's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	diag "systemd-analyze security pepd.service: ${score:-?} ($(printf \
	    '%s\n' "$out" | tail -1))"
	check "systemd-analyze security: exposure <= 2.0 (got ${score:-?})" \
	    awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'
else
	skip "systemd-analyze not installed"
fi
done_testing
