# Tests for "when can a refusal clear": clears_at of the global, incident
# and local rules and the decision's clears_at and next_check_at
# (decision.rego). Expected instants are written in UTC ("Z") on purpose:
# each one is the local time of the comment converted by hand, so that a
# rule that adds fixed hours across a DST change fails.
package tollgate.clears_test

import data.tollgate
import data.tollgate.global

request := {
	"repository": "org/service-api",
	"branch": "main",
	"pipeline": "deploy-prod",
	"metadata": {"initiator": "github-actions", "run_id": "42", "environment": "production"},
}

at(rfc3339) := {
	"request": request,
	"context": {"now_ns": time.parse_rfc3339_ns(rfc3339), "licence": {"status": "valid", "detail": ""}},
}

office_hours := [{
	"days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
	"start": "08:00", "end": "18:00",
	"environments": ["production"],
}]

no_weekends := {"allowed": false, "environments": ["production"]}

paris := {"timezone": "Europe/Paris", "time_windows": office_hours, "weekends": no_weekends}

new_york := object.union(paris, {"timezone": "America/New_York"})

projects := {"service-api": {
	"repositories": ["org/service-api"],
	"allowed_branches": ["main"],
	"pipelines": {"deploy-prod": {"type": "deploy", "cooldown_minutes": 30}},
	"environments": {"production": {"pipeline_types": ["deploy"]}},
}}

# The decision's clearance fields at a time under a global policy.
clearance(now, policy) := object.filter(d, {"status", "clears_at", "next_check_at"}) if {
	d := tollgate.decision with input as at(now)
		with data.tollgate.config.global_policy as policy
		with data.tollgate.config.projects as projects
}

# --- windows across DST changes ----------------------------------------------------

# Europe/Paris moves to CEST on the last Sunday of March (2026-03-29).
test_paris_friday_evening_before_spring_change_waits_for_monday_8h_cest if {
	clearance("2026-03-27T18:30:00+01:00", paris) == {
		"status": "refused",
		"clears_at": {"time_window_violation": "2026-03-30T06:00:00Z"},
		"next_check_at": "2026-03-30T06:00:00Z",
	}
}

# Europe/Paris moves back to CET on the last Sunday of October (2026-10-25).
test_paris_friday_evening_before_autumn_change_waits_for_monday_8h_cet if {
	clearance("2026-10-23T19:00:00+02:00", paris) == {
		"status": "refused",
		"clears_at": {"time_window_violation": "2026-10-26T07:00:00Z"},
		"next_check_at": "2026-10-26T07:00:00Z",
	}
}

# America/New_York moves to EDT on the second Sunday of March (2026-03-08).
test_new_york_friday_evening_before_spring_change_waits_for_monday_8h_edt if {
	clearance("2026-03-06T19:00:00-05:00", new_york) == {
		"status": "refused",
		"clears_at": {"time_window_violation": "2026-03-09T12:00:00Z"},
		"next_check_at": "2026-03-09T12:00:00Z",
	}
}

# America/New_York moves back to EST on the first Sunday of November (2026-11-01).
test_new_york_friday_evening_before_autumn_change_waits_for_monday_8h_est if {
	clearance("2026-10-30T19:00:00-04:00", new_york) == {
		"status": "refused",
		"clears_at": {"time_window_violation": "2026-11-02T13:00:00Z"},
		"next_check_at": "2026-11-02T13:00:00Z",
	}
}

test_before_the_window_on_the_same_day_waits_for_its_opening if {
	clearance("2026-06-10T06:15:00+02:00", paris).next_check_at == "2026-06-10T06:00:00Z"
}

test_after_the_window_waits_for_the_next_day if {
	clearance("2026-06-10T18:00:00+02:00", paris).next_check_at == "2026-06-11T06:00:00Z"
}

