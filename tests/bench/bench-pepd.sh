#!/bin/sh
# pepd benchmark (not a test): on loopback inside a private network
# namespace, pep-load with 64 connections fetching a 1 KiB page
#   directly with libcurl, through pepd, and through Squid
# (dstdomain allowlist, no cache); prints requests/s ratios, the p50/p99
# latency pepd adds over direct, and pepd's RSS per idle connection.
# "Before": the same runs against another pepd, PEPD_BEFORE (a binary),
# or else built from PEPD_BEFORE_REV (default 5e3297e, the branch base
# before issue 13's privilege separation and audit precondition) when the
# repository has it; PEPD_BEFORE=none skips it. Each mode runs ROUNDS
# times (3), interleaved, and the medians are reported: the machine may
# be shared.
# Needs nginx-light (origin; falls back to origin.py) and squid:
#   apt-get install nginx-light squid
# Targets: pepd >= 1.5x Squid's requests/s, p99 added <= 1 ms,
# <= 32 KiB per idle connection.
#   N=20000 C=64 ROUNDS=3 sh tests/bench/bench-pepd.sh
if [ -z "${PEPD_NS:-}" ]; then
	PEPD_NS=1 exec unshare -m -n sh "$0" "$@"
fi
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
N=${N:-20000}
C=${C:-64}
ROUNDS=${ROUNDS:-3}
PEPD_BEFORE_REV=${PEPD_BEFORE_REV:-5e3297e}
T=$(mktemp -d /tmp/pep-bench.XXXXXX)
chmod 755 "$T"
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; sleep 0.3; rm -rf "$T"' EXIT
ulimit -n 8192

ip link set lo up
printf '127.0.0.1 localhost origin.test\n' >"$T/hosts"
echo "nameserver 127.0.0.1" >"$T/resolv.conf"
mount --bind "$T/hosts" /etc/hosts
mount --bind "$T/resolv.conf" /etc/resolv.conf

wait_port() {	# port
	for _i in $(seq 100); do
		bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: port $1 never opened" >&2; exit 1
}

# ---- origin -------------------------------------------------------------
mkdir -p "$T/www"
head -c 1024 /dev/zero | tr '\0' x >"$T/www/page"
if command -v nginx >/dev/null 2>&1; then
	cat >"$T/nginx.conf" <<-EOF
	worker_processes 1;
	pid $T/nginx.pid;
	error_log $T/nginx.err;
	events { worker_connections 4096; }
	http {
	  access_log off;
	  keepalive_requests 1000000;
	  server { listen 127.0.0.1:18080; root $T/www; }
	}
	EOF
	nginx -c "$T/nginx.conf" -g 'daemon off;' &
	PIDS="$PIDS $!"; ORIGIN=nginx
else
	python3 "$TOP/tests/pepd-tools/origin.py" --port 18080 &
	PIDS="$PIDS $!"; ORIGIN=origin.py
fi
wait_port 18080
URL=http://origin.test:18080/page

# ---- pepd -----------------------------------------------------------------
# as deployed: the parent drops to "user", the fetcher is sandboxed
cat >"$T/pepd.json" <<EOF
{
  "user": "nobody",
  "audit": {"path": "$T/audit.jsonl", "fsync": "none"},
  "policy": {"allow": ["origin.test"], "allow_private": ["127.0.0.0/8"]},
  "limits": {"max_concurrent": 4096}
}
EOF
"$TOP/$BUILD/pepd" --config "$T/pepd.json" --listen tcp:127.0.0.1:5001 -q &
PEPD_PID=$!; PIDS="$PIDS $PEPD_PID"
wait_port 5001

# ---- pepd before ------------------------------------------------------------
BEFORE=${PEPD_BEFORE:-}
if [ -z "$BEFORE" ] && git -C "$TOP" cat-file -e "$PEPD_BEFORE_REV^{commit}" \
    2>/dev/null; then
	mkdir -p "$T/before"
	git -C "$TOP" archive "$PEPD_BEFORE_REV" | tar -x -C "$T/before" &&
	    make -C "$T/before" -j2 build/pepd >"$T/before.log" 2>&1 &&
	    BEFORE=$T/before/build/pepd
	[ -n "$BEFORE" ] || echo "bench: building $PEPD_BEFORE_REV failed" >&2
fi
[ "$BEFORE" = none ] && BEFORE=""
if [ -n "$BEFORE" ]; then
	cat >"$T/pepd-before.json" <<-EOF
	{
	  "audit": {"path": "$T/audit-before.jsonl", "fsync": "none"},
	  "policy": {"allow": ["origin.test"], "allow_private": ["127.0.0.0/8"]},
	  "limits": {"max_concurrent": 4096}
	}
	EOF
	"$BEFORE" --config "$T/pepd-before.json" --listen tcp:127.0.0.1:5003 \
	    -q &
	PIDS="$PIDS $!"
	wait_port 5003
fi

