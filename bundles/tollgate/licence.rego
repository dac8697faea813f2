# METADATA
# title: step 1, licence
# description: |
#   The licence adapter verifies the RS256/PS256 signature, the edition and
#   the validity period at the evaluation time, and reports
#   input.context.licence.status: "valid", "invalid" or "expired", with a
#   detail. Anything else, or no report at all, is invalid: tollgate fails
#   closed.
package tollgate.licence

status := object.get(input, ["context", "licence", "status"], "missing")

reasons := [] if {
	input.context.licence.status == "valid"
} else := [{
	"code": "licence_expired",
	"params": {"detail": detail},
}] if {
	status == "expired"
} else := [{
	"code": "licence_invalid",
	"params": {"detail": detail},
}]

detail := object.get(input, ["context", "licence", "detail"], "the licence could not be checked")
