package storekit

import (
	"context"
	"errors"
	"strconv"

	"github.com/tollgate/tollgate"
)

// MaxAttempts bounds how many times a keyed Decide decides when other
// replicas keep accepting for its key in between: after the first, each
// attempt reads a newer acceptance, and its decision refuses.
const MaxAttempts = 5

// errCooldownMoved is the writer's answer to an acceptance whose key's
// cooldown changed after it was read: nothing was written.
var errCooldownMoved = errors.New("the cooldown changed since it was read")

// Decide implements tollgate.DecisionStore.
//
// With a key, Decides for the key in this process queue on its lock
// (KeyLocks): the cooldown is read, decide runs, and the record is
// committed before the next Decide for the key reads the cooldown. A
// record that does not accept changes nothing the next Decide reads: the
// key is freed once it is decided, and refusals of a busy key share
// commits. Where several processes share the store (Dialect.CAS), an
// acceptance is recorded only if the cooldown is still the one decide saw;
// if another process accepted in between, nothing is written and Decide
// starts again: it reads the new cooldown and decides again, which now
// refuses (at most MaxAttempts times, then EUnavailable). A store that
// holds its cooldowns in memory (CacheCooldowns) does the same with an
// acceptance decided on a cooldown that another connection changed
// (RecheckCooldowns).
//
// Either way a record is committed before Decide returns, and a Decide
// that cannot commit returns an EUnavailable error: the server answers
// 503, never a decision it did not record. If ctx ends while the record is
// being committed, Decide returns ctx.Err(); the transaction then commits
// whole or not at all, and the key stays locked until it has, so the next
// Decide for the key sees the outcome.
func (c *Core) Decide(ctx context.Context, key *tollgate.CooldownKey, decide func(tollgate.Cooldown) (tollgate.Record, error)) (tollgate.Record, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.Record{}, err
	}
	if err := c.enter(); err != nil {
		return tollgate.Record{}, err
	}
	defer c.inflight.Done()
	if key == nil {
		rec, err := decide(tollgate.Cooldown{})
		if err != nil {
			return tollgate.Record{}, err
		}
		w, err := NewWrite(ctx, rec, nil)
		if err != nil {
			return tollgate.Record{}, err
		}
		if err := c.record(ctx, w, nil); err != nil {
			return tollgate.Record{}, err
		}
		return w.Rec, nil
	}

	k := *key // the caller may reuse *key once we return
	unlock, err := c.keys.Lock(ctx, k)
	if err != nil {
		return tollgate.Record{}, err
	}
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	for range MaxAttempts {
		cooldown, holder, gen, err := c.readCooldown(ctx, k)
		if err != nil {
			return tollgate.Record{}, c.Error(ctx, "read cooldown", err)
		}
		rec, err := decide(cooldown)
		if err != nil {
			return tollgate.Record{}, err
		}
		w, err := NewWrite(ctx, rec, &k)
		if err != nil {
			return tollgate.Record{}, err
		}
		w.SeenGen = gen
		if !cooldown.LastAcceptedAt.IsZero() {
			w.Seen = cooldown.LastAcceptedAt.UnixNano()
		}
		if !w.Accept {
			// The cooldown stays as it was: free the key for the next
			// request now. The record is still durable before Decide
			// returns.
			unlock()
			unlock = nil
		} else if c.d.CAS {
			w.CAS, w.Expect = true, holder
		}
		err = c.record(ctx, w, &unlock)
		if errors.Is(err, errCooldownMoved) {
			continue
		}
		if err != nil {
			return tollgate.Record{}, err
		}
		return w.Rec, nil
	}
	return tollgate.Record{}, tollgate.Errorf(tollgate.EUnavailable,
		"decision store %s: the cooldown of %s/%s on %s changed %d times while deciding: other replicas keep accepting for it",
		c.d.Where, k.Project, k.Pipeline, k.Branch, MaxAttempts)
}

// record writes w, through the group-commit writer unless there is none,
// and returns once it is committed; if ctx ends first, the key lock *held
// (if any) is released only once w is settled (Await).
func (c *Core) record(ctx context.Context, w *Write, held *func()) error {
	if c.writes == nil {
		err := c.Error(ctx, "record decision "+w.Rec.Decision.ID, c.commitTx([]*Write{w}))
		if err == nil && w.Moved {
			return errCooldownMoved
		}
		return err
	}
	if err := c.submit(ctx, w); err != nil {
		return err
	}
	return Await(ctx, w.done, held)
}

// submit hands w to the writer, which Close stops only once the calls
// under way are done.
func (c *Core) submit(ctx context.Context, w *Write) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.writesClosed {
		return c.errClosed()
	}
	select {
	case c.writes <- w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commit writes batch, the group-commit writer's, and answers every write
// in it. Under load, one transaction (one fsync, one round trip) records
// many decisions.
func (c *Core) commit(batch []*Write) {
	todo := make([]*Write, 0, len(batch))
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
	err := c.commitTx(todo)
	if _, _, refused := c.d.Refused(err); err == nil || len(todo) == 1 || !refused {
		// Committed; or one record, refused; or the database failed, and
		// every record in the batch with it: trying them one by one would
		// only make each caller wait for another failure.
		for _, w := range todo {
			w.done <- c.answer(todo, w, err)
		}
		return
	}
	// One record was refused (say, a duplicate ID) and took the
	// transaction with it: the others must not fail with it. Write each
	// alone.
	for _, w := range todo {
		w.done <- c.answer(nil, w, c.commitTx([]*Write{w}))
	}
}

// commitTx writes ws with the dialect's Commit and counts the work.
func (c *Core) commitTx(ws []*Write) error {
	if err := c.d.Commit(ws); err != nil {
		if c.cooldowns != nil {
			c.cooldowns.stale.Store(true)
		}
		return err
	}
	c.cooldowns.committed(ws)
	c.commits.Add(1)
	for _, w := range ws {
		if !w.Moved {
			c.written.Add(1)
		}
	}
	return nil
}

// answer is the answer to w when committing batch (or w alone, when batch
// is nil) returned err.
func (c *Core) answer(batch []*Write, w *Write, err error) error {
	if err == nil {
		if w.Moved {
			return errCooldownMoved
		}
		return nil
	}
	what := "record decision " + w.Rec.Decision.ID
	if len(batch) > 1 {
		what += " (in a batch of " + strconv.Itoa(len(batch)) + ")"
	}
	return c.classify(what, err)
}
