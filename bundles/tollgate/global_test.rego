# Tests for step 3, global rules (global.rego): freezes, time windows, weekends.
package tollgate.global_test

import data.tollgate.global
import data.tollgate.messages

base_input := {
	"request": {
		"repository": "org/service-api",
		"branch": "main",
		"pipeline": "deploy-prod",
		"metadata": {"initiator": "github-actions", "run_id": "42", "environment": "production"},
	},
	"context": {
		# Wednesday 10:00 in Paris (CEST).
		"now_ns": time.parse_rfc3339_ns("2026-06-10T10:00:00+02:00"),
		"licence": {"status": "valid"},
	},
}

codes(reasons) := [r.code | some r in reasons]

weekdays := ["monday", "tuesday", "wednesday", "thursday", "friday"]

every_day := array.concat(weekdays, ["saturday", "sunday"])

# --- freezes ------------------------------------------------------------------

launch_freeze := {
	"id": "launch",
	"start": "2026-06-10T12:00:00Z",
	"end": "2026-06-11T12:00:00Z",
	"environments": ["production"],
	"reason": "Product launch",
}

freeze_policy := {"timezone": "Europe/Paris", "freezes": [launch_freeze]}

launch_message := `Freeze "launch" is active until 2026-06-11T12:00:00Z: Product launch.`

# The end of a freeze is shown in the policy's time zone, with its offset.
launch_message_paris := `Freeze "launch" is active until 2026-06-11T14:00:00+02:00: Product launch.`

test_freeze_refuses_at_start_instant if {
	messages.render(global.reasons) == [{"code": "freeze_active", "message": launch_message_paris}] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T12:00:00Z")
		with data.tollgate.config.global_policy as freeze_policy
}

test_freeze_accepts_one_ns_before_start if {
	t := time.parse_rfc3339_ns("2026-06-10T12:00:00Z") - 1
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as t
		with data.tollgate.config.global_policy as freeze_policy
}

test_freeze_accepts_at_end_instant if {
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-11T12:00:00Z")
		with data.tollgate.config.global_policy as freeze_policy
}

test_freeze_refuses_one_ns_before_end if {
	t := time.parse_rfc3339_ns("2026-06-11T12:00:00Z") - 1
	messages.render(global.reasons) == [{"code": "freeze_active", "message": launch_message_paris}] with input as base_input
		with input.context.now_ns as t
		with data.tollgate.config.global_policy as freeze_policy
}

test_freeze_for_another_environment_does_not_apply if {
	messages.render(global.reasons) == [] with input as base_input
		with input.request.metadata.environment as "staging"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T15:00:00Z")
		with data.tollgate.config.global_policy as freeze_policy
}

test_freeze_without_environments_key_applies_to_all if {
	freeze := object.remove(launch_freeze, ["environments"])
	codes(messages.render(global.reasons)) == ["freeze_active"] with input as base_input
		with input.request.metadata.environment as "staging"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T15:00:00Z")
		with data.tollgate.config.global_policy as {"freezes": [freeze]}
}

test_freeze_with_empty_environments_applies_to_none if {
	# The engine rejects "environments": [] at load (omit the key for all).
	freeze := object.union(launch_freeze, {"environments": []})
	codes(messages.render(global.reasons)) == [] with input as base_input
		with input.request.metadata.environment as "sandbox"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T15:00:00Z")
		with data.tollgate.config.global_policy as {"freezes": [freeze]}
}

test_missing_clock_leaves_global_rules_undefined if {
	not global.reasons with input as {"request": base_input.request}
		with data.tollgate.config.global_policy as {"freezes": [launch_freeze]}
}

test_two_active_freezes_give_two_reasons if {
	other := {
		"id": "audit",
		"start": "2026-06-01T00:00:00Z",
		"end": "2026-07-01T00:00:00Z",
		"reason": "Annual audit",
	}
	reasons := messages.render(global.reasons) with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T15:00:00Z")
		with data.tollgate.config.global_policy as {"freezes": [launch_freeze, other]}
	codes(reasons) == ["freeze_active", "freeze_active"]
	{r.message | some r in reasons} == {
		launch_message,
		`Freeze "audit" is active until 2026-07-01T00:00:00Z: Annual audit.`,
	}
}

