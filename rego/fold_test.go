package rego

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tollgate/tollgate"
)

// plain is p without constant folding: every rule evaluated in every
// decision, as stock OPA does.
func (p *Policy) plain() *Policy {
	c := *p
	c.folded = nil
	return &c
}

func TestFoldingKeepsOnlyInputIndependentRules(t *testing.T) {
	p := mustPolicy(t, newBundleDir(t, map[string]string{
		"settings/data.json": `{"x": 1}`,
		"policy.rego": `package tollgate

import data.settings as g

constant := g.x + 1
index[k] := v if some k, v in {"a": constant}
uses_input := input.request.branch
uses_a_rule_that_uses_input := concat("-", [uses_input, "x"])
clock := time.now_ns()
broken := 1 / (g.x - 1)
undefined_rule if g.x == 2
with_modifier := x if x := constant with input.request.branch as "b"
f(a) := a + constant

# A with on data opens a frame of its own: it must see the rule evaluated
# again, not the folded value.
shadowed := x if x := constant with data.settings.x as 10

decision := {"status": "accepted", "reasons": [], "warnings": [], "waived": [], "suppressed": [],
	"project": "", "pipeline": "", "branch": uses_a_rule_that_uses_input, "environment": sprintf("%d", [shadowed])}
`}))
	var folded []string
	for _, rules := range p.folded.bySig {
		for _, r := range rules {
			folded = append(folded, r.path.String())
		}
	}
	slices.Sort(folded)
	if p.folded.inputWithsOnly {
		t.Error("a with on data.settings: the folded values must not be seen in its frame")
	}
	want := []string{"data.tollgate.constant", "data.tollgate.index", "data.tollgate.undefined_rule"}
	if !slices.Equal(folded, want) {
		t.Fatalf("folded %v, want %v", folded, want)
	}
	constant := ast.MustParseRef("data.tollgate.constant")
	if v, ok := p.folded.get(constant, refSig(constant)); !ok || v.String() != "2" {
		t.Fatalf("data.tollgate.constant folded as %v", v)
	}
	d := p.Evaluate(context.Background(), exampleRequest(), validContext(time.Now()))
	if d.Status != tollgate.Accepted || d.Branch != "main-x" || d.Environment != "11" {
		t.Fatalf("decision %+v: want branch main-x (from the input) and environment 11 (with sees data.settings.x = 10)", d)
	}
}

// TestBrokenRuleIsNotFolded: a rule that fails when folded is left to
// evaluation, which reports it as a policy_error, as without folding.
func TestBrokenRuleIsNotFolded(t *testing.T) {
	p := mustPolicy(t, newBundleDir(t, map[string]string{
		"settings/data.json": `{"x": 1}`,
		"policy.rego": `package tollgate

broken := 1 / (data.settings.x - 1)

decision := {"status": "accepted", "reasons": [], "warnings": [], "waived": [], "suppressed": [],
	"project": "", "pipeline": "", "branch": input.request.branch, "environment": sprintf("%v", [broken])}
`}))
	if p.folded.n != 0 {
		t.Fatalf("folded %d rules, want none", p.folded.n)
	}
	d := p.Evaluate(context.Background(), exampleRequest(), validContext(time.Now()))
	if d.Status != tollgate.Refused || d.Reasons[0].Code != tollgate.CodePolicyError {
		t.Fatalf("want policy_error, got %+v", d)
	}
}

func TestShippedBundleFoldsItsIndexes(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	for _, path := range []string{"data.tollgate.resolve.project_by_repository", "data.tollgate.global.scopes", "data.tollgate.global.other_scope"} {
		ref := ast.MustParseRef(path)
		if _, ok := p.folded.get(ref, refSig(ref)); !ok {
			t.Errorf("%s is not folded", path)
		}
	}
	if !p.folded.inputWithsOnly {
		t.Error("the shipped bundle's withs replace only the input: its folded values hold in their frames")
	}
}

// TestFoldedDecidesAsPlain is the differential test of constant folding:
// on random configurations of the shipped bundle and random requests, the
// folded evaluation gives exactly the plain one's decision.
func TestFoldedDecidesAsPlain(t *testing.T) {
	configs, requests := 8, 120
	if testing.Short() {
		configs, requests = 3, 50
	}
	seen := map[string]int{}
	for seed := range uint64(configs) {
		for code, n := range checkFoldedDecidesAsPlain(t, seed, requests) {
			seen[code] += n
		}
	}
	// The random cases reach every outcome, or the comparison proves little.
	for _, code := range append([]string{"accepted", "scan_missing"}, randomCodes...) {
		if seen[code] == 0 {
			t.Errorf("no random request gave %s: %v", code, seen)
		}
	}
	t.Logf("outcomes: %v", seen)
}

