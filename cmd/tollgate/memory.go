package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// minHeadroom is the least the heap may grow above its live size before
// the collector works harder to stay under the memory limit: the garbage
// of a few hundred evaluations.
const minHeadroom = 48 << 20

// limitMemory returns the memory freed by a bundle activation to the
// system (with free) and, unless GOMEMLIMIT is set (a size, or "off"), sets Go's soft
// memory limit to the live heap plus half as much again (at least
// minHeadroom): as GOGC=50 would, but counting all of Go's memory.
//
// Loading a bundle peaks well above what the compiled bundle keeps: the
// JSON documents, their Go values and AST values, the tests' run. Left
// alone, the collector's goal stays at twice that peak and the process
// keeps the pages; under load the heap then grows to about twice the live
// size plus the requests' garbage. The limit keeps the resident set near
// what the bundle needs (with 10,000 projects: ~200 MB without it, under
// 150 MB with it; see test/bench/README.md), and grows with the bundle at
// each activation.
//
// free returns the memory at once (a full collection); otherwise the live
// heap is the one of the last collection, and the limit makes the runtime
// return what is above it in the background: reloads under load, where a
// full collection each time would cost more than it saves.
func limitMemory(logger *slog.Logger, free bool) {
	if free {
		debug.FreeOSMemory()
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	live := int64(sample[0].Value.Uint64())
	limit := live + max(live, minHeadroom)
	debug.SetMemoryLimit(limit)
	logger.Debug("memory limit set", "live_heap_mb", live>>20, "limit_mb", limit>>20)
}
