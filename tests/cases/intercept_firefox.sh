#!/bin/sh
# The intercept runner with Debian's firefox-esr over WebDriver BiDi, as
# in the guest: pexi-firefox starts Firefox, the runner intercepts every
# request and has pepd (through pexi-bridge) decide and fetch it. The
# browser runs in a network namespace of its own where the origins cannot
# be reached (tests/intercept-tools/intercept-lib.sh): what the pages show
# and pepd's audit prove each request was mediated, and trap.py that none
# went anywhere else.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/intercept-tools/intercept-lib.sh"
ix_reexec "$@"
ix_need "$FIREFOX"
ix_ns_setup

# ---- the runner's command line -----------------------------------------
R="node $IX_RUNNER/pexi-intercept.js"
like "--version" "$($R --version)" '^pexi-intercept [0-9]'
like "--help names --config" "$($R --help)" '--config FILE'
$R --bogus >/dev/null 2>&1
is "an unknown option exits 2" "$?" 2
echo '{"visits": ["http://x.test/"], "bridge": {"port": 4040, "pot": 1}}' \
    >"$T/bad.json"
like "a config with an unknown key is refused, naming it" \
    "$($R -c "$T/bad.json" --check-config 2>&1)" "unknown key 'pot' in 'bridge'"
$R -c "$T/bad.json" --check-config >/dev/null 2>&1
is "... and exits 2" "$?" 2
echo '{"visits": [{"url": "file:///etc/passwd"}]}' >"$T/bad.json"
like "a visit to a file: URL is refused" \
    "$($R -c "$T/bad.json" --check-config 2>&1)" 'scheme file: not allowed'

# ---- the scenario --------------------------------------------------------
ix_inner
ix_site
ix_pepd $(ix_allow)
ix_trap
ix_bridge
ix_firefox || { not_ok "Firefox listens on 9222"; ix_logs; done_testing; exit; }
ix_config webDriverBiDi ws://127.0.0.1:9222/session "$(ix_visits)"
t0=$(date +%s)
ix_runner --once
rc=$?
is "the runner visits everything and exits 0 (--once)" "$rc" 0
diag "runner: $(($(date +%s) - t0)) s for $(ix_visits | jq length) visits"
is "results: a start line naming Firefox" \
    "$(jq -r 'select(.event == "start") | .browser' "$T/results.jsonl" |
    cut -d/ -f1)" firefox
ix_check_common firefox
is "firefox: not one direct connection or DNS query from the browser's namespace" \
    "$(trapped 'map("\(.event) \(.dst):\(.port) \(.first)") |
    join("; ")')" ""
like "firefox: the WebSocket handshake was refused by the runner" \
    "$(cat "$T/runner.log")" 'ws-echo: WebSocket handshake refused'
is "firefox: service workers are off (user.js), even in a secure context" \
    "$(visit $V_SW .text)" "sw=absent"
is "results: a done line with the screenshot" \
    "$(jq -r 'select(.event == "done") | "\(.ok)/\(.visits) \(.screenshot)"' \
    "$T/results.jsonl")" "$(ix_visits | jq length)/$(ix_visits |
    jq length) $T/screenshot.png"
check "the screenshot is a PNG" sh -c \
    "head -c 8 '$T/screenshot.png' | od -An -c | grep -q 'P   N   G'"

# ---- no bridge -----------------------------------------------------------
# The runner above ended its session (--once): a new one connects to the
# same Firefox; with pexi-bridge gone, pages say so.
kill "$BRIDGE_PID"
IX_RESULTS=$T/results2.jsonl
ix_config webDriverBiDi ws://127.0.0.1:9222/session '["http://www.a.test/"]'
ix_runner --once
is "a second runner gets a session from the same Firefox" "$?" 0
is "without pexi-bridge: the refusal page names bridge_unavailable" \
    "$(visit 0 '"\(.status) \(.title)"')" \
    "502 pexi: refused (bridge_unavailable)"
like "... and the runner log says why" "$(cat "$T/runner.log")" \
    'no answer from pepd: cannot connect to pexi-bridge at 127.0.0.1:4040'

[ "$_fail" -eq 0 ] || ix_logs
[ -z "${PEP_KEEP:-}" ] || diag "kept $T"
done_testing