# A window every day: the Sunday of the change opens at 08:00 CEST.
test_window_on_the_day_of_the_change_opens_in_the_new_offset if {
	every_day := [object.union(office_hours[0], {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]})]
	policy := {"timezone": "Europe/Paris", "time_windows": every_day}
	clearance("2026-03-28T19:00:00+01:00", policy).next_check_at == "2026-03-29T06:00:00Z"
	clearance("2026-10-24T19:00:00+02:00", policy).next_check_at == "2026-10-25T07:00:00Z"
}

night_window := {"timezone": "Europe/Paris", "time_windows": [{"days": ["sunday"], "start": "02:30", "end": "04:00"}]}

# 02:30 does not exist on 2026-03-29 in Paris (02:00 CET is 03:00 CEST): the
# window opens when the clocks jump, and the window rule agrees.
test_window_opening_in_the_spring_gap_is_the_end_of_the_gap if {
	clearance("2026-03-29T00:30:00+01:00", night_window).next_check_at == "2026-03-29T01:00:00Z"
	opens := time.parse_rfc3339_ns("2026-03-29T01:00:00Z")
	global.reasons == [] with input as at("2026-03-29T01:00:00Z")
		with data.tollgate.config.global_policy as night_window
	[r.code | some r in global.reasons] == ["time_window_violation"] with input as at("2026-03-29T00:30:00Z")
		with input.context.now_ns as opens - 1
		with data.tollgate.config.global_policy as night_window
}

# 02:30 happens twice on 2026-10-25 in Paris: the window opens at the first.
test_window_opening_in_the_autumn_overlap_is_the_first_one if {
	clearance("2026-10-25T00:30:00+02:00", night_window).next_check_at == "2026-10-25T00:30:00Z"
}

# Without a day it applies on, a window never opens: no known end.
test_window_that_never_opens_gives_null if {
	policy := {"timezone": "Europe/Paris", "time_windows": [object.union(office_hours[0], {"days": []})]}
	clearance("2026-06-10T10:00:00+02:00", policy) == {
		"status": "refused",
		"clears_at": {"time_window_violation": null},
		"next_check_at": null,
	}
}

# Back at 02:10 CET, after the clocks went back: 02:30 comes again, at 01:30Z.
test_window_opening_in_the_autumn_overlap_comes_again_after_the_change if {
	clearance("2026-10-25T02:10:00+01:00", night_window).next_check_at == "2026-10-25T01:30:00Z"
	global.reasons == [] with input as at("2026-10-25T01:30:00Z")
		with data.tollgate.config.global_policy as night_window
}

# --- weekends ----------------------------------------------------------------------

test_friday_after_the_window_waits_for_monday_window_not_the_weekend if {
	clearance("2026-06-12T18:30:00+02:00", paris) == {
		"status": "refused",
		"clears_at": {"time_window_violation": "2026-06-15T06:00:00Z"},
		"next_check_at": "2026-06-15T06:00:00Z",
	}
}

test_saturday_weekend_clears_at_monday_midnight_and_the_request_at_monday_8h if {
	clearance("2026-06-13T11:00:00+02:00", paris) == {
		"status": "refused",
		"clears_at": {
			"time_window_violation": "2026-06-15T06:00:00Z",
			"weekend_violation": "2026-06-14T22:00:00Z",
		},
		"next_check_at": "2026-06-15T06:00:00Z",
	}
}

test_sunday_waits_for_the_monday_window_in_new_york if {
	clearance("2026-06-14T20:00:00-04:00", new_york) == {
		"status": "refused",
		"clears_at": {
			"time_window_violation": "2026-06-15T12:00:00Z",
			"weekend_violation": "2026-06-15T04:00:00Z",
		},
		"next_check_at": "2026-06-15T12:00:00Z",
	}
}

test_sunday_of_the_spring_change_clears_at_monday_midnight_cest if {
	clearance("2026-03-29T12:00:00+02:00", paris).clears_at.weekend_violation == "2026-03-29T22:00:00Z"
}

