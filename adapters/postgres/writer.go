package postgres

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// queue adds w's statements to b and returns the index in b of the
// statement whose row count says whether w was recorded, or -1 when it is
// recorded unconditionally.
func queue(b *pgx.Batch, w *storekit.Write, cas bool) (casAt int) {
	d := w.Rec.Decision
	casAt = -1
	if cas {
		casAt = b.Len()
		b.Queue(insertAccepted, d.ID, w.At, d.Project, d.Pipeline, d.Branch,
			d.Environment, string(d.Status), d.BundleRevision, w.Data, w.Digest,
			w.Key.Project, w.Key.Pipeline, w.Key.Branch, w.Expect)
	} else {
		b.Queue(insertDecision, d.ID, w.At, d.Project, d.Pipeline, d.Branch,
			d.Environment, string(d.Status), d.BundleRevision, w.Data, w.Digest)
		if w.Accept {
			b.Queue(upsertCooldown, w.Key.Project, w.Key.Pipeline, w.Key.Branch, w.At, d.ID)
		}
	}
	if w.Baseline != "" {
		b.Queue(upsertBaseline, d.Project, d.Environment, w.At, d.ID, w.Baseline)
	}
	return casAt
}

// commit is the dialect's Commit: it writes ws in one transaction, all of
// them or none, but for acceptances whose cooldown moved (marked Moved, not
// written). The batch is one pipeline without BEGIN, which PostgreSQL runs
// as one implicit transaction, committed when the pipeline ends: one round
// trip. pgx reads every answer up to the one that follows the COMMIT, so a
// nil error means committed (and, with the default synchronous_commit,
// flushed to disk). It first takes the advisory lock of each acceptance's
// key, in order of the locks, so that batches of several replicas cannot
// deadlock.
func (s *Store) commit(ws []*storekit.Write) error {
	// Not the callers' contexts: a write that has started is finished, so
	// that no caller's cancellation can fail the others in its batch. It is
	// bounded all the same, should the database stop answering.
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout+grace)
	defer cancel()
	b := &pgx.Batch{}
	var locks []int64
	for _, w := range ws {
		if w.CAS && !s.skipKeyLock {
			locks = append(locks, lockID(*w.Key))
		}
	}
	slices.Sort(locks)
	for _, id := range slices.Compact(locks) {
		b.Queue(lockKey, id)
	}
	cas := make([]int, len(ws))
	for i, w := range ws {
		cas[i] = queue(b, w, w.CAS && !s.skipKeyLock)
	}
	tags, err := execBatchTags(ctx, s.pool, b)
	if err != nil {
		return err
	}
	for i, w := range ws {
		w.Moved = cas[i] >= 0 && tags[cas[i]].RowsAffected() == 0
	}
	return nil
}
