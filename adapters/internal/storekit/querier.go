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
// (Rebind). What differs stays in each store, behind Dialect: how a read
// and a write run (SQLite: its read pool, and its single writer
// connection, BEGIN IMMEDIATE; PostgreSQL: the pool under its statement
// timeout, counted by enter/leave), how a failure becomes the store's
// error, and how a unique index violation is told. The decision write path
// (Decide, the group commit, the ledger) and bulk paths (the EPSS COPY)
// stay in each store, in their own dialect, where batching matters.
//
// A new table is added once: its migration in migrations/sqlite and
// migrations/postgres (one file each, the same tables, columns and
// indexes), and its queries and row mapping here, on Querier through
// Dialect; a store adds only what its dialect does differently.

// Querier runs SQL written with `?` placeholders.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) error
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

// Dialect is what a store gives the shared code: where a read and a write
// run, and how it tells a unique index violation.
type Dialect struct {
	// Read runs fn outside any write: on SQLite's read pool, on
	// PostgreSQL's pool under the statement timeout. A *tollgate.Error
	// from fn is returned as it is; any other failure as the store says
	// (what names the operation), after the store's closed check.
	Read func(ctx context.Context, what string, fn func(context.Context, Querier) error) error
	// Write runs fn in one write transaction, committed if fn returns
	// nil: on SQLite's writer connection (BEGIN IMMEDIATE, so that what fn
	// reads no other writer changes before it commits), on PostgreSQL in a
	// transaction of the pool. Errors as for Read.
	Write func(ctx context.Context, what string, fn func(context.Context, Querier) error) error
	// WriteOne is Write for an fn that runs one statement, atomic by
	// itself: PostgreSQL runs it on the pool, sparing the round trips of
	// BEGIN and COMMIT; SQLite, as Write.
	WriteOne func(ctx context.Context, what string, fn func(context.Context, Querier) error) error
	// Unique reports whether err violates one unique index: PostgreSQL
	// names it (index), SQLite names its columns ("tokens.name").
	Unique func(err error, index, columns string) bool
}

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
