package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate/tollgate"
)

// controls returns the store under test as a tollgate.ControlStore: every
// store must be one.
func (h *harness) controls() tollgate.ControlStore {
	h.t.Helper()
	s, ok := h.store.(tollgate.ControlStore)
	if !ok {
		h.t.Fatalf("%T does not implement tollgate.ControlStore", h.store)
	}
	return s
}

// exception is a requested waiver created at created (the creation event
// with it), expiring at expires. Its times are in base's zone, not UTC, and
// carry nanoseconds.
func exception(created, expires time.Time) tollgate.Control {
	return tollgate.Control{
		ID:                uuid.Must(uuid.NewV7()).String(),
		Kind:              tollgate.KindException,
		State:             tollgate.StateRequested,
		Reason:            "CVE-2021-44228 is not reachable: JNDI lookups are disabled",
		CreatedBy:         "jane",
		CreatedAt:         created,
		ExpiresAt:         expires,
		ExceptionKind:     tollgate.ExceptionWaiver,
		Code:              "risk_threshold_exceeded",
		FindingID:         "CVE-2021-44228",
		Project:           "service-api",
		Pipeline:          "deploy-prod",
		Environment:       "production",
		Branch:            "release/*",
		ApprovalsRequired: 2,
		History: []tollgate.ControlEvent{{At: created, By: "jane", Action: tollgate.ActionCreate,
			To: tollgate.StateRequested, Comment: "until the upgrade ships"}},
	}
}

// freeze is an active emergency freeze.
func freeze(created, expires time.Time, envs ...string) tollgate.Control {
	return tollgate.Control{
		ID: uuid.Must(uuid.NewV7()).String(), Kind: tollgate.KindFreeze, State: tollgate.StateActive,
		Reason: "payment provider outage", CreatedBy: "ops", CreatedAt: created, ExpiresAt: expires,
		Environments: envs,
		History: []tollgate.ControlEvent{{At: created, By: "ops", Action: tollgate.ActionCreate,
			To: tollgate.StateActive}},
	}
}

// incidentAt is an incident on from created to expires.
func incidentAt(created, expires time.Time) tollgate.Control {
	return tollgate.Control{ID: uuid.Must(uuid.NewV7()).String(), Kind: tollgate.KindIncident,
		State: tollgate.StateActive, Reason: "INC-42", CreatedBy: "ops", CreatedAt: created, ExpiresAt: expires,
		History: []tollgate.ControlEvent{{At: created, By: "ops", Action: tollgate.ActionCreate, To: tollgate.StateActive}}}
}

// inState is c created directly in state (a break-glass is created
// approved, say), with its creation event saying so.
func inState(c tollgate.Control, state tollgate.ControlState) tollgate.Control {
	c.State = state
	c.History = []tollgate.ControlEvent{{At: c.CreatedAt, By: c.CreatedBy, Action: tollgate.ActionCreate, To: state}}
	return c
}

// utc is c as a store returns it: every time in UTC.
func utc(c tollgate.Control) tollgate.Control {
	c.CreatedAt, c.ExpiresAt = c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	c.Approvals = slices.Clone(c.Approvals)
	for i := range c.Approvals {
		c.Approvals[i].At = c.Approvals[i].At.UTC()
	}
	c.History = slices.Clone(c.History)
	for i := range c.History {
		c.History[i].At = c.History[i].At.UTC()
	}
	return c
}

// listed is c as Controls, InForce and ExpireDue return it: without history.
func listed(c tollgate.Control) tollgate.Control {
	c = utc(c)
	c.History = nil
	return c
}

func createControl(t *testing.T, s tollgate.ControlStore, c tollgate.Control) tollgate.Control {
	t.Helper()
	if err := s.CreateControl(t.Context(), c); err != nil {
		t.Fatalf("CreateControl(%s): %v", c.ID, err)
	}
	return c
}

