# Tests of the gate of each environment (gate.rego). Expected instants are
# in UTC ("Z"), converted by hand from the local time of the comment, so
# that a rule that adds fixed hours across a DST change fails.
package tollgate.gate_test

import data.tollgate.gate

office_hours := [{
	"days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
	"start": "08:00", "end": "18:00",
	"environments": ["production"],
}]

paris := {
	"timezone": "Europe/Paris", "time_windows": office_hours,
	"weekends": {"allowed": false, "environments": ["production"]},
}

projects := {"service-api": {
	"repositories": ["org/service-api"],
	"pipelines": {"deploy": {"type": "deploy"}},
	"environments": {
		"production": {"pipeline_types": ["deploy"]},
		"staging": {"pipeline_types": ["deploy"]},
	},
}}

ctx(rfc3339) := {"now_ns": time.parse_rfc3339_ns(rfc3339)}

# The gates at a time under a global policy.
gates(now, policy) := g if {
	g := gate.environments with input as {"context": ctx(now)}
		with data.tollgate.config.global_policy as policy
		with data.tollgate.config.projects as projects
}

# The codes of a list of reasons.
codes(reasons) := [r.code | some r in reasons]

# --- windows and weekends ----------------------------------------------------------

test_environments_are_those_the_configuration_names if {
	policy := object.union(paris, {"freezes": [{"id": "f", "start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z", "environments": ["qa"]}]})
	object.keys(gates("2026-06-10T10:00:00+02:00", policy)) == {"production", "staging", "qa"}
}

test_inside_the_window_open_until_its_end if {
	g := gates("2026-06-10T10:00:00+02:00", paris).production
	g.open == true
	g.until == "2026-06-10T16:00:00Z" # 18:00 CEST
	codes(g.closes_with) == ["time_window_violation"]
}

test_environment_without_rules_is_open_with_no_known_end if {
	gates("2026-06-13T03:00:00+02:00", paris).staging == {"open": true, "until": null, "closes_with": []}
}

test_after_the_window_closed_until_the_next_morning if {
	g := gates("2026-06-10T19:00:00+02:00", paris).production
	g.open == false
	g.until == "2026-06-11T06:00:00Z" # 08:00 CEST
	g.clears_at == {"time_window_violation": "2026-06-11T06:00:00Z"}
}

# Europe/Paris moves to CEST on 2026-03-29: Friday's window ends at 18:00
# CET, Monday's opens at 08:00 CEST.
test_window_across_the_spring_change if {
	gates("2026-03-27T17:00:00+01:00", paris).production.until == "2026-03-27T17:00:00Z"
	gates("2026-03-27T18:30:00+01:00", paris).production.until == "2026-03-30T06:00:00Z"
}

# Europe/Paris moves back to CET on 2026-10-25.
test_window_across_the_autumn_change if {
	gates("2026-10-23T17:00:00+02:00", paris).production.until == "2026-10-23T16:00:00Z"
	gates("2026-10-23T19:00:00+02:00", paris).production.until == "2026-10-26T07:00:00Z"
}

test_weekend_closed_until_the_monday_window if {
	g := gates("2026-06-13T11:00:00+02:00", paris).production
	g.open == false
	codes(g.reasons) == ["time_window_violation", "weekend_violation"]
	g.clears_at == {"time_window_violation": "2026-06-15T06:00:00Z", "weekend_violation": "2026-06-14T22:00:00Z"}
	g.until == "2026-06-15T06:00:00Z"
}

# Without windows the weekend closes the gate at Saturday 00:00.
test_weekend_alone_closes_at_saturday_midnight if {
	policy := {"timezone": "Europe/Paris", "weekends": {"allowed": false}}
	g := gates("2026-06-11T10:00:00+02:00", policy).production
	g.until == "2026-06-12T22:00:00Z"
	codes(g.closes_with) == ["weekend_violation"]
	gates("2026-06-14T10:00:00+02:00", policy).production.until == "2026-06-14T22:00:00Z"
}

# Adjacent windows make one opening: the gate closes at the end of the last.
test_adjacent_windows_close_at_the_end_of_the_last if {
	windows := [
		{"days": ["wednesday"], "start": "08:00", "end": "12:00"},
		{"days": ["wednesday"], "start": "12:00", "end": "20:00"},
	]
	policy := {"timezone": "Europe/Paris", "time_windows": windows}
	gates("2026-06-10T10:00:00+02:00", policy).production.until == "2026-06-10T18:00:00Z"
}

