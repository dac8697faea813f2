package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

var _ tollgate.ScanStore = (*Store)(nil)

// PutScan implements tollgate.ScanStore.
func (s *Store) PutScan(ctx context.Context, scan tollgate.StoredScan) error {
	data, err := storekit.EncodeScan(scan)
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
	if _, err := s.pool.Exec(opCtx, `INSERT INTO scans (id, project, artifact, scanned_at, scan) VALUES ($1, $2, $3, $4, $5)`,
		scan.ID, scan.Project, scan.Artifact, scan.ScannedAt.UnixNano(), data); err != nil {
		return s.dbError(ctx, "store scan "+scan.ID, err)
	}
	return nil
}

// Scan implements tollgate.ScanStore.
func (s *Store) Scan(ctx context.Context, id string) (tollgate.StoredScan, error) {
	if s.isClosed() {
		return tollgate.StoredScan{}, s.errClosed()
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	var data []byte
	err := s.pool.QueryRow(opCtx, `SELECT scan FROM scans WHERE id = $1`, id).Scan(&data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tollgate.StoredScan{}, storekit.ScanNotFound(id)
	case err != nil:
		return tollgate.StoredScan{}, s.dbError(ctx, "read scan "+id, err)
	}
	return storekit.DecodeScan(id, data)
}

// Baseline implements tollgate.ScanStore.
func (s *Store) Baseline(ctx context.Context, project, environment string) (*tollgate.Baseline, error) {
	if s.isClosed() {
		return nil, s.errClosed()
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	var data []byte
	err := s.pool.QueryRow(opCtx, `SELECT baseline FROM baselines WHERE project = $1 AND environment = $2`,
		project, environment).Scan(&data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, s.dbError(ctx, "read the baseline of "+project, err)
	}
	return storekit.DecodeBaseline(project, environment, data)
}
