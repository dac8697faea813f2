package github

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultAPIURL is GitHub's REST API; GitHub Enterprise Server's is
// https://HOST/api/v3.
const DefaultAPIURL = "https://api.github.com"

// APIVersion is the REST API version tollgate speaks.
const APIVersion = "2022-11-28"

// tokenMargin is how long before its expiry an installation token is
// replaced: a request made with it must not reach GitHub expired.
const tokenMargin = 5 * time.Minute

// App is a GitHub App: it signs app JWTs with its private key, exchanges
// them for installation tokens (cached per installation until tokenMargin
// before they expire), and reviews deployments with them.
type App struct {
	id   int64
	key  *rsa.PrivateKey
	base *url.URL
	http *http.Client
	now  func() time.Time

	mu     sync.Mutex
	tokens map[int64]installationToken
}

type installationToken struct {
	token   string
	expires time.Time
}

// NewApp is the app id with the PEM RSA private key GitHub gave it (PKCS#1
// or PKCS#8), speaking to the REST API at apiURL (DefaultAPIURL, or a
// GitHub Enterprise Server's). hc nil is a client with a 30 s timeout; now
// nil is time.Now.
func NewApp(id int64, keyPEM []byte, apiURL string, hc *http.Client, now func() time.Time) (*App, error) {
	if id <= 0 {
		return nil, fmt.Errorf("the GitHub App ID must be a positive number, got %d", id)
	}
	key, err := jwt.ParseRSAPrivateKeyFromPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the GitHub App private key is not a PEM RSA private key: %w", err)
	}
	base, err := url.Parse(strings.TrimSuffix(apiURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("the GitHub API URL %q is not an http(s) URL such as %s", apiURL, DefaultAPIURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &App{id: id, key: key, base: base, http: hc, now: now, tokens: map[int64]installationToken{}}, nil
}

// APIURL is the REST API the app speaks to.
func (a *App) APIURL() string { return a.base.String() }

// JWT is a fresh app JWT: RS256, issued by the app ID, iat 60 s in the
// past (GitHub's advice against clock drift), exp 9 minutes ahead (GitHub
// takes at most 10).
func (a *App) JWT() (string, error) {
	now := a.now()
	return jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(a.id, 10),
		IssuedAt:  jwt.NewNumericDate(now.Add(-60 * time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(9 * time.Minute)),
	}).SignedString(a.key)
}

// callbackPath is the path, below the API URL, of a deployment's callback.
var callbackPath = regexp.MustCompile(`^/repos/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/actions/runs/[0-9]+/deployment_protection_rule$`)

// CheckCallback refuses a callback URL that is not a deployment protection
// rule callback of the app's API: an installation token is never sent to
// another host.
func (a *App) CheckCallback(callbackURL string) error {
	u, err := url.Parse(callbackURL)
	if err != nil {
		return fmt.Errorf("the callback URL %q is not a URL", callbackURL)
	}
	path, under := strings.CutPrefix(u.EscapedPath(), a.base.EscapedPath())
	if u.Scheme != a.base.Scheme || u.Host != a.base.Host || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		!under || !callbackPath.MatchString(path) {
		return fmt.Errorf("the callback URL %q is not a deployment protection rule callback of the GitHub API at %s (--github-api-url): tollgate sends it no token", callbackURL, a.base)
	}
	return nil
}

// APIError is an answer of GitHub's that is not a success.
type APIError struct {
	Method, URL string
	Status      int
	Message     string
	retryable   bool
}

func (e *APIError) Error() string {
	return fmt.Sprintf("GitHub answered %s %s with %d: %s", e.Method, e.URL, e.Status, e.Message)
}

// Retryable reports whether err may pass if the same call is made again
// later: a network failure, a timeout, GitHub's 5xx, 429, or a 403 of its
// rate limits. Other 4xx (a callback already answered, a permission the
// app lacks) will fail again, and so will a callback refused before it is
// sent.
func Retryable(err error) bool {
	var (
		api *APIError
		net *url.Error // what http.Client.Do returns: no answer came
	)
	switch {
	case errors.As(err, &api):
		return api.retryable
	case errors.As(err, &net):
		return !errors.Is(err, context.Canceled)
	}
	return false
}

// do sends a request to GitHub, with body as JSON (if not nil) and auth
// as the Authorization, and decodes a success's JSON answer into out (if
// not nil).
func (a *App) do(ctx context.Context, method, rawURL, auth string, body, out any) error {
	var payload io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, payload)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", APIVersion)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "tollgate")
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, rawURL, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, rawURL, err)
	}
	if resp.StatusCode/100 != 2 {
		var msg struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(answer, &msg) != nil || msg.Message == "" {
			msg.Message = http.StatusText(resp.StatusCode)
		}
		rateLimited := resp.StatusCode == http.StatusForbidden &&
			(resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-RateLimit-Remaining") == "0")
		return &APIError{Method: method, URL: rawURL, Status: resp.StatusCode, Message: msg.Message,
			retryable: resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || rateLimited}
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, rawURL, err)
		}
	}
	return nil
}