// FuzzFoldedDecidesAsPlain explores configurations and requests further:
// go test -fuzz FuzzFoldedDecidesAsPlain ./rego/
func FuzzFoldedDecidesAsPlain(f *testing.F) {
	for seed := range uint64(4) {
		f.Add(seed, seed+100)
	}
	f.Fuzz(func(t *testing.T, config, requests uint64) {
		checkFoldedDecidesAsPlain(t, config, 20, requests)
	})
}

// checkFoldedDecidesAsPlain compares folded and plain decisions on one
// random configuration, and counts the statuses and reason codes seen.
func checkFoldedDecidesAsPlain(t *testing.T, config uint64, requests int, requestSeeds ...uint64) map[string]int {
	t.Helper()
	rng := rand.New(rand.NewPCG(config, 0x70119a7e))
	global, projects := randomConfig(rng)
	dir := t.TempDir()
	copyBundle(t, dir)
	writeJSON(t, filepath.Join(dir, "config", "global_policy", "data.json"), global)
	writeJSON(t, filepath.Join(dir, "config", "projects", "data.json"), projects)
	p := mustPolicy(t, dir)
	plain := p.plain()
	if len(requestSeeds) > 0 {
		rng = rand.New(rand.NewPCG(requestSeeds[0], config))
	}
	ctx := context.Background()
	seen := map[string]int{}
	for i := range requests {
		r, c := randomRequest(rng, projects)
		folded, want := p.Evaluate(ctx, r, c), plain.Evaluate(ctx, r, c)
		if !reflect.DeepEqual(folded, want) {
			t.Fatalf("config %d, request %d: %+v in %+v\nfolded: %+v\nplain:  %+v", config, i, r, c, folded, want)
		}
		if folded.Status == tollgate.Accepted {
			seen["accepted"]++
		}
		for _, reason := range append(folded.Reasons, folded.Warnings...) {
			seen[reason.Code]++
		}
	}
	return seen
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

var (
	randomEnvironments = []string{"production", "staging", "qa"}
	randomDays         = []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	randomZones        = []string{"UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"}
	randomTypes        = []string{"deploy", "hotfix", "test"}
	randomBranches     = []string{"main", "release/1.2", "hotfix/x", "feature/a/b", "develop"}
	randomPatterns     = []string{"main", "release/*", "hotfix/*", "**", "feature/**"}
	randomCodes        = []string{"freeze_active", "time_window_violation", "weekend_violation", "branch_not_allowed", "cooldown", "pipeline_not_allowed", "incident_mode"}
	randomBase         = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func pick[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }

// some returns a random non-empty subset of from, in its order.
func some[T any](rng *rand.Rand, from []T) []T {
	var out []T
	for len(out) == 0 {
		for _, v := range from {
			if rng.IntN(2) == 0 {
				out = append(out, v)
			}
		}
	}
	return out
}

func hhmm(rng *rand.Rand, lo, hi int) (string, string) {
	start := lo + rng.IntN(hi-lo)
	end := start + 1 + rng.IntN(hi-start)
	f := func(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }
	return f(start * 30), f(end * 30)
}

// randomConfig is a valid global_policy and projects registry.
func randomConfig(rng *rand.Rand) (map[string]any, map[string]any) {
	scoped := func(m map[string]any) map[string]any {
		if rng.IntN(3) > 0 {
			m["environments"] = some(rng, randomEnvironments)
		}
		return m
	}
	var freezes []any
	for i := range rng.IntN(4) {
		f := map[string]any{"id": fmt.Sprintf("f%d", i), "reason": "because"}
		start, end := hhmm(rng, 0, 48)
		switch rng.IntN(4) {
		case 0:
			from := randomBase.Add(time.Duration(rng.IntN(24*365)) * time.Hour)
			f["start"] = from.Format(time.RFC3339)
			f["end"] = from.Add(time.Duration(1+rng.IntN(24*20)) * time.Hour).Format(time.RFC3339)
		case 1:
			f["weekly"] = map[string]any{"days": some(rng, randomDays), "start": start, "end": end}
		case 2:
			f["monthly"] = map[string]any{"days": some(rng, []int{1, 2, 15, 28, 29, 30, 31}), "start": start, "end": end}
		default:
			f["yearly"] = map[string]any{"dates": some(rng, []string{"01-01", "02-29", "07-14", "12-24", "12-31"}), "start": start, "end": end}
		}
		freezes = append(freezes, scoped(f))
	}
	var windows []any
	for range rng.IntN(3) {
		start, end := hhmm(rng, 10, 44)
		windows = append(windows, scoped(map[string]any{"days": some(rng, randomDays), "start": start, "end": end}))
	}
	global := map[string]any{
		"timezone":           pick(rng, randomZones),
		"unmanaged_projects": pick(rng, []string{"refuse", "accept"}),
		"freezes":            freezes,
		"time_windows":       windows,
		"weekends":           scoped(map[string]any{"allowed": rng.IntN(2) == 0}),
		"incident":           map[string]any{"pipeline_types": some(rng, randomTypes), "relax_cooldown": rng.IntN(2) == 0},
	}
	projects := map[string]any{}
	for i := range 1 + rng.IntN(4) {
		pipelines := map[string]any{}
		for j := range 1 + rng.IntN(3) {
			pl := map[string]any{"type": pick(rng, randomTypes)}
			if rng.IntN(2) == 0 {
				pl["cooldown_minutes"] = rng.IntN(90)
			}
			if rng.IntN(3) == 0 {
				pl["allowed_branches"] = some(rng, randomPatterns)
			}
			pipelines[fmt.Sprintf("p%d", j)] = pl
		}
		project := map[string]any{
			"repositories":     []string{fmt.Sprintf("org/r%d", i)},
			"allowed_branches": some(rng, randomPatterns),
			"pipelines":        pipelines,
		}
		if rng.IntN(4) > 0 {
			envs := map[string]any{}
			for _, env := range some(rng, randomEnvironments) {
				envs[env] = map[string]any{"pipeline_types": some(rng, randomTypes)}
			}
			project["environments"] = envs
		}
		if rng.IntN(5) == 0 {
			project["enforcement"] = "warn"
		}
		if rng.IntN(3) == 0 {
			project["risk"] = map[string]any{"require_scan": rng.IntN(2) == 0, "max_cvss": 7}
		}
		projects[fmt.Sprintf("project-%d", i)] = project
	}
	return global, projects
}

// randomRequest asks for a random pipeline (sometimes unmanaged) at a
// random time, with random controls in force.
func randomRequest(rng *rand.Rand, projects map[string]any) (tollgate.Request, tollgate.Context) {
	repo := fmt.Sprintf("org/r%d", rng.IntN(len(projects)+1))
	r := tollgate.Request{
		Repository: repo,
		Branch:     pick(rng, randomBranches),
		Pipeline:   fmt.Sprintf("p%d", rng.IntN(3)),
		Metadata:   tollgate.Metadata{Initiator: "ci", RunID: "1", Environment: pick(rng, append(randomEnvironments, "dev"))},
	}
	now := randomBase.Add(time.Duration(rng.Int64N(int64(400 * 24 * time.Hour))))
	c := validContext(now)
	switch rng.IntN(10) {
	case 0:
		c.Licence = tollgate.Licence{Status: tollgate.LicenceExpired, Detail: "expired"}
	case 1:
		c.Licence = tollgate.Licence{Status: tollgate.LicenceInvalid, Detail: "bad"}
	}
	if rng.IntN(2) == 0 {
		c.Cooldown.LastAcceptedAt = now.Add(-time.Duration(rng.IntN(120)) * time.Minute)
	}
	control := func(id string) tollgate.Control {
		return tollgate.Control{ID: id, Reason: "r", ExpiresAt: now.Add(time.Duration(rng.IntN(600)-60) * time.Minute)}
	}
	if rng.IntN(4) == 0 {
		f := control("ef")
		if rng.IntN(2) == 0 {
			f.Environments = some(rng, randomEnvironments)
		}
		c.Freezes = append(c.Freezes, f)
	}
	if rng.IntN(5) == 0 {
		i := control("inc")
		c.Incident = &i
	}
	for range rng.IntN(3) {
		e := control("ex")
		e.ExceptionKind = pick(rng, []string{"waiver", "break_glass"})
		e.Code = pick(rng, randomCodes)
		e.Project = fmt.Sprintf("project-%d", rng.IntN(len(projects)))
		if rng.IntN(2) == 0 {
			e.Branch = pick(rng, randomPatterns)
		}
		c.Exceptions = append(c.Exceptions, e)
	}
	return r, c
}
