# Tests for step 4, local rules (local.rego): branches, pipeline types,
# cooldown, the project's own module, and warn mode.
package tollgate.local_test

import data.tollgate.local
import data.tollgate.messages

projects := {
	"service-api": {
		"repositories": ["org/service-api"],
		"allowed_branches": ["main", "release/*"],
		"pipelines": {
			"deploy-prod": {"type": "deploy", "cooldown_minutes": 30},
			"deploy-staging": {"type": "deploy"},
			"hotfix-prod": {"type": "hotfix", "allowed_branches": ["hotfix/*"]},
			"preview": {"type": "deploy", "cooldown_minutes": 0},
			"feature": {"type": "test", "allowed_branches": ["feature/**"]},
		},
		"environments": {
			"production": {"pipeline_types": ["deploy", "hotfix"]},
			"staging": {"pipeline_types": ["deploy", "test"]},
		},
	},
	"plain": {
		"repositories": ["org/plain"],
		"pipelines": {"deploy": {"type": "deploy"}},
	},
	"payments": {
		"repositories": ["org/payments"],
		"allowed_branches": ["main"],
		"pipelines": {"deploy-prod": {"type": "deploy", "cooldown_minutes": 60}},
		"environments": {"production": {"pipeline_types": ["deploy"]}},
	},
	"trial": {
		"repositories": ["org/trial"],
		"enforcement": "warn",
		"allowed_branches": ["main"],
		"pipelines": {"deploy-prod": {"type": "deploy", "cooldown_minutes": 15}},
	},
}

policy := {"timezone": "Europe/Paris"}

now := time.parse_rfc3339_ns("2026-06-10T10:00:00+02:00")

minute := 60000000000

base_input := {
	"request": {
		"repository": "org/service-api",
		"branch": "main",
		"pipeline": "deploy-prod",
		"metadata": {"initiator": "github-actions", "run_id": "42", "environment": "production"},
	},
	"context": {"now_ns": now, "licence": {"status": "valid"}},
}

codes(reasons) := [r.code | some r in reasons]

# --- branches -------------------------------------------------------------------

