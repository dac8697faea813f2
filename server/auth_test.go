package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/tollgate/tollgate"
)

// mint stores a token in the fixture's store and returns what its holder
// sends.
func (f *fixture) mint(name string, expires time.Time, scopes ...tollgate.Scope) string {
	f.t.Helper()
	tok, bearer, hash, err := tollgate.NewToken(rand.Reader, name, scopes, *f.now.Load(), expires)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.CreateToken(context.Background(), tok, hash); err != nil {
		f.t.Fatal(err)
	}
	return bearer
}

func (f *fixture) advance(d time.Duration) {
	now := f.now.Load().Add(d)
	f.now.Store(&now)
}

type answer struct {
	code   int
	header http.Header
	body   map[string]any
}

// errorCode is the code of an error answer, "" if it is not one.
func (a answer) errorCode() string {
	e, _ := a.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (a answer) errorMessage() string {
	e, _ := a.body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

// send sends a request with the Authorization header given (none if "").
func (f *fixture) send(authorization, method, path, body string) answer {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := noRedirects.Do(req) // a route is judged by its own answer: GET / is public, the /ui/ it redirects to is not
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			f.t.Fatalf("%s %s: invalid JSON answer %q", method, path, raw)
		}
	}
	return a
}

func bearer(token string) string { return "Bearer " + token }

// wantError checks an error answer: status, code, a message containing
// want, and the headers given.
func wantError(t *testing.T, what string, a answer, status int, code, want string, headers map[string]string) {
	t.Helper()
	if a.code != status || a.errorCode() != code || !strings.Contains(a.errorMessage(), want) {
		t.Errorf("%s: %d %v; want %d, code %s, a message containing %q", what, a.code, a.body, status, code, want)
	}
	for name, value := range headers {
		if got := a.header.Get(name); got != value {
			t.Errorf("%s: %s = %q, want %q", what, name, got, value)
		}
	}
}

func authFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, func(*Config) {})
}

func TestUnauthenticatedRequestsGet401(t *testing.T) {
	f := authFixture(t)
	valid := f.mint("ci", time.Time{}, tollgate.ScopeEvaluate)
	id, _, _ := tollgate.ParseBearer(valid)
	challenge := `Bearer realm="tollgate", error="invalid_token"`
	for _, tc := range []struct {
		name, authorization, message, challenge string
	}{
		{"no header", "", "authentication required", `Bearer realm="tollgate"`},
		{"basic scheme", "Basic Y2k6c2VjcmV0", `must be "Bearer <token>"`, `Bearer realm="tollgate", error="invalid_request"`},
		{"bearer without token", "Bearer", "malformed token", challenge},
		{"malformed token", "Bearer not-a-token", "malformed token", challenge},
		{"truncated token", bearer(valid[:len(valid)-1]), "malformed token", challenge},
		{"unknown token", bearer("tg_0123456789abcdef_" + strings.Repeat("ab", 32)), "invalid token", challenge},
		{"wrong secret", bearer("tg_" + id + "_" + strings.Repeat("0", 64)), "invalid token", challenge},
	} {
		a := f.send(tc.authorization, http.MethodPost, "/v1/evaluate", exampleRequest)
		wantError(t, tc.name, a, http.StatusUnauthorized, tollgate.EUnauthorized, tc.message,
			map[string]string{"WWW-Authenticate": tc.challenge})
	}
	if n := f.countDecisionsAs(f.mint("reader", time.Time{}, tollgate.ScopeRead)); n != 0 {
		t.Fatalf("%d decisions recorded by unauthenticated requests", n)
	}
	// The scheme is case-insensitive (RFC 7235).
	if a := f.send("bearer "+valid, http.MethodPost, "/v1/evaluate", exampleRequest); a.code != http.StatusOK {
		t.Fatalf("lower-case scheme: %d %v", a.code, a.body)
	}
}

func (f *fixture) countDecisionsAs(token string) int {
	f.t.Helper()
	a := f.send(bearer(token), http.MethodGet, "/v1/decisions?limit=500", "")
	if a.code != http.StatusOK {
		f.t.Fatalf("list decisions: %d %v", a.code, a.body)
	}
	return len(a.body["decisions"].([]any))
}

