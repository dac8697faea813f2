package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/server/ui"
)

// public marks a route that needs no token.
const public tollgate.Scope = ""

// routeScopes is who may do what: the scope each route needs, by
// "METHOD /path" as registered with echo. New refuses to start with a route
// that is not in this table, so a new route cannot be left open by mistake:
// add it here with its scope (or public, documented in the README).
var routeScopes = map[string]tollgate.Scope{
	"POST /v1/evaluate": tollgate.ScopeEvaluate,
	// A job is an evaluation that waits: who may evaluate may submit one,
	// follow it and cancel it; listing them all is reading.
	"POST /v1/jobs":                tollgate.ScopeEvaluate,
	"GET /v1/jobs/:id":             tollgate.ScopeEvaluate,
	"DELETE /v1/jobs/:id":          tollgate.ScopeEvaluate,
	"GET /v1/jobs":                 tollgate.ScopeRead,
	"POST /v1/scans":               tollgate.ScopeEvaluate,
	"POST /v1/simulate":            tollgate.ScopeSimulate,
	"POST /v1/impact":              tollgate.ScopeSimulate, // a simulation over the history
	"GET /v1/decisions":            tollgate.ScopeRead,
	"GET /v1/decisions/:id":        tollgate.ScopeRead,
	"GET /v1/decisions/export":     tollgate.ScopeRead,
	"GET /v1/decisions/:id/replay": tollgate.ScopeRead,
	"GET /v1/bundles":              tollgate.ScopeRead,
	"GET /v1/notifications":        tollgate.ScopeRead,
	"GET /v1/scans/:id":            tollgate.ScopeRead,
	"GET /v1/epss":                 tollgate.ScopeRead,
	"POST /v1/epss":                tollgate.ScopeAdmin,
	"GET /v1/tokens":               tollgate.ScopeAdmin,
	"POST /v1/tokens":              tollgate.ScopeAdmin,
	"DELETE /v1/tokens/:name":      tollgate.ScopeAdmin,
	// Anyone who deploys may ask for an exception; granting one (or
	// breaking the glass) takes an approver, another identity.
	"POST /v1/exceptions":             tollgate.ScopeEvaluate,
	"POST /v1/exceptions/break-glass": tollgate.ScopeApprove,
	"GET /v1/exceptions":              tollgate.ScopeRead,
	"GET /v1/exceptions/:id":          tollgate.ScopeRead,
	"POST /v1/exceptions/:id/approve": tollgate.ScopeApprove,
	"POST /v1/exceptions/:id/reject":  tollgate.ScopeApprove,
	"POST /v1/exceptions/:id/revoke":  tollgate.ScopeApprove,
	"POST /v1/freezes":                tollgate.ScopeAdmin,
	"GET /v1/freezes":                 tollgate.ScopeRead,
	"GET /v1/freezes/:id":             tollgate.ScopeRead,
	"DELETE /v1/freezes/:id":          tollgate.ScopeAdmin,
	"POST /v1/incidents":              tollgate.ScopeAdmin,
	"GET /v1/incidents":               tollgate.ScopeRead,
	"GET /v1/incidents/:id":           tollgate.ScopeRead,
	"DELETE /v1/incidents/:id":        tollgate.ScopeAdmin,
	// The history page (server/ui): its pages need read, like the API they
	// show; the login and logout forms and the stylesheet reveal nothing.
	"GET /ui":               tollgate.ScopeRead,
	"GET /ui/":              tollgate.ScopeRead,
	"GET /ui/decisions/:id": tollgate.ScopeRead,
	"GET /ui/gate":          tollgate.ScopeRead,
	// The Gate view's forms: what POST /v1/exceptions/{id}/approve|reject
	// do, with the login cookie and a CSRF token (server/ui).
	"POST /ui/exceptions/:id/approve": tollgate.ScopeApprove,
	"POST /ui/exceptions/:id/reject":  tollgate.ScopeApprove,
	"GET /ui/login":                   public,
	"POST /ui/login":                  public,
	"POST /ui/logout":                 public,
	"GET /ui/assets/*":                public,
	"GET /":                           public, // redirects to /ui/, which asks for a token
	// Probes and metrics stay open: load balancers and Prometheus hold no
	// token, and none of them reveals a decision.
	"GET /healthz": public,
	"GET /readyz":  public,
	"GET /metrics": public,
	// The API's description says what the API is, not what it holds.
	"GET /v1/openapi.json": public,
	// GitHub holds no token: it signs its deliveries with the webhook
	// secret, which the handler checks before anything else.
	"POST /v1/integrations/github/webhook": public,
}

