#!/bin/sh
# Content operations (issue 10, part 2) at their limits: 10,000 files in
# one directory (--copy-in and --tar-in), names added to an htree-indexed
# directory (e2fsck -fD), a 3 GiB sparse file (--copy-in, --upload,
# --tar-in of a GNU sparse member), overwrites that must free the old
# blocks, archive members with mtime 0, and every refusal: a path with
# "..", members that are absolute or lead out through ".." or a symlink,
# a symlink in the image leading out, a full filesystem. A refusal exits
# non-zero with one line on stderr naming the path, writes no output and
# leaves the input as it was. Oracles: debugfs, e2fsck -fn, dumpe2fs.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"
. "$TOP/tests/fixtures/contentlib.sh"

T=$PEP_TMP
for tool in debugfs e2fsck mkfs.ext4 dumpe2fs tar; do
	command -v $tool >/dev/null 2>&1 || {
		skip "$tool missing"; done_testing; exit 0; }
done

mk_base "$T/base"
img ext4 "$T/e4.img" 128M "$T/base" -b 4096 ||
    bail "mkfs.ext4 of the base image failed"

# names IMG DIR: the names in a directory, sorted, one a line.
names() {
	dfs "$1" "ls -p $2" | awk -F/ 'NF > 5 && $2 != 0 && $6 != "." &&
	    $6 != ".." { print $6 }' | LC_ALL=C sort
}

# ------------------------------------------------ 10,000 files, one directory

mkdir -p "$T/many/m"
(cd "$T/many/m" && seq 1 10000 | awk '{ printf "f%0*d\n", 1 + $1 % 60, $1 }' |
    xargs touch)
ls "$T/many/m" | LC_ALL=C sort >"$T/many.names"
(cd "$T/many" && tar -cf "$T/many.tar" m)
for how in copy-in tar-in; do
	src=$T/many/m
	[ $how = tar-in ] && src=$T/many.tar
	t0=$(date +%s.%N)
	cbake "10,000 files, --$how" "$T/e4.img" -o "$T/out.raw" \
	    --no-pexi --"$how" "$src:/"
	diag "--$how of 10,000 files: $(echo "$(date +%s.%N) - $t0" | bc) s"
	fsck_ok "10,000 files, --$how" "$T/out.raw"
	names "$T/out.raw" /m >"$T/got.names"
	check "10,000 files, --$how: every name there" cmp "$T/got.names" \
	    "$T/many.names"
	rm -f "$T/out.raw"
done

# ---------------------------------------- names added to an htree directory

# mkfs.ext4 -d makes /big a plain directory of 3,000 names; e2fsck -fD
# indexes it. pep-bake adds 2,000 more (--copy-in merging into it), a
# file and a directory; the index must stay valid (e2fsck checks it).
mkdir -p "$T/h/big" "$T/add/big"
cp -a "$T/base/." "$T/h/"
(cd "$T/h/big" && seq 1 3000 | sed 's/^/existing-entry-/' | xargs touch)
(cd "$T/add/big" && seq 1 2000 | sed 's/^/added-entry-/' | xargs touch)
img ext4 "$T/h.img" 64M "$T/h" -b 1024
e2fsck -fyD "$T/h.img" >/dev/null 2>&1
check "htree: e2fsck -fD indexed /big" sh -c "debugfs -R 'htree /big' \
    '$T/h.img' 2>/dev/null | grep -q 'Root node dump'"
cbake "htree: 2,000 names added" "$T/h.img" -o "$T/out.raw" --no-pexi \
    --copy-in "$T/add/big:/" --write /big/written:x --mkdir /big/made
fsck_ok "htree: 2,000 names added" "$T/out.raw"
check "htree: /big is still indexed" sh -c "debugfs -R 'htree /big' \
    '$T/out.raw' 2>/dev/null | grep -q 'Root node dump'"
is "htree: all 5,002 names there" "$(names "$T/out.raw" /big | wc -l |
    tr -d ' ')" 5002
is "htree: a name found through the index" \
    "$(fcat "$T/out.raw" /big/written)" x
rm -f "$T/out.raw"

# ----------------------------------------------------- a 3 GiB sparse file

