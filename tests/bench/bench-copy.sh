#!/bin/sh
# make bench: copy offload (bake/convert.c). A 1 GiB raw disk and the
# same disk as a fixed VHD (an Alpine-like GPT disk from mkdisk.sh holding
# >= 500 MiB of random data) are baked on an XFS filesystem with reflink
# and on an ext4 one, each made in a file on a loop device inside a
# private mount namespace, input and output on the same filesystem.
# Contenders, from a cold page cache each time, in interleaved rounds:
#   pep-bake              copy_file_range (shares extents on XFS)
#   pep-bake, no offload  PEP_NO_COPY_RANGE=1: read, skip zeros, write
#   qemu-img -C           qemu-img convert -C -f raw|vpc -O raw (the
#                         reference; qemu's vpc driver has no copy offload,
#                         so for the VHD it is the plain convert)
#   qemu-img              qemu-img convert -f raw|vpc -O raw
#   qemu-img -t writeback the same, but with qemu's fdatasync at the end:
#                         qemu-img's default leaves the output in the page
#                         cache, while pep-bake fsyncs before it renames
#   eatmydata pep-bake    pep-bake with every flush made a no-op, as
#                         qemu-img's default: what the flush costs
# The last lines compare at equal durability: pep-bake against qemu-img
# -t writeback (both on disk when they exit), and eatmydata pep-bake
# against qemu-img convert (both in the page cache).
# pep-bake also grows the disk to 2 GiB and edits the root filesystem;
# qemu-img only converts. For each contender: median wall time, time per
# GiB of the disk, the filesystem's newly allocated bytes (df before and
# after, after a sync) as a share of the input's data, and the median of
# each round's ratio against pep-bake.
#   PEP_BENCH_DIR       work directory (default build/bench-copy; the
#                       inputs are kept there between runs)
#   PEP_BENCH_ROUNDS    rounds (default 5)
#   PEP_BENCH_DATA_MIB  random data in the input (default 520)
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
PEP_BAKE=${PEP_BAKE:-$TOP/build/pep-bake}
WALL=$TOP/build/walltime
W=${PEP_BENCH_DIR:-$TOP/build/bench-copy}
ROUNDS=${PEP_BENCH_ROUNDS:-5}
DATA_MIB=${PEP_BENCH_DATA_MIB:-520}

for t in "$PEP_BAKE" "$WALL"; do
	[ -x "$t" ] || { echo "bench-copy: $t missing (make all)" >&2; exit 1; }
done
for c in mkfs.xfs mkfs.ext4 qemu-img losetup unshare debugfs eatmydata; do
	command -v $c >/dev/null || {
		echo "bench-copy: $c missing (ci/install-deps.sh bench)" >&2
		exit 1; }
done
# The mounts live in a mount namespace of their own: whatever way this
# script ends, they go with it, and so do their loop devices (autoclear).
if [ -z "${PEP_BENCH_COPY_NS:-}" ]; then
	PEP_BENCH_COPY_NS=1 exec unshare -m --propagation private \
	    sh "$0" "$@"
fi
mkdir -p "$W"

make_inputs() {
	[ -f "$W/in.raw" ] && [ -f "$W/in.vhd" ] && return 0
	echo "bench-copy: building a 1 GiB GPT cloud-init disk with" \
	    "$DATA_MIB MiB of data" >&2
	rm -f "$W/in.raw" "$W/in.vhd"
	sh "$TOP/tests/fixtures/mkdisk.sh" gpt cloudinit raw "$W/in.tmp" 1024
	python3 -c 'import random,sys
r=random.Random(7); f=open(sys.argv[1],"wb")
for i in range(int(sys.argv[2])): f.write(r.randbytes(1<<20))' \
	    "$W/blob" "$DATA_MIB"
	debugfs -w -R "write $W/blob /bench-blob" \
	    "$W/in.tmp?offset=1048576" >/dev/null 2>&1
	rm -f "$W/blob"
	qemu-img convert -f raw -O vpc -o subformat=fixed "$W/in.tmp" \
	    "$W/in.vhd.tmp"
	mv "$W/in.vhd.tmp" "$W/in.vhd"
	mv "$W/in.tmp" "$W/in.raw"
}

