package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestTestPassesOnTheShippedBundle(t *testing.T) {
	r := runTollgate(t, "test", "--coverage-min", "90", fixtures.bundle)
	r.wantCode(t, exitOK)
	m := regexp.MustCompile(`(?m)^PASS: (\d+)/(\d+)$`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("want PASS: n/n, got:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^coverage: \d+\.\d%`).MatchString(r.stdout) {
		t.Errorf("want the coverage, got:\n%s", r.stdout)
	}
	// The default directory is bundles/tollgate, from the repository root.
	runTollgate(t, "test").wantCode(t, exitOK)
}

// A bundle whose tests cover half of it: one passing test, one failing.
func failingBundle(t *testing.T) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"config/global_policy/data.json": `{}`,
		"config/projects/data.json":      `{}`,
		"x.rego":                         "package x\n\nallow if input.user == \"alice\"\n\nadmin if input.user == \"root\"\n",
		"x_test.rego": "package x_test\n\ntest_alice_allowed if data.x.allow with input.user as \"alice\"\n\n" +
			"test_bob_allowed if data.x.allow with input.user as \"bob\"\n",
	})
	return dir
}

func TestTestReportsFailuresAndCoverage(t *testing.T) {
	dir := failingBundle(t)
	r := runTollgate(t, "test", dir)
	r.wantCode(t, exitNo)
	for _, want := range []string{
		"x_test.rego:5: data.x_test.test_bob_allowed: FAIL",
		"FAIL: 1/2",
		"PASS: 1/2",
		"coverage: 50.0%",
		"x.rego:5",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "test_alice_allowed") {
		t.Errorf("passing tests are listed with -v only:\n%s", r.stdout)
	}
	r = runTollgate(t, "test", "-v", dir)
	if !strings.Contains(r.stdout, "test_alice_allowed: PASS") {
		t.Errorf("-v lists passing tests:\n%s", r.stdout)
	}

	r = runTollgate(t, "test", "--run", "alice", "--coverage-min", "80", dir)
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stdout, "coverage 50.0% is below the required 80%") {
		t.Errorf("want the coverage shortfall explained:\n%s", r.stdout)
	}
	runTollgate(t, "test", "--run", "alice", dir).wantCode(t, exitOK)

	r = runTollgate(t, "test", "--run", "nothing_matches", dir)
	r.wantCode(t, exitNo)
	if !strings.Contains(r.stderr, "no test") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestTestErrors(t *testing.T) {
	r := runTollgate(t, "test", t.TempDir())
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "load bundle") {
		t.Errorf("empty directory: stderr %s", r.stderr)
	}
	runTollgate(t, "test", "--coverage-min", "101").wantCode(t, exitError)
	runTollgate(t, "test", "--run", "(", fixtures.bundle).wantCode(t, exitError)
	runTollgate(t, "test", "a", "b").wantCode(t, exitError)
}