# 3 GiB with one byte of data at 1 GB and one at the end: two 4 KiB
# blocks (16 sectors of Blockcount) wherever it goes. (debugfs rdump
# would write the holes out: the blocks' bytes are read with
# block_dump -f instead.)
mkdir -p "$T/sp"
truncate -s 3G "$T/sp/huge"
printf A | dd of="$T/sp/huge" bs=1 seek=1000000000 conv=notrunc 2>/dev/null
printf Z | dd of="$T/sp/huge" bs=1 seek=$((3 * 1073741824 - 1)) \
    conv=notrunc 2>/dev/null
(cd "$T/sp" && tar -S -cf "$T/huge.tar" huge)
diag "GNU tar of the 3 GiB file: $(wc -c <"$T/huge.tar") bytes"
cbake "3 GiB sparse" "$T/e4.img" -o "$T/out.raw" --no-pexi --size 1G \
    --copy-in "$T/sp/huge:/" --upload "$T/sp/huge:/up" \
    --mkdir /t --tar-in "$T/huge.tar:/t"
fsck_ok "3 GiB sparse" "$T/out.raw"
for p in /huge /up /t/huge; do
	s=$(dfs "$T/out.raw" "stat $p")
	is "3 GiB sparse, $p: size" "$(echo "$s" |
	    sed -n 's/^User:.*Size: \([0-9]*\).*/\1/p')" 3221225472
	is "3 GiB sparse, $p: two blocks allocated" "$(echo "$s" |
	    sed -n 's/.*Blockcount: \([0-9]*\).*/\1/p')" 16
	# block_dump prints octal offsets: 1e9 % 4096 = 2560 = 05000
	is "3 GiB sparse, $p: the byte at 1 GB" "$(dfs "$T/out.raw" \
	    "bd -f $p 244140" | grep -c '^5000  4100 0000 .*  A\.')" 1
	is "3 GiB sparse, $p: the last byte" "$(dfs "$T/out.raw" \
	    "bd -f $p 786431" | grep -c '^7760  0000 .* 005a  \.*Z$')" 1
done
rm -f "$T/out.raw"

# ------------------------------------------------ overwrites free old blocks

# /var/big is 8 MiB (2,048 blocks). Replacing it must leave exactly the
# free blocks that deleting it leaves, minus what the new data takes:
# no block leaked (and e2fsck's counts agree).
rand_to "$T/five" five 5242880
for f in ext4-4k:ext4:-b,4096 ext3-1k:ext3:-b,1024; do
	n=$(flavour_name "$f")
	# shellcheck disable=SC2046
	img "$(flavour_type "$f")" "$T/o.img" 64M "$T/base" $(flavour_args "$f")
	bs=$(dumpe2fs -h "$T/o.img" 2>/dev/null |
	    sed -n 's/^Block size: *//p')
	cbake "$n: --delete" "$T/o.img" -o "$T/out.raw" --no-pexi \
	    --delete /var/big
	del=$(free_blocks "$T/out.raw")
	rm -f "$T/out.raw"
	cbake "$n: --write over 8 MiB" "$T/o.img" -o "$T/out.raw" \
	    --no-pexi --write /var/big:small
	fsck_ok "$n: --write over 8 MiB" "$T/out.raw"
	is "$n: --write over 8 MiB: its blocks back" \
	    "$(free_blocks "$T/out.raw")" $((del - 1))
	rm -f "$T/out.raw"
	cbake "$n: --upload over 8 MiB" "$T/o.img" -o "$T/out.raw" \
	    --no-pexi --upload "$T/five:/var/big" --upload "$T/five:/var/big"
	fsck_ok "$n: --upload over 8 MiB" "$T/out.raw"
	# ext3: one indirect block per 256 (1 KiB blocks), a double
	# indirect one past the first 268
	want=$((5242880 / bs))
	[ "$n" = ext3-1k ] && want=$((want + 1 + (want - 12 + 255) / 256))
	is "$n: --upload over 8 MiB: its blocks back" \
	    "$(free_blocks "$T/out.raw")" $((del - want))
	fcat "$T/out.raw" /var/big >"$T/got"
	check "$n: --upload over 8 MiB: the new bytes" cmp "$T/got" "$T/five"
	rm -f "$T/out.raw"
done

# ------------------------------------------- a file in the last block

# libext2fs 1.47.0 will not free a filesystem's last block (an
# off-by-one fixed in 1.47.3): a file ending there must still be deleted
# or replaced. The image is full, and already what the built-in steps
# would make it (console=hvc0, the NoCloud file), so they write nothing.
mkdir -p "$T/last/boot" "$T/last/etc/cloud/cloud.cfg.d"
printf 'LABEL linux\n  APPEND root=/dev/vda console=hvc0\n' \
    >"$T/last/boot/extlinux.conf"
