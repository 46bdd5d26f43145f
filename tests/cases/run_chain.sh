#!/bin/sh
# The whole chain, as the design draws it, with a real guest under TCG:
#   guest chain-client -> TCP 127.0.0.1:4040 -> pexi-bridge (static)
#   -> vsock CID 2 port 5000 -> pep-run -> pepd's unix socket
#   -> libcurl -> origin.py on host loopback (port 80 in a private netns)
# The guest prints every answer (status, length, sha256) on hvc0; the test
# reads the console log and pepd's audit log. Checks allowed and denied
# requests, a POST echoed byte-exact, a large response byte-exact,
# concurrent guest connections, and pepd not listening.
#   PEP_CHAIN_BIG=bytes  large response size (default 24 MiB; 6 MiB
#                        under ASan)
# The test guest is built (it may need apt-get) before entering the
# loopback-only namespace.
if [ -z "${PEPD_NS:-}" ] && unshare -m -n true 2>/dev/null; then
	_top=$(cd "$(dirname "$0")/../.." && pwd)
	PEP_CHAIN_MKLOG=$(mktemp /tmp/pep-chain-mkguest.XXXXXX)
	sh "$_top/tests/runner/mkguest.sh" \
	    "${PEP_CACHE:-$_top/build/fixtures}/guest" >"$PEP_CHAIN_MKLOG" 2>&1
	PEP_CHAIN_MKRC=$? PEP_CHAIN_MKLOG=$PEP_CHAIN_MKLOG PEPD_NS=1 \
	    exec unshare -m -n sh "$0" "$@"
fi
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pepd-tools/pepd-lib.sh"
RUN=$TOP/$BUILD/pep-run
T=$PEP_TMP
G=$PEP_CACHE/guest
if [ -z "${PEPD_NS:-}" ]; then skip "needs unshare -m -n"; done_testing; exit; fi
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v python3 \
    >/dev/null || ! command -v jq >/dev/null ||
    [ "$(uname -m)" != x86_64 ]; then
	skip "needs qemu-system-x86_64, python3, jq, an x86_64 host"
	done_testing; exit
fi
if [ "${PEP_CHAIN_MKRC:-1}" -ne 0 ]; then
	skip "test guest not buildable: $(tail -1 "${PEP_CHAIN_MKLOG:-/dev/null}")"
	rm -f "${PEP_CHAIN_MKLOG:-}"
	done_testing; exit
fi
rm -f "$PEP_CHAIN_MKLOG"
pepd_ns_setup
case $BUILD in *asan*) big=${PEP_CHAIN_BIG:-6291456} ;;
*) big=${PEP_CHAIN_BIG:-25165824} ;; esac
NMULTI=12
truncate -s 16M "$T/disk.raw"

boot() {	# name steps pep-run-args...
	_bn=$1 _bs=$2; shift 2
	timeout 300 "$RUN" --accel tcg --disk "$T/disk.raw" --snapshot \
	    --memory 768M --kernel "$G/vmlinuz" --initrd "$G/initrd.img" \
	    --append "console=hvc0 quiet pep.steps=$_bs" --stop-timeout 2 \
	    --vsock user --console-log "$T/$_bn.con" "$@" >"$T/$_bn.out" 2>&1
}

