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

// dialect is how storekit.Core runs on SQLite: reads on the readers'
// pool, writes in a transaction on the writer connection, as the group
// commit's (BEGIN IMMEDIATE: what a write reads, no other writer changes
// before it commits; decisions wait for it in this process, as they wait
// for each other's group commit). Writes may also come from another
// process (`tollgate token create` beside a running server): SQLite's own
// file lock orders them, and the next group commit sees them (PRAGMA
// data_version) and reads the cooldowns again (writer.go).
func (s *Store) dialect() storekit.Dialect {
	write := func(ctx context.Context, fn func(context.Context, storekit.Querier) error) error {
		return s.onWriter(ctx, func(tx *sql.Tx) error { return fn(ctx, querier{tx}) })
	}
	return storekit.Dialect{
		Where: s.path,
		Read: func(ctx context.Context, fn func(context.Context, storekit.Querier) error) error {
			return fn(ctx, querier{s.db})
		},
		Write:    write,
		WriteOne: write,
		Unique: func(err error, _, columns string) bool {
			var sqliteErr *sqlite.Error
			return errors.As(err, &sqliteErr) && sqliteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE &&
				containsColumns(sqliteErr.Error(), columns)
		},
		Refused: func(err error) (string, string, bool) {
			var sqliteErr *sqlite.Error
			if errors.As(err, &sqliteErr) && sqliteErr.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
				return tollgate.EInternal, " (is the ID already recorded?)", true
			}
			return "", "", false
		},
		Explain:      func(error) string { return "" },
		SetHead:      `UPDATE ledger SET seq = ?1, hash = ?3 WHERE id = 1`,
		EPSSList:     `SELECT value FROM json_each(?)`,
		ReadCooldown: s.readCooldown,
		Commit:       s.commit,
	}
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

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
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
