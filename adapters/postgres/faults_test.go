package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
)

// detectWithin bounds how long a request may take to fail when the database
// is lost: the statement timeout of these tests (1 s), the client's grace
// beyond it and pgx's cancel delay, with room for a slow machine.
const detectWithin = 10 * time.Second

// The database goes away while the store serves — killed (a crash), stopped
// (an administrator's fast shutdown), frozen (a hung machine or a network
// partition: connections stay open, nothing answers). Every Decide fails
// closed, as unavailable, within a bounded time, and Ping fails; when the
// database is back, the same store serves again without being reopened.
func TestDatabaseLostWhileServing(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	s := openClosing(t, url, WithStatementTimeout(time.Second))

	for _, fault := range []struct {
		name         string
		break_, heal func(testing.TB)
	}{
		{"killed", srv.Kill, srv.Restart},
		{"stopped", srv.Stop, srv.Restart},
		{"frozen", srv.Freeze, srv.Thaw},
	} {
		t.Run(fault.name, func(t *testing.T) {
			key := newKey(fault.name)
			if _, err := s.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now()))); err != nil {
				t.Fatalf("before the fault: %v", err)
			}

			fault.break_(t)
			healed := false
			defer func() {
				if !healed {
					fault.heal(t)
				}
			}()
			var failed []tollgate.Record
			for _, k := range []*tollgate.CooldownKey{nil, key} {
				rec := record(tollgate.Accepted, time.Now())
				start := time.Now()
				got, err := s.Decide(t.Context(), k, fixed(rec))
				took := time.Since(start)
				assertCode(t, "Decide with the database "+fault.name, err, tollgate.EUnavailable)
				if got.Decision.ID != "" {
					t.Fatalf("Decide returned decision %s along with its error", got.Decision.ID)
				}
				if took > detectWithin {
					t.Fatalf("Decide (key %v) took %s to fail, want under %s", k, took, detectWithin)
				}
				t.Logf("Decide (key %v) failed after %s: %v", k, took.Round(time.Millisecond), err)
				failed = append(failed, rec)
			}
			start := time.Now()
			if err := s.Ping(t.Context()); err == nil {
				t.Fatal("Ping passed with the database " + fault.name)
			} else if took := time.Since(start); took > detectWithin {
				t.Fatalf("Ping took %s to fail", took)
			}

			fault.heal(t)
			healed = true
			start = time.Now()
			rec := record(tollgate.Accepted, time.Now())
			var err error
			for attempt := 1; ; attempt++ {
				if _, err = s.Decide(t.Context(), key, fixed(rec)); err == nil {
					t.Logf("serving again %s after the database came back (attempt %d)", time.Since(start).Round(time.Millisecond), attempt)
					break
				}
				if time.Since(start) > 15*time.Second {
					t.Fatalf("still failing %s after the database came back: %v", time.Since(start), err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := s.Ping(t.Context()); err != nil {
				t.Fatalf("Ping after recovery: %v", err)
			}

			// The failed decisions were not recorded, unless a frozen server
			// went on to commit one it had received when it was thawed:
			// then whole, with its cooldown.
			for _, f := range failed {
				got, err := s.Decision(t.Context(), f.Decision.ID)
				switch {
				case tollgate.ErrorCode(err) == tollgate.ENotFound:
				case err == nil && fault.name == "frozen":
					t.Logf("decision %s, answered unavailable, was committed after the thaw", got.Decision.ID)
				default:
					t.Fatalf("failed decision %s: %v, want not found", f.Decision.ID, err)
				}
			}
			cd, err := s.Cooldown(t.Context(), *key)
			if err != nil {
				t.Fatal(err)
			}
			if !cd.LastAcceptedAt.Equal(rec.Decision.EvaluatedAt) {
				t.Fatalf("cooldown %v, want the one accepted after recovery (%v)", cd.LastAcceptedAt, rec.Decision.EvaluatedAt)
			}
		})
	}
}

