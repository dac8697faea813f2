package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/github"
	"github.com/tollgate/tollgate/adapters/notify"
	"github.com/tollgate/tollgate/rego"
)

const webhookSecret = "s3cret-of-the-webhook"

// fakeGitHub takes installation tokens and reviews, failing the first
// fail reviews with 502.
type fakeGitHub struct {
	srv      *httptest.Server
	mu       sync.Mutex
	workflow string // the workflow file of every run; "" fails the runs API with 502
	fail     int
	tries    int
	reviews  []map[string]string
}

func (g *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/app/installations/"):
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token": "ghs_test", "expires_at": %q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/repos/org/service-api/actions/runs/") && r.Header.Get("Authorization") == "Bearer ghs_test":
		if g.workflow == "" {
			http.Error(w, `{"message": "Server Error"}`, http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, `{"id": 1, "path": %q}`, g.workflow)
	case strings.HasSuffix(r.URL.Path, "/deployment_protection_rule") && r.Header.Get("Authorization") == "Bearer ghs_test":
		g.tries++
		if g.tries <= g.fail {
			http.Error(w, `{"message": "Server Error"}`, http.StatusBadGateway)
			return
		}
		var body map[string]string
		raw, _ := io.ReadAll(r.Body)
		json.Unmarshal(raw, &body)
		body["path"] = r.URL.Path
		g.reviews = append(g.reviews, body)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, `{"message": "Not Found"}`, http.StatusNotFound)
	}
}

// waitReviews waits for n reviews (at most 10 s) and returns them.
func (g *fakeGitHub) waitReviews(t *testing.T, n int) []map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		got := append([]map[string]string(nil), g.reviews...)
		g.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reviews after 10 s, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	githubKeyOnce sync.Once
	githubKeyPEM  []byte
)

// githubFixture is a jobs fixture with the GitHub integration on, against
// a fake GitHub; its worker runs.
func githubFixture(t *testing.T, failReviews int) (*fixture, *fakeGitHub) {
	t.Helper()
	return githubFixtureOn(t, failReviews, nil)
}

// githubFixtureOn is githubFixture serving bundle (the shipped one when
// nil).
func githubFixtureOn(t *testing.T, failReviews int, bundle *rego.Engine) (*fixture, *fakeGitHub) {
	t.Helper()
	githubKeyOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		githubKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	})
	gh := &fakeGitHub{fail: failReviews, workflow: ".github/workflows/deploy.yml"}
	gh.srv = httptest.NewServer(gh)
	t.Cleanup(gh.srv.Close)
	app, err := github.NewApp(99, githubKeyPEM, gh.srv.URL, gh.srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(c *Config) {
		c.Dev = true
		if bundle != nil {
			c.Engine, c.Gate.Policies, c.Controls.Policies = bundle, bundle, bundle
		}
		c.Jobs = &Jobs{Store: c.Store.(tollgate.JobStore), Floor: time.Second, Poll: 10 * time.Millisecond}
		c.GitHub = &GitHub{App: app, Secret: []byte(webhookSecret), Wait: 6 * time.Hour,
			PublicURL: "https://gate.example", Backoff: 10 * time.Millisecond}
	})
	f.startWorker()
	// The outbox's worker, which reviews the deployments whose jobs end.
	notifier := &notify.Worker{Store: f.store, Callbacks: map[string]notify.Callback{"github": f.api.ReviewGitHub},
		Poll: 10 * time.Millisecond, Backoff: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); notifier.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f, gh
}

// deliveryBody is the real delivery of adapters/github's fixture, for
// org/service-api, ref and environment, calling back the fake GitHub.
func deliveryBody(t *testing.T, gh *fakeGitHub, ref, environment string) string {
	t.Helper()
	raw, err := os.ReadFile("../adapters/github/testdata/zaniebot-requested.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev["ref"], ev["environment"] = ref, environment
	ev["repository"].(map[string]any)["full_name"] = "org/service-api"
	ev["deployment_callback_url"] = gh.srv.URL + "/repos/org/service-api/actions/runs/23625057533/deployment_protection_rule"
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func sign(body string) string {
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// deliver posts a delivery as GitHub does.
func (f *fixture) deliver(event, delivery, signature, body string) (int, map[string]any) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/integrations/github/webhook", strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			f.t.Fatalf("answer %q: %v", raw, err)
		}
	}
	return resp.StatusCode, out
}

