# METADATA
# title: step 2, project resolution
# description: |
#   The project is the one whose repositories list input.request.repository;
#   its pipeline is the one named input.request.pipeline. Without both, the
#   request is unmanaged: refused with project_not_managed unless
#   global_policy.unmanaged_projects is "accept". Local rules then do not run.
package tollgate.resolve

import data.tollgate.config

# Repository -> project name. The engine computes this index once per bundle
# load and provides it as data.engine.project_by_repository, so resolution is
# one key lookup however many projects there are. Without the engine (stock
# `opa test`) it is derived from the registry here.
project_by_repository := data.engine.project_by_repository

project_by_repository := {repo: name |
	some name, project in config.projects
	some repo in project.repositories
} if {
	not data.engine.project_by_repository
}

default project_name := ""

project_name := project_by_repository[input.request.repository]

project := config.projects[project_name]

pipeline := project.pipelines[input.request.pipeline]

managed if pipeline

unmanaged_policy := object.get(config.global_policy, "unmanaged_projects", "refuse")

reasons := [] if {
	managed
} else := [] if {
	unmanaged_policy == "accept"
} else := [{"code": "project_not_managed", "message": unmanaged_message}]

unmanaged_message := sprintf("Repository %q is not managed by any tollgate project.", [input.request.repository]) if {
	project_name == ""
} else := sprintf("Pipeline %q is not declared in project %q.", [input.request.pipeline, project_name])
