package scans_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/scans"
)

// encoding/json reads "vulnerabilities" into Vulnerabilities and lets the
// last of two such keys win: a report could list its findings, then hide
// them behind an empty list spelled in another case, or repeated. Each
// format refuses that, naming the key.
func TestReportsWithKeysThatWouldHideFindingsAreRefused(t *testing.T) {
	for _, tt := range []struct {
		name, format, report, want string
	}{
		{"trivy case variant", tollgate.FormatTrivy,
			`{"SchemaVersion": 2, "ArtifactName": "app", "Results": [{"Target": "app",
			  "Vulnerabilities": [{"VulnerabilityID": "CVE-2025-24813", "PkgName": "tomcat", "InstalledVersion": "9.0.1", "Severity": "CRITICAL"}],
			  "vulnerabilities": []}]}`,
			`Results[0].vulnerabilities`},
		{"trivy duplicate", tollgate.FormatTrivy,
			`{"SchemaVersion": 2, "ArtifactName": "app", "Results": [{"Target": "app",
			  "Vulnerabilities": [{"VulnerabilityID": "CVE-2025-24813", "PkgName": "tomcat", "InstalledVersion": "9.0.1", "Severity": "CRITICAL"}],
			  "Vulnerabilities": null}]}`,
			`duplicate key "Results[0].Vulnerabilities"`},
		{"grype case variant", tollgate.FormatGrype,
			`{"matches": [{"vulnerability": {"id": "CVE-2025-24813", "severity": "Critical"}, "artifact": {"name": "tomcat", "version": "9.0.1"}}],
			  "Matches": []}`,
			`Matches`},
		{"sarif case variant", tollgate.FormatSARIF,
			`{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Grype"}}, "results": [{"ruleId": "CVE-2025-24813", "message": {"text": "CVE-2025-24813"}}], "Results": []}]}`,
			`runs[0].Results`},
		{"cyclonedx case variant", tollgate.FormatCycloneDX,
			`{"bomFormat": "CycloneDX", "specVersion": "1.6", "vulnerabilities": [{"id": "CVE-2025-24813"}], "Vulnerabilities": []}`,
			`Vulnerabilities`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			scan, err := scans.Parse(tt.format, []byte(tt.report))
			if err == nil {
				t.Fatalf("Parse accepted the report: %d findings", len(scan.Findings))
			}
			if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q (%s), want invalid_input naming %s", err, tollgate.ErrorCode(err), tt.want)
			}
		})
	}
}

// SARIF results of kind open or review (the tool could not decide; a
// person must look) used to be skipped like passes: Trivy's real report
// with its results marked "review" gave no finding. They are findings now,
// and a kind SARIF does not define is refused rather than skipped.
func TestSARIFResultsTheToolCouldNotDecideAreFindings(t *testing.T) {
	report := string(fixture(t, "real/trivy-alpine-310.sarif"))
	want := len(realScan(t, tollgate.FormatSARIF, "trivy-alpine-310.sarif").Findings)
	if want == 0 || !strings.Contains(report, `"level": "warning",`) {
		t.Fatalf("the fixture changed: %d findings", want)
	}
	for _, kind := range []string{"open", "review"} {
		marked := strings.ReplaceAll(report, `"level": "warning",`, `"kind": "`+kind+`", "level": "warning",`)
		scan, err := scans.Parse(tollgate.FormatSARIF, []byte(marked))
		if err != nil || len(scan.Findings) != want {
			t.Errorf("kind %s: %d findings, %v; want %d", kind, len(scan.Findings), err, want)
		}
	}
	for _, kind := range []string{"Fail", "bogus"} {
		marked := strings.ReplaceAll(report, `"level": "warning",`, `"kind": "`+kind+`", "level": "warning",`)
		_, err := scans.Parse(tollgate.FormatSARIF, []byte(marked))
		if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), `kind "`+kind+`" is not a SARIF result kind`) {
			t.Errorf("kind %s: %v, want refused naming the kind", kind, err)
		}
	}
	passed := strings.ReplaceAll(report, `"level": "warning",`, `"kind": "pass", "level": "warning",`)
	if scan, err := scans.Parse(tollgate.FormatSARIF, []byte(passed)); err != nil || len(scan.Findings) != 0 {
		t.Errorf("kind pass: %d findings, %v; want none", len(scan.Findings), err)
	}
}

