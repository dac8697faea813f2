package rego

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunTestsShippedBundlePassesWithCoverage(t *testing.T) {
	b, err := LoadBundle(defaultBundle)
	if err != nil {
		t.Fatal(err)
	}
	report, err := RunTests(context.Background(), b, TestOptions{Coverage: true})
	if err != nil {
		t.Fatal(err)
	}
	if report.Total() == 0 {
		t.Fatal("no tests found in the shipped bundle")
	}
	for _, r := range report.Results {
		if r.Outcome != TestPass {
			t.Errorf("%s (%s:%d): %s: %s", r.FullName(), r.File, r.Row, r.Outcome, r.Message)
		}
	}
	if !report.OK() || report.Passed != report.Total() {
		t.Errorf("passed %d of %d", report.Passed, report.Total())
	}
	c := report.Coverage
	if c == nil {
		t.Fatal("coverage requested but not reported")
	}
	if c.Percent < 90 {
		t.Errorf("coverage %.1f%% < 90%%; not covered: %+v", c.Percent, c.Files)
	}
	if len(c.Files) != len(b.modules) {
		t.Errorf("coverage covers %d files, want the %d policy modules", len(c.Files), len(b.modules))
	}
	for _, f := range c.Files {
		if strings.HasSuffix(f.File, "_test.rego") {
			t.Errorf("coverage includes test file %s", f.File)
		}
		if f.CoveredLines == 0 {
			t.Errorf("%s: no line covered: are coverage file names the module keys?", f.File)
		}
	}
}

func TestRunTestsSeesTheBundleDataOnly(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"x_test.rego": `package x_test

test_no_engine_data if not data.engine
test_bundle_data if data.config.projects == {}
`,
	})
	report := mustRunTests(t, dir, TestOptions{})
	if report.Passed != 2 || report.Total() != 2 {
		t.Fatalf("want 2/2 passed, got %+v", report.Results)
	}
}

func TestRunTestsReportsFailuresAndErrorsWithoutFailing(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"x_test.rego": `package x_test

import data.x

test_allow_passes if x.allow with input as {"user": "alice"}

test_allow_refuses_bob if x.allow with input as {"user": "bob"}

test_conflict_errors if x.conflict == 1

test_printing_fails if {
	print("looked at", input.user)
	false
}

test_table[name] if {
	some name, user in {"alice": "alice", "bob": "bob"}
	x.allow with input.user as user
}

todo_test_later if false
`,
	})
	report := mustRunTests(t, dir, TestOptions{Coverage: true})
	got := map[string]TestResult{}
	for _, r := range report.Results {
		got[r.Name] = r
	}
	want := map[string]TestOutcome{
		"test_allow_passes":      TestPass,
		"test_allow_refuses_bob": TestFail,
		"test_conflict_errors":   TestError,
		"test_printing_fails":    TestFail,
		"test_table":             TestFail,
		"todo_test_later":        TestSkip,
	}
	for name, outcome := range want {
		r, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: not reported; got %+v", name, report.Results)
		case r.Outcome != outcome:
			t.Errorf("%s: got %s (%s), want %s", name, r.Outcome, r.Message, outcome)
		case r.Package != "data.x_test" || !strings.HasSuffix(r.File, "x_test.rego") || r.Row == 0:
			t.Errorf("%s: location %s %s:%d", name, r.Package, r.File, r.Row)
		case outcome != TestPass && outcome != TestSkip && r.Message == "":
			t.Errorf("%s: no message", name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d results, want %d: %+v", len(got), len(want), report.Results)
	}
	if m := got["test_table"].Message; !strings.Contains(m, "bob") || strings.Contains(m, "alice") {
		t.Errorf("test_table message %q should name the failing case bob only", m)
	}
	if o := got["test_printing_fails"].Output; !strings.Contains(o, "looked at") {
		t.Errorf("print output not captured: %q", o)
	}
	if report.Passed != 1 || report.Failed != 3 || report.Errored != 1 || report.Skipped != 1 || report.OK() {
		t.Errorf("totals: %+v", report)
	}
	if c := report.Coverage; c == nil || len(c.Files) != 1 || c.Percent <= 0 || c.Percent > 100 {
		t.Errorf("coverage of x.rego only: %+v", c)
	}
}

