#!/bin/sh
# pep-bake on bad inputs and in bad places: every failure exits non-zero
# with one line on stderr naming the file, leaves nothing at the output
# path or in the output directory, and never touches the input.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"

IN=$PEP_TMP/in		# inputs
OD=$PEP_TMP/o		# the output directory, empty between cases
mkdir -p "$IN" "$OD"

# patch FILE OFFSET HEX: overwrite bytes in place.
patch() {
	printf '%s' "$3" | xxd -r -p | dd of="$1" bs=1 seek="$2" \
	    conv=notrunc status=none
}

be_at() {	# file offset bytes: big-endian unsigned integer
	python3 -c 'import sys
with open(sys.argv[1], "rb") as f:
	f.seek(int(sys.argv[2]))
	print(int.from_bytes(f.read(int(sys.argv[3])), "big"))' "$1" "$2" "$3"
}

# expect_failure NAME INPUT WHO [PEP-BAKE ARGS...]: WHO is the file the
# message must name (the input's or the output's path).
expect_failure() {
	n=$1 in=$2 who=$3; shift 3
	sum=$(cksum <"$in" 2>/dev/null)
	bake "$in" -o "$OD/out.raw" "$@"
	after_failure "$n" "$in" "$who" "$sum"
}

after_failure() {	# name input who cksum-before
	diag "stderr: $(head -c 300 "$PEP_TMP/bake.err")"
	if [ "$BAKE_RC" -ne 0 ] && [ "$BAKE_RC" -lt 128 ]; then
		ok "$1: fails (exit $BAKE_RC)"
	else not_ok "$1: fails (exit $BAKE_RC)"; fi
	one_line "$1" "$3"
	check_fail "$1: no output file" test -e "$OD/out.raw"
	is "$1: output directory left empty" "$(ls -A "$OD")" ""
	is "$1: input unchanged" "$(cksum <"$2" 2>/dev/null)" "$4"
	rm -rf "${OD:?}"/* "${OD:?}"/.[!.]* 2>/dev/null
}

one_line() {	# name who
	e=$PEP_TMP/bake.err
	if [ "$(wc -l <"$e")" -eq 1 ] && grep -q "^pep-bake: .*$(basename "$2")" "$e"
	then ok "$1: one stderr line naming $(basename "$2")"
	else
		not_ok "$1: one stderr line naming $(basename "$2")"
		sed 's/^/#   /' "$e" | head -5
	fi
}

# ------------------------------------------------------------ bad inputs

vhd_truncated() {
	f=$IN/truncated.vhd
	fixture "$f" gpt cloudinit vhd-dynamic
	truncate -s $(($(file_size "$f") / 2)) "$f"
	expect_failure "truncated dynamic VHD" "$f" "$f"
}

vhd_bad_checksum() {
	f=$IN/badsum.vhd
	fixture "$f" gpt cloudinit vhd-fixed
	patch "$f" $(($(file_size "$f") - 512 + 28)) 58	# creator app
	expect_failure "fixed VHD, bad footer checksum" "$f" "$f"
	f=$IN/badsum-dyn.vhd
	fixture "$f" gpt cloudinit vhd-dynamic
	patch "$f" 28 58
	patch "$f" $(($(file_size "$f") - 512 + 28)) 58
	expect_failure "dynamic VHD, bad footer checksums" "$f" "$f"
}

# The first allocated BAT entry points far past the end of the file. The
# BAT is not checksummed, so only a bounds check can catch it.
vhd_bat_past_eof() {
	f=$IN/bat.vhd
	fixture "$f" gpt cloudinit vhd-dynamic
	dyn=$(be_at "$f" 16 8)
	bat=$(be_at "$f" $((dyn + 16)) 8)
	i=0
	while [ "$(be_at "$f" $((bat + 4 * i)) 4)" = 4294967295 ]; do
		i=$((i + 1))
	done
	patch "$f" $((bat + 4 * i)) 00f00000	# sector 15M: 7.5 GiB
	expect_failure "dynamic VHD, BAT entry past EOF" "$f" "$f"
}

qcow2_l2_out_of_range() {
	f=$IN/l2.qcow2
	fixture "$f" gpt cloudinit qcow2
	l1=$(be_at "$f" 40 8)
	patch "$f" "$l1" 8000007fffff0000	# COPIED, L2 at ~512 GiB
	expect_failure "qcow2, L1 entry to an L2 table past EOF" "$f" "$f"
}

qcow2_truncated() {
	f=$IN/truncated.qcow2
	fixture "$f" gpt cloudinit qcow2
	truncate -s $(($(file_size "$f") / 2)) "$f"
	expect_failure "truncated qcow2" "$f" "$f"
}

# Official images never have one; pep-bake cannot follow it.
qcow2_backing_file() {
	fixture "$IN/base.qcow2" gpt cloudinit qcow2
	f=$IN/overlay.qcow2
	qemu-img create -q -f qcow2 -b "$IN/base.qcow2" -F qcow2 "$f"
	expect_failure "qcow2 with a backing file" "$f" "$f"
	rm -f "$IN/base.qcow2"
}

# A GPT disk whose ext4 superblock magic is gone: no root to edit.
no_root_fs() {
	f=$IN/noroot.raw
	fixture "$f" gpt cloudinit raw
	patch "$f" $((1048576 + 1024 + 56)) 0000
	expect_failure "GPT disk without an ext4 root" "$f" "$f"
	f=$IN/root.raw
	fixture "$f" gpt cloudinit raw
	expect_failure "--root-partition 1 (the ESP)" "$f" "$f" \
	    --root-partition 1
	expect_failure "--root-partition 7 (none such)" "$f" "$f" \
	    --root-partition 7
	# an ext4 with neither /etc/alpine-release nor /etc/os-release is
	# not an OS root; one with /etc/os-release alone is (not Alpine)
	f=$IN/osrel.raw
	fixture "$f" gpt cloudinit raw
	printf 'rm /etc/alpine-release\nrm /etc/os-release\n' |
	    debugfs -w -f - "$f?offset=1048576" >/dev/null 2>&1
	is "... (fixture: neither file left)" \
	    "$(debugfs -R 'ls -l /etc' "$f?offset=1048576" 2>/dev/null |
	    grep -c -e alpine-release -e os-release)" 0
	expect_failure "ext4 without alpine-release or os-release" "$f" "$f"
	like "... the message says what a root has" \
	    "$(cat "$PEP_TMP/bake.err")" '/etc/alpine-release or /etc/os-release'
	printf 'ID=debian\nPRETTY_NAME="Debian GNU/Linux 12"\n' \
	    >"$PEP_TMP/os-release"
	debugfs -w -R "write $PEP_TMP/os-release /etc/os-release" \
	    "$f?offset=1048576" >/dev/null 2>&1
	bake "$f" -o "$OD/out.raw" --size 1G --no-pexi --json
	is "a root found by /etc/os-release alone: baked, partition 2" \
	    "$BAKE_RC $(jq -r .root_partition "$PEP_TMP/bake.out")" "0 2"
	check "... e2fsck -fn clean" fs_fsck "$OD/out.raw" 1048576
	rm -f "$OD/out.raw"
}

# Encrypted qcow2 (legacy AES and LUKS): refused, naming the method.
qcow2_encrypted() {
	f=$IN/aes.qcow2
	qemu-img create -q -f qcow2 --object secret,id=s0,data=pw \
	    -o encrypt.format=aes,encrypt.key-secret=s0 "$f" 64M ||
	    bail "qemu-img cannot make an AES-encrypted qcow2"
	expect_failure "encrypted qcow2 (AES)" "$f" "$f"
	like "encrypted qcow2 (AES): says so" "$(cat "$PEP_TMP/bake.err")" \
	    'encrypted qcow2 \(AES\) is not supported'
	# LUKS: qemu-img times PBKDF2 with the thread's CPU clock, which
	# reads 0 in some containers ("Unable to get accurate CPU usage"),
	# so the header's crypt_method (offset 32, big-endian) is set to 2
	# by hand; pep-bake decides on that field alone.
	cp "$f" "$IN/luks.qcow2"
	printf '\000\000\000\002' | dd of="$IN/luks.qcow2" bs=1 seek=32 \
	    conv=notrunc status=none
	expect_failure "encrypted qcow2 (LUKS)" "$IN/luks.qcow2" "$IN/luks.qcow2"
	like "encrypted qcow2 (LUKS): says so" "$(cat "$PEP_TMP/bake.err")" \
	    'encrypted qcow2 \(LUKS\) is not supported'
}

# A filesystem bigger than the room it has (e2fsck: "the physical size of
# the device is ... blocks"): growing it would hide the loss.
fs_past_its_room() {
	f=$IN/cut.ext4
	mkfs.ext4 -q -F "$f" 64M >/dev/null 2>&1 || bail "mkfs.ext4 failed"
	truncate -s 20M "$f"
	expect_failure "bare ext4 cut short" "$f" "$f"
	like "bare ext4 cut short: says so" "$(cat "$PEP_TMP/bake.err")" \
	    'filesystem is 67108864 bytes but its file holds only 20971520'
	f=$IN/cutpart.raw
	fixture "$f" gpt cloudinit raw
	end=$(sgdisk -i 2 "$f" | sed -n 's/^Last sector: \([0-9]*\).*/\1/p')
	guid=$(sgdisk -i 2 "$f" | sed -n 's/^Partition unique GUID: //p')
	sgdisk -d 2 -n "2:2048:$((end - 16384))" -u "2:$guid" "$f" \
	    >/dev/null 2>&1 || bail "sgdisk failed"
	expect_failure "root partition smaller than its filesystem" "$f" "$f"
	like "root partition smaller than its filesystem: says so" \
	    "$(cat "$PEP_TMP/bake.err")" 'but its partition holds only'
}

