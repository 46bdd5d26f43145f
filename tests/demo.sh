#!/bin/sh
# make demo: the whole flow, in stages, each timed:
#   1 build     pep-bake, pepd, pep-run, the guest files (make all guest)
#   2 image     the guest image: images/NAME.sh for images/NAME.json when
#               there is one (the Debian browser guest, cached in
#               build/images), else the recipe's source (an Alpine cloud
#               image is downloaded, its sha512 checked)
#   3 bake      pep-bake --recipe: grown, console=hvc0, pexi-boot, the
#               runner and its /etc/pexi/config.json (the page to visit)
#   4 run       tests/flow/flow-run.sh: the origins and pepd on the host,
#               in a network namespace; pep-run boots the disk (KVM when it
#               works, else TCG); the guest's Firefox loads the demo page
#               through pepd, then the guest powers itself off
#   5 results   what the browser saw (results.jsonl, the screenshot, both
#               read off the powered-off disk), pepd's audit lines, where
#               the time went
#   RECIPE=images/X.json (default images/debian-browser.json); BUILD
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
BUILD=${BUILD:-build}
RECIPE=${RECIPE:-images/debian-browser.json}
DEMO=$TOP/$BUILD/demo
MAKE=${MAKE:-make}
PEP_BAKE=$TOP/$BUILD/pep-bake
STAGES=""
N=0

say() { printf '%s\n' "$*"; }
die() { printf '\ndemo: %s\n' "$*" >&2; exit 1; }

stage() {	# title
	N=$((N + 1))
	S_NAME=$1
	S_T0=$(date +%s)
	printf '\n== [%d/5] %s\n' "$N" "$1"
}

stage_done() {
	_d=$(($(date +%s) - S_T0))
	STAGES="$STAGES$(printf '  %-9s %5d s' "$S_NAME" "$_d")
"
	say "   ($S_NAME: ${_d} s)"
}

# ---- what the demo needs, said plainly ---------------------------------
prerequisites() {
	[ "$(id -u)" -eq 0 ] || die "make demo needs root: the guest's root" \
	    "tree is built as root (mmdebstrap), and the origins and pepd" \
	    "run in a network namespace of their own. Run: sudo make demo"
	[ "$(uname -m)" = x86_64 ] || die "make demo boots an x86_64 guest" \
	    "and needs an x86_64 host (this is $(uname -m))"
	[ -f "$RECIPE" ] || die "$RECIPE: no such recipe (RECIPE=images/X.json)"
	for c in qemu-system-x86_64:qemu-system-x86 python3:python3 \
	    jq:jq debugfs:e2fsprogs sgdisk:gdisk unshare:util-linux; do
		command -v "${c%%:*}" >/dev/null 2>&1 || die "${c%%:*} is" \
		    "missing: apt-get install ${c#*:} (or: make deps)"
	done
	ls /usr/share/OVMF/OVMF_CODE*.fd /usr/share/ovmf/OVMF.fd \
	    /usr/share/qemu/OVMF.fd >/dev/null 2>&1 || die "no UEFI" \
	    "firmware (OVMF): apt-get install ovmf (or: make deps)"
	# KVM or TCG: flow-run.sh says which, and why not KVM.
}

# ---- 2: the guest image ----------------------------------------------------
recipe_get() {	# jq filter over the recipe
	jq -r "$1" "$RECIPE"
}

# An Alpine cloud image named in a recipe, from Alpine's CDN, checked
# against the sha512 published beside it.
fetch_alpine() {	# path
	_n=$(basename "$1")
	_v=$(printf '%s' "$_n" | sed -n 's/.*alpine-\([0-9]*\.[0-9]*\)\..*/\1/p')
	[ -n "$_v" ] || return 1
	_u=https://dl-cdn.alpinelinux.org/alpine/v$_v/releases/cloud/$_n
	say "downloading $_u"
	if ! curl -fL --progress-bar -o "$1.part" "$_u" ||
	    ! curl -fsSL -o "$1.sha512" "$_u.sha512"; then
		rm -f "$1.part" "$1.sha512"
		die "$_n is not in $(dirname "$1") and could not be" \
		    "downloaded from $_u (no network?). Download it (and" \
		    "check its sha512) on a machine with internet, put it" \
		    "there, and run make demo RECIPE=$RECIPE again."
	fi
	[ "$(cut -d' ' -f1 <"$1.sha512")" = \
	    "$(sha512sum "$1.part" | cut -d' ' -f1)" ] ||
	    { rm -f "$1.part"; die "$_n: sha512 mismatch"; }
	mv "$1.part" "$1"
}