printf 'datasource_list: [ NoCloud, None ]\n' \
    >"$T/last/etc/cloud/cloud.cfg.d/99_nocloud.cfg"
img ext4 "$T/last.img" 16M "$T/last" -b 4096
rand_to "$T/last/fill" fill $(($(free_blocks "$T/last.img") * 4096))
img ext4 "$T/last.img" 16M "$T/last" -b 4096
is "last block: /fill ends in the filesystem's last block" \
    "$(dfs "$T/last.img" "ex /fill" | awk 'NR > 1 { e = $(NF - 1) }
    END { print e }')" 4095
for op in "--delete /fill" "--write /fill:x" "--upload five:/fill"; do
	# shellcheck disable=SC2086
	cbake "last block: $op" "$T/last.img" -o "$T/out.raw" --no-pexi \
	    --size 16M $(echo "$op" | sed "s,five:,$T/five:,")
	fsck_ok "last block: $op" "$T/out.raw"
	rm -f "$T/out.raw"
done

# -------------------------------------------------- archive odds and ends

# Members with mtime 0 (python's tarfile default), a device, a FIFO, a
# symlink, a pax long name: mtime 0 stays 0.
python3 - "$T/odd.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for name, kind in (("odd", tarfile.DIRTYPE),
                       ("odd/fifo", tarfile.FIFOTYPE),
                       ("odd/null", tarfile.CHRTYPE),
                       ("odd/" + "p" * 200, tarfile.REGTYPE)):
        ti = tarfile.TarInfo(name); ti.type = kind; ti.mtime = 0
        if kind == tarfile.CHRTYPE: ti.devmajor, ti.devminor = 1, 3
        if kind == tarfile.DIRTYPE: ti.mode = 0o755
        data = b"long name\n" if kind == tarfile.REGTYPE else b""
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
EOF
cbake "odd tar" "$T/e4.img" -o "$T/out.raw" --no-pexi --tar-in "$T/odd.tar:/"
fsck_ok "odd tar" "$T/out.raw"
for p in /odd /odd/fifo /odd/null; do
	is "odd tar: $p keeps mtime 0" "$(st "$T/out.raw" $p | cut -d' ' -f7 |
	    cut -d: -f1)" 0x00000000
done
is "odd tar: a 200-byte name (pax)" \
    "$(fcat "$T/out.raw" "/odd/$(printf 'p%.0s' $(seq 200))")" "long name"
rm -f "$T/out.raw"

# pax xattrs: a POSIX ACL, trusted.* and security.* are set; system.data
# (ext4's own: an inline file's bytes) and names with no ext4 prefix are
# refused below.
python3 - "$T/acl.tar" "$T/sysdata.tar" "$T/bogus.tar" <<'EOF'
import io, sys, tarfile
acl = bytes.fromhex("02000000" "01000600ffffffff" "04000400ffffffff"
                    "20000400ffffffff").decode("utf-8", "surrogateescape")
for out, hdr in ((sys.argv[1], {"SCHILY.xattr.system.posix_acl_access": acl,
                                "SCHILY.xattr.trusted.t": "tv",
                                "SCHILY.xattr.security.selinux": "sv"}),
                 (sys.argv[2], {"SCHILY.xattr.system.data": "XXXXXXXX"}),
                 (sys.argv[3], {"SCHILY.xattr.bogus.name": "v"})):
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("f"); ti.size = 5; ti.pax_headers = hdr
        t.addfile(ti, io.BytesIO(b"hello"))
EOF
cbake "pax xattrs" "$T/e4.img" -o "$T/out.raw" --no-pexi \
    --tar-in "$T/acl.tar:/srv"
fsck_ok "pax xattrs" "$T/out.raw"
is "pax xattrs: trusted.*, security.*" "$(xattr "$T/out.raw" /srv/f \
    trusted.t) $(xattr "$T/out.raw" /srv/f security.selinux)" "7476 7376"
# ext4 keeps an ACL in its own form: version 1, 4-byte entries
like "pax xattrs: a POSIX ACL" "$(dfs "$T/out.raw" "ea_list /srv/f")" \
    'system.posix_acl_access \(16\) = 01 00 00 00 01 00 06 00'
rm -f "$T/out.raw"

# --------------------------------------------------------------- refusals

