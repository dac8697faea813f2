# Tests for the controls Go injects: exceptions (exceptions.rego), emergency
# freezes (global.rego) and incident mode (incident.rego), end to end through
# data.tollgate.decision. Configuration comes from decision_test.
package tollgate.controls_test

import data.tollgate
import data.tollgate.decision_test as t

hour := 3600000000000

later := t.weekday_10h + hour

frozen := object.union(t.base_input, {"context": {"now_ns": t.frozen_saturday_7h}})

decide(doc) := d if {
	d := tollgate.decision with input as doc
		with data.tollgate.config.global_policy as object.union(t.global_policy, {"incident": {"pipeline_types": ["hotfix"], "relax_cooldown": true}})
		with data.tollgate.config.projects as t.projects
}

with_context(doc, extra) := object.union(doc, {"context": object.union(doc.context, extra)})

# Expires after every evaluation time of these tests.
waiver(code) := {
	"id": "exc-1", "kind": "waiver", "code": code, "project": "service-api",
	"expires_ns": t.frozen_saturday_7h + hour,
}

feature_branch := object.union(t.base_input, {"request": object.union(t.request, {"branch": "feature/x"})})

# --- exceptions ----------------------------------------------------------------

test_waiver_turns_a_refusal_into_an_acceptance if {
	before := decide(feature_branch)
	before.status == "refused"
	d := decide(with_context(feature_branch, {"exceptions": [waiver("branch_not_allowed")]}))
	d.status == "accepted"
	d.reasons == []
	[w.code | some w in d.waived] == ["branch_not_allowed"]
	d.waived[0].exception_id == "exc-1"
	d.waived[0].message == before.reasons[0].message
}

test_waiver_past_its_expiry_waives_nothing if {
	expired := object.union(waiver("branch_not_allowed"), {"expires_ns": t.weekday_10h})
	d := decide(with_context(feature_branch, {"exceptions": [expired]}))
	d.status == "refused"
	d.waived == []
}

test_waiver_outside_its_scope_waives_nothing if {
	some scope in [
		{"pipeline": "deploy-staging"},
		{"environment": "staging"},
		{"branch": "release/*"},
		{"project": "payments"},
	]
	d := decide(with_context(feature_branch, {"exceptions": [object.union(waiver("branch_not_allowed"), scope)]}))
	d.status == "refused"
}

test_waiver_inside_its_scope if {
	scoped := object.union(waiver("branch_not_allowed"), {"pipeline": "deploy-prod", "environment": "production", "branch": "feature/*"})
	decide(with_context(feature_branch, {"exceptions": [scoped]})).status == "accepted"
}

test_only_the_waived_code_is_waived if {
	# A frozen Saturday: freeze, window and weekend; only the freeze is waived.
	d := decide(with_context(frozen, {"exceptions": [waiver("freeze_active")]}))
	d.status == "refused"
	t.codes(d.reasons) == ["time_window_violation", "weekend_violation"]
	t.codes(d.waived) == ["freeze_active"]
}

test_licence_and_resolution_are_never_waived if {
	bad_licence := with_context(t.base_input, {"licence": {"status": "invalid", "detail": "bad signature"}, "exceptions": [waiver("licence_invalid")]})
	decide(bad_licence).status == "refused"
	unmanaged := object.union(t.base_input, {"request": object.union(t.request, {"repository": "org/unknown"})})
	d := decide(with_context(unmanaged, {"exceptions": [object.union(waiver("project_not_managed"), {"project": ""})]}))
	t.codes(d.reasons) == ["project_not_managed"]
}

test_break_glass_passes_a_freeze_but_nothing_else if {
	glass := object.union(waiver("freeze_active"), {"kind": "break_glass", "pipeline": "deploy-prod"})
	d := decide(with_context(frozen, {"exceptions": [
		glass,
		object.union(glass, {"id": "exc-2", "code": "time_window_violation"}),
		object.union(glass, {"id": "exc-3", "code": "weekend_violation"}),
	]}))
	d.status == "accepted"
	[w.exception_id | some w in d.waived] == ["exc-1", "exc-2", "exc-3"]

	not_a_freeze := object.union(glass, {"code": "branch_not_allowed"})
	decide(with_context(feature_branch, {"exceptions": [not_a_freeze]})).status == "refused"
}

# --- exceptions on findings ------------------------------------------------------

risky_projects := json.patch(t.projects, [{"op": "add", "path": "/service-api/risk", "value": {"max_cvss": 7.0, "block_new_findings": true}}])

finding(id, score) := {"id": id, "package": "p", "version": "1", "severity": "high", "vex_status": "", "cvss": {"score": score, "version": "3.1", "vector": "", "source": "nvd"}}

scanned(findings) := object.union(t.base_input, {"scan": {"scanned_at_ns": t.weekday_10h, "unidentified": 0, "findings": findings}})

decide_risky(doc) := d if {
	d := tollgate.decision with input as doc
		with data.tollgate.config.global_policy as t.global_policy
		with data.tollgate.config.projects as risky_projects
}