func routeKey(method, path string) string { return method + " " + path }

// checkRouteScopes panics if a route of e has no entry in routeScopes: a
// programming error, caught by every test that builds a server.
func checkRouteScopes(e *echo.Echo) {
	for _, r := range e.Routes() {
		if _, ok := routeScopes[routeKey(r.Method, r.Path)]; !ok {
			panic(fmt.Sprintf("server: route %s %s has no scope in routeScopes", r.Method, r.Path))
		}
	}
}

// DefaultTokenCacheTTL is how long a verified token is trusted without
// reading the store again: the longest a revocation made by another process
// (another replica, `tollgate token revoke`) takes to be seen.
const DefaultTokenCacheTTL = 5 * time.Second

// tokenCacheSize bounds the cache: far more tokens than a deployment has.
const tokenCacheSize = 4096

// authenticator verifies bearer tokens against the store, with a short
// cache so that a request does not cost a store round trip. The cache holds
// what the store said (the token and its hash), not the verdict: every
// request still compares its secret with the hash and checks expiry and
// revocation at its own time.
type authenticator struct {
	store tollgate.TokenStore
	now   func() time.Time
	ttl   time.Duration
	cache *lru.Cache[string, cachedToken]
}

type cachedToken struct {
	token   tollgate.Token
	hash    []byte
	fetched time.Time
}

func newAuthenticator(store tollgate.TokenStore, now func() time.Time, ttl time.Duration) *authenticator {
	cache, err := lru.New[string, cachedToken](tokenCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &authenticator{store: store, now: now, ttl: ttl, cache: cache}
}

// bearerChallenge is the WWW-Authenticate of a 401 (RFC 6750).
func bearerChallenge(errorCode string) map[string]string {
	v := `Bearer realm="tollgate"`
	if errorCode != "" {
		v += `, error="` + errorCode + `"`
	}
	return map[string]string{echo.HeaderWWWAuthenticate: v}
}

func unauthorized(challenge, format string, args ...any) *apiError {
	e := newError(http.StatusUnauthorized, tollgate.EUnauthorized, fmt.Sprintf(format, args...))
	e.headers = bearerChallenge(challenge)
	return e
}

// authenticate returns the token of an Authorization header, or a 401
// error; 503 if the store cannot tell.
func (a *authenticator) authenticate(ctx context.Context, header string) (tollgate.Token, error) {
	if header == "" {
		return tollgate.Token{}, unauthorized("", "authentication required: send the header Authorization: Bearer <token> (`tollgate token create` makes one)")
	}
	scheme, bearer, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return tollgate.Token{}, unauthorized("invalid_request", "the Authorization header must be \"Bearer <token>\"")
	}
	id, secret, ok := tollgate.ParseBearer(strings.TrimSpace(bearer))
	if !ok {
		return tollgate.Token{}, unauthorized("invalid_token", "malformed token: tollgate tokens look like tg_<16 hex digits>_<64 hex digits>")
	}
	now := a.now()
	entry, ok := a.cache.Get(id)
	if !ok || now.Sub(entry.fetched) >= a.ttl || now.Before(entry.fetched) {
		tok, hash, err := a.store.TokenByID(ctx, id)
		switch {
		case tollgate.ErrorCode(err) == tollgate.ENotFound:
			a.cache.Remove(id)
			return tollgate.Token{}, unauthorized("invalid_token", "invalid token")
		case err != nil:
			return tollgate.Token{}, tollgate.Errorf(tollgate.EUnavailable, "the token cannot be verified now: %v", err)
		}
		entry = cachedToken{token: tok, hash: hash, fetched: now}
		a.cache.Add(id, entry)
	}
	tok := entry.token
	switch {
	case !tollgate.SecretMatches(secret, entry.hash):
		return tollgate.Token{}, unauthorized("invalid_token", "invalid token")
	case !tok.RevokedAt.IsZero():
		return tollgate.Token{}, unauthorized("invalid_token", "token %q was revoked at %s", tok.Name, tok.RevokedAt.Format(time.RFC3339))
	case tok.Expired(now):
		return tollgate.Token{}, unauthorized("invalid_token", "token %q expired at %s", tok.Name, tok.ExpiresAt.Format(time.RFC3339))
	}
	return tok, nil
}

