#!/bin/sh
# tests/flow/flow-run.sh -d DISK -o DIR [options]: one run of the whole
# flow on a baked disk, as `make demo`, tests/cases/flow_browser.sh and
# tests/bench/bench-flow.sh do it:
#
#   host, in a network namespace of its own (only loopback; the demo's
#   names resolve to 127.0.0.1, DNS to nowhere):
#     site.py    the origins (www.demo.test, img.demo.test, tracker.test)
#     pepd       on a Unix socket; allows www.demo.test and img.demo.test
#     pep-run    boots DISK under UEFI (KVM when it works, else TCG), no
#                NIC; the guest's vsock port 5000 is joined to pepd
#   guest: pexi-boot starts pexi-bridge, Firefox and the runner, which
#     visits what /etc/pexi/config.json says and, with "poweroff_after",
#     powers the guest off; pep-run then exits.
#
# The guest has a deadline (-t): past it pep-run is sent SIGTERM (an ACPI
# powerdown, then QEMU is killed after its --stop-timeout). Then what the
# guest wrote is copied out of DISK (debugfs: results.jsonl, the
# screenshot, /var/log/pexi/*.log) and the root is checked with
# e2fsck -n (a clean poweroff leaves it clean).
#
# DIR gets: console.log (hvc0, each line with the seconds since pep-run
# started: stamp.py), pep-run.err, pepd.json, pepd.log, audit.jsonl,
# site.jsonl (what reached the origins), results.jsonl, screenshot.png,
# runner.log, firefox.log, bridge.log, fsck.txt, timeline.txt and
# timeline.json (timeline.py), and one-word files: rc (pep-run's exit
# status), accel (kvm or tcg), timedout (yes or no), t0, end (seconds).
# Progress goes to standard output. Exit 0 if the run could be made and
# observed (whatever the guest did), 1 if not (with the reason).
#
# Options:
#   -b BUILD     where pep-run and pepd are (default build)
#   -a ACCEL     auto (default), kvm or tcg
#   -t SECONDS   the guest's deadline (default 600)
#   -m SIZE      guest memory (default 2G)
#   -A "HOSTS"   pepd's allow list (default "www.demo.test img.demo.test")
#   -q           no progress lines from the guest's console
set -u
FLOW=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$FLOW/../.." && pwd)
DISK="" DIR="" BUILD=build ACCEL=auto DEADLINE=600 MEM=2G QUIET=""
ALLOW="www.demo.test img.demo.test"

die() { echo "flow-run: $*" >&2; exit 1; }

# A network namespace of our own, with our own mounts: the origins, pepd
# and pep-run see only loopback; /etc/hosts is ours.
if [ -z "${FLOW_NS:-}" ]; then
	[ "$(id -u)" -eq 0 ] || die "must run as root (it makes a network" \
	    "namespace for the origins and pepd: unshare -m -n)"
	unshare -m -n true 2>/dev/null || die "unshare -m -n does not work" \
	    "here (a container without CAP_SYS_ADMIN?)"
	FLOW_NS=1 exec unshare -m -n sh "$0" "$@"
fi

while getopts d:o:b:a:t:m:A:q opt; do
	case $opt in
	d) DISK=$OPTARG ;;
	o) DIR=$OPTARG ;;
	b) BUILD=$OPTARG ;;
	a) ACCEL=$OPTARG ;;
	t) DEADLINE=$OPTARG ;;
	m) MEM=$OPTARG ;;
	A) ALLOW=$OPTARG ;;
	q) QUIET=1 ;;
	*) die "usage: flow-run.sh -d DISK -o DIR [-b BUILD] [-a ACCEL]" \
	    "[-t SECONDS] [-m SIZE] [-A HOSTS] [-q]" ;;
	esac
done
[ -n "$DISK" ] && [ -n "$DIR" ] || die "-d DISK and -o DIR are required"
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
case $DISK in /*) ;; *) DISK=$(pwd)/$DISK ;; esac
case $DIR in /*) ;; *) DIR=$(pwd)/$DIR ;; esac

RUN=$BUILD/pep-run
PEPD=$BUILD/pepd
for x in "$RUN" "$PEPD"; do
	[ -x "$x" ] || die "$x is missing: build it first (make)"
done
[ -f "$DISK" ] || die "$DISK: no such disk"
mkdir -p "$DIR"
rm -f "$DIR"/*.log "$DIR"/*.jsonl "$DIR"/screenshot.png "$DIR"/pepd.sock \
    "$DIR"/con.fifo
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 1' INT TERM

wait_for() {	# seconds command...
	_w=$(($1 * 10)); shift
	while ! "$@" >/dev/null 2>&1; do
		_w=$((_w - 1))
		[ "$_w" -gt 0 ] || return 1
		sleep 0.1
	done
}

# ---- the host side ----------------------------------------------------
ip link set lo up
printf '127.0.0.1\tlocalhost www.demo.test img.demo.test tracker.test\n' \
    >"$DIR/hosts"
echo "nameserver 127.0.0.1" >"$DIR/resolv.conf"
mount --make-rprivate / 2>/dev/null
mount --bind "$DIR/hosts" /etc/hosts || die "cannot bind-mount /etc/hosts"
mount --bind "$DIR/resolv.conf" /etc/resolv.conf

python3 "$FLOW/site.py" --port 80 --log "$DIR/site.jsonl" \
    --readyfile "$DIR/site.ready" 2>"$DIR/site.err" &
pids="$pids $!"
rm -f "$DIR/site.ready"
wait_for 20 test -e "$DIR/site.ready" ||
    die "the origin did not start: $(tail -3 "$DIR/site.err")"
rm -f "$DIR/site.ready"

allow=$(printf '"%s", ' $ALLOW)
cat >"$DIR/pepd.json" <<EOF
{
  "listen": ["unix:$DIR/pepd.sock"],
  "audit": {"path": "$DIR/audit.jsonl", "fsync": "none"},
  "policy": {"allow": [${allow%, }], "allow_private": ["127.0.0.0/8"]}
}
EOF
: >"$DIR/audit.jsonl"
"$PEPD" --config "$DIR/pepd.json" 2>"$DIR/pepd.log" &
PEPD_PID=$!
pids="$pids $PEPD_PID"
wait_for 20 test -S "$DIR/pepd.sock" ||
    die "pepd did not start: $(tail -3 "$DIR/pepd.log")"
echo "flow: origins on 127.0.0.1:80 (www.demo.test, img.demo.test," \
    "tracker.test); pepd allows: $ALLOW"

# ---- the guest ----------------------------------------------------------
# pep-run says which accelerator it takes and, for TCG, why.
accel=$("$RUN" --disk "$DISK" --efi --accel "$ACCEL" --print-cmdline \
    2>"$DIR/accel.why" | sed -n 's/.*accel=\([a-z]*\).*/\1/p')
