package rego

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

const defaultBundle = "../bundles/tollgate"

func mustPolicy(tb testing.TB, dir string) *Policy {
	tb.Helper()
	b, err := LoadBundle(dir)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := Compile(context.Background(), b)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// newBundleDir writes files (path relative to the bundle root -> content)
// into a new directory, with an empty valid configuration unless given.
func newBundleDir(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	all := map[string]string{
		"config/global_policy/data.json": `{}`,
		"config/projects/data.json":      `{}`,
	}
	for name, content := range files {
		all[name] = content
	}
	for name, content := range all {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

func exampleRequest() tollgate.Request {
	return tollgate.Request{
		Repository: "org/service-api",
		Branch:     "main",
		Pipeline:   "deploy-prod",
		Metadata:   tollgate.Metadata{Initiator: "github-actions", RunID: "123456789", Environment: "production"},
	}
}

func at(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func validContext(now time.Time) tollgate.Context {
	return tollgate.Context{Now: now, Licence: tollgate.Licence{Status: tollgate.LicenceValid, Subject: "acme", Edition: "pro"}}
}

func codes(reasons []tollgate.Reason) []string {
	out := []string{}
	for _, r := range reasons {
		out = append(out, r.Code)
	}
	return out
}

// TestShippedBundleReasonCodes proves that the default bundle produces every
// reason code of the contract through the Go engine.
func TestShippedBundleReasonCodes(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	const monday = "2026-11-23T10:00:00+01:00"
	tests := []struct {
		name     string
		now      string
		edit     func(*tollgate.Request, *tollgate.Context)
		want     tollgate.Status
		reasons  []string
		warnings []string
		project  string
	}{
		{name: "accepted", now: monday, want: tollgate.Accepted, project: "service-api"},
		{name: "licence invalid stops evaluation", now: "2026-11-28T10:00:00+01:00",
			edit: func(r *tollgate.Request, c *tollgate.Context) {
				r.Repository = "org/unknown"
				c.Licence = tollgate.Licence{Status: tollgate.LicenceInvalid, Detail: "signature does not match"}
			},
			want: tollgate.Refused, reasons: []string{tollgate.CodeLicenceInvalid}},
		{name: "licence expired", now: monday,
			edit: func(_ *tollgate.Request, c *tollgate.Context) {
				c.Licence = tollgate.Licence{Status: tollgate.LicenceExpired, Detail: "expired at 2026-01-01T00:00:00Z"}
			},
			want: tollgate.Refused, reasons: []string{tollgate.CodeLicenceExpired}, project: "service-api"},
		{name: "unknown repository", now: monday,
			edit: func(r *tollgate.Request, _ *tollgate.Context) { r.Repository = "org/unknown" },
			want: tollgate.Refused, reasons: []string{tollgate.CodeProjectNotManaged}},
		{name: "undeclared pipeline", now: monday,
			edit: func(r *tollgate.Request, _ *tollgate.Context) { r.Pipeline = "nightly" },
			want: tollgate.Refused, reasons: []string{tollgate.CodeProjectNotManaged}},
		{name: "freeze", now: "2026-11-27T10:00:00+01:00",
			want: tollgate.Refused, reasons: []string{tollgate.CodeFreezeActive}, project: "service-api"},
		{name: "year-end freeze", now: "2026-12-29T10:00:00+01:00",
			want: tollgate.Refused, reasons: []string{tollgate.CodeFreezeActive}, project: "service-api"},
		{name: "freeze spares staging", now: "2026-11-27T10:00:00+01:00",
			edit: func(r *tollgate.Request, _ *tollgate.Context) {
				r.Pipeline, r.Metadata.Environment = "deploy-staging", "staging"
			},
			want: tollgate.Accepted, project: "service-api"},
		{name: "outside time window", now: "2026-11-23T07:59:00+01:00",
			want: tollgate.Refused, reasons: []string{tollgate.CodeTimeWindowViolation}, project: "service-api"},
		{name: "weekend", now: "2026-11-21T10:00:00+01:00",
			want: tollgate.Refused, reasons: []string{tollgate.CodeTimeWindowViolation, tollgate.CodeWeekendViolation}, project: "service-api"},
		{name: "branch", now: monday,
			edit: func(r *tollgate.Request, _ *tollgate.Context) { r.Branch = "feature/login" },
			want: tollgate.Refused, reasons: []string{tollgate.CodeBranchNotAllowed}, project: "service-api"},
		{name: "pipeline type", now: monday,
			edit: func(r *tollgate.Request, _ *tollgate.Context) {
				r.Pipeline, r.Branch, r.Metadata.Environment = "hotfix-prod", "hotfix/1", "staging"
			},
			want: tollgate.Refused, reasons: []string{tollgate.CodePipelineNotAllowed}, project: "service-api"},
		{name: "cooldown", now: monday,
			edit: func(_ *tollgate.Request, c *tollgate.Context) {
				c.Cooldown.LastAcceptedAt = c.Now.Add(-29 * time.Minute)
			},
			want: tollgate.Refused, reasons: []string{tollgate.CodeCooldown}, project: "service-api"},
		{name: "cooldown over", now: monday,
			edit: func(_ *tollgate.Request, c *tollgate.Context) {
				c.Cooldown.LastAcceptedAt = c.Now.Add(-30 * time.Minute)
			},
			want: tollgate.Accepted, project: "service-api"},
		{name: "project module", now: monday,
			edit: func(r *tollgate.Request, _ *tollgate.Context) {
				r.Repository, r.Metadata.Initiator = "org/payments", "alice"
			},
			want: tollgate.Refused, reasons: []string{"initiator_not_allowed"}, project: "payments"},
		{name: "warn mode", now: monday,
			edit: func(r *tollgate.Request, _ *tollgate.Context) {
				r.Repository, r.Branch = "org/web-frontend", "feature/x"
			},
			want: tollgate.Accepted, warnings: []string{tollgate.CodeBranchNotAllowed}, project: "web-frontend"},
		{name: "every reason in contract order", now: "2026-11-28T10:00:00+01:00",
			edit: func(r *tollgate.Request, c *tollgate.Context) {
				r.Branch = "feature/x"
				c.Cooldown.LastAcceptedAt = c.Now.Add(-time.Minute)
			},
			want: tollgate.Refused, project: "service-api", reasons: []string{
				tollgate.CodeFreezeActive, tollgate.CodeTimeWindowViolation, tollgate.CodeWeekendViolation,
				tollgate.CodeBranchNotAllowed, tollgate.CodeCooldown,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, c := exampleRequest(), validContext(at(t, tt.now))
			if tt.edit != nil {
				tt.edit(&r, &c)
			}
			d := p.Evaluate(context.Background(), r, c)
			if d.Status != tt.want || !slices.Equal(codes(d.Reasons), nonNil(tt.reasons)) || !slices.Equal(codes(d.Warnings), nonNil(tt.warnings)) {
				t.Fatalf("got %s %v warnings %v, want %s %v warnings %v\n%+v", d.Status, codes(d.Reasons), codes(d.Warnings), tt.want, tt.reasons, tt.warnings, d)
			}
			if d.Project != tt.project || d.Pipeline != r.Pipeline || d.Branch != r.Branch || d.Environment != r.Metadata.Environment {
				t.Errorf("echoed fields: got project %q pipeline %q branch %q env %q", d.Project, d.Pipeline, d.Branch, d.Environment)
			}
			if d.BundleRevision != p.Revision() || !d.EvaluatedAt.Equal(c.Now) {
				t.Errorf("revision %q at %v, want %q at %v", d.BundleRevision, d.EvaluatedAt, p.Revision(), c.Now)
			}
			for _, reason := range append(d.Reasons, d.Warnings...) {
				if reason.Message == "" {
					t.Errorf("reason %s has no message", reason.Code)
				}
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestUnmanagedAcceptPolicy(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	b, err := p.Bundle().WithConfig(map[string]any{"unmanaged_projects": "accept", "timezone": "Europe/Paris",
		"freezes": []any{map[string]any{"id": "all", "start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	r := exampleRequest()
	r.Repository = "org/unknown"
	d := sim.Evaluate(context.Background(), r, validContext(at(t, "2026-11-23T10:00:00+01:00")))
	// No project_not_managed, but global rules still apply.
	if got := codes(d.Reasons); !slices.Equal(got, []string{tollgate.CodeFreezeActive}) || d.Project != "" {
		t.Fatalf("got %v project %q, want [freeze_active] and no project", got, d.Project)
	}
}

// TestRecurringFreezeLoadsAndApplies: a weekly freeze passes validation and
// refuses on its local hours, in the policy's time zone.
func TestRecurringFreezeLoadsAndApplies(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	b, err := p.Bundle().WithConfig(map[string]any{"timezone": "Europe/Paris", "freezes": []any{
		map[string]any{"id": "friday-afternoons", "reason": "Weekend on call is thin",
			"weekly": map[string]any{"days": []any{"friday"}, "start": "16:00", "end": "24:00"}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for instant, want := range map[string][]string{
		"2026-11-20T16:00:00+01:00": {tollgate.CodeFreezeActive},
		"2026-11-20T15:59:00+01:00": {},
		"2026-11-19T17:00:00+01:00": {},
	} {
		d := sim.Evaluate(context.Background(), exampleRequest(), validContext(at(t, instant)))
		if got := codes(d.Reasons); !slices.Equal(got, want) {
			t.Errorf("at %s: %v, want %v (%v)", instant, got, want, d.Reasons)
		}
	}
}

// TestFailClosed: whatever goes wrong in the policy, the answer is refused
// with policy_error, never accepted.
func TestFailClosed(t *testing.T) {
	tests := map[string]string{
		"undefined decision": `package tollgate
decision := 1 if input.nothing`,
		"not an object": `package tollgate
decision := "accepted"`,
		"unknown status": `package tollgate
decision := {"status": "maybe", "reasons": [], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""}`,
		"accepted with reasons": `package tollgate
decision := {"status": "accepted", "reasons": [{"code": "x", "message": "y"}], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""}`,
		"refused without reason": `package tollgate
decision := {"status": "refused", "reasons": [], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""}`,
		"reason without message": `package tollgate
decision := {"status": "refused", "reasons": [{"code": "x"}], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""}`,
		"warnings missing": `package tollgate
decision := {"status": "accepted", "reasons": [], "project": "", "pipeline": "", "branch": "", "environment": ""}`,
		"conflicting values": `package tollgate
decision := {"status": "accepted", "reasons": [], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""} if input.request
decision := {"status": "accepted", "reasons": [], "warnings": ["other"], "project": "", "pipeline": "", "branch": "", "environment": ""} if input.request`,
		"builtin error": `package tollgate
decision := {"status": "accepted", "reasons": [], "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": ""} if {
	time.parse_rfc3339_ns(input.request.branch) > 0
}`,
	}
	for name, module := range tests {
		t.Run(name, func(t *testing.T) {
			p := mustPolicy(t, newBundleDir(t, map[string]string{"policy.rego": module}))
			r := exampleRequest()
			d := p.Evaluate(context.Background(), r, validContext(time.Now()))
			if d.Status != tollgate.Refused || len(d.Reasons) != 1 || d.Reasons[0].Code != tollgate.CodePolicyError {
				t.Fatalf("want refused with policy_error, got %+v", d)
			}
			if d.Pipeline != r.Pipeline || d.BundleRevision == "" || d.Warnings == nil {
				t.Errorf("policy error decision is incomplete: %+v", d)
			}
			t.Log(d.Reasons[0].Message)
		})
	}
}

func TestLoadBundleRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name, file, content, want string
	}{
		{"unknown field", "config/global_policy/data.json", `{"timezon": "UTC"}`, `config/global_policy/data.json: unknown field "timezon"`},
		{"wrong type", "config/global_policy/data.json", `{"timezone": 3}`, `config/global_policy/data.json: timezone must be a string`},
		{"bad timezone", "config/global_policy/data.json", `{"timezone": "Mars/Olympus"}`, `config/global_policy/data.json: timezone: unknown time zone "Mars/Olympus"`},
		{"bad unmanaged policy", "config/global_policy/data.json", `{"unmanaged_projects": "maybe"}`, `unmanaged_projects: must be "refuse" or "accept"`},
		{"freeze without id", "config/global_policy/data.json", `{"freezes": [{"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}]}`, `freezes[0].id: required`},
		{"freeze bad start", "config/global_policy/data.json", `{"freezes": [{"id": "x", "start": "2026-01-01", "end": "2026-01-02T00:00:00Z"}]}`, `freezes[0].start: must be an RFC 3339 time`},
		{"freeze backwards", "config/global_policy/data.json", `{"freezes": [{"id": "x", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]}`, `freezes[0]: start 2026-01-02T00:00:00Z must be before end`},
		{"freeze empty environments", "config/global_policy/data.json", `{"freezes": [{"id": "x", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "environments": []}]}`, `freezes[0].environments: empty list`},
		{"freeze weekly hour 24", "config/global_policy/data.json", `{"freezes": [{"id": "fri", "weekly": {"days": ["friday"], "start": "24:00", "end": "24:00"}}]}`, `freezes[0].weekly.start: must be a local time "HH:MM" from 00:00 to 23:59, got "24:00"`},
		{"freeze weekly end before start", "config/global_policy/data.json", `{"freezes": [{"id": "fri", "weekly": {"days": ["friday"], "start": "18:00", "end": "16:00"}}]}`, `freezes[0].weekly: start 18:00 must be before end 16:00 (a freeze cannot cross midnight`},
		{"freeze weekly bad day", "config/global_policy/data.json", `{"freezes": [{"id": "fri", "weekly": {"days": ["fri"], "start": "16:00", "end": "24:00"}}]}`, `freezes[0].weekly.days[0]: "fri" is not a weekday`},
		{"freeze monthly day 32", "config/global_policy/data.json", `{"freezes": [{"id": "m", "monthly": {"days": [1, 32], "start": "00:00", "end": "24:00"}}]}`, `freezes[0].monthly.days[1]: 32 is not a day of the month`},
		{"freeze monthly no days", "config/global_policy/data.json", `{"freezes": [{"id": "m", "monthly": {"start": "00:00", "end": "24:00"}}]}`, `freezes[0].monthly.days: required`},
		{"freeze yearly bad date", "config/global_policy/data.json", `{"freezes": [{"id": "y", "yearly": {"dates": ["02-30"], "start": "00:00", "end": "24:00"}}]}`, `freezes[0].yearly.dates[0]: "02-30" is not a date`},
		{"freeze two schedules", "config/global_policy/data.json", `{"freezes": [{"id": "y", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "weekly": {"days": ["friday"], "start": "00:00", "end": "24:00"}}]}`, `freezes[0]: give exactly one of start+end`},
		{"freeze no schedule", "config/global_policy/data.json", `{"freezes": [{"id": "y"}]}`, `freezes[0]: give exactly one of start+end (a one-off freeze), weekly, monthly or yearly; it has 0`},
		{"freeze unknown schedule key", "config/global_policy/data.json", `{"freezes": [{"id": "y", "weekly": {"days": ["friday"], "start": "00:00", "end": "24:00", "tz": "UTC"}}]}`, `unknown field "tz"`},
		{"exception approvals 0", "config/global_policy/data.json", `{"exceptions": {"approvals": {"production": 0}}}`, `exceptions.approvals.production: must be from 1 to 10`},
		{"exception negative max_days", "config/global_policy/data.json", `{"exceptions": {"max_days": -1}}`, `exceptions.max_days: must be 0`},
		{"exception unknown key", "config/global_policy/data.json", `{"exceptions": {"max_day": 3}}`, `unknown field "max_day"`},
		{"incident empty types", "config/global_policy/data.json", `{"incident": {"pipeline_types": []}}`, `incident.pipeline_types: empty list`},
		{"incident negative max_hours", "config/global_policy/data.json", `{"incident": {"max_hours": -2}}`, `incident.max_hours: must be 0`},
		{"jobs negative max_wait_hours", "config/global_policy/data.json", `{"jobs": {"max_wait_hours": -1}}`, `jobs.max_wait_hours: must be 0`},
		{"jobs negative max_open_per_repository", "config/global_policy/data.json", `{"jobs": {"max_open_per_repository": -5}}`, `jobs.max_open_per_repository: must be 0`},
		{"jobs unknown field", "config/global_policy/data.json", `{"jobs": {"max_wait": "2h"}}`, `max_wait`},
		{"window bad day", "config/global_policy/data.json", `{"time_windows": [{"days": ["Monday"], "start": "08:00", "end": "18:00"}]}`, `time_windows[0].days[0]: "Monday" is not a weekday`},
		{"window bad time", "config/global_policy/data.json", `{"time_windows": [{"days": ["monday"], "start": "8:00", "end": "18:00"}]}`, `time_windows[0].start: must be a local time "HH:MM"`},
		{"window crossing midnight", "config/global_policy/data.json", `{"time_windows": [{"days": ["monday"], "start": "22:00", "end": "02:00"}]}`, `cannot cross midnight`},
		{"weekends empty environments", "config/global_policy/data.json", `{"weekends": {"allowed": false, "environments": []}}`, `weekends.environments: empty list`},
		{"project without repositories", "config/projects/data.json", `{"a": {"pipelines": {"p": {"type": "deploy"}}}}`, `config/projects/data.json: a.repositories: required`},
		{"repository in two projects", "config/projects/data.json", `{"a": {"repositories": ["org/x"], "pipelines": {"p": {"type": "deploy"}}}, "b": {"repositories": ["org/x"], "pipelines": {"p": {"type": "deploy"}}}}`, `b.repositories: repository "org/x" is already listed by project "a"`},
		{"pipeline without type", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {}}}}`, `a.pipelines.p.type: required`},
		{"negative cooldown", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy", "cooldown_minutes": -1}}}}`, `a.pipelines.p.cooldown_minutes: must be 0`},
		{"fractional cooldown", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy", "cooldown_minutes": 1.5}}}}`, `cooldown_minutes must be a number, got number 1.5`},
		{"empty branch list", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "allowed_branches": [], "pipelines": {"p": {"type": "deploy"}}}}`, `a.allowed_branches: empty list`},
		{"bad glob", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy", "allowed_branches": ["release/[a"]}}}}`, `a.pipelines.p.allowed_branches: invalid glob pattern`},
		{"bad enforcement", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "enforcement": "audit", "pipelines": {"p": {"type": "deploy"}}}}`, `a.enforcement: must be "enforce" or "warn"`},
		{"environment without types", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "environments": {"production": {}}}}`, `a.environments.production.pipeline_types: required`},
		{"risk max_cvss out of range", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "risk": {"max_cvss": 11}}}`, `a.risk.max_cvss: must be a CVSS score from 0 to 10`},
		{"risk unknown key", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "risk": {"max_cvs": 7}}}`, `unknown field "max_cvs"`},
		{"environment risk", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "environments": {"production": {"pipeline_types": ["deploy"], "risk": {"epss_weight": 2}}}}}`, `a.environments.production.risk.epss_weight: must be from 0 to 1`},
		{"github unknown pipeline", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "github": {"environments": {"production": "deploy-prod"}}}}`, `a.github.environments.production: "deploy-prod" is not a pipeline of the project`},
		{"github no environments", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "github": {}}}`, `a.github: required`},
		{"github wait over 30 days", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "github": {"environments": {"production": "p"}, "wait_hours": {"production": 721}}}}`, `a.github.wait_hours.production: must be from 1 to 720 hours`},
		{"github wait 0", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "github": {"environments": {"production": "p"}, "wait_hours": {"production": 0}}}}`, `a.github.wait_hours.production: must be from 1 to 720 hours`},
		{"github empty workflows", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "github": {"environments": {"production": "p"}, "workflows": {}}}}`, `a.github.workflows: empty`},
		{"github workflow unknown pipeline", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "github": {"workflows": {".github/workflows/x.yml": "q"}}}}`, `a.github.workflows..github/workflows/x.yml: "q" is not a pipeline of the project`},
		{"github unknown key", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "github": {"workflow": {"deploy.yml": "p"}}}}`, `unknown field "workflow"`},
		{"projects not an object", "config/projects/data.json", `[]`, `config/projects/data.json: invalid JSON`},
		{"case-variant key", "config/global_policy/data.json", `{"Timezone": "UTC"}`, `unknown field "Timezone": field names are case-sensitive, did you mean "timezone"?`},
		{"case-variant project key", "config/projects/data.json", `{"a": {"Repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}}}`, `did you mean "a.repositories"?`},
		{"project name with a bidi override", "config/projects/data.json", `{"a\u202e": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}}}`, `the project name must not contain invisible formatting characters`},
		{"repository with a control character", "config/projects/data.json", `{"a": {"repositories": ["org/a\u0085"], "pipelines": {"p": {"type": "deploy"}}}}`, `a.repositories: repository must not contain control characters`},
		{"pipeline name too long", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"` + strings.Repeat("p", 300) + `": {"type": "deploy"}}}}`, `the pipeline name is 300 bytes long: at most 256`},
		{"environment name with a zero-width space", "config/projects/data.json", `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}, "environments": {"prod\u200b": {"pipeline_types": ["deploy"]}}}}`, `a.environments: the environment name must not contain invisible formatting characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newBundleDir(t, map[string]string{"policy.rego": "package tollgate\n", tt.file: tt.content})
			_, err := LoadBundle(dir)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), dir) {
				t.Fatalf("error %q\nwant it to start with the bundle dir and contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadBundleErrors(t *testing.T) {
	if _, err := LoadBundle(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing directory: want an error")
	}
	if _, err := LoadBundle(newBundleDir(t, nil)); err == nil || !strings.Contains(err.Error(), "no Rego modules") {
		t.Errorf("bundle without modules: got %v", err)
	}
	dir := newBundleDir(t, map[string]string{"policy.rego": "package tollgate\n"})
	os.Remove(filepath.Join(dir, "config/projects/data.json"))
	if _, err := LoadBundle(dir); err == nil || !strings.Contains(err.Error(), "config/projects/data.json: missing") {
		t.Errorf("bundle without projects: got %v", err)
	}
	b, err := LoadBundle(newBundleDir(t, map[string]string{"policy.rego": "package tollgate\nx := "}))
	if err == nil {
		t.Errorf("syntax error: want an error, got bundle %v", b.Revision)
	}
	dir = newBundleDir(t, map[string]string{"policy.rego": "package tollgate\nx := y\n"})
	if b, err = LoadBundle(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(context.Background(), b); err == nil || !strings.Contains(err.Error(), "compile bundle") {
		t.Errorf("unsafe variable: want a compile error, got %v", err)
	}
}

func TestRevisionFollowsContent(t *testing.T) {
	files := map[string]string{"policy.rego": "package tollgate\n"}
	a, _ := LoadBundle(newBundleDir(t, files))
	b, _ := LoadBundle(newBundleDir(t, files))
	files["config/projects/data.json"] = `{"a": {"repositories": ["org/a"], "pipelines": {"p": {"type": "deploy"}}}}`
	c, _ := LoadBundle(newBundleDir(t, files))
	if a.Revision != b.Revision || a.Revision == c.Revision || !strings.HasPrefix(a.Revision, "sha256:") {
		t.Fatalf("revisions: same content %q %q, other content %q", a.Revision, b.Revision, c.Revision)
	}
	abs, err := filepath.Abs(defaultBundle)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := LoadBundle(defaultBundle)
	full, _ := LoadBundle(abs)
	if rel.Revision != full.Revision {
		t.Errorf("the revision depends on how the directory is spelled: %s vs %s", rel.Revision, full.Revision)
	}
}

func TestCooldownKey(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	r := exampleRequest()
	if key, ok := p.CooldownKey(r); !ok || key != (tollgate.CooldownKey{Project: "service-api", Pipeline: "deploy-prod", Branch: "main"}) {
		t.Errorf("got %+v %v", key, ok)
	}
	r.Pipeline = "deploy-staging" // no cooldown
	if _, ok := p.CooldownKey(r); ok {
		t.Error("pipeline without cooldown has a key")
	}
	r.Repository = "org/unknown"
	if _, ok := p.CooldownKey(r); ok {
		t.Error("unmanaged request has a key")
	}
	r = exampleRequest()
	r.Repository = "org/payments-worker" // second repository of payments
	if key, ok := p.CooldownKey(r); !ok || key.Project != "payments" {
		t.Errorf("got %+v %v", key, ok)
	}
}

// TestConcurrentEvaluate shares one Policy across goroutines (run with -race).
func TestConcurrentEvaluate(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	accepted := validContext(at(t, "2026-11-23T10:00:00+01:00"))
	weekend := validContext(at(t, "2026-11-21T10:00:00+01:00"))
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				c, want := accepted, tollgate.Accepted
				if (g+i)%2 == 0 {
					c, want = weekend, tollgate.Refused
				}
				if d := p.Evaluate(context.Background(), exampleRequest(), c); d.Status != want {
					errs <- string(d.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("unexpected status %s", e)
	}
}

func TestInputDocument(t *testing.T) {
	c := validContext(at(t, "2026-11-23T10:00:00+01:00"))
	c.Cooldown.LastAcceptedAt = c.Now.Add(-time.Minute)
	in, err := Input(exampleRequest(), c)
	if err != nil {
		t.Fatal(err)
	}
	doc := in.(map[string]any)
	ctx := doc["context"].(map[string]any)
	req := doc["request"].(map[string]any)
	if req["repository"] != "org/service-api" || ctx["licence"].(map[string]any)["status"] != "valid" ||
		ctx["cooldown"].(map[string]any)["last_accepted_ns"] == nil || ctx["now_ns"] == nil {
		t.Fatalf("input document: %v", doc)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	p := mustPolicy(b, defaultBundle)
	r := exampleRequest()
	c := validContext(at(b, "2026-11-23T10:00:00+01:00"))
	ctx := context.Background()
	if d := p.Evaluate(ctx, r, c); d.Status != tollgate.Accepted {
		b.Fatalf("want accepted, got %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(ctx, r, c)
	}
}

// BenchmarkEvaluateProjects evaluates the example request against the
// shipped bundle with its registry grown to 10 and to 10,000 projects: the
// time per evaluation should not depend on the registry's size, since
// resolution is one lookup in resolve.project_by_repository, folded at
// load. "load" reports the heap a loaded and compiled bundle of that size
// keeps (retained-MB), which is most of the server's memory.
func BenchmarkEvaluateProjects(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		dir := b.TempDir()
		copyBundle(b, dir)
		path := filepath.Join(dir, "config", "projects", "data.json")
		var projects map[string]any
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &projects)
		}
		if err != nil {
			b.Fatal(err)
		}
		for i := len(projects); i < n; i++ {
			name := fmt.Sprintf("project-%05d", i)
			projects[name] = map[string]any{
				"repositories":     []string{"org/" + name},
				"allowed_branches": []string{"main", "release/*"},
				"pipelines":        map[string]any{"deploy-prod": map[string]any{"type": "deploy", "cooldown_minutes": 30}},
				"environments":     map[string]any{"production": map[string]any{"pipeline_types": []string{"deploy"}}},
			}
		}
		if data, err = json.Marshal(projects); err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("projects=%d/load", n), func(b *testing.B) {
			var kept *Policy
			var before, after runtime.MemStats
			for b.Loop() {
				kept = nil
				runtime.GC()
				runtime.ReadMemStats(&before)
				kept = mustPolicy(b, dir)
				runtime.GC()
				runtime.ReadMemStats(&after)
			}
			runtime.KeepAlive(kept)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "retained-MB")
		})
		b.Run(fmt.Sprintf("projects=%d/evaluate", n), func(b *testing.B) {
			p := mustPolicy(b, dir)
			r := exampleRequest()
			c := validContext(at(b, "2026-11-23T10:00:00+01:00"))
			ctx := context.Background()
			if d := p.Evaluate(ctx, r, c); d.Status != tollgate.Accepted {
				b.Fatalf("want accepted, got %+v", d)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Evaluate(ctx, r, c)
			}
		})
	}
}

