#!/bin/sh
# One Alpine UEFI disk in every container format pep-bake reads (raw,
# fixed and dynamic VHD, qcow2 v3 plain, zlib and zstd compressed and with
# extended L2 entries, qcow2 v2): the baked outputs are byte-identical,
# the data survives, and the --json report describes what happened.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/fixtures/bakelib.sh"

G=1073741824
EPOCH=1700000000
FORMATS="raw vhd-fixed vhd-dynamic qcow2 qcow2-compressed qcow2-v2
qcow2-zstd qcow2-extl2 qcow2-extl2-zstd"

# json FILE EXPR: a Python expression over the report r.
json() {
	python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None
      else v)' "$1" "$2" 2>&1
}

qemu_qcow2() {	# file qemu-img-convert-options...: the raw fixture as qcow2
	_q=$1; shift
	fixture "$PEP_TMP/in.raw" gpt cloudinit raw
	qemu-img convert -f raw -O qcow2 "$@" "$PEP_TMP/in.raw" "$_q"
}

make_input() {	# format file
	case $1 in
	qcow2-v2)	qemu_qcow2 "$2" -o compat=0.10 ;;
	qcow2-zstd)	qemu_qcow2 "$2" -c -o compression_type=zstd ;;
	qcow2-extl2)	qemu_qcow2 "$2" -o extended_l2=on,cluster_size=16k ;;
	qcow2-extl2-zstd)
		qemu_qcow2 "$2" -c -o extended_l2=on,compression_type=zstd ;;
	*)	fixture "$2" gpt cloudinit "$1" ;;
	esac
}

# What the report must call each format.
format_name() {
	case $1 in
	qcow2|qcow2-compressed|qcow2-zstd|qcow2-extl2*) echo qcow2-v3 ;;
	*)	echo "$1" ;;
	esac
}

qemu_fmt() {
	case $1 in
	raw)	echo raw ;;
	vhd-*)	echo vpc ;;
	*)	echo qcow2 ;;
	esac
}

bake_format() {	# format
	f=$1 in=$PEP_TMP/in.$1 out=$PEP_TMP/out.$1.raw
	make_input "$f" "$in"
	bake_ok "$f: bake --json" "$in" -o "$out" --size 1G --epoch $EPOCH \
	    --json
	cp "$PEP_TMP/bake.out" "$PEP_TMP/report.$f.json"
	qemu-img convert -f "$(qemu_fmt "$f")" -O raw "$in" "$PEP_TMP/conv.raw"
	check "$f: qemu-img reads it back as the raw fixture" \
	    cmp "$PEP_TMP/conv.raw" "$PEP_TMP/ref.raw"
	is "$f: report input_format" \
	    "$(json "$PEP_TMP/report.$f.json" 'r["input_format"]')" \
	    "$(format_name "$f")"
	is "$f: report virtual_size" \
	    "$(json "$PEP_TMP/report.$f.json" 'r["virtual_size"]')" 209715200
	is "$f: report input path" \
	    "$(json "$PEP_TMP/report.$f.json" 'r["input"]')" "$in"
	if [ "$f" != raw ]; then
		check "$f: output identical to the raw input's" \
		    cmp "$out" "$PEP_TMP/out.raw.raw"
		rm -f "$out"
	fi
	rm -f "$in" "$PEP_TMP/conv.raw"
}

