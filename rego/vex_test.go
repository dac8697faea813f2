package rego

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tollgate/tollgate"
)

// A finding with no vector to score gets the report's own score, named as
// such; one with neither stays unscored (an unknown for the gates).
func TestGateScoresWithTheReportedScoreWhenNoVector(t *testing.T) {
	g, _ := epssGate(t, nil)
	g.EPSS = nil
	scan := &tollgate.Scan{Findings: []tollgate.Finding{
		{ID: "CVE-2019-1549", Package: "libssl1.1", Reported: &tollgate.ReportedScore{Score: 5.3, Source: "sarif security-severity"}},
		{ID: "CVE-2019-1551", Package: "libssl1.1"},
	}}
	rec, err := g.Evaluate(t.Context(), tollgate.Request{}, ScanSource{Report: scan})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.Context.Scan.Findings
	if s := got[0].Score; s == nil || *s != (tollgate.ScoreReceipt{Score: 5.3, Source: "sarif security-severity"}) {
		t.Errorf("reported score: %+v", s)
	}
	if got[1].Score != nil {
		t.Errorf("a finding without a vector or a reported score was scored: %+v", got[1].Score)
	}
}

// A VEX beside a scan applies to it: the record keeps the statement in the
// finding and the decision lists the finding as suppressed. A VEX with no
// scan to apply to is bad input, and nothing is recorded.
func TestGateAppliesVEXAndListsSuppressed(t *testing.T) {
	g, store := epssGate(t, nil)
	g.EPSS = nil
	statement := tollgate.VEXStatement{ID: "CVE-2021-44228", Affects: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
		Package: "org.apache.logging.log4j/log4j-core", Version: "2.14.1", State: "not_affected", Status: tollgate.VEXNotAffected,
		Justification: "code_not_present"}
	scan := &tollgate.Scan{Findings: []tollgate.Finding{
		{ID: "CVE-2021-44228", Package: "log4j-core", Version: "2.14.1"},
		{ID: "CVE-2021-44228", Package: "log4j-core", Version: "2.17.0"},
	}}
	rec, err := g.Evaluate(t.Context(), tollgate.Request{}, ScanSource{Report: scan, VEX: []tollgate.VEXStatement{statement}})
	if err != nil {
		t.Fatal(err)
	}
	if f := rec.Context.Scan.Findings; f[0].VEX == nil || !f[0].Suppressed() || f[1].Suppressed() {
		t.Fatalf("the recorded scan: %+v", f)
	}
	if scan.Findings[0].VEXStatus != "" {
		t.Error("the VEX was applied to the caller's scan, not a copy")
	}
	s := rec.Decision.Suppressed
	if len(s) != 1 || s[0].ID != "CVE-2021-44228" || s[0].Version != "2.14.1" || s[0].VEXStatus != tollgate.VEXNotAffected ||
		s[0].Statement == nil || s[0].Statement.Justification != "code_not_present" || s[0].Statement.Affects != statement.Affects {
		t.Fatalf("suppressed: %+v", s)
	}
	if diffs := Compare(rec.Decision, tollgate.Decision{Status: rec.Decision.Status, Reasons: rec.Decision.Reasons,
		Warnings: rec.Decision.Warnings, Project: rec.Decision.Project, BundleRevision: rec.Decision.BundleRevision}); len(diffs) != 1 || diffs[0].Field != "suppressed" {
		t.Errorf("a replay that lost the suppressed list: differences %+v, want suppressed", diffs)
	}

	decided := store.decides
	if _, err := g.Evaluate(t.Context(), tollgate.Request{}, ScanSource{VEX: []tollgate.VEXStatement{statement}}); tollgate.ErrorCode(err) != tollgate.EInvalid {
		t.Fatalf("a VEX without a scan: %v, want an invalid-input error", err)
	}
	if store.decides != decided {
		t.Error("a VEX without a scan was recorded")
	}
}

// A policy's "suppressed" list must name each finding and its VEX status:
// a policy cannot hide a finding without saying which and why. Anything
// else is a policy_error.
func TestDecodeDecisionSuppressed(t *testing.T) {
	base := `{"status": "accepted", "reasons": [], "warnings": [], "project": "p", "pipeline": "x", "branch": "main", "environment": "production"`
	for _, tt := range []struct {
		suppressed string
		ok         bool
	}{
		{`[]`, true},
		{`[{"id": "CVE-1", "package": "p", "vex_status": "not_affected", "statement": {"id": "CVE-1", "state": "false_positive"}}]`, true},
		{`[{"package": "p", "vex_status": "not_affected"}]`, false},
		{`[{"id": "CVE-1", "package": "p"}]`, false},
		{`"CVE-1"`, false},
	} {
		d, err := decodeDecision(ast.MustParseTerm(base + `, "suppressed": ` + tt.suppressed + `}`).Value)
		if (err == nil) != tt.ok {
			t.Errorf("suppressed %s: %+v, error %v", tt.suppressed, d.Suppressed, err)
		}
	}
}
