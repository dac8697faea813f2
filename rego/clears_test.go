package rego

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// The shipped bundle says when a refusal can clear, through the real
// evaluator: the clears_at and next_check_at of bundles/tollgate/decision.rego
// reach tollgate.Decision as times.
func TestShippedBundleSaysWhenARefusalClears(t *testing.T) {
	p := mustPolicy(t, defaultBundle)
	utc := func(s string) tollgate.ClearTime { return tollgate.ClearTime{Time: at(t, s)} }
	for _, tc := range []struct {
		name     string
		now      string
		cooldown string // last accepted, if any
		branch   string
		clears   map[string]tollgate.ClearTime
		next     *time.Time
	}{{
		name:   "Friday evening before the spring DST change: Monday 08:00 CEST",
		now:    "2026-03-27T18:30:00+01:00",
		clears: map[string]tollgate.ClearTime{tollgate.CodeTimeWindowViolation: utc("2026-03-30T06:00:00Z")},
		next:   ptr(at(t, "2026-03-30T06:00:00Z")),
	}, {
		name: "Saturday: the weekend clears at Monday 00:00, the request at Monday 08:00",
		now:  "2026-10-24T10:00:00+02:00",
		clears: map[string]tollgate.ClearTime{
			tollgate.CodeTimeWindowViolation: utc("2026-10-26T07:00:00Z"),
			tollgate.CodeWeekendViolation:    utc("2026-10-25T23:00:00Z"),
		},
		next: ptr(at(t, "2026-10-26T07:00:00Z")),
	}, {
		name:   "the evening before the year-end freeze: the first window after it",
		now:    "2026-12-23T19:00:00+01:00",
		clears: map[string]tollgate.ClearTime{tollgate.CodeTimeWindowViolation: utc("2026-12-24T07:00:00Z")},
		next:   ptr(at(t, "2027-01-04T07:00:00Z")),
	}, {
		name:     "cooldown of 30 minutes",
		now:      "2026-06-10T10:10:00+02:00",
		cooldown: "2026-06-10T10:00:00+02:00",
		clears:   map[string]tollgate.ClearTime{tollgate.CodeCooldown: utc("2026-06-10T08:30:00Z")},
		next:     ptr(at(t, "2026-06-10T08:30:00Z")),
	}, {
		name:   "a reason time cannot clear: no next check",
		now:    "2026-06-10T19:00:00+02:00",
		branch: "feature/x",
		clears: map[string]tollgate.ClearTime{tollgate.CodeTimeWindowViolation: utc("2026-06-11T06:00:00Z")},
	}, {
		name: "accepted",
		now:  "2026-06-10T10:00:00+02:00",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := exampleRequest()
			if tc.branch != "" {
				r.Branch = tc.branch
			}
			c := validContext(at(t, tc.now))
			if tc.cooldown != "" {
				c.Cooldown.LastAcceptedAt = at(t, tc.cooldown)
			}
			d := p.Evaluate(context.Background(), r, c)
			if slices.Contains(codes(d.Reasons), tollgate.CodePolicyError) {
				t.Fatalf("policy error: %+v", d.Reasons)
			}
			if !equalClears(d.ClearsAt, tc.clears) {
				t.Errorf("clears_at = %v, want %v", d.ClearsAt, tc.clears)
			}
			if d.NextCheckAt.Waiting != (tc.next != nil) || (tc.next != nil && !d.NextCheckAt.At.Equal(*tc.next)) {
				t.Errorf("next_check_at = %v, want %v", d.NextCheckAt, tc.next)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func equalClears(a, b map[string]tollgate.ClearTime) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !v.Equal(w.Time) {
			return false
		}
	}
	return true
}

// An open-ended reason (a freeze every day) is a null in the decision's
// JSON, and waiting can still help: next_check_at is there, null.
func TestOpenEndedClearanceEncodesAsNull(t *testing.T) {
	dir := t.TempDir()
	copyBundle(t, dir)
	writeFile(t, filepath.Join(dir, "config/global_policy/data.json"), `{"timezone": "Europe/Paris",
		"freezes": [{"id": "forever", "weekly": {"days": ["monday","tuesday","wednesday","thursday","friday","saturday","sunday"], "start": "00:00", "end": "24:00"}}]}`)
	p := mustPolicy(t, dir)
	d := p.Evaluate(context.Background(), exampleRequest(), validContext(at(t, "2026-06-10T10:00:00+02:00")))
	if got := codes(d.Reasons); len(got) != 1 || got[0] != tollgate.CodeFreezeActive {
		t.Fatalf("want freeze_active, got %+v", d.Reasons)
	}
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"clears_at":{"freeze_active":null},"next_check_at":null`) {
		t.Fatalf("want clears_at {freeze_active: null} and next_check_at null, got %s", data)
	}
	var back tollgate.Decision
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back.NextCheckAt.Waiting || !back.NextCheckAt.At.IsZero() || !back.ClearsAt[tollgate.CodeFreezeActive].IsZero() {
		t.Fatalf("round trip lost the unknown times: %+v", back)
	}
}

// A policy that says a refusal clears when it cannot, or in a shape that is
// not a time, is broken: policy_error, never a decision that makes a job
// wait on something the policy did not mean.
func TestMalformedClearanceIsAPolicyError(t *testing.T) {
	const head = `package tollgate

decision := {"status": "%s", "reasons": %s, "warnings": [], "project": "", "pipeline": "", "branch": "", "environment": "", %s}
`
	window := `[{"code": "time_window_violation", "message": "closed"}]`
	both := `[{"code": "time_window_violation", "message": "closed"}, {"code": "branch_not_allowed", "message": "no"}]`
	for _, tc := range []struct {
		name, status, reasons, fields, want string
	}{
		{"accepted with clears_at", "accepted", `[]`, `"clears_at": {}`, "not refused"},
		{"clears_at not an object", "refused", window, `"clears_at": "soon"`, "clears_at: want an object"},
		{"clears_at for a code that is not a reason", "refused", window, `"clears_at": {"cooldown": null}`, "not the code of a reason"},
		{"clears_at not a time", "refused", window, `"clears_at": {"time_window_violation": 1781157600000000000}`, "RFC 3339 time or null"},
		{"clears_at not RFC 3339", "refused", window, `"clears_at": {"time_window_violation": "tomorrow"}`, "RFC 3339 time or null"},
		{"next_check_at with a reason time cannot clear", "refused", both,
			`"clears_at": {"time_window_violation": "2026-06-11T06:00:00Z"}, "next_check_at": "2026-06-11T06:00:00Z"`, "time cannot clear it"},
		{"next_check_at not a time", "refused", window,
			`"clears_at": {"time_window_violation": null}, "next_check_at": true`, "next_check_at: want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			module := strings.Replace(strings.Replace(strings.Replace(head, "%s", tc.status, 1), "%s", tc.reasons, 1), "%s", tc.fields, 1)
			p := mustPolicy(t, newBundleDir(t, map[string]string{"policy.rego": module}))
			d := p.Evaluate(context.Background(), exampleRequest(), validContext(time.Now()))
			if d.Status != tollgate.Refused || len(d.Reasons) != 1 || d.Reasons[0].Code != tollgate.CodePolicyError ||
				!strings.Contains(d.Reasons[0].Message, tc.want) {
				t.Fatalf("want policy_error containing %q, got %+v", tc.want, d.Reasons)
			}
			if d.ClearsAt != nil || d.NextCheckAt.Waiting {
				t.Errorf("a policy_error says when it clears: %+v", d)
			}
		})
	}
}

// Evaluations and simulations carry the clearance; the recorded decision
// is the one answered, so the ledger covers what the API shows.
func TestGateExposesClearance(t *testing.T) {
	store := &gateStore{}
	now := at(t, "2026-03-27T18:30:00+01:00")
	g := &Gate{
		Policies: fixedPolicy{mustPolicy(t, defaultBundle)},
		Store:    store,
		Licence:  validLicence{},
		Now:      func() time.Time { return now },
		NewID:    func() string { return "id" },
		Score:    func([]tollgate.CVSSVector) (tollgate.ScoreReceipt, bool) { return tollgate.ScoreReceipt{}, false },
	}
	monday := at(t, "2026-03-30T06:00:00Z")
	rec, err := g.Evaluate(context.Background(), exampleRequest(), ScanSource{})
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Decision.NextCheckAt.Waiting || !rec.Decision.NextCheckAt.At.Equal(monday) {
		t.Fatalf("evaluate: next_check_at %v, want %v (%+v)", rec.Decision.NextCheckAt, monday, rec.Decision)
	}
	saturday := at(t, "2026-03-28T12:00:00+01:00")
	d, err := g.Simulate(context.Background(), Simulation{Request: exampleRequest(), At: &saturday})
	if err != nil {
		t.Fatal(err)
	}
	if !d.NextCheckAt.Waiting || !d.NextCheckAt.At.Equal(monday) || !d.ClearsAt[tollgate.CodeWeekendViolation].Equal(at(t, "2026-03-29T22:00:00Z")) {
		t.Fatalf("simulate: %+v", d)
	}
}

// BenchmarkEvaluateRefusedByTime measures what saying when a refusal
// clears costs: the same request refused by its cooldown (the load
// harness's "same keys"), out of hours (one step to the fixed point) and
// the evening before the year-end freeze (the window opens inside the
// freeze: three steps).
func BenchmarkEvaluateRefusedByTime(b *testing.B) {
	p := mustPolicy(b, defaultBundle)
	r := exampleRequest()
	ctx := context.Background()
	for _, tc := range []struct {
		name, now string
		cooldown  bool
	}{
		{"cooldown", "2026-11-23T10:00:00+01:00", true},
		{"evening", "2026-11-23T19:00:00+01:00", false},
		{"before-freeze", "2026-12-23T19:00:00+01:00", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := validContext(at(b, tc.now))
			if tc.cooldown {
				c.Cooldown.LastAcceptedAt = c.Now.Add(-time.Minute)
			}
			if d := p.Evaluate(ctx, r, c); !d.NextCheckAt.Waiting {
				b.Fatalf("want a next check, got %+v", d)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Evaluate(ctx, r, c)
			}
		})
	}
}
