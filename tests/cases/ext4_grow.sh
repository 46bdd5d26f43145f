#!/bin/sh
# bake/ext4_grow.c through tests/tools/ext4-grow.c, against resize2fs.
# Each tests/data/ext4_grow/*.case is one mkfs option set:
#   # description                  (first comment line)
#   mkfs: -b 1024 -O ^resize_inode  (options for mkfs.ext4 -F -q)
#   size: 32M                       (start size; K/M/G/T suffixes)
#   fill: minirootfs bigfiles quarter-groups nearly-full  (mkfs -d input)
#   setup: ssv state 3              (debugfs -w requests; repeatable)
#   grow: 64M 256M                  (target sizes, each from the start image)
#   expect: ok | refuse REGEX       (for the grow: line before it; ok if absent)
#     or: unchanged                 (succeeds, and the file is left as it was)
#     or: noref REASON              (ok, but no resize2fs comparison)
#   known: REGEX                    (resize2fs's own result is known to fail
#                                    e2fsck -fn with this; dumpe2fs may differ)
#   offset: 1M                      (the fs starts there; random bytes before)
#   trailer: 64K                    (random bytes right after the old end)
#   extended: stride=16             (more mkfs -E options)
#   xfail: REASON                   (a known ext4_grow bug: failures are
#                                    reported as ok "XFAIL"; remove when fixed)
# For "ok": ext4-grow succeeds; two runs are byte-identical; e2fsck -fn is
# clean; block, inode and group counts equal resize2fs's on the same start
# image and target (E2FSPROGS_FAKE_TIME, RESIZE2FS_FORCE_ITABLE_INIT=1);
# per-group free counts add up to the header's; the whole dumpe2fs output
# equals resize2fs's but for Lifetime writes/Checksum, and so does the
# image, byte for byte, but for s_kbytes_written/s_checksum in each
# superblock copy (unless the case names a known resize2fs bug: "known:");
# every file (bytes, mode, owner, size) and two xattrs are unchanged.
# For "refuse": exit 1, stderr matches REGEX, and the original bytes are
# unchanged (ext4-grow extends the file once the filesystem is open, and
# puts the old size back when it refuses).
# Cases run in $PEP_JOBS lanes (default: the number of CPUs);
# PEP_GROW_CASES=glob picks some. The source trees and resize2fs's results
# are cached under $PEP_CACHE.
. "$(dirname "$0")/../lib.sh"

GROW=${EXT4_GROW:-$TOP/$BUILD/ext4-grow}
DATA=$TOP/tests/data/ext4_grow
T0=1600000000
UUID=01234567-89ab-cdef-0123-456789abcdef
JOBS=${PEP_JOBS:-$(nproc 2>/dev/null || echo 2)}
export E2FSPROGS_FAKE_TIME=$T0
unset RESIZE2FS_FORCE_LAZY_ITABLE_INIT

for _t in mkfs.ext4 resize2fs e2fsck dumpe2fs debugfs python3 sha256sum; do
	if ! command -v $_t >/dev/null 2>&1; then
		skip "$_t missing"; done_testing; exit 0
	fi
done
need_built "$GROW"
TARBALL=$(alpine_minirootfs) || { not_ok "alpine minirootfs"; done_testing; exit 1; }

# The cache: keyed by this script, the e2fsprogs version and the tarball.
_key=$( { cat "$0"; mkfs.ext4 -V 2>&1; resize2fs 2>&1 | head -1;
	basename "$TARBALL"; } | sha256sum | cut -c1-16)
CACHE=$PEP_CACHE/ext4_grow-$_key
for _d in "$PEP_CACHE"/ext4_grow-*; do	# older versions' caches
	[ "$_d" = "$CACHE" ] || rm -rf "$_d"
done
mkdir -p "$CACHE/trees" "$CACHE/ref"

bytes() {	# 32M -> 33554432
	case $1 in
	*K|*k) echo $(( ${1%?} * 1024 )) ;;
	*M|*m) echo $(( ${1%?} * 1048576 )) ;;
	*G|*g) echo $(( ${1%?} * 1073741824 )) ;;
	*T|*t) echo $(( ${1%?} * 1099511627776 )) ;;
	*) echo "$1" ;;
	esac
}

