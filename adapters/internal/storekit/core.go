package storekit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate"
)

// Core is the decision store both stores are: every call of
// tollgate.DecisionStore, LedgerStore, ControlStore, TokenStore, ScanStore
// and BundleStore, written once on a Dialect. A store embeds it, made by
// NewCore, adds the EPSS calls (their bulk load differs) and opens and
// closes its database.
//
// Every call runs between enter and leave: Close refuses new calls, waits
// for those under way (a keyed Decide may still hand its record to the
// writer), stops the group-commit writer once it has committed every
// record handed over, and only then closes the database.
type Core struct {
	d    Dialect
	keys *KeyLocks // this process's queue per cooldown key: one Decide per key in flight here

	// mu guards closed, writesClosed and every send on writes, so that
	// Close can close the channel without a send racing it; inflight
	// counts the calls under way.
	mu           sync.RWMutex
	closed       bool
	writesClosed bool
	inflight     sync.WaitGroup
	writes       chan *Write // nil: each record committed alone, from its caller's goroutine
	writerDone   chan struct{}

	closeOnce sync.Once
	closeErr  error

	cooldowns *cooldownCache // nil: every cooldown read goes to the table

	commits, written, cooldownReloads atomic.Int64 // see Stats
	legacyChained                     int64        // see LegacyChained
}

// Dialect is what a store gives Core: where its reads and writes run, what
// its SQL says differently, and its decision write path.
type Dialect struct {
	// Where names the store in messages ("postgres host:5432/db", a
	// SQLite file's path); never a password.
	Where string

	// Read runs fn outside any write: on SQLite's read pool, on
	// PostgreSQL's pool under the statement timeout.
	Read func(ctx context.Context, fn func(context.Context, Querier) error) error
	// Write runs fn in one write transaction, committed if fn returns
	// nil: on SQLite's writer connection (BEGIN IMMEDIATE, so that what fn
	// reads no other writer changes before it commits), on PostgreSQL in a
	// transaction of the pool.
	Write func(ctx context.Context, fn func(context.Context, Querier) error) error
	// WriteOne is Write for an fn that runs one statement, atomic by
	// itself: PostgreSQL runs it on the pool, sparing the round trips of
	// BEGIN and COMMIT; SQLite, as Write.
	WriteOne func(ctx context.Context, fn func(context.Context, Querier) error) error

	// Unique reports whether err violates one unique index: PostgreSQL
	// names it (index), SQLite names its columns ("tokens.name").
	Unique func(err error, index, columns string) bool
	// Refused reports whether err is the database refusing what it was
	// given (a constraint, a value it cannot store) rather than failing:
	// retrying will not help, and a group commit writes its other records
	// alone. code is the error's tollgate code, hint what to say of it.
	Refused func(err error) (code, hint string, refused bool)
	// Explain adds to the message of a failure what the dialect knows of
	// it (PostgreSQL: its statement timeout); "" for nothing.
	Explain func(err error) string

	// ForUpdate ends a SELECT whose rows the transaction changes next: "
	// FOR UPDATE" on PostgreSQL, where writers of several processes run
	// at once; "" on SQLite, whose write transaction holds the file's only
	// write lock from its BEGIN.
	ForUpdate string
	// SkipLocked follows ForUpdate where rows locked by another writer are
	// to be skipped, not waited for (" SKIP LOCKED" on PostgreSQL).
	SkipLocked string
	// LockIncidents, if not "", runs before an incident is created, in
	// its transaction, to order incident creations across processes.
	LockIncidents string
	// LockJobs, if not "", runs before a job is submitted, in its
	// transaction, to order submissions across processes (the bounds on
	// open jobs count what the one before committed).
	LockJobs string
	// EPSSList is the rows of the JSON array of strings given as its one
	// `?` argument (SQLite's json_each, PostgreSQL's
	// jsonb_array_elements_text).
	EPSSList string
	// SetHead sets the chain head to seq $1, the previous hash $2 and the
	// hash $3 (SQLite, which keeps no previous hash, writes ?1 and ?3).
	SetHead string

	// ReadCooldown reads the last acceptance of key (unix nanoseconds) and,
	// for CAS, the ID of the decision that made it (nil once it is
	// archived and pruned); ErrNoRows when the key has none. It is the
	// decision path's hottest read, which each store runs its fastest way
	// (a prepared statement, pgx's statement cache).
	ReadCooldown func(ctx context.Context, key tollgate.CooldownKey) (at int64, holder *string, err error)
	// Commit writes ws in one transaction, all of them or none, each
	// chained to the one before it (adapters/ledger); a write with CAS is
	// recorded only if its key's cooldown is still the one set by the
	// decision Expect, and is marked Moved, not written, otherwise. It
	// bounds its own time: it runs after its callers may have given up.
	Commit func(ws []*Write) error
	// CAS is whether an acceptance is written under a compare-and-set of
	// its cooldown (PostgreSQL, shared by several processes), or the key
	// lock of this process is enough (SQLite, one process per file).
	CAS bool
}

