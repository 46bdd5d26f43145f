#!/bin/sh
# Content operations (issue 10, part 1): every operation, in the order
# given, on ext4 (4 KiB and 1 KiB blocks), ext4 with inline_data, ext3
# and ext2; a host tree put in by --copy-in against the same tree put
# into a fresh filesystem by mkfs.ext4 -d; the same tree as a GNU tar
# (xattrs, sparse), a tar.zst and a cpio through --tar-in; and a real
# Alpine disk with the minirootfs extracted into it. Oracles: debugfs
# (stat, cat, ls, ea_get, and tests/fixtures/fstree.py, which lists
# every node's type, mode, owner, size, mtime, links, rdev, symlink
# target, xattrs and bytes), e2fsck -fn, mkfs.ext4 -d.
# Every bake here must succeed with nothing at all on stderr.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"
. "$TOP/tests/fixtures/contentlib.sh"

T=$PEP_TMP
for tool in debugfs e2fsck mkfs.ext4 mkfs.ext3 mkfs.ext2 tar cpio zstd; do
	command -v $tool >/dev/null 2>&1 || {
		skip "$tool missing"; done_testing; exit 0; }
done
[ "$IS_ROOT" -eq 1 ] || diag "not root: no devices, owners or" \
    "security.capability in the host tree"

mk_base "$T/base"
mkdir -p "$T/host" "$T/files"
mk_rich "$T/host/rich"
rand_to "$T/files/up.bin" up $((3 * 4096 + 100))
chmod 0751 "$T/files/up.bin"
touch -d "@$((EPOCH - 2000)).123456789" "$T/files/up.bin"
printf 'uploaded motd\n' >"$T/files/motd.new"
(cd "$T/host" && tar --xattrs --xattrs-include='*' -S --numeric-owner \
    -cf "$T/rich.tar" rich 2>/dev/null)
zstd -q -19 -o "$T/rich.tar.zst" "$T/rich.tar"
(cd "$T/host" && find rich | LC_ALL=C sort | cpio -o -H newc --quiet \
    >"$T/rich.cpio")

# ------------------------------------------------- every operation, in order

OPS_OUT=$T/ops.raw

# ops NAME IMG: the operations, in an order where each depends on the
# last.
ops() {
	rm -f "$OPS_OUT"
	cbake "$1: every operation" "$2" -o "$OPS_OUT" --no-pexi \
	    --mkdir /opt/a/b \
	    --write '/opt/a/b/w.txt:hello: world' \
	    --chmod 0600:/opt/a/b/w.txt \
	    --chown 1000:1001:/opt/a/b/w.txt \
	    --write /etc/hostname:newhost \
	    --append-line /etc/hostname:second \
	    --append-line /opt/new.conf:first \
	    --upload "$T/files/up.bin:/opt/up.bin" \
	    --upload "$T/files/motd.new:/etc/motd" \
	    --link /opt/a/b/w.txt:/opt/lnk \
	    --link ../a/b/w.txt:/opt/x/rel \
	    --touch /opt/touched \
	    --touch /etc/motd \
	    --delete /var/big \
	    --delete /opt/never-was \
	    --write /etc/abs/via-abs:through \
	    --copy-in "$T/host/rich:/opt" \
	    --delete /opt/rich/deep \
	    --mkdir /srv/t \
	    --tar-in "$T/rich.tar:/srv/t" \
	    --write /opt/order:one \
	    --write /opt/order:two \
	    --write /opt/gone:x \
	    --delete /opt/gone
}

