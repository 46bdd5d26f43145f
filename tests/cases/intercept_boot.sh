#!/bin/sh
# pexi-boot as OpenRC runs it: Debian's openrc (openrc, rc-service,
# supervise-daemon) in a scratch root, an overlay of / in the case's own
# mount, network and pid namespaces with its own /dev, /run, /etc/init.d
# and runlevels, booted through sysinit, boot and default. pexi-boot
# starts pexi-bridge, Firefox and the runner, each supervised; the runner
# visits what /etc/pexi/config.json lists through pepd (outside the root,
# in the same network namespace); status and stop work; a runner killed
# with SIGKILL (its BiDi session left open in Firefox) is started again
# and restarts Firefox to get a session; a runner stopped cleanly
# reconnects to the same Firefox; without Node.js start refuses, saying so.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/intercept-tools/intercept-lib.sh"
ix_reexec "$@"
case $BUILD in *asan*)
	skip "the service is checked once, in the plain build's pass"
	done_testing
	exit 0 ;;
esac
ix_need "$FIREFOX"
G=$TOP/build/guest
for c in openrc rc-service supervise-daemon; do
	command -v $c >/dev/null && continue
	skip "no $c (Debian's openrc)"; done_testing; exit 0
done
if [ ! -x "$G/x86_64/pexi-bridge" ]; then
	skip "no guest files (make guest)"; done_testing; exit 0
fi
ix_ns_setup

# ---- the scratch root ---------------------------------------------------
# Nothing of the host is mounted into it but / itself, read-only below
# the overlay: its /dev is a tmpfs with the few nodes Firefox needs.
R=$T/ovl/root
mount --make-rprivate /
mkdir -p "$T/ovl"
mount -t tmpfs none "$T/ovl"
mkdir "$T/ovl/up" "$T/ovl/work" "$R"
mount -t overlay overlay \
    -o "lowerdir=/,upperdir=$T/ovl/up,workdir=$T/ovl/work" "$R"
if [ -z "$T" ] || ! mountpoint -q "$R"; then
	not_ok "the scratch root is mounted (overlay of /)"; done_testing; exit 1
fi
mount -t proc proc "$R/proc"
for d in dev run tmp; do mount -t tmpfs -o mode=755 none "$R/$d"; done
chmod 1777 "$R/tmp"
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" \
    "tty 5 0"; do
	set -- $n
	mknod -m 666 "$R/dev/$1" c "$2" "$3"
done
mkdir "$R/dev/shm" "$R/dev/pts"
mount -t tmpfs -o mode=1777 none "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
rm -rf "$R/etc/init.d" "$R/etc/runlevels" "$R/etc/conf.d"
mkdir -p "$R/etc/init.d" "$R/etc/conf.d" "$R/etc/pexi" \
    "$R/usr/local/lib/pexi" "$R/usr/local/bin"
for l in sysinit boot default shutdown; do
	mkdir -p "$R/etc/runlevels/$l"
done
ix_hosts >"$R/etc/hosts"
echo "nameserver 127.0.0.1" >"$R/etc/resolv.conf"
# What pep-bake installs (bake/pexi.c), from the guest directory.
install -m 755 "$G/x86_64/pexi-bridge" "$R/usr/local/bin/pexi-bridge"
cp -R "$G/intercept" "$R/usr/local/lib/pexi/"
install -m 755 "$G/pexi-boot.initd" "$R/etc/init.d/pexi-boot"
install -m 644 "$G/pexi-boot.confd" "$R/etc/conf.d/pexi-boot"
ln -s /etc/init.d/pexi-boot "$R/etc/runlevels/default/pexi-boot"
# The image's localmount (pexi-boot needs it), with nothing to mount here.
printf '#!/sbin/openrc-run\ndescription="local filesystems (test)"\n%s\n' \
    'start() { :; }' >"$R/etc/init.d/localmount"
chmod 755 "$R/etc/init.d/localmount"
ln -s /etc/init.d/localmount "$R/etc/runlevels/boot/localmount"
# The test's settings: pepd over TCP instead of vsock, Debian's Firefox.
printf '%s\n' \
    'pexi_bridge_opts="--listen tcp:127.0.0.1:4040 --upstream tcp:127.0.0.1:5001"' \
    "pexi_firefox=$FIREFOX" >>"$R/etc/conf.d/pexi-boot"
echo '{"visits": [{"url": "http://www.a.test/", "wait_for": "#done"}]}' \
    >"$R/etc/pexi/config.json"