// Write is one decision on its way to the store, with its answer channel.
type Write struct {
	Prepared
	ctx  context.Context // the caller's: a write whose caller gave up before it started is dropped
	done chan error      // buffered: the writer never waits for a caller
	// CAS, for an acceptance, writes it only if its key's cooldown is
	// still the one set by the decision Expect (nil: none). Otherwise
	// nothing is written, and Moved is set.
	CAS    bool
	Expect *string
	Moved  bool
	// Seen is the cooldown of Key the decision read (unix nanoseconds; 0:
	// none) and SeenGen the load of the cooldown cache it came from (0:
	// read from the table), for RecheckCooldowns.
	Seen    int64
	SeenGen uint64
}

// NewWrite checks rec and encodes it, in the caller's goroutine so that
// the writer does nothing but SQL.
func NewWrite(ctx context.Context, rec tollgate.Record, key *tollgate.CooldownKey) (*Write, error) {
	p, err := Prepare(rec, key)
	if err != nil {
		return nil, err
	}
	return &Write{Prepared: p, ctx: ctx, done: make(chan error, 1)}, nil
}

// NewCore returns the store d implements. With a b.Max, a group-commit
// writer records decisions, up to b.Max in one transaction, lingering as
// b.Linger says; with 0, each decision is committed alone, from its
// caller's goroutine (to measure what group commit is worth), and a store
// that writes no decision (opened read-only) needs no writer.
func NewCore(d Dialect, b Batching) *Core {
	c := &Core{d: d, keys: NewKeyLocks()}
	if b.Max > 0 {
		c.writes = make(chan *Write, b.Max)
		c.writerDone = make(chan struct{})
		go func() {
			defer close(c.writerDone)
			newBatcher(c.writes, b, c.commit).run()
		}()
	}
	return c
}

// Stats counts the work of the store since it opened.
type Stats struct {
	Commits int64 // transactions committed
	Written int64 // decisions committed; Written/Commits is the mean batch
	// CooldownReloads counts the loads of the cooldown cache after the
	// first (CacheCooldowns): another connection wrote the file, or a
	// commit failed.
	CooldownReloads int64
	// CachedCooldowns is how many keys the cooldown cache holds; 0 when
	// there is none or it is off (more keys than it may hold).
	CachedCooldowns int
}

// Stats reports how much group commit is batching, for metrics.
func (c *Core) Stats() Stats {
	return Stats{Commits: c.commits.Load(), Written: c.written.Load(), CooldownReloads: c.cooldownReloads.Load(), CachedCooldowns: c.cooldowns.len()}
}

// LockedKeys is how many cooldown keys have a Decide in flight (or a
// write settling) in this process.
func (c *Core) LockedKeys() int { return c.keys.Len() }

// enter counts a call that Close must wait for, unless the store is
// closed; c.inflight.Done ends it.
func (c *Core) enter() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return c.errClosed()
	}
	c.inflight.Add(1)
	return nil
}

func (c *Core) errClosed() error {
	return tollgate.Errorf(tollgate.EUnavailable, "decision store %s is closed", c.d.Where)
}

