package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/migrations"
)

// Ledger is a store opened read-only, for `tollgate ledger verify`: no
// migration runs, nothing is chained, and every session starts with
// default_transaction_read_only on, so that the server itself refuses any
// write. PruneLedger is refused.
type Ledger struct {
	s *Store // only its pool: no writer
}

var _ tollgate.LedgerStore = (*Ledger)(nil)

// OpenLedger connects to the database at url read-only. A database without
// tollgate's schema, or with another version of it, is an EInvalid error:
// nothing is created there.
func OpenLedger(ctx context.Context, url string) (*Ledger, error) {
	o := defaults()
	cfg, err := poolConfig(url, o)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	where := describe(cfg.ConnConfig)
	db := stdlib.OpenDB(*cfg.ConnConfig.Copy())
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return nil, tollgate.Errorf(tollgate.EUnavailable, "postgres: %s: %v", where, err)
	}
	if err := migrations.Check(ctx, db, migrations.Postgres); err != nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "postgres: %s: %v", where, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EUnavailable, "postgres: %s: %v", where, err)
	}
	return &Ledger{s: &Store{pool: pool, where: where, timeout: o.statementTimeout}}, nil
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
	return 0, tollgate.Errorf(tollgate.EInvalid, "postgres: %s is open read-only: nothing can be pruned", l.s.where)
}

// Close releases the connections.
func (l *Ledger) Close() error {
	l.s.mu.Lock()
	closed := l.s.closed
	l.s.closed = true
	l.s.mu.Unlock()
	if !closed {
		l.s.pool.Close()
	}
	return nil
}