expect() {	# file pattern description
	if grep -q -- "$2" "$1"; then ok "$3"; else
		not_ok "$3"; sed 's/^/#   /' "$1" | tail -15; fi
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- fixtures: origin files, pepd ---------------------------------------
head -c "$big" /dev/urandom >"$T/big.bin"
head -c 65536 /dev/urandom >"$T/mid.bin"
origin_start ORIGIN --port 80
[ "$ORIGIN_PORT" = 80 ] || { not_ok "origin on port 80"; done_testing; exit; }
cat >"$T/pepd.json" <<EOF
{
  "audit": {"path": "$T/audit.jsonl", "fsync": "none"},
  "policy": {"allow": ["origin.test"], "allow_private": ["127.0.0.0/8"]}
}
EOF
pepd_start "$T/pepd.json" --listen "unix:$T/pepd.sock" ||
    { not_ok "pepd starts"; done_testing; exit; }

# ---- the main boot ------------------------------------------------------
steps="bridge,chain:get:origin.test:/:3,chain:get:denied.test:/x"
steps="$steps,chain:get:origin.test:/status/404"
steps="$steps,chain:post:origin.test:/echo:300000"
steps="$steps,chain:get:origin.test:/file/big.bin"
steps="$steps,chain:multi:$NMULTI:origin.test:/file/mid.bin"
t0=$(date +%s)
boot main "$steps" --pepd-socket "$T/pepd.sock"
rc=$?
diag "main boot: $(($(date +%s) - t0))s, rc $rc"
[ "$rc" -eq 0 ] && ok "guest powered off: pep-run exit 0" ||
    { not_ok "pep-run rc $rc"; sed 's/^/#   /' "$T/main.out" | tail; }
expect "$T/main.con" "PEPTEST bridge started" "pexi-bridge started in the guest"
n=$(grep -c "PEPTEST chain get origin.test / status=200 len=18 .*text=hello_from_origin_" \
    "$T/main.con")
[ "$n" -eq 3 ] && ok "3 GETs on one connection: 200 and the origin's body" ||
    { not_ok "GETs answered: $n of 3"; sed 's/^/#   /' "$T/main.con" | tail; }
expect "$T/main.con" "PEPTEST chain get denied.test /x error=denied_by_policy" \
    "denied host: denied_by_policy in the guest"
expect "$T/main.con" "PEPTEST chain get origin.test /status/404 status=404" \
    "origin status 404 passed through"
expect "$T/main.con" \
    "PEPTEST chain post origin.test /echo status=200 len=300000 echo=exact" \
    "POST 300000 bytes echoed byte-exact"
expect "$T/main.con" \
    "PEPTEST chain get origin.test /file/big.bin status=200 len=$big sha256=$(sha "$T/big.bin")" \
    "large response ($big bytes) byte-exact (sha256)"
diag "$(grep 'PEPTEST chain rate' "$T/main.con")"
n=$(grep -c "PEPTEST chain multi origin.test /file/mid.bin status=200 len=65536 sha256=$(sha "$T/mid.bin")" \
    "$T/main.con")
[ "$n" -eq "$NMULTI" ] &&
    ok "$NMULTI concurrent guest connections, each byte-exact" ||
    { not_ok "concurrent: $n of $NMULTI"; grep 'chain multi' "$T/main.con" |
    sed 's/^/#   /' | tail; }
expect "$T/main.con" "PEPTEST chain multi done $NMULTI failed=0" \
    "no concurrent connection failed"

# ---- the audit log -------------------------------------------------------
nreq=$((3 + 1 + 1 + 1 + 1 + NMULTI))
wait_lines "$T/audit.jsonl" "$nreq"
# one "answered" line per request (allowed ones also have a "decided" one)
answered_of "$T/audit.jsonl" >"$T/answered.jsonl"
expect_eq "one audit line per request ($nreq)" \
    "$(wc -l <"$T/answered.jsonl" | tr -d ' ')" "$nreq"
expect_eq "allowed GETs audited: allow, status 200" \
    "$(jq -r 'select(.decision == "allow" and .status == 200 and
    .method == "GET") | .url' "$T/answered.jsonl" | LC_ALL=C sort | uniq -c |
    awk '{printf "%s %s;", $1, $2}')" \
    "3 http://origin.test/;1 http://origin.test/file/big.bin;$NMULTI http://origin.test/file/mid.bin;"
expect_eq "big response audited with its size" \
    "$(jq -r 'select(.url == "http://origin.test/file/big.bin") |
    .bytes_in' "$T/answered.jsonl")" "$big"
expect_eq "POST audited: allow, status 200" \
    "$(jq -r 'select(.method == "POST") | "\(.decision) \(.status) \(.bytes_out)"' \
    "$T/answered.jsonl")" "allow 200 300000"
expect_eq "404 audited: allow, status 404" \
    "$(jq -r 'select(.url == "http://origin.test/status/404") |
    "\(.decision) \(.status)"' "$T/answered.jsonl")" "allow 404"
expect_eq "denied host audited: decision deny, denied_by_policy" \
    "$(jq -r 'select(.host == "denied.test") | "\(.decision) \(.error)"' \
    "$T/answered.jsonl")" "deny denied_by_policy"
pepd_stop
expect_eq "pepd exits 0 after the guest is gone" "$PEPD_RC" "0"

# ---- pepd not listening ----------------------------------------------------
# a stale socket file nobody listens on (pepd crashed): connect is refused
python3 -c 'import socket, sys
socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/stale.sock"
t0=$(date +%s)
boot refused "bridge,chain:closed:origin.test:/,chain:closed:origin.test:/again" \
    --pepd-socket "$T/stale.sock"
rc=$?
diag "no-pepd boot: $(($(date +%s) - t0))s, rc $rc"
[ "$rc" -eq 0 ] && ok "pepd not listening: pep-run survives, exit 0" ||
    { not_ok "pepd not listening: rc $rc"; sed 's/^/#   /' "$T/refused.out" |
    tail; }
n=$(grep -c "PEPTEST chain closed ok" "$T/refused.con")
[ "$n" -eq 2 ] && ok "pepd not listening: the guest's connections are closed, twice" ||
    { not_ok "closed: $n of 2"; sed 's/^/#   /' "$T/refused.con" | tail; }
expect "$T/refused.con" "PEPTEST done" "guest carried on and powered off"
done_testing
