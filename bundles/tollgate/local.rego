# METADATA
# title: step 4, local rules
# description: |
#   Rules of the resolved project and pipeline, in this order: allowed
#   branches (branch_not_allowed), pipeline type per environment
#   (pipeline_not_allowed), cooldown (cooldown), the security gates on the
#   release's scan (risk.rego), then the reasons of the project's own
#   module, package tollgate.projects[<project name>], if any.
#   A project with "enforcement": "warn" gets all of them as warnings.
package tollgate.local

import data.tollgate.incident
import data.tollgate.resolve
import data.tollgate.risk

# Unmanaged requests have no local rules. Each else branch keeps its
# condition, so that a rule that is undefined (a broken configuration, such
# as a pipeline without "type") leaves findings undefined and the decision
# fails closed (policy_error) instead of silently dropping the local rules.
# The usual case comes first: OPA evaluates the branches in order.
findings := array.concat(
	array.concat(branch_reasons, type_reasons),
	array.concat(array.concat(cooldown_reasons, risk.reasons), project_reasons),
) if {
	resolve.resolved
} else := [] if {
	not resolve.resolved
}

enforcement := object.get(resolve.resolved[1], "enforcement", "block") if {
	resolve.resolved
} else := "block"

refusals := findings if {
	enforcement != "warn"
} else := []

warnings := [] if {
	enforcement != "warn"
} else := findings

# Findings the security gates left out because an exception waives them.
waived := risk.waived if {
	resolve.managed
} else := [] if {
	not resolve.managed
}

# --- branches: the pipeline's list replaces the project's; none = any -------

branch_reasons := [] if {
	allowed := object.get(resolve.resolved[2], "allowed_branches", object.get(resolve.resolved[1], "allowed_branches", ["**"]))
	some pattern in allowed
	glob.match(pattern, ["/"], input.request.branch)
} else := [{
	"code": "branch_not_allowed",
	"params": {
		"branch": input.request.branch, "pipeline": input.request.pipeline,
		"allowed": concat(", ", object.get(resolve.resolved[2], "allowed_branches", resolve.resolved[1].allowed_branches)),
	},
}]

# --- pipeline type per environment ------------------------------------------

type_reasons := [] if {
	resolve.resolved[2].type in resolve.resolved[1].environments[input.request.metadata.environment].pipeline_types
} else := [] if {
	not resolve.resolved[1].environments
} else := [{
	"code": "pipeline_not_allowed",
	"key": "pipeline_not_allowed.environment",
	"params": {"project": resolve.project_name, "environment": input.request.metadata.environment},
}] if {
	not resolve.resolved[1].environments[input.request.metadata.environment]
} else := [{
	"code": "pipeline_not_allowed",
	"params": {
		"type": resolve.resolved[2].type, "environment": input.request.metadata.environment,
		"allowed": concat(", ", resolve.resolved[1].environments[input.request.metadata.environment].pipeline_types),
	},
}]

# --- cooldown per project + pipeline + branch -------------------------------

cooldown_reasons := [] if {
	object.get(input, ["context", "cooldown", "last_accepted_ns"], null) == null
} else := [{
	"code": "cooldown",
	"params": {
		"pipeline": input.request.pipeline, "branch": input.request.branch,
		"last": {"time_ns": last}, "until": {"time_ns": until},
	},
}] if {
	last := input.context.cooldown.last_accepted_ns
	until := cooldown_ends_ns
	input.context.now_ns < until
	not incident.relaxes_cooldown
} else := []

cooldown_ends_ns := input.context.cooldown.last_accepted_ns + (minutes * 60000000000) if {
	minutes := object.get(resolve.resolved[2], "cooldown_minutes", 0)
	minutes > 0
}

# --- when the reasons can clear (see global.clears_at) ----------------------
#
# The cooldown clears when it ends. A project's module gives its own
# reasons that time can clear the same way, as clears_at: an object from
# reason code to the instant (ns) it can clear, or null if unknown; only the
# codes of reasons the module gives count. In warn mode nothing refuses, so
# nothing needs to clear.

clears_at := object.union(cooldown_clears, project_clears) if {
	resolve.resolved
	enforcement != "warn"
} else := {}

cooldown_clears := {"cooldown": cooldown_ends_ns} if {
	count(cooldown_reasons) > 0
} else := {}

project_clears := {code: at |
	some code, at in data.tollgate.projects[resolve.project_name].clears_at
	some reason in project_reasons
	reason.code == code
}

# --- the project's own module -----------------------------------------------

project_reasons := [reason | some reason in data.tollgate.projects[resolve.project_name].reasons]
