package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/ledger"
)

var _ tollgate.LedgerStore = (*Store)(nil)

// readLedgerHead is the anchor, the head and the unchained records in one
// statement: one snapshot. Unchained are the rows without a seq and those
// whose seq lies outside the chain (at or before the anchor, after the
// head), which the walk from the anchor to the head never reads but the
// API serves. Three counts, each on the seq index.
const readLedgerHead = `SELECT l.seq, l.hash, a.seq, a.hash,
	(SELECT count(*) FROM decisions WHERE seq IS NULL) +
	(SELECT count(*) FROM decisions WHERE seq <= a.seq) +
	(SELECT count(*) FROM decisions WHERE seq > l.seq)
	FROM ledger l, ledger_anchor a WHERE l.id = 1 AND a.id = 1`

// LedgerHead implements tollgate.LedgerStore.
func (s *Store) LedgerHead(ctx context.Context) (tollgate.LedgerHead, error) {
	if s.isClosed() {
		return tollgate.LedgerHead{}, s.errClosed()
	}
	var h tollgate.LedgerHead
	err := s.db.QueryRowContext(ctx, readLedgerHead).Scan(&h.Seq, &h.Hash, &h.AnchorSeq, &h.AnchorHash, &h.Unchained)
	if err != nil {
		return tollgate.LedgerHead{}, s.readError(ctx, "read the ledger head", err)
	}
	return h, nil
}

// LedgerEntries implements tollgate.LedgerStore.
func (s *Store) LedgerEntries(ctx context.Context, from, through int64, fn func(tollgate.LedgerEntry) error) error {
	if s.isClosed() {
		return s.errClosed()
	}
	query := storekit.LedgerPageQuery(func(int) string { return "?" })
	return storekit.WalkLedger(from, through, func(after, through int64, limit int) ([]tollgate.LedgerEntry, error) {
		rows, err := s.db.QueryContext(ctx, query, after, through, limit)
		if err != nil {
			return nil, s.readError(ctx, "read the ledger", err)
		}
		defer rows.Close()
		var (
			page []tollgate.LedgerEntry
			row  storekit.LedgerRow
		)
		for rows.Next() {
			if err := rows.Scan(row.Dest()...); err != nil {
				return nil, s.readError(ctx, "read the ledger", err)
			}
			page = append(page, row.Entry())
		}
		if err := rows.Err(); err != nil {
			return nil, s.readError(ctx, "read the ledger", err)
		}
		return page, nil
	}, fn)
}

