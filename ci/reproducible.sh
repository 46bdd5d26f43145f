#!/bin/sh
# ci/reproducible.sh: check that pep-bake's output depends only on its
# input. Builds pep, makes a demo input (tests/fixtures/mkdisk.sh: GPT,
# cloud-init, dynamic VHD), bakes it twice into differently named files,
# a second apart and the second time under another TZ and umask, and
# compares the two outputs' sha256. Prints the hash and writes it to
# $BUILD/reproducible.sha256; exits 1 if the outputs differ. Both bakes
# see the same SOURCE_DATE_EPOCH, if one is set. PEP_BAKE overrides the
# binary ($BUILD/pep-bake).
#
# mkdisk.sh must run as root (it chowns files of the image tree); when
# this script is not run as root it runs mkdisk.sh through sudo.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
BUILD=${BUILD:-build}
PEP_BAKE=${PEP_BAKE:-$BUILD/pep-bake}
SUM=$BUILD/reproducible.sha256

die() { echo "reproducible.sh: $*" >&2; exit 1; }

make_input() {	# OUT
	if [ "$(id -u)" -eq 0 ]; then
		sh tests/fixtures/mkdisk.sh gpt cloudinit vhd-dynamic "$1"
	else
		command -v sudo >/dev/null 2>&1 ||
		    die "mkdisk.sh needs root, and sudo is missing"
		sudo env PEP_CACHE="$tmp/cache" \
		    sh tests/fixtures/mkdisk.sh gpt cloudinit vhd-dynamic "$1"
	fi
}

cleanup() {
	if [ -d "$tmp/cache" ] && [ "$(id -u)" -ne 0 ]; then
		sudo rm -rf "$tmp/cache"
	fi
	rm -rf "$tmp"
}

make all guest
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pep-repro.XXXXXX")
trap cleanup EXIT
trap 'exit 1' INT TERM
chmod 755 "$tmp"

make_input "$tmp/alpine.vhd"

# POSIX TZ strings: no tzdata needed, and +13:45 apart.
echo "== bake 1: $tmp/first.raw (TZ=UTC0, umask 022)"
(
	umask 022
	TZ=UTC0 "$PEP_BAKE" -q "$tmp/alpine.vhd" -o "$tmp/first.raw"
)
sleep 1
echo "== bake 2: $tmp/second-name.raw (TZ=PEP-13:45, umask 077)"
(
	umask 077
	TZ=PEP-13:45 "$PEP_BAKE" -q "$tmp/alpine.vhd" \
	    -o "$tmp/second-name.raw"
)

h1=$(sha256sum <"$tmp/first.raw" | cut -d' ' -f1)
h2=$(sha256sum <"$tmp/second-name.raw" | cut -d' ' -f1)
echo "first:  $h1"
echo "second: $h2"
if [ "$h1" != "$h2" ]; then
	cmp -l "$tmp/first.raw" "$tmp/second-name.raw" 2>/dev/null |
	    head -5 | sed 's/^/  differs (offset, octal bytes): /' >&2
	die "MISMATCH: the two bakes differ"
fi
mkdir -p "$BUILD"
echo "$h1  alpine-gpt-cloudinit.raw" >"$SUM"
echo "reproducible: sha256 $h1 (written to $SUM)"
