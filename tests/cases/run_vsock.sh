#!/bin/sh
# pep-run's userspace vhost-user-vsock back-end with a real guest under
# TCG: Debian's cloud kernel + a busybox initramfs whose guest-client
# talks AF_VSOCK to CID 2 port 5000. Checks byte-exact echo, 32 concurrent
# connections, a guest closing mid-stream, a bulk transfer each way (the
# host's way with a guest that only reads: credit updates), a host that
# is not listening, a host-initiated connection ("CONNECT P"), 2,000
# guest connections beyond the cap (--vsock-max-conns), and the
# lifecycle with the real QEMU (disk lock, SIGTERM -> QMP powerdown).
#   PEP_RUN_BULK=bytes  bulk size (default 100 MiB; 4 MiB under ASan)
. "$(dirname "$0")/../lib.sh"
RUN=$TOP/$BUILD/pep-run
T=$PEP_TMP
G=$PEP_CACHE/guest
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v python3 \
    >/dev/null || [ "$(uname -m)" != x86_64 ]; then
	skip "needs qemu-system-x86_64, python3, an x86_64 host"
	done_testing; exit
fi
if ! sh "$TOP/tests/runner/mkguest.sh" "$G" >"$T/mkguest.log" 2>&1; then
	skip "test guest not buildable: $(tail -1 "$T/mkguest.log")"
	done_testing; exit
fi
case $BUILD in *asan*) bulk=${PEP_RUN_BULK:-4194304} down=4194304 ;;
*) bulk=${PEP_RUN_BULK:-104857600} down=16777216 ;; esac
truncate -s 16M "$T/disk.raw"
EP=$TOP/tests/runner/endpoint.py

boot() {	# name steps endpoint-args...
	_bn=$1 _bs=$2; shift 2
	timeout 300 "$RUN" --accel tcg --disk "$T/disk.raw" --snapshot \
	    --memory 512M --kernel "$G/vmlinuz" --initrd "$G/initrd.img" \
	    --append "console=hvc0 quiet pep.steps=$_bs" --stop-timeout 2 \
	    --console-log "$T/$_bn.con" "$@" >"$T/$_bn.out" 2>&1
}

expect() {	# file pattern description
	if grep -q -- "$2" "$1"; then ok "$3"; else
		not_ok "$3"; sed 's/^/#   /' "$1" | tail -15; fi
}

python3 "$EP" "$T/ep.sock" "$T/ep.log" &
ep=$!
sleep 0.5
t0=$(date +%s)
boot main "echo:4096,multi:64:65536,abort:50000,echo:1000000,bulk:$bulk,down:$down" \
    --pepd-socket "$T/ep.sock"
rc=$?
diag "main boot: $(($(date +%s) - t0))s, rc $rc"
[ "$rc" -eq 0 ] && ok "guest powered off: pep-run exit 0" ||
    { not_ok "pep-run rc $rc"; sed 's/^/#   /' "$T/main.out" | tail; }
expect "$T/main.con" "PEPTEST echo ok 4096" "echo 4 KiB byte-exact"
expect "$T/main.con" "PEPTEST multi ok 64 65536 failed=0" \
    "64 concurrent connections, 64 KiB each"
expect "$T/main.con" "PEPTEST abort ok" "guest closes mid-stream"
expect "$T/main.con" "PEPTEST echo ok 1000000" "echo 1 MB after the abort"
expect "$T/main.con" "PEPTEST bulk ok $bulk" "bulk $bulk bytes"
expect "$T/ep.log" "bulk $bulk ok" "host got the bulk bytes byte-exact"
n=$(grep -c "echo 65536 ok" "$T/ep.log")
[ "$n" -eq 64 ] && ok "host served 64 echo connections" ||
    not_ok "host served $n of 64"
# host to guest with the guest sending nothing after its request: its
# credit comes back only in CREDIT_UPDATE packets
expect "$T/main.con" "PEPTEST down ok $down" \
    "host to guest $down bytes byte-exact, the guest only reading"
expect "$T/ep.log" "down $down ok" "host sent all $down bytes"
diag "$(grep 'bulk ok\|down ok' "$T/main.con")"
kill $ep 2>/dev/null

# nothing listening: the guest sees the connection refused/reset
boot refused "refused,refused" --bridge-port 9
rc=$?
[ "$rc" -eq 0 ] && ok "no listener: pep-run survives, exit 0" ||
    not_ok "no listener: rc $rc"
expect "$T/refused.con" "PEPTEST refused ok" "no listener: guest refused"

# host-initiated: CONNECT 6000 on --vsock-socket reaches the guest
boot listen "listen:6000" --vsock-socket "$T/hv.sock" &
bp=$!
i=0
while ! grep -q "PEPTEST listening" "$T/listen.con" 2>/dev/null &&
    [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
python3 - "$T/hv.sock" >"$T/hv.out" 2>&1 <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"CONNECT 6000\n")
line = b""
while not line.endswith(b"\n"):
    line += s.recv(1)
