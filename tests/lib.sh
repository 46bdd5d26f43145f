# Shared helpers for pep's shell test cases (tests/cases/*.sh).
# Each case is a POSIX sh script that sources this file and prints TAP
# lines through ok/not_ok; tests/run.sh counts them.

set -u
TOP=$(cd "$(dirname "$0")/../.." 2>/dev/null && pwd)
[ -f "$TOP/Makefile" ] || TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
PEP_BAKE=${PEP_BAKE:-$TOP/$BUILD/pep-bake}
PEP_TMP=${PEP_TMP:-$(mktemp -d /tmp/pep-test.XXXXXX)}
PEP_CACHE=${PEP_CACHE:-$TOP/build/fixtures}
_n=0
_fail=0

# --one-file-system: a mount left under PEP_TMP (a bind of /dev, say) is
# never descended into.
cleanup_tmp() {
	[ -n "${PEP_KEEP:-}" ] || rm -rf --one-file-system "$PEP_TMP"
}
trap cleanup_tmp EXIT

ok() { _n=$((_n + 1)); echo "ok $_n - $*"; }
not_ok() { _n=$((_n + 1)); _fail=$((_fail + 1)); echo "not ok $_n - $*"; }
skip() { _n=$((_n + 1)); echo "ok $_n - # SKIP $*"; }
diag() { echo "# $*"; }

# check DESCRIPTION COMMAND...: ok if the command succeeds.
check() {
	_d=$1; shift
	if "$@" >"$PEP_TMP/.out" 2>&1; then ok "$_d"; else
		not_ok "$_d"; sed 's/^/#   /' "$PEP_TMP/.out" | head -20
	fi
}

# check_fail DESCRIPTION COMMAND...: ok if the command fails.
check_fail() {
	_d=$1; shift
	if "$@" >"$PEP_TMP/.out" 2>&1; then
		not_ok "$_d (unexpected success)"
	else ok "$_d"; fi
}

# is DESCRIPTION GOT WANT: ok if the two strings are equal.
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else
		not_ok "$1"; diag "  got:  '$(printf '%s' "$2" | head -c 400)'"
		diag "  want: '$3'"
	fi
}

# like DESCRIPTION TEXT REGEX: ok if TEXT matches the extended REGEX.
like() {
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then ok "$1"; else
		not_ok "$1"; diag "  got: $(printf '%s' "$2" | head -c 300)"
		diag "  want: /$3/"
	fi
}

# The Alpine minirootfs tarball for ARCH (default x86_64): ../shared/alpine,
# then $PEP_FIXTURES, then Alpine's CDN with the sha512 checked.
alpine_minirootfs() {
	_arch=${1:-x86_64}
	_f=alpine-minirootfs-3.20.3-$_arch.tar.gz
	for _d in "$TOP/../shared/alpine" "${PEP_FIXTURES:-/nonexistent}" \
	    "$PEP_CACHE"; do
		if [ -f "$_d/$_f" ]; then echo "$_d/$_f"; return 0; fi
	done
	_sums="$TOP/../shared/alpine/SHA512SUMS"
	[ -f "$_sums" ] || _sums="$TOP/tests/fixtures/SHA512SUMS"
	mkdir -p "$PEP_CACHE"
	_url=https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/$_arch/$_f
	if ! curl -fsSL -o "$PEP_CACHE/$_f.part" "$_url" 2>/dev/null; then
		rm -f "$PEP_CACHE/$_f.part"
		echo "the Alpine minirootfs $_f is needed: it is not in" \
		    "$TOP/../shared/alpine, \$PEP_FIXTURES or $PEP_CACHE," \
		    "and cannot be downloaded from $_url (no network?)." \
		    "On a machine with internet, download it (its sha512 is" \
		    "in tests/fixtures/SHA512SUMS) and put it in $PEP_CACHE" \
		    "or in a folder named by PEP_FIXTURES" >&2
		return 1
	fi
	_want=$(grep " $_f\$" "$_sums" | cut -d' ' -f1)
	_got=$(sha512sum "$PEP_CACHE/$_f.part" | cut -d' ' -f1)
	if [ -z "$_want" ] || [ "$_want" != "$_got" ]; then
		echo "alpine_minirootfs: $_f: sha512 mismatch" >&2
		rm -f "$PEP_CACHE/$_f.part"; return 1
	fi
	mv "$PEP_CACHE/$_f.part" "$PEP_CACHE/$_f"
	echo "$PEP_CACHE/$_f"
}

done_testing() {
	echo "1..$_n"
	[ "$_fail" -eq 0 ]
}

# need_built PROGRAM...: a program this build makes must be there: one
# missing fails the case (it is the build's fault, never a reason to skip).
need_built() {
	for _p in "$@"; do
		[ -x "$_p" ] && continue
		not_ok "$_p not built (make all, make guest)"
		done_testing
		exit 1
	done
}
