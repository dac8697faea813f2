package sqlite

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// BenchmarkDecideParallel records decisions from many goroutines at once, as
// a busy server does, with group commit and with one transaction (one fsync)
// per decision, for decisions without a cooldown key (nil-key), each with a
// key of its own (distinct-keys) and all on one key and refused, as a busy
// key in cooldown is (same-key-refused). Compare decisions/s:
//
//	go test -run '^$' -bench DecideParallel ./adapters/sqlite/
func BenchmarkDecideParallel(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{
		{"group-commit", nil},
		{"tx-per-write", []Option{WithMaxBatch(1)}},
	} {
		for _, keys := range []string{"nil-key", "distinct-keys", "same-key-refused"} {
			b.Run(mode.name+"/"+keys, func(b *testing.B) {
				s := mustOpen(b, b.TempDir(), mode.opts...)
				defer s.Close()
				var next atomic.Int64
				b.SetParallelism(16) // 16 × GOMAXPROCS concurrent requests
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						var key *tollgate.CooldownKey
						status := tollgate.Accepted
						switch keys {
						case "distinct-keys":
							key = &tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod",
								Branch: "release/" + strconv.FormatInt(next.Add(1), 10)}
						case "same-key-refused":
							key = &tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: "main"}
							status = tollgate.Refused
						}
						if _, err := s.Decide(context.Background(), key, fixed(record(status, time.Now()))); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
				if st := s.Stats(); st.Commits > 0 {
					b.ReportMetric(float64(st.Written)/float64(st.Commits), "decisions/commit")
				}
			})
		}
	}
}

// BenchmarkReadCooldown reads the cooldown of a key, as every keyed
// decision does before it is evaluated.
func BenchmarkReadCooldown(b *testing.B) {
	s := mustOpen(b, b.TempDir())
	defer s.Close()
	key := tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: "main"}
	if _, err := s.Decide(context.Background(), &key, fixed(record(tollgate.Accepted, time.Now()))); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Cooldown(context.Background(), key); err != nil {
			b.Fatal(err)
		}
	}
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

// BenchmarkTables measures the token, scan, bundle and EPSS calls
// (storetest.BenchmarkTables):
//
//	go test -run '^$' -bench Tables ./adapters/sqlite/
func BenchmarkTables(b *testing.B) {
	s := mustOpen(b, b.TempDir())
	defer s.Close()
	storetest.BenchmarkTables(b, s)
}
