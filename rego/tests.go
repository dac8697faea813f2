package rego

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestOptions select what RunTests does beyond running every test.
type TestOptions struct {
	// Coverage computes line coverage of the policy modules (not the tests).
	// It costs a tracer on every evaluation, so hot reload leaves it off.
	Coverage bool
	// Run, when set, is a regular expression: only tests whose full name
	// (data.<package>.<rule>) matches it run, as `opa test --run`.
	Run string
	// Strict makes a builtin error fail the test, as it fails a decision in
	// the engine (policy_error). Stock `opa test` is not strict; hot reload is.
	Strict bool
	// Parallel is how many tests run at once; 0 means one per CPU.
	Parallel int
	// Pace, with Parallel 1, pauses between tests: the run then takes
	// about half a CPU, for twice as long. Hot reload paces the
	// candidate's tests so that they do not crowd out the requests.
	Pace bool
}

// pause waits for d, or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// TestOutcome is the result of one test.
type TestOutcome string

// Outcomes, as `opa test` reports them.
const (
	TestPass  TestOutcome = "pass"
	TestFail  TestOutcome = "fail"  // the test is false or undefined
	TestError TestOutcome = "error" // evaluation failed: conflict, timeout, …
	TestSkip  TestOutcome = "skip"  // a todo_test_ rule
)

// TestResult is one test of a bundle.
type TestResult struct {
	Package  string // "data.tollgate.global_test"
	Name     string // "test_freeze_refuses_inside_window"
	File     string
	Row      int
	Outcome  TestOutcome
	Duration time.Duration
	// Message says why the test did not pass: the evaluation error, or
	// which parameterised cases failed. Empty when it passed.
	Message string
	Output  string // what the test printed with print()
}

// FullName is the test's data path, as `opa test` and TestOptions.Run see it.
func (r TestResult) FullName() string { return r.Package + "." + r.Name }

// TestReport is the outcome of a bundle's tests.
type TestReport struct {
	Results  []TestResult // in file order
	Passed   int
	Failed   int
	Errored  int
	Skipped  int
	Duration time.Duration
	Coverage *Coverage // nil unless TestOptions.Coverage
}

// Total is the number of tests that were found and selected.
func (r *TestReport) Total() int { return len(r.Results) }

// OK reports whether at least one test ran and none failed or errored.
func (r *TestReport) OK() bool { return r.Passed > 0 && r.Failed == 0 && r.Errored == 0 }

// Coverage is line coverage of a bundle's policy modules by its tests.
type Coverage struct {
	Percent         float64 // 0 to 100
	CoveredLines    int
	NotCoveredLines int
	Files           []FileCoverage // sorted by file name
}

// FileCoverage is the coverage of one policy module.
type FileCoverage struct {
	File            string
	Percent         float64
	CoveredLines    int
	NotCoveredLines int
	NotCovered      []LineRange // sorted, adjacent lines merged
}

// LineRange is an inclusive range of lines, numbered from 1.
type LineRange struct{ Start, End int }

func (r LineRange) String() string {
	if r.Start == r.End {
		return fmt.Sprint(r.Start)
	}
	return fmt.Sprintf("%d-%d", r.Start, r.End)
}

// RunTests runs the bundle's own _test.rego tests in-process, as stock
// `opa test` would run them on the bundle directory: policy modules and tests
// compiled together, over the bundle's data exactly as loaded, and without
// constant folding, so that the tests see what auditors running `opa test`
// see.
//
// A failing or erroring test is a result, not an error; an error means the
// tests could not run (a compile error, a bad TestOptions.Run). A bundle
// without tests gives an empty report: the caller decides what that means.
// RunTests shares nothing between calls and may run concurrently with
// itself and with evaluations of a Policy compiled from the same bundle.
func RunTests(ctx context.Context, b *Bundle, opts TestOptions) (*TestReport, error) {
	if opts.Run != "" {
		// The runner would compile it too, but its error would not say where
		// the expression came from.
		if _, err := regexp.Compile(opts.Run); err != nil {
			return nil, fmt.Errorf("test filter %q: %w", opts.Run, err)
		}
	}
	modules := make(map[string]*ast.Module, len(b.modules)+len(b.tests))
	maps.Copy(modules, b.modules)
	maps.Copy(modules, b.tests)

	// The runner adds its own stages to the compiler, so every run needs a
	// fresh one. Compile copies the modules: the bundle's stay untouched.
	compiler := ast.NewCompiler().WithEnablePrintStatements(true)
	store := inmem.NewFromASTObject(b.data) // tests only read it
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("test bundle %s: %w", b.Dir, err)
	}
	defer store.Abort(ctx, txn)

	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(opts.Strict).
		SetParallel(opts.Parallel).
		Filter(opts.Run)
	var tracer *cover.Cover
	if opts.Coverage {
		tracer = cover.New()
		// The extra passes only label why a line is not covered (index
		// excluded, early exit) and would triple the run time.
		runner = runner.SetCoverageQueryTracer(tracer).SetCoverageRuns(nil)
	}

	start := time.Now()
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return nil, fmt.Errorf("test bundle %s: %w", b.Dir, err)
	}
	report := &TestReport{Results: []TestResult{}}
	for r := range ch {
		report.add(result(r))
		if opts.Pace {
			// The runner starts the next test once this one is received,
			// and holds its result until the next receive: a pause of twice
			// a test's time leaves the CPU idle for about half of it.
			pause(ctx, 2*r.Duration)
		}
	}
	report.Duration = time.Since(start)
	if err := ctx.Err(); err != nil {
		// Cancelled tests are left out of the channel: the report is partial.
		return nil, fmt.Errorf("test bundle %s: %w", b.Dir, err)
	}
	slices.SortFunc(report.Results, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Row, b.Row), cmp.Compare(a.Name, b.Name))
	})
	if tracer != nil {
		report.Coverage = coverage(tracer, b.modules)
	}
	return report, nil
}

