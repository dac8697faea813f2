package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/cvss"
	"github.com/tollgate/tollgate/adapters/sqlite"
	"github.com/tollgate/tollgate/rego"
)

const exampleRequest = `{"repository":"org/service-api","branch":"main","pipeline":"deploy-prod",
 "metadata":{"initiator":"github-actions","run_id":"123456789","environment":"production"}}`

// validLicence is a licence checker that always says valid.
type validLicence struct{}

func (validLicence) Check(time.Time) tollgate.Licence {
	return tollgate.Licence{Status: tollgate.LicenceValid, Subject: "test", Edition: "pro"}
}

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	store  *sqlite.Store
	now    atomic.Pointer[time.Time]
	engine *rego.Engine
	token  string // sent as Authorization: Bearer, if set
	api    *Server
}

// newFixture serves the shipped bundle on a real SQLite store, with the
// clock at Monday 2026-11-23 10:00 Paris (inside the production window),
// without authentication (Dev).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, func(c *Config) { c.Dev = true })
}

// newFixtureWith is newFixture with authentication on, and configure's
// changes to the configuration.
func newFixtureWith(t *testing.T, configure func(*Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t}
	f.setNow("2026-11-23T10:00:00+01:00")
	engine := sharedEngine(t)
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	registry := prometheus.NewRegistry()
	cfg := Config{
		Gate: &rego.Gate{
			Policies: engine, Store: store, Licence: validLicence{},
			Now:   func() time.Time { return *f.now.Load() },
			NewID: func() string { return uuid.Must(uuid.NewV7()).String() },
			Score: cvss.Best,
			EPSS:  store, Scans: store,
			Bundles: &rego.Keeper{Store: store, Now: time.Now},
		},
		Engine: engine, Store: store, Tokens: store, Bundles: store, Metrics: NewMetrics(registry), Registry: registry,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: 64 << 10,
		Now: func() time.Time { return *f.now.Load() },
	}
	cfg.Controls = &rego.Controls{Store: store, Policies: engine, NewID: cfg.Gate.NewID, Now: cfg.Gate.Now}
	cfg.Gate.Controls = cfg.Controls
	configure(&cfg)
	api := New(cfg)
	// Every exchange of the tests is held to the OpenAPI document.
	f.srv, f.store, f.engine, f.api = httptest.NewServer(apiValidator(t).Handler(t, api.Handler())), store, engine, api
	t.Cleanup(f.srv.Close)
	return f
}

// The shipped bundle, loaded once for the package: loading runs its Rego
// tests, and the tests here only read it.
var (
	engineOnce sync.Once
	engine     *rego.Engine
	engineErr  error
)

func sharedEngine(t *testing.T) *rego.Engine {
	t.Helper()
	engineOnce.Do(func() {
		engine, engineErr = rego.NewEngine(context.Background(), "../bundles/tollgate", rego.EngineOptions{})
	})
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return engine
}

func (f *fixture) setNow(s string) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		f.t.Fatal(err)
	}
	f.now.Store(&t)
}

