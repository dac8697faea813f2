package main

import (
	"os"
	"path/filepath"
	"testing"
)

// serve refuses a GitHub integration it could not run, before it starts.
func TestServeGitHubFlagErrors(t *testing.T) {
	dir := t.TempDir()
	secret, empty := filepath.Join(dir, "secret"), filepath.Join(dir, "empty")
	if err := os.WriteFile(secret, []byte("webhook secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := []string{"serve", "--license-key", fixtures.public}
	app := append(serve[:len(serve):len(serve)], "--github-app-id", "12", "--github-app-key", fixtures.private, "--github-webhook-secret-file", secret)
	cases := []struct {
		args []string
		want string
	}{
		{append(serve, "--github-app-id", "12"), "--github-app-id needs --github-app-key (the app's private key) and --github-webhook-secret-file"},
		{append(serve, "--github-app-key", fixtures.private), "--github-app-key and --github-webhook-secret-file need --github-app-id"},
		{append(serve, "--github-app-id", "12", "--github-app-key", fixtures.public, "--github-webhook-secret-file", secret), "the GitHub App private key is not a PEM RSA private key"},
		{append(serve, "--github-app-id", "12", "--github-app-key", fixtures.private, "--github-webhook-secret-file", empty), "is empty: write the webhook secret"},
		{append(serve, "--github-app-id", "12", "--github-app-key", fixtures.private, "--github-webhook-secret-file", filepath.Join(dir, "missing")), "--github-webhook-secret-file: open"},
		{append(app, "--github-wait", "721h"), "--github-wait 721h0m0s: want a positive duration of at most 720h"},
		{append(app, "--github-wait", "0s"), "--github-wait 0s: want a positive duration"},
		{append(app, "--github-api-url", "ftp://api.github.com"), `the GitHub API URL "ftp://api.github.com" is not an http(s) URL`},
		{append(app, "--public-url", "gate.example.com"), `--public-url "gate.example.com": want an http(s) URL`},
		{append(serve, "--github-app-id", "-3", "--github-app-key", fixtures.private, "--github-webhook-secret-file", secret), "the GitHub App ID must be a positive number"},
	}
	for _, c := range cases {
		wantStderr(t, runTollgate(t, c.args...), exitError, c.want)
	}
}
