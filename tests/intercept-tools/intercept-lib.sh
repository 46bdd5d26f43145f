# Helpers for the intercept runner's cases (tests/cases/intercept_*.sh),
# sourced after tests/lib.sh. A case re-execs itself in private mount,
# network and pid namespaces (ix_reexec; the pid namespace takes every
# browser process with it when the case ends), then:
#
#   outside (the case's own network namespace): the origins (site.py, one
#     port, told apart by Host), pepd on a Unix socket;
#   the browser's namespace (ix_inner, a second network namespace): the
#     browser, the runner, pexi-bridge (TCP 127.0.0.1:4040 -> pepd's Unix
#     socket) and trap.py on ports 80, 443 and DNS.
#
# Both see the same /etc/hosts (www.a.test 127.0.0.2, cdn.b.test .3,
# api.c.test .4, deny.d.test .5, frame.e.test .6; the machine's own name,
# which Firefox looks up every 5 s, 127.0.1.1), so a browser that
# connected to an origin itself would land in the trap, never at the
# origin: as in the VM, pepd (through the bridge) is the only way out.

IX_TOOLS=$TOP/tests/intercept-tools
IX_RUNNER=${PEP_INTERCEPT_DIR:-$TOP/build/guest/intercept}
PEPD=$TOP/$BUILD/pepd
BRIDGE=$TOP/$BUILD/pexi-bridge
FIREFOX=${PEP_FIREFOX:-/usr/bin/firefox-esr}
CHROMIUM=${PEP_CHROMIUM:-/usr/bin/chromium}
T=$PEP_TMP
INNER=""

# ix_reexec "$@": first thing in a case.
ix_reexec() {
	if [ -z "${IX_NS:-}" ] && unshare -m -n -p -f --mount-proc true \
	    2>/dev/null; then
		IX_NS=1 exec unshare -m -n -p -f --mount-proc sh "$0" "$@"
	fi
}

# ix_need: skip the whole case (with the reason) when it cannot run.
ix_need() {	# browser binary...
	_why=""
	[ -n "${IX_NS:-}" ] || _why="needs unshare -m -n -p (root)"
	for _b in "$@"; do
		[ -x "$_b" ] || _why="${_why:+$_why; }$_b is not installed"
	done
	command -v node >/dev/null || _why="${_why:+$_why; }no node"
	[ -f "$IX_RUNNER/node_modules/puppeteer-core/package.json" ] ||
	    _why="${_why:+$_why; }no $IX_RUNNER/node_modules (make guest)"
	[ -x "$PEPD" ] && [ -x "$BRIDGE" ] ||
	    _why="${_why:+$_why; }$BUILD/pepd or pexi-bridge not built"
	if [ -n "$_why" ]; then
		skip "$_why"
		done_testing
		exit 0
	fi
}

ix_hosts() {
	cat <<-EOF
	127.0.0.1 localhost
	127.0.0.2 www.a.test
	127.0.0.3 cdn.b.test
	127.0.0.4 api.c.test
	127.0.0.5 deny.d.test
	127.0.0.6 frame.e.test
	127.0.1.1 $(hostname)
	::1 localhost ip6-localhost
	EOF
}

# At exit: every process of the case's pid namespace (browsers leave
# helpers behind), then its mounts under $T, then $T.
ix_cleanup() {
	if [ -n "${IX_NS:-}" ] && [ "$$" -eq 1 ]; then
		kill -KILL -1 2>/dev/null
		sleep 0.2
	fi
	grep -o " $T/[^ ]*" /proc/self/mounts | sort -r |
	    while read -r _m; do umount -l "$_m" 2>/dev/null; done
	cleanup_tmp
}

# Outside: loopback up, the test names, DNS pointing at 127.0.0.1 (where
# only the trap listens, in the browser's namespace).
ix_ns_setup() {
	trap ix_cleanup EXIT
	ip link set lo up
	ix_hosts >"$T/hosts"
	echo "nameserver 127.0.0.1" >"$T/resolv.conf"
	mount --bind "$T/hosts" /etc/hosts
	mount --bind "$T/resolv.conf" /etc/resolv.conf
	mkdir -p "$T/site" "$T/home"
	HOME=$T/home
	export HOME
}

# wait_for SECONDS COMMAND...: until the command succeeds.
wait_for() {
	_w=$(($1 * 20)); shift
	while ! "$@" >/dev/null 2>&1; do
		_w=$((_w - 1))
		[ "$_w" -gt 0 ] || return 1
		sleep 0.05
	done
}

listening() { ss -ltnH "sport = :$1" | grep -q .; }

