package rego

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

type fixedPolicy struct{ p *Policy }

func (f fixedPolicy) Policy() *Policy { return f.p }

type noLicence struct{}

func (noLicence) Check(time.Time) tollgate.Licence { return tollgate.Licence{} }

// gateStore decides without recording, and counts the Decides.
type gateStore struct {
	tollgate.DecisionStore
	decides int
}

func (s *gateStore) Decide(_ context.Context, _ *tollgate.CooldownKey, decide func(tollgate.Cooldown) (tollgate.Record, error)) (tollgate.Record, error) {
	s.decides++
	return decide(tollgate.Cooldown{})
}

func (s *gateStore) Cooldown(context.Context, tollgate.CooldownKey) (tollgate.Cooldown, error) {
	return tollgate.Cooldown{}, nil
}

type fakeEPSS struct {
	scores map[string]tollgate.EPSSScore
	err    error
	asked  [][]string
}

func (f *fakeEPSS) ImportEPSS(context.Context, tollgate.EPSSSet) error { return errors.ErrUnsupported }

func (f *fakeEPSS) EPSS(_ context.Context, cves []string) (map[string]tollgate.EPSSScore, tollgate.EPSSInfo, error) {
	f.asked = append(f.asked, cves)
	if f.err != nil {
		return nil, tollgate.EPSSInfo{}, f.err
	}
	out := map[string]tollgate.EPSSScore{}
	for _, c := range cves {
		if sc, ok := f.scores[c]; ok {
			out[c] = sc
		}
	}
	return out, tollgate.EPSSInfo{ModelVersion: "v2025.03.14", ScoreDate: time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC), Count: len(f.scores)}, nil
}

func epssGate(t *testing.T, e tollgate.EPSSStore) (*Gate, *gateStore) {
	store := &gateStore{}
	return &Gate{
		Policies: fixedPolicy{mustPolicy(t, defaultBundle)},
		Store:    store,
		Licence:  noLicence{},
		Now:      func() time.Time { return time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) },
		NewID:    func() string { return "id" },
		Score:    func([]tollgate.CVSSVector) (tollgate.ScoreReceipt, bool) { return tollgate.ScoreReceipt{}, false },
		EPSS:     e,
	}, store
}

var epssScan = &tollgate.Scan{Findings: []tollgate.Finding{
	{ID: "CVE-2021-44228", Package: "log4j"},
	{ID: "GHSA-jfh8-c2jp-5v3q", Aliases: []string{"cve-2021-45046"}, Package: "log4j"},
	{ID: "GHSA-0000-0000-0000", Package: "nothing"},
	{ID: "CVE-2000-0001", Package: "unscored"},
}}

func TestGateAddsEPSSToFindings(t *testing.T) {
	log4shell := tollgate.EPSSScore{CVE: "CVE-2021-44228", EPSS: 0.94, Percentile: 0.99}
	alias := tollgate.EPSSScore{CVE: "CVE-2021-45046", EPSS: 0.5, Percentile: 0.7}
	e := &fakeEPSS{scores: map[string]tollgate.EPSSScore{log4shell.CVE: log4shell, alias.CVE: alias}}
	g, _ := epssGate(t, e)

	rec, err := g.Evaluate(t.Context(), tollgate.Request{}, ScanSource{Report: epssScan})
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"CVE-2021-44228", "CVE-2021-45046", "CVE-2000-0001"}}; !slices.EqualFunc(e.asked, want, slices.Equal) {
		t.Errorf("asked %v, want %v", e.asked, want)
	}
	if s := rec.Context.Scan; s.EPSSModel != "v2025.03.14" || !s.EPSSDate.Equal(time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("the record does not say which EPSS set it used: %q %v", s.EPSSModel, s.EPSSDate)
	}
	got := rec.Context.Scan.Findings
	for i, want := range []*tollgate.EPSSScore{&log4shell, &alias, nil, nil} {
		switch {
		case want == nil && got[i].EPSS != nil, want != nil && (got[i].EPSS == nil || *got[i].EPSS != *want):
			t.Errorf("finding %d: EPSS %v, want %v", i, got[i].EPSS, want)
		}
	}

	// The policy sees it as finding.epss.score and .percentile.
	input, err := Input(tollgate.Request{}, rec.Context)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(input)
	if !strings.Contains(string(raw), `"epss":{"percentile":0.99,"score":0.94}`) {
		t.Errorf("input has no epss object for the first finding:\n%s", raw)
	}

	if _, err := g.Simulate(t.Context(), Simulation{Scan: ScanSource{Report: epssScan}}); err != nil {
		t.Fatal(err)
	}
	if len(e.asked) != 2 {
		t.Errorf("Simulate did not look the scores up: %v", e.asked)
	}
}

