package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/migrations"
)

// ReadOnly is a store opened read-only, for the commands that only read
// (`tollgate ledger verify`, `ledger export`, `replay`): no
// migration runs, nothing is chained, and every session starts with
// default_transaction_read_only on, so that the server itself refuses any
// write. PruneLedger is refused.
type ReadOnly struct {
	s *Store // only its pool: no writer
}

var (
	_ tollgate.LedgerStore = (*ReadOnly)(nil)
	_ tollgate.BundleStore = (*ReadOnly)(nil)
)

// OpenReadOnly connects to the database at url read-only. A database without
// tollgate's schema, or with another version of it, is an EInvalid error:
// nothing is created there.
func OpenReadOnly(ctx context.Context, url string) (*ReadOnly, error) {
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
	return &ReadOnly{s: &Store{pool: pool, where: where, timeout: o.statementTimeout}}, nil
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
	return tollgate.Errorf(tollgate.EInvalid, "postgres: %s is open read-only: no bundle can be kept", l.s.where)
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
	return 0, tollgate.Errorf(tollgate.EInvalid, "postgres: %s is open read-only: nothing can be pruned", l.s.where)
}

// Close releases the connections.
func (l *ReadOnly) Close() error {
	l.s.mu.Lock()
	closed := l.s.closed
	l.s.closed = true
	l.s.mu.Unlock()
	if !closed {
		l.s.pool.Close()
	}
	return nil
}