// A rule id that carries a CVE id inside a path or in lower case
// ("npm/cve-2024-1234") named no vulnerability to the parser, and a tool
// that is not a known vulnerability scanner and writes no security tag lost
// the result. It is a finding named by the CVE.
func TestSARIFVulnerabilityIDInsideTheRuleIDIsAFinding(t *testing.T) {
	report := `{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "dep-audit", "rules": [{"id": "npm/cve-2024-1234"}]}},
	  "results": [{"ruleId": "npm/cve-2024-1234", "message": {"text": "lodash is vulnerable"}}]}]}`
	scan, err := scans.Parse(tollgate.FormatSARIF, []byte(report))
	if err != nil || len(scan.Findings) != 1 || scan.Findings[0].ID != "CVE-2024-1234" || scan.Findings[0].Severity != tollgate.SeverityUnknown {
		t.Fatalf("got %+v, %v; want one unknown finding CVE-2024-1234", scan.Findings, err)
	}
}

// Two results of one rule in one file are one finding; it used to keep
// the first, so a 1.0 before a 9.8 made the finding low. The same for a
// Trivy report listing one vulnerability twice, HIGH then CRITICAL.
func TestCopiesOfAFindingAreJudgedByTheWorst(t *testing.T) {
	sarif := `{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "scanner", "rules": [{"id": "R", "properties": {"tags": ["security"]}}]}},
	  "results": [
	    {"ruleId": "R", "message": {"text": "m"}, "properties": {"security-severity": "1.0"}, "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.js"}}}]},
	    {"ruleId": "R", "message": {"text": "m"}, "properties": {"security-severity": "9.8"}, "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.js"}}}]}]}]}`
	scan, err := scans.Parse(tollgate.FormatSARIF, []byte(sarif))
	if err != nil || len(scan.Findings) != 1 || scan.Findings[0].Severity != tollgate.SeverityCritical ||
		scan.Findings[0].Reported == nil || scan.Findings[0].Reported.Score != 9.8 {
		t.Fatalf("sarif: got %+v, %v; want one critical finding scored 9.8", scan.Findings, err)
	}
	trivy := `{"SchemaVersion": 2, "ArtifactName": "app", "Results": [{"Target": "app", "Vulnerabilities": [
	  {"VulnerabilityID": "CVE-2025-24813", "PkgName": "tomcat", "InstalledVersion": "9.0.1", "Severity": "HIGH"},
	  {"VulnerabilityID": "CVE-2025-24813", "PkgName": "tomcat", "InstalledVersion": "9.0.1", "Severity": "CRITICAL"}]}]}`
	scan, err = scans.Parse(tollgate.FormatTrivy, []byte(trivy))
	if err != nil || len(scan.Findings) != 1 || scan.Findings[0].Severity != tollgate.SeverityCritical {
		t.Fatalf("trivy: got %+v, %v; want one critical finding", scan.Findings, err)
	}
}

// strconv.ParseFloat reads "0x1p3" as 8 and "1_0" as 10: a
// security-severity no scanner writes must be refused, not guessed.
func TestSARIFSecuritySeverityIsADecimal(t *testing.T) {
	for _, v := range []string{`"0x1p3"`, `"1_0"`, `"+5"`, `"Inf"`, `1e1`} {
		report := `{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "scanner"}},
		  "results": [{"ruleId": "R", "message": {"text": "m"}, "properties": {"security-severity": ` + v + `}}]}]}`
		_, err := scans.Parse(tollgate.FormatSARIF, []byte(report))
		if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), "is not a score from 0 to 10") {
			t.Errorf("security-severity %s: %v, want refused", v, err)
		}
	}
}