echo "${accel:-unknown}" >"$DIR/accel"
sed -n 's/^pep-run: accelerator: /flow: /p' "$DIR/accel.why"
echo "flow: pep-run --efi, ${accel:-unknown}, $MEM, guest deadline" \
    "${DEADLINE}s"
show='OpenRC .* is starting up|EXT4-fs \([a-z0-9]+\): mounted filesystem'
show="$show|Starting pexi|pexi-boot:|pexi-intercept:|INIT: Switching"
show="$show|reboot: Power down|Kernel panic"
[ -z "$QUIET" ] || show='^$'
mkfifo "$DIR/con.fifo"
t0=$(date +%s.%N)
echo "$t0" >"$DIR/t0"
python3 "$FLOW/stamp.py" --t0 "$t0" --log "$DIR/console.log" \
    --show "$show" --prefix "  guest " <"$DIR/con.fifo" &
STAMP_PID=$!
"$RUN" --efi --accel "$ACCEL" --disk "$DISK" --memory "$MEM" --cpus 2 \
    --pepd-socket "$DIR/pepd.sock" --stop-timeout 30 \
    >"$DIR/con.fifo" 2>"$DIR/pep-run.err" &
RUN_PID=$!
timedout=no
s0=$(date +%s)
while kill -0 "$RUN_PID" 2>/dev/null; do
	if [ "$timedout" = no ] &&
	    [ $(($(date +%s) - s0)) -ge "$DEADLINE" ]; then
		timedout=yes
		echo "flow: the guest is still up after ${DEADLINE}s:" \
		    "stopping it (SIGTERM to pep-run: ACPI powerdown)"
		kill -TERM "$RUN_PID" 2>/dev/null
	fi
	sleep 0.2
done
wait "$RUN_PID"
rc=$?
end=$(awk -v a="$(date +%s.%N)" -v b="$t0" \
    'BEGIN { printf "%.3f", a - b }')
wait "$STAMP_PID" 2>/dev/null
echo "$rc" >"$DIR/rc"
echo "$timedout" >"$DIR/timedout"
echo "$end" >"$DIR/end"
echo "flow: pep-run exited $rc after $(printf '%.1f' "$end")s"
# pepd writes its last audit lines as it stops.
kill -TERM "$PEPD_PID" 2>/dev/null
wait "$PEPD_PID" 2>/dev/null
echo $? >"$DIR/pepd.rc"
cleanup
pids=""

# ---- what the guest left on its disk -------------------------------------
off=""
for s in $(sgdisk -p "$DISK" 2>/dev/null |
    awk '/^ +[0-9]+ +[0-9]+ +[0-9]+/ { print $2 }') 0; do
	if debugfs -R 'stat /etc/os-release' "$DISK?offset=$((s * 512))" \
	    >/dev/null 2>&1; then
		off=$((s * 512))
		break
	fi
done
[ -n "$off" ] || die "$DISK: no root filesystem found to read the results"
ROOT="$DISK?offset=$off"
debugfs -R 'dump /var/lib/pexi/results.jsonl '"$DIR/results.jsonl" \
    "$ROOT" >/dev/null 2>&1
debugfs -R 'dump /var/lib/pexi/screenshot.png '"$DIR/screenshot.png" \
    "$ROOT" >/dev/null 2>&1
for f in runner firefox bridge; do
	debugfs -R "dump /var/log/pexi/$f.log $DIR/$f.log" "$ROOT" \
	    >/dev/null 2>&1
done
e2fsck -fn "$ROOT" >"$DIR/fsck.txt" 2>&1
echo "e2fsck exit $?" >>"$DIR/fsck.txt"
for f in results.jsonl screenshot.png; do
	[ -s "$DIR/$f" ] || rm -f "$DIR/$f"
done

python3 "$FLOW/timeline.py" --console "$DIR/console.log" \
    --audit "$DIR/audit.jsonl" --t0 "$t0" --end "$end" >"$DIR/timeline.txt"
python3 "$FLOW/timeline.py" --console "$DIR/console.log" \
    --audit "$DIR/audit.jsonl" --t0 "$t0" --end "$end" --json \
    >"$DIR/timeline.json"
exit 0
