package rego

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// requireRejected checks that err is a CandidateError for reason.
func requireRejected(t *testing.T, err error, reason string, inMessage ...string) *CandidateError {
	t.Helper()
	var ce *CandidateError
	if !errors.As(err, &ce) || ce.Reason != reason || RejectReason(err) != reason {
		t.Fatalf("want a CandidateError %s, got %T %v", reason, err, err)
	}
	for _, want := range inMessage {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	return ce
}

// requireKept checks that a rejected reload left active serving and said
// why in the status.
func (te *testEngine) requireKept(t *testing.T, active *Policy, err error) {
	t.Helper()
	s := te.Status()
	if te.Policy() != active || s.LastError != err.Error() || s.Failures != 1 || s.Reloads != 0 {
		t.Fatalf("after a rejected candidate: %+v", s)
	}
	te.decides(t, tollgate.Refused)
	if te.log.count("ERROR bundle reload failed, keeping the active bundle") != 1 {
		t.Error("the rejection was not logged")
	}
}

// Bundles that cannot decide, made from the shipped one. Each breaks the
// decision rule before its own tests would notice: the check runs first.
var undecidable = map[string]struct {
	edit   func(t *testing.T, dir string)
	reason string
	say    string
}{
	"decision rule renamed": {
		edit: func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "decision.rego"), "\ndecision := object.union(", "\ndecision_v2 := object.union(")
		},
		reason: RejectNoDecisionRule, say: "no rule defines data.tollgate.decision",
	},
	"decision in a data document": {
		// A well-formed accepted decision, as data: it would accept
		// everything, and OPA answers it for data.tollgate.decision.
		edit: func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "decision.rego"), "\ndecision := object.union(", "\ndecision_v2 := object.union(")
			writeFile(t, filepath.Join(dir, "tollgate", "decision", "data.json"),
				`{"status": "accepted", "reasons": [], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""}`)
		},
		reason: RejectNoDecisionRule, say: "no rule defines data.tollgate.decision",
	},
	"decision an array": {
		edit: func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "decision.rego"), "\ndecision := object.union(", "\ndecision_v2 := object.union(")
			writeFile(t, filepath.Join(dir, "shape.rego"), "package tollgate\n\ndecision := [decision_v2]\n")
		},
		reason: RejectDecisionShape, say: "answers no well-formed decision",
	},
	"decision a set": {
		edit: func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "decision.rego"), "\ndecision := object.union(", "\ndecision_v2 := object.union(")
			writeFile(t, filepath.Join(dir, "shape.rego"), "package tollgate\n\ndecision contains decision_v2\n")
		},
		reason: RejectDecisionShape, say: "answers no well-formed decision",
	},
	"status key renamed": {
		edit: func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "decision.rego"), `"status": status,`, `"verdict": status,`)
		},
		reason: RejectDecisionShape, say: `"status": want a string`,
	},
	"decision undefined when unmanaged": {
		edit: func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "decision.rego"), "\tannotations,\n)\n", "\tannotations,\n) if resolve.managed\n")
		},
		reason: RejectDecisionShape, say: "data.tollgate.decision is undefined",
	},
}

func TestNewEngineRefusesABundleThatCannotDecide(t *testing.T) {
	t.Parallel()
	for name, c := range undecidable {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := bundleCopy(t)
			removeTests(t, dir)
			c.edit(t, dir)
			_, err := NewEngine(t.Context(), dir, EngineOptions{Logger: slog.New(slog.DiscardHandler)})
			requireRejected(t, err, c.reason, c.say, "no valid bundle to serve")
			t.Log(err)
		})
	}
}

func TestReloadRejectsABundleThatCannotDecide(t *testing.T) {
	t.Parallel()
	for name, c := range undecidable {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := bundleCopy(t)
			removeTests(t, dir)
			te := newTestEngine(t, dir, -1)
			active := te.Policy()
			c.edit(t, dir)
			err := te.Reload(t.Context())
			requireRejected(t, err, c.reason, c.say)
			te.requireKept(t, active, err)
		})
	}
}

