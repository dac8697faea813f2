package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/adapters/pgtest"
)

// numericRunIDs is a policy change whose own tests pass (they send run ID
// "42") but which cannot decide a managed request whose run ID is not a
// number, as Jenkins and GitLab send them: to_number fails, policy_error.
func numericRunIDs(t *testing.T, bundle string) {
	t.Helper()
	path := filepath.Join(bundle, "local.rego")
	old := ") if {\n\tresolve.resolved\n} else := [] if {"
	src := string(readFile(t, path))
	if !strings.Contains(src, old) {
		t.Fatalf("%s has changed: the test's edit no longer applies", path)
	}
	saveFile(t, path, []byte(strings.Replace(src, old,
		") if {\n\tresolve.resolved\n\tto_number(input.request.metadata.run_id) > 0\n} else := [] if {", 1)))
}

// TestReloadRefusesACandidateThatBreaksRecordedDecisions: with the real
// binary, a candidate that turns recorded decisions into policy_error is
// not activated; /v1/bundles names the decisions, the metric counts the
// rejection, the old bundle keeps deciding, and `tollgate impact` tells
// the author the same before the merge.
func TestReloadRefusesACandidateThatBreaksRecordedDecisions(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			testReloadRefusesACandidateThatBreaksRecordedDecisions(t, store)
		})
	}
}

func testReloadRefusesACandidateThatBreaksRecordedDecisions(t *testing.T, store string) {
	dataDir := t.TempDir()
	var serverArgs []string
	storeArgs := []string{"--data-dir", dataDir}
	if store == "postgres" {
		serverArgs = []string{"--database-url", pgtest.Start(t).NewDatabase(t)}
		storeArgs = serverArgs
	}
	s := startServer(t, serverOptions{dataDir: dataDir, args: serverArgs})
	before := s.bundleStatus(t)
	var broken []string // newest first, as the rejection names them
	for _, runID := range []string{"4242", "build-57", "9876543210", "pipeline-1187"} {
		r := req("org/e2e", "main", "deploy", envDev)
		r.Metadata.RunID = runID
		d := s.evaluate(t, r)
		if d.Status != "accepted" {
			t.Fatalf("run %s: %s %v, want accepted", runID, d.Status, d.codes())
		}
		if strings.Contains(runID, "-") {
			broken = append([]string{d.ID}, broken...)
		}
	}

	numericRunIDs(t, s.bundle)
	var st bundleStatus
	eventually(t, reloadWithin, "GET /v1/bundles shows the rejection", func() bool {
		st = s.bundleStatus(t)
		return st.LastError != ""
	})
	for _, want := range []string{"turns 2 of the 4 decisions recorded", broken[0] + ", " + broken[1], "to_number"} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("last_error %q does not say %q", st.LastError, want)
		}
	}
	if st.Revision != before.Revision || st.Reloads != 0 {
		t.Errorf("GET /v1/bundles: %+v, want revision %s kept", st, before.Revision)
	}
	r := req("org/e2e", "main", "deploy", envDev)
	r.Metadata.RunID = "build-58"
	if d := s.evaluate(t, r); d.Status != "accepted" || d.BundleRevision != before.Revision {
		t.Errorf("evaluate after the rejection: %s %v by %s, want accepted by %s", d.Status, d.codes(), d.BundleRevision, before.Revision)
	}
	if m := s.metrics(t); m[`tollgate_bundle_reload_rejected_total{reason="policy_errors"}`] != 1 {
		t.Errorf("tollgate_bundle_reload_rejected_total{reason=\"policy_errors\"} = %v, want 1",
			m[`tollgate_bundle_reload_rejected_total{reason="policy_errors"}`])
	}
	s.stop(t)

	// The author's view of the same candidate: exit 1 without any flag.
	code, stdout, stderr := runTollgate(t, nil, nil, append([]string{"impact", "--bundle", s.bundle}, storeArgs...)...)
	want := "new policy_error: the candidate cannot decide 3 recorded decisions, and serve would not activate it: "
	if code != 1 || !strings.Contains(stdout, want) || !strings.Contains(stdout, broken[0]+", "+broken[1]) {
		t.Fatalf("impact of the candidate: exit %d, want 1 naming %v\n%s%s", code, broken, stdout, stderr)
	}
	t.Logf("impact:\n%s", stdout)
	code, stdout, _ = runTollgate(t, nil, nil, append([]string{"impact", "--bundle", s.bundle, "--json"}, storeArgs...)...)
	if code != 1 || !strings.Contains(stdout, `"new_policy_errors": 3`) {
		t.Fatalf("impact --json: exit %d\n%s", code, stdout)
	}
}

