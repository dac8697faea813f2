package rego

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

// memControls is a ControlStore in memory, for the lifecycle rules; the
// stores themselves pass adapters/storetest.
type memControls struct {
	mu       sync.Mutex
	controls map[string]tollgate.Control
	reads    int // InForce calls
}

func (m *memControls) CreateControl(_ context.Context, c tollgate.Control) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.controls == nil {
		m.controls = map[string]tollgate.Control{}
	}
	m.controls[c.ID] = c
	return nil
}

func (m *memControls) Control(_ context.Context, id string) (tollgate.Control, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.controls[id]
	if !ok {
		return c, tollgate.Errorf(tollgate.ENotFound, "no control %q", id)
	}
	return c, nil
}

func (m *memControls) Controls(context.Context, tollgate.ControlFilter) ([]tollgate.Control, error) {
	panic("not used")
}

func (m *memControls) UpdateControl(_ context.Context, id string, change func(*tollgate.Control) (tollgate.ControlEvent, error)) (tollgate.Control, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.controls[id]
	if !ok {
		return c, tollgate.Errorf(tollgate.ENotFound, "no control %q", id)
	}
	c.Approvals = slices.Clone(c.Approvals)
	ev, err := change(&c)
	if err != nil {
		return tollgate.Control{}, err
	}
	c.History = append(slices.Clone(c.History), ev)
	m.controls[id] = c
	return c, nil
}

