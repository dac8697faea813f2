package storetest

import (
	"crypto/rand"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// tokenTests are the conformance checks of tollgate.TokenStore, which every
// store implements beside tollgate.DecisionStore.
var tokenTests = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"Tokens/CreateAndGet", testTokenCreateAndGet},
	{"Tokens/NotFound", testTokenNotFound},
	{"Tokens/NameUniqueAmongUnrevoked", testTokenNameUnique},
	{"Tokens/ExpiredTokenGivesUpItsName", testTokenExpiredName},
	{"Tokens/Revoke", testTokenRevoke},
	{"Tokens/ListByName", testTokenList},
	{"Tokens/InvalidTokenStoresNothing", testTokenInvalid},
	{"Tokens/ConcurrentCreatesOfOneName", testTokenConcurrentCreate},
	{"Tokens/DurableAcrossReopen", testTokenDurable},
	{"Tokens/ClosedStoreIsUnavailable", testTokenClosed},
}

// tokens returns the store under test as a tollgate.TokenStore: every store
// must be one.
func (h *harness) tokens() tollgate.TokenStore {
	h.t.Helper()
	s, ok := h.store.(tollgate.TokenStore)
	if !ok {
		h.t.Fatalf("%T does not implement tollgate.TokenStore", h.store)
	}
	return s
}

var tokenEpoch = time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.UTC)

type newToken struct {
	token  tollgate.Token
	bearer string
	hash   []byte
}

func mintToken(t *testing.T, name string, scopes []tollgate.Scope, now, expires time.Time) newToken {
	t.Helper()
	tok, bearer, hash, err := tollgate.NewToken(rand.Reader, name, scopes, now, expires)
	if err != nil {
		t.Fatalf("NewToken(%q): %v", name, err)
	}
	return newToken{tok, bearer, hash}
}

func createToken(t *testing.T, s tollgate.TokenStore, name string, scopes ...tollgate.Scope) newToken {
	t.Helper()
	n := mintToken(t, name, scopes, tokenEpoch, time.Time{})
	if err := s.CreateToken(t.Context(), n.token, n.hash); err != nil {
		t.Fatalf("CreateToken(%q): %v", name, err)
	}
	return n
}

func assertToken(t *testing.T, got, want tollgate.Token) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("token = %+v\nwant    %+v", got, want)
	}
}