test_finding_waiver_takes_one_finding_out_of_the_threshold_gate if {
	doc := scanned([finding("CVE-1", 9.8), finding("CVE-2", 8.0)])
	one := object.union(waiver("risk_threshold_exceeded"), {"finding_id": "CVE-1"})
	d := decide_risky(with_context(doc, {"exceptions": [one]}))
	d.status == "refused"
	contains(d.reasons[0].message, "1 finding(s)")
	contains(d.reasons[0].message, "CVE-2")
	not contains(d.reasons[0].message, "CVE-1")
	d.waived == [{"code": "risk_threshold_exceeded", "exception_id": "exc-1", "message": "Finding CVE-1 (CVSS 9.8, risk 4.9) is above the allowed risk for production."}]

	both := [one, object.union(one, {"id": "exc-2", "finding_id": "CVE-2"})]
	decide_risky(with_context(doc, {"exceptions": both})).status == "accepted"
}

test_finding_waiver_for_drift if {
	doc := with_context(scanned([finding("CVE-1", 5.0), finding("CVE-9", 5.0)]), {
		"baseline": {"scanned_at_ns": 0, "unidentified": 0, "findings": [finding("CVE-1", 5.0)], "decision_id": "d-0"},
		"exceptions": [object.union(waiver("risk_drift"), {"finding_id": "CVE-9"})],
	})
	d := decide_risky(doc)
	d.status == "accepted"
	d.waived == [{"code": "risk_drift", "exception_id": "exc-1", "message": "Finding CVE-9 is new since the last accepted release (decision d-0)."}]
}

# --- emergency freezes -------------------------------------------------------------

emergency := {"id": "frz-1", "reason": "Payment provider outage", "environments": ["production"], "expires_ns": later}

test_emergency_freeze_refuses_until_it_expires if {
	d := decide(with_context(t.base_input, {"freezes": [emergency]}))
	d.reasons == [{"code": "freeze_active", "message": `Emergency freeze "frz-1" is active until 2026-06-10T11:00:00+02:00: Payment provider outage.`}]
	decide(with_context(t.base_input, {"freezes": [emergency], "now_ns": later})).status == "accepted"
}

test_emergency_freeze_of_another_environment_does_not_apply if {
	staging := object.union(emergency, {"environments": ["staging"]})
	decide(with_context(t.base_input, {"freezes": [staging]})).status == "accepted"
	everywhere := object.remove(emergency, ["environments"])
	decide(with_context(t.base_input, {"freezes": [everywhere]})).status == "refused"
}

# --- incident mode ------------------------------------------------------------------

incident := {"id": "INC-42", "reason": "checkout down", "expires_ns": later}

hotfix := object.union(t.base_input, {"request": object.union(t.request, {"pipeline": "hotfix-prod", "branch": "hotfix/1"})})

test_incident_lets_only_incident_pipeline_types_run if {
	d := decide(with_context(t.base_input, {"incident": incident}))
	d.reasons == [{"code": "incident_mode", "message": `Incident "INC-42" is on (checkout down) until 2026-06-10T11:00:00+02:00: only pipelines of type hotfix may run.`}]
	d.incident_id == "INC-42"
	h := decide(with_context(hotfix, {"incident": incident}))
	h.status == "accepted"
	h.incident_id == "INC-42"
}

test_incident_ends_at_its_expiry if {
	d := decide(with_context(t.base_input, {"incident": incident, "now_ns": later}))
	d.status == "accepted"
	not d.incident_id
}

test_incident_relaxes_cooldowns_when_the_policy_says_so if {
	recent := {"last_accepted_ns": t.weekday_10h - (5 * t.minute)}
	hotfix_cooldown := json.patch(t.projects, [{"op": "add", "path": "/service-api/pipelines/hotfix-prod/cooldown_minutes", "value": 30}])
	doc := with_context(hotfix, {"cooldown": recent})
	t.codes(tollgate.decision.reasons) == ["cooldown"] with input as doc
		with data.tollgate.config.global_policy as t.global_policy
		with data.tollgate.config.projects as hotfix_cooldown
	tollgate.decision.status == "accepted" with input as with_context(doc, {"incident": incident})
		with data.tollgate.config.global_policy as object.union(t.global_policy, {"incident": {"pipeline_types": ["hotfix"], "relax_cooldown": true}})
		with data.tollgate.config.projects as hotfix_cooldown
	t.codes(tollgate.decision.reasons) == ["cooldown"] with input as with_context(doc, {"incident": incident})
		with data.tollgate.config.global_policy as object.union(t.global_policy, {"incident": {"pipeline_types": ["hotfix"]}})
		with data.tollgate.config.projects as hotfix_cooldown
}

test_incident_without_listed_types_lets_nothing_run if {
	d := tollgate.decision with input as with_context(hotfix, {"incident": incident})
		with data.tollgate.config.global_policy as t.global_policy
		with data.tollgate.config.projects as t.projects
	contains(d.reasons[0].message, "only pipelines of type none may run")
}
