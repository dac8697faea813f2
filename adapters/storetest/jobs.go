package storetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate/tollgate"
)

var jobTests = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"Jobs/Lifecycle", testJobLifecycle},
	{"Jobs/SameIdempotencyKeySameJob", testJobIdempotent},
	{"Jobs/NotFound", testJobNotFound},
	{"Jobs/InvalidRecordsNothing", testJobInvalid},
	{"Jobs/CancelTakesItFromItsWorker", testJobCancel},
	{"Jobs/ExpiredLeaseIsClaimedAgain", testJobLeaseExpiry},
	{"Jobs/QueueOldestFirst", testJobQueue},
	{"Jobs/WakeMakesWaitingJobsDue", testJobWake},
	{"Jobs/ListAndCount", testJobList},
	{"Jobs/BoundsAreExact", testJobBounds},
	{"Jobs/ConcurrentClaimsTakeEachOnce", testJobConcurrentClaims},
	{"Jobs/DurableAcrossReopen", testJobDurable},
}

func (h *harness) jobs() tollgate.JobStore {
	h.t.Helper()
	s, ok := h.store.(tollgate.JobStore)
	if !ok {
		h.t.Fatalf("%T does not implement tollgate.JobStore", h.store)
	}
	return s
}

// newJob is a job of repository for environment, created at at, due then,
// waiting at most a day, in a queue of its own (branch run-ID).
func newJob(repository, environment string, at time.Time) tollgate.Job {
	id := uuid.Must(uuid.NewV7()).String()
	body, _ := json.Marshal(map[string]any{"repository": repository, "branch": "run-" + id, "pipeline": "deploy-prod",
		"metadata": map[string]string{"initiator": "ci", "run_id": id, "environment": environment}})
	return tollgate.Job{ID: id, IdempotencyKey: repository + "/deploy-prod/" + id + "/" + environment,
		Repository: repository, Pipeline: "deploy-prod", Branch: "run-" + id, Environment: environment, Request: body,
		CreatedAt: at, UpdatedAt: at, WaitUntil: at.Add(24 * time.Hour), NextCheckAt: at}
}

func submit(t *testing.T, s tollgate.JobStore, j tollgate.Job) tollgate.Job {
	t.Helper()
	got, created, err := s.SubmitJob(t.Context(), j, tollgate.JobBounds{})
	if err != nil || !created {
		t.Fatalf("SubmitJob(%s) = created %v, %v", j.ID, created, err)
	}
	return got
}