// nothingStored fails unless the store holds no job and no decision.
func (f *fixture) nothingStored() {
	f.t.Helper()
	_, jobs := f.do(http.MethodGet, "/v1/jobs", "", "")
	_, decisions := f.do(http.MethodGet, "/v1/decisions", "", "")
	if len(jobs["jobs"].([]any)) != 0 || len(decisions["decisions"].([]any)) != 0 {
		f.t.Fatalf("stored: jobs %v, decisions %v", jobs, decisions)
	}
}

// A delivery without a valid signature is 401 and stores nothing, before
// anything of it is read.
func TestGitHubWebhookSignature(t *testing.T) {
	f, gh := githubFixture(t, 0)
	body := deliveryBody(t, gh, "main", "production")
	for name, signature := range map[string]string{
		"missing":      "",
		"wrong secret": "sha256=" + strings.Repeat("ab", 32),
		"other body":   sign(body + " "),
		"sha1":         "sha1=" + strings.Repeat("ab", 20),
	} {
		if code, out := f.deliver("deployment_protection_rule", "d-"+name, signature, body); code != http.StatusUnauthorized {
			t.Errorf("%s: %d %v, want 401", name, code, out)
		}
	}
	// Not even an unsigned ping is answered as if it were GitHub's.
	if code, _ := f.deliver("ping", "d-ping", "", `{"zen": "hi"}`); code != http.StatusUnauthorized {
		t.Errorf("unsigned ping: %d, want 401", code)
	}
	f.nothingStored()
}

// Other events and actions are 204; a callback off the API is 400; both
// store nothing.
func TestGitHubWebhookIgnoresAndRefuses(t *testing.T) {
	f, gh := githubFixture(t, 0)
	ping := `{"zen": "Keep it logically awesome.", "hook_id": 1}`
	if code, _ := f.deliver("ping", "d1", sign(ping), ping); code != http.StatusNoContent {
		t.Errorf("ping: %d, want 204", code)
	}
	completed := strings.Replace(deliveryBody(t, gh, "main", "production"), `"action":"requested"`, `"action":"completed"`, 1)
	if code, _ := f.deliver("deployment_protection_rule", "d2", sign(completed), completed); code != http.StatusNoContent {
		t.Errorf("action completed: %d, want 204", code)
	}
	elsewhere := strings.Replace(deliveryBody(t, gh, "main", "production"), gh.srv.URL, "https://evil.example", 1)
	if code, out := f.deliver("deployment_protection_rule", "d3", sign(elsewhere), elsewhere); code != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(out), "tollgate sends it no token") {
		t.Errorf("callback elsewhere: %d %v, want 400", code, out)
	}
	f.nothingStored()
}

// A deployment GitHub asks about is a gate job: a redelivery finds the
// same job and decides nothing again; the job accepted, GitHub hears
// approved, once, with the decision and its page.
func TestGitHubWebhookApprovesOnce(t *testing.T) {
	f, gh := githubFixture(t, 0)
	body := deliveryBody(t, gh, "refs/heads/main", "production")
	code, first := f.deliver("deployment_protection_rule", "72d3162e-1", sign(body), body)
	if code != http.StatusAccepted {
		t.Fatalf("delivery: %d %v", code, first)
	}
	id := first["job_id"].(string)
	done := f.waitJob(id, state(tollgate.JobAccepted))
	code, again := f.deliver("deployment_protection_rule", "72d3162e-1", sign(body), body)
	if code != http.StatusOK || again["job_id"] != id || again["state"] != "accepted" {
		t.Fatalf("redelivery: %d %v; want 200 and job %s", code, again, id)
	}
	reviews := gh.waitReviews(t, 1)
	decision := done["decisions"].([]any)[0].(string)
	if len(done["decisions"].([]any)) != 1 {
		t.Fatalf("decisions %v, want one", done["decisions"])
	}
	r := reviews[0]
	if r["state"] != "approved" || r["environment_name"] != "production" ||
		r["path"] != "/repos/org/service-api/actions/runs/23625057533/deployment_protection_rule" ||
		!strings.Contains(r["comment"], "tollgate accepted the deployment.") ||
		!strings.Contains(r["comment"], "Decision "+decision+": https://gate.example/ui/decisions/"+decision) {
		t.Fatalf("review %v", r)
	}
	_, rec := f.do(http.MethodGet, "/v1/decisions/"+decision, "", "")
	if rec["request"].(map[string]any)["metadata"].(map[string]any)["initiator"] != "github-actions" ||
		rec["request"].(map[string]any)["metadata"].(map[string]any)["run_id"] != "23625057533" {
		t.Fatalf("recorded request %v", rec["request"])
	}
	time.Sleep(100 * time.Millisecond)
	if got := gh.waitReviews(t, 1); len(got) != 1 {
		t.Fatalf("%d reviews, want 1", len(got))
	}
}

