#!/bin/sh
# bench-vsock.sh: pep-run's userspace vsock (vhost-user back-end, guest
# under TCG) against TCP loopback on the host, same endpoint server.
# One run each: guest->host throughput (64 MiB) and 64-byte round trips.
# Then pep-run alone, with build/hostile as a guest far faster than a TCG
# one (its "perf" case: 20,000 round trips through an echo endpoint, 256
# MiB guest->host): the figures that move with pep-run's own code.
#   PEP_BENCH_BEFORE=PATH  the same runs with that pep-run first (e.g.
#                          the branch base's), printed as "before"
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
RUN=$TOP/${BUILD:-build}/pep-run
HOSTILE=$TOP/${BUILD:-build}/hostile
G=$TOP/build/fixtures/guest
T=$(mktemp -d /tmp/pep-bench.XXXXXX)
ep=
trap 'kill $ep 2>/dev/null; rm -rf "$T"' EXIT
SIZE=${PEP_BENCH_SIZE:-67108864}
RTT=${PEP_BENCH_RTT:-2000}
sh "$TOP/tests/runner/mkguest.sh" "$G" || exit 1
truncate -s 16M "$T/disk.raw"

bench_run() {	# LABEL PEP-RUN
	python3 "$TOP/tests/runner/endpoint.py" "$T/ep.sock" "$T/ep.log" &
	ep=$!
	sleep 0.5
	rm -f "$T/con"
	"$2" --accel tcg --disk "$T/disk.raw" --memory 512M --kernel \
	    "$G/vmlinuz" --initrd "$G/initrd.img" --console-log "$T/con" \
	    --append "console=hvc0 quiet pep.steps=bulk:$SIZE,rtt:$RTT" \
	    --pepd-socket "$T/ep.sock" || exit 1
	kill $ep
	vb=$(sed -n 's/.*PEPTEST bulk ok [0-9]* \([0-9.]*\) MiB.*/\1/p' \
	    "$T/con")
	vr=$(sed -n 's/.*PEPTEST rtt ok [0-9]* \([0-9.]*\) us.*/\1/p' "$T/con")
	echo "$1vsock (guest under TCG -> pep-run -> unix): ${vb:-?} MiB/s," \
	    "rtt ${vr:-?} us"
	[ -x "$HOSTILE" ] || return 0
	rm -f "$T/perf"
	HOSTILE_CASE=perf HOSTILE_OUT=$T/perf HOSTILE_EP=$T/hep.sock \
	    "$2" --accel tcg --vsock user --disk "$T/disk.raw" \
	    --qemu "$HOSTILE" --pepd-socket "$T/hep.sock" >/dev/null 2>&1
	echo "$1pep-run alone (build/hostile as the guest):" \
	    "$(sed -n 's/^# perf: //p' "$T/perf")"
}

[ -n "${PEP_BENCH_BEFORE:-}" ] && bench_run "before: " "$PEP_BENCH_BEFORE"
bench_run "${PEP_BENCH_BEFORE:+after:  }" "$RUN"
python3 "$TOP/tests/runner/endpoint.py" 39517 "$T/tcp.log" &
ep=$!
sleep 0.5
python3 - "$SIZE" "$RTT" >"$T/tcp" <<'PY'
import socket, sys, time
size, rtt = int(sys.argv[1]), int(sys.argv[2])
blk = bytes((((i % 251) * 131 + 7) % 251) for i in range(251)) * 261
s = socket.create_connection(("127.0.0.1", 39517))
s.sendall(b"BULK %d\n" % size)
t0, sent = time.monotonic(), 0
while sent < size:
    k = min(size - sent, 65511)
    off = sent % 251
    s.sendall(blk[off:off + k])
    sent += k
assert s.recv(64) == b"OK %d\n" % size
print("bulk %.2f" % (size / 1048576 / (time.monotonic() - t0)))
s = socket.create_connection(("127.0.0.1", 39517))
s.sendall(b"ECHO\n")
t0 = time.monotonic()
for _ in range(rtt):
    s.sendall(b"r" * 64)
    got = b""
    while len(got) < 64:
        got += s.recv(64 - len(got))
print("rtt %.1f" % ((time.monotonic() - t0) * 1e6 / rtt))
PY
tb=$(sed -n 's/^bulk //p' "$T/tcp")
tr=$(sed -n 's/^rtt //p' "$T/tcp")
echo "TCP loopback (host python client):          ${tb:-?} MiB/s, rtt ${tr:-?} us"
echo "ratio vsock/tcp: throughput $(echo "scale=3; ${vb:-0} / ${tb:-1}" | bc)," \
    "rtt $(echo "scale=1; ${vr:-0} / ${tr:-1}" | bc)x"
