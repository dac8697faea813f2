package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/migrations"
)

// OpenReadOnly connects to the database at url read-only, for the commands
// that only read: no migration runs, nothing is chained, and every session
// starts with default_transaction_read_only on, so that the server itself
// refuses any write. A database without
// tollgate's schema, or with another version of it, is an EInvalid error:
// nothing is created there.
func OpenReadOnly(ctx context.Context, url string) (*storekit.ReadOnly, error) {
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
	s := &Store{pool: pool, where: where, timeout: o.statementTimeout} // only its pool: no writer
	s.Core = storekit.NewCore(s.dialect(), storekit.Batching{})
	return storekit.NewReadOnly(s, "postgres: "+where, func() error { pool.Close(); return nil }), nil
}