func TestGitHubPipeline(t *testing.T) {
	dir := newBundleDir(t, map[string]string{"policy.rego": "package tollgate\n",
		"config/projects/data.json": `{"api": {"repositories": ["org/api"], "pipelines": {"deploy-prod": {"type": "deploy"}, "hotfix": {"type": "hotfix"}},
			"github": {"environments": {"production": "deploy-prod"}, "workflows": {".github/workflows/hotfix.yml": "hotfix"}, "wait_hours": {"production": 12}}},
			"web": {"repositories": ["org/web"], "pipelines": {"deploy": {"type": "deploy"}}}}`})
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ env, workflow, want string }{
		{"production", "", "deploy-prod"},
		{"production", ".github/workflows/deploy.yml", "deploy-prod"},
		{"production", ".github/workflows/hotfix.yml", "hotfix"},
		{"staging", ".github/workflows/hotfix.yml", "hotfix"},
	} {
		if p, err := b.Config.GitHubPipeline("org/api", tt.env, tt.workflow); err != nil || p != tt.want {
			t.Errorf("org/api %s %s: %q, %v; want %s", tt.env, tt.workflow, p, err, tt.want)
		}
	}
	if b.Config.GitHubWait("org/api", "production") != 12*time.Hour || b.Config.GitHubWait("org/api", "staging") != 0 || b.Config.GitHubWait("org/web", "production") != 0 {
		t.Error("GitHubWait: want 12h for org/api production only")
	}
	if !b.Config.GitHubWorkflows("org/api") || b.Config.GitHubWorkflows("org/web") || b.Config.GitHubWorkflows("org/other") {
		t.Error("GitHubWorkflows: want org/api only")
	}
	for _, tt := range []struct{ repo, env, want string }{
		{"org/api", "staging", `the project api maps no pipeline to the GitHub environment staging: add "staging": "<pipeline>" to its "github"`},
		{"org/web", "production", `the project web maps no pipeline to the GitHub environment production`},
		{"org/other", "production", `the repository org/other is in no project of config/projects/data.json: add it to a project's repositories`},
	} {
		if p, err := b.Config.GitHubPipeline(tt.repo, tt.env, ""); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %s: %q, %v; want an error containing %q", tt.repo, tt.env, p, err, tt.want)
		}
	}
}