func (f *fixture) do(method, path, contentType, body string) (int, map[string]any) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			f.t.Fatalf("%s %s: invalid JSON answer %q", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

func (f *fixture) post(path, body string) (int, map[string]any) {
	return f.do(http.MethodPost, path, "application/json", body)
}

func (f *fixture) countDecisions() int {
	f.t.Helper()
	code, body := f.do(http.MethodGet, "/v1/decisions?limit=500", "", "")
	if code != http.StatusOK {
		f.t.Fatalf("list decisions: %d %v", code, body)
	}
	return len(body["decisions"].([]any))
}

func reasonCodes(d map[string]any) []string {
	codes := []string{}
	for _, r := range d["reasons"].([]any) {
		codes = append(codes, r.(map[string]any)["code"].(string))
	}
	return codes
}

func TestEvaluateRecordsBeforeAnswering(t *testing.T) {
	f := newFixture(t)
	code, d := f.post("/v1/evaluate", exampleRequest)
	if code != http.StatusOK || d["status"] != "accepted" || d["project"] != "service-api" {
		t.Fatalf("got %d %v", code, d)
	}
	for _, key := range []string{"decision_id", "bundle_revision", "evaluated_at", "reasons", "warnings", "pipeline", "branch", "environment"} {
		if _, ok := d[key]; !ok {
			t.Errorf("answer has no %q: %v", key, d)
		}
	}
	id := d["decision_id"].(string)
	code, rec := f.do(http.MethodGet, "/v1/decisions/"+id, "", "")
	if code != http.StatusOK || rec["decision_id"] != id || rec["status"] != "accepted" {
		t.Fatalf("get decision: %d %v", code, rec)
	}
	// Everything needed to replay it: the input, the time, the revision, the adapter context.
	req := rec["request"].(map[string]any)
	ctx := rec["context"].(map[string]any)
	if req["repository"] != "org/service-api" || ctx["licence"].(map[string]any)["status"] != "valid" ||
		ctx["now"] != "2026-11-23T09:00:00Z" || rec["bundle_revision"] != f.engine.Status().Revision {
		t.Fatalf("record is missing replay data: %v", rec)
	}
	// The accepted decision started the cooldown of deploy-prod on main.
	f.setNow("2026-11-23T10:10:00+01:00")
	if _, d := f.post("/v1/evaluate", exampleRequest); d["status"] != "refused" || reasonCodes(d)[0] != tollgate.CodeCooldown {
		t.Fatalf("second evaluation: %v", d)
	}
}

func TestEvaluateReasonCodesOverHTTP(t *testing.T) {
	f := newFixture(t)
	tests := []struct{ name, now, body, want string }{
		{"unmanaged", "2026-11-23T10:00:00+01:00", strings.Replace(exampleRequest, "org/service-api", "org/unknown", 1), tollgate.CodeProjectNotManaged},
		{"freeze", "2026-11-27T10:00:00+01:00", exampleRequest, tollgate.CodeFreezeActive},
		{"window", "2026-11-23T07:00:00+01:00", exampleRequest, tollgate.CodeTimeWindowViolation},
		{"branch", "2026-11-23T10:00:00+01:00", strings.Replace(exampleRequest, `"main"`, `"feature/x"`, 1), tollgate.CodeBranchNotAllowed},
		{"pipeline type", "2026-11-23T10:00:00+01:00", strings.NewReplacer(`"deploy-prod"`, `"hotfix-prod"`, `"main"`, `"hotfix/1"`, `"production"`, `"staging"`).Replace(exampleRequest), tollgate.CodePipelineNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.setNow(tt.now)
			code, d := f.post("/v1/evaluate", tt.body)
			if code != http.StatusOK || d["status"] != "refused" || !contains(reasonCodes(d), tt.want) {
				t.Fatalf("got %d %v, want refused with %s", code, d, tt.want)
			}
		})
	}
	// Weekends refuse too, in the configured time zone.
	f.setNow("2026-11-21T10:00:00+01:00")
	if _, d := f.post("/v1/evaluate", exampleRequest); !contains(reasonCodes(d), tollgate.CodeWeekendViolation) {
		t.Fatalf("weekend: %v", d)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestBadInputIsRejectedAndNotRecorded(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, contentType, body string
		status                  int
		message                 string
	}{
		{"malformed JSON", "application/json", `{"repository":`, 400, "JSON"},
		{"empty body", "application/json", ``, 400, "empty body"},
		{"missing branch", "application/json", `{"repository":"org/x","pipeline":"p","metadata":{"environment":"production"}}`, 400, "branch is required"},
		{"empty environment", "application/json", `{"repository":"org/x","branch":"main","pipeline":"p","metadata":{"environment":""}}`, 400, "metadata.environment is required"},
		{"wrong type", "application/json", `{"repository":["org/x"],"branch":"main","pipeline":"p","metadata":{"environment":"production"}}`, 400, "repository must be a string"},
		{"unknown field", "application/json", strings.Replace(exampleRequest, `"branch"`, `"brnach":"x","branch"`, 1), 400, `unknown field "brnach"`},
		{"not JSON content type", "text/plain", exampleRequest, 415, "Content-Type must be application/json"},
		{"no content type", "", exampleRequest, 415, "Content-Type"},
		{"too large", "application/json", `{"repository":"` + strings.Repeat("x", 70000) + `"}`, 413, "larger than the limit of 64 KiB"},
		{"array", "application/json", `[1,2]`, 400, "expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/v1/evaluate", "/v1/simulate"} {
				code, body := f.do(http.MethodPost, path, tt.contentType, tt.body)
				errBody, _ := body["error"].(map[string]any)
				if code != tt.status || errBody == nil || errBody["code"] != tollgate.EInvalid ||
					!strings.Contains(errBody["message"].(string), expectedMessage(path, tt.message)) {
					t.Errorf("%s: got %d %v, want %d with %q", path, code, body, tt.status, tt.message)
				}
			}
		})
	}
	if n := f.countDecisions(); n != 0 {
		t.Fatalf("bad input was recorded: %d decisions", n)
	}
}

