package main

import (
	"strings"
	"testing"
)

// TestEvalInputIsExact: eval decodes its request as the server does.
func TestEvalInputIsExact(t *testing.T) {
	const request = `{"repository": "org/service-api", "branch": "main", "pipeline": "deploy-prod", "metadata": {"environment": "production"}}`
	for _, tc := range []struct{ name, input, want string }{
		{"duplicate key", strings.Replace(request, `"branch": "main"`, `"branch": "main", "branch": "x"`, 1), `duplicate key "branch"`},
		{"case-variant key", strings.Replace(request, `"pipeline"`, `"Pipeline"`, 1), `did you mean "pipeline"?`},
		{"lone surrogate", strings.Replace(request, `"main"`, `"\ud800"`, 1), `branch: lone UTF-16 surrogate`},
		{"branch git refuses", strings.Replace(request, `"main"`, `"main~1"`, 1), `not a branch name git accepts`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := invocation{stdin: tc.input}.run(t, "eval", "--bundle", fixtures.bundle,
				"--license", fixtures.licence, "--license-key", fixtures.public, "--at", mondayMorning)
			r.wantCode(t, exitError)
			if r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stdout %q, stderr %q: want it to say %q", r.stdout, r.stderr, tc.want)
			}
		})
	}
}

// TestEvalAtOutsideTheEvaluableRange: --at past 2262 wrapped around.
func TestEvalAtOutsideTheEvaluableRange(t *testing.T) {
	r := runTollgate(t, evalArgs("--at", "2263-01-01T00:00:00Z")...)
	r.wantCode(t, exitError)
	if !strings.Contains(r.stderr, "--at 2263-01-01T00:00:00Z is outside the times the policy can evaluate") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestCheckRefusesMalformedFlagsBeforeAsking: json.Marshal would turn an
// invalid UTF-8 branch into U+FFFD and the server would record a branch CI
// never had; check refuses it itself (exit 2) without asking the server.
func TestCheckRefusesMalformedFlagsBeforeAsking(t *testing.T) {
	for flag, want := range map[string]string{
		"ma\xffin":         "branch is not valid UTF-8",
		"main\u202e":       "found U+202E",
		"release/1..2":     `it contains ".."`,
		"feature/bad.lock": `ends with ".lock"`,
	} {
		r := runTollgate(t, "check", "--server", "http://127.0.0.1:1", "--repository", "org/service-api",
			"--branch", flag, "--pipeline", "deploy-prod", "--environment", "production")
		r.wantCode(t, exitError)
		if !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "no decision") {
			t.Errorf("--branch %q: stderr %q, want %q and no request", flag, r.stderr, want)
		}
	}
}

// TestControlCommandsRefuseInvalidUTF8: the flags of the control commands
// would reach the server with U+FFFD in place of the bad bytes.
func TestControlCommandsRefuseInvalidUTF8(t *testing.T) {
	for _, args := range [][]string{
		{"freeze", "create", "--reason", "release \xff", "--ttl", "1h"},
		{"incident", "start", "--reason", "ok", "--ttl", "1h"},
		{"exception", "request", "--code", "branch_not_allowed", "--project", "service-api", "--justification", "demo\xc0", "--ttl", "24h"},
		{"exception", "reject", "01ab", "--comment", "no\xff"},
	} {
		r := runTollgate(t, append(args, "--server", "http://127.0.0.1:1")...)
		r.wantCode(t, exitError)
		valid := args[1] == "start"
		if strings.Contains(r.stderr, "is not valid UTF-8") == valid {
			t.Errorf("%q: stderr %q", args, r.stderr)
		}
	}
}
