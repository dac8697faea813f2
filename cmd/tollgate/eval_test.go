package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
)

// Monday 23 November 2026, 10:00 in Paris: inside the production windows,
// before the Black Friday freeze.
const mondayMorning = "2026-11-23T10:00:00+01:00"

// evalArgs are the flags of an evaluation of the example request with the
// valid licence, plus extra.
func evalArgs(extra ...string) []string {
	return append([]string{"eval",
		"--bundle", fixtures.bundle,
		"--license", fixtures.licence,
		"--license-key", fixtures.public,
		"--input", fixtures.example,
	}, extra...)
}

func decision(t *testing.T, r result) tollgate.Decision {
	t.Helper()
	var d tollgate.Decision
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("stdout is not a decision: %v\n%s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return d
}

func codes(reasons []tollgate.Reason) []string {
	out := []string{}
	for _, r := range reasons {
		out = append(out, r.Code)
	}
	return out
}

func TestEvalAcceptsTheExampleOnMondayMorning(t *testing.T) {
	r := runTollgate(t, evalArgs("--at", mondayMorning)...)
	r.wantCode(t, exitOK)
	d := decision(t, r)
	if d.Status != tollgate.Accepted || len(d.Reasons) != 0 || d.Reasons == nil {
		t.Errorf("want accepted with reasons [], got %+v", d)
	}
	if d.Project != "service-api" || d.Pipeline != "deploy-prod" || d.Branch != "main" || d.Environment != "production" {
		t.Errorf("resolution: %+v", d)
	}
	if got := d.EvaluatedAt.Format("2006-01-02T15:04:05Z07:00"); got != "2026-11-23T09:00:00Z" {
		t.Errorf("evaluated_at %s, want the --at instant in UTC", got)
	}
	if !strings.HasPrefix(d.BundleRevision, "sha256:") {
		t.Errorf("bundle_revision %q", d.BundleRevision)
	}
	if !strings.Contains(r.stdout, "\n  \"status\": \"accepted\"") {
		t.Errorf("want indented JSON, got %s", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestEvalReadsTheRequestFromStdin(t *testing.T) {
	request, err := os.ReadFile(fixtures.example)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"eval", "--bundle", fixtures.bundle, "--license", fixtures.licence,
		"--license-key", fixtures.public, "--at", mondayMorning}
	for _, extra := range [][]string{nil, {"--input", "-"}} {
		r := invocation{stdin: string(request)}.run(t, append(args, extra...)...)
		r.wantCode(t, exitOK)
	}
}

func TestEvalRefusesOnSaturday(t *testing.T) {
	r := runTollgate(t, evalArgs("--at", "2026-11-21T10:00:00+01:00")...)
	r.wantCode(t, exitNo)
	d := decision(t, r)
	if d.Status != tollgate.Refused || !slices.Contains(codes(d.Reasons), tollgate.CodeWeekendViolation) {
		t.Errorf("want refused with weekend_violation, got %+v", d)
	}
}

func TestEvalLicenceProblemsAreRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, licence, code, detail string
	}{
		{"expired", fixtures.expired, tollgate.CodeLicenceExpired, "expired at 2025-06-01"},
		{"missing file", filepath.Join(t.TempDir(), "none.jwt"), tollgate.CodeLicenceInvalid, "cannot read licence file"},
		{"not a JWT", fixtures.example, tollgate.CodeLicenceInvalid, "not a well-formed JWT"},
		{"no --license", "", tollgate.CodeLicenceInvalid, "no licence configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"eval", "--bundle", fixtures.bundle, "--license-key", fixtures.public,
				"--input", fixtures.example, "--at", mondayMorning}
			if tc.licence != "" {
				args = append(args, "--license", tc.licence)
			}
			r := runTollgate(t, args...)
			r.wantCode(t, exitNo)
			d := decision(t, r)
			if got := codes(d.Reasons); !slices.Equal(got, []string{tc.code}) {
				t.Fatalf("reasons %v, want only %s", got, tc.code)
			}
			if !strings.Contains(d.Reasons[0].Message, tc.detail) {
				t.Errorf("message %q does not say %q", d.Reasons[0].Message, tc.detail)
			}
		})
	}
}

func TestEvalBadInputIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name, input, want string
	}{
		{"malformed JSON", `{"repository": "org/service-api",`, "invalid request"},
		{"missing branch", `{"repository": "org/service-api", "pipeline": "deploy-prod", "metadata": {"environment": "production"}}`, "branch is required"},
		{"unknown field", `{"repository": "org/service-api", "branch": "main", "pipeline": "deploy-prod", "metadata": {"environment": "production"}, "brnach": "x"}`, `unknown field "brnach"`},
		{"wrong type", `{"repository": "org/service-api", "branch": 1, "pipeline": "deploy-prod", "metadata": {"environment": "production"}}`, "branch must be a string"},
		{"empty", ``, "empty body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := invocation{stdin: tc.input}.run(t, "eval", "--bundle", fixtures.bundle,
				"--license", fixtures.licence, "--license-key", fixtures.public, "--at", mondayMorning)
			r.wantCode(t, exitError)
			if r.stdout != "" {
				t.Errorf("stdout should be empty, got %s", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", r.stderr, tc.want)
			}
		})
	}
	r := runTollgate(t, "eval", "--bundle", fixtures.bundle, "--license", fixtures.licence,
		"--license-key", fixtures.public, "--input", filepath.Join(t.TempDir(), "none.json"))
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "none.json") {
		t.Errorf("missing --input file: stderr %q", r.stderr)
	}
}

func TestEvalBadBundleIsAnError(t *testing.T) {
	badConfig := t.TempDir()
	writeFiles(t, badConfig, map[string]string{
		"config/global_policy/data.json": `{"timezone": "Mars/Olympus_Mons"}`,
		"config/projects/data.json":      `{}`,
		"policy.rego":                    "package tollgate\n\ndecision := {}\n",
	})
	badRego := t.TempDir()
	writeFiles(t, badRego, map[string]string{
		"config/global_policy/data.json": `{}`,
		"config/projects/data.json":      `{}`,
		"policy.rego":                    "package tollgate\n\ndecision := undefined_thing\n",
	})
	for _, tc := range []struct{ name, dir, want string }{
		{"missing directory", filepath.Join(t.TempDir(), "nope"), "--bundle (or TOLLGATE_BUNDLE)"},
		{"bad configuration", badConfig, "timezone"},
		{"compile error", badRego, "undefined_thing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runTollgate(t, "eval", "--bundle", tc.dir, "--license", fixtures.licence,
				"--license-key", fixtures.public, "--input", fixtures.example)
			r.wantCode(t, exitError)
			if r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stdout %q, stderr %q: want %q", r.stdout, r.stderr, tc.want)
			}
		})
	}
}

func TestEvalRequiresTheLicenceKey(t *testing.T) {
	r := runTollgate(t, "eval", "--bundle", fixtures.bundle, "--license", fixtures.licence, "--input", fixtures.example)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "--license-key is required") || !strings.Contains(r.stderr, "license keygen") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = runTollgate(t, "eval", "--bundle", fixtures.bundle, "--license", fixtures.licence,
		"--license-key", fixtures.private, "--input", fixtures.example)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "found a private key") {
		t.Errorf("private key as --license-key: stderr %s", r.stderr)
	}
}

func TestEvalBadAtIsAnError(t *testing.T) {
	r := runTollgate(t, evalArgs("--at", "monday")...)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "RFC 3339") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestEvalFlagsFromTheEnvironment(t *testing.T) {
	elsewhere := t.TempDir() // no bundles/tollgate here: the default cannot work
	env := []string{
		"TOLLGATE_BUNDLE=" + fixtures.bundle,
		"TOLLGATE_LICENSE=" + fixtures.licence,
		"TOLLGATE_LICENSE_KEY=" + fixtures.public,
		"TOLLGATE_AT=" + mondayMorning,
		"TOLLGATE_INPUT=" + fixtures.example,
	}
	r := invocation{dir: elsewhere, env: env}.run(t, "eval")
	r.wantCode(t, exitOK)

	// Without TOLLGATE_BUNDLE, the default bundles/tollgate is not there.
	r = invocation{dir: elsewhere, env: env[1:]}.run(t, "eval")
	r.wantCode(t, exitError)

	// A flag on the command line beats the environment.
	r = invocation{dir: elsewhere, env: append(env, "TOLLGATE_BUNDLE=/nonexistent")}.run(t, "eval", "--bundle", fixtures.bundle)
	r.wantCode(t, exitOK)
	r = invocation{dir: elsewhere, env: env}.run(t, "eval", "--at", "2026-11-21T10:00:00+01:00")
	r.wantCode(t, exitNo)

	r = invocation{dir: elsewhere, env: append(env, "TOLLGATE_AT=tomorrow")}.run(t, "eval")
	r.wantCode(t, exitError)
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
