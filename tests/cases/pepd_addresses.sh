#!/bin/sh
# The connect-time SSRF check against addresses a private network namespace
# really serves (issue 13, defect 11): the rest of 2001::/23 (IANA: not
# globally reachable) and the host's own interface addresses, read at
# start and followed through netlink, are refused unless allow_private
# names them.
. "$(dirname "$0")/../pepd-tools/ns.sh"
# No dummy interfaces here: extra addresses on lo are local all the same.
ip addr add 2001:1::4/128 dev lo nodad
ip addr add 2001:100::1/128 dev lo nodad
ip addr add 93.184.216.34/32 dev lo

origin_start HTTP --host ::
P=$HTTP_PORT
AUDIT=$PEP_TMP/audit.jsonl
mkcfg() {	# allow_private-json
	cat >"$PEP_TMP/pepd.json" <<-EOF
	{
	  "audit": {"path": "$AUDIT", "fsync": "none"},
	  "policy": {"allow": ["2001:1::4", "2001:100::1", "93.184.216.34",
	                       "93.184.216.35", "origin.test"],
	             "allow_private": $1}
	}
	EOF
}
mkcfg '["127.0.0.0/8"]'
pepd_start "$PEP_TMP/pepd.json"
expect_eq "sanity: origin.test (127.0.0.1, allow_private) is fetched" \
    "$(code_of -u "http://origin.test:$P/")" "status 200"
expect_eq "2001:1::4 (2001::/23, not globally reachable): ssrf_blocked" \
    "$(code_of -u "http://[2001:1::4]:$P/")" "ssrf_blocked"
expect_eq "...as reserved" "$(audit_last .message)" \
    "address 2001:1::4 is reserved"
expect_eq "2001:100::1 (2001::/23): ssrf_blocked" \
    "$(code_of -u "http://[2001:100::1]:$P/")" "ssrf_blocked"
expect_eq "an own interface address (93.184.216.34 on lo): ssrf_blocked" \
    "$(code_of -u "http://93.184.216.34:$P/")" "ssrf_blocked"
expect_eq "...as own-address" "$(audit_last .message)" \
    "address 93.184.216.34 is own-address"
ip addr add 93.184.216.35/32 dev lo
i=0
while [ $i -lt 50 ] &&
    [ "$(code_of -u "http://93.184.216.35:$P/")" != ssrf_blocked ]; do
	sleep 0.1; i=$((i + 1))
done
expect_eq "an address added after start (netlink): ssrf_blocked" \
    "$(code_of -u "http://93.184.216.35:$P/")" "ssrf_blocked"
mkcfg '["127.0.0.0/8", "93.184.216.34/32"]'
pepd_signal HUP reload
expect_eq "allow_private names the own address: fetched" \
    "$(code_of -u "http://93.184.216.34:$P/")" "status 200"
pepd_stop
done_testing