// The database dies in the middle of a keyed Decide, between the read and
// the write: nothing of it is recorded, no cooldown starts, and the caller
// hears "unavailable", never "accepted".
func TestKilledMidDecision(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	s := openClosing(t, url, WithStatementTimeout(time.Second))
	key := newKey("main")
	rec := record(tollgate.Accepted, time.Now())
	_, err := s.Decide(t.Context(), key, func(tollgate.Cooldown) (tollgate.Record, error) {
		srv.Kill(t)
		return rec, nil
	})
	assertCode(t, "Decide whose database died", err, tollgate.EUnavailable)
	srv.Restart(t)

	other := openClosing(t, url)
	if _, err := other.Decision(t.Context(), rec.Decision.ID); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("the interrupted decision: %v, want not found", err)
	}
	if cd, err := other.Cooldown(t.Context(), *key); err != nil || !cd.LastAcceptedAt.IsZero() {
		t.Fatalf("cooldown after the interrupted decision: %v, %v; want none", cd, err)
	}
}

// The database is killed while decisions pour in through group commit: each
// one acknowledged is there after the restart, and each one that failed
// failed as unavailable.
func TestKilledUnderLoadLosesNoAcknowledgedDecision(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	s := openClosing(t, url, WithStatementTimeout(time.Second))

	const workers = 16
	var (
		mu    sync.Mutex
		acked []string
		nfail int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var key *tollgate.CooldownKey
				if w%4 == 0 {
					key = newKey("w" + string(rune('a'+w)))
				}
				rec := record(tollgate.Refused, time.Now())
				_, err := s.Decide(context.Background(), key, fixed(rec))
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, rec.Decision.ID)
				case tollgate.ErrorCode(err) == tollgate.EUnavailable:
					nfail++
				default:
					t.Errorf("Decide: %v, want success or an %s error", err, tollgate.EUnavailable)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	srv.Kill(t)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	srv.Restart(t)

	got := map[string]bool{}
	for _, r := range listAll(t, s) {
		got[r.Decision.ID] = true
	}
	for _, id := range acked {
		if !got[id] {
			t.Fatalf("decision %s was acknowledged before the crash but is gone", id)
		}
	}
	if nfail == 0 {
		t.Fatal("no Decide failed while the database was dead")
	}
	t.Logf("%d decisions acknowledged before the crash, all there after it; %d failed as unavailable; %d in the history", len(acked), nfail, len(got))
}