guest_image() {
	builder=${RECIPE%.json}.sh
	src=$(recipe_get '.source | if type == "object" then .path else . end')
	[ "$src" != null ] || die "$RECIPE has no source"
	case $src in /*) ;; *) src=$(dirname "$RECIPE")/$src ;; esac
	src=$(realpath -m "$src")
	if [ -f "$builder" ]; then
		say "$builder (cached in $(dirname "$src") while the script" \
		    "and its Debian mirror and suite are unchanged)"
		sh "$builder" -o "$src" ||
		    die "$builder could not build the guest image (above)"
	elif [ ! -f "$src" ]; then
		fetch_alpine "$src" || die "$src is missing: $(recipe_get \
		    .description)"
	fi
	qemu-img info "$src" 2>/dev/null | sed -n \
	    's/^\(file format\|virtual size\|disk size\): /  \1: /p'
}

# ---- 3: bake -------------------------------------------------------------------
bake() {
	OUT=$(recipe_get .output)
	case $OUT in /*) ;; *) OUT=$(dirname "$RECIPE")/$OUT ;; esac
	OUT=$(realpath -m "$OUT")
	set -- --recipe "$RECIPE"
	# A recipe without the demo's page gets it from the command line.
	if [ "$(recipe_get .pexi_config)" = null ]; then
		jq .pexi_config images/debian-browser.json >"$DEMO/config.json"
		set -- "$@" --upload "$DEMO/config.json:/etc/pexi/config.json"
	fi
	say "$BUILD/pep-bake $*"
	rm -f "$OUT"
	"$PEP_BAKE" -v "$@" 2>&1 | sed 's/^/  /'
	[ -f "$OUT" ] || die "pep-bake failed (above)"
	ROOT="$OUT?offset=$(($(sgdisk -i "$(recipe_get \
	    '.root_partition // 2')" "$OUT" 2>/dev/null |
	    sed -n 's/^First sector: \([0-9]*\).*/\1/p') * 512))"
	say "  kernel command line now: $(debugfs -R \
	    'cat /boot/grub/grub.cfg' "$ROOT" 2>/dev/null |
	    sed -n 's/^[[:space:]]*linux[[:space:]]*//p' | head -1)"
	# pep-bake does not install packages (yet): the flow needs the
	# browser and Node.js in the image already.
	has() { debugfs -R "stat $1" "$ROOT" >/dev/null 2>&1; }
	if ! { has /usr/bin/firefox-esr || has /usr/bin/firefox; } ||
	    ! has /usr/bin/node; then
		die "$OUT has no Firefox or no Node.js, which the guest's" \
		    "runner needs, and pep-bake cannot install packages yet." \
		    "A stock Alpine cloud image has neither: bake an Alpine" \
		    "image that has firefox-esr and nodejs (for example one" \
		    "made with alpine-make-vm-image --packages" \
		    "'firefox-esr nodejs font-dejavu'), or use the Debian" \
		    "demo guest: make demo"
	fi
	say "  the image has Firefox and Node.js; the runner will visit:" \
	    "$(debugfs -R 'cat /etc/pexi/config.json' "$ROOT" 2>/dev/null |
	    jq -c '[.visits[] | if type == "object" then .url else . end]')"
}

# ---- 5: results -------------------------------------------------------------------
results() {
	R=$DEMO/run
	if [ -s "$R/results.jsonl" ]; then
		say "what the browser saw ($R/results.jsonl):"
		jq -r 'select(.event == "visit") |
		    "  \(.url): \(if .ok then "loaded" else "FAILED: \(.error)"
		    end), status \(.status), title \"\(.title)\", \(.ms) ms",
		    "  requests: \(.requests.mediated) fetched by pepd," +
		    " refused: \(.requests.refused | tojson)",
		    "  text:", (.text | split("\n") | map(select(. != "")) |
		    .[] | "    | \(.)")' "$R/results.jsonl"
	else
		say "the guest left no results.jsonl (see $R/console.log," \
		    "$R/runner.log)"
	fi
	if [ -s "$R/screenshot.png" ]; then
		cp "$R/screenshot.png" "$DEMO/screenshot.png"
		say "  screenshot: $DEMO/screenshot.png (copied off the" \
		    "powered-off disk with debugfs)"
	fi
	say ""
	say "pepd's audit ($R/audit.jsonl), one line per request:"
	jq -r 'select(.event == "answered") | "  \(.decision | ascii_upcase)" +
	    "  \(.method) \(.url) -> " + (if .decision == "allow" then
	    "\(.status), \(.bytes_in) bytes" else "\(.error)" end) +
	    " (rule \(.rule // "none"))"' "$R/audit.jsonl"
	say ""
	say "where the time went (pep-run $(cat "$R/accel"), exit" \
	    "$(cat "$R/rc"); $(tail -1 "$R/fsck.txt" | sed \
	    's/e2fsck exit 0/root filesystem clean after the poweroff/'))"
	cat "$R/timeline.txt"
}

prerequisites
mkdir -p "$DEMO"
T_ALL=$(date +%s)

stage build
say "$MAKE all guest"
$MAKE -s BUILD="$BUILD" all guest || die "the build failed (above)"
stage_done

stage image
guest_image
stage_done

stage bake
bake
stage_done

stage run
sh tests/flow/flow-run.sh -d "$OUT" -o "$DEMO/run" -b "$BUILD" ||
    die "the flow could not run (above)"
stage_done

stage results
results
stage_done

say ""
say "stages:"
printf '%s' "$STAGES"
say "  total     $(printf '%5d' $(($(date +%s) - T_ALL))) s"
[ "$(cat "$DEMO/run/rc")" = 0 ] && [ -s "$DEMO/run/results.jsonl" ]
