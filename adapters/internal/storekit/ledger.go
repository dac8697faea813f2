package storekit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/ledger"
)

var _ tollgate.LedgerStore = (*Core)(nil)

// LedgerPage is how many records a ledger walk reads per query: pages keep
// every query short (PostgreSQL's statement timeout, SQLite's WAL, which a
// long read keeps from being checkpointed) however long the chain.
const LedgerPage = 1000

// PruneChunk is how many records one pruning transaction deletes.
const PruneChunk = 5000

// LedgerColumns are the columns of a ledger walk, in the order of
// LedgerRow.Dest.
const LedgerColumns = "seq, prev_hash, hash, id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record"

// ledgerPageQuery is the query of one page of a walk, whose arguments are
// after, through and the limit.
const ledgerPageQuery = "SELECT " + LedgerColumns + " FROM decisions WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"

// LedgerRow is one row of a ledger walk as both stores scan it.
type LedgerRow struct {
	Seq                                              int64
	PrevHash, Hash, Record                           []byte
	ID, Project, Pipeline, Branch, Environment, Stat string
	BundleRevision                                   string
	At                                               int64
}

// Dest is the scan destination of LedgerColumns.
func (r *LedgerRow) Dest() []any {
	return []any{&r.Seq, &r.PrevHash, &r.Hash, &r.ID, &r.At, &r.Project, &r.Pipeline, &r.Branch, &r.Environment, &r.Stat, &r.BundleRevision, &r.Record}
}

// Entry is the row as a ledger entry. The byte slices are copied: drivers
// may reuse theirs for the next row.
func (r *LedgerRow) Entry() tollgate.LedgerEntry {
	return tollgate.LedgerEntry{
		Seq:            r.Seq,
		PrevHash:       append([]byte(nil), r.PrevHash...),
		Hash:           append([]byte(nil), r.Hash...),
		Record:         append([]byte(nil), r.Record...),
		ID:             r.ID,
		Project:        r.Project,
		Pipeline:       r.Pipeline,
		Branch:         r.Branch,
		Environment:    r.Environment,
		BundleRevision: r.BundleRevision,
		Status:         tollgate.Status(r.Stat),
		EvaluatedAt:    time.Unix(0, r.At).UTC(),
	}
}

// CooldownsQuery lists every stored cooldown with the seq of the decision
// it names, and the chain head's seq, in one statement: one snapshot. The
// ledger row is always there, so the head comes back even without a
// cooldown (one row of NULLs).
const CooldownsQuery = `SELECT l.seq, c.project, c.pipeline, c.branch, c.last_accepted_at, c.decision_id, d.seq
	FROM ledger l
	LEFT JOIN cooldowns c ON 1 = 1
	LEFT JOIN decisions d ON d.id = c.decision_id
	WHERE l.id = 1`

// CooldownRow is one row of CooldownsQuery as both stores scan it.
type CooldownRow struct {
	Head                      int64
	Project, Pipeline, Branch *string // NULL: no cooldown at all
	At                        *int64
	DecisionID                *string // NULL once the decision was pruned
	DecisionSeq               *int64
}

// Dest is the scan destination of CooldownsQuery.
func (r *CooldownRow) Dest() []any {
	return []any{&r.Head, &r.Project, &r.Pipeline, &r.Branch, &r.At, &r.DecisionID, &r.DecisionSeq}
}

// Cooldown is the row as a stored cooldown; false for the row of NULLs.
func (r *CooldownRow) Cooldown() (tollgate.StoredCooldown, bool) {
	if r.Project == nil || r.Pipeline == nil || r.Branch == nil || r.At == nil {
		return tollgate.StoredCooldown{}, false
	}
	c := tollgate.StoredCooldown{
		Key:            tollgate.CooldownKey{Project: *r.Project, Pipeline: *r.Pipeline, Branch: *r.Branch},
		LastAcceptedAt: time.Unix(0, *r.At).UTC(),
	}
	if r.DecisionID != nil {
		c.DecisionID = *r.DecisionID
	}
	if r.DecisionSeq != nil {
		c.DecisionSeq = *r.DecisionSeq
	}
	return c, true
}

// BaselinesQuery is CooldownsQuery for the drift baselines.
const BaselinesQuery = `SELECT l.seq, b.project, b.environment, b.evaluated_at, b.decision_id, b.baseline, d.seq
	FROM ledger l
	LEFT JOIN baselines b ON 1 = 1
	LEFT JOIN decisions d ON d.id = b.decision_id
	WHERE l.id = 1`

// BaselineRow is one row of BaselinesQuery as both stores scan it.
type BaselineRow struct {
	Head                             int64
	Project, Environment, DecisionID *string // NULL: no baseline at all
	At                               *int64
	Baseline                         []byte
	DecisionSeq                      *int64
}

