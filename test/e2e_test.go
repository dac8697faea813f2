package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkRecorded verifies what every evaluated decision carries, and that
// GET /v1/decisions/{id} returns it with the request and context it was
// made in.
func checkRecorded(t *testing.T, s *server, r request, d decision, revision string, before, after time.Time) record {
	t.Helper()
	if d.ID == "" {
		t.Errorf("decision_id is empty")
	}
	if d.BundleRevision != revision {
		t.Errorf("bundle_revision %q, want the active %q", d.BundleRevision, revision)
	}
	if d.EvaluatedAt.Before(before.Add(-time.Second)) || d.EvaluatedAt.After(after.Add(time.Second)) {
		t.Errorf("evaluated_at %v is not the server's clock at the request (between %v and %v)", d.EvaluatedAt, before, after)
	}
	if d.Pipeline != r.Pipeline || d.Branch != r.Branch || d.Environment != r.Metadata.Environment {
		t.Errorf("decision is for %s/%s/%s, want %s/%s/%s", d.Pipeline, d.Branch, d.Environment,
			r.Pipeline, r.Branch, r.Metadata.Environment)
	}
	rec := s.decisionByID(t, d.ID)
	if got, want := string(mustJSON(t, rec.decision)), string(mustJSON(t, d)); got != want {
		t.Errorf("GET /v1/decisions/%s:\n got %s\nwant %s", d.ID, got, want)
	}
	if rec.Request != r {
		t.Errorf("recorded request %+v, want %+v", rec.Request, r)
	}
	if !rec.Context.Now.Equal(d.EvaluatedAt) {
		t.Errorf("recorded context.now %v, want evaluated_at %v", rec.Context.Now, d.EvaluatedAt)
	}
	wantIdentity := "dev"
	if s.token != "" {
		wantIdentity = "e2e" // the harness's token
	}
	if rec.Identity != wantIdentity {
		t.Errorf("recorded identity %q, want %q", rec.Identity, wantIdentity)
	}
	return rec
}

