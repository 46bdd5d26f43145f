#!/bin/sh
# pep-bake --recipe (bake/pep-recipe.5): the shipped offline recipe
# (images/test-fixture.json) bakes the fixture e2fsck-clean and
# byte-identical to the same bake given as flags; flags override the
# recipe's settings and their operations run after its; host paths are
# relative to the recipe's folder, whatever the working directory; every
# class of schema error exits 2 with one stderr line naming the recipe
# and the JSON path, and writes nothing.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"

IMG=$TOP/images
FX=$IMG/test-fixture
R=$IMG/test-fixture.json
DISK=$PEP_TMP/disk.raw
OD=$PEP_TMP/o		# outputs of the cases that must fail: stays empty
W=$PEP_TMP/w		# a working directory that is not the recipe's
mkdir -p "$OD" "$W"
fixture "$DISK" gpt cloudinit raw
OFF=$((2048 * 512))	# the fixture's root partition
TAB=$(printf '\t')

# in_dir DIR ARGS...: bake from DIR.
in_dir() { _d=$1; shift; (cd "$_d" && bake "$@"; exit "$BAKE_RC"); BAKE_RC=$?; }

# ------------------------------------------------- the offline recipe

in_dir "$W" --recipe "$R" "$DISK" -o "$PEP_TMP/recipe.raw" --json
is "test-fixture.json bakes from another directory (exit)" "$BAKE_RC" 0
[ "$BAKE_RC" -eq 0 ] || sed 's/^/#   /' "$PEP_TMP/bake.err"
A=$PEP_TMP/recipe.raw
check "recipe output: e2fsck clean" fs_fsck "$A" "$OFF"
is "recipe output: 256 MiB (size)" "$(file_size "$A")" $((256 << 20))
like "recipe output: cloud-init (bootstrap)" "$(cat "$PEP_TMP/bake.out")" \
    '"bootstrap":[[:space:]]*"cloud-init"'
check "recipe output: pexi-bridge installed (pexi)" \
    fs_exists "$A" "$OFF" /usr/local/bin/pexi-bridge
is "write: /etc/motd" "$(fs_cat "$A" "$OFF" /etc/motd)" \
    "Welcome to a pep guest."
is "write, chmod, chown: /etc/app/token" \
    "$(fs_stat "$A" "$OFF" /etc/app/token | cut -d' ' -f1-3)" "0600 1000 1000"
is "upload (relative to the recipe): /etc/issue" \
    "$(fs_cat "$A" "$OFF" /etc/issue)" "$(cat "$FX/issue")"
is "copy_in, chmod: run.sh" "$(fs_stat "$A" "$OFF" /srv/app/app/bin/run.sh |
    cut -d' ' -f1)" 0750
is "mkdir, chown: /srv/app" \
    "$(fs_stat "$A" "$OFF" /srv/app | cut -d' ' -f2-3)" "1000 1000"
is "tar_in: /etc/site/site.conf" "$(fs_cat "$A" "$OFF" /etc/site/site.conf)" \
    "site=test-fixture"
like "link: /usr/local/bin/app" "$(debugfs -R 'stat /usr/local/bin/app' \
    "$A?offset=$OFF" 2>/dev/null)" 'Fast link dest: "/srv/app/app/bin/run.sh"'
is "append_line: /etc/hosts" "$(fs_cat "$A" "$OFF" /etc/hosts | tail -1)" \
    "10.0.2.2${TAB}host.pep"
check "touch: /var/log/app.log" fs_exists "$A" "$OFF" /var/log/app.log
check_fail "delete: /etc/periodic/monthly" fs_exists "$A" "$OFF" \
    /etc/periodic/monthly
is "service: /etc/init.d/hello" "$(fs_cat "$A" "$OFF" /etc/init.d/hello)" \
    "$(cat "$FX/hello.initd")"
is "service: /etc/conf.d/hello" "$(fs_cat "$A" "$OFF" /etc/conf.d/hello)" \
    "$(cat "$FX/hello.confd")"
check "service: enabled in default" fs_exists "$A" "$OFF" \
    /etc/runlevels/default/hello
check_fail "enable then disable: not in boot" fs_exists "$A" "$OFF" \
    /etc/runlevels/boot/hello

# The same bake as flags, from the recipe's folder so that the relative
# host paths are the same files.
in_dir "$IMG" "$DISK" -o "$PEP_TMP/flags.raw" --arch x86_64 --size 256M \
    --console hvc0 --bootstrap cloud-init --epoch 1700000000 \
    --root-partition 2 --mkdir /srv/app \
    --write '/etc/motd:Welcome to a pep guest.
