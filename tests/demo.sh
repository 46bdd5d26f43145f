#!/bin/sh
# make demo: build an Alpine-like 200 MiB UEFI cloud-init image as a
# dynamic VHD (from the real Alpine minirootfs), bake it with pep-bake,
# and show what changed.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
cd "$TOP"
PEP_BAKE=${PEP_BAKE:-$BUILD/pep-bake}
DEMO=$BUILD/demo
VHD=$DEMO/alpine.vhd
RAW=$DEMO/alpine.raw
ROOT="$RAW?offset=1048576"

step() { printf '\n== %s\n' "$*"; }

make_input() {
	step "Alpine-like UEFI image (GPT, ESP + ext4 root, GRUB, cloud-init)"
	mkdir -p "$DEMO"
	sh tests/fixtures/mkdisk.sh gpt cloudinit vhd-dynamic "$VHD"
	qemu-img info -f vpc "$VHD" | grep -E '^(file format|virtual size)'
}

bake() {
	step "$PEP_BAKE $VHD -o $RAW"
	rm -f "$RAW"
	"$PEP_BAKE" -v "$VHD" -o "$RAW"
}

show() {
	step "partition table after (sgdisk -p)"
	sgdisk -p "$RAW" | sed -n '/^Disk identifier/p;/^Number/,$p'
	step "kernel command line in /boot/grub/grub.cfg"
	debugfs -R 'cat /boot/grub/grub.cfg' "$ROOT" 2>/dev/null |
	    grep -E '^[[:space:]]*linux' | sed 's/^[[:space:]]*/  /'
	step "/etc/cloud/cloud.cfg.d/99_nocloud.cfg"
	debugfs -R 'cat /etc/cloud/cloud.cfg.d/99_nocloud.cfg' "$ROOT" \
	    2>/dev/null | sed 's/^/  /'
	step "e2fsck -fn on the root filesystem"
	e2fsck -fn "$ROOT" 2>&1 | tail -1 | sed 's/^/  /'
	step "sizes (first column: KiB allocated; the raw disk is sparse)"
	ls -ls "$VHD" "$RAW" | sed 's/^/  /'
}

[ -x "$PEP_BAKE" ] || { echo "demo: $PEP_BAKE: build it first (make)" >&2
	exit 1; }
make_input
bake
show