// A vector that does not parse used to drop the report's own score beside
// it (the score was kept only when there was no vector at all), and the
// finding became an unknown: a 9.8 that max_unknowns may let through. The
// report's score stands when no vector can be scored.
func TestReportedScoreStandsWhenNoVectorParses(t *testing.T) {
	for _, tt := range []struct{ format, report string }{
		{tollgate.FormatTrivy, `{"SchemaVersion": 2, "ArtifactName": "app", "Results": [{"Target": "app", "Vulnerabilities": [
		  {"VulnerabilityID": "CVE-2025-24813", "PkgName": "tomcat", "InstalledVersion": "9.0.1", "Severity": "CRITICAL",
		   "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/", "V3Score": 9.8}}}]}]}`},
		{tollgate.FormatCycloneDX, `{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"bom-ref": "p", "name": "tomcat", "version": "9.0.1"}],
		  "vulnerabilities": [{"id": "CVE-2025-24813", "ratings": [{"method": "CVSSv31", "score": 9.8, "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:X"}], "affects": [{"ref": "p"}]}]}`},
		{tollgate.FormatGrype, `{"matches": [{"vulnerability": {"id": "CVE-2025-24813", "severity": "Critical",
		  "cvss": [{"version": "3.1", "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "metrics": {"baseScore": 9.8}}]},
		  "artifact": {"name": "tomcat", "version": "9.0.1"}}], "source": {}, "descriptor": {"name": "grype"}}`},
	} {
		scan, err := scans.Parse(tt.format, []byte(tt.report))
		if err != nil || len(scan.Findings) != 1 {
			t.Fatalf("%s: %+v, %v", tt.format, scan.Findings, err)
		}
		if r := scan.Findings[0].Reported; r == nil || r.Score != 9.8 {
			t.Errorf("%s: reported score %+v, want 9.8 (the vector does not parse)", tt.format, r)
		}
	}
}

// A SARIF log that records no analysis was read as a clean scan: no runs,
// a run without results (SARIF 2.1.0 leaves results out when the tool
// failed to start or to begin its analysis) or a run whose invocation
// says executionSuccessful false. Each is refused; an empty results list
// (Trivy's report of a clean image) is still a clean run.
func TestSARIFLogOfNoAnalysisIsNotACleanScan(t *testing.T) {
	empty := string(fixture(t, "sarif-empty.json"))
	codeql := string(fixture(t, "sarif-codeql.json"))
	if s, err := scans.Parse(tollgate.FormatSARIF, []byte(empty)); err != nil || len(s.Findings) != 0 {
		t.Fatalf("Trivy's clean run: %v", err)
	}
	for _, tt := range []struct{ name, report, want string }{
		{"no runs", `{"version": "2.1.0", "runs": []}`, "runs is empty"},
		{"results left out", strings.Replace(empty, `"results": [],`, ``, 1), `runs[0]: results is missing: "Trivy" did not complete an analysis`},
		{"results null", strings.Replace(empty, `"results": [],`, `"results": null,`, 1), `results is missing`},
		{"execution failed", strings.Replace(codeql, `"executionSuccessful": true`, `"executionSuccessful": false`, 1), `runs[0].invocations[0]: executionSuccessful is false`},
	} {
		if tt.report == empty || tt.report == codeql {
			t.Fatalf("%s: the fixture changed", tt.name)
		}
		scan, err := scans.Parse(tollgate.FormatSARIF, []byte(tt.report))
		if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %d findings, %v; want refused with %q", tt.name, len(scan.Findings), err, tt.want)
		}
	}
}

// CycloneDX's VEX use case 5 scopes two statements on one product by
// version range: exploitable for >1.5.0 <7.0.0, not_affected for <=1.5.0
// and 7.0.0. tollgate ignored affects[].versions, so the not_affected
// statement alone would have cleared the vulnerability in every version.
// A clearing statement limited to versions tollgate cannot match is
// refused; the exploitable one alone is accepted (widening it keeps the
// finding in the gates).
func TestVEXStatementLimitedToVersionRangesIsRefused(t *testing.T) {
	doc := fixture(t, "real/cyclonedx-vex-case-5-versions.json")
	_, err := scans.ParseVEX(tollgate.FormatCycloneDX, doc)
	if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), "vulnerabilities[1].affects[0]: versions limits the not_affected statement on CVE-2020-25649 to some versions") {
		t.Fatalf("use case 5: %v, want the not_affected statement refused", err)
	}
	exploitableOnly := strings.Replace(string(doc), `"state": "not_affected"`, `"state": "in_triage"`, 1)
	statements, err := scans.ParseVEX(tollgate.FormatCycloneDX, []byte(exploitableOnly))
	if err != nil || len(statements) != 2 {
		t.Fatalf("statements that keep the finding: %d, %v", len(statements), err)
	}
}