check_gpt_report() {	# report
	r=$1
	check "gpt report: stdout is one JSON document" json "$r" 'r'
	is "gpt report: output" "$(json "$r" 'r["output"]')" \
	    "$PEP_TMP/out.raw.raw"
	is "gpt report: output_size" "$(json "$r" 'r["output_size"]')" $G
	is "gpt report: layout" "$(json "$r" 'r["layout"]')" gpt
	is "gpt report: root_partition" "$(json "$r" 'r["root_partition"]')" 2
	is "gpt report: root_offset" "$(json "$r" 'r["root_offset"]')" 1048576
	is "gpt report: bootstrap" "$(json "$r" 'r["bootstrap"]')" cloud-init
	is "gpt report: epoch" "$(json "$r" 'r["epoch"]')" $EPOCH
	is "gpt report: partitions before" \
	    "$(json "$r" '[(p["number"], p["start"], p["size"], p["name"])
	    for p in r["partitions_before"]]')" \
	    '[[1, 524288, 524288, "EFI"], [2, 1048576, 208649728, "/"]]'
	is "gpt report: partitions after" \
	    "$(json "$r" '[(p["number"], p["start"], p["size"], p["name"])
	    for p in r["partitions_after"]]')" \
	    "[[1, 524288, 524288, \"EFI\"], [2, 1048576, $((G - 33 * 512 - 1048576)), \"/\"]]"
	is "gpt report: GUIDs and types unchanged" \
	    "$(json "$r" '[(p["uuid"].upper(), p["type"].upper())
	    for p in r["partitions_after"]]')" \
	    "$(json "$r" '[(p["uuid"].upper(), p["type"].upper())
	    for p in r["partitions_before"]]')"
	is "gpt report: root GUID" \
	    "$(json "$r" 'r["partitions_after"][1]["uuid"].upper()')" \
	    9F8E7D6C-5B4A-4392-8170-6F5E4D3C2B1A
	is "gpt report: edits" \
	    "$(json "$r" 'sorted((e["path"], e["action"]) for e in r["edits"]
	    if e["action"] not in ("unchanged", "pexi"))')" \
	    '[["/boot/grub/grub.cfg", "patched"], ["/etc/cloud/cloud.cfg.d/99_nocloud.cfg", "created"], ["/etc/default/grub", "patched"]]'
	is "gpt report: pexi-boot installed" \
	    "$(json "$r" 'sorted(e["path"] for e in r["edits"]
	    if e["action"] == "pexi")')" \
	    '["/etc/conf.d/pexi-boot", "/etc/init.d/pexi-boot", "/etc/pexi/config.json", "/etc/runlevels/default/pexi-boot", "/usr/local/bin/pexi-bridge", "/usr/local/lib/pexi/intercept"]'
	is "gpt report: no warnings" "$(json "$r" 'r["warnings"]')" '[]'
	is "gpt report: timings has convert, layout, edit, commit, total" \
	    "$(json "$r" '[k for k in ("commit", "convert", "edit", "layout",
	    "total") if not isinstance(r["timings"].get(k), (int, float))]')" \
	    '[]'
	check "gpt report: bytes_written is the data, not the zeros" \
	    json "$r" '1 if 0 < r["bytes_written"] <= 64 << 20 else 1 / 0'
}

# The report for the other layouts and bootstraps.
check_other_report() {	# layout boot root_part bootstrap edits
	in=$PEP_TMP/in.raw out=$PEP_TMP/out.raw r=$PEP_TMP/report.json
	fixture "$in" "$1" "$2" raw
	bake_ok "$1/$2: bake --json" "$in" -o "$out" --size 1G --json
	cp "$PEP_TMP/bake.out" "$r"
	is "$1/$2 report: layout" "$(json "$r" 'r["layout"]')" "$1"
	is "$1/$2 report: root_partition" \
	    "$(json "$r" 'r["root_partition"]')" "$3"
	is "$1/$2 report: bootstrap" "$(json "$r" 'r["bootstrap"]')" "$4"
	is "$1/$2 report: edits" \
	    "$(json "$r" 'sorted(e["path"] for e in r["edits"]
	    if e["action"] not in ("unchanged", "pexi"))')" "$5"
	rm -f "$in" "$out"
}

[ -x "$PEP_BAKE" ] || bail "$PEP_BAKE not built"
fixture "$PEP_TMP/ref.raw" gpt cloudinit raw
for f in $FORMATS; do bake_format "$f"; done
check_gpt_report "$PEP_TMP/report.raw.json"
check_other_report mbr cloudinit 1 cloud-init \
    '["/boot/grub/grub.cfg", "/etc/cloud/cloud.cfg.d/99_nocloud.cfg", "/etc/default/grub"]'
check_other_report none tiny 0 tiny-cloud \
    '["/boot/extlinux.conf", "/etc/tiny-cloud.conf", "/etc/update-extlinux.conf"]'
is "none/tiny report: root_offset" \
    "$(json "$PEP_TMP/report.json" 'r["root_offset"]')" 0
check_other_report none none 0 none \
    '["/boot/extlinux.conf", "/etc/update-extlinux.conf"]'
is "none/none report: a warning" \
    "$(json "$PEP_TMP/report.json" 'len(r["warnings"])')" 1
done_testing
