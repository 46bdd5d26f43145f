#!/bin/sh
# The intercept runner's own modules under node's test runner (TAP):
# configuration, pepd framing and the connection pool against a fake
# pepd, refusal pages, schemes, and the CORS preflight the runner makes
# for Firefox (guest-init/intercept/test/*.test.js). No browser.
. "$(dirname "$0")/../lib.sh"
case $BUILD in *asan*)
	skip "JavaScript only: run once, in the plain build's pass"
	done_testing; exit 0 ;;
esac
if ! command -v node >/dev/null; then
	skip "no node (make deps)"; done_testing; exit 0
fi
exec node --test --test-reporter=tap "$TOP/guest-init/intercept/test/"
