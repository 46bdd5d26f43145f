#!/bin/sh
# pep-bake on every disk layout (gpt, mbr, none) and bootstrap
# (cloud-init, tiny-cloud, none): the partition table, the filesystem,
# the edited files and every other file, checked with outside tools.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"

G=1073741824
FIXTURE_EPOCH=1725622440	# mkdisk.sh's EPOCH: the fs last write time

# ---------------------------------------------------------------- disks

check_gpt() {	# name in out size
	n=$1 in=$2 out=$3 size=$4
	check "$n: sgdisk -v clean" sh -c \
	    "sgdisk -v '$out' | grep -q 'No problems found'"
	is "$n: disk GUID kept" "$(sgdisk -p "$out" | grep identifier)" \
	    "$(sgdisk -p "$in" | grep identifier)"
	is "$n: same partitions" "$(sg_parts "$out" | tr '\n' ' ')" \
	    "$(sg_parts "$in" | tr '\n' ' ')"
	for p in $(sg_parts "$in"); do
		is "$n: p$p type, GUID, start, name, attributes kept" \
		    "$(sg_ident "$out" "$p")" "$(sg_ident "$in" "$p")"
	done
	is "$n: p1 (ESP) end kept" "$(sg_field "$out" 1 'Last sector')" \
	    "$(sg_field "$in" 1 'Last sector')"
	is "$n: last usable LBA at the new end" "$(sg_last_usable "$out")" \
	    $((size / 512 - 34))
	is "$n: root partition ends at the last usable LBA" \
	    "$(sg_field "$out" 2 'Last sector')" "$(sg_last_usable "$out")"
	s=$(($(sg_field "$in" 1 'First sector') * 512))
	check "$n: ESP bytes identical" same_range "$in" "$s" "$out" "$s" \
	    524288
	old=$(($(file_size "$in") - 512))
	check "$n: input had its backup header at its end" sh -c \
	    "dd if='$in' bs=512 skip=$((old / 512)) count=1 status=none |
	    head -c 8 | grep -q 'EFI PART'"
	check "$n: stale backup header zeroed" zero_range "$out" "$old" 512
	# the input's backup header names its entry array (LBA at byte 72,
	# count at 80, entry size at 84): all of it, inside the grown root
	# now, must read as zeros, not as a second partition table
	ea=$(le_at "$in" $((old + 72)) 8) ne=$(le_at "$in" $((old + 80)) 4)
	es=$(le_at "$in" $((old + 84)) 4)
	is "$n: input's backup entry array: 128 entries of 128 bytes" \
	    "$ne $es" "128 128"
	check "$n: stale backup entry array zeroed ($((ne * es)) bytes)" \
	    zero_range "$out" $((ea * 512)) $((ne * es))
	check "$n: backup header at the new end" sh -c \
	    "dd if='$out' bs=512 skip=$((size / 512 - 1)) count=1 \
	    status=none | head -c 8 | grep -q 'EFI PART'"
	tot=$((size / 512 - 1))
	[ "$tot" -gt 4294967295 ] && tot=4294967295
	is "$n: protective MBR covers the disk" "$(pmbr "$out")" "ee 1 $tot"
}

check_mbr() {	# name in out size
	n=$1 in=$2 out=$3 size=$4
	is "$n: p1 grown to the end, flag/type/start kept" \
	    "$(mbr_entry "$out" 1)" "80 83 2048 $((size / 512 - 2048))"
	for e in 2 3 4; do
		is "$n: entry $e still empty" "$(mbr_entry "$out" $e)" \
		    "00 00 0 0"
	done
	check "$n: boot code and disk signature kept" \
	    same_range "$in" 0 "$out" 0 446
	check "$n: boot signature kept" same_range "$in" 510 "$out" 510 2
	check "$n: post-MBR gap (core.img) kept" \
	    same_range "$in" 512 "$out" 512 $((2047 * 512))
}

check_none() {	# name in out size
	n=$1 in=$2 out=$3 size=$4
	check "$n: boot sector and ext4 boot area kept" \
	    same_range "$in" 0 "$out" 0 1024
	old=$(file_size "$in")
	if [ "$(fs_blocks "$out" 0)" = "$(fs_blocks "$in" 0)" ]; then
		check "$n: the new space reads as zeros" \
		    zero_range "$out" "$old" $((size - old))
	fi
}

