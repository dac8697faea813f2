package rego

import (
	"hash/maphash"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// flatCache is a topdown.VirtualCache that keeps one evaluation's rule
// results in flat slices reused from a pool. OPA's default cache builds a
// tree of hash maps per evaluation, which was a fifth of all allocations of
// a decision; a decision caches a few dozen rule values, which a linear scan
// finds as fast. Only the top frame is visible, as in OPA's own cache.
type flatCache struct {
	terms   []*ast.Term // arena holding the refs of all entries, back to back
	entries []cacheEntry
	frames  []int   // index in entries where each pushed frame starts
	base    *folded // the bundle's folded rules (see folded.visible)
}

type cacheEntry struct {
	start, end int       // the ref is terms[start:end]
	sig        uint64    // refSig of the ref
	value      *ast.Term // nil: the ref is known to be undefined
}

var _ topdown.VirtualCache = (*flatCache)(nil)

var flatCaches = sync.Pool{New: func() any { return &flatCache{frames: []int{0}} }}

func getFlatCache(base *folded) *flatCache {
	c := flatCaches.Get().(*flatCache)
	c.base = base
	return c
}

// release clears the cache, dropping every pointer into the evaluation so
// the pool does not keep its values alive, and returns it to the pool.
func (c *flatCache) release() {
	clear(c.terms)
	clear(c.entries)
	c.terms, c.entries, c.frames = c.terms[:0], c.entries[:0], append(c.frames[:0], 0)
	c.base = nil
	flatCaches.Put(c)
}

func (c *flatCache) Push() { c.frames = append(c.frames, len(c.entries)) }

func (c *flatCache) Pop() {
	top := c.frames[len(c.frames)-1]
	c.frames = c.frames[:len(c.frames)-1]
	if top < len(c.entries) {
		c.terms = c.terms[:c.entries[top].start]
	}
	c.entries = c.entries[:top]
}

func (c *flatCache) find(ref ast.Ref, sig uint64) int {
	for i := len(c.entries) - 1; i >= c.frames[len(c.frames)-1]; i-- {
		e := c.entries[i]
		if e.sig == sig && e.end-e.start == len(ref) && refEqual(c.terms[e.start:e.end], ref) {
			return i
		}
	}
	return -1
}

// refSig is a cheap signature of a ref: its length and a hash of its last
// term when that is a string, as rule names are. Entries whose signature
// differs are skipped without comparing terms, which was most of the cost
// of a lookup: a decision caches dozens of rules, read a hundred times.
func refSig(ref ast.Ref) uint64 {
	sig := uint64(len(ref))
	if len(ref) > 0 {
		if s, ok := ref[len(ref)-1].Value.(ast.String); ok {
			sig ^= maphash.String(sigSeed, string(s)) &^ 0xff
		}
	}
	return sig
}

var sigSeed = maphash.MakeSeed()

func refEqual(a, b []*ast.Term) bool {
	for i := len(a) - 1; i >= 0; i-- { // the last terms differ most often
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func (c *flatCache) Get(ref ast.Ref) (*ast.Term, bool) {
	sig := refSig(ref)
	if i := c.find(ref, sig); i >= 0 {
		return c.entries[i].value, c.entries[i].value == nil
	}
	if c.base.visible(len(c.frames)) {
		if value, ok := c.base.get(ref, sig); ok {
			return value, value == nil
		}
	}
	return nil, false
}

func (c *flatCache) Put(ref ast.Ref, value *ast.Term) {
	sig := refSig(ref)
	if i := c.find(ref, sig); i >= 0 {
		c.entries[i].value = value
		return
	}
	start := len(c.terms)
	c.terms = append(c.terms, ref...)
	c.entries = append(c.entries, cacheEntry{start: start, end: len(c.terms), sig: sig, value: value})
}

func (c *flatCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.entries[c.frames[len(c.frames)-1]:] {
		if e.value != nil {
			keys = append(keys, ast.Ref(c.terms[e.start:e.end:e.end]))
		}
	}
	return keys
}
