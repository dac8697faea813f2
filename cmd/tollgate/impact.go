package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

func runImpact(ctx context.Context, c *cli, args []string) int {
	f := newFlags(c, "impact",
		"impact --bundle CANDIDATE_DIR [--since TIME|DURATION] [--until TIME] [--project P] [--limit N] [--fail-on-change] [--json] [--data-dir DIR | --database-url URL]",
		`Re-evaluates recorded decisions, newest first, under a candidate bundle, each
with its own recorded request and context (its time, licence, cooldown,
scan, controls), and reports how many would change, grouped by old status →
new status and the reason codes added and removed, with example decision
IDs. Run it on a policy change before merging it; with --fail-on-change, CI
fails the change (exit 1) when any decision would change.

A decision the candidate turns into policy_error, which it was not, means
the candidate cannot decide it: the report names those decisions, and the
exit is 1 whatever the flags, since serve would refuse to activate such a
candidate (it replays its newest recorded decisions before a reload). It
also asks the candidate about each registered project and pipeline (at
most 200), as a reload does, and a policy_error there is reported and
exits 1 too. Exit 0 otherwise, 2 on error (a bad bundle, a store error).
Progress goes to stderr.

It reads the store directly, with serve's store flags. A server answers the
same question for a candidate configuration with POST /v1/impact.`)
	bundleDir := f.String("bundle", "", "the candidate bundle `DIR` (required)")
	since := f.String("since", "", "only decisions made at or after `TIME` (RFC 3339) or within DURATION before now (720h)")
	until := f.String("until", "", "only decisions made before `TIME` (RFC 3339)")
	project := f.String("project", "", "only decisions of `PROJECT`")
	pipeline := f.String("pipeline", "", "only decisions of `PIPELINE`")
	limit := f.Int("limit", 0, "re-evaluate at most `N` decisions, the newest (0: all)")
	examples := f.Int("examples", rego.DefaultImpactExamples, "show `N` example decision IDs per group")
	failOnChange := f.Bool("fail-on-change", false, "exit 1 if any decision would change")
	asJSON := f.Bool("json", false, "print the analysis as JSON")
	sf := addStoreFlags(f)
	if code, ok := f.parseNoArgs(args); !ok {
		return code
	}
	if *bundleDir == "" {
		return f.usageError("--bundle is required: the directory of the candidate bundle")
	}
	if *limit < 0 || *examples < 1 {
		return f.usageError("--limit must be 0 or more and --examples 1 or more")
	}
	opts := rego.ImpactOptions{Limit: *limit, Examples: *examples,
		Filter: tollgate.DecisionFilter{Project: *project, Pipeline: *pipeline}}
	var err error
	if *since != "" {
		if opts.Filter.Since, err = parseSince(*since, c.now()); err != nil {
			return f.usageError("%v", err)
		}
	}
	if *until != "" {
		if opts.Filter.Until, err = parseTime("until", *until); err != nil {
			return f.usageError("%v", err)
		}
	}
	b, err := rego.LoadBundle(*bundleDir)
	if err != nil {
		return f.fail("%v", err)
	}
	candidate, err := rego.Compile(ctx, b)
	if err != nil {
		return f.fail("%v", err)
	}
	start := c.now()
	opts.Progress = func(evaluated, changed int) {
		fmt.Fprintf(c.stderr, "impact: %d decisions re-evaluated, %d would change (%s)\n",
			evaluated, changed, c.now().Sub(start).Round(time.Millisecond))
	}
	store, err := openReader(ctx, *sf.dataDir, *sf.databaseURL)
	if err != nil {
		return f.fail("%v", err)
	}
	impact, err := rego.AnalyseImpact(ctx, store, candidate, opts)
	if err = errors.Join(err, store.Close()); err != nil {
		return f.fail("%v", err)
	}
	if *asJSON {
		out, _ := json.MarshalIndent(impact, "", "  ")
		fmt.Fprintf(c.stdout, "%s\n", out)
	} else {
		printImpact(c.stdout, *bundleDir, impact)
	}
	// As a reload does, ask the candidate about each registered project:
	// the recorded decisions may not cover them.
	probed := rego.ProbeProjects(ctx, candidate, c.now())
	var ce *rego.CandidateError
	switch {
	case errors.As(probed, &ce):
		out := c.stdout
		if *asJSON {
			out = c.stderr
		}
		fmt.Fprintf(out, "new policy_error: %s; serve would not activate it unless the active bundle fails there too\n", ce.Detail)
	case probed != nil:
		return f.fail("%v", probed)
	}
	if impact.NewPolicyErrors > 0 || probed != nil || *failOnChange && impact.Changed > 0 {
		return exitNo
	}
	return exitOK
}

// parseSince reads --since: an RFC 3339 time, or a duration before now.
func parseSince(value string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(value); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	t, err := parseTime("since", value)
	if err != nil {
		return t, fmt.Errorf("%v, or a duration before now such as 720h", err)
	}
	return t, nil
}

func printImpact(w io.Writer, dir string, impact rego.Impact) {
	more := ""
	if impact.More {
		more = " (the newest; --limit stopped before the end of the history)"
	}
	fmt.Fprintf(w, "candidate %s (revision %s): %d of %d recorded decisions would change%s\n",
		dir, impact.CandidateRevision, impact.Changed, impact.Evaluated, more)
	for _, g := range impact.Groups {
		var codes []string
		for _, c := range g.Added {
			codes = append(codes, "+"+c)
		}
		for _, c := range g.Removed {
			codes = append(codes, "-"+c)
		}
		fmt.Fprintf(w, "  %6d  %s → %s  %s  e.g. %s\n", g.Count, g.From, g.To, strings.Join(codes, " "), strings.Join(g.Examples, ", "))
	}
	if impact.NewPolicyErrors > 0 {
		ids := impact.PolicyErrorIDs
		listed := strings.Join(ids, ", ")
		if impact.NewPolicyErrors > len(ids) {
			listed += fmt.Sprintf(" and %d more", impact.NewPolicyErrors-len(ids))
		}
		fmt.Fprintf(w, "new policy_error: the candidate cannot decide %d recorded decisions, and serve would not activate it: %s\n",
			impact.NewPolicyErrors, listed)
		fmt.Fprintf(w, "  the first says: %s\n", impact.PolicyErrorMessage)
	}
}