// TestReasonCodes covers every reason code of the decision flow over HTTP
// on one server with a valid licence and the test policy (harness_test.go).
func TestReasonCodes(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{auth: true})
	revision := s.bundleStatus(t).Revision

	evaluate := func(t *testing.T, r request) (decision, record) {
		t.Helper()
		before := time.Now()
		d := s.evaluate(t, r)
		rec := checkRecorded(t, s, r, d, revision, before, time.Now())
		if rec.Context.Licence.Status != "valid" || rec.Context.Licence.Subject != "e2e" {
			t.Errorf("recorded licence %+v, want valid for e2e", rec.Context.Licence)
		}
		return d, rec
	}

	withInitiator := func(r request, initiator string) request {
		r.Metadata.Initiator = initiator
		return r
	}
	cases := []struct {
		name     string
		req      request
		status   string
		codes    []string
		warnings []string
		project  string
		message  string // in the first reason's message
	}{
		{"accepted", req("org/service-api", "main", "deploy-staging", envStaging),
			"accepted", nil, nil, "service-api", ""},
		{"project_not_managed/repository", req("org/unknown", "main", "deploy", envDev),
			"refused", []string{"project_not_managed"}, nil, "", `"org/unknown"`},
		{"project_not_managed/pipeline", req("org/service-api", "main", "nope", envStaging),
			"refused", []string{"project_not_managed"}, nil, "", `"nope"`},
		{"freeze_active", req("org/e2e", "main", "deploy", envFrozen),
			"refused", []string{"freeze_active"}, nil, "e2e", `"e2e-freeze"`},
		{"time_window_violation", req("org/e2e", "main", "deploy", envRestricted),
			"refused", []string{"time_window_violation"}, nil, "e2e", envRestricted},
		{"branch_not_allowed", req("org/service-api", "feature/x", "deploy-prod", envProduction),
			"refused", []string{"branch_not_allowed"}, nil, "service-api", `"feature/x"`},
		{"pipeline_not_allowed", req("org/service-api", "hotfix/1", "hotfix-prod", envStaging),
			"refused", []string{"pipeline_not_allowed"}, nil, "service-api", `"hotfix"`},
		{"initiator_not_allowed", withInitiator(req("org/payments-worker", "main", "deploy-prod", envProduction), "alice"),
			"refused", []string{"initiator_not_allowed"}, nil, "payments", `"alice"`},
		// After initiator_not_allowed: payments-worker is the same project, and
		// this accepted decision starts the project's deploy-prod cooldown.
		{"accepted/payments by CI", req("org/payments", "main", "deploy-prod", envProduction),
			"accepted", nil, nil, "payments", ""},
		// Global rules still apply to unmanaged requests.
		{"unmanaged and frozen", req("org/unknown", "main", "deploy", envFrozen),
			"refused", []string{"project_not_managed", "freeze_active"}, nil, "", ""},
		// Every reason that applies, in the order of the flow.
		{"every reason in order", req("org/service-api", "feature/x", "deploy-prod", envFrozen),
			"refused", []string{"freeze_active", "branch_not_allowed", "pipeline_not_allowed"}, nil, "service-api", ""},
		// web-frontend is in warn mode: local reasons become warnings.
		{"warn mode", req("org/web-frontend", "feature/x", "deploy-prod", envProduction),
			"accepted", nil, []string{"branch_not_allowed"}, "web-frontend", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, _ := evaluate(t, c.req)
			if d.Status != c.status || !slices.Equal(d.codes(), orEmpty(c.codes)) || !slices.Equal(d.warningCodes(), orEmpty(c.warnings)) {
				t.Fatalf("got %s %v warnings %v, want %s %v warnings %v: %+v",
					d.Status, d.codes(), d.warningCodes(), c.status, orEmpty(c.codes), orEmpty(c.warnings), d)
			}
			if d.Project != c.project {
				t.Errorf("project %q, want %q", d.Project, c.project)
			}
			for _, r := range append(d.Reasons, d.Warnings...) {
				if r.Message == "" {
					t.Errorf("reason %s has no message", r.Code)
				}
			}
			if c.message != "" && !strings.Contains(d.Reasons[0].Message, c.message) {
				t.Errorf("message %q, want it to mention %s", d.Reasons[0].Message, c.message)
			}
		})
	}

	t.Run("cooldown", func(t *testing.T) {
		r := req("org/service-api", "main", "deploy-prod", envProduction)
		first, firstRec := evaluate(t, r)
		if first.Status != "accepted" {
			t.Fatalf("first evaluation: %s %v, want accepted", first.Status, first.codes())
		}
		if firstRec.Context.Cooldown.LastAcceptedAt != nil {
			t.Errorf("first evaluation's context has a cooldown: %v", firstRec.Context.Cooldown.LastAcceptedAt)
		}
		second, secondRec := evaluate(t, r)
		if second.Status != "refused" || !slices.Equal(second.codes(), []string{"cooldown"}) {
			t.Fatalf("second evaluation: %s %v, want refused [cooldown]", second.Status, second.codes())
		}
		if last := secondRec.Context.Cooldown.LastAcceptedAt; last == nil || !last.Equal(first.EvaluatedAt) {
			t.Errorf("recorded cooldown.last_accepted_at %v, want the first decision's evaluated_at %v", last, first.EvaluatedAt)
		}
		// The cooldown is per project + pipeline + branch.
		other := req("org/service-api", "release/1.2", "deploy-prod", envProduction)
		if d, _ := evaluate(t, other); d.Status != "accepted" {
			t.Errorf("another branch of the same pipeline: %s %v, want accepted", d.Status, d.codes())
		}
	})

	// weekend_violation cannot be produced through /v1/evaluate on a weekday:
	// evaluate always uses the real clock. /v1/simulate evaluates the same
	// policy at a given time, so it covers the rule: next Saturday noon in
	// Paris, with the test global policy but weekends refused in production.
	t.Run("weekend_violation (simulate)", func(t *testing.T) {
		local := time.Now().In(paris)
		days := (int(time.Saturday) - int(local.Weekday()) + 7) % 7
		if days == 0 {
			days = 7
		}
		saturday := time.Date(local.Year(), local.Month(), local.Day()+days, 12, 0, 0, 0, paris)
		policy := globalPolicy(time.Now())
		policy["weekends"] = map[string]any{"allowed": false, "environments": []string{envProduction}}
		r := req("org/service-api", "release/2.0", "deploy-prod", envProduction)
		status, raw := s.postJSON(t, "/v1/simulate", map[string]any{
			"input": r, "at": saturday.Format(time.RFC3339),
			"config": map[string]any{"global_policy": policy},
		})
		if status != http.StatusOK {
			t.Fatalf("POST /v1/simulate: %d %s", status, raw)
		}
		requireDecisionShape(t, raw, true)
		d := decode[decision](t, raw)
		if d.Status != "refused" || !slices.Equal(d.codes(), []string{"weekend_violation"}) {
			t.Fatalf("got %s %v, want refused [weekend_violation]: %s", d.Status, d.codes(), raw)
		}
		if !d.EvaluatedAt.Equal(saturday) {
			t.Errorf("evaluated_at %v, want %v", d.EvaluatedAt, saturday)
		}
		if !strings.Contains(d.Reasons[0].Message, "saturday") {
			t.Errorf("message %q does not say saturday", d.Reasons[0].Message)
		}
		// The same request on the same Saturday with the bundle's own policy
		// (weekends allowed) is accepted.
		status, raw = s.postJSON(t, "/v1/simulate", map[string]any{"input": r, "at": saturday.Format(time.RFC3339)})
		if d := decode[decision](t, raw); status != http.StatusOK || d.Status != "accepted" {
			t.Errorf("without the override: %d %s, want accepted", status, raw)
		}
	})
	s.stop(t)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestLicence starts servers with bad licences: every request is refused
// with the licence's reason only, and recorded.
func TestLicence(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, licence, code, message string
	}{
		{"signed by another key", foreignLicence, "licence_invalid", "signature"},
		{"missing file", missingLicence, "licence_invalid", missingLicence},
		{"expired", expiredLicence, "licence_expired", "expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverOptions{licence: c.licence})
			revision := s.bundleStatus(t).Revision
			// Without the licence these would be accepted, and refused with
			// project_not_managed and freeze_active: the licence stops evaluation.
			for _, r := range []request{
				req("org/service-api", "main", "deploy-staging", envStaging),
				req("org/unknown", "main", "deploy", envFrozen),
			} {
				before := time.Now()
				d := s.evaluate(t, r)
				if d.Status != "refused" || !slices.Equal(d.codes(), []string{c.code}) || len(d.Warnings) != 0 {
					t.Fatalf("%+v: got %s %v warnings %v, want refused [%s] only", r, d.Status, d.codes(), d.warningCodes(), c.code)
				}
				if !strings.Contains(d.Reasons[0].Message, c.message) {
					t.Errorf("message %q, want it to mention %q", d.Reasons[0].Message, c.message)
				}
				rec := checkRecorded(t, s, r, d, revision, before, time.Now())
				wantState := strings.TrimPrefix(c.code, "licence_")
				if rec.Context.Licence.Status != wantState {
					t.Errorf("recorded licence status %q, want %q", rec.Context.Licence.Status, wantState)
				}
			}
			if !strings.Contains(s.stderr.String(), "the licence is not valid") {
				t.Errorf("serve did not warn at start that the licence is not valid")
			}
			s.stop(t)
		})
	}
}

