// Package test holds tollgate's black-box end-to-end tests: they build the
// real binary, make real licences with it, start `tollgate serve` as a child
// process on a free port with its own data directory and its own copy of the
// default bundle, and talk to it over HTTP and through `tollgate check`.
//
// This file is the harness; e2e_test.go holds the tests.
package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "time/tzdata" // Europe/Paris, whatever the machine has installed
)

// Deadlines of the harness. Generous: they bound waits, they do not pace them.
const (
	startTimeout = 20 * time.Second // until "tollgate serving" and /readyz 200
	stopTimeout  = 20 * time.Second // from SIGTERM to exit
	pollInterval = 10 * time.Millisecond
)

// Set up once by TestMain.
var (
	binPath        string // the tollgate binary built from the repository
	repoRoot       string // absolute path of the repository
	publicKey      string // license-public.pem of the vendor key
	validLicence   string // signed by the vendor key, valid for a year from now
	expiredLicence string // signed by the vendor key, expired yesterday
	foreignLicence string // valid dates, but signed by another key
	missingLicence string // a path where no file exists
	paris          *time.Location
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "tollgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		return 2
	}
	defer os.RemoveAll(tmp)
	if err := setup(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		return 2
	}
	return m.Run()
}

func setup(tmp string) error {
	var err error
	if paris, err = time.LoadLocation("Europe/Paris"); err != nil {
		return err
	}
	if repoRoot, err = filepath.Abs(".."); err != nil {
		return err
	}
	binPath = filepath.Join(tmp, "tollgate")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/tollgate")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/tollgate: %v\n%s", err, out)
	}

	vendor, other := filepath.Join(tmp, "vendor-key"), filepath.Join(tmp, "other-key")
	for _, dir := range []string{vendor, other} {
		if _, err := tollgateOutput("license", "keygen", "--bits", "2048", "--out", dir); err != nil {
			return err
		}
	}
	publicKey = filepath.Join(vendor, "license-public.pem")
	now := time.Now().UTC()
	licences := []struct {
		path *string
		name string
		args []string
	}{
		{&validLicence, "valid.jwt", []string{"--key", filepath.Join(vendor, "license-private.pem"), "--valid-for", "8760h"}},
		{&expiredLicence, "expired.jwt", []string{"--key", filepath.Join(vendor, "license-private.pem"),
			"--issued-at", now.Add(-30 * 24 * time.Hour).Format(time.RFC3339),
			"--expires", now.Add(-24 * time.Hour).Format(time.RFC3339)}},
		{&foreignLicence, "foreign.jwt", []string{"--key", filepath.Join(other, "license-private.pem"), "--valid-for", "8760h"}},
	}
	for _, l := range licences {
		token, err := tollgateOutput(append([]string{"license", "issue", "--subject", "e2e"}, l.args...)...)
		if err != nil {
			return err
		}
		*l.path = filepath.Join(tmp, l.name)
		if err := os.WriteFile(*l.path, []byte(token), 0o600); err != nil {
			return err
		}
	}
	missingLicence = filepath.Join(tmp, "no-such-licence.jwt")
	return nil
}

// tollgateOutput runs the binary and returns its stdout; an exit other than
// 0 is an error carrying stderr.
func tollgateOutput(args ...string) (string, error) {
	cmd := exec.Command(binPath, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("tollgate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// cleanEnv is the test's environment without TOLLGATE_* variables, which
// every flag of the binary would read.
func cleanEnv(extra ...string) []string {
	// Nor the variables that tell check it runs in a CI system, nor the
	// locale, which chooses the language of check's and eval's messages.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "TOLLGATE_") || strings.HasPrefix(kv, "GITHUB_ACTIONS=") || strings.HasPrefix(kv, "GITLAB_CI=") ||
			strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LC_ALL=") || strings.HasPrefix(kv, "LC_MESSAGES=")
	})
	return append(env, extra...)
}

// --- the bundle copy ----------------------------------------------------------

// Environments of the test policy. The global policy is written relative to
// the real clock, because /v1/evaluate always uses it:
//   - envFrozen: a freeze covers now ± 1 h;
//   - envRestricted: the only time window is a whole day three days from now,
//     so now is outside it whatever the hour;
//   - envProduction, envStaging, envFrozen: a window covers every hour of
//     every day, so no time-window refusal whatever the hour;
//   - envDev: no freeze, no window: nothing global applies.
//
// Weekends are allowed: a real Saturday must not break the other tests.
// (The time zone stays Europe/Paris: the bundle's own config_test.rego pins
// the shipped value, and a bundle whose tests fail is never loaded.)
const (
	envProduction = "production"
	envStaging    = "staging"
	envFrozen     = "frozen"
	envRestricted = "restricted"
	envDev        = "dev"
)

var allDays = []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}

