package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// Jobs configures gate jobs (POST /v1/jobs): requests that wait at the
// gate until they are allowed. Zero fields take their defaults.
type Jobs struct {
	Store tollgate.JobStore

	// The bounds of jobs, unless the active bundle's global_policy.jobs
	// sets them.
	MaxWait        time.Duration // the latest wait_until, from now; 24 h
	MaxOpen        int           // open jobs in the store, all repositories; 10,000
	MaxOpenPerRepo int           // open jobs of one repository; 100
	// Floor is the least time between two checks of a job (and the wait
	// when the policy knows no end); 5 s. Jitter adds up to a tenth of the
	// wait, so that jobs due together spread out.
	Floor time.Duration
	Lease time.Duration // how long a worker holds a job it checks; 1 min
	Poll  time.Duration // how often an idle worker looks for due jobs; 1 s
	// StatsEvery is how often the worker counts the open jobs for the
	// metrics; 15 s.
	StatsEvery time.Duration
	// Owner names this process's worker in leases; a random ID when "".
	Owner string
}

func (j *Jobs) defaults() {
	if j.MaxWait <= 0 {
		j.MaxWait = rego.DefaultJobMaxWaitHours * time.Hour
	}
	if j.MaxOpen <= 0 {
		j.MaxOpen = 10_000
	}
	if j.MaxOpenPerRepo <= 0 {
		j.MaxOpenPerRepo = 100
	}
	if j.Floor <= 0 {
		j.Floor = 5 * time.Second
	}
	if j.Lease <= 0 {
		j.Lease = time.Minute
	}
	if j.Poll <= 0 {
		j.Poll = time.Second
	}
	if j.StatsEvery <= 0 {
		j.StatsEvery = 15 * time.Second
	}
	if j.Owner == "" {
		j.Owner = "worker-" + uuid.NewString()
	}
}

func (s *Server) jobs() (*Jobs, error) {
	if s.cfg.Jobs == nil {
		return nil, newError(http.StatusNotFound, tollgate.ENotFound, "gate jobs are not enabled on this server")
	}
	return s.cfg.Jobs, nil
}

// bounds are the server's job bounds with those the active bundle's
// global_policy.jobs sets in their place.
func (j *Jobs) bounds(p *rego.Policy) (maxWait time.Duration, maxOpen, maxOpenPerRepo int) {
	maxWait, maxOpen, maxOpenPerRepo = j.MaxWait, j.MaxOpen, j.MaxOpenPerRepo
	if policy := p.Bundle().Config.GlobalPolicy.Jobs; policy != nil {
		if policy.MaxWaitHours > 0 {
			maxWait = time.Duration(policy.MaxWaitHours) * time.Hour
		}
		if policy.MaxOpen > 0 {
			maxOpen = policy.MaxOpen
		}
		if policy.MaxOpenPerRepository > 0 {
			maxOpenPerRepo = policy.MaxOpenPerRepository
		}
	}
	return maxWait, maxOpen, maxOpenPerRepo
}

