#!/bin/sh
# UEFI boot proving pep-bake's console patch: tests/runner/mkefi.sh builds
# an Alpine-UEFI-like GPT disk (ESP with a GRUB image, ext4 root "/" whose
# grub.cfg boots Debian's cloud kernel with console=ttyS0,115200n8);
# pep-bake rewrites console= to hvc0; pep-run --efi boots it under OVMF
# (TCG). The initramfs loads virtio_console, then writes one line straight
# to /dev/hvc0 (proof of life), one through /dev/kmsg (the kernel console)
# and one to /dev/console, and powers off.
# In the Debian cloud kernel virtio_console is a module: the hvc console
# is registered (console=hvc0) at boot but has no device until the module
# loads, so kernel messages printed before that are dropped, not replayed.
# Which module messages land after it is a race (modules load before the
# init sees /dev/hvc0), so the test uses its own: a /dev/kmsg line written
# once hvc0 exists goes through the kernel's console path (printk) and
# must come out on hvc0 with its timestamp.
# Control: the unbaked disk boots too (the direct line appears) but no
# kernel message and no /dev/console output reach hvc0.
. "$(dirname "$0")/../lib.sh"
RUN=$TOP/$BUILD/pep-run
T=$PEP_TMP
G=$PEP_CACHE/guest
E=$PEP_CACHE/efi
if ! command -v qemu-system-x86_64 >/dev/null ||
    [ "$(uname -m)" != x86_64 ]; then
	skip "needs qemu-system-x86_64 on an x86_64 host"
	done_testing; exit
fi
if ! ls /usr/share/OVMF/OVMF_CODE*.fd /usr/share/ovmf/OVMF.fd \
    /usr/share/qemu/OVMF.fd >/dev/null 2>&1; then
	skip "no OVMF firmware (Debian package ovmf)"
	done_testing; exit
fi
if ! sh "$TOP/tests/runner/mkguest.sh" "$G" >"$T/mkguest.log" 2>&1; then
	skip "test guest not buildable: $(tail -1 "$T/mkguest.log")"
	done_testing; exit
fi
if ! sh "$TOP/tests/runner/mkefi.sh" "$G" "$E" >"$T/mkefi.log" 2>&1; then
	skip "EFI test disk not buildable: $(tail -1 "$T/mkefi.log")"
	done_testing; exit
fi

boot() {	# name disk
	timeout 300 "$RUN" --efi --accel tcg --disk "$2" --snapshot \
	    --vsock none --memory 512M --stop-timeout 2 \
	    --console-log "$T/$1.con" >"$T/$1.out" 2>&1
}

has() {	# name pattern description
	if grep -aq -- "$2" "$T/$1.con"; then ok "$3"; else
		not_ok "$3"; sed 's/^/#   /' "$T/$1.con" | tail -15
		sed 's/^/#   /' "$T/$1.out" | tail -5; fi
}

hasnt() {	# name pattern description
	if grep -aq -- "$2" "$T/$1.con"; then
		not_ok "$3"; grep -a -- "$2" "$T/$1.con" | sed 's/^/#   /' |
		    head -5
	else ok "$3"; fi
}

# the root partition's grub.cfg (debugfs reads ext4 at a byte offset)
grubcfg() {
	_s=$(sgdisk -i 2 "$1" 2>/dev/null | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
	debugfs -R 'cat /boot/grub/grub.cfg' "$1?offset=$((_s * 512))" \
	    2>/dev/null | grep '^[[:space:]]*linux'
}

# ---- bake --------------------------------------------------------------------
check "pep-bake bakes the EFI disk" "$PEP_BAKE" -q --no-pexi "$E/efi.raw" \
    -o "$T/baked.raw" --size 256M
expect_line() {	# description got want-pattern
	if printf '%s\n' "$2" | grep -q -- "$3"; then ok "$1"; else
		not_ok "$1"; diag "got: $2"; fi
}
if command -v debugfs >/dev/null && command -v sgdisk >/dev/null; then
	expect_line "unbaked grub.cfg: console=ttyS0,115200n8" \
	    "$(grubcfg "$E/efi.raw")" "console=ttyS0,115200n8\$"
	expect_line "baked grub.cfg: console=hvc0 only" \
	    "$(grubcfg "$T/baked.raw")" "ext4 console=hvc0\$"
else
	skip "debugfs/sgdisk not installed"
	skip "debugfs/sgdisk not installed"
fi

# ---- the baked disk under OVMF --------------------------------------------------
t0=$(date +%s)
boot baked "$T/baked.raw"
rc=$?
diag "baked boot: $(($(date +%s) - t0))s, rc $rc"
[ "$rc" -eq 0 ] && ok "baked: OVMF -> GRUB -> Linux -> poweroff, exit 0" ||
    { not_ok "baked: pep-run rc $rc"; sed 's/^/#   /' "$T/baked.out" | tail; }
has baked "PEPEFI direct hvc0 cmdline: .*console=hvc0" \
    "baked: booted from the ext4 root's grub.cfg with console=hvc0"
hasnt baked "PEPEFI direct hvc0 cmdline: .*ttyS0" \
    "baked: no console=ttyS0 left on the command line"
has baked "^\[ *[0-9.]*\] PEPEFI kmsg marker" \
    "baked: a /dev/kmsg line comes out of the kernel console on hvc0"
has baked "PEPEFI console marker; consoles: hvc0 " \
    "baked: /dev/console is hvc0, the only console"
diag "baked hvc0 log: $(wc -l <"$T/baked.con") lines"

# ---- control: the unbaked disk ------------------------------------------------
t0=$(date +%s)
boot unbaked "$E/efi.raw"
rc=$?
diag "unbaked boot: $(($(date +%s) - t0))s, rc $rc"
[ "$rc" -eq 0 ] && ok "unbaked: boots and powers off too, exit 0" ||
    { not_ok "unbaked: pep-run rc $rc"; sed 's/^/#   /' "$T/unbaked.out" |
    tail; }
has unbaked "PEPEFI direct hvc0 cmdline: .*console=ttyS0,115200n8" \
    "unbaked: booted with console=ttyS0,115200n8 (direct hvc0 write)"
hasnt unbaked "PEPEFI kmsg marker" \
    "unbaked: kernel console output does not reach hvc0"
hasnt unbaked "^\[ *[0-9.]*\] " "unbaked: no kernel message at all on hvc0"
hasnt unbaked "PEPEFI console marker" "unbaked: /dev/console is not hvc0"
done_testing
