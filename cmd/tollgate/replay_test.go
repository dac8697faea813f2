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
