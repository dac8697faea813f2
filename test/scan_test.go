package test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
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

// TestStoredScansDriftAndEPSS: CI posts scans ahead (POST /v1/scans) and
// evaluates them by scan_id; an accepted release becomes the baseline, so
// the next one with new findings is refused with risk_drift naming them,
// also after a restart. EPSS scores imported through the API reach the
// findings of the record.
func TestStoredScansDriftAndEPSS(t *testing.T) {
	t.Parallel()
	bundle := newBundle(t)
	projects := readProjects(t, bundle)
	projects["scanned"] = map[string]any{
		"repositories": []string{"org/scanned"},
		"pipelines":    map[string]any{"deploy": map[string]any{"type": "deploy"}},
		"risk":         map[string]any{"block_new_findings": true, "require_scan": true},
	}
	writeJSON(t, projectsPath(bundle), projects)
	dataDir := t.TempDir()
	s := startServer(t, serverOptions{bundle: bundle, dataDir: dataDir})

	csv := "#model_version:v2025.03.14,score_date:2026-11-22T00:00:00Z\ncve,epss,percentile\nCVE-2025-24813,0.94,0.999\n"
	code, raw := s.do(t, http.MethodPost, "/v1/epss", "text/csv", []byte(csv))
	if code != http.StatusOK || !strings.Contains(string(raw), `"count":1`) {
		t.Fatalf("POST /v1/epss: %d %s", code, raw)
	}

	const digest = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	postScan := func(file string) string {
		t.Helper()
		report := readFile(t, filepath.Join(repoRoot, "adapters", "scans", "testdata", file))
		code, raw := s.postJSON(t, "/v1/scans", map[string]any{"project": "scanned", "artifact": digest,
			"scan": map[string]any{"format": "trivy", "report": json.RawMessage(report)}})
		if code != http.StatusCreated {
			t.Fatalf("POST /v1/scans %s: %d %s", file, code, raw)
		}
		return decode[struct {
			ID string `json:"scan_id"`
		}](t, raw).ID
	}
	evaluate := func(scanID string) decision {
		t.Helper()
		code, raw := s.postJSON(t, "/v1/evaluate", map[string]any{
			"repository": "org/scanned", "branch": "main", "pipeline": "deploy",
			"metadata": map[string]any{"initiator": "ci", "run_id": "7", "environment": "production"},
			"scan_id":  scanID,
		})
		if code != http.StatusOK {
			t.Fatalf("evaluate scan %s: %d %s", scanID, code, raw)
		}
		return decode[decision](t, raw)
	}

	first := evaluate(postScan("trivy-empty.json"))
	if first.Status != "accepted" {
		t.Fatalf("the first, clean release: %+v", first)
	}
	image := postScan("trivy-image.json")
	d := evaluate(image)
	// Two drift reasons: new findings, and a release risk above the baseline's.
	if d.Status != "refused" || !slices.Equal(d.codes(), []string{"risk_drift", "risk_drift"}) ||
		!strings.Contains(d.Reasons[0].Message, "CVE-2025-24813") || !strings.Contains(d.Reasons[0].Message, first.ID) {
		t.Fatalf("want risk_drift naming CVE-2025-24813 and decision %s, got %+v", first.ID, d)
	}
	if _, rec := s.get(t, "/v1/decisions/"+d.ID); !strings.Contains(string(rec), `"epss":{"cve":"CVE-2025-24813","score":0.94`) {
		t.Errorf("the record's findings lack the imported EPSS: %s", rec)
	}

	// The baseline and the stored scans are in the store, not in memory.
	s.stop(t)
	s = startServer(t, serverOptions{bundle: bundle, dataDir: dataDir})
	if d := evaluate(image); d.Status != "refused" || d.Reasons[0].Code != "risk_drift" {
		t.Fatalf("after a restart: %+v", d)
	}
	// The CI client sends a stored scan's ID, or the report itself.
	check := []string{"check", "--server", s.cliBase(t), "--repository", "org/scanned", "--branch", "main",
		"--pipeline", "deploy", "--environment", "production"}
	if code, stdout, stderr := runTollgate(t, nil, nil, append(check, "--scan-id", image)...); code != 1 || !strings.Contains(stdout, "risk_drift") {
		t.Errorf("check --scan-id: exit %d, stdout %q, stderr %q; want 1 and risk_drift", code, stdout, stderr)
	}
	empty := filepath.Join(repoRoot, "adapters", "scans", "testdata", "trivy-empty.json")
	if code, stdout, stderr := runTollgate(t, nil, nil, append(check, "--scan", empty, "--scan-format", "trivy")...); code != 0 {
		t.Errorf("check --scan of a clean report: exit %d, stdout %q, stderr %q; want 0", code, stdout, stderr)
	}
	if code, _, stderr := runTollgate(t, nil, nil, append(check, "--scan-id", "nope")...); code != 2 || !strings.Contains(stderr, `no scan "nope" is stored`) {
		t.Errorf("check --scan-id nope: exit %d, stderr %q; want 2 naming the scan", code, stderr)
	}

	// Without a scan, the project that requires one is refused.
	if d := s.evaluate(t, req("org/scanned", "main", "deploy", "production")); d.Status != "refused" || d.codes()[0] != "scan_missing" {
		t.Fatalf("no scan: %+v", d)
	}
}
