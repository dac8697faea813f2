package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestSimulateExplain(t *testing.T) {
	f := newFixture(t)
	feature := strings.Replace(exampleRequest, `"branch":"main"`, `"branch":"feature/x"`, 1)
	code, d := f.post("/v1/simulate", `{"input": `+feature+`, "explain": true}`)
	if code != http.StatusOK || d["status"] != "refused" {
		t.Fatalf("simulate with explain: %d %v", code, d)
	}
	steps, _ := d["explain"].([]any)
	var fired, read bool
	for _, s := range steps {
		step := s.(map[string]any)
		if step["location"] == "" || step["expression"] == "" {
			t.Errorf("step without location or expression: %v", step)
		}
		if step["rule"] == "data.tollgate.local.branch_reasons" && strings.Contains(toJSON(t, step["result"]), "branch_not_allowed") {
			fired = true
		}
		if values, ok := step["values"].(map[string]any); ok && values["input.request.branch"] == "feature/x" && step["result"] == false {
			read = true
		}
	}
	if !fired || !read {
		t.Fatalf("explain: branch_reasons fired %v, a false expression that read input.request.branch %v; want both, got %d steps", fired, read, len(steps))
	}
	// Without explain, no steps: explaining costs a trace.
	if _, d := f.post("/v1/simulate", `{"input": `+feature+`}`); d["explain"] != nil {
		t.Fatalf("simulate without explain has steps: %v", d["explain"])
	}
	if code, _ := f.post("/v1/simulate", `{"input": `+feature+`, "explain": "yes"}`); code != http.StatusBadRequest {
		t.Fatalf("explain that is not a boolean: %d, want 400", code)
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
