package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

var _ tollgate.ScanStore = (*Store)(nil)

// PutScan implements tollgate.ScanStore, on the writer connection: decisions
// wait for it in this process, as they wait for each other's group commit.
func (s *Store) PutScan(ctx context.Context, scan tollgate.StoredScan) error {
	data, err := storekit.EncodeScan(scan)
	if err != nil {
		return err
	}
	err = s.onWriter(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO scans (id, project, artifact, scanned_at, scan) VALUES (?, ?, ?, ?, ?)`,
			scan.ID, scan.Project, scan.Artifact, scan.ScannedAt.UnixNano(), string(data))
		return err
	})
	if err != nil {
		return s.readError(ctx, "store scan "+scan.ID, err)
	}
	return nil
}

// Scan implements tollgate.ScanStore.
func (s *Store) Scan(ctx context.Context, id string) (tollgate.StoredScan, error) {
	if s.isClosed() {
		return tollgate.StoredScan{}, s.errClosed()
	}
	var data []byte
	err := s.db.QueryRowContext(ctx, `SELECT scan FROM scans WHERE id = ?`, id).Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return tollgate.StoredScan{}, storekit.ScanNotFound(id)
	case err != nil:
		return tollgate.StoredScan{}, s.readError(ctx, "read scan "+id, err)
	}
	return storekit.DecodeScan(id, data)
}

// Baseline implements tollgate.ScanStore.
func (s *Store) Baseline(ctx context.Context, project, environment string) (*tollgate.Baseline, error) {
	if s.isClosed() {
		return nil, s.errClosed()
	}
	var data []byte
	err := s.db.QueryRowContext(ctx, `SELECT baseline FROM baselines WHERE project = ? AND environment = ?`,
		project, environment).Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, s.readError(ctx, "read the baseline of "+project, err)
	}
	return storekit.DecodeBaseline(project, environment, data)
}
