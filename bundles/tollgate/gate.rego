# METADATA
# title: the gate of each environment
# description: |
#   Whether the gate of each environment is open now and until when, by the
#   rules that hold for every pipeline: freezes (scheduled and emergency),
#   time windows, weekends (global.rego) and incident mode (incident.rego).
#   The history page's Gate view shows it; the decision never reads it.
#   Branches, pipeline types, cooldowns, scans and exceptions are a
#   request's own: an open gate does not say that a given request passes.
#
#   Input: input.context as for a decision (now_ns, freezes, incident); no
#   request: each environment is set with `with`.
#
#   environments: {env: {"open": true, "until": RFC 3339 | null,
#                        "closes_with": [reason]}
#                 | {"open": false, "until": RFC 3339 | null,
#                    "reasons": [reason], "clears_at": {code: RFC 3339 | null}}}
#   "until" is when the gate next changes by the passing of time alone
#   (null: no change known). A gate opens when every reason standing has
#   cleared, followed as decision.rego's next_check_ns follows them (a
#   window that opens inside a freeze); it closes at the first instant,
#   among the ends of windows and the starts of freezes and weekends, at
#   which a reason stands.
package tollgate.gate

import data.tollgate
import data.tollgate.config
import data.tollgate.global
import data.tollgate.incident
import data.tollgate.messages

environments := {env: state |
	some env in names
	state := gate with input.request.metadata.environment as env
}

# The environments the configuration and the emergency freezes name.
names contains env if {
	some project in object.get(config, "projects", {})
	some env, _ in object.get(project, "environments", {})
}

names contains env if {
	some kind in ["freezes", "time_windows"]
	some rule in object.get(config.global_policy, kind, [])
	some env in object.get(rule, "environments", [])
}

names contains env if {
	some env in object.get(config.global_policy, ["weekends", "environments"], [])
}

names contains env if {
	some freeze in object.get(input.context, "freezes", [])
	some env in object.get(freeze, "environments", [])
}

# The gate of input.request.metadata.environment at input.context.now_ns.
gate := {"open": true, "until": tollgate.rfc3339(closes_ns), "closes_with": closes_with} if {
	count(reasons) == 0
} else := {
	"open": false,
	"until": tollgate.rfc3339(opens_ns),
	"reasons": messages.render(reasons),
	"clears_at": {code: tollgate.rfc3339(at) | some code, at in clears},
}

# What closes the gate now: the global reasons, and an incident.
reasons := array.concat(global.reasons, incident_reasons)

incident_reasons := [{
	"code": "incident_mode",
	"params": incident.params,
}] if {
	incident.active
} else := []

# code -> when it clears (ns, or null for no known end).
clears := object.union(global.clears_at, incident_clears)

incident_clears := {"incident_mode": incident.active.expires_ns} if {
	incident.active
} else := {}

# --- when a closed gate opens -----------------------------------------------

# Null when a reason standing has no known end, or the chain of reasons
# goes on for more than the steps below.
opens_ns := null if {
	some at in clears
	at == null
} else := settled[0] if {
	first := max([at | some at in clears])
	settled := settle(settle(settle(settle(settle(settle(settle([first, false])))))))
	settled[1]
} else := null

# One step towards the instant at which no reason stands:
# [t, done] -> [later(t), later(t) == t]. Undefined when a reason standing
# at t has no known end.
settle(step) := step if {
	step[1]
} else := [t, t == step[0]] if {
	t := later(step[0])
}

later(t) := t if {
	global.wall(t)
	count(reasons) == 0 with input.context.now_ns as t
} else := max(ats) if {
	global.wall(t)
	ats := [at | some at in clears] with input.context.now_ns as t
	every at in ats {
		at != null
	}
}

# --- when an open gate closes -----------------------------------------------

closes_ns := min(closing) if {
	closing := {t |
		some t in changes
		closed_at(t)
	}
	count(closing) > 0
} else := null

closes_with := messages.render(at_close) if {
	closes_ns != null
	at_close := reasons with input.context.now_ns as closes_ns
} else := []

closed_at(t) if {
	global.wall(t)
	count(reasons) > 0 with input.context.now_ns as t
}

# The instants after now at which a reason can start: the ends of the
# windows (for a week), the starts of freezes (one-off, and recurring ones
# to global.freeze_horizon_days) and the next local Saturday.
changes contains t if {
	some w in window_ends
	t := global.local_instant(w)
	input.context.now_ns < t
}

changes contains t if {
	some freeze in global.freezes
	freeze.end
	t := time.parse_rfc3339_ns(freeze.start)
	input.context.now_ns < t
}

changes contains t if {
	some [start, _, null] in global.freeze_spans
	global.now_wall < start
	t := global.local_instant(start)
}

changes contains t if {
	days := {
		"monday": 5, "tuesday": 4, "wednesday": 3, "thursday": 2,
		"friday": 1, "saturday": 7, "sunday": 6,
	}[global.local_day]
	t := global.local_instant(global.local_midnight + (days * global.day_ns))
}

window_ends contains day + global.clock_ns(window.end) if {
	some k in numbers.range(0, 7)
	day := global.local_midnight + (k * global.day_ns)
	some window in global.windows
	global.weekday_of(day) in window.days
}
