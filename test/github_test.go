package test

import (
	"bytes"
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
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// e2eGitHub is GitHub's API as a GitHub App uses it for deployment
// protection rules: it checks the app JWT against the app's public key,
// issues an installation token, and records the reviews made with it.
type e2eGitHub struct {
	t       *testing.T
	key     *rsa.PublicKey
	mu      sync.Mutex
	reviews []map[string]string
	down    bool // reviews answer 503
}

func (g *e2eGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	auth, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/app/installations/119022551/access_tokens":
		var claims jwt.RegisteredClaims
		if _, err := jwt.ParseWithClaims(auth, &claims, func(*jwt.Token) (any, error) { return g.key, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("77"), jwt.WithIssuedAt(), jwt.WithExpirationRequired()); err != nil {
			g.t.Errorf("app JWT: %v", err)
			http.Error(w, `{"message": "bad JWT"}`, http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token": "ghs_e2e", "expires_at": %q}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	case r.Method == http.MethodGet && r.URL.Path == "/repos/org/service-api/actions/runs/4242" && auth == "ghs_e2e":
		// service-api maps a workflow file: its runs are read (Actions: read).
		fmt.Fprint(w, `{"id": 4242, "path": ".github/workflows/deploy.yml"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/repos/org/service-api/actions/runs/4242/deployment_protection_rule" && auth == "ghs_e2e" &&
		r.Header.Get("X-GitHub-Api-Version") == "2022-11-28":
		if g.down {
			http.Error(w, `{"message": "unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		var body map[string]string
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			g.t.Errorf("review body %q: %v", raw, err)
		}
		g.reviews = append(g.reviews, body)
		w.WriteHeader(http.StatusNoContent)
	default:
		g.t.Errorf("unexpected %s %s (Authorization %q)", r.Method, r.URL.Path, auth)
		http.Error(w, `{"message": "Not Found"}`, http.StatusNotFound)
	}
}

func (g *e2eGitHub) review(i int) (map[string]string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i < len(g.reviews) {
		return g.reviews[i], true
	}
	return nil, false
}

// TestGitHubDeploymentProtectionRule: the real binary as a GitHub App's
// deployment protection rule, against a fake GitHub. A deployment to
// staging, frozen, waits at the gate; the freeze lifted, GitHub hears
// approved. A branch the project does not allow is rejected with every
// reason in the comment. A redelivery is the same job.
func TestGitHubDeploymentProtectionRule(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	gh := &e2eGitHub{t: t, key: &key.PublicKey}
	api := httptest.NewServer(gh)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "app.pem"), filepath.Join(dir, "webhook-secret")
	saveFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	const secret = "e2e webhook secret"
	saveFile(t, secretFile, []byte(secret+"\n"))
	opts := serverOptions{bundle: newBundle(t), dataDir: t.TempDir(), args: []string{"--github-app-id", "77", "--github-app-key", keyFile,
		"--github-webhook-secret-file", secretFile, "--github-api-url", api.URL, "--public-url", "https://gate.example",
		"--notify-backoff", "1s"}}
	s := startServer(t, opts)

	fixture, err := os.ReadFile(filepath.Join(repoRoot, "adapters", "github", "testdata", "zaniebot-requested.json"))
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(delivery, ref string) (int, map[string]any) {
		var ev map[string]any
		if err := json.Unmarshal(fixture, &ev); err != nil {
			t.Fatal(err)
		}
		ev["ref"], ev["environment"] = ref, envStaging
		ev["repository"].(map[string]any)["full_name"] = "org/service-api"
		ev["deployment_callback_url"] = api.URL + "/repos/org/service-api/actions/runs/4242/deployment_protection_rule"
		body := mustJSON(t, ev)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		req, err := http.NewRequest(http.MethodPost, s.base+"/v1/integrations/github/webhook", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "deployment_protection_rule")
		req.Header.Set("X-GitHub-Delivery", delivery)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, decode[map[string]any](t, raw)
	}
	job := func(id string) map[string]any {
		code, raw := s.get(t, "/v1/jobs/"+id)
		if code != http.StatusOK {
			t.Fatalf("GET job: %d %s", code, raw)
		}
		return decode[map[string]any](t, raw)
	}

	code, raw := s.postJSON(t, "/v1/freezes", map[string]any{"reason": "release train", "environments": []string{envStaging}, "ttl": "1h"})
	if code != http.StatusCreated {
		t.Fatalf("freeze: %d %s", code, raw)
	}
	freeze := decode[map[string]any](t, raw)["id"].(string)
	code, first := deliver("a1b2c3d4-0001", "main")
	if code != http.StatusAccepted {
		t.Fatalf("delivery: %d %v", code, first)
	}
	id := first["job_id"].(string)
	eventually(t, 20*time.Second, "the job waits for the freeze", func() bool { return job(id)["state"] == "waiting" })
	if _, told := gh.review(0); told {
		t.Fatal("GitHub was told before the freeze lifted")
	}
	lifted := time.Now()
	if code, raw := s.do(t, http.MethodDelete, "/v1/freezes/"+freeze, "application/json", []byte(`{}`)); code != http.StatusOK {
		t.Fatalf("lift: %d %s", code, raw)
	}
	eventually(t, 20*time.Second, "GitHub hears of the job", func() bool { _, ok := gh.review(0); return ok })
	t.Logf("GitHub approved %s after the freeze was lifted", time.Since(lifted).Round(time.Millisecond))
	approved, _ := gh.review(0)
	done := job(id)
	decisions := done["decisions"].([]any)
	last := decisions[len(decisions)-1].(string)
	if done["state"] != "accepted" || approved["state"] != "approved" || approved["environment_name"] != envStaging ||
		!strings.Contains(approved["comment"], "Decision "+last+": https://gate.example/ui/decisions/"+last) {
		t.Fatalf("job %v, review %v", done, approved)
	}
	if rec := s.decisionByID(t, last); rec.Status != "accepted" {
		t.Fatalf("the last check's decision is %s", rec.Status)
	}
	// A redelivery (GitHub's "Redeliver") is the same job, checked no more.
	if code, again := deliver("a1b2c3d4-0001", "main"); code != http.StatusOK || again["job_id"] != id || len(again["decisions"].([]any)) != len(decisions) {
		t.Fatalf("redelivery: %d %v", code, again)
	}

	code, refusedJob := deliver("a1b2c3d4-0002", "feature/x")
	if code != http.StatusAccepted {
		t.Fatalf("delivery: %d %v", code, refusedJob)
	}
	eventually(t, 20*time.Second, "GitHub hears of the refusal", func() bool { _, ok := gh.review(1); return ok })
	rejected, _ := gh.review(1)
	refused := job(refusedJob["job_id"].(string))
	if refused["state"] != "refused" || rejected["state"] != "rejected" || !strings.Contains(rejected["comment"], "- branch_not_allowed: ") {
		t.Fatalf("job %v, review %v", refused, rejected)
	}
	for _, r := range refused["reasons"].([]any) {
		reason := r.(map[string]any)
		if line := fmt.Sprintf("- %s: %s", reason["code"], reason["message"]); !strings.Contains(rejected["comment"], line) {
			t.Errorf("the comment lacks %q:\n%s", line, rejected["comment"])
		}
	}
	if strings.Contains(s.stderr.String(), secret) {
		t.Fatal("the webhook secret is in the log")
	}

	// The review is in the outbox, written with the job's end: GitHub
	// down and the server killed -9, the next server on the store tells
	// GitHub once it is back.
	gh.mu.Lock()
	gh.down = true
	gh.mu.Unlock()
	code, third := deliver("a1b2c3d4-0003", "feature/y")
	if code != http.StatusAccepted {
		t.Fatalf("delivery: %d %v", code, third)
	}
	eventually(t, 20*time.Second, "the review fails once", func() bool {
		_, raw := s.get(t, "/v1/notifications?sink=github&state=pending")
		for _, d := range decode[map[string][]map[string]any](t, raw)["notifications"] {
			if d["attempts"].(float64) >= 1 {
				return true
			}
		}
		return false
	})
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
	gh.mu.Lock()
	gh.down = false
	gh.mu.Unlock()
	s = startServer(t, opts)
	eventually(t, 30*time.Second, "GitHub hears of the refusal after the restart", func() bool { _, ok := gh.review(2); return ok })
	if r, _ := gh.review(2); r["state"] != "rejected" || !strings.Contains(r["comment"], "- branch_not_allowed: ") {
		t.Fatalf("review %v", r)
	}
	time.Sleep(2 * time.Second) // a second review would come within the backoff
	if _, again := gh.review(3); again {
		t.Fatal("GitHub was told twice")
	}
}
