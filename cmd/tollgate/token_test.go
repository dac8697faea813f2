package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/sqlite"
)

var tokenLine = regexp.MustCompile(`^tg_([0-9a-f]{16})_[0-9a-f]{64}\n$`)

func TestTokenCreateListRevoke(t *testing.T) {
	dataDir := t.TempDir()
	store := []string{"--data-dir", dataDir}
	r := runTollgate(t, append([]string{"token", "create", "--name", "ci", "--scopes", "evaluate,read"}, store...)...)
	r.wantCode(t, exitOK)
	m := tokenLine.FindStringSubmatch(r.stdout)
	if m == nil || !strings.Contains(r.stderr, `created token "ci"`) || !strings.Contains(r.stderr, "shown only this once") {
		t.Fatalf("create: stdout %q\nstderr %q", r.stdout, r.stderr)
	}
	id, secret := m[1], strings.TrimSpace(r.stdout)[20:]

	// The store holds the hash, never the token.
	s, err := sqlite.Open(t.Context(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, hash, err := s.TokenByID(t.Context(), id)
	s.Close()
	if err != nil || tok.Name != "ci" || !tollgate.SecretMatches(secret, hash) || string(hash) == secret {
		t.Fatalf("stored %+v, %v", tok, err)
	}

	r = runTollgate(t, append([]string{"token", "create", "--name", "deployer", "--scopes", "evaluate", "--expires", "2099-01-01T00:00:00Z", "--json"}, store...)...)
	r.wantCode(t, exitOK)
	var created struct {
		Name, Token string
		ExpiresAt   time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || created.Name != "deployer" ||
		!strings.HasPrefix(created.Token, "tg_") || created.ExpiresAt.Year() != 2099 {
		t.Fatalf("create --json: %q (%v)", r.stdout, err)
	}

	// A taken name, unknown scopes, bad expiries: refused, nothing stored.
	for _, args := range [][]string{
		{"--name", "ci", "--scopes", "read"},
		{"--name", "x", "--scopes", "root"},
		{"--name", "x"},
		{"--name", "x", "--scopes", "read", "--ttl", "1h", "--expires", "2099-01-01T00:00:00Z"},
		{"--name", "x", "--scopes", "read", "--expires", "2001-01-01T00:00:00Z"},
		{"--name", "two words", "--scopes", "read"},
	} {
		r := runTollgate(t, append(append([]string{"token", "create"}, args...), store...)...)
		r.wantCode(t, exitError)
		if r.stdout != "" || !strings.HasPrefix(r.stderr, "tollgate token create: ") {
			t.Errorf("create %v: stdout %q\nstderr %q", args, r.stdout, r.stderr)
		}
	}

	r = runTollgate(t, append([]string{"token", "list"}, store...)...)
	r.wantCode(t, exitOK)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "ci ") ||
		!strings.Contains(lines[1], "evaluate,read") || !strings.Contains(lines[2], "2099-01-01T00:00:00Z") ||
		strings.Contains(r.stdout, secret) {
		t.Fatalf("list:\n%s", r.stdout)
	}

	r = runTollgate(t, append([]string{"token", "revoke", "ci"}, store...)...)
	r.wantCode(t, exitOK)
	if r.stdout != `revoked token "ci" (id `+id+")\n" {
		t.Fatalf("revoke: %q", r.stdout)
	}
	r = runTollgate(t, append([]string{"token", "revoke", "ci"}, store...)...)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, `no token named "ci"`) {
		t.Fatalf("revoke twice: %q", r.stderr)
	}
	r = runTollgate(t, append([]string{"token", "list"}, store...)...)
	if strings.Contains(r.stdout, "ci ") {
		t.Fatalf("list shows the revoked token:\n%s", r.stdout)
	}
	r = runTollgate(t, append([]string{"token", "list", "--revoked", "--json"}, store...)...)
	var listed struct {
		Tokens []struct{ Name, State string } `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed.Tokens) != 2 || listed.Tokens[0].State != "revoked" {
		t.Fatalf("list --revoked --json: %s (%v)", r.stdout, err)
	}
	// The name is free again.
	runTollgate(t, append([]string{"token", "create", "--name", "ci", "--scopes", "evaluate"}, store...)...).wantCode(t, exitOK)
}

func TestTokenUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"rotate"}, {"revoke"}, {"revoke", "a", "b"}} {
		r := runTollgate(t, append([]string{"token"}, args...)...)
		r.wantCode(t, exitError)
		if r.stdout != "" || !strings.Contains(r.stderr, "token") {
			t.Errorf("token %v: stdout %q\nstderr %q", args, r.stdout, r.stderr)
		}
	}
	r := runTollgate(t, "token", "create", "-h")
	r.wantCode(t, exitOK)
	if !strings.Contains(r.stdout, "--scopes SCOPES") || !strings.Contains(r.stdout, "TOLLGATE_DATABASE_URL") {
		t.Errorf("token create -h:\n%s", r.stdout)
	}
	r = runTollgate(t, "help")
	if !strings.Contains(r.stdout, "token     create, list and revoke API tokens") {
		t.Errorf("help does not list token:\n%s", r.stdout)
	}
}
