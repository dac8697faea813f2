# METADATA
# title: tollgate decision
# description: |
#   The entrypoint, data.tollgate.decision. The steps run in the order of the
#   contract: licence, project resolution, global rules, incident mode, local
#   rules. Every reason that applies is reported, in that order; an invalid
#   licence stops evaluation and is the only reason. A reason an approved
#   exception waives moves to "waived", with the exception's ID; the
#   decision is accepted when no reason stands.
#
#   Input (see README, "The input document"):
#     input.request  the CI payload {repository, branch, pipeline, metadata}
#     input.context  what Go injects: now_ns, licence, cooldown, exceptions,
#                    freezes, incident, baseline
package tollgate

import data.tollgate.exceptions
import data.tollgate.global
import data.tollgate.incident
import data.tollgate.licence
import data.tollgate.local
import data.tollgate.resolve
import data.tollgate.risk

decision := object.union(
	{
		"status": status,
		"reasons": reasons,
		"warnings": warnings,
		"waived": waived,
		"suppressed": risk.suppressed,
		"project": resolve.project_name,
		"pipeline": input.request.pipeline,
		"branch": input.request.branch,
		"environment": input.request.metadata.environment,
	},
	incident_id,
)

# The usual case comes first in each else chain: OPA evaluates the branches
# in order. The last branch keeps its condition, so that an undefined value
# above (a broken rule) leaves the decision undefined: policy_error.
found := array.concat(
	array.concat(resolve.reasons, global.reasons),
	array.concat(incident.reasons, local.refusals),
) if {
	count(licence.reasons) == 0
} else := licence.reasons if {
	count(licence.reasons) > 0
}

reasons := exceptions.standing(found)

# Waived reasons, then the findings the security gates left out for an
# exception.
waived := array.concat(exceptions.waived(found), local.waived)

incident_id := {"incident_id": incident.active.id} if {
	incident.active
} else := {}

warnings := local.warnings if {
	count(licence.reasons) == 0
} else := [] if {
	count(licence.reasons) > 0
}

status := "accepted" if {
	count(reasons) == 0
} else := "refused"
