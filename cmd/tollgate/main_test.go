package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests build the real binary once and run it as users and scripts
// do: real files, real exit codes, nothing in-process.

// fixtures are made once by TestMain, with the binary itself.
var fixtures struct {
	binary   string
	root     string // the repository: bundles/ and examples/ live here
	keys     string // directory of license-private.pem and license-public.pem
	public   string
	private  string
	licence  string // valid from 2026-01-01 to 2027-01-01
	expired  string // valid from 2025-01-01 to 2025-06-01
	example  string // examples/request.json
	bundle   string // bundles/tollgate
	tempRoot string
}

func TestMain(m *testing.M) {
	code, err := setUp(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "set up:", err)
		code = 2
	}
	os.RemoveAll(fixtures.tempRoot)
	os.Exit(code)
}

func setUp(m *testing.M) (int, error) {
	f := &fixtures
	var err error
	if f.tempRoot, err = os.MkdirTemp("", "tollgate-cli-test-"); err != nil {
		return 0, err
	}
	if f.root, err = filepath.Abs("../.."); err != nil {
		return 0, err
	}
	f.binary = filepath.Join(f.tempRoot, "tollgate")
	if out, err := exec.Command("go", "build", "-o", f.binary, ".").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %v\n%s", err, out)
	}
	f.keys = filepath.Join(f.tempRoot, "keys")
	f.public = filepath.Join(f.keys, "license-public.pem")
	f.private = filepath.Join(f.keys, "license-private.pem")
	f.licence = filepath.Join(f.tempRoot, "licence.jwt")
	f.expired = filepath.Join(f.tempRoot, "expired.jwt")
	f.example = filepath.Join(f.root, "examples", "request.json")
	f.bundle = filepath.Join(f.root, "bundles", "tollgate")

	steps := []struct {
		out  string
		args []string
	}{
		{"", []string{"license", "keygen", "--bits", "2048", "--out", f.keys}},
		{f.licence, []string{"license", "issue", "--key", f.private, "--subject", "acme",
			"--issued-at", "2026-01-01T00:00:00Z", "--expires", "2027-01-01T00:00:00Z"}},
		{f.expired, []string{"license", "issue", "--key", f.private, "--subject", "acme",
			"--issued-at", "2025-01-01T00:00:00Z", "--valid-for", "3624h"}},
	}
	for _, s := range steps {
		cmd := exec.Command(f.binary, s.args...)
		cmd.Env = cleanEnv()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("tollgate %s: %v\n%s", strings.Join(s.args, " "), err, stderr.String())
		}
		if s.out != "" {
			if err := os.WriteFile(s.out, stdout.Bytes(), 0o644); err != nil {
				return 0, err
			}
		}
	}
	return m.Run(), nil
}

// cleanEnv is the test process's environment without TOLLGATE_ variables,
// which would change what the binary does.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !ciVariable(kv) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// ciVariable says whether kv is a TOLLGATE_ variable, one that tells check
// it runs in a CI system, or the locale, which chooses the language of
// messages: tests that run in one must not see them.
func ciVariable(kv string) bool {
	return strings.HasPrefix(kv, "TOLLGATE_") || strings.HasPrefix(kv, "GITHUB_ACTIONS=") || strings.HasPrefix(kv, "GITLAB_CI=") ||
		strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LC_ALL=") || strings.HasPrefix(kv, "LC_MESSAGES=")
}

type result struct {
	code           int
	stdout, stderr string
}

// invocation describes one run of the binary; the zero value runs it in the
// repository root with no stdin and no TOLLGATE_ variables.
type invocation struct {
	dir   string
	stdin string
	env   []string
}

func (inv invocation) run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(fixtures.binary, args...)
	cmd.Dir = inv.dir
	if cmd.Dir == "" {
		cmd.Dir = fixtures.root
	}
	cmd.Env = cleanEnv(inv.env...)
	cmd.Stdin = strings.NewReader(inv.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run tollgate %s: %v", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func runTollgate(t *testing.T, args ...string) result {
	t.Helper()
	return invocation{}.run(t, args...)
}

func (r result) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func TestHelpListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := runTollgate(t, args...)
		r.wantCode(t, exitOK)
		for _, command := range []string{"eval", "test", "license", "replay", "impact", "verify-decision", "TOLLGATE_LICENSE_KEY"} {
			if !strings.Contains(r.stdout, command) {
				t.Errorf("%v: usage does not mention %s:\n%s", args, command, r.stdout)
			}
		}
	}
	r := runTollgate(t, "help", "eval")
	r.wantCode(t, exitOK)
	if !strings.Contains(r.stdout, "--license-key FILE") || !strings.Contains(r.stdout, "TOLLGATE_BUNDLE") {
		t.Errorf("help eval:\n%s", r.stdout)
	}
}

func TestNoOrUnknownCommandIsAUsageError(t *testing.T) {
	runTollgate(t).wantCode(t, exitError)
	runTollgate(t, "help", "").wantCode(t, exitError)
	r := runTollgate(t, "deploy")
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, `unknown command "deploy"`) {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = runTollgate(t, "eval", "--no-such-flag")
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "no-such-flag") || !strings.Contains(r.stderr, "tollgate eval -h") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestMistypedFlagSuggestsTheClosest: a slip in a flag or command name got
// only "flag provided but not defined"; the closest name is suggested when
// the slip is small, and nothing is when no name is close.
func TestMistypedFlagSuggestsTheClosest(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--data-dri", ".data/x"}, "tollgate serve: unknown flag --data-dri; did you mean --data-dir?"},
		{[]string{"token", "create", "--scope", "read"}, "tollgate token create: unknown flag --scope; did you mean --scopes?"},
		{[]string{"check", "--reposiotry", "org/a"}, "unknown flag --reposiotry; did you mean --repository?"}, // two letters swapped
		{[]string{"eval", "--licence", "l.jwt"}, "unknown flag --licence; did you mean --license?"},
		{[]string{"sevre"}, `unknown command "sevre"; did you mean serve?`},
		{[]string{"eval", "--no-such-flag"}, "tollgate eval: unknown flag --no-such-flag\nrun `tollgate eval -h` for usage"},
		{[]string{"deploy"}, `unknown command "deploy"` + "\nrun `tollgate help`"}, // two from replay: not a slip
	} {
		r := runTollgate(t, c.args...)
		if r.code != exitError || !strings.Contains(r.stderr, c.want) {
			t.Errorf("tollgate %s: exit %d, stderr:\n%s\nwant exit 2 and %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}