func (m *memControls) InForce(_ context.Context, at time.Time) ([]tollgate.Control, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	var out []tollgate.Control
	for _, c := range m.controls {
		if c.State.InForce() && c.ExpiresAt.After(at) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memControls) ExpireDue(context.Context, time.Time) ([]tollgate.Control, error) {
	panic("not used")
}

// controlsFixture is the default bundle, with two approvers for production
// and hotfixes during incidents, a clock the test moves and the gate.
type controlsFixture struct {
	t        *testing.T
	now      time.Time
	store    *memControls
	controls *Controls
	gate     *Gate
	ids      int
}

func newControlsFixture(t *testing.T) *controlsFixture {
	t.Helper()
	b, err := mustPolicy(t, defaultBundle).Bundle().WithConfig(map[string]any{
		"timezone":   "Europe/Paris",
		"exceptions": map[string]any{"approvals": map[string]any{"production": 2}, "max_days": 7},
		"incident":   map[string]any{"pipeline_types": []any{"hotfix"}, "max_hours": 12},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := Compile(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	f := &controlsFixture{t: t, now: at(t, "2026-11-23T10:00:00+01:00"), store: &memControls{}}
	clock := func() time.Time { return f.now }
	newID := func() string { f.ids++; return "ctl-" + string(rune('0'+f.ids)) }
	f.controls = &Controls{Store: f.store, Policies: fixedPolicy{policy}, Now: clock, NewID: newID, Refresh: time.Hour}
	f.gate = &Gate{Policies: fixedPolicy{policy}, Store: &gateStore{}, Licence: validLicence{}, Now: clock,
		NewID: func() string { return "decision" }, Controls: f.controls,
		Score: func([]tollgate.CVSSVector) (tollgate.ScoreReceipt, bool) { return tollgate.ScoreReceipt{}, false }}
	return f
}

type validLicence struct{}

func (validLicence) Check(time.Time) tollgate.Licence {
	return tollgate.Licence{Status: tollgate.LicenceValid}
}

func (f *controlsFixture) evaluate(r tollgate.Request) tollgate.Record {
	f.t.Helper()
	rec, err := f.gate.Evaluate(f.t.Context(), r, ScanSource{})
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

func featureBranch() tollgate.Request {
	r := exampleRequest()
	r.Branch = "feature/x"
	return r
}

func (f *controlsFixture) request(by string, r ExceptionRequest) tollgate.Control {
	f.t.Helper()
	c, err := f.controls.RequestException(f.t.Context(), by, r)
	if err != nil {
		f.t.Fatalf("RequestException: %v", err)
	}
	return c
}

func assertErr(t *testing.T, what string, err error, code, inMessage string) {
	t.Helper()
	if err == nil || tollgate.ErrorCode(err) != code || !strings.Contains(err.Error(), inMessage) {
		t.Fatalf("%s: error %v, want a %s error naming %q", what, err, code, inMessage)
	}
}

func TestExceptionNeedsTwoOtherApproversAndWaivesUntilItExpires(t *testing.T) {
	f := newControlsFixture(t)
	if d := f.evaluate(featureBranch()).Decision; d.Status != tollgate.Refused {
		t.Fatalf("before the exception: %+v", d)
	}
	e := f.request("alice", ExceptionRequest{Code: tollgate.CodeBranchNotAllowed, Project: "service-api",
		Environment: "production", Justification: "demo build for the board", ExpiresAt: f.now.Add(2 * time.Hour)})
	if e.State != tollgate.StateRequested || e.ApprovalsRequired != 2 {
		t.Fatalf("new exception: %+v", e)
	}

	_, err := f.controls.Approve(t.Context(), e.ID, "alice", "")
	assertErr(t, "self-approval", err, tollgate.EForbidden, "someone else must approve it")

	e, err = f.controls.Approve(t.Context(), e.ID, "bob", "ok")
	if err != nil || e.State != tollgate.StateRequested || len(e.Approvals) != 1 {
		t.Fatalf("first approval: %+v, %v", e, err)
	}
	if d := f.evaluate(featureBranch()).Decision; d.Status != tollgate.Refused {
		t.Fatalf("one approval of two must not waive anything: %+v", d)
	}
	_, err = f.controls.Approve(t.Context(), e.ID, "bob", "")
	assertErr(t, "the same approver twice", err, tollgate.EConflict, "already approved")

	e, err = f.controls.Approve(t.Context(), e.ID, "carol", "ok too")
	if err != nil || e.State != tollgate.StateApproved {
		t.Fatalf("second approval: %+v, %v", e, err)
	}
	if got := []string{e.History[0].Action, e.History[1].Action, e.History[2].Action}; !slices.Equal(got, []string{"create", "approve", "approve"}) ||
		e.History[2].By != "carol" || e.History[2].To != tollgate.StateApproved {
		t.Fatalf("history: %+v", e.History)
	}

	// Approved, and the change shows at once despite the long cache.
	rec := f.evaluate(featureBranch())
	d := rec.Decision
	if d.Status != tollgate.Accepted || len(d.Waived) != 1 || d.Waived[0].ExceptionID != e.ID || d.Waived[0].Code != tollgate.CodeBranchNotAllowed {
		t.Fatalf("with the approved exception: %+v", d)
	}
	if len(rec.Context.Exceptions) != 1 || rec.Context.Exceptions[0].ID != e.ID {
		t.Fatalf("the record does not keep the exception it applied: %+v", rec.Context.Exceptions)
	}

	// At its expiry it waives nothing, though nothing expired it in the store.
	f.now = e.ExpiresAt
	if d := f.evaluate(featureBranch()).Decision; d.Status != tollgate.Refused || len(d.Waived) != 0 {
		t.Fatalf("at the expiry: %+v", d)
	}

	// Revoked: no longer in force; revoking twice conflicts.
	f.now = e.CreatedAt.Add(time.Minute)
	if e, err = f.controls.Revoke(t.Context(), e.ID, "carol", "done"); err != nil || e.State != tollgate.StateRevoked {
		t.Fatalf("revoke: %+v, %v", e, err)
	}
	if d := f.evaluate(featureBranch()).Decision; d.Status != tollgate.Refused {
		t.Fatalf("after the revocation: %+v", d)
	}
	_, err = f.controls.Revoke(t.Context(), e.ID, "carol", "")
	assertErr(t, "revoke twice", err, tollgate.EConflict, "is revoked")
}

func TestExceptionRequestsAreChecked(t *testing.T) {
	f := newControlsFixture(t)
	ok := ExceptionRequest{Code: tollgate.CodeBranchNotAllowed, Project: "service-api", Justification: "why", ExpiresAt: f.now.Add(time.Hour)}
	for _, tc := range []struct {
		name   string
		change func(*ExceptionRequest)
		want   string
	}{
		{"no code", func(r *ExceptionRequest) { r.Code = "" }, "code is required"},
		{"licence", func(r *ExceptionRequest) { r.Code = tollgate.CodeLicenceExpired }, "licence_expired cannot be waived"},
		{"finding of another code", func(r *ExceptionRequest) { r.FindingID = "CVE-1" }, "finding_id goes with"},
		{"no project", func(r *ExceptionRequest) { r.Project = "" }, "project is required"},
		{"unknown project", func(r *ExceptionRequest) { r.Project = "nope" }, `project "nope" is not in the projects registry`},
		{"unknown pipeline", func(r *ExceptionRequest) { r.Pipeline = "nope" }, `has no pipeline "nope"`},
		{"bad branch glob", func(r *ExceptionRequest) { r.Branch = "release/[" }, "not a valid glob"},
		{"no justification", func(r *ExceptionRequest) { r.Justification = " " }, "justification is required"},
		{"no expiry", func(r *ExceptionRequest) { r.ExpiresAt = time.Time{} }, "expires_at is required"},
		{"past expiry", func(r *ExceptionRequest) { r.ExpiresAt = f.now }, "not in the future"},
		{"beyond max_days", func(r *ExceptionRequest) { r.ExpiresAt = f.now.Add(8 * 24 * time.Hour) }, "at most 168h0m0s"},
	} {
		r := ok
		tc.change(&r)
		_, err := f.controls.RequestException(t.Context(), "alice", r)
		assertErr(t, tc.name, err, tollgate.EInvalid, tc.want)
	}
	if len(f.store.controls) != 0 {
		t.Fatalf("%d controls stored by bad requests", len(f.store.controls))
	}
	// A request nobody approved in time cannot be approved after its expiry.
	e := f.request("alice", ok)
	f.now = ok.ExpiresAt
	_, err := f.controls.Approve(t.Context(), e.ID, "bob", "")
	assertErr(t, "approve after the expiry", err, tollgate.EConflict, "expired")
	if _, err := f.controls.Reject(t.Context(), e.ID, "alice", "withdrawn"); err != nil {
		t.Fatalf("the requester withdraws: %v", err)
	}
}

func TestBreakGlassLetsOnePipelineThroughAFreeze(t *testing.T) {
	f := newControlsFixture(t)
	// An emergency freeze of production.
	if _, err := f.controls.Freeze(t.Context(), "ops", "payment provider outage", []string{"production"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	d := f.evaluate(exampleRequest()).Decision
	if d.Status != tollgate.Refused || d.Reasons[0].Code != tollgate.CodeFreezeActive || !strings.Contains(d.Reasons[0].Message, "payment provider outage") {
		t.Fatalf("during the emergency freeze: %+v", d)
	}

	glass := ExceptionRequest{Code: tollgate.CodeFreezeActive, Project: "service-api", Pipeline: "deploy-prod",
		Justification: "the fix for the outage", ExpiresAt: f.now.Add(time.Hour)}
	for name, tc := range map[string]struct {
		change func(*ExceptionRequest)
		want   string
	}{
		"not a freeze code": {func(r *ExceptionRequest) { r.Code = tollgate.CodeBranchNotAllowed }, "waives freeze_active"},
		"no pipeline":       {func(r *ExceptionRequest) { r.Pipeline = "" }, "pipeline is required"},
		"too long":          {func(r *ExceptionRequest) { r.ExpiresAt = f.now.Add(5 * time.Hour) }, "at most 4h0m0s"},
	} {
		r := glass
		tc.change(&r)
		_, err := f.controls.BreakGlass(t.Context(), "oncall", r)
		assertErr(t, name, err, tollgate.EInvalid, tc.want)
	}
	e, err := f.controls.BreakGlass(t.Context(), "oncall", glass)
	if err != nil || e.State != tollgate.StateApproved || e.ExceptionKind != tollgate.ExceptionBreakGlass {
		t.Fatalf("break-glass: %+v, %v", e, err)
	}
	d = f.evaluate(exampleRequest()).Decision
	if d.Status != tollgate.Accepted || d.Waived[0].ExceptionID != e.ID {
		t.Fatalf("with the break-glass: %+v", d)
	}
	other := exampleRequest()
	other.Pipeline = "hotfix-prod"
	other.Branch = "hotfix/1"
	if d := f.evaluate(other).Decision; d.Status != tollgate.Refused {
		t.Fatalf("another pipeline goes through the break-glass: %+v", d)
	}
}

func TestEmergencyFreezeAndIncident(t *testing.T) {
	f := newControlsFixture(t)
	_, err := f.controls.Freeze(t.Context(), "ops", "", nil, time.Hour)
	assertErr(t, "freeze without reason", err, tollgate.EInvalid, "reason is required")
	_, err = f.controls.Freeze(t.Context(), "ops", "x", nil, 8*24*time.Hour)
	assertErr(t, "freeze too long", err, tollgate.EInvalid, "too long")
	_, err = f.controls.Freeze(t.Context(), "ops", "x", []string{}, time.Hour)
	assertErr(t, "freeze of no environment", err, tollgate.EInvalid, "empty list")

	frz, err := f.controls.Freeze(t.Context(), "ops", "db migration", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := f.evaluate(exampleRequest()).Decision; d.Status != tollgate.Refused {
		t.Fatalf("during the freeze: %+v", d)
	}
	if frz, err = f.controls.Lift(t.Context(), tollgate.KindFreeze, frz.ID, "ops", "done early"); err != nil || frz.State != tollgate.StateLifted {
		t.Fatalf("lift: %+v %v", frz, err)
	}
	if d := f.evaluate(exampleRequest()).Decision; d.Status != tollgate.Accepted {
		t.Fatalf("after the lift: %+v", d)
	}
	_, err = f.controls.Lift(t.Context(), tollgate.KindIncident, frz.ID, "ops", "")
	assertErr(t, "lift a freeze as an incident", err, tollgate.ENotFound, "it is a freeze")

	_, err = f.controls.StartIncident(t.Context(), "ops", "checkout down", 13*time.Hour)
	assertErr(t, "incident beyond max_hours", err, tollgate.EInvalid, "at most 12h0m0s")
	inc, err := f.controls.StartIncident(t.Context(), "ops", "checkout down", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.controls.StartIncident(t.Context(), "ops", "another", time.Hour)
	assertErr(t, "a second incident", err, tollgate.EConflict, "already on")

	d := f.evaluate(exampleRequest()).Decision
	if d.Status != tollgate.Refused || d.Reasons[0].Code != "incident_mode" || d.IncidentID != inc.ID {
		t.Fatalf("a deploy during the incident: %+v", d)
	}
	hotfix := exampleRequest()
	hotfix.Pipeline, hotfix.Branch = "hotfix-prod", "hotfix/1"
	if d := f.evaluate(hotfix).Decision; d.Status != tollgate.Accepted || d.IncidentID != inc.ID {
		t.Fatalf("a hotfix during the incident: %+v", d)
	}
	raw, _ := json.Marshal(f.evaluate(hotfix).Decision)
	if !strings.Contains(string(raw), `"incident_id":"`+inc.ID+`"`) {
		t.Fatalf("the decision does not carry the incident: %s", raw)
	}
	f.now = inc.ExpiresAt
	if d := f.evaluate(exampleRequest()).Decision; d.Status != tollgate.Accepted || d.IncidentID != "" {
		t.Fatalf("at the incident's expiry: %+v", d)
	}
}

func TestControlsCache(t *testing.T) {
	f := newControlsFixture(t)
	f.controls.Refresh = time.Hour
	for range 3 {
		if _, err := f.controls.InForce(t.Context(), f.now); err != nil {
			t.Fatal(err)
		}
	}
	if f.store.reads != 1 {
		t.Fatalf("%d store reads for 3 lookups within Refresh, want 1", f.store.reads)
	}
	f.controls.Invalidate()
	if _, err := f.controls.InForce(t.Context(), f.now); err != nil || f.store.reads != 2 {
		t.Fatalf("after Invalidate: %d reads, %v", f.store.reads, err)
	}
	f.controls.Refresh = 0
	f.controls.InForce(t.Context(), f.now)
	f.controls.InForce(t.Context(), f.now)
	if f.store.reads != 4 {
		t.Fatalf("Refresh 0 must read every time: %d reads", f.store.reads)
	}
}