// globalPolicy is the test bundle's global policy, relative to now.
func globalPolicy(now time.Time) map[string]any {
	local := now.In(paris)
	in3days := time.Date(local.Year(), local.Month(), local.Day()+3, 12, 0, 0, 0, paris)
	return map[string]any{
		"timezone":           "Europe/Paris",
		"unmanaged_projects": "refuse",
		"freezes": []any{map[string]any{
			"id":           "e2e-freeze",
			"start":        now.Add(-time.Hour).UTC().Format(time.RFC3339),
			"end":          now.Add(time.Hour).UTC().Format(time.RFC3339),
			"environments": []string{envFrozen},
			"reason":       "End-to-end test freeze",
		}},
		"time_windows": []any{
			map[string]any{"days": allDays, "start": "00:00", "end": "24:00",
				"environments": []string{envProduction, envStaging, envFrozen}},
			map[string]any{"days": []string{strings.ToLower(in3days.Weekday().String())}, "start": "00:00", "end": "24:00",
				"environments": []string{envRestricted}},
		},
		"weekends": map[string]any{"allowed": true, "environments": []string{envProduction}},
	}
}

// e2eProject is added to the shipped projects: a project without
// environments or branch restrictions, for the global rules and for load.
var e2eProject = map[string]any{
	"repositories": []string{"org/e2e"},
	"pipelines": map[string]any{
		"deploy":      map[string]any{"type": "deploy"},
		"deploy-cool": map[string]any{"type": "deploy", "cooldown_minutes": 30},
	},
}

// newBundle copies bundles/tollgate into a temporary directory and writes
// the test policy into the copy, as an operator edits the configuration: the
// bundle's own tests (which the server runs before it loads a bundle) do not
// depend on the shipped values. Tests edit the copy.
func newBundle(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(repoRoot, "bundles", "tollgate"))); err != nil {
		t.Fatalf("copy the bundle: %v", err)
	}
	writeJSON(t, filepath.Join(dir, "config", "global_policy", "data.json"), globalPolicy(time.Now()))
	projects := readProjects(t, dir)
	projects["e2e"] = e2eProject
	writeJSON(t, projectsPath(dir), projects)
	return dir
}

func projectsPath(bundle string) string {
	return filepath.Join(bundle, "config", "projects", "data.json")
}

func readProjects(t *testing.T, bundle string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(projectsPath(bundle))
	if err != nil {
		t.Fatal(err)
	}
	var projects map[string]any
	if err := json.Unmarshal(data, &projects); err != nil {
		t.Fatalf("%s: %v", projectsPath(bundle), err)
	}
	return projects
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	saveFile(t, path, append(data, '\n'))
}

// saveFile replaces path the way editors save: write a temporary file
// beside it (a dot-file, which the bundle ignores), then rename it over path.
func saveFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		t.Fatal(err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// --- the server process -------------------------------------------------------

// serverOptions configure startServer. Zero values: the valid licence, a
// fresh bundle copy and data directory, default flags.
type serverOptions struct {
	licence string   // path; "" means validLicence
	bundle  string   // "" means a fresh newBundle
	dataDir string   // "" means a fresh t.TempDir()
	args    []string // extra flags, such as --body-limit
	viaEnv  bool     // pass licence, key, bundle and data dir as TOLLGATE_* variables
	noWait  bool     // return once it serves, without waiting for /readyz (a store still connecting)
	// auth starts the server with authentication: the harness creates a
	// token with every scope in the data directory first, and sends it with
	// every request. Without auth the server runs with --dev.
	auth bool
	// token, with auth, is the token to send instead of a new one: that of
	// the previous server on the same store, when a test restarts it.
	token string
	// tls serves HTTPS with a certificate made for 127.0.0.1; the client
	// trusts it.
	tls bool
}

// server is one `tollgate serve` child process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT
	bundle  string
	dataDir string
	stderr  *syncBuffer
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
	client  *http.Client
	token   string // sent as Authorization: Bearer by the helpers, if set
}

