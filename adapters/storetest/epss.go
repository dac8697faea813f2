package storetest

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// epss returns the store under test as a tollgate.EPSSStore: every store
// must be one.
func (h *harness) epss() tollgate.EPSSStore {
	h.t.Helper()
	s, ok := h.store.(tollgate.EPSSStore)
	if !ok {
		h.t.Fatalf("%T does not implement tollgate.EPSSStore", h.store)
	}
	return s
}

var epssDay = time.Date(2026, 3, 1, 12, 55, 0, 0, time.UTC)

func importEPSS(t *testing.T, s tollgate.EPSSStore, set tollgate.EPSSSet) {
	t.Helper()
	if err := s.ImportEPSS(t.Context(), set); err != nil {
		t.Fatalf("ImportEPSS: %v", err)
	}
}

func lookupEPSS(t *testing.T, s tollgate.EPSSStore, cves ...string) (map[string]tollgate.EPSSScore, tollgate.EPSSInfo) {
	t.Helper()
	scores, info, err := s.EPSS(t.Context(), cves)
	if err != nil {
		t.Fatalf("EPSS(%v): %v", cves, err)
	}
	return scores, info
}

func assertInfo(t *testing.T, got, want tollgate.EPSSInfo) {
	t.Helper()
	if got.ModelVersion != want.ModelVersion || !got.ScoreDate.Equal(want.ScoreDate) || got.Count != want.Count {
		t.Fatalf("EPSS info = %+v, want %+v", got, want)
	}
	if !got.ScoreDate.IsZero() && got.ScoreDate.Location() != time.UTC {
		t.Fatalf("EPSS info score date %s is not in UTC", got.ScoreDate)
	}
}

func assertScores(t *testing.T, got, want map[string]tollgate.EPSSScore) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("EPSS scores = %v, want %v", got, want)
	}
}

func testEPSSNothingImported(t *testing.T, h *harness) {
	scores, info := lookupEPSS(t, h.epss(), "CVE-2021-44228")
	assertScores(t, scores, map[string]tollgate.EPSSScore{})
	assertInfo(t, info, tollgate.EPSSInfo{})
}

var (
	log4shell = tollgate.EPSSScore{CVE: "CVE-2021-44228", EPSS: 0.94358, Percentile: 0.99957}
	cve0001   = tollgate.EPSSScore{CVE: "CVE-1999-0001", EPSS: 0.01269, Percentile: 0.78654}
	cve0002   = tollgate.EPSSScore{CVE: "CVE-1999-0002", EPSS: 0, Percentile: 0}
	cve0003   = tollgate.EPSSScore{CVE: "CVE-1999-0003", EPSS: 1, Percentile: 1}
)

func testEPSSImportAndLookup(t *testing.T, h *harness) {
	s := h.epss()
	importEPSS(t, s, tollgate.EPSSSet{ModelVersion: "v2025.03.14", ScoreDate: epssDay,
		Scores: []tollgate.EPSSScore{log4shell, cve0001, cve0002, cve0003}})

	// Present, absent, repeated, lower case: the map holds what is stored,
	// by upper-case id.
	scores, info := lookupEPSS(t, s, "CVE-2021-44228", "CVE-2000-9999", "cve-1999-0002", "CVE-2021-44228")
	assertScores(t, scores, map[string]tollgate.EPSSScore{log4shell.CVE: log4shell, cve0002.CVE: cve0002})
	assertInfo(t, info, tollgate.EPSSInfo{ModelVersion: "v2025.03.14", ScoreDate: epssDay, Count: 4})

	// No CVE asked: no scores, but the info all the same.
	scores, info = lookupEPSS(t, s)
	assertScores(t, scores, map[string]tollgate.EPSSScore{})
	assertInfo(t, info, tollgate.EPSSInfo{ModelVersion: "v2025.03.14", ScoreDate: epssDay, Count: 4})
}