// A refusal time cannot clear is rejected on GitHub with every reason.
func TestGitHubWebhookRejectsWithReasons(t *testing.T) {
	f, gh := githubFixture(t, 0)
	f.setNow("2026-11-28T10:00:00+01:00") // a Saturday of the Black Friday freeze
	body := deliveryBody(t, gh, "feature/x", "production")
	_, j := f.deliver("deployment_protection_rule", "d-refused", sign(body), body)
	done := f.waitJob(j["job_id"].(string), state(tollgate.JobRefused))
	r := gh.waitReviews(t, 1)[0]
	if r["state"] != "rejected" || !strings.Contains(r["comment"], "tollgate refused the deployment.") {
		t.Fatalf("review %v", r)
	}
	reasons := done["reasons"].([]any)
	if len(reasons) < 3 {
		t.Fatalf("reasons %v, want the freeze, the weekend and the branch at least", reasons)
	}
	for _, reason := range reasons {
		line := fmt.Sprintf("- %s: %s", reason.(map[string]any)["code"], reason.(map[string]any)["message"])
		if !strings.Contains(r["comment"], line) {
			t.Errorf("comment lacks %q:\n%s", line, r["comment"])
		}
	}
}

// A deployment refused by the time window waits; the window opens, and
// GitHub hears approved, though it failed twice first.
func TestGitHubWebhookWaitsAndRetries(t *testing.T) {
	f, gh := githubFixture(t, 2)
	f.setNow("2026-11-23T07:59:00+01:00")
	body := deliveryBody(t, gh, "main", "production")
	_, j := f.deliver("deployment_protection_rule", "d-wait", sign(body), body)
	id := j["job_id"].(string)
	f.waitJob(id, state(tollgate.JobWaiting))
	gh.mu.Lock()
	if gh.tries != 0 {
		t.Fatalf("GitHub was told something while the job waits: %d", gh.tries)
	}
	gh.mu.Unlock()
	f.setNow("2026-11-23T08:01:00+01:00")
	f.waitJob(id, state(tollgate.JobAccepted))
	if r := gh.waitReviews(t, 1)[0]; r["state"] != "approved" {
		t.Fatalf("review %v", r)
	}
	gh.mu.Lock()
	defer gh.mu.Unlock()
	if gh.tries != 3 {
		t.Fatalf("%d tries, want 3 (two failures, then the review)", gh.tries)
	}
}

// An event tollgate cannot map is rejected on GitHub at once with what to
// configure, and stores nothing; so is a tag.
func TestGitHubWebhookUnmappable(t *testing.T) {
	f, gh := githubFixture(t, 0)
	for i, c := range []struct{ ref, env, want string }{
		{"main", "qa", `the project service-api maps no pipeline to the GitHub environment qa: add "qa": "<pipeline>"`},
		{"refs/tags/v1.0.0", "production", "the deployment is of the tag v1.0.0, not a branch"},
	} {
		body := deliveryBody(t, gh, c.ref, c.env)
		code, out := f.deliver("deployment_protection_rule", fmt.Sprintf("d-u%d", i), sign(body), body)
		if code != http.StatusAccepted || out["state"] != "rejected" || !strings.Contains(out["comment"].(string), c.want) {
			t.Fatalf("%s %s: %d %v", c.ref, c.env, code, out)
		}
		r := gh.waitReviews(t, i+1)[i]
		if r["state"] != "rejected" || r["environment_name"] != c.env || !strings.Contains(r["comment"], c.want) {
			t.Fatalf("review %v, want rejected with %q", r, c.want)
		}
	}
	f.nothingStored()
}