test_sunday_of_the_autumn_change_clears_at_monday_midnight_est if {
	clearance("2026-11-01T12:00:00-05:00", new_york).clears_at.weekend_violation == "2026-11-02T05:00:00Z"
}

# Weekends refused without windows: the request can pass at Monday 00:00.
test_weekend_alone_waits_for_monday_midnight if {
	policy := {"timezone": "Europe/Paris", "weekends": no_weekends}
	clearance("2026-06-14T23:59:00+02:00", policy).next_check_at == "2026-06-14T22:00:00Z"
}

# --- freezes -----------------------------------------------------------------------

freeze(id, start, end) := {"id": id, "start": start, "end": end, "environments": ["production"], "reason": id}

test_single_freeze_clears_at_its_end if {
	policy := {"timezone": "Europe/Paris", "freezes": [freeze("launch", "2026-06-10T12:00:00Z", "2026-06-11T12:00:00Z")]}
	clearance("2026-06-10T15:00:00Z", policy) == {
		"status": "refused",
		"clears_at": {"freeze_active": "2026-06-11T12:00:00Z"},
		"next_check_at": "2026-06-11T12:00:00Z",
	}
}

# Without recurring freezes, a one-off freeze's end is known however far.
test_long_freeze_clears_at_its_end if {
	policy := {"timezone": "Europe/Paris", "freezes": [freeze("migration", "2026-06-01T00:00:00Z", "2026-12-01T00:00:00Z")]}
	clearance("2026-06-10T15:00:00Z", policy).clears_at == {"freeze_active": "2026-12-01T00:00:00Z"}
}

# Overlapping and adjacent freezes clear at the end of the chain, not at the
# end of the first one; a later, separate freeze does not count.
test_chained_freezes_clear_at_the_end_of_the_chain if {
	policy := {"timezone": "Europe/Paris", "freezes": [
		freeze("a", "2026-06-10T00:00:00Z", "2026-06-12T00:00:00Z"),
		freeze("b", "2026-06-11T00:00:00Z", "2026-06-13T00:00:00Z"),
		freeze("c", "2026-06-13T00:00:00Z", "2026-06-14T06:00:00Z"),
		freeze("d", "2026-06-20T00:00:00Z", "2026-06-21T00:00:00Z"),
	]}
	clearance("2026-06-10T12:00:00Z", policy).clears_at == {"freeze_active": "2026-06-14T06:00:00Z"}
}

# A weekly freeze from Friday 16:00 and all weekend ends on Monday 00:00
# local, the Monday after the spring change here.
test_recurring_freezes_chain_across_days if {
	policy := {"timezone": "Europe/Paris", "freezes": [
		{"id": "friday", "weekly": {"days": ["friday"], "start": "16:00", "end": "24:00"}},
		{"id": "weekend", "weekly": {"days": ["saturday", "sunday"], "start": "00:00", "end": "24:00"}},
	]}
	clearance("2026-03-27T17:00:00+01:00", policy).clears_at == {"freeze_active": "2026-03-29T22:00:00Z"}
}

test_yearly_freeze_clears_at_the_end_of_its_last_date if {
	policy := {"timezone": "America/New_York", "freezes": [{"id": "holidays", "yearly": {"dates": ["12-24", "12-25", "12-26"], "start": "00:00", "end": "24:00"}}]}
	clearance("2026-12-24T10:00:00-05:00", policy).clears_at == {"freeze_active": "2026-12-27T05:00:00Z"}
}

test_monthly_freeze_clears_at_its_local_end if {
	policy := {"timezone": "Europe/Paris", "freezes": [{"id": "closing", "monthly": {"days": [31], "start": "12:00", "end": "20:00"}}]}
	clearance("2026-03-31T13:00:00+02:00", policy).clears_at == {"freeze_active": "2026-03-31T18:00:00Z"}
}

