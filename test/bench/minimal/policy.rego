# METADATA
# title: a minimal policy for tollgate's contract, as a stock OPA user writes it
# description: |
#   The load harness's baseline (test/bench, "stock opa, minimal policy"):
#   the decisions of tollgate's shipped bundle on the harness's
#   configuration, written by hand for `opa run --server` with no history
#   and no ledger. What tollgate computes itself comes in the input:
#     input.request           the CI payload {repository, branch, pipeline, metadata}
#     input.licence           the licence check's verdict: "valid", "expired" or anything else (invalid)
#     input.last_accepted_ns  when this project, pipeline and branch was last accepted; absent if never
#   The clock is OPA's (time.now_ns). Data, written by the harness from the
#   same configuration as tollgate's bundle:
#     data.config.global_policy  tollgate's global policy (its file, as is)
#     data.config.repositories   repository -> project: the registry keyed for one lookup
#   Covered: licence, project resolution, one-off freezes, time windows,
#   weekends, branches, pipeline types per environment, cooldowns. Not
#   covered (the harness's configuration uses none): recurring and
#   emergency freezes, incidents, exceptions, scans, project modules, warn
#   mode, clears_at. Reasons are a set: their order is not tollgate's.
package minimal

global := data.config.global_policy

env := input.request.metadata.environment

licence := object.get(input, "licence", "missing")

project := data.config.repositories[input.request.repository]

pipeline := project.pipelines[input.request.pipeline]

now := time.now_ns()

tz := object.get(global, "timezone", "UTC")

day := lower(time.weekday([now, tz]))

clock := sprintf("%02d:%02d", [h, m]) if [h, m, _] := time.clock([now, tz])

# An invalid licence is the only reason; a request without an environment
# is refused (tollgate answers it 400) rather than let through by rules that
# cannot match it.
decision := {"status": "refused", "reasons": [licence_refusal]} if {
	licence != "valid"
} else := {"status": "accepted", "reasons": []} if {
	is_string(env)
	count(refusals) == 0
} else := {"status": "refused", "reasons": refusals}

licence_refusal := {"code": "licence_expired", "message": "The licence is expired."} if {
	licence == "expired"
} else := {"code": "licence_invalid", "message": "The licence is invalid."}

refusals contains {"code": "project_not_managed", "message": sprintf("%s, pipeline %s, is not managed.", [input.request.repository, input.request.pipeline])} if {
	not pipeline
	object.get(global, "unmanaged_projects", "refuse") != "accept"
}

refusals contains {"code": "freeze_active", "message": sprintf("Freeze %q is active until %s.", [freeze.id, freeze.end])} if {
	some freeze in global.freezes
	env in object.get(freeze, "environments", [env])
	time.parse_rfc3339_ns(freeze.start) <= now
	now < time.parse_rfc3339_ns(freeze.end)
}

refusals contains {"code": "time_window_violation", "message": sprintf("%s %s (%s) is outside the windows of %s.", [day, clock, tz, env])} if {
	windows := [w | some w in global.time_windows; env in object.get(w, "environments", [env])]
	count(windows) > 0
	count([w | some w in windows; day in w.days; w.start <= clock; clock < w.end]) == 0
}

refusals contains {"code": "weekend_violation", "message": sprintf("No deployments to %s on %s.", [env, day])} if {
	not global.weekends.allowed
	env in object.get(global.weekends, "environments", [env])
	day in {"saturday", "sunday"}
}

# A pipeline's branches replace its project's; none listed: any branch.
refusals contains {"code": "branch_not_allowed", "message": sprintf("Branch %q may not run %s.", [input.request.branch, input.request.pipeline])} if {
	allowed := object.get(pipeline, "allowed_branches", object.get(project, "allowed_branches", ["**"]))
	count([p | some p in allowed; glob.match(p, ["/"], input.request.branch)]) == 0
}

# A project without environments allows every pipeline type everywhere.
refusals contains {"code": "pipeline_not_allowed", "message": sprintf("Pipelines of type %q may not run in %s.", [type, env])} if {
	type := pipeline.type
	not type in object.get(project.environments, [env, "pipeline_types"], [])
}

refusals contains {"code": "cooldown", "message": sprintf("Cooldown of %s on %s until %s.", [input.request.pipeline, input.request.branch, time.format([until, tz])])} if {
	pipeline.cooldown_minutes > 0
	until := input.last_accepted_ns + (pipeline.cooldown_minutes * 60000000000)
	now < until
}
