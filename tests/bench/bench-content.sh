#!/bin/sh
# Benchmark: pep-bake --copy-in against mkfs.ext4 -d, the same ~500 MiB
# host tree (the Alpine minirootfs unpacked 20 times, and four 85 MiB
# files of random bytes) put into an ext4 filesystem of the same size.
#   pep-bake  -q --no-pexi --epoch E --size 1G bare.img -o pep.raw
#             --copy-in SRC/content:/
#     bare.img is a 1 GiB ext4 made once, beforehand and untimed, by the
#     same mkfs.ext4 command as the reference's, without -d. pep-bake
#     reads it (its few MiB of metadata: the rest is a hole), writes the
#     output file, copies the tree in through libext2fs, and fsyncs.
#   mkfs.ext4 -q -F -b 4096 -U U -E hash_seed=U -d SRC ref.img 1G
#     makes the filesystem and copies the same tree in (SRC holds only
#     content/), and fsyncs.
# Both start with no output file and a page cache holding the tree (it is
# read once before every run), and end with the same files in the same
# places (checked once: e2fsck -fn on both, and tests/fixtures/fstree.py
# compares every node's type, mode, owner, size, mtime, links, xattrs and
# bytes). Each round runs both, interleaved; the result is the median of
# the rounds' ratios, since the machine's speed drifts (shared CPU and
# disk). Peak RSS is /usr/bin/time's maximum resident set size.
#   PEP_BENCH_DIR     work directory (default build/bench-content; the
#                     tree and bare image are kept there between runs)
#   PEP_BENCH_ROUNDS  rounds (default 7)
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
PEP_BAKE=${PEP_BAKE:-$TOP/build/pep-bake}
WALL=$TOP/build/walltime
W=${PEP_BENCH_DIR:-$TOP/build/bench-content}
ROUNDS=${PEP_BENCH_ROUNDS:-7}
COPIES=20
BIG_MIB=85
UUID=01234567-89ab-cdef-0123-456789abcdef
EPOCH=1700000000
export E2FSPROGS_FAKE_TIME=$EPOCH
mkdir -p "$W"

for t in "$PEP_BAKE" "$WALL"; do
	[ -x "$t" ] || { echo "bench-content: $t missing (make all)" >&2
		exit 1; }
done
. "$TOP/tests/lib.sh" 2>/dev/null >/dev/null || true
trap - EXIT
TARBALL=$(PEP_CACHE=$TOP/build/fixtures alpine_minirootfs)

make_tree() {
	[ -f "$W/src/.done" ] && return 0
	echo "bench-content: unpacking the minirootfs $COPIES times and" \
	    "writing 4 x $BIG_MIB MiB" >&2
	rm -rf "$W/src"
	mkdir -p "$W/src/content/big"
	i=1
	while [ $i -le $COPIES ]; do
		d=$W/src/content/rootfs-$(printf %02d $i)
		mkdir -p "$d"
		tar -xzf "$TARBALL" -C "$d" --numeric-owner
		i=$((i + 1))
	done
	python3 -c 'import random, sys
r = random.Random(5)
for n in "abcd":
    with open(sys.argv[1] + "/" + n, "wb") as f:
        for i in range(int(sys.argv[2])):
            f.write(r.randbytes(1 << 20))' "$W/src/content/big" "$BIG_MIB"
	# Nothing later than the bake's epoch: pep-bake would clamp it.
	find "$W/src" -exec touch -h -d @$((EPOCH - 86400)) {} +
	touch "$W/src/.done"
}

mkfs_args() { echo -q -F -b 4096 -U $UUID -E hash_seed=$UUID; }

make_bare() {
	[ -f "$W/bare.img" ] && return 0
	rm -f "$W/bare.tmp"
	# shellcheck disable=SC2046
	mkfs.ext4 $(mkfs_args) "$W/bare.tmp" 1G >/dev/null
	mv "$W/bare.tmp" "$W/bare.img"
}