func TestExpiredTokenGets401(t *testing.T) {
	f := authFixture(t)
	token := f.mint("short-lived", f.now.Load().Add(time.Hour), tollgate.ScopeEvaluate)
	if a := f.send(bearer(token), http.MethodPost, "/v1/evaluate", exampleRequest); a.code != http.StatusOK {
		t.Fatalf("before expiry: %d %v", a.code, a.body)
	}
	// The token is cached now; expiry is still checked at each request.
	f.advance(time.Hour)
	a := f.send(bearer(token), http.MethodPost, "/v1/evaluate", exampleRequest)
	wantError(t, "expired", a, http.StatusUnauthorized, tollgate.EUnauthorized, `token "short-lived" expired at 2026-11-23T10:00:00Z`,
		map[string]string{"WWW-Authenticate": `Bearer realm="tollgate", error="invalid_token"`})
}

func TestRevokedTokenGets401(t *testing.T) {
	f := newFixtureWith(t, func(c *Config) { c.TokenCacheTTL = 10 * time.Second })
	admin := f.mint("admin", time.Time{}, tollgate.ScopeAdmin)
	ci := f.mint("ci", time.Time{}, tollgate.ScopeEvaluate)
	other := f.mint("other", time.Time{}, tollgate.ScopeEvaluate)
	for _, tok := range []string{ci, other} {
		if a := f.send(bearer(tok), http.MethodPost, "/v1/evaluate", exampleRequest); a.code != http.StatusOK {
			t.Fatalf("before revocation: %d %v", a.code, a.body)
		}
	}

	// Revoked through this server's API: refused at once.
	if a := f.send(bearer(admin), http.MethodDelete, "/v1/tokens/ci", ""); a.code != http.StatusOK || a.body["state"] != "revoked" {
		t.Fatalf("DELETE /v1/tokens/ci: %d %v", a.code, a.body)
	}
	a := f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest)
	wantError(t, "revoked through the API", a, http.StatusUnauthorized, tollgate.EUnauthorized, `token "ci" was revoked`,
		map[string]string{"WWW-Authenticate": `Bearer realm="tollgate", error="invalid_token"`})

	// Revoked in the store by another process (the CLI, another replica):
	// refused once the cache entry is older than the TTL.
	if _, err := f.store.RevokeToken(context.Background(), "other", *f.now.Load()); err != nil {
		t.Fatal(err)
	}
	if a := f.send(bearer(other), http.MethodPost, "/v1/evaluate", exampleRequest); a.code != http.StatusOK {
		t.Fatalf("within the cache TTL: %d %v, want the cached token to pass", a.code, a.body)
	}
	f.advance(10 * time.Second)
	a = f.send(bearer(other), http.MethodPost, "/v1/evaluate", exampleRequest)
	wantError(t, "revoked in the store", a, http.StatusUnauthorized, tollgate.EUnauthorized, `token "other" was revoked`, nil)
}

func TestMissingScopeGets403(t *testing.T) {
	f := authFixture(t)
	reader := f.mint("reader", time.Time{}, tollgate.ScopeRead, tollgate.ScopeSimulate)
	for _, tc := range []struct{ method, path, body, scope string }{
		{http.MethodPost, "/v1/evaluate", exampleRequest, "evaluate"},
		{http.MethodGet, "/v1/tokens", "", "admin"},
		{http.MethodPost, "/v1/tokens", `{"name":"x","scopes":["admin"]}`, "admin"},
		{http.MethodDelete, "/v1/tokens/reader", "", "admin"},
	} {
		a := f.send(bearer(reader), tc.method, tc.path, tc.body)
		wantError(t, tc.method+" "+tc.path, a, http.StatusForbidden, tollgate.EForbidden,
			fmt.Sprintf(`token "reader" lacks the %s scope`, tc.scope),
			map[string]string{"WWW-Authenticate": `Bearer realm="tollgate", error="insufficient_scope", scope="` + tc.scope + `"`})
	}
	if n := f.countDecisionsAs(reader); n != 0 {
		t.Fatalf("%d decisions recorded by a token without the evaluate scope", n)
	}
}

