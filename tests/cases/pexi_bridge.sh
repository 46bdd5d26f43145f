#!/bin/sh
# pexi-bridge: command line, then the relay suite (tests/tools-guest/
# bridge_peer.py: 500 concurrent echoes, 100 MiB each way, half-close,
# backpressure, refusing upstreams, signals) against $BUILD/pexi-bridge and,
# in the plain build pass, the static guest binaries (aarch64 under
# qemu-aarch64).
. "$(dirname "$0")/../lib.sh"

PB=$TOP/$BUILD/pexi-bridge
PEER=$TOP/tests/tools-guest/bridge_peer.py

# suite LABEL [suite options]: bridge_peer.py lines -> TAP.
suite() {
	_label=$1; shift
	python3 "$PEER" suite "$@" >"$PEP_TMP/suite.out" 2>&1
	_rc=$?
	while IFS= read -r _l; do
		case $_l in
		"PASS "*) ok "$_label: ${_l#PASS }" ;;
		"FAIL "*) not_ok "$_label: ${_l#FAIL }" ;;
		"SKIP "*) skip "$_label: ${_l#SKIP }" ;;
		"# "*) diag "$_label: ${_l#\# }" ;;
		*) diag "$_label: $_l" ;;
		esac
	done <"$PEP_TMP/suite.out"
	[ "$_rc" -eq 0 ] || not_ok "$_label: suite exited $_rc"
}

is_static() {
	readelf -l "$1" 2>/dev/null | grep -q 'LOAD' &&
	    ! readelf -l "$1" | grep -q 'INTERP'
}

if [ ! -x "$PB" ]; then
	not_ok "$PB not built"
	done_testing
	exit
fi

check "--help exits 0 and shows usage" sh -c "'$PB' --help | grep -q usage"
check "--version" sh -c "'$PB' --version | grep -q '^pexi-bridge [0-9]'"
for bad in "--bogus" "--upstream tcp:localhost:5000" "--upstream vsock:2" \
    "--listen udp:1.2.3.4:5" "--buffer-size 12" "extra-arg"; do
	# shellcheck disable=SC2086
	"$PB" $bad >/dev/null 2>&1
	rc=$?
	if [ "$rc" -eq 2 ]; then ok "usage error exits 2: $bad"; else
		not_ok "usage error exits 2: $bad (got $rc)"; fi
done
python3 -c 'import socket,time,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(5)' >"$PEP_TMP/busy" &
busy=$!
for _i in 1 2 3 4 5 6 7 8 9 10; do
	[ -s "$PEP_TMP/busy" ] && break
	sleep 0.2
done
"$PB" --listen "tcp:127.0.0.1:$(cat "$PEP_TMP/busy")" >/dev/null 2>&1
rc=$?
kill "$busy" 2>/dev/null
if [ "$rc" -eq 1 ]; then ok "listen address in use exits 1"; else
	not_ok "listen address in use exits 1 (got $rc)"; fi
if command -v groff >/dev/null 2>&1; then
	check "man page renders without warnings" sh -c \
	    "groff -man -ww -z '$TOP/guest-init/pexi-bridge.8' 2>&1 |
	    (! grep .)"
fi

case $BUILD in
*asan*) suite "$BUILD" --bridge "$PB" --no-rss ;;
*) suite "$BUILD" --bridge "$PB" ;;
esac

# The static guest binaries: once, in the plain build pass.
case $BUILD in *asan*)
	skip "static guest binaries: checked once, in the plain build's pass"
	done_testing; exit ;;
esac
G=$TOP/build/guest
need_built "$G/x86_64/pexi-bridge" "$G/aarch64/pexi-bridge"
check "x86_64 guest binary is static" is_static "$G/x86_64/pexi-bridge"
suite "static x86_64" --bridge "$G/x86_64/pexi-bridge"
if ! command -v qemu-aarch64 >/dev/null 2>&1; then
	skip "static aarch64: qemu-aarch64 missing (qemu-user)"
else
	check "aarch64 guest binary is static" is_static "$G/aarch64/pexi-bridge"
	suite "static aarch64 (qemu-user)" \
	    --bridge "qemu-aarch64 $G/aarch64/pexi-bridge" --no-rss
fi
done_testing
