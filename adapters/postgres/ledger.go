package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/ledger"
)

var _ tollgate.LedgerStore = (*Store)(nil)

// readLedgerHead is the anchor, the head and the unchained records in one
// statement: one snapshot. It does not lock the head. Unchained are the
// rows without a seq and those whose seq lies outside the chain (at or
// before the anchor, after the head), which the walk from the anchor to
// the head never reads but the API serves. Three counts, each on the seq
// index.
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
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	var h tollgate.LedgerHead
	err := s.pool.QueryRow(opCtx, readLedgerHead).Scan(&h.Seq, &h.Hash, &h.AnchorSeq, &h.AnchorHash, &h.Unchained)
	if err != nil {
		return tollgate.LedgerHead{}, s.dbError(ctx, "read the ledger head", err)
	}
	return h, nil
}

// LedgerEntries implements tollgate.LedgerStore.
func (s *Store) LedgerEntries(ctx context.Context, from, through int64, fn func(tollgate.LedgerEntry) error) error {
	if s.isClosed() {
		return s.errClosed()
	}
	query := storekit.LedgerPageQuery(placeholder)
	return storekit.WalkLedger(from, through, func(after, through int64, limit int) ([]tollgate.LedgerEntry, error) {
		opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
		defer cancel()
		rows, err := s.pool.Query(opCtx, query, after, through, limit)
		if err != nil {
			return nil, s.dbError(ctx, "read the ledger", err)
		}
		defer rows.Close()
		var (
			page []tollgate.LedgerEntry
			row  storekit.LedgerRow
		)
		for rows.Next() {
			if err := rows.Scan(row.Dest()...); err != nil {
				return nil, s.dbError(ctx, "read the ledger", err)
			}
			page = append(page, row.Entry())
		}
		if err := rows.Err(); err != nil {
			return nil, s.dbError(ctx, "read the ledger", err)
		}
		return page, nil
	}, fn)
}

// LedgerSeqSince implements tollgate.LedgerStore.
func (s *Store) LedgerSeqSince(ctx context.Context, t time.Time) (int64, bool, error) {
	if s.isClosed() {
		return 0, false, s.errClosed()
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	var seq *int64
	err := s.pool.QueryRow(opCtx, `SELECT min(seq) FROM decisions WHERE evaluated_at >= $1`, storekit.UnixNano(t)).Scan(&seq)
	if err != nil {
		return 0, false, s.dbError(ctx, "read the ledger", err)
	}
	if seq == nil {
		return 0, false, nil
	}
	return *seq, true, nil
}

// PruneLedger implements tollgate.LedgerStore, one chunk of records per
// transaction. It locks the anchor, never the chain head: decisions keep
// being recorded while it runs.
func (s *Store) PruneLedger(ctx context.Context, through int64, hash []byte) (int64, error) {
	var deleted int64
	for {
		done := false
		err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
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
			return deleted, s.dbError(ctx, "prune the ledger", err)
		}
		if done {
			return deleted, nil
		}
	}
}

// pruneChunk deletes the next chunk of records up to through and moves the
// anchor after them; first checks, before anything is deleted, that the
// record at through is the one the caller archived.
func pruneChunk(ctx context.Context, tx pgx.Tx, through int64, hash []byte, first bool) (deleted int64, finished bool, err error) {
	var anchor int64
	if err := tx.QueryRow(ctx, `SELECT seq FROM ledger_anchor WHERE id = 1 FOR UPDATE`).Scan(&anchor); err != nil {
		return 0, false, err
	}
	if first {
		var stored []byte
		err := tx.QueryRow(ctx, `SELECT hash FROM decisions WHERE seq = $1`, through).Scan(&stored)
		switch {
		case errors.Is(err, pgx.ErrNoRows) || (err == nil && !bytes.Equal(stored, hash)):
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
	if err := tx.QueryRow(ctx, `SELECT hash FROM decisions WHERE seq = $1`, upto).Scan(&uptoHash); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, false, tollgate.Errorf(tollgate.EConflict, "prune the ledger: record seq %d is missing; run `tollgate ledger verify`", upto)
		}
		return 0, false, err
	}
	tag, err := tx.Exec(ctx, `DELETE FROM decisions WHERE seq > $1 AND seq <= $2`, anchor, upto)
	if err != nil {
		return 0, false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE ledger_anchor SET seq = $1, hash = $2 WHERE id = 1`, upto, uptoHash); err != nil {
		return 0, false, err
	}
	return tag.RowsAffected(), upto == through, nil
}

// chainLegacy gives the records made before the ledger existed (migration
// 00006) their place in the chain, oldest first, and returns how many it
// chained. It runs only in the process that applied that migration
// (migrations.LedgerMigration: Open or Migrate), and does nothing unless
// the chain is empty, under the chain head's lock. A record written around
// the store later stays unchained, and verification reports it.
func (s *Store) chainLegacy(ctx context.Context) (int64, error) {
	var chained int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			seq       int64
			head      []byte
			unchained bool
		)
		if err := tx.QueryRow(ctx, `SELECT seq, hash FROM ledger WHERE id = 1 FOR UPDATE`).Scan(&seq, &head); err != nil {
			return err
		}
		if seq != 0 {
			return nil
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM decisions WHERE seq IS NULL)`).Scan(&unchained); err != nil || !unchained {
			return err
		}
		var prev []byte
		for {
			type legacy struct {
				id     string
				record []byte
			}
			var page []legacy
			rows, err := tx.Query(ctx, `SELECT id, record FROM decisions WHERE seq IS NULL ORDER BY id LIMIT $1`, storekit.LedgerPage)
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
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			b := &pgx.Batch{}
			for _, l := range page {
				digest, err := ledger.Digest(l.record)
				if err != nil {
					return fmt.Errorf("decision %s: %w", l.id, err)
				}
				prev = head
				seq, head = seq+1, ledger.Link(prev, digest)
				b.Queue(`UPDATE decisions SET seq = $1, prev_hash = $2, hash = $3 WHERE id = $4`, seq, prev, head, l.id)
				chained++
			}
			if err := execBatch(ctx, tx, b); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE ledger SET seq = $1, prev_hash = $2, hash = $3 WHERE id = 1`, seq, prev, head)
		return err
	})
	if err != nil {
		return 0, s.dbError(ctx, "chain the decisions recorded before the ledger", err)
	}
	return chained, nil
}

// LegacyChained is how many decisions recorded before the ledger existed
// Open gave a place in the chain, for serve to log: 0 but in the run that
// applied the ledger's migration to a database that held decisions.
func (s *Store) LegacyChained() int64 { return s.legacyChained }
