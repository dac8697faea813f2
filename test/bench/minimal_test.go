package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"
)

// The minimal policy is the baseline of a row of make bench: it is only a
// fair one if it decides as tollgate's shipped bundle does. These tests
// hold that, and run its own `opa test` suite, formatting and strict check.

const minimalDir = "minimal"

func TestMinimalPolicyRegoTests(t *testing.T) {
	results, err := tester.Run(context.Background(), minimalDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no Rego tests found in " + minimalDir)
	}
	for _, r := range results {
		if !r.Pass() {
			t.Errorf("%s.%s: %v", r.Package, r.Name, r)
		}
	}
}

func TestMinimalPolicyFormatted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(minimalDir, "*.rego"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Rego in %s: %v", minimalDir, err)
	}
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		formatted, err := format.Source(path, src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(src, formatted) {
			t.Errorf("%s is not formatted: go tool opa fmt -w %s", path, path)
		}
	}
}

// The reason codes the minimal policy gives; each must be seen in the
// differential test, so that no rule goes untested.
var minimalCodes = []string{
	"licence_invalid", "licence_expired", "project_not_managed", "freeze_active",
	"time_window_violation", "weekend_violation", "branch_not_allowed",
	"pipeline_not_allowed", "cooldown",
}

// TestMinimalDecidesAsTollgate evaluates tollgate's shipped bundle (as the
// "stock opa" row serves it, with tollgate's context in the input) and the
// minimal policy (as its row serves it, with its clock set) on the same
// generated requests, times, licence verdicts and cooldowns, and wants the
// same status and reason codes (as a multiset: the minimal policy's
// reasons are a set, and its messages are its own). First on the harness's
// configuration, then on random global policies and a registry with the
// cases the harness's lacks (a pipeline's own branches, a project without
// environments, a hotfix pipeline).
func TestMinimalDecidesAsTollgate(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	configs := 20
	cases := 1200
	if testing.Short() {
		configs, cases = 4, 300
	}
	check := func(name string, r *rand.Rand, projects, global map[string]any, n int) {
		compareMinimal(t, root, name, r, projects, global, n, seen)
	}

	r := rand.New(rand.NewPCG(20, 1))
	check("the harness's configuration", r, benchRegistry(smallRegistry), benchGlobalPolicy(0), cases)
	harness := maps.Clone(seen)
	for code, n := range harness {
		t.Logf("harness's configuration: %s %d", code, n)
	}
	// The harness's configuration allows weekends: every other code, and
	// acceptances, must come up on it.
	for _, code := range append(slices.DeleteFunc(slices.Clone(minimalCodes), func(c string) bool {
		return c == "weekend_violation"
	}), "accepted") {
		if harness[code] == 0 {
			t.Errorf("the harness's configuration never gave %s: the generator misses it", code)
		}
	}
	for i := range configs {
		check(fmt.Sprintf("random configuration %d", i), r, variedRegistry(), randomGlobalPolicy(r), cases/10)
	}
	for _, code := range append(slices.Clone(minimalCodes), "accepted", "refused") {
		if seen[code] < 5 {
			t.Errorf("%s came up %d times: the generator hardly tests it", code, seen[code])
		}
	}
}

// compareMinimal writes the shipped bundle and the minimal policy with
// projects and global, evaluates both on n cases drawn from r, fails at
// the first that they decide differently, and counts the statuses and
// codes it saw in seen.
func compareMinimal(t *testing.T, root, name string, r *rand.Rand, projects, global map[string]any, n int, seen map[string]int) {
	t.Helper()
	shipped, minimal := t.TempDir(), t.TempDir()
	if err := writeBundle(root, shipped, projects, global); err != nil {
		t.Fatal(err)
	}
	if err := writeMinimal(root, minimal, projects, global); err != nil {
		t.Fatal(err)
	}
	tollgateQuery := prepareQuery(t, shipped, "data.tollgate.decision")
	minimalQuery := prepareQuery(t, minimal, "data.minimal.decision")
	times := interestingTimes(r, global)
	for i := range n {
		c := randomCase(r, times)
		// The bundle reads the clock from the input; the minimal policy
		// from OPA's: both are set to the case's.
		at := time.Unix(0, c.now)
		want := evalCodes(t, tollgateQuery, c.tollgateInput(), at)
		got := evalCodes(t, minimalQuery, c.minimalInput(), at)
		if !slices.Equal(want, got) {
			t.Fatalf("%s, case %d, %s:\n tollgate: %v\n minimal:  %v\n global policy: %v",
				name, i, c, want, got, global)
		}
		for _, code := range want {
			seen[code]++
		}
	}
}