# tree FILL SIZEBYTES: the source directory for mkfs -d, built once into
# the cache (ctimes then stay put, so start images are reproducible).
# Only quarter-groups depends on the size.
tree_dir() {
	case $1 in *quarter-groups*|*nearly-full*) _ts=$2 ;; *) _ts=0 ;; esac
	echo "$CACHE/trees/$(echo "$1" | tr ' ' '_')-$_ts"
}
make_tree() {	# fill, size
	_d=$(tree_dir "$1" "$2")
	[ -f "$_d.done" ] && return 0
	rm -rf "$_d"; mkdir -p "$_d"
	for _w in $1; do
		case $_w in
		minirootfs) tar -xzf "$TARBALL" -C "$_d" --numeric-owner ||
			return 1 ;;
		bigfiles|quarter-groups|nearly-full) ;;
		*) echo "unknown fill $_w" >&2; return 1 ;;
		esac
	done
	python3 - "$_d" "$2" "$1" <<-'EOF' || return 1
	import os, random, sys
	d, size, fill = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
	def put(path, data, mode=0o644, uid=0, gid=0):
	    os.makedirs(os.path.dirname(path), exist_ok=True)
	    with open(path, "wb") as f:
	        f.write(data)
	    os.chmod(path, mode); os.chown(path, uid, gid)
	put(d + "/pep-xattr", b"a file with xattrs\n", 0o640, 1000, 1001)
	if "bigfiles" in fill:
	    r = random.Random(1)
	    put(d + "/big/rand-1M", r.randbytes(1 << 20))
	    put(d + "/big/rand-odd", r.randbytes(2621441), 0o600, 65534, 100)
	    # random, a 1 MiB hole, random: mkfs -d keeps the hole
	    put(d + "/big/holey", r.randbytes(300000) + bytes(1 << 20) +
	        r.randbytes(77777), 0o755)
	if "quarter-groups" in fill:
	    r = random.Random(2)
	    for i in range(size // 4 // (1 << 20)):
	        put("%s/quarter/q%03d" % (d, i), r.randbytes(1 << 20))
	if "nearly-full" in fill:	# 7/8 of the size in 256 KiB files
	    r = random.Random(5)
	    for i in range(size * 7 // 8 // (1 << 18)):
	        put("%s/full/f%04d" % (d, i), r.randbytes(1 << 18))
	EOF
	# A fixed atime, later than every mtime, that reading will not bump.
	find "$_d" -exec touch -h -a -d @2000000000 {} + &&
	touch -h -m -d @1500000000 "$_d" && : >"$_d.done"
}

# Sparse-aware image sums and byte-difference counts (multi-GiB images are
# mostly holes; holes and written zeros count the same).
IMGTOOL=$PEP_TMP/imgtool.py
cat >"$IMGTOOL" <<-'EOF'
	# imgtool.py sum FILE...: per file, a sum of its contents that is blind
	#   to holes vs written zeros, and the same sum with s_kbytes_written and
	#   s_checksum masked in every superblock copy (bytes that differ between
	#   two implementations doing the same writes).
	# imgtool.py diff A B: how many bytes differ, and how many of them are
	#   outside those masked superblock fields.
	import hashlib, os, sys
	CH = 1 << 16
	MASK = list(range(376, 384)) + list(range(1020, 1024))
	def chunks(path):
	    """(index, bytes) of every non-zero 64 KiB chunk, in order."""
	    fd = os.open(path, os.O_RDONLY)
	    size = os.fstat(fd).st_size
	    off, last = 0, -1
	    while off < size:
	        try:
	            d = os.lseek(fd, off, os.SEEK_DATA)
	        except OSError:
	            break
	        h = os.lseek(fd, d, os.SEEK_HOLE)
	        i = max(d // CH, last + 1)
	        while i * CH < h:
	            b = os.pread(fd, CH, i * CH)
	            if b.count(0) != len(b):
	                yield i, b
	            last = i
	            i += 1
	        off = h
	    os.close(fd)
	def sb_bases(i, b):
	    """Offsets in chunk i of what look like superblocks: magic 0xEF53
	    at +56 of a 1 KiB-aligned start, s_log_block_size sane (the fs
	    may sit at any 1 KiB-aligned offset in the file)."""
	    for o in range(0, len(b) - 1023, 1024):
	        if b[o + 56] != 0x53 or b[o + 57] != 0xEF:
	            continue
	        if int.from_bytes(b[o + 24:o + 28], "little") <= 6:
	            yield o
	def masked(i, b):
	    bases = list(sb_bases(i, b))
	    if not bases:
	        return b
	    m = bytearray(b)
	    for o in bases:
	        for f in MASK:
	            m[o + f] = 0
	    return bytes(m)
	if sys.argv[1] == "sum":
	    for p in sys.argv[2:]:
	        r, m = hashlib.sha256(), hashlib.sha256()
	        for h in r, m:
	            h.update(str(os.stat(p).st_size).encode())
	        for i, b in chunks(p):
	            for h in r, m:
	                h.update(i.to_bytes(8, "little"))
	            r.update(b)
	            m.update(masked(i, b))
	        print(r.hexdigest(), m.hexdigest())
	elif sys.argv[1] == "diff":
	    a = dict(chunks(sys.argv[2]))
	    b = dict(chunks(sys.argv[3]))
	    z = bytes(CH)
	    n = n_out = 0
	    for i in sorted(set(a) | set(b)):
	        x, y = a.get(i, z), b.get(i, z)
	        if x == y:
	            continue
	        x, y = x.ljust(CH, b"\0"), y.ljust(CH, b"\0")
	        mx, my = masked(i, x), masked(i, y)
	        n += sum(1 for p, q in zip(x, y) if p != q)
	        n_out += sum(1 for p, q in zip(mx, my) if p != q)
	    print(n, n_out)
	EOF
imgsum() { python3 "$IMGTOOL" sum "$@"; }	# lines: raw masked

# Scratch space: tmpfs when there is room (rdump and the many sparse
# copies are several times faster there than on a disk), else $PEP_TMP.
SCRATCH=${PEP_GROW_TMP:-}
if [ -z "$SCRATCH" ] && [ -d /dev/shm ] && [ -w /dev/shm ] &&
    [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -gt \
    2097152 ] 2>/dev/null; then
	SCRATCH=$(mktemp -d /dev/shm/pep-grow.XXXXXX) || SCRATCH=
	[ -n "$SCRATCH" ] &&
	    trap 'rm -rf "$SCRATCH"; cleanup_tmp' EXIT
fi
SCRATCH=${SCRATCH:-$PEP_TMP}

# The per-case results: lines "ok|not_ok|diag<TAB>text" in $RES/NAME.
RES=$PEP_TMP/res
mkdir -p "$RES"
r_ok() { printf 'ok\t%s\n' "$*" >>"$out"; }
r_no() { printf '%s\t%s\n' "${XFAIL:+x}not_ok" "$*" >>"$out"; }
r_diag() { printf 'diag\t%s\n' "$*" >>"$out"; }
r_diag_file() {	# file [lines]
	head -n "${2:-15}" "$1" | while IFS= read -r _l; do r_diag "  $_l"; done
}
r_check() {	# description command...
	_dd=$1; shift
	if "$@" >"$W/.o" 2>&1; then r_ok "$_dd"; else
		r_no "$_dd"; r_diag_file "$W/.o"
	fi
}

field() {	# dumpe2fs-file "Block count"
	sed -n "s/^$2: *//p" "$1" | head -1
}
ngroups() { grep -c '^Group [0-9]' "$1"; }
# Per-group "N free blocks, M free inodes" sums.
group_sums() {
	sed -n 's/^ *\([0-9]*\) free blocks, \([0-9]*\) free inodes.*/\1 \2/p' \
	    "$1" | awk '{ b += $1; i += $2 } END { print b + 0, i + 0 }'
}
dfilter() {
	grep -v -E '^(Lifetime writes|Checksum|Filesystem created):' "$1"
}
listing() {	# dir
	(cd "$1" && find . -printf '%p %y %m %U %G %s %l\n' | LC_ALL=C sort)
}
eas() {	# image
	debugfs -R "ea_list /pep-xattr" "$1?offset=$OFF" 2>/dev/null
}

# resize2fs's result for start image + target, cached by the start image
# hash: $1 start, $2 bytes, $3 start sha; sets REF (a dir with dumpe2fs,
# sums, rc, out, fsckrc, fsck; the image itself stays as $W/ref.img, for
# this run only).
ref_resize() {
	REF=$CACHE/ref/$3-$2
	[ -f "$REF/done" ] && return 0
	rm -rf "$REF.tmp"; mkdir -p "$REF.tmp"
	cp --sparse=always "$1" "$W/ref.img"
	# Else resize2fs writes a "0" at the end; and with ?offset= it
	# truncates the file to the fs size, offset not counted: undo that.
	truncate -s $((OFF + $2)) "$W/ref.img"
	RESIZE2FS_FORCE_ITABLE_INIT=1 resize2fs "$W/ref.img?offset=$OFF" \
	    "$(($2 / 1024))K" >"$REF.tmp/out" 2>&1
	echo $? >"$REF.tmp/rc"
	truncate -s $((OFF + $2)) "$W/ref.img"
	dumpe2fs "$W/ref.img?offset=$OFF" >"$REF.tmp/dumpe2fs" 2>/dev/null
	imgsum "$W/ref.img" >"$REF.tmp/sums"
	e2fsck -fn "$W/ref.img?offset=$OFF" >"$REF.tmp/fsck" 2>&1
	echo $? >"$REF.tmp/fsckrc"
	rm -rf "$REF"; mv "$REF.tmp" "$REF"; : >"$REF/done"
}

# Against resize2fs's result ($REF) for the same start image and target.
ref_compare() {	# title
	_t=$1
	if [ "$(cat "$REF/rc")" != 0 ]; then
		r_no "$_t: resize2fs succeeds"; r_diag_file "$REF/out"
		return
	fi
	_a="$(field "$W/a.d" 'Block count') $(field "$W/a.d" 'Inode count')"
	_a="$_a $(ngroups "$W/a.d")"
	_r="$(field "$REF/dumpe2fs" 'Block count')"
	_r="$_r $(field "$REF/dumpe2fs" 'Inode count') $(ngroups "$REF/dumpe2fs")"
	if [ "$_a" = "$_r" ]; then
		r_ok "$_t: blocks/inodes/groups as resize2fs ($_a)"
	else
		r_no "$_t: blocks/inodes/groups as resize2fs"
		r_diag "  ext4-grow: $_a; resize2fs: $_r"
	fi
	dfilter "$W/a.d" >"$W/a.df"; dfilter "$REF/dumpe2fs" >"$W/r.df"
	_known=
	[ -n "$KNOWN" ] && [ "$(cat "$REF/fsckrc")" != 0 ] &&
	    grep -q -E -e "$KNOWN" "$REF/fsck" && _known=1
	if diff -u "$W/r.df" "$W/a.df" >"$W/d.diff"; then
		r_ok "$_t: dumpe2fs identical to resize2fs's"
	elif [ -n "$_known" ]; then
		r_ok "$_t: dumpe2fs differs from resize2fs's" \
		    "($(grep -c '^[-+][^-+]' "$W/d.diff") lines), whose own" \
		    "result fails e2fsck -fn as known: /$KNOWN/"
		r_diag_file "$W/d.diff" 30
	else
		r_no "$_t: dumpe2fs identical to resize2fs's" \
		    "($(grep -c '^[-+][^-+]' "$W/d.diff") lines differ)"
		r_diag_file "$W/d.diff" 30
	fi
	if [ "$(cat "$REF/fsckrc")" != 0 ]; then
		r_diag "$_t: resize2fs's own result fails e2fsck -fn:"
		grep -v -E '^(Pass|e2fsck|Fix\? no|$)' "$REF/fsck" >"$W/.o"
		r_diag_file "$W/.o" 8
	fi
	# Byte for byte, but for s_kbytes_written and s_checksum.
	_m=$(sed -n 1p "$W/sums" | cut -d' ' -f2)
	if [ -f "$W/ref.img" ]; then
		_n=$(python3 "$IMGTOOL" diff "$W/a.img" "$W/ref.img")
		_n="; $(echo "$_n" | cut -d' ' -f1) bytes differ in all"
	else
		_n="; cached, no byte count"
	fi
	if [ "$_m" = "$(cut -d' ' -f2 "$REF/sums")" ]; then
		r_ok "$_t: image identical to resize2fs's but for" \
		    "s_kbytes_written/s_checksum$_n"
	elif [ -n "$_known" ]; then
		r_ok "$_t: image differs from resize2fs's (known, above)$_n"
	else
		r_no "$_t: image identical to resize2fs's but for" \
		    "s_kbytes_written/s_checksum$_n"
	fi
}

grow_ok() {	# name bytes [noref reason]
	_nm=$1; _b=$2; _t="$_nm -> $_b"; _noref=${3:-}
	cp --sparse=always "$W/start.img" "$W/a.img"
	if ! "$GROW" -t $T0 "$W/a.img" "$OFF" "$_b" >"$W/a.out" \
	    2>"$W/a.err"; then
		r_no "$_t: ext4-grow succeeds"; r_diag_file "$W/a.err"
		return
	fi
	r_ok "$_t: ext4-grow succeeds ($(cat "$W/a.out"))"
	cp --sparse=always "$W/start.img" "$W/b.img"
	"$GROW" -t $T0 "$W/b.img" "$OFF" "$_b" >/dev/null 2>&1
	imgsum "$W/a.img" "$W/b.img" >"$W/sums"
	if [ "$(sed -n 1p "$W/sums" | cut -d' ' -f1)" = \
	    "$(sed -n 2p "$W/sums" | cut -d' ' -f1)" ]; then
		r_ok "$_t: two runs give identical bytes"
	else
		r_no "$_t: two runs give identical bytes" \
		    "($(python3 "$IMGTOOL" diff "$W/a.img" "$W/b.img" |
		    cut -d' ' -f1) bytes differ)"
	fi
	rm -f "$W/b.img"
	r_check "$_t: e2fsck -fn clean" e2fsck -fn "$W/a.img?offset=$OFF"
	dumpe2fs "$W/a.img?offset=$OFF" >"$W/a.d" 2>/dev/null
	if [ "$OFF" -gt 0 ]; then
		r_check "$_t: the bytes before the offset are unchanged" \
		    cmp -n "$OFF" "$W/start.img" "$W/a.img"
	fi
	_nb=$(cut -d' ' -f2 "$W/a.out")
	if [ "$_nb" = "$(field "$W/a.d" 'Block count')" ]; then
		r_ok "$_t: reported new_blocks matches the superblock"
	else
		r_no "$_t: reported new_blocks $_nb vs superblock"
	fi
	_s=$(group_sums "$W/a.d")
	_h="$(field "$W/a.d" 'Free blocks') $(field "$W/a.d" 'Free inodes')"
	if [ "$_s" = "$_h" ]; then
		r_ok "$_t: per-group free counts add up ($_h)"
	else
		r_no "$_t: per-group free counts add up"
		r_diag "  groups: $_s; header: $_h"
	fi
	rm -f "$W/ref.img"
	if [ -n "$_noref" ]; then
		r_diag "$_t: no resize2fs comparison: $_noref"
		r_diag "  $(field "$W/a.d" 'Block count') blocks," \
		    "$(field "$W/a.d" 'Inode count') inodes," \
		    "$(ngroups "$W/a.d") groups"
	else
		ref_resize "$W/start.img" "$_b" "$SSHA"
		ref_compare "$_t"
	fi
	rm -f "$W/ref.img"
	rm -rf "$W/after"; mkdir "$W/after"
	debugfs -R "rdump / $W/after" "$W/a.img?offset=$OFF" >/dev/null 2>&1
	r_check "$_t: file contents unchanged" \
	    diff -r --no-dereference "$W/before" "$W/after"
	listing "$W/after" >"$W/after.ls"
	r_check "$_t: modes, owners, sizes unchanged" \
	    diff "$W/before.ls" "$W/after.ls"
	eas "$W/a.img" >"$W/after.ea"
	r_check "$_t: xattrs unchanged" diff "$W/before.ea" "$W/after.ea"
	rm -rf "$W/after" "$W/a.img"
}

