package server

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

func (f *fixture) report(name string) string {
	f.t.Helper()
	b, err := os.ReadFile("../adapters/scans/testdata/" + name)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

const artifact = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// postScan stores a Trivy report for service-api and returns its ID.
func (f *fixture) postScan(report string) string {
	f.t.Helper()
	code, d := f.post("/v1/scans", `{"project": "service-api", "artifact": "`+artifact+`",
		"scan": {"format": "trivy", "report": `+report+`}}`)
	if code != http.StatusCreated || d["scan_id"] == nil {
		f.t.Fatalf("POST /v1/scans: %d %v", code, d)
	}
	return d["scan_id"].(string)
}

func withField(request, field string) string {
	return strings.TrimSuffix(request, "}") + ", " + field + "}"
}

func errorMessage(d map[string]any) string {
	e, _ := d["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// TestStoredScansAndDrift: scans posted ahead are evaluated by ID; an
// accepted one becomes the baseline the next release is compared with.
func TestStoredScansAndDrift(t *testing.T) {
	f := newFixture(t)
	code, d := f.post("/v1/scans", withField(exampleRequest, `"project": "service-api", "artifact": "`+artifact+`",
		"scan": {"format": "trivy", "report": `+f.report("trivy-image.json")+`}`))
	if code != http.StatusCreated || d["project"] != "service-api" || d["artifact"] != artifact ||
		d["format"] != "trivy" || d["findings"].(float64) == 0 || d["scanned_at"] != "2026-11-23T09:00:00Z" {
		t.Fatalf("POST /v1/scans: %d %v", code, d)
	}
	image := d["scan_id"].(string)
	code, got := f.do(http.MethodGet, "/v1/scans/"+image, "", "")
	if code != http.StatusOK || got["scan_id"] != image || got["request"].(map[string]any)["metadata"].(map[string]any)["run_id"] != "123456789" ||
		len(got["scan"].(map[string]any)["findings"].([]any)) != int(d["findings"].(float64)) {
		t.Fatalf("GET /v1/scans/%s: %d %v", image, code, got)
	}
	if code, e := f.do(http.MethodGet, "/v1/scans/nope", "", ""); code != http.StatusNotFound || errorMessage(e) == "" {
		t.Fatalf("GET an unknown scan: %d %v", code, e)
	}

	// The first release, clean, is accepted: it becomes the baseline.
	clean := f.postScan(f.report("trivy-empty.json"))
	code, first := f.post("/v1/evaluate", withField(exampleRequest, `"scan_id": "`+clean+`"`))
	if code != http.StatusOK || first["status"] != "accepted" {
		t.Fatalf("evaluate the clean scan: %d %v", code, first)
	}
	_, rec := f.do(http.MethodGet, "/v1/decisions/"+first["decision_id"].(string), "", "")
	scan := rec["context"].(map[string]any)["scan"].(map[string]any)
	if scan["scan_id"] != clean || scan["artifact"] != artifact || scan["scanned_at"] != "2026-11-23T09:00:00Z" {
		t.Fatalf("the record does not name the stored scan: %v", scan)
	}

	// The next release brings new findings: a project that blocks them is
	// refused, naming the findings and the baseline decision.
	f.setNow("2026-11-23T11:00:00+01:00")
	config := `"config": {"projects": {"service-api": {"repositories": ["org/service-api"],
		"pipelines": {"deploy-prod": {"type": "deploy"}}, "risk": {"block_new_findings": true}}}}`
	code, d = f.post("/v1/simulate", `{"input": `+exampleRequest+`, "scan_id": "`+image+`", `+config+`}`)
	if code != http.StatusOK || d["status"] != "refused" || !contains(reasonCodes(d), "risk_drift") {
		t.Fatalf("simulate a release with new findings: %d %v", code, d)
	}
	message := d["reasons"].([]any)[0].(map[string]any)["message"].(string)
	if !strings.Contains(message, "new finding(s) since the last accepted release (decision "+first["decision_id"].(string)+")") ||
		!strings.Contains(message, "CVE-2025-24813") {
		t.Fatalf("the drift reason does not name the findings and the baseline: %s", message)
	}
	// Under the shipped configuration (no drift gate) it is accepted, and
	// its record keeps the baseline it was compared with.
	code, d = f.post("/v1/evaluate", withField(exampleRequest, `"scan_id": "`+image+`"`))
	if code != http.StatusOK || d["status"] != "accepted" {
		t.Fatalf("evaluate the image scan: %d %v", code, d)
	}
	_, rec = f.do(http.MethodGet, "/v1/decisions/"+d["decision_id"].(string), "", "")
	baseline, _ := rec["context"].(map[string]any)["baseline"].(map[string]any)
	if baseline == nil || baseline["decision_id"] != first["decision_id"] || baseline["scan_id"] != clean {
		t.Fatalf("the record lacks its baseline: %v", rec["context"])
	}

	// Bad references are 400s, and record nothing.
	before := f.countDecisions()
	payments := strings.NewReplacer("org/service-api", "org/payments").Replace(exampleRequest)
	for _, tc := range []struct{ body, want string }{
		{withField(exampleRequest, `"scan_id": "nope"`), `scan_id: no scan "nope" is stored`},
		{withField(exampleRequest, `"scan_id": "`+clean+`", "scan": {"format": "trivy", "report": `+f.report("trivy-empty.json")+`}`), "either scan or scan_id"},
		{withField(payments, `"scan_id": "`+clean+`"`), `is of project "service-api", and this request is of project "payments"`},
		{withField(exampleRequest, `"scan_id": 7`), "scan_id"},
	} {
		code, e := f.post("/v1/evaluate", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(errorMessage(e), tc.want) {
			t.Errorf("%.60s…: %d %v, want 400 naming %q", tc.body, code, e, tc.want)
		}
	}
	if code, e := f.post("/v1/simulate", `{"input": `+exampleRequest+`, "scan_id": "nope"}`); code != http.StatusBadRequest {
		t.Errorf("simulate with an unknown scan_id: %d %v", code, e)
	}
	if n := f.countDecisions(); n != before {
		t.Fatalf("%d decisions recorded by bad requests", n-before)
	}
}

func TestPostScanRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	report := `"scan": {"format": "trivy", "report": ` + f.report("trivy-empty.json") + `}`
	for _, tc := range []struct{ body, want string }{
		{`{"artifact": "` + artifact + `", ` + report + `}`, "project is required"},
		{`{"project": "nope", "artifact": "` + artifact + `", ` + report + `}`, `project "nope" is not in the projects registry`},
		{`{"project": "service-api", ` + report + `}`, "artifact is required"},
		{`{"project": "service-api", "artifact": "sha256:abc", ` + report + `}`, `artifact "sha256:abc" is not a digest`},
		{`{"project": "service-api", "artifact": "` + artifact + `"}`, "scan is required"},
		{`{"project": "service-api", "artifact": "` + artifact + `", "scan": {"format": "trivy", "report": {"matches": []}}}`, "not a Trivy JSON report"},
		{`{"project": "service-api", "artifact": "` + artifact + `", "colour": "blue", ` + report + `}`, "colour"},
	} {
		code, e := f.post("/v1/scans", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(errorMessage(e), tc.want) {
			t.Errorf("%.70s…: %d %v, want 400 naming %q", tc.body, code, e, tc.want)
		}
	}
	if code, e := f.do(http.MethodPost, "/v1/scans", "text/plain", "{}"); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %v", code, e)
	}
}

const epssCSV = `#model_version:v2025.03.14,score_date:2026-11-22T12:55:00Z
cve,epss,percentile
CVE-2025-24813,0.94,0.999
CVE-2023-45853,0.01,0.5
`

func TestEPSSImportEndpoint(t *testing.T) {
	f := newFixture(t)
	if code, d := f.do(http.MethodGet, "/v1/epss", "", ""); code != http.StatusOK || d["count"] != 0.0 {
		t.Fatalf("GET /v1/epss before any import: %d %v", code, d)
	}
	code, d := f.do(http.MethodPost, "/v1/epss", "text/csv", epssCSV)
	if code != http.StatusOK || d["count"] != 2.0 || d["model_version"] != "v2025.03.14" || d["score_date"] != "2026-11-22T12:55:00Z" {
		t.Fatalf("POST /v1/epss: %d %v", code, d)
	}
	if code, d := f.do(http.MethodGet, "/v1/epss", "", ""); code != http.StatusOK || d["count"] != 2.0 {
		t.Fatalf("GET /v1/epss: %d %v", code, d)
	}
	// The findings of the next evaluation carry their EPSS.
	_, d = f.post("/v1/evaluate", withField(exampleRequest, `"scan": {"format": "trivy", "report": `+f.report("trivy-image.json")+`}`))
	_, rec := f.do(http.MethodGet, "/v1/decisions/"+d["decision_id"].(string), "", "")
	found := false
	for _, item := range rec["context"].(map[string]any)["scan"].(map[string]any)["findings"].([]any) {
		if fd := item.(map[string]any); fd["id"] == "CVE-2025-24813" {
			found = fd["epss"].(map[string]any)["score"] == 0.94
		}
	}
	if !found {
		t.Fatal("CVE-2025-24813 does not carry the EPSS just imported")
	}

	// A bad file is a 4xx naming the problem, and changes nothing.
	for _, tc := range []struct {
		contentType, body string
		status            int
		want              string
	}{
		{"application/json", epssCSV, http.StatusUnsupportedMediaType, "text/csv"},
		{"text/csv", "cve,epss,percentile\nCVE-2025-1,0.5,0.5\n", http.StatusBadRequest, "line 1"},
		{"text/csv", strings.Replace(epssCSV, "0.94", "1.94", 1), http.StatusBadRequest, "line 3"},
	} {
		code, e := f.do(http.MethodPost, "/v1/epss", tc.contentType, tc.body)
		if code != tc.status || !strings.Contains(errorMessage(e), tc.want) {
			t.Errorf("%s %.40q: %d %v, want %d naming %q", tc.contentType, tc.body, code, e, tc.status, tc.want)
		}
	}
	if _, d := f.do(http.MethodGet, "/v1/epss", "", ""); d["count"] != 2.0 {
		t.Fatalf("a bad import changed the set: %v", d)
	}
}
