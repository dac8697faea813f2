package scans_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/cvss"
	"github.com/tollgate/tollgate/adapters/scans"
)

// Real reports: testdata/real/README.md names where each comes from.

func realScan(t *testing.T, format, name string) tollgate.Scan {
	t.Helper()
	s, err := scans.Parse(format, fixture(t, "real/"+name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

// gateView is what the security gates read of a finding: its identity,
// its severity class and its score — a vector's (adapters/cvss), else the
// report's own — or "unknown".
func gateView(f tollgate.Finding) string {
	score := "unknown"
	if r, ok := cvss.Best(f.CVSS); ok {
		score = fmt.Sprint(r.Score)
	} else if f.Reported != nil {
		score = fmt.Sprint(f.Reported.Score)
	}
	return fmt.Sprintf("%s %s %s %s score=%s", f.ID, f.Package, f.Version, f.Severity, score)
}

func gateViews(s tollgate.Scan) []string {
	var out []string
	for _, f := range s.Findings {
		out = append(out, gateView(f))
	}
	slices.Sort(out)
	return out
}

// An older Trivy's SARIF tags its rules "vulnerability" and gives neither
// a "security" tag nor a security-severity: its eight CVE results used to
// give no finding at all, and a release with require_scan and
// max_unknowns 0 was accepted. Each is a finding now, with no score: an
// unknown.
func TestSARIFVulnerabilityWithoutSecurityTagIsAnUnknownFinding(t *testing.T) {
	got := gateViews(realScan(t, "sarif", "trivy-alpine-310-untagged.sarif"))
	var want []string
	for _, pkg := range []string{"libcrypto1.1", "libssl1.1"} {
		for _, c := range []struct{ id, sev string }{
			{"CVE-2019-1547", "low"}, {"CVE-2019-1549", "medium"}, {"CVE-2019-1551", "medium"}, {"CVE-2019-1563", "medium"},
		} {
			want = append(want, fmt.Sprintf("%s %s 1.1.1c-r0 %s score=unknown", c.id, pkg, c.sev))
		}
	}
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// One scan exported in several formats gives the gates the same findings:
// same ids, packages, versions, severities and scores.
func TestSameScanSameFindingsInEveryFormat(t *testing.T) {
	// Trivy: the JSON's NVD vector scores 5.3; the SARIF has no vector and
	// a security-severity of 5.3.
	trivyJSON := gateViews(realScan(t, "trivy", "trivy-alpine-310.json"))
	trivySARIF := gateViews(realScan(t, "sarif", "trivy-alpine-310.sarif"))
	if !reflect.DeepEqual(trivyJSON, trivySARIF) || len(trivyJSON) != 4 {
		t.Errorf("Trivy JSON:\n%s\nTrivy SARIF:\n%s", strings.Join(trivyJSON, "\n"), strings.Join(trivySARIF, "\n"))
	}
	for _, v := range trivyJSON {
		if !strings.HasSuffix(v, "medium score=5.3") {
			t.Errorf("Trivy: %s, want a medium finding scored 5.3", v)
		}
	}

	// Grype: CVE-1999-0001 has a v3.0 entry whose vector is unreadable and
	// whose base score is 4 — the JSON's baseScore, the CycloneDX rating's
	// score and the SARIF security-severity all say 4. CVE-1999-0002 has
	// only a CVSS v2 entry (base score 1): the JSON and CycloneDX say so and
	// tollgate does not score v2, so it is an unknown; Grype's SARIF writes
	// that v2 score as security-severity "1.0" without saying it is v2, so
	// there it is scored 1.0. That is the one difference, and it is the
	// formats', documented in the README.
	grypeJSON := gateViews(realScan(t, "grype", "grype-image.json"))
	grypeCDX := gateViews(realScan(t, "cyclonedx", "grype-image.cdx.json"))
	grypeSARIF := gateViews(realScan(t, "sarif", "grype-image.sarif"))
	want := []string{
		"CVE-1999-0001 package-1 1.1.1 low score=4",
		"CVE-1999-0002 package-2 2.2.2 critical score=unknown",
	}
	if !reflect.DeepEqual(grypeJSON, want) {
		t.Errorf("Grype JSON:\n%s\nwant:\n%s", strings.Join(grypeJSON, "\n"), strings.Join(want, "\n"))
	}
	if !reflect.DeepEqual(grypeCDX, want) {
		t.Errorf("Grype CycloneDX:\n%s\nwant:\n%s", strings.Join(grypeCDX, "\n"), strings.Join(want, "\n"))
	}
	wantSARIF := []string{want[0], "CVE-1999-0002 package-2 2.2.2 critical score=1"}
	if !reflect.DeepEqual(grypeSARIF, wantSARIF) {
		t.Errorf("Grype SARIF:\n%s\nwant:\n%s", strings.Join(grypeSARIF, "\n"), strings.Join(wantSARIF, "\n"))
	}
}

// A security-severity of 0 for a finding the scanner rates unknown is
// Grype's and Trivy's "no data", not a score: the finding stays unknown.
func TestSARIFZeroSecuritySeverityOfAnUnknownIsNoScore(t *testing.T) {
	report := `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"grype","rules":[
	  {"id":"CVE-2024-1-p","help":{"text":"Vulnerability CVE-2024-1\nSeverity: unknown\nPackage: p\nVersion: 1"},"properties":{"security-severity":"0.0"}},
	  {"id":"CVE-2024-2-p","help":{"text":"Vulnerability CVE-2024-2\nSeverity: negligible\nPackage: p\nVersion: 1"},"properties":{"security-severity":"0.0"}}]}},
	  "results":[{"ruleId":"CVE-2024-1-p"},{"ruleId":"CVE-2024-2-p"}]}]}`
	s, err := scans.Parse("sarif", []byte(report))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CVE-2024-1 p 1 unknown score=unknown", "CVE-2024-2 p 1 none score=0"}
	if got := gateViews(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A result names a vulnerability by a CVE or GHSA id anywhere, or by being
// a vulnerability scanner's; a code scanner's result that is neither a
// security result nor names one is a code-quality result, not a finding.
func TestSARIFWhatIsAFinding(t *testing.T) {
	report := `{"version":"2.1.0","runs":[
	  {"tool":{"driver":{"name":"some-sca","rules":[{"id":"R1","name":"ghsa-jfh8-c2jp-5v3q in log4j"},{"id":"R2"},{"id":"R3","properties":{"tags":["maintainability"]}}]}},
	   "results":[{"ruleId":"R1"},{"ruleId":"R2","message":{"text":"log4j-core is affected by cve-2021-44228"}},{"ruleId":"R3","message":{"text":"unused variable"}}]},
	  {"tool":{"driver":{"name":"Anchore Container Scan"}},"results":[{"ruleId":"ANCHORE-1","message":{"text":"vulnerable package"}}]}]}`
	s, err := scans.Parse("sarif", []byte(report))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ANCHORE-1   unknown score=unknown",
		"CVE-2021-44228   unknown score=unknown",
		"GHSA-jfh8-c2jp-5v3q   unknown score=unknown",
	}
	if got := gateViews(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// CycloneDX's own VEX example (bom-examples VEX/vex.json): one statement,
// about jackson-databind 2.10.0 through a BOM-Link.
func TestParseVEXRealExample(t *testing.T) {
	got, err := scans.ParseVEX("cyclonedx", fixture(t, "real/cyclonedx-vex.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []tollgate.VEXStatement{{
		ID: "CVE-2020-25649", Aliases: []string{"SNYK-JAVA-COMFASTERXMLJACKSONCORE-1048302"},
		Affects: "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.10.0?type=jar",
		Package: "com.fasterxml.jackson.core/jackson-databind", Version: "2.10.0",
		State: "not_affected", Status: tollgate.VEXNotAffected, Justification: "code_not_reachable",
		Detail: "Automated dataflow analysis and manual code review indicates that the vulnerable code is not reachable, either directly or indirectly.",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseVEX:\n%+v\nwant:\n%+v", got, want)
	}

	// Applied to scans of the same artefact as each scanner names the
	// package: Grype's bare name, Trivy's group:name, CycloneDX's
	// group/name. Another version of the package is not covered.
	scan := tollgate.Scan{Findings: []tollgate.Finding{
		{ID: "CVE-2020-25649", Package: "jackson-databind", Version: "2.10.0"},
		{ID: "CVE-2020-25649", Package: "com.fasterxml.jackson.core:jackson-databind", Version: "2.10.0"},
		{ID: "GHSA-288c-cq4h-88gq", Aliases: []string{"CVE-2020-25649"}, Package: "com.fasterxml.jackson.core/jackson-databind", Version: "2.10.0"},
		{ID: "CVE-2020-25649", Package: "jackson-databind", Version: "2.9.0"},
		{ID: "CVE-2021-44228", Package: "jackson-databind", Version: "2.10.0"},
	}}
	applied := scan.WithVEX(got)
	for i, wantSuppressed := range []bool{true, true, true, false, false} {
		f := applied.Findings[i]
		if f.Suppressed() != wantSuppressed || (f.VEX != nil) != wantSuppressed {
			t.Errorf("finding %d %s %s@%s: suppressed %v (statement %v), want %v", i, f.ID, f.Package, f.Version, f.Suppressed(), f.VEX, wantSuppressed)
		}
	}
	if scan.Findings[0].VEXStatus != "" {
		t.Error("WithVEX modified the scan it was given")
	}
}

// CISA's case 1: a statement about the product itself (affects its
// metadata.component) covers the vulnerability in every package.
func TestParseVEXProductStatement(t *testing.T) {
	got, err := scans.ParseVEX("cyclonedx", fixture(t, "real/cisa-case-1-vex-not_affected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Package != "" || got[0].Affects != "product-ABC" || got[0].Justification != "code_not_present" {
		t.Fatalf("ParseVEX: %+v", got)
	}
	scan := tollgate.Scan{Findings: []tollgate.Finding{
		{ID: "CVE-2021-44228", Package: "log4j-core", Version: "2.14.1"},
		{ID: "CVE-2021-45046", Package: "log4j-core", Version: "2.14.1"},
	}}.WithVEX(got)
	if !scan.Findings[0].Suppressed() || scan.Findings[1].Suppressed() {
		t.Fatalf("WithVEX: %+v", scan.Findings)
	}
}

// exploitable and in_triage keep a finding; when statements disagree about
// one finding, the one that keeps it wins.
func TestVEXStatementThatKeepsAFindingWins(t *testing.T) {
	doc := strings.Replace(string(fixture(t, "real/cyclonedx-vex.json")), `"state": "not_affected"`, `"state": "exploitable"`, 1)
	exploitable, err := scans.ParseVEX("cyclonedx", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cleared, err := scans.ParseVEX("cyclonedx", fixture(t, "real/cyclonedx-vex.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The report's own analysis says exploitable: a VEX beside it does not
	// clear it.
	own := tollgate.Scan{Findings: []tollgate.Finding{{ID: "CVE-2020-25649", Package: "jackson-databind", Version: "2.10.0",
		VEXStatus: tollgate.VEXAffected}}}
	if f := own.WithVEX(cleared).Findings[0]; f.Suppressed() {
		t.Errorf("a VEX beside the scan cleared what the scan's own analysis keeps: %+v", f)
	}
	scan := tollgate.Scan{Findings: []tollgate.Finding{{ID: "CVE-2020-25649", Package: "jackson-databind", Version: "2.10.0"}}}
	for _, statements := range [][]tollgate.VEXStatement{
		exploitable,
		append(slices.Clone(cleared), exploitable...),
		append(slices.Clone(exploitable), cleared...),
	} {
		f := scan.WithVEX(statements).Findings[0]
		if f.Suppressed() || f.VEXStatus != tollgate.VEXAffected || f.VEX == nil || f.VEX.State != "exploitable" {
			t.Errorf("with %d statements: %+v", len(statements), f)
		}
	}
}

func TestParseVEXRefuses(t *testing.T) {
	real := string(fixture(t, "real/cyclonedx-vex.json"))
	for _, tt := range []struct{ name, format, doc, want string }{
		{"another format", "openvex", real, `vex format "openvex" is not one tollgate reads`},
		{"not JSON", "cyclonedx", `{"bomFormat":`, "not valid JSON"},
		{"a SARIF log", "cyclonedx", `{"version":"2.1.0","runs":[]}`, `bomFormat is not "CycloneDX"`},
		{"no statement", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[]}`, "vulnerabilities is empty"},
		{"no analysis", "cyclonedx", strings.Replace(real, `"state": "not_affected",`, ``, 1), "vulnerabilities[0]: analysis.state is missing (CVE-2020-25649)"},
		{"unknown state", "cyclonedx", strings.Replace(real, `"state": "not_affected"`, `"state": "wontfix"`, 1), `state "wontfix" is not a CycloneDX analysis state`},
		{"affects nothing", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[{"id":"CVE-2024-1","analysis":{"state":"not_affected"}}]}`, "affects is empty (CVE-2024-1)"},
		{"a ref that names no package", "cyclonedx", strings.Replace(real, "#pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.10.0?type=jar", "#component-7", 1),
			`vulnerabilities[0].affects[0]: ref "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#component-7" names no package`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scans.ParseVEX(tt.format, []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) || tollgate.ErrorCode(err) != tollgate.EInvalid {
				t.Fatalf("ParseVEX: %v, want an invalid error saying %q", err, tt.want)
			}
		})
	}
}

// ParseVEX never panics, refuses with an invalid-input error, and every
// statement it accepts can be applied: an id, an affects ref, a known status.
func FuzzParseVEX(f *testing.F) {
	for _, name := range []string{"real/cyclonedx-vex.json", "real/cisa-case-1-vex-not_affected.json", "cyclonedx-vex-1.5.json", "cyclonedx-1.6.json"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		statements, err := scans.ParseVEX(tollgate.FormatCycloneDX, doc)
		if err != nil {
			if tollgate.ErrorCode(err) != tollgate.EInvalid {
				t.Fatalf("error code %s: %v", tollgate.ErrorCode(err), err)
			}
			return
		}
		for i, st := range statements {
			if st.ID == "" || st.Affects == "" || st.State == "" {
				t.Fatalf("statement %d: %+v", i, st)
			}
			switch st.Status {
			case tollgate.VEXAffected, tollgate.VEXNotAffected, tollgate.VEXFixed, tollgate.VEXUnderInvestigation:
			default:
				t.Fatalf("statement %d has status %q", i, st.Status)
			}
		}
	})
}

// A VEX document whose subject gives its digest (an OCI package URL or a
// SHA-256 hash) passes it on in each statement, for the gate to compare
// with a stored scan's artifact.
func TestParseVEXArtifactDigest(t *testing.T) {
	const digest = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	real := string(fixture(t, "real/cyclonedx-vex.json"))
	for _, tt := range []struct{ name, component, want string }{
		{"oci purl", `{"type": "container", "name": "shop", "bom-ref": "shop", "purl": "pkg:oci/shop@sha256%3A` + digest[7:] + `"}`, digest},
		{"sha-256 hash", `{"type": "container", "name": "shop", "hashes": [{"alg": "SHA-256", "content": "` + strings.ToUpper(digest[7:]) + `"}]}`, digest},
		{"no digest", `{"type": "application", "name": "ABC", "version": "4.2"}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(real, `"version": 1,`, `"version": 1, "metadata": {"component": `+tt.component+`},`, 1)
			got, err := scans.ParseVEX("cyclonedx", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Artifact != tt.want {
				t.Fatalf("statements %+v, want artifact %q", got, tt.want)
			}
		})
	}
}