func TestGateEPSSLookupErrorFailsTheEvaluation(t *testing.T) {
	e := &fakeEPSS{err: tollgate.Errorf(tollgate.EUnavailable, "store down")}
	g, store := epssGate(t, e)
	_, err := g.Evaluate(t.Context(), tollgate.Request{}, ScanSource{Report: epssScan})
	if tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Fatalf("Evaluate: error %v, want an %s error", err, tollgate.EUnavailable)
	}
	if store.decides != 0 {
		t.Errorf("a decision was made without the EPSS scores")
	}
	if _, err := g.Simulate(t.Context(), Simulation{Scan: ScanSource{Report: epssScan}}); tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Fatalf("Simulate: error %v, want an %s error", err, tollgate.EUnavailable)
	}
	// No scan, nothing to look up: the store is not asked.
	e.asked = nil
	if _, err := g.Evaluate(t.Context(), tollgate.Request{}, ScanSource{}); err != nil {
		t.Fatalf("Evaluate without a scan: %v", err)
	}
	if len(e.asked) != 0 {
		t.Errorf("looked up without a scan: %v", e.asked)
	}
}

// failingScans is a scan store that cannot be read.
type failingScans struct{}

func (failingScans) PutScan(context.Context, tollgate.StoredScan) error {
	return tollgate.Errorf(tollgate.EUnavailable, "store down")
}

func (failingScans) Scan(context.Context, string) (tollgate.StoredScan, error) {
	return tollgate.StoredScan{}, tollgate.Errorf(tollgate.EUnavailable, "store down")
}

func (failingScans) Baseline(context.Context, string, string) (*tollgate.Baseline, error) {
	return nil, tollgate.Errorf(tollgate.EUnavailable, "store down")
}

func TestGateScanStoreErrorsFailTheEvaluation(t *testing.T) {
	g, store := epssGate(t, nil)
	g.Scans = failingScans{}
	managed := tollgate.Request{Repository: "org/service-api", Branch: "main", Pipeline: "deploy-prod",
		Metadata: tollgate.Metadata{Environment: "production"}}
	for name, src := range map[string]ScanSource{
		"baseline":    {Report: epssScan},
		"stored scan": {ID: "some-id"},
	} {
		if _, err := g.Evaluate(t.Context(), managed, src); tollgate.ErrorCode(err) != tollgate.EUnavailable {
			t.Errorf("%s: Evaluate error %v, want an %s error", name, err, tollgate.EUnavailable)
		}
		if _, err := g.Simulate(t.Context(), Simulation{Request: managed, Scan: src}); tollgate.ErrorCode(err) != tollgate.EUnavailable {
			t.Errorf("%s: Simulate error %v, want an %s error", name, err, tollgate.EUnavailable)
		}
	}
	if store.decides != 0 {
		t.Errorf("%d decisions made without the baseline or the scan", store.decides)
	}
	// Without a scan there is nothing to compare: the store is not read.
	if _, err := g.Evaluate(t.Context(), managed, ScanSource{}); err != nil {
		t.Fatalf("Evaluate without a scan: %v", err)
	}
}
