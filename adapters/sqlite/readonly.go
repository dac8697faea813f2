package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"modernc.org/sqlite"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/migrations"
)

// ReadOnly is a store opened read-only, for the commands that only read
// (`tollgate ledger verify`, `ledger export`, `replay`): the
// file is opened with SQLite's mode=ro and query_only, nothing is created,
// migrated or chained, and PruneLedger is refused.
type ReadOnly struct {
	s *Store // only its readers: no writer connection, no statements
}

var (
	_ tollgate.LedgerStore = (*ReadOnly)(nil)
	_ tollgate.BundleStore = (*ReadOnly)(nil)
)

// OpenReadOnly opens the store in dataDir read-only. A directory without a
// store is an ENotFound error; a store whose schema is not the one this
// tollgate writes, EInvalid.
func OpenReadOnly(ctx context.Context, dataDir string) (*ReadOnly, error) {
	path, err := filepath.Abs(filepath.Join(dataDir, FileName))
	if err != nil {
		return nil, fmt.Errorf("sqlite: data directory %s: %w", dataDir, err)
	}
	if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
		return nil, tollgate.Errorf(tollgate.ENotFound,
			"sqlite: no tollgate store in %s (no %s there): give the --data-dir that tollgate serve uses", dataDir, FileName)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "query_only(1)")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	connector, err := sqlite.NewConnector(u.String())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	if err := migrations.Check(ctx, db, migrations.SQLite); err != nil {
		db.Close()
		return nil, tollgate.Errorf(tollgate.EInvalid, "sqlite: %s: %v", path, err)
	}
	return &ReadOnly{s: &Store{path: path, db: db}}, nil
}

// Decision is the store's Decision: one record by decision ID.
func (l *ReadOnly) Decision(ctx context.Context, id string) (tollgate.Record, error) {
	return l.s.Decision(ctx, id)
}

// Decisions is the store's Decisions: the history, newest first.
func (l *ReadOnly) Decisions(ctx context.Context, f tollgate.DecisionFilter) (tollgate.DecisionPage, error) {
	return l.s.Decisions(ctx, f)
}

// Tokens is the store's Tokens: the API tokens, never their secrets.
func (l *ReadOnly) Tokens(ctx context.Context, withRevoked bool) ([]tollgate.Token, error) {
	return l.s.Tokens(ctx, withRevoked)
}

// Bundle implements tollgate.BundleStore.
func (l *ReadOnly) Bundle(ctx context.Context, revision string) (tollgate.StoredBundle, error) {
	return l.s.Bundle(ctx, revision)
}

// PutBundle implements tollgate.BundleStore: refused, the store is
// read-only.
func (l *ReadOnly) PutBundle(context.Context, tollgate.StoredBundle) error {
	return tollgate.Errorf(tollgate.EInvalid, "sqlite: %s is open read-only: no bundle can be kept", l.s.path)
}

// LedgerHead implements tollgate.LedgerStore.
func (l *ReadOnly) LedgerHead(ctx context.Context) (tollgate.LedgerHead, error) {
	return l.s.LedgerHead(ctx)
}

// LedgerEntries implements tollgate.LedgerStore.
func (l *ReadOnly) LedgerEntries(ctx context.Context, from, through int64, fn func(tollgate.LedgerEntry) error) error {
	return l.s.LedgerEntries(ctx, from, through, fn)
}

// LedgerSeqSince implements tollgate.LedgerStore.
func (l *ReadOnly) LedgerSeqSince(ctx context.Context, t time.Time) (int64, bool, error) {
	return l.s.LedgerSeqSince(ctx, t)
}

// LedgerCooldowns implements tollgate.LedgerStore.
func (l *ReadOnly) LedgerCooldowns(ctx context.Context, fn func(tollgate.StoredCooldown) error) (int64, error) {
	return l.s.LedgerCooldowns(ctx, fn)
}

// LedgerBaselines implements tollgate.LedgerStore.
func (l *ReadOnly) LedgerBaselines(ctx context.Context, fn func(tollgate.StoredBaseline) error) (int64, error) {
	return l.s.LedgerBaselines(ctx, fn)
}

// PruneLedger implements tollgate.LedgerStore: refused, the store is
// read-only.
func (l *ReadOnly) PruneLedger(context.Context, int64, []byte) (int64, error) {
	return 0, tollgate.Errorf(tollgate.EInvalid, "sqlite: %s is open read-only: nothing can be pruned", l.s.path)
}

// Close releases the file.
func (l *ReadOnly) Close() error {
	l.s.mu.Lock()
	closed := l.s.closed
	l.s.closed = true
	l.s.mu.Unlock()
	if closed {
		return nil
	}
	return l.s.db.Close()
}
