#!/bin/sh
# make mutate: each patch in tests/mutants/ is a small, realistic bug; the
# cases it names must catch it. For each mutant, in a scratch copy of the
# tree (build/mutate/tree, with a copy of the already-built build/, so a
# mutant rebuilds only what it touches): apply it, make, run its cases
# with the plain build, and put the file back. A mutant is killed when a
# case fails (a "not ok" line, or a nonzero exit: the case is stopped at
# its first "not ok", and the next cases are not run); it survived when
# every case passes. Exits non-zero if any mutant survived, or does not
# apply (keep mutants up to date with the code), or does not build.
#   PEP_MUTANTS=a,b      only these mutants (file names, .patch optional;
#                        make mutate MUTANTS=a,b)
#   PEP_MUTATE_TIMEOUT=N seconds a case may run (default 300): a case
#                        stopped by it counts as a kill ("timeout")
#
# The habit: a new module (a .c file that holds logic) comes with a
# mutant, and a bug fixed comes with the mutant that brings it back. A
# mutant file is `git diff` output of one small, plausible bug (a wrong
# bound, a dropped check, a swapped condition, a missing flag), headed by
#   # cases: NAME [NAME...]   tests/unit/NAME.c or tests/cases/NAME.sh
#                             (unit/NAME, cases/NAME where both exist),
#                             the quickest that catches it first
#   # why: one line           the bug, and what the tests should see
#   # env: VAR=value ...      (optional) for the shell cases: a part of a
#                             long case (PEP_GROW_CASES=16-*, say)
# If the named cases do not catch a realistic mutant, that is a hole in
# the tests: strengthen the test (a real assertion of a real outcome),
# never the mutant. Write one: break the code, `git diff >
# tests/mutants/NAME.patch`, add the two lines, `git checkout` the file,
# and `make mutate MUTANTS=NAME`.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
M=$TOP/build/mutate
TREE=$M/tree
LOGS=$M/logs
LIMIT=${PEP_MUTATE_TIMEOUT:-300}
# The scratch tree has no ../shared beside it (tests/lib.sh looks there
# for the Alpine minirootfs first): name this tree's.
FIXTURES=${PEP_FIXTURES:-$TOP/../shared/alpine}
killed=0
survived=0
errors=0
bad=""

now() { date +%s; }

# scratch: a fresh copy of the tree's files (tracked and new, not
# ignored) and of build/ (but build/mutate and the fixture cache, which
# the cases share through PEP_CACHE), mtimes kept: make then sees the
# copy as built.
scratch() {
	# --one-file-system: never descend into a mount left under it.
	rm -rf --one-file-system "$M"
	mkdir -p "$TREE/build" "$LOGS" || exit 1
	git ls-files -co --exclude-standard | while IFS= read -r f; do
		[ -f "$f" ] && printf '%s\n' "$f"
	done | cpio -pdm --quiet "$TREE" || exit 1
	(cd build && find . -path ./mutate -prune -o -path ./fixtures -prune \
	    -o -print | cpio -pdm --quiet "$TREE/build") || exit 1
	if ! make -C "$TREE" all >"$LOGS/build.log" 2>&1; then
		echo "mutate: the scratch copy does not build:"
		tail -20 "$LOGS/build.log"; exit 1
	fi
}

# field FILE NAME: the value of the "# NAME:" header line.
field() { sed -n "s/^# $2: *//p" "$1" | head -1; }

