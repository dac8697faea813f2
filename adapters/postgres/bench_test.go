package postgres

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// BenchmarkDecideParallel records decisions from many goroutines at once, as
// a busy server does, against the test PostgreSQL (fsync on). Compare
// decisions/s:
//
//		go test -run '^$' -bench DecideParallel ./adapters/postgres/
//
//	  - nil-key: decisions without a cooldown key, through the group-commit
//	    writer (group-commit) or each in a transaction of its own, concurrently
//	    (tx-per-decision).
//	  - distinct-keys: every decision with a key of its own, each in its own
//	    transaction with its advisory lock (the same in both modes).
//	  - same-key: every decision for one key: they queue on its lock.
func BenchmarkDecideParallel(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{
		{"group-commit", nil},
		{"tx-per-decision", []Option{WithGroupCommit(false)}},
	} {
		for _, keys := range []string{"nil-key", "distinct-keys", "same-key"} {
			if mode.name != "group-commit" && keys != "nil-key" {
				continue // keyed decisions do not go through the writer
			}
			name := mode.name + "/" + keys
			if keys != "nil-key" {
				name = keys
			}
			b.Run(name, func(b *testing.B) {
				benchDecide(b, keys, false, mode.opts...)
			})
		}
	}
}

// BenchmarkKeyLock measures what the advisory lock adds to a keyed Decide:
// the same decisions, distinct keys, with and without the lock, one at a
// time (latency) and from many goroutines (throughput); and, isolated from
// the commit's disk write, the lock statement itself against a statement
// that does nothing, in a read-only transaction of one round trip.
func BenchmarkKeyLock(b *testing.B) {
	for _, stmt := range []struct{ name, sql string }{
		{"statement-only/lock", lockKey},
		{"statement-only/no-lock", "SELECT $1::bigint"},
	} {
		b.Run(stmt.name, func(b *testing.B) {
			s := openClosing(b, pgtest.Shared(b).NewDatabase(b))
			conn, err := s.pool.Acquire(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Release()
			b.ResetTimer()
			for i := range b.N {
				batch := &pgx.Batch{}
				batch.Queue("BEGIN")
				batch.Queue(stmt.sql, lockID(*newKey(strconv.Itoa(i))))
				batch.Queue("COMMIT")
				if err := execBatch(context.Background(), conn.Conn(), batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, lock := range []bool{true, false} {
		name := "with-lock"
		if !lock {
			name = "without-lock"
		}
		b.Run(name+"/serial", func(b *testing.B) {
			s := openClosing(b, pgtest.Shared(b).NewDatabase(b))
			s.skipKeyLock = !lock
			b.ResetTimer()
			for i := range b.N {
				key := newKey("release/" + strconv.Itoa(i))
				if _, err := s.Decide(context.Background(), key, fixed(record(tollgate.Accepted, time.Now()))); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			benchDecide(b, "distinct-keys", !lock)
		})
	}
}

// benchDecide measures concurrent Decides: keys says which keys they use,
// skipLock leaves the advisory lock out.
func benchDecide(b *testing.B, keys string, skipLock bool, opts ...Option) {
	s := mustOpen(b, pgtest.Shared(b).NewDatabase(b), opts...)
	defer s.Close()
	s.skipKeyLock = skipLock
	var next atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS concurrent requests
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var key *tollgate.CooldownKey
			switch keys {
			case "distinct-keys":
				key = newKey("release/" + strconv.FormatInt(next.Add(1), 10))
			case "same-key":
				key = newKey("main")
			}
			if _, err := s.Decide(context.Background(), key, fixed(record(tollgate.Accepted, time.Now()))); err != nil {
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
}

// BenchmarkTables measures the token, scan, bundle and EPSS calls
// (storetest.BenchmarkTables) against the test PostgreSQL:
//
//	go test -run '^$' -bench Tables ./adapters/postgres/
func BenchmarkTables(b *testing.B) {
	s := openClosing(b, pgtest.Shared(b).NewDatabase(b))
	storetest.BenchmarkTables(b, s)
}
