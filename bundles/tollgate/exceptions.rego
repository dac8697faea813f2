# METADATA
# title: exceptions (seed 000)
# description: |
#   Approved exceptions waive reasons. Go injects, as input.context.exceptions,
#   the approved exceptions of the request's project:
#     [{"id", "kind": "waiver"|"break_glass", "code", "finding_id"?,
#       "project", "pipeline"?, "environment"?, "branch"? (a glob),
#       "expires_ns"}]
#   This module decides which apply: the scope must match the request, and
#   the evaluation time must be before the expiry, whatever the state Go
#   sent (an expired exception never waives anything, even if the expiry
#   worker is late). Without finding_id an exception waives every reason
#   with its code; with one, it takes that finding out of the security
#   gates (risk.rego). A break-glass waives only freezes, windows and
#   weekends. Licence, resolution and policy errors are never waived.
package tollgate.exceptions

import data.tollgate.resolve

never_waived := {"licence_invalid", "licence_expired", "project_not_managed", "policy_error"}

break_glass_codes := {"freeze_active", "time_window_violation", "weekend_violation"}

# The exceptions that apply to this request now.
applicable := [e |
	some e in object.get(input.context, "exceptions", [])
	input.context.now_ns < e.expires_ns
	e.project == resolve.project_name
	object.get(e, "pipeline", input.request.pipeline) == input.request.pipeline
	object.get(e, "environment", input.request.metadata.environment) == input.request.metadata.environment
	glob.match(object.get(e, "branch", "**"), ["/"], input.request.branch)
	not e.code in never_waived
	allowed_kind(e)
]

allowed_kind(e) if e.kind == "waiver"

allowed_kind(e) if {
	e.kind == "break_glass"
	e.code in break_glass_codes
}

# The ID of the first applicable exception that waives reason, if any.
waiver(reason) := ids[0] if {
	ids := [e.id |
		some e in applicable
		not e.finding_id
		e.code == reason.code
	]
	count(ids) > 0
}

# finding id -> exception id, for the findings waived for code.
waived_findings(code) := {e.finding_id: e.id |
	some e in applicable
	e.code == code
	e.finding_id
}

# Splits reasons into those that stand and those waived (with the
# exception's ID).
standing(reasons) := [r |
	some r in reasons
	not waiver(r)
]

waived(reasons) := [object.union(r, {"exception_id": waiver(r)}) |
	some r in reasons
	waiver(r)
]
