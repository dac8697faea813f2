# METADATA
# title: tollgate decision
# description: |
#   The entrypoint, data.tollgate.decision. The steps run in the order of the
#   contract: licence, project resolution, global rules, local rules. Every
#   reason that applies is reported, in that order; an invalid licence stops
#   evaluation and is the only reason.
#
#   Input (see README, "The input document"):
#     input.request  the CI payload {repository, branch, pipeline, metadata}
#     input.context  what Go injects: now_ns, licence, cooldown
package tollgate

import data.tollgate.global
import data.tollgate.licence
import data.tollgate.local
import data.tollgate.resolve

decision := {
	"status": status,
	"reasons": reasons,
	"warnings": warnings,
	"project": resolve.project_name,
	"pipeline": input.request.pipeline,
	"branch": input.request.branch,
	"environment": input.request.metadata.environment,
}

# The usual case comes first in each else chain: OPA evaluates the branches
# in order. The last branch keeps its condition, so that an undefined value
# above (a broken rule) leaves the decision undefined: policy_error.
reasons := array.concat(array.concat(resolve.reasons, global.reasons), local.refusals) if {
	count(licence.reasons) == 0
} else := licence.reasons if {
	count(licence.reasons) > 0
}

warnings := local.warnings if {
	count(licence.reasons) == 0
} else := [] if {
	count(licence.reasons) > 0
}

status := "accepted" if {
	count(reasons) == 0
} else := "refused"