check_ops() {	# name
	n=$1 o=$OPS_OUT
	fsck_ok "$n" "$o"
	is "$n: --mkdir makes parents, root 0755" \
	    "$(st "$o" /opt/a | cut -d' ' -f1-4) $(st "$o" /opt/a/b |
	    cut -d' ' -f1-4)" "directory 0755 0 0 directory 0755 0 0"
	is "$n: --write (a ':' in the content)" "$(fcat "$o" /opt/a/b/w.txt)" \
	    "hello: world"
	is "$n: --chmod, --chown after it" \
	    "$(st "$o" /opt/a/b/w.txt | cut -d' ' -f1-4)" \
	    "regular 0600 1000 1001"
	is "$n: --write then --append-line on an existing file" \
	    "$(fcat "$o" /etc/hostname | od -An -c | tr -s ' ')" \
	    "$(printf 'newhost\nsecond\n' | od -An -c | tr -s ' ')"
	if [ "$IS_ROOT" -eq 1 ]; then
		is "$n: an existing file keeps mode and owner" \
		    "$(st "$o" /etc/hostname | cut -d' ' -f2-4)" "0640 0 4"
	fi
	is "$n: its mtime is the epoch" \
	    "$(st "$o" /etc/hostname | cut -d' ' -f7 | cut -d: -f1)" 0x6553f100
	is "$n: --append-line makes a missing file" \
	    "$(fcat "$o" /opt/new.conf)|$(st "$o" /opt/new.conf |
	    cut -d' ' -f2-4)" "first|0644 0 0"
	fcat "$o" /opt/up.bin >"$T/got"
	check "$n: --upload: the host file's bytes" cmp "$T/got" \
	    "$T/files/up.bin"
	is "$n: --upload: host mode, root, host mtime (ns too)" \
	    "$(st "$o" /opt/up.bin | cut -d' ' -f2-4,7)" \
	    "0751 0 0 $(printf '0x%x:%08x' $((EPOCH - 2000)) \
	    $((123456789 << 2)))"
	is "$n: --upload over a file, then --touch" \
	    "$(fcat "$o" /etc/motd)|$(st "$o" /etc/motd |
	    cut -d' ' -f2,7 | cut -d: -f1)" "uploaded motd|0644 0x6553f100"
	is "$n: --link absolute" "$(target "$o" /opt/lnk)" /opt/a/b/w.txt
	is "$n: --link relative, parents made" "$(target "$o" /opt/x/rel)" \
	    ../a/b/w.txt
	is "$n: --touch makes an empty file" \
	    "$(st "$o" /opt/touched | cut -d' ' -f1-5)" "regular 0644 0 0 0"
	check_fail "$n: --delete" fs_exists "$o" 0 /var/big
	is "$n: a write through /etc/abs -> /etc (the image's /etc)" \
	    "$(fcat "$o" /etc/via-abs)" through
	check "$n: --copy-in" fs_exists "$o" 0 /opt/rich/sub/data
	check_fail "$n: --delete after --copy-in: the tree is gone" \
	    fs_exists "$o" 0 /opt/rich/deep
	is "$n: --tar-in" "$(fcat "$o" /srv/t/rich/small)" hello
	is "$n: operations run in order (the last write wins)" \
	    "$(fcat "$o" /opt/order)" two
	check_fail "$n: --write then --delete" fs_exists "$o" 0 /opt/gone
}

for f in $FLAVOURS; do
	n=$(flavour_name "$f")
	# shellcheck disable=SC2046
	if ! img "$(flavour_type "$f")" "$T/$n.img" 64M "$T/base" \
	    $(flavour_args "$f"); then
		not_ok "$n: mkfs"; continue
	fi
	ops "$n" "$T/$n.img"
	check_ops "$n"
	rm -f "$OPS_OUT"
done

# ------------------------------------- the oracle: mkfs.ext4 -d, same tree

# The host tree into a fresh filesystem by mkfs -d, and into the image
# by --copy-in: every node the same. Blocks too (holes, extent-tree and
# xattr blocks), but on inline_data, where mkfs.ext4 -d gives the 10 MiB
# sparse file one block more than it needs; there its count may not be
# larger than mkfs's.
for f in $FLAVOURS; do
	n=$(flavour_name "$f") t=$(flavour_type "$f")
	a=$(flavour_args "$f")
	# shellcheck disable=SC2086
	img "$t" "$T/ref.img" 64M "$T/host" $a || {
		not_ok "$n: mkfs -d"; continue; }
	b=-b
	[ "$n" = inline ] && b=
	tree_of "$T/ref.img" /rich "$T/ref.list" $b
	cbake "$n: --copy-in" "$T/$n.img" -o "$T/out.raw" --no-pexi \
	    --copy-in "$T/host/rich:/"
	fsck_ok "$n: --copy-in" "$T/out.raw"
	tree_of "$T/out.raw" /rich "$T/out.list" $b
	if [ "$n" = inline ]; then
		# mkfs.ext4 -d keeps files of up to 60 bytes + the room for
		# xattrs in the inode inline (system.data), pep up to 60
		for l in ref.list out.list; do
			awk '{ n = split($12, x, ","); v = ""
				for (i = 1; i <= n; i++)
					if (x[i] !~ /^system\.data=/)
						v = v (v == "" ? "" : ",") x[i]
				$12 = v == "" ? "-" : v; print }' "$T/$l" \
			    >"$T/$l.x" && mv "$T/$l.x" "$T/$l"
		done
	fi
	same_listing "$n: --copy-in gives what mkfs.ext4 -d gives" \
	    "$T/ref.list" "$T/out.list"
	if [ "$n" = inline ]; then
		r=$(st "$T/ref.img" /rich/sparse | cut -d' ' -f5)
		bl() { dfs "$1" "stat /rich/sparse" |
		    sed -n 's/.*Blockcount: \([0-9]*\).*/\1/p'; }
		check "$n: the sparse file stays sparse" test \
		    "$(bl "$T/out.raw")" -le "$(bl "$T/ref.img")" -a \
		    "$r" = 10485760
	fi
	rm -f "$T/out.raw"