// verifyReader is the history page's login check: the token must be valid
// and hold the read scope, as its pages need.
func (s *Server) verifyReader(ctx context.Context, token string) error {
	tok, err := s.auth.authenticate(ctx, "Bearer "+token)
	var apiErr *apiError
	switch {
	case errors.As(err, &apiErr):
		return tollgate.Errorf(apiErr.code, "%s", apiErr.msg)
	case err != nil:
		return err
	case !tok.Allows(tollgate.ScopeRead):
		return tollgate.Errorf(tollgate.EForbidden, "token %q lacks the read scope that the history page needs (it has: %s)",
			tok.Name, tollgate.FormatScopes(tok.Scopes, ", "))
	}
	return nil
}

// canApprove reports whether the history page's login may approve and
// reject exceptions: its token holds the approve scope (always in Dev).
func (s *Server) canApprove(r *http.Request) bool {
	if s.cfg.Dev {
		return true
	}
	header := r.Header.Get(echo.HeaderAuthorization) // as authorize: the header first, then the cookie
	if header == "" {
		header = "Bearer " + ui.Token(r)
	}
	tok, err := s.auth.authenticate(r.Context(), header)
	return err == nil && tok.Allows(tollgate.ScopeApprove)
}

// forget drops a token from the cache: after a revocation through this
// server, the next request reads the store.
func (a *authenticator) forget(id string) { a.cache.Remove(id) }

// authorize is the middleware of access control and the per-token rate
// limit: it finds the scope of the route, authenticates the request (unless
// the server runs with Dev), checks the scope and the rate, and puts the
// identity in the request's context for the gate to record.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		scope, known := routeScopes[routeKey(req.Method, c.Path())]
		if !known || scope == public {
			return next(c) // unknown routes: echo answers 404 or 405
		}
		identity, limitKey := tollgate.DevIdentity, tollgate.DevIdentity
		if !s.cfg.Dev {
			header := req.Header.Get(echo.HeaderAuthorization)
			if token := ui.Token(req); header == "" && token != "" {
				header = "Bearer " + token // a browser on the history page
			}
			tok, err := s.auth.authenticate(req.Context(), header)
			if err != nil {
				return err
			}
			if !tok.Allows(scope) {
				e := newError(http.StatusForbidden, tollgate.EForbidden, fmt.Sprintf(
					"token %q lacks the %s scope that %s %s needs (it has: %s)",
					tok.Name, scope, req.Method, c.Path(), tollgate.FormatScopes(tok.Scopes, ", ")))
				e.headers = map[string]string{echo.HeaderWWWAuthenticate: `Bearer realm="tollgate", error="insufficient_scope", scope="` + string(scope) + `"`}
				return e
			}
			identity, limitKey = tok.Name, tok.ID
		}
		if err := s.limits.allow(limitKey); err != nil {
			return err
		}
		c.SetRequest(req.WithContext(tollgate.WithIdentity(req.Context(), identity)))
		return next(c)
	}
}
