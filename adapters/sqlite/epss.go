package sqlite

import (
	"context"
	"database/sql"

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