# A one-off freeze that a recurring one extends.
test_one_off_freeze_extended_by_a_recurring_one if {
	policy := {"timezone": "Europe/Paris", "freezes": [
		freeze("release", "2026-06-11T12:00:00+02:00", "2026-06-12T16:00:00+02:00"),
		{"id": "friday", "weekly": {"days": ["friday"], "start": "15:00", "end": "24:00"}},
	]}
	clearance("2026-06-11T13:00:00+02:00", policy).clears_at == {"freeze_active": "2026-06-12T22:00:00Z"}
}

# The shipped example: the evening before the year-end freeze, the window
# opens inside the freeze, so the request waits for the first window after it.
test_window_opening_inside_a_freeze_waits_for_the_window_after_the_freeze if {
	policy := object.union(paris, {"freezes": [freeze("year-end", "2026-12-24T00:00:00+01:00", "2027-01-04T00:00:00+01:00")]})
	clearance("2026-12-23T19:00:00+01:00", policy) == {
		"status": "refused",
		"clears_at": {"time_window_violation": "2026-12-24T07:00:00Z"},
		"next_check_at": "2027-01-04T07:00:00Z",
	}
}

# A freeze that ends on a Saturday: the weekend, then the window follow.
test_freeze_ending_on_a_weekend_waits_for_monday_window if {
	policy := object.union(paris, {"freezes": [freeze("sale", "2026-06-10T00:00:00+02:00", "2026-06-13T12:00:00+02:00")]})
	clearance("2026-06-11T10:00:00+02:00", policy) == {
		"status": "refused",
		"clears_at": {"freeze_active": "2026-06-13T10:00:00Z"},
		"next_check_at": "2026-06-15T06:00:00Z",
	}
}

test_emergency_freezes_clear_when_the_last_one_expires if {
	freezes := [
		{"id": "F1", "reason": "outage", "expires_ns": time.parse_rfc3339_ns("2026-06-10T12:00:00Z")},
		{"id": "F2", "reason": "outage", "expires_ns": time.parse_rfc3339_ns("2026-06-10T14:00:00Z")},
	]
	d := tollgate.decision with input as at("2026-06-10T10:00:00Z")
		with input.context.freezes as freezes
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris"}
		with data.tollgate.config.projects as projects
	d.clears_at == {"freeze_active": "2026-06-10T14:00:00Z"}
	d.next_check_at == "2026-06-10T14:00:00Z"
}

# --- open-ended --------------------------------------------------------------------

every_day_freeze := {"id": "forever", "weekly": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "00:00", "end": "24:00"}}

test_freeze_without_a_known_end_gives_null if {
	clearance("2026-06-10T10:00:00+02:00", {"timezone": "Europe/Paris", "freezes": [every_day_freeze]}) == {
		"status": "refused",
		"clears_at": {"freeze_active": null},
		"next_check_at": null,
	}
}

# A chain of one-off freezes and a daily freeze that goes beyond the horizon
# has no known end either.
test_chain_beyond_the_horizon_gives_null if {
	policy := {"timezone": "Europe/Paris", "freezes": [
		every_day_freeze,
		freeze("long", "2026-06-01T00:00:00Z", "2026-12-01T00:00:00Z"),
	]}
	clearance("2026-06-10T10:00:00+02:00", policy).clears_at == {"freeze_active": null}
}

# The end of an open-ended reason is unknown, so next_check_at is the time
# the others allow: no evaluation before it can be accepted.
test_open_ended_reason_does_not_move_next_check_at if {
	policy := object.union(paris, {"freezes": [every_day_freeze]})
	clearance("2026-06-10T19:00:00+02:00", policy) == {
		"status": "refused",
		"clears_at": {"freeze_active": null, "time_window_violation": "2026-06-11T06:00:00Z"},
		"next_check_at": "2026-06-11T06:00:00Z",
	}
}