// A finding's id, package and versions are recorded and drawn in the
// decision's reasons and on the history page; a report could carry a bidi
// override or a control character in them, and they were recorded as
// written. The report is refused, naming the finding.
func TestFindingNamesAreWellFormed(t *testing.T) {
	trivy := func(id, pkg string) string {
		return `{"SchemaVersion": 2, "ArtifactName": "app", "Results": [{"Target": "app", "Vulnerabilities": [
		  {"VulnerabilityID": "` + id + `", "PkgName": "` + pkg + `", "InstalledVersion": "9.0.1", "Severity": "CRITICAL"}]}]}`
	}
	for _, tt := range []struct{ name, format, report, want string }{
		{"bidi in a Trivy id", tollgate.FormatTrivy, trivy(`CVE-2025-24813\u202e`, "tomcat"), `the finding "CVE-2025-24813\u202e": id must not contain invisible formatting characters`},
		{"control in a Trivy package", tollgate.FormatTrivy, trivy("CVE-2025-24813", `tom\u0085cat`), `package must not contain control characters`},
		{"no-break space in a Grype version", tollgate.FormatGrype, `{"matches": [{"vulnerability": {"id": "CVE-2025-24813", "severity": "Critical"},
		  "artifact": {"name": "tomcat", "version": "9.0\u00a01"}}], "source": {}, "descriptor": {"name": "grype"}}`, `version must not contain blank, invisible or private characters`},
		{"bidi in a SARIF rule id", tollgate.FormatSARIF, `{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "scanner"}},
		  "results": [{"ruleId": "js/xss\u202e", "message": {"text": "m"}, "properties": {"security-severity": "7.5"}}]}]}`, `id must not contain invisible formatting characters`},
		{"bidi in a CycloneDX alias", tollgate.FormatCycloneDX, `{"bomFormat": "CycloneDX", "specVersion": "1.6",
		  "vulnerabilities": [{"id": "CVE-2025-24813", "references": [{"id": "GHSA-83qj-6fr2-vhqg\u2066"}]}]}`, `alias must not contain invisible formatting characters`},
	} {
		scan, err := scans.Parse(tt.format, []byte(tt.report))
		if tollgate.ErrorCode(err) != tollgate.EInvalid || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %+v, %v; want refused with %q", tt.name, scan.Findings, err, tt.want)
		}
	}
}

// A VEX statement is listed in the decision's "suppressed" and on the
// history page: its detail, justification and refs are held to the
// identifier characters (detail may span lines), in a VEX document sent
// beside a scan and in a CycloneDX scan's own analysis.
func TestVEXStatementTextIsWellFormed(t *testing.T) {
	doc := string(fixture(t, "real/cisa-case-1-vex-not_affected.json"))
	if _, err := scans.ParseVEX(tollgate.FormatCycloneDX, []byte(doc)); err != nil {
		t.Fatalf("the fixture: %v", err)
	}
	hostile := strings.Replace(doc, `"justification": "`, `"justification": "\u202e`, 1)
	if hostile == doc {
		t.Fatal("the fixture changed: no justification")
	}
	if _, err := scans.ParseVEX(tollgate.FormatCycloneDX, []byte(hostile)); tollgate.ErrorCode(err) != tollgate.EInvalid ||
		!strings.Contains(err.Error(), "analysis.justification must not contain invisible formatting characters") {
		t.Errorf("VEX document: %v, want refused", err)
	}
	scan := `{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"bom-ref": "p", "name": "tomcat", "version": "9.0.1"}],
	  "vulnerabilities": [{"id": "CVE-2025-24813", "analysis": {"state": "not_affected", "detail": "line one\nline\u0085two"}, "affects": [{"ref": "p"}]}]}`
	if _, err := scans.Parse(tollgate.FormatCycloneDX, []byte(scan)); tollgate.ErrorCode(err) != tollgate.EInvalid ||
		!strings.Contains(err.Error(), "analysis.detail must not contain control characters (found U+0085") {
		t.Errorf("CycloneDX scan: %v, want refused", err)
	}
}

// The scanner's name (SARIF's tool.driver.name, CycloneDX's tools) is
// recorded with the scan and returned by POST /v1/scans: same rules.
func TestScannerNameIsWellFormed(t *testing.T) {
	report := strings.Replace(string(fixture(t, "real/trivy-alpine-310.sarif")), `"name": "Trivy"`, `"name": "Trivy\u202e"`, 1)
	if _, err := scans.Parse(tollgate.FormatSARIF, []byte(report)); tollgate.ErrorCode(err) != tollgate.EInvalid ||
		!strings.Contains(err.Error(), "the scanner's name must not contain invisible formatting characters") {
		t.Errorf("%v, want refused", err)
	}
}
