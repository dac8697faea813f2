package rego

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tollgate/tollgate"
)

// Defaults of EngineOptions.
const (
	// DefaultDebounce is how long the directory must stay quiet before a
	// reload. cerbos waits 2 s (defaultCooldownPeriod in its dirwatch); we
	// wait 1 s so that a saved change serves within 2 s (a candidate builds
	// and passes its tests in about 100 ms).
	DefaultDebounce = time.Second
	// DefaultPoll is how often Watch rescans the directory, to catch what
	// the events missed (a directory that came back, an inotify overflow).
	DefaultPoll = 30 * time.Second
)

// EngineOptions configure an Engine. The zero value is usable.
type EngineOptions struct {
	// Debounce is how long Watch waits after the last change of a burst
	// before it reloads. Zero means DefaultDebounce.
	Debounce time.Duration
	// Poll is how often Watch rescans the directory and reloads if anything
	// changed that no event reported. Zero means DefaultPoll; negative
	// disables the rescan.
	Poll time.Duration
	// Logger receives the reload log. Nil means slog.Default().
	Logger *slog.Logger
	// OnReload, when set, is called whenever the status changes: after a
	// candidate is activated (err nil), after one is rejected (err non-nil)
	// and when a reload finds the active bundle again after a failure (err
	// nil, the error is cleared). It is not called for the first load nor for
	// reloads that find nothing new. Calls are serialised; OnReload must not
	// call Reload. The server feeds its Prometheus metrics from it.
	OnReload func(BundleStatus, error)
	// Verification, when set, accepts only signed bundles: the first load
	// and every candidate must carry a .signatures.json that verifies with
	// its key and covers every file. Nil accepts unsigned bundles.
	Verification *Verification
	// EvalTimeout is the time budget of one policy evaluation (see
	// Policy.WithEvalTimeout). Zero means DefaultEvalTimeout.
	EvalTimeout time.Duration
	// MinCoverage, when above zero, rejects a bundle (the first load and
	// every candidate) whose tests cover less than this percentage of its
	// policy lines. Coverage costs a tracer on each test's evaluation.
	MinCoverage float64
	// History, when set, is replayed before a candidate is activated: the
	// newest recorded decisions (at most ReplayLimit, made within
	// ReplayWindow) are evaluated again under the candidate, each with its
	// own recorded request and context, and a candidate that turns any of
	// them into policy_error is rejected, naming them. The first load is
	// not replayed: there is no other bundle to keep serving.
	History tollgate.HistoryReader
	// ReplayLimit is how many recorded decisions a reload replays at most;
	// zero means DefaultReplayLimit, negative disables the replay.
	ReplayLimit int
	// ReplayWindow is how far back a reload replays; zero means
	// DefaultReplayWindow.
	ReplayWindow time.Duration
	// Check, when set, is asked of the first bundle and of every
	// candidate once it loaded and validated: an error rejects it, as a
	// bad configuration does. The server checks there what only it can:
	// that the secrets the notification sinks name are there.
	Check func(*Bundle) error
	// Now is the clock of the candidate checks (the probe decision, the
	// replay window). Nil means time.Now.
	Now func() time.Time
}

// BundleStatus is what GET /v1/bundles reports.
type BundleStatus struct {
	Dir           string    `json:"dir"`
	Revision      string    `json:"revision"` // of the active bundle
	ActivatedAt   time.Time `json:"activated_at"`
	LastAttemptAt time.Time `json:"last_attempt_at"`
	// LastError says why the last reload was rejected; empty when the last
	// attempt succeeded or found the active bundle unchanged.
	LastError string `json:"last_error"`
	Reloads   uint64 `json:"reloads"`  // bundles activated since the first
	Failures  uint64 `json:"failures"` // candidates rejected
}

// Engine serves the active bundle of a directory and replaces it, all at
// once, when the directory holds a new bundle that loads, compiles,
// validates and passes its own tests in strict mode. A rejected candidate
// changes nothing but the status: the last good bundle keeps serving.
type Engine struct {
	dir  string
	opts EngineOptions
	log  *slog.Logger

	// active is the only thing requests touch: one atomic load, no lock.
	active atomic.Pointer[snapshot]

	reloadMu    sync.Mutex // one reload at a time; guards fingerprint
	fingerprint string     // of the directory, taken before the last attempt

	mu          sync.Mutex // guards the status below and swaps of active
	lastAttempt time.Time
	lastErr     string
	reloads     uint64
	failures    uint64

	watching atomic.Bool
}