# mktar OUT NAME:KIND:ARG...: KIND f (a file holding ARG), l (a symlink
# to ARG), h (a hard link to ARG) or d (a directory).
mktar() {
	python3 - "$@" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    for spec in sys.argv[2:]:
        name, kind, arg = spec.split(":", 2)
        ti = tarfile.TarInfo(name)
        if kind == "f":
            ti.size = len(arg); t.addfile(ti, io.BytesIO(arg.encode()))
            continue
        ti.type = {"l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE,
                   "d": tarfile.DIRTYPE}[kind]
        ti.linkname = arg
        t.addfile(ti)
EOF
}
mktar "$T/dotdot.tar" ok:f:fine ../../etc/x:f:bad
mktar "$T/abs.tar" /etc/x:f:bad
mktar "$T/symdir.tar" a:l:../.. a/etc/x:f:bad
mktar "$T/symabs.tar" a:l:/etc a/x:f:bad
mktar "$T/hlout.tar" h:h:../../etc/hostname
mktar "$T/hlabs.tar" h:h:/etc/hostname

refused "a '..' above the root" "$T/e4.img" '/\.\./etc/x: ".." climbs above' \
    --no-pexi --write /../etc/x:bad
refused "a '..' that climbs out" "$T/e4.img" '/etc/\.\./\.\./x' \
    --no-pexi --write /etc/../../x:bad
refused "a symlink in the image leading out" "$T/e4.img" \
    '/etc/evil/x: ".." climbs above the image' \
    --no-pexi --write /etc/evil/x:bad
refused "--copy-in into a symlink leading out" "$T/e4.img" '/etc/evil' \
    --no-pexi --copy-in "$T/sp:/etc/evil"
refused "a member ../../etc/x" "$T/e4.img" \
    '\.\./\.\./etc/x: ".." climbs out of /srv' --no-pexi \
    --tar-in "$T/dotdot.tar:/srv"
refused "an absolute member" "$T/e4.img" 'member /etc/x: has an absolute name' \
    --no-pexi --tar-in "$T/abs.tar:/srv"
refused "a symlink member then used as a directory (..)" "$T/e4.img" \
    'a/etc/x: ".." climbs out of /srv' --no-pexi --tar-in "$T/symdir.tar:/srv"
refused "a symlink member then used as a directory (absolute)" \
    "$T/e4.img" 'a/x: leads out of /srv' --no-pexi \
    --tar-in "$T/symabs.tar:/srv"
refused "a hard link member to ../../etc/hostname" "$T/e4.img" \
    '\.\./\.\./etc/hostname: ".." climbs out' --no-pexi \
    --tar-in "$T/hlout.tar:/srv"
refused "a hard link member to an absolute name" "$T/e4.img" \
    'member /etc/hostname: has an absolute name' --no-pexi \
    --tar-in "$T/hlabs.tar:/srv"
refused "a member with system.data, an inline file's bytes" "$T/e4.img" \
    "/srv/f: extended attribute 'system.data': not one a file can carry" \
    --no-pexi --tar-in "$T/sysdata.tar:/srv"
refused "a member with an xattr ext4 has no prefix for" "$T/e4.img" \
    "/srv/f: extended attribute 'bogus.name'" --no-pexi \
    --tar-in "$T/bogus.tar:/srv"
refused "a later operation fails: nothing of the earlier ones is written" \
    "$T/e4.img" '/\.\./x' --no-pexi --write /etc/first:ok --write /../x:bad

# A full filesystem: ENOSPC names the file.
img ext4 "$T/small.img" 16M "$T/base" -b 4096
rand_to "$T/big20" big20 20971520
refused "--upload of 20 MiB into 16 MiB" "$T/small.img" \
    '/etc/big: .*the filesystem is full' --no-pexi --size 16M \
    --upload "$T/big20:/etc/big"
mkdir -p "$T/full/d"
cp "$T/big20" "$T/full/d/f"
refused "--copy-in of 20 MiB into 16 MiB" "$T/small.img" \
    '/opt/full/d/f: .*the filesystem is full' --no-pexi --size 16M \
    --copy-in "$T/full:/opt"
(cd "$T/full" && tar -cf "$T/full.tar" d)
refused "--tar-in of 20 MiB into 16 MiB" "$T/small.img" \
    '/srv/d/f: .*the filesystem is full' --no-pexi --size 16M \
    --tar-in "$T/full.tar:/srv"

done_testing