warm() { tar -cf - -C "$W/src" content | cat >/dev/null; }

# timed TAG COMMAND...: wall seconds to $W/t.TAG, peak RSS to $W/m.TAG
timed() {
	_tag=$1; shift
	"$WALL" -o "$W/out.$_tag" /usr/bin/time -f '%M' -o "$W/rss" "$@" \
	    >>"$W/t.$_tag" || { cat "$W/out.$_tag" >&2; return 1; }
	cat "$W/rss" >>"$W/m.$_tag"
}

run_pep() {
	rm -f "$W/pep.raw"
	warm
	timed pep "$PEP_BAKE" -q --no-pexi --epoch $EPOCH --size 1G \
	    "$W/bare.img" -o "$W/pep.raw" --copy-in "$W/src/content:/"
}

run_mkfs() {
	rm -f "$W/ref.img"
	warm
	# shellcheck disable=SC2046
	timed mkfs mkfs.ext4 $(mkfs_args) -d "$W/src" "$W/ref.img" 1G
}

same_result() {
	for f in pep.raw ref.img; do
		e2fsck -fn "$W/$f" >"$W/fsck.$f" 2>&1 || {
			echo "bench-content: e2fsck -fn $f failed:" >&2
			tail -5 "$W/fsck.$f" >&2; exit 1; }
		python3 "$TOP/tests/fixtures/fstree.py" "$W/$f" /content \
		    "$W/dump" >"$W/tree.$f"
	done
	rm -rf "$W/dump"
	if ! cmp -s "$W/tree.pep.raw" "$W/tree.ref.img"; then
		echo "bench-content: the two filesystems differ:" >&2
		diff "$W/tree.ref.img" "$W/tree.pep.raw" | head -20 >&2
		exit 1
	fi
	echo "check: e2fsck clean, same $(wc -l <"$W/tree.pep.raw") nodes" \
	    "(type, mode, owner, size, mtime, links, xattrs, bytes)"
}

median() { sort -n "$1" | awk '{ v[NR] = $1 }
	END { printf "%s", v[int((NR + 1) / 2)] }'; }

make_tree
make_bare
echo "bench-content: $(du -sm "$W/src/content" | cut -f1) MiB," \
    "$(find "$W/src/content" | wc -l) nodes; load average:" \
    "$(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
rm -f "$W"/t.* "$W"/m.* "$W/ratios"
i=1
while [ $i -le "$ROUNDS" ]; do
	run_pep
	run_mkfs
	[ $i -eq 1 ] && same_result
	tp=$(tail -1 "$W/t.pep"); tm=$(tail -1 "$W/t.mkfs")
	r=$(awk -v a="$tp" -v b="$tm" 'BEGIN { printf "%.3f", a / b }')
	echo "$r" >>"$W/ratios"
	printf 'round %d: pep-bake %6.3f s (%s KiB), mkfs.ext4 -d %6.3f s' \
	    "$i" "$tp" "$(tail -1 "$W/m.pep")" "$tm"
	printf ' (%s KiB), ratio %s\n' "$(tail -1 "$W/m.mkfs")" "$r"
	i=$((i + 1))
done
rm -f "$W/pep.raw" "$W/ref.img"
printf 'pep-bake --copy-in:  median %s s, peak RSS %s KiB (max of rounds)\n' \
    "$(median "$W/t.pep")" "$(sort -n "$W/m.pep" | tail -1)"
printf 'mkfs.ext4 -d:        median %s s, peak RSS %s KiB\n' \
    "$(median "$W/t.mkfs")" "$(sort -n "$W/m.mkfs" | tail -1)"
printf 'time ratio pep-bake/mkfs.ext4 -d: %s (median of %d rounds;' \
    "$(median "$W/ratios")" "$ROUNDS"
printf ' target <= 0.8); load average now %s\n' \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
