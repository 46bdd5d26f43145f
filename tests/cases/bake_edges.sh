#!/bin/sh
# pep-bake where hostile or unlucky inputs took it (issue 9): outputs that
# are not regular files, names near NAME_MAX, MBR's 2 TiB end, quota
# files, growth of a sector or two, damaged or 4K-sector GPTs, logical and
# A/B roots, non-UTF-8 names in --json, usage errors, epoch 0. Oracles:
# stat, sgdisk, sfdisk, fdisk, e2fsck, debugfs, python3's json and struct.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"

IN=$PEP_TMP/in
OD=$PEP_TMP/o
mkdir -p "$IN" "$OD"
MIB=1048576

clean_od() { rm -rf "${OD:?}"/* "${OD:?}"/.[!.]* 2>/dev/null; }

err_like() {	# description regex: the one stderr line matches
	like "$1" "$(cat "$PEP_TMP/bake.err")" "$2"
}

exit_is() {	# description want
	is "$1: exit status $2" "$BAKE_RC" "$2"
}

one_err_line() {	# description
	is "$1: one line on stderr" "$(wc -l <"$PEP_TMP/bake.err" |
	    tr -d ' ')" 1
}

json_ok() {	# file: valid UTF-8 JSON
	python3 -c 'import json, sys
json.loads(open(sys.argv[1], "rb").read().decode("utf-8", "strict"))' "$1"
}

# jq-like reads with python: json_get FILE EXPR (r is the report)
json_get() {
	python3 -c 'import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
print(eval(sys.argv[2]))' "$1" "$2"
}

# ------------------------------------------------- outputs not regular

# special KIND NAME MAKE...: the output name already holds something that
# is not a regular file; pep-bake refuses before any work and leaves it.
special() {
	kind=$1 name=$2; shift 2
	clean_od
	"$@" || { skip "$kind: cannot make one here"; return 0; }
	before=$(stat -c '%F %t:%T %i' "$OD/$name")
	sum=$(cksum <"$IN/gpt.raw")
	bake "$IN/gpt.raw" -o "$OD/$name"
	exit_is "-o $kind" 2
	one_err_line "-o $kind"
	err_like "-o $kind: says what it is" \
	    "^pep-bake: .*$name: exists and is $kind"
	is "-o $kind: left as it was" "$(stat -c '%F %t:%T %i' "$OD/$name")" \
	    "$before"
	is "-o $kind: nothing else in the directory" "$(ls -A "$OD")" "$name"
	is "-o $kind: input unchanged" "$(cksum <"$IN/gpt.raw")" "$sum"
}

mk_socket() {
	python3 -c 'import socket, sys
socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$OD/sock"
}

outputs_not_regular() {
	if [ "$(id -u)" -eq 0 ]; then
		special "a character device" nul mknod "$OD/nul" c 1 3
		special "a block device" blk mknod "$OD/blk" b 7 200
	else
		skip "character device output: needs root for mknod"
		skip "block device output: needs root for mknod"
	fi
	special "a FIFO" fifo mkfifo "$OD/fifo"
	special "a socket" sock mk_socket
	special "a symbolic link" link ln -s "$IN/gpt.raw" "$OD/link"
	special "a symbolic link" dangling ln -s "$OD/nowhere" "$OD/dangling"
	special "a directory" dir mkdir "$OD/dir"
	clean_od
}

# Names of 244..255 bytes: the temporary name must fit in NAME_MAX too.
long_names() {
	for len in 244 250 255; do
		clean_od
		name=$(python3 -c "print('n' * $len)")
		bake "$IN/gpt.raw" -o "$OD/$name" -q
		exit_is "$len-byte output name" 0
		is "$len-byte output name: the only file" "$(ls -A "$OD")" \
		    "$name"
	done
	clean_od
	name=$(python3 -c "print('n' * 256)")
	bake "$IN/gpt.raw" -o "$OD/$name"
	exit_is "256-byte output name" 2
	err_like "256-byte output name: says so" 'file name too long \(256'
	is "256-byte output name: nothing written" "$(ls -A "$OD")" ""
	# Refused before the convert: no progress, no temporary file.
	check_fail "256-byte output name: refused before any work" \
	    grep -q convert "$PEP_TMP/bake.err"
}

# -------------------------------------------------------- usage errors

usage_errors() {
	clean_od
	for args in "--size 1000001" "--console a;b" "--epoch -1" \
	    "--epoch 2147483648" "--root-partition 0"; do
		# shellcheck disable=SC2086
		bake "$IN/gpt.raw" -o "$OD/out.raw" $args
		exit_is "usage: $args" 2
		is "usage: $args: nothing written" "$(ls -A "$OD")" ""
	done
	bake "$IN/gpt.raw" -o ""
	exit_is "usage: -o ''" 2
	err_like "usage: -o '': says so" 'empty file name'
	SOURCE_DATE_EPOCH=yesterday bake "$IN/gpt.raw" -o "$OD/out.raw"
	exit_is "usage: SOURCE_DATE_EPOCH=yesterday" 2
	bake "$IN/gpt.raw" -o "$OD/out.raw" --size 100M
	exit_is "usage: --size smaller than the input" 2
	bake "$IN/gpt.raw" -o "$IN/gpt.raw"
	exit_is "usage: the input as output" 2
}

# ------------------------------------------------------------ epoch 0

epoch_zero() {
	clean_od
	bake_ok "--epoch 0: bake" "$IN/gpt.raw" -o "$OD/e0.raw" -q --epoch 0
	off=$MIB
	is "--epoch 0: created file's mtime" \
	    "$(fs_stat "$OD/e0.raw" $off "$NOCLOUD_CFG" | cut -d' ' -f4)" \
	    0x00000000
	like "--epoch 0: superblock last write time" \
	    "$(fs_field "$OD/e0.raw" $off 'Last write time')" \
	    'Thu Jan  1 00:00:00 1970'
	check "--epoch 0: e2fsck -fn clean" fs_fsck "$OD/e0.raw" $off
	SOURCE_DATE_EPOCH=0 bake_ok "SOURCE_DATE_EPOCH=0: bake" \
	    "$IN/gpt.raw" -o "$OD/s0.raw" -q
	check "SOURCE_DATE_EPOCH=0 and --epoch 0 give the same bytes" \
	    cmp -s "$OD/e0.raw" "$OD/s0.raw"
	SOURCE_DATE_EPOCH=0 bake_ok "--epoch 5 beats SOURCE_DATE_EPOCH=0" \
	    "$IN/gpt.raw" -o "$OD/s5.raw" -q --epoch 5
	is "--epoch 5 beats SOURCE_DATE_EPOCH=0: mtime" \
	    "$(fs_stat "$OD/s5.raw" $off "$NOCLOUD_CFG" | cut -d' ' -f4)" \
	    0x00000005
	clean_od
}

# ---------------------------------------------------- non-UTF-8 names

json_names() {
	clean_od
	bad=$(printf 'in-\377\376-\303(.raw')
	cp --sparse=always "$IN/gpt.raw" "$IN/$bad"
	out=$(printf 'out-\351t\351.raw')
	bake_ok "non-UTF-8 names: bake --json" "$IN/$bad" -o "$OD/$out" \
	    --json -q
	check "non-UTF-8 names: --json is valid UTF-8 JSON" \
	    json_ok "$PEP_TMP/bake.out"
	is "non-UTF-8 names: input named with U+FFFD for each bad byte" \
	    "$(json_get "$PEP_TMP/bake.out" 'r["input"].split("/")[-1]')" \
	    "in-$(printf '\357\277\275\357\277\275')-$(printf \
	    '\357\277\275')(.raw"
	is "non-UTF-8 names: the output file has its own bytes" \
	    "$(ls "$OD")" "$out"
	rm -f "$IN/$bad"
	clean_od
}

# ----------------------------------------------------------- MBR limit

mbr_limit() {
	clean_od
	bake "$IN/mbr.raw" -o "$OD/out.raw" --size 3T --json
	exit_is "MBR --size 3T" 2
	err_like "MBR --size 3T: names the largest size that works" \
	    'use --size of at most 2199023255552, or convert the disk to GPT'
	is "MBR --size 3T: nothing written" "$(ls -A "$OD")" ""
	# A disk already past 2 TiB keeps its size; the root stops at the
	# last sector MBR can reach, and the report says so.
	f=$IN/mbr-big.raw
	truncate -s 2560G "$f"
	printf 'label: dos\nstart=2048, size=1048576, type=83, bootable\n' |
	    sfdisk -q "$f" >/dev/null 2>&1 || bail "sfdisk failed"
	mkdir -p "$PEP_TMP/t/etc"
	echo 3.20.3 >"$PEP_TMP/t/etc/alpine-release"
	rm -f "$PEP_TMP/p.fs"
	mkfs.ext4 -q -F -b 4096 -E resize=600000000 -d "$PEP_TMP/t" \
	    "$PEP_TMP/p.fs" 512M || bail "mkfs.ext4 failed"
	dd if="$PEP_TMP/p.fs" of="$f" bs=1M seek=1 conv=notrunc,sparse \
	    status=none
	bake_ok "MBR disk of 2.5 TiB: bake" "$f" -o "$OD/big.raw" --json -q \
	    --no-pexi
	like "MBR disk of 2.5 TiB: warning in --json" \
	    "$(json_get "$PEP_TMP/bake.out" 'r["warnings"][0]["message"]')" \
	    'MBR partition cannot end past sector 2\^32 - 1: partition 1 grows to byte 2199023255552 and the last 549755813888 bytes'
	is "MBR disk of 2.5 TiB: entry ends at sector 2^32 - 1" \
	    "$(mbr_entry "$OD/big.raw" 1)" "80 83 2048 4294965248"
	is "MBR disk of 2.5 TiB: --json says the same" \
	    "$(json_get "$PEP_TMP/bake.out" \
	    'r["partitions_after"][0]["size"]')" 2199022206976
	is "MBR disk of 2.5 TiB: filesystem fills the partition" \
	    "$(json_get "$PEP_TMP/bake.out" \
	    'r["filesystem"]["blocks_after"] * 4096')" 2199022206976
	check "MBR disk of 2.5 TiB: e2fsck -fn clean" \
	    fs_fsck "$OD/big.raw" $MIB
	rm -f "$f" "$PEP_TMP/p.fs"
	clean_od
}

# --------------------------------------------------------------- quota

# quota_limit IMG INODE ID FIELD VALUE: set a limit in the quota file at
# INODE of the filesystem image IMG, in place (debugfs cannot; setquota
# needs a mount). FIELD: ihard isoft bhard bsoft, as in the kernel's
# v2r1 entry (id, pad, ihardlimit, isoftlimit, curinodes, bhardlimit,
# bsoftlimit, curspace, btime, itime).
quota_limit() {
	debugfs -R "dump <$2> $PEP_TMP/.qf" "$1" >/dev/null 2>&1
	python3 - "$1" "$2" "$3" "$4" "$5" "$PEP_TMP/.qf" <<'PY'
import struct, subprocess, sys
img, ino, qid, field, value, qf = sys.argv[1:]
off = {"ihard": 8, "isoft": 16, "bhard": 32, "bsoft": 40}[field]
data = open(qf, "rb").read()
bs = int(subprocess.run(["dumpe2fs", "-h", img], capture_output=True,
    text=True).stdout.split("Block size:")[1].split()[0])
for blk in range(1, len(data) // 1024):
	for i in range(14):
		e = 1024 * blk + 16 + 72 * i
		if struct.unpack("<I", data[e:e + 4])[0] != int(qid):
			continue
		if data[e:e + 72] == bytes(72):
			continue
		pos = e + off
		fsblk = int(subprocess.run(["debugfs", "-R",
		    "bmap <%s> %d" % (ino, pos // bs), img],
		    capture_output=True, text=True).stdout.split()[0])
		with open(img, "r+b") as f:
			f.seek(fsblk * bs + pos % bs)
			f.write(struct.pack("<Q", int(value)))
		sys.exit(0)
sys.exit("id %s not in the quota file" % qid)
PY
}

# quota_fs FILE FEATURES: an Alpine-like root with quota files, made
# consistent by e2fsck (mke2fs 1.47.0 -d leaves usage stale), with limits
# for user 1000 and project 7 and files charged to other ids.
quota_fs() {
	r=$PEP_TMP/qroot
	rm -rf "$r" "$1"
	mkdir -p "$r/etc/cloud" "$r/home/u"
	echo 3.20.3 >"$r/etc/alpine-release"
	head -c 100000 /dev/urandom >"$r/home/u/data"
	chown -R 1000:1001 "$r/home/u"
	mkfs.ext4 -q -F -O "$2" -I 256 -d "$r" "$1" 64M >/dev/null ||
	    bail "mkfs.ext4 -O $2 failed"
	case $2 in *project*)
		debugfs -w -R "sif /home/u/data projid 7" "$1" \
		    >/dev/null 2>&1 ;;
	esac
	e2fsck -fy "$1" >/dev/null 2>&1
	quota_limit "$1" 3 1000 bhard 5000 || bail "quota_limit failed"
	quota_limit "$1" 3 1000 isoft 77 || bail "quota_limit failed"
	quota_limit "$1" 4 1001 bsoft 321 || bail "quota_limit failed"
	case $2 in *project*)
		quota_limit "$1" "$(dumpe2fs -h "$1" 2>/dev/null |
		    sed -n 's/^Project quota inode: *//p')" 7 ihard 99 ||
		    bail "quota_limit failed" ;;
	esac
	e2fsck -fn "$1" >/dev/null 2>&1 || bail "quota fixture not clean"
	[ "$(quota_line "$1" user 1000 | cut -d' ' -f3)" = 5000 ] ||
	    bail "quota fixture: limit not set"
}

