package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
)

var notifyTests = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"Notify/JobAndControlStepsAreEvents", testNotifyEvents},
	{"Notify/RefusedDecisionsOncePerSink", testNotifyDecisions},
	{"Notify/UnroutedEventsAreDropped", testNotifyUnrouted},
	{"Notify/ConcurrentClaimsTakeEachOnce", testNotifyConcurrentClaims},
	{"Notify/RetrySchedule", testNotifyRetry},
	{"Notify/ExpiredLeaseIsClaimedAgain", testNotifyLeaseExpiry},
	{"Notify/ExpiringNoticedOnce", testNotifyExpiring},
	{"Notify/Retention", testNotifyRetention},
	{"Notify/DurableAcrossReopen", testNotifyDurable},
	{"Notify/JobCallbacksAreDelivered", testNotifyCallbacks},
}

// The end of a job whose callback names a system (github) is delivered to
// that built-in sink too, whatever the route, with the job (and its
// callback) as subject; a cancelled job's end is an event as well. A job
// without a callback goes to the routed sinks only.
func testNotifyCallbacks(t *testing.T, h *harness) {
	s, jobs := h.outbox(), h.jobs()
	callback := json.RawMessage(`{"github":{"url":"https://api.github.com/repos/o/r/actions/runs/1/deployment_protection_rule","installation_id":7,"environment":"production","delivery":"d-1"}}`)
	withCallback := func() tollgate.Job {
		j := newJob("org/service-api", "production", base)
		j.Callback = callback
		return submit(t, jobs, j)
	}
	accepted, cancelled, plain := withCallback(), withCallback(), submit(t, jobs, newJob("org/other", "production", base))
	claim(t, jobs, "w", base, 10)
	check(t, jobs, accepted.ID, "w", tollgate.JobAccepted, base)
	check(t, jobs, plain.ID, "w", tollgate.JobRefused, base)
	if _, err := jobs.UpdateJob(t.Context(), cancelled.ID, "", func(j *tollgate.Job) error {
		j.State = tollgate.JobCancelled
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fanOut(t, s, base, toAll()) // no configured sink
	got := events(deliveries(t, s, tollgate.DeliveryFilter{}))
	if want := []string{"job.accepted github", "job.cancelled github"}; !slices.Equal(got, want) {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	for _, d := range claimDeliveries(t, s, "w", base, 10) {
		var subject struct{ Job tollgate.Job }
		if err := json.Unmarshal(d.Subject, &subject); err != nil || string(subject.Job.Callback) != string(callback) {
			t.Fatalf("%s subject %s (%v): want the job with its callback", d.Event, d.Subject, err)
		}
	}
	// Routed as well: one delivery per sink, the callback's once.
	again := withCallback()
	claim(t, jobs, "w", base, 10)
	check(t, jobs, again.ID, "w", tollgate.JobRefused, base)
	if n := fanOut(t, s, base, toAll("hook")); n != 2 {
		t.Fatalf("FanOut made %d deliveries for a routed job with a callback, want 2 (hook and github)", n)
	}
}

func (h *harness) outbox() tollgate.Outbox {
	h.t.Helper()
	s, ok := h.store.(tollgate.Outbox)
	if !ok {
		h.t.Fatalf("%T does not implement tollgate.Outbox", h.store)
	}
	return s
}

// toAll routes every event to the sinks named.
func toAll(sinks ...string) func(string) []string {
	return func(string) []string { return sinks }
}

func fanOut(t *testing.T, s tollgate.Outbox, at time.Time, route func(string) []string) int {
	t.Helper()
	n, err := s.FanOut(t.Context(), at, route, 100)
	if err != nil {
		t.Fatalf("FanOut: %v", err)
	}
	return n
}

func claimDeliveries(t *testing.T, s tollgate.Outbox, owner string, at time.Time, n int) []tollgate.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveries(t.Context(), owner, at, time.Minute, n)
	if err != nil {
		t.Fatalf("ClaimDeliveries(%s, %s): %v", owner, at, err)
	}
	return ds
}

func deliveries(t *testing.T, s tollgate.Outbox, f tollgate.DeliveryFilter) []tollgate.Delivery {
	t.Helper()
	ds, err := s.Deliveries(t.Context(), f)
	if err != nil {
		t.Fatalf("Deliveries(%+v): %v", f, err)
	}
	return ds
}

// events lists "event sink" of ds, sorted.
func events(ds []tollgate.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Event + " " + d.Sink
	}
	slices.Sort(out)
	return out
}

// A job's state changes and a control's steps are written as events in
// their own transaction; FanOut makes one delivery per sink, once, with the
// subject to send.
func testNotifyEvents(t *testing.T, h *harness) {
	s := h.outbox()
	jobs, controls := h.jobs(), h.controls()
	j := submit(t, jobs, newJob("org/service-api", "production", base))
	claim(t, jobs, "w", base, 1)
	check(t, jobs, j.ID, "w", tollgate.JobWaiting, base)
	claim(t, jobs, "w", base, 1)
	check(t, jobs, j.ID, "w", tollgate.JobWaiting, base) // still waiting: no second event
	claim(t, jobs, "w", base, 1)
	check(t, jobs, j.ID, "w", tollgate.JobAccepted, base)

	ex := createControl(t, controls, exception(base, base.Add(24*time.Hour)))
	if _, err := controls.UpdateControl(t.Context(), ex.ID, approve("bob", base.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	fr := createControl(t, controls, freeze(base, base.Add(time.Hour)))
	if _, err := controls.UpdateControl(t.Context(), fr.ID, func(c *tollgate.Control) (tollgate.ControlEvent, error) {
		return c.Transition(tollgate.ActionLift, "ops", "", base.Add(time.Minute), tollgate.StateLifted, tollgate.StateActive)
	}); err != nil {
		t.Fatal(err)
	}
	inc := createControl(t, controls, incidentAt(base, base.Add(time.Minute)))
	if exp, err := controls.ExpireDue(t.Context(), base.Add(time.Hour)); err != nil || len(exp) != 1 || exp[0].ID != inc.ID { // the exception's expiry is a day off
		t.Fatalf("ExpireDue = %v, %v", controlIDs(exp), err)
	}

	if n := fanOut(t, s, base, toAll("hook", "chat")); n != 2*8 {
		t.Fatalf("FanOut made %d deliveries, want 16 (8 events, 2 sinks)", n)
	}
	if n := fanOut(t, s, base, toAll("hook", "chat")); n != 0 {
		t.Fatalf("second FanOut made %d deliveries, want none", n)
	}
	got := events(deliveries(t, s, tollgate.DeliveryFilter{Sink: "hook"}))
	want := []string{"exception.approved hook", "exception.requested hook", "freeze.ended hook", "freeze.started hook",
		"incident.ended hook", "incident.started hook", "job.accepted hook", "job.waiting hook"}
	if !slices.Equal(got, want) {
		t.Fatalf("deliveries to hook = %v, want %v", got, want)
	}
	ds := claimDeliveries(t, s, "w", base, 100)
	if len(ds) != 16 {
		t.Fatalf("claimed %d deliveries, want 16", len(ds))
	}
	for _, d := range ds {
		var subject map[string]json.RawMessage
		if err := json.Unmarshal(d.Subject, &subject); err != nil || d.State != tollgate.DeliveryPending || d.Attempts != 0 {
			t.Fatalf("claimed %+v: subject %s (%v)", d, d.Subject, err)
		}
		switch d.Event {
		case "job.accepted":
			var job tollgate.Job
			if err := json.Unmarshal(subject["job"], &job); err != nil || job.ID != j.ID || job.State != tollgate.JobAccepted || job.Request != nil {
				t.Fatalf("job.accepted subject = %s (%v): want the job, accepted, without its request", d.Subject, err)
			}
		case "incident.ended":
			var c tollgate.Control
			if err := json.Unmarshal(subject["control"], &c); err != nil || c.ID != inc.ID || c.State != tollgate.StateExpired {
				t.Fatalf("incident.ended subject = %s (%v): want the incident, expired", d.Subject, err)
			}
		}
	}
}

// Refused decisions become events once, accepted ones never; the cursor
// keeps its place across calls.
func testNotifyDecisions(t *testing.T, h *harness) {
	s := h.outbox()
	var refused []string
	for i := range 7 {
		status := tollgate.Accepted
		if i%2 == 0 {
			status = tollgate.Refused
		}
		rec := Record(status, base.Add(time.Duration(i)*time.Second))
		put(t, h.store, rec)
		if status == tollgate.Refused {
			refused = append(refused, "decision.refused:"+rec.Decision.ID)
		}
	}
	// Fewer per call than there are: the cursor stops at the last taken.
	n, err := s.FanOut(t.Context(), base, toAll("hook"), 3)
	if err != nil || n != 3 {
		t.Fatalf("FanOut(3) = %d, %v; want 3", n, err)
	}
	if n := fanOut(t, s, base, toAll("hook")); n != 1 {
		t.Fatalf("second FanOut made %d, want the fourth refusal", n)
	}
	put(t, h.store, Record(tollgate.Accepted, base.Add(time.Minute)))
	if n := fanOut(t, s, base, toAll("hook")); n != 0 {
		t.Fatalf("FanOut after an acceptance made %d, want none", n)
	}
	ds := deliveries(t, s, tollgate.DeliveryFilter{Event: tollgate.EventDecisionRefused})
	var got []string
	for _, d := range ds {
		got = append(got, d.EventID)
		if !d.OccurredAt.Equal(base.Add(time.Duration(slices.Index(refused, d.EventID)) * 2 * time.Second)) {
			t.Errorf("delivery %s occurred at %s, want its decision's evaluation time", d.EventID, d.OccurredAt)
		}
	}
	slices.Sort(got)
	slices.Sort(refused)
	if !slices.Equal(got, refused) {
		t.Fatalf("deliveries of refusals %v, want %v", got, refused)
	}
	d := claimDeliveries(t, s, "w", base, 1)[0]
	var subject struct {
		Decision tollgate.Decision `json:"decision"`
		Request  tollgate.Request  `json:"request"`
	}
	if err := json.Unmarshal(d.Subject, &subject); err != nil || "decision.refused:"+subject.Decision.ID != d.EventID ||
		subject.Decision.Status != tollgate.Refused || subject.Request.Repository != "org/service-api" {
		t.Fatalf("subject %s (%v)", d.Subject, err)
	}
}

// An event no sink takes is fanned out to nothing, and not again.
func testNotifyUnrouted(t *testing.T, h *harness) {
	s := h.outbox()
	createControl(t, h.controls(), freeze(base, base.Add(time.Hour)))
	put(t, h.store, Record(tollgate.Refused, base))
	if n := fanOut(t, s, base, toAll()); n != 0 {
		t.Fatalf("FanOut with no sink made %d", n)
	}
	if n := fanOut(t, s, base, toAll("hook")); n != 0 {
		t.Fatalf("FanOut made %d deliveries of events already fanned out", n)
	}
}

// newDeliveries makes n pending deliveries to sink, due at base.
func newDeliveries(t *testing.T, h *harness, sink string, n int) {
	t.Helper()
	for i := range n {
		put(t, h.store, Record(tollgate.Refused, base.Add(time.Duration(i))))
	}
	if got := fanOut(t, h.outbox(), base, toAll(sink)); got != n {
		t.Fatalf("FanOut made %d deliveries, want %d", got, n)
	}
}

// Two processes claiming at once take every delivery once between them.
func testNotifyConcurrentClaims(t *testing.T, h *harness) {
	s := h.outbox()
	newDeliveries(t, h, "hook", 40)
	var (
		mu    sync.Mutex
		seen  = map[string]string{}
		wg    sync.WaitGroup
		twice []string
	)
	for _, owner := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := s.ClaimDeliveries(t.Context(), owner, base, time.Minute, 3)
				if err != nil {
					t.Errorf("ClaimDeliveries(%s): %v", owner, err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if other, ok := seen[d.ID]; ok {
						twice = append(twice, fmt.Sprintf("%s by %s and %s", d.ID, other, owner))
					}
					seen[d.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(twice) > 0 || len(seen) != 40 {
		t.Fatalf("claimed %d of 40, twice: %v", len(seen), twice)
	}
}

// An attempt that fails with a retry time leaves the delivery pending and
// not due until then; the last attempt ends it delivered or failed; only
// its lease holder records an attempt.
func testNotifyRetry(t *testing.T, h *harness) {
	s := h.outbox()
	newDeliveries(t, h, "hook", 2)
	ds := claimDeliveries(t, s, "w", base, 2)
	if len(ds) != 2 {
		t.Fatalf("claimed %d, want 2", len(ds))
	}
	first, second := ds[0], ds[1]
	_, err := s.FinishAttempt(t.Context(), first.ID, "other", tollgate.Attempt{At: base, Delivered: true})
	assertCode(t, "FinishAttempt by another owner", err, tollgate.EConflict)

	retry := base.Add(10 * time.Second)
	d, err := s.FinishAttempt(t.Context(), first.ID, "w", tollgate.Attempt{At: base, Status: 503, Error: "503 Service Unavailable", RetryAt: retry})
	if err != nil || d.State != tollgate.DeliveryPending || d.Attempts != 1 || d.LastStatus != 503 ||
		d.LastError != "503 Service Unavailable" || !d.NextAttemptAt.Equal(retry) {
		t.Fatalf("after a failed attempt: %+v, %v", d, err)
	}
	if got := claimDeliveries(t, s, "w", retry.Add(-time.Nanosecond), 10); len(got) != 0 {
		t.Fatalf("claimed %d before its retry time", len(got))
	}
	got := claimDeliveries(t, s, "w", retry, 10)
	if len(got) != 1 || got[0].ID != first.ID || got[0].Attempts != 1 {
		t.Fatalf("claimed %+v at its retry time, want it", got)
	}
	d, err = s.FinishAttempt(t.Context(), first.ID, "w", tollgate.Attempt{At: retry, Status: 200, Delivered: true})
	if err != nil || d.State != tollgate.DeliveryDelivered || d.Attempts != 2 || d.LastStatus != 200 || d.LastError != "" {
		t.Fatalf("after a delivery: %+v, %v", d, err)
	}
	d, err = s.FinishAttempt(t.Context(), second.ID, "w", tollgate.Attempt{At: base, Status: 400, Error: "400 Bad Request"})
	if err != nil || d.State != tollgate.DeliveryFailed || d.Attempts != 1 {
		t.Fatalf("after a refusal: %+v, %v", d, err)
	}
	_, err = s.FinishAttempt(t.Context(), second.ID, "w", tollgate.Attempt{At: base, Delivered: true})
	assertCode(t, "FinishAttempt of an ended delivery", err, tollgate.EConflict)
	if got := claimDeliveries(t, s, "w", base.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("claimed %d ended deliveries", len(got))
	}
	for state, want := range map[tollgate.DeliveryState]string{tollgate.DeliveryDelivered: first.ID, tollgate.DeliveryFailed: second.ID} {
		if got := deliveries(t, s, tollgate.DeliveryFilter{State: state}); len(got) != 1 || got[0].ID != want {
			t.Fatalf("Deliveries(state=%s) = %v, want %s", state, got, want)
		}
	}
	if pending, err := s.PendingDeliveries(t.Context()); err != nil || len(pending) != 0 {
		t.Fatalf("PendingDeliveries = %v, %v", pending, err)
	}
}

// A delivery whose worker died is claimed again once its lease ran out,
// and the dead worker's late attempt is refused.
func testNotifyLeaseExpiry(t *testing.T, h *harness) {
	s := h.outbox()
	newDeliveries(t, h, "hook", 1)
	d := claimDeliveries(t, s, "dead", base, 1)[0]
	if got := claimDeliveries(t, s, "w", base.Add(59*time.Second), 1); len(got) != 0 {
		t.Fatalf("claimed %d while leased", len(got))
	}
	if got := claimDeliveries(t, s, "w", base.Add(time.Minute), 1); len(got) != 1 || got[0].ID != d.ID {
		t.Fatalf("claimed %v once the lease ran out, want %s", got, d.ID)
	}
	_, err := s.FinishAttempt(t.Context(), d.ID, "dead", tollgate.Attempt{At: base, Delivered: true})
	assertCode(t, "FinishAttempt by the dead worker", err, tollgate.EConflict)
	if pending, err := s.PendingDeliveries(t.Context()); err != nil || pending["hook"] != 1 {
		t.Fatalf("PendingDeliveries = %v, %v", pending, err)
	}
}

// An approved exception is noticed once as expiring, when its expiry comes
// within the window; a requested one is not.
func testNotifyExpiring(t *testing.T, h *harness) {
	s, controls := h.outbox(), h.controls()
	soon := createControl(t, controls, inState(exception(base, base.Add(2*time.Hour)), tollgate.StateApproved))
	createControl(t, controls, exception(base, base.Add(2*time.Hour)))                                   // requested
	createControl(t, controls, inState(exception(base, base.Add(48*time.Hour)), tollgate.StateApproved)) // later
	for _, at := range []time.Time{base, base.Add(time.Hour), base.Add(90 * time.Minute)} {
		n, err := s.NoticeExpiring(t.Context(), at, 24*time.Hour)
		want := 0
		if at.Equal(base) {
			want = 1
		}
		if err != nil || n != want {
			t.Fatalf("NoticeExpiring(%s) = %d, %v; want %d", at, n, err, want)
		}
	}
	route := func(event string) []string {
		if event == tollgate.EventExceptionExpiring {
			return []string{"chat"}
		}
		return nil
	}
	if n := fanOut(t, s, base, route); n != 1 {
		t.Fatalf("FanOut made %d, want the one expiring exception", n)
	}
	d := claimDeliveries(t, s, "w", base, 10)
	var subject struct{ Control tollgate.Control }
	if len(d) != 1 || json.Unmarshal(d[0].Subject, &subject) != nil || subject.Control.ID != soon.ID {
		t.Fatalf("claimed %v, want the expiring exception", d)
	}
}

// Ended deliveries older than the cutoff go, with their events; pending
// ones and their events stay, however old.
func testNotifyRetention(t *testing.T, h *harness) {
	s := h.outbox()
	newDeliveries(t, h, "hook", 3)
	ds := claimDeliveries(t, s, "w", base, 3)
	old, recent := base.Add(time.Hour), base.Add(48*time.Hour)
	if _, err := s.FinishAttempt(t.Context(), ds[0].ID, "w", tollgate.Attempt{At: old, Delivered: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishAttempt(t.Context(), ds[1].ID, "w", tollgate.Attempt{At: recent, Status: 410, Error: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishAttempt(t.Context(), ds[2].ID, "w", tollgate.Attempt{At: old, Status: 500, RetryAt: old}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneNotifications(t.Context(), base.Add(24*time.Hour))
	// The old delivery, its event and the recent failure's event (the
	// delivery keeps what GET /v1/notifications lists).
	if err != nil || n != 3 {
		t.Fatalf("PruneNotifications = %d, %v; want 3 rows", n, err)
	}
	left := deliveries(t, s, tollgate.DeliveryFilter{})
	var ids []string
	for _, d := range left {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	want := []string{ds[1].ID, ds[2].ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("left %v, want the recent and the pending one %v", ids, want)
	}
	if got := claimDeliveries(t, s, "w", old, 1); len(got) != 1 || got[0].Subject == nil {
		t.Fatalf("the pending delivery lost its event: %+v", got)
	}
}

// An event written with its change is there after a reopen, to be fanned
// out then.
func testNotifyDurable(t *testing.T, h *harness) {
	createControl(t, h.controls(), freeze(base, base.Add(time.Hour)))
	put(t, h.store, Record(tollgate.Refused, base))
	h.reopen()
	if n := fanOut(t, h.outbox(), base, toAll("hook")); n != 2 {
		t.Fatalf("FanOut after a reopen made %d, want 2", n)
	}
	h.reopen()
	if got := claimDeliveries(t, h.outbox(), "w", base, 10); len(got) != 2 {
		t.Fatalf("claimed %d after a reopen, want 2", len(got))
	}
}