// snapshot is immutable: a reload builds a new one.
type snapshot struct {
	policy      *Policy
	activatedAt time.Time
}

// TestsFailedError rejects a candidate bundle whose own tests fail or error.
type TestsFailedError struct {
	Dir    string
	Report *TestReport
}

func (e *TestsFailedError) Error() string {
	var failed []string
	for _, r := range e.Report.Results {
		if r.Outcome != TestFail && r.Outcome != TestError {
			continue
		}
		if len(failed) == 5 {
			failed = append(failed, fmt.Sprintf("and %d more", e.Report.Failed+e.Report.Errored-5))
			break
		}
		failed = append(failed, fmt.Sprintf("%s (%s:%d) %s: %s", r.FullName(), r.File, r.Row, r.Outcome, r.Message))
	}
	return fmt.Sprintf("test bundle %s: %d of %d tests did not pass (strict mode, builtin errors fail): %s",
		e.Dir, e.Report.Failed+e.Report.Errored, e.Report.Total(), strings.Join(failed, "; "))
}

// NewEngine loads the bundle in dir. The first load must succeed, tests
// included: a server must not start without a valid bundle.
func NewEngine(ctx context.Context, dir string, opts EngineOptions) (*Engine, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Poll == 0 {
		opts.Poll = DefaultPoll
	}
	if opts.ReplayLimit == 0 {
		opts.ReplayLimit = DefaultReplayLimit
	}
	if opts.ReplayWindow <= 0 {
		opts.ReplayWindow = DefaultReplayWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{dir: dir, opts: opts, log: opts.Logger}
	if e.log == nil {
		e.log = slog.Default()
	}
	start := time.Now()
	e.fingerprint = fingerprint(dir)
	b, p, report, err := e.build(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("no valid bundle to serve: %w", err)
	}
	now := time.Now()
	e.active.Store(&snapshot{policy: p, activatedAt: now})
	e.lastAttempt = now
	e.log.Info("bundle loaded", "dir", dir, "revision", b.Revision,
		"tests", report.Total(), "took", time.Since(start).Round(time.Millisecond))
	return e, nil
}

// Policy returns the active policy. Load it once per request and use that
// one to the end: a reload never changes a Policy, it replaces it.
func (e *Engine) Policy() *Policy { return e.active.Load().policy }

// Status reports the active bundle and the outcome of the last reload.
func (e *Engine) Status() BundleStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statusLocked()
}

func (e *Engine) statusLocked() BundleStatus {
	s := e.active.Load()
	return BundleStatus{
		Dir:           e.dir,
		Revision:      s.policy.Revision(),
		ActivatedAt:   s.activatedAt,
		LastAttemptAt: e.lastAttempt,
		LastError:     e.lastErr,
		Reloads:       e.reloads,
		Failures:      e.failures,
	}
}

// candidateTestTimeout bounds the run of a candidate's tests, paced (see
// build): twice the time they take. The shipped bundle's take about 70 ms.
const candidateTestTimeout = 2 * time.Minute

// errUnchanged is build's answer when the directory holds the active bundle.
var errUnchanged = errors.New("bundle unchanged")

// Reload builds a candidate from the directory as it is now and, if it
// passes, makes it the active bundle. A rejected candidate leaves the active
// bundle serving and its error in Status; a candidate with the active
// revision changes nothing. Reloads run one at a time. If ctx ends during
// the build, the attempt is abandoned and not recorded.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.reload(ctx)
}

// reloadIfChanged reloads if the directory changed since the last attempt.
// The watcher's rescan uses it, so that a broken bundle left in place is
// not rebuilt (and logged) every Poll.
func (e *Engine) reloadIfChanged(ctx context.Context) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if fingerprint(e.dir) != e.fingerprint {
		_ = e.reload(ctx) // logged and recorded
	}
}