// TestEveryRouteNeedsItsScope walks the routes the server registers: each
// one that is not public refuses a token holding every scope but its own,
// and lets one holding only its own through authorization.
func TestEveryRouteNeedsItsScope(t *testing.T) {
	f := authFixture(t)
	checked := 0
	for _, r := range f.api.echo.Routes() {
		scope := routeScopes[routeKey(r.Method, r.Path)]
		path := strings.NewReplacer(":id", "01a2095f-e559-7235-b13f-2a4376cd92a6", ":name", "nobody").Replace(r.Path)
		body := ""
		if r.Method == http.MethodPost {
			body = "{}"
		}
		if scope == public {
			if a := f.send("", r.Method, path, body); a.code == http.StatusUnauthorized || a.code == http.StatusForbidden {
				t.Errorf("public %s %s: %d without a token", r.Method, r.Path, a.code)
			}
			continue
		}
		var others []tollgate.Scope
		for _, s := range tollgate.Scopes {
			if s != scope {
				others = append(others, s)
			}
		}
		checked++
		without := f.mint(fmt.Sprintf("without-%d", checked), time.Time{}, others...)
		with := f.mint(fmt.Sprintf("with-%d", checked), time.Time{}, scope)
		if a := f.send(bearer(without), r.Method, path, body); a.code != http.StatusForbidden {
			t.Errorf("%s %s with every scope but %s: %d %v, want 403", r.Method, r.Path, scope, a.code, a.body)
		}
		if a := f.send(bearer(with), r.Method, path, body); a.code == http.StatusUnauthorized || a.code == http.StatusForbidden {
			t.Errorf("%s %s with the %s scope: %d %v", r.Method, r.Path, scope, a.code, a.body)
		}
	}
	if checked < 7 {
		t.Fatalf("only %d protected routes found", checked)
	}
}

func TestUnmappedRouteStopsTheServer(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "GET /v1/forgotten has no scope") {
			t.Fatalf("recovered %v, want a panic naming the route", r)
		}
	}()
	f := authFixture(t)
	f.api.echo.GET("/v1/forgotten", func(echo.Context) error { return nil })
	checkRouteScopes(f.api.echo)
}

func TestDecisionsRecordTheIdentity(t *testing.T) {
	f := authFixture(t)
	ci := f.mint("ci-pipeline", time.Time{}, tollgate.ScopeEvaluate, tollgate.ScopeRead)
	a := f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest)
	if a.code != http.StatusOK {
		t.Fatalf("evaluate: %d %v", a.code, a.body)
	}
	got := f.send(bearer(ci), http.MethodGet, "/v1/decisions/"+a.body["decision_id"].(string), "")
	if got.code != http.StatusOK || got.body["identity"] != "ci-pipeline" {
		t.Fatalf("GET /v1/decisions/{id}: %d identity %v, want ci-pipeline", got.code, got.body["identity"])
	}
	list := f.send(bearer(ci), http.MethodGet, "/v1/decisions", "")
	if items := list.body["decisions"].([]any); len(items) != 1 || items[0].(map[string]any)["identity"] != "ci-pipeline" {
		t.Fatalf("GET /v1/decisions: %v", list.body)
	}

	dev := newFixture(t)
	code, d := dev.post("/v1/evaluate", exampleRequest)
	if code != http.StatusOK {
		t.Fatalf("dev evaluate: %d %v", code, d)
	}
	if _, rec := dev.do(http.MethodGet, "/v1/decisions/"+d["decision_id"].(string), "", ""); rec["identity"] != tollgate.DevIdentity {
		t.Fatalf("dev identity %v, want %q", rec["identity"], tollgate.DevIdentity)
	}
}

