#!/bin/sh
# Container readers (bake/img*.c) against qemu-img 7.2: every VHD and qcow2
# flavour qemu-img writes must read back byte-identical to qemu-img convert
# -O raw, with the virtual size qemu-img info reports, without changing
# the input; a qcow2's map must call data and holes what qemu-img map
# calls them (so holes stay holes in pep-bake's sparse output). Uses
# $BUILD/img-dump.
. "$(dirname "$0")/../lib.sh"

DUMP=$TOP/$BUILD/img-dump
T=$PEP_TMP

need_built "$DUMP"
if ! command -v qemu-img >/dev/null 2>&1; then
	skip "qemu-img missing"
	done_testing
	exit 0
fi

# vhdpatch CMD FILE ARGS: footer OFF HEX (at the end and the copy at 0,
# checksum fixed), bitmap-clear (clear sector 0 of the first allocated
# block; prints that block's index).
vhdpatch() {
	python3 - "$@" <<'PY'
import os, struct, sys

def csum(b, off):
    return ~(sum(b[:off]) + sum(b[off + 4:])) & 0xffffffff

def patch_footer(f, at, off, val):
    f.seek(at)
    b = bytearray(f.read(512))
    if b[:8] != b"conectix":
        return
    b[off:off + len(val)] = val
    b[64:68] = struct.pack(">I", csum(b, 64))
    f.seek(at)
    f.write(b)

cmd, path = sys.argv[1], sys.argv[2]
with open(path, "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    if cmd == "footer":
        off, val = int(sys.argv[3]), bytes.fromhex(sys.argv[4])
        patch_footer(f, size - 512, off, val)
        patch_footer(f, 0, off, val)
    elif cmd == "bitmap-clear":
        f.seek(size - 512)
        foot = f.read(512)
        f.seek(struct.unpack(">Q", foot[16:24])[0])
        hdr = f.read(1024)
        bat = struct.unpack(">Q", hdr[16:24])[0]
        n = struct.unpack(">I", hdr[28:32])[0]
        f.seek(bat)
        ents = struct.unpack(">%dI" % n, f.read(4 * n))
        i = next(i for i, e in enumerate(ents) if e != 0xFFFFFFFF)
        f.seek(ents[i] * 512)
        bm = bytearray(f.read(1))
        bm[0] &= 0x7f
        f.seek(ents[i] * 512)
        f.write(bm)
        print(i)
PY
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# mapdiff QEMUFMT FILE MAP: compare img-dump's map (MAP: "start length
# data|zero" lines) with qemu-img map's data flags, both merged into runs;
# prints the first difference, exits 1 if there is one.
mapdiff() {
	qemu-img map --output=json -f "$1" "$2" >"$T/qmap.json" &&
	python3 - "$T/qmap.json" "$3" <<'PY'
import json, sys

def runs(ext):
    out = []
    for start, length, data in ext:
        if out and out[-1][2] == data and out[-1][0] + out[-1][1] == start:
            out[-1][1] += length
        else:
            out.append([start, length, data])
    return out

q = runs((e["start"], e["length"], e["data"])
         for e in json.load(open(sys.argv[1])))
m = runs((int(a), int(b), c == "data")
         for a, b, c in (l.split() for l in open(sys.argv[2])))
for a, b in zip(q + [None] * len(m), m + [None] * len(q)):
    if a != b:
        print("qemu-img map %s, img-dump %s" % (a, b))
        sys.exit(1)
PY
}

# roundtrip NAME FILE QEMUFMT WANTFMT: img-dump vs qemu-img.
roundtrip() {
	_name=$1 _f=$2 _qf=$3 _want=$4
	_sum=$(sha "$_f")
	_vs=$(qemu-img info --output=json -f "$_qf" "$_f" |
	    sed -n 's/.*"virtual-size": *\([0-9]*\).*/\1/p')
	qemu-img convert -f "$_qf" -O raw "$_f" "$T/ref.raw"
	if ! "$DUMP" "$_f" "$T/out.raw" "$T/map.txt" >"$T/dump.out" \
	    2>"$T/dump.err"; then
		not_ok "$_name: img-dump failed: $(cat "$T/dump.err")"
		return
	fi
	if [ "$(cat "$T/dump.out")" = "format=$_want virtual_size=$_vs" ]
	then ok "$_name: format $_want, virtual size $_vs"
	else not_ok "$_name: got '$(cat "$T/dump.out")', want" \
	    "format=$_want virtual_size=$_vs"; fi
	check "$_name: same bytes as qemu-img convert" \
	    cmp "$T/out.raw" "$T/ref.raw"
	check "$_name: qemu-img compare agrees" \
	    qemu-img compare -q -f "$_qf" -F raw "$_f" "$T/out.raw"
	[ "$_qf" = qcow2 ] && check "$_name: data and holes as qemu-img map" \
	    mapdiff "$_qf" "$_f" "$T/map.txt"
	if [ "$(sha "$_f")" = "$_sum" ]; then ok "$_name: input unchanged"
	else not_ok "$_name: input changed"; fi
}

# A 6 MiB + 3.5 KiB disk: MBR signature, random runs crossing VHD block
# and qcow2 cluster edges, holes between them, an explicit zero run.
RAW=$T/disk.raw
truncate -s 6295040 "$RAW"
rnd() {	# seek count (512-byte sectors)
	dd if=/dev/urandom of="$RAW" bs=512 seek="$1" count="$2" \
	    conv=notrunc 2>/dev/null
}
rnd 0 128
printf '\125\252' | dd of="$RAW" bs=1 seek=510 conv=notrunc 2>/dev/null
rnd 2051 600
rnd 4090 9
dd if=/dev/zero of="$RAW" bs=512 seek=5000 count=64 conv=notrunc 2>/dev/null
rnd 8190 4
rnd 12290 5

roundtrip "raw" "$RAW" raw raw

conv() {	# name qemu-img-convert-args...
	_o=$T/$1; shift
	qemu-img convert -f raw "$@" "$RAW" "$_o"
}
conv fixed.vhd -O vpc -o subformat=fixed
roundtrip "vpc fixed" "$T/fixed.vhd" vpc vhd-fixed
conv dyn.vhd -O vpc
roundtrip "vpc dynamic" "$T/dyn.vhd" vpc vhd-dynamic
conv force.vhd -O vpc -o force_size
roundtrip "vpc dynamic force_size" "$T/force.vhd" vpc vhd-dynamic
conv fixedforce.vhd -O vpc -o subformat=fixed,force_size
roundtrip "vpc fixed force_size" "$T/fixedforce.vhd" vpc vhd-fixed
conv v3.qcow2 -O qcow2
roundtrip "qcow2 v3" "$T/v3.qcow2" qcow2 qcow2-v3
conv v2.qcow2 -O qcow2 -o compat=0.10
roundtrip "qcow2 v2 (compat=0.10)" "$T/v2.qcow2" qcow2 qcow2-v2
conv comp.qcow2 -O qcow2 -c
roundtrip "qcow2 compressed" "$T/comp.qcow2" qcow2 qcow2-v3
conv comp2.qcow2 -O qcow2 -c -o compat=0.10,cluster_size=4096
roundtrip "qcow2 v2 compressed 4K" "$T/comp2.qcow2" qcow2 qcow2-v2
conv c4k.qcow2 -O qcow2 -o cluster_size=4096
roundtrip "qcow2 4K clusters" "$T/c4k.qcow2" qcow2 qcow2-v3
conv c2m.qcow2 -O qcow2 -o cluster_size=2M
roundtrip "qcow2 2M clusters" "$T/c2m.qcow2" qcow2 qcow2-v3
conv c512.qcow2 -O qcow2 -o cluster_size=512
roundtrip "qcow2 512-byte clusters" "$T/c512.qcow2" qcow2 qcow2-v3

# qio ARGS...: qemu-io, whose every command must succeed (it exits
# non-zero and prints "... failed: ..." when one does not).
qio() {
	qemu-io "$@" >"$T/qio.out" 2>&1
	_rc=$?
	if [ "$_rc" -ne 0 ] || grep -aq "failed" "$T/qio.out"; then
		not_ok "qemu-io $* (exit $_rc)"
		sed 's/^/#   /' "$T/qio.out" | head -5
	fi
}

# Zero clusters (v3 flag) written after conversion.
cp "$T/v3.qcow2" "$T/zero.qcow2"
qio -f qcow2 -c 'write -z 0 64k' -c 'write -z 3M 1M' "$T/zero.qcow2"
roundtrip "qcow2 zero clusters" "$T/zero.qcow2" qcow2 qcow2-v3

# zstd compression (compression_type=1, v3 only): every cluster size
# qemu allows, the frame of a 2 MiB cluster at libzstd's window limit.
conv zstd.qcow2 -O qcow2 -c -o compression_type=zstd
roundtrip "qcow2 zstd compressed" "$T/zstd.qcow2" qcow2 qcow2-v3
conv zstd512.qcow2 -O qcow2 -c -o compression_type=zstd,cluster_size=512
roundtrip "qcow2 zstd compressed 512-byte clusters" "$T/zstd512.qcow2" \
    qcow2 qcow2-v3
conv zstd2m.qcow2 -O qcow2 -c -o compression_type=zstd,cluster_size=2M
roundtrip "qcow2 zstd compressed 2M clusters" "$T/zstd2m.qcow2" qcow2 \
    qcow2-v3
conv zstdplain.qcow2 -O qcow2 -o compat=1.1,compression_type=zstd
roundtrip "qcow2 v3 zstd type, nothing compressed" "$T/zstdplain.qcow2" \
    qcow2 qcow2-v3
# zstd clusters next to plain, zero and unallocated ones.
cp "$T/zstdplain.qcow2" "$T/zstdmix.qcow2"
qio -f qcow2 -c 'write -c -P 0x5a 512k 64k' -c 'write -c -P 0 1536k 64k' \
    -c 'write -z 3M 64k' -c 'write -c -P 0xa5 4160k 64k' \
    "$T/zstdmix.qcow2"
roundtrip "qcow2 zstd clusters among plain and zero ones" \
    "$T/zstdmix.qcow2" qcow2 qcow2-v3

# qemu decodes a zstd cluster as a stream until the cluster is full, so
# it may hold several frames, skippable ones too, with any window libzstd
# allows (qemu writes one frame, its size known). Such clusters put over
# the compressed ones of a text disk (compressible, not by much).
qcow2put() {	# FILE N BLOB: BLOB over the data of compressed cluster N
	python3 - "$@" <<'PY'
import struct, sys
path, n, blob = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
with open(path, "r+b") as f:
    h = f.read(112)
    cb = struct.unpack(">I", h[20:24])[0]
    f.seek(struct.unpack(">Q", h[40:48])[0])
    f.seek(struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00)
    l2 = struct.unpack(">%dQ" % (1 << cb >> 3), f.read(1 << cb))
    comp = [e for e in l2 if e >> 62 & 1]
    shift = 62 - (cb - 8)
    hosts = [e & ((1 << shift) - 1) for e in comp]
    host = hosts[n]
    room = ((comp[n] >> shift & ((1 << (cb - 8)) - 1)) + 1) * 512 - \
        host % 512
    # The next compressed cluster may start in this one's last sector.
    room = min([room] + [h - host for h in hosts if h > host])
    if len(blob) > room:
        sys.exit("qcow2put: %d bytes, room for %d" % (len(blob), room))
    f.seek(host)
    f.write(blob)
PY
}
head -c 393216 /dev/urandom | base64 -w 0 >"$T/text.raw"
truncate -s 512k "$T/text.raw"
qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd \
    "$T/text.raw" "$T/frames.qcow2"
{ printf 'P*M\030\010\0\0\0skipped!'
  head -c 32768 /dev/zero | tr '\0' a | zstd -q -c
  head -c 32768 /dev/zero | tr '\0' b | zstd -q -c; } >"$T/blob"
qcow2put "$T/frames.qcow2" 0 "$T/blob"
{ printf x | zstd -q -c
  { head -c 32768 "$T/text.raw"; head -c 32767 /dev/zero; } | zstd -q -c
} >"$T/blob"
qcow2put "$T/frames.qcow2" 1 "$T/blob"
head -c 65536 /dev/zero | tr '\0' z | zstd -q --ultra -22 -c >"$T/blob"
qcow2put "$T/frames.qcow2" 2 "$T/blob"
roundtrip "qcow2 zstd clusters of several frames, skippable, 128M window" \
    "$T/frames.qcow2" qcow2 qcow2-v3

# Extended L2 entries (32 subclusters a cluster): 16 KiB (qemu's smallest
# with subclusters: 512-byte ones), 64 KiB and 2 MiB clusters, compressed
# clusters (zlib and zstd) among them.
conv extl2.qcow2 -O qcow2 -o extended_l2=on
roundtrip "qcow2 extended L2" "$T/extl2.qcow2" qcow2 qcow2-v3
conv extl2-16k.qcow2 -O qcow2 -o extended_l2=on,cluster_size=16k
roundtrip "qcow2 extended L2 16K clusters" "$T/extl2-16k.qcow2" qcow2 \
    qcow2-v3
conv extl2-2m.qcow2 -O qcow2 -o extended_l2=on,cluster_size=2M
roundtrip "qcow2 extended L2 2M clusters" "$T/extl2-2m.qcow2" qcow2 \
    qcow2-v3
conv extl2-c.qcow2 -O qcow2 -c -o extended_l2=on,cluster_size=16k
roundtrip "qcow2 extended L2 compressed" "$T/extl2-c.qcow2" qcow2 qcow2-v3
conv extl2-zstd.qcow2 -O qcow2 -c -o extended_l2=on,compression_type=zstd
roundtrip "qcow2 extended L2 zstd compressed" "$T/extl2-zstd.qcow2" \
    qcow2 qcow2-v3

# Subclusters of every kind, written by qemu-io into the converted disk:
# zeroed (write -z, with -u unmapped) in the middle of data, whole
# clusters discarded and zeroed, discards of subcluster ranges (qemu
# keeps those clusters), partial writes into unallocated clusters (the
# rest of the cluster stays unallocated), a compressed cluster.
cp "$T/extl2.qcow2" "$T/sub.qcow2"
qio -f qcow2 -c 'write -z 2k 6k' -c 'write -z -u 10k 2k' \
    -c 'discard 128k 64k' -c 'write -P 0x5a 131k 3k' \
    -c 'discard 1034k 4k' -c 'write -z 1048k 2k' \
    -c 'write -P 0x77 4000k 1k' -c 'write -P 0x78 4006k 5k' \
    -c 'write -c -P 0x66 5M 64k' -c 'write -z 5248k 64k' \
    -c 'write -z -u 3M 1M' -c 'write -P 0x79 3080k 2k' \
    "$T/sub.qcow2"
roundtrip "qcow2 extended L2 zero/unallocated subclusters" \
    "$T/sub.qcow2" qcow2 qcow2-v3
# 512-byte subclusters on an empty 16K-cluster disk.
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=16k \
    "$T/sub16k.qcow2" 1M
qio -f qcow2 -c 'write -P 0x11 0 512' -c 'write -P 0x12 1536 1k' \
    -c 'write -P 0x13 16k 16k' -c 'write -z 17k 512' \
    -c 'write -z -u 20k 3k' -c 'write -z 64k 1k' -c 'write -P 0x14 70k 7k' \
    -c 'write -c -P 0x15 96k 16k' -c 'write -P 0x16 1023k 1k' \
    "$T/sub16k.qcow2"
roundtrip "qcow2 extended L2 512-byte subclusters" "$T/sub16k.qcow2" \
    qcow2 qcow2-v3

# Dynamic VHD written out of order by qemu (BAT entries not ascending).
qemu-img create -q -f vpc "$T/ooo.vhd" 6M
qio -f vpc -c 'write -P 0x5a 5M 300k' -c 'write -P 0xa5 1000k 2M' \
    -c 'write -P 0x33 0 512' "$T/ooo.vhd"
roundtrip "vpc dynamic, blocks out of order" "$T/ooo.vhd" vpc vhd-dynamic

# Virtual size: CHS vs current_size by creator (qemu 7.2 rules).
for creator in 'vpc ' 'win ' 'qemu' 'qem2' 'd2v ' 'CTXS' 'vbox'; do
	f=$T/creator.vhd
	qemu-img create -q -f vpc "$f" 20M
	hex=$(printf '%s' "$creator" | od -An -tx1 | tr -d ' \n')
	vhdpatch footer "$f" 28 "$hex"
	vhdpatch footer "$f" 48 "0000000001400000"	# 20 MiB exactly
	roundtrip "creator '$creator', CHS != current_size" "$f" vpc \
	    vhd-dynamic
done
f=$T/creator.vhd
qemu-img create -q -f vpc "$f" 20M
vhdpatch footer "$f" 28 "74617000"	# "tap\0"
vhdpatch footer "$f" 48 "0000000001400000"
roundtrip "creator 'tap\\0'" "$f" vpc vhd-dynamic

# Block bitmaps: a sector whose bit is clear reads as zeros.
cp "$T/dyn.vhd" "$T/bitmap.vhd"
blk=$(vhdpatch bitmap-clear "$T/bitmap.vhd")
qemu-img convert -f vpc -O raw "$T/dyn.vhd" "$T/bitmap.want"
dd if=/dev/zero of="$T/bitmap.want" bs=512 seek=$((blk * 4096)) count=1 \
    conv=notrunc 2>/dev/null
if "$DUMP" "$T/bitmap.vhd" "$T/bitmap.raw" >/dev/null &&
    cmp -s "$T/bitmap.raw" "$T/bitmap.want"; then
	ok "vpc dynamic: a clear bitmap bit reads as zeros"
else
	not_ok "vpc dynamic: a clear bitmap bit reads as zeros"
fi

done_testing
