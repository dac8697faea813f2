# METADATA
# title: step 3, global rules
# description: |
#   Rules from global_policy for the request's environment, in this order:
#   freezes (freeze_active), time windows (time_window_violation) and
#   weekends (weekend_violation). Times are read in global_policy.timezone.
package tollgate.global

import data.tollgate.config

policy := config.global_policy

environment := input.request.metadata.environment

now := input.context.now_ns

timezone := object.get(policy, "timezone", "UTC")

reasons := array.concat(array.concat(freeze_reasons, window_reasons), weekend_reasons)

# A rule applies to the environments it lists; listing none means all.
applies(rule) if count(object.get(rule, "environments", [])) == 0

applies(rule) if environment in rule.environments

# --- freezes: start <= now < end --------------------------------------------

active_freezes contains freeze if {
	some freeze in object.get(policy, "freezes", [])
	applies(freeze)
	time.parse_rfc3339_ns(freeze.start) <= now
	now < time.parse_rfc3339_ns(freeze.end)
}

freeze_reasons := [reason |
	some freeze in active_freezes
	reason := {
		"code": "freeze_active",
		"message": sprintf("Freeze %q is active until %s: %s.", [
			object.get(freeze, "id", "unnamed"), freeze.end,
			object.get(freeze, "reason", "no reason given"),
		]),
	}
]

# --- time windows -----------------------------------------------------------

local_clock := time.clock([now, timezone])

local_day := lower(time.weekday([now, timezone]))

local_time := sprintf("%02d:%02d", [local_clock[0], local_clock[1]])

windows := [window |
	some window in object.get(policy, "time_windows", [])
	applies(window)
]

in_window if {
	some window in windows
	local_day in window.days
	window.start <= local_time
	local_time < window.end
}

window_reasons := [] if {
	count(windows) == 0
} else := [] if {
	in_window
} else := [{
	"code": "time_window_violation",
	"message": sprintf("%s %s (%s) is outside the deployment windows for %s: %s.", [
		local_day, local_time, timezone, environment,
		concat("; ", [describe(window) | some window in windows]),
	]),
}]

describe(window) := sprintf("%s %s-%s", [concat(",", window.days), window.start, window.end])

# --- weekends ---------------------------------------------------------------

weekend_reasons := [{
	"code": "weekend_violation",
	"message": sprintf("Deployments to %s are not allowed on weekends (it is %s in %s).", [environment, local_day, timezone]),
}] if {
	not policy.weekends.allowed
	applies(policy.weekends)
	local_day in {"saturday", "sunday"}
} else := []
