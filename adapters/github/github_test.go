package github_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/github"
)

// GitHub's documented test vector (docs "Validating webhook deliveries").
const (
	vectorSecret    = "It's a Secret to Everybody"
	vectorPayload   = "Hello, World!"
	vectorSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestVerifySignature(t *testing.T) {
	if err := github.VerifySignature([]byte(vectorSecret), []byte(vectorPayload), vectorSignature); err != nil {
		t.Fatalf("GitHub's test vector: %v", err)
	}
	for _, tt := range []struct{ name, secret, body, header string }{
		{"wrong secret", "It's a secret to everybody", vectorPayload, vectorSignature},
		{"changed body", vectorSecret, "Hello, World?", vectorSignature},
		{"missing", vectorSecret, vectorPayload, ""},
		{"sha1", vectorSecret, vectorPayload, "sha1=757107ea0eb2509fc211221cce984b8a37570b6d"},
		{"no prefix", vectorSecret, vectorPayload, strings.TrimPrefix(vectorSignature, "sha256=")},
		{"upper-case prefix", vectorSecret, vectorPayload, "SHA256=" + strings.TrimPrefix(vectorSignature, "sha256=")},
		{"not hex", vectorSecret, vectorPayload, "sha256=" + strings.Repeat("zz", 32)},
		{"short", vectorSecret, vectorPayload, vectorSignature[:len(vectorSignature)-2]},
		{"long", vectorSecret, vectorPayload, vectorSignature + "00"},
		{"no secret", "", vectorPayload, vectorSignature},
	} {
		if err := github.VerifySignature([]byte(tt.secret), []byte(tt.body), tt.header); err == nil {
			t.Errorf("%s: verified", tt.name)
		}
	}
}

func readFixture(t *testing.T, name string) github.Event {
	t.Helper()
	body, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	e, err := github.ParseEvent(body)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return e
}

// pipelines maps every GitHub environment to the pipeline "deploy-prod".
func pipelines(repository, environment string) (string, error) { return "deploy-prod", nil }

func TestFixtureOctokit(t *testing.T) {
	e := readFixture(t, "octokit-requested.payload.json")
	if e.Action != github.ActionRequested || e.Environment != "my-environment" || e.Deployment == nil || e.Deployment.ID != 145988746 ||
		e.Deployment.SHA != "f95f852bd8fca8fcc58a9a2d6c842781e32a215e" || e.Sender == nil || e.Sender.Login != "Codertocat" {
		t.Fatalf("parsed %+v", e)
	}
	r, err := e.Request(pipelines)
	if err != nil {
		t.Fatal(err)
	}
	want := tollgate.Request{Repository: "Codertocat/Hello-World", Branch: "master", Pipeline: "deploy-prod",
		Metadata: tollgate.Metadata{Initiator: "github-actions", Environment: "my-environment"}}
	if r != want {
		t.Fatalf("request %+v\nwant %+v", r, want)
	}
	// GitHub's example names no installation, and a callback off the API:
	// tollgate cannot answer it, and says why.
	if _, err := e.Callback("d1"); err == nil || !strings.Contains(err.Error(), "no installation") {
		t.Fatalf("callback: %v", err)
	}
	app := newApp(t, github.DefaultAPIURL, nil, nil)
	if err := app.CheckCallback(e.CallbackURL); err == nil || !strings.Contains(err.Error(), "tollgate sends it no token") {
		t.Fatalf("CheckCallback(%s): %v", e.CallbackURL, err)
	}
}

func TestFixtureRealDelivery(t *testing.T) {
	e := readFixture(t, "zaniebot-requested.json")
	r, err := e.Request(func(repository, environment string) (string, error) {
		if repository != "zaniebot/release-authenticator-example" || environment != "release" {
			return "", fmt.Errorf("asked %s %s", repository, environment)
		}
		return "publish", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := tollgate.Request{Repository: "zaniebot/release-authenticator-example", Branch: "main", Pipeline: "publish",
		Metadata: tollgate.Metadata{Initiator: "github-actions", RunID: "23625057533", Environment: "release"}}
	if r != want {
		t.Fatalf("request %+v\nwant %+v", r, want)
	}
	cb, err := e.Callback("72d3162e-cc78-11e3-81ab-4c9367dc0958")
	if err != nil {
		t.Fatal(err)
	}
	if cb.InstallationID != 119022551 || cb.Environment != "release" || cb.URL != e.CallbackURL {
		t.Fatalf("callback %+v", cb)
	}
	if err := newApp(t, github.DefaultAPIURL, nil, nil).CheckCallback(cb.URL); err != nil {
		t.Fatal(err)
	}
	// On a GitHub Enterprise Server, api.github.com is another host.
	if err := newApp(t, "https://ghe.example.com/api/v3", nil, nil).CheckCallback(cb.URL); err == nil {
		t.Fatal("a callback on api.github.com passed for a GHES API")
	}
}

func TestRefs(t *testing.T) {
	for ref, want := range map[string]string{"main": "main", "refs/heads/release/1.2": "release/1.2", "refs/heads/main": "main"} {
		if got, err := github.Branch(ref); err != nil || got != want {
			t.Errorf("Branch(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for ref, want := range map[string]string{
		"refs/tags/v1.2.0":                         "the tag v1.2.0, not a branch",
		"47efb7196c2a1a2fd3f52f2c59f0e2dd3d0e4d54": "the commit 47efb7196c2a1a2fd3f52f2c59f0e2dd3d0e4d54, not a branch",
		"refs/pull/7/merge":                        "refs/pull/7/merge, not a branch",
		"":                                         "names no ref",
	} {
		_, err := github.Branch(ref)
		var unmappable *github.UnmappableError
		if !errors.As(err, &unmappable) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "deploy from a branch, or limit the environment's deployment branches") {
			t.Errorf("Branch(%q): %v; want an UnmappableError with %q and what to configure", ref, err, want)
		}
	}
	// A tag deployment maps to no request, whatever the registry says.
	e := readFixture(t, "zaniebot-requested.json")
	e.Ref = "refs/tags/v1"
	if _, err := e.Request(pipelines); err == nil || !strings.Contains(err.Error(), "the tag v1") {
		t.Fatalf("tag: %v", err)
	}
}

func TestRequestUnmappable(t *testing.T) {
	e := readFixture(t, "zaniebot-requested.json")
	_, err := e.Request(func(string, string) (string, error) { return "", errors.New("add a github mapping") })
	var unmappable *github.UnmappableError
	if !errors.As(err, &unmappable) || err.Error() != "add a github mapping" {
		t.Fatalf("%v", err)
	}
	e.Ref = "main..x" // no branch git could create
	if _, err := e.Request(pipelines); !errors.As(err, &unmappable) || !strings.Contains(err.Error(), "refuses to record") {
		t.Fatalf("%v", err)
	}
}

func TestParseEventStrict(t *testing.T) {
	for name, body := range map[string]string{
		"duplicate key":    `{"action": "requested", "action": "completed"}`,
		"case-variant key": `{"action": "requested", "Environment": "production"}`,
		"no action":        `{"environment": "production"}`,
		"not JSON":         `action=requested`,
		"wrong type":       `{"action": "requested", "installation": {"id": "1"}}`,
	} {
		if _, err := github.ParseEvent([]byte(body)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// fakeGitHub is GitHub's API as the app uses it: it checks the app JWT
// with the app's public key, issues installation tokens, and records the
// reviews posted with a valid token.
type fakeGitHub struct {
	t   *testing.T
	key *rsa.PublicKey
	now func() time.Time

	mu       sync.Mutex
	issued   int      // installation tokens issued
	valid    []string // tokens the callback accepts
	reviews  []map[string]string
	failures []int // statuses the callback answers first, in order
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Accept") != "application/vnd.github+json" || r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" {
		http.Error(w, `{"message":"bad headers"}`, http.StatusBadRequest)
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/app/installations/42/access_tokens":
		claims := jwt.RegisteredClaims{}
		_, err := jwt.ParseWithClaims(bearer, &claims, func(*jwt.Token) (any, error) { return f.key, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(f.now), jwt.WithIssuer("1234"), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
		if err != nil {
			f.t.Errorf("app JWT: %v", err)
			http.Error(w, `{"message":"A JSON web token could not be decoded"}`, http.StatusUnauthorized)
			return
		}
		if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life > 10*time.Minute {
			f.t.Errorf("app JWT lives %s: GitHub takes at most 10 minutes", life)
		}
		if skew := f.now().Sub(claims.IssuedAt.Time); skew != 60*time.Second {
			f.t.Errorf("app JWT issued %s before now; want 60s", skew)
		}
		f.issued++
		token := fmt.Sprintf("ghs_%d", f.issued)
		f.valid = append(f.valid, token)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": token, "expires_at": f.now().Add(time.Hour).UTC().Format(time.RFC3339)})
	case r.Method == http.MethodGet && r.URL.Path == "/repos/org/api/actions/runs/77":
		if r.Header.Get("Content-Type") != "" || !slices.Contains(f.valid, bearer) {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"id": 77, "name": "Deploy", "path": ".github/workflows/deploy.yml@refs/heads/main"}`)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/deployment_protection_rule"):
		if len(f.failures) > 0 {
			status := f.failures[0]
			f.failures = f.failures[1:]
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"message":"failure %d"}`, status)
			return
		}
		known := false
		for _, v := range f.valid {
			known = known || v == bearer
		}
		if !known {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			f.t.Errorf("review body: %v", err)
		}
		body["token"] = bearer
		f.reviews = append(f.reviews, body)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
	}
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var (
	keyOnce sync.Once
	appKey  *rsa.PrivateKey
)

func testKey(t *testing.T) *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if appKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return appKey
}

func newApp(t *testing.T, apiURL string, hc *http.Client, now func() time.Time) *github.App {
	t.Helper()
	// PKCS#1, as GitHub hands out app keys.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testKey(t))})
	app, err := github.NewApp(1234, keyPEM, apiURL, hc, now)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func startFake(t *testing.T) (*fakeGitHub, *httptest.Server, *clock, *github.App) {
	clk := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	fake := &fakeGitHub{t: t, key: &testKey(t).PublicKey, now: clk.Now}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv, clk, newApp(t, srv.URL, srv.Client(), clk.Now)
}

func TestReviewTokens(t *testing.T) {
	fake, srv, clk, app := startFake(t)
	ctx := context.Background()
	callback := srv.URL + "/repos/org/api/actions/runs/77/deployment_protection_rule"
	if err := app.Review(ctx, callback, 42, "production", github.Approved, "ok"); err != nil {
		t.Fatal(err)
	}
	// The token is reused until 5 minutes before it expires (in an hour).
	clk.Add(54 * time.Minute)
	if err := app.Review(ctx, callback, 42, "production", github.Rejected, "no"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute + time.Second)
	if err := app.Review(ctx, callback, 42, "production", github.Approved, "again"); err != nil {
		t.Fatal(err)
	}
	// A token GitHub no longer takes (401) is replaced, and the review sent again.
	fake.mu.Lock()
	fake.valid = nil
	fake.mu.Unlock()
	if err := app.Review(ctx, callback, 42, "production", github.Approved, "after 401"); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.issued != 3 {
		t.Fatalf("%d tokens issued; want 3 (first, refresh before expiry, after a 401)", fake.issued)
	}
	want := []map[string]string{
		{"environment_name": "production", "state": "approved", "comment": "ok", "token": "ghs_1"},
		{"environment_name": "production", "state": "rejected", "comment": "no", "token": "ghs_1"},
		{"environment_name": "production", "state": "approved", "comment": "again", "token": "ghs_2"},
		{"environment_name": "production", "state": "approved", "comment": "after 401", "token": "ghs_3"},
	}
	if fmt.Sprint(fake.reviews) != fmt.Sprint(want) {
		t.Fatalf("reviews\n%v\nwant\n%v", fake.reviews, want)
	}
}

func TestReviewErrors(t *testing.T) {
	fake, srv, _, app := startFake(t)
	ctx := context.Background()
	callback := srv.URL + "/repos/org/api/actions/runs/77/deployment_protection_rule"
	fake.failures = []int{http.StatusBadGateway, http.StatusTooManyRequests, http.StatusUnprocessableEntity}
	for _, want := range []struct {
		status    int
		retryable bool
	}{{502, true}, {429, true}, {422, false}} {
		err := app.Review(ctx, callback, 42, "production", github.Approved, "")
		var api *github.APIError
		if !errors.As(err, &api) || api.Status != want.status || github.Retryable(err) != want.retryable {
			t.Fatalf("%v (retryable %v); want status %d, retryable %v", err, github.Retryable(err), want.status, want.retryable)
		}
	}
	// GitHub recovered: the same review now passes.
	if err := app.Review(ctx, callback, 42, "production", github.Approved, "recovered"); err != nil {
		t.Fatal(err)
	}
	if len(fake.reviews) != 1 || fake.reviews[0]["comment"] != "recovered" {
		t.Fatalf("reviews %v", fake.reviews)
	}
	// No token is ever sent off the API; a bad state is refused before.
	for _, bad := range []string{
		"https://evil.example/repos/org/api/actions/runs/77/deployment_protection_rule",
		srv.URL + "/repos/org/api/actions/runs/77/deployment_protection_rule?x=1",
		srv.URL + "/repos/org/api/issues/1/comments",
		strings.Replace(srv.URL, "http://", "https://", 1) + "/repos/org/api/actions/runs/77/deployment_protection_rule",
	} {
		if err := app.Review(ctx, bad, 42, "production", github.Approved, ""); err == nil || github.Retryable(err) {
			t.Errorf("%s: %v; want a final error", bad, err)
		}
	}
	if err := app.Review(ctx, callback, 42, "production", "pending", ""); err == nil {
		t.Error("state pending passed")
	}
	// A GitHub that cannot be reached: retryable.
	srv.Close()
	if err := app.Review(ctx, callback, 43, "production", github.Approved, ""); err == nil || !github.Retryable(err) {
		t.Fatalf("unreachable: %v; want a retryable error", err)
	}
	if fake.issued != 1 {
		t.Fatalf("%d tokens issued, want 1", fake.issued)
	}
}

func TestNewAppRefusesBadConfig(t *testing.T) {
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testKey(t))})
	for name, try := range map[string]func() error{
		"id 0": func() error { _, err := github.NewApp(0, keyPEM, github.DefaultAPIURL, nil, nil); return err },
		"no key": func() error {
			_, err := github.NewApp(1, []byte("not a key"), github.DefaultAPIURL, nil, nil)
			return err
		},
		"ftp URL":    func() error { _, err := github.NewApp(1, keyPEM, "ftp://api.github.com", nil, nil); return err },
		"URL+query":  func() error { _, err := github.NewApp(1, keyPEM, "https://api.github.com?x=1", nil, nil); return err },
		"no host":    func() error { _, err := github.NewApp(1, keyPEM, "https://", nil, nil); return err },
		"user:pass@": func() error { _, err := github.NewApp(1, keyPEM, "https://u:p@api.github.com", nil, nil); return err },
	} {
		if try() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestComment(t *testing.T) {
	o := github.Outcome{
		State: github.Rejected, Summary: "tollgate refused the deployment.",
		Reasons:    []tollgate.Reason{{Code: "freeze_active", Message: "Black Friday"}, {Code: "branch_not_allowed", Message: "branch x is not allowed"}},
		Waived:     []tollgate.Reason{{Code: "cooldown", Message: "cooldown of 30 minutes"}},
		DecisionID: "0190", PublicURL: "https://gate.example/",
	}
	got := github.Comment(o)
	want := "tollgate refused the deployment.\n\nDecision 0190: https://gate.example/ui/decisions/0190\n\nReasons:\n" +
		"- freeze_active: Black Friday\n- branch_not_allowed: branch x is not allowed\n\nWaived by approved exceptions:\n- cooldown: cooldown of 30 minutes"
	if got != want {
		t.Fatalf("comment\n%s\nwant\n%s", got, want)
	}
	// Past GitHub's limit whole lines are cut, and the comment says so.
	o.Reasons = nil
	for i := range 2000 {
		o.Reasons = append(o.Reasons, tollgate.Reason{Code: "risk_threshold_exceeded", Message: fmt.Sprintf("finding %d é %s", i, strings.Repeat("x", 40))})
	}
	got = github.Comment(o)
	if len(got) > github.MaxComment || !utf8.ValidString(got) {
		t.Fatalf("comment of %d bytes (valid UTF-8 %v); want at most %d", len(got), utf8.ValidString(got), github.MaxComment)
	}
	if !strings.HasPrefix(got, "tollgate refused the deployment.\n\nDecision 0190: https://gate.example/ui/decisions/0190") ||
		!strings.Contains(got, "more lines cut to fit GitHub's comment limit: read them all on the decision's page.") ||
		!strings.Contains(got, "- risk_threshold_exceeded: finding 0 ") {
		t.Fatalf("truncated comment: %q…%q", got[:200], got[len(got)-200:])
	}
}

func TestWorkflowPath(t *testing.T) {
	fake, _, _, app := startFake(t)
	path, err := app.WorkflowPath(context.Background(), 42, "org/api", "77")
	if err != nil || path != ".github/workflows/deploy.yml" {
		t.Fatalf("WorkflowPath = %q, %v", path, err)
	}
	if _, err := app.WorkflowPath(context.Background(), 42, "org/api", "78"); err == nil || github.Retryable(err) {
		t.Fatalf("an unknown run: %v; want a final error", err)
	}
	for _, bad := range [][2]string{{"org", "77"}, {"org/api/x", "77"}, {"org/api", "../77"}} {
		if _, err := app.WorkflowPath(context.Background(), 42, bad[0], bad[1]); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	if fake.issued != 1 {
		t.Fatalf("%d tokens issued, want 1", fake.issued)
	}
}
