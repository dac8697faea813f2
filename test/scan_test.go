package test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestScanRefusesWithTheNamedCVEs posts a real-shaped Trivy report with an
// evaluation, to a server whose bundle gates the project on CVSS: the
// refusal names the worst CVEs, and a broken report is a 400 naming the
// problem, never recorded.
func TestScanRefusesWithTheNamedCVEs(t *testing.T) {
	t.Parallel()
	bundle := newBundle(t)
	projects := readProjects(t, bundle)
	projects["scanned"] = map[string]any{
		"repositories": []string{"org/scanned"},
		"pipelines":    map[string]any{"deploy": map[string]any{"type": "deploy"}},
		"risk":         map[string]any{"max_cvss": 7.0, "max_unknowns": 10},
	}
	writeJSON(t, projectsPath(bundle), projects)
	s := startServer(t, serverOptions{bundle: bundle})

	report := readFile(t, filepath.Join(repoRoot, "adapters", "scans", "testdata", "trivy-image.json"))
	body := func(report json.RawMessage) []byte {
		return mustJSON(t, map[string]any{
			"repository": "org/scanned", "branch": "main", "pipeline": "deploy",
			"metadata": map[string]any{"initiator": "ci", "run_id": "7", "environment": "production"},
			"scan":     map[string]any{"format": "trivy", "report": report},
		})
	}
	code, raw := s.do(t, http.MethodPost, "/v1/evaluate", "application/json", body(report))
	if code != http.StatusOK {
		t.Fatalf("evaluate with a Trivy report: %d %s", code, raw)
	}
	d := decode[decision](t, raw)
	if d.Status != "refused" || len(d.Reasons) != 1 || d.Reasons[0].Code != "risk_threshold_exceeded" {
		t.Fatalf("want refused with risk_threshold_exceeded, got %+v", d)
	}
	for _, cve := range []string{"CVE-2025-24813", "CVE-2023-45853"} {
		if !strings.Contains(d.Reasons[0].Message, cve) {
			t.Errorf("the refusal does not name %s: %s", cve, d.Reasons[0].Message)
		}
	}

	code, raw = s.do(t, http.MethodPost, "/v1/evaluate", "application/json", body(json.RawMessage(`{"Results": 3}`)))
	requireError(t, code, raw, http.StatusBadRequest, "invalid_input", "trivy report")
	if got := len(s.allDecisions(t, "")); got != 1 {
		t.Fatalf("%d decisions recorded, want 1 (the bad report must not be)", got)
	}
}