# Rego counts time in int64 nanoseconds, which end on 2262-04-11T23:47:16Z:
# what lies beyond has no known time, and is never an error (policy_error).
test_clear_times_beyond_the_evaluable_range_are_unknown if {
	d := tollgate.decision with input as at("2262-04-11T23:00:00Z")
		with input.context.cooldown.last_accepted_ns as time.parse_rfc3339_ns("2262-04-11T22:50:00Z")
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as projects
	[r.code | some r in d.reasons] == ["time_window_violation", "weekend_violation", "cooldown"]
	d.clears_at == {"cooldown": "2262-04-11T23:20:00Z", "time_window_violation": null, "weekend_violation": null}
	d.next_check_at == "2262-04-11T23:20:00Z"
}

# --- cooldown and incident ---------------------------------------------------------------

test_cooldown_clears_cooldown_minutes_after_the_last_acceptance if {
	d := tollgate.decision with input as at("2026-06-10T10:10:00+02:00")
		with input.context.cooldown.last_accepted_ns as time.parse_rfc3339_ns("2026-06-10T10:00:00+02:00")
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as projects
	d.clears_at == {"cooldown": "2026-06-10T08:30:00Z"}
	d.next_check_at == "2026-06-10T08:30:00Z"
}

# A cooldown that ends after the window closed waits for the next window.
test_cooldown_ending_after_the_window_waits_for_the_next_window if {
	d := tollgate.decision with input as at("2026-06-10T17:50:00+02:00")
		with input.context.cooldown.last_accepted_ns as time.parse_rfc3339_ns("2026-06-10T17:45:00+02:00")
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as projects
	d.clears_at == {"cooldown": "2026-06-10T16:15:00Z"}
	d.next_check_at == "2026-06-11T06:00:00Z"
}

incident := {"id": "INC-7", "reason": "database down", "expires_ns": time.parse_rfc3339_ns("2026-06-10T13:00:00Z")}

test_incident_mode_clears_when_the_incident_expires if {
	d := tollgate.decision with input as at("2026-06-10T10:00:00+02:00")
		with input.context.incident as incident
		with data.tollgate.config.global_policy as object.union(paris, {"incident": {"pipeline_types": ["hotfix"]}})
		with data.tollgate.config.projects as projects
	d.clears_at == {"incident_mode": "2026-06-10T13:00:00Z"}
	d.next_check_at == "2026-06-10T13:00:00Z"
}

# The incident relaxes the cooldown; once it is over, the cooldown is back.
test_cooldown_relaxed_by_an_incident_comes_back_when_it_ends if {
	d := tollgate.decision with input as at("2026-06-10T17:50:00+02:00")
		with input.context.incident as object.union(incident, {"expires_ns": time.parse_rfc3339_ns("2026-06-10T15:55:00Z")})
		with input.context.cooldown.last_accepted_ns as time.parse_rfc3339_ns("2026-06-10T17:40:00+02:00")
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris", "incident": {"pipeline_types": ["hotfix"], "relax_cooldown": true}}
		with data.tollgate.config.projects as projects
	d.clears_at == {"incident_mode": "2026-06-10T15:55:00Z"}
	d.next_check_at == "2026-06-10T16:10:00Z"
}

# --- what is and is not exposed ------------------------------------------------------

test_accepted_decision_has_no_clearance if {
	clearance("2026-06-10T10:00:00+02:00", paris) == {"status": "accepted"}
}

# A reason that time cannot clear: the temporal ones still say when they
# clear, but there is no next check, waiting would not help.
test_reason_time_cannot_clear_leaves_out_next_check_at if {
	d := tollgate.decision with input as at("2026-06-10T19:00:00+02:00")
		with input.request.branch as "feature/x"
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as projects
	[r.code | some r in d.reasons] == ["time_window_violation", "branch_not_allowed"]
	d.clears_at == {"time_window_violation": "2026-06-11T06:00:00Z"}
	not "next_check_at" in object.keys(d)
}