MNTS=""
cleanup() {
	for m in $MNTS; do umount "$m" 2>/dev/null || umount -l "$m"; done
	rm -f "$W/fs-xfs.img" "$W/fs-ext4.img"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# mkfs_loop NAME MKFS...: a 4 GiB filesystem mounted on $W/mnt-NAME. The
# loop device does direct I/O, so the backing file's page cache does not
# stand in for the disk; losetup -d on a mounted device only marks it to
# go when the mount does.
mkfs_loop() {
	_n=$1; shift
	_img=$W/fs-$_n.img _mnt=$W/mnt-$_n
	rm -f "$_img"
	truncate -s 4G "$_img"
	"$@" "$_img" >/dev/null
	_dev=$(losetup --find --show --direct-io=on "$_img")
	mkdir -p "$_mnt"
	mount "$_dev" "$_mnt" || { losetup -d "$_dev"; return 1; }
	MNTS="$_mnt $MNTS"
	losetup -d "$_dev"
	cp --reflink=never --sparse=always "$W/in.raw" "$W/in.vhd" "$_mnt/"
	sync
}

used() { stat -f -c '%b %f %S' "$1" |
	awk '{ printf "%.0f\n", ($1 - $2) * $3 }'; }

# settle DIR: wait (up to 5 s) until the count of used blocks stops
# moving: XFS frees a removed file's blocks in the background, after
# sync returns.
settle() {
	_p=$(used "$1") _i=0
	while [ $_i -lt 50 ]; do
		sleep 0.1
		_c=$(used "$1")
		[ "$_c" = "$_p" ] && return 0
		_p=$_c _i=$((_i + 1))
	done
}

# one TAG DIR COMMAND...: a cold-cache run writing DIR/out.raw; appends
# "seconds new-bytes" to $W/.r.TAG.
one() {
	_tag=$1 _d=$2; shift 2
	rm -f "$_d/out.raw"
	sync
	settle "$_d"
	echo 3 >/proc/sys/vm/drop_caches
	_u0=$(used "$_d")
	_t=$("$WALL" -o "$W/.out" "$@") || {
		echo "bench-copy: failed: $*" >&2; cat "$W/.out" >&2
		return 1; }
	sync
	echo "$_t $(($(used "$_d") - _u0))" >>"$W/.r.$_tag"
	rm -f "$_d/out.raw"
}

CONTENDERS="pep off qC q qwb eat"
label() {
	case $1 in
	pep)	echo "pep-bake" ;;
	off)	echo "pep-bake, PEP_NO_COPY_RANGE=1" ;;
	qC)	echo "qemu-img convert -C" ;;
	q)	echo "qemu-img convert" ;;
	qwb)	echo "qemu-img convert -t writeback" ;;
	eat)	echo "eatmydata pep-bake (no flush)" ;;
	esac
}

# round FS INPUT: every contender once, in a rotating order (pep-bake
# with --no-pexi: qemu-img installs no pexi-boot, whose runner alone is
# 26 MB of new data).
round() {
	_d=$W/mnt-$1 _in=$W/mnt-$1/in.$2 _k=$1.$2 _f=raw
	[ "$2" = vhd ] && _f=vpc
	for _c in $CONTENDERS; do
		case $_c in
		pep)	one "$_k.$_c" "$_d" "$PEP_BAKE" -q --no-pexi \
			    --size 2G "$_in" -o "$_d/out.raw" ;;
		off)	one "$_k.$_c" "$_d" env PEP_NO_COPY_RANGE=1 \
			    "$PEP_BAKE" -q --no-pexi --size 2G "$_in" \
			    -o "$_d/out.raw" ;;
		qC)	one "$_k.$_c" "$_d" qemu-img convert -C -f $_f -O raw \
			    "$_in" "$_d/out.raw" ;;
		q)	one "$_k.$_c" "$_d" qemu-img convert -f $_f -O raw \
			    "$_in" "$_d/out.raw" ;;
		qwb)	one "$_k.$_c" "$_d" qemu-img convert -t writeback \
			    -f $_f -O raw "$_in" "$_d/out.raw" ;;
		eat)	one "$_k.$_c" "$_d" eatmydata "$PEP_BAKE" -q --no-pexi \
			    --size 2G "$_in" -o "$_d/out.raw" ;;
		esac
	done
	# pep-bake against each contender, this round
	_tp=$(tail -1 "$W/.r.$_k.pep" | cut -d' ' -f1)
	for _c in $CONTENDERS; do
		_tc=$(tail -1 "$W/.r.$_k.$_c" | cut -d' ' -f1)
		awk -v a="$_tp" -v b="$_tc" 'BEGIN { printf "%.4f\n", a / b }' \
		    >>"$W/.ratio.$_k.$_c"
	done
	# at equal durability
	ratio "$_k" pep qwb >>"$W/.eq.$_k.flushed"
	ratio "$_k" eat q >>"$W/.eq.$_k.unflushed"
}

