package postgres

import (
	"context"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// write is one record on its way to the database, with its answer channel.
type write struct {
	storekit.Prepared
	ctx  context.Context // the caller's: a write whose caller gave up before it started is dropped
	done chan error      // buffered: the writer never waits for a caller
	// cas, for an acceptance, writes it only if its key's cooldown is
	// still the one its decision read (insertAccepted): the one set by the
	// decision expect (nil: none). Otherwise nothing is written, and moved
	// is set.
	cas    bool
	expect *string
	moved  bool
}

// newWrite checks rec and encodes it, in the caller's goroutine so that the
// writer does nothing but SQL.
func newWrite(ctx context.Context, rec tollgate.Record, key *tollgate.CooldownKey) (*write, error) {
	p, err := storekit.Prepare(rec, key)
	if err != nil {
		return nil, err
	}
	return &write{Prepared: p, ctx: ctx, done: make(chan error, 1)}, nil
}

// queue adds w's statements to b and returns the index in b of the
// statement whose row count says whether w was recorded, or -1 when it is
// recorded unconditionally.
func (w *write) queue(b *pgx.Batch) (cas int) {
	d := w.Rec.Decision
	cas = -1
	if w.cas {
		cas = b.Len()
		b.Queue(insertAccepted, d.ID, w.At, d.Project, d.Pipeline, d.Branch,
			d.Environment, string(d.Status), d.BundleRevision, w.Data, w.Digest,
			w.Key.Project, w.Key.Pipeline, w.Key.Branch, w.expect)
	} else {
		b.Queue(insertDecision, d.ID, w.At, d.Project, d.Pipeline, d.Branch,
			d.Environment, string(d.Status), d.BundleRevision, w.Data, w.Digest)
		if w.Accept {
			b.Queue(upsertCooldown, w.Key.Project, w.Key.Pipeline, w.Key.Branch, w.At, d.ID)
		}
	}
	if w.Baseline != nil {
		b.Queue(upsertBaseline, d.Project, d.Environment, w.At, d.ID, w.Baseline)
	}
	return cas
}

// execWrites writes ws in one transaction: all of them or none, but for
// acceptances whose cooldown moved (marked moved, not written). The batch
// is one pipeline without BEGIN, which PostgreSQL runs as one implicit
// transaction, committed when the pipeline ends: one round trip. pgx reads
// every answer up to the one that follows the COMMIT, so a nil error means
// committed (and, with the default synchronous_commit, flushed to disk).
// It first takes the advisory lock of each acceptance's key, in order of
// the locks, so that batches of several replicas cannot deadlock.
func execWrites(ctx context.Context, conn batcher, ws []*write) error {
	b := &pgx.Batch{}
	var locks []int64
	for _, w := range ws {
		if w.cas {
			locks = append(locks, lockID(*w.Key))
		}
	}
	slices.Sort(locks)
	for _, id := range slices.Compact(locks) {
		b.Queue(lockKey, id)
	}
	cas := make([]int, len(ws))
	for i, w := range ws {
		cas[i] = w.queue(b)
	}
	tags, err := execBatchTags(ctx, conn, b)
	if err != nil {
		return err
	}
	for i, w := range ws {
		w.moved = cas[i] >= 0 && tags[cas[i]].RowsAffected() == 0
	}
	return nil
}

// enter counts an operation that Close must wait for, unless the store is
// closed; leave ends it.
func (s *Store) enter() (leave func(), err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, s.errClosed()
	}
	s.inflight.Add(1)
	return s.inflight.Done, nil
}

// submit hands w to the writer, which Close stops only once the keyed
// Decides under way are done.
func (s *Store) submit(ctx context.Context, w *write) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.writesClosed {
		return s.errClosed()
	}
	select {
	case s.writes <- w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeLoop is the group-commit writer. It takes the write that wakes it and
// every other one already waiting, commits them in one transaction and
// answers each; writes arriving meanwhile make the next batch. Under load,
// one round trip and one WAL flush record many decisions, and the pool's
// other connections stay free for keyed Decides and reads.
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
	err := s.commitTx(todo)
	if err == nil || len(todo) == 1 || !recordsFault(err) {
		// Committed; or one record, refused; or the database failed, and
		// every record in the batch with it: trying them one by one would
		// only make each caller wait for another timeout.
		for _, w := range todo {
			w.done <- s.writeError(todo, w, err)
		}
		return
	}
	// One record was refused (say, a duplicate ID) and took the transaction
	// with it: the others must not fail with it. Write each alone.
	for _, w := range todo {
		w.done <- s.writeError(nil, w, s.commitTx([]*write{w}))
	}
}

// commitTx writes ws with execWrites, in a transaction of their own.
func (s *Store) commitTx(ws []*write) error {
	// Not the callers' contexts: a write that has started is finished, so
	// that no caller's cancellation can fail the others in its batch. It is
	// bounded all the same, should the database stop answering.
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout+grace)
	defer cancel()
	if err := execWrites(ctx, s.pool, ws); err != nil {
		return err
	}
	s.commits.Add(1)
	for _, w := range ws {
		if !w.moved {
			s.written.Add(1)
		}
	}
	return nil
}

// writeAlone writes w in a transaction of its own, from the caller's
// goroutine: the store without group commit (WithGroupCommit(false)).
func (s *Store) writeAlone(ctx context.Context, w *write) error {
	leave, err := s.enter()
	if err != nil {
		return err
	}
	defer leave()

	opCtx, cancel := context.WithTimeout(ctx, s.timeout+grace)
	defer cancel()
	if err := execWrites(opCtx, s.pool, []*write{w}); err != nil {
		return s.dbError(ctx, "record decision "+w.Rec.Decision.ID, err)
	}
	s.commits.Add(1)
	if w.moved {
		return errCooldownMoved
	}
	s.written.Add(1)
	return nil
}

// writeError is the answer to w when committing batch (or w alone, when
// batch is nil) returned err.
func (s *Store) writeError(batch []*write, w *write, err error) error {
	if err == nil {
		if w.moved {
			return errCooldownMoved
		}
		return nil
	}
	what := "record decision " + w.Rec.Decision.ID
	if len(batch) > 1 {
		what += " (in a batch of " + strconv.Itoa(len(batch)) + ")"
	}
	return s.classify(what, err)
}
