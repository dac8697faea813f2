package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const (
	memoryLimit   = "120MiB"
	largeRegistry = 10_000
	largeHistory  = 1_000_000
)

// scale loads tollgate on the embedded store with varying keys: 10 projects
// and an empty history (the baseline), 10,000 projects, a million decisions
// of history, and the baseline again while the bundle reloads every second.
// The RSS column is the largest resident set seen under the load.
func (h *harness) scale(ctx context.Context) ([]row, map[string]any, error) {
	small := filepath.Join(h.work, "bundle-small")
	large := filepath.Join(h.work, "bundle-large")
	if err := benchBundle(h.root, small, smallRegistry); err != nil {
		return nil, nil, err
	}
	if err := benchBundle(h.root, large, largeRegistry); err != nil {
		return nil, nil, err
	}
	dataDir := func(run string) (string, error) { return filepath.Join(h.work, "data-"+run), nil }
	seeded := func(run string) (string, error) {
		dir := filepath.Join(h.work, "data-"+run)
		fmt.Fprintf(os.Stderr, "seeding %d decisions …\n", largeHistory)
		start := time.Now()
		err := seedHistory(ctx, dir, largeHistory)
		fmt.Fprintf(os.Stderr, "seeded in %s\n", time.Since(start).Round(time.Millisecond))
		return dir, err
	}

	base, err := h.measure(h.tollgateServer("tollgate sqlite", small, dataDir), "varying", smallRegistry, "base", nil)
	if err != nil {
		return nil, nil, err
	}
	base.Note, base.base = "baseline", true
	manyProjects, err := h.measure(h.tollgateServer("tollgate sqlite", large, dataDir), "varying", largeRegistry, "projects", nil)
	if err != nil {
		return nil, nil, err
	}
	manyProjects.Note = "10,000 projects"
	// Go's soft memory limit (GOMEMLIMIT), the knob for a memory budget:
	// the garbage collector works harder as the heap nears it.
	limited, err := h.measure(h.tollgateServer("tollgate sqlite", large, dataDir, "GOMEMLIMIT="+memoryLimit),
		"varying", largeRegistry, "limited", nil)
	if err != nil {
		return nil, nil, err
	}
	limited.Note = "10,000 projects, GOMEMLIMIT=" + memoryLimit
	history, err := h.measure(h.tollgateServer("tollgate sqlite", small, seeded), "varying", smallRegistry, "history", nil)
	if err != nil {
		return nil, nil, err
	}
	history.History, history.Note = largeHistory, "1,000,000 decisions"

	// The reload run: the past freeze's id changes every second, so each
	// write is a new revision, built (compiled, tested) and swapped in
	// while wrk runs.
	var reloads, failures int
	reload, err := h.measure(h.tollgateServer("tollgate sqlite", small, dataDir), "varying", smallRegistry, "reload",
		func(p *proc, stop <-chan struct{}) {
			var before bundleStatus
			get(p.url("/v1/bundles"), &before)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for gen := 1; ; gen++ {
				select {
				case <-stop:
					var after bundleStatus
					if err := get(p.url("/v1/bundles"), &after); err != nil {
						failures = -1
						return
					}
					reloads, failures = after.Reloads-before.Reloads, after.Failures-before.Failures
					return
				case <-tick.C:
					writeGlobalPolicy(small, gen)
				}
			}
		})
	if err != nil {
		return nil, nil, err
	}
	reload.Note = fmt.Sprintf("bundle rewritten every second: %d reloads, %d failed", reloads, failures)

	rows := []row{base, manyProjects, limited, history, reload}
	for i := range rows {
		rows[i].against(base)
	}
	extra := map[string]any{
		"reloads": reloads, "reload_failures": failures,
		"rss_mb_10000_projects": manyProjects.RSSMB, "rss_mb_10000_projects_memory_limit": limited.RSSMB,
	}
	return rows, extra, nil
}

// bundleStatus is what GET /v1/bundles says of reloads.
type bundleStatus struct {
	Revision string `json:"revision"`
	Reloads  int    `json:"reloads"`
	Failures int    `json:"failures"`
}