# The browser's network namespace, held by a sleeping process.
ix_inner() {
	unshare -n sh -c 'ip link set lo up && exec sleep 100000' &
	INNER=$!
	wait_for 10 in_inner sh -c 'ip -br link show lo | grep -q UP'
}

# (Started in the background, use nsenter itself, not this function: $!
# is then the program's pid, as nsenter execs it.)
in_inner() { nsenter -t "$INNER" -n -- "$@"; }

ix_site() {
	python3 "$IX_TOOLS/site.py" --port 80 --dir "$T/site" \
	    --log "$T/site.jsonl" 2>"$T/site.err" &
	wait_for 30 listening 80
}

# ix_pepd ALLOW...: pepd on unix:$T/pepd.sock allowing those hosts.
ix_pepd() {
	_allow=$(printf '"%s",' "$@")
	cat >"$T/pepd.json" <<-EOF
	{
	  "listen": ["unix:$T/pepd.sock"],
	  "audit": {"path": "$T/audit.jsonl", "fsync": "none"},
	  "policy": {"allow": [${_allow%,}],
	             "allow_private": ["127.0.0.0/8"]}
	}
	EOF
	"$PEPD" --config "$T/pepd.json" 2>"$T/pepd.log" &
	PEPD_PID=$!
	wait_for 30 test -S "$T/pepd.sock"
}

ix_trap() {
	nsenter -t "$INNER" -n -- python3 "$IX_TOOLS/trap.py" \
	    --log "$T/trap.jsonl" \
	    --ports 80,443 --readyfile "$T/trap.ready" 2>"$T/trap.err" &
	: >"$T/trap.jsonl"
	wait_for 30 test -e "$T/trap.ready"
}

ix_bridge() {
	nsenter -t "$INNER" -n -- "$BRIDGE" --listen tcp:127.0.0.1:4040 \
	    --upstream "unix:$T/pepd.sock" 2>"$T/bridge.log" &
	BRIDGE_PID=$!
	wait_for 30 in_inner sh -c "ss -ltnH 'sport = :4040' | grep -q ."
}

# The browsers, as pexi-boot starts Firefox (pexi-firefox), and Chromium
# with what a closed network needs; both on 127.0.0.1:9222.
ix_firefox() {
	nsenter -t "$INNER" -n -- "$IX_RUNNER/pexi-firefox" -b "$FIREFOX" \
	    -p 9222 -d "$T/firefox" -P "$T/firefox.pid" >"$T/browser.log" 2>&1 &
	BROWSER_PID=$!
	wait_for 60 in_inner sh -c "ss -ltnH 'sport = :9222' | grep -q ."
}

ix_chromium() {
	# Network prediction off: Chromium would otherwise open sockets to
	# origins it expects to use, before and beside interception.
	mkdir -p "$T/chromium/Default"
	echo '{"net": {"network_prediction_options": 2}}' \
	    >"$T/chromium/Default/Preferences"
	nsenter -t "$INNER" -n -- "$CHROMIUM" --headless --no-sandbox \
	    --remote-debugging-address=127.0.0.1 --remote-debugging-port=9222 \
	    --user-data-dir="$T/chromium" --no-first-run --no-default-browser-check \
	    --disable-background-networking --disable-component-update \
	    --disable-domain-reliability --disable-sync --no-pings \
	    --disable-client-side-phishing-detection --disable-default-apps \
	    --disable-popup-blocking --metrics-recording-only \
	    --disable-features=Translate,OptimizationHints,MediaRouter \
	    about:blank >"$T/browser.log" 2>&1 &
	BROWSER_PID=$!
	wait_for 60 in_inner sh -c "ss -ltnH 'sport = :9222' | grep -q ."
}

# ix_config PROTOCOL ENDPOINT VISITS-JSON: the runner's config.json,
# reporting to $IX_RESULTS.
IX_RESULTS=$T/results.jsonl
ix_config() {
	cat >"$T/config.json" <<-EOF
	{
	  "browser": {"protocol": "$1", "endpoint": "$2",
	              "connect_timeout_ms": 60000, "pidfile": null},
	  "bridge": {"host": "127.0.0.1", "port": 4040},
	  "results": "$IX_RESULTS",
	  "screenshot": "$T/screenshot.png",
	  "visits": $3
	}
	EOF
}

# ix_runner [runner options]: the runner in the browser's namespace.
ix_runner() {
	in_inner timeout 300 node "$IX_RUNNER/pexi-intercept.js" \
	    -c "$T/config.json" "$@" 2>>"$T/runner.log"
}

# ix_quiet: wait (up to 10 s) until pepd's audit and the origins' log have
# not grown for half a second: what the runner left in flight is done.
ix_quiet() {
	_q=""
	for _i in $(seq 40); do
		_s="$(wc -c <"$T/audit.jsonl" 2>/dev/null) $(wc -c \
		    <"$T/site.jsonl" 2>/dev/null)"
		[ "$_s" = "$_q" ] && return 0
		_q=$_s
		sleep 0.25
	done
}

