# Tests for the entrypoint data.tollgate.decision (decision.rego): every reason
# code end to end, the licence short-circuit, unmanaged projects, the order of
# reasons and warn mode. They use their own configuration (with), never the
# shipped files: editing the configuration must not break the bundle's tests.
package tollgate.decision_test

import data.tollgate

minute := 60000000000

# Wednesday 2026-06-10, 10:00 in Paris: inside the windows, outside freezes.
weekday_10h := time.parse_rfc3339_ns("2026-06-10T10:00:00+02:00")

# The design's example request.
request := {
	"repository": "org/service-api",
	"branch": "main",
	"pipeline": "deploy-prod",
	"metadata": {"initiator": "github-actions", "run_id": "42", "environment": "production"},
}

base_input := {
	"request": request,
	"context": {"now_ns": weekday_10h, "licence": {"status": "valid", "detail": ""}},
}

# A configuration under test, independent of the shipped files.
global_policy := {
	"timezone": "Europe/Paris",
	"unmanaged_projects": "refuse",
	"freezes": [{
		"id": "summer-sale",
		"start": "2026-07-01T00:00:00+02:00",
		"end": "2026-07-15T00:00:00+02:00",
		"environments": ["production"],
		"reason": "Summer sale",
	}],
	"time_windows": [{
		"days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
		"start": "08:00", "end": "18:00",
		"environments": ["production"],
	}],
	"weekends": {"allowed": false, "environments": ["production"]},
}

projects := {
	"service-api": {
		"repositories": ["org/service-api"],
		"allowed_branches": ["main", "release/*"],
		"pipelines": {
			"deploy-prod": {"type": "deploy", "cooldown_minutes": 30},
			"deploy-staging": {"type": "deploy"},
			"hotfix-prod": {"type": "hotfix", "allowed_branches": ["hotfix/*"]},
		},
		"environments": {
			"production": {"pipeline_types": ["deploy", "hotfix"]},
			"staging": {"pipeline_types": ["deploy", "test"]},
		},
	},
	"payments": {
		"repositories": ["org/payments", "org/payments-worker"],
		"allowed_branches": ["main"],
		"pipelines": {"deploy-prod": {"type": "deploy", "cooldown_minutes": 60}},
		"environments": {"production": {"pipeline_types": ["deploy"]}},
	},
	"web-frontend": {
		"repositories": ["org/web-frontend"],
		"enforcement": "warn",
		"allowed_branches": ["main"],
		"pipelines": {"deploy-prod": {"type": "deploy", "cooldown_minutes": 15}},
	},
}

codes(reasons) := [r.code | some r in reasons]

# A Saturday during the summer-sale freeze, 07:00 in Paris.
frozen_saturday_7h := time.parse_rfc3339_ns("2026-07-04T07:00:00+02:00")

# --- accepted -------------------------------------------------------------------

test_accepted_decision_has_empty_reasons_and_warnings if {
	tollgate.decision == {
		"status": "accepted",
		"reasons": [],
		"warnings": [],
		"waived": [],
		"suppressed": [],
		"project": "service-api",
		"pipeline": "deploy-prod",
		"branch": "main",
		"environment": "production",
	} with input as base_input
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
}

# --- every reason code, end to end ----------------------------------------------

test_licence_invalid_refuses if {
	d := tollgate.decision with input as base_input
		with input.context.licence as {"status": "invalid", "detail": "bad signature"}
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.reasons == [{"code": "licence_invalid", "message": "The tollgate licence is invalid: bad signature."}]
	d.warnings == []
}

test_licence_expired_refuses if {
	d := tollgate.decision with input as base_input
		with input.context.licence as {"status": "expired", "detail": "expired at 2026-01-01T00:00:00Z"}
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.reasons == [{
		"code": "licence_expired",
		"message": "The tollgate licence is expired or not yet valid: expired at 2026-01-01T00:00:00Z.",
	}]
}

test_project_not_managed_refuses_with_empty_project if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.project == ""
	d.reasons == [{
		"code": "project_not_managed",
		"message": `Repository "org/unknown" is not managed by any tollgate project.`,
	}]
}