no_output_dir() {
	f=$IN/nodir.raw
	fixture "$f" gpt cloudinit raw
	sum=$(cksum <"$f")
	bake "$f" -o "$OD/missing/out.raw"
	after_failure "output directory missing" "$f" "$OD/missing/out.raw" \
	    "$sum"
}

not_a_disk() {
	f=$IN/notes.txt
	printf 'These are not the sectors you are looking for.\n' >"$f"
	expect_failure "a small text file" "$f" "$f"
	f=$IN/zeros.img
	truncate -s 64M "$f"
	expect_failure "an all-zero 64 MiB file" "$f" "$f"
	expect_failure "a directory" /etc /etc
}

missing_input() {
	: >"$PEP_TMP/.empty"
	bake "$IN/nope.qcow2" -o "$OD/out.raw"
	after_failure "nonexistent input" "$PEP_TMP/.empty" "$IN/nope.qcow2" \
	    "$(cksum <"$PEP_TMP/.empty")"
}

shrink() {
	f=$IN/shrink.raw
	fixture "$f" gpt cloudinit raw
	expect_failure "--size below the input's size" "$f" "$f" --size 100M
	if grep -q 'refusing to shrink' "$PEP_TMP/bake.err"; then
		ok "shrink: says 'refusing to shrink'"
	else not_ok "shrink: says 'refusing to shrink'"; fi
}

