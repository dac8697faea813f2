# METADATA
# title: step 3, global rules
# description: |
#   Rules from global_policy for the request's environment, in this order:
#   freezes (freeze_active), time windows (time_window_violation) and
#   weekends (weekend_violation). Times are read in global_policy.timezone.
#   A rule applies to the environments it lists, or to all if it has no
#   "environments" key. clears_at says when each of them can clear.
#   This runs on every decision, so values are computed
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
		"params": {
			"id": object.get(freeze, "id", "unnamed"), "period": freeze_period(freeze),
			"reason": object.get(freeze, "reason", {"term": "no_reason_given"}),
		},
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
		"key": "freeze_active.emergency",
		"params": {"id": freeze.id, "until": {"time_ns": freeze.expires_ns}, "reason": freeze.reason},
	}
]

# The scheduled freezes of the request's environment (scheduled_freeze_reasons
# filters them itself: one rule less on every decision).
freezes := [freeze |
	some freeze in object.get(config.global_policy, "freezes", [])
	input.request.metadata.environment in object.get(freeze, "environments", [input.request.metadata.environment])
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

# The period of a freeze, a part of its message (messages.rego).
freeze_period(freeze) := {"message": {"key": "freeze_active.until", "params": {"end": {"time_ns": time.parse_rfc3339_ns(freeze.end)}}}} if {
	freeze.end
} else := {"message": {"key": "freeze_active.weekly", "params": {
	"days": {"terms": freeze.weekly.days, "sep": ","},
	"start": freeze.weekly.start, "end": freeze.weekly.end, "timezone": timezone,
}}} if {
	freeze.weekly
} else := {"message": {"key": "freeze_active.monthly", "params": {
	"days": concat(",", [sprintf("%d", [d]) | some d in freeze.monthly.days]),
	"start": freeze.monthly.start, "end": freeze.monthly.end, "timezone": timezone,
}}} if {
	freeze.monthly
} else := {"message": {"key": "freeze_active.yearly", "params": {
	"dates": concat(",", freeze.yearly.dates),
	"start": freeze.yearly.start, "end": freeze.yearly.end, "timezone": timezone,
}}}

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
	"params": {
		"day": {"term": local_day}, "time": local_time, "timezone": timezone,
		"environment": input.request.metadata.environment,
		"windows": {"sep": "; ", "messages": [{"key": "time_window_violation.window", "params": {
			"days": {"terms": w.days, "sep": ","}, "start": w.start, "end": w.end,
		}} |
			some w in windows
		]},
	},
}]

# --- weekends ---------------------------------------------------------------

weekend_reasons := [{
	"code": "weekend_violation",
	"params": {"environment": input.request.metadata.environment, "day": {"term": local_day}, "timezone": timezone},
}] if {
	weekends := config.global_policy.weekends
	not weekends.allowed
	input.request.metadata.environment in object.get(weekends, "environments", [input.request.metadata.environment])
	local_day in {"saturday", "sunday"}
} else := [] if {
	input.context.now_ns # fail closed: without a clock no global rule holds
}

# --- when the reasons can clear ---------------------------------------------
#
# clears_at maps the code of each global reason that stands now to the
# earliest instant (ns since the epoch) at which it can clear by the passing
# of time alone, or to null when no end is known (a freeze that recurs every
# day). Each reason is judged on its own: a window that opens inside a
# freeze is the window's opening; tollgate.next_check_ns combines them.
# Local hours are turned into instants in the policy's time zone
# (local_instant), never by adding hours to an instant, so that they hold
# across DST changes.

clears_at["freeze_active"] := freeze_clears_ns if count(freeze_reasons) > 0

clears_at["time_window_violation"] := window_opens_ns if count(window_reasons) > 0

clears_at["weekend_violation"] := weekend_clears_ns if count(weekend_reasons) > 0

day_ns := 86400000000000

minute_ns := 60000000000

wall_layout := "2006-01-02T15:04:05"

# The wall clock of instant t in the policy's time zone, as the nanoseconds
# that reading would be in UTC (to the second). Days and minutes add to a
# wall reading exactly: UTC has no DST.
wall(t) := time.parse_ns(wall_layout, time.format([t, timezone, wall_layout])) if {
	# Undefined, never an error, within a day of the ends of the int64
	# nanoseconds Rego counts time in: what lies beyond has no known time.
	-9223286036854775807 < t
	t < 9223286036854775807
}

# How far the time zone is ahead of UTC at instant t.
offset(t) := wall(t) - (t - (t % 1000000000))

# The first instant at which the wall clock reads w or later: the usual
# case (no offset change within a day of w) first; when the clocks go back,
# the first of the two instants that read w; when they go forward past w,
# the end of the gap, to the minute.
local_instant(w) := w - before if {
	before := offset(w - day_ns)
	offset(w + day_ns) == before
} else := min(instants) if {
	instants := {t |
		some off in {offset(w - day_ns), offset(w + day_ns)}
		t := w - off
		wall(t) == w
	}
	count(instants) > 0
} else := min({t |
	offsets := {offset(w - day_ns), offset(w + day_ns)}
	some t in numbers.range_step(w - max(offsets), w - min(offsets), minute_ns)
	wall(t) >= w
})

