package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

// registerStoreMetrics exports the group commit's counters of store to
// registry if it keeps them (the embedded store): their ratio is the mean
// number of decisions a transaction commits, what --commit-linger grows.
func registerStoreMetrics(registry *prometheus.Registry, store tollgate.DecisionStore) {
	s, ok := store.(interface{ Stats() sqlite.Stats })
	if !ok {
		return
	}
	registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_store_commits_total",
			Help: "Transactions the embedded store's group commit has committed.",
		}, func() float64 { return float64(s.Stats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_store_decisions_committed_total",
			Help: "Decisions the embedded store's group commit has committed; per tollgate_store_commits_total, the mean batch.",
		}, func() float64 { return float64(s.Stats().Written) }),
	)
}
