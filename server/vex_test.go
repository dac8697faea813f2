package server

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// riskConfig is a simulate "config" giving service-api's production the
// security gates in settings.
func riskConfig(settings string) string {
	return `"config": {"projects": {"service-api": {"repositories": ["org/service-api"],
		"pipelines": {"deploy-prod": {"type": "deploy"}}, "risk": ` + settings + `}}}`
}

// simulateScan simulates exampleRequest with a scan (and more fields) under
// the given risk settings, and returns the status and reason codes.
func (f *fixture) simulateScan(format, report, settings, more string) (string, []string) {
	f.t.Helper()
	code, d := f.post("/v1/simulate", `{"input": `+exampleRequest+`, "scan": {"format": "`+format+`", "report": `+report+`}, `+
		more+riskConfig(settings)+`}`)
	if code != http.StatusOK {
		f.t.Fatalf("simulate with a %s scan: %d %v", format, code, d)
	}
	return d["status"].(string), reasonCodes(d)
}

// The promise the issue found broken: an older Trivy's SARIF (real, eight
// CVE results, no security tag or security-severity) gave no finding, so
// a project with require_scan and max_unknowns 0 accepted it.
func TestUntaggedSARIFVulnerabilitiesCountAsUnknowns(t *testing.T) {
	f := newFixture(t)
	status, codes := f.simulateScan("sarif", f.report("real/trivy-alpine-310-untagged.sarif"),
		`{"require_scan": true, "max_unknowns": 0}`, "")
	if status != "refused" || !reflect.DeepEqual(codes, []string{"unknowns_exceeded"}) {
		t.Fatalf("got %s %v, want refused for unknowns_exceeded", status, codes)
	}
}

// The same scanner's findings for the same image give the same decision
// whichever format they were exported in.
func TestSameImageSameDecisionInEveryFormat(t *testing.T) {
	f := newFixture(t)
	type export struct{ format, file string }
	for _, tt := range []struct {
		name     string
		exports  []export
		settings string
		status   string
		codes    []string
	}{
		// Trivy scores the four findings 5.3: its JSON by NVD's vector, its
		// SARIF by security-severity.
		{"trivy over max_cvss", []export{{"trivy", "trivy-alpine-310.json"}, {"sarif", "trivy-alpine-310.sarif"}},
			`{"require_scan": true, "max_cvss": 5.0, "max_unknowns": 0}`, "refused", []string{"risk_threshold_exceeded"}},
		{"trivy within max_cvss", []export{{"trivy", "trivy-alpine-310.json"}, {"sarif", "trivy-alpine-310.sarif"}},
			`{"require_scan": true, "max_cvss": 5.3, "max_unknowns": 0}`, "accepted", []string{}},
		// Grype: CVE-1999-0001 scores 4 in the three formats.
		{"grype over max_cvss", []export{{"grype", "grype-image.json"}, {"sarif", "grype-image.sarif"}, {"cyclonedx", "grype-image.cdx.json"}},
			`{"require_scan": true, "max_cvss": 3.9}`, "refused", []string{"risk_threshold_exceeded"}},
		{"grype within max_cvss", []export{{"grype", "grype-image.json"}, {"sarif", "grype-image.sarif"}, {"cyclonedx", "grype-image.cdx.json"}},
			`{"require_scan": true, "max_cvss": 4.0}`, "accepted", []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, e := range tt.exports {
				status, codes := f.simulateScan(e.format, f.report("real/"+e.file), tt.settings, "")
				if status != tt.status || !reflect.DeepEqual(codes, tt.codes) {
					t.Errorf("%s: %s %v, want %s %v", e.file, status, codes, tt.status, tt.codes)
				}
			}
		})
	}

	// The one difference the formats carry: Grype's CVE-1999-0002 has only
	// a CVSS v2 score. JSON and CycloneDX say so — an unknown for tollgate,
	// which scores v3/v4 only —, SARIF writes it as security-severity 1.0.
	for _, e := range []struct{ format, file, status string }{
		{"grype", "grype-image.json", "refused"}, {"cyclonedx", "grype-image.cdx.json", "refused"}, {"sarif", "grype-image.sarif", "accepted"},
	} {
		if status, _ := f.simulateScan(e.format, f.report("real/"+e.file), `{"max_unknowns": 0}`, ""); status != e.status {
			t.Errorf("%s with max_unknowns 0: %s, want %s", e.file, status, e.status)
		}
	}
}

