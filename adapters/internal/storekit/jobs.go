package storekit

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

var _ tollgate.JobStore = (*Core)(nil)

// openStates is the SQL of the open job states.
const openStates = `('queued', 'waiting')`

// jobColumns are the columns a job is written with, in the order of
// jobArgs.
const jobColumns = `id, idempotency_key, state, repository, environment,
	pipeline, branch, created_at, next_check_at, lease_owner, lease_until, job`

// jobArgs checks j and returns the values of jobColumns, its lease given,
// and j as it reads back. A job that fails is a bug of the caller:
// EInternal.
func jobArgs(j tollgate.Job, leaseOwner string, leaseUntil int64) ([]any, tollgate.Job, error) {
	switch {
	case j.ID == "" || j.IdempotencyKey == "":
		return nil, j, tollgate.Errorf(tollgate.EInternal, "store job %q: no ID or idempotency key", j.ID)
	case !slices.Contains(tollgate.JobStates, j.State):
		return nil, j, tollgate.Errorf(tollgate.EInternal, "store job %s: unknown state %q", j.ID, j.State)
	case !storable(j.CreatedAt) || !storable(j.NextCheckAt) || !storable(j.WaitUntil):
		return nil, j, tollgate.Errorf(tollgate.EInternal, "store job %s: a time is missing or out of range", j.ID)
	}
	j.CreatedAt, j.UpdatedAt, j.WaitUntil, j.NextCheckAt = j.CreatedAt.UTC(), j.UpdatedAt.UTC(), j.WaitUntil.UTC(), j.NextCheckAt.UTC()
	if j.Reasons == nil {
		j.Reasons = []tollgate.Reason{}
	}
	if j.WaitingOn == nil {
		j.WaitingOn = []tollgate.Reason{}
	}
	if j.Decisions == nil {
		j.Decisions = []string{}
	}
	data, err := json.Marshal(j)
	if err != nil {
		return nil, j, tollgate.Errorf(tollgate.EInternal, "store job %s: encode: %v", j.ID, err)
	}
	return []any{j.ID, j.IdempotencyKey, string(j.State), j.Repository, j.Environment,
		j.Pipeline, j.Branch, j.CreatedAt.UnixNano(), j.NextCheckAt.UnixNano(),
		leaseOwner, leaseUntil, string(data)}, j, nil
}

// jobRow is a row of SELECT `+jobRead+`: the job, and when it is due,
// which WakeJobs moves in the column alone.
type jobRow struct {
	id   string
	data []byte
	next int64
}

const jobRead = `id, job, next_check_at`

func (r *jobRow) Dest() []any { return []any{&r.id, &r.data, &r.next} }

// decode decodes the stored job.
func (r *jobRow) decode() (tollgate.Job, error) {
	var j tollgate.Job
	if err := json.Unmarshal(r.data, &j); err != nil || j.ID != r.id {
		return tollgate.Job{}, tollgate.Errorf(tollgate.EInternal, "job %s: stored value is not this job's (%v)", r.id, err)
	}
	j.NextCheckAt = time.Unix(0, r.next).UTC()
	return j, nil
}

