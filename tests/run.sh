#!/bin/sh
# The one test runner: unit test binaries (TAP), then every shell case in
# tests/cases (TAP), with the normal build and again with the ASan+UBSan
# build (build-asan). Prints a closing "N passed, N failed" line.
#   PEP_NO_ASAN=1  skip the sanitizer pass
#   PEP_ONLY=glob  run only cases whose file name matches glob
#   PEP_STRICT=1   (set by make check, and by CI=true) a SKIP fails the
#                  case unless its reason matches tests/skips.allow
# A case passes only if it exits 0, prints no "not ok", calls no missing
# command, and prints a TAP plan ("1..N") that matches the checks it ran.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
STRICT=${PEP_STRICT:-}
[ "${CI:-}" = true ] && STRICT=1
ALLOW=$TOP/tests/skips.allow
# pep-bake installs pexi-boot from the guest directory make guest builds
# (the sanitizer build has none of its own).
export PEP_GUEST_DIR="${PEP_GUEST_DIR:-$TOP/build/guest}"
passed=0
failed=0
skipped=0
failures=""

# tap_plan LOG: 1 (and a not ok line) if the plan is missing or does
# not match the checks counted, else 0.
tap_plan() {
	_n=$(grep -Ec '^(not )?ok ' "$1")
	_plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$1" | tail -1)
	if [ -z "$_plan" ]; then
		echo "not ok - no TAP plan (1..N): the case stopped early" >>"$1"
	elif [ "$_plan" -ne "$_n" ]; then
		echo "not ok - the plan says $_plan checks, $_n ran" >>"$1"
	else
		echo 0; return
	fi
	echo 1
}

# tap_skips LOG: under PEP_STRICT, the SKIPs whose reason no line of
# tests/skips.allow matches (each becomes a not ok line), else 0.
tap_skips() {
	[ -n "$STRICT" ] || { echo 0; return; }
	_bad=0
	sed -n 's/^ok [0-9]* - # SKIP //p' "$1" >"$1.skips"
	while IFS= read -r _why; do
		grep -v '^#' "$ALLOW" | grep -v '^$' >"$1.allow"
		_hit=0
		while IFS= read -r _re; do
			printf '%s\n' "$_why" | grep -Eq -- "$_re" && _hit=1
		done <"$1.allow"
		if [ "$_hit" -eq 0 ]; then
			_bad=$((_bad + 1))
			echo "not ok - SKIP not allowed (tests/skips.allow): $_why" \
			    >>"$1"
		fi
	done <"$1.skips"
	rm -f "$1.skips" "$1.allow"
	echo "$_bad"
}

run_one() {	# name, command...
	name=$1; shift
	log=$(mktemp /tmp/pep-run.XXXXXX)
	"$@" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$log")
	s=$(grep -c '^ok .*# SKIP' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	# A shell case calling a helper that does not exist keeps going and
	# proves nothing: that is a failure too.
	if grep -Eq '^[^ #]*\.sh: ([0-9]+: |line [0-9]+: )?[^ ]+: (command )?not found$' "$log"; then
		f=$((f + 1)); echo "not ok - a command was not found" >>"$log"
	fi
	f=$((f + $(tap_plan "$log") + $(tap_skips "$log")))
	passed=$((passed + p - s)); skipped=$((skipped + s))
	failed=$((failed + f))
	if [ "$f" -gt 0 ]; then
		failures="$failures $name"
		echo "FAIL $name (rc=$rc)"
		# Every failed check with its diagnostics, then the end.
		awk '/^not ok / { p = 1; print; next }
		    p && /^#/ { print; next } { p = 0 }' "$log" |
		    head -60 | sed 's/^/    /'
		echo "    ..."
		sed 's/^/    /' "$log" | tail -20
	else
		if [ "$s" -gt 0 ]; then echo "PASS $name ($p ok, $s skipped)"; else echo "PASS $name ($p ok)"; fi
	fi
	rm -f "$log"
}

run_build() {	# build dir
	b=$1
	for t in "$b"/tests/*; do
		[ -x "$t" ] || continue
		case $(basename "$t") in ${PEP_ONLY:-*}) ;; *) continue ;; esac
		run_one "$b:$(basename "$t")" "$t" "$TOP/tests/data"
	done
	for c in tests/cases/*.sh; do
		[ -f "$c" ] || continue
		case $(basename "$c") in ${PEP_ONLY:-*}) ;; *) continue ;; esac
		run_one "$b:$(basename "$c" .sh)" env BUILD="$b" \
			PEP_BAKE="$TOP/$b/pep-bake" sh "$c"
	done
}

run_build build
if [ -z "${PEP_NO_ASAN:-}" ] && [ -d build-asan ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	run_build build-asan
fi
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
