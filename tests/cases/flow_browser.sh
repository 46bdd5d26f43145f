#!/bin/sh
# The whole flow, as `make demo` runs it: the demo guest (a browser VM
# built from Debian packages by images/debian-browser.sh, cached in
# build/images) baked with images/debian-browser.json, booted by pep-run
# under UEFI with no NIC; its Firefox loads the demo page
# (tests/flow/site.py) through the runner, pexi-bridge, vsock and pepd,
# which allows www.demo.test and img.demo.test and denies tracker.test;
# the runner powers the guest off (tests/flow/flow-run.sh). Checked: the
# page's content (the allowed image arrived), the denied script refused
# and never fetched, one audit line per request, a clean poweroff (the
# root e2fsck-clean), pep-run's exit 0, the screenshot.
#   PEP_FLOW_DEADLINE=s  the guest's deadline (default 600)
#   PEP_FLOW_ALLOW=HOSTS pepd's allow list (default: the demo's); with
#                        "www.demo.test" the image is denied and the
#                        content check fails (a check of the check)
. "$(dirname "$0")/../lib.sh"
F=$TOP/tests/flow
T=$PEP_TMP
RECIPE=$TOP/images/debian-browser.json

why=""
[ "$(id -u)" -eq 0 ] || why="needs root (mmdebstrap, a network namespace)"
[ "$(uname -m)" = x86_64 ] || why="${why:+$why; }needs an x86_64 host"
for c in qemu-system-x86_64 python3 jq debugfs e2fsck sgdisk unshare; do
	command -v "$c" >/dev/null || why="${why:+$why; }no $c"
done
ls /usr/share/OVMF/OVMF_CODE*.fd /usr/share/ovmf/OVMF.fd \
    /usr/share/qemu/OVMF.fd >/dev/null 2>&1 ||
    why="${why:+$why; }no OVMF firmware (Debian package ovmf)"
if [ -n "$why" ]; then
	skip "$why"; done_testing; exit 0
fi
need_built "$PEP_BAKE" "$TOP/$BUILD/pep-run" "$TOP/$BUILD/pepd" \
    "$TOP/build/guest/x86_64/pexi-bridge"
[ -f "$TOP/build/guest/intercept/pexi-intercept.js" ] || {
	not_ok "build/guest/intercept not built (make guest)"
	done_testing; exit 1; }
if ! sh "$TOP/images/debian-browser.sh" -q >"$T/image.log" 2>&1; then
	skip "the demo guest cannot be built here: $(tail -1 "$T/image.log")"
	done_testing; exit 0
fi

# ---- bake ------------------------------------------------------------------
check "pep-bake --recipe images/debian-browser.json" \
    "$PEP_BAKE" -q --recipe "$RECIPE" -o "$T/disk.raw"
[ -f "$T/disk.raw" ] || { done_testing; exit 1; }

# ---- run -------------------------------------------------------------------
R=$T/run
# The run's logs, the results and the screenshot, for CI to keep.
keep_logs() {
	_l=$TOP/$BUILD/flow-last
	rm -rf --one-file-system "$_l" && mkdir -p "$_l" &&
	    find "$R" -maxdepth 1 -type f -exec cp {} "$_l/" \; &&
	    diag "this run's logs: $_l"
}
t0=$(date +%s)
if ! sh "$F/flow-run.sh" -d "$T/disk.raw" -o "$R" -b "$BUILD" -q \
    -t "${PEP_FLOW_DEADLINE:-600}" ${PEP_FLOW_ALLOW:+-A "$PEP_FLOW_ALLOW"} \
    >"$T/flow.out" 2>&1; then
	not_ok "flow-run.sh could run the flow"
	sed 's/^/#   /' "$T/flow.out" | tail -10
	[ -d "$R" ] && keep_logs
	done_testing; exit 1
fi
diag "flow: $(($(date +%s) - t0)) s, $(cat "$R/accel"); timeline:"
sed 's/^/#  /' "$R/timeline.txt"

guest_logs() {
	diag "console (last lines):"
	tail -15 "$R/console.log" | sed 's/^/#   /'
	for f in runner firefox; do
		[ -s "$R/$f.log" ] || continue
		diag "$f.log:"; tail -8 "$R/$f.log" | sed 's/^/#   /'
	done
}

is "the guest powered itself off: pep-run exit 0" "$(cat "$R/rc")" 0
is "... before the deadline" "$(cat "$R/timedout")" no
like "the runner loaded the page (console)" "$(cat "$R/console.log")" \
    'pexi-intercept: .*visits done: 1 of 1 loaded'
like "the runner powered off, then the kernel did" \
    "$(grep -Eo 'powering off|reboot: Power down' "$R/console.log" |
    tr '\n' ' ')" '^powering off reboot: Power down $'
like "clean poweroff: the root filesystem is e2fsck-clean" \
    "$(tail -1 "$R/fsck.txt")" '^e2fsck exit 0$'

# ---- what the browser saw ---------------------------------------------------
visit() {
	jq -r "select(.event == \"visit\") | $1" "$R/results.jsonl" 2>/dev/null
}
is "results.jsonl: the visit loaded, status 200, title 'pep demo'" \
    "$(visit '"\(.ok) \(.status) \(.title)"')" "true 200 pep demo"
like "page content: the image from the allowed host arrived" \
    "$(visit .text)" 'image: 64x32 from img\.demo\.test'
like "page content: the script from the denied host did not run" \
    "$(visit .text)" 'tracker\.test script: blocked'
is "runner: 3 requests mediated, 1 refused (denied_by_policy)" \
    "$(visit '"\(.requests.mediated) \(.requests.refused | tojson)"')" \
    '3 {"denied_by_policy":1}'
check "the screenshot is a PNG" sh -c \
    "head -c 8 '$R/screenshot.png' | od -An -c | grep -q 'P   N   G'"
[ "$_fail" -eq 0 ] || guest_logs

# ---- the audit log and the origins ----------------------------------------
ans() { jq -c 'select(.event == "answered")' "$R/audit.jsonl"; }
nreq=$(visit '.requests.mediated + (.requests.refused | add // 0)')
is "one audit line per request the browser made ($nreq)" \
    "$(ans | wc -l | tr -d ' ')" "${nreq:-?}"
is "... each request audited once (distinct ids)" \
    "$(ans | jq -r .id | sort -u | wc -l | tr -d ' ')" "${nreq:-?}"
is "audit: what was allowed and denied" \
    "$(ans | jq -r '"\(.method) \(.url) \(.decision) \(.status)" +
    " \(.error)"' | LC_ALL=C sort | tr '\n' ';')" \
    "GET http://img.demo.test/logo.png allow 200 null;GET http://tracker.test/track.js deny 0 denied_by_policy;GET http://www.demo.test/ allow 200 null;GET http://www.demo.test/app.js allow 200 null;"
is "the origins saw the allowed requests only, tracker.test never" \
    "$(jq -r '"\(.host)\(.path)"' "$R/site.jsonl" | LC_ALL=C sort |
    tr '\n' ' ')" "img.demo.test/logo.png www.demo.test/ www.demo.test/app.js "
is "pepd exits 0 after the guest is gone" "$(cat "$R/pepd.rc")" 0
keep_logs
[ -z "${PEP_KEEP:-}" ] || diag "kept $T"
done_testing
