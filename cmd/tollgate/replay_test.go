package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/adapters/sqlite"
)

// The replays and impact analyses themselves run end to end in
// test/replay_test.go, against a server's store; these are the mistakes a
// user can make on the command line.

func TestReplayAndImpactUsageErrors(t *testing.T) {
	dataDir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--data-dir", dataDir}, "--decision is required"},
		{[]string{"replay", "--decision", "nope", "--data-dir", dataDir}, "no tollgate store in"},
		{[]string{"replay", "--decision", "x", "--server", "http://127.0.0.1:1"}, "connection refused"},
		{[]string{"impact", "--data-dir", dataDir}, "--bundle is required"},
		{[]string{"impact", "--bundle", fixtures.bundle, "--since", "last week", "--data-dir", dataDir}, "a duration before now such as 720h"},
		{[]string{"impact", "--bundle", fixtures.bundle, "--until", "tomorrow", "--data-dir", dataDir}, "--until"},
		{[]string{"impact", "--bundle", fixtures.bundle, "--limit", "-1", "--data-dir", dataDir}, "--limit must be 0 or more"},
		{[]string{"impact", "--bundle", t.TempDir(), "--data-dir", dataDir}, "no Rego modules found"},
	} {
		r := runTollgate(t, tc.args...)
		r.wantCode(t, exitError)
		if !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("tollgate %s: stderr %q, want it to contain %q; stdout %q", strings.Join(tc.args, " "), r.stderr, tc.want, r.stdout)
		}
	}
}

// TestReadCommandsOnlyRead: the commands that only read (replay, impact,
// token list) open the store read-only: they create no store where there is
// none, and find nothing in one that has nothing.
func TestReadCommandsOnlyRead(t *testing.T) {
	for _, args := range [][]string{
		{"replay", "--decision", "nope"},
		{"impact", "--bundle", fixtures.bundle, "--since", "720h"},
		{"token", "list"},
	} {
		t.Run(args[0]+" "+args[1], func(t *testing.T) {
			missing := filepath.Join(t.TempDir(), "no-store")
			r := runTollgate(t, append(args, "--data-dir", missing)...)
			r.wantCode(t, exitError)
			if !strings.Contains(r.stderr, "no tollgate store in") {
				t.Fatalf("%s on a missing store: %q", args[0], r.stderr)
			}
			if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s created %s: %v", args[0], missing, err)
			}
		})
	}
	dataDir := t.TempDir()
	s, err := sqlite.Open(t.Context(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	r := runTollgate(t, "replay", "--decision", "nope", "--data-dir", dataDir)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, `decision "nope" not found`) {
		t.Fatalf("replay of an unknown decision: %q", r.stderr)
	}
}

func TestImpactOfAnEmptyHistory(t *testing.T) {
	dataDir := t.TempDir()
	s, err := sqlite.Open(t.Context(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	r := runTollgate(t, "impact", "--bundle", fixtures.bundle, "--fail-on-change", "--since", "720h", "--data-dir", dataDir)
	r.wantCode(t, exitOK)
	if !strings.Contains(r.stdout, "0 of 0 recorded decisions would change") {
		t.Fatalf("impact on an empty store: %q", r.stdout)
	}
}

// With no recorded decision to replay, impact still asks the candidate
// about each registered project, as a reload does: a candidate that cannot
// decide a managed request (to_number of a run ID) is reported, exit 1.
func TestImpactProbesRegisteredProjects(t *testing.T) {
	dataDir := t.TempDir()
	s, err := sqlite.Open(t.Context(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	dir := bundleCopy(t)
	path := filepath.Join(dir, "local.rego")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := ") if {\n\tresolve.resolved\n} else := [] if {"
	if !strings.Contains(string(src), old) {
		t.Fatalf("%s has changed: the test's edit no longer applies", path)
	}
	edited := strings.Replace(string(src), old, ") if {\n\tresolve.resolved\n\tto_number(input.request.metadata.run_id) > 0\n} else := [] if {", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runTollgate(t, "impact", "--bundle", dir, "--data-dir", dataDir)
	r.wantCode(t, exitNo)
	for _, want := range []string{"0 of 0 recorded decisions would change", "new policy_error: asked about registered repository", "run ID reload-probe", "to_number"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("impact of a candidate that cannot decide a managed request does not say %q:\n%s", want, r.stdout)
		}
	}
	// The shipped bundle decides them all.
	runTollgate(t, "impact", "--bundle", fixtures.bundle, "--data-dir", dataDir).wantCode(t, exitOK)
}
