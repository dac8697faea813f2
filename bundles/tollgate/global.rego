# METADATA
# title: step 3, global rules
# description: |
#   Rules from global_policy for the request's environment, in this order:
#   freezes (freeze_active), time windows (time_window_violation) and
#   weekends (weekend_violation). Times are read in global_policy.timezone.
#   A rule applies to the environments it lists, or to all if it has no
#   "environments" key. This runs on every decision, so values are computed
#   in rule bodies rather than in many small rules (each rule evaluation has
#   a cost in OPA).
package tollgate.global

import data.tollgate.config

reasons := array.concat(array.concat(freeze_reasons, window_reasons), weekend_reasons)

# --- freezes: start <= now < end --------------------------------------------

freeze_reasons := [reason |
	some freeze in object.get(config.global_policy, "freezes", [])
	input.request.metadata.environment in object.get(freeze, "environments", [input.request.metadata.environment])
	time.parse_rfc3339_ns(freeze.start) <= input.context.now_ns
	input.context.now_ns < time.parse_rfc3339_ns(freeze.end)
	reason := {
		"code": "freeze_active",
		"message": sprintf("Freeze %q is active until %s: %s.", [
			object.get(freeze, "id", "unnamed"), freeze.end,
			object.get(freeze, "reason", "no reason given"),
		]),
	}
]

# --- time windows -----------------------------------------------------------

timezone := object.get(config.global_policy, "timezone", "UTC")

# The local weekday ("monday") and time ("HH:MM") of the evaluation.
local_day := lower(time.weekday([input.context.now_ns, timezone]))

local_time := sprintf("%02d:%02d", [clock[0], clock[1]]) if {
	clock := time.clock([input.context.now_ns, timezone])
}

windows := [window |
	some window in object.get(config.global_policy, "time_windows", [])
	input.request.metadata.environment in object.get(window, "environments", [input.request.metadata.environment])
]

window_reasons := [] if {
	count(windows) == 0
} else := [] if {
	some window in windows
	local_day in window.days
	window.start <= local_time
	local_time < window.end
} else := [{
	"code": "time_window_violation",
	"message": sprintf("%s %s (%s) is outside the deployment windows for %s: %s.", [
		local_day, local_time, timezone, input.request.metadata.environment,
		concat("; ", [sprintf("%s %s-%s", [concat(",", w.days), w.start, w.end]) | some w in windows]),
	]),
}]

# --- weekends ---------------------------------------------------------------

weekend_reasons := [{
	"code": "weekend_violation",
	"message": sprintf("Deployments to %s are not allowed on weekends (it is %s in %s).", [
		input.request.metadata.environment, local_day, timezone,
	]),
}] if {
	weekends := config.global_policy.weekends
	not weekends.allowed
	input.request.metadata.environment in object.get(weekends, "environments", [input.request.metadata.environment])
	local_day in {"saturday", "sunday"}
} else := [] if {
	input.context.now_ns # fail closed: without a clock no global rule holds
}