// jacksonScan is a Grype report of jackson-databind 2.10.0 with
// CVE-2020-25649 (CVSS 7.5), the vulnerability of CycloneDX's VEX example.
const jacksonScan = `{"matches": [{"vulnerability": {"id": "CVE-2020-25649", "severity": "High",
	"cvss": [{"version": "3.1", "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N"}]},
	"artifact": {"name": "jackson-databind", "version": "2.10.0", "purl": "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.10.0"}}],
	"descriptor": {"name": "grype", "version": "0.92.2"}}`

// A VEX document sent beside the scan takes a not_affected finding out of
// the gates, and the answer and the record say which and on whose word.
func TestVEXBesideAScanSuppressesVisibly(t *testing.T) {
	f := newFixture(t)
	vex := `"vex": {"format": "cyclonedx", "report": ` + f.report("real/cyclonedx-vex.json") + `}, `
	gates := `{"require_scan": true, "max_cvss": 7.0, "max_unknowns": 0, "max_risk": 1.0}`
	if status, codes := f.simulateScan("grype", jacksonScan, gates, ""); status != "refused" || !reflect.DeepEqual(codes, []string{"risk_threshold_exceeded"}) {
		t.Fatalf("without the VEX: %s %v, want refused for risk_threshold_exceeded", status, codes)
	}
	code, d := f.post("/v1/simulate", `{"input": `+exampleRequest+`, "scan": {"format": "grype", "report": `+jacksonScan+`}, `+vex+riskConfig(gates)+`}`)
	if code != http.StatusOK || d["status"] != "accepted" {
		t.Fatalf("with the VEX: %d %v", code, d)
	}
	checkSuppressed(t, d)

	// exploitable keeps it in the gates.
	exploitable := strings.Replace(vex, `"state": "not_affected"`, `"state": "exploitable"`, 1)
	if status, codes := f.simulateScan("grype", jacksonScan, gates, exploitable); status != "refused" || !reflect.DeepEqual(codes, []string{"risk_threshold_exceeded"}) {
		t.Fatalf("with an exploitable statement: %s %v", status, codes)
	}

	// Evaluated beside a stored scan: the record keeps the suppressed list
	// and the statement in the scan's findings.
	code, stored := f.post("/v1/scans", `{"project": "service-api", "artifact": "`+artifact+`", "scan": {"format": "grype", "report": `+jacksonScan+`}}`)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/scans: %d %v", code, stored)
	}
	code, d = f.post("/v1/evaluate", withField(exampleRequest, vex+`"scan_id": "`+stored["scan_id"].(string)+`"`))
	if code != http.StatusOK {
		t.Fatalf("evaluate with scan_id and vex: %d %v", code, d)
	}
	checkSuppressed(t, d)
	_, rec := f.do(http.MethodGet, "/v1/decisions/"+d["decision_id"].(string), "", "")
	checkSuppressed(t, rec)
	finding := rec["context"].(map[string]any)["scan"].(map[string]any)["findings"].([]any)[0].(map[string]any)
	if finding["vex_status"] != "not_affected" || finding["vex"].(map[string]any)["justification"] != "code_not_reachable" {
		t.Fatalf("the recorded finding does not carry the statement: %v", finding)
	}
}

func checkSuppressed(t *testing.T, d map[string]any) {
	t.Helper()
	list, _ := d["suppressed"].([]any)
	if len(list) != 1 {
		t.Fatalf("suppressed: %v", d["suppressed"])
	}
	s := list[0].(map[string]any)
	st, _ := s["statement"].(map[string]any)
	if s["id"] != "CVE-2020-25649" || s["package"] != "jackson-databind" || s["version"] != "2.10.0" || s["vex_status"] != "not_affected" ||
		st["state"] != "not_affected" || st["justification"] != "code_not_reachable" ||
		st["affects"] != "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.10.0?type=jar" {
		t.Fatalf("suppressed[0]: %v", s)
	}
}