// InstallationToken is a token of the installation: the cached one unless
// it expires within tokenMargin, else a new one (POST
// /app/installations/{id}/access_tokens with an app JWT).
func (a *App) InstallationToken(ctx context.Context, installationID int64) (string, error) {
	a.mu.Lock()
	t, ok := a.tokens[installationID]
	a.mu.Unlock()
	if ok && a.now().Add(tokenMargin).Before(t.expires) {
		return t.token, nil
	}
	appJWT, err := a.JWT()
	if err != nil {
		return "", fmt.Errorf("sign the GitHub App JWT: %w", err)
	}
	var answer struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	u := a.base.JoinPath("app", "installations", strconv.FormatInt(installationID, 10), "access_tokens").String()
	if err := a.do(ctx, http.MethodPost, u, "Bearer "+appJWT, struct{}{}, &answer); err != nil {
		return "", err
	}
	if answer.Token == "" || answer.ExpiresAt.IsZero() {
		return "", fmt.Errorf("POST %s: the answer has no token or expires_at", u)
	}
	a.mu.Lock()
	a.tokens[installationID] = installationToken{token: answer.Token, expires: answer.ExpiresAt}
	a.mu.Unlock()
	return answer.Token, nil
}

// WorkflowPath is the workflow file of a run of repository ("OWNER/REPO"),
// as the installation reads it (GET /repos/{owner}/{repo}/actions/runs/{id},
// with the Actions read permission): ".github/workflows/deploy.yml".
func (a *App) WorkflowPath(ctx context.Context, installationID int64, repository, runID string) (string, error) {
	owner, repo, ok := strings.Cut(repository, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		return "", fmt.Errorf("repository %q is not OWNER/REPO", repository)
	}
	if _, err := strconv.ParseUint(runID, 10, 64); err != nil {
		return "", fmt.Errorf("run ID %q is not a number", runID)
	}
	token, err := a.InstallationToken(ctx, installationID)
	if err != nil {
		return "", err
	}
	var run struct {
		Path string `json:"path"`
	}
	u := a.base.JoinPath("repos", owner, repo, "actions", "runs", runID).String()
	if err := a.do(ctx, http.MethodGet, u, "Bearer "+token, nil, &run); err != nil {
		return "", err
	}
	if run.Path == "" {
		return "", fmt.Errorf("GET %s: the run has no path", u)
	}
	// A run of a workflow called from another ref may say path@ref.
	path, _, _ := strings.Cut(run.Path, "@")
	return path, nil
}

// forget drops the installation's cached token if it is still token.
func (a *App) forget(installationID int64, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens[installationID].token == token {
		delete(a.tokens, installationID)
	}
}

// Review states, as GitHub names them.
const (
	Approved = "approved"
	Rejected = "rejected"
)

// Review answers the deployment of callbackURL for environment as the
// installation: state Approved or Rejected, with comment. A 401 (a token
// revoked or expired early) drops the cached token and tries once more
// with a new one. Errors say whether to try again later (Retryable).
func (a *App) Review(ctx context.Context, callbackURL string, installationID int64, environment, state, comment string) error {
	if state != Approved && state != Rejected {
		return fmt.Errorf("review state %q: want %s or %s", state, Approved, Rejected)
	}
	if err := a.CheckCallback(callbackURL); err != nil {
		return err
	}
	body := map[string]string{"environment_name": environment, "state": state, "comment": comment}
	for attempt := 0; ; attempt++ {
		token, err := a.InstallationToken(ctx, installationID)
		if err != nil {
			return err
		}
		err = a.do(ctx, http.MethodPost, callbackURL, "Bearer "+token, body, nil)
		var api *APIError
		if attempt == 0 && errors.As(err, &api) && api.Status == http.StatusUnauthorized {
			a.forget(installationID, token)
			continue
		}
		return err
	}
}