# A target at or below the current size: success, and nothing written.
grow_unchanged() {	# name bytes
	_t="$1 -> $2"
	cp --sparse=always "$W/start.img" "$W/a.img"
	if "$GROW" -t $T0 "$W/a.img" "$OFF" "$2" >"$W/a.out" 2>"$W/a.err"
	then
		r_ok "$_t: ext4-grow succeeds ($(cat "$W/a.out"))"
	else
		r_no "$_t: ext4-grow succeeds"; r_diag_file "$W/a.err"
	fi
	r_check "$_t: the file is unchanged" cmp "$W/start.img" "$W/a.img"
	rm -f "$W/a.img"
}

grow_refuse() {	# name bytes regex
	_t="$1 -> $2"
	cp --sparse=always "$W/start.img" "$W/a.img"
	"$GROW" -t $T0 "$W/a.img" "$OFF" "$2" >"$W/a.out" 2>"$W/a.err"
	_rc=$?
	if [ $_rc -eq 1 ] && grep -q -E -e "$3" "$W/a.err"; then
		r_ok "$_t: refused: $(head -c 160 "$W/a.err")"
	else
		r_no "$_t: refused with /$3/ (rc=$_rc)"
		r_diag_file "$W/a.err"
	fi
	_sha=$(head -c "$SSIZE" "$W/a.img" | sha256sum | cut -d' ' -f1)
	if [ "$_sha" = "$SSHA" ]; then
		r_ok "$_t: the original bytes are unchanged" \
		    "(file now $(stat -c %s "$W/a.img") bytes)"
	else
		r_no "$_t: the original bytes are unchanged"
		cmp -l -n "$SSIZE" "$W/start.img" "$W/a.img" 2>/dev/null |
		    head -5 >"$W/.o"
		r_diag_file "$W/.o"
	fi
	rm -f "$W/a.img"
}