# --- freezes and incidents ----------------------------------------------------------

freeze(start, end) := {"id": "launch", "start": start, "end": end, "environments": ["production"], "reason": "Launch"}

test_open_until_a_freeze_starts if {
	policy := {"timezone": "Europe/Paris", "freezes": [freeze("2026-06-10T12:00:00Z", "2026-06-11T12:00:00Z")]}
	g := gates("2026-06-10T10:00:00Z", policy).production
	g.open == true
	g.until == "2026-06-10T12:00:00Z"
	codes(g.closes_with) == ["freeze_active"]
}

test_frozen_closed_until_the_freeze_ends if {
	policy := {"timezone": "Europe/Paris", "freezes": [freeze("2026-06-10T12:00:00Z", "2026-06-11T12:00:00Z")]}
	g := gates("2026-06-10T15:00:00Z", policy).production
	g.open == false
	codes(g.reasons) == ["freeze_active"]
	g.until == "2026-06-11T12:00:00Z"
	gates("2026-06-10T15:00:00Z", policy).staging.open == true
}

# A freeze that ends at night: the gate opens with the next window.
test_freeze_ending_outside_the_window_opens_with_the_window if {
	policy := object.union(paris, {"freezes": [freeze("2026-06-09T00:00:00+02:00", "2026-06-10T20:00:00+02:00")]})
	g := gates("2026-06-10T15:00:00+02:00", policy).production
	g.clears_at == {"freeze_active": "2026-06-10T18:00:00Z"}
	g.until == "2026-06-11T06:00:00Z"
}

# A weekly freeze closes the gate at its local start, in summer time.
test_open_until_a_recurring_freeze_starts if {
	policy := {"timezone": "Europe/Paris", "freezes": [{"id": "friday", "weekly": {"days": ["friday"], "start": "16:00", "end": "24:00"}}]}
	gates("2026-06-12T10:00:00+02:00", policy).production.until == "2026-06-12T14:00:00Z"
}

test_daily_freeze_has_no_known_end if {
	policy := {"timezone": "Europe/Paris", "freezes": [{"id": "always", "weekly": {
		"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
		"start": "00:00", "end": "24:00",
	}}]}
	g := gates("2026-06-10T10:00:00+02:00", policy).production
	g.open == false
	g.until == null
	g.clears_at == {"freeze_active": null}
}

test_emergency_freeze_closes_its_environments_until_it_expires if {
	freezes := [{"id": "f1", "reason": "failover", "environments": ["staging"], "expires_ns": time.parse_rfc3339_ns("2026-06-10T12:30:00Z")}]
	g := gate.environments with input as {"context": object.union(ctx("2026-06-10T10:00:00Z"), {"freezes": freezes})}
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris"}
		with data.tollgate.config.projects as projects
	g.staging.open == false
	g.staging.until == "2026-06-10T12:30:00Z"
	g.production == {"open": true, "until": null, "closes_with": []}
}

test_incident_closes_every_gate_until_it_ends if {
	incident := {"id": "i1", "reason": "checkout down", "expires_ns": time.parse_rfc3339_ns("2026-06-10T11:00:00Z")}
	g := gate.environments with input as {"context": object.union(ctx("2026-06-10T10:00:00Z"), {"incident": incident})}
		with data.tollgate.config.global_policy as object.union(paris, {"incident": {"pipeline_types": ["hotfix"]}})
		with data.tollgate.config.projects as projects
	codes(g.staging.reasons) == ["incident_mode"]
	contains(g.staging.reasons[0].message, "hotfix")
	g.staging.until == "2026-06-10T11:00:00Z"
	g.production.until == "2026-06-10T11:00:00Z" # inside the window: the incident's end
}

# An end beyond the times the rules can evaluate (near the end of the
# int64 nanoseconds): the opening is unknown, never a guess.
test_opening_beyond_the_times_the_rules_can_evaluate_is_unknown if {
	incident := {"id": "i1", "reason": "forever", "expires_ns": 9223300000000000000}
	g := gate.environments with input as {"context": object.union(ctx("2026-06-10T10:00:00Z"), {"incident": incident})}
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris"}
		with data.tollgate.config.projects as projects
	g.staging.open == false
	g.staging.until == null
}
