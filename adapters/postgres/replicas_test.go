package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// Two replicas (two Stores, two pools) on one database, 30 requests for one
// key split across them at once: exactly one passes the cooldown, every
// refusal saw that one's acceptance, and the history holds all 30, once.
func TestTwoReplicasOneAccepted(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	replicas := []*Store{openClosing(t, url), openClosing(t, url)}
	const n = 30
	for round := range 5 {
		key := newKey(fmt.Sprintf("release/%d", round))
		type result struct {
			rec  tollgate.Record
			seen tollgate.Cooldown
			err  error
		}
		results := make([]result, n)
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-ready
				r := &results[i]
				r.rec, r.err = replicas[i%2].Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
					r.seen = c
					return acceptUnlessCooling(time.Now())(c)
				})
			})
		}
		close(ready)
		wg.Wait()

		var accepted []tollgate.Record
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("round %d: Decide %d on replica %d: %v", round, i, i%2, r.err)
			}
			if r.rec.Decision.Status == tollgate.Accepted {
				accepted = append(accepted, r.rec)
			}
		}
		if len(accepted) != 1 {
			t.Fatalf("round %d: %d of %d simultaneous decisions on two replicas passed the cooldown, want exactly 1", round, len(accepted), n)
		}
		for i, r := range results {
			if r.rec.Decision.Status == tollgate.Refused && !r.seen.LastAcceptedAt.Equal(accepted[0].Decision.EvaluatedAt) {
				t.Fatalf("round %d: refused decision %d saw cooldown %v, want the accepted one's %v", round, i, r.seen.LastAcceptedAt, accepted[0].Decision.EvaluatedAt)
			}
		}
		for _, r := range replicas {
			cd, err := r.Cooldown(t.Context(), *key)
			if err != nil || !cd.LastAcceptedAt.Equal(accepted[0].Decision.EvaluatedAt) {
				t.Fatalf("round %d: Cooldown = %v, %v; want %v on both replicas", round, cd, err, accepted[0].Decision.EvaluatedAt)
			}
		}
	}
	// Every decision once, whichever replica lists.
	for i, r := range replicas {
		all := listAll(t, r)
		seen := map[string]int{}
		for _, rec := range all {
			seen[rec.Decision.ID]++
		}
		if len(all) != 5*n || len(seen) != 5*n {
			t.Fatalf("replica %d lists %d records (%d distinct), want %d, each once", i, len(all), len(seen), 5*n)
		}
	}
}

// The control experiment: without the compare-and-set, two replicas that
// read the cooldown before either writes both pass. It shows the
// compare-and-set is what makes the test above pass, and that the race is
// real. With it, the same choreography ends with one acceptance: the
// replica that commits second finds the cooldown moved, writes nothing,
// reads again, and refuses.
func TestWithoutTheCompareAndSetTwoReplicasBothPass(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	a, b := openClosing(t, url), openClosing(t, url)
	race := func(branch string) (recs []tollgate.Record, calls int32) {
		t.Helper()
		key := newKey(branch)
		var read sync.WaitGroup // both have read the cooldown
		read.Add(2)
		var n atomic.Int32
		decide := func(c tollgate.Cooldown) (tollgate.Record, error) {
			if n.Add(1) <= 2 {
				read.Done()
				read.Wait()
			}
			return acceptUnlessCooling(time.Now())(c)
		}
		var wg sync.WaitGroup
		recs = make([]tollgate.Record, 2)
		errs := make([]error, 2)
		for i, s := range []*Store{a, b} {
			wg.Go(func() { recs[i], errs[i] = s.Decide(t.Context(), key, decide) })
		}
		wg.Wait()
		for i := range 2 {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
		}
		return recs, n.Load()
	}

	a.skipKeyLock, b.skipKeyLock = true, true
	recs, _ := race("main")
	for i, rec := range recs {
		if rec.Decision.Status != tollgate.Accepted {
			t.Fatalf("replica %d refused: without the compare-and-set both should have read no cooldown", i)
		}
	}

	a.skipKeyLock, b.skipKeyLock = false, false
	recs, calls := race("dev")
	var accepted, refused []tollgate.Record
	for _, rec := range recs {
		if rec.Decision.Status == tollgate.Accepted {
			accepted = append(accepted, rec)
		} else {
			refused = append(refused, rec)
		}
	}
	if len(accepted) != 1 || len(refused) != 1 {
		t.Fatalf("with the compare-and-set: %d accepted, %d refused; want 1 and 1", len(accepted), len(refused))
	}
	if calls != 3 {
		t.Errorf("decide ran %d times, want 3: twice at once, then again for the replica whose cooldown moved", calls)
	}
	if seen := refused[0].Context.Cooldown.LastAcceptedAt; !seen.Equal(accepted[0].Decision.EvaluatedAt) {
		t.Errorf("the refusal saw cooldown %v, want the acceptance's %v", seen, accepted[0].Decision.EvaluatedAt)
	}
	if all := listAll(t, a); len(all) != 4 {
		t.Fatalf("%d records after two races of two, want 4: the attempt whose cooldown moved must leave nothing", len(all))
	}
	storetest.VerifyLedger(t, a)
	cd, err := b.Cooldown(t.Context(), *newKey("dev"))
	if err != nil || !cd.LastAcceptedAt.Equal(accepted[0].Decision.EvaluatedAt) {
		t.Fatalf("Cooldown = %v, %v; want the accepted decision's %v", cd, err, accepted[0].Decision.EvaluatedAt)
	}
}