test_branch_exact_match_is_allowed if {
	messages.render(local.findings) == [] with input as base_input
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_branch_not_listed_is_branch_not_allowed if {
	messages.render(local.findings) == [{
		"code": "branch_not_allowed",
		"message": `Branch "develop" may not run pipeline "deploy-prod"; allowed: main, release/*.`,
	}] with input as base_input
		with input.request.branch as "develop"
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_branch_exact_match_is_not_a_prefix_match if {
	codes(messages.render(local.branch_reasons)) == ["branch_not_allowed"] with input as base_input
		with input.request.branch as "main-old"
		with data.tollgate.config.projects as projects
}

test_branch_glob_matches_one_segment if {
	messages.render(local.branch_reasons) == [] with input as base_input
		with input.request.branch as "release/1.2"
		with data.tollgate.config.projects as projects
}

test_branch_glob_does_not_cross_the_separator if {
	codes(messages.render(local.branch_reasons)) == ["branch_not_allowed"] with input as base_input
		with input.request.branch as "release/1.2/x"
		with data.tollgate.config.projects as projects
}

test_branch_glob_prefix_must_match_the_whole_segment if {
	codes(messages.render(local.branch_reasons)) == ["branch_not_allowed"] with input as base_input
		with input.request.branch as "releases/1"
		with data.tollgate.config.projects as projects
}

test_branch_double_star_crosses_separators if {
	messages.render(local.branch_reasons) == [] with input as base_input
		with input.request.pipeline as "feature"
		with input.request.branch as "feature/team/login/v2"
		with data.tollgate.config.projects as projects
	codes(messages.render(local.branch_reasons)) == ["branch_not_allowed"] with input as base_input
		with input.request.pipeline as "feature"
		with input.request.branch as "bugfix/team/login"
		with data.tollgate.config.projects as projects
}

test_pipeline_branches_replace_project_branches if {
	messages.render(local.branch_reasons) == [] with input as base_input
		with input.request.pipeline as "hotfix-prod"
		with input.request.branch as "hotfix/login"
		with data.tollgate.config.projects as projects

	# main is allowed by the project, but hotfix-prod has its own list.
	messages.render(local.branch_reasons) == [{
		"code": "branch_not_allowed",
		"message": `Branch "main" may not run pipeline "hotfix-prod"; allowed: hotfix/*.`,
	}] with input as base_input
		with input.request.pipeline as "hotfix-prod"
		with data.tollgate.config.projects as projects
}

test_no_branch_list_allows_any_branch if {
	messages.render(local.findings) == [] with input as base_input
		with input.request.repository as "org/plain"
		with input.request.pipeline as "deploy"
		with input.request.branch as "any/thing/at/all"
		with data.tollgate.config.projects as projects
}

# --- pipeline type per environment ----------------------------------------------

test_pipeline_type_listed_for_environment_is_allowed if {
	messages.render(local.type_reasons) == [] with input as base_input
		with input.request.pipeline as "deploy-staging"
		with input.request.metadata.environment as "staging"
		with data.tollgate.config.projects as projects
}

test_pipeline_type_not_listed_is_pipeline_not_allowed if {
	messages.render(local.findings) == [{
		"code": "pipeline_not_allowed",
		"message": `Pipelines of type "hotfix" may not run in staging; allowed: deploy, test.`,
	}] with input as base_input
		with input.request.pipeline as "hotfix-prod"
		with input.request.branch as "hotfix/login"
		with input.request.metadata.environment as "staging"
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_undeclared_environment_is_pipeline_not_allowed if {
	messages.render(local.findings) == [{
		"code": "pipeline_not_allowed",
		"message": `Project "service-api" does not declare environment "qa".`,
	}] with input as base_input
		with input.request.pipeline as "deploy-staging"
		with input.request.metadata.environment as "qa"
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_project_without_environments_has_no_type_restriction if {
	messages.render(local.type_reasons) == [] with input as base_input
		with input.request.repository as "org/plain"
		with input.request.pipeline as "deploy"
		with input.request.metadata.environment as "anywhere"
		with data.tollgate.config.projects as projects
}

# --- cooldown -------------------------------------------------------------------

test_cooldown_refuses_29_minutes_after_acceptance if {
	last := now - (29 * minute)
	messages.render(local.findings) == [{
		"code": "cooldown",
		"message": `Cooldown active for pipeline "deploy-prod" on branch "main": last accepted at 2026-06-10T09:31:00+02:00, next run allowed from 2026-06-10T10:01:00+02:00.`,
	}] with input as base_input
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_cooldown_refuses_one_ns_before_it_ends if {
	last := (now - (30 * minute)) + 1
	codes(messages.render(local.findings)) == ["cooldown"] with input as base_input
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_cooldown_ends_exactly_cooldown_minutes_after_acceptance if {
	last := now - (30 * minute)
	messages.render(local.findings) == [] with input as base_input
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_no_last_accepted_means_no_cooldown if {
	messages.render(local.cooldown_reasons) == [] with input as base_input
		with input.context.cooldown as {}
		with data.tollgate.config.projects as projects
	messages.render(local.cooldown_reasons) == [] with input as base_input
		with data.tollgate.config.projects as projects
}

test_cooldown_minutes_absent_means_no_cooldown if {
	last := now - minute
	messages.render(local.findings) == [] with input as base_input
		with input.request.pipeline as "deploy-staging"
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_cooldown_minutes_zero_means_no_cooldown if {
	last := now - minute
	messages.render(local.findings) == [] with input as base_input
		with input.request.pipeline as "preview"
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as policy
}

test_cooldown_message_uses_utc_without_timezone if {
	last := now - minute
	messages.render(local.cooldown_reasons) == [{
		"code": "cooldown",
		"message": `Cooldown active for pipeline "deploy-prod" on branch "main": last accepted at 2026-06-10T07:59:00Z, next run allowed from 2026-06-10T08:29:00Z.`,
	}] with input as base_input
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as {}
}

# --- the project's own module, order, unmanaged, warn mode ----------------------

test_project_module_reason_joins_local_findings if {
	messages.render(local.findings) == [{
		"code": "initiator_not_allowed",
		"message": `Production deployments of payments must be started by CI (github-actions, gitlab-ci), not by "alice".`,
	}] with input as base_input
		with input.request.repository as "org/payments"
		with input.request.metadata.initiator as "alice"
		with data.tollgate.config.projects as projects
}

test_project_without_module_has_no_module_reasons if {
	local.project_reasons == [] with input as base_input
		with input.request.metadata.initiator as "alice"
		with data.tollgate.config.projects as projects
}

test_local_findings_in_contract_order if {
	last := now - minute
	codes(messages.render(local.findings)) == ["branch_not_allowed", "pipeline_not_allowed", "cooldown", "initiator_not_allowed"] with input as base_input
		with input.request.repository as "org/payments"
		with input.request.branch as "develop"
		with input.request.metadata.initiator as "alice"
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as object.union(projects, {"payments": {"environments": {"production": {"pipeline_types": ["build"]}}}})
}

test_unmanaged_request_skips_local_rules if {
	last := now - minute
	messages.render(local.findings) == [] with input as base_input
		with input.request.repository as "org/unknown"
		with input.request.branch as "develop"
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
	messages.render(local.findings) == [] with input as base_input
		with input.request.pipeline as "nightly"
		with input.request.branch as "develop"
		with data.tollgate.config.projects as projects
}

test_enforce_mode_refuses_and_has_no_warnings if {
	codes(messages.render(local.refusals)) == ["branch_not_allowed"] with input as base_input
		with input.request.branch as "develop"
		with data.tollgate.config.projects as projects
	messages.render(local.warnings) == [] with input as base_input
		with input.request.branch as "develop"
		with data.tollgate.config.projects as projects
}

test_warn_mode_turns_local_refusals_into_warnings if {
	last := now - minute
	messages.render(local.refusals) == [] with input as base_input
		with input.request.repository as "org/trial"
		with input.request.branch as "develop"
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
	codes(messages.render(local.warnings)) == ["branch_not_allowed", "cooldown"] with input as base_input
		with input.request.repository as "org/trial"
		with input.request.branch as "develop"
		with input.context.cooldown.last_accepted_ns as last
		with data.tollgate.config.projects as projects
}

test_pipeline_without_type_fails_closed if {
	# A broken configuration must not silently drop the local rules: findings
	# is undefined, so the decision is undefined and the engine refuses with
	# policy_error.
	broken := object.union(projects, {"service-api": {"pipelines": {"untyped": {}}}})
	not local.findings with input as base_input
		with input.request.pipeline as "untyped"
		with input.request.branch as "develop"
		with data.tollgate.config.projects as broken
}