// syncBuffer is the server's stderr: written by exec's copying goroutine,
// read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingAddr = regexp.MustCompile(`msg="tollgate serving" addr=(\S+)`)

// startServer starts `tollgate serve --addr 127.0.0.1:0`, reads the port
// from its log and waits for /readyz. The process is stopped (SIGTERM,
// then SIGKILL) when the test ends; its log is printed if the test failed.
func startServer(t *testing.T, opts serverOptions) *server {
	t.Helper()
	if opts.licence == "" {
		opts.licence = validLicence
	}
	if opts.bundle == "" {
		opts.bundle = newBundle(t)
	}
	if opts.dataDir == "" {
		opts.dataDir = t.TempDir()
	}
	args := []string{"serve", "--addr", "127.0.0.1:0"}
	var token string
	switch {
	case opts.auth && opts.token != "":
		token = opts.token
	case opts.auth:
		token = createToken(t, opts.dataDir, "e2e", "evaluate,simulate,read,approve,admin", databaseFlag(opts.args)...)
	default:
		args = append(args, "--dev")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	scheme := "http"
	if opts.tls {
		cert, key, pool := selfSignedCert(t)
		args = append(args, "--tls-cert", cert, "--tls-key", key)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		scheme = "https"
	}
	env := cleanEnv()
	settings := [][2]string{
		{"license", opts.licence}, {"license-key", publicKey},
		{"bundle", opts.bundle}, {"data-dir", opts.dataDir},
	}
	for _, s := range settings {
		if opts.viaEnv {
			env = append(env, "TOLLGATE_"+strings.ToUpper(strings.ReplaceAll(s[0], "-", "_"))+"="+s[1])
		} else {
			args = append(args, "--"+s[0], s[1])
		}
	}
	args = append(args, opts.args...)
	// Every exchange of the helpers is held to the OpenAPI document.
	client.Transport = apiValidator(t).Transport(t, client.Transport)

	s := &server{
		t: t, bundle: opts.bundle, dataDir: opts.dataDir,
		stderr: &syncBuffer{}, done: make(chan struct{}),
		client: client, token: token,
	}
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Env = env
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start tollgate serve: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if s.running() {
			s.stop(t) // asserts a clean exit, and kills on timeout
		}
		s.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("tollgate serve %s: stderr:\n%s", strings.Join(args[1:], " "), s.stderr.String())
		}
	})

	deadline := time.Now().Add(startTimeout)
	for {
		if m := servingAddr.FindStringSubmatch(s.stderr.String()); m != nil {
			s.base = scheme + "://" + m[1]
			break
		}
		if !s.running() {
			t.Fatalf("tollgate serve exited before serving: %v", s.waitErr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("tollgate serve did not log its address within %v", startTimeout)
		}
		time.Sleep(pollInterval)
	}
	if !opts.noWait {
		s.waitReady(t, deadline)
	}
	return s
}

func (s *server) waitReady(t *testing.T, deadline time.Time) {
	t.Helper()
	for {
		resp, err := s.client.Get(s.base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !s.running() {
			t.Fatalf("tollgate serve exited before ready: %v", s.waitErr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz not 200 within %v (last error %v)", startTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

func (s *server) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// signalStop sends SIGTERM without waiting.
func (s *server) signalStop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("send SIGTERM: %v", err)
	}
}

// waitExit waits for the process to exit after SIGTERM and asserts a clean
// exit: code 0, no panic, the "tollgate stopped" log line. It kills the
// process if it does not exit in time.
func (s *server) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("tollgate serve did not exit within %v of SIGTERM; killed", stopTimeout)
		return
	}
	if s.waitErr != nil {
		t.Errorf("tollgate serve exited with %v after SIGTERM, want exit code 0", s.waitErr)
	}
	log := s.stderr.String()
	for _, bad := range []string{"panic:", "goroutine ", "DATA RACE", `msg="tollgate serve stopped"`} {
		if strings.Contains(log, bad) {
			t.Errorf("tollgate serve's log contains %q", bad)
		}
	}
	if !strings.Contains(log, `msg="tollgate stopped"`) {
		t.Errorf(`tollgate serve's log lacks msg="tollgate stopped"`)
	}
}

// stop sends SIGTERM and asserts a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.signalStop(t)
	s.waitExit(t)
}

