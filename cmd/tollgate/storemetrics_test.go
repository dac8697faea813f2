package main

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/sqlite"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// The embedded store's group commit is counted: transactions and the
// decisions they committed.
func TestStoreMetrics(t *testing.T) {
	s, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	registry := prometheus.NewRegistry()
	registerStoreMetrics(registry, s)
	for range 3 {
		if _, err := s.Decide(t.Context(), nil, storetest.Fixed(storetest.Record(tollgate.Refused, time.Now()))); err != nil {
			t.Fatal(err)
		}
	}
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		got[f.GetName()] = f.GetMetric()[0].GetCounter().GetValue()
	}
	// One at a time: three transactions of one.
	if got["tollgate_store_commits_total"] != 3 || got["tollgate_store_decisions_committed_total"] != 3 {
		t.Errorf("metrics %v, want 3 commits of 3 decisions", got)
	}
	if n := testutil.CollectAndCount(registry); n != 2 {
		t.Errorf("%d metrics, want 2", n)
	}
}
