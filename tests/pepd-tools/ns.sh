# The opening of every pepd case (tests/cases/pepd_*.sh), sourced as its
# first command: . "$(dirname "$0")/../pepd-tools/ns.sh"
# It re-execs the case under `unshare -m -n` (before tests/lib.sh, whose
# temp dir and EXIT trap an exec would leave behind), then, inside, sources
# tests/lib.sh and pepd-lib.sh and sets the namespace up (pepd_ns_setup).
# Where unshare does not work the case is one SKIP and ends here.
if [ -z "${PEPD_NS:-}" ] && unshare -m -n true 2>/dev/null; then
	PEPD_NS=1 exec unshare -m -n sh "$0" "$@"
fi
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/pepd-tools/pepd-lib.sh"
if [ -z "${PEPD_NS:-}" ]; then
	skip "needs unshare -m -n"
	done_testing
	exit
fi
pepd_ns_setup
