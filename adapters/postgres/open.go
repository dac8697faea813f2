package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/migrations"
)

// Migrate brings the schema of the database at url up to date and returns
// the file names of the migrations it applied (none when it was current):
// `tollgate migrate`. Open does the same before it opens the store. When it
// applies the ledger's migration, it chains the decisions recorded before
// it, as Open would (see chainLegacy).
//
// Several processes may migrate one database at once (replicas starting
// together): a PostgreSQL advisory lock, held by migrations.Apply for the
// whole run, lets one migrate while the others wait, then find nothing to do.
func Migrate(ctx context.Context, url string) ([]string, error) {
	cfg, err := poolConfig(url, defaults())
	if err != nil {
		return nil, err
	}
	where := describe(cfg.ConnConfig)
	applied, err := migrate(ctx, cfg.ConnConfig, where)
	if err != nil || !slices.Contains(applied, migrations.LedgerMigration) {
		return applied, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	defer pool.Close()
	s := &Store{pool: pool, where: where, timeout: defaults().statementTimeout}
	s.Core = storekit.NewCore(s.dialect(), storekit.Batching{})
	if err := s.chainLegacy(ctx); err != nil {
		return nil, err
	}
	return applied, nil
}

// migrate applies the migrations through database/sql (goose's interface),
// on connections of their own. They run without the store's statement
// timeout: building an index on a large table may take longer than any
// request should; ctx bounds them instead.
func migrate(ctx context.Context, cc *pgx.ConnConfig, where string) ([]string, error) {
	mc := cc.Copy()
	mc.RuntimeParams["statement_timeout"] = "0"
	mc.RuntimeParams["idle_in_transaction_session_timeout"] = "0"
	db := stdlib.OpenDB(*mc)
	defer db.Close()
	db.SetMaxOpenConns(2) // the lock's session and the migrations'
	applied, err := migrations.Apply(ctx, db, migrations.Postgres)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("postgres: %s: migrate: %w", where, ctxErr)
		}
		if unreachable(err) {
			return nil, tollgate.Errorf(tollgate.EUnavailable, "postgres: %s: migrate: %v", where, err)
		}
		// The database answered, and refused a migration: waiting will
		// not change its mind.
		return nil, tollgate.Errorf(tollgate.EInternal, "postgres: %s: %v", where, err)
	}
	return applied, nil
}

// unreachable reports whether err means the database could not be reached
// or is not accepting work yet (starting up, shutting down, out of
// connections), rather than a refusal.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true // the network, a timeout: no answer from the server
	}
	for _, class := range []string{"08", "53", "57", "58"} {
		if strings.HasPrefix(pgErr.Code, class) {
			return true
		}
	}
	return false
}

// Backoff of OpenWithRetry: 100 ms, doubling, at most 5 s between attempts,
// each ±20% so that replicas restarted together do not retry in step.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
)

// OpenWithRetry opens the store as Open does, retrying with exponential
// backoff (100 ms doubling to 5 s, jittered) while the database cannot be
// reached, until ctx ends; each failure is logged to logger (nil: not
// logged). It gives up at once on an error that waiting will not fix: a
// malformed URL, a migration the database refuses.
//
// `serve` runs it in the background at start and answers /readyz with 503
// until it returns a store.
func OpenWithRetry(ctx context.Context, url string, logger *slog.Logger, opts ...Option) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	attempt := 0
	return backoff.Retry(ctx, func() (*Store, error) {
		attempt++
		s, err := Open(ctx, url, opts...)
		if err == nil {
			if attempt > 1 {
				logger.Info("decision store connected", "store", s.where, "attempts", attempt)
			}
			return s, nil
		}
		if tollgate.ErrorCode(err) != tollgate.EUnavailable {
			return nil, backoff.Permanent(err)
		}
		return nil, err
	},
		backoff.WithBackOff(&backoff.ExponentialBackOff{
			InitialInterval:     retryFirst,
			RandomizationFactor: 0.2,
			Multiplier:          2,
			MaxInterval:         retryMax,
		}),
		backoff.WithMaxElapsedTime(0), // until ctx ends
		backoff.WithNotify(func(err error, next time.Duration) {
			logger.Warn("decision store unreachable, retrying", "attempt", attempt, "retry_in", next.Round(time.Millisecond), "err", err)
		}),
	)
}
