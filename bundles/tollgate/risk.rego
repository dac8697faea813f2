# METADATA
# title: security gates (seed 000)
# description: |
#   Gates on the scan of the release, configured per project in "risk" and
#   replaced per environment by environments.<env>.risk:
#     {"max_cvss": 7.0, "max_risk": 5.0, "max_unknowns": 0,
#      "block_new_findings": false, "require_scan": true,
#      "max_scan_age_hours": 72, "epss_weight": 0.5}
#   Every key is optional; a gate without its setting does not run.
#
#   input.scan (absent when the request carries no scan):
#     {"scanned_at_ns": <int>, "unidentified": <int>,
#      "findings": [{"id", "package", "version", "severity", "vex_status",
#                    "vex": {"document", "ref", "id", "affects", "state",
#                            "justification"}?,
#                    "cvss": {"score", "version", "vector", "source"}?,
#                      (version and vector are "" when the score is the
#                      report's own, e.g. source "sarif security-severity";
#                      absent: no score, an unknown)
#                    "epss": {"score", "percentile"}?}]}
#   input.context.baseline: the scan of the last accepted release of the same
#   project and environment, same shape plus "decision_id" (the decision that
#   accepted it), absent if there is none.
#
#   Composite risk of a finding, owned here so that policy authors can
#   change it: CVSS base score x (1 - w + w x EPSS probability), with
#   w = epss_weight (default 0.5). A release's risk is its worst finding's.
#
#   A finding a VEX statement declares not_affected or fixed (CycloneDX
#   not_affected, false_positive, resolved; Trivy's and Grype's own VEX
#   handling) is out of every gate — threshold, unknowns, drift — and listed
#   in "suppressed" with the statement (finding.vex), so that the decision
#   says what was set aside and on whose word.
package tollgate.risk

import data.tollgate.exceptions
import data.tollgate.resolve

# The settings of the resolved project for the request's environment.
settings := object.get(
	resolve.resolved[1],
	["environments", input.request.metadata.environment, "risk"],
	object.get(resolve.resolved[1], "risk", {}),
)

# Without a scan, only scan_missing can apply: the usual case, kept cheap.
reasons := [] if {
	object.get(input, "scan", null) == null
	object.get(settings, "require_scan", false) == false
} else := missing_reasons if {
	not input.scan
} else := array.concat(
	array.concat(missing_reasons, stale_reasons),
	array.concat(array.concat(threshold_reasons, unknowns_reasons), drift_reasons),
) if {
	input.scan
}

# --- composite risk -----------------------------------------------------------

epss_weight := object.get(settings, "epss_weight", 0.5)

finding_risk(finding) := round((finding.cvss.score * ((1 - epss_weight) + (epss_weight * object.get(finding, ["epss", "score"], 0)))) * 10) / 10

# --- VEX: findings out of the gates ---------------------------------------------

is_suppressed(finding) if finding.vex_status in {"not_affected", "fixed"}

# The findings of a scan the gates judge: all but the suppressed ones.
gated(scan) := [f | some f in scan.findings; not is_suppressed(f)]

# For the decision's "suppressed" list.
suppressed := [] if {
	object.get(input, "scan", null) == null
} else := [object.union(
	{"id": f.id, "package": f.package, "version": object.get(f, "version", ""), "vex_status": f.vex_status},
	statement(f),
) |
	some f in input.scan.findings
	is_suppressed(f)
] if {
	input.scan
}

statement(finding) := {"statement": finding.vex} if {
	finding.vex
} else := {}

# Scored findings of a scan, worst first: [{"id", "cvss", "risk"}].
scored(scan) := [item |
	some pair in sort([[0 - finding_risk(f), f.id, f.cvss.score] | some f in gated(scan); f.cvss.score])
	item := {"id": pair[1], "cvss": pair[2], "risk": 0 - pair[0]}
]

release_risk(scan) := max([f.risk | some f in scored(scan)]) if {
	count(scored(scan)) > 0
} else := 0

findings := scored(input.scan)

# --- scan_missing / scan_stale -------------------------------------------------

missing_reasons := [{
	"code": "scan_missing",
	"params": {"project": resolve.project_name, "environment": input.request.metadata.environment},
}] if {
	settings.require_scan
	not input.scan
} else := []