func (r *TestReport) add(t TestResult) {
	r.Results = append(r.Results, t)
	switch t.Outcome {
	case TestPass:
		r.Passed++
	case TestFail:
		r.Failed++
	case TestError:
		r.Errored++
	case TestSkip:
		r.Skipped++
	}
}

func result(r *tester.Result) TestResult {
	t := TestResult{
		Package:  r.Package,
		Name:     r.Name,
		Duration: r.Duration,
		Output:   strings.TrimSpace(string(r.Output)),
	}
	if r.Location != nil {
		t.File, t.Row = r.Location.File, r.Location.Row
	}
	switch {
	case r.Skip:
		t.Outcome = TestSkip
	case r.Error != nil:
		t.Outcome, t.Message = TestError, r.Error.Error()
		if errors.Is(r.Error, context.DeadlineExceeded) {
			t.Message = "timed out: " + t.Message
		}
	case r.Fail:
		t.Outcome, t.Message = TestFail, failureMessage(r)
	default:
		t.Outcome = TestPass
	}
	return t
}

// failureMessage names the failing cases of a parameterised test (test_case
// sub-results); a plain test can only be false or undefined, and finding the
// expression at fault would need a full trace, which costs too much to
// collect on every run.
func failureMessage(r *tester.Result) string {
	var failed []string
	for name, sr := range r.SubResults.Iter {
		if sr.Fail && len(sr.SubResults) == 0 {
			failed = append(failed, strings.Join(name, "/"))
		}
	}
	if len(failed) > 0 {
		return "failing cases: " + strings.Join(failed, ", ")
	}
	return "the test is false or undefined"
}

// coverage keeps the policy modules of an OPA coverage report: the tests
// cover themselves and would only inflate the figure.
func coverage(tracer *cover.Cover, modules map[string]*ast.Module) *Coverage {
	// Bundle modules are keyed by the file name the parser saw, which is
	// the name the tracer records.
	byFile := modules
	report := tracer.Report(byFile)
	c := &Coverage{Files: make([]FileCoverage, 0, len(byFile))}
	for _, file := range slices.Sorted(maps.Keys(byFile)) {
		fc := FileCoverage{File: file}
		if fr := report.Files[file]; fr != nil {
			fc.Percent = fr.Coverage
			fc.CoveredLines, fc.NotCoveredLines = fr.CoveredLines, fr.NotCoveredLines
			fc.NotCovered = lineRanges(fr.NotCovered)
		}
		c.CoveredLines += fc.CoveredLines
		c.NotCoveredLines += fc.NotCoveredLines
		c.Files = append(c.Files, fc)
	}
	if total := c.CoveredLines + c.NotCoveredLines; total > 0 {
		c.Percent = 100 * float64(c.CoveredLines) / float64(total)
	}
	return c
}

// lineRanges merges OPA's per-expression ranges into sorted runs of lines.
func lineRanges(ranges []cover.Range) []LineRange {
	var lines []int
	for _, r := range ranges {
		for row := r.Start.Row; row <= r.End.Row; row++ {
			lines = append(lines, row)
		}
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	var out []LineRange
	for _, l := range lines {
		if n := len(out); n > 0 && out[n-1].End+1 == l {
			out[n-1].End = l
			continue
		}
		out = append(out, LineRange{Start: l, End: l})
	}
	return out
}
