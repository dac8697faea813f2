package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// ImportEPSS implements tollgate.EPSSStore: it deletes every score and
// inserts set's in one transaction on the writer connection, with one
// prepared statement (FIRST's 300,000 scores take a second or two).
// Decisions wait for it in this process, as they wait for each other's
// group commit.
func (s *Store) ImportEPSS(ctx context.Context, set tollgate.EPSSSet) error {
	scores, err := storekit.CheckEPSS(set)
	if err != nil {
		return err
	}
	return s.Run(ctx, "import EPSS", func() error {
		return s.onWriter(ctx, func(tx *sql.Tx) error { return importEPSS(ctx, tx, set, scores) })
	})
}

func importEPSS(ctx context.Context, tx *sql.Tx, set tollgate.EPSSSet, scores []tollgate.EPSSScore) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM epss`); err != nil {
		return err
	}
	insert, err := tx.PrepareContext(ctx, `INSERT INTO epss (cve, epss, percentile) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer insert.Close()
	for i, sc := range scores {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if _, err := insert.ExecContext(ctx, sc.CVE, sc.EPSS, sc.Percentile); err != nil {
			return err
		}
	}
	query, args := storekit.EPSSImportInfo(set, len(scores))
	_, err = tx.ExecContext(ctx, query, args...)
	return err
}

// epssChunk bounds the parameters of one lookup query.
const epssChunk = 500

// EPSS implements tollgate.EPSSStore. It reads in one read transaction, so
// that the scores and the info are of the same import.
func (s *Store) EPSS(ctx context.Context, cves []string) (scores map[string]tollgate.EPSSScore, info tollgate.EPSSInfo, err error) {
	err = s.Run(ctx, "read EPSS", func() (err error) {
		scores, info, err = s.readEPSS(ctx, storekit.EPSSQuery(cves))
		return err
	})
	return scores, info, err
}

func (s *Store) readEPSS(ctx context.Context, cves []string) (map[string]tollgate.EPSSScore, tollgate.EPSSInfo, error) {
	// ReadOnly: a deferred BEGIN, not the DSN's BEGIN IMMEDIATE, which would
	// take the write lock.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, tollgate.EPSSInfo{}, err
	}
	defer tx.Rollback()
	var (
		info      tollgate.EPSSInfo
		scoreDate int64
	)
	err = tx.QueryRowContext(ctx, `SELECT model_version, score_date, count FROM epss_import WHERE id = 1`).
		Scan(&info.ModelVersion, &scoreDate, &info.Count)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return map[string]tollgate.EPSSScore{}, tollgate.EPSSInfo{}, nil
	case err != nil:
		return nil, tollgate.EPSSInfo{}, err
	}
	info.ScoreDate = time.Unix(0, scoreDate).UTC()
	scores := make(map[string]tollgate.EPSSScore, len(cves))
	for start := 0; start < len(cves); start += epssChunk {
		chunk := cves[start:min(start+epssChunk, len(cves))]
		args := make([]any, len(chunk))
		for i, c := range chunk {
			args[i] = c
		}
		rows, err := tx.QueryContext(ctx, `SELECT cve, epss, percentile FROM epss WHERE cve IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, tollgate.EPSSInfo{}, err
		}
		for rows.Next() {
			var sc tollgate.EPSSScore
			if err := rows.Scan(&sc.CVE, &sc.EPSS, &sc.Percentile); err != nil {
				rows.Close()
				return nil, tollgate.EPSSInfo{}, err
			}
			scores[sc.CVE] = sc
		}
		if err := rows.Close(); err != nil {
			return nil, tollgate.EPSSInfo{}, err
		}
		if err := rows.Err(); err != nil {
			return nil, tollgate.EPSSInfo{}, err
		}
	}
	return scores, info, nil
}
