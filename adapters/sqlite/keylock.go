package sqlite

import (
	"context"
	"sync"

	"github.com/tollgate/tollgate"
)

// keyLocks serialises Decide calls per cooldown key while letting different
// keys run in parallel. Entries are reference counted so that the map holds
// only the keys in use, not every key ever seen.
//
// Written by hand: the standard library has no keyed lock, and a lock a
// waiting request can give up on when its context ends (a channel, not a
// sync.Mutex) is what a server needs; the libraries that do this are small
// and less kept than these thirty lines.
type keyLocks struct {
	mu    sync.Mutex
	locks map[tollgate.CooldownKey]*keyLock
}

type keyLock struct {
	held chan struct{} // a token in the channel: locked
	refs int           // holders and waiters; guarded by keyLocks.mu
}

func newKeyLocks() *keyLocks {
	return &keyLocks{locks: make(map[tollgate.CooldownKey]*keyLock)}
}

// lock waits until key is free, or ctx ends, and returns the function that
// frees it again. That function must be called exactly once.
func (k *keyLocks) lock(ctx context.Context, key tollgate.CooldownKey) (unlock func(), err error) {
	k.mu.Lock()
	l, ok := k.locks[key]
	if !ok {
		l = &keyLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.held <- struct{}{}:
		return func() {
			<-l.held
			k.release(key, l)
		}, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *keyLocks) release(key tollgate.CooldownKey, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}

// len reports how many keys are locked or waited for.
func (k *keyLocks) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}
