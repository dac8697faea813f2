# METADATA
# title: step 4, local rules
# description: |
#   Rules of the resolved project and pipeline, in this order: allowed
#   branches (branch_not_allowed), pipeline type per environment
#   (pipeline_not_allowed), cooldown (cooldown), then the reasons of the
#   project's own module, package tollgate.projects[<project name>], if any.
#   A project with "enforcement": "warn" gets all of them as warnings.
package tollgate.local

import data.tollgate.global
import data.tollgate.resolve

project := resolve.project

pipeline := resolve.pipeline

environment := input.request.metadata.environment

branch := input.request.branch

# Unmanaged requests have no local rules. Otherwise the value is computed in
# the final branch, so a rule that is undefined (a broken configuration, such
# as a pipeline without "type") leaves findings undefined and the decision
# fails closed (policy_error) instead of silently dropping the local rules.
findings := [] if {
	not resolve.managed
} else := array.concat(
	array.concat(branch_reasons, type_reasons),
	array.concat(cooldown_reasons, project_reasons),
)

warn_mode if project.enforcement == "warn"

refusals := [] if {
	warn_mode
} else := findings

warnings := findings if {
	warn_mode
} else := []

# --- branches: the pipeline's list replaces the project's; none = any -------

allowed_branches := pipeline.allowed_branches

allowed_branches := project.allowed_branches if not pipeline.allowed_branches

branch_allowed if not allowed_branches

branch_allowed if {
	some pattern in allowed_branches
	glob.match(pattern, ["/"], branch)
}

branch_reasons := [] if {
	branch_allowed
} else := [{
	"code": "branch_not_allowed",
	"message": sprintf("Branch %q may not run pipeline %q; allowed: %s.", [branch, input.request.pipeline, concat(", ", allowed_branches)]),
}]

# --- pipeline type per environment ------------------------------------------

type_reasons := [] if {
	not project.environments
} else := [] if {
	pipeline.type in project.environments[environment].pipeline_types
} else := [{
	"code": "pipeline_not_allowed",
	"message": sprintf("Project %q does not declare environment %q.", [resolve.project_name, environment]),
}] if {
	not project.environments[environment]
} else := [{
	"code": "pipeline_not_allowed",
	"message": sprintf("Pipelines of type %q may not run in %s; allowed: %s.", [
		pipeline.type, environment,
		concat(", ", project.environments[environment].pipeline_types),
	]),
}]

# --- cooldown per project + pipeline + branch -------------------------------

cooldown_reasons := [{
	"code": "cooldown",
	"message": sprintf("Cooldown active for pipeline %q on branch %q: last accepted at %s, next run allowed from %s.", [
		input.request.pipeline, branch,
		time.format([last_accepted, global.timezone]),
		time.format([cooldown_until, global.timezone]),
	]),
}] if {
	input.context.now_ns < cooldown_until
} else := []

last_accepted := input.context.cooldown.last_accepted_ns

cooldown_until := last_accepted + (pipeline.cooldown_minutes * 60000000000) if pipeline.cooldown_minutes > 0

# --- the project's own module -----------------------------------------------

project_reasons := [reason | some reason in data.tollgate.projects[resolve.project_name].reasons]
