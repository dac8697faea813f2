package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// The tokens, scans, baselines and bundles calls are storekit.Tables', run
// through this dialect: every call under the statement timeout (plus
// grace), writes counted by enter so that Close waits for them, a write of
// several statements in one transaction of the pool, a write of one
// statement on the pool. Unique indexes, not locks, order concurrent
// writes of any process: a token name taken meanwhile is EConflict.
func (s *Store) dialect() storekit.Dialect {
	// run maps fn's failure: a *tollgate.Error as it is, any other as
	// dbError says.
	run := func(ctx context.Context, what string, fn func() error) error {
		err := fn()
		var tErr *tollgate.Error
		if err == nil || errors.As(err, &tErr) {
			return err
		}
		return s.dbError(ctx, what, err)
	}
	return storekit.Dialect{
		Read: func(ctx context.Context, what string, fn func(context.Context, storekit.Querier) error) error {
			if s.isClosed() {
				return s.errClosed()
			}
			opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
			defer cancel()
			return run(ctx, what, func() error { return fn(opCtx, querier{s.pool}) })
		},
		Write: func(ctx context.Context, what string, fn func(context.Context, storekit.Querier) error) error {
			return run(ctx, what, func() error {
				return s.inTx(ctx, func(opCtx context.Context, tx pgx.Tx) error { return fn(opCtx, querier{tx}) })
			})
		},
		WriteOne: func(ctx context.Context, what string, fn func(context.Context, storekit.Querier) error) error {
			return run(ctx, what, func() error {
				return s.inFlight(ctx, func(opCtx context.Context) error { return fn(opCtx, querier{s.pool}) })
			})
		},
		Unique: func(err error, index, _ string) bool {
			var pgErr *pgconn.PgError
			return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == index
		},
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

func (q querier) Exec(ctx context.Context, query string, args ...any) error {
	_, err := q.q.Exec(ctx, storekit.Rebind(query), args...)
	return err
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
