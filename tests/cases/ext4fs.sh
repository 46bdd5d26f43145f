#!/bin/sh
# bake/ext4fs.c through tests/tools/ext4-edit.c on scratch filesystems made
# with mkfs.ext4/debugfs: replace and create files, mkdir -p, symlinks,
# inline data, full directories; then e2fsck -fn, debugfs checks, and
# byte-identical output across two runs.
. "$(dirname "$0")/../lib.sh"

EDIT=${EXT4_EDIT:-$TOP/$BUILD/ext4-edit}
NOW=1700000000
NOWHEX=0x6553f100
T=$PEP_TMP
UUID=01234567-89ab-cdef-0123-456789abcdef
export E2FSPROGS_FAKE_TIME=1600000000

need_built "$EDIT"
if ! command -v debugfs >/dev/null; then
	skip "debugfs missing"
	done_testing
	exit 0
fi

# Source files.
printf 'old contents\n' >"$T/old"
printf 'new contents\n' >"$T/small"
printf 'tiny\n' >"$T/tiny"
: >"$T/empty"
awk 'BEGIN { for (i = 0; i < 1500; i++)
	printf "line %05d of a big file\n", i }' >"$T/big"
printf 'console=hvc0\n' >"$T/cfg"

dbg() {	# imgspec, request
	debugfs -R "$2" "$1" 2>/dev/null
}

# mkimg NAME OFFSET MKFS-ARGS...: a populated base image $T/NAME.base
mkimg() {
	_nm=$1; _off=$2; shift 2
	_img=$T/$_nm.base
	rm -f "$_img"
	if [ "$_off" -eq 0 ]; then
		mkfs.ext4 -q -F -U $UUID -E hash_seed=$UUID \
			"$@" "$_img" 16M >/dev/null 2>&1 || return 1
	else
		truncate -s $((16 * 1048576 + _off)) "$_img"
		mkfs.ext4 -q -F -U $UUID -E "offset=$_off,hash_seed=$UUID" \
			"$@" "$_img" 16M >/dev/null 2>&1 || return 1
	fi
	_s="$_img?offset=$_off"
	debugfs -w -f - "$_s" >/dev/null 2>&1 <<-EOF
	mkdir /etc
	mkdir /boot
	write $T/old /etc/hello
	sif /etc/hello mode 0100600
	sif /etc/hello uid 1000
	sif /etc/hello gid 1001
	ea_set /etc/hello user.test kept-value
	write $T/old /etc/other
	write $T/big /etc/bigold
	symlink /etc/link /etc/hello
	symlink /etc/dangling /etc/nowhere
	symlink /boot/grub /etc
	EOF
}

edit() {	# image offset commands...
	_i=$1; _o=$2; shift 2
	"$EDIT" -t $NOW "$_i" "$_o" "$@"
}

# The standard edit sequence.
edits() {	# image offset
	edit "$1" "$2" \
		write /etc/hello "$T/small" \
		write /etc/bigold "$T/tiny" \
		write /etc/new.txt "$T/cfg" \
		write /etc/newbig "$T/big" \
		write /etc/empty "$T/empty" \
		write /etc/link "$T/small" \
		mkdir /var/lib/cloud/seed \
		write /var/lib/cloud/seed/meta-data "$T/tiny" \
		write /boot/grub/grub.cfg "$T/cfg"
}

field() {	# imgspec path: "mode uid gid size"
	dbg "$1" "stat $2" | awk '
		/^Inode:/ { for (i = 1; i <= NF; i++)
			if ($i == "Mode:") m = $(i + 1) }
		/^User:/ { u = $2; g = $4; for (i = 1; i <= NF; i++)
			if ($i == "Size:") s = $(i + 1) }
		END { print m, u, g, s }'
}

times_ok() {	# imgspec path [all]: mtime/ctime (and atime/crtime) == NOW
	_st=$(dbg "$1" "stat $2")
	for _f in ctime mtime ${3:+atime}; do
		echo "$_st" | grep -Eq "^ *$_f: $NOWHEX(:00000000)? " ||
			return 1
	done
	if [ -n "${3:-}" ] && echo "$_st" | grep -q '^crtime:'; then
		echo "$_st" | grep -q "^crtime: $NOWHEX:00000000 " || return 1
	fi
	return 0
}

# debugfs 1.47.0 "cat" prints the whole 60-byte inline area of a small
# inline file: compare i_size bytes, and i_size with the file's length.
same() {	# imgspec path file
	_sz=$(field "$1" "$2" | cut -d' ' -f4)
	[ "$_sz" = "$(wc -c <"$3" | tr -d ' ')" ] || return 1
	dbg "$1" "cat $2" | head -c "$_sz" >"$T/.cat" && cmp -s "$T/.cat" "$3"
}