// A bundle without tests, or whose only tests are skipped, is refused at
// start and on reload, as `tollgate test` refuses it.
func TestABundleWithoutTestsIsNotActivated(t *testing.T) {
	t.Parallel()
	untested := map[string]func(t *testing.T, dir string){
		"no tests": func(t *testing.T, dir string) { deleteTests(t, dir) },
		"only todo tests": func(t *testing.T, dir string) {
			deleteTests(t, dir)
			writeFile(t, filepath.Join(dir, "todo_test.rego"), "package todo_test\n\ntodo_test_later if false\n")
		},
	}
	for name, strip := range untested {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := bundleCopy(t)
			strip(t, dir)
			_, err := NewEngine(t.Context(), dir, EngineOptions{Logger: slog.New(slog.DiscardHandler)})
			requireRejected(t, err, RejectNoTests, "no test passed")

			dir = bundleCopy(t)
			removeTests(t, dir)
			te := newTestEngine(t, dir, -1)
			active := te.Policy()
			strip(t, dir)
			editFile(t, filepath.Join(dir, projectsJSON), branchesBefore, branchesAfter)
			err = te.Reload(t.Context())
			requireRejected(t, err, RejectNoTests, "no test passed")
			te.requireKept(t, active, err)
		})
	}
}

func TestMinCoverage(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir) // the trivial test covers no policy line
	_, err := NewEngine(t.Context(), dir, EngineOptions{Logger: slog.New(slog.DiscardHandler), MinCoverage: 50})
	requireRejected(t, err, RejectCoverage, "cover 0.0% of its policy lines, below the 50.0% required")
	if testing.Short() {
		return
	}
	// The shipped bundle's tests cover all of it.
	if _, err := NewEngine(t.Context(), bundleCopy(t), EngineOptions{Logger: slog.New(slog.DiscardHandler), MinCoverage: 100}); err != nil {
		t.Fatalf("the shipped bundle at 100%%: %v", err)
	}
}

// ciRunIDs are run IDs as CI systems send them: GitHub's are numbers,
// Jenkins' and GitLab's need not be.
var ciRunIDs = []string{"deploy-prod#57", "9876543210", "pipeline-1187", "4242"}

// numericRunIDs is the policy change under test: an author who only knew
// GitHub Actions reads the run ID as a number. Its own tests pass, and an
// unmanaged request (the probe) still decides; a managed request whose run
// ID is not a number makes to_number fail: policy_error.
func numericRunIDs(t *testing.T, dir string) {
	editFile(t, filepath.Join(dir, "local.rego"), ") if {\n\tresolve.resolved\n} else := [] if {",
		") if {\n\tresolve.resolved\n\tto_number(input.request.metadata.run_id) > 0\n} else := [] if {")
}

// developRunIDs is numericRunIDs on branch develop only, where the
// recorded decisions of historyFixture are: the project probes (branch
// main) still decide, so only the replay can find it.
func developRunIDs(t *testing.T, dir string) {
	editFile(t, filepath.Join(dir, "local.rego"), ") if {\n\tresolve.resolved\n} else := [] if {",
		") if {\n\tresolve.resolved\n\tto_number(object.get({\"develop\": input.request.metadata.run_id}, input.request.branch, \"1\")) > 0\n} else := [] if {")
}

// With no recorded traffic to replay (a new server, or none within the
// window), a candidate that breaks only managed requests still answers
// the unmanaged probe; the probes of the registered projects find it.
func TestReloadProbesRegisteredProjects(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]EngineOptions{
		"empty history":              {},
		"history outside the window": {ReplayWindow: time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newReplayFixture(t)
			opts.Poll, opts.Logger, opts.History = -1, slog.New(slog.DiscardHandler), f.store
			opts.Now = func() time.Time { return f.now }
			var err error
			if f.engine, err = NewEngine(t.Context(), f.dir, opts); err != nil {
				t.Fatal(err)
			}
			if name != "empty history" {
				f.gate.Policies = f.engine
				if _, err := f.gate.Evaluate(t.Context(), exampleRequest(), ScanSource{}); err != nil {
					t.Fatal(err)
				}
				f.now = f.now.Add(time.Minute)
			}
			active := f.engine.Policy()
			numericRunIDs(t, f.dir)
			err = f.engine.Reload(t.Context())
			requireRejected(t, err, RejectProjectProbes, "asked about registered repository", "run ID reload-probe", "to_number")
			if f.engine.Policy() != active {
				t.Fatal("the candidate was activated")
			}
			t.Log(err)
		})
	}
}

