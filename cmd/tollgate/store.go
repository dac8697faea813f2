package main

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tollgate/tollgate"
)

// lateStore stands for a store that is still connecting (PostgreSQL that
// was unreachable at start): until set, every call fails with EUnavailable,
// so evaluate answers 503 and /readyz says not ready — never an accepted
// decision without its record.
type lateStore struct {
	store     atomic.Pointer[tollgate.DecisionStore]
	closeOnce sync.Once
}

var _ tollgate.DecisionStore = (*lateStore)(nil)

func (l *lateStore) set(s tollgate.DecisionStore) { l.store.Store(&s) }

func (l *lateStore) get() (tollgate.DecisionStore, error) {
	if s := l.store.Load(); s != nil {
		return *s, nil
	}
	return nil, tollgate.Errorf(tollgate.EUnavailable, "the decision store is not connected yet")
}

func (l *lateStore) Decide(ctx context.Context, key *tollgate.CooldownKey, decide func(tollgate.Cooldown) (tollgate.Record, error)) (tollgate.Record, error) {
	s, err := l.get()
	if err != nil {
		return tollgate.Record{}, err
	}
	return s.Decide(ctx, key, decide)
}

func (l *lateStore) Cooldown(ctx context.Context, key tollgate.CooldownKey) (tollgate.Cooldown, error) {
	s, err := l.get()
	if err != nil {
		return tollgate.Cooldown{}, err
	}
	return s.Cooldown(ctx, key)
}

func (l *lateStore) Decision(ctx context.Context, id string) (tollgate.Record, error) {
	s, err := l.get()
	if err != nil {
		return tollgate.Record{}, err
	}
	return s.Decision(ctx, id)
}

func (l *lateStore) Decisions(ctx context.Context, f tollgate.DecisionFilter) (tollgate.DecisionPage, error) {
	s, err := l.get()
	if err != nil {
		return tollgate.DecisionPage{}, err
	}
	return s.Decisions(ctx, f)
}

func (l *lateStore) Ping(ctx context.Context) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

func (l *lateStore) Close() error {
	s, err := l.get()
	if err != nil {
		return nil // never connected: nothing to flush
	}
	var closeErr error
	l.closeOnce.Do(func() { closeErr = s.Close() })
	return closeErr
}