# quota_line IMG TYPE ID: "space inodes" and the limits as debugfs says.
quota_line() {
	debugfs -R "list_quota $2" "$1" 2>/dev/null |
	    awk -v id="$3" '$1 == id { $1 = ""; print substr($0, 2) }'
}

quota_case() {	# name features
	n=$1
	f=$IN/quota.ext4
	quota_fs "$f" "$2"
	bake_ok "$n: bake (creates 99_nocloud.cfg, grows)" "$f" \
	    -o "$OD/q.ext4" --size 256M -q --no-pexi
	check "$n: e2fsck -fn clean (usage matches)" \
	    e2fsck -fn "$OD/q.ext4"
	for t in user group; do
		old=$(quota_line "$f" $t 0 | cut -d' ' -f1)
		new=$(quota_line "$OD/q.ext4" $t 0 | cut -d' ' -f1)
		check "$n: $t 0 charged for the new file ($old -> $new)" \
		    test "$new" -gt "$old"
	done
	is "$n: user 1000 limits and usage kept" \
	    "$(quota_line "$OD/q.ext4" user 1000)" \
	    "$(quota_line "$f" user 1000)"
	is "$n: group 1001 limits and usage kept" \
	    "$(quota_line "$OD/q.ext4" group 1001)" \
	    "$(quota_line "$f" group 1001)"
	case $2 in *project*)
		is "$n: project 7 limits and usage kept" \
		    "$(quota_line "$OD/q.ext4" project 7)" \
		    "$(quota_line "$f" project 7)"
		check "$n: project 0 charged for the new file" test \
		    "$(quota_line "$OD/q.ext4" project 0 | cut -d' ' -f1)" \
		    -gt "$(quota_line "$f" project 0 | cut -d' ' -f1)"
	esac
	bake_ok "$n: bake again" "$f" -o "$OD/q2.ext4" --size 256M -q \
	    --no-pexi
	check "$n: same bytes twice" cmp -s "$OD/q.ext4" "$OD/q2.ext4"
	rm -f "$f"
	clean_od
}

