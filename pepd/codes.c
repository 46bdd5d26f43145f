/* The wire protocol's refusal codes, by name (PROTOCOL.md). */
#include "pepd.h"

static const char *const pep_code_names[] = {
	[PEP_OK] = "",
	[PEP_DENIED_BY_POLICY] = "denied_by_policy",
	[PEP_SSRF_BLOCKED] = "ssrf_blocked",
	[PEP_BAD_REQUEST] = "bad_request",
	[PEP_UPSTREAM_ERROR] = "upstream_error",
	[PEP_TIMEOUT] = "timeout",
	[PEP_RESPONSE_TOO_LARGE] = "response_too_large",
	[PEP_OVERLOADED] = "overloaded",
	[PEP_POLICY_UNAVAILABLE] = "policy_unavailable",
	[PEP_AUDIT_UNAVAILABLE] = "audit_unavailable",
};

const char *
pep_code_name(enum pep_code c)
{
	if ((unsigned int)c >= sizeof(pep_code_names) /
	    sizeof(pep_code_names[0]))
		return "upstream_error";
	return pep_code_names[c];
}
