package rego

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// The edit most tests make: service-api starts allowing "develop", which
// turns the refusal of developRequest into an acceptance.
const (
	projectsJSON   = "config/projects/data.json"
	branchesBefore = `"allowed_branches": ["main", "release/*"],`
	branchesAfter  = `"allowed_branches": ["main", "release/*", "develop"],`
	// watchDeadline is only reached when a test fails. A reload compiles,
	// folds and runs the bundle's 247 tests, paced: under -race beside the
	// rest of make test one took over 30 s in CI (the first load alone
	// 17 s), so the bound is generous.
	watchDeadline = 2 * time.Minute
	testDebounce  = 100 * time.Millisecond
)

// copyBundle copies the shipped bundle into dst, which must not exist.
func copyBundle(tb testing.TB, dst string) {
	tb.Helper()
	err := filepath.WalkDir(defaultBundle, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(defaultBundle, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, content, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// bundleCopy is a fresh copy of the shipped bundle in a temporary directory.
func bundleCopy(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "bundle")
	copyBundle(tb, dir)
	return dir
}

// removeTests replaces the bundle's _test.rego files by one trivial test
// (a bundle without tests is rejected). Tests of the watcher use it: the
// bundle's tests are what makes a candidate slow to build, above all under
// -race, and the tests that are about them keep them.
func removeTests(tb testing.TB, dir string) {
	tb.Helper()
	deleteTests(tb, dir)
	writeFile(tb, filepath.Join(dir, "minimal_test.rego"), "package minimal_test\n\ntest_minimal if true\n")
}

// deleteTests deletes the bundle's _test.rego files.
func deleteTests(tb testing.TB, dir string) {
	tb.Helper()
	tests, _ := filepath.Glob(filepath.Join(dir, "*_test.rego"))
	more, _ := filepath.Glob(filepath.Join(dir, "*", "*_test.rego"))
	if len(tests) == 0 {
		tb.Fatal("no tests to remove")
	}
	for _, f := range append(tests, more...) {
		if err := os.Remove(f); err != nil {
			tb.Fatal(err)
		}
	}
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// editFile replaces old by new in a file, in place.
func editFile(tb testing.TB, path, old, new string) {
	tb.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(string(content), old) {
		tb.Fatalf("%s does not contain %q", path, old)
	}
	writeFile(tb, path, strings.Replace(string(content), old, new, 1))
}

func developRequest() tollgate.Request {
	r := exampleRequest()
	r.Branch = "develop"
	return r
}

// monday is inside the time windows and outside every freeze.
func mondayContext(tb testing.TB) tollgate.Context {
	return validContext(at(tb, "2026-11-23T10:00:00+01:00"))
}

// logRecorder collects log messages, so that tests can wait for one.
type logRecorder struct {
	mu       sync.Mutex
	messages []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.messages = append(l.messages, line)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.messages {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func (l *logRecorder) dump(tb testing.TB) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.messages {
		tb.Log(m)
	}
}

// testEngine is an Engine under test with its log and its OnReload calls.
type testEngine struct {
	*Engine
	log   *logRecorder
	hooks atomic.Int64 // OnReload calls
}

func newTestEngine(tb testing.TB, dir string, poll time.Duration) *testEngine {
	tb.Helper()
	return newTestEngineDebounce(tb, dir, poll, testDebounce)
}

func newTestEngineDebounce(tb testing.TB, dir string, poll, debounce time.Duration) *testEngine {
	tb.Helper()
	te := &testEngine{log: &logRecorder{}}
	e, err := NewEngine(context.Background(), dir, EngineOptions{
		Debounce: debounce,
		Poll:     poll,
		Logger:   slog.New(te.log),
		OnReload: func(BundleStatus, error) { te.hooks.Add(1) },
	})
	if err != nil {
		tb.Fatal(err)
	}
	te.Engine = e
	tb.Cleanup(func() {
		if tb.Failed() {
			te.log.dump(tb)
		}
	})
	return te
}

// watch runs Watch until the test ends and returns once it watches.
func (te *testEngine) watch(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- te.Watch(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Watch: %v", err)
		}
	})
	waitFor(tb, "the watcher to start", func() bool { return te.log.count("INFO watching bundle directory") > 0 })
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(watchDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", watchDeadline, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// revisionOf is the revision the bundle in dir would have.
func revisionOf(tb testing.TB, dir string) string {
	tb.Helper()
	b, err := LoadBundle(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return b.Revision
}

func (te *testEngine) waitRevision(tb testing.TB, revision string) time.Duration {
	tb.Helper()
	start := time.Now()
	waitFor(tb, "revision "+revision, func() bool { return te.Policy().Revision() == revision })
	return time.Since(start)
}

func (te *testEngine) waitFailures(tb testing.TB, n uint64) BundleStatus {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("%d failed reloads", n), func() bool { return te.Status().Failures >= n })
	return te.Status()
}

// decides checks the active policy's answer to developRequest.
func (te *testEngine) decides(tb testing.TB, want tollgate.Status) {
	tb.Helper()
	p := te.Policy()
	d := p.Evaluate(context.Background(), developRequest(), mondayContext(tb))
	if d.Status != want || d.BundleRevision != p.Revision() {
		tb.Fatalf("got %s %v from %s, want %s from %s", d.Status, codes(d.Reasons), d.BundleRevision, want, p.Revision())
	}
}

func TestNewEngineRefusesABadBundle(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	writeFile(t, filepath.Join(dir, "broken.rego"), "package tollgate.broken\n\nallow if {\n")
	_, err := NewEngine(context.Background(), dir, EngineOptions{Logger: slog.New(&logRecorder{})})
	if err == nil || !strings.Contains(err.Error(), "broken.rego") {
		t.Fatalf("want an error naming broken.rego, got %v", err)
	}
	_, err = NewEngine(context.Background(), filepath.Join(t.TempDir(), "missing"), EngineOptions{})
	if err == nil {
		t.Fatal("a missing directory was accepted")
	}
}

func TestNewEngineStatus(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	te := newTestEngine(t, dir, -1)
	s := te.Status()
	if s.Revision != revisionOf(t, dir) || s.Dir != dir || s.ActivatedAt.IsZero() || !s.LastAttemptAt.Equal(s.ActivatedAt) ||
		s.LastError != "" || s.Reloads != 0 || s.Failures != 0 {
		t.Fatalf("status after the first load: %+v", s)
	}
	if te.hooks.Load() != 0 {
		t.Error("OnReload was called for the first load")
	}
	te.decides(t, tollgate.Refused)
}

func TestReloadUnchangedIsANoOp(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	te := newTestEngine(t, dir, -1)
	before := te.Status()
	if err := te.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := te.Status()
	if after.Revision != before.Revision || !after.ActivatedAt.Equal(before.ActivatedAt) || after.Reloads != 0 || after.Failures != 0 {
		t.Fatalf("an unchanged reload changed the status: %+v, was %+v", after, before)
	}
	if te.hooks.Load() != 0 {
		t.Error("OnReload was called for an unchanged reload")
	}
}

func TestReloadRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	te := newTestEngine(t, dir, -1)
	active := te.Policy()
	editFile(t, filepath.Join(dir, projectsJSON), `"allowed_branches": ["main"],`, `"allowed_branch": ["main"],`)
	err := te.Reload(context.Background())
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.HasSuffix(ce.File, projectsJSON) || !strings.Contains(err.Error(), "allowed_branch") {
		t.Fatalf("want a ConfigError naming %s and the field, got %v", projectsJSON, err)
	}
	s := te.Status()
	if te.Policy() != active || s.LastError != err.Error() || s.Failures != 1 || s.Reloads != 0 || te.hooks.Load() != 1 {
		t.Fatalf("after a rejected candidate: %+v, hooks %d", s, te.hooks.Load())
	}
	if te.log.count("ERROR bundle reload failed, keeping the active bundle") != 1 {
		t.Error("the failure was not logged")
	}
	t.Log(s.LastError)
}

func TestReloadRejectsFailingTests(t *testing.T) {
	tests := map[string]string{
		"false": "package extra_test\n\ntest_fails if false\n",
		// Passes in stock `opa test`, where the builtin error is undefined
		// and `not` turns it into true; errors in strict mode.
		"builtin error": "package extra_test\n\ntest_strict if not to_number(\"abc\") == 1\n",
	}
	t.Parallel()
	for name, module := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := bundleCopy(t)
			te := newTestEngine(t, dir, -1)
			active := te.Policy()
			writeFile(t, filepath.Join(dir, "extra_test.rego"), module)
			err := te.Reload(context.Background())
			var tf *TestsFailedError
			if !errors.As(err, &tf) || !strings.Contains(err.Error(), "extra_test.rego") {
				t.Fatalf("want a TestsFailedError naming extra_test.rego, got %v", err)
			}
			if te.Policy() != active || te.Status().LastError == "" {
				t.Fatalf("after failing tests: %+v", te.Status())
			}
			t.Log(err)
		})
	}
}

