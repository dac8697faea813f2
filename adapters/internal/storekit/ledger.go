package storekit

import (
	"context"
	"time"

	"github.com/tollgate/tollgate"
)

// LedgerPage is how many records a ledger walk reads per query: pages keep
// every query short (PostgreSQL's statement timeout, SQLite's WAL, which a
// long read keeps from being checkpointed) however long the chain.
const LedgerPage = 1000

// PruneChunk is how many records one pruning transaction deletes.
const PruneChunk = 5000

// LedgerColumns are the columns of a ledger walk, in the order of
// LedgerRow.Dest.
const LedgerColumns = "seq, prev_hash, hash, id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record"

// LedgerPageQuery is the query of one page of a walk, whose arguments are
// after, through and the limit; ph writes the store's placeholders.
func LedgerPageQuery(ph func(n int) string) string {
	return "SELECT " + LedgerColumns + " FROM decisions WHERE seq > " + ph(1) + " AND seq <= " + ph(2) + " ORDER BY seq LIMIT " + ph(3)
}

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

// WalkLedger calls fn with every entry from seq from through seq through,
// reading one page at a time with page(after, through, limit), which
// returns the entries with after < seq <= through, in seq order, at most
// limit of them (LedgerPageQuery).
func WalkLedger(from, through int64, page func(after, through int64, limit int) ([]tollgate.LedgerEntry, error), fn func(tollgate.LedgerEntry) error) error {
	after := from - 1
	for after < through {
		entries, err := page(after, through, LedgerPage)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
		}
		if len(entries) < LedgerPage {
			return nil
		}
	}
	return nil
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
func (tb Tables) LedgerCooldowns(ctx context.Context, fn func(tollgate.StoredCooldown) error) (int64, error) {
	var head int64
	err := walkRows(ctx, tb.d, "read the cooldowns", CooldownsQuery, func(r *CooldownRow) error {
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
func (tb Tables) LedgerBaselines(ctx context.Context, fn func(tollgate.StoredBaseline) error) (int64, error) {
	var head int64
	err := walkRows(ctx, tb.d, "read the drift baselines", BaselinesQuery, func(r *BaselineRow) error {
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

// walkRows runs query (no arguments) as a read of d and calls each with
// every row scanned into an R. An error of each is returned as it is; a
// failure of the store as d says.
func walkRows[R any, PR interface {
	*R
	Dest() []any
}](ctx context.Context, d Dialect, what, query string, each func(*R) error) error {
	var eachErr error
	err := d.Read(ctx, what, func(ctx context.Context, q Querier) error {
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
