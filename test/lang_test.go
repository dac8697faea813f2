package test

import (
	"strings"
	"testing"
)

// TestCheckSpeaksTheReadersLanguage: check's messages are in the language
// of the CI job's locale, or of --lang, also when it waits at the gate (a
// gate job keeps the language it was submitted with).
func TestCheckSpeaksTheReadersLanguage(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	check := func(runID string, extra ...string) []string {
		return append(append([]string{"check", "--server", s.cliBase(t)}, extra...),
			"--repository", "org/service-api", "--branch", "feature/x", "--pipeline", "deploy-staging", "--environment", envStaging, "--run-id", runID)
	}
	const french = "reason  branch_not_allowed: La branche « feature/x » ne peut pas lancer le pipeline « deploy-staging »"
	const english = `reason  branch_not_allowed: Branch "feature/x" may not run pipeline "deploy-staging"`
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no locale", nil, check("1"), english},
		{"the locale", []string{"LANG=fr_FR.UTF-8"}, check("2"), french},
		{"--lang over the locale", []string{"LANG=fr_FR.UTF-8"}, check("3", "--lang", "en"), english},
		{"TOLLGATE_LANG", []string{"TOLLGATE_LANG=fr"}, check("4"), french},
		{"--wait, the locale", []string{"LC_ALL=fr_FR.UTF-8"}, check("5", "--wait", "1m"), french},
		{"--wait, --lang", nil, check("6", "--lang", "fr-CA, en;q=0.5", "--wait", "1m"), french},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runTollgate(t, tc.env, nil, tc.args...)
			if code != 1 || !strings.Contains(stdout, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, tc.want)
			}
			if m := decisionIDInCheck.FindStringSubmatch(stdout); m != nil {
				if rec := s.decisionByID(t, m[1]); rec.Status != "refused" {
					t.Fatalf("recorded %s", rec.Status)
				}
			}
		})
	}
	if code, _, stderr := runTollgate(t, nil, nil, check("7", "--lang", "fr;q=")...); code != 2 || !strings.Contains(stderr, "--lang") {
		t.Fatalf("a malformed --lang: exit %d, stderr %q", code, stderr)
	}
}