# visit N FILTER: a jq filter over visit N's record in results.jsonl.
visit() {
	jq -r "select(.event == \"visit\" and .visit == $1) | $2" \
	    "$IX_RESULTS" 2>/dev/null
}

# audit FILTER: jq -s over pepd's outcome lines (event "answered"; each
# follows its "decided" line, which ix_check_common checks once).
audit() {
	jq -rs "[.[] | select(.event == \"answered\")] | $1" \
	    "$T/audit.jsonl" 2>/dev/null
}
# site FILTER: jq -s over what reached the origins.
site() { jq -rs "$1" "$T/site.jsonl" 2>/dev/null; }
# trapped FILTER: jq -s over what reached the trap.
trapped() { jq -rs "$1" "$T/trap.jsonl" 2>/dev/null; }

# ix_logs: the tail of every log, for a failure.
ix_logs() {
	for _f in runner.log pepd.log bridge.log browser.log site.err; do
		[ -s "$T/$_f" ] || continue
		diag "--- $_f"
		tail -15 "$T/$_f" | sed 's/^/#   /'
	done
}

# fnv1a FILE: FNV-1a 32 of a file, as site.py's /big page computes it.
fnv1a() {
	node -e 'const a = require("fs").readFileSync(process.argv[1]);
let h = 0x811c9dc5;
for (const b of a) h = Math.imul(h ^ b, 0x01000193);
console.log((h >>> 0).toString(16));' "$1"
}

# ---- the scenario both browsers run ------------------------------------
# Visit numbers, as in ix_visits.
V_MAIN=0 V_DENY=1 V_REDIR=2 V_REDIR_DENY=3 V_CORS=4 V_UPLOAD=5 V_BIG=6
V_WS=7 V_DATA=8 V_DATA_TOP=9 V_POPUP=10 V_SW=11

# hop URL: the /redirect URL that sends the browser to URL.
hop() {
	printf '%s/redirect?to=%s' "$1" "$(jq -rn --arg u "$2" '$u|@uri')"
}

