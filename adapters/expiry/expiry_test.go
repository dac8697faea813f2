package expiry

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

// clock is the worker's now: each call waits for the test to give the
// time of that round, so that the test knows where the worker is without
// sleeping: when a time is taken, the round before it is over.
type clock struct {
	ctx   context.Context
	times chan time.Time
	last  time.Time
}

func (c *clock) now() time.Time {
	select {
	case c.last = <-c.times:
	case <-c.ctx.Done():
	}
	return c.last
}

// flaky fails the first ExpireDue, then lets the store answer.
type flaky struct {
	tollgate.ControlStore
	mu     sync.Mutex
	failed bool
}

func (f *flaky) ExpireDue(ctx context.Context, at time.Time) ([]tollgate.Control, error) {
	f.mu.Lock()
	first := !f.failed
	f.failed = true
	f.mu.Unlock()
	if first {
		return nil, tollgate.Errorf(tollgate.EUnavailable, "decision store is down")
	}
	return f.ControlStore.ExpireDue(ctx, at)
}

// syncBuffer is a log the worker writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var t0 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func control(kind tollgate.ControlKind, state tollgate.ControlState, expires time.Time) tollgate.Control {
	return tollgate.Control{
		ID: uuid.Must(uuid.NewV7()).String(), Kind: kind, State: state, Reason: "test", CreatedBy: "ops",
		CreatedAt: t0.Add(-time.Hour), ExpiresAt: expires,
		History: []tollgate.ControlEvent{{At: t0.Add(-time.Hour), By: "ops", Action: tollgate.ActionCreate, To: state}},
	}
}

// worker runs Run on store until the test ends, and returns its clock,
// the controls it expired, in order, and its log.
func worker(t *testing.T, store tollgate.ControlStore) (*clock, <-chan tollgate.Control, *syncBuffer) {
	ctx, cancel := context.WithCancel(t.Context())
	c := &clock{ctx: ctx, times: make(chan time.Time)}
	expired := make(chan tollgate.Control, 16)
	log := &syncBuffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, store, time.Millisecond, c.now, slog.New(slog.NewTextHandler(log, nil)), func(c tollgate.Control) { expired <- c })
	}()
	t.Cleanup(func() {
		cancel()
		<-done // Run returns once ctx ends
	})
	return c, expired, log
}

func open(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// next waits for the worker's next expiry, or fails after a minute:
// a guard against a hung worker, not a measure of speed.
func next(t *testing.T, expired <-chan tollgate.Control) tollgate.Control {
	t.Helper()
	select {
	case c := <-expired:
		return c
	case <-time.After(time.Minute):
		t.Fatal("the worker expired nothing")
		return tollgate.Control{}
	}
}

func assertNone(t *testing.T, expired <-chan tollgate.Control, when string) {
	t.Helper()
	select {
	case c := <-expired:
		t.Fatalf("%s: the worker expired %s %s", when, c.Kind, c.ID)
	default:
	}
}

func TestRunExpiresAtExpiry(t *testing.T) {
	store := open(t, t.TempDir())
	t.Cleanup(func() { store.Close() }) // after the worker's cleanup: it runs first
	freeze := control(tollgate.KindFreeze, tollgate.StateActive, t0)
	waiver := control(tollgate.KindException, tollgate.StateApproved, t0.Add(time.Hour))
	for _, c := range []tollgate.Control{freeze, waiver} {
		if err := store.CreateControl(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	clk, expired, log := worker(t, store)

	// Before the freeze's expiry, and at it.
	clk.times <- t0.Add(-time.Nanosecond)
	clk.times <- t0 // taken: the round before is over, and expired nothing
	assertNone(t, expired, "a nanosecond before the expiry")
	if got := next(t, expired); got.ID != freeze.ID || got.State != tollgate.StateExpired {
		t.Fatalf("expired %s in state %s, want the freeze %s, expired", got.ID, got.State, freeze.ID)
	}
	// Later rounds do not expire it again, nor the waiver before its time.
	clk.times <- t0.Add(time.Minute)
	clk.times <- t0.Add(2 * time.Minute)
	assertNone(t, expired, "before the waiver's expiry")
	clk.times <- t0.Add(time.Hour)
	if got := next(t, expired); got.ID != waiver.ID {
		t.Fatalf("expired %s, want the waiver %s", got.ID, waiver.ID)
	}
	clk.times <- t0.Add(2 * time.Hour) // the waiver's round is over: its log is written

	for _, c := range []tollgate.Control{freeze, waiver} {
		if line := "kind=" + string(c.Kind) + " id=" + c.ID; !strings.Contains(log.String(), line) {
			t.Errorf("log has no %q:\n%s", line, log.String())
		}
		got, err := store.Control(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		last := got.History[len(got.History)-1]
		if got.State != tollgate.StateExpired || last.By != tollgate.WorkerIdentity || last.Action != tollgate.ActionExpire {
			t.Fatalf("%s after the worker: state %s, last event %+v; want expired by %s", c.ID, got.State, last, tollgate.WorkerIdentity)
		}
	}
}

// The first round runs at start, so a control that fell due while the
// server was down expires as soon as it is back; a failed round is logged
// and the next one expires it.
func TestRunAfterRestartAndAfterAnError(t *testing.T) {
	dir := t.TempDir()
	store := open(t, dir)
	due := control(tollgate.KindIncident, tollgate.StateActive, t0)
	if err := store.CreateControl(t.Context(), due); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store = open(t, dir) // a restart
	t.Cleanup(func() { store.Close() })

	clk, expired, log := worker(t, &flaky{ControlStore: store})
	clk.times <- t0.Add(time.Hour) // fails
	clk.times <- t0.Add(time.Hour) // taken: the failed round is over
	if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), "decision store is down") {
		t.Fatalf("the failed round was not logged as an error:\n%s", log.String())
	}
	if got := next(t, expired); got.ID != due.ID {
		t.Fatalf("expired %s, want the incident %s", got.ID, due.ID)
	}
}