quota() {
	quota_case "quota" quota
	quota_case "quota+project" quota,project
}

# ------------------------------------------------------- small growth

small_growth() {
	for extra in 512 1024 4096 $MIB; do
		clean_od
		size=$((200 * MIB + extra))
		bake_ok "GPT grown by $extra bytes: bake" "$IN/gpt.raw" \
		    -o "$OD/g.raw" --size $size -q
		check "GPT grown by $extra bytes: sgdisk -v clean" sh -c \
		    "sgdisk -v '$OD/g.raw' | grep -q 'No problems found'"
		is "GPT grown by $extra bytes: root ends at the last usable" \
		    "$(sg_field "$OD/g.raw" 2 'Last sector')" \
		    $((size / 512 - 34))
		for p in 1 2; do
			is "GPT grown by $extra bytes: p$p identity kept" \
			    "$(sg_ident "$OD/g.raw" $p)" \
			    "$(sg_ident "$IN/gpt.raw" $p)"
		done
		check "GPT grown by $extra bytes: e2fsck -fn clean" \
		    fs_fsck "$OD/g.raw" $MIB
		bake_ok "MBR grown by $extra bytes: bake" "$IN/mbr.raw" \
		    -o "$OD/m.raw" --size $size -q
		is "MBR grown by $extra bytes: p1 to the end, flag/type kept" \
		    "$(mbr_entry "$OD/m.raw" 1)" \
		    "80 83 2048 $((size / 512 - 2048))"
		check "MBR grown by $extra bytes: e2fsck -fn clean" \
		    fs_fsck "$OD/m.raw" $MIB
	done
	clean_od
}