run_case() {	# case file
	_name=$(basename "$1" .case)
	_t0=$(date +%s)
	out=$RES/$_name
	W=$SCRATCH/w/$_name
	rm -rf "$W"; mkdir -p "$W"; : >"$out"
	_mkfs=; _size=; _fill=; _ext=; _trail=0; KNOWN=; OFF=0; _last=
	XFAIL=
	: >"$W/setup"; : >"$W/targets"
	while IFS= read -r _l; do
		case $_l in
		"mkfs: "*) _mkfs=${_l#mkfs: } ;;
		"size: "*) _size=$(bytes "${_l#size: }") ;;
		"fill: "*) _fill=${_l#fill: } ;;
		"offset: "*) OFF=$(bytes "${_l#offset: }") ;;
		"trailer: "*) _trail=$(bytes "${_l#trailer: }") ;;
		"extended: "*) _ext=,${_l#extended: } ;;
		"known: "*) KNOWN=${_l#known: } ;;
		"xfail: "*) XFAIL=${_l#xfail: } ;;
		"setup: "*) echo "${_l#setup: }" >>"$W/setup" ;;
		"grow: "*) [ -n "$_last" ] && for _g in $_last; do
				echo "$(bytes "$_g") ok" >>"$W/targets"; done
			_last=${_l#grow: } ;;
		"expect: "*) for _g in $_last; do
				echo "$(bytes "$_g") ${_l#expect: }" \
				    >>"$W/targets"; done
			_last= ;;
		esac
	done <"$1"
	for _g in $_last; do echo "$(bytes "$_g") ok" >>"$W/targets"; done
	# Random bytes before the offset and after the old end.
	python3 -c 'import random, sys