func decodeJobs(rows []jobRow) ([]tollgate.Job, error) {
	jobs := make([]tollgate.Job, 0, len(rows))
	for _, r := range rows {
		j, err := r.decode()
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// whereEqual is the WHERE clause of "column = value" for each pair of
// columnsAndValues whose value is not "" ("" when none), and its
// arguments.
func whereEqual(columnsAndValues ...string) (string, []any) {
	var (
		where []string
		args  []any
	)
	for i := 0; i+1 < len(columnsAndValues); i += 2 {
		if v := columnsAndValues[i+1]; v != "" {
			where = append(where, columnsAndValues[i]+" = ?")
			args = append(args, v)
		}
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// SubmitJob implements tollgate.JobStore: in one write transaction
// (ordered across processes by the dialect's LockJobs), the job of the key
// if there is one, else the counts against the bounds, then the insert.
func (c *Core) SubmitJob(ctx context.Context, j tollgate.Job, bounds tollgate.JobBounds) (tollgate.Job, bool, error) {
	j.State = tollgate.JobQueued
	args, _, err := jobArgs(j, "", 0)
	if err != nil {
		return tollgate.Job{}, false, err
	}
	var (
		created bool
		row     jobRow
	)
	err = c.write(ctx, "submit job "+j.ID, func(ctx context.Context, q Querier) error {
		if c.d.LockJobs != "" {
			if _, err := q.Exec(ctx, c.d.LockJobs); err != nil {
				return err
			}
		}
		err := q.QueryRow(ctx, `SELECT `+jobRead+` FROM jobs WHERE idempotency_key = ?`, j.IdempotencyKey).Scan(row.Dest()...)
		if !errors.Is(err, ErrNoRows) {
			return err // nil: the job of the key
		}
		if err := c.checkJobBounds(ctx, q, j.Repository, bounds); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `INSERT INTO jobs (`+jobColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
			return err
		}
		created = true
		return q.QueryRow(ctx, `SELECT `+jobRead+` FROM jobs WHERE id = ?`, j.ID).Scan(row.Dest()...)
	})
	if err != nil {
		return tollgate.Job{}, false, err
	}
	stored, err := row.decode()
	return stored, created, err
}

// checkJobBounds fails with ERateLimited if a new job of repository would
// pass bounds.
func (c *Core) checkJobBounds(ctx context.Context, q Querier, repository string, bounds tollgate.JobBounds) error {
	for _, b := range []struct {
		max   int
		what  string
		where string
		args  []any
	}{
		{bounds.PerRepository, repository, ` AND repository = ?`, []any{repository}},
		{bounds.Total, "the server", ``, nil},
	} {
		if b.max <= 0 {
			continue
		}
		var n int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE state IN `+openStates+b.where, b.args...).Scan(&n); err != nil {
			return err
		}
		if n >= b.max {
			return tollgate.Errorf(tollgate.ERateLimited, "%s has %d jobs waiting at the gate, its most: retry later, or cancel some", b.what, n)
		}
	}
	return nil
}

// Job implements tollgate.JobStore.
func (c *Core) Job(ctx context.Context, id string) (tollgate.Job, error) {
	var row jobRow
	err := c.read(ctx, "read job "+id, func(ctx context.Context, q Querier) error {
		err := q.QueryRow(ctx, `SELECT `+jobRead+` FROM jobs WHERE id = ?`, id).Scan(row.Dest()...)
		if errors.Is(err, ErrNoRows) {
			return jobNotFound(id)
		}
		return err
	})
	if err != nil {
		return tollgate.Job{}, err
	}
	return row.decode()
}

func jobNotFound(id string) error {
	return tollgate.Errorf(tollgate.ENotFound, "no job %q", id)
}

// Jobs implements tollgate.JobStore.
func (c *Core) Jobs(ctx context.Context, f tollgate.JobFilter) ([]tollgate.Job, error) {
	where, args := whereEqual("state", string(f.State), "repository", f.Repository,
		"environment", f.Environment, "idempotency_key", f.IdempotencyKey)
	query := `SELECT ` + jobRead + ` FROM jobs` + where
	var rows []jobRow
	err := c.read(ctx, "list jobs", func(ctx context.Context, q Querier) (err error) {
		rows, err = scanAll(ctx, q, query+` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, PageSize(f.Limit)), (*jobRow).Dest)
		return err
	})
	if err != nil {
		return nil, err
	}
	return decodeJobs(rows)
}

// ClaimQuery selects the open jobs not leased at its first argument and
// due at its second, at most its third of them, soonest due first, but for
// a job that is not the oldest open job of its queue (repository,
// pipeline, branch). The dialect locks what it selects (FOR UPDATE SKIP LOCKED on
// PostgreSQL: replicas claiming at once take different jobs, and the
// older job of a key one of them locked keeps the younger ones out, open
// as it stays).
const ClaimQuery = `SELECT j.id, j.job, j.next_check_at FROM jobs j
	WHERE j.state IN ` + openStates + ` AND j.lease_until <= ? AND j.next_check_at <= ?
	AND NOT EXISTS (SELECT 1 FROM jobs o
		WHERE o.state IN ` + openStates + ` AND o.repository = j.repository
		AND o.pipeline = j.pipeline AND o.branch = j.branch
		AND (o.created_at < j.created_at OR (o.created_at = j.created_at AND o.id < j.id)))
	ORDER BY j.next_check_at, j.created_at, j.id LIMIT ?`