func TestWatchReloadsAGoodEdit(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	te := newTestEngine(t, dir, -1)
	te.watch(t)
	previous := te.Policy().Revision()
	editFile(t, filepath.Join(dir, projectsJSON), branchesBefore, branchesAfter)
	took := te.waitRevision(t, revisionOf(t, dir))
	t.Logf("write to active: %v (debounce %v)", took, testDebounce)
	te.decides(t, tollgate.Accepted)
	s := te.Status()
	if s.Revision == previous || s.Reloads != 1 || s.Failures != 0 || s.LastError != "" || te.hooks.Load() != 1 {
		t.Fatalf("status after a good edit: %+v, hooks %d", s, te.hooks.Load())
	}
	if te.log.count("INFO bundle reloaded") != 1 {
		t.Error("the reload was not logged")
	}
}

func TestWatchRejectsBrokenRegoAndRecovers(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	te := newTestEngine(t, dir, -1)
	te.watch(t)
	active := te.Policy().Revision()
	broken := filepath.Join(dir, "projects", "broken.rego")
	writeFile(t, broken, "package tollgate.projects.broken\n\nreasons contains x if {\n")
	s := te.waitFailures(t, 1)
	if s.Revision != active || !strings.Contains(s.LastError, "broken.rego") {
		t.Fatalf("want the active revision kept and an error naming broken.rego, got %+v", s)
	}
	te.decides(t, tollgate.Refused)
	t.Log(s.LastError)

	// Removing the file brings the directory back to the active bundle.
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the error to clear", func() bool { return te.Status().LastError == "" })
	if s := te.Status(); s.Revision != active || s.Reloads != 0 || s.Failures != 1 {
		t.Fatalf("after the fix: %+v", s)
	}
}