done

# --------------------------------------------------- archives, same oracle

# tar (GNU, --xattrs, -S sparse), tar.zst and cpio (newc: no xattrs) of
# the same tree against the mkfs.ext4 -d listing. Sockets are not
# archived by tar.
img ext4 "$T/ref.img" 64M "$T/host" -b 4096
img ext4 "$T/e4.img" 64M "$T/base" -b 4096
tree_of "$T/ref.img" /rich "$T/ref.list" -b
tree_of "$T/ref.img" /rich "$T/ref.rich"
grep -v ' sock ' "$T/ref.list" >"$T/ref.nosock"
for a in rich.tar rich.tar.zst rich.cpio; do
	cbake "--tar-in $a" "$T/e4.img" -o "$T/out.raw" --no-pexi \
	    --tar-in "$T/$a:/"
	fsck_ok "--tar-in $a" "$T/out.raw"
	case $a in
	*.cpio)
		tree_of "$T/out.raw" /rich "$T/out.list"
		tree_of "$T/ref.img" /rich "$T/ref.cpio"
		# no xattrs in cpio: their column (12) is '-' on both sides
		for l in out.list ref.cpio; do
			awk '{ $12 = "-"; print }' "$T/$l" >"$T/$l.x"
		done
		same_listing "--tar-in $a: as mkfs.ext4 -d but xattrs" \
		    "$T/ref.cpio.x" "$T/out.list.x" ;;
	*)
		tree_of "$T/out.raw" /rich "$T/out.list" -b
		same_listing \
		    "--tar-in $a: what mkfs.ext4 -d gives (no socket)" \
		    "$T/ref.nosock" "$T/out.list" ;;
	esac
	rm -f "$T/out.raw"
done

# ------------------------------------------------ a real Alpine disk image

# The Alpine-like GPT disk (the real minirootfs), baked with every
# built-in step (pexi-boot too), then the minirootfs tarball (gzip)
# extracted into /srv/alpine and the host tree copied into /srv: the
# extracted tree is what mkfs.ext4 -d makes of the unpacked tarball.
fixture "$T/alpine.raw" gpt cloudinit raw
ROOTFS=$(alpine_minirootfs x86_64)
cbake "alpine disk" "$T/alpine.raw" -o "$T/alp.raw" \
    --mkdir /srv/alpine --tar-in "$ROOTFS:/srv/alpine" \
    --copy-in "$T/host/rich:/srv"
[ -f "$T/alp.raw" ] || bail "alpine disk: no output (PEP_GUEST_DIR unset?)"
OFF=$(root_offset "$T/alp.raw" gpt)
check "alpine disk: e2fsck -fn of the root" fs_fsck "$T/alp.raw" "$OFF"
if [ "$IS_ROOT" -eq 1 ]; then
	mkdir -p "$T/mr/alpine"
	tar -xzf "$ROOTFS" -C "$T/mr/alpine" --numeric-owner
	img ext4 "$T/mr.img" 64M "$T/mr" -b 4096
	tree_of "$T/mr.img" /alpine "$T/ref.list"
	tree_of "$T/alp.raw?offset=$OFF" /srv/alpine "$T/out.list"
	same_listing "alpine disk: the minirootfs as mkfs.ext4 -d puts it" \
	    "$T/ref.list" "$T/out.list"
else
	skip "alpine disk: the minirootfs's owners need root to unpack"
fi
tree_of "$T/alp.raw?offset=$OFF" /srv/rich "$T/out.list"
same_listing "alpine disk: --copy-in after the built-in steps" \
    "$T/ref.rich" "$T/out.list"

done_testing
