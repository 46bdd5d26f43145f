#!/bin/sh
# pep-run against a hostile guest (issue 14). build/hostile plays QEMU and
# the guest for the real pep-run (--qemu), so the real back-end, event
# loop and signal handling are what is tested: one case per defect,
#   replies   a tx flood with no rx buffers: memory stays bounded, tx
#             stalls and resumes, misaddressed packets are dropped
#   descidx   a tx ring entry naming descriptor num (one past the table):
#             refused as a protocol error, the VM stopped, exit 1
#   conncap   cap + 2000 guest REQUESTs: the cap holds (RST), a host
#             --vsock-socket client is still served, RLIMIT_NOFILE raised
#   backlog   an endpoint whose backlog is full: vhost-user and SIGTERM
#             (QMP powerdown) still handled, the guest gets RST in time
#   budget    a tx ring kept full: vhost-user answered within the budget
#   memtable  a memory region larger than its file: refused, no SIGBUS
# and the sockets pep-run and pepd create: mode 0600 under umask 000 (or
# --socket-mode / ",mode="), only a socket is ever replaced or removed.
#   PEP_RUN_BIN, PEP_PEPD_BIN  binaries to test (default: this build's)
. "$(dirname "$0")/../lib.sh"
RUN=${PEP_RUN_BIN:-$TOP/$BUILD/pep-run}
PEPD=${PEP_PEPD_BIN:-$TOP/$BUILD/pepd}
HOSTILE=$TOP/$BUILD/hostile
T=$PEP_TMP
truncate -s 16M "$T/disk.raw" "$T/disk2.raw"

# relay FILE: the harness's "ok - ", "not ok - ", "# " lines as TAP
relay() {
	while IFS= read -r _l; do
		case $_l in
		"ok - "*) ok "${_l#ok - }" ;;
		"not ok - "*) not_ok "${_l#not ok - }" ;;
		"# "*) diag "${_l#\# }" ;;
		esac
	done <"$1"
}

# limited CMD...: soft RLIMIT_NOFILE 512, hard 4096
limited() { sh -c 'ulimit -Sn 512 && ulimit -Hn 4096 && exec "$@"' sh "$@"; }

# hostile CASE [pep-run args]: run pep-run with the harness as its QEMU
# (under $WRAP, if set)
hostile() {
	_c=$1; shift
	rm -f "$T/$_c.res"
	HOSTILE_CASE=$_c HOSTILE_OUT=$T/$_c.res HOSTILE_EP=$T/ep.sock
	HOSTILE_CMD=$T/hv.sock
	export HOSTILE_CASE HOSTILE_OUT HOSTILE_EP HOSTILE_CMD
	${WRAP:-} timeout 120 "$RUN" --disk "$T/disk.raw" --vsock user \
	    --accel tcg --qemu "$HOSTILE" --stop-timeout 2 \
	    --pepd-socket "$T/ep.sock" "$@" >"$T/$_c.out" 2>&1
	_rc=$?
	[ -f "$T/$_c.res" ] && relay "$T/$_c.res"
}

finished() {	# CASE: the harness ran to its end and pep-run exited 0
	if [ "$_rc" -eq 0 ] && grep -q '^done$' "$T/$1.res" 2>/dev/null; then
		ok "$1: ran to its end, pep-run exit 0"
	else
		not_ok "$1: pep-run rc $_rc"
		sed 's/^/#   /' "$T/$1.out" | tail -8
	fi
}

hostile replies
finished replies

hostile descidx
[ "$_rc" -eq 1 ] && grep -q "tx descriptor: " "$T/descidx.out" &&
    ok "descidx: a descriptor index equal to the ring size is refused, exit 1" ||
    { not_ok "descidx: pep-run rc $_rc, not refused"; sed 's/^/#   /' \
    "$T/descidx.out" | tail -5; }

# pep-run starts with a soft limit of 512 and raises it to the hard 4096
export HOSTILE_CAP=256
WRAP=limited hostile conncap --vsock-socket "$T/hv.sock"
finished conncap
n=$(grep -c "refusing more" "$T/conncap.out")
[ "$n" -eq 1 ] && ok "conncap: the cap is logged once for the burst" ||
    { not_ok "conncap: cap logged $n times"; sed 's/^/#   /' \
    "$T/conncap.out" | tail -5; }

hostile backlog
finished backlog

hostile budget
finished budget

hostile memtable
[ "$_rc" -eq 1 ] && grep -q "larger than its file" "$T/memtable.out" &&
    ok "memtable: a region larger than its file is refused, exit 1" ||
    { not_ok "memtable: pep-run rc $_rc (SIGBUS is 135)"; sed 's/^/#   /' \
    "$T/memtable.out" | tail -5; }