// --- HTTP ----------------------------------------------------------------------

// do sends a request and returns the status and body; a transport error
// fails the test.
func (s *server) do(t *testing.T, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	status, raw, err := s.try(method, path, contentType, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, raw
}

func (s *server) try(method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, s.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (s *server) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	return s.do(t, http.MethodGet, path, "", nil)
}

func (s *server) postJSON(t *testing.T, path string, v any) (int, []byte) {
	t.Helper()
	return s.do(t, http.MethodPost, path, "application/json", mustJSON(t, v))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func decode[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, raw, err)
	}
	return v
}

// --- API shapes -----------------------------------------------------------------

type reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type decision struct {
	ID             string    `json:"decision_id"`
	Status         string    `json:"status"`
	Reasons        []reason  `json:"reasons"`
	Warnings       []reason  `json:"warnings"`
	Project        string    `json:"project"`
	Pipeline       string    `json:"pipeline"`
	Branch         string    `json:"branch"`
	Environment    string    `json:"environment"`
	BundleRevision string    `json:"bundle_revision"`
	EvaluatedAt    time.Time `json:"evaluated_at"`
	Simulated      bool      `json:"simulated"`
}

func (d decision) codes() []string {
	codes := []string{}
	for _, r := range d.Reasons {
		codes = append(codes, r.Code)
	}
	return codes
}

func (d decision) warningCodes() []string {
	codes := []string{}
	for _, r := range d.Warnings {
		codes = append(codes, r.Code)
	}
	return codes
}

// record is a history item: the decision with its request and context.
type record struct {
	decision
	Identity string  `json:"identity"`
	Request  request `json:"request"`
	Context  struct {
		Now     time.Time `json:"now"`
		Licence struct {
			Status  string `json:"status"`
			Subject string `json:"subject"`
			Detail  string `json:"detail"`
		} `json:"licence"`
		Cooldown struct {
			LastAcceptedAt *time.Time `json:"last_accepted_at"`
		} `json:"cooldown"`
	} `json:"context"`
}

type history struct {
	Decisions  []record `json:"decisions"`
	NextCursor string   `json:"next_cursor"`
}

