#!/bin/sh
# bench-flow.sh: the whole flow's time, from pep-run's start to the first
# page rendered in the guest (the demo page, through pepd), under TCG and
# under KVM when it works here, with the breakdown: firmware + GRUB,
# kernel + initramfs, init, Firefox's start, the first response, the page
# (tests/flow/timeline.py); then the baked image's size against its
# seed's (the image pep-bake started from). Each run boots a disk baked
# anew (a cold Firefox profile, as a first boot has). Needs root, as the
# flow test does.
#   PEP_BENCH_ACCEL="tcg kvm"  the accelerators to try (default both)
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
BAKE=$TOP/$BUILD/pep-bake
RUN=$TOP/$BUILD/pep-run
RECIPE=$TOP/images/debian-browser.json
SEED=$TOP/build/images/debian-browser.vhd
T=$(mktemp -d /tmp/pep-bench.XXXXXX)
trap 'rm -rf --one-file-system "$T"' EXIT

die() { echo "bench-flow: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (the guest image, a network" \
    "namespace): sudo make bench"
for x in "$BAKE" "$RUN" "$TOP/$BUILD/pepd"; do
	[ -x "$x" ] || die "$x is missing: make all guest"
done
sh "$TOP/images/debian-browser.sh" -q || die "no guest image (above)"

mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }
echo "bench-flow: the demo guest (images/debian-browser.json): pep-run" \
    "start to the first page rendered"
for accel in ${PEP_BENCH_ACCEL:-tcg kvm}; do
	if [ "$accel" = kvm ] && ! "$RUN" --disk "$SEED" --accel auto \
	    --efi --print-cmdline 2>"$T/why" | grep -q accel=kvm; then
		echo "  kvm: not measured: $(sed -n \
		    's/^pep-run: accelerator: //p' "$T/why")"
		continue
	fi
	rm -f "$T/disk.raw"
	"$BAKE" -q --recipe "$RECIPE" -o "$T/disk.raw" ||
	    die "pep-bake failed"
	s0=$(date +%s)
	sh "$TOP/tests/flow/flow-run.sh" -d "$T/disk.raw" -o "$T/$accel" \
	    -b "$BUILD" -a "$accel" -q >"$T/$accel.out" 2>&1 ||
	    die "the flow could not run: $(tail -3 "$T/$accel.out")"
	ok=$(jq -r 'select(.event == "visit") | .ok' \
	    "$T/$accel/results.jsonl" 2>/dev/null)
	echo "  $accel (2 vCPUs, 2 GiB; pep-run exit $(cat "$T/$accel/rc")," \
	    "page loaded: ${ok:-no}; $(($(date +%s) - s0)) s in all):"
	cat "$T/$accel/timeline.txt"
done

# The seed (what pep-bake read) and the baked disk: bytes the file
# claims (apparent) and bytes stored (allocated).
[ -f "$T/disk.raw" ] || "$BAKE" -q --recipe "$RECIPE" -o "$T/disk.raw"
vsize=$(qemu-img info --output=json "$SEED" | jq -r '."virtual-size"')
echo "bench-flow: image sizes (apparent / allocated):"
echo "  seed  $(basename "$SEED"): $(mib "$(stat -c %s "$SEED")") /" \
    "$(mib $(($(stat -c %b "$SEED") * 512))) (a $(mib "$vsize") disk)"
echo "  baked $(basename "$RECIPE" .json) raw: $(mib \
    "$(stat -c %s "$T/disk.raw")") / $(mib \
    $(($(stat -c %b "$T/disk.raw") * 512))) (grown to the recipe's size;" \
    "sparse)"
