package sqlite

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// BenchmarkDecideParallel is storetest's on a file; WithMaxBatch(1) is
// one transaction, one fsync, per decision (`go test -run '^$' -bench
// DecideParallel ./adapters/sqlite/`, compare decisions/s).
func BenchmarkDecideParallel(b *testing.B) {
	storetest.BenchmarkDecideParallel(b, func(b *testing.B, groupCommit bool) tollgate.DecisionStore {
		maxBatch := 1
		if groupCommit {
			maxBatch = defaultMaxBatch
		}
		return openClosing(b, b.TempDir(), WithMaxBatch(maxBatch))
	}, "nil-key", "distinct-keys", "same-key-refused")
}

// BenchmarkLedgerVerify is `tollgate ledger verify` on a store of 5,000
// decisions, half accepted under cooldown keys of their own: "verify" is
// the whole check (chain, served columns, cooldowns and baselines),
// "chain-only" the walk and hashes alone, what verify did before it
// checked the columns and the derived state. Compare ns/op:
//
//	go test -run '^$' -bench LedgerVerify ./adapters/sqlite/
func BenchmarkLedgerVerify(b *testing.B) {
	const n = 5000
	s := mustOpen(b, b.TempDir())
	defer s.Close()
	for i := range n {
		status, key := tollgate.Refused, (*tollgate.CooldownKey)(nil)
		if i%2 == 0 {
			status = tollgate.Accepted
			key = &tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: "release/" + strconv.Itoa(i)}
		}
		if _, err := s.Decide(context.Background(), key, fixed(record(status, time.Now()))); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if sum, brk, err := ledger.Verify(context.Background(), s, nil); err != nil || brk != nil || sum.Records != n {
				b.Fatal(sum, brk, err)
			}
		}
	})
	b.Run("chain-only", func(b *testing.B) {
		for b.Loop() {
			if err := s.LedgerEntries(context.Background(), 1, n, func(e tollgate.LedgerEntry) error {
				_, err := ledger.Digest(e.Record)
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTables measures the cooldown, token, scan, bundle and EPSS
// calls (storetest.BenchmarkTables):
//
//	go test -run '^$' -bench Tables ./adapters/sqlite/
func BenchmarkTables(b *testing.B) {
	s := mustOpen(b, b.TempDir())
	defer s.Close()
	storetest.BenchmarkTables(b, s)
}

// BenchmarkClaimNothingDue: storetest's, on a file.
func BenchmarkClaimNothingDue(b *testing.B) {
	storetest.BenchmarkClaimNothingDue(b, func(b *testing.B) tollgate.JobStore { return openClosing(b, b.TempDir()) })
}

// BenchmarkDecideFanningOut is storetest's, with group commit: compare
// with BenchmarkDecideParallel/group-commit/same-key-refused.
func BenchmarkDecideFanningOut(b *testing.B) {
	storetest.BenchmarkDecideFanningOut(b, openClosing(b, b.TempDir(), WithMaxBatch(defaultMaxBatch)))
}