# The root filesystem fills its new space (less a last block group too
# small to hold its own metadata, as resize2fs), and --json says so.
check_fs_size() {	# name in out off_in off_out space_bytes
	was=$(fs_blocks "$2" "$4") now=$(fs_blocks "$3" "$5")
	bs=$(fs_field "$3" "$5" 'Block size')
	bpg=$(fs_field "$3" "$5" 'Blocks per group')
	full=$(($6 / bs))
	if [ "$now" -le "$full" ] && [ "$now" -gt $((full - bpg)) ] &&
	    [ "$now" -gt "$was" ]; then
		ok "$1: filesystem grown to fill its space ($was -> $now blocks)"
	else
		not_ok "$1: filesystem grown to fill its space"
		diag "  $was -> $now blocks; the space holds $full"
	fi
	is "$1: --json blocks_before, blocks_after, block_size" "$(jq -r \
	    '.filesystem | "\(.blocks_before) \(.blocks_after) \(.block_size)"' \
	    "$PEP_TMP/bake.out")" "$was $now $bs"
}

root_space() {	# layout out size: bytes the root filesystem may use
	case $1 in
	gpt)	echo $((($(sg_field "$2" 2 'Last sector') - \
		    $(sg_field "$2" 2 'First sector') + 1) * 512)) ;;
	mbr)	echo $(($(mbr_entry "$2" 1 | cut -d' ' -f4) * 512)) ;;
	none)	echo "$3" ;;
	esac
}

# ---------------------------------------------------------------- files

check_bootloader() {	# name layout in out off_in off_out
	case $2 in
	none)
		check_edit "$1" "$3" "$4" "$5" "$6" /boot/extlinux.conf \
		    want_extlinux
		check_edit "$1" "$3" "$4" "$5" "$6" \
		    /etc/update-extlinux.conf want_update_extlinux ;;
	*)
		check_edit "$1" "$3" "$4" "$5" "$6" /boot/grub/grub.cfg \
		    want_grub_cfg
		check_edit "$1" "$3" "$4" "$5" "$6" /etc/default/grub \
		    want_default_grub ;;
	esac
}

check_bootstrap() {	# name boot in out off_in off_out
	case $2 in
	cloudinit)
		is "$1: $NOCLOUD_CFG content" \
		    "$(fs_cat "$4" "$6" "$NOCLOUD_CFG" | od -An -c | tr -s ' ')" \
		    "$(echo "$NOCLOUD_TEXT" | od -An -c | tr -s ' ')"
		is "$1: $NOCLOUD_CFG is root:root 0644" \
		    "$(fs_stat "$4" "$6" "$NOCLOUD_CFG" | cut -d' ' -f1-3)" \
		    "0644 0 0" ;;
	tiny)
		check_edit "$1" "$3" "$4" "$5" "$6" /etc/tiny-cloud.conf \
		    want_tiny
		check_fail "$1: no $NOCLOUD_CFG" fs_exists "$4" "$6" \
		    "$NOCLOUD_CFG" ;;
	none)
		check "$1: a warning names what was looked for" grep -q \
		    -e cloud.cfg -e tiny-cloud "$PEP_TMP/bake.err"
		check_fail "$1: no $NOCLOUD_CFG" fs_exists "$4" "$6" \
		    "$NOCLOUD_CFG" ;;
	esac
}

# pexi-boot's files, and the directories they may have made; the runner
# is a whole tree (bake_services compares it with the guest directory's).
PEXI_PATHS="/usr/local/bin/pexi-bridge /etc/init.d/pexi-boot
/etc/conf.d/pexi-boot /etc/runlevels/default/pexi-boot
/etc/runlevels/default /etc/runlevels /etc/init.d /etc/conf.d
/usr/local/lib/pexi/intercept/ /usr/local/lib/pexi /usr/local/lib
/etc/pexi/config.json /etc/pexi"
# What the runner's files take: the output's allocation may grow by it.
RUNNER_KIB=$(du -sk "${PEP_GUEST_DIR:-$TOP/build/guest}/intercept" |
    cut -f1)

edited_paths() {	# layout boot
	echo $PEXI_PATHS
	case $1 in
	none)	echo /boot/extlinux.conf /etc/update-extlinux.conf ;;
	*)	echo /boot/grub/grub.cfg /etc/default/grub ;;
	esac
	case $2 in
	cloudinit)	echo "$NOCLOUD_CFG" ;;
	tiny)	echo /etc/tiny-cloud.conf ;;
	esac
}

check_tree() {	# name layout boot in out off_in off_out
	fs_dump "$4" "$6" "$PEP_TMP/tin"
	fs_dump "$5" "$7" "$PEP_TMP/tout"
	# shellcheck disable=SC2046
	check "$1: every other file, mode, owner and time unchanged" \
	    same_tree "$PEP_TMP/tin" "$PEP_TMP/tout" $(edited_paths "$2" "$3")
	is "$1: xattr kept" \
	    "$(debugfs -R 'ea_get -V /usr/share/pep-fixture/xattr user.pep.fixture' \
	    "$5?offset=$7" 2>/dev/null)" "mkdisk"
	rm -rf "$PEP_TMP/tin" "$PEP_TMP/tout"
}

# ---------------------------------------------------------------- cases