func getControl(t *testing.T, s tollgate.ControlStore, id string) tollgate.Control {
	t.Helper()
	c, err := s.Control(t.Context(), id)
	if err != nil {
		t.Fatalf("Control(%s): %v", id, err)
	}
	return c
}

func listControls(t *testing.T, s tollgate.ControlStore, f tollgate.ControlFilter) []tollgate.Control {
	t.Helper()
	cs, err := s.Controls(t.Context(), f)
	if err != nil {
		t.Fatalf("Controls(%+v): %v", f, err)
	}
	return cs
}

func controlIDs(cs []tollgate.Control) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// approve is the change of an approval: from requested only.
func approve(by string, at time.Time) func(*tollgate.Control) (tollgate.ControlEvent, error) {
	return func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		c.Approvals = append(c.Approvals, tollgate.Approval{By: by, At: at})
		return c.Transition(tollgate.ActionApprove, by, "looks right", at, tollgate.StateApproved, tollgate.StateRequested)
	}
}

func testControlRoundTrip(t *testing.T, h *harness) {
	s := h.controls()
	want := createControl(t, s, exception(base, base.Add(72*time.Hour+1)))
	got := getControl(t, s, want.ID)
	assertJSON(t, "stored control", got, utc(want))
	if !got.CreatedAt.Equal(base) || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.History[0].At.Equal(base) {
		t.Fatalf("times %s, %s, %s; want %s, %s, %s to the nanosecond",
			got.CreatedAt, got.ExpiresAt, got.History[0].At, base, want.ExpiresAt, base)
	}

	// A freeze of every environment (none listed) and one of two.
	for _, f := range []tollgate.Control{freeze(base, base.Add(time.Hour)), freeze(base, base.Add(time.Hour), "production", "staging")} {
		createControl(t, s, f)
		assertJSON(t, "stored freeze", getControl(t, s, f.ID), utc(f))
	}

	// The history comes back oldest first, each step once.
	first := base.Add(time.Minute)
	if _, err := s.UpdateControl(t.Context(), want.ID, approve("bob", first)); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if _, err := s.UpdateControl(t.Context(), want.ID, func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		return c.Transition(tollgate.ActionRevoke, "carol", "fixed", first.Add(time.Second), tollgate.StateRevoked, tollgate.StateApproved)
	}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	got = getControl(t, s, want.ID)
	var steps []string
	for _, ev := range got.History {
		steps = append(steps, fmt.Sprintf("%s:%s>%s", ev.Action, ev.From, ev.To))
	}
	if wantSteps := []string{"create:>requested", "approve:requested>approved", "revoke:approved>revoked"}; !slices.Equal(steps, wantSteps) {
		t.Fatalf("history %q, want %q", steps, wantSteps)
	}

	// An ID is stored once: a second control under it is refused, the
	// first kept whole.
	again := freeze(base, base.Add(time.Hour))
	again.ID = want.ID
	assertCode(t, "CreateControl with an ID already stored", s.CreateControl(t.Context(), again), tollgate.EInternal)
	assertJSON(t, "control after the refused duplicate", getControl(t, s, want.ID), got)
}

func testControlNotFound(t *testing.T, h *harness) {
	s := h.controls()
	_, err := s.Control(t.Context(), "no-such-control")
	assertCode(t, "Control(unknown)", err, tollgate.ENotFound)
	called := false
	_, err = s.UpdateControl(t.Context(), "no-such-control", func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		called = true
		return approve("bob", base)(c)
	})
	assertCode(t, "UpdateControl(unknown)", err, tollgate.ENotFound)
	if called {
		t.Fatal("UpdateControl(unknown) ran the change")
	}
}