// FuzzMinimalDecidesAsTollgate is the differential test's random part with
// the fuzzer choosing the seed of the configuration and the cases.
func FuzzMinimalDecidesAsTollgate(f *testing.F) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(20), uint64(0))
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64) {
		r := rand.New(rand.NewPCG(seed1, seed2))
		compareMinimal(t, root, "fuzzed configuration", r, variedRegistry(), randomGlobalPolicy(r), 50, map[string]int{})
	})
}

func prepareQuery(t *testing.T, dir, query string) rego.PreparedEvalQuery {
	t.Helper()
	pq, err := rego.New(rego.Query(query), rego.Load([]string{dir}, nil), rego.Strict(true)).
		PrepareForEval(context.Background())
	if err != nil {
		t.Fatalf("prepare %s in %s: %v", query, dir, err)
	}
	return pq
}

// evalCodes evaluates pq and returns its decision's status ("accepted" or
// "refused") followed by its reason codes, sorted.
func evalCodes(t *testing.T, pq rego.PreparedEvalQuery, input map[string]any, now time.Time) []string {
	t.Helper()
	rs, err := pq.Eval(context.Background(), rego.EvalInput(input), rego.EvalTime(now))
	if err != nil {
		t.Fatalf("eval %v: %v", input, err)
	}
	if len(rs) != 1 {
		t.Fatalf("decision undefined for %v", input)
	}
	d, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		t.Fatalf("decision %v is not an object", rs[0].Expressions[0].Value)
	}
	var codes []string
	reasons, _ := d["reasons"].([]any)
	for _, reason := range reasons {
		codes = append(codes, reason.(map[string]any)["code"].(string))
	}
	slices.Sort(codes)
	status, _ := d["status"].(string)
	if status == "refused" && len(codes) == 0 {
		t.Fatalf("refused without a reason: %v", input)
	}
	return append([]string{status}, codes...)
}

// decisionCase is one request with what tollgate knows beside it.
type decisionCase struct {
	request      map[string]any
	now          int64
	licence      string // "" for no report
	lastAccepted *int64
}

func (c decisionCase) String() string {
	last := "never"
	if c.lastAccepted != nil {
		last = time.Unix(0, *c.lastAccepted).UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("request %v at %s, licence %q, last accepted %s",
		c.request, time.Unix(0, c.now).UTC().Format(time.RFC3339Nano), c.licence, last)
}

// tollgateInput is the input tollgate (and the "stock opa" row) gives the
// shipped bundle.
func (c decisionCase) tollgateInput() map[string]any {
	context := map[string]any{"now_ns": c.now, "cooldown": map[string]any{}}
	if c.licence != "" {
		context["licence"] = map[string]any{"status": c.licence, "detail": "generated"}
	}
	if c.lastAccepted != nil {
		context["cooldown"] = map[string]any{"last_accepted_ns": *c.lastAccepted}
	}
	return map[string]any{"request": c.request, "context": context}
}

// minimalInput is the input of the minimal policy (and of its row).
func (c decisionCase) minimalInput() map[string]any {
	in := map[string]any{"request": c.request}
	if c.licence != "" {
		in["licence"] = c.licence
	}
	if c.lastAccepted != nil {
		in["last_accepted_ns"] = *c.lastAccepted
	}
	return in
}

func pick[T any](r *rand.Rand, choices ...T) T { return choices[r.IntN(len(choices))] }

func randomCase(r *rand.Rand, times []int64) decisionCase {
	repository := fmt.Sprintf("org/project-%05d", r.IntN(smallRegistry))
	if r.IntN(8) == 0 {
		repository = pick(r, "org/unknown", fmt.Sprintf("org/project-%05d", smallRegistry))
	}
	c := decisionCase{
		request: map[string]any{
			"repository": repository,
			"branch":     pick(r, "main", "main", "release/1.2", "release/1.2", "release/1/2", "release/", "feature/x", "hotfix/1"),
			"pipeline":   pick(r, "deploy-prod", "deploy-prod", "deploy-prod", "deploy-staging", "hotfix", "build"),
			"metadata": map[string]any{"initiator": "ci", "run_id": "1",
				"environment": pick(r, "production", "production", "production", "staging", "qa")},
		},
		now:     times[r.IntN(len(times))],
		licence: pick(r, "valid", "valid", "valid", "valid", "valid", "valid", "valid", "valid", "valid", "expired", "invalid", "", "unknown"),
	}
	if r.IntN(2) == 0 {
		// Around the 30-minute cooldown's end, and sometimes ahead of now.
		last := c.now - int64(r.IntN(40)-5)*int64(time.Minute) + int64(pick(r, 0, 0, 1, -1, r.IntN(int(time.Minute))))
		c.lastAccepted = &last
	}
	return c
}

// interestingTimes are instants at which the rules of global change, on
// both sides, and random instants around them, in the years of the
// harness's freezes and today's.
func interestingTimes(r *rand.Rand, global map[string]any) []int64 {
	loc, err := time.LoadLocation(global["timezone"].(string))
	if err != nil {
		panic(err)
	}
	var times []int64
	edge := func(t time.Time) {
		for _, d := range []time.Duration{-time.Minute, -1, 0, 1, time.Minute} {
			times = append(times, t.Add(d).UnixNano())
		}
	}
	freezes, _ := global["freezes"].([]any)
	for _, f := range freezes {
		for _, key := range []string{"start", "end"} {
			t, err := time.Parse(time.RFC3339, f.(map[string]any)[key].(string))
			if err != nil {
				panic(err)
			}
			edge(t)
		}
	}
	days := []time.Time{
		time.Date(2020, 11, 26, 0, 0, 0, 0, loc), time.Date(2020, 11, 28, 0, 0, 0, 0, loc),
		time.Date(2026, 3, 28, 0, 0, 0, 0, loc), time.Date(2026, 3, 29, 0, 0, 0, 0, loc), // DST in Europe
		time.Date(2026, 10, 25, 0, 0, 0, 0, loc), time.Date(2026, 12, 5, 0, 0, 0, 0, loc),
		time.Date(2099, 12, 25, 0, 0, 0, 0, loc), time.Date(2100, 1, 4, 0, 0, 0, 0, loc),
	}
	for range 20 {
		days = append(days, time.Date(2026, time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, loc))
	}
	hours := []string{"00:00", "23:59"}
	windows, _ := global["time_windows"].([]any)
	for _, w := range windows {
		hours = append(hours, w.(map[string]any)["start"].(string), w.(map[string]any)["end"].(string))
	}
	for _, day := range days {
		for _, hhmm := range hours {
			var h, m int
			fmt.Sscanf(hhmm, "%d:%d", &h, &m)
			edge(time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, loc))
		}
		for range 4 {
			times = append(times, day.Add(time.Duration(r.Int64N(int64(48*time.Hour)))).UnixNano())
		}
	}
	return times
}