test_freeze_outside_its_period_is_inactive_even_if_another_applies if {
	past := object.union(launch_freeze, {"id": "past", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"})
	messages.render(global.reasons) == [{"code": "freeze_active", "message": launch_message}] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T15:00:00Z")
		with data.tollgate.config.global_policy as {"freezes": [past, launch_freeze]}
}

test_freeze_timestamps_with_timezone_offset if {
	# 2026-11-27T00:00:00+01:00 is 2026-11-26T23:00:00Z.
	black_friday := {
		"id": "black-friday",
		"start": "2026-11-27T00:00:00+01:00",
		"end": "2026-11-30T00:00:00+01:00",
		"environments": ["production"],
		"reason": "Black Friday",
	}
	before := time.parse_rfc3339_ns("2026-11-26T23:00:00Z") - 1
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as before
		with data.tollgate.config.global_policy as {"freezes": [black_friday]}
	messages.render(global.reasons) == [{
		"code": "freeze_active",
		"message": `Freeze "black-friday" is active until 2026-11-29T23:00:00Z: Black Friday.`,
	}] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-11-26T23:00:00Z")
		with data.tollgate.config.global_policy as {"freezes": [black_friday]}
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-11-29T23:00:00Z")
		with data.tollgate.config.global_policy as {"freezes": [black_friday]}
}

test_freeze_without_reason_says_so if {
	freeze := object.remove(launch_freeze, ["reason"])
	messages.render(global.reasons) == [{
		"code": "freeze_active",
		"message": `Freeze "launch" is active until 2026-06-11T12:00:00Z: no reason given.`,
	}] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T15:00:00Z")
		with data.tollgate.config.global_policy as {"freezes": [freeze]}
}

test_freeze_without_id_still_refuses if {
	freeze := object.remove(launch_freeze, ["id"])
	codes(messages.render(global.reasons)) == ["freeze_active"] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T15:00:00Z")
		with data.tollgate.config.global_policy as {"freezes": [freeze]}
}

# --- time windows (Europe/Paris) ---------------------------------------------

office_hours := {"days": weekdays, "start": "08:00", "end": "18:00", "environments": ["production"]}

window_policy := {"timezone": "Europe/Paris", "time_windows": [office_hours]}

office_hours_violation(day_time) := [{
	"code": "time_window_violation",
	"message": sprintf(
		"%s (Europe/Paris) is outside the deployment windows for production: monday,tuesday,wednesday,thursday,friday 08:00-18:00.",
		[day_time],
	),
}]

test_window_refuses_at_0759_local if {
	messages.render(global.reasons) == office_hours_violation("wednesday 07:59") with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T07:59:00+02:00")
		with data.tollgate.config.global_policy as window_policy
}

test_window_refuses_one_ns_before_0800_local if {
	t := time.parse_rfc3339_ns("2026-06-10T08:00:00+02:00") - 1
	codes(messages.render(global.reasons)) == ["time_window_violation"] with input as base_input
		with input.context.now_ns as t
		with data.tollgate.config.global_policy as window_policy
}

test_window_accepts_at_exactly_0800_local if {
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T08:00:00+02:00")
		with data.tollgate.config.global_policy as window_policy
}

test_window_accepts_at_1759_local if {
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T17:59:00+02:00")
		with data.tollgate.config.global_policy as window_policy
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T17:59:59.999999999+02:00")
		with data.tollgate.config.global_policy as window_policy
}

test_window_refuses_at_exactly_1800_local if {
	messages.render(global.reasons) == office_hours_violation("wednesday 18:00") with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T18:00:00+02:00")
		with data.tollgate.config.global_policy as window_policy
}

test_window_refuses_on_a_day_it_does_not_list if {
	# Saturday 10:00 is inside 08:00-18:00 but not on a listed day.
	messages.render(global.reasons) == office_hours_violation("saturday 10:00") with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T10:00:00+02:00")
		with data.tollgate.config.global_policy as window_policy
}

test_windows_for_another_environment_only_do_not_restrict if {
	global.windows == [] with input as base_input
		with input.request.metadata.environment as "staging"
		with data.tollgate.config.global_policy as window_policy
	messages.render(global.reasons) == [] with input as base_input
		with input.request.metadata.environment as "staging"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T03:00:00+02:00")
		with data.tollgate.config.global_policy as window_policy
}

test_no_windows_at_all_do_not_restrict if {
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T03:00:00+02:00")
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris"}
}

test_window_without_environments_applies_to_every_environment if {
	window := object.remove(office_hours, ["environments"])
	messages.render(global.reasons) == [{
		"code": "time_window_violation",
		"message": "wednesday 07:00 (Europe/Paris) is outside the deployment windows for staging: monday,tuesday,wednesday,thursday,friday 08:00-18:00.",
	}] with input as base_input
		with input.request.metadata.environment as "staging"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T07:00:00+02:00")
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris", "time_windows": [window]}
}

split_windows := {"timezone": "Europe/Paris", "time_windows": [
	{"days": weekdays, "start": "08:00", "end": "12:00", "environments": ["production"]},
	{"days": weekdays, "start": "14:00", "end": "18:00", "environments": ["production"]},
	{"days": ["saturday"], "start": "10:00", "end": "11:00"},
	{"days": every_day, "start": "00:00", "end": "23:59", "environments": ["staging"]},
]}

test_being_in_any_one_of_several_windows_is_enough if {
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T09:00:00+02:00")
		with data.tollgate.config.global_policy as split_windows
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T15:00:00+02:00")
		with data.tollgate.config.global_policy as split_windows
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T10:30:00+02:00")
		with data.tollgate.config.global_policy as split_windows
}

test_outside_every_window_lists_the_windows_that_apply if {
	messages.render(global.reasons) == [{
		"code": "time_window_violation",
		"message": "wednesday 13:00 (Europe/Paris) is outside the deployment windows for production: monday,tuesday,wednesday,thursday,friday 08:00-12:00; monday,tuesday,wednesday,thursday,friday 14:00-18:00; saturday 10:00-11:00.",
	}] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T13:00:00+02:00")
		with data.tollgate.config.global_policy as split_windows
}

# Daily 08:00-18:00 in Paris, to look at the daylight saving changes (both
# fall on a Sunday in 2026).
daily_policy := {"timezone": "Europe/Paris", "time_windows": [{"days": every_day, "start": "08:00", "end": "18:00"}]}

test_dst_spring_forward_day_uses_cest if {
	# 2026-03-29: 02:00 CET -> 03:00 CEST, so 06:30Z is 08:30 local.
	t := time.parse_rfc3339_ns("2026-03-29T06:30:00Z")
	global.local_day == "sunday" with input as base_input with input.context.now_ns as t
		with data.tollgate.config.global_policy as daily_policy
	global.local_time == "08:30" with input as base_input with input.context.now_ns as t
		with data.tollgate.config.global_policy as daily_policy
	messages.render(global.reasons) == [] with input as base_input with input.context.now_ns as t
		with data.tollgate.config.global_policy as daily_policy
}

test_dst_day_before_spring_forward_uses_cet if {
	# 2026-03-28 is still CET: 06:30Z is 07:30 local, before the window.
	t := time.parse_rfc3339_ns("2026-03-28T06:30:00Z")
	global.local_time == "07:30" with input as base_input with input.context.now_ns as t
		with data.tollgate.config.global_policy as daily_policy
	messages.render(global.reasons) == [{
		"code": "time_window_violation",
		"message": "saturday 07:30 (Europe/Paris) is outside the deployment windows for production: monday,tuesday,wednesday,thursday,friday,saturday,sunday 08:00-18:00.",
	}] with input as base_input with input.context.now_ns as t
		with data.tollgate.config.global_policy as daily_policy
}

test_dst_fall_back_day_uses_cet if {
	# 2026-10-25: 03:00 CEST -> 02:00 CET, so 07:30Z is 08:30 local ...
	in_window := time.parse_rfc3339_ns("2026-10-25T07:30:00Z")
	global.local_time == "08:30" with input as base_input with input.context.now_ns as in_window
		with data.tollgate.config.global_policy as daily_policy
	messages.render(global.reasons) == [] with input as base_input with input.context.now_ns as in_window
		with data.tollgate.config.global_policy as daily_policy

	# ... and 06:30Z, which was 08:30 the day before (CEST), is now 07:30.
	early := time.parse_rfc3339_ns("2026-10-25T06:30:00Z")
	global.local_time == "07:30" with input as base_input with input.context.now_ns as early
		with data.tollgate.config.global_policy as daily_policy
	codes(messages.render(global.reasons)) == ["time_window_violation"] with input as base_input with input.context.now_ns as early
		with data.tollgate.config.global_policy as daily_policy
}

test_dst_day_before_fall_back_uses_cest if {
	t := time.parse_rfc3339_ns("2026-10-24T06:30:00Z")
	global.local_time == "08:30" with input as base_input with input.context.now_ns as t
		with data.tollgate.config.global_policy as daily_policy
	messages.render(global.reasons) == [] with input as base_input with input.context.now_ns as t
		with data.tollgate.config.global_policy as daily_policy
}

test_timezone_absent_defaults_to_utc if {
	policy := {"time_windows": [office_hours]}
	global.timezone == "UTC" with data.tollgate.config.global_policy as policy

	# 07:30Z is 09:30 in Paris, but windows are read in UTC.
	messages.render(global.reasons) == [{
		"code": "time_window_violation",
		"message": "wednesday 07:30 (UTC) is outside the deployment windows for production: monday,tuesday,wednesday,thursday,friday 08:00-18:00.",
	}] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T07:30:00Z")
		with data.tollgate.config.global_policy as policy
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T08:00:00Z")
		with data.tollgate.config.global_policy as policy
}

# --- weekends -------------------------------------------------------------------

weekend_policy := {"timezone": "Europe/Paris", "weekends": {"allowed": false, "environments": ["production"]}}

weekend_violation(day) := [{
	"code": "weekend_violation",
	"message": sprintf("Deployments to production are not allowed on weekends (it is %s in Europe/Paris).", [day]),
}]

test_weekend_refuses_saturday_in_listed_environment if {
	messages.render(global.reasons) == weekend_violation("saturday") with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T10:00:00+02:00")
		with data.tollgate.config.global_policy as weekend_policy
}

test_weekend_refuses_sunday_in_listed_environment if {
	messages.render(global.reasons) == weekend_violation("sunday") with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-14T23:59:00+02:00")
		with data.tollgate.config.global_policy as weekend_policy
}

test_weekend_accepts_a_weekday if {
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-12T23:59:00+02:00")
		with data.tollgate.config.global_policy as weekend_policy
}

test_weekend_uses_the_local_weekday_not_utc if {
	# Friday 2026-01-16 23:30 UTC is Saturday 00:30 in Paris (CET).
	t := time.parse_rfc3339_ns("2026-01-16T23:30:00Z")
	lower(time.weekday(t)) == "friday"
	messages.render(global.reasons) == weekend_violation("saturday") with input as base_input
		with input.context.now_ns as t
		with data.tollgate.config.global_policy as weekend_policy
}

test_weekend_ends_at_local_monday_midnight if {
	# Sunday 2026-01-18 23:30 UTC is Monday 00:30 in Paris.
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-01-18T23:30:00Z")
		with data.tollgate.config.global_policy as weekend_policy
}

test_weekend_allowed_true_accepts if {
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T10:00:00+02:00")
		with data.tollgate.config.global_policy as {"weekends": {"allowed": true, "environments": ["production"]}}
}

test_weekends_without_allowed_key_refuses if {
	# "refused unless allowed is true": a missing flag is not permission.
	messages.render(global.reasons) == weekend_violation("saturday") with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T10:00:00+02:00")
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris", "weekends": {"environments": ["production"]}}
}

test_weekends_absent_allows if {
	messages.render(global.reasons) == [] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T10:00:00+02:00")
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris"}
}

test_weekend_unlisted_environment_allows if {
	messages.render(global.reasons) == [] with input as base_input
		with input.request.metadata.environment as "staging"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T10:00:00+02:00")
		with data.tollgate.config.global_policy as weekend_policy
}

test_weekend_without_environments_applies_to_all if {
	messages.render(global.reasons) == [{
		"code": "weekend_violation",
		"message": "Deployments to staging are not allowed on weekends (it is sunday in Europe/Paris).",
	}] with input as base_input
		with input.request.metadata.environment as "staging"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-14T10:00:00+02:00")
		with data.tollgate.config.global_policy as {"timezone": "Europe/Paris", "weekends": {"allowed": false}}
}

# --- order ------------------------------------------------------------------------

test_global_reasons_in_contract_order if {
	policy := {
		"timezone": "Europe/Paris",
		"freezes": [{"id": "summer", "start": "2026-06-01T00:00:00Z", "end": "2026-09-01T00:00:00Z"}],
		"time_windows": [office_hours],
		"weekends": {"allowed": false},
	}
	codes(messages.render(global.reasons)) == ["freeze_active", "time_window_violation", "weekend_violation"] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T07:00:00+02:00")
		with data.tollgate.config.global_policy as policy
}

# --- recurring freezes ------------------------------------------------------------

recurring(kind, schedule) := {"timezone": "Europe/Paris", "freezes": [{
	"id": "recurring", "reason": "Recurring freeze",
	kind: schedule,
}]}

friday_afternoons := recurring("weekly", {"days": ["friday"], "start": "16:00", "end": "24:00"})

frozen_at(policy, instant) if {
	codes(messages.render(global.reasons)) == ["freeze_active"] with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns(instant)
		with data.tollgate.config.global_policy as policy
}

test_weekly_freeze_from_start_to_midnight if {
	frozen_at(friday_afternoons, "2026-06-12T16:00:00+02:00")
	frozen_at(friday_afternoons, "2026-06-12T23:59:59+02:00")
	not frozen_at(friday_afternoons, "2026-06-12T15:59:59+02:00")
	not frozen_at(friday_afternoons, "2026-06-13T00:00:00+02:00")
	not frozen_at(friday_afternoons, "2026-06-11T17:00:00+02:00")
}

test_weekly_freeze_keeps_local_hours_across_dst if {
	# 14:30 UTC is 16:30 in Paris in summer (CEST), 15:30 in winter (CET).
	frozen_at(friday_afternoons, "2026-06-12T14:30:00Z")
	not frozen_at(friday_afternoons, "2026-11-13T14:30:00Z")
	frozen_at(friday_afternoons, "2026-11-13T15:00:00Z")
}

test_weekly_freeze_on_the_day_clocks_go_forward if {
	# 2026-03-29, Paris: 02:00 CET jumps to 03:00 CEST; 01:30 UTC is 03:30 local.
	early := recurring("weekly", {"days": ["sunday"], "start": "03:00", "end": "04:00"})
	frozen_at(early, "2026-03-29T01:30:00Z")
	not frozen_at(early, "2026-03-29T00:59:59Z")
}

test_monthly_freeze_on_days_the_month_has if {
	month_end := recurring("monthly", {"days": [31], "start": "00:00", "end": "24:00"})
	frozen_at(month_end, "2026-07-31T10:00:00+02:00")
	not frozen_at(month_end, "2026-06-30T10:00:00+02:00")
	not frozen_at(month_end, "2026-08-01T00:00:00+02:00")

	# The local date, not the UTC one: 22:30 UTC on the 30th is the 31st in Paris.
	frozen_at(month_end, "2026-07-30T22:30:00Z")
}

test_yearly_freeze_on_its_local_dates if {
	christmas := recurring("yearly", {"dates": ["12-24", "12-25"], "start": "00:00", "end": "24:00"})
	frozen_at(christmas, "2026-12-24T00:00:00+01:00")
	frozen_at(christmas, "2027-12-25T23:59:00+01:00")
	not frozen_at(christmas, "2026-12-26T00:00:00+01:00")
	not frozen_at(christmas, "2026-12-23T22:59:59Z")
	frozen_at(christmas, "2026-12-23T23:00:00Z")
}

test_recurring_freeze_messages_say_when if {
	messages.render(global.reasons)[0].message == `Freeze "recurring" is active every friday 16:00-24:00 (Europe/Paris): Recurring freeze.` with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-12T17:00:00+02:00")
		with data.tollgate.config.global_policy as friday_afternoons
	messages.render(global.reasons)[0].message == `Freeze "recurring" is active on days 1,15 of every month 09:00-10:00 (Europe/Paris): Recurring freeze.` with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-15T09:30:00+02:00")
		with data.tollgate.config.global_policy as recurring("monthly", {"days": [1, 15], "start": "09:00", "end": "10:00"})
	messages.render(global.reasons)[0].message == `Freeze "recurring" is active every year on 06-15 09:00-10:00 (Europe/Paris): Recurring freeze.` with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-15T09:30:00+02:00")
		with data.tollgate.config.global_policy as recurring("yearly", {"dates": ["06-15"], "start": "09:00", "end": "10:00"})
}

test_recurring_freeze_for_another_environment_does_not_apply if {
	policy := {"timezone": "Europe/Paris", "freezes": [{
		"id": "staging-fridays", "environments": ["staging"],
		"weekly": {"days": ["friday"], "start": "00:00", "end": "24:00"},
	}]}
	not frozen_at(policy, "2026-06-12T12:00:00+02:00")
}
