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

// Ledger is a store opened read-only, for `tollgate ledger verify`: the
// file is opened with SQLite's mode=ro and query_only, nothing is created,
// migrated or chained, and PruneLedger is refused.
type Ledger struct {
	s *Store // only its readers: no writer connection, no statements
}

var _ tollgate.LedgerStore = (*Ledger)(nil)

// OpenLedger opens the store in dataDir read-only. A directory without a
// store is an ENotFound error; a store whose schema is not the one this
// tollgate writes, EInvalid.
func OpenLedger(ctx context.Context, dataDir string) (*Ledger, error) {
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
	return &Ledger{s: &Store{path: path, db: db}}, nil
}

// LedgerHead implements tollgate.LedgerStore.
func (l *Ledger) LedgerHead(ctx context.Context) (tollgate.LedgerHead, error) {
	return l.s.LedgerHead(ctx)
}

// LedgerEntries implements tollgate.LedgerStore.
func (l *Ledger) LedgerEntries(ctx context.Context, from, through int64, fn func(tollgate.LedgerEntry) error) error {
	return l.s.LedgerEntries(ctx, from, through, fn)
}

// LedgerSeqSince implements tollgate.LedgerStore.
func (l *Ledger) LedgerSeqSince(ctx context.Context, t time.Time) (int64, bool, error) {
	return l.s.LedgerSeqSince(ctx, t)
}

// LedgerCooldowns implements tollgate.LedgerStore.
func (l *Ledger) LedgerCooldowns(ctx context.Context, fn func(tollgate.StoredCooldown) error) (int64, error) {
	return l.s.LedgerCooldowns(ctx, fn)
}

// LedgerBaselines implements tollgate.LedgerStore.
func (l *Ledger) LedgerBaselines(ctx context.Context, fn func(tollgate.StoredBaseline) error) (int64, error) {
	return l.s.LedgerBaselines(ctx, fn)
}

// PruneLedger implements tollgate.LedgerStore: refused, the store is
// read-only.
func (l *Ledger) PruneLedger(context.Context, int64, []byte) (int64, error) {
	return 0, tollgate.Errorf(tollgate.EInvalid, "sqlite: %s is open read-only: nothing can be pruned", l.s.path)
}

// Close releases the file.
func (l *Ledger) Close() error {
	l.s.mu.Lock()
	closed := l.s.closed
	l.s.closed = true
	l.s.mu.Unlock()
	if closed {
		return nil
	}
	return l.s.db.Close()
}
