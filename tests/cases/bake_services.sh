#!/bin/sh
# OpenRC services (--service, --enable, --disable) land as the real
# rc-update (Debian's openrc package, run in a private mount namespace on
# a scratch /etc) places them; pexi-boot is installed by default with the
# pexi-bridge built for the image's architecture (x86_64 and aarch64,
# found from /etc/apk/arch or the ELF of /bin/busybox or /bin/sh), and
# --no-pexi leaves none of it. Oracles: rc-update, debugfs, readelf.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"

T=$PEP_TMP
MIB=1048576
GUEST=${PEP_GUEST_DIR:-$TOP/build/guest}

# A tree of the image's /etc parts (rdump keeps modes and link targets).
img_tree() {	# image offset dir
	rm -rf "$3"
	mkdir -p "$3"
	for d in init.d conf.d runlevels; do
		debugfs -R "rdump /etc/$d $3" "$1?offset=$2" >/dev/null 2>&1
	done
}

listing() {	# dir: what must agree (type, mode, link target, bytes' sum)
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
		if [ -L "$p" ]; then echo "$p l $(readlink "$p")"
		elif [ -d "$p" ]; then echo "$p d"
		else echo "$p f $(stat -c %a "$p") $(cksum <"$p")"; fi
	done)
}

scripts() {
	printf '#!/sbin/openrc-run\ndescription="foo"\ncommand=/bin/true\n' \
	    >"$T/foo.initd"
	printf 'foo_opts="--x"\n' >"$T/foo.confd"
	printf '#!/sbin/openrc-run\ndescription="bar"\n' >"$T/bar.initd"
	printf '#!/sbin/openrc-run\ndescription="baz"\n' >"$T/baz.initd"
	chmod 644 "$T/foo.initd" "$T/bar.initd" "$T/baz.initd"
}

# The same operations with rc-update on a scratch /etc.
rc_oracle() {	# dir
	r=$1
	rm -rf "$r"
	mkdir -p "$r/init.d" "$r/conf.d" "$r/runlevels/default" \
	    "$r/runlevels/boot" "$r/runlevels/nonetwork"
	install -m 755 "$T/foo.initd" "$r/init.d/foo"
	install -m 644 "$T/foo.confd" "$r/conf.d/foo"
	install -m 755 "$T/bar.initd" "$r/init.d/bar"
	install -m 755 "$T/baz.initd" "$r/init.d/baz"
	unshare -m sh -c 'for d in init.d runlevels; do
		mount --bind "$1/$d" "/etc/$d" || exit 1; done
	rc-update -q add foo default && rc-update -q add bar boot &&
	rc-update -q add foo nonetwork && rc-update -q del bar boot &&
	rc-update -q add bar default && rc-update -q add baz boot &&
	rc-update -q del baz boot' sh "$r"
}

services_vs_rc_update() {
	if [ "$(id -u)" -ne 0 ] || ! command -v rc-update >/dev/null ||
	    ! unshare -m true 2>/dev/null; then
		skip "services vs rc-update: needs root, unshare and openrc"
		return 0
	fi
	scripts
	rc_oracle "$T/rc" || { not_ok "rc-update oracle ran"; return 0; }
	bake_ok "services: bake" "$T/gpt.raw" -o "$T/svc.raw" -q --no-pexi \
	    --service "foo=$T/foo.initd,$T/foo.confd" \
	    --service "bar=$T/bar.initd@boot" --enable foo@nonetwork \
	    --disable bar@boot --enable bar \
	    --service "baz=$T/baz.initd@boot" --disable baz@boot
	img_tree "$T/svc.raw" $MIB "$T/img"
	listing "$T/rc" >"$T/rc.list"
	listing "$T/img" >"$T/img.list"
	if diff "$T/rc.list" "$T/img.list" >"$T/diff"; then
		ok "services: /etc/init.d, conf.d and runlevels as rc-update made them"
	else
		not_ok "services: /etc/init.d, conf.d and runlevels as rc-update made them"
		sed 's/^/#   /' "$T/diff" | head -20
	fi
	check "services: e2fsck -fn clean" fs_fsck "$T/svc.raw" $MIB
	bake "$T/gpt.raw" -o "$T/x.raw" --no-pexi --enable nosuch
	like "services: enabling a service not there is refused" \
	    "$(cat "$T/bake.err")" 'service nosuch does not exist'
	check_fail "services: ... and nothing written" test -e "$T/x.raw"
	bake "$T/gpt.raw" -o "$T/x.raw" --service "a/b=$T/foo.initd"
	is "services: a name with / is a usage error" "$BAKE_RC" 2
}