// LedgerSeqSince implements tollgate.LedgerStore.
func (s *Store) LedgerSeqSince(ctx context.Context, t time.Time) (int64, bool, error) {
	if s.isClosed() {
		return 0, false, s.errClosed()
	}
	var seq sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT min(seq) FROM decisions WHERE evaluated_at >= ?`, storekit.UnixNano(t)).Scan(&seq)
	if err != nil {
		return 0, false, s.readError(ctx, "read the ledger", err)
	}
	return seq.Int64, seq.Valid, nil
}

// PruneLedger implements tollgate.LedgerStore, one chunk of records per
// transaction, so that decisions keep being recorded in between.
func (s *Store) PruneLedger(ctx context.Context, through int64, hash []byte) (int64, error) {
	var deleted int64
	for {
		done := false
		err := s.onWriter(ctx, func(tx *sql.Tx) error {
			n, finished, err := pruneChunk(ctx, tx, through, hash, deleted == 0)
			deleted += n
			done = finished
			return err
		})
		if err != nil {
			var tgErr *tollgate.Error
			if errors.As(err, &tgErr) {
				return deleted, err
			}
			return deleted, s.readError(ctx, "prune the ledger", err)
		}
		if done {
			return deleted, nil
		}
	}
}

// pruneChunk deletes the next chunk of records up to through and moves the
// anchor after them; first checks, before anything is deleted, that the
// record at through is the one the caller archived.
func pruneChunk(ctx context.Context, tx *sql.Tx, through int64, hash []byte, first bool) (deleted int64, finished bool, err error) {
	var anchor int64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM ledger_anchor WHERE id = 1`).Scan(&anchor); err != nil {
		return 0, false, err
	}
	if first {
		var stored []byte
		err := tx.QueryRowContext(ctx, `SELECT hash FROM decisions WHERE seq = ?`, through).Scan(&stored)
		switch {
		case errors.Is(err, sql.ErrNoRows) || (err == nil && !bytes.Equal(stored, hash)):
			return 0, false, tollgate.Errorf(tollgate.EConflict, "prune the ledger through seq %d: the store does not hold the record that was archived (hash %s); nothing was pruned", through, ledger.Hex(hash))
		case err != nil:
			return 0, false, err
		}
	}
	if anchor >= through {
		return 0, true, nil
	}
	upto := min(anchor+storekit.PruneChunk, through)
	var uptoHash []byte
	if err := tx.QueryRowContext(ctx, `SELECT hash FROM decisions WHERE seq = ?`, upto).Scan(&uptoHash); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, tollgate.Errorf(tollgate.EConflict, "prune the ledger: record seq %d is missing; run `tollgate ledger verify`", upto)
		}
		return 0, false, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM decisions WHERE seq > ? AND seq <= ?`, anchor, upto)
	if err != nil {
		return 0, false, err
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `UPDATE ledger_anchor SET seq = ?, hash = ? WHERE id = 1`, upto, uptoHash); err != nil {
		return 0, false, err
	}
	return n, upto == through, nil
}

// chainLegacy gives the records made before the ledger existed (migration
// 00006) their place in the chain, oldest first, and returns how many it
// chained. Open calls it only in the run that applied that migration
// (migrations.LedgerMigration), and it does nothing unless the chain is
// empty: a record written around the store later stays unchained, and
// verification reports it.
func (s *Store) chainLegacy(ctx context.Context) (int64, error) {
	var chained int64
	err := s.onWriter(ctx, func(tx *sql.Tx) error {
		var seq, unchained int64
		var head []byte
		if err := tx.QueryRowContext(ctx, readHead).Scan(&seq, &head); err != nil {
			return err
		}
		if seq != 0 {
			return nil
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM decisions WHERE seq IS NULL`).Scan(&unchained); err != nil || unchained == 0 {
			return err
		}
		update, err := tx.PrepareContext(ctx, `UPDATE decisions SET seq = ?, prev_hash = ?, hash = ? WHERE id = ?`)
		if err != nil {
			return err
		}
		defer update.Close()
		for {
			type legacy struct {
				id     string
				record []byte
			}
			var page []legacy
			rows, err := tx.QueryContext(ctx, `SELECT id, record FROM decisions WHERE seq IS NULL ORDER BY id LIMIT ?`, storekit.LedgerPage)
			if err != nil {
				return err
			}
			for rows.Next() {
				var l legacy
				if err := rows.Scan(&l.id, &l.record); err != nil {
					rows.Close()
					return err
				}
				page = append(page, l)
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for _, l := range page {
				digest, err := ledger.Digest(l.record)
				if err != nil {
					return fmt.Errorf("decision %s: %w", l.id, err)
				}
				prev := head
				seq, head = seq+1, ledger.Link(prev, digest)
				if _, err := update.ExecContext(ctx, seq, prev, head, l.id); err != nil {
					return err
				}
				chained++
			}
		}
		_, err = tx.ExecContext(ctx, updateHead, seq, head)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: %s: chain the decisions recorded before the ledger: %w", s.path, err)
	}
	return chained, nil
}

// LegacyChained is how many decisions recorded before the ledger existed
// Open gave a place in the chain, for serve to log: 0 but in the run that
// applied the ledger's migration to a store that held decisions.
func (s *Store) LegacyChained() int64 { return s.legacyChained }
