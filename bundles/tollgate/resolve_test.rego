# Tests for step 2, project resolution (resolve.rego).
package tollgate.resolve_test

import data.tollgate.messages
import data.tollgate.resolve

projects := {
	"shop": {
		"repositories": ["org/shop", "org/shop-worker"],
		"pipelines": {"deploy": {"type": "deploy"}},
	},
	"tools": {
		"repositories": ["org/tools"],
		"pipelines": {"build": {"type": "build"}},
	},
}

base_input := {
	"request": {
		"repository": "org/shop",
		"branch": "main",
		"pipeline": "deploy",
		"metadata": {"initiator": "github-actions", "run_id": "42", "environment": "production"},
	},
	"context": {
		"now_ns": time.parse_rfc3339_ns("2026-06-10T10:00:00+02:00"),
		"licence": {"status": "valid"},
	},
}

not_managed(message) := [{"code": "project_not_managed", "message": message}]

test_repository_resolves_to_its_project_and_pipeline if {
	resolve.project_name == "shop" with input as base_input with data.tollgate.config.projects as projects
	resolve.resolved[2] == {"type": "deploy"} with input as base_input with data.tollgate.config.projects as projects
	resolve.managed with input as base_input with data.tollgate.config.projects as projects
	messages.render(resolve.reasons) == [] with input as base_input with data.tollgate.config.projects as projects
}

test_project_with_two_repositories_resolves_from_either if {
	resolve.project_name == "shop" with input as base_input
		with input.request.repository as "org/shop"
		with data.tollgate.config.projects as projects
	resolve.project_name == "shop" with input as base_input
		with input.request.repository as "org/shop-worker"
		with data.tollgate.config.projects as projects
	messages.render(resolve.reasons) == [] with input as base_input
		with input.request.repository as "org/shop-worker"
		with data.tollgate.config.projects as projects
}

test_index_is_derived_from_projects_without_engine if {
	resolve.project_by_repository == {
		"org/shop": "shop",
		"org/shop-worker": "shop",
		"org/tools": "tools",
	} with data.tollgate.config.projects as projects
}

test_unknown_repository_is_project_not_managed_with_empty_project if {
	resolve.project_name == "" with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.projects as projects
	not resolve.managed with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.projects as projects
	messages.render(resolve.reasons) == not_managed(`Repository "org/unknown" is not managed by any tollgate project.`) with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.projects as projects
}

test_undeclared_pipeline_is_project_not_managed_naming_pipeline_and_project if {
	not resolve.managed with input as base_input
		with input.request.pipeline as "nightly"
		with data.tollgate.config.projects as projects
	messages.render(resolve.reasons) == not_managed(`Pipeline "nightly" is not declared in project "shop".`) with input as base_input
		with input.request.pipeline as "nightly"
		with data.tollgate.config.projects as projects
}

test_pipeline_of_another_project_is_not_managed if {
	messages.render(resolve.reasons) == not_managed(`Pipeline "build" is not declared in project "shop".`) with input as base_input
		with input.request.pipeline as "build"
		with data.tollgate.config.projects as projects
}

test_unmanaged_projects_accept_gives_no_reason if {
	messages.render(resolve.reasons) == [] with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as {"unmanaged_projects": "accept"}
	not resolve.managed with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as {"unmanaged_projects": "accept"}
}

test_unmanaged_projects_accept_also_covers_undeclared_pipeline if {
	messages.render(resolve.reasons) == [] with input as base_input
		with input.request.pipeline as "nightly"
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as {"unmanaged_projects": "accept"}
}

test_unmanaged_projects_refuse_refuses if {
	[r.code | some r in messages.render(resolve.reasons)] == ["project_not_managed"] with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as {"unmanaged_projects": "refuse"}
}

test_unmanaged_projects_absent_defaults_to_refuse if {
	[r.code | some r in messages.render(resolve.reasons)] == ["project_not_managed"] with input as base_input
		with input.request.repository as "org/unknown"
		with data.tollgate.config.projects as projects
		with data.tollgate.config.global_policy as {}
}
