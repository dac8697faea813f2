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

func TestReplayOverHTTP(t *testing.T) {
	f := newFixture(t)
	_, accepted := f.post("/v1/evaluate", exampleRequest)
	_, cooldown := f.post("/v1/evaluate", exampleRequest)
	for _, d := range []map[string]any{accepted, cooldown} {
		code, r := f.do(http.MethodGet, "/v1/decisions/"+d["decision_id"].(string)+"/replay", "", "")
		if code != http.StatusOK || r["identical"] != true || len(r["differences"].([]any)) != 0 ||
			r["bundle_revision"] != f.engine.Status().Revision || r["replayed"].(map[string]any)["status"] != d["status"] {
			t.Fatalf("replay of a %s decision: %d %v", d["status"], code, r)
		}
	}
	code, r := f.do(http.MethodGet, "/v1/decisions/01a2095f-e559-7235-b13f-2a4376cd92a6/replay", "", "")
	if code != http.StatusNotFound || r["error"].(map[string]any)["code"] != "not_found" {
		t.Fatalf("replay of an unknown decision: %d %v, want 404", code, r)
	}
}

func TestImpactOverHTTP(t *testing.T) {
	f := newFixture(t)
	staging := func(branch string) string {
		return `{"repository":"org/service-api","branch":"` + branch + `","pipeline":"deploy-staging","metadata":{"environment":"staging"}}`
	}
	release := map[string]bool{}
	for _, branch := range []string{"main", "release/1.0", "develop", "release/2.0", "main"} {
		code, d := f.post("/v1/evaluate", staging(branch))
		if code != http.StatusOK {
			t.Fatalf("evaluate %s: %d %v", branch, code, d)
		}
		if strings.HasPrefix(branch, "release/") {
			release[d["decision_id"].(string)] = true
		}
	}
	tighter := `{"service-api": {"repositories": ["org/service-api"], "allowed_branches": ["main"],
		"pipelines": {"deploy-prod": {"type": "deploy"}, "deploy-staging": {"type": "deploy"}}}}`
	code, r := f.post("/v1/impact", `{"config": {"projects": `+tighter+`}}`)
	if code != http.StatusOK || r["evaluated"] != 5.0 || r["changed"] != 2.0 || r["more"] != false {
		t.Fatalf("impact of tighter branches: %d %v", code, r)
	}
	groups := r["groups"].([]any)
	g := groups[0].(map[string]any)
	if len(groups) != 1 || g["from"] != "accepted" || g["to"] != "refused" || toJSON(t, g["added"]) != `["branch_not_allowed"]` ||
		toJSON(t, g["removed"]) != `[]` || g["count"] != 2.0 {
		t.Fatalf("impact groups: %v", groups)
	}
	for _, id := range g["examples"].([]any) {
		if !release[id.(string)] {
			t.Errorf("example %v is not a release decision", id)
		}
	}
	if code, r := f.post("/v1/impact", `{"limit": 2, "branch": "main"}`); code != http.StatusOK || r["evaluated"] != 2.0 || r["changed"] != 0.0 {
		t.Fatalf("impact of the active bundle on main: %d %v", code, r)
	}
	if n := f.countDecisions(); n != 5 {
		t.Fatalf("impact recorded decisions: %d, want the 5 evaluated", n)
	}
	for _, tc := range []struct{ body, message string }{
		{`{"limit": 0}`, "limit must be a number from 1 to 10000"},
		{`{"limit": 10001}`, "limit must be a number from 1 to 10000"},
		{`{"status": "maybe"}`, "status must be accepted or refused"},
		{`{"since": "yesterday"}`, "since must be an RFC 3339 time"},
		{`{"config": {"projects": {"x": {}}}}`, "x.repositories: required"},
		{`{"configuration": {}}`, "unknown field"},
		{`{"examples": 0}`, "examples must be a number from 1 to 100"},
	} {
		code, r := f.post("/v1/impact", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(r["error"].(map[string]any)["message"].(string), tc.message) {
			t.Errorf("impact %s: %d %v, want 400 with %q", tc.body, code, r, tc.message)
		}
	}
}