assert line.startswith(b"OK ") and line[3:-1].isdigit(), line
data = bytes(range(256)) * 400
s.sendall(data)
got = b""
while len(got) < len(data):
    got += s.recv(65536)
assert got == data
s.close()
print("host-initiated ok")
PY
expect "$T/hv.out" "host-initiated ok" "host-initiated CONNECT/OK echo"
wait $bp
expect "$T/listen.con" "PEPTEST listen ok 6000" "guest saw the connection"

# ---- a guest beyond the connection cap -----------------------------------
# The guest holds 64 connections (the cap) and tries 2,000 more: each is
# refused (RST) at once. Meanwhile pep-run serves a host client, and once
# the guest lets go, its next request is answered.
python3 "$EP" "$T/ep.sock" "$T/ep2.log" &
ep=$!
sleep 0.5
t0=$(date +%s)
boot flood "flood:64:2000,echo:4096" --pepd-socket "$T/ep.sock" \
    --vsock-max-conns 64 --vsock-socket "$T/hv2.sock" &
bp=$!
i=0
while ! grep -q "PEPTEST flood holding" "$T/flood.con" 2>/dev/null &&
    [ $i -lt 1800 ]; do sleep 0.1; i=$((i + 1)); done
diag "flood: $(($(date +%s) - t0))s to hold the cap and be refused 2000 times"
python3 - "$T/hv2.sock" >"$T/hv2.out" 2>&1 <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(b"CONNECT 6000\n")
line = b""
while not line.endswith(b"\n"):
    line += s.recv(1)
assert line.startswith(b"OK "), line
s.sendall(b"at the cap")
got = b""
while len(got) < 10:
    got += s.recv(64)
assert got == b"at the cap", got
s.close()
print("host client at the cap ok")
PY
expect "$T/hv2.out" "host client at the cap ok" \
    "at the cap: a host client is served (CONNECT/OK echo)"
wait $bp
rc=$?
diag "flood boot: $(($(date +%s) - t0))s, rc $rc"
kill $ep 2>/dev/null
[ "$rc" -eq 0 ] && ok "flood: pep-run exit 0" || not_ok "flood: rc $rc"
expect "$T/flood.con" "PEPTEST flood ok opened=64 refused=2000 other=0" \
    "64 connections held, 2000 beyond the cap refused"
expect "$T/flood.con" "PEPTEST echo ok 4096" \
    "after the flood the next request is answered"
diag "$(grep 'PEPTEST flood' "$T/flood.con" | tail -1)"
n=$(grep -c "refusing more" "$T/flood.out")
[ "$n" -eq 1 ] && ok "the cap is logged once for the burst" ||
    not_ok "the cap logged $n times"

# ---- lifecycle with the real QEMU ---------------------------------------
# A running VM holds its disk: a second pep-run on it is refused. SIGTERM
# asks the guest to power down over QMP; this busybox guest has no ACPI
# handler, so after --stop-timeout pep-run stops QEMU itself.
"$RUN" --accel tcg --disk "$T/disk.raw" --memory 256M \
    --kernel "$G/vmlinuz" --initrd "$G/initrd.img" \
    --append "console=hvc0 quiet pep.steps=hold:300" --vsock none \
    --stop-timeout 2 --console-log "$T/life.con" >"$T/life.out" 2>&1 &
lp=$!
i=0
while ! grep -q "PEPTEST hold" "$T/life.con" 2>/dev/null &&
    [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
expect "$T/life.con" "PEPTEST hold" "lifecycle guest is up"
"$RUN" --accel tcg --disk "$T/disk.raw" --kernel "$G/vmlinuz" \
    --initrd "$G/initrd.img" --vsock none >"$T/life2.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] && grep -q "in use" "$T/life2.out" &&
    ok "a booted disk is locked: a second pep-run is refused" ||
    { not_ok "disk lock with a real QEMU (rc $rc)"; sed 's/^/#   /' \
    "$T/life2.out"; }
t0=$(date +%s)
kill -TERM $lp
wait $lp
rc=$?
el=$(($(date +%s) - t0))
[ "$rc" -eq 0 ] && ok "SIGTERM: pep-run exits 0 after stopping QEMU" ||
    { not_ok "SIGTERM: rc $rc"; sed 's/^/#   /' "$T/life.out" | tail -5; }
check "SIGTERM asked the guest to power down over QMP" \
    grep -q "power down" "$T/life.out"
check "SIGTERM: stopped within --stop-timeout plus the kill grace" \
    test "$el" -le 12
# ("[q]emu": the pattern must not match a command line holding itself)
if pgrep -f "[q]emu-system.*file=$T/disk.raw" >/dev/null; then
	not_ok "a QEMU is still running on the disk"
else
	ok "no QEMU is left running on the disk"
fi
done_testing