func testTokenCreateAndGet(t *testing.T, h *harness) {
	s := h.tokens()
	expires := tokenEpoch.Add(90 * 24 * time.Hour)
	n := mintToken(t, "ci-deploy", []tollgate.Scope{tollgate.ScopeRead, tollgate.ScopeEvaluate}, tokenEpoch, expires)
	if err := s.CreateToken(t.Context(), n.token, n.hash); err != nil {
		t.Fatal(err)
	}
	got, hash, err := s.TokenByID(t.Context(), n.token.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertToken(t, got, tollgate.Token{ID: n.token.ID, Name: "ci-deploy",
		Scopes:    []tollgate.Scope{tollgate.ScopeEvaluate, tollgate.ScopeRead},
		CreatedAt: tokenEpoch, ExpiresAt: expires})
	id, secret, ok := tollgate.ParseBearer(n.bearer)
	if !ok || id != n.token.ID || !tollgate.SecretMatches(secret, hash) {
		t.Fatalf("the stored hash does not match the bearer token's secret")
	}
	if tollgate.SecretMatches(secret[:63]+"x", hash) {
		t.Fatal("another secret matches the stored hash")
	}
}

func testTokenNotFound(t *testing.T, h *harness) {
	_, _, err := h.tokens().TokenByID(t.Context(), "0123456789abcdef")
	assertCode(t, "TokenByID(unknown)", err, tollgate.ENotFound)
}

func testTokenNameUnique(t *testing.T, h *harness) {
	s := h.tokens()
	first := createToken(t, s, "ci", tollgate.ScopeEvaluate)
	again := mintToken(t, "ci", []tollgate.Scope{tollgate.ScopeAdmin}, tokenEpoch, time.Time{})
	assertCode(t, "CreateToken(taken name)", s.CreateToken(t.Context(), again.token, again.hash), tollgate.EConflict)
	if _, _, err := s.TokenByID(t.Context(), again.token.ID); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("the refused token was stored: %v", err)
	}
	// Revoking frees the name; the revoked token stays, for the record.
	if _, err := s.RevokeToken(t.Context(), "ci", tokenEpoch.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	second := mintToken(t, "ci", []tollgate.Scope{tollgate.ScopeEvaluate}, tokenEpoch.Add(time.Hour), time.Time{})
	if err := s.CreateToken(t.Context(), second.token, second.hash); err != nil {
		t.Fatal(err)
	}
	if second.token.ID == first.token.ID {
		t.Fatal("two tokens with one ID")
	}
	assertTokenIDs(t, s, false, second.token.ID)
	assertTokenIDs(t, s, true, first.token.ID, second.token.ID)
}

func testTokenExpiredName(t *testing.T, h *harness) {
	s := h.tokens()
	old := mintToken(t, "release", []tollgate.Scope{tollgate.ScopeEvaluate}, tokenEpoch, tokenEpoch.Add(time.Hour))
	if err := s.CreateToken(t.Context(), old.token, old.hash); err != nil {
		t.Fatal(err)
	}
	// Still valid at the new token's creation: the name is taken.
	early := mintToken(t, "release", []tollgate.Scope{tollgate.ScopeEvaluate}, tokenEpoch.Add(59*time.Minute), time.Time{})
	assertCode(t, "CreateToken(name of an unexpired token)", s.CreateToken(t.Context(), early.token, early.hash), tollgate.EConflict)
	// Expired: the new token takes the name, the old one is retired.
	later := tokenEpoch.Add(time.Hour)
	renewed := mintToken(t, "release", []tollgate.Scope{tollgate.ScopeEvaluate}, later, time.Time{})
	if err := s.CreateToken(t.Context(), renewed.token, renewed.hash); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.TokenByID(t.Context(), old.token.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.Equal(later) {
		t.Fatalf("expired token's revoked_at = %v, want the new token's creation %v", got.RevokedAt, later)
	}
	assertTokenIDs(t, s, false, renewed.token.ID)
}

func testTokenRevoke(t *testing.T, h *harness) {
	s := h.tokens()
	n := createToken(t, s, "deployer", tollgate.ScopeEvaluate, tollgate.ScopeSimulate)
	at := tokenEpoch.Add(time.Hour + 7)
	revoked, err := s.RevokeToken(t.Context(), "deployer", at)
	if err != nil {
		t.Fatal(err)
	}
	want := n.token
	want.RevokedAt = at
	assertToken(t, revoked, want)
	got, _, err := s.TokenByID(t.Context(), n.token.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertToken(t, got, want)
	if got.Active(at) || got.State(at) != "revoked" {
		t.Fatalf("revoked token is %s", got.State(at))
	}
	_, err = s.RevokeToken(t.Context(), "deployer", at)
	assertCode(t, "RevokeToken(revoked)", err, tollgate.ENotFound)
	_, err = s.RevokeToken(t.Context(), "nobody", at)
	assertCode(t, "RevokeToken(unknown)", err, tollgate.ENotFound)
}

func testTokenList(t *testing.T, h *harness) {
	s := h.tokens()
	if list, err := s.Tokens(t.Context(), true); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("empty store: Tokens = %v, %v; want an empty, non-nil list", list, err)
	}
	c := createToken(t, s, "c", tollgate.ScopeRead)
	a := createToken(t, s, "a", tollgate.ScopeAdmin)
	b := createToken(t, s, "b", tollgate.ScopeApprove)
	assertTokenIDs(t, s, false, a.token.ID, b.token.ID, c.token.ID)
	if _, err := s.RevokeToken(t.Context(), "b", tokenEpoch.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	assertTokenIDs(t, s, false, a.token.ID, c.token.ID)
	assertTokenIDs(t, s, true, a.token.ID, b.token.ID, c.token.ID)
}

func testTokenInvalid(t *testing.T, h *harness) {
	s := h.tokens()
	good := mintToken(t, "good", []tollgate.Scope{tollgate.ScopeRead}, tokenEpoch, time.Time{})
	for name, tc := range map[string]struct {
		mutate func(*tollgate.Token, *[]byte)
		code   string
	}{
		"bad name":    {func(tk *tollgate.Token, _ *[]byte) { tk.Name = "two words" }, tollgate.EInvalid},
		"no scope":    {func(tk *tollgate.Token, _ *[]byte) { tk.Scopes = nil }, tollgate.EInvalid},
		"bad scope":   {func(tk *tollgate.Token, _ *[]byte) { tk.Scopes = []tollgate.Scope{"root"} }, tollgate.EInvalid},
		"short hash":  {func(_ *tollgate.Token, hash *[]byte) { *hash = (*hash)[:16] }, tollgate.EInternal},
		"no ID":       {func(tk *tollgate.Token, _ *[]byte) { tk.ID = "" }, tollgate.EInternal},
		"revoked":     {func(tk *tollgate.Token, _ *[]byte) { tk.RevokedAt = tokenEpoch }, tollgate.EInternal},
		"no creation": {func(tk *tollgate.Token, _ *[]byte) { tk.CreatedAt = time.Time{} }, tollgate.EInternal},
	} {
		tok, hash := good.token, append([]byte(nil), good.hash...)
		tc.mutate(&tok, &hash)
		assertCode(t, name, s.CreateToken(t.Context(), tok, hash), tc.code)
		if list, err := s.Tokens(t.Context(), true); err != nil || len(list) != 0 {
			t.Fatalf("%s: Tokens = %v, %v; want nothing stored", name, list, err)
		}
	}
}

func testTokenConcurrentCreate(t *testing.T, h *harness) {
	s := h.tokens()
	const n = 10
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		ok, refuse int
	)
	for range n {
		wg.Go(func() {
			tok := mintToken(t, "race", []tollgate.Scope{tollgate.ScopeEvaluate}, tokenEpoch, time.Time{})
			err := s.CreateToken(t.Context(), tok.token, tok.hash)
			mu.Lock()
			defer mu.Unlock()
			switch tollgate.ErrorCode(err) {
			case tollgate.EConflict:
				refuse++
			default:
				if err != nil {
					t.Errorf("CreateToken: %v", err)
					return
				}
				ok++
			}
		})
	}
	wg.Wait()
	if ok != 1 || refuse != n-1 {
		t.Fatalf("%d concurrent creates of one name: %d stored, %d conflicts; want 1 and %d", n, ok, refuse, n-1)
	}
}

func testTokenDurable(t *testing.T, h *harness) {
	n := createToken(t, h.tokens(), "kept", tollgate.ScopeRead)
	if _, err := h.tokens().RevokeToken(t.Context(), "kept", tokenEpoch.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	m := mintToken(t, "kept", []tollgate.Scope{tollgate.ScopeRead}, tokenEpoch.Add(2*time.Hour), time.Time{})
	if err := h.tokens().CreateToken(t.Context(), m.token, m.hash); err != nil {
		t.Fatal(err)
	}
	h.reopen()
	assertTokenIDs(t, h.tokens(), true, n.token.ID, m.token.ID)
	if _, hash, err := h.tokens().TokenByID(t.Context(), m.token.ID); err != nil || !reflect.DeepEqual(hash, m.hash) {
		t.Fatalf("after reopen: hash %x, %v; want %x", hash, err, m.hash)
	}
}

func testTokenClosed(t *testing.T, h *harness) {
	s := h.tokens()
	n := createToken(t, s, "before", tollgate.ScopeRead)
	h.close()
	late := mintToken(t, "after", []tollgate.Scope{tollgate.ScopeRead}, tokenEpoch, time.Time{})
	assertCode(t, "CreateToken", s.CreateToken(t.Context(), late.token, late.hash), tollgate.EUnavailable)
	_, _, err := s.TokenByID(t.Context(), n.token.ID)
	assertCode(t, "TokenByID", err, tollgate.EUnavailable)
	_, err = s.Tokens(t.Context(), true)
	assertCode(t, "Tokens", err, tollgate.EUnavailable)
	_, err = s.RevokeToken(t.Context(), "before", tokenEpoch)
	assertCode(t, "RevokeToken", err, tollgate.EUnavailable)
}

// assertTokenIDs checks the IDs Tokens lists, in order.
func assertTokenIDs(t *testing.T, s tollgate.TokenStore, withRevoked bool, want ...string) {
	t.Helper()
	list, err := s.Tokens(t.Context(), withRevoked)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(list))
	for i, tk := range list {
		got[i] = tk.ID
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Tokens(withRevoked=%v) IDs = %v, want %v", withRevoked, got, want)
	}
}