ratio() {	# KEY A B: this round's time of A over B's
	awk -v a="$(tail -1 "$W/.r.$1.$2" | cut -d' ' -f1)" \
	    -v b="$(tail -1 "$W/.r.$1.$3" | cut -d' ' -f1)" \
	    'BEGIN { printf "%.4f\n", a / b }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

report() {	# FS INPUT DATA_BYTES GIB
	_k=$1.$2
	printf '%s, %s input (%s bytes of data; median of %d rounds)\n' \
	    "$1" "$2" "$3" "$ROUNDS"
	printf '  %-31s %8s %8s %14s %7s %9s\n' contender "s" "s/GiB" \
	    "new bytes" "/data" "pep/this"
	for _c in $CONTENDERS; do
		_t=$(cut -d' ' -f1 "$W/.r.$_k.$_c" | median)
		_a=$(cut -d' ' -f2 "$W/.r.$_k.$_c" | median)
		_r=$(median <"$W/.ratio.$_k.$_c")
		awk -v l="$(label $_c)" -v t="$_t" -v a="$_a" -v d="$3" \
		    -v g="$4" -v r="$_r" 'BEGIN {
		    printf "  %-31s %8.3f %8.3f %14.0f %7.3f %9.3f\n",
		    l, t, t / g, a, a / d, r }'
	done
	printf '  equal durability: pep-bake / qemu-img -t writeback %.3f;' \
	    "$(median <"$W/.eq.$_k.flushed")"
	printf ' eatmydata pep-bake / qemu-img convert %.3f\n' \
	    "$(median <"$W/.eq.$_k.unflushed")"
}

command -v losetup >/dev/null && losetup -f >/dev/null 2>&1 || {
	echo "bench-copy: loop devices are not available here (need root)" >&2
	exit 1
}
make_inputs
mkfs_loop xfs mkfs.xfs -q -f -m reflink=1
mkfs_loop ext4 mkfs.ext4 -q -F
DATA=$(du -B1 "$W/in.raw" | cut -f1)
rm -f "$W"/.r.* "$W"/.ratio.* "$W"/.eq.*
i=1
while [ $i -le "$ROUNDS" ]; do
	for fs in xfs ext4; do
		for in in raw vhd; do round $fs $in; done
	done
	echo "bench-copy: round $i of $ROUNDS done" >&2
	i=$((i + 1))
done
GIB_RAW=$(awk -v s="$(stat -c %s "$W/in.raw")" 'BEGIN { print s / 2^30 }')
GIB_VHD=$(awk -v s="$(stat -c %s "$W/in.vhd")" \
    'BEGIN { print (s - 512) / 2^30 }')
for fs in xfs ext4; do
	report $fs raw "$DATA" "$GIB_RAW"
	report $fs vhd "$DATA" "$GIB_VHD"
done
echo "targets: XFS pep-bake <= 0.1 s/GiB and new bytes <= 0.05 of the" \
    "data; ext4 pep-bake <= 1.2x qemu-img convert (-C and plain)." \
    "pep-bake's time includes writing the data to disk (fsync before" \
    "rename), plain qemu-img's does not: the equal-durability lines" \
    "compare like with like"