func TestWatchRenameOnSave(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	te := newTestEngine(t, dir, -1)
	te.watch(t)
	// As vim and most atomic writers save: a backup, a temporary file,
	// then a rename over the original.
	path := filepath.Join(dir, projectsJSON)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path+"~", string(content))
	tmp := filepath.Join(filepath.Dir(path), ".data.json.swp")
	writeFile(t, tmp, strings.Replace(string(content), branchesBefore, branchesAfter, 1))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	te.waitRevision(t, revisionOf(t, dir))
	te.decides(t, tollgate.Accepted)
}

func TestWatchFileDeletedAndRecreated(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	te := newTestEngine(t, dir, -1)
	te.watch(t)
	path := filepath.Join(dir, projectsJSON)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// Without its projects registry the bundle is rejected...
	if s := te.waitFailures(t, 1); !strings.Contains(s.LastError, projectsJSON) {
		t.Fatalf("want an error naming %s, got %q", projectsJSON, s.LastError)
	}
	te.decides(t, tollgate.Refused)
	// ...and the recreated file is seen in the same directory.
	writeFile(t, path, strings.Replace(string(content), branchesBefore, branchesAfter, 1))
	te.waitRevision(t, revisionOf(t, dir))
	te.decides(t, tollgate.Accepted)
}

func TestWatchNewSubdirectory(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	te := newTestEngine(t, dir, -1)
	te.watch(t)
	writeFile(t, filepath.Join(dir, "extra", "deep", "extra.rego"), "package tollgate.extra\n\nanswer := 42\n")
	te.waitRevision(t, revisionOf(t, dir))
	// A file written into the new directory later is seen too: it is watched.
	writeFile(t, filepath.Join(dir, "extra", "deep", "more.rego"), "package tollgate.extra\n\nquestion := 6 * 7\n")
	te.waitRevision(t, revisionOf(t, dir))
	if n := len(te.Policy().Bundle().modules); n == 0 {
		t.Fatal("no modules")
	}
	for _, name := range []string{"extra.rego", "more.rego"} {
		if _, ok := te.Policy().Bundle().modules[filepath.Join(dir, "extra", "deep", name)]; !ok {
			t.Errorf("%s is not in the active bundle", name)
		}
	}
}