# run_case LOG NAME: run one case on the scratch build; 0 if it passed,
# 1 if it failed (stopped at its first "not ok"), 2 on the time limit.
run_case() {
	_log=$1 _c=${2#*/}
	if [ "$2" != "cases/$_c" ] && [ -f "$TREE/tests/unit/$_c.c" ]; then
		set -- "$TREE/build/tests/$_c" "$TREE/tests/data"
	elif [ "$2" != "unit/$_c" ] && [ -f "$TREE/tests/cases/$_c.sh" ]; then
		set -f
		# shellcheck disable=SC2086 # VAR=value words
		set -- env $_env BUILD=build PEP_BAKE="$TREE/build/pep-bake" \
		    PEP_CACHE="$TOP/build/fixtures" PEP_FIXTURES="$FIXTURES" \
		    PEP_GUEST_DIR="$TREE/build/guest" \
		    sh "$TREE/tests/cases/$_c.sh"
		set +f
	else
		echo "no such case: $_c" >"$_log"; return 3
	fi
	_tmp=$(mktemp -d /tmp/pep-mutate.XXXXXX)
	rm -f "$_log.pid" "$_log.rc"
	# A session of its own: the case, its daemons and QEMUs, stop as one.
	PEP_TMP=$_tmp setsid sh -c 'echo $$ >"$0.pid"; "$@" >"$0" 2>&1
	    echo $? >"$0.rc"' "$_log" "$@" </dev/null &
	_bg=$!
	_t0=$(now) _st=0
	while [ ! -f "$_log.rc" ]; do
		if grep -aq '^not ok' "$_log" 2>/dev/null; then _st=1
		elif [ $(($(now) - _t0)) -ge "$LIMIT" ]; then _st=2
		else sleep 0.3; continue; fi
		_pg=$(cat "$_log.pid" 2>/dev/null)
		# (no "--": dash's kill takes it for a pid, and kills nothing)
		[ -n "$_pg" ] && kill -TERM "-$_pg" 2>/dev/null
		sleep 1
		[ -n "$_pg" ] && kill -KILL "-$_pg" 2>/dev/null
		break
	done
	wait "$_bg" 2>/dev/null
	rm -rf --one-file-system "$_tmp"
	[ "$_st" -ne 0 ] && return "$_st"
	[ "$(cat "$_log.rc")" = 0 ] && ! grep -aq '^not ok' "$_log" &&
	    return 0
	return 1
}

# mutant FILE: apply, build, run the cases, revert.
mutant() {
	_f=$1 _n=$(basename "$1" .patch)
	_cases=$(field "$_f" cases) _env=$(field "$_f" env)
	if [ -z "$_cases" ] || [ -z "$(field "$_f" why)" ]; then
		echo "ERROR    $_n: no '# cases:' or '# why:' line"
		errors=$((errors + 1)) bad="$bad $_n"; return
	fi
	if ! patch -d "$TREE" -p1 -F0 -s -f --no-backup-if-mismatch \
	    <"$_f" >"$LOGS/$_n.patch.log" 2>&1; then
		echo "ERROR    $_n: tests/mutants/$_n.patch does not apply:" \
		    "$(head -1 "$LOGS/$_n.patch.log")"
		patch -d "$TREE" -p1 -R -F0 -s -f --no-backup-if-mismatch \
		    <"$_f" >/dev/null 2>&1
		errors=$((errors + 1)) bad="$bad $_n"; return
	fi
	_t0=$(now)
	if ! make -C "$TREE" all >"$LOGS/$_n.build.log" 2>&1; then
		echo "ERROR    $_n: does not build (see" \
		    "build/mutate/logs/$_n.build.log)"
		errors=$((errors + 1)) bad="$bad $_n"
	else
		_by="" _err=""
		for _c in $_cases; do
			run_case "$LOGS/$_n.$(echo "$_c" | tr / -).log" "$_c"
			case $? in
			0) continue ;;
			1) _by=$_c ;;
			2) _by="$_c (timeout)" ;;
			*) _err=$_c ;;
			esac
			break
		done
		_s=$(($(now) - _t0))
		if [ -n "$_err" ]; then
			echo "ERROR    $_n: no case $_err"
			errors=$((errors + 1)) bad="$bad $_n"
		elif [ -n "$_by" ]; then
			killed=$((killed + 1))
			printf 'killed   %-28s in %4d s by %s: %.60s\n' "$_n" \
			    "$_s" "$_by" "$(grep -am1 '^not ok' "$_log" |
			    cut -c8-)"
		else
			survived=$((survived + 1)) bad="$bad $_n"
			printf 'SURVIVED %-28s in %4d s (%s)\n' "$_n" "$_s" \
			    "$_cases"
		fi
	fi
	# Back to the tree as it was; the next make rebuilds what it touched
	# (patch leaves the files newer than their objects).
	patch -d "$TREE" -p1 -R -F0 -s -f --no-backup-if-mismatch <"$_f" \
	    >/dev/null 2>&1 || { echo "mutate: cannot revert $_n"; exit 1; }
}

list=""
if [ -n "${PEP_MUTANTS:-}" ]; then
	for _n in $(echo "$PEP_MUTANTS" | tr ',' ' '); do
		_p=tests/mutants/${_n%.patch}.patch
		[ -f "$_p" ] || { echo "mutate: no $_p"; exit 1; }
		list="$list $_p"
	done
else
	list=$(ls tests/mutants/*.patch)
fi
start=$(now)
scratch
for f in $list; do mutant "$f"; done
[ -n "$bad" ] && echo "not killed:$bad"
echo "mutate: $killed killed, $survived survived, $errors errors" \
    "in $(($(now) - start)) s"
[ "$survived" -eq 0 ] && [ "$errors" -eq 0 ]
