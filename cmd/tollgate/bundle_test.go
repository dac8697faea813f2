package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// bundleCopy is a copy of the shipped bundle in a temporary directory.
func bundleCopy(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := os.CopyFS(dir, os.DirFS(fixtures.bundle)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func wantStderr(t *testing.T, r result, code int, want string) {
	t.Helper()
	r.wantCode(t, code)
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, r.stderr)
	}
}

// An author signs, the server's key verifies; eval checks like serve.
// (The licence key pair is an RSA key pair like any other.)
func TestBundleSignVerifyAndEval(t *testing.T) {
	dir := bundleCopy(t)
	r := runTollgate(t, "bundle", "sign", "--signing-key", fixtures.private, "--key-id", "authors", dir)
	r.wantCode(t, exitOK)
	files := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, _ error) error {
		if !d.IsDir() && d.Name() != ".signatures.json" {
			files++
		}
		return nil
	})
	if !strings.Contains(r.stdout, fmt.Sprintf("signed %d files of %s into %s", files, dir, filepath.Join(dir, ".signatures.json"))) {
		t.Errorf("stdout: %s", r.stdout)
	}
	r = runTollgate(t, "bundle", "verify", "--bundle-verification-key", fixtures.public, dir)
	r.wantCode(t, exitOK)
	if !strings.Contains(r.stdout, `signature verified with key "default" (RS256), revision sha256:`) {
		t.Errorf("stdout: %s", r.stdout)
	}
	signed := []string{"eval", "--bundle", dir, "--license", fixtures.licence, "--license-key", fixtures.public,
		"--input", fixtures.example, "--at", mondayMorning, "--bundle-verification-key", fixtures.public}
	runTollgate(t, signed...).wantCode(t, exitOK)

	path := filepath.Join(dir, "config", "projects", "data.json")
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(content), `"main",`, "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	wantStderr(t, runTollgate(t, signed...), exitError, "config/projects/data.json: digest mismatch")
	wantStderr(t, runTollgate(t, "bundle", "verify", "--bundle-verification-key", fixtures.public, dir),
		exitError, "config/projects/data.json: digest mismatch")
}

func TestBundleCommandErrors(t *testing.T) {
	dir := bundleCopy(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"bundle"}, "usage: tollgate bundle"},
		{[]string{"bundle", "seal", dir}, `unknown command "seal"`},
		{[]string{"bundle", "sign", dir}, "--signing-key is required"},
		{[]string{"bundle", "sign", "--signing-key", fixtures.private}, "want one bundle directory"},
		{[]string{"bundle", "sign", "--signing-key", fixtures.public, dir}, `PEM block "PUBLIC KEY": want a PRIVATE KEY`},
		{[]string{"bundle", "sign", "--signing-key", fixtures.private, "--signing-alg", "ES256", dir}, "algorithm ES256 does not fit this key"},
		{[]string{"bundle", "verify", dir}, "--bundle-verification-key is required"},
		{[]string{"bundle", "verify", "--bundle-verification-key", fixtures.private, dir}, "this is a private key"},
		{[]string{"bundle", "verify", "--bundle-verification-key", fixtures.public, dir}, "is not signed: no .signatures.json"},
		{[]string{"eval", "--license-key", fixtures.public, "--bundle-verification-scope", "prod"}, "--bundle-verification-scope needs --bundle-verification-key"},
		{[]string{"eval", "--license-key", fixtures.public, "--eval-timeout", "0s"}, "--eval-timeout 0s: want a positive duration"},
		{[]string{"serve", "--license-key", fixtures.public, "--eval-timeout", "-1s"}, "--eval-timeout -1s: want a positive duration"},
		{[]string{"serve", "--license-key", fixtures.public, "--job-lease", "0s"}, "--job-lease 0s: want a positive duration"},
		{[]string{"serve", "--license-key", fixtures.public, "--reload-min-coverage", "150"}, "--reload-min-coverage 150: want a percentage from 0 to 100"},
		{[]string{"serve", "--license-key", fixtures.public, "--reload-replay-limit", "0"}, "--reload-replay-limit must be a positive number or -1"},
		{[]string{"serve", "--license-key", fixtures.public, "--reload-replay-window", "-1h"}, "--reload-replay-window a positive duration"},
		{[]string{"serve", "--license-key", fixtures.public, "--bundle-verification-key", filepath.Join(dir, "missing.pem")}, "bundle verification key: open"},
	}
	for _, c := range cases {
		wantStderr(t, runTollgate(t, c.args...), exitError, c.want)
	}
}

// A runaway policy is refused with policy_error once --eval-timeout runs out.
func TestEvalTimeout(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"config/global_policy/data.json": "{}",
		"config/projects/data.json":      "{}",
		"policy.rego": `package tollgate

decision := {"status": "accepted", "reasons": [], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""} if {
	r := numbers.range(1, 20000)
	count({a | some a in r; some b in r; a == b + 100000}) == 0
}
`,
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := runTollgate(t, "eval", "--bundle", dir, "--license", fixtures.licence, "--license-key", fixtures.public,
		"--input", fixtures.example, "--eval-timeout", "100ms")
	r.wantCode(t, exitNo)
	d := decision(t, r)
	if d.Status != tollgate.Refused || len(d.Reasons) != 1 || d.Reasons[0].Code != tollgate.CodePolicyError ||
		!strings.Contains(d.Reasons[0].Message, "time budget of 100ms") {
		t.Fatalf("want policy_error naming the budget, got %+v", d)
	}
}
