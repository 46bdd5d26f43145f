#!/bin/sh
# ci/recipe-sources.sh DIR [RECIPE...]: the input disk of every recipe in
# images/ (or of those named), as DIR/NAME.src (NAME: the recipe's file
# name without .json), for ci/bake-recipes.sh:
#   images/NAME.sh beside the recipe   built by it (the Debian browser
#                                      guest: mmdebstrap, needs root)
#   "source" an Alpine cloud image     downloaded from Alpine's CDN, its
#                                      sha512 checked against the one
#                                      published beside it
#   no "source" (images/test-fixture)  the test fixture disk make check
#                                      bakes it with (tests/fixtures/
#                                      mkdisk.sh gpt cloudinit raw)
# A source already at the recipe's "source" path is copied. Writes
# DIR/SOURCES.sha256. The Debian guest is not byte-reproducible (package
# timestamps, the VHD footer's time), so the images job builds the
# sources once and bakes the same bytes on every runner.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "recipe-sources: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: recipe-sources.sh DIR [RECIPE...]"
DIR=$1; shift
[ $# -gt 0 ] || set -- "$TOP"/images/*.json
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
command -v jq >/dev/null || die "jq is missing: apt-get install jq"

fetch_alpine() {	# name out
	v=$(printf '%s' "$1" | sed -n 's/.*alpine-\([0-9]*\.[0-9]*\)\..*/\1/p')
	[ -n "$v" ] || die "$1: not an Alpine cloud image name, and no" \
	    "builder beside its recipe"
	u=https://dl-cdn.alpinelinux.org/alpine/v$v/releases/cloud/$1
	echo "recipe-sources: downloading $u"
	curl -fsSL -o "$2.part" "$u" && curl -fsSL -o "$2.sha512" "$u.sha512" ||
	    die "cannot download $u (no network?)"
	[ "$(cut -d' ' -f1 <"$2.sha512")" = \
	    "$(sha512sum "$2.part" | cut -d' ' -f1)" ] ||
	    die "$1: sha512 mismatch"
	rm -f "$2.sha512"
	mv "$2.part" "$2"
}

for r in "$@"; do
	name=$(basename "$r" .json)
	out=$DIR/$name.src
	src=$(jq -r '.source | if type == "object" then .path else . end' \
	    "$r") || die "$r: not JSON"
	rdir=$(cd "$(dirname "$r")" && pwd)
	if [ -f "$rdir/$name.sh" ]; then
		echo "recipe-sources: $name: $rdir/$name.sh"
		sh "$rdir/$name.sh" -o "$DIR/$name.build"
		cp --sparse=always "$DIR/$name.build" "$out.tmp"
		rm -f "$DIR/$name.build" "$DIR/$name.build.key"
		mv "$out.tmp" "$out"
	elif [ "$src" = null ]; then
		echo "recipe-sources: $name: the test fixture disk"
		sh "$TOP/tests/fixtures/mkdisk.sh" gpt cloudinit raw "$out"
	else
		case $src in /*) ;; *) src=$rdir/$src ;; esac
		if [ -f "$src" ]; then
			cp --sparse=always "$src" "$out"
		else
			fetch_alpine "$(basename "$src")" "$out"
		fi
	fi
done
(cd "$DIR" && sha256sum -- *.src >SOURCES.sha256.tmp &&
    mv SOURCES.sha256.tmp SOURCES.sha256 && cat SOURCES.sha256)