// TestCooldownRace sends 30 simultaneous evaluations for one project +
// pipeline + branch with a cooldown: exactly one may be accepted.
func TestCooldownRace(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	const n = 30
	body := mustJSON(t, req("org/service-api", "main", "deploy-prod", envProduction))
	start := make(chan struct{})
	results := make([]decision, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			status, raw, err := s.try(http.MethodPost, "/v1/evaluate", "application/json", body)
			switch {
			case err != nil:
				errs[i] = err
			case status != http.StatusOK:
				errs[i] = fmt.Errorf("status %d: %s", status, raw)
			default:
				errs[i] = json.Unmarshal(raw, &results[i])
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	var accepted []decision
	ids := map[string]bool{}
	for _, d := range results {
		ids[d.ID] = true
		switch {
		case d.Status == "accepted" && len(d.Reasons) == 0:
			accepted = append(accepted, d)
		case d.Status == "refused" && slices.Equal(d.codes(), []string{"cooldown"}):
		default:
			t.Errorf("decision %s: %s %v, want accepted or refused [cooldown]", d.ID, d.Status, d.codes())
		}
	}
	if len(accepted) != 1 {
		t.Fatalf("%d of %d simultaneous requests accepted, want exactly 1", len(accepted), n)
	}
	if len(ids) != n {
		t.Errorf("%d distinct decision ids for %d requests", len(ids), n)
	}

	all := s.allDecisions(t, "")
	if len(all) != n {
		t.Errorf("history holds %d decisions, want %d", len(all), n)
	}
	for _, rec := range all {
		if !ids[rec.ID] {
			t.Errorf("history holds decision %s, which no request received", rec.ID)
		}
		if rec.ID == accepted[0].ID {
			continue
		}
		// Every refusal saw the one accepted decision, made before it.
		if last := rec.Context.Cooldown.LastAcceptedAt; last == nil || !last.Equal(accepted[0].EvaluatedAt) {
			t.Errorf("refused %s saw cooldown.last_accepted_at %v, want %v", rec.ID, last, accepted[0].EvaluatedAt)
		}
		if rec.EvaluatedAt.Before(accepted[0].EvaluatedAt) {
			t.Errorf("refused %s evaluated at %v, before the accepted one at %v", rec.ID, rec.EvaluatedAt, accepted[0].EvaluatedAt)
		}
	}
	if got := s.allDecisions(t, "status=accepted"); len(got) != 1 || got[0].ID != accepted[0].ID {
		t.Errorf("GET /v1/decisions?status=accepted: %d decisions, want the one accepted", len(got))
	}
	s.stop(t)
}

// TestSimulateLeavesNoTrace: simulations record nothing and start no
// cooldown, whatever they ask.
func TestSimulateLeavesNoTrace(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	revision := s.bundleStatus(t).Revision
	r := req("org/service-api", "main", "deploy-prod", envProduction)

	simulate := func(t *testing.T, body map[string]any) decision {
		t.Helper()
		status, raw := s.postJSON(t, "/v1/simulate", body)
		if status != http.StatusOK {
			t.Fatalf("POST /v1/simulate: %d %s", status, raw)
		}
		requireDecisionShape(t, raw, true)
		d := decode[decision](t, raw)
		if d.ID != "" {
			t.Errorf("a simulation has decision_id %q", d.ID)
		}
		return d
	}
	requireCodes := func(t *testing.T, d decision, status string, codes ...string) {
		t.Helper()
		if d.Status != status || !slices.Equal(d.codes(), orEmpty(codes)) {
			t.Fatalf("got %s %v, want %s %v", d.Status, d.codes(), status, orEmpty(codes))
		}
	}

	t.Run("now", func(t *testing.T) {
		d := simulate(t, map[string]any{"input": r})
		requireCodes(t, d, "accepted")
		if d.BundleRevision != revision {
			t.Errorf("bundle_revision %q, want %q", d.BundleRevision, revision)
		}
	})
	t.Run("at", func(t *testing.T) {
		// Refused now (outside the window), accepted on the window's day.
		restricted := req("org/e2e", "main", "deploy", envRestricted)
		requireCodes(t, simulate(t, map[string]any{"input": restricted}), "refused", "time_window_violation")
		local := time.Now().In(paris)
		at := time.Date(local.Year(), local.Month(), local.Day()+3, 12, 0, 0, 0, paris)
		d := simulate(t, map[string]any{"input": restricted, "at": at.Format(time.RFC3339)})
		requireCodes(t, d, "accepted")
		if !d.EvaluatedAt.Equal(at) {
			t.Errorf("evaluated_at %v, want %v", d.EvaluatedAt, at)
		}
	})
	t.Run("context.cooldown", func(t *testing.T) {
		d := simulate(t, map[string]any{"input": r, "context": map[string]any{
			"cooldown": map[string]any{"last_accepted_at": time.Now().Add(-5 * time.Minute).Format(time.RFC3339)}}})
		requireCodes(t, d, "refused", "cooldown")
	})
	t.Run("config", func(t *testing.T) {
		projects := readProjects(t, s.bundle)
		projects["service-api"].(map[string]any)["allowed_branches"] = []string{"release/*"}
		d := simulate(t, map[string]any{"input": r, "config": map[string]any{"projects": projects}})
		requireCodes(t, d, "refused", "branch_not_allowed")
		if d.BundleRevision == revision {
			t.Errorf("a decision under another configuration claims the bundle's revision %q", revision)
		}
		// A bad configuration is bad input, not a decision.
		projects["service-api"].(map[string]any)["pipelines"].(map[string]any)["deploy-prod"] = map[string]any{"type": "deploy", "cooldown_minutes": -5}
		status, raw := s.postJSON(t, "/v1/simulate", map[string]any{"input": r, "config": map[string]any{"projects": projects}})
		requireError(t, status, raw, http.StatusBadRequest, "invalid_input", "cooldown_minutes")
	})

	if all := s.allDecisions(t, ""); len(all) != 0 {
		t.Fatalf("after simulations only, the history holds %d decisions, want 0", len(all))
	}
	if d := s.evaluate(t, r); d.Status != "accepted" {
		t.Fatalf("evaluate after simulations: %s %v, want accepted (no cooldown started by simulate)", d.Status, d.codes())
	}
	// Now there is a cooldown, and a simulation predicts it.
	requireCodes(t, simulate(t, map[string]any{"input": r}), "refused", "cooldown")
	if all := s.allDecisions(t, ""); len(all) != 1 {
		t.Errorf("the history holds %d decisions, want the 1 evaluation", len(all))
	}
	s.stop(t)
}

// TestBadInput: bad requests get a 4xx error body, are never recorded and
// leave the server healthy.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{args: []string{"--body-limit", "1024"}})
	valid := req("org/service-api", "main", "deploy-staging", envStaging)
	big := valid
	big.Metadata.RunID = strings.Repeat("x", 2048)
	const jsonType = "application/json"
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		message                               string
	}{
		{"malformed JSON", "POST", "/v1/evaluate", jsonType, `{"repository": "org/service-api",}`, 400, "malformed JSON"},
		{"truncated JSON", "POST", "/v1/evaluate", jsonType, `{"repository": "org/service-api"`, 400, "JSON"},
		{"empty body", "POST", "/v1/evaluate", jsonType, ``, 400, "empty body"},
		{"not an object", "POST", "/v1/evaluate", jsonType, `["org/service-api"]`, 400, "JSON"},
		{"trailing data", "POST", "/v1/evaluate", jsonType, string(mustJSON(t, valid)) + `{}`, 400, "after the top-level value"},
		{"missing branch", "POST", "/v1/evaluate", jsonType,
			`{"repository":"org/service-api","pipeline":"deploy-staging","metadata":{"environment":"staging"}}`, 400, "branch is required"},
		{"empty repository", "POST", "/v1/evaluate", jsonType,
			`{"repository":"","branch":"main","pipeline":"deploy-staging","metadata":{"environment":"staging"}}`, 400, "repository is required"},
		{"missing environment", "POST", "/v1/evaluate", jsonType,
			`{"repository":"org/service-api","branch":"main","pipeline":"deploy-staging","metadata":{}}`, 400, "metadata.environment is required"},
		{"wrong type", "POST", "/v1/evaluate", jsonType,
			`{"repository":"org/service-api","branch":5,"pipeline":"deploy-staging","metadata":{"environment":"staging"}}`, 400, "branch must be a string"},
		{"wrong type of metadata", "POST", "/v1/evaluate", jsonType,
			`{"repository":"org/service-api","branch":"main","pipeline":"deploy-staging","metadata":"staging"}`, 400, "metadata must be an object"},
		{"unknown field", "POST", "/v1/evaluate", jsonType,
			`{"repository":"org/service-api","branch":"main","pipeline":"deploy-staging","metadata":{"environment":"staging"},"enviroment":"x"}`, 400, "unknown field"},
		{"wrong content type", "POST", "/v1/evaluate", "text/plain", string(mustJSON(t, valid)), 415, "application/json"},
		{"no content type", "POST", "/v1/evaluate", "", string(mustJSON(t, valid)), 415, "application/json"},
		{"body over the limit", "POST", "/v1/evaluate", jsonType, string(mustJSON(t, big)), 413, "1 KiB"},
		{"simulate without input", "POST", "/v1/simulate", jsonType, `{}`, 400, "input is required"},
		{"simulate with a bad input", "POST", "/v1/simulate", jsonType, `{"input":{"repository":"org/service-api"}}`, 400, "branch is required"},
		{"simulate with a bad time", "POST", "/v1/simulate", jsonType, `{"input":` + string(mustJSON(t, valid)) + `,"at":"tomorrow"}`, 400, ""},
		{"simulate over the limit", "POST", "/v1/simulate", jsonType, `{"input":` + string(mustJSON(t, big)) + `}`, 413, "1 KiB"},
		{"bad status filter", "GET", "/v1/decisions?status=maybe", "", "", 400, "status must be accepted or refused"},
		{"bad limit", "GET", "/v1/decisions?limit=0", "", "", 400, "limit"},
		{"bad since", "GET", "/v1/decisions?since=yesterday", "", "", 400, "since"},
		{"unknown filter", "GET", "/v1/decisions?projet=x", "", "", 400, "unknown query parameter"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, raw := s.do(t, c.method, c.path, c.contentType, []byte(c.body))
			requireError(t, status, raw, c.status, "invalid_input", c.message)
		})
	}

	if all := s.allDecisions(t, ""); len(all) != 0 {
		t.Errorf("bad requests were recorded: the history holds %d decisions", len(all))
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, raw := s.get(t, path); status != http.StatusOK {
			t.Errorf("GET %s after bad input: %d %s", path, status, raw)
		}
	}
	if d := s.evaluate(t, valid); d.Status != "accepted" {
		t.Errorf("a good request after bad input: %s %v, want accepted", d.Status, d.codes())
	}
	for name, v := range s.metrics(t) {
		if strings.HasPrefix(name, "tollgate_http_requests_total") && (strings.Contains(name, `code="5`) || strings.Contains(name, "Internal Server Error")) && v > 0 {
			t.Errorf("a bad request got a 5xx: %s %v", name, v)
		}
	}
	s.stop(t)
}