# The size a refusal recommends works, and a sector more does not.
size_advice() {
	clean_od
	bake "$IN/gpt.raw" -o "$OD/x.raw" --size 3T
	n=$(sed -n 's/.*use --size of at most \([0-9]*\).*/\1/p' \
	    "$PEP_TMP/bake.err")
	check "3T on a 1K-block root: refused with a size" test -n "$n"
	bake_ok "3T on a 1K-block root: the size named works" \
	    "$IN/gpt.raw" -o "$OD/x.raw" --size "${n:-0}" -q
	check "3T on a 1K-block root: e2fsck -fn clean" \
	    fs_fsck "$OD/x.raw" $MIB
	bake "$IN/gpt.raw" -o "$OD/y.raw" --size $((${n:-0} + 16 * MIB))
	err_like "3T on a 1K-block root: 16 MiB more is refused again" \
	    'use --size of at most '"$n"','
	# A root that cannot reach the disk it is on: resize2fs is the way.
	f=$IN/nogrow.raw
	truncate -s 300M "$f"
	printf 'label: dos\nstart=2048, size=200M, type=83\n' |
	    sfdisk -q "$f" >/dev/null 2>&1 || bail "sfdisk failed"
	printf 'label: dos\nstart=2048, type=83\n' |
	    sfdisk -q "$f" >/dev/null 2>&1 || bail "sfdisk failed"
	rm -f "$PEP_TMP/ng.fs"
	mkfs.ext4 -q -F -b 1024 -O ^resize_inode -d "$PEP_TMP/t" \
	    "$PEP_TMP/ng.fs" 64M || bail "mkfs.ext4 failed"
	dd if="$PEP_TMP/ng.fs" of="$f" bs=1M seek=1 conv=notrunc status=none
	bake "$f" -o "$OD/z.raw"
	err_like "root that cannot reach its disk: resize2fs named" \
	    'bigger than that already .* resize2fs'
	clean_od
}

