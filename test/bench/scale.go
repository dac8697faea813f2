package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const (
	largeRegistry = 10_000
	largeHistory  = 1_000_000
)

// scale loads tollgate on the embedded store with varying keys: 10 projects
// and an empty history (the baseline), 10,000 projects (also with Go's
// default memory management, GOMEMLIMIT=off, to show what serve's own
// memory limit saves), a million decisions of history, and the baseline again while
// the bundle reloads every second. The RSS column is the largest resident
// set seen under the load. onlyReload runs the baseline and the reload rows.
func (h *harness) scale(ctx context.Context, onlyReload bool) ([]row, map[string]any, error) {
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
	runs := []struct {
		note     string
		server   server
		projects int
		history  int
	}{
		{"baseline", h.tollgateServer("tollgate sqlite", small, dataDir), smallRegistry, 0},
		{"10,000 projects", h.tollgateServer("tollgate sqlite", large, dataDir), largeRegistry, 0},
		// serve sets Go's soft memory limit from the live heap unless
		// GOMEMLIMIT is set; "off" is the runtime's default, no limit.
		{"10,000 projects, GOMEMLIMIT=off",
			h.tollgateServer("tollgate sqlite", large, dataDir, "GOMEMLIMIT=off"), largeRegistry, 0},
		{"1,000,000 decisions", h.tollgateServer("tollgate sqlite", small, seeded), smallRegistry, largeHistory},
	}
	if onlyReload {
		runs = runs[:1]
	}
	var rows []row
	extra := map[string]any{}
	for i, r := range runs {
		res, err := h.measure(r.server, "varying", r.projects, fmt.Sprintf("scale%d", i), nil)
		if err != nil {
			return nil, nil, err
		}
		res.Note, res.History, res.base = r.note, r.history, i == 0
		rows = append(rows, res)
		if r.projects == largeRegistry {
			extra["rss_mb "+r.note] = res.RSSMB
		}
	}

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
	rows = append(rows, reload)
	for i := range rows {
		rows[i].against(rows[0])
	}
	extra["reloads"], extra["reload_failures"] = reloads, failures
	return rows, extra, nil
}

// bundleStatus is what GET /v1/bundles says of reloads.
type bundleStatus struct {
	Revision string `json:"revision"`
	Reloads  int    `json:"reloads"`
	Failures int    `json:"failures"`
}
