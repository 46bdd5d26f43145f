#!/bin/sh
# Install pep's build and test dependencies on Debian/Ubuntu (apt-get).
# Idempotent: packages already present are skipped by apt-get.
#   install-deps.sh          build, test, run, the demo (make check, demo)
#   install-deps.sh bench    and the benchmarks' references (make bench)
#   install-deps.sh bake     pep-bake and the guest files only
#   install-deps.sh images   and what makes the recipes' input disks
set -eu

# (pepd's seccomp filter and landlock rules are hand-written against the
# kernel's uapi headers: no libseccomp; systemd below is for
# systemd-analyze in tests/cases/pepd_privsep.sh)
BUILD="build-essential pkg-config libext2fs-dev libfdisk-dev libarchive-dev
libcurl4-openssl-dev libcjson-dev libssl-dev zlib1g-dev libzstd-dev
libidn2-dev"
TEST="e2fsprogs gdisk qemu-utils mtools dosfstools clang llvm
libclang-rt-14-dev xxd bc time python3 python3-yaml jq openssl iproute2 curl
zstd
nghttp2-server fdisk openrc xfsprogs strace eatmydata
musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
firefox-esr chromium procps systemd"
# The intercept runner: node runs it (tests), npm ci installs its
# node_modules (make guest). Debian's nodejs and npm, unless node and npm
# are there already (NodeSource's nodejs carries its own npm and
# conflicts with Debian's).
NODE="nodejs npm"
command -v node >/dev/null && command -v npm >/dev/null && NODE=""
# pep-run: QEMU, UEFI firmware, and what tests/runner/mkguest.sh needs to
# build the test guest (the kernel itself is fetched with apt-get download);
# GRUB's EFI modules for tests/runner/mkefi.sh (grub-mkimage)
RUN="qemu-system-x86 ovmf busybox-static cpio grub-efi-amd64-bin"
# The demo guest and the flow test (images/debian-browser.sh): a Debian
# root built by mmdebstrap from the Debian archive, checked with its keys
FLOW="mmdebstrap debian-archive-keyring"
# `make bench` only (ci/install-deps.sh bench): the references that
# tests/bench/bench-pepd.sh and bench-bridge.sh measure against, and
# mkfs.xfs for bench-copy.sh's XFS filesystem
BENCH="squid nginx-light socat xfsprogs"
# What pep-bake and the guest files need, no more (Ubuntu too: no
# firefox-esr there): `install-deps.sh bake` (ci/action.yml, the images
# job's bakes); `install-deps.sh images` adds what makes the recipes'
# input disks (ci/recipe-sources.sh)
GUEST="musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
BAKE="$BUILD $GUEST $NODE qemu-utils zstd jq"
IMAGES="$BAKE $FLOW e2fsprogs gdisk mtools dosfstools python3 curl
grub-efi-amd64-bin"
case ${1:-} in
"")	ALL="$BUILD $TEST $NODE $RUN $FLOW" ;;
bench)	ALL="$BUILD $TEST $NODE $RUN $FLOW $BENCH" ;;
bake)	ALL=$BAKE ;;
images)	ALL=$IMAGES ;;
*)	echo "usage: install-deps.sh [bench|bake|images]" >&2; exit 2 ;;
esac

missing=""
for p in $ALL; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