// A VEX that cannot be read, or that has no scan to apply to, is a 400 and
// nothing is recorded.
func TestBadVEXIsRefusedAndNotRecorded(t *testing.T) {
	f := newFixture(t)
	real := f.report("real/cyclonedx-vex.json")
	for _, tt := range []struct{ name, field, want string }{
		{"not a VEX", `"scan": {"format": "grype", "report": ` + jacksonScan + `}, "vex": {"format": "cyclonedx", "report": {"bomFormat": "SPDX"}}`, `vex: `},
		{"no analysis", `"scan": {"format": "grype", "report": ` + jacksonScan + `}, "vex": {"format": "cyclonedx", "report": ` +
			strings.Replace(real, `"state": "not_affected",`, "", 1) + `}`, "analysis.state is missing"},
		{"openvex", `"scan": {"format": "grype", "report": ` + jacksonScan + `}, "vex": {"format": "openvex", "report": ` + real + `}`, `vex format "openvex"`},
		{"no report", `"scan": {"format": "grype", "report": ` + jacksonScan + `}, "vex": {"format": "cyclonedx"}`, "vex.report is required"},
		{"no scan", `"vex": {"format": "cyclonedx", "report": ` + real + `}`, "vex applies to a scan"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, d := f.post("/v1/evaluate", withField(exampleRequest, tt.field))
			if code != http.StatusBadRequest || !strings.Contains(errorMessage(d), tt.want) {
				t.Fatalf("evaluate: %d %v, want 400 saying %q", code, d, tt.want)
			}
			code, d = f.post("/v1/simulate", `{"input": `+exampleRequest+`, `+tt.field+`}`)
			if code != http.StatusBadRequest || !strings.Contains(errorMessage(d), tt.want) {
				t.Fatalf("simulate: %d %v, want 400 saying %q", code, d, tt.want)
			}
		})
	}
	if _, list := f.do(http.MethodGet, "/v1/decisions", "", ""); len(list["decisions"].([]any)) != 0 {
		t.Fatalf("a refused request was recorded: %v", list)
	}
}

// A VEX document that names its artifact's digest applies only to a stored
// scan of that artifact: another artifact's VEX is a 400, never recorded.
func TestVEXOfAnotherArtifactIsRefused(t *testing.T) {
	f := newFixture(t)
	code, stored := f.post("/v1/scans", `{"project": "service-api", "artifact": "`+artifact+`", "scan": {"format": "grype", "report": `+jacksonScan+`}}`)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/scans: %d %v", code, stored)
	}
	id := stored["scan_id"].(string)
	vexFor := func(digest string) string {
		doc := strings.Replace(f.report("real/cyclonedx-vex.json"), `"version": 1,`,
			`"version": 1, "metadata": {"component": {"type": "container", "name": "shop", "purl": "pkg:oci/shop@sha256%3A`+digest+`"}},`, 1)
		return `"vex": {"format": "cyclonedx", "report": ` + doc + `}, "scan_id": "` + id + `"`
	}
	other := strings.Repeat("ab", 32)
	code, d := f.post("/v1/evaluate", withField(exampleRequest, vexFor(other)))
	if code != http.StatusBadRequest || !strings.Contains(errorMessage(d), "the document is about artifact sha256:"+other) {
		t.Fatalf("another artifact's VEX: %d %v", code, d)
	}
	if _, list := f.do(http.MethodGet, "/v1/decisions", "", ""); len(list["decisions"].([]any)) != 0 {
		t.Fatalf("a refused request was recorded: %v", list)
	}
	code, d = f.post("/v1/evaluate", withField(exampleRequest, vexFor(strings.TrimPrefix(artifact, "sha256:"))))
	if code != http.StatusOK {
		t.Fatalf("the artifact's own VEX: %d %v", code, d)
	}
	checkSuppressed(t, d)
}

// A stored scan keeps what the gates need of each finding: the report's
// own score, and the statement of the report's own VEX analysis.
func TestStoredScanKeepsReportedScoresAndStatements(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ format, file, field string }{
		{"sarif", "real/trivy-alpine-310.sarif", "reported_score"},
		{"cyclonedx", "cyclonedx-vex-1.5.json", "vex"},
	} {
		code, d := f.post("/v1/scans", `{"project": "service-api", "artifact": "`+artifact+`", "scan": {"format": "`+tt.format+`", "report": `+f.report(tt.file)+`}}`)
		if code != http.StatusCreated {
			t.Fatalf("POST /v1/scans %s: %d %v", tt.file, code, d)
		}
		_, got := f.do(http.MethodGet, "/v1/scans/"+d["scan_id"].(string), "", "")
		finding := got["scan"].(map[string]any)["findings"].([]any)[0].(map[string]any)
		if finding[tt.field] == nil {
			t.Errorf("%s: the stored finding lost its %s: %v", tt.file, tt.field, finding)
		}
	}
}