// jobBody is POST /v1/jobs: an evaluation, with how long it may wait.
type jobBody struct {
	evaluationBody
	WaitUntil      time.Time `json:"wait_until"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
}

// submitJob is POST /v1/jobs: 202 and the new job, or 200 and the job
// already submitted with the same idempotency key.
func (s *Server) submitJob(c echo.Context) error {
	jobs, err := s.jobs()
	if err != nil {
		return err
	}
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	var b jobBody
	if err := tollgate.DecodeStrict(body, &b); err != nil {
		return err
	}
	// The evaluation alone, checked as POST /v1/evaluate checks it: what
	// each check of the job evaluates.
	eval, err := json.Marshal(b.evaluationBody)
	if err != nil {
		return err
	}
	req, _, err := decodeEvaluation(eval)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	maxWait, _, _ := jobs.bounds(s.cfg.Engine.Policy())
	switch {
	case b.WaitUntil.IsZero():
		return tollgate.Errorf(tollgate.EInvalid, "wait_until is required: the RFC 3339 time after which the job gives up")
	case !b.WaitUntil.After(now):
		return tollgate.Errorf(tollgate.EInvalid, "wait_until %s is not in the future", b.WaitUntil.Format(time.RFC3339))
	case b.WaitUntil.After(now.Add(maxWait)):
		return tollgate.Errorf(tollgate.EInvalid, "wait_until %s is more than %s away: a job waits at most that long (global_policy.jobs.max_wait_hours)",
			b.WaitUntil.Format(time.RFC3339), maxWait)
	}
	key := b.IdempotencyKey
	if key == "" {
		k, _ := json.Marshal([]string{req.Repository, req.Pipeline, req.Metadata.RunID, req.Metadata.Environment})
		key = string(k)
	} else if err := tollgate.CheckText("idempotency_key", key); err != nil {
		return err
	}
	ctx, err := withLanguages(c)
	if err != nil {
		return err
	}
	j, created, err := s.enqueue(ctx, jobs, req, eval, b.WaitUntil, key, nil)
	if err != nil {
		return err
	}
	return answerJob(c, j, created)
}

// answerJob answers a submission with its job: 202 and the job when it
// created it, 200 and the job submitted before under the same key when it
// did not; Location names the job either way.
func answerJob(c echo.Context, j tollgate.Job, created bool) error {
	c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+j.ID)
	if !created {
		return c.JSON(http.StatusOK, j)
	}
	return c.JSON(http.StatusAccepted, j)
}

// enqueue stores the job of an evaluation (req, and eval its body as
// checked) that may wait until waitUntil, under the idempotency key,
// telling callback when it ends; or returns the job stored already under
// the key, with created false, checked as served jobs are.
func (s *Server) enqueue(ctx context.Context, jobs *Jobs, req tollgate.Request, eval []byte, waitUntil time.Time, key string, callback json.RawMessage) (tollgate.Job, bool, error) {
	_, maxOpen, maxOpenPerRepo := jobs.bounds(s.cfg.Engine.Policy())
	now := s.cfg.Now().UTC()
	// A job submitted again (a retried CI step) is found before the bounds
	// are counted: it takes no new place.
	j, created, err := jobs.Store.SubmitJob(ctx, tollgate.Job{
		ID: uuid.Must(uuid.NewV7()).String(), IdempotencyKey: key,
		Repository: req.Repository, Pipeline: req.Pipeline, Branch: req.Branch, Environment: req.Metadata.Environment, Request: eval,
		CreatedAt: now, UpdatedAt: now, WaitUntil: waitUntil.UTC(), NextCheckAt: now, Callback: callback,
		Language: jobLanguage(ctx, s.cfg.Engine.Policy(), req),
	}, tollgate.JobBounds{PerRepository: maxOpenPerRepo, Total: maxOpen})
	if tollgate.ErrorCode(err) == tollgate.ERateLimited {
		return tollgate.Job{}, false, retryAfter(newError(http.StatusTooManyRequests, tollgate.ERateLimited, err.Error()), jobs.Floor)
	}
	if err != nil {
		return tollgate.Job{}, false, err
	}
	if !created {
		return j, false, s.checkServedJobs(ctx, []tollgate.Job{j})
	}
	s.wakeWorker()
	return j, true, nil
}

// jobLanguage is the language a job's checks speak: the one the
// submission's Accept-Language chose in the active bundle, or "" when it
// did not ask, so that each check takes the policy's default then.
func jobLanguage(ctx context.Context, p *rego.Policy, r tollgate.Request) string {
	langs := rego.LanguagesFrom(ctx)
	if langs == nil {
		return ""
	}
	return p.Language(r, langs)
}

// checkServedJobs refuses to serve a job as accepted unless its last
// decision, read through the store (which serves a decision only from its
// hashed record), is an acceptance: a job's state is outside the ledger,
// and `check --wait` lets a deployment through on it. A job edited around
// tollgate is EInternal, as a decision row that disagrees with its record
// is.
func (s *Server) checkServedJobs(ctx context.Context, jobs []tollgate.Job) error {
	for _, j := range jobs {
		if j.State != tollgate.JobAccepted {
			continue
		}
		status := tollgate.Status("none")
		if len(j.Decisions) > 0 {
			switch rec, err := s.cfg.Store.Decision(ctx, j.Decisions[len(j.Decisions)-1]); {
			case err == nil:
				status = rec.Decision.Status
			case tollgate.ErrorCode(err) != tollgate.ENotFound:
				return err
			}
		}
		if status != tollgate.Accepted {
			return tollgate.Errorf(tollgate.EInternal,
				"job %s is accepted but its last decision is not an acceptance (%q): the store was edited around tollgate; run `tollgate ledger verify`", j.ID, status)
		}
	}
	return nil
}

// maxJobWait bounds GET /v1/jobs/{id}?wait=.
const maxJobWait = time.Minute

// getJob is GET /v1/jobs/{id}; with ?wait=30s it answers when the job
// has changed (a check ran, it ended) or the wait is over.
func (s *Server) getJob(c echo.Context) error {
	jobs, err := s.jobs()
	if err != nil {
		return err
	}
	var (
		wait   time.Duration
		checks = -1 // the checks the caller has seen; -1: as many as the job has now
	)
	for name, v := range c.QueryParams() {
		switch name {
		case "wait":
			if wait, err = time.ParseDuration(v[0]); err != nil || wait < 0 || wait > maxJobWait {
				return tollgate.Errorf(tollgate.EInvalid, "wait must be a duration from 0s to %s, like 30s", maxJobWait)
			}
		case "checks":
			if checks, err = strconv.Atoi(v[0]); err != nil || checks < 0 {
				return tollgate.Errorf(tollgate.EInvalid, "checks must be the number of checks of the job already seen, 0 or more")
			}
		default:
			return tollgate.Errorf(tollgate.EInvalid, "unknown query parameter %q: they are wait and checks", name)
		}
	}
	ctx := c.Request().Context()
	j, err := jobs.Store.Job(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	// A caller that names the checks it has seen hears of any since, even
	// one made before this request (between its submission and its first
	// look, say): the wait is over at once.
	if checks >= 0 && len(j.Decisions) != checks {
		wait = 0
	}
	deadline := time.Now().Add(wait)
	for j.State.Open() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(250*time.Millisecond, time.Until(deadline))):
		}
		next, err := jobs.Store.Job(ctx, j.ID)
		if err != nil {
			return err
		}
		if next.State != j.State || len(next.Decisions) != len(j.Decisions) {
			j = next
			break
		}
	}
	if err := s.checkServedJobs(ctx, []tollgate.Job{j}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, j)
}

// oneOf is v, the value of the query parameter param, if it is one of
// allowed; an EInvalid error that lists them otherwise.
func oneOf[T ~string](param, v string, allowed []T) (T, error) {
	if !slices.Contains(allowed, T(v)) {
		return "", tollgate.Errorf(tollgate.EInvalid, "%s must be one of %v", param, allowed)
	}
	return T(v), nil
}

// listJobs is GET /v1/jobs.
func (s *Server) listJobs(c echo.Context) error {
	jobs, err := s.jobs()
	if err != nil {
		return err
	}
	var f tollgate.JobFilter
	for name := range c.QueryParams() {
		switch v := c.QueryParam(name); name {
		case "state":
			if f.State, err = oneOf("state", v, tollgate.JobStates); err != nil {
				return err
			}
		case "repository":
			f.Repository = v
		case "environment":
			f.Environment = v
		case "limit":
			if f.Limit, err = parseLimit(v); err != nil {
				return err
			}
		default:
			return tollgate.Errorf(tollgate.EInvalid, "unknown query parameter %q: filters are state, repository, environment and limit", name)
		}
	}
	list, err := jobs.Store.Jobs(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if err := s.checkServedJobs(c.Request().Context(), list); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"jobs": list})
}

// cancelJob is DELETE /v1/jobs/{id}: an open job is cancelled, even while
// a worker checks it (the worker's result is then dropped; a decision it
// recorded stays in the history).
func (s *Server) cancelJob(c echo.Context) error {
	jobs, err := s.jobs()
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	j, err := jobs.Store.UpdateJob(c.Request().Context(), c.Param("id"), "", func(j *tollgate.Job) error {
		if !j.State.Open() {
			return tollgate.Errorf(tollgate.EConflict, "job %s is %s already", j.ID, j.State)
		}
		j.State, j.UpdatedAt = tollgate.JobCancelled, now
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, j)
}

// wakeWorker has this process's worker look for due jobs now.
func (s *Server) wakeWorker() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// WakeJobs makes every waiting job due now (a freeze lifted, an incident
// ended, an exception approved): every replica's worker sees them at its
// next look, this one's at once.
func (s *Server) WakeJobs(ctx context.Context) {
	if s.cfg.Jobs == nil {
		return
	}
	if _, err := s.cfg.Jobs.Store.WakeJobs(ctx, s.cfg.Now()); err != nil {
		s.cfg.Logger.Warn("could not wake the waiting jobs; they are checked at their time", "err", err)
		return
	}
	s.wakeWorker()
}

// RunJobs is the worker: until ctx ends, it claims the jobs due, a few at
// a time, and checks each. Every serve runs one; on PostgreSQL, replicas
// share the jobs (a job is claimed by one at a time).
func (s *Server) RunJobs(ctx context.Context) {
	if s.cfg.Jobs == nil {
		return
	}
	jobs := s.cfg.Jobs
	timer := time.NewTimer(0)
	defer timer.Stop()
	stats := time.NewTicker(jobs.StatsEvery)
	defer stats.Stop()
	s.countJobs(ctx)
	failing := false // says a failure once, not at every look
	for {
		select {
		case <-ctx.Done():
			return
		case <-stats.C:
			s.countJobs(ctx)
			continue
		case <-timer.C:
		case <-s.wake:
		}
		for ctx.Err() == nil {
			claimed, err := jobs.Store.ClaimJobs(ctx, jobs.Owner, s.cfg.Now(), jobs.Lease, 8)
			if err != nil {
				if !failing && ctx.Err() == nil {
					s.cfg.Logger.Warn("could not claim due jobs; trying again", "err", err)
				}
				failing = true
				break
			}
			failing = false
			if len(claimed) > 0 && s.cfg.Controls != nil {
				// The controls in force read afresh: a job woken by a freeze
				// lifted through another replica must not be checked against
				// a cache that still holds the freeze.
				s.cfg.Controls.Invalidate()
			}
			for _, j := range claimed {
				s.checkJob(ctx, j)
			}
			if len(claimed) == 0 {
				break
			}
		}
		timer.Reset(jobs.Poll)
	}
}

// countJobs sets the metrics of open jobs from the store; when it cannot
// count them, they keep their last values, and the failure counts in
// tollgate_store_errors_total{operation="job_stats"}.
func (s *Server) countJobs(ctx context.Context) {
	start := time.Now()
	stats, err := s.cfg.Jobs.Store.JobStats(ctx)
	s.cfg.Metrics.observeStore("job_stats", time.Since(start), err)
	if err != nil {
		return
	}
	oldest := 0.0
	if !stats.OldestOpen.IsZero() {
		oldest = max(0, s.cfg.Now().Sub(stats.OldestOpen).Seconds())
	}
	for _, state := range tollgate.JobStates {
		if state.Open() {
			s.cfg.Metrics.jobsOpen.WithLabelValues(string(state)).Set(float64(stats.Open[state]))
		}
	}
	s.cfg.Metrics.jobOldest.Set(oldest)
}

// checkJob evaluates a claimed job once, as POST /v1/evaluate would
// (recorded), and stores what follows: accepted; waiting until the policy
// says the refusal can clear (never sooner than the floor, never past the
// deadline); refused for a reason time cannot clear; expired.
func (s *Server) checkJob(ctx context.Context, j tollgate.Job) {
	jobs := s.cfg.Jobs
	now := s.cfg.Now().UTC()
	s.cfg.Metrics.jobLag.Observe(max(0, now.Sub(j.NextCheckAt).Seconds()))
	start := time.Now() // the wall clock: how long the check takes, as evaluate measures
	var change func(*tollgate.Job) error
	if !now.Before(j.WaitUntil) {
		change = func(j *tollgate.Job) error { j.State = tollgate.JobExpired; return nil }
	} else if req, scan, err := decodeEvaluation(j.Request); err != nil {
		change = func(j *tollgate.Job) error {
			j.State, j.Reasons = tollgate.JobRefused, []tollgate.Reason{{Code: tollgate.EInvalid, Message: err.Error()}}
			return nil
		}
	} else if rec, err := s.evaluateCheck(ctx, j, req, scan); err != nil {
		// Not decided, as far as this worker knows (the store is down, the
		// bundle is not ready; or the decision was recorded and the answer
		// lost): the job is left as it is, leased, and the check runs again
		// under the same decision ID when the lease runs out.
		s.cfg.Logger.Warn("job check failed; trying again when its lease runs out", "job", j.ID, "lease", jobs.Lease, "err", err)
		s.cfg.Metrics.jobChecks.WithLabelValues("failed").Inc()
		return
	} else {
		s.cfg.Metrics.observeDecision("job", rec.Decision, time.Since(start))
		d := rec.Decision
		change = func(j *tollgate.Job) error {
			j.Decisions = append(j.Decisions, d.ID)
			if rec.CooldownKey != nil {
				j.CooldownKey = rec.CooldownKey
			}
			j.Reasons, j.WaitingOn = d.Reasons, []tollgate.Reason{}
			switch waiting, at := waitFor(d); {
			case d.Status == tollgate.Accepted:
				j.State = tollgate.JobAccepted
			case waiting:
				j.State, j.WaitingOn = tollgate.JobWaiting, d.Reasons
				j.NextCheckAt = schedule(now, at, j.WaitUntil, jobs.Floor)
			default:
				j.State = tollgate.JobRefused
			}
			return nil
		}
	}
	updated, err := jobs.Store.UpdateJob(ctx, j.ID, jobs.Owner, func(job *tollgate.Job) error {
		job.UpdatedAt = now
		return change(job)
	})
	switch {
	case err != nil && ctx.Err() == nil:
		s.cfg.Logger.Info("job not updated after its check", "job", j.ID, "err", err)
	case err == nil:
		s.cfg.Metrics.jobChecks.WithLabelValues(string(updated.State)).Inc()
	}
}

// evaluateCheck evaluates the check of j that is due, recorded under the
// check's own decision ID (checkID): if a worker died after recording it
// but before updating the job, the insert fails as a duplicate, and the
// decision recorded then is this check's. A scheduled check is decided
// once, whichever worker runs it.
func (s *Server) evaluateCheck(ctx context.Context, j tollgate.Job, req tollgate.Request, scan rego.ScanSource) (tollgate.Record, error) {
	id := checkID(j)
	if j.Language != "" {
		ctx = rego.WithLanguages(ctx, []string{j.Language})
	}
	rec, err := s.cfg.Gate.Evaluate(rego.WithDecisionID(ctx, id), req, scan)
	if err != nil && tollgate.ErrorCode(err) == tollgate.EInternal {
		if earlier, derr := s.cfg.Store.Decision(ctx, id); derr == nil {
			s.cfg.Logger.Info("job check decided already, by a worker that stopped before it updated the job", "job", j.ID, "decision", id)
			return earlier, nil
		}
	}
	return rec, err
}

// checkID is the decision ID of the check of j that is due: a UUIDv7 whose
// time is when the check was due (decision IDs sort by time) and whose
// other bits are drawn from the job's ID and the check's number, so that
// every worker running this check names it the same.
func checkID(j tollgate.Job) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "tollgate.job-check\x00%s\x00%d", j.ID, len(j.Decisions)+1))
	var u uuid.UUID
	copy(u[:], sum[:16])
	ms := uint64(j.NextCheckAt.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return u.String()
}

// waitFor says whether a refusal can clear with time alone, and from
// when, if the policy knows (zero: unknown): the decision's next_check_at,
// which the policy gives only when every standing reason is one time can
// clear (see When a refusal can clear).
func waitFor(d tollgate.Decision) (waiting bool, at time.Time) {
	return d.Status == tollgate.Refused && d.NextCheckAt.Waiting, d.NextCheckAt.At
}

// schedule is the next check of a job refused at now that may clear at at
// (zero: unknown): at, but no sooner than the floor, with jitter, and no
// later than the deadline, at which it expires.
func schedule(now, at, deadline time.Time, floor time.Duration) time.Time {
	next := now.Add(floor)
	if at.After(next) {
		next = at
	}
	next = next.Add(time.Duration(rand.Int64N(int64(floor/10) + 1)))
	if next.After(deadline) {
		next = deadline
	}
	return next
}
