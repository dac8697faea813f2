package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// jobsFixture is a dev server with gate jobs on, its worker running, a
// floor of a second of its clock.
func jobsFixture(t *testing.T, configure func(*Jobs)) *fixture {
	t.Helper()
	f := jobsFixtureIdle(t, configure)
	f.startWorker()
	return f
}

// jobsFixtureIdle is jobsFixture without its worker: startWorker starts it.
func jobsFixtureIdle(t *testing.T, configure func(*Jobs)) *fixture {
	t.Helper()
	return jobsFixtureOn(t, nil, configure)
}

// jobsFixtureOn is jobsFixtureIdle serving bundle (the shipped one when
// nil).
func jobsFixtureOn(t *testing.T, bundle *rego.Engine, configure func(*Jobs)) *fixture {
	t.Helper()
	return newFixtureWith(t, func(c *Config) {
		c.Dev = true
		if bundle != nil {
			c.Engine, c.Gate.Policies, c.Controls.Policies = bundle, bundle, bundle
		}
		j := &Jobs{Store: c.Store.(tollgate.JobStore), Floor: time.Second, Poll: 10 * time.Millisecond}
		configure(j)
		c.Jobs = j
	})
}

// bundleWith loads a copy of the shipped bundle whose global policy
// change has edited.
func bundleWith(t *testing.T, change func(global map[string]any)) *rego.Engine {
	t.Helper()
	return shippedBundleEdited(t, filepath.Join("config", "global_policy", "data.json"), func(raw []byte) []byte {
		var global map[string]any
		if err := json.Unmarshal(raw, &global); err != nil {
			t.Fatal(err)
		}
		change(global)
		raw, err := json.Marshal(global)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	})
}