// A statement that runs past the statement timeout fails, and the request
// with it, as unavailable: one slow query, or a lock held elsewhere, cannot
// hold the gate.
func TestStatementTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	url := pgtest.Shared(t).NewDatabase(t)
	s := openClosing(t, url, WithStatementTimeout(timeout))
	outside, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close(context.Background())

	// Bounded by the timeouts (with a second for a busy machine), well
	// before the 5 s the slow query would take.
	within := func(t *testing.T, start time.Time) {
		t.Helper()
		if took := time.Since(start); took > timeout+grace+time.Second {
			t.Fatalf("failed after %s, want within the timeout (%s) and the grace (%s)", took, timeout, grace)
		}
	}
	assertTimeout := func(t *testing.T, what string, err error) {
		t.Helper()
		assertCode(t, what, err, tollgate.EUnavailable)
		if !strings.Contains(err.Error(), "statement timeout") {
			t.Fatalf("%s: %v, want an error naming the statement timeout", what, err)
		}
	}

	t.Run("every connection has it", func(t *testing.T) {
		conns := make([]*pgxpool.Conn, 3)
		for i := range conns {
			c, err := s.pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release()
			conns[i] = c
		}
		for i, c := range conns {
			for name, want := range map[string]string{
				"statement_timeout":                   "300ms",
				"idle_in_transaction_session_timeout": "300ms",
				"application_name":                    "tollgate",
			} {
				var got string
				if err := c.QueryRow(t.Context(), "SELECT current_setting($1)", name).Scan(&got); err != nil || got != want {
					t.Errorf("connection %d: %s = %q, %v; want %q", i, name, got, err, want)
				}
			}
		}
	})

	t.Run("slow query", func(t *testing.T) {
		start := time.Now()
		_, err := s.pool.Exec(t.Context(), "SELECT pg_sleep(5)")
		assertTimeout(t, "pg_sleep(5)", s.Error(t.Context(), "sleep", err))
		within(t, start)
	})

	// A replica of the previous protocol holds the key's advisory lock
	// from its read to its commit: an acceptance waits for it in the
	// writer's transaction, no longer than the timeout, and records nothing.
	t.Run("key held elsewhere", func(t *testing.T) {
		key := newKey("main")
		if _, err := outside.Exec(t.Context(), "SELECT pg_advisory_lock($1)", lockID(*key)); err != nil {
			t.Fatal(err)
		}
		defer outside.Exec(context.Background(), "SELECT pg_advisory_unlock_all()")
		rec := record(tollgate.Accepted, time.Now())
		start := time.Now()
		_, err := s.Decide(t.Context(), key, fixed(rec))
		assertTimeout(t, "Decide on a key held elsewhere", err)
		within(t, start)
		if _, err := s.Decision(t.Context(), rec.Decision.ID); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Fatalf("the timed-out decision: %v, want not found", err)
		}
	})

	t.Run("table locked", func(t *testing.T) {
		tx, err := outside.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(t.Context(), "LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		rec := record(tollgate.Refused, time.Now())
		start := time.Now()
		_, err = s.Decide(t.Context(), nil, fixed(rec))
		assertTimeout(t, "Decide on a locked table", err)
		within(t, start)
		_, err = s.Decisions(t.Context(), tollgate.DecisionFilter{})
		assertTimeout(t, "Decisions on a locked table", err)
		if err := tx.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Decision(t.Context(), rec.Decision.ID); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Fatalf("the timed-out decision: %v, want not found", err)
		}
		if _, err := s.Decide(t.Context(), nil, fixed(record(tollgate.Refused, time.Now()))); err != nil {
			t.Fatalf("after the lock is gone: %v", err)
		}
	})

	// A replica that stalls while deciding (here: a decide slower than the
	// timeout) holds nothing on the server: another replica decides for the
	// key meanwhile, and the stalled acceptance, when it comes, finds the
	// cooldown moved, records nothing and is decided again: refused.
	t.Run("stalled decide", func(t *testing.T) {
		other := openClosing(t, url)
		key := newKey("stalled")
		stalled := record(tollgate.Accepted, time.Now())
		read, decided := make(chan struct{}), make(chan struct{})
		var seen []tollgate.Cooldown
		type result struct {
			rec tollgate.Record
			err error
		}
		done := make(chan result, 1)
		go func() {
			rec, err := s.Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
				seen = append(seen, c)
				if len(seen) == 1 {
					close(read)
					<-decided
					time.Sleep(3 * timeout)
					return stalled, nil
				}
				return acceptUnlessCooling(time.Now())(c)
			})
			done <- result{rec, err}
		}()
		<-read // the stalled replica has read the cooldown: none
		first, err := other.Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
			defer close(decided)
			return acceptUnlessCooling(time.Now())(c)
		})
		if err != nil || first.Decision.Status != tollgate.Accepted {
			t.Fatalf("the other replica, during the stall: %v, %v; want accepted", first.Decision.Status, err)
		}
		r := <-done
		if r.err != nil || r.rec.Decision.Status != tollgate.Refused {
			t.Fatalf("the stalled replica: %v, %v; want refused once it decided again", r.rec.Decision.Status, r.err)
		}
		if len(seen) != 2 || !seen[1].LastAcceptedAt.Equal(first.Decision.EvaluatedAt) {
			t.Fatalf("the stalled replica decided with %v; want twice, the second time with the other's acceptance", seen)
		}
		if _, err := s.Decision(t.Context(), stalled.Decision.ID); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Fatalf("the stalled acceptance: %v, want not found", err)
		}
	})
}