' --write '/etc/app/token:not-a-secret
' --chmod 0600:/etc/app/token --chown 1000:1000:/etc/app/token \
    --upload test-fixture/issue:/etc/issue \
    --copy-in test-fixture/app:/srv/app \
    --tar-in test-fixture/site.tar.gz:/etc \
    --link /srv/app/app/bin/run.sh:/usr/local/bin/app \
    --chmod 0750:/srv/app/app/bin/run.sh --chown 1000:1000:/srv/app \
    --append-line "/etc/hosts:10.0.2.2${TAB}host.pep" \
    --touch /var/log/app.log --delete /etc/periodic/monthly \
    --service hello=test-fixture/hello.initd,test-fixture/hello.confd \
    --enable hello@boot --disable hello@boot
is "the same bake as flags (exit)" "$BAKE_RC" 0
check "the recipe's output is byte-identical to the flags'" \
    cmp "$A" "$PEP_TMP/flags.raw"
rm -f "$PEP_TMP/flags.raw"

# ------------------------------------------------------- flags override

bake --recipe "$R" "$DISK" -o "$PEP_TMP/over.raw" --size 300M --no-pexi \
    --console ttyS1 --write /etc/motd:from-a-flag --delete /etc/issue
B=$PEP_TMP/over.raw
is "flags over the recipe (exit)" "$BAKE_RC" 0
is "--size 300M over \"size\": \"256M\"" "$(file_size "$B")" $((300 << 20))
check_fail "--no-pexi over \"pexi\": true" fs_exists "$B" "$OFF" \
    /usr/local/bin/pexi-bridge
like "--console ttyS1 replaces \"console\"" \
    "$(fs_cat "$B" "$OFF" /etc/default/grub)" 'console=ttyS1"'
is "a flag's --write runs after the recipe's write" \
    "$(fs_cat "$B" "$OFF" /etc/motd)" "from-a-flag"
check_fail "a flag's --delete runs after the recipe's upload" \
    fs_exists "$B" "$OFF" /etc/issue
check "the recipe's other operations still ran" \
    fs_exists "$B" "$OFF" /etc/init.d/hello
rm -f "$B"

# ------------------------------------- source, output, relative paths

RD=$PEP_TMP/r
mkdir -p "$RD/files"
cp "$DISK" "$RD/disk.raw"
printf 'from the recipe folder\n' >"$RD/files/note"
cat >"$RD/r.json" <<EOF
{
	"source": {"path": "disk.raw"},
	"output": "out/baked.raw",
	"epoch": 1700000000,
	"pexi": false,
	"files": [
		{"upload": "/etc/note", "from": "files/note"},
		{"write": "/etc/owned", "content": "x\n", "mode": "0640",
		 "owner": "1000:1000"}
	]
}
EOF
mkdir -p "$RD/out"
in_dir "$W" --recipe ../r/r.json
is "source and output from the recipe, no INPUT nor -o (exit)" "$BAKE_RC" 0
check "output relative to the recipe: r/out/baked.raw" \
    test -f "$RD/out/baked.raw"
is "upload relative to the recipe (run from w/)" \
    "$(fs_cat "$RD/out/baked.raw" "$OFF" /etc/note)" "from the recipe folder"
is "write with mode and owner" \
    "$(fs_stat "$RD/out/baked.raw" "$OFF" /etc/owned | cut -d' ' -f1-3)" \
    "0640 1000 1000"
check "nothing written in the working directory" test -z "$(ls -A "$W")"
rm -f "$RD/out/baked.raw"
in_dir "$W" --recipe ../r/r.json "$DISK" -o over.raw
is "INPUT and -o over source and output (exit)" "$BAKE_RC" 0
check "-o is relative to the working directory" test -f "$W/over.raw"
check_fail "the recipe's output is not written" test -e "$RD/out/baked.raw"
rm -f "$W/over.raw" "$RD/disk.raw"
in_dir "$W" --recipe ../r/r.json "$DISK" -o over.raw
is "INPUT over a source that does not exist (exit)" "$BAKE_RC" 0
rm -f "$W/over.raw"

# ------------------------------------------------------------- errors