// ClaimJobs implements tollgate.JobStore. It selects the claimable jobs in
// a read first, so that a worker's rounds with nothing due never take a
// writer; then one transaction selects and leases them.
func (c *Core) ClaimJobs(ctx context.Context, owner string, at time.Time, lease time.Duration, n int) ([]tollgate.Job, error) {
	if owner == "" || lease <= 0 || n <= 0 {
		return nil, tollgate.Errorf(tollgate.EInternal, "claim jobs: owner %q, lease %s, %d jobs", owner, lease, n)
	}
	now, until := UnixNano(at), UnixNano(at.Add(lease))
	var due bool
	err := c.read(ctx, "look for due jobs", func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, `SELECT EXISTS (`+ClaimQuery+`)`, now, now, n).Scan(&due)
	})
	if err != nil || !due {
		return []tollgate.Job{}, err
	}
	var rows []jobRow
	err = c.write(ctx, "claim jobs", func(ctx context.Context, q Querier) (err error) {
		if rows, err = scanAll(ctx, q, ClaimQuery+c.d.ForUpdate+c.d.SkipLocked, []any{now, now, n}, (*jobRow).Dest); err != nil {
			return err
		}
		for _, r := range rows {
			if _, err := q.Exec(ctx, `UPDATE jobs SET lease_owner = ?, lease_until = ?, woken = 0 WHERE id = ?`, owner, until, r.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return decodeJobs(rows)
}

// UpdateJob implements tollgate.JobStore, in one transaction that locks
// the job's row from its read to its write.
func (c *Core) UpdateJob(ctx context.Context, id, owner string, change func(*tollgate.Job) error) (tollgate.Job, error) {
	var (
		updated   tollgate.Job
		changeErr error // change's: returned as it is
	)
	err := c.write(ctx, "update job "+id, func(ctx context.Context, q Querier) error {
		var (
			row    jobRow
			leased string
			woken  int
		)
		err := q.QueryRow(ctx, `SELECT `+jobRead+`, lease_owner, woken FROM jobs WHERE id = ?`+c.d.ForUpdate, id).Scan(append(row.Dest(), &leased, &woken)...)
		switch {
		case errors.Is(err, ErrNoRows):
			return jobNotFound(id)
		case err != nil:
			return err
		case owner != "" && leased != owner:
			return tollgate.Errorf(tollgate.EConflict, "job %s is no longer claimed by %s (cancelled, or its lease ran out)", id, owner)
		}
		j, err := row.decode()
		if err != nil {
			return err
		}
		next := j
		next.Reasons = slices.Clone(j.Reasons)
		next.WaitingOn = slices.Clone(j.WaitingOn)
		next.Decisions = slices.Clone(j.Decisions)
		if err := change(&next); err != nil {
			changeErr = err
			return err
		}
		// Woken while its worker checked it: that check decided on what it
		// read before the wake; the job is due again at once.
		if owner != "" && woken != 0 && next.State == tollgate.JobWaiting && next.NextCheckAt.After(next.UpdatedAt) {
			next.NextCheckAt = next.UpdatedAt
		}
		if next.ID != j.ID || next.IdempotencyKey != j.IdempotencyKey || !next.CreatedAt.Equal(j.CreatedAt) ||
			next.Repository != j.Repository || next.Pipeline != j.Pipeline || next.Branch != j.Branch {
			return tollgate.Errorf(tollgate.EInternal, "update job %s: the change moved its ID, key, creation time or queue", id)
		}
		args, stored, err := jobArgs(next, "", 0)
		if err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `UPDATE jobs SET (`+jobColumns+`) = (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE id = ?`, append(args, id)...); err != nil {
			return err
		}
		// Its event, if its state moved, in the same transaction (see
		// notify.go).
		if event := tollgate.JobEvent(j.State, stored.State); event != "" {
			subject, err := jobSubject(stored)
			if err != nil {
				return err
			}
			if err := putEvent(ctx, q, event, id, stored.UpdatedAt, subject); err != nil {
				return err
			}
		}
		updated = stored
		return nil
	})
	switch {
	case changeErr != nil:
		return tollgate.Job{}, changeErr
	case err != nil:
		return tollgate.Job{}, err
	}
	return updated, nil
}

// WakeJobs implements tollgate.JobStore.
func (c *Core) WakeJobs(ctx context.Context, at time.Time) (n int64, err error) {
	err = c.write(ctx, "wake jobs", func(ctx context.Context, q Querier) (err error) {
		n, err = q.Exec(ctx, `UPDATE jobs SET next_check_at = ? WHERE state = 'waiting' AND next_check_at > ?`, UnixNano(at), UnixNano(at))
		if err != nil {
			return err
		}
		// The jobs being checked: marked, for their check's update.
		_, err = q.Exec(ctx, `UPDATE jobs SET woken = 1 WHERE state IN `+openStates+` AND lease_owner <> '' AND lease_until > ?`, UnixNano(at))
		return err
	})
	return n, err
}

// JobStats implements tollgate.JobStore.
func (c *Core) JobStats(ctx context.Context) (tollgate.JobStats, error) {
	stats := tollgate.JobStats{Open: map[tollgate.JobState]int{}}
	err := c.read(ctx, "job stats", func(ctx context.Context, q Querier) error {
		rows, err := q.Query(ctx, `SELECT state, count(*), min(created_at) FROM jobs WHERE state IN `+openStates+` GROUP BY state`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				state  string
				n      int
				oldest int64
			)
			if err := rows.Scan(&state, &n, &oldest); err != nil {
				return err
			}
			stats.Open[tollgate.JobState(state)] = n
			if at := time.Unix(0, oldest).UTC(); stats.OldestOpen.IsZero() || at.Before(stats.OldestOpen) {
				stats.OldestOpen = at
			}
		}
		return rows.Err()
	})
	return stats, err
}
