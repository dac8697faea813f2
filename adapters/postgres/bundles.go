package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

var _ tollgate.BundleStore = (*Store)(nil)

// PutBundle implements tollgate.BundleStore. A revision is a content hash,
// so a revision kept already, by any process, is left as it is.
func (s *Store) PutBundle(ctx context.Context, b tollgate.StoredBundle) error {
	args, err := storekit.BundleArgs(b)
	if err != nil {
		return err
	}
	leave, err := s.enter()
	if err != nil {
		return err
	}
	defer leave()
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	if _, err := s.pool.Exec(opCtx, `INSERT INTO bundles (revision, files, stored_at) VALUES ($1, $2, $3)
		ON CONFLICT (revision) DO NOTHING`, args...); err != nil {
		return s.dbError(ctx, "keep bundle", err)
	}
	return nil
}

// Bundle implements tollgate.BundleStore.
func (s *Store) Bundle(ctx context.Context, revision string) (tollgate.StoredBundle, error) {
	if s.isClosed() {
		return tollgate.StoredBundle{}, s.errClosed()
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	var row storekit.BundleRow
	err := s.pool.QueryRow(opCtx, `SELECT revision, files, stored_at FROM bundles WHERE revision = $1`, revision).Scan(row.Dest()...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tollgate.StoredBundle{}, tollgate.Errorf(tollgate.ENotFound, "bundle revision %q is not in the store", revision)
	case err != nil:
		return tollgate.StoredBundle{}, s.dbError(ctx, "read bundle", err)
	}
	return row.Bundle()
}
