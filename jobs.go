package tollgate

import (
	"context"
	"encoding/json"
	"time"
)

// JobState is where a gate job stands.
type JobState string

// A job is queued until its first check, waiting while it is refused only
// for reasons time can clear, and ends accepted, refused (a reason time
// cannot clear), expired (its deadline passed) or cancelled.
const (
	JobQueued    JobState = "queued"
	JobWaiting   JobState = "waiting"
	JobAccepted  JobState = "accepted"
	JobRefused   JobState = "refused"
	JobExpired   JobState = "expired"
	JobCancelled JobState = "cancelled"
)

// JobStates are every job state, open ones first.
var JobStates = []JobState{JobQueued, JobWaiting, JobAccepted, JobRefused, JobExpired, JobCancelled}

// Open reports whether a job in state s is still to be checked.
func (s JobState) Open() bool { return s == JobQueued || s == JobWaiting }

// Job is a request that waits at the gate until it is allowed (POST
// /v1/jobs): each check of it is a normal decision, recorded.
type Job struct {
	ID             string   `json:"job_id"`
	IdempotencyKey string   `json:"idempotency_key"`
	State          JobState `json:"state"`
	// Repository, Pipeline, Branch and Environment are the request's, for
	// filters and limits; Request is the evaluate body as submitted. The
	// open jobs of one repository, pipeline and branch (a queue: the
	// cooldown key of their decisions) are checked oldest first, one at a
	// time, so that they are accepted in the order they came.
	Repository  string          `json:"repository"`
	Pipeline    string          `json:"pipeline"`
	Branch      string          `json:"branch"`
	Environment string          `json:"environment"`
	Request     json.RawMessage `json:"request"`
	// CooldownKey is the key its decisions are made under, once a check
	// has named it.
	CooldownKey *CooldownKey `json:"cooldown_key,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	WaitUntil   time.Time    `json:"wait_until"`
	// NextCheckAt is when an open job is checked next.
	NextCheckAt time.Time `json:"next_check_at"`
	// Reasons are the reasons of its last check; WaitingOn the same while
	// it waits (all of them time can clear), empty otherwise.
	Reasons   []Reason `json:"reasons"`
	WaitingOn []Reason `json:"waiting_on"`
	// Decisions are the IDs of its checks' decisions, oldest first.
	Decisions []string `json:"decisions"`
	// Language is the language its checks' messages are in, chosen from
	// the submission's Accept-Language; empty: the policy's default at
	// each check.
	Language string `json:"language,omitempty"`
	// Callback is whom to tell when the job ends, in the shape of the
	// integration that submitted it (a GitHub deployment protection rule:
	// {"github": …}); none for jobs submitted through POST /v1/jobs.
	Callback json.RawMessage `json:"callback,omitempty"`
}

// JobFilter selects jobs for JobStore.Jobs: every field set must match.
type JobFilter struct {
	State          JobState
	Repository     string
	Environment    string
	IdempotencyKey string
	Limit          int // 0: DefaultPageSize; at most MaxPageSize
}

// JobStore keeps gate jobs, shared by every process of a store: a job is
// claimed by one process at a time, under a lease.
type JobStore interface {
	// SubmitJob stores j, queued, unless a job with its idempotency key is
	// stored already: then it returns that job and created false. A new
	// job that would pass bounds is not stored: an ERateLimited error says
	// which. The key's lookup, the count and the insert are one step,
	// ordered across processes, so the bounds are exact.
	SubmitJob(ctx context.Context, j Job, bounds JobBounds) (stored Job, created bool, err error)

	// Job returns a job by ID, or an ENotFound error.
	Job(ctx context.Context, id string) (Job, error)

	// Jobs lists jobs, newest first.
	Jobs(ctx context.Context, f JobFilter) ([]Job, error)

	// ClaimJobs leases to owner, until at+lease, at most n open jobs due
	// at at (NextCheckAt at or before at) and not leased, soonest due
	// first; of the open jobs of one queue (repository, pipeline, branch),
	// only the oldest is ever claimed, so that they are accepted one by
	// one, oldest first. A job is claimed by one owner at a time, across
	// processes.
	ClaimJobs(ctx context.Context, owner string, at time.Time, lease time.Duration, n int) ([]Job, error)

	// UpdateJob runs change on the stored job and stores the result, as
	// one atomic step, and frees its lease. With an owner, the job must
	// still be leased to it (EConflict otherwise: it was cancelled, or its
	// lease ran out and another process has it); without one (a user's
	// cancel), whoever holds it loses it. If change fails, nothing
	// changes.
	UpdateJob(ctx context.Context, id, owner string, change func(*Job) error) (Job, error)

	// WakeJobs makes every waiting job due at at, and returns how many:
	// after a freeze lifted early, an incident ended, an exception
	// approved. A job a worker is checking is marked instead: when that
	// check leaves it waiting, UpdateJob makes it due at once, since the
	// check decided on what it read before the wake.
	WakeJobs(ctx context.Context, at time.Time) (int64, error)

	// JobStats counts the open jobs by state, for the metrics.
	JobStats(ctx context.Context) (JobStats, error)
}

// JobBounds are the most open jobs SubmitJob lets in: of the job's
// repository, and in all; 0 for no bound.
type JobBounds struct {
	PerRepository, Total int
}

// JobStats are the open jobs of a store: how many in each open state, and
// when the oldest of them was submitted (zero without any).
type JobStats struct {
	Open       map[JobState]int
	OldestOpen time.Time
}
