package minimal_test

import data.minimal

# The harness's configuration in small (test/bench/bundle.go): one project,
# a past and a future freeze, a window every day 00:00-23:59, weekends
# allowed; the cases below change what they test.
config := {
	"global_policy": {
		"timezone": "Europe/Paris",
		"unmanaged_projects": "refuse",
		"freezes": [
			{"id": "past", "start": "2020-11-27T00:00:00+01:00", "end": "2020-11-30T00:00:00+01:00", "environments": ["production"]},
			{"id": "future", "start": "2099-12-24T00:00:00+01:00", "end": "2100-01-04T00:00:00+01:00", "environments": ["production"]},
		],
		"time_windows": [{
			"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
			"start": "00:00", "end": "23:59", "environments": ["production"],
		}],
		"weekends": {"allowed": true, "environments": ["production"]},
	},
	"repositories": {"org/app": {
		"allowed_branches": ["main", "release/*"],
		"pipelines": {
			"deploy-prod": {"type": "deploy", "cooldown_minutes": 30},
			"deploy-staging": {"type": "deploy"},
			"hotfix": {"type": "hotfix", "allowed_branches": ["hotfix/*"]},
		},
		"environments": {
			"production": {"pipeline_types": ["deploy", "hotfix"]},
			"staging": {"pipeline_types": ["deploy"]},
		},
	}},
}

request := {
	"repository": "org/app", "branch": "main", "pipeline": "deploy-prod",
	"metadata": {"initiator": "ci", "run_id": "1", "environment": "production"},
}

# Wednesday 2026-06-10 12:00 in Paris (10:00 UTC).
noon := time.parse_rfc3339_ns("2026-06-10T12:00:00+02:00")

minute := 60000000000

codes(d) := [r.code | some r in d.reasons]

decide(req, extra, cfg, at) := d if {
	d := minimal.decision with input as object.union({"request": req, "licence": "valid"}, extra)
		with data.config as cfg
		with time.now_ns as at
}

test_accepts_on_the_harness_configuration if {
	decide(request, {}, config, noon) == {"status": "accepted", "reasons": []}
}

test_expired_licence_is_the_only_reason if {
	d := decide(object.union(request, {"repository": "org/unknown"}), {"licence": "expired"}, config, noon)
	d.status == "refused"
	codes(d) == ["licence_expired"]
}

test_missing_licence_is_invalid if {
	d := minimal.decision with input as {"request": request}
		with data.config as config
		with time.now_ns as noon
	codes(d) == ["licence_invalid"]
}

test_request_without_environment_is_refused if {
	d := decide(object.remove(request, ["metadata"]), {}, config, noon)
	d.status == "refused"
}

test_unknown_repository_is_not_managed if {
	codes(decide(object.union(request, {"repository": "org/other"}), {}, config, noon)) == ["project_not_managed"]
}

test_undeclared_pipeline_is_not_managed if {
	codes(decide(object.union(request, {"pipeline": "build"}), {}, config, noon)) == ["project_not_managed"]
}

test_unmanaged_accepted_when_the_policy_says_so if {
	cfg := json.patch(config, [{"op": "add", "path": "/global_policy/unmanaged_projects", "value": "accept"}])
	decide(object.union(request, {"repository": "org/other"}), {}, cfg, noon).status == "accepted"
}

test_freeze_refuses_from_its_start_until_its_end if {
	start := time.parse_rfc3339_ns("2020-11-27T00:00:00+01:00")
	end := time.parse_rfc3339_ns("2020-11-30T00:00:00+01:00")
	codes(decide(request, {}, config, start)) == ["freeze_active"]
	"freeze_active" in codes(decide(request, {}, config, end - 1)) # 23:59: also outside the window
	not "freeze_active" in codes(decide(request, {}, config, start - 1))
	decide(request, {}, config, end).status == "accepted"
}

test_freeze_spares_other_environments if {
	in_freeze := time.parse_rfc3339_ns("2099-12-25T12:00:00+01:00")
	codes(decide(request, {}, config, in_freeze)) == ["freeze_active"]
	staging := json.patch(request, [{"op": "replace", "path": "/metadata/environment", "value": "staging"}])
	decide(staging, {}, config, in_freeze).status == "accepted"
}

test_window_refuses_its_last_minute if {
	last := time.parse_rfc3339_ns("2026-06-10T23:59:00+02:00")
	codes(decide(request, {}, config, last)) == ["time_window_violation"]
	decide(request, {}, config, last - 1).status == "accepted"
}

test_weekend_refuses_when_not_allowed if {
	saturday := time.parse_rfc3339_ns("2026-06-13T12:00:00+02:00")
	cfg := json.patch(config, [{"op": "replace", "path": "/global_policy/weekends/allowed", "value": false}])
	codes(decide(request, {}, cfg, saturday)) == ["weekend_violation"]
	decide(request, {}, cfg, noon).status == "accepted"
	decide(request, {}, config, saturday).status == "accepted"
}

test_branch_outside_the_project_list_is_refused if {
	codes(decide(object.union(request, {"branch": "feature/x"}), {}, config, noon)) == ["branch_not_allowed"]
	codes(decide(object.union(request, {"branch": "release/1/2"}), {}, config, noon)) == ["branch_not_allowed"]
	decide(object.union(request, {"branch": "release/1.2"}), {}, config, noon).status == "accepted"
}

test_pipeline_branches_replace_the_project_list if {
	hotfix := object.union(request, {"pipeline": "hotfix", "branch": "hotfix/1"})
	decide(hotfix, {}, config, noon).status == "accepted"
	codes(decide(object.union(hotfix, {"branch": "main"}), {}, config, noon)) == ["branch_not_allowed"]
}

test_pipeline_type_not_allowed_in_environment if {
	hotfix := object.union(request, {"pipeline": "hotfix", "branch": "hotfix/1"})
	staging := json.patch(hotfix, [{"op": "replace", "path": "/metadata/environment", "value": "staging"}])
	codes(decide(staging, {}, config, noon)) == ["pipeline_not_allowed"]
	qa := json.patch(request, [{"op": "replace", "path": "/metadata/environment", "value": "qa"}])
	codes(decide(qa, {}, config, noon)) == ["pipeline_not_allowed"]
}

test_project_without_environments_allows_every_type if {
	cfg := json.patch(config, [{"op": "remove", "path": "/repositories/org~1app/environments"}])
	qa := json.patch(request, [{"op": "replace", "path": "/metadata/environment", "value": "qa"}])
	decide(qa, {}, cfg, noon).status == "accepted"
}

test_cooldown_refuses_until_its_end if {
	codes(decide(request, {"last_accepted_ns": noon - (29 * minute)}, config, noon)) == ["cooldown"]
	decide(request, {"last_accepted_ns": noon - (30 * minute)}, config, noon).status == "accepted"
}

test_no_cooldown_without_minutes if {
	staging := object.union(request, {"pipeline": "deploy-staging"})
	decide(staging, {"last_accepted_ns": noon}, config, noon).status == "accepted"
}

test_every_reason_is_reported if {
	in_freeze := time.parse_rfc3339_ns("2020-11-28T23:59:30+01:00")
	d := decide(object.union(request, {"branch": "feature/x"}), {"last_accepted_ns": in_freeze}, config, in_freeze)
	sort(codes(d)) == ["branch_not_allowed", "cooldown", "freeze_active", "time_window_violation"]
}
