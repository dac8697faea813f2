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

reasons := licence.reasons if {
	count(licence.reasons) > 0
} else := array.concat(array.concat(resolve.reasons, global.reasons), local.refusals)

warnings := [] if {
	count(licence.reasons) > 0
} else := local.warnings

status := "accepted" if {
	count(reasons) == 0
} else := "refused"