# ---- squid ------------------------------------------------------------------
SQUID=""
if command -v squid >/dev/null 2>&1; then
	chmod 777 "$T"
	cat >"$T/squid.conf" <<-EOF
	http_port 127.0.0.1:3128
	acl allowed dstdomain origin.test
	http_access allow allowed
	http_access deny all
	cache deny all
	cache_mem 0 MB
	access_log stdio:$T/squid-access.log
	cache_log $T/squid-cache.log
	pid_filename $T/squid.pid
	coredump_dir $T
	dns_nameservers 127.0.0.1
	shutdown_lifetime 1 seconds
	max_filedescriptors 8192
	visible_hostname pep-bench
	EOF
	squid -N -f "$T/squid.conf" &
	PIDS="$PIDS $!"; SQUID=1
	wait_port 3128
fi

LOAD="$TOP/$BUILD/pep-load"
run() {	# label args...
	_l=$1; shift
	"$LOAD" -u "$URL" -C "$C" -n "$N" "$@" >>"$T/out-$_l.json"
	tail -1 "$T/out-$_l.json"
}
echo "# origin $ORIGIN, $N requests, $C connections, $(nproc) CPUs," \
    "$ROUNDS rounds; before: ${BEFORE:-none}"
for _w in "--direct" "-c tcp:127.0.0.1:5001" \
    ${BEFORE:+"-c tcp:127.0.0.1:5003"} \
    ${SQUID:+"--proxy http://127.0.0.1:3128"}; do
	# shellcheck disable=SC2086
	"$LOAD" -u "$URL" -C "$C" -n 2000 $_w >/dev/null	# warm-up
done
_r=0
while [ $_r -lt "$ROUNDS" ]; do
	_r=$((_r + 1))
	run direct --direct
	run pepd -c tcp:127.0.0.1:5001
	[ -n "$BEFORE" ] && run before -c tcp:127.0.0.1:5003
	[ -n "$SQUID" ] && run squid --proxy http://127.0.0.1:3128
done
# Added latency unloaded: one connection, closed loop.
_C=$C _N=$N
C=1 N=3000
_r=0
while [ $_r -lt "$ROUNDS" ]; do
	_r=$((_r + 1))
	run direct1 --direct
	run pepd1 -c tcp:127.0.0.1:5001
	[ -n "$BEFORE" ] && run before1 -c tcp:127.0.0.1:5003
done
C=$_C N=$_N

# ---- RSS per idle connection ------------------------------------------------
# A fresh pepd, so the heap left by the load above does not hide growth.
"$TOP/$BUILD/pepd" --config "$T/pepd.json" --listen tcp:127.0.0.1:5002 -q &
PEPD_PID=$!; PIDS="$PIDS $PEPD_PID"
wait_port 5002
sleep 0.3
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$PEPD_PID/status"; }
r0=$(rss)
mkfifo "$T/hold"
"$LOAD" -c tcp:127.0.0.1:5002 --idle 1000 <"$T/hold" >"$T/idle.out" &
IDLE=$!; PIDS="$PIDS $IDLE"
exec 4>"$T/hold"
while ! grep -q ready "$T/idle.out" 2>/dev/null; do sleep 0.1; done
sleep 0.5
r1=$(rss)
exec 4>&-
wait $IDLE

python3 - "$T" "$r0" "$r1" <<'EOF'
import json, os, statistics, sys
t, r0, r1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    p = os.path.join(t, "out-%s.json" % name)
    if not os.path.exists(p):
        return None
    runs = [json.loads(l) for l in open(p) if l.strip()]
    return {k: statistics.median(r[k] for r in runs)
            for k in ("rps", "p50_ms", "p99_ms")}
d, d1, s = load("direct"), load("direct1"), load("squid")
print("(medians of the rounds)")
for label, p, p1 in (("before", load("before"), load("before1")),
                     ("after ", load("pepd"), load("pepd1"))):
    if p is None:
        continue
    line = "%s: pepd %.0f req/s, pepd/direct %.2f" % (label, p["rps"],
                                                      p["rps"] / d["rps"])
    if s is not None:
        line += ", pepd/squid %.2f (target >= 1.5)" % (p["rps"] / s["rps"])
    print(line)
    print("        added latency at %d conns (saturated): p50 %.3f ms, "
          "p99 %.3f ms" % (int(os.environ.get("C", "64")),
                           p["p50_ms"] - d["p50_ms"],
                           p["p99_ms"] - d["p99_ms"]))
    print("        added latency at 1 conn: p50 %.3f ms, p99 %.3f ms "
          "(target p99 <= 1 ms)" % (p1["p50_ms"] - d1["p50_ms"],
                                    p1["p99_ms"] - d1["p99_ms"]))
if s is not None:
    print("squid : %.0f req/s" % s["rps"])
print("RSS per idle connection: %.2f KiB  (%d -> %d KiB for 1000; "
      "target <= 32)" % ((r1 - r0) / 1000.0, r0, r1))
EOF