#!/bin/sh
# tests/runner/mkefi.sh GUESTDIR OUTDIR: an Alpine-UEFI-like test disk,
# OUTDIR/efi.raw (cached), that really boots under OVMF:
#   GPT  p1 "EFI"  8 MiB FAT ESP: EFI/BOOT/BOOTX64.EFI, a GRUB image made
#                  with grub-mkimage from Debian's grub-efi-amd64-bin,
#                  whose embedded config finds the root by its label and
#                  loads its grub.cfg
#        p2 "/"    ext4 labelled "/": /etc/alpine-release, /etc/os-release,
#                  /boot/vmlinuz-virt (Debian's cloud kernel, from
#                  GUESTDIR, built by mkguest.sh), /boot/initramfs-virt,
#                  /boot/grub/grub.cfg booting it with console=ttyS0,115200n8
# The initramfs (busybox and the virtio modules, taken from GUESTDIR's
# initrd.img) loads the modules, then prints
#   "PEPEFI direct hvc0"      straight to /dev/hvc0 (proof of life),
#   "PEPEFI kmsg marker"      through /dev/kmsg (the kernel's console),
#   "PEPEFI console marker"   to /dev/console (init's console),
# and powers off. Test-time tools only: cpio, grub-mkimage, mkfs.vfat,
# mtools, mkfs.ext4 -d, sgdisk, dd.
set -eu
guest=$(cd "$1" && pwd)
out=$2
here=$(cd "$(dirname "$0")" && pwd)
[ -s "$out/efi.raw" ] && [ "$out/efi.raw" -nt "$here/mkefi.sh" ] &&
    [ "$out/efi.raw" -nt "$guest/initrd.img" ] &&
    [ "$out/efi.raw" -nt "$guest/vmlinuz" ] && exit 0
for t in cpio grub-mkimage mkfs.vfat mmd mcopy mkfs.ext4 sgdisk; do
	command -v "$t" >/dev/null ||
	    { echo "mkefi: $t not installed" >&2; exit 1; }
done
gdir=/usr/lib/grub/x86_64-efi
[ -f "$gdir/linux.mod" ] ||
    { echo "mkefi: no $gdir (grub-efi-amd64-bin)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d /tmp/pep-mkefi.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# ---- the initramfs ---------------------------------------------------------
mkdir -p "$tmp/g" "$tmp/i/bin" "$tmp/i/lib" "$tmp/i/proc" "$tmp/i/sys" \
    "$tmp/i/dev"
(cd "$tmp/g" && gzip -dc "$guest/initrd.img" | cpio -id --quiet)
cp "$tmp/g/bin/busybox" "$tmp/i/bin/busybox"
cp -r "$tmp/g/lib/modules" "$tmp/i/lib/modules"
for a in sh mount insmod poweroff sleep cat echo; do
	ln -s busybox "$tmp/i/bin/$a"
done
cat >"$tmp/i/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
i=0
while [ ! -e /dev/hvc0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
echo "PEPEFI direct hvc0 cmdline: $(cat /proc/cmdline)" >/dev/hvc0
echo "PEPEFI kmsg marker" >/dev/kmsg
if (: >/dev/console) 2>/dev/null; then
	echo "PEPEFI console marker; consoles: $(cat /proc/consoles)" \
	    >/dev/console
fi
sleep 0.5
poweroff -f
INIT
chmod 755 "$tmp/i/init"

# ---- the root filesystem ---------------------------------------------------
r=$tmp/root
mkdir -p "$r/etc" "$r/boot/grub" "$r/boot/efi"
echo 3.20.3 >"$r/etc/alpine-release"
printf 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n' \
    >"$r/etc/os-release"
cp "$guest/vmlinuz" "$r/boot/vmlinuz-virt"
(cd "$tmp/i" && find . | cpio -o -H newc --quiet | gzip -1) \
    >"$r/boot/initramfs-virt"
cat >"$r/boot/grub/grub.cfg" <<'EOF'
# Alpine's grub-mkconfig output, trimmed: serial console, no timeout
serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1
terminal_input serial console
terminal_output serial console
set default="0"
set timeout=0
menuentry 'Alpine, with Linux virt' {
	insmod gzio
	insmod part_gpt
	insmod ext2
	search --no-floppy --label / --set=root
	echo	'Loading Linux virt ...'
	linux	/boot/vmlinuz-virt root=LABEL=/ ro modules=sd-mod,usb-storage,ext4 console=ttyS0,115200n8
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initramfs-virt
}
EOF
mkfs.ext4 -q -F -L / -U 5e1f7c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5c \
    -E root_owner=0:0 -d "$r" "$tmp/root.img" 48M >/dev/null

# ---- the ESP -----------------------------------------------------------------
cat >"$tmp/early.cfg" <<'EOF'
search --no-floppy --label / --set=root
set prefix=($root)/boot/grub
configfile ($root)/boot/grub/grub.cfg
EOF
grub-mkimage -O x86_64-efi -d "$gdir" -o "$tmp/BOOTX64.EFI" \
    -c "$tmp/early.cfg" -p /boot/grub \
    part_gpt fat ext2 search search_label configfile normal linux gzio \
    echo test serial terminal efi_gop all_video
mkfs.vfat -C -n EFI -i 1D2E3F41 "$tmp/esp.img" 8192 >/dev/null
mmd -i "$tmp/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$tmp/esp.img" "$tmp/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

# ---- the disk: 1 MiB, ESP 8 MiB, root 48 MiB, 1 MiB for the backup GPT --------
truncate -s 58M "$tmp/efi.raw"
# (not sgdisk -q: with it, sgdisk 1.0.9 writes no table to a blank file)
sgdisk -U 0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F1 \
    -n 1:2048:+8M -t 1:EF00 -c 1:EFI \
    -n 2:18432:+48M -t 2:8300 -c 2:/ "$tmp/efi.raw" >"$tmp/sgdisk.log" 2>&1 ||
    { cat "$tmp/sgdisk.log" >&2; exit 1; }
dd if="$tmp/esp.img" of="$tmp/efi.raw" bs=1M seek=1 conv=notrunc,sparse \
    status=none
dd if="$tmp/root.img" of="$tmp/efi.raw" bs=1M seek=9 conv=notrunc,sparse \
    status=none
mv "$tmp/efi.raw" "$out/efi.raw"
