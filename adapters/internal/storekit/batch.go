package storekit

import "time"

// Batching is how the group-commit writer forms its transactions.
type Batching struct {
	// Max caps the writes of one transaction. 0: no writer, each record
	// is committed alone from its caller's goroutine.
	Max int
	// Linger bounds how long a transaction waits for more writes while
	// writes are queuing (see batcher); 0 never waits.
	Linger time.Duration
}

// batcher is the loop of a group-commit writer: it takes the write that
// wakes it and every other one already waiting, up to max, hands them to
// commit as one batch, and starts again, until writes is closed and
// drained. Writes arriving during a commit make the next batch.
//
// Under load that alone makes small batches (2–3 decisions per
// transaction on two cores: the writer wakes as soon as one write is
// there, while the evaluations of the others still hold the CPU), and each
// transaction costs as much as five decisions. So, while writes are
// queuing, the writer lingers: a batch smaller than the one before waits
// for more, until it is as large or the linger has passed, whichever comes
// first. It never waits when the server was idle (the previous transaction
// ended a linger or more ago) or when writes come one at a time (the
// previous transaction held one): a lone decision is committed at once.
type batcher[W any] struct {
	writes <-chan W
	max    int
	linger time.Duration
	commit func(batch []W)

	// The clock: time.Now and a time.Timer, faked by tests.
	now   func() time.Time
	timer func(time.Duration) (c <-chan time.Time, stop func() bool)
}

func newBatcher[W any](writes <-chan W, b Batching, commit func([]W)) *batcher[W] {
	return &batcher[W]{writes: writes, max: b.Max, linger: b.Linger, commit: commit, now: time.Now,
		timer: func(d time.Duration) (<-chan time.Time, func() bool) {
			t := time.NewTimer(d)
			return t.C, t.Stop
		}}
}

func (b *batcher[W]) run() {
	batch := make([]W, 0, b.max)
	var (
		prev int       // writes in the previous transaction
		end  time.Time // when it ended
	)
	for w := range b.writes {
		batch = b.fill(append(batch[:0], w))
		if len(batch) < prev && b.linger > 0 && b.now().Sub(end) < b.linger {
			batch = b.wait(batch, min(prev, b.max))
		}
		b.commit(batch)
		prev, end = len(batch), b.now()
		clear(batch) // let the records go
	}
}

// fill adds to batch the writes already waiting, up to max.
func (b *batcher[W]) fill(batch []W) []W {
	for len(batch) < b.max {
		select {
		case w, ok := <-b.writes:
			if !ok {
				return batch
			}
			batch = append(batch, w)
		default:
			return batch
		}
	}
	return batch
}

// wait adds writes to batch as they come until it holds target, the
// linger passes or writes is closed.
func (b *batcher[W]) wait(batch []W, target int) []W {
	timeout, stop := b.timer(b.linger)
	defer stop()
	for len(batch) < target {
		select {
		case w, ok := <-b.writes:
			if !ok {
				return batch
			}
			batch = b.fill(append(batch, w))
		case <-timeout:
			return batch
		}
	}
	return batch
}