// reloadWithin bounds the waits for a reload: a give-up time for a failing
// test on a loaded machine, not a performance claim (see make bench-scale).
const reloadWithin = 30 * time.Second

// TestReload edits the bundle copy of a running server with the default
// reload debounce: the new bundle answers, and no request fails meanwhile.
// How fast is logged, not asserted: on a shared, loaded machine a reload
// (which runs the bundle's tests) takes what the CPU allows.
func TestReload(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	r := req("org/service-api", "main", "deploy-staging", envStaging)
	old := s.evaluate(t, r)
	if old.Status != "accepted" {
		t.Fatalf("before the edit: %s %v, want accepted", old.Status, old.codes())
	}

	// Clients evaluating throughout the reload: no request may fail, and
	// once a client has seen the new bundle it never sees the old one again.
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	endLoad := sync.OnceFunc(func() { close(stopLoad); load.Wait() })
	t.Cleanup(endLoad) // before the server stops, even on t.Fatal
	var loadProblems []string
	var loadMu sync.Mutex
	body := mustJSON(t, req("org/e2e", "main", "deploy", envDev))
	for range 2 {
		load.Go(func() {
			seenNew := false
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				status, raw, err := s.try(http.MethodPost, "/v1/evaluate", "application/json", body)
				var d decision
				if err == nil && status == http.StatusOK {
					err = json.Unmarshal(raw, &d)
				}
				problem := ""
				switch {
				case err != nil || status != http.StatusOK:
					problem = fmt.Sprintf("during the reload: %d %s %v", status, raw, err)
				case d.Status != "accepted":
					problem = fmt.Sprintf("during the reload: %s %v", d.Status, d.codes())
				case d.BundleRevision != old.BundleRevision:
					seenNew = true
				case seenNew:
					problem = "a client saw the old bundle after the new one"
				}
				if problem != "" {
					loadMu.Lock()
					loadProblems = append(loadProblems, problem)
					loadMu.Unlock()
				}
			}
		})
	}

	projects := readProjects(t, s.bundle)
	projects["service-api"].(map[string]any)["allowed_branches"] = []string{"release/*"}
	writeJSON(t, projectsPath(s.bundle), projects) // rename-on-save
	saved := time.Now()

	var d decision
	latency := eventually(t, reloadWithin, "the edited bundle answers", func() bool {
		d = s.evaluate(t, r)
		return d.BundleRevision != old.BundleRevision
	})
	t.Logf("reload latency (save to first decision with the new bundle, default debounce): %v", latency.Round(time.Millisecond))
	if d.Status != "refused" || !slices.Equal(d.codes(), []string{"branch_not_allowed"}) {
		t.Errorf("after the edit: %s %v, want refused [branch_not_allowed]", d.Status, d.codes())
	}
	time.Sleep(100 * time.Millisecond) // a little load on the new bundle
	endLoad()
	for i, p := range loadProblems {
		if i == 5 {
			t.Errorf("and %d more", len(loadProblems)-5)
			break
		}
		t.Error(p)
	}
	st := s.bundleStatus(t)
	if st.Revision != d.BundleRevision || st.LastError != "" || st.Reloads != 1 || st.Failures != 0 {
		t.Errorf("GET /v1/bundles: %+v, want revision %s, no error, 1 reload", st, d.BundleRevision)
	}
	if !st.ActivatedAt.After(saved.Add(-time.Second)) {
		t.Errorf("activated_at %v is before the save at %v", st.ActivatedAt, saved)
	}
	m := s.metrics(t)
	if m[`tollgate_bundle_reloads_total{result="ok"}`] != 1 || m["tollgate_bundle_last_reload_successful"] != 1 {
		t.Errorf("metrics: reloads ok %v, last successful %v; want 1 and 1",
			m[`tollgate_bundle_reloads_total{result="ok"}`], m["tollgate_bundle_last_reload_successful"])
	}
	if m[fmt.Sprintf(`tollgate_bundle_active_revision{revision=%q}`, st.Revision)] != 1 {
		t.Errorf("metrics: tollgate_bundle_active_revision does not name %s", st.Revision)
	}
	s.stop(t)
}

