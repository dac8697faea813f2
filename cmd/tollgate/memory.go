package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// minHeadroom is the least the heap may grow above its live size before
// the collector works harder to stay under the memory limit: the garbage
// of a few hundred evaluations.
const minHeadroom = 48 << 20

// overhead is the memory Go held beyond the live heap right after the
// startup's full collection: goroutine stacks, the collector's metadata,
// and the free space inside the heap's spans that a load leaves scattered
// (Go does not move objects). The limit must leave room for it, or the
// collector runs without end trying to get under a limit it cannot reach.
var overhead atomic.Int64

// limitMemory returns the memory freed by a bundle activation to the
// system (with free) and, unless GOMEMLIMIT is set (a size, or "off"),
// sets Go's soft memory limit to the live heap, plus the overhead, plus as
// much again as the live heap (at least minHeadroom): as GOGC=100 would,
// but counting all of Go's memory. GOGC stays as the environment sets it
// (Go's default, 100, if unset), the limit set or not: off or 200 under
// the limit spent less CPU on collections but held more memory (RSS 163
// and 146 MB with 10,000 projects, against 120–130 MB and a 150 MB
// target; test/bench/README.md, second round).
//
// Loading a bundle peaks well above what the compiled bundle keeps: the
// JSON documents, their Go values and AST values, the tests' run. Left
// alone, the collector's goal stays at twice that peak and the process
// keeps the pages; under load the heap then grows to about twice the live
// size plus the requests' garbage. The limit keeps the resident set near
// what the bundle needs (see test/bench/README.md, memory), and follows
// the bundle at each activation.
//
// free (the startup) returns the memory at once with a full collection and
// measures the overhead; otherwise (a reload under load, where a full
// collection would cost more than it saves) the live heap is the one of
// the last collection, and the limit makes the runtime return what is
// above it in the background.
func limitMemory(logger *slog.Logger, free bool) {
	if free {
		debug.FreeOSMemory()
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(samples)
	for _, s := range samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return
		}
	}
	live := int64(samples[0].Value.Uint64())
	if free {
		// What the limit counts: all of Go's memory but the released.
		held := int64(samples[1].Value.Uint64() - samples[2].Value.Uint64())
		overhead.Store(max(held-live, 0))
	}
	limit := live + overhead.Load() + max(live, minHeadroom)
	debug.SetMemoryLimit(limit)
	logger.Debug("memory limit set", "live_heap_mb", live>>20, "overhead_mb", overhead.Load()>>20, "limit_mb", limit>>20)
}