run_fs() {	# name offset mkfs-args...
	n=$1; off=$2; shift 2
	if ! mkimg "$n" "$off" "$@"; then
		not_ok "$n: mkfs"; return
	fi
	s="$T/$n.img?offset=$off"
	cp "$T/$n.base" "$T/$n.img"
	cp "$T/$n.base" "$T/$n.img2"
	before=$(dbg "$T/$n.base?offset=$off" "stat /etc/other")
	check "$n: edits succeed" edits "$T/$n.img" "$off"
	check "$n: e2fsck -fn clean" e2fsck -fn "$s"
	check "$n: replaced bytes" same "$s" /etc/hello "$T/small"
	check "$n: big file shrunk" same "$s" /etc/bigold "$T/tiny"
	check "$n: new small file" same "$s" /etc/new.txt "$T/cfg"
	check "$n: new big file" same "$s" /etc/newbig "$T/big"
	check "$n: new empty file" same "$s" /etc/empty "$T/empty"
	check "$n: file in new dirs" same "$s" /var/lib/cloud/seed/meta-data \
		"$T/tiny"
	check "$n: file via dir symlink" same "$s" /etc/grub.cfg "$T/cfg"
	f=$(field "$s" /etc/hello)
	check "$n: mode/owner kept ($f)" test "$f" = "0600 1000 1001 13"
	check "$n: xattr kept" sh -c "debugfs -R 'ea_get /etc/hello user.test' \
		'$s' 2>/dev/null | grep -q kept-value"
	f=$(field "$s" /etc/new.txt)
	check "$n: new file root:root 0644 ($f)" test "$f" = "0644 0 0 13"
	f=$(field "$s" /var/lib)
	check "$n: new dir root:root 0755" test "${f% *}" = "0755 0 0"
	check "$n: symlink still a symlink" sh -c "debugfs -R 'stat /etc/link' \
		'$s' 2>/dev/null | grep -q 'Type: symlink'"
	check "$n: replaced file times" times_ok "$s" /etc/hello
	check "$n: new file times" times_ok "$s" /etc/new.txt all
	check "$n: new dir times" times_ok "$s" /var/lib/cloud all
	check "$n: parent dir times" times_ok "$s" /etc
	after=$(dbg "$s" "stat /etc/other")
	check "$n: other files untouched" test "$before" = "$after"
	check "$n: read back" sh -c "'$EDIT' '$T/$n.img' $off read /etc/link \
		| cmp -s - '$T/small'"
	check "$n: read back big" sh -c "'$EDIT' '$T/$n.img' $off \
		read /etc/newbig | cmp -s - '$T/big'"
	check "$n: exists" sh -c "'$EDIT' '$T/$n.img' $off exists /etc/new.txt \
		exists /etc/nope | tr '\n' ' ' | grep -qx '1 0 '"
	check "$n: second run" edits "$T/$n.img2" "$off"
	check "$n: two runs identical" cmp -s "$T/$n.img" "$T/$n.img2"
	rm -f "$T/$n.img" "$T/$n.img2" "$T/$n.base"
}

run_fs ext4-4k 0 -t ext4 -b 4096
run_fs ext4-1k 0 -t ext4 -b 1024
run_fs ext4-noext 0 -t ext4 -O ^extent,^flex_bg,^64bit
run_fs ext4-inline 0 -t ext4 -O inline_data
run_fs ext4-offset 1048576 -t ext4
run_fs ext3 0 -t ext3
run_fs ext2-128 0 -t ext2 -I 128
run_fs ext2-1k 0 -t ext2 -b 1024

# Inline data: a small inline file replaced by a big one and back.
mkimg inl 0 -t ext4 -O inline_data
s="$T/inl.base?offset=0"
check "inline: big over inline" edit "$T/inl.base" 0 \
	write /etc/other "$T/big" write /etc/hello "$T/tiny"
check "inline: e2fsck -fn clean" e2fsck -fn "$s"
check "inline: big bytes" same "$s" /etc/other "$T/big"
check "inline: tiny bytes" same "$s" /etc/hello "$T/tiny"
check "inline: big back to small" edit "$T/inl.base" 0 \
	write /etc/other "$T/small"
check "inline: e2fsck -fn clean again" e2fsck -fn "$s"
check "inline: small bytes" same "$s" /etc/other "$T/small"

# A root directory with hundreds of long names: no block has room for one
# more, so creating a file and a directory must grow it. 1 KiB blocks with
# checksum tails hold 4 entries of 248 bytes; the first block, after ".",
# ".." and "lost+found", holds 3: 303 = 3 + 75 * 4 fills every block.
long=$(printf '%0240d' 0 | tr 0 x)
mkimg full 0 -t ext4 -b 1024 -N 2048
i=0
while [ $i -lt 303 ]; do
	echo "write $T/empty /$long$i"
	i=$((i + 1))
done | debugfs -w -f - "$T/full.base" >/dev/null 2>&1
s="$T/full.base?offset=0"
dsize() { field "$s" / | cut -d' ' -f4; }
size0=$(dsize)
cp "$T/full.base" "$T/full.copy"
check "full dir: create + mkdir" edit "$T/full.base" 0 \
	write "/${long}new" "$T/small" mkdir "/${long}dir/sub" \
	write "/${long}dir/sub/f" "$T/tiny"