// TestBrokenReload: a bundle that does not compile or validate never
// replaces the active one; the error is visible until the file is fixed.
func TestBrokenReload(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		file     string // relative to the bundle
		breakIt  func(original []byte) []byte
		fix      func(original []byte) []byte
		inError  []string // in last_error
		newAfter bool     // whether the fix is a new revision
	}{
		{
			name:    "rego syntax error",
			file:    "global.rego",
			breakIt: func(b []byte) []byte { return append(append([]byte{}, b...), "\nbroken := {\n"...) },
			fix:     func(b []byte) []byte { return b }, // restore it
			inError: []string{"global.rego"},
		},
		{
			name:     "config fails validation",
			file:     "config/projects/data.json",
			breakIt:  func(b []byte) []byte { return setCooldown(t, b, -5) },
			fix:      func(b []byte) []byte { return setCooldown(t, b, 45) },
			inError:  []string{"config/projects/data.json", "service-api.pipelines.deploy-prod.cooldown_minutes", "-5"},
			newAfter: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverOptions{})
			r := req("org/service-api", "main", "deploy-staging", envStaging)
			before := s.bundleStatus(t)
			path := filepath.Join(s.bundle, c.file)
			original := readFile(t, path)
			broken := c.breakIt(original)
			if string(broken) == string(original) {
				t.Fatalf("the edit did not change %s", c.file)
			}

			saveFile(t, path, broken)
			var st bundleStatus
			took := eventually(t, reloadWithin, "GET /v1/bundles shows the reload error", func() bool {
				st = s.bundleStatus(t)
				return st.LastError != ""
			})
			t.Logf("broken bundle rejected %v after the save", took.Round(time.Millisecond))
			for _, want := range c.inError {
				if !strings.Contains(st.LastError, want) {
					t.Errorf("last_error %q does not name %q", st.LastError, want)
				}
			}
			if st.Revision != before.Revision || st.Failures < 1 || st.Reloads != 0 {
				t.Errorf("GET /v1/bundles: %+v, want revision %s kept, failures >= 1, no reload", st, before.Revision)
			}
			if d := s.evaluate(t, r); d.Status != "accepted" || d.BundleRevision != before.Revision {
				t.Errorf("evaluate with a broken bundle on disk: %s %v revision %s, want accepted by %s",
					d.Status, d.codes(), d.BundleRevision, before.Revision)
			}
			if status, _ := s.get(t, "/readyz"); status != http.StatusOK {
				t.Errorf("GET /readyz with a broken bundle on disk: %d, want 200 (the old bundle serves)", status)
			}
			m := s.metrics(t)
			if m[`tollgate_bundle_reloads_total{result="failed"}`] < 1 || m["tollgate_bundle_last_reload_successful"] != 0 {
				t.Errorf("metrics: reloads failed %v, last successful %v; want >= 1 and 0",
					m[`tollgate_bundle_reloads_total{result="failed"}`], m["tollgate_bundle_last_reload_successful"])
			}
			if !strings.Contains(s.stderr.String(), "bundle reload failed, keeping the active bundle") {
				t.Errorf("the log does not report the failed reload")
			}

			saveFile(t, path, c.fix(original))
			eventually(t, reloadWithin, "the fixed bundle clears the error", func() bool {
				st = s.bundleStatus(t)
				return st.LastError == "" && (!c.newAfter || st.Revision != before.Revision)
			})
			if !c.newAfter && st.Revision != before.Revision {
				t.Errorf("restored bundle: revision %s, want %s", st.Revision, before.Revision)
			}
			if d := s.evaluate(t, r); d.Status != "accepted" || d.BundleRevision != st.Revision {
				t.Errorf("evaluate after the fix: %s %v revision %s, want accepted by %s", d.Status, d.codes(), d.BundleRevision, st.Revision)
			}
			m = s.metrics(t)
			if m["tollgate_bundle_last_reload_successful"] != 1 || m[`tollgate_bundle_reloads_total{result="ok"}`] < 1 {
				t.Errorf("metrics after the fix: last successful %v, reloads ok %v; want 1 and >= 1",
					m["tollgate_bundle_last_reload_successful"], m[`tollgate_bundle_reloads_total{result="ok"}`])
			}
			s.stop(t)
		})
	}
}

