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

# --- freezes ------------------------------------------------------------------
#
# A freeze is one-off ("start" <= now < "end", RFC 3339 instants) or recurs
# in the policy's time zone, from the local "start" (inclusive) to the local
# "end" (exclusive, "24:00" for midnight) of the days it names:
#   "weekly":  {"days": ["friday"], "start": "16:00", "end": "24:00"}
#   "monthly": {"days": [1, 31], "start": "00:00", "end": "24:00"}  (a day a month lacks never comes)
#   "yearly":  {"dates": ["12-24", "12-31"], "start": "00:00", "end": "24:00"}
# Local wall-clock times, so a freeze keeps its hours across DST changes.

freeze_reasons := array.concat(scheduled_freeze_reasons, emergency_freeze_reasons)

scheduled_freeze_reasons := [reason |
	some freeze in object.get(config.global_policy, "freezes", [])
	input.request.metadata.environment in object.get(freeze, "environments", [input.request.metadata.environment])
	freeze_active(freeze)
	reason := {
		"code": "freeze_active",
		"message": sprintf("Freeze %q is active %s: %s.", [
			object.get(freeze, "id", "unnamed"), freeze_period(freeze),
			object.get(freeze, "reason", "no reason given"),
		]),
	}
]

# Emergency freezes, declared through the API (input.context.freezes,
# injected by Go: [{"id", "reason", "environments"?, "expires_ns"}]), end at
# expires_ns whatever the expiry worker does.
emergency_freeze_reasons := [reason |
	some freeze in object.get(input.context, "freezes", [])
	input.request.metadata.environment in object.get(freeze, "environments", [input.request.metadata.environment])
	input.context.now_ns < freeze.expires_ns
	reason := {
		"code": "freeze_active",
		"message": sprintf("Emergency freeze %q is active until %s: %s.", [
			freeze.id, time.format([freeze.expires_ns, timezone, "2006-01-02T15:04:05Z07:00"]), freeze.reason,
		]),
	}
]

freeze_active(freeze) if {
	time.parse_rfc3339_ns(freeze.start) <= input.context.now_ns
	input.context.now_ns < time.parse_rfc3339_ns(freeze.end)
}

freeze_active(freeze) if {
	local_day in freeze.weekly.days
	in_local_range(freeze.weekly)
}

freeze_active(freeze) if {
	local_date[2] in freeze.monthly.days
	in_local_range(freeze.monthly)
}

freeze_active(freeze) if {
	sprintf("%02d-%02d", [local_date[1], local_date[2]]) in freeze.yearly.dates
	in_local_range(freeze.yearly)
}

in_local_range(r) if {
	r.start <= local_time
	local_time < r.end
}

freeze_period(freeze) := sprintf("until %s", [freeze.end]) if {
	freeze.end
} else := sprintf("every %s %s-%s (%s)", [concat(",", freeze.weekly.days), freeze.weekly.start, freeze.weekly.end, timezone]) if {
	freeze.weekly
} else := sprintf("on days %s of every month %s-%s (%s)", [concat(",", [sprintf("%d", [d]) | some d in freeze.monthly.days]), freeze.monthly.start, freeze.monthly.end, timezone]) if {
	freeze.monthly
} else := sprintf("every year on %s %s-%s (%s)", [concat(",", freeze.yearly.dates), freeze.yearly.start, freeze.yearly.end, timezone])

# --- time windows -----------------------------------------------------------

timezone := object.get(config.global_policy, "timezone", "UTC")

# The local weekday ("monday"), date ([year, month, day]) and time ("HH:MM")
# of the evaluation.
local_day := lower(time.weekday([input.context.now_ns, timezone]))

local_date := time.date([input.context.now_ns, timezone])

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