# ---- the sockets pep-run creates -----------------------------------------
# idle_start [args]: pep-run in the background, the harness idle
idle_start() {
	rm -f "$T/idle.res"
	HOSTILE_CASE=idle HOSTILE_OUT=$T/idle.res "$RUN" \
	    --disk "$T/disk.raw" --vsock user --accel tcg --qemu "$HOSTILE" \
	    --stop-timeout 2 "$@" >"$T/idle.out" 2>&1 &
	idle=$!
	_i=0
	while ! grep -q '^# idle' "$T/idle.res" 2>/dev/null &&
	    [ $_i -lt 200 ]; do sleep 0.05; _i=$((_i + 1)); done
}
idle_stop() {	# SIGTERM: QMP powerdown, the harness "powers off"
	kill -TERM $idle
	wait $idle
	_rc=$?
}
mode() { stat -c %a "$1" 2>/dev/null; }

umask 000
idle_start --vsock-socket "$T/hv.sock"
m=$(mode "$T/hv.sock")
relay "$T/idle.res"
[ "$m" = 600 ] && ok "umask 000: --vsock-socket is mode 600" ||
    not_ok "umask 000: --vsock-socket is mode '$m'"
# replaced while running: what is there at exit is not pep-run's to remove
rm -f "$T/hv.sock"
echo keep >"$T/hv.sock"
idle_stop
[ "$_rc" -eq 0 ] && ok "SIGTERM with an idle harness: exit 0" ||
    not_ok "idle: rc $_rc"
[ "$(cat "$T/hv.sock" 2>/dev/null)" = keep ] &&
    ok "at exit, a file that replaced the socket is left alone" ||
    not_ok "at exit, pep-run removed a file that is not its socket"
rm -f "$T/hv.sock"

idle_start --vsock-socket "$T/hv.sock" --socket-mode 0660
m=$(mode "$T/hv.sock")
idle_stop
[ "$m" = 660 ] && ok "--socket-mode 0660" || not_ok "--socket-mode: '$m'"
[ ! -e "$T/hv.sock" ] && ok "at exit, pep-run removes its own socket" ||
    not_ok "pep-run left its socket behind"

# (the harness idles if pep-run wrongly gets as far as starting it)
export HOSTILE_CASE=idle HOSTILE_OUT=$T/idle.res
echo precious >"$T/hv.sock"
timeout 20 "$RUN" --disk "$T/disk.raw" --vsock user --accel tcg \
    --qemu "$HOSTILE" --vsock-socket "$T/hv.sock" >"$T/file.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] && grep -q "not a socket" "$T/file.out" &&
    ok "a regular file at --vsock-socket: refused, exit 1" ||
    { not_ok "a regular file at --vsock-socket: rc $rc"
      sed 's/^/#   /' "$T/file.out" | tail -3; }
[ "$(cat "$T/hv.sock" 2>/dev/null)" = precious ] &&
    ok "and the file is intact" || not_ok "the file was replaced"
rm -f "$T/hv.sock"

# a socket someone listens on is not taken over; a stale one is replaced
idle_start --vsock-socket "$T/hv.sock"
timeout 20 "$RUN" --disk "$T/disk2.raw" --vsock user --accel tcg \
    --qemu "$HOSTILE" --vsock-socket "$T/hv.sock" >"$T/live.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] && grep -q "another process listens" "$T/live.out" &&
    ok "a live --vsock-socket is not taken over" ||
    { not_ok "a live --vsock-socket: rc $rc"
      sed 's/^/#   /' "$T/live.out" | tail -3; }
kids=$(pgrep -P $idle)
kill -KILL $idle
wait $idle 2>/dev/null
[ -n "$kids" ] && kill -KILL $kids
[ -S "$T/hv.sock" ] && ok "killed pep-run leaves a stale socket" ||
    not_ok "no stale socket"
idle_start --vsock-socket "$T/hv.sock"
[ "$(mode "$T/hv.sock")" = 600 ] && ok "a stale socket is replaced" ||
    not_ok "a stale socket was not replaced"
idle_stop