in_root() { chroot "$R" "$@"; }
RES=$R/var/lib/pexi/results.jsonl
LOGS=$R/var/log/pexi
dones() { grep -c '"event":"done"' "$RES" 2>/dev/null || echo 0; }
dones_at_least() { [ "$(dones)" -ge "$1" ]; }
# The pid supervise-daemon runs for a daemon (bridge, firefox, runner).
child_of() { cat "$R/run/openrc/options/pexi-$1/child_pid" 2>/dev/null; }
boot_logs() {
	for _f in "$LOGS"/*.log; do
		[ -s "$_f" ] || continue
		diag "--- $(basename "$_f")"
		tail -8 "$_f" | sed 's/^/#   /'
	done
}

ix_site
allow=$(ix_allow | sed 's/\([^ ]*\)/"\1"/g; s/ /, /g')
printf '{"listen": ["tcp:127.0.0.1:5001"],
 "audit": {"path": "%s", "fsync": "none"},
 "policy": {"allow": [%s], "allow_private": ["127.0.0.0/8"]}}\n' \
    "$T/audit.jsonl" "$allow" >"$T/pepd.json"
"$PEPD" --config "$T/pepd.json" 2>"$T/pepd.log" &
wait_for 30 listening 5001

# ---- boot ---------------------------------------------------------------
for l in sysinit boot default; do
	in_root openrc "$l" >"$T/openrc.$l" 2>&1
done
like "openrc default starts pexi-boot's three daemons" \
    "$(cat "$T/openrc.default")" 'Starting pexi runner'
is "rc-status: pexi-boot started" \
    "$(in_root rc-status default | grep -o 'pexi-boot.*' | tr -s ' ')" \
    "pexi-boot [ started ]"
wait_for 90 dones_at_least 1
is "the runner visited the configured page through pepd" \
    "$(jq -r 'select(.event == "visit") | .text' "$RES" |
    grep -o 'sum=[0-9]*')" "sum=54"
has_audit "... audited by pepd" GET http://www.a.test/data.json allow 200
check "a screenshot under /var/lib/pexi" \
    test -s "$R/var/lib/pexi/screenshot.png"
for d in bridge firefox runner; do
	check "$d logs to /var/log/pexi/$d.log" test -s "$LOGS/$d.log"
done
out=$(in_root rc-service pexi-boot status 2>&1)
is "status: exit 0" "$?" 0
like "status: started" "$out" 'status: started'
is "status: each daemon supervised" \
    "$(printf '%s\n' "$out" | grep -c 'supervised (supervisor pid')" 3

# ---- a killed runner ----------------------------------------------------
node1=$(child_of runner)
ff1=$(cat "$R/run/pexi/firefox.child" 2>/dev/null)
like "the runner is node" "$(tr '\0' ' ' <"/proc/$node1/cmdline")" \
    '^[^ ]*node [^ ]*/pexi-intercept.js'
kill -KILL "$node1"
wait_for 90 dones_at_least 2
node2=$(child_of runner)
ff2=$(cat "$R/run/pexi/firefox.child" 2>/dev/null)
check "a runner killed with SIGKILL is started again" \
    test -n "$node2" -a "$node2" != "$node1"
like "... finds Firefox holding the dead runner's session and restarts it" \
    "$(cat "$LOGS/runner.log")" 'stale WebDriver BiDi session.*restarting'
check "... Firefox is started again by its supervisor" \
    test -n "$ff2" -a "$ff2" != "$ff1"
is "... and the visits run again" "$(dones)" 2
in_root rc-service pexi-boot restart_runner >"$T/restart.out" 2>&1
wait_for 90 dones_at_least 3
is "restart_runner: the runner, stopped cleanly, reconnects to the same Firefox" \
    "$(dones) $(cat "$R/run/pexi/firefox.child")" "3 $ff2"

# ---- stop ---------------------------------------------------------------
in_root rc-service pexi-boot stop >"$T/stop.out" 2>&1
is "stop: exit 0" "$?" 0
wait_for 10 sh -c '! pgrep -f "firefox-esr|pexi-intercept" >/dev/null'
is "stop: no bridge, Firefox, runner or supervisor left" \
    "$(pgrep -f 'pexi-bridge|firefox-esr|pexi-intercept|supervise-daemon' |
    wc -l)" 0
in_root rc-service pexi-boot status >/dev/null 2>&1
is "status after stop: exit 3 (stopped)" "$?" 3

# ---- no Node.js ---------------------------------------------------------
echo 'pexi_node=/nonexistent/node' >>"$R/etc/conf.d/pexi-boot"
out=$(in_root rc-service pexi-boot start 2>&1)
is "without Node.js start fails" "$?" 1
like "... saying what is missing" "$out" 'no Node.js.*nodejs package'
is "... and starts nothing" \
    "$(pgrep -f 'pexi-bridge|supervise-daemon' | wc -l)" 0

[ "$_fail" -eq 0 ] || boot_logs
[ -z "${PEP_KEEP:-}" ] || cp -r "$LOGS" "$RES" "$T/" 2>/dev/null
done_testing
