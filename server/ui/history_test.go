package ui

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// seeded is a UI on a real SQLite store holding n decisions, one a minute
// up to testNow, oldest first; those whose index refused says are refused
// with the cooldown code.
func seeded(t *testing.T, n int, refused func(i int) bool) (*UI, []string) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ids := make([]string, n)
	for i := range n {
		d := tollgate.Decision{
			ID: uuid.Must(uuid.NewV7()).String(), Status: tollgate.Accepted, Reasons: []tollgate.Reason{}, Warnings: []tollgate.Reason{},
			Project: "p", Pipeline: "deploy", Branch: "main", Environment: "production", BundleRevision: "sha256:test",
			EvaluatedAt: testNow.Add(time.Duration(i-n) * time.Minute),
		}
		if refused(i) {
			d.Status, d.Reasons = tollgate.Refused, []tollgate.Reason{{Code: tollgate.CodeCooldown, Message: "wait"}}
		}
		rec := tollgate.Record{Decision: d, Request: tollgate.Request{Repository: "org/p", Branch: "main", Pipeline: "deploy",
			Metadata: tollgate.Metadata{Environment: "production"}}, Context: tollgate.Context{Now: d.EvaluatedAt}, Identity: "test"}
		if _, err := store.Decide(ctx, nil, func(tollgate.Cooldown) (tollgate.Record, error) { return rec, nil }); err != nil {
			t.Fatal(err)
		}
		ids[i] = d.ID
	}
	return New(Config{Store: store, Now: func() time.Time { return testNow }, MaxScan: 10, ChartLimit: 10}), ids
}

// TestReasonFilterStopsAtMaxScan: a page looks through MaxScan decisions at
// most, says so, and the next one carries on where it stopped.
func TestReasonFilterStopsAtMaxScan(t *testing.T) {
	u, ids := seeded(t, 25, func(i int) bool { return i == 2 || i == 20 })
	f := tollgate.DecisionFilter{Limit: tollgate.DefaultPageSize}
	var found []string
	for page := 1; ; page++ {
		records, next, partial, err := u.find(context.Background(), f, tollgate.CodeCooldown)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range records {
			found = append(found, r.Decision.ID)
		}
		// 25 decisions, 10 a page: pages 1 and 2 stop at the bound.
		if wantPartial := page < 3; partial != wantPartial || (next == "") != !wantPartial {
			t.Fatalf("page %d: partial %v next %q", page, partial, next)
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if len(found) != 2 || found[0] != ids[20] || found[1] != ids[2] {
		t.Fatalf("found %v, want %s and %s", found, ids[20], ids[2])
	}
}

// TestChartCountsAtMostChartLimit: the chart counts the newest ChartLimit
// decisions and says when there are more.
func TestChartCountsAtMostChartLimit(t *testing.T) {
	for _, tc := range []struct {
		n         int
		truncated bool
	}{{9, false}, {10, false}, {11, true}, {25, true}} {
		u, _ := seeded(t, tc.n, func(i int) bool { return i%2 == 0 })
		st, err := u.stats(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		counted := min(tc.n, 10)
		if st.Truncated != tc.truncated || st.Accepted+st.Refused != counted {
			t.Errorf("%d decisions: truncated %v, %d accepted + %d refused; want %v and %d", tc.n, st.Truncated, st.Accepted, st.Refused, tc.truncated, counted)
		}
		if day := st.Days[ChartDays-1]; day.Date != time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) || day.Accepted+day.Refused != counted {
			t.Errorf("%d decisions: last day %+v", tc.n, day)
		}
		if len(st.Top) != 1 || st.Top[0].Code != tollgate.CodeCooldown || st.Top[0].Count != st.Refused {
			t.Errorf("%d decisions: top reasons %+v", tc.n, st.Top)
		}
	}
}
