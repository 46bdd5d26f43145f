#!/bin/sh
# Copy offload (bake/convert.c): a raw disk and a fixed VHD baked with
# input and output on one filesystem, each made in a private mount
# namespace:
#   XFS with reflink  the output shares the input's extents (filefrag),
#                     the filesystem grows by far less than the data
#   ext4, tmpfs       the kernel copies (strace sees copy_file_range);
#                     a fully allocated input still bakes sparse
#   tmpfs -> XFS      copy_file_range fails with EXDEV; the userspace path
#                     takes over
# Every output must be byte-identical to the userspace path's
# (PEP_NO_COPY_RANGE=1), e2fsck-clean, and keep the input's holes.

# The mounts live in a mount namespace of their own, which takes them
# (and, autoclear, their loop devices) with it however this script ends.
if [ -z "${PEP_COPY_NS:-}" ] &&
    unshare -m --propagation private true 2>/dev/null; then
	PEP_COPY_NS=1 exec unshare -m --propagation private sh "$0" "$@"
fi
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"

EPOCH=1700000000
BLOB_MIB=24
MNTS=""

cleanup_mounts() {
	for cm_m in $MNTS; do
		umount "$cm_m" 2>/dev/null || umount -l "$cm_m"
	done
	cleanup_tmp
}
trap cleanup_mounts EXIT

# The reasons a case is skipped; empty when everything is there.
why_skip() {
	[ -n "${PEP_COPY_NS:-}" ] ||
	    { echo "unshare -m is not permitted"; return; }
	[ -e /dev/loop-control ] || { echo "no /dev/loop-control"; return; }
	grep -qw xfs /proc/filesystems || modprobe xfs 2>/dev/null ||
	    { echo "the kernel has no xfs"; return; }
	command -v mkfs.xfs >/dev/null ||
	    { echo "no mkfs.xfs (xfsprogs)"; return; }
	for ws_c in strace filefrag qemu-img xfs_spaceman; do
		command -v $ws_c >/dev/null || { echo "no $ws_c"; return; }
	done
}

# loopfs NAME MKFS...: a filesystem in a loop file, mounted on $PEP_TMP/NAME.
loopfs() {
	lf_n=$1; shift
	truncate -s 768M "$PEP_TMP/$lf_n.img"
	"$@" "$PEP_TMP/$lf_n.img" >/dev/null 2>&1 || return 1
	lf_dev=$(losetup --find --show "$PEP_TMP/$lf_n.img") || return 1
	mkdir -p "$PEP_TMP/$lf_n"
	mount "$lf_dev" "$PEP_TMP/$lf_n" || { losetup -d "$lf_dev"; return 1; }
	MNTS="$PEP_TMP/$lf_n $MNTS"
	losetup -d "$lf_dev"	# (mounted: it goes with the mount)
}

used() { stat -f -c '%b %f %S' "$1" |
	awk '{ printf "%.0f\n", ($1 - $2) * $3 }'; }

# settle DIR: XFS frees removed files' blocks in the background.
settle() {
	st_p=$(used "$1") st_i=0
	while [ $st_i -lt 50 ]; do
		sleep 0.1; st_c=$(used "$1")
		[ "$st_c" = "$st_p" ] && return 0
		st_p=$st_c st_i=$((st_i + 1))
	done
}

json() {
	python3 -c 'import json, sys
print(eval(sys.argv[2], {"r": json.load(open(sys.argv[1]))}))' "$1" "$2"
}