// variedRegistry is the harness's registry with the cases it lacks.
func variedRegistry() map[string]any {
	projects := benchRegistry(smallRegistry)
	pipelines := func(name string) map[string]any {
		return projects[name].(map[string]any)["pipelines"].(map[string]any)
	}
	pipelines("project-00001")["deploy-prod"].(map[string]any)["allowed_branches"] = []string{"hotfix/*", "main"}
	delete(projects["project-00002"].(map[string]any), "environments")
	pipelines("project-00003")["hotfix"] = map[string]any{"type": "hotfix", "allowed_branches": []string{"hotfix/*"}}
	delete(projects["project-00004"].(map[string]any), "allowed_branches")
	return projects
}

// randomGlobalPolicy is a global policy of the kinds of rules the minimal
// policy covers: one-off freezes, time windows, weekends, in a random time
// zone, each for some environments or all.
func randomGlobalPolicy(r *rand.Rand) map[string]any {
	tz := pick(r, "Europe/Paris", "UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
	loc, err := time.LoadLocation(tz)
	if err != nil {
		panic(err)
	}
	environments := func(rule map[string]any) map[string]any {
		switch r.IntN(4) {
		case 0: // every environment
		case 1:
			rule["environments"] = []string{"production"}
		case 2:
			rule["environments"] = []string{"staging", "qa"}
		default:
			rule["environments"] = []string{}
		}
		return rule
	}
	global := map[string]any{"timezone": tz}
	if r.IntN(3) > 0 {
		global["unmanaged_projects"] = pick(r, "accept", "refuse")
	}
	var freezes []any
	for i := range r.IntN(4) {
		start := pick(r, time.Date(2020, 11, 25, 0, 0, 0, 0, loc), time.Date(2026, 1, 1, 0, 0, 0, 0, loc),
			time.Date(2099, 12, 24, 0, 0, 0, 0, loc)).Add(time.Duration(r.Int64N(int64(300 * 24 * time.Hour))))
		end := start.Add(time.Hour + time.Duration(r.Int64N(int64(10*24*time.Hour))))
		freezes = append(freezes, environments(map[string]any{"id": fmt.Sprintf("f%d", i),
			"start": start.Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339), "reason": "generated"}))
	}
	if freezes != nil {
		global["freezes"] = freezes
	}
	var windows []any
	for range r.IntN(3) {
		days := []string{}
		for _, d := range []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"} {
			if r.IntN(10) < 6 {
				days = append(days, d)
			}
		}
		start := r.IntN(23 * 60)
		end := start + 1 + r.IntN(24*60-start)
		hhmm := func(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }
		windows = append(windows, environments(map[string]any{"days": days, "start": hhmm(start), "end": hhmm(end)}))
	}
	if windows != nil {
		global["time_windows"] = windows
	}
	if r.IntN(4) > 0 {
		global["weekends"] = environments(map[string]any{"allowed": r.IntN(3) == 0})
	}
	return global
}
