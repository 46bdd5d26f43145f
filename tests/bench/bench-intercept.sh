#!/bin/sh
# Benchmark (not a test): page-load time of a page with 50 images (another
# origin) in Debian's firefox-esr, started as pexi-boot starts it
# (pexi-firefox), loaded
#   directly from the origin (nginx), and
#   with every request intercepted by the runner's code and fetched by
#   pepd through pexi-bridge (TCP 127.0.0.1:4040 -> pepd's Unix socket),
# in interleaved rounds (tests/intercept-tools/load-timer.mjs), inside
# private mount, network and pid namespaces. Prints the medians, their
# ratio, and where a mediated request's time goes: the runner, the bridge
# and its sockets, pepd, the origin. Target: mediated <= 1.5x direct.
#   ROUNDS=15 CONNS=8 sh tests/bench/bench-intercept.sh
if [ -z "${IX_NS:-}" ]; then
	IX_NS=1 exec unshare -m -n -p -f --mount-proc sh "$0" "$@"
fi
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-15}
CONNS=${CONNS:-8}
N=50
RUNNER=${PEP_INTERCEPT_DIR:-$TOP/build/guest/intercept}
T=$(mktemp -d /tmp/pep-bench.XXXXXX)
chmod 755 "$T"
# pid 1 of the namespace: everything it started goes with it.
trap 'kill -KILL -1 2>/dev/null; sleep 0.2; rm -rf --one-file-system "$T"' \
    EXIT

for f in "$RUNNER/node_modules/puppeteer-core/package.json" \
    "$TOP/$BUILD/pepd" "$TOP/$BUILD/pexi-bridge" /usr/bin/firefox-esr; do
	[ -e "$f" ] || { echo "bench-intercept: $f missing (make all" \
	    "guest; apt-get install firefox-esr)" >&2; exit 1; }
done
command -v nginx >/dev/null || { echo "bench-intercept: nginx missing" \
    "(apt-get install nginx-light)" >&2; exit 1; }

ip link set lo up
printf '127.0.0.1 localhost\n127.0.0.2 www.a.test\n127.0.0.3 cdn.b.test\n%s\n' \
    "127.0.1.1 $(hostname)" >"$T/hosts"
echo "nameserver 127.0.0.1" >"$T/resolv.conf"
mount --bind "$T/hosts" /etc/hosts
mount --bind "$T/resolv.conf" /etc/resolv.conf
HOME=$T
export HOME

wait_port() {	# port
	for _i in $(seq 200); do
		ss -ltnH "sport = :$1" | grep -q . && return 0
		sleep 0.05
	done
	echo "bench-intercept: port $1 never opened" >&2; exit 1
}

# ---- the page: 50 distinct 32x32 PNGs of noise (3 KiB each) -------------
mkdir -p "$T/www/i"
python3 - "$T/www" "$N" "$ROUNDS" <<'EOF'
import os, random, struct, sys, zlib
www, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(1)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + \
        struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
for k in range(n):
    raw = b"".join(b"\0" + rnd.randbytes(96) for _ in range(32))
    png = (b"\x89PNG\r\n\x1a\n" +
           chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b""))
    open(os.path.join(www, "i", "%d.png" % k), "wb").write(png)
for r in ["w0", "w1"] + [str(i) for i in range(rounds)]:
    for mode in ("direct", "mediated"):
        imgs = "".join('<img src="http://cdn.b.test/i/%d.png?%s-%s">' %
                       (k, mode, r) for k in range(n))
        open(os.path.join(www, "%s-%s.html" % (mode, r)), "w").write(
            "<!doctype html><title>bench</title>" + imgs)
EOF

# ---- origin, pepd, bridge, Firefox ----------------------------------------
cat >"$T/nginx.conf" <<EOF
worker_processes 1;
pid $T/nginx.pid;
error_log $T/nginx.err;
events { worker_connections 1024; }
http {
  types { text/html html; image/png png; }
  log_format t '\$request_time';
  access_log $T/origin.log t;
  keepalive_requests 100000;
  server { listen 80; root $T/www; }
}
EOF
nginx -c "$T/nginx.conf" -g 'daemon off;' &
wait_port 80
cat >"$T/pepd.json" <<EOF
{"listen": ["unix:$T/pepd.sock"],
 "audit": {"path": "$T/audit.jsonl", "fsync": "none"},
 "policy": {"allow": ["www.a.test", "cdn.b.test"],
            "allow_private": ["127.0.0.0/8"]}}
EOF
"$TOP/$BUILD/pepd" --config "$T/pepd.json" 2>"$T/pepd.log" &
for _i in $(seq 100); do [ -S "$T/pepd.sock" ] && break; sleep 0.05; done
"$TOP/$BUILD/pexi-bridge" -q --listen tcp:127.0.0.1:4040 \
    --upstream "unix:$T/pepd.sock" &
wait_port 4040
"$RUNNER/pexi-firefox" -d "$T/firefox" >"$T/firefox.log" 2>&1 &
wait_port 9222

echo "bench-intercept: $ROUNDS rounds each way, a page with $N images," \
    "up to $CONNS pepd connections"
node "$TOP/tests/intercept-tools/load-timer.mjs" "$RUNNER" \
    "http://www.a.test/" "$ROUNDS" "$CONNS" >"$T/loads.jsonl" ||
    { echo "bench-intercept: the driver failed" >&2; exit 1; }

python3 - "$T" "$N" <<'EOF'
import json, statistics as st, sys
T, n = sys.argv[1], int(sys.argv[2])
loads = [json.loads(l) for l in open(T + "/loads.jsonl")]
med = lambda xs: st.median(xs) if xs else float("nan")
by = {m: [r for r in loads if r["mode"] == m] for m in ("direct", "mediated")}
for m, rs in by.items():
    bad = [r for r in rs if r["images"] != n]
    if bad:
        print("bench-intercept: %s: %d loads missed images" % (m, len(bad)))
d = med([r["load_ms"] for r in by["direct"]])
m = med([r["load_ms"] for r in by["mediated"]])
print("page load (navigation start to load end), median of %d:" %
      len(by["direct"]))
print("  direct    %7.1f ms" % d)
print("  mediated  %7.1f ms" % m)
print("  ratio     %7.2fx (target <= 1.5x)" % (m / d))
print("  wall time of goto: direct %.1f ms, mediated %.1f ms" % (
    med([r["wall_ms"] for r in by["direct"]]),
    med([r["wall_ms"] for r in by["mediated"]])))
per = lambda k: med([r[k] / r["mediated"] for r in by["mediated"]
                     if r["mediated"]])
audit = [json.loads(l) for l in open(T + "/audit.jsonl")]
pepd_total = med([a["total_ms"] for a in audit if a.get("status") == 200])
origin = med([float(x) * 1000 for x in open(T + "/origin.log")])
rtt = per("pepd_ms")
print("a mediated request, in order (ms, medians; %d requests a page, "
      "overlapping):" % med([r["mediated"] for r in by["mediated"]]))
print("  Firefox's beforeRequestSent to the runner's handler %7.2f" %
      per("event_ms"))
print("  runner: the event to a pepd frame, the answer back  %7.2f" %
      per("runner_ms"))
print("  bridge, sockets, queues (round trip - pepd's time)  %7.2f" %
      (rtt - pepd_total))
print("  pepd (its total_ms, the origin's time excluded)     %7.2f" %
      (pepd_total - origin))
print("  origin (nginx $request_time)                        %7.2f" % origin)
print("  provideResponse to Firefox's answer                 %7.2f" %
      per("ack_ms"))
EOF