// expectedMessage: simulate wraps the request in "input", so its request
// errors are about the envelope when the body is not a simulation.
func expectedMessage(path, message string) string {
	if path == "/v1/simulate" && !strings.Contains(message, "Content-Type") && !strings.Contains(message, "limit") &&
		message != "JSON" && message != "empty body" && message != "expected" {
		return "unknown field" // a bare request is not a simulation body
	}
	return message
}

func TestSimulateHasNoSideEffects(t *testing.T) {
	f := newFixture(t)
	sim := func(extra string) map[string]any {
		t.Helper()
		code, d := f.post("/v1/simulate", `{"input": `+exampleRequest+extra+`}`)
		if code != http.StatusOK || d["simulated"] != true {
			t.Fatalf("simulate: %d %v", code, d)
		}
		return d
	}
	if d := sim(``); d["status"] != "accepted" || d["decision_id"] != nil {
		t.Fatalf("simulate now: %v", d)
	}
	if d := sim(`, "at": "2026-11-28T10:00:00+01:00"`); !contains(reasonCodes(d), tollgate.CodeWeekendViolation) || !contains(reasonCodes(d), tollgate.CodeFreezeActive) {
		t.Fatalf("simulate at Saturday in a freeze: %v", d)
	}
	if d := sim(`, "context": {"cooldown": {"last_accepted_at": "2026-11-23T08:50:00Z"}}`); reasonCodes(d)[0] != tollgate.CodeCooldown {
		t.Fatalf("simulate a cooldown: %v", d)
	}
	d := sim(`, "config": {"projects": {"service-api": {"repositories": ["org/service-api"], "allowed_branches": ["develop"], "pipelines": {"deploy-prod": {"type": "deploy"}}}}}`)
	if reasonCodes(d)[0] != tollgate.CodeBranchNotAllowed || d["bundle_revision"] == f.engine.Status().Revision {
		t.Fatalf("simulate a candidate configuration: %v", d)
	}
	code, body := f.post("/v1/simulate", `{"input": `+exampleRequest+`, "config": {"projects": {"x": {}}}}`)
	if code != http.StatusBadRequest || !strings.Contains(body["error"].(map[string]any)["message"].(string), "x.repositories: required") {
		t.Fatalf("invalid candidate configuration: %d %v", code, body)
	}
	if code, _ := f.post("/v1/simulate", `{"at": "2026-11-28T10:00:00Z"}`); code != http.StatusBadRequest {
		t.Fatalf("simulate without input: %d", code)
	}
	code, body = f.post("/v1/simulate", `{"input": `+exampleRequest+`, "at": "tomorrow"}`)
	if code != http.StatusBadRequest || !strings.Contains(body["error"].(map[string]any)["message"].(string), "at must be an RFC 3339 time") {
		t.Fatalf("simulate with a bad time: %d %v", code, body)
	}
	// Nothing was recorded, and no cooldown started: a real evaluation is accepted.
	if n := f.countDecisions(); n != 0 {
		t.Fatalf("simulate recorded %d decisions", n)
	}
	if _, d := f.post("/v1/evaluate", exampleRequest); d["status"] != "accepted" {
		t.Fatalf("evaluate after simulations: %v", d)
	}
	// And a simulation now sees the cooldown that evaluation started.
	if d := sim(``); reasonCodes(d)[0] != tollgate.CodeCooldown {
		t.Fatalf("simulate after an accepted evaluation: %v", d)
	}
}