f = open(sys.argv[1], "wb"); off, end, n = map(int, sys.argv[2:])
f.write(random.Random(3).randbytes(off)); f.seek(end)
f.write(random.Random(4).randbytes(n))' "$W/start.img" "$OFF" \
	    $((OFF + _size)) "$_trail"
	# shellcheck disable=SC2086
	if ! mkfs.ext4 -F -q -U $UUID -E "offset=$OFF,hash_seed=$UUID$_ext" \
	    $_mkfs -d "$(tree_dir "$_fill" "$_size")" "$W/start.img" \
	    "$((_size / 1024))k" >"$W/.o" 2>&1; then
		r_no "$_name: mkfs.ext4 $_mkfs"; r_diag_file "$W/.o"; return
	fi
	# (debugfs -w waits out the MMP interval: only when needed.)
	grep -q -v ' refuse ' "$W/targets" && cat >>"$W/setup.0" <<-EOF
	ea_set /pep-xattr user.pep-small grow-kept
	ea_set /pep-xattr user.pep-big $(printf '%0300d' 7)
	EOF
	cat "$W/setup" >>"$W/setup.0"
	[ -s "$W/setup.0" ] && debugfs -w -f "$W/setup.0" \
	    "$W/start.img?offset=$OFF" >"$W/.o" 2>&1
	SSIZE=$(stat -c %s "$W/start.img")
	SSHA=$(sha256sum <"$W/start.img" | cut -d' ' -f1)
	if grep -q -E ' (ok|noref)' "$W/targets"; then
		mkdir "$W/before"
		debugfs -R "rdump / $W/before" "$W/start.img?offset=$OFF" \
		    >/dev/null 2>&1
		listing "$W/before" >"$W/before.ls"
		eas "$W/start.img" >"$W/before.ea"
		grep -q pep-big "$W/before.ea" ||
		    r_no "$_name: the xattrs were set"
		grep -q '^\./pep-xattr f 640 1000 1001 ' "$W/before.ls" ||
		    r_no "$_name: rdump of the start image works"
	fi
	while read -r _b _e _re; do
		case $_e in
		ok) grow_ok "$_name" "$_b" ;;
		noref) grow_ok "$_name" "$_b" "$_re" ;;
		unchanged) grow_unchanged "$_name" "$_b" ;;
		refuse) grow_refuse "$_name" "$_b" "$_re" ;;
		*) r_no "$_name: bad expect: $_e" ;;
		esac
	done <"$W/targets"
	r_diag "$_name: $(( $(date +%s) - _t0 )) s"
	rm -rf "$W"
}