func (e *Engine) reload(ctx context.Context) error {
	start := time.Now()
	e.fingerprint = fingerprint(e.dir)
	previous := e.active.Load().policy.Revision()
	b, p, report, err := e.build(ctx, previous)
	if err != nil && !errors.Is(err, errUnchanged) && ctx.Err() != nil {
		e.fingerprint = "" // not attempted: the next rescan must retry
		return fmt.Errorf("reload bundle %s: abandoned: %w", e.dir, err)
	}
	if RejectReason(err) == RejectHistory {
		e.fingerprint = "" // the replay did not run: the next rescan retries it
	}
	took := time.Since(start).Round(time.Millisecond)
	now := time.Now()

	e.mu.Lock()
	e.lastAttempt = now
	hadError := e.lastErr != ""
	switch {
	case errors.Is(err, errUnchanged):
		e.lastErr = ""
	case err != nil:
		e.lastErr = err.Error()
		e.failures++
	default:
		e.active.Store(&snapshot{policy: p, activatedAt: now})
		e.lastErr = ""
		e.reloads++
	}
	status := e.statusLocked()
	e.mu.Unlock()

	switch {
	case errors.Is(err, errUnchanged):
		if !hadError {
			e.log.Debug("bundle unchanged", "dir", e.dir, "revision", previous)
			return nil
		}
		e.log.Info("bundle directory holds the active bundle again, error cleared", "dir", e.dir, "revision", previous)
		err = nil
	case err != nil:
		attrs := []any{"dir", e.dir, "error", logLine(err), "active_revision", previous, "took", took}
		if b != nil {
			attrs = append(attrs, "candidate_revision", b.Revision)
		}
		e.log.Error("bundle reload failed, keeping the active bundle", attrs...)
	default:
		e.log.Info("bundle reloaded", "dir", e.dir, "revision", b.Revision, "previous", previous,
			"tests", report.Total(), "took", took)
	}
	if e.opts.OnReload != nil {
		e.opts.OnReload(status, err)
	}
	return err
}

// build makes a candidate: load and validate, compile, check that it
// decides (checkDecision), then the bundle's own tests in strict mode, and
// on a reload the replay of the recorded decisions (checkRecorded) and the
// probes of the registered projects (checkProjects). A
// bundle none of whose tests pass is rejected (`tollgate test` refuses it
// too; stock `opa test` does not), as is any failing or erroring test. b is
// returned whenever it loaded, for its revision. When the directory holds
// the active revision, build stops early with errUnchanged.
func (e *Engine) build(ctx context.Context, active string) (b *Bundle, p *Policy, report *TestReport, err error) {
	dir := e.dir
	// Load from the symlink's target, resolved once, so that a swap during
	// the load cannot mix two versions of the bundle.
	if info, err := os.Lstat(dir); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		if resolved, err := filepath.EvalSymlinks(dir); err == nil {
			dir = resolved
		}
	}
	// A reload runs beside the requests: each step is followed by a pause
	// as long as the step, so that it takes about half a CPU from them, not
	// a whole one (see RunTests's Pace). The first build does not wait.
	pace := func(step func()) { step() }
	if active != "" {
		pace = func(step func()) {
			start := time.Now()
			step()
			pause(ctx, time.Since(start))
		}
	}
	pace(func() { b, err = loadBundle(dir, e.opts.Verification) })
	if err != nil {
		return nil, nil, nil, err
	}
	if b.Revision == active {
		return b, nil, nil, errUnchanged
	}
	if e.opts.Check != nil {
		if err := e.opts.Check(b); err != nil {
			return b, nil, nil, err
		}
	}
	pace(func() { p, err = Compile(ctx, b) })
	if err != nil {
		return b, nil, nil, err
	}
	p = p.WithEvalTimeout(e.opts.EvalTimeout)
	pace(func() { err = checkDecision(ctx, p, e.opts.Now()) })
	if err != nil {
		return b, nil, nil, err
	}
	// A test that never ends must not stop reloads for good.
	tctx, cancel := context.WithTimeout(ctx, candidateTestTimeout)
	defer cancel()
	// One test at a time, paced: a reload under load then takes at most
	// half a CPU from the requests while its tests run, rather than every
	// CPU at once, which stalls them all (p99 under a reload every second:
	// ~2.6-3.5x the steady state unpaced, ~1.6x paced; test/bench/README.md).
	topts := TestOptions{Strict: true, Parallel: 1, Pace: active != "", Coverage: e.opts.MinCoverage > 0}
	if report, err = RunTests(tctx, b, topts); err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the bundle's tests did not finish within %v: %w", candidateTestTimeout, err)
		}
		return b, nil, nil, err
	}
	if report.Failed > 0 || report.Errored > 0 {
		return b, nil, report, &TestsFailedError{Dir: dir, Report: report}
	}
	if err := checkTests(dir, report, e.opts.MinCoverage); err != nil {
		return b, nil, report, err
	}
	if active != "" && e.opts.History != nil && e.opts.ReplayLimit > 0 {
		// Paced inside, evaluation by evaluation.
		if err := checkRecorded(ctx, e.opts.History, p, e.opts.Now(), e.opts.ReplayLimit, e.opts.ReplayWindow, true); err != nil {
			return b, nil, report, err
		}
	}
	if active != "" {
		if err := checkProjects(ctx, p, e.active.Load().policy, e.opts.Now(), pace); err != nil {
			return b, nil, report, err
		}
	}
	return b, p, report, nil
}

