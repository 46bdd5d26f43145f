#!/bin/sh
# pep-bake is reproducible (same input and epoch -> same bytes, whatever
# the output name or the time of day), and its command line behaves.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"

IN=$PEP_TMP/in.raw
O=$PEP_TMP/o

# same A B: byte-identical (cmp is faster than hashing 1 GiB twice).
same() { cmp -s "$1" "$2"; }

reproducible() {
	bake_ok "bake once" "$IN" -o "$O/first.raw" --size 1G
	sleep 1.1
	bake_ok "bake again, another name, a second later" "$IN" \
	    -o "$O/second.img" --size 1G
	check "same bytes" same "$O/second.img" "$O/first.raw"
	rm -f "$O/second.img"
	unflushed

	SOURCE_DATE_EPOCH=1700000000 bake_ok "bake with SOURCE_DATE_EPOCH" \
	    "$IN" -o "$O/sde.raw" --size 1G
	bake_ok "bake with --epoch" "$IN" -o "$O/epoch.raw" --size 1G \
	    --epoch 1700000000
	check "SOURCE_DATE_EPOCH=X and --epoch X agree" \
	    same "$O/sde.raw" "$O/epoch.raw"
	SOURCE_DATE_EPOCH=1 bake_ok "--epoch beats SOURCE_DATE_EPOCH" \
	    "$IN" -o "$O/both.raw" --size 1G --epoch 1700000000
	check "--epoch X with SOURCE_DATE_EPOCH=1 gives the --epoch X bytes" \
	    same "$O/both.raw" "$O/epoch.raw"
	bake_ok "bake with another --epoch" "$IN" -o "$O/other.raw" \
	    --size 1G --epoch 1700000001
	check_fail "another epoch, other bytes" same "$O/other.raw" \
	    "$O/epoch.raw"
	rm -f "$O"/*
}

# pep-bake(1): the output is flushed to disk before it is named, and
# `eatmydata pep-bake` skips every flush (a throwaway CI machine) for the
# same bytes. The flushes are counted as the kernel sees them. (For the
# sanitizer build: LeakSanitizer cannot run under ptrace, and ASan wants
# to be the first library, not eatmydata.)
flushes() {	# OUT CMD...: how many flush system calls CMD made
	_o=$1; shift
	_asan=${ASAN_OPTIONS:-}:detect_leaks=0:verify_asan_link_order=0
	ASAN_OPTIONS=$_asan strace -f -qq \
	    -e trace=fsync,fdatasync,sync_file_range,syncfs,sync \
	    -o "$PEP_TMP/flush.st" "$@" -q "$IN" -o "$_o" --size 1G \
	    >/dev/null 2>"$PEP_TMP/flush.err" ||
	    { echo "#   $(head -1 "$PEP_TMP/flush.err")"; echo failed; return; }
	grep -c -v -e '^+++' -e '^---' "$PEP_TMP/flush.st"
}
unflushed() {
	_fl=$(flushes "$O/flushed.raw" "$PEP_BAKE")
	check "a plain bake flushes ($_fl flush calls)" test "$_fl" -gt 0
	rm -f "$O/flushed.raw"
	if ! command -v eatmydata >/dev/null; then
		skip "eatmydata pep-bake: no eatmydata"; return 0
	fi
	is "eatmydata pep-bake makes no flush" \
	    "$(flushes "$O/eat.raw" eatmydata "$PEP_BAKE")" 0
	check "... and writes the same bytes" same "$O/eat.raw" "$O/first.raw"
	rm -f "$O/eat.raw"
}

# exit_is DESCRIPTION WANT ARGS...: pep-bake ARGS exits with WANT.
exit_is() {
	_d=$1 _w=$2; shift 2
	bake "$@"
	is "$_d: exit $_w" "$BAKE_RC" "$_w"
}

command_line() {
	exit_is "--help" 0 --help
	check "--help mentions --size" grep -q -e '--size' "$PEP_TMP/bake.out"
	exit_is "-h" 0 -h
	exit_is "--version" 0 --version
	check "--version prints a version" grep -Eq '[0-9]+\.[0-9]+' \
	    "$PEP_TMP/bake.out"
	# README: libext2fs is linked statically, from Debian's
	# libext2fs-dev, so a host's shared libext2fs cannot change the
	# bytes written.
	like "--version names the libext2fs inside, libext2fs-dev's" \
	    "$(cat "$PEP_TMP/bake.out")" \
	    "\\(libext2fs $(pkg-config --modversion ext2fs), linked in\\)$"
	is "no shared libext2fs or libcom_err needed" \
	    "$(readelf -d "$PEP_BAKE" | grep NEEDED |
	    grep -c -e libext2fs -e libcom_err)" 0
	like "... its code is in the binary" \
	    "$(nm "$PEP_BAKE" | grep -c -e ' T ext2fs_open2$' \
	    -e ' T ext2fs_extent_open2$')" '^2$'
	exit_is "-V" 0 -V
	exit_is "unknown option" 2 --frobnicate "$IN" -o "$O/x.raw"
	check "unknown option: says so on stderr" test -s "$PEP_TMP/bake.err"
	exit_is "no -o" 2 "$IN"
	exit_is "no input" 2 -o "$O/x.raw"
	exit_is "two inputs" 2 "$IN" "$IN" -o "$O/x.raw"
	exit_is "--size banana" 2 "$IN" -o "$O/x.raw" --size banana
	exit_is "--size 1Q" 2 "$IN" -o "$O/x.raw" --size 1Q
	exit_is "--epoch soon" 2 "$IN" -o "$O/x.raw" --epoch soon
	is "usage errors leave no output" "$(ls -A "$O")" ""
}

quiet() {
	bake_ok "--quiet bake" -q "$IN" -o "$O/q.raw" --size 1G
	is "--quiet: stderr empty" "$(cat "$PEP_TMP/bake.err")" ""
	bake_ok "bake with stderr on a pipe" "$IN" -o "$O/p.raw" --size 1G
	check_fail "no progress meter (no CR) when stderr is not a terminal" \
	    grep -q "$(printf '\r')" "$PEP_TMP/bake.err"
	is "stderr on a pipe: empty when there are no warnings" \
	    "$(cat "$PEP_TMP/bake.err")" ""
	rm -f "$O"/*
}

# With a terminal on stderr there is progress (script(1) makes the pty).
progress() {
	if ! command -v script >/dev/null 2>&1; then
		skip "progress on a terminal: no script(1)"; return 0
	fi
	script -qec "'$PEP_BAKE' '$IN' -o '$O/tty.raw' --size 1G 2>&1 \
	    >/dev/null" /dev/null >"$PEP_TMP/tty.out" 2>&1
	# the copy's percentage reaches 100.0%, and each step is named on
	# the status line (erased with ESC [K before the next)
	check "progress: the copy counts up to 100.0% on the terminal" \
	    grep -q 'convert *100\.0%' "$PEP_TMP/tty.out"
	_steps=$(tr '\r' '\n' <"$PEP_TMP/tty.out" |
	    sed -n 's/^\x1b\[K\([a-z-]*\)$/\1/p' | tr '\n' ' ')
	like "progress: every step named on the status line" "$_steps" \
	    'open convert layout fs-open grow console nocloud .*commit'
	check "progress: the status line is erased before the report" sh -c \
	    "tr -d '\\r\\033' <'$PEP_TMP/tty.out' | grep -q 'commit\\[Kpep-bake: '"
	rm -f "$O"/*
}

[ -x "$PEP_BAKE" ] || bail "$PEP_BAKE not built"
mkdir -p "$O"
fixture "$IN" gpt cloudinit raw
reproducible
command_line
quiet
progress
done_testing