test_undeclared_pipeline_refuses_with_project_not_managed if {
	d := tollgate.decision with input as base_input
		with input.request.pipeline as "nightly"
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.reasons == [{
		"code": "project_not_managed",
		"message": `Pipeline "nightly" is not declared in project "service-api".`,
	}]
}

test_freeze_active_refuses if {
	d := tollgate.decision with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-07-01T10:00:00+02:00")
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.reasons == [{
		"code": "freeze_active",
		"message": `Freeze "summer-sale" is active until 2026-07-15T00:00:00+02:00: Summer sale.`,
	}]
}

test_time_window_violation_refuses if {
	d := tollgate.decision with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-10T19:00:00+02:00")
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	codes(d.reasons) == ["time_window_violation"]
	contains(d.reasons[0].message, "wednesday 19:00 (Europe/Paris)")
}

test_weekend_violation_refuses if {
	# No time windows here, so the weekend rule is the only reason.
	d := tollgate.decision with input as base_input
		with input.context.now_ns as time.parse_rfc3339_ns("2026-06-13T10:00:00+02:00")
		with data.tollgate.config.global_policy as object.remove(global_policy, ["time_windows"])
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.reasons == [{
		"code": "weekend_violation",
		"message": "Deployments to production are not allowed on weekends (it is saturday in Europe/Paris).",
	}]
}

test_branch_not_allowed_refuses if {
	d := tollgate.decision with input as base_input
		with input.request.branch as "feature/x"
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.branch == "feature/x"
	d.reasons == [{
		"code": "branch_not_allowed",
		"message": `Branch "feature/x" may not run pipeline "deploy-prod"; allowed: main, release/*.`,
	}]
}

test_pipeline_not_allowed_refuses if {
	d := tollgate.decision with input as base_input
		with input.request.pipeline as "hotfix-prod"
		with input.request.branch as "hotfix/login"
		with input.request.metadata.environment as "staging"
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.environment == "staging"
	d.reasons == [{
		"code": "pipeline_not_allowed",
		"message": `Pipelines of type "hotfix" may not run in staging; allowed: deploy, test.`,
	}]
}

test_cooldown_refuses if {
	last := weekday_10h - (29 * minute)
	d := tollgate.decision with input as base_input
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	codes(d.reasons) == ["cooldown"]
	contains(d.reasons[0].message, "next run allowed from 2026-06-10T10:01:00+02:00")
}

test_cooldown_boundary_accepts if {
	last := weekday_10h - (30 * minute)
	d := tollgate.decision with input as base_input
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "accepted"
	d.reasons == []
}

test_initiator_not_allowed_refuses if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/payments-worker"
		with input.request.metadata.initiator as "alice"
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.project == "payments"
	d.reasons == [{
		"code": "initiator_not_allowed",
		"message": `Production deployments of payments must be started by CI (github-actions, gitlab-ci), not by "alice".`,
	}]
}

# --- the licence stops evaluation -----------------------------------------------

test_invalid_licence_is_the_only_reason if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/unknown"
		with input.context.now_ns as frozen_saturday_7h
		with input.context.licence as {"status": "invalid", "detail": "bad signature"}
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	codes(d.reasons) == ["licence_invalid"]
	d.warnings == []
}

test_expired_licence_is_the_only_reason_and_drops_warnings if {
	last := frozen_saturday_7h - minute
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/web-frontend"
		with input.request.branch as "develop"
		with input.context.now_ns as frozen_saturday_7h
		with input.context.cooldown.last_accepted_ns as last
		with input.context.licence as {"status": "expired", "detail": "expired"}
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	codes(d.reasons) == ["licence_expired"]
	d.warnings == []
}

test_missing_context_refuses_with_licence_invalid if {
	d := tollgate.decision with input as {"request": request}
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	d.reasons == [{
		"code": "licence_invalid",
		"message": "The tollgate licence is invalid: the licence could not be checked.",
	}]
	d.warnings == []
}

test_unknown_licence_status_refuses_with_licence_invalid if {
	d := tollgate.decision with input as base_input
		with input.context.licence as {"status": "trial"}
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	codes(d.reasons) == ["licence_invalid"]
}