ix_visits() {
	_landed=$(hop http://www.a.test "$(hop http://cdn.b.test \
	    http://www.a.test/landed)")
	_denied=$(hop http://www.a.test "$(hop http://cdn.b.test \
	    http://deny.d.test/final)")
	cat <<-EOF
	[{"url": "http://www.a.test/", "wait_for": "#done"},
	 "http://deny.d.test/",
	 "$_landed",
	 "$_denied",
	 {"url": "http://www.a.test/cors", "wait_for": "#done"},
	 {"url": "http://www.a.test/upload", "wait_for": "#uploaded"},
	 {"url": "http://www.a.test/big", "wait_for": "#done",
	  "timeout_ms": 60000},
	 {"url": "http://www.a.test/ws", "wait_for": "#done"},
	 {"url": "http://www.a.test/data", "wait_for": "#done"},
	 "data:text/html,<title>data-top</title><p>top-level data",
	 {"url": "http://www.a.test/popup", "settle_ms": 1500},
	 {"url": "http://localhost/sw", "wait_for": "#done"}]
	EOF
}

ix_allow() {
	echo www.a.test cdn.b.test api.c.test frame.e.test localhost
}

# has_audit DESC METHOD URL DECISION STATUS-OR-ERROR
has_audit() {
	_got=$(audit "[.[] | select(.method == \"$2\" and .url == \"$3\") |
	    \"\(.decision) \(.error // .status)\"] | join(\",\")")
	is "$1" "$_got" "$4 $5"
}

# The checks both browsers must pass.
ix_check_common() {
	_b=$1
	ix_quiet
	# main page
	is "$_b: main page loaded" "$(visit $V_MAIN .ok)" true
	is "$_b: main page title" "$(visit $V_MAIN .title)" "pexi main"
	# XHR, cross-origin fetch, iframe, worker, image and CSS
	like "$_b: main page computed its value from all its parts" \
	    "$(visit $V_MAIN .text)" \
	    'xhr=17 fetch=25 frame=8 worker=4 sum=54 img=64x32 css=rgb\(1, 2, 3\)'
	for _u in http://www.a.test/ http://cdn.b.test/style.css \
	    http://cdn.b.test/img.png http://cdn.b.test/app.js \
	    http://www.a.test/data.json http://api.c.test/value \
	    http://frame.e.test/frame http://frame.e.test/inner.json \
	    http://www.a.test/worker.json; do
		has_audit "$_b: main page: $_u audited" GET "$_u" allow 200
	done
	# Every request an origin answered was one pepd allowed, and every
	# one pepd fetched reached an origin: nothing else got there.
	_a=$(audit '[.[] | select(.decision == "allow" and .error == null) |
	    "\(.method) \(.url)"] | sort | join("\n")')
	_s=$(site '[.[] | "\(.method) http://\(.host)\(.path)"] | sort |
	    join("\n")')
	is "$_b: the origins saw exactly the requests pepd fetched" "$_s" "$_a"
	# pepd audits a fetch before starting it: every answered line
	# with a status from an origin follows a decided line with its id
	# and the same decision.
	is "$_b: every fetch was audited before it started" "$(jq -rs '
	    reduce .[] as $l ({seen: {}, bad: 0, n: 0};
	        if $l.event == "decided" then .seen[$l.id] = $l.decision
	        elif $l.status > 0 then .n += 1 |
	            if .seen[$l.id] != $l.decision then .bad += 1 else . end
	        else . end) | "\(.n > 0) \(.bad)"' "$T/audit.jsonl")" "true 0"
	# denied
	is "$_b: denied domain: status 403" "$(visit $V_DENY .status)" 403
	is "$_b: denied domain: the refusal page names the code" \
	    "$(visit $V_DENY .title)" "pexi: refused (denied_by_policy)"
	has_audit "$_b: denied domain audited" GET http://deny.d.test/ \
	    deny denied_by_policy
	is "$_b: deny.d.test never reached" \
	    "$(site '[.[] | select(.host | startswith("deny"))] | length')" 0
	# redirects
	is "$_b: redirect chain followed by the browser" \
	    "$(visit $V_REDIR '"\(.final_url) \(.title)"')" \
	    "http://www.a.test/landed landed"
	is "$_b: each hop decided by pepd" "$(audit "[.[] |
	    select(.url | test(\"landed\")) | .status] | join(\" \")")" \
	    "302 302 200"
	is "$_b: a chain with a denied hop stops there" \
	    "$(visit $V_REDIR_DENY '"\(.status) \(.final_url) \(.title)"')" \
	    "403 http://deny.d.test/final pexi: refused (denied_by_policy)"
	is "$_b: ... after two allowed hops" "$(audit "[.[] |
	    select(.url | test(\"final\")) | \"\(.status) \(.error)\"] |
	    join(\",\")")" "302 null,302 null,0 denied_by_policy"
	# CORS
	is "$_b: CORS: preflight allowed: works; refused: blocked" \
	    "$(visit $V_CORS .text)" "ok=1 no=blocked"
	has_audit "$_b: CORS: preflight audited" OPTIONS \
	    http://api.c.test/cors-ok allow 204
	has_audit "$_b: CORS: the allowed PUT audited" PUT \
	    http://api.c.test/cors-ok allow 200
	has_audit "$_b: CORS: the refused preflight audited" OPTIONS \
	    http://api.c.test/cors-no allow 204
	is "$_b: CORS: the blocked PUT was never sent" "$(site '[.[] |
	    select(.method == "PUT" and .path == "/cors-no")] | length')" 0
	# upload, big
	_sha=$(sha256sum "$T/site/blob.bin" | cut -d' ' -f1)
	is "$_b: form POST with a binary file: the page shows what arrived" \
	    "$(visit $V_UPLOAD .text)" "size=307200 sha256=$_sha"
	check "$_b: the uploaded file is byte-exact at the origin" \
	    cmp "$T/site/blob.bin" "$T/site/upload.bin"
	_size=$(stat -c %s "$T/site/big.png")
	is "$_b: 5 MiB image intact (decoded, and its bytes' FNV-1a)" \
	    "$(visit $V_BIG .text)" \
	    "big=1024x1706 bytes=$_size fnv=$(fnv1a "$T/site/big.png")"
	# WebSocket, data:
	like "$_b: WebSocket fails" "$(visit $V_WS .text)" '^ws=(error|closed)$'
	is "$_b: WebSocket: the origin's echo endpoint never reached" \
	    "$(site '[.[] | select(.path == "/ws-echo")] | length')" 0
	is "$_b: data: image and data: fetch work in the page" \
	    "$(visit $V_DATA .text)" "data=hello-data img=1x1"
	is "$_b: top-level data: URL loads" "$(visit $V_DATA_TOP .title)" \
	    data-top
	is "$_b: no data: URL went to pepd" \
	    "$(audit '[.[] | select(.url | startswith("data:"))] | length')" 0
	# popup
	has_audit "$_b: a popup's first request is mediated" GET \
	    http://cdn.b.test/popup-page allow 200
	has_audit "$_b: ... and its subresources" GET \
	    "http://cdn.b.test/img.png?from=popup" allow 200
}
