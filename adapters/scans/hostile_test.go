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