# elf_machine FILE: readelf's Machine line.
elf_machine() { readelf -h "$1" 2>/dev/null | sed -n 's/^ *Machine: *//p'; }

# pexi_checks NAME IMAGE OFFSET MACHINE
pexi_checks() {
	n=$1 img=$2 off=$3
	debugfs -R "dump /usr/local/bin/pexi-bridge $T/bridge" \
	    "$img?offset=$off" >/dev/null 2>&1
	is "$n: pexi-bridge's ELF machine" "$(elf_machine "$T/bridge")" "$4"
	check "$n: pexi-bridge is static (no interpreter)" sh -c \
	    "! readelf -l '$T/bridge' | grep -q INTERP"
	is "$n: pexi-bridge mode, owner" \
	    "$(fs_stat "$img" "$off" /usr/local/bin/pexi-bridge |
	    cut -d' ' -f1-3)" "0755 0 0"
	is "$n: /etc/init.d/pexi-boot is guest-init's" \
	    "$(fs_cat "$img" "$off" /etc/init.d/pexi-boot | cksum)" \
	    "$(cksum <"$TOP/guest-init/pexi-boot.initd")"
	is "$n: /etc/init.d/pexi-boot mode" \
	    "$(fs_stat "$img" "$off" /etc/init.d/pexi-boot | cut -d' ' -f1)" \
	    0755
	is "$n: /etc/conf.d/pexi-boot is guest-init's" \
	    "$(fs_cat "$img" "$off" /etc/conf.d/pexi-boot | cksum)" \
	    "$(cksum <"$TOP/guest-init/pexi-boot.confd")"
	like "$n: enabled in the default runlevel" \
	    "$(debugfs -R 'stat /etc/runlevels/default/pexi-boot' \
	    "$img?offset=$off" 2>/dev/null)" \
	    'Fast link dest: "/etc/init.d/pexi-boot"'
	is "$n: the intercept runner is the guest directory's" \
	    "$(fs_cat "$img" "$off" \
	    /usr/local/lib/pexi/intercept/pexi-intercept.js | cksum)" \
	    "$(cksum <"$GUEST/intercept/pexi-intercept.js")"
	check "$n: ... with its node_modules" fs_exists "$img" "$off" \
	    /usr/local/lib/pexi/intercept/node_modules/puppeteer-core/package.json
	is "$n: pexi-firefox mode" "$(fs_stat "$img" "$off" \
	    /usr/local/lib/pexi/intercept/pexi-firefox | cut -d' ' -f1)" 0755
	is "$n: the runner's default /etc/pexi/config.json" \
	    "$(fs_cat "$img" "$off" /etc/pexi/config.json | jq -c .)" \
	    '{"visits":[]}'
	check "$n: e2fsck -fn clean" fs_fsck "$img" "$off"
}

# The runner's whole tree in IMAGE equals the guest directory's.
runner_tree() {	# image offset
	rm -rf "$T/rd"
	mkdir -p "$T/rd"
	debugfs -R "rdump /usr/local/lib/pexi/intercept $T/rd" \
	    "$1?offset=$2" >/dev/null 2>&1
	diff -r "$GUEST/intercept" "$T/rd/intercept"
}

# A bare root filesystem from a minirootfs tarball (ARCH), with EDIT run
# on its tree first.
bare_root() {	# arch out edit
	rm -rf "$T/tree"
	mkdir -p "$T/tree"
	tar -xzf "$(alpine_minirootfs "$1")" -C "$T/tree" ||
	    bail "minirootfs $1 missing"
	(cd "$T/tree" && eval "$3")
	rm -f "$2"
	mkfs.ext4 -q -F -d "$T/tree" "$2" 64M >/dev/null 2>&1 ||
	    bail "mkfs.ext4 -d failed"
}

