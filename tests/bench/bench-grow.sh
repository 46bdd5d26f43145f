#!/bin/sh
# Benchmark: build/ext4-grow (bake/ext4_grow.c) against resize2fs on bare
# ext4 images: 200 MiB -> 2 GiB and 1 GiB -> 16 GiB (mkfs.ext4 defaults,
# 4 KiB blocks, populated with the Alpine minirootfs and random data).
# Each tool runs once, on its own copy of the same start image, to the
# same target. resize2fs runs as a user would run it: `resize2fs IMG SIZE`
# (it zeroes new inode tables only when the host lacks
# /sys/fs/ext4/features/lazy_itable_init; the run with
# RESIZE2FS_FORCE_ITABLE_INIT=1 is the like-for-like one, since ext4-grow
# always leaves them zeroed, as holes where it can). Prints wall times,
# allocated bytes (du -B1) and the ext4-grow/resize2fs ratios.
#   PEP_BENCH_DIR  work directory (default build/bench-grow; start images
#                  are kept there between runs)
#   PEP_BENCH_GROW "FROM:TO[:DATA_MIB] ..." (default "200M:2G:64 1G:16G:256")
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
GROW=${EXT4_GROW:-$TOP/build/ext4-grow}
W=${PEP_BENCH_DIR:-$TOP/build/bench-grow}
SIZES=${PEP_BENCH_GROW:-200M:2G:64 1G:16G:256}
UUID=01234567-89ab-cdef-0123-456789abcdef
export E2FSPROGS_FAKE_TIME=1600000000
mkdir -p "$W"

[ -x "$GROW" ] || { echo "bench-grow: $GROW missing (make all)" >&2; exit 1; }
. "$TOP/tests/lib.sh" 2>/dev/null >/dev/null || true
trap - EXIT
TARBALL=$(PEP_CACHE=$TOP/build/fixtures alpine_minirootfs)

alloc() { du -B1 "$1" | cut -f1; }
bytes() {
	case $1 in
	*M) echo $(( ${1%M} * 1048576 )) ;;
	*G) echo $(( ${1%G} * 1073741824 )) ;;
	*) echo "$1" ;;
	esac
}
# (no ">" inside printf: mawk takes it for output redirection)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { r = 0; if (b != 0) r = a / b
	printf "%.3f", r }'; }

start_image() {	# from data_mib -> path
	_img=$W/start-$1-$2.img
	if [ ! -f "$_img" ]; then
		echo "bench-grow: making a $1 image with $2 MiB of data" >&2
		rm -rf "$W/tree"; mkdir -p "$W/tree/data"
		tar -xzf "$TARBALL" -C "$W/tree" --numeric-owner
		python3 -c 'import random, sys
r = random.Random(11)
for i in range(int(sys.argv[2]) // 4):
    open("%s/d%04d" % (sys.argv[1], i), "wb").write(r.randbytes(4 << 20))' \
		    "$W/tree/data" "$2"
		mkfs.ext4 -F -q -b 4096 -U $UUID -E hash_seed=$UUID \
		    -d "$W/tree" "$_img.tmp" "$1" >/dev/null
		rm -rf "$W/tree"
		mv "$_img.tmp" "$_img"
	fi
	echo "$_img"
}

# build/walltime times the command alone, from posix_spawn to waitpid:
# a shell's fork, redirections and $(date) would add milliseconds of its
# own to both sides of a ratio of ~10 ms commands.
WALL=$TOP/build/walltime
[ -x "$WALL" ] || { echo "bench-grow: $WALL missing (make all)" >&2; exit 1; }
timed() {	# command... -> appends seconds to $W/.t.<tag> (tag first)
	_tag=$1; shift
	"$WALL" -o "$W/.out" "$@" >>"$W/.t.$_tag" || {
		cat "$W/.out" >&2; return 1; }
}
median() { sort -n "$W/.t.$1" | awk '{ t[NR] = $1 }
	END { printf "%.4f", t[int((NR + 1) / 2)] }'; }

# RUNS rounds; each round runs every contender once on a fresh copy of
# START, interleaved, so drift in the machine's speed hits all alike.
RUNS=${PEP_BENCH_RUNS:-9}
rounds() {	# START TO_BYTES TO
	rm -f "$W"/.t.*
	_i=0
	while [ $_i -lt "$RUNS" ]; do
		cp --sparse=always "$1" "$W/grow.img"
		cp --sparse=always "$1" "$W/r2.img"
		cp --sparse=always "$1" "$W/r2f.img"
		sync
		timed floor /bin/true
		timed grow "$GROW" "$W/grow.img" 0 "$2" || return 1
		timed r2 resize2fs "$W/r2.img" "$3" || return 1
		RESIZE2FS_FORCE_ITABLE_INIT=1 timed r2f resize2fs "$W/r2f.img" \
		    "$3" || return 1
		_i=$((_i + 1))
	done
}

if [ -e /sys/fs/ext4/features/lazy_itable_init ]; then
	lazy="present: plain resize2fs leaves new inode tables to the kernel"
else
	lazy="absent: plain resize2fs zeroes new inode tables"
fi
echo "bench-grow: /sys/fs/ext4/features/lazy_itable_init $lazy"
for spec in $SIZES; do
	from=${spec%%:*}; rest=${spec#*:}; to=${rest%%:*}
	mib=${rest#"$to"}; mib=${mib#:}; mib=${mib:-64}
	start=$(start_image "$from" "$mib")
	tb=$(bytes "$to")
	rounds "$start" "$tb" "$to" || exit 1
	t_g=$(median grow); t_r=$(median r2); t_f=$(median r2f)
	t_0=$(median floor)
	a_g=$(alloc "$W/grow.img"); a_r=$(alloc "$W/r2.img")
	a_f=$(alloc "$W/r2f.img")
	fsck=ok
	e2fsck -fn "$W/grow.img" >/dev/null 2>&1 || fsck=FAILED
	printf '%s -> %s (%s MiB data; start %s bytes allocated; median '\
'of %s interleaved runs)\n' "$from" "$to" "$mib" "$(alloc "$start")" "$RUNS"
	printf '  %-40s %8s s %14s bytes  (e2fsck -fn %s)\n' ext4-grow \
	    "$t_g" "$a_g" "$fsck"
	printf '  %-40s %8s s %14s bytes\n' "resize2fs IMG $to" "$t_r" "$a_r"
	printf '  %-40s %8s s %14s bytes\n' \
	    "RESIZE2FS_FORCE_ITABLE_INIT=1 resize2fs" "$t_f" "$a_f"
	printf '  %-40s %8s s\n' "(spawning /bin/true, for scale)" "$t_0"
	# Both tools pay the machine's cost of starting a process, which is
	# most of a 5 ms run in a VM whose exec and page faults trap to the
	# hypervisor; net of it, the ratio is the tools' own work.
	printf '  ratio net of spawning a process: %s\n' "$(awk -v g="$t_g" \
	    -v r="$t_r" -v z="$t_0" 'BEGIN { printf "%.3f", (g - z) / (r - z) }')"
	printf '  ratio ext4-grow/resize2fs: time %s, allocated %s' \
	    "$(ratio "$t_g" "$t_r")" "$(ratio "$a_g" "$a_r")"
	printf ' (vs forced itable init: time %s, allocated %s)\n' \
	    "$(ratio "$t_g" "$t_f")" "$(ratio "$a_g" "$a_f")"
	rm -f "$W/grow.img" "$W/r2.img" "$W/r2f.img"
done
