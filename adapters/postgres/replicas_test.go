package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
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

// The control experiment: without the advisory lock, two replicas that read
// the cooldown before either writes both pass. It shows the lock is what
// makes the test above pass, and that the race is real.
func TestWithoutTheLockTwoReplicasBothPass(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	a, b := openClosing(t, url), openClosing(t, url)
	a.skipKeyLock, b.skipKeyLock = true, true
	key := newKey("main")
	var read sync.WaitGroup // both have read the cooldown
	read.Add(2)
	decide := func(c tollgate.Cooldown) (tollgate.Record, error) {
		read.Done()
		read.Wait()
		return acceptUnlessCooling(time.Now())(c)
	}
	var wg sync.WaitGroup
	recs := make([]tollgate.Record, 2)
	errs := make([]error, 2)
	for i, s := range []*Store{a, b} {
		wg.Go(func() { recs[i], errs[i] = s.Decide(t.Context(), key, decide) })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if recs[i].Decision.Status != tollgate.Accepted {
			t.Fatalf("replica %d refused: without the lock both should have read no cooldown", i)
		}
	}

	// With the lock, the same choreography cannot happen: the second
	// replica waits in pg_advisory_xact_lock until the first commits, so
	// its decide runs after, and refuses.
	a.skipKeyLock, b.skipKeyLock = false, false
	key = newKey("dev")
	first := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
			close(first)
			<-release
			return acceptUnlessCooling(time.Now())(c)
		})
		done <- err
	}()
	<-first
	secondRan := make(chan tollgate.Cooldown, 1)
	secondDone := make(chan error, 1)
	go func() {
		rec, err := b.Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
			secondRan <- c
			return acceptUnlessCooling(time.Now())(c)
		})
		if err == nil && rec.Decision.Status != tollgate.Refused {
			err = errors.New("the second replica accepted")
		}
		secondDone <- err
	}()
	select {
	case <-secondRan:
		t.Fatal("the second replica decided while the first held the key")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := <-secondRan; c.LastAcceptedAt.IsZero() {
		t.Fatal("the second replica did not see the first one's acceptance")
	}
	if err := <-secondDone; err != nil {
		t.Fatal(err)
	}
}

// A caller that gives up while waiting for a key held by another replica
// leaves no query behind on the server: the wait is canceled there too.
func TestCanceledWaitLeavesNothingWaiting(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	a, b := openClosing(t, url), openClosing(t, url)
	key := newKey("main")
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
			close(holding)
			<-release
			return acceptUnlessCooling(time.Now())(c)
		})
		done <- err
	}()
	<-holding
	defer func() {
		close(release)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := b.Decide(ctx, key, acceptUnlessCooling(time.Now()))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting Decide: %v, want context.DeadlineExceeded", err)
	}
	waiting := -1
	start := time.Now()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := b.pool.QueryRow(t.Context(),
			`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			t.Logf("no wait left %v after the caller gave up", time.Since(start))
			return
		}
	}
	t.Fatalf("%d advisory lock waits left on the server after the caller gave up", waiting)
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
	if n := s.keys.Len(); n != 0 {
		t.Fatalf("%d key queues left after every Decide returned, want 0", n)
	}
	if all := listAll(t, s); len(all) != 23 {
		t.Fatalf("%d records, want 23", len(all))
	}
}
