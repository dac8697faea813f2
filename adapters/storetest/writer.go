package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/internal/storekit"
)

// writer is what the stores say of their group-commit writer and key
// locks, for these tests.
type writer interface {
	tollgate.DecisionStore
	Stats() storekit.Stats
	LockedKeys() int
}

// GroupCommit checks that n concurrent Decides without a key share
// transactions, and all land, and that Decides for keys leave no key lock
// behind once they have returned.
func GroupCommit(t *testing.T, s tollgate.DecisionStore) {
	w := s.(writer)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var key *tollgate.CooldownKey
			if i%4 == 0 {
				key = &tollgate.CooldownKey{Project: "p", Pipeline: "d", Branch: []string{"a", "b", "c"}[i%3]}
			}
			if _, err := s.Decide(t.Context(), key, fixed(Record(tollgate.Refused, time.Now()))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if all := listAll(t, s, tollgate.DecisionFilter{}); len(all) != n {
		t.Fatalf("%d records, want %d", len(all), n)
	}
	st := w.Stats()
	if st.Written != n || st.Commits >= n {
		t.Fatalf("stats %+v: want %d written in fewer than %d commits", st, n, n)
	}
	t.Logf("%d decisions in %d commits", st.Written, st.Commits)
	if k := w.LockedKeys(); k != 0 {
		t.Fatalf("%d key locks left after every Decide returned, want 0", k)
	}
}

// CancelWhileCommitting checks that if the caller gives up while its
// acceptance waits for the database (block holds what the store's writer
// needs, until release), Decide returns at once, and the key stays locked
// in the process until the write is settled: the next Decide for the key
// sees the outcome, never a half-made state.
func CancelWhileCommitting(t *testing.T, s tollgate.DecisionStore, block func() (release func())) {
	w := s.(writer)
	release := block()
	key := &tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: "main"}
	first := Record(tollgate.Accepted, time.Now())
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Decide(ctx, key, fixed(first)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Decide while the store is blocked: %v, want context.DeadlineExceeded", err)
	}
	if w.LockedKeys() != 1 {
		t.Fatalf("%d keys locked after the canceled Decide, want 1: the key must stay locked until its write settles", w.LockedKeys())
	}

	second := make(chan tollgate.Cooldown, 1)
	secondDone := make(chan error, 1)
	go func() {
		_, err := s.Decide(t.Context(), key, func(c tollgate.Cooldown) (tollgate.Record, error) {
			second <- c
			return Record(tollgate.Refused, time.Now()), nil
		})
		secondDone <- err
	}()
	select {
	case <-second:
		t.Fatal("second Decide for the key ran while the first write was unsettled")
	case <-time.After(100 * time.Millisecond):
	}

	release()
	seen := <-second
	if err := <-secondDone; err != nil {
		t.Fatalf("second Decide: %v", err)
	}
	// The writer had the write before its caller gave up: it was
	// committed, whole, and the cooldown started.
	if _, err := s.Decision(t.Context(), first.Decision.ID); err != nil {
		t.Fatalf("the handed-over write: %v", err)
	}
	if !seen.LastAcceptedAt.Equal(first.Decision.EvaluatedAt) {
		t.Fatalf("second Decide saw cooldown %v, want %v", seen.LastAcceptedAt, first.Decision.EvaluatedAt)
	}
}
