package server

import (
	"crypto/rand"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
)

// tokenItem is a token as the API shows it: never its secret.
type tokenItem struct {
	tollgate.Token
	State string `json:"state"` // active, expired or revoked, now
}

// createTokenBody is POST /v1/tokens: a name, scopes, and optionally an
// expiry, as a time or a duration from now.
type createTokenBody struct {
	Name      string           `json:"name"`
	Scopes    []tollgate.Scope `json:"scopes"`
	ExpiresAt string           `json:"expires_at"` // RFC 3339
	TTL       string           `json:"ttl"`        // Go duration: "720h"
}

// createToken answers the new token with its secret, the only time the
// secret is ever shown.
func (s *Server) createToken(c echo.Context) error {
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	var b createTokenBody
	if err := tollgate.DecodeStrict(body, &b); err != nil {
		return err
	}
	now := s.cfg.Now()
	var expires time.Time
	switch {
	case b.ExpiresAt != "" && b.TTL != "":
		return tollgate.Errorf(tollgate.EInvalid, "give expires_at or ttl, not both")
	case b.ExpiresAt != "":
		if expires, err = parseTime("expires_at", b.ExpiresAt); err != nil {
			return err
		}
	case b.TTL != "":
		d, err := time.ParseDuration(b.TTL)
		if err != nil || d <= 0 {
			return tollgate.Errorf(tollgate.EInvalid, "ttl must be a positive duration such as 720h, got %q", b.TTL)
		}
		expires = now.Add(d)
	}
	tok, bearer, hash, err := tollgate.NewToken(rand.Reader, b.Name, b.Scopes, now, expires)
	if err != nil {
		return err
	}
	if err := s.cfg.Tokens.CreateToken(c.Request().Context(), tok, hash); err != nil {
		return err
	}
	s.cfg.Logger.Info("token created", "name", tok.Name, "id", tok.ID, "scopes", tollgate.FormatScopes(tok.Scopes, ","),
		"by", tollgate.IdentityFrom(c.Request().Context()))
	return c.JSON(http.StatusCreated, struct {
		tokenItem
		Token string `json:"token"`
	}{tokenItem{tok, tok.State(now)}, bearer})
}

// listTokens lists the tokens, not revoked unless ?revoked=true.
func (s *Server) listTokens(c echo.Context) error {
	withRevoked := false
	for name, values := range c.QueryParams() {
		switch {
		case name == "revoked" && len(values) == 1 && (values[0] == "true" || values[0] == "false"):
			withRevoked = values[0] == "true"
		case name == "revoked":
			return tollgate.Errorf(tollgate.EInvalid, "revoked must be true or false")
		default:
			return tollgate.Errorf(tollgate.EInvalid, "unknown query parameter %q: the only one is revoked=true", name)
		}
	}
	tokens, err := s.cfg.Tokens.Tokens(c.Request().Context(), withRevoked)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	items := make([]tokenItem, len(tokens))
	for i, t := range tokens {
		items[i] = tokenItem{t, t.State(now)}
	}
	return c.JSON(http.StatusOK, map[string]any{"tokens": items})
}

// revokeToken revokes a token by name. This server stops accepting it at
// once; other replicas within their token cache TTL.
func (s *Server) revokeToken(c echo.Context) error {
	now := s.cfg.Now()
	tok, err := s.cfg.Tokens.RevokeToken(c.Request().Context(), c.Param("name"), now)
	if err != nil {
		return err
	}
	s.auth.forget(tok.ID)
	s.cfg.Logger.Info("token revoked", "name", tok.Name, "id", tok.ID, "by", tollgate.IdentityFrom(c.Request().Context()))
	return c.JSON(http.StatusOK, tokenItem{tok, tok.State(now)})
}