// A burst of requests for one key queues in the process, holding one pooled
// connection between them: other keys, the writer and reads still get one.
func TestBurstOnOneKeyLeavesConnections(t *testing.T) {
	s := openClosing(t, pgtest.Shared(t).NewDatabase(t), WithMaxConns(3))
	hot := newKey("hot")
	holding, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := s.Decide(t.Context(), hot, func(c tollgate.Cooldown) (tollgate.Record, error) {
			close(holding)
			<-release
			return acceptUnlessCooling(time.Now())(c)
		}); err != nil {
			t.Error(err)
		}
	})
	<-holding
	for range 20 {
		wg.Go(func() {
			if _, err := s.Decide(t.Context(), hot, acceptUnlessCooling(time.Now())); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // let the burst queue up

	// Without the queue in the process, these wait until the burst is over.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.Decide(ctx, newKey("cold"), acceptUnlessCooling(time.Now())); err != nil {
		t.Errorf("another key during the burst: %v", err)
	}
	if _, err := s.Decide(ctx, nil, fixed(record(tollgate.Refused, time.Now()))); err != nil {
		t.Errorf("a decision without a key during the burst: %v", err)
	}
	if _, err := s.Decisions(ctx, tollgate.DecisionFilter{}); err != nil {
		t.Errorf("reading the history during the burst: %v", err)
	}
	close(release)
	wg.Wait()
	if n := s.LockedKeys(); n != 0 {
		t.Fatalf("%d key queues left after every Decide returned, want 0", n)
	}
	if all := listAll(t, s); len(all) != 23 {
		t.Fatalf("%d records, want 23", len(all))
	}
}

// A replica whose key's cooldown moves before every one of its writes
// (another replica accepting each time) gives up after storekit.MaxAttempts as
// unavailable, having recorded nothing: it fails closed, not open.
func TestCooldownMovingEveryTimeFailsClosed(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	a, b := openClosing(t, url), openClosing(t, url)
	key := newKey("main")
	var attempts int
	var mine []string
	_, err := a.Decide(t.Context(), key, func(tollgate.Cooldown) (tollgate.Record, error) {
		attempts++
		// Another replica accepts for the key meanwhile, every time.
		if _, err := b.Decide(t.Context(), key, fixed(record(tollgate.Accepted, time.Now()))); err != nil {
			return tollgate.Record{}, err
		}
		rec := record(tollgate.Accepted, time.Now())
		mine = append(mine, rec.Decision.ID)
		return rec, nil
	})
	assertCode(t, "Decide whose cooldown always moved", err, tollgate.EUnavailable)
	if attempts != storekit.MaxAttempts {
		t.Errorf("decided %d times, want %d", attempts, storekit.MaxAttempts)
	}
	for _, id := range mine {
		if _, err := a.Decision(t.Context(), id); tollgate.ErrorCode(err) != tollgate.ENotFound {
			t.Fatalf("an acceptance whose cooldown moved: %v, want not found", err)
		}
	}
	if all := listAll(t, a); len(all) != storekit.MaxAttempts {
		t.Fatalf("%d records, want the other replica's %d", len(all), storekit.MaxAttempts)
	}
	storetest.VerifyLedger(t, a)
}

// A Decide given up while its acceptance waits in the writer (the
// ledger's head row locked elsewhere) keeps its key locked until its write
// settles.
func TestCancelWhileCommitting(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	storetest.CancelWhileCommitting(t, openClosing(t, url), func() func() {
		outside, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { outside.Close(context.Background()) })
		tx, err := outside.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(t.Context(), `SELECT FROM ledger WHERE id = 1 FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := tx.Rollback(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// Two replicas on one database share 200 jobs: each is claimed and handled
// by exactly one of them (FOR UPDATE SKIP LOCKED).
func TestJobReplicas(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	storetest.ClaimRace(t, 200, openClosing(t, url), openClosing(t, url))
}
