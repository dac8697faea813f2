package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLicenseKeygenWritesThePairWithModes(t *testing.T) {
	for file, mode := range map[string]os.FileMode{fixtures.private: 0o600, fixtures.public: 0o644} {
		info, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", file, info.Mode().Perm(), mode)
		}
	}
}

func TestLicenseKeygenRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "license-private.pem")
	if err := os.WriteFile(private, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runTollgate(t, "license", "keygen", "--out", dir)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "already exists") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if data, _ := os.ReadFile(private); string(data) != "precious" {
		t.Errorf("the existing key was overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "license-public.pem")); err == nil {
		t.Errorf("the public key was written although the private one was refused")
	}

	r = runTollgate(t, "license", "keygen", "--bits", "2048", "--force", "--out", dir)
	r.wantCode(t, exitOK)
	if data, _ := os.ReadFile(private); !strings.Contains(string(data), "PRIVATE KEY") {
		t.Errorf("--force did not replace the key: %s", data)
	}
	if info, _ := os.Stat(private); info.Mode().Perm() != 0o600 {
		t.Errorf("replaced private key mode %v", info.Mode().Perm())
	}

	runTollgate(t, "license", "keygen").wantCode(t, exitError)
}

func TestLicenseVerify(t *testing.T) {
	r := runTollgate(t, "license", "verify", "--key", fixtures.public, "--at", mondayMorning, fixtures.licence)
	r.wantCode(t, exitOK)
	for _, want := range []string{"status:  valid", "subject: acme", "edition: pro", "expires: 2027-01-01T00:00:00Z"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not say %q:\n%s", want, r.stdout)
		}
	}

	r = runTollgate(t, "license", "verify", "--key", fixtures.public, "--json", fixtures.expired)
	r.wantCode(t, exitNo)
	var got struct {
		Status, Detail, Subject, Edition string
		ExpiresAt                        time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if got.Status != "expired" || !strings.Contains(got.Detail, "expired at 2025-06-01") || got.Subject != "acme" ||
		!got.ExpiresAt.Equal(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expired licence: %+v", got)
	}

	// Valid at some instants only: before its issue time it is not yet valid.
	r = runTollgate(t, "license", "verify", "--key", fixtures.public, "--at", "2025-12-31T23:59:59Z", fixtures.licence)
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stdout, "not valid before") {
		t.Errorf("stdout: %s", r.stdout)
	}

	// A licence signed by another key is invalid.
	other := t.TempDir()
	runTollgate(t, "license", "keygen", "--bits", "2048", "--out", other).wantCode(t, exitOK)
	r = runTollgate(t, "license", "verify", "--key", filepath.Join(other, "license-public.pem"), fixtures.licence)
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stdout, "status:  invalid") || !strings.Contains(r.stdout, "signature") {
		t.Errorf("stdout: %s", r.stdout)
	}

	runTollgate(t, "license", "verify", "--key", fixtures.public).wantCode(t, exitError)
	runTollgate(t, "license", "verify", fixtures.licence).wantCode(t, exitError)
	r = invocation{env: []string{"TOLLGATE_KEY=" + fixtures.public}}.run(t, "license", "verify", "--at", mondayMorning, fixtures.licence)
	r.wantCode(t, exitOK)
}

func TestLicenseIssue(t *testing.T) {
	r := runTollgate(t, "license", "issue", "--key", fixtures.private, "--subject", "acme", "--valid-for", "1h")
	r.wantCode(t, exitOK)
	if parts := strings.Split(strings.TrimSpace(r.stdout), "."); len(parts) != 3 {
		t.Errorf("want a JWT, got %q", r.stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--subject", "acme", "--valid-for", "1h"}, "--key is required"},
		{[]string{"--key", fixtures.private, "--valid-for", "1h"}, "--subject is required"},
		{[]string{"--key", fixtures.private, "--subject", "acme"}, "--expires is required"},
		{[]string{"--key", fixtures.public, "--subject", "acme", "--valid-for", "1h"}, "found a public key"},
		{[]string{"--key", fixtures.private, "--subject", "acme", "--expires", "2020-01-01T00:00:00Z"}, "is not after issue time"},
		{[]string{"--key", fixtures.private, "--subject", "acme", "--expires", "next year"}, "RFC 3339"},
	} {
		r := runTollgate(t, append([]string{"license", "issue"}, tc.args...)...)
		r.wantCode(t, exitError)
		if !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
}

func TestLicenseUsage(t *testing.T) {
	runTollgate(t, "license").wantCode(t, exitError)
	runTollgate(t, "license", "renew").wantCode(t, exitError)
	r := runTollgate(t, "license", "help")
	r.wantCode(t, exitOK)
	for _, want := range []string{"keygen", "issue", "verify"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("license help does not mention %s", want)
		}
	}
}