// historyFixture records one decision per ciRunIDs with the gate, under
// the active bundle of an engine that replays that history on reload.
func historyFixture(t *testing.T, opts EngineOptions) (f *replayFixture, recorded []tollgate.Record) {
	t.Helper()
	f = newReplayFixture(t)
	opts.Poll, opts.Logger, opts.History = -1, slog.New(slog.DiscardHandler), f.store
	opts.Now = func() time.Time { return f.now }
	var err error
	if f.engine, err = NewEngine(t.Context(), f.dir, opts); err != nil {
		t.Fatal(err)
	}
	f.gate.Policies = f.engine
	for _, id := range ciRunIDs {
		r := exampleRequest()
		r.Branch, r.Pipeline, r.Metadata.RunID, r.Metadata.Environment = "develop", "deploy-staging", id, "staging"
		rec, err := f.gate.Evaluate(t.Context(), r, ScanSource{})
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(rec.Decision.Reasons, func(r tollgate.Reason) bool { return r.Code == tollgate.CodePolicyError }) {
			t.Fatalf("recorded %s with the active bundle: %v", id, rec.Decision.Reasons)
		}
		recorded = append(recorded, rec)
		f.now = f.now.Add(time.Minute)
	}
	return f, recorded
}

func TestReloadRejectsNewPolicyErrorsOnRecordedDecisions(t *testing.T) {
	t.Parallel()
	f, recorded := historyFixture(t, EngineOptions{})
	active := f.engine.Policy()
	numericRunIDs(t, f.dir)
	err := f.engine.Reload(t.Context())
	// Newest first: pipeline-1187, then deploy-prod#57.
	want := []string{recorded[2].Decision.ID, recorded[0].Decision.ID}
	ce := requireRejected(t, err, RejectPolicyErrors,
		"turns 2 of the 4 decisions recorded in the last 24h0m0s", want[0]+", "+want[1], "to_number")
	if !slices.Equal(ce.DecisionIDs, want) {
		t.Errorf("decision IDs %v, want %v", ce.DecisionIDs, want)
	}
	s := f.engine.Status()
	if f.engine.Policy() != active || s.LastError != err.Error() || s.Failures != 1 {
		t.Fatalf("after the rejection: %+v", s)
	}
	// The old bundle still decides them.
	for _, rec := range recorded {
		if d := f.engine.Policy().Evaluate(t.Context(), rec.Request, rec.Context); d.Status != rec.Decision.Status {
			t.Errorf("%s: %s, recorded %s", rec.Request.Metadata.RunID, d.Status, rec.Decision.Status)
		}
	}
	t.Log(err)
}

// The replay is bounded: decisions older than the window, or beyond the
// newest ReplayLimit, are not replayed; a negative limit turns it off.
func TestReloadReplayIsBounded(t *testing.T) {
	t.Parallel()
	// Recorded a minute apart, newest first: 4242, pipeline-1187 (bad),
	// 9876543210, deploy-prod#57 (bad); the clock is a minute past the last.
	cases := map[string]struct {
		opts     EngineOptions
		rejected []int // indexes in ciRunIDs of the decisions named
	}{
		"default":                        {rejected: []int{2, 0}},
		"newest two":                     {opts: EngineOptions{ReplayLimit: 2}, rejected: []int{2}},
		"newest one":                     {opts: EngineOptions{ReplayLimit: 1}},
		"last two minutes":               {opts: EngineOptions{ReplayWindow: 2 * time.Minute}, rejected: []int{2}},
		"last ninety seconds":            {opts: EngineOptions{ReplayWindow: 90 * time.Second}},
		"replay off by a negative limit": {opts: EngineOptions{ReplayLimit: -1}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, recorded := historyFixture(t, c.opts)
			developRunIDs(t, f.dir)
			err := f.engine.Reload(t.Context())
			if len(c.rejected) == 0 {
				if err != nil {
					t.Fatalf("want the candidate activated, got %v", err)
				}
				return
			}
			var want []string
			for _, i := range c.rejected {
				want = append(want, recorded[i].Decision.ID)
			}
			if ce := requireRejected(t, err, RejectPolicyErrors); !slices.Equal(ce.DecisionIDs, want) {
				t.Errorf("decision IDs %v, want %v", ce.DecisionIDs, want)
			}
		})
	}
}