func TestTokenEndpoints(t *testing.T) {
	f := authFixture(t)
	admin := f.mint("admin", time.Time{}, tollgate.ScopeAdmin)
	a := f.send(bearer(admin), http.MethodPost, "/v1/tokens", `{"name":"deployer","scopes":["evaluate","read"],"ttl":"720h"}`)
	if a.code != http.StatusCreated || a.body["name"] != "deployer" || a.body["state"] != "active" ||
		a.body["expires_at"] != "2026-12-23T09:00:00Z" {
		t.Fatalf("create: %d %v", a.code, a.body)
	}
	deployer := a.body["token"].(string)
	if e := f.send(bearer(deployer), http.MethodPost, "/v1/evaluate", exampleRequest); e.code != http.StatusOK {
		t.Fatalf("the created token cannot evaluate: %d %v", e.code, e.body)
	}

	for _, tc := range []struct{ body, code, want string }{
		{`{"name":"deployer","scopes":["read"]}`, tollgate.EConflict, `a token named "deployer" exists already`},
		{`{"name":"x","scopes":["root"]}`, tollgate.EInvalid, `unknown scope "root"`},
		{`{"name":"x","scopes":[]}`, tollgate.EInvalid, "at least one scope"},
		{`{"name":"has space","scopes":["read"]}`, tollgate.EInvalid, "token name"},
		{`{"name":"x","scopes":["read"],"ttl":"1h","expires_at":"2027-01-01T00:00:00Z"}`, tollgate.EInvalid, "not both"},
		{`{"name":"x","scopes":["read"],"ttl":"-1h"}`, tollgate.EInvalid, "positive duration"},
		{`{"name":"x","scopes":["read"],"expires_at":"2020-01-01T00:00:00Z"}`, tollgate.EInvalid, "not in the future"},
		{`{"name":"x","scopes":["read"],"secret":"mine"}`, tollgate.EInvalid, "unknown field"},
	} {
		a := f.send(bearer(admin), http.MethodPost, "/v1/tokens", tc.body)
		status := map[string]int{tollgate.EConflict: http.StatusConflict, tollgate.EInvalid: http.StatusBadRequest}[tc.code]
		wantError(t, tc.body, a, status, tc.code, tc.want, nil)
	}

	list := f.send(bearer(admin), http.MethodGet, "/v1/tokens", "")
	raw, _ := json.Marshal(list.body)
	_, secret, _ := tollgate.ParseBearer(deployer)
	if list.code != http.StatusOK || len(list.body["tokens"].([]any)) != 2 || strings.Contains(string(raw), secret) ||
		strings.Contains(string(raw), `"token"`) {
		t.Fatalf("list: %d %s", list.code, raw)
	}
	if a := f.send(bearer(admin), http.MethodDelete, "/v1/tokens/deployer", ""); a.code != http.StatusOK || a.body["revoked_at"] == nil {
		t.Fatalf("revoke: %d %v", a.code, a.body)
	}
	a = f.send(bearer(admin), http.MethodDelete, "/v1/tokens/deployer", "")
	wantError(t, "revoke twice", a, http.StatusNotFound, tollgate.ENotFound, `no token named "deployer"`, nil)
	if l := f.send(bearer(admin), http.MethodGet, "/v1/tokens", ""); len(l.body["tokens"].([]any)) != 1 {
		t.Fatalf("list after revoke: %v", l.body)
	}
	if l := f.send(bearer(admin), http.MethodGet, "/v1/tokens?revoked=true", ""); len(l.body["tokens"].([]any)) != 2 {
		t.Fatalf("list with revoked: %v", l.body)
	}
	wantError(t, "bad filter", f.send(bearer(admin), http.MethodGet, "/v1/tokens?all=1", ""), http.StatusBadRequest, tollgate.EInvalid, "unknown query parameter", nil)
}

// TestLimitsStillApplyWithAuth: an authenticated request over the body
// limit gets 413, one of another content type 415.
func TestLimitsStillApplyWithAuth(t *testing.T) {
	f := authFixture(t)
	ci := f.mint("ci", time.Time{}, tollgate.ScopeEvaluate, tollgate.ScopeRead)
	big := `{"repository":"` + strings.Repeat("a", 70<<10) + `"}`
	wantError(t, "over the limit", f.send(bearer(ci), http.MethodPost, "/v1/evaluate", big),
		http.StatusRequestEntityTooLarge, tollgate.EInvalid, "larger than the limit of 64 KiB", nil)
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/evaluate", strings.NewReader(exampleRequest))
	req.Header.Set("Authorization", bearer(ci))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d, want 415", resp.StatusCode)
	}
	if n := f.countDecisionsAs(ci); n != 0 {
		t.Fatalf("%d decisions recorded", n)
	}
}

func TestRateLimitPerToken(t *testing.T) {
	f := newFixtureWith(t, func(c *Config) { c.RateLimit, c.RateBurst = rate.Limit(0.5), 2 })
	ci := f.mint("ci", time.Time{}, tollgate.ScopeEvaluate)
	other := f.mint("other", time.Time{}, tollgate.ScopeEvaluate)
	for i := range 2 {
		if a := f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest); a.code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %v", i+1, a.code, a.body)
		}
	}
	a := f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest)
	wantError(t, "over the rate", a, http.StatusTooManyRequests, tollgate.ERateLimited, "0.5 requests per second (bursts of 2)",
		map[string]string{"Retry-After": "2"})
	// Another token has its own budget.
	if a := f.send(bearer(other), http.MethodPost, "/v1/evaluate", exampleRequest); a.code != http.StatusOK {
		t.Fatalf("another token: %d %v", a.code, a.body)
	}
	// A refused request does not spend the budget: two seconds later, one more.
	f.advance(2 * time.Second)
	if a := f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest); a.code != http.StatusOK {
		t.Fatalf("after Retry-After: %d %v", a.code, a.body)
	}
	// Unauthenticated requests are refused before they reach a budget.
	wantError(t, "no token", f.send("", http.MethodPost, "/v1/evaluate", exampleRequest), http.StatusUnauthorized, tollgate.EUnauthorized, "", nil)
}

