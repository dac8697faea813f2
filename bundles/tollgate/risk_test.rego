# Tests for the security gates (risk.rego): every gate code, its edges, the
# composite risk and the per-environment settings.
package tollgate.risk_test

import data.tollgate.messages
import data.tollgate.risk

hour := 3600000000000

now := time.parse_rfc3339_ns("2026-06-10T10:00:00Z")

request := {
	"repository": "org/shop",
	"branch": "main",
	"pipeline": "deploy",
	"metadata": {"initiator": "ci", "run_id": "1", "environment": "production"},
}

projects(settings) := {"shop": {
	"repositories": ["org/shop"],
	"pipelines": {"deploy": {"type": "deploy"}},
	"risk": settings,
}}

critical := {"id": "CVE-2024-0001", "package": "openssl", "severity": "critical", "cvss": {"score": 9.8, "version": "3.1"}, "epss": {"score": 0.9}}

medium := {"id": "CVE-2024-0002", "package": "zlib", "severity": "medium", "cvss": {"score": 5.0, "version": "4.0"}}

unscored := {"id": "GHSA-xxxx-0003", "package": "left-pad", "severity": "unknown"}

scan(list) := {"scanned_at_ns": now - hour, "unidentified": 0, "findings": list}

input_with(s) := {"request": request, "context": {"now_ns": now}, "scan": s}

codes(reasons) := [r.code | some r in reasons]

test_composite_risk_weights_cvss_by_epss if {
	# 9.8 x (0.5 + 0.5 x 0.9) = 9.31 -> 9.3; 5.0 x 0.5 = 2.5 (no EPSS).
	risk.findings == [
		{"id": "CVE-2024-0001", "cvss": 9.8, "risk": 9.3},
		{"id": "CVE-2024-0002", "cvss": 5.0, "risk": 2.5},
	] with input as input_with(scan([medium, critical]))
		with data.tollgate.config.projects as projects({})
}

