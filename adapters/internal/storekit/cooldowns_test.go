package storekit

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/tollgate/tollgate"
)

// Keys whose parts differ are different keys, however the parts split.
func TestCacheKeyUnambiguous(t *testing.T) {
	keys := []tollgate.CooldownKey{
		{Project: "a\x00b", Pipeline: "c", Branch: "d"},
		{Project: "a", Pipeline: "b\x00c", Branch: "d"},
		{Project: "a", Pipeline: "b", Branch: "c\x00d"},
		{Project: "ab", Pipeline: "c", Branch: "d"},
		{Project: "a", Pipeline: "bc", Branch: "d"},
		{Project: "a", Pipeline: "b", Branch: "cd"},
	}
	seen := map[string]tollgate.CooldownKey{}
	for _, k := range keys {
		s := string(cacheKey(nil, k))
		if other, ok := seen[s]; ok {
			t.Errorf("%+v and %+v share the cache key %q", k, other, s)
		}
		seen[s] = k
	}
}

// BenchmarkCooldownCache measures a read of the cooldown cache and the
// memory it holds per key, with keys shaped as the load harness's
// (test/bench: ten projects, a new release branch per request):
//
//	go test -run '^$' -bench CooldownCache ./adapters/internal/storekit/
func BenchmarkCooldownCache(b *testing.B) {
	const n = 100_000
	keys := make([]tollgate.CooldownKey, n)
	ws := make([]*Write, n)
	for i := range keys {
		keys[i] = tollgate.CooldownKey{Project: fmt.Sprintf("project-%05d", i%10), Pipeline: "deploy-prod",
			Branch: fmt.Sprintf("release/%d.%d.%d", i%7, i%2, i)}
		ws[i] = &Write{Prepared: Prepared{Key: &keys[i], Accept: true, At: int64(i + 1)}}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := &cooldownCache{max: n, m: map[string]int64{}, gen: 1}
	c.committed(ws)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ws) // what the cache holds, only
	if c.len() != n {
		b.Fatalf("%d keys cached, want %d", c.len(), n)
	}
	i := 0
	for b.Loop() {
		if at, found, _ := c.get(keys[i%n]); !found || at != int64(i%n+1) {
			b.Fatalf("key %d: %d, %v", i%n, at, found)
		}
		i++
	}
	b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/n, "B/key") // after the loop: it resets the metrics
	runtime.KeepAlive(c)
}
