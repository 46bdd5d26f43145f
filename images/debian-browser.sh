#!/bin/sh
# images/debian-browser.sh [-o OUT.vhd] [-q]: the demo guest, a browser
# VM built from Debian packages and laid out like an Alpine UEFI cloud
# image, so that pep-bake takes the very path an Alpine image takes
# (images/debian-browser.json bakes it):
#   GPT  p1 "EFI"  8 MiB FAT ESP: EFI/BOOT/BOOTX64.EFI, a GRUB image made
#                  with grub-mkimage (grub-efi-amd64-bin) whose embedded
#                  config finds the root by its UUID and loads its grub.cfg
#        p2 "/"    ext4 labelled "/": Debian 12 (mmdebstrap, minbase) with
#                  sysvinit + OpenRC as init, linux-image-cloud-amd64, an
#                  initramfs holding virtio_console and the vsock modules,
#                  firefox-esr, nodejs, fonts, acpid (ACPI powerdown);
#                  /boot/grub/grub.cfg boots it with console=ttyS0,115200n8,
#                  which pep-bake rewrites to console=hvc0
# delivered as a dynamic VHD. No network device is configured: the guest
# reaches its policy daemon over vsock only, once baked (pexi-boot).
#
# OUT (default build/images/debian-browser.vhd) is cached: OUT.key holds
# the sha256 of this script and of the Debian mirror and suite it was
# built from; a run finding the same key reuses OUT. Needs root (the root
# tree's files belong to many users) and, from the Debian/Ubuntu archive:
# mmdebstrap, debian-archive-keyring, e2fsprogs, gdisk, dosfstools, mtools,
# grub-efi-amd64-bin, qemu-utils (ci/install-deps.sh installs them).
#   PEP_DEBIAN_MIRROR  the Debian archive (default http://deb.debian.org/debian)
#   PEP_DEBIAN_SUITE   default bookworm
set -eu
here=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$here/.." && pwd)
OUT=$TOP/build/images/debian-browser.vhd
QUIET=""
MIRROR=${PEP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${PEP_DEBIAN_SUITE:-bookworm}
EPOCH=1735689600			# 2025-01-01 00:00 UTC
FS_UUID=5e1f7c2a-3b4d-4e6f-8a9b-0c1dde0b1a4e
HASH_SEED=9d8c7b6a-5f4e-4d3c-8b2a-1f0e9dde0b1a
DISK_GUID=0F1E2D3C-4B5A-4968-8776-A5B4C3DE0B1A
ESP_GUID=1A2B3C4D-5E6F-4071-8293-A4B5C6DE0B1A
ROOT_GUID=9F8E7D6C-5B4A-4392-8170-6F5E4DDE0B1A
ESP_VOLID=1D2E3F42
PACKAGES=openrc,sysvinit-core,linux-image-cloud-amd64,initramfs-tools,\
firefox-esr,nodejs,fonts-dejavu-core,acpid,busybox
GRUB_DIR=/usr/lib/grub/x86_64-efi

die() { echo "debian-browser: $*" >&2; exit 1; }
say() { [ -n "$QUIET" ] || echo "debian-browser: $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	-o) [ $# -ge 2 ] || die "-o needs a file name"; OUT=$2; shift 2 ;;
	-q) QUIET=1; shift ;;
	-h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0 ;;
	*) die "unknown argument '$1' (usage: debian-browser.sh [-o OUT.vhd] [-q])" ;;
	esac