// historyDown is a store that cannot be read.
type historyDown struct{ tollgate.DecisionStore }

func (historyDown) Decisions(context.Context, tollgate.DecisionFilter) (tollgate.DecisionPage, error) {
	return tollgate.DecisionPage{}, tollgate.Errorf(tollgate.EUnavailable, "the database is unreachable")
}

// A history that cannot be read rejects the candidate (the check did not
// run), and the next rescan tries again, without waiting for a new change.
func TestReloadWithUnreadableHistory(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	e, err := NewEngine(t.Context(), dir, EngineOptions{Poll: -1, Logger: slog.New(slog.DiscardHandler), History: historyDown{}})
	if err != nil {
		t.Fatal(err)
	}
	active := e.Policy()
	editFile(t, filepath.Join(dir, projectsJSON), branchesBefore, branchesAfter)
	err = e.Reload(t.Context())
	requireRejected(t, err, RejectHistory, "the database is unreachable")
	if e.Policy() != active {
		t.Fatal("activated without its replay")
	}
	if e.fingerprint != "" {
		t.Error("the rescan would not retry the candidate")
	}
}

// BenchmarkReplayRecorded measures a reload's replay of the default 200
// recorded decisions, unpaced (a reload paces it to about twice as long).
func BenchmarkReplayRecorded(b *testing.B) {
	f := newReplayFixture(b)
	for i := range DefaultReplayLimit {
		r := exampleRequest()
		r.Branch, r.Pipeline, r.Metadata.Environment = "develop", "deploy-staging", "staging"
		r.Metadata.RunID = fmt.Sprint(i)
		if _, err := f.gate.Evaluate(b.Context(), r, ScanSource{}); err != nil {
			b.Fatal(err)
		}
		f.now = f.now.Add(time.Second)
	}
	p := f.engine.Policy()
	for b.Loop() {
		if err := checkRecorded(b.Context(), f.store, p, f.now, DefaultReplayLimit, DefaultReplayWindow, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/DefaultReplayLimit, "µs/decision")
}

// Decisions recorded as policy_error cannot become new ones: the replay
// skips them (a runaway rule would cost its whole budget on each), and a
// candidate that still fails on them is activated if it breaks nothing
// else.
func TestReplaySkipsRecordedPolicyErrors(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t)
	numericRunIDs(t, f.dir)
	var err error
	opts := EngineOptions{Poll: -1, Logger: slog.New(slog.DiscardHandler), History: f.store, Now: func() time.Time { return f.now }}
	if f.engine, err = NewEngine(t.Context(), f.dir, opts); err != nil {
		t.Fatal(err)
	}
	f.gate.Policies = f.engine
	failed := 0
	for _, id := range ciRunIDs {
		r := exampleRequest()
		r.Branch, r.Pipeline, r.Metadata.RunID, r.Metadata.Environment = "develop", "deploy-staging", id, "staging"
		rec, err := f.gate.Evaluate(t.Context(), r, ScanSource{})
		if err != nil {
			t.Fatal(err)
		}
		if policyErrorAt(rec.Decision.Reasons) >= 0 {
			failed++
		}
		f.now = f.now.Add(time.Minute)
	}
	if failed != 2 {
		t.Fatalf("%d policy_errors recorded, want 2", failed)
	}
	for skip, want := range map[bool]int{false: 4, true: 2} {
		impact, err := AnalyseImpact(t.Context(), f.store, f.engine.Policy(), ImpactOptions{SkipPolicyErrors: skip})
		if err != nil || impact.Evaluated != want || impact.NewPolicyErrors != 0 {
			t.Errorf("SkipPolicyErrors %v: evaluated %d, new policy errors %d, %v; want %d, 0", skip, impact.Evaluated, impact.NewPolicyErrors, err, want)
		}
	}
	editFile(t, filepath.Join(f.dir, projectsJSON), branchesBefore, branchesAfter)
	if err := f.engine.Reload(t.Context()); err != nil {
		t.Fatalf("a candidate that fails only where the active bundle failed: %v", err)
	}
}