type bundleStatus struct {
	Revision    string    `json:"revision"`
	ActivatedAt time.Time `json:"activated_at"`
	LastError   string    `json:"last_error"`
	Reloads     uint64    `json:"reloads"`
	Failures    uint64    `json:"failures"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type metadata struct {
	Initiator   string `json:"initiator,omitempty"`
	RunID       string `json:"run_id,omitempty"`
	Environment string `json:"environment"`
}

type request struct {
	Repository string   `json:"repository"`
	Branch     string   `json:"branch"`
	Pipeline   string   `json:"pipeline"`
	Metadata   metadata `json:"metadata"`
}

func req(repository, branch, pipeline, environment string) request {
	return request{Repository: repository, Branch: branch, Pipeline: pipeline,
		Metadata: metadata{Initiator: "github-actions", RunID: "42", Environment: environment}}
}

// evaluate posts r to /v1/evaluate, requires a 200 and a complete decision.
func (s *server) evaluate(t *testing.T, r request) decision {
	t.Helper()
	status, raw := s.postJSON(t, "/v1/evaluate", r)
	if status != http.StatusOK {
		t.Fatalf("POST /v1/evaluate %+v: %d %s, want 200", r, status, raw)
	}
	requireDecisionShape(t, raw, false)
	return decode[decision](t, raw)
}

// requireDecisionShape checks that every field of the contract is present
// (reasons and warnings as arrays, never null).
func requireDecisionShape(t *testing.T, raw []byte, simulated bool) {
	t.Helper()
	fields := decode[map[string]json.RawMessage](t, raw)
	want := []string{"status", "reasons", "warnings", "project", "pipeline", "branch", "environment", "bundle_revision", "evaluated_at"}
	if !simulated {
		want = append(want, "decision_id")
	}
	for _, name := range want {
		if _, ok := fields[name]; !ok {
			t.Errorf("decision lacks %q: %s", name, raw)
		}
	}
	for _, name := range []string{"reasons", "warnings"} {
		if v := fields[name]; len(v) == 0 || v[0] != '[' {
			t.Errorf("decision %q is %s, want an array", name, v)
		}
	}
	if got := string(fields["simulated"]); simulated && got != "true" {
		t.Errorf("simulated is %q, want true: %s", got, raw)
	}
	if _, ok := fields["simulated"]; !simulated && ok {
		t.Errorf("evaluated decision has a simulated field: %s", raw)
	}
}

// requireError checks an error answer: its status and {"error":{"code","message"}}.
func requireError(t *testing.T, status int, raw []byte, wantStatus int, wantCode, wantInMessage string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status %d, want %d: %s", status, wantStatus, raw)
	}
	var body errorBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Errorf("error body %s is not {\"error\":{\"code\",\"message\"}}: %v", raw, err)
		return
	}
	if body.Error.Code != wantCode {
		t.Errorf("error code %q, want %q: %s", body.Error.Code, wantCode, raw)
	}
	if body.Error.Message == "" || !strings.Contains(body.Error.Message, wantInMessage) {
		t.Errorf("error message %q, want it to contain %q", body.Error.Message, wantInMessage)
	}
}

func (s *server) bundleStatus(t *testing.T) bundleStatus {
	t.Helper()
	status, raw := s.get(t, "/v1/bundles")
	if status != http.StatusOK {
		t.Fatalf("GET /v1/bundles: %d %s", status, raw)
	}
	return decode[bundleStatus](t, raw)
}

func (s *server) decisionByID(t *testing.T, id string) record {
	t.Helper()
	status, raw := s.get(t, "/v1/decisions/"+id)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/decisions/%s: %d %s", id, status, raw)
	}
	return decode[record](t, raw)
}

// allDecisions pages through the whole history.
func (s *server) allDecisions(t *testing.T, query string) []record {
	t.Helper()
	var all []record
	cursor := ""
	for range 10000 {
		path := "/v1/decisions?limit=500"
		if query != "" {
			path += "&" + query
		}
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		status, raw := s.get(t, path)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, raw)
		}
		page := decode[history](t, raw)
		if page.Decisions == nil {
			t.Fatalf("GET %s: decisions is not an array: %s", path, raw)
		}
		all = append(all, page.Decisions...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
	t.Fatal("GET /v1/decisions: the cursor never ends")
	return nil
}

// metrics returns the samples of /metrics, keyed by name{labels} as printed.
func (s *server) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	status, raw := s.get(t, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, raw)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("GET /metrics: bad sample %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(pollInterval)
	}
	return time.Since(start)
}

// freePort returns a port on 127.0.0.1 where nothing listens.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// runTollgate runs the binary to completion and returns its exit code and output.
func runTollgate(t *testing.T, env []string, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("run tollgate %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errOut.String()
}

// databaseFlag is the --database-url flag among a server's args, if any:
// the store its tokens must be created in.
func databaseFlag(args []string) []string {
	if i := slices.Index(args, "--database-url"); i >= 0 && i+1 < len(args) {
		return args[i : i+2]
	}
	return nil
}

// createToken runs `tollgate token create` on the embedded store in dataDir
// (or the store extra names) and returns the token it prints.
func createToken(t *testing.T, dataDir, name, scopes string, extra ...string) string {
	t.Helper()
	code, stdout, stderr := runTollgate(t, nil, nil,
		append([]string{"token", "create", "--name", name, "--scopes", scopes, "--data-dir", dataDir}, extra...)...)
	if code != 0 {
		t.Fatalf("tollgate token create --name %s: exit %d\n%s", name, code, stderr)
	}
	token := strings.TrimSpace(stdout)
	if !regexp.MustCompile(`^tg_[0-9a-f]{16}_[0-9a-f]{64}$`).MatchString(token) {
		t.Fatalf("tollgate token create printed %q, want the token alone", stdout)
	}
	return token
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into a
// temporary directory, and returns their paths and a pool that trusts it.
func selfSignedCert(t *testing.T) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tollgate e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// readFile reads a file of the bundle copy.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return data
}
