package storekit

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/tollgate/tollgate"
)

// cooldownCache answers a keyed Decide's cooldown read from memory on a
// store that one process writes (SQLite: its package comment), sparing
// the decision path its hottest read (28–35 µs a request under load). It
// holds every row of the cooldowns table, loaded at open, and the
// group-commit writer moves an entry on once the transaction that moves
// the row has committed, before it answers: the next Decide for the key
// (queued on the key's lock) reads what the table holds.
//
// It is never ahead of the table (an entry moves only after its commit),
// but the table can get ahead of it: a commit that failed may still have
// landed, and another connection may have written the file (SQLite's
// PRAGMA data_version says so). The dialect's Commit calls
// RecheckCooldowns in each write transaction (where nothing else can
// write): after either, the cache is loaded again, and an acceptance
// decided on a cooldown the table no longer holds is not written but
// decided again (Write.Moved), as PostgreSQL's compare-and-set does.
//
// Bounded: past max entries it turns itself off, and the cooldown is read
// from the table as before (what `ledger verify` reads is the table in any
// case). A key of ~40 characters costs ~83 bytes, its text included
// (BenchmarkCooldownCache); a read, ~0.2–0.4 µs.
type cooldownCache struct {
	max   int
	stale atomic.Bool // a commit failed: the table may hold an acceptance the cache does not

	mu  sync.RWMutex
	m   map[string]int64 // cacheKey → last_accepted_at (unix ns); nil: off
	gen uint64           // how many times it was loaded: what a read saw is rechecked after a load
}

// cacheKey is key as one string, each part but the last preceded by its
// length, so that no two keys share one whatever their parts hold: one
// allocation a key in the map, rather than three.
func cacheKey(buf []byte, k tollgate.CooldownKey) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(k.Project)))
	buf = append(buf, k.Project...)
	buf = binary.AppendUvarint(buf, uint64(len(k.Pipeline)))
	buf = append(buf, k.Pipeline...)
	return append(buf, k.Branch...)
}

// get returns key's last acceptance, whether it has one, and the load of
// the cache it comes from; gen is 0 when the cache is off (read the table).
func (c *cooldownCache) get(k tollgate.CooldownKey) (at int64, found bool, gen uint64) {
	if c == nil {
		return 0, false, 0
	}
	var buf [128]byte
	key := cacheKey(buf[:0], k)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.m == nil {
		return 0, false, 0
	}
	at, found = c.m[string(key)] // no allocation: the compiler looks up with the bytes
	return at, found, c.gen
}

func (c *cooldownCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// committed moves on the entries of the acceptances ws just committed: a
// cooldown never moves back in time, as the table's upsert says.
func (c *cooldownCache) committed(ws []*Write) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		return
	}
	var buf [128]byte
	for _, w := range ws {
		if !w.Accept || w.Moved {
			continue
		}
		key := cacheKey(buf[:0], *w.Key)
		at, ok := c.m[string(key)]
		switch {
		case ok && at >= w.At:
		case !ok && len(c.m) >= c.max:
			c.m = nil // too many keys to hold: read the table from now on
			return
		default:
			c.m[string(key)] = w.At
		}
	}
}

// load fills the cache from the cooldowns table through q, or turns it off
// if the table holds more than max rows.
func (c *cooldownCache) load(ctx context.Context, q Querier) error {
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM cooldowns`).Scan(&n); err != nil {
		return err
	}
	m := map[string]int64(nil)
	if n <= c.max {
		m = make(map[string]int64, n)
		rows, err := q.Query(ctx, `SELECT project, pipeline, branch, last_accepted_at FROM cooldowns`)
		if err != nil {
			return err
		}
		defer rows.Close()
		var (
			buf []byte
			k   tollgate.CooldownKey
			at  int64
		)
		for rows.Next() {
			if err := rows.Scan(&k.Project, &k.Pipeline, &k.Branch, &at); err != nil {
				return err
			}
			buf = cacheKey(buf[:0], k)
			m[string(buf)] = at
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = m
	c.gen++
	return nil
}

// CacheCooldowns makes c answer the cooldown reads of keyed Decides from
// memory, holding at most max keys, loaded now through q: for a store that
// one process writes, whose dialect's Commit calls RecheckCooldowns in
// each of its transactions. Call it before the first Decide.
func (c *Core) CacheCooldowns(ctx context.Context, q Querier, max int) error {
	cache := &cooldownCache{max: max}
	if err := cache.load(ctx, q); err != nil {
		return err
	}
	c.cooldowns = cache
	return nil
}

// RecheckCooldowns is for the dialect's Commit of ws, in its write
// transaction q, before it writes them; changed says that another
// connection may have written the file since the last call. If it did, or
// a commit failed since (it may have landed all the same), the cache is
// loaded again from q. Then each acceptance of ws decided on a cooldown
// read from an earlier load is checked against the table, and marked
// Moved (not written, decided again) if the table holds another one.
func (c *Core) RecheckCooldowns(ctx context.Context, q Querier, ws []*Write, changed bool) error {
	cache := c.cooldowns
	if cache == nil {
		return nil
	}
	if changed || cache.stale.Load() {
		cache.stale.Store(false)
		if err := cache.load(ctx, q); err != nil {
			cache.stale.Store(true)
			return err
		}
		c.cooldownReloads.Add(1)
	}
	cache.mu.RLock()
	gen := cache.gen
	cache.mu.RUnlock()
	for _, w := range ws {
		if !w.Accept || w.SeenGen == 0 || w.SeenGen == gen {
			continue
		}
		var at int64
		err := q.QueryRow(ctx, `SELECT last_accepted_at FROM cooldowns WHERE project = ? AND pipeline = ? AND branch = ?`,
			w.Key.Project, w.Key.Pipeline, w.Key.Branch).Scan(&at)
		switch {
		case errors.Is(err, ErrNoRows):
			at = 0
		case err != nil:
			return err
		}
		w.Moved = at != w.Seen
	}
	return nil
}
