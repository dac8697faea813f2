package rego

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

// replayFixture is a gate on a copy of the shipped bundle, recording in a
// real SQLite store and keeping its bundles there.
type replayFixture struct {
	dir    string
	engine *Engine
	store  *sqlite.Store
	gate   *Gate
	now    time.Time
	ids    atomic.Int64
}

func newReplayFixture(t testing.TB) *replayFixture {
	t.Helper()
	f := &replayFixture{dir: bundleCopy(t), now: at(t, "2026-11-23T10:00:00+01:00")}
	removeTests(t, f.dir) // a reload runs them: slow under -race, and not what is tested
	var err error
	if f.engine, err = NewEngine(t.Context(), f.dir, EngineOptions{Poll: -1, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	if f.store, err = sqlite.Open(t.Context(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.gate = &Gate{
		Policies: f.engine, Store: f.store, Licence: validLicence{},
		Now:     func() time.Time { return f.now },
		NewID:   func() string { return fmt.Sprintf("d%04d", f.ids.Add(1)) },
		Score:   func([]tollgate.CVSSVector) (tollgate.ScoreReceipt, bool) { return tollgate.ScoreReceipt{}, false },
		Bundles: &Keeper{Store: f.store, Now: time.Now},
	}
	return f
}

func (f *replayFixture) evaluate(t *testing.T, branch, pipeline string) tollgate.Record {
	t.Helper()
	r := exampleRequest()
	r.Branch, r.Pipeline = branch, pipeline
	if pipeline == "deploy-staging" {
		r.Metadata.Environment = "staging"
	}
	rec, err := f.gate.Evaluate(t.Context(), r, ScanSource{})
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Minute)
	return rec
}

func TestReplayIsIdenticalAfterTheBundleDirectoryChanged(t *testing.T) {
	f := newReplayFixture(t)
	var recs []tollgate.Record
	recs = append(recs, f.evaluate(t, "main", "deploy-prod"), f.evaluate(t, "main", "deploy-prod"), // accepted, then cooldown
		f.evaluate(t, "develop", "deploy-staging"), f.evaluate(t, "release/1.2", "deploy-staging"))
	first := f.engine.Policy().Revision()
	editFile(t, filepath.Join(f.dir, "config/projects/data.json"), branchesBefore, branchesAfter)
	if err := f.engine.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.engine.Policy().Revision() == first {
		t.Fatal("the edit did not change the revision")
	}
	recs = append(recs, f.evaluate(t, "develop", "deploy-staging"))
	if recs[2].Decision.Status != tollgate.Refused || recs[4].Decision.Status != tollgate.Accepted {
		t.Fatalf("develop before the edit %s, after %s: want refused then accepted", recs[2].Decision.Status, recs[4].Decision.Status)
	}
	if recs[1].Decision.Reasons[0].Code != tollgate.CodeCooldown {
		t.Fatalf("second deploy: %v, want cooldown", recs[1].Decision.Reasons)
	}
	for _, rec := range recs {
		stored, err := f.store.Decision(t.Context(), rec.Decision.ID)
		if err != nil {
			t.Fatal(err)
		}
		replay, err := ReplayRecord(t.Context(), f.store, stored)
		if err != nil {
			t.Fatal(err)
		}
		if !replay.Identical || len(replay.Differences) != 0 || replay.Revision != rec.Decision.BundleRevision {
			t.Errorf("replay of %s (%s on %s): identical %v, differences %+v", rec.Decision.ID, rec.Decision.Status, rec.Request.Branch, replay.Identical, replay.Differences)
		}
	}
	// Under the edited bundle the first develop decision would be
	// accepted: the replay uses the bundle it was made with, not today's.
	if d := f.engine.Policy().Evaluate(t.Context(), recs[2].Request, recs[2].Context); d.Status != tollgate.Accepted {
		t.Fatalf("the edited bundle still refuses develop: %v", d.Reasons)
	}
}

func TestReplayShowsWhatDiffers(t *testing.T) {
	f := newReplayFixture(t)
	rec := f.evaluate(t, "main", "deploy-staging")
	tampered := rec
	tampered.Decision.Status = tollgate.Refused
	tampered.Decision.Reasons = []tollgate.Reason{{Code: tollgate.CodeFreezeActive, Message: "frozen"}}
	tampered.Decision.Warnings = []tollgate.Reason{{Code: "note", Message: "a warning"}}
	tampered.Decision.ClearsAt = map[string]tollgate.ClearTime{tollgate.CodeFreezeActive: {}}
	tampered.Decision.NextCheckAt = tollgate.NextCheck{Waiting: true}
	replay, err := ReplayRecord(t.Context(), f.store, tampered)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, d := range replay.Differences {
		fields = append(fields, d.Field)
	}
	if want := []string{"status", "reasons", "warnings", "clears_at", "next_check_at"}; replay.Identical || !slices.Equal(fields, want) {
		t.Fatalf("identical %v, differing fields %v; want %v", replay.Identical, fields, want)
	}
	if replay.Differences[0].Recorded != tollgate.Refused || replay.Differences[0].Replayed != tollgate.Accepted {
		t.Fatalf("status difference %+v", replay.Differences[0])
	}
}

func TestReplayOfAnUnknownRevisionIsNotFound(t *testing.T) {
	f := newReplayFixture(t)
	rec := f.evaluate(t, "main", "deploy-staging")
	rec.Decision.BundleRevision = "sha256:0000000000000000"
	_, err := ReplayRecord(t.Context(), f.store, rec)
	if tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("replay with an unknown revision: %v, want ENotFound", err)
	}
}

func TestLoadStoredGivesTheSameRevision(t *testing.T) {
	// Numbers as written (7.0, 0.10, beyond float64), YAML, nested data
	// paths and a module in a subdirectory: the stored copy must load as
	// the same revision.
	dir := newBundleDir(t, map[string]string{
		"policy.rego":            "package tollgate\n\ndecision := {\"status\": \"accepted\"}\n",
		"sub/deep/more.rego":     "package tollgate.more\n\nx := data.extra.threshold\n",
		"extra/data.yaml":        "threshold: 7.0\nratio: 0.10\nbig: 123456789012345678901234567890\nname: é\n",
		"extra/nested/data.json": `{"list": [1.50, 2e3, {"k": null}]}`,
	})
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Stored(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadStored(sb)
	if err != nil || again.Revision != b.Revision {
		t.Fatalf("LoadStored: %v; want revision %s", err, b.Revision)
	}
}

func TestLoadStoredChecksTheRevision(t *testing.T) {
	b, err := LoadBundle(defaultBundle)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Stored(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadStored(sb)
	if err != nil || again.Revision != b.Revision {
		t.Fatalf("LoadStored: %v, revision %v; want %s", err, again, b.Revision)
	}
	sb.Files["decision.rego"] += "\n# altered\n"
	if _, err := LoadStored(sb); tollgate.ErrorCode(err) != tollgate.EInternal {
		t.Fatalf("LoadStored of altered content: %v, want EInternal naming the alteration", err)
	}
}

// countingBundles counts PutBundle calls, and fails them with err if set.
type countingBundles struct {
	tollgate.BundleStore
	puts atomic.Int32
	err  error
}

func (c *countingBundles) PutBundle(ctx context.Context, b tollgate.StoredBundle) error {
	c.puts.Add(1)
	if c.err != nil {
		return c.err
	}
	return c.BundleStore.PutBundle(ctx, b)
}

func TestGateKeepsEachRevisionOnceAndFailsClosedWithoutIt(t *testing.T) {
	f := newReplayFixture(t)
	counting := &countingBundles{BundleStore: f.store}
	f.gate.Bundles = &Keeper{Store: counting, Now: time.Now}
	for range 3 {
		f.evaluate(t, "main", "deploy-staging")
	}
	if n := counting.puts.Load(); n != 1 {
		t.Fatalf("3 decisions under one revision wrote the bundle %d times, want 1", n)
	}
	failing := &countingBundles{BundleStore: f.store, err: tollgate.Errorf(tollgate.EUnavailable, "store down")}
	f.gate.Bundles = &Keeper{Store: failing, Now: time.Now}
	before, _ := f.store.Decisions(t.Context(), tollgate.DecisionFilter{})
	_, err := f.gate.Evaluate(t.Context(), exampleRequest(), ScanSource{})
	if tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Fatalf("evaluate when the bundle cannot be kept: %v, want EUnavailable (503)", err)
	}
	after, _ := f.store.Decisions(t.Context(), tollgate.DecisionFilter{})
	if len(after.Records) != len(before.Records) {
		t.Fatalf("a decision was recorded without its bundle: %d records, want %d", len(after.Records), len(before.Records))
	}
}

// Right after a reload every request in flight asks to keep the new
// revision at once: one write serves them all.
func TestKeeperWritesARevisionOnceForConcurrentCallers(t *testing.T) {
	f := newReplayFixture(t)
	slow := &countingBundles{BundleStore: f.store}
	k := &Keeper{Store: slow, Now: time.Now}
	b := f.engine.Policy().Bundle()
	errs := make([]error, 16)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range errs {
		wg.Go(func() {
			<-start
			errs[i] = k.Keep(t.Context(), b)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if n := slow.puts.Load(); n != 1 {
		t.Fatalf("16 concurrent callers wrote the revision %d times, want 1", n)
	}
	if _, err := f.store.Bundle(t.Context(), b.Revision); err != nil {
		t.Fatalf("the revision is not in the store: %v", err)
	}
}

func TestImpactOfTighterBranchesChangesExactlyTheReleaseDecisions(t *testing.T) {
	f := newReplayFixture(t)
	want := map[string]bool{}
	for i := range 7 {
		for _, branch := range []string{"main", fmt.Sprintf("release/1.%d", i), "develop"} {
			rec := f.evaluate(t, branch, "deploy-staging")
			if branch != "main" && branch != "develop" {
				want[rec.Decision.ID] = true
			}
		}
	}
	candidate := filepath.Join(t.TempDir(), "candidate")
	copyBundle(t, candidate)
	editFile(t, filepath.Join(candidate, "config/projects/data.json"), branchesBefore, `"allowed_branches": ["main"],`)
	p := mustPolicy(t, candidate)

	var pages []int
	impact, err := AnalyseImpact(t.Context(), f.store, p, ImpactOptions{
		Progress: func(evaluated, _ int) { pages = append(pages, evaluated) },
		Examples: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if impact.Evaluated != 21 || impact.Changed != 7 || impact.More || len(impact.Groups) != 1 {
		t.Fatalf("impact %+v; want 21 evaluated, 7 changed in one group", impact)
	}
	g := impact.Groups[0]
	if g.From != tollgate.Accepted || g.To != tollgate.Refused || !slices.Equal(g.Added, []string{tollgate.CodeBranchNotAllowed}) ||
		len(g.Removed) != 0 || g.Count != 7 || len(g.Examples) != 2 {
		t.Fatalf("group %+v; want accepted → refused, +branch_not_allowed, 7, 2 examples", g)
	}
	for _, id := range g.Examples {
		if !want[id] {
			t.Errorf("example %s is not a release decision", id)
		}
	}
	if len(pages) == 0 || pages[len(pages)-1] != 21 {
		t.Fatalf("progress %v, want it to end at 21", pages)
	}

	// A limit stops early and says there is more; the newest come first.
	limited, err := AnalyseImpact(t.Context(), f.store, p, ImpactOptions{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if limited.Evaluated != 4 || !limited.More || limited.Changed != 1 {
		t.Fatalf("limited impact %+v; want 4 evaluated (release/1.6 among them), 1 changed, more", limited)
	}
	// The shipped bundle changes nothing: every decision is its own.
	same, err := AnalyseImpact(t.Context(), f.store, f.engine.Policy(), ImpactOptions{})
	if err != nil || same.Changed != 0 || len(same.Groups) != 0 {
		t.Fatalf("impact of the active bundle: %+v, %v; want no change", same, err)
	}
	// A store that fails fails the analysis.
	f.store.Close()
	if _, err := AnalyseImpact(t.Context(), f.store, p, ImpactOptions{}); tollgate.ErrorCode(err) != tollgate.EUnavailable {
		t.Fatalf("impact on a closed store: %v, want EUnavailable", err)
	}
}