func testEPSSReplace(t *testing.T, h *harness) {
	s := h.epss()
	importEPSS(t, s, tollgate.EPSSSet{ModelVersion: "v1", ScoreDate: epssDay,
		Scores: []tollgate.EPSSScore{log4shell, cve0001}})
	newer := cve0001
	newer.EPSS, newer.Percentile = 0.5, 0.6
	// Lower case in the set is stored upper case.
	lower := cve0003
	lower.CVE = "cve-1999-0003"
	next := epssDay.Add(24 * time.Hour).In(time.FixedZone("CET", 3600))
	importEPSS(t, s, tollgate.EPSSSet{ModelVersion: "v2", ScoreDate: next,
		Scores: []tollgate.EPSSScore{newer, lower}})

	scores, info := lookupEPSS(t, s, log4shell.CVE, cve0001.CVE, cve0003.CVE)
	assertScores(t, scores, map[string]tollgate.EPSSScore{cve0001.CVE: newer, cve0003.CVE: cve0003})
	assertInfo(t, info, tollgate.EPSSInfo{ModelVersion: "v2", ScoreDate: next, Count: 2})
}

func testEPSSEmptySet(t *testing.T, h *harness) {
	s := h.epss()
	importEPSS(t, s, tollgate.EPSSSet{ModelVersion: "v1", ScoreDate: epssDay, Scores: []tollgate.EPSSScore{log4shell}})
	importEPSS(t, s, tollgate.EPSSSet{ModelVersion: "v2", ScoreDate: epssDay, Scores: nil})
	scores, info := lookupEPSS(t, s, log4shell.CVE)
	assertScores(t, scores, map[string]tollgate.EPSSScore{})
	assertInfo(t, info, tollgate.EPSSInfo{ModelVersion: "v2", ScoreDate: epssDay, Count: 0})
}

func testEPSSInvalid(t *testing.T, h *harness) {
	s := h.epss()
	first := tollgate.EPSSSet{ModelVersion: "v1", ScoreDate: epssDay, Scores: []tollgate.EPSSScore{log4shell}}
	importEPSS(t, s, first)
	for name, set := range map[string]tollgate.EPSSSet{
		"duplicate":     {ScoreDate: epssDay, Scores: []tollgate.EPSSScore{cve0001, cve0001}},
		"out of range":  {ScoreDate: epssDay, Scores: []tollgate.EPSSScore{{CVE: "CVE-1999-0001", EPSS: 1.5}}},
		"not a CVE":     {ScoreDate: epssDay, Scores: []tollgate.EPSSScore{{CVE: "GHSA-xxxx"}}},
		"no score date": {Scores: []tollgate.EPSSScore{cve0001}},
	} {
		assertCode(t, "ImportEPSS("+name+")", s.ImportEPSS(t.Context(), set), tollgate.EInvalid)
	}
	scores, info := lookupEPSS(t, s, log4shell.CVE, cve0001.CVE)
	assertScores(t, scores, map[string]tollgate.EPSSScore{log4shell.CVE: log4shell})
	assertInfo(t, info, tollgate.EPSSInfo{ModelVersion: "v1", ScoreDate: epssDay, Count: 1})
}

func testEPSSDurable(t *testing.T, h *harness) {
	importEPSS(t, h.epss(), tollgate.EPSSSet{ModelVersion: "v1", ScoreDate: epssDay, Scores: []tollgate.EPSSScore{log4shell}})
	h.reopen()
	scores, info := lookupEPSS(t, h.epss(), log4shell.CVE)
	assertScores(t, scores, map[string]tollgate.EPSSScore{log4shell.CVE: log4shell})
	assertInfo(t, info, tollgate.EPSSInfo{ModelVersion: "v1", ScoreDate: epssDay, Count: 1})
}

// testEPSSMany imports a few thousand scores and looks up more CVEs than
// one query's parameters may hold.
func testEPSSMany(t *testing.T, h *harness) {
	s := h.epss()
	const n = 5000
	set := tollgate.EPSSSet{ModelVersion: "v1", ScoreDate: epssDay, Scores: make([]tollgate.EPSSScore, n)}
	for i := range n {
		set.Scores[i] = tollgate.EPSSScore{CVE: fmt.Sprintf("CVE-2024-%05d", i), EPSS: float64(i) / n, Percentile: float64(n-i) / n}
	}
	importEPSS(t, s, set)
	var ask []string
	want := map[string]tollgate.EPSSScore{}
	for i := 0; i < 2*n; i += 3 {
		cve := fmt.Sprintf("CVE-2024-%05d", i)
		ask = append(ask, cve)
		if i < n {
			want[cve] = set.Scores[i]
		}
	}
	scores, info := lookupEPSS(t, s, ask...)
	assertScores(t, scores, want)
	assertInfo(t, info, tollgate.EPSSInfo{ModelVersion: "v1", ScoreDate: epssDay, Count: n})
}