// blockingStore holds every Decide until release is closed.
type blockingStore struct {
	tollgate.DecisionStore
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) Decide(ctx context.Context, key *tollgate.CooldownKey, decide func(tollgate.Cooldown) (tollgate.Record, error)) (tollgate.Record, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.DecisionStore.Decide(ctx, key, decide)
}

func TestEvaluationCap(t *testing.T) {
	blocking := &blockingStore{entered: make(chan struct{}, 8), release: make(chan struct{})}
	f := newFixtureWith(t, func(c *Config) {
		c.Dev, c.MaxEvaluations, c.EvaluationWait = true, 2, time.Second
		blocking.DecisionStore = c.Store
		c.Gate.Store = blocking
	})
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for range 2 {
		wg.Go(func() {
			code, _ := f.post("/v1/evaluate", exampleRequest)
			codes <- code
		})
	}
	<-blocking.entered
	<-blocking.entered // both slots held
	a := f.send("", http.MethodPost, "/v1/evaluate", exampleRequest)
	wantError(t, "over the cap", a, http.StatusServiceUnavailable, tollgate.EUnavailable, "2 evaluations are in progress",
		map[string]string{"Retry-After": "1"})
	// Simulations share the cap: they evaluate policy too.
	a = f.send("", http.MethodPost, "/v1/simulate", `{"input":`+exampleRequest+`}`)
	wantError(t, "simulate over the cap", a, http.StatusServiceUnavailable, tollgate.EUnavailable, "evaluations are in progress", nil)

	// A request that waits less than the wait gets its slot.
	var waited atomic.Int32
	wg.Go(func() {
		code, _ := f.post("/v1/evaluate", exampleRequest)
		waited.Store(int32(code))
	})
	time.Sleep(20 * time.Millisecond) // it is queued for a slot now (or still on its way: either way it gets one)
	close(blocking.release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("held evaluation: %d", code)
		}
	}
	if waited.Load() != http.StatusOK {
		t.Errorf("queued evaluation: %d, want 200", waited.Load())
	}
	if n := f.countDecisions(); n != 3 {
		t.Errorf("%d decisions recorded, want 3 (the refused ones are not)", n)
	}
}

// countingTokens counts the store reads of tokens.
type countingTokens struct {
	tollgate.TokenStore
	reads atomic.Int32
}

func (c *countingTokens) TokenByID(ctx context.Context, id string) (tollgate.Token, []byte, error) {
	c.reads.Add(1)
	return c.TokenStore.TokenByID(ctx, id)
}

// TestTokensAreCached: evaluations do not each cost a store read.
func TestTokensAreCached(t *testing.T) {
	counting := &countingTokens{}
	f := newFixtureWith(t, func(c *Config) {
		counting.TokenStore = c.Tokens
		c.Tokens = counting
	})
	ci := f.mint("ci", time.Time{}, tollgate.ScopeEvaluate)
	for range 20 {
		if a := f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest); a.code != http.StatusOK {
			t.Fatalf("%d %v", a.code, a.body)
		}
	}
	if n := counting.reads.Load(); n != 1 {
		t.Fatalf("20 requests read the token %d times, want 1", n)
	}
	f.advance(DefaultTokenCacheTTL)
	f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest)
	if n := counting.reads.Load(); n != 2 {
		t.Fatalf("after the TTL: %d reads, want 2", n)
	}
}

// TestTokenStoreDownFailsClosed: a token that cannot be verified is a 503,
// never a pass.
func TestTokenStoreDownFailsClosed(t *testing.T) {
	f := authFixture(t)
	ci := f.mint("ci", time.Time{}, tollgate.ScopeEvaluate)
	f.store.Close()
	a := f.send(bearer(ci), http.MethodPost, "/v1/evaluate", exampleRequest)
	wantError(t, "store closed", a, http.StatusServiceUnavailable, tollgate.EUnavailable, "the token cannot be verified now", nil)
}

func BenchmarkAuthenticateCached(b *testing.B) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tok, token, hash, _ := tollgate.NewToken(rand.Reader, "ci", []tollgate.Scope{tollgate.ScopeEvaluate}, now, time.Time{})
	store := &fakeTokens{tok: tok, hash: hash}
	a := newAuthenticator(store, func() time.Time { return now }, DefaultTokenCacheTTL)
	header := bearer(token)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.authenticate(context.Background(), header); err != nil {
			b.Fatal(err)
		}
	}
}

type fakeTokens struct {
	tollgate.TokenStore
	tok  tollgate.Token
	hash []byte
}

func (f *fakeTokens) TokenByID(context.Context, string) (tollgate.Token, []byte, error) {
	return f.tok, slices.Clone(f.hash), nil
}