pexi() {
	bake_ok "pexi x86_64: bake" "$T/gpt.raw" -o "$T/p.raw" -q --json
	pexi_checks "pexi x86_64" "$T/p.raw" $MIB "Advanced Micro Devices X86-64"
	is "pexi x86_64: --json names the arch" \
	    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["guest_arch"])' \
	    "$T/bake.out")" x86_64
	check "pexi x86_64: the runner's whole tree as make guest built it" \
	    runner_tree "$T/p.raw" $MIB
	cfg='{"visits": ["http://x.test/"]}'
	bake_ok "pexi: rebake with a config and a stray runner file" \
	    "$T/p.raw" -o "$T/q.raw" -q --write "/etc/pexi/config.json:$cfg" \
	    --write /usr/local/lib/pexi/intercept/stray:x
	bake_ok "pexi: rebake that" "$T/q.raw" -o "$T/r.raw" -q
	is "pexi: a config the image has is kept" \
	    "$(fs_cat "$T/r.raw" $MIB /etc/pexi/config.json)" "$cfg"
	check_fail "pexi: an older runner is replaced, not merged" \
	    fs_exists "$T/r.raw" $MIB /usr/local/lib/pexi/intercept/stray
	bare_root aarch64 "$T/a64.ext4" ":"
	bake_ok "pexi aarch64: bake" "$T/a64.ext4" -o "$T/a64o.ext4" -q \
	    --size 128M
	pexi_checks "pexi aarch64" "$T/a64o.ext4" 0 AArch64
	bare_root aarch64 "$T/elf.ext4" "rm -f etc/apk/arch"
	bake_ok "pexi, arch from /bin/busybox's ELF: bake" "$T/elf.ext4" \
	    -o "$T/elfo.ext4" -q --size 128M
	is "pexi, arch from /bin/busybox's ELF: aarch64 bridge" \
	    "$(debugfs -R "dump /usr/local/bin/pexi-bridge $T/b2" \
	    "$T/elfo.ext4" >/dev/null 2>&1; elf_machine "$T/b2")" AArch64
	bare_root x86_64 "$T/noarch.ext4" \
	    "rm -f etc/apk/arch bin/busybox bin/sh; echo '#!' >bin/sh"
	bake "$T/noarch.ext4" -o "$T/x.ext4" --size 128M
	like "pexi, no arch to be found: refused naming the way out" \
	    "$(cat "$T/bake.err")" 'cannot tell the image.s architecture.*--no-pexi'
	check_fail "pexi, no arch to be found: nothing written" \
	    test -e "$T/x.ext4"
	bake_ok "--no-pexi: bake" "$T/noarch.ext4" -o "$T/np.ext4" -q \
	    --size 128M --no-pexi
	for p in /usr/local/bin/pexi-bridge /etc/init.d/pexi-boot \
	    /etc/conf.d/pexi-boot /etc/runlevels/default/pexi-boot \
	    /usr/local/lib/pexi/intercept /etc/pexi/config.json; do
		check_fail "--no-pexi: no $p" fs_exists "$T/np.ext4" 0 "$p"
	done
}

guest_dirs() {
	PEP_GUEST_DIR=$T/nowhere bake "$T/gpt.raw" -o "$T/x.raw"
	like "guest dir missing: says so" "$(cat "$T/bake.err")" \
	    'nowhere: no such guest directory'
	mkdir -p "$T/g1/x86_64"
	cp "$GUEST/pexi-boot.initd" "$GUEST/pexi-boot.confd" "$T/g1/"
	cp "$GUEST/x86_64/pexi-bridge" "$T/g1/x86_64/"
	bake "$T/gpt.raw" -o "$T/x.raw" --guest-dir "$T/g1"
	like "no intercept runner in the guest dir: names it and the way out" \
	    "$(cat "$T/bake.err")" 'g1/intercept: no intercept runner.*make guest'
	bake "$T/a64.ext4" -o "$T/x.ext4" --size 128M --guest-dir "$T/g1"
	like "no bridge for the image's arch: names the file and --no-pexi" \
	    "$(cat "$T/bake.err")" 'g1/aarch64/pexi-bridge: .*--no-pexi'
	check_fail "no bridge for the image's arch: nothing written" \
	    test -e "$T/x.ext4"
	# make install puts the guest files where an installed pep-bake
	# looks for them, with no PEP_GUEST_DIR.
	if make -s -C "$TOP" install PREFIX="$T/inst" >"$T/inst.log" 2>&1
	then
		(unset PEP_GUEST_DIR; "$T/inst/bin/pep-bake" "$T/gpt.raw" \
		    -o "$T/inst.raw" -q) >"$T/inst.err" 2>&1
		check "make install: the installed pep-bake finds its guest files" \
		    fs_exists "$T/inst.raw" $MIB /usr/local/bin/pexi-bridge
	else
		not_ok "make install PREFIX=..."
		sed 's/^/#   /' "$T/inst.log" | tail -5
	fi
}

[ -x "$PEP_BAKE" ] || bail "$PEP_BAKE not built"
[ -x "$GUEST/x86_64/pexi-bridge" ] || bail "no guest files: make guest"
fixture "$T/gpt.raw" gpt cloudinit raw
services_vs_rc_update
pexi
guest_dirs
done_testing
