#!/bin/sh
# pep-run without a real guest: --help/--version, usage errors, the QEMU
# command line (--print-cmdline), the disk lock, SIGTERM handling, QEMU's
# exit status passed through, and malformed vhost-user messages (a fake
# QEMU sends them: pep-run must fail cleanly, never crash).
. "$(dirname "$0")/../lib.sh"
RUN=$TOP/$BUILD/pep-run
FAKE=$TOP/tests/runner/fake-qemu.py
T=$PEP_TMP
truncate -s 16M "$T/disk.raw"
truncate -s 1M "$T/seed.img"

check "--help" sh -c "'$RUN' --help | grep -q -- --pepd-socket"
check "--version" sh -c "'$RUN' --version | grep -q '^pep-run '"
"$RUN" >/dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] && ok "no --disk: usage error 2" || not_ok "no --disk: rc $rc"
"$RUN" --disk "$T/disk.raw" --bridge-port 1 --pepd-socket /x \
    >/dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] && ok "--bridge-port with --pepd-socket: 2" ||
    not_ok "exclusive endpoints: rc $rc"
check_fail "bad --memory" "$RUN" --disk "$T/disk.raw" --memory 12Q
check_fail "bad --arch" "$RUN" --disk "$T/disk.raw" --arch mips

cmd() { "$RUN" --print-cmdline --accel tcg --qemu qemu-x "$@"; }
cmd --disk "$T/disk.raw" --seed "$T/seed.img" --pepd-socket /p \
    --console-log "$T/c.log" --cpus 3 --memory 768M >"$T/cmd" 2>&1
has() { grep -q -- "$1" "$T/cmd"; }
for want in "^qemu-x " "-nic none" "-nodefaults" "q35,accel=tcg" \
    "memory-backend=mem0" "memory-backend-memfd,id=mem0,size=768M,share=on" \
    "-smp 3" "virtio-blk-pci,drive=disk0" "id=seed0,readonly=on" \
    "virtconsole" "path=$T/c.log" "vhost-user-vsock-pci,chardev=vsock0" \
    "-qmp unix:"; do
	has "$want" && ok "cmdline has '$want'" || {
		not_ok "cmdline lacks '$want'"; sed 's/^/#   /' "$T/cmd"; }
done
has "netdev" && not_ok "cmdline has a network device" ||
    ok "no network device"
cmd --disk "$T/disk.raw" --vsock none --snapshot >"$T/cmd" 2>&1
has "snapshot=on" && ok "--snapshot" || not_ok "--snapshot missing"
has "memory-backend" && not_ok "memfd without vhost-user" ||
    ok "no memfd without vhost-user"
cmd --disk "$T/disk.raw" --vsock kernel >"$T/cmd" 2>&1
has "vhost-vsock-pci,guest-cid=3" && ok "--vsock kernel" ||
    not_ok "--vsock kernel"
cmd --disk "$T/disk.raw" --arch aarch64 --vsock none >"$T/cmd" 2>&1
if [ -e /usr/share/AAVMF/AAVMF_CODE.fd ]; then
	has "virt,accel=tcg" && ok "aarch64: virt + EFI" || not_ok "aarch64"
else
	grep -q "no UEFI firmware" "$T/cmd" && ok "aarch64 without AAVMF: error" ||
	    not_ok "aarch64 without firmware"
fi
if [ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -e /usr/share/OVMF/OVMF_CODE.fd ]
then
	cmd --disk "$T/disk.raw" --efi >"$T/cmd" 2>&1
	has "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF" &&
	    has "unit=1,file=.*efi-vars.fd" && ok "--efi: OVMF code + VARS copy" ||
	    not_ok "--efi"
else
	skip "no OVMF"
fi
cmd --disk "$T/d,isk.raw" --vsock none >"$T/cmd" 2>&1
has "file=$T/d,,isk.raw" && ok "commas escaped" || not_ok "comma escaping"
mkdir -p "$T/share"
cmd --disk "$T/disk.raw" --shared-dir "$T/share" --vsock none >"$T/cmd" 2>&1
has "vhost-user-fs-pci" || has "virtio-9p-pci" && ok "--shared-dir" ||
    not_ok "--shared-dir"

if ! command -v python3 >/dev/null; then
	skip "no python3"; done_testing; exit
fi
# the lock: a second pep-run on the same disk is refused
FAKE_QEMU_MODE=sleep "$RUN" --disk "$T/disk.raw" --vsock none --qemu "$FAKE" \
    --stop-timeout 1 >"$T/a.out" 2>&1 &
pid=$!
sleep 1
# Bounded: a second pep-run that wrongly gets the lock runs its QEMU
# until stopped; refusing takes no time.
timeout 5 "$RUN" --disk "$T/disk.raw" --vsock none --qemu "$FAKE" \
    >"$T/b.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] && grep -q "in use" "$T/b.out" && ok "disk lock" ||
    { not_ok "disk lock: a second pep-run on the disk (rc $rc$([ "$rc" \
      -eq 124 ] && echo ': it got the lock and ran until stopped'))"
      sed 's/^/#   /' "$T/b.out"; }
