# Tests for the configuration names (config.rego) and shape checks of the
# shipped configuration files, so a broken edit fails `opa test` too. They
# hold for any valid configuration: they check its shape, never its values.
package tollgate.config_test

import data.tollgate.config

test_global_policy_is_the_bundle_data_file if {
	config.global_policy == {"timezone": "UTC"} with data.config.global_policy as {"timezone": "UTC"}
}

test_projects_is_the_bundle_data_file if {
	config.projects == {"a": {}} with data.config.projects as {"a": {}}
}

test_missing_configuration_is_undefined if {
	# No configuration, no decision: the engine refuses with policy_error.
	not config.global_policy with data.config as {}
	not config.projects with data.config as {}
}

test_shipped_unmanaged_projects_is_a_known_value if {
	object.get(config.global_policy, "unmanaged_projects", "refuse") in {"refuse", "accept"}
}

test_shipped_timezone_is_a_valid_iana_name if {
	time.clock([0, config.global_policy.timezone])
}

test_shipped_freezes_are_well_formed if {
	every freeze in object.get(config.global_policy, "freezes", []) {
		is_string(freeze.id)
		time.parse_rfc3339_ns(freeze.start) < time.parse_rfc3339_ns(freeze.end)
	}
}

test_shipped_time_windows_are_well_formed if {
	days := {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	every window in object.get(config.global_policy, "time_windows", []) {
		count(window.days) > 0
		every day in window.days {
			day in days
		}
		regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]$`, window.start)
		regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$`, window.end)
		window.start < window.end
	}
}

test_shipped_repositories_belong_to_one_project_each if {
	repos := [repo | some project in config.projects; some repo in project.repositories]
	count(repos) == count({repo | some repo in repos})
}

test_shipped_pipelines_have_a_type if {
	every project in config.projects {
		every pipeline in project.pipelines {
			is_string(pipeline.type)
		}
	}
}

test_shipped_enforcement_is_a_known_value if {
	every project in config.projects {
		object.get(project, "enforcement", "enforce") in {"enforce", "warn"}
	}
}