statement := {"document": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79/1", "ref": "", "id": "CVE-2024-0001", "affects": "pkg:generic/openssl@3.0.0", "state": "not_affected", "justification": "code_not_reachable"}

test_vex_not_affected_is_out_of_every_gate if {
	cleared := object.union(critical, {"vex_status": "not_affected", "vex": statement})
	doc := input_with(scan([cleared, object.union(unscored, {"vex_status": "fixed"})]))
	settings := {"max_cvss": 7.0, "max_risk": 1.0, "max_unknowns": 0, "block_new_findings": true}
	risk.findings == [] with input as doc with data.tollgate.config.projects as projects(settings)
	messages.render(risk.reasons) == [] with input as doc with data.tollgate.config.projects as projects(settings)
	risk.suppressed == [
		{"id": "CVE-2024-0001", "package": "openssl", "version": "", "vex_status": "not_affected", "statement": statement},
		{"id": "GHSA-xxxx-0003", "package": "left-pad", "version": "", "vex_status": "fixed"},
	] with input as doc with data.tollgate.config.projects as projects(settings)
}

test_vex_affected_and_under_investigation_stay_in_the_gates if {
	kept := [
		object.union(critical, {"vex_status": "affected"}),
		object.union(unscored, {"vex_status": "under_investigation"}),
	]
	doc := input_with(scan(kept))
	codes(messages.render(risk.reasons)) == ["risk_threshold_exceeded", "unknowns_exceeded"] with input as doc
		with data.tollgate.config.projects as projects({"max_cvss": 7.0, "max_unknowns": 0})
	risk.suppressed == [] with input as doc with data.tollgate.config.projects as projects({})
}

test_epss_weight_is_configurable if {
	risk.findings == [{"id": "CVE-2024-0002", "cvss": 5.0, "risk": 5.0}] with input as input_with(scan([medium]))
		with data.tollgate.config.projects as projects({"epss_weight": 0})
}

test_threshold_refuses_a_finding_above_max_cvss_and_names_it if {
	reasons := messages.render(risk.reasons) with input as input_with(scan([medium, critical]))
		with data.tollgate.config.projects as projects({"max_cvss": 7.0})
	codes(reasons) == ["risk_threshold_exceeded"]
	contains(reasons[0].message, "CVE-2024-0001 (CVSS 9.8, risk 9.3)")
	not contains(reasons[0].message, "CVE-2024-0002")
}

test_threshold_is_strictly_above if {
	messages.render(risk.reasons) == [] with input as input_with(scan([medium]))
		with data.tollgate.config.projects as projects({"max_cvss": 5.0, "max_risk": 2.5})
}

test_threshold_on_composite_risk if {
	codes(messages.render(risk.reasons)) == ["risk_threshold_exceeded"] with input as input_with(scan([medium]))
		with data.tollgate.config.projects as projects({"max_risk": 2.4})
}

test_environment_settings_replace_the_project_settings if {
	p := {"shop": {
		"repositories": ["org/shop"],
		"pipelines": {"deploy": {"type": "deploy"}},
		"risk": {"max_cvss": 4.0},
		"environments": {"staging": {"pipeline_types": ["deploy"], "risk": {"max_cvss": 9.9}}},
	}}
	codes(messages.render(risk.reasons)) == ["risk_threshold_exceeded"] with input as input_with(scan([critical]))
		with data.tollgate.config.projects as p
	messages.render(risk.reasons) == [] with input as input_with(scan([critical]))
		with input.request.metadata.environment as "staging"
		with data.tollgate.config.projects as p
}

test_scan_missing_when_required if {
	reasons := messages.render(risk.reasons) with input as {"request": request, "context": {"now_ns": now}}
		with data.tollgate.config.projects as projects({"require_scan": true})
	codes(reasons) == ["scan_missing"]
	messages.render(risk.reasons) == [] with input as {"request": request, "context": {"now_ns": now}}
		with data.tollgate.config.projects as projects({"max_cvss": 7.0})
}

test_scan_stale_after_max_age if {
	old := object.union(scan([medium]), {"scanned_at_ns": now - (73 * hour)})
	reasons := messages.render(risk.reasons) with input as input_with(old)
		with data.tollgate.config.projects as projects({"max_scan_age_hours": 72})
	codes(reasons) == ["scan_stale"]
	contains(reasons[0].message, "73 hours old")
}

test_scan_of_exactly_max_age_is_fresh if {
	edge := object.union(scan([medium]), {"scanned_at_ns": now - (72 * hour)})
	messages.render(risk.reasons) == [] with input as input_with(edge)
		with data.tollgate.config.projects as projects({"max_scan_age_hours": 72})
}

test_unknowns_count_unscored_findings_and_unidentified_components if {
	s := object.union(scan([unscored, medium]), {"unidentified": 2})
	reasons := messages.render(risk.reasons) with input as input_with(s)
		with data.tollgate.config.projects as projects({"max_unknowns": 2})
	codes(reasons) == ["unknowns_exceeded"]
	contains(reasons[0].message, "3 unknown(s): 1 finding(s) without a CVSS score (GHSA-xxxx-0003) and 2 component(s)")
	messages.render(risk.reasons) == [] with input as input_with(s)
		with data.tollgate.config.projects as projects({"max_unknowns": 3})
}

test_drift_refuses_new_findings if {
	reasons := messages.render(risk.reasons) with input as input_with(scan([medium, critical]))
		with input.context.baseline as scan([critical])
		with data.tollgate.config.projects as projects({"block_new_findings": true})
	codes(reasons) == ["risk_drift"]
	contains(reasons[0].message, "1 new finding(s) since the last accepted release: CVE-2024-0002")
}

test_drift_refuses_a_higher_release_risk if {
	worse := object.union(medium, {"cvss": {"score": 6.0, "version": "4.0"}})
	reasons := messages.render(risk.reasons) with input as input_with(scan([worse]))
		with input.context.baseline as scan([medium])
		with data.tollgate.config.projects as projects({"block_new_findings": true})
	codes(reasons) == ["risk_drift"]
	contains(reasons[0].message, "rose from 2.5 to 3 since the last accepted release.")
}

test_drift_names_the_baseline_decision if {
	reasons := messages.render(risk.reasons) with input as input_with(scan([medium, critical]))
		with input.context.baseline as object.union(scan([critical]), {"decision_id": "0193-abc"})
		with data.tollgate.config.projects as projects({"block_new_findings": true})
	reasons[0].message == "1 new finding(s) since the last accepted release (decision 0193-abc): CVE-2024-0002 (CVSS 5, risk 2.5)."
}

test_no_drift_without_the_setting_or_the_baseline if {
	messages.render(risk.reasons) == [] with input as input_with(scan([medium, critical]))
		with input.context.baseline as scan([])
		with data.tollgate.config.projects as projects({})
	messages.render(risk.reasons) == [] with input as input_with(scan([]))
		with data.tollgate.config.projects as projects({"block_new_findings": true})
}

test_every_gate_at_once_in_order if {
	s := object.union(scan([unscored, critical]), {"scanned_at_ns": now - (100 * hour)})

	# New findings, and a release risk above the empty baseline's: two drift reasons.
	codes(messages.render(risk.reasons)) == ["scan_stale", "risk_threshold_exceeded", "unknowns_exceeded", "risk_drift", "risk_drift"] with input as input_with(s)
		with input.context.baseline as scan([])
		with data.tollgate.config.projects as projects({
			"max_cvss": 7.0, "max_unknowns": 0, "block_new_findings": true,
			"max_scan_age_hours": 72,
		})
}

test_messages_name_at_most_three_findings if {
	list := [object.union(critical, {"id": sprintf("CVE-2024-100%d", [i])}) | some i in numbers.range(1, 5)]
	reasons := messages.render(risk.reasons) with input as input_with(scan(list))
		with data.tollgate.config.projects as projects({"max_cvss": 7.0})
	contains(reasons[0].message, "5 finding(s)")
	count(split(reasons[0].message, "(CVSS")) == 4
}

test_unknowns_of_unidentified_components_only if {
	reasons := messages.render(risk.reasons) with input as input_with(object.union(scan([medium]), {"unidentified": 1}))
		with data.tollgate.config.projects as projects({"max_unknowns": 0})
	reasons[0].message == "1 unknown(s): 0 finding(s) without a CVSS score and 1 component(s) the scanner could not identify; production allows 0."
}

test_gates_join_the_local_reasons_and_follow_warn_mode if {
	full := object.union(input_with(scan([critical])), {"context": {"now_ns": now, "licence": {"status": "valid"}}})
	d := data.tollgate.decision with input as full
		with input.request.branch as "feature/x"
		with data.tollgate.config.global_policy as {}
		with data.tollgate.config.projects as {"shop": object.union(projects({"max_cvss": 7.0}).shop, {"allowed_branches": ["main"]})}
	d.status == "refused"
	codes(d.reasons) == ["branch_not_allowed", "risk_threshold_exceeded"]

	w := data.tollgate.decision with input as full
		with data.tollgate.config.global_policy as {}
		with data.tollgate.config.projects as {"shop": object.union(projects({"max_cvss": 7.0}).shop, {"enforcement": "warn"})}
	w.status == "accepted"
	codes(w.warnings) == ["risk_threshold_exceeded"]
}
