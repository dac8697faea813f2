package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate/tollgate"
)

// scans returns the store under test as a tollgate.ScanStore: every store
// must be one.
func (h *harness) scans() tollgate.ScanStore {
	h.t.Helper()
	s, ok := h.store.(tollgate.ScanStore)
	if !ok {
		h.t.Fatalf("%T does not implement tollgate.ScanStore", h.store)
	}
	return s
}

func storedScan(project, artifact string) tollgate.StoredScan {
	return tollgate.StoredScan{
		ID:        uuid.Must(uuid.NewV7()).String(),
		Project:   project,
		Artifact:  artifact,
		ScannedAt: base,
		Request: &tollgate.Request{Repository: "org/" + project, Branch: "main", Pipeline: "build",
			Metadata: tollgate.Metadata{Initiator: "ci", RunID: "42", Environment: "production"}},
		Scan: tollgate.Scan{Format: tollgate.FormatTrivy, Scanner: "trivy 0.58.1", Unidentified: 2,
			Findings: []tollgate.Finding{{ID: "CVE-2021-44228", Aliases: []string{"GHSA-jfh8-c2jp-5v3q"},
				Package: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", FixedVersion: "2.15.0",
				Severity: tollgate.SeverityCritical, VEXStatus: tollgate.VEXAffected,
				CVSS: []tollgate.CVSSVector{{Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Source: "nvd"}}}}},
	}
}

// assertJSON compares two values by their JSON: the same instant in the
// same offset is the same time, wherever its *time.Location points.
func assertJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s differs\ngot:  %s\nwant: %s", what, g, w)
	}
}

func testScanRoundTrip(t *testing.T, h *harness) {
	s := h.scans()
	want := storedScan("service-api", "sha256:"+hex64('a'))
	if err := s.PutScan(t.Context(), want); err != nil {
		t.Fatalf("PutScan: %v", err)
	}
	got, err := s.Scan(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	assertJSON(t, "stored scan", got, want)
	if !got.ScannedAt.Equal(base) {
		t.Fatalf("scanned_at = %s, want %s to the nanosecond", got.ScannedAt, base)
	}

	_, err = s.Scan(t.Context(), "no-such-scan")
	assertCode(t, "Scan(unknown)", err, tollgate.ENotFound)

	// An ID is stored once: a second scan under it is refused, the first kept.
	again := storedScan("other", "sha256:"+hex64('b'))
	again.ID = want.ID
	if err := s.PutScan(t.Context(), again); err == nil {
		t.Fatal("PutScan with an ID already stored: no error")
	}
	got, err = s.Scan(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Scan after the refused duplicate: %v", err)
	}
	assertJSON(t, "scan after the refused duplicate", got, want)

	h.reopen()
	got, err = h.scans().Scan(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Scan after reopen: %v", err)
	}
	assertJSON(t, "scan after reopen", got, want)
}

func testScanInvalid(t *testing.T, h *harness) {
	for name, mutate := range map[string]func(*tollgate.StoredScan){
		"no ID":       func(s *tollgate.StoredScan) { s.ID = "" },
		"no project":  func(s *tollgate.StoredScan) { s.Project = "" },
		"no artifact": func(s *tollgate.StoredScan) { s.Artifact = "" },
		"no time":     func(s *tollgate.StoredScan) { s.ScannedAt = time.Time{} },
	} {
		sc := storedScan("service-api", "sha256:"+hex64('c'))
		mutate(&sc)
		err := h.scans().PutScan(t.Context(), sc)
		assertCode(t, "PutScan("+name+")", err, tollgate.EInternal)
	}
}

// release is a scored scan with one finding per id.
func release(at time.Time, ids ...string) *tollgate.Release {
	r := &tollgate.Release{ScannedAt: at, Format: tollgate.FormatTrivy, EPSSModel: "v2025.03.14",
		EPSSDate: epssDay, Findings: []tollgate.ScoredFinding{}}
	for _, id := range ids {
		r.Findings = append(r.Findings, tollgate.ScoredFinding{
			Finding: tollgate.Finding{ID: id, Package: "pkg", Severity: tollgate.SeverityHigh},
			Score:   &tollgate.ScoreReceipt{Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Version: "3.1", Score: 9.8, Source: "nvd"},
			EPSS:    &tollgate.EPSSScore{CVE: id, EPSS: 0.5, Percentile: 0.9},
		})
	}
	return r
}

func baseline(t *testing.T, s tollgate.ScanStore, project, env string) *tollgate.Baseline {
	t.Helper()
	b, err := s.Baseline(t.Context(), project, env)
	if err != nil {
		t.Fatalf("Baseline(%s, %s): %v", project, env, err)
	}
	return b
}

func assertBaseline(t *testing.T, s tollgate.ScanStore, project, env string, want tollgate.Record) {
	t.Helper()
	got := baseline(t, s, project, env)
	if got == nil {
		t.Fatalf("Baseline(%s, %s) = nil, want decision %s's scan", project, env, want.Decision.ID)
	}
	assertJSON(t, "baseline", got, tollgate.Baseline{DecisionID: want.Decision.ID, Release: *want.Context.Scan})
}

func testBaseline(t *testing.T, h *harness) {
	s := h.scans()
	if b := baseline(t, s, "service-api", "production"); b != nil {
		t.Fatalf("Baseline before any decision = %+v, want nil", b)
	}

	withScan := func(sp spec, ids ...string) tollgate.Record {
		rec := sp.record()
		rec.Context.Scan = release(sp.at, ids...)
		return rec
	}
	first := withScan(spec{at: base}, "CVE-1")
	put(t, h.store, first)
	assertBaseline(t, s, "service-api", "production", first)

	// What does not move it: a refusal, an accepted decision without a scan,
	// an unmanaged request, an accepted decision made earlier (a clock that
	// went back).
	put(t, h.store, withScan(spec{at: base.Add(time.Minute), status: tollgate.Refused}, "CVE-2"))
	put(t, h.store, spec{at: base.Add(2 * time.Minute)}.record())
	unmanaged := withScan(spec{at: base.Add(3 * time.Minute)}, "CVE-3")
	unmanaged.Decision.Project = ""
	put(t, h.store, unmanaged)
	put(t, h.store, withScan(spec{at: base.Add(-time.Hour)}, "CVE-4"))
	assertBaseline(t, s, "service-api", "production", first)

	// Another project, another environment: baselines of their own.
	if b := baseline(t, s, "service-api", "staging"); b != nil {
		t.Fatalf("Baseline of staging = %+v, want nil", b)
	}
	other := withScan(spec{project: "billing", at: base.Add(time.Minute)}, "CVE-5")
	put(t, h.store, other)
	assertBaseline(t, s, "billing", "production", other)
	assertBaseline(t, s, "service-api", "production", first)

	// A later accepted decision with a scan replaces it, also one with a
	// cooldown key, and the baseline outlives a reopen.
	later := withScan(spec{at: base.Add(time.Hour)}, "CVE-1", "CVE-6")
	if _, err := h.store.Decide(t.Context(), keyOf(spec{}), fixed(later)); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	assertBaseline(t, s, "service-api", "production", later)
	h.reopen()
	assertBaseline(t, h.scans(), "service-api", "production", later)
}

// hex64 is a 64-character hex string of c.
func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
