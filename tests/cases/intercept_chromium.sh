#!/bin/sh
# The intercept runner with Debian's chromium over CDP (the Fetch domain on
# the browser's session), on the scenario intercept_firefox.sh runs, in
# the same two namespaces; what differs from Firefox is asserted as such
# (guest-init/intercept/README.md, "What is intercepted").
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/intercept-tools/intercept-lib.sh"
ix_reexec "$@"
ix_need "$CHROMIUM"
ix_ns_setup

ix_inner
ix_site
ix_pepd $(ix_allow)
ix_trap
ix_bridge
ix_chromium || { not_ok "Chromium listens on 9222"; ix_logs; done_testing; exit; }
ix_config cdp http://127.0.0.1:9222 "$(ix_visits)"
t0=$(date +%s)
ix_runner --once
is "the runner visits everything and exits 0 (--once)" "$?" 0
diag "runner: $(($(date +%s) - t0)) s for $(ix_visits | jq length) visits"
like "results: a start line naming Chromium" \
    "$(jq -r 'select(.event == "start") | .browser' "$T/results.jsonl")" \
    '^(Headless)?Chrome/' 
ix_check_common chromium
# What Chromium does differently (README.md, "What is intercepted").
# The WebSocket is not paused by Fetch: Chromium connects by itself (in
# the VM there is no route), and nothing reached an origin.
is "chromium: the one direct connection attempt is the WebSocket's" \
    "$(trapped '[.[] | select(.proto == "tcp") | "\(.event) \(.dst):\(.port)" +
    (if .first != "" then " " + .first else "" end)] | join(",")')" \
    "connect 127.0.0.2:80"
is "chromium: a service worker registers (secure context), mediated" \
    "$(visit $V_SW .text)" "sw=registered"
has_audit "chromium: ... the service worker's script" GET \
    http://localhost/sw.js allow 200
has_audit "chromium: ... the service worker's fetch" GET \
    http://localhost/from-sw allow 200
diag "chromium's own DNS queries (background services):" \
    "$(trapped '[.[] | select(.proto == "dns") | .first] | unique |
    join(" ")')"

[ "$_fail" -eq 0 ] || ix_logs
[ -z "${PEP_KEEP:-}" ] || diag "kept $T"
done_testing