test_licence_refusal_has_no_clearance if {
	d := tollgate.decision with input as at("2026-06-10T19:00:00+02:00")
		with input.context.licence as {"status": "invalid", "detail": "bad signature"}
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as projects
	object.filter(d, {"clears_at", "next_check_at"}) == {}
}

# A reason an exception waives does not stand: nothing to clear.
test_waived_reason_is_not_a_standing_reason if {
	exceptions := [{
		"id": "EX-1", "kind": "break_glass", "code": "time_window_violation", "project": "service-api",
		"expires_ns": time.parse_rfc3339_ns("2026-06-10T21:00:00+02:00"),
	}]
	d := tollgate.decision with input as at("2026-06-10T19:00:00+02:00")
		with input.context.exceptions as exceptions
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as projects
	d.status == "accepted"
	object.filter(d, {"clears_at", "next_check_at"}) == {}
}

# The freeze is waived now, but the waiver expires before the cooldown
# ends: then the freeze stands again, until its end.
test_waiver_expiring_before_a_freeze_ends_does_not_hide_the_freeze if {
	exceptions := [{
		"id": "EX-2", "kind": "waiver", "code": "freeze_active", "project": "service-api",
		"expires_ns": time.parse_rfc3339_ns("2026-06-10T12:00:00Z"),
	}]
	policy := {"timezone": "Europe/Paris", "freezes": [freeze("launch", "2026-06-10T00:00:00Z", "2026-06-12T00:00:00Z")]}
	d := tollgate.decision with input as at("2026-06-10T11:55:00Z")
		with input.context.cooldown.last_accepted_ns as time.parse_rfc3339_ns("2026-06-10T11:50:00Z")
		with input.context.exceptions as exceptions
		with data.tollgate.config.global_policy as policy
		with data.tollgate.config.projects as projects
	[r.code | some r in d.waived] == ["freeze_active"]
	d.clears_at == {"cooldown": "2026-06-10T12:20:00Z"}
	d.next_check_at == "2026-06-12T00:00:00Z"
}

test_warn_mode_cooldown_has_no_clearance if {
	d := tollgate.decision with input as at("2026-06-10T10:10:00+02:00")
		with input.context.cooldown.last_accepted_ns as time.parse_rfc3339_ns("2026-06-10T10:00:00+02:00")
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as {"service-api": object.union(projects["service-api"], {"enforcement": "warn"})}
	d.status == "accepted"
	object.filter(d, {"clears_at", "next_check_at"}) == {}
}

# --- a project's own temporal reason ----------------------------------------------------

payments := {"payments": {
	"repositories": ["org/payments"],
	"pipelines": {"deploy-prod": {"type": "deploy"}},
}}

change_board := {"code": "change_board_pending", "message": "The change board meets at 14:00."}

test_project_module_clears_at_joins_the_decision if {
	d := tollgate.decision with input as at("2026-06-10T10:00:00+02:00")
		with input.request.repository as "org/payments"
		with data.tollgate.projects.payments.reasons as {change_board}
		with data.tollgate.projects.payments.clears_at as {
			"change_board_pending": time.parse_rfc3339_ns("2026-06-10T14:00:00+02:00"),
			"not_a_reason_now": time.parse_rfc3339_ns("2026-06-10T11:00:00+02:00"),
		}
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as payments
	d.clears_at == {"change_board_pending": "2026-06-10T12:00:00Z"}
	d.next_check_at == "2026-06-10T12:00:00Z"
}

test_project_reason_without_clears_at_is_not_temporal if {
	d := tollgate.decision with input as at("2026-06-10T10:00:00+02:00")
		with input.request.repository as "org/payments"
		with data.tollgate.projects.payments.reasons as {change_board}
		with data.tollgate.config.global_policy as paris
		with data.tollgate.config.projects as payments
	d.status == "refused"
	object.filter(d, {"clears_at", "next_check_at"}) == {}
}
