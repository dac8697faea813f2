package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/tollgate/tollgate/adapters/github"
	"github.com/tollgate/tollgate/server"
)

// maxGitHubWait is GitHub's own limit: a workflow job waiting on a custom
// deployment protection rule fails after 30 days.
const maxGitHubWait = 30 * 24 * time.Hour

// addGitHubFlags adds serve's flags of the GitHub deployment protection
// rule; the function returned checks them after parsing and builds the
// integration (nil when --github-app-id is not given).
func addGitHubFlags(f *flags) func() (*server.GitHub, error) {
	appID := f.Int64("github-app-id", 0, "answer GitHub's deployment protection rule webhook (POST /v1/integrations/github/webhook) as the GitHub App of this `ID`; off when 0")
	keyFile := f.String("github-app-key", "", "the GitHub App's PEM private key `FILE` (with --github-app-id)")
	secretFile := f.String("github-webhook-secret-file", "", "the `FILE` holding the GitHub App's webhook secret, which signs every delivery (with --github-app-id); never logged")
	apiURL := f.String("github-api-url", github.DefaultAPIURL, "GitHub's REST API `URL`; on GitHub Enterprise Server https://HOST/api/v3")
	wait := f.Duration("github-wait", 6*time.Hour, "how long a GitHub deployment waits at the gate before it is rejected (`DURATION`, at most 720h, GitHub's limit; and at most global_policy.jobs.max_wait_hours)")
	publicURL := f.String("public-url", "", "the server's `URL` as people reach it: GitHub review comments link to URL/ui/decisions/{id}")
	return func() (*server.GitHub, error) {
		if *appID == 0 {
			if *keyFile != "" || *secretFile != "" {
				return nil, fmt.Errorf("--github-app-key and --github-webhook-secret-file need --github-app-id")
			}
			return nil, nil
		}
		if *keyFile == "" || *secretFile == "" {
			return nil, fmt.Errorf("--github-app-id needs --github-app-key (the app's private key) and --github-webhook-secret-file (its webhook secret)")
		}
		if *wait <= 0 || *wait > maxGitHubWait {
			return nil, fmt.Errorf("--github-wait %v: want a positive duration of at most 720h (GitHub fails a deployment waiting 30 days)", *wait)
		}
		if *publicURL != "" {
			if u, err := url.Parse(*publicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return nil, fmt.Errorf("--public-url %q: want an http(s) URL such as https://tollgate.example.com", *publicURL)
			}
		}
		keyPEM, err := os.ReadFile(*keyFile)
		if err != nil {
			return nil, fmt.Errorf("--github-app-key: %w", err)
		}
		app, err := github.NewApp(*appID, keyPEM, *apiURL, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("--github-app-key or --github-api-url: %w", err)
		}
		secret, err := os.ReadFile(*secretFile)
		if err != nil {
			return nil, fmt.Errorf("--github-webhook-secret-file: %w", err)
		}
		secret = bytes.TrimRight(secret, "\r\n")
		if len(secret) == 0 {
			return nil, fmt.Errorf("--github-webhook-secret-file %s is empty: write the webhook secret set on the GitHub App in it", *secretFile)
		}
		return &server.GitHub{App: app, Secret: secret, Wait: *wait, PublicURL: *publicURL}, nil
	}
}