// BenchmarkProjectProbes measures checkProjects on the shipped bundle (4
// projects, 6 pipelines: 6 probes), unpaced.
func BenchmarkProjectProbes(b *testing.B) {
	dir := bundleCopy(b)
	removeTests(b, dir)
	e, err := NewEngine(b.Context(), dir, EngineOptions{Poll: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	p := e.Policy()
	if n := len(p.bundle.Config.probes(MaxProjectProbes)); n != 6 {
		b.Fatalf("%d probes, want 6", n)
	}
	for b.Loop() {
		if err := checkProjects(b.Context(), p, p, time.Now(), func(step func()) { step() }); err != nil {
			b.Fatal(err)
		}
	}
}

// A storm of bad candidates, one after the other, each of another kind:
// the active bundle serves throughout, every rejection is counted, and
// last_error is the latest one's; the first good candidate clears it.
func TestReloadStormOfBadCandidates(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	te := newTestEngine(t, dir, -1)
	active := te.Policy()
	files := map[string]string{}
	for _, name := range []string{"decision.rego", "local.rego"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	restore := func() {
		for name, content := range files {
			writeFile(t, filepath.Join(dir, name), content)
		}
		os.Remove(filepath.Join(dir, "shape.rego"))
	}
	storm := []struct {
		reason string
		edit   func(t *testing.T, dir string)
	}{
		{RejectNoDecisionRule, undecidable["decision rule renamed"].edit},
		{RejectDecisionShape, undecidable["decision an array"].edit},
		{RejectProjectProbes, numericRunIDs},
		{RejectInvalid, func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "shape.rego"), "package tollgate\n\nallow if {\n")
		}},
		{RejectNoDecisionRule, undecidable["decision in a data document"].edit},
	}
	for i, c := range storm {
		restore()
		os.RemoveAll(filepath.Join(dir, "tollgate"))
		c.edit(t, dir)
		err := te.Reload(t.Context())
		if RejectReason(err) != c.reason {
			t.Fatalf("candidate %d: %v (%s), want %s", i, err, RejectReason(err), c.reason)
		}
		s := te.Status()
		if te.Policy() != active || s.Failures != uint64(i+1) || s.Reloads != 0 || s.LastError != err.Error() {
			t.Fatalf("after candidate %d: %+v", i, s)
		}
		te.decides(t, tollgate.Refused)
	}
	restore()
	os.RemoveAll(filepath.Join(dir, "tollgate"))
	editFile(t, filepath.Join(dir, projectsJSON), branchesBefore, branchesAfter)
	if err := te.Reload(t.Context()); err != nil {
		t.Fatalf("a good candidate after the storm: %v", err)
	}
	if s := te.Status(); te.Policy() == active || s.LastError != "" || s.Reloads != 1 || s.Failures != uint64(len(storm)) {
		t.Fatalf("after a good candidate: %+v", s)
	}
}

// A candidate that runs away on managed requests only: the unmanaged probe
// decides at once, and the recorded decisions and the project probes each
// run out of the evaluation budget, which is a policy_error: rejected.
func TestReloadRejectsACandidateOverTheBudgetOnRecordedTraffic(t *testing.T) {
	t.Parallel()
	// A budget the shipped bundle meets even under -race on a loaded
	// machine (the recorded decisions are made with it), which the
	// candidate's 400 million steps exceed by far.
	f, _ := historyFixture(t, EngineOptions{EvalTimeout: 500 * time.Millisecond})
	active := f.engine.Policy()
	editFile(t, filepath.Join(f.dir, "local.rego"), ") if {\n\tresolve.resolved\n} else := [] if {",
		") if {\n\tresolve.resolved\n\tr := numbers.range(1, 20000)\n\tcount({a | some a in r; some b in r; a == b + 100000}) == 0\n} else := [] if {")
	err := f.engine.Reload(t.Context())
	requireRejected(t, err, RejectPolicyErrors, "turns 4 of the 4 decisions", "time budget of 500ms")
	if f.engine.Policy() != active {
		t.Fatal("the candidate was activated")
	}
}
