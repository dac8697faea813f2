# METADATA
# title: step 2, project resolution
# description: |
#   The project is the one whose repositories list input.request.repository;
#   its pipeline is the one named input.request.pipeline. Without both, the
#   request is unmanaged: refused with project_not_managed unless
#   global_policy.unmanaged_projects is "accept"; project_name is then "".
#   Local rules do not run for an unmanaged request.
package tollgate.resolve

import data.tollgate.config

# Repository -> project name. The index reads the registry alone, so
# tollgate computes it once per bundle load (constant folding): resolution
# is one key lookup however many projects there are.
project_by_repository := {repo: name |
	some name, project in config.projects
	some repo in project.repositories
}

# The managed project and pipeline, [name, project, pipeline]; undefined when
# the request is unmanaged.
resolved := [name, project, project.pipelines[input.request.pipeline]] if {
	name := project_by_repository[input.request.repository]
	project := config.projects[name]
}

managed if resolved

default project_name := ""

project_name := resolved[0]

reasons := [] if {
	resolved
} else := [] if {
	config.global_policy.unmanaged_projects == "accept"
} else := [{
	"code": "project_not_managed",
	"params": {"repository": input.request.repository},
}] if {
	not project_by_repository[input.request.repository]
} else := [{
	"code": "project_not_managed",
	"key": "project_not_managed.pipeline",
	"params": {
		"pipeline": input.request.pipeline,
		"project": project_by_repository[input.request.repository],
	},
}]