// TestWatchSymlinkSwap follows the Kubernetes ConfigMap pattern: the bundle
// directory is a symlink, replaced atomically by a rename.
func TestWatchSymlinkSwap(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	v1, v2 := filepath.Join(root, "..data", "v1"), filepath.Join(root, "..data", "v2")
	copyBundle(t, v1)
	removeTests(t, v1)
	link := filepath.Join(root, "bundle")
	if err := os.Symlink(filepath.Join("..data", "v1"), link); err != nil {
		t.Fatal(err)
	}
	te := newTestEngine(t, link, -1)
	te.watch(t)

	copyBundle(t, v2)
	removeTests(t, v2)
	editFile(t, filepath.Join(v2, projectsJSON), branchesBefore, branchesAfter)
	tmp := filepath.Join(root, "bundle.tmp")
	if err := os.Symlink(filepath.Join("..data", "v2"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil { // mv -T
		t.Fatal(err)
	}
	took := te.waitRevision(t, revisionOf(t, v2))
	t.Logf("symlink swap to active: %v", took)
	te.decides(t, tollgate.Accepted)
	if err := os.RemoveAll(v1); err != nil {
		t.Fatal(err)
	}

	// The new target is watched, the old one no longer matters.
	writeFile(t, filepath.Join(v2, "extra.rego"), "package tollgate.extra\n\nanswer := 42\n")
	te.waitRevision(t, revisionOf(t, v2))
	if s := te.Status(); s.Reloads != 2 || s.Failures != 0 {
		t.Fatalf("after two changes: %+v", s)
	}
}

// TestWatchConfigMapVolume follows what the kubelet's atomic writer does
// in a ConfigMap volume: the mount is a real directory whose entries are
// symlinks through ..data, itself a symlink swapped by a rename.
func TestWatchConfigMapVolume(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "bundle")
	v1, v2 := filepath.Join(dir, "..2026_11_23_v1"), filepath.Join(dir, "..2026_11_23_v2")
	copyBundle(t, v1)
	removeTests(t, v1)
	if err := os.Symlink(filepath.Base(v1), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(v1)
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		if err := os.Symlink(filepath.Join("..data", entry.Name()), filepath.Join(dir, entry.Name())); err != nil {
			t.Fatal(err)
		}
	}
	te := newTestEngine(t, dir, -1)
	te.watch(t)

	copyBundle(t, v2)
	removeTests(t, v2)
	editFile(t, filepath.Join(v2, projectsJSON), branchesBefore, branchesAfter)
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(v2), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	te.waitRevision(t, revisionOf(t, v2))
	te.decides(t, tollgate.Accepted)
	if err := os.RemoveAll(v1); err != nil {
		t.Fatal(err)
	}
}

func TestWatchDirectoryDisappearsAndComesBack(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	te := newTestEngine(t, dir, 200*time.Millisecond)
	te.watch(t)
	active := te.Policy().Revision()
	gone := dir + ".gone"
	if err := os.Rename(dir, gone); err != nil {
		t.Fatal(err)
	}
	s := te.waitFailures(t, 1)
	if s.Revision != active || !strings.Contains(s.LastError, "no such file") {
		t.Fatalf("want the active revision kept and a missing-directory error, got %+v", s)
	}
	te.decides(t, tollgate.Refused)

	editFile(t, filepath.Join(gone, projectsJSON), branchesBefore, branchesAfter)
	if err := os.Rename(gone, dir); err != nil {
		t.Fatal(err)
	}
	te.waitRevision(t, revisionOf(t, dir))
	te.decides(t, tollgate.Accepted)
	// And it is watched again.
	editFile(t, filepath.Join(dir, projectsJSON), branchesAfter, branchesBefore)
	te.waitRevision(t, active)
	// Two reloads, no more: a rescan of an unchanged directory rebuilds
	// nothing. (Failures may exceed 1 on a loaded machine, where a reload
	// can read an edit half-written; the last attempt succeeded.)
	if s := te.Status(); s.Reloads != 2 || s.LastError != "" {
		t.Fatalf("rescans rebuilt an unchanged directory: %+v", s)
	}
}

// TestWatchDebouncesABurst does not run in parallel, and debounces for a
// second (writes come 10 ms apart): a writer starved of CPU for longer than
// the debounce, as on a loaded CI machine, would split the burst.
func TestWatchDebouncesABurst(t *testing.T) {
	const debounce = time.Second
	dir := bundleCopy(t)
	removeTests(t, dir)
	te := newTestEngineDebounce(t, dir, -1, debounce)
	te.watch(t)
	path := filepath.Join(dir, projectsJSON)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		branches := fmt.Sprintf(`"allowed_branches": ["main", "release/*", "burst-%d"],`, i)
		writeFile(t, path, strings.Replace(string(content), branchesBefore, branches, 1))
		time.Sleep(testDebounce / 10)
	}
	editFile(t, path, `"burst-19"`, `"develop"`)
	te.waitRevision(t, revisionOf(t, dir))
	te.decides(t, tollgate.Accepted)
	// Give a late reload the chance to show up before counting.
	time.Sleep(2 * debounce)
	s := te.Status()
	if s.Failures != 0 || s.Reloads > 3 {
		t.Fatalf("21 writes %v apart gave %d reloads and %d failures, want 1 to 3 reloads", testDebounce/10, s.Reloads, s.Failures)
	}
	t.Logf("21 writes, %d reloads", s.Reloads)
}