# ------------------------------------------------------- damaged GPTs

# gpt_edit IMG WHICH PYTHON: run PYTHON on header h (a bytearray of the
# primary, or the backup it points to), then fix its CRC and write it.
gpt_edit() {
	python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys, zlib
path, which, code = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path, "r+b") as f:
	f.seek(512)
	p = f.read(512)
	lba = 1 if which == "primary" else struct.unpack("<Q", p[32:40])[0]
	f.seek(lba * 512)
	h = bytearray(f.read(512))
	exec(code)
	size = struct.unpack("<I", h[12:16])[0]
	h[16:20] = b"\0\0\0\0"
	h[16:20] = struct.pack("<I", zlib.crc32(bytes(h[:size])))
	f.seek(lba * 512)
	f.write(h)
EOF
}

backup_guid() {	# IMG: the disk GUID bytes of the backup header, hex
	python3 - "$1" <<'EOF'
import struct, sys
with open(sys.argv[1], "rb") as f:
	f.seek(512)
	p = f.read(512)
	f.seek(struct.unpack("<Q", p[32:40])[0] * 512)
	b = f.read(512)
print(p[56:72].hex(), b[56:72].hex())
EOF
}

damaged_gpt() {
	clean_od
	f=$IN/trunc.raw
	cp --sparse=always "$IN/gpt.raw" "$f"
	truncate -s 150M "$f"
	for args in "" "--root-partition 2"; do
		# shellcheck disable=SC2086
		bake "$f" -o "$OD/out.raw" $args
		one_err_line "truncated GPT disk $args"
		err_like "truncated GPT disk $args: says truncated, both sizes" \
		    "^pep-bake: .*trunc.raw: truncated: its GPT describes a disk of 209715200 bytes but the image holds only 157286400"
	done
	f=$IN/badprimary.raw
	cp --sparse=always "$IN/gpt.raw" "$f"
	printf '\377\377\377\377' | dd of="$f" bs=1 seek=528 conv=notrunc \
	    status=none
	bake_ok "corrupt primary GPT header: bake" "$f" -o "$OD/p.raw" \
	    --json -q
	like "corrupt primary GPT header: warned" \
	    "$(json_get "$PEP_TMP/bake.out" '[w["message"] for w in r["warnings"]]')" \
	    'primary GPT header or its entries were damaged: rebuilt from the intact backup'
	check "corrupt primary GPT header: sgdisk -v clean after" sh -c \
	    "sgdisk -v '$OD/p.raw' | grep -q 'No problems found'"
	for p in 1 2; do
		is "corrupt primary GPT header: p$p identity kept" \
		    "$(sg_ident "$OD/p.raw" $p)" "$(sg_ident "$IN/gpt.raw" $p)"
	done
	cmp -s "$f" "$IN/gpt.raw" && bail "corruption did not take"
	printf '\377\377\377\377' | dd of="$f" bs=1 \
	    seek=$((200 * MIB - 512 + 16)) conv=notrunc status=none
	bake "$f" -o "$OD/q.raw"
	err_like "both GPT headers corrupt: says so" \
	    'both GPT headers \(or their partition entries\) are damaged'
	f=$IN/guids.raw
	cp --sparse=always "$IN/gpt.raw" "$f"
	gpt_edit "$f" backup 'h[56:72] = bytes(range(16))'
	bake_ok "backup GPT with another disk GUID: bake" "$f" \
	    -o "$OD/g.raw" --json -q
	like "backup GPT with another disk GUID: warned, naming both" \
	    "$(json_get "$PEP_TMP/bake.out" '[w["message"] for w in r["warnings"]]')" \
	    'backup GPT header names disk GUID 03020100-0504-0706-0809-0A0B0C0D0E0F but the primary 0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0'
	set -- $(backup_guid "$OD/g.raw")
	is "backup GPT with another disk GUID: the copies agree after" "$1" \
	    "${2:-}"
	clean_od
}