# fails NAME WANT ARGS...: exit 2, one line "pep-bake: ... WANT", no output.
fails() {
	_what=$1 _w=$2; shift 2
	bake "$@"
	diag "stderr: $(head -c 300 "$PEP_TMP/bake.err")"
	is "$_what: exit 2" "$BAKE_RC" 2
	if [ "$(wc -l <"$PEP_TMP/bake.err")" -eq 1 ] &&
	    grep -qF -- "$_w" "$PEP_TMP/bake.err" &&
	    grep -q '^pep-bake: ' "$PEP_TMP/bake.err"
	then ok "$_what: one stderr line with '$_w'"
	else
		not_ok "$_what: one stderr line with '$_w'"
		sed 's/^/#   /' "$PEP_TMP/bake.err" | head -5
	fi
	is "$_what: nothing written" "$(ls -A "$OD")" ""
	rm -rf "${OD:?}"/* "${OD:?}"/.[!.]* 2>/dev/null
}

E=$PEP_TMP/e
mkdir -p "$E"
# bad NAME WANT JSON: a recipe E/NAME.json that must fail with WANT.
bad() {
	printf '%s\n' "$3" >"$E/$1.json"
	fails "$1" "$1.json$2" --recipe "$E/$1.json" "$DISK" -o "$OD/out.raw"
}

bad unknown-key ': .sise: unknown key (did you mean "size"?)' \
    '{"sise": "2G"}'
# far from every key ("size" is 4 edits away: "over" deleted): no "did
# you mean", the keys there are
bad unknown-key-far \
    ': .oversize: unknown key (expected "source", "output", "arch", "size",' \
    '{"oversize": "2G"}'
bad unknown-field \
    ': .files[0].contents: unknown key (did you mean "content"?)' \
    '{"files": [{"write": "/etc/motd", "contents": "x"}]}'
bad wrong-type ': .size: expected a size like "2G" or a number of bytes' \
    '{"size": true}'
bad wrong-type-array ': .files: expected an array of operations' \
    '{"files": {"mkdir": "/srv"}}'
bad missing-field ': .files[1].content: missing ("write" needs it)' \
    '{"files": [{"mkdir": "/a"}, {"write": "/etc/motd"}]}'
bad missing-kind ': .services[0]: no operation' \
    '{"services": [{"name": "sshd"}]}'
bad bad-mode ': .files[0].mode: expected an octal string like "0644"' \
    '{"files": [{"chmod": "/etc/motd", "mode": "0999"}]}'
bad bad-size ': .size: 1000 bytes is not a multiple of 512' \
    '{"size": 1000}'
bad bad-owner ': .files[0].owner: expected "UID:GID"' \
    '{"files": [{"chown": "/etc/motd", "owner": "root:root"}]}'
bad bad-path ': .files[0].mkdir: expected an absolute path in the image' \
    '{"files": [{"mkdir": "srv"}]}'
bad bad-name \
    ": .services[0].enable: expected a service name (not empty, no '/')" \
    '{"services": [{"enable": "a/b"}]}'
bad bad-arch ': .arch: "amd64" is not an Alpine architecture' \
    '{"arch": "amd64"}'
bad bad-bootstrap ': .bootstrap: expected "auto", "cloud-init"' \
    '{"bootstrap": "cloudinit"}'
bad duplicate-key ': .epoch: duplicate key' '{"epoch": 1, "epoch": 2}'
bad two-kinds \
    ': .files[0]: two operations in one object ("write" and "mkdir")' \
    '{"files": [{"write": "/etc/x", "content": "x", "mkdir": "/b"}]}'
bad wrong-section ': .files[0].enable: "enable" goes in "services"' \
    '{"files": [{"enable": "sshd"}]}'
bad invalid-json ":3:1: invalid JSON near '}'" '{
	"size": "2G",
}'
bad truncated-json ':2:1: invalid JSON: unexpected end of text' '{"files": ['
bad nul-string ':1:25: a string holds \u0000' \
    '{"files": [{"touch": "/a\u0000b"}]}'
bad missing-host ": .files[0].from: $E/nope: No such file or directory" \
    '{"files": [{"upload": "/etc/x", "from": "nope"}]}'
bad missing-init ": .services[0].init: $E/nope.initd: No such file" \
    '{"services": [{"service": "x", "init": "nope.initd"}]}'
bad source-later ': .source.url: downloads are not supported yet' \
    '{"source": {"url": "https://example.org/a.qcow2"}}'
printf '{"source": "nope.raw"}\n' >"$E/no-source.json"
fails "source that does not exist, no INPUT" \
    "no-source.json: .source: $E/nope.raw: No such file or directory" \
    --recipe "$E/no-source.json" -o "$OD/out.raw"
fails "recipe file not found" "$E/absent.json: No such file or directory" \
    --recipe "$E/absent.json" "$DISK" -o "$OD/out.raw"
fails "recipe is a directory" "$E: not a regular file" \
    --recipe "$E" "$DISK" -o "$OD/out.raw"
# Root reads everything: take away its power to (setpriv keeps uid 0
# but drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from what exec gets).
printf '{}\n' >"$E/unreadable.json"
chmod 000 "$E/unreadable.json"
if [ "$(id -u)" -ne 0 ]; then
	fails "recipe unreadable" "unreadable.json: Permission denied" \
	    --recipe "$E/unreadable.json" "$DISK" -o "$OD/out.raw"
else
	_real=$PEP_BAKE
	PEP_BAKE=$PEP_TMP/bake-nodac
	printf '#!/bin/sh\nexec setpriv --bounding-set -dac_override,%s %s "$@"\n' \
	    -dac_read_search "$_real" >"$PEP_BAKE"
	chmod +x "$PEP_BAKE"
	fails "recipe unreadable (root without CAP_DAC_*)" \
	    "unreadable.json: Permission denied" \
	    --recipe "$E/unreadable.json" "$DISK" -o "$OD/out.raw"
	PEP_BAKE=$_real
fi
printf '{"arch": "aarch64"}\n' >"$E/arch.json"
fails "arch: the image's is another" \
    "disk.raw partition 2: the image is x86_64, not aarch64" \
    --recipe "$E/arch.json" "$DISK" -o "$OD/out.raw"
fails "--arch over the recipe's arch" \
    "disk.raw partition 2: the image is x86_64, not aarch64" \
    --recipe "$R" --arch aarch64 "$DISK" -o "$OD/out.raw"
QCOW=nocloud_alpine-3.20.3-x86_64-uefi-cloudinit-r0.qcow2
fails "the real Alpine recipe, not downloaded" \
    ".source: $IMG/$QCOW: No such file" \
    --recipe "$IMG/alpine-3.20-uefi.json" -o "$OD/out.raw"

# ---------------------------------------------------------- bootstrap

OB=$PEP_TMP/boot.raw
bake "$DISK" -o "$OB" --no-pexi --bootstrap none --json
is "--bootstrap none (exit)" "$BAKE_RC" 0
check_fail "--bootstrap none: no 99_nocloud.cfg" fs_exists "$OB" "$OFF" \
    "$NOCLOUD_CFG"
like "--bootstrap none: reported" "$(cat "$PEP_TMP/bake.out")" \
    '"bootstrap":[[:space:]]*"none"'
rm -f "$OB"
bake "$DISK" -o "$OB" --no-pexi --bootstrap tiny-cloud
is "--bootstrap tiny-cloud on a cloud-init image (exit)" "$BAKE_RC" 0
is "--bootstrap tiny-cloud: /etc/tiny-cloud.conf made" \
    "$(fs_cat "$OB" "$OFF" /etc/tiny-cloud.conf)" "CLOUD=nocloud"
check_fail "--bootstrap tiny-cloud: cloud-init left alone" \
    fs_exists "$OB" "$OFF" "$NOCLOUD_CFG"
like "--bootstrap tiny-cloud: a warning that none was found" \
    "$(cat "$PEP_TMP/bake.err")" 'warning: .*no tiny-cloud found'
rm -f "$OB"

# ------------------------------------------------------- pexi_config

PC=$PEP_TMP/pc.json
OP=$PEP_TMP/pc.raw
printf '{"pexi_config": {"visits": ["http://a.test/"], "poweroff_after": true}}\n' \
    >"$PC"
bake --recipe "$PC" "$DISK" -o "$OP" --bootstrap none
is "pexi_config (exit)" "$BAKE_RC" 0
is "pexi_config: /etc/pexi/config.json as cJSON prints the object" \
    "$(fs_cat "$OP" "$OFF" /etc/pexi/config.json)" "$(printf \
    '{\n\t"visits":\t["http://a.test/"],\n\t"poweroff_after":\ttrue\n}')"
rm -f "$OP"
printf '{"visits": []}\n' >"$PEP_TMP/cli-config.json"
bake --recipe "$PC" "$DISK" -o "$OP" --bootstrap none \
    --upload "$PEP_TMP/cli-config.json:/etc/pexi/config.json"
is "pexi_config under --upload of the same file: the flag's wins" \
    "$(fs_cat "$OP" "$OFF" /etc/pexi/config.json)" '{"visits": []}'
rm -f "$OP"
bake --recipe "$PC" "$DISK" -o "$OP" --no-pexi --bootstrap none
is "pexi_config with --no-pexi: nothing of pexi's written (exit)" \
    "$BAKE_RC" 0
check_fail "... no /etc/pexi/config.json" fs_exists "$OP" "$OFF" \
    /etc/pexi/config.json
rm -f "$OP"

# ---------------------------------------------------------------- docs

for m in bake/pep-recipe.5 bake/pep-bake.1; do
	check "$m: groff -man -ww finds nothing" sh -c \
	    "groff -man -ww -z '$TOP/$m' 2>&1 | grep . && exit 1 || exit 0"
done

done_testing