# --- unmanaged projects ---------------------------------------------------------

test_unmanaged_with_accept_policy_is_accepted if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.global_policy as object.union(global_policy, {"unmanaged_projects": "accept"})
		with data.tollgate.config.projects as projects
	d.status == "accepted"
	d.reasons == []
	d.project == ""
}

test_unmanaged_with_accept_policy_still_gets_global_rules if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/unknown"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-07-01T10:00:00+02:00")
		with data.tollgate.config.global_policy as object.union(global_policy, {"unmanaged_projects": "accept"})
		with data.tollgate.config.projects as projects
	d.status == "refused"
	codes(d.reasons) == ["freeze_active"]
}

test_unmanaged_with_accept_policy_skips_local_rules if {
	# The repository is known, the pipeline is not: the project's branch list,
	# cooldown and module do not apply.
	last := weekday_10h - minute
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/payments"
		with input.request.pipeline as "nightly"
		with input.request.branch as "develop"
		with input.request.metadata.initiator as "alice"
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.global_policy as object.union(global_policy, {"unmanaged_projects": "accept"})
		with data.tollgate.config.projects as projects
	d.status == "accepted"
	d.reasons == []
	d.warnings == []
}

test_unmanaged_refused_reports_global_rules_too if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/unknown"
		with input.context.now_ns as frozen_saturday_7h
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	codes(d.reasons) == ["project_not_managed", "freeze_active", "time_window_violation", "weekend_violation"]
}

test_unmanaged_policy_absent_refuses if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.global_policy as object.remove(global_policy, ["unmanaged_projects"])
		with data.tollgate.config.projects as projects
	codes(d.reasons) == ["project_not_managed"]
}

# --- several reasons at once, in contract order ---------------------------------

test_all_reasons_are_reported_in_contract_order if {
	last := frozen_saturday_7h - minute
	d := tollgate.decision with input as base_input
		with input.request.branch as "develop"
		with input.context.now_ns as frozen_saturday_7h
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	codes(d.reasons) == [
		"freeze_active",
		"time_window_violation",
		"weekend_violation",
		"branch_not_allowed",
		"cooldown",
	]
	d.warnings == []
}

test_project_module_reason_comes_after_the_local_rules if {
	last := frozen_saturday_7h - minute
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/payments"
		with input.request.branch as "develop"
		with input.request.metadata.initiator as "alice"
		with input.request.metadata.environment as "production"
		with input.context.now_ns as frozen_saturday_7h
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as object.union(projects, {"payments": {"environments": {"production": {"pipeline_types": ["build"]}}}})
	codes(d.reasons) == [
		"freeze_active",
		"time_window_violation",
		"weekend_violation",
		"branch_not_allowed",
		"pipeline_not_allowed",
		"cooldown",
		"initiator_not_allowed",
	]
}

# --- warn mode --------------------------------------------------------------------

test_warn_mode_accepts_with_local_refusals_as_warnings if {
	last := weekday_10h - minute
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/web-frontend"
		with input.request.branch as "develop"
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "accepted"
	d.reasons == []
	codes(d.warnings) == ["branch_not_allowed", "cooldown"]
	d.warnings[0].message == `Branch "develop" may not run pipeline "deploy-prod"; allowed: main.`
}

test_warn_mode_still_refuses_global_rules if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/web-frontend"
		with input.request.branch as "develop"
		with input.context.now_ns as time.parse_rfc3339_ns("2026-07-01T10:00:00+02:00")
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as projects
	d.status == "refused"
	codes(d.reasons) == ["freeze_active"]
	codes(d.warnings) == ["branch_not_allowed"]
}

test_warn_mode_turns_project_module_reason_into_warning if {
	d := tollgate.decision with input as base_input
		with input.request.repository as "org/payments"
		with input.request.metadata.initiator as "alice"
		with data.tollgate.config.global_policy as global_policy
		with data.tollgate.config.projects as object.union(projects, {"payments": {"enforcement": "warn"}})
	d.status == "accepted"
	d.reasons == []
	codes(d.warnings) == ["initiator_not_allowed"]
}
