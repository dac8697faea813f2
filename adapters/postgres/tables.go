package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// dialect is how storekit.Core runs on PostgreSQL: every call under the
// statement timeout (plus grace), a write of several statements in one
// transaction of the pool, a write of one statement on the pool. Unique
// indexes and row locks (FOR UPDATE), not this process, order the writes
// of every replica: a token name taken meanwhile is EConflict.
func (s *Store) dialect() storekit.Dialect {
	onPool := func(ctx context.Context, fn func(context.Context, storekit.Querier) error) error {
		opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
		defer cancel()
		return fn(opCtx, querier{s.pool})
	}
	return storekit.Dialect{
		Where: s.where,
		Read:  onPool,
		Write: func(ctx context.Context, fn func(context.Context, storekit.Querier) error) error {
			opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
			defer cancel()
			return pgx.BeginFunc(opCtx, s.pool, func(tx pgx.Tx) error { return fn(opCtx, querier{tx}) })
		},
		WriteOne: onPool,
		Unique: func(err error, index, _ string) bool {
			var pgErr *pgconn.PgError
			return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == index
		},
		Refused:    refused,
		Explain:    s.explain,
		ForUpdate:  " FOR UPDATE",
		SkipLocked: " SKIP LOCKED",
		// The transaction-scoped advisory lock orders the incident
		// creations of all replicas: the second waits for the first to
		// commit. A cooldown key hashing to the same value would only make
		// one wait for the other.
		LockIncidents: `SELECT pg_advisory_xact_lock(x'746f6c6c67617465'::bigint)`, // "tollgate"
		LockJobs:      `SELECT pg_advisory_xact_lock(x'746f6c6c6a6f6273'::bigint)`, // "tolljobs"
		SetHead:       `UPDATE ledger SET seq = $1, prev_hash = $2, hash = $3 WHERE id = 1`,
		EPSSList:      `SELECT jsonb_array_elements_text(?::jsonb)`,
		ReadCooldown:  s.readCooldown,
		Commit:        s.commit,
		CAS:           true,
	}
}

// querier runs storekit's SQL, its `?` placeholders rebound to `$n`, on
// the pool or a transaction.
type querier struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, storekit.Rebind(query), args...)
	return tag.RowsAffected(), err
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) storekit.Row {
	return row{q.q.QueryRow(ctx, storekit.Rebind(query), args...)}
}

func (q querier) Query(ctx context.Context, query string, args ...any) (storekit.ResultRows, error) {
	return q.q.Query(ctx, storekit.Rebind(query), args...)
}

type row struct{ pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return storekit.ErrNoRows
	}
	return err
}