func TestRunTestsCoverageNamesUncoveredLines(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"x_test.rego": "package x_test\n\ntest_allow if data.x.allow with input.user as \"alice\"\n",
	})
	report := mustRunTests(t, dir, TestOptions{Coverage: true})
	c := report.Coverage
	if c.Percent >= 100 || len(c.Files) != 1 {
		t.Fatalf("want partial coverage of x.rego, got %+v", c)
	}
	// x.rego: "conflict := 1" (line 5) and "conflict := 2" (line 7) never run.
	got := c.Files[0].NotCovered
	if len(got) != 2 || got[0] != (LineRange{5, 5}) || got[1] != (LineRange{7, 7}) {
		t.Errorf("not covered: got %v, want [5 7]", got)
	}
}

func TestRunTestsFilter(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"x_test.rego": "package x_test\n\ntest_one if true\n\ntest_two if true\n",
	})
	report := mustRunTests(t, dir, TestOptions{Run: "x_test.test_one$"})
	if report.Total() != 1 || report.Results[0].Name != "test_one" {
		t.Errorf("filter: got %+v", report.Results)
	}
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RunTests(context.Background(), b, TestOptions{Run: "("}); err == nil || !strings.Contains(err.Error(), "test filter") {
		t.Errorf("bad regex: got %v", err)
	}
}

func TestRunTestsNoTests(t *testing.T) {
	report := mustRunTests(t, writeBundle(t, nil), TestOptions{Coverage: true})
	if report.Total() != 0 || report.OK() {
		t.Errorf("want an empty report, got %+v", report)
	}
}

func TestRunTestsCompileErrorIsAnError(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"x_test.rego": "package x_test\n\ntest_undefined_ref if data.x.allow == undefined_var\n",
	})
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RunTests(context.Background(), b, TestOptions{})
	if err == nil || !strings.Contains(err.Error(), "undefined_var") {
		t.Errorf("want a compile error naming undefined_var, got %v", err)
	}
}

// Hot reload vets candidates while the active policy serves requests.
func TestRunTestsConcurrently(t *testing.T) {
	b, err := LoadBundle(defaultBundle)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			report, err := RunTests(context.Background(), b, TestOptions{Coverage: i%2 == 0})
			if err != nil || !report.OK() {
				t.Errorf("run %d: %v %+v", i, err, report)
			}
		})
		wg.Go(func() {
			for range 50 {
				p.Evaluate(context.Background(), exampleRequest(), validContext(at(t, "2026-11-23T10:00:00+01:00")))
			}
		})
	}
	wg.Wait()
}

// TestRunTestsPaced: pacing changes when the tests run, not what they
// report, and gives back as much time as the tests took.
func TestRunTestsPaced(t *testing.T) {
	b, err := LoadBundle(defaultBundle)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := RunTests(context.Background(), b, TestOptions{Strict: true, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	paced, err := RunTests(context.Background(), b, TestOptions{Strict: true, Parallel: 1, Pace: true})
	if err != nil {
		t.Fatal(err)
	}
	if !paced.OK() || paced.Passed != plain.Passed || paced.Total() != plain.Total() {
		t.Fatalf("paced: passed %d of %d; unpaced: %d of %d", paced.Passed, paced.Total(), plain.Passed, plain.Total())
	}
	var ran time.Duration
	for _, r := range paced.Results {
		ran += r.Duration
	}
	if paced.Duration < 2*ran {
		t.Errorf("paced run took %v for %v of tests: want at least twice as long", paced.Duration, ran)
	}

	// A paced run stops pausing when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunTests(ctx, b, TestOptions{Parallel: 1, Pace: true}); err == nil {
		t.Error("want an error from a cancelled paced run")
	}
}

func TestRunTestsCancelled(t *testing.T) {
	b, err := LoadBundle(defaultBundle)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunTests(ctx, b, TestOptions{}); err == nil {
		t.Error("want an error from a cancelled run")
	}
}

func BenchmarkRunTests(b *testing.B) {
	bundle, err := LoadBundle(defaultBundle)
	if err != nil {
		b.Fatal(err)
	}
	for _, coverage := range []bool{false, true} {
		name := "plain"
		if coverage {
			name = "coverage"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := RunTests(context.Background(), bundle, TestOptions{Coverage: coverage}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// writeBundle writes the smallest valid bundle (an empty global policy, no
// projects, one policy module x.rego) plus files, and returns its directory.
func writeBundle(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{
		"config/global_policy/data.json": "{}",
		"config/projects/data.json":      "{}",
		"x.rego": `package x

allow if input.user == "alice"

conflict := 1 if not input.user

conflict := 2 if not input.user
`,
	}
	for name, content := range files {
		all[name] = content
	}
	for name, content := range all {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustRunTests(t *testing.T, dir string, opts TestOptions) *TestReport {
	t.Helper()
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	report, err := RunTests(context.Background(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return report
}
