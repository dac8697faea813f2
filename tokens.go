package tollgate

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Scope is what an API token allows. Scopes are independent: admin does not
// imply evaluate, so that the token that manages tokens is not the one CI
// holds.
type Scope string

// The scopes, and what each allows (the server maps every route to one).
const (
	ScopeEvaluate Scope = "evaluate" // POST /v1/evaluate, POST /v1/scans, asking for an exception
	ScopeSimulate Scope = "simulate" // POST /v1/simulate, POST /v1/impact
	ScopeRead     Scope = "read"     // history, scans, bundle status, controls, the history page
	ScopeApprove  Scope = "approve"  // approving, rejecting, revoking exceptions; break-glass
	ScopeAdmin    Scope = "admin"    // tokens, EPSS import, emergency freezes, incidents
)

// Scopes lists every scope, in the order help texts show them.
var Scopes = []Scope{ScopeEvaluate, ScopeSimulate, ScopeRead, ScopeApprove, ScopeAdmin}

// ParseScopes reads a comma-separated list of scopes ("evaluate,read"),
// rejecting unknown ones. The result is sorted, without duplicates.
func ParseScopes(list string) ([]Scope, error) {
	var scopes []Scope
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			scopes = append(scopes, Scope(s))
		}
	}
	return CheckScopes(scopes)
}

// CheckScopes validates scopes and returns them sorted, without duplicates.
// At least one scope is required: a token that allows nothing is a mistake.
func CheckScopes(scopes []Scope) ([]Scope, error) {
	for _, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return nil, Errorf(EInvalid, "unknown scope %q: scopes are %s", s, FormatScopes(Scopes, ", "))
		}
	}
	if len(scopes) == 0 {
		return nil, Errorf(EInvalid, "at least one scope is required: %s", FormatScopes(Scopes, ", "))
	}
	sorted := slices.Clone(scopes)
	slices.Sort(sorted)
	return slices.Compact(sorted), nil
}

// FormatScopes joins scopes with sep: "evaluate,read".
func FormatScopes(scopes []Scope, sep string) string {
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	return strings.Join(names, sep)
}

// Token describes an API token: who holds it and what it allows. It never
// holds the secret, which exists only in the caller's hands and, hashed,
// in the store.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"` // the identity decisions record
	Scopes    []Scope   `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never
	RevokedAt time.Time `json:"revoked_at,omitzero"` // zero: not revoked
}

// Allows reports whether the token has scope s.
func (t Token) Allows(s Scope) bool { return slices.Contains(t.Scopes, s) }

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool { return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) }

// Active reports whether the token authenticates at now.
func (t Token) Active(now time.Time) bool { return t.RevokedAt.IsZero() && !t.Expired(now) }

// State is "active", "expired" or "revoked" at now.
func (t Token) State(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case t.Expired(now):
		return "expired"
	}
	return "active"
}

// A token as its holder sends it: "tg_" + ID + "_" + secret, the ID 16 and
// the secret 64 lower-case hex digits (64 and 256 random bits). The ID finds
// the stored token; only the SHA-256 of the secret is stored.
const (
	tokenPrefix  = "tg_"
	tokenIDBytes = 8
	secretBytes  = 32
)

var (
	tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	tokenRE     = regexp.MustCompile(`^tg_([0-9a-f]{16})_([0-9a-f]{64})$`)
)

// CheckTokenName validates the name of a new token: it is the identity
// every decision records, so it must read well in logs and the history.
func CheckTokenName(name string) error {
	if !tokenNameRE.MatchString(name) {
		return Errorf(EInvalid, "token name %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// NewToken makes a token named name with scopes, created at now and
// expiring at expiresAt (zero: never), with random bits read from random
// (crypto/rand.Reader in production). It returns the token, the string its
// holder sends (to show once) and the hash to store.
func NewToken(random io.Reader, name string, scopes []Scope, now, expiresAt time.Time) (tok Token, bearer string, hash []byte, err error) {
	if err := CheckTokenName(name); err != nil {
		return Token{}, "", nil, err
	}
	if scopes, err = CheckScopes(scopes); err != nil {
		return Token{}, "", nil, err
	}
	if !expiresAt.IsZero() && !expiresAt.After(now) {
		return Token{}, "", nil, Errorf(EInvalid, "expiry %s is not in the future", expiresAt.UTC().Format(time.RFC3339))
	}
	buf := make([]byte, tokenIDBytes+secretBytes)
	if _, err := io.ReadFull(random, buf); err != nil {
		return Token{}, "", nil, fmt.Errorf("new token: read random bits: %w", err)
	}
	id, secret := hex.EncodeToString(buf[:tokenIDBytes]), hex.EncodeToString(buf[tokenIDBytes:])
	tok = Token{ID: id, Name: name, Scopes: scopes, CreatedAt: now.UTC(), ExpiresAt: expiresAt.UTC()}
	if expiresAt.IsZero() {
		tok.ExpiresAt = time.Time{}
	}
	return tok, tokenPrefix + id + "_" + secret, HashSecret(secret), nil
}

// ParseBearer splits a token as its holder sends it into its ID and secret;
// ok is false if it is not shaped as tollgate makes them.
func ParseBearer(bearer string) (id, secret string, ok bool) {
	m := tokenRE.FindStringSubmatch(bearer)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// HashSecret is what the store keeps of a secret.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// SecretMatches compares secret with a stored hash in constant time.
func SecretMatches(secret string, hash []byte) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], hash) == 1
}

// TokenStore keeps API tokens. Names are unique among tokens not revoked:
// creating a token retires (revokes) the expired ones of the same name, and
// fails with EConflict if an active one holds it.
type TokenStore interface {
	// CreateToken stores t with the hash of its secret.
	CreateToken(ctx context.Context, t Token, hash []byte) error

	// TokenByID returns the token with id (revoked or expired ones too) and
	// the hash of its secret, or an ENotFound error.
	TokenByID(ctx context.Context, id string) (Token, []byte, error)

	// Tokens lists tokens by name; revoked ones only if withRevoked.
	Tokens(ctx context.Context, withRevoked bool) ([]Token, error)

	// RevokeToken revokes the token not yet revoked named name, at at, and
	// returns it; ENotFound if there is none.
	RevokeToken(ctx context.Context, name string, at time.Time) (Token, error)
}

// identityKey carries, in a request's context, who asked.
type identityKey struct{}

// DevIdentity is the identity of every request to a server started with
// --dev, which authenticates nobody.
const DevIdentity = "dev"

// WithIdentity returns ctx carrying the identity (a token's name) that the
// server authenticated for the request; the gate records it with the
// decision. It travels in the context, as request-scoped values do, from
// the authentication middleware to the record.
func WithIdentity(ctx context.Context, identity string) context.Context {
	return context.WithValue(ctx, identityKey{}, identity)
}

// IdentityFrom returns the identity WithIdentity put in ctx, or "".
func IdentityFrom(ctx context.Context) string {
	id, _ := ctx.Value(identityKey{}).(string)
	return id
}
