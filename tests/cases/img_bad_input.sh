#!/bin/sh
# Container readers (bake/img*.c) on damaged or unsupported input: each
# must fail with one line on stderr naming the file and the problem, and
# leave the input untouched. Uses $BUILD/img-dump.
. "$(dirname "$0")/../lib.sh"

DUMP=$TOP/$BUILD/img-dump
T=$PEP_TMP

need_built "$DUMP"
if ! command -v qemu-img >/dev/null 2>&1; then
	skip "qemu-img missing"
	done_testing
	exit 0
fi

# patch CMD FILE ARGS
#   vhd-footer OFF HEX [nofix]  footer at the end and copy at 0
#   vhd-dynhdr OFF HEX [nofix]  dynamic header
#   vhd-bat INDEX HEX           BAT entry
#   put64 OFF HEX               8 bytes anywhere
#   qcow2-l1 INDEX HEX          L1 entry
#   qcow2-l2 INDEX WORD HEX     word WORD (0 entry, 1 subcluster bitmap)
#                               of entry INDEX of the first L2 table
#   qcow2-comp bitmap HEX       the first compressed cluster (first L2
#   qcow2-comp nsect N          table): its subcluster bitmap, its
#   qcow2-comp zap AT HEX       additional-sector count, bytes at AT of
#   qcow2-comp put FILE         its data, or FILE over its data
patch() {
	python3 - "$@" <<'PY'
import os, struct, sys

def csum(b, off):
    return ~(sum(b[:off]) + sum(b[off + 4:])) & 0xffffffff

def patch_block(f, at, n, coff, off, val, fix, cookie):
    f.seek(at)
    b = bytearray(f.read(n))
    if b[:8] != cookie:
        return
    b[off:off + len(val)] = val
    if fix:
        b[coff:coff + 4] = struct.pack(">I", csum(b, coff))
    f.seek(at)
    f.write(b)

cmd, path = sys.argv[1], sys.argv[2]
a = sys.argv[3:]
with open(path, "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    f.seek(size - 512)
    foot = f.read(512)
    if cmd == "vhd-footer":
        fix = len(a) < 3
        for at in (size - 512, 0):
            patch_block(f, at, 512, 64, int(a[0]), bytes.fromhex(a[1]),
                        fix, b"conectix")
    elif cmd == "vhd-dynhdr":
        at = struct.unpack(">Q", foot[16:24])[0]
        patch_block(f, at, 1024, 36, int(a[0]), bytes.fromhex(a[1]),
                    len(a) < 3, b"cxsparse")
    elif cmd == "vhd-bat":
        f.seek(struct.unpack(">Q", foot[16:24])[0])
        bat = struct.unpack(">Q", f.read(1024)[16:24])[0]
        f.seek(bat + 4 * int(a[0]))
        f.write(bytes.fromhex(a[1]))
    elif cmd == "put64":
        f.seek(int(a[0]))
        f.write(bytes.fromhex(a[1]))
    elif cmd == "qcow2-l1":
        f.seek(40)
        l1 = struct.unpack(">Q", f.read(8))[0]
        f.seek(l1 + 8 * int(a[0]))
        f.write(bytes.fromhex(a[1]))
    elif cmd in ("qcow2-l2", "qcow2-comp"):
        f.seek(0)
        h = f.read(112)
        cb = struct.unpack(">I", h[20:24])[0]
        es = 16 if struct.unpack(">Q", h[72:80])[0] & 16 else 8
        f.seek(struct.unpack(">Q", h[40:48])[0])
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
        f.seek(l2)
        tab = f.read(1 << cb)
        ent = [struct.unpack(">Q", tab[i:i + 8])[0]
               for i in range(0, len(tab), es)]
        if cmd == "qcow2-l2":
            f.seek(l2 + es * int(a[0]) + 8 * int(a[1]))
            f.write(bytes.fromhex(a[2]))
            sys.exit(0)
        i = next(i for i, e in enumerate(ent) if e >> 62 & 1)
        shift = 62 - (cb - 8)
        host = ent[i] & ((1 << shift) - 1)
        if a[0] == "bitmap":
            f.seek(l2 + es * i + 8)
            f.write(bytes.fromhex(a[1]))
        elif a[0] == "nsect":
            e = ent[i] & ~(((1 << (cb - 8)) - 1) << shift)
            f.seek(l2 + es * i)
            f.write(struct.pack(">Q", e | int(a[1]) << shift))
        elif a[0] == "zap":
            f.seek(host + int(a[1]))
            f.write(bytes.fromhex(a[2]))
        elif a[0] == "put":
            f.seek(host)
            f.write(open(a[1], "rb").read())
PY
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# bad NAME FILE WORD: img-dump fails with one line naming FILE and WORD.
bad() {
	_name=$1 _f=$2 _word=$3
	_sum=$(sha "$_f" 2>/dev/null || echo dir)
	if "$DUMP" "$_f" "$T/out.raw" >"$T/out" 2>"$T/err"; then
		not_ok "$_name: img-dump succeeded"
	else
		ok "$_name: img-dump fails"
	fi
	_lines=$(wc -l <"$T/err")
	if [ "$_lines" -eq 1 ] && grep -qF "$_f" "$T/err" &&
	    grep -qi -- "$_word" "$T/err"; then
		ok "$_name: one line naming the file and '$_word'"
	else
		not_ok "$_name: stderr ($_lines lines): $(cat "$T/err")"
	fi
	diag "$(cat "$T/err")"
	if [ "$(sha "$_f" 2>/dev/null || echo dir)" = "$_sum" ]; then
		ok "$_name: input unchanged"
	else
		not_ok "$_name: input changed"
	fi
}

# qemu_refuses NAME FILE: qemu-img cannot read FILE either (a copy: qemu
# may mark an image it finds corrupt).
qemu_refuses() {
	cp "$2" "$T/qemu.qcow2"
	check_fail "$1: qemu-img refuses it too" \
	    qemu-img convert -f qcow2 -O raw "$T/qemu.qcow2" "$T/qemu.raw"
}

# A disk with data in its first and third 2 MiB blocks.
RAW=$T/disk.raw
truncate -s 8M "$RAW"
dd if=/dev/urandom of="$RAW" bs=64k count=4 conv=notrunc 2>/dev/null
dd if=/dev/urandom of="$RAW" bs=64k seek=70 count=4 conv=notrunc 2>/dev/null
qemu-img convert -f raw -O vpc "$RAW" "$T/dyn.vhd"
qemu-img convert -f raw -O qcow2 "$RAW" "$T/good.qcow2"
# Text that compresses to about 3/4: compressed clusters of many sectors.
TEXT=$T/text.raw
head -c 786432 /dev/urandom | base64 -w 0 >"$TEXT"
truncate -s 1M "$TEXT"
qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd "$TEXT" \
    "$T/zstd.qcow2"
qemu-img convert -f raw -O qcow2 -o extended_l2=on "$RAW" "$T/extl2.qcow2"
qemu-img convert -f raw -O qcow2 -c -o extended_l2=on "$TEXT" \
    "$T/extl2c.qcow2"

f=$T/truncated.vhd
cp "$T/dyn.vhd" "$f"
truncate -s $(($(stat -c %s "$f") - 1048576)) "$f"
bad "dynamic VHD with its tail cut" "$f" "past the end of the file"

f=$T/footer-sum.vhd
cp "$T/dyn.vhd" "$f"
patch vhd-footer "$f" 64 12345678 nofix
bad "bad VHD footer checksum" "$f" "footer checksum"

f=$T/dynhdr-sum.vhd
cp "$T/dyn.vhd" "$f"
patch vhd-dynhdr "$f" 32 00100000 nofix
bad "bad VHD dynamic header checksum" "$f" "dynamic header checksum"

f=$T/dynhdr-bs.vhd
cp "$T/dyn.vhd" "$f"
patch vhd-dynhdr "$f" 32 00100001
bad "VHD block size not a power of two" "$f" "block size"

f=$T/bat.vhd
cp "$T/dyn.vhd" "$f"
patch vhd-bat "$f" 1 00100000
bad "VHD BAT entry past EOF" "$f" "BAT entry 1"

f=$T/bat-few.vhd
cp "$T/dyn.vhd" "$f"
patch vhd-dynhdr "$f" 28 00000001
bad "VHD BAT too small for the disk" "$f" "BAT"

f=$T/diff.vhd
cp "$T/dyn.vhd" "$f"
patch vhd-footer "$f" 60 00000004
bad "differencing VHD" "$f" "differencing"

f=$T/fixed-short.vhd
qemu-img convert -f raw -O vpc -o subformat=fixed "$RAW" "$f"
patch vhd-footer "$f" 56 4000103f
bad "fixed VHD smaller than its CHS size" "$f" "virtual size"

f=$T/l2.qcow2
cp "$T/good.qcow2" "$f"
patch qcow2-l1 "$f" 0 8000001000000000
bad "qcow2 L2 offset past EOF" "$f" "L2 table offset"

# An L2 table that starts inside the file but runs past its end: the
# last cluster, cut in half.
f=$T/l2-tail.qcow2
cp "$T/good.qcow2" "$f"
cs=$((1 << $(od -An -tu1 -j23 -N1 "$f" | tr -d ' ')))
l2=$(( ($(stat -c %s "$f") - 1) / cs * cs ))
patch qcow2-l1 "$f" 0 "$(printf '80%014x' "$l2")"
truncate -s $((l2 + cs / 2)) "$f"
bad "qcow2 L2 table running past EOF" "$f" "L2 table offset"

f=$T/l2-align.qcow2
cp "$T/good.qcow2" "$f"
patch qcow2-l1 "$f" 0 8000000000000200
bad "qcow2 L2 offset not aligned" "$f" "L2 table offset"

f=$T/l1.qcow2
cp "$T/good.qcow2" "$f"
patch put64 "$f" 40 0000001000000000
bad "qcow2 L1 table past EOF" "$f" "L1 table"

f=$T/cb.qcow2
cp "$T/good.qcow2" "$f"
patch put64 "$f" 16 0000000000000016	# cluster_bits 22
bad "qcow2 cluster_bits 22" "$f" "cluster_bits"

qemu-img create -q -f qcow2 "$T/base.qcow2" 8M
f=$T/backing.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$f"
bad "qcow2 with a backing file" "$f" "backing file (base.qcow2)"

f=$T/corrupt.qcow2
cp "$T/good.qcow2" "$f"
patch put64 "$f" 72 0000000000000002
bad "qcow2 marked corrupt" "$f" "corrupt"

f=$T/unknown.qcow2
cp "$T/good.qcow2" "$f"
patch put64 "$f" 72 0000000000000100
bad "qcow2 unknown incompatible feature" "$f" "incompatible features"

f=$T/ctype2.qcow2
cp "$T/zstd.qcow2" "$f"
patch put64 "$f" 104 0200000000000000
bad "qcow2 compression type 2" "$f" "compression type 2 is not supported"
qemu_refuses "qcow2 compression type 2" "$f"

f=$T/ctype-bit.qcow2
cp "$T/zstd.qcow2" "$f"
patch put64 "$f" 72 0000000000000000
bad "qcow2 zstd without its feature bit" "$f" "incompatible feature bit"
qemu_refuses "qcow2 zstd without its feature bit" "$f"

f=$T/ctype0-bit.qcow2
cp "$T/good.qcow2" "$f"
patch put64 "$f" 72 0000000000000008
bad "qcow2 zlib with the compression type bit" "$f" \
    "incompatible feature bit set"
qemu_refuses "qcow2 zlib with the compression type bit" "$f"

f=$T/zstd-frame.qcow2
cp "$T/zstd.qcow2" "$f"
patch qcow2-comp "$f" zap 0 00000000
bad "qcow2 zstd frame with a bad magic" "$f" \
    "zstd compressed cluster at offset 0x"
qemu_refuses "qcow2 zstd frame with a bad magic" "$f"

f=$T/zstd-data.qcow2
cp "$T/zstd.qcow2" "$f"
patch qcow2-comp "$f" zap 40 ffffffffffffffffffffffffffffffff
bad "qcow2 zstd frame with damaged data" "$f" \
    "zstd compressed cluster at offset 0x"
qemu_refuses "qcow2 zstd frame with damaged data" "$f"

f=$T/zstd-short.qcow2
cp "$T/zstd.qcow2" "$f"
patch qcow2-comp "$f" nsect 0
bad "qcow2 zstd frame cut short" "$f" "ends before a full cluster"
qemu_refuses "qcow2 zstd frame cut short" "$f"

# One frame of 128 KiB (zstd's own header says so): past a 64K cluster.
head -c 131072 /dev/zero >"$T/zeros"
f=$T/zstd-long.qcow2
cp "$T/zstd.qcow2" "$f"
zstd -q -c "$T/zeros" >"$T/frame"
patch qcow2-comp "$f" put "$T/frame"
bad "qcow2 zstd frame longer than the cluster" "$f" \
    "frame runs past the end of the cluster"
qemu_refuses "qcow2 zstd frame longer than the cluster" "$f"

f=$T/sc-both.qcow2
cp "$T/extl2.qcow2" "$f"
patch qcow2-l2 "$f" 1 1 00000004fffffffe
bad "qcow2 subcluster both allocated and zero" "$f" \
    "subcluster 2 is both allocated and zero"
qemu_refuses "qcow2 subcluster both allocated and zero" "$f"

f=$T/sc-unalloc.qcow2
cp "$T/extl2.qcow2" "$f"
patch qcow2-l2 "$f" 10 1 0000000000000100
bad "qcow2 subcluster allocated in an unallocated cluster" "$f" \
    "subcluster 8 is allocated in an unallocated cluster"
qemu_refuses "qcow2 subcluster allocated in an unallocated cluster" "$f"

f=$T/sc-comp.qcow2
cp "$T/extl2c.qcow2" "$f"
patch qcow2-comp "$f" bitmap 0000000000000001
bad "qcow2 compressed cluster with a subcluster bitmap" "$f" \
    "non-zero subcluster bitmap"
# qemu reads past this one (it never looks at the bitmap of a compressed
# cluster), but the format says the bits are 0 and qemu-img check agrees.
cp "$f" "$T/qemu.qcow2"
check_fail "qcow2 compressed cluster with a subcluster bitmap: qemu-img \
check calls it corrupt" qemu-img check -q "$T/qemu.qcow2"

f=$T/extl2-8k.qcow2
cp "$T/extl2.qcow2" "$f"
patch put64 "$f" 16 000000000000000d	# cluster_bits 13
bad "qcow2 extended L2 with 8K clusters" "$f" "at least 16 KiB"
qemu_refuses "qcow2 extended L2 with 8K clusters" "$f"

f=$T/datafile.qcow2
if qemu-img create -q -f qcow2 -o data_file="$T/datafile.raw" "$f" 8M \
    2>/dev/null; then
	bad "qcow2 external data file" "$f" "external data file"
else skip "qemu-img without data_file"; fi

f=$T/v4.qcow2
cp "$T/good.qcow2" "$f"
patch put64 "$f" 0 514649fb00000004
bad "qcow2 version 4" "$f" "version 4"

f=$T/text.txt
printf 'hello, this is not a disk\n%.0s' $(seq 100) >"$f"
bad "a text file" "$f" "not a disk image"

f=$T/empty.img
: >"$f"
bad "an empty file" "$f" "empty"

f=$T/adir
mkdir "$f"
bad "a directory" "$f" "directory"

bad "a missing file" "$T/missing.img" "No such file"

done_testing