# The wall reading of now, and of today's local midnight.
now_wall := wall(input.context.now_ns)

local_midnight := now_wall - (now_wall % day_ns)

# "HH:MM" (up to "24:00") as nanoseconds after midnight.
clock_ns(hhmm) := ((to_number(substring(hhmm, 0, 2)) * 60) + to_number(substring(hhmm, 3, 2))) * minute_ns

# The next opening of a window of the environment, within a week: the
# first opening on the wall clock after now, turned into an instant
# (local_instant keeps the order of wall readings). When the clocks went
# back and the wall reads that opening a second time, local_instant gives
# the first time, before now: the second is at now's offset, which holds
# for months.
window_opens_ns := opens_after_now(min({w |
	some w in window_openings
	now_wall < w
})) if {
	count(window_openings) > 0
} else := null

opens_after_now(w) := t if {
	t := local_instant(w)
	input.context.now_ns < t
} else := w - offset(input.context.now_ns)

# The wall readings of the openings of the environment's windows from
# today, for eight days.
window_openings contains day + clock_ns(window.start) if {
	some k in numbers.range(0, 7)
	day := local_midnight + (k * day_ns)
	some window in windows
	weekday_of(day) in window.days
}

# The start of the next local Monday.
weekend_clears_ns := local_instant(local_midnight + (days * day_ns)) if {
	days := {"saturday": 2, "sunday": 1}[local_day]
} else := null

# The end of the chain of freezes in force: the first end of a freeze that
# no other freeze covers. The chain is followed on the wall clock, so that
# recurring freezes cost no time zone lookups, and only its end is turned
# into an instant: a one-off or emergency freeze's own end, or the local end
# of a recurring one. Recurring freezes are unrolled freeze_horizon_days
# ahead; a chain that goes on beyond that has no known end (null).
freeze_clears_ns := span_end_ns(min(ends)) if {
	ends := {[end, end_ns] |
		some [_, end, end_ns] in freeze_spans
		ends_after_now(end, end_ns)
		not frozen_at(end)
		end_known(end)
	}
	count(ends) > 0
} else := null

freeze_horizon_days := 62

ends_after_now(end, null) if now_wall < end

ends_after_now(_, end_ns) if input.context.now_ns < end_ns

span_end_ns([end, null]) := local_instant(end)

span_end_ns([_, end_ns]) := end_ns if end_ns != null

# Whether a freeze covers wall reading t: most often one starts there (a
# chain of days), which is one lookup.
frozen_at(t) if {
	t in freeze_starts
} else if {
	some [start, end, _] in freeze_spans
	start <= t
	t < end
}

freeze_starts contains start if some [start, _, _] in freeze_spans

end_known(t) if t < local_midnight + ((freeze_horizon_days + 1) * day_ns)

end_known(_) if {
	every freeze in freezes {
		freeze.end
	}
}

# The freezes of the environment from now on, as [start, end) wall
# readings and the end's instant (null for a recurring freeze, whose local
# end is turned into one if it ends the chain).
freeze_spans contains [wall(start), wall(end), end] if {
	some freeze in freezes
	freeze.end
	start := time.parse_rfc3339_ns(freeze.start)
	end := time.parse_rfc3339_ns(freeze.end)
}

freeze_spans contains [now_wall, wall(freeze.expires_ns), freeze.expires_ns] if {
	some freeze in object.get(input.context, "freezes", [])
	input.request.metadata.environment in object.get(freeze, "environments", [input.request.metadata.environment])
}

freeze_spans contains [day + start, day + end, null] if {
	some freeze in freezes
	freeze.weekly
	[start, end] := local_hours(freeze.weekly)
	some day in horizon_days
	weekday_of(day) in freeze.weekly.days
}

freeze_spans contains [day + start, day + end, null] if {
	some freeze in freezes
	freeze.monthly
	[start, end] := local_hours(freeze.monthly)
	some day in horizon_days
	time.date(day)[2] in freeze.monthly.days
}

freeze_spans contains [day + start, day + end, null] if {
	some freeze in freezes
	freeze.yearly
	[start, end] := local_hours(freeze.yearly)
	some day in horizon_days
	date := time.date(day)
	sprintf("%02d-%02d", [date[1], date[2]]) in freeze.yearly.dates
}

# The wall readings of the local midnights from today to the horizon.
horizon_days := [day |
	some k in numbers.range(0, freeze_horizon_days)
	day := local_midnight + (k * day_ns)
]

# Local hours {"start", "end"} as nanoseconds after midnight.
local_hours(hours) := [clock_ns(hours.start), clock_ns(hours.end)]

# The weekday of the day whose midnight wall reading is day.
weekday_of(day) := lower(time.weekday(day))
