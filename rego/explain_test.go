package rego

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestExplainNamesTheRuleThatFiredAndTheValuesItRead(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	r := exampleRequest()
	r.Branch = "feature/x"
	c := validContext(at(t, "2026-11-23T10:00:00+01:00")) // a Monday, in the window
	d, steps := p.Explain(t.Context(), r, c)
	if want := p.Evaluate(t.Context(), r, c); !slices.Equal(codes(d.Reasons), codes(want.Reasons)) || d.Status != want.Status {
		t.Fatalf("Explain decided %s %v, Evaluate %s %v: explaining must not change the decision", d.Status, codes(d.Reasons), want.Status, codes(want.Reasons))
	}
	if !slices.Equal(codes(d.Reasons), []string{"branch_not_allowed"}) {
		t.Fatalf("reasons %v, want [branch_not_allowed]", codes(d.Reasons))
	}
	out, _ := json.MarshalIndent(steps, "", "  ")
	var firedReason, readBranch, failed bool
	for _, s := range steps {
		if s.Location == "" || s.Expression == "" {
			t.Errorf("step without location or expression: %+v", s)
		}
		if s.Rule == "data.tollgate.local.branch_reasons" {
			if list, ok := s.Result.([]any); ok && len(list) == 1 && list[0].(map[string]any)["code"] == "branch_not_allowed" {
				firedReason = true
			}
		}
		// The variable by the name the author gave it, the input by its path.
		if s.Values["input.request.branch"] == "feature/x" && s.Values["pattern"] == "release/*" && s.Result == false {
			readBranch = true
		}
		if s.Result == false {
			failed = true
		}
	}
	if !firedReason || !readBranch || !failed {
		t.Fatalf("explanation: a rule giving branch_not_allowed %v, an expression reading input.request.branch %v, a false expression %v; want all:\n%s",
			firedReason, readBranch, failed, out)
	}
}