# A table written for 4096-byte sectors: found, grown, and kept so.
gpt_4k() {
	clean_od
	f=$IN/g4k.raw
	truncate -s 200M "$f"
	printf 'g\nn\n1\n256\n383\nn\n2\n512\n\nt\n1\n1\nw\n' |
	    fdisk -b 4096 "$f" >/dev/null 2>&1 || bail "fdisk -b 4096 failed"
	len=$(fdisk -b 4096 -l "$f" | awk '/g4k.raw2/ { print $4 }')
	dd if="$IN/gpt.raw" of="$PEP_TMP/r.fs" bs=1M skip=1 status=none
	e2fsck -fy "$PEP_TMP/r.fs" >/dev/null 2>&1
	resize2fs "$PEP_TMP/r.fs" $((len * 4))K >/dev/null 2>&1 ||
	    bail "resize2fs failed"
	truncate -s $((len * 4096)) "$PEP_TMP/r.fs"
	dd if="$PEP_TMP/r.fs" of="$f" bs=1M seek=2 conv=notrunc status=none
	bake_ok "4K-sector GPT: bake" "$f" -o "$OD/g4k.raw" --json -q
	is "4K-sector GPT: root grown to the last usable 4K sector" \
	    "$(fdisk -b 4096 -l "$OD/g4k.raw" | awk '/g4k.raw2/ { print $3 }')" \
	    $((2048 * 1024 / 4 - 6))
	check "4K-sector GPT: fdisk -b 4096 verifies it" sh -c \
	    "printf 'v\nq\n' | fdisk -b 4096 '$OD/g4k.raw' 2>&1 |
	    grep -q 'No errors detected'"
	is "4K-sector GPT: headers at 4096 and at the last 4K sector only" \
	    "$(grep -obUaP 'EFI PART' "$OD/g4k.raw" | cut -d: -f1 |
	    awk '$1 % 512 == 0' | tr '\n' ' ')" "4096 $((2048 * MIB - 4096)) "
	check "4K-sector GPT: e2fsck -fn clean" fs_fsck "$OD/g4k.raw" \
	    $((2 * MIB))
	rm -f "$f" "$PEP_TMP/r.fs"
	clean_od
}

# ------------------------------------------------ roots that cannot grow