// shippedBundleEdited loads a copy of the shipped bundle in which edit has
// rewritten file (a path inside the bundle).
func shippedBundleEdited(t *testing.T, file string, edit func([]byte) []byte) *rego.Engine {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := os.CopyFS(dir, os.DirFS("../bundles/tollgate")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := rego.NewEngine(t.Context(), dir, rego.EngineOptions{Poll: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *fixture) startWorker() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.api.RunJobs(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
}

// jobBodyFor is exampleRequest with run id, waiting until deadline.
func jobBodyFor(runID string, deadline time.Time, extra string) string {
	body := strings.Replace(exampleRequest, `"run_id":"123456789"`, `"run_id":"`+runID+`"`, 1)
	return strings.TrimSuffix(strings.TrimSpace(body), "}") + `, "wait_until": "` + deadline.Format(time.RFC3339) + `"` + extra + `}`
}

// waitJob polls the job until cond holds (at most 10 s of real time).
func (f *fixture) waitJob(id string, cond func(map[string]any) bool) map[string]any {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, j := f.do(http.MethodGet, "/v1/jobs/"+id, "", "")
		if code != http.StatusOK {
			f.t.Fatalf("GET job: %d %v", code, j)
		}
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("job %s never got there: %v", id, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func state(s tollgate.JobState) func(map[string]any) bool {
	return func(j map[string]any) bool { return j["state"] == string(s) }
}

// A deployment refused by the time window waits at the gate, and is
// accepted when the window opens: each check a recorded decision.
func TestJobWaitsForTheWindow(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	f.setNow("2026-11-23T07:59:00+01:00") // Monday, before the 08:00 Paris window
	deadline := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	code, j := f.post("/v1/jobs", jobBodyFor("run-1", deadline, ""))
	if code != http.StatusAccepted || j["state"] != "queued" {
		t.Fatalf("POST /v1/jobs = %d %v", code, j)
	}
	id := j["job_id"].(string)
	waiting := f.waitJob(id, state(tollgate.JobWaiting))
	if codes := reasonCodes(map[string]any{"reasons": waiting["waiting_on"]}); len(codes) != 1 || codes[0] != tollgate.CodeTimeWindowViolation {
		t.Fatalf("waiting on %v, want the time window", codes)
	}
	f.setNow("2026-11-23T08:01:00+01:00")
	done := f.waitJob(id, state(tollgate.JobAccepted))
	decisions := done["decisions"].([]any)
	if len(decisions) < 2 {
		t.Fatalf("accepted after %d checks, want a refusal then an acceptance", len(decisions))
	}
	_, d := f.do(http.MethodGet, "/v1/decisions/"+decisions[len(decisions)-1].(string), "", "")
	if d["status"] != "accepted" {
		t.Fatalf("the last check's decision: %v", d)
	}
}

// A refusal time cannot clear ends the job refused at once.
func TestJobRefusedForGood(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	body := strings.Replace(jobBodyFor("run-2", time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), ""), `"branch":"main"`, `"branch":"feature/x"`, 1)
	_, j := f.post("/v1/jobs", body)
	done := f.waitJob(j["job_id"].(string), state(tollgate.JobRefused))
	if len(done["decisions"].([]any)) != 1 {
		t.Fatalf("refused job %v, want one check", done)
	}
}

// The same submission twice is one job; a job past its deadline expires;
// a job can be cancelled once.
func TestJobIdempotencyDeadlineCancel(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	f.setNow("2026-11-23T07:00:00+01:00")
	deadline := time.Date(2026, 11, 23, 6, 30, 0, 0, time.UTC) // 07:30 Paris, before the window opens
	code, first := f.post("/v1/jobs", jobBodyFor("run-3", deadline, ""))
	code2, again := f.post("/v1/jobs", jobBodyFor("run-3", deadline, ""))
	if code != http.StatusAccepted || code2 != http.StatusOK || again["job_id"] != first["job_id"] {
		t.Fatalf("two submissions: %d %v, %d %v; want 202 then 200, one job", code, first, code2, again)
	}
	id := first["job_id"].(string)
	f.waitJob(id, state(tollgate.JobWaiting))
	f.setNow("2026-11-23T07:31:00+01:00")
	f.waitJob(id, state(tollgate.JobExpired))

	f.setNow("2026-11-23T07:00:00+01:00")
	_, other := f.post("/v1/jobs", jobBodyFor("run-4", deadline, ""))
	oid := other["job_id"].(string)
	if code, j := f.do(http.MethodDelete, "/v1/jobs/"+oid, "", ""); code != http.StatusOK || j["state"] != "cancelled" {
		t.Fatalf("DELETE = %d %v", code, j)
	}
	if code, _ := f.do(http.MethodDelete, "/v1/jobs/"+oid, "", ""); code != http.StatusConflict {
		t.Fatalf("second DELETE = %d, want 409", code)
	}
	if code, _ := f.do(http.MethodDelete, "/v1/jobs/nope", "", ""); code != http.StatusNotFound {
		t.Fatalf("DELETE of no job = %d, want 404", code)
	}
}

// Bad submissions are refused with 400 and store nothing; past the limit
// of open jobs, 429. The bounds are the bundle's global_policy.jobs: here
// max_wait_hours 24 and max_open_per_repository 1, below the server's.
func TestJobSubmissionErrors(t *testing.T) {
	bundle := bundleWith(t, func(global map[string]any) {
		global["jobs"] = map[string]any{"max_wait_hours": 24, "max_open_per_repository": 1}
	})
	f := jobsFixtureOn(t, bundle, func(j *Jobs) { j.MaxWait, j.MaxOpenPerRepo = 48*time.Hour, 5 })
	f.startWorker()
	f.setNow("2026-11-23T07:00:00+01:00")
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	for name, c := range map[string]struct{ body, want string }{
		"no deadline":      {exampleRequest, "wait_until is required"},
		"a past deadline":  {jobBodyFor("r", now.Add(-time.Minute), ""), "not in the future"},
		"too far":          {jobBodyFor("r", now.Add(25*time.Hour), ""), "more than 24h0m0s away: a job waits at most that long (global_policy.jobs.max_wait_hours)"},
		"an unknown field": {jobBodyFor("r", now.Add(time.Hour), `, "wait": "1h"`), "wait"},
		"a bad request":    {strings.Replace(jobBodyFor("r", now.Add(time.Hour), ""), `"org/service-api"`, `""`, 1), "repository"},
		"a bad key":        {jobBodyFor("r", now.Add(time.Hour), `, "idempotency_key": "a\u202eb"`), "idempotency_key"},
		"scan and scan_id": {jobBodyFor("r", now.Add(time.Hour), `, "scan_id": "x", "scan": {"format": "trivy", "report": {}}`), "either scan or scan_id"},
	} {
		code, j := f.post("/v1/jobs", c.body)
		if code != http.StatusBadRequest || !strings.Contains(j["error"].(map[string]any)["message"].(string), c.want) {
			t.Errorf("%s: %d %v; want 400 saying %q", name, code, j, c.want)
		}
	}
	if code, j := f.do(http.MethodGet, "/v1/jobs", "", ""); code != http.StatusOK || len(j["jobs"].([]any)) != 0 {
		t.Fatalf("jobs after bad submissions: %d %v", code, j)
	}
	if code, _ := f.post("/v1/jobs", jobBodyFor("a", now.Add(time.Hour), "")); code != http.StatusAccepted {
		t.Fatalf("first job: %d", code)
	}
	a := f.send("", http.MethodPost, "/v1/jobs", jobBodyFor("b", now.Add(time.Hour), ""))
	wantError(t, "a second open job of the repository", a, http.StatusTooManyRequests, tollgate.ERateLimited, "org/service-api has 1 jobs waiting", map[string]string{"Retry-After": "1"})
	// The first one submitted again, at the limit: the same job, not a 429.
	if code, j := f.post("/v1/jobs", jobBodyFor("a", now.Add(time.Hour), "")); code != http.StatusOK || j["state"] == nil {
		t.Fatalf("the first job submitted again at the limit: %d %v, want 200 and the job", code, j)
	}
}

// A job waiting on a freeze is checked again as soon as the freeze is
// lifted, not at the freeze's end.
func TestJobWokenByALiftedFreeze(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	f.setNow("2026-11-23T10:00:00+01:00")
	code, fz := f.post("/v1/freezes", `{"reason": "failover", "environments": ["production"], "ttl": "6h"}`)
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("freeze: %d %v", code, fz)
	}
	_, j := f.post("/v1/jobs", jobBodyFor("run-5", time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC), ""))
	id := j["job_id"].(string)
	waiting := f.waitJob(id, state(tollgate.JobWaiting))
	next, _ := time.Parse(time.RFC3339, waiting["next_check_at"].(string))
	if code, _ := f.do(http.MethodDelete, "/v1/freezes/"+fz["id"].(string), "", ""); code != http.StatusOK {
		t.Fatalf("lift: %d", code)
	}
	woken := f.waitJob(id, func(j map[string]any) bool { return j["state"] != string(tollgate.JobWaiting) })
	if woken["state"] != string(tollgate.JobAccepted) {
		t.Fatalf("after the lift: %v, want accepted (it was due at %s)", woken, next)
	}
}

// A freeze lifted through one replica wakes the jobs another replica's
// worker checks: that worker reads the controls in force afresh for its
// checks, not from a cache that may still hold the freeze (here cached for
// an hour), which would put the job back to wait for the freeze's end.
func TestJobWokenOnAnotherReplica(t *testing.T) {
	f := jobsFixtureIdle(t, func(j *Jobs) {}) // replica a: no worker
	cfg := f.api.cfg
	cfg.Controls = &rego.Controls{Store: f.store, Policies: f.engine, NewID: cfg.Gate.NewID, Now: cfg.Gate.Now, Refresh: time.Hour}
	gate := *cfg.Gate
	gate.Controls = cfg.Controls
	cfg.Gate = &gate
	cfg.Jobs = &Jobs{Store: f.store, Floor: time.Second, Poll: 10 * time.Millisecond, Owner: "replica-b"}
	cfg.Registry = prometheus.NewRegistry()
	cfg.Metrics = NewMetrics(cfg.Registry)
	b := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.RunJobs(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	code, fz := f.post("/v1/freezes", `{"reason": "failover", "environments": ["production"], "ttl": "6h"}`)
	if code != http.StatusCreated {
		t.Fatalf("freeze: %d %v", code, fz)
	}
	_, j := f.post("/v1/jobs", jobBodyFor("run-b", time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC), ""))
	id := j["job_id"].(string)
	f.waitJob(id, state(tollgate.JobWaiting)) // checked by b, which now caches the freeze
	if code, _ := f.do(http.MethodDelete, "/v1/freezes/"+fz["id"].(string), "", ""); code != http.StatusOK {
		t.Fatalf("lift: %d", code)
	}
	woken := f.waitJob(id, func(j map[string]any) bool { return len(j["decisions"].([]any)) == 2 })
	if woken["state"] != string(tollgate.JobAccepted) {
		t.Fatalf("after the lift on replica a, replica b's check left %v; want accepted", woken)
	}
}

// The worker's checks are counted by the state they leave the job in,
// and their lag observed: /metrics shows them.
func TestJobMetrics(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	f.setNow("2026-11-23T07:59:00+01:00")
	_, j := f.post("/v1/jobs", jobBodyFor("run-m", time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC), ""))
	f.waitJob(j["job_id"].(string), state(tollgate.JobWaiting))
	f.setNow("2026-11-23T08:01:00+01:00")
	f.waitJob(j["job_id"].(string), state(tollgate.JobAccepted))
	code, _, body := f.get("", "/metrics")
	raw := string(body)
	for _, want := range []string{`tollgate_job_checks_total{state="waiting"} 1`, `tollgate_job_checks_total{state="accepted"} 1`, "tollgate_job_check_lag_seconds_count 2"} {
		if code != http.StatusOK || !strings.Contains(raw, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Jobs waiting on one cooldown are accepted one per cooldown, oldest
// first: the younger ones are not even checked until the older has ended.
func TestJobsShareACooldownOldestFirst(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	f.setNow("2026-11-23T10:00:00+01:00") // Monday, in the window; deploy-prod cools down 30 min
	deadline := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	var ids []string
	for _, run := range []string{"first", "second", "third"} {
		_, j := f.post("/v1/jobs", jobBodyFor(run, deadline, ""))
		ids = append(ids, j["job_id"].(string))
	}
	f.waitJob(ids[0], state(tollgate.JobAccepted))
	second := f.waitJob(ids[1], state(tollgate.JobWaiting))
	if codes := reasonCodes(map[string]any{"reasons": second["waiting_on"]}); len(codes) != 1 || codes[0] != tollgate.CodeCooldown {
		t.Fatalf("the second job waits on %v, want the cooldown", codes)
	}
	checkAt(t, "the second job", second, "2026-11-23T09:30:00Z")
	if _, third := f.do(http.MethodGet, "/v1/jobs/"+ids[2], "", ""); third["state"] != "queued" {
		t.Fatalf("the third job was checked before the second ended: %v", third)
	}
	f.setNow("2026-11-23T10:31:00+01:00")
	f.waitJob(ids[1], state(tollgate.JobAccepted))
	third := f.waitJob(ids[2], state(tollgate.JobWaiting))
	checkAt(t, "the third job", third, "2026-11-23T10:01:00Z")
	f.setNow("2026-11-23T11:02:00+01:00") // past the check's jitter
	f.waitJob(ids[2], state(tollgate.JobAccepted))
}

// checkAt fails unless job is checked again at when, give or take its
// jitter (a tenth of the floor).
func checkAt(t *testing.T, what string, job map[string]any, when string) {
	t.Helper()
	got, err1 := time.Parse(time.RFC3339, job["next_check_at"].(string))
	want, err2 := time.Parse(time.RFC3339, when)
	if err1 != nil || err2 != nil || got.Before(want) || got.After(want.Add(100*time.Millisecond)) {
		t.Fatalf("%s is checked again at %v, want %s (the cooldown's end)", what, job["next_check_at"], when)
	}
}

// A worker that dies after recording a check's decision, before it
// updates the job, leaves the check to the next worker once its lease
// runs out: that one finds the decision under the check's ID and takes
// it, instead of deciding again. The history holds one decision.
func TestJobCheckDecidedOnceAcrossAWorkerDeath(t *testing.T) {
	f := jobsFixtureIdle(t, func(j *Jobs) {})
	f.setNow("2026-11-23T10:00:00+01:00")
	store := f.api.cfg.Jobs.Store
	j, _, err := store.SubmitJob(t.Context(), tollgate.Job{ID: "01a23d50-0000-7000-8000-000000000001", IdempotencyKey: "dead",
		Repository: "org/service-api", Pipeline: "deploy-prod", Branch: "main", Environment: "production",
		Request: []byte(exampleRequest), CreatedAt: *f.now.Load(), UpdatedAt: *f.now.Load(),
		WaitUntil: f.now.Load().Add(time.Hour), NextCheckAt: *f.now.Load()}, tollgate.JobBounds{})
	if err != nil {
		t.Fatal(err)
	}
	// The worker that dies: it claims the job and records the check's
	// decision, then is gone.
	claimed, err := store.ClaimJobs(t.Context(), "dead", *f.now.Load(), time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	req, scan, _ := decodeEvaluation(j.Request)
	first, err := f.api.cfg.Gate.Evaluate(rego.WithDecisionID(t.Context(), checkID(claimed[0])), req, scan)
	if err != nil || first.Decision.Status != tollgate.Accepted {
		t.Fatalf("the dead worker's check: %+v, %v", first.Decision, err)
	}
	before := f.countDecisions()
	f.setNow("2026-11-23T10:01:01+01:00") // its lease has run out
	f.startWorker()
	done := f.waitJob(j.ID, state(tollgate.JobAccepted))
	if ids := done["decisions"].([]any); len(ids) != 1 || ids[0] != first.Decision.ID {
		t.Fatalf("the job's decisions %v, want the dead worker's %s", ids, first.Decision.ID)
	}
	if after := f.countDecisions(); after != before {
		t.Fatalf("%d decisions recorded by the second worker, want none", after-before)
	}
}

// A job's state is outside the ledger: one edited to accepted around
// tollgate, its last decision a refusal, is never served as accepted (the
// answer `check --wait` deploys on) but EInternal, by GET, the list and a
// resubmission alike.
func TestJobEditedToAcceptedIsNotServed(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	body := strings.Replace(jobBodyFor("run-e", time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), ""), `"branch":"main"`, `"branch":"feature/x"`, 1)
	_, j := f.post("/v1/jobs", body)
	id := j["job_id"].(string)
	f.waitJob(id, state(tollgate.JobRefused))
	if _, err := f.api.cfg.Jobs.Store.UpdateJob(t.Context(), id, "", func(j *tollgate.Job) error {
		j.State = tollgate.JobAccepted
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for what, a := range map[string]answer{
		"GET":          f.send("", http.MethodGet, "/v1/jobs/"+id, ""),
		"the list":     f.send("", http.MethodGet, "/v1/jobs", ""),
		"resubmission": f.send("", http.MethodPost, "/v1/jobs", body),
	} {
		wantError(t, what, a, http.StatusInternalServerError, tollgate.EInternal, "", nil)
	}
}

// The worker counts the open jobs of the store, by state, and the age of
// the oldest, for the metrics.
func TestJobMetricsCountTheOpenJobs(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) { j.StatsEvery = 10 * time.Millisecond })
	f.setNow("2026-11-23T07:00:00+01:00") // before production's window: jobs wait
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	var first string
	for _, run := range []string{"a", "b"} { // one queue: b is queued behind a
		code, j := f.post("/v1/jobs", jobBodyFor(run, now.Add(time.Hour*3), ""))
		if code != http.StatusAccepted {
			t.Fatalf("submit %s: %d %v", run, code, j)
		}
		if first == "" {
			first = j["job_id"].(string)
		}
	}
	f.waitJob(first, state(tollgate.JobWaiting))
	f.advance(10 * time.Minute)
	reg := f.api.cfg.Registry
	deadline := time.Now().Add(10 * time.Second)
	for {
		waiting, queued := counter(t, reg, "tollgate_jobs_open", "state", "waiting"), counter(t, reg, "tollgate_jobs_open", "state", "queued")
		oldest := counter(t, reg, "tollgate_job_oldest_open_seconds", "", "")
		if waiting == 1 && queued == 1 && oldest == 600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tollgate_jobs_open waiting %v, queued %v, oldest %v s; want 1, 1, 600", waiting, queued, oldest)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// GET /v1/jobs/{id}?wait= with checks, the number of checks the caller has
// seen, answers at once when the job has had others, even before the
// request (a check between a submission and the first look); without
// checks, or with the current number, it waits for the next change.
func TestJobWaitFromTheChecksSeen(t *testing.T) {
	f := jobsFixture(t, func(j *Jobs) {})
	f.setNow("2026-11-23T07:00:00+01:00") // before production's window: the job waits
	_, j := f.post("/v1/jobs", jobBodyFor("seen", time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC), ""))
	id := j["job_id"].(string)
	f.waitJob(id, state(tollgate.JobWaiting))
	for _, c := range []struct {
		query string
		waits bool
	}{{"wait=1s&checks=0", false}, {"wait=1s&checks=1", true}, {"wait=1s", true}} {
		start := time.Now()
		code, got := f.do(http.MethodGet, "/v1/jobs/"+id+"?"+c.query, "", "")
		took := time.Since(start)
		if code != http.StatusOK || got["state"] != string(tollgate.JobWaiting) || (took >= 900*time.Millisecond) != c.waits {
			t.Errorf("?%s: %d %v after %s; want the waiting job, waiting for a change: %v", c.query, code, got["state"], took, c.waits)
		}
	}
	if code, got := f.do(http.MethodGet, "/v1/jobs/"+id+"?checks=-1", "", ""); code != http.StatusBadRequest {
		t.Errorf("?checks=-1: %d %v, want 400", code, got)
	}
}
