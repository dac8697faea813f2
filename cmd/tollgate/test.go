package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/rego"
)

func runTest(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "test",
		"test [--coverage-min PERCENT] [--run REGEX] [-v] [DIR]",
		`Runs the bundle's own _test.rego tests in-process, as `+"`opa test DIR`"+` would, and
reports line coverage of its policy modules (the tests themselves excluded).
DIR defaults to bundles/tollgate. Exit 0 when every test passes and coverage
reaches --coverage-min, 1 otherwise (or when no test ran), 2 when the bundle
does not load or compile.`)
	minCoverage := f.Float64("coverage-min", 0, "fail when coverage is below `PERCENT` (0 to 100; 0 is no minimum)")
	filter := f.String("run", "", "run only the tests whose name, data.<package>.<test>, matches `REGEX`")
	verbose := f.Bool("v", false, "print every test, not only those that did not pass")
	dirs, err := f.parse(args)
	if err != nil {
		return exitCode(err)
	}
	dir := "bundles/tollgate"
	switch len(dirs) {
	case 0:
	case 1:
		dir = dirs[0]
	default:
		return f.usageError("one bundle directory at most, got %d: %s", len(dirs), strings.Join(dirs, " "))
	}
	if *minCoverage < 0 || *minCoverage > 100 || math.IsNaN(*minCoverage) {
		return f.usageError("--coverage-min %v: want a percentage from 0 to 100", *minCoverage)
	}

	bundle, err := rego.LoadBundle(dir)
	if err != nil {
		c.errorf("test", "%v", err)
		return exitError
	}
	report, err := rego.RunTests(ctx, bundle, rego.TestOptions{Coverage: true, Run: *filter})
	if err != nil {
		c.errorf("test", "%v", err)
		return exitError
	}

	if report.Total() == 0 {
		if *filter != "" {
			c.errorf("test", "no test in %s matches --run %q", dir, *filter)
		} else {
			c.errorf("test", "no tests in %s: a bundle ships its rules with _test.rego files that test them", dir)
		}
		return exitNo
	}
	printResults(c.stdout, report, *verbose)
	ok := report.OK()
	if !printCoverage(c.stdout, report.Coverage, *minCoverage) {
		ok = false
	}
	if !ok {
		return exitNo
	}
	return exitOK
}

// printResults prints results the way `opa test` does: a line per test that
// did not pass (every test with -v), then the totals.
func printResults(w io.Writer, report *rego.TestReport, verbose bool) {
	printed := false
	for _, r := range report.Results {
		if r.Outcome == rego.TestPass && !verbose {
			continue
		}
		printed = true
		fmt.Fprintf(w, "%s:%d: %s: %s (%s)\n", r.File, r.Row, r.FullName(), strings.ToUpper(string(r.Outcome)), r.Duration.Round(time.Microsecond))
		if r.Message != "" && r.Outcome != rego.TestPass {
			fmt.Fprintf(w, "  %s\n", indent(r.Message))
		}
		if r.Output != "" && (verbose || r.Outcome != rego.TestPass) {
			fmt.Fprintf(w, "  printed:\n    %s\n", strings.ReplaceAll(r.Output, "\n", "\n    "))
		}
	}
	if printed {
		fmt.Fprintln(w, strings.Repeat("-", 80))
	}
	total := report.Total()
	for _, line := range []struct {
		label string
		n     int
	}{{"PASS", report.Passed}, {"FAIL", report.Failed}, {"ERROR", report.Errored}, {"SKIPPED", report.Skipped}} {
		if line.n > 0 {
			fmt.Fprintf(w, "%s: %d/%d\n", line.label, line.n, total)
		}
	}
}

// printCoverage prints the coverage and the lines not covered, and reports
// whether it reaches min.
func printCoverage(w io.Writer, c *rego.Coverage, min float64) bool {
	// Shown truncated, not rounded, so that 89.96% never prints as a 90.0%
	// that is "below the required 90%".
	shown := math.Floor(c.Percent*10) / 10
	fmt.Fprintf(w, "coverage: %.1f%% (%d of %d lines)\n", shown, c.CoveredLines, c.CoveredLines+c.NotCoveredLines)
	for _, file := range c.Files {
		for _, r := range file.NotCovered {
			fmt.Fprintf(w, "  not covered: %s:%s\n", file.File, r)
		}
	}
	if c.Percent < min {
		fmt.Fprintf(w, "FAIL: coverage %.1f%% is below the required %s%%: test the lines listed above\n", shown, strconv.FormatFloat(min, 'f', -1, 64))
		return false
	}
	return true
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }
