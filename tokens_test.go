package tollgate_test

import (
	"bytes"
	"crypto/rand"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tollgate/tollgate"
)

func TestParseScopes(t *testing.T) {
	got, err := tollgate.ParseScopes(" read,evaluate,, read ")
	if err != nil || !reflect.DeepEqual(got, []tollgate.Scope{tollgate.ScopeEvaluate, tollgate.ScopeRead}) {
		t.Fatalf("ParseScopes = %v, %v", got, err)
	}
	for _, bad := range []string{"", ",", "evaluate,root", "Evaluate"} {
		if _, err := tollgate.ParseScopes(bad); tollgate.ErrorCode(err) != tollgate.EInvalid ||
			!strings.Contains(err.Error(), "evaluate, simulate, read, approve, admin") {
			t.Errorf("ParseScopes(%q) = %v, want an invalid_input error listing the scopes", bad, err)
		}
	}
}

func TestNewTokenAndParseBearer(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	tok, bearer, hash, err := tollgate.NewToken(rand.Reader, "ci", []tollgate.Scope{"evaluate"}, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(bearer) != len("tg_")+16+1+64 || !strings.HasPrefix(bearer, "tg_"+tok.ID+"_") {
		t.Fatalf("bearer %q", bearer)
	}
	id, secret, ok := tollgate.ParseBearer(bearer)
	if !ok || id != tok.ID || !tollgate.SecretMatches(secret, hash) || len(hash) != 32 {
		t.Fatalf("ParseBearer(%q) = %q, %q, %v", bearer, id, secret, ok)
	}
	if tok.CreatedAt != now.UTC() || tok.ExpiresAt != now.Add(time.Hour).UTC() || tok.Name != "ci" {
		t.Fatalf("token %+v", tok)
	}
	if !tok.Active(now) || tok.Active(now.Add(time.Hour)) || tok.State(now.Add(time.Hour)) != "expired" {
		t.Fatal("expiry is not at ExpiresAt")
	}
	if !tok.Allows(tollgate.ScopeEvaluate) || tok.Allows(tollgate.ScopeAdmin) {
		t.Fatal("scopes")
	}
	// Two tokens never share an ID or a secret.
	_, other, _, _ := tollgate.NewToken(rand.Reader, "ci", []tollgate.Scope{"evaluate"}, now, time.Time{})
	if other[:19] == bearer[:19] || other[20:] == bearer[20:] {
		t.Fatal("two tokens share random bits")
	}
	for _, bad := range []string{"", "tg_", bearer + "0", strings.ToUpper(bearer), "Bearer " + bearer,
		"tg_" + tok.ID + "-" + secret, "xx_" + tok.ID + "_" + secret, "tg_" + tok.ID[:15] + "_" + secret + "0"} {
		if _, _, ok := tollgate.ParseBearer(bad); ok {
			t.Errorf("ParseBearer(%q) accepted it", bad)
		}
	}
}

func TestNewTokenRefuses(t *testing.T) {
	now := time.Now()
	for name, call := range map[string]func() error{
		"bad name": func() error {
			_, _, _, err := tollgate.NewToken(rand.Reader, "a b", []tollgate.Scope{"read"}, now, time.Time{})
			return err
		},
		"long name": func() error {
			_, _, _, err := tollgate.NewToken(rand.Reader, strings.Repeat("a", 65), []tollgate.Scope{"read"}, now, time.Time{})
			return err
		},
		"no scope": func() error { _, _, _, err := tollgate.NewToken(rand.Reader, "ci", nil, now, time.Time{}); return err },
		"past expiry": func() error {
			_, _, _, err := tollgate.NewToken(rand.Reader, "ci", []tollgate.Scope{"read"}, now, now)
			return err
		},
		"short random": func() error {
			_, _, _, err := tollgate.NewToken(iotest.ErrReader(bytes.ErrTooLarge), "ci", []tollgate.Scope{"read"}, now, time.Time{})
			return err
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: NewToken succeeded", name)
		}
	}
}
