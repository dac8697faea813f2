# Tests for the payments project's own module (projects/payments.rego).
package tollgate.projects.payments_test

import data.tollgate.messages
import data.tollgate.projects.payments

base_input := {
	"request": {
		"repository": "org/payments",
		"branch": "main",
		"pipeline": "deploy-prod",
		"metadata": {"initiator": "github-actions", "run_id": "42", "environment": "production"},
	},
	"context": {
		"now_ns": time.parse_rfc3339_ns("2026-06-10T10:00:00+02:00"),
		"licence": {"status": "valid"},
	},
}

test_github_actions_may_deploy_to_production if {
	count(payments.reasons) == 0 with input as base_input
}

test_gitlab_ci_may_deploy_to_production if {
	count(payments.reasons) == 0 with input as base_input
		with input.request.metadata.initiator as "gitlab-ci"
}

test_human_initiator_in_production_is_initiator_not_allowed if {
	messages.render([r | some r in payments.reasons]) == [{
		"code": "initiator_not_allowed",
		"message": `Production deployments of payments must be started by CI (github-actions, gitlab-ci), not by "alice".`,
	}] with input as base_input
		with input.request.metadata.initiator as "alice"
}

test_missing_initiator_is_initiator_not_allowed if {
	messages.render([r | some r in payments.reasons]) == [{
		"code": "initiator_not_allowed",
		"message": `Production deployments of payments must be started by CI (github-actions, gitlab-ci), not by "".`,
	}] with input as base_input
		with input.request.metadata as {"run_id": "42", "environment": "production"}
}

test_other_environments_accept_any_initiator if {
	count(payments.reasons) == 0 with input as base_input
		with input.request.metadata.initiator as "alice"
		with input.request.metadata.environment as "staging"
}