// Watch reloads the bundle when its directory changes, until ctx is done
// (it then returns nil). It watches the directory, every subdirectory
// (fsnotify is not recursive) and the parent, so that it sees the
// directory replaced: deleted and recreated, or a symlink swapped the
// Kubernetes way. Events are debounced: the reload runs once the directory
// has been quiet for Debounce. Every Poll it also rescans the tree and
// reloads if anything changed, which catches missed events and a directory
// that comes back after it disappeared. Call it once.
func (e *Engine) Watch(ctx context.Context) error {
	if !e.watching.CompareAndSwap(false, true) {
		return fmt.Errorf("watch bundle %s: already watching", e.dir)
	}
	defer e.watching.Store(false)
	abs, err := filepath.Abs(e.dir)
	if err != nil {
		return fmt.Errorf("watch bundle %s: %w", e.dir, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch bundle %s: %w (raise fs.inotify.max_user_instances?)", e.dir, err)
	}
	defer fw.Close()
	w := &dirWatch{fs: fw, log: e.log, dir: abs, parent: filepath.Dir(abs), base: filepath.Base(abs)}
	w.sync()
	e.log.Info("watching bundle directory", "dir", e.dir, "debounce", e.opts.Debounce, "poll", e.opts.Poll)
	// Catch up with changes made since the last load.
	e.reloadIfChanged(ctx)

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var poll <-chan time.Time
	if e.opts.Poll > 0 {
		t := time.NewTicker(e.opts.Poll)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return fmt.Errorf("watch bundle %s: watcher closed", e.dir)
			}
			if w.relevant(ev) {
				debounce.Reset(e.opts.Debounce)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return fmt.Errorf("watch bundle %s: watcher closed", e.dir)
			}
			// An overflow loses events: rescan and reload to be sure.
			e.log.Warn("bundle watcher error, rescanning", "dir", e.dir, "error", err)
			w.sync()
			debounce.Reset(e.opts.Debounce)
		case <-debounce.C:
			w.sync()
			_ = e.Reload(ctx) // logged and recorded
		case <-poll:
			w.sync()
			e.reloadIfChanged(ctx)
		}
	}
}

// dirWatch keeps fsnotify watching the bundle tree. It belongs to the
// Watch goroutine.
type dirWatch struct {
	fs     *fsnotify.Watcher
	log    *slog.Logger
	dir    string // absolute, as configured: may be a symlink
	parent string // filepath.Dir(dir)
	base   string // filepath.Base(dir)

	problem string // the last sync problem logged, to log each once
}

// relevant reports whether an event may change the bundle, and follows
// the tree: new subdirectories are watched at once, and a change of the
// directory's own entry in its parent (a symlink swap, a directory
// recreated) re-resolves it.
func (w *dirWatch) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod { // permissions, or a link count: no content
		return false
	}
	name := filepath.Base(ev.Name)
	if filepath.Dir(ev.Name) == w.parent {
		// Only the directory's own entry matters here, and Kubernetes'
		// ..data symlink when the directory points through it.
		if name != w.base && !strings.HasPrefix(name, "..") {
			return false
		}
		w.sync()
		return true
	}
	if ignoredName(name) {
		return false
	}
	if ev.Has(fsnotify.Create) {
		if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
			w.sync()
		}
	}
	return true
}