// TestShutdownLosesNoHistory stops the server with SIGTERM under load:
// every decision answered with a 200 must be in the history after a restart.
func TestShutdownLosesNoHistory(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	body := mustJSON(t, req("org/e2e", "main", "deploy", envDev)) // no cooldown: all accepted
	cool := req("org/service-api", "main", "deploy-prod", envProduction)
	if d := s.evaluate(t, cool); d.Status != "accepted" {
		t.Fatalf("%+v: %s %v, want accepted", cool, d.Status, d.codes())
	}

	const clients = 8
	var (
		mu        sync.Mutex
		acked     []string
		problems  []string
		refusedBy atomic.Int64 // connection errors and 503s after SIGTERM
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	endLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(endLoad) // before the server is killed, even on t.Fatal
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, raw, err := s.try(http.MethodPost, "/v1/evaluate", "application/json", body)
				switch {
				case err != nil || status == http.StatusServiceUnavailable:
					refusedBy.Add(1)
					time.Sleep(time.Millisecond) // the server is going away
				case status != http.StatusOK:
					mu.Lock()
					problems = append(problems, fmt.Sprintf("status %d: %s", status, raw))
					mu.Unlock()
				default:
					var d decision
					if err := json.Unmarshal(raw, &d); err != nil || d.ID == "" || d.Status != "accepted" {
						mu.Lock()
						problems = append(problems, fmt.Sprintf("bad 200: %s", raw))
						mu.Unlock()
						continue
					}
					mu.Lock()
					acked = append(acked, d.ID)
					mu.Unlock()
				}
			}
		})
	}
	// Let the load run, then stop the server in the middle of it.
	eventually(t, 10*time.Second, "the load is under way", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 50
	})
	time.Sleep(300 * time.Millisecond) // load duration, not synchronisation
	s.signalStop(t)
	s.waitExit(t)
	endLoad()
	for _, p := range problems {
		t.Errorf("during shutdown: %s", p)
	}
	t.Logf("%d decisions acknowledged, %d requests refused by the closing server", len(acked), refusedBy.Load())

	restarted := startServer(t, serverOptions{bundle: s.bundle, dataDir: s.dataDir})
	var missing atomic.Int64
	ids := make(chan string)
	var check sync.WaitGroup
	for range 8 {
		check.Go(func() {
			for id := range ids {
				status, raw, err := restarted.try(http.MethodGet, "/v1/decisions/"+id, "", nil)
				if err != nil || status != http.StatusOK {
					if missing.Add(1) <= 5 {
						t.Errorf("acknowledged decision %s lost: %d %s %v", id, status, raw, err)
					}
					continue
				}
				var rec record
				if err := json.Unmarshal(raw, &rec); err != nil || rec.ID != id || rec.Status != "accepted" {
					t.Errorf("decision %s after restart: %s", id, raw)
				}
			}
		})
	}
	for _, id := range acked {
		ids <- id
	}
	close(ids)
	check.Wait()
	if n := missing.Load(); n > 0 {
		t.Errorf("%d of %d acknowledged decisions lost across the restart", n, len(acked))
	}
	if all := restarted.allDecisions(t, ""); len(all) < len(acked)+1 {
		t.Errorf("history holds %d decisions after the restart, fewer than the %d acknowledged", len(all), len(acked)+1)
	}
	// The cooldown started before the restart still holds.
	if d := restarted.evaluate(t, cool); d.Status != "refused" || !slices.Equal(d.codes(), []string{"cooldown"}) {
		t.Errorf("after the restart %+v: %s %v, want refused [cooldown]", cool, d.Status, d.codes())
	}
	restarted.stop(t)
}