logical_root() {
	clean_od
	f=$IN/logical.raw
	truncate -s 200M "$f"
	printf 'label: dos\nstart=2048, size=2048, type=83\nstart=4096, type=5\nstart=6144, type=83\n' |
	    sfdisk -q "$f" >/dev/null 2>&1 || bail "sfdisk failed"
	dd if="$IN/gpt.raw" of="$PEP_TMP/r.fs" bs=1M skip=1 status=none
	e2fsck -fy "$PEP_TMP/r.fs" >/dev/null 2>&1
	resize2fs "$PEP_TMP/r.fs" $((403456 / 2))K >/dev/null 2>&1
	truncate -s $((403456 * 512)) "$PEP_TMP/r.fs"
	dd if="$PEP_TMP/r.fs" of="$f" bs=512 seek=6144 conv=notrunc \
	    status=none
	bake "$f" -o "$OD/l.raw"
	one_err_line "root in a logical partition"
	err_like "root in a logical partition: says so and what works" \
	    'partition 5, is a logical partition .* --size 209715200'
	bake_ok "root in a logical partition: the --size named works" "$f" \
	    -o "$OD/l.raw" --size 209715200 -q
	check "root in a logical partition: e2fsck -fn clean" \
	    fs_fsck "$OD/l.raw" $((6144 * 512))
	rm -f "$f" "$PEP_TMP/r.fs"
	clean_od
}

# Two Alpine roots (A/B): p2 and p3. p2 is found first and cannot grow.
ab_roots() {
	clean_od
	f=$IN/ab.raw
	cp --sparse=always "$IN/gpt.raw" "$f"
	truncate -s 400M "$f"
	sgdisk -e -n 3:0:0 -t 3:8300 -c 3:B "$f" >/dev/null 2>&1 ||
	    bail "sgdisk failed"
	start=$(sg_field "$f" 3 'First sector')
	len=$(($(sg_field "$f" 3 'Last sector') - start + 1))
	dd if="$IN/gpt.raw" of="$PEP_TMP/r.fs" bs=1M skip=1 status=none
	e2fsck -fy "$PEP_TMP/r.fs" >/dev/null 2>&1
	resize2fs "$PEP_TMP/r.fs" $((len / 2))K >/dev/null 2>&1
	dd if="$PEP_TMP/r.fs" of="$f" bs=512 seek="$start" conv=notrunc \
	    status=none
	bake "$f" -o "$OD/ab.raw" --size 1G
	err_like "A/B roots: the other root is named" \
	    'partition 2, is followed by partition 3.*partition 3 is a root too and is the last: bake it with --root-partition 3'
	bake_ok "A/B roots: --root-partition 3 works" "$f" -o "$OD/ab.raw" \
	    --size 1G --root-partition 3 -q
	check "A/B roots: p3's filesystem e2fsck -fn clean" \
	    fs_fsck "$OD/ab.raw" $((start * 512))
	rm -f "$f" "$PEP_TMP/r.fs"
	clean_od
}

# Errors about what the input holds name the input, not the output.
names_input() {
	clean_od
	f=$IN/errflag.raw
	cp --sparse=always "$IN/gpt.raw" "$f"
	debugfs -w -R "ssv state 3" "$f?offset=$MIB" >/dev/null 2>&1
	bake "$f" -o "$OD/named.raw"
	err_like "root with its errors flag: names the input partition" \
	    '^pep-bake: .*errflag.raw partition 2: the filesystem has its errors flag set'
	check_fail "root with its errors flag: does not name the output" \
	    grep -q named.raw "$PEP_TMP/bake.err"
	bake "$IN/gpt.raw" -o "$OD/x.raw" --root-partition 9
	err_like "--root-partition 9: lists the partitions there are" \
	    'no partition 9 \(the disk has partitions 1 and 2\)'
	rm -f "$f"
	clean_od
}

[ -x "$PEP_BAKE" ] || bail "$PEP_BAKE not built"
fixture "$IN/gpt.raw" gpt cloudinit raw
fixture "$IN/mbr.raw" mbr cloudinit raw
outputs_not_regular
long_names
usage_errors
epoch_zero
json_names
mbr_limit
quota
small_growth
size_advice
damaged_gpt
gpt_4k
logical_root
ab_roots
names_input
done_testing
