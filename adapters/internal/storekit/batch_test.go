package storekit

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeBatcher runs a batcher of ints on a fake clock, one step at a time:
// each commit waits for the test (release), so that what is queued when
// the writer looks is what the test queued. The test sets the time (advance),
// sees each linger start (lingers) and can end it (expire).
type fakeBatcher struct {
	writes  chan int
	batches chan []int
	release chan struct{}
	lingers chan time.Duration
	expire  chan time.Time

	stamps    chan struct{} // a token each time the writer reads the clock
	done      chan struct{} // closed when the writer returns
	closeOnce sync.Once

	mu  sync.Mutex
	now time.Time
}

func startBatcher(t *testing.T, b Batching) *fakeBatcher {
	f := &fakeBatcher{writes: make(chan int, 64), batches: make(chan []int), release: make(chan struct{}),
		lingers: make(chan time.Duration, 64), expire: make(chan time.Time, 1), done: make(chan struct{}), stamps: make(chan struct{}, 16), now: time.Unix(1_000, 0)}
	bt := newBatcher(f.writes, b, func(batch []int) {
		f.batches <- slices.Clone(batch)
		<-f.release
	})
	bt.now = func() time.Time {
		select {
		case f.stamps <- struct{}{}:
		default:
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.now
	}
	bt.timer = func(d time.Duration) (<-chan time.Time, func() bool) {
		f.lingers <- d
		return f.expire, func() bool { return true }
	}
	go func() {
		defer close(f.done)
		bt.run()
	}()
	t.Cleanup(func() {
		f.close()
		for {
			select {
			case <-f.batches:
				f.release <- struct{}{}
			case <-f.done:
				return
			}
		}
	})
	return f
}

// close closes the writes, as Close does.
func (f *fakeBatcher) close() { f.closeOnce.Do(func() { close(f.writes) }) }

func (f *fakeBatcher) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fakeBatcher) send(ws ...int) {
	for _, w := range ws {
		f.writes <- w
	}
}

// committed waits for the writer's next commit, checks it is want, and
// lets the writer go on once the test has queued what follows (then).
func (f *fakeBatcher) committed(t *testing.T, want []int, then ...int) {
	t.Helper()
	select {
	case got := <-f.batches:
		if !slices.Equal(got, want) {
			t.Fatalf("committed %v, want %v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing committed, want %v", want)
	}
	for len(f.stamps) > 0 {
		<-f.stamps
	}
	f.send(then...)
	f.release <- struct{}{}
	// The writer notes when the commit ended: only then may the test's
	// clock move on.
	select {
	case <-f.stamps:
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not note the end of its commit")
	}
}

// noLinger fails if the writer has started to wait.
func (f *fakeBatcher) noLinger(t *testing.T) {
	t.Helper()
	select {
	case d := <-f.lingers:
		t.Fatalf("the writer lingered (%v)", d)
	default:
	}
}

func (f *fakeBatcher) lingered(t *testing.T, want time.Duration) {
	t.Helper()
	select {
	case d := <-f.lingers:
		if d != want {
			t.Fatalf("lingered %v, want %v", d, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not linger")
	}
}

// A decision made while the store is idle is committed at once, however
// large the batches before the pause were; and so is a decision after a
// transaction of one (writes come one at a time).
func TestBatcherDoesNotLingerWhenIdle(t *testing.T) {
	const linger = 2 * time.Millisecond
	f := startBatcher(t, Batching{Max: 256, Linger: linger})
	f.send(0)
	f.committed(t, []int{0}, 1, 2, 3, 4) // the first write of all; a burst queues meanwhile
	f.committed(t, []int{1, 2, 3, 4})
	f.noLinger(t)

	f.advance(linger) // idle as long as the linger
	f.send(5)
	f.committed(t, []int{5})
	f.noLinger(t)

	f.advance(time.Microsecond) // busy, but the last transaction held one write
	f.send(6)
	f.committed(t, []int{6})
	f.noLinger(t)
}

// While writes queue, a batch smaller than the previous one waits for
// more: until it is as large, or the linger passes.
func TestBatcherLingersWhileQueuing(t *testing.T) {
	const linger = 2 * time.Millisecond
	f := startBatcher(t, Batching{Max: 256, Linger: linger})
	f.send(0)
	f.committed(t, []int{0}, 1, 2, 3)
	f.committed(t, []int{1, 2, 3})

	f.advance(100 * time.Microsecond)
	f.send(4)
	f.lingered(t, linger)
	f.send(5, 6)
	f.committed(t, []int{4, 5, 6}) // as large as the one before: no need to wait for the timer

	f.send(7)
	f.lingered(t, linger)
	f.expire <- time.Time{} // the linger passes
	f.committed(t, []int{7})

	f.send(8) // the last transaction held one: no wait
	f.committed(t, []int{8})
	f.noLinger(t)
}

// A batch waiting for more is committed when the writer is closed.
func TestBatcherCommitsWhenClosedWhileLingering(t *testing.T) {
	f := startBatcher(t, Batching{Max: 256, Linger: time.Hour})
	f.send(0)
	f.committed(t, []int{0}, 1, 2)
	f.committed(t, []int{1, 2})
	f.send(3)
	f.lingered(t, time.Hour)
	f.close()
	f.committed(t, []int{3})
	<-f.done
}