// A job that expires at --github-wait, or is cancelled, is rejected on
// GitHub, saying which, with the reasons it was still refused for.
func TestGitHubWebhookExpiredAndCancelled(t *testing.T) {
	f, gh := githubFixture(t, 0)
	f.setNow("2026-11-27T10:00:00+01:00") // Black Friday, a freeze until Monday
	body := deliveryBody(t, gh, "main", "production")
	_, j := f.deliver("deployment_protection_rule", "d-expire", sign(body), body)
	id := j["job_id"].(string)
	f.waitJob(id, state(tollgate.JobWaiting))
	f.setNow("2026-11-27T16:01:00+01:00") // 6 h later: --github-wait is over
	f.waitJob(id, state(tollgate.JobExpired))
	r := gh.waitReviews(t, 1)[0]
	if r["state"] != "rejected" || !strings.Contains(r["comment"], "it waited at the gate until 2026-11-27T16:00:00+01:00, and was still refused.") ||
		!strings.Contains(r["comment"], "- freeze_active: ") {
		t.Fatalf("review %v", r)
	}

	body = strings.Replace(body, "23625057533", "23625057534", 1)
	_, j = f.deliver("deployment_protection_rule", "d-cancel", sign(body), body)
	id = j["job_id"].(string)
	f.waitJob(id, state(tollgate.JobWaiting))
	if code, out := f.do(http.MethodDelete, "/v1/jobs/"+id, "", ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %v", code, out)
	}
	r = gh.waitReviews(t, 2)[1]
	if r["state"] != "rejected" || !strings.Contains(r["comment"], "its gate job "+id+" was cancelled") ||
		r["path"] != "/repos/org/service-api/actions/runs/23625057534/deployment_protection_rule" {
		t.Fatalf("review %v", r)
	}
}

// A project that maps workflow files gates a deployment by its run's
// workflow: read from GitHub, which the App may read (Actions: read). If
// GitHub cannot say, the deployment is rejected at once.
func TestGitHubWebhookWorkflowMapping(t *testing.T) {
	f, gh := githubFixture(t, 0)
	gh.workflow = ".github/workflows/hotfix.yml@refs/heads/hotfix/1"
	body := deliveryBody(t, gh, "hotfix/1", "production")
	_, j := f.deliver("deployment_protection_rule", "d-hotfix", sign(body), body)
	if j["pipeline"] != "hotfix-prod" {
		t.Fatalf("job %v, want the pipeline hotfix-prod of .github/workflows/hotfix.yml", j)
	}
	f.waitJob(j["job_id"].(string), state(tollgate.JobAccepted))
	if r := gh.waitReviews(t, 1)[0]; r["state"] != "approved" {
		t.Fatalf("review %v", r)
	}

	gh.mu.Lock()
	gh.workflow = ""
	gh.mu.Unlock()
	// A redelivery finds its job without asking GitHub, which now fails.
	if code, again := f.deliver("deployment_protection_rule", "d-hotfix", sign(body), body); code != http.StatusOK || again["job_id"] != j["job_id"] {
		t.Fatalf("redelivery while GitHub fails: %d %v; want 200 and job %v", code, again, j["job_id"])
	}
	body = strings.Replace(body, "23625057533", "23625057535", 1)
	code, out := f.deliver("deployment_protection_rule", "d-noworkflow", sign(body), body)
	want := "tollgate could not read the workflow run 23625057535 to choose the pipeline"
	if code != http.StatusAccepted || out["state"] != "rejected" || !strings.Contains(out["comment"].(string), want) {
		t.Fatalf("%d %v", code, out)
	}
	if r := gh.waitReviews(t, 2)[1]; r["state"] != "rejected" || !strings.Contains(r["comment"], want) {
		t.Fatalf("review %v", r)
	}
	_, jobs := f.do(http.MethodGet, "/v1/jobs", "", "")
	if n := len(jobs["jobs"].([]any)); n != 1 {
		t.Fatalf("%d jobs, want the hotfix's only", n)
	}
}

// A deployment waits --github-wait, or its project's github.wait_hours for
// its environment (service-api: staging 1 h).
func TestGitHubWebhookWaitPerEnvironment(t *testing.T) {
	f, gh := githubFixture(t, 0)
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) // the fixture's clock
	for env, want := range map[string]time.Duration{"production": 6 * time.Hour, "staging": time.Hour} {
		body := deliveryBody(t, gh, "main", env)
		_, j := f.deliver("deployment_protection_rule", "d-wait-"+env, sign(body), body)
		if j["wait_until"] != now.Add(want).Format(time.RFC3339) {
			t.Errorf("%s: wait_until %v, want %s", env, j["wait_until"], now.Add(want).Format(time.RFC3339))
		}
	}
}