done
case $OUT in /*) ;; *) OUT=$(pwd)/$OUT ;; esac

key() {
	{ sha256sum <"$0"; echo "$MIRROR $SUITE"; } | sha256sum | cut -c1-16
}
KEY=$(key)
if [ -s "$OUT" ] && [ "$(cat "$OUT.key" 2>/dev/null)" = "$KEY" ]; then
	say "$OUT is up to date (key $KEY)"
	exit 0
fi

# ---- what it needs ----------------------------------------------------
need() {	# command package
	command -v "$1" >/dev/null 2>&1 ||
	    die "$1 is missing: apt-get install $2 (or: make deps)"
}
[ "$(id -u)" -eq 0 ] || die "must run as root: mmdebstrap builds the" \
    "root tree as root (its files belong to many users); try sudo"
need mmdebstrap mmdebstrap
need mkfs.ext4 e2fsprogs
need sgdisk gdisk
need mkfs.vfat dosfstools
need mcopy mtools
need grub-mkimage grub-efi-amd64-bin
need qemu-img qemu-utils
[ -f "$GRUB_DIR/linux.mod" ] ||
    die "no $GRUB_DIR: apt-get install grub-efi-amd64-bin (or: make deps)"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "no $KEYRING: apt-get install debian-archive-keyring"

mkdir -p "$(dirname "$OUT")"
W=$(mktemp -d "$(dirname "$OUT")/.debian-browser.XXXXXX")
trap 'rm -rf --one-file-system "$W"' EXIT
# Stopped: mmdebstrap (in the background) unmounts what it mounted in
# the root before the tree goes.
trap '[ -z "${mm:-}" ] || { kill "$mm" 2>/dev/null; wait "$mm"; }; exit 1' INT TERM

# ---- the root tree ----------------------------------------------------
# The initramfs: only the modules listed (a small image to unpack), those
# a virtio disk needs, and virtio_console (hvc0 is a module in Debian's
# cloud kernel: without it nothing reaches hvc0) and the vsock transport,
# in place before the kernel package makes the initramfs.
initramfs_hook() {
	cat <<'EOF'
mkdir -p "$1/usr/share/initramfs-tools/modules.d" "$1/etc/initramfs-tools/conf.d"
printf '%s\n' virtio_pci virtio_blk virtio_console vsock \
    vmw_vsock_virtio_transport >"$1/usr/share/initramfs-tools/modules.d/pep"
printf 'MODULES=list\nCOMPRESS=zstd\n' >"$1/etc/initramfs-tools/conf.d/pep"
EOF
}

debootstrap() {
	say "mmdebstrap: $SUITE from $MIRROR ($(echo "$PACKAGES" |
	    tr ',' ' '))"
	# Its "I:" lines (the stages: download, extract, install, hooks) are
	# the progress; all it says goes to mmdebstrap.log.
	: >"$W/mmdebstrap.log"
	SOURCE_DATE_EPOCH=$EPOCH mmdebstrap --variant=minbase \
	    --mode=root --keyring="$KEYRING" --include="$PACKAGES" \
	    --essential-hook="$(initramfs_hook)" \
	    --dpkgopt='path-exclude=/usr/share/doc/*' \
	    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	    --dpkgopt='path-exclude=/usr/share/man/*' \
	    --dpkgopt='path-exclude=/usr/share/locale/*' \
	    --dpkgopt='path-exclude=/usr/share/info/*' \
	    "$SUITE" "$W/root" "deb $MIRROR $SUITE main" \
	    >>"$W/mmdebstrap.log" 2>&1 &
	mm=$!
	# tail ends once mmdebstrap has (--pid)
	[ -n "$QUIET" ] || tail -n +1 -f --pid="$mm" "$W/mmdebstrap.log" |
	    sed -un 's/^I: \(.*\)/debian-browser:   \1/p' >&2
	if ! wait "$mm"; then
		tail -15 "$W/mmdebstrap.log" | sed 's/^/  /' >&2
		die "mmdebstrap could not build the root from $MIRROR (above:" \
		    "its last lines). Without access to a Debian archive set" \
		    "PEP_DEBIAN_MIRROR to one you can reach."
	fi
}

put() {	# file mode; stdin
	mkdir -p "$(dirname "$1")"
	cat >"$1"
	chmod "$2" "$1"
}

# The guest's own settings: a name for itself (Firefox looks it up every
# 5 s), no login consoles (sealed), ACPI power button -> clean poweroff,
# the boot files an Alpine UEFI image has.
customize() {
	r=$W/root
	kver=$(ls "$r/lib/modules")
	[ -f "$r/boot/vmlinuz-$kver" ] && [ -f "$r/boot/initrd.img-$kver" ] ||
	    die "no kernel or initramfs in the root (mmdebstrap log:" \
	    "$W/mmdebstrap.log)"
	echo pep >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tpep\n::1\tlocalhost ip6-localhost\n' |
	    put "$r/etc/hosts" 644
	# The root by its device name: without udev there are no
	# /dev/disk/by-* links to find a UUID through (pep-run's disk is
	# always the first virtio-blk disk). No fsck at boot.
	printf '/dev/vda2\t/\text4\tdefaults,noatime\t0 0\n' |
	    put "$r/etc/fstab" 644
	sed -i '/getty/d' "$r/etc/inittab"
	printf 'event=button/power\naction=/sbin/poweroff\n' |
	    put "$r/etc/acpi/events/powerbtn" 644
	# OpenRC's name for "local filesystems mounted": pexi-boot needs it.
	# Debian's OpenRC runs its own mountall.sh (LSB name: mountall).
	cat <<'EOF' | put "$r/etc/init.d/localmount" 755
#!/sbin/openrc-run
# Debian mounts local filesystems with mountall.sh (sysinit); this gives
# that OpenRC's own name, localmount, which services such as pexi-boot need.
description="local filesystems (Debian: mountall.sh)"
depend() {
	need mountall
}
start() {
	return 0
}
EOF
	cat <<'EOF' | put "$r/etc/init.d/loopback" 755
#!/sbin/openrc-run
# The loopback interface up, as OpenRC's own loopback service does (the
# guest has no other interface): pexi-bridge, Firefox's WebDriver BiDi
# and the runner talk over 127.0.0.1.
description="loopback interface"
start() {
	ebegin "Bringing up the loopback interface"
	busybox ip link set lo up
	eend $?
}
EOF
	ln -sf /etc/init.d/loopback "$r/etc/runlevels/sysinit/loopback"
	# What a sealed VM does not need at boot: udev (the modules it needs
	# are loaded by name: the initramfs's, and the ACPI power button's
	# below), fsck, NFS, the hardware clock (the kernel reads the RTC),
	# sysctl, cgroups, D-Bus, the console-brightness and boot-log savers.
	for s in sysinit/udev sysinit/checkfs.sh sysinit/brightness \
	    sysinit/hwclock.sh sysinit/mountnfs.sh \
	    sysinit/mountnfs-bootclean.sh sysinit/mount-configfs \
	    sysinit/cgroups sysinit/procps default/dbus default/bootlogs \
	    default/rc.local; do
		rm -f "$r/etc/runlevels/$s"
	done
	echo button >>"$r/etc/modules"
	echo 'rc_logger="YES"' >>"$r/etc/rc.conf"
	mkdir -p "$r/boot/grub" "$r/boot/efi"
	cat <<EOF | put "$r/boot/grub/grub.cfg" 644
# As Alpine's grub-mkconfig leaves it: serial console, no timeout
serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1
terminal_input serial console
terminal_output serial console
set default="0"
set timeout=0
menuentry 'Debian GNU/Linux, with Linux $kver' {
	insmod gzio
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root $FS_UUID
	echo	'Loading Linux $kver ...'
	linux	/boot/vmlinuz-$kver root=UUID=$FS_UUID ro console=ttyS0,115200n8
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-$kver
}
EOF
	rm -rf "$r/var/cache/apt/"*.bin "$r/var/lib/apt/lists/"* \
	    "$r/var/log/"*.log "$r/etc/machine-id"
	: >"$r/etc/machine-id"
}

# ---- the disk -----------------------------------------------------------
mk_root() {	# file
	mib=$(du -sm "$W/root" | cut -f1)
	mib=$((mib + mib / 5 + 64))
	say "ext4 root: $mib MiB"
	truncate -s "${mib}M" "$1"
	E2FSPROGS_FAKE_TIME=$EPOCH mkfs.ext4 -q -F -L / -U "$FS_UUID" \
	    -E "hash_seed=$HASH_SEED,lazy_itable_init=1,lazy_journal_init=1,nodiscard" \
	    -d "$W/root" "$1" "${mib}M"
}

mk_esp() {	# file
	cat >"$W/early.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $FS_UUID
set prefix=(\$root)/boot/grub
configfile (\$root)/boot/grub/grub.cfg
EOF
	SOURCE_DATE_EPOCH=$EPOCH grub-mkimage -O x86_64-efi -d "$GRUB_DIR" \
	    -o "$W/BOOTX64.EFI" -c "$W/early.cfg" -p /boot/grub \
	    part_gpt fat ext2 search search_fs_uuid configfile normal linux \
	    gzio echo test serial terminal efi_gop all_video
	touch -d "@$EPOCH" "$W/BOOTX64.EFI"
	mkfs.vfat --invariant -i "$ESP_VOLID" -n EFI -C "$1" 8192 >/dev/null
	MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH=$EPOCH mmd -i "$1" ::/EFI \
	    ::/EFI/BOOT
	MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH=$EPOCH mcopy -m -i "$1" \
	    "$W/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
}

# 1 MiB, the ESP (8 MiB), the root, 1 MiB for the backup GPT.
assemble() {	# raw
	mk_esp "$W/esp.img"
	mk_root "$W/root.img"
	root_s=$(($(stat -c %s "$W/root.img") / 512))
	truncate -s $(((2048 + 16384 + root_s + 2048) * 512)) "$1"
	sgdisk -U "$DISK_GUID" \
	    -n 1:2048:+8M -t 1:EF00 -c 1:EFI -u "1:$ESP_GUID" \
	    -n "2:18432:+$root_s" -t 2:8300 -c 2:/ -u "2:$ROOT_GUID" "$1" \
	    >"$W/sgdisk.log" 2>&1 || { cat "$W/sgdisk.log" >&2
	    die "sgdisk failed"; }
	dd if="$W/esp.img" of="$1" bs=1M seek=1 conv=notrunc,sparse status=none
	dd if="$W/root.img" of="$1" bs=512 seek=18432 conv=notrunc,sparse \
	    status=none
}

t0=$(date +%s)
debootstrap
say "root tree: $(du -sh "$W/root" | cut -f1) ($(($(date +%s) - t0)) s)"
customize
assemble "$W/disk.raw"
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size \
    "$W/disk.raw" "$W/disk.vhd"
mv "$W/disk.vhd" "$OUT"
echo "$KEY" >"$OUT.key"
say "$OUT: $(du -h "$OUT" | cut -f1) ($(($(date +%s) - t0)) s)"