func TestCooldownRaceOverHTTP(t *testing.T) {
	f := newFixture(t)
	const n = 20
	var wg sync.WaitGroup
	var accepted, refused atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(f.srv.URL+"/v1/evaluate", "application/json", strings.NewReader(exampleRequest))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var d map[string]any
			json.NewDecoder(resp.Body).Decode(&d)
			switch d["status"] {
			case "accepted":
				accepted.Add(1)
			case "refused":
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 1 || refused.Load() != n-1 {
		t.Fatalf("accepted %d refused %d, want exactly one accepted", accepted.Load(), refused.Load())
	}
	if got := f.countDecisions(); got != n {
		t.Fatalf("%d decisions recorded, want %d", got, n)
	}
}

func TestDecisionsFiltersAndErrors(t *testing.T) {
	f := newFixture(t)
	f.post("/v1/evaluate", exampleRequest)
	f.post("/v1/evaluate", strings.Replace(exampleRequest, "org/service-api", "org/unknown", 1))
	for query, want := range map[string]int{
		"":                                    2,
		"?status=accepted":                    1,
		"?status=refused":                     1,
		"?project=service-api":                1,
		"?pipeline=deploy-prod&branch=main":   2,
		"?since=2026-11-23T09:00:00Z":         2,
		"?until=2026-11-23T09:00:00Z":         0,
		"?limit=1":                            1,
		"?project=service-api&status=refused": 0,
	} {
		code, body := f.do(http.MethodGet, "/v1/decisions"+query, "", "")
		if code != http.StatusOK || len(body["decisions"].([]any)) != want {
			t.Errorf("GET /v1/decisions%s: %d %v, want %d decisions", query, code, body, want)
		}
	}
	code, body := f.do(http.MethodGet, "/v1/decisions?limit=1", "", "")
	if cursor := body["next_cursor"].(string); code != 200 || cursor == "" {
		t.Fatalf("first page has no cursor: %v", body)
	} else if _, next := f.do(http.MethodGet, "/v1/decisions?limit=1&cursor="+cursor, "", ""); len(next["decisions"].([]any)) != 1 || next["next_cursor"] != "" {
		t.Fatalf("second page: %v", next)
	}
	for _, query := range []string{"?status=maybe", "?since=yesterday", "?limit=0", "?limit=501", "?limit=x", "?cursor=!!", "?colour=red"} {
		if code, body := f.do(http.MethodGet, "/v1/decisions"+query, "", ""); code != http.StatusBadRequest || body["error"] == nil {
			t.Errorf("GET /v1/decisions%s: %d %v, want 400", query, code, body)
		}
	}
	if code, body := f.do(http.MethodGet, "/v1/decisions/"+uuid.NewString(), "", ""); code != http.StatusNotFound || body["error"].(map[string]any)["code"] != tollgate.ENotFound {
		t.Errorf("unknown decision: %d %v", code, body)
	}
	if code, body := f.do(http.MethodGet, "/v1/nothing", "", ""); code != http.StatusNotFound || body["error"] == nil {
		t.Errorf("unknown route: %d %v", code, body)
	}
	if code, body := f.do(http.MethodGet, "/v1/evaluate", "", ""); code != http.StatusMethodNotAllowed || body["error"] == nil {
		t.Errorf("wrong method: %d %v", code, body)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	f := newFixture(t)
	if code, body := f.do(http.MethodGet, "/healthz", "", ""); code != 200 || body["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, body)
	}
	if code, body := f.do(http.MethodGet, "/readyz", "", ""); code != 200 || body["revision"] != f.engine.Status().Revision {
		t.Errorf("readyz: %d %v", code, body)
	}
	if code, body := f.do(http.MethodGet, "/v1/bundles", "", ""); code != 200 || body["revision"] != f.engine.Status().Revision || body["activated_at"] == nil {
		t.Errorf("bundles: %d %v", code, body)
	}
	f.post("/v1/evaluate", exampleRequest)
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tollgate_decisions_total{endpoint="evaluate",status="accepted"} 1`,
		`tollgate_evaluation_duration_seconds_count{endpoint="evaluate"} 1`,
		`tollgate_store_duration_seconds_count{operation="decide"} 1`,
		`tollgate_http_requests_total{code="200",route="/v1/evaluate"} 1`,
		`go_goroutines`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestStoreLostFailsClosed: when the store cannot record, evaluate answers
// 503 and never a decision; readiness says so.
func TestStoreLostFailsClosed(t *testing.T) {
	f := newFixture(t)
	f.store.Close()
	code, body := f.post("/v1/evaluate", exampleRequest)
	if code != http.StatusServiceUnavailable || body["error"].(map[string]any)["code"] != tollgate.EUnavailable || body["status"] != nil {
		t.Fatalf("evaluate with the store closed: %d %v", code, body)
	}
	if code, _ := f.do(http.MethodGet, "/readyz", "", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the store closed: %d", code)
	}
}

// TestScanGatesOverHTTP: a real-shaped Trivy report meets the security
// gates of a candidate configuration; the refusal names the worst CVEs.
func TestScanGatesOverHTTP(t *testing.T) {
	f := newFixture(t)
	report, err := os.ReadFile("../adapters/scans/testdata/trivy-image.json")
	if err != nil {
		t.Fatal(err)
	}
	config := `"config": {"projects": {"service-api": {"repositories": ["org/service-api"],
		"pipelines": {"deploy-prod": {"type": "deploy"}}, "risk": {"max_cvss": 7.0, "max_unknowns": 10}}}}`
	code, d := f.post("/v1/simulate", `{"input": `+exampleRequest+`, "scan": {"format": "trivy", "report": `+string(report)+`}, `+config+`}`)
	if code != http.StatusOK || d["status"] != "refused" || !contains(reasonCodes(d), "risk_threshold_exceeded") {
		t.Fatalf("simulate with a Trivy report: %d %v", code, d)
	}
	// The simulation explains each finding: its score receipt and composite risk.
	breakdown, _ := d["findings"].([]any)
	var scored, unknown int
	for _, item := range breakdown {
		f := item.(map[string]any)
		switch {
		case (f["vex_status"] == "not_affected" || f["vex_status"] == "fixed") && f["risk"] == nil:
			// suppressed by VEX: out of the gates, so no risk
		case f["score"] != nil && f["risk"] != nil:
			scored++
			if f["score"].(map[string]any)["vector"] == "" {
				t.Errorf("a score without its vector: %v", f)
			}
		case f["score"] == nil && f["risk"] == nil:
			unknown++
		default:
			t.Errorf("a finding with a score but no risk, or the reverse: %v", f)
		}
	}
	if scored == 0 || unknown == 0 {
		t.Fatalf("breakdown: %d scored, %d unknown findings: %v", scored, unknown, breakdown)
	}
	message := d["reasons"].([]any)[0].(map[string]any)["message"].(string)
	if !strings.Contains(message, "CVE-2025-24813 (CVSS 9.") || !strings.Contains(message, "CVE-2023-45853") {
		t.Fatalf("the refusal does not name the worst findings: %s", message)
	}
	// Without the gate's configuration, the same report passes.
	if _, d := f.post("/v1/simulate", `{"input": `+exampleRequest+`, "scan": {"format": "trivy", "report": `+string(report)+`}}`); d["status"] != "accepted" {
		t.Fatalf("report without risk settings: %v", d)
	}
	// The evaluate endpoint takes the same scan, and records it for replay.
	code, d = f.post("/v1/evaluate", strings.TrimSuffix(exampleRequest, "}")+`, "scan": {"format": "trivy", "report": `+string(report)+`}}`)
	if code != http.StatusOK || d["findings"] != nil {
		t.Fatalf("evaluate with a scan (no breakdown outside simulations): %d %v", code, d)
	}
	_, rec := f.do(http.MethodGet, "/v1/decisions/"+d["decision_id"].(string), "", "")
	if scan, _ := rec["context"].(map[string]any)["scan"].(map[string]any); scan == nil || len(scan["findings"].([]any)) == 0 {
		t.Fatalf("the record lacks the scored scan: %v", rec["context"])
	}
	// Bad scans are 400s that name the problem, and are not recorded.
	for body, want := range map[string]string{
		`"scan": {"format": "nessus", "report": {}}`:                    "nessus",
		`"scan": {"format": "trivy"}`:                                   "scan.report is required",
		`"scan": {"format": "trivy", "report": {"matches": []}}`:        "not a Trivy JSON report",
		`"scan": {"format": "trivy", "report": {"SchemaVersion": "x"}}`: "trivy report",
	} {
		code, e := f.post("/v1/evaluate", strings.TrimSuffix(exampleRequest, "}")+`, `+body+`}`)
		if code != http.StatusBadRequest || !strings.Contains(e["error"].(map[string]any)["message"].(string), want) {
			t.Errorf("%s: %d %v, want 400 naming %q", body, code, e, want)
		}
	}
	if n := f.countDecisions(); n != 1 {
		t.Fatalf("%d decisions recorded, want 1", n)
	}
}

// A client that goes away mid-request is not a server failure: it is
// logged at INFO, never as an ERROR, and nothing is recorded for it.
func TestAbandonedRequestIsNotAnError(t *testing.T) {
	var logs syncBuffer
	f := newFixtureWith(t, func(c *Config) {
		c.Dev = true
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodPost, "/v1/evaluate", strings.NewReader(exampleRequest)).WithContext(ctx)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	f.api.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", rec.Code, rec.Body)
	}
	out := logs.String()
	if !strings.Contains(out, "level=INFO msg=\"request abandoned by the client\"") {
		t.Errorf("no INFO line for the abandoned request in:\n%s", out)
	}
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("an abandoned request logged as an error:\n%s", out)
	}
	if _, body := f.do(http.MethodGet, "/v1/decisions", "", ""); len(body["decisions"].([]any)) != 0 {
		t.Errorf("the abandoned request was recorded: %v", body)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
