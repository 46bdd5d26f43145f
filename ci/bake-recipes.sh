#!/bin/sh
# ci/bake-recipes.sh [-z] SOURCES OUT [RECIPE...]: bake every recipe in
# images/ (or those named) whose
# input ci/recipe-sources.sh left in SOURCES (NAME.src) into OUT/NAME.raw
# with $BUILD/pep-bake, then write OUT/SHA256SUMS: the sha256 of every
# file the bakes wrote (the disks; and the seed and the build manifest
# once pep-bake writes them beside the disk). With -z the disks are then
# compressed for publishing (NAME.raw.zst, summed too; the raw files
# removed: `zstd -d` gives back the bytes whose sum is listed).
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
PEP_BAKE=${PEP_BAKE:-$TOP/$BUILD/pep-bake}
die() { echo "bake-recipes: $*" >&2; exit 1; }
ZST=""
[ "${1:-}" = -z ] && { ZST=1; shift; }
[ $# -ge 2 ] || die "usage: bake-recipes.sh [-z] SOURCES OUT [RECIPE...]"
SRC=$(cd "$1" && pwd) || die "$1: no such folder"
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
shift 2
[ $# -gt 0 ] || set -- "$TOP"/images/*.json
[ -x "$PEP_BAKE" ] || die "$PEP_BAKE is missing: make all guest"

n=0
for r in "$@"; do
	name=$(basename "$r" .json)
	[ -f "$SRC/$name.src" ] || die "$SRC/$name.src is missing" \
	    "(ci/recipe-sources.sh $SRC)"
	echo "bake-recipes: $name"
	"$PEP_BAKE" --recipe "$r" "$SRC/$name.src" -o "$OUT/$name.raw"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || die "no recipes in $TOP/images"
cd "$OUT"
sums() {
	find . -maxdepth 1 -type f ! -name SHA256SUMS ! -name '*.tmp' "$@" |
	    sed 's|^\./||' | LC_ALL=C sort | xargs -r sha256sum
}
sums ! -name '*.zst' >SHA256SUMS.tmp
if [ -n "$ZST" ]; then
	for f in *.raw; do
		zstd -q -T0 -10 --rm -f "$f" -o "$f.zst"
	done
	sums -name '*.zst' >>SHA256SUMS.tmp
fi
mv SHA256SUMS.tmp SHA256SUMS
cat SHA256SUMS
