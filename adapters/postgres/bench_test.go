package postgres

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

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
			s := openClosing(b, pgtest.Shared(b).NewDatabase(b))
			s.skipKeyLock = !lock
			storetest.BenchmarkDecide(b, s, "distinct-keys")
		})
	}
}

// BenchmarkDecideParallel records decisions from many goroutines at once
// (storetest.BenchmarkDecideParallel), against the test PostgreSQL (fsync
// on): through the group-commit writer, and each in a transaction of its
// own (WithGroupCommit(false)). Compare decisions/s:
//
//	go test -run '^$' -bench DecideParallel ./adapters/postgres/
func BenchmarkDecideParallel(b *testing.B) {
	storetest.BenchmarkDecideParallel(b, func(b *testing.B, groupCommit bool) tollgate.DecisionStore {
		return openClosing(b, pgtest.Shared(b).NewDatabase(b), WithGroupCommit(groupCommit))
	}, "nil-key", "distinct-keys", "same-key")
}

// BenchmarkTables measures the cooldown, token, scan, bundle and EPSS calls
// (storetest.BenchmarkTables) against the test PostgreSQL:
//
//	go test -run '^$' -bench Tables ./adapters/postgres/
func BenchmarkTables(b *testing.B) {
	s := openClosing(b, pgtest.Shared(b).NewDatabase(b))
	storetest.BenchmarkTables(b, s)
}

// BenchmarkClaimNothingDue: storetest's, against the test PostgreSQL.
func BenchmarkClaimNothingDue(b *testing.B) {
	storetest.BenchmarkClaimNothingDue(b, func(b *testing.B) tollgate.JobStore {
		return openClosing(b, pgtest.Shared(b).NewDatabase(b))
	})
}