stale_reasons := [{
	"code": "scan_stale",
	"params": {"age": age_hours, "environment": input.request.metadata.environment, "max": settings.max_scan_age_hours},
}] if {
	age_hours > settings.max_scan_age_hours
} else := []

age_hours := floor((input.context.now_ns - input.scan.scanned_at_ns) / 3600000000000)

# --- risk_threshold_exceeded -----------------------------------------------------

over_threshold := [f |
	some f in findings
	above_threshold(f)
	not waived_threshold[f.id]
]

# Findings an exception with a finding_id takes out of a gate: id -> exception.
waived_threshold := exceptions.waived_findings("risk_threshold_exceeded")

waived_drift := exceptions.waived_findings("risk_drift")

# The findings that would have failed a gate but for an exception, for the
# decision's "waived" list.
waived := [] if {
	not input.scan
} else := array.concat(
	[{
		"code": "risk_threshold_exceeded",
		"key": "risk_threshold_exceeded.waived",
		"params": {"id": f.id, "cvss": f.cvss, "risk": f.risk, "environment": input.request.metadata.environment},
		"exception_id": waived_threshold[f.id],
	} |
		some f in findings
		above_threshold(f)
		waived_threshold[f.id]
	],
	[{
		"code": "risk_drift",
		"key": "risk_drift.waived",
		"params": {"id": f.id, "since": since_baseline},
		"exception_id": waived_drift[f.id],
	} |
		settings.block_new_findings
		some f in findings
		is_new(f)
		waived_drift[f.id]
	],
) if {
	input.scan
}

above_threshold(f) if f.cvss > settings.max_cvss

above_threshold(f) if f.risk > settings.max_risk

threshold_reasons := [{
	"code": "risk_threshold_exceeded",
	"params": {
		"count": count(over_threshold), "environment": input.request.metadata.environment,
		"max_cvss": object.get(settings, "max_cvss", "-"), "max_risk": object.get(settings, "max_risk", "-"),
		"worst": describe(over_threshold),
	},
}] if {
	count(over_threshold) > 0
} else := []

# The three worst findings, for messages: "CVE-1 (CVSS 9.8, risk 9.3), …".
describe(list) := {"messages": [{"key": "risk.finding", "params": {"id": f.id, "cvss": f.cvss, "risk": f.risk}} |
	some i, f in list
	i < 3
]}

# --- unknowns_exceeded ----------------------------------------------------------

unknowns := [f.id | some f in gated(input.scan); not f.cvss.score]

unknown_count := count(unknowns) + object.get(input.scan, "unidentified", 0)

unknowns_reasons := [{
	"code": "unknowns_exceeded",
	"params": {
		"count": unknown_count, "unscored": count(unknowns), "ids": unknown_ids,
		"unidentified": object.get(input.scan, "unidentified", 0),
		"environment": input.request.metadata.environment, "max": settings.max_unknowns,
	},
}] if {
	unknown_count > settings.max_unknowns
} else := []

unknown_ids := sprintf(" (%s)", [concat(", ", array.slice(sort(unknowns), 0, 3))]) if {
	count(unknowns) > 0
} else := ""

# --- risk_drift: compared with the last accepted release --------------------

new_findings := [f |
	some f in findings
	is_new(f)
	not waived_drift[f.id]
]

is_new(f) if not f.id in {b.id | some b in input.context.baseline.findings}

drift_reasons := array.concat(new_reasons, higher_reasons)

new_reasons := [{
	"code": "risk_drift",
	"params": {"count": count(new_findings), "since": since_baseline, "findings": describe(new_findings)},
}] if {
	settings.block_new_findings
	input.context.baseline
	count(new_findings) > 0
} else := []

higher_reasons := [{
	"code": "risk_drift",
	"key": "risk_drift.higher",
	"params": {"from": release_risk(input.context.baseline), "to": release_risk(drift_scan), "since": since_baseline},
}] if {
	settings.block_new_findings
	release_risk(drift_scan) > release_risk(input.context.baseline)
} else := []

# The release's scan without the findings waived for risk_drift.
drift_scan := object.union(input.scan, {"findings": [f |
	some f in input.scan.findings
	not waived_drift[f.id]
]})

since_baseline := {"message": {"key": "risk_drift.since_decision", "params": {"decision": input.context.baseline.decision_id}}} if {
	input.context.baseline.decision_id
} else := {"message": {"key": "risk_drift.since"}}
