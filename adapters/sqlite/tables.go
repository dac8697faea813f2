package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// The tokens, scans, baselines and bundles calls are storekit.Tables', run
// through this dialect: reads on the readers' pool, writes in a transaction
// on the writer connection, as decisions' (BEGIN IMMEDIATE: what a write
// reads, no other writer changes before it commits). Decisions wait for
// them in this process, as they wait for each other's group commit. Token
// writes may also come from another process (`tollgate token create`
// beside a running server): SQLite's own file lock orders them, and no
// cooldown depends on them.
func (s *Store) dialect() storekit.Dialect {
	write := func(ctx context.Context, what string, fn func(context.Context, storekit.Querier) error) error {
		err := s.onWriter(ctx, func(tx *sql.Tx) error { return fn(ctx, querier{tx}) })
		return s.storeError(ctx, what, err)
	}
	return storekit.Dialect{
		Read: func(ctx context.Context, what string, fn func(context.Context, storekit.Querier) error) error {
			if s.isClosed() {
				return s.errClosed()
			}
			return s.storeError(ctx, what, fn(ctx, querier{s.db}))
		},
		Write:    write,
		WriteOne: write,
		Unique: func(err error, _, columns string) bool {
			var sqliteErr *sqlite.Error
			return errors.As(err, &sqliteErr) && sqliteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE &&
				containsColumns(sqliteErr.Error(), columns)
		},
	}
}

// storeError is nil for nil, a *tollgate.Error as it is, and any other
// failure as readError says.
func (s *Store) storeError(ctx context.Context, what string, err error) error {
	var tErr *tollgate.Error
	if err == nil || errors.As(err, &tErr) {
		return err
	}
	return s.readError(ctx, what, err)
}

// containsColumns reports whether msg, SQLite's "UNIQUE constraint failed:
// tokens.name", names exactly columns.
func containsColumns(msg, columns string) bool {
	_, after, ok := strings.Cut(msg, "UNIQUE constraint failed: ")
	return ok && strings.HasPrefix(after, columns) && (len(after) == len(columns) || after[len(columns)] == ' ')
}

// querier runs storekit's SQL on the readers' pool or a transaction.
type querier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (q querier) Exec(ctx context.Context, query string, args ...any) error {
	_, err := q.q.ExecContext(ctx, query, args...)
	return err
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) storekit.Row {
	return row{q.q.QueryRowContext(ctx, query, args...)}
}

func (q querier) Query(ctx context.Context, query string, args ...any) (storekit.ResultRows, error) {
	r, err := q.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

type row struct{ *sql.Row }

func (r row) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return storekit.ErrNoRows
	}
	return err
}

type rows struct{ *sql.Rows }

func (r rows) Close() { r.Rows.Close() }