# SIGTERM: QMP is absent, so QEMU is terminated; pep-run exits 0
kill -TERM $pid
wait $pid
rc=$?
[ "$rc" -eq 0 ] && ok "SIGTERM stops the VM" || not_ok "SIGTERM: rc $rc"
FAKE_QEMU_MODE=exit3 "$RUN" --disk "$T/disk.raw" --vsock none \
    --qemu "$FAKE" >/dev/null 2>&1
rc=$?
[ "$rc" -eq 3 ] && ok "QEMU's exit status passed through" ||
    not_ok "exit status: $rc"
for bad in vring_num huge memtable queue; do
	FAKE_QEMU_MODE=badmsg FAKE_QEMU_BAD=$bad timeout 30 "$RUN" \
	    --disk "$T/disk.raw" --vsock user --accel tcg --qemu "$FAKE" \
	    >"$T/bad.out" 2>&1
	rc=$?
	[ "$rc" -eq 1 ] && grep -q "bad message" "$T/bad.out" &&
	    ok "malformed vhost-user ($bad): error, exit 1" ||
	    { not_ok "malformed vhost-user ($bad): rc $rc"
	      sed 's/^/#   /' "$T/bad.out"; }
done
# --accel auto: KVM exactly when QEMU itself can run a guest with it (the
# oracle: OVMF under accel=kvm for 3 s, then QMP query-status says
# "running"; a nested /dev/kvm that cannot run guests says
# "internal-error"), and the choice is said, with why for TCG.
accel() { grep -o 'accel=[a-z]*' "$1" | head -1; }
qemu_kvm_runs() {
	[ -r /dev/kvm ] || return 1
	code=$(ls /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_CODE.fd \
	    2>/dev/null | head -1)
	[ -n "$code" ] || return 2
	{ echo '{"execute":"qmp_capabilities"}'; sleep 3
	  echo '{"execute":"query-status"}'; echo '{"execute":"quit"}'; } |
	    timeout 30 qemu-system-x86_64 -machine q35,accel=kvm -nodefaults \
	    -display none -drive "if=pflash,format=raw,readonly=on,file=$code" \
	    -qmp stdio 2>/dev/null | grep -q '"status": "running"'
}
if [ "$(uname -m)" = x86_64 ] && command -v qemu-system-x86_64 >/dev/null
then
	qemu_kvm_runs; q=$?
	[ $q -eq 2 ] && not_ok "the KVM oracle needs OVMF (Debian: ovmf)"
	want=accel=tcg why=' TCG, several times slower: .*/dev/kvm'
	[ $q -eq 0 ] && want=accel=kvm why=' KVM$'
	"$RUN" --print-cmdline --disk "$T/disk.raw" --vsock none \
	    >"$T/cmd" 2>"$T/err"
	is "--accel auto: as QEMU's own KVM run says ($want)" \
	    "$(accel "$T/cmd")" "$want"
	like "--accel auto: says which, and why TCG" "$(cat "$T/err")" \
	    "^pep-run: accelerator:$why"
	"$RUN" -q --print-cmdline --disk "$T/disk.raw" --vsock none \
	    >"$T/cmd" 2>"$T/err"
	is "--quiet: the choice is not said" "$(cat "$T/err")" ""
	if [ -e /dev/kvm ] && [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid=65534 --regid=65534 --clear-groups \
		    "$RUN" --print-cmdline --disk "$T/disk.raw" --vsock none \
		    >"$T/cmd" 2>"$T/err"
		is "--accel auto, /dev/kvm not ours: TCG, saying why" \
		    "$(accel "$T/cmd") $(cat "$T/err")" \
		    "accel=tcg pep-run: accelerator: TCG, several times slower: /dev/kvm: Permission denied (join its group, often kvm)"
		# /dev/null in /dev/kvm's place, in a mount namespace of
		# its own: opens, but is not KVM
		unshare -m --propagation private sh -c \
		    'mount --bind /dev/null /dev/kvm && exec "$@"' sh \
		    "$RUN" --print-cmdline --disk "$T/disk.raw" --vsock none \
		    >"$T/cmd" 2>"$T/err"
		is "--accel auto, /dev/kvm not KVM: TCG, saying why" \
		    "$(accel "$T/cmd") $(cat "$T/err")" \
		    "accel=tcg pep-run: accelerator: TCG, several times slower: /dev/kvm is not KVM (API version not 12)"
	fi
	"$RUN" --print-cmdline --arch aarch64 --kernel "$T/seed.img" \
	    --disk "$T/disk.raw" --vsock none >"$T/cmd" 2>"$T/err"
	is "--accel auto, another architecture: TCG" \
	    "$(accel "$T/cmd") $(cat "$T/err")" \
	    "accel=tcg pep-run: accelerator: TCG (guest aarch64, host x86_64)"
	"$RUN" --print-cmdline --accel kvm --disk "$T/disk.raw" \
	    --vsock none >"$T/cmd" 2>"$T/err"
	is "--accel kvm: KVM as asked, nothing said" \
	    "$(accel "$T/cmd") $(cat "$T/err")" "accel=kvm "
fi
done_testing
