package sqlite

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// epssSet is a set of n made-up scores.
func epssSet(n int) tollgate.EPSSSet {
	set := tollgate.EPSSSet{ModelVersion: "v2025.03.14", ScoreDate: time.Date(2025, 3, 30, 12, 55, 0, 0, time.UTC),
		Scores: make([]tollgate.EPSSScore, n)}
	for i := range n {
		set.Scores[i] = tollgate.EPSSScore{CVE: fmt.Sprintf("CVE-%d-%d", 1999+i%27, 10000+i), EPSS: float64(i%1000) / 1000, Percentile: float64(i) / float64(n)}
	}
	return set
}

// BenchmarkImportEPSS imports as many scores as FIRST's daily file holds
// (about 300,000).
func BenchmarkImportEPSS(b *testing.B) {
	s := openClosing(b, b.TempDir())
	set := epssSet(300_000)
	for b.Loop() {
		if err := s.ImportEPSS(b.Context(), set); err != nil {
			b.Fatal(err)
		}
	}
}

// TestImportEPSSWhileDeciding imports scores while decisions are being
// recorded: the decisions wait for the import, they do not fail.
func TestImportEPSSWhileDeciding(t *testing.T) {
	s := openClosing(t, t.TempDir())
	const n = 20_000
	set := epssSet(n)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			rec := record(tollgate.Refused, time.Now())
			rec.Decision.ID = fmt.Sprintf("during-import-%d", i)
			_, err := s.Decide(t.Context(), nil, fixed(rec))
			errs <- err
		})
	}
	start := time.Now()
	if err := s.ImportEPSS(t.Context(), set); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Decide during the import: %v", err)
		}
	}
	t.Logf("imported %d scores in %s", n, took)
	scores, info, err := s.EPSS(t.Context(), []string{set.Scores[12345].CVE})
	if err != nil || info.Count != n || scores[set.Scores[12345].CVE] != set.Scores[12345] {
		t.Fatalf("after import: %v %+v %v", scores, info, err)
	}
}