func TestWatchTwice(t *testing.T) {
	t.Parallel()
	dir := bundleCopy(t)
	removeTests(t, dir)
	te := newTestEngine(t, dir, -1)
	te.watch(t)
	if err := te.Watch(context.Background()); err == nil {
		t.Fatal("a second Watch was accepted")
	}
}

// TestReloadUnderLoad swaps two bundles back and forth while goroutines
// evaluate without pause: every decision must be the one its own snapshot
// gives, never a policy_error nor a mix of both. The bundle's tests are left
// out: they are what makes a candidate slow to build (other tests cover
// them), not what the swap is about.
func TestReloadUnderLoad(t *testing.T) {
	dir := bundleCopy(t)
	removeTests(t, dir)
	path := filepath.Join(dir, projectsJSON)
	te := newTestEngine(t, dir, -1)
	before := te.Policy().Revision()
	editFile(t, path, branchesBefore, branchesAfter)
	after := revisionOf(t, dir)
	editFile(t, path, branchesAfter, branchesBefore)

	swaps := 20
	if testing.Short() {
		swaps = 6
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var seen [2]atomic.Int64 // decisions from before, after
	var bad atomic.Int64
	errs := make(chan string, 10)
	report := func(format string, args ...any) {
		if bad.Add(1) <= 10 {
			errs <- fmt.Sprintf(format, args...)
		}
	}
	c := mondayContext(t)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				// The evaluation budget is wall-clock time, and here
				// evaluations run under -race beside candidate builds on
				// a loaded machine: one can take over a second. This test
				// is about atomic swaps, not the budget (budget_test.go).
				p := te.Policy().WithEvalTimeout(time.Minute)
				d := p.Evaluate(context.Background(), developRequest(), c)
				switch {
				case d.BundleRevision != p.Revision():
					report("decision from %s by policy %s", d.BundleRevision, p.Revision())
				case d.BundleRevision == before && d.Status == tollgate.Refused && len(d.Reasons) == 1 &&
					d.Reasons[0].Code == tollgate.CodeBranchNotAllowed && d.Project == "service-api":
					seen[0].Add(1)
				case d.BundleRevision == after && d.Status == tollgate.Accepted && len(d.Reasons) == 0 &&
					d.Warnings != nil && d.Project == "service-api":
					seen[1].Add(1)
				default:
					report("unexpected decision: %+v", d)
				}
			}
		})
	}
	wg.Go(func() { // and the status endpoint, concurrently
		for ctx.Err() == nil {
			if s := te.Status(); s.Revision != before && s.Revision != after {
				report("status revision %s", s.Revision)
			}
		}
	})

	start := time.Now()
	var reloading time.Duration
	for i := range swaps {
		old, new := branchesBefore, branchesAfter
		if i%2 == 1 {
			old, new = new, old
		}
		editFile(t, path, old, new)
		rs := time.Now()
		if err := te.Reload(context.Background()); err != nil {
			t.Errorf("swap %d: %v", i, err)
		}
		reloading += time.Since(rs)
		// Let the evaluators run on this bundle for a while.
		n := seen[0].Load() + seen[1].Load()
		waitFor(t, "evaluations", func() bool { return seen[0].Load()+seen[1].Load() > n+20 })
	}
	perSwap := time.Since(start) / time.Duration(swaps)
	stop()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if s := te.Status(); s.Reloads != uint64(swaps) || s.Failures != 0 {
		t.Errorf("after %d swaps: %+v", swaps, s)
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 {
		t.Errorf("decisions seen: %d before, %d after: want both", seen[0].Load(), seen[1].Load())
	}
	t.Logf("%d swaps, %v apart, Reload took %v on average; %d + %d decisions, %d bad", swaps, perSwap.Round(time.Millisecond),
		(reloading / time.Duration(swaps)).Round(time.Millisecond), seen[0].Load(), seen[1].Load(), bad.Load())
}

// BenchmarkReload measures a reload of the shipped bundle: load, compile,
// its tests in strict mode, and the swap.
func BenchmarkReload(b *testing.B) {
	dir := bundleCopy(b)
	te := newTestEngine(b, dir, -1)
	path := filepath.Join(dir, projectsJSON)
	old, new := branchesBefore, branchesAfter
	for b.Loop() {
		b.StopTimer()
		editFile(b, path, old, new)
		old, new = new, old
		b.StartTimer()
		if err := te.Reload(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
