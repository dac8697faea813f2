package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/ledger"
)

const (
	insertDecision = `INSERT INTO decisions
	(id, evaluated_at, project, pipeline, branch, environment, status, bundle_revision, record, seq, prev_hash, hash)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

	// The chain head, read and moved on in the transaction that records:
	// the write lock it holds (BEGIN IMMEDIATE) orders the chain.
	readHead   = `SELECT seq, hash FROM ledger WHERE id = 1`
	updateHead = `UPDATE ledger SET seq = ?, hash = ? WHERE id = 1`

	// A cooldown never moves back in time, should a clock do so.
	upsertCooldown = `INSERT INTO cooldowns (project, pipeline, branch, last_accepted_at, decision_id)
	VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (project, pipeline, branch) DO UPDATE
	SET last_accepted_at = excluded.last_accepted_at, decision_id = excluded.decision_id
	WHERE excluded.last_accepted_at >= cooldowns.last_accepted_at`

	// Nor does a baseline.
	upsertBaseline = `INSERT INTO baselines (project, environment, evaluated_at, decision_id, baseline)
	VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (project, environment) DO UPDATE
	SET evaluated_at = excluded.evaluated_at, decision_id = excluded.decision_id, baseline = excluded.baseline
	WHERE excluded.evaluated_at >= baselines.evaluated_at`
)

// commit is the dialect's Commit: it writes ws in one transaction on the
// writer connection, all of them or none, each chained to the one before
// it (see adapters/ledger).
func (s *Store) commit(ws []*storekit.Write) error {
	// Not the callers' contexts: a write that has started is finished, so
	// that no caller's cancellation can fail the others in its batch.
	ctx := context.Background()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	st := s.stmts
	if _, err := st.begin.ExecContext(ctx); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := s.writeBatch(ctx, ws); err != nil {
		// The error that matters is the batch's. ROLLBACK fails only when
		// no transaction is left to end.
		st.rollback.ExecContext(ctx)
		return err
	}
	return nil
}

// writeBatch is commit's transaction, from its first statement to COMMIT.
func (s *Store) writeBatch(ctx context.Context, ws []*storekit.Write) error {
	st := s.stmts
	var (
		seq  int64
		head []byte
	)
	// Another connection (another process) that committed since the last
	// transaction may have moved cooldowns the cache holds.
	var version int64
	if err := st.dataVersion.QueryRowContext(ctx).Scan(&version); err != nil {
		return fmt.Errorf("read the data version: %w", err)
	}
	if err := s.RecheckCooldowns(ctx, querier{s.writer}, ws, version != s.dataVersion); err != nil {
		return fmt.Errorf("read the cooldowns again: %w", err)
	}
	s.dataVersion = version
	if err := st.readHead.QueryRowContext(ctx).Scan(&seq, &head); err != nil {
		return fmt.Errorf("read the ledger head: %w", err)
	}
	for _, w := range ws {
		if w.Moved {
			continue // decided on a cooldown the table no longer holds: decided again
		}
		d := w.Rec.Decision
		prev := head
		seq, head = seq+1, ledger.Link(prev, w.Digest)
		if _, err := st.insert.ExecContext(ctx, d.ID, w.At, d.Project, d.Pipeline, d.Branch,
			d.Environment, string(d.Status), d.BundleRevision, w.Data, seq, prev, head); err != nil {
			return fmt.Errorf("insert %s: %w", d.ID, err)
		}
		if w.Baseline != "" {
			if _, err := st.baseline.ExecContext(ctx, d.Project, d.Environment, w.At, d.ID, w.Baseline); err != nil {
				return fmt.Errorf("set the baseline of %s: %w", d.ID, err)
			}
		}
		if !w.Accept {
			continue
		}
		if _, err := st.cooldown.ExecContext(ctx, w.Key.Project, w.Key.Pipeline, w.Key.Branch, w.At, d.ID); err != nil {
			return fmt.Errorf("start the cooldown of %s: %w", d.ID, err)
		}
	}
	if _, err := st.updateHead.ExecContext(ctx, seq, head); err != nil {
		return fmt.Errorf("move the ledger head: %w", err)
	}
	if _, err := st.commit.ExecContext(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// writeStmts are the group commit's statements, prepared once on the writer
// connection, its transaction's BEGIN and COMMIT included (database/sql's
// Tx would prepare them, and its statements, again for each transaction:
// ~4% of a request's CPU under load).
type writeStmts struct {
	begin, commit, rollback, dataVersion, readHead, insert, baseline, cooldown, updateHead *sql.Stmt
}

func prepareWrites(ctx context.Context, conn *sql.Conn) (*writeStmts, error) {
	w := &writeStmts{}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&w.begin, "BEGIN IMMEDIATE"}, {&w.commit, "COMMIT"}, {&w.rollback, "ROLLBACK"}, {&w.dataVersion, "PRAGMA data_version"},
		{&w.readHead, readHead}, {&w.insert, insertDecision}, {&w.baseline, upsertBaseline},
		{&w.cooldown, upsertCooldown}, {&w.updateHead, updateHead},
	} {
		st, err := conn.PrepareContext(ctx, p.query)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare %q: %w", p.query, err), w.close())
		}
		*p.stmt = st
	}
	return w, nil
}

func (w *writeStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{w.begin, w.commit, w.rollback, w.dataVersion, w.readHead, w.insert, w.baseline, w.cooldown, w.updateHead} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