// Close closes the store: it refuses new calls, lets those under way
// finish, commits every record handed over, stops the writer, then calls
// closeDB. Calling it again returns the first call's result.
func (c *Core) Close(closeDB func() error) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true // no new call
		c.mu.Unlock()
		c.inflight.Wait()
		if c.writes != nil {
			c.mu.Lock()
			c.writesClosed = true
			close(c.writes)
			c.mu.Unlock()
			<-c.writerDone
		}
		c.closeErr = closeDB()
	})
	return c.closeErr
}

// Error turns a failed database call into the error callers see: nil and
// a *tollgate.Error as they are, the caller's own context error as it is,
// then a store that is closed, then as the dialect classifies it (EInternal
// for a record the database refuses, EUnavailable for a database that
// fails).
func (c *Core) Error(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	var tErr *tollgate.Error
	switch {
	case errors.As(err, &tErr):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return c.errClosed()
	}
	return c.classify(what, err)
}

func (c *Core) classify(what string, err error) error {
	if code, hint, ok := c.d.Refused(err); ok {
		return tollgate.Errorf(code, "decision store %s: %s: %v%s", c.d.Where, what, err, hint)
	}
	return tollgate.Errorf(tollgate.EUnavailable, "decision store %s: %s: %v%s", c.d.Where, what, err, c.d.Explain(err))
}

// Run runs fn as a call of the store (Close waits for it), its failure as
// Error says: for a store's own calls.
func (c *Core) Run(ctx context.Context, what string, fn func() error) error {
	if err := c.enter(); err != nil {
		return err
	}
	defer c.inflight.Done()
	return c.Error(ctx, what, fn())
}

// read runs fn through the dialect's Read, as a call of the store.
func (c *Core) read(ctx context.Context, what string, fn func(context.Context, Querier) error) error {
	return c.Run(ctx, what, func() error { return c.d.Read(ctx, fn) })
}

// write runs fn through the dialect's Write, as a call of the store.
func (c *Core) write(ctx context.Context, what string, fn func(context.Context, Querier) error) error {
	return c.Run(ctx, what, func() error { return c.d.Write(ctx, fn) })
}

// writeOne runs fn through the dialect's WriteOne, as a call of the store.
func (c *Core) writeOne(ctx context.Context, what string, fn func(context.Context, Querier) error) error {
	return c.Run(ctx, what, func() error { return c.d.WriteOne(ctx, fn) })
}

// Ping implements tollgate.DecisionStore: it reads the decisions table,
// which needs the database up, reachable and migrated.
func (c *Core) Ping(ctx context.Context) error {
	return c.read(ctx, "ping", func(ctx context.Context, q Querier) error {
		var n int64
		return q.QueryRow(ctx, `SELECT count(*) FROM decisions WHERE 1 = 0`).Scan(&n)
	})
}

// Cooldown implements tollgate.DecisionStore: the committed state of key,
// without taking its lock.
func (c *Core) Cooldown(ctx context.Context, key tollgate.CooldownKey) (cd tollgate.Cooldown, err error) {
	err = c.Run(ctx, "read cooldown", func() (err error) {
		cd, _, _, err = c.readCooldown(ctx, key)
		return err
	})
	return cd, err
}

// readCooldown reads key's cooldown and the ID of the decision that set it
// (nil when the key has none, or one whose decision was archived and
// pruned: the compare-and-set matches either), from the cooldown cache if
// there is one (gen: the load it came from) or else from the table (gen 0).
func (c *Core) readCooldown(ctx context.Context, key tollgate.CooldownKey) (_ tollgate.Cooldown, holder *string, gen uint64, err error) {
	at, found, gen := c.cooldowns.get(key)
	if gen == 0 {
		at, holder, err = c.d.ReadCooldown(ctx, key)
		found = err == nil
		if errors.Is(err, ErrNoRows) {
			err = nil
		}
	}
	if !found || err != nil {
		return tollgate.Cooldown{}, nil, gen, err
	}
	return tollgate.Cooldown{LastAcceptedAt: time.Unix(0, at).UTC()}, holder, gen, nil
}
