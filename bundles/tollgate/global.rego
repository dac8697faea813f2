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

# --- the rules of each environment --------------------------------------------
#
# What applies to an environment depends on the configuration alone: these
# rules read no input, so tollgate evaluates them once per bundle load
# (constant folding) and a decision only looks its environment up. Stock
# `opa test` evaluates them as any other rule. scope_of(null) is what
# applies to an environment that no rule names: the rules without an
# "environments" key.

# A lookup by key, so that stock OPA, which does not fold, computes only
# the request's environment.
scope := s if {
	s := scopes[input.request.metadata.environment]
} else := other_scope

scopes[env] := scope_of(env) if some env in named_environments

other_scope := scope_of(null)

named_environments contains env if {
	some kind in ["freezes", "time_windows"]
	some rule in object.get(config.global_policy, kind, [])
	some env in rule.environments
}

named_environments contains env if some env in config.global_policy.weekends.environments

applies(rule, env) if env in object.get(rule, "environments", [env])

# The rules of env, with times turned into numbers: each freeze, in the
# configuration's order, as [kind, from, to, days, freeze] — a one-off's
# instants, or a recurring one's local minutes after midnight and its days
# (a set) — and each window as [days, from, to].
scope_of(env) := {
	"freezes": fs,
	"windows": ws,
	"compiled": [compiled(f) | some f in fs],
	"recurring": count([f | some f in fs; not f.end]) > 0,
	"open": [[{d | some d in w.days}, minutes(w.start), minutes(w.end)] | some w in ws],
	"weekends_closed": closed_on_weekends(env),
} if {
	fs := [f | some f in object.get(config.global_policy, "freezes", []); applies(f, env)]
	ws := [w | some w in object.get(config.global_policy, "time_windows", []); applies(w, env)]
}

compiled(f) := ["once", time.parse_rfc3339_ns(f.start), time.parse_rfc3339_ns(f.end), set(), f] if {
	f.end
} else := ["weekly", minutes(f.weekly.start), minutes(f.weekly.end), {d | some d in f.weekly.days}, f] if {
	f.weekly
} else := ["monthly", minutes(f.monthly.start), minutes(f.monthly.end), {d | some d in f.monthly.days}, f] if {
	f.monthly
} else := ["yearly", minutes(f.yearly.start), minutes(f.yearly.end), {d | some d in f.yearly.dates}, f]

closed_on_weekends(env) if {
	weekends := config.global_policy.weekends
	not weekends.allowed
	applies(weekends, env)
} else := false

# "HH:MM" (up to "24:00") as minutes after midnight.
minutes(hhmm) := (to_number(substring(hhmm, 0, 2)) * 60) + to_number(substring(hhmm, 3, 2))

# --- freezes ------------------------------------------------------------------
#
# A freeze is one-off ("start" <= now < "end", RFC 3339 instants) or recurs
# in the policy's time zone, from the local "start" (inclusive) to the local
# "end" (exclusive, "24:00" for midnight) of the days it names:
#   "weekly":  {"days": ["friday"], "start": "16:00", "end": "24:00"}
#   "monthly": {"days": [1, 31], "start": "00:00", "end": "24:00"}  (a day a month lacks never comes)
#   "yearly":  {"dates": ["12-24", "12-31"], "start": "00:00", "end": "24:00"}
# Local wall-clock times, so a freeze keeps its hours across DST changes.

# The usual case first: one-off freezes only, no emergency freeze.
freeze_reasons := [freeze_reason(f) |
	some ["once", from, to, _, f] in scope.compiled
	from <= input.context.now_ns
	input.context.now_ns < to
] if {
	scope.recurring == false
	object.get(input.context, "freezes", null) == null
} else := array.concat(
	[freeze_reason(c[4]) | some c in scope.compiled; frozen(c)],
	# Emergency freezes, declared through the API (input.context.freezes,
	# injected by Go: [{"id", "reason", "environments"?, "expires_ns"}]),
	# end at expires_ns whatever the expiry worker does.
	[reason |
		some freeze in object.get(input.context, "freezes", [])
		input.request.metadata.environment in object.get(freeze, "environments", [input.request.metadata.environment])
		input.context.now_ns < freeze.expires_ns
		reason := {
			"code": "freeze_active",
			"key": "freeze_active.emergency",
			"params": {"id": freeze.id, "until": {"time_ns": freeze.expires_ns}, "reason": freeze.reason},
		}
	],
)

# Whether a compiled freeze is in force now.
frozen(["once", from, to, _, _]) if {
	from <= input.context.now_ns
	input.context.now_ns < to
}

frozen(["weekly", from, to, days, _]) if {
	days[now_local[0]]
	from <= now_local[1]
	now_local[1] < to
}

frozen(["monthly", from, to, days, _]) if {
	days[local_date[2]]
	from <= now_local[1]
	now_local[1] < to
}

frozen(["yearly", from, to, dates, _]) if {
	dates[sprintf("%02d-%02d", [local_date[1], local_date[2]])]
	from <= now_local[1]
	now_local[1] < to
}

freeze_reason(freeze) := {
	"code": "freeze_active",
	"params": {
		"id": object.get(freeze, "id", "unnamed"), "period": freeze_period(freeze),
		"reason": object.get(freeze, "reason", {"term": "no_reason_given"}),
	},
}

# The scheduled freezes and the time windows of the request's environment.
freezes := scope.freezes

windows := scope.windows

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

# The local weekday ("monday") and minutes after midnight of the
# evaluation, which every window, weekend and recurring freeze needs: one
# rule, so that a decision enters one. local_day, local_date ([year, month,
# day]) and local_time ("HH:MM") are for messages and for the
# computations of refusals.
now_local := [lower(time.weekday(at)), (clock[0] * 60) + clock[1]] if {
	at := [input.context.now_ns, timezone]
	clock := time.clock(at)
}

local_day := now_local[0]

local_date := time.date([input.context.now_ns, timezone])

local_time := sprintf("%02d:%02d", [clock[0], clock[1]]) if clock := time.clock([input.context.now_ns, timezone])

# The usual case, a window open now, comes first.
window_reasons := [] if {
	some [days, from, to] in scope.open
	days[now_local[0]]
	from <= now_local[1]
	now_local[1] < to
} else := [] if {
	count(scope.open) == 0
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

weekend_reasons := [] if {
	now_local[0] in {"monday", "tuesday", "wednesday", "thursday", "friday"}
} else := [] if {
	scope.weekends_closed == false
	input.context.now_ns # fail closed: without a clock no global rule holds
} else := [{
	"code": "weekend_violation",
	"params": {"environment": input.request.metadata.environment, "day": {"term": local_day}, "timezone": timezone},
}] if {
	scope.weekends_closed
	now_local[0] in {"saturday", "sunday"}
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