func claim(t *testing.T, s tollgate.JobStore, owner string, at time.Time, n int) []string {
	t.Helper()
	jobs, err := s.ClaimJobs(t.Context(), owner, at, time.Minute, n)
	if err != nil {
		t.Fatalf("ClaimJobs(%s, %s): %v", owner, at, err)
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// check is a worker's check of a claimed job: it ends in state, with
// decision, due again at next.
func check(t *testing.T, s tollgate.JobStore, id, owner string, state tollgate.JobState, next time.Time) tollgate.Job {
	t.Helper()
	j, err := s.UpdateJob(t.Context(), id, owner, func(j *tollgate.Job) error {
		j.State, j.NextCheckAt = state, next
		j.Decisions = append(j.Decisions, uuid.Must(uuid.NewV7()).String())
		if state == tollgate.JobWaiting {
			j.WaitingOn = []tollgate.Reason{{Code: tollgate.CodeCooldown, Message: "too soon"}}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateJob(%s, %s) to %s: %v", id, owner, state, err)
	}
	return j
}

// A job goes queued → claimed → waiting (not claimable until due) →
// claimed → accepted, each check recorded, and reads back as written.
func testJobLifecycle(t *testing.T, h *harness) {
	s := h.jobs()
	j := newJob("org/service-api", "production", base)
	j.Callback = json.RawMessage(`{"github":{"url":"https://api.github.com/repos/org/service-api/actions/runs/1/deployment_protection_rule","installation_id":7}}`)
	got := submit(t, s, j)
	if got.State != tollgate.JobQueued || got.ID != j.ID || !got.CreatedAt.Equal(base) || string(got.Request) != string(j.Request) {
		t.Fatalf("submitted %+v", got)
	}
	if ids := claim(t, s, "a", base.Add(-time.Second), 10); len(ids) != 0 {
		t.Fatalf("claimed %v before it was due", ids)
	}
	if ids := claim(t, s, "a", base, 10); !slices.Equal(ids, []string{j.ID}) {
		t.Fatalf("claimed %v, want the job", ids)
	}
	if ids := claim(t, s, "b", base, 10); len(ids) != 0 {
		t.Fatalf("claimed %v while it is leased", ids)
	}
	_, err := s.UpdateJob(t.Context(), j.ID, "b", func(*tollgate.Job) error { return nil })
	assertCode(t, "UpdateJob by another owner", err, tollgate.EConflict)
	next := base.Add(30 * time.Minute)
	waiting := check(t, s, j.ID, "a", tollgate.JobWaiting, next)
	read, err := s.Job(t.Context(), j.ID)
	if err != nil || !sameJob(read, waiting) || read.State != tollgate.JobWaiting || !read.NextCheckAt.Equal(next) || len(read.WaitingOn) != 1 {
		t.Fatalf("Job after a waiting check = %+v, %v; want %+v", read, err, waiting)
	}
	if ids := claim(t, s, "a", next.Add(-time.Second), 10); len(ids) != 0 {
		t.Fatalf("claimed %v before its next check", ids)
	}
	if ids := claim(t, s, "b", next, 10); !slices.Equal(ids, []string{j.ID}) {
		t.Fatalf("claimed %v at its next check, want the job", ids)
	}
	done := check(t, s, j.ID, "b", tollgate.JobAccepted, next)
	if len(done.Decisions) != 2 || done.State != tollgate.JobAccepted || string(done.Callback) != string(j.Callback) {
		t.Fatalf("accepted job %+v, want 2 decisions and the callback as submitted", done)
	}
	if ids := claim(t, s, "a", next.Add(time.Hour), 10); len(ids) != 0 {
		t.Fatalf("claimed %v: a final job is never claimed", ids)
	}
}

func sameJob(a, b tollgate.Job) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// A second submission with the same idempotency key returns the first job,
// whatever else it says, and stores nothing.
func testJobIdempotent(t *testing.T, h *harness) {
	s := h.jobs()
	first := submit(t, s, newJob("org/service-api", "production", base))
	again := newJob("org/other", "staging", base.Add(time.Hour))
	again.IdempotencyKey = first.IdempotencyKey
	// At the bounds: the job of the key is no new job.
	got, created, err := s.SubmitJob(t.Context(), again, tollgate.JobBounds{PerRepository: 1, Total: 1})
	if err != nil || created || got.ID != first.ID || got.Repository != "org/service-api" {
		t.Fatalf("SubmitJob with a key stored = %+v, created %v, %v; want the first job", got, created, err)
	}
	if stats, err := s.JobStats(t.Context()); err != nil || stats.Open[tollgate.JobQueued] != 1 {
		t.Fatalf("JobStats = %+v, %v; want 1 queued", stats, err)
	}
}

// A new job past a bound is not stored: ERateLimited, naming the bound.
// Submissions from many processes at once never pass it.
func testJobBounds(t *testing.T, h *harness) {
	s := h.jobs()
	submit(t, s, newJob("org/a", "production", base))
	_, _, err := s.SubmitJob(t.Context(), newJob("org/a", "production", base), tollgate.JobBounds{PerRepository: 1})
	assertCode(t, "SubmitJob past the repository's bound", err, tollgate.ERateLimited)
	if err == nil || !strings.Contains(err.Error(), "org/a has 1 jobs waiting") {
		t.Errorf("the refusal says %v; want it to name org/a and its count", err)
	}
	_, _, err = s.SubmitJob(t.Context(), newJob("org/b", "production", base), tollgate.JobBounds{PerRepository: 1, Total: 1})
	assertCode(t, "SubmitJob past the total bound", err, tollgate.ERateLimited)
	if _, created, err := s.SubmitJob(t.Context(), newJob("org/b", "production", base), tollgate.JobBounds{PerRepository: 1, Total: 2}); err != nil || !created {
		t.Fatalf("SubmitJob within the bounds: created %v, %v", created, err)
	}

	// 40 submissions at once through 4 stores (processes), a bound of 10.
	stores := []tollgate.JobStore{h.jobs()}
	for range 3 {
		other := h.open()
		t.Cleanup(func() { other.Close() })
		stores = append(stores, other.(tollgate.JobStore))
	}
	var wg sync.WaitGroup
	var created, refused atomic.Int32
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := stores[i%4].SubmitJob(t.Context(), newJob("org/c", "production", base), tollgate.JobBounds{PerRepository: 10})
			switch {
			case ok:
				created.Add(1)
			case tollgate.ErrorCode(err) == tollgate.ERateLimited:
				refused.Add(1)
			default:
				t.Errorf("SubmitJob: created %v, %v", ok, err)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 10 || refused.Load() != 30 {
		t.Fatalf("%d created, %d refused at a bound of 10; want 10 and 30", created.Load(), refused.Load())
	}
}

func testJobNotFound(t *testing.T, h *harness) {
	s := h.jobs()
	_, err := s.Job(t.Context(), "no-such-job")
	assertCode(t, "Job", err, tollgate.ENotFound)
	_, err = s.UpdateJob(t.Context(), "no-such-job", "", func(*tollgate.Job) error { return nil })
	assertCode(t, "UpdateJob", err, tollgate.ENotFound)
}

// A job the store cannot keep, or a change that breaks one, is refused
// and nothing changes; a change's own error is returned as it is.
func testJobInvalid(t *testing.T, h *harness) {
	s := h.jobs()
	for name, j := range map[string]tollgate.Job{
		"no ID":   func() tollgate.Job { j := newJob("org/a", "production", base); j.ID = ""; return j }(),
		"no key":  func() tollgate.Job { j := newJob("org/a", "production", base); j.IdempotencyKey = ""; return j }(),
		"no time": func() tollgate.Job { j := newJob("org/a", "production", base); j.NextCheckAt = time.Time{}; return j }(),
	} {
		_, _, err := s.SubmitJob(t.Context(), j, tollgate.JobBounds{})
		assertCode(t, "SubmitJob with "+name, err, tollgate.EInternal)
	}
	j := submit(t, s, newJob("org/a", "production", base))
	_, err := s.UpdateJob(t.Context(), j.ID, "", func(j *tollgate.Job) error { j.State = "pending"; return nil })
	assertCode(t, "UpdateJob to an unknown state", err, tollgate.EInternal)
	_, err = s.UpdateJob(t.Context(), j.ID, "", func(j *tollgate.Job) error { j.ID = "other"; return nil })
	assertCode(t, "UpdateJob moving the ID", err, tollgate.EInternal)
	_, err = s.UpdateJob(t.Context(), j.ID, "", func(j *tollgate.Job) error { j.Branch = "other"; return nil })
	assertCode(t, "UpdateJob moving it to another queue", err, tollgate.EInternal)
	mine := fmt.Errorf("the change's own error")
	if _, err := s.UpdateJob(t.Context(), j.ID, "", func(j *tollgate.Job) error { j.State = tollgate.JobRefused; return mine }); err != mine {
		t.Fatalf("UpdateJob with a failing change = %v, want its error", err)
	}
	if got, err := s.Job(t.Context(), j.ID); err != nil || !sameJob(got, j) {
		t.Fatalf("after refused updates: %+v, %v; want %+v unchanged", got, err, j)
	}
}

// A user's cancel wins over the worker that holds the job: the worker's
// update then fails, and the job stays cancelled.
func testJobCancel(t *testing.T, h *harness) {
	s := h.jobs()
	j := submit(t, s, newJob("org/service-api", "production", base))
	claim(t, s, "worker", base, 1)
	if _, err := s.UpdateJob(t.Context(), j.ID, "", func(j *tollgate.Job) error { j.State = tollgate.JobCancelled; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err := s.UpdateJob(t.Context(), j.ID, "worker", func(j *tollgate.Job) error { j.State = tollgate.JobAccepted; return nil })
	assertCode(t, "the worker's update after a cancel", err, tollgate.EConflict)
	if got, err := s.Job(t.Context(), j.ID); err != nil || got.State != tollgate.JobCancelled {
		t.Fatalf("Job = %+v, %v; want cancelled", got, err)
	}
}

// A worker that dies holding a job loses it when its lease runs out:
// another claims it, and the first one's late update is refused.
func testJobLeaseExpiry(t *testing.T, h *harness) {
	s := h.jobs()
	j := submit(t, s, newJob("org/service-api", "production", base))
	if ids := claim(t, s, "dead", base, 1); len(ids) != 1 {
		t.Fatalf("claimed %v", ids)
	}
	if ids := claim(t, s, "alive", base.Add(59*time.Second), 1); len(ids) != 0 {
		t.Fatalf("claimed %v within the lease", ids)
	}
	if ids := claim(t, s, "alive", base.Add(time.Minute), 1); !slices.Equal(ids, []string{j.ID}) {
		t.Fatalf("claimed %v once the lease ran out, want the job", ids)
	}
	_, err := s.UpdateJob(t.Context(), j.ID, "dead", func(*tollgate.Job) error { return nil })
	assertCode(t, "the dead worker's late update", err, tollgate.EConflict)
	check(t, s, j.ID, "alive", tollgate.JobAccepted, base)
}

// The open jobs of one queue (repository, pipeline, branch) are claimed
// one at a time, oldest first, each only once the one before it has ended;
// other queues' jobs are claimed beside them, the same branch of another
// pipeline or repository included.
func testJobQueue(t *testing.T, h *harness) {
	s := h.jobs()
	var queue []string
	for i := range 4 {
		j := newJob("org/service-api", "production", base.Add(time.Duration(i)*time.Second))
		j.Branch = "main"
		queue = append(queue, submit(t, s, j).ID)
	}
	other := newJob("org/other", "production", base.Add(10*time.Second))
	other.Branch = "main"
	submit(t, s, other)
	hotfix := newJob("org/service-api", "production", base.Add(11*time.Second))
	hotfix.Branch, hotfix.Pipeline = "main", "hotfix-prod"
	submit(t, s, hotfix)
	at := base.Add(time.Hour)
	if ids := claim(t, s, "w", at, 10); !slices.Equal(ids, []string{queue[0], other.ID, hotfix.ID}) {
		t.Fatalf("claimed %v, want the queue's oldest job, and the other repository's and pipeline's", ids)
	}
	// The oldest waits again: the next of its key stay out.
	check(t, s, queue[0], "w", tollgate.JobWaiting, at)
	if ids := claim(t, s, "w", at, 10); !slices.Equal(ids, []string{queue[0]}) {
		t.Fatalf("claimed %v, want the oldest of the key again", ids)
	}
	for i, id := range queue {
		check(t, s, id, "w", tollgate.JobAccepted, at)
		want := []string{}
		if i+1 < len(queue) {
			want = []string{queue[i+1]}
		}
		if ids := claim(t, s, "w", at, 10); !slices.Equal(ids, want) {
			t.Fatalf("after job %d ended, claimed %v, want %v", i, ids, want)
		}
	}
}

// WakeJobs makes the waiting jobs due now, not the final ones.
func testJobWake(t *testing.T, h *harness) {
	s := h.jobs()
	a := submit(t, s, newJob("org/a", "production", base))
	b := submit(t, s, newJob("org/b", "production", base))
	claim(t, s, "w", base, 2)
	check(t, s, a.ID, "w", tollgate.JobWaiting, base.Add(6*time.Hour))
	check(t, s, b.ID, "w", tollgate.JobRefused, base.Add(6*time.Hour))
	now := base.Add(time.Minute)
	if ids := claim(t, s, "w", now, 10); len(ids) != 0 {
		t.Fatalf("claimed %v before the wake", ids)
	}
	if n, err := s.WakeJobs(t.Context(), now); err != nil || n != 1 {
		t.Fatalf("WakeJobs = %d, %v; want 1", n, err)
	}
	if got, err := s.Job(t.Context(), a.ID); err != nil || !got.NextCheckAt.Equal(now) {
		t.Fatalf("the woken job: %+v, %v; want due at %s", got, err, now)
	}
	if ids := claim(t, s, "w", now, 10); !slices.Equal(ids, []string{a.ID}) {
		t.Fatalf("claimed %v after the wake, want the waiting job", ids)
	}

	// Woken again while the worker checks it: the check, which decided on
	// what it read before this wake, leaves it due at once, not at the
	// time it decided.
	later := now.Add(30 * time.Second) // within the claim's lease
	if _, err := s.WakeJobs(t.Context(), later); err != nil {
		t.Fatal(err)
	}
	leaveWaiting := func(at time.Time) tollgate.Job {
		t.Helper()
		j, err := s.UpdateJob(t.Context(), a.ID, "w", func(j *tollgate.Job) error {
			j.State, j.UpdatedAt, j.NextCheckAt = tollgate.JobWaiting, at, at.Add(6*time.Hour)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	checked := later.Add(time.Second)
	if j := leaveWaiting(checked); !j.NextCheckAt.Equal(checked) {
		t.Fatalf("a check that ran across a wake left the job due at %s, want at once (%s)", j.NextCheckAt, checked)
	}
	// The next claim clears the mark: its check schedules as it decides.
	if ids := claim(t, s, "w", checked, 10); !slices.Equal(ids, []string{a.ID}) {
		t.Fatalf("claimed %v, want the job due again", ids)
	}
	if j := leaveWaiting(checked); !j.NextCheckAt.Equal(checked.Add(6 * time.Hour)) {
		t.Fatalf("a check after the mark was cleared left the job due at %s, want %s", j.NextCheckAt, checked.Add(6*time.Hour))
	}
}

// Jobs lists newest first under its filters; JobStats counts the open ones
// by state, with the oldest.
func testJobList(t *testing.T, h *harness) {
	s := h.jobs()
	var ids []string
	for i, repo := range []string{"org/a", "org/b", "org/a"} {
		ids = append(ids, submit(t, s, newJob(repo, []string{"production", "staging"}[i%2], base.Add(time.Duration(i)*time.Minute))).ID)
	}
	claim(t, s, "w", base.Add(time.Hour), 1)
	check(t, s, ids[0], "w", tollgate.JobRefused, base)
	for _, c := range []struct {
		f    tollgate.JobFilter
		want []string
	}{
		{tollgate.JobFilter{}, []string{ids[2], ids[1], ids[0]}},
		{tollgate.JobFilter{Repository: "org/a"}, []string{ids[2], ids[0]}},
		{tollgate.JobFilter{State: tollgate.JobQueued}, []string{ids[2], ids[1]}},
		{tollgate.JobFilter{Environment: "staging"}, []string{ids[1]}},
		{tollgate.JobFilter{Limit: 1}, []string{ids[2]}},
	} {
		jobs, err := s.Jobs(t.Context(), c.f)
		var got []string
		for _, j := range jobs {
			got = append(got, j.ID)
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Jobs(%+v) = %v, %v; want %v", c.f, got, err, c.want)
		}
	}
	if got := claim(t, s, "w", base.Add(time.Hour), 1); !slices.Equal(got, ids[1:2]) {
		t.Fatalf("claimed %v, want the second job", got)
	}
	check(t, s, ids[1], "w", tollgate.JobWaiting, base.Add(2*time.Hour))
	stats, err := s.JobStats(t.Context())
	want := map[tollgate.JobState]int{tollgate.JobQueued: 1, tollgate.JobWaiting: 1}
	if err != nil || !maps.Equal(stats.Open, want) || !stats.OldestOpen.Equal(base.Add(time.Minute)) {
		t.Errorf("JobStats = %+v, %v; want %v, the oldest submitted at %s", stats, err, want, base.Add(time.Minute))
	}
}

// Workers claiming at once take every job exactly once.
func testJobConcurrentClaims(t *testing.T, h *harness) {
	ClaimRace(t, 100, h.jobs(), h.jobs(), h.jobs(), h.jobs())
}

// ClaimRace submits n jobs and has one worker per store claim and finish
// them at once, in batches of 5, until none is left: every job must be
// handled by exactly one worker. The stores may be one, or several
// processes' sharing a database.
func ClaimRace(t *testing.T, n int, stores ...tollgate.JobStore) {
	for range n {
		submit(t, stores[0], newJob("org/service-api", "production", base))
	}
	var (
		mu      sync.Mutex
		handled = map[string]string{}
		wg      sync.WaitGroup
	)
	for w, s := range stores {
		owner := fmt.Sprintf("worker-%d", w)
		wg.Go(func() {
			for {
				jobs, err := s.ClaimJobs(t.Context(), owner, base, time.Minute, 5)
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				for _, j := range jobs {
					mu.Lock()
					if other, ok := handled[j.ID]; ok {
						t.Errorf("job %s claimed by %s and %s", j.ID, other, owner)
					}
					handled[j.ID] = owner
					mu.Unlock()
					if _, err := s.UpdateJob(t.Context(), j.ID, owner, func(j *tollgate.Job) error { j.State = tollgate.JobAccepted; return nil }); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(handled) != n {
		t.Fatalf("%d jobs handled, want %d", len(handled), n)
	}
}

func testJobDurable(t *testing.T, h *harness) {
	j := submit(t, h.jobs(), newJob("org/service-api", "production", base))
	h.reopen()
	if got, err := h.jobs().Job(t.Context(), j.ID); err != nil || !sameJob(got, j) {
		t.Fatalf("after reopen: %+v, %v; want %+v", got, err, j)
	}
}