// Dest is the scan destination of BaselinesQuery.
func (r *BaselineRow) Dest() []any {
	return []any{&r.Head, &r.Project, &r.Environment, &r.At, &r.DecisionID, &r.Baseline, &r.DecisionSeq}
}

// Stored is the row as a stored baseline; false for the row of NULLs.
func (r *BaselineRow) Stored() (tollgate.StoredBaseline, bool) {
	if r.Project == nil || r.Environment == nil || r.At == nil || r.DecisionID == nil {
		return tollgate.StoredBaseline{}, false
	}
	b := tollgate.StoredBaseline{Project: *r.Project, Environment: *r.Environment, EvaluatedAt: time.Unix(0, *r.At).UTC(),
		DecisionID: *r.DecisionID, Baseline: append([]byte(nil), r.Baseline...)}
	if r.DecisionSeq != nil {
		b.DecisionSeq = *r.DecisionSeq
	}
	return b, true
}

// LedgerCooldowns implements tollgate.LedgerStore's LedgerCooldowns: the
// cooldowns are one row per key that was ever accepted, few enough for
// one query, which also reads the head seq (one snapshot).
func (c *Core) LedgerCooldowns(ctx context.Context, fn func(tollgate.StoredCooldown) error) (int64, error) {
	var head int64
	err := walkRows(ctx, c, "read the cooldowns", CooldownsQuery, func(r *CooldownRow) error {
		head = r.Head
		if c, ok := r.Cooldown(); ok {
			return fn(c)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return head, nil
}

// LedgerBaselines implements tollgate.LedgerStore's LedgerBaselines, as
// LedgerCooldowns for the drift baselines.
func (c *Core) LedgerBaselines(ctx context.Context, fn func(tollgate.StoredBaseline) error) (int64, error) {
	var head int64
	err := walkRows(ctx, c, "read the drift baselines", BaselinesQuery, func(r *BaselineRow) error {
		head = r.Head
		if b, ok := r.Stored(); ok {
			return fn(b)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return head, nil
}

// walkRows runs query (no arguments) as a read of c and calls each with
// every row scanned into an R. An error of each is returned as it is; a
// failure of the store as c.Error says.
func walkRows[R any, PR interface {
	*R
	Dest() []any
}](ctx context.Context, c *Core, what, query string, each func(*R) error) error {
	var eachErr error
	err := c.read(ctx, what, func(ctx context.Context, q Querier) error {
		rows, err := q.Query(ctx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r R
			if err := rows.Scan(PR(&r).Dest()...); err != nil {
				return err
			}
			if eachErr = each(&r); eachErr != nil {
				return eachErr
			}
		}
		rows.Close()
		return rows.Err()
	})
	if eachErr != nil {
		return eachErr
	}
	return err
}

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
func (c *Core) LedgerHead(ctx context.Context) (h tollgate.LedgerHead, err error) {
	err = c.read(ctx, "read the ledger head", func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, readLedgerHead).Scan(&h.Seq, &h.Hash, &h.AnchorSeq, &h.AnchorHash, &h.Unchained)
	})
	return h, err
}

// LedgerEntries implements tollgate.LedgerStore, one page of LedgerPage
// records per query: pages keep every query short however long the chain.
func (c *Core) LedgerEntries(ctx context.Context, from, through int64, fn func(tollgate.LedgerEntry) error) error {
	for after := from - 1; after < through; {
		var page []LedgerRow
		err := c.read(ctx, "read the ledger", func(ctx context.Context, q Querier) (err error) {
			page, err = scanAll(ctx, q, ledgerPageQuery, []any{after, through, LedgerPage}, (*LedgerRow).Dest)
			return err
		})
		if err != nil {
			return err
		}
		for i := range page {
			if err := fn(page[i].Entry()); err != nil {
				return err
			}
			after = page[i].Seq
		}
		if len(page) < LedgerPage {
			return nil
		}
	}
	return nil
}

// LedgerSeqSince implements tollgate.LedgerStore.
func (c *Core) LedgerSeqSince(ctx context.Context, t time.Time) (int64, bool, error) {
	var seq *int64
	err := c.read(ctx, "read the ledger", func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, `SELECT min(seq) FROM decisions WHERE evaluated_at >= ?`, UnixNano(t)).Scan(&seq)
	})
	if err != nil || seq == nil {
		return 0, false, err
	}
	return *seq, true, nil
}

// PruneLedger implements tollgate.LedgerStore, one chunk of records per
// transaction. It locks the anchor, never the chain head: decisions keep
// being recorded while it runs.
func (c *Core) PruneLedger(ctx context.Context, through int64, hash []byte) (int64, error) {
	var deleted int64
	for done := false; !done; {
		err := c.write(ctx, "prune the ledger", func(ctx context.Context, q Querier) error {
			n, finished, err := c.pruneChunk(ctx, q, through, hash, deleted == 0)
			deleted += n
			done = finished
			return err
		})
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// pruneChunk deletes the next chunk of records up to through and moves the
// anchor after them; first checks, before anything is deleted, that the
// record at through is the one the caller archived.
func (c *Core) pruneChunk(ctx context.Context, q Querier, through int64, hash []byte, first bool) (deleted int64, finished bool, err error) {
	var anchor int64
	if err := q.QueryRow(ctx, `SELECT seq FROM ledger_anchor WHERE id = 1`+c.d.ForUpdate).Scan(&anchor); err != nil {
		return 0, false, err
	}
	if first {
		var stored []byte
		err := q.QueryRow(ctx, `SELECT hash FROM decisions WHERE seq = ?`, through).Scan(&stored)
		switch {
		case errors.Is(err, ErrNoRows) || (err == nil && !bytes.Equal(stored, hash)):
			return 0, false, tollgate.Errorf(tollgate.EConflict, "prune the ledger through seq %d: the store does not hold the record that was archived (hash %s); nothing was pruned", through, ledger.Hex(hash))
		case err != nil:
			return 0, false, err
		}
	}
	if anchor >= through {
		return 0, true, nil
	}
	upto := min(anchor+PruneChunk, through)
	var uptoHash []byte
	if err := q.QueryRow(ctx, `SELECT hash FROM decisions WHERE seq = ?`, upto).Scan(&uptoHash); err != nil {
		if errors.Is(err, ErrNoRows) {
			return 0, false, tollgate.Errorf(tollgate.EConflict, "prune the ledger: record seq %d is missing; run `tollgate ledger verify`", upto)
		}
		return 0, false, err
	}
	n, err := q.Exec(ctx, `DELETE FROM decisions WHERE seq > ? AND seq <= ?`, anchor, upto)
	if err != nil {
		return 0, false, err
	}
	if _, err := q.Exec(ctx, `UPDATE ledger_anchor SET seq = ?, hash = ? WHERE id = 1`, upto, uptoHash); err != nil {
		return 0, false, err
	}
	return n, upto == through, nil
}

// ChainLegacy gives the records made before the ledger existed (migration
// 00006) their place in the chain, oldest first, and returns how many it
// chained. A store calls it only in the run that applied that migration
// (migrations.LedgerMigration), and it does nothing unless the chain is
// empty, under the chain head's lock. A record written around the store
// later stays unchained, and verification reports it. It runs in one
// transaction of tx, which bounds it by ctx alone: it may have many
// records to chain.
func (c *Core) ChainLegacy(ctx context.Context, tx func(context.Context, func(context.Context, Querier) error) error) error {
	return c.Run(ctx, "chain the decisions recorded before the ledger", func() error {
		return tx(ctx, func(ctx context.Context, q Querier) error {
			var (
				seq        int64
				prev, head []byte
				unchained  bool
			)
			if err := q.QueryRow(ctx, `SELECT seq, hash FROM ledger WHERE id = 1`+c.d.ForUpdate).Scan(&seq, &head); err != nil {
				return err
			}
			if seq != 0 {
				return nil
			}
			if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM decisions WHERE seq IS NULL)`).Scan(&unchained); err != nil || !unchained {
				return err
			}
			type legacy struct {
				id     string
				record []byte
			}
			for {
				page, err := scanAll(ctx, q, `SELECT id, record FROM decisions WHERE seq IS NULL ORDER BY id LIMIT ?`, []any{LedgerPage},
					func(l *legacy) []any { return []any{&l.id, &l.record} })
				if err != nil || len(page) == 0 {
					if err == nil {
						_, err = q.Exec(ctx, c.d.SetHead, seq, prev, head)
					}
					if err == nil {
						// They are older than the outbox (migration
						// 00009, applied in this run): not notified.
						_, err = q.Exec(ctx, `UPDATE notification_cursor SET decision_seq = ? WHERE id = 1`, seq)
					}
					return err
				}
				for _, l := range page {
					digest, err := ledger.Digest(l.record)
					if err != nil {
						return fmt.Errorf("decision %s: %w", l.id, err)
					}
					prev = head
					seq, head = seq+1, ledger.Link(prev, digest)
					if _, err := q.Exec(ctx, `UPDATE decisions SET seq = ?, prev_hash = ?, hash = ? WHERE id = ?`, seq, prev, head, l.id); err != nil {
						return err
					}
					c.legacyChained++
				}
			}
		})
	})
}

// LegacyChained is how many decisions recorded before the ledger existed
// opening the store gave a place in the chain, for serve to log: 0 but in
// the run that applied the ledger's migration to a store that held
// decisions.
func (c *Core) LegacyChained() int64 { return c.legacyChained }
