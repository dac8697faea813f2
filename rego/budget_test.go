package rego

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// runawayModule never finishes in practice: 400 million iterations that
// find nothing, in constant memory.
const runawayModule = `package tollgate

decision := {"status": "accepted", "reasons": [], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""} if {
	r := numbers.range(1, 20000)
	count({a | some a in r; some b in r; a == b + 100000}) == 0
}
`

// promptly bounds how long a budgeted evaluation may take to come back. It
// is not a performance target: without the budget the evaluation runs for
// minutes, so coming back at all within this bound is the behaviour tested.
const promptly = 10 * time.Second

func runawayPolicy(tb testing.TB) *Policy {
	tb.Helper()
	return mustPolicy(tb, newBundleDir(tb, map[string]string{"policy.rego": runawayModule}))
}

func TestRunawayPolicyIsAPolicyError(t *testing.T) {
	t.Parallel()
	p := runawayPolicy(t).WithEvalTimeout(100 * time.Millisecond)
	start := time.Now()
	d := p.Evaluate(context.Background(), exampleRequest(), validContext(time.Now()))
	if took := time.Since(start); took > promptly {
		t.Fatalf("the evaluation took %v with a budget of 100ms", took)
	}
	if d.Status != tollgate.Refused || len(d.Reasons) != 1 || d.Reasons[0].Code != tollgate.CodePolicyError ||
		!strings.Contains(d.Reasons[0].Message, "time budget of 100ms") {
		t.Fatalf("want refused with policy_error naming the budget, got %+v", d)
	}
	if d.BundleRevision != p.Revision() || d.Pipeline != exampleRequest().Pipeline {
		t.Errorf("incomplete policy_error decision: %+v", d)
	}
}

func TestEvaluationStopsWhenTheCallerGivesUp(t *testing.T) {
	t.Parallel()
	p := runawayPolicy(t).WithEvalTimeout(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	d := p.Evaluate(ctx, exampleRequest(), validContext(time.Now()))
	if took := time.Since(start); took > promptly {
		t.Fatalf("the evaluation took %v after its context ended", took)
	}
	if d.Status != tollgate.Refused || d.Reasons[0].Code != tollgate.CodePolicyError ||
		!strings.Contains(d.Reasons[0].Message, "stopped: context deadline exceeded") {
		t.Fatalf("want refused with policy_error saying it stopped, got %+v", d)
	}
}

func TestEvalTimeoutDefaults(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, defaultBundle)
	if p.EvalTimeout() != DefaultEvalTimeout || p.WithEvalTimeout(0).EvalTimeout() != DefaultEvalTimeout {
		t.Errorf("default budget %v, want %v", p.EvalTimeout(), DefaultEvalTimeout)
	}
	q := p.WithEvalTimeout(5 * time.Second)
	if q.EvalTimeout() != 5*time.Second || p.EvalTimeout() != DefaultEvalTimeout {
		t.Error("WithEvalTimeout changed the original policy")
	}
	// A normal decision is unaffected by a budget.
	if d := q.Evaluate(context.Background(), exampleRequest(), mondayContext(t)); d.Status != tollgate.Accepted {
		t.Fatalf("got %+v", d)
	}
}

// The gate records a runaway policy's refusal like any other decision, and
// a simulation with a candidate configuration keeps the active budget.
func TestGateRecordsARunawayPolicy(t *testing.T) {
	t.Parallel()
	store := &gateStore{}
	g := &Gate{
		Policies: fixedPolicy{runawayPolicy(t).WithEvalTimeout(50 * time.Millisecond)},
		Store:    store,
		Licence:  noLicence{},
		Now:      time.Now,
		NewID:    func() string { return "id" },
		Score:    func([]tollgate.CVSSVector) (tollgate.ScoreReceipt, bool) { return tollgate.ScoreReceipt{}, false },
	}
	rec, err := g.Evaluate(context.Background(), exampleRequest(), ScanSource{})
	if err != nil {
		t.Fatal(err)
	}
	if store.decides != 1 || rec.Decision.Status != tollgate.Refused || rec.Decision.Reasons[0].Code != tollgate.CodePolicyError {
		t.Fatalf("want one recorded policy_error, got %d decides, %+v", store.decides, rec.Decision)
	}
	d, err := g.Simulate(context.Background(), Simulation{Request: exampleRequest(), Projects: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Reasons[0].Code != tollgate.CodePolicyError || !strings.Contains(d.Reasons[0].Message, "time budget of 50ms") {
		t.Fatalf("simulation with a candidate configuration: %+v", d)
	}
}