func testControlInvalid(t *testing.T, h *harness) {
	s := h.controls()
	for name, mutate := range map[string]func(*tollgate.Control){
		"no ID":             func(c *tollgate.Control) { c.ID = "" },
		"unknown kind":      func(c *tollgate.Control) { c.Kind = "waiver" },
		"unknown state":     func(c *tollgate.Control) { c.State = "pending" },
		"no creation time":  func(c *tollgate.Control) { c.CreatedAt = time.Time{} },
		"no expiry":         func(c *tollgate.Control) { c.ExpiresAt = time.Time{} },
		"expiry past 2262":  func(c *tollgate.Control) { c.ExpiresAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) },
		"no history":        func(c *tollgate.Control) { c.History = nil },
		"history elsewhere": func(c *tollgate.Control) { c.History[0].To = tollgate.StateApproved },
		"event time":        func(c *tollgate.Control) { c.History[0].At = time.Time{} },
		"event action":      func(c *tollgate.Control) { c.History[0].Action = "" },
	} {
		c := exception(base, base.Add(time.Hour))
		mutate(&c)
		assertCode(t, "CreateControl("+name+")", s.CreateControl(t.Context(), c), tollgate.EInternal)
	}
	if cs := listControls(t, s, tollgate.ControlFilter{}); len(cs) != 0 {
		t.Fatalf("invalid controls were stored: %q", controlIDs(cs))
	}
}

func testControlList(t *testing.T, h *harness) {
	s := h.controls()
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	waiver := createControl(t, s, exception(at(0), at(600)))
	other := exception(at(1), at(600))
	other.Project, other.Code = "billing", "cooldown"
	other = createControl(t, s, other)
	sameCode := exception(at(2), at(600))
	sameCode.Project = "billing"
	sameCode = createControl(t, s, sameCode)
	glass := createControl(t, s, inState(exception(at(3), at(30)), tollgate.StateApproved))
	fr := createControl(t, s, freeze(at(4), at(60), "production"))
	incident := createControl(t, s, incidentAt(at(5), at(120)))
	// Two created at the same instant: the ID breaks the tie, the same way
	// on every call.
	twinA := createControl(t, s, freeze(at(6), at(60)))
	twinB := createControl(t, s, freeze(at(6), at(60)))
	twins := []string{twinA.ID, twinB.ID}
	slices.Sort(twins)
	slices.Reverse(twins)

	all := listControls(t, s, tollgate.ControlFilter{})
	wantAll := append(twins, incident.ID, fr.ID, glass.ID, sameCode.ID, other.ID, waiver.ID)
	if got := controlIDs(all); !slices.Equal(got, wantAll) {
		t.Fatalf("Controls() = %q, want newest first %q", got, wantAll)
	}
	for _, c := range all {
		if c.History != nil {
			t.Fatalf("Controls() returned %s with its history", c.ID)
		}
	}
	assertJSON(t, "listed control", all[len(all)-1], listed(waiver))

	for _, tc := range []struct {
		f    tollgate.ControlFilter
		want []tollgate.Control
	}{
		{tollgate.ControlFilter{Kind: tollgate.KindException}, []tollgate.Control{glass, sameCode, other, waiver}},
		{tollgate.ControlFilter{Kind: tollgate.KindIncident}, []tollgate.Control{incident}},
		{tollgate.ControlFilter{State: tollgate.StateRequested}, []tollgate.Control{sameCode, other, waiver}},
		{tollgate.ControlFilter{State: tollgate.StateApproved}, []tollgate.Control{glass}},
		{tollgate.ControlFilter{State: tollgate.StateRevoked}, nil},
		{tollgate.ControlFilter{Project: "billing"}, []tollgate.Control{sameCode, other}},
		{tollgate.ControlFilter{Code: "risk_threshold_exceeded"}, []tollgate.Control{glass, sameCode, waiver}},
		{tollgate.ControlFilter{Project: "billing", Code: "risk_threshold_exceeded"}, []tollgate.Control{sameCode}},
		{tollgate.ControlFilter{Kind: tollgate.KindException, State: tollgate.StateRequested, Project: "service-api"}, []tollgate.Control{waiver}},
		{tollgate.ControlFilter{Kind: tollgate.KindFreeze, Project: "service-api"}, nil},
		{tollgate.ControlFilter{Limit: 2}, nil}, // checked below
	} {
		got := controlIDs(listControls(t, s, tc.f))
		want := controlIDs(tc.want)
		if tc.f.Limit == 2 {
			want = wantAll[:2]
		}
		if !slices.Equal(got, want) {
			t.Errorf("Controls(%+v) = %q, want %q", tc.f, got, want)
		}
	}
}