# ------------------------------------------------------- bad output places

# in_mount OPTIONS: run pep-bake on $IN/place.raw with $OD mounted as a
# tmpfs with OPTIONS, in a private mount namespace.
in_mount() {
	unshare -m sh -c 'mount -t tmpfs -o "$1" pep "$2" || exit 99
shift 2; exec "$@"' sh "$1" "$OD" "$PEP_BAKE" "$IN/place.raw" \
	    -o "$OD/out.raw" --size 1G \
	    >"$PEP_TMP/bake.out" 2>"$PEP_TMP/bake.err"
	BAKE_RC=$?
}

bad_places() {
	f=$IN/place.raw
	fixture "$f" gpt cloudinit raw
	if [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null; then
		skip "read-only output directory: needs root and unshare"
		skip "full output filesystem: needs root and unshare"
		return 0
	fi
	sum=$(cksum <"$f")
	in_mount ro
	after_failure "read-only output directory" "$f" "$OD/out.raw" "$sum"
	in_mount size=4m
	after_failure "full output filesystem (4 MiB tmpfs)" "$f" \
	    "$OD/out.raw" "$sum"
}

# --------------------------------------------------------------- signals

# big_input FILE: a 2200 MiB GPT disk with 1 GiB of data, so a bake
# takes long enough to be interrupted.
big_input() {
	fixture "$1" gpt cloudinit raw
	truncate -s 2200M "$1"
	sgdisk -e "$1" >/dev/null 2>&1
	head -c 1G /dev/zero | tr '\0' x |
	    dd of="$1" bs=1M seek=1100 conv=notrunc status=none iflag=fullblock
}

# big_ident FILE: size, mtime, ctime and CRC.
big_ident() { echo "$(stat -c '%s %Y %Z' "$1") $(cksum <"$1")"; }

# interrupt SIG: start a bake, send SIG once it has moved 32 MiB.
interrupt() {
	sum=$(big_ident "$IN/big.raw")
	"$PEP_BAKE" "$IN/big.raw" -o "$OD/out.raw" \
	    >"$PEP_TMP/bake.out" 2>"$PEP_TMP/bake.err" &
	pid=$!
	i=0
	while [ "$i" -lt 2000 ] && [ "$(io_bytes $pid)" -lt 33554432 ]; do
		sleep 0.005; i=$((i + 1))
	done
	kill -"$1" $pid 2>/dev/null
	{ wait $pid; } 2>/dev/null
	BAKE_RC=$?
	n="SIG$1 during the bake"
	if [ "$BAKE_RC" -ne 0 ]; then ok "$n: fails (exit $BAKE_RC)"
	else not_ok "$n: fails (it finished first)"; fi
	[ "$1" = KILL ] || one_line "$n" "$OD/out.raw"
	check_fail "$n: no output file" test -e "$OD/out.raw"
	is "$n: output directory left empty" "$(ls -A "$OD")" ""
	is "$n: input unchanged" "$(big_ident "$IN/big.raw")" "$sum"
	rm -rf "${OD:?}"/* "${OD:?}"/.[!.]* 2>/dev/null
}

io_bytes() {	# pid: bytes read + written so far (huge once it is gone)
	awk '/^[rw]char:/ { n += $2 } END { print NR ? n : 999999999999 }' \
	    "/proc/$1/io" 2>/dev/null || echo 999999999999
}

[ -x "$PEP_BAKE" ] || bail "$PEP_BAKE not built"
vhd_truncated
vhd_bad_checksum
vhd_bat_past_eof
qcow2_l2_out_of_range
qcow2_truncated
qcow2_backing_file
qcow2_encrypted
no_root_fs
fs_past_its_room
not_a_disk
missing_input
no_output_dir
shrink
bad_places
big_input "$IN/big.raw"
interrupt INT
interrupt TERM
interrupt KILL
done_testing