size1=$(dsize)
check "full dir: root grew ($size0 -> $size1)" test "$size1" -gt "$size0"
check "full dir: e2fsck -fn clean" e2fsck -fn "$s"
check "full dir: new file bytes" same "$s" "/${long}new" "$T/small"
check "full dir: nested file bytes" same "$s" "/${long}dir/sub/f" "$T/tiny"
check "full dir: same edits again" edit "$T/full.copy" 0 \
	write "/${long}new" "$T/small" mkdir "/${long}dir/sub" \
	write "/${long}dir/sub/f" "$T/tiny"
check "full dir: deterministic" cmp -s "$T/full.base" "$T/full.copy"

# The same directory hash-indexed (e2fsck -D): ext2fs_link's htree path.
e2fsck -fyD "$T/full.copy" >/dev/null 2>&1
s="$T/full.copy?offset=0"
check "htree dir: indexed" sh -c "debugfs -R 'htree /' '$T/full.copy' \
	2>/dev/null | grep -q 'Root node dump'"
i=0
set --
while [ $i -lt 40 ]; do
	set -- "$@" write "/${long}h$i" "$T/tiny"
	i=$((i + 1))
done
check "htree dir: 40 new files" edit "$T/full.copy" 0 "$@"
check "htree dir: e2fsck -fn clean" e2fsck -fn "$s"
check "htree dir: bytes" same "$s" "/${long}h39" "$T/tiny"
check "htree dir: read back big file" sh -c "'$EDIT' '$T/full.copy' 0 \
	read '/${long}new' | cmp -s - '$T/small'"

# Refusals and errors.
mkimg err 0 -t ext4
check_fail "dangling symlink write refused" edit "$T/err.base" 0 \
	write /etc/dangling "$T/small"
check_fail "missing parent refused" edit "$T/err.base" 0 \
	write /nodir/x "$T/small"
check_fail "write to a directory refused" edit "$T/err.base" 0 \
	write /etc "$T/small"
check_fail "mkdir over a file refused" edit "$T/err.base" 0 \
	mkdir /etc/hello/x
check_fail "read of a missing file fails" edit "$T/err.base" 0 read /nope
check "exists does not follow" sh -c "'$EDIT' '$T/err.base' 0 \
	exists /etc/dangling | grep -qx 1"
check "e2fsck -fn clean after refusals" e2fsck -fn "$T/err.base"
check_fail "wrong offset: not ext4" edit "$T/err.base" 4096 read /etc/hello
check "message names the problem" sh -c "'$EDIT' '$T/err.base' 4096 \
	read /etc/hello 2>&1 | grep -q 'not an ext2/3/4 filesystem'"
# fails_with TEXT IMAGE OFFSET CMD...: the edit fails, saying TEXT.
fails_with() {
	_t=$1; shift
	! edit "$@" >"$T/.msg" 2>&1 && grep -q "$_t" "$T/.msg"
}
check "relative path refused" fails_with "not an absolute path" \
	"$T/err.base" 0 write etc/x "$T/small"
check "timestamp past 2038 refused" sh -c "'$EDIT' -t 2147483648 \
	'$T/err.base' 0 read /etc/hello 2>&1 | grep -q 'out of range'"
# Epoch 0 is valid (SOURCE_DATE_EPOCH=0): libext2fs reads fs->now == 0 as
# "the wall clock", so every time written must still come out as 0.
cp "$T/err.base" "$T/zero.img"
check "timestamp 0: edits succeed" "$EDIT" -t 0 "$T/zero.img" 0 \
	write /etc/zero "$T/small" write /etc/hello "$T/small" mkdir /z/y
zero_times() {	# path: every time field 0x00000000
	_st=$(dbg "$T/zero.img" "stat $1")
	[ "$(echo "$_st" | grep -Ec '^ *(c|m|a|cr)time: 0x00000000(:00000000)? ')" \
	    -eq 4 ]
}
for _p in /etc/zero /z /z/y; do
	check "timestamp 0: $_p created with every time 0" zero_times "$_p"
done
check "timestamp 0: replaced file's mtime 0" sh -c "debugfs -R \
	'stat /etc/hello' '$T/zero.img' 2>/dev/null | grep -Eq \
	'^ *mtime: 0x00000000(:00000000)? '"
like "timestamp 0: superblock last write time 0" \
	"$(dumpe2fs -h "$T/zero.img" 2>/dev/null | grep '^Last write time')" \
	'Thu Jan  1 00:00:00 1970'
check "timestamp 0: e2fsck -fn clean" e2fsck -fn "$T/zero.img"
debugfs -w -R "ssv state 3" "$T/err.base" >/dev/null 2>&1
check "errors flag refused" fails_with "errors flag set" \
	"$T/err.base" 0 read /etc/hello
debugfs -w -R "ssv state 0" "$T/err.base" >/dev/null 2>&1
check "unclean fs refused for writing" fails_with "not cleanly unmounted" \
	"$T/err.base" 0 mkdir /x
debugfs -w -R "ssv state 1" "$T/err.base" >/dev/null 2>&1
debugfs -w -R "feature needs_recovery" "$T/err.base" >/dev/null 2>&1
check "needs_recovery refused" fails_with "journal needs recovery" \
	"$T/err.base" 0 read /etc/hello

done_testing