# holes_kept IN REF OUT: no 4 KiB block of OUT holds data where both the
# input and the userspace path's output have a hole. Prints the count.
holes_kept() {
	python3 - "$@" <<'EOF'
import os, sys
def data(p):
	fd, s, off = os.open(p, os.O_RDONLY), set(), 0
	size = os.fstat(fd).st_size
	while off < size:
		try:
			d = os.lseek(fd, off, os.SEEK_DATA)
		except OSError:
			break
		h = os.lseek(fd, d, os.SEEK_HOLE)
		s.update(range(d // 4096, (h + 4095) // 4096))
		off = h
	return s
i, r, o = (data(p) for p in sys.argv[1:4])
bad = o - i - r
print(len(bad))
sys.exit(1 if bad else 0)
EOF
}

# shared_bytes FILE: bytes in extents filefrag flags shared.
shared_bytes() {
	filefrag -v -b4096 "$1" | awk -F: '/shared/ { n += $4 }
	    END { printf "%.0f\n", n * 4096 }'
}

# trim_cow DIR: on XFS, free copy-on-write staging now. pep-bake's own
# writes into shared blocks (the GPT, ext4 metadata, edits) are staged in
# 128 KiB CoW-fork extents, which SEEK_DATA reports as data until XFS's
# background GC frees them; the file itself has holes there.
trim_cow() {
	[ "$(stat -f -c %T "$1")" = xfs ] || return 0
	sync
	xfs_spaceman -c 'prealloc -s' "$1" >/dev/null
}

# bake_on DESC DIR IN [ENV...]: bake IN to DIR/out.raw (under strace
# when $TRACE is set), then the checks every filesystem shares.
# LeakSanitizer cannot run under ptrace: the traced bakes go without it.
bake_on() {
	bo_d=$1 bo_dir=$2 bo_in=$3; shift 3
	rm -f "$bo_dir/out.raw"
	: >"$PEP_TMP/strace"
	if [ -n "${TRACE:-}" ]; then
		set -- "$@" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
		    strace -f -qq -e trace=copy_file_range,ioctl \
		    -o "$PEP_TMP/strace"
	fi
	# --no-pexi: the runner's 26 MB would be new data in every output,
	# and what is measured here is the copy.
	env "$@" "$PEP_BAKE" --json --size 1G --epoch $EPOCH --no-pexi \
	    "$bo_in" -o "$bo_dir/out.raw" >"$PEP_TMP/report.json" \
	    2>"$PEP_TMP/bake.err"
	bo_rc=$?
	if [ $bo_rc -eq 0 ]; then ok "$bo_d: bake"; else
		not_ok "$bo_d: bake (exit $bo_rc)"
		sed 's/^/#   /' "$PEP_TMP/bake.err" | head -5
	fi
	check "$bo_d: output identical to the userspace path's" \
	    cmp "$bo_dir/out.raw" "$PEP_TMP/ref.raw"
	check "$bo_d: e2fsck -fn clean" fs_fsck "$bo_dir/out.raw" 1048576
	trim_cow "$bo_dir"
	check "$bo_d: the input's holes stay holes" \
	    holes_kept "$bo_in" "$PEP_TMP/ref.raw" "$bo_dir/out.raw"
}

# Calls in $PEP_TMP/strace: kernel copies that moved data, EXDEV refusals.
# A call that another thread's interrupts is split in two lines, and its
# result is on the second: "<... copy_file_range resumed>) = -1 EXDEV".
cfr_ok() { grep -c 'copy_file_range[( ].*= [1-9]' "$PEP_TMP/strace"; }
cfr_exdev() { grep -c 'copy_file_range[( ].*= -1 EXDEV' "$PEP_TMP/strace"; }
# bake/convert.c's CONVERT_MAXWORKERS: each may have one call in flight
# when the first refusal comes.
WORKERS=$(sed -n 's/^#define CONVERT_MAXWORKERS[[:space:]]*\([0-9]*\).*/\1/p' \
    "$TOP/bake/convert.c")

[ -x "$PEP_BAKE" ] || bail "$PEP_BAKE not built"
reason=$(why_skip)
if [ -n "$reason" ]; then
	skip "copy offload on loop filesystems: $reason"
	done_testing
	exit
fi

# Inputs: the Alpine-like GPT disk with random data added, as raw and as
# a fixed VHD; the reference is the userspace path's bake of the raw one.
fixture "$PEP_TMP/in.raw" gpt cloudinit raw
python3 -c 'import random, sys
sys.stdout.buffer.write(random.Random(9).randbytes(int(sys.argv[1]) << 20))' \
    $BLOB_MIB >"$PEP_TMP/blob"
debugfs -w -R "write $PEP_TMP/blob /blob" "$PEP_TMP/in.raw?offset=1048576" \
    >/dev/null 2>&1 || bail "debugfs write failed"
rm -f "$PEP_TMP/blob"
qemu-img convert -f raw -O vpc -o subformat=fixed "$PEP_TMP/in.raw" \
    "$PEP_TMP/in.vhd-fixed" || bail "qemu-img convert failed"
DATA=$(du -B1 "$PEP_TMP/in.raw" | cut -f1)
PEP_NO_COPY_RANGE=1 "$PEP_BAKE" -q --size 1G --epoch $EPOCH --no-pexi \
    "$PEP_TMP/in.raw" -o "$PEP_TMP/ref.raw" || bail "reference bake failed"
diag "input: $DATA bytes of data"

loopfs xfs mkfs.xfs -f -m reflink=1 || bail "cannot make and mount XFS"
loopfs ext4 mkfs.ext4 -F -q || bail "cannot make and mount ext4"
mkdir -p "$PEP_TMP/tmpfs"
mount -t tmpfs -o size=1500m tmpfs "$PEP_TMP/tmpfs" ||
    bail "cannot mount tmpfs"
MNTS="$PEP_TMP/tmpfs $MNTS"
for fs in xfs ext4 tmpfs; do
	cp --reflink=never --sparse=always "$PEP_TMP/in.raw" \
	    "$PEP_TMP/in.vhd-fixed" "$PEP_TMP/$fs/"
done
# qemu-img's raw of the VHD, on XFS: baked, it must come out the same.
qemu-img convert -f vpc -O raw "$PEP_TMP/xfs/in.vhd-fixed" \
    "$PEP_TMP/xfs/qemu.raw" || bail "qemu-img convert failed"
sync

# XFS with reflink: the output shares the input's blocks.
for f in raw vhd-fixed qemu; do
	in=$PEP_TMP/xfs/in.$f
	[ $f = qemu ] && in=$PEP_TMP/xfs/qemu.raw
	rm -f "$PEP_TMP/xfs/out.raw"
	sync; settle "$PEP_TMP/xfs"
	u0=$(used "$PEP_TMP/xfs")
	bake_on "xfs $f" "$PEP_TMP/xfs" "$in"
	sync
	grew=$(($(used "$PEP_TMP/xfs") - u0))
	shb=$(shared_bytes "$PEP_TMP/xfs/out.raw")
	rep=$(json "$PEP_TMP/report.json" 'r["bytes_shared"]')
	diag "xfs $f: filesystem grew $grew bytes; $shb bytes in shared" \
	    "extents; bytes_shared $rep"
	check "xfs $f: shared extents hold >= 90% of the data" \
	    test $((shb * 10)) -ge $((DATA * 9))
	check "xfs $f: bytes_shared in the report matches (>= 90%)" \
	    test $((rep * 10)) -ge $((DATA * 9))
	check "xfs $f: the filesystem grew by < 10% of the data" \
	    test $((grew * 10)) -lt "$DATA"
done

# The rest runs under strace, to see copy_file_range's calls.
TRACE=1

# ext4 and tmpfs: no sharing; the kernel copies, and the sampling keeps
# a fully allocated input's zeros as holes.
for fs in ext4 tmpfs; do
	for f in raw vhd-fixed; do
		bake_on "$fs $f" "$PEP_TMP/$fs" "$PEP_TMP/$fs/in.$f"
		n=$(cfr_ok)
		check "$fs $f: the kernel copied ($n copy_file_range calls)" \
		    test "$n" -gt 0
		is "$fs $f: nothing shared" \
		    "$(json "$PEP_TMP/report.json" 'r["bytes_shared"]')" 0
	done
	cp --sparse=never "$PEP_TMP/$fs/in.raw" "$PEP_TMP/$fs/dense.raw"
	rm -f "$PEP_TMP/$fs/in.vhd-fixed"
	bake_on "$fs fully allocated raw" "$PEP_TMP/$fs" \
	    "$PEP_TMP/$fs/dense.raw"
	a=$(du -B1 "$PEP_TMP/$fs/out.raw" | cut -f1)
	b=$(du -B1 "$PEP_TMP/ref.raw" | cut -f1)
	check "$fs fully allocated raw: as sparse as the userspace path's \
($a vs $b bytes allocated), within 1/8" test "$a" -le $((b + b / 8))
	rm -f "$PEP_TMP/$fs/dense.raw" "$PEP_TMP/$fs/out.raw"
done

# Input on tmpfs, output on XFS: copy_file_range says EXDEV.
bake_on "tmpfs -> xfs" "$PEP_TMP/xfs" "$PEP_TMP/tmpfs/in.raw"
check "tmpfs -> xfs: copy_file_range failed with EXDEV" \
    test "$(cfr_exdev)" -gt 0
check "tmpfs -> xfs: and was not asked again (once per worker at most, \
$WORKERS workers)" test "$(cfr_exdev)" -le "$WORKERS"
is "tmpfs -> xfs: nothing shared" \
    "$(json "$PEP_TMP/report.json" 'r["bytes_shared"]')" 0

# PEP_NO_COPY_RANGE=1 turns it off: no call at all.
bake_on "xfs, PEP_NO_COPY_RANGE=1" "$PEP_TMP/xfs" "$PEP_TMP/xfs/in.raw" \
    PEP_NO_COPY_RANGE=1
is "xfs, PEP_NO_COPY_RANGE=1: no copy_file_range" \
    "$(grep -c copy_file_range "$PEP_TMP/strace")" 0
done_testing
