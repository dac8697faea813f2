package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/ledger"
)

// write is one record on its way to the file, with its answer channel.
type write struct {
	storekit.Prepared
	ctx      context.Context // the caller's: a write whose caller gave up before it started is dropped
	data     string          // Data as a string: the column is STRICT TEXT
	baseline string          // Baseline as a string; empty when the record sets none
	done     chan error      // buffered: the writer never waits for a caller
}

// newWrite checks rec and encodes it, in the caller's goroutine so that the
// writer does nothing but SQL.
func newWrite(ctx context.Context, rec tollgate.Record, key *tollgate.CooldownKey) (*write, error) {
	p, err := storekit.Prepare(rec, key)
	if err != nil {
		return nil, err
	}
	return &write{Prepared: p, ctx: ctx, data: string(p.Data), baseline: string(p.Baseline), done: make(chan error, 1)}, nil
}

// writeLoop is the only writer of the file. It takes the write that wakes it
// and every other one already waiting, commits them in one transaction and
// answers each; writes arriving meanwhile make the next batch. That is group
// commit: under load, one fsync makes many decisions durable.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	storekit.Batches(s.writes, s.maxBatch, s.commit)
}

// commit writes batch and answers every write in it.
func (s *Store) commit(batch []*write) {
	todo := make([]*write, 0, len(batch))
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.done <- err
			continue
		}
		todo = append(todo, w)
	}
	if len(todo) == 0 {
		return
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.commitTx(todo)
	if err == nil || len(todo) == 1 {
		for _, w := range todo {
			w.done <- err
		}
		return
	}
	// The transaction failed as a whole. If one record was at fault (say a
	// duplicate ID), the others must not fail with it: write each alone.
	for _, w := range todo {
		w.done <- s.commitTx([]*write{w})
	}
}

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

// commitTx writes ws in one transaction: all of them or none, each chained
// to the one before it (see adapters/ledger).
func (s *Store) commitTx(ws []*write) error {
	// Not the callers' contexts: a write that has started is finished, so
	// that no caller's cancellation can fail the others in its batch.
	ctx := context.Background()
	st := s.stmts
	if _, err := st.begin.ExecContext(ctx); err != nil {
		return s.writeError(ws, "begin transaction", err)
	}
	if err := s.writeBatch(ctx, ws); err != nil {
		// The error that matters is the batch's. ROLLBACK fails only when
		// no transaction is left to end.
		st.rollback.ExecContext(ctx)
		return err
	}
	s.commits.Add(1)
	s.written.Add(int64(len(ws)))
	return nil
}

// writeBatch is commitTx's transaction, from its first statement to COMMIT.
func (s *Store) writeBatch(ctx context.Context, ws []*write) error {
	st := s.stmts
	var (
		seq  int64
		head []byte
	)
	if err := st.readHead.QueryRowContext(ctx).Scan(&seq, &head); err != nil {
		return s.writeError(ws, "read the ledger head", err)
	}
	for _, w := range ws {
		d := w.Rec.Decision
		prev := head
		seq, head = seq+1, ledger.Link(prev, w.Digest)
		if _, err := st.insert.ExecContext(ctx, d.ID, w.At, d.Project, d.Pipeline, d.Branch,
			d.Environment, string(d.Status), d.BundleRevision, w.data, seq, prev, head); err != nil {
			return s.writeError([]*write{w}, "insert", err)
		}
		if w.baseline != "" {
			if _, err := st.baseline.ExecContext(ctx, d.Project, d.Environment, w.At, d.ID, w.baseline); err != nil {
				return s.writeError([]*write{w}, "set baseline", err)
			}
		}
		if !w.Accept {
			continue
		}
		if _, err := st.cooldown.ExecContext(ctx, w.Key.Project, w.Key.Pipeline, w.Key.Branch, w.At, d.ID); err != nil {
			return s.writeError([]*write{w}, "start cooldown", err)
		}
	}
	if _, err := st.updateHead.ExecContext(ctx, seq, head); err != nil {
		return s.writeError(ws, "move the ledger head", err)
	}
	if _, err := st.commit.ExecContext(ctx); err != nil {
		return s.writeError(ws, "commit", err)
	}
	return nil
}

// writeStmts are the group commit's statements, prepared once on the writer
// connection, its transaction's BEGIN and COMMIT included (database/sql's
// Tx would prepare them, and its statements, again for each transaction:
// ~4% of a request's CPU under load).
type writeStmts struct {
	begin, commit, rollback, readHead, insert, baseline, cooldown, updateHead *sql.Stmt
}

func prepareWrites(ctx context.Context, conn *sql.Conn) (*writeStmts, error) {
	w := &writeStmts{}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&w.begin, "BEGIN IMMEDIATE"}, {&w.commit, "COMMIT"}, {&w.rollback, "ROLLBACK"},
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
	for _, st := range []*sql.Stmt{w.begin, w.commit, w.rollback, w.readHead, w.insert, w.baseline, w.cooldown, w.updateHead} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// writeError tells a record the database refused (a constraint: it is the
// record's fault, and retrying will not help) from a store that cannot be
// written, which the server answers with 503.
func (s *Store) writeError(ws []*write, what string, err error) error {
	id := ws[0].Rec.Decision.ID
	if len(ws) > 1 {
		id = fmt.Sprintf("%d decisions", len(ws))
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) && sqliteErr.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return tollgate.Errorf(tollgate.EInternal, "record decision %s: %s: %v (is the ID already recorded?)", id, what, err)
	}
	return tollgate.Errorf(tollgate.EUnavailable, "decision store %s: record %s: %s: %v", s.path, id, what, err)
}
