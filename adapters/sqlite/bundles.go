package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

var _ tollgate.BundleStore = (*Store)(nil)

// PutBundle implements tollgate.BundleStore. A revision is a content hash,
// so a revision kept already is left as it is.
func (s *Store) PutBundle(ctx context.Context, b tollgate.StoredBundle) error {
	args, err := storekit.BundleArgs(b)
	if err != nil {
		return err
	}
	return s.writeTx(ctx, "keep bundle", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO bundles (revision, files, stored_at) VALUES (?, ?, ?)
			ON CONFLICT (revision) DO NOTHING`, args...)
		return err
	})
}

// Bundle implements tollgate.BundleStore.
func (s *Store) Bundle(ctx context.Context, revision string) (tollgate.StoredBundle, error) {
	if s.isClosed() {
		return tollgate.StoredBundle{}, s.errClosed()
	}
	var row storekit.BundleRow
	err := s.db.QueryRowContext(ctx, `SELECT revision, files, stored_at FROM bundles WHERE revision = ?`, revision).Scan(row.Dest()...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return tollgate.StoredBundle{}, tollgate.Errorf(tollgate.ENotFound, "bundle revision %q is not in the store", revision)
	case err != nil:
		return tollgate.StoredBundle{}, s.readError(ctx, "read bundle", err)
	}
	return row.Bundle()
}