func testControlLimit(t *testing.T, h *harness) {
	s := h.controls()
	n := tollgate.MaxPageSize + 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 10 {
		wg.Go(func() {
			for i := w; i < n; i += 10 {
				if err := s.CreateControl(t.Context(), freeze(base.Add(time.Duration(i)), base.Add(time.Hour))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("CreateControl: %v", err)
	}
	for _, tc := range []struct{ limit, want int }{
		{0, tollgate.DefaultPageSize},
		{-5, tollgate.DefaultPageSize},
		{1, 1},
		{tollgate.MaxPageSize, tollgate.MaxPageSize},
		{tollgate.MaxPageSize + 100, tollgate.MaxPageSize},
	} {
		cs := listControls(t, s, tollgate.ControlFilter{Limit: tc.limit})
		if len(cs) != tc.want {
			t.Errorf("limit %d: %d controls, want %d", tc.limit, len(cs), tc.want)
		}
		for i := 1; i < len(cs); i++ {
			if !cs[i].CreatedAt.Before(cs[i-1].CreatedAt) {
				t.Fatalf("limit %d: control %d created %s, not before the one listed before it (%s)", tc.limit, i, cs[i].CreatedAt, cs[i-1].CreatedAt)
			}
		}
	}
}

func testControlUpdate(t *testing.T, h *harness) {
	s := h.controls()
	c := createControl(t, s, exception(base, base.Add(time.Hour)))
	at := base.Add(time.Minute)
	var seen tollgate.Control
	got, err := s.UpdateControl(t.Context(), c.ID, func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		seen = *c
		c.History = nil // the store's: a change cannot rewrite it
		return approve("bob", at)(c)
	})
	if err != nil {
		t.Fatalf("UpdateControl: %v", err)
	}
	assertJSON(t, "control the change was given", seen, utc(c))

	want := utc(c)
	want.State = tollgate.StateApproved
	want.Approvals = []tollgate.Approval{{By: "bob", At: at.UTC()}}
	want.History = append(want.History, tollgate.ControlEvent{At: at.UTC(), By: "bob", Action: tollgate.ActionApprove,
		From: tollgate.StateRequested, To: tollgate.StateApproved, Comment: "looks right"})
	assertJSON(t, "UpdateControl's result", got, want)
	assertJSON(t, "control after UpdateControl", getControl(t, s, c.ID), want)
	if cs := listControls(t, s, tollgate.ControlFilter{State: tollgate.StateApproved}); len(cs) != 1 || cs[0].ID != c.ID {
		t.Fatalf("Controls(approved) = %q, want the updated control: the state column must follow", controlIDs(cs))
	}

	// A change that breaks what the store keeps is refused, and writes
	// nothing: moving the ID, an event that does not tell the move made.
	for name, change := range map[string]func(*tollgate.Control) (tollgate.ControlEvent, error){
		"new ID": func(c *tollgate.Control) (tollgate.ControlEvent, error) {
			ev, err := c.Transition(tollgate.ActionRevoke, "carol", "", at, tollgate.StateRevoked, tollgate.StateApproved)
			c.ID = "another"
			return ev, err
		},
		"event of another move": func(c *tollgate.Control) (tollgate.ControlEvent, error) {
			c.State = tollgate.StateRevoked
			return tollgate.ControlEvent{At: at, By: "carol", Action: tollgate.ActionRevoke, From: tollgate.StateRequested, To: tollgate.StateRevoked}, nil
		},
		"event without time": func(c *tollgate.Control) (tollgate.ControlEvent, error) {
			return c.Transition(tollgate.ActionRevoke, "carol", "", time.Time{}, tollgate.StateRevoked, tollgate.StateApproved)
		},
		"no expiry": func(c *tollgate.Control) (tollgate.ControlEvent, error) {
			c.ExpiresAt = time.Time{}
			return c.Transition(tollgate.ActionRevoke, "carol", "", at, tollgate.StateRevoked, tollgate.StateApproved)
		},
	} {
		_, err := s.UpdateControl(t.Context(), c.ID, change)
		assertCode(t, "UpdateControl("+name+")", err, tollgate.EInternal)
		assertJSON(t, "control after UpdateControl("+name+")", getControl(t, s, c.ID), want)
	}
}

func testControlFailingChange(t *testing.T, h *harness) {
	s := h.controls()
	c := createControl(t, s, exception(base, base.Add(time.Hour)))
	want := getControl(t, s, c.ID)
	selfApproval := tollgate.Errorf(tollgate.EForbidden, "jane cannot approve her own exception")
	plain := errors.New("the policy is not loaded")
	for _, wantErr := range []error{selfApproval, plain} {
		_, err := s.UpdateControl(t.Context(), c.ID, func(c *tollgate.Control) (tollgate.ControlEvent, error) {
			// Changed, then failed: none of it may be written.
			c.State, c.Reason, c.ExpiresAt = tollgate.StateApproved, "changed", base.Add(48*time.Hour)
			c.Approvals = append(c.Approvals, tollgate.Approval{By: "jane", At: base})
			return tollgate.ControlEvent{}, wantErr
		})
		if err != wantErr {
			t.Fatalf("UpdateControl with a failing change returned %v (%T), want the change's error unchanged", err, err)
		}
		assertJSON(t, "control after a failing change", getControl(t, s, c.ID), want)
	}

	// The conflict of Control.Transition comes back as it is too.
	if _, err := s.UpdateControl(t.Context(), c.ID, func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		return c.Transition(tollgate.ActionLift, "ops", "", base, tollgate.StateLifted, tollgate.StateActive)
	}); tollgate.ErrorCode(err) != tollgate.EConflict {
		t.Fatalf("lifting an exception: %v, want a conflict", err)
	}
	assertJSON(t, "control after a conflict", getControl(t, s, c.ID), want)
	if cs := listControls(t, s, tollgate.ControlFilter{State: tollgate.StateApproved}); len(cs) != 0 {
		t.Fatalf("Controls(approved) = %q after failed changes, want none", controlIDs(cs))
	}
}

// states is a control of each state, all expiring at expires.
func states(created, expires time.Time) []tollgate.Control {
	return []tollgate.Control{
		inState(exception(created, expires), tollgate.StateRequested),
		inState(exception(created, expires), tollgate.StateApproved),
		inState(exception(created, expires), tollgate.StateRejected),
		inState(exception(created, expires), tollgate.StateRevoked),
		inState(exception(created, expires), tollgate.StateExpired),
		inState(freeze(created, expires), tollgate.StateActive),
		inState(freeze(created, expires), tollgate.StateLifted),
		inState(freeze(created, expires), tollgate.StateExpired),
	}
}

func testControlInForce(t *testing.T, h *harness) {
	s := h.controls()
	at := base.Add(time.Hour)
	var want []string
	for _, expires := range []time.Time{at.Add(-time.Minute), at, at.Add(time.Nanosecond), at.Add(24 * time.Hour)} {
		for _, c := range states(base, expires) {
			createControl(t, s, c)
			if c.State.InForce() && expires.After(at) {
				want = append(want, c.ID)
			}
		}
	}
	got, err := s.InForce(t.Context(), at)
	if err != nil {
		t.Fatalf("InForce: %v", err)
	}
	ids := controlIDs(got)
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("InForce(%s) = %q, want the approved and active ones expiring after it (not at it): %q", at, ids, want)
	}
	for _, c := range got {
		if c.History != nil {
			t.Fatalf("InForce returned %s with its history", c.ID)
		}
	}
	// Nothing is in force once everything has expired.
	if got, err := s.InForce(t.Context(), at.Add(24*time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("InForce at the last expiry = %q, %v; want none", controlIDs(got), err)
	}
}

func testControlExpireDue(t *testing.T, h *harness) {
	s := h.controls()
	at := base.Add(time.Hour)
	due := map[string]tollgate.Control{}
	var all []tollgate.Control
	for _, expires := range []time.Time{at.Add(-time.Minute), at, at.Add(time.Nanosecond)} {
		for _, c := range states(base, expires) {
			createControl(t, s, c)
			all = append(all, c)
			if c.State.Live() && !expires.After(at) {
				due[c.ID] = c
			}
		}
	}
	if len(due) != 6 {
		t.Fatalf("test setup: %d due controls, want 6", len(due))
	}
	got, err := s.ExpireDue(t.Context(), at)
	if err != nil {
		t.Fatalf("ExpireDue: %v", err)
	}
	if len(got) != len(due) {
		t.Fatalf("ExpireDue expired %q, want the %d live ones expiring at or before %s", controlIDs(got), len(due), at)
	}
	wantEvent := func(from tollgate.ControlState) tollgate.ControlEvent {
		return tollgate.ControlEvent{At: at.UTC(), By: tollgate.WorkerIdentity, Action: tollgate.ActionExpire,
			From: from, To: tollgate.StateExpired}
	}
	for _, c := range got {
		before, ok := due[c.ID]
		if !ok {
			t.Fatalf("ExpireDue expired %s, which was not due", c.ID)
		}
		want := listed(before)
		want.State = tollgate.StateExpired
		assertJSON(t, "expired control", c, want)
		stored := getControl(t, s, c.ID)
		want = utc(before)
		want.State = tollgate.StateExpired
		want.History = append(want.History, wantEvent(before.State))
		assertJSON(t, "stored expired control", stored, want)
	}
	// The others did not move.
	for _, c := range all {
		if _, ok := due[c.ID]; !ok {
			assertJSON(t, "control not due", getControl(t, s, c.ID), utc(c))
		}
	}

	if again, err := s.ExpireDue(t.Context(), at); err != nil || len(again) != 0 {
		t.Fatalf("second ExpireDue = %q, %v; want nothing", controlIDs(again), err)
	}
	// One nanosecond later, the last live ones are due.
	later, err := s.ExpireDue(t.Context(), at.Add(time.Nanosecond))
	if err != nil || len(later) != 3 {
		t.Fatalf("ExpireDue a nanosecond later = %q, %v; want the requested and approved exception and the active freeze", controlIDs(later), err)
	}
}

// expireRace creates n due controls and has workers goroutines call
// ExpireDue on stores at once, several rounds; it checks each control was
// expired by exactly one call and recorded exactly one expire event.
func expireRace(t *testing.T, stores []tollgate.ControlStore, n, workers int) {
	t.Helper()
	at := base.Add(time.Hour)
	for round := range 3 {
		ids := map[string]bool{}
		for i := range n {
			var c tollgate.Control
			if i%2 == 0 {
				c = exception(base, at.Add(-time.Duration(i)))
			} else {
				c = freeze(base, at.Add(-time.Duration(i)))
			}
			createControl(t, stores[i%len(stores)], c)
			ids[c.ID] = true
		}
		var (
			mu      sync.Mutex
			expired = map[string]int{}
			wg      sync.WaitGroup
			start   = make(chan struct{})
		)
		for w := range workers {
			wg.Go(func() {
				<-start
				got, err := stores[w%len(stores)].ExpireDue(t.Context(), at)
				if err != nil {
					t.Errorf("round %d: ExpireDue %d: %v", round, w, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, c := range got {
					expired[c.ID]++
				}
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if len(expired) != n {
			t.Fatalf("round %d: %d of %d due controls expired", round, len(expired), n)
		}
		for id, count := range expired {
			if !ids[id] || count != 1 {
				t.Fatalf("round %d: control %s returned by %d ExpireDue calls, want exactly 1", round, id, count)
			}
			var events int
			for _, ev := range getControl(t, stores[0], id).History {
				if ev.Action == tollgate.ActionExpire {
					events++
				}
			}
			if events != 1 {
				t.Fatalf("round %d: control %s has %d expire events, want 1", round, id, events)
			}
		}
	}
}

func testControlConcurrentExpire(t *testing.T, h *harness) {
	expireRace(t, []tollgate.ControlStore{h.controls()}, 20, 4)
}

// updateRace has n goroutines approve one requested control at once through
// stores: exactly one may, the others get Transition's conflict.
func updateRace(t *testing.T, stores []tollgate.ControlStore, n int) {
	t.Helper()
	for round := range 3 {
		c := createControl(t, stores[0], exception(base, base.Add(time.Hour)))
		ok := simultaneously(t, n, fmt.Sprintf("round %d: approval", round), func(i int) error {
			_, err := stores[i%len(stores)].UpdateControl(t.Context(), c.ID, approve(fmt.Sprintf("approver-%d", i), base.Add(time.Minute)))
			return err
		})
		if ok != 1 {
			t.Fatalf("round %d: %d of %d simultaneous approvals succeeded, want exactly 1", round, ok, n)
		}
		got := getControl(t, stores[len(stores)-1], c.ID)
		if len(got.History) != 2 || len(got.Approvals) != 1 || got.State != tollgate.StateApproved {
			t.Fatalf("round %d: control after the race: state %s, %d approvals, %d events; want approved, 1, 2", round, got.State, len(got.Approvals), len(got.History))
		}
	}
}

func testControlConcurrentUpdate(t *testing.T, h *harness) {
	updateRace(t, []tollgate.ControlStore{h.controls()}, 8)
}

func testControlDurable(t *testing.T, h *harness) {
	s := h.controls()
	at := base.Add(time.Hour)
	approved := createControl(t, s, exception(base, at.Add(time.Hour)))
	if _, err := s.UpdateControl(t.Context(), approved.ID, approve("bob", base.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	expired := createControl(t, s, freeze(base, at))
	if _, err := s.ExpireDue(t.Context(), at); err != nil {
		t.Fatal(err)
	}
	wantApproved := getControl(t, s, approved.ID)
	wantExpired := getControl(t, s, expired.ID)

	h.reopen()
	s = h.controls()
	assertJSON(t, "approved control after reopen", getControl(t, s, approved.ID), wantApproved)
	assertJSON(t, "expired control after reopen", getControl(t, s, expired.ID), wantExpired)
	inForce, err := s.InForce(t.Context(), at)
	if err != nil || len(inForce) != 1 || inForce[0].ID != approved.ID {
		t.Fatalf("InForce after reopen = %q, %v; want the approved exception", controlIDs(inForce), err)
	}
	// Numbering goes on where it was.
	if _, err := s.UpdateControl(t.Context(), approved.ID, func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		return c.Transition(tollgate.ActionRevoke, "carol", "", at, tollgate.StateRevoked, tollgate.StateApproved)
	}); err != nil {
		t.Fatalf("revoke after reopen: %v", err)
	}
	if got := getControl(t, s, approved.ID); len(got.History) != 3 || got.History[2].Action != tollgate.ActionRevoke {
		t.Fatalf("history after reopen and revoke: %+v", got.History)
	}
}

func testControlClosed(t *testing.T, h *harness) {
	s := h.controls()
	c := createControl(t, s, exception(base, base.Add(time.Hour)))
	h.close()
	_, err := s.Control(t.Context(), c.ID)
	assertCode(t, "Control after Close", err, tollgate.EUnavailable)
	_, err = s.Controls(t.Context(), tollgate.ControlFilter{})
	assertCode(t, "Controls after Close", err, tollgate.EUnavailable)
	_, err = s.InForce(t.Context(), base)
	assertCode(t, "InForce after Close", err, tollgate.EUnavailable)
	_, err = s.ExpireDue(t.Context(), base.Add(2*time.Hour))
	assertCode(t, "ExpireDue after Close", err, tollgate.EUnavailable)
	called := false
	_, err = s.UpdateControl(t.Context(), c.ID, func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		called = true
		return approve("bob", base)(c)
	})
	assertCode(t, "UpdateControl after Close", err, tollgate.EUnavailable)
	if called {
		t.Fatal("UpdateControl after Close ran the change")
	}
	assertCode(t, "CreateControl after Close", s.CreateControl(t.Context(), exception(base, base.Add(time.Hour))), tollgate.EUnavailable)
}

// RaceReplicas runs the races of the suite (ExpireDue, UpdateControl on
// one control, starting an incident) across several stores sharing one
// database: replicas, each control expired and approved once in all, one
// incident started in all.
func RaceReplicas(t *testing.T, replicas ...tollgate.ControlStore) {
	t.Run("ExpireDue", func(t *testing.T) { expireRace(t, replicas, 30, 2*len(replicas)) })
	t.Run("UpdateControl", func(t *testing.T) { updateRace(t, replicas, 4*len(replicas)) })
	t.Run("StartIncident", func(t *testing.T) { incidentRace(t, replicas, 4*len(replicas)) })
}

// An incident cannot start while another is on: EConflict, nothing
// written. One that ended, or expired, does not count.
func testControlOneIncident(t *testing.T, h *harness) {
	s := h.controls()
	first := createControl(t, s, incidentAt(base, base.Add(time.Hour)))
	second := incidentAt(base.Add(10*time.Minute), base.Add(2*time.Hour))
	assertCode(t, "CreateControl of a second incident", s.CreateControl(t.Context(), second), tollgate.EConflict)
	if _, err := s.Control(t.Context(), second.ID); tollgate.ErrorCode(err) != tollgate.ENotFound {
		t.Fatalf("the refused incident was stored: %v", err)
	}
	createControl(t, s, incidentAt(base.Add(time.Hour), base.Add(3*time.Hour))) // the first has expired
	ended := createControl(t, s, inState(incidentAt(base.Add(4*time.Hour), base.Add(5*time.Hour)), tollgate.StateLifted))
	createControl(t, s, incidentAt(ended.CreatedAt.Add(time.Minute), base.Add(6*time.Hour)))
	createControl(t, s, freeze(first.CreatedAt.Add(time.Minute), base.Add(time.Hour))) // other kinds are not limited
}

func testControlConcurrentIncidents(t *testing.T, h *harness) {
	incidentRace(t, []tollgate.ControlStore{h.controls()}, 8)
}

// incidentRace starts n incidents at once across stores, three times (each
// round after the previous one's incidents expired): exactly one starts.
func incidentRace(t *testing.T, stores []tollgate.ControlStore, n int) {
	t.Helper()
	for round := range 3 {
		at := base.Add(time.Duration(round) * 24 * time.Hour)
		ok := simultaneously(t, n, fmt.Sprintf("round %d: incident", round), func(i int) error {
			return stores[i%len(stores)].CreateControl(t.Context(), incidentAt(at, at.Add(time.Hour)))
		})
		if ok != 1 {
			t.Fatalf("round %d: %d of %d simultaneous incidents started, want exactly 1", round, ok, n)
		}
	}
}

// simultaneously runs do(0) … do(n-1) at once and returns how many
// succeeded; an error other than a conflict fails t, naming what (and i).
func simultaneously(t *testing.T, n int, what string, do func(i int) error) int {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = do(i)
		})
	}
	close(start)
	wg.Wait()
	var ok int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case tollgate.ErrorCode(err) != tollgate.EConflict:
			t.Fatalf("%s %d: %v, want success or a conflict", what, i, err)
		}
	}
	return ok
}
