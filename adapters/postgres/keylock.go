package postgres

import (
	"context"
	"sync"

	"github.com/tollgate/tollgate"
)

// keyLocks queues the keyed Decides of this process per cooldown key, before
// they take a connection, so that a burst of requests for one key holds one
// pooled connection waiting for the key's advisory lock, not every
// connection of the pool (which would leave none for other keys, the writer
// and reads). Exclusion across processes is the advisory lock's job; this
// only keeps the waiting in-process, where it is free and a request can give
// up on it when its context ends.
//
// The same thirty lines as adapters/sqlite's keyLocks, which are unexported
// there: the standard library has no keyed lock, and a context-aware one (a
// channel, not a sync.Mutex) is what a server needs.
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