# Source trees first (shared), then the cases in lanes.
for _c in "$DATA"/${PEP_GROW_CASES:-*}.case; do
	_f=$(sed -n 's/^fill: //p' "$_c")
	echo "$_f|$(bytes "$(sed -n 's/^size: //p' "$_c")")"
done | sort -u >"$PEP_TMP/trees"
while IFS='|' read -r _f _s; do
	make_tree "$_f" "$_s" || { not_ok "source tree $_f"; done_testing; exit 1; }
done <"$PEP_TMP/trees"

_i=0
for _c in "$DATA"/${PEP_GROW_CASES:-*}.case; do
	echo "$_c" >>"$PEP_TMP/lane$((_i % JOBS))"
	_i=$((_i + 1))
done
_j=0
while [ $_j -lt "$JOBS" ]; do
	[ -f "$PEP_TMP/lane$_j" ] && (
		while read -r _c; do run_case "$_c"; done <"$PEP_TMP/lane$_j"
	) &
	_j=$((_j + 1))
done
wait

for _c in "$DATA"/${PEP_GROW_CASES:-*}.case; do
	_name=$(basename "$_c" .case)
	diag "$_name: $(sed -n '1s/^# //p' "$_c")"
	[ -s "$RES/$_name" ] || { not_ok "$_name: no results"; continue; }
	while IFS="$(printf '\t')" read -r _k _txt; do
		case $_k in
		ok) ok "$_txt" ;;
		not_ok) not_ok "$_txt" ;;
		xnot_ok) ok "XFAIL ($(sed -n 's/^xfail: //p' "$_c")): $_txt" ;;
		*) diag "$_txt" ;;
		esac
	done <"$RES/$_name"
done
done_testing