# bake_case LAYOUT BOOT SIZE [BAKE ARGS...]: SIZE is what the output must
# measure; the arguments decide how it is asked for.
bake_case() {
	layout=$1 boot=$2 size=$3; shift 3
	n="$layout/$boot"
	in=$PEP_TMP/in.raw out=$PEP_TMP/out.raw
	fixture "$in" "$layout" "$boot" raw
	bake_ok "$n: bake $*" "$in" -o "$out" --json "$@"
	[ "$BAKE_RC" -eq 0 ] || return 0
	verify "$n" "$layout" "$boot" "$in" "$out" "$size"
	rm -f "$in" "$out"
}

verify() {	# name layout boot in out size
	n=$1 layout=$2 boot=$3 in=$4 out=$5 size=$6
	is "$n: output is exactly $size bytes" "$(file_size "$out")" "$size"
	"check_$layout" "$n" "$in" "$out" "$size"
	oi=$(root_offset "$in" "$layout")
	oo=$(root_offset "$out" "$layout")
	is "$n: root filesystem stays where it was" "$oo" "$oi"
	check "$n: e2fsck -fn clean" fs_fsck "$out" "$oo"
	check_fs_size "$n" "$in" "$out" "$oi" "$oo" \
	    "$(root_space "$layout" "$out" "$size")"
	check_bootloader "$n" "$layout" "$in" "$out" "$oi" "$oo"
	check_bootstrap "$n" "$boot" "$in" "$out" "$oi" "$oo"
	check_tree "$n" "$layout" "$boot" "$in" "$out" "$oi" "$oo"
	a=$(alloc_kib "$out") b=$(alloc_kib "$in")
	if [ "$a" -le $((b + 1024 + RUNNER_KIB)) ]; then
		ok "$n: output sparse (${a}K, the runner's ${RUNNER_KIB}K in it)"
	else not_ok "$n: output sparse (${a}K allocated, input ${b}K," \
	    "the runner ${RUNNER_KIB}K)"; fi
}

# The default epoch is the input filesystem's last write time.
check_default_epoch() {
	in=$PEP_TMP/in.raw out=$PEP_TMP/out.raw
	fixture "$in" gpt cloudinit raw
	bake_ok "default epoch: bake" "$in" -o "$out" --size 1G
	is "default epoch: new file's mtime is the fs last write time" \
	    "$(fs_stat "$out" 1048576 "$NOCLOUD_CFG" | cut -d' ' -f4)" \
	    "$(printf '0x%08x' "$FIXTURE_EPOCH")"
	is "default epoch: patched file's mtime too" \
	    "$(fs_stat "$out" 1048576 /boot/grub/grub.cfg | cut -d' ' -f4)" \
	    "$(printf '0x%08x' "$FIXTURE_EPOCH")"
	rm -f "$in" "$out"
}

# GPT attribute bits survive, and --epoch sets the times written.
check_attributes() {
	in=$PEP_TMP/in.raw out=$PEP_TMP/out.raw
	fixture "$in" gpt cloudinit raw
	sgdisk -A 1:set:0 -A 2:set:2 -A 2:set:60 "$in" >/dev/null
	bake_ok "attributes: bake --epoch" "$in" -o "$out" --size 1G \
	    --epoch 1700000000
	for p in 1 2; do
		is "attributes: p$p kept" "$(sg_field "$out" $p 'Attribute flags')" \
		    "$(sg_field "$in" $p 'Attribute flags')"
	done
	is "attributes: --epoch sets the patched file's mtime" \
	    "$(fs_stat "$out" 1048576 /boot/grub/grub.cfg | cut -d' ' -f4)" \
	    0x6553f100
	rm -f "$in" "$out"
}

# An input already bigger than the default keeps its size.
check_big_input() {
	in=$PEP_TMP/in.raw out=$PEP_TMP/out.raw
	fixture "$in" gpt tiny raw 2200
	big=$((2200 * 1048576))
	bake_ok "2200 MiB input: bake without --size" "$in" -o "$out"
	is "2200 MiB input: size kept" "$(file_size "$out")" "$big"
	is "2200 MiB input: root ends at the last usable LBA" \
	    "$(sg_field "$out" 2 'Last sector')" $((big / 512 - 34))
	check "2200 MiB input: sgdisk -v clean" sh -c \
	    "sgdisk -v '$out' | grep -q 'No problems found'"
	rm -f "$in" "$out"
}

[ -x "$PEP_BAKE" ] || bail "$PEP_BAKE not built"
bake_case gpt cloudinit $G --size 1G
bake_case gpt tiny $((2 * G))
bake_case mbr cloudinit $G --size 1G
bake_case none tiny $G --size 1073741824
bake_case none none $G -s 1024M
check_default_epoch
check_attributes
check_big_input
done_testing