// TestServeRefusesABundleThatCannotDecide: at start there is no other
// bundle to serve, so serve exits with the reason rather than refuse every
// request with policy_error.
func TestServeRefusesABundleThatCannotDecide(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		edit func(t *testing.T, bundle string)
		say  string
	}{
		"no tests": {
			edit: func(t *testing.T, bundle string) {
				tests, _ := filepath.Glob(filepath.Join(bundle, "*_test.rego"))
				more, _ := filepath.Glob(filepath.Join(bundle, "*", "*_test.rego"))
				for _, f := range append(tests, more...) {
					if err := os.Remove(f); err != nil {
						t.Fatal(err)
					}
				}
			},
			say: "no test passed (0 tests, 0 skipped)",
		},
		"no decision rule": {
			edit: func(t *testing.T, bundle string) {
				path := filepath.Join(bundle, "decision.rego")
				saveFile(t, path, []byte(strings.Replace(string(readFile(t, path)), "\ndecision := ", "\nverdict := ", 1)))
			},
			say: "no rule defines data.tollgate.decision",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bundle := newBundle(t)
			c.edit(t, bundle)
			start := time.Now()
			code, _, stderr := runTollgate(t, nil, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--bundle", bundle,
				"--data-dir", t.TempDir(), "--license", validLicence, "--license-key", publicKey)
			if code != 2 || !strings.Contains(stderr, "no valid bundle to serve") || !strings.Contains(stderr, c.say) {
				t.Fatalf("serve with a bundle that cannot decide: exit %d, want 2 saying %q\n%s", code, c.say, stderr)
			}
			t.Logf("exit %d after %v: %s", code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr))
		})
	}
}

// TestSIGHUPReloadsTheBundle: `systemctl reload` (ExecReload=kill -HUP)
// reloads the bundle at once, as a change seen by the watcher does after
// its debounce. Here the debounce is an hour, so only the signal can do it;
// and the server keeps serving (SIGHUP's default is to exit).
func TestSIGHUPReloadsTheBundle(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{args: []string{"--reload-debounce", "1h"}})
	before := s.bundleStatus(t)
	projects := readProjects(t, s.bundle)
	projects["reloaded-by-sighup"] = map[string]any{"repositories": []string{"org/reloaded-by-sighup"}, "pipelines": map[string]any{"deploy": map[string]any{"type": "deploy"}}}
	writeJSON(t, projectsPath(s.bundle), projects)
	time.Sleep(500 * time.Millisecond)
	if got := s.bundleStatus(t); got.Revision != before.Revision {
		t.Fatalf("the bundle reloaded without the signal (revision %s): the test cannot tell what SIGHUP does", got.Revision)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a new revision after SIGHUP", func() bool {
		if !s.running() {
			t.Fatalf("tollgate serve exited on SIGHUP: %v", s.waitErr)
		}
		return s.bundleStatus(t).Revision != before.Revision
	})
	if after := s.bundleStatus(t); after.Reloads != before.Reloads+1 || after.LastError != "" {
		t.Errorf("after SIGHUP: %+v, want one more reload and no error", after)
	}
	if !strings.Contains(s.stderr.String(), "SIGHUP") {
		t.Errorf("the log does not say the reload came from SIGHUP:\n%s", s.stderr.String())
	}
}
