package storekit

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// The bridge between the two stores. The SQL that is the same in both
// dialects but for its placeholders is written once, here, with `?`
// placeholders, and runs on a Querier: the SQLite store implements it on
// database/sql, the PostgreSQL store on pgx, rebinding `?` to `$n`
// (Rebind). What differs stays in each store, behind Dialect (core.go):
// where a read and a write run (SQLite: its read pool, and its single
// writer connection, BEGIN IMMEDIATE; PostgreSQL: the pool under its
// statement timeout), the few words of SQL that differ (FOR UPDATE,
// advisory locks), how a failure is told, and the decision write path's
// statements (the cooldown read, the group commit's transaction), where
// batching matters, as does the EPSS bulk load.
//
// A new table is added once: its migration in migrations/sqlite and
// migrations/postgres (one file each, the same tables, columns and
// indexes: migrations' parity test compares them), and its queries and
// row mapping here, on Querier, as methods of Core.

// Querier runs SQL written with `?` placeholders.
type Querier interface {
	// Exec returns how many rows the statement changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// QueryRow's Scan returns ErrNoRows when there is no row.
	QueryRow(ctx context.Context, query string, args ...any) Row
	Query(ctx context.Context, query string, args ...any) (ResultRows, error)
}

// Row is the one row of Querier.QueryRow.
type Row interface {
	Scan(dest ...any) error
}

// ResultRows are the rows of Querier.Query. Close may be called more than
// once.
type ResultRows interface {
	Rows
	Close()
}

// ErrNoRows is what Row.Scan returns when the query returned no row, in
// both dialects (sql.ErrNoRows and pgx.ErrNoRows are mapped to it).
var ErrNoRows = errors.New("storekit: no rows in result set")

// Rebind returns query with its `?` placeholders numbered `$1`, `$2`...
// for PostgreSQL. A `?` inside a quoted string ('…'), a quoted name
// ("…") or a comment (-- to the end of the line) is left as it is, and
// `??` stands for one literal `?` (PostgreSQL's jsonb operator).
func Rebind(query string) string {
	if !strings.ContainsRune(query, '?') {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(query[i+1:], c)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+1])
			i += end
		case c == '?' && strings.HasPrefix(query[i:], "??"):
			b.WriteByte('?')
			i++
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
