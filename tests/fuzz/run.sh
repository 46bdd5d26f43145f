#!/bin/sh
# tests/fuzz/run.sh SECONDS: run every build-fuzz/fuzz_* libFuzzer binary
# for SECONDS on a scratch copy of its seed corpus (tests/fuzz/corpus/NAME
# for fuzz_NAME; the committed corpus never grows), with the dictionary
# tests/fuzz/NAME.dict when there is one. Prints one TAP-ish
# line per target; exits non-zero if any target crashed. Crash inputs and
# logs are kept in build-fuzz/artifacts/.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP" || exit 1
secs=${1:-20}
bin_dir=${PEP_FUZZ_BIN:-build-fuzz}
art=$bin_dir/artifacts
n=0
failed=0
mkdir -p "$art"
for bin in "$bin_dir"/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	n=$((n + 1))
	work=$(mktemp -d /tmp/pep-fuzz.XXXXXX)
	seeds=tests/fuzz/corpus/${name#fuzz_}
	[ -d "$seeds" ] && cp -r "$seeds/." "$work/"
	log=$art/$name.log
	set --
	[ -f "tests/fuzz/${name#fuzz_}.dict" ] &&
	    set -- -dict="tests/fuzz/${name#fuzz_}.dict"
	if "$bin" "$@" -max_total_time="$secs" -rss_limit_mb=512 -timeout=25 \
	    -print_final_stats=1 -artifact_prefix="$art/$name-" \
	    "$work" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "ok $n - $name: ${secs}s, ${runs:-?} runs"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name: crashed (see $log)"
		grep -m 5 -E 'ERROR|SUMMARY|runtime error' "$log" |
		    sed 's/^/#   /'
	fi
	rm -rf "$work"
done
echo "1..$n"
[ "$failed" -eq 0 ]