// setCooldown sets service-api's deploy-prod cooldown_minutes in a
// projects file.
func setCooldown(t *testing.T, projectsFile []byte, minutes int) []byte {
	t.Helper()
	projects := decode[map[string]any](t, projectsFile)
	projects["service-api"].(map[string]any)["pipelines"].(map[string]any)["deploy-prod"].(map[string]any)["cooldown_minutes"] = minutes
	data, err := json.MarshalIndent(projects, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var decisionIDInCheck = regexp.MustCompile(`\(decision ([0-9a-f-]{36})\)`)

// TestCheckCommand drives `tollgate check` against a running server, which
// reads its own settings from TOLLGATE_* variables.
func TestCheckCommand(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{viaEnv: true})
	server := []string{"--server", s.cliBase(t)}
	flags := func(branch string) []string {
		return []string{"--repository", "org/service-api", "--branch", branch, "--pipeline", "deploy-staging", "--environment", envStaging}
	}
	recorded := func(t *testing.T, stdout, status string) {
		t.Helper()
		m := decisionIDInCheck.FindStringSubmatch(stdout)
		if m == nil {
			t.Errorf("check does not print the decision id: %q", stdout)
			return
		}
		if rec := s.decisionByID(t, m[1]); rec.Status != status {
			t.Errorf("recorded decision %s is %s, want %s", m[1], rec.Status, status)
		}
	}

	t.Run("accepted", func(t *testing.T) {
		code, stdout, stderr := runTollgate(t, nil, nil, append(append([]string{"check"}, server...), flags("main")...)...)
		if code != 0 || !strings.HasPrefix(stdout, "accepted") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and accepted", code, stdout, stderr)
		}
		recorded(t, stdout, "accepted")
	})
	t.Run("refused", func(t *testing.T) {
		code, stdout, stderr := runTollgate(t, nil, nil, append(append([]string{"check"}, server...), flags("feature/x")...)...)
		if code != 1 || !strings.HasPrefix(stdout, "refused") || !strings.Contains(stdout, "branch_not_allowed") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 1, refused and branch_not_allowed", code, stdout, stderr)
		}
		recorded(t, stdout, "refused")
	})
	t.Run("refused, request on stdin", func(t *testing.T) {
		stdin := mustJSON(t, req("org/unknown", "main", "deploy", envDev))
		code, stdout, stderr := runTollgate(t, nil, stdin, append([]string{"check"}, server...)...)
		if code != 1 || !strings.Contains(stdout, "project_not_managed") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and project_not_managed", code, stdout, stderr)
		}
		recorded(t, stdout, "refused")
	})
	t.Run("server from TOLLGATE_SERVER, --json", func(t *testing.T) {
		code, stdout, stderr := runTollgate(t, []string{"TOLLGATE_SERVER=" + server[1]}, nil, append([]string{"check", "--json"}, flags("main")...)...)
		if code != 0 {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0", code, stdout, stderr)
		}
		if d := decode[decision](t, []byte(stdout)); d.Status != "accepted" || d.ID == "" {
			t.Errorf("--json printed %q", stdout)
		}
	})
	t.Run("--scan with --vex", func(t *testing.T) {
		// A Grype report of jackson-databind 2.10.0 and CycloneDX's own VEX
		// example, which declares it not_affected by CVE-2020-25649.
		scan := filepath.Join(t.TempDir(), "grype.json")
		if err := os.WriteFile(scan, []byte(`{"matches": [{"vulnerability": {"id": "CVE-2020-25649", "severity": "High"},
			"artifact": {"name": "jackson-databind", "version": "2.10.0"}}], "descriptor": {"name": "grype"}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		vex := filepath.Join("..", "adapters", "scans", "testdata", "real", "cyclonedx-vex.json")
		args := append(append([]string{"check", "--json", "--scan", scan, "--scan-format", "grype", "--vex", vex}, server...), flags("main")...)
		code, stdout, stderr := runTollgate(t, nil, nil, args...)
		if code != 0 {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0", code, stdout, stderr)
		}
		var d struct {
			Suppressed []struct {
				ID        string `json:"id"`
				VEXStatus string `json:"vex_status"`
			} `json:"suppressed"`
		}
		if err := json.Unmarshal([]byte(stdout), &d); err != nil || len(d.Suppressed) != 1 || d.Suppressed[0].ID != "CVE-2020-25649" || d.Suppressed[0].VEXStatus != "not_affected" {
			t.Fatalf("the answer does not list the suppressed finding: %q (%v)", stdout, err)
		}
		// Without a scan, --vex is a usage error; a file that is no VEX, a 400.
		if code, _, stderr := runTollgate(t, nil, nil, append(append([]string{"check", "--vex", vex}, server...), flags("main")...)...); code != 2 || !strings.Contains(stderr, "--vex applies to a scan") {
			t.Fatalf("--vex without a scan: exit %d, stderr %q", code, stderr)
		}
		args = append(append([]string{"check", "--scan", scan, "--scan-format", "grype", "--vex", scan}, server...), flags("main")...)
		if code, _, stderr := runTollgate(t, nil, nil, args...); code != 2 || !strings.Contains(stderr, "HTTP 400") {
			t.Fatalf("a Grype report as --vex: exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("bad request", func(t *testing.T) {
		code, stdout, stderr := runTollgate(t, nil, []byte(`{"repository": 1}`), append([]string{"check"}, server...)...)
		if code != 2 || !strings.Contains(stderr, "HTTP 400") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and HTTP 400", code, stdout, stderr)
		}
	})
	t.Run("server down", func(t *testing.T) {
		code, stdout, stderr := runTollgate(t, nil, nil,
			append([]string{"check", "--server", "http://" + freePort(t), "--timeout", "5s"}, flags("main")...)...)
		if code != 2 || !strings.Contains(stderr, "no decision") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and no decision", code, stdout, stderr)
		}
	})
	if all := s.allDecisions(t, ""); len(all) != 5 {
		t.Errorf("history holds %d decisions, want the 5 checks that reached a decision", len(all))
	}
	s.stop(t)
}

// TestHealthMetricsAndErrors covers the operational endpoints and the error
// bodies of unknown routes and methods.
func TestHealthMetricsAndErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	revision := s.bundleStatus(t).Revision

	status, raw := s.get(t, "/healthz")
	if h := decode[map[string]string](t, raw); status != http.StatusOK || h["status"] != "ok" {
		t.Errorf("GET /healthz: %d %s", status, raw)
	}
	status, raw = s.get(t, "/readyz")
	if r := decode[map[string]string](t, raw); status != http.StatusOK || r["status"] != "ready" || r["revision"] != revision {
		t.Errorf("GET /readyz: %d %s, want ready with revision %s", status, raw, revision)
	}
	if m := s.metrics(t); m[`tollgate_decisions_total{endpoint="evaluate",status="accepted"}`] != 0 {
		t.Errorf("metrics count decisions before any")
	}
	s.evaluate(t, req("org/service-api", "main", "deploy-staging", envStaging))
	s.evaluate(t, req("org/unknown", "main", "deploy", envDev))
	m := s.metrics(t)
	for name, want := range map[string]float64{
		`tollgate_decisions_total{endpoint="evaluate",status="accepted"}`:                               1,
		`tollgate_decisions_total{endpoint="evaluate",status="refused"}`:                                1,
		`tollgate_decision_reasons_total{code="project_not_managed",endpoint="evaluate",kind="reason"}`: 1,
		`tollgate_bundle_last_reload_successful`:                                                        1,
		fmt.Sprintf(`tollgate_bundle_active_revision{revision=%q}`, revision):                           1,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("/metrics: %s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if _, ok := m[`tollgate_evaluation_duration_seconds_count{endpoint="evaluate"}`]; !ok {
		t.Errorf("/metrics lacks tollgate_evaluation_duration_seconds")
	}

	errorCases := []struct {
		method, path    string
		status          int
		code, inMessage string
	}{
		{"GET", "/nope", 404, "not_found", "Not Found"},
		{"GET", "/v1/decisions/01a208fe-0000-7000-8000-000000000000", 404, "not_found", "not found"},
		{"GET", "/v1/evaluate", 405, "method_not_allowed", "Method Not Allowed"},
		{"DELETE", "/v1/decisions", 405, "method_not_allowed", "Method Not Allowed"},
		{"PUT", "/v1/bundles", 405, "method_not_allowed", "Method Not Allowed"},
	}
	for _, c := range errorCases {
		status, raw := s.do(t, c.method, c.path, "", nil)
		requireError(t, status, raw, c.status, c.code, c.inMessage)
	}
	s.stop(t)
}

// TestReloadReadmeExample follows the README on an unmodified copy of the
// shipped bundle: remove "main" from service-api's allowed_branches while
// the server runs, and "within two seconds … the next decision carries
// branch_not_allowed".
// The bundle's own tests, which the server runs before it loads a bundle,
// must not depend on the shipped configuration values.
func TestReloadReadmeExample(t *testing.T) {
	t.Parallel()
	bundle := filepath.Join(t.TempDir(), "bundle")
	if err := os.CopyFS(bundle, os.DirFS(filepath.Join(repoRoot, "bundles", "tollgate"))); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOptions{bundle: bundle})
	before := s.bundleStatus(t)

	projects := readProjects(t, bundle)
	projects["service-api"].(map[string]any)["allowed_branches"] = []string{"release/*"}
	writeJSON(t, projectsPath(bundle), projects)
	var st bundleStatus
	eventually(t, reloadWithin, "the edit is reloaded or rejected", func() bool {
		st = s.bundleStatus(t)
		return st.Revision != before.Revision || st.LastError != ""
	})
	if st.Revision == before.Revision || st.LastError != "" {
		t.Fatalf("the README's example edit was not applied: revision %s, last_error %q", st.Revision, st.LastError)
	}
	// The clock decides the global reasons; the branch must be refused.
	status, raw := s.postJSON(t, "/v1/simulate", map[string]any{"input": req("org/service-api", "main", "deploy-prod", envProduction)})
	if d := decode[decision](t, raw); status != http.StatusOK || !slices.Contains(d.codes(), "branch_not_allowed") {
		t.Errorf("after the edit: %d %s, want branch_not_allowed among the reasons", status, raw)
	}
	s.stop(t)
}