// ignoredName is what editors write beside the files they save (.x.swp,
// .#x, x~) and LoadBundle skips. Kubernetes' ..data entries are kept: a
// ConfigMap update renames ..data_tmp to ..data inside the mount. So are
// the signature and OPA's manifest: a new signature is a new candidate.
func ignoredName(name string) bool {
	if signedDotFile(name) {
		return false
	}
	return strings.HasSuffix(name, "~") ||
		strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "..")
}

// signedDotFile is a dot-file that belongs to the bundle.
func signedDotFile(name string) bool { return name == SignaturesFile || name == manifestFile }

// sync watches the parent and every directory of the bundle tree as it is
// now, following the directory's symlink, and stops watching the rest (the
// old target of a swapped symlink). Directories that cannot be watched are
// logged and retried at the next sync; the rescan covers them meanwhile.
func (w *dirWatch) sync() {
	want := []string{w.parent}
	var problems []string
	target, err := filepath.EvalSymlinks(w.dir)
	if err == nil {
		var dirs []string
		dirs, _, err = scanTree(target)
		want = append(want, dirs...)
	}
	if err != nil {
		problems = append(problems, err.Error())
	}
	have := w.fs.WatchList()
	for _, p := range have {
		if !slices.Contains(want, p) {
			_ = w.fs.Remove(p) // gone already if it was deleted
		}
	}
	for _, p := range want {
		if !slices.Contains(have, p) {
			if err := w.fs.Add(p); err != nil {
				problems = append(problems, fmt.Sprintf("watch %s: %v", p, err))
			}
		}
	}
	problem := strings.Join(problems, "; ")
	switch {
	case problem == w.problem:
	case problem != "":
		w.log.Warn("cannot watch all of the bundle directory, keeping the active bundle and retrying",
			"dir", w.dir, "error", problem)
	default:
		w.log.Info("watching all of the bundle directory again", "dir", w.dir)
	}
	w.problem = problem
}

// fingerprint identifies the state of the bundle tree cheaply, from the
// target of its symlink and every entry's name, size and modification time,
// so that the periodic rescan only reloads when something changed.
func fingerprint(dir string) string {
	target, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "error: " + err.Error()
	}
	_, fp, err := scanTree(target)
	if err != nil {
		return "error: " + err.Error()
	}
	return target + "\x00" + fp
}

// maxDepth bounds scanTree against symlink cycles, which LoadBundle would
// reject anyway.
const maxDepth = 32

// scanTree walks the tree as LoadBundle does (following symlinks, skipping
// dot-entries below the root) and returns its directories and a hash of
// its entries. filepath.WalkDir does not follow symlinks, hence the walk.
func scanTree(root string) (dirs []string, fp string, err error) {
	h := sha256.New()
	var walk func(path, rel string, depth int) error
	walk = func(path, rel string, depth int) error {
		info, err := os.Stat(path)
		if err != nil {
			if depth > 0 && errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile, or a dangling symlink
			}
			return err
		}
		if !info.IsDir() {
			fmt.Fprintf(h, "%s\x00%v\x00%d\x00%d\n", rel, info.Mode(), info.Size(), info.ModTime().UnixNano())
			return nil
		}
		// Not a directory's size or time: they change with the dot-files
		// editors write, which the bundle ignores.
		fmt.Fprintf(h, "%s/\n", rel)
		if depth > maxDepth {
			return fmt.Errorf("%s: directories nested deeper than %d (a symlink cycle?)", path, maxDepth)
		}
		dirs = append(dirs, path)
		entries, err := os.ReadDir(path)
		if err != nil {
			if depth > 0 && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, entry := range entries {
			if strings.HasPrefix(entry.Name(), ".") && !signedDotFile(entry.Name()) {
				continue
			}
			if err := walk(filepath.Join(path, entry.Name()), rel+"/"+entry.Name(), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, ".", 0); err != nil {
		return nil, "", err
	}
	return dirs, hex.EncodeToString(h.Sum(nil)), nil
}