# ---- out of descriptors ----------------------------------------------------
# pep-run's soft RLIMIT_NOFILE lowered under it (prlimit) to its lowest
# free fd: accepting a host client fails with EMFILE. The spare fd lets
# pep-run accept and close it (the client sees EOF, not a hang), and it
# backs off instead of spinning on the listener; with the limit back up
# the next client is served.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
if command -v prlimit >/dev/null; then
	idle_start --vsock-socket "$T/hv.sock"
	low=$(python3 -c 'import os, sys
fds = sorted(int(f) for f in os.listdir("/proc/%s/fd" % sys.argv[1]))
print(next(i for i in range(len(fds) + 1) if i not in fds))' $idle)
	hard=$(prlimit --pid $idle --nofile --raw --noheadings | awk '{print $3}')
	prlimit --pid $idle --nofile="$low:$hard"
	c0=$(cpu $idle)
	python3 - "$T/hv.sock" >"$T/emfile.out" 2>&1 <<'PY'
import socket, sys, time
t0, shed = time.monotonic(), 0
for _ in range(5):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(sys.argv[1])
    try:
        s.sendall(b"CONNECT 6000\n")
        shed += s.recv(64) == b""
    except (BrokenPipeError, ConnectionResetError):
        shed += 1
    except socket.timeout:
        pass
    s.close()
time.sleep(max(0, 1.5 - (time.monotonic() - t0)))
print("shed %d of 5" % shed)
PY
	c1=$(cpu $idle)
	like "EMFILE: every host client is closed, none hangs" \
	    "$(cat "$T/emfile.out")" "shed 5 of 5"
	check "EMFILE: pep-run backs off (under 0.3 s of CPU in 1.5 s)" \
	    test $((c1 - c0)) -lt 30
	diag "CPU ticks during the EMFILE window: $((c1 - c0))"
	check "EMFILE: logged" grep -q "pausing 100 ms" "$T/idle.out"
	prlimit --pid $idle --nofile="$hard:$hard"
	sleep 0.2
	python3 - "$T/hv.sock" >"$T/emfile2.out" 2>&1 <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(1)
s.connect(sys.argv[1])
s.sendall(b"CONNECT 6000\n")
try:
    print("closed" if s.recv(64) == b"" else "data")
except socket.timeout:
    print("kept open")
PY
	like "with fds again, a host client is kept (waits for the guest)" \
	    "$(cat "$T/emfile2.out")" "kept open"
	idle_stop
else
	skip "no prlimit"
fi

# ---- pepd's unix listener -------------------------------------------------
pepd_sock() {	# SPEC: pepd listening on SPEC until the socket appears
	PEP_AUDIT_LOG="$T/audit.jsonl" PEP_ALLOWED_DOMAINS=example.test \
	    "$PEPD" --listen "$1" \
	    >"$T/pepd.out" 2>&1 &
	pepd=$!
	_i=0
	while [ ! -S "$T/pepd.sock" ] && [ $_i -lt 100 ]; do
		sleep 0.05; _i=$((_i + 1)); done
}
if [ -x "$PEPD" ]; then
	pepd_sock "unix:$T/pepd.sock"
	m=$(mode "$T/pepd.sock")
	[ "$m" = 600 ] && ok "umask 000: pepd's unix socket is mode 600" ||
	    not_ok "umask 000: pepd's unix socket is mode '$m'"
	rm -f "$T/pepd.sock"
	echo keep >"$T/pepd.sock"
	kill -TERM $pepd
	wait $pepd
	[ "$(cat "$T/pepd.sock" 2>/dev/null)" = keep ] &&
	    ok "pepd at exit leaves a file that replaced its socket" ||
	    not_ok "pepd at exit removed a file that is not its socket"
	rm -f "$T/pepd.sock"
	pepd_sock "unix:$T/pepd.sock,mode=0660"
	m=$(mode "$T/pepd.sock")
	kill -TERM $pepd
	wait $pepd
	[ "$m" = 660 ] && ok "pepd unix:PATH,mode=0660" ||
	    not_ok "pepd ,mode=0660: '$m'"
	[ ! -e "$T/pepd.sock" ] && ok "pepd removes its own socket at exit" ||
	    not_ok "pepd left its socket behind"
	echo precious >"$T/pepd.sock"
	PEP_AUDIT_LOG="$T/audit.jsonl" PEP_ALLOWED_DOMAINS=example.test \
	    timeout 10 "$PEPD" --listen "unix:$T/pepd.sock" >"$T/pepd.out" 2>&1
	rc=$?
	[ "$rc" -ne 0 ] && [ "$(cat "$T/pepd.sock")" = precious ] &&
	    grep -q "pepd.sock" "$T/pepd.out" &&
	    ok "pepd: a regular file at the socket path is refused, intact" ||
	    not_ok "pepd: regular file at the socket path: rc $rc"
else
	skip "no pepd"
fi
umask 022
done_testing
